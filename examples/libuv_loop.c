/* libuv_loop.c - driving redkv's asynchronous API from a libuv loop, through the adapter
 * in <redkv/adapters/libuv.h>.
 *
 *   build/examples/libuv_loop [--stream] [--timeout MS] [URL]      (URL: else $REDKV_URL)
 *
 * By default queues 100 sets and 100 gets at once (pipelined on one connection), runs the
 * loop until every callback has been called, and exits 0 when all succeeded.
 * --stream reads request numbers from standard input, one a line, beside the store in the
 * same loop: for each N it sets key-N and gets it back, then prints "N SET GET FD" (the two
 * statuses and the descriptor redkv uses), until end of input. The tests use it to restart
 * or stop the server between requests.
 *
 * The demo itself (the same for each loop) is in loop_demo.h; what is here is the libuv
 * part: the loop, the adapter, and standard input watched in the same loop. */
#include <redkv/adapters/libuv.h>

#include "loop_demo.h"

static uv_loop_t *loop;
static redkv_uv *adapter;

/* The demo calls this once every reply is in and input (with --stream) has ended. */
static void demo_stop_loop(void)
{
    uv_stop(loop);
}

/* --stream: standard input is readable, or at its end. */
static void on_input(uv_poll_t *h, int status, int events)
{
    (void)status; (void)events;
    if (demo_read_input(h->data))
        redkv_uv_update(adapter);      /* it queued from outside redkv: re-sync */
    else
        uv_close((uv_handle_t *)h, NULL);
}

int main(int argc, char **argv)
{
    redkv *s = demo_open(argc, argv, "libuv_loop", "libuv_example");
    uv_poll_t input;
    if (!s)
        return 1;
    loop = uv_default_loop();
    adapter = redkv_uv_attach(loop, s);
    if (!adapter)
        return 1;
    if (demo.stream) {
        if (uv_poll_init(loop, &input, STDIN_FILENO) != 0) {
            fprintf(stderr, "libuv_loop: --stream needs standard input to be a pipe or socket\n");
            return 1;
        }
        input.data = s;
        uv_poll_start(&input, UV_READABLE, on_input);
    } else {
        demo_queue_batch(s);
        redkv_uv_update(adapter);      /* queued from outside redkv: re-sync */
    }
    uv_run(loop, UV_RUN_DEFAULT);
    int status = demo_finish();
    redkv_uv_detach(adapter);
    uv_run(loop, UV_RUN_DEFAULT);      /* the close callbacks free the adapter's handles */
    uv_loop_close(loop);
    redkv_close(s);
    return status;
}
