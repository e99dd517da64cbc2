/* hostile.c - see hostile.h. One thread polls the listening socket, a wake-up pipe and every
 * connection; nothing blocks, so a client that stops reading cannot stall the others. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "resp.h"

long long now_ms(void);   /* fixture.c */

#define MAX_CONNS 32
#define MAX_SCRIPTS 16

enum phase { P_FREE, P_FIRST, P_SEND, P_HANG, P_GOOD };

typedef struct hconn {
    int fd;
    enum phase phase;
    int then;                 /* what P_SEND turns into once the bytes are out */
    int script;               /* P_FIRST: the script this connection follows */
    int drip_ms;              /* P_SEND: one byte at a time, this far apart */
    long long next_drip;
    int slow_read_ms;         /* read 4 KiB at a time, this far apart */
    long long next_read;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_pos, out_cap;
    resp_parser parser;
} hconn;

typedef struct kv {
    struct kv *next;
    char *key, *val;
    size_t klen, vlen;
} kv;

struct hostile {
    int lfd, wake[2];
    int port;
    char url[64];
    pthread_t thread;
    hostile_script scripts[MAX_SCRIPTS];
    int nscripts;
    int accepted, commands;   /* atomic */
    hconn conns[MAX_CONNS];
    kv *data;
};

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static void put(hconn *c, const void *p, size_t n)
{
    if (n && grow(&c->out, &c->out_cap, c->out_len + n) == 0) {
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
    }
}

static void put_str(hconn *c, const char *s) { put(c, s, strlen(s)); }

static void put_bulk(hconn *c, const char *p, size_t n)
{
    char head[32];
    put(c, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", n));
    put(c, p, n);
    put(c, "\r\n", 2);
}

static void put_int(hconn *c, long long v)
{
    char line[32];
    put(c, line, (size_t)snprintf(line, sizeof line, ":%lld\r\n", v));
}

static void close_conn(hconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    resp_parser_free(&c->parser);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->phase = P_FREE;
}

static kv **find(hostile *h, const char *k, size_t n)
{
    kv **e = &h->data;
    while (*e && !((*e)->klen == n && memcmp((*e)->key, k, n) == 0))
        e = &(*e)->next;
    return e;
}

static int is(const resp_reply *a, const char *word)
{
    return a->type == RESP_BULK && a->len == strlen(word) && strncasecmp(a->str, word, a->len) == 0;
}

/* The good server: one command, one answer. */
static void answer(hostile *h, hconn *c, const resp_reply *cmd)
{
    size_t argc = cmd->type == RESP_ARRAY ? cmd->len : 0;
    const resp_reply *a0 = argc ? resp_element(cmd, 0) : NULL;
    const resp_reply *a1 = argc > 1 ? resp_element(cmd, 1) : NULL;
    const resp_reply *a2 = argc > 2 ? resp_element(cmd, 2) : NULL;
    const resp_reply *a3 = argc > 3 ? resp_element(cmd, 3) : NULL;
    if (!a0) {
        put_str(c, "-ERR not a command\r\n");
    } else if (is(a0, "PING")) {
        put_str(c, "+PONG\r\n");
    } else if (is(a0, "AUTH") || is(a0, "SELECT")) {
        put_str(c, "+OK\r\n");
    } else if (is(a0, "SET") && a2) {
        kv **e = find(h, a1->str, a1->len), *n = *e;
        if (!n && (n = calloc(1, sizeof *n)) != NULL) {
            n->key = malloc(a1->len + 1);
            memcpy(n->key, a1->str, a1->len);
            n->klen = a1->len;
            n->next = h->data;
            h->data = n;
        }
        free(n->val);
        n->val = malloc(a2->len + 1);
        memcpy(n->val, a2->str, a2->len);
        n->vlen = a2->len;
        put_str(c, "+OK\r\n");
    } else if ((is(a0, "GET") && a1) || ((is(a0, "EVAL") || is(a0, "EVALSHA")) && a3)) {
        const resp_reply *k = is(a0, "GET") ? a1 : a3;
        kv *n = *find(h, k->str, k->len);
        if (n)
            put_bulk(c, n->val, n->vlen);
        else
            put_str(c, "$-1\r\n");
    } else if ((is(a0, "DEL") || is(a0, "UNLINK") || is(a0, "EXISTS")) && a1) {
        long long count = 0;
        for (size_t i = 1; i < argc; i++) {
            const resp_reply *k = resp_element(cmd, i);
            kv **e = find(h, k->str, k->len), *n = *e;
            if (!n)
                continue;
            count++;
            if (!is(a0, "EXISTS")) {
                *e = n->next;
                free(n->key);
                free(n->val);
                free(n);
            }
        }
        put_int(c, count);
    } else if (is(a0, "PTTL") && a1) {
        put_int(c, *find(h, a1->str, a1->len) ? -1 : -2);
    } else if (is(a0, "SCAN")) {
        put_str(c, "*2\r\n$1\r\n0\r\n*0\r\n");
    } else {
        put_str(c, "-ERR unknown command\r\n");
    }
}

/* Parses the commands in c->in; in P_FIRST only the first, which starts the script. */
static int take_commands(hostile *h, hconn *c, int script)
{
    size_t pos = 0;
    while (pos < c->in_len && (c->phase == P_FIRST || c->phase == P_GOOD)) {
        const resp_reply *cmd;
        long long used = resp_parse(&c->parser, c->in + pos, c->in_len - pos, &cmd);
        if (used == RESP_PARTIAL)
            break;
        if (used < 0)
            return -1;
        pos += (size_t)used;
        __atomic_add_fetch(&h->commands, 1, __ATOMIC_SEQ_CST);
        if (c->phase == P_GOOD) {
            answer(h, c, cmd);
            continue;
        }
        const hostile_script *s = &h->scripts[script];
        put(c, s->bytes, s->bytes ? s->len : 0);
        c->then = s->then;
        c->drip_ms = s->drip_ms;
        c->phase = P_SEND;
    }
    if (c->phase == P_SEND || c->phase == P_HANG)
        pos = c->in_len;               /* whatever else comes is ignored */
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

static void new_conn(hostile *h)
{
    int fd = accept(h->lfd, NULL, NULL);
    if (fd < 0)
        return;
    int n = __atomic_fetch_add(&h->accepted, 1, __ATOMIC_SEQ_CST);
    hconn *c = NULL;
    for (int i = 0; i < MAX_CONNS && !c; i++)
        if (h->conns[i].phase == P_FREE)
            c = &h->conns[i];
    if (!c) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->fd = fd;
    resp_parser_init(&c->parser, NULL);
    c->phase = n < h->nscripts ? P_FIRST : P_GOOD;
    c->then = H_GOOD;
    if (n < h->nscripts && h->scripts[n].at_once) {
        put(c, h->scripts[n].bytes, h->scripts[n].bytes ? h->scripts[n].len : 0);
        c->then = h->scripts[n].then;
        c->drip_ms = h->scripts[n].drip_ms;
        c->phase = P_SEND;
    }
    c->script = n;
    c->slow_read_ms = n < h->nscripts ? h->scripts[n].slow_read_ms : 0;
    if (c->slow_read_ms) {
        int small = 4096;                  /* so that the client's bytes back up soon */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
}

static void flush_out(hconn *c)
{
    while (c->out_pos < c->out_len) {
        size_t len = c->out_len - c->out_pos;
        if (c->phase == P_SEND && c->drip_ms) {
            if (now_ms() < c->next_drip)
                return;
            c->next_drip = now_ms() + c->drip_ms;
            len = 1;
        }
        ssize_t n = send(c->fd, c->out + c->out_pos, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close_conn(c);
            return;
        }
        c->out_pos += (size_t)n;
    }
    c->out_pos = c->out_len = 0;
    if (c->phase == P_SEND) {
        if (c->then == H_RESET) {
            struct linger lg = {1, 0};          /* close with RST, not FIN */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        if (c->then == H_CLOSE || c->then == H_RESET)
            close_conn(c);
        else
            c->phase = c->then == H_HANG ? P_HANG : P_GOOD;
    }
}

static void on_readable(hostile *h, hconn *c)
{
    if (grow(&c->in, &c->in_cap, c->in_len + 65536)) {
        close_conn(c);
        return;
    }
    size_t room = c->in_cap - c->in_len;
    if (c->slow_read_ms) {
        if (now_ms() < c->next_read)
            return;
        c->next_read = now_ms() + c->slow_read_ms;
        room = room < 4096 ? room : 4096;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        close_conn(c);
        return;
    }
    c->in_len += (size_t)n;
    if (c->phase == P_SEND || c->phase == P_HANG) {
        c->in_len = 0;
        return;
    }
    if (take_commands(h, c, c->script) < 0)
        close_conn(c);
}

static void *run(void *arg)
{
    hostile *h = arg;
    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2];
        hconn *who[MAX_CONNS + 2];
        int n = 0;
        pfd[n++] = (struct pollfd){h->wake[0], POLLIN, 0};
        pfd[n++] = (struct pollfd){h->lfd, POLLIN, 0};
        int timeout = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            hconn *c = &h->conns[i];
            if (c->phase == P_FREE)
                continue;
            int dripping = c->phase == P_SEND && c->drip_ms && c->out_pos < c->out_len;
            if (dripping) {
                long long left = c->next_drip - now_ms();
                int t = left < 0 ? 0 : (int)left;
                timeout = timeout < 0 || t < timeout ? t : timeout;
            }
            short want_in = POLLIN;
            long long left = c->next_read - now_ms();
            if (c->slow_read_ms && left > 0) {   /* not yet: wake when it is time */
                timeout = timeout < 0 || left < timeout ? (int)left : timeout;
                want_in = 0;
            }
            who[n] = c;
            pfd[n++] = (struct pollfd){c->fd, (short)(want_in | (c->out_len && !dripping ? POLLOUT : 0)), 0};
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN)
            new_conn(h);
        for (int i = 2; i < n; i++) {
            hconn *c = who[i];
            if (c->phase != P_FREE && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                on_readable(h, c);
            if (c->phase != P_FREE && c->out_len)
                flush_out(c);             /* a drip sends only when its time has come */
        }
        /* A script with no bytes to send turns at once into what follows it. */
        for (int i = 0; i < MAX_CONNS; i++)
            if (h->conns[i].phase == P_SEND && !h->conns[i].out_len)
                flush_out(&h->conns[i]);
    }
    return NULL;
}

hostile *hostile_start(const hostile_script *scripts, int n)
{
    hostile *h = calloc(1, sizeof *h);
    if (!h || n > MAX_SCRIPTS)
        goto fail;
    for (int i = 0; i < MAX_CONNS; i++)
        h->conns[i].fd = -1;
    for (int i = 0; i < n; i++) {
        h->scripts[i] = scripts[i];
        if (scripts[i].bytes) {
            char *copy = malloc(scripts[i].len ? scripts[i].len : 1);
            memcpy(copy, scripts[i].bytes, scripts[i].len);
            h->scripts[i].bytes = copy;
        }
    }
    h->nscripts = n;
    h->wake[0] = h->wake[1] = -1;
    h->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(h->lfd, (struct sockaddr *)&a, &alen) || listen(h->lfd, 64) || pipe(h->wake))
        goto fail;
    fcntl(h->lfd, F_SETFL, fcntl(h->lfd, F_GETFL) | O_NONBLOCK);
    h->port = ntohs(a.sin_port);
    snprintf(h->url, sizeof h->url, "redis://127.0.0.1:%d", h->port);
    if (pthread_create(&h->thread, NULL, run, h) == 0)
        return h;
fail:
    perror("hostile_start");
    if (h) {
        if (h->lfd >= 0)
            close(h->lfd);
        for (int i = 0; i < n && i < MAX_SCRIPTS; i++)
            free((void *)h->scripts[i].bytes);
        free(h);
    }
    return NULL;
}

void hostile_stop(hostile *h)
{
    if (!h)
        return;
    if (write(h->wake[1], "x", 1) != 1)
        perror("hostile_stop");
    pthread_join(h->thread, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        if (h->conns[i].phase != P_FREE)
            close_conn(&h->conns[i]);
    while (h->data) {
        kv *next = h->data->next;
        free(h->data->key);
        free(h->data->val);
        free(h->data);
        h->data = next;
    }
    for (int i = 0; i < h->nscripts; i++)
        free((void *)h->scripts[i].bytes);
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h);
}

int hostile_port(const hostile *h) { return h->port; }
const char *hostile_url(const hostile *h) { return h->url; }
int hostile_accepted(hostile *h) { return __atomic_load_n(&h->accepted, __ATOMIC_SEQ_CST); }
int hostile_commands(hostile *h) { return __atomic_load_n(&h->commands, __ATOMIC_SEQ_CST); }

/* ---- the asynchronous API driven from a poll() loop ----------------------------------- */


void rec_cb(redkv *s, int status, const void *val, size_t vlen, int64_t n, void *arg)
{
    cb_rec *r = arg;
    (void)s;
    r->calls++;
    r->status = status;
    r->n = n;
    r->vlen = vlen;
    memset(r->val, 0, sizeof r->val);
    if (val)
        memcpy(r->val, val, vlen < sizeof r->val ? vlen : sizeof r->val);
    r->at_ms = now_ms();
}

int drive(redkv *s, int ms)
{
    long long until = now_ms() + ms;
    while (redkv_pending(s) > 0 && now_ms() < until) {
        int fd = redkv_fd(s), ev = redkv_events(s), t = redkv_timeout_ms(s);
        long long left = until - now_ms();
        if (t < 0 || t > left)
            t = (int)left;
        struct pollfd p = {fd, (short)(((ev & REDKV_READ) ? POLLIN : 0) |
                                       ((ev & REDKV_WRITE) ? POLLOUT : 0)), 0};
        int n = poll(&p, fd >= 0 ? 1 : 0, t > 0 ? t : 0);
        int got = 0;
        if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
            got |= REDKV_READ;
        if (n > 0 && (p.revents & (POLLOUT | POLLHUP | POLLERR)))
            got |= REDKV_WRITE;
        redkv_process(s, got);
    }
    return redkv_pending(s);
}

/* ---- the command-line tool ----------------------------------------------------------- */

const char *build_path(const char *name);   /* fixture.c */

int slack_ms(void) { return getenv("REDKV_VALGRIND") ? 3000 : 300; }

static void drain(int fd, char *buf, size_t cap, size_t *len)
{
    char scratch[4096];
    for (;;) {
        char *to = buf && *len + 1 < cap ? buf + *len : scratch;
        size_t room = buf && *len + 1 < cap ? cap - 1 - *len : sizeof scratch;
        ssize_t n = read(fd, to, room);
        if (n <= 0)
            return;
        if (to != scratch)
            *len += (size_t)n;
    }
}

int run_cli(const char *const *args, int limit_ms, char *out, size_t out_cap, char *err,
            size_t err_cap)
{
    const char *path = build_path("redkv");
    const char *argv[64];
    int po[2], pe[2], n = 0;
    if (access(path, X_OK) != 0)
        return -1;
    argv[n++] = path;
    for (; args && *args && n < 63; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    if (pipe(po))
        return -1;
    if (pipe(pe)) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    size_t olen = 0, elen = 0;
    int status = 0, done = pid < 0;
    long long until = now_ms() + limit_ms;
    while (!done) {
        struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        poll(p, 2, 10);
        drain(po[0], out, out_cap, &olen);
        drain(pe[0], err, err_cap, &elen);
        if (waitpid(pid, &status, WNOHANG) == pid)
            done = 1;
        else if (now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            done = 1;
        }
    }
    drain(po[0], out, out_cap, &olen);
    drain(pe[0], err, err_cap, &elen);
    if (out && out_cap)
        out[olen] = 0;
    if (err && err_cap)
        err[elen] = 0;
    close(po[0]);
    close(pe[0]);
    if (pid < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
