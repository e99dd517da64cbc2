/* redkv/adapters/libuv.h - drive redkv's asynchronous API from a libuv loop (header only).
 *
 *   redkv_uv *a = redkv_uv_attach(uv_default_loop(), store);
 *   redkv_get_async(store, "k", 1, 0, on_get, NULL);
 *   redkv_uv_update(a);              after queuing requests from outside a redkv callback
 *   uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 *   redkv_uv_detach(a);              then run the loop once more: libuv frees handles late
 *
 * The adapter keeps one uv_poll_t on redkv_fd() with the events redkv_events() asks for,
 * and one uv_timer_t armed for redkv_timeout_ms(). On readiness or on the timer it calls
 * redkv_process() and re-syncs. redkv_fd() changes after a reconnect (never to a reused
 * number); a uv_poll_t is bound to one descriptor, so a new fd gets a new handle.
 *
 * Rules: call redkv_uv_update() after queuing requests from anywhere but a redkv callback
 * (inside one it is harmless: the adapter re-syncs when redkv_process returns). Detach
 * before the last redkv_close(), and not from inside a redkv callback. The handles keep
 * the loop alive while attached (the socket is watched even when idle, so a server that
 * goes away is noticed): stop the loop (uv_stop) when your work is done.
 * Link with -luv; libredkv itself does not depend on libuv. */
#ifndef REDKV_ADAPTERS_LIBUV_H
#define REDKV_ADAPTERS_LIBUV_H

#include <stdlib.h>
#include <uv.h>

#include <redkv.h>

typedef struct redkv_uv {
    uv_loop_t *loop;
    redkv *store;
    uv_poll_t *poll;     /* watching fd; NULL when none */
    uv_timer_t *timer;
    int fd, events;      /* what poll was told */
    int dispatching;     /* inside redkv_process: updates wait until it returns */
} redkv_uv;

static inline void redkv_uv_update(redkv_uv *a);

static inline void redkv_uv__free_handle(uv_handle_t *h) { free(h); }

/* Readiness or timer: let redkv work, then tell libuv what it wants next. */
static inline void redkv_uv__dispatch(redkv_uv *a, int events)
{
    a->dispatching = 1;
    redkv_process(a->store, events);   /* errors reach the callbacks too */
    a->dispatching = 0;
    redkv_uv_update(a);
}

static inline void redkv_uv__on_poll(uv_poll_t *h, int status, int uv_events)
{
    int events = 0;
    if (status < 0)                    /* an error on the socket: let redkv read it */
        events = REDKV_READ | REDKV_WRITE;
    if (uv_events & (UV_READABLE | UV_DISCONNECT))
        events |= REDKV_READ;
    if (uv_events & UV_WRITABLE)
        events |= REDKV_WRITE;
    redkv_uv__dispatch((redkv_uv *)h->data, events);
}

static inline void redkv_uv__on_timer(uv_timer_t *t) { redkv_uv__dispatch((redkv_uv *)t->data, 0); }

static inline void redkv_uv__drop_poll(redkv_uv *a)
{
    if (a->poll)
        uv_close((uv_handle_t *)a->poll, redkv_uv__free_handle);
    a->poll = NULL;
    a->fd = -1;
    a->events = 0;
}

/* Watches the descriptor redkv has now, for the events it wants now. */
static inline void redkv_uv__sync_poll(redkv_uv *a)
{
    int fd = redkv_fd(a->store), events = fd >= 0 ? redkv_events(a->store) : 0;
    if (fd != a->fd)
        redkv_uv__drop_poll(a);
    if (fd < 0 || (a->poll && events == a->events))
        return;
    if (!a->poll) {
        a->poll = (uv_poll_t *)malloc(sizeof *a->poll);
        if (!a->poll || uv_poll_init_socket(a->loop, a->poll, fd) != 0) {
            free(a->poll);             /* never initialised: not a handle to close */
            a->poll = NULL;
            return;                    /* the timer still drives redkv to its deadline */
        }
        a->poll->data = a;
        a->fd = fd;
    }
    int want = (events & REDKV_READ ? UV_READABLE : 0) | (events & REDKV_WRITE ? UV_WRITABLE : 0);
    if (want)
        uv_poll_start(a->poll, want, redkv_uv__on_poll);
    else
        uv_poll_stop(a->poll);
    a->events = events;
}

/* Arms the timer for redkv's next deadline, or stops it when there is none. */
static inline void redkv_uv__sync_timer(redkv_uv *a)
{
    int ms = redkv_timeout_ms(a->store);
    if (ms < 0) {
        uv_timer_stop(a->timer);
        return;
    }
    uv_update_time(a->loop);           /* the loop's cached time may be stale after process */
    uv_timer_start(a->timer, redkv_uv__on_timer, (uint64_t)ms, 0);
}

/* Re-syncs the poll handle and the timer with what redkv wants now. */
static inline void redkv_uv_update(redkv_uv *a)
{
    if (!a || a->dispatching)
        return;
    redkv_uv__sync_poll(a);
    redkv_uv__sync_timer(a);
}

/* An adapter for store on loop, or NULL when out of memory. */
static inline redkv_uv *redkv_uv_attach(uv_loop_t *loop, redkv *store)
{
    redkv_uv *a = (redkv_uv *)calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->timer = (uv_timer_t *)malloc(sizeof *a->timer);
    if (!a->timer || uv_timer_init(loop, a->timer) != 0) {
        free(a->timer);
        free(a);
        return NULL;
    }
    a->loop = loop;
    a->store = store;
    a->fd = -1;
    a->timer->data = a;
    redkv_uv_update(a);
    return a;
}

/* Stops watching and frees the adapter; its handles are freed by libuv's close callbacks,
   so run the loop once more before uv_loop_close(). NULL: no-op. */
static inline void redkv_uv_detach(redkv_uv *a)
{
    if (!a)
        return;
    redkv_uv__drop_poll(a);
    uv_close((uv_handle_t *)a->timer, redkv_uv__free_handle);
    free(a);
}

#endif
