/* tls_none.c - a build without TLS: rediss:// is refused, saying how to get it. */
#include "fmacros.h"

#include "tls.h"

#if !defined(REDKV_TLS_MBEDTLS) && !defined(REDKV_TLS_OPENSSL) && !defined(REDKV_NO_TLS)

int rk_tls_create(const rk_config *cfg, redkv_transport *tp)
{
    (void)cfg;
    (void)tp;
    return rk_error(REDKV_ECONFIG, "rediss:// needs TLS, which this build of redkv lacks: "
                    "build it with make TLS=mbedtls or make TLS=openssl (or give a transport)");
}

void rk_tls_destroy(redkv_transport *tp) { (void)tp; }

#else
typedef int rk_tls_none_is_empty;  /* ISO C wants something in a translation unit */
#endif
