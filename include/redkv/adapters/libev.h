/* redkv/adapters/libev.h - drive redkv's asynchronous API from a libev loop (header only).
 *
 *   redkv_ev *a = redkv_ev_attach(EV_DEFAULT, store);
 *   redkv_get_async(store, "k", 1, 0, on_get, NULL);
 *   redkv_ev_update(a);              after queuing requests from outside a redkv callback
 *   ev_run(EV_DEFAULT, 0);
 *   redkv_ev_detach(a);
 *
 * The adapter keeps one ev_io on redkv_fd() for the events redkv_events() asks for, and
 * one ev_timer for redkv_timeout_ms(). On readiness or on the timer it calls
 * redkv_process() and re-syncs. An ev_io is stopped and set anew when the descriptor (it
 * changes after a reconnect, never to a reused number) or the wanted events change.
 *
 * Rules: call redkv_ev_update() after queuing requests from anywhere but a redkv callback
 * (inside one it is harmless: the adapter re-syncs when redkv_process returns). Detach
 * before the last redkv_close(), and not from inside a redkv callback. The socket is
 * watched even when idle (so a server that goes away is noticed), which keeps ev_run()
 * running: ev_break() when your work is done. Link with -lev; libredkv itself does not
 * depend on libev. */
#ifndef REDKV_ADAPTERS_LIBEV_H
#define REDKV_ADAPTERS_LIBEV_H

#include <stdlib.h>
#include <ev.h>

#include <redkv.h>

typedef struct redkv_ev {
    ev_io io;
    ev_timer timer;
    struct ev_loop *loop;
    redkv *store;
    int fd, events;      /* what io was set to; fd -1 when it is stopped */
    int dispatching;     /* inside redkv_process: updates wait until it returns */
} redkv_ev;

static inline void redkv_ev_update(redkv_ev *a);

/* Readiness or timer: let redkv work, then tell libev what it wants next. */
static inline void redkv_ev__dispatch(redkv_ev *a, int events)
{
    a->dispatching = 1;
    redkv_process(a->store, events);   /* errors reach the callbacks too */
    a->dispatching = 0;
    redkv_ev_update(a);
}

static inline void redkv_ev__on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    int events = (revents & (EV_READ | EV_ERROR) ? REDKV_READ : 0) |
                 (revents & EV_WRITE ? REDKV_WRITE : 0);
    (void)loop;
    redkv_ev__dispatch((redkv_ev *)w->data, events);
}

static inline void redkv_ev__on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    redkv_ev__dispatch((redkv_ev *)w->data, 0);
}

/* Watches the descriptor redkv has now, for the events it wants now. */
static inline void redkv_ev__sync_io(redkv_ev *a)
{
    int fd = redkv_fd(a->store), events = fd >= 0 ? redkv_events(a->store) : 0;
    if (fd == a->fd && events == a->events)
        return;
    ev_io_stop(a->loop, &a->io);       /* a watcher may be set only while stopped */
    a->fd = fd;
    a->events = events;
    if (fd < 0 || !events)
        return;
    ev_io_set(&a->io, fd, (events & REDKV_READ ? EV_READ : 0) | (events & REDKV_WRITE ? EV_WRITE : 0));
    ev_io_start(a->loop, &a->io);
}

/* Arms the timer for redkv's next deadline, or stops it when there is none. */
static inline void redkv_ev__sync_timer(redkv_ev *a)
{
    int ms = redkv_timeout_ms(a->store);
    ev_timer_stop(a->loop, &a->timer);
    if (ms < 0)
        return;
    ev_now_update(a->loop);            /* timers count from ev_now(), stale after process */
    ev_timer_set(&a->timer, ms / 1000.0, 0.);
    ev_timer_start(a->loop, &a->timer);
}

/* Re-syncs the io watcher and the timer with what redkv wants now. */
static inline void redkv_ev_update(redkv_ev *a)
{
    if (!a || a->dispatching)
        return;
    redkv_ev__sync_io(a);
    redkv_ev__sync_timer(a);
}

/* An adapter for store on loop, or NULL when out of memory. */
static inline redkv_ev *redkv_ev_attach(struct ev_loop *loop, redkv *store)
{
    redkv_ev *a = (redkv_ev *)calloc(1, sizeof *a);
    if (!a)
        return NULL;
    ev_io_init(&a->io, redkv_ev__on_io, -1, 0);
    ev_timer_init(&a->timer, redkv_ev__on_timer, 0., 0.);
    a->io.data = a;
    a->timer.data = a;
    a->loop = loop;
    a->store = store;
    a->fd = -1;
    redkv_ev_update(a);
    return a;
}

/* Stops watching and frees the adapter. NULL: no-op. */
static inline void redkv_ev_detach(redkv_ev *a)
{
    if (!a)
        return;
    ev_io_stop(a->loop, &a->io);
    ev_timer_stop(a->loop, &a->timer);
    free(a);
}

#endif
