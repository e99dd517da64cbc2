/* threads.c - the library's threaded paths, as a plain program for ThreadSanitizer
 * (`make test-tsan`): Criterion's runner cannot start under TSan (its arena mapping fails),
 * so these scenarios run here, each against a private redis-server from tests/fixture.c.
 *
 *   1. 8 threads on one store with a pool of 2: calls wait for a connection and share them.
 *   2. 8 threads each opening child namespaces of one store and closing them, while others
 *      use it: the shared client's reference count.
 *   3. 8 threads with their own errors at once: each sees its own redkv_last_error().
 *   4. 4 threads through a server restart and CLIENT KILL: stale pooled connections.
 *   5. 4 threads each opening and closing whole clients at once.
 *   6. 8 threads on one connection (pool of 1): every call rides the shared pipeline, one
 *      thread leading at a time; each reads back only its own values.
 *
 * Exit status 0 when every scenario's checks passed; TSan reports its findings itself (and
 * `make test-tsan` fails on any). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "redkv.h"

#define THREADS 8

static test_server srv;
static int failures;              /* written by the main thread only, after joins */

typedef struct job {
    redkv *store;
    int id;
    int ok, bad;                  /* calls that did as expected, and did not */
    char why[160];                /* the first bad call */
} job;

static void bad(job *j, const char *what, int rc)
{
    if (!j->bad++)
        snprintf(j->why, sizeof j->why, "%s: %s: %s", what, redkv_strerror(rc), redkv_last_error());
}

/* Runs fn on n threads, each with its own job on store; counts a scenario's failures. */
static void run_threads(const char *name, int n, void *(*fn)(void *), redkv *store)
{
    pthread_t t[THREADS];
    job jobs[THREADS];
    for (int i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].store = store;
        jobs[i].id = i;
        if (pthread_create(&t[i], NULL, fn, &jobs[i]) != 0) {
            fprintf(stderr, "threads: %s: pthread_create failed\n", name);
            exit(1);
        }
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        ok += jobs[i].ok;
        if (jobs[i].bad || !jobs[i].ok) {
            fprintf(stderr, "threads: %s: thread %d: %d bad, %d ok: %s\n", name, i, jobs[i].bad,
                    jobs[i].ok, jobs[i].why);
            failed = 1;
        }
    }
    failures += failed;
    printf("threads: %-28s %s (%d calls)\n", name, failed ? "FAIL" : "ok", ok);
}

static redkv *open_store(int pool_size)
{
    redkv_options o = {.url = srv.url, .command_timeout_ms = 3000, .pool_size = pool_size};
    redkv *s = NULL;
    if (redkv_open(&s, &o) != REDKV_OK) {
        fprintf(stderr, "threads: open: %s\n", redkv_last_error());
        exit(1);
    }
    return s;
}

/* 1: set, then get back, a key of this thread's own. */
static void *share_pool(void *arg)
{
    job *j = arg;
    char key[32], val[32], buf[32];
    for (int i = 0; i < 300; i++) {
        size_t len = 0;
        snprintf(key, sizeof key, "pool:%d:%d", j->id, i % 7);
        int n = snprintf(val, sizeof val, "%d-%d", j->id, i);
        int rc = redkv_set(j->store, key, strlen(key), val, (size_t)n, 0, 0);
        if (rc != REDKV_OK) {
            bad(j, "set", rc);
            continue;
        }
        rc = redkv_get_into(j->store, key, strlen(key), i % 3 ? 0 : 60000, buf, sizeof buf, &len);
        if (rc != REDKV_OK || len != (size_t)n || memcmp(buf, val, len))
            bad(j, "get", rc);
        else
            j->ok++;
    }
    return NULL;
}

/* 2: children of the shared store, opened, used and closed. */
static void *children(void *arg)
{
    job *j = arg;
    char ns[32];
    for (int i = 0; i < 100; i++) {
        redkv *child = NULL, *grandchild = NULL;
        snprintf(ns, sizeof ns, "c%d", j->id);
        int rc = redkv_with_namespace(j->store, ns, &child);
        if (rc == REDKV_OK)
            rc = redkv_with_namespace(child, "g", &grandchild);
        if (rc == REDKV_OK)
            redkv_close(child);        /* the grandchild keeps the client alive */
        if (rc == REDKV_OK)
            rc = redkv_set(grandchild, "k", 1, "v", 1, 0, 0);
        if (rc == REDKV_OK)
            rc = redkv_exists(grandchild, "k", 1) == 1 ? REDKV_OK : REDKV_EPROTO;
        if (rc != REDKV_OK)
            bad(j, "child namespaces", rc);
        else
            j->ok++;
        redkv_close(grandchild);
    }
    return NULL;
}

/* 3: errors of this thread's own making, and the message that says so. */
static void *own_errors(void *arg)
{
    job *j = arg;
    char buf[8];
    size_t len;
    for (int i = 0; i < 200; i++) {
        /* EINVAL: an expiry with KEEP_TTL for even threads, a negative renewal for odd ones */
        int rc = j->id % 2 ? redkv_get_into(j->store, "k", 1, -1, buf, sizeof buf, &len)
                           : redkv_set(j->store, "k", 1, "v", 1, 1000, REDKV_KEEP_TTL);
        const char *msg = redkv_last_error();
        int mine = strstr(msg, j->id % 2 ? "renew_for_ms" : "KEEP_TTL") != NULL;
        if (rc != REDKV_EINVAL || !mine)
            bad(j, "own error", rc);
        else
            j->ok++;
        if (redkv_ping(j->store) != REDKV_OK)
            bad(j, "ping", REDKV_ECONN);
    }
    return NULL;
}

/* 4: calls while the main thread restarts the server and kills clients; chaos errors only. */
static int chaos_over;            /* set by the main thread when the restarts are done */
static pthread_mutex_t chaos_lock = PTHREAD_MUTEX_INITIALIZER;

static int chaos_done(void)
{
    pthread_mutex_lock(&chaos_lock);
    int over = chaos_over;
    pthread_mutex_unlock(&chaos_lock);
    return over;
}

static void *through_restarts(void *arg)
{
    job *j = arg;
    while (!chaos_done()) {
        int rc = redkv_set(j->store, "r", 1, "v", 1, 0, 0);
        if (rc == REDKV_OK)
            j->ok++;
        else if (rc != REDKV_ECONN && rc != REDKV_ETIMEDOUT &&
                 !(rc == REDKV_ESERVER && strstr(redkv_last_error(), "LOADING")))
            bad(j, "set during restarts", rc);
        else
            usleep(5000);
    }
    return NULL;
}

/* 5: whole clients, opened and closed on many threads at once. */
static void *open_close(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 50; i++) {
        redkv *s = open_store(2);
        int rc = redkv_ping(s);
        if (rc == REDKV_OK)
            j->ok++;
        else
            bad(j, "ping on a new client", rc);
        redkv_close(s);
    }
    return NULL;
}

static void restart_scenario(void)
{
    redkv *s = open_store(4);
    pthread_t t[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].store = s;
        jobs[i].id = i;
        pthread_create(&t[i], NULL, through_restarts, &jobs[i]);
    }
    for (int round = 0; round < 3; round++) {
        usleep(200000);
        if (srv_restart(&srv, NULL) != 0)
            exit(1);
        usleep(200000);
        char out[64];
        SRV(&srv, out, "CLIENT", "KILL", "TYPE", "normal");
    }
    usleep(200000);
    pthread_mutex_lock(&chaos_lock);
    chaos_over = 1;
    pthread_mutex_unlock(&chaos_lock);
    int failed = 0, ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok += jobs[i].ok;
        if (jobs[i].bad) {
            fprintf(stderr, "threads: restarts: thread %d: %s\n", i, jobs[i].why);
            failed = 1;
        }
    }
    failures += failed;
    printf("threads: %-28s %s (%d calls)\n", "restarts and client kills", failed ? "FAIL" : "ok", ok);
    redkv_close(s);
}

int main(void)
{
    if (srv_start(&srv, NULL) != 0)
        return 1;
    redkv *s = open_store(2);
    run_threads("8 threads, a pool of 2", THREADS, share_pool, s);
    redkv *one = open_store(1);
    run_threads("one connection shared by 8", THREADS, share_pool, one);
    redkv_close(one);
    run_threads("child namespaces", THREADS, children, s);
    run_threads("each thread's own error", THREADS, own_errors, s);
    redkv_close(s);
    restart_scenario();
    run_threads("clients opened and closed", 4, open_close, NULL);
    srv_stop(&srv);
    printf("threads: %s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
