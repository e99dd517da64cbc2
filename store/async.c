/* async.c - the asynchronous forms and the event-loop driving calls. Requests of one client
 * share its async connection, pipelined; finished request records are kept for reuse, so
 * a steady stream of requests allocates nothing. */
#include <string.h>

#include "store.h"

struct rk_op {
    rk_req req;               /* first: a request is its op */
    enum rk_kind kind;
    redkv *store;
    redkv_cb *cb;
    void *arg;
    rk_op *next_free;
};

void rk_async_free_ops(rk_client *cl)
{
    while (cl->free_ops) {
        rk_op *next = cl->free_ops->next_free;
        resp_free(cl->free_ops);
        cl->free_ops = next;
    }
}

static void op_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_op *op = (rk_op *)req;
    redkv *s = op->store;
    rk_client *cl = s->cl;
    rk_result res;
    rk_interpret(op->kind, status, reply, &res);
    if (op->kind == OP_EXISTS && res.status == REDKV_OK)
        res.n = res.n > 0;
    redkv_cb *cb = op->cb;
    void *arg = op->arg;
    op->next_free = cl->free_ops;      /* recycled first: the callback may queue anew */
    cl->free_ops = op;
    cl->pending--;
    if (cb)
        cb(s, res.status, res.val, res.vlen, res.n, arg);
    rk_store_release(s);
}

static int queue(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    rk_client *cl = s->cl;
    if (cl->cluster)
        return rk_error(REDKV_EINVAL, "asynchronous requests are not supported on a Redis "
                        "Cluster store (use the blocking calls)");
    rk_op *op = cl->free_ops;
    if (op)
        cl->free_ops = op->next_free;
    else if (!(op = resp_malloc(sizeof *op)))
        return rk_error(REDKV_ENOMEM, "out of memory");
    rk_conn *c = &cl->async;
    size_t start = c->out.len;
    int rc = rk_encode(&c->out, s, kind, a);
    if (rc) {
        op->next_free = cl->free_ops;
        cl->free_ops = op;
        return rc;
    }
    memset(&op->req, 0, sizeof op->req);
    op->req.len = c->out.len - start;
    op->req.deadline = rk_deadline(cl->cfg.command_timeout_ms);
    op->req.done = op_done;
    op->kind = kind;
    op->store = s;
    op->cb = cb;
    op->arg = arg;
    rk_ref_add(&s->refs, 1);
    cl->pending++;
    rk_conn_push(c, &op->req);
    rk_conn_start(c);
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

int redkv_fd(redkv *s) { return usable(s) ? s->cl->async.fd : -1; }
int redkv_events(redkv *s) { return usable(s) ? rk_conn_events(&s->cl->async) : 0; }
int redkv_timeout_ms(redkv *s) { return usable(s) ? rk_conn_timeout_ms(&s->cl->async) : -1; }
int redkv_pending(redkv *s) { return usable(s) ? s->cl->pending : 0; }

int redkv_process(redkv *s, int events)
{
    if (!usable(s))
        return rk_error(REDKV_EINVAL, "the store is NULL or closed");
    rk_client *cl = s->cl;
    if (cl->in_process)
        return rk_error(REDKV_EINVAL, "redkv_process called from inside a callback");
    cl->in_process = 1;
    int rc = rk_conn_process(&cl->async, events);
    rk_client_finish_process(cl);      /* may shut the client down: cl is not used after */
    return rc;
}
