/* test_incr.c - the counter (redkv_incr, redkv_incr_async, `redkv incr`) against a real
 * redis-server: no lost count between threads, the fixed window, Litestar's view of the key,
 * errors, the script's fallback after SCRIPT FLUSH. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "hostile.h"      /* drive() */
#include "store.h"        /* rk_incr_script(): the server's SHA1 of it is the one we send */

STORE_SUITE(incr);

static int64_t incr(const char *key, int64_t delta, int64_t window_ms)
{
    int64_t v = -1;
    int rc = redkv_incr(st, key, strlen(key), delta, window_ms, &v);
    cr_assert_eq(rc, REDKV_OK, "incr %s: %s", key, redkv_last_error());
    return v;
}

Test(incr, counts_from_zero_and_adds_any_delta)
{
    cr_assert_eq(incr("c", 1, 0), 1);
    cr_assert_eq(incr("c", 41, 0), 42);
    cr_assert_eq(incr("c", -50, 0), -8);
    cr_assert_eq(incr("c", 0, 0), -8);
    /* past 2^53, where a Lua number would round */
    cr_assert_eq(SRV_NUM(&srv, "SET", "LITESTAR:big", "9007199254740993"), 0);
    cr_assert_eq(incr("big", 2, 0), INT64_C(9007199254740995));
    cr_assert_eq(incr("big", INT64_MAX - INT64_C(9007199254740995), 0), INT64_MAX);
}

/* A Litestar app reads NS:key with a plain GET and sees the number's decimal bytes. */
Test(incr, litestar_reads_the_number_as_bytes)
{
    char out[64];
    for (int i = 0; i < 12; i++)
        incr("hits", 1, 0);
    cr_assert_eq(SRV(&srv, out, "GET", "LITESTAR:hits"), RESP_BULK);
    cr_assert_str_eq(out, "12");
    /* and redkv_get reads it the same way */
    cr_assert_str_eq(get_str(st, "hits"), "12");
}

typedef struct counter_job {
    redkv *s;
    int failures;
} counter_job;

static void *count_1000(void *arg)
{
    counter_job *job = arg;
    for (int i = 0; i < 1000; i++) {
        int64_t v;
        if (redkv_incr(job->s, "shared", 6, 1, 60000, &v) != REDKV_OK || v < 1)
            job->failures++;
    }
    return NULL;
}

/* 16 threads over the pool's few connections: every count lands, none twice. */
Test(incr, sixteen_threads_lose_no_count, .timeout = 180)
{
    pthread_t t[16];
    counter_job jobs[16];
    for (int i = 0; i < 16; i++) {
        jobs[i] = (counter_job){st, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, count_1000, &jobs[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(jobs[i].failures, 0, "thread %d: %s", i, redkv_last_error());
    }
    cr_assert_eq(SRV_NUM(&srv, "GET", "LITESTAR:shared"), 16000);
    cr_assert_eq(incr("shared", 0, 0), 16000);
}

/* The window is set by the first count only: later counts, whatever window they name, keep
   it; a count with no window leaves it too. */
Test(incr, window_is_set_once_and_kept)
{
    cr_assert_eq(incr("w", 1, 60000), 1);
    long long first = SRV_NUM(&srv, "PTTL", "LITESTAR:w");
    cr_assert(first > 0 && first <= 60000, "%lld", first);
    cr_assert_eq(incr("w", 1, 3600000), 2);
    cr_assert_eq(incr("w", 1, 0), 3);
    long long later = SRV_NUM(&srv, "PTTL", "LITESTAR:w");
    cr_assert(later > 0 && later <= first, "the window was kept: %lld after %lld", later, first);
    /* a persistent counter gets the window at its next count */
    cr_assert_eq(incr("p", 5, 0), 5);
    cr_assert_eq(SRV_NUM(&srv, "PTTL", "LITESTAR:p"), -1);
    cr_assert_eq(incr("p", 1, 60000), 6);
    cr_assert_gt(SRV_NUM(&srv, "PTTL", "LITESTAR:p"), 0);
}

/* After the window ends the key is gone, and the next count starts a new window at 1. */
Test(incr, window_expires_then_a_new_one_starts)
{
    cr_assert_eq(incr("win", 1, 100), 1);
    long long until = now_ms() + 20000;      /* waits for the expiry; asserts nothing on time */
    while (redkv_exists(st, "win", 3) == 1 && now_ms() < until)
        usleep(20000);
    cr_assert_eq(redkv_exists(st, "win", 3), 0, "the window ended");
    cr_assert_eq(incr("win", 1, 60000), 1, "a new window counts from 1");
    long long ttl = SRV_NUM(&srv, "PTTL", "LITESTAR:win");
    cr_assert(ttl > 100 && ttl <= 60000, "the new window's expiry: %lld", ttl);
}

Test(incr, value_that_is_not_an_integer_is_eserver)
{
    int64_t v = 7;
    cr_assert_eq(set_str(st, "text", "abc", 0), REDKV_OK);
    cr_assert_eq(redkv_incr(st, "text", 4, 1, 0, &v), REDKV_ESERVER);
    cr_assert(strstr(redkv_last_error(), "not an integer"), "%s", redkv_last_error());
    cr_assert_eq(v, 0);
    cr_assert_str_eq(get_str(st, "text"), "abc", "the value was left alone");
    cr_assert_eq(SRV_NUM(&srv, "PTTL", "LITESTAR:text"), -1);
    cr_assert_eq(SRV_NUM(&srv, "SET", "LITESTAR:max", "9223372036854775807"), 0);
    cr_assert_eq(redkv_incr(st, "max", 3, 1, 0, &v), REDKV_ESERVER);
    cr_assert(strstr(redkv_last_error(), "overflow"), "%s", redkv_last_error());
}

Test(incr, bad_arguments_are_einval_and_send_nothing)
{
    int64_t v;
    char out[8192];
    cr_assert_eq(redkv_incr(st, "k", 1, 1, -1, &v), REDKV_EINVAL);
    cr_assert(strstr(redkv_last_error(), "expires_in_ms"), "%s", redkv_last_error());
    cr_assert_eq(redkv_incr(st, "k", 1, 1, 0, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_incr(st, NULL, 1, 1, 0, &v), REDKV_EINVAL);
    cr_assert_eq(redkv_incr(NULL, "k", 1, 1, 0, &v), REDKV_EINVAL);
    cr_assert_eq(redkv_incr_async(st, "k", 1, 1, -5, NULL, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_pending(st), 0);
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert_null(strstr(out, "cmdstat_eval"), "nothing was sent: %s", out);
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 0);
}

Test(incr, script_sha_matches_server_and_survives_script_flush)
{
    char out[8192];           /* INFO commandstats below */
    SRV(&srv, out, "SCRIPT", "LOAD", rk_incr_script());
    cr_assert_str_eq(out, "715f6b3cabe7191cf5d36a9f00b69fc9c77785bf");
    for (int i = 1; i <= 3; i++) {
        SRV(&srv, out, "SCRIPT", "FLUSH");
        cr_assert_eq(incr("f", 1, 0), i, "EVAL after NOSCRIPT, transparently");
    }
    cr_assert_eq(incr("f", 1, 0), 4, "then EVALSHA again");
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert(strstr(out, "cmdstat_evalsha:"), "%s", out);
}

/* ---- asynchronous -------------------------------------------------------------------------- */

typedef struct counts {
    int calls;
    int status[8];
    int64_t n[8];
} counts;

static void on_count(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    counts *c = arg;
    (void)s, (void)val, (void)vlen;
    if (c->calls < 8) {
        c->status[c->calls] = status;
        c->n[c->calls] = n;
    }
    c->calls++;
}

Test(incr, async_gives_each_new_value_in_order)
{
    counts c = {0};
    cr_assert_eq(set_str(st, "text", "abc", 0), REDKV_OK);
    cr_assert_eq(redkv_incr_async(st, "a", 1, 1, 60000, on_count, &c), 0);
    cr_assert_eq(redkv_incr_async(st, "a", 1, 10, 60000, on_count, &c), 0);
    cr_assert_eq(redkv_incr_async(st, "a", 1, -3, 0, on_count, &c), 0);
    cr_assert_eq(redkv_incr_async(st, "text", 4, 1, 0, on_count, &c), 0);
    cr_assert_eq(redkv_incr_async(st, "a", 1, 1, 0, NULL, NULL), 0, "fire and forget");
    drive(st, 10000);
    cr_assert_eq(c.calls, 4);
    cr_assert(c.status[0] == REDKV_OK && c.n[0] == 1);
    cr_assert(c.status[1] == REDKV_OK && c.n[1] == 11);
    cr_assert(c.status[2] == REDKV_OK && c.n[2] == 8);
    cr_assert_eq(c.status[3], REDKV_ESERVER);
    cr_assert_eq(SRV_NUM(&srv, "GET", "LITESTAR:a"), 9);
    long long ttl = SRV_NUM(&srv, "PTTL", "LITESTAR:a");
    cr_assert(ttl > 0 && ttl <= 60000, "%lld", ttl);
}

/* Async counts go by EVALSHA (the script's 40-byte SHA1, loaded on the connection first): a
   SCRIPT FLUSH between them gives NOSCRIPT mid-pipeline, and the counts are sent again with
   the text, each counted once, callbacks in the order of the requests. */
Test(incr, async_counts_by_sha_and_ride_through_noscript_in_order)
{
    char out[8192];
    counts c = {0};
    cr_assert_eq(redkv_incr_async(st, "a", 1, 1, 0, on_count, &c), 0);   /* loads the script */
    drive(st, 10000);
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert(strstr(out, "cmdstat_evalsha:") && !strstr(out, "cmdstat_eval:"),
              "the first count went by EVALSHA, its script loaded before it: %s", out);
    SRV(&srv, out, "SCRIPT", "FLUSH");
    cr_assert_eq(redkv_incr_async(st, "a", 1, 10, 0, on_count, &c), 0);  /* NOSCRIPT: again */
    cr_assert_eq(redkv_get_async(st, "a", 1, 0, on_count, &c), 0);
    cr_assert_eq(redkv_incr_async(st, "a", 1, 100, 0, on_count, &c), 0); /* NOSCRIPT too */
    cr_assert_eq(redkv_exists_async(st, "a", 1, on_count, &c), 0);
    drive(st, 10000);
    cr_assert_eq(c.calls, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(c.status[i], REDKV_OK, "call %d: %d", i, c.status[i]);
    cr_expect_eq(c.n[0], 1);
    cr_expect_eq(c.n[1], 11, "the resent count came back in its place");
    cr_expect_eq(c.n[3], 111, "each count applied once");
    cr_expect_eq(c.n[4], 1, "exists came last");
    cr_assert_eq(SRV_NUM(&srv, "GET", "LITESTAR:a"), 111);
}

Test(incr, without_scripting_says_so)
{
    char out[128];
    counts c = {0};
    int64_t v = 0;
    SRV(&srv, out, "ACL", "SETUSER", "default", "-@scripting");
    cr_assert_eq(redkv_incr(st, "a", 1, 1, 0, &v), REDKV_ESERVER);
    cr_expect(strstr(redkv_last_error(), "incr needs scripting") != NULL, "%s", redkv_last_error());
    cr_assert_eq(redkv_incr_async(st, "a", 1, 1, 0, on_count, &c), 0);
    drive(st, 10000);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.status[0], REDKV_ESERVER);
    cr_expect(strstr(redkv_last_error(), "incr needs scripting") != NULL, "%s", redkv_last_error());
    SRV(&srv, out, "ACL", "SETUSER", "default", "+@all");
}

/* ---- the command-line tool ----------------------------------------------------------------- */

/* Runs `redkv -u <srv> ARGS`; its exit status, and its first output line in out. */
static int cli(char *out, size_t cap, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -u %s %s 2>/dev/null </dev/null", build_path("redkv"), srv.url,
             args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    out[0] = 0;
    if (!fgets(out, (int)cap, p))
        out[0] = 0;
    out[strcspn(out, "\n")] = 0;
    int st_ = pclose(p);
    return WIFEXITED(st_) ? WEXITSTATUS(st_) : -1;
}

Test(incr, cli_prints_the_new_value)
{
    char out[64];
    cr_assert_eq(cli(out, sizeof out, "incr n"), 0);
    cr_assert_str_eq(out, "1");
    cr_assert_eq(cli(out, sizeof out, "incr n --by 41 --expires-in 1m"), 0);
    cr_assert_str_eq(out, "42");
    long long ttl = SRV_NUM(&srv, "PTTL", "LITESTAR:n");
    cr_assert(ttl > 0 && ttl <= 60000, "%lld", ttl);
    cr_assert_eq(cli(out, sizeof out, "incr n --by -50"), 0);
    cr_assert_str_eq(out, "-8");
    cr_assert_eq(cli(out, sizeof out, "-n OTHER incr -- -dash-key"), 0);
    cr_assert_eq(SRV_NUM(&srv, "GET", "OTHER:-dash-key"), 1);
    cr_assert_eq(cli(out, sizeof out, "incr n --by x"), 2, "not a number");
    cr_assert_eq(cli(out, sizeof out, "incr n --keep-ttl"), 2, "not an option of incr");
    cr_assert_eq(cli(out, sizeof out, "incr"), 2, "no key");
    cr_assert_eq(SRV_NUM(&srv, "SET", "LITESTAR:t", "abc"), 0);
    cr_assert_eq(cli(out, sizeof out, "incr t"), 4, "not an integer: a server error");
    cr_assert_eq(SRV_NUM(&srv, "GET", "LITESTAR:n"), -8, "the refused runs changed nothing");
}
