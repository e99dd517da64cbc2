/* server.c - the benchmark's private redis-server, stopped on every way out (normal exit,
 * die(), Ctrl-C, SIGTERM, a crash, or our own SIGKILL through PR_SET_PDEATHSIG), the child
 * processes it runs (redis-benchmark, strace), and a tiny raw RESP client. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench.h"

bench_server g_srv;
static volatile pid_t g_child;           /* redis-benchmark or strace while it runs */
static char g_files[3][256];             /* what to remove from the server's dir */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &alen)) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Only async-signal-safe calls: it runs from signal handlers too. */
static void cleanup_now(void)
{
    pid_t child = g_child, srv = g_srv.pid;
    if (child > 0)
        kill(child, SIGKILL);
    if (srv > 0) {
        g_srv.pid = 0;
        kill(srv, SIGCONT);
        kill(srv, SIGKILL);
        while (waitpid(srv, NULL, 0) < 0 && errno == EINTR)
            ;                          /* gone (and reaped) before its files are removed */
    }
    if (child > 0)
        waitpid(child, NULL, WNOHANG);
    for (int i = 0; i < 3; i++)
        if (g_files[i][0])
            unlink(g_files[i]);
    if (g_srv.dir[0])
        rmdir(g_srv.dir);
}

static void on_signal(int sig)
{
    static const char msg[] = "\nredkv-bench: interrupted; redis-server stopped\n";
    cleanup_now();
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit(void) { server_stop(&g_srv); }

void install_cleanup(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT, SIGFPE};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(at_exit);
}

static void exec_server(const bench_server *s)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--dir", s->dir, "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--logfile", "redis.log",
                          "--enable-debug-command", "yes", "--protected-mode", "no", NULL};
    exec_redis_in(s->dir, argv);
}

void exec_redis_in(const char *dir, const char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1 || chdir(dir) != 0)
        _exit(127);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        close(devnull);
    }
    execvp("redis-server", (char *const *)argv);
    _exit(127);
}

int server_start(bench_server *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkv-bench-XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("redkv-bench: mkdtemp");
        s->dir[0] = 0;
        return -1;
    }
    snprintf(g_files[0], sizeof g_files[0], "%s/redis.log", s->dir);
    snprintf(g_files[1], sizeof g_files[1], "%s/dump.rdb", s->dir);
    snprintf(g_files[2], sizeof g_files[2], "%s/out.txt", s->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = free_port();
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
        pid_t pid = fork();
        if (pid == 0)
            exec_server(s);
        if (pid < 0) {
            perror("redkv-bench: fork");
            return -1;
        }
        s->pid = pid;
        for (double until = now_s() + 5; now_s() < until;) {
            rawc c;
            if (rawc_open(&c, s->port) == 0) {
                const resp_reply *r = RAW(&c, "PING");
                int ok = r && r->type == RESP_STRING;
                rawc_close(&c);
                if (ok)
                    return 0;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                s->pid = 0;
                break;                        /* it died (port taken?): try another port */
            }
            usleep(5000);
        }
        if (s->pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            s->pid = 0;
        }
    }
    fprintf(stderr, "redkv-bench: redis-server did not start (is it installed? see %s/redis.log)\n",
            s->dir);
    return -1;
}

void server_stop(bench_server *s)
{
    cleanup_now();                     /* s is g_srv */
    s->dir[0] = 0;
}

int run_child(char *const argv[], const char *out_path, int quiet_stderr)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            if (quiet_stderr)
                dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    g_child = pid;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    g_child = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 127)
        return WEXITSTATUS(st);
    return -1;
}

/* ---- raw client ------------------------------------------------------------------------- */

int rawc_open(rawc *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    resp_parser_init(&c->p, NULL);
    return 0;
}

void rawc_close(rawc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    resp_parser_free(&c->p);
    resp_buf_free(&c->out);
    free(c->in);
    c->in = NULL;
}

const resp_reply *rawc_cmdv(rawc *c, int argc, const void *const *argv, const size_t *lens)
{
    if (c->fd < 0)
        return NULL;
    if (c->consumed) {
        memmove(c->in, c->in + c->consumed, c->len - c->consumed);
        c->len -= c->consumed;
        c->consumed = 0;
    }
    c->out.len = 0;
    if (resp_encode(&c->out, argc, argv, lens) != 0)
        return NULL;
    for (size_t off = 0; off < c->out.len;) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        off += (size_t)n;
    }
    for (;;) {
        const resp_reply *r;
        long long used = c->len ? resp_parse(&c->p, c->in, c->len, &r) : RESP_PARTIAL;
        if (used > 0) {
            c->consumed = (size_t)used;
            return r;
        }
        if (used != RESP_PARTIAL)
            return NULL;
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap * 2 + 65536;
            char *in = realloc(c->in, cap);
            if (!in)
                return NULL;
            c->in = in;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        c->len += (size_t)n;
    }
}

const resp_reply *rawc_cmd(rawc *c, const char *const *argv)
{
    const void *args[64];
    size_t lens[64];
    int argc = 0;
    for (; argv[argc] && argc < 64; argc++) {
        args[argc] = argv[argc];
        lens[argc] = strlen(argv[argc]);
    }
    return rawc_cmdv(c, argc, args, lens);
}

long long rawc_int(rawc *c, const char *const *argv)
{
    const resp_reply *r = rawc_cmd(c, argv);
    return r && r->type == RESP_INTEGER ? r->integer : -1;
}

redkv *bench_store_url(const char *url, int pool_size)
{
    redkv_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.ns = BENCH_NS;
    o.pool_size = pool_size;
    redkv *s;
    if (redkv_open(&s, &o) != REDKV_OK)
        die("redkv_open %s: %s", url, redkv_last_error());
    return s;
}

redkv *bench_store(int port, int pool_size)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    return bench_store_url(url, pool_size);
}
