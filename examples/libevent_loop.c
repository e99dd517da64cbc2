/* libevent_loop.c - driving redkv's asynchronous API from a libevent event_base, through
 * the adapter in <redkv/adapters/libevent.h>.
 *
 *   build/examples/libevent_loop [--stream] [--timeout MS] [URL]      (URL: else $REDKV_URL)
 *
 * By default queues 100 sets and 100 gets at once (pipelined on one connection), runs the
 * loop until every callback has been called, and exits 0 when all succeeded.
 * --stream reads request numbers from standard input, one a line, beside the store in the
 * same loop: for each N it sets key-N and gets it back, then prints "N SET GET FD" (the two
 * statuses and the descriptor redkv uses), until end of input. The tests use it to restart
 * or stop the server between requests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <redkv/adapters/libevent.h>

static redkv_event *adapter;
static struct event_base *base;
static struct event *input;
static int done, failed, target, input_open;

static int check_get(int status, const void *val, size_t vlen, long i)
{
    char want[32];
    int n = snprintf(want, sizeof want, "value-%ld", i);
    if (status != REDKV_OK)
        return status;
    return vlen == (size_t)n && memcmp(val, want, vlen) == 0 ? REDKV_OK : REDKV_EPROTO;
}

/* Ends the loop once nothing is left to do. */
static void maybe_stop(redkv *s)
{
    if (!input_open && done >= target && redkv_pending(s) == 0)
        event_base_loopbreak(base);
}

static void on_set(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)val; (void)vlen; (void)n; (void)arg;
    failed += status != REDKV_OK;
    done++;
    maybe_stop(s);
}

static void on_get(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)n;
    failed += check_get(status, val, vlen, (long)arg) != REDKV_OK;
    done++;
    maybe_stop(s);
}

static void queue_pair(redkv *s, long i, redkv_cb *set_cb, redkv_cb *get_cb, void *arg)
{
    char key[32], val[32];
    int kl = snprintf(key, sizeof key, "key-%ld", i);
    int vl = snprintf(val, sizeof val, "value-%ld", i);
    if (redkv_set_async(s, key, (size_t)kl, val, (size_t)vl, 60000, 0, set_cb, arg) != REDKV_OK ||
        redkv_get_async(s, key, (size_t)kl, 0, get_cb, arg) != REDKV_OK)
        fprintf(stderr, "libevent_loop: %s\n", redkv_last_error());
}

/* ---- --stream: one request pair per line of standard input ---- */

typedef struct line_req {
    long n;
    int set_status;
} line_req;

static void on_line_set(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s; (void)val; (void)vlen; (void)n;
    ((line_req *)arg)->set_status = status;
}

static void on_line_get(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)n;
    line_req *r = arg;
    printf("%ld %d %d %d\n", r->n, r->set_status, check_get(status, val, vlen, r->n), redkv_fd(s));
    fflush(stdout);
    free(r);
    maybe_stop(s);
}

static void on_input(evutil_socket_t fd, short what, void *arg)
{
    static char buf[256];
    static size_t used;
    redkv *s = arg;
    (void)fd; (void)what;
    ssize_t got = read(STDIN_FILENO, buf + used, sizeof buf - 1 - used);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;                        /* the loop may have made stdin non-blocking */
    if (got <= 0) {
        input_open = 0;
        event_del(input);
        maybe_stop(s);
        return;
    }
    used += (size_t)got;
    char *nl;
    while ((nl = memchr(buf, '\n', used)) != NULL) {
        line_req *r = calloc(1, sizeof *r);
        if (!r)
            exit(1);
        r->n = strtol(buf, NULL, 10);
        queue_pair(s, r->n, on_line_set, on_line_get, r);
        used -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, used);
    }
    redkv_event_update(adapter);          /* queued from outside redkv: re-sync */
}

int main(int argc, char **argv)
{
    redkv_options opt = {0};
    redkv *s;
    int stream = 0;
    opt.url = getenv("REDKV_URL");
    opt.ns = "libevent_example";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stream") == 0)
            stream = 1;
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            opt.connect_timeout_ms = opt.command_timeout_ms = atoi(argv[++i]);
        else
            opt.url = argv[i];
    }
    if (redkv_open(&s, &opt) != REDKV_OK) {
        fprintf(stderr, "libevent_loop: %s\n", redkv_last_error());
        return 1;
    }
    base = event_base_new();
    adapter = base ? redkv_event_attach(base, s) : NULL;
    if (!adapter)
        return 1;
    if (stream) {
        input_open = 1;
        input = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_input, s);
        event_add(input, NULL);
    } else {
        target = 200;
        for (long i = 0; i < 100; i++)
            queue_pair(s, i, on_set, on_get, (void *)i);
        redkv_event_update(adapter);
    }
    event_base_dispatch(base);
    if (!stream)
        printf("libevent_loop: %d callbacks, %d failed\n", done, failed);
    if (input)
        event_free(input);
    redkv_event_detach(adapter);
    event_base_free(base);
    redkv_close(s);
    return failed == 0 && done == target ? 0 : 1;
}
