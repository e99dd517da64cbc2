/* net.h - what the layers above see of net/: errors, the configuration read from a URL,
 * requests and the clock. Connections (conn.h), the pool and the topologies (topology.h)
 * are net/'s own; the store reaches servers through the router (router.h). Knows nothing
 * of namespaces. */
#ifndef REDKV_NET_H
#define REDKV_NET_H

#include "fmacros.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "redkv.h"
#include "resp.h"


/* ---- errors (error.c) ---------------------------------------------------------------- */

/* Records a message for redkv_last_error() in this thread and returns code. */
RK_INTERNAL int rk_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
RK_INTERNAL void rk_error_clear(void);
RK_INTERNAL const char *rk_error_text(void);
/* Server text fit for a message: at most cap-1 bytes, printable, cut where Redis starts
   echoing our arguments ("with args beginning with"), and any secret (a password, or the
   secret NULL) that still shows replaced by "***". */
RK_INTERNAL void rk_redact(char *out, size_t cap, const char *text, size_t len, const char *secret);
/* 1 when a server's error says it cannot take a client at all (full, protected mode,
   loading): a refused connection, not a refused command. */
RK_INTERNAL int rk_refusal(const char *text, size_t len);   /* this thread's last message, or "no error" */

/* ---- configuration (url.c) ------------------------------------------------------------ */

/* What the caller's options say of the connection; every field zero/NULL: from the URL. */
typedef struct rk_settings {
    const char *url;          /* NULL: redis://localhost:6379 */
    int db, port;             /* > 0: overrides */
    const char *username, *password;
    int connect_timeout_ms, command_timeout_ms, pool_size;   /* > 0: overrides; < 0: EINVAL */
    size_t max_value_len;
    int cluster;
    const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    int tls_no_verify;
    const redkv_transport *transport;
    const char *sentinel_master;   /* non-NULL: the URL's hosts are sentinels of this master */
} rk_settings;

enum rk_verify { RK_VERIFY_REQUIRED, RK_VERIFY_OPTIONAL, RK_VERIFY_NONE };

typedef struct rk_config {
    char *host;               /* TCP host name or address; NULL for a unix socket */
    char *path;               /* unix socket path; NULL for TCP */
    char *where;              /* "host:port" or the path, for messages (set by rk_config_where) */
    int port;
    int db;
    char *user, *pass;        /* NULL: none */
    int connect_timeout_ms, command_timeout_ms, pool_size;
    resp_limits limits;
    /* Redis Cluster (redis+cluster://, or cluster set): host and port are the first seed. */
    int cluster;
    int nseeds;
    struct rk_seed { char *host; int port; } *seeds;
    /* TLS: rediss:// (or a transport given); the files and names are the URL's, overridden */
    int tls;
    char *tls_ca, *tls_cert, *tls_key, *tls_sni;
    enum rk_verify tls_verify;
    int tls_check_hostname;
    /* The transport every connection goes through: the caller's, the built-in TLS one, or
       NULL for plain sockets. Owned by the root config (tls_owned); node copies share it. */
    const redkv_transport *tp;
    redkv_transport tls_tp;
    int tls_owned;
    /* Redis Sentinel (redis+sentinel://, or sentinel_master set): the seeds are the
       sentinels (host and port: the first); user, pass and db are the data nodes'. */
    int sentinel;
    char *sentinel_master;    /* the name the sentinels know the master by */
    char *sentinel_user, *sentinel_pass;   /* AUTH to the sentinels; NULL: none */
    /* The client-side cache's tracking connection (track.c) sets these on its own copy:
       HELLO 3 (AUTH inside it), then CLIENT TRACKING on BCAST over track_prefix ("" and 0:
       every key). Push replies (RESP3 '>') are no request's: they go to push_fn. */
    int resp3, tracking;
    const char *track_prefix;
    size_t track_plen;
    void (*push_fn)(void *arg, const resp_reply *push);
    void *push_arg;
} rk_config;

/* Reads the URL (NULL: the default) and applies the settings' overrides (set may be NULL).
   0, or ECONFIG / ENOMEM / ETLS with the message set (never naming the password). */
RK_INTERNAL int rk_config_init(rk_config *cfg, const rk_settings *set);
RK_INTERNAL void rk_config_free(rk_config *cfg);
/* Sets cfg->where from its host and port (or path): OK or ENOMEM. */
RK_INTERNAL int rk_config_where(rk_config *cfg);
/* A NUL-terminated copy of s[0..n), from the allocator hook; NULL when memory ran out. */
RK_INTERNAL char *rk_strndup(const char *s, size_t n);

/* ---- client-side cache tracking (track.c) ------------------------------------------------ */

#ifndef REDKV_NO_CACHE
/* A connection of its own per node that serves the client's keys, in RESP3, with CLIENT
   TRACKING on BCAST over a key prefix: the node pushes the name of every key under it that
   anyone changes there (or a null for a FLUSHALL/FLUSHDB). Each push goes to fn(arg, push);
   fn(arg, NULL) says tracking was lost (or is on anew) on one node: whatever was learnt
   under it must be forgotten. A tracking set holds a client's trackers, one per node. */
typedef struct rk_tracker rk_tracker;
typedef struct rk_tracking rk_tracking;
typedef void rk_push_fn(void *arg, const resp_reply *push);

/* An empty set; no I/O. OK, or ENOMEM. */
RK_INTERNAL int rk_tracking_new(const char *prefix, size_t plen, rk_push_fn *fn, void *arg,
                                rk_tracking **out);
RK_INTERNAL void rk_tracking_free(rk_tracking *set);
/* The tracker of node (a router's node configuration, told apart by its address in
   memory), made on first use when create is set (no I/O yet); NULL when there is none, or
   no memory, or too many nodes. The caller serialises calls on one set. */
RK_INTERNAL rk_tracker *rk_tracking_for(rk_tracking *set, const rk_config *node, int create);
/* Takes in every push already received (one non-blocking read when tracking is on) and
   moves a connect along; wait_ms > 0 waits up to that for tracking to come on. 1: tracking
   is on, every invalidation that reached the socket has gone to fn; 0: not on (connecting,
   lost, waiting before a retry); REDKV_ECONFIG: the server refused HELLO 3 or CLIENT
   TRACKING (Redis < 6, an ACL): it never will be. */
RK_INTERNAL int rk_tracker_poll(rk_tracker *t, int wait_ms);
#endif

/* ---- requests (conn.c) ------------------------------------------------------------------ */

/* A connection; its insides are net/'s own (conn.h). */
typedef struct rk_conn rk_conn;

typedef struct rk_req rk_req;
/* Called exactly once per request: with REDKV_OK and the reply (valid during the call; it
   may be an error reply), or with an error status and reply NULL. */
typedef void rk_done_fn(rk_req *req, int status, const resp_reply *reply);

/* Writes one command into out (with the resp_encode_* calls): 0, or non-zero when memory
   ran out (what it wrote is then taken back by the caller). */
typedef int rk_encode_fn(resp_buf *out, const void *arg);

struct rk_req {
    rk_req *next;
    size_t len;               /* bytes of the encoded command */
    int64_t deadline;         /* ms, monotonic clock */
    rk_done_fn *done;
    void *ctx;                /* the owner's */
    int status;               /* what done was given */
    int completed;            /* set just before done runs */
#ifndef REDKV_NO_THREADS
    struct rk_waiter *waiter; /* its caller waits in another thread (conn.c); NULL: none */
#endif
};

/* CONNECTING: TCP; SECURING: the transport's handshake (TLS); HANDSHAKE: AUTH, SELECT. */
RK_INTERNAL int64_t rk_now_ms(void);
RK_INTERNAL int64_t rk_deadline(int timeout_ms);

/* Queues req on c for the command encode(arg) writes, to go out with the next write:
   deadline 0 means the command timeout from now. 0, or ENOMEM (nothing queued). */
RK_INTERNAL int rk_conn_queue(rk_conn *c, rk_req *req, rk_encode_fn *encode, const void *arg,
                  int64_t deadline);

#endif
