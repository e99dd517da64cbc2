/* redkv.h - a namespaced key/value store on Redis, with the semantics of Litestar's
 * RedisStore. If a function is not declared here, it is not part of the public API.
 *
 * Every call returns a status: REDKV_OK (0), a positive outcome (MISSING, PERSISTENT), or
 * a negative error; after an error, redkv_last_error() says what went wrong, in words, for
 * the calling thread. Keys and values are binary (any bytes, NUL included). Durations are
 * milliseconds. */
#ifndef REDKV_H
#define REDKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(REDKV_STATIC_ONLY)
#define REDKV_API __attribute__((visibility("default")))
#else
#define REDKV_API
#endif

/* Semantic versioning: a minor release only adds (functions, statuses, option fields at the
   end of redkv_options); a major one may change what exists. */
#define REDKV_VERSION_MAJOR 0
#define REDKV_VERSION_MINOR 2
#define REDKV_VERSION_PATCH 0

#define REDKV_DEFAULT_URL       "redis://localhost:6379"
#define REDKV_DEFAULT_NAMESPACE "LITESTAR"

typedef struct redkv redkv;   /* one namespace over a client that its children share */

/* The status codes; redkv_strerror gives each a short text (one table makes both). */
#define REDKV_STATUS_TABLE(X)                                                              \
    X(OK,          0, "success")                                                           \
    X(MISSING,     1, "no such key")                                                       \
    X(PERSISTENT,  2, "the key has no expiry")                                             \
    X(EINVAL,     -1, "invalid argument")                                                  \
    X(ECONFIG,    -2, "improperly configured")                                             \
    X(ECONN,      -3, "connection failed or lost")                                         \
    X(ETIMEDOUT,  -4, "timed out")                                                         \
    X(EPROTO,     -5, "protocol error")                                                    \
    X(ESERVER,    -6, "server error")                                                      \
    X(EAUTH,      -7, "authentication or database selection refused")                      \
    X(ENOMEM,     -8, "out of memory")                                                     \
    X(ETOOBIG,    -9, "value too large")                                                  \
    X(ETLS,      -10, "TLS handshake or certificate rejected")

enum {
    REDKV_OK         =  0,
    REDKV_MISSING    =  1,  /* get, expires_in: no such key (or it expired) */
    REDKV_PERSISTENT =  2,  /* expires_in: the key exists and has no expiry */
    REDKV_EINVAL     = -1,  /* bad argument; nothing was sent */
    REDKV_ECONFIG    = -2,  /* improperly configured: bad URL, delete_all with no namespace */
    REDKV_ECONN      = -3,  /* could not connect, or the connection was lost */
    REDKV_ETIMEDOUT  = -4,  /* no answer within the timeout */
    REDKV_EPROTO     = -5,  /* the server's bytes broke RESP; that connection is dropped */
    REDKV_ESERVER    = -6,  /* the server answered with an error reply */
    REDKV_EAUTH      = -7,  /* AUTH or SELECT refused */
    REDKV_ENOMEM     = -8,
    REDKV_ETOOBIG    = -9,  /* value larger than the caller's buffer or a configured limit */
    REDKV_ETLS       = -10, /* TLS handshake or certificate rejected */
};

typedef struct {
    const char *url;          /* NULL: REDKV_DEFAULT_URL. redis://[[user]:password@]host[:port][/db],
                                 unix:///path/to/socket[?db=N]; IPv6 hosts in [brackets];
                                 Redis Cluster:
                                 redis+cluster://[[user]:password@]host:port[,host:port...]
                                 (seed nodes, any one reachable is enough; database 0 only);
                                 Redis Sentinel:
                                 redis+sentinel://[[user]:password@]host:port[,host:port...]/
                                 MASTER_NAME[/db][?sentinel_username=U&sentinel_password=P]
                                 (sentinels, port 26379 by default; the userinfo is the data
                                 nodes'; rediss+sentinel:// for TLS to sentinels and nodes) */
    int db;                   /* <= 0: from the URL (else 0); > 0: that database */
    int port;                 /* <= 0: from the URL (else 6379) */
    const char *username;     /* NULL: from the URL */
    const char *password;     /* NULL: from the URL */
    const char *ns;           /* NULL: REDKV_DEFAULT_NAMESPACE, unless no_namespace */
    bool no_namespace;        /* keys are used as given; delete_all is refused */
    int connect_timeout_ms;   /* 0: a sane default (5000) */
    int command_timeout_ms;   /* 0: a sane default (5000); bounds every wait for the server (each
                                 round trip; delete_all makes many) */
    int pool_size;            /* 0: a default (2); connections shared by threads, pipelined */
    /* Added after the contract's fields (append only): */
    size_t max_value_len;     /* 0: 512 MiB; a longer bulk reply is EPROTO, a longer value ETOOBIG */
    int scan_count;           /* 0: 1000; keys asked of each SCAN step of delete_all */
    void (*progress)(uint64_t deleted, void *arg);  /* delete_all: called after each batch */
    void *progress_arg;
    bool cluster;             /* the redis:// URL's host is a seed of a Redis Cluster (as
                                 redis+cluster:// says): every call goes to its key's master and
                                 follows MOVED and ASK. Asynchronous use: redkv_fd is one epoll
                                 descriptor for every node (Linux; elsewhere EINVAL). */
    /* TLS (rediss://, built with TLS=mbedtls or TLS=openssl, or with a transport below).
       Each non-NULL field overrides the URL's ssl_* parameter; a zeroed struct verifies the
       server's certificate (against the system's CA bundle) and its name. */
    const char *tls_ca_file;      /* PEM CA bundle (URL: ssl_ca_certs) */
    const char *tls_cert_file;    /* PEM client certificate (URL: ssl_certfile) */
    const char *tls_key_file;     /* PEM key of the client certificate (URL: ssl_keyfile) */
    const char *tls_server_name;  /* the name sent (SNI) and checked; NULL: the host */
    bool tls_no_verify;           /* accept any certificate, any name (ssl_cert_reqs=none) */
    /* A TLS stack of your own (wolfSSL, BearSSL, a secure element): every connection's bytes
       go through it, rediss:// or not. NULL: the built-in one (rediss://) or none. It must
       outlive every store of this open. See redkv_transport. */
    const struct redkv_transport *transport;
    /* Redis Sentinel: non-NULL, the URL's hosts (redis://h1:26379,h2:26379[/db]) are
       sentinels, and the store runs on the master they know by this name, following it
       across failovers (as redis+sentinel://.../NAME says; this name wins over the URL's). */
    const char *sentinel_master;
    /* Client-side cache (see README, "Client-side cache"): 0, the default, is none. Else
       plain reads (get and get_into without renewal, exists) are served from up to this
       many bytes of memory, kept current by the server's invalidations (Redis 6 or later:
       HELLO 3, CLIENT TRACKING BCAST over the namespace); least recently used goes first.
       Redis Cluster: ECONFIG. A server that refuses tracking: reads go to the server. */
    size_t cache_bytes;
} redkv_options;

/* ---- transports: a TLS stack that redkv does not build in ----------------------------- */

/* What read, write and handshake return besides a byte count. */
enum { REDKV_IO_WANT_READ = -1, REDKV_IO_WANT_WRITE = -2, REDKV_IO_ERROR = -3 };

/* A session is opened on each socket once it is connected, before any command. The socket
   is non-blocking during the handshake; a connection of the blocking pool is then made
   blocking with kernel timeouts (SO_RCVTIMEO, SO_SNDTIMEO), so a read or write that times
   out must come back as REDKV_IO_WANT_READ / REDKV_IO_WANT_WRITE, never hang. redkv owns the
   socket: close() ends the session and frees it, and redkv closes the descriptor. */
typedef struct redkv_transport {
    void *ctx;                /* yours: handed to open */
    /* A new session on fd; server_name is the host connected to (or tls_server_name), for
       SNI and the name check. NULL on failure, with why in err (errlen bytes with NUL). */
    void *(*open)(void *ctx, int fd, const char *server_name, char *err, size_t errlen);
    /* One step of the handshake: 0 done; REDKV_IO_WANT_READ or _WRITE: call again when fd is
       ready for that; REDKV_IO_ERROR: rejected, with why in err (never key material). */
    int (*handshake)(void *session, char *err, size_t errlen);
    /* > 0: bytes moved; 0: the peer closed (read only); REDKV_IO_WANT_*: would block;
       REDKV_IO_ERROR: the session failed. */
    long (*read)(void *session, void *buf, size_t len);
    long (*write)(void *session, const void *buf, size_t len);
    /* Bytes already decrypted and waiting to be read (redkv reads them without waiting for
       the descriptor). NULL: never any. */
    size_t (*pending)(void *session);
    void (*close)(void *session);
} redkv_transport;

/* Opens a client and a store on it (Litestar's with_client). Does not connect yet: the
   first operation does. opt may be NULL: every default. ECONFIG for a bad URL. */
REDKV_API int redkv_open_sized(redkv **out, const redkv_options *opt, size_t opt_size);
/* The same, for programs built against the first release's redkv_options (fields up to
   `cluster`); the macro below passes the size of the struct this header declares, so a
   program keeps working with a newer library: fields past its size read as zero. */
REDKV_API int (redkv_open)(redkv **out, const redkv_options *opt);
#define redkv_open(out, opt) redkv_open_sized((out), (opt), sizeof(redkv_options))
/* A store for the child namespace NS_ns (or ns when s has none) sharing s's client. */
REDKV_API int redkv_with_namespace(redkv *parent, const char *ns, redkv **out);
/* Releases s; the shared client is shut down when the last store closes. NULL: no-op. */
REDKV_API void redkv_close(redkv *s);
/* The namespace, or NULL when there is none. Valid while s is. */
REDKV_API const char *redkv_namespace(const redkv *s);

#define REDKV_KEEP_TTL 1u
/* Stores val at key; expires after expires_in_ms (> 0), never (0), or keeps the key's
   current expiry (REDKV_KEEP_TTL, with expires_in_ms 0). */
REDKV_API int redkv_set(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
                        int64_t expires_in_ms, unsigned flags);
/* The value (free *val with redkv_free; it has a NUL after vlen bytes), or MISSING.
   renew_for_ms > 0 resets a key's expiry to that, atomically with the read, if it has one. */
REDKV_API int redkv_get(redkv *s, const void *key, size_t klen, int64_t renew_for_ms,
                        void **val, size_t *vlen);
/* ditto, into buf: no allocation; ETOOBIG sets *vlen to the size needed (nothing is copied,
   and the renewal, if asked, has happened). */
REDKV_API int redkv_get_into(redkv *s, const void *key, size_t klen, int64_t renew_for_ms,
                             void *buf, size_t cap, size_t *vlen);
/* Removes key; a missing key is no error. */
REDKV_API int redkv_delete(redkv *s, const void *key, size_t klen);
/* Removes every key of the namespace and its descendants (NS:* and NS_*:*), incrementally.
   ECONFIG when s has no namespace. */
REDKV_API int redkv_delete_all(redkv *s);
/* 1, 0, or an error < 0. */
REDKV_API int redkv_exists(redkv *s, const void *key, size_t klen);
/* OK with *ms left, PERSISTENT (no expiry), or MISSING. */
REDKV_API int redkv_expires_in(redkv *s, const void *key, size_t klen, int64_t *ms);
/* Adds delta (may be negative) to the integer at key, atomically, and sets *value to the
   result; a missing key counts from 0. expires_in_ms > 0 gives the key that expiry only if
   it has none yet (a fixed window: the first count starts it, later ones keep it); 0 leaves
   the expiry alone. ESERVER when the value is not an integer or the sum would overflow. */
REDKV_API int redkv_incr(redkv *s, const void *key, size_t klen, int64_t delta,
                         int64_t expires_in_ms, int64_t *value);
/* A PING round trip on a pooled connection (connecting, AUTH, SELECT first if need be). */
REDKV_API int redkv_ping(redkv *s);
REDKV_API void redkv_free(void *p);                 /* frees what redkv_get returned */
REDKV_API const char *redkv_strerror(int status);   /* a short text for a status */
REDKV_API const char *redkv_last_error(void);       /* the calling thread's last error, in words */
/* The library's version, "MAJOR.MINOR.PATCH" (of the library linked, not of this header). */
REDKV_API const char *redkv_version(void);

/* The client-side cache's counters, over the whole client (every store of one open); the
   struct and the function share a name, as struct stat and stat() do. */
struct redkv_cache_stats {
    uint64_t hits, misses;    /* plain reads answered from memory; sent to the server */
    uint64_t invalidations;   /* entries dropped by the server's pushes or our own writes */
    uint64_t flushes;         /* cache emptied: FLUSHALL/FLUSHDB, tracking lost, delete_all */
    uint64_t evictions;       /* entries dropped to stay within cache_bytes */
    size_t bytes, entries;    /* held now (bytes: entries, keys, values and the table) */
    int tracking;             /* 1: on; 0: not (yet); -1: refused by the server, no cache */
};
/* Fills *out (all zero when the client has no cache). OK, or EINVAL. */
REDKV_API int redkv_cache_stats(redkv *s, struct redkv_cache_stats *out);

/* ---- asynchronous use --------------------------------------------------------------- */

/* Called exactly once per accepted request. status: as the blocking form returns it.
   get: val/vlen hold the value (valid only during the callback); exists: n is 1 or 0;
   expires_in: n is the milliseconds left (status OK), else status PERSISTENT or MISSING;
   delete: n is the number of keys removed; set: n is 0; incr: n is the new value. */
typedef void redkv_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg);

/* Queue a request; 0 when queued (the callback will run from redkv_process), or an error < 0
   when refused at once (EINVAL, ENOMEM), and then the callback is never called. */
REDKV_API int redkv_set_async(redkv *s, const void *key, size_t klen, const void *val, size_t vlen,
                              int64_t expires_in_ms, unsigned flags, redkv_cb *cb, void *arg);
REDKV_API int redkv_get_async(redkv *s, const void *key, size_t klen, int64_t renew_for_ms,
                              redkv_cb *cb, void *arg);
REDKV_API int redkv_delete_async(redkv *s, const void *key, size_t klen, redkv_cb *cb, void *arg);
REDKV_API int redkv_exists_async(redkv *s, const void *key, size_t klen, redkv_cb *cb, void *arg);
REDKV_API int redkv_expires_in_async(redkv *s, const void *key, size_t klen, redkv_cb *cb,
                                     void *arg);
/* ditto redkv_incr; n is the new value. */
REDKV_API int redkv_incr_async(redkv *s, const void *key, size_t klen, int64_t delta,
                               int64_t expires_in_ms, redkv_cb *cb, void *arg);

/* Driving from any event loop. The asynchronous requests of one client (every store derived
   from one redkv_open) share one connection of their own, pipelined, and are driven from one
   thread at a time; the blocking calls keep using the pool. */
enum { REDKV_READ = 1, REDKV_WRITE = 2 };
/* The descriptor to watch, or -1 when none is open. After a reconnect it differs from the
   one before (never a reused number), so a loop re-registers when the value changes. */
REDKV_API int redkv_fd(redkv *s);
REDKV_API int redkv_events(redkv *s);      /* REDKV_READ | REDKV_WRITE: what to wait for now */
/* Does the ready I/O, connects, runs callbacks, expires requests past their timeout;
   0, or the connection error it has just delivered to callbacks. EINVAL from a callback. */
REDKV_API int redkv_process(redkv *s, int events);
REDKV_API int redkv_timeout_ms(redkv *s);  /* ms until redkv_process must run anyway; -1: none */
REDKV_API int redkv_pending(redkv *s);     /* the caller's requests queued or in flight */

/* Where memory comes from, for targets with their own heap; call before any open.
   NULL arguments restore libc's functions. */
REDKV_API void redkv_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                                   void (*free_fn)(void *));

#ifdef __cplusplus
}
#endif
#endif
