/* test_router.c - the router under the store: the masters of a cluster however many there
 * are, the masters of a real cluster worked on at once by delete_all, an asynchronous
 * stream that rides through a lost master, asynchronous requests that keep their order
 * when a slot moves under them, and a lost master that never makes an asynchronous call
 * block. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

/* ---- held asynchronous requests, against a node that never answers ------------------------------ */

/* A listening socket that accepts (the kernel does) and never answers: its port. */
static int silent_listener(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(*fd >= 0 && bind(*fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(*fd, 16) == 0);
    cr_assert_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static int encode_get(resp_buf *out, const void *arg)
{
    return resp_encode_header(out, 2) | resp_encode_arg(out, "GET", 3) |
           resp_encode_arg(out, arg, strlen(arg));
}

typedef struct held_req {
    rk_areq a;                /* first */
    int calls, status;
    long long at;
} held_req;

static void held_done(rk_req *req, int status, const resp_reply *reply)
{
    (void)reply;
    held_req *h = (held_req *)req;
    h->calls++;
    h->status = status;
    h->at = now_ms();
}

static int queue_held(rk_router *r, held_req *h, const char *key, int timeout_ms)
{
    rk_cmd cmd = {encode_get, key, "", key, 0, strlen(key), 0, NULL};
    memset(h, 0, sizeof *h);
    h->a.done = held_done;
    h->a.req.deadline = rk_deadline(timeout_ms);
    return rk_route_queue(r, &cmd, &h->a);
}

/* One event-loop turn over the router, waiting no longer than it says. */
static int router_turn(rk_router *r, int cap_ms)
{
    int t = rk_router_timeout_ms(r);
    struct pollfd p = {rk_router_fd(r), POLLIN, 0};
    poll(&p, 1, t < 0 || t > cap_ms ? cap_ms : t);
    rk_router_process(r, p.revents ? REDKV_READ : 0);
    return t;
}

/* A request lost its node, so the next one reads the map, on a node that never answers:
   the call returns at once (before, it read the map with a blocking round trip); requests
   queued meanwhile are held, and one held past its deadline ends with ETIMEDOUT, once, at
   that deadline (redkv_timeout_ms counts it, though the map read waits longer); closing
   gives the rest ECONN, once. */
Test(router_unit, held_requests_time_out_and_close_while_the_map_is_read)
{
    int lfd, port = silent_listener(&lfd);
    char url[64];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", port);
    rk_config cfg;
    redkv_options o = {0};
    o.url = url;
    o.command_timeout_ms = 3000;
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_OK);
    rk_router *r;
    cr_assert_eq(rk_router_new(&cfg, &r), REDKV_OK);
    r->async_stale = 1;                /* as after a lost node */
    static held_req first, soon, later;
    long long t0 = now_ms();
    cr_assert_eq(queue_held(r, &first, "a", 3000), REDKV_OK);
    cr_assert_eq(queue_held(r, &soon, "b", 300), REDKV_OK);
    cr_assert_eq(queue_held(r, &later, "c", 3000), REDKV_OK);
    cr_assert_lt(now_ms() - t0, 1000, "queueing blocked");
    int min_timeout = 1 << 30;
    while (!soon.calls && now_ms() - t0 < 2500) {
        int t = router_turn(r, 2000);
        min_timeout = t >= 0 && t < min_timeout ? t : min_timeout;
    }
    cr_assert_eq(soon.calls, 1);
    cr_assert_eq(soon.status, REDKV_ETIMEDOUT);
    cr_assert(soon.at - t0 >= 290 && soon.at - t0 < 1000, "ended after %lld ms", soon.at - t0);
    cr_assert_leq(min_timeout, 300, "the router's timeout counts the held request");
    cr_assert(first.calls == 0 && later.calls == 0, "the others wait for the map");
    router_turn(r, 50);
    rk_router_free(r);
    cr_assert(first.calls == 1 && first.status == REDKV_ECONN, "first: %d calls", first.calls);
    cr_assert(later.calls == 1 && later.status == REDKV_ECONN, "later: %d calls", later.calls);
    cr_assert_eq(soon.calls, 1);
    rk_areq_free(&first.a);
    rk_areq_free(&soon.a);
    rk_areq_free(&later.a);
    rk_config_free(&cfg);
    close(lfd);
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

/* ---- asynchronous order and the map read without blocking ---------------------------------- */


static int slot_of(const char *key)
{
    return rk_key_slot("", 0, key, strlen(key));
}

/* A master other than not (and other than also, when given). */
static test_server *other_master(const test_server *not, const test_server *also)
{
    for (int i = 0; i < NODES; i++)
        if (&cluster_node[i] != not && &cluster_node[i] != also && cluster_node[i].pid &&
            cluster_is_master(&cluster_node[i]))
            return &cluster_node[i];
    return NULL;
}

/* Moving a slot as redis-cli --cluster reshard does, in its three steps. */
static void slot_migrating(int slot, test_server *src, test_server *dst)
{
    char ss[16], src_id[64], dst_id[64], out[128];
    snprintf(ss, sizeof ss, "%d", slot);
    SRV(src, src_id, "CLUSTER", "MYID");
    SRV(dst, dst_id, "CLUSTER", "MYID");
    SRV(dst, out, "CLUSTER", "SETSLOT", ss, "IMPORTING", src_id);
    cr_assert_str_eq(out, "OK");
    SRV(src, out, "CLUSTER", "SETSLOT", ss, "MIGRATING", dst_id);
    cr_assert_str_eq(out, "OK");
}

static void key_migrated(const char *key, test_server *src, test_server *dst)
{
    char port[16], out[128];
    snprintf(port, sizeof port, "%d", dst->port);
    SRV(src, out, "MIGRATE", "127.0.0.1", port, key, "0", "5000");
    cr_assert(strcmp(out, "OK") == 0 || strcmp(out, "NOKEY") == 0, "MIGRATE %s: %s", key, out);
}

static void slot_owned_by(int slot, test_server *dst)
{
    char ss[16], dst_id[64], out[128];
    snprintf(ss, sizeof ss, "%d", slot);
    SRV(dst, dst_id, "CLUSTER", "MYID");
    SRV(dst, out, "CLUSTER", "SETSLOT", ss, "NODE", dst_id);   /* the target first */
    cr_assert_str_eq(out, "OK");
    for (int i = 0; i < NODES; i++)
        if (&cluster_node[i] != dst && cluster_node[i].pid && cluster_is_master(&cluster_node[i])) {
            SRV(&cluster_node[i], out, "CLUSTER", "SETSLOT", ss, "NODE", dst_id);
            cr_assert_str_eq(out, "OK");
        }
}

/* One callback's record: which key and which write of it, in the order callbacks ran. */
typedef struct order_log {
    int calls, bad;
    int key[4096], seq[4096], status[4096];
    long long at[4096];
} order_log;

typedef struct order_arg {
    order_log *log;
    int key, seq;
} order_arg;

static void order_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s, (void)val, (void)vlen, (void)n;
    order_arg *a = arg;
    order_log *log = a->log;
    if (log->calls < 4096) {
        log->key[log->calls] = a->key;
        log->seq[log->calls] = a->seq;
        log->status[log->calls] = status;
        log->at[log->calls] = now_ms();
    }
    log->calls++;
}

static void set_seq(redkv *s, const char *key, order_arg *a)
{
    char val[32];
    snprintf(val, sizeof val, "v%d", a->seq);
    cr_assert_eq(redkv_set_async(s, key, strlen(key), val, strlen(val), 0, 0, order_cb, a),
                 REDKV_OK, "%s", redkv_last_error());
}

/* The loop every program writes, waiting no longer than redkv_timeout_ms says (at most
   cap_ms, so that a wrong timeout shows as lateness, not a hang), for up to limit_ms or
   until nothing is pending. */
static void pump(redkv *s, int limit_ms, int cap_ms)
{
    long long until = now_ms() + limit_ms;
    while (redkv_pending(s) > 0 && now_ms() < until) {
        struct pollfd p = {redkv_fd(s), 0, 0};
        int ev = redkv_events(s), t = redkv_timeout_ms(s);
        long long left = until - now_ms();
        p.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        t = t < 0 || t > cap_ms ? cap_ms : t;
        poll(&p, p.fd >= 0 ? 1 : 0, left < t ? (int)left : t);
        redkv_process(s, (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                         (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
}

/* Every callback ran once with OK, and each key's callbacks came in the order of its
   writes (a connection answers in order, so that is the order the server ran them). */
static void assert_in_order(const order_log *log, int expected)
{
    int last[64];
    for (int k = 0; k < 64; k++)
        last[k] = -1;
    cr_assert_eq(log->calls, expected, "%d callbacks for %d requests", log->calls, expected);
    for (int i = 0; i < log->calls; i++) {
        cr_assert_eq(log->status[i], REDKV_OK, "callback %d: %s", i,
                     redkv_strerror(log->status[i]));
        cr_assert_gt(log->seq[i], last[log->key[i]], "key %d: write %d ran after write %d",
                     log->key[i], log->seq[i], last[log->key[i]]);
        last[log->key[i]] = log->seq[i];
    }
}

/* SETs of increasing values to one key queued under the old map; the slot moves; a
   blocking call of the same store learns the new map (MOVED); more SETs. Those sent first
   come back MOVED and go to the new master again: before, they went behind the later ones,
   which had gone there straight, and the key ended with a value of the first half. */
Test(router_cluster, async_order_kept_when_a_blocking_call_moves_the_slot)
{
    redkv *s = open_cluster_store("ORD", 5000);
    cr_assert_eq(set_str(s, "{ord}k", "start", 0), REDKV_OK, "%s", redkv_last_error());
    int slot = slot_of("ORD:{ord}k");
    test_server *src = cluster_master_of(slot), *dst = other_master(src, NULL);
    cr_assert(src && dst);
    enum { HALF = 100 };
    static order_log log;
    static order_arg args[2 * HALF];
    memset(&log, 0, sizeof log);
    for (int i = 0; i < 2 * HALF; i++)
        args[i] = (order_arg){&log, 0, i};
    for (int i = 0; i < HALF; i++)
        set_seq(s, "{ord}k", &args[i]);
    slot_migrating(slot, src, dst);
    key_migrated("ORD:{ord}k", src, dst);
    slot_owned_by(slot, dst);
    cr_assert_str_eq(get_str(s, "{ord}other"), "(missing)", "a blocking call follows MOVED");
    for (int i = HALF; i < 2 * HALF; i++)
        set_seq(s, "{ord}k", &args[i]);
    pump(s, 20000, 100);
    cr_assert_eq(redkv_pending(s), 0);
    assert_in_order(&log, 2 * HALF);
    char out[64];
    SRV(dst, out, "GET", "ORD:{ord}k");
    cr_assert_str_eq(out, "v199", "the last write stands");
    redkv_close(s);
}

/* A stream of writes to keys of one slot (and to keys elsewhere) while that slot migrates:
   ASK while its keys move, MOVED once it is the target's, and the map changed under the
   stream by a blocking call in between. Then a second slot moves at once, learnt by the
   asynchronous requests alone (their MOVED, then the map read that follows it). Each key's
   writes run in order, each callback runs once with OK, every key ends with its last value. */
Test(router_cluster, async_order_kept_while_a_slot_migrates_under_a_stream)
{
    enum { KEYS = 10, ROUNDS = 60 };
    const char *keys[KEYS] = {"{mv}a", "{mv}b", "{mv}c", "{mv}d", "x1", "x2", "x3", "x4",
                              "{mw}a", "{mw}b"};
    redkv *s = open_cluster_store("MIG", 5000);
    cr_assert_eq(set_str(s, "{mv}a", "start", 0), REDKV_OK, "%s", redkv_last_error());
    int slot = slot_of("MIG:{mv}a"), slot2 = slot_of("MIG:{mw}a");
    test_server *src = cluster_master_of(slot), *dst = other_master(src, NULL);
    test_server *src2 = cluster_master_of(slot2), *dst2 = other_master(src2, NULL);
    cr_assert(src && dst && src2 && dst2 && slot != slot2);
    static order_log log;
    static order_arg args[ROUNDS][KEYS];
    memset(&log, 0, sizeof log);
    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < KEYS; k++) {
            args[round][k] = (order_arg){&log, k, round};
            set_seq(s, keys[k], &args[round][k]);
        }
        if (round == 10)
            slot_migrating(slot, src, dst);
        if (round == 20 || round == 30) {         /* half the keys, then the rest */
            for (int k = round == 20 ? 0 : 2; k < (round == 20 ? 2 : 4); k++) {
                char full[32];
                snprintf(full, sizeof full, "MIG:%s", keys[k]);
                key_migrated(full, src, dst);
            }
        }
        if (round == 40) {
            slot_owned_by(slot, dst);
            cr_assert_str_eq(get_str(s, "{mv}zz"), "(missing)");   /* learns MOVED */
        }
        if (round == 50) {
            slot_migrating(slot2, src2, dst2);
            key_migrated("MIG:{mw}a", src2, dst2);
            key_migrated("MIG:{mw}b", src2, dst2);
            slot_owned_by(slot2, dst2);
        }
        /* some rounds answered, some left in flight: round 40 always, so that round 41
           goes out under the new map while round 40 is still on its way to the source */
        pump(s, round % 3 && round != 40 ? 2 : 0, 1);
    }
    pump(s, 20000, 100);
    cr_assert_eq(redkv_pending(s), 0);
    assert_in_order(&log, ROUNDS * KEYS);
    for (int k = 0; k < KEYS; k++)
        cr_assert_str_eq(get_str(s, keys[k]), "v59", "%s", keys[k]);
    char out[64];
    SRV(dst, out, "GET", "MIG:{mv}d");
    cr_assert_str_eq(out, "v59", "the slot's keys are on the target");
    SRV(dst2, out, "GET", "MIG:{mw}b");
    cr_assert_str_eq(out, "v59", "the second slot's keys are on its target");
    redkv_close(s);
}

/* A key served by master m, and one served by another live master. */
static void key_on(const test_server *m, int want_on, char *key, size_t cap, const char *ns)
{
    for (int i = 0;; i++) {
        char full[64];
        snprintf(key, cap, "k%d", i);
        snprintf(full, sizeof full, "%s:%s", ns, key);
        test_server *owner = cluster_master_of(slot_of(full));
        if (owner && (owner == m) == want_on)
            return;
    }
}

typedef struct lost_setup {
    redkv *s;
    test_server *victim;
    char dead_key[32], live_key[32];
} lost_setup;

/* A store whose asynchronous requests have been everywhere; then a master killed and an
   asynchronous request lost with it (ECONN), so the next one must learn the map anew; then
   every other node stopped (SIGSTOP). */
static void lose_a_master(lost_setup *ls, const char *ns, int timeout_ms)
{
    static tally t[100];
    memset(t, 0, sizeof t);
    char out[64];
    for (int i = 0; i < NODES; i++)    /* the other masters' slots stay served meanwhile */
        SRV(&cluster_node[i], out, "CONFIG", "SET", "cluster-require-full-coverage", "no");
    ls->s = open_cluster_store(ns, timeout_ms);
    async_batch(ls->s, 0, t, 100);
    ls->victim = cluster_master_of(slot_of("x"));
    cr_assert_not_null(ls->victim);
    key_on(ls->victim, 1, ls->dead_key, sizeof ls->dead_key, ns);
    key_on(ls->victim, 0, ls->live_key, sizeof ls->live_key, ns);
    kill(ls->victim->pid, SIGKILL);
    waitpid(ls->victim->pid, NULL, 0);
    ls->victim->pid = 0;
    tally lost = {0};
    cr_assert_eq(redkv_get_async(ls->s, ls->dead_key, strlen(ls->dead_key), 0, count_cb, &lost),
                 REDKV_OK);
    pump(ls->s, 5000, 100);
    cr_assert(lost.calls == 1 && lost.lost == 1, "the request to the killed master is lost");
    for (int i = 0; i < NODES; i++)
        if (cluster_node[i].pid)
            srv_pause(&cluster_node[i]);
}

static void resume_all(void)
{
    for (int i = 0; i < NODES; i++)
        if (cluster_node[i].pid)
            srv_resume(&cluster_node[i]);
}

/* After a lost master, the next asynchronous call used to read the slot map with a
   blocking round trip: with every node stopped it blocked for the whole timeout. Now the
   call returns at once, and the request completes from the event loop once the nodes
   answer again. */
Test(router_cluster, async_call_after_a_lost_master_does_not_block)
{
    lost_setup ls;
    lose_a_master(&ls, "NB", 5000);
    order_log log;
    memset(&log, 0, sizeof log);
    order_arg arg = {&log, 0, 1};
    long long t0 = now_ms();
    int rc = redkv_set_async(ls.s, ls.live_key, strlen(ls.live_key), "v1", 2, 0, 0, order_cb,
                             &arg);
    long long spent = now_ms() - t0;
    pump(ls.s, 300, 100);                       /* nothing can answer yet */
    int calls_stopped = log.calls;
    resume_all();
    cr_assert_eq(rc, REDKV_OK, "%s", redkv_last_error());
    cr_assert_lt(spent, 1500, "the call blocked for %lld ms", spent);
    cr_assert_eq(calls_stopped, 0);
    pump(ls.s, 10000, 100);
    cr_assert_eq(log.calls, 1);
    cr_assert_eq(log.status[0], REDKV_OK, "%s", redkv_strerror(log.status[0]));
    cr_assert_str_eq(get_str(ls.s, ls.live_key), "v1");
    redkv_close(ls.s);
}

/* Requests held while the map is read (nothing answers) end with ETIMEDOUT once each, at
   their deadline, with the loop sleeping only as long as redkv_timeout_ms says. */
Test(router_cluster, held_async_requests_time_out)
{
    enum { N = 5, TIMEOUT = 1500 };
    lost_setup ls;
    lose_a_master(&ls, "HT", TIMEOUT);
    order_log log;
    order_arg args[N];
    memset(&log, 0, sizeof log);
    long long queued[N], worst = 0;
    for (int i = 0; i < N; i++) {
        args[i] = (order_arg){&log, i, i};
        queued[i] = now_ms();
        int rc = redkv_set_async(ls.s, ls.live_key, strlen(ls.live_key), "v", 1, 0, 0, order_cb,
                                 &args[i]);
        long long spent = now_ms() - queued[i];
        worst = spent > worst ? spent : worst;
        cr_assert_eq(rc, REDKV_OK, "%s", redkv_last_error());
    }
    pump(ls.s, 3 * TIMEOUT, 3 * TIMEOUT);
    resume_all();
    cr_assert_lt(worst, 700, "a call blocked for %lld ms", worst);
    cr_assert_eq(log.calls, N, "%d callbacks", log.calls);
    for (int i = 0; i < N; i++) {
        long long late = log.at[i] - (queued[log.seq[i]] + TIMEOUT);
        /* the first is held past its deadline; the others maybe too, or sent to the best
           guess when the map read gives up, where they time out on a connection that is
           then dropped (ECONN for those behind the first) */
        int st = log.status[i];
        cr_assert(st == REDKV_ETIMEDOUT || (st == REDKV_ECONN && log.seq[i] > 0), "%d: %s",
                  log.seq[i], redkv_strerror(st));
        cr_assert(late > -100 && late < 1000, "request %d ended %lld ms after its deadline",
                  log.seq[i], late);
    }
    cr_assert_eq(redkv_pending(ls.s), 0);
    redkv_close(ls.s);
}
#endif
