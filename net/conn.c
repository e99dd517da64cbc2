/* conn.c - one connection: connect, handshake, pipelined requests matched to replies.
 *
 * Requests are kept in order in one list; the written ones come first. Their commands sit
 * in c->out from out_pos on. A blocking call and an event loop drive the same functions
 * (conn_write, conn_read, conn_dispatch); a pool connection differs only in having a
 * blocking socket whose kernel timeouts bound each wait, so that a call costs one send and
 * one recv, no poll. */
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

#include "net.h"

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
}

/* ---- the request list ------------------------------------------------------------------ */

void rk_conn_push(rk_conn *c, rk_req *req)
{
    req->next = NULL;
    req->completed = 0;
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

static void complete(rk_req *r, int status, const resp_reply *reply)
{
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
        complete(r, status, NULL);
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
    return r == &c->hs_req[0] || r == &c->hs_req[1];
}

/* Closes the socket and forgets the bytes of a reply in progress. The descriptor of an
   event-driven connection is shut down but kept open until the next socket exists, so the
   next socket never gets the same number: an event loop that sees redkv_fd() change knows
   to re-register, even with epoll. */
static void drop_socket(rk_conn *c)
{
    if (c->fd >= 0 && !c->blocking) {
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
    rk_error(REDKV_ECONN, "the client was closed");
    rk_conn_fail_all(c, REDKV_ECONN);
    if (c->retired_fd >= 0)
        close(c->retired_fd);
    c->retired_fd = -1;
    resp_buf_free(&c->out);
    resp_free(c->in);
    c->in = NULL;
    resp_parser_free(&c->parser);
}

/* ---- handshake ------------------------------------------------------------------------- */

static void handshake_done(rk_req *req, int status, const resp_reply *reply)
{
    rk_conn *c = req->ctx;
    if (status != REDKV_OK)
        return;                        /* the connection is failing already */
    if (reply->type == RESP_ERROR) {
        /* The server's words name no password; quote them, bounded. */
        rk_error(REDKV_EAUTH, "%s refused: %.*s", req == &c->hs_req[0] && c->cfg->pass ? "AUTH" : "SELECT",
                 (int)(reply->len > 160 ? 160 : reply->len), reply->str);
        c->hs_status = REDKV_EAUTH;
    } else if (--c->hs_left == 0) {
        c->state = RK_READY;
        c->hs_bytes = 0;
    }
}

/* Puts AUTH and SELECT in front of any queued command; writing stops after them until
   they are answered, so that nothing runs unauthenticated or in the wrong database. */
static int start_session(rk_conn *c)
{
    const rk_config *cfg = c->cfg;
    resp_buf hs = {0};
    size_t lens[2] = {0, 0};
    int n = 0, rc = 0;
    char db[24];
    c->hs_status = 0;
    if (cfg->pass) {
        rc |= resp_encode_header(&hs, cfg->user ? 3 : 2) | resp_encode_arg(&hs, "AUTH", 4);
        if (cfg->user)
            rc |= resp_encode_arg(&hs, cfg->user, strlen(cfg->user));
        rc |= resp_encode_arg(&hs, cfg->pass, strlen(cfg->pass));
        lens[n++] = hs.len;
    }
    if (cfg->db > 0) {
        size_t before = hs.len;
        rc |= resp_encode_header(&hs, 2) | resp_encode_arg(&hs, "SELECT", 6) |
              resp_encode_arg(&hs, db, resp_format_ll(db, cfg->db));
        lens[n++] = hs.len - before;
    }
    if (n == 0) {
        c->state = RK_READY;
        return REDKV_OK;
    }
    compact_out(c);
    if (rc || resp_buf_reserve(&c->out, hs.len)) {
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

    int64_t deadline = rk_deadline(cfg->command_timeout_ms);
    for (int i = n - 1; i >= 0; i--) {
        rk_req *r = &c->hs_req[i];
        memset(r, 0, sizeof *r);
        r->len = lens[i];
        r->deadline = deadline;
        r->done = handshake_done;
        r->ctx = c;
        r->next = c->head;
        c->head = r;
        if (!c->tail)
            c->tail = r;
    }
    c->unsent = c->head;
    c->unsent_done = 0;
    c->hs_left = n;
    c->state = RK_HANDSHAKE;
    return REDKV_OK;
}

/* ---- sockets --------------------------------------------------------------------------- */

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

static int resolve(rk_conn *c)
{
    struct addrinfo hints, *list = NULL;
    char port[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->cfg->port);
    int rc = getaddrinfo(c->cfg->host, port, &hints, &list);
    if (rc != 0)
        return rk_error(REDKV_ECONN, "cannot resolve %s: %s", c->cfg->host, gai_strerror(rc));
    c->addrs = c->addr = list;
    return REDKV_OK;
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
    return rk_error(REDKV_ECONN, "cannot connect to %s: %s",
                    c->cfg->path ? c->cfg->path : c->cfg->host, strerror(err));
}

/* After a connect completes: socket options, then the session. */
static int connected(rk_conn *c)
{
    if (c->addrs) {
        freeaddrinfo(c->addrs);
        c->addrs = c->addr = NULL;
    }
    if (c->blocking) {
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
        set_timeout(c->fd, SO_RCVTIMEO, c->cfg->command_timeout_ms);
        set_timeout(c->fd, SO_SNDTIMEO, c->cfg->command_timeout_ms);
        c->rcvtimeo_ms = c->cfg->command_timeout_ms;
    }
    return start_session(c);
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

static int connect_blocking(rk_conn *c)
{
    int64_t deadline = rk_deadline(c->cfg->connect_timeout_ms);
    int rc = c->cfg->path ? REDKV_OK : resolve(c);
    while (rc == REDKV_OK && (rc = try_addresses(c)) == 1) {
        struct pollfd pfd = {c->fd, POLLOUT, 0};
        int64_t left = deadline - rk_now_ms();
        int ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        int err = ready > 0 ? socket_error(c->fd) : 0;
        if (ready > 0 && err == 0)
            break;
        close(c->fd);
        c->fd = -1;
        if (ready <= 0) {
            rc = rk_error(REDKV_ETIMEDOUT, "connect timed out after %d ms",
                          c->cfg->connect_timeout_ms);
            break;
        }
        rc = rk_error(REDKV_ECONN, "cannot connect: %s", strerror(err));
        if (c->cfg->path || !(c->addr = c->addr->ai_next))
            break;
        rc = REDKV_OK;
    }
    if (rc == 0 || rc == 1)
        return connected(c);
    drop_socket(c);
    return rc;
}

/* ---- reading and writing ---------------------------------------------------------------- */

/* Writes what may be written now. 0 (all, or the socket is full), or an error. */
static int conn_write(rk_conn *c)
{
    size_t limit = c->state == RK_HANDSHAKE ? c->hs_bytes : c->out.len;
    int sends = 0, shortened = 0, rc = 0;
    while (c->out_pos < limit) {
        /* Blocking: SO_SNDTIMEO bounds each send, and a server that keeps taking a few
           bytes at a time must not stretch the whole past the request's deadline. */
        if (c->blocking && sends++ && c->unsent) {
            int64_t left = c->unsent->deadline - rk_now_ms();
            if (left <= 0) {
                rc = REDKV_ETIMEDOUT;
                break;
            }
            if (left < c->cfg->command_timeout_ms) {
                set_timeout(c->fd, SO_SNDTIMEO, (int)left);
                shortened = 1;
            }
        }
        ssize_t n = send(c->fd, c->out.data + c->out_pos, limit - c->out_pos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = c->blocking ? REDKV_ETIMEDOUT : 0;
            break;
        }
        if (n < 0) {
            rc = rk_error(REDKV_ECONN, "connection lost while writing: %s", strerror(errno));
            break;
        }
        c->out_pos += (size_t)n;
        note_sent(c, (size_t)n);
    }
    if (shortened)
        set_timeout(c->fd, SO_SNDTIMEO, c->cfg->command_timeout_ms);
    if (rc == REDKV_ETIMEDOUT)
        return rk_error(rc, "the server did not take the command within %d ms",
                        c->cfg->command_timeout_ms);
    if (c->out_pos == c->out.len)
        c->out_pos = c->out.len = 0;
    return rc;
}

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
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    c->read_filled = n > 0 && (size_t)n == c->in_cap - c->in_len;
    if (n > 0) {
        c->in_len += (size_t)n;
        return n > 0x7fffffff ? 0x7fffffff : (int)n;
    }
    if (n == 0)
        return rk_error(REDKV_ECONN, "the server closed the connection");
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return rk_error(REDKV_ECONN, "connection lost while reading: %s", strerror(errno));
}

/* Hands every complete reply to its request. 0, or the error the connection failed with. */
static int conn_dispatch(rk_conn *c)
{
    while (c->in_pos < c->in_len) {
        const resp_reply *reply;
        long long used = resp_parse(&c->parser, c->in + c->in_pos, c->in_len - c->in_pos, &reply);
        if (used == RESP_PARTIAL)
            break;
        if (used == RESP_ENOMEM)
            return rk_conn_fail(c, rk_error(REDKV_ENOMEM, "out of memory for a reply"));
        if (used < 0)
            return rk_conn_fail(c, rk_error(REDKV_EPROTO, "protocol error: %s",
                                            resp_parser_error(&c->parser)));
        rk_req *req = c->head;
        if (!req || req == c->unsent)
            return rk_conn_fail(c, rk_error(REDKV_EPROTO, "protocol error: a reply nobody asked for"));
        c->head = req->next;
        if (!c->head)
            c->tail = NULL;
        c->in_pos += (size_t)used;
        complete(req, REDKV_OK, reply);
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
        int n = conn_read(c);
        if (n != 0)
            return n;
        if (c->rcvtimeo_ms < left) {    /* an earlier call left it short */
            c->rcvtimeo_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
            set_timeout(c->fd, SO_RCVTIMEO, c->rcvtimeo_ms);
        }
    }
}

int rk_conn_run(rk_conn *c, rk_req *req)
{
    int rc = 0;
    if (c->fd < 0 && (rc = connect_blocking(c)) != 0)
        return rk_conn_fail_all(c, rc);
    while (!req->completed) {
        if (has_output(c))
            rc = conn_write(c);
        else if ((rc = read_blocking(c)) > 0)
            rc = conn_dispatch(c);
        if (rc < 0 && c->fd >= 0)
            rk_conn_fail(c, rc);
        if (rc < 0 && !req->completed)          /* it was not written yet */
            rk_conn_fail_all(c, rc);
    }
    return req->status;
}

/* ---- event-driven use --------------------------------------------------------------------- */

int rk_conn_start(rk_conn *c)
{
    if (c->state != RK_CLOSED || !c->head || c->pending_error)
        return 0;
    int rc = c->cfg->path ? REDKV_OK : resolve(c);
    if (rc == REDKV_OK)
        rc = try_addresses(c);
    if (rc == 0)
        rc = connected(c);
    else if (rc == 1) {
        c->state = RK_CONNECTING;
        c->connect_deadline = rk_deadline(c->cfg->connect_timeout_ms);
        rc = 0;
    }
    if (rc < 0) {
        drop_socket(c);
        c->pending_error = rc;         /* delivered by the next process, never re-entrantly */
    }
    return 0;
}

/* connected(), and when that fails (no memory for the handshake), every request gets the
   error: it is delivered here, as process promises. */
static int connected_or_fail(rk_conn *c)
{
    int rc = connected(c);
    return rc < 0 ? rk_conn_fail_all(c, rc) : rc;
}

static int finish_connect(rk_conn *c)
{
    int err = socket_error(c->fd);
    if (err == 0)
        return connected_or_fail(c);
    rk_error(REDKV_ECONN, "cannot connect: %s", strerror(err));
    close(c->fd);
    c->fd = -1;
    if (!c->cfg->path && c->addr && (c->addr = c->addr->ai_next)) {
        int rc = try_addresses(c);
        if (rc == 0)
            return connected_or_fail(c);
        if (rc == 1) {
            c->connect_deadline = rk_deadline(c->cfg->connect_timeout_ms);
            return 0;
        }
    }
    return rk_conn_fail_all(c, REDKV_ECONN);
}

static int expire(rk_conn *c)
{
    int64_t now = rk_now_ms();
    if (c->state == RK_CONNECTING && now >= c->connect_deadline)
        return rk_conn_fail_all(c, rk_error(REDKV_ETIMEDOUT, "connect timed out after %d ms",
                                            c->cfg->connect_timeout_ms));
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
        complete(r, REDKV_ETIMEDOUT, NULL);
    }
    compact_out(c);
    return REDKV_ETIMEDOUT;
}

static int process_io(rk_conn *c, int events)
{
    int rc = 0;
    if (c->state == RK_CONNECTING) {
        if (!(events & (REDKV_READ | REDKV_WRITE)))
            return 0;
        if ((rc = finish_connect(c)) < 0 || c->state == RK_CONNECTING)
            return rc;
        events |= REDKV_WRITE;
    }
    if (c->fd >= 0 && (events & REDKV_WRITE) && (rc = conn_write(c)) < 0)
        return rk_conn_fail(c, rc);
    while (c->fd >= 0 && (events & REDKV_READ)) {
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
    return REDKV_READ | (has_output(c) ? REDKV_WRITE : 0);
}

int rk_conn_timeout_ms(const rk_conn *c)
{
    if (c->pending_error)
        return 0;
    int64_t at = -1;
    if (c->head)
        at = c->head->deadline;
    if (c->state == RK_CONNECTING && (at < 0 || c->connect_deadline < at))
        at = c->connect_deadline;
    if (at < 0)
        return -1;
    int64_t left = at - rk_now_ms();
    return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}
