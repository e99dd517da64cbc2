/* topology.h - net/'s own: the nodes of a router and the topologies that pick among
 * them (router.c: one server; cluster.c: Redis Cluster). */
#ifndef REDKV_NET_TOPOLOGY_H
#define REDKV_NET_TOPOLOGY_H

#include "fmacros.h"
#include "conn.h"
#include "router.h"

/* A prelude an async connection was sent (the SCRIPT LOAD of one script): the renew and the
   counter scripts', so two kinds; a third kind would go without (its EVALSHA then meets
   NOSCRIPT once and is sent again with the text). */
#define RK_PRELUDES 2
typedef struct rk_prelude {
    rk_encode_fn *encode;     /* which prelude; NULL: the slot is free */
    rk_req req;               /* the last one queued */
    unsigned long sent_for;   /* async.drops + 1 when it was queued; 0: never */
} rk_prelude;

/* One server: its address (host, port; user, password, timeouts shared with the client's
   configuration), a pool of blocking connections, and the asynchronous connection. */
typedef struct rk_node {
    rk_config cfg;
    rk_pool pool;
    rk_conn async;
    int reg_fd, reg_events;   /* what the router's epoll descriptor was told of async */
    rk_prelude preludes[RK_PRELUDES];   /* async: one per kind of prelude (SCRIPT LOAD) */
} rk_node;

/* A topology: how a router picks its nodes. NULL redirected/refresh: it has none. */
typedef struct rk_topology {
    /* The node serving slot, reading the map first if need be (blocking, within deadline). */
    int (*node_for)(rk_router *r, int slot, int64_t deadline, rk_node **out);
    /* The same without any I/O: the best guess now (never NULL). */
    rk_node *(*node_now)(rk_router *r, int slot);
    /* A redirection to host:port was answered: OK with the node (for MOVED, the slot now
       points there), or ESERVER / ENOMEM with the message set. No I/O. */
    int (*redirected)(rk_router *r, int slot, const char *addr, size_t len, int moved,
                      rk_node **out);
    /* A node could not be reached, or a failover is under way: learn the map anew
       (blocking, within deadline), asking avoid last. */
    void (*refresh)(rk_router *r, const rk_node *avoid, int64_t deadline);
    /* The masters that hold every key: their count, in a new array (*out, freed with
       resp_free), or an error < 0. */
    int (*masters)(rk_router *r, int64_t deadline, rk_node ***out);
    void (*free)(rk_router *r);
} rk_topology;

struct rk_router {
    const rk_config *cfg;
    const rk_topology *topo;
    void *topo_state;         /* the topology's own (the cluster's slot map) */
    int multi;                /* asynchronous requests may go to many nodes: one epoll fd */
    rk_node **nodes;          /* never removed while the router lives: pointers stay valid */
    int nnodes, cap;
    int async_stale;          /* an asynchronous request lost its node: refresh first */
    rk_areq *delayed;         /* asynchronous requests to send again later (TRYAGAIN) */
    int epfd;                 /* multi: readable when any node's async connection is ready */
    unsigned long redirects;  /* MOVED and ASK followed, blocking or not (rk_route_changes) */
#ifndef REDKV_NO_CLUSTER
    /* A cluster's asynchronous order (router.c): requests held back, in order, while one
       sent under an older map is unanswered or the map is being read. */
    rk_areq *held, *held_tail;
    int64_t held_soonest;     /* the earliest deadline among the held */
    unsigned long gen_seen;   /* the latest map generation the async side has seen */
    long sent_now, sent_before;   /* unanswered, sent at gen_seen / at an older one */
    struct rk_map_read *reading;  /* the map being read asynchronously, or NULL */
    int64_t read_deadline;
    const rk_node *lost;      /* the node an asynchronous request last lost: asked last */
    int closing;              /* rk_router_free: nothing is sent any more */
#endif
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;     /* the node table */
#endif
};

/* A node with the client's settings at host:port (host NULL: the configuration's own
   address, a unix socket maybe); NULL when memory ran out. rk_router_add appends it to
   the router's table (the caller holds the router's lock): 0, or -1 without memory. */
RK_INTERNAL rk_node *rk_node_new(const rk_config *base, const char *host, size_t hlen, int port);
RK_INTERNAL void rk_node_free(rk_node *node);
RK_INTERNAL int rk_router_add(rk_router *r, rk_node *node);

/* For topologies: the node at host:port, added if new; NULL when memory ran out or there
   are too many. rk_router_node_at: the i-th node, or NULL past the end. */
#ifndef REDKV_NO_CLUSTER
RK_INTERNAL rk_node *rk_router_node(rk_router *r, const char *host, size_t hlen, int port);
#endif
RK_INTERNAL rk_node *rk_router_node_at(rk_router *r, int i);
/* Reads "host:port" (an IPv6 host maybe in brackets): 0, or -1 when it does not read. */
#ifndef REDKV_NO_CLUSTER
RK_INTERNAL int rk_split_addr(const char *addr, size_t len, const char **host, size_t *hlen, int *port);
#endif

/* Makes r a Redis Cluster router over the configuration's seeds (cluster.c): OK, ENOMEM,
   or ECONFIG when built with REDKV_NO_CLUSTER. */
RK_INTERNAL int rk_cluster_attach(rk_router *r);

#ifndef REDKV_NO_CLUSTER
/* For the asynchronous path on a cluster (router.c). rk_cluster_place: node_now of slot,
   with the map's generation (gen may be NULL), read together (the generation moves whenever a slot changes
   owner: a MOVED learnt, a map read that differs). */
RK_INTERNAL rk_node *rk_cluster_place(rk_router *r, int slot, unsigned long *gen);
/* Reading the map without blocking: CLUSTER SLOTS on one node's async connection at a
   time, the nodes asked in the blocking refresh's order (avoid last). rk_map_read_new: no
   I/O, the scratch map allocated (NULL: no memory). rk_map_read_next: queues the request
   (its done and ctx given) on the next node's async connection and returns that node (the
   caller starts it), or NULL when none is left. rk_map_read_take: done's status and reply:
   OK when the map read was installed, else the error. */
typedef struct rk_map_read rk_map_read;
RK_INTERNAL rk_map_read *rk_map_read_new(rk_router *r, const rk_node *avoid);
RK_INTERNAL rk_node *rk_map_read_next(rk_map_read *rd, rk_done_fn *done, void *ctx,
                                      int64_t deadline);
RK_INTERNAL int rk_map_read_take(rk_map_read *rd, int status, const resp_reply *reply);
RK_INTERNAL void rk_map_read_free(rk_map_read *rd);
#endif

/* Makes r a Redis Sentinel router over the configuration's sentinels (sentinel.c): OK,
   ENOMEM, or ECONFIG when built with REDKV_NO_SENTINEL. rk_sentinel_follow, from
   rk_router_process only (it may run callbacks): after a lost connection asks the sentinels
   again, and moves the asynchronous requests not yet written to a new master. */
RK_INTERNAL int rk_sentinel_attach(rk_router *r);
RK_INTERNAL void rk_sentinel_follow(rk_router *r);

#endif
