/* redkv.c - the command-line tool: one store operation per run, for shell scripts.
 *
 *   redkv [OPTIONS] COMMAND [ARGS]     (see usage() below, and doc/redkv.1)
 *
 * Uses the public header alone. Every argument is checked before the store is opened, so
 * bad input (exit 2) never reaches the server. A password is never printed: it is not
 * echoed in any message, and neither is the URL that may hold one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redkv.h"

enum {
    EXIT_DONE = 0,      /* done */
    EXIT_MISSING = 1,   /* missing or false */
    EXIT_USAGE = 2,     /* usage or bad input (EINVAL, ECONFIG) */
    EXIT_CONN = 3,      /* connection, timeout, auth or TLS (ECONN, ETIMEDOUT, EAUTH, ETLS) */
    EXIT_SERVER = 4,    /* server or protocol error (ESERVER, EPROTO, ENOMEM, ETOOBIG) */
};

static const char USAGE[] =
    "Usage: redkv [OPTIONS] COMMAND [ARGS]\n"
    "A namespaced key/value store on Redis (Litestar's RedisStore layout).\n"
    "\n"
    "OPTIONS (before the command)\n"
    "  -u, --url URL        default: $REDKV_URL, else " REDKV_DEFAULT_URL "\n"
    "  -n, --namespace NS   default: " REDKV_DEFAULT_NAMESPACE "\n"
    "      --no-namespace   keys are used as given\n"
    "  -c, --child NS       descend into a child namespace (repeatable)\n"
    "      --db N           database number (default: from the URL, else 0)\n"
    "      --port N         port (default: from the URL, else 6379)\n"
    "      --user NAME      user name for AUTH\n"
    "      --password PASS  password (default: $REDKV_PASSWORD, else from the URL)\n"
    "      --timeout MS     connect and command timeout in milliseconds (default: 5000)\n"
    "      --max-value BYTES  the longest value sent or read (default: 536870912: 512 MiB)\n"
    "      --tls            use TLS: redis:// URLs become rediss:// (needs a TLS build)\n"
    "      --cacert FILE    CA certificates (PEM) to verify the server with (default: the system's)\n"
    "      --cert FILE      client certificate (PEM)    --key FILE   its private key (PEM)\n"
    "      --sni NAME       server name to send and check (default: the URL's host)\n"
    "      --insecure       do not verify the server's certificate or name\n"
    "  -h, --help           show this help\n"
    "      --version        print the library's version\n"
    "\n"
    "COMMANDS\n"
    "  set KEY VALUE [--expires-in DUR | --keep-ttl]    VALUE \"-\" reads standard input\n"
    "  get KEY [--renew-for DUR]    the value, as is, on standard output\n"
    "  delete KEY\n"
    "  delete-all                   the namespace and its children\n"
    "  exists KEY                   prints true or false\n"
    "  expires-in KEY               prints the seconds left, or \"persistent\"\n"
    "  incr KEY [--by N] [--expires-in DUR]   adds N (default 1), prints the new value;\n"
    "                               the expiry is set only when the key has none (a window)\n"
    "  ping                         prints PONG when the server answers\n"
    "\n"
    "DUR: 30 (seconds), 1.5s, 500ms, 10m, 2h, 3d.  \"--\" ends the options.\n"
    "EXIT: 0 done; 1 missing or false; 2 usage or bad input; 3 connection, timeout, auth or TLS;\n"
    "      4 server or protocol error\n";

/* ---- passwords never shown ---------------------------------------------------------- */

/* Every password the user gave (--password, $REDKV_PASSWORD, a URL's), so that no message
   repeats one. File-wide because the tool runs one command and every message needs it. */
#define MAX_SECRETS 16
static struct { const char *p; size_t len; } secrets[MAX_SECRETS];
static int nsecrets;
static int secrets_lost;      /* more than MAX_SECRETS: no user text is echoed at all */

static void remember_secret(const char *p, size_t len)
{
    if (!len)
        return;
    if (nsecrets == MAX_SECRETS)
        secrets_lost = 1;
    else
        secrets[nsecrets].p = p, secrets[nsecrets++].len = len;
}

/* Where the userinfo of a URL-like text ends (its last '@' after "://", or after the start
   when there is no scheme), or NULL when it has none. */
static const char *userinfo_end(const char *text, const char **start)
{
    const char *scheme_end = strstr(text, "://");
    *start = scheme_end ? scheme_end + 3 : text;
    return strrchr(*start, '@');
}

/* The password part of a URL (after the first ':' of its userinfo), remembered. */
static void remember_url_secret(const char *url)
{
    const char *start, *at = userinfo_end(url, &start);
    if (!at)
        return;
    const char *colon = memchr(start, ':', (size_t)(at - start));
    if (colon)
        remember_secret(colon + 1, (size_t)(at - colon - 1));
    else
        remember_secret(start, (size_t)(at - start));   /* user@ may be a mistyped password */
}

static const char *find_bytes(const char *hay, size_t haylen, const char *needle, size_t n)
{
    for (size_t i = 0; n && i + n <= haylen; i++)
        if (!memcmp(hay + i, needle, n))
            return hay + i;
    return NULL;
}

/* Does text hold any remembered password? */
static int holds_secret(const char *text)
{
    for (int k = 0; k < nsecrets; k++)
        if (find_bytes(text, strlen(text), secrets[k].p, secrets[k].len))
            return 1;
    return secrets_lost;
}

/* User-typed text fit for a message: in buf, at most 40 characters, a URL's userinfo
   replaced ("redis://:***@host"); or NULL when it must not be shown at all. */
static const char *shown(const char *arg, char *buf, size_t cap)
{
    const char *start, *at = userinfo_end(arg, &start);
    if (holds_secret(arg))
        return NULL;
    if (!at) {
        snprintf(buf, cap, "%.40s", arg);
        return buf;
    }
    const char *colon = memchr(start, ':', (size_t)(at - start));
    int keep = (int)(colon ? colon + 1 - arg : start - arg);   /* scheme, user and ':' */
    snprintf(buf, cap, "%.*s***%.30s", keep > 30 ? 30 : keep, arg, at);
    return buf;
}

/* Copies msg into out (of cap bytes) with every remembered password replaced by "***". */
static void redact(const char *msg, char *out, size_t cap)
{
    size_t n = 0, len = strlen(msg);
    for (size_t i = 0; i < len && n + 4 < cap;) {
        int hit = 0;
        for (int k = 0; k < nsecrets && !hit; k++)
            if (secrets[k].len <= len - i && !memcmp(msg + i, secrets[k].p, secrets[k].len)) {
                memcpy(out + n, "***", 3);
                n += 3;
                i += secrets[k].len;
                hit = 1;
            }
        if (!hit)
            out[n++] = msg[i++];
    }
    out[n] = 0;
}

/* One line on standard error, "redkv: ...", and never a password (the last line of defence:
   callers already show user text only through shown()). */
static void complain(const char *fmt, ...)
{
    char msg[1024], clean[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    redact(msg, clean, sizeof clean);
    fprintf(stderr, "redkv: %s\n", clean);
}

/* --tls, as redis-cli's: the redis:// URL (or the default) becomes rediss://; a URL that
   says rediss:// already stays. 0, or EXIT_USAGE after a message. */
static int tls_url(const char **url, char **owned)
{
    const char *u = *url ? *url : REDKV_DEFAULT_URL;
    const char *rest = NULL;
    if (!strncmp(u, "rediss://", 9) || !strncmp(u, "rediss+cluster://", 17))
        return 0;
    if (!strncmp(u, "redis://", 8))
        rest = u + 8;
    else if (!strncmp(u, "redis+cluster://", 16))
        rest = u + 16;
    if (!rest)
        return complain("--tls needs a redis:// URL"), EXIT_USAGE;
    size_t n = strlen(rest) + 24;
    if (!(*owned = malloc(n)))
        return complain("out of memory"), EXIT_USAGE;
    snprintf(*owned, n, "%s%s", rest == u + 8 ? "rediss://" : "rediss+cluster://", rest);
    *url = *owned;
    return 0;
}

/* ---- parsing --------------------------------------------------------------------------- */

enum opt_id {
    O_URL, O_NAMESPACE, O_NO_NAMESPACE, O_CHILD, O_DB, O_PORT, O_USER, O_PASSWORD, O_TIMEOUT,
    O_MAX_VALUE, O_HELP, O_VERSION, O_EXPIRES_IN, O_KEEP_TTL, O_RENEW_FOR,
    O_TLS, O_CACERT, O_CERT, O_KEY, O_SNI, O_INSECURE, O_BY
};

typedef struct opt_def {
    enum opt_id id;
    char short_name;          /* 0: none */
    const char *long_name;
    int takes_value;
} opt_def;

static const opt_def GLOBAL_OPTS[] = {
    {O_URL, 'u', "url", 1},          {O_NAMESPACE, 'n', "namespace", 1},
    {O_NO_NAMESPACE, 0, "no-namespace", 0}, {O_CHILD, 'c', "child", 1},
    {O_DB, 0, "db", 1},              {O_PORT, 0, "port", 1},
    {O_USER, 0, "user", 1},          {O_PASSWORD, 0, "password", 1},
    {O_TIMEOUT, 0, "timeout", 1},    {O_MAX_VALUE, 0, "max-value", 1},
    {O_HELP, 'h', "help", 0},        {O_VERSION, 0, "version", 0},
    {O_TLS, 0, "tls", 0},            {O_CACERT, 0, "cacert", 1},
    {O_CERT, 0, "cert", 1},          {O_KEY, 0, "key", 1},
    {O_SNI, 0, "sni", 1},            {O_INSECURE, 0, "insecure", 0},
};

static const opt_def COMMAND_OPTS[] = {
    {O_EXPIRES_IN, 0, "expires-in", 1}, {O_KEEP_TTL, 0, "keep-ttl", 0},
    {O_RENEW_FOR, 0, "renew-for", 1},   {O_HELP, 'h', "help", 0},
    {O_BY, 0, "by", 1},
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* Is arg an option (rather than a positional argument)? "-" alone is a value (stdin). */
static int is_option(const char *arg) { return arg[0] == '-' && arg[1] != 0; }

/* "unknown option": its name (the first namelen bytes of arg), if it may be shown. */
static void unknown_option(const char *arg, size_t namelen)
{
    char name[48], buf[96];
    snprintf(name, sizeof name, "%.*s", (int)(namelen < sizeof name ? namelen : sizeof name - 1), arg);
    const char *text = holds_secret(arg) ? NULL : shown(name, buf, sizeof buf);
    if (text)
        complain("unknown option %s (see redkv --help)", text);
    else
        complain("unknown option (see redkv --help)");
}

/* Reads the option at argv[*i] (advancing *i past its value, if any) into *def and *val.
   Returns 0, or -1 after a message. Only the option's name is ever echoed, never a value. */
static int read_option(const opt_def *defs, size_t ndefs, const opt_def *other, size_t nother,
                       const char *where, int argc, char **argv, int *i, const opt_def **def,
                       const char **val)
{
    const char *arg = argv[*i];
    const char *attached = NULL;       /* --name=VALUE, or -xVALUE */
    size_t namelen;
    const opt_def *d = NULL;
    int is_long = arg[1] == '-';
    if (is_long) {
        const char *eq = strchr(arg + 2, '=');
        namelen = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        attached = eq ? eq + 1 : NULL;
        for (size_t k = 0; k < ndefs && !d; k++)
            if (strlen(defs[k].long_name) == namelen && !strncmp(defs[k].long_name, arg + 2, namelen))
                d = &defs[k];
    } else {
        namelen = 1;
        attached = arg[2] ? arg + 2 : NULL;
        for (size_t k = 0; k < ndefs && !d; k++)
            if (defs[k].short_name && defs[k].short_name == arg[1])
                d = &defs[k];
    }
    if (!d) {
        const char *misplaced = NULL;  /* known elsewhere: say where it belongs */
        for (size_t k = 0; k < nother && !misplaced; k++)
            if (is_long ? strlen(other[k].long_name) == namelen &&
                              !strncmp(other[k].long_name, arg + 2, namelen)
                        : other[k].short_name == arg[1])
                misplaced = other[k].long_name;
        if (misplaced)
            complain("--%s belongs %s (see redkv --help)", misplaced, where);
        else
            unknown_option(arg, is_long ? namelen + 2 : 2);
        return -1;
    }
    if (!d->takes_value) {
        if (attached) {
            if (is_long)
                complain("--%s takes no value", d->long_name);
            else
                complain("-%c takes no value", d->short_name);
            return -1;
        }
        *val = NULL;
    } else if (attached) {
        *val = attached;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        complain("--%s needs a value", d->long_name);
        return -1;
    }
    *def = d;
    return 0;
}

/* A whole decimal number in [min, max]. */
static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    if (!*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A whole decimal number that fits int64_t (incr --by; it may be negative). */
static int parse_int64(const char *s, int64_t *out)
{
    char *end;
    if (!*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* DUR: a number, possibly with a decimal fraction, and a unit (none = seconds, s, ms, m, h, d),
   to milliseconds; it must be positive and a whole number of milliseconds. */
static int parse_duration(const char *s, int64_t *ms, const char **why)
{
    uint64_t whole = 0, frac = 0, scale = 1, unit;
    const char *p = s;
    *why = "expected a number and a unit, as 30, 1.5s, 500ms, 10m, 2h or 3d";
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > UINT64_C(1000000000000000))
            return *why = "too long", -1;
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        if (*++p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale >= UINT64_C(1000000000))
                return *why = "too many decimals", -1;
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
    }
    if (!strcmp(p, "") || !strcmp(p, "s"))
        unit = 1000;
    else if (!strcmp(p, "ms"))
        unit = 1;
    else if (!strcmp(p, "m"))
        unit = 60 * 1000;
    else if (!strcmp(p, "h"))
        unit = 3600 * 1000;
    else if (!strcmp(p, "d"))
        unit = 86400 * 1000;
    else
        return -1;
    if (whole > (uint64_t)INT64_MAX / 2 / unit)
        return *why = "too long", -1;
    if (frac * unit % scale)
        return *why = "finer than a millisecond", -1;
    uint64_t total = whole * unit + frac * unit / scale;
    if (total == 0)
        return *why = "it must be more than 0", -1;
    *ms = (int64_t)total;
    return 0;
}

/* ---- the commands ---------------------------------------------------------------------- */

enum cmd_id { C_SET, C_GET, C_DELETE, C_DELETE_ALL, C_EXISTS, C_EXPIRES_IN, C_PING, C_INCR };

typedef struct cmd_def {
    enum cmd_id id;
    const char *name;
    int nargs;                /* positional arguments */
    const char *args;         /* for messages */
} cmd_def;

static const cmd_def COMMANDS[] = {
    {C_SET, "set", 2, "KEY VALUE"},      {C_GET, "get", 1, "KEY"},
    {C_DELETE, "delete", 1, "KEY"},      {C_DELETE_ALL, "delete-all", 0, ""},
    {C_EXISTS, "exists", 1, "KEY"},      {C_EXPIRES_IN, "expires-in", 1, "KEY"},
    {C_PING, "ping", 0, ""},             {C_INCR, "incr", 1, "KEY"},
};

typedef struct cli {
    redkv_options opt;
    const char **children;
    int nchildren;
    const cmd_def *cmd;
    const char *pos[2];
    int npos;
    int64_t expires_in_ms;    /* set, incr --expires-in */
    int64_t by;               /* incr --by */
    int have_by;              /* else 1 */
    int keep_ttl;             /* set --keep-ttl */
    int64_t renew_for_ms;     /* get --renew-for */
    char *stdin_value;        /* set KEY - */
    size_t stdin_len;
    int progress_shown;
    int tls;                  /* --tls: redis:// becomes rediss:// */
    char *tls_url;            /* that URL */
} cli;

/* The longest value read from standard input unless --max-value says otherwise: the
   library's default max_value_len, Redis's own proto-max-bulk-len. */
#define DEFAULT_MAX_VALUE ((size_t)512 << 20)

enum stdin_result { STDIN_OK, STDIN_UNREADABLE, STDIN_NOMEM, STDIN_TOO_LONG };

/* Reads standard input (binary) into *out, at most limit bytes. Reading stops at the first
   byte past the limit (STDIN_TOO_LONG), so an endless input never fills the memory. */
static enum stdin_result read_stdin(size_t limit, char **out, size_t *len)
{
    size_t most = limit + 1;               /* a byte past the limit proves it too long */
    size_t cap = most < 65536 ? most : 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return STDIN_NOMEM;
    for (;;) {
        if (n == cap) {
            size_t want = cap > most / 2 ? most : cap * 2;
            char *bigger = n == most ? NULL : realloc(buf, want);
            if (!bigger) {
                free(buf);
                return n == most ? STDIN_TOO_LONG : STDIN_NOMEM;
            }
            buf = bigger;
            cap = want;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return STDIN_UNREADABLE;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    *out = buf;
    *len = n;
    return STDIN_OK;
}

/* The value of "set KEY -": 0, or the exit code after a message. */
static int take_stdin_value(cli *c)
{
    size_t limit = c->opt.max_value_len ? c->opt.max_value_len : DEFAULT_MAX_VALUE;
    switch (read_stdin(limit, &c->stdin_value, &c->stdin_len)) {
    case STDIN_OK:
        return EXIT_DONE;
    case STDIN_UNREADABLE:
        complain("cannot read standard input: %s", strerror(errno));
        return EXIT_USAGE;
    case STDIN_NOMEM:
        complain("out of memory reading standard input");
        return EXIT_SERVER;
    case STDIN_TOO_LONG:
        complain("the value on standard input is longer than %zu bytes (see --max-value)", limit);
        return EXIT_SERVER;
    }
    return EXIT_SERVER;
}

static int exit_code(int status)
{
    switch (status) {
    case REDKV_OK: return EXIT_DONE;
    case REDKV_MISSING: return EXIT_MISSING;
    case REDKV_EINVAL:
    case REDKV_ECONFIG: return EXIT_USAGE;
    case REDKV_ECONN:
    case REDKV_ETIMEDOUT:
    case REDKV_EAUTH:
    case REDKV_ETLS: return EXIT_CONN;
    default: return EXIT_SERVER;
    }
}

/* An error status: the library's message (which never holds the password), one line. */
static int fail(int status)
{
    const char *msg = redkv_last_error();
    if (!msg || !*msg || !strcmp(msg, "no error"))
        msg = redkv_strerror(status);
    complain("%s", msg);
    return exit_code(status);
}

static void show_progress(uint64_t deleted, void *arg)
{
    cli *c = arg;
    fprintf(stderr, "\rredkv: deleted %" PRIu64 " key%s", deleted, deleted == 1 ? "" : "s");
    fflush(stderr);
    c->progress_shown = 1;
}

/* Writes to standard output. A reader that went away (EPIPE: `redkv get k | head -c 10`)
   ends the run quietly with exit 4, as any other failed write does with a message. */
static int write_all(const void *p, size_t n)
{
    if ((n && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0) {
        if (errno != EPIPE)
            complain("cannot write to standard output: %s", strerror(errno));
        return EXIT_SERVER;
    }
    return EXIT_DONE;
}

static int run(cli *c, redkv *s)
{
    const char *key = c->pos[0];
    size_t klen = key ? strlen(key) : 0;
    int rc;
    switch (c->cmd->id) {
    case C_SET: {
        const char *val = c->stdin_value ? c->stdin_value : c->pos[1];
        size_t vlen = c->stdin_value ? c->stdin_len : strlen(c->pos[1]);
        rc = redkv_set(s, key, klen, val, vlen, c->expires_in_ms, c->keep_ttl ? REDKV_KEEP_TTL : 0);
        return rc == REDKV_OK ? EXIT_DONE : fail(rc);
    }
    case C_GET: {
        void *val = NULL;
        size_t vlen = 0;
        rc = redkv_get(s, key, klen, c->renew_for_ms, &val, &vlen);
        if (rc == REDKV_MISSING) {
            complain("no such key");
            return EXIT_MISSING;
        }
        if (rc != REDKV_OK)
            return fail(rc);
        rc = write_all(val, vlen);
        redkv_free(val);
        return rc;
    }
    case C_DELETE:
        rc = redkv_delete(s, key, klen);
        return rc == REDKV_OK ? EXIT_DONE : fail(rc);
    case C_DELETE_ALL:
        rc = redkv_delete_all(s);
        if (c->progress_shown)
            fputc('\n', stderr);
        return rc == REDKV_OK ? EXIT_DONE : fail(rc);
    case C_EXISTS:
        rc = redkv_exists(s, key, klen);
        if (rc < 0)
            return fail(rc);
        if (write_all(rc ? "true\n" : "false\n", rc ? 5 : 6) != EXIT_DONE)
            return EXIT_SERVER;
        return rc ? EXIT_DONE : EXIT_MISSING;
    case C_EXPIRES_IN: {
        int64_t ms = 0;
        char line[32];
        rc = redkv_expires_in(s, key, klen, &ms);
        if (rc == REDKV_MISSING) {
            complain("no such key");
            return EXIT_MISSING;
        }
        if (rc == REDKV_PERSISTENT)
            return write_all("persistent\n", 11);
        if (rc != REDKV_OK)
            return fail(rc);
        int64_t secs = ms / 1000 + (ms % 1000 != 0);   /* up: a live key never shows 0 */
        int n = snprintf(line, sizeof line, "%" PRId64 "\n", secs < 1 ? 1 : secs);
        return write_all(line, (size_t)n);
    }
    case C_PING:
        rc = redkv_ping(s);
        if (rc < 0)
            return fail(rc);
        return write_all("PONG\n", 5);
    case C_INCR: {
        int64_t value = 0;
        char line[32];
        rc = redkv_incr(s, key, klen, c->have_by ? c->by : 1, c->expires_in_ms, &value);
        if (rc != REDKV_OK)
            return fail(rc);
        int n = snprintf(line, sizeof line, "%" PRId64 "\n", value);
        return write_all(line, (size_t)n);
    }
    }
    return EXIT_SERVER;
}

/* Remembers every password on the command line and in the environment before any message
   can be printed: a stray one may come before the option that names it. */
static void remember_secrets(int argc, char **argv)
{
    const char *env = getenv("REDKV_PASSWORD");
    if (env)
        remember_secret(env, strlen(env));
    env = getenv("REDKV_URL");
    if (env)
        remember_url_secret(env);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--password"))
            remember_secret(next, strlen(next));
        else if (!strncmp(a, "--password=", 11))
            remember_secret(a + 11, strlen(a + 11));
        else if (!strcmp(a, "--url") || !strcmp(a, "-u"))
            remember_url_secret(next);
        else if (!strncmp(a, "--url=", 6))
            remember_url_secret(a + 6);
        else if (!strncmp(a, "-u", 2))
            remember_url_secret(a + 2);
    }
}

/* A whole number of bytes in [1, max]. */
static int parse_size(const char *s, uint64_t max, size_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > max || v > SIZE_MAX - 1)
        return -1;
    *out = (size_t)v;
    return 0;
}

enum info { INFO_NONE, INFO_HELP, INFO_VERSION };   /* --help or --version instead of a command */

/* Global options, then the command, then its arguments and options. */
static int parse(cli *c, int argc, char **argv, enum info *info)
{
    char buf[96];
    int i = 1, ended = 0;
    const char *ns = NULL;
    const opt_def *d;
    const char *val, *why;
    long n;

    for (; i < argc && !ended && is_option(argv[i]); i++) {
        if (!strcmp(argv[i], "--")) {
            ended = 1;
            break;
        }
        if (read_option(GLOBAL_OPTS, COUNT(GLOBAL_OPTS), COMMAND_OPTS, COUNT(COMMAND_OPTS),
                        "after the command", argc, argv, &i, &d, &val))
            return EXIT_USAGE;
        switch (d->id) {
        case O_URL: c->opt.url = val; break;
        case O_NAMESPACE:
            if (!*val)
                return complain("the namespace is empty (use --no-namespace for none)"), EXIT_USAGE;
            ns = val;
            break;
        case O_NO_NAMESPACE: c->opt.no_namespace = true; break;
        case O_CHILD:
            if (!*val)
                return complain("the child namespace is empty"), EXIT_USAGE;
            c->children[c->nchildren++] = val;
            break;
        case O_DB:
            if (parse_int(val, 0, 1000000000L, &n))
                return complain("--db needs a database number (0 or more)"), EXIT_USAGE;
            c->opt.db = (int)n;
            break;
        case O_PORT:
            if (parse_int(val, 1, 65535, &n))
                return complain("--port needs a number from 1 to 65535"), EXIT_USAGE;
            c->opt.port = (int)n;
            break;
        case O_USER: c->opt.username = val; break;
        case O_PASSWORD: c->opt.password = val; break;
        case O_TIMEOUT:
            if (parse_int(val, 1, 86400000L, &n))
                return complain("--timeout needs milliseconds, a whole number from 1"), EXIT_USAGE;
            c->opt.connect_timeout_ms = c->opt.command_timeout_ms = (int)n;
            break;
        case O_MAX_VALUE:
            if (parse_size(val, UINT64_C(1) << 40, &c->opt.max_value_len))
                return complain("--max-value needs a number of bytes from 1"), EXIT_USAGE;
            break;
        case O_HELP: *info = INFO_HELP; return EXIT_DONE;
        case O_VERSION: *info = INFO_VERSION; return EXIT_DONE;
        case O_TLS: c->tls = 1; break;
        case O_CACERT: c->opt.tls_ca_file = val; break;
        case O_CERT: c->opt.tls_cert_file = val; break;
        case O_KEY: c->opt.tls_key_file = val; break;
        case O_SNI: c->opt.tls_server_name = val; break;
        case O_INSECURE: c->opt.tls_no_verify = true; break;
        default: break;
        }
    }
    if (ended)
        i++;
    if (ns && c->opt.no_namespace)
        return complain("--namespace and --no-namespace are mutually exclusive"), EXIT_USAGE;
    c->opt.ns = ns;
    if (i >= argc)
        return complain("no command given (see redkv --help)"), EXIT_USAGE;
    for (size_t k = 0; k < COUNT(COMMANDS) && !c->cmd; k++)
        if (!strcmp(argv[i], COMMANDS[k].name))
            c->cmd = &COMMANDS[k];
    if (!c->cmd) {
        if (is_option(argv[i]))   /* only after "--" */
            complain("expected a command after --, not an option (see redkv --help)");
        else if (!shown(argv[i], buf, sizeof buf))
            complain("unknown command (see redkv --help)");   /* holds a password */
        else
            complain("unknown command \"%s\" (see redkv --help)", buf);
        return EXIT_USAGE;
    }

    int have_expiry = 0;       /* a "--" before the command ends every option, as usual */
    for (i++; i < argc; i++) {
        if (!ended && !strcmp(argv[i], "--")) {
            ended = 1;
            continue;
        }
        if (ended || !is_option(argv[i])) {
            if (c->npos == c->cmd->nargs) {
                if (c->cmd->nargs)
                    complain("too many arguments: %s takes %s", c->cmd->name, c->cmd->args);
                else
                    complain("too many arguments: %s takes none", c->cmd->name);
                return EXIT_USAGE;
            }
            c->pos[c->npos++] = argv[i];
            continue;
        }
        if (read_option(COMMAND_OPTS, COUNT(COMMAND_OPTS), GLOBAL_OPTS, COUNT(GLOBAL_OPTS),
                        "before the command", argc, argv, &i, &d, &val))
            return EXIT_USAGE;
        if (d->id == O_HELP) {
            *info = INFO_HELP;
            return EXIT_DONE;
        }
        int fits = (d->id == O_RENEW_FOR && c->cmd->id == C_GET) ||
                   ((d->id == O_EXPIRES_IN || d->id == O_KEEP_TTL) && c->cmd->id == C_SET) ||
                   ((d->id == O_EXPIRES_IN || d->id == O_BY) && c->cmd->id == C_INCR);
        if (!fits) {
            complain("%s takes no option --%s", c->cmd->name, d->long_name);
            return EXIT_USAGE;
        }
        if (d->id == O_KEEP_TTL) {
            c->keep_ttl = 1;
        } else if (d->id == O_BY) {
            if (parse_int64(val, &c->by)) {
                if (shown(val, buf, sizeof buf))
                    complain("--by: \"%s\" is not a whole number (64 bits)", buf);
                else
                    complain("--by: not a whole number (64 bits)");
                return EXIT_USAGE;
            }
            c->have_by = 1;
        } else if (parse_duration(val, d->id == O_RENEW_FOR ? &c->renew_for_ms : &c->expires_in_ms,
                                  &why)) {
            if (shown(val, buf, sizeof buf))
                complain("--%s: bad duration \"%s\": %s", d->long_name, buf, why);
            else
                complain("--%s: bad duration: %s", d->long_name, why);
            return EXIT_USAGE;
        } else if (d->id == O_EXPIRES_IN) {
            have_expiry = 1;
        }
    }
    if (c->keep_ttl && have_expiry)
        return complain("--expires-in and --keep-ttl are mutually exclusive"), EXIT_USAGE;
    if (c->npos < c->cmd->nargs) {
        complain("missing arguments: usage: redkv [OPTIONS] %s %s", c->cmd->name, c->cmd->args);
        return EXIT_USAGE;
    }
    return EXIT_DONE;
}

/* Reopens each closed descriptor among 0, 1 and 2 on /dev/null, so that nothing opened
   later (a socket to Redis) can take its number and receive what is meant for standard
   output or error. 0, or -1 when /dev/null cannot be opened. */
static int guard_standard_fds(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd < 0)
            return -1;
        if (null_fd != fd) {           /* cannot happen: lower ones are open by now */
            int moved = dup2(null_fd, fd);
            close(null_fd);
            if (moved != fd)
                return -1;
        }
    }
    return 0;
}

/* "redkv X.Y.Z": the version of the library linked in. */
static int print_version(void)
{
    char line[64];
    int n = snprintf(line, sizeof line, "redkv %s\n", redkv_version());
    return write_all(line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
}

/* Opens the store and its child namespaces, runs the command: the exit code. */
static int open_and_run(cli *c)
{
    redkv *root = NULL, *s;
    int st = redkv_open(&root, &c->opt);
    if (st != REDKV_OK)
        return fail(st);
    s = root;
    for (int k = 0; k < c->nchildren && st == REDKV_OK; k++) {
        redkv *child;
        st = redkv_with_namespace(s, c->children[k], &child);
        if (st == REDKV_OK) {
            if (s != root)
                redkv_close(s);
            s = child;
        }
    }
    int rc = st == REDKV_OK ? run(c, s) : fail(st);
    if (s != root)
        redkv_close(s);
    redkv_close(root);
    return rc;
}

int main(int argc, char **argv)
{
    cli c;
    int rc;
    enum info info = INFO_NONE;
    if (guard_standard_fds() != 0)
        return EXIT_SERVER;            /* no /dev/null: nothing can be said, or done, safely */
    signal(SIGPIPE, SIG_IGN);          /* a reader gone is EPIPE from write: see write_all */
    memset(&c, 0, sizeof c);
    c.children = malloc(sizeof *c.children * (size_t)(argc > 0 ? argc : 1));
    if (!c.children) {
        complain("out of memory");
        return EXIT_SERVER;
    }
    remember_secrets(argc, argv);
    rc = parse(&c, argc, argv, &info);
    if (rc == EXIT_DONE && info == INFO_HELP)
        rc = write_all(USAGE, sizeof USAGE - 1);
    else if (rc == EXIT_DONE && info == INFO_VERSION)
        rc = print_version();
    if (rc != EXIT_DONE || info != INFO_NONE) {
        free(c.children);
        return rc;
    }
    if (!c.opt.url) {
        const char *env = getenv("REDKV_URL");
        c.opt.url = env && *env ? env : NULL;
    }
    if (!c.opt.password) {
        const char *env = getenv("REDKV_PASSWORD");
        c.opt.password = env && *env ? env : NULL;
    }
    if (c.tls && (rc = tls_url(&c.opt.url, &c.tls_url)) != EXIT_DONE) {
        free(c.children);
        return rc;
    }
    if (c.cmd->id == C_SET && !strcmp(c.pos[1], "-"))
        rc = take_stdin_value(&c);
    if (rc == EXIT_DONE && c.cmd->id == C_DELETE_ALL && isatty(STDERR_FILENO)) {
        c.opt.progress = show_progress;
        c.opt.progress_arg = &c;
    }
    if (rc == EXIT_DONE)
        rc = open_and_run(&c);
    free(c.stdin_value);
    free(c.tls_url);
    free(c.children);
    return rc;
}
