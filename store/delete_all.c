/* delete_all.c - removes a namespace and its descendants without stalling the server:
 * SCAN in steps, and UNLINK each step's keys pipelined with the next SCAN, so each round
 * trip costs the server one short step and other clients are served in between. Every
 * master runs its own SCAN at once (the router drives them together), so a cluster's
 * delete takes about as long as its largest master, not the sum.
 *
 * One SCAN pattern, NS[:_]*, covers both NS:* and NS_*:*; the keys it returns are then
 * checked exactly, since NS_x without a colon is no descendant (it belongs to no store). */
#include "fmacros.h"

#include <string.h>

#include "store.h"

typedef struct delete_run delete_run;

/* One master's SCAN: its cursor, and the requests in flight on its connection. */
typedef struct scan_step {
    rk_req req;               /* the SCAN */
    rk_conn *conn;
    delete_run *run;
    char cursor[24];          /* SCAN's cursor, as the server wrote it */
    int status;
    int one_slot;             /* one key per UNLINK (keys of a command must share a slot) */
    rk_req unlink_req;        /* the keys of the last step, in one UNLINK */
    rk_req *unlinks;          /* ... or one request per key */
    size_t cap;
} scan_step;

struct delete_run {
    const redkv *store;
    resp_buf pattern;
    scan_step *steps;         /* one per master */
    int nsteps;
    uint64_t deleted, reported;
};

/* The command being queued, for the encoders below. */
typedef struct scan_cmd {
    const scan_step *st;
    const resp_reply *keys;   /* UNLINK: the keys of a SCAN reply, or NULL with key */
    const resp_reply *key;
    size_t matched;
} scan_cmd;

/* NS:..., or NS_...:... */
static int in_namespace(const redkv *s, const char *key, size_t len)
{
    size_t n = s->prefix_len - 1;      /* the namespace's own length */
    if (len <= n || memcmp(key, s->ns, n) != 0)
        return 0;
    return key[n] == ':' || (key[n] == '_' && memchr(key + n + 1, ':', len - n - 1) != NULL);
}

static int matches(const redkv *s, const resp_reply *k)
{
    return k->type == RESP_BULK && in_namespace(s, k->str, k->len);
}

static void progress(delete_run *run)
{
    rk_client *cl = run->store->cl;
    if (cl->progress && run->deleted != run->reported)
        cl->progress(run->reported = run->deleted, cl->progress_arg);
}

static void unlink_done(rk_req *req, int status, const resp_reply *reply)
{
    scan_step *st = req->ctx;
    if (status == REDKV_OK && reply->type == RESP_INTEGER) {
        st->run->deleted += (uint64_t)reply->integer;
        progress(st->run);
    } else if (status == REDKV_OK && reply->type == RESP_ERROR) {
        char text[200];
        rk_redact(text, sizeof text, reply->str, reply->len, NULL);
        st->status = rk_error(REDKV_ESERVER, "UNLINK failed: %s", text);
    } else if (status != REDKV_OK && !st->status) {
        st->status = status;
    }
}

static int encode_unlink(resp_buf *out, const void *arg)
{
    const scan_cmd *sc = arg;
    const redkv *s = sc->st->run->store;
    if (sc->key)
        return resp_encode_header(out, 2) | resp_encode_arg(out, "UNLINK", 6) |
               resp_encode_arg(out, sc->key->str, sc->key->len);
    int rc = resp_encode_header(out, (int)sc->matched + 1) | resp_encode_arg(out, "UNLINK", 6);
    for (size_t i = 0; i < sc->keys->len && !rc; i++) {
        const resp_reply *k = resp_element(sc->keys, i);
        if (matches(s, k))
            rc = resp_encode_arg(out, k->str, k->len);
    }
    return rc;
}

static int queue_unlink(scan_step *st, rk_req *req, const scan_cmd *sc)
{
    req->done = unlink_done;
    req->ctx = st;
    return rk_conn_queue(st->conn, req, encode_unlink, sc, 0);
}

/* UNLINK for the matching keys of a SCAN reply: one command, or one per key. */
static int unlink_keys(scan_step *st, const resp_reply *keys)
{
    scan_cmd sc = {st, keys, NULL, 0};
    for (size_t i = 0; i < keys->len; i++)
        sc.matched += matches(st->run->store, resp_element(keys, i));
    if (!sc.matched)
        return REDKV_OK;
    if (!st->one_slot)
        return queue_unlink(st, &st->unlink_req, &sc);
    if (sc.matched > st->cap) {
        rk_req *r = resp_realloc(st->unlinks, sc.matched * sizeof *r);
        if (!r)
            return rk_error(REDKV_ENOMEM, "out of memory");
        st->unlinks = r;
        st->cap = sc.matched;
    }
    int rc = REDKV_OK;
    for (size_t i = 0, n = 0; i < keys->len && rc == REDKV_OK; i++) {
        sc.key = resp_element(keys, i);
        if (matches(st->run->store, sc.key))
            rc = queue_unlink(st, &st->unlinks[n++], &sc);
    }
    return rc;
}

static int encode_scan(resp_buf *out, const void *arg)
{
    const scan_step *st = ((const scan_cmd *)arg)->st;
    const resp_buf *pat = &st->run->pattern;
    return resp_encode_header(out, 6) | resp_encode_arg(out, "SCAN", 4) |
           resp_encode_arg(out, st->cursor, strlen(st->cursor)) |
           resp_encode_arg(out, "MATCH", 5) | resp_encode_arg(out, pat->data, pat->len) |
           resp_encode_arg(out, "COUNT", 5) | resp_encode_int(out, st->run->store->cl->scan_count);
}

static void scan_done(rk_req *req, int status, const resp_reply *r);

static int queue_scan(scan_step *st)
{
    scan_cmd sc = {st, NULL, NULL, 0};
    st->req.done = scan_done;
    st->req.ctx = st;
    return rk_conn_queue(st->conn, &st->req, encode_scan, &sc, 0);
}

/* A step's reply: its keys go to UNLINK, and the next step goes out with them. */
static void scan_done(rk_req *req, int status, const resp_reply *r)
{
    scan_step *st = req->ctx;
    if (status != REDKV_OK || st->status) {
        st->status = st->status ? st->status : status;
        return;
    }
    if (r->type == RESP_ERROR) {
        char text[200];
        rk_redact(text, sizeof text, r->str, r->len, NULL);
        st->status = rk_error(REDKV_ESERVER, "SCAN failed: %s", text);
        return;
    }
    const resp_reply *cur = r->type == RESP_ARRAY && r->len == 2 ? resp_element(r, 0) : NULL;
    const resp_reply *keys = cur ? resp_element(r, 1) : NULL;
    if (!cur || cur->type != RESP_BULK || cur->len >= sizeof st->cursor || keys->type != RESP_ARRAY) {
        st->status = rk_error(REDKV_ESERVER, "unexpected reply to SCAN");
        return;
    }
    memcpy(st->cursor, cur->str, cur->len);
    st->cursor[cur->len] = 0;
    st->status = unlink_keys(st, keys);
    if (!st->status && strcmp(st->cursor, "0") != 0)
        st->status = queue_scan(st);
}

/* The router's start for master i of n (rk_start_fn): a new SCAN from cursor 0. */
static int start_master(void *ctx, int i, int n, rk_conn *conn, int one_slot)
{
    delete_run *run = ctx;
    if (!run->steps) {                 /* never moved once requests point into it */
        if (!(run->steps = resp_malloc((size_t)n * sizeof *run->steps)))
            return rk_error(REDKV_ENOMEM, "out of memory");
        memset(run->steps, 0, (size_t)n * sizeof *run->steps);
        run->nsteps = n;
    }
    scan_step *st = &run->steps[i];
    st->run = run;
    st->conn = conn;
    st->one_slot = one_slot;
    st->status = REDKV_OK;
    strcpy(st->cursor, "0");
    return queue_scan(st);
}

/* The namespace with glob characters escaped, then [:_]*. */
static int build_pattern(const redkv *s, resp_buf *pat)
{
    size_t n = s->prefix_len - 1;
    if (resp_buf_reserve(pat, 2 * n + 8))
        return rk_error(REDKV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", s->ns[i]))
            pat->data[pat->len++] = '\\';
        pat->data[pat->len++] = s->ns[i];
    }
    memcpy(pat->data + pat->len, "[:_]*", 5);
    pat->len += 5;
    return REDKV_OK;
}

int redkv_delete_all(redkv *s)
{
    int rc = rk_check_key(s, "", 0);
    if (rc)
        return rc;
    if (!s->ns)
        return rk_error(REDKV_ECONFIG, "cannot delete all: no namespace configured");
    delete_run run;
    memset(&run, 0, sizeof run);
    run.store = s;
    if ((rc = build_pattern(s, &run.pattern)) == REDKV_OK)
        rc = rk_route_each_master(s->cl->router, start_master, &run, rk_call_deadline(s->cl));
    for (int i = 0; i < run.nsteps; i++) {
        if (rc == REDKV_OK)
            rc = run.steps[i].status;
        resp_free(run.steps[i].unlinks);
    }
    progress(&run);
    resp_free(run.steps);
    resp_buf_free(&run.pattern);
#ifndef REDKV_NO_CACHE
    if (s->cl->cache)                  /* read your own writes: nothing of it is kept */
        rk_cache_forget_all(s->cl);
#endif
    return rc;
}
