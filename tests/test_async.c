/* test_async.c - the asynchronous forms: callbacks exactly once, in order, with the values
 * SPEC.md gives; closing, faults and re-entrancy. */
#include <criterion/criterion.h>
#include <poll.h>
#include <unistd.h>

#include "helpers.h"

STORE_SUITE(async);

#define MAX_SEEN 64
typedef struct seen {
    int count;
    int status[MAX_SEEN];
    int64_t n[MAX_SEEN];
    char val[MAX_SEEN][32];
    size_t vlen[MAX_SEEN];
} seen;

static seen log_;

static void record(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s;
    seen *l = arg ? arg : &log_;
    int i = l->count++;
    cr_assert(i < MAX_SEEN);
    l->status[i] = status;
    l->n[i] = n;
    l->vlen[i] = vlen;
    if (val && vlen < sizeof l->val[i])
        memcpy(l->val[i], val, vlen);
}

/* Runs a poll loop until nothing is pending or max_ms passes. */
static void drive(redkv *s, int max_ms)
{
    long long until = now_ms() + max_ms;
    while (redkv_pending(s) > 0 && now_ms() < until) {
        struct pollfd p = {redkv_fd(s), 0, 0};
        int ev = redkv_events(s), t = redkv_timeout_ms(s);
        p.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        poll(&p, p.fd >= 0 ? 1 : 0, t < 0 || t > 100 ? 100 : t);
        redkv_process(s, (p.revents & (POLLIN | POLLERR | POLLHUP) ? REDKV_READ : 0) |
                             (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
}

Test(async, every_operation_reports_as_specified)
{
    memset(&log_, 0, sizeof log_);
    cr_assert_eq(redkv_fd(st), -1);
    cr_assert_eq(redkv_set_async(st, "k", 1, "val", 3, 60000, 0, record, NULL), 0);
    cr_assert_neq(redkv_fd(st), -1, "the first request starts a connect");
    redkv_get_async(st, "k", 1, 0, record, NULL);
    redkv_get_async(st, "none", 4, 0, record, NULL);
    redkv_exists_async(st, "k", 1, record, NULL);
    redkv_exists_async(st, "none", 4, record, NULL);
    redkv_expires_in_async(st, "k", 1, record, NULL);
    redkv_set_async(st, "p", 1, "x", 1, 0, 0, record, NULL);
    redkv_expires_in_async(st, "p", 1, record, NULL);
    redkv_expires_in_async(st, "none", 4, record, NULL);
    redkv_delete_async(st, "k", 1, record, NULL);
    redkv_delete_async(st, "k", 1, record, NULL);
    redkv_get_async(st, "p", 1, 5000, record, NULL);
    cr_assert_eq(redkv_pending(st), 12);
    drive(st, 3000);
    cr_assert_eq(log_.count, 12);
    cr_assert_eq(redkv_pending(st), 0);
    int want_status[] = {0, 0, REDKV_MISSING, 0, 0, 0, 0, REDKV_PERSISTENT, REDKV_MISSING, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        cr_assert_eq(log_.status[i], want_status[i], "request %d: %d", i, log_.status[i]);
    cr_assert_eq(log_.n[0], 0);
    cr_assert_eq(log_.vlen[1], 3);
    cr_assert_eq(memcmp(log_.val[1], "val", 3), 0);
    cr_assert_eq(log_.n[3], 1);
    cr_assert_eq(log_.n[4], 0);
    cr_assert(log_.n[5] > 50000 && log_.n[5] <= 60000);
    cr_assert_eq(log_.n[9], 1);
    cr_assert_eq(log_.n[10], 0);
    cr_assert_eq(memcmp(log_.val[11], "x", 1), 0);
}

Test(async, requests_keep_their_order)
{
    memset(&log_, 0, sizeof log_);
    for (int i = 0; i < 20; i++) {
        char v[8];
        int n = snprintf(v, sizeof v, "%d", i);
        redkv_set_async(st, "k", 1, v, (size_t)n, 0, 0, NULL, NULL);
        redkv_get_async(st, "k", 1, i % 2 ? 1000 : 0, record, NULL);
    }
    drive(st, 3000);
    cr_assert_eq(log_.count, 20);
    for (int i = 0; i < 20; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(log_.vlen[i], strlen(v));
        cr_assert_eq(memcmp(log_.val[i], v, strlen(v)), 0, "reply %d out of order", i);
    }
}

Test(async, renew_survives_script_flush)
{
    char out[16];
    memset(&log_, 0, sizeof log_);
    cr_assert_eq(set_str(st, "k", "v", 1000), REDKV_OK);
    SRV(&srv, out, "SCRIPT", "FLUSH");
    redkv_get_async(st, "k", 1, 60000, record, NULL);
    redkv_expires_in_async(st, "k", 1, record, NULL);
    drive(st, 3000);
    cr_assert_eq(log_.status[0], REDKV_OK);
    cr_assert(log_.n[1] > 50000);
}

Test(async, refused_arguments_never_call_back)
{
    memset(&log_, 0, sizeof log_);
    cr_assert_eq(redkv_set_async(st, "k", 1, "v", 1, -1, 0, record, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_set_async(st, "k", 1, "v", 1, 5, REDKV_KEEP_TTL, record, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_get_async(st, NULL, 1, 0, record, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_get_async(st, "k", 1, -1, record, NULL), REDKV_EINVAL);
    cr_assert_eq(redkv_pending(st), 0);
    cr_assert_eq(redkv_fd(st), -1, "nothing was sent: no connection");
    drive(st, 100);
    cr_assert_eq(log_.count, 0);
}

static void reenter(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)status; (void)val; (void)vlen; (void)n;
    *(int *)arg = redkv_process(s, REDKV_READ);
    redkv_set_async(s, "chained", 7, "yes", 3, 0, 0, record, NULL);
}

Test(async, callbacks_may_queue_but_not_process)
{
    int inner = 0;
    memset(&log_, 0, sizeof log_);
    redkv_exists_async(st, "k", 1, reenter, &inner);
    drive(st, 3000);
    cr_assert_eq(inner, REDKV_EINVAL);
    cr_assert_eq(log_.count, 1);
    cr_assert_eq(log_.status[0], REDKV_OK);
    cr_assert_str_eq(get_str(st, "chained"), "yes");
}

static void close_in_callback(redkv *s, int status, const void *val, size_t vlen, int64_t n,
                              void *arg)
{
    (void)status; (void)val; (void)vlen; (void)n; (void)arg;
    redkv_close(s);
}

Test(async, callback_may_close_its_store)
{
    redkv *child;
    seen l = {0};
    cr_assert_eq(redkv_with_namespace(st, "c", &child), REDKV_OK);
    redkv_set_async(child, "k", 1, "v", 1, 0, 0, close_in_callback, NULL);
    redkv_set_async(child, "k2", 2, "v", 1, 0, 0, record, &l);
    drive(st, 3000);
    cr_assert_eq(l.count, 1, "a request of a closed store still completes");
    cr_assert_eq(l.status[0], REDKV_OK);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "LITESTAR_c:k2"), 1);
}

Test(async, closing_last_store_in_callback)
{
    redkv *solo = open_on(&srv, "solo");
    seen l = {0};
    redkv_set_async(solo, "k", 1, "v", 1, 0, 0, close_in_callback, NULL);
    for (int i = 0; i < 5; i++)
        redkv_set_async(solo, "k", 1, "v", 1, 0, 0, record, &l);
    /* drive by hand: the handle dies inside the loop */
    for (int i = 0; i < 200 && l.count < 5; i++) {
        int ev = redkv_events(solo);
        struct pollfd p = {redkv_fd(solo), (short)((ev & REDKV_READ ? POLLIN : 0) |
                                                   (ev & REDKV_WRITE ? POLLOUT : 0)), 0};
        poll(&p, 1, 20);
        redkv_process(solo, REDKV_READ | REDKV_WRITE);
        if (l.count)
            break;
    }
    cr_assert_eq(l.count, 5, "each pending callback exactly once (%d)", l.count);
    for (int i = 0; i < 5; i++)
        cr_assert(l.status[i] == REDKV_ECONN || l.status[i] == REDKV_OK);
}

Test(async, close_with_pending_calls_back_econn)
{
    redkv *solo = open_on(&srv, "solo");
    seen l = {0};
    for (int i = 0; i < 10; i++)
        redkv_get_async(solo, "k", 1, 0, record, &l);
    redkv_close(solo);
    cr_assert_eq(l.count, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(l.status[i], REDKV_ECONN);
}

Test(async, refused_connect_reaches_callbacks)
{
    redkv *s;
    seen l = {0};
    redkv_options o = {.url = "redis://127.0.0.1:1"};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, record, &l), 0);
    redkv_get_async(s, "k", 1, 0, record, &l);
    cr_assert_eq(l.count, 0, "never called from inside the queuing call");
    drive(s, 2000);
    cr_assert_eq(l.count, 2);
    cr_assert_eq(l.status[0], REDKV_ECONN);
    cr_assert_eq(l.status[1], REDKV_ECONN);
    redkv_close(s);
}

Test(async, stopped_server_times_out)
{
    redkv *s;
    seen l = {0};
    redkv_options o = {.url = srv.url, .command_timeout_ms = 300};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    redkv_set_async(s, "k", 1, "v", 1, 0, 0, record, &l);
    drive(s, 2000);
    cr_assert_eq(l.status[0], REDKV_OK);
    srv_pause(&srv);
    long long t0 = now_ms();
    for (int i = 0; i < 3; i++)
        redkv_get_async(s, "k", 1, 0, record, &l);
    drive(s, 3000);
    long long took = now_ms() - t0;
    srv_resume(&srv);
    cr_assert_eq(l.count, 4);
    cr_assert_eq(l.status[1], REDKV_ETIMEDOUT);
    cr_assert_eq(l.status[2], REDKV_ECONN);
    cr_assert_eq(l.status[3], REDKV_ECONN);
    cr_assert(took >= 250 && took < 1500, "took %lld", took);
    redkv_get_async(s, "k", 1, 0, record, &l);
    drive(s, 2000);
    cr_assert_eq(l.status[4], REDKV_OK, "a new connection after the timeout");
    redkv_close(s);
}

Test(async, refused_auth_fails_every_request)
{
    test_server pw;
    const char *extra[] = {"--requirepass", "right", NULL};
    cr_assert_eq(srv_start(&pw, extra), 0);
    redkv *s;
    seen l = {0};
    redkv_options o = {.url = pw.url, .password = "wrong"};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    for (int i = 0; i < 3; i++)
        redkv_set_async(s, "k", 1, "v", 1, 0, 0, record, &l);
    drive(s, 2000);
    cr_assert_eq(l.count, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(l.status[i], REDKV_EAUTH);
    cr_assert_eq(SRV_NUM(&pw, "DBSIZE"), 0);
    redkv_close(s);
    srv_stop(&pw);
}

Test(async, fire_and_forget)
{
    for (int i = 0; i < 50; i++)
        cr_assert_eq(redkv_set_async(st, &i, sizeof i, "v", 1, 0, 0, NULL, NULL), 0);
    drive(st, 3000);
    cr_assert_eq(redkv_pending(st), 0);
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 50);
}

Test(async, idle_drop_is_quiet_and_new_socket_has_new_number)
{
    seen l = {0};
    char out[64];
    redkv_set_async(st, "k", 1, "v", 1, 0, 0, record, &l);
    drive(st, 2000);
    int before = redkv_fd(st);
    cr_assert_geq(before, 0);
    SRV(&srv, out, "CLIENT", "KILL", "TYPE", "normal");
    struct pollfd p = {before, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 2000), 1);
    cr_assert_eq(redkv_process(st, REDKV_READ), 0, "nobody's request failed");
    cr_assert_eq(redkv_fd(st), -1);
    redkv_set_async(st, "k", 1, "v2", 2, 0, 0, record, &l);
    cr_assert_neq(redkv_fd(st), before, "a reused number would fool an epoll loop");
    drive(st, 2000);
    cr_assert_eq(l.count, 2);
    cr_assert_eq(l.status[1], REDKV_OK);
}
