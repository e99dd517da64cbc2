/* client.c - opening and closing: the client shared by a store and its children, and the
 * reference counts that decide when each goes away. */
#include "fmacros.h"

#include <stddef.h>
#include <string.h>

#include "store.h"

#define DEFAULT_SCAN_COUNT 1000

int rk_ref_add(int *count, int delta)
{
#ifdef REDKV_NO_THREADS
    return *count += delta;
#else
    return __atomic_add_fetch(count, delta, __ATOMIC_ACQ_REL);
#endif
}

static char *join(const char *a, const char *sep, const char *b)
{
    size_t la = a ? strlen(a) : 0, ls = a ? strlen(sep) : 0, lb = strlen(b);
    char *s = resp_malloc(la + ls + lb + 1);
    if (!s)
        return NULL;
    if (a) {
        memcpy(s, a, la);
        memcpy(s + la, sep, ls);
    }
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

static void free_store(redkv *s)
{
    resp_free(s->ns);
    resp_free(s->prefix);
    resp_free(s);
}

/* A store for namespace ns (NULL: none) on cl. */
static int new_store(rk_client *cl, const char *ns, redkv **out)
{
    redkv *s = resp_malloc(sizeof *s);
    if (!s)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    s->cl = cl;
    s->refs = 1;
    if (ns) {
        s->ns = join(NULL, "", ns);
        s->prefix = join(ns, ":", "");
    } else {
        s->prefix = join(NULL, "", "");
    }
    if (!s->prefix || (ns && !s->ns)) {
        free_store(s);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    s->prefix_len = strlen(s->prefix);
    *out = s;
    return REDKV_OK;
}

/* The router first: the callbacks of the requests it fails may still reach the cache (our
   writes forget their key); then the hits left, then the cache. */
static void free_client(rk_client *cl)
{
    rk_router_free(cl->router);
#ifndef REDKV_NO_CACHE
    rk_async_close_hits(cl);
    rk_cache_free(cl->cache);
#endif
    rk_async_free_ops(cl);
    rk_config_free(&cl->cfg);
    resp_free(cl);
}

int64_t rk_call_deadline(const rk_client *cl)
{
    return rk_deadline(cl->cfg.command_timeout_ms);
}

static int check_options(const redkv_options *opt)
{
    if (!opt)
        return REDKV_OK;
    if (opt->ns && opt->no_namespace)
        return rk_error(REDKV_EINVAL, "ns and no_namespace are mutually exclusive");
    if (opt->ns && !opt->ns[0])
        return rk_error(REDKV_EINVAL, "the namespace is empty (use no_namespace for no prefix)");
    if (opt->scan_count < 0)
        return rk_error(REDKV_EINVAL, "scan_count must not be negative");
    return REDKV_OK;
}

int rk_config_from_options(rk_config *cfg, const redkv_options *opt)
{
    rk_settings set;
    memset(&set, 0, sizeof set);
    if (opt) {
        set.url = opt->url;
        set.db = opt->db;
        set.port = opt->port;
        set.username = opt->username;
        set.password = opt->password;
        set.connect_timeout_ms = opt->connect_timeout_ms;
        set.command_timeout_ms = opt->command_timeout_ms;
        set.pool_size = opt->pool_size;
        set.max_value_len = opt->max_value_len;
        set.cluster = opt->cluster;
        set.tls_ca_file = opt->tls_ca_file;
        set.tls_cert_file = opt->tls_cert_file;
        set.tls_key_file = opt->tls_key_file;
        set.tls_server_name = opt->tls_server_name;
        set.tls_no_verify = opt->tls_no_verify;
        set.transport = opt->transport;
        set.sentinel_master = opt->sentinel_master;
    }
    return rk_config_init(cfg, &set);
}

/* The first release's redkv_options ended with `cluster`. */
#define FIRST_OPTIONS_SIZE (offsetof(redkv_options, cluster) + sizeof(bool))

int (redkv_open)(redkv **out, const redkv_options *opt)
{
    return redkv_open_sized(out, opt, FIRST_OPTIONS_SIZE);
}

static int open_client(redkv **out, const redkv_options *opt);

/* Fields past the caller's struct (an older header) read as zero. */
int redkv_open_sized(redkv **out, const redkv_options *opt, size_t opt_size)
{
    redkv_options full;
    if (!opt)
        return open_client(out, NULL);
    memset(&full, 0, sizeof full);
    memcpy(&full, opt, opt_size < sizeof full ? opt_size : sizeof full);
    return open_client(out, &full);
}

static int open_cache(rk_client *cl, const redkv_options *opt, const char *prefix)
{
    if (!opt || !opt->cache_bytes)
        return REDKV_OK;
#ifndef REDKV_NO_CACHE
    return rk_cache_new(cl, opt->cache_bytes, prefix, &cl->cache);
#else
    (void)cl;
    (void)prefix;
    return rk_error(REDKV_ECONFIG, "built with REDKV_NO_CACHE");
#endif
}

static int open_client(redkv **out, const redkv_options *opt)
{
    if (!out)
        return rk_error(REDKV_EINVAL, "out is NULL");
    *out = NULL;
    int rc = check_options(opt);
    if (rc)
        return rc;
    rk_client *cl = resp_malloc(sizeof *cl);
    if (!cl)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(cl, 0, sizeof *cl);
    if ((rc = rk_config_from_options(&cl->cfg, opt)) != REDKV_OK) {
        resp_free(cl);
        return rc;
    }
    if ((rc = rk_router_new(&cl->cfg, &cl->router)) != REDKV_OK) {
        rk_config_free(&cl->cfg);
        resp_free(cl);
        return rc;
    }
    cl->scan_count = opt && opt->scan_count ? opt->scan_count : DEFAULT_SCAN_COUNT;
    cl->progress = opt ? opt->progress : NULL;
    cl->progress_arg = opt ? opt->progress_arg : NULL;
    const char *ns = opt && opt->no_namespace ? NULL : opt && opt->ns ? opt->ns : REDKV_DEFAULT_NAMESPACE;
    /* Every key of this client and its children begins with the root namespace. */
    if ((rc = open_cache(cl, opt, ns ? ns : "")) != REDKV_OK) {
        free_client(cl);
        return rc;
    }
    if ((rc = new_store(cl, ns, out)) != REDKV_OK) {
        free_client(cl);
        return rc;
    }
    cl->stores = 1;
    return REDKV_OK;
}

int redkv_with_namespace(redkv *parent, const char *ns, redkv **out)
{
    if (!out)
        return rk_error(REDKV_EINVAL, "out is NULL");
    *out = NULL;
    if (!parent || parent->closed)
        return rk_error(REDKV_EINVAL, "the parent store is NULL or closed");
    if (!ns || !ns[0])
        return rk_error(REDKV_EINVAL, "the child namespace is empty");
    char *full = join(parent->ns, "_", ns);
    if (!full)
        return rk_error(REDKV_ENOMEM, "out of memory");
    int rc = new_store(parent->cl, full, out);
    resp_free(full);
    if (rc == REDKV_OK)
        rk_ref_add(&parent->cl->stores, 1);
    return rc;
}

const char *redkv_namespace(const redkv *s) { return s ? s->ns : NULL; }

void rk_store_release(redkv *s)
{
    if (rk_ref_add(&s->refs, -1) == 0)
        free_store(s);
}

/* The last store is gone: every request still pending is called back with ECONN (the
   callbacks may not drive the client), then everything is released. */
static void shut_down(rk_client *cl)
{
    cl->in_process = 1;
    cl->closing = 1;
    free_client(cl);
}

void redkv_close(redkv *s)
{
    if (!s || s->closed)
        return;
    s->closed = 1;
    rk_client *cl = s->cl;
    int last = rk_ref_add(&cl->stores, -1) == 0;
    rk_store_release(s);
    if (!last)
        return;
    if (cl->in_process)
        cl->shut_down = 1;             /* redkv_process finishes it when its callbacks return */
    else
        shut_down(cl);
}

int rk_client_finish_process(rk_client *cl)
{
    cl->in_process = 0;
    if (!cl->shut_down)
        return 0;
    shut_down(cl);
    return 1;
}
