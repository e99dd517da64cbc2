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
const char *rk_error_text(void);   /* this thread's last message, or "no error" */

/* ---- configuration (url.c) ------------------------------------------------------------ */

/* What the caller's options say of the connection; every field zero/NULL: from the URL. */
typedef struct rk_settings {
    const char *url;          /* NULL: redis://localhost:6379 */
    int db, port;             /* > 0: overrides */
    const char *username, *password;
    int connect_timeout_ms, command_timeout_ms, pool_size;   /* > 0: overrides; < 0: EINVAL */
    size_t max_value_len;
    int cluster;
    const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    int tls_no_verify;
    const redkv_transport *transport;
} rk_settings;

enum rk_verify { RK_VERIFY_REQUIRED, RK_VERIFY_OPTIONAL, RK_VERIFY_NONE };

typedef struct rk_config {
    char *host;               /* TCP host name or address; NULL for a unix socket */
    char *path;               /* unix socket path; NULL for TCP */
    int port;
    int db;
    char *user, *pass;        /* NULL: none */
    int connect_timeout_ms, command_timeout_ms, pool_size;
    resp_limits limits;
    /* Redis Cluster (redis+cluster://, or cluster set): host and port are the first seed. */
    int cluster;
    int nseeds;
    struct rk_seed { char *host; int port; } *seeds;
    /* TLS: rediss:// (or a transport given); the files and names are the URL's, overridden */
    int tls;
    char *tls_ca, *tls_cert, *tls_key, *tls_sni;
    enum rk_verify tls_verify;
    int tls_check_hostname;
    /* The transport every connection goes through: the caller's, the built-in TLS one, or
       NULL for plain sockets. Owned by the root config (tls_owned); node copies share it. */
    const redkv_transport *tp;
    redkv_transport tls_tp;
    int tls_owned;
} rk_config;

/* Reads the URL (NULL: the default) and applies the settings' overrides (set may be NULL).
   0, or ECONFIG / ENOMEM / ETLS with the message set (never naming the password). */
int rk_config_init(rk_config *cfg, const rk_settings *set);
void rk_config_free(rk_config *cfg);
/* A NUL-terminated copy of s[0..n), from the allocator hook; NULL when memory ran out. */
char *rk_strndup(const char *s, size_t n);

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

/* CONNECTING: TCP; SECURING: the transport's handshake (TLS); HANDSHAKE: AUTH, SELECT. */
enum rk_state { RK_CLOSED, RK_CONNECTING, RK_SECURING, RK_HANDSHAKE, RK_READY };

typedef struct rk_conn {
    const rk_config *cfg;
    int fd;
    enum rk_state state;
    int blocking;             /* pool connection: blocking socket, timeouts in the kernel */
    int rcvtimeo_ms;          /* SO_RCVTIMEO currently set on fd */
    int64_t connect_deadline;
    struct addrinfo *addrs, *addr;   /* async connect: the list and the one being tried */
    int pending_error;        /* async: a connect that failed at once, delivered on process */
    void *session;            /* the transport's (cfg->tp), or NULL on a plain socket */
    int tls_want;             /* SECURING: REDKV_READ or REDKV_WRITE, what the handshake awaits */
    unsigned long replies;    /* replies read on this socket (none: maybe not Redis at all) */

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

/* ---- Redis Cluster (cluster.c) ------------------------------------------------------------ */

#define RK_SLOTS 16384

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the hash of Redis Cluster. */
uint16_t rk_crc16(const void *p, size_t n);
/* The slot of the key prefix+key, honouring a {hash tag} anywhere in the whole key. */
int rk_key_slot(const void *prefix, size_t plen, const void *key, size_t klen);

typedef struct rk_node {
    rk_config cfg;            /* its own host and port; user, password, timeouts shared */
    rk_pool pool;
    rk_conn async;            /* asynchronous requests to this node, pipelined */
    int reg_fd, reg_events;   /* what the cluster's epoll descriptor was told of async */
} rk_node;

/* The nodes seen so far (never removed while the client lives, so a node pointer stays
   valid), and which master serves each slot. */
typedef struct rk_cluster {
    const rk_config *cfg;
    rk_node **nodes;
    int nnodes, cap;
    int16_t slots[RK_SLOTS];  /* index into nodes; -1: not known */
    int epfd;                 /* async: readable when any node's connection is ready; -1 */
    int last_ok;              /* the node that last gave its slot map: asked first */
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;
#endif
} rk_cluster;

int rk_cluster_init(rk_cluster *c, const rk_config *cfg);   /* the seeds as nodes; no I/O */
void rk_cluster_free(rk_cluster *c);   /* every borrowed connection must have been given back */
/* Reads the slot map (CLUSTER SLOTS) from the first node that answers, trying avoid last.
   OK, or the last node's error. */
int rk_cluster_refresh(rk_cluster *c, int64_t deadline, const rk_node *avoid);
/* The master of slot (reading the map first if it is not known): OK or an error. */
int rk_cluster_node(rk_cluster *c, int slot, int64_t deadline, rk_node **out);
/* The node at host:port (a "MOVED 12 host:port" target), added if new: OK, ESERVER for an
   address that does not read, or ENOMEM. */
int rk_cluster_node_at(rk_cluster *c, const char *addr, size_t len, rk_node **out);
/* Points slot at node (after MOVED). */
void rk_cluster_set_slot(rk_cluster *c, int slot, const rk_node *node);
/* The distinct masters of the map, at most cap of them: their count, or an error < 0. */
int rk_cluster_masters(rk_cluster *c, int64_t deadline, rk_node **out, int cap);
/* The master of slot as the map says, else any node (never NULL: the seeds are nodes). */
rk_node *rk_cluster_lookup(rk_cluster *c, int slot);
/* 1 when the slot map has been read (some slot is known). */
int rk_cluster_has_map(rk_cluster *c);

/* Asynchronous use: each node has its own connection (node->async); one descriptor, an
   epoll instance holding every node's socket with the events it wants, stands for all of
   them (Linux only; elsewhere rk_cluster_async_fd is -1 and the store refuses). Driven from
   one thread at a time. */
int rk_cluster_async_fd(rk_cluster *c);          /* creates it on first use; -1: none */
void rk_cluster_async_sync(rk_cluster *c);       /* tells epoll of each node's fd and events */
void rk_cluster_async_sync_node(rk_cluster *c, rk_node *node);   /* ... of one node's */
int rk_cluster_async_process(rk_cluster *c);     /* every node's ready I/O and timeouts */
int rk_cluster_async_timeout_ms(rk_cluster *c);  /* the soonest node's; -1: none */

#endif
