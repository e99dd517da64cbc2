/* cache.c - the client-side cache section: a hot get served from memory against the same
 * get going to the server (the reference here is redkv without cache_bytes), one thread and
 * eight threads. Each hit costs one non-blocking recv on the tracking socket (the
 * guarantee: every invalidation that reached us is taken in first): a system call per
 * hit, which the rows' figure includes. The asynchronous rows drive get_async through
 * redkv_process as an event loop does: a hit's callback runs from the next process call. */
#include "fmacros.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define CACHE_KEY "hot"
#define CACHE_THREADS 8

static redkv *open_cache_store(size_t cache_bytes, int pool)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = g_srv.url;
    o.ns = BENCH_NS;
    o.pool_size = pool;
    o.cache_bytes = cache_bytes;
    if (redkv_open(&s, &o) != REDKV_OK)
        die("cache: open: %s", redkv_last_error());
    return s;
}

static void hot_gets(redkv *s, long n)
{
    char buf[VAL_LEN + 1];
    size_t len;
    for (long i = 0; i < n; i++)
        if (redkv_get_into(s, CACHE_KEY, sizeof CACHE_KEY - 1, 0, buf, sizeof buf, &len) != REDKV_OK)
            die("cache: get: %s", redkv_last_error());
}

typedef struct cache_pair {
    redkv *cached, *plain;
} cache_pair;

static void cache_work(void *ctx, int who, long units)
{
    cache_pair *p = ctx;
    hot_gets(who == 0 ? p->cached : p->plain, units);
}

typedef struct cache_thread_arg {
    redkv *s;
    long n;
} cache_thread_arg;

static void *cache_thread(void *arg)
{
    cache_thread_arg *a = arg;
    hot_gets(a->s, a->n);
    return NULL;
}

/* Eight threads each doing units gets on s: gets per second over all of them. */
static void cache_threads_work(void *ctx, int who, long units)
{
    cache_pair *p = ctx;
    pthread_t t[CACHE_THREADS];
    cache_thread_arg a = {who == 0 ? p->cached : p->plain, units / CACHE_THREADS};
    for (int i = 0; i < CACHE_THREADS; i++)
        pthread_create(&t[i], NULL, cache_thread, &a);
    for (int i = 0; i < CACHE_THREADS; i++)
        pthread_join(t[i], NULL);
}

/* ---- asynchronous: get_async through redkv_process ----------------------------------------- */

typedef struct async_hot {
    long done, errors;
} async_hot;

static void async_hot_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    async_hot *h = arg;
    (void)s, (void)val, (void)vlen, (void)n;
    h->done++;
    h->errors += status != REDKV_OK;
}

/* One pass of an event loop: poll what s waits for (not past its timeout), then process. */
static void async_pass(redkv *s)
{
    int ev = redkv_events(s), fd = redkv_fd(s);
    struct pollfd p = {fd, (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0)), 0};
    if (poll(&p, fd >= 0, redkv_timeout_ms(s)) < 0)
        return;
    if (redkv_process(s, (p.revents & (POLLIN | POLLERR | POLLHUP) ? REDKV_READ : 0) |
                             (p.revents & (POLLOUT | POLLERR | POLLHUP) ? REDKV_WRITE : 0)) < 0)
        die("cache: redkv_process: %s", redkv_last_error());
}

/* units gets of the hot key, depth of them queued at a time, each batch driven to its end. */
static void async_gets(redkv *s, long units, int depth)
{
    async_hot h = {0, 0};
    for (long i = 0; i < units; i += depth) {
        long batch = units - i < depth ? units - i : depth, want = h.done + batch;
        for (long j = 0; j < batch; j++)
            if (redkv_get_async(s, CACHE_KEY, sizeof CACHE_KEY - 1, 0, async_hot_cb, &h) != REDKV_OK)
                die("cache: get_async: %s", redkv_last_error());
        while (h.done < want)
            async_pass(s);
    }
    if (h.errors)
        die("cache: %ld async gets failed", h.errors);
}

static void async_one_work(void *ctx, int who, long units)
{
    cache_pair *p = ctx;
    async_gets(who == 0 ? p->cached : p->plain, units, 1);
}

static void async_deep_work(void *ctx, int who, long units)
{
    cache_pair *p = ctx;
    async_gets(who == 0 ? p->cached : p->plain, units, 32);
}

/* A row of cached against plain (refname); plain_div: the reference does that many times
   fewer units (about the same time); goal: the ratio wanted (0: none, a figure only). */
static void cache_row(const char *name, work_fn *work, cache_pair *p, long cached_units,
                      long plain_div, const char *refname, double goal)
{
    rounds r = {0};
    long plain_units = cached_units / plain_div > 200 ? cached_units / plain_div : 200;
    for (int round = 0; round < g_rounds; round++) {
        /* Each side timed on its own, in turn (the round trip does far fewer gets for
           about the same time); the order alternates from round to round. */
        double rate[2];
        for (int k = 0; k < 2; k++) {
            int who = (round + k) % 2;
            long n = who == 0 ? cached_units : plain_units;
            double t0 = now_s();
            work(p, who, n);
            rate[who] = n / (now_s() - t0);
        }
        rounds_add(&r, rate);
    }
    row *w = add_row("cache", name, "gets/s");
    fmt_num(w->redkv, sizeof w->redkv, rounds_median(&r, 0));
    fmt_num(w->ref, sizeof w->ref, rounds_median(&r, 1));
    snprintf(w->refname, sizeof w->refname, "%s", refname);
    w->ratio = rounds_ratio(&r);
    if (goal > 0) {
        snprintf(w->goal, sizeof w->goal, ">= %gx", goal);
        snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= goal ? "ok" : "SHORT");
    }
}

void section_cache(void)
{
    progress("  ... cache: hot get from memory vs a round trip, 1 and %d threads", CACHE_THREADS);
    cache_pair p = {open_cache_store(1 << 20, CACHE_THREADS), open_cache_store(0, CACHE_THREADS)};
    if (redkv_set(p.plain, CACHE_KEY, sizeof CACHE_KEY - 1, g_val, VAL_LEN, 0, 0) != REDKV_OK)
        die("cache: set: %s", redkv_last_error());
    hot_gets(p.cached, 10);
    struct redkv_cache_stats cs;
    redkv_cache_stats(p.cached, &cs);
    if (cs.tracking != 1 || cs.hits == 0)
        die("cache: the cache did not come on (tracking %d)", cs.tracking);
    long units = g_quick ? 100000 : 400000;
    cache_row("hot get, 1 thread", cache_work, &p, units, 100, "round-trip get", 50);
    cache_row("hot get, 8 threads", cache_threads_work, &p, units, 100, "round-trip get", 50);
    /* a hit is no round trip, but still a recv and a pass of the loop: 1 in flight against
       a round trip each; 32 in flight against a pipeline of 32, which shares its system
       calls among them */
    cache_row("hot get_async, 1 in flight", async_one_work, &p, units / 2, 20,
              "get_async, no cache", 5);
    cache_row("hot get_async, 32 in flight", async_deep_work, &p, units / 2, 2,
              "get_async x32, no cache", 0);
    add_note("cache: each hit makes one recv() on the tracking socket (invalidations first); "
             "the 8-thread rows share one lock and one socket; an async hit is called back "
             "from the next redkv_process; with 32 in flight a pipeline shares its system "
             "calls among 32 gets, as hits cannot (a recv each): no goal, the figure.");
    redkv_close(p.cached);
    redkv_close(p.plain);
}
