/* sentinel_fixture.c - see sentinel_fixture.h. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resp.h"
#include "sentinel_fixture.h"

test_server snt_data[2];
test_server snt_sentinel[SNT_SENTINELS];
char snt_url[512];
static char data_pw[64], sentinel_pw[64];

/* ---- a tiny client: AUTH, then one command, on a fresh socket ----------------------------- */

static void put(char *out, size_t cap, size_t *used, const char *p, size_t n)
{
    if (*used + n >= cap)
        n = cap - *used - 1;
    memcpy(out + *used, p, n);
    *used += n;
    out[*used] = 0;
}

static void show(const resp_reply *r, char *out, size_t cap, size_t *used)
{
    char num[32];
    if (r->type == RESP_INTEGER) {
        put(out, cap, used, num, resp_format_ll(num, r->integer));
    } else if (r->type == RESP_NIL || r->type == RESP_NIL_ARRAY) {
        put(out, cap, used, "(nil)", 5);
    } else if (r->type == RESP_ARRAY) {
        for (size_t i = 0; i < r->len; i++) {
            if (i)
                put(out, cap, used, "\n", 1);
            show(resp_element(r, i), out, cap, used);
        }
    } else {
        put(out, cap, used, r->str, r->len);
    }
}

int snt_call(const test_server *s, const char *pass, char *out, size_t cap, const char *const *argv)
{
    if (!pass)
        return srv_call(s, out, cap, argv);
    const void *args[16];
    size_t lens[16];
    int argc = 0;
    for (; argv[argc] && argc < 16; argc++) {
        args[argc] = argv[argc];
        lens[argc] = strlen(argv[argc]);
    }
    const void *auth[2] = {"AUTH", pass};
    size_t auth_lens[2] = {4, strlen(pass)};
    resp_buf b = {0};
    resp_encode(&b, 2, auth, auth_lens);
    resp_encode(&b, argc, args, lens);
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), type = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char in[65536];
    size_t len = 0;
    int seen = 0;
    resp_parser p;
    resp_parser_init(&p, NULL);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, b.data, b.len) == (ssize_t)b.len) {
        while (seen < 2) {
            ssize_t n = read(fd, in + len, sizeof in - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            size_t at = 0;
            for (;;) {
                const resp_reply *r;
                long long used = resp_parse(&p, in + at, len - at, &r);
                if (used <= 0)
                    break;
                if (++seen == 2) {
                    size_t o = 0;
                    show(r, out, cap, &o);
                    type = r->type;
                }
                at += (size_t)used;
                if (seen == 2)
                    break;
            }
            memmove(in, in + at, len - at);
            len -= at;
        }
    }
    resp_parser_free(&p);
    resp_buf_free(&b);
    close(fd);
    return type;
}

int snt_is_master(const test_server *s, const char *pass)
{
    char out[4096];
    SNT(s, pass, out, "ROLE");
    return strncmp(out, "master", 6) == 0;
}

int snt_named_port(const char *sentinel_pass)
{
    int port = 0;
    for (int i = 0; i < SNT_SENTINELS; i++) {
        char out[256];
        if (snt_sentinel[i].pid <= 0)
            continue;
        SNT(&snt_sentinel[i], sentinel_pass, out, "SENTINEL", "get-master-addr-by-name",
            SNT_MASTER_NAME);
        const char *nl = strchr(out, '\n');
        int p = nl ? atoi(nl + 1) : 0;
        if (!p || (port && p != port))
            return 0;
        port = p;
    }
    return port;
}

/* ---- processes ---------------------------------------------------------------------------- */

static int write_conf(const test_server *s, int master_port)
{
    char path[256];
    snprintf(path, sizeof path, "%s/sentinel.conf", s->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\nlogfile sentinel.log\n"
               "dir %s\n"
               "sentinel monitor %s 127.0.0.1 %d 2\n"
               "sentinel down-after-milliseconds %s 1000\n"
               "sentinel failover-timeout %s 4000\n"
               "sentinel parallel-syncs %s 1\n",
            s->port, s->dir, SNT_MASTER_NAME, master_port, SNT_MASTER_NAME, SNT_MASTER_NAME,
            SNT_MASTER_NAME);
    if (data_pw[0])
        fprintf(f, "sentinel auth-pass %s %s\n", SNT_MASTER_NAME, data_pw);
    if (sentinel_pw[0])
        fprintf(f, "requirepass %s\n", sentinel_pw);
    return fclose(f);
}

static int sentinel_start(test_server *s, int master_port)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkv-sentinel-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = srv_free_port();
        snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
        if (write_conf(s, master_port) < 0)
            return -1;
        if ((s->pid = fork()) == 0)
            srv_exec_in(s->dir, (const char *const[]){"redis-server", "sentinel.conf",
                                                       "--sentinel", NULL});
        for (long long until = now_ms() + 5000; now_ms() < until; usleep(5000)) {
            char out[64];
            if (SRV(s, out, "PING") == RESP_STRING || strstr(out, "NOAUTH"))
                return 0;
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
                break;
        }
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    return -1;
}

/* Each sentinel sees the master up with one replica and the two other sentinels, and the
   replica is in sync. */
static int ready(void)
{
    char out[8192];
    const char *dp = data_pw[0] ? data_pw : NULL, *sp = sentinel_pw[0] ? sentinel_pw : NULL;
    SNT(&snt_data[1], dp, out, "INFO", "replication");
    if (!strstr(out, "master_link_status:up"))
        return 0;
    for (int i = 0; i < SNT_SENTINELS; i++) {
        SNT(&snt_sentinel[i], sp, out, "INFO", "sentinel");
        if (!strstr(out, "status=ok") || !strstr(out, "slaves=1,sentinels=3"))
            return 0;
    }
    return 1;
}

void sentinel_up_with(const char *data_pass, const char *sentinel_pass)
{
    snprintf(data_pw, sizeof data_pw, "%s", data_pass ? data_pass : "");
    snprintf(sentinel_pw, sizeof sentinel_pw, "%s", sentinel_pass ? sentinel_pass : "");
    const char *auth[] = {"--requirepass", data_pw, "--masterauth", data_pw, NULL};
    cr_assert_eq(srv_start(&snt_data[0], data_pass ? auth : NULL), 0, "the master did not start");
    char port[16];
    snprintf(port, sizeof port, "%d", snt_data[0].port);
    const char *replica[] = {"--replicaof", "127.0.0.1", port, "--requirepass", data_pw,
                             "--masterauth", data_pw, NULL};
    if (!data_pass)
        replica[3] = NULL;
    cr_assert_eq(srv_start(&snt_data[1], replica), 0, "the replica did not start");
    for (int i = 0; i < SNT_SENTINELS; i++)
        cr_assert_eq(sentinel_start(&snt_sentinel[i], snt_data[0].port), 0,
                     "redis-server --sentinel did not start");
    long long until = now_ms() + 40000;
    while (!ready() && now_ms() < until)
        usleep(100000);
    cr_assert(ready(), "the sentinels did not see the master, its replica and each other");
    snprintf(snt_url, sizeof snt_url, "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/%s",
             snt_sentinel[0].port, snt_sentinel[1].port, snt_sentinel[2].port, SNT_MASTER_NAME);
}

void sentinel_up(void) { sentinel_up_with(NULL, NULL); }

void sentinel_stop(void)
{
    for (int i = 0; i < SNT_SENTINELS; i++)
        srv_stop(&snt_sentinel[i]);
    srv_stop(&snt_data[0]);
    srv_stop(&snt_data[1]);
}
