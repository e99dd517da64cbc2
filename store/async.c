/* async.c - the asynchronous forms and the event-loop driving calls. Requests of one client
 * go through its router, pipelined on each node's asynchronous connection; finished request
 * records are kept for reuse, so a steady stream of requests allocates nothing. */
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
#ifndef REDKV_NO_CACHE
    char *key;                /* a write's key, for the cache to forget when it is done */
    size_t klen, kcap;
#endif
};

void rk_async_free_ops(rk_client *cl)
{
    while (cl->free_ops) {
        rk_op *next = cl->free_ops->next_free;
        rk_areq_free(&cl->free_ops->areq);
#ifndef REDKV_NO_CACHE
        resp_free(cl->free_ops->key);
#endif
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

#ifndef REDKV_NO_CACHE
static int is_write(enum rk_kind kind)
{
    return kind == OP_SET || kind == OP_DELETE || kind == OP_RENEW_EVAL;
}

/* A copy of a write's key in op (its buffer reused from one request to the next). */
static int keep_key(rk_op *op, const rk_args *a)
{
    if (a->klen > op->kcap) {
        char *k = resp_realloc(op->key, a->klen);
        if (!k)
            return rk_error(REDKV_ENOMEM, "out of memory");
        op->key = k;
        op->kcap = a->klen;
    }
    if (a->klen)
        memcpy(op->key, a->key, a->klen);
    op->klen = a->klen;
    return REDKV_OK;
}
#endif

static void op_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_op *op = (rk_op *)req;
    redkv *s = op->store;
    rk_client *cl = s->cl;
    rk_result res;
    rk_interpret(op->kind, status, reply, &res);
    if (op->kind == OP_EXISTS && res.status == REDKV_OK)
        res.n = res.n > 0;
#ifndef REDKV_NO_CACHE
    /* Our own writes, the renewals included, are not read back from memory. */
    if (cl->cache && is_write(op->kind))
        rk_cache_forget(s, op->key, op->klen);
#endif
    redkv_cb *cb = op->cb;
    void *arg = op->arg;
    recycle(cl, op);                   /* first: the callback may queue anew */
    cl->pending--;
    if (cb)
        cb(s, res.status, res.val, res.vlen, res.n, arg);
    rk_store_release(s);
}

static int queue(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    rk_client *cl = s->cl;
    rk_op *op = take_op(cl);
    if (!op)
        return REDKV_ENOMEM;
#ifndef REDKV_NO_CACHE
    if (cl->cache && is_write(kind) && keep_key(op, a) != REDKV_OK) {
        recycle(cl, op);
        return REDKV_ENOMEM;
    }
#endif
    rk_op_cmd oc;
    rk_op_cmd_init(&oc, s, kind, a);
    memset(&op->areq.req, 0, sizeof op->areq.req);
    op->areq.req.deadline = rk_deadline(cl->cfg.command_timeout_ms);
    op->areq.done = op_done;
    op->kind = kind;
    op->store = s;
    op->cb = cb;
    op->arg = arg;
    int rc = rk_route_queue(cl->router, &oc.cmd, &op->areq);
    if (rc != REDKV_OK) {
        recycle(cl, op);
        return rc;
    }
    rk_ref_add(&s->refs, 1);
    cl->pending++;
    return REDKV_OK;
}

int redkv_set_async(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
                    int64_t expires_in_ms, unsigned flags, redkv_cb *cb, void *arg)
{
    rk_args a = {key, val, klen, vlen, expires_in_ms, flags};
    int rc = rk_check_set(s, &a);
    /* A refusal here is EINVAL or ENOMEM only (SPEC): an oversized value is bad input. */
    return rc == REDKV_ETOOBIG ? REDKV_EINVAL : rc ? rc : queue(s, OP_SET, &a, cb, arg);
}

/* A renewing read always carries the script's text: with many requests in flight, a
   NOSCRIPT answer could not be retried without reordering them. */
int redkv_get_async(redkv *s, const void *key, size_t klen, int64_t renew_for_ms, redkv_cb *cb,
                    void *arg)
{
    rk_args a = {key, NULL, klen, 0, renew_for_ms, 0};
    int rc = rk_check_key(s, key, klen);
    if (!rc && renew_for_ms < 0)
        rc = rk_error(REDKV_EINVAL, "renew_for_ms must not be negative");
    return rc ? rc : queue(s, renew_for_ms > 0 ? OP_RENEW_EVAL : OP_GET, &a, cb, arg);
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
int redkv_timeout_ms(redkv *s) { return usable(s) ? rk_router_timeout_ms(s->cl->router) : -1; }
int redkv_pending(redkv *s) { return usable(s) ? s->cl->pending : 0; }

int redkv_process(redkv *s, int events)
{
    if (!usable(s))
        return rk_error(REDKV_EINVAL, "the store is NULL or closed");
    rk_client *cl = s->cl;
    if (cl->in_process)
        return rk_error(REDKV_EINVAL, "redkv_process called from inside a callback");
    cl->in_process = 1;
    int rc = rk_router_process(cl->router, events);
    rk_client_finish_process(cl);      /* may shut the client down: cl is not used after */
    return rc;
}
