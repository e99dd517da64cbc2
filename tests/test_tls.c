/* test_tls.c - rediss:// and the transport hook.
 *
 * Every build: a transport of the test's own (plain bytes through the hook, counted) proves
 * that the hook carries every byte and that its errors become ETLS with its words. The
 * default build refuses rediss:// with ECONFIG saying how to build TLS. The TLS builds
 * (make TLS=mbedtls, make TLS=openssl) run the rest against redis-server's TLS port with
 * certificates made at test time (tests/tls_fixture.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_fixture.h"
#include "helpers.h"
#include "tls_fixture.h"

/* tests/hostile.c's poll() loop (hostile.h's run_cli would clash with this file's). */
int drive(redkv *s, int ms);

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Opens a store with o (url set by the caller), runs one set and, when it worked, a get of
   the same key. Returns the first failing status (or OK); the message is copied to msg. */
static int try_store(redkv_options *o, char *msg, size_t cap)
{
    redkv *s = NULL;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = 2000;
    if (!o->command_timeout_ms)
        o->command_timeout_ms = 2000;
    int rc = redkv_open(&s, o);
    if (rc == REDKV_OK && (rc = set_str(s, "tls-key", "tls-value", 0)) == REDKV_OK &&
        strcmp(get_str(s, "tls-key"), "tls-value") != 0)
        rc = REDKV_EPROTO;
    snprintf(msg, cap, "%s", rc == REDKV_OK ? "" : redkv_last_error());
    redkv_close(s);
    return rc;
}


/* ---- the transport hook (every build) ---------------------------------------------------- */

typedef struct counting {
    long opens, closes, handshakes, bytes_in, bytes_out;
    const char *refuse_open, *refuse_handshake;   /* non-NULL: fail with this text */
} counting;

typedef struct plain_session {
    int fd;
    int steps;                /* handshake steps taken: the first one asks to wait */
    counting *count;
} plain_session;

static void *plain_open(void *ctx, int fd, const char *server_name, char *err, size_t errlen)
{
    counting *c = ctx;
    plain_session *s;
    (void)server_name;
    if (c->refuse_open) {
        snprintf(err, errlen, "%s", c->refuse_open);
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s)))
        return NULL;
    s->fd = fd;
    s->count = c;
    c->opens++;
    return s;
}

/* Two steps, the first asking to wait for writability, as a real handshake would. */
static int plain_handshake(void *session, char *err, size_t errlen)
{
    plain_session *s = session;
    s->count->handshakes++;
    if (s->count->refuse_handshake) {
        snprintf(err, errlen, "%s", s->count->refuse_handshake);
        return REDKV_IO_ERROR;
    }
    return s->steps++ == 0 ? REDKV_IO_WANT_WRITE : 0;
}

static long plain_result(ssize_t n, int want)
{
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? want : REDKV_IO_ERROR;
}

static long plain_read(void *session, void *buf, size_t len)
{
    plain_session *s = session;
    long n = plain_result(recv(s->fd, buf, len, 0), REDKV_IO_WANT_READ);
    if (n > 0)
        s->count->bytes_in += n;
    return n;
}

static long plain_write(void *session, const void *buf, size_t len)
{
    plain_session *s = session;
    long n = plain_result(send(s->fd, buf, len, MSG_NOSIGNAL), REDKV_IO_WANT_WRITE);
    if (n > 0)
        s->count->bytes_out += n;
    return n;
}

static void plain_close(void *session)
{
    plain_session *s = session;
    s->count->closes++;
    free(s);
}

static redkv_transport counting_transport(counting *c)
{
    redkv_transport tp = {c, plain_open, plain_handshake, plain_read, plain_write, NULL,
                          plain_close};
    return tp;
}

Test(tls_hook, carries_every_byte_of_blocking_and_async_calls, .timeout = 60)
{
    test_server srv;
    counting c = {0};
    redkv_transport tp = counting_transport(&c);
    cr_assert_eq(srv_start(&srv, NULL), 0);
    redkv_options o = {.url = srv.url, .transport = &tp, .command_timeout_ms = 2000};
    redkv *s;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_assert_eq(set_str(s, "hook", "through the hook", 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_str_eq(get_str(s, "hook"), "through the hook");
    long out_before = c.bytes_out;
    char big[20000];
    memset(big, 'x', sizeof big);
    cr_assert_eq(redkv_set(s, "big", 3, big, sizeof big, 0, 0), REDKV_OK);
    cr_assert_geq(c.bytes_out - out_before, (long)sizeof big, "the value went through the hook");
    cr_assert_eq(redkv_exists_async(s, "hook", 4, NULL, NULL), 0);
    while (redkv_pending(s) > 0) {
        int ev = redkv_events(s);
        struct pollfd p = {redkv_fd(s), (short)((ev & REDKV_READ ? POLLIN : 0) |
                                                (ev & REDKV_WRITE ? POLLOUT : 0)), 0};
        poll(&p, p.fd >= 0, redkv_timeout_ms(s));
        redkv_process(s, (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                             (p.revents & POLLOUT ? REDKV_WRITE : 0));
    }
    cr_assert_geq(c.opens, 2, "the pool and the asynchronous connection each opened a session");
    cr_assert_geq(c.handshakes, 2 * c.opens, "each handshake took its two steps");
    cr_assert_gt(c.bytes_in, 0);
    redkv_close(s);
    cr_assert_eq(c.closes, c.opens, "every session was closed");
    char out[64];
    SRV(&srv, out, "GET", "LITESTAR:hook");
    cr_assert_str_eq(out, "through the hook");
    srv_stop(&srv);
}

Test(tls_hook, open_and_handshake_failures_are_etls_in_the_hooks_words, .timeout = 60)
{
    test_server srv;
    char msg[512];
    counting c = {.refuse_open = "the secure element is locked"};
    redkv_transport tp = counting_transport(&c);
    cr_assert_eq(srv_start(&srv, NULL), 0);
    redkv_options o = {.url = srv.url, .transport = &tp};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_ETLS);
    cr_assert(strstr(msg, "the secure element is locked"), "%s", msg);
    c.refuse_open = NULL;
    c.refuse_handshake = "certificate pinned elsewhere";
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_ETLS);
    cr_assert(strstr(msg, "certificate pinned elsewhere"), "%s", msg);
    cr_assert_eq(c.closes, c.opens, "a failed session was closed");
    cr_assert_eq(SRV_NUM(&srv, "DBSIZE"), 0, "nothing was written past a failed handshake");
    srv_stop(&srv);
}

#if !defined(REDKV_TLS_MBEDTLS) && !defined(REDKV_TLS_OPENSSL)

/* ---- the default build: no TLS, and it says how to get it ------------------------------- */

Test(tls_none, rediss_is_econfig_saying_how_to_build_tls)
{
    redkv *s = NULL;
    redkv_options o = {.url = "rediss://127.0.0.1:6380?ssl_ca_certs=/nonexistent/ca.pem"};
    cr_assert_eq(redkv_open(&s, &o), REDKV_ECONFIG);
    cr_assert(strstr(redkv_last_error(), "make TLS="), "%s", redkv_last_error());
    cr_assert_null(s);
}

#else

/* ---- TLS builds ---------------------------------------------------------------------------- */

static tls_server ts;

static int try_url(const char *url, char *msg, size_t cap)
{
    redkv_options o = {.url = url};
    return try_store(&o, msg, cap);
}

static void tls_up(void)
{
    cr_assert_eq(tls_certs_make(), 0);
    cr_assert_eq(tls_srv_start(&ts, "server", "no", NULL), 0);
}

static void tls_down(void)
{
    tls_srv_stop(&ts);
    tls_certs_remove();
}

TestSuite(tls, .init = tls_up, .fini = tls_down, .timeout = 60);

/* rediss://host:port?ssl_ca_certs=<ca>[&more] for the suite's server. */
static const char *url_for(const char *host, int port, const char *ca, const char *more)
{
    static char url[700];
    snprintf(url, sizeof url, "rediss://%s:%d?ssl_ca_certs=%s%s%s", host, port, tls_path(ca),
             more ? "&" : "", more ? more : "");
    return url;
}

Test(tls, store_operations)
{
    redkv *s;
    redkv_options o = {.url = ts.url, .command_timeout_ms = 2000};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_assert_eq(set_str(s, "a", "1", 0), REDKV_OK, "%s", redkv_last_error());
    cr_assert_eq(set_str(s, "b", "2", 60000), REDKV_OK);
    cr_assert_str_eq(get_str(s, "a"), "1");
    int64_t ms = 0;
    cr_assert_eq(redkv_expires_in(s, "a", 1, &ms), REDKV_PERSISTENT);
    cr_assert_eq(redkv_expires_in(s, "b", 1, &ms), REDKV_OK);
    cr_assert(ms > 0 && ms <= 60000);
    char buf[8];
    size_t n;
    cr_assert_eq(redkv_get_into(s, "b", 1, 3600000, buf, sizeof buf, &n), REDKV_OK);
    cr_assert_gt(SRV_NUM(&ts.srv, "PTTL", "LITESTAR:b"), 60000, "renewed over TLS");
    cr_assert_eq(redkv_exists(s, "a", 1), 1);
    cr_assert_eq(redkv_delete(s, "a", 1), REDKV_OK);
    cr_assert_eq(redkv_exists(s, "a", 1), 0);
    cr_assert_eq(SRV_NUM(&ts.srv, "SET", "OTHER:k", "v"), 0);
    cr_assert_eq(redkv_delete_all(s), REDKV_OK);
    cr_assert_eq(SRV_NUM(&ts.srv, "EXISTS", "LITESTAR:b"), 0);
    cr_assert_eq(SRV_NUM(&ts.srv, "EXISTS", "OTHER:k"), 1, "delete_all kept to its namespace");
    /* A value larger than a TLS record (16 KiB) both ways. */
    size_t big_len = 300000;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7);
    cr_assert_eq(redkv_set(s, "big", 3, big, big_len, 0, 0), REDKV_OK);
    void *val;
    size_t vlen;
    cr_assert_eq(redkv_get(s, "big", 3, 0, &val, &vlen), REDKV_OK);
    cr_assert(vlen == big_len && memcmp(val, big, big_len) == 0);
    redkv_free(val);
    free(big);
    redkv_close(s);
}

/* The poll and epoll examples run unchanged over rediss://: a non-blocking handshake, and
   replies the TLS library already decrypted processed without waiting for the socket. */
Test(tls, poll_and_epoll_examples_run_over_rediss)
{
    const char *names[] = {"examples/poll_loop", "examples/epoll_loop"};
    for (int i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s '%s' >/dev/null", build_path(names[i]), ts.url);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed over TLS", names[i]);
    }
    cr_assert_eq(SRV_NUM(&ts.srv, "EXISTS", "poll_example:key-99"), 1);
    cr_assert_eq(SRV_NUM(&ts.srv, "EXISTS", "epoll_example:key-99"), 1);
}

Test(tls, host_name_gets_sni_and_is_checked)
{
    char msg[512];
    cr_assert_eq(try_url(url_for("localhost", ts.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_OK, "%s", msg);
}

Test(tls, unknown_ca_is_etls)
{
    char msg[512];
    cr_assert_eq(try_url(url_for("127.0.0.1", ts.tls_port, "other-ca.crt", NULL), msg, sizeof msg),
                 REDKV_ETLS);
    cr_assert(strstr(msg, "unknown CA"), "%s", msg);
    cr_assert(strstr(msg, "127.0.0.1"), "names the server: %s", msg);
}

Test(tls, verify_none_and_optional_accept_an_unknown_ca)
{
    char msg[512];
    cr_assert_eq(try_url(url_for("127.0.0.1", ts.tls_port, "other-ca.crt", "ssl_cert_reqs=none"),
                         msg, sizeof msg), REDKV_OK, "%s", msg);
    cr_assert_eq(try_url(url_for("127.0.0.1", ts.tls_port, "other-ca.crt",
                                 "ssl_cert_reqs=optional"), msg, sizeof msg), REDKV_OK, "%s", msg);
    redkv_options o = {.url = url_for("127.0.0.1", ts.tls_port, "other-ca.crt", NULL),
                       .tls_no_verify = true};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_OK, "%s", msg);
}

Test(tls, options_override_the_urls_parameters)
{
    char msg[512];
    redkv_options o = {.url = url_for("127.0.0.1", ts.tls_port, "other-ca.crt", NULL),
                       .tls_ca_file = tls_path("ca.crt")};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_OK, "%s", msg);
    /* the name sent and checked: the option's, not the host's */
    redkv_options named = {.url = ts.url, .tls_server_name = "elsewhere.example"};
    cr_assert_eq(try_store(&named, msg, sizeof msg), REDKV_ETLS);
    cr_assert(strstr(msg, "name mismatch") && strstr(msg, "elsewhere.example"), "%s", msg);
}

Test(tls, name_mismatch_is_etls_unless_the_check_is_off)
{
    tls_server wrong;
    char msg[512];
    cr_assert_eq(tls_srv_start(&wrong, "wrongname", "no", NULL), 0);
    cr_assert_eq(try_url(url_for("127.0.0.1", wrong.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_ETLS);
    cr_assert(strstr(msg, "name mismatch"), "%s", msg);
    cr_assert_eq(try_url(url_for("localhost", wrong.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_ETLS);
    cr_assert(strstr(msg, "name mismatch") && strstr(msg, "localhost"), "%s", msg);
    cr_assert_eq(try_url(url_for("127.0.0.1", wrong.tls_port, "ca.crt", "ssl_check_hostname=false"),
                         msg, sizeof msg), REDKV_OK, "%s", msg);
    redkv_options o = {.url = url_for("127.0.0.1", wrong.tls_port, "ca.crt", NULL),
                       .tls_server_name = "elsewhere.example"};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_OK, "%s", msg);
    /* the check is off, the chain is still verified */
    cr_assert_eq(try_url(url_for("127.0.0.1", wrong.tls_port, "other-ca.crt",
                                 "ssl_check_hostname=false"), msg, sizeof msg), REDKV_ETLS);
    tls_srv_stop(&wrong);
}

/* An address is checked against the certificate's IP entries, not its DNS names. */
Test(tls, address_needs_an_ip_entry)
{
    tls_server dns;
    char msg[512];
    cr_assert_eq(tls_srv_start(&dns, "dnsonly", "no", NULL), 0);
    cr_assert_eq(try_url(url_for("127.0.0.1", dns.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_ETLS);
    cr_assert(strstr(msg, "name mismatch"), "%s", msg);
    cr_assert_eq(try_url(url_for("localhost", dns.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_OK, "%s", msg);
    tls_srv_stop(&dns);
}

Test(tls, expired_certificate_is_etls)
{
    tls_server old;
    char msg[512];
    cr_assert_eq(tls_srv_start(&old, "expired", "no", NULL), 0);
    cr_assert_eq(try_url(url_for("127.0.0.1", old.tls_port, "ca.crt", NULL), msg, sizeof msg),
                 REDKV_ETLS);
    cr_assert(strstr(msg, "expired"), "%s", msg);
    tls_srv_stop(&old);
}

Test(tls, client_certificate_required)
{
    tls_server auth;
    char msg[512];
    cr_assert_eq(tls_srv_start(&auth, "server", "yes", NULL), 0);
    const char *plain = url_for("127.0.0.1", auth.tls_port, "ca.crt", NULL);
    cr_assert_eq(try_url(plain, msg, sizeof msg), REDKV_ETLS);
    cr_assert(strstr(msg, "no client certificate"), "%s", msg);
    char with[1024];
    snprintf(with, sizeof with, "%s&ssl_certfile=%s&ssl_keyfile=%s", plain,
             tls_path("client.crt"), tls_path("client.key"));
    cr_assert_eq(try_url(with, msg, sizeof msg), REDKV_OK, "%s", msg);
    redkv_options o = {.url = plain, .tls_cert_file = tls_path("client.crt"),
                       .tls_key_file = tls_path("client.key")};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_OK, "%s", msg);
    /* a certificate the server's CA did not sign */
    redkv_options bad = {.url = plain, .tls_cert_file = tls_path("other.crt"),
                         .tls_key_file = tls_path("other.key")};
    cr_assert_eq(try_store(&bad, msg, sizeof msg), REDKV_ETLS);
    cr_assert(strstr(msg, "refused"), "%s", msg);
    tls_srv_stop(&auth);
}

Test(tls, files_that_do_not_load_are_econfig_naming_the_file)
{
    char msg[512];
    const char *missing = tls_path("no-such-ca.crt");
    cr_assert_eq(try_url(url_for("127.0.0.1", ts.tls_port, "no-such-ca.crt", NULL), msg, sizeof msg),
                 REDKV_ECONFIG);
    cr_assert(strstr(msg, missing), "%s", msg);
    cr_assert_eq(try_url(url_for("127.0.0.1", ts.tls_port, "garbage.pem", NULL), msg, sizeof msg),
                 REDKV_ECONFIG);
    cr_assert(strstr(msg, "garbage.pem"), "%s", msg);
    cr_assert_null(strstr(msg, "not a certificate"), "never the file's content: %s", msg);
    redkv_options o = {.url = ts.url, .tls_cert_file = tls_path("client.crt"),
                       .tls_key_file = tls_path("server.key")};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_ECONFIG);
    cr_assert(strstr(msg, "does not match"), "%s", msg);
    cr_assert_null(strstr(msg, "PRIVATE KEY"), "%s", msg);
    redkv_options key_only = {.url = ts.url, .tls_key_file = tls_path("client.key")};
    cr_assert_eq(try_store(&key_only, msg, sizeof msg), REDKV_ECONFIG);
}

/* A plain Redis port answers a ClientHello with an error line, or waits for a newline that
   may never come: not TLS, or a timeout, either way within the connect timeout. */
Test(tls, rediss_at_a_plain_port_is_a_clear_error)
{
    char msg[512];
    redkv_options o = {.url = url_for("127.0.0.1", ts.srv.port, "ca.crt", NULL),
                       .connect_timeout_ms = 500};
    int rc = try_store(&o, msg, sizeof msg);
    cr_assert(rc == REDKV_ETLS || rc == REDKV_ETIMEDOUT, "%d: %s", rc, msg);
    cr_assert(strstr(msg, rc == REDKV_ETLS ? "not TLS" : "TLS handshake"), "%s", msg);
}

/* A peer that answers anything with a RESP error line: plainly not TLS. */
static pid_t fake_plain_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            int c = accept(fd, NULL, NULL);
            char buf[512];
            if (c >= 0 && read(c, buf, sizeof buf) > 0 &&
                write(c, "-ERR unknown command\r\n", 22) == 22)
                sleep(30);
            if (c >= 0)
                close(c);
        }
    }
    close(fd);
    return pid;
}

Test(tls, rediss_at_a_peer_answering_plain_resp_says_not_tls)
{
    int port;
    char msg[512];
    pid_t pid = fake_plain_server(&port);
    int rc = try_url(url_for("127.0.0.1", port, "ca.crt", NULL), msg, sizeof msg);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(rc, REDKV_ETLS, "%s", msg);
    cr_assert(strstr(msg, "not TLS"), "%s", msg);
}

Test(tls, plain_url_at_a_tls_port_is_a_clear_error)
{
    char url[128], msg[512];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ts.tls_port);
    redkv_options o = {.url = url, .connect_timeout_ms = 1000, .command_timeout_ms = 1000};
    int rc = try_store(&o, msg, sizeof msg);
    cr_assert_eq(rc, REDKV_ECONN, "%d: %s", rc, msg);
    cr_assert(strstr(msg, url + 8), "names the server: %s", msg);
}

/* A listening socket nobody accepts from: the TCP connect succeeds, the handshake hangs. */
Test(tls, silent_server_times_out_within_the_connect_timeout)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    char msg[512];
    redkv_options o = {.url = url_for("127.0.0.1", ntohs(a.sin_port), "ca.crt", NULL),
                       .connect_timeout_ms = 300, .command_timeout_ms = 5000};
    cr_assert_eq(try_store(&o, msg, sizeof msg), REDKV_ETIMEDOUT, "%s", msg);
    cr_assert(strstr(msg, "TLS handshake"), "%s", msg);
    close(fd);
}

Test(tls, stopped_server_times_out_then_the_store_recovers)
{
    redkv *s;
    redkv_options o = {.url = ts.url, .command_timeout_ms = 300};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    srv_pause(&ts.srv);
    cr_assert_eq(set_str(s, "k", "w", 0), REDKV_ETIMEDOUT);
    srv_resume(&ts.srv);
    const char *v = get_str(s, "k");   /* the timed-out write may or may not have run */
    cr_assert(strcmp(v, "v") == 0 || strcmp(v, "w") == 0, "a new connection works: %s", v);
    redkv_close(s);
}

Test(tls, killed_connection_is_replaced)
{
    redkv *s;
    char out[64];
    redkv_options o = {.url = ts.url, .command_timeout_ms = 2000, .pool_size = 1};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK);
    cr_assert_eq(set_str(s, "k", "v", 0), REDKV_OK, "%s", redkv_last_error());
    SRV(&ts.srv, out, "CLIENT", "KILL", "TYPE", "normal");
    cr_assert_str_eq(out, "1", "our one TLS connection was killed");
    cr_assert_str_eq(get_str(s, "k"), "v", "an idle connection lost is retried on a new one");
    cr_assert_eq(set_str(s, "k", "w", 0), REDKV_OK, "%s", redkv_last_error());
    redkv_close(s);
}

static int run_cli(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1 </dev/null", build_path("redkv"), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(tls, cli_flags)
{
    char args[1024];
    snprintf(args, sizeof args, "--tls --cacert %s -u redis://127.0.0.1:%d set cli-key v",
             tls_path("ca.crt"), ts.tls_port);
    cr_assert_eq(run_cli(args), 0);
    cr_assert_eq(SRV_NUM(&ts.srv, "EXISTS", "LITESTAR:cli-key"), 1);
    snprintf(args, sizeof args, "--tls --cacert %s -u redis://127.0.0.1:%d get cli-key",
             tls_path("other-ca.crt"), ts.tls_port);
    cr_assert_eq(run_cli(args), 3, "ETLS exits 3");
    snprintf(args, sizeof args, "--tls --insecure -u redis://127.0.0.1:%d get cli-key",
             ts.tls_port);
    cr_assert_eq(run_cli(args), 0);
    snprintf(args, sizeof args, "--tls --cacert %s --sni elsewhere.example -u redis://127.0.0.1:%d "
             "get cli-key", tls_path("ca.crt"), ts.tls_port);
    cr_assert_eq(run_cli(args), 3, "--sni names the certificate's expected name");
    tls_server auth;
    cr_assert_eq(tls_srv_start(&auth, "server", "yes", NULL), 0);
    snprintf(args, sizeof args, "--cacert %s --cert %s --key %s -u rediss://127.0.0.1:%d ping",
             tls_path("ca.crt"), tls_path("client.crt"), tls_path("client.key"), auth.tls_port);
    cr_assert_eq(run_cli(args), 0);
    tls_srv_stop(&auth);
}

/* ---- a 3+3 cluster over TLS only ----------------------------------------------------------- */

TestSuite(tls_cluster, .init = cluster_up_tls, .fini = cluster_stop_tls, .timeout = 300);

static void tls_cluster_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n,
                           void *arg)
{
    int *results = arg;                /* [0]: calls, [1]: failures, [2]: values right */
    (void)s, (void)n;
    results[0]++;
    results[1] += status != REDKV_OK;
    results[2] += val && vlen == 5 && memcmp(val, "value", 5) == 0;
}

/* Every node has port 0: nothing reaches it but TLS, so every master answering proves the
   router connected to each over TLS (the seeds' CLUSTER SLOTS names TLS ports only). */
Test(tls_cluster, store_operations_and_an_async_batch_over_rediss_cluster)
{
    redkv *s;
    char key[16];
    redkv_options o = {.url = cluster_url, .command_timeout_ms = 5000};
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(set_str(s, key, "value", 60000), REDKV_OK, "%s", redkv_last_error());
    }
    int masters = 0;
    for (int i = 0; i < NODES; i++)
        if (cluster_is_master(&cluster_node[i]) && SRV_NUM(&cluster_node[i], "DBSIZE") > 0)
            masters++;
    cr_assert_eq(masters, 3, "the keys are spread over the three masters");
    cr_assert_str_eq(get_str(s, "k7"), "value");
    char buf[8];
    size_t n;
    cr_assert_eq(redkv_get_into(s, "k8", 2, 3600000, buf, sizeof buf, &n), REDKV_OK,
                 "the renew script over TLS: %s", redkv_last_error());
    int64_t ms = 0, v = 0;
    cr_assert_eq(redkv_expires_in(s, "k8", 2, &ms), REDKV_OK);
    cr_assert_gt(ms, 60000, "renewed");
    cr_assert_eq(redkv_exists(s, "k9", 2), 1);
    cr_assert_eq(redkv_delete(s, "k9", 2), REDKV_OK);
    cr_assert_eq(redkv_exists(s, "k9", 2), 0);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(redkv_incr(s, "count", 5, 1, 0, &v) == REDKV_OK ? v : -1, i);

    /* one async batch: sets then gets, pipelined to each master */
    int results[3] = {0};
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "a%d", i);
        cr_assert_eq(redkv_set_async(s, key, strlen(key), "value", 5, 0, 0, tls_cluster_cb,
                                     results), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "a%d", i);
        cr_assert_eq(redkv_get_async(s, key, strlen(key), 0, tls_cluster_cb, results), 0);
    }
    drive(s, 30000);
    cr_assert_eq(results[0], 200, "every callback once");
    cr_assert_eq(results[1], 0, "no failure: %s", redkv_last_error());
    cr_assert_eq(results[2], 100, "every get saw its value");

    cr_assert_eq(redkv_delete_all(s), REDKV_OK, "%s", redkv_last_error());
    for (int i = 0; i < NODES; i++)
        if (cluster_is_master(&cluster_node[i]))
            cr_assert_eq(SRV_NUM(&cluster_node[i], "DBSIZE"), 0);
    redkv_close(s);
}

#endif
