/* sentinel.c - the Redis Sentinel topology: one master at a time, found by asking the
 * sentinels (SENTINEL get-master-addr-by-name) and confirmed with ROLE on the master itself,
 * since a sentinel can be behind. The router (router.c) retries a lost connection or a
 * READONLY answer within the call's deadline and calls refresh, which asks again; this file
 * only says which node is the master and learns it.
 *
 * Sentinels are asked in turn, the one that answered last first; the list grows with the
 * sentinels they name (SENTINEL sentinels). Data nodes are the router's nodes (the table
 * only grows), so a new master after a failover is a new node, or one seen before.
 *
 * The asynchronous requests follow the master on the event loop's thread only (the
 * blocking threads never touch the async connection): node_now moves them when that needs
 * no callback, rk_sentinel_follow (from rk_router_process) in any case. No +switch-master
 * subscription: the failure of the next call already sends us to the sentinels, and a
 * subscription would need a connection driven in the background, which redkv has no
 * thread or descriptor for. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "topology.h"

#ifndef REDKV_NO_SENTINEL

#ifdef REDKV_NO_THREADS
#define STATE_LOCK(s)      ((void)0)
#define STATE_UNLOCK(s)    ((void)0)
#define DISCOVERY_LOCK(s)  ((void)0)
#define DISCOVERY_TRYLOCK(s) 0
#define DISCOVERY_UNLOCK(s) ((void)0)
#define TABLE_LOCK(r)      ((void)0)
#define TABLE_UNLOCK(r)    ((void)0)
#else
#define STATE_LOCK(s)      pthread_mutex_lock(&(s)->lock)
#define STATE_UNLOCK(s)    pthread_mutex_unlock(&(s)->lock)
#define DISCOVERY_LOCK(s)  pthread_mutex_lock(&(s)->discovering)
#define DISCOVERY_TRYLOCK(s) pthread_mutex_trylock(&(s)->discovering)
#define DISCOVERY_UNLOCK(s) pthread_mutex_unlock(&(s)->discovering)
#define TABLE_LOCK(r)      pthread_mutex_lock(&(r)->lock)
#define TABLE_UNLOCK(r)    pthread_mutex_unlock(&(r)->lock)
#endif

/* How often the sentinels are asked again while all goes well. A manual failover (SENTINEL
   FAILOVER) leaves the old master taking writes until the sentinels demote it, about 10 s
   later; every write it takes meanwhile is lost. Asking again this often bounds that. */
#ifndef REDKV_SENTINEL_RECHECK_MS
#define REDKV_SENTINEL_RECHECK_MS 1000
#endif

#define MAX_SENTINELS 16      /* the configured ones and those they name */
#define MAX_MASTERS 64        /* data nodes seen over a client's life (failovers) */

/* One sentinel: its address and AUTH (sentinel_username / sentinel_password), and a
   blocking connection used under the discovery lock only. */
typedef struct sentinel {
    rk_config cfg;
    rk_conn conn;
} sentinel;

typedef struct sentinel_state {
    sentinel *list[MAX_SENTINELS];
    int n;                    /* used under the discovery lock */
    int preferred;            /* the sentinel that answered last: asked first */
    rk_node *master;          /* confirmed; NULL until the first discovery succeeds */
    unsigned long found;      /* discoveries that succeeded: lets waiters skip theirs */
    int64_t asked_at;         /* when the last discovery began */
    rk_node *async_node;      /* where asynchronous requests go: the event loop's own */
    rk_node *nowhere;         /* async requests while no master is known: fail to resolve */
#ifndef REDKV_NO_THREADS
    pthread_mutex_t lock;     /* master, found */
    pthread_mutex_t discovering;   /* one discovery at a time */
#endif
} sentinel_state;

static sentinel_state *state_of(rk_router *r) { return r->topo_state; }

static rk_node *current_master(sentinel_state *st)
{
    STATE_LOCK(st);
    rk_node *m = st->master;
    STATE_UNLOCK(st);
    return m;
}

/* ---- the sentinels ----------------------------------------------------------------------- */

static void sentinel_free_one(sentinel *s)
{
    rk_conn_free(&s->conn);
    resp_free(s->cfg.host);
    resp_free(s->cfg.where);
    resp_free(s);
}

/* Appends the sentinel at host:port unless known: 0, or -1 without memory. */
static int sentinel_add(rk_router *r, const char *host, size_t hlen, int port)
{
    sentinel_state *st = state_of(r);
    for (int i = 0; i < st->n; i++) {
        const rk_config *c = &st->list[i]->cfg;
        if (c->port == port && strlen(c->host) == hlen && memcmp(c->host, host, hlen) == 0)
            return 0;
    }
    if (st->n == MAX_SENTINELS)
        return 0;
    sentinel *s = resp_malloc(sizeof *s);
    if (!s)
        return -1;
    s->cfg = *r->cfg;                 /* timeouts, limits, transport: the client's */
    s->cfg.seeds = NULL;
    s->cfg.nseeds = 0;
    s->cfg.tls_owned = 0;
    s->cfg.path = NULL;
    s->cfg.where = NULL;
    s->cfg.db = 0;
    s->cfg.port = port;
    s->cfg.user = r->cfg->sentinel_user;
    s->cfg.pass = r->cfg->sentinel_pass;
    s->cfg.host = rk_strndup(host, hlen);
    if (!s->cfg.host || rk_config_where(&s->cfg)) {
        resp_free(s->cfg.host);
        resp_free(s);
        return -1;
    }
    rk_conn_init(&s->conn, &s->cfg, 1);
    st->list[st->n++] = s;
    return 0;
}

/* ---- blocking round trips ------------------------------------------------------------------ */

typedef struct snt_args {
    int argc;
    const char *argv[3];
} snt_args;

static int snt_encode(resp_buf *out, const void *arg)
{
    const snt_args *a = arg;
    int rc = resp_encode_header(out, a->argc);
    for (int i = 0; i < a->argc; i++)
        rc |= resp_encode_arg(out, a->argv[i], strlen(a->argv[i]));
    return rc;
}

/* A round trip whose reply is read by take (the reply lives during the callback only). */
typedef struct snt_call {
    rk_req req;               /* first */
    int (*take)(struct snt_call *call, const resp_reply *reply);
    const char *secret;       /* never shown in a message */
    const char *asked;        /* where, for messages */
    int status;
    /* what take found */
    char host[256];
    int port, is_master;
    rk_router *router;
} snt_call;

static void snt_done(rk_req *req, int status, const resp_reply *reply)
{
    snt_call *call = (snt_call *)req;
    if (status != REDKV_OK)
        return;
    if (reply->type == RESP_ERROR) {
        char text[200];
        rk_redact(text, sizeof text, reply->str, reply->len, call->secret);
        int auth = reply->len >= 6 && (memcmp(reply->str, "NOAUTH", 6) == 0 ||
                                       memcmp(reply->str, "NOPERM", 6) == 0);
        call->status = rk_error(auth ? REDKV_EAUTH : REDKV_ESERVER, "%s answered: %s",
                                call->asked, text);
        return;
    }
    call->status = call->take(call, reply);
}

/* Runs args on conn (blocking, within the command timeout and deadline); a connection
   that was closed while it sat idle is tried once more, new. OK, or the error. */
static int snt_run(rk_conn *conn, snt_call *call, const snt_args *args, int64_t deadline)
{
    int rc = REDKV_ECONN;
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t until = rk_deadline(conn->cfg->command_timeout_ms);
        int reused = rk_conn_is_open(conn);
        memset(&call->req, 0, sizeof call->req);
        call->req.done = snt_done;
        call->status = REDKV_OK;
        if ((rc = rk_conn_queue(conn, &call->req, snt_encode, args,
                                until < deadline ? until : deadline)) != REDKV_OK)
            return rc;
        rc = rk_conn_run(conn, &call->req);
        if (!(rc == REDKV_ECONN && reused))
            break;
    }
    return rc ? rc : call->status;
}

/* SENTINEL get-master-addr-by-name: [ip, port], or nil when the name is unknown. */
static int take_addr(snt_call *call, const resp_reply *r)
{
    if (r->type == RESP_NIL || r->type == RESP_NIL_ARRAY)
        return REDKV_MISSING;
    const resp_reply *ip = r->type == RESP_ARRAY && r->len == 2 ? resp_element(r, 0) : NULL;
    const resp_reply *port = ip ? resp_element(r, 1) : NULL;
    long p = 0;
    if (!ip || ip->type != RESP_BULK || port->type != RESP_BULK || ip->len == 0 ||
        ip->len >= sizeof call->host || port->len == 0 || port->len > 5)
        return rk_error(REDKV_ESERVER, "%s: unexpected reply to SENTINEL get-master-addr-by-name",
                        call->asked);
    for (size_t i = 0; i < port->len; i++)
        p = port->str[i] >= '0' && port->str[i] <= '9' ? p * 10 + (port->str[i] - '0') : 99999;
    if (p <= 0 || p > 65535)
        return rk_error(REDKV_ESERVER, "%s named a master with a bad port", call->asked);
    memcpy(call->host, ip->str, ip->len);
    call->host[ip->len] = 0;
    call->port = (int)p;
    return REDKV_OK;
}

/* ROLE: ["master", ...], ["slave", ...] or ["sentinel", ...]. */
static int take_role(snt_call *call, const resp_reply *r)
{
    const resp_reply *role = r->type == RESP_ARRAY && r->len > 0 ? resp_element(r, 0) : NULL;
    if (!role || role->type != RESP_BULK)
        return rk_error(REDKV_ESERVER, "%s: unexpected reply to ROLE", call->asked);
    call->is_master = role->len == 6 && memcmp(role->str, "master", 6) == 0;
    return REDKV_OK;
}

/* The value of key in a flat [key, value, ...] array, or NULL. */
static const resp_reply *field_of(const resp_reply *r, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i + 1 < r->len; i += 2) {
        const resp_reply *k = resp_element(r, i);
        if (k->type == RESP_BULK && k->len == klen && memcmp(k->str, key, klen) == 0)
            return resp_element(r, i + 1);
    }
    return NULL;
}

/* SENTINEL sentinels: the other sentinels of the master, each a flat map with ip, port. */
static int take_sentinels(snt_call *call, const resp_reply *r)
{
    for (size_t i = 0; r->type == RESP_ARRAY && i < r->len; i++) {
        const resp_reply *s = resp_element(r, i);
        const resp_reply *ip = s->type == RESP_ARRAY ? field_of(s, "ip") : NULL;
        const resp_reply *port = s->type == RESP_ARRAY ? field_of(s, "port") : NULL;
        long p = 0;
        if (!ip || !port || ip->type != RESP_BULK || port->type != RESP_BULK || ip->len == 0 ||
            port->len == 0 || port->len > 5)
            continue;
        for (size_t k = 0; k < port->len; k++)
            p = port->str[k] >= '0' && port->str[k] <= '9' ? p * 10 + (port->str[k] - '0') : 99999;
        if (p > 0 && p <= 65535 && sentinel_add(call->router, ip->str, ip->len, (int)p) < 0)
            return rk_error(REDKV_ENOMEM, "out of memory");
    }
    return REDKV_OK;
}

/* ---- the data nodes ------------------------------------------------------------------------ */

/* The node at host:port, added if new (with the URL's database); NULL without memory or
   when too many masters came and went. */
static rk_node *master_node(rk_router *r, const char *host, int port)
{
    size_t hlen = strlen(host);
    rk_node *found = NULL;
    TABLE_LOCK(r);
    for (int i = 0; i < r->nnodes && !found; i++) {
        const rk_config *nc = &r->nodes[i]->cfg;
        if (nc->port == port && strlen(nc->host) == hlen && memcmp(nc->host, host, hlen) == 0)
            found = r->nodes[i];
    }
    if (!found && r->nnodes <= MAX_MASTERS && (found = rk_node_new(r->cfg, host, hlen, port))) {
        found->cfg.db = r->cfg->db;    /* rk_node_new gives a cluster's database 0 */
        if (rk_router_add(r, found) < 0) {
            rk_node_free(found);
            found = NULL;
        }
    }
    TABLE_UNLOCK(r);
    return found;
}

/* ROLE on a pooled connection of node: 1 master, 0 not, or an error (EAUTH: the data
   node refused our credentials). */
static int confirm_master(rk_node *node, int64_t deadline)
{
    static const snt_args role = {1, {"ROLE"}};
    rk_conn *c;
    snt_call call;
    memset(&call, 0, sizeof call);
    call.take = take_role;
    call.secret = node->cfg.pass;
    call.asked = node->cfg.where;
    int rc = rk_pool_get(&node->pool, deadline, &c);
    if (rc)
        return rc;
    rc = snt_run(c, &call, &role, deadline);
    rk_pool_put(&node->pool, c);
    return rc ? rc : call.is_master;
}

/* ---- discovery ----------------------------------------------------------------------------- */

/* What the sentinels said, for the message when no master was confirmed. */
typedef struct verdict {
    int answered, unknown, named, hard;   /* hard: EAUTH or ENOMEM, which stops the search */
    int status;
    char first_named[280], other_named[280];
    char why[240];            /* the first failure, in words */
} verdict;

static void note_failure(verdict *v, int status)
{
    if (!v->why[0])
        snprintf(v->why, sizeof v->why, "%s", rk_error_text());
    if (status == REDKV_EAUTH || status == REDKV_ENOMEM) {
        v->hard = 1;
        v->status = status;
    }
}

static void note_named(verdict *v, const char *host, int port)
{
    char addr[280];
    snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    v->named++;
    if (!v->first_named[0])
        memcpy(v->first_named, addr, sizeof addr);
    else if (strcmp(addr, v->first_named) != 0 && !v->other_named[0])
        memcpy(v->other_named, addr, sizeof addr);
}

/* Asks sentinel i; OK when the master it names answers ROLE as a master (*out). */
static int ask_sentinel(rk_router *r, int i, int64_t deadline, verdict *v, rk_node **out)
{
    sentinel *s = state_of(r)->list[i];
    snt_args args = {3, {"SENTINEL", "get-master-addr-by-name", r->cfg->sentinel_master}};
    snt_call call;
    memset(&call, 0, sizeof call);
    call.take = take_addr;
    call.secret = s->cfg.pass;
    call.asked = s->cfg.where;
    int rc = snt_run(&s->conn, &call, &args, deadline);
    if (rc == REDKV_MISSING) {
        v->answered++;
        v->unknown++;
        return rc;
    }
    if (rc != REDKV_OK) {
        note_failure(v, rc);
        return rc;
    }
    v->answered++;
    note_named(v, call.host, call.port);
    rk_node *node = master_node(r, call.host, call.port);
    if (!node) {
        note_failure(v, rk_error(REDKV_ENOMEM, "out of memory"));
        return REDKV_ENOMEM;
    }
    rc = confirm_master(node, deadline);
    if (rc == 1) {
        *out = node;
        return REDKV_OK;
    }
    if (rc == 0)
        rk_error(REDKV_ECONN, "%s is no master (ROLE)", node->cfg.where);
    note_failure(v, rc ? rc : REDKV_ECONN);
    return REDKV_ECONN;
}

/* The sentinels it knows, from the one that answered: asked in later discoveries. */
static void learn_sentinels(rk_router *r, int i, int64_t deadline)
{
    sentinel *s = state_of(r)->list[i];
    snt_args args = {3, {"SENTINEL", "sentinels", r->cfg->sentinel_master}};
    snt_call call;
    memset(&call, 0, sizeof call);
    call.take = take_sentinels;
    call.secret = s->cfg.pass;
    call.asked = s->cfg.where;
    call.router = r;
    snt_run(&s->conn, &call, &args, deadline);   /* a failure: the list stays as it is */
}

/* The error for a discovery that confirmed no master. */
static int discovery_failed(const rk_router *r, const verdict *v, int asked)
{
    const char *name = r->cfg->sentinel_master;
    if (v->hard)
        return rk_error(v->status, "%s", v->why);
    if (v->other_named[0])
        return rk_error(REDKV_ECONN, "the sentinels disagree on the master \"%s\" (%s, %s) and "
                        "none of those answers as a master: %s", name, v->first_named,
                        v->other_named, v->why);
    if (v->named)
        return rk_error(REDKV_ECONN, "the sentinels name %s as the master \"%s\", but it is not "
                        "one now (a failover under way?): %s", v->first_named, name, v->why);
    if (v->answered)
        return rk_error(REDKV_ECONFIG, "no sentinel knows a master named \"%s\" (%d of %d "
                        "answered)", name, v->answered, asked);
    if (v->why[0])
        return rk_error(REDKV_ECONN, "no sentinel answered (%d asked): %s", asked, v->why);
    return rk_error(REDKV_ETIMEDOUT, "no sentinel answered in time");
}

/* Asks the sentinels in turn, the last to answer first, until one names a master that
   confirms it; OK, or an error with the message set. Runs alone (the discovery lock);
   a thread that waited for another's discovery takes its answer. */
static int discover_locked(rk_router *r, int64_t deadline);

static int discover(rk_router *r, int64_t deadline)
{
    sentinel_state *st = state_of(r);
    STATE_LOCK(st);
    unsigned long seen = st->found;
    STATE_UNLOCK(st);
    DISCOVERY_LOCK(st);
    STATE_LOCK(st);
    int fresh = st->found != seen;
    STATE_UNLOCK(st);
    int rc = fresh ? REDKV_OK : discover_locked(r, deadline);
    DISCOVERY_UNLOCK(st);
    return rc;
}

/* While all goes well: asks the sentinels again when the last time is RECHECK_MS ago, unless
   another thread is asking now (this call goes on with the master it knows). */
static void recheck(rk_router *r, int64_t deadline)
{
    sentinel_state *st = state_of(r);
    STATE_LOCK(st);
    int due = rk_now_ms() - st->asked_at >= REDKV_SENTINEL_RECHECK_MS;
    STATE_UNLOCK(st);
    if (!due || DISCOVERY_TRYLOCK(st) != 0)
        return;
    discover_locked(r, deadline);      /* a failure keeps the master known */
    DISCOVERY_UNLOCK(st);
}

/* The discovery itself, under the discovery lock. */
static int discover_locked(rk_router *r, int64_t deadline)
{
    sentinel_state *st = state_of(r);
    STATE_LOCK(st);
    st->asked_at = rk_now_ms();
    STATE_UNLOCK(st);
    verdict v;
    memset(&v, 0, sizeof v);
    rk_node *master = NULL;
    int asked = 0, n = st->n, first = st->preferred;
    for (int k = 0; k < n && !master && !v.hard && rk_now_ms() < deadline; k++, asked++) {
        int i = (first + k) % n;
        if (ask_sentinel(r, i, deadline, &v, &master) == REDKV_OK) {
            st->preferred = i;
            learn_sentinels(r, i, deadline);
        }
    }
    int rc = master ? REDKV_OK : discovery_failed(r, &v, asked);
    if (master) {
        STATE_LOCK(st);
        st->master = master;
        st->found++;
        STATE_UNLOCK(st);
    }
    return rc;
}

/* ---- the asynchronous connection follows the master ----------------------------------------- */

/* Moves the requests queued on from (none written: its socket is closed) to to, in order,
   and starts to's connect. Nothing moves when memory runs short: they stay where they are
   and fail there. 0, or -1 when they stayed. */
static int move_unwritten(rk_conn *from, rk_conn *to)
{
    size_t bytes = from->out.len - from->out_pos, listed = 0;
    for (rk_req *r = from->head; r; r = r->next) {
        if (r >= &from->hs_req[0] && r < &from->hs_req[RK_MAX_HANDSHAKE])
            return -1;                 /* a handshake under way: not "nothing written" */
        listed += r->len;
    }
    if (listed != bytes || (bytes && resp_buf_reserve(&to->out, bytes)))
        return -1;
    const char *cmd = from->out.data + from->out_pos;
    rk_req *req = from->head;
    from->head = from->tail = from->unsent = NULL;
    from->out.len = from->out_pos = 0;
    from->pending_error = 0;           /* a failed connect to the old master: not theirs now */
    while (req) {
        rk_req *next = req->next;
        memcpy(to->out.data + to->out.len, cmd, req->len);
        to->out.len += req->len;
        cmd += req->len;
        rk_conn_push(to, req);
        req = next;
    }
    rk_conn_start(to);
    return 0;
}

/* Points the async side at master, taking the requests not yet written along. */
static void switch_async(sentinel_state *st, rk_node *master)
{
    if (move_unwritten(&st->async_node->async, &master->async) == 0)
        st->async_node = master;
}

/* ---- the topology -------------------------------------------------------------------------- */

static int sentinel_node_for(rk_router *r, int slot, int64_t deadline, rk_node **out)
{
    (void)slot;
    /* Once a master is known it stays the answer until a refresh finds another: during a
       failover the router retries it, asking the sentinels again between tries. */
    if ((*out = current_master(state_of(r))) != NULL) {
        recheck(r, deadline);
        *out = current_master(state_of(r));
        return REDKV_OK;
    }
    int rc = discover(r, deadline);
    *out = current_master(state_of(r));
    return rc == REDKV_OK && !*out ? rk_error(REDKV_ECONN, "no master known") : rc;
}

/* The event loop's node: the master, once the old node's socket is closed (moving needs no
   callback then); rk_sentinel_follow does the rest. */
static rk_node *sentinel_node_now(rk_router *r, int slot)
{
    sentinel_state *st = state_of(r);
    (void)slot;
    rk_node *master = current_master(st);
    if (master && master != st->async_node && st->async_node->async.fd < 0)
        switch_async(st, master);
    return st->async_node;
}

static void sentinel_refresh(rk_router *r, const rk_node *avoid, int64_t deadline)
{
    (void)avoid;                       /* the sentinels decide; a failure keeps the old master */
    discover(r, deadline);
}

static int sentinel_masters(rk_router *r, int64_t deadline, rk_node ***out)
{
    rk_node *master;
    int rc = sentinel_node_for(r, 0, deadline, &master);
    if (rc)
        return rc;
    if (!(*out = resp_malloc(sizeof **out)))
        return rk_error(REDKV_ENOMEM, "out of memory");
    (*out)[0] = master;
    return 1;
}

static void sentinel_free(rk_router *r)
{
    sentinel_state *st = state_of(r);
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        sentinel_free_one(st->list[i]);
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->discovering);
#endif
    resp_free(st);
    r->topo_state = NULL;
}

static const rk_topology sentinel_topology = {
    sentinel_node_for, sentinel_node_now, NULL, sentinel_refresh, sentinel_masters,
    sentinel_free,
};

/* Called by rk_router_process before any I/O, so callbacks may run. */
void rk_sentinel_follow(rk_router *r)
{
    if (r->topo != &sentinel_topology)
        return;
    sentinel_state *st = state_of(r);
    if (r->async_stale) {
        r->async_stale = 0;
        r->topo->refresh(r, NULL, rk_deadline(r->cfg->command_timeout_ms));
    } else if (current_master(st)) {
        recheck(r, rk_deadline(r->cfg->command_timeout_ms));
    }
    rk_node *master = current_master(st);
    if (!master || master == st->async_node)
        return;
    rk_conn *old = &st->async_node->async;
    if (old->fd >= 0)                  /* written requests get ECONN, once */
        rk_conn_fail(old, rk_error(REDKV_ECONN, "%s is no longer the master",
                                   st->async_node->cfg.where));
    switch_async(st, master);
}

/* The node async requests go to before any master is known: its host does not resolve,
   so they fail with ECONN from redkv_process, never at once. */
static int add_nowhere(rk_router *r, sentinel_state *st)
{
    rk_node *node = rk_node_new(r->cfg, "", 0, 0);
    char where[300];
    snprintf(where, sizeof where, "the master \"%.200s\" (no sentinel has named it yet)",
             r->cfg->sentinel_master);
    char *text = rk_strndup(where, strlen(where));
    if (!node || !text || rk_router_add(r, node) < 0) {
        resp_free(text);
        if (node)
            rk_node_free(node);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    resp_free(node->cfg.where);
    node->cfg.where = text;
    st->nowhere = st->async_node = node;
    return REDKV_OK;
}

int rk_sentinel_attach(rk_router *r)
{
    sentinel_state *st = resp_malloc(sizeof *st);
    if (!st)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(st, 0, sizeof *st);
#ifndef REDKV_NO_THREADS
    if (pthread_mutex_init(&st->lock, NULL)) {
        resp_free(st);
        return rk_error(REDKV_ENOMEM, "cannot create the Sentinel lock");
    }
    if (pthread_mutex_init(&st->discovering, NULL)) {
        pthread_mutex_destroy(&st->lock);
        resp_free(st);
        return rk_error(REDKV_ENOMEM, "cannot create the Sentinel lock");
    }
#endif
    r->topo_state = st;
    r->topo = &sentinel_topology;
    r->async_stale = 1;                /* the first asynchronous request asks the sentinels */
    for (int i = 0; i < r->cfg->nseeds; i++) {
        const struct rk_seed *seed = &r->cfg->seeds[i];
        if (sentinel_add(r, seed->host, strlen(seed->host), seed->port) < 0)
            return rk_error(REDKV_ENOMEM, "out of memory");
    }
    return add_nowhere(r, st);
}

#else /* REDKV_NO_SENTINEL: the URL parser refuses Sentinel. */

int rk_sentinel_attach(rk_router *r)
{
    (void)r;
    return rk_error(REDKV_ECONFIG, "built without Redis Sentinel support (REDKV_NO_SENTINEL)");
}

void rk_sentinel_follow(rk_router *r) { (void)r; }

#endif
