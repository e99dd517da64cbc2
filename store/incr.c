/* incr.c - the counter, for rate limiting: INCRBY and a fixed window's expiry in one Lua
 * script (store/ops.c), so that gateway workers sharing a key never race. A script rather
 * than MULTI with PEXPIRE NX: NX needs Redis 7, the script runs on 6.2 as well. */
#include "fmacros.h"

#include "store.h"

/* Checks the arguments and writes delta's digits into digits (the script's ARGV[1]). */
static int incr_args(const redkv *s, const void *key, size_t klen, int64_t delta,
                     int64_t expires_in_ms, char *digits, rk_args *a)
{
    int rc = rk_check_key(s, key, klen);
    if (rc)
        return rc;
    if (expires_in_ms < 0)
        return rk_error(REDKV_EINVAL, "expires_in_ms must not be negative");
    a->key = key;
    a->klen = klen;
    a->val = digits;
    a->vlen = resp_format_ll(digits, delta);
    a->ms = expires_in_ms;
    a->flags = 0;
    return REDKV_OK;
}

int redkv_incr(redkv *s, const void *key, size_t klen, int64_t delta, int64_t expires_in_ms,
               int64_t *value)
{
    char digits[24];
    rk_args a;
    if (!value)
        return rk_error(REDKV_EINVAL, "value is NULL");
    *value = 0;
    int rc = incr_args(s, key, klen, delta, expires_in_ms, digits, &a);
    return rc ? rc : rk_run_op(s, OP_INCR_SHA, &a, value);
}

/* By EVALSHA, as a renewing get_async: the script is loaded on each connection before its
   first count, and a NOSCRIPT answer (SCRIPT FLUSH, a failover) sends the count again with
   the text, callbacks kept in order (store/async.c). */
int redkv_incr_async(redkv *s, const void *key, size_t klen, int64_t delta,
                     int64_t expires_in_ms, redkv_cb *cb, void *arg)
{
    char digits[24];
    rk_args a;
    int rc = incr_args(s, key, klen, delta, expires_in_ms, digits, &a);
    return rc ? rc : rk_queue_op(s, OP_INCR_SHA, &a, cb, arg);
}
