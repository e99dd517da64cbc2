/* delete_all.c - deleting a big namespace while another client keeps pinging.
 *
 * The database: NS:0..N-1 (the namespace), NS_child:0..N/10-1 (its child), NSX:0..N-1 (a
 * sibling whose name merely starts the same) and OTHER:0..N-1 (elsewhere), N = 1,000,000,
 * made with DEBUG POPULATE (which only adds what is missing, so it also repopulates).
 * redkv_delete_all on NS is set against the Python store's way: one Lua script that SCANs
 * and UNLINKs NS*:* in one go (by EVAL; it takes the sibling too). Meanwhile a thread pings
 * in a tight loop on its own connection and records the longest wait for a PONG (a -BUSY
 * answer, once a script has run past lua-time-limit, is no PONG: the wait goes on). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench.h"

/* Litestar's RedisStore delete_all script, as it sends it (with ARGV[1] = "NS*:*"). */
static const char LITESTAR_SCRIPT[] =
    "local cursor = 0\n"
    "repeat\n"
    "    local result = redis.call('SCAN', cursor, 'MATCH', ARGV[1])\n"
    "    for _,key in ipairs(result[2]) do\n"
    "        redis.call('UNLINK', key)\n"
    "    end\n"
    "    cursor = tonumber(result[1])\n"
    "until cursor == 0\n";

static long g_n;                 /* keys per big namespace */
int g_sweep[16] = {300, 3000, 10000};
int g_nsweep = 3;

/* ---- the pinging thread --------------------------------------------------------------- */

typedef struct pinger {
    pthread_t th;
    int stop;
    int measuring;
    double worst;                /* seconds */
    long pings, busy;
    long total;                  /* PINGs answered, measuring or not */
    int failed;
    float *lat;                  /* the waits while measuring (up to LAT_MAX), seconds */
} pinger;

#define LAT_MAX (1 << 20)

static void *ping_loop(void *arg)
{
    pinger *pg = arg;
    rawc c;
    if (rawc_open(&c, g_srv.port)) {
        __atomic_store_n(&pg->failed, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    while (!__atomic_load_n(&pg->stop, __ATOMIC_ACQUIRE)) {
        double t0 = now_s();
        const resp_reply *r;
        long busy = 0;
        while ((r = RAW(&c, "PING")) && r->type == RESP_ERROR)
            busy++;
        if (!r) {
            __atomic_store_n(&pg->failed, 1, __ATOMIC_RELEASE);
            break;
        }
        double dt = now_s() - t0;
        if (__atomic_load_n(&pg->measuring, __ATOMIC_ACQUIRE)) {
            if (dt > pg->worst)
                pg->worst = dt;
            if (pg->pings < LAT_MAX)
                pg->lat[pg->pings] = (float)dt;
            pg->pings++;
            pg->busy += busy;
        }
        __atomic_add_fetch(&pg->total, 1, __ATOMIC_RELEASE);
    }
    rawc_close(&c);
    return NULL;
}

static void ping_start(pinger *pg)
{
    memset(pg, 0, sizeof *pg);
    if (!(pg->lat = malloc(LAT_MAX * sizeof *pg->lat)))
        die("out of memory");
    if (pthread_create(&pg->th, NULL, ping_loop, pg))
        die("pthread_create failed");
    usleep(50000);               /* connected and pinging */
}

/* Waits until the pinger has had n more answers. */
static void ping_wait(pinger *pg, long n)
{
    long until = __atomic_load_n(&pg->total, __ATOMIC_ACQUIRE) + n;
    while (__atomic_load_n(&pg->total, __ATOMIC_ACQUIRE) < until &&
           !__atomic_load_n(&pg->failed, __ATOMIC_ACQUIRE))
        usleep(100);
}

static void ping_measure(pinger *pg, int on)
{
    if (on) {
        pg->worst = 0;
        pg->pings = pg->busy = 0;
    } else {
        /* The PING in flight when the work ended waited through it: let it be counted. */
        ping_wait(pg, 2);
    }
    __atomic_store_n(&pg->measuring, on, __ATOMIC_RELEASE);
    if (!on)
        ping_wait(pg, 1);        /* no update of the figures is still under way */
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of the last measurement's waits (sorts them). */
static double ping_quantile(pinger *pg, double q)
{
    long n = pg->pings < LAT_MAX ? pg->pings : LAT_MAX;
    if (n == 0)
        return 0;
    qsort(pg->lat, (size_t)n, sizeof *pg->lat, cmp_float);
    long i = (long)(q * (double)(n - 1));
    return pg->lat[i];
}

static void ping_stop(pinger *pg)
{
    __atomic_store_n(&pg->stop, 1, __ATOMIC_RELEASE);
    pthread_join(pg->th, NULL);
    free(pg->lat);
    if (pg->failed)
        die("the pinging client lost its connection");
}

/* ---- the database ----------------------------------------------------------------------- */

static void populate(rawc *c, const char *prefix, long n)
{
    char num[24];
    snprintf(num, sizeof num, "%ld", n);
    const resp_reply *r = RAW(c, "DEBUG", "POPULATE", num, prefix);
    if (!r || r->type != RESP_STRING)
        die("DEBUG POPULATE %s %s failed%s", num, prefix, r && r->type == RESP_ERROR ? " (error)" : "");
}

static void populate_all(rawc *c)
{
    populate(c, "NS", g_n);
    populate(c, "NS_child", g_n / 10);
    populate(c, "NSX", g_n);
    populate(c, "OTHER", g_n);
    if (RAWI(c, "DBSIZE") != 3 * g_n + g_n / 10)
        die("unexpected DBSIZE after populating");
}

/* How many of prefix:0..n-1 exist, by EXISTS in batches. */
static long count_keys(rawc *c, const char *prefix, long n)
{
    enum { BATCH = 1000 };
    static char names[BATCH][40];
    const void *argv[BATCH + 1];
    size_t lens[BATCH + 1];
    long total = 0;
    argv[0] = "EXISTS";
    lens[0] = 6;
    for (long i = 0; i < n; i += BATCH) {
        int m = 0;
        for (long j = i; j < n && m < BATCH; j++, m++) {
            lens[m + 1] = (size_t)snprintf(names[m], sizeof names[m], "%s:%ld", prefix, j);
            argv[m + 1] = names[m];
        }
        const resp_reply *r = rawc_cmdv(c, m + 1, argv, lens);
        if (!r || r->type != RESP_INTEGER)
            die("EXISTS failed");
        total += r->integer;
    }
    return total;
}

typedef struct outcome {
    double seconds, worst;
    double p99;                  /* 99th percentile PING wait */
    double idle;                 /* worst PING wait in the idle window just before */
    double slowest;              /* the server's longest command meanwhile (SLOWLOG), s */
    char slowest_cmd[16];
    double scan_median;          /* the median SCAN step's duration (SLOWLOG), s */
    long pings, busy;
    long long deleted;           /* by the deleter's own count */
    long long dbsize;
    long counts[4];              /* NS, NS_child, NSX, OTHER left, or -1: not counted */
} outcome;

static void progress_cb(uint64_t deleted, void *arg) { *(uint64_t *)arg = deleted; }

/* Pings an idle server for a while just before a run: that run's baseline. */
static double idle_window(pinger *pg)
{
    ping_wait(pg, 2);            /* not the PING that waited through DEBUG POPULATE */
    ping_measure(pg, 1);
    usleep(g_quick ? 200000 : 500000);
    ping_measure(pg, 0);
    return pg->worst;
}

/* From the server's SLOWLOG since the last reset (every command over 100 us), a measure of
   the stall free of client scheduling noise: the longest command (seconds, and its name), and
   the median SCAN step - what one step typically holds the server for. */
static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void read_slowlog(rawc *c, outcome *o)
{
    const resp_reply *r = RAW(c, "SLOWLOG", "GET", "-1");
    long long best = 0;
    long long *scans = NULL;
    size_t nscans = 0;
    snprintf(o->slowest_cmd, sizeof o->slowest_cmd, "-");
    if (!r || r->type != RESP_ARRAY)
        return;
    scans = malloc((r->len + 1) * sizeof *scans);
    if (!scans)
        die("out of memory");
    for (size_t i = 0; i < r->len; i++) {
        const resp_reply *e = resp_element(r, i);
        if (e->type != RESP_ARRAY || e->len < 4)
            continue;
        const resp_reply *us = resp_element(e, 2), *args = resp_element(e, 3);
        if (us->type != RESP_INTEGER || args->type != RESP_ARRAY || args->len == 0)
            continue;
        const resp_reply *a0 = resp_element(args, 0);
        if (a0->len == 7 && strncasecmp(a0->str, "slowlog", 7) == 0)
            continue;                   /* our own SLOWLOG RESET */
        if (a0->len == 4 && strncasecmp(a0->str, "scan", 4) == 0)
            scans[nscans++] = us->integer;
        if (us->integer > best) {
            best = us->integer;
            snprintf(o->slowest_cmd, sizeof o->slowest_cmd, "%.*s", (int)a0->len, a0->str);
        }
    }
    o->slowest = (double)best / 1e6;
    if (nscans) {
        qsort(scans, nscans, sizeof *scans, cmp_ll);
        o->scan_median = (double)scans[nscans / 2] / 1e6;
    }
    free(scans);
}

static void verify(rawc *c, outcome *o, int exact)
{
    o->dbsize = RAWI(c, "DBSIZE");
    for (int i = 0; i < 4; i++)
        o->counts[i] = -1;
    if (exact) {
        o->counts[0] = count_keys(c, "NS", g_n);
        o->counts[1] = count_keys(c, "NS_child", g_n / 10);
        o->counts[2] = count_keys(c, "NSX", g_n);
        o->counts[3] = count_keys(c, "OTHER", g_n);
    }
}

static outcome run_redkv(rawc *c, pinger *pg, int scan_count, int exact)
{
    outcome o;
    memset(&o, 0, sizeof o);
    populate_all(c);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", g_srv.port);
    uint64_t deleted = 0;
    redkv_options opt;
    memset(&opt, 0, sizeof opt);
    opt.url = url;
    opt.ns = "NS";
    opt.scan_count = scan_count;
    opt.progress = progress_cb;
    opt.progress_arg = &deleted;
    redkv *s;
    if (redkv_open(&s, &opt) != REDKV_OK)
        die("redkv_open: %s", redkv_last_error());
    if (redkv_exists(s, "0", 1) != 1)                   /* connected before the clock starts */
        die("NS:0 missing before delete_all");
    o.idle = idle_window(pg);
    RAW(c, "SLOWLOG", "RESET");
    ping_measure(pg, 1);
    double t0 = now_s();
    int rc = redkv_delete_all(s);
    o.seconds = now_s() - t0;
    ping_measure(pg, 0);
    if (rc != REDKV_OK)
        die("redkv_delete_all: %s", redkv_last_error());
    redkv_close(s);
    read_slowlog(c, &o);
    o.worst = pg->worst;
    o.p99 = ping_quantile(pg, 0.99);
    o.pings = pg->pings;
    o.busy = pg->busy;
    o.deleted = (long long)deleted;
    verify(c, &o, exact);
    return o;
}

static outcome run_lua(rawc *c, pinger *pg, int exact)
{
    outcome o;
    memset(&o, 0, sizeof o);
    populate_all(c);
    o.idle = idle_window(pg);
    RAW(c, "SLOWLOG", "RESET");
    ping_measure(pg, 1);
    double t0 = now_s();
    const resp_reply *r = RAW(c, "EVAL", LITESTAR_SCRIPT, "0", "NS*:*");
    o.seconds = now_s() - t0;
    ping_measure(pg, 0);
    if (!r || r->type == RESP_ERROR)
        die("the Lua delete_all failed: %.*s", r ? (int)r->len : 4, r ? r->str : "lost");
    read_slowlog(c, &o);
    long long before = 3 * g_n + g_n / 10;
    o.worst = pg->worst;
    o.p99 = ping_quantile(pg, 0.99);
    o.pings = pg->pings;
    o.busy = pg->busy;
    verify(c, &o, exact);
    o.deleted = before - o.dbsize;
    return o;
}

static int cmp_time(const void *a, const void *b)
{
    double x = ((const outcome *)a)->seconds, y = ((const outcome *)b)->seconds;
    return x < y ? -1 : x > y;
}

/* The median outcome by time; the worst stall is the median of the stalls. */
static outcome median_outcome(outcome *v, int n)
{
    double w[16], id[16], sl[16], pp[16], sm[16];
    for (int i = 0; i < n; i++) {
        w[i] = v[i].worst;
        sm[i] = v[i].scan_median;
        pp[i] = v[i].p99;
        id[i] = v[i].idle;
        sl[i] = v[i].slowest;
    }
    outcome *copy = malloc((size_t)n * sizeof *copy);
    if (!copy)
        die("out of memory");
    memcpy(copy, v, (size_t)n * sizeof *copy);
    qsort(copy, (size_t)n, sizeof *copy, cmp_time);
    outcome m = copy[n / 2];
    free(copy);
    m.worst = median(w, n);
    m.idle = median(id, n);
    m.slowest = median(sl, n);
    m.p99 = median(pp, n);
    m.scan_median = median(sm, n);
    return m;
}

static void describe(char *out, size_t cap, const outcome *o)
{
    if (o->counts[0] >= 0)
        snprintf(out, cap, "deleted %lld; left: NS %ld, NS_child %ld, NSX %ld, OTHER %ld; DBSIZE %lld",
                 o->deleted, o->counts[0], o->counts[1], o->counts[2], o->counts[3], o->dbsize);
    else
        snprintf(out, cap, "deleted %lld; DBSIZE %lld", o->deleted, o->dbsize);
}

void section_delete_all(void)
{
    int nrounds = g_quick ? 1 : 3;
    const int *sweep = g_sweep;
    size_t nsweep = (size_t)g_nsweep;
    g_n = g_quick ? 100000 : 1000000;
    rawc c;
    if (rawc_open(&c, g_srv.port))
        die("cannot reach redis-server");
    if (!RAW(&c, "FLUSHALL") || !RAW(&c, "CONFIG", "SET", "slowlog-log-slower-than", "100") ||
        !RAW(&c, "CONFIG", "SET", "slowlog-max-len", "1000000"))
        die("FLUSHALL or CONFIG SET failed");
    progress("delete_all: %ld + %ld + %ld + %ld keys (NS, NS_child, NSX, OTHER); %d rounds of "
             "redkv (scan_count 1000) and the Lua script, then other scan_counts",
             g_n, g_n / 10, g_n, g_n, nrounds);
    populate_all(&c);

    pinger pg;
    ping_start(&pg);
    outcome rk[16], lua[16];
    for (int r = 0; r < nrounds; r++) {
        progress("delete_all round %d/%d: redkv, then the Lua script", r + 1, nrounds);
        rk[r] = run_redkv(&c, &pg, 1000, r == 0);
        lua[r] = run_lua(&c, &pg, r == 0);
    }
    char d_rk[200], d_lua[200];
    describe(d_rk, sizeof d_rk, &rk[0]);
    describe(d_lua, sizeof d_lua, &lua[0]);
    int exact = rk[0].counts[0] == 0 && rk[0].counts[1] == 0 && rk[0].counts[2] == g_n &&
                rk[0].counts[3] == g_n && rk[0].dbsize == 2 * g_n && rk[0].deleted == g_n + g_n / 10;
    for (int r = 1; r < nrounds; r++)
        exact &= rk[r].dbsize == 2 * g_n && rk[r].deleted == g_n + g_n / 10;
    outcome a = median_outcome(rk, nrounds), b = median_outcome(lua, nrounds);
    long busy = 0;
    for (int r = 0; r < nrounds; r++)
        busy += lua[r].busy;

    outcome sw[16];
    for (size_t i = 0; i < nsweep; i++) {
        progress("delete_all: scan_count %d", sweep[i]);
        sw[i] = run_redkv(&c, &pg, sweep[i], 0);
        exact &= sw[i].dbsize == 2 * g_n && sw[i].deleted == g_n + g_n / 10;
    }
    ping_stop(&pg);
    rawc_close(&c);

    char name[56];
    snprintf(name, sizeof name, "total time, %.1fM of %.1fM keys", (g_n + g_n / 10) / 1e6,
             (3 * g_n + g_n / 10) / 1e6);
    row *w = add_row("delete_all", name, "s");
    snprintf(w->redkv, sizeof w->redkv, "%.2f", a.seconds);
    snprintf(w->ref, sizeof w->ref, "%.2f", b.seconds);
    snprintf(w->refname, sizeof w->refname, "one Lua script NS*:*");
    w->ratio = a.seconds / b.seconds;
    snprintf(w->goal, sizeof w->goal, "<= 1.5x");
    snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio <= 1.5 ? "ok" : "SHORT");

    w = add_row("delete_all", "worst PING wait during it", "ms");
    snprintf(w->redkv, sizeof w->redkv, "%.2f", a.worst * 1e3);
    snprintf(w->ref, sizeof w->ref, "%.2f", b.worst * 1e3);
    snprintf(w->refname, sizeof w->refname, "one Lua script NS*:*");
    w->ratio = b.worst > 0 ? a.worst / b.worst : 0;
    snprintf(w->goal, sizeof w->goal, "<= idle+10 = %.1f", a.idle * 1e3 + 10);
    snprintf(w->verdict, sizeof w->verdict, "%s", a.worst <= a.idle + 0.010 ? "ok" : "SHORT");

    w = add_row("delete_all", "worst PING wait, idle, just before", "ms");
    snprintf(w->redkv, sizeof w->redkv, "%.2f", a.idle * 1e3);
    snprintf(w->ref, sizeof w->ref, "%.2f", b.idle * 1e3);
    snprintf(w->refname, sizeof w->refname, "baseline");

    w = add_row("delete_all", "longest server command (SLOWLOG)", "ms");
    snprintf(w->redkv, sizeof w->redkv, "%.2f", a.slowest * 1e3);
    snprintf(w->ref, sizeof w->ref, "%.2f", b.slowest * 1e3);
    snprintf(w->refname, sizeof w->refname, "one Lua script NS*:*");
    w->ratio = b.slowest > 0 ? a.slowest / b.slowest : 0;
    snprintf(w->goal, sizeof w->goal, "<= 10");
    snprintf(w->verdict, sizeof w->verdict, "%s", a.slowest <= 0.010 ? "ok" : "SHORT");

    w = add_row("delete_all", "keys deleted (NS + NS_child only?)", "keys");
    snprintf(w->redkv, sizeof w->redkv, "%lld%s", a.deleted, exact ? " exact" : " WRONG");
    snprintf(w->ref, sizeof w->ref, "%lld%s", b.deleted,
             b.deleted == g_n + g_n / 10 ? " exact" : " +sibling");
    snprintf(w->refname, sizeof w->refname, "one Lua script NS*:*");
    snprintf(w->goal, sizeof w->goal, "%ld", g_n + g_n / 10);
    snprintf(w->verdict, sizeof w->verdict, "%s", exact ? "ok" : "SHORT");

    add_note("delete_all, redkv: %s", d_rk);
    add_note("delete_all, Lua:   %s", d_lua);
    add_note("delete_all: PINGs answered during redkv's run %ld (p99 wait %.2f ms), during the "
             "script's %ld%s; the idle baseline is the worst PING wait in %.1f s of pinging just "
             "before each run", a.pings, a.p99 * 1e3, b.pings,
             busy ? " (with -BUSY answers, past lua-time-limit)" : "", g_quick ? 0.2 : 0.5);
    add_note("delete_all scan_count sweep (one run each; 1000 is the median above):");
    /* in order of count, with the default's median (1000) in its place */
    int done_default = 0;
    for (size_t i = 0; i <= nsweep; i++) {
        const outcome *o;
        int count;
        if (!done_default && (i == nsweep || sweep[i] > 1000)) {
            o = &a;
            count = 1000;
            done_default = 1;
            i--;                         /* this i is still to come */
        } else {
            if (i == nsweep)
                break;
            o = &sw[i];
            count = sweep[i];
        }
        add_note("  scan_count %5d: %5.2f s; PING wait worst %6.2f ms, p99 %5.2f (idle worst "
                 "%5.2f); SCAN step median %5.2f ms, longest command %6.2f ms (%s)", count,
                 o->seconds, o->worst * 1e3, o->p99 * 1e3, o->idle * 1e3, o->scan_median * 1e3,
                 o->slowest * 1e3, o->slowest_cmd);
    }
}
