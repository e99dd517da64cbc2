/* tls_mbedtls.c - rediss:// through mbedTLS 2.28 (make TLS=mbedtls): one mbedtls_ssl_config
 * per client holds the CA chain, the client certificate, the random generator and the
 * verification policy; each connection is an mbedtls_ssl_context over the socket, through
 * send/recv callbacks of our own, driven non-blocking by conn.c through a redkv_transport. */
#include "tls.h"

#ifdef REDKV_TLS_MBEDTLS

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>   /* the MBEDTLS_ERR_NET_* codes only */
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Where Debian and most distributions keep the system's CA bundle; else the directory. */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define SYSTEM_CA_DIR "/etc/ssl/certs"

typedef struct tls_ctx {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca, cert;
    mbedtls_pk_context key;
    int check_hostname;
} tls_ctx;

typedef struct tls_session {
    mbedtls_ssl_context ssl;
    int fd;
    int check_hostname;
    size_t write_pending;     /* bytes of a record mbedTLS holds after WANT_WRITE, or 0 */
    size_t addr_len;          /* the name is an IP address of this many bytes, else 0 */
    unsigned char addr[16];
    char name[256];
} tls_session;

/* Texts said in more than one place (a macro, so each is one literal, stored once). */
#define NO_CLIENT_CERT "no client certificate: the server requires one (see ssl_certfile)"


/* ---- the shared context ---------------------------------------------------------------- */

/* A file we cannot open is told by errno; one mbedTLS refused, as what it should have been. */
static int load_failed(const char *what, const char *path, const char *expected)
{
    FILE *f = fopen(path, "r");
    const char *why = f ? expected : strerror(errno);
    if (f)
        fclose(f);
    return rk_error(REDKV_ECONFIG, "TLS: cannot load the %s %s: %s", what, path, why);
}

/* parse_file answers how many certificates it skipped: a bundle with a few it cannot read
   is still a bundle, as long as one was read. */
static int load_ca(tls_ctx *t, const char *path)
{
    if (path)
        return mbedtls_x509_crt_parse_file(&t->ca, path) >= 0 && t->ca.version
                   ? REDKV_OK : load_failed("CA file", path, "no PEM certificate");
    if (mbedtls_x509_crt_parse_file(&t->ca, SYSTEM_CA_FILE) >= 0 && t->ca.version)
        return REDKV_OK;
    if (mbedtls_x509_crt_parse_path(&t->ca, SYSTEM_CA_DIR) >= 0 && t->ca.version)
        return REDKV_OK;
    return rk_error(REDKV_ECONFIG, "TLS: cannot load the system's CA bundle (%s); give "
                    "ssl_ca_certs", SYSTEM_CA_FILE);
}

static int load_client_cert(tls_ctx *t, const rk_config *cfg)
{
    const char *key = cfg->tls_key ? cfg->tls_key : cfg->tls_cert;  /* a PEM may hold both */
    if (cfg->tls_key && !cfg->tls_cert)
        return rk_error(REDKV_ECONFIG, "TLS: a key file (%s) needs its certificate file",
                        cfg->tls_key);
    if (!cfg->tls_cert)
        return REDKV_OK;
    if (mbedtls_x509_crt_parse_file(&t->cert, cfg->tls_cert) != 0)
        return load_failed("certificate file", cfg->tls_cert, "no PEM certificate");
    if (mbedtls_pk_parse_keyfile(&t->key, key, NULL) != 0)
        return load_failed("key file", key, "no unencrypted PEM key");
    if (mbedtls_pk_check_pair(&t->cert.pk, &t->key) != 0)
        return rk_error(REDKV_ECONFIG, "TLS: the key in %s does not match the certificate in %s",
                        key, cfg->tls_cert);
    if (mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key) != 0)
        return rk_error(REDKV_ENOMEM, "out of memory");
    return REDKV_OK;
}

static int configure(tls_ctx *t, const rk_config *cfg)
{
    static const int authmode[] = {
        [RK_VERIFY_REQUIRED] = MBEDTLS_SSL_VERIFY_REQUIRED,
        [RK_VERIFY_OPTIONAL] = MBEDTLS_SSL_VERIFY_OPTIONAL,  /* checked, and the result kept */
        [RK_VERIFY_NONE] = MBEDTLS_SSL_VERIFY_NONE};
    static const unsigned char personal[] = "redkv";
    if (mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, personal,
                              sizeof personal - 1) != 0)
        return rk_error(REDKV_ETLS, "TLS: no entropy for the random generator");
    if (mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        return rk_error(REDKV_ENOMEM, "out of memory");
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_authmode(&t->conf, authmode[cfg->tls_verify]);
    int rc = cfg->tls_verify == RK_VERIFY_NONE ? REDKV_OK : load_ca(t, cfg->tls_ca);
    if (rc == REDKV_OK)
        mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    return rc ? rc : load_client_cert(t, cfg);
}

static void free_ctx(tls_ctx *t)
{
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_pk_free(&t->key);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    resp_free(t);
}

static void *mbed_open(void *ctx, int fd, const char *server_name, char *err, size_t errlen);
static int mbed_handshake(void *session, char *err, size_t errlen);
static long mbed_read(void *session, void *buf, size_t len);
static long mbed_write(void *session, const void *buf, size_t len);
static size_t mbed_pending(void *session);
static void mbed_close(void *session);

int rk_tls_create(const rk_config *cfg, redkv_transport *tp)
{
    tls_ctx *t = resp_malloc(sizeof *t);
    if (!t)
        return rk_error(REDKV_ENOMEM, "out of memory");
    memset(t, 0, sizeof *t);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_entropy_init(&t->entropy);
    t->check_hostname = cfg->tls_check_hostname && cfg->tls_verify != RK_VERIFY_NONE;
    int rc = configure(t, cfg);
    if (rc != REDKV_OK) {
        free_ctx(t);
        return rc;
    }
    memset(tp, 0, sizeof *tp);
    tp->ctx = t;
    tp->open = mbed_open;
    tp->handshake = mbed_handshake;
    tp->read = mbed_read;
    tp->write = mbed_write;
    tp->pending = mbed_pending;
    tp->close = mbed_close;
    return REDKV_OK;
}

void rk_tls_destroy(redkv_transport *tp)
{
    if (tp->ctx)
        free_ctx(tp->ctx);
    tp->ctx = NULL;
}

/* ---- the socket ------------------------------------------------------------------------ */

/* A timeout of a blocking socket (SO_RCVTIMEO) is EAGAIN too: WANT_*, never a hang. */
static int net_error(int want)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return want;
    if (errno == EPIPE || errno == ECONNRESET)
        return MBEDTLS_ERR_NET_CONN_RESET;
    return want == MBEDTLS_ERR_SSL_WANT_READ ? MBEDTLS_ERR_NET_RECV_FAILED
                                             : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int fd_send(void *p, const unsigned char *buf, size_t len)
{
    ssize_t n = send(((tls_session *)p)->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL);
    return n >= 0 ? (int)n : net_error(MBEDTLS_ERR_SSL_WANT_WRITE);
}

static int fd_recv(void *p, unsigned char *buf, size_t len)
{
    ssize_t n = recv(((tls_session *)p)->fd, buf, len > INT_MAX ? INT_MAX : len, 0);
    return n >= 0 ? (int)n : net_error(MBEDTLS_ERR_SSL_WANT_READ);
}

/* ---- sessions -------------------------------------------------------------------------- */

/* mbedTLS 2.28 checks names against DNS entries only: an address is looked for among the
   certificate's iPAddress entries (context tag 7) here. */
static int has_ip_san(const mbedtls_x509_crt *crt, const unsigned char *addr, size_t len)
{
    for (const mbedtls_x509_sequence *cur = &crt->subject_alt_names; cur; cur = cur->next)
        if (cur->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && cur->buf.len == len &&
            memcmp(cur->buf.p, addr, len) == 0)
            return 1;
    return 0;
}

/* Called for each certificate of the chain; only the server's own (depth 0) has a name. */
static int check_name(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const tls_session *s = p;
    if (depth != 0)
        return 0;
    if (!s->check_hostname)
        *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    else if (s->addr_len && !has_ip_san(crt, s->addr, s->addr_len))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* SNI and the name check for a host name; for an address no SNI (RFC 6066), and the check
   is check_name's. */
static int set_name(tls_session *s, const char *name)
{
    snprintf(s->name, sizeof s->name, "%s", name);
    if (inet_pton(AF_INET, name, s->addr) == 1)
        s->addr_len = 4;
    else if (inet_pton(AF_INET6, name, s->addr) == 1)
        s->addr_len = 16;
    /* NULL says "no name on purpose" to versions that refuse a verified peer without one */
    return mbedtls_ssl_set_hostname(&s->ssl, s->addr_len ? NULL : name);
}

static void *mbed_open(void *ctx, int fd, const char *server_name, char *err, size_t errlen)
{
    tls_ctx *t = ctx;
    tls_session *s = resp_malloc(sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof *s);
    mbedtls_ssl_init(&s->ssl);
    s->fd = fd;
    s->check_hostname = t->check_hostname;
    if (mbedtls_ssl_setup(&s->ssl, &t->conf) != 0 || set_name(s, server_name) != 0) {
        snprintf(err, errlen, "out of memory");
        mbed_close(s);
        return NULL;
    }
    mbedtls_ssl_set_verify(&s->ssl, check_name, s);
    mbedtls_ssl_set_bio(&s->ssl, s, fd_send, fd_recv, NULL);
    return s;
}

static void mbed_close(void *session)
{
    tls_session *s = session;
    mbedtls_ssl_free(&s->ssl);
    resp_free(s);
}

/* Why the certificate was refused, in the terms a user acts on: the first flag of
   VERIFY_WHY that is set picks its text (a table: one call, no branch per text). */
static const struct { uint32_t flag; const char *why; } VERIFY_WHY[] = {
    {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "is from an unknown CA (see ssl_ca_certs)"},
    {MBEDTLS_X509_BADCERT_EXPIRED, "has expired"},
    {MBEDTLS_X509_BADCERT_FUTURE, "is not valid yet"},
    {MBEDTLS_X509_BADCERT_CN_MISMATCH, "is not for the name checked (name mismatch): "},
};

static void say_verify(const tls_session *s, char *err, size_t errlen)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
    char info[160];
    for (size_t i = 0; i < sizeof VERIFY_WHY / sizeof *VERIFY_WHY; i++)
        if (flags & VERIFY_WHY[i].flag) {   /* the mismatch names the name we checked */
            snprintf(err, errlen, "the server's certificate %s%s", VERIFY_WHY[i].why,
                     VERIFY_WHY[i].flag == MBEDTLS_X509_BADCERT_CN_MISMATCH ? s->name : "");
            return;
        }
    mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
    info[strcspn(info, "\n")] = 0;
    snprintf(err, errlen, "the server's certificate %s%s", "was rejected: ", info);
}

/* The names of the alerts a refused handshake brings: each its number (RFC 8446, in octal:
   40, 42, 48, 45, 70, 112, 116), then its name. */
static const char ALERT_NAMES[] =
    "\050handshake failure\0\052bad certificate\0\060unknown CA\0\055certificate expired\0"
    "\106protocol version\0\160unrecognized name\0\164certificate required\0";

static const char *alert_name(int alert)
{
    for (const char *p = ALERT_NAMES; *p; p += strlen(p) + 1)
        if ((unsigned char)*p == alert)
            return p + 1;
    return "alert";
}

/* The server's fatal alert: a refusal of our (missing) client certificate said as such. */
static void say_alert(const tls_session *s, char *err, size_t errlen)
{
    int alert = s->ssl.in_msg ? s->ssl.in_msg[1] : 0;
    const char *why = !s->ssl.client_auth ? "the server refused the handshake"
                      : s->ssl.conf->key_cert ? "the server refused our client certificate"
                      : NO_CLIENT_CERT;
    snprintf(err, errlen, "%s (alert %d, %s)", why, alert, alert_name(alert));
}

static void say_failure(const tls_session *s, int r, char *err, size_t errlen)
{
    char text[120];
    switch (r) {
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
        say_verify(s, err, errlen);
        break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        say_alert(s, err, errlen);
        break;
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
        snprintf(err, errlen, "the peer is not TLS: is this a TLS port? (a plain one takes "
                 "redis://)");
        break;
    case MBEDTLS_ERR_SSL_CONN_EOF:
    case MBEDTLS_ERR_NET_CONN_RESET:
        if (s->ssl.client_auth && !s->ssl.conf->key_cert)   /* it asked for one, then left */
            snprintf(err, errlen, "%s (it closed the connection)", NO_CLIENT_CERT);
        else
            snprintf(err, errlen, "the peer closed the connection in the handshake: not TLS, or "
                     "it refused us");
        break;
    default:
        mbedtls_strerror(r, text, sizeof text);
        snprintf(err, errlen, "%s (-0x%04x)", text, (unsigned)-r);
    }
}

static int mbed_handshake(void *session, char *err, size_t errlen)
{
    tls_session *s = session;
    int r = mbedtls_ssl_handshake(&s->ssl);
    if (r == 0)
        return 0;
    if (r == MBEDTLS_ERR_SSL_WANT_READ)
        return REDKV_IO_WANT_READ;
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return REDKV_IO_WANT_WRITE;
    say_failure(s, r, err, errlen);
    return REDKV_IO_ERROR;
}

static long io_result(int r)
{
    if (r == MBEDTLS_ERR_SSL_WANT_READ)
        return REDKV_IO_WANT_READ;
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return REDKV_IO_WANT_WRITE;
    return REDKV_IO_ERROR;
}

static long mbed_read(void *session, void *buf, size_t len)
{
    tls_session *s = session;
    int r = mbedtls_ssl_read(&s->ssl, buf, len > INT_MAX ? INT_MAX : len);
    if (r >= 0)
        return r;                      /* 0: the peer closed */
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_NET_CONN_RESET)
        return 0;
    return io_result(r);
}

/* After WANT_WRITE mbedTLS keeps the record it made and, called again, sends it and reports
   the length it is given now; conn.c may by then have more bytes queued, so the retry is
   given exactly the length of that record. */
static long mbed_write(void *session, const void *buf, size_t len)
{
    tls_session *s = session;
    int max = mbedtls_ssl_get_max_out_record_payload(&s->ssl);
    if (max > 0 && len > (size_t)max)
        len = (size_t)max;
    if (s->write_pending)
        len = s->write_pending;
    int r = mbedtls_ssl_write(&s->ssl, buf, len);
    if (r >= 0) {
        s->write_pending = 0;
        return r;
    }
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        s->write_pending = len;
    return io_result(r);
}

static size_t mbed_pending(void *session)
{
    return mbedtls_ssl_get_bytes_avail(&((tls_session *)session)->ssl);
}

#else
typedef int rk_tls_mbedtls_is_empty;  /* ISO C wants something in a translation unit */
#endif
