/* hostile.h - a fake Redis server in a thread of the test, for replies that break the rules.
 *
 * It listens on 127.0.0.1 (a free port). Each accepted connection takes the next script:
 * it reads the first command (unless at_once), sends the script's bytes, then closes,
 * hangs (reads and answers nothing, until stopped) or goes on as a good server. Connections
 * beyond the scripts get a good server at once: a tiny in-memory Redis that knows PING, AUTH,
 * SELECT, SET, GET, EVAL/EVALSHA (as GET), DEL/UNLINK, EXISTS, PTTL and SCAN (empty). */
#ifndef REDKV_TEST_HOSTILE_H
#define REDKV_TEST_HOSTILE_H

#include <stddef.h>

enum hostile_then { H_CLOSE, H_RESET, H_HANG, H_GOOD };   /* H_RESET: close with RST */

typedef struct hostile_script {
    const char *bytes;        /* sent after the first command; may be NULL */
    size_t len;
    int then;                 /* enum hostile_then */
    int at_once;              /* act on accept, before any command arrives */
    int drip_ms;              /* > 0: send the bytes one at a time, this far apart */
    int slow_read_ms;         /* > 0: read at most 4 KiB at a time, this far apart */
} hostile_script;

typedef struct hostile hostile;

/* Starts the server; the scripts (n of them) are copied. NULL when it could not start. */
hostile *hostile_start(const hostile_script *scripts, int n);
void hostile_stop(hostile *h);               /* closes every connection, joins the thread */
int hostile_port(const hostile *h);
const char *hostile_url(const hostile *h);   /* redis://127.0.0.1:port */
int hostile_accepted(hostile *h);            /* connections accepted so far */
int hostile_commands(hostile *h);            /* commands read so far (all connections) */

/* ---- the asynchronous API driven from a poll() loop ----------------------------------- */

#include <stdint.h>

#include "redkv.h"

/* What a callback saw; rec_cb records into the cb_rec given as its arg. */
typedef struct cb_rec {
    int calls;
    int status;
    int64_t n;
    size_t vlen;
    char val[64];             /* the first bytes of the value */
    long long at_ms;          /* now_ms() of the (last) call */
} cb_rec;

void rec_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg);
/* Calls redkv_process from a poll() loop until nothing is pending or ms have passed.
   Returns redkv_pending at the end. */
int drive(redkv *s, int ms);


/* ---- the command-line tool ----------------------------------------------------------- */

/* Runs build/redkv with args (NULL-terminated, without argv[0]), killing it after
   limit_ms. Returns its exit status, 128 + signal when killed, or -1 when it is not built
   (or could not run). stdout and stderr (each NUL-terminated, cut to their cap) may be NULL. */
int run_cli(const char *const *args, int limit_ms, char *out, size_t out_cap, char *err,
            size_t err_cap);

/* Slack allowed on top of a timeout: more under valgrind (REDKV_VALGRIND set). */
int slack_ms(void);

#endif
