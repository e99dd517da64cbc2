/* fixture.c - see fixture.h. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "fixture.h"
#include "resp.h"

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *build_path(const char *name)
{
    static char path[512];
    const char *dir = getenv("REDKV_BUILD");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "build", name);
    return path;
}

int srv_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &alen)) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* A server with no plain TCP port (a TLS-only cluster node) is reached on its unix socket. */
static int unix_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof a.sun_path)
        return -1;
    memcpy(a.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void exec_server(test_server *s, const char *const *extra)
{
    const char *argv[64];
    char port[16];
    int n = 0;
    snprintf(port, sizeof port, "%d", s->port);
    const char *base[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--unixsocket", s->sock, "--unixsocketperm", "700",
                          "--dir", s->dir, "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--logfile", "redis.log",
                          "--enable-debug-command", "yes", "--protected-mode", "no"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        argv[n++] = base[i];
    for (; extra && *extra && n < 62; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    srv_exec_in(s->dir, argv);
}

void srv_exec_in(const char *dir, const char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (chdir(dir) != 0)
        _exit(127);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 1);
        close(devnull);
    }
    execvp("redis-server", (char *const *)argv);
    _exit(127);
}

/* Forks a server on s->port and waits until it answers: 0, or -1 (it died or stayed mute). */
static int launch(test_server *s, const char *const *extra)
{
    s->pid = fork();
    if (s->pid == 0)
        exec_server(s, extra);
    for (long long until = now_ms() + 5000; now_ms() < until;) {
        char out[64];
        if (SRV(s, out, "PING") == RESP_STRING || strstr(out, "NOAUTH"))
            return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            break;                           /* it died (port taken?) */
        usleep(5000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

int srv_start(test_server *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkv-test-XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->unix_url, sizeof s->unix_url, "unix://%s", s->sock);
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = srv_free_port();
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
        if (launch(s, extra) == 0)
            return 0;
    }
    fprintf(stderr, "fixture: redis-server did not start (see %s/redis.log)\n", s->dir);
    s->pid = 0;
    return -1;
}

void srv_stop(test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "fixture: could not remove %s\n", s->dir);
        s->dir[0] = 0;
    }
}

void srv_kill(test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

int srv_restart(test_server *s, const char *const *extra)
{
    srv_kill(s);
    for (int attempt = 0; attempt < 50; attempt++) {    /* the port may linger a moment */
        if (launch(s, extra) == 0)
            return 0;
        usleep(20000);
    }
    fprintf(stderr, "fixture: redis-server did not restart on port %d\n", s->port);
    return -1;
}

void srv_pause(test_server *s) { kill(s->pid, SIGSTOP); }
void srv_resume(test_server *s) { kill(s->pid, SIGCONT); }

static void append(char *out, size_t cap, size_t *used, const char *p, size_t n)
{
    if (*used + n >= cap)
        n = cap - *used - 1;
    memcpy(out + *used, p, n);
    *used += n;
    out[*used] = 0;
}

static void format_reply(const resp_reply *r, char *out, size_t cap, size_t *used)
{
    char num[32];
    switch (r->type) {
    case RESP_INTEGER:
        append(out, cap, used, num, resp_format_ll(num, r->integer));
        break;
    case RESP_NIL:
    case RESP_NIL_ARRAY:
        append(out, cap, used, "(nil)", 5);
        break;
    case RESP_ARRAY:
        for (size_t i = 0; i < r->len; i++) {
            if (i)
                append(out, cap, used, "\n", 1);
            format_reply(resp_element(r, i), out, cap, used);
        }
        break;
    default:
        append(out, cap, used, r->str, r->len);
    }
}

int srv_callv(const test_server *s, char *out, size_t cap, int argc, const void *const *argv,
              const size_t *lens)
{
    resp_buf b = {0};
    resp_parser p;
    char *in = NULL;
    size_t inlen = 0, incap = 0;
    int type = -1, fd = s->port > 0 ? tcp_connect(s->port) : unix_connect(s->sock);
    out[0] = 0;
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    resp_parser_init(&p, NULL);
    if (resp_encode(&b, argc, argv, lens) == 0 && write(fd, b.data, b.len) == (ssize_t)b.len) {
        for (;;) {
            if (incap - inlen < 65536) {
                incap = incap * 2 + 65536;
                in = realloc(in, incap);
            }
            ssize_t n = read(fd, in + inlen, incap - inlen);
            if (n <= 0)
                break;
            inlen += (size_t)n;
            const resp_reply *r;
            long long used = resp_parse(&p, in, inlen, &r);
            if (used == RESP_PARTIAL)
                continue;
            if (used > 0) {
                size_t o = 0;
                format_reply(r, out, cap, &o);
                type = r->type;
            }
            break;
        }
    }
    free(in);
    resp_parser_free(&p);
    resp_buf_free(&b);
    close(fd);
    return type;
}

int srv_call(const test_server *s, char *out, size_t cap, const char *const *argv)
{
    const void *args[32];
    size_t lens[32];
    int argc = 0;
    for (; argv[argc] && argc < 32; argc++) {
        args[argc] = argv[argc];
        lens[argc] = strlen(argv[argc]);
    }
    return srv_callv(s, out, cap, argc, args, lens);
}
