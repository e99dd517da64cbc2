/* parse.c - an incremental RESP2 (and RESP3) parser that never allocates for scalar replies.
 *
 * A reply is kept as a flat pre-order list of nodes; strings are offsets into the reply's
 * bytes until the reply completes, so the caller may move its buffer between calls. Only
 * complete elements become nodes, and parsing resumes at the first incomplete one. */
#include "fmacros.h"

#include <string.h>

#include "resp.h"

#define NODES(p) ((p)->nodes ? (p)->nodes : (p)->inline_nodes)
#define INLINE_NODES (sizeof(((resp_parser *)0)->inline_nodes) / sizeof(resp_reply))

/* The hot helpers stay inlined in the RESP2 path even though RESP3's code calls them too. */
#if defined(__GNUC__)
#define HOT_INLINE __attribute__((always_inline)) inline
#else
#define HOT_INLINE
#endif

static size_t pick(size_t v, size_t dflt) { return v ? v : dflt; }

void resp_parser_init(resp_parser *p, const resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim)
        p->lim = *lim;
    p->lim.max_bulk = pick(p->lim.max_bulk, RESP_DEFAULT_MAX_BULK);
    p->lim.max_elements = pick(p->lim.max_elements, RESP_DEFAULT_MAX_ELEMENTS);
    p->lim.max_depth = pick(p->lim.max_depth, RESP_DEFAULT_MAX_DEPTH);
    p->lim.max_line = pick(p->lim.max_line, RESP_DEFAULT_MAX_LINE);
    if (p->lim.max_depth > RESP_HARD_MAX_DEPTH)
        p->lim.max_depth = RESP_HARD_MAX_DEPTH;
    p->cap = INLINE_NODES;
}

void resp_parser_reset(resp_parser *p)
{
    p->nnodes = p->pos = p->scan = p->depth = p->want = 0;
}

void resp_parser_free(resp_parser *p)
{
    resp_free(p->nodes);
    p->nodes = NULL;
    p->cap = INLINE_NODES;
    resp_parser_reset(p);
}

const char *resp_parser_error(const resp_parser *p) { return p->error ? p->error : "no error"; }
size_t resp_parser_want(const resp_parser *p) { return p->want; }

const resp_reply *resp_element(const resp_reply *a, size_t i)
{
    if (a->span == a->len + 1)    /* no element has elements: they sit in a row */
        return a + 1 + i;
    const resp_reply *e = a + 1;
    while (i--)
        e += e->span;
    return e;
}

static long long fail(resp_parser *p, const char *why)
{
    p->error = why;
    resp_parser_reset(p);
    return RESP_EPROTO;
}

/* Parses a whole line as a signed decimal with no sign but '-', no spaces, no overflow. */
static HOT_INLINE int parse_ll(const char *s, size_t n, long long *out)
{
    int neg = n > 0 && s[0] == '-';
    size_t i = (size_t)neg;
    unsigned long long v = 0, max = neg ? 9223372036854775808ull : 9223372036854775807ull;
    if (i == n || n - i > 19)
        return -1;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        /* 18 digits cannot overflow: divide only for the 19th */
        if (d > 9 || (n - i == 1 && n - neg == 19 && v > (max - d) / 10))
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0ull - v) : (long long)v;
    return 0;
}

/* Finds the line starting at p->pos. Returns 1 and sets *eol to the CR's offset when a
   whole "...\r\n" is there, 0 when more bytes are needed, -1 on a protocol error. */
static HOT_INLINE int find_line(resp_parser *p, const char *buf, size_t len, size_t *eol)
{
    size_t from = p->scan > p->pos ? p->scan : p->pos;
    /* Most lines are short ("$32", ":1234"): one byte loop finds the CR and checks for a
       stray LF at once; a long line goes on with memchr. */
    const char *q = buf + from, *stop = buf + (len - from > 32 ? from + 32 : len);
    while (q < stop && *q != '\r' && *q != '\n')
        q++;
    const char *cr;
    if (q < stop) {
        if (*q == '\n') {
            fail(p, "line ends with LF without CR");
            return -1;
        }
        cr = q;
    } else {
        cr = memchr(q, '\r', len - (size_t)(q - buf));
        if (memchr(q, '\n', (cr ? (size_t)(cr - buf) : len) - (size_t)(q - buf))) {
            fail(p, "line ends with LF without CR");
            return -1;
        }
    }
    size_t end = cr ? (size_t)(cr - buf) : len;
    if (end - p->pos > p->lim.max_line + 1) {
        fail(p, "line longer than the limit");
        return -1;
    }
    if (!cr || end + 1 >= len) {
        p->scan = end;            /* resume the search here; the CR, if any, is seen again */
        p->want = 0;
        return 0;
    }
    if (buf[end + 1] != '\n') {
        fail(p, "CR not followed by LF");
        return -1;
    }
    *eol = end;
    return 1;
}

static HOT_INLINE resp_reply *new_node(resp_parser *p)
{
    if (p->nnodes == p->cap) {
        size_t cap = p->cap * 2;
        resp_reply *n = resp_realloc(p->nodes, cap * sizeof *n);
        if (!n)
            return NULL;
        if (!p->nodes)
            memcpy(n, p->inline_nodes, sizeof p->inline_nodes);
        p->nodes = n;
        p->cap = cap;
    }
    resp_reply *r = &NODES(p)[p->nnodes++];
    memset(r, 0, sizeof *r);
    r->span = 1;
    return r;
}

#ifndef REDKV_NO_CACHE
/* An attribute's node while it is open; it is dropped when it completes. Never returned. */
#define RESP_ATTRIBUTE 0x7f
#if defined(__GNUC__)
#define IS_ATTRIBUTE(node) __builtin_expect((node).type == RESP_ATTRIBUTE, 0)
#else
#define IS_ATTRIBUTE(node) ((node).type == RESP_ATTRIBUTE)
#endif
#else
#define IS_ATTRIBUTE(node) 0
#endif

/* Counts the completed element against the open arrays; returns 1 when the reply is done. */
static int complete_element(resp_parser *p)
{
    resp_reply *nodes = NODES(p);
    while (p->depth > 0) {
        size_t top = p->depth - 1;
        if (--p->stack[top].left > 0)
            return 0;
        nodes[p->stack[top].node].span = p->nnodes - p->stack[top].node;
        p->depth--;
        if (IS_ATTRIBUTE(nodes[p->stack[top].node])) {
            p->nnodes = p->stack[top].node;   /* skipped: it is no element of its parent */
            return 0;
        }
    }
    return 1;
}

/* "unknown reply type byte 0x3f": the byte, since a peer that is not Redis shows there. */
static long long fail_type(resp_parser *p, unsigned char byte)
{
    static const char text[] = "unknown reply type byte 0x";
    memcpy(p->error_text, text, sizeof text - 1);
    p->error_text[sizeof text - 1] = "0123456789abcdef"[byte >> 4];
    p->error_text[sizeof text] = "0123456789abcdef"[byte & 15];
    p->error_text[sizeof text + 1] = 0;
    return fail(p, p->error_text);
}

#ifndef REDKV_NO_CACHE
/* Out of line, so that the RESP2 path's code stays as compact as it was. */
#if defined(__GNUC__)
__attribute__((noinline, cold))
#endif
static long long parse_resp3(resp_parser *p, const char *buf, size_t len);
#else
#define parse_resp3(p, buf, len) fail_type(p, (unsigned char)buf[p->pos])
#endif

/* The bytes of a bulk string or blob ("$n", "=n", "!n") after its length line: 1 there, 0
   partial, < 0 error. */
static long long blob_body(resp_parser *p, const char *buf, size_t len, size_t next, long long n)
{
    if (n < 0)
        return fail(p, "negative length");
    if ((unsigned long long)n > p->lim.max_bulk)
        return fail(p, "bulk string longer than the limit");
    if (len - next < (size_t)n + 2) {
        p->want = next + (size_t)n + 2;
        return 0;
    }
    if (buf[next + n] != '\r' || buf[next + n + 1] != '\n')
        return fail(p, "bulk string without CRLF after its length");
    return 1;
}

/* Parses one element at p->pos: 1 with a node added, 2 with an array opened, 0 partial,
   < 0 error. */
static long long parse_element(resp_parser *p, const char *buf, size_t len)
{
    size_t eol;
    char t = buf[p->pos];
    if (t != ':' && t != '$' && t != '*' && t != '+' && t != '-')   /* off the RESP2 path */
        return parse_resp3(p, buf, len);
    int found = find_line(p, buf, len, &eol);
    if (found <= 0)
        return found < 0 ? RESP_EPROTO : 0;
    char type = buf[p->pos];
    const char *body = buf + p->pos + 1;
    size_t body_len = eol - p->pos - 1, next = eol + 2;
    long long n = 0;

    if (type != '+' && type != '-' && parse_ll(body, body_len, &n))
        return type == ':' || type == '$' || type == '*' ? fail(p, "bad number in reply")
                                                         : fail_type(p, (unsigned char)type);
    if (type == '$' && n >= 0) {
        long long got = blob_body(p, buf, len, next, n);
        if (got <= 0)
            return got;
    }
    if (type == '*' && n > 0) {
        if ((unsigned long long)n > p->lim.max_elements)
            return fail(p, "array longer than the limit");
        if (p->nnodes + (size_t)n > 2 * p->lim.max_elements + p->lim.max_depth)
            return fail(p, "reply has more elements than the limit");
    }
    if (type == '*' && n >= 0 && p->depth >= p->lim.max_depth)   /* an empty array nests too */
        return fail(p, "arrays nested deeper than the limit");
    if ((type == '$' || type == '*') && n < -1)
        return fail(p, "negative length");

    resp_reply *r = new_node(p);
    if (!r)
        return RESP_ENOMEM;
    switch (type) {
    case '+': r->type = RESP_STRING; r->off = p->pos + 1; r->len = body_len; break;
    case '-': r->type = RESP_ERROR; r->off = p->pos + 1; r->len = body_len; break;
    case ':': r->type = RESP_INTEGER; r->integer = n; break;
    case '$':
        if (n < 0) {
            r->type = RESP_NIL;
        } else {
            r->type = RESP_BULK; r->off = next; r->len = (size_t)n;
            next += (size_t)n + 2;
        }
        break;
    case '*':
        r->type = n < 0 ? RESP_NIL_ARRAY : RESP_ARRAY;
        r->len = n < 0 ? 0 : (size_t)n;
        break;
    default:
        p->nnodes--;
        return fail_type(p, (unsigned char)type);
    }
    p->pos = next;
    p->want = 0;
    if (r->type == RESP_ARRAY && n > 0) {
        p->stack[p->depth].node = p->nnodes - 1;
        p->stack[p->depth].left = (size_t)n;
        p->depth++;
        return 2;                  /* an open array: no element completed yet */
    }
    return 1;
}

#ifndef REDKV_NO_CACHE
/* ---- RESP3: kept apart so that the RESP2 path above stays as it was ------------------- */

static int all_of(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i]))
            return 0;
    return 1;
}

/* A double as Redis writes it: digits with sign, point and exponent, or inf, -inf, nan. */
static int valid_double(const char *s, size_t n)
{
    if (n == 3 && (!memcmp(s, "inf", 3) || !memcmp(s, "nan", 3)))
        return 1;
    if (n == 4 && (!memcmp(s, "-inf", 4) || !memcmp(s, "+inf", 4)))
        return 1;
    return n > 0 && all_of(s, n, "0123456789+-.eE");
}

static int valid_bignum(const char *s, size_t n)
{
    size_t sign = n > 0 && s[0] == '-';
    return n > sign && all_of(s + sign, n - sign, "0123456789");
}


/* An aggregate header: a map ("%"), set ("~"), push (">") or attribute ("|") of n. Checks
   the limits and opens it; an empty one is complete at once. */
static long long open_aggregate(resp_parser *p, char t, long long n, size_t next)
{
    int pairs = t == '%' || t == '|';
    if (n < 0)
        return fail(p, "negative length");
    if ((unsigned long long)n > p->lim.max_elements)
        return fail(p, "array longer than the limit");
    size_t elements = (size_t)n << pairs;
    if (p->nnodes + elements > 2 * p->lim.max_elements + p->lim.max_depth)
        return fail(p, "reply has more elements than the limit");
    if (p->depth >= p->lim.max_depth)
        return fail(p, "arrays nested deeper than the limit");
    resp_reply *r = new_node(p);
    if (!r)
        return RESP_ENOMEM;
    r->type = t == '%' ? RESP_MAP : t == '~' ? RESP_SET : t == '>' ? RESP_PUSH : RESP_ATTRIBUTE;
    r->len = elements;
    p->pos = next;
    p->want = 0;
    if (elements == 0 && t == '|') {
        p->nnodes--;               /* an empty attribute: nothing to skip but its header */
        return 2;
    }
    if (elements == 0)
        return 1;
    p->stack[p->depth].node = p->nnodes - 1;
    p->stack[p->depth].left = elements;
    p->depth++;
    return 2;
}

/* A scalar of one line: null, boolean, double, big number. */
static long long line_scalar(resp_parser *p, char t, const char *buf, size_t next)
{
    const char *body = buf + p->pos + 1;
    size_t n = next - 2 - (p->pos + 1);
    int ok = t == '_' ? n == 0 : t == '#' ? n == 1 && (body[0] == 't' || body[0] == 'f')
           : t == ',' ? valid_double(body, n) : valid_bignum(body, n);
    if (!ok)
        return fail(p, t == '_' ? "bad null" : t == '#' ? "bad boolean"
                     : t == ',' ? "bad double" : "bad big number");
    resp_reply *r = new_node(p);
    if (!r)
        return RESP_ENOMEM;
    r->type = t == '_' ? RESP_NIL : t == '#' ? RESP_BOOLEAN : t == ',' ? RESP_DOUBLE : RESP_BIGNUM;
    if (t == '#') {
        r->integer = body[0] == 't';
    } else if (t != '_') {
        r->off = p->pos + 1;
        r->len = n;
    }
    p->want = 0;
    p->pos = next;
    return 1;
}

/* One RESP3 element at p->pos (its type byte is not RESP2's): as parse_element. */
static long long parse_resp3(resp_parser *p, const char *buf, size_t len)
{
    char t = buf[p->pos];
    if (!t || !strchr("_#,(=!%~>|", t))
        return fail_type(p, (unsigned char)t);
    size_t eol;
    int found = find_line(p, buf, len, &eol);
    if (found <= 0)
        return found < 0 ? RESP_EPROTO : 0;
    const char *body = buf + p->pos + 1;
    size_t body_len = eol - p->pos - 1, next = eol + 2;
    if (t == '_' || t == '#' || t == ',' || t == '(')
        return line_scalar(p, t, buf, next);
    long long n;
    if (parse_ll(body, body_len, &n))
        return fail(p, "bad number in reply");
    if (t == '%' || t == '~' || t == '>' || t == '|')
        return open_aggregate(p, t, n, next);
    long long got = blob_body(p, buf, len, next, n);
    if (got <= 0)
        return got;
    if (t == '=' && (n < 4 || buf[next + 3] != ':'))
        return fail(p, "verbatim string without its format");
    resp_reply *r = new_node(p);
    if (!r)
        return RESP_ENOMEM;
    r->type = t == '=' ? RESP_VERBATIM : RESP_ERROR;
    r->off = t == '=' ? next + 4 : next;
    r->len = t == '=' ? (size_t)n - 4 : (size_t)n;
    p->pos = next + (size_t)n + 2;
    p->want = 0;
    return 1;
}
#endif

long long resp_parse(resp_parser *p, const char *buf, size_t len, const resp_reply **out)
{
    while (p->pos < len) {
        long long got = parse_element(p, buf, len);
        if (got <= 0)
            return got == 0 ? RESP_PARTIAL : got;
        if (got == 2 || !complete_element(p))
            continue;
        resp_reply *nodes = NODES(p);
        for (size_t i = 0; i < p->nnodes; i++)
            nodes[i].str = nodes[i].off ? buf + nodes[i].off : NULL;
        long long used = (long long)p->pos;
        *out = nodes;
        resp_parser_reset(p);
        return used;
    }
    return RESP_PARTIAL;
}
