/* track.c - the client-side cache's tracking connection: one RESP3 connection per client
 * with CLIENT TRACKING on BCAST over the client's key prefix. It sends nothing after its
 * handshake; the server pushes invalidations to it, and each cache hit first reads them in
 * (one non-blocking recv), so a hit never serves a value whose invalidation has reached
 * our socket. Its losses are told to the cache, which then forgets everything. */
#include "fmacros.h"

#ifndef REDKV_NO_CACHE

#include <poll.h>
#include <string.h>

#include "conn.h"

/* After a failed connect, hits and fills wait this long before the next try (meanwhile
   every read goes to the server): a server that is down costs no connect per read. */
#define TRACK_RETRY_MS 1000

struct rk_tracker {
    rk_config cfg;            /* the client's (shared strings), with RESP3 and tracking on */
    rk_conn conn;             /* event-driven: never blocks a hit */
    rk_req ping;              /* the first command: its answer means tracking is on */
    rk_push_fn *fn;
    void *arg;
    int on;                   /* tracking on since the last fn(arg, NULL) */
    int refused;              /* HELLO 3 or CLIENT TRACKING refused: never on */
    int64_t retry_at;
    char *prefix;
};

static int track_encode_ping(resp_buf *out, const void *arg)
{
    (void)arg;
    return resp_encode_header(out, 1) | resp_encode_arg(out, "PING", 4);
}

/* The handshake (HELLO 3, SELECT, CLIENT TRACKING) and PING are answered, or failed. A
   refusal by the server (an error reply to HELLO or TRACKING: EAUTH from the handshake) is
   for good; a lost or refused connection is tried again later. */
static void track_ping_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_tracker *t = req->ctx;
    if (status == REDKV_OK && reply->type != RESP_ERROR) {
        t->on = 1;
        t->fn(t->arg, NULL);               /* nothing learnt before is known to be current */
        return;
    }
    t->refused = status == REDKV_EAUTH || (status == REDKV_OK && reply->type == RESP_ERROR);
    t->retry_at = rk_now_ms() + TRACK_RETRY_MS;
}

int rk_tracker_new(const rk_config *cfg, const char *prefix, size_t plen, rk_push_fn *fn,
                   void *arg, rk_tracker **out)
{
    rk_tracker *t = resp_malloc(sizeof *t);
    char *p = rk_strndup(prefix, plen);
    if (!t || !p) {
        resp_free(t);
        resp_free(p);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->cfg.tls_owned = 0;                  /* the client's config frees what it owns */
    t->cfg.resp3 = t->cfg.tracking = 1;
    t->cfg.track_prefix = t->prefix = p;
    t->cfg.track_plen = plen;
    t->cfg.push_fn = fn;
    t->cfg.push_arg = arg;
    t->fn = fn;
    t->arg = arg;
    rk_conn_init(&t->conn, &t->cfg, 0);
    *out = t;
    return REDKV_OK;
}

void rk_tracker_free(rk_tracker *t)
{
    if (!t)
        return;
    rk_conn_free(&t->conn);
    resp_free(t->prefix);
    resp_free(t);
}

/* Starts a connect with its PING queued, unless one runs or a retry must wait. */
static void track_start(rk_tracker *t)
{
    if (t->conn.head || rk_now_ms() < t->retry_at)
        return;
    memset(&t->ping, 0, sizeof t->ping);
    t->ping.done = track_ping_done;
    t->ping.ctx = t;
    if (rk_conn_queue(&t->conn, &t->ping, track_encode_ping, NULL, 0) == REDKV_OK)
        rk_conn_start(&t->conn);
}

/* One step of the connect: waits up to wait_ms for what the connection waits on. */
static void track_step(rk_tracker *t, int wait_ms)
{
    rk_conn *c = &t->conn;
    int want = rk_conn_events(c), events = 0;
    if (c->fd >= 0 && want) {
        struct pollfd pfd = {c->fd, (short)((want & REDKV_READ ? POLLIN : 0) |
                                            (want & REDKV_WRITE ? POLLOUT : 0)), 0};
        if (poll(&pfd, 1, wait_ms) > 0)
            events = (pfd.revents & (POLLIN | POLLERR | POLLHUP) ? REDKV_READ : 0) |
                     (pfd.revents & (POLLOUT | POLLERR | POLLHUP) ? REDKV_WRITE : 0);
    }
    rk_conn_process(c, events);
}

int rk_tracker_poll(rk_tracker *t, int wait_ms)
{
    if (t->refused)
        return REDKV_ECONFIG;
    rk_conn *c = &t->conn;
    if (t->on) {
        rk_conn_process(c, REDKV_READ);    /* the hit's one system call: a recv */
        if (c->fd >= 0)
            return 1;
        t->on = 0;                         /* lost: invalidations may have been missed */
        t->fn(t->arg, NULL);
    }
    track_start(t);
    int64_t until = rk_now_ms() + (wait_ms > 0 ? wait_ms : 0);
    do {
        int64_t left = until - rk_now_ms();
        track_step(t, left > 0 ? (int)left : 0);
    } while (!t->on && !t->refused && c->head && rk_now_ms() < until);
    return t->refused ? REDKV_ECONFIG : t->on;
}

#endif
