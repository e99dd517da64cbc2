/* pool.c - a bounded set of blocking connections shared by threads. Connections are made
 * on first need. A blocking call shares one (rk_pool_share): calls of many threads queue
 * on it, pipelined, so a call never waits for a free connection; delete_all and the
 * cluster's map reading borrow one whole (rk_pool_get), waiting until its sharers are
 * done. With REDKV_NO_THREADS there are no locks and the pool holds one connection. */
#include "fmacros.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "conn.h"

/* A new connection in the pool's next slot (the caller checked there is one). */
static rk_conn *pool_add(rk_pool *p)
{
    rk_conn *c = resp_malloc(sizeof *c);
    if (!c) {
        rk_error(REDKV_ENOMEM, "out of memory");
        return NULL;
    }
    rk_conn_init(c, p->cfg, 1);
    p->conns[p->created] = c;
    /* sharers read the table without the lock: the pointer is there before the count */
    __atomic_store_n(&p->created, p->created + 1, __ATOMIC_RELEASE);
    return c;
}

static void free_conns(rk_pool *p)
{
    for (int i = 0; i < p->created; i++) {
        rk_conn_free(p->conns[i]);
        resp_free(p->conns[i]);
    }
    resp_free(p->conns);
    p->conns = NULL;
    p->created = 0;
}

#ifdef REDKV_NO_THREADS

int rk_pool_init(rk_pool *p, const rk_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->size = 1;
    if (!(p->conns = resp_malloc(sizeof *p->conns)))
        return rk_error(REDKV_ENOMEM, "out of memory");
    return REDKV_OK;
}

void rk_pool_free(rk_pool *p) { free_conns(p); }

int rk_pool_get(rk_pool *p, int64_t deadline, rk_conn **out)
{
    (void)deadline;
    if (p->busy)
        return rk_error(REDKV_EINVAL, "the connection is in use (built without threads)");
    if (!(*out = p->created ? p->conns[0] : pool_add(p)))
        return REDKV_ENOMEM;
    p->busy = 1;
    return REDKV_OK;
}

void rk_pool_put(rk_pool *p, rk_conn *c)
{
    (void)c;
    p->busy = 0;
}

#else

int rk_pool_init(rk_pool *p, const rk_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
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
    if (!(p->conns = resp_malloc((size_t)p->size * sizeof *p->conns))) {
        rk_pool_free(p);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    return REDKV_OK;
}

void rk_pool_free(rk_pool *p)
{
    free_conns(p);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
}

/* Waits (the pool's lock held) until a connection is given back or deadline: 0 or
   ETIMEDOUT. */
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

/* Sharing and lending without a lock between them. A sharer counts itself in (users),
   then checks the connection was not lent whole meanwhile; a borrower marks it lent, then
   checks nobody counted in. Each reads after it writes, in one total order (SEQ_CST): at
   least one of the two sees the other and backs off, so a connection is never shared and
   lent at once. The pool's lock serialises borrowers and creation only: the steady state
   of a blocking call (every connection made) takes no lock here. */
#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

/* The connection not lent whole with the fewest sharers, or NULL. */
static rk_conn *least_shared(const rk_pool *p, int created)
{
    rk_conn *best = NULL;
    int best_users = 0;
    for (int i = 0; i < created; i++) {
        rk_conn *c = p->conns[i];
        int users = LOAD(c->users);
        if (!LOAD(c->lent) && (!best || users < best_users)) {
            best = c;
            best_users = users;
        }
    }
    return best;
}

/* Counts a sharer in on c: 1, or 0 (counted out again) when c is lent whole. */
static int pool_join(rk_pool *p, rk_conn *c)
{
    __atomic_add_fetch(&c->users, 1, __ATOMIC_SEQ_CST);
    if (!LOAD(c->lent))
        return 1;
    rk_pool_unshare(p, c);
    return 0;
}

/* Marks c lent whole: 1, or 0 when a sharer got in first. */
static int pool_lend(rk_conn *c)
{
    STORE(c->lent, 1);
    if (LOAD(c->users) == 0)
        return 1;
    STORE(c->lent, 0);
    return 0;
}

/* Picks a connection for a caller (the pool's lock held): for whole use, only one nobody
   uses; for sharing, an unused one, else a new one while there is room, else the least
   shared. NULL with *err set: none now (0: wait; else the error). */
static rk_conn *pool_pick(rk_pool *p, int whole, int *err)
{
    rk_conn *c = least_shared(p, p->created);
    *err = 0;
    if (c && LOAD(c->users) == 0 && (whole ? pool_lend(c) : pool_join(p, c)))
        return c;
    if (c && !whole && p->created == p->size && pool_join(p, c))
        return c;
    if (p->created < p->size) {
        if (!(c = pool_add(p)))
            *err = REDKV_ENOMEM;
        else if (whole)
            STORE(c->lent, 1);
        else
            __atomic_add_fetch(&c->users, 1, __ATOMIC_SEQ_CST);
        return c;
    }
    return NULL;
}

static int take(rk_pool *p, int whole, int64_t deadline, rk_conn **out)
{
    int err;
    rk_conn *c;
    pthread_mutex_lock(&p->lock);
    __atomic_add_fetch(&p->waiting, 1, __ATOMIC_SEQ_CST);
    while (!(c = pool_pick(p, whole, &err)) && !err) {
        if (wait_until(p, deadline) == ETIMEDOUT && !(c = pool_pick(p, whole, &err)) && !err) {
            __atomic_sub_fetch(&p->waiting, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&p->lock);
            return rk_error(REDKV_ETIMEDOUT, "every pooled connection stayed busy past the timeout");
        }
    }
    __atomic_sub_fetch(&p->waiting, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&p->lock);
    *out = c;
    return err;
}

int rk_pool_share(rk_pool *p, int64_t deadline, rk_conn **out)
{
    int created = __atomic_load_n(&p->created, __ATOMIC_ACQUIRE);
    rk_conn *c = created == p->size ? least_shared(p, created) : NULL;
    if (c && pool_join(p, c)) {
        *out = c;
        return REDKV_OK;
    }
    return take(p, 0, deadline, out);
}

/* Wakes the callers waiting in take(), if any (a waiter registers under the lock before it
   looks: it cannot miss this). */
static void wake_takers(rk_pool *p)
{
    if (LOAD(p->waiting)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->freed);
        pthread_mutex_unlock(&p->lock);
    }
}

/* The last sharer out of a connection, or its borrower, wakes whoever waits to borrow one. */
void rk_pool_unshare(rk_pool *p, rk_conn *c)
{
    if (__atomic_sub_fetch(&c->users, 1, __ATOMIC_SEQ_CST) == 0)
        wake_takers(p);
}

void rk_pool_put(rk_pool *p, rk_conn *c)
{
    STORE(c->lent, 0);
    wake_takers(p);
}

int rk_pool_get(rk_pool *p, int64_t deadline, rk_conn **out) { return take(p, 1, deadline, out); }

#endif
