/* fixture.h - a private redis-server for each test, and a plain-socket client to poke it.
 *
 * srv_start forks redis-server on a free TCP port and a unix socket in a fresh temp dir,
 * with no persistence, and waits until it answers PING. srv_stop kills it and removes the
 * dir. The server gets PR_SET_PDEATHSIG, so it dies with the test process even when a test
 * crashes before srv_stop runs. */
#ifndef REDKV_TEST_FIXTURE_H
#define REDKV_TEST_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct test_server {
    pid_t pid;
    int port;
    char dir[128];
    char sock[192];      /* unix socket path */
    char url[64];        /* redis://127.0.0.1:port */
    char unix_url[224];  /* unix://<sock> */
} test_server;

/* Starts a server; extra is a NULL-terminated list of further redis-server arguments
   ("--requirepass", "pw", NULL), or NULL. Returns 0, or -1 (and prints why). */
int srv_start(test_server *s, const char *const *extra);
void srv_stop(test_server *s);
/* Kills the server at once (SIGKILL), keeping its port and dir; srv_restart starts it again
   there (with no data: there is no persistence) and waits until it answers: 0 or -1.
   srv_restart kills a running server first. extra: as for srv_start. */
void srv_kill(test_server *s);
int srv_restart(test_server *s, const char *const *extra);
void srv_pause(test_server *s);    /* SIGSTOP */
void srv_resume(test_server *s);   /* SIGCONT */

/* Runs one command over a fresh plain socket (codec only, no redkv net layer: TCP to port,
   or the unix socket sock when port is 0) and writes
   the reply into out as text: simple/bulk strings as is, integers as decimal, nil as
   "(nil)", errors as "ERR...", arrays as their elements joined by '\n'. Returns the reply
   type (RESP_*), or -1 when the server could not be reached. A NULL-terminated argv. */
int srv_call(const test_server *s, char *out, size_t cap, const char *const *argv);
/* The same with binary arguments. */
int srv_callv(const test_server *s, char *out, size_t cap, int argc, const void *const *argv,
              const size_t *lens);

/* Convenience: srv_call with a compound literal argv. */
#define SRV(s, out, ...) srv_call((s), (out), sizeof(out), (const char *const[]){__VA_ARGS__, NULL})

/* In a forked child: dies with its parent, runs in dir with stdout to /dev/null, and execs
   redis-server with argv. Never returns. */
void srv_exec_in(const char *dir, const char *const *argv);

/* A TCP port free on 127.0.0.1 right now, or -1. */
int srv_free_port(void);

/* Path of a built artefact: $REDKV_BUILD/<name> (or build/<name>). */
const char *build_path(const char *name);
long long now_ms(void);

#endif
