/* store.c - the blocking operations: borrow a pooled connection, queue the command on it
 * and let the connection run until the reply is in (the same machinery as the
 * asynchronous forms, plus a wait). */
#include <string.h>
#include <time.h>

#include "store.h"

/* A cluster call follows at most this many redirections (MOVED, ASK), and retries a node
   that cannot be reached (or TRYAGAIN, CLUSTERDOWN) at most MAX_RETRIES times, pausing
   longer each time up to RETRY_PAUSE_MAX_MS: all within its timeout, which ends it first. */
#define MAX_REDIRECTS 8
#define MAX_RETRIES 40
#define RETRY_PAUSE_MAX_MS 200

typedef struct rk_call {
    rk_req req;
    enum rk_kind kind;
    rk_result res;
    /* get: where the value goes */
    void *buf;                /* get_into: the caller's buffer */
    size_t cap;
    void **alloc;             /* get: a new copy */
    /* Redis Cluster */
    int cluster;              /* read MOVED, ASK, TRYAGAIN (rk_redirect) before the reply */
    rk_req asking;            /* ASKING, sent before the command after an ASK */
    char redirect[272];       /* "host:port" of the last MOVED or ASK */
} rk_call;

/* Copies a value out of the read buffer while it is still valid. */
static void keep_value(rk_call *call)
{
    rk_result *res = &call->res;
    if (res->status != REDKV_OK || !(call->buf || call->alloc))
        return;
    if (call->alloc) {
        char *copy = resp_malloc(res->vlen + 1);
        if (!copy) {
            res->status = rk_error(REDKV_ENOMEM, "out of memory for the value");
            return;
        }
        memcpy(copy, res->val, res->vlen);
        copy[res->vlen] = 0;
        *call->alloc = copy;
    } else if (res->vlen > call->cap) {
        res->status = rk_error(REDKV_ETOOBIG, "the value (%zu bytes) is larger than the buffer "
                               "(%zu bytes)", res->vlen, call->cap);
    } else if (res->vlen) {
        memcpy(call->buf, res->val, res->vlen);
    }
    res->val = NULL;
}

static void call_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_call *call = (rk_call *)req;
    const char *addr;
    size_t len;
    int redirect = call->cluster && status == REDKV_OK ? rk_redirect(reply, &addr, &len) : 0;
    if (redirect) {
        memset(&call->res, 0, sizeof call->res);
        call->res.status = redirect;
        if (redirect != RK_TRYAGAIN) {
            len = len < sizeof call->redirect ? len : sizeof call->redirect - 1;
            memcpy(call->redirect, addr, len);
            call->redirect[len] = 0;
        }
        rk_error(REDKV_ESERVER, "server error: %.*s", (int)(reply->len > 200 ? 200 : reply->len),
                 reply->str);
        return;
    }
    rk_interpret(call->kind, status, reply, &call->res);
    keep_value(call);
}

static void asking_done(rk_req *req, int status, const resp_reply *reply)
{
    (void)req;
    (void)status;
    (void)reply;                       /* +OK; a failure shows in the command's own reply */
}

/* Queues ASKING on conn, to go out just before the next command. */
static int push_asking(rk_conn *conn, rk_call *call, int64_t deadline)
{
    size_t start = conn->out.len;
    if (resp_encode_header(&conn->out, 1) | resp_encode_arg(&conn->out, "ASKING", 6)) {
        conn->out.len = start;
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memset(&call->asking, 0, sizeof call->asking);
    call->asking.len = conn->out.len - start;
    call->asking.deadline = deadline;
    call->asking.done = asking_done;
    rk_conn_push(conn, &call->asking);
    return REDKV_OK;
}

/* Runs one command on conn; the result is in call->res. deadline 0: the timeout from now. */
static int run_on(rk_conn *conn, const redkv *s, rk_call *call, const rk_args *a,
                  int64_t deadline)
{
    size_t start = conn->out.len;
    int rc = rk_encode(&conn->out, s, call->kind, a);
    if (rc)
        return call->res.status = rc;
    call->req.len = conn->out.len - start;
    call->req.deadline = deadline ? deadline : rk_deadline(s->cl->cfg.command_timeout_ms);
    call->req.done = call_done;
    rk_conn_push(conn, &call->req);
    rk_conn_run(conn, &call->req);
    return call->res.status;
}

/* run_on, after ASKING when asking. */
static int run_on_asking(rk_conn *conn, const redkv *s, rk_call *call, const rk_args *a,
                         int64_t deadline, int asking)
{
    int rc = asking ? push_asking(conn, call, deadline) : REDKV_OK;
    return rc ? (call->res.status = rc) : run_on(conn, s, call, a, deadline);
}

/* Runs the command on a connection of pool (after ASKING when asking), with the NOSCRIPT
   fallback; the connection goes back to pool. */
static int run_pooled(rk_pool *pool, redkv *s, rk_call *call, const rk_args *a, int64_t deadline,
                      int asking)
{
    rk_conn *conn;
    int64_t wait_until = deadline ? deadline : rk_deadline(s->cl->cfg.command_timeout_ms);
    int rc = rk_pool_get(pool, wait_until, &conn);
    if (rc)
        return rc;
    int reused = conn->fd >= 0;
    rc = run_on_asking(conn, s, call, a, deadline, asking);
    if (rc == REDKV_ECONN && reused) {
        /* The server may have closed the idle connection meanwhile (a restart, CLIENT KILL,
           its idle timeout), which shows only now. Each command here may safely run twice:
           it goes once more, on a new connection. */
        rc = run_on_asking(conn, s, call, a, deadline, asking);
    }
    if (rc == RK_NOSCRIPT) {
        /* The script cache was flushed (or the server restarted): send the text, which
           caches it again. Only this request is on the connection, so order holds. (On a
           cluster, each node has a cache of its own: this happens once per node.) */
        call->kind = OP_RENEW_EVAL;
        rc = run_on_asking(conn, s, call, a, deadline, asking);
    }
    rk_pool_put(pool, conn);
    return rc;
}

/* Sleeps ms, or until deadline if that is sooner. */
static void pause_until(int ms, int64_t deadline)
{
    int64_t left = deadline - rk_now_ms();
    if (left < ms)
        ms = left > 0 ? (int)left : 0;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Redis Cluster: the key's slot picks the master. MOVED updates the map and retries on
   the node named; ASK retries there once after ASKING, the map unchanged; a node that
   cannot be reached, or TRYAGAIN/CLUSTERDOWN (a failover under way), makes the map be read
   again from another node, and the call retries until its master answers (a failover
   takes a few seconds) or its timeout ends. */
static int run_cluster(redkv *s, rk_call *call, const rk_args *a)
{
    rk_cluster *cc = RK_CLUSTER(s->cl);
    int64_t deadline = rk_deadline(s->cl->cfg.command_timeout_ms);
    int slot = rk_key_slot(s->prefix, s->prefix_len, a->key, a->klen);
    enum rk_kind kind = call->kind;
    rk_node *node;
    int asking = 0;
    call->cluster = 1;
    int rc = rk_cluster_node(cc, slot, deadline, &node);
    for (int redirects = 0, retries = 0; rc == REDKV_OK;) {
        call->kind = kind;
        rc = run_pooled(&node->pool, s, call, a, deadline, asking);
        asking = 0;
        if (rc != RK_MOVED && rc != RK_ASK && rc != RK_TRYAGAIN && rc != REDKV_ECONN)
            break;
        int why = rc, redirect = why == RK_MOVED || why == RK_ASK;
        if ((redirect ? ++redirects >= MAX_REDIRECTS : ++retries >= MAX_RETRIES) ||
            rk_now_ms() >= deadline) {
            if (why != REDKV_ECONN)    /* the message names the last server error */
                rc = REDKV_ESERVER;
            break;
        }
        if (redirect) {
            rk_node *to;
            if ((rc = rk_cluster_node_at(cc, call->redirect, strlen(call->redirect), &to)) != 0)
                break;
            if (why == RK_MOVED) {
                rk_cluster_set_slot(cc, slot, to);
                rk_cluster_refresh(cc, deadline, NULL);  /* other slots may have moved too */
            }
            asking = why == RK_ASK;
            node = to;
            rc = REDKV_OK;
            continue;
        }
        /* Unreachable, or a failover under way: wait a little, read the map from another
           node, and try its master for the slot. */
        int pause = 25 << (retries < 4 ? retries - 1 : 3);
        pause_until(pause < RETRY_PAUSE_MAX_MS ? pause : RETRY_PAUSE_MAX_MS, deadline);
        rk_cluster_refresh(cc, deadline, why == REDKV_ECONN ? node : NULL);
        rc = rk_cluster_node(cc, slot, deadline, &node);
        if (rc != REDKV_OK && why == REDKV_ECONN)
            rc = why;
    }
    return rc;
}

static int run(redkv *s, rk_call *call, const rk_args *a)
{
    if (RK_CLUSTER(s->cl))
        return run_cluster(s, call, a);
    return run_pooled(&s->cl->pool, s, call, a, 0, 0);
}

int redkv_set(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
              int64_t expires_in_ms, unsigned flags)
{
    rk_args a = {key, val, klen, vlen, expires_in_ms, flags};
    rk_call call = {.kind = OP_SET};
    int rc = rk_check_set(s, &a);
    return rc ? rc : run(s, &call, &a);
}

static int get_common(redkv *s, const void *key, size_t klen, int64_t renew_for_ms,
                      rk_call *call, size_t *vlen)
{
    rk_args a = {key, NULL, klen, 0, renew_for_ms, 0};
    int rc = rk_check_key(s, key, klen);
    if (rc)
        return rc;
    if (renew_for_ms < 0)
        return rk_error(REDKV_EINVAL, "renew_for_ms must not be negative");
    if (!vlen)
        return rk_error(REDKV_EINVAL, "vlen is NULL");
    call->kind = renew_for_ms > 0 ? OP_RENEW_SHA : OP_GET;
    rc = run(s, call, &a);
    *vlen = rc == REDKV_OK || rc == REDKV_ETOOBIG ? call->res.vlen : 0;
    return rc;
}

int redkv_get(redkv *s, const void *key, size_t klen, int64_t renew_for_ms, void **val,
              size_t *vlen)
{
    if (!val)
        return rk_error(REDKV_EINVAL, "val is NULL");
    *val = NULL;
    rk_call call = {.alloc = val};
    return get_common(s, key, klen, renew_for_ms, &call, vlen);
}

int redkv_get_into(redkv *s, const void *key, size_t klen, int64_t renew_for_ms, void *buf,
                   size_t cap, size_t *vlen)
{
    if (!buf && cap)
        return rk_error(REDKV_EINVAL, "buf is NULL but cap is not 0");
    static char no_room;
    rk_call call = {.buf = buf ? buf : &no_room, .cap = cap};
    return get_common(s, key, klen, renew_for_ms, &call, vlen);
}

static int key_op(redkv *s, enum rk_kind kind, const void *key, size_t klen, rk_call *call)
{
    rk_args a = {key, NULL, klen, 0, 0, 0};
    int rc = rk_check_key(s, key, klen);
    call->kind = kind;
    return rc ? rc : run(s, call, &a);
}

int redkv_delete(redkv *s, const void *key, size_t klen)
{
    rk_call call = {0};
    return key_op(s, OP_DELETE, key, klen, &call);
}

int redkv_ping(redkv *s)
{
    rk_call call = {0};
    return key_op(s, OP_PING, "", 0, &call);
}

int redkv_exists(redkv *s, const void *key, size_t klen)
{
    rk_call call = {0};
    int rc = key_op(s, OP_EXISTS, key, klen, &call);
    return rc ? rc : call.res.n > 0;
}

int redkv_expires_in(redkv *s, const void *key, size_t klen, int64_t *ms)
{
    if (!ms)
        return rk_error(REDKV_EINVAL, "ms is NULL");
    *ms = 0;
    rk_call call = {0};
    int rc = key_op(s, OP_PTTL, key, klen, &call);
    if (rc == REDKV_OK)
        *ms = call.res.n;
    return rc;
}
