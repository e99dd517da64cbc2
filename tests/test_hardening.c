/* test_hardening.c - the library's side of the hardening issue, each against a real peer:
 * a server that echoes our password, a server that refuses clients, a resolver that never
 * answers, a reply that arrives too late for the renew script's resend, and messages that
 * name what went wrong. */
#define _GNU_SOURCE                   /* unshare, CLONE_NEW* */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "hostile.h"

#define TIMEOUT_MS 1000

static redkv *open_with(const char *url, const char *password, int timeout_ms)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = url;
    o.password = password;
    o.connect_timeout_ms = o.command_timeout_ms = timeout_ms;
    cr_assert_eq(redkv_open(&s, &o), REDKV_OK, "%s", redkv_last_error());
    return s;
}

/* ---- a server's words echo our arguments ------------------------------------------------- */

/* With AUTH renamed away, Redis answers "unknown command 'AUTH', with args beginning with:
   'hunter2'": the password must not reach the message, nor the CLI's output. */
Test(hardening, server_text_echoing_the_password_is_redacted, .timeout = 60)
{
    test_server srv;
    cr_assert_eq(srv_start(&srv, (const char *const[]){"--rename-command", "AUTH", "\"\"", NULL}), 0);
    redkv *s = open_with(srv.url, "hunter2", TIMEOUT_MS);
    cr_assert_eq(redkv_ping(s), REDKV_EAUTH);
    const char *msg = redkv_last_error();
    cr_assert_null(strstr(msg, "hunter2"), "%s", msg);
    cr_assert_not_null(strstr(msg, "AUTH refused"), "%s", msg);
    redkv_close(s);

    char url[128], err[512];
    snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d", srv.port);
    int rc = run_cli((const char *const[]){"-u", url, "ping", NULL}, 10000, NULL, 0, err, sizeof err);
    cr_assert_eq(rc, 3, "exit %d: %s", rc, err);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    cr_assert_not_null(strstr(err, "refused"), "%s", err);
    srv_stop(&srv);
}

/* ---- a refusal is a refusal, wherever it shows -------------------------------------------- */

/* A full server (maxclients) says so to whatever command comes first: AUTH with a password,
   the command itself without. Both are a refused connection: ECONN, CLI exit 3. */
Test(hardening, a_full_server_refuses_with_or_without_password, .timeout = 60)
{
    test_server srv;
    cr_assert_eq(srv_start(&srv, (const char *const[]){"--maxclients", "1", "--requirepass",
                                                       "pw", NULL}), 0);
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(hold, (struct sockaddr *)&a, sizeof a), 0);   /* the one client */
    usleep(100000);
    const char *passwords[] = {"pw", NULL};
    for (int i = 0; i < 2; i++) {
        redkv *s = open_with(srv.url, passwords[i], TIMEOUT_MS);
        int rc = redkv_set(s, "k", 1, "v", 1, 0, 0);
        cr_assert_eq(rc, REDKV_ECONN, "password %s: %d (%s)", passwords[i] ? "given" : "none", rc,
                     redkv_last_error());
        cr_assert_not_null(strstr(redkv_last_error(), "max number of clients"), "%s",
                           redkv_last_error());
        redkv_close(s);
        char pw[16];
        snprintf(pw, sizeof pw, "%s", passwords[i] ? passwords[i] : "");
        rc = passwords[i] ? run_cli((const char *const[]){"-u", srv.url, "--password", pw, "ping", NULL},
                                    10000, NULL, 0, NULL, 0)
                          : run_cli((const char *const[]){"-u", srv.url, "ping", NULL}, 10000, NULL,
                                    0, NULL, 0);
        cr_assert_eq(rc, 3, "CLI, password %s: exit %d", passwords[i] ? "given" : "none", rc);
    }
    close(hold);
    srv_stop(&srv);
}

/* ---- one call, one bound -------------------------------------------------------------------- */

/* The renew script's resend after NOSCRIPT shares the call's deadline: a NOSCRIPT that comes
   late and a resend never answered end within one command timeout (it was nearly two). */
Test(hardening, noscript_resend_keeps_the_calls_deadline, .timeout = 60)
{
    static const char noscript[] = "-NOSCRIPT No matching script. Please use EVAL.\r\n";
    /* dripped over about 0.7 of the timeout, then silence */
    hostile_script sc = {noscript, sizeof noscript - 1, H_HANG, 0,
                         (int)(0.7 * TIMEOUT_MS / (sizeof noscript - 1)), 0};
    hostile *h = hostile_start(&sc, 1);
    cr_assert_not_null(h);
    redkv *s = open_with(hostile_url(h), NULL, TIMEOUT_MS);
    char buf[16];
    size_t n;
    long long t0 = now_ms();
    int rc = redkv_get_into(s, "k", 1, 5000, buf, sizeof buf, &n);
    long long took = now_ms() - t0;
    cr_assert_eq(rc, REDKV_ETIMEDOUT, "%d: %s", rc, redkv_last_error());
    cr_assert_geq(took, (long long)(0.6 * TIMEOUT_MS), "the NOSCRIPT came first (%lld ms)", took);
    cr_assert_leq(took, TIMEOUT_MS + slack_ms(), "took %lld ms", took);
    redkv_close(s);
    hostile_stop(h);
}

/* ---- a resolver that never answers ---------------------------------------------------------- */

/* In a network and mount namespace of its own, /etc/resolv.conf points at a UDP socket on
   127.0.0.1:53 that reads nothing: every lookup of a name hangs for the resolver's own
   retries (10 s here). The child reports on the pipe; the parent asserts. */
static int silent_resolver(const char *dir)
{
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0)
        return -1;
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    ioctl(sock, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(sock, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    char conf[256];
    snprintf(conf, sizeof conf, "%s/resolv.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fputs("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n", f);
    fclose(f);
    return mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL);
}

/* In the child: a blocking call, an asynchronous one and the CLI against a name that never
   resolves, each within the connect timeout. Writes "b<ms> <rc>|a<queue ms> <ms> <rc>|c<ms>
   <exit>" to out. */
static void lookups_in_child(int out)
{
    char report[512];
    const char *url = "redis://redkv-hangs.example:6379";
    redkv *s = NULL;
    redkv_options o = {.url = url, .connect_timeout_ms = TIMEOUT_MS, .command_timeout_ms = TIMEOUT_MS};
    redkv_open(&s, &o);
    long long t0 = now_ms();
    int brc = redkv_ping(s);
    long long blocking = now_ms() - t0;
    int looked = strstr(redkv_last_error(), "looking up") != NULL;

    cb_rec r = {0};
    t0 = now_ms();
    int queued = redkv_get_async(s, "k", 1, 0, rec_cb, &r);
    long long queue_ms = now_ms() - t0;
    drive(s, 3 * TIMEOUT_MS);
    long long async_ms = r.at_ms - t0;
    redkv_close(s);

    t0 = now_ms();
    int exit_code = run_cli((const char *const[]){"-u", url, "--timeout", "1000", "ping", NULL},
                            20000, NULL, 0, NULL, 0);
    long long cli_ms = now_ms() - t0;
    int n = snprintf(report, sizeof report, "b%lld %d %d|a%d %lld %lld %d %d|c%lld %d", blocking,
                     brc, looked, queued, queue_ms, async_ms, r.calls, r.status, cli_ms, exit_code);
    ssize_t w = write(out, report, (size_t)n);
    (void)w;
}

/* Under valgrind, forked children that end with _exit (and lookup threads still waiting)
   leave valgrind reports about Criterion's memory: the plain and ASan passes check these. */
static int under_valgrind(void) { return getenv("REDKV_VALGRIND") != NULL; }

Test(hardening, name_lookup_is_bounded_by_the_connect_timeout, .timeout = 120)
{
    if (under_valgrind())
        return;
    char dir[] = "/tmp/redkv-dns-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (silent_resolver(dir) != 0) {
            dprintf(fds[1], "setup failed: %s", strerror(errno));
            _exit(1);
        }
        lookups_in_child(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    char report[512] = "";
    ssize_t got = 0, n;
    while ((n = read(fds[0], report + got, sizeof report - 1 - (size_t)got)) > 0)
        got += n;
    report[got] = 0;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    long long blocking, queue_ms, async_ms, cli_ms;
    int brc, looked, queued, calls, astatus, exit_code;
    cr_assert_eq(sscanf(report, "b%lld %d %d|a%d %lld %lld %d %d|c%lld %d", &blocking, &brc,
                        &looked, &queued, &queue_ms, &async_ms, &calls, &astatus, &cli_ms,
                        &exit_code), 10, "child: %s", report);
    cr_expect_eq(brc, REDKV_ETIMEDOUT, "%s", report);
    cr_expect(looked, "the message says the lookup timed out");
    cr_expect_leq(blocking, TIMEOUT_MS + slack_ms(), "blocking: %lld ms", blocking);
    cr_expect_eq(queued, 0);
    cr_expect_lt(queue_ms, TIMEOUT_MS / 2, "queueing waited for the lookup: %lld ms", queue_ms);
    cr_expect(calls == 1 && astatus == REDKV_ETIMEDOUT, "async: %d calls, status %d", calls,
              astatus);
    cr_expect_leq(async_ms, TIMEOUT_MS + slack_ms(), "async: %lld ms", async_ms);
    cr_expect_eq(exit_code, 3);
    cr_expect_leq(cli_ms, TIMEOUT_MS + slack_ms() + 500, "CLI: %lld ms", cli_ms);
}

/* ---- messages ---------------------------------------------------------------------------------- */

Test(hardening, messages_name_the_byte_the_peer_and_the_port, .timeout = 60)
{
    hostile_script bad = {"?what\r\n", 7, H_CLOSE, 0, 0, 0};
    hostile *h = hostile_start(&bad, 1);
    cr_assert_not_null(h);
    redkv *s = open_with(hostile_url(h), NULL, TIMEOUT_MS);
    cr_assert_eq(redkv_ping(s), REDKV_EPROTO);
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", hostile_port(h));
    cr_assert_not_null(strstr(redkv_last_error(), "type byte 0x3f"), "%s", redkv_last_error());
    cr_assert_not_null(strstr(redkv_last_error(), peer), "%s", redkv_last_error());
    redkv_close(s);
    hostile_stop(h);

    /* a peer that closes before any reply, as a TLS port does with a plain client */
    hostile_script closes = {NULL, 0, H_CLOSE, 0, 0, 0};
    h = hostile_start(&closes, 1);
    s = open_with(hostile_url(h), NULL, TIMEOUT_MS);
    cr_assert_eq(redkv_ping(s), REDKV_ECONN);
    cr_assert_not_null(strstr(redkv_last_error(), "is this a TLS port"), "%s", redkv_last_error());
    redkv_close(s);
    int port = hostile_port(h);
    hostile_stop(h);

    /* nobody listens: the message names host and port */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    s = open_with(url, NULL, TIMEOUT_MS);
    cr_assert_eq(redkv_ping(s), REDKV_ECONN);
    snprintf(peer, sizeof peer, "127.0.0.1:%d", port);
    cr_assert_not_null(strstr(redkv_last_error(), peer), "%s", redkv_last_error());
    /* a clean close leaves the last error alone */
    char before[256];
    snprintf(before, sizeof before, "%s", redkv_last_error());
    redkv_close(s);
    cr_assert_str_eq(redkv_last_error(), before);
}

/* ---- the library's own sockets stay off descriptors 0 to 2 ---------------------------------- */

/* A program that closed its standard output, then printed: had redkv's socket taken number
   1, the text would have reached Redis as a command. */
Test(hardening, a_program_with_stdout_closed_cannot_print_into_redis, .timeout = 60)
{
    if (under_valgrind())
        return;
    test_server srv;
    cr_assert_eq(srv_start(&srv, NULL), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(1);                      /* the lowest free number: a new socket would take it */
        redkv *s = NULL;
        redkv_options o = {.url = srv.url};
        if (redkv_open(&s, &o) != REDKV_OK || redkv_set(s, "k", 1, "v", 1, 0, 0) != REDKV_OK)
            _exit(2);
        printf("SET injected pwned\r\n");
        fflush(stdout);
        char buf[8];
        size_t n;
        int rc = redkv_get_into(s, "k", 1, 0, buf, sizeof buf, &n);
        redkv_close(s);
        _exit(rc == REDKV_OK ? 0 : 3);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", "injected"), 0, "the printed text ran on the server");
    srv_stop(&srv);
}

/* A name (not an address) goes through the lookup thread: blocking and asynchronous calls
   reach the server by it. */
Test(hardening, a_host_name_is_looked_up_and_reached, .timeout = 60)
{
    test_server srv;
    cr_assert_eq(srv_start(&srv, NULL), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://localhost:%d", srv.port);
    redkv *s = open_with(url, NULL, 5000);
    cr_assert_eq(redkv_set(s, "k", 1, "v", 1, 0, 0), REDKV_OK, "%s", redkv_last_error());
    cb_rec r = {0};
    cr_assert_eq(redkv_get_async(s, "k", 1, 0, rec_cb, &r), 0);
    cr_assert_eq(drive(s, 5000), 0);
    cr_assert(r.calls == 1 && r.status == REDKV_OK && r.vlen == 1, "async: %d calls, %d", r.calls,
              r.status);
    redkv_close(s);
    srv_stop(&srv);
}
