/* store.h - internals of the store layer: Litestar's key layout and semantics on top of
 * net/'s router. One rk_client per redkv_open; each redkv is a namespace on it. The store
 * knows commands and replies; where they go (one server, a cluster) and over what (plain,
 * TLS) is the router's business. */
#ifndef REDKV_STORE_H
#define REDKV_STORE_H

#include "fmacros.h"
#include "router.h"

typedef struct rk_op rk_op;
typedef struct rk_cache rk_cache;
typedef struct rk_hit rk_hit;

typedef struct rk_client {
    rk_config cfg;
    rk_router *router;        /* every command goes through it */
    int stores;               /* stores the user has not closed */
    int pending;              /* the user's asynchronous requests not yet called back */
    int in_process;           /* redkv_process (or the shutdown) is running callbacks */
    int shut_down;            /* the last store was closed inside a callback */
    rk_op *free_ops;          /* finished requests, kept for reuse */
    rk_op *held, *held_tail;  /* after a NOSCRIPT: callbacks kept back to stay in order */
    int scan_count;
    void (*progress)(uint64_t deleted, void *arg);
    void *progress_arg;
    rk_cache *cache;          /* NULL: no client-side cache (cache.c) */
#ifndef REDKV_NO_CACHE
    /* Asynchronous reads answered from the cache wait here for redkv_process, behind the
       requests queued before them (async.c): those in flight are listed in queue order. */
    rk_op *first, *last;      /* in flight, oldest first (with a cache only) */
    uint64_t seq;             /* the number of the next request queued */
    rk_hit *hits;             /* answered from memory, not yet called back: [hit_head, nhits) */
    size_t hit_head, nhits, hit_cap;
    resp_buf hit_vals;        /* their values */
    int running_hits;         /* a hit's callback runs: hit_vals must not move */
#define HIT_OLD_MAX 8
    char *hit_old[HIT_OLD_MAX];   /* values' buffers outgrown while a callback ran */
    int nold;
#endif
    int closing;              /* the client shuts down: callbacks get ECONN */
} rk_client;

struct redkv {
    rk_client *cl;
    char *ns;                 /* NULL: no namespace */
    char *prefix;             /* "ns:" (or ""), put before every key */
    size_t prefix_len;
    int refs;                 /* the user's handle, and each asynchronous request */
    int closed;
};

/* What each operation sends and how its reply reads. */
enum rk_kind { OP_SET, OP_GET, OP_RENEW_SHA, OP_RENEW_EVAL, OP_DELETE, OP_EXISTS, OP_PTTL, OP_PING,
               OP_INCR_SHA, OP_INCR_EVAL };

typedef struct rk_args {
    const void *key, *val;
    size_t klen, vlen;
    int64_t ms;               /* set: expiry; renew: the new expiry; incr: the window */
    unsigned flags;
} rk_args;                    /* incr: val holds the delta, in decimal */

typedef struct rk_result {
    int status;
    int noscript;             /* EVALSHA found no script: send the text (the status is ESERVER) */
    const char *val;
    size_t vlen;
    int64_t n;
} rk_result;

/* One operation as a command for the router: its encoder's argument lives beside it. */
typedef struct rk_op_cmd {
    rk_cmd cmd;
    const redkv *store;
    enum rk_kind kind;
    const rk_args *args;
} rk_op_cmd;

/* ops.c */
RK_INTERNAL int rk_check_key(const redkv *s, const void *key, size_t klen);
RK_INTERNAL int rk_check_set(const redkv *s, const rk_args *a);
/* Fills oc for operation kind on s with a (which must outlive oc's use). */
RK_INTERNAL void rk_op_cmd_init(rk_op_cmd *oc, const redkv *s, enum rk_kind kind, const rk_args *a);
RK_INTERNAL void rk_interpret(enum rk_kind kind, int status, const resp_reply *reply, rk_result *res);
/* The kind that sends the script's text for kind's EVALSHA (NOSCRIPT); kind when it has none. */
RK_INTERNAL enum rk_kind rk_eval_kind(enum rk_kind kind);

/* client.c */
/* The net configuration that opt (may be NULL) describes: rk_config_init's statuses. */
RK_INTERNAL int rk_config_from_options(rk_config *cfg, const redkv_options *opt);
RK_INTERNAL void rk_store_release(redkv *s);    /* drops one reference; frees s at zero */
RK_INTERNAL int rk_ref_add(int *count, int delta);  /* atomically; returns the new value */
/* Ends a redkv_process pass; 1 when the client was shut down meanwhile (cl is gone). */
RK_INTERNAL int rk_client_finish_process(rk_client *cl);
/* The deadline of a blocking call starting now (the router adds any time spent connecting). */
RK_INTERNAL int64_t rk_call_deadline(const rk_client *cl);

/* store.c */
/* Runs one operation to its end (NOSCRIPT resent as EVAL); its status, *n its number. */
RK_INTERNAL int rk_run_op(redkv *s, enum rk_kind kind, const rk_args *a, int64_t *n);

/* async.c */
RK_INTERNAL void rk_async_free_ops(rk_client *cl);
#ifndef REDKV_NO_CACHE
/* The client shuts down: calls back every hit left (with ECONN), frees their list. */
RK_INTERNAL void rk_async_close_hits(rk_client *cl);
#endif
/* Queues one operation (a is copied into the command at once); 0, or EINVAL/ENOMEM. */
RK_INTERNAL int rk_queue_op(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg);

/* cache.c: the client-side cache. Without it (REDKV_NO_CACHE, or cache_bytes 0) the
   client's cache is NULL and none of these is called. */
#ifndef REDKV_NO_CACHE
/* Gives a value read (from memory, or from the reply while it is valid) to its reader:
   returns the read's status (OK, or ENOMEM / ETOOBIG from copying it out). */
typedef int rk_take_fn(void *ctx, const char *val, size_t vlen);
/* A cache of bytes for cl's keys, which all begin with prefix ("" for every key); tracking
   starts with the first read of each node's keys. OK, ENOMEM. */
RK_INTERNAL int rk_cache_new(rk_client *cl, size_t bytes, const char *prefix, rk_cache **out);
RK_INTERNAL void rk_cache_free(rk_cache *c);
/* A plain get: OK (take has run), MISSING, or an error; from memory when it can. */
RK_INTERNAL int rk_cache_get(redkv *s, const void *key, size_t klen, rk_take_fn *take, void *ctx);
RK_INTERNAL int rk_cache_exists(redkv *s, const void *key, size_t klen);   /* 1, 0, < 0 */
/* Our own writes: forget the key (after set or delete), or everything (delete_all). */
RK_INTERNAL void rk_cache_forget(redkv *s, const void *key, size_t klen);
RK_INTERNAL void rk_cache_forget_all(rk_client *cl);

/* The asynchronous reads (event loop's thread only). An asynchronous write of a key is
   announced when queued and ended when called back (the key is then forgotten): reads of
   that key queued meanwhile are not answered from memory. */
RK_INTERNAL void rk_cache_write_begin(redkv *s, const void *key, size_t klen);
RK_INTERNAL void rk_cache_write_end(redkv *s, const void *key, size_t klen);
/* What an asynchronous miss needs to fill the cache with its reply. */
typedef struct rk_cache_fill {
    uint64_t ticket;          /* its placeholder's; 0: not filling (a plain GET or EXISTS) */
    const rk_tracker *trk;    /* the tracking connection it was sent under */
    int64_t sent;             /* ms, when queued: the expiry counts from there */
} rk_cache_fill;
/* A plain asynchronous read (exists, or a get), without blocking: 1 when answered from
   memory (*status and *n set; a get's value given to take, under the cache's lock), else
   0, with *fill set for the read that goes to the server. */
RK_INTERNAL int rk_cache_read_async(redkv *s, int exists, const void *key, size_t klen,
                                    rk_take_fn *take, void *ctx, int *status, int64_t *n,
                                    rk_cache_fill *fill);
/* The command of a filling read (the read script, or PTTL for exists) into oc, whose
   arguments live in a and arg (which must outlive oc's use). */
typedef struct rk_cache_cmd {
    rk_op_cmd oc;
    rk_args a;
    const redkv *s;
} rk_cache_cmd;
RK_INTERNAL void rk_cache_read_cmd(rk_cache_cmd *cc, const redkv *s, int exists,
                                   const void *key, size_t klen);
/* A filling read's reply: fills the cache and says what the reader gets (a value points
   into the reply). */
RK_INTERNAL void rk_cache_read_reply(redkv *s, int exists, const void *key, size_t klen,
                                     const rk_cache_fill *fill, int status,
                                     const resp_reply *reply, rk_result *res);
#endif

/* script text, for tests and the benchmark's reference */
RK_INTERNAL const char *rk_renew_script(void);
RK_INTERNAL const char *rk_incr_script(void);

#endif
