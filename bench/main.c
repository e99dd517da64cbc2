/* main.c - `make bench`: redkv side by side with its references, in one run, one table.
 *
 * HOW TO READ THE TABLE (also printed above it)
 *   Every row is one measurement: redkv's figure, the reference's figure from the same run
 *   (named in the "reference" column), and ratio = redkv / reference.
 *   - Throughput rows (calls/s, req/s, replies/s, MB/s): higher is better; ratio > 1 means
 *     redkv is faster.
 *   - Time, latency, system call and allocation rows: lower is better; ratio < 1 means
 *     redkv does better.
 *   Rounds interleave redkv and the reference (alternating which goes first), so machine
 *   noise hits both alike; each figure is the median of the rounds. "goal" is what the row
 *   must reach; "ok" or "SHORT" says whether it did (notes under the table say more).
 *
 * The benchmark starts its own redis-server (a free port on 127.0.0.1, a temp dir, no
 * persistence, DEBUG enabled) and stops it however it ends: normally, on an error, on
 * Ctrl-C or SIGTERM, on a crash, or killed (PR_SET_PDEATHSIG).
 *
 * Usage: redkv-bench [--quick] [--rounds N] [--only blocking,threads,pipeline,parser,delete_all,cluster,tls]
 *                    [--scan-counts 300,3000,10000]  (delete_all's sweep beside 1000)
 *        redkv-bench --syscalls WHAT PORT N     (internal: what strace counts) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

int g_rounds = 7;
int g_quick = 0;
const char g_val[VAL_LEN + 1] = "0123456789abcdef0123456789ABCDEF";

static char g_keys[NKEYS][16];
static char g_full_keys[NKEYS][24];

const char *bench_key(int i, size_t *len)
{
    *len = 7;
    return g_keys[i];
}

const char *bench_full_key(int i, size_t *len)
{
    *len = sizeof BENCH_NS + 7;
    return g_full_keys[i];
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void interleave(work_fn *work, void *ctx, long units_per_slice, int slices, double rate[2])
{
    double spent[2] = {0, 0};
    for (int i = 0; i < slices; i++) {
        int first = (i % 4 == 0 || i % 4 == 3) ? 0 : 1;      /* A B B A A B B A ... */
        for (int k = 0; k < 2; k++) {
            int who = first ^ k;
            double t0 = now_s();
            work(ctx, who, units_per_slice);
            spent[who] += now_s() - t0;
        }
    }
    for (int who = 0; who < 2; who++)
        rate[who] = (double)units_per_slice * slices / spent[who];
}

void rounds_add(rounds *r, const double rate[2])
{
    if (r->n < 32) {
        r->a[r->n] = rate[0];
        r->b[r->n] = rate[1];
        r->n++;
    }
}

double rounds_median(const rounds *r, int who)
{
    double v[32];
    memcpy(v, who ? r->b : r->a, sizeof v);
    return r->n ? median(v, r->n) : 0;
}

double rounds_ratio(const rounds *r)
{
    double v[32];
    for (int i = 0; i < r->n; i++)
        v[i] = r->b[i] > 0 ? r->a[i] / r->b[i] : 0;
    return r->n ? median(v, r->n) : 0;
}

void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  ... ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("redkv-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);                     /* atexit stops the server */
}

/* ---- the table ---------------------------------------------------------------------------- */

static row g_rows[64];
static int g_nrows;
static char g_notes[40][240];
static int g_nnotes;

row *add_row(const char *section, const char *name, const char *unit)
{
    if (g_nrows == (int)(sizeof g_rows / sizeof *g_rows))
        die("too many rows");
    row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->section, sizeof r->section, "%s", section);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    return r;
}

void add_note(const char *fmt, ...)
{
    if (g_nnotes == (int)(sizeof g_notes / sizeof *g_notes))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_notes[g_nnotes++], sizeof g_notes[0], fmt, ap);
    va_end(ap);
}

void fmt_num(char *out, size_t cap, double v)
{
    static const char suffix[] = " kMG";
    int s = 0;
    while (s < 3 && v >= 999.5) {      /* 999.6k shows as 1.00M, never 1e+03k */
        v /= 1000;
        s++;
    }
    int prec = v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
    snprintf(out, cap, "%.*f%s", prec, v, s ? (char[]){suffix[s], 0} : "");
}

static void print_table(void)
{
    const char *sep = "-------------------------------------------------------------------------"
                      "--------------------------------------------------------------";
    printf("\nHow to read: each figure is the median of %d rounds; in every round redkv and the "
           "reference alternate\n  in short slices (A B B A ...), so machine noise hits both "
           "alike. ratio = redkv / reference,\n  the median of the per-round ratios.\n"
           "  calls/s, req/s, replies/s, MB/s: higher is better (ratio > 1: redkv faster).\n"
           "  s, ms, per call, per request:    lower is better  (ratio < 1: redkv better).\n"
           "  goal: what the row must reach; ok / SHORT: whether it did (see the notes).\n"
           "Rows: blocking = one call at a time on one connection (1000 keys, 32-byte values),\n"
           "  hiredis sending the same commands by redisCommandArgv (SET PX, GET, EVALSHA of redkv's\n"
           "  renew script). syscalls = strace -c of a 3000-call run minus a 1000-call run, per call.\n"
           "  heap = allocations per call in steady state (redkv: its allocator hook; hiredis: a\n"
           "  malloc interposer in this binary). pipelined = redkv's async API in a poll() loop\n"
           "  keeping 64 in flight, hiredis appending 64 then reading 64, redis-benchmark -P 64\n"
           "  with 1 and with 50 connections. parser = the same bytes fed in 16 KiB chunks.\n"
           "  delete_all = NS (1M keys) and NS_child (100k) beside NSX (1M, a sibling) and OTHER\n"
           "  (1M), with a thread pinging meanwhile; the reference is Litestar's one Lua script.\n\n",
           g_rounds);
    printf("%-38s %-11s %10s  %-22s %10s %7s  %-18s %s\n", "row", "unit", "redkv", "reference",
           "ref", "ratio", "goal", "");
    const char *last = "";
    for (int i = 0; i < g_nrows; i++) {
        row *r = &g_rows[i];
        if (strcmp(r->section, last) != 0) {
            printf("%.*s\n[%s]\n", 150, sep, r->section);
            last = r->section;
        }
        char ratio[16] = "-";
        if (r->ratio > 0)
            snprintf(ratio, sizeof ratio, "%.2fx", r->ratio);
        printf("%-38s %-11s %10s  %-22s %10s %7s  %-18s %s\n", r->name, r->unit, r->redkv,
               r->refname, r->ref, ratio, r->goal, r->verdict);
    }
    printf("%.*s\n", 150, sep);
    for (int i = 0; i < g_nnotes; i++)
        printf("%s\n", g_notes[i]);
    fflush(stdout);
}

/* ---- the machine ---------------------------------------------------------------------------- */

/* Other work on the machine skews every figure: say how busy it was. */
static void print_load(const char *label)
{
    char line[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            snprintf(line, sizeof line, "?");
        fclose(f);
    }
    line[strcspn(line, "\n")] = 0;
    printf("%s%s (1, 5, 15 min load average, /proc/loadavg)\n", label, line);
}

static void print_machine(void)
{
    char model[128] = "unknown", line[256];
    int cpus = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "processor", 9) == 0)
            cpus++;
        if (strncmp(line, "model name", 10) == 0 && strcmp(model, "unknown") == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = 0;
            }
        }
    }
    if (f)
        fclose(f);
    struct utsname u;
    uname(&u);
    char redis_version[32] = "?";
    rawc c;
    if (rawc_open(&c, g_srv.port) == 0) {
        const resp_reply *r = RAW(&c, "INFO", "server");
        const char *p = r && r->type == RESP_BULK ? strstr(r->str, "redis_version:") : NULL;
        if (p)
            snprintf(redis_version, sizeof redis_version, "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
        rawc_close(&c);
    }
    printf("redkv benchmark\n");
    printf("machine:   %s, %d CPUs; %s %s %s\n", model, cpus, u.sysname, u.release, u.machine);
#ifdef __clang__
    printf("compiler:  clang %s\n", __clang_version__);
#else
    printf("compiler:  gcc %s\n", __VERSION__);
#endif
    printf("server:    redis-server %s, private, 127.0.0.1:%d (TCP), no persistence\n",
           redis_version, g_srv.port);
#ifdef HAVE_HIREDIS
    printf("reference: hiredis %d.%d.%d (libhiredis-dev), built in\n", HIREDIS_MAJOR,
           HIREDIS_MINOR, HIREDIS_PATCH);
#else
    printf("reference: hiredis NOT FOUND at build time (install libhiredis-dev): its columns "
           "say n/a; redis-benchmark and the Lua script still run\n");
#endif
    printf("rounds:    %d per row%s\n", g_rounds, g_quick ? " (--quick: shorter runs)" : "");
    print_load("load:      ");
    fflush(stdout);
}

static int wanted(const char *only, const char *name)
{
    if (!only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 0; i < NKEYS; i++) {
        snprintf(g_keys[i], sizeof g_keys[i], "k%06d", i);
        snprintf(g_full_keys[i], sizeof g_full_keys[i], "%s:k%06d", BENCH_NS, i);
    }
    if (argc == 5 && strcmp(argv[1], "--syscalls") == 0)
        return syscalls_child(argv[2], atoi(argv[3]), atol(argv[4]));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_quick = 1;
            g_rounds = 3;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            g_rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--scan-counts") == 0 && i + 1 < argc) {
            char *p = argv[++i], *end;
            g_nsweep = 0;
            while (*p && g_nsweep < 16) {
                long v = strtol(p, &end, 10);
                if (end == p || v <= 0 || v > 1000000 || v == 1000 ||
                    (g_nsweep && v <= g_sweep[g_nsweep - 1])) {
                    fprintf(stderr, "redkv-bench: --scan-counts takes ascending counts other "
                            "than 1000 (the default, always run), e.g. 300,3000,10000\n");
                    return 2;
                }
                g_sweep[g_nsweep++] = (int)v;
                p = *end == ',' ? end + 1 : end;
            }
        } else {
            fprintf(stderr, "usage: %s [--quick] [--rounds N] [--only "
                    "blocking,threads,pipeline,parser,delete_all,cluster,tls] [--scan-counts 300,3000,10000]\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_rounds < 1 || g_rounds > 15) {
        fprintf(stderr, "redkv-bench: --rounds must be 1..15\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    alloc_hook_install();
    install_cleanup();
    if (server_start(&g_srv) != 0)
        return 1;
    print_machine();
    double t0 = now_s();
    if (wanted(only, "blocking"))
        section_blocking();
    if (wanted(only, "threads"))
        section_threads();
    if (wanted(only, "pipeline"))
        section_pipeline();
    if (wanted(only, "parser"))
        section_parser();
    if (wanted(only, "cache"))
        section_cache();
    if (wanted(only, "delete_all"))
        section_delete_all();
    if (wanted(only, "cluster"))
        section_cluster();
    if (wanted(only, "tls"))
        section_tls();
    server_stop(&g_srv);
    print_table();
    print_load("load at the end: ");
    printf("(%.0f s; redis-server stopped)\n", now_s() - t0);
    return 0;
}
