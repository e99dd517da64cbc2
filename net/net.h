/* net.h - connections to one Redis server: URLs, non-blocking connect, handshake,
 * pipelined requests matched to replies in order, blocking and event-driven I/O over one
 * code path, and a pool of connections shared by threads. Knows nothing of namespaces. */
#ifndef REDKV_NET_H
#define REDKV_NET_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "redkv.h"
#include "resp.h"

#ifndef REDKV_NO_THREADS
#include <pthread.h>
#endif

/* ---- errors (error.c) ---------------------------------------------------------------- */

/* Records a message for redkv_last_error() in this thread and returns code. */
int rk_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void rk_error_clear(void);

/* ---- configuration (url.c) ------------------------------------------------------------ */

typedef struct rk_config {
    char *host;               /* TCP host name or address; NULL for a unix socket */
    char *path;               /* unix socket path; NULL for TCP */
    int port;
    int db;
    char *user, *pass;        /* NULL: none */
    int connect_timeout_ms, command_timeout_ms, pool_size;
    resp_limits limits;
} rk_config;

/* Reads url (NULL: the default) and applies the overrides of opt (may be NULL).
   0, or ECONFIG / ENOMEM with the message set (never naming the password). */
int rk_config_init(rk_config *cfg, const redkv_options *opt);
void rk_config_free(rk_config *cfg);

/* ---- requests and connections (conn.c) ------------------------------------------------ */

typedef struct rk_req rk_req;
/* Called exactly once per request: with REDKV_OK and the reply (valid during the call; it
   may be an error reply), or with an error status and reply NULL. */
typedef void rk_done_fn(rk_req *req, int status, const resp_reply *reply);

struct rk_req {
    rk_req *next;
    size_t len;               /* bytes of the encoded command */
    int64_t deadline;         /* ms, monotonic clock */
    rk_done_fn *done;
    void *ctx;                /* the owner's */
    int status;               /* what done was given */
    int completed;            /* set just before done runs */
};

enum rk_state { RK_CLOSED, RK_CONNECTING, RK_HANDSHAKE, RK_READY };

typedef struct rk_conn {
    const rk_config *cfg;
    int fd;
    enum rk_state state;
    int blocking;             /* pool connection: blocking socket, timeouts in the kernel */
    int rcvtimeo_ms;          /* SO_RCVTIMEO currently set on fd */
    int64_t connect_deadline;
    struct addrinfo *addrs, *addr;   /* async connect: the list and the one being tried */
    int pending_error;        /* async: a connect that failed at once, delivered on process */

    resp_buf out;             /* commands not yet fully written start at out_pos */
    size_t out_pos;
    size_t hs_bytes;          /* while handshaking, only this many bytes may be written */
    char *in;                 /* bytes read; the current reply begins at in_pos */
    size_t in_len, in_cap, in_pos;
    int read_filled;          /* the last recv filled all the room it had */
    int retired_fd;           /* a dropped event-driven socket, closed once the next exists */
    unsigned errors_delivered;  /* errors given to the caller's requests so far */
    resp_parser parser;

    rk_req *head, *tail;      /* in order; the written ones first */
    rk_req *unsent;           /* the first request not completely written, or NULL */
    size_t unsent_done;       /* bytes of it already written */
    rk_req hs_req[2];         /* AUTH, SELECT */
    int hs_left;
    int hs_status;
} rk_conn;

void rk_conn_init(rk_conn *c, const rk_config *cfg, int blocking);
void rk_conn_free(rk_conn *c);         /* closes; every request left gets ECONN */

int64_t rk_now_ms(void);
int64_t rk_deadline(int timeout_ms);

/* Adds req, whose command the caller has just appended to c->out (req->len bytes). */
void rk_conn_push(rk_conn *c, rk_req *req);
/* Blocking: connects if needed, then writes and reads until req is done or its deadline
   passes. Returns REDKV_OK when req->done ran with a reply, else the error given to it. */
int rk_conn_run(rk_conn *c, rk_req *req);

/* Event-driven (non-blocking connection). */
int rk_conn_start(rk_conn *c);                 /* begins a connect if requests wait and none runs */
int rk_conn_events(const rk_conn *c);          /* REDKV_READ | REDKV_WRITE */
int rk_conn_process(rk_conn *c, int events);   /* 0, or the error just given to requests */
int rk_conn_timeout_ms(const rk_conn *c);      /* -1: nothing to wait for */

/* Fails every request written so far (the head with status, the others ECONN) and drops
   the socket; unwritten requests stay queued. Returns status. */
int rk_conn_fail(rk_conn *c, int status);
/* Fails every request, written or not, with status, and drops the socket. */
int rk_conn_fail_all(rk_conn *c, int status);

/* ---- the pool (pool.c) ---------------------------------------------------------------- */

typedef struct rk_pool {
    const rk_config *cfg;
    rk_conn **idle;           /* a stack of connections not in use */
    int nidle, created, size;
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;
    pthread_cond_t freed;
#endif
} rk_pool;

int rk_pool_init(rk_pool *p, const rk_config *cfg);
void rk_pool_free(rk_pool *p);         /* every connection must have been given back */
/* Borrows a connection, waiting until deadline if all are busy: OK, ETIMEDOUT, ENOMEM. */
int rk_pool_get(rk_pool *p, int64_t deadline, rk_conn **out);
void rk_pool_put(rk_pool *p, rk_conn *c);

#endif
