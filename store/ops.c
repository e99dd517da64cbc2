/* ops.c - the commands of each store operation and the reading of their replies, shared
 * by the blocking and the asynchronous forms. */
#include "fmacros.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* Renews only a key that has an expiry, in milliseconds, so that neither a key with under
   a second left nor a renewal of a day or more goes wrong (Litestar's TTL/EXPIRE do). */
static const char RENEW_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and redis.call('PTTL', KEYS[1]) > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "end\n"
    "return v\n";
/* SHA1 of RENEW_SCRIPT; tests check it against SCRIPT LOAD. */
static const char RENEW_SHA[] = "a42997181e45a9e8fc20d37cc8ff429928a6e250";

/* The counter: INCRBY, then the window's expiry only if the key has none, in one step.
   The new value is read back with GET: a Lua number is a double, so returning INCRBY's
   result would round counts past 2^53. ARGV[2] is "0" for no expiry. */
static const char INCR_SCRIPT[] =
    "redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if ARGV[2] ~= '0' and redis.call('PTTL', KEYS[1]) == -1 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return redis.call('GET', KEYS[1])\n";
/* SHA1 of INCR_SCRIPT; tests check it against SCRIPT LOAD. */
static const char INCR_SHA[] = "715f6b3cabe7191cf5d36a9f00b69fc9c77785bf";

const char *rk_renew_script(void) { return RENEW_SCRIPT; }
const char *rk_incr_script(void) { return INCR_SCRIPT; }

enum rk_kind rk_eval_kind(enum rk_kind kind)
{
    return kind == OP_RENEW_SHA ? OP_RENEW_EVAL : kind == OP_INCR_SHA ? OP_INCR_EVAL : kind;
}

int rk_check_key(const redkv *s, const void *key, size_t klen)
{
    if (!s)
        return rk_error(REDKV_EINVAL, "the store is NULL");
    if (s->closed)
        return rk_error(REDKV_EINVAL, "the store is closed");
    if (!key && klen)
        return rk_error(REDKV_EINVAL, "the key is NULL but its length is not 0");
    if (klen > s->cl->cfg.limits.max_bulk - s->prefix_len)
        return rk_error(REDKV_EINVAL, "the key is longer than the limit");
    return REDKV_OK;
}

int rk_check_set(const redkv *s, const rk_args *a)
{
    int rc = rk_check_key(s, a->key, a->klen);
    if (rc)
        return rc;
    if (!a->val && a->vlen)
        return rk_error(REDKV_EINVAL, "the value is NULL but its length is not 0");
    if (a->ms < 0)
        return rk_error(REDKV_EINVAL, "expires_in_ms must not be negative");
    if (a->flags & ~REDKV_KEEP_TTL)
        return rk_error(REDKV_EINVAL, "unknown flags");
    if ((a->flags & REDKV_KEEP_TTL) && a->ms > 0)
        return rk_error(REDKV_EINVAL, "expires_in_ms and REDKV_KEEP_TTL are mutually exclusive");
    if (a->vlen > s->cl->cfg.limits.max_bulk)
        return rk_error(REDKV_ETOOBIG, "the value is longer than the configured limit");
    return REDKV_OK;
}

static int encode_key_cmd(resp_buf *out, const redkv *s, const char *cmd, size_t cmdlen,
                          const rk_args *a)
{
    return resp_encode_header(out, 2) | resp_encode_arg(out, cmd, cmdlen) |
           resp_encode_arg2(out, s->prefix, s->prefix_len, a->key, a->klen);
}

static int encode_set(resp_buf *out, const redkv *s, const rk_args *a)
{
    int argc = a->ms > 0 ? 5 : (a->flags & REDKV_KEEP_TTL) ? 4 : 3;
    int rc = resp_encode_header(out, argc) | resp_encode_arg(out, "SET", 3) |
             resp_encode_arg2(out, s->prefix, s->prefix_len, a->key, a->klen) |
             resp_encode_arg(out, a->val, a->vlen);
    if (a->ms > 0)
        rc |= resp_encode_arg(out, "PX", 2) | resp_encode_int(out, a->ms);
    else if (a->flags & REDKV_KEEP_TTL)
        rc |= resp_encode_arg(out, "KEEPTTL", 7);
    return rc;
}

/* EVALSHA sha (or EVAL text) 1 NS:key [arg] ms: the renew and counter scripts' calls. */
static int encode_script(resp_buf *out, const redkv *s, const rk_args *a, int by_sha,
                         const char *sha, const char *text, size_t tlen, int with_val)
{
    int rc = resp_encode_header(out, 5 + with_val);
    if (by_sha)
        rc |= resp_encode_arg(out, "EVALSHA", 7) | resp_encode_arg(out, sha, 40);
    else
        rc |= resp_encode_arg(out, "EVAL", 4) | resp_encode_arg(out, text, tlen);
    rc |= resp_encode_arg(out, "1", 1) |
          resp_encode_arg2(out, s->prefix, s->prefix_len, a->key, a->klen);
    if (with_val)
        rc |= resp_encode_arg(out, a->val, a->vlen);
    return rc | resp_encode_int(out, a->ms);
}

static int encode_renew(resp_buf *out, const redkv *s, const rk_args *a, int by_sha)
{
    return encode_script(out, s, a, by_sha, RENEW_SHA, RENEW_SCRIPT, sizeof RENEW_SCRIPT - 1, 0);
}

/* SCRIPT LOAD of a script: queued on an asynchronous connection before its first EVALSHA of
   that script, so that a pipeline of renewals or counts never meets NOSCRIPT on a new
   connection. */
static int encode_load(resp_buf *out, const char *text, size_t tlen)
{
    return resp_encode_header(out, 3) | resp_encode_arg(out, "SCRIPT", 6) |
           resp_encode_arg(out, "LOAD", 4) | resp_encode_arg(out, text, tlen);
}

static int encode_renew_load(resp_buf *out, const void *arg)
{
    (void)arg;
    return encode_load(out, RENEW_SCRIPT, sizeof RENEW_SCRIPT - 1);
}

static int encode_incr_load(resp_buf *out, const void *arg)
{
    (void)arg;
    return encode_load(out, INCR_SCRIPT, sizeof INCR_SCRIPT - 1);
}

/* EVALSHA or EVAL of the counter script: key, delta (a->val, decimal), window (a->ms). */
static int encode_incr(resp_buf *out, const redkv *s, const rk_args *a, int by_sha)
{
    return encode_script(out, s, a, by_sha, INCR_SHA, INCR_SCRIPT, sizeof INCR_SCRIPT - 1, 1);
}

/* The operation's command (rk_encode_fn): non-zero when memory ran out. */
static int encode_op(resp_buf *out, const void *arg)
{
    const rk_op_cmd *oc = arg;
    const redkv *s = oc->store;
    const rk_args *a = oc->args;
    switch (oc->kind) {
    case OP_SET: return encode_set(out, s, a);
    case OP_GET: return encode_key_cmd(out, s, "GET", 3, a);
    case OP_RENEW_SHA: return encode_renew(out, s, a, 1);
    case OP_RENEW_EVAL: return encode_renew(out, s, a, 0);
    case OP_DELETE: return encode_key_cmd(out, s, "DEL", 3, a);
    case OP_EXISTS: return encode_key_cmd(out, s, "EXISTS", 6, a);
    case OP_PTTL: return encode_key_cmd(out, s, "PTTL", 4, a);
    case OP_PING: return resp_encode_header(out, 1) | resp_encode_arg(out, "PING", 4);
    case OP_INCR_SHA: return encode_incr(out, s, a, 1);
    case OP_INCR_EVAL: return encode_incr(out, s, a, 0);
    }
    return -1;
}

void rk_op_cmd_init(rk_op_cmd *oc, const redkv *s, enum rk_kind kind, const rk_args *a)
{
    oc->store = s;
    oc->kind = kind;
    oc->args = a;
    oc->cmd.encode = encode_op;
    oc->cmd.arg = oc;
    oc->cmd.prefix = s->prefix;
    oc->cmd.plen = s->prefix_len;
    oc->cmd.key = a->key;
    oc->cmd.klen = a->klen;
    oc->cmd.keyless = kind == OP_PING;
    oc->cmd.prelude = kind == OP_RENEW_SHA ? encode_renew_load :
                      kind == OP_INCR_SHA ? encode_incr_load : NULL;
}

static void read_value(const resp_reply *r, rk_result *res)
{
    if (r->type == RESP_BULK) {
        res->val = r->str;
        res->vlen = r->len;
    } else if (r->type == RESP_NIL) {
        res->status = REDKV_MISSING;
    } else {
        res->status = rk_error(REDKV_ESERVER, "unexpected reply to a read");
    }
}

static void read_pttl(long long ms, rk_result *res)
{
    if (ms == -2)
        res->status = REDKV_MISSING;
    else if (ms == -1)
        res->status = REDKV_PERSISTENT;
    else
        res->n = ms < 0 ? 0 : ms;
}

/* The counter's value, read back as the decimal bytes Redis keeps (at most 20 of them). */
static void read_counter(const resp_reply *r, rk_result *res)
{
    char digits[24];
    char *end;
    if (r->type != RESP_BULK || r->len == 0 || r->len >= sizeof digits) {
        res->status = rk_error(REDKV_ESERVER, "unexpected reply to the counter script");
        return;
    }
    memcpy(digits, r->str, r->len);
    digits[r->len] = 0;
    errno = 0;
    res->n = strtoll(digits, &end, 10);
    if (errno || *end)
        res->status = rk_error(REDKV_ESERVER, "unexpected reply to the counter script");
}

static int reply_starts(const resp_reply *r, const char *word)
{
    size_t n = strlen(word);
    return r->len >= n && memcmp(r->str, word, n) == 0;
}

/* An error reply: NOSCRIPT (for EVALSHA), a refused connection, refused credentials, or
   any other server error, quoted without what it echoes of our arguments. */
static void read_error(enum rk_kind kind, const resp_reply *r, rk_result *res)
{
    char text[200];
    rk_redact(text, sizeof text, r->str, r->len, NULL);
    res->noscript = rk_eval_kind(kind) != kind && reply_starts(r, "NOSCRIPT");
    int renew = kind == OP_RENEW_SHA || kind == OP_RENEW_EVAL;
    int count = kind == OP_INCR_SHA || kind == OP_INCR_EVAL;
    if ((renew || count) && (reply_starts(r, "NOPERM") || reply_starts(r, "ERR unknown command")))
        res->status = rk_error(REDKV_ESERVER, "%s needs scripting (EVALSHA and EVAL), which the "
                               "server refuses: %s", renew ? "renewal (get with renew_for_ms)" :
                               "incr", text);
    else if (rk_refusal(r->str, r->len))
        res->status = rk_error(REDKV_ECONN, "the server refused the connection: %s", text);
    else if (reply_starts(r, "NOAUTH") || reply_starts(r, "WRONGPASS"))
        res->status = rk_error(REDKV_EAUTH, "not authenticated: %s", text);
    else if (count)                    /* INCRBY's error, in the script's */
        res->status = rk_error(REDKV_ESERVER, "incr: %s: %s", strstr(text, "not an integer") ?
                               "the key's value is not an integer" : "server error", text);
    else
        res->status = rk_error(REDKV_ESERVER, "server error: %s", text);
}

void rk_interpret(enum rk_kind kind, int status, const resp_reply *r, rk_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = status;
    if (status != REDKV_OK)
        return;
    if (r->type == RESP_ERROR) {
        read_error(kind, r, res);
        return;
    }
    int want_int = kind == OP_DELETE || kind == OP_EXISTS || kind == OP_PTTL;
    if (want_int && r->type != RESP_INTEGER) {
        res->status = rk_error(REDKV_ESERVER, "unexpected reply: expected an integer");
        return;
    }
    switch (kind) {
    case OP_SET:
    case OP_PING:
        if (r->type != RESP_STRING)
            res->status = rk_error(REDKV_ESERVER, "unexpected reply to %s",
                                   kind == OP_SET ? "SET" : "PING");
        break;
    case OP_GET:
    case OP_RENEW_SHA:
    case OP_RENEW_EVAL:
        read_value(r, res);
        break;
    case OP_DELETE:
    case OP_EXISTS:
        res->n = r->integer;
        break;
    case OP_PTTL:
        read_pttl(r->integer, res);
        break;
    case OP_INCR_SHA:
    case OP_INCR_EVAL:
        read_counter(r, res);
        break;
    }
}
