/* libev_loop.c - driving redkv's asynchronous API from a libev loop, through the adapter
 * in <redkv/adapters/libev.h>.
 *
 *   build/examples/libev_loop [--stream] [--timeout MS] [URL]      (URL: else $REDKV_URL)
 *
 * By default queues 100 sets and 100 gets at once (pipelined on one connection), runs the
 * loop until every callback has been called, and exits 0 when all succeeded.
 * --stream reads request numbers from standard input, one a line, beside the store in the
 * same loop: for each N it sets key-N and gets it back, then prints "N SET GET FD" (the two
 * statuses and the descriptor redkv uses), until end of input. The tests use it to restart
 * or stop the server between requests.
 *
 * The demo itself (the same for each loop) is in loop_demo.h; what is here is the libev
 * part: the loop, the adapter, and standard input watched in the same loop. */
#include <redkv/adapters/libev.h>

#include "loop_demo.h"

static struct ev_loop *loop;
static redkv_ev *adapter;
static ev_io input;

/* The demo calls this once every reply is in and input (with --stream) has ended. */
static void demo_stop_loop(void)
{
    ev_break(loop, EVBREAK_ALL);
}

/* --stream: standard input is readable, or at its end. */
static void on_input(struct ev_loop *l, ev_io *w, int revents)
{
    (void)revents;
    if (demo_read_input(w->data))
        redkv_ev_update(adapter);      /* it queued from outside redkv: re-sync */
    else
        ev_io_stop(l, w);
}

int main(int argc, char **argv)
{
    redkv *s = demo_open(argc, argv, "libev_loop", "libev_example");
    if (!s)
        return 1;
    loop = EV_DEFAULT;
    adapter = redkv_ev_attach(loop, s);
    if (!adapter)
        return 1;
    if (demo.stream) {
        ev_io_init(&input, on_input, STDIN_FILENO, EV_READ);
        input.data = s;
        ev_io_start(loop, &input);
    } else {
        demo_queue_batch(s);
        redkv_ev_update(adapter);      /* queued from outside redkv: re-sync */
    }
    ev_run(loop, 0);
    int status = demo_finish();
    redkv_ev_detach(adapter);
    ev_loop_destroy(loop);
    redkv_close(s);
    return status;
}
