/* conn.h - net/'s own: one connection to one Redis server (non-blocking connect, the
 * transport's handshake, AUTH and SELECT, pipelined requests matched to replies in order,
 * blocking and event-driven I/O over one code path), and a pool of them shared by threads. */
#ifndef REDKV_NET_CONN_H
#define REDKV_NET_CONN_H

#include "fmacros.h"
#include "net.h"

#ifndef REDKV_NO_THREADS
#include <pthread.h>
#endif

/* Waiters a leader wakes after releasing the lock, at most (more are woken at once). */
#define RK_MAX_WAKES 32

/* AUTH, SELECT, and room for what a later handshake adds (HELLO, CLIENT TRACKING). */
#define RK_MAX_HANDSHAKE 4

/* RESOLVING: a name is being looked up in a thread (event-driven use: fd is its pipe). */
enum rk_state { RK_CLOSED, RK_RESOLVING, RK_CONNECTING, RK_SECURING, RK_HANDSHAKE, RK_READY };

/* ---- name lookup bounded by a deadline (resolve.c) ------------------------------------- */

typedef struct rk_lookup rk_lookup;
struct addrinfo;
/* Looks up cfg's host: OK with *now (an address needs no lookup; without threads every name
   is looked up at once), OK with *later (a name, being looked up in a thread), or an error
   with the message set. */
RK_INTERNAL int rk_lookup_start(const rk_config *cfg, struct addrinfo **now, rk_lookup **later);
/* A descriptor readable once the lookup is done (for event loops). */
RK_INTERNAL int rk_lookup_fd(const rk_lookup *l);
/* Waits for the lookup until deadline (deadline in the past: does not wait): OK with *out
   (then the caller's to free), 1 when not done yet, or ECONN with the message set. */
RK_INTERNAL int rk_lookup_result(rk_lookup *l, const rk_config *cfg, int64_t deadline,
                                 struct addrinfo **out);
/* Gives up on the lookup (it finishes and frees itself in its thread). NULL: no-op. */
RK_INTERNAL void rk_lookup_drop(rk_lookup *l);


struct rk_conn {
    const rk_config *cfg;
    int fd;
    enum rk_state state;
    int blocking;             /* pool connection: blocking socket, timeouts in the kernel */
    int rcvtimeo_ms;          /* SO_RCVTIMEO currently set on fd */
    int64_t connect_deadline;
    struct addrinfo *addrs, *addr;   /* async connect: the list and the one being tried */
    int pending_error;        /* async: a connect that failed at once, delivered on process */
    void *session;            /* the transport's (cfg->tp), or NULL on a plain socket */
    rk_lookup *lookup;        /* RESOLVING: the name being looked up */
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
    unsigned long replies_ever; /* replies read, over every socket */
    unsigned long losses;       /* times the connection was lost (ECONN) */
    unsigned long drops;        /* sockets closed: a new one is a new server session */
    int64_t connect_spent_ms;   /* blocking: what the last run spent connecting */
    resp_parser parser;

    rk_req *head, *tail;      /* in order; the written ones first */
    rk_req *unsent;           /* the first request not completely written, or NULL */
    size_t unsent_done;       /* bytes of it already written */
#ifndef REDKV_NO_THREADS
    /* Blocking calls of many threads share a pooled connection: each queues its request
       under lock, and one of them at a time (the leader) writes and reads for all. */
    pthread_mutex_t lock;     /* the request list and out; in, parser: the leader's alone */
    int leading;              /* a caller is doing this connection's I/O */
    int writing;              /* a caller is sending, the lock released (write_unlocked) */
    int queued;               /* requests queued or in flight */
    resp_buf spare;           /* out's other half: appended to while the leader writes */
    int *wakes[RK_MAX_WAKES]; /* waiters told, to wake once the lock is released */
    int nwakes;
    int users, lent;          /* the pool's (atomic, pool.c): callers sharing it; lent whole */
#endif
    rk_req hs_req[RK_MAX_HANDSHAKE];  /* the handshake, in order */
    unsigned char hs_steps[RK_MAX_HANDSHAKE];  /* which step each is */
    int hs_left;
    int hs_status;
};

RK_INTERNAL void rk_conn_init(rk_conn *c, const rk_config *cfg, int blocking);
RK_INTERNAL void rk_conn_free(rk_conn *c);         /* closes; every request left gets ECONN */

/* Adds req, whose command has just been appended to c->out (req->len bytes). */
RK_INTERNAL void rk_conn_push(rk_conn *c, rk_req *req);
/* Queues req for a copy of an encoded command. 0, or ENOMEM (nothing queued). */
RK_INTERNAL int rk_conn_queue_bytes(rk_conn *c, rk_req *req, const char *cmd, size_t len);
/* Room for n more bytes of commands: 0, or ENOMEM. */
RK_INTERNAL int rk_conn_reserve(rk_conn *c, size_t n);
/* 1 when no request is queued or in flight. */
RK_INTERNAL int rk_conn_idle(const rk_conn *c);
/* 1 when the socket is open (a pooled connection reused: maybe closed by the server). */
RK_INTERNAL int rk_conn_is_open(const rk_conn *c);
/* Blocking: the milliseconds the last rk_conn_run spent connecting (0: none). */
RK_INTERNAL int64_t rk_conn_connect_spent(const rk_conn *c);
/* Switches a connection between the pool's blocking mode and event-driven use. */
RK_INTERNAL void rk_conn_set_blocking(rk_conn *c, int blocking);
RK_INTERNAL int rk_conn_fd(const rk_conn *c);      /* the socket, or -1 */
/* Replies read, and times the connection was lost, over the connection's life. */
RK_INTERNAL void rk_conn_counts(const rk_conn *c, unsigned long *replies, unsigned long *lost);
/* Blocking: connects if needed, then writes and reads until req is done or its deadline
   passes. Returns REDKV_OK when req->done ran with a reply, else the error given to it. */
RK_INTERNAL int rk_conn_run(rk_conn *c, rk_req *req);
#ifdef REDKV_NO_THREADS
#define rk_conn_lock(c)   ((void)0)
#define rk_conn_unlock(c) ((void)0)
#define rk_conn_run_shared rk_conn_run   /* no lock to release */
#else
#define rk_conn_lock(c)   pthread_mutex_lock(&(c)->lock)
#define rk_conn_unlock(c) rk_conn_release(c)
/* Unlocks c, then wakes the waiters its leader told meanwhile. */
RK_INTERNAL void rk_conn_release(rk_conn *c);
/* rk_conn_run for a connection shared by threads, called with its lock held (req queued
   under it), which it releases: when another caller is doing the I/O, waits for it to
   hand req its reply (or the lead); else does the I/O for every request queued, its own
   and the others'. */
RK_INTERNAL int rk_conn_run_shared(rk_conn *c, rk_req *req);
#endif
/* Takes back req, the last request queued and not yet written (its ASKING when the command
   could not be queued). */
RK_INTERNAL void rk_conn_unqueue(rk_conn *c, rk_req *req);
/* Blocking: runs until no request is left, those queued meanwhile (by done callbacks)
   included. */
RK_INTERNAL void rk_conn_drain(rk_conn *c);

/* Event-driven (non-blocking connection). */
RK_INTERNAL int rk_conn_start(rk_conn *c);                 /* begins a connect if requests wait and none runs */
RK_INTERNAL int rk_conn_events(const rk_conn *c);          /* REDKV_READ | REDKV_WRITE */
RK_INTERNAL int rk_conn_process(rk_conn *c, int events);   /* 0, or the error just given to requests */
RK_INTERNAL int rk_conn_timeout_ms(const rk_conn *c);      /* -1: nothing to wait for */
/* What poll says of c's socket within wait_ms, among the events it wants (0: none). */
RK_INTERNAL int rk_conn_ready(const rk_conn *c, int wait_ms);

/* Fails every request written so far (the head with status, the others ECONN) and drops
   the socket; unwritten requests stay queued. Returns status. */
RK_INTERNAL int rk_conn_fail(rk_conn *c, int status);
/* Fails every request, written or not, with status, and drops the socket. */
RK_INTERNAL int rk_conn_fail_all(rk_conn *c, int status);

/* ---- the pool (pool.c) ---------------------------------------------------------------- */

typedef struct rk_pool {
    const rk_config *cfg;
    rk_conn **conns;          /* made on first need, at most size */
    int created, size;
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;
    pthread_cond_t freed;     /* a connection was given back, or its last sharer left */
    int waiting;              /* callers in take(): givers back wake them only then */
#else
    int busy;                 /* the one connection is in use */
#endif
} rk_pool;

RK_INTERNAL int rk_pool_init(rk_pool *p, const rk_config *cfg);
RK_INTERNAL void rk_pool_free(rk_pool *p);         /* every connection must have been given back */
/* Borrows a connection whole (nobody else queues on it), waiting until deadline if all are
   in use: OK, ETIMEDOUT, ENOMEM. */
RK_INTERNAL int rk_pool_get(rk_pool *p, int64_t deadline, rk_conn **out);
RK_INTERNAL void rk_pool_put(rk_pool *p, rk_conn *c);
#ifdef REDKV_NO_THREADS
#define rk_pool_share   rk_pool_get
#define rk_pool_unshare rk_pool_put
#else
/* A connection to queue a blocking call on, shared with other threads' calls (an unused
   one first, then a new one, then the least shared); waits only while every connection is
   lent whole. rk_pool_unshare: the call is over. */
RK_INTERNAL int rk_pool_share(rk_pool *p, int64_t deadline, rk_conn **out);
RK_INTERNAL void rk_pool_unshare(rk_pool *p, rk_conn *c);
#endif

#endif
