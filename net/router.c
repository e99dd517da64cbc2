/* router.c - the nodes of a client, the single-server topology, and the one redirect
 * policy that the blocking and the asynchronous paths share.
 *
 * The policy, for a reply or a failure: MOVED and ASK are followed (at most MAX_REDIRECTS
 * times), TRYAGAIN / CLUSTERDOWN / READONLY and a lost node are retried after a pause
 * growing to RETRY_PAUSE_MAX_MS (at most MAX_RETRIES times), and nothing is followed or
 * retried past the call's deadline. A topology without redirections (one server) never
 * follows any; a written asynchronous request whose connection was lost is not sent
 * again (the async contract: it gets ECONN), but the next one learns the map anew (on a
 * cluster without blocking, and redirected requests keep their place: see "a cluster's
 * asynchronous order" below). */
#include "fmacros.h"

#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include "topology.h"

#define MAX_REDIRECTS 8
#define MAX_RETRIES 40
#define RETRY_PAUSE_MAX_MS 200

/* Only a cluster sends requests to many nodes and redirects them: without one
   (REDKV_NO_CLUSTER) these fold to 0 and the compiler drops those paths. */
#ifdef REDKV_NO_CLUSTER
#define MULTI(r)     ((void)(r), 0)
#define REDIRECTS(r) ((void)(r), 0)
#else
#define MULTI(r)     ((r)->multi)
#define REDIRECTS(r) ((r)->topo->redirected != NULL)
#endif
/* A cluster and Sentinel retry after a lost node (Sentinel: a failover); without both
   this folds to 0 too. */
#if defined(REDKV_NO_CLUSTER) && defined(REDKV_NO_SENTINEL)
#define RETRIES(r)   ((void)(r), 0)
#else
#define RETRIES(r)   ((r)->topo->refresh != NULL)
#endif

#ifdef REDKV_NO_THREADS
#define ROUTER_LOCK(r)   ((void)0)
#define ROUTER_UNLOCK(r) ((void)0)
#else
#define ROUTER_LOCK(r)   pthread_mutex_lock(&(r)->lock)
#define ROUTER_UNLOCK(r) pthread_mutex_unlock(&(r)->lock)
#endif

/* ---- nodes -------------------------------------------------------------------------------- */

void rk_node_free(rk_node *node)
{
    rk_pool_free(&node->pool);
    resp_free(node->cfg.host);
    resp_free(node->cfg.path);
    resp_free(node->cfg.where);
    resp_free(node);
}

/* A node with the client's settings at host:port (host NULL: the configuration's own
   address, a unix socket maybe). */
rk_node *rk_node_new(const rk_config *base, const char *host, size_t hlen, int port)
{
    rk_node *node = resp_malloc(sizeof *node);
    if (!node)
        return NULL;
    memset(node, 0, sizeof *node);
    node->cfg = *base;                 /* user, password, timeouts, limits, transport: shared */
    node->cfg.nseeds = 0;
    node->cfg.seeds = NULL;
    node->cfg.tls_owned = 0;
    node->cfg.path = NULL;
    node->cfg.host = NULL;
    if (host) {
        node->cfg.db = 0;
        node->cfg.port = port;
        node->cfg.host = rk_strndup(host, hlen);
    } else if (base->path) {
        node->cfg.path = rk_strndup(base->path, strlen(base->path));
    } else {
        node->cfg.host = rk_strndup(base->host, strlen(base->host));
    }
    node->cfg.where = NULL;
    if ((!node->cfg.host && !node->cfg.path) || rk_config_where(&node->cfg) ||
        rk_pool_init(&node->pool, &node->cfg)) {
        resp_free(node->cfg.host);
        resp_free(node->cfg.path);
        resp_free(node->cfg.where);
        resp_free(node);
        return NULL;
    }
    rk_conn_init(&node->async, &node->cfg, 0);
    node->reg_fd = -1;
    return node;
}

int rk_router_add(rk_router *r, rk_node *node)
{
    if (r->nnodes == r->cap) {
        int cap = r->cap ? r->cap * 2 : 4;
        rk_node **nodes = resp_realloc(r->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return -1;
        r->nodes = nodes;
        r->cap = cap;
    }
    r->nodes[r->nnodes++] = node;
    return 0;
}

rk_node *rk_router_node_at(rk_router *r, int i)
{
    ROUTER_LOCK(r);
    rk_node *node = i < r->nnodes ? r->nodes[i] : NULL;
    ROUTER_UNLOCK(r);
    return node;
}

/* ---- the single-server topology ------------------------------------------------------------ */

static int single_node_for(rk_router *r, int slot, int64_t deadline, rk_node **out)
{
    (void)slot;
    (void)deadline;
    *out = r->nodes[0];
    return REDKV_OK;
}

static rk_node *single_node_now(rk_router *r, int slot)
{
    (void)slot;
    return r->nodes[0];
}

static int single_masters(rk_router *r, int64_t deadline, rk_node ***out)
{
    (void)deadline;
    if (!(*out = resp_malloc(sizeof **out)))
        return rk_error(REDKV_ENOMEM, "out of memory");
    (*out)[0] = r->nodes[0];
    return 1;
}

static void single_free(rk_router *r) { (void)r; }

static const rk_topology single_topology = {
    single_node_for, single_node_now, NULL, NULL, single_masters, single_free,
};

/* ---- the router ------------------------------------------------------------------------------ */

int rk_router_new(const rk_config *cfg, rk_router **out)
{
    rk_router *r = resp_malloc(sizeof *r);
    *out = NULL;
    if (!r)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->epfd = -1;
    r->topo = &single_topology;
#ifndef REDKV_NO_THREADS
    if (pthread_mutex_init(&r->lock, NULL)) {
        resp_free(r);
        return rk_error(REDKV_ENOMEM, "cannot create the router's lock");
    }
#endif
    int rc = REDKV_OK;
    rk_node *node = NULL;
    if (cfg->cluster)
        rc = rk_cluster_attach(r);
    else if (cfg->sentinel)
        rc = rk_sentinel_attach(r);
    else if (!(node = rk_node_new(cfg, NULL, 0, 0)) || rk_router_add(r, node) < 0)
        rc = rk_error(REDKV_ENOMEM, "out of memory");
    if (rc != REDKV_OK) {
        if (node && r->nnodes == 0)
            rk_node_free(node);
        rk_router_free(r);
        return rc;
    }
    *out = r;
    return REDKV_OK;
}

#ifndef REDKV_NO_CLUSTER
static void fail_held_areqs(rk_router *r);
#else
#define fail_held_areqs(r) ((void)(r))
#endif

void rk_router_free(rk_router *r)
{
    if (!r)
        return;
#ifndef REDKV_NO_CLUSTER
    r->closing = 1;                    /* the callbacks below must not send anything */
#endif
    /* Requests still queued get ECONN first (their callbacks may look at other nodes),
       then those waiting to be sent, in the order they were queued. */
    for (int i = 0; i < r->nnodes; i++)
        rk_conn_free(&r->nodes[i]->async);
    while (MULTI(r) && r->delayed) {
        rk_areq *a = r->delayed;
        r->delayed = a->next_waiting;
        a->req.status = REDKV_ECONN;
        a->done(&a->req, REDKV_ECONN, NULL);
    }
    if (MULTI(r))
        fail_held_areqs(r);
    if (r->epfd >= 0)
        close(r->epfd);
    r->topo->free(r);
    for (int i = 0; i < r->nnodes; i++)
        rk_node_free(r->nodes[i]);
    resp_free(r->nodes);
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&r->lock);
#endif
    resp_free(r);
}

/* ---- the policy ------------------------------------------------------------------------------ */

enum rk_action { RK_DELIVER, RK_FOLLOW_MOVED, RK_FOLLOW_ASK, RK_RETRY };

typedef struct redirect {
    const char *addr;         /* "host:port", in the reply */
    size_t len;
} redirect;

static int starts_with(const resp_reply *r, const char *word)
{
    size_t n = strlen(word);
    return r->len >= n && memcmp(r->str, word, n) == 0;
}

/* MOVED <slot> <host:port> / ASK <slot> <host:port>: the address, or 0 when it does not read. */
static int read_redirect(const resp_reply *reply, redirect *to)
{
    const char *end = reply->str + reply->len;
    const char *sp = memchr(reply->str, ' ', reply->len);
    const char *slot_end = sp ? memchr(sp + 1, ' ', (size_t)(end - sp - 1)) : NULL;
    if (!slot_end || slot_end + 1 >= end)
        return 0;
    to->addr = slot_end + 1;
    to->len = (size_t)(end - slot_end - 1);
    return 1;
}

/* The one policy: what to do with a reply (status OK) or a failure, given what was already
   spent. lost_retry: a lost connection may be retried (blocking calls only). */
static enum rk_action decide(const rk_router *r, int status, const resp_reply *reply,
                             int64_t deadline, int redirects, int retries, int lost_retry,
                             redirect *to)
{
    if (!RETRIES(r) || rk_now_ms() >= deadline)
        return RK_DELIVER;
    if (status == REDKV_ECONN)
        return lost_retry && retries < MAX_RETRIES ? RK_RETRY : RK_DELIVER;
    if (status != REDKV_OK || reply->type != RESP_ERROR)
        return RK_DELIVER;
    if (starts_with(reply, "TRYAGAIN") || starts_with(reply, "CLUSTERDOWN") ||
        starts_with(reply, "READONLY"))
        return retries < MAX_RETRIES ? RK_RETRY : RK_DELIVER;
    int moved = starts_with(reply, "MOVED ");
    if (!REDIRECTS(r) || (!moved && !starts_with(reply, "ASK ")) || redirects >= MAX_REDIRECTS ||
        !read_redirect(reply, to))
        return RK_DELIVER;
    return moved ? RK_FOLLOW_MOVED : RK_FOLLOW_ASK;
}

/* The pause before retry n (1, 2, ...): 25, 50, 100, 200, 200... ms. */
static int retry_pause_ms(int n)
{
    int pause = 25 << (n < 4 ? n - 1 : 3);
    return pause < RETRY_PAUSE_MAX_MS ? pause : RETRY_PAUSE_MAX_MS;
}

static int encode_asking(resp_buf *out, const void *arg)
{
    (void)arg;
    return resp_encode_header(out, 1) | resp_encode_arg(out, "ASKING", 6);
}

static void asking_done(rk_req *req, int status, const resp_reply *reply)
{
    (void)req;
    (void)status;
    (void)reply;                       /* a failure shows in the command's own reply */
}

/* Gives the owner its outcome, once. */
static void deliver(rk_req *user, int status, const resp_reply *reply)
{
    user->status = status;
    user->completed = 1;
    user->done(user, status, reply);
}

/* A redirection was followed. With the map's generation (which moves only when a slot
   changes owner) this tells the client-side cache that a key may now be served by a node
   whose invalidations it has not been reading: an ASK (a migration under way) moves no
   slot, yet the key is answered elsewhere. */
static void count_redirect(rk_router *r)
{
#ifdef REDKV_NO_THREADS
    r->redirects++;
#else
    __atomic_add_fetch(&r->redirects, 1, __ATOMIC_ACQ_REL);
#endif
}

/* The slot of cmd's key, when the topology routes by slot (else 0: no hashing). */
static int cmd_slot(const rk_router *r, const rk_cmd *cmd)
{
    (void)r;                           /* unused with REDKV_NO_CLUSTER */
    if (!REDIRECTS(r))
        return 0;
    return cmd->keyless ? -1 : rk_key_slot(cmd->prefix, cmd->plen, cmd->key, cmd->klen);
}

/* ---- the blocking path -------------------------------------------------------------------- */

typedef struct route_try {
    rk_req req;               /* first: the connection's request is the try */
    rk_req asking;
    rk_router *router;
    rk_req *user;
    int64_t deadline;
    int redirects, retries;
    enum rk_action action;
    char to[272];             /* "host:port" of a MOVED or ASK being followed */
} route_try;

static void try_done(rk_req *req, int status, const resp_reply *reply)
{
    route_try *t = (route_try *)req;
    redirect to = {NULL, 0};
    t->action = decide(t->router, status, reply, t->deadline, t->redirects, t->retries, 1, &to);
    if (t->action == RK_DELIVER && status == REDKV_OK) {
        deliver(t->user, status, reply);
    } else if (t->action == RK_FOLLOW_MOVED || t->action == RK_FOLLOW_ASK) {
        size_t n = to.len < sizeof t->to ? to.len : sizeof t->to - 1;
        memcpy(t->to, to.addr, n);
        t->to[n] = 0;
    }
}

/* One try on a pooled connection of node (after ASKING when asking). A connection the
   server closed while it sat in the pool (a restart, CLIENT KILL, its idle timeout) shows
   only now: the command goes once more, on a new connection; every command here may run
   twice. Returns the try's status. */
static int try_on(route_try *t, rk_node *node, const rk_cmd *cmd, int asking)
{
    rk_conn *c;
    int rc = rk_pool_share(&node->pool, t->deadline, &c);
    if (rc)
        return t->req.status = rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* no single wait lasts longer than the command timeout, nor past the call's end */
        int64_t wait_until = rk_deadline(t->router->cfg->command_timeout_ms);
#ifndef REDKV_NO_THREADS
        /* another caller holds the lock while connecting: that time is connecting too */
        int64_t before = wait_until;
        rk_conn_lock(c);
        wait_until = rk_deadline(t->router->cfg->command_timeout_ms);
        int64_t waited = wait_until - before;
        t->deadline += waited < t->router->cfg->connect_timeout_ms
                           ? waited : t->router->cfg->connect_timeout_ms;
#endif
        wait_until = wait_until < t->deadline ? wait_until : t->deadline;
        int reused = rk_conn_is_open(c);
        t->action = RK_DELIVER;
        t->asking.done = asking_done;
        t->req.done = try_done;
        if (asking && (rc = rk_conn_queue(c, &t->asking, encode_asking, NULL, wait_until)) != 0) {
            rk_conn_unlock(c);
            break;
        }
        if ((rc = rk_conn_queue(c, &t->req, cmd->encode, cmd->arg, wait_until)) != 0) {
            if (asking)                /* the ASKING alone must not stay */
                rk_conn_unqueue(c, &t->asking);
            rk_conn_unlock(c);
            break;
        }
        rc = rk_conn_run_shared(c, &t->req);        /* and unlocks */
        /* connecting has its own timeout: it moved the request's deadline on */
        t->deadline += t->req.deadline - wait_until;
        if (!(rc == REDKV_ECONN && reused && !t->user->completed))
            break;
    }
    rk_pool_unshare(&node->pool, c);
    return t->req.status = rc;
}

/* Sleeps ms, or until deadline if that is sooner. */
static void pause_until(int ms, int64_t deadline)
{
    int64_t left = deadline - rk_now_ms();
    if (left < ms)
        ms = left > 0 ? (int)left : 0;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int rk_route_call(rk_router *r, const rk_cmd *cmd, rk_req *user, int64_t *call_deadline)
{
    route_try t;
    rk_node *node;
    int asking = 0;
    memset(&t, 0, sizeof t);
    t.router = r;
    t.user = user;
    t.deadline = *call_deadline;
    user->completed = 0;
    int slot = cmd_slot(r, cmd);
    int rc = r->topo->node_for(r, slot, t.deadline, &node);
    while (rc == REDKV_OK) {
        rc = try_on(&t, node, cmd, asking);
        asking = 0;
        if (user->completed || t.action == RK_DELIVER || !RETRIES(r))
            break;
        if (t.action == RK_RETRY) {
            /* unreachable, or a failover under way: wait, learn the map (from another node
               when this one is lost), and try the slot's master again */
            pause_until(retry_pause_ms(++t.retries), t.deadline);
            r->topo->refresh(r, rc == REDKV_ECONN ? node : NULL, t.deadline);
            int found = r->topo->node_for(r, slot, t.deadline, &node);
            rc = found != REDKV_OK && rc == REDKV_ECONN ? rc : found;
            continue;
        }
        t.redirects++;
        asking = t.action == RK_FOLLOW_ASK;
        rc = r->topo->redirected(r, slot, t.to, strlen(t.to), !asking, &node);
        count_redirect(r);
        if (rc == REDKV_OK && !asking)
            r->topo->refresh(r, NULL, t.deadline);  /* other slots may have moved too */
    }
    if (!user->completed) {
        if (rc == REDKV_OK)            /* cannot happen: each way out sets an error */
            rc = rk_error(REDKV_ECONN, "no node answered");
        deliver(user, rc, NULL);
    }
    *call_deadline = t.deadline;
    return user->status;
}

/* ---- the asynchronous path ------------------------------------------------------------------- */

#ifdef __linux__
/* Tells the epoll descriptor of node's async socket and the events it wants. Always told
   again while the node has a socket: the same number may be a new socket (closing the old
   one took it out of the set), which nothing else would show. */
static void sync_node(rk_router *r, rk_node *node)
{
    int fd = node->async.fd, ev = rk_conn_events(&node->async);
    if (r->epfd < 0 || (fd < 0 && node->reg_fd < 0))
        return;
    if (node->reg_fd >= 0 && node->reg_fd != fd)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, node->reg_fd, NULL);   /* may be closed: harmless */
    node->reg_fd = -1;
    if (fd >= 0) {
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = (ev & REDKV_READ ? EPOLLIN : 0) | (ev & REDKV_WRITE ? EPOLLOUT : 0);
        e.data.fd = fd;
        if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &e) < 0)
            epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &e);
        node->reg_fd = fd;
    }
    node->reg_events = ev;
}

static int open_epoll(rk_router *r)
{
    if (r->epfd < 0)
        r->epfd = epoll_create1(EPOLL_CLOEXEC);
    return r->epfd;
}
#else
static void sync_node(rk_router *r, rk_node *node) { (void)r, (void)node; }
static int open_epoll(rk_router *r) { return (void)r, -1; }
#endif

static void prelude_done(rk_req *req, int status, const resp_reply *reply)
{
    (void)req;
    (void)status;
    (void)reply;                       /* a failure shows in the command's own reply */
}

/* node's record of the prelude encode; a free slot taken for it; NULL when all are taken. */
static rk_prelude *prelude_slot(rk_node *node, rk_encode_fn *encode)
{
    for (int i = 0; i < RK_PRELUDES; i++) {
        rk_prelude *pl = &node->preludes[i];
        if (!pl->encode)
            pl->encode = encode;
        if (pl->encode == encode)
            return pl;
    }
    return NULL;
}

/* Queues a's prelude ahead of it, once per connection (a new socket may be a server that
   forgot the script: restarted, failed over). A prelude still queued goes out first on the
   next connection anyway. */
static int send_prelude(rk_node *node, const rk_areq *a)
{
    rk_conn *c = &node->async;
    rk_prelude *pl = a->prelude ? prelude_slot(node, a->prelude) : NULL;
    if (!pl || pl->sent_for == c->drops + 1)
        return REDKV_OK;
    if (pl->sent_for && !pl->req.completed) {
        pl->sent_for = c->drops + 1;
        return REDKV_OK;
    }
    memset(&pl->req, 0, sizeof pl->req);
    pl->req.done = prelude_done;
    pl->sent_for = c->drops + 1;
    return rk_conn_queue(c, &pl->req, a->prelude, NULL, a->req.deadline);
}

/* Queues a on node's async connection (after ASKING when asking). */
static int send_async(rk_router *r, rk_node *node, rk_areq *a, const rk_cmd *cmd, int asking)
{
    rk_conn *c = &node->async;
    int rc = send_prelude(node, a);
    /* With ASKING, room for both first: an ASKING must never go out alone. */
    if (rc == REDKV_OK && asking && (rc = rk_conn_reserve(c, 2 * 23 + 8 + a->copy.len)) == REDKV_OK) {
        a->asking.done = asking_done;
        rc = rk_conn_queue(c, &a->asking, encode_asking, NULL, a->req.deadline);
    }
    if (rc == REDKV_OK && cmd)
        rc = rk_conn_queue(c, &a->req, cmd->encode, cmd->arg, a->req.deadline);
    else if (rc == REDKV_OK)
        rc = rk_conn_queue_bytes(c, &a->req, a->copy.data, a->copy.len);
    rk_conn_start(c);
    if (MULTI(r))
        sync_node(r, node);
    return rc;
}

#ifndef REDKV_NO_CLUSTER
/* ---- a cluster's asynchronous order ------------------------------------------------------------
 *
 * A connection answers in order, so requests for one node keep their order. But a request
 * sent under an older map can be redirected (MOVED) to a node that later requests, placed by
 * the newer map, went to straight: sent again, it would run after them (SET k v1, SET k v2
 * ending as v1). So while any request sent under an older map is unanswered, or while the map
 * is being read, new requests are held in a FIFO, written nowhere, and released in order
 * (each placed when released) once nothing holds them; a redirected request is sent again at
 * once, ahead of all of them. The map's generation (cluster.c) says when it changed, and two
 * counters how many requests are unanswered under the generation last seen and under older
 * ones. While the map stays the same nothing is held: the steady state costs a counter.
 */

/* Once the map has moved on, what was sent under the generation last seen was sent under an
   older one. */
static void gen_note(rk_router *r, unsigned long gen)
{
    if (gen == r->gen_seen)
        return;
    r->sent_before += r->sent_now;
    r->sent_now = 0;
    r->gen_seen = gen;
}

/* Where a goes now. The node and the generation come from one look at the map, so a request
   is never counted under a newer map than the one that placed it. */
static rk_node *gen_place(rk_router *r, rk_areq *a)
{
    unsigned long gen;
    rk_node *node = rk_cluster_place(r, a->slot, &gen);
    gen_note(r, gen);
    a->gen = gen;
    return node;
}

/* a becomes unanswered (n = 1) or is answered (n = -1), under the generation it was sent with. */
static void gen_count(rk_router *r, const rk_areq *a, long n)
{
    if (a->gen == r->gen_seen)
        r->sent_now += n;
    else
        r->sent_before += n;
}

/* Sends a to node (after ASKING when asking), unanswered until its reply: 0 or ENOMEM. */
static int send_counted(rk_router *r, rk_areq *a, rk_node *node, int asking)
{
    a->node = node;
    gen_count(r, a, 1);
    int rc = send_async(r, node, a, NULL, asking);
    if (rc != REDKV_OK)
        gen_count(r, a, -1);
    return rc;
}

/* The same for a request whose queueing call has returned: a failure goes to its done. */
static void send_or_fail(rk_router *r, rk_areq *a, rk_node *node, int asking)
{
    int rc = send_counted(r, a, node, asking);
    if (rc != REDKV_OK)
        a->done(&a->req, a->req.status = rc, NULL);
}

static void hold_areq(rk_router *r, rk_areq *a)
{
    a->next_waiting = NULL;
    if (r->held_tail)
        r->held_tail->next_waiting = a;
    else
        r->held = a;
    r->held_tail = a;
    if (a == r->held || a->req.deadline < r->held_soonest)
        r->held_soonest = a->req.deadline;
}

static rk_areq *unhold_areq(rk_router *r)
{
    rk_areq *a = r->held;
    r->held = a->next_waiting;
    if (!r->held)
        r->held_tail = NULL;
    return a;
}

/* Held requests past their deadline end with ETIMEDOUT, once each: all are taken out
   first (which also sets held_soonest right again), then their callbacks, which may queue
   anew, run. */
static void expire_held_areqs(rk_router *r)
{
    int64_t now = rk_now_ms();
    if (!r->held || now < r->held_soonest)
        return;
    rk_areq *left = r->held, *gone = NULL, **gone_tail = &gone;
    r->held = r->held_tail = NULL;
    while (left) {
        rk_areq *a = left;
        left = a->next_waiting;
        if (a->req.deadline > now) {
            hold_areq(r, a);
            continue;
        }
        a->next_waiting = NULL;
        *gone_tail = a;
        gone_tail = &a->next_waiting;
    }
    while (gone) {
        rk_areq *a = gone;
        gone = a->next_waiting;
        rk_error(REDKV_ETIMEDOUT, "no reply within %d ms (held back while the cluster's slot "
                 "map changed)", r->cfg->command_timeout_ms);
        a->done(&a->req, a->req.status = REDKV_ETIMEDOUT, NULL);
    }
}

/* Sends the held requests, in order, while nothing holds them back. */
static void release_held_areqs(rk_router *r)
{
    while (r->held && !r->reading && !r->closing) {
        rk_node *node = gen_place(r, r->held);
        if (r->sent_before)
            return;
        send_or_fail(r, unhold_areq(r), node, 0);
    }
}

static void map_read_end(rk_router *r);

static void fail_held_areqs(rk_router *r)
{
    while (r->held) {
        rk_areq *a = unhold_areq(r);
        a->done(&a->req, a->req.status = REDKV_ECONN, NULL);
    }
    if (r->reading)                    /* its request was failed with the connections */
        map_read_end(r);
}

/* ---- reading the map without blocking ---------------------------------------------------------- */

static void map_read_done(rk_req *req, int status, const resp_reply *reply);

static void map_read_end(rk_router *r)
{
    rk_map_read_free(r->reading);
    r->reading = NULL;
}

/* Queues the read on the next node to ask; ends it when none is left. */
static void map_read_ask(rk_router *r)
{
    rk_node *node = rk_map_read_next(r->reading, map_read_done, r, r->read_deadline);
    if (!node) {
        map_read_end(r);
        return;
    }
    rk_conn_start(&node->async);
    sync_node(r, node);
}

/* The read's answer: the map is installed, or the next node is asked while time is left
   (as the blocking refresh does). Once it is over the held requests go, placed by the
   new map, or by the best guess when no node gave one (a later loss reads again). */
static void map_read_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_router *r = req->ctx;
    if (r->closing)
        return;                        /* rk_router_free frees it */
    int rc = rk_map_read_take(r->reading, status, reply);
    if (rc != REDKV_OK && rc != REDKV_EAUTH && rc != REDKV_ENOMEM &&
        rk_now_ms() < r->read_deadline)
        map_read_ask(r);
    else
        map_read_end(r);
}

/* Reads the map on a node's async connection (the node last lost is asked last), within
   the command timeout, unless a read runs already. Without memory the map stays a guess. */
static void map_read_start(rk_router *r)
{
    if (r->reading || r->closing || !(r->reading = rk_map_read_new(r, r->lost)))
        return;
    r->read_deadline = rk_deadline(r->cfg->command_timeout_ms);
    map_read_ask(r);
}

/* ---- a cluster's requests ---------------------------------------------------------------------- */

/* A new request: held when anything holds requests back, else sent where the map says. A
   lost node makes the next request read the map, but without blocking: it is held
   meanwhile, so an event loop's callback never waits on the network. */
static int cluster_queue(rk_router *r, rk_areq *a)
{
    if (r->closing)
        return rk_error(REDKV_ECONN, "the client is being closed");
    if (r->async_stale) {
        r->async_stale = 0;
        map_read_start(r);
    }
    release_held_areqs(r);
    if (!r->held && !r->reading) {
        rk_node *node = gen_place(r, a);
        if (!r->sent_before)
            return send_counted(r, a, node, 0);
    }
    hold_areq(r, a);
    return REDKV_OK;
}

/* a's answer on a cluster: 1 when it was taken care of here (delayed after TRYAGAIN, sent
   again after MOVED or ASK, or failed), 0 when its owner gets it as it is. */
static int cluster_answered(rk_router *r, rk_areq *a, int status, enum rk_action action,
                            const redirect *to)
{
    gen_count(r, a, -1);               /* answered: it holds nothing back any more */
    if (status == REDKV_ECONN)
        r->lost = a->node;             /* the next map read asks it last */
    if (action == RK_RETRY) {
        /* TRYAGAIN: sent again after a pause, behind nothing (it is not written yet);
           still counted under the map it was sent with, so it keeps its place */
        gen_count(r, a, 1);
        a->tries++;
        a->retry_at = rk_now_ms() + retry_pause_ms(a->tries);
        a->next_waiting = r->delayed;
        r->delayed = a;
        return 1;
    }
    if (action != RK_FOLLOW_MOVED && action != RK_FOLLOW_ASK)
        return 0;
    int moved = action == RK_FOLLOW_MOVED;
    rk_node *node;
    int rc = r->topo->redirected(r, a->slot, to->addr, to->len, moved, &node);
    count_redirect(r);
    if (rc == REDKV_ESERVER)           /* a bad address: the owner gets the reply */
        return 0;
    if (rc != REDKV_OK) {              /* no memory: no reply to read, the error stands */
        a->done(&a->req, a->req.status = rc, NULL);
        return 1;
    }
    a->tries++;
    unsigned long seen = r->gen_seen;
    rk_node *placed = gen_place(r, a);     /* MOVED: the map now says where */
    send_or_fail(r, a, moved && a->slot >= 0 ? placed : node, !moved);
    if (moved && r->gen_seen != seen)
        map_read_start(r);             /* other slots may have moved too */
    return 1;
}

/* Sends again the delayed requests whose pause is over, where their slot is now. */
static void send_delayed(rk_router *r)
{
    int64_t now = rk_now_ms();
    rk_areq **link = &r->delayed;
    while (*link) {
        rk_areq *a = *link;
        if (a->retry_at > now) {
            link = &a->next_waiting;
            continue;
        }
        *link = a->next_waiting;
        gen_count(r, a, -1);
        send_or_fail(r, a, gen_place(r, a), 0);
    }
}

/* The soonest a held request must end, as a timeout in ms, if sooner than best. */
static int held_areqs_timeout(const rk_router *r, int best)
{
    if (!r->held)
        return best;
    int64_t left = r->held_soonest - rk_now_ms();
    int t = left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
    return best < 0 || t < best ? t : best;
}
#else /* REDKV_NO_CLUSTER: one node, nothing redirected, delayed or held */
#define cluster_queue(r, a)                ((void)(a), 0)
#define cluster_answered(r, a, s, act, to) ((void)(a), (void)(s), (void)(to), 0)
#define send_delayed(r)                    ((void)(r))
#define expire_held_areqs(r)               ((void)(r))
#define release_held_areqs(r)              ((void)(r))
#define held_areqs_timeout(r, best)        (best)
#endif

static void async_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_areq *a = (rk_areq *)req;
    rk_router *r = a->router;
    redirect to = {NULL, 0};
    enum rk_action action = decide(r, status, reply, a->req.deadline, a->tries, a->tries, 0, &to);
    if (MULTI(r) && cluster_answered(r, a, status, action, &to))
        return;
    if (RETRIES(r) && (status == REDKV_ECONN || action == RK_RETRY))
        r->async_stale = 1;            /* the next request learns the map anew */
    a->done(req, status, reply);
}

int rk_route_queue(rk_router *r, const rk_cmd *cmd, rk_areq *a)
{
    if (MULTI(r) && open_epoll(r) < 0)
        return rk_error(REDKV_EINVAL, "asynchronous requests on a Redis Cluster need epoll "
                        "(Linux)");
    /* One server or Sentinel: a stale map is read here (Sentinel's own follow usually did
       already); a cluster reads it without blocking (cluster_queue). */
    if (!MULTI(r) && RETRIES(r) && r->async_stale) {
        r->async_stale = 0;
        r->topo->refresh(r, NULL, a->req.deadline);
    }
    a->router = r;
    a->slot = cmd_slot(r, cmd);
    a->tries = 0;
    a->prelude = cmd->prelude;
    a->req.done = async_done;
    a->copy.len = 0;
    if (REDIRECTS(r) && cmd->encode(&a->copy, cmd->arg)) {   /* kept for a redirection */
        a->copy.len = 0;
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    if (MULTI(r))
        return cluster_queue(r, a);
    return send_async(r, r->topo->node_now(r, a->slot), a, REDIRECTS(r) ? NULL : cmd, 0);
}

void rk_areq_free(rk_areq *a) { resp_buf_free(&a->copy); }

/* One node at a time (one server, Sentinel): the topology's current one. */
static rk_conn *async_conn(rk_router *r) { return &r->topo->node_now(r, 0)->async; }

int rk_router_fd(rk_router *r) { return MULTI(r) ? r->epfd : async_conn(r)->fd; }

int rk_router_events(rk_router *r)
{
    if (MULTI(r))
        return r->epfd >= 0 ? REDKV_READ : 0;
    return rk_conn_events(async_conn(r));
}

int rk_router_process(rk_router *r, int events)
{
    if (!MULTI(r) && RETRIES(r))
        rk_sentinel_follow(r);         /* a new master first, after a failover */
    if (!MULTI(r))
        return rk_conn_process(async_conn(r), events);
    int rc = 0;
    rk_node *node;
    expire_held_areqs(r);
    send_delayed(r);
    for (int i = 0; (node = rk_router_node_at(r, i)) != NULL; i++) {
        rk_conn *c = &node->async;
        if (c->fd < 0 && rk_conn_idle(c) && !c->pending_error)
            continue;
        int got = rk_conn_process(c, rk_conn_ready(c, 0));
        if (got && !rc)
            rc = got;
    }
    release_held_areqs(r);             /* the answers may have let them go */
    for (int i = 0; (node = rk_router_node_at(r, i)) != NULL; i++)
        sync_node(r, node);
    return rc;
}

int rk_router_timeout_ms(rk_router *r)
{
    if (!MULTI(r))
        return rk_conn_timeout_ms(async_conn(r));
    int best = -1;
    rk_node *node;
    for (int i = 0; (node = rk_router_node_at(r, i)) != NULL; i++) {
        int t = rk_conn_timeout_ms(&node->async);
        if (t >= 0 && (best < 0 || t < best))
            best = t;
    }
    if (r->delayed) {
        int64_t soonest = r->delayed->retry_at, now = rk_now_ms();
        for (rk_areq *a = r->delayed; a; a = a->next_waiting)
            soonest = a->retry_at < soonest ? a->retry_at : soonest;
        int t = soonest <= now ? 0 : (int)(soonest - now);
        if (best < 0 || t < best)
            best = t;
    }
    return held_areqs_timeout(r, best);
}

/* ---- every master at once --------------------------------------------------------------------- */

#ifndef REDKV_NO_CLUSTER
typedef struct fan_conn {
    rk_pool *pool;
    rk_conn *conn;
    int reused, restarted, one_slot, of;
    unsigned long replies, losses;   /* the connection's counts when it started */
} fan_conn;

/* Borrows master i's connection, turns it event-driven, and lets the owner queue. */
static int fan_start(fan_conn *f, rk_start_fn *start, void *ctx, int i)
{
    rk_conn_set_blocking(f->conn, 0);
    f->reused = rk_conn_is_open(f->conn);
    rk_conn_counts(f->conn, &f->replies, &f->losses);
    int rc = start(ctx, i, f->of, f->conn, f->one_slot);
    rk_conn_start(f->conn);
    return rc;
}

/* A pooled connection that failed before its first reply was stale: start over, once. */
static int fan_check_stale(fan_conn *f, rk_start_fn *start, void *ctx, int i)
{
    unsigned long replies, losses;
    rk_conn_counts(f->conn, &replies, &losses);
    if (!f->reused || f->restarted || replies != f->replies || losses == f->losses)
        return REDKV_OK;
    f->restarted = 1;
    f->reused = 0;
    return fan_start(f, start, ctx, i);
}

/* One poll over every connection with work, then each one's I/O. */
static void fan_step(fan_conn *fc, int n, struct pollfd *pfd)
{
    int timeout = -1;
    for (int i = 0; i < n; i++) {
        int want = rk_conn_events(fc[i].conn), t = rk_conn_timeout_ms(fc[i].conn);
        pfd[i].fd = want ? rk_conn_fd(fc[i].conn) : -1;
        pfd[i].events = (short)((want & REDKV_READ ? POLLIN : 0) | (want & REDKV_WRITE ? POLLOUT : 0));
        pfd[i].revents = 0;
        if (t >= 0 && (timeout < 0 || t < timeout))
            timeout = t;
    }
    poll(pfd, (nfds_t)n, timeout);
    for (int i = 0; i < n; i++) {
        short got = pfd[i].fd >= 0 ? pfd[i].revents : 0;
        int events = got & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0;
        events |= got & (POLLOUT | POLLHUP | POLLERR) ? REDKV_WRITE : 0;
        rk_conn_process(fc[i].conn, events);
    }
}

static int fan_busy(const fan_conn *fc, int n)
{
    for (int i = 0; i < n; i++)
        if (!rk_conn_idle(fc[i].conn))
            return 1;
    return 0;
}

#endif

/* One master: its pooled connection, blocking, runs each request in turn until the
   conversation ends (as a blocking call does), retrying a stale connection once. */
static int each_of_one(rk_node *node, rk_start_fn *start, void *ctx, int64_t deadline,
                       int one_slot)
{
    rk_conn *c;
    int rc = rk_pool_get(&node->pool, deadline, &c);
    if (rc)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        unsigned long replies, losses, replies_after, losses_after;
        int reused = rk_conn_is_open(c);
        rk_conn_counts(c, &replies, &losses);
        if ((rc = start(ctx, 0, 1, c, one_slot)) != REDKV_OK) {
            rk_conn_fail_all(c, rc);
            break;
        }
        rk_conn_drain(c);
        rk_conn_counts(c, &replies_after, &losses_after);
        if (!reused || replies_after != replies || losses_after == losses)
            break;
    }
    rk_pool_put(&node->pool, c);
    return rc;
}

#ifndef REDKV_NO_CLUSTER
static int each_of_many(rk_router *r, rk_node **masters, int n, rk_start_fn *start, void *ctx,
                        int64_t deadline);
#endif

int rk_route_each_master(rk_router *r, rk_start_fn *start, void *ctx, int64_t deadline)
{
    rk_node **masters;
    int n = r->topo->masters(r, deadline, &masters);
    if (n < 0)
        return n;
    if (!MULTI(r) || n == 1) {
        int rc = each_of_one(masters[0], start, ctx, deadline, REDIRECTS(r));
        resp_free(masters);
        return rc;
    }
#ifndef REDKV_NO_CLUSTER
    return each_of_many(r, masters, n, start, ctx, deadline);
#else
    return REDKV_OK;                   /* one server: always the branch above */
#endif
}

#ifndef REDKV_NO_CLUSTER
/* Every master at once: each one's pooled connection is made event-driven, and one poll
   drives them all until every conversation has ended. */
static int each_of_many(rk_router *r, rk_node **masters, int n, rk_start_fn *start, void *ctx,
                        int64_t deadline)
{
    fan_conn *fc = resp_malloc((size_t)n * sizeof *fc);
    struct pollfd *pfd = resp_malloc((size_t)n * sizeof *pfd);
    int rc = fc && pfd ? REDKV_OK : rk_error(REDKV_ENOMEM, "out of memory");
    int borrowed = 0;
    for (; rc == REDKV_OK && borrowed < n; borrowed++) {
        memset(&fc[borrowed], 0, sizeof *fc);
        fc[borrowed].pool = &masters[borrowed]->pool;
        fc[borrowed].one_slot = r->topo->redirected != NULL;
        fc[borrowed].of = n;
        if ((rc = rk_pool_get(fc[borrowed].pool, deadline, &fc[borrowed].conn)) != REDKV_OK)
            break;
        rc = fan_start(&fc[borrowed], start, ctx, borrowed);
    }
    while (rc == REDKV_OK && fan_busy(fc, n)) {
        fan_step(fc, n, pfd);
        for (int i = 0; i < n && rc == REDKV_OK; i++)
            rc = fan_check_stale(&fc[i], start, ctx, i);
    }
    for (int i = 0; i < borrowed; i++) {
        if (rc != REDKV_OK)
            rk_conn_fail_all(fc[i].conn, rc);   /* what the owner queued never goes out */
        rk_conn_set_blocking(fc[i].conn, 1);
        rk_pool_put(fc[i].pool, fc[i].conn);
    }
    resp_free(pfd);
    resp_free(fc);
    resp_free(masters);
    return rc;
}
#endif

/* ==== The client-side cache's view of the topology (issue #16) ================================
 * Additions only, kept apart: which node serves a key now (its tracking connection carries
 * that key's invalidations), and a count of a cluster's slot map changes. */
#ifndef REDKV_NO_CACHE

const rk_config *rk_route_node_cfg(rk_router *r, const void *prefix, size_t plen,
                                   const void *key, size_t klen, int64_t deadline)
{
    int slot = REDIRECTS(r) ? rk_key_slot(prefix, plen, key, klen) : 0;
    rk_node *node = NULL;
    if (deadline == 0)
        node = r->topo->node_now(r, slot);
    else if (r->topo->node_for(r, slot, deadline, &node) != REDKV_OK)
        node = NULL;
    return node ? &node->cfg : NULL;
}

unsigned long rk_route_changes(rk_router *r)
{
#ifndef REDKV_NO_CLUSTER
    if (MULTI(r)) {
        unsigned long gen;
        rk_cluster_place(r, 0, &gen);
        return gen + __atomic_load_n(&r->redirects, __ATOMIC_ACQUIRE);
    }
#endif
    (void)r;
    return 0;
}

#endif /* REDKV_NO_CACHE */
