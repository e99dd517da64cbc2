/* conn.c - one connection: connect, handshake, pipelined requests matched to replies.
 *
 * Requests are kept in order in one list; the written ones come first. Their commands sit
 * in c->out from out_pos on. A blocking call and an event loop drive the same functions
 * (conn_write, conn_read, conn_dispatch); a pool connection differs only in having a
 * blocking socket whose kernel timeouts bound each wait, so that a call costs one send and
 * one recv, no poll. */
#include "fmacros.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#if !defined(REDKV_NO_THREADS) && defined(__linux__)
#include <sys/syscall.h>
#ifdef SYS_futex
/* A waiter sleeps on its own word, not on the connection's lock. The operations are the
   kernel's ABI (linux/futex.h, which a musl toolchain need not ship): FUTEX_WAIT and
   FUTEX_WAKE with FUTEX_PRIVATE_FLAG. */
#define RK_FUTEX 1
#define RK_FUTEX_WAIT 128
#define RK_FUTEX_WAKE 129
#endif
#endif

/* A build without transports (REDKV_NO_TLS) has plain sockets only: these fold to
   constants, and the compiler drops every path of the transport. */
#ifdef REDKV_NO_TLS
#define SESSION(c)   ((void *)0)
#define TRANSPORT(c) ((const redkv_transport *)0)
#else
#define SESSION(c)   ((c)->session)
#define TRANSPORT(c) ((c)->cfg->tp)
#endif

/* Without threads (REDKV_NO_THREADS) names are looked up at once, never in the background:
   the RESOLVING state folds away. */
#ifdef REDKV_NO_THREADS
#define LOOKUP_THREADS 0
#else
#define LOOKUP_THREADS 1
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* A blocking wait may overshoot its deadline by this much before the kernel timeout is
   shortened, which costs a system call. */
#define RCVTIMEO_SLACK_MS 10
/* The read buffer starts at this size (and each read asks for at least this much room);
   small targets may lower it with -DREDKV_READ_CHUNK=... */
#ifndef REDKV_READ_CHUNK
#define REDKV_READ_CHUNK 16384
#endif
#define READ_CHUNK REDKV_READ_CHUNK

int64_t rk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rk_deadline(int timeout_ms) { return rk_now_ms() + timeout_ms; }

void rk_conn_init(rk_conn *c, const rk_config *cfg, int blocking)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->fd = -1;
    c->retired_fd = -1;
    c->blocking = blocking;
    resp_parser_init(&c->parser, &cfg->limits);
#ifndef REDKV_NO_THREADS
    pthread_mutex_init(&c->lock, NULL);
#endif
}

/* ---- the request list ------------------------------------------------------------------ */

void rk_conn_push(rk_conn *c, rk_req *req)
{
    req->next = NULL;
    req->completed = 0;
#ifndef REDKV_NO_THREADS
    req->waiter = NULL;
    c->queued++;
#endif
    if (c->tail)
        c->tail->next = req;
    else
        c->head = req;
    c->tail = req;
    if (!c->unsent) {
        c->unsent = req;
        c->unsent_done = 0;
    }
}

int rk_conn_queue(rk_conn *c, rk_req *req, rk_encode_fn *encode, const void *arg,
                  int64_t deadline)
{
    size_t start = c->out.len;
    if (encode(&c->out, arg)) {
        c->out.len = start;            /* nothing half-written is ever sent */
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    req->len = c->out.len - start;
    req->deadline = deadline ? deadline : rk_deadline(c->cfg->command_timeout_ms);
    rk_conn_push(c, req);
    return REDKV_OK;
}

/* A cluster resends a copy after a redirection; defined in every build, since the router's
   calls to them are folded away, not left out, without a cluster. */
int rk_conn_queue_bytes(rk_conn *c, rk_req *req, const char *cmd, size_t len)
{
    if (resp_buf_reserve(&c->out, len))
        return rk_error(REDKV_ENOMEM, "out of memory");
    memcpy(c->out.data + c->out.len, cmd, len);
    c->out.len += len;
    req->len = len;
    rk_conn_push(c, req);
    return REDKV_OK;
}

int rk_conn_reserve(rk_conn *c, size_t n)
{
    return resp_buf_reserve(&c->out, n) ? rk_error(REDKV_ENOMEM, "out of memory") : REDKV_OK;
}

void rk_conn_unqueue(rk_conn *c, rk_req *req)
{
    rk_req **link = &c->head, *prev = NULL;
    while (*link != req) {
        prev = *link;
        link = &prev->next;
    }
    *link = NULL;
    c->tail = prev;
    if (c->unsent == req)
        c->unsent = NULL;
    c->out.len -= req->len;
#ifndef REDKV_NO_THREADS
    c->queued--;
#endif
}

int rk_conn_idle(const rk_conn *c) { return !c->head && !c->pending_error; }
int rk_conn_is_open(const rk_conn *c) { return c->fd >= 0; }
int64_t rk_conn_connect_spent(const rk_conn *c) { return c->connect_spent_ms; }
int rk_conn_fd(const rk_conn *c) { return c->fd; }

void rk_conn_counts(const rk_conn *c, unsigned long *replies, unsigned long *lost)
{
    *replies = c->replies_ever;
    *lost = c->losses;
}

static void set_timeout(int fd, int opt, int ms);

/* Only a cluster drives pooled connections from a poll (delete_all on many masters). */
void rk_conn_set_blocking(rk_conn *c, int blocking)
{
    if (c->blocking == blocking)
        return;
    c->blocking = blocking;
    if (c->retired_fd >= 0) {
        close(c->retired_fd);
        c->retired_fd = -1;
    }
    if (c->fd < 0 || c->state == RK_CONNECTING || c->state == RK_SECURING)
        return;
    int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
    if (blocking) {
        set_timeout(c->fd, SO_RCVTIMEO, c->cfg->command_timeout_ms);
        set_timeout(c->fd, SO_SNDTIMEO, c->cfg->command_timeout_ms);
        c->rcvtimeo_ms = c->cfg->command_timeout_ms;
    }
}

#ifndef REDKV_NO_THREADS
enum { W_WAITING, W_DONE, W_LEAD };

/* A caller waiting for its request while another thread does the connection's I/O. */
typedef struct rk_waiter {
#ifdef RK_FUTEX
    int *state;               /* W_*: what the leader told it; the thread's own word */
#else
    int state;
    pthread_cond_t cv;
#endif
    char msg[256];            /* the error message its request ended with ("": none) */
} rk_waiter;

#ifdef RK_FUTEX
/* Each thread sleeps on a word of its own that lives as long as the thread: a leader's
   wake-up may come after the waiter has seen its state and returned (the wake follows the
   state), and must then touch memory that is still this thread's, not a stack frame long
   gone. A late wake-up of the thread's next wait is spurious, and each wait loops. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
static _Thread_local int waiter_word;
#else
static __thread int waiter_word;
#endif
#endif

/* Tells a waiter (the connection's lock held) that its request is done, or that it leads
   now. With a futex the waiter needs no lock to see W_DONE, so it never queues on the lock
   behind the leader, and the wake-up itself waits until the lock is released
   (rk_conn_release): callers queueing meanwhile do not wait for the leader's system calls.
   The state is set now (a waiter that has not slept yet sees it and never sleeps); the
   wake may reach the thread's word after the waiter has returned (see waiter_word). */
static void waiter_tell(rk_conn *c, rk_waiter *w, int state)
{
#ifdef RK_FUTEX
    int *word = w->state;              /* w is gone once the store is seen */
    __atomic_store_n(word, state, __ATOMIC_RELEASE);
    if (c->nwakes < RK_MAX_WAKES) {
        c->wakes[c->nwakes++] = word;
        return;
    }
    syscall(SYS_futex, word, RK_FUTEX_WAKE, 1, NULL, NULL, 0);
#else
    (void)c;
    w->state = state;
    pthread_cond_signal(&w->cv);
#endif
}

/* Unlocks c, and returns the waiters told meanwhile (in wakes) for wake_all. */
static int unlock_taking_wakes(rk_conn *c, int **wakes)
{
    int n = 0;
#ifdef RK_FUTEX
    n = c->nwakes;
    memcpy(wakes, c->wakes, (size_t)n * sizeof *wakes);
    c->nwakes = 0;
#else
    (void)wakes;
#endif
    pthread_mutex_unlock(&c->lock);
    return n;
}

static void wake_all(int **wakes, int n)
{
#ifdef RK_FUTEX
    for (int i = 0; i < n; i++)
        syscall(SYS_futex, wakes[i], RK_FUTEX_WAKE, 1, NULL, NULL, 0);
#else
    (void)wakes, (void)n;
#endif
}

void rk_conn_release(rk_conn *c)
{
    int *wakes[RK_MAX_WAKES];
    wake_all(wakes, unlock_taking_wakes(c, wakes));
}

/* Sleeps until told (the lock held on entry): W_DONE with the lock released, or W_LEAD
   with it held. */
static int waiter_sleep(rk_conn *c, rk_waiter *w)
{
#ifdef RK_FUTEX
    int state;
    rk_conn_release(c);
    while ((state = __atomic_load_n(w->state, __ATOMIC_ACQUIRE)) == W_WAITING)
        syscall(SYS_futex, w->state, RK_FUTEX_WAIT, W_WAITING, NULL, NULL, 0);
    if (state == W_LEAD)
        pthread_mutex_lock(&c->lock);
    return state;
#else
    while (w->state == W_WAITING)
        pthread_cond_wait(&w->cv, &c->lock);
    if (w->state == W_DONE)
        pthread_mutex_unlock(&c->lock);
    return w->state;
#endif
}

/* Completes a request whose caller waits in another thread. Its done (the copy-out into
   the caller's buffer) runs here, in the leader's thread, before the caller is told. A
   message it leaves belongs to the caller's thread, not to this one: it goes with the
   request. */
static void complete_for(rk_conn *c, rk_req *r, int status, const resp_reply *reply)
{
    rk_waiter *w = r->waiter;
    char mine[sizeof w->msg];
    const char *text = rk_error_text();
    snprintf(mine, sizeof mine, "%s", strcmp(text, "no error") ? text : "");
    rk_error_clear();
    r->status = status;
    r->completed = 1;
    r->done(r, status, reply);
    text = rk_error_text();
    if (strcmp(text, "no error") != 0)
        snprintf(w->msg, sizeof w->msg, "%s", text);
    else if (status != REDKV_OK)       /* what the connection failed with, set before */
        snprintf(w->msg, sizeof w->msg, "%s", mine);
    if (mine[0])
        rk_error(0, "%s", mine);
    else
        rk_error_clear();
    waiter_tell(c, w, W_DONE);
}
#endif

static void complete(rk_conn *c, rk_req *r, int status, const resp_reply *reply)
{
#ifdef REDKV_NO_THREADS
    (void)c;
#else
    c->queued--;
    if (r->waiter) {
        complete_for(c, r, status, reply);
        return;
    }
#endif
    r->status = status;
    r->completed = 1;
    r->done(r, status, reply);        /* may release r: not touched after this */
}

static int is_handshake(const rk_conn *c, const rk_req *r);

/* Completes every request of a detached list with an error; the first with first_status. */
static void complete_list(rk_conn *c, rk_req *r, rk_req *stop, int first_status, int others)
{
    for (int status = first_status; r != stop; status = others) {
        rk_req *next = r->next;
        c->errors_delivered += !is_handshake(c, r);
        complete(c, r, status, NULL);
        r = next;
    }
}

static void note_sent(rk_conn *c, size_t n)
{
    while (n && c->unsent) {
        size_t left = c->unsent->len - c->unsent_done;
        if (n < left) {
            c->unsent_done += n;
            return;
        }
        n -= left;
        c->unsent = c->unsent->next;
        c->unsent_done = 0;
    }
}

static int is_handshake(const rk_conn *c, const rk_req *r)
{
    return r >= &c->hs_req[0] && r < &c->hs_req[RK_MAX_HANDSHAKE];
}

#ifdef REDKV_NO_THREADS
#define WRITING(c) 0
#else
#define WRITING(c) ((c)->writing)   /* a caller is sending what it took of out */
#endif

/* Closes the socket and forgets the bytes of a reply in progress. The descriptor of an
   event-driven connection is shut down but kept open until the next socket exists, so the
   next socket never gets the same number: an event loop that sees redkv_fd() change knows
   to re-register, even with epoll. */
static void drop_socket(rk_conn *c)
{
    if (SESSION(c)) {
        TRANSPORT(c)->close(c->session);
        c->session = NULL;
    }
    c->replies = 0;
    if (LOOKUP_THREADS && c->lookup) { /* RESOLVING: fd is the lookup's pipe */
        if (c->state == RK_RESOLVING)
            c->fd = -1;
        rk_lookup_drop(c->lookup);
        c->lookup = NULL;
    }
    c->drops += c->fd >= 0;
    if (c->fd >= 0 && (!c->blocking || WRITING(c))) {
        /* (a caller still sending on it closes it when its send returns: write_unlocked) */
        shutdown(c->fd, SHUT_RDWR);
        if (c->retired_fd >= 0)
            close(c->retired_fd);
        c->retired_fd = c->fd;
    } else if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->state = RK_CLOSED;
    c->hs_bytes = 0;
    c->hs_left = 0;
    c->in_len = c->in_pos = 0;
    resp_parser_reset(&c->parser);
    if (c->addrs) {
        freeaddrinfo(c->addrs);
        c->addrs = c->addr = NULL;
    }
}

static void compact_out(rk_conn *c)
{
    if (c->out_pos) {
        memmove(c->out.data, c->out.data + c->out_pos, c->out.len - c->out_pos);
        c->out.len -= c->out_pos;
        c->out_pos = 0;
    }
}

int rk_conn_fail(rk_conn *c, int status)
{
    c->losses += status == REDKV_ECONN;
    rk_req *first = c->head, *stop = c->unsent;
    /* A request partly written, and a handshake not yet written, cannot go out again. */
    while (stop && (c->unsent_done > 0 || is_handshake(c, stop))) {
        c->out_pos += stop->len - c->unsent_done;
        c->unsent_done = 0;
        stop = stop->next;
    }
    c->head = c->unsent = stop;
    if (!stop)
        c->tail = NULL;
    compact_out(c);
    drop_socket(c);
    /* Dropped for want of memory, not lost: the others' replies went for the same reason. */
    complete_list(c, first, stop, status, status == REDKV_ENOMEM ? REDKV_ENOMEM : REDKV_ECONN);
    return status;
}

int rk_conn_fail_all(rk_conn *c, int status)
{
    c->losses += status == REDKV_ECONN;
    rk_req *first = c->head;
    c->head = c->tail = c->unsent = NULL;
    c->unsent_done = 0;
    c->out.len = c->out_pos = 0;
    drop_socket(c);
    complete_list(c, first, NULL, status, status);
    return status;
}

void rk_conn_free(rk_conn *c)
{
    if (c->head || c->pending_error)   /* a clean close leaves the last error alone */
        rk_error(REDKV_ECONN, "the client was closed");
    rk_conn_fail_all(c, REDKV_ECONN);
    if (c->retired_fd >= 0)
        close(c->retired_fd);
    c->retired_fd = -1;
    resp_buf_free(&c->out);
#ifndef REDKV_NO_THREADS
    resp_buf_free(&c->spare);
#endif
    resp_free(c->in);
    c->in = NULL;
    resp_parser_free(&c->parser);
#ifndef REDKV_NO_THREADS
    pthread_mutex_destroy(&c->lock);
#endif
}


/* ---- handshake ------------------------------------------------------------------------- */

/* The handshake: the commands that make a socket a session, in order. Each step writes
   its command, or nothing when the configuration does not call for it. */
typedef struct hs_step {
    const char *name;         /* for messages */
    int (*encode)(resp_buf *out, const rk_config *cfg);   /* 1 written, 0 skipped, -1 no memory */
} hs_step;

#ifndef REDKV_NO_CACHE
/* RESP3, for the cache's tracking connection: HELLO 3 [AUTH user pass] instead of AUTH. */
static int encode_hello(resp_buf *out, const rk_config *cfg)
{
    if (!cfg->resp3)
        return 0;
    int rc = resp_encode_header(out, cfg->pass ? 5 : 2) | resp_encode_arg(out, "HELLO", 5) |
             resp_encode_arg(out, "3", 1);
    if (cfg->pass) {
        const char *user = cfg->user ? cfg->user : "default";
        rc |= resp_encode_arg(out, "AUTH", 4) | resp_encode_arg(out, user, strlen(user)) |
              resp_encode_arg(out, cfg->pass, strlen(cfg->pass));
    }
    return rc ? -1 : 1;
}

/* CLIENT TRACKING on BCAST [PREFIX p]: invalidations for every key under p, whoever read it. */
static int encode_tracking(resp_buf *out, const rk_config *cfg)
{
    if (!cfg->tracking)
        return 0;
    int rc = resp_encode_header(out, cfg->track_plen ? 6 : 4) |
             resp_encode_arg(out, "CLIENT", 6) | resp_encode_arg(out, "TRACKING", 8) |
             resp_encode_arg(out, "on", 2) | resp_encode_arg(out, "BCAST", 5);
    if (cfg->track_plen)
        rc |= resp_encode_arg(out, "PREFIX", 6) |
              resp_encode_arg(out, cfg->track_prefix, cfg->track_plen);
    return rc ? -1 : 1;
}
#endif

static int encode_auth(resp_buf *out, const rk_config *cfg)
{
    if (!cfg->pass || cfg->resp3)
        return 0;
    int rc = resp_encode_header(out, cfg->user ? 3 : 2) | resp_encode_arg(out, "AUTH", 4);
    if (cfg->user)
        rc |= resp_encode_arg(out, cfg->user, strlen(cfg->user));
    rc |= resp_encode_arg(out, cfg->pass, strlen(cfg->pass));
    return rc ? -1 : 1;
}

static int encode_select(resp_buf *out, const rk_config *cfg)
{
    char db[24];
    if (cfg->db <= 0)
        return 0;
    int rc = resp_encode_header(out, 2) | resp_encode_arg(out, "SELECT", 6) |
             resp_encode_arg(out, db, resp_format_ll(db, cfg->db));
    return rc ? -1 : 1;
}

static const hs_step handshake_steps[] = {
#ifndef REDKV_NO_CACHE
    {"HELLO 3", encode_hello},
#endif
    {"AUTH", encode_auth}, {"SELECT", encode_select},
#ifndef REDKV_NO_CACHE
    {"CLIENT TRACKING", encode_tracking},
#endif
};
#define NSTEPS (sizeof handshake_steps / sizeof *handshake_steps)

int rk_refusal(const char *text, size_t len)
{
    static const char *const refusals[] = {"ERR max number of clients reached", "DENIED",
                                           "LOADING", "MASTERDOWN"};
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        size_t n = strlen(refusals[i]);
        if (len >= n && memcmp(text, refusals[i], n) == 0)
            return 1;
    }
    return 0;
}

static void handshake_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_conn *c = req->ctx;
    if (status != REDKV_OK)
        return;                        /* the connection is failing already */
    if (reply->type == RESP_ERROR) {
        /* A server that cannot take us (full, protected mode, loading) refused the
           connection, whichever command saw it; any other answer refused our credentials
           or database. Its words may echo our arguments: redacted. */
        char text[200];
        rk_redact(text, sizeof text, reply->str, reply->len, c->cfg->pass);
        int refused = rk_refusal(reply->str, reply->len);
        c->hs_status = refused ? REDKV_ECONN : REDKV_EAUTH;
        rk_error(c->hs_status, "%s refused by %s: %s",
                 handshake_steps[c->hs_steps[req - c->hs_req]].name, c->cfg->where, text);
    } else if (--c->hs_left == 0) {
        c->state = RK_READY;
        c->hs_bytes = 0;
    }
}

/* Puts the handshake in front of any queued command; writing stops after it until it is
   answered, so that nothing runs unauthenticated or in the wrong database. */
static int start_session(rk_conn *c)
{
    const rk_config *cfg = c->cfg;
    resp_buf hs = {0};
    size_t lens[RK_MAX_HANDSHAKE];
    int steps[RK_MAX_HANDSHAKE];
    int n = 0, rc = 0;
    c->hs_status = 0;
    for (size_t i = 0; i < NSTEPS && rc >= 0; i++) {
        size_t before = hs.len;
        if ((rc = handshake_steps[i].encode(&hs, cfg)) > 0) {
            lens[n] = hs.len - before;
            steps[n++] = (int)i;
        }
    }
    if (n == 0 && rc >= 0) {
        c->state = RK_READY;
        return REDKV_OK;
    }
    compact_out(c);
    if (rc < 0 || resp_buf_reserve(&c->out, hs.len)) {
        if (hs.data)
            memset(hs.data, 0, hs.len);
        resp_buf_free(&hs);
        return rk_error(REDKV_ENOMEM, "out of memory");
    }
    memmove(c->out.data + hs.len, c->out.data, c->out.len);
    memcpy(c->out.data, hs.data, hs.len);
    c->out.len += hs.len;
    c->hs_bytes = hs.len;
    memset(hs.data, 0, hs.len);        /* no copy of the password lingers */
    resp_buf_free(&hs);

    /* A blocking call's handshake is part of its round trip: its deadline bounds both. */
    int64_t deadline = c->blocking && c->head ? c->head->deadline
                                              : rk_deadline(cfg->command_timeout_ms);
    for (int i = n - 1; i >= 0; i--) {
        rk_req *r = &c->hs_req[i];
        memset(r, 0, sizeof *r);
        r->len = lens[i];
        r->deadline = deadline;
        r->done = handshake_done;
        r->ctx = c;
        c->hs_steps[i] = (unsigned char)steps[i];   /* which step, for its message */
        r->next = c->head;
        c->head = r;
        if (!c->tail)
            c->tail = r;
    }
    c->unsent = c->head;
    c->unsent_done = 0;
    c->hs_left = n;
#ifndef REDKV_NO_THREADS
    c->queued += n;
#endif
    c->state = RK_HANDSHAKE;
    return REDKV_OK;
}

/* ---- sockets --------------------------------------------------------------------------- */

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

/* The name lookup's outcome: OK with the addresses to try, or the error. A blocking
   connection that waited past its deadline gives up on it (ETIMEDOUT). */
static int lookup_outcome(rk_conn *c, int rc, struct addrinfo *list)
{
    if (rc == 1)
        return rk_error(REDKV_ETIMEDOUT, "looking up %s timed out after %d ms", c->cfg->where,
                        c->cfg->connect_timeout_ms);
    if (rc == REDKV_OK)
        c->addrs = c->addr = list;
    return rc;
}

/* Starts looking the host up: OK with the addresses ready, 1 while an event-driven
   connection waits for its lookup (fd is then the lookup's pipe), or an error. A blocking
   connection waits here, until the connect deadline. */
static int resolve(rk_conn *c)
{
    struct addrinfo *list = NULL;
    int rc = rk_lookup_start(c->cfg, &list, &c->lookup);
    if (rc != REDKV_OK || !LOOKUP_THREADS || !c->lookup)
        return lookup_outcome(c, rc, list);
    if (!c->blocking) {
        c->state = RK_RESOLVING;
        c->fd = rk_lookup_fd(c->lookup);
        return 1;
    }
    rc = rk_lookup_result(c->lookup, c->cfg, c->connect_deadline, &list);
    rc = lookup_outcome(c, rc, list);  /* apart: list is set by the call before */
    rk_lookup_drop(c->lookup);
    c->lookup = NULL;
    return rc;
}

/* A new close-on-exec socket numbered above 2: a program that closed its standard output
   must not have its printf land in the Redis connection as a command. */
static int open_socket(int family)
{
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd >= 0 && fd <= 2) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        int err = errno;
        close(fd);
        errno = err;
        return high;
    }
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* Starts a non-blocking connect to the current address (or the unix socket): 0 done,
   1 in progress, or an error with the message set. */
static int begin_connect(rk_conn *c)
{
    struct sockaddr_un sun;
    const struct sockaddr *sa;
    socklen_t salen;
    int family;
    if (c->cfg->path) {
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(c->cfg->path) >= sizeof sun.sun_path)
            return rk_error(REDKV_ECONN, "unix socket path too long");
        strcpy(sun.sun_path, c->cfg->path);
        sa = (const struct sockaddr *)&sun;
        salen = sizeof sun;
        family = AF_UNIX;
    } else {
        sa = c->addr->ai_addr;
        salen = c->addr->ai_addrlen;
        family = c->addr->ai_family;
    }
    int fd = open_socket(family);
    if (c->retired_fd >= 0) {
        close(c->retired_fd);
        c->retired_fd = -1;
    }
    if (fd < 0)
        return rk_error(REDKV_ECONN, "socket: %s", strerror(errno));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno == EINPROGRESS)
        return 1;
    int err = errno;
    close(fd);
    c->fd = -1;
    return rk_error(REDKV_ECONN, "cannot connect to %s: %s", c->cfg->where, strerror(err));
}

/* Starts the transport's session on the connected socket: OK or ETLS. */
static int start_secure(rk_conn *c)
{
    char err[256] = "";
    const char *name = c->cfg->tls_sni ? c->cfg->tls_sni : c->cfg->host ? c->cfg->host : "localhost";
    c->session = c->cfg->tp->open(c->cfg->tp->ctx, c->fd, name, err, sizeof err);
    if (!c->session)
        return rk_error(REDKV_ETLS, "TLS with %s: %s", c->cfg->where, err[0] ? err : "no session");
    c->state = RK_SECURING;
    c->tls_want = REDKV_WRITE;
    return REDKV_OK;
}

/* One step of the transport's handshake: 0 done, 1 more to do (c->tls_want), or ETLS. */
static int secure_step(rk_conn *c)
{
    char err[256] = "";
    int r = c->cfg->tp->handshake(c->session, err, sizeof err);
    if (r == REDKV_IO_WANT_READ || r == REDKV_IO_WANT_WRITE) {
        c->tls_want = r == REDKV_IO_WANT_READ ? REDKV_READ : REDKV_WRITE;
        return 1;
    }
    if (r != 0)
        return rk_error(REDKV_ETLS, "TLS handshake with %s failed: %s", c->cfg->where,
                        err[0] ? err : "rejected");
    return 0;
}

/* The socket carries commands now: socket options, then AUTH and SELECT. */
static int open_session(rk_conn *c)
{
    if (c->blocking) {
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
        set_timeout(c->fd, SO_RCVTIMEO, c->cfg->command_timeout_ms);
        set_timeout(c->fd, SO_SNDTIMEO, c->cfg->command_timeout_ms);
        c->rcvtimeo_ms = c->cfg->command_timeout_ms;
    }
    return start_session(c);
}

/* After a connect completes: the transport's handshake first when there is one (1: under
   way), else straight to the session. */
static int connected(rk_conn *c)
{
    if (c->addrs) {
        freeaddrinfo(c->addrs);
        c->addrs = c->addr = NULL;
    }
    return TRANSPORT(c) ? start_secure(c) : open_session(c);
}

static int socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return err;
}

/* Tries the addresses from the current one on until one connects or is in progress. */
static int try_addresses(rk_conn *c)
{
    int rc = REDKV_ECONN;
    while (c->cfg->path || c->addr) {
        rc = begin_connect(c);
        if (rc >= 0 || c->cfg->path || !(c->addr = c->addr->ai_next))
            break;
    }
    return rc;
}

/* Waits until fd is ready for events (REDKV_READ / REDKV_WRITE) or deadline: 1 ready,
   0 timed out. */
static int wait_ready(int fd, int events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {fd, (short)((events & REDKV_READ ? POLLIN : 0) |
                                         (events & REDKV_WRITE ? POLLOUT : 0)), 0};
        int64_t left = deadline - rk_now_ms();
        int ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (ready >= 0 || errno != EINTR)
            return ready > 0;
    }
}

/* Starts connecting: resolves, and tries the addresses until one connects or is under
   way (state CONNECTING). 0 or an error; the connect timeout starts now (the TLS
   handshake counts against it too). */
static int connect_start(rk_conn *c)
{
    c->connect_deadline = rk_deadline(c->cfg->connect_timeout_ms);
    int rc = c->cfg->path ? REDKV_OK : resolve(c);
    if (rc == 1)
        return REDKV_OK;               /* RESOLVING: lookup_step goes on */
    if (rc == REDKV_OK)
        rc = try_addresses(c);
    if (rc == 1)
        c->state = RK_CONNECTING;
    return rc == 0 ? connected(c) : rc < 0 ? rc : 0;
}

/* Event-driven: the lookup is done (or not yet: nothing to do). The new socket is made
   while the lookup's pipe is still open, so that it never takes the pipe's number: an event
   loop sees the descriptor change and registers the new one. */
static int lookup_step(rk_conn *c)
{
    struct addrinfo *list = NULL;
    int rc = rk_lookup_result(c->lookup, c->cfg, 0, &list);
    if (rc == 1)
        return REDKV_OK;
    c->fd = -1;                        /* the pipe was the lookup's */
    c->state = RK_CLOSED;
    if ((rc = lookup_outcome(c, rc, list)) == REDKV_OK)
        rc = try_addresses(c);
    if (rc == 1)
        c->state = RK_CONNECTING;
    else if (rc == 0)
        rc = connected(c);
    rk_lookup_drop(c->lookup);
    c->lookup = NULL;
    return rc < 0 ? rc : REDKV_OK;
}

/* One step once the socket is ready for what connecting waits on: the TCP connect's end
   (or the next address after a refusal), or a step of the transport's handshake. 0 (see
   c->state: still CONNECTING or SECURING, or on to AUTH and SELECT) or an error. */
static int connect_step(rk_conn *c)
{
    if (LOOKUP_THREADS && c->state == RK_RESOLVING)
        return lookup_step(c);
    if (TRANSPORT(c) && c->state == RK_SECURING) {
        int rc = secure_step(c);
        return rc == 0 ? open_session(c) : rc < 0 ? rc : 0;
    }
    int err = socket_error(c->fd);
    if (err == 0)
        return connected(c);
    rk_error(REDKV_ECONN, "cannot connect to %s: %s", c->cfg->where, strerror(err));
    close(c->fd);
    c->fd = -1;
    if (c->cfg->path || !c->addr || !(c->addr = c->addr->ai_next))
        return REDKV_ECONN;
    int rc = try_addresses(c);
    return rc == 0 ? connected(c) : rc < 0 ? rc : 0;
}

static int connecting(const rk_conn *c)
{
    return c->state == RK_RESOLVING || c->state == RK_CONNECTING || c->state == RK_SECURING;
}

static int connect_timed_out(const rk_conn *c)
{
    const char *what = c->state == RK_SECURING    ? "TLS handshake with"
                     : c->state == RK_RESOLVING ? "looking up"
                                                : "connect to";
    return rk_error(REDKV_ETIMEDOUT, "%s %s timed out after %d ms%s", what, c->cfg->where,
                    c->cfg->connect_timeout_ms,
                    c->state == RK_SECURING ? " (is this a TLS port?)" : "");
}

/* Connects (and secures) within the connect timeout, waiting in poll. The time it took is
   added to the deadlines of the requests waiting, so that a call ends within
   connect_timeout_ms + command_timeout_ms, AUTH and SELECT sharing the first command's. */
static int connect_blocking(rk_conn *c)
{
    int64_t start = rk_now_ms();
    int rc = connect_start(c);
    while (rc == 0 && connecting(c)) {
        int want = c->state == RK_CONNECTING ? REDKV_WRITE : c->tls_want;
        rc = wait_ready(c->fd, want, c->connect_deadline) ? connect_step(c) : connect_timed_out(c);
    }
    int64_t spent = rk_now_ms() - start;
    for (rk_req *r = c->head; r; r = r->next)
        r->deadline += spent;
    c->connect_spent_ms = spent;
    if (rc != 0)
        drop_socket(c);
    return rc;
}

/* ---- reading and writing ---------------------------------------------------------------- */

/* The transport's write and read, with its answers told as send and recv tell theirs
   (EAGAIN: would block; EPROTO: the session failed). */
static ssize_t secure_write(rk_conn *c, const void *p, size_t n)
{
    long r = c->cfg->tp->write(c->session, p, n);
    if (r == REDKV_IO_WANT_READ || r == REDKV_IO_WANT_WRITE)
        errno = EAGAIN;
    else if (r <= 0)
        errno = EPROTO;
    return r > 0 ? (ssize_t)r : -1;
}

static ssize_t secure_read(rk_conn *c, void *p, size_t n)
{
    long r = c->cfg->tp->read(c->session, p, n);
    if (r == REDKV_IO_WANT_READ || r == REDKV_IO_WANT_WRITE)
        errno = EAGAIN;
    else if (r < 0)
        errno = EPROTO;
    return r >= 0 ? (ssize_t)r : -1;
}

/* Bytes the transport has decrypted already: readable without waiting for the socket. */
static size_t secure_pending(const rk_conn *c)
{
    return SESSION(c) && TRANSPORT(c)->pending ? TRANSPORT(c)->pending(c->session) : 0;
}

/* Sends data[*pos, limit) on fd, moving *pos on. 0 (all, or a non-blocking socket is full),
   or an error. fd is the caller's, taken under the lock: a send without the lock must not
   follow c->fd to a socket the leader opened meanwhile. */
static int send_bytes(rk_conn *c, int fd, const char *data, size_t *pos, size_t limit,
                      int64_t deadline)
{
    int sends = 0, shortened = 0, rc = 0;
    while (*pos < limit) {
        /* Blocking: SO_SNDTIMEO bounds each send, and a server that keeps taking a few
           bytes at a time must not stretch the whole past the first request's deadline. */
        if (c->blocking && sends++ && deadline) {
            int64_t left = deadline - rk_now_ms();
            if (left <= 0) {
                rc = REDKV_ETIMEDOUT;
                break;
            }
            if (left < c->cfg->command_timeout_ms) {
                set_timeout(fd, SO_SNDTIMEO, (int)left);
                shortened = 1;
            }
        }
        ssize_t n = SESSION(c) ? secure_write(c, data + *pos, limit - *pos)
                               : send(fd, data + *pos, limit - *pos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = c->blocking ? REDKV_ETIMEDOUT : 0;
            break;
        }
        if (n < 0) {
            rc = rk_error(REDKV_ECONN, "connection to %s lost while writing: %s", c->cfg->where,
                          strerror(errno));
            break;
        }
        *pos += (size_t)n;
    }
    if (shortened)
        set_timeout(fd, SO_SNDTIMEO, c->cfg->command_timeout_ms);
    if (rc == REDKV_ETIMEDOUT)
        return rk_error(rc, "the server did not take the command within %d ms",
                        c->cfg->command_timeout_ms);
    return rc;
}

/* Writes what may be written now. 0 (all, or the socket is full), or an error. */
static int conn_write(rk_conn *c)
{
    size_t from = c->out_pos;
    int rc = send_bytes(c, c->fd, c->out.data, &c->out_pos,
                        c->state == RK_HANDSHAKE ? c->hs_bytes : c->out.len,
                        c->unsent ? c->unsent->deadline : 0);
    note_sent(c, c->out_pos - from);
    if (c->out_pos == c->out.len)
        c->out_pos = c->out.len = 0;
    return rc;
}

#ifndef REDKV_NO_THREADS
/* A write by one caller at a time (the leader, or a caller sending its own request while
   the leader reads: rk_conn_run_shared), with the lock released for the system call, so
   that callers queueing meanwhile never wait behind it: the bytes queued so far are taken
   aside (out becomes the spare buffer, which they append to) and sent. Lock held on entry
   and on return; an error is the caller's to fail the connection with. */
static int write_unlocked(rk_conn *c)
{
    resp_buf mine = c->out;
    size_t pos = c->out_pos;
    c->out = c->spare;
    c->out_pos = 0;
    /* Counted as written before it is: the leader may read a reply to it before this
       thread holds the lock again. A send that fails fails the connection (rk_conn_fail),
       and with it every request counted here. */
    int64_t deadline = c->unsent ? c->unsent->deadline : 0;
    int fd = c->fd;
    note_sent(c, mine.len - pos);
    c->writing = 1;
    /* the next commands go out before the waiters of the last replies are woken: the
       server works on them meanwhile */
    int *wakes[RK_MAX_WAKES], nwakes = unlock_taking_wakes(c, wakes);
    int rc = send_bytes(c, fd, mine.data, &pos, mine.len, deadline);
    wake_all(wakes, nwakes);
    pthread_mutex_lock(&c->lock);
    c->writing = 0;
    if (c->blocking && c->retired_fd >= 0) {   /* the socket was dropped meanwhile */
        close(c->retired_fd);
        c->retired_fd = -1;
    }
    c->spare = mine;
    c->spare.len = 0;
    return rc;
}
#endif

static int has_output(const rk_conn *c)
{
    return c->out_pos < (c->state == RK_HANDSHAKE ? c->hs_bytes : c->out.len);
}

/* Makes room to read into, growing no faster than the bytes that arrived, so a hostile
   length cannot make us allocate what was never sent. */
static int make_room(rk_conn *c)
{
    size_t have = c->in_len - c->in_pos, want = resp_parser_want(&c->parser);
    size_t room = READ_CHUNK;
    if (want > have && want - have > room)
        room = want - have < c->in_cap ? want - have : c->in_cap;
    if (c->in_cap - c->in_len >= room)
        return 0;
    if (c->in_pos) {
        memmove(c->in, c->in + c->in_pos, have);
        c->in_len = have;
        c->in_pos = 0;
        if (c->in_cap - c->in_len >= room)
            return 0;
    }
    size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
    while (cap - c->in_len < room)
        cap *= 2;
    char *in = resp_realloc(c->in, cap);
    if (!in)
        return rk_error(REDKV_ENOMEM, "out of memory for a reply");
    c->in = in;
    c->in_cap = cap;
    return 0;
}

/* One recv: the bytes read (> 0), 0 when none are ready, or an error. */
static int conn_read(rk_conn *c)
{
    int rc = make_room(c);
    if (rc)
        return rc;
    size_t room = c->in_cap - c->in_len;
    ssize_t n = SESSION(c) ? secure_read(c, c->in + c->in_len, room)
                           : recv(c->fd, c->in + c->in_len, room, 0);
    c->read_filled = n > 0 && ((size_t)n == room || secure_pending(c) > 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return n > 0x7fffffff ? 0x7fffffff : (int)n;
    }
    if (n == 0 && !c->replies && !TRANSPORT(c))
        return rk_error(REDKV_ECONN, "%s closed the connection before any reply (is this a TLS "
                        "port? then use rediss://)", c->cfg->where);
    if (n == 0)
        return rk_error(REDKV_ECONN, "%s closed the connection", c->cfg->where);
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    int err = errno;
    return rk_error(REDKV_ECONN, "connection to %s lost while reading: %s%s", c->cfg->where,
                    strerror(err), err == ECONNRESET && !c->replies && !TRANSPORT(c)
                                       ? " (is this a TLS port? then use rediss://)" : "");
}

/* Hands every complete reply to its request. 0, or the error the connection failed with. */
static int conn_dispatch(rk_conn *c)
{
    while (c->in_pos < c->in_len) {
        const resp_reply *reply;
#ifndef REDKV_NO_CACHE
        /* The parser reads RESP3; a connection that did not say HELLO 3 must not get it. */
        if (!c->cfg->resp3 && c->parser.pos == 0 && strchr("_#,(=!%~>|", c->in[c->in_pos]) &&
            c->in[c->in_pos])
            return rk_conn_fail(c, rk_error(REDKV_EPROTO, "protocol error from %s: a RESP3 "
                                            "reply on a RESP2 connection", c->cfg->where));
#endif
        long long used = resp_parse(&c->parser, c->in + c->in_pos, c->in_len - c->in_pos, &reply);
        if (used == RESP_PARTIAL)
            break;
        if (used == RESP_ENOMEM)
            return rk_conn_fail(c, rk_error(REDKV_ENOMEM, "out of memory for a reply"));
        if (used < 0)
            return rk_conn_fail(c, rk_error(REDKV_EPROTO, "protocol error from %s: %s", c->cfg->where,
                                            resp_parser_error(&c->parser)));
#ifndef REDKV_NO_CACHE
        if (reply->type == RESP_PUSH) {        /* out of band (RESP3): no request's reply */
            c->in_pos += (size_t)used;
            if (c->cfg->push_fn)
                c->cfg->push_fn(c->cfg->push_arg, reply);
            continue;
        }
#endif
        rk_req *req = c->head;
        if (!req || req == c->unsent)
            return rk_conn_fail(c, rk_error(REDKV_EPROTO, "protocol error from %s: a reply nobody asked for", c->cfg->where));
        c->head = req->next;
        if (!c->head)
            c->tail = NULL;
        c->in_pos += (size_t)used;
        c->replies++;
        c->replies_ever++;
        complete(c, req, REDKV_OK, reply);
        if (c->hs_status)
            return rk_conn_fail_all(c, c->hs_status);
    }
    if (c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    return 0;
}

/* ---- blocking use ------------------------------------------------------------------------ */

/* Waits for bytes until the head request's deadline; the kernel's SO_RCVTIMEO does the
   waiting, shortened only when the deadline is nearer than it. */
static int read_blocking(rk_conn *c)
{
    for (;;) {
        int64_t left = c->head->deadline - rk_now_ms();
        if (left <= 0)
            return rk_error(REDKV_ETIMEDOUT, "no reply within %d ms", c->cfg->command_timeout_ms);
        if (left + RCVTIMEO_SLACK_MS < c->rcvtimeo_ms) {
            c->rcvtimeo_ms = (int)left;
            set_timeout(c->fd, SO_RCVTIMEO, c->rcvtimeo_ms);
        }
#ifndef REDKV_NO_THREADS
        if (c->leading)               /* others may queue meanwhile; in is the leader's */
            rk_conn_release(c);
        int n = conn_read(c);
        if (c->leading)
            pthread_mutex_lock(&c->lock);
#else
        int n = conn_read(c);
#endif
        if (n != 0)
            return n;
        if (c->rcvtimeo_ms < left) {    /* an earlier call left it short */
            c->rcvtimeo_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
            set_timeout(c->fd, SO_RCVTIMEO, c->rcvtimeo_ms);
        }
    }
}

#ifdef REDKV_NO_THREADS
#define LEADING_READY(c) 0
#define write_unlocked conn_write
#else
/* A leader of a ready session writes with the lock released (a handshake is written whole
   first, under it). */
#define LEADING_READY(c) ((c)->leading && (c)->state == RK_READY)
#endif

/* Requests written and not yet answered. */
static int in_flight(const rk_conn *c) { return c->head && c->head != c->unsent; }

/* Writes and reads until req is done; with flush, also until nothing queued is left
   unwritten. A failure fails what it must (rk_conn_fail, rk_conn_fail_all). */
static void drive_blocking(rk_conn *c, rk_req *req, int flush)
{
    int rc = 0;
    if (c->fd < 0 && (rc = connect_blocking(c)) != 0) {
        rk_conn_fail_all(c, rc);
        return;
    }
    while (!req->completed || (flush && c->fd >= 0 && has_output(c) && !WRITING(c))) {
        if (has_output(c) && !WRITING(c) && !(LEADING_READY(c) && in_flight(c) && !req->completed))
            rc = LEADING_READY(c) ? write_unlocked(c) : conn_write(c);
        else if ((rc = read_blocking(c)) > 0)
            rc = conn_dispatch(c);
        if (rc < 0 && c->fd >= 0)
            rk_conn_fail(c, rc);
        if (rc < 0 && !req->completed)          /* it was not written yet */
            rk_conn_fail_all(c, rc);
    }
}

int rk_conn_run(rk_conn *c, rk_req *req)
{
    c->connect_spent_ms = 0;
    drive_blocking(c, req, 0);
    return req->status;
}

#ifndef REDKV_NO_THREADS
/* The leader's work (lock held): everything queued goes out in one write, replies are
   handed to their requests, until req is done; what others queued meanwhile is written
   before leaving, so that it is on its way while the lead passes on. */
static void lead(rk_conn *c, rk_req *req) { drive_blocking(c, req, 1); }

/* Wakes the first caller still waiting, to lead. */
static void pass_lead(rk_conn *c)
{
    for (rk_req *r = c->head; r; r = r->next) {
        if (r->waiter) {
            waiter_tell(c, r->waiter, W_LEAD);
            return;
        }
    }
}

/* A caller sends its request itself, rather than leave it to the leader's next batch, while
   at most this many requests are queued or in flight on the connection: with few, the
   server may be idle, waiting; with more, it is busy, and one write of many is cheaper for
   both sides (measured with 8 and 32 threads on one store: README, Benchmarks). */
#ifndef WRITE_NOW_MAX
#define WRITE_NOW_MAX 8
#endif
/* A caller that is not the leader may send what is queued: a ready plain socket (a TLS
   session is the leader's alone), nobody sending already. */
static int may_write_now(const rk_conn *c)
{
    return c->state == RK_READY && !SESSION(c) && !c->writing && c->fd >= 0 && has_output(c);
}

int rk_conn_run_shared(rk_conn *c, rk_req *req)
{
    rk_waiter w;
    int waited = 0;
    while (!req->completed) {
        if (!c->leading) {
            req->waiter = NULL;       /* its reply now comes in this thread */
            c->leading = 1;
            lead(c, req);
            c->leading = 0;
            pass_lead(c);
            continue;
        }
        if (!waited++) {              /* signalling costs only when somebody waits */
#ifndef RK_FUTEX
            pthread_cond_init(&w.cv, NULL);
#endif
            w.msg[0] = 0;
        }
#ifdef RK_FUTEX
        w.state = &waiter_word;
        *w.state = W_WAITING;
#else
        w.state = W_WAITING;
#endif
        req->waiter = &w;
        if (may_write_now(c) && c->queued <= WRITE_NOW_MAX) {
            /* The leader is reading: what is queued goes out now, from this thread, rather
               than after the leader's replies. What others queued meanwhile goes too (the
               leader does not write while this thread does, and may be waiting for it);
               each of them sleeps until answered, so this ends. A failed send ends the
               leader's read, and the leader fails the connection. */
            int rc, fd = c->fd;
            do
                rc = write_unlocked(c);
            while (rc == 0 && may_write_now(c) && c->fd == fd);
            if (rc < 0 && c->fd == fd)    /* (else the leader has dropped it already) */
                shutdown(fd, SHUT_RDWR);
            continue;
        }
        if (waiter_sleep(c, &w) == W_DONE)
            goto done;
    }
    if (!c->leading)                  /* after writing for others, a leader may be missing */
        pass_lead(c);
    rk_conn_release(c);
done:
    if (waited) {
#ifndef RK_FUTEX
        pthread_cond_destroy(&w.cv);
#endif
        if (w.msg[0])
            rk_error(0, "%s", w.msg);
    }
    return req->status;
}
#endif

void rk_conn_drain(rk_conn *c)
{
    while (c->tail)
        rk_conn_run(c, c->tail);
}

/* ---- event-driven use --------------------------------------------------------------------- */

int rk_conn_start(rk_conn *c)
{
    if (c->state != RK_CLOSED || !c->head || c->pending_error)
        return 0;
    int rc = connect_start(c);
    if (rc < 0) {
        drop_socket(c);
        c->pending_error = rc;         /* delivered by the next process, never re-entrantly */
    }
    return 0;
}

int rk_conn_ready(const rk_conn *c, int wait_ms)
{
    int want = rk_conn_events(c);
    if (c->fd < 0 || !want)
        return 0;
    struct pollfd p = {c->fd, (short)((want & REDKV_READ ? POLLIN : 0) |
                                      (want & REDKV_WRITE ? POLLOUT : 0)), 0};
    if (poll(&p, 1, wait_ms) <= 0)
        return 0;
    int events = p.revents & (POLLIN | POLLHUP | POLLERR) ? REDKV_READ : 0;
    events |= p.revents & (POLLOUT | POLLHUP | POLLERR) ? REDKV_WRITE : 0;
    return events & want;
}

static int expire(rk_conn *c)
{
    int64_t now = rk_now_ms();
    if (connecting(c) && now >= c->connect_deadline)
        return rk_conn_fail_all(c, connect_timed_out(c));
    if (!c->head || c->head->deadline > now)
        return 0;
    rk_error(REDKV_ETIMEDOUT, "no reply within %d ms", c->cfg->command_timeout_ms);
    if (c->state != RK_CLOSED)
        rk_conn_fail(c, REDKV_ETIMEDOUT);
    /* What was never written and is past its time goes too; the rest waits for the next
       connection. The socket is closed, so out holds just these commands, in order. */
    while (c->head && c->head->deadline <= now) {
        rk_req *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->unsent = c->head;
        c->out_pos += r->len;
        c->errors_delivered++;
        complete(c, r, REDKV_ETIMEDOUT, NULL);
    }
    compact_out(c);
    return REDKV_ETIMEDOUT;
}

static int process_io(rk_conn *c, int events)
{
    int rc = 0;
    if (connecting(c)) {
        /* a TLS handshake's first step needs no event: it writes the hello */
        if (!(events & (REDKV_READ | REDKV_WRITE)) && c->state == RK_CONNECTING)
            return 0;
        /* a lookup just done goes on to connect at once (its socket wants WRITE first) */
        if ((rc = connect_step(c)) < 0)
            return rk_conn_fail_all(c, rc);
        if (connecting(c))
            return 0;
        events |= REDKV_WRITE;
    }
    if (c->fd >= 0 && (events & REDKV_WRITE) && (rc = conn_write(c)) < 0)
        return rk_conn_fail(c, rc);
    while (c->fd >= 0 && ((events & REDKV_READ) || secure_pending(c))) {
        int n = conn_read(c);
        if (n < 0)
            return rk_conn_fail(c, n);
        if (n == 0 || (rc = conn_dispatch(c)) < 0)
            return rc;
        if (!c->read_filled)           /* a short read: nothing more is waiting */
            break;
    }
    /* The handshake may have just ended, freeing the commands queued behind it. */
    if (c->fd >= 0 && c->state == RK_READY && has_output(c) && (rc = conn_write(c)) < 0)
        return rk_conn_fail(c, rc);
    return 0;
}

/* Returns an error only when it reached a caller's request: a dropped idle connection, or
   one whose handshake failed with nothing waiting, is nobody's business. */
int rk_conn_process(rk_conn *c, int events)
{
    int rc;
    unsigned delivered = c->errors_delivered;
    if (c->pending_error) {
        rc = c->pending_error;
        c->pending_error = 0;
        rk_conn_fail_all(c, rc);
    } else {
        rc = process_io(c, events);
        int expired = expire(c);
        if (!rc)
            rc = expired;
        rk_conn_start(c);
    }
    if (c->errors_delivered == delivered)
        return 0;
    return rc < 0 ? rc : REDKV_ECONN;
}

int rk_conn_events(const rk_conn *c)
{
    if (c->fd < 0)
        return 0;
    if (c->state == RK_CONNECTING)
        return REDKV_WRITE;
    if (c->state == RK_SECURING)
        return c->tls_want;
    if (c->state == RK_RESOLVING)
        return REDKV_READ;
    return REDKV_READ | (has_output(c) ? REDKV_WRITE : 0);
}

int rk_conn_timeout_ms(const rk_conn *c)
{
    if (c->pending_error || secure_pending(c))
        return 0;                      /* decrypted bytes wait: no need to wait for the fd */
    int64_t at = -1;
    if (c->head)
        at = c->head->deadline;
    if (connecting(c) &&
        (at < 0 || c->connect_deadline < at))
        at = c->connect_deadline;
    if (at < 0)
        return -1;
    int64_t left = at - rk_now_ms();
    return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}
