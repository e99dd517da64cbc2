/* loop_demo.h - the demo that examples/lib*_loop.c run, whichever event loop drives it:
 * the options, the request pairs and their checks, and the --stream line handling. Each
 * example includes this once and keeps only its own loop's glue, so that it reads as an
 * example of its adapter; the tests (tests/test_adapters.c) rely on all three behaving
 * and printing alike, which is easiest when the logic exists once.
 *
 * The including example must define demo_stop_loop(): the demo calls it when nothing is
 * left to do, and only the example knows how to break out of its loop. */
#ifndef REDKV_EXAMPLES_LOOP_DEMO_H
#define REDKV_EXAMPLES_LOOP_DEMO_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <redkv.h>

static void demo_stop_loop(void);

static struct {
    const char *name;      /* the program's, before each message it prints */
    int stream;            /* --stream: requests come from standard input */
    int input_open;        /* --stream and standard input has not ended yet */
    int done, failed, target;
} demo;

/* Parses [--stream] [--timeout MS] [URL] (URL: else $REDKV_URL) and opens the store with
   keys under namespace ns; NULL (said on stderr) when it cannot. */
static redkv *demo_open(int argc, char **argv, const char *name, const char *ns)
{
    redkv_options opt = {0};
    redkv *s;
    demo.name = name;
    opt.url = getenv("REDKV_URL");
    opt.ns = ns;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stream") == 0)
            demo.stream = 1;
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            opt.connect_timeout_ms = opt.command_timeout_ms = atoi(argv[++i]);
        else
            opt.url = argv[i];
    }
    if (redkv_open(&s, &opt) != REDKV_OK) {
        fprintf(stderr, "%s: %s\n", name, redkv_last_error());
        return NULL;
    }
    demo.input_open = demo.stream;
    return s;
}

/* REDKV_OK when a get of key-i found value-i, else what went wrong. */
static int demo_check_get(int status, const void *val, size_t vlen, long i)
{
    char want[32];
    int n = snprintf(want, sizeof want, "value-%ld", i);
    if (status != REDKV_OK)
        return status;
    return vlen == (size_t)n && memcmp(val, want, vlen) == 0 ? REDKV_OK : REDKV_EPROTO;
}

/* Called after every reply and at the end of input: the loop runs until all have come. */
static void demo_maybe_stop(redkv *s)
{
    if (!demo.input_open && demo.done >= demo.target && redkv_pending(s) == 0)
        demo_stop_loop();
}

/* Queues "SET key-i value-i" and "GET key-i" (pipelined behind it) with the given
   callbacks, both given arg. */
static void demo_queue_pair(redkv *s, long i, redkv_cb *set_cb, redkv_cb *get_cb, void *arg)
{
    char key[32], val[32];
    int kl = snprintf(key, sizeof key, "key-%ld", i);
    int vl = snprintf(val, sizeof val, "value-%ld", i);
    if (redkv_set_async(s, key, (size_t)kl, val, (size_t)vl, 60000, 0, set_cb, arg) != REDKV_OK ||
        redkv_get_async(s, key, (size_t)kl, 0, get_cb, arg) != REDKV_OK)
        fprintf(stderr, "%s: %s\n", demo.name, redkv_last_error());
}

/* ---- the default run: 100 pairs queued at once, counted as they complete ---- */

static void demo_on_set(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)val; (void)vlen; (void)n; (void)arg;
    demo.failed += status != REDKV_OK;
    demo.done++;
    demo_maybe_stop(s);
}

static void demo_on_get(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)n;
    demo.failed += demo_check_get(status, val, vlen, (long)arg) != REDKV_OK;
    demo.done++;
    demo_maybe_stop(s);
}

/* Queues the batch. From main, outside any redkv callback: the caller then updates its
   adapter, or nothing would watch for the writes. */
static void demo_queue_batch(redkv *s)
{
    demo.target = 200;
    for (long i = 0; i < 100; i++)
        demo_queue_pair(s, i, demo_on_set, demo_on_get, (void *)i);
}

/* After the loop: the batch's summary line, and the exit status. */
static int demo_finish(void)
{
    if (!demo.stream)
        printf("%s: %d callbacks, %d failed\n", demo.name, demo.done, demo.failed);
    return demo.failed == 0 && demo.done == demo.target ? 0 : 1;
}

/* ---- --stream: one request pair per line of standard input, "N SET GET FD" back ---- */

typedef struct demo_line {
    long n;
    int set_status;        /* kept until the get's reply, to print both on one line */
} demo_line;

static void demo_on_line_set(redkv *s, int status, const void *val, size_t vlen, int64_t n,
                             void *arg)
{
    (void)s; (void)val; (void)vlen; (void)n;
    ((demo_line *)arg)->set_status = status;
}

static void demo_on_line_get(redkv *s, int status, const void *val, size_t vlen, int64_t n,
                             void *arg)
{
    (void)n;
    demo_line *r = arg;
    printf("%ld %d %d %d\n", r->n, r->set_status, demo_check_get(status, val, vlen, r->n),
           redkv_fd(s));
    fflush(stdout);        /* the tests wait for each line before sending the next */
    free(r);
    demo_maybe_stop(s);
}

/* Reads what standard input has (once the loop says it is readable) and queues a request
   pair for each complete line; a partial line waits for the rest. Returns 1 while input
   goes on: the caller updates its adapter, as requests queued from outside a redkv
   callback need. Returns 0 at the end of input: the caller stops watching it, and the
   loop stops once the requests in flight have their replies. */
static int demo_read_input(redkv *s)
{
    static char buf[256];
    static size_t used;
    ssize_t got = read(STDIN_FILENO, buf + used, sizeof buf - 1 - used);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;                      /* the loop may have made stdin non-blocking */
    if (got <= 0) {
        demo.input_open = 0;
        demo_maybe_stop(s);
        return 0;
    }
    used += (size_t)got;
    char *nl;
    while ((nl = memchr(buf, '\n', used)) != NULL) {
        demo_line *r = calloc(1, sizeof *r);
        if (!r)
            exit(1);
        r->n = strtol(buf, NULL, 10);
        demo_queue_pair(s, r->n, demo_on_line_set, demo_on_line_get, r);
        used -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, used);
    }
    return 1;
}

#endif
