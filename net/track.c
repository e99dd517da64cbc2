/* track.c - the client-side cache's tracking connections: one RESP3 connection per node that
 * serves the client's keys (one server, the Sentinel master of the moment, each Redis
 * Cluster master), opened when the first read of a key of that node needs it, with CLIENT
 * TRACKING on BCAST over the client's key prefix. It sends nothing after its handshake; the
 * node pushes invalidations to it, and each cache hit first reads in those of the key's node
 * (one non-blocking recv), so a hit never serves a value whose invalidation has reached
 * our socket. Its losses are told to the cache, which then forgets everything. */
#include "fmacros.h"

#ifndef REDKV_NO_CACHE

#include <string.h>

#include "conn.h"

/* After a failed connect, hits and fills wait this long before the next try (meanwhile
   every read goes to the server): a server that is down costs no connect per read. */
#define TRACK_RETRY_MS 1000
/* Nodes tracked at most: a cluster's masters, and the masters a Sentinel names over time.
   A key of a node past these is read from the server, never from memory. */
#define TRACK_MAX_NODES 64

struct rk_tracker {
    const rk_config *node;    /* the router's node this tracks (identity only) */
    rk_config cfg;            /* the node's, with RESP3 and tracking on; its own strings */
    rk_conn conn;             /* event-driven: never blocks a hit */
    rk_req ping;              /* the first command: its answer means tracking is on */
    rk_push_fn *fn;
    void *arg;
    int on;                   /* tracking on since the last fn(arg, NULL) */
    int refused;              /* HELLO 3 or CLIENT TRACKING refused: never on */
    int64_t retry_at;
};

struct rk_tracking {
    rk_tracker *list[TRACK_MAX_NODES];
    int n;
    char *prefix;
    size_t plen;
    rk_push_fn *fn;
    void *arg;
};

static int track_encode_ping(resp_buf *out, const void *arg)
{
    (void)arg;
    return resp_encode_header(out, 1) | resp_encode_arg(out, "PING", 4);
}

/* The handshake (HELLO 3, SELECT, CLIENT TRACKING) and PING are answered, or failed. A
   refusal by the server (an error reply to HELLO or TRACKING: EAUTH from the handshake) is
   for good; a lost or refused connection is tried again later. */
static void track_ping_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_tracker *t = req->ctx;
    if (status == REDKV_OK && reply->type != RESP_ERROR) {
        t->on = 1;
        t->fn(t->arg, NULL);               /* nothing learnt before is known to be current */
        return;
    }
    t->refused = status == REDKV_EAUTH || (status == REDKV_OK && reply->type == RESP_ERROR);
    t->retry_at = rk_now_ms() + TRACK_RETRY_MS;
}

static void track_free_one(rk_tracker *t)
{
    rk_conn_free(&t->conn);
    resp_free(t->cfg.host);
    resp_free(t->cfg.path);
    resp_free(t->cfg.where);
    resp_free(t);
}

/* A copy of s for a tracker (NULL stays NULL); *bad set when memory ran out. */
static char *track_copy(const char *s, int *bad)
{
    char *copy = s ? rk_strndup(s, strlen(s)) : NULL;
    *bad |= s && !copy;
    return copy;
}

/* A tracker of node, with the set's prefix and handler. Its address strings are its own
   copies, so that it may outlive the router's nodes while the client shuts down. */
static rk_tracker *track_new_one(rk_tracking *set, const rk_config *node)
{
    rk_tracker *t = resp_malloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    int bad = 0;
    t->node = node;
    t->cfg = *node;                        /* user, password, timeouts, transport: shared */
    t->cfg.tls_owned = 0;                  /* the client's config frees what it owns */
    t->cfg.nseeds = 0;
    t->cfg.seeds = NULL;
    t->cfg.host = track_copy(node->host, &bad);
    t->cfg.path = track_copy(node->path, &bad);
    t->cfg.where = track_copy(node->where, &bad);
    t->cfg.resp3 = t->cfg.tracking = 1;
    t->cfg.track_prefix = set->prefix;
    t->cfg.track_plen = set->plen;
    t->cfg.push_fn = set->fn;
    t->cfg.push_arg = set->arg;
    t->fn = set->fn;
    t->arg = set->arg;
    rk_conn_init(&t->conn, &t->cfg, 0);
    if (bad) {
        track_free_one(t);
        return NULL;
    }
    return t;
}

int rk_tracking_new(const char *prefix, size_t plen, rk_push_fn *fn, void *arg,
                    rk_tracking **out)
{
    rk_tracking *set = resp_malloc(sizeof *set);
    char *p = rk_strndup(prefix, plen);
    if (!set || !p) {
        resp_free(set);
        resp_free(p);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memset(set, 0, sizeof *set);
    set->prefix = p;
    set->plen = plen;
    set->fn = fn;
    set->arg = arg;
    *out = set;
    return REDKV_OK;
}

void rk_tracking_free(rk_tracking *set)
{
    if (!set)
        return;
    for (int i = 0; i < set->n; i++)
        track_free_one(set->list[i]);
    resp_free(set->prefix);
    resp_free(set);
}

rk_tracker *rk_tracking_for(rk_tracking *set, const rk_config *node, int create)
{
    for (int i = 0; i < set->n; i++)
        if (set->list[i]->node == node)
            return set->list[i];
    if (!create || set->n == TRACK_MAX_NODES)
        return NULL;
    rk_tracker *t = track_new_one(set, node);
    if (t)
        set->list[set->n++] = t;
    return t;
}

/* Starts a connect with its PING queued, unless one runs or a retry must wait. */
static void track_start(rk_tracker *t)
{
    if (t->conn.head || rk_now_ms() < t->retry_at)
        return;
    memset(&t->ping, 0, sizeof t->ping);
    t->ping.done = track_ping_done;
    t->ping.ctx = t;
    if (rk_conn_queue(&t->conn, &t->ping, track_encode_ping, NULL, 0) == REDKV_OK)
        rk_conn_start(&t->conn);
}

/* One step of the connect: waits up to wait_ms for what the connection waits on. */
static void track_step(rk_tracker *t, int wait_ms)
{
    rk_conn_process(&t->conn, rk_conn_ready(&t->conn, wait_ms));
}

int rk_tracker_poll(rk_tracker *t, int wait_ms)
{
    if (t->refused)
        return REDKV_ECONFIG;
    rk_conn *c = &t->conn;
    if (t->on) {
        rk_conn_process(c, REDKV_READ);    /* the hit's one system call: a recv */
        if (c->fd >= 0)
            return 1;
        t->on = 0;                         /* lost: invalidations may have been missed */
        t->fn(t->arg, NULL);
    }
    track_start(t);
    int64_t until = rk_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    do {
        int64_t left = until - rk_now_ms();
        track_step(t, left > 0 ? (int)left : 0);
    } while (!t->on && !t->refused && c->head && rk_now_ms() < until);
    return t->refused ? REDKV_ECONFIG : t->on;
}

#endif
