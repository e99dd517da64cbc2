/* tls_fixture.c - see tls_fixture.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls_fixture.h"

char tls_dir[128];

/* Every key is P-256 (quick to make; mbedTLS 2.28 and OpenSSL both take it). A leaf is
   made by `leaf NAME SIGNER SAN [EXTRA x509 ARGS]`. The expired one is signed with a
   negative validity: notBefore is now, notAfter a day before, which verifiers report as
   expired (notBefore has passed). */
static const char cert_script[] =
    "set -e\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1.key\"; }\n"
    "ca() { key \"$1\"; openssl req -x509 -new -key \"$1.key\" -out \"$1.crt\" -days 7 "
    "-subj \"/CN=redkv test $1\"; }\n"
    "leaf() { n=$1 signer=$2 san=$3; shift 3; key \"$n\";\n"
    "  openssl req -new -key \"$n.key\" -out \"$n.csr\" -subj \"/CN=redkv test $n\";\n"
    "  printf '%s\\n' \"$san\" > \"$n.ext\";\n"
    "  openssl x509 -req -in \"$n.csr\" -CA \"$signer.crt\" -CAkey \"$signer.key\" "
    "-set_serial $$$(date +%N) -out \"$n.crt\" -extfile \"$n.ext\" \"$@\"; }\n"
    "ca ca\n"
    "ca other-ca\n"
    "leaf server ca 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' -days 7\n"
    "leaf expired ca 'subjectAltName=DNS:localhost,IP:127.0.0.1' -days -1\n"
    "leaf wrongname ca 'subjectAltName=DNS:elsewhere.example' -days 7\n"
    "leaf dnsonly ca 'subjectAltName=DNS:localhost' -days 7\n"
    "leaf other other-ca 'subjectAltName=DNS:localhost,IP:127.0.0.1' -days 7\n"
    "leaf client ca 'extendedKeyUsage=clientAuth' -days 7\n"
    "echo 'this is not a certificate' > garbage.pem\n";

int tls_certs_make(void)
{
    snprintf(tls_dir, sizeof tls_dir, "/tmp/redkv-tls-XXXXXX");
    if (!mkdtemp(tls_dir)) {
        perror("mkdtemp");
        return -1;
    }
    char script[] = "/tmp/redkv-tls-script-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0 || write(fd, cert_script, sizeof cert_script - 1) != (ssize_t)sizeof cert_script - 1) {
        perror("tls fixture: script");
        return -1;
    }
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd '%s' && sh '%s' >openssl.log 2>&1", tls_dir, script);
    int rc = system(cmd);
    unlink(script);
    if (rc != 0)
        fprintf(stderr, "tls fixture: openssl failed, see %s/openssl.log\n", tls_dir);
    return rc == 0 ? 0 : -1;
}

void tls_certs_remove(void)
{
    if (tls_dir[0]) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "tls fixture: could not remove %s\n", tls_dir);
        tls_dir[0] = 0;
    }
}

const char *tls_path(const char *name)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tls_dir, name);
    return p;
}

int tls_srv_start(tls_server *t, const char *cert, const char *auth_clients,
                  const char *const *extra)
{
    char port[16], crt[256], key[256], ca[256];
    const char *argv[48];
    snprintf(crt, sizeof crt, "%s/%s.crt", tls_dir, cert);
    snprintf(key, sizeof key, "%s/%s.key", tls_dir, cert);
    snprintf(ca, sizeof ca, "%s/ca.crt", tls_dir);
    for (int attempt = 0; attempt < 3; attempt++) {   /* the TLS port may be taken meanwhile */
        int n = 0;
        memset(t, 0, sizeof *t);
        t->tls_port = srv_free_port();
        snprintf(port, sizeof port, "%d", t->tls_port);
        const char *tls_args[] = {"--tls-port", port, "--tls-cert-file", crt, "--tls-key-file",
                                  key, "--tls-ca-cert-file", ca, "--tls-auth-clients",
                                  auth_clients};
        for (size_t i = 0; i < sizeof tls_args / sizeof *tls_args; i++)
            argv[n++] = tls_args[i];
        for (; extra && *extra && n < 46; extra++)
            argv[n++] = *extra;
        argv[n] = NULL;
        if (srv_start(&t->srv, argv) == 0) {
            snprintf(t->url, sizeof t->url, "rediss://127.0.0.1:%d?ssl_ca_certs=%s",
                     t->tls_port, ca);
            return 0;
        }
    }
    return -1;
}

void tls_srv_stop(tls_server *t)
{
    srv_stop(&t->srv);
}
