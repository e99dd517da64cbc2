/* test_cli.c - the redkv tool, run as a subprocess against a private redis-server: each
 * command and exit code, binary values through stdin and stdout, bad input (refused with
 * nothing sent), unreachable and stalled servers, $REDKV_URL and $REDKV_PASSWORD, durations,
 * namespaces, and delete-all's progress on a terminal. */
#define _XOPEN_SOURCE 700           /* posix_openpt and friends */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "fixture.h"
#include "redkv.h"
#include "resp.h"

extern char **environ;

static test_server srv;
static void up(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(srv_start(&srv, NULL), 0, "redis-server must start");
}
static void down(void) { srv_stop(&srv); }

TestSuite(cli, .init = up, .fini = down, .timeout = 60);

#define PASSWORD "s3cret-Pw-4711"
static void up_auth(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(srv_start(&srv, (const char *const[]){"--requirepass", PASSWORD, NULL}), 0);
}

TestSuite(cli_auth, .init = up_auth, .fini = down, .timeout = 60);

/* ---- running the tool ---------------------------------------------------------------- */

typedef struct run {
    int code;                 /* exit status, or 128 + the signal */
    char *out, *err;          /* NUL-terminated (binary output: use outlen) */
    size_t outlen, errlen;
    long long ms;             /* how long it ran */
    size_t in_taken;          /* bytes of standard input written before the tool quit or ended */
} run;

typedef struct run_opts {
    const void *in;           /* standard input (NULL: empty) */
    size_t inlen;
    const char *const *env;   /* "NAME=value" to set, or "NAME" to unset; REDKV_URL defaults to
                                 the server's, REDKV_PASSWORD to unset */
    int tty_stderr;           /* standard error on a pseudo-terminal */
    unsigned closed_fds;      /* bit n: descriptor n (0, 1, 2) is closed when the tool starts */
    size_t out_limit;         /* > 0: stop reading standard output after this many bytes */
    rlim_t address_space;     /* > 0: the tool's RLIMIT_AS, in bytes */
} run_opts;

static int slow(void) { return getenv("REDKV_VALGRIND") != NULL; }

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        cr_assert_not_null(*buf);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
}

static int env_named(const char *entry, const char *name)
{
    size_t n = strcspn(name, "=");
    return !strncmp(entry, name, n) && (entry[n] == '=' || entry[n] == 0);
}

/* The environment: ours without REDKV_*, then the defaults, then o->env. */
static char **make_env(const run_opts *o, char *url_entry)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    for (const char *const *e = o->env; e && *e; e++)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    int url_given = 0;
    for (const char *const *e = o->env; e && *e; e++)
        url_given |= env_named(*e, "REDKV_URL");
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "REDKV_URL=", 10) && strncmp(*e, "REDKV_PASSWORD=", 15))
            env[k++] = *e;
    if (!url_given)
        env[k++] = url_entry;
    for (const char *const *e = o->env; e && *e; e++)
        if (strchr(*e, '='))
            env[k++] = (char *)*e;
    env[k] = NULL;
    return env;
}

static run run_cli(const run_opts *o, const char *const *args)
{
    run r = {0};
    char exe[512], url_entry[128];
    const char *argv[64];
    int in[2], out[2], err[2], master = -1;
    size_t n = 0, outcap = 0, errcap = 0, written = 0;
    snprintf(exe, sizeof exe, "%s", build_path("redkv"));
    snprintf(url_entry, sizeof url_entry, "REDKV_URL=%s", srv.url);
    argv[n++] = "redkv";
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    char **env = make_env(o, url_entry);
    cr_assert(pipe(in) == 0 && pipe(out) == 0 && pipe(err) == 0);
    if (o->tty_stderr) {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
        close(err[1]);
        err[1] = open(ptsname(master), O_RDWR | O_NOCTTY);
        cr_assert(err[1] >= 0);
        close(err[0]);
        err[0] = master;
    }
    long long t0 = now_ms();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int fd = 3; fd < 256; fd++)
            close(fd);
        for (int fd = 0; fd <= 2; fd++)
            if (o->closed_fds & (1u << fd))
                close(fd);
        struct rlimit as = {o->address_space, o->address_space};
        if (o->address_space && setrlimit(RLIMIT_AS, &as) != 0)
            _exit(126);
        execve(exe, (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (!o->in || !o->inlen) {
        close(in[1]);
        in[1] = -1;
    }
    int open_out = 1, open_err = 1;
    while (open_out || open_err || in[1] >= 0) {
        struct pollfd p[3] = {{open_out ? out[0] : -1, POLLIN, 0}, {open_err ? err[0] : -1, POLLIN, 0},
                              {in[1], POLLOUT, 0}};
        int ready = poll(p, 3, 30000);
        cr_assert(ready > 0, "the tool hung");
        char buf[65536];
        if (p[0].revents) {
            ssize_t got = read(out[0], buf, sizeof buf);
            if (got > 0)
                append(&r.out, &r.outlen, &outcap, buf, (size_t)got);
            if (got <= 0 || (o->out_limit && r.outlen >= o->out_limit)) {
                open_out = 0;      /* a reader that goes away, as `| head -c N` does */
                close(out[0]);
            }
        }
        if (p[1].revents) {
            ssize_t got = read(err[0], buf, sizeof buf);
            if (got > 0)
                append(&r.err, &r.errlen, &errcap, buf, (size_t)got);
            else
                open_err = 0;          /* 0 from a pipe, EIO from a pty: the child is gone */
        }
        if (in[1] >= 0 && p[2].revents) {
            ssize_t put = write(in[1], (const char *)o->in + written, o->inlen - written);
            if (put > 0)
                written += (size_t)put;
            if (put < 0 && errno != EAGAIN) {
                close(in[1]);
                in[1] = -1;
            } else if (written == o->inlen) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    close(err[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    r.ms = now_ms() - t0;
    r.in_taken = written;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (!r.out)
        append(&r.out, &r.outlen, &outcap, "", 0);
    if (!r.err)
        append(&r.err, &r.errlen, &errcap, "", 0);
    return r;
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* Runs the tool with no input and the default environment. */
#define CLI(...) run_cli(&(run_opts){0}, ARGS(__VA_ARGS__))
#define CLI_ENV(envlist, ...) run_cli(&(run_opts){.env = (envlist)}, ARGS(__VA_ARGS__))
#define CLI_IN(data, len, ...) run_cli(&(run_opts){.in = (data), .inlen = (len)}, ARGS(__VA_ARGS__))

/* Exit code and, unless want_out is NULL, the whole of stdout; the stderr in the message. */
static void expect(const run *r, int want_code, const char *want_out, int line)
{
    cr_assert_eq(r->code, want_code, "line %d: exit %d, want %d; stderr: %s", line, r->code,
                 want_code, r->err);
    if (want_out)
        cr_assert(r->outlen == strlen(want_out) && !memcmp(r->out, want_out, r->outlen),
                  "line %d: stdout [%s], want [%s]", line, r->out, want_out);
}
#define EXPECT(r, code, out) expect(&(r), (code), (out), __LINE__)

static int contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(hay + i, needle, n))
            return 1;
    return 0;
}

/* An error: exactly one line on stderr, "redkv: ...". */
static void expect_one_line_error(const run *r)
{
    cr_assert(r->errlen > 7 && !strncmp(r->err, "redkv: ", 7), "stderr: [%s]", r->err);
    cr_assert(strchr(r->err, '\n') == r->err + r->errlen - 1, "not one line: [%s]", r->err);
}

static long long srv_int(const char *const *argv)
{
    char out[256];
    cr_assert_eq(srv_call(&srv, out, sizeof out, argv), RESP_INTEGER, "%s", out);
    return atoll(out);
}
#define SRV_INT(...) srv_int(ARGS(__VA_ARGS__))

static const char *srv_get(const char *key)
{
    static char out[4096];
    int type = SRV(&srv, out, "GET", key);
    return type == RESP_NIL ? NULL : out;
}

/* Connections the server has accepted so far (this call's own included). */
static long long connections(void)
{
    static char out[16384];
    cr_assert_eq(SRV(&srv, out, "INFO", "stats"), RESP_BULK);
    const char *p = strstr(out, "total_connections_received:");
    cr_assert_not_null(p);
    return atoll(p + strlen("total_connections_received:"));
}

/* ---- help and the commands ------------------------------------------------------------- */

Test(cli, help)
{
    const char *const *forms[] = {ARGS("--help"), ARGS("-h"), ARGS("-n", "X", "--help"),
                                  ARGS("set", "--help"), ARGS("get", "k", "-h")};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        run r = run_cli(&(run_opts){0}, forms[i]);
        EXPECT(r, 0, NULL);
        cr_assert(strstr(r.out, "Usage: redkv [OPTIONS] COMMAND"), "%s", r.out);
        cr_assert(strstr(r.out, "expires-in KEY") && strstr(r.out, "EXIT:"));
        cr_assert_eq(r.errlen, 0);
        run_free(&r);
    }
}

Test(cli, no_command)
{
    run r = CLI("-n", "APP");
    EXPECT(r, 2, "");
    expect_one_line_error(&r);
    run_free(&r);
}

Test(cli, set_get_delete)
{
    run r = CLI("set", "k", "hello world");
    EXPECT(r, 0, "");
    cr_assert_eq(r.errlen, 0);
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:k"), "hello world");
    cr_assert_eq(SRV_INT("PTTL", "LITESTAR:k"), -1, "no expiry without --expires-in");

    r = CLI("get", "k");
    EXPECT(r, 0, "hello world");             /* as is: no newline added */
    run_free(&r);

    r = CLI("delete", "k");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_null(srv_get("LITESTAR:k"));

    r = CLI("get", "k");                      /* missing: exit 1, nothing on stdout */
    EXPECT(r, 1, "");
    expect_one_line_error(&r);
    run_free(&r);

    r = CLI("delete", "k");                   /* a missing key is no error */
    EXPECT(r, 0, "");
    run_free(&r);
}

Test(cli, exists)
{
    SRV(&srv, (char[64]){0}, "SET", "LITESTAR:here", "1");
    run r = CLI("exists", "here");
    EXPECT(r, 0, "true\n");
    run_free(&r);
    r = CLI("exists", "gone");
    EXPECT(r, 1, "false\n");
    cr_assert_eq(r.errlen, 0);
    run_free(&r);
}

Test(cli, ping)
{
    run r = CLI("ping");
    EXPECT(r, 0, "PONG\n");
    run_free(&r);
    r = CLI("--no-namespace", "ping");
    EXPECT(r, 0, "PONG\n");
    run_free(&r);
}

Test(cli, expires_in_rounds_up)
{
    char out[64];
    SRV(&srv, out, "SET", "LITESTAR:p", "v");
    run r = CLI("expires-in", "p");
    EXPECT(r, 0, "persistent\n");
    run_free(&r);

    /* Seconds left, rounded up; under valgrind a run may take seconds. */
    static const struct { const char *dur; long want; } cases[] = {
        {"10", 10}, {"1500ms", 2}, {"100.5s", 101},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        r = CLI("set", "t", "v", "--expires-in", cases[i].dur);
        EXPECT(r, 0, "");
        run_free(&r);
        r = CLI("expires-in", "t");
        if (slow() && r.code == 1) {          /* gone already */
            run_free(&r);
            continue;
        }
        EXPECT(r, 0, NULL);
        long got = atol(r.out);
        cr_assert(r.out[r.outlen - 1] == '\n' && got <= cases[i].want &&
                      got >= (slow() ? 1 : cases[i].want),
                  "%s: printed %s", cases[i].dur, r.out);
        run_free(&r);
    }

    SRV(&srv, out, "SET", "LITESTAR:brief", "v", "PX", slow() ? "900" : "300");
    r = CLI("expires-in", "brief");
    if (!slow() || r.code == 0)
        EXPECT(r, 0, "1\n");                  /* a live key never prints 0 */
    run_free(&r);

    r = CLI("expires-in", "nosuch");
    EXPECT(r, 1, "");
    expect_one_line_error(&r);
    run_free(&r);
}

Test(cli, durations)
{
    static const struct { const char *dur; long long ms; } cases[] = {
        {"30", 30000},     {"1.5s", 1500},     {"500ms", 500},     {"10m", 600000},
        {"2h", 7200000},   {"3d", 259200000},  {"1.5", 1500},      {"0.5m", 30000},
        {"1.25h", 4500000}, {"2.5ms", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run r = CLI("set", "d", "v", "--expires-in", cases[i].dur);
        if (cases[i].ms < 0) {                /* finer than a millisecond */
            EXPECT(r, 2, "");
            run_free(&r);
            continue;
        }
        EXPECT(r, 0, "");
        run_free(&r);
        long long pttl = SRV_INT("PTTL", "LITESTAR:d");
        cr_assert(pttl <= cases[i].ms && (slow() || pttl > cases[i].ms - 400),
                  "%s: PTTL %lld, want %lld",
                  cases[i].dur, pttl, cases[i].ms);
    }
}

Test(cli, keep_ttl)
{
    run r = CLI("set", "k", "one", "--expires-in", "100s");
    EXPECT(r, 0, "");
    run_free(&r);
    r = CLI("set", "k", "two", "--keep-ttl");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:k"), "two");
    long long pttl = SRV_INT("PTTL", "LITESTAR:k");
    cr_assert(pttl > 90000 && pttl <= 100000, "PTTL %lld", pttl);
    r = CLI("set", "k", "three");              /* without it, the expiry goes */
    run_free(&r);
    cr_assert_eq(SRV_INT("PTTL", "LITESTAR:k"), -1);
}

Test(cli, renew_for)
{
    run r = CLI("set", "k", "v", "--expires-in", "10s");
    run_free(&r);
    r = CLI("get", "k", "--renew-for", "1h");
    EXPECT(r, 0, "v");
    run_free(&r);
    long long pttl = SRV_INT("PTTL", "LITESTAR:k");
    cr_assert(pttl > 3590000 && pttl <= 3600000, "PTTL %lld", pttl);

    r = CLI("--renew-for=2s", "get", "k");     /* an option of get, before the command: no */
    EXPECT(r, 2, "");
    run_free(&r);

    char out[64];
    SRV(&srv, out, "SET", "LITESTAR:forever", "v");
    r = CLI("get", "--renew-for", "1h", "forever");
    EXPECT(r, 0, "v");
    run_free(&r);
    cr_assert_eq(SRV_INT("PTTL", "LITESTAR:forever"), -1, "a persistent key stays so");
}

/* ---- binary values ---------------------------------------------------------------------- */

Test(cli, binary_round_trip_through_stdin_and_stdout)
{
    size_t len = (1u << 20) + 7;               /* every byte value, NULs, a little over 1 MiB */
    unsigned char *val = malloc(len);
    for (size_t i = 0; i < len; i++)
        val[i] = (unsigned char)(i * 7 + i / 256);
    val[0] = 0;
    run r = CLI_IN(val, len, "set", "blob", "-");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_eq(SRV_INT("STRLEN", "LITESTAR:blob"), (long long)len);

    r = CLI("get", "blob");
    EXPECT(r, 0, NULL);
    cr_assert_eq(r.outlen, len);
    cr_assert(memcmp(r.out, val, len) == 0, "the value came back changed");
    run_free(&r);

    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    r = CLI_IN(all, sizeof all, "set", "bytes", "-");
    EXPECT(r, 0, "");
    run_free(&r);
    r = CLI("get", "bytes");
    cr_assert_eq(r.outlen, 256);
    cr_assert(memcmp(r.out, all, 256) == 0);
    run_free(&r);
    free(val);
}

Test(cli, empty_value_from_stdin)
{
    run r = CLI_IN(NULL, 0, "set", "empty", "-");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_eq(SRV_INT("EXISTS", "LITESTAR:empty"), 1);
    r = CLI("get", "empty");
    EXPECT(r, 0, "");
    cr_assert_eq(r.outlen, 0);
    run_free(&r);
}

Test(cli, value_with_newlines_is_written_as_is)
{
    run r = CLI("set", "k", "a\nb\n\n");
    run_free(&r);
    r = CLI("get", "k");
    EXPECT(r, 0, "a\nb\n\n");
    run_free(&r);
}

/* ---- "--", namespaces --------------------------------------------------------------- */

Test(cli, double_dash_ends_options)
{
    run r = CLI("set", "--", "-k", "--v");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:-k"), "--v");
    r = CLI("get", "--", "-k");
    EXPECT(r, 0, "--v");
    run_free(&r);
    r = CLI("--", "exists", "-k");              /* before the command too */
    EXPECT(r, 0, "true\n");
    run_free(&r);
    r = CLI_IN("from stdin", 10, "set", "--", "-x", "-");   /* "-" still reads stdin */
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:-x"), "from stdin");
    r = CLI("set", "--keep-ttl", "--", "--keep-ttl", "v");  /* an option, then a key */
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:--keep-ttl"), "v");

    r = CLI("set", "-k", "v");                 /* without "--": an unknown option */
    EXPECT(r, 2, "");
    expect_one_line_error(&r);
    run_free(&r);
    cr_assert_null(srv_get("LITESTAR:v"));
}

Test(cli, namespaces_and_children)
{
    run r = CLI("-n", "APP", "-c", "a", "--child", "b", "set", "k", "v");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("APP_a_b:k"), "v");
    r = CLI("--namespace=APP", "-ca", "-c", "b", "get", "k");
    EXPECT(r, 0, "v");
    run_free(&r);

    r = CLI("--no-namespace", "set", "bare", "v");
    run_free(&r);
    cr_assert_str_eq(srv_get("bare"), "v");
    r = CLI("--no-namespace", "-c", "kid", "set", "k", "v");
    run_free(&r);
    cr_assert_str_eq(srv_get("kid:k"), "v");
    r = CLI("-c", "kid", "set", "k", "v");     /* under the default namespace */
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR_kid:k"), "v");
}

Test(cli, delete_all_spares_siblings)
{
    char out[64];
    const char *keys[] = {"APP:1", "APP_c:2", "APP_c_d:3", "APPX:4", "APP_x", "other", "APP"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        SRV(&srv, out, "SET", keys[i], "v");

    run r = CLI("-n", "APP", "-c", "c", "delete-all");
    EXPECT(r, 0, "");
    cr_assert_eq(r.errlen, 0, "no progress when stderr is no terminal: %s", r.err);
    run_free(&r);
    cr_assert_null(srv_get("APP_c:2"));
    cr_assert_null(srv_get("APP_c_d:3"));
    cr_assert_not_null(srv_get("APP:1"));

    r = CLI("-n", "APP", "delete-all");
    EXPECT(r, 0, "");
    cr_assert_eq(r.errlen, 0);
    run_free(&r);
    cr_assert_null(srv_get("APP:1"));
    cr_assert_not_null(srv_get("APPX:4"), "a sibling survives");
    cr_assert_not_null(srv_get("APP_x"), "no colon: no descendant");
    cr_assert_not_null(srv_get("other"));
    cr_assert_not_null(srv_get("APP"));
}

Test(cli, delete_all_shows_progress_on_a_terminal)
{
    char out[64];
    cr_assert_eq(SRV(&srv, out, "EVAL",
                     "for i = 1, 2500 do redis.call('SET', 'APP:' .. i, 'v') end return 1", "0"),
                 RESP_INTEGER, "%s", out);
    SRV(&srv, out, "SET", "APPX:keep", "v");
    run r = run_cli(&(run_opts){.tty_stderr = 1}, ARGS("-n", "APP", "delete-all"));
    EXPECT(r, 0, "");
    cr_assert(strstr(r.err, "deleted 2500 keys"), "stderr: [%s]", r.err);
    cr_assert(r.errlen && r.err[r.errlen - 1] == '\n', "the progress line is ended");
    run_free(&r);
    cr_assert_eq(SRV_INT("DBSIZE"), 1);
}

Test(cli, databases)
{
    run r = CLI("--db", "3", "set", "k", "in-3");
    EXPECT(r, 0, "");
    run_free(&r);
    r = CLI("get", "k");
    EXPECT(r, 1, "");
    run_free(&r);
    r = CLI("--db=3", "get", "k");
    EXPECT(r, 0, "in-3");
    run_free(&r);
    char out[64];
    SRV(&srv, out, "EVAL", "redis.call('SELECT', 3) return redis.call('GET', KEYS[1])", "1",
        "LITESTAR:k");
    cr_assert_str_eq(out, "in-3");

    r = CLI("--db", "999", "ping");            /* SELECT refused: exit 3 */
    EXPECT(r, 3, "");
    expect_one_line_error(&r);
    run_free(&r);
}

/* ---- bad input: exit 2, one line, nothing sent -------------------------------------- */

Test(cli, bad_input_is_refused_before_anything_is_sent, .timeout = 600)
{
    const char *const *cases[] = {
        ARGS("set", "bad", "v", "--expires-in", "soon"),
        ARGS("set", "bad", "v", "--expires-in", "-5"),
        ARGS("set", "bad", "v", "--expires-in", "1.5.5s"),
        ARGS("set", "bad", "v", "--expires-in", ""),
        ARGS("set", "bad", "v", "--expires-in", "0"),
        ARGS("set", "bad", "v", "--expires-in", "10x"),
        ARGS("set", "bad", "v", "--expires-in", "5 s"),
        ARGS("set", "bad", "v", "--expires-in", ".5s"),
        ARGS("set", "bad", "v", "--expires-in", "99999999999999999999"),
        ARGS("set", "bad", "v", "--expires-in", "10", "--keep-ttl"),
        ARGS("set", "bad", "v", "--keep-ttl", "--expires-in=10"),
        ARGS("set", "bad", "v", "--keep-ttl=yes"),
        ARGS("set", "bad", "v", "--expires-in"),
        ARGS("set", "bad"),
        ARGS("set", "bad", "v", "extra"),
        ARGS("set", "bad", "v", "--renew-for", "1s"),
        ARGS("set", "bad", "v", "--url", "redis://127.0.0.1:1"),
        ARGS("set", "bad", "v", "--bogus"),
        ARGS("--bogus", "set", "bad", "v"),
        ARGS("-x", "set", "bad", "v"),
        ARGS("--expires-in", "5", "set", "bad", "v"),
        ARGS("frobnicate", "bad"),
        ARGS("--", "--url", "x", "set", "bad", "v"),
        ARGS("--", "set", "bad", "v", "--expires-in", "10"),   /* no options after "--" */
        ARGS("--timeout", "abc", "set", "bad", "v"),
        ARGS("--timeout", "0", "set", "bad", "v"),
        ARGS("--timeout", "-1", "set", "bad", "v"),
        ARGS("--port", "0", "set", "bad", "v"),
        ARGS("--port", "70000", "set", "bad", "v"),
        ARGS("--db", "-1", "set", "bad", "v"),
        ARGS("--db", "x", "set", "bad", "v"),
        ARGS("-n", "", "set", "bad", "v"),
        ARGS("-c", "", "set", "bad", "v"),
        ARGS("-n", "LITESTAR", "--no-namespace", "set", "bad", "v"),
        ARGS("-u", "ftp://127.0.0.1", "set", "bad", "v"),
        ARGS("-u", "redis://127.0.0.1:99999", "set", "bad", "v"),
        ARGS("-u", "redis://127.0.0.1/x", "set", "bad", "v"),
        ARGS("get", "bad", "--renew-for", "later"),
        ARGS("get", "bad", "--expires-in", "1"),
        ARGS("get"),
        ARGS("delete", "bad", "more"),
        ARGS("delete-all", "bad"),
        ARGS("ping", "bad"),
        ARGS("--no-namespace", "delete-all"),
        ARGS("-u"),
        ARGS("-n"),
    };
    SRV(&srv, (char[64]){0}, "SET", "keep", "me");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long long before = connections();
        run r = run_cli(&(run_opts){0}, cases[i]);
        cr_assert_eq(r.code, 2, "case %zu (%s %s ...): exit %d, stderr: %s", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "", r.code, r.err);
        cr_assert_eq(r.outlen, 0, "case %zu: stdout [%s]", i, r.out);
        expect_one_line_error(&r);
        run_free(&r);
        cr_assert_eq(connections(), before + 1, "case %zu reached the server", i);
        cr_assert_null(srv_get("LITESTAR:bad"), "case %zu", i);
    }
    cr_assert_str_eq(srv_get("keep"), "me", "delete-all with no namespace deleted nothing");
}

/* ---- exit 3 and 4 ----------------------------------------------------------------------- */

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(cli, unreachable_server_exits_3_fast)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed_port());
    const char *const *cmds[] = {ARGS("-u", url, "ping"), ARGS("-u", url, "get", "k"),
                                 ARGS("-u", url, "set", "k", "v"), ARGS("-u", url, "delete-all")};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        run r = run_cli(&(run_opts){0}, cmds[i]);
        EXPECT(r, 3, "");
        expect_one_line_error(&r);
        cr_assert(r.ms < (slow() ? 20000 : 1000), "took %lld ms", r.ms);
        run_free(&r);
    }
    run r = CLI_ENV(ARGS("REDKV_URL=unix:///nonexistent/redis.sock"), "ping");
    EXPECT(r, 3, "");
    run_free(&r);
}

Test(cli, stalled_server_times_out_with_exit_3)
{
    srv_pause(&srv);
    run r = CLI("--timeout", "300", "get", "k");
    srv_resume(&srv);
    EXPECT(r, 3, "");
    expect_one_line_error(&r);
    cr_assert(r.ms >= 250 && r.ms < (slow() ? 20000 : 2000), "took %lld ms", r.ms);
    run_free(&r);
}

Test(cli, server_error_exits_4)
{
    char out[64];
    SRV(&srv, out, "RPUSH", "LITESTAR:list", "a");
    run r = CLI("get", "list");
    EXPECT(r, 4, "");
    expect_one_line_error(&r);
    cr_assert(strstr(r.err, "WRONGTYPE"), "%s", r.err);
    run_free(&r);
    r = CLI("get", "list", "--renew-for", "10s");   /* through the script */
    EXPECT(r, 4, "");
    expect_one_line_error(&r);
    run_free(&r);
}

/* A fake server that answers anything with bytes that break RESP. */
Test(cli, protocol_error_exits_4)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    cr_assert(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        alarm(20);
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            char buf[4096];
            if (fd < 0)
                _exit(0);
            if (read(fd, buf, sizeof buf) > 0 && write(fd, "?garbage\r\n", 10) < 0)
                _exit(1);
            usleep(100000);
            close(fd);
        }
    }
    close(lfd);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    run r = CLI("-u", url, "get", "k");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    EXPECT(r, 4, "");
    expect_one_line_error(&r);
    run_free(&r);
}

/* ---- the environment and passwords -------------------------------------------------- */

Test(cli, url_from_the_environment_and_the_option)
{
    char bad[64];
    snprintf(bad, sizeof bad, "REDKV_URL=redis://127.0.0.1:%d", closed_port());
    run r = CLI_ENV(ARGS(bad), "ping");
    EXPECT(r, 3, "");
    run_free(&r);
    r = CLI_ENV(ARGS(bad), "-u", srv.url, "ping");          /* --url wins */
    EXPECT(r, 0, "PONG\n");
    run_free(&r);
    char unix_env[300];
    snprintf(unix_env, sizeof unix_env, "REDKV_URL=%s", srv.unix_url);
    r = CLI_ENV(ARGS(unix_env), "set", "k", "via-unix");
    EXPECT(r, 0, "");
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:k"), "via-unix");
    r = CLI("--url", srv.unix_url, "get", "k");
    EXPECT(r, 0, "via-unix");
    run_free(&r);
    r = CLI("-u", "redis://127.0.0.1:1", "--port", (char[8]){0}, "ping");   /* empty --port */
    EXPECT(r, 2, "");
    run_free(&r);
}

static void expect_no_password(const run *r, const char *pw)
{
    cr_assert(!contains(r->err, r->errlen, pw), "stderr shows the password: %s", r->err);
    cr_assert(!contains(r->out, r->outlen, pw), "stdout shows the password");
}

Test(cli_auth, password_from_the_environment)
{
    run r = CLI("set", "k", "v");              /* no password: NOAUTH */
    EXPECT(r, 3, "");
    expect_one_line_error(&r);
    run_free(&r);

    r = CLI_ENV(ARGS("REDKV_PASSWORD=" PASSWORD), "set", "k", "secret value");
    EXPECT(r, 0, "");
    run_free(&r);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=" PASSWORD), "get", "k");
    EXPECT(r, 0, "secret value");
    expect_no_password(&r, PASSWORD);
    run_free(&r);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=" PASSWORD), "--user", "default", "ping");
    EXPECT(r, 0, "PONG\n");
    run_free(&r);
}

Test(cli_auth, password_option_and_url)
{
    char url[160];
    run r = CLI("--password", PASSWORD, "ping");
    EXPECT(r, 0, "PONG\n");
    run_free(&r);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=wrong-Env-pw"), "--password", PASSWORD, "ping");
    EXPECT(r, 0, "PONG\n");                    /* the option wins */
    run_free(&r);
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d", PASSWORD, srv.port);
    r = CLI("-u", url, "ping");
    EXPECT(r, 0, "PONG\n");
    expect_no_password(&r, PASSWORD);
    run_free(&r);
    snprintf(url, sizeof url, "redis://:wrong-Url-pw@127.0.0.1:%d", srv.port);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=" PASSWORD), "-u", url, "ping");
    EXPECT(r, 0, "PONG\n");                    /* $REDKV_PASSWORD over the URL's */
    run_free(&r);
}

Test(cli_auth, a_password_is_never_shown)
{
    char url[160];
    const char *pw = "wr0ng-Pa55word";
    run r = CLI("--password", pw, "ping");
    EXPECT(r, 3, "");
    expect_one_line_error(&r);
    expect_no_password(&r, pw);
    run_free(&r);

    r = CLI_ENV(ARGS("REDKV_PASSWORD=wr0ng-Pa55word"), "get", "k");
    EXPECT(r, 3, "");
    expect_no_password(&r, pw);
    run_free(&r);

    snprintf(url, sizeof url, "redis://someone:%s@127.0.0.1:%d/0", pw, srv.port);
    r = CLI("-u", url, "set", "k", "v");
    EXPECT(r, 3, "");
    expect_one_line_error(&r);
    expect_no_password(&r, pw);
    run_free(&r);

    snprintf(url, sizeof url, "redis://someone:%s@127.0.0.1:99999", pw);   /* a bad URL */
    r = CLI("-u", url, "ping");
    EXPECT(r, 2, "");
    expect_no_password(&r, pw);
    run_free(&r);

    r = CLI("--password", pw, pw, "k");        /* a stray password where the command goes */
    EXPECT(r, 2, "");
    expect_no_password(&r, pw);
    run_free(&r);

    r = CLI("--user", "nobody", "--password", PASSWORD, "ping");   /* WRONGPASS */
    EXPECT(r, 3, "");
    expect_no_password(&r, PASSWORD);
    run_free(&r);
}

/* ---- hardening (issue #14) ---------------------------------------------------------------- */

/* The server's command counts since the last CONFIG RESETSTAT, as "get=2 ping=1" (sorted by
   the server; INFO and CONFIG, which the test itself sends, left out). */
static const char *commands_seen(void)
{
    static char out[16384], seen[1024];
    size_t n = 0;
    cr_assert_eq(SRV(&srv, out, "INFO", "commandstats"), RESP_BULK);
    seen[0] = 0;
    for (const char *p = strstr(out, "cmdstat_"); p; p = strstr(p, "cmdstat_")) {
        p += strlen("cmdstat_");
        const char *colon = strchr(p, ':'), *calls = strstr(p, "calls=");
        cr_assert(colon && calls);
        if (!strncmp(p, "info", 4) || !strncmp(p, "config", 6))
            continue;
        n += (size_t)snprintf(seen + n, sizeof seen - n, "%s%.*s=%ld", n ? " " : "",
                              (int)(colon - p), p, atol(calls + 6));
        cr_assert(n < sizeof seen);
    }
    return seen;
}

/* Before the fix, a closed descriptor stayed closed: writing the value failed (exit 4), and
   had a socket taken number 1, the value would have gone to Redis as commands. */
Test(cli, closed_standard_descriptors_are_opened_on_dev_null)
{
    char out[64];
    if (slow())
        return;                /* valgrind's log file takes the closed number: the plain run checks */
    SRV(&srv, out, "SET", "LITESTAR:evil", "SET injected pwned\r\n");
    SRV(&srv, out, "CONFIG", "RESETSTAT");
    static const unsigned closed[] = {1u << 1, 1u << 1 | 1u << 2, 7u};
    for (size_t i = 0; i < sizeof closed / sizeof *closed; i++) {
        run r = run_cli(&(run_opts){.closed_fds = closed[i]}, ARGS("get", "evil"));
        EXPECT(r, 0, "");                      /* the value went to /dev/null */
        cr_assert_eq(r.errlen, 0, "stderr: %s", r.err);
        run_free(&r);
    }
    run r = run_cli(&(run_opts){.closed_fds = 1u << 1}, ARGS("ping"));
    EXPECT(r, 0, "");
    cr_assert_eq(r.errlen, 0, "stderr: %s", r.err);
    run_free(&r);
    r = run_cli(&(run_opts){.closed_fds = 1u << 2}, ARGS("get", "nope"));
    EXPECT(r, 1, "");
    run_free(&r);
    const char *seen = commands_seen();
    /* INFO lists the commands in no fixed order */
    cr_assert(!strcmp(seen, "get=4 ping=1") || !strcmp(seen, "ping=1 get=4"),
              "nothing but the commands asked for: %s", seen);
    cr_assert_eq(SRV_INT("EXISTS", "injected"), 0, "the value reached the server as a command");

    r = run_cli(&(run_opts){.closed_fds = 1u << 0}, ARGS("set", "k", "-"));
    EXPECT(r, 0, "");                          /* a closed stdin reads as empty */
    run_free(&r);
    cr_assert_str_eq(srv_get("LITESTAR:k"), "");
}

/* User text that looks like a URL with a password, or holds a password given anywhere. */
Test(cli, a_password_typed_in_the_wrong_place_is_never_shown)
{
    const char *pw = "hunter2-Xq";
    const char *const *const cases[] = {
        ARGS("redis://:hunter2-Xq@h:6379", "ping"),          /* the URL as the command */
        ARGS("redis://admin:hunter2-Xq@h/0", "ping"),
        ARGS("unix://:hunter2-Xq@/tmp/redis.sock", "ping"),
        ARGS(":hunter2-Xq@h:6379", "ping"),                  /* no scheme */
        ARGS("--redis://:hunter2-Xq@h", "ping"),             /* as an option */
        ARGS("set", "k", "v", "--expires-in", "redis://:hunter2-Xq@h"),
        ARGS("hunter2-Xq", "--password", "hunter2-Xq"),      /* named after the stray one */
        ARGS("--password=hunter2-Xq", "get", "k", "--renew-for", "hunter2-Xq"),
        ARGS("-u", "redis://:hunter2-Xq@127.0.0.1:1", "hunter2-Xq"),
        ARGS("-uredis://u:hunter2-Xq@127.0.0.1:1", "x-hunter2-Xq-x"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run r = run_cli(&(run_opts){0}, cases[i]);
        EXPECT(r, 2, "");
        expect_one_line_error(&r);
        expect_no_password(&r, pw);
        cr_assert(!contains(r.err, r.errlen, "hunter"), "case %zu: %s", i, r.err);
        run_free(&r);
    }
    run r = CLI("redis://:hunter2-Xq@h:6379", "ping");       /* still says what was wrong */
    cr_assert(contains(r.err, r.errlen, "unknown command \"redis://:***@h:6379\""), "%s", r.err);
    run_free(&r);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=hunter2-Xq"), "hunter2-Xq", "k");
    EXPECT(r, 2, "");
    expect_no_password(&r, pw);
    run_free(&r);
    r = CLI_ENV(ARGS("REDKV_PASSWORD=hunter2-Xq"), "set", "k", "v", "--expires-in", "1hunter2-Xq");
    EXPECT(r, 2, "");
    expect_no_password(&r, pw);
    run_free(&r);
}

#define MIB ((size_t)1 << 20)

/* Before the fix, all of standard input was read before the limit was checked. */
Test(cli, a_value_past_max_value_stops_the_reading)
{
    char *data = calloc(1, 2 * MIB);
    cr_assert_not_null(data);
    run r = run_cli(&(run_opts){.in = data, .inlen = 2 * MIB},
                    ARGS("--max-value", "1048576", "set", "k", "-"));
    EXPECT(r, 4, "");
    expect_one_line_error(&r);
    cr_assert(r.in_taken < 2 * MIB, "all %zu bytes were read", r.in_taken);
    cr_assert(r.in_taken > MIB, "only %zu bytes were read", r.in_taken);
    run_free(&r);
    cr_assert_null(srv_get("LITESTAR:k"), "nothing is sent");

    r = run_cli(&(run_opts){.in = data, .inlen = MIB}, ARGS("--max-value", "1048576", "set", "k", "-"));
    EXPECT(r, 0, "");                          /* exactly the limit is fine */
    run_free(&r);
    cr_assert_eq(SRV_INT("STRLEN", "LITESTAR:k"), (long long)MIB);
    free(data);

    r = CLI("--max-value", "4", "set", "k", "hello");      /* on the command line: ETOOBIG */
    EXPECT(r, 4, "");
    run_free(&r);
    r = CLI("--max-value", "1000", "get", "k");            /* a longer stored value */
    EXPECT(r, 4, "");
    cr_assert_eq(r.outlen, 0);
    run_free(&r);
    static const char *const bad[] = {"0", "-1", "1k", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = CLI("--max-value", bad[i], "ping");
        EXPECT(r, 2, "");
        run_free(&r);
    }
}

/* Memory running out while reading standard input is exit 4 (it was 2). A sanitizer or
   valgrind cannot run in a small address space. */
Test(cli, out_of_memory_reading_stdin_exits_4)
{
    if (slow() || getenv("ASAN_OPTIONS"))
        return;                /* runs in the plain `make test` (cr_skip_test leaks, to valgrind) */
    size_t len = 80 * MIB;
    char *data = calloc(1, len);
    cr_assert_not_null(data);
    run r = run_cli(&(run_opts){.in = data, .inlen = len, .address_space = 64 * MIB},
                    ARGS("set", "k", "-"));
    free(data);
    EXPECT(r, 4, "");
    expect_one_line_error(&r);
    cr_assert(contains(r.err, r.errlen, "out of memory"), "%s", r.err);
    run_free(&r);
    cr_assert_null(srv_get("LITESTAR:k"));
}

/* `redkv get big | head -c 10` was killed by SIGPIPE (141). */
Test(cli, a_reader_gone_away_is_exit_4_quietly)
{
    size_t len = 4 * MIB;                      /* far more than a pipe holds */
    char *data = malloc(len);
    cr_assert_not_null(data);
    memset(data, 'x', len);
    run r = CLI_IN(data, len, "set", "big", "-");
    EXPECT(r, 0, "");
    run_free(&r);
    free(data);
    r = run_cli(&(run_opts){.out_limit = 10}, ARGS("get", "big"));
    EXPECT(r, 4, NULL);
    cr_assert_eq(r.errlen, 0, "stderr: %s", r.err);
    run_free(&r);
}

Test(cli, version)
{
    char version[32], want[64];
    snprintf(version, sizeof version, "%d.%d.%d", REDKV_VERSION_MAJOR, REDKV_VERSION_MINOR,
             REDKV_VERSION_PATCH);
    cr_assert_str_eq(redkv_version(), version);
    snprintf(want, sizeof want, "redkv %s\n", version);
    run r = CLI("--version");
    EXPECT(r, 0, want);
    cr_assert_eq(r.errlen, 0);
    run_free(&r);
    r = CLI("--version=1");
    EXPECT(r, 2, "");
    run_free(&r);
    r = CLI("--help");
    cr_assert(contains(r.out, r.outlen, "--version") && contains(r.out, r.outlen, "--max-value"));
    run_free(&r);
}
