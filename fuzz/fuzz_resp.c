/* fuzz_resp.c - libFuzzer target for the RESP2 and RESP3 parser (resp/parse.c). `make fuzz`.
 *
 * Input: an 8-byte header, then the bytes "from the server" (shorter inputs are all data,
 * with default limits, arriving in random chunks):
 *   h[0] bit 0     use the small limits h[1..4] (a 0 there means the default)
 *        bits 1-2  how the bytes arrive: 0 chunks of 1..256 bytes, 1 one byte at a time,
 *                  2 all at once, 3 chunks of 1..4 bytes (chunk sizes drawn from seed h[5..6])
 *        bit 3     the allocator fails after h[7] allocations (RESP_ENOMEM is then allowed)
 *   h[1] max_bulk  h[2] max_elements  h[3] max_depth (mod 72, to reach the clamp at 64)
 *   h[4] max_line
 *
 * Every resp_parse call gets a fresh malloc'd copy of exactly the bytes received since the
 * current reply began (the old copy is freed afterwards, so the buffer always moves): ASan
 * catches any read past them and any pointer kept into an old copy. Every reply returned is
 * walked in full (every str byte touched) and checked: bounds, limits, spans, resp_element,
 * consumed <= len, the want hint; the split parse must agree with a one-shot parse of the
 * same bytes; the reply's canonical re-encoding must parse back to itself. A violation
 * abort()s. Replies are parsed back to back until the bytes run out or an error.
 *
 * tests/test_resp.c includes this file to replay fuzz/regress/resp/ under `make test`, so it
 * must build warning-free as C99 with gcc and clang too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define FZ_CHECK(c) ((c) ? (void)0 : fz_fail(#c, __LINE__))

#if defined(__GNUC__)
__attribute__((noreturn))
#endif
static void fz_fail(const char *what, int line);
static void fz_fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_resp.c:%d: invariant broken: %s\n", line, what);
    abort();
}

/* ---- a growable byte string (libc memory: the codec's hook may be failing) ---------- */

typedef struct fz_out {
    char *p;
    size_t len, cap;
} fz_out;

static void fz_put(fz_out *o, const void *s, size_t n)
{
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap - o->len < n)
            cap *= 2;
        char *p = realloc(o->p, cap);
        FZ_CHECK(p != NULL);
        o->p = p;
        o->cap = cap;
    }
    if (n)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void fz_put_line(fz_out *o, char c, long long v)
{
    char line[32];
    line[0] = c;
    size_t n = 1 + resp_format_ll(line + 1, v);
    line[n++] = '\r';
    line[n++] = '\n';
    fz_put(o, line, n);
}

/* A blob error ("!n") reads as RESP_ERROR; its bytes say which it was. */
static int fz_blob_error(const resp_reply *r) { return r->type == RESP_ERROR && r->str[-1] == '\n'; }

static void fz_put_text(fz_out *o, char c, const char *s, size_t n)
{
    fz_put(o, &c, 1);
    fz_put(o, s, n);
    fz_put(o, "\r\n", 2);
}

static void fz_dump(fz_out *o, const resp_reply *r);

/* RESP3's types; a null re-encodes as RESP2's "$-1", a skipped attribute as nothing. */
static void fz_dump3(fz_out *o, const resp_reply *r)
{
    switch (r->type) {
    case RESP_MAP:
    case RESP_SET:
    case RESP_PUSH:
        fz_put_line(o, r->type == RESP_MAP ? '%' : r->type == RESP_SET ? '~' : '>',
                    (long long)(r->type == RESP_MAP ? r->len / 2 : r->len));
        for (size_t i = 0; i < r->len; i++)
            fz_dump(o, resp_element(r, i));
        break;
    case RESP_DOUBLE: fz_put_text(o, ',', r->str, r->len); break;
    case RESP_BIGNUM: fz_put_text(o, '(', r->str, r->len); break;
    case RESP_BOOLEAN: fz_put(o, r->integer ? "#t\r\n" : "#f\r\n", 4); break;
    case RESP_VERBATIM:
        fz_put_line(o, '=', (long long)r->len + 4);
        fz_put(o, r->str - 4, r->len + 4);
        fz_put(o, "\r\n", 2);
        break;
    default: fz_fail("unknown reply type", __LINE__);
    }
}

/* Appends r as canonical RESP: the same tree always gives the same bytes. */
static void fz_dump(fz_out *o, const resp_reply *r)
{
    switch (r->type) {
    case RESP_STRING:
    case RESP_ERROR:
        if (fz_blob_error(r)) {
            fz_put_line(o, '!', (long long)r->len);
            fz_put(o, r->str, r->len);
            fz_put(o, "\r\n", 2);
            break;
        }
        fz_put(o, r->type == RESP_STRING ? "+" : "-", 1);
        fz_put(o, r->str, r->len);
        fz_put(o, "\r\n", 2);
        break;
    case RESP_INTEGER: fz_put_line(o, ':', r->integer); break;
    case RESP_BULK:
        fz_put_line(o, '$', (long long)r->len);
        fz_put(o, r->str, r->len);
        fz_put(o, "\r\n", 2);
        break;
    case RESP_NIL: fz_put(o, "$-1\r\n", 5); break;
    case RESP_NIL_ARRAY: fz_put(o, "*-1\r\n", 5); break;
    case RESP_ARRAY:
        fz_put_line(o, '*', (long long)r->len);
        for (size_t i = 0; i < r->len; i++)
            fz_dump(o, resp_element(r, i));
        break;
    default: fz_dump3(o, r);
    }
}

/* ---- checks on one reply ------------------------------------------------------------- */

static volatile unsigned fz_sink;   /* every str byte is added here, so it is read */

/* Walks r (at nesting depth d, 0 for the reply) whose bytes are buf[0..len); returns the
   nodes seen, which must equal r->span. */
static size_t fz_walk(const resp_reply *r, size_t d, const resp_limits *lim, const char *buf,
                      size_t len)
{
    unsigned sum = 0;
    int blob = r->type == RESP_BULK || r->type == RESP_VERBATIM ||
               (r->type == RESP_ERROR && r->str && r->str > buf && r->str[-1] == '\n');
    switch (r->type) {
    case RESP_STRING:
    case RESP_ERROR:
    case RESP_BULK:
    case RESP_DOUBLE:
    case RESP_BIGNUM:
    case RESP_VERBATIM:
        FZ_CHECK(r->str != NULL);
        FZ_CHECK(r->str > buf && r->str <= buf + len);
        FZ_CHECK(r->len <= (size_t)(buf + len - r->str));
        for (size_t i = 0; i < r->len; i++) {
            sum += (unsigned char)r->str[i];
            if (!blob)
                FZ_CHECK(r->str[i] != '\r' && r->str[i] != '\n');
        }
        FZ_CHECK((size_t)(buf + len - r->str) - r->len >= 2);
        FZ_CHECK(r->str[r->len] == '\r' && r->str[r->len + 1] == '\n');
        FZ_CHECK(blob ? r->len <= lim->max_bulk : r->len <= lim->max_line);
        if (r->type == RESP_VERBATIM)
            FZ_CHECK(r->str - 4 > buf && r->str[-1] == ':' && r->str[-5] == '\n');
        else if (blob)
            FZ_CHECK(r->str[-1] == '\n');
        else
            FZ_CHECK(r->str[-1] == (r->type == RESP_STRING ? '+' : r->type == RESP_ERROR ? '-'
                                    : r->type == RESP_DOUBLE ? ',' : '('));
        FZ_CHECK(r->span == 1);
        fz_sink += sum;
        return 1;
    case RESP_INTEGER:
    case RESP_NIL:
    case RESP_NIL_ARRAY:
    case RESP_BOOLEAN:
        FZ_CHECK(r->str == NULL && r->span == 1);
        FZ_CHECK(r->type == RESP_INTEGER || r->len == 0);
        FZ_CHECK(r->type != RESP_BOOLEAN || r->integer == 0 || r->integer == 1);
        return 1;
    case RESP_ARRAY:
    case RESP_MAP:
    case RESP_SET:
    case RESP_PUSH: {
        FZ_CHECK(r->str == NULL);
        FZ_CHECK(r->type == RESP_MAP ? r->len % 2 == 0 && r->len / 2 <= lim->max_elements
                                     : r->len <= lim->max_elements);
        FZ_CHECK(d < lim->max_depth);       /* an array at depth d is nested d+1 deep */
        size_t nodes = 1;
        const resp_reply *e = r + 1;
        for (size_t i = 0; i < r->len; i++) {
            FZ_CHECK(resp_element(r, i) == e);
            size_t sub = fz_walk(e, d + 1, lim, buf, len);
            FZ_CHECK(sub == e->span);
            nodes += sub;
            e += e->span;
        }
        FZ_CHECK(nodes == r->span);
        return nodes;
    }
    default:
        fz_fail("unknown reply type", __LINE__);
    }
}

/* ---- an allocator that fails on request ---------------------------------------------- */

static long fz_allocs_left, fz_live;
static int fz_limited;    /* count fz_allocs_left down; else never fail */

static void *fz_realloc(void *p, size_t n)
{
    if (fz_limited && fz_allocs_left-- <= 0)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        fz_live++;
    return q;
}

static void *fz_malloc(size_t n) { return fz_realloc(NULL, n); }

static void fz_free(void *p)
{
    if (p)
        fz_live--;
    free(p);
}

/* ---- the target ---------------------------------------------------------------------- */

static char *fz_copy(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    FZ_CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Next chunk size for the split mode. */
static size_t fz_chunk(unsigned mode, uint32_t *rng)
{
    *rng = *rng * 1103515245u + 12345u;
    uint32_t r = *rng >> 16;
    switch (mode) {
    case 1: return 1;
    case 2: return SIZE_MAX;
    case 3: return 1 + r % 4;
    default: return 1 + r % 256;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    resp_limits lim;
    unsigned mode = 0, failing = 0;
    uint32_t rng = 1;
    long fail_after = 0;
    memset(&lim, 0, sizeof lim);
    if (size >= 8) {
        if (data[0] & 1) {
            lim.max_bulk = data[1];
            lim.max_elements = data[2];
            lim.max_depth = data[3] % 72u;
            lim.max_line = data[4];
        }
        mode = (data[0] >> 1) & 3u;
        failing = (data[0] >> 3) & 1u;
        rng = (uint32_t)data[5] << 8 | data[6];
        fail_after = data[7];
        data += 8;
        size -= 8;
    }

    if (failing) {
        fz_live = 0;
        fz_limited = 0;
        fz_allocs_left = fail_after;     /* the budget is for the whole input */
        resp_set_allocator(fz_malloc, fz_realloc, fz_free);
    }
    resp_parser p;
    resp_parser_init(&p, &lim);
    const resp_limits eff = p.lim;           /* the limits after defaults and the clamp */
    FZ_CHECK(eff.max_bulk && eff.max_elements && eff.max_line);
    FZ_CHECK(eff.max_depth >= 1 && eff.max_depth <= RESP_HARD_MAX_DEPTH);

    size_t start = 0;
    while (start < size) {
        size_t rest = size - start;

        /* The reference: all the remaining bytes at once, to a fresh parser. */
        resp_parser ref;
        resp_parser_init(&ref, &lim);
        char *whole = fz_copy(data + start, rest);
        const resp_reply *rr = NULL;
        long long rn = resp_parse(&ref, whole, rest, &rr);
        fz_out expect = {0};
        FZ_CHECK(rn == RESP_PARTIAL || rn == RESP_EPROTO || (rn > 0 && (size_t)rn <= rest));
        if (rn > 0) {
            FZ_CHECK(fz_walk(rr, 0, &eff, whole, (size_t)rn) == rr->span);
            fz_dump(&expect, rr);
            /* canonical is never longer, but for RESP3's null ("_\r\n", 3 bytes), which
               reads as RESP2's nil and dumps as "$-1\r\n" (5): 2 more bytes a node at most */
            FZ_CHECK(expect.len <= (size_t)rn + 2 * (size_t)rr->span);
        } else if (rn == RESP_EPROTO) {
            FZ_CHECK(resp_parser_error(&ref)[0] != '\0');
        }
        free(whole);
        resp_parser_free(&ref);

        /* The same bytes in chunks, a fresh copy at a new address for every call. */
        fz_limited = failing;            /* only these calls may run out of memory */
        size_t avail = 0, before = 0, want = 0;
        char *cp = NULL;
        const resp_reply *r = NULL;
        long long n = RESP_PARTIAL;
        while (avail < rest) {
            size_t c = fz_chunk(mode, &rng);
            before = avail;
            avail = c > rest - avail ? rest : avail + c;
            char *next = fz_copy(data + start, avail);
            if (cp) {
                memset(cp, 0xA5, before);      /* stale pointers would now see junk */
                free(cp);
            }
            cp = next;
            n = resp_parse(&p, cp, avail, &r);
            if (n != RESP_PARTIAL)
                break;
            want = resp_parser_want(&p);
            FZ_CHECK(want == 0 || want > avail);
        }
        fz_limited = 0;

        if (n == RESP_ENOMEM) {
            FZ_CHECK(failing);
            free(cp);
            free(expect.p);
            break;
        }
        FZ_CHECK(n == rn);
        if (n > 0) {
            FZ_CHECK((size_t)n <= avail && (size_t)n > before);
            FZ_CHECK(want == 0 || (size_t)n >= want);
            FZ_CHECK(fz_walk(r, 0, &eff, cp, (size_t)n) == r->span);
            fz_out got = {0};
            fz_dump(&got, r);
            FZ_CHECK(got.len == expect.len && memcmp(got.p, expect.p, got.len) == 0);

            /* The canonical form parses back to the same reply, in one piece. Its lines
               may be longer by one case only: RESP3's null ("_", a line of 0) dumps as
               "$-1" (a line of 2), so the limit on a line is raised to 2 for it. */
            resp_limits relim = lim;
            if (relim.max_line == 1)
                relim.max_line = 2;
            resp_parser again;
            resp_parser_init(&again, &relim);
            const resp_reply *ar = NULL;
            FZ_CHECK(resp_parse(&again, got.p, got.len, &ar) == (long long)got.len);
            fz_out back = {0};
            fz_dump(&back, ar);
            FZ_CHECK(back.len == got.len && memcmp(back.p, got.p, got.len) == 0);
            resp_parser_free(&again);
            free(back.p);
            free(got.p);
            start += (size_t)n;
        } else if (n == RESP_EPROTO) {
            FZ_CHECK(resp_parser_error(&p)[0] != '\0');
        }
        free(cp);
        free(expect.p);
        if (n <= 0)
            break;
    }
    resp_parser_free(&p);
    if (failing) {
        FZ_CHECK(fz_live == 0);           /* nothing the codec allocated is left over */
        resp_set_allocator(NULL, NULL, NULL);
    }
    return 0;
}
