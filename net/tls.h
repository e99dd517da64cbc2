/* tls.h - the built-in TLS transports (make TLS=mbedtls or TLS=openssl): each fills a
 * redkv_transport (include/redkv.h) whose ctx holds what every connection of a client
 * shares (the CA bundle, the client certificate, the verification policy). Without a TLS
 * build, rk_tls_create refuses with ECONFIG saying how to build one. */
#ifndef REDKV_NET_TLS_H
#define REDKV_NET_TLS_H

#include "fmacros.h"
#include "net.h"

/* Reads cfg's tls_* fields: OK, or ETLS / ECONFIG / ENOMEM with the message set (a file that
   does not load is named; its contents never are). */
#ifndef REDKV_NO_TLS
RK_INTERNAL int rk_tls_create(const rk_config *cfg, redkv_transport *tp);
RK_INTERNAL void rk_tls_destroy(redkv_transport *tp);
#endif

#endif
