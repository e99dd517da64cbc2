/* router.h - where each command goes, and what happens when the server says "not here".
 *
 * A router holds the nodes a client talks to (each with a pool of blocking connections and
 * one connection for asynchronous requests) and a topology that picks among them: one
 * server, or a Redis Cluster (slots; MOVED, ASK). Everything that follows a redirection,
 * retries after TRYAGAIN or a lost node, and bounds all of it by the call's deadline is
 * here, once, for the blocking and the asynchronous paths alike. The store above sees
 * commands and replies only. */
#ifndef REDKV_NET_ROUTER_H
#define REDKV_NET_ROUTER_H

#include "fmacros.h"
#include "net.h"

/* A command to route: how to write it, and the key it touches (in two parts, prefix and
   key), which decides where it goes. */
typedef struct rk_cmd {
    rk_encode_fn *encode;
    const void *arg;
    const void *prefix, *key;
    size_t plen, klen;
    int keyless;              /* touches no key (PING): any node serves it */
    rk_encode_fn *prelude;    /* async: sent once on each connection before the first such
                                 command (SCRIPT LOAD before EVALSHA); NULL: none */
} rk_cmd;

typedef struct rk_router rk_router;

/* An asynchronous request: the router's part of it, inside the owner's record. */
typedef struct rk_areq {
    rk_req req;               /* first: what connections see */
    rk_done_fn *done;         /* the owner's: called exactly once, with the final reply */
    rk_router *router;        /* set when queued */
    resp_buf copy;            /* the command, kept to send again after a redirection */
    rk_req asking;            /* ASKING before it, after an ASK */
    rk_encode_fn *prelude;    /* the command's (rk_cmd) */
    int slot, tries;
    int64_t retry_at;         /* when delayed */
    struct rk_areq *next_waiting;   /* in the router's delayed list, or its held FIFO */
#ifndef REDKV_NO_CLUSTER
    unsigned long gen;        /* the map generation it was last sent under */
    const struct rk_node *node;   /* where it was last sent */
#endif
} rk_areq;

/* A router over the configuration's topology (one server, or a cluster's seeds); no I/O.
   OK, or ENOMEM / ECONFIG with the message set. */
RK_INTERNAL int rk_router_new(const rk_config *cfg, rk_router **out);
/* Fails every asynchronous request left (written, delayed or held) with ECONN, closes
   everything. Every borrowed connection must have been given back. */
RK_INTERNAL void rk_router_free(rk_router *r);

/* Blocking: runs cmd where it belongs, following redirections and retrying a stale
   connection or a lost node until *deadline; req->done runs exactly once, with the final
   reply or an error. Time spent connecting (bounded by the connect timeout) moves
   *deadline on, so that a call ends within the command timeout plus the connect timeout;
   a caller that sends again (NOSCRIPT) passes the same *deadline. Returns req->status. */
RK_INTERNAL int rk_route_call(rk_router *r, const rk_cmd *cmd, rk_req *req, int64_t *deadline);

/* Asynchronous: queues cmd; a->done runs exactly once, from rk_router_process. 0, or an
   error (ENOMEM; ECONN while the router is being freed) when nothing was queued.
   a->req.deadline must be set. Never waits on the network: on a cluster, while the slot
   map changes or is read, a is held back (written nowhere, in order) and ends with
   ETIMEDOUT if still held at its deadline. */
RK_INTERNAL int rk_route_queue(rk_router *r, const rk_cmd *cmd, rk_areq *a);
RK_INTERNAL void rk_areq_free(rk_areq *a);         /* releases a's copy buffer */

/* Driving the asynchronous requests from an event loop (one thread at a time). */
RK_INTERNAL int rk_router_fd(rk_router *r);
RK_INTERNAL int rk_router_events(rk_router *r);
RK_INTERNAL int rk_router_process(rk_router *r, int events);
RK_INTERNAL int rk_router_timeout_ms(rk_router *r);

/* Runs a conversation with every master at once (delete_all): start(ctx, i, n, conn,
   one_slot) queues the first requests for master i of n on conn with rk_conn_queue; their done
   callbacks may queue more on the same conn. one_slot: a command touching several keys
   must keep to keys of one slot (Redis Cluster's rule), so send one key per command. All masters' connections are driven together until none
   has a request left. start is called again for master i (on a fresh connection) when a
   pooled connection turns out to have been closed before any reply. 0, or an error
   reaching the masters (their requests' own errors go to their done callbacks). */
typedef int rk_start_fn(void *ctx, int i, int n, rk_conn *conn, int one_slot);
RK_INTERNAL int rk_route_each_master(rk_router *r, rk_start_fn *start, void *ctx, int64_t deadline);

/* The slot of the key prefix+key (Redis Cluster's CRC16, honouring a {hash tag}). */
RK_INTERNAL int rk_key_slot(const void *prefix, size_t plen, const void *key, size_t klen);
#ifndef REDKV_NO_CLUSTER
RK_INTERNAL uint16_t rk_crc16(const void *p, size_t n);
#endif

/* ==== The client-side cache's view of the topology (issue #16) ==== */
#ifndef REDKV_NO_CACHE
/* The configuration of the node that serves the key prefix+key now (its address in memory
   stays the node's while the router lives), or NULL when none is known. deadline > 0: as a
   blocking call finds it (reading the slot map or asking the sentinels if need be, within
   deadline); 0: without I/O, where an asynchronous request would go (event loop's thread). */
RK_INTERNAL const rk_config *rk_route_node_cfg(rk_router *r, const void *prefix, size_t plen,
                                               const void *key, size_t klen, int64_t deadline);
/* A number that moves whenever a cluster's keys may be served by another node than before
   (a slot changed owner: MOVED, a map read that differs; or a redirection followed: ASK);
   it only grows, and stays 0 without a cluster. */
RK_INTERNAL unsigned long rk_route_changes(rk_router *r);
#endif

#endif
