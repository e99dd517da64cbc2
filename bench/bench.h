/* bench.h - the pieces of `make bench` (bench/README in bench/main.c's header comment).
 *
 * One binary: it starts a private redis-server, runs every section with redkv and its
 * reference interleaved round by round, and prints one table. Built with -DHAVE_HIREDIS
 * when Debian's libhiredis-dev is present; without it the reference columns say n/a. */
#ifndef REDKV_BENCH_H
#define REDKV_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "redkv.h"
#include "resp.h"

/* ---- time and statistics (main.c) ------------------------------------------------------- */

double now_s(void);                         /* monotonic seconds */
double median(double *v, int n);            /* sorts v */
extern int g_rounds;                        /* rounds per row (median of these) */
extern int g_quick;                         /* --quick: fewer and shorter rounds */
void progress(const char *fmt, ...)         /* a line on stderr while running */
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void die(const char *fmt, ...)              /* prints, cleans up (server stopped), exits 1 */
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* Fine-grained interleaving: runs work(ctx, who, units) for who = 0 (redkv) and 1 (the
   reference) in slices, ABBA order, timing each; rate[who] = units done per second of its
   own time. Noise lasting longer than a slice hits both alike. */
typedef void work_fn(void *ctx, int who, long units);

/* What the blocking and pipelined work functions drive: redkv (who 0) or the hiredis
   context h (who 1; a redisContext *, or NULL without hiredis), doing operation op. */
typedef struct pair_ctx {
    redkv *s;
    void *h;
    int op;
} pair_ctx;
void interleave(work_fn *work, void *ctx, long units_per_slice, int slices, double rate[2]);

/* Per-round figures of one row: the medians, and the median of the per-round ratios. */
typedef struct rounds {
    int n;
    double a[32], b[32];
} rounds;
void rounds_add(rounds *r, const double rate[2]);
double rounds_median(const rounds *r, int who);
double rounds_ratio(const rounds *r);        /* median of a[i] / b[i] */

/* ---- the table (main.c) ----------------------------------------------------------------- */

/* One row. ratio is redkv / reference of the numbers given (0: none shown). */
typedef struct row {
    char section[24];
    char name[56];
    char unit[16];
    char redkv[40];
    char ref[40];
    char refname[28];
    double ratio;
    char goal[28];
    char verdict[8];          /* "ok", "SHORT", or "" */
} row;

row *add_row(const char *section, const char *name, const char *unit);
void add_note(const char *fmt, ...)         /* a line printed under the table */
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Formats a number with a thousands separator-free but readable magnitude. */
void fmt_num(char *out, size_t cap, double v);

/* ---- the server and a raw client (server.c) --------------------------------------------- */

typedef struct bench_server {
    pid_t pid;
    int port;
    char dir[128];
    char url[64];
} bench_server;

extern bench_server g_srv;
int server_start(bench_server *s);          /* 0, or -1 with a message printed */
void server_stop(bench_server *s);          /* idempotent */
void install_cleanup(void);                 /* signals and atexit stop the server */
/* In a forked child: dies with the parent, runs in dir, stdin/stdout to /dev/null, and
   execs redis-server with argv. Never returns. */
void exec_redis_in(const char *dir, const char *const *argv);
/* A store in namespace BENCH_NS on url (or 127.0.0.1:port); pool_size 0: the default.
   Dies on failure. */
redkv *bench_store_url(const char *url, int pool_size);
redkv *bench_store(int port, int pool_size);
/* Runs argv (argv[0] looked up in PATH) with stdout and stderr into out_path;
   returns the exit status, -1 when it could not run. Killed on Ctrl-C with us. */
int run_child(char *const argv[], const char *out_path, int quiet_stderr);

/* A minimal blocking RESP client over the codec alone (no redkv net layer, no hiredis). */
typedef struct rawc {
    int fd;
    resp_parser p;
    resp_buf out;
    char *in;
    size_t len, cap;
    size_t consumed;          /* bytes of the last reply, dropped at the next command */
} rawc;

int rawc_open(rawc *c, int port);           /* 0 or -1 */
void rawc_close(rawc *c);
/* Sends one command (argv NULL-terminated, text) and waits for its reply; NULL on a lost
   connection. The reply is valid until the next call. */
const resp_reply *rawc_cmd(rawc *c, const char *const *argv);
const resp_reply *rawc_cmdv(rawc *c, int argc, const void *const *argv, const size_t *lens);
long long rawc_int(rawc *c, const char *const *argv);   /* an integer reply, else -1 */
#define RAW(c, ...) rawc_cmd((c), (const char *const[]){__VA_ARGS__, NULL})
#define RAWI(c, ...) rawc_int((c), (const char *const[]){__VA_ARGS__, NULL})

/* ---- allocation counting (alloc.c) ------------------------------------------------------ */

void alloc_hook_install(void);              /* redkv_set_allocator with counters */
uint64_t alloc_hook_count(void);            /* malloc + realloc calls through redkv's hook */
/* libc-level counting by a malloc interposer in this binary (sees hiredis too); 0 when the
   build cannot interpose (sanitizers): then alloc_libc_available() is 0. */
int alloc_libc_available(void);
void alloc_libc_counting(int on);
uint64_t alloc_libc_count(void);            /* malloc + calloc + realloc while counting */

/* ---- sections --------------------------------------------------------------------------- */

#define BENCH_NS "bench"                    /* the blocking and pipelined rows' namespace */
#define NKEYS 1000
#define VAL_LEN 32
extern const char g_val[VAL_LEN + 1];
const char *bench_key(int i, size_t *len);   /* "k000123" */
const char *bench_full_key(int i, size_t *len); /* "bench:k000123" */

void section_blocking(void);
void section_pipeline(void);
void section_threads(void);            /* threads.c: 1, 8, 32 threads on one store */
void section_parser(void);
void section_cache(void);             /* cache.c: the client-side cache's hits */
void section_delete_all(void);
extern int g_sweep[16], g_nsweep;           /* delete_all's other scan_counts, ascending */
void section_cluster(void);           /* cluster.c: against a 3-master Redis Cluster */
/* tls.c: blocking and pipelined GET over rediss:// beside redis-benchmark --tls (TLS builds;
   a note otherwise). */
void section_tls(void);
/* pipeline.c: total requests of op (0 SET, 1 GET) keeping 64 in flight; requests/s. */
double redkv_pipelined(redkv *s, int op, long total);

/* `redkv-bench --syscalls WHAT PORT N`: the child that strace counts. */
int syscalls_child(const char *what, int port, long n);
int pipeline_child(int op, int hiredis, int port, long n);   /* op 0 SET, 1 GET */

#endif
