/* cluster.c - the same store against a Redis Cluster and against one server: blocking SET
 * and GET calls per second, one thread and four. The cluster is three masters (no replicas)
 * on loopback, made here with CLUSTER ADDSLOTSRANGE and CLUSTER MEET (no redis-cli needed),
 * and stopped at the end of the section (its servers also die with us: PR_SET_PDEATHSIG). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MASTERS 3

typedef struct cnode {
    pid_t pid;
    int port;
    char dir[64];
} cnode;

static cnode g_nodes[MASTERS];

static int bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A port whose cluster bus port (+10000) is free too, below the ephemeral range. */
static int pick_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u;
    for (;;) {
        int p = 10000 + (int)((seed = seed * 1103515245u + 12345u) >> 8) % 12000;
        if (bindable(p) && bindable(p + 10000))
            return p;
    }
}

static void exec_node(const cnode *n)
{
    char port[16];
    snprintf(port, sizeof port, "%d", n->port);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--dir", n->dir, "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--logfile", "redis.log", "--protected-mode", "no",
                          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", NULL};
    exec_redis_in(n->dir, argv);
}

static void cluster_stop(void)
{
    for (int i = 0; i < MASTERS; i++) {
        if (g_nodes[i].pid > 0) {
            kill(g_nodes[i].pid, SIGKILL);
            waitpid(g_nodes[i].pid, NULL, 0);
            g_nodes[i].pid = 0;
        }
        if (g_nodes[i].dir[0]) {
            char cmd[128];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_nodes[i].dir);
            if (system(cmd) != 0)
                fprintf(stderr, "redkv-bench: could not remove %s\n", g_nodes[i].dir);
            g_nodes[i].dir[0] = 0;
        }
    }
}

static int node_start(cnode *n)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/redkv-bench-cluster-XXXXXX");
    if (!mkdtemp(n->dir)) {
        n->dir[0] = 0;
        return -1;
    }
    n->port = pick_port();
    if ((n->pid = fork()) == 0)
        exec_node(n);
    for (double until = now_s() + 5; now_s() < until; usleep(5000)) {
        rawc c;
        if (rawc_open(&c, n->port) == 0) {
            const resp_reply *r = RAW(&c, "PING");
            int ok = r && r->type == RESP_STRING;
            rawc_close(&c);
            if (ok)
                return 0;
        }
    }
    return -1;
}

static int all_ok(void)
{
    for (int i = 0; i < MASTERS; i++) {
        rawc c;
        if (rawc_open(&c, g_nodes[i].port) != 0)
            return 0;
        const resp_reply *r = RAW(&c, "CLUSTER", "INFO");
        int ok = r && r->type == RESP_BULK && strstr(r->str, "cluster_state:ok") &&
                 strstr(r->str, "cluster_known_nodes:3");
        rawc_close(&c);
        if (!ok)
            return 0;
    }
    return 1;
}

static int cluster_start(void)
{
    for (int i = 0; i < MASTERS; i++)
        if (node_start(&g_nodes[i]) != 0)
            return -1;
    for (int i = 0; i < MASTERS; i++) {
        rawc c;
        char lo[16], hi[16], port[16];
        snprintf(lo, sizeof lo, "%d", 16384 * i / MASTERS);
        snprintf(hi, sizeof hi, "%d", 16384 * (i + 1) / MASTERS - 1);
        if (rawc_open(&c, g_nodes[i].port) != 0)
            return -1;
        const resp_reply *r = RAW(&c, "CLUSTER", "ADDSLOTSRANGE", lo, hi);
        int ok = r && r->type == RESP_STRING;
        if (ok && i > 0) {
            snprintf(port, sizeof port, "%d", g_nodes[0].port);
            r = RAW(&c, "CLUSTER", "MEET", "127.0.0.1", port);
            ok = r && r->type == RESP_STRING;
        }
        rawc_close(&c);
        if (!ok)
            return -1;
    }
    for (double until = now_s() + 30; now_s() < until; usleep(50000))
        if (all_ok())
            return 0;
    return -1;
}

typedef struct worker {
    redkv *s;
    long n;
    int first;
} worker;

/* n calls: SET and GET in turn over the benchmark's keys. */
static void *calls(void *arg)
{
    worker *w = arg;
    char buf[64];
    size_t vlen;
    for (long i = 0; i < w->n; i++) {
        size_t klen;
        const char *k = bench_key((int)((i / 2 + w->first) % NKEYS), &klen);
        int rc = i % 2 ? redkv_get_into(w->s, k, klen, 0, buf, sizeof buf, &vlen)
                       : redkv_set(w->s, k, klen, g_val, VAL_LEN, 0, 0);
        if (rc != REDKV_OK)
            die("cluster bench: %s (%s)", redkv_strerror(rc), redkv_last_error());
    }
    return NULL;
}

/* Calls per second with threads threads sharing s. */
static double run(redkv *s, int threads, long n)
{
    pthread_t t[8];
    worker w[8];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i].s = s;
        w[i].n = n / threads;
        w[i].first = i * (NKEYS / threads);
        if (pthread_create(&t[i], NULL, calls, &w[i]))
            die("pthread_create");
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (double)(n / threads * threads) / (now_s() - t0);
}

void section_cluster(void)
{
    progress("cluster: starting %d cluster-enabled masters", MASTERS);
    if (cluster_start() != 0) {
        cluster_stop();
        add_note("cluster: the cluster did not start (redis-server --cluster-enabled); rows skipped");
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", g_nodes[0].port,
             g_nodes[1].port);
    long n = g_quick ? 20000 : 60000;
    static const int threads[] = {1, 4};
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
        int nt = threads[ti];
        redkv *c = bench_store_url(url, nt), *one = bench_store_url(g_srv.url, nt);
        run(c, nt, n / 10);                    /* connect, read the map, warm up */
        run(one, nt, n / 10);
        double rc[16], r1[16];
        for (int r = 0; r < g_rounds; r++) {
            progress("cluster: %d thread(s), round %d/%d", nt, r + 1, g_rounds);
            if (r % 2) {
                r1[r] = run(one, nt, n);
                rc[r] = run(c, nt, n);
            } else {
                rc[r] = run(c, nt, n);
                r1[r] = run(one, nt, n);
            }
        }
        redkv_close(c);
        redkv_close(one);
        double mc = median(rc, g_rounds), m1 = median(r1, g_rounds);
        char name[56];
        snprintf(name, sizeof name, "SET/GET, %d thread%s: cluster (%d masters)", nt,
                 nt > 1 ? "s" : "", MASTERS);
        row *w = add_row("cluster", name, "calls/s");
        fmt_num(w->redkv, sizeof w->redkv, mc);
        fmt_num(w->ref, sizeof w->ref, m1);
        snprintf(w->refname, sizeof w->refname, "redkv, one server");
        w->ratio = mc / m1;
        snprintf(w->goal, sizeof w->goal, "(information)");
    }
    add_note("cluster: the same blocking client (pool_size = threads) against a 3-master "
             "Redis Cluster on loopback and against the one private server; every call is "
             "routed by its key's slot. One machine: four redis-servers and the client share its "
             "CPUs, and cluster mode costs the server some work per command, so the cluster "
             "cannot show more capacity here; the row shows what routing costs.");
    cluster_stop();
}
