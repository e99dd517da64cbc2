/* delete_all.c - removes a namespace and its descendants without stalling the server:
 * SCAN in steps, and UNLINK each step's keys pipelined with the next SCAN, so each round
 * trip costs the server one short step and other clients are served in between.
 *
 * One SCAN pattern, NS[:_]*, covers both NS:* and NS_*:*; the keys it returns are then
 * checked exactly, since NS_x without a colon is no descendant (it belongs to no store). */
#include <stdio.h>
#include <string.h>

#include "store.h"

typedef struct scan_step {
    rk_req req;
    rk_conn *conn;
    const redkv *store;
    char cursor[24];          /* SCAN's cursor, as the server wrote it */
    int done;                 /* the cursor came back 0 */
    int status;
    rk_req unlink_req;        /* the keys of this step, queued for the next write */
    uint64_t deleted;
    /* Redis Cluster: one UNLINK per key (the keys of a step belong to many slots) */
    rk_req *unlinks;
    size_t nunlinks, cap;
} scan_step;

/* NS:..., or NS_...:... */
static int in_namespace(const redkv *s, const char *key, size_t len)
{
    size_t n = s->prefix_len - 1;      /* the namespace's own length */
    if (len <= n || memcmp(key, s->ns, n) != 0)
        return 0;
    return key[n] == ':' || (key[n] == '_' && memchr(key + n + 1, ':', len - n - 1) != NULL);
}

/* Queues req for the command encoded in out from start on (encode_rc: how encoding went;
   on failure the partial command is taken back). */
static int push(scan_step *st, rk_req *req, size_t start, int encode_rc, rk_done_fn *done)
{
    resp_buf *out = &st->conn->out;
    if (encode_rc) {
        out->len = start;
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memset(req, 0, sizeof *req);
    req->len = out->len - start;
    req->deadline = rk_deadline(st->store->cl->cfg.command_timeout_ms);
    req->done = done;
    req->ctx = st;
    rk_conn_push(st->conn, req);
    return REDKV_OK;
}

static void unlink_done(rk_req *req, int status, const resp_reply *reply)
{
    scan_step *st = req->ctx;
    if (status == REDKV_OK && reply->type == RESP_INTEGER)
        st->deleted += (uint64_t)reply->integer;
    else if (status == REDKV_OK && reply->type == RESP_ERROR)
        st->status = rk_error(REDKV_ESERVER, "UNLINK failed: %.*s", (int)(reply->len > 200 ? 200 : reply->len), reply->str);
    else if (status != REDKV_OK && !st->status)
        st->status = status;
}

/* Cluster: UNLINK key for each matching key, each a request of its own. */
static int queue_unlink_each(scan_step *st, const resp_reply *keys, size_t matched)
{
    if (matched > st->cap) {
        rk_req *r = resp_realloc(st->unlinks, matched * sizeof *r);
        if (!r)
            return rk_error(REDKV_ENOMEM, "out of memory");
        st->unlinks = r;
        st->cap = matched;
    }
    resp_buf *out = &st->conn->out;
    st->nunlinks = 0;
    for (size_t i = 0; i < keys->len; i++) {
        const resp_reply *k = resp_element(keys, i);
        if (k->type != RESP_BULK || !in_namespace(st->store, k->str, k->len))
            continue;
        size_t start = out->len;
        int rc = resp_encode_header(out, 2) | resp_encode_arg(out, "UNLINK", 6) |
                 resp_encode_arg(out, k->str, k->len);
        if ((rc = push(st, &st->unlinks[st->nunlinks], start, rc, unlink_done)) != REDKV_OK)
            return rc;
        st->nunlinks++;
    }
    return REDKV_OK;
}

/* Queues UNLINK for the matching keys of a SCAN reply; it goes out with the next SCAN. */
static int queue_unlink(scan_step *st, const resp_reply *keys)
{
    size_t matched = 0;
    for (size_t i = 0; i < keys->len; i++) {
        const resp_reply *k = resp_element(keys, i);
        matched += k->type == RESP_BULK && in_namespace(st->store, k->str, k->len);
    }
    if (!matched)
        return REDKV_OK;
    if (RK_CLUSTER(st->store->cl))
        return queue_unlink_each(st, keys, matched);
    resp_buf *out = &st->conn->out;
    size_t start = out->len;
    int rc = resp_encode_header(out, (int)matched + 1) | resp_encode_arg(out, "UNLINK", 6);
    for (size_t i = 0; i < keys->len && !rc; i++) {
        const resp_reply *k = resp_element(keys, i);
        if (k->type == RESP_BULK && in_namespace(st->store, k->str, k->len))
            rc = resp_encode_arg(out, k->str, k->len);
    }
    return push(st, &st->unlink_req, start, rc, unlink_done);
}

static void scan_done(rk_req *req, int status, const resp_reply *r)
{
    scan_step *st = req->ctx;
    if (status != REDKV_OK || st->status) {
        st->status = st->status ? st->status : status;
        return;
    }
    if (r->type == RESP_ERROR) {
        st->status = rk_error(REDKV_ESERVER, "SCAN failed: %.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
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
    st->done = strcmp(st->cursor, "0") == 0;
    st->status = queue_unlink(st, keys);   /* 0 unless memory ran out */
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

static int send_scan(scan_step *st, const resp_buf *pat, int count)
{
    resp_buf *out = &st->conn->out;
    size_t start = out->len;
    int rc = resp_encode_header(out, 6) | resp_encode_arg(out, "SCAN", 4) |
             resp_encode_arg(out, st->cursor, strlen(st->cursor)) |
             resp_encode_arg(out, "MATCH", 5) | resp_encode_arg(out, pat->data, pat->len) |
             resp_encode_arg(out, "COUNT", 5) | resp_encode_int(out, count);
    if ((rc = push(st, &st->req, start, rc, scan_done)) != REDKV_OK)
        return rc;
    rk_conn_run(st->conn, &st->req);
    return st->status;
}

/* Sends the UNLINK of the last step on its own. */
static int flush_unlink(scan_step *st)
{
    if (RK_CLUSTER(st->store->cl) && st->conn->head && st->nunlinks) {
        rk_conn_run(st->conn, &st->unlinks[st->nunlinks - 1]);
        return st->status;
    }
    if (st->conn->head != &st->unlink_req)
        return st->status;
    rk_conn_run(st->conn, &st->unlink_req);
    return st->status;
}

/* The whole SCAN on one server (a connection of pool); st->deleted keeps counting. */
static int delete_on(rk_pool *pool, scan_step *st, const resp_buf *pat, uint64_t *reported)
{
    rk_client *cl = st->store->cl;
    int rc;
    strcpy(st->cursor, "0");
    st->done = 0;
    if ((rc = rk_pool_get(pool, rk_deadline(cl->cfg.command_timeout_ms), &st->conn)) != REDKV_OK)
        return rc;
    int reused = st->conn->fd >= 0;
    while (rc == REDKV_OK && !st->done) {
        rc = send_scan(st, pat, cl->scan_count);
        if (rc == REDKV_ECONN && reused) {
            /* The idle connection was closed by the server (see store.c): the first SCAN,
               harmless to repeat, goes once more on a new connection. */
            rc = st->status = REDKV_OK;
        }
        reused = 0;
        if (cl->progress && st->deleted != *reported)
            cl->progress(*reported = st->deleted, cl->progress_arg);
    }
    if (rc == REDKV_OK)
        rc = flush_unlink(st);
    else if (st->conn->head)           /* an UNLINK queued but never written */
        rk_conn_fail_all(st->conn, rc);
    rk_pool_put(pool, st->conn);
    st->conn = NULL;
    return rc;
}

/* Redis Cluster: the same on every master of the slot map (a key lives on the master of
   its slot, and SCAN walks one node's keys). */
static int delete_on_masters(rk_client *cl, scan_step *st, const resp_buf *pat,
                             uint64_t *reported)
{
    rk_node *masters[64];
    int n = rk_cluster_masters(RK_CLUSTER(cl), rk_deadline(cl->cfg.command_timeout_ms), masters,
                               (int)(sizeof masters / sizeof *masters));
    int rc = n < 0 ? n : REDKV_OK;
    for (int i = 0; i < n && rc == REDKV_OK; i++)
        rc = delete_on(&masters[i]->pool, st, pat, reported);
    return rc;
}

int redkv_delete_all(redkv *s)
{
    int rc = rk_check_key(s, "", 0);
    if (rc)
        return rc;
    if (!s->ns)
        return rk_error(REDKV_ECONFIG, "cannot delete all: no namespace configured");
    rk_client *cl = s->cl;
    resp_buf pat = {0};
    scan_step st;
    memset(&st, 0, sizeof st);
    st.store = s;
    if ((rc = build_pattern(s, &pat)) != REDKV_OK)
        return rc;
    uint64_t reported = 0;
    if (RK_CLUSTER(cl))
        rc = delete_on_masters(cl, &st, &pat, &reported);
    else
        rc = delete_on(&cl->pool, &st, &pat, &reported);
    if (cl->progress && st.deleted != reported)
        cl->progress(st.deleted, cl->progress_arg);
    resp_free(st.unlinks);
    resp_buf_free(&pat);
    return rc;
}
