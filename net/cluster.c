/* cluster.c - the Redis Cluster topology: key slots, and the slot map read with CLUSTER
 * SLOTS from the first node that answers. The router (router.c) follows MOVED and ASK and
 * retries; this file only says which node serves a slot and learns the map. */
#include "fmacros.h"

#include <string.h>

#include "topology.h"

#ifndef REDKV_NO_CLUSTER

#ifdef REDKV_NO_THREADS
#define SLOTS_LOCK(m)   ((void)0)
#define SLOTS_UNLOCK(m) ((void)0)
#define NODES_LOCK(r)   ((void)0)
#define NODES_UNLOCK(r) ((void)0)
#else
#define NODES_LOCK(r)   pthread_mutex_lock(&(r)->lock)
#define NODES_UNLOCK(r) pthread_mutex_unlock(&(r)->lock)
#define SLOTS_LOCK(m)   pthread_mutex_lock(&(m)->lock)
#define SLOTS_UNLOCK(m) pthread_mutex_unlock(&(m)->lock)
#endif

#define RK_SLOTS 16384
#define MAX_NODES 1024

/* ---- slots ---------------------------------------------------------------------------------- */

static unsigned crc16_byte(unsigned crc, unsigned char b)
{
    crc ^= (unsigned)b << 8;
    for (int bit = 0; bit < 8; bit++)
        crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    return crc & 0xffff;
}

uint16_t rk_crc16(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = crc16_byte(crc, b[i]);
    return (uint16_t)crc;
}

/* The key is the two parts prefix and key; a hash tag may straddle them. */
int rk_key_slot(const void *prefix, size_t plen, const void *key, size_t klen)
{
    const unsigned char *a = prefix, *b = key;
    size_t n = plen + klen, open = n, close = n;
#define AT(i) ((i) < plen ? a[(i)] : b[(i) - plen])
    for (size_t i = 0; i < n; i++)
        if (AT(i) == '{') {
            open = i;
            break;
        }
    for (size_t i = open + 1; i < n; i++)
        if (AT(i) == '}') {
            close = i;
            break;
        }
#undef AT
    size_t from = 0, to = n;                /* the bytes hashed: [from, to) */
    if (close < n && close > open + 1) {
        from = open + 1;
        to = close;
    }
    /* CRC over [from, to) of prefix+key, without joining them. */
    unsigned crc = 0;
    for (size_t i = from; i < to; i++)
        crc = crc16_byte(crc, i < plen ? a[i] : b[i - plen]);
    return (int)(crc % RK_SLOTS);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

rk_node *rk_router_node(rk_router *r, const char *host, size_t hlen, int port)
{
    rk_node *found = NULL;
    NODES_LOCK(r);
    for (int i = 0; i < r->nnodes && !found; i++) {
        const rk_config *nc = &r->nodes[i]->cfg;
        if (nc->host && nc->port == port && strlen(nc->host) == hlen &&
            memcmp(nc->host, host, hlen) == 0)
            found = r->nodes[i];
    }
    if (!found && r->nnodes < MAX_NODES && (found = rk_node_new(r->cfg, host, hlen, port)) &&
        rk_router_add(r, found) < 0) {
        rk_node_free(found);
        found = NULL;
    }
    NODES_UNLOCK(r);
    return found;
}

int rk_split_addr(const char *addr, size_t len, const char **host, size_t *hlen, int *port)
{
    /* the port after the last colon (an IPv6 host has colons of its own) */
    const char *colon = NULL;
    int p = 0;
    for (size_t i = 0; i < len; i++)
        if (addr[i] == ':')
            colon = addr + i;
    for (const char *c = colon ? colon + 1 : addr + len; c < addr + len && p <= 65535; c++)
        p = *c >= '0' && *c <= '9' ? p * 10 + (*c - '0') : 65536;
    if (!colon || colon == addr || p <= 0 || p > 65535)
        return -1;
    *host = addr;
    *hlen = (size_t)(colon - addr);
    if (*hlen >= 2 && addr[0] == '[' && addr[*hlen - 1] == ']') {
        (*host)++;
        *hlen -= 2;
    }
    *port = p;
    return 0;
}

/* ---- the slot map ---------------------------------------------------------------------------- */

typedef struct slot_map {
    rk_node *slots[RK_SLOTS]; /* the master of each slot; NULL: not known */
    rk_node *last_ok;         /* the node that last gave its map: asked first */
    unsigned long gen;        /* bumped whenever slots changes (router.c keeps async order by it) */
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;
#endif
} slot_map;

static slot_map *map_of(rk_router *r) { return r->topo_state; }

typedef struct slots_call {
    rk_req req;               /* first */
    rk_router *router;
    const rk_node *asked;
    rk_node **fresh;          /* the map being read */
    int status;
} slots_call;

/* One range of CLUSTER SLOTS: [start, end, [host, port, id, ...], replicas...]. */
static int read_range(slots_call *sc, const resp_reply *r)
{
    if (r->type != RESP_ARRAY || r->len < 3)
        return -1;
    const resp_reply *lo = resp_element(r, 0), *hi = resp_element(r, 1), *m = resp_element(r, 2);
    if (lo->type != RESP_INTEGER || hi->type != RESP_INTEGER || lo->integer < 0 ||
        hi->integer >= RK_SLOTS || lo->integer > hi->integer || m->type != RESP_ARRAY || m->len < 2)
        return -1;
    const resp_reply *h = resp_element(m, 0), *p = resp_element(m, 1);
    if (h->type != RESP_BULK || p->type != RESP_INTEGER || p->integer <= 0 || p->integer > 65535)
        return -1;
    const char *host = h->str;
    size_t hlen = h->len;
    if (hlen == 0 || (hlen == 1 && host[0] == '?')) {   /* "the address you reached me at" */
        host = sc->asked->cfg.host;
        hlen = strlen(host);
    }
    rk_node *node = rk_router_node(sc->router, host, hlen, (int)p->integer);
    if (!node)
        return -2;
    for (long long s = lo->integer; s <= hi->integer; s++)
        sc->fresh[s] = node;
    return 0;
}

static void slots_done(rk_req *req, int status, const resp_reply *r)
{
    slots_call *sc = (slots_call *)req;
    if (status != REDKV_OK) {
        sc->status = status;
        return;
    }
    if (r->type == RESP_ERROR) {
        char text[200];
        rk_redact(text, sizeof text, r->str, r->len, NULL);
        sc->status = rk_error(REDKV_ESERVER, "CLUSTER SLOTS failed: %s", text);
        return;
    }
    if (r->type != RESP_ARRAY) {
        sc->status = rk_error(REDKV_ESERVER, "unexpected reply to CLUSTER SLOTS");
        return;
    }
    for (size_t i = 0; i < r->len && !sc->status; i++) {
        int rc = read_range(sc, resp_element(r, i));
        if (rc == -1)
            sc->status = rk_error(REDKV_ESERVER, "unexpected reply to CLUSTER SLOTS");
        else if (rc == -2)
            sc->status = rk_error(REDKV_ENOMEM, "out of memory");
    }
}

static int encode_cluster_slots(resp_buf *out, const void *arg)
{
    (void)arg;
    return resp_encode_header(out, 2) | resp_encode_arg(out, "CLUSTER", 7) |
           resp_encode_arg(out, "SLOTS", 5);
}

/* Reads node's map into fresh: OK or an error. */
static int ask_slots(rk_router *r, rk_node *node, int64_t deadline, rk_node **fresh)
{
    rk_conn *conn;
    int rc = rk_pool_get(&node->pool, deadline, &conn);
    if (rc)
        return rc;
    slots_call sc;
    memset(&sc, 0, sizeof sc);
    sc.router = r;
    sc.asked = node;
    sc.fresh = fresh;
    memset(fresh, 0, RK_SLOTS * sizeof *fresh);
    sc.req.done = slots_done;
    if ((rc = rk_conn_queue(conn, &sc.req, encode_cluster_slots, NULL, deadline)) == REDKV_OK)
        rk_conn_run(conn, &sc.req);
    rk_pool_put(&node->pool, conn);
    return rc ? rc : sc.status;
}

/* Keeps the map fresh, read from node. The generation moves only when a slot changed: a
   map read again unchanged holds no asynchronous request back. */
static void install_map(slot_map *m, rk_node **fresh, rk_node *node)
{
    SLOTS_LOCK(m);
    if (memcmp(m->slots, fresh, sizeof m->slots) != 0) {
        memcpy(m->slots, fresh, sizeof m->slots);
        m->gen++;
    }
    m->last_ok = node;
    SLOTS_UNLOCK(m);
}

/* Asks node for the map and keeps it when it answers: 1 when the refresh is over (an
   answer, or an error no other node would change), else 0. */
static int refresh_from(rk_router *r, rk_node *node, int64_t deadline, rk_node **fresh, int *rc)
{
    slot_map *m = map_of(r);
    if (rk_now_ms() >= deadline) {
        *rc = rk_error(REDKV_ETIMEDOUT, "no cluster node gave its slot map in time");
        return 1;
    }
    if ((*rc = ask_slots(r, node, deadline, fresh)) == REDKV_OK)
        install_map(m, fresh, node);
    return *rc == REDKV_OK || *rc == REDKV_EAUTH || *rc == REDKV_ENOMEM;
}

/* Who is asked for the map, in turn: first the node that answered last, then every other
   known node (the table may grow meanwhile: new ones are asked too), and avoid last of
   all. The blocking and the asynchronous reads go the same way. */
typedef struct ask_order {
    rk_node *first;
    const rk_node *avoid;
    int i, stage;
} ask_order;

static void ask_order_init(rk_router *r, const rk_node *avoid, ask_order *o)
{
    slot_map *m = map_of(r);
    memset(o, 0, sizeof *o);
    o->avoid = avoid;
    SLOTS_LOCK(m);
    o->first = m->last_ok != avoid ? m->last_ok : NULL;
    SLOTS_UNLOCK(m);
}

/* The next node to ask, or NULL when every one has been. */
static rk_node *ask_next(rk_router *r, ask_order *o)
{
    rk_node *node = NULL;
    if (o->stage == 0) {
        o->stage = 1;
        if (o->first)
            return o->first;
    }
    while (o->stage == 1 && (node = rk_router_node_at(r, o->i++)) != NULL)
        if (node != o->first && node != o->avoid)
            return node;
    if (o->stage == 1) {
        o->stage = 2;
        return (rk_node *)o->avoid;
    }
    return NULL;
}

static void cluster_refresh_to(rk_router *r, const rk_node *avoid, int64_t deadline, int *status)
{
    rk_node **fresh = resp_malloc(RK_SLOTS * sizeof *fresh);
    int rc = fresh ? REDKV_ECONN : rk_error(REDKV_ENOMEM, "out of memory");
    ask_order o;
    ask_order_init(r, avoid, &o);
    rk_node *node;
    for (int done = !fresh; !done && (node = ask_next(r, &o)) != NULL;)
        done = refresh_from(r, node, deadline, fresh, &rc);
    resp_free(fresh);
    if (status)
        *status = rc;
}

static void cluster_refresh(rk_router *r, const rk_node *avoid, int64_t deadline)
{
    cluster_refresh_to(r, avoid, deadline, NULL);
}

/* The master the map names for slot (none: the node that gave the map last), or NULL; and
   the map's generation with it, read together, when gen is not NULL. */
static rk_node *slot_node(rk_router *r, int slot, unsigned long *gen)
{
    slot_map *m = map_of(r);
    SLOTS_LOCK(m);
    rk_node *node = slot >= 0 ? m->slots[slot] : m->last_ok;
    if (gen)
        *gen = m->gen;
    SLOTS_UNLOCK(m);
    return node;
}

static int cluster_node_for(rk_router *r, int slot, int64_t deadline, rk_node **out)
{
    for (int attempt = 0;; attempt++) {
        if ((*out = slot_node(r, slot, NULL)) != NULL)
            return REDKV_OK;
        if (slot < 0 && attempt == 0) {
            *out = rk_router_node_at(r, 0);   /* no key: any node, the first seed */
            return REDKV_OK;
        }
        if (attempt == 1)
            return rk_error(REDKV_ECONN, "no cluster node serves slot %d", slot);
        int rc;
        cluster_refresh_to(r, NULL, deadline, &rc);
        if (rc)
            return rc;
    }
}

/* No I/O: the master the map names, else any node (whose MOVED answer then says). */
static rk_node *cluster_node_now(rk_router *r, int slot) { return rk_cluster_place(r, slot, NULL); }

static int cluster_redirected(rk_router *r, int slot, const char *addr, size_t len, int moved,
                              rk_node **out)
{
    const char *host;
    size_t hlen;
    int port;
    if (rk_split_addr(addr, len, &host, &hlen, &port) < 0)
        return rk_error(REDKV_ESERVER, "a cluster redirection to a bad address");
    if (!(*out = rk_router_node(r, host, hlen, port)))
        return rk_error(REDKV_ENOMEM, "out of memory");
    if (moved && slot >= 0) {
        slot_map *m = map_of(r);
        SLOTS_LOCK(m);
        if (m->slots[slot] != *out) {
            m->slots[slot] = *out;
            m->gen++;
        }
        SLOTS_UNLOCK(m);
    }
    return REDKV_OK;
}

static int cluster_masters(rk_router *r, int64_t deadline, rk_node ***out)
{
    slot_map *m = map_of(r);
    int known = 0;
    SLOTS_LOCK(m);
    for (int s = 0; s < RK_SLOTS && !known; s++)   /* read, or learnt from MOVED */
        known = m->slots[s] != NULL;
    SLOTS_UNLOCK(m);
    int rc = REDKV_OK;
    if (!known)
        cluster_refresh_to(r, NULL, deadline, &rc);
    if (rc)
        return rc;
    /* every distinct master, however many: at most one per slot */
    rk_node **list = resp_malloc(RK_SLOTS * sizeof *list);
    if (!list)
        return rk_error(REDKV_ENOMEM, "out of memory");
    int n = 0;
    SLOTS_LOCK(m);
    for (int s = 0; s < RK_SLOTS; s++) {
        rk_node *node = m->slots[s];
        int seen = !node;
        for (int j = n - 1; j >= 0 && !seen; j--)
            seen = list[j] == node;
        if (!seen)
            list[n++] = node;
    }
    SLOTS_UNLOCK(m);
    *out = list;
    return n;
}

/* ---- for the asynchronous path (router.c) ------------------------------------------------------ */

rk_node *rk_cluster_place(rk_router *r, int slot, unsigned long *gen)
{
    rk_node *node = slot_node(r, slot, gen);
    return node ? node : rk_router_node_at(r, 0);
}

/* One asynchronous read: its scratch map lives only as long as the read. */
struct rk_map_read {
    slots_call sc;            /* first: sc.req is what goes on a node's connection */
    ask_order order;
    rk_node *fresh[RK_SLOTS];
};

rk_map_read *rk_map_read_new(rk_router *r, const rk_node *avoid)
{
    rk_map_read *rd = resp_malloc(sizeof *rd);
    if (!rd)
        return NULL;
    memset(&rd->sc, 0, sizeof rd->sc);
    rd->sc.router = r;
    rd->sc.fresh = rd->fresh;
    ask_order_init(r, avoid, &rd->order);
    return rd;
}

rk_node *rk_map_read_next(rk_map_read *rd, rk_done_fn *done, void *ctx, int64_t deadline)
{
    rk_node *node;
    while ((node = ask_next(rd->sc.router, &rd->order)) != NULL) {
        memset(&rd->sc.req, 0, sizeof rd->sc.req);
        rd->sc.req.done = done;
        rd->sc.req.ctx = ctx;
        rd->sc.asked = node;
        rd->sc.status = REDKV_OK;
        memset(rd->fresh, 0, sizeof rd->fresh);
        if (rk_conn_queue(&node->async, &rd->sc.req, encode_cluster_slots, NULL, deadline) ==
            REDKV_OK)
            return node;
    }
    return NULL;
}

int rk_map_read_take(rk_map_read *rd, int status, const resp_reply *reply)
{
    slots_done(&rd->sc.req, status, reply);
    if (rd->sc.status == REDKV_OK)
        install_map(map_of(rd->sc.router), rd->fresh, (rk_node *)rd->sc.asked);
    return rd->sc.status;
}

void rk_map_read_free(rk_map_read *rd) { resp_free(rd); }

static void cluster_free(rk_router *r)
{
    slot_map *m = map_of(r);
    if (!m)
        return;
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&m->lock);
#endif
    resp_free(m);
    r->topo_state = NULL;
}

static const rk_topology cluster_topology = {
    cluster_node_for, cluster_node_now, cluster_redirected, cluster_refresh, cluster_masters,
    cluster_free,
};

int rk_cluster_attach(rk_router *r)
{
    slot_map *m = resp_malloc(sizeof *m);
    if (!m)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(m, 0, sizeof *m);
#ifndef REDKV_NO_THREADS
    if (pthread_mutex_init(&m->lock, NULL)) {
        resp_free(m);
        return rk_error(REDKV_ENOMEM, "cannot create the cluster's lock");
    }
#endif
    r->topo_state = m;
    r->topo = &cluster_topology;
    r->multi = 1;
    for (int i = 0; i < r->cfg->nseeds; i++) {
        const struct rk_seed *seed = &r->cfg->seeds[i];
        if (!rk_router_node(r, seed->host, strlen(seed->host), seed->port))
            return rk_error(REDKV_ENOMEM, "out of memory");
    }
    return REDKV_OK;
}

#else /* REDKV_NO_CLUSTER: the URL parser refuses a cluster; keys need no slot. */

int rk_key_slot(const void *prefix, size_t plen, const void *key, size_t klen)
{
    (void)prefix, (void)plen, (void)key, (void)klen;
    return 0;
}

int rk_cluster_attach(rk_router *r)
{
    (void)r;
    return rk_error(REDKV_ECONFIG, "built without Redis Cluster support (REDKV_NO_CLUSTER)");
}

#endif
