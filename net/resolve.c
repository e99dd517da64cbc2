/* resolve.c - name lookup bounded by the connect timeout.
 *
 * getaddrinfo() cannot be told a deadline, and a resolver that never answers keeps it for
 * its own retries (10 s and more). So a name (not a numeric address) is looked up in a
 * thread of its own: a blocking connect waits for it until its deadline and then gives up
 * on it, and an event-driven connect watches a pipe the thread writes to when it is done.
 * A lookup given up on finishes in its thread, which frees it. This works the same with
 * glibc and with a static musl build (getaddrinfo_a is glibc's alone; a resolver of our own
 * would not read /etc/hosts and nsswitch as users expect). Without threads
 * (REDKV_NO_THREADS) getaddrinfo is called directly and only numeric hosts are bounded. */
#include "fmacros.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#ifndef REDKV_NO_THREADS
#include <pthread.h>
#endif

static int lookup_now(const char *host, int port, int flags, struct addrinfo **out);

static int lookup_failed(const rk_config *cfg, int gai)
{
    return rk_error(REDKV_ECONN, "cannot resolve %s: %s", cfg->where, gai_strerror(gai));
}

static int lookup_now(const char *host, int port, int flags, struct addrinfo **out)
{
    *out = NULL;
    struct addrinfo hints;
    char service[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags;
    snprintf(service, sizeof service, "%d", port);
    return getaddrinfo(host, service, &hints, out);
}

#ifndef REDKV_NO_THREADS

struct rk_lookup {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    int refs;                 /* the thread's and the waiter's */
    int done, rc;             /* rc: getaddrinfo's */
    struct addrinfo *result;
    int pipe[2];              /* a byte is written to pipe[1] when done */
    char *host;
    int port;
};

static void lookup_release(rk_lookup *l)
{
    pthread_mutex_lock(&l->lock);
    int left = --l->refs;
    pthread_mutex_unlock(&l->lock);
    if (left)
        return;
    if (l->result)
        freeaddrinfo(l->result);
    close(l->pipe[0]);
    close(l->pipe[1]);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->done_cv);
    resp_free(l->host);
    resp_free(l);
}

static void *lookup_thread(void *arg)
{
    rk_lookup *l = arg;
    struct addrinfo *result = NULL;
    int rc = lookup_now(l->host, l->port, 0, &result);
    pthread_mutex_lock(&l->lock);
    l->rc = rc;
    l->result = result;
    l->done = 1;
    pthread_cond_signal(&l->done_cv);
    pthread_mutex_unlock(&l->lock);
    ssize_t w = write(l->pipe[1], "", 1);   /* the pipe is never full: one byte, once */
    (void)w;
    lookup_release(l);
    return NULL;
}

/* A pipe whose ends are numbered above 2 (see open_socket in conn.c), close-on-exec. */
static int make_pipe(int fds[2])
{
    if (pipe(fds) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fds[i] <= 2) {
            int high = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            close(fds[i]);
            fds[i] = high;
        } else {
            fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        }
    }
    if (fds[0] < 0 || fds[1] < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        return -1;
    }
    return 0;
}

static rk_lookup *lookup_new(const char *host, int port)
{
    rk_lookup *l = resp_malloc(sizeof *l);
    if (!l)
        return NULL;
    memset(l, 0, sizeof *l);
    l->port = port;
    l->refs = 2;
    if (!(l->host = rk_strndup(host, strlen(host))) || make_pipe(l->pipe) < 0) {
        resp_free(l->host);
        resp_free(l);
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

int rk_lookup_start(const rk_config *cfg, struct addrinfo **now, rk_lookup **later)
{
    *later = NULL;
    if (lookup_now(cfg->host, cfg->port, AI_NUMERICHOST, now) == 0)
        return REDKV_OK;               /* an address: nothing to wait for */
    rk_lookup *l = lookup_new(cfg->host, cfg->port);
    if (!l)
        return rk_error(REDKV_ENOMEM, "out of memory for a name lookup");
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, lookup_thread, l);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        l->refs = 1;
        lookup_release(l);
        return rk_error(REDKV_ENOMEM, "cannot start a thread for the name lookup: %s",
                        strerror(rc));
    }
    *later = l;
    return REDKV_OK;
}

int rk_lookup_fd(const rk_lookup *l) { return l->pipe[0]; }

int rk_lookup_result(rk_lookup *l, const rk_config *cfg, int64_t deadline, struct addrinfo **out)
{
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    while (!l->done && rc == 0) {
        int64_t left = deadline - rk_now_ms();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (left <= 0)
            break;
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        rc = pthread_cond_timedwait(&l->done_cv, &l->lock, &ts);
        rc = rc == ETIMEDOUT ? 0 : rc;
    }
    int done = l->done, gai = l->rc;
    *out = l->result;
    l->result = NULL;                  /* the caller's now */
    pthread_mutex_unlock(&l->lock);
    if (!done)
        return 1;
    return gai == 0 ? REDKV_OK : lookup_failed(cfg, gai);
}

void rk_lookup_drop(rk_lookup *l)
{
    if (l)
        lookup_release(l);
}

#else /* REDKV_NO_THREADS: looked up at once */

int rk_lookup_start(const rk_config *cfg, struct addrinfo **now, rk_lookup **later)
{
    *later = NULL;
    int gai = lookup_now(cfg->host, cfg->port, 0, now);
    return gai == 0 ? REDKV_OK : lookup_failed(cfg, gai);
}

int rk_lookup_fd(const rk_lookup *l) { return (void)l, -1; }
int rk_lookup_result(rk_lookup *l, const rk_config *cfg, int64_t deadline, struct addrinfo **out)
{
    (void)l, (void)cfg, (void)deadline;
    *out = NULL;
    return 1;
}
void rk_lookup_drop(rk_lookup *l) { (void)l; }

#endif
