/* test_cache.c - the client-side cache (cache_bytes) against a real redis-server:
 *   counting    hits and misses of get, get_into and exists in redkv_cache_stats
 *   others      another client's SET, DEL, EXPIRE, FLUSHALL reach us as invalidations
 *   expiry      a key past its expiry is not served, even when the server has not yet
 *               deleted it (active expiry off: no invalidation comes)
 *   own writes  set, delete, delete_all, a renewal, an async set: read back at once
 *   bound       10x cache_bytes of distinct keys read: the cache stays within its bytes
 *   fallback    a server without HELLO: no cache, right answers
 *   async       hits counted and called back from redkv_process (never the queuing call;
 *               timeout 0 meanwhile), in request order, once on close (ECONN); misses
 *               fill; other clients' writes seen; a read behind our own async write of the
 *               key reads what was written; a callback chain of hits; no allocation per hit
 *   cluster     a tracking connection per master: hits, misses and each master's
 *               invalidations, blocking and async; one master's tracking killed: no stale read
 *   sentinel    tracking on the master named; SENTINEL FAILOVER empties the cache, tracking
 *               moves to the new master, whose values are read
 *   race        a writer process sets 1, 2, 3 ... and after each acknowledged set tells a
 *               reader through a pipe; the reader, told n, must read >= n. 10,000 rounds
 *               here; REDKV_CACHE_RACE_ROUNDS=100000 (make test-cache-race) for the long
 *               run. Also with CLIENT KILL of the tracking connection halfway. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_fixture.h"
#include "helpers.h"
#include "resp.h"
#include "sentinel_fixture.h"

static test_server srv;
static redkv *st;

/* A store on url with a cache of bytes; ns and timeout_ms as in redkv_options (NULL, 0:
   the defaults). */
static redkv *open_cached_at(const char *url, const char *ns, int timeout_ms, size_t bytes)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = url;
    o.ns = ns;
    o.command_timeout_ms = timeout_ms;
    o.cache_bytes = bytes;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

static redkv *open_cached(size_t bytes) { return open_cached_at(srv.url, NULL, 5000, bytes); }

static void up(void)
{
    cr_assert_eq(srv_start(&srv, NULL), 0);
    st = open_cached(1 << 20);
}

static void down(void)
{
    redkv_close(st);
    srv_stop(&srv);
}

TestSuite(cache, .init = up, .fini = down);

static struct redkv_cache_stats stats(redkv *s)
{
    struct redkv_cache_stats cs;
    cr_assert_eq(redkv_cache_stats(s, &cs), REDKV_OK);
    return cs;
}

Test(cache, hits_and_misses_counted)
{
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    struct redkv_cache_stats cs = stats(st);
    cr_assert_eq(cs.misses, 1);
    cr_assert_eq(cs.hits, 0);
    cr_assert_eq(cs.tracking, 1);
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(get_str(st, "k"), "v1");
    void *v;
    size_t n;
    cr_assert_eq(redkv_get(st, "k", 1, 0, &v, &n), REDKV_OK);
    cr_assert(n == 2 && memcmp(v, "v1", 2) == 0 && ((char *)v)[2] == 0);
    redkv_free(v);
    cr_assert_eq(redkv_exists(st, "k", 1), 1);
    cs = stats(st);
    cr_assert_eq(cs.hits, 7, "get_into x5, get, exists: %llu", (unsigned long long)cs.hits);
    cr_assert_eq(cs.misses, 1);
    cr_assert_eq(cs.entries, 1);
    /* Absence is cached too, and a too-small buffer still says the size. */
    cr_assert_str_eq(get_str(st, "nope"), "(missing)");
    cr_assert_str_eq(get_str(st, "nope"), "(missing)");
    cr_assert_eq(redkv_exists(st, "nope", 4), 0);
    char small[1];
    cr_assert_eq(redkv_get_into(st, "k", 1, 0, small, 1, &n), REDKV_ETOOBIG);
    cr_assert_eq(n, 2);
    cs = stats(st);
    cr_assert_eq(cs.hits, 10);
    cr_assert_eq(cs.misses, 2);
}

Test(cache, exists_alone_then_get)
{
    SRV(&srv, (char[64]){0}, "SET", "LITESTAR:e", "x");
    cr_assert_eq(redkv_exists(st, "e", 1), 1);
    cr_assert_eq(redkv_exists(st, "e", 1), 1);
    cr_assert_eq(stats(st).hits, 1);
    cr_assert_str_eq(get_str(st, "e"), "x", "exists knows no value: the get asks");
    cr_assert_str_eq(get_str(st, "e"), "x");
    cr_assert_eq(stats(st).hits, 2);
}

/* Each write by another client is cb_seen by the very next read. */
Test(cache, other_clients_writes_invalidate)
{
    char out[64];
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_str_eq(get_str(st, "k"), "v1");
    SRV(&srv, out, "SET", "LITESTAR:k", "v2");
    cr_assert_str_eq(get_str(st, "k"), "v2");
    cr_assert_str_eq(get_str(st, "k"), "v2");
    SRV(&srv, out, "DEL", "LITESTAR:k");
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
    cr_assert_eq(redkv_exists(st, "k", 1), 0);
    SRV(&srv, out, "SET", "LITESTAR:k", "v3");
    cr_assert_eq(redkv_exists(st, "k", 1), 1, "a cached absence is invalidated by a create");
    cr_assert_str_eq(get_str(st, "k"), "v3");
    SRV(&srv, out, "PEXPIRE", "LITESTAR:k", "1");
    while (SRV_NUM(&srv, "EXISTS", "LITESTAR:k") != 0)
        usleep(1000);
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
    cr_assert_eq(set_str(st, "a", "1", 0), REDKV_OK);
    cr_assert_eq(set_str(st, "b", "2", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "a"), "1");
    cr_assert_str_eq(get_str(st, "b"), "2");
    uint64_t flushes = stats(st).flushes;
    SRV(&srv, out, "FLUSHALL");
    /* The server queues FLUSHALL's null invalidation while the command runs and may write
       the OK to its sender a moment before it writes ours: wait for it to arrive. */
    while (stats(st).flushes == flushes)
        redkv_exists(st, "zz", 2);
    cr_assert_eq(stats(st).flushes, flushes + 1, "FLUSHALL's null invalidation empties it");
    cr_assert_str_eq(get_str(st, "a"), "(missing)");
    cr_assert_str_eq(get_str(st, "b"), "(missing)");
    cr_assert_gt(stats(st).invalidations, 0);
}

/* With active expiry off and nobody touching the key, the server keeps it past its expiry
   and sends no invalidation: only the expiry the cache took with the value stops it. */
Test(cache, expired_key_not_served)
{
    char out[64];
    SRV(&srv, out, "DEBUG", "SET-ACTIVE-EXPIRE", "0");
    SRV(&srv, out, "SET", "LITESTAR:t", "soon", "PX", "300");
    cr_assert_str_eq(get_str(st, "t"), "soon");
    cr_assert_str_eq(get_str(st, "t"), "soon");
    cr_assert_eq(stats(st).hits, 1);
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 1);
    usleep(400 * 1000);            /* past the expiry: not a timing assertion, a wait */
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 1, "the server still holds the expired key");
    cr_assert_str_eq(get_str(st, "t"), "(missing)");
    cr_assert_eq(redkv_exists(st, "t", 1), 0);
    /* A key with no expiry given one later: the EXPIRE invalidates. */
    SRV(&srv, out, "SET", "LITESTAR:p", "x");
    cr_assert_eq(redkv_exists(st, "p", 1), 1);
    SRV(&srv, out, "PEXPIRE", "LITESTAR:p", "200");
    cr_assert_eq(redkv_exists(st, "p", 1), 1);
    usleep(300 * 1000);
    cr_assert_eq(redkv_exists(st, "p", 1), 0);
}

Test(cache, own_writes_read_back)
{
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_eq(set_str(st, "k", "v2", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v2");
    cr_assert_eq(redkv_delete(st, "k", 1), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
    redkv *child;
    cr_assert_eq(redkv_with_namespace(st, "c", &child), REDKV_OK);
    cr_assert_eq(set_str(child, "k", "child", 0), REDKV_OK);
    cr_assert_str_eq(get_str(child, "k"), "child");
    cr_assert_str_eq(get_str(child, "k"), "child");
    cr_assert_eq(redkv_delete_all(st), REDKV_OK);
    cr_assert_str_eq(get_str(child, "k"), "(missing)");
    /* A renewal is a write: it goes to the server and the entry is dropped. */
    cr_assert_eq(set_str(child, "r", "rv", 10000), REDKV_OK);
    cr_assert_str_eq(get_str(child, "r"), "rv");
    size_t n;
    char buf[8];
    cr_assert_eq(redkv_get_into(child, "r", 1, 0, buf, sizeof buf, &n), REDKV_OK);
    uint64_t hits = stats(st).hits;
    cr_assert_eq(redkv_get_into(child, "r", 1, 60000, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(stats(st).hits, hits, "a renewal is never a hit");
    redkv_close(child);
}

static void async_done(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s, (void)val, (void)vlen, (void)n;
    *(int *)arg = status + 100;
}

static void run_until(redkv *s, const int *flag)
{
    while (!*flag) {
        struct pollfd p = {redkv_fd(s), 0, 0};
        int ev = redkv_events(s);
        p.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        poll(&p, 1, 100);
        redkv_process(s, (p.revents & POLLIN ? REDKV_READ : 0) |
                             (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
}

Test(cache, async_writes_read_back)
{
    int done = 0;
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_eq(redkv_set_async(st, "k", 1, "v2", 2, 0, 0, async_done, &done), REDKV_OK);
    run_until(st, &done);
    cr_assert_eq(done, 100);
    cr_assert_str_eq(get_str(st, "k"), "v2");
    done = 0;
    cr_assert_eq(redkv_delete_async(st, "k", 1, async_done, &done), REDKV_OK);
    run_until(st, &done);
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
}

/* ---- asynchronous reads ------------------------------------------------------------------- */

/* What one asynchronous request's callback saw. */
typedef struct cb_seen {
    int calls, status, order, in_queue_call;
    int64_t n;
    char val[64];
} cb_seen;

static int queueing;                   /* set around the queuing calls */
static int callbacks;                  /* callbacks run so far, for their order */

static void on_seen(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    cb_seen *w = arg;
    (void)s;
    w->calls++;
    w->status = status;
    w->n = n;
    w->order = ++callbacks;
    w->in_queue_call = queueing;
    snprintf(w->val, sizeof w->val, "%.*s", val ? (int)vlen : 0, val ? (const char *)val : "");
}

static int get_async(redkv *s, const char *key, cb_seen *w)
{
    memset(w, 0, sizeof *w);
    queueing = 1;
    int rc = redkv_get_async(s, key, strlen(key), 0, on_seen, w);
    queueing = 0;
    return rc;
}

static int exists_async(redkv *s, const char *key, cb_seen *w)
{
    memset(w, 0, sizeof *w);
    queueing = 1;
    int rc = redkv_exists_async(s, key, strlen(key), on_seen, w);
    queueing = 0;
    return rc;
}

/* Drives s as an event loop would (poll on its fd with its timeout) until w is called back. */
static void drive_until(redkv *s, const cb_seen *w)
{
    for (long long until = now_ms() + 10000; !w->calls && now_ms() < until;) {
        int ev = redkv_events(s), fd = redkv_fd(s);
        struct pollfd p = {fd, (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0)), 0};
        int ms = redkv_timeout_ms(s);
        poll(&p, fd >= 0, ms < 0 || ms > 100 ? 100 : ms);
        redkv_process(s, (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                             (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
    cr_assert_eq(w->calls, 1, "called back once");
}

/* A hit takes no round trip, yet its callback runs from redkv_process, never from the
   queuing call; an event loop is told to call that at once. */
Test(cache, async_hit_called_back_from_process)
{
    cb_seen g, e;
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");          /* tracking on, k cached */
    struct redkv_cache_stats cs = stats(st);
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);
    cr_assert_eq(exists_async(st, "k", &e), REDKV_OK);
    cr_assert_eq(g.calls + e.calls, 0, "not from the queuing call");
    cr_assert_eq(stats(st).hits, cs.hits + 2, "both answered from memory");
    cr_assert_eq(redkv_pending(st), 2);
    cr_assert_eq(redkv_timeout_ms(st), 0, "the loop must call redkv_process at once");
    cr_assert_eq(redkv_process(st, 0), REDKV_OK);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(e.calls, 1);
    cr_assert(!g.in_queue_call && !e.in_queue_call);
    cr_assert_eq(g.status, REDKV_OK);
    cr_assert_str_eq(g.val, "v1");
    cr_assert_eq(e.status, REDKV_OK);
    cr_assert_eq(e.n, 1);
    cr_assert(g.order < e.order, "in the order queued");
    cr_assert_eq(redkv_pending(st), 0);
    /* a known absence is a hit too */
    cr_assert_str_eq(get_str(st, "none"), "(missing)");
    cr_assert_eq(get_async(st, "none", &g), REDKV_OK);
    cr_assert_eq(exists_async(st, "none", &e), REDKV_OK);
    drive_until(st, &e);
    cr_assert_eq(g.status, REDKV_MISSING);
    cr_assert(e.status == REDKV_OK && e.n == 0);
    cr_assert_eq(stats(st).hits, cs.hits + 4);
}

/* An asynchronous miss fills the cache as a blocking one does: the next read is a hit. */
Test(cache, async_miss_fills)
{
    cb_seen g;
    cr_assert_eq(set_str(st, "f", "filled", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "other"), "(missing)");   /* tracking on */
    uint64_t hits = stats(st).hits;
    cr_assert_eq(get_async(st, "f", &g), REDKV_OK);
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "filled");
    cr_assert_eq(stats(st).hits, hits, "the first was a miss");
    cr_assert_eq(get_async(st, "f", &g), REDKV_OK);
    cr_assert_eq(stats(st).hits, hits + 1, "the second a hit");
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "filled");
    cr_assert_str_eq(get_str(st, "f"), "filled");
    cr_assert_eq(stats(st).hits, hits + 2, "and blocking reads hit it too");
}

/* Another client's writes reach the asynchronous reads as they do the blocking ones. */
Test(cache, async_reads_see_other_clients_writes)
{
    char out[64];
    cb_seen g, e;
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "v1");
    SRV(&srv, out, "SET", "LITESTAR:k", "v2");
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "v2", "not the value replaced");
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);     /* v2 cached by that read */
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "v2");
    SRV(&srv, out, "DEL", "LITESTAR:k");
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);
    cr_assert_eq(exists_async(st, "k", &e), REDKV_OK);
    drive_until(st, &e);
    cr_assert_eq(g.status, REDKV_MISSING, "not the value deleted");
    cr_assert(e.status == REDKV_OK && e.n == 0);
}

/* A read queued behind our own asynchronous write of the key reads what was written, though
   the old value is cached and the write is not answered yet. */
Test(cache, async_write_then_read_same_key)
{
    cb_seen w, g, e, other;
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    cr_assert_eq(set_str(st, "j", "j1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_str_eq(get_str(st, "j"), "j1");
    memset(&w, 0, sizeof w);
    cr_assert_eq(redkv_set_async(st, "k", 1, "v2", 2, 0, 0, on_seen, &w), REDKV_OK);
    uint64_t hits = stats(st).hits;
    cr_assert_eq(get_async(st, "k", &g), REDKV_OK);
    cr_assert_eq(get_async(st, "j", &other), REDKV_OK);
    cr_assert_eq(stats(st).hits, hits + 1, "only the other key from memory");
    drive_until(st, &g);
    cr_assert_str_eq(g.val, "v2");
    cr_assert(w.order < g.order, "the write's callback first");
    cr_assert(other.calls == 1 && strcmp(other.val, "j1") == 0);
    cr_assert(w.order < other.order, "a hit waits for the requests queued before it");
    memset(&w, 0, sizeof w);
    cr_assert_eq(redkv_delete_async(st, "k", 1, on_seen, &w), REDKV_OK);
    cr_assert_eq(exists_async(st, "k", &e), REDKV_OK);
    drive_until(st, &e);
    cr_assert(e.status == REDKV_OK && e.n == 0, "the delete is cb_seen");
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
}

/* Callbacks keep the order of the requests, hits among them. */
Test(cache, async_hits_keep_request_order)
{
    cb_seen a, b, c, d;
    cr_assert_eq(set_str(st, "hot", "h", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "hot"), "h");
    cr_assert_eq(get_async(st, "cold", &a), REDKV_OK);  /* a miss: to the server */
    cr_assert_eq(get_async(st, "hot", &b), REDKV_OK);   /* a hit, behind it */
    memset(&c, 0, sizeof c);
    cr_assert_eq(redkv_set_async(st, "x", 1, "1", 1, 0, 0, on_seen, &c), REDKV_OK);
    cr_assert_eq(get_async(st, "hot", &d), REDKV_OK);   /* a hit behind the set */
    cr_assert_neq(redkv_timeout_ms(st), 0, "no hit is ready: a request before it waits");
    drive_until(st, &d);
    cr_assert(a.calls && b.calls && c.calls);
    cr_assert(a.order < b.order && b.order < c.order && c.order < d.order,
              "order %d %d %d %d", a.order, b.order, c.order, d.order);
    cr_assert_str_eq(b.val, "h");
    cr_assert_str_eq(d.val, "h");
}

/* A callback that queues the next read, a hit each time: each redkv_process calls back
   those queued before it, and returns. */
static int chain_left;
static const char *chain_key;

static void on_chain(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)n;
    cr_assert_eq(status, REDKV_OK);
    char want = chain_key[0] == 'c' ? 'x' : 'b';
    cr_assert(vlen == (want == 'x' ? 1 : 2999) && ((const char *)val)[0] == want &&
              ((const char *)val)[vlen - 1] == want, "the value, intact");
    (*(int *)arg)++;
    if (--chain_left > 0)
        cr_assert_eq(redkv_get_async(s, chain_key, strlen(chain_key), 0, on_chain, arg), REDKV_OK);
}

Test(cache, async_hit_chain_returns_each_pass)
{
    int calls = 0;
    cr_assert_eq(set_str(st, "c", "x", 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "c"), "x");
    uint64_t hits = stats(st).hits;
    chain_left = 1000;
    chain_key = "c";
    cr_assert_eq(redkv_get_async(st, "c", 1, 0, on_chain, &calls), REDKV_OK);
    cr_assert_eq(redkv_process(st, 0), REDKV_OK);
    cr_assert_eq(calls, 1, "the hit queued from the callback waits for the next call");
    cr_assert_eq(redkv_pending(st), 1);
    cr_assert_eq(redkv_timeout_ms(st), 0);
    for (int i = 0; i < 2000 && redkv_pending(st) > 0; i++)
        redkv_process(st, 0);          /* no socket read: every one must be a hit */
    cr_assert_eq(calls, 1000);
    cr_assert_eq(stats(st).hits, hits + 1000);
    /* values that outgrow the hits' buffer while a callback holds one of them */
    static char big[3000];
    memset(big, 'b', sizeof big - 1);
    cr_assert_eq(set_str(st, "big", big, 0), REDKV_OK);
    cr_assert_str_eq(get_str(st, "big"), big);
    hits = stats(st).hits;
    calls = 0;
    chain_left = 50;
    chain_key = "big";
    cr_assert_eq(redkv_get_async(st, "big", 3, 0, on_chain, &calls), REDKV_OK);
    cr_assert_eq(redkv_get_async(st, "big", 3, 0, on_chain, &calls), REDKV_OK);
    for (int i = 0; i < 200 && redkv_pending(st) > 0; i++)
        redkv_process(st, 0);
    cr_assert_eq(calls, 51);
    cr_assert_eq(stats(st).hits, hits + 51, "all from memory");
}

/* A steady stream of asynchronous hits allocates nothing (the hits' list and buffer are
   reused). Counted through the allocator hook, set before this test's own open. */
static long hook_allocs;
static void *count_malloc(size_t n) { hook_allocs++; return malloc(n); }
static void *count_realloc(void *p, size_t n) { hook_allocs++; return realloc(p, n); }

static void on_count(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s, (void)val, (void)vlen, (void)n;
    cr_assert_eq(status, REDKV_OK);
    (*(int *)arg)++;
}

Test(cache_alloc, async_hits_allocate_nothing, .timeout = 60)
{
    test_server own;
    int calls = 0;
    cr_assert_eq(srv_start(&own, NULL), 0);
    redkv_set_allocator(count_malloc, count_realloc, free);
    redkv *s = open_cached_at(own.url, NULL, 0, 1 << 20);
    cr_assert_eq(redkv_set(s, "k", 1, "0123456789abcdef0123456789abcdef", 32, 0, 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "0123456789abcdef0123456789abcdef");
    for (int round = 0; round < 2; round++) {
        long before = hook_allocs;
        for (int i = 0; i < 1000; i++) {
            for (int j = 0; j < 8; j++)
                cr_assert_eq(redkv_get_async(s, "k", 1, 0, on_count, &calls), REDKV_OK);
            cr_assert_eq(redkv_exists_async(s, "k", 1, on_count, &calls), REDKV_OK);
            while (redkv_pending(s) > 0)
                redkv_process(s, 0);   /* no socket read: all hits */
        }
        if (round == 1)
            cr_assert_eq(hook_allocs, before, "%ld allocations for 9000 hits", hook_allocs - before);
    }
    cr_assert_eq(calls, 18000);
    redkv_close(s);
    redkv_set_allocator(NULL, NULL, NULL);
    srv_stop(&own);
}

/* Closing with hits waiting calls each back once, with ECONN as every pending request. */
Test(cache, async_hits_called_back_on_close)
{
    cb_seen g, m;
    redkv *s = open_cached(1 << 20);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v");
    cr_assert_eq(get_async(s, "k", &g), REDKV_OK);
    cr_assert_eq(get_async(s, "nothing", &m), REDKV_OK);
    redkv_close(s);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, REDKV_ECONN);
    cr_assert_eq(m.calls, 1);
    cr_assert(m.order > 0 && g.order > 0);
}

/* 10x cache_bytes of distinct keys: never above the bound, the oldest evicted. */
Test(cache, memory_bound_held)
{
    const size_t bytes = 64 * 1024;
    redkv *s = open_cached(bytes);
    char val[1000], key[32];
    memset(val, 'v', sizeof val);
    int keys = (int)(10 * bytes / sizeof val);
    for (int i = 0; i < keys; i++) {
        snprintf(key, sizeof key, "m%d", i);
        cr_assert_eq(redkv_set(s, key, strlen(key), val, sizeof val, 0, 0), REDKV_OK);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < keys; i++) {
            snprintf(key, sizeof key, "m%d", i);
            char back[1000];
            size_t n;
            cr_assert_eq(redkv_get_into(s, key, strlen(key), 0, back, sizeof back, &n), REDKV_OK);
            cr_assert_eq(n, sizeof val);
            struct redkv_cache_stats cs = stats(s);
            cr_assert_leq(cs.bytes, bytes, "%zu bytes held", cs.bytes);
        }
    struct redkv_cache_stats cs = stats(s);
    cr_assert_gt(cs.evictions, 0);
    cr_assert_gt(cs.entries, 10);
    /* The newest are there: the last key read is a hit. */
    uint64_t hits = cs.hits;
    snprintf(key, sizeof key, "m%d", keys - 1);
    cr_assert_eq(redkv_exists(s, key, strlen(key)), 1);
    cr_assert_eq(stats(s).hits, hits + 1);
    redkv_close(s);
}

/* A server without HELLO (as Redis 5): the cache stays off, every read is right. */
Test(cache, server_without_hello_falls_back)
{
    test_server old;
    const char *const extra[] = {"--rename-command", "HELLO", "", NULL};
    cr_assert_eq(srv_start(&old, extra), 0);
    redkv *s = open_cached_at(old.url, NULL, 0, 1 << 20);
    char out[64];
    cr_assert_eq(set_str(s, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v1");
    SRV(&old, out, "SET", "LITESTAR:k", "v2");
    cr_assert_str_eq(get_str(s, "k"), "v2");
    struct redkv_cache_stats cs = stats(s);
    cr_assert_eq(cs.tracking, -1);
    cr_assert_eq(cs.hits, 0);
    redkv_close(s);
    srv_stop(&old);
}

Test(cache, stats_without_cache)
{
    redkv *s = open_on(&srv, NULL);
    struct redkv_cache_stats cs;
    cr_assert_eq(redkv_cache_stats(s, &cs), REDKV_OK);
    cr_assert_eq(cs.hits + cs.misses + cs.bytes, 0);
    cr_assert_eq(redkv_cache_stats(NULL, &cs), REDKV_EINVAL);
    redkv_close(s);
}

/* ---- Redis Cluster: a tracking connection per master ---------------------------------------- */

#ifndef REDKV_NO_CLUSTER
TestSuite(cache_cluster, .init = cluster_up, .fini = cluster_stop, .timeout = 120);


/* One key (without the namespace "C:") per master, in keys[3], and their masters. */
static void key_per_master(char keys[3][16], test_server *masters[3])
{
    int found = 0;
    for (int i = 0; found < 3 && i < 1000; i++) {
        char key[16], full[32], out[64];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(full, sizeof full, "C:%s", key);
        SRV(&cluster_node[0], out, "CLUSTER", "KEYSLOT", full);
        test_server *m = cluster_master_of(atoi(out));
        int seen_before = 0;
        for (int j = 0; j < found; j++)
            seen_before |= masters[j] == m;
        if (!m || seen_before)
            continue;
        masters[found] = m;
        snprintf(keys[found++], 16, "%s", key);
    }
    cr_assert_eq(found, 3, "a key on each master");
}

static redkv *open_cached_cluster(void) { return open_cached_at(cluster_url, "C", 5000, 1 << 20); }

/* The id of the RESP3 (tracking) connection on s, or -1. */
static long long tracking_id_on(const test_server *s)
{
    char out[65536];
    SRV(s, out, "CLIENT", "LIST");
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, " resp=3") && strncmp(line, "id=", 3) == 0)
            return atoll(line + 3);
    return -1;
}

/* Hits and misses over keys of every master, blocking and asynchronous; each master's own
   invalidations reach us. */
Test(cache_cluster, hits_and_invalidations_on_every_master)
{
    char keys[3][16], out[64], val[32];
    test_server *masters[3];
    key_per_master(keys, masters);
    redkv *s = open_cached_cluster();
    for (int i = 0; i < 3; i++) {
        snprintf(val, sizeof val, "v%d", i);
        cr_assert_eq(set_str(s, keys[i], val, 0), REDKV_OK);
        cr_assert_str_eq(get_str(s, keys[i]), val);
        cr_assert_geq(tracking_id_on(masters[i]), 0, "a tracking connection on master %d", i);
    }
    /* Each master's tracking coming on emptied the cache (conservative): read them again. */
    for (int i = 0; i < 3; i++)
        get_str(s, keys[i]);
    struct redkv_cache_stats cs = stats(s);
    for (int i = 0; i < 3; i++) {
        snprintf(val, sizeof val, "v%d", i);
        cr_assert_str_eq(get_str(s, keys[i]), val);
    }
    struct redkv_cache_stats now = stats(s);
    cr_assert_eq(now.hits, cs.hits + 3, "a hit on every master");
    cr_assert_eq(now.misses, cs.misses);
    cr_assert_eq(now.tracking, 1);
    cb_seen g[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(get_async(s, keys[i], &g[i]), REDKV_OK);
    cr_assert_eq(stats(s).hits, now.hits + 3, "asynchronous reads hit on every master");
    cr_assert_eq(redkv_process(s, 0), REDKV_OK);
    for (int i = 0; i < 3; i++) {
        snprintf(val, sizeof val, "v%d", i);
        cr_assert(g[i].calls == 1 && strcmp(g[i].val, val) == 0, "%s", g[i].val);
    }
    /* another client writes on each master: each invalidation comes from that master */
    for (int i = 0; i < 3; i++) {
        char full[32];
        snprintf(full, sizeof full, "C:%s", keys[i]);
        snprintf(val, sizeof val, "w%d", i);
        SRV(masters[i], out, "SET", full, val);
        cr_assert_str_eq(get_str(s, keys[i]), val, "master %d's write seen", i);
        cr_assert_eq(get_async(s, keys[i], &g[i]), REDKV_OK);
        drive_until(s, &g[i]);
        cr_assert_str_eq(g[i].val, val);
    }
    cr_assert_geq(stats(s).invalidations, 3);
    redkv_close(s);
}

/* One master's tracking connection killed: that master's writes can no longer reach us,
   so nothing learnt before is served; the cache comes back on a new connection. */
Test(cache_cluster, tracking_killed_on_one_master)
{
    char keys[3][16], out[64], num[24], full[32];
    test_server *masters[3];
    key_per_master(keys, masters);
    redkv *s = open_cached_cluster();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(set_str(s, keys[i], "old", 0), REDKV_OK);
        cr_assert_str_eq(get_str(s, keys[i]), "old");
    }
    for (int i = 0; i < 3; i++)        /* again: each master's tracking on emptied it */
        cr_assert_str_eq(get_str(s, keys[i]), "old");
    uint64_t before = stats(s).hits;
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(get_str(s, keys[i]), "old");
    cr_assert_eq(stats(s).hits, before + 3, "every key cached");
    uint64_t flushes = stats(s).flushes;
    long long id = tracking_id_on(masters[1]);
    cr_assert_geq(id, 0);
    snprintf(num, sizeof num, "%lld", id);
    SRV(masters[1], out, "CLIENT", "KILL", "ID", num);
    snprintf(full, sizeof full, "C:%s", keys[1]);
    SRV(masters[1], out, "SET", full, "new");
    cr_assert_str_eq(get_str(s, keys[1]), "new", "no stale read after the loss");
    cr_assert_gt(stats(s).flushes, flushes, "the loss empties the cache");
    cr_assert_str_eq(get_str(s, keys[0]), "old");
    cr_assert_str_eq(get_str(s, keys[1]), "new");
    uint64_t hits = stats(s).hits;
    cr_assert_str_eq(get_str(s, keys[1]), "new");
    cr_assert_eq(stats(s).hits, hits + 1, "served again once tracking is back");
    cr_assert_geq(tracking_id_on(masters[1]), 0);
    redkv_close(s);
}
#endif

/* ---- Redis Sentinel: tracking follows the master -------------------------------------------- */

#ifndef REDKV_NO_SENTINEL
TestSuite(cache_sentinel, .init = sentinel_up, .fini = sentinel_stop, .timeout = 150);

/* Tracks the master the sentinels name; after SENTINEL FAILOVER the cache is emptied and
   reads see the new master's values, never the old ones. */
Test(cache_sentinel, failover_empties_and_reads_the_new_master)
{
    char out[256];
    redkv *s = open_cached_at(snt_url, "S", 8000, 1 << 20);
    cr_assert_eq(set_str(s, "k", "v1", 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v1");
    cr_assert_str_eq(get_str(s, "k"), "v1");
    cr_assert_eq(stats(s).hits, 1);
    cr_assert_geq(tracking_id_on(&snt_data[0]), 0, "tracking on the master");
    SRV(&snt_data[0], out, "SET", "S:k", "v2");
    cr_assert_str_eq(get_str(s, "k"), "v2", "the master's invalidation reached us");
    cb_seen g;
    cr_assert_eq(get_async(s, "k", &g), REDKV_OK);
    drive_until(s, &g);
    cr_assert_str_eq(g.val, "v2");

    uint64_t flushes = stats(s).flushes;
    cr_assert_eq(SRV(&snt_sentinel[1], out, "SENTINEL", "FAILOVER", SNT_MASTER_NAME), RESP_STRING,
                 "%s", out);
    long long until = now_ms() + 30000;
    while (!(snt_named_port(NULL) == snt_data[1].port && snt_is_master(&snt_data[1], NULL) &&
             !snt_is_master(&snt_data[0], NULL)) && now_ms() < until)
        usleep(50000);
    cr_assert(snt_is_master(&snt_data[1], NULL) && !snt_is_master(&snt_data[0], NULL));
    /* the new master's value, written there directly */
    SRV(&snt_data[1], out, "SET", "S:k", "v3");
    for (until = now_ms() + 3000; now_ms() < until;) {
        const char *v = get_str(s, "k");
        cr_assert(strcmp(v, "v2") != 0 || stats(s).flushes == flushes,
                  "a stale value after the cache was emptied");
        if (strcmp(v, "v3") == 0 && stats(s).flushes > flushes)
            break;
        usleep(20000);
    }
    cr_assert_gt(stats(s).flushes, flushes, "the failover emptied the cache");
    cr_assert_str_eq(get_str(s, "k"), "v3");
    uint64_t hits = stats(s).hits;
    cr_assert_str_eq(get_str(s, "k"), "v3");
    cr_assert_eq(stats(s).hits, hits + 1, "served from memory again, tracked on the new master");
    cr_assert_geq(tracking_id_on(&snt_data[1]), 0, "tracking on the new master");
    SRV(&snt_data[1], out, "SET", "S:k", "v4");
    cr_assert_str_eq(get_str(s, "k"), "v4", "the new master's invalidations reach us");
    redkv_close(s);
}
#endif

/* ---- the race --------------------------------------------------------------------------- */

static long race_rounds(void)
{
    const char *e = getenv("REDKV_CACHE_RACE_ROUNDS");
    return e && atol(e) > 0 ? atol(e) : 10000;
}

/* The tracking connection's id: the one client speaking RESP3. */
static long long tracking_client_id(void)
{
    char out[65536];
    SRV(&srv, out, "CLIENT", "LIST");
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, " resp=3") && strncmp(line, "id=", 3) == 0)
            return atoll(line + 3);
    return -1;
}

/* The writer: sets LITESTAR:n to 1, 2, ... and writes each n to fd once the set is
   acknowledged; kill_at: CLIENT KILL the reader's tracking connection before that round. */
static void writer(int fd, long rounds, long kill_at)
{
    redkv *w = open_on(&srv, NULL);
    char num[24];
    for (long n = 1; w && n <= rounds; n++) {
        if (n == kill_at) {
            long long id = tracking_client_id();
            snprintf(num, sizeof num, "%lld", id);
            char out[64];
            SRV(&srv, out, "CLIENT", "KILL", "ID", num);
            fprintf(stderr, "killed tracking client %lld: %s\n", id, out);
        }
        int len = snprintf(num, sizeof num, "%ld", n), rc, tries = 0;
        /* Slow machines (valgrind) may time a set out: sending the same n again is safe. */
        while ((rc = redkv_set(w, "n", 1, num, (size_t)len, 0, 0)) != REDKV_OK && ++tries < 5)
            fprintf(stderr, "writer: set %ld: %s, again\n", n, redkv_last_error());
        if (rc != REDKV_OK) {
            redkv_close(w);
            _exit(2);
        }
        if (write(fd, &n, sizeof n) != sizeof n)
            break;
    }
    redkv_close(w);                    /* valgrind follows this process too: no leak */
    _exit(0);
}

/* Runs before Criterion's main when this binary is started as the race's writer. */
__attribute__((constructor)) static void writer_main(void)
{
    const char *e = getenv("REDKV_CACHE_WRITER");
    int fd;
    long rounds, kill_at;
    if (!e || sscanf(e, "%d %d %ld %ld", &fd, &srv.port, &rounds, &kill_at) != 4)
        return;
    snprintf(srv.url, sizeof srv.url, "redis://127.0.0.1:%d", srv.port);
    writer(fd, rounds, kill_at);
}

/* The reader: reads "n" again and again; whenever the writer has told it of round n, the
   value read after must be >= n. Returns the stale reads. */
static long race(long kill_at)
{
    long rounds = race_rounds(), told = 0, stale = 0;
    cr_assert_str_eq(get_str(st, "n"), "(missing)");   /* tracking on before the writer */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* A fresh image (this binary again, see writer_main): no copy of the test runner's
           heap for valgrind to report. */
        char env[96];
        close(fds[0]);
        snprintf(env, sizeof env, "%d %d %ld %ld", fds[1], srv.port, rounds, kill_at);
        setenv("REDKV_CACHE_WRITER", env, 1);
        execl(build_path("tests/redkv-tests"), "redkv-tests", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int status, gone = 0;
    while (told < rounds && !gone) {
        long n;
        gone = waitpid(pid, &status, WNOHANG) == pid;   /* a writer that died ends it */
        while (read(fds[0], &n, sizeof n) == sizeof n)
            told = n;
        const char *v = get_str(st, "n");
        long got = strcmp(v, "(missing)") == 0 ? 0 : atol(v);
        if (got < told) {
            stale++;
            fprintf(stderr, "stale: read %ld after being told %ld\n", got, told);
        }
    }
    if (!gone)
        waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the writer failed (status 0x%x)", status);
    close(fds[0]);
    return stale;
}

Test(cache_race, reader_never_behind_writer, .init = up, .fini = down, .timeout = 600)
{
    long stale = race(0);
    struct redkv_cache_stats cs = stats(st);
    fprintf(stderr, "cache race: %ld rounds, %llu hits, %llu misses, %ld stale\n", race_rounds(),
            (unsigned long long)cs.hits, (unsigned long long)cs.misses, stale);
    cr_assert_eq(stale, 0);
    cr_assert_gt(cs.hits, 0, "the race must exercise hits");
}

Test(cache_race, tracking_killed_midway, .init = up, .fini = down, .timeout = 600)
{
    uint64_t flushes = stats(st).flushes;
    long stale = race(race_rounds() / 2);
    struct redkv_cache_stats cs = stats(st);
    fprintf(stderr, "cache race with CLIENT KILL: %llu hits, %llu misses, %llu flushes, %ld stale\n",
            (unsigned long long)cs.hits, (unsigned long long)cs.misses,
            (unsigned long long)cs.flushes, stale);
    cr_assert_eq(stale, 0);
    cr_assert_geq(cs.flushes, flushes + 2, "the loss and the new tracking each empty it");
    cr_assert_eq(cs.tracking, 1, "tracking is back on");
}
