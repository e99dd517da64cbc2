/* store.c - the blocking operations: each is one command given to the router, which runs
 * it on a pooled connection of the right node and hands back the final reply. */
#include "fmacros.h"

#include <string.h>

#include "store.h"

typedef struct rk_call {
    rk_req req;               /* first: the router's request is the call */
    enum rk_kind kind;
    rk_result res;
    /* get: where the value goes */
    void *buf;                /* get_into: the caller's buffer */
    size_t cap;
    void **alloc;             /* get: a new copy */
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

#ifndef REDKV_NO_CACHE
/* A value the cache read (rk_take_fn): copied out as a reply's would be. */
static int take_value(void *ctx, const char *val, size_t vlen)
{
    rk_call *call = ctx;
    call->res.status = REDKV_OK;
    call->res.val = val;
    call->res.vlen = vlen;
    keep_value(call);
    return call->res.status;
}
#endif

static void call_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_call *call = (rk_call *)req;
    rk_interpret(call->kind, status, reply, &call->res);
    keep_value(call);
}

/* Runs one operation through the router. A renewal (or a count) whose script the server no longer has
   (SCRIPT FLUSH, a restart, a failover) is sent again with the script's text, which caches
   it anew; the call's deadline covers both. */
static int run(redkv *s, rk_call *call, const rk_args *a)
{
    int64_t deadline = rk_call_deadline(s->cl);
    rk_op_cmd oc;
    for (;;) {
        rk_op_cmd_init(&oc, s, call->kind, a);
        call->req.done = call_done;
        rk_route_call(s->cl->router, &oc.cmd, &call->req, &deadline);
        if (!call->res.noscript)
            return call->res.status;
        call->kind = rk_eval_kind(call->kind);
    }
}

int rk_run_op(redkv *s, enum rk_kind kind, const rk_args *a, int64_t *n)
{
    rk_call call = {.kind = kind};
    int rc = run(s, &call, a);
    *n = call.res.n;
#ifndef REDKV_NO_CACHE
    if (s->cl->cache)                  /* a count is a write: read it back from the server */
        rk_cache_forget(s, a->key, a->klen);
#endif
    return rc;
}

int redkv_set(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
              int64_t expires_in_ms, unsigned flags)
{
    rk_args a = {key, val, klen, vlen, expires_in_ms, flags};
    rk_call call = {.kind = OP_SET};
    int rc = rk_check_set(s, &a);
    if (rc)
        return rc;
    rc = run(s, &call, &a);
#ifndef REDKV_NO_CACHE
    if (s->cl->cache)                  /* read your own writes, even one that timed out */
        rk_cache_forget(s, key, klen);
#endif
    return rc;
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
#ifndef REDKV_NO_CACHE
    if (s->cl->cache && renew_for_ms == 0)
        rc = rk_cache_get(s, key, klen, take_value, call);
    else
#endif
    rc = run(s, call, &a);
#ifndef REDKV_NO_CACHE
    if (s->cl->cache && renew_for_ms > 0)   /* a renewal is a write */
        rk_cache_forget(s, key, klen);
#endif
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
    int rc = key_op(s, OP_DELETE, key, klen, &call);
#ifndef REDKV_NO_CACHE
    if (s->cl->cache && rc != REDKV_EINVAL)
        rk_cache_forget(s, key, klen);
#endif
    return rc;
}

int redkv_ping(redkv *s)
{
    rk_call call = {0};
    return key_op(s, OP_PING, "", 0, &call);
}

int redkv_exists(redkv *s, const void *key, size_t klen)
{
#ifndef REDKV_NO_CACHE
    if (!rk_check_key(s, key, klen) && s->cl->cache)
        return rk_cache_exists(s, key, klen);
#endif
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
