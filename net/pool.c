/* pool.c - a bounded set of blocking connections shared by threads. Connections are made
 * on first need; a caller waits for a free one until its deadline. With REDKV_NO_THREADS
 * there are no locks and the pool holds at most one connection. */
#include "fmacros.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "conn.h"

#ifdef REDKV_NO_THREADS
#define POOL_LOCK(p)   ((void)0)
#define POOL_UNLOCK(p) ((void)0)
#else
#define POOL_LOCK(p)   pthread_mutex_lock(&(p)->lock)
#define POOL_UNLOCK(p) pthread_mutex_unlock(&(p)->lock)
#endif

int rk_pool_init(rk_pool *p, const rk_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
#ifdef REDKV_NO_THREADS
    p->size = 1;
#else
    p->size = cfg->pool_size > 0 ? cfg->pool_size : 1;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
    if (rc)
        return rk_error(REDKV_ENOMEM, "cannot create the pool's condition variable");
    if (pthread_mutex_init(&p->lock, NULL)) {
        pthread_cond_destroy(&p->freed);
        return rk_error(REDKV_ENOMEM, "cannot create the pool's lock");
    }
#endif
    p->idle = resp_malloc((size_t)p->size * sizeof *p->idle);
    if (!p->idle) {
        rk_pool_free(p);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    return REDKV_OK;
}

void rk_pool_free(rk_pool *p)
{
    for (int i = 0; i < p->nidle; i++) {
        rk_conn_free(p->idle[i]);
        resp_free(p->idle[i]);
    }
    resp_free(p->idle);
    p->idle = NULL;
    p->nidle = p->created = 0;
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
#endif
}

#ifndef REDKV_NO_THREADS
static int wait_until(rk_pool *p, int64_t deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline - rk_now_ms();
    if (left <= 0)
        return ETIMEDOUT;
    ts.tv_sec += (time_t)(left / 1000);
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(&p->freed, &p->lock, &ts);
}
#endif

int rk_pool_get(rk_pool *p, int64_t deadline, rk_conn **out)
{
    POOL_LOCK(p);
    while (p->nidle == 0 && p->created >= p->size) {
#ifdef REDKV_NO_THREADS
        (void)deadline;
        return rk_error(REDKV_EINVAL, "the connection is in use (built without threads)");
#else
        if (wait_until(p, deadline) == ETIMEDOUT && p->nidle == 0) {
            POOL_UNLOCK(p);
            return rk_error(REDKV_ETIMEDOUT, "every pooled connection stayed busy past the timeout");
        }
#endif
    }
    if (p->nidle > 0) {
        *out = p->idle[--p->nidle];
        POOL_UNLOCK(p);
        return REDKV_OK;
    }
    p->created++;                      /* reserve the slot, then build outside the lock */
    POOL_UNLOCK(p);
    rk_conn *c = resp_malloc(sizeof *c);
    if (!c) {
        POOL_LOCK(p);
        p->created--;
#ifndef REDKV_NO_THREADS
        pthread_cond_signal(&p->freed);
#endif
        POOL_UNLOCK(p);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    rk_conn_init(c, p->cfg, 1);
    *out = c;
    return REDKV_OK;
}

void rk_pool_put(rk_pool *p, rk_conn *c)
{
    POOL_LOCK(p);
    p->idle[p->nidle++] = c;
#ifndef REDKV_NO_THREADS
    pthread_cond_signal(&p->freed);
#endif
    POOL_UNLOCK(p);
}
