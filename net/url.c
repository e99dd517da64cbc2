/* url.c - reads a Redis URL the way redis-py does, then applies the options' overrides.
 * Messages never repeat the userinfo part, which may hold a password. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "net.h"
#include "tls.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_POOL_SIZE  2

char *rk_strndup(const char *s, size_t n)
{
    char *d = resp_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; a '%' not followed by two hex digits is kept
   as is, as Python's unquote does. */
static char *dup_decoded(const char *s, size_t n)
{
    char *d = resp_malloc(n + 1), *o = d;
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hex_digit(s[i + 1])) >= 0 && (lo = hex_digit(s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return d;
}

/* A whole non-negative decimal no larger than max; -1 otherwise. */
static long parse_number(const char *s, size_t n, long max)
{
    long v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* user:password@ -> both; :password@ -> password; user@ -> user. */
static int parse_userinfo(rk_config *cfg, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (ulen && !(cfg->user = dup_decoded(s, ulen)))
        return REDKV_ENOMEM;
    if (colon && !(cfg->pass = dup_decoded(colon + 1, n - ulen - 1)))
        return REDKV_ENOMEM;
    return REDKV_OK;
}

/* Seconds, possibly fractional ("1.5"), as milliseconds (at least 1); -1 when unreadable. */
static long parse_seconds(const char *s, size_t n)
{
    const char *dot = memchr(s, '.', n);
    size_t ilen = dot ? (size_t)(dot - s) : n;
    long whole = ilen ? parse_number(s, ilen, 2000000) : 0, ms = 0, scale = 100;
    if (whole < 0 || (dot && ilen == 0 && n == 1))
        return -1;
    for (size_t i = ilen + 1; dot && i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        ms += (s[i] - '0') * scale;
    }
    ms += whole * 1000;
    return ms > 0 ? ms : -1;
}

#ifndef REDKV_NO_TLS
/* redis-py's reading of a boolean parameter; -1 when it is none of these. */
static int parse_bool(const char *s, size_t n)
{
    static const char *const yes[] = {"1", "true", "True", "TRUE", "yes", "y", "Y"};
    static const char *const no[] = {"0", "false", "False", "FALSE", "no", "n", "N", "F", "f"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strlen(yes[i]) == n && memcmp(yes[i], s, n) == 0)
            return 1;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strlen(no[i]) == n && memcmp(no[i], s, n) == 0)
            return 0;
    return -1;
}

#endif

static int is_param(const char *q, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(q, name, klen) == 0;
}

#ifndef REDKV_NO_TLS
/* The ssl_* parameters: 0 (or an error) when name was one, 1 when not. */
static int parse_tls_param(rk_config *cfg, const char *q, size_t klen, const char *v, size_t vlen)
{
    int flag;
    char **file = is_param(q, klen, "ssl_ca_certs") ? &cfg->tls_ca
                : is_param(q, klen, "ssl_certfile") ? &cfg->tls_cert
                : is_param(q, klen, "ssl_keyfile") ? &cfg->tls_key : NULL;
    if (file) {
        resp_free(*file);
        return (*file = dup_decoded(v, vlen)) ? REDKV_OK : REDKV_ENOMEM;
    }
    if (is_param(q, klen, "ssl_cert_reqs")) {
        if (is_param(v, vlen, "required") || is_param(v, vlen, "CERT_REQUIRED"))
            cfg->tls_verify = RK_VERIFY_REQUIRED;
        else if (is_param(v, vlen, "optional") || is_param(v, vlen, "CERT_OPTIONAL"))
            cfg->tls_verify = RK_VERIFY_OPTIONAL;
        else if (is_param(v, vlen, "none") || is_param(v, vlen, "CERT_NONE"))
            cfg->tls_verify = RK_VERIFY_NONE;
        else
            return rk_error(REDKV_ECONFIG, "bad URL: ssl_cert_reqs is required, optional or none");
        return REDKV_OK;
    }
    if (is_param(q, klen, "ssl_check_hostname")) {
        if ((flag = parse_bool(v, vlen)) < 0)
            return rk_error(REDKV_ECONFIG, "bad URL: ssl_check_hostname is true or false");
        cfg->tls_check_hostname = flag;
        return REDKV_OK;
    }
    return 1;
}
#endif

/* One name=value of the query; the names are redis-py's. */
static int parse_param(rk_config *cfg, const char *q, size_t klen, const char *v, size_t vlen)
{
    long num;
#ifndef REDKV_NO_TLS
    int rc = parse_tls_param(cfg, q, klen, v, vlen);
    if (rc != 1)
        return rc;
#endif
    if (is_param(q, klen, "db")) {
        if ((num = parse_number(v, vlen, 0x7fffffff)) < 0)
            return rk_error(REDKV_ECONFIG, "bad URL: db must be a non-negative number");
        cfg->db = (int)num;
    } else if (is_param(q, klen, "socket_timeout") || is_param(q, klen, "socket_connect_timeout")) {
        if ((num = parse_seconds(v, vlen)) < 0)
            return rk_error(REDKV_ECONFIG, "bad URL: %.*s must be a number of seconds",
                            (int)klen, q);
        *(klen == 14 ? &cfg->command_timeout_ms : &cfg->connect_timeout_ms) = (int)num;
#ifndef REDKV_NO_SENTINEL
    } else if (is_param(q, klen, "sentinel_username") || is_param(q, klen, "sentinel_password")) {
        char **field = klen == 17 && q[9] == 'u' ? &cfg->sentinel_user : &cfg->sentinel_pass;
        resp_free(*field);
        if (!(*field = dup_decoded(v, vlen)))
            return REDKV_ENOMEM;
#endif
    } else if (is_param(q, klen, "max_connections")) {
        if ((num = parse_number(v, vlen, 65536)) <= 0)
            return rk_error(REDKV_ECONFIG, "bad URL: max_connections must be a positive number");
        cfg->pool_size = (int)num;
    } else {
        return rk_error(REDKV_ECONFIG, "bad URL: unknown query parameter \"%.*s\"",
                        (int)(klen > 40 ? 40 : klen), q);
    }
    return REDKV_OK;
}

static int parse_query(rk_config *cfg, const char *q, size_t n)
{
    while (n) {
        const char *amp = memchr(q, '&', n);
        size_t len = amp ? (size_t)(amp - q) : n;
        const char *eq = memchr(q, '=', len);
        if (!eq)
            return rk_error(REDKV_ECONFIG, "bad URL: a query parameter without a value");
        size_t klen = (size_t)(eq - q);
        int rc = parse_param(cfg, q, klen, eq + 1, len - klen - 1);
        if (rc)
            return rc;
        q += len + (amp != NULL);
        n -= len + (amp != NULL);
    }
    return REDKV_OK;
}

/* host[:port] or [v6][:port] */
static int parse_hostport(rk_config *cfg, const char *s, size_t n)
{
    const char *host = s, *port = NULL;
    size_t hlen = n;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return rk_error(REDKV_ECONFIG, "bad URL: unbalanced [ in the host");
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return rk_error(REDKV_ECONFIG, "bad URL: junk after the IPv6 address");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (memchr(s, '[', n) || memchr(s, ']', n))
            return rk_error(REDKV_ECONFIG, "bad URL: unbalanced brackets in the host");
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (port) {
        long v = parse_number(port, (size_t)(s + n - port), 65535);
        if (v <= 0)
            return rk_error(REDKV_ECONFIG, "bad URL: the port must be a number from 1 to 65535");
        cfg->port = (int)v;
    }
    for (size_t i = 0; i < hlen; i++)
        if (host[i] == '/' || host[i] == '@' || host[i] == ' ' || host[i] == '%')
            return rk_error(REDKV_ECONFIG, "bad URL: bad character in the host");
    cfg->host = hlen ? rk_strndup(host, hlen) : rk_strndup("localhost", 9);
    return cfg->host ? REDKV_OK : REDKV_ENOMEM;
}

#if !defined(REDKV_NO_CLUSTER) || !defined(REDKV_NO_SENTINEL)
/* host:port[,host:port...]: every seed (a cluster's nodes, or the sentinels), the first
   also as cfg->host and cfg->port; a seed without a port has default_port. */
static int parse_seeds(rk_config *cfg, const char *s, size_t n, int default_port)
{
    size_t count = 1;
    for (size_t i = 0; i < n; i++)
        count += s[i] == ',';
    if (!(cfg->seeds = resp_malloc(count * sizeof *cfg->seeds)))
        return REDKV_ENOMEM;
    memset(cfg->seeds, 0, count * sizeof *cfg->seeds);
    while (cfg->nseeds < (int)count) {
        const char *comma = memchr(s, ',', n);
        size_t len = comma ? (size_t)(comma - s) : n;
        if (len == 0)
            return rk_error(REDKV_ECONFIG, "bad URL: an empty host in the list of %s",
                            cfg->sentinel ? "sentinels" : "the cluster's nodes");
        resp_free(cfg->host);
        cfg->host = NULL;
        cfg->port = default_port;
        int rc = parse_hostport(cfg, s, len);
        if (rc)
            return rc;
        cfg->seeds[cfg->nseeds].host = cfg->host;
        cfg->seeds[cfg->nseeds++].port = cfg->port;
        cfg->host = NULL;
        s += len + (comma != NULL);
        n -= len + (comma != NULL);
    }
    cfg->port = cfg->seeds[0].port;
    cfg->host = rk_strndup(cfg->seeds[0].host, strlen(cfg->seeds[0].host));
    return cfg->host ? REDKV_OK : REDKV_ENOMEM;
}
#endif

static int parse_db_path(rk_config *cfg, const char *s, size_t n)
{
    if (n <= 1)                               /* "" or "/" */
        return REDKV_OK;
    long db = parse_number(s + 1, n - 1, 0x7fffffff);
    if (db < 0)
        return rk_error(REDKV_ECONFIG, "bad URL: the database must be a non-negative number");
    cfg->db = (int)db;
    return REDKV_OK;
}

#ifndef REDKV_NO_SENTINEL
/* A Sentinel URL's path: /MASTER_NAME[/db] (percent-decoded name). */
static int parse_master_path(rk_config *cfg, const char *s, size_t n)
{
    const char *name = s + (n > 0), *slash = n > 1 ? memchr(name, '/', n - 1) : NULL;
    size_t len = slash ? (size_t)(slash - name) : n - (n > 0);
    if (len == 0)
        return rk_error(REDKV_ECONFIG, "bad URL: a Sentinel URL names the master: "
                        "redis+sentinel://host:port[,host:port...]/MASTER_NAME[/db]");
    resp_free(cfg->sentinel_master);
    if (!(cfg->sentinel_master = dup_decoded(name, len)))
        return REDKV_ENOMEM;
    return slash ? parse_db_path(cfg, slash, (size_t)(s + n - slash)) : REDKV_OK;
}
#endif

/* The list of hosts after the userinfo: a cluster's seeds, sentinels, or one host. */
static int parse_hosts(rk_config *cfg, const char *s, size_t n)
{
#ifndef REDKV_NO_SENTINEL
    if (cfg->sentinel)
        return parse_seeds(cfg, s, n, 26379);
#endif
#ifndef REDKV_NO_CLUSTER
    if (cfg->cluster)
        return parse_seeds(cfg, s, n, 6379);
#endif
    return parse_hostport(cfg, s, n);
}

static int parse_url(rk_config *cfg, const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return rk_error(REDKV_ECONFIG, "bad URL: expected redis://host[:port][/db] or unix:///path");
    size_t scheme_len = (size_t)(sep - url);
    int is_unix = scheme_len == 4 && memcmp(url, "unix", 4) == 0;
    cfg->tls = (scheme_len == 6 && memcmp(url, "rediss", 6) == 0) ||
               (scheme_len == 14 && memcmp(url, "rediss+cluster", 14) == 0);
    cfg->cluster = (scheme_len == 13 && memcmp(url, "redis+cluster", 13) == 0) ||
                   (scheme_len == 14 && memcmp(url, "rediss+cluster", 14) == 0);
    /* cfg->sentinel may be set already: the sentinel_master option */
    int sentinel_scheme = (scheme_len == 14 && memcmp(url, "redis+sentinel", 14) == 0) ||
                          (scheme_len == 15 && memcmp(url, "rediss+sentinel", 15) == 0);
    cfg->tls |= scheme_len == 15 && sentinel_scheme;
    cfg->sentinel |= sentinel_scheme;
    if (!is_unix && !cfg->cluster && !cfg->tls && !sentinel_scheme &&
        !(scheme_len == 5 && memcmp(url, "redis", 5) == 0))
        return rk_error(REDKV_ECONFIG, "bad URL: the scheme must be redis://, rediss://, unix://, "
                        "redis+cluster:// or redis+sentinel://");
#ifdef REDKV_NO_SENTINEL
    if (cfg->sentinel)
        return rk_error(REDKV_ECONFIG, "built without Redis Sentinel support (REDKV_NO_SENTINEL)");
#endif
    if (cfg->sentinel && (is_unix || cfg->cluster))
        return rk_error(REDKV_ECONFIG, "bad URL: Sentinel is reached over TCP, and is no cluster");

    const char *rest = sep + 3, *end = rest + strlen(rest);
    const char *query = memchr(rest, '?', (size_t)(end - rest));
    const char *body_end = query ? query : end;
    const char *slash = memchr(rest, '/', (size_t)(body_end - rest));
    const char *auth_end = slash ? slash : body_end;
    /* The userinfo ends at the last '@' before the path, as urlparse reads it. */
    const char *at = NULL;
    for (const char *p = rest; p < auth_end; p++)
        if (*p == '@')
            at = p;
    int rc = at ? parse_userinfo(cfg, rest, (size_t)(at - rest)) : REDKV_OK;
    const char *netloc = at ? at + 1 : rest;
    if (rc == REDKV_OK && query)
        rc = parse_query(cfg, query + 1, (size_t)(end - query - 1));
    if (rc != REDKV_OK)
        return rc;
    if (is_unix) {
        if (netloc != auth_end)
            return rk_error(REDKV_ECONFIG, "bad URL: unix:// takes a path, not a host");
        if (!slash || body_end - slash <= 1)
            return rk_error(REDKV_ECONFIG, "bad URL: unix:// needs a socket path");
        cfg->path = rk_strndup(slash, (size_t)(body_end - slash));
        return cfg->path ? REDKV_OK : REDKV_ENOMEM;
    }
    rc = parse_hosts(cfg, netloc, (size_t)(auth_end - netloc));
#ifndef REDKV_NO_SENTINEL
    if (rc == REDKV_OK && sentinel_scheme)
        return parse_master_path(cfg, slash ? slash : body_end, slash ? (size_t)(body_end - slash) : 0);
#endif
    if (rc == REDKV_OK && slash)
        rc = parse_db_path(cfg, slash, (size_t)(body_end - slash));
    return rc;
}

static int replace(char **field, const char *value)
{
    resp_free(*field);
    *field = value ? rk_strndup(value, strlen(value)) : NULL;
    return value && !*field ? REDKV_ENOMEM : REDKV_OK;
}

#ifndef REDKV_NO_TLS
static int apply_tls(rk_config *cfg, const rk_settings *set)
{
    struct { char **field; const char *value; } files[] = {
        {&cfg->tls_ca, set->tls_ca_file}, {&cfg->tls_cert, set->tls_cert_file},
        {&cfg->tls_key, set->tls_key_file}, {&cfg->tls_sni, set->tls_server_name}};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i].value && replace(files[i].field, files[i].value))
            return REDKV_ENOMEM;
    if (set->tls_no_verify) {
        cfg->tls_verify = RK_VERIFY_NONE;
        cfg->tls_check_hostname = 0;
    }
    if (set->transport)
        cfg->tls = 1;
    return REDKV_OK;
}

#endif

static int apply_settings(rk_config *cfg, const rk_settings *set)
{
    if (set->port > 65535)
        return rk_error(REDKV_ECONFIG, "port must be from 1 to 65535");
    if (set->port > 0)
        cfg->port = set->port;
    if (set->db > 0)
        cfg->db = set->db;
    if (set->username && replace(&cfg->user, set->username))
        return REDKV_ENOMEM;
    if (set->password && replace(&cfg->pass, set->password))
        return REDKV_ENOMEM;
    if (set->connect_timeout_ms < 0 || set->command_timeout_ms < 0 || set->pool_size < 0)
        return rk_error(REDKV_EINVAL, "timeouts and pool_size must not be negative");
    if (set->connect_timeout_ms)
        cfg->connect_timeout_ms = set->connect_timeout_ms;
    if (set->command_timeout_ms)
        cfg->command_timeout_ms = set->command_timeout_ms;
    if (set->pool_size)
        cfg->pool_size = set->pool_size;
    if (set->max_value_len)
        cfg->limits.max_bulk = set->max_value_len;
    if (set->cluster && !cfg->cluster) {
        if (cfg->path)
            return rk_error(REDKV_ECONFIG, "a cluster is reached over TCP, not a unix socket");
        cfg->cluster = 1;
    }
#ifdef REDKV_NO_TLS
    return REDKV_OK;
#else
    return apply_tls(cfg, set);
#endif
}

/* The transport: the caller's, else the built-in TLS for rediss://, else none (plain). */
static int choose_transport(rk_config *cfg, const rk_settings *set)
{
#ifdef REDKV_NO_TLS
    (void)set;
    return cfg->tls ? rk_error(REDKV_ECONFIG, "rediss:// needs TLS, which this build of redkv "
                               "lacks (built with REDKV_NO_TLS)") : REDKV_OK;
#else
    if (set && set->transport) {
        cfg->tp = set->transport;
        return REDKV_OK;
    }
    if (!cfg->tls)
        return REDKV_OK;
    int rc = rk_tls_create(cfg, &cfg->tls_tp);
    if (rc == REDKV_OK) {
        cfg->tp = &cfg->tls_tp;
        cfg->tls_owned = 1;
    }
    return rc;
#endif
}

/* A cluster has database 0 only; its seeds take the port override like the host does. */
static int finish_cluster(rk_config *cfg)
{
#ifdef REDKV_NO_CLUSTER
    (void)cfg;
    return rk_error(REDKV_ECONFIG, "built without Redis Cluster support (REDKV_NO_CLUSTER)");
#else
    if (cfg->db != 0)
        return rk_error(REDKV_ECONFIG, "Redis Cluster has database 0 only");
    if (cfg->nseeds == 0) {
        if (!(cfg->seeds = resp_malloc(sizeof *cfg->seeds)))
            return REDKV_ENOMEM;
        cfg->seeds[0].host = NULL;
        cfg->seeds[0].port = cfg->port;
        cfg->nseeds = 1;
        if (!(cfg->seeds[0].host = rk_strndup(cfg->host, strlen(cfg->host))))
            return REDKV_ENOMEM;
    }
    cfg->seeds[0].port = cfg->port;
    return REDKV_OK;
#endif
}

/* Sentinel: the option's master name wins over the URL's; the port option moves the first
   sentinel, as it moves a cluster's first seed. */
static int finish_sentinel(rk_config *cfg, const rk_settings *set)
{
#ifdef REDKV_NO_SENTINEL
    (void)cfg, (void)set;              /* parse_url refused Sentinel already */
    return REDKV_OK;
#else
    if (!cfg->sentinel)
        return cfg->sentinel_user || cfg->sentinel_pass
                   ? rk_error(REDKV_ECONFIG, "bad URL: sentinel_username and sentinel_password "
                              "are for a Sentinel URL")
                   : REDKV_OK;
    if (cfg->cluster)
        return rk_error(REDKV_ECONFIG, "Sentinel and Redis Cluster do not go together");
    if (set && set->sentinel_master && replace(&cfg->sentinel_master, set->sentinel_master))
        return REDKV_ENOMEM;
    if (!cfg->sentinel_master || !cfg->sentinel_master[0])
        return rk_error(REDKV_ECONFIG, "Sentinel needs the master's name (in the URL's path, or "
                        "sentinel_master)");
    if (cfg->nseeds > 0)
        cfg->seeds[0].port = cfg->port;
    return REDKV_OK;
#endif
}

int rk_config_init(rk_config *cfg, const rk_settings *set)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 6379;
    cfg->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->command_timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->pool_size = DEFAULT_POOL_SIZE;
    cfg->limits.max_bulk = RESP_DEFAULT_MAX_BULK;
    cfg->tls_check_hostname = 1;
    cfg->sentinel = set && set->sentinel_master;   /* the URL's hosts are sentinels */
    int rc = parse_url(cfg, set && set->url ? set->url : REDKV_DEFAULT_URL);
    if (rc == REDKV_OK && set)
        rc = apply_settings(cfg, set);
    if (rc == REDKV_OK && cfg->cluster)
        rc = finish_cluster(cfg);
    if (rc == REDKV_OK)
        rc = finish_sentinel(cfg, set);
    if (rc == REDKV_OK)
        rc = rk_config_where(cfg);
    if (rc == REDKV_OK)
        rc = choose_transport(cfg, set);
    if (rc == REDKV_ENOMEM)
        rk_error(rc, "out of memory");
    if (rc != REDKV_OK)
        rk_config_free(cfg);
    return rc;
}

int rk_config_where(rk_config *cfg)
{
    const char *host = cfg->path ? cfg->path : cfg->host;
    size_t n = strlen(host) + 16;
    resp_free(cfg->where);
    if (!(cfg->where = resp_malloc(n)))
        return REDKV_ENOMEM;
    if (cfg->path)
        memcpy(cfg->where, host, n - 15);
    else
        snprintf(cfg->where, n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, cfg->port);
    return REDKV_OK;
}

void rk_config_free(rk_config *cfg)
{
    resp_free(cfg->where);
    resp_free(cfg->host);
    resp_free(cfg->path);
    resp_free(cfg->user);
    if (cfg->pass)
        memset(cfg->pass, 0, strlen(cfg->pass));
    resp_free(cfg->pass);
    for (int i = 0; i < cfg->nseeds; i++)
        resp_free(cfg->seeds[i].host);
    resp_free(cfg->seeds);
    resp_free(cfg->tls_ca);
    resp_free(cfg->tls_cert);
    resp_free(cfg->tls_key);
    resp_free(cfg->tls_sni);
    resp_free(cfg->sentinel_master);
    resp_free(cfg->sentinel_user);
    if (cfg->sentinel_pass)
        memset(cfg->sentinel_pass, 0, strlen(cfg->sentinel_pass));
    resp_free(cfg->sentinel_pass);
#ifndef REDKV_NO_TLS
    if (cfg->tls_owned)
        rk_tls_destroy(&cfg->tls_tp);
#endif
    memset(cfg, 0, sizeof *cfg);
}
