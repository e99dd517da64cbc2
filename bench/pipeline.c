/* pipeline.c - throughput at depth 64: redkv's asynchronous API driven by a poll() loop
 * that keeps 64 requests in flight (each callback queues the next), against hiredis
 * pipelining (redisAppendCommandArgv 64 times, then redisGetReply 64 times), and
 * redis-benchmark -P 64 -t set,get on the same server (one connection, as we use, and its
 * default 50). The same work: SET key 32-byte-value (no expiry, as redis-benchmark's SET),
 * GET key, over 1000 keys; and GET with renewal (redkv_get_async with renew_for), and a
 * count (redkv_incr_async with a window), against hiredis pipelining EVALSHA of the very same
 * scripts (redis-benchmark has no such test). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "store.h"      /* rk_renew_script(), rk_incr_script(): the reference runs them too */

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define DEPTH 64

enum { PL_SET, PL_GET, PL_RENEW, PL_INCR, NPL };
static const char *const PL_NAME[NPL] = {"SET (depth 64)", "GET (depth 64)",
                                         "GET+renew (EVALSHA, depth 64)",
                                         "incr, 60 s window (EVALSHA, depth 64)"};
/* What each row must reach against hiredis pipelining (#19's goals; incr as renew). */
static const char *const PL_GOAL[NPL] = {">= 1.0x", ">= 1.5x", ">= 1.0x", ">= 1.0x"};
static const double PL_GOAL_X[NPL] = {1.0, 1.5, 1.0, 1.0};
#define NRB 2                       /* rows redis-benchmark runs too: SET, GET */
#define RENEW_MS 1800000
#define TEXT_(n) #n
#define TEXT(n) TEXT_(n)                /* a number macro's digits, for hiredis's argv */
static char g_pl_sha[41];           /* the renew script's, for hiredis's EVALSHA */
static char g_incr_sha[41];         /* the counter script's */
#define COUNTER "counter"           /* the incr row's one key */
#define WINDOW_MS 60000

typedef struct pl_state {
    redkv *s;
    int op;
    long issued, done, total;
    long errors;
} pl_state;

static void issue(pl_state *st);

static void pl_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    pl_state *st = arg;
    (void)s; (void)val; (void)vlen; (void)n;
    st->done++;
    if (status != REDKV_OK)
        st->errors++;
    if (st->issued < st->total)
        issue(st);
}

static void issue(pl_state *st)
{
    size_t klen;
    const char *k = bench_key((int)(st->issued % NKEYS), &klen);
    int rc = st->op == PL_SET ? redkv_set_async(st->s, k, klen, g_val, VAL_LEN, 0, 0, pl_cb, st)
           : st->op == PL_INCR ? redkv_incr_async(st->s, COUNTER, sizeof COUNTER - 1, 1,
                                                  WINDOW_MS, pl_cb, st)
                              : redkv_get_async(st->s, k, klen, st->op == PL_RENEW ? RENEW_MS : 0,
                                                pl_cb, st);
    if (rc != REDKV_OK)
        die("redkv async: %s", redkv_last_error());
    st->issued++;
}

/* Runs total requests keeping DEPTH in flight; returns requests per second. */
double redkv_pipelined(redkv *s, int op, long total)
{
    pl_state st = {s, op, 0, 0, total, 0};
    double t0 = now_s();
    while (st.issued < DEPTH && st.issued < total)
        issue(&st);
    while (st.done < total) {
        struct pollfd pfd;
        int ev = redkv_events(s);
        pfd.fd = redkv_fd(s);
        pfd.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        pfd.revents = 0;
        int ready = poll(&pfd, pfd.fd >= 0 ? 1 : 0, redkv_timeout_ms(s));
        if (ready < 0)
            continue;
        int got = (pfd.revents & (POLLIN | POLLERR | POLLHUP) ? REDKV_READ : 0) |
                  (pfd.revents & (POLLOUT | POLLERR | POLLHUP) ? REDKV_WRITE : 0);
        int rc = redkv_process(s, got);
        if (rc < 0)
            die("redkv_process: %s", redkv_last_error());
    }
    double dt = now_s() - t0;
    if (st.errors)
        die("redkv pipelined: %ld errors", st.errors);
    return (double)total / dt;
}

#ifdef HAVE_HIREDIS
static double hiredis_pipelined(redisContext *c, int op, long total)
{
    double t0 = now_s();
    for (long i = 0; i < total; i += DEPTH) {
        long batch = total - i < DEPTH ? total - i : DEPTH;
        for (long j = 0; j < batch; j++) {
            size_t klen;
            const char *k = bench_full_key((int)((i + j) % NKEYS), &klen);
            if (op == PL_RENEW) {
                const char *argv[5] = {"EVALSHA", g_pl_sha, "1", k, TEXT(RENEW_MS)};
                size_t lens[5] = {7, 40, 1, klen, sizeof TEXT(RENEW_MS) - 1};
                redisAppendCommandArgv(c, 5, argv, lens);
                continue;
            }
            if (op == PL_INCR) {
                const char *argv[6] = {"EVALSHA", g_incr_sha, "1", BENCH_NS ":" COUNTER, "1",
                                       TEXT(WINDOW_MS)};
                size_t lens[6] = {7, 40, 1, sizeof BENCH_NS ":" COUNTER - 1, 1,
                                  sizeof TEXT(WINDOW_MS) - 1};
                redisAppendCommandArgv(c, 6, argv, lens);
                continue;
            }
            const char *argv[3] = {op == PL_SET ? "SET" : "GET", k, g_val};
            size_t lens[3] = {3, klen, VAL_LEN};
            redisAppendCommandArgv(c, op == PL_SET ? 3 : 2, argv, lens);
        }
        for (long j = 0; j < batch; j++) {
            void *r;
            if (redisGetReply(c, &r) != REDIS_OK)
                die("hiredis pipelined: %s", c->errstr);
            if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
                die("hiredis pipelined: %s", ((redisReply *)r)->str);
            freeReplyObject(r);
        }
    }
    return (double)total / (now_s() - t0);
}
#endif

/* redis-benchmark's SET and GET requests per second, or -1. */
static int redis_benchmark(int clients, long n, double out[NPL])
{
    char port[16], cl[16], num[24], path[300];
    snprintf(port, sizeof port, "%d", g_srv.port);
    snprintf(cl, sizeof cl, "%d", clients);
    snprintf(num, sizeof num, "%ld", n);
    snprintf(path, sizeof path, "%s/out.txt", g_srv.dir);
    char *argv[] = {"redis-benchmark", "-h", "127.0.0.1", "-p", port, "-c", cl, "-P", "64",
                    "-n", num, "-d", "32", "-r", "1000", "-t", "set,get", "--csv", NULL};
    out[0] = out[1] = -1;
    if (run_child(argv, path, 1) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int which = strncmp(line, "\"SET\",\"", 7) == 0 ? PL_SET
                  : strncmp(line, "\"GET\",\"", 7) == 0 ? PL_GET : -1;
        if (which >= 0)
            out[which] = atof(line + 7);
    }
    fclose(f);
    return out[0] > 0 && out[1] > 0 ? 0 : -1;
}

/* `--syscalls pset-redkv|pget-redkv|pset-hiredis|pget-hiredis`: what strace counts. */
int pipeline_child(int op, int hiredis, int port, long n)
{
    if (!hiredis) {
        redkv *s = bench_store(port, 0);
        redkv_pipelined(s, op, 640 + n);
        redkv_close(s);
        return 0;
    }
#ifdef HAVE_HIREDIS
    struct timeval tv = {5, 0};
    redisContext *h = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!h || h->err)
        return 1;
    hiredis_pipelined(h, op, 640 + n);
    redisFree(h);
    return 0;
#else
    return 2;
#endif
}

#ifdef HAVE_HIREDIS
/* script loaded, its SHA1 in sha, for hiredis's EVALSHA (redkv loads it on its own
   connection). */
static void load_sha(const char *script, char sha[41])
{
    rawc c;
    if (rawc_open(&c, g_srv.port))
        die("cannot reach redis-server");
    const resp_reply *r = RAW(&c, "SCRIPT", "LOAD", script);
    if (!r || r->type != RESP_BULK || r->len != 40)
        die("SCRIPT LOAD failed");
    memcpy(sha, r->str, 40);
    rawc_close(&c);
}
#endif

static void pl_work(void *arg, int who, long n)
{
    pair_ctx *x = arg;
    if (who == 0)
        redkv_pipelined(x->s, x->op, n);
#ifdef HAVE_HIREDIS
    else
        hiredis_pipelined(x->h, x->op, n);
#endif
}

void section_pipeline(void)
{
    long slice = 6400;
    int slices = g_quick ? 6 : 16;
    long rb_n = g_quick ? 50000 : 200000;
    rounds rr[NPL], rb1[NPL], rb50[NPL];
    int rb_ok = 1;
    pair_ctx x;
    memset(&x, 0, sizeof x);
    memset(rr, 0, sizeof rr);
    memset(rb1, 0, sizeof rb1);
    memset(rb50, 0, sizeof rb50);
    redkv *s = x.s = bench_store(g_srv.port, 0);
    redkv_pipelined(s, PL_SET, 5000);                   /* connect and warm up */
#ifdef HAVE_HIREDIS
    struct timeval tv = {5, 0};
    redisContext *h = x.h = redisConnectWithTimeout("127.0.0.1", g_srv.port, tv);
    if (!h || h->err)
        die("hiredis connect: %s", h ? h->errstr : "out of memory");
    load_sha(rk_renew_script(), g_pl_sha);
    load_sha(rk_incr_script(), g_incr_sha);
    hiredis_pipelined(h, PL_SET, 5000);
#endif
    progress("pipelined: %d rounds of %ld SETs and GETs each (slices of %ld), and "
             "redis-benchmark -n %ld", g_rounds, slice * slices, slice, rb_n);
    for (int r = 0; r < g_rounds; r++) {
        for (int op = 0; op < NPL; op++) {
            double rate[2];
            x.op = op;
            interleave(pl_work, &x, slice, slices, rate);
            rounds_add(&rr[op], rate);
        }
        double v[2][NPL];
        for (int which = 0; which < 2 && rb_ok; which++)
            rb_ok = redis_benchmark(which ? 50 : 1, rb_n, v[which]) == 0;
        if (rb_ok) {
            /* paired with this round's redkv figure */
            for (int op = 0; op < NRB; op++) {
                double p1[2] = {rr[op].a[r], v[0][op]}, p50[2] = {rr[op].a[r], v[1][op]};
                rounds_add(&rb1[op], p1);
                rounds_add(&rb50[op], p50);
            }
        }
    }

    /* Allocations per asynchronous request in steady state. */
    uint64_t a0 = alloc_hook_count();
    redkv_pipelined(s, PL_SET, 20000);
    redkv_pipelined(s, PL_GET, 20000);
    double async_allocs = (double)(alloc_hook_count() - a0) / 40000.0;

    for (int op = 0; op < NPL; op++) {
        double a = rounds_median(&rr[op], 0);
        row *w = add_row("pipelined", PL_NAME[op], "req/s");
        fmt_num(w->redkv, sizeof w->redkv, a);
        snprintf(w->refname, sizeof w->refname, "hiredis pipelined");
        snprintf(w->goal, sizeof w->goal, "%s", PL_GOAL[op]);
#ifdef HAVE_HIREDIS
        fmt_num(w->ref, sizeof w->ref, rounds_median(&rr[op], 1));
        w->ratio = rounds_ratio(&rr[op]);
        snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= PL_GOAL_X[op] ? "ok" : "SHORT");
#else
        snprintf(w->ref, sizeof w->ref, "n/a");
#endif
        for (int which = 0; which < 2 && op < NRB; which++) {
            const rounds *rb = which ? &rb50[op] : &rb1[op];
            w = add_row("pipelined", PL_NAME[op], "req/s");
            fmt_num(w->redkv, sizeof w->redkv, a);
            snprintf(w->refname, sizeof w->refname, "redis-benchmark -c %d", which ? 50 : 1);
            /* one connection against one: #19's goal; against 50, information */
            snprintf(w->goal, sizeof w->goal, "%s", which ? "close (>= 0.8x)" : ">= 1.0x");
            if (rb_ok) {
                double goal = which ? 0.8 : 1.0;
                fmt_num(w->ref, sizeof w->ref, rounds_median(rb, 1));
                w->ratio = rounds_ratio(rb);
                snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= goal ? "ok" : "SHORT");
            } else {
                snprintf(w->ref, sizeof w->ref, "n/a");
            }
        }
    }
    row *w = add_row("heap", "allocations per async set/get", "per request");
    snprintf(w->redkv, sizeof w->redkv, "%.3f", async_allocs);
    snprintf(w->ref, sizeof w->ref, "-");
    snprintf(w->goal, sizeof w->goal, "0");
    snprintf(w->verdict, sizeof w->verdict, "%s", async_allocs == 0 ? "ok" : "SHORT");
#ifdef HAVE_HIREDIS
    redisFree(h);
#endif
    redkv_close(s);
}
