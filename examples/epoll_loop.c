/* epoll_loop.c - driving redkv's asynchronous API from an epoll loop (Linux).
 *
 *   build/examples/epoll_loop [URL]
 *
 * The descriptor changes when redkv reconnects (a new socket never gets the number of the
 * one before), so the loop re-registers whenever redkv_fd() or redkv_events() differ from
 * what epoll was told. Level-triggered. */
#ifdef __linux__
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "redkv.h"

static int done, failed;

static void on_reply(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    (void)s; (void)val; (void)vlen; (void)arg;
    /* sets report n 0; exists reports 1 */
    failed += status != REDKV_OK || n > 1;
    done++;
}

typedef struct watch {
    int ep, fd, events;
} watch;

/* Tells epoll what redkv wants now. */
static void sync_watch(watch *w, redkv *s)
{
    int fd = redkv_fd(s), ev = redkv_events(s);
    if (fd == w->fd && ev == w->events)
        return;
    if (w->fd >= 0 && fd != w->fd)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->fd, NULL);
    if (fd >= 0) {
        struct epoll_event e = {0};
        e.events = (ev & REDKV_READ ? EPOLLIN : 0) | (ev & REDKV_WRITE ? EPOLLOUT : 0);
        e.data.fd = fd;
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &e) < 0)
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
    }
    w->fd = fd;
    w->events = ev;
}

int main(int argc, char **argv)
{
    redkv_options opt = {0};
    redkv *s;
    opt.url = argc > 1 ? argv[1] : NULL;
    opt.ns = "epoll_example";
    if (redkv_open(&s, &opt) != REDKV_OK) {
        fprintf(stderr, "epoll_loop: %s\n", redkv_last_error());
        return 1;
    }
    for (int i = 0; i < 100; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "key-%d", i);
        redkv_set_async(s, key, (size_t)kl, "v", 1, 60000, 0, on_reply, NULL);
        redkv_exists_async(s, key, (size_t)kl, on_reply, NULL);
    }
    watch w = {epoll_create1(0), -1, 0};
    while (done < 200) {
        sync_watch(&w, s);
        struct epoll_event e;
        int n = epoll_wait(w.ep, &e, 1, redkv_timeout_ms(s));
        int got = n > 0 ? ((e.events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? REDKV_READ : 0) |
                           (e.events & EPOLLOUT ? REDKV_WRITE : 0)) : 0;
        if (redkv_process(s, got) < 0)
            fprintf(stderr, "epoll_loop: %s\n", redkv_last_error());
    }
    printf("epoll_loop: %d callbacks, %d failed\n", done, failed);
    close(w.ep);
    redkv_close(s);
    return failed == 0 ? 0 : 1;
}
#else
int main(void) { return 0; }
#endif
