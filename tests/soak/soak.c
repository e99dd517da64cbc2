/* soak.c - redkv under chaos, for minutes: `make soak [SOAK_SECONDS=600] [SOAK_SEED=N]`.
 *
 *   soak [--seconds N] [--seed N] [--rss-slack-mib N] [--verbose] [--lose-data]
 *
 * Starts its own redis-server (appendonly yes, appendfsync always: an acknowledged write
 * survives a kill -9) in a temp dir on a free loopback port. While 8 threads make blocking
 * set/get calls on one store (each on its own keys, writing increasing version numbers) and
 * one thread drives asynchronous set/get requests from a poll() loop on the same store, the
 * main thread does, at random intervals from the seed: kill -9 and a restart on the same port
 * and dir (the data reloads from the AOF), SIGSTOP then SIGCONT (sometimes for longer than the
 * command timeout), CLIENT KILL TYPE normal, DEBUG SLEEP.
 *
 * Checks: a read is never older than an acknowledged write of the same thread; at the end
 * every acknowledged write is there; each asynchronous callback runs exactly once; the only
 * errors are ECONN, ETIMEDOUT and the server's LOADING reply (ESERVER); the resident size is
 * flat after warm-up; no thread goes 30 s without a call returning (a watchdog aborts).
 * The last line is the summary; the exit status is 0 only when every check passed.
 * --lose-data runs the server without its AOF, so that a restart loses acknowledged writes:
 * that run must fail, which shows the checks can.
 *
 * Uses the public header alone (and a plain socket for the chaos commands). The server is
 * forked by the main thread with PR_SET_PDEATHSIG, so it dies with this process however the
 * run ends, and every exit path kills it first. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "redkv.h"

#define BLOCKING_THREADS 8
#define KEYS_PER_THREAD 16
#define ASYNC_WINDOW 32           /* asynchronous requests in flight at most */
#define TIMEOUT_MS 800            /* connect and command timeout: DEBUG SLEEP 0.9 outlasts it */
#define WATCHDOG_MS 30000         /* a call may take about 2x its timeout today: be generous */
#define MAX_FAILURES_SHOWN 20

/* ---- small tools ------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* xorshift64*: each thread has its own, seeded from the run's seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static long random_between(uint64_t *state, long lo, long hi)
{
    return lo + (long)(next_random(state) % (uint64_t)(hi - lo + 1));
}

/* The resident set size of this process, in bytes (from /proc/self/statm). */
static long long rss_bytes(void)
{
    long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static double mib(long long bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* ---- failures ----------------------------------------------------------------------------- */

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static int failures;

static void failf(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&failure_lock);
    if (++failures <= MAX_FAILURES_SHOWN) {
        fputs("soak: FAIL: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&failure_lock);
}

static int failure_count(void)
{
    pthread_mutex_lock(&failure_lock);
    int n = failures;
    pthread_mutex_unlock(&failure_lock);
    return n;
}

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
    char exe[512];                /* redis-server, found on PATH before any thread starts */
} server;

static server srv;
static int lose_data;             /* --lose-data: no AOF, so a restart loses acknowledged writes
                                     and the run must fail: a check of the checks */

static int find_on_path(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        int n = (int)strcspn(p, ":");
        int len = snprintf(out, cap, "%.*s/%s", n ? n : 1, n ? p : ".", name);
        if (len > 0 && (size_t)len < cap && access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    return -1;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Sends one command (argv, NULL-terminated) on a fresh socket and copies the start of the
   reply into out; waits at most wait_ms for it. 0, or -1 when there was no reply. */
static int raw_command(const char *const *argv, char *out, size_t cap, int wait_ms)
{
    char req[512];
    size_t n = 0;
    int argc = 0;
    while (argv[argc])
        argc++;
    n += (size_t)snprintf(req + n, sizeof req - n, "*%d\r\n", argc);
    for (int i = 0; i < argc && n < sizeof req; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    out[0] = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)srv.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, n, MSG_NOSIGNAL) == (ssize_t)n) {
        ssize_t got = recv(fd, out, cap - 1, 0);
        if (got > 0) {
            out[got] = 0;
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

#define RAW(out, wait_ms, ...) raw_command((const char *const[]){__VA_ARGS__, NULL}, out, sizeof(out), wait_ms)

/* In the forked child: die with the main thread, run redis-server in the run's dir. */
static void exec_server(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--dir", srv.dir, "--appendonly", lose_data ? "no" : "yes",
                          "--appendfsync", "always",
                          "--save", "", "--daemonize", "no", "--logfile", "redis.log",
                          "--enable-debug-command", "yes", "--protected-mode", "no", NULL};
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || chdir(srv.dir) != 0 || dup2(null_fd, 1) < 0)
        _exit(127);
    execv(srv.exe, (char *const *)argv);
    _exit(127);
}

/* Starts the server on srv.port and waits until it answers (PONG, or LOADING while it reads
   the AOF): 0, or -1. Called from the main thread only (see PR_SET_PDEATHSIG). */
static int launch_server(void)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        srv.pid = fork();
        if (srv.pid < 0)
            return -1;
        if (srv.pid == 0)
            exec_server();
        for (long long until = now_ms() + 10000; now_ms() < until;) {
            char out[128];
            if (RAW(out, 1000, "PING") == 0 && (!strncmp(out, "+PONG", 5) || strstr(out, "LOADING")))
                return 0;
            if (waitpid(srv.pid, NULL, WNOHANG) == srv.pid)
                break;                 /* died: the port is not free yet? */
            sleep_ms(10);
        }
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
        sleep_ms(50);
    }
    return -1;
}

static void kill_server(void)
{
    if (srv.pid > 0) {
        kill(srv.pid, SIGCONT);
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
    }
}

static void remove_dir(void)
{
    char cmd[128];
    if (srv.dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", srv.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "soak: could not remove %s\n", srv.dir);
        srv.dir[0] = 0;
    }
}

/* Waits until the server answers PONG (its AOF loaded): 0, or -1 after limit_ms. */
static int wait_until_loaded(long limit_ms)
{
    for (long long until = now_ms() + limit_ms; now_ms() < until; sleep_ms(50)) {
        char out[128];
        if (RAW(out, 1000, "PING") == 0 && !strncmp(out, "+PONG", 5))
            return 0;
    }
    return -1;
}

/* ---- the workers --------------------------------------------------------------------------- */

enum err_kind { ERR_CONN, ERR_TIMEDOUT, ERR_LOADING, ERR_KINDS };
static const char *const ERR_NAMES[ERR_KINDS] = {"ECONN", "ETIMEDOUT", "LOADING"};

typedef struct worker {
    int id;                       /* 0..7: blocking; BLOCKING_THREADS: the asynchronous one */
    pthread_t thread;
    redkv *store;
    uint64_t rng;
    int64_t attempted[KEYS_PER_THREAD];   /* the highest version sent for each key */
    int64_t acked[KEYS_PER_THREAD];       /* the highest version the server acknowledged */
    pthread_mutex_t lock;         /* guards the fields below: the watchdog and main read them */
    uint64_t ops, errors[ERR_KINDS];
    long long last_return_ms;     /* when a call last returned (or a callback ran) */
    int finished;
    long long backoff_until_ms;   /* the asynchronous thread: no new request before, after an
                                     error (a server down refuses at once: no busy loop) */
} worker;

static worker workers[BLOCKING_THREADS + 1];
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static int stopping;              /* the chaos is over: the workers finish */

static int should_stop(void)
{
    pthread_mutex_lock(&stop_lock);
    int stop = stopping;
    pthread_mutex_unlock(&stop_lock);
    return stop;
}

static void key_name(const worker *w, int k, char *out, size_t cap)
{
    snprintf(out, cap, "t%d:k%d", w->id, k);
}

/* Counts a finished call: status < 0 must be one of the errors chaos may cause. Returns
   status < 0: the caller waits a little before the next call, as a program would. */
static int count_call(worker *w, int status, const char *what)
{
    int kind = -1;
    if (status == REDKV_ECONN)
        kind = ERR_CONN;
    else if (status == REDKV_ETIMEDOUT)
        kind = ERR_TIMEDOUT;
    else if (status == REDKV_ESERVER && strstr(redkv_last_error(), "LOADING"))
        kind = ERR_LOADING;
    else if (status < 0)
        failf("thread %d: %s: unexpected %s: %s", w->id, what, redkv_strerror(status),
              redkv_last_error());
    pthread_mutex_lock(&w->lock);
    w->ops++;
    if (kind >= 0)
        w->errors[kind]++;
    w->last_return_ms = now_ms();
    pthread_mutex_unlock(&w->lock);
    return status < 0;
}

#define BACKOFF_MS 10

/* The version a value holds ("v123"), or -1 when it is not one of ours. */
static int64_t version_of(const void *val, size_t len)
{
    char text[32];
    if (len < 2 || len >= sizeof text || ((const char *)val)[0] != 'v')
        return -1;
    memcpy(text, val, len);
    text[len] = 0;
    char *end;
    long long v = strtoll(text + 1, &end, 10);
    return *end || v < 1 ? -1 : (int64_t)v;
}

/* A value read for key k against what this thread knew when it asked (floor: acknowledged,
   ceiling: sent): never older than an acknowledged write, never a version not sent. */
static void check_read(const worker *w, int k, int status, const void *val, size_t len,
                       int64_t floor, int64_t ceiling)
{
    if (status == REDKV_MISSING && floor > 0)
        failf("thread %d: key %d is missing; version %" PRId64 " was acknowledged", w->id, k, floor);
    if (status != REDKV_OK)
        return;
    int64_t v = version_of(val, len);
    if (v < 0 || v > ceiling)
        failf("thread %d: key %d holds \"%.*s\", never written (sent up to %" PRId64 ")", w->id,
              k, (int)(len < 20 ? len : 20), (const char *)val, ceiling);
    else if (v < floor)
        failf("thread %d: key %d read version %" PRId64 ", older than acknowledged %" PRId64,
              w->id, k, v, floor);
}

static void *blocking_worker(void *arg)
{
    worker *w = arg;
    char key[32], val[32], buf[64];
    while (!should_stop()) {
        int k = (int)random_between(&w->rng, 0, KEYS_PER_THREAD - 1);
        key_name(w, k, key, sizeof key);
        if (next_random(&w->rng) % 2) {
            int64_t v = ++w->attempted[k];
            int len = snprintf(val, sizeof val, "v%" PRId64, v);
            int rc = redkv_set(w->store, key, strlen(key), val, (size_t)len, 0, 0);
            if (rc == REDKV_OK)
                w->acked[k] = v;
            if (count_call(w, rc, "set"))
                sleep_ms(BACKOFF_MS);
        } else {
            size_t len = 0;
            int64_t floor = w->acked[k];
            /* a renewal sometimes: the script path, and NOSCRIPT after each restart */
            int64_t renew = next_random(&w->rng) % 4 == 0 ? 60000 : 0;
            int rc = redkv_get_into(w->store, key, strlen(key), renew, buf, sizeof buf, &len);
            check_read(w, k, rc, buf, len, floor, w->attempted[k]);
            if (count_call(w, rc == REDKV_MISSING ? REDKV_OK : rc, "get"))
                sleep_ms(BACKOFF_MS);
        }
    }
    pthread_mutex_lock(&w->lock);
    w->finished = 1;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* One asynchronous request, in a slot of the window: reused only after its callback. */
typedef struct async_req {
    worker *w;
    int busy;
    int calls;                    /* callbacks run for it: must end at exactly 1 */
    int key, is_set;
    int64_t version;              /* set: the version sent */
    int64_t floor, ceiling;       /* get: as in check_read, when queued */
} async_req;

static async_req window[ASYNC_WINDOW];
static uint64_t async_queued, async_called;    /* the asynchronous thread's only */

static void on_async_done(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    async_req *r = arg;
    worker *w = r->w;
    (void)s;
    (void)n;
    if (!r->busy || r->calls++ > 0) {
        failf("async: a callback ran twice for one request (key %d)", r->key);
        return;
    }
    async_called++;
    if (r->is_set && status == REDKV_OK && r->version > w->acked[r->key])
        w->acked[r->key] = r->version;
    if (!r->is_set)
        check_read(w, r->key, status, val, vlen, r->floor, r->ceiling);
    if (count_call(w, status == REDKV_MISSING ? REDKV_OK : status, r->is_set ? "set_async" : "get_async"))
        w->backoff_until_ms = now_ms() + BACKOFF_MS;
    r->busy = 0;
}

/* Queues a request in a free slot of the window; 0 when the window is full. */
static int queue_async(worker *w)
{
    async_req *r = NULL;
    char key[32], val[32];
    if (now_ms() < w->backoff_until_ms)
        return 0;
    for (int i = 0; i < ASYNC_WINDOW && !r; i++)
        if (!window[i].busy)
            r = &window[i];
    if (!r)
        return 0;
    memset(r, 0, sizeof *r);
    r->w = w;
    r->busy = 1;
    r->key = (int)random_between(&w->rng, 0, KEYS_PER_THREAD - 1);
    r->is_set = (int)(next_random(&w->rng) % 2);
    key_name(w, r->key, key, sizeof key);
    int rc;
    if (r->is_set) {
        r->version = ++w->attempted[r->key];
        int len = snprintf(val, sizeof val, "v%" PRId64, r->version);
        rc = redkv_set_async(w->store, key, strlen(key), val, (size_t)len, 0, 0, on_async_done, r);
    } else {
        r->floor = w->acked[r->key];
        r->ceiling = w->attempted[r->key];
        rc = redkv_get_async(w->store, key, strlen(key), 0, on_async_done, r);
    }
    if (rc != REDKV_OK) {
        failf("async: a request was refused: %s: %s", redkv_strerror(rc), redkv_last_error());
        r->busy = 0;
        return 0;
    }
    async_queued++;
    return 1;
}

/* One pass of the event loop: wait for what redkv asks (at most 100 ms), then process. */
static void poll_once(redkv *s)
{
    int want = redkv_events(s), fd = redkv_fd(s), timeout = redkv_timeout_ms(s);
    struct pollfd p = {fd, (short)((want & REDKV_READ ? POLLIN : 0) | (want & REDKV_WRITE ? POLLOUT : 0)), 0};
    if (timeout < 0 || timeout > 100)
        timeout = 100;                 /* look at the stop flag now and then */
    if (poll(&p, fd >= 0 ? 1 : 0, timeout) < 0)
        p.revents = 0;
    redkv_process(s, (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                         (p.revents & POLLOUT ? REDKV_WRITE : 0));
}

static void *async_worker(void *arg)
{
    worker *w = arg;
    while (!should_stop()) {
        while (queue_async(w))
            ;
        poll_once(w->store);
    }
    /* drain: every queued request ends within its timeout; allow many */
    for (long long until = now_ms() + 60000; redkv_pending(w->store) > 0 && now_ms() < until;)
        poll_once(w->store);
    if (redkv_pending(w->store) > 0)
        failf("async: %d requests still pending a minute after the end", redkv_pending(w->store));
    pthread_mutex_lock(&w->lock);
    w->finished = 1;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- the watchdog ---------------------------------------------------------------------- */

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        sleep_ms(1000);
        for (int i = 0; i <= BLOCKING_THREADS; i++) {
            worker *w = &workers[i];
            pthread_mutex_lock(&w->lock);
            long long idle = now_ms() - w->last_return_ms;
            int finished = w->finished;
            pthread_mutex_unlock(&w->lock);
            if (!finished && idle > WATCHDOG_MS) {
                fprintf(stderr, "soak: FAIL: thread %d: no call returned for %lld ms: hung\n", i, idle);
                fprintf(stderr, "soak: FAIL (hang), server dir %s\n", srv.dir);
                kill(srv.pid, SIGKILL);        /* and PR_SET_PDEATHSIG, as abort ends us */
                abort();
            }
        }
    }
    return NULL;
}

/* ---- chaos ------------------------------------------------------------------------------ */

typedef struct chaos_counts {
    int restarts, stops, long_stops, client_kills, sleeps;
} chaos_counts;

static void chaos_once(uint64_t *rng, chaos_counts *c, int verbose)
{
    char out[256], secs[16];
    long pick = random_between(rng, 0, 3), ms;
    switch (pick) {
    case 0:
        ms = random_between(rng, 0, 500);       /* down for a while */
        if (verbose)
            fprintf(stderr, "soak: kill -9, restart after %ld ms\n", ms);
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
        sleep_ms(ms);
        if (launch_server() != 0)
            failf("redis-server did not restart on port %d (see %s/redis.log)", srv.port, srv.dir);
        c->restarts++;
        break;
    case 1:
        ms = random_between(rng, 100, 2500);    /* up to about 3x the command timeout */
        if (verbose)
            fprintf(stderr, "soak: SIGSTOP for %ld ms\n", ms);
        kill(srv.pid, SIGSTOP);
        sleep_ms(ms);
        kill(srv.pid, SIGCONT);
        c->stops++;
        c->long_stops += ms > TIMEOUT_MS;
        break;
    case 2:
        if (verbose)
            fprintf(stderr, "soak: CLIENT KILL TYPE normal\n");
        RAW(out, 2000, "CLIENT", "KILL", "TYPE", "normal");
        c->client_kills++;
        break;
    default:
        snprintf(secs, sizeof secs, "0.%ld", random_between(rng, 1, 9));
        if (verbose)
            fprintf(stderr, "soak: DEBUG SLEEP %s\n", secs);
        RAW(out, 3000, "DEBUG", "SLEEP", secs);
        c->sleeps++;
        break;
    }
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct config {
    long seconds;
    uint64_t seed;
    long rss_slack_mib;           /* the resident size may grow this much after warm-up */
    int verbose;
} config;

static int parse_args(int argc, char **argv, config *cfg)
{
    cfg->seconds = 60;
    cfg->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    cfg->rss_slack_mib = 8;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--verbose"))
            cfg->verbose = 1;
        else if (!strcmp(argv[i], "--lose-data"))
            lose_data = 1;
        else if (next && !strcmp(argv[i], "--seconds") && (cfg->seconds = atol(next)) > 0)
            i++;
        else if (next && !strcmp(argv[i], "--seed") && *next)
            cfg->seed = strtoull(next, NULL, 10), i++;
        else if (next && !strcmp(argv[i], "--rss-slack-mib") && (cfg->rss_slack_mib = atol(next)) > 0)
            i++;
        else {
            fprintf(stderr, "usage: soak [--seconds N] [--seed N] [--rss-slack-mib N] [--verbose] "
                            "[--lose-data]\n");
            return -1;
        }
    }
    return 0;
}

static int start_workers(redkv *store, uint64_t seed)
{
    for (int i = 0; i <= BLOCKING_THREADS; i++) {
        worker *w = &workers[i];
        w->id = i;
        w->store = store;
        w->rng = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 7919 + 1;
        w->last_return_ms = now_ms();
        pthread_mutex_init(&w->lock, NULL);
        if (pthread_create(&w->thread, NULL, i < BLOCKING_THREADS ? blocking_worker : async_worker, w))
            return -1;
    }
    return 0;
}

/* At the end, on a quiet server: every key holds at least its last acknowledged version. */
static void check_final_values(redkv *store)
{
    char key[32], buf[64];
    for (int i = 0; i <= BLOCKING_THREADS; i++) {
        worker *w = &workers[i];
        for (int k = 0; k < KEYS_PER_THREAD; k++) {
            size_t len = 0;
            int rc = REDKV_ECONN;
            key_name(w, k, key, sizeof key);
            for (int attempt = 0; attempt < 20 && rc < 0; attempt++) {
                rc = redkv_get_into(store, key, strlen(key), 0, buf, sizeof buf, &len);
                if (rc < 0)
                    sleep_ms(250);
            }
            if (rc < 0)
                failf("final read of %s: %s: %s", key, redkv_strerror(rc), redkv_last_error());
            else
                check_read(w, k, rc, buf, len, w->acked[k], w->attempted[k]);
        }
    }
}

static void count_totals(uint64_t *ops, uint64_t *async_ops, uint64_t errors[ERR_KINDS])
{
    *ops = *async_ops = 0;
    memset(errors, 0, sizeof(uint64_t) * ERR_KINDS);
    for (int i = 0; i <= BLOCKING_THREADS; i++) {
        pthread_mutex_lock(&workers[i].lock);
        *ops += workers[i].ops;
        if (i == BLOCKING_THREADS)
            *async_ops = workers[i].ops;
        for (int e = 0; e < ERR_KINDS; e++)
            errors[e] += workers[i].errors[e];
        pthread_mutex_unlock(&workers[i].lock);
    }
}

int main(int argc, char **argv)
{
    config cfg = {0};
    chaos_counts chaos = {0};
    char url[64];
    redkv *store = NULL;
    if (parse_args(argc, argv, &cfg) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    printf("soak: %ld s, seed %" PRIu64 " (--seed %" PRIu64 " repeats the chaos schedule)\n",
           cfg.seconds, cfg.seed, cfg.seed);
    fflush(stdout);
    snprintf(srv.dir, sizeof srv.dir, "/tmp/redkv-soak-XXXXXX");
    if (find_on_path("redis-server", srv.exe, sizeof srv.exe) != 0 || !mkdtemp(srv.dir) ||
        (srv.port = free_port()) < 0 || launch_server() != 0) {
        fprintf(stderr, "soak: could not start redis-server\n");
        kill_server();
        remove_dir();
        return 1;
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv.port);
    redkv_options opt = {.url = url, .ns = "soak", .connect_timeout_ms = TIMEOUT_MS,
                         .command_timeout_ms = TIMEOUT_MS};
    pthread_t dog;
    if (redkv_open(&store, &opt) != REDKV_OK || start_workers(store, cfg.seed) != 0 ||
        pthread_create(&dog, NULL, watchdog, NULL) != 0) {
        fprintf(stderr, "soak: could not start: %s\n", redkv_last_error());
        kill_server();
        remove_dir();
        return 1;
    }

    uint64_t rng = cfg.seed ^ UINT64_C(0xC0FFEE);
    long long start = now_ms(), end = start + cfg.seconds * 1000;
    long long warm_at = start + cfg.seconds * 250, rss_warm = 0, rss_max = 0, rss_after = 0;
    while (now_ms() < end) {
        long long wake = now_ms() + random_between(&rng, 300, 2000);
        while (now_ms() < wake && now_ms() < end) {
            long long rss = rss_bytes();
            rss_max = rss > rss_max ? rss : rss_max;
            if (now_ms() >= warm_at && !rss_warm)
                rss_warm = rss;
            if (rss_warm && rss > rss_after)
                rss_after = rss;
            sleep_ms(100);
        }
        if (now_ms() < end)
            chaos_once(&rng, &chaos, cfg.verbose);
    }

    pthread_mutex_lock(&stop_lock);
    stopping = 1;
    pthread_mutex_unlock(&stop_lock);
    for (int i = 0; i <= BLOCKING_THREADS; i++)
        pthread_join(workers[i].thread, NULL);
    if (wait_until_loaded(30000) != 0)
        failf("the server did not answer PONG at the end");
    check_final_values(store);
    if (async_queued != async_called)
        failf("async: %" PRIu64 " requests queued, %" PRIu64 " callbacks", async_queued, async_called);
    for (int i = 0; i < ASYNC_WINDOW; i++)
        if (window[i].busy)
            failf("async: a request never got its callback (key %d)", window[i].key);
    if (rss_after - rss_warm > cfg.rss_slack_mib * 1024 * 1024)
        failf("the resident size grew from %.1f MiB (at 25%%) to %.1f MiB", mib(rss_warm), mib(rss_after));
    redkv_close(store);
    kill_server();
    remove_dir();

    uint64_t ops, async_ops, errors[ERR_KINDS];
    count_totals(&ops, &async_ops, errors);
    int failed = failure_count();
    printf("soak: %s: %ld s, seed %" PRIu64 ", %" PRIu64 " ops (%" PRIu64 " async), errors %s %" PRIu64
           " %s %" PRIu64 " %s %" PRIu64 ", chaos %d restarts %d stops (%d past the timeout) "
           "%d client-kills %d sleeps, RSS max %.1f MiB (+%.1f MiB after warm-up), %d failures\n",
           failed ? "FAIL" : "PASS", cfg.seconds, cfg.seed, ops, async_ops, ERR_NAMES[0], errors[0],
           ERR_NAMES[1], errors[1], ERR_NAMES[2], errors[2], chaos.restarts, chaos.stops,
           chaos.long_stops, chaos.client_kills, chaos.sleeps, mib(rss_max),
           mib(rss_after - rss_warm), failed);
    return failed ? 1 : 0;
}
