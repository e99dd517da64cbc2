/* helpers.h - small shared pieces of the store and net tests. */
#ifndef REDKV_TEST_HELPERS_H
#define REDKV_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "redkv.h"

/* Opens a store on srv (TCP) with namespace ns (NULL: the default) and a short timeout. */
static inline redkv *open_on(const test_server *srv, const char *ns)
{
    redkv_options o = {0};
    redkv *s = NULL;
    o.url = srv->url;
    o.ns = ns;
    o.command_timeout_ms = 2000;
    if (redkv_open(&s, &o) != REDKV_OK) {
        fprintf(stderr, "open: %s\n", redkv_last_error());
        return NULL;
    }
    return s;
}

/* The value at key as a NUL-terminated string (static buffer), or "(missing)". */
static inline const char *get_str(redkv *s, const char *key)
{
    static char buf[4096];
    size_t n = 0;
    int rc = redkv_get_into(s, key, strlen(key), 0, buf, sizeof buf - 1, &n);
    if (rc == REDKV_MISSING)
        return "(missing)";
    if (rc != REDKV_OK)
        return redkv_strerror(rc);
    buf[n] = 0;
    return buf;
}

static inline int set_str(redkv *s, const char *key, const char *val, int64_t ms)
{
    return redkv_set(s, key, strlen(key), val, strlen(val), ms, 0);
}

/* A number from a reply of srv (e.g. DBSIZE, PTTL). */
static inline long long srv_num(const test_server *srv, const char *const *argv)
{
    char out[256];
    srv_call(srv, out, sizeof out, argv);
    return atoll(out);
}
#define SRV_NUM(s, ...) srv_num((s), (const char *const[]){__VA_ARGS__, NULL})

/* Connections the server has open, the asking one excluded. */
static inline int srv_clients(const test_server *srv)
{
    char out[65536];
    int n = 0;
    SRV(srv, out, "CLIENT", "LIST");
    size_t len = strlen(out);
    for (size_t i = 0; i < len; i++)
        n += out[i] == '\n';
    if (len && out[len - 1] != '\n')
        n++;
    return n - 1;   /* a line per client, ours among them */
}

/* A suite whose every test gets a private server `srv` and a store `st` on it (namespace
   LITESTAR), both gone after the test. Needs <criterion/criterion.h>. */
#define STORE_SUITE(name)                                                                  \
    static test_server srv;                                                                \
    static redkv *st;                                                                      \
    static void up(void)                                                                   \
    {                                                                                      \
        cr_assert_eq(srv_start(&srv, NULL), 0);                                            \
        st = open_on(&srv, NULL);                                                          \
        cr_assert_not_null(st);                                                            \
    }                                                                                      \
    static void down(void)                                                                 \
    {                                                                                      \
        redkv_close(st);                                                                   \
        srv_stop(&srv);                                                                    \
    }                                                                                      \
    TestSuite(name, .init = up, .fini = down, .timeout = 60)

#endif
