/* fuzz_url.c - libFuzzer target for the URL reading (net/url.c). `make fuzz FUZZ_TARGETS=url`.
 *
 * Input: the URL's text (up to the first NUL). It is read three ways: rk_config_init with
 * only the URL, again with every override set, and redkv_open + redkv_close (which read it
 * without connecting). Checked, abort() on a violation:
 *   - the status is OK, ECONFIG or ENOMEM, the same for rk_config_init and redkv_open, and a
 *     failed read leaves nothing behind (all fields cleared);
 *   - a URL read OK names a TCP host (non-empty, none of / @ space %) xor a unix path (from
 *     '/'), a port from 1 to 65535 and a non-negative db; a password only when the URL has
 *     userinfo (or the override gave one); the overrides win;
 *   - the URL rebuilt from what was read (redis://host:port/db or unix://path?db=N) reads
 *     back to the same host, path, port and db;
 *   - the password never shows in an error: the URL with every letter and digit of its
 *     password changed must give the same status and, on failure, the same message.
 * Memory goes through a counting allocator hook: every block is given back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define CHECK(c) ((c) ? (void)0 : fail(#c, __LINE__))

static void fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_url.c:%d: invariant broken: %s\n", line, what);
    abort();
}

static long live;
static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    live += p != NULL;
    return p;
}
static void *counting_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    live += q && !p;
    return q;
}
static void counting_free(void *p)
{
    live -= p != NULL;
    free(p);
}

/* Where the password sits in url, read as net/url.c reads it: [*from, *to). 0 if none. */
static int find_password(const char *url, size_t *from, size_t *to)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return 0;
    const char *rest = sep + 3, *end = rest + strlen(rest);
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    const char *body_end = q ? q : end;
    const char *slash = memchr(rest, '/', (size_t)(body_end - rest));
    const char *auth_end = slash ? slash : body_end, *at = NULL;
    for (const char *p = rest; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    if (!colon)
        return 0;
    *from = (size_t)(colon + 1 - url);
    *to = (size_t)(at - url);
    return 1;
}

static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void check_config(const rk_config *cfg, const char *url, int overrides)
{
    CHECK((cfg->host == NULL) != (cfg->path == NULL));
    CHECK(cfg->port >= 1 && cfg->port <= 65535);
    CHECK(cfg->db >= 0);
    if (cfg->host) {
        CHECK(cfg->host[0] != 0);
        CHECK(strpbrk(cfg->host, "/@ %") == NULL);
    } else {
        CHECK(cfg->path[0] == '/');
    }
    if ((cfg->pass || cfg->user) && !overrides)
        CHECK(strchr(url, '@') != NULL);
}

static void check_cleared(const rk_config *cfg)
{
    CHECK(!cfg->host && !cfg->path && !cfg->user && !cfg->pass && cfg->port == 0 && cfg->db == 0);
}

/* The URL rebuilt from cfg reads back to the same place. */
static void check_round_trip(const rk_config *cfg)
{
    size_t n = (cfg->host ? strlen(cfg->host) : strlen(cfg->path)) + 64;
    char *url = malloc(n);
    CHECK(url != NULL);
    if (cfg->host)
        snprintf(url, n, strpbrk(cfg->host, ":[]") ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d",
                 cfg->host, cfg->port, cfg->db);
    else
        snprintf(url, n, "unix://%s?db=%d", cfg->path, cfg->db);
    redkv_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    rk_config back;
    int rc = rk_config_from_options(&back, &o);
    if (rc == REDKV_ENOMEM) {
        free(url);
        return;
    }
    if (rc != REDKV_OK)
        fprintf(stderr, "rebuilt URL %s: %s\n", url, redkv_last_error());
    CHECK(rc == REDKV_OK);
    CHECK((back.host && cfg->host && strcmp(back.host, cfg->host) == 0) ||
          (back.path && cfg->path && strcmp(back.path, cfg->path) == 0));
    CHECK(back.port == cfg->port);
    CHECK(back.db == cfg->db);
    CHECK(!back.user && !back.pass);
    rk_config_free(&back);
    free(url);
}

static int read_url(const char *url, rk_config *cfg, int overrides)
{
    redkv_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    if (overrides) {
        o.port = 4321;
        o.db = 7;
        o.username = "fuzz-user";
        o.password = "fuzz-pass";
    }
    int rc = rk_config_from_options(cfg, &o);
    CHECK(rc == REDKV_OK || rc == REDKV_ECONFIG || rc == REDKV_ENOMEM);
    if (rc != REDKV_OK) {
        check_cleared(cfg);
        return rc;
    }
    check_config(cfg, url, overrides);
    if (overrides) {
        CHECK(cfg->port == 4321 && cfg->db == 7);
        CHECK(cfg->user && strcmp(cfg->user, "fuzz-user") == 0);
        CHECK(cfg->pass && strcmp(cfg->pass, "fuzz-pass") == 0);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    CHECK(url != NULL);
    memcpy(url, data, size);
    url[size] = 0;
    redkv_set_allocator(counting_malloc, counting_realloc, counting_free);

    rk_config cfg;
    int rc = read_url(url, &cfg, 0);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", redkv_last_error());
    if (rc == REDKV_OK) {
        check_round_trip(&cfg);
        rk_config_free(&cfg);
    }
    if (read_url(url, &cfg, 1) == REDKV_OK)
        rk_config_free(&cfg);

    redkv *s = NULL;
    redkv_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    int orc = redkv_open(&s, &o);
    CHECK(orc == rc);
    CHECK((orc == REDKV_OK) == (s != NULL));
    redkv_close(s);

    /* The same URL with another password: nothing else may change. */
    size_t from, to;
    if (find_password(url, &from, &to)) {
        for (size_t i = from; i < to; i++)
            if (is_alnum(url[i]))
                url[i] = url[i] == 'Z' ? 'Y' : 'Z';
        int rc2 = read_url(url, &cfg, 0);
        CHECK(rc2 == rc);
        if (rc2 == REDKV_OK)
            rk_config_free(&cfg);
        else if (rc2 == REDKV_ECONFIG)
            CHECK(strcmp(msg, redkv_last_error()) == 0);
    }

    redkv_set_allocator(NULL, NULL, NULL);
    CHECK(live == 0);
    free(url);
    return 0;
}
