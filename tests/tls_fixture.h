/* tls_fixture.h - certificates made at test time and a redis-server with a TLS port.
 *
 * tls_certs_make runs Debian's `openssl` command to write, into a fresh temp dir (tls_dir),
 * a CA and, signed by it, certificates for the server (localhost and 127.0.0.1), a client,
 * an expired server, a server of another name; plus a second CA and a server it signed.
 * Nothing is committed, so nothing expires in the repository. tls_srv_start runs
 * redis-server with both a plain port (for the test's own commands, srv_call) and a TLS
 * port; the server is ready when the plain port answers PING, since redis opens both
 * listeners before serving either. */
#ifndef REDKV_TEST_TLS_FIXTURE_H
#define REDKV_TEST_TLS_FIXTURE_H

#include "fixture.h"

extern char tls_dir[128];

/* 0, or -1 (and prints why). tls_certs_remove removes the dir again. */
int tls_certs_make(void);
void tls_certs_remove(void);
/* tls_dir/name, in one of a few rotating static buffers. */
const char *tls_path(const char *name);

typedef struct tls_server {
    test_server srv;          /* srv.port is the plain port */
    int tls_port;
    char url[512];            /* rediss://127.0.0.1:<tls_port>?ssl_ca_certs=<tls_dir>/ca.crt */
} tls_server;

/* A server presenting cert/key (names in tls_dir: "server", "expired", ...: .crt and .key),
   asking for client certificates when auth_clients is "yes" ("no", "optional").
   extra: further arguments, or NULL. 0 or -1. */
int tls_srv_start(tls_server *t, const char *cert, const char *auth_clients,
                  const char *const *extra);
void tls_srv_stop(tls_server *t);


#endif
