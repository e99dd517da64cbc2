/* cluster.c - Redis Cluster: key slots, the table of nodes (each with its own pool of
 * blocking connections) and the slot map read from the server with CLUSTER SLOTS.
 *
 * Knows nothing of namespaces or of the commands the store sends: the store picks a node
 * with rk_cluster_node, and on a MOVED or ASK reply calls rk_cluster_node_at and
 * rk_cluster_set_slot / rk_cluster_refresh. Nodes are only ever added, so a node pointer
 * handed out stays valid until the client is freed. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "net.h"

#ifndef REDKV_NO_CLUSTER

#ifdef REDKV_NO_THREADS
#define LOCK(c)   ((void)0)
#define UNLOCK(c) ((void)0)
#else
#define LOCK(c)   pthread_mutex_lock(&(c)->lock)
#define UNLOCK(c) pthread_mutex_unlock(&(c)->lock)
#endif

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

/* The index of host:port, adding it when new; -1: no memory or too many. Under the lock. */
static int find_or_add(rk_cluster *c, const char *host, size_t hlen, int port)
{
    for (int i = 0; i < c->nnodes; i++) {
        const rk_config *nc = &c->nodes[i]->cfg;
        if (nc->port == port && strlen(nc->host) == hlen && memcmp(nc->host, host, hlen) == 0)
            return i;
    }
    if (c->nnodes >= MAX_NODES)
        return -1;
    if (c->nnodes == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        rk_node **nodes = resp_realloc(c->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return -1;
        c->nodes = nodes;
        c->cap = cap;
    }
    rk_node *node = resp_malloc(sizeof *node);
    if (!node)
        return -1;
    memset(node, 0, sizeof *node);
    node->cfg = *c->cfg;                  /* user, password, timeouts, limits: shared */
    node->cfg.cluster = 0;
    node->cfg.nseeds = 0;
    node->cfg.seeds = NULL;
    node->cfg.path = NULL;
    node->cfg.db = 0;
    node->cfg.port = port;
    if (!(node->cfg.host = rk_strndup(host, hlen))) {
        resp_free(node);
        return -1;
    }
    if (rk_pool_init(&node->pool, &node->cfg) != REDKV_OK) {
        resp_free(node->cfg.host);
        resp_free(node);
        return -1;
    }
    rk_conn_init(&node->async, &node->cfg, 0);
    node->reg_fd = -1;
    c->nodes[c->nnodes] = node;
    return c->nnodes++;
}

int rk_cluster_init(rk_cluster *c, const rk_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->epfd = -1;
    for (int i = 0; i < RK_SLOTS; i++)
        c->slots[i] = -1;
#ifndef REDKV_NO_THREADS
    if (pthread_mutex_init(&c->lock, NULL))
        return rk_error(REDKV_ENOMEM, "cannot create the cluster's lock");
#endif
    for (int i = 0; i < cfg->nseeds; i++) {
        const struct rk_seed *seed = &cfg->seeds[i];
        if (find_or_add(c, seed->host, strlen(seed->host), seed->port) < 0) {
            rk_cluster_free(c);
            return rk_error(REDKV_ENOMEM, "out of memory");
        }
    }
    return REDKV_OK;
}

void rk_cluster_free(rk_cluster *c)
{
    /* Requests still queued get ECONN first (their callbacks may look at other nodes). */
    for (int i = 0; i < c->nnodes; i++)
        rk_conn_free(&c->nodes[i]->async);
    if (c->epfd >= 0)
        close(c->epfd);
    c->epfd = -1;
    for (int i = 0; i < c->nnodes; i++) {
        rk_pool_free(&c->nodes[i]->pool);
        resp_free(c->nodes[i]->cfg.host);
        resp_free(c->nodes[i]);
    }
    resp_free(c->nodes);
    c->nodes = NULL;
    c->nnodes = c->cap = 0;
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&c->lock);
#endif
}

int rk_cluster_node_at(rk_cluster *c, const char *addr, size_t len, rk_node **out)
{
    /* host:port, the port after the last colon (an IPv6 host has colons of its own) */
    const char *colon = NULL;
    int port = 0;
    for (size_t i = 0; i < len; i++)
        if (addr[i] == ':')
            colon = addr + i;
    for (const char *p = colon ? colon + 1 : addr + len; p < addr + len && port <= 65535; p++)
        port = *p >= '0' && *p <= '9' ? port * 10 + (*p - '0') : 65536;
    if (!colon || colon == addr || port <= 0 || port > 65535)
        return rk_error(REDKV_ESERVER, "a cluster redirection to a bad address");
    const char *host = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    LOCK(c);
    int i = find_or_add(c, host, hlen, port);
    *out = i >= 0 ? c->nodes[i] : NULL;
    UNLOCK(c);
    return *out ? REDKV_OK : rk_error(REDKV_ENOMEM, "out of memory");
}

void rk_cluster_set_slot(rk_cluster *c, int slot, const rk_node *node)
{
    LOCK(c);
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i] == node)
            c->slots[slot] = (int16_t)i;
    UNLOCK(c);
}

/* The i-th node, or NULL past the end (the table may grow from other threads). */
static rk_node *node_at(rk_cluster *c, int i)
{
    LOCK(c);
    rk_node *node = i < c->nnodes ? c->nodes[i] : NULL;
    UNLOCK(c);
    return node;
}

/* ---- the slot map ----------------------------------------------------------------------------*/

typedef struct slots_call {
    rk_req req;
    rk_cluster *cl;
    const rk_node *asked;
    int16_t *map;
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
    int idx = find_or_add(sc->cl, host, hlen, (int)p->integer);
    if (idx < 0)
        return -2;
    for (long long s = lo->integer; s <= hi->integer; s++)
        sc->map[s] = (int16_t)idx;
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
        sc->status = rk_error(REDKV_ESERVER, "CLUSTER SLOTS failed: %.*s",
                              (int)(r->len > 200 ? 200 : r->len), r->str);
        return;
    }
    if (r->type != RESP_ARRAY) {
        sc->status = rk_error(REDKV_ESERVER, "unexpected reply to CLUSTER SLOTS");
        return;
    }
    LOCK(sc->cl);
    for (size_t i = 0; i < r->len && !sc->status; i++) {
        int rc = read_range(sc, resp_element(r, i));
        if (rc == -1)
            sc->status = rk_error(REDKV_ESERVER, "unexpected reply to CLUSTER SLOTS");
        else if (rc == -2)
            sc->status = rk_error(REDKV_ENOMEM, "out of memory");
    }
    if (!sc->status)
        memcpy(sc->cl->slots, sc->map, sizeof sc->cl->slots);
    UNLOCK(sc->cl);
}

static int ask_slots(rk_cluster *c, rk_node *node, int64_t deadline, int16_t *map)
{
    rk_conn *conn;
    int rc = rk_pool_get(&node->pool, deadline, &conn);
    if (rc)
        return rc;
    slots_call sc;
    memset(&sc, 0, sizeof sc);
    sc.cl = c;
    sc.asked = node;
    sc.map = map;
    for (int i = 0; i < RK_SLOTS; i++)
        map[i] = -1;
    size_t start = conn->out.len;
    if (resp_encode_header(&conn->out, 2) | resp_encode_arg(&conn->out, "CLUSTER", 7) |
        resp_encode_arg(&conn->out, "SLOTS", 5)) {
        conn->out.len = start;
        rk_pool_put(&node->pool, conn);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    sc.req.len = conn->out.len - start;
    sc.req.deadline = deadline;
    sc.req.done = slots_done;
    rk_conn_push(conn, &sc.req);
    rk_conn_run(conn, &sc.req);
    rk_pool_put(&node->pool, conn);
    return sc.status;
}

int rk_cluster_refresh(rk_cluster *c, int64_t deadline, const rk_node *avoid)
{
    int16_t *map = resp_malloc(sizeof c->slots);
    if (!map)
        return rk_error(REDKV_ENOMEM, "out of memory");
    int rc = REDKV_ECONN;
    /* The node that answered last first, then every other known node once, avoid last; the
       table may grow meanwhile (new nodes are tried too, being later in it). */
    LOCK(c);
    rk_node *first = c->nodes[c->last_ok < c->nnodes ? c->last_ok : 0];
    UNLOCK(c);
    if (first == avoid)
        first = NULL;
    int stop = 0;
    for (int pass = 0; pass < 3 && !stop; pass++) {
        for (int i = 0; !stop; i++) {
            rk_node *node;
            if (pass == 0) {               /* first, alone */
                if (i > 0 || !first)
                    break;
                node = first;
            } else if (!(node = node_at(c, i))) {
                break;
            } else if (node == first || (node == avoid) != (pass == 2)) {
                continue;                  /* pass 1: all but avoid; pass 2: avoid */
            }
            if (rk_now_ms() >= deadline) {
                rc = rk_error(REDKV_ETIMEDOUT, "no cluster node gave its slot map in time");
                stop = 1;
                break;
            }
            if ((rc = ask_slots(c, node, deadline, map)) == REDKV_OK) {
                LOCK(c);
                for (int j = 0; j < c->nnodes; j++)
                    if (c->nodes[j] == node)
                        c->last_ok = j;
                UNLOCK(c);
            }
            stop = rc == REDKV_OK || rc == REDKV_EAUTH || rc == REDKV_ENOMEM;
        }
    }
    resp_free(map);
    return rc;
}

int rk_cluster_node(rk_cluster *c, int slot, int64_t deadline, rk_node **out)
{
    for (int attempt = 0;; attempt++) {
        LOCK(c);
        int i = c->slots[slot];
        *out = i >= 0 ? c->nodes[i] : NULL;
        UNLOCK(c);
        if (*out)
            return REDKV_OK;
        if (attempt == 1)
            return rk_error(REDKV_ECONN, "no cluster node serves slot %d", slot);
        int rc = rk_cluster_refresh(c, deadline, NULL);
        if (rc)
            return rc;
    }
}

int rk_cluster_masters(rk_cluster *c, int64_t deadline, rk_node **out, int cap)
{
    int n = 0;
    LOCK(c);
    int known = c->slots[0] >= 0;
    UNLOCK(c);
    if (!known) {
        int rc = rk_cluster_refresh(c, deadline, NULL);
        if (rc)
            return rc;
    }
    LOCK(c);
    for (int s = 0; s < RK_SLOTS; s++) {
        if (c->slots[s] < 0)
            continue;
        rk_node *node = c->nodes[c->slots[s]];
        int seen = 0;
        for (int j = 0; j < n && !seen; j++)
            seen = out[j] == node;
        if (!seen && n < cap)
            out[n++] = node;
    }
    UNLOCK(c);
    return n;
}

rk_node *rk_cluster_lookup(rk_cluster *c, int slot)
{
    LOCK(c);
    int i = c->slots[slot];
    rk_node *node = c->nodes[i >= 0 ? i : 0];
    UNLOCK(c);
    return node;
}

int rk_cluster_has_map(rk_cluster *c)
{
    LOCK(c);
    int known = 0;
    for (int s = 0; s < RK_SLOTS && !known; s += 64)
        known = c->slots[s] >= 0;
    UNLOCK(c);
    return known;
}

/* ---- asynchronous use ------------------------------------------------------------------------*/


#ifdef __linux__
int rk_cluster_async_fd(rk_cluster *c)
{
    if (c->epfd < 0) {
        c->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (c->epfd < 0)
            rk_error(REDKV_ENOMEM, "epoll_create1 failed");
    }
    return c->epfd;
}

/* Always told again while the node has a socket: the same number may be a new socket
   (closing the old one took it out of the set), which nothing else would show. */
void rk_cluster_async_sync_node(rk_cluster *c, rk_node *node)
{
    int fd = node->async.fd, ev = rk_conn_events(&node->async);
    if (c->epfd < 0 || (fd < 0 && node->reg_fd < 0))
        return;
    if (node->reg_fd >= 0 && node->reg_fd != fd)
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, node->reg_fd, NULL);   /* may be closed: harmless */
    node->reg_fd = -1;
    if (fd >= 0) {
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = (ev & REDKV_READ ? EPOLLIN : 0) | (ev & REDKV_WRITE ? EPOLLOUT : 0);
        e.data.fd = fd;
        if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &e) < 0)
            epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e);
        node->reg_fd = fd;
    }
    node->reg_events = ev;
}

void rk_cluster_async_sync(rk_cluster *c)
{
    rk_node *node;
    for (int i = 0; (node = node_at(c, i)) != NULL; i++)
        rk_cluster_async_sync_node(c, node);
}
#else
int rk_cluster_async_fd(rk_cluster *c)
{
    (void)c;
    return -1;
}

void rk_cluster_async_sync_node(rk_cluster *c, rk_node *node)
{
    (void)c;
    (void)node;
}

void rk_cluster_async_sync(rk_cluster *c) { (void)c; }
#endif

int rk_cluster_async_process(rk_cluster *c)
{
    int rc = 0;
    rk_node *node;
    for (int i = 0; (node = node_at(c, i)) != NULL; i++) {
        rk_conn *conn = &node->async;
        if (conn->fd < 0 && !conn->head && !conn->pending_error)
            continue;
        int events = 0, want = rk_conn_events(conn);
        if (conn->fd >= 0 && want) {
            struct pollfd p = {conn->fd, (short)((want & REDKV_READ ? POLLIN : 0) |
                                                 (want & REDKV_WRITE ? POLLOUT : 0)), 0};
            if (poll(&p, 1, 0) > 0) {
                events |= p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0;
                events |= p.revents & (POLLOUT | POLLHUP | POLLERR) ? REDKV_WRITE : 0;
            }
        }
        int r = rk_conn_process(conn, events & want);
        if (r && !rc)
            rc = r;
    }
    rk_cluster_async_sync(c);
    return rc;
}

int rk_cluster_async_timeout_ms(rk_cluster *c)
{
    int best = -1;
    rk_node *node;
    for (int i = 0; (node = node_at(c, i)) != NULL; i++) {
        int t = rk_conn_timeout_ms(&node->async);
        if (t >= 0 && (best < 0 || t < best))
            best = t;
    }
    return best;
}

#else /* REDKV_NO_CLUSTER: the URL parser refuses a cluster, so nothing below is called; these
         only satisfy the references a build without optimisation keeps. */

int rk_key_slot(const void *prefix, size_t plen, const void *key, size_t klen)
{
    (void)prefix, (void)plen, (void)key, (void)klen;
    return 0;
}

int rk_cluster_init(rk_cluster *c, const rk_config *cfg)
{
    (void)c, (void)cfg;
    return REDKV_ECONFIG;
}

void rk_cluster_free(rk_cluster *c) { (void)c; }
int rk_cluster_refresh(rk_cluster *c, int64_t deadline, const rk_node *avoid)
{
    (void)c, (void)deadline, (void)avoid;
    return REDKV_ECONFIG;
}

int rk_cluster_node(rk_cluster *c, int slot, int64_t deadline, rk_node **out)
{
    (void)c, (void)slot, (void)deadline, (void)out;
    return REDKV_ECONFIG;
}

int rk_cluster_node_at(rk_cluster *c, const char *addr, size_t len, rk_node **out)
{
    (void)c, (void)addr, (void)len;
    *out = NULL;
    return REDKV_ECONFIG;
}

void rk_cluster_set_slot(rk_cluster *c, int slot, const rk_node *node)
{
    (void)c, (void)slot, (void)node;
}

int rk_cluster_masters(rk_cluster *c, int64_t deadline, rk_node **out, int cap)
{
    (void)c, (void)deadline, (void)out, (void)cap;
    return REDKV_ECONFIG;
}

rk_node *rk_cluster_lookup(rk_cluster *c, int slot)
{
    (void)c, (void)slot;
    return NULL;
}

int rk_cluster_has_map(rk_cluster *c) { return (void)c, 0; }
int rk_cluster_async_fd(rk_cluster *c) { return (void)c, -1; }
void rk_cluster_async_sync(rk_cluster *c) { (void)c; }
void rk_cluster_async_sync_node(rk_cluster *c, rk_node *node) { (void)c, (void)node; }
int rk_cluster_async_process(rk_cluster *c) { return (void)c, 0; }
int rk_cluster_async_timeout_ms(rk_cluster *c) { return (void)c, -1; }

#endif
