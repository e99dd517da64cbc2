/* test_oom.c - allocation-failure injection through redkv_set_allocator, after libuv's
 * test-loop-oom: a whole scenario (open, child store, set, get, get with renew, get_into,
 * exists, expires_in, a large value, asynchronous requests driven to completion, delete,
 * delete_all, close) runs against a real server once for every N, with the Nth allocation
 * failing (or the Nth and every later one). Each call must succeed or say ENOMEM, each
 * callback must run exactly once, nothing may crash, and every allocation must have been
 * given back at the end. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_fixture.h"
#include "fixture.h"
#include "hostile.h"
#include "redkv.h"

/* ---- the counting, failing allocator ------------------------------------------------------ */

static long allocs;           /* allocation calls so far */
static long fail_at;          /* the call that fails first; 0: none */
static int fail_after;        /* and every later one too */
static long failures;
static long live;             /* blocks handed out and not yet freed */

static int should_fail(void)
{
    long n = ++allocs;
    if (fail_at && (n == fail_at || (fail_after && n > fail_at))) {
        failures++;
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n);
    live += p != NULL;
    return p;
}

static void *t_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = realloc(p, n);
    live += q && !p;
    return q;
}

static void t_free(void *p)
{
    live -= p != NULL;
    free(p);
}

/* ---- the scenario ------------------------------------------------------------------------- */

static test_server srv;

#define BIG (200 * 1024)

static char big[BIG];

/* OK or ENOMEM; a result that also allows alt (MISSING when a set before was refused). */
#define CHECK(call, alt)                                                                    \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        cr_assert(rc_ == REDKV_OK || rc_ == REDKV_ENOMEM || rc_ == (alt),                   \
                  "N=%ld%s: %s gave %d (%s)", fail_at, fail_after ? "+" : "", #call, rc_,   \
                  redkv_last_error());                                                      \
        last = rc_;                                                                         \
    } while (0)

/* One pass; the url names the server. Returns the number of failed allocations. */
static long scenario(const char *url, int db, const char *password, int n)
{
    char ns[32], val[64];
    int last = 0;
    redkv *s = NULL, *child = NULL;
    redkv_options o = {0};
    snprintf(ns, sizeof ns, "oom%d%s", n, fail_after ? "x" : "");
    o.url = url;
    o.db = db;
    o.password = password;
    o.ns = ns;
    o.command_timeout_ms = 5000;
    o.scan_count = 3;                  /* several SCAN steps, each an array reply */

    /* Without the script cached, the renewing get takes the NOSCRIPT fallback too (a plain
       client cannot AUTH: with a password the cache stays, and EVALSHA alone is walked). */
    char out[64];
    if (!password)
        SRV(&srv, out, "SCRIPT", "FLUSH");

    allocs = failures = 0;
    redkv_set_allocator(t_malloc, t_realloc, t_free);

    CHECK(redkv_open(&s, &o), REDKV_OK);
    if (last != REDKV_OK) {
        cr_assert_null(s);
        goto done;
    }
    CHECK(redkv_with_namespace(s, "kid", &child), REDKV_OK);

    /* blocking */
    /* ENOMEM may come after the command went out: then the key may be there or not. */
    CHECK(redkv_set(s, "k", 1, "value-1", 7, 60000, 0), REDKV_OK);
    int have_k = last == REDKV_OK;
    void *v = NULL;
    size_t vlen = 0;
    CHECK(redkv_get(s, "k", 1, 0, &v, &vlen), have_k ? REDKV_OK : REDKV_MISSING);
    have_k = have_k || last == REDKV_OK;
    if (last == REDKV_OK)
        cr_assert(vlen == 7 && memcmp(v, "value-1", 7) == 0);
    redkv_free(v);
    v = NULL;
    CHECK(redkv_get(s, "k", 1, 30000, &v, &vlen), have_k ? REDKV_OK : REDKV_MISSING);
    if (last == REDKV_OK)
        cr_assert(vlen == 7 && memcmp(v, "value-1", 7) == 0);
    redkv_free(v);
    CHECK(redkv_get_into(s, "k", 1, 30000, val, sizeof val, &vlen),
          have_k ? REDKV_OK : REDKV_MISSING);
    if (last == REDKV_OK)
        cr_assert(vlen == 7 && memcmp(val, "value-1", 7) == 0);
    int64_t ms;
    CHECK(redkv_expires_in(s, "k", 1, &ms), have_k ? REDKV_OK : REDKV_MISSING);
    CHECK(redkv_exists(s, "k", 1), have_k ? 1 : 0);

    /* a value larger than any buffer so far */
    CHECK(redkv_set(s, "big", 3, big, BIG, 0, 0), REDKV_OK);
    int have_big = last == REDKV_OK;
    v = NULL;
    CHECK(redkv_get(s, "big", 3, 0, &v, &vlen), have_big ? REDKV_OK : REDKV_MISSING);
    if (last == REDKV_OK)
        cr_assert(vlen == BIG && memcmp(v, big, BIG) == 0);
    redkv_free(v);

    if (child) {
        for (int i = 0; i < 8; i++) {
            char key[8];
            snprintf(key, sizeof key, "c%d", i);
            CHECK(redkv_set(child, key, strlen(key), "x", 1, 0, 0), REDKV_OK);
        }
    }

    /* asynchronous, pipelined, driven to the end */
    cb_rec r[6];
    int queued[6];
    memset(r, 0, sizeof r);
    queued[0] = redkv_set_async(s, "a", 1, "async", 5, 0, 0, rec_cb, &r[0]);
    queued[1] = redkv_get_async(s, "a", 1, 0, rec_cb, &r[1]);
    queued[2] = redkv_get_async(s, "a", 1, 10000, rec_cb, &r[2]);
    queued[3] = redkv_exists_async(s, "a", 1, rec_cb, &r[3]);
    queued[4] = redkv_expires_in_async(s, "a", 1, rec_cb, &r[4]);
    queued[5] = redkv_delete_async(s, "a", 1, rec_cb, &r[5]);
    for (int i = 0; i < 6; i++)
        cr_assert(queued[i] == 0 || queued[i] == REDKV_ENOMEM, "N=%ld: async %d refused with %d",
                  fail_at, i, queued[i]);
    cr_assert_eq(drive(s, 10000), 0, "N=%ld: the async requests end", fail_at);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(r[i].calls, queued[i] == 0 ? 1 : 0, "N=%ld: callback %d ran %d times",
                     fail_at, i, r[i].calls);
        /* Once one failed, the data the others see may differ: only ENOMEM and the
           outcomes of a normal run are allowed. */
        int st = r[i].status;
        cr_assert(!r[i].calls || st == REDKV_OK || st == REDKV_ENOMEM || st == REDKV_MISSING ||
                      st == REDKV_PERSISTENT,
                  "N=%ld: callback %d got %d", fail_at, i, st);
    }

    CHECK(redkv_delete(s, "k", 1), REDKV_OK);
    CHECK(redkv_delete_all(s), REDKV_OK);
    int deleted_all = last == REDKV_OK;
    if (child) {
        CHECK(redkv_exists(child, "c3", 2), deleted_all ? 0 : 1);
        if (deleted_all)
            cr_assert_neq(last, 1, "N=%ld: delete_all left a child's key", fail_at);
        redkv_close(child);
    }
    redkv_close(s);
done:
    redkv_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(live, 0, "N=%ld%s: %ld blocks leaked", fail_at, fail_after ? "+" : "", live);
    return failures;
}

static void ratchet(const char *url, int db, const char *password)
{
    memset(big, 'b', sizeof big);
    fail_at = 0;
    cr_assert_eq(scenario(url, db, password, 0), 0);
    long total = allocs;
    cr_assert_gt(total, 10, "the scenario allocates");
    const char *only = getenv("OOM_N");     /* debugging: OOM_N=26, 26+ (and later), 20-26 */
    if (only) {
        const char *dash = strchr(only, '-');
        fail_after = strchr(only, '+') != NULL;
        for (fail_at = atol(only); fail_at <= (dash ? atol(dash + 1) : atol(only)); fail_at++)
            scenario(url, db, password, (int)fail_at);
        return;
    }
    for (fail_after = 0; fail_after <= 1; fail_after++) {
        for (fail_at = 1;; fail_at++) {
            long failed = scenario(url, db, password, (int)fail_at);
            if (!failed)
                break;
            cr_assert_lt(fail_at, 4 * total, "the scenario does not end");
        }
    }
    fail_at = 0;
    fail_after = 0;
    cr_log_info("oom: %ld allocations in the scenario, each failed in turn", total);
}

static void down(void)
{
    redkv_set_allocator(NULL, NULL, NULL);
    srv_stop(&srv);
}

TestSuite(oom, .fini = down, .timeout = 300);

Test(oom, plain)
{
    cr_assert_eq(srv_start(&srv, NULL), 0);
    ratchet(srv.url, 0, NULL);
}

/* With AUTH and SELECT in the handshake, whose allocations come first. */
Test(oom, password_and_db)
{
    cr_assert_eq(srv_start(&srv, (const char *const[]){"--requirepass", "oom-secret", NULL}), 0);
    ratchet(srv.url, 2, "oom-secret");
}

#ifndef REDKV_NO_CLUSTER
/* Against a Redis Cluster: the slot map, a pool and an async connection per node, one UNLINK
   request per key in delete_all, redirections. */
static void cluster_down(void)
{
    redkv_set_allocator(NULL, NULL, NULL);
    cluster_stop();
}

Test(oom, cluster, .init = cluster_up, .fini = cluster_down)
{
    ratchet(cluster_url, 0, NULL);
}
#endif
