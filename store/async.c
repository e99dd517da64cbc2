/* async.c - the asynchronous forms and the event-loop driving calls. Requests of one client
 * share its async connection, pipelined; finished request records are kept for reuse, so
 * a steady stream of requests allocates nothing.
 *
 * On a Redis Cluster each master has an async connection of its own, and one epoll
 * descriptor stands for all of them (net/cluster.c). A request keeps a copy of its command,
 * so that a MOVED or ASK answer can send it again to the node named, within its deadline. */
#include <string.h>

#include "store.h"

#define MAX_REDIRECTS 8

struct rk_op {
    rk_req req;               /* first: a request is its op */
    enum rk_kind kind;
    redkv *store;
    redkv_cb *cb;
    void *arg;
    rk_op *next_free;
    /* Redis Cluster */
    resp_buf cmd;             /* the encoded command, to send again after a redirection */
    rk_req asking;            /* ASKING before it, after an ASK */
    int slot, tries;
};

void rk_async_free_ops(rk_client *cl)
{
    while (cl->free_ops) {
        rk_op *next = cl->free_ops->next_free;
        resp_buf_free(&cl->free_ops->cmd);
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

static void asking_done(rk_req *req, int status, const resp_reply *reply)
{
    (void)req;
    (void)status;
    (void)reply;                       /* a failure shows in the command's own reply */
}

static void op_done(rk_req *req, int status, const resp_reply *reply);

/* Cluster: queues op's command on node's connection (after ASKING when asking). */
static int send_op(rk_cluster *cc, rk_op *op, rk_node *node, int asking)
{
    rk_conn *c = &node->async;
    size_t start = c->out.len;
    int rc = 0;
    if (asking)
        rc = resp_encode_header(&c->out, 1) | resp_encode_arg(&c->out, "ASKING", 6);
    if (rc || resp_buf_reserve(&c->out, op->cmd.len)) {
        c->out.len = start;
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    if (asking) {
        memset(&op->asking, 0, sizeof op->asking);
        op->asking.len = c->out.len - start;
        op->asking.deadline = op->req.deadline;
        op->asking.done = asking_done;
        rk_conn_push(c, &op->asking);
    }
    memcpy(c->out.data + c->out.len, op->cmd.data, op->cmd.len);
    c->out.len += op->cmd.len;
    op->req.len = op->cmd.len;
    op->req.done = op_done;
    rk_conn_push(c, &op->req);
    rk_conn_start(c);
    rk_cluster_async_sync_node(cc, node);
    return REDKV_OK;
}

/* Cluster: a MOVED or ASK answer sends op on to the node named: 1 when it went, 0 when the
   reply is to be delivered, or an error (ENOMEM) to deliver instead. */
static int redirect(rk_client *cl, rk_op *op, const resp_reply *reply)
{
    const char *addr;
    size_t len;
    rk_node *to;
    int r = rk_redirect(reply, &addr, &len);
    (void)cl;                          /* unused with REDKV_NO_CLUSTER */
    if ((r != RK_MOVED && r != RK_ASK) || op->tries >= MAX_REDIRECTS ||
        rk_now_ms() >= op->req.deadline)
        return 0;
    int rc = rk_cluster_node_at(RK_CLUSTER(cl), addr, len, &to);
    if (rc == REDKV_ESERVER)
        return 0;                      /* the MOVED reply itself says what went wrong */
    if (rc)
        return rc;
    if (r == RK_MOVED)
        rk_cluster_set_slot(RK_CLUSTER(cl), op->slot, to);
    op->tries++;
    rc = send_op(RK_CLUSTER(cl), op, to, r == RK_ASK);
    return rc ? rc : 1;
}

static void op_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_op *op = (rk_op *)req;
    redkv *s = op->store;
    rk_client *cl = s->cl;
    rk_result res;
    if (RK_CLUSTER(cl) && status == REDKV_OK && reply->type == RESP_ERROR) {
        int sent = redirect(cl, op, reply);
        if (sent == 1)
            return;
        if (sent < 0) {
            status = sent;             /* no reply to read: the error is the outcome */
            reply = NULL;
        }
    }
    if (RK_CLUSTER(cl) && status == REDKV_ECONN)
        cl->async_stale = 1;           /* the next request reads the slot map again */
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

/* Cluster: the request goes to its slot's master. The slot map is read (a blocking round
   trip, bounded by the timeouts) by the first request, and again after a connection to a
   node was lost; a slot still unknown goes to any node, whose MOVED answer then says. */
static int queue_cluster(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    rk_client *cl = s->cl;
    rk_cluster *cc = RK_CLUSTER(cl);
    if (rk_cluster_async_fd(cc) < 0)
        return rk_error(REDKV_EINVAL, "asynchronous requests on a Redis Cluster store need "
                        "epoll (Linux)");
    rk_op *op = take_op(cl);
    if (!op)
        return REDKV_ENOMEM;
    op->cmd.len = 0;
    int rc = rk_encode(&op->cmd, s, kind, a);
    if (rc) {
        op->next_free = cl->free_ops;
        cl->free_ops = op;
        return rc;
    }
    if (cl->async_stale || !rk_cluster_has_map(cc)) {
        cl->async_stale = 0;
        rk_cluster_refresh(cc, rk_deadline(cl->cfg.command_timeout_ms), NULL);
    }
    op->slot = rk_key_slot(s->prefix, s->prefix_len, a->key, a->klen);
    rk_node *node = rk_cluster_lookup(cc, op->slot);
    memset(&op->req, 0, sizeof op->req);
    op->req.deadline = rk_deadline(cl->cfg.command_timeout_ms);
    op->kind = kind;
    op->store = s;
    op->cb = cb;
    op->arg = arg;
    op->tries = 0;
    if ((rc = send_op(cc, op, node, 0)) != REDKV_OK) {
        op->next_free = cl->free_ops;
        cl->free_ops = op;
        return rc;
    }
    rk_ref_add(&s->refs, 1);
    cl->pending++;
    return REDKV_OK;
}

static int queue(redkv *s, enum rk_kind kind, const rk_args *a, redkv_cb *cb, void *arg)
{
    rk_client *cl = s->cl;
    if (RK_CLUSTER(cl))
        return queue_cluster(s, kind, a, cb, arg);
    rk_op *op = take_op(cl);
    if (!op)
        return REDKV_ENOMEM;
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

/* On a cluster: the epoll descriptor (readable when any node's connection is ready), once
   the first request made it. */
int redkv_fd(redkv *s)
{
    if (!usable(s))
        return -1;
    return RK_CLUSTER(s->cl) ? RK_CLUSTER(s->cl)->epfd : s->cl->async.fd;
}

int redkv_events(redkv *s)
{
    if (!usable(s))
        return 0;
    if (RK_CLUSTER(s->cl))
        return RK_CLUSTER(s->cl)->epfd >= 0 ? REDKV_READ : 0;
    return rk_conn_events(&s->cl->async);
}

int redkv_timeout_ms(redkv *s)
{
    if (!usable(s))
        return -1;
    if (RK_CLUSTER(s->cl))
        return rk_cluster_async_timeout_ms(RK_CLUSTER(s->cl));
    return rk_conn_timeout_ms(&s->cl->async);
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
    int rc = RK_CLUSTER(cl) ? rk_cluster_async_process(RK_CLUSTER(cl))
                            : rk_conn_process(&cl->async, events);
    rk_client_finish_process(cl);      /* may shut the client down: cl is not used after */
    return rc;
}
