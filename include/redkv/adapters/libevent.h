/* redkv/adapters/libevent.h - drive redkv's asynchronous API from a libevent 2 event_base
 * (header only).
 *
 *   redkv_event *a = redkv_event_attach(base, store);
 *   redkv_get_async(store, "k", 1, 0, on_get, NULL);
 *   redkv_event_update(a);           after queuing requests from outside a redkv callback
 *   event_base_dispatch(base);
 *   redkv_event_detach(a);
 *
 * The adapter keeps one persistent event on redkv_fd() for the events redkv_events() asks
 * for, and one timer event for redkv_timeout_ms(). On readiness or on the timer it calls
 * redkv_process() and re-syncs. When the descriptor (it changes after a reconnect, never to
 * a reused number) or the wanted events change, the event is made anew.
 *
 * Rules: call redkv_event_update() after queuing requests from anywhere but a redkv
 * callback (inside one it is harmless: the adapter re-syncs when redkv_process returns).
 * Detach before the last redkv_close(), and not from inside a redkv callback. The socket
 * is watched even when idle (so a server that goes away is noticed), which keeps
 * event_base_dispatch() running: break the loop (event_base_loopbreak) when your work is
 * done. Link with -levent; libredkv itself does not depend on libevent. */
#ifndef REDKV_ADAPTERS_LIBEVENT_H
#define REDKV_ADAPTERS_LIBEVENT_H

#include <stdlib.h>
#include <event2/event.h>

#include <redkv.h>

typedef struct redkv_event {
    struct event_base *base;
    redkv *store;
    struct event *io;    /* on fd for events; NULL when none */
    struct event *timer;
    int fd, events;      /* what io was made for */
    int dispatching;     /* inside redkv_process: updates wait until it returns */
} redkv_event;

static inline void redkv_event_update(redkv_event *a);

/* Readiness or timer: let redkv work, then tell libevent what it wants next. */
static inline void redkv_event__on_event(evutil_socket_t fd, short what, void *arg)
{
    redkv_event *a = (redkv_event *)arg;
    int events = (what & EV_READ ? REDKV_READ : 0) | (what & EV_WRITE ? REDKV_WRITE : 0);
    (void)fd;
    a->dispatching = 1;
    redkv_process(a->store, events);   /* errors reach the callbacks too */
    a->dispatching = 0;
    redkv_event_update(a);
}

/* Watches the descriptor redkv has now, for the events it wants now. */
static inline void redkv_event__sync_io(redkv_event *a)
{
    int fd = redkv_fd(a->store), events = fd >= 0 ? redkv_events(a->store) : 0;
    if (fd == a->fd && events == a->events)
        return;
    if (a->io)
        event_free(a->io);             /* deletes it from the base first */
    a->io = NULL;
    a->fd = fd;
    a->events = events;
    if (fd < 0 || !events)
        return;
    short what = (short)(EV_PERSIST | (events & REDKV_READ ? EV_READ : 0) |
                         (events & REDKV_WRITE ? EV_WRITE : 0));
    a->io = event_new(a->base, fd, what, redkv_event__on_event, a);
    if (!a->io || event_add(a->io, NULL) != 0)
        a->fd = -1;                    /* retried on the next update; the timer still runs */
}

/* Arms the timer for redkv's next deadline, or removes it when there is none. */
static inline void redkv_event__sync_timer(redkv_event *a)
{
    int ms = redkv_timeout_ms(a->store);
    if (ms < 0) {
        event_del(a->timer);
        return;
    }
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_base_update_cache_time(a->base);   /* the cached time may be stale after process */
    event_add(a->timer, &tv);                /* re-adding reschedules */
}

/* Re-syncs the event and the timer with what redkv wants now. */
static inline void redkv_event_update(redkv_event *a)
{
    if (!a || a->dispatching)
        return;
    redkv_event__sync_io(a);
    redkv_event__sync_timer(a);
}

/* An adapter for store on base, or NULL when out of memory. */
static inline redkv_event *redkv_event_attach(struct event_base *base, redkv *store)
{
    redkv_event *a = (redkv_event *)calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->timer = evtimer_new(base, redkv_event__on_event, a);
    if (!a->timer) {
        free(a);
        return NULL;
    }
    a->base = base;
    a->store = store;
    a->fd = -1;
    redkv_event_update(a);
    return a;
}

/* Stops watching and frees the adapter. NULL: no-op. */
static inline void redkv_event_detach(redkv_event *a)
{
    if (!a)
        return;
    if (a->io)
        event_free(a->io);
    event_free(a->timer);
    free(a);
}

#endif
