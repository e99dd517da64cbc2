/* redkv.c - the command-line tool: one store operation per run, for shell scripts.
 *
 *   redkv [OPTIONS] COMMAND [ARGS]     (see usage() below, and doc/redkv.1)
 *
 * Uses the public header alone. Every argument is checked before the store is opened, so
 * bad input (exit 2) never reaches the server. A password is never printed: it is not
 * echoed in any message, and neither is the URL that may hold one. */
#include <errno.h>
#include <inttypes.h>
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
    "      --tls            use TLS: redis:// URLs become rediss:// (needs a TLS build)\n"
    "      --cacert FILE    CA certificates (PEM) to verify the server with (default: the system's)\n"
    "      --cert FILE      client certificate (PEM)    --key FILE   its private key (PEM)\n"
    "      --sni NAME       server name to send and check (default: the URL's host)\n"
    "      --insecure       do not verify the server's certificate or name\n"
    "  -h, --help           show this help\n"
    "\n"
    "COMMANDS\n"
    "  set KEY VALUE [--expires-in DUR | --keep-ttl]    VALUE \"-\" reads standard input\n"
    "  get KEY [--renew-for DUR]    the value, as is, on standard output\n"
    "  delete KEY\n"
    "  delete-all                   the namespace and its children\n"
    "  exists KEY                   prints true or false\n"
    "  expires-in KEY               prints the seconds left, or \"persistent\"\n"
    "  ping                         prints PONG when the server answers\n"
    "\n"
    "DUR: 30 (seconds), 1.5s, 500ms, 10m, 2h, 3d.  \"--\" ends the options.\n"
    "EXIT: 0 done; 1 missing or false; 2 usage or bad input; 3 connection, timeout, auth or TLS;\n"
    "      4 server or protocol error\n";

/* One line on standard error, "redkv: ...". */
static void complain(const char *fmt, ...)
{
    va_list ap;
    fputs("redkv: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
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
    O_HELP, O_EXPIRES_IN, O_KEEP_TTL, O_RENEW_FOR,
    O_TLS, O_CACERT, O_CERT, O_KEY, O_SNI, O_INSECURE
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
    {O_TIMEOUT, 0, "timeout", 1},    {O_HELP, 'h', "help", 0},
    {O_TLS, 0, "tls", 0},            {O_CACERT, 0, "cacert", 1},
    {O_CERT, 0, "cert", 1},          {O_KEY, 0, "key", 1},
    {O_SNI, 0, "sni", 1},            {O_INSECURE, 0, "insecure", 0},
};

static const opt_def COMMAND_OPTS[] = {
    {O_EXPIRES_IN, 0, "expires-in", 1}, {O_KEEP_TTL, 0, "keep-ttl", 0},
    {O_RENEW_FOR, 0, "renew-for", 1},   {O_HELP, 'h', "help", 0},
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* Is arg an option (rather than a positional argument)? "-" alone is a value (stdin). */
static int is_option(const char *arg) { return arg[0] == '-' && arg[1] != 0; }

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
            complain("unknown option %s%.*s (see redkv --help)", is_long ? "--" : "-", (int)namelen,
                     arg + (is_long ? 2 : 1));
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

enum cmd_id { C_SET, C_GET, C_DELETE, C_DELETE_ALL, C_EXISTS, C_EXPIRES_IN, C_PING };

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
    {C_PING, "ping", 0, ""},
};

typedef struct cli {
    redkv_options opt;
    const char **children;
    int nchildren;
    const cmd_def *cmd;
    const char *pos[2];
    int npos;
    int64_t expires_in_ms;    /* set --expires-in */
    int keep_ttl;             /* set --keep-ttl */
    int64_t renew_for_ms;     /* get --renew-for */
    char *stdin_value;        /* set KEY - */
    size_t stdin_len;
    int progress_shown;
    int tls;                  /* --tls: redis:// becomes rediss:// */
    char *tls_url;            /* that URL */
} cli;

/* Reads all of standard input (binary). */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (n == cap) {
            char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    *out = buf;
    *len = n;
    return 0;
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

static int write_all(const void *p, size_t n)
{
    if ((n && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0) {
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
    }
    return EXIT_SERVER;
}

/* Global options, then the command, then its arguments and options. */
static int parse(cli *c, int argc, char **argv, int *help)
{
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
        case O_HELP: *help = 1; return EXIT_DONE;
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
        else if (c->opt.password && !strcmp(argv[i], c->opt.password))
            complain("unknown command (see redkv --help)");   /* a stray password: not echoed */
        else
            complain("unknown command \"%.40s\" (see redkv --help)", argv[i]);
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
            *help = 1;
            return EXIT_DONE;
        }
        int fits = (d->id == O_RENEW_FOR && c->cmd->id == C_GET) ||
                   ((d->id == O_EXPIRES_IN || d->id == O_KEEP_TTL) && c->cmd->id == C_SET);
        if (!fits) {
            complain("%s takes no option --%s", c->cmd->name, d->long_name);
            return EXIT_USAGE;
        }
        if (d->id == O_KEEP_TTL) {
            c->keep_ttl = 1;
        } else if (parse_duration(val, d->id == O_RENEW_FOR ? &c->renew_for_ms : &c->expires_in_ms,
                                  &why)) {
            complain("--%s: bad duration \"%.40s\": %s", d->long_name, val, why);
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

int main(int argc, char **argv)
{
    cli c;
    int help = 0, rc;
    memset(&c, 0, sizeof c);
    c.children = malloc(sizeof *c.children * (size_t)(argc > 0 ? argc : 1));
    if (!c.children) {
        complain("out of memory");
        return EXIT_SERVER;
    }
    rc = parse(&c, argc, argv, &help);
    if (rc != EXIT_DONE || help) {
        if (help)
            fputs(USAGE, stdout);
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
    if (c.cmd->id == C_SET && !strcmp(c.pos[1], "-") && read_stdin(&c.stdin_value, &c.stdin_len)) {
        complain("cannot read standard input: %s", strerror(errno));
        free(c.tls_url);
        free(c.children);
        return EXIT_USAGE;
    }
    if (c.cmd->id == C_DELETE_ALL && isatty(STDERR_FILENO)) {
        c.opt.progress = show_progress;
        c.opt.progress_arg = &c;
    }

    redkv *root = NULL, *s;
    int st = redkv_open(&root, &c.opt);
    if (st != REDKV_OK) {
        rc = fail(st);
    } else {
        s = root;
        for (int k = 0; k < c.nchildren && st == REDKV_OK; k++) {
            redkv *child;
            st = redkv_with_namespace(s, c.children[k], &child);
            if (st == REDKV_OK) {
                if (s != root)
                    redkv_close(s);
                s = child;
            }
        }
        rc = st == REDKV_OK ? run(&c, s) : fail(st);
        if (s != root)
            redkv_close(s);
        redkv_close(root);
    }
    free(c.stdin_value);
    free(c.tls_url);
    free(c.children);
    return rc;
}
