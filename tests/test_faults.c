/* test_faults.c - a real server that goes away, stops answering, drops our connections or
 * refuses our password. Each callback runs exactly once; every wait ends within the timeout;
 * the next call reconnects; no password ever shows in an error message. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "hostile.h"
#include "redkv.h"
#include "resp.h"

#define TIMEOUT_MS 300

static test_server srv;
static void up(void) { cr_assert_eq(srv_start(&srv, NULL), 0, "redis-server must start"); }
static void down(void) { srv_stop(&srv); }

TestSuite(faults, .init = up, .fini = down, .timeout = 120);

static redkv *open_store(const char *url, int timeout_ms)
{
    redkv_options o = {0};
    o.url = url;
    o.command_timeout_ms = timeout_ms;
    o.connect_timeout_ms = timeout_ms;
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

/* An event loop idles on redkv_fd too, so it sees a connection closed under it. */
static void pump(redkv *s, int ms)
{
    for (long long until = now_ms() + ms; now_ms() < until;) {
        struct pollfd p = {redkv_fd(s), POLLIN, 0};
        if (poll(&p, p.fd >= 0 ? 1 : 0, 10) > 0)
            redkv_process(s, REDKV_READ);
    }
}

static void expect_value(redkv *s, const char *key, const char *want)
{
    void *v = NULL;
    size_t n = 0;
    int rc = redkv_get(s, key, strlen(key), 0, &v, &n);
    cr_expect_eq(rc, REDKV_OK, "get %s: %d (%s)", key, rc, redkv_last_error());
    if (rc == REDKV_OK)
        cr_expect(n == strlen(want) && memcmp(v, want, n) == 0, "get %s", key);
    redkv_free(v);
}

/* ---- a server restarted under load ----------------------------------------------------- */

#define LOAD 400
#define VLEN (16 * 1024)      /* 400 of these fill the socket buffers: some stay unwritten */

static char big[VLEN];

/* Queues LOAD sets of keys prefix<i> whose values are the key and then VLEN - keylen 'x'. */
static void queue_sets(redkv *s, const char *prefix, cb_rec *r)
{
    char key[32];
    memset(r, 0, LOAD * sizeof *r);
    for (int i = 0; i < LOAD; i++) {
        size_t n = (size_t)snprintf(key, sizeof key, "%s%d", prefix, i);
        memset(big, 'x', sizeof big);
        memcpy(big, key, n);
        cr_assert_eq(redkv_set_async(s, key, n, big, VLEN, 0, 0, rec_cb, &r[i]), 0);
    }
}

/* The value of prefix<i> is there, through the library and through a plain client. */
static void expect_set(redkv *s, const char *prefix, int i)
{
    char key[32], full[64], out[64];
    size_t n = (size_t)snprintf(key, sizeof key, "%s%d", prefix, i);
    void *v = NULL;
    size_t vlen = 0;
    cr_expect_eq(redkv_get(s, key, n, 0, &v, &vlen), REDKV_OK, "get %s: %s", key, redkv_last_error());
    cr_expect(vlen == VLEN && v && memcmp(v, key, n) == 0, "get %s: %zu bytes", key, vlen);
    redkv_free(v);
    snprintf(full, sizeof full, "LITESTAR:%s", key);
    cr_expect_eq(SRV(&srv, out, "STRLEN", full), RESP_INTEGER, "%s", full);
    cr_expect_eq(atoi(out), VLEN, "%s", full);
}

Test(faults, restart_mid_load)
{
    redkv *s = open_store(srv.url, 3000);
    static cb_rec r[LOAD];
    cr_assert_eq(redkv_set(s, "warm", 4, "1", 1, 0, 0), REDKV_OK);   /* a pooled connection */

    /* A load that completes. */
    queue_sets(s, "first", r);
    cr_assert_eq(drive(s, 10000), 0);
    for (int i = 0; i < LOAD; i++)
        cr_assert(r[i].calls == 1 && r[i].status == REDKV_OK, "first %d: %d", i, r[i].status);

    /* The next load is written while the server is stopped, so none of it is answered;
       then the server is killed and a new one takes its port. */
    queue_sets(s, "second", r);
    srv_pause(&srv);
    for (long long until = now_ms() + 200; now_ms() < until;) {
        struct pollfd p = {redkv_fd(s), POLLOUT, 0};
        if (poll(&p, p.fd >= 0 ? 1 : 0, 10) > 0)
            redkv_process(s, REDKV_WRITE);
    }
    for (int i = 0; i < LOAD; i++)
        cr_assert_eq(r[i].calls, 0, "nothing is answered while the server is stopped");
    cr_assert_eq(srv_restart(&srv, NULL), 0);
    cr_expect_eq(drive(s, 10000), 0, "every request ends");
    int ok = 0, lost = 0;
    for (int i = 0; i < LOAD; i++) {
        cr_expect_eq(r[i].calls, 1, "second %d called back %d times", i, r[i].calls);
        cr_expect(r[i].status == REDKV_OK || r[i].status == REDKV_ECONN, "second %d: %d", i,
                  r[i].status);
        ok += r[i].status == REDKV_OK;
        lost += r[i].status == REDKV_ECONN;
    }
    cr_log_info("restart: %d requests lost with the server, %d went to the new one", lost, ok);
    cr_expect_gt(lost, 0, "the requests written to the old server are lost");
    /* Requests not yet written when the connection went stay queued, in order, and go to
       the new server: each one acknowledged is there. */
    for (int i = 0; i < LOAD; i++)
        if (r[i].status == REDKV_OK)
            expect_set(s, "second", i);

    /* The next calls reconnect: blocking (on the pooled connection the old server closed)
       and asynchronous alike, and every acknowledged write is there. */
    cr_expect_eq(redkv_set(s, "after", 5, "blocking", 8, 0, 0), REDKV_OK, "%s", redkv_last_error());
    expect_value(s, "after", "blocking");
    queue_sets(s, "third", r);
    cr_expect_eq(drive(s, 10000), 0);
    for (int i = 0; i < LOAD; i++) {
        cr_expect(r[i].calls == 1 && r[i].status == REDKV_OK, "third %d: %d calls, %d", i,
                  r[i].calls, r[i].status);
        if (i % 20 == 0)
            expect_set(s, "third", i);
    }
    redkv_close(s);
}

/* The server is down for a while: each call fails at once with ECONN, then works again. */
Test(faults, down_then_up)
{
    redkv *s = open_store(srv.url, TIMEOUT_MS);
    cr_assert_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK);
    srv_kill(&srv);
    for (int i = 0; i < 3; i++) {
        long long t0 = now_ms();
        cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_ECONN, "%s", redkv_last_error());
        cr_expect_leq(now_ms() - t0, TIMEOUT_MS + slack_ms());
    }
    cb_rec a = {0}, b = {0};
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &b), 0);
    cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms()), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_ECONN, "%d calls, %d", a.calls, a.status);
    cr_expect(b.calls == 1 && b.status == REDKV_ECONN, "%d calls, %d", b.calls, b.status);
    cr_assert_eq(srv_restart(&srv, NULL), 0);
    cr_expect_eq(redkv_set(s, "k", 1, "v2", 2, 0, 0), REDKV_OK, "%s", redkv_last_error());
    expect_value(s, "k", "v2");
    memset(&a, 0, sizeof a);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
    cr_expect_eq(drive(s, 5000), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_OK && a.vlen == 2, "%d", a.status);
    redkv_close(s);
}

/* ---- a server that stops answering ----------------------------------------------------- */

Test(faults, paused_server)
{
    redkv *s = open_store(srv.url, TIMEOUT_MS);
    cr_assert_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK);   /* a pooled connection */
    cb_rec w = {0};
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &w), 0);   /* and an async one */
    cr_expect_eq(drive(s, 5000), 0);
    srv_pause(&srv);

    /* on the open connections */
    long long t0 = now_ms();
    void *v = NULL;
    size_t n;
    cr_expect_eq(redkv_get(s, "k", 1, 0, &v, &n), REDKV_ETIMEDOUT, "%s", redkv_last_error());
    long long took = now_ms() - t0;
    cr_expect(took >= TIMEOUT_MS - 5 && took <= TIMEOUT_MS + slack_ms(), "blocking: %lld ms", took);
    cb_rec a = {0}, b = {0};
    t0 = now_ms();
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
    cr_assert_eq(redkv_set_async(s, "k", 1, "x", 1, 0, 0, rec_cb, &b), 0);
    cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms()), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_ETIMEDOUT, "async: %d calls, %d", a.calls, a.status);
    cr_expect(b.calls == 1 && (b.status == REDKV_ETIMEDOUT || b.status == REDKV_ECONN),
              "async: %d calls, %d", b.calls, b.status);
    cr_expect_leq(a.at_ms - t0, TIMEOUT_MS + slack_ms(), "async: %lld ms", a.at_ms - t0);

    /* on new connections: the kernel still accepts them, nobody answers */
    redkv *fresh = open_store(srv.url, TIMEOUT_MS);
    t0 = now_ms();
    cr_expect_eq(redkv_set(fresh, "k", 1, "v", 1, 0, 0), REDKV_ETIMEDOUT, "%s", redkv_last_error());
    took = now_ms() - t0;
    cr_expect_leq(took, TIMEOUT_MS + slack_ms(), "fresh: %lld ms", took);

    srv_resume(&srv);
    cr_expect_eq(redkv_set(s, "k", 1, "back", 4, 0, 0), REDKV_OK, "%s", redkv_last_error());
    expect_value(s, "k", "back");
    expect_value(fresh, "k", "back");
    memset(&a, 0, sizeof a);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
    cr_expect_eq(drive(s, 5000), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_OK && a.vlen == 4, "after: %d", a.status);
    redkv_close(fresh);
    redkv_close(s);
}

/* delete_all is many round trips; a pause in the middle of it still ends within one timeout. */
Test(faults, paused_during_delete_all)
{
    redkv *s = open_store(srv.url, TIMEOUT_MS);
    cr_assert_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK);
    srv_pause(&srv);
    long long t0 = now_ms();
    cr_expect_eq(redkv_delete_all(s), REDKV_ETIMEDOUT, "%s", redkv_last_error());
    cr_expect_leq(now_ms() - t0, TIMEOUT_MS + slack_ms());
    srv_resume(&srv);
    cr_expect_eq(redkv_delete_all(s), REDKV_OK, "%s", redkv_last_error());
    cr_expect_eq(redkv_exists(s, "k", 1), 0);
    redkv_close(s);
}

/* ---- connections killed by the server ---------------------------------------------------- */

static void kill_clients(void)
{
    char out[64];
    cr_assert_eq(SRV(&srv, out, "CLIENT", "KILL", "TYPE", "normal"), RESP_INTEGER, "%s", out);
    cr_assert_neq(strcmp(out, "0"), 0, "some client was killed");
}

Test(faults, client_kill)
{
    redkv *s = open_store(srv.url, 2000);
    cr_assert_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK);
    cb_rec a = {0};
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
    cr_expect_eq(drive(s, 5000), 0);

    for (int round = 0; round < 3; round++) {
        kill_clients();
        /* blocking: the idle pooled connection was closed under us */
        cr_expect_eq(redkv_set(s, "k", 1, "w", 1, 0, 0), REDKV_OK, "round %d: %s", round,
                     redkv_last_error());
        expect_value(s, "k", "w");
        /* async: the loop sees the close while idle; the next request reconnects */
        pump(s, 50);
        cr_expect_eq(redkv_fd(s), -1, "round %d: the closed connection is dropped", round);
        memset(&a, 0, sizeof a);
        cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &a), 0);
        cr_expect_eq(drive(s, 5000), 0);
        cr_expect(a.calls == 1 && a.status == REDKV_OK && a.vlen == 1, "round %d: %d", round,
                  a.status);
    }
    /* every connection of the pool, each killed */
    kill_clients();
    for (int i = 0; i < 10; i++)
        cr_expect_eq(redkv_exists(s, "k", 1), 1, "call %d after the kill: %s", i, redkv_last_error());
    kill_clients();
    cr_expect_eq(redkv_delete_all(s), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);
}

/* ---- a refused password ------------------------------------------------------------------ */

static void expect_no_secret(const char *what, const char *secret)
{
    cr_expect_null(strstr(redkv_last_error(), secret), "%s: the message names the password: %s",
                   what, redkv_last_error());
}

TestSuite(auth, .fini = down, .timeout = 120);

Test(auth, wrong_password)
{
    const char *secret = "Wr0ng-S3cret-pw";
    cr_assert_eq(srv_start(&srv, (const char *const[]){"--requirepass", "right-pass", NULL}), 0);
    char url[256];

    /* the password option, a URL password, a URL user and password */
    const char *forms[3];
    char u1[256], u2[256];
    snprintf(u1, sizeof u1, "redis://:%s@127.0.0.1:%d", secret, srv.port);
    snprintf(u2, sizeof u2, "redis://someone:%s@127.0.0.1:%d/3", secret, srv.port);
    forms[0] = srv.url;
    forms[1] = u1;
    forms[2] = u2;
    for (int f = 0; f < 3; f++) {
        redkv_options o = {0};
        o.url = forms[f];
        o.password = f == 0 ? secret : NULL;
        o.command_timeout_ms = 2000;
        redkv *s = NULL;
        cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
        expect_no_secret("open", secret);
        cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_EAUTH, "form %d: %s", f,
                     redkv_last_error());
        expect_no_secret("set", secret);
        void *v = NULL;
        size_t n;
        cr_expect_eq(redkv_get(s, "k", 1, 10, &v, &n), REDKV_EAUTH);
        expect_no_secret("get", secret);
        cr_expect_eq(redkv_delete_all(s), REDKV_EAUTH);
        expect_no_secret("delete_all", secret);
        cb_rec a = {0}, b = {0};
        cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &a), 0);
        cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &b), 0);
        cr_expect_eq(drive(s, 5000), 0);
        cr_expect(a.calls == 1 && a.status == REDKV_EAUTH, "async: %d calls, %d", a.calls, a.status);
        cr_expect(b.calls == 1 && b.status == REDKV_EAUTH, "async: %d calls, %d", b.calls, b.status);
        expect_no_secret("async", secret);
        redkv_close(s);
        expect_no_secret("close", secret);
    }

    /* no password at all: NOAUTH, also EAUTH */
    redkv *s = open_store(srv.url, 2000);
    cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_EAUTH, "%s", redkv_last_error());
    redkv_close(s);

    /* the right one works */
    snprintf(url, sizeof url, "redis://:right-pass@127.0.0.1:%d", srv.port);
    s = open_store(url, 2000);
    cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);

    /* the tool: exit 3, one line, no password, on either stream */
    char out[512], err[512];
    const char *args[] = {"--url", u1, "--timeout", "2000", "get", "k", NULL};
    int rc = run_cli(args, 20000, out, sizeof out, err, sizeof err);
    if (rc != -1) {
        cr_expect_eq(rc, 3, "cli: exit %d: %s", rc, err);
        cr_expect_null(strstr(err, secret), "cli stderr: %s", err);
        cr_expect_null(strstr(out, secret), "cli stdout: %s", out);
        const char *args2[] = {"--url", srv.url, "--password", secret, "set", "k", "v", NULL};
        rc = run_cli(args2, 20000, out, sizeof out, err, sizeof err);
        cr_expect_eq(rc, 3, "cli: exit %d: %s", rc, err);
        cr_expect_null(strstr(err, secret), "cli stderr: %s", err);
    }
}

/* A database the server does not have: SELECT refused, EAUTH, for every queued request. */
Test(faults, select_refused)
{
    redkv_options o = {0};
    o.url = srv.url;
    o.db = 12345;
    o.command_timeout_ms = 2000;
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_EAUTH, "%s", redkv_last_error());
    cb_rec a = {0}, b = {0};
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &a), 0);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &b), 0);
    cr_expect_eq(drive(s, 5000), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_EAUTH, "%d calls, %d", a.calls, a.status);
    cr_expect(b.calls == 1 && b.status == REDKV_EAUTH, "%d calls, %d", b.calls, b.status);
    redkv_close(s);
}

/* ---- threads across a restart ------------------------------------------------------------- */

typedef struct worker {
    redkv *s;
    int id;
    int *stop;
    long calls, ok, lost, bad;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char key[32];
    while (!__atomic_load_n(w->stop, __ATOMIC_SEQ_CST)) {
        snprintf(key, sizeof key, "t%d-%ld", w->id, w->calls % 50);
        int rc = w->calls % 2 ? redkv_set(w->s, key, strlen(key), "v", 1, 0, 0)
                              : redkv_exists(w->s, key, strlen(key));
        w->calls++;
        if (rc >= 0)
            w->ok++;
        else if (rc == REDKV_ECONN || rc == REDKV_ETIMEDOUT)
            w->lost++;
        else
            w->bad++;
    }
    return NULL;
}

/* Four threads share the pool's connections while the server is killed and restarted:
   every call ends (OK, ECONN or ETIMEDOUT), none hangs, and all work again after. */
Test(faults, threads_across_restart)
{
    redkv_options o = {0};
    o.url = srv.url;
    o.command_timeout_ms = 1000;
    o.pool_size = 4;
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    int stop = 0;
    worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){s, i, &stop, 0, 0, 0, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    usleep(200000);
    cr_assert_eq(srv_restart(&srv, NULL), 0);
    usleep(200000);
    kill_clients();
    usleep(200000);
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(w[i].bad, 0, "thread %d: %ld calls gave other errors", i, w[i].bad);
        cr_expect_gt(w[i].ok, 0, "thread %d: some calls worked", i);
        cr_log_info("thread %d: %ld calls, %ld OK, %ld lost", i, w[i].calls, w[i].ok, w[i].lost);
    }
    /* Every pooled connection is stale or fresh now; each next call works. */
    kill_clients();
    __atomic_store_n(&stop, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 4; i++) {
        w[i].ok = w[i].lost = w[i].bad = w[i].calls = 0;
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    usleep(100000);
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect(w[i].lost == 0 && w[i].bad == 0 && w[i].ok > 0,
                  "thread %d after the kill: %ld OK, %ld lost, %ld bad", i, w[i].ok, w[i].lost,
                  w[i].bad);
    }
    redkv_close(s);
}
