/* test_adapters.c - the libuv, libevent and libev adapters, through their example programs
 * (examples/lib*_loop.c) against a real redis-server: a plain batch, a server restart
 * between requests (the adapter must watch the new descriptor), and a stopped server (the
 * adapter's timer must fire so that the requests time out). The examples are built only
 * when their library is installed; CI installs them all, so a missing one fails here. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static test_server srv;

static void up(void) { cr_assert_eq(srv_start(&srv, NULL), 0); }
static void down(void)
{
    srv_resume(&srv);        /* a failed assertion may leave it stopped */
    srv_stop(&srv);
}

TestSuite(adapters, .init = up, .fini = down, .timeout = 60);

/* The built example, or a failed test that says what to install. */
static const char *example_path(const char *name)
{
    static char path[512];
    char rel[64];
    snprintf(rel, sizeof rel, "examples/%s", name);
    snprintf(path, sizeof path, "%s", build_path(rel));
    cr_assert_eq(access(path, X_OK), 0,
                 "%s was not built: install libuv1-dev, libevent-dev and libev-dev, then make", path);
    return path;
}

/* ---- one example in --stream mode: a request pair per line written, a line back each ---- */

typedef struct example {
    pid_t pid;
    FILE *in, *out;
} example;

typedef struct reply {
    long n;
    int set, get, fd;
} reply;

static void example_start(example *ex, const char *name, const char *timeout_ms)
{
    const char *path = example_path(name);
    int to_child[2], from_child[2];
    cr_assert_eq(pipe(to_child), 0);
    cr_assert_eq(pipe(from_child), 0);
    ex->pid = fork();
    cr_assert_neq(ex->pid, -1);
    if (ex->pid == 0) {
        dup2(to_child[0], STDIN_FILENO);
        dup2(from_child[1], STDOUT_FILENO);
        close(to_child[0]); close(to_child[1]); close(from_child[0]); close(from_child[1]);
        execl(path, path, "--stream", "--timeout", timeout_ms, srv.url, (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    /* A server restarted later is forked from here: it must not hold the example's input
       open, or the example never sees its end. */
    fcntl(to_child[1], F_SETFD, FD_CLOEXEC);
    fcntl(from_child[0], F_SETFD, FD_CLOEXEC);
    ex->in = fdopen(to_child[1], "w");
    ex->out = fdopen(from_child[0], "r");
    cr_assert(ex->in && ex->out);
}

/* Asks for request pair n and reads its line: "n SET GET FD". */
static reply example_request(example *ex, long n)
{
    reply r = {-1, 99, 99, -1};
    char line[128];
    fprintf(ex->in, "%ld\n", n);
    fflush(ex->in);
    cr_assert_not_null(fgets(line, sizeof line, ex->out), "the example died before answering %ld", n);
    cr_assert_eq(sscanf(line, "%ld %d %d %d", &r.n, &r.set, &r.get, &r.fd), 4, "bad line: %s", line);
    cr_assert_eq(r.n, n);
    return r;
}

/* Ends its input and returns its exit status. */
static int example_finish(example *ex)
{
    int st;
    char line[128];
    fclose(ex->in);
    while (fgets(line, sizeof line, ex->out))
        cr_log_info("example: %s", line);
    fclose(ex->out);
    cr_assert_eq(waitpid(ex->pid, &st, 0), ex->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void assert_ok(reply r)
{
    cr_assert(r.set == REDKV_OK && r.get == REDKV_OK, "request %ld: set %d, get %d", r.n, r.set, r.get);
}

/* ---- the three cases, for each loop ---- */

static void plain_batch(const char *name, const char *ns)
{
    char cmd[1024], key[64];
    snprintf(cmd, sizeof cmd, "%s '%s' >/dev/null", example_path(name), srv.url);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
    snprintf(key, sizeof key, "%s:key-99", ns);
    cr_assert_eq(SRV_NUM(&srv, "EXISTS", key), 1);
}

/* The server restarts between requests: the connection is lost and the next one has a new
   descriptor, which the adapter must watch, or the later requests would time out. */
static void survives_restart(const char *name)
{
    example ex;
    example_start(&ex, name, "5000");
    reply before = example_request(&ex, 1);
    assert_ok(before);
    cr_assert_eq(srv_restart(&srv, NULL), 0);
    /* The first request may go out on the dead connection before the loop saw it close. */
    reply first = example_request(&ex, 2);
    cr_assert(first.set == REDKV_OK || first.set == REDKV_ECONN, "set %d", first.set);
    cr_assert(first.get == REDKV_OK || first.get == REDKV_ECONN, "get %d", first.get);
    for (long n = 3; n <= 6; n++) {
        reply r = example_request(&ex, n);
        assert_ok(r);
        cr_assert_neq(r.fd, before.fd, "no reconnect happened (fd %d)", r.fd);
    }
    cr_assert_eq(example_finish(&ex), 0);
}

/* A stopped server never answers: only the adapter's timer can make the requests time
   out; without it the example would wait forever (and the suite's timeout fail the test). */
static void times_out_on_stopped_server(const char *name)
{
    example ex;
    example_start(&ex, name, "1000");
    reply before = example_request(&ex, 1);
    assert_ok(before);
    srv_pause(&srv);
    reply late = example_request(&ex, 2);
    srv_resume(&srv);
    cr_assert_eq(late.set, REDKV_ETIMEDOUT);
    /* the get was written behind the set: dropped with the connection, or timed out too */
    cr_assert(late.get == REDKV_ETIMEDOUT || late.get == REDKV_ECONN, "get %d", late.get);
    reply after = example_request(&ex, 3);
    assert_ok(after);
    cr_assert_neq(after.fd, before.fd, "the timed-out connection was not replaced");
    cr_assert_eq(example_finish(&ex), 0);
}

#define ADAPTER_TESTS(loop)                                                                \
    Test(adapters, loop##_batch) { plain_batch(#loop "_loop", #loop "_example"); }         \
    Test(adapters, loop##_restart) { survives_restart(#loop "_loop"); }                    \
    Test(adapters, loop##_stopped_server) { times_out_on_stopped_server(#loop "_loop"); }

ADAPTER_TESTS(libuv)
ADAPTER_TESTS(libevent)
ADAPTER_TESTS(libev)
