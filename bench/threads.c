/* threads.c - blocking GETs from 1, 8 and 32 threads: one redkv store with default options
 * shared by every thread (as a threaded server would use it), against hiredis used as its
 * README says, a context per thread. Same server, same keys, 32-byte values. Rounds
 * interleave the two (A B B A), each slice starting its threads anew; the figure is the
 * median of the rounds. Each call's latency is recorded too, and each side's p50, p99 and
 * p99.9 over every round are printed: sharing a connection must not buy throughput with a
 * tail. REDKV_BENCH_POOL=N in the environment sets redkv's pool_size (0: the default), to
 * compare sizes by hand. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define MAX_THREADS 32
#define MAX_SAMPLES (1 << 21)       /* latencies kept per side and thread count */

typedef struct lat {
    float *us;
    long n;
} lat;

typedef struct th_ctx {
    redkv *s;
    void *h[MAX_THREADS];     /* hiredis contexts, one per thread */
    int nthreads;
    lat lat[2];
} th_ctx;

typedef struct th_job {
    th_ctx *x;
    int who, id;
    long calls;
    float *us;                /* this thread's latencies, merged after the join */
} th_job;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void one_get(th_job *j, long i)
{
    size_t klen, vlen;
    int k = (int)((i * 7 + j->id * 131) % NKEYS);
    if (j->who == 0) {
        char buf[64];
        const char *key = bench_key(k, &klen);
        int rc = redkv_get_into(j->x->s, key, klen, 0, buf, sizeof buf, &vlen);
        if (rc != REDKV_OK || vlen != VAL_LEN)
            die("redkv threads get: %s (%s)", redkv_strerror(rc), redkv_last_error());
        return;
    }
#ifdef HAVE_HIREDIS
    const char *key = bench_full_key(k, &klen);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, klen};
    redisContext *c = j->x->h[j->id];
    redisReply *r = redisCommandArgv(c, 2, argv, lens);
    if (!r || r->type != REDIS_REPLY_STRING)
        die("hiredis threads get: %s", r ? "unexpected reply" : c->errstr);
    freeReplyObject(r);
#endif
}

static void *th_main(void *arg)
{
    th_job *j = arg;
    for (long i = 0; i < j->calls; i++) {
        double t0 = now_us();
        one_get(j, i);
        if (j->us)
            j->us[i] = (float)(now_us() - t0);
    }
    return NULL;
}

/* work_fn: units calls spread over the threads, latencies kept while there is room. */
static void th_work(void *arg, int who, long units)
{
    th_ctx *x = arg;
    pthread_t t[MAX_THREADS];
    th_job jobs[MAX_THREADS];
    long per = units / x->nthreads;
    lat *l = &x->lat[who];
    for (int i = 0; i < x->nthreads; i++) {
        jobs[i] = (th_job){x, who, i, per, NULL};
        if (l->n + (long)x->nthreads * per <= MAX_SAMPLES)
            jobs[i].us = l->us + l->n + (long)i * per;
        if (pthread_create(&t[i], NULL, th_main, &jobs[i]) != 0)
            die("pthread_create failed");
    }
    for (int i = 0; i < x->nthreads; i++)
        pthread_join(t[i], NULL);
    if (jobs[0].us)
        l->n += (long)x->nthreads * per;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* "p50/p99/p99.9" in microseconds. */
static void percentiles(lat *l, char *out, size_t cap, double p[3])
{
    if (l->n == 0) {
        snprintf(out, cap, "n/a");
        return;
    }
    qsort(l->us, (size_t)l->n, sizeof *l->us, cmp_float);
    static const double at[3] = {0.50, 0.99, 0.999};
    for (int i = 0; i < 3; i++)
        p[i] = l->us[(long)(at[i] * (double)(l->n - 1))];
    snprintf(out, cap, "%.0f/%.0f/%.0f", p[0], p[1], p[2]);
}

static void one_count(int nthreads)
{
    th_ctx x;
    memset(&x, 0, sizeof x);
    x.nthreads = nthreads;
    const char *pool = getenv("REDKV_BENCH_POOL");
    x.s = bench_store(g_srv.port, pool ? atoi(pool) : 0);
    for (int who = 0; who < 2; who++) {
        if (!(x.lat[who].us = malloc(MAX_SAMPLES * sizeof(float))))
            die("out of memory");
    }
#ifdef HAVE_HIREDIS
    for (int i = 0; i < nthreads; i++) {
        struct timeval tv = {5, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", g_srv.port, tv);
        if (!c || c->err)
            die("hiredis connect: %s", c ? c->errstr : "out of memory");
        x.h[i] = c;
    }
#endif
    long slice = (g_quick ? 4000 : 12000) / nthreads * nthreads;
    int slices = g_quick ? 4 : 8;
    double warm[2];
    interleave(th_work, &x, slice, 1, warm);       /* connect, and warm up both */
    x.lat[0].n = x.lat[1].n = 0;
    rounds rr;
    memset(&rr, 0, sizeof rr);
    progress("threads: %d thread(s), %d rounds of %ld GETs each side, in slices of %ld",
             nthreads, g_rounds, slice * slices, slice);
    for (int r = 0; r < g_rounds; r++) {
        double rate[2];
        interleave(th_work, &x, slice, slices, rate);
        rounds_add(&rr, rate);
    }
    char name[56];
    snprintf(name, sizeof name, "GET, %d thread%s, one store", nthreads, nthreads > 1 ? "s" : "");
    row *w = add_row("threads", name, "calls/s");
    snprintf(w->refname, sizeof w->refname, "hiredis, ctx per thread");
    fmt_num(w->redkv, sizeof w->redkv, rounds_median(&rr, 0));
    double goal = nthreads > 1 ? 2.0 : 1.0;
    snprintf(w->goal, sizeof w->goal, ">= %.1fx", goal);
#ifdef HAVE_HIREDIS
    fmt_num(w->ref, sizeof w->ref, rounds_median(&rr, 1));
    w->ratio = rounds_ratio(&rr);
    snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= goal ? "ok" : "SHORT");
#else
    snprintf(w->ref, sizeof w->ref, "n/a");
#endif
    double pa[3] = {0, 0, 0}, pb[3] = {0, 0, 0};
    row *l = add_row("threads", "  latency per call p50/p99/p99.9", "us");
    percentiles(&x.lat[0], l->redkv, sizeof l->redkv, pa);
    percentiles(&x.lat[1], l->ref, sizeof l->ref, pb);
    snprintf(l->refname, sizeof l->refname, "hiredis, ctx per thread");
    if (pb[2] > 0)
        l->ratio = pa[2] / pb[2];      /* of the p99.9 */
    snprintf(l->goal, sizeof l->goal, "information");
#ifdef HAVE_HIREDIS
    for (int i = 0; i < nthreads; i++)
        redisFree(x.h[i]);
#endif
    free(x.lat[0].us);
    free(x.lat[1].us);
    redkv_close(x.s);
}

void section_threads(void)
{
    static const int counts[] = {1, 8, 32};
    redkv *s = bench_store(g_srv.port, 1);
    for (int i = 0; i < NKEYS; i++) {
        size_t klen;
        const char *k = bench_key(i, &klen);
        if (redkv_set(s, k, klen, g_val, VAL_LEN, 0, 0) != REDKV_OK)
            die("threads: SET failed: %s", redkv_last_error());
    }
    redkv_close(s);
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        one_count(counts[i]);
    add_note("threads: latency ratio = redkv's p99.9 / hiredis's p99.9 (lower is better); "
             "redkv pool_size %s", getenv("REDKV_BENCH_POOL") ? getenv("REDKV_BENCH_POOL") : "default");
}
