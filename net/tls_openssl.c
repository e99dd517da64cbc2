/* tls_openssl.c - rediss:// through OpenSSL (make TLS=openssl): one SSL_CTX per client holds
 * the CA store, the client certificate and the verification policy; each connection is an
 * SSL over the socket, driven non-blocking by conn.c through a redkv_transport. */
#include "tls.h"

#ifdef REDKV_TLS_OPENSSL

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

typedef struct tls_ctx {
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio;          /* the socket BIO with a send that raises no SIGPIPE */
    enum rk_verify verify;
    int check_hostname;
} tls_ctx;

typedef struct tls_session {
    SSL *ssl;
    int cert_requested;       /* the server asked for a client certificate we lack */
    int ticket_seen;          /* TLS 1.3: the server sent a session ticket: it accepted us */
    int confirming;           /* handshake done on our side; waiting for the server's word */
    char name[256];           /* the name checked, for messages */
} tls_session;


/* ---- the socket BIO: OpenSSL's own writes with write(2), which raises SIGPIPE on a socket
   the peer closed; the library must not kill a program that did not ignore it. --------- */

static int bio_send(BIO *b, const char *buf, int len)
{
    int fd = -1;
    BIO_get_fd(b, &fd);
    errno = 0;
    ssize_t n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static BIO_METHOD *make_bio_method(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "redkv socket");
    if (m && (!BIO_meth_set_write(m, bio_send) ||
              !BIO_meth_set_read(m, BIO_meth_get_read(sock)) ||
              !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) ||
              !BIO_meth_set_create(m, BIO_meth_get_create(sock)) ||
              !BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock)))) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

/* ---- the shared context ---------------------------------------------------------------- */

/* The reason OpenSSL gives for its last error, or fallback. */
static const char *ossl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : fallback;
}

/* A file we cannot even open is told by errno, one that OpenSSL refused by its reason. */
static int load_failed(const char *what, const char *path)
{
    FILE *f = fopen(path, "r");
    const char *why = f ? ossl_reason("not in PEM format") : strerror(errno);
    if (f)
        fclose(f);
    ERR_clear_error();
    return rk_error(REDKV_ECONFIG, "TLS: cannot load the %s %s: %s", what, path, why);
}

static int load_files(SSL_CTX *ctx, const rk_config *cfg)
{
    const char *key = cfg->tls_key ? cfg->tls_key : cfg->tls_cert;  /* a PEM may hold both */
    if (cfg->tls_ca ? !SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL)
                    : !SSL_CTX_set_default_verify_paths(ctx))
        return cfg->tls_ca ? load_failed("CA file", cfg->tls_ca)
                           : rk_error(REDKV_ECONFIG, "TLS: cannot load the system's CA bundle");
    if (cfg->tls_key && !cfg->tls_cert)
        return rk_error(REDKV_ECONFIG, "TLS: a key file (%s) needs its certificate file",
                        cfg->tls_key);
    if (!cfg->tls_cert)
        return REDKV_OK;
    if (!SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert))
        return load_failed("certificate file", cfg->tls_cert);
    if (!SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        return load_failed("key file", key);
    if (!SSL_CTX_check_private_key(ctx)) {
        ERR_clear_error();
        return rk_error(REDKV_ECONFIG, "TLS: the key in %s does not match the certificate in %s",
                        key, cfg->tls_cert);
    }
    return REDKV_OK;
}

/* Called when the server asks for a client certificate (we send ours, if any): remembered,
   to wait for the server's verdict under TLS 1.3 and to tell why it refused us. */
static int on_cert_request(SSL *ssl, void *arg)
{
    (void)arg;
    ((tls_session *)SSL_get_app_data(ssl))->cert_requested = 1;
    return 1;
}

/* A TLS 1.3 server sends its tickets only once it has accepted the client's certificate
   (or the lack of one); we keep no session, only the fact. */
static int on_ticket(SSL *ssl, SSL_SESSION *sess)
{
    (void)sess;
    ((tls_session *)SSL_get_app_data(ssl))->ticket_seen = 1;
    return 0;
}

static void ossl_close(void *session);
static void *ossl_open(void *ctx, int fd, const char *server_name, char *err, size_t errlen);
static int ossl_handshake(void *session, char *err, size_t errlen);
static long ossl_read(void *session, void *buf, size_t len);
static long ossl_write(void *session, const void *buf, size_t len);
static size_t ossl_pending(void *session);

static void free_ctx(tls_ctx *t)
{
    if (t) {
        SSL_CTX_free(t->ssl_ctx);
        BIO_meth_free(t->bio);
        resp_free(t);
    }
}

int rk_tls_create(const rk_config *cfg, redkv_transport *tp)
{
    tls_ctx *t = resp_malloc(sizeof *t);
    if (!t)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(t, 0, sizeof *t);
    t->verify = cfg->tls_verify;
    t->check_hostname = cfg->tls_check_hostname;
    t->ssl_ctx = SSL_CTX_new(TLS_client_method());
    t->bio = make_bio_method();
    int rc = t->ssl_ctx && t->bio ? REDKV_OK : rk_error(REDKV_ENOMEM, "TLS: no context: %s",
                                                         ossl_reason("out of memory"));
    if (rc == REDKV_OK) {
        SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
        SSL_CTX_set_options(t->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);  /* EOF: peer closed */
#endif
        SSL_CTX_set_mode(t->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* Optional: OpenSSL checks anyway, but goes on whatever it finds. */
        SSL_CTX_set_verify(t->ssl_ctx, t->verify == RK_VERIFY_REQUIRED ? SSL_VERIFY_PEER
                                                                       : SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_cert_cb(t->ssl_ctx, on_cert_request, NULL);
        SSL_CTX_set_session_cache_mode(t->ssl_ctx, SSL_SESS_CACHE_CLIENT |
                                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(t->ssl_ctx, on_ticket);
        rc = load_files(t->ssl_ctx, cfg);
    }
    if (rc != REDKV_OK) {
        free_ctx(t);
        ERR_clear_error();
        return rc;
    }
    memset(tp, 0, sizeof *tp);
    tp->ctx = t;
    tp->open = ossl_open;
    tp->handshake = ossl_handshake;
    tp->read = ossl_read;
    tp->write = ossl_write;
    tp->pending = ossl_pending;
    tp->close = ossl_close;
    return REDKV_OK;
}

void rk_tls_destroy(redkv_transport *tp)
{
    free_ctx(tp->ctx);
    tp->ctx = NULL;
}

/* ---- sessions -------------------------------------------------------------------------- */

static int is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* SNI for a host name (never for an address, as RFC 6066 says), and the name or address
   the certificate must carry unless that check is off. */
static int set_names(const tls_ctx *t, SSL *ssl, const char *name)
{
    int ip = is_ip_literal(name);
    if (!ip && !SSL_set_tlsext_host_name(ssl, name))
        return 0;
    if (t->verify == RK_VERIFY_NONE || !t->check_hostname)
        return 1;
    return ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
              : SSL_set1_host(ssl, name);
}

static void *ossl_open(void *ctx, int fd, const char *server_name, char *err, size_t errlen)
{
    tls_ctx *t = ctx;
    tls_session *s = resp_malloc(sizeof *s);
    BIO *bio = NULL;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", server_name);
    ERR_clear_error();
    if (!(s->ssl = SSL_new(t->ssl_ctx)) || !(bio = BIO_new(t->bio)) ||
        !set_names(t, s->ssl, server_name)) {
        snprintf(err, errlen, "cannot start a session: %s", ossl_reason("out of memory"));
        BIO_free(bio);
        ossl_close(s);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_fd(bio, fd, BIO_NOCLOSE);
    SSL_set_bio(s->ssl, bio, bio);
    SSL_set_app_data(s->ssl, s);
    SSL_set_connect_state(s->ssl);
    return s;
}

static void ossl_close(void *session)
{
    tls_session *s = session;
    SSL_free(s->ssl);
    resp_free(s);
}

/* Why the certificate was refused, in the terms a user acts on, with OpenSSL's words. */
static void say_verify(const tls_session *s, long v, char *err, size_t errlen)
{
    const char *what = X509_verify_cert_error_string(v), *why = "was rejected", *name = "";
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED: why = "has expired"; break;
    case X509_V_ERR_CERT_NOT_YET_VALID: why = "is not valid yet"; break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        why = "is not for the name checked (name mismatch): ";
        name = s->name;
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        why = "is from an unknown CA (see ssl_ca_certs)";
    }
    snprintf(err, errlen, "the server's certificate %s%s (%s)", why, name, what);
}

/* Why the handshake failed: the cause a user can fix, then OpenSSL's reason (or errno's),
   in one message made in one place. */
static void say_failure(const tls_session *s, int code, char *err, size_t errlen)
{
    int reason = ERR_GET_REASON(ERR_peek_last_error());
    int have_cert = SSL_get_certificate(s->ssl) != NULL;
    const char *why = "", *detail = ossl_reason("handshake failed");
    if (code == SSL_ERROR_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        say_verify(s, SSL_get_verify_result(s->ssl), err, errlen);
        return;
    }
    if (s->cert_requested && !have_cert && (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                                            reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE))
        why = "no client certificate: the server requires one (see ssl_certfile)";
    else if (s->cert_requested && have_cert && reason >= SSL_AD_REASON_OFFSET)
        why = "the server refused our client certificate";
    else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
             reason == SSL_R_PACKET_LENGTH_TOO_LONG || reason == SSL_R_RECORD_LENGTH_MISMATCH ||
             reason == SSL_R_UNKNOWN_PROTOCOL)
        why = "the peer is not TLS: is this a TLS port? (a plain one takes redis://)";
    else if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN) {
        why = "the peer closed the connection in the handshake: not TLS, or it refused us";
        detail = errno && code == SSL_ERROR_SYSCALL ? strerror(errno) : "";
    } else if (reason >= SSL_AD_REASON_OFFSET)   /* the server's alert */
        why = "the server refused the handshake";
    snprintf(err, errlen, "%s%s%s", why, *why && *detail ? ": " : "", detail);
}

/* OpenSSL's answer to one call, as the transport's codes: want read/write, or an error. */
static int failure(tls_session *s, int r, char *err, size_t errlen)
{
    int code = SSL_get_error(s->ssl, r);
    if (code == SSL_ERROR_WANT_READ)
        return REDKV_IO_WANT_READ;
    if (code == SSL_ERROR_WANT_WRITE)
        return REDKV_IO_WANT_WRITE;
    say_failure(s, code, err, errlen);
    ERR_clear_error();
    return REDKV_IO_ERROR;
}

/* TLS 1.3 ends the client's handshake before the server has judged its certificate: when
   the server asked for one, wait for its verdict (a ticket, data, or an alert), so that a
   refusal is a handshake error that says why, not a lost connection later. */
static int confirm(tls_session *s, char *err, size_t errlen)
{
    char byte;
    ERR_clear_error();
    int r = SSL_peek(s->ssl, &byte, 1);
    if (r > 0 || s->ticket_seen)
        return 0;
    r = failure(s, r, err, errlen);
    return r == REDKV_IO_WANT_READ && s->ticket_seen ? 0 : r;
}

static int ossl_handshake(void *session, char *err, size_t errlen)
{
    tls_session *s = session;
    if (s->confirming)
        return confirm(s, err, errlen);
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(s->ssl);
    if (r != 1)
        return failure(s, r, err, errlen);
    if (s->cert_requested && SSL_version(s->ssl) >= TLS1_3_VERSION) {
        s->confirming = 1;
        return confirm(s, err, errlen);
    }
    return 0;
}

/* A read or write's answer: WANT_* (a blocking socket's timeout comes back as WANT_*
   too), 0 when the peer closed, or an error. */
static long io_result(tls_session *s, int r)
{
    int code = SSL_get_error(s->ssl, r);
    ERR_clear_error();
    if (code == SSL_ERROR_WANT_READ)
        return REDKV_IO_WANT_READ;
    if (code == SSL_ERROR_WANT_WRITE)
        return REDKV_IO_WANT_WRITE;
    if (code == SSL_ERROR_ZERO_RETURN)
        return 0;
    return REDKV_IO_ERROR;
}

static long ossl_read(void *session, void *buf, size_t len)
{
    tls_session *s = session;
    ERR_clear_error();
    int r = SSL_read(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    return r > 0 ? r : io_result(s, r);
}

static long ossl_write(void *session, const void *buf, size_t len)
{
    tls_session *s = session;
    ERR_clear_error();
    int r = SSL_write(s->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0)
        return r;
    r = (int)io_result(s, r);
    return r == 0 ? REDKV_IO_ERROR : r;   /* a write never reads the peer's close */
}

static size_t ossl_pending(void *session)
{
    int n = SSL_pending(((tls_session *)session)->ssl);
    return n > 0 ? (size_t)n : 0;
}

#else
typedef int rk_tls_openssl_is_empty;  /* ISO C wants something in a translation unit */
#endif
