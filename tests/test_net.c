/* test_net.c - connecting: URLs and overrides, timeouts, reconnects, AUTH and ACL users,
 * the pool, and the example programs. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static test_server srv;
static void up(void) { cr_assert_eq(srv_start(&srv, NULL), 0); }
static void down(void) { srv_stop(&srv); }

TestSuite(net, .init = up, .fini = down, .timeout = 60);

static int open_url(const char *url, redkv_options *o, redkv **s)
{
    redkv_options zero = {0};
    if (!o)
        o = &zero;
    o->url = url;
    if (!o->command_timeout_ms)
        o->command_timeout_ms = 2000;
    return redkv_open(s, o);
}

/* The value of key in database db, read by redis-cli. */
static const char *value_in_db(int db, const char *key)
{
    static char out[256];
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d -n %d --raw GET '%s'", srv.port, db, key);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    if (p)
        pclose(p);
    while (n && (out[n - 1] == '\n'))
        n--;
    out[n] = 0;
    return out;
}

Test(net, tcp_and_unix_urls)
{
    redkv *a, *b;
    cr_assert_eq(open_url(srv.url, NULL, &a), REDKV_OK);
    cr_assert_eq(open_url(srv.unix_url, NULL, &b), REDKV_OK);
    cr_assert_eq(set_str(a, "k", "via-tcp", 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_str_eq(get_str(b, "k"), "via-tcp");
    redkv_close(a);
    redkv_close(b);
}

Test(net, database_from_url_and_options)
{
    char url[300];
    redkv *s;
    redkv_options o = {0};
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", srv.port);
    cr_assert_eq(open_url(url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "db3", 0), REDKV_OK);
    redkv_close(s);
    cr_assert_str_eq(value_in_db(3, "LITESTAR:k"), "db3");
    cr_assert_str_eq(value_in_db(0, "LITESTAR:k"), "");

    o.db = 5;
    cr_assert_eq(open_url(url, &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "db5", 0), REDKV_OK);
    redkv_close(s);
    cr_assert_str_eq(value_in_db(5, "LITESTAR:k"), "db5");

    snprintf(url, sizeof url, "%s?db=7", srv.unix_url);
    cr_assert_eq(open_url(url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "db7", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);
    cr_assert_str_eq(value_in_db(7, "LITESTAR:k"), "db7");
}

Test(net, port_option_overrides_url)
{
    redkv *s;
    redkv_options o = {.port = srv.port};
    cr_assert_eq(open_url("redis://127.0.0.1:1", &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);
}

Test(net, bad_urls_are_econfig)
{
    const char *bad[] = {
        "http://localhost", "redis//localhost", "localhost:6379", "", "redis://host:0",
        "redis://host:65536", "redis://host:99999999999", "redis://host:abc", "redis://host:",
        "redis://host/abc", "redis://host/-1", "redis://host/1x", "redis://[::1",
        "redis://::1]:6379", "redis://host?db=x", "redis://host?foo=1", "redis://host?db=",
        "unix://", "unix:///", "unix://host/path", "unix:///tmp/s?db=-2", "unix:///tmp/s?timeout=3",
        "redis://[::1]x", NULL};
    for (const char **u = bad; *u; u++) {
        redkv *s = (redkv *)1;
        cr_assert_eq(open_url(*u, NULL, &s), REDKV_ECONFIG, "%s should be refused", *u);
        cr_assert_null(s);
        cr_assert_neq(strlen(redkv_last_error()), 0);
    }
    redkv *s;
#if !defined(REDKV_TLS_MBEDTLS) && !defined(REDKV_TLS_OPENSSL)
    /* Only a build without TLS refuses rediss://; a TLS build takes it (tests/test_tls.c). */
    cr_assert_eq(open_url("rediss://localhost", NULL, &s), REDKV_ECONFIG);
    cr_assert(strstr(redkv_last_error(), "TLS"));
#endif
    redkv_options o = {.port = 70000};
    cr_assert_eq(open_url("redis://localhost", &o, &s), REDKV_ECONFIG);
}

Test(net, good_url_forms_parse)
{
    const char *good[] = {"redis://localhost", "redis://localhost:6380/0", "redis://[::1]:6379",
                          "redis://[::1]", "redis://user@host", "redis://:pw@host/2",
                          "redis://u:p%40ss@host:1?db=3", "unix:///tmp/x.sock",
                          "unix://:pw@/tmp/x.sock?db=1", "redis://", NULL};
    for (const char **u = good; *u; u++) {
        redkv *s;
        cr_assert_eq(open_url(*u, NULL, &s), REDKV_OK, "%s: %s", *u, redkv_last_error());
        redkv_close(s);
    }
    redkv *s;
    cr_assert_eq(redkv_open(&s, NULL), REDKV_OK);
    redkv_close(s);
}

Test(net, refused_port_fails_fast)
{
    char url[64];
    redkv *s;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", srv.port == 1 ? 2 : 1);
    redkv_options o = {.connect_timeout_ms = 5000};
    cr_assert_eq(open_url(url, &o, &s), REDKV_OK);
    long long t0 = now_ms();
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_ECONN);
    cr_assert(now_ms() - t0 < 1000, "refused must not wait for the timeout");
    redkv_close(s);
}

Test(net, stopped_server_times_out_then_recovers)
{
    redkv *s;
    redkv_options o = {.command_timeout_ms = 300};
    cr_assert_eq(open_url(srv.url, &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v1", 0), REDKV_OK);
    srv_pause(&srv);
    long long t0 = now_ms();
    cr_assert_eq(set_str(s, "k", "v2", 0), REDKV_ETIMEDOUT);
    long long took = now_ms() - t0;
    srv_resume(&srv);
    cr_assert(took >= 250 && took < 1500, "took %lld ms", took);
    /* the late reply to v2 must never be taken for the next command's */
    cr_assert_str_eq(get_str(s, "k"), "v2");
    cr_assert_eq(set_str(s, "k", "v3", 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v3");
    redkv_close(s);
}

Test(net, killed_connection_reconnects)
{
    redkv *s;
    char out[64];
    cr_assert_eq(open_url(srv.url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK);
    SRV(&srv, out, "CLIENT", "KILL", "TYPE", "normal");
    int rc = set_str(s, "k", "v2", 0);
    cr_assert(rc == REDKV_OK || rc == REDKV_ECONN, "rc = %d", rc);
    cr_assert_eq(set_str(s, "k", "v3", 0), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v3");
    redkv_close(s);
}

Test(net, close_releases_every_connection)
{
    redkv *s, *child;
    redkv_options o = {.pool_size = 3};
    cr_assert_eq(open_url(srv.url, &o, &s), REDKV_OK);
    cr_assert_eq(redkv_with_namespace(s, "c", &child), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK);
    cr_assert_eq(redkv_set_async(child, "k", 1, "v", 1, 0, 0, NULL, NULL), REDKV_OK);
    while (redkv_pending(child))
        redkv_process(child, REDKV_READ | REDKV_WRITE);
    cr_assert_eq(srv_clients(&srv), 2);
    redkv_close(s);
    cr_assert_eq(srv_clients(&srv), 2, "a child still holds the client");
    redkv_close(child);
    usleep(50 * 1000);
    cr_assert_eq(srv_clients(&srv), 0);
}

/* ---- passwords ----------------------------------------------------------------------------- */

TestSuite(net_auth, .timeout = 60);

Test(net_auth, requirepass_right_and_wrong)
{
    test_server pw;
    const char *extra[] = {"--requirepass", "s3cr:t@pw", NULL};
    cr_assert_eq(srv_start(&pw, extra), 0);
    char url[256];
    redkv *s;
    redkv_options o = {.password = "s3cr:t@pw"};
    cr_assert_eq(open_url(pw.url, &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);

    snprintf(url, sizeof url, "redis://:s3cr%%3At%%40pw@127.0.0.1:%d", pw.port);
    cr_assert_eq(open_url(url, NULL, &s), REDKV_OK);
    cr_assert_str_eq(get_str(s, "k"), "v");
    redkv_close(s);

    snprintf(url, sizeof url, "redis://:wrong-Secret-42@127.0.0.1:%d", pw.port);
    cr_assert_eq(open_url(url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "x", 0), REDKV_EAUTH);
    cr_assert_null(strstr(redkv_last_error(), "wrong-Secret-42"), "%s", redkv_last_error());
    cr_assert_eq(set_str(s, "k", "x", 0), REDKV_EAUTH);
    redkv_close(s);

    cr_assert_eq(open_url(pw.url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "x", 0), REDKV_EAUTH, "no password: NOAUTH");
    redkv_close(s);
    srv_stop(&pw);
}

Test(net_auth, acl_user)
{
    test_server acl;
    const char *extra[] = {"--user", "alice", "on", ">wonder-land", "~*", "&*", "+@all", NULL};
    cr_assert_eq(srv_start(&acl, extra), 0);
    char url[256];
    redkv *s;
    snprintf(url, sizeof url, "redis://alice:wonder-land@127.0.0.1:%d/2", acl.port);
    cr_assert_eq(open_url(url, NULL, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);

    redkv_options o = {.username = "alice", .password = "not-Her-Pass"};
    cr_assert_eq(open_url(acl.url, &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_EAUTH);
    cr_assert_null(strstr(redkv_last_error(), "not-Her-Pass"));
    redkv_close(s);
    srv_stop(&acl);
}

Test(net_auth, select_refused_is_eauth)
{
    test_server one;
    const char *extra[] = {"--databases", "2", NULL};
    cr_assert_eq(srv_start(&one, extra), 0);
    redkv *s;
    redkv_options o = {.db = 9};
    cr_assert_eq(open_url(one.url, &o, &s), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_EAUTH);
    cr_assert(strstr(redkv_last_error(), "SELECT"), "%s", redkv_last_error());
    cr_assert_eq(SRV_NUM(&one, "DBSIZE"), 0, "nothing ran in the wrong database");
    redkv_close(s);
    srv_stop(&one);
}

/* ---- the example programs ---------------------------------------------------------------- */

static int run_example(const char *name, const char *url)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s '%s' >/dev/null", build_path(name), url);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(net, poll_and_epoll_examples_run)
{
    cr_assert_eq(run_example("examples/poll_loop", srv.url), 0);
    cr_assert_eq(run_example("examples/epoll_loop", srv.unix_url), 0);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "poll_example:key-99"), 1);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "epoll_example:key-99"), 1);
}
