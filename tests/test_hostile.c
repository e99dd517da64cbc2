/* test_hostile.c - a fake server answers the first command with bytes that break RESP (or
 * with nothing at all). Every case must end with its error within the command timeout,
 * through the blocking calls, the asynchronous ones (each callback once) and the tool; and
 * the next call must reconnect and work, since the server answers well from then on. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "hostile.h"
#include "redkv.h"

#define TIMEOUT_MS 300
#define BYTES(s) s, sizeof s - 1

typedef struct bad_case {
    const char *name;
    const char *bytes;
    size_t len;
    int then;                 /* enum hostile_then */
    int at_once;
    int want;                 /* the status of the first request */
    int drip_ms;              /* the bytes come one at a time, this far apart */
} bad_case;

static const bad_case cases[] = {
    /* lengths */
    {"bulk length past 64 bits", BYTES("$18446744073709551616\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"bulk length INT64_MAX", BYTES("$9223372036854775807\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"bulk length past the limit", BYTES("$536870913\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"array length past 64 bits", BYTES("*99999999999999999999\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"array longer than the limit", BYTES("*1048577\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"negative bulk length", BYTES("$-2\r\nab\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"negative array length", BYTES("*-5\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"most negative length", BYTES("$-9223372036854775808\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"empty length", BYTES("$\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"length with a plus sign", BYTES("$+3\r\nabc\r\n"), H_HANG, 0, REDKV_EPROTO},
    /* truncation */
    {"truncated bulk, then close", BYTES("$10\r\nabc"), H_CLOSE, 0, REDKV_ECONN},
    {"truncated line, then close", BYTES("+OK"), H_CLOSE, 0, REDKV_ECONN},
    {"CR then close", BYTES("+OK\r"), H_CLOSE, 0, REDKV_ECONN},
    {"512 MiB announced, 3 bytes, close", BYTES("$536870912\r\nabc"), H_CLOSE, 0, REDKV_ECONN},
    {"truncated array, then close", BYTES("*3\r\n:1\r\n:2\r\n"), H_CLOSE, 0, REDKV_ECONN},
    {"truncated bulk, then reset", BYTES("$10\r\nabc"), H_RESET, 0, REDKV_ECONN},
    /* terminators */
    {"bulk without CRLF after it", BYTES("$3\r\nabcXY"), H_HANG, 0, REDKV_EPROTO},
    {"bulk with LF only after it", BYTES("$3\r\nabc\n\n"), H_HANG, 0, REDKV_EPROTO},
    {"CR not followed by LF", BYTES("+OK\rXY"), H_HANG, 0, REDKV_EPROTO},
    {"LF without CR", BYTES("+OK\n"), H_HANG, 0, REDKV_EPROTO},
    {"LF without CR in a length", BYTES("$3\nabc\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"CRCRLF", BYTES("+OK\r\r\n"), H_HANG, 0, REDKV_EPROTO},
    /* types and numbers */
    {"unknown type byte", BYTES("?what\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"unknown type in an array", BYTES("*2\r\n$1\r\na\r\n?x\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"NUL type byte", BYTES("\0OK\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"letters in an integer", BYTES(":12a\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"empty integer", BYTES(":\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"lone minus", BYTES(":-\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"integer past INT64_MAX", BYTES(":9223372036854775808\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"integer with a space", BYTES(": 1\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"integer with a fraction", BYTES(":1.5\r\n"), H_HANG, 0, REDKV_EPROTO},
    /* depth and size */
    {"nesting past the limit",
     BYTES("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"binary garbage with CRLF", BYTES("\x80\x81\xfe\xff\x01garbage\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"binary garbage, then silence", BYTES("\x80\x81\xfe\xff\x01garbage"), H_HANG, 0, REDKV_EPROTO},
    /* RESP3 */
    {"RESP3 map", BYTES("%1\r\n+a\r\n+b\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 null", BYTES("_\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 boolean", BYTES("#t\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 set", BYTES("~1\r\n:1\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 double", BYTES(",1.5\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 big number", BYTES("(12345678901234567890\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 verbatim", BYTES("=7\r\ntxt:abc\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 push", BYTES(">2\r\n+a\r\n+b\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 attribute", BYTES("|1\r\n+a\r\n+b\r\n+OK\r\n"), H_HANG, 0, REDKV_EPROTO},
    {"RESP3 blob error", BYTES("!3\r\nerr\r\n"), H_HANG, 0, REDKV_EPROTO},
    /* silence and hang-ups */
    {"close at once", NULL, 0, H_CLOSE, 1, REDKV_ECONN},
    {"reset at once", NULL, 0, H_RESET, 1, REDKV_ECONN},
    {"close after the command", NULL, 0, H_CLOSE, 0, REDKV_ECONN},
    {"never answers", NULL, 0, H_HANG, 0, REDKV_ETIMEDOUT},
    {"half a reply, then silence", BYTES("$5\r\nab"), H_HANG, 0, REDKV_ETIMEDOUT},
    {"half a line, then silence", BYTES("+OK"), H_HANG, 0, REDKV_ETIMEDOUT},
    /* a trickle that never ends is bounded by the request's deadline, not each read's */
    {"endless trickle", BYTES("+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
     H_HANG, 0, REDKV_ETIMEDOUT, 10},
    {"trickle of garbage", BYTES("$3\r\nabcXY"), H_HANG, 0, REDKV_EPROTO, 10},
};
#define NCASES (sizeof cases / sizeof *cases)

/* The megabyte lines are built at run time. */
static char *long_line(char type, size_t n)
{
    char *p = malloc(n);
    cr_assert(p);
    memset(p, 'a', n);
    p[0] = type;
    return p;
}

static hostile *serve(const bad_case *c)
{
    hostile_script s = {c->bytes, c->len, c->then, c->at_once, c->drip_ms};
    hostile *h = hostile_start(&s, 1);
    cr_assert(h, "the fake server must start");
    return h;
}

static redkv *open_on(hostile *h, size_t max_value_len)
{
    redkv_options o = {0};
    o.url = hostile_url(h);
    o.command_timeout_ms = TIMEOUT_MS;
    o.connect_timeout_ms = TIMEOUT_MS;
    o.max_value_len = max_value_len;
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

/* The server answers well from the second connection on: the next calls must work. */
static void check_recovers(redkv *s, hostile *h, const char *name)
{
    void *val = NULL;
    size_t vlen = 0;
    cr_assert_eq(redkv_set(s, "k", 1, "v2", 2, 0, 0), REDKV_OK, "%s: set after: %s", name,
                 redkv_last_error());
    cr_assert_eq(redkv_get(s, "k", 1, 0, &val, &vlen), REDKV_OK, "%s: get after", name);
    cr_assert(vlen == 2 && memcmp(val, "v2", 2) == 0, "%s", name);
    redkv_free(val);
    cr_assert_geq(hostile_accepted(h), 2, "%s: a new connection", name);
}

static void blocking_case(const bad_case *c, int use_set)
{
    hostile *h = serve(c);
    redkv *s = open_on(h, 0);
    void *val = (void *)1;
    size_t vlen = 99;
    long long t0 = now_ms();
    int rc = use_set ? redkv_set(s, "k", 1, "v", 1, 0, 0) : redkv_get(s, "k", 1, 0, &val, &vlen);
    long long took = now_ms() - t0;
    cr_expect_eq(rc, c->want, "%s (%s): got %d (%s), want %d", c->name, use_set ? "set" : "get",
                 rc, redkv_last_error(), c->want);
    cr_expect_leq(took, TIMEOUT_MS + slack_ms(), "%s: took %lld ms", c->name, took);
    if (!use_set) {
        cr_expect_null(val, "%s", c->name);
        cr_expect_eq(vlen, 0, "%s", c->name);
    }
    cr_expect_neq(strcmp(redkv_last_error(), "no error"), 0, "%s: a message", c->name);
    check_recovers(s, h, c->name);
    redkv_close(s);
    hostile_stop(h);
}

Test(hostile, blocking_get)
{
    for (size_t i = 0; i < NCASES; i++)
        blocking_case(&cases[i], 0);
}

Test(hostile, blocking_set)
{
    for (size_t i = 0; i < NCASES; i++)
        blocking_case(&cases[i], 1);
}

static void async_case(const bad_case *c)
{
    hostile *h = serve(c);
    redkv *s = open_on(h, 0);
    cb_rec set = {0}, get = {0};
    long long t0 = now_ms();
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &set), 0);
    cr_assert_eq(redkv_get_async(s, "k2", 2, 0, rec_cb, &get), 0);
    cr_assert_eq(redkv_pending(s), 2);
    cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms() + 1000), 0, "%s: all called back", c->name);
    cr_expect_eq(set.calls, 1, "%s: set called %d times", c->name, set.calls);
    cr_expect_eq(get.calls, 1, "%s: get called %d times", c->name, get.calls);
    cr_expect_eq(set.status, c->want, "%s (async): got %d, want %d", c->name, set.status, c->want);
    cr_expect_leq(set.at_ms - t0, TIMEOUT_MS + slack_ms(), "%s: took %lld ms", c->name,
                  set.at_ms - t0);
    /* The other request was written on the same connection: it is lost with it (ECONN),
       unless it had not gone out yet, and then it went on the good connection. */
    cr_expect(get.status == REDKV_ECONN || get.status == c->want ||
                  (c->want == REDKV_ECONN && get.status == REDKV_MISSING),
              "%s: second request got %d", c->name, get.status);

    /* The next requests reconnect and work. */
    cb_rec set2 = {0}, get2 = {0};
    cr_assert_eq(redkv_set_async(s, "k", 1, "v2", 2, 0, 0, rec_cb, &set2), 0);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &get2), 0);
    cr_expect_eq(drive(s, 5000), 0, "%s", c->name);
    cr_expect(set2.calls == 1 && set2.status == REDKV_OK, "%s: set after: %d", c->name, set2.status);
    cr_expect(get2.calls == 1 && get2.status == REDKV_OK && get2.vlen == 2 &&
                  memcmp(get2.val, "v2", 2) == 0, "%s: get after: %d", c->name, get2.status);
    cr_expect_geq(hostile_accepted(h), 2, "%s: a new connection", c->name);
    redkv_close(s);
    hostile_stop(h);
}

Test(hostile, async)
{
    for (size_t i = 0; i < NCASES; i++)
        async_case(&cases[i]);
}

/* A line of megabytes with no CRLF: EPROTO once the line limit (64 KiB) is passed, without
   reading, let alone keeping, the rest. */
Test(hostile, megabyte_lines)
{
    const char types[] = {'+', '-', ':', '$', '*'};
    for (size_t i = 0; i < sizeof types; i++) {
        size_t n = 8u << 20;
        char *line = long_line(types[i], n);
        bad_case c = {"megabyte line", line, n, H_HANG, 0, REDKV_EPROTO};
        blocking_case(&c, 0);
        async_case(&c);
        free(line);
    }
}

/* A bulk string longer than max_value_len is refused from its header on. */
Test(hostile, value_limit)
{
    hostile_script sc = {BYTES("$17\r\n01234567890123456\r\n"), H_HANG, 0};
    hostile *h = hostile_start(&sc, 1);
    cr_assert(h);
    redkv *s = open_on(h, 16);
    void *val;
    size_t vlen;
    cr_expect_eq(redkv_get(s, "k", 1, 0, &val, &vlen), REDKV_EPROTO);
    cr_expect_eq(redkv_set(s, "k", 1, "01234567890123456", 17, 0, 0), REDKV_ETOOBIG);
    cr_expect_eq(redkv_set(s, "k", 1, "0123456789012345", 16, 0, 0), REDKV_OK);
    cr_expect_eq(redkv_get(s, "k", 1, 0, &val, &vlen), REDKV_OK);
    cr_expect_eq(vlen, 16);
    redkv_free(val);
    redkv_close(s);
    hostile_stop(h);
}

/* Well-formed replies of the wrong type are the server's error (ESERVER), not the protocol's:
   the connection stays up and the next call uses it. */
Test(hostile, wrong_type_keeps_connection)
{
    static const struct { const char *bytes; size_t len; } odd[] = {
        {BYTES(":1\r\n")},
        {BYTES("+OK\r\n")},
        {BYTES("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")},   /* depth 8: legal */
        {BYTES("*-1\r\n")},
        {BYTES("-ERR something odd\r\n")},
    };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        hostile_script sc = {odd[i].bytes, odd[i].len, H_GOOD, 0};
        hostile *h = hostile_start(&sc, 1);
        cr_assert(h);
        redkv *s = open_on(h, 0);
        void *val = NULL;
        size_t vlen;
        cr_expect_eq(redkv_get(s, "k", 1, 0, &val, &vlen), REDKV_ESERVER, "case %zu: %s", i,
                     redkv_last_error());
        cr_expect_null(val);
        cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK, "case %zu", i);
        cr_expect_eq(hostile_accepted(h), 1, "case %zu: the same connection", i);
        redkv_close(s);
        hostile_stop(h);
    }
}

/* A slow server that answers within the timeout is no error. */
Test(hostile, slow_but_in_time)
{
    hostile_script sc[2] = {{BYTES("+OK\r\n"), H_GOOD, 0, 10}, {BYTES("$2\r\nv1\r\n"), H_GOOD, 0, 10}};
    hostile *h = hostile_start(sc, 2);
    cr_assert(h);
    redkv *s = open_on(h, 0);
    cr_expect_eq(redkv_set(s, "k", 1, "v1", 2, 0, 0), REDKV_OK, "%s", redkv_last_error());
    cb_rec g = {0};
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &g), 0);
    cr_expect_eq(drive(s, 2000), 0);
    cr_expect(g.calls == 1 && g.status == REDKV_OK && g.vlen == 2, "%d", g.status);
    redkv_close(s);
    hostile_stop(h);
}

/* Pipelined: a good reply, then one that breaks the protocol. EPROTO goes to the request
   whose reply broke it, and only to that one. */
Test(hostile, eproto_to_the_right_request)
{
    hostile_script sc = {BYTES("+OK\r\n?bad\r\n"), H_HANG, 0, 0};
    hostile *h = hostile_start(&sc, 1);
    cr_assert(h);
    redkv *s = open_on(h, 0);
    cb_rec a = {0}, b = {0}, c = {0};
    cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &a), 0);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &b), 0);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &c), 0);
    cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms()), 0);
    cr_expect(a.calls == 1 && a.status == REDKV_OK, "first: %d calls, %d", a.calls, a.status);
    cr_expect(b.calls == 1 && b.status == REDKV_EPROTO, "second: %d calls, %d", b.calls, b.status);
    cr_expect(c.calls == 1 && (c.status == REDKV_ECONN || c.status == REDKV_MISSING),
              "third: %d calls, %d", c.calls, c.status);
    redkv_close(s);
    hostile_stop(h);

    /* blocking: the extra bytes after the answer break the connection, not the call */
    h = hostile_start(&sc, 1);
    cr_assert(h);
    s = open_on(h, 0);
    cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK, "%s", redkv_last_error());
    int rc = redkv_exists(s, "k", 1);    /* had the bad bytes come late, this call gets them */
    cr_expect(rc == 0 || rc == REDKV_EPROTO, "%d", rc);
    check_recovers(s, h, "extra reply");
    redkv_close(s);
    hostile_stop(h);
}

/* The handshake's replies are checked like any other: bad bytes to AUTH (or SELECT) end the
   call with EPROTO, a refusal with EAUTH, silence with ETIMEDOUT; asynchronous requests,
   not written before the handshake ends, may go on the next (good) connection instead. */
Test(hostile, bad_handshake_replies)
{
    static const struct { const char *bytes; size_t len; int then; int want; } hs[] = {
        {BYTES("?bad\r\n"), H_HANG, REDKV_EPROTO},
        {BYTES("$-7\r\n"), H_HANG, REDKV_EPROTO},
        {BYTES("+OK\n"), H_HANG, REDKV_EPROTO},
        {BYTES("-WRONGPASS no\r\n"), H_HANG, REDKV_EAUTH},
        {BYTES("+OK\r\n-ERR DB index is out of range\r\n"), H_HANG, REDKV_EAUTH},
        {BYTES("+OK\r\n?bad\r\n"), H_HANG, REDKV_EPROTO},
        {BYTES("+OK\r\n+OK\r\n+OK\r\n"), H_HANG, REDKV_EPROTO},   /* a reply nobody asked for */
        {NULL, 0, H_HANG, REDKV_ETIMEDOUT},
        {BYTES("+OK\r\n"), H_HANG, REDKV_ETIMEDOUT},                  /* SELECT unanswered */
        {NULL, 0, H_CLOSE, REDKV_ECONN},
    };
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++) {
        for (int async = 0; async <= 1; async++) {
            hostile_script sc = {hs[i].bytes, hs[i].len, hs[i].then, 0, 0};
            hostile *h = hostile_start(&sc, 1);
            cr_assert(h);
            redkv_options o = {0};
            o.url = hostile_url(h);
            o.password = "pw";
            o.db = 3;
            o.command_timeout_ms = TIMEOUT_MS;
            redkv *s = NULL;
            cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
            long long t0 = now_ms();
            if (!async) {
                int rc = redkv_set(s, "k", 1, "v", 1, 0, 0);
                cr_expect_eq(rc, hs[i].want, "case %zu: %d (%s)", i, rc, redkv_last_error());
                cr_expect_leq(now_ms() - t0, TIMEOUT_MS + slack_ms(), "case %zu", i);
            } else {
                cb_rec a = {0}, b = {0};
                cr_assert_eq(redkv_set_async(s, "k", 1, "v", 1, 0, 0, rec_cb, &a), 0);
                cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &b), 0);
                cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms() + 2000), 0, "case %zu", i);
                cr_expect(a.calls == 1 && b.calls == 1, "case %zu: %d and %d calls", i, a.calls,
                          b.calls);
                /* EAUTH fails every queued request; after a broken handshake the requests,
                   never written, go on the next connection (which works). */
                if (hs[i].want == REDKV_EAUTH || hs[i].want == REDKV_ETIMEDOUT)
                    cr_expect(a.status == hs[i].want && b.status == hs[i].want,
                              "case %zu: %d, %d", i, a.status, b.status);
                else
                    cr_expect((a.status == hs[i].want || a.status == REDKV_OK) &&
                                  (b.status == a.status || b.status == REDKV_ECONN ||
                                   b.status == REDKV_OK),
                              "case %zu: %d, %d", i, a.status, b.status);
                cr_expect_leq(a.at_ms - t0, TIMEOUT_MS + slack_ms(), "case %zu", i);
            }
            check_recovers(s, h, "handshake");
            redkv_close(s);
            hostile_stop(h);
        }
    }
}

/* A callback that closes its store while the connection fails under it: every other
   callback still runs once (with ECONN), and nothing is used after it is freed. */
static void close_on_error(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    rec_cb(s, status, val, vlen, n, arg);
    if (status != REDKV_OK)
        redkv_close(s);
}

Test(hostile, callback_closes_store_on_error)
{
    hostile_script sc = {BYTES("?bad\r\n"), H_HANG, 0, 0};
    hostile *h = hostile_start(&sc, 1);
    cr_assert(h);
    redkv *s = open_on(h, 0);
    cb_rec first = {0}, r[4];
    memset(r, 0, sizeof r);
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, close_on_error, &first), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &r[i]), 0);
    long long until = now_ms() + TIMEOUT_MS + slack_ms();
    while (first.calls == 0 && now_ms() < until) {
        struct pollfd p = {redkv_fd(s), POLLIN | POLLOUT, 0};
        int n = poll(&p, p.fd >= 0 ? 1 : 0, 10);
        redkv_process(s, n > 0 ? REDKV_READ | REDKV_WRITE : 0);
    }
    /* s is closed now (from the callback): no more driving. */
    cr_expect(first.calls == 1 && first.status == REDKV_EPROTO, "%d calls, %d", first.calls,
              first.status);
    for (int i = 0; i < 4; i++)
        cr_expect(r[i].calls == 1 && r[i].status == REDKV_ECONN, "request %d: %d calls, %d", i,
                  r[i].calls, r[i].status);
    hostile_stop(h);
}

/* A server that reads a large command slowly: the write is bounded by the request's
   deadline too, not only each send. */
Test(hostile, slow_reader)
{
    size_t n = 8u << 20;
    char *big = malloc(n);
    cr_assert(big);
    memset(big, 'v', n);
    for (int async = 0; async <= 1; async++) {
        hostile_script sc = {NULL, 0, H_HANG, 0, 0, 10};
        hostile *h = hostile_start(&sc, 1);
        cr_assert(h);
        redkv *s = open_on(h, 0);
        long long t0 = now_ms(), took;
        int rc;
        if (!async) {
            rc = redkv_set(s, "k", 1, big, n, 0, 0);
            took = now_ms() - t0;
        } else {
            cb_rec a = {0};
            cr_assert_eq(redkv_set_async(s, "k", 1, big, n, 0, 0, rec_cb, &a), 0);
            cr_expect_eq(drive(s, 10000), 0);
            rc = a.status;
            took = a.at_ms - t0;
        }
        cr_expect_eq(rc, REDKV_ETIMEDOUT, "%s: %d (%s)", async ? "async" : "blocking", rc,
                     redkv_last_error());
        cr_expect_leq(took, TIMEOUT_MS + slack_ms(), "%s: took %lld ms", async ? "async" : "blocking",
                      took);
        check_recovers(s, h, "slow reader");
        redkv_close(s);
        hostile_stop(h);
    }
    free(big);
}

/* A listener whose backlog is full drops further SYNs: the connect itself hangs, and ends
   with ETIMEDOUT within the connect timeout, blocking and async. */
Test(hostile, connect_never_completes)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(lfd, (struct sockaddr *)&a, &alen) == 0 && listen(lfd, 0) == 0);
    int filler[4];
    for (int i = 0; i < 4; i++) {          /* fill the backlog; the later ones may hang */
        filler[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(filler[i], F_SETFL, O_NONBLOCK);
        connect(filler[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    redkv_options o = {0};
    o.url = url;
    o.connect_timeout_ms = TIMEOUT_MS;
    o.command_timeout_ms = TIMEOUT_MS;
    redkv *s = NULL;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    long long t0 = now_ms();
    int rc = redkv_set(s, "k", 1, "v", 1, 0, 0);
    long long took = now_ms() - t0;
    cr_expect_eq(rc, REDKV_ETIMEDOUT, "blocking: %d (%s)", rc, redkv_last_error());
    cr_expect(took >= TIMEOUT_MS - 5 && took <= TIMEOUT_MS + slack_ms(), "blocking: %lld ms", took);
    cb_rec r = {0};
    t0 = now_ms();
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &r), 0);
    cr_expect_eq(drive(s, TIMEOUT_MS + slack_ms() + 1000), 0);
    cr_expect(r.calls == 1 && r.status == REDKV_ETIMEDOUT, "async: %d calls, %d", r.calls, r.status);
    cr_expect_leq(r.at_ms - t0, TIMEOUT_MS + slack_ms(), "async: %lld ms", r.at_ms - t0);
    redkv_close(s);
    for (int i = 0; i < 4; i++)
        close(filler[i]);
    close(lfd);
}

/* delete_all reads SCAN's replies: odd shapes are the server's error (ESERVER), broken bytes
   EPROTO, and the call ends either way. */
Test(hostile, odd_scan_replies)
{
    static const struct { const char *bytes; size_t len; int want; } odd[] = {
        {BYTES("*2\r\n$1\r\n0\r\n*0\r\n"), REDKV_OK},
        {BYTES("*2\r\n$1\r\n0\r\n*2\r\n:1\r\n*0\r\n"), REDKV_OK},    /* no bulk keys: none match */
        {BYTES("*2\r\n$1\r\n0\r\n*1\r\n$10\r\nLITESTAR:k\r\n"), REDKV_OK},
        {BYTES("*2\r\n:0\r\n*0\r\n"), REDKV_ESERVER},
        {BYTES("*1\r\n$1\r\n0\r\n"), REDKV_ESERVER},
        {BYTES("*3\r\n$1\r\n0\r\n*0\r\n*0\r\n"), REDKV_ESERVER},
        {BYTES("*2\r\n$1\r\n0\r\n$3\r\nabc\r\n"), REDKV_ESERVER},
        {BYTES("*2\r\n$30\r\n123456789012345678901234567890\r\n*0\r\n"), REDKV_ESERVER},
        {BYTES("*2\r\n$-1\r\n*0\r\n"), REDKV_ESERVER},
        {BYTES("*2\r\n$1\r\n0\r\n*-1\r\n"), REDKV_ESERVER},
        {BYTES("*-1\r\n"), REDKV_ESERVER},
        {BYTES("*0\r\n"), REDKV_ESERVER},
        {BYTES("+OK\r\n"), REDKV_ESERVER},
        {BYTES("-ERR nope\r\n"), REDKV_ESERVER},
        {BYTES("*2\r\n$1\r\n0\r\n*1\r\n?x\r\n"), REDKV_EPROTO},
    };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        hostile_script sc = {odd[i].bytes, odd[i].len, H_GOOD, 0, 0, 0};
        hostile *h = hostile_start(&sc, 1);
        cr_assert(h);
        redkv *s = open_on(h, 0);
        long long t0 = now_ms();
        int rc = redkv_delete_all(s);
        cr_expect_eq(rc, odd[i].want, "case %zu: %d (%s)", i, rc, redkv_last_error());
        cr_expect_leq(now_ms() - t0, TIMEOUT_MS + slack_ms(), "case %zu", i);
        cr_expect_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK, "case %zu: after", i);
        cr_expect_eq(redkv_exists(s, "k", 1), 1, "case %zu: after", i);
        cr_expect_eq(hostile_accepted(h), odd[i].want == REDKV_EPROTO ? 2 : 1, "case %zu", i);
        redkv_close(s);
        hostile_stop(h);
    }
}

/* Closing with requests in flight on a server that never answers: each callback once. */
Test(hostile, close_with_requests_in_flight)
{
    hostile_script sc = {NULL, 0, H_HANG, 0};
    hostile *h = hostile_start(&sc, 1);
    cr_assert(h);
    redkv *s = open_on(h, 0);
    cb_rec r[8];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &r[i]), 0);
    drive(s, 50);
    redkv_close(s);
    for (int i = 0; i < 8; i++)
        cr_expect(r[i].calls == 1 && r[i].status == REDKV_ECONN, "request %d: %d calls, %d", i,
                  r[i].calls, r[i].status);
    hostile_stop(h);
}

/* ---- the command-line tool --------------------------------------------------------------- */

static int cli_exit_for(int status)
{
    return status == REDKV_EPROTO ? 4 : 3;   /* ECONN, ETIMEDOUT: 3 */
}

static void cli_case(const bad_case *c)
{
    hostile *h = serve(c);
    char err[4096], out[256];
    const char *args[] = {"--url", hostile_url(h), "--timeout", "300", "get", "k", NULL};
    long long t0 = now_ms();
    int rc = run_cli(args, 10000, out, sizeof out, err, sizeof err);
    long long took = now_ms() - t0;
    if (rc == -1) {
        hostile_stop(h);
        cr_skip_test("build/redkv is not built");
    }
    cr_expect_eq(rc, cli_exit_for(c->want), "%s (cli): exit %d, stderr: %s", c->name, rc, err);
    cr_expect_eq(strncmp(err, "redkv: ", 7), 0, "%s: stderr: %s", c->name, err);
    cr_expect(strchr(err, '\n') == err + strlen(err) - 1, "%s: one line: %s", c->name, err);
    cr_expect_eq(out[0], 0, "%s: nothing on stdout", c->name);
    cr_expect_leq(took, 3 * TIMEOUT_MS + 10 * slack_ms(), "%s: took %lld ms", c->name, took);
    hostile_stop(h);
}

Test(hostile, cli, .timeout = 300)   /* 56 runs of the tool: slow under valgrind */
{
    for (size_t i = 0; i < NCASES; i++)
        cli_case(&cases[i]);
    char *line = long_line('+', 4u << 20);
    bad_case c = {"megabyte line", line, 4u << 20, H_HANG, 0, REDKV_EPROTO};
    cli_case(&c);
    free(line);
}

/* ---- hostile URLs: the URL fuzz target's seeds (and any stored finds), replayed ---------- */

#include <dirent.h>

#define LLVMFuzzerTestOneInput fuzz_url_one
#include "../fuzz/fuzz_url.c"

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[1024], buf[65536];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fuzz_url_one((const uint8_t *)buf, len);   /* aborts on a broken invariant */
        n++;
    }
    closedir(d);
    return n;
}

Test(hostile, url_fuzz_replay)
{
    const char *src = getenv("REDKV_SRC");
    char dir[512];
    int n = 0;
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/url", src ? src : ".");
    n += replay_dir(dir);
    snprintf(dir, sizeof dir, "%s/fuzz/regress/url", src ? src : ".");
    n += replay_dir(dir);
    cr_expect_gt(n, 10, "the URL seeds were found (REDKV_SRC=%s)", src ? src : "(unset)");
}
