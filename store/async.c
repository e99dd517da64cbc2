/* async.c - the asynchronous forms and the event-loop driving calls. Requests of one client
 * go through its router, pipelined on each node's asynchronous connection; finished request
 * records are kept for reuse, so a steady stream of requests allocates nothing.
 *
 * With the client-side cache, a plain read the cache can answer takes no round trip: its
 * answer is copied when it is queued (the cache's guarantee holds then) into the client's
 * list of hits, and its callback runs from redkv_process, after those of every request
 * queued before it (callbacks keep the order of the requests), before those queued after
 * it. The list and the values' buffer are reused: a steady stream of hits allocates
 * nothing. A read queued behind our own asynchronous write of the same key is not
 * answered from memory: it goes to the server behind the write. */
#include "fmacros.h"

#include <string.h>

#include "store.h"

struct rk_op {
    rk_areq areq;             /* first: the router's request is the op */
    enum rk_kind kind;
    redkv *store;
    redkv_cb *cb;
    void *arg;
    rk_op *next_free;
    /* A renewal or a count goes by EVALSHA; after NOSCRIPT it goes again with the script's
       text, from what is kept here. */
    resp_buf key;             /* its key */
    int64_t ms;
    char delta[24];           /* a count's delta, in decimal */
    size_t delta_len;
    int held;                 /* in the client's held list: HELD_RESENT or HELD_DONE */
    rk_result res;            /* HELD_DONE: the outcome, its value a copy */
    rk_op *next_held;
#ifndef REDKV_NO_CACHE
    uint64_t seq;             /* its place among the client's requests */
    rk_op *older, *newer;     /* the client's requests in flight (with a cache only) */
    rk_cache_fill fill;       /* a plain read that fills the cache with its reply */
#endif
};

#ifndef REDKV_NO_CACHE
/* A read answered from memory, waiting for its callback. */
struct rk_hit {
    redkv *store;
    redkv_cb *cb;
    void *arg;
    uint64_t seq;
    int status;
    int value;                /* a get's: it has a value (when status is OK) */
    int64_t n;
    size_t off, vlen;         /* its value in the client's hit_vals */
};
#endif

enum { HELD_NO, HELD_RESENT, HELD_DONE };

void rk_async_free_ops(rk_client *cl)
{
    while (cl->free_ops) {
        rk_op *next = cl->free_ops->next_free;
        rk_areq_free(&cl->free_ops->areq);
        resp_buf_free(&cl->free_ops->key);
        resp_free(cl->free_ops);
        cl->free_ops = next;
    }
}

static rk_op *take_op(rk_client *cl)
{
    rk_op *op = cl->free_ops;
    if (op) {
        cl->free_ops = op->next_free;
    } else if ((op = resp_malloc(sizeof *op)) != NULL) {
        memset(op, 0, sizeof *op);
    } else {
        rk_error(REDKV_ENOMEM, "out of memory");
    }
    return op;
}

static void recycle(rk_client *cl, rk_op *op)
{
    op->next_free = cl->free_ops;
    cl->free_ops = op;
}

/* Kinds sent by EVALSHA (those with an EVAL form, ops.c): their key (and delta) are kept to
   send them again after NOSCRIPT. */
#define BY_SHA(kind) (rk_eval_kind(kind) != (kind))

#ifndef REDKV_NO_CACHE
/* Writes the cache must forget the key of when they are done (renewals and counts too). */
static int is_write(enum rk_kind kind)
{
    return kind == OP_SET || kind == OP_DELETE || kind == OP_RENEW_SHA ||
           kind == OP_RENEW_EVAL || kind == OP_INCR_SHA || kind == OP_INCR_EVAL;
}
/* Plain reads the cache may answer, or fill with their reply. */
static int is_plain_read(enum rk_kind kind) { return kind == OP_GET || kind == OP_EXISTS; }
/* The key is kept for the cache to forget (writes) or fill (reads). */
#define KEEPS_KEY(cl, kind) \
    (BY_SHA(kind) || ((cl)->cache && (is_write(kind) || is_plain_read(kind))))
#else
#define KEEPS_KEY(cl, kind) BY_SHA(kind)
#endif

#ifndef REDKV_NO_CACHE
/* ---- reads answered from memory ------------------------------------------------------------ */

/* Room for one more hit record; 0, or -1 without memory. Records move (they are copied
   out before their callback runs); values never move while a callback runs. */
static int hit_room(rk_client *cl)
{
    if (cl->nhits < cl->hit_cap)
        return 0;
    if (cl->hit_head > 0) {            /* the front is called back: slide the rest down */
        memmove(cl->hits, cl->hits + cl->hit_head, (cl->nhits - cl->hit_head) * sizeof *cl->hits);
        cl->nhits -= cl->hit_head;
        cl->hit_head = 0;
        return 0;
    }
    size_t cap = cl->hit_cap ? cl->hit_cap * 2 : 16;
    rk_hit *hits = resp_realloc(cl->hits, cap * sizeof *hits);
    if (!hits)
        return -1;
    cl->hits = hits;
    cl->hit_cap = cap;
    return 0;
}

/* Room for vlen more bytes of values: 0, or -1 without memory. While a callback runs, its
   value is in hit_vals: growing then copies the values into a new buffer and keeps the old
   one until the callbacks have returned (run_hits frees it). */
static int hit_grow(rk_client *cl, size_t vlen)
{
    resp_buf *b = &cl->hit_vals;
    if (!cl->running_hits)
        return resp_buf_reserve(b, vlen ? vlen : 1);
    size_t cap = 2 * (b->cap + vlen);
    char *data = cl->nold < HIT_OLD_MAX ? resp_malloc(cap) : NULL;
    if (!data)
        return -1;
    if (b->len)
        memcpy(data, b->data, b->len);
    cl->hit_old[cl->nold++] = b->data;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* The cache's take: copies a hit's value to the end of hit_vals (under the cache's lock). */
static int hit_take(void *ctx, const char *val, size_t vlen)
{
    rk_client *cl = ctx;
    resp_buf *b = &cl->hit_vals;
    if ((!b->data || b->cap - b->len < vlen) && hit_grow(cl, vlen))
        return REDKV_ENOMEM;           /* the read goes to the server */
    if (vlen)
        memcpy(b->data + b->len, val, vlen);
    b->len += vlen;
    return REDKV_OK;
}

/* A plain read answered from memory: its hit is recorded for redkv_process. 1 when it was,
   else 0 and *fill says how the read that goes to the server fills the cache. */
static int read_cached(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg,
                       rk_cache_fill *fill)
{
    rk_client *cl = s->cl;
    memset(fill, 0, sizeof *fill);
    if (hit_room(cl) < 0)
        return 0;
    rk_hit *h = &cl->hits[cl->nhits];
    h->off = cl->hit_vals.len;
    if (!rk_cache_read_async(s, kind == OP_EXISTS, a->key, a->klen, hit_take, cl, &h->status,
                             &h->n, fill))
        return 0;
    h->vlen = cl->hit_vals.len - h->off;
    h->value = kind == OP_GET;
    h->store = s;
    h->cb = cb;
    h->arg = arg;
    h->seq = cl->seq++;
    cl->nhits++;
    rk_ref_add(&s->refs, 1);
    cl->pending++;
    return 1;
}

/* No callback runs: the buffers left by hit_grow go, and the hits still waiting move to
   the front of the list and their values to the front of hit_vals, so that a stream of
   hits that never empties the list reuses the same memory. */
static void hits_compact(rk_client *cl)
{
    while (cl->nold)
        resp_free(cl->hit_old[--cl->nold]);
    if (cl->hit_head == 0)
        return;
    size_t n = cl->nhits - cl->hit_head;
    size_t base = n ? cl->hits[cl->hit_head].off : cl->hit_vals.len;
    memmove(cl->hits, cl->hits + cl->hit_head, n * sizeof *cl->hits);
    for (size_t i = 0; i < n; i++)
        cl->hits[i].off -= base;
    if (cl->hit_vals.len > base)
        memmove(cl->hit_vals.data, cl->hit_vals.data + base, cl->hit_vals.len - base);
    cl->hit_vals.len -= base;
    cl->hit_head = 0;
    cl->nhits = n;
}

/* Calls back, in order, the hits queued before request number before, and before this call
   (a callback that queues a hit each time must not keep redkv_process from returning: those
   wait for the next call). When the client shuts down they get ECONN, as every request
   left then does. */
static void run_hits(rk_client *cl, uint64_t before)
{
    int nested = cl->running_hits;
    cl->running_hits = 1;
    if (before > cl->seq)
        before = cl->seq;
    while (cl->hit_head < cl->nhits && cl->hits[cl->hit_head].seq < before) {
        rk_hit h = cl->hits[cl->hit_head++];     /* a copy: a callback may add hits */
        int status = cl->closing ? REDKV_ECONN : h.status;
        const char *val = status == REDKV_OK && h.value ? cl->hit_vals.data + h.off : NULL;
        cl->pending--;
        if (h.cb)
            h.cb(h.store, status, val, val ? h.vlen : 0, status == REDKV_ECONN ? 0 : h.n, h.arg);
        rk_store_release(h.store);
    }
    cl->running_hits = nested;
    if (!nested)
        hits_compact(cl);
}

/* The number of the oldest request in flight, or UINT64_MAX when none is. */
static uint64_t oldest_in_flight(const rk_client *cl)
{
    return cl->first ? cl->first->seq : UINT64_MAX;
}

#define MIN_SEQ(a, b) ((a) < (b) ? (a) : (b))

/* A hit can be called back now: nothing queued before it is still waiting. */
static int hit_ready(const rk_client *cl)
{
    return cl->hit_head < cl->nhits && cl->hits[cl->hit_head].seq < oldest_in_flight(cl);
}

static void link_op(rk_client *cl, rk_op *op)
{
    op->seq = cl->seq++;
    op->newer = NULL;
    op->older = cl->last;
    if (cl->last)
        cl->last->newer = op;
    else
        cl->first = op;
    cl->last = op;
}

static void unlink_op(rk_client *cl, rk_op *op)
{
    if (op->older)
        op->older->newer = op->newer;
    else
        cl->first = op->newer;
    if (op->newer)
        op->newer->older = op->older;
    else
        cl->last = op->older;
}

void rk_async_close_hits(rk_client *cl)
{
    run_hits(cl, UINT64_MAX);          /* and frees the old buffers */
    resp_free(cl->hits);
    resp_buf_free(&cl->hit_vals);
    cl->hits = NULL;
    cl->hit_cap = 0;
}
#endif

/* Calls the owner back with res and lets go of op. */
static void call_back(rk_op *op, const rk_result *res)
{
    redkv *s = op->store;
    rk_client *cl = s->cl;
#ifndef REDKV_NO_CACHE
    uint64_t seq = UINT64_MAX;
    if (cl->cache) {
        unlink_op(cl, op);
        seq = op->seq;
        /* Our own writes, the renewals included, are not read back from memory. */
        if (is_write(op->kind))
            rk_cache_write_end(s, op->key.data, op->key.len);
    }
#endif
    redkv_cb *cb = op->cb;
    void *arg = op->arg;
    recycle(cl, op);                   /* first: the callback may queue anew */
#ifndef REDKV_NO_CACHE
    if (cl->cache)
        run_hits(cl, seq);             /* the hits queued before op are called back first */
#endif
    cl->pending--;
    if (cb)
        cb(s, res->status, res->val, res->vlen, res->n, arg);
    rk_store_release(s);
}

static void hold(rk_client *cl, rk_op *op, int how)
{
    op->held = how;
    op->next_held = NULL;
    if (cl->held_tail)
        cl->held_tail->next_held = op;
    else
        cl->held = op;
    cl->held_tail = op;
}

/* Keeps op's outcome for later: its value copied out of the read buffer. */
static void keep(rk_op *op, const rk_result *res)
{
    op->res = *res;
    op->res.val = NULL;
    if (res->val && res->status == REDKV_OK) {
        char *copy = resp_malloc(res->vlen ? res->vlen : 1);
        if (copy)
            memcpy(copy, res->val, res->vlen);
        else
            op->res.status = rk_error(REDKV_ENOMEM, "out of memory for a value");
        op->res.val = copy;
    }
}

/* Calls back, in order, every held request whose outcome is known. */
static void release_held(rk_client *cl)
{
    while (cl->held && cl->held->held == HELD_DONE) {
        rk_op *op = cl->held;
        cl->held = op->next_held;
        if (!cl->held)
            cl->held_tail = NULL;
        op->held = HELD_NO;
        rk_result res = op->res;
        call_back(op, &res);
        resp_free((char *)res.val);
    }
}

static int send_op(rk_op *op, const rk_args *a);

/* NOSCRIPT (after SCRIPT FLUSH, a restart, a failover): the renewal or count goes again
   with the script's text, which caches it anew. Requests already in flight behind it are
   answered first: their callbacks are held until it is, so that callbacks keep the order of
   the requests. */
static int resend_with_text(rk_op *op)
{
    rk_args a = {op->key.data, op->delta, op->key.len, op->delta_len, op->ms, 0};
    op->kind = rk_eval_kind(op->kind);
    return send_op(op, &a);
}

static void op_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_op *op = (rk_op *)req;
    rk_client *cl = op->store->cl;
    rk_result res;
#ifndef REDKV_NO_CACHE
    if (op->fill.ticket)               /* the cache's read: its reply fills the cache */
        rk_cache_read_reply(op->store, op->kind == OP_EXISTS, op->key.data, op->key.len,
                            &op->fill, status, reply, &res);
    else
#endif
        rk_interpret(op->kind, status, reply, &res);
    if (op->kind == OP_EXISTS && res.status == REDKV_OK)
        res.n = res.n > 0;
    if (res.noscript && resend_with_text(op) == REDKV_OK) {
        if (op->held == HELD_NO)
            hold(cl, op, HELD_RESENT);
        return;
    }
    if (op->held == HELD_RESENT) {     /* its second answer: the first of those held */
        keep(op, &res);
        op->held = HELD_DONE;
        release_held(cl);
    } else if (cl->held) {
        keep(op, &res);
        hold(cl, op, HELD_DONE);
    } else {
        call_back(op, &res);
    }
}

/* Gives op (filled) to the router for the command of kind op->kind on a. */
static int send_op(rk_op *op, const rk_args *a)
{
    op->areq.done = op_done;
#ifndef REDKV_NO_CACHE
    if (op->fill.ticket) {             /* the read script (value and expiry), or PTTL */
        rk_cache_cmd cc;
        rk_cache_read_cmd(&cc, op->store, op->kind == OP_EXISTS, a->key, a->klen);
        return rk_route_queue(op->store->cl->router, &cc.oc.cmd, &op->areq);
    }
#endif
    rk_op_cmd oc;
    rk_op_cmd_init(&oc, op->store, op->kind, a);
    return rk_route_queue(op->store->cl->router, &oc.cmd, &op->areq);
}

static int queue(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    rk_client *cl = s->cl;
#ifndef REDKV_NO_CACHE
    rk_cache_fill fill = {0, NULL, 0};
    if (cl->cache && is_plain_read(kind) && read_cached(s, kind, a, cb, arg, &fill))
        return REDKV_OK;               /* answered from memory: called back from process */
#endif
    rk_op *op = take_op(cl);
    if (!op)
        return REDKV_ENOMEM;
    memset(&op->areq.req, 0, sizeof op->areq.req);
    op->areq.req.deadline = rk_deadline(cl->cfg.command_timeout_ms);
    op->kind = kind;
    op->store = s;
    op->cb = cb;
    op->arg = arg;
    op->held = HELD_NO;
    op->key.len = 0;
    op->ms = a->ms;
    op->delta_len = 0;
    if (kind == OP_INCR_SHA)           /* the delta's digits, kept to send it again */
        memcpy(op->delta, a->val, op->delta_len = a->vlen);
#ifndef REDKV_NO_CACHE
    op->fill = fill;
#endif
    int rc = REDKV_OK;
    /* the key is kept to send a renewal or count again after NOSCRIPT, and for the cache */
    if (KEEPS_KEY(cl, kind) && resp_buf_reserve(&op->key, a->klen ? a->klen : 1))
        rc = rk_error(REDKV_ENOMEM, "out of memory");
    else if (KEEPS_KEY(cl, kind) && a->klen)
        memcpy(op->key.data, a->key, op->key.len = a->klen);
    if (rc == REDKV_OK)
        rc = send_op(op, a);
    if (rc != REDKV_OK) {
        recycle(cl, op);
        return rc;
    }
    rk_ref_add(&s->refs, 1);
    cl->pending++;
#ifndef REDKV_NO_CACHE
    if (cl->cache) {
        link_op(cl, op);
        if (is_write(kind))            /* later reads of the key wait for it */
            rk_cache_write_begin(s, a->key, a->klen);
    }
#endif
    return REDKV_OK;
}

int rk_queue_op(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    return queue(s, kind, a, cb, arg);
}

int redkv_set_async(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
                    int64_t expires_in_ms, unsigned flags, redkv_cb *cb, void *arg)
{
    rk_args a = {key, val, klen, vlen, expires_in_ms, flags};
    int rc = rk_check_set(s, &a);
    /* A refusal here is EINVAL or ENOMEM only (SPEC): an oversized value is bad input. */
    return rc == REDKV_ETOOBIG ? REDKV_EINVAL : rc ? rc : queue(s, OP_SET, &a, cb, arg);
}

/* A renewing read goes by EVALSHA (40 bytes of SHA1, not the script's text); a NOSCRIPT
   answer sends it again with the text, callbacks kept in order (op_done). */
int redkv_get_async(redkv *s, const void *key, size_t klen, int64_t renew_for_ms, redkv_cb *cb,
                    void *arg)
{
    rk_args a = {key, NULL, klen, 0, renew_for_ms, 0};
    int rc = rk_check_key(s, key, klen);
    if (!rc && renew_for_ms < 0)
        rc = rk_error(REDKV_EINVAL, "renew_for_ms must not be negative");
    return rc ? rc : queue(s, renew_for_ms > 0 ? OP_RENEW_SHA : OP_GET, &a, cb, arg);
}

static int key_async(redkv *s, enum rk_kind kind, const void *key, size_t klen, redkv_cb *cb,
                     void *arg)
{
    rk_args a = {key, NULL, klen, 0, 0, 0};
    int rc = rk_check_key(s, key, klen);
    return rc ? rc : queue(s, kind, &a, cb, arg);
}

int redkv_delete_async(redkv *s, const void *key, size_t klen, redkv_cb *cb, void *arg)
{
    return key_async(s, OP_DELETE, key, klen, cb, arg);
}

int redkv_exists_async(redkv *s, const void *key, size_t klen, redkv_cb *cb, void *arg)
{
    return key_async(s, OP_EXISTS, key, klen, cb, arg);
}

int redkv_expires_in_async(redkv *s, const void *key, size_t klen, redkv_cb *cb, void *arg)
{
    return key_async(s, OP_PTTL, key, klen, cb, arg);
}

/* ---- driving ------------------------------------------------------------------------------ */

static int usable(const redkv *s) { return s && !s->closed; }

/* On a cluster: an epoll descriptor, readable when any node's connection is ready. */
int redkv_fd(redkv *s) { return usable(s) ? rk_router_fd(s->cl->router) : -1; }
int redkv_events(redkv *s) { return usable(s) ? rk_router_events(s->cl->router) : 0; }
/* 0 while a hit waits for its callback: the loop calls redkv_process at once. */
int redkv_timeout_ms(redkv *s)
{
    if (!usable(s))
        return -1;
#ifndef REDKV_NO_CACHE
    if (hit_ready(s->cl))
        return 0;
#endif
    return rk_router_timeout_ms(s->cl->router);
}
int redkv_pending(redkv *s) { return usable(s) ? s->cl->pending : 0; }

int redkv_process(redkv *s, int events)
{
    if (!usable(s))
        return rk_error(REDKV_EINVAL, "the store is NULL or closed");
    rk_client *cl = s->cl;
    if (cl->in_process)
        return rk_error(REDKV_EINVAL, "redkv_process called from inside a callback");
    cl->in_process = 1;
#ifndef REDKV_NO_CACHE
    /* Hits queued by this call's callbacks wait for the next call (timeout 0 says so). */
    uint64_t queued = cl->seq;
    run_hits(cl, MIN_SEQ(oldest_in_flight(cl), queued));  /* before any reply: queued before */
#endif
    int rc = rk_router_process(cl->router, events);
#ifndef REDKV_NO_CACHE
    run_hits(cl, MIN_SEQ(oldest_in_flight(cl), queued));  /* behind a request just answered */
#endif
    rk_client_finish_process(cl);      /* may shut the client down: cl is not used after */
    return rc;
}
