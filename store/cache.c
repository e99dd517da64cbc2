/* cache.c - the client-side cache: plain reads (get without renewal, exists), blocking or
 * asynchronous, answered from memory, kept current by the servers' invalidations (net/track.c:
 * one RESP3 connection per node that serves our keys, CLIENT TRACKING on BCAST over the
 * client's key prefix).
 *
 * The guarantee: a hit never returns a value whose invalidation has reached our socket.
 * Every hit first reads in what the tracking socket of the key's node holds (one
 * non-blocking recv), under the cache's lock. A fill races with invalidations: a read that
 * misses leaves a placeholder with a ticket before its command goes out, an invalidation of
 * the key (or a flush) removes the placeholder, and the reply fills only the placeholder it
 * left. So a value read before a write that another thread's hit has already seen
 * invalidated is never kept. Tracking lost or on anew on any node: everything is forgotten;
 * on a node whose tracking is not on, nothing is served or filled.
 *
 * Where a key lives may change (a failover, a slot moved): each entry remembers the node
 * (its tracker) it was learnt under, and a read that finds the key served by another node
 * now, or a cluster's slot map changed (the router counts redirections and refreshes),
 * empties the cache: the new node's invalidations were never ours to see.
 *
 * Entries: a value (with the key's expiry as the server told it), a known absence, or
 * "exists" with an expiry; least recently used first out, within cache_bytes. */
#include "fmacros.h"

#ifndef REDKV_NO_CACHE

#include <string.h>

#include "store.h"

#ifndef REDKV_NO_THREADS
#include <pthread.h>
#define CACHE_LOCK(c)   pthread_mutex_lock(&(c)->lock)
#define CACHE_UNLOCK(c) pthread_mutex_unlock(&(c)->lock)
#else
#define CACHE_LOCK(c)   ((void)0)
#define CACHE_UNLOCK(c) ((void)0)
#endif

#define CACHE_MIN_BUCKETS 64
/* Asynchronous writes in flight, counted by key hash (a key shares its slot with others:
   a read of those goes to the server meanwhile, never wrong). */
#define CACHE_WRITE_SLOTS 256

/* Reads a key and its expiry in one round trip; a missing key reads as nil. */
static const char CACHE_READ_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "return {v, redis.call('PTTL', KEYS[1])}\n";

enum cache_kind { CE_PENDING, CE_VALUE, CE_MISSING, CE_PRESENT };

/* The LRU list's links; the list's head is one too, in the cache. */
typedef struct cache_link {
    struct cache_link *older, *newer;
} cache_link;

typedef struct cache_entry {
    cache_link link;                    /* first: a link is its entry */
    struct cache_entry *hnext;          /* the bucket's chain */
    uint64_t hash, ticket;              /* ticket: the fill a placeholder waits for */
    const rk_tracker *trk;              /* the tracking of the node it was learnt from */
    int64_t expire_at;                  /* ms, monotonic; 0: the key had no expiry */
    size_t klen, vlen;
    enum cache_kind kind;
    char data[];                        /* the key (with its namespace), then the value */
} cache_entry;

struct rk_cache {
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;
#endif
    rk_tracking *trackers;              /* one per node (track.c), used under the lock */
    rk_router *router;                  /* asked which node serves a key */
    unsigned long changes;              /* the router's slot map changes when last looked */
    int wait_ms;                        /* a blocking read waits this long for tracking */
    cache_entry **buckets;
    size_t nbuckets, count, used, limit;
    cache_link lru;                     /* lru.newer: the oldest; lru.older: the newest */
    uint64_t tickets;
    struct redkv_cache_stats st;
    uint32_t writing[CACHE_WRITE_SLOTS];   /* the event loop's thread only: no lock */
};

/* ---- the table ------------------------------------------------------------------------- */

static uint64_t cache_hash(const void *p1, size_t n1, const void *p2, size_t n2)
{
    uint64_t h = 1469598103934665603ull;    /* FNV-1a */
    for (size_t i = 0; i < n1; i++)
        h = (h ^ ((const unsigned char *)p1)[i]) * 1099511628211ull;
    for (size_t i = 0; i < n2; i++)
        h = (h ^ ((const unsigned char *)p2)[i]) * 1099511628211ull;
    return h;
}

static size_t entry_size(size_t klen, size_t vlen) { return sizeof(cache_entry) + klen + vlen; }

static cache_entry *cache_find(rk_cache *c, uint64_t h, const redkv *s, const void *key,
                               size_t klen)
{
    size_t plen = s->prefix_len;
    for (cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == plen + klen && memcmp(e->data, s->prefix, plen) == 0 &&
            (klen == 0 || memcmp(e->data + plen, key, klen) == 0))
            return e;
    return NULL;
}

static void lru_unlink(cache_entry *e)
{
    e->link.older->newer = e->link.newer;
    e->link.newer->older = e->link.older;
}

static void lru_push(rk_cache *c, cache_entry *e)     /* as the newest */
{
    e->link.older = c->lru.older;
    e->link.newer = &c->lru;
    c->lru.older->newer = &e->link;
    c->lru.older = &e->link;
}

#define OLDEST(c) ((cache_entry *)(c)->lru.newer)

static void cache_remove(rk_cache *c, cache_entry *e)
{
    cache_entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(e);
    c->count--;
    c->used -= entry_size(e->klen, e->vlen);
    resp_free(e);
}

static void cache_clear(rk_cache *c)
{
    while (c->lru.newer != &c->lru)
        cache_remove(c, OLDEST(c));
    c->st.flushes++;
}

/* Doubles the table when it is as full as it is long; a failed allocation keeps it. */
static void cache_grow(rk_cache *c)
{
    size_t n = c->nbuckets * 2, bytes = n * sizeof(cache_entry *);
    if (c->count < c->nbuckets || c->used + bytes / 2 > c->limit)
        return;
    cache_entry **b = resp_malloc(bytes);
    if (!b)
        return;
    memset(b, 0, bytes);
    for (size_t i = 0; i < c->nbuckets; i++)
        for (cache_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    resp_free(c->buckets);
    c->buckets = b;
    c->used += bytes / 2;
    c->nbuckets = n;
}

/* A new entry for s's key, the newest, after evicting the oldest until it fits; NULL when
   it cannot (too big for the budget, or no memory). */
static cache_entry *cache_insert(rk_cache *c, uint64_t h, const redkv *s, const void *key,
                                 size_t klen, const void *val, size_t vlen)
{
    size_t size = entry_size(s->prefix_len + klen, vlen);
    if (size > c->limit / 4)
        return NULL;                   /* one entry must not empty the whole cache */
    while (c->used + size > c->limit && c->lru.newer != &c->lru) {
        cache_remove(c, OLDEST(c));
        c->st.evictions++;
    }
    cache_entry *e = c->used + size <= c->limit ? resp_malloc(size) : NULL;
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->klen = s->prefix_len + klen;
    e->vlen = vlen;
    memcpy(e->data, s->prefix, s->prefix_len);
    if (klen)
        memcpy(e->data + s->prefix_len, key, klen);
    if (vlen)
        memcpy(e->data + e->klen, val, vlen);
    size_t b = h & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->count++;
    c->used += size;
    cache_grow(c);
    return e;
}

/* ---- invalidations ---------------------------------------------------------------------- */

/* Drops the entry of one full key name (namespace included), if any. */
static void cache_drop_name(rk_cache *c, const char *name, size_t len)
{
    uint64_t h = cache_hash(name, len, NULL, 0);
    for (cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == len && memcmp(e->data, name, len) == 0) {
            cache_remove(c, e);
            c->st.invalidations++;
            return;
        }
}

/* The tracking connection's pushes (called under the lock, from rk_tracker_poll):
   ["invalidate", [key, ...]] drops those keys; ["invalidate", null] (FLUSHALL, FLUSHDB)
   and NULL (tracking lost, or on anew) drop everything. */
static void cache_on_push(void *arg, const resp_reply *push)
{
    rk_cache *c = arg;
    if (!push) {
        cache_clear(c);
        return;
    }
    if (push->len != 2)
        return;
    const resp_reply *what = resp_element(push, 0), *keys = resp_element(push, 1);
    if (what->type != RESP_BULK || what->len != 10 || memcmp(what->str, "invalidate", 10))
        return;
    if (keys->type != RESP_ARRAY) {
        cache_clear(c);
        return;
    }
    for (size_t i = 0; i < keys->len; i++) {
        const resp_reply *k = resp_element(keys, i);
        if (k->type == RESP_BULK)
            cache_drop_name(c, k->str, k->len);
        else
            cache_clear(c);            /* not a key name: be safe */
    }
}

/* ---- lifetime ----------------------------------------------------------------------------- */

int rk_cache_new(rk_client *cl, size_t bytes, const char *prefix, rk_cache **out)
{
    *out = NULL;
    rk_cache *c = resp_malloc(sizeof *c);
    cache_entry **b = resp_malloc(CACHE_MIN_BUCKETS * sizeof *b);
    if (!c || !b) {
        resp_free(c);
        resp_free(b);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memset(c, 0, sizeof *c);
    memset(b, 0, CACHE_MIN_BUCKETS * sizeof *b);
    c->buckets = b;
    c->nbuckets = CACHE_MIN_BUCKETS;
    c->used = CACHE_MIN_BUCKETS * sizeof *b;
    c->limit = bytes;
    c->lru.newer = c->lru.older = &c->lru;
    c->wait_ms = cl->cfg.connect_timeout_ms + cl->cfg.command_timeout_ms;
    c->router = cl->router;
    int rc = rk_tracking_new(prefix, strlen(prefix), cache_on_push, c, &c->trackers);
    if (rc != REDKV_OK) {
        resp_free(b);
        resp_free(c);
        return rc;
    }
#ifndef REDKV_NO_THREADS
    pthread_mutex_init(&c->lock, NULL);
#endif
    *out = c;
    return REDKV_OK;
}

void rk_cache_free(rk_cache *c)
{
    if (!c)
        return;
    rk_tracking_free(c->trackers);
    while (c->lru.newer != &c->lru)
        cache_remove(c, OLDEST(c));
    resp_free(c->buckets);
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&c->lock);
#endif
    resp_free(c);
}

/* ---- lookups and fills ------------------------------------------------------------------ */

/* Under the lock: a cluster whose slot map changed since the last look may serve a key
   from a node whose invalidations we never saw: forget everything. */
static void cache_see_changes(rk_cache *c)
{
    unsigned long now = rk_route_changes(c->router);
    if (now == c->changes)
        return;
    c->changes = now;
    if (c->lru.newer != &c->lru)
        cache_clear(c);
}

/* Under the lock: node serves the key now. Takes in its invalidations, then returns the
   live entry for s's key, or NULL with fill's ticket and tracker set for the fill (ticket
   0: tracking is not on there, do not fill). want_value: an entry that knows only that
   the key exists does not answer. */
static cache_entry *cache_lookup(rk_cache *c, const redkv *s, const void *key, size_t klen,
                                 const rk_config *node, int wait_ms, int want_value,
                                 rk_cache_fill *fill)
{
    fill->ticket = 0;
    fill->trk = NULL;
    rk_tracker *t = node ? rk_tracking_for(c->trackers, node, 1) : NULL;
    int on = t ? rk_tracker_poll(t, wait_ms) : 0;
    c->st.tracking = on < 0 ? -1 : on;
    cache_see_changes(c);
    if (on != 1) {
        c->st.misses++;
        return NULL;
    }
    uint64_t h = cache_hash(s->prefix, s->prefix_len, key, klen);
    cache_entry *e = cache_find(c, h, s, key, klen);
    if (e && e->trk != t) {
        cache_clear(c);                /* another node serves it now (failover, resharding) */
        e = NULL;
    }
    if (e && e->expire_at && rk_now_ms() >= e->expire_at) {
        cache_remove(c, e);            /* expired on the server by now */
        e = NULL;
    }
    if (e && e->kind != CE_PENDING && (e->kind != CE_PRESENT || !want_value)) {
        lru_unlink(e);
        lru_push(c, e);
        c->st.hits++;
        return e;
    }
    c->st.misses++;
    if (e)
        cache_remove(c, e);
    e = cache_insert(c, h, s, key, klen, NULL, 0);
    if (e) {
        e->trk = fill->trk = t;
        fill->ticket = e->ticket = ++c->tickets;
    }
    return NULL;
}

/* Replaces the placeholder left by f's ticket, if it is still there, with what the server
   said: kind, the value, and the expiry (pttl ms from f->sent; < 0 none). */
static void cache_fill(rk_cache *c, const redkv *s, const void *key, size_t klen,
                       const rk_cache_fill *f, enum cache_kind kind, const void *val,
                       size_t vlen, int64_t pttl)
{
    if (!f->ticket || (pttl >= 0 && pttl <= 2))
        return;
    CACHE_LOCK(c);
    cache_see_changes(c);
    uint64_t h = cache_hash(s->prefix, s->prefix_len, key, klen);
    cache_entry *e = cache_find(c, h, s, key, klen);
    if (e && e->kind == CE_PENDING && e->ticket == f->ticket) {
        cache_remove(c, e);
        if ((e = cache_insert(c, h, s, key, klen, val, vlen)) != NULL) {
            e->kind = kind;
            e->trk = f->trk;
            /* The server counted pttl from when it ran the command, after sent: ending a
               millisecond early covers the clocks' rounding. */
            e->expire_at = pttl >= 0 ? f->sent + pttl - 1 : 0;
        }
    }
    CACHE_UNLOCK(c);
}

void rk_cache_forget(redkv *s, const void *key, size_t klen)
{
    rk_cache *c = s->cl->cache;
    CACHE_LOCK(c);
    uint64_t h = cache_hash(s->prefix, s->prefix_len, key, klen);
    cache_entry *e = cache_find(c, h, s, key, klen);
    if (e) {
        cache_remove(c, e);
        c->st.invalidations++;
    }
    CACHE_UNLOCK(c);
}

void rk_cache_forget_all(rk_client *cl)
{
    CACHE_LOCK(cl->cache);
    cache_clear(cl->cache);
    CACHE_UNLOCK(cl->cache);
}

int redkv_cache_stats(redkv *s, struct redkv_cache_stats *out)
{
    if (!s || s->closed || !out)
        return rk_error(REDKV_EINVAL, "the store or out is NULL, or the store is closed");
    memset(out, 0, sizeof *out);
    rk_cache *c = s->cl->cache;
    if (!c)
        return REDKV_OK;
    CACHE_LOCK(c);
    *out = c->st;
    out->bytes = c->used;
    out->entries = c->count;
    CACHE_UNLOCK(c);
    return REDKV_OK;
}

/* ---- the reads' commands and replies ------------------------------------------------------ */

static int cache_encode_read(resp_buf *out, const void *arg)
{
    const rk_cache_cmd *cc = arg;
    const redkv *s = cc->s;
    return resp_encode_header(out, 4) | resp_encode_arg(out, "EVAL", 4) |
           resp_encode_arg(out, CACHE_READ_SCRIPT, sizeof CACHE_READ_SCRIPT - 1) |
           resp_encode_arg(out, "1", 1) |
           resp_encode_arg2(out, s->prefix, s->prefix_len, cc->a.key, cc->a.klen);
}

void rk_cache_read_cmd(rk_cache_cmd *cc, const redkv *s, int exists, const void *key,
                       size_t klen)
{
    memset(&cc->a, 0, sizeof cc->a);
    cc->a.key = key;
    cc->a.klen = klen;
    cc->s = s;
    rk_op_cmd_init(&cc->oc, s, OP_PTTL, &cc->a);
    if (!exists) {
        cc->oc.cmd.encode = cache_encode_read;
        cc->oc.cmd.arg = cc;
    }
}

/* PTTL's answer, for exists: -2 none, -1 no expiry, else the milliseconds left. */
static void cache_exists_reply(redkv *s, const void *key, size_t klen, const rk_cache_fill *f,
                               int status, const resp_reply *r, rk_result *res)
{
    rk_interpret(OP_PTTL, status, r, res);
    if (res->status != REDKV_OK && res->status != REDKV_PERSISTENT && res->status != REDKV_MISSING)
        return;
    int64_t pttl = res->status == REDKV_OK ? res->n : -1;
    res->n = res->status != REDKV_MISSING;
    cache_fill(s->cl->cache, s, key, klen, f, res->n ? CE_PRESENT : CE_MISSING, NULL, 0, pttl);
    res->status = REDKV_OK;
}

void rk_cache_read_reply(redkv *s, int exists, const void *key, size_t klen,
                         const rk_cache_fill *f, int status, const resp_reply *r, rk_result *res)
{
    memset(res, 0, sizeof *res);
    if (exists) {
        cache_exists_reply(s, key, klen, f, status, r, res);
    } else if (status != REDKV_OK || r->type == RESP_ERROR) {
        rk_interpret(OP_GET, status, r, res);
    } else if (r->type == RESP_NIL) {       /* the read script's answer: nil, or [value, pttl] */
        cache_fill(s->cl->cache, s, key, klen, f, CE_MISSING, NULL, 0, -1);
        res->status = REDKV_MISSING;
    } else if (r->type == RESP_ARRAY && r->len == 2 && resp_element(r, 0)->type == RESP_BULK &&
               resp_element(r, 1)->type == RESP_INTEGER) {
        const resp_reply *v = resp_element(r, 0);
        cache_fill(s->cl->cache, s, key, klen, f, CE_VALUE, v->str, v->len,
                   resp_element(r, 1)->integer);
        res->val = v->str;
        res->vlen = v->len;
    } else {
        res->status = rk_error(REDKV_ESERVER, "unexpected reply to a read");
    }
}

/* ---- the blocking reads ------------------------------------------------------------------ */

typedef struct cache_call {
    rk_req req;               /* first: the router's request */
    redkv *s;
    const void *key;
    size_t klen;
    int exists;
    rk_cache_fill fill;
    rk_take_fn *take;
    void *ctx;
    int status;
    int64_t n;
} cache_call;

static void cache_call_done(rk_req *req, int status, const resp_reply *r)
{
    cache_call *call = (cache_call *)req;
    rk_result res;
    rk_cache_read_reply(call->s, call->exists, call->key, call->klen, &call->fill, status, r, &res);
    call->n = res.n;
    call->status = res.status == REDKV_OK && !call->exists ? call->take(call->ctx, res.val, res.vlen)
                                                         : res.status;
}

/* Sends call's command (the read script, or PTTL for exists) for a miss. */
static int cache_send(redkv *s, cache_call *call)
{
    rk_cache_cmd cc;
    rk_cache_read_cmd(&cc, s, call->exists, call->key, call->klen);
    call->req.done = cache_call_done;
    call->fill.sent = rk_now_ms();
    int64_t deadline = rk_call_deadline(s->cl);
    rk_route_call(s->cl->router, &cc.oc.cmd, &call->req, &deadline);
    return call->status;
}

/* The node that serves s's key now, as a blocking call finds it. */
static const rk_config *cache_node(redkv *s, const void *key, size_t klen, int64_t deadline)
{
    return rk_route_node_cfg(s->cl->router, s->prefix, s->prefix_len, key, klen, deadline);
}

int rk_cache_get(redkv *s, const void *key, size_t klen, rk_take_fn *take, void *ctx)
{
    rk_cache *c = s->cl->cache;
    cache_call call = {.s = s, .key = key, .klen = klen, .take = take, .ctx = ctx};
    const rk_config *node = cache_node(s, key, klen, rk_call_deadline(s->cl));
    CACHE_LOCK(c);
    cache_entry *e = cache_lookup(c, s, key, klen, node, c->wait_ms, 1, &call.fill);
    if (e) {
        int rc = e->kind == CE_MISSING ? REDKV_MISSING : take(ctx, e->data + e->klen, e->vlen);
        CACHE_UNLOCK(c);
        return rc;
    }
    CACHE_UNLOCK(c);
    return cache_send(s, &call);
}

int rk_cache_exists(redkv *s, const void *key, size_t klen)
{
    rk_cache *c = s->cl->cache;
    cache_call call = {.s = s, .key = key, .klen = klen, .exists = 1};
    const rk_config *node = cache_node(s, key, klen, rk_call_deadline(s->cl));
    CACHE_LOCK(c);
    cache_entry *e = cache_lookup(c, s, key, klen, node, c->wait_ms, 0, &call.fill);
    int found = e ? e->kind != CE_MISSING : -1;
    CACHE_UNLOCK(c);
    if (found >= 0)
        return found;
    int rc = cache_send(s, &call);
    return rc ? rc : (int)call.n;
}

/* ---- the asynchronous reads (the event loop's thread) --------------------------------------- */

static uint32_t *cache_writing(rk_cache *c, const redkv *s, const void *key, size_t klen)
{
    uint64_t h = cache_hash(s->prefix, s->prefix_len, key, klen);
    return &c->writing[h & (CACHE_WRITE_SLOTS - 1)];
}

void rk_cache_write_begin(redkv *s, const void *key, size_t klen)
{
    (*cache_writing(s->cl->cache, s, key, klen))++;
}

void rk_cache_write_end(redkv *s, const void *key, size_t klen)
{
    uint32_t *n = cache_writing(s->cl->cache, s, key, klen);
    if (*n)
        (*n)--;
    rk_cache_forget(s, key, klen);     /* read our own writes */
}

int rk_cache_read_async(redkv *s, int exists, const void *key, size_t klen, rk_take_fn *take,
                        void *ctx, int *status, int64_t *n, rk_cache_fill *fill)
{
    rk_cache *c = s->cl->cache;
    memset(fill, 0, sizeof *fill);
    int writing = *cache_writing(c, s, key, klen) != 0;
    /* no I/O: where the request would go; a blocking read's wait is not the loop's */
    const rk_config *node = writing ? NULL : cache_node(s, key, klen, 0);
    CACHE_LOCK(c);
    cache_entry *e = NULL;
    if (writing)                       /* behind our own write: the server answers */
        c->st.misses++;
    else
        e = cache_lookup(c, s, key, klen, node, 0, !exists, fill);
    if (e) {
        *n = exists ? e->kind != CE_MISSING : 0;
        *status = exists ? REDKV_OK : e->kind == CE_MISSING ? REDKV_MISSING
                                                            : take(ctx, e->data + e->klen, e->vlen);
        if (*status != REDKV_OK && *status != REDKV_MISSING) {
            c->st.hits--;              /* no room to keep the value: the server answers */
            c->st.misses++;
            e = NULL;
        }
    }
    CACHE_UNLOCK(c);
    fill->sent = rk_now_ms();
    return e != NULL;
}

#else   /* REDKV_NO_CACHE: the counters stay, always zero */

#include <string.h>

#include "store.h"

int redkv_cache_stats(redkv *s, struct redkv_cache_stats *out)
{
    if (!s || s->closed || !out)
        return REDKV_EINVAL;           /* kept small: this build is for small targets */
    memset(out, 0, sizeof *out);
    return REDKV_OK;
}

#endif
