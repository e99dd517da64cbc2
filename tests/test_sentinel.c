/* test_sentinel.c - Redis Sentinel: the URL and the option (no server), then the store
 * against a master, its replica and three sentinels on loopback (sentinel_fixture.c),
 * started for each test and stopped however it ends: every operation blocking and
 * asynchronous, a SENTINEL FAILOVER during a stream of writes, a killed master, a sentinel
 * list whose first is down, a wrong master name, and passwords on both sides. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "sentinel_fixture.h"
#include "store.h"

#ifndef REDKV_NO_SENTINEL

/* ---- without a server ------------------------------------------------------------------- */

Test(sentinel_unit, urls_and_the_option)
{
    rk_config cfg;
    redkv_options o = {0};
    o.url = "redis+sentinel://u:p%40w@127.0.0.1:26380,[::1],s3:26381/my%20master/3"
            "?sentinel_username=su&sentinel_password=s%26p";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_OK, "%s", redkv_last_error());
    cr_assert(cfg.sentinel && !cfg.cluster);
    cr_assert_eq(cfg.nseeds, 3);
    cr_assert_str_eq(cfg.seeds[0].host, "127.0.0.1");
    cr_assert_eq(cfg.seeds[0].port, 26380);
    cr_assert_str_eq(cfg.seeds[1].host, "::1");
    cr_assert_eq(cfg.seeds[1].port, 26379, "a sentinel's default port");
    cr_assert_eq(cfg.seeds[2].port, 26381);
    cr_assert_str_eq(cfg.sentinel_master, "my master");
    cr_assert_eq(cfg.db, 3);
    cr_assert_str_eq(cfg.user, "u");
    cr_assert_str_eq(cfg.pass, "p@w");
    cr_assert_str_eq(cfg.sentinel_user, "su");
    cr_assert_str_eq(cfg.sentinel_pass, "s&p");
    rk_config_free(&cfg);

    /* the option: a redis:// URL's hosts are sentinels; its name wins over the URL's */
    o.url = "redis://10.0.0.1:26390,10.0.0.2/2";
    o.sentinel_master = "other";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_OK, "%s", redkv_last_error());
    cr_assert(cfg.sentinel);
    cr_assert_eq(cfg.nseeds, 2);
    cr_assert_eq(cfg.seeds[1].port, 26379);
    cr_assert_str_eq(cfg.sentinel_master, "other");
    cr_assert_eq(cfg.db, 2);
    rk_config_free(&cfg);
    o.url = "redis+sentinel://h/named";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_OK);
    cr_assert_str_eq(cfg.sentinel_master, "other");
    rk_config_free(&cfg);

    const char *bad[] = {"redis+sentinel://h:26379", "redis+sentinel://h:26379/",
                         "redis+sentinel://h:1,,h:2/m", "redis+sentinel://h:0/m",
                         "redis+sentinel://h/m/x", "redis+sentinel://h/m?foo=1",
                         "redis://h:6379?sentinel_password=x", "redis+sentinels://h/m"};
    o.sentinel_master = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.url = bad[i];
        cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_ECONFIG, "%s", bad[i]);
    }
    o.sentinel_master = "m";
    o.url = "unix:///tmp/x.sock";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_ECONFIG);
    o.url = "redis+cluster://h:7000";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_ECONFIG);
    o.url = "redis://h:26379";
    o.cluster = true;
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_ECONFIG);
    /* no password in a message */
    o.cluster = false;
    o.sentinel_master = NULL;
    o.url = "redis+sentinel://:topsecret@h:0/m?sentinel_password=alsosecret";
    cr_assert_eq(rk_config_from_options(&cfg, &o), REDKV_ECONFIG);
    cr_assert_null(strstr(redkv_last_error(), "secret"));
}

/* ---- helpers ---------------------------------------------------------------------------- */

static redkv *open_sentinel(const char *u, const char *ns, int timeout_ms)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = u;
    o.ns = ns;
    o.command_timeout_ms = timeout_ms;
    o.connect_timeout_ms = 1000;
    if (redkv_open(&s, &o) != REDKV_OK) {
        fprintf(stderr, "open: %s\n", redkv_last_error());
        return NULL;
    }
    return s;
}

typedef struct outcome {
    int calls, status;
    int64_t n;
    char val[64];
    long long at;             /* when the callback ran */
} outcome;

static void note(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s;
    outcome *o = arg;
    o->calls++;
    o->at = now_ms();
    o->status = status;
    o->n = n;
    snprintf(o->val, sizeof o->val, "%.*s", (int)(vlen < 63 ? vlen : 63), val ? (const char *)val : "");
}

/* One pass of the loop every program writes: poll redkv_fd for redkv_events, then process. */
static void drive_once(redkv *s, int max_wait_ms)
{
    struct pollfd p = {redkv_fd(s), 0, 0};
    int ev = redkv_events(s), t = redkv_timeout_ms(s);
    p.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
    poll(&p, p.fd >= 0 ? 1 : 0, t < 0 || t > max_wait_ms ? max_wait_ms : t);
    int got = (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
              (p.revents & POLLOUT ? REDKV_WRITE : 0);
    redkv_process(s, got);
}

static void drive(redkv *s, int limit_ms)
{
    long long until = now_ms() + limit_ms;
    while (redkv_pending(s) > 0 && now_ms() < until)
        drive_once(s, 100);
}

static int run_cli(const char *args, char *out, size_t cap)
{
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "'%s' %s", build_path("redkv"), args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- against the sentinels ----------------------------------------------------------------- */

TestSuite(sentinel, .init = sentinel_up, .fini = sentinel_stop, .timeout = 150);

Test(sentinel, every_operation_blocking_async_and_the_cli)
{
    redkv *s = open_sentinel(snt_url, "SN", 3000), *child = NULL;
    cr_assert_not_null(s);
    cr_assert_eq(redkv_ping(s), REDKV_OK, "%s", redkv_last_error());
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_eq(set_str(s, "t", "w", 60000), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v");
    cr_assert_eq(redkv_exists(s, "k", 1), 1);
    int64_t ms;
    cr_assert_eq(redkv_expires_in(s, "k", 1, &ms), REDKV_PERSISTENT);
    char buf[16];
    size_t n;
    cr_assert_eq(redkv_get_into(s, "t", 1, 120000, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(redkv_expires_in(s, "t", 1, &ms), REDKV_OK);
    cr_assert_gt(ms, 60000, "renewed");
    char out[256];
    SRV(&snt_data[0], out, "GET", "SN:k");
    cr_assert_str_eq(out, "v", "on the master");
    cr_assert_eq(redkv_with_namespace(s, "c", &child), REDKV_OK);
    cr_assert_eq(set_str(child, "k", "c", 0), REDKV_OK);
    cr_assert_eq(redkv_delete(s, "t", 1), REDKV_OK);
    cr_assert_eq(redkv_delete_all(s), REDKV_OK, "%s", redkv_last_error());
    cr_assert_str_eq(get_str(child, "k"), "(missing)");
    redkv_close(child);

    /* asynchronous: the first request asks the sentinels */
    cr_assert_eq(redkv_fd(s), -1);
    enum { N = 100 };
    static outcome o[N][4];
    memset(o, 0, sizeof o);
    char key[32], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "a%d", i);
        snprintf(val, sizeof val, "v%d", i);
        cr_assert_eq(redkv_set_async(s, key, strlen(key), val, strlen(val), 0, 0, note, &o[i][0]),
                     REDKV_OK);
        cr_assert_eq(redkv_get_async(s, key, strlen(key), 0, note, &o[i][1]), REDKV_OK);
        cr_assert_eq(redkv_exists_async(s, key, strlen(key), note, &o[i][2]), REDKV_OK);
    }
    cr_assert_geq(redkv_fd(s), 0);
    drive(s, 10000);
    cr_assert_eq(redkv_pending(s), 0);
    for (int i = 0; i < N; i++) {
        snprintf(val, sizeof val, "v%d", i);
        for (int k = 0; k < 3; k++)
            cr_assert_eq(o[i][k].calls, 1);
        cr_assert_eq(o[i][0].status, REDKV_OK, "%s", redkv_strerror(o[i][0].status));
        cr_assert_str_eq(o[i][1].val, val);
        cr_assert_eq(o[i][2].n, 1);
        snprintf(key, sizeof key, "a%d", i);
        cr_assert_eq(redkv_delete_async(s, key, strlen(key), note, &o[i][3]), REDKV_OK);
    }
    drive(s, 10000);
    for (int i = 0; i < N; i++)
        cr_assert_eq(o[i][3].n, 1);
    redkv_close(s);

    /* the option form: a redis:// URL naming one sentinel, and the master's name */
    redkv_options opt = {0};
    opt.url = snt_sentinel[2].url;
    opt.sentinel_master = SNT_MASTER_NAME;
    cr_assert_eq(redkv_open(&s, &opt), REDKV_OK);
    cr_assert_eq(set_str(s, "opt", "x", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);
    SRV(&snt_data[0], out, "GET", "LITESTAR:opt");
    cr_assert_str_eq(out, "x");

    /* the command-line tool takes the URL as it is */
    char args[1600];
    snprintf(args, sizeof args, "-u '%s' set tool-key tool-value && '%s' -u '%s' get tool-key",
             snt_url, build_path("redkv"), snt_url);
    cr_assert_eq(run_cli(args, out, sizeof out), 0);
    cr_assert_str_eq(out, "tool-value");
}

/* ---- a failover under load ----------------------------------------------------------------- */

enum { WRITES = 400000 };

typedef struct writer {
    redkv *s;
    int id;
    volatile int stop;
    unsigned char acked[WRITES];
    volatile int n;
    int errors;
    long long end_ms[WRITES];
} writer;

static void *write_stream(void *arg)
{
    writer *w = arg;
    char key[32], val[32];
    for (int i = 0; i < WRITES && !w->stop; i++) {
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        snprintf(val, sizeof val, "v%d", i);
        int rc = set_str(w->s, key, val, 0);
        w->acked[i] = rc == REDKV_OK;
        w->errors += rc != REDKV_OK;
        w->end_ms[i] = now_ms();
        w->n = i + 1;
    }
    return NULL;
}

/* Acknowledged writes of w that the current master does not hold. */
static int lost_writes(redkv *reader, const writer *w, int *checked)
{
    char key[32], val[32];
    int lost = 0;
    for (int i = 0; i < w->n; i++) {
        if (!w->acked[i])
            continue;
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        snprintf(val, sizeof val, "v%d", i);
        lost += strcmp(get_str(reader, key), val) != 0;
        (*checked)++;
    }
    return lost;
}

/* The async stream: up to DEPTH requests in flight, each key once. */
enum { ASYNC_MAX = 400000, DEPTH = 16 };
typedef struct async_stream {
    redkv *s;
    outcome o[ASYNC_MAX];
    int queued;
    long long started;        /* ms of the first pump */
} async_stream;

/* At most ASYNC_PER_MS requests a millisecond: a fast machine must not use up ASYNC_MAX
   before the failover is over (it takes ~12 s). */
#define ASYNC_PER_MS 10

static void async_pump(async_stream *a)
{
    char key[32];
    if (!a->started)
        a->started = now_ms();
    long long allowed = (now_ms() - a->started + 1) * ASYNC_PER_MS;
    while (a->queued < ASYNC_MAX && a->queued < allowed && redkv_pending(a->s) < DEPTH) {
        snprintf(key, sizeof key, "as-%d", a->queued);
        cr_assert_eq(redkv_set_async(a->s, key, strlen(key), key, strlen(key), 0, 0, note,
                                     &a->o[a->queued]), REDKV_OK);
        a->queued++;
    }
    drive_once(a->s, 50);
}

static int wait_for_master(int port, long long limit_ms)
{
    long long until = now_ms() + limit_ms;
    while (now_ms() < until) {
        if (snt_named_port(NULL) == port)
            return 1;
        usleep(50000);
    }
    return 0;
}

Test(sentinel, failover_during_writes_from_threads_and_async)
{
    static writer w[4];
    static async_stream as;
    memset(w, 0, sizeof w);
    memset(&as, 0, sizeof as);
    redkv *s = open_sentinel(snt_url, "FO", 8000);
    cr_assert_not_null(s);
    as.s = open_sentinel(snt_url, "FO", 8000);
    cr_assert_not_null(as.s);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i].s = s;
        w[i].id = i;
        cr_assert_eq(pthread_create(&t[i], NULL, write_stream, &w[i]), 0);
    }
    for (long long until = now_ms() + 500; now_ms() < until;)
        async_pump(&as);
    char out[256];
    cr_assert_eq(SRV(&snt_sentinel[1], out, "SENTINEL", "FAILOVER", SNT_MASTER_NAME), RESP_STRING,
                 "%s", out);
    long long started = now_ms();
    long long until = started + 30000;
    while (!(snt_named_port(NULL) == snt_data[1].port && snt_is_master(&snt_data[1], NULL)) &&
           now_ms() < until)
        async_pump(&as);
    cr_assert(snt_is_master(&snt_data[1], NULL), "the replica was promoted");
    long long promoted = now_ms();
    /* the old master becomes a replica of the new one */
    until = now_ms() + 30000;
    while (snt_is_master(&snt_data[0], NULL) && now_ms() < until)
        async_pump(&as);
    cr_assert(!snt_is_master(&snt_data[0], NULL), "the old master was turned into a replica");
    long long demoted = now_ms();
    int at_switch[4], async_at_switch = as.queued;
    for (int i = 0; i < 4; i++)
        at_switch[i] = w[i].n;
    /* writes go on: each thread and the async stream make progress on the new master */
    until = now_ms() + 20000;
    int progressed = 0;
    while (!progressed && now_ms() < until) {
        async_pump(&as);
        progressed = as.queued > async_at_switch + 200;
        for (int i = 0; i < 4; i++)
            progressed &= w[i].n > at_switch[i] + 50;
    }
    for (int i = 0; i < 4; i++)
        w[i].stop = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    drive(as.s, 20000);
    cr_assert(progressed, "writes went on after the failover: threads %d/%d %d/%d %d/%d %d/%d, "
              "async %d/%d", at_switch[0], w[0].n, at_switch[1], w[1].n, at_switch[2], w[2].n,
              at_switch[3], w[3].n, async_at_switch, as.queued);
    cr_assert_eq(redkv_pending(as.s), 0);

    /* every call ended once; after the switch, each writer's calls succeed */
    int errors = 0, async_errors = 0, checked = 0, lost = 0, async_lost = 0;
    for (int i = 0; i < 4; i++) {
        errors += w[i].errors;
        for (int k = at_switch[i] + 1; k < w[i].n; k++)
            cr_assert(w[i].acked[k], "write %d of thread %d failed after the switch", k, i);
    }
    for (int i = 0; i < as.queued; i++) {
        cr_assert_eq(as.o[i].calls, 1, "async request %d called back %d times", i, as.o[i].calls);
        async_errors += as.o[i].status != REDKV_OK;
        cr_assert(as.o[i].status == REDKV_OK || as.o[i].status == REDKV_ECONN ||
                  as.o[i].status == REDKV_ESERVER,
                  "async %d: %s", i, redkv_strerror(as.o[i].status));
        if (i > async_at_switch + DEPTH)
            cr_assert_eq(as.o[i].status, REDKV_OK, "async %d after the switch", i);
    }
    for (int i = 0; i < 4; i++)
        lost += lost_writes(s, &w[i], &checked);
    char key[32];
    for (int i = 0; i < as.queued; i++) {
        if (as.o[i].status != REDKV_OK)
            continue;
        snprintf(key, sizeof key, "as-%d", i);
        async_lost += strcmp(get_str(s, key), key) != 0;
    }
    fprintf(stderr, "sentinel failover: %d blocking writes (%d failed, %d acknowledged ones lost), "
            "%d async writes (%d failed, %d acknowledged ones lost), promoted after %lld ms, "
            "the old master demoted after %lld ms\n", checked + errors, errors, lost, as.queued,
            async_errors, async_lost, promoted - started, demoted - started);
    /* Redis replicates asynchronously: what the old master took after the replica's
       promotion and before its own demotion is gone (README, "Sentinel"). Bounded here by
       what a few seconds of writing can be. */
    cr_assert_lt(errors, 40, "%d blocking writes failed", errors);
    /* The old master keeps taking writes for ~10 s, until the sentinels demote it; asking
       the sentinels again each second (REDKV_SENTINEL_RECHECK_MS) keeps the loss to a
       fraction of that. */
    int window = 0, async_window = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < w[i].n; k++)
            window += w[i].acked[k] && w[i].end_ms[k] >= started && w[i].end_ms[k] < demoted;
    for (int i = 0; i < as.queued; i++)
        async_window += as.o[i].status == REDKV_OK && as.o[i].at >= started && as.o[i].at < demoted;
    cr_assert_lt(lost * 2, window, "%d acknowledged blocking writes lost, of %d taken between "
                 "SENTINEL FAILOVER and the demotion", lost, window);
    cr_assert_lt(async_lost * 2, async_window, "%d acknowledged async writes lost, of %d taken "
                 "between SENTINEL FAILOVER and the demotion", async_lost, async_window);
    redkv_close(as.s);
    redkv_close(s);
}

Test(sentinel, a_killed_master_is_replaced_and_calls_resume)
{
    static writer w;
    memset(&w, 0, sizeof w);
    w.s = open_sentinel(snt_url, "KILL", 10000);
    cr_assert_not_null(w.s);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_stream, &w), 0);
    usleep(300000);
    kill(snt_data[0].pid, SIGKILL);
    long long killed = now_ms();
    waitpid(snt_data[0].pid, NULL, 0);
    snt_data[0].pid = 0;
    int at_kill = w.n;
    cr_assert(wait_for_master(snt_data[1].port, 40000), "the sentinels promoted the replica");
    long long promoted = now_ms();
    int at_promotion = w.n;
    long long until = now_ms() + 20000;
    while (w.n < at_promotion + 50 && now_ms() < until)
        usleep(20000);
    w.stop = 1;
    pthread_join(t, NULL);
    cr_assert_gt(w.n, at_promotion + 50, "writes went on after the promotion");
    /* the first write that began after the kill, and when it succeeded */
    long long first_ok = -1;
    for (int i = at_kill + 1; i < w.n && first_ok < 0; i++)
        if (w.acked[i] && w.end_ms[i - 1] >= killed)
            first_ok = w.end_ms[i];
    cr_assert_geq(first_ok, 0);
    int checked = 0, lost = lost_writes(w.s, &w, &checked);
    fprintf(stderr, "sentinel SIGKILL: first successful write %lld ms after the kill (the "
            "sentinels named the new master after %lld ms); %d writes failed, %d of %d "
            "acknowledged ones lost\n", first_ok - killed, promoted - killed, w.errors, lost,
            checked);
    cr_assert_lt(w.errors, 5, "%d writes failed (the call's timeout covers the failover)", w.errors);
    cr_assert_leq(lost, 2, "%d acknowledged writes lost", lost);
    redkv_close(w.s);
}

Test(sentinel, the_first_sentinel_down_and_a_wrong_master_name)
{
    char u[512];
    /* a port nobody listens on comes first: the next sentinel answers */
    snprintf(u, sizeof u, "redis+sentinel://127.0.0.1:1,127.0.0.1:%d/%s", snt_sentinel[1].port,
             SNT_MASTER_NAME);
    redkv *s = open_sentinel(u, NULL, 3000);
    cr_assert_not_null(s);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "d%d", i);
        cr_assert_eq(set_str(s, key, "v", 0), REDKV_OK, "%s", redkv_last_error());
        cr_assert_str_eq(get_str(s, key), "v");
    }
    outcome o = {0};
    cr_assert_eq(redkv_get_async(s, "d1", 2, 0, note, &o), REDKV_OK);
    drive(s, 5000);
    cr_assert_str_eq(o.val, "v");
    redkv_close(s);

    /* a name no sentinel knows: ECONFIG, at once, saying so */
    snprintf(u, sizeof u, "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d/nosuchmaster",
             snt_sentinel[0].port, snt_sentinel[2].port);
    s = open_sentinel(u, NULL, 3000);
    cr_assert_not_null(s);
    long long t0 = now_ms();
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_ECONFIG);
    cr_assert_lt(now_ms() - t0, 3000 + 1000 + 1000);
    cr_assert_not_null(strstr(redkv_last_error(), "nosuchmaster"), "%s", redkv_last_error());
    /* asynchronously the callback hears of it (a connection problem), never the queuing */
    memset(&o, 0, sizeof o);
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, note, &o), REDKV_OK);
    drive(s, 5000);
    cr_assert_eq(o.calls, 1);
    cr_assert_eq(o.status, REDKV_ECONN);
    redkv_close(s);

    /* every sentinel down: ECONN within the timeouts */
    s = open_sentinel("redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster", NULL, 2000);
    cr_assert_not_null(s);
    t0 = now_ms();
    cr_assert_eq(redkv_ping(s), REDKV_ECONN);
    cr_assert_lt(now_ms() - t0, 2000 + 1000 + 1000);
    cr_assert_not_null(strstr(redkv_last_error(), "sentinel"), "%s", redkv_last_error());
    redkv_close(s);
}

/* ---- passwords ----------------------------------------------------------------------------- */

static void up_with_passwords(void) { sentinel_up_with("datapw", "sentpw"); }

TestSuite(sentinel_auth, .init = up_with_passwords, .fini = sentinel_stop, .timeout = 120);

Test(sentinel_auth, passwords_for_the_sentinels_and_the_data_nodes)
{
    char u[600];
    snprintf(u, sizeof u, "redis+sentinel://:datapw@127.0.0.1:%d,127.0.0.1:%d/%s"
             "?sentinel_password=sentpw", snt_sentinel[0].port, snt_sentinel[1].port,
             SNT_MASTER_NAME);
    redkv *s = open_sentinel(u, NULL, 3000);
    cr_assert_not_null(s);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_str_eq(get_str(s, "k"), "v");
    outcome o = {0};
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, note, &o), REDKV_OK);
    drive(s, 5000);
    cr_assert_str_eq(o.val, "v");
    redkv_close(s);

    /* wrong or missing passwords: EAUTH, and no password in the message */
    const char *bad[] = {"redis+sentinel://:datapw@127.0.0.1:%d/%s",
                         "redis+sentinel://:datapw@127.0.0.1:%d/%s?sentinel_password=wrongsent",
                         "redis+sentinel://:wrongdata@127.0.0.1:%d/%s?sentinel_password=sentpw"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(u, sizeof u, bad[i], snt_sentinel[2].port, SNT_MASTER_NAME);
        s = open_sentinel(u, NULL, 3000);
        cr_assert_not_null(s);
        cr_assert_eq(set_str(s, "k", "v", 0), REDKV_EAUTH, "%s: %s", u, redkv_last_error());
        const char *msg = redkv_last_error();
        cr_assert(!strstr(msg, "datapw") && !strstr(msg, "sentpw") && !strstr(msg, "wrong"),
                  "%s", msg);
        redkv_close(s);
    }
}

#else
Test(sentinel_unit, built_without_sentinel)
{
    redkv *s;
    redkv_options o = {0};
    o.url = "redis+sentinel://127.0.0.1:26379/mymaster";
    cr_assert_eq(redkv_open(&s, &o), REDKV_ECONFIG);
    cr_assert_not_null(strstr(redkv_last_error(), "REDKV_NO_SENTINEL"));
}
#endif
