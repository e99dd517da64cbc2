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
 * or stop the server between requests.
 *
 * The demo itself (the same for each loop) is in loop_demo.h; what is here is the libevent
 * part: the event_base, the adapter, and standard input watched in the same base. */
#include <redkv/adapters/libevent.h>

#include "loop_demo.h"

static struct event_base *base;
static redkv_event *adapter;
static struct event *input;

/* The demo calls this once every reply is in and input (with --stream) has ended. */
static void demo_stop_loop(void)
{
    event_base_loopbreak(base);
}

/* --stream: standard input is readable, or at its end. */
static void on_input(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    if (demo_read_input(arg))
        redkv_event_update(adapter);   /* it queued from outside redkv: re-sync */
    else
        event_del(input);
}

int main(int argc, char **argv)
{
    redkv *s = demo_open(argc, argv, "libevent_loop", "libevent_example");
    if (!s)
        return 1;
    base = event_base_new();
    adapter = base ? redkv_event_attach(base, s) : NULL;
    if (!adapter)
        return 1;
    if (demo.stream) {
        input = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_input, s);
        event_add(input, NULL);
    } else {
        demo_queue_batch(s);
        redkv_event_update(adapter);   /* queued from outside redkv: re-sync */
    }
    event_base_dispatch(base);
    int status = demo_finish();
    if (input)
        event_free(input);
    redkv_event_detach(adapter);
    event_base_free(base);
    redkv_close(s);
    return status;
}
