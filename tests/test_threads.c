/* test_threads.c - blocking calls of many threads sharing pooled connections, pipelined:
 * each call ends once, with its own reply (each thread reads back values only it writes)
 * or an error, across a server restart, CLIENT KILL and SIGSTOP; and an asynchronous
 * renewal that meets NOSCRIPT mid-pipeline keeps the callbacks' order and renews. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

STORE_SUITE(threads);

#define NTHREADS 16

typedef struct worker {
    redkv *s;
    int id;
    int *stop;
    long calls, ok, errors, wrong, odd;
    char why[160];
} worker;

/* Sets this thread's key to a value naming the thread and the step, reads it back: any
   other value is someone else's reply. */
static void *work(void *arg)
{
    worker *w = arg;
    char key[32], val[48], got[64];
    snprintf(key, sizeof key, "t%d", w->id);
    for (long i = 0; !__atomic_load_n(w->stop, __ATOMIC_ACQUIRE); i++) {
        int len = snprintf(val, sizeof val, "thread %d step %ld", w->id, i);
        size_t vlen = 0;
        int rc = redkv_set(w->s, key, strlen(key), val, (size_t)len, 0, 0);
        if (rc == REDKV_OK)
            rc = redkv_get_into(w->s, key, strlen(key), 0, got, sizeof got, &vlen);
        w->calls++;
        if (rc == REDKV_OK && (vlen != (size_t)len || memcmp(got, val, vlen) != 0)) {
            if (!w->wrong++)
                snprintf(w->why, sizeof w->why, "wanted '%s', read '%.*s'", val, (int)vlen, got);
        } else if (rc == REDKV_OK) {
            __atomic_add_fetch(&w->ok, 1, __ATOMIC_RELAXED);   /* the test thread watches */
        } else if (rc == REDKV_ECONN || rc == REDKV_ETIMEDOUT || rc == REDKV_MISSING) {
            w->errors++;
        } else if (!w->odd++) {
            snprintf(w->why, sizeof w->why, "%s: %s", redkv_strerror(rc), redkv_last_error());
        }
    }
    return NULL;
}

typedef void fault_fn(void);

static redkv *shared_store(int pool_size)
{
    redkv_options o = {.url = srv.url, .pool_size = pool_size, .command_timeout_ms = 400,
                       .connect_timeout_ms = 400};
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

/* Runs NTHREADS workers on one store while fault runs, then checks every call. */
static void run_with(int pool_size, fault_fn *fault)
{
    redkv *s = shared_store(pool_size);
    int stop = 0;
    pthread_t t[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){s, i, &stop, 0, 0, 0, 0, 0, ""};
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    usleep(100000);
    if (fault)
        fault();
    /* every thread must get a call through after the fault: wait for that (a loaded machine
       may take a while), not for a fixed time */
    long at_fault[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        at_fault[i] = __atomic_load_n(&w[i].ok, __ATOMIC_RELAXED);
    for (long long until = now_ms() + 10000; now_ms() < until;) {
        int all = 1;
        for (int i = 0; i < NTHREADS; i++)
            all &= __atomic_load_n(&w[i].ok, __ATOMIC_RELAXED) > at_fault[i];
        if (all)
            break;
        usleep(10000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    long ok = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        cr_expect_eq(w[i].wrong, 0, "thread %d got another's reply: %s", i, w[i].why);
        cr_expect_eq(w[i].odd, 0, "thread %d: unexpected status: %s", i, w[i].why);
        cr_expect_gt(w[i].ok, at_fault[i], "thread %d: no call succeeded after the fault", i);
    }
    cr_expect_gt(ok, 0);
    char buf[8];
    size_t vlen;
    cr_assert_eq(redkv_set(s, "after", 5, "x", 1, 0, 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_eq(redkv_get_into(s, "after", 5, 0, buf, sizeof buf, &vlen), REDKV_OK);
    redkv_close(s);
}

static void restart(void) { cr_assert_eq(srv_restart(&srv, NULL), 0); }

static void client_kill(void)
{
    char out[64];
    SRV(&srv, out, "CLIENT", "KILL", "TYPE", "normal");
}

static void stop_for_a_while(void)
{
    srv_pause(&srv);
    usleep(700000);                    /* past the command timeout */
    srv_resume(&srv);
}

Test(threads, one_connection_shared_each_gets_its_own_reply) { run_with(1, NULL); }
Test(threads, default_pool_each_gets_its_own_reply) { run_with(0, NULL); }
Test(threads, across_a_server_restart) { run_with(0, restart); }
Test(threads, across_client_kill) { run_with(1, client_kill); }
Test(threads, across_sigstop) { run_with(2, stop_for_a_while); }

/* ---- asynchronous renewal: NOSCRIPT mid-pipeline ----------------------------------------- */

static int order[16], norder;

static void note(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s; (void)val; (void)vlen; (void)n;
    cr_expect(status == REDKV_OK || status == REDKV_PERSISTENT, "status %d: %s", status,
              redkv_last_error());
    order[norder++] = (int)(intptr_t)arg;
}

static void drive(redkv *s)
{
    for (int i = 0; i < 500 && redkv_pending(s) > 0; i++) {
        struct pollfd p = {redkv_fd(s), 0, 0};
        int ev = redkv_events(s);
        p.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        poll(&p, 1, 20);
        redkv_process(s, (p.revents & (POLLIN | POLLERR | POLLHUP) ? REDKV_READ : 0) |
                             (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
    cr_assert_eq(redkv_pending(s), 0);
}

Test(threads, noscript_mid_pipeline_keeps_order_and_renews)
{
    char out[64];
    for (int i = 0; i < 4; i++) {
        char k[4] = {'k', (char)('0' + i), 0, 0};
        cr_assert_eq(redkv_set(st, k, 2, "v", 1, 1000, 0), REDKV_OK);
    }
    norder = 0;
    redkv_get_async(st, "k0", 2, 60000, note, (void *)0);    /* loads the script */
    drive(st);
    SRV(&srv, out, "SCRIPT", "FLUSH");
    redkv_get_async(st, "k1", 2, 60000, note, (void *)1);    /* NOSCRIPT: sent again */
    redkv_get_async(st, "k2", 2, 0, note, (void *)2);
    redkv_get_async(st, "k3", 2, 60000, note, (void *)3);    /* NOSCRIPT too */
    redkv_exists_async(st, "k2", 2, note, (void *)4);
    drive(st);
    cr_assert_eq(norder, 5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(order[i], i, "callback %d came %d-th", order[i], i);
    for (int i = 0; i < 4; i++) {
        char k[4] = {'k', (char)('0' + i), 0, 0};
        int64_t ms = 0;
        cr_assert_eq(redkv_expires_in(st, k, 2, &ms), REDKV_OK);
        if (i != 2)
            cr_expect_gt(ms, 50000, "%s was not renewed", k);
    }
}

Test(threads, renewal_without_scripting_says_so)
{
    char out[128], buf[8];
    size_t vlen;
    cr_assert_eq(redkv_set(st, "k", 1, "v", 1, 1000, 0), REDKV_OK);
    SRV(&srv, out, "ACL", "SETUSER", "default", "-@scripting");
    int rc = redkv_get_into(st, "k", 1, 60000, buf, sizeof buf, &vlen);
    cr_assert_eq(rc, REDKV_ESERVER);
    cr_expect(strstr(redkv_last_error(), "needs scripting") != NULL, "%s", redkv_last_error());
    norder = 0;
    redkv_get_async(st, "k", 1, 60000, NULL, NULL);
    drive(st);
}
