/* blocking.c - one call at a time: SET (with PX), GET (into a caller's buffer), GET with
 * renew (the Lua script by EVALSHA), redkv against hiredis doing the same Redis work with
 * redisCommandArgv (its fastest blocking form). Also the system calls per call (strace -c,
 * two runs of different lengths, the difference divided by the extra calls, so connecting
 * and start-up cancel out) and the heap allocations per call in steady state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "store.h"      /* rk_renew_script(): the reference runs the very same script */

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

enum { OP_SETPX, OP_GETINTO, OP_RENEW, NOPS };
static const char *const OP_NAME[NOPS] = {"SET key val PX", "GET (get_into)", "GET+renew (EVALSHA)"};
static const char *const OP_ARG[NOPS] = {"set", "get", "renew"};

#define TTL_MS 3600000
#define RENEW_MS 1800000

static char g_sha[41];

static void redkv_calls(redkv *s, int op, long n)
{
    char buf[64];
    size_t vlen;
    for (long i = 0; i < n; i++) {
        size_t klen;
        const char *k = bench_key((int)(i % NKEYS), &klen);
        int rc;
        switch (op) {
        case OP_SETPX: rc = redkv_set(s, k, klen, g_val, VAL_LEN, TTL_MS, 0); break;
        case OP_GETINTO: rc = redkv_get_into(s, k, klen, 0, buf, sizeof buf, &vlen); break;
        default: rc = redkv_get_into(s, k, klen, RENEW_MS, buf, sizeof buf, &vlen); break;
        }
        if (rc != REDKV_OK)
            die("redkv %s: %s (%s)", OP_ARG[op], redkv_strerror(rc), redkv_last_error());
    }
}

#ifdef HAVE_HIREDIS
static redisContext *open_hiredis(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err)
        die("hiredis connect: %s", c ? c->errstr : "out of memory");
    return c;
}

static void hiredis_calls(redisContext *c, int op, long n)
{
    static const char ttl[] = "3600000", renew[] = "1800000";
    for (long i = 0; i < n; i++) {
        size_t klen;
        const char *k = bench_full_key((int)(i % NKEYS), &klen);
        const char *argv[5];
        size_t lens[5];
        int argc;
        switch (op) {
        case OP_SETPX:
            argv[0] = "SET"; lens[0] = 3; argv[1] = k; lens[1] = klen;
            argv[2] = g_val; lens[2] = VAL_LEN; argv[3] = "PX"; lens[3] = 2;
            argv[4] = ttl; lens[4] = sizeof ttl - 1; argc = 5;
            break;
        case OP_GETINTO:
            argv[0] = "GET"; lens[0] = 3; argv[1] = k; lens[1] = klen; argc = 2;
            break;
        default:
            argv[0] = "EVALSHA"; lens[0] = 7; argv[1] = g_sha; lens[1] = 40;
            argv[2] = "1"; lens[2] = 1; argv[3] = k; lens[3] = klen;
            argv[4] = renew; lens[4] = sizeof renew - 1; argc = 5;
            break;
        }
        redisReply *r = redisCommandArgv(c, argc, argv, lens);
        if (!r || r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL)
            die("hiredis %s: %s", OP_ARG[op], r ? (r->str ? r->str : "nil") : c->errstr);
        freeReplyObject(r);
    }
}
#endif

/* Keys with an expiry, so that the renew really renews; and the script loaded. */
static void prepare(void)
{
    rawc c;
    if (rawc_open(&c, g_srv.port))
        die("cannot reach redis-server");
    for (int i = 0; i < NKEYS; i++) {
        size_t klen;
        const char *k = bench_full_key(i, &klen);
        const void *argv[5] = {"SET", k, g_val, "PX", "3600000"};
        size_t lens[5] = {3, klen, VAL_LEN, 2, 7};
        if (!rawc_cmdv(&c, 5, argv, lens))
            die("SET failed");
    }
    const resp_reply *r = RAW(&c, "SCRIPT", "LOAD", rk_renew_script());
    if (!r || r->type != RESP_BULK || r->len != 40)
        die("SCRIPT LOAD failed");
    memcpy(g_sha, r->str, 40);
    rawc_close(&c);
}

/* ---- the child that strace counts --------------------------------------------------------- */

int syscalls_child(const char *what, int port, long n)
{
    int op = -1, hiredis = 0;
    char name[32];
    snprintf(name, sizeof name, "%s", what);
    char *dash = strchr(name, '-');
    if (dash) {
        *dash = 0;
        hiredis = strcmp(dash + 1, "hiredis") == 0;
    }
    for (int i = 0; i < NOPS; i++)
        if (strcmp(name, OP_ARG[i]) == 0)
            op = i;
    if (strcmp(name, "pset") == 0 || strcmp(name, "pget") == 0)
        return pipeline_child(name[1] == 'g', hiredis, port, n);
    if (op < 0)
        return 2;
    if (!hiredis) {
        redkv *s = bench_store(port, 1);
        redkv_calls(s, op, 100 + n);     /* the first calls connect */
        redkv_close(s);
        return 0;
    }
#ifdef HAVE_HIREDIS
    rawc c;
    if (rawc_open(&c, port) == 0) {
        const resp_reply *r = RAW(&c, "SCRIPT", "LOAD", rk_renew_script());
        if (r && r->type == RESP_BULK && r->len == 40)
            memcpy(g_sha, r->str, 40);
        rawc_close(&c);
    }
    redisContext *h = open_hiredis(port);
    hiredis_calls(h, op, 100 + n);
    redisFree(h);
    return 0;
#else
    return 2;
#endif
}

/* Per-syscall counts of one strace -c run of the child; 0 on success. */
typedef struct sc_counts {
    int n;
    char name[32][24];
    double calls[32];
} sc_counts;

static int strace_run(const char *what, long n, sc_counts *out)
{
    char self[512], port[16], count[24], path[300];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = 0;
    snprintf(port, sizeof port, "%d", g_srv.port);
    snprintf(count, sizeof count, "%ld", n);
    snprintf(path, sizeof path, "%s/strace.txt", g_srv.dir);
    char *argv[] = {"strace", "-c", "-o", path, "--", self, "--syscalls", (char *)what, port,
                    count, NULL};
    char outp[300];
    snprintf(outp, sizeof outp, "%s/out.txt", g_srv.dir);
    if (run_child(argv, outp, 1) != 0) {
        unlink(path);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    out->n = 0;
    while (fgets(line, sizeof line, f) && out->n < 32) {
        char *tok[8];
        int nt = 0;
        for (char *t = strtok(line, " \t\n"); t && nt < 8; t = strtok(NULL, " \t\n"))
            tok[nt++] = t;
        if (nt < 5 || strcmp(tok[nt - 1], "total") == 0 || tok[3][0] < '0' || tok[3][0] > '9')
            continue;
        snprintf(out->name[out->n], sizeof out->name[0], "%s", tok[nt - 1]);
        out->calls[out->n++] = atof(tok[3]);
    }
    fclose(f);
    unlink(path);
    return 0;
}

static double lookup(const sc_counts *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->calls[i];
    return 0;
}

/* "sendto 1, recvfrom 1" and the total per call, or -1 when strace could not run. */
static double syscalls_per_call(const char *what, char *desc, size_t cap)
{
    const long n1 = 1000, n2 = 3000;
    sc_counts a, b;
    desc[0] = 0;
    if (strace_run(what, n1, &a) || strace_run(what, n2, &b))
        return -1;
    double total = 0;
    size_t used = 0;
    for (int i = 0; i < b.n; i++) {
        double per = (b.calls[i] - lookup(&a, b.name[i])) / (double)(n2 - n1);
        if (per < 0.005)
            continue;                        /* start-up noise, not per call */
        total += per;
        used += (size_t)snprintf(desc + used, used < cap ? cap - used : 0, "%s%s %.2g",
                                 used ? " + " : "", b.name[i], per);
    }
    return total;
}

/* ---- the section -------------------------------------------------------------------------- */

static void blk_work(void *arg, int who, long n)
{
    pair_ctx *x = arg;
    if (who == 0)
        redkv_calls(x->s, x->op, n);
#ifdef HAVE_HIREDIS
    else
        hiredis_calls(x->h, x->op, n);
#endif
}

void section_blocking(void)
{
    long slice = 500;
    int slices = g_quick ? 6 : 20;
    pair_ctx x;
    memset(&x, 0, sizeof x);
    prepare();
    redkv *s = x.s = bench_store(g_srv.port, 1);
    redkv_calls(s, OP_GETINTO, 200);                 /* connect and warm up */
#ifdef HAVE_HIREDIS
    redisContext *h = x.h = open_hiredis(g_srv.port);
    hiredis_calls(h, OP_GETINTO, 200);
#endif
    for (int op = 0; op < NOPS; op++) {
        rounds rr;
        memset(&rr, 0, sizeof rr);
        progress("blocking %s: %d rounds of %ld calls each, in slices of %ld", OP_NAME[op],
                 g_rounds, slice * slices, slice);
        x.op = op;
        for (int r = 0; r < g_rounds; r++) {
            double rate[2];
            interleave(blk_work, &x, slice, slices, rate);
            rounds_add(&rr, rate);
        }
        row *w = add_row("blocking", OP_NAME[op], "calls/s");
        fmt_num(w->redkv, sizeof w->redkv, rounds_median(&rr, 0));
#ifdef HAVE_HIREDIS
        fmt_num(w->ref, sizeof w->ref, rounds_median(&rr, 1));
        w->ratio = rounds_ratio(&rr);
        snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= 1.0 ? "ok" : "SHORT");
#else
        snprintf(w->ref, sizeof w->ref, "n/a");
#endif
        snprintf(w->refname, sizeof w->refname, "hiredis");
        snprintf(w->goal, sizeof w->goal, ">= 1.0x");
    }

    /* System calls per call. */
    for (int op = 0; op < NOPS; op++) {
        char what[32], d1[160], d2[160];
        progress("strace -c: %s", OP_NAME[op]);
        snprintf(what, sizeof what, "%s-redkv", OP_ARG[op]);
        double a = syscalls_per_call(what, d1, sizeof d1);
        double b = -1;
        d2[0] = 0;
#ifdef HAVE_HIREDIS
        snprintf(what, sizeof what, "%s-hiredis", OP_ARG[op]);
        b = syscalls_per_call(what, d2, sizeof d2);
#endif
        row *w = add_row("syscalls", OP_NAME[op], "per call");
        snprintf(w->refname, sizeof w->refname, "hiredis");
        snprintf(w->goal, sizeof w->goal, "minimum (2)");
        if (a < 0) {
            snprintf(w->redkv, sizeof w->redkv, "n/a (strace?)");
        } else {
            snprintf(w->redkv, sizeof w->redkv, "%.2f", a);
            snprintf(w->verdict, sizeof w->verdict, "%s", a <= 2.005 ? "ok" : "SHORT");
        }
        if (b < 0)
            snprintf(w->ref, sizeof w->ref, "n/a");
        else
            snprintf(w->ref, sizeof w->ref, "%.2f", b);
        if (a > 0 && b > 0)
            w->ratio = a / b;
        add_note("syscalls per %s: redkv %s; hiredis %s", OP_NAME[op],
                 a < 0 ? "n/a (strace failed)" : d1, b < 0 ? "n/a" : d2);
    }

    /* Heap allocations per call in steady state (the calls above were the warm-up). */
    const long na = 10000;
    for (int op = 0; op < 2; op++) {
        int which = op == 0 ? OP_GETINTO : OP_SETPX;
        uint64_t h0 = alloc_hook_count();
        alloc_libc_counting(1);
        uint64_t l0 = alloc_libc_count();
        redkv_calls(s, which, na);
        uint64_t l1 = alloc_libc_count();
        alloc_libc_counting(0);
        double per_hook = (double)(alloc_hook_count() - h0) / (double)na;
        double per_libc = (double)(l1 - l0) / (double)na;
        row *w = add_row("heap", which == OP_GETINTO ? "allocations per get_into" : "allocations per set",
                         "per call");
        snprintf(w->redkv, sizeof w->redkv, "%.2f", per_hook);
        snprintf(w->goal, sizeof w->goal, "0");
        snprintf(w->verdict, sizeof w->verdict, "%s", per_hook == 0 && per_libc == 0 ? "ok" : "SHORT");
        snprintf(w->refname, sizeof w->refname, "hiredis");
        snprintf(w->ref, sizeof w->ref, "n/a");
#ifdef HAVE_HIREDIS
        if (alloc_libc_available()) {
            alloc_libc_counting(1);
            l0 = alloc_libc_count();
            hiredis_calls(h, which, na);
            l1 = alloc_libc_count();
            alloc_libc_counting(0);
            snprintf(w->ref, sizeof w->ref, "%.2f", (double)(l1 - l0) / (double)na);
        }
#endif
        if (alloc_libc_available())
            add_note("allocations per %s: redkv %.2f through its hook, %.2f seen by the libc "
                     "interposer (the whole process)", which == OP_GETINTO ? "get_into" : "set",
                     per_hook, per_libc);
    }
#ifdef HAVE_HIREDIS
    redisFree(h);
#endif
    redkv_close(s);
}
