/* poll_loop.c - driving redkv's asynchronous API from a poll() loop.
 *
 *   build/examples/poll_loop [URL]
 *
 * Queues 100 sets and 100 gets at once (they go out pipelined on one connection), then
 * runs the loop until every callback has been called. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "redkv.h"

static int done, failed;

static void on_set(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s; (void)val; (void)vlen; (void)n; (void)arg;
    failed += status != REDKV_OK;
    done++;
}

static void on_get(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s; (void)n;
    char want[32];
    snprintf(want, sizeof want, "value-%d", (int)(long)arg);
    failed += status != REDKV_OK || vlen != strlen(want) || memcmp(val, want, vlen) != 0;
    done++;
}

/* Waits for what redkv wants, for as long as it allows, then lets it work. */
static int run_until(redkv *s, int target)
{
    while (done < target) {
        struct pollfd pfd = {redkv_fd(s), 0, 0};
        int ev = redkv_events(s);
        pfd.events = (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0));
        int ready = poll(&pfd, pfd.fd >= 0 ? 1 : 0, redkv_timeout_ms(s));
        if (ready < 0)
            return -1;
        int got = (pfd.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                  (pfd.revents & POLLOUT ? REDKV_WRITE : 0);
        int rc = redkv_process(s, got);
        if (rc < 0)
            fprintf(stderr, "poll_loop: %s\n", redkv_last_error());
    }
    return 0;
}

int main(int argc, char **argv)
{
    redkv_options opt = {0};
    redkv *s;
    opt.url = argc > 1 ? argv[1] : NULL;
    opt.ns = "poll_example";
    if (redkv_open(&s, &opt) != REDKV_OK) {
        fprintf(stderr, "poll_loop: %s\n", redkv_last_error());
        return 1;
    }
    for (long i = 0; i < 100; i++) {
        char key[32], val[32];
        int kl = snprintf(key, sizeof key, "key-%ld", i);
        int vl = snprintf(val, sizeof val, "value-%ld", i);
        redkv_set_async(s, key, (size_t)kl, val, (size_t)vl, 60000, 0, on_set, NULL);
        redkv_get_async(s, key, (size_t)kl, 0, on_get, (void *)i);
    }
    int rc = run_until(s, 200);
    printf("poll_loop: %d callbacks, %d failed\n", done, failed);
    redkv_close(s);
    return rc == 0 && failed == 0 ? 0 : 1;
}
