/* cluster_fixture.c - see cluster_fixture.h. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_fixture.h"
#include "resp.h"
#include "tls_fixture.h"

test_server cluster_node[NODES];
int cluster_tls_port[NODES];
char cluster_url[512];

/* cluster_up_tls: every node TLS only (port 0), the bus and replication too; the test's own
   commands (SRV) reach each node on its unix socket. */
static int tls_mode;

/* A port p with p and its cluster bus port p + 10000 both free, below the ephemeral range. */
static int bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int cluster_pick_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)now_ms();
    for (;;) {
        int p = 10000 + (int)((seed = seed * 1103515245u + 12345u) >> 8) % 12000;
        if (bindable(p) && bindable(p + 10000))
            return p;
    }
}

static void exec_node(test_server *s, int tls_port)
{
    char port[16], tport[16], bus[16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(tport, sizeof tport, "%d", tls_port);
    snprintf(bus, sizeof bus, "%d", tls_port + 10000);
    const char *argv[64] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                            "--dir", s->dir, "--save", "", "--appendonly", "no",
                            "--daemonize", "no", "--logfile", "redis.log",
                            "--protected-mode", "no", "--cluster-enabled", "yes",
                            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                            NULL};
    const char *tls[] = {"--unixsocket", s->sock, "--unixsocketperm", "700",
                         "--tls-port", tport, "--cluster-port", bus,
                         "--tls-cert-file", tls_path("server.crt"),
                         "--tls-key-file", tls_path("server.key"),
                         "--tls-ca-cert-file", tls_path("ca.crt"), "--tls-auth-clients", "no",
                         "--tls-cluster", "yes", "--tls-replication", "yes", NULL};
    if (tls_port) {
        int n = 0;
        while (argv[n])
            n++;
        for (int i = 0; tls[i]; i++)
            argv[n++] = tls[i];
        argv[n] = NULL;
    }
    srv_exec_in(s->dir, argv);
}

/* TLS mode: *tls_port is the node's port (its bus at +10000) and s->port is 0. */
static int node_start(test_server *s, int *tls_port)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/redkv-cluster-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = cluster_pick_port();
        s->port = tls_mode ? 0 : port;
        *tls_port = tls_mode ? port : 0;
        snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", tls_mode ? "rediss" : "redis", port);
        if ((s->pid = fork()) == 0)
            exec_node(s, *tls_port);
        for (long long until = now_ms() + 5000; now_ms() < until;) {
            char out[64];
            if (SRV(s, out, "PING") == RESP_STRING)
                return 0;
            if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
                break;
            usleep(5000);
        }
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
    return -1;
}

static int run_cli_create(void)
{
    char ports[NODES][32];
    const char *argv[NODES + 12];
    int n = 0;
    argv[n++] = "redis-cli";
    if (tls_mode) {                    /* redis-cli reaches TLS nodes only when told to */
        argv[n++] = "--tls";
        argv[n++] = "--cacert";
        argv[n++] = tls_path("ca.crt");
    }
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < NODES; i++) {
        snprintf(ports[i], sizeof ports[i], "127.0.0.1:%d",
                 tls_mode ? cluster_tls_port[i] : cluster_node[i].port);
        argv[n++] = ports[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
            close(devnull);
        }
        execvp("redis-cli", (char *const *)argv);
        _exit(127);
    }
    int status = -1;
    for (long long until = now_ms() + 60000; now_ms() < until; usleep(20000))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int cluster_is_master(const test_server *s)
{
    char out[4096];
    SRV(s, out, "ROLE");
    return strncmp(out, "master", 6) == 0;
}

/* Every node says cluster_state:ok, knows all six, and every master has a replica in sync. */
static int cluster_ready(void)
{
    for (int i = 0; i < NODES; i++) {
        char out[8192];
        SRV(&cluster_node[i], out, "CLUSTER", "INFO");
        if (!strstr(out, "cluster_state:ok") || !strstr(out, "cluster_known_nodes:6"))
            return 0;
        SRV(&cluster_node[i], out, "INFO", "replication");
        if (strstr(out, "role:slave") && !strstr(out, "master_link_status:up"))
            return 0;
        if (strstr(out, "role:master") && !strstr(out, "connected_slaves:1"))
            return 0;
    }
    return 1;
}

void cluster_stop(void)
{
    for (int i = 0; i < NODES; i++)
        srv_stop(&cluster_node[i]);
}

void cluster_up(void)
{
    for (int i = 0; i < NODES; i++)
        cr_assert_eq(node_start(&cluster_node[i], &cluster_tls_port[i]), 0,
                     "redis-server (cluster-enabled) did not start");
    cr_assert_eq(run_cli_create(), 0, "redis-cli --cluster create failed");
    long long until = now_ms() + 30000;
    while (!cluster_ready() && now_ms() < until)
        usleep(50000);
    cr_assert(cluster_ready(), "the cluster did not become ready");
    if (tls_mode)
        snprintf(cluster_url, sizeof cluster_url,
                 "rediss+cluster://127.0.0.1:%d,127.0.0.1:%d?ssl_ca_certs=%s",
                 cluster_tls_port[0], cluster_tls_port[1], tls_path("ca.crt"));
    else
        snprintf(cluster_url, sizeof cluster_url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d",
                 cluster_node[0].port, cluster_node[1].port);
}

void cluster_up_tls(void)
{
    cr_assert_eq(tls_certs_make(), 0);
    tls_mode = 1;
    cluster_up();
}

void cluster_stop_tls(void)
{
    cluster_stop();
    tls_certs_remove();
}

test_server *cluster_master_of(int slot)
{
    for (int i = 0; i < NODES; i++) {
        char out[16384], *save = NULL;
        if (SRV(&cluster_node[i], out, "CLUSTER", "NODES") < 0)
            continue;
        for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (!strstr(l, "myself") || !strstr(l, "master"))
                continue;
            char *f = NULL;
            int field = 0;
            for (char *t = strtok_r(l, " ", &f); t; t = strtok_r(NULL, " ", &f), field++) {
                long lo = atol(t), hi = strchr(t, '-') ? atol(strchr(t, '-') + 1) : lo;
                if (field >= 8 && t[0] != '[' && slot >= lo && slot <= hi)
                    return &cluster_node[i];
            }
        }
    }
    return NULL;
}
