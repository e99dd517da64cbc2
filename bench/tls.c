/* tls.c - GET over rediss:// (make bench TLS=mbedtls or TLS=openssl): redkv's blocking get
 * and its pipelined asynchronous get (64 in flight) against a redis-server of its own with a
 * TLS port, beside redis-benchmark --tls on that same server and port (-c 1, -P 1 and -P 64).
 * The certificates are made at run time by the openssl command: a CA and a server
 * certificate for 127.0.0.1, verified by redkv as by redis-benchmark. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#if defined(REDKV_TLS_MBEDTLS) || defined(REDKV_TLS_OPENSSL)

#ifdef REDKV_TLS_MBEDTLS
#define BACKEND "mbedTLS"
#else
#define BACKEND "OpenSSL"
#endif

typedef struct tls_bench {
    char dir[128];
    char ca[200];
    char url[320];
    int port, tls_port;
    pid_t pid;
} tls_bench;

/* A CA and, signed by it, a P-256 server certificate for 127.0.0.1, in dir. */
static int make_certs(const char *dir)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.crt -days 1 -subj '/CN=redkv bench CA' && "
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout server.key -out server.csr -subj '/CN=redkv bench' && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-days 1 -extfile san.ext -out server.crt; } >openssl.log 2>&1", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static pid_t start_server(tls_bench *t)
{
    char port[16], tport[16], crt[200], key[200];
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(tport, sizeof tport, "%d", t->tls_port);
    snprintf(crt, sizeof crt, "%s/server.crt", t->dir);
    snprintf(key, sizeof key, "%s/server.key", t->dir);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--tls-port", tport, "--tls-cert-file", crt, "--tls-key-file", key,
                          "--tls-ca-cert-file", t->ca, "--tls-auth-clients", "no",
                          "--dir", t->dir, "--save", "", "--appendonly", "no",
                          "--logfile", "redis.log", NULL};
    pid_t pid = fork();
    if (pid == 0)
        exec_redis_in(t->dir, argv);
    return pid;
}

/* A loopback port free at the moment (the kernel's choice), or -1. */
static int any_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The bench's own server stays as it is; this one has the TLS port. The ports may be taken
   between the choice and the bind: then another pair. 0, or -1 with a note. */
static int tls_server_up(tls_bench *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/redkv-bench-tls-XXXXXX");
    if (!mkdtemp(t->dir) || make_certs(t->dir) != 0)
        return add_note("tls: could not make certificates (is openssl installed?)"), -1;
    snprintf(t->ca, sizeof t->ca, "%s/ca.crt", t->dir);
    for (int attempt = 1; attempt <= 5; attempt++) {
        t->port = any_free_port();
        t->tls_port = any_free_port();
        if ((t->pid = start_server(t)) < 0)
            break;
        for (double until = now_s() + 5; now_s() < until; usleep(5000)) {
            rawc c;
            if (rawc_open(&c, t->port) == 0) {
                const resp_reply *r = RAW(&c, "PING");
                int ok = r && r->type == RESP_STRING;
                rawc_close(&c);
                if (ok) {
                    snprintf(t->url, sizeof t->url, "rediss://127.0.0.1:%d?ssl_ca_certs=%s",
                             t->tls_port, t->ca);
                    return 0;
                }
            }
            if (waitpid(t->pid, NULL, WNOHANG) == t->pid)
                break;
        }
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
    }
    t->pid = 0;
    return add_note("tls: redis-server with a TLS port did not start (see %s)", t->dir), -1;
}

static void tls_server_down(tls_bench *t)
{
    char cmd[200];
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        add_note("tls: could not remove %s", t->dir);
}

/* n blocking gets over 1000 keys; calls per second. */
static double blocking_gets(redkv *s, long n)
{
    char buf[64];
    size_t len;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        size_t klen;
        const char *k = bench_key((int)(i % NKEYS), &klen);
        if (redkv_get_into(s, k, klen, 0, buf, sizeof buf, &len) != REDKV_OK)
            die("tls get: %s", redkv_last_error());
    }
    return (double)n / (now_s() - t0);
}

/* redis-benchmark --tls's GET requests per second at pipeline depth, or -1. */
static double redis_benchmark_tls(const tls_bench *t, int depth, long n)
{
    char port[16], num[24], pipe[16], path[300], line[512];
    double got = -1;
    snprintf(port, sizeof port, "%d", t->tls_port);
    snprintf(num, sizeof num, "%ld", n);
    snprintf(pipe, sizeof pipe, "%d", depth);
    snprintf(path, sizeof path, "%s/out.txt", t->dir);
    char *argv[] = {"redis-benchmark", "--tls", "--cacert", (char *)t->ca, "-h", "127.0.0.1",
                    "-p", port, "-c", "1", "-P", pipe, "-n", num, "-d", "32", "-r", "1000",
                    "-t", "set,get", "--csv", NULL};
    if (run_child(argv, path, 1) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "\"GET\",\"", 7) == 0)
            got = atof(line + 7);
    if (f)
        fclose(f);
    return got;
}

static void add_tls_row(const char *name, const char *unit, const rounds *r, const char *ref)
{
    row *w = add_row("tls (" BACKEND ")", name, unit);
    fmt_num(w->redkv, sizeof w->redkv, rounds_median(r, 0));
    snprintf(w->refname, sizeof w->refname, "%s", ref);
    snprintf(w->goal, sizeof w->goal, "close (>= 0.8x)");
    if (r->b[0] > 0) {
        fmt_num(w->ref, sizeof w->ref, rounds_median(r, 1));
        w->ratio = rounds_ratio(r);
        snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= 0.8 ? "ok" : "SHORT");
    } else {
        snprintf(w->ref, sizeof w->ref, "n/a");
    }
}

void section_tls(void)
{
    tls_bench t;
    memset(&t, 0, sizeof t);
    if (tls_server_up(&t) != 0)
        return;                          /* its dir is kept, for its logs */
    long n_block = g_quick ? 5000 : 20000, n_pipe = g_quick ? 50000 : 200000;
    redkv *s = bench_store_url(t.url, 1);
    redkv_pipelined(s, 0, NKEYS);                 /* the keys, and the async handshake */
    blocking_gets(s, 1000);                      /* the pool's handshake */
    rounds block, piped;
    memset(&block, 0, sizeof block);
    memset(&piped, 0, sizeof piped);
    progress("tls (" BACKEND "): %d rounds of %ld blocking and %ld pipelined GETs, each "
             "beside redis-benchmark --tls", g_rounds, n_block, n_pipe);
    for (int r = 0; r < g_rounds; r++) {
        double b[2] = {blocking_gets(s, n_block), redis_benchmark_tls(&t, 1, n_block)};
        double p[2] = {redkv_pipelined(s, 1, n_pipe), redis_benchmark_tls(&t, 64, n_pipe)};
        rounds_add(&block, b);
        rounds_add(&piped, p);
        progress("round %d: blocking %.0f / %.0f, pipelined %.0f / %.0f", r + 1, b[0], b[1],
                 p[0], p[1]);
    }
    redkv_close(s);
    tls_server_down(&t);
    add_tls_row("GET blocking over TLS", "calls/s", &block, "redis-benchmark --tls -P 1");
    add_tls_row("GET (depth 64) over TLS", "req/s", &piped, "redis-benchmark --tls -P 64");
}

#else

void section_tls(void)
{
    add_note("tls: no rows in a build without TLS (make bench TLS=mbedtls or TLS=openssl)");
}

#endif
