/* cache.c - the client-side cache under ThreadSanitizer (make test-tsan): 6 blocking threads
 * (reads, sets, exists, deletes on a few hot keys) and one event-loop thread (get_async,
 * exists_async, set_async, with hits) on one cached client, while another client writes the
 * same keys and the tracking connection is killed halfway. Exit 0 when the cache served hits;
 * TSan reports races itself. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fixture.h"
#include "redkv.h"

static test_server srv;
static redkv *st;
static int stop;
#define STOPPED() __atomic_load_n(&stop, __ATOMIC_ACQUIRE)
static long async_done_n, errors;

static void *blocking(void *arg)
{
    long id = (long)arg, n = 0;
    char key[8], buf[64];
    size_t len;
    while (!STOPPED()) {
        snprintf(key, sizeof key, "k%ld", n % 4);
        int op = (int)((n + id) % 10), rc;
        if (op < 6)
            rc = redkv_get_into(st, key, strlen(key), 0, buf, sizeof buf, &len);
        else if (op < 8)
            rc = redkv_exists(st, key, strlen(key)) < 0 ? -1 : 0;
        else if (op < 9)
            rc = redkv_set(st, key, strlen(key), "vvvv", 4, 0, 0);
        else
            rc = redkv_delete(st, key, strlen(key));
        if (rc < 0 && rc != REDKV_MISSING)
            __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
        n++;
    }
    return NULL;
}

static void cb(redkv *s, int status, const void *v, size_t vl, int64_t n, void *arg)
{
    (void)s, (void)v, (void)vl, (void)n, (void)arg;
    if (status < 0 && status != REDKV_MISSING)
        errors++;
    async_done_n++;
}

/* One poll and one redkv_process. */
static void step(void)
{
    int ev = redkv_events(st), fd = redkv_fd(st), t = redkv_timeout_ms(st);
    struct pollfd p = {fd, (short)((ev & REDKV_READ ? POLLIN : 0) | (ev & REDKV_WRITE ? POLLOUT : 0)), 0};
    poll(&p, fd >= 0, t < 0 || t > 100 ? 100 : t);
    redkv_process(st, (p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0) |
                          (p.revents & POLLOUT ? REDKV_WRITE : 0));
}

static void *loop(void *arg)
{
    (void)arg;
    long n = 0;
    while (!STOPPED()) {
        char key[8];
        snprintf(key, sizeof key, "k%ld", n % 4);
        if (n % 7 == 0)
            redkv_set_async(st, key, strlen(key), "aa", 2, 0, 0, cb, NULL);
        else if (n % 3 == 0)
            redkv_exists_async(st, key, strlen(key), cb, NULL);
        else
            redkv_get_async(st, key, strlen(key), 0, cb, NULL);
        n++;
        while (redkv_pending(st) > 16)
            step();
    }
    while (redkv_pending(st) > 0)
        step();
    return NULL;
}

int main(void)
{
    if (srv_start(&srv, NULL))
        return 2;
    redkv_options o = {0};
    o.url = srv.url;
    o.cache_bytes = 1 << 20;
    o.pool_size = 4;
    if (redkv_open(&st, &o))
        return 3;
    pthread_t t[7];
    for (long i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, blocking, (void *)i);
    pthread_create(&t[6], NULL, loop, NULL);
    char out[65536];
    for (int i = 0; i < 40; i++) {
        SRV(&srv, out, "SET", "LITESTAR:k1", "other");
        if (i == 20) {                                  /* kill the tracking connection */
            SRV(&srv, out, "CLIENT", "LIST");
            for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"))
                if (strstr(l, " resp=3") && !strncmp(l, "id=", 3)) {
                    char id[24], o2[64];
                    snprintf(id, sizeof id, "%lld", atoll(l + 3));
                    SRV(&srv, o2, "CLIENT", "KILL", "ID", id);
                }
        }
        usleep(50000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 7; i++)
        pthread_join(t[i], NULL);
    struct redkv_cache_stats cs;
    redkv_cache_stats(st, &cs);
    printf("tsan cache driver: %llu hits %llu misses %llu flushes, %ld async callbacks, %ld errors\n",
           (unsigned long long)cs.hits, (unsigned long long)cs.misses, (unsigned long long)cs.flushes,
           async_done_n, errors);
    redkv_close(st);
    srv_stop(&srv);
    return cs.hits > 0 ? 0 : 1;
}
