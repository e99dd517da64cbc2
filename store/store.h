/* store.h - internals of the store layer: Litestar's key layout and semantics on top of
 * net/. One rk_client per redkv_open; each redkv is a namespace on it. */
#ifndef REDKV_STORE_H
#define REDKV_STORE_H

#include "net.h"

typedef struct rk_op rk_op;

/* The client's cluster, or NULL: with REDKV_NO_CLUSTER always NULL, so that the compiler
   drops every cluster path of the store. */
#ifdef REDKV_NO_CLUSTER
#define RK_CLUSTER(cl) ((rk_cluster *)0)
#else
#define RK_CLUSTER(cl) ((cl)->cluster)
#endif

typedef struct rk_client {
    rk_config cfg;
    rk_pool pool;             /* blocking calls */
    rk_cluster *cluster;      /* Redis Cluster: the nodes and slot map (pool unused); else NULL */
    int async_stale;          /* cluster: an async connection was lost; read the map again */
    rk_conn async;            /* asynchronous requests, pipelined */
    int stores;               /* stores the user has not closed */
    int pending;              /* the user's asynchronous requests not yet called back */
    int in_process;           /* redkv_process (or the shutdown) is running callbacks */
    int shut_down;            /* the last store was closed inside a callback */
    rk_op *free_ops;          /* finished requests, kept for reuse */
    int scan_count;
    void (*progress)(uint64_t deleted, void *arg);
    void *progress_arg;
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
enum rk_kind { OP_SET, OP_GET, OP_RENEW_SHA, OP_RENEW_EVAL, OP_DELETE, OP_EXISTS, OP_PTTL, OP_PING };

/* The renew script's fallback marker: a status no caller sees. */
#define RK_NOSCRIPT 100
/* Redis Cluster's answers that send a request elsewhere or ask for a retry (rk_redirect). */
#define RK_MOVED    101
#define RK_ASK      102
#define RK_TRYAGAIN 103      /* TRYAGAIN, CLUSTERDOWN: not run; try again shortly */

typedef struct rk_args {
    const void *key, *val;
    size_t klen, vlen;
    int64_t ms;               /* set: expiry; renew: the new expiry */
    unsigned flags;
} rk_args;

typedef struct rk_result {
    int status;
    const char *val;
    size_t vlen;
    int64_t n;
} rk_result;

/* ops.c */
int rk_check_key(const redkv *s, const void *key, size_t klen);
int rk_check_set(const redkv *s, const rk_args *a);
int rk_encode(resp_buf *out, const redkv *s, enum rk_kind kind, const rk_args *a);
void rk_interpret(enum rk_kind kind, int status, const resp_reply *reply, rk_result *res);
/* A cluster's redirection or retry request in an error reply: RK_MOVED or RK_ASK (*addr,
   *len: the "host:port" to go to, in the reply), RK_TRYAGAIN, or 0 for any other reply. */
int rk_redirect(const resp_reply *reply, const char **addr, size_t *len);

/* client.c */
/* The net configuration that opt (may be NULL) describes: rk_config_init's statuses. */
int rk_config_from_options(rk_config *cfg, const redkv_options *opt);
void rk_store_release(redkv *s);    /* drops one reference; frees s at zero */
int rk_ref_add(int *count, int delta);  /* atomically; returns the new value */
/* Ends a redkv_process pass; 1 when the client was shut down meanwhile (cl is gone). */
int rk_client_finish_process(rk_client *cl);

/* async.c */
void rk_async_free_ops(rk_client *cl);

/* script text, for tests and the benchmark's reference */
const char *rk_renew_script(void);

#endif
