/* test_store.c - the store's semantics against a real redis-server: Litestar's layout and
 * behaviour, and the flaws of the Python store fixed. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"

STORE_SUITE(store);

Test(store, set_get_roundtrip_in_litestar_layout)
{
    char out[64];
    cr_assert_eq(set_str(st, "k", "v1", 0), REDKV_OK);
    SRV(&srv, out, "GET", "LITESTAR:k");
    cr_assert_str_eq(out, "v1");
    cr_assert_str_eq(get_str(st, "k"), "v1");
    cr_assert_str_eq(redkv_namespace(st), "LITESTAR");
}

Test(store, get_missing)
{
    void *v = (void *)1;
    size_t n = 7;
    cr_assert_eq(redkv_get(st, "nope", 4, 0, &v, &n), REDKV_MISSING);
    cr_assert_null(v);
    cr_assert_eq(n, 0);
}

Test(store, get_allocates_nul_terminated_copy)
{
    void *v;
    size_t n;
    cr_assert_eq(set_str(st, "k", "hello", 0), REDKV_OK);
    cr_assert_eq(redkv_get(st, "k", 1, 0, &v, &n), REDKV_OK);
    cr_assert_eq(n, 5);
    cr_assert_str_eq((char *)v, "hello");
    redkv_free(v);
}

Test(store, binary_keys_and_values)
{
    const char key[] = "a\0b\r\n*?[]\\ key";
    size_t klen = sizeof key - 1, n = 0;
    size_t vlen = 2 * 1024 * 1024;
    unsigned char *val = malloc(vlen), *back = malloc(vlen);
    for (size_t i = 0; i < vlen; i++)
        val[i] = (unsigned char)(i * 7 + i / 256);
    cr_assert_eq(redkv_set(st, key, klen, val, vlen, 0, 0), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, key, klen, 0, back, vlen, &n), REDKV_OK);
    cr_assert_eq(n, vlen);
    cr_assert_eq(memcmp(val, back, vlen), 0);
    /* the empty key and the empty value */
    cr_assert_eq(redkv_set(st, "", 0, "", 0, 0, 0), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "", 0, 0, back, 10, &n), REDKV_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "LITESTAR:"), 1);
    free(val);
    free(back);
}

Test(store, every_byte_value_survives)
{
    unsigned char val[256], back[256];
    size_t n;
    for (int i = 0; i < 256; i++)
        val[i] = (unsigned char)i;
    cr_assert_eq(redkv_set(st, val, 256, val, 256, 0, 0), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, val, 256, 0, back, sizeof back, &n), REDKV_OK);
    cr_assert_eq(n, 256);
    cr_assert_eq(memcmp(val, back, 256), 0);
}

Test(store, get_into_too_small_reports_size)
{
    char buf[4];
    size_t n = 0;
    cr_assert_eq(set_str(st, "k", "123456", 0), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, 0, buf, sizeof buf, &n), REDKV_ETOOBIG);
    cr_assert_eq(n, 6);
    cr_assert_eq(redkv_get_into(st, "k", 1, 0, NULL, 0, &n), REDKV_ETOOBIG);
    cr_assert_eq(n, 6);
    cr_assert_eq(redkv_get_into(st, "k", 1, 0, buf, 3, NULL), REDKV_EINVAL);
    /* the connection is still in step after ETOOBIG */
    cr_assert_str_eq(get_str(st, "k"), "123456");
}

Test(store, expiry_sub_second)
{
    int64_t ms = 0;
    cr_assert_eq(set_str(st, "k", "v", 150), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 0 && ms <= 150, "ms = %lld", (long long)ms);
    cr_assert_eq(redkv_exists(st, "k", 1), 1);
    usleep(300 * 1000);
    cr_assert_eq(redkv_exists(st, "k", 1), 0);
    cr_assert_str_eq(get_str(st, "k"), "(missing)");
}

Test(store, set_zero_means_persistent)
{
    int64_t ms = 5;
    cr_assert_eq(set_str(st, "k", "v", 0), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_PERSISTENT);
    cr_assert_eq(redkv_expires_in(st, "none", 4, &ms), REDKV_MISSING);
}

Test(store, set_replaces_expiry_unless_keep_ttl)
{
    int64_t ms = 0;
    cr_assert_eq(set_str(st, "k", "v1", 60000), REDKV_OK);
    cr_assert_eq(redkv_set(st, "k", 1, "v2", 2, 0, REDKV_KEEP_TTL), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 50000 && ms <= 60000);
    cr_assert_str_eq(get_str(st, "k"), "v2");
    cr_assert_eq(set_str(st, "k", "v3", 0), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_PERSISTENT);
}

Test(store, bad_arguments_send_nothing)
{
    redkv *none = NULL;
    cr_assert_eq(redkv_set(st, "k", 1, "v", 1, -1, 0), REDKV_EINVAL);
    cr_assert(strstr(redkv_last_error(), "negative"));
    cr_assert_eq(redkv_set(st, "k", 1, "v", 1, 1000, REDKV_KEEP_TTL), REDKV_EINVAL);
    cr_assert(strstr(redkv_last_error(), "mutually exclusive"));
    cr_assert_eq(redkv_set(st, "k", 1, "v", 1, 0, 8), REDKV_EINVAL);
    cr_assert_eq(redkv_set(st, NULL, 3, "v", 1, 0, 0), REDKV_EINVAL);
    cr_assert_eq(redkv_set(st, "k", 1, NULL, 3, 0, 0), REDKV_EINVAL);
    cr_assert_eq(redkv_set(none, "k", 1, "v", 1, 0, 0), REDKV_EINVAL);
    void *v;
    size_t n;
    int64_t ms;
    cr_assert_eq(redkv_get(st, "k", 1, -5, &v, &n), REDKV_EINVAL);
    cr_assert_eq(redkv_get(st, "k", 1, 0, NULL, &n), REDKV_EINVAL);
    cr_assert_eq(redkv_expires_in(st, "k", 1, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_delete(st, NULL, 1), REDKV_EINVAL);
    cr_assert_eq(redkv_exists(none, "k", 1), REDKV_EINVAL);
    cr_assert_eq(redkv_expires_in(none, "k", 1, &ms), REDKV_EINVAL);
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 0);
    char out[256];
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert_null(strstr(out, "cmdstat_set"), "nothing may reach the server");
}

Test(store, ping)
{
    char out[4096];
    SRV(&srv, out, "CONFIG", "RESETSTAT");
    cr_assert_eq(redkv_ping(st), REDKV_OK);
    cr_assert_eq(redkv_ping(NULL), REDKV_EINVAL);
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert(strstr(out, "cmdstat_ping:calls=1,"), "one PING reached the server: %s", out);
}

Test(store, delete_and_delete_missing)
{
    cr_assert_eq(set_str(st, "k", "v", 0), REDKV_OK);
    cr_assert_eq(redkv_delete(st, "k", 1), REDKV_OK);
    cr_assert_eq(redkv_exists(st, "k", 1), 0);
    cr_assert_eq(redkv_delete(st, "k", 1), REDKV_OK);
}

/* ---- get with renew ---------------------------------------------------------------------- */

Test(store, renew_resets_expiry)
{
    int64_t ms = 0;
    void *v;
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 1000), REDKV_OK);
    cr_assert_eq(redkv_get(st, "k", 1, 60000, &v, &n), REDKV_OK);
    cr_assert_eq(n, 1);
    redkv_free(v);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 50000, "ms = %lld", (long long)ms);
}

Test(store, renew_of_days_works)   /* Litestar: timedelta(days=2).seconds == 0 deletes the key */
{
    int64_t ms = 0, two_days = 2LL * 24 * 3600 * 1000;
    char buf[8];
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 1000), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, two_days, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > two_days - 10000, "ms = %lld", (long long)ms);
}

Test(store, renew_of_under_a_second_works)
{
    int64_t ms = 0;
    char buf[8];
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 60000), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, 500, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 0 && ms <= 500, "ms = %lld", (long long)ms);
}

Test(store, key_with_little_time_left_is_renewed)   /* Litestar: TTL reads 0, no renewal */
{
    int64_t ms = 0;
    char buf[8];
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 300), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, 10000, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 5000, "ms = %lld", (long long)ms);
}

Test(store, renew_leaves_persistent_key_persistent)
{
    int64_t ms;
    char buf[8];
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 0), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, 10000, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_PERSISTENT);
    cr_assert_eq(redkv_get_into(st, "gone", 4, 10000, buf, sizeof buf, &n), REDKV_MISSING);
}

Test(store, renew_zero_is_a_plain_get)
{
    char out[8192], buf[8];
    size_t n;
    cr_assert_eq(set_str(st, "k", "v", 1000), REDKV_OK);
    cr_assert_eq(redkv_get_into(st, "k", 1, 0, buf, sizeof buf, &n), REDKV_OK);
    SRV(&srv, out, "INFO", "commandstats");
    cr_assert(strstr(out, "cmdstat_get:"));
    cr_assert_null(strstr(out, "cmdstat_eval"));
}

Test(store, renew_script_sha_matches_server)
{
    char out[128];
    SRV(&srv, out, "SCRIPT", "LOAD", rk_renew_script());
    cr_assert_str_eq(out, "a42997181e45a9e8fc20d37cc8ff429928a6e250");
}

Test(store, renew_survives_script_flush)
{
    char out[64], buf[8];
    size_t n;
    int64_t ms;
    cr_assert_eq(set_str(st, "k", "v", 1000), REDKV_OK);
    for (int i = 0; i < 3; i++) {
        SRV(&srv, out, "SCRIPT", "FLUSH");
        cr_assert_eq(redkv_get_into(st, "k", 1, 20000, buf, sizeof buf, &n), REDKV_OK,
                     "%s", redkv_last_error());
        cr_assert_eq(n, 1);
        cr_assert_eq(redkv_get_into(st, "k", 1, 30000, buf, sizeof buf, &n), REDKV_OK);
    }
    cr_assert_eq(redkv_expires_in(st, "k", 1, &ms), REDKV_OK);
    cr_assert(ms > 20000);
}

/* ---- namespaces ---------------------------------------------------------------------------- */

Test(store, namespaces_nest_like_litestar)
{
    redkv *child, *grand;
    char out[64];
    cr_assert_eq(redkv_with_namespace(st, "child", &child), REDKV_OK);
    cr_assert_eq(redkv_with_namespace(child, "grand", &grand), REDKV_OK);
    cr_assert_str_eq(redkv_namespace(child), "LITESTAR_child");
    cr_assert_str_eq(redkv_namespace(grand), "LITESTAR_child_grand");
    cr_assert_eq(set_str(grand, "k", "g", 0), REDKV_OK);
    SRV(&srv, out, "GET", "LITESTAR_child_grand:k");
    cr_assert_str_eq(out, "g");
    cr_assert_str_eq(get_str(child, "k"), "(missing)");
    redkv_close(grand);
    redkv_close(child);
}

Test(store, no_namespace_uses_keys_as_given)
{
    redkv_options o = {.url = srv.url, .no_namespace = true};
    redkv *bare, *child;
    char out[64];
    cr_assert_eq(redkv_open(&bare, &o), REDKV_OK);
    cr_assert_null(redkv_namespace(bare));
    cr_assert_eq(set_str(bare, "plain", "p", 0), REDKV_OK);
    SRV(&srv, out, "GET", "plain");
    cr_assert_str_eq(out, "p");
    cr_assert_eq(redkv_delete_all(bare), REDKV_ECONFIG);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "plain"), 1);
    cr_assert_eq(redkv_with_namespace(bare, "child", &child), REDKV_OK);
    cr_assert_str_eq(redkv_namespace(child), "child");
    redkv_close(child);
    redkv_close(bare);
}

Test(store, bad_namespaces)
{
    redkv *out = (redkv *)1;
    redkv_options o = {.url = srv.url, .ns = ""};
    cr_assert_eq(redkv_open(&out, &o), REDKV_EINVAL);
    cr_assert_null(out);
    o.ns = "X";
    o.no_namespace = true;
    cr_assert_eq(redkv_open(&out, &o), REDKV_EINVAL);
    cr_assert_eq(redkv_with_namespace(st, "", &out), REDKV_EINVAL);
    cr_assert_eq(redkv_with_namespace(st, NULL, &out), REDKV_EINVAL);
    cr_assert_eq(redkv_with_namespace(NULL, "x", &out), REDKV_EINVAL);
}

Test(store, reads_and_writes_keys_of_a_python_app)
{
    char out[64];
    redkv *child;
    SRV(&srv, out, "SET", "LITESTAR:session", "from-python");
    SRV(&srv, out, "SET", "LITESTAR_cache:page", "cached", "EX", "60");
    cr_assert_str_eq(get_str(st, "session"), "from-python");
    cr_assert_eq(redkv_with_namespace(st, "cache", &child), REDKV_OK);
    cr_assert_str_eq(get_str(child, "page"), "cached");
    cr_assert_eq(set_str(child, "other", "from-c", 5000), REDKV_OK);
    SRV(&srv, out, "GET", "LITESTAR_cache:other");
    cr_assert_str_eq(out, "from-c");
    cr_assert(SRV_NUM(&srv, "PTTL", "LITESTAR_cache:other") > 4000);
    redkv_close(child);
}

Test(store, children_outlive_closed_parent)
{
    redkv *child;
    cr_assert_eq(redkv_with_namespace(st, "c", &child), REDKV_OK);
    redkv_close(st);
    st = NULL;
    cr_assert_eq(set_str(child, "k", "v", 0), REDKV_OK);
    cr_assert_str_eq(get_str(child, "k"), "v");
    cr_assert(srv_clients(&srv) >= 1);
    redkv_close(child);
    usleep(50 * 1000);
    cr_assert_eq(srv_clients(&srv), 0, "the last close closes every connection");
    redkv_close(NULL);
}

/* ---- delete_all ----------------------------------------------------------------------------- */

static void seed(const char *const *keys)
{
    char out[16];
    for (; *keys; keys++)
        SRV(&srv, out, "SET", *keys, "x");
}

Test(store, delete_all_takes_namespace_and_descendants_only)
{
    const char *doomed[] = {"APP:a", "APP:b:c", "APP_child:k", "APP_child_grand:k", "APP_x:",
                            NULL};
    const char *spared[] = {"APPX:k", "APP", "APP_nocolon", "APPX_child:k", "other:k",
                            "LITESTAR:k", "xAPP:k", "app:k", NULL};
    redkv_options o = {.url = srv.url, .ns = "APP"};
    redkv *app;
    seed(doomed);
    seed(spared);
    cr_assert_eq(redkv_open(&app, &o), REDKV_OK);
    cr_assert_eq(redkv_delete_all(app), REDKV_OK, "%s", redkv_last_error());
    for (const char *const *k = doomed; *k; k++)
        cr_assert_eq(SRV_NUM(&srv, "EXISTS", *k), 0, "%s must be deleted", *k);
    for (const char *const *k = spared; *k; k++)
        cr_assert_eq(SRV_NUM(&srv, "EXISTS", *k), 1, "%s must be spared", *k);
    redkv_close(app);
}

Test(store, delete_all_escapes_glob_characters)
{
    const char *doomed[] = {"a*[b]?\\:k", "a*[b]?\\_c:k", NULL};
    const char *spared[] = {"aX[b]?\\:k", "a*b?\\:k", "a*[b]X\\:k", "a*[b]?:k", "aa*[b]?\\:k",
                            NULL};
    redkv_options o = {.url = srv.url, .ns = "a*[b]?\\"};
    redkv *g;
    seed(doomed);
    seed(spared);
    cr_assert_eq(redkv_open(&g, &o), REDKV_OK);
    cr_assert_eq(redkv_delete_all(g), REDKV_OK);
    for (const char *const *k = doomed; *k; k++)
        cr_assert_eq(SRV_NUM(&srv, "EXISTS", *k), 0, "%s must be deleted", *k);
    for (const char *const *k = spared; *k; k++)
        cr_assert_eq(SRV_NUM(&srv, "EXISTS", *k), 1, "%s must be spared", *k);
    redkv_close(g);
}

static void count_progress(uint64_t deleted, void *arg) { *(uint64_t *)arg = deleted; }

Test(store, delete_all_a_million_keys, .timeout = 120)
{
    char out[64];
    uint64_t progress = 0;
    redkv_options o = {.url = srv.url, .ns = "BIG", .progress = count_progress,
                       .progress_arg = &progress};
    redkv *big;
    SRV(&srv, out, "DEBUG", "POPULATE", "1000000", "BIG");
    SRV(&srv, out, "DEBUG", "POPULATE", "20000", "BIG_child");
    SRV(&srv, out, "DEBUG", "POPULATE", "20000", "BIGX");
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 1040000);
    cr_assert_eq(redkv_open(&big, &o), REDKV_OK);
    cr_assert_eq(redkv_delete_all(big), REDKV_OK, "%s", redkv_last_error());
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 20000, "only the sibling BIGX stays");
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "BIGX:19999"), 1);
    cr_assert_eq(progress, 1020000);
    redkv_close(big);
}

/* ---- threads -------------------------------------------------------------------------------- */

static void *hammer(void *arg)
{
    redkv *s = arg;
    char key[32], val[32], buf[32];
    size_t n;
    long id = (long)pthread_self() % 100000;
    for (int i = 0; i < 300; i++) {
        int kl = snprintf(key, sizeof key, "t%ld-%d", id, i % 10);
        int vl = snprintf(val, sizeof val, "v%d", i);
        if (redkv_set(s, key, (size_t)kl, val, (size_t)vl, 0, 0) != REDKV_OK)
            return (void *)1;
        if (redkv_get_into(s, key, (size_t)kl, 0, buf, sizeof buf, &n) != REDKV_OK ||
            n != (size_t)vl || memcmp(buf, val, n) != 0)
            return (void *)2;
    }
    return NULL;
}

Test(store, threads_share_one_store)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, st);
    for (int i = 0; i < 8; i++) {
        void *res;
        pthread_join(t[i], &res);
        cr_assert_null(res, "thread %d failed (%ld): %s", i, (long)res, redkv_last_error());
    }
    cr_assert(srv_clients(&srv) <= 4, "the pool stays within its default size");
}
