/* test_router.c - the router under the store: the masters of a cluster however many there
 * are, the masters of a real cluster worked on at once by delete_all, and an asynchronous
 * stream that rides through a lost master. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"
#include "topology.h"

#ifndef REDKV_NO_CLUSTER
#include "cluster_fixture.h"

/* 200 masters learnt from MOVED answers (no I/O: nothing listens there): every one is
   listed, each once. The first release stopped at 64 and said OK. */
Test(router_unit, lists_every_master_of_a_large_cluster)
{
    rk_config cfg;
    redkv_options o = {0};
    o.url = "redis+cluster://127.0.0.1:1";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_OK);
    rk_router *r;
    cr_assert_eq(rk_router_new(&cfg, &r), REDKV_OK);
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char addr[32];
        rk_node *node;
        int len = snprintf(addr, sizeof addr, "10.1.%d.%d:%d", i / 250, i % 250, 7000 + i);
        cr_assert_eq(r->topo->redirected(r, i * 80, addr, (size_t)len, 1, &node), REDKV_OK);
        cr_assert_eq(node->cfg.port, 7000 + i);
    }
    rk_node **masters;
    int n = r->topo->masters(r, rk_deadline(1000), &masters);
    cr_assert_eq(n, N, "%d masters listed", n);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(masters[i], masters[j]);
    resp_free(masters);
    rk_router_free(r);
    rk_config_free(&cfg);
}

TestSuite(router_cluster, .init = cluster_up, .fini = cluster_stop, .timeout = 120);

static redkv *open_cluster_store(const char *ns, int timeout_ms)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = cluster_url;
    o.ns = ns;
    o.command_timeout_ms = timeout_ms;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

static long long scans(const test_server *srv)
{
    char out[8192];
    SRV(srv, out, "INFO", "commandstats");
    const char *p = strstr(out, "cmdstat_scan:calls=");
    return p ? atoll(p + 19) : 0;
}

typedef struct delete_job {
    redkv *s;
    int rc;
} delete_job;

static void *run_delete_all(void *arg)
{
    delete_job *job = arg;
    job->rc = redkv_delete_all(job->s);
    return NULL;
}

/* With one master stopped, the other masters' SCANs still run: delete_all works on every
   master at once. Each master takes its turn at being the stopped one, so that no order of
   visiting them one after another could pass. */
Test(router_cluster, delete_all_works_on_every_master_at_once)
{
    test_server *masters[NODES];
    int n = 0;
    for (int i = 0; i < NODES; i++)
        if (cluster_is_master(&cluster_node[i]))
            masters[n++] = &cluster_node[i];
    cr_assert_eq(n, 3);
    redkv *s = open_cluster_store("PAR", 8000);
    for (int stopped = 0; stopped < n; stopped++) {
        char key[16];
        for (int i = 0; i < 60; i++) {
            snprintf(key, sizeof key, "k%d", i);
            cr_assert_eq(set_str(s, key, "v", 0), REDKV_OK, "%s", redkv_last_error());
        }
        long long before[NODES];
        for (int i = 0; i < n; i++)
            before[i] = scans(masters[i]);
        srv_pause(masters[stopped]);
        delete_job job = {s, 1};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, run_delete_all, &job), 0);
        int others_scanned = 0;
        for (long long until = now_ms() + 6000; !others_scanned && now_ms() < until;) {
            usleep(20000);
            others_scanned = 1;
            for (int i = 0; i < n; i++)
                if (i != stopped && scans(masters[i]) == before[i])
                    others_scanned = 0;
        }
        srv_resume(masters[stopped]);
        pthread_join(t, NULL);
        cr_assert(others_scanned, "master %d stopped: the others were not scanned meanwhile",
                  stopped);
        cr_assert_eq(job.rc, REDKV_OK, "%s", redkv_last_error());
        for (int i = 0; i < n; i++)
            cr_assert_eq(SRV_NUM(masters[i], "DBSIZE"), 0);
    }
    redkv_close(s);
}

typedef struct tally {
    int calls, ok, lost, other;
} tally;

static void count_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s, (void)val, (void)vlen, (void)n;
    tally *t = arg;
    t->calls++;
    t->ok += status == REDKV_OK;
    t->lost += status == REDKV_ECONN || status == REDKV_ETIMEDOUT;
    t->other += status != REDKV_OK && status != REDKV_ECONN && status != REDKV_ETIMEDOUT;
}

/* Queues a batch of sets over every slot and drives it to the end. */
static void async_batch(redkv *s, int round, tally *t, int count)
{
    char key[32];
    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof key, "r%d-%d", round, i);
        cr_assert_eq(redkv_set_async(s, key, strlen(key), "v", 1, 0, 0, count_cb, &t[i]),
                     REDKV_OK);
    }
    for (long long until = now_ms() + 20000; redkv_pending(s) > 0 && now_ms() < until;) {
        struct timeval tv = {0, 50000};
        fd_set rd;
        FD_ZERO(&rd);
        int fd = redkv_fd(s);
        if (fd >= 0)
            FD_SET(fd, &rd);
        select(fd + 1, &rd, NULL, NULL, &tv);
        redkv_process(s, REDKV_READ);
    }
    cr_assert_eq(redkv_pending(s), 0, "every request ended");
}

/* A master killed under an asynchronous stream: each request ends exactly once (ECONN for
   those lost with it), and once the replica took over, requests to its slots succeed. */
Test(router_cluster, async_stream_rides_a_lost_master)
{
    redkv *s = open_cluster_store("GONE", 2000);
    enum { COUNT = 200 };
    static tally t[COUNT];
    memset(t, 0, sizeof t);
    async_batch(s, 0, t, COUNT);
    for (int i = 0; i < COUNT; i++)
        cr_assert(t[i].calls == 1 && t[i].ok == 1, "request %d before the kill", i);
    test_server *victim = NULL;
    for (int i = 0; i < NODES && !victim; i++)
        if (cluster_is_master(&cluster_node[i]))
            victim = &cluster_node[i];
    kill(victim->pid, SIGKILL);
    waitpid(victim->pid, NULL, 0);
    victim->pid = 0;
    int all_ok = 0;
    for (int round = 1; round < 60 && !all_ok; round++) {
        memset(t, 0, sizeof t);
        async_batch(s, round, t, COUNT);
        all_ok = 1;
        for (int i = 0; i < COUNT; i++) {
            cr_assert_eq(t[i].calls, 1, "round %d, request %d: %d calls", round, i, t[i].calls);
            cr_assert_eq(t[i].other, 0, "round %d, request %d: an unexpected error", round, i);
            all_ok &= t[i].ok;
        }
        if (!all_ok)
            usleep(200000);
    }
    cr_assert(all_ok, "after the failover every request succeeds");
    redkv_close(s);
}
#endif
