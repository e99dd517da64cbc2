/* selftest.c - a self-contained check of redkv against a live redis-server, for targets
 * where Criterion is not at hand (a cross build run under qemu, a board over a serial line).
 * Uses the public header alone.
 *
 *   selftest [URL]        URL: default $REDKV_URL, else redis://127.0.0.1:6379
 *
 * Prints one line per check ("ok N - what" or "not ok N - what: why") and a summary;
 * exits 0 when every check passed, 1 otherwise, 2 when the server cannot be reached.
 * Keys live in namespaces named after the process id, and are removed at the end. It also
 * installs a counting allocator (redkv_set_allocator) and checks that every block the
 * library took has been given back once every store is closed. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redkv.h"

static int checks, failures;

static void check(int ok, const char *what, int status)
{
    checks++;
    if (ok) {
        printf("ok %d - %s\n", checks, what);
    } else {
        failures++;
        printf("not ok %d - %s: status %d (%s), last error: %s\n", checks, what, status,
               redkv_strerror(status), redkv_last_error());
    }
    fflush(stdout);
}

/* ---- a counting allocator ------------------------------------------------------------- */

static long live_blocks, total_blocks;

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p) {
        live_blocks++;
        total_blocks++;
    }
    return p;
}

static void *count_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q && !p) {
        live_blocks++;
        total_blocks++;
    }
    return q;
}

static void count_free(void *p)
{
    if (p)
        live_blocks--;
    free(p);
}

/* ---- helpers ------------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int set_s(redkv *s, const char *k, const char *v, int64_t ms, unsigned flags)
{
    return redkv_set(s, k, strlen(k), v, strlen(v), ms, flags);
}

/* 1 when key k reads as v (renewing when renew > 0). */
static int get_is(redkv *s, const char *k, int64_t renew, const char *v, int *status)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = redkv_get(s, k, strlen(k), renew, &val, &vlen);
    int same = rc == REDKV_OK && vlen == strlen(v) && memcmp(val, v, vlen) == 0;
    *status = rc;
    redkv_free(val);
    return same;
}

static int exists_s(redkv *s, const char *k) { return redkv_exists(s, k, strlen(k)); }

static int ttl_s(redkv *s, const char *k, int64_t *ms)
{
    *ms = -12345;
    return redkv_expires_in(s, k, strlen(k), ms);
}

/* ---- the blocking API ------------------------------------------------------------------ */

static void test_blocking(redkv *s)
{
    int rc;
    int64_t ms;

    rc = set_s(s, "k", "v1", 0, 0);
    check(rc == REDKV_OK, "set without expiry", rc);
    check(get_is(s, "k", 0, "v1", &rc), "get returns the value", rc);
    rc = exists_s(s, "k");
    check(rc == 1, "exists is 1", rc);
    rc = ttl_s(s, "k", &ms);
    check(rc == REDKV_PERSISTENT, "expires_in of a key without expiry is PERSISTENT", rc);
    check(get_is(s, "k", 60000, "v1", &rc), "get with renew of a persistent key", rc);
    rc = ttl_s(s, "k", &ms);
    check(rc == REDKV_PERSISTENT, "a renewed persistent key stays persistent", rc);

    rc = set_s(s, "t", "v2", 60000, 0);
    check(rc == REDKV_OK, "set with expiry 60 s", rc);
    rc = ttl_s(s, "t", &ms);
    check(rc == REDKV_OK && ms > 50000 && ms <= 60000, "expires_in is about 60 s", rc);
    check(get_is(s, "t", 600000, "v2", &rc), "get with renew 600 s returns the value", rc);
    rc = ttl_s(s, "t", &ms);
    check(rc == REDKV_OK && ms > 590000 && ms <= 600000, "the renewal reset the expiry", rc);
    check(get_is(s, "t", 500, "v2", &rc), "get with a sub-second renew", rc);
    rc = ttl_s(s, "t", &ms);
    check(rc == REDKV_OK && ms > 0 && ms <= 500, "a sub-second renewal keeps the key, < 0.5 s", rc);

    rc = set_s(s, "t", "v3", 0, REDKV_KEEP_TTL);
    check(rc == REDKV_OK, "set with KEEP_TTL", rc);
    rc = ttl_s(s, "t", &ms);
    check(rc == REDKV_OK && ms > 0 && ms <= 500, "KEEP_TTL kept the expiry", rc);
    check(get_is(s, "t", 0, "v3", &rc), "KEEP_TTL replaced the value", rc);

    rc = set_s(s, "short", "x", 100, 0);
    check(rc == REDKV_OK, "set with expiry 100 ms", rc);
    sleep_ms(700);                       /* covers both "t" (<= 500 ms) and "short" */
    rc = exists_s(s, "short");
    check(rc == 0, "a key past its expiry is gone", rc);
    check(!get_is(s, "t", 0, "v3", &rc) && rc == REDKV_MISSING,
          "get of an expired key is MISSING", rc);
    rc = ttl_s(s, "t", &ms);
    check(rc == REDKV_MISSING, "expires_in of no key is MISSING", rc);

    /* binary key and value, NUL included, into a caller's buffer */
    {
        static const char key[] = {'b', 0, 'i', 'n'};
        static const char val[] = {0, 1, 2, '\r', '\n', 0, (char)0xff};
        char buf[16];
        size_t vlen = 0;
        rc = redkv_set(s, key, sizeof key, val, sizeof val, 0, 0);
        check(rc == REDKV_OK, "set of a binary key and value", rc);
        rc = redkv_get_into(s, key, sizeof key, 0, buf, 3, &vlen);
        check(rc == REDKV_ETOOBIG && vlen == sizeof val,
              "get_into a small buffer is ETOOBIG with the size needed", rc);
        rc = redkv_get_into(s, key, sizeof key, 0, buf, sizeof buf, &vlen);
        check(rc == REDKV_OK && vlen == sizeof val && memcmp(buf, val, sizeof val) == 0,
              "get_into returns the binary value", rc);
        rc = redkv_delete(s, key, sizeof key);
        check(rc == REDKV_OK, "delete of the binary key", rc);
    }

    rc = redkv_delete(s, "k", 1);
    check(rc == REDKV_OK, "delete", rc);
    rc = exists_s(s, "k");
    check(rc == 0, "exists after delete is 0", rc);
    check(!get_is(s, "k", 0, "", &rc) && rc == REDKV_MISSING, "get after delete is MISSING", rc);
    rc = redkv_delete(s, "k", 1);
    check(rc == REDKV_OK, "delete of a missing key is no error", rc);

    rc = set_s(s, "k", "v", -1, 0);
    check(rc == REDKV_EINVAL, "a negative expiry is EINVAL", rc);
    rc = set_s(s, "k", "v", 1000, REDKV_KEEP_TTL);
    check(rc == REDKV_EINVAL, "expiry with KEEP_TTL is EINVAL", rc);
    rc = exists_s(s, "k");
    check(rc == 0, "nothing was sent for them", rc);
}

/* ---- delete_all ------------------------------------------------------------------------ */

static void test_delete_all(redkv *s, const char *url, const char *ns)
{
    char sibling_ns[64];
    redkv *child = NULL, *sibling = NULL, *bare = NULL;
    redkv_options o;
    int rc;

    rc = redkv_with_namespace(s, "child", &child);
    check(rc == REDKV_OK, "with_namespace", rc);
    memset(&o, 0, sizeof o);
    o.url = url;
    snprintf(sibling_ns, sizeof sibling_ns, "%sX", ns);     /* starts with the same letters */
    o.ns = sibling_ns;
    rc = redkv_open(&sibling, &o);
    check(rc == REDKV_OK, "open a sibling namespace", rc);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.no_namespace = true;
    rc = redkv_open(&bare, &o);
    check(rc == REDKV_OK, "open with no namespace", rc);
    if (!child || !sibling || !bare)
        goto out;

    check(strcmp(redkv_namespace(s), ns) == 0, "namespace is as given", 0);
    {
        char want[80];
        snprintf(want, sizeof want, "%s_child", ns);
        check(strcmp(redkv_namespace(child), want) == 0, "a child's namespace is NS_child", 0);
    }
    check(redkv_namespace(bare) == NULL, "no_namespace has no namespace", 0);

    rc = set_s(s, "a", "1", 0, 0) | set_s(s, "b", "2", 60000, 0) | set_s(child, "c", "3", 0, 0) |
         set_s(sibling, "a", "4", 0, 0);
    check(rc == REDKV_OK, "set keys in the namespace, its child and a sibling", rc);
    {
        char bare_key[80];
        snprintf(bare_key, sizeof bare_key, "%s:a", ns);
        check(get_is(bare, bare_key, 0, "1", &rc), "the key layout is NS:key", rc);
        snprintf(bare_key, sizeof bare_key, "%s_child:c", ns);
        check(get_is(bare, bare_key, 0, "3", &rc), "a child's key layout is NS_child:key", rc);
        snprintf(bare_key, sizeof bare_key, "%s-outside", ns);
        rc = set_s(bare, bare_key, "5", 0, 0);
        check(rc == REDKV_OK, "set a key outside any namespace", rc);

        rc = redkv_delete_all(s);
        check(rc == REDKV_OK, "delete_all", rc);
        rc = exists_s(s, "a") + exists_s(s, "b") + exists_s(child, "c");
        check(rc == 0, "delete_all removed the namespace and its child", rc);
        check(get_is(sibling, "a", 0, "4", &rc), "delete_all spared the sibling namespace", rc);
        check(get_is(bare, bare_key, 0, "5", &rc), "delete_all spared a key outside", rc);
        rc = redkv_delete_all(bare);
        check(rc == REDKV_ECONFIG, "delete_all with no namespace is ECONFIG", rc);
        check(get_is(bare, bare_key, 0, "5", &rc), "...and deleted nothing", rc);
        redkv_delete(bare, bare_key, strlen(bare_key));
    }
    rc = redkv_delete_all(sibling);
    check(rc == REDKV_OK && exists_s(sibling, "a") == 0, "delete_all of the sibling", rc);
out:
    redkv_close(child);
    redkv_close(sibling);
    redkv_close(bare);
}

/* ---- the asynchronous API, driven by poll() ---------------------------------------------- */

struct seen {
    int calls;
    int status[16];
    int64_t n[16];
    char val[16][8];
};

static void on_reply(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    struct seen *w = arg;
    int i = w->calls++;
    (void)s;
    if (i >= 16)
        return;
    w->status[i] = status;
    w->n[i] = n;
    w->val[i][0] = 0;
    if (val && vlen < sizeof w->val[i]) {
        memcpy(w->val[i], val, vlen);
        w->val[i][vlen] = 0;
    }
}

/* Runs s's event loop with poll() until nothing is pending; 0, or -1 after 10 s. */
static int drive(redkv *s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (redkv_pending(s) > 0) {
        struct pollfd pfd;
        int ev = redkv_events(s), timeout = redkv_timeout_ms(s);
        pfd.fd = redkv_fd(s);
        pfd.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        pfd.revents = 0;
        if (timeout < 0 || timeout > 100)
            timeout = 100;
        int n = poll(&pfd, pfd.fd >= 0 ? 1 : 0, timeout);
        int got = 0;
        if (n > 0) {
            if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
                got |= REDKV_READ;
            if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
                got |= REDKV_WRITE;
        }
        redkv_process(s, got);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 10)
            return -1;
    }
    return 0;
}

static void test_async(redkv *s)
{
    struct seen w;
    int rc = 0;
    memset(&w, 0, sizeof w);

    check(redkv_fd(s) == -1 || redkv_pending(s) == 0, "nothing pending before the first request",
          0);
    rc |= redkv_set_async(s, "ak", 2, "av", 2, 60000, 0, on_reply, &w);          /* 0 */
    rc |= redkv_get_async(s, "ak", 2, 0, on_reply, &w);                          /* 1 */
    rc |= redkv_get_async(s, "ak", 2, 120000, on_reply, &w);                     /* 2 */
    rc |= redkv_expires_in_async(s, "ak", 2, on_reply, &w);                      /* 3 */
    rc |= redkv_exists_async(s, "ak", 2, on_reply, &w);                          /* 4 */
    rc |= redkv_delete_async(s, "ak", 2, on_reply, &w);                          /* 5 */
    rc |= redkv_delete_async(s, "ak", 2, on_reply, &w);                          /* 6 */
    rc |= redkv_get_async(s, "ak", 2, 0, on_reply, &w);                          /* 7 */
    rc |= redkv_exists_async(s, "ak", 2, on_reply, &w);                          /* 8 */
    rc |= redkv_expires_in_async(s, "ak", 2, on_reply, &w);                      /* 9 */
    rc |= redkv_set_async(s, "fire", 4, "x", 1, 1000, 0, NULL, NULL);             /* no callback */
    check(rc == REDKV_OK, "queue 11 asynchronous requests", rc);
    check(redkv_pending(s) == 11, "pending counts them", redkv_pending(s));
    check(redkv_fd(s) >= 0, "the first request opened a descriptor", redkv_fd(s));
    rc = drive(s);
    check(rc == 0, "poll() loop drove them all to completion", rc);
    check(w.calls == 10, "each callback ran once", w.calls);
    check(w.status[0] == REDKV_OK, "async set", w.status[0]);
    check(w.status[1] == REDKV_OK && strcmp(w.val[1], "av") == 0, "async get", w.status[1]);
    check(w.status[2] == REDKV_OK && strcmp(w.val[2], "av") == 0, "async get with renew",
          w.status[2]);
    check(w.status[3] == REDKV_OK && w.n[3] > 110000 && w.n[3] <= 120000,
          "async expires_in sees the renewal", w.status[3]);
    check(w.status[4] == REDKV_OK && w.n[4] == 1, "async exists is 1", w.status[4]);
    check(w.status[5] == REDKV_OK && w.n[5] == 1, "async delete removed 1 key", w.status[5]);
    check(w.status[6] == REDKV_OK && w.n[6] == 0, "async delete again removed 0", w.status[6]);
    check(w.status[7] == REDKV_MISSING, "async get after delete is MISSING", w.status[7]);
    check(w.status[8] == REDKV_OK && w.n[8] == 0, "async exists is 0", w.status[8]);
    check(w.status[9] == REDKV_MISSING, "async expires_in of no key is MISSING", w.status[9]);
    rc = exists_s(s, "fire");
    check(rc == 1, "a request without callback was sent too", rc);
    redkv_delete(s, "fire", 4);
    rc = redkv_get_async(s, "ak", 2, -1, on_reply, &w);
    check(rc == REDKV_EINVAL && redkv_pending(s) == 0, "a bad async request is refused at once",
          rc);

    /* closing with requests pending calls each callback once with ECONN */
    {
        redkv *child = NULL;
        struct seen w2;
        memset(&w2, 0, sizeof w2);
        rc = redkv_with_namespace(s, "async", &child);
        if (rc == REDKV_OK) {
            rc = redkv_exists_async(child, "q", 1, on_reply, &w2);
            redkv_close(child);
            check(rc == REDKV_OK, "queue on a child store", rc);
            rc = drive(s);
            check(rc == 0 && w2.calls == 1, "a closed child's request still completes once",
                  w2.calls);
        } else {
            check(0, "with_namespace for async", rc);
        }
    }
}

/* ---- configuration and connection errors ----------------------------------------------- */

static void test_errors(void)
{
    redkv *s = NULL;
    redkv_options o;
    int rc;

    memset(&o, 0, sizeof o);
    o.url = "redis://127.0.0.1:0";
    rc = redkv_open(&s, &o);
    check(rc == REDKV_ECONFIG, "a URL with port 0 is ECONFIG", rc);
    redkv_close(s);
    s = NULL;
    o.url = "http://127.0.0.1";
    rc = redkv_open(&s, &o);
    check(rc == REDKV_ECONFIG, "a URL of another scheme is ECONFIG", rc);
    redkv_close(s);
    s = NULL;
    o.url = "redis://127.0.0.1:1";               /* nothing listens on port 1 */
    o.connect_timeout_ms = 2000;
    rc = redkv_open(&s, &o);
    check(rc == REDKV_OK, "open does not connect yet", rc);
    if (s) {
        rc = exists_s(s, "k");
        check(rc == REDKV_ECONN, "a refused connection is ECONN", rc);
        printf("#   (%s)\n", redkv_last_error());
    }
    redkv_close(s);
    s = NULL;
    memset(&o, 0, sizeof o);
    o.ns = "";
    rc = redkv_open(&s, &o);
    check(rc == REDKV_EINVAL, "an empty namespace is EINVAL", rc);
    redkv_close(s);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDKV_URL");
    char ns[48];
    redkv *s = NULL;
    redkv_options o;
    int rc;

    if (!url)
        url = "redis://127.0.0.1:6379";
    redkv_set_allocator(count_malloc, count_realloc, count_free);
#ifdef REDKV_NO_THREADS
    printf("# redkv self-test (built with REDKV_NO_THREADS) against %s\n", url);
#else
    printf("# redkv self-test against %s\n", url);
#endif

    snprintf(ns, sizeof ns, "selftest%ld", (long)getpid());
    memset(&o, 0, sizeof o);
    o.url = url;
    o.ns = ns;
    o.max_value_len = 1024 * 1024;
    rc = redkv_open(&s, &o);
    check(rc == REDKV_OK, "open", rc);
    if (rc != REDKV_OK)
        return 2;
    rc = exists_s(s, "probe");
    if (rc < 0) {
        printf("# cannot reach %s: %s\n", url, redkv_last_error());
        redkv_close(s);
        return 2;
    }

    test_blocking(s);
    test_delete_all(s, url, ns);
    test_async(s);
    rc = redkv_delete_all(s);
    check(rc == REDKV_OK, "clean up", rc);
    redkv_close(s);
    test_errors();

    check(total_blocks > 0, "the allocator hook saw the library's allocations", (int)total_blocks);
    check(live_blocks == 0, "every block was freed once the stores were closed", (int)live_blocks);
    printf("# %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
