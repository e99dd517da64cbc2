/* test_resp.c - unit tests of the RESP2 codec and RESP3 reader (include/resp.h), no server
 * needed:
 *   encoder   exact bytes, binary and empty arguments, arg2, integers, resp_format_ll, ENOMEM
 *   parser    every reply type, navigation of nested arrays, every split point (fresh and
 *             growing, the buffer moving between calls), replies back to back, reads past
 *             the bytes given (guard page), every class of malformed input, the limits
 *             (small ones at their boundaries, the defaults, the depth clamp), reset/free,
 *             the allocator hook (counted, failing), the want hint, a 200,000-element array
 *   resp3     each RESP3 type read, null as RESP_NIL, attributes skipped, map limits
 *   fuzz      the stored inputs in fuzz/regress/resp/ and the seed corpus, replayed through
 *             the fuzz target (which is included below). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "resp.h"

/* The libFuzzer target: LLVMFuzzerTestOneInput for the replays, and fz_dump, its canonical
   re-encoder, which the tests use to compare replies with their bytes. */
#include "../fuzz/fuzz_resp.c"

/* A string literal and its length, NULs included. */
#define S(lit) lit, sizeof(lit) - 1

typedef struct sample {
    const char *name;
    const char *s;
    size_t n;
} sample;

#define NESTED "*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n$2\r\nbc\r\n*0\r\n"
#define MIXED "*7\r\n+OK\r\n-ERR x\r\n:-5\r\n$3\r\na\0b\r\n$-1\r\n*-1\r\n*0\r\n"
#define TWELVE "*12\r\n:0\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n:8\r\n:9\r\n:10\r\n:11\r\n"

/* Canonical replies: each re-encodes (fz_dump) to exactly its own bytes. */
static const sample valid[] = {
    {"simple", S("+OK\r\n")},
    {"simple-empty", S("+\r\n")},
    {"simple-spaces", S("+hello world \t\r\n")},
    {"error", S("-ERR unknown command 'x'\r\n")},
    {"error-empty", S("-\r\n")},
    {"int-zero", S(":0\r\n")},
    {"int-negative", S(":-42\r\n")},
    {"int-max", S(":9223372036854775807\r\n")},
    {"int-min", S(":-9223372036854775808\r\n")},
    {"bulk", S("$5\r\nhello\r\n")},
    {"bulk-empty", S("$0\r\n\r\n")},
    {"bulk-binary", S("$8\r\n\r\n\0\r\n\n\r\r\r\n")},
    {"bulk-crlf-end", S("$4\r\nab\r\n\r\n")},
    {"nil", S("$-1\r\n")},
    {"array", S("*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n")},
    {"array-empty", S("*0\r\n")},
    {"array-nil", S("*-1\r\n")},
    {"array-nested", S(NESTED)},
    {"array-mixed", S(MIXED)},
    {"resp3-blob-error", S("!3\r\nabc\r\n")},
    {"resp3-blob-error-crlf", S("!4\r\na\r\nb\r\n")},
    {"resp3-map", S("%1\r\n+a\r\n+b\r\n")},
    {"resp3-map-empty", S("%0\r\n")},
    {"resp3-map-nested", S("%2\r\n$1\r\nk\r\n*2\r\n:1\r\n#f\r\n+x\r\n~1\r\n,-inf\r\n")},
    {"resp3-double", S(",1.5\r\n")},
    {"resp3-double-exp", S(",-1.25e-10\r\n")},
    {"resp3-double-inf", S(",inf\r\n")},
    {"resp3-double-nan", S(",nan\r\n")},
    {"resp3-bool-true", S("#t\r\n")},
    {"resp3-bool-false", S("#f\r\n")},
    {"resp3-verbatim", S("=7\r\ntxt:abc\r\n")},
    {"resp3-verbatim-empty", S("=4\r\nmkd:\r\n")},
    {"resp3-bignum", S("(3492890328409238509324850943850943825024385\r\n")},
    {"resp3-bignum-negative", S("(-1\r\n")},
    {"resp3-set", S("~2\r\n+a\r\n:1\r\n")},
    {"resp3-set-empty", S("~0\r\n")},
    {"resp3-push", S(">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nabc\r\n")},
    {"array-twelve", S(TWELVE)},
    {"array-deep", S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n$1\r\nx\r\n")},
};
#define NVALID (sizeof valid / sizeof valid[0])

/* Each breaks RESP2 or a default limit: RESP_EPROTO once the bytes shown have arrived. */
static const sample malformed[] = {
    /* bad length */
    {"bulk-len-alpha", S("$abc\r\n")},
    {"array-len-alpha", S("*abc\r\n")},
    {"bulk-len-empty", S("$\r\n")},
    {"array-len-empty", S("*\r\n")},
    {"bulk-len-suffix", S("$1a\r\na\r\n")},
    {"bulk-len-space", S("$ 1\r\na\r\n")},
    {"bulk-len-plus", S("$+1\r\na\r\n")},
    /* negative lengths other than -1 */
    {"bulk-len-minus2", S("$-2\r\n")},
    {"bulk-len-minus10", S("$-10\r\n")},
    {"array-len-minus2", S("*-2\r\n")},
    {"array-len-minus5", S("*-5\r\n")},
    /* bad terminator after bulk data */
    {"bulk-term-lf", S("$3\r\nabcX\n")},
    {"bulk-term-cr", S("$3\r\nabc\rX")},
    {"bulk-too-long", S("$3\r\nabcd\r\n")},
    {"bulk-empty-data", S("$0\r\nX\r\n")},
    {"bulk-term-swapped", S("$3\r\nabc\n\r")},
    /* CR not followed by LF */
    {"cr-x", S("+OK\rX\r\n")},
    {"cr-inside", S("+O\rK\r\n")},
    {"cr-int", S(":1\r:\r\n")},
    {"cr-cr-lf", S("$3\r\r\nabc\r\n")},
    /* LF without CR */
    {"lf-simple", S("+OK\n")},
    {"lf-error", S("-ERR\n")},
    {"lf-int", S(":1\n")},
    {"lf-bulk-len", S("$1\na\r\n")},
    {"lf-array-len", S("*1\n:1\r\n")},
    {"lf-inside", S("+O\nK\r\n")},
    /* unknown type byte; RESP3's malformed */
    {"resp3-null-body", S("_x\r\n")},
    {"resp3-bool-word", S("#true\r\n")},
    {"resp3-bool-empty", S("#\r\n")},
    {"resp3-double-empty", S(",\r\n")},
    {"resp3-double-word", S(",one\r\n")},
    {"resp3-bignum-empty", S("(\r\n")},
    {"resp3-bignum-minus", S("(-\r\n")},
    {"resp3-bignum-dot", S("(1.5\r\n")},
    {"resp3-verbatim-no-format", S("=3\r\nabc\r\n")},
    {"resp3-verbatim-no-colon", S("=7\r\ntxt-abc\r\n")},
    {"resp3-blob-error-nil", S("!-1\r\n")},
    {"resp3-blob-error-short", S("!2\r\nabc\r\n")},
    {"resp3-map-negative", S("%-1\r\n")},
    {"resp3-streamed", S("$?\r\n;0\r\n")},
    {"resp3-streamed-array", S("*?\r\n.\r\n")},
    {"type-x", S("x\r\n")},
    {"type-word", S("xyz\r\n")},
    {"type-space", S(" +OK\r\n")},
    {"type-empty-line", S("\r\n")},
    {"type-digit", S("0\r\n")},
    {"type-nul", S("\0\r\n")},
    /* not a number */
    {"int-suffix", S(":12a\r\n")},
    {"int-space", S(": 1\r\n")},
    {"int-empty", S(":\r\n")},
    {"int-plus", S(":+1\r\n")},
    {"int-trailing-space", S(":1 \r\n")},
    {"int-minus-only", S(":-\r\n")},
    {"int-minus-minus", S(":--1\r\n")},
    {"int-minus-after", S(":1-\r\n")},
    {"int-hex", S(":0x10\r\n")},
    {"int-decimal", S(":1.0\r\n")},
    /* overflow */
    {"int-over-max", S(":9223372036854775808\r\n")},
    {"int-under-min", S(":-9223372036854775809\r\n")},
    {"int-20-digits", S(":99999999999999999999\r\n")},
    {"int-huge", S(":18446744073709551616\r\n")},
    {"bulk-len-20-digits", S("$99999999999999999999\r\n")},
    {"bulk-len-over-llong", S("$9223372036854775808\r\n")},
    {"array-len-20-digits", S("*99999999999999999999\r\n")},
    /* default limits */
    {"bulk-over-default", S("$536870913\r\n")},
    {"array-over-default", S("*1048577\r\n")},
    {"nested-9", S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")},
    {"nested-9-empty", S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n")},
    /* errors inside arrays */
    {"in-array-type", S("*2\r\n:1\r\n!\r\n")},
    {"in-array-len", S("*1\r\n*1\r\n$-2\r\n")},
    {"in-array-lf", S("*2\r\n+ok\r\n+bad\n")},
    {"in-array-term", S("*2\r\n$1\r\nab\r\n:1\r\n")},
};
#define NMALFORMED (sizeof malformed / sizeof malformed[0])

/* ---- helpers ------------------------------------------------------------------------- */

static char *dup_bytes(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    if (n)
        memcpy(c, s, n);
    return c;
}

/* Frees a buffer the parser has seen, scribbling on it first: a pointer kept into it would
   then read junk (and ASan, under SANITIZE=1, would see the use after free). */
static void drop(char *b, size_t n)
{
    if (b)
        memset(b, 0x5A, n);
    free(b);
}

/* Asserts that r re-encodes to exactly s[0..n). */
static void expect_reply(const resp_reply *r, const char *s, size_t n, const char *name)
{
    fz_out o = {0};
    fz_dump(&o, r);
    cr_assert(o.len == n && memcmp(o.p, s, n) == 0, "%s: the reply does not match its bytes",
              name);
    free(o.p);
}

/* Parses s[0..n) whole with p: asserts it is one complete reply of n bytes. */
static const resp_reply *parse_whole(resp_parser *p, const char *s, size_t n)
{
    const resp_reply *r = NULL;
    long long got = resp_parse(p, s, n, &r);
    cr_assert_eq(got, (long long)n, "parse returned %lld, want %zu", got, n);
    cr_assert_not_null(r);
    return r;
}

/* resp_parse on s[0..n) with a fresh default parser. */
static long long parse_fresh(const resp_limits *lim, const char *s, size_t n)
{
    resp_parser p;
    resp_parser_init(&p, lim);
    const resp_reply *r = NULL;
    char *c = dup_bytes(s, n);
    long long got = resp_parse(&p, c, n, &r);
    if (got == RESP_EPROTO) {
        cr_assert(resp_parser_error(&p) != NULL && resp_parser_error(&p)[0] != '\0',
                  "RESP_EPROTO needs a reason");
    }
    free(c);
    resp_parser_free(&p);
    return got;
}

static void expect_eproto(const resp_limits *lim, const char *s, size_t n)
{
    cr_assert_eq(parse_fresh(lim, s, n), RESP_EPROTO, "'%.*s' must be RESP_EPROTO", (int)n, s);
}

static void expect_ok(const resp_limits *lim, const char *s, size_t n)
{
    cr_assert_eq(parse_fresh(lim, s, n), (long long)n, "'%.*s' must parse", (int)n, s);
}

static void expect_partial(const resp_limits *lim, const char *s, size_t n)
{
    cr_assert_eq(parse_fresh(lim, s, n), RESP_PARTIAL, "'%.*s' must be partial", (int)n, s);
}

/* A string made of: prefix, count copies of rep, suffix (malloc'd; length in *n). */
static char *repeat(const char *prefix, const char *rep, size_t count, const char *suffix,
                    size_t *n)
{
    size_t lp = strlen(prefix), lr = strlen(rep), ls = strlen(suffix);
    *n = lp + lr * count + ls;
    char *s = malloc(*n + 1);
    cr_assert_not_null(s);
    memcpy(s, prefix, lp);
    for (size_t i = 0; i < count; i++)
        memcpy(s + lp + i * lr, rep, lr);
    memcpy(s + lp + lr * count, suffix, ls + 1);
    return s;
}

/* ---- encoder ------------------------------------------------------------------------- */

static void expect_buf(const resp_buf *b, const char *s, size_t n)
{
    cr_assert_eq(b->len, n, "encoded %zu bytes, want %zu", b->len, n);
    cr_assert(memcmp(b->data, s, n) == 0, "encoded bytes differ: '%.*s'", (int)b->len, b->data);
}

Test(encode, command_exact_bytes)
{
    resp_buf b = {0};
    const void *argv[] = {"SET", "key", "value"};
    size_t lens[] = {3, 3, 5};
    cr_assert_eq(resp_encode(&b, 3, argv, lens), 0);
    expect_buf(&b, S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"));
    resp_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(encode, binary_args)
{
    resp_buf b = {0};
    const void *argv[] = {"a\0b", "\r\n", "\n", "\r", "x\r\ny"};
    size_t lens[] = {3, 2, 1, 1, 4};
    cr_assert_eq(resp_encode(&b, 5, argv, lens), 0);
    expect_buf(&b, S("*5\r\n$3\r\na\0b\r\n$2\r\n\r\n\r\n$1\r\n\n\r\n$1\r\n\r\r\n$4\r\nx\r\ny\r\n"));
    resp_buf_free(&b);
}

Test(encode, empty_args_and_no_args)
{
    resp_buf b = {0};
    const void *argv[] = {"", NULL, "x"};
    size_t lens[] = {0, 0, 1};
    cr_assert_eq(resp_encode(&b, 3, argv, lens), 0);
    expect_buf(&b, S("*3\r\n$0\r\n\r\n$0\r\n\r\n$1\r\nx\r\n"));
    b.len = 0;
    cr_assert_eq(resp_encode(&b, 0, NULL, NULL), 0);
    expect_buf(&b, S("*0\r\n"));
    resp_buf_free(&b);
}

Test(encode, negative_argc_fails_and_leaves_buffer)
{
    resp_buf b = {0};
    cr_assert_eq(resp_encode_header(&b, 1), 0);
    cr_assert_eq(resp_encode(&b, -1, NULL, NULL), -1);
    expect_buf(&b, S("*1\r\n"));
    resp_buf_free(&b);
}

Test(encode, appends_and_pieces)
{
    resp_buf b = {0};
    const void *a1[] = {"PING"};
    size_t l1[] = {4};
    cr_assert_eq(resp_encode(&b, 1, a1, l1), 0);
    cr_assert_eq(resp_encode_header(&b, 2), 0);
    cr_assert_eq(resp_encode_arg(&b, "GET", 3), 0);
    cr_assert_eq(resp_encode_arg(&b, "k", 1), 0);
    expect_buf(&b, S("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"));
    resp_buf_free(&b);
}

Test(encode, arg2_concatenates)
{
    resp_buf b = {0};
    cr_assert_eq(resp_encode_arg2(&b, "foo", 3, "bar", 3), 0);
    cr_assert_eq(resp_encode_arg2(&b, "ns:", 3, NULL, 0), 0);
    cr_assert_eq(resp_encode_arg2(&b, NULL, 0, "\0\r\n", 3), 0);
    cr_assert_eq(resp_encode_arg2(&b, NULL, 0, NULL, 0), 0);
    expect_buf(&b, S("$6\r\nfoobar\r\n$3\r\nns:\r\n$3\r\n\0\r\n\r\n$0\r\n\r\n"));
    resp_buf_free(&b);
}

Test(encode, integers_as_bulk)
{
    resp_buf b = {0};
    cr_assert_eq(resp_encode_int(&b, 0), 0);
    cr_assert_eq(resp_encode_int(&b, -1), 0);
    cr_assert_eq(resp_encode_int(&b, 42), 0);
    cr_assert_eq(resp_encode_int(&b, LLONG_MAX), 0);
    cr_assert_eq(resp_encode_int(&b, LLONG_MIN), 0);
    expect_buf(&b, S("$1\r\n0\r\n$2\r\n-1\r\n$2\r\n42\r\n$19\r\n9223372036854775807\r\n"
                     "$20\r\n-9223372036854775808\r\n"));
    resp_buf_free(&b);
}

Test(encode, format_ll)
{
    const long long v[] = {0, 1, -1, 9, 10, -10, 99, 100, 123456789, -987654321, 1000000000000LL,
                           LLONG_MAX, LLONG_MIN, LLONG_MAX - 1, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[32], want[32];
        memset(out, '#', sizeof out);
        size_t n = resp_format_ll(out, v[i]);
        int wn = snprintf(want, sizeof want, "%lld", v[i]);
        cr_assert_eq(n, (size_t)wn, "length of %lld", v[i]);
        cr_assert(memcmp(out, want, n) == 0, "digits of %lld: '%.*s'", v[i], (int)n, out);
        cr_assert_eq(out[n], '#', "writes no terminator");
        cr_assert(n <= 21);
    }
}

Test(encode, large_args_grow_the_buffer)
{
    resp_buf b = {0};
    size_t n = 1 << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 31);
    const void *argv[] = {"SET", "k", big};
    size_t lens[] = {3, 1, n};
    cr_assert_eq(resp_encode(&b, 3, argv, lens), 0);
    const char *head = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n";
    size_t hl = strlen(head);
    cr_assert_eq(b.len, hl + n + 2);
    cr_assert(b.cap >= b.len);
    cr_assert(memcmp(b.data, head, hl) == 0);
    cr_assert(memcmp(b.data + hl, big, n) == 0);
    cr_assert(memcmp(b.data + hl + n, "\r\n", 2) == 0);
    cr_assert_eq(resp_buf_reserve(&b, 10), 0);
    cr_assert(b.cap - b.len >= 10);
    free(big);
    resp_buf_free(&b);
}

Test(encode, round_trip_through_parser)
{
    resp_buf b = {0};
    const void *argv[] = {"HSET", "h\0", "", "\r\n\r\n", "x"};
    size_t lens[] = {4, 2, 0, 4, 1};
    cr_assert_eq(resp_encode(&b, 5, argv, lens), 0);
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r = parse_whole(&p, b.data, b.len);
    cr_assert_eq(r->type, RESP_ARRAY);
    cr_assert_eq(r->len, 5);
    for (size_t i = 0; i < 5; i++) {
        const resp_reply *e = resp_element(r, i);
        cr_assert_eq(e->type, RESP_BULK);
        cr_assert_eq(e->len, lens[i]);
        cr_assert(memcmp(e->str, argv[i], lens[i]) == 0);
    }
    resp_parser_free(&p);
    resp_buf_free(&b);
}

/* ---- an allocator that counts, and fails on request ---------------------------------- */

static long n_alloc, n_free, n_live, fail_from = -1;

static void *count_realloc(void *p, size_t n)
{
    if (fail_from >= 0 && n_alloc >= fail_from)
        return NULL;
    n_alloc++;
    void *q = realloc(p, n);
    if (q && !p)
        n_live++;
    return q;
}

static void *count_malloc(size_t n) { return count_realloc(NULL, n); }

static void count_free(void *p)
{
    n_free++;
    if (p)
        n_live--;
    free(p);
}

static void counting(long fail_after)
{
    n_alloc = n_free = n_live = 0;
    fail_from = fail_after;
    resp_set_allocator(count_malloc, count_realloc, count_free);
}

static void libc_alloc(void) { resp_set_allocator(NULL, NULL, NULL); }

TestSuite(alloc, .fini = libc_alloc);

Test(alloc, encoder_out_of_memory_leaves_buffer)
{
    resp_buf b = {0};
    counting(0);
    const void *argv[] = {"GET", "k"};
    size_t lens[] = {3, 1};
    cr_assert_eq(resp_encode(&b, 2, argv, lens), -1);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);

    /* Room for the first command, then none to grow: the second is rolled back whole. */
    counting(1);
    cr_assert_eq(resp_encode(&b, 2, argv, lens), 0);
    size_t len = b.len;
    char big[300];
    memset(big, 'v', sizeof big);
    const void *argv2[] = {"SET", "k", big};
    size_t lens2[] = {3, 1, sizeof big};
    cr_assert_eq(resp_encode(&b, 3, argv2, lens2), -1);
    cr_assert_eq(b.len, len);
    cr_assert(memcmp(b.data, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", len) == 0);
    cr_assert_eq(resp_encode_int(&b, LLONG_MIN), 0);   /* fits in what is left */
    resp_buf_free(&b);
    cr_assert_eq(n_live, 0);
}

Test(alloc, array_nodes_use_the_hook)
{
    counting(-1);
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r = parse_whole(&p, S(TWELVE));
    cr_assert_eq(r->len, 12);
    cr_assert_gt(n_alloc, 0, "the array nodes come from the hook");
    cr_assert_eq(n_live, 1);
    for (size_t i = 0; i < 12; i++)
        cr_assert_eq(resp_element(r, i)->integer, (long long)i);
    resp_parser_free(&p);
    cr_assert_eq(n_live, 0, "resp_parser_free returns them through the hook");
    cr_assert_gt(n_free, 0);

    /* Restored with NULLs: the hook is not called any more. */
    libc_alloc();
    long before = n_alloc;
    resp_parser_init(&p, NULL);
    parse_whole(&p, S(TWELVE));
    resp_parser_free(&p);
    void *m = resp_malloc(10);
    m = resp_realloc(m, 20);
    resp_free(m);
    cr_assert_eq(n_alloc, before);
}

Test(alloc, none_for_scalars_and_small_arrays)
{
    static const sample scalars[] = {
        {"", S("+OK\r\n")}, {"", S("-ERR e\r\n")}, {"", S(":-7\r\n")},
        {"", S("$3\r\na\r\n\r\n")}, {"", S("$-1\r\n")}, {"", S("*-1\r\n")}, {"", S("*0\r\n")},
    };
    counting(0);     /* and any allocation would fail */
    resp_parser p;
    resp_parser_init(&p, NULL);
    for (int i = 0; i < 1000; i++) {
        const sample *s = &scalars[i % 7];
        const resp_reply *r = parse_whole(&p, s->s, s->n);
        expect_reply(r, s->s, s->n, "scalar");
    }
    /* The parser keeps 4 nodes inline: an array and up to 3 scalars need no memory. */
    const resp_reply *r = parse_whole(&p, S("*3\r\n:1\r\n$1\r\nx\r\n+y\r\n"));
    cr_assert_eq(r->len, 3);
    r = parse_whole(&p, S("*1\r\n*1\r\n:5\r\n"));
    cr_assert_eq(resp_element(resp_element(r, 0), 0)->integer, 5);
    cr_assert_eq(n_alloc, 0);
    resp_parser_free(&p);
    cr_assert_eq(n_alloc, 0);
}

Test(alloc, out_of_memory_then_recovers)
{
    for (long ok = 0; ok < 3; ok++) {
        /* 8 nodes, then 16, then 32: a 20-element array needs all three. */
        counting(ok);
        size_t n;
        char *s = repeat("*20\r\n", ":1\r\n", 20, "", &n);
        resp_parser p;
        resp_parser_init(&p, NULL);
        const resp_reply *r = NULL;
        cr_assert_eq(resp_parse(&p, s, n, &r), RESP_ENOMEM, "fails after %ld allocations", ok);
        resp_parser_free(&p);
        cr_assert_eq(n_live, 0, "nothing leaks");

        fail_from = -1;
        resp_parser_init(&p, NULL);
        cr_assert_eq(resp_parse(&p, s, n, &r), (long long)n);
        cr_assert_eq(r->len, 20);
        resp_parser_free(&p);
        cr_assert_eq(n_live, 0);
        free(s);
    }
    /* After RESP_ENOMEM a reset parser starts over on the same bytes. */
    counting(0);
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r = NULL;
    cr_assert_eq(resp_parse(&p, S(TWELVE), &r), RESP_ENOMEM);
    fail_from = -1;
    resp_parser_reset(&p);
    r = parse_whole(&p, S(TWELVE));
    expect_reply(r, S(TWELVE), "after ENOMEM");
    resp_parser_free(&p);
    cr_assert_eq(n_live, 0);
}

/* ---- parser: the reply types --------------------------------------------------------- */

static resp_parser P;
static void parser_up(void) { resp_parser_init(&P, NULL); }
static void parser_down(void) { resp_parser_free(&P); }

TestSuite(parse, .init = parser_up, .fini = parser_down);

Test(parse, simple_string)
{
    const char in[] = "+OK\r\n";
    const resp_reply *r = parse_whole(&P, in, 5);
    cr_assert_eq(r->type, RESP_STRING);
    cr_assert_eq(r->len, 2);
    cr_assert_eq(r->str, in + 1, "str points into the bytes given");
    r = parse_whole(&P, S("+\r\n"));
    cr_assert_eq(r->type, RESP_STRING);
    cr_assert_eq(r->len, 0);
    cr_assert_not_null(r->str);
}

Test(parse, error)
{
    const resp_reply *r = parse_whole(&P, S("-WRONGTYPE Operation against a key\r\n"));
    cr_assert_eq(r->type, RESP_ERROR);
    cr_assert_eq(r->len, 33);
    cr_assert(memcmp(r->str, "WRONGTYPE Operation against a key", 33) == 0);
}

Test(parse, integers)
{
    static const struct { const char *s; size_t n; long long v; } t[] = {
        {S(":0\r\n"), 0},
        {S(":1\r\n"), 1},
        {S(":-1\r\n"), -1},
        {S(":-42\r\n"), -42},
        {S(":1000\r\n"), 1000},
        {S(":9223372036854775807\r\n"), LLONG_MAX},
        {S(":-9223372036854775808\r\n"), LLONG_MIN},
        {S(":9223372036854775806\r\n"), LLONG_MAX - 1},
        {S(":-9223372036854775807\r\n"), LLONG_MIN + 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const resp_reply *r = parse_whole(&P, t[i].s, t[i].n);
        cr_assert_eq(r->type, RESP_INTEGER);
        cr_assert_eq(r->integer, t[i].v, "%s", t[i].s);
        cr_assert_eq(r->len, 0);
    }
}

Test(parse, bulk_strings)
{
    const char in[] = "$5\r\nhello\r\n";
    const resp_reply *r = parse_whole(&P, in, sizeof in - 1);
    cr_assert_eq(r->type, RESP_BULK);
    cr_assert_eq(r->len, 5);
    cr_assert_eq(r->str, in + 4);

    r = parse_whole(&P, S("$0\r\n\r\n"));
    cr_assert_eq(r->type, RESP_BULK);
    cr_assert_eq(r->len, 0);
    cr_assert_not_null(r->str, "an empty bulk is not nil");

    r = parse_whole(&P, S("$8\r\n\r\n\0\r\n\n\r\r\r\n"));
    cr_assert_eq(r->type, RESP_BULK);
    cr_assert_eq(r->len, 8);
    cr_assert(memcmp(r->str, "\r\n\0\r\n\n\r\r", 8) == 0);

    r = parse_whole(&P, S("$-1\r\n"));
    cr_assert_eq(r->type, RESP_NIL);
    cr_assert_null(r->str);
}

Test(parse, arrays)
{
    const resp_reply *r = parse_whole(&P, S("*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"));
    cr_assert_eq(r->type, RESP_ARRAY);
    cr_assert_eq(r->len, 2);
    cr_assert(resp_element(r, 0)->len == 3 && memcmp(resp_element(r, 0)->str, "foo", 3) == 0);
    cr_assert(resp_element(r, 1)->len == 3 && memcmp(resp_element(r, 1)->str, "bar", 3) == 0);

    r = parse_whole(&P, S("*0\r\n"));
    cr_assert_eq(r->type, RESP_ARRAY);
    cr_assert_eq(r->len, 0);

    r = parse_whole(&P, S("*-1\r\n"));
    cr_assert_eq(r->type, RESP_NIL_ARRAY);
    cr_assert_eq(r->len, 0);
}

Test(parse, nested_arrays)
{
    /* [[1, ["a"]], "bc", []] */
    const resp_reply *r = parse_whole(&P, S(NESTED));
    cr_assert_eq(r->type, RESP_ARRAY);
    cr_assert_eq(r->len, 3);
    const resp_reply *e0 = resp_element(r, 0), *e1 = resp_element(r, 1), *e2 = resp_element(r, 2);
    cr_assert_eq(e0->type, RESP_ARRAY);
    cr_assert_eq(e0->len, 2);
    cr_assert_eq(resp_element(e0, 0)->type, RESP_INTEGER);
    cr_assert_eq(resp_element(e0, 0)->integer, 1);
    const resp_reply *inner = resp_element(e0, 1);
    cr_assert_eq(inner->type, RESP_ARRAY);
    cr_assert_eq(inner->len, 1);
    cr_assert_eq(resp_element(inner, 0)->type, RESP_STRING);
    cr_assert(resp_element(inner, 0)->len == 1 && resp_element(inner, 0)->str[0] == 'a');
    cr_assert_eq(e1->type, RESP_BULK);
    cr_assert(e1->len == 2 && memcmp(e1->str, "bc", 2) == 0);
    cr_assert_eq(e2->type, RESP_ARRAY);
    cr_assert_eq(e2->len, 0);

    /* Eight levels deep, the default limit. */
    r = parse_whole(&P, S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n$1\r\nx\r\n"));
    for (int d = 0; d < 8; d++) {
        cr_assert_eq(r->type, RESP_ARRAY);
        cr_assert_eq(r->len, 1);
        r = resp_element(r, 0);
    }
    cr_assert(r->type == RESP_BULK && r->len == 1 && r->str[0] == 'x');
}

Test(parse, array_of_mixed_types)
{
    const resp_reply *r = parse_whole(&P, S(MIXED));
    cr_assert_eq(r->type, RESP_ARRAY);
    cr_assert_eq(r->len, 7);
    static const int types[] = {RESP_STRING, RESP_ERROR,     RESP_INTEGER, RESP_BULK,
                                RESP_NIL,    RESP_NIL_ARRAY, RESP_ARRAY};
    for (size_t i = 0; i < 7; i++)
        cr_assert_eq(resp_element(r, i)->type, types[i], "element %zu", i);
    cr_assert(memcmp(resp_element(r, 0)->str, "OK", 2) == 0);
    cr_assert(resp_element(r, 1)->len == 5 && memcmp(resp_element(r, 1)->str, "ERR x", 5) == 0);
    cr_assert_eq(resp_element(r, 2)->integer, -5);
    cr_assert(resp_element(r, 3)->len == 3 && memcmp(resp_element(r, 3)->str, "a\0b", 3) == 0);
    cr_assert_eq(resp_element(r, 6)->len, 0);
}

Test(parse, every_sample_round_trips)
{
    for (size_t i = 0; i < NVALID; i++) {
        const resp_reply *r = parse_whole(&P, valid[i].s, valid[i].n);
        expect_reply(r, valid[i].s, valid[i].n, valid[i].name);
    }
}

Test(parse, lenient_numbers_kept)
{
    /* Not what a server sends, but harmless: leading zeros and "-0" are read as numbers. */
    const resp_reply *r = parse_whole(&P, S(":007\r\n"));
    cr_assert_eq(r->integer, 7);
    r = parse_whole(&P, S(":-0\r\n"));
    cr_assert_eq(r->integer, 0);
}

/* ---- every split point --------------------------------------------------------------- */

/* For every k: a fresh parser gets the first k bytes (exactly k, in their own allocation),
   then all of them at a new address. */
static void split_fresh(const sample *s)
{
    for (size_t k = 0; k < s->n; k++) {
        resp_parser p;
        resp_parser_init(&p, NULL);
        const resp_reply *r = NULL;
        char *part = dup_bytes(s->s, k);
        cr_assert_eq(resp_parse(&p, part, k, &r), RESP_PARTIAL, "%s: %zu of %zu bytes", s->name,
                     k, s->n);
        char *all = dup_bytes(s->s, s->n);
        drop(part, k);
        r = parse_whole(&p, all, s->n);
        expect_reply(r, s->s, s->n, s->name);
        free(all);
        resp_parser_free(&p);
    }
}

/* One parser, the bytes arriving one at a time, each call on a new copy at a new address. */
static void split_growing(const sample *s)
{
    resp_parser p;
    resp_parser_init(&p, NULL);
    char *prev = NULL;
    const resp_reply *r = NULL;
    for (size_t k = 1; k <= s->n; k++) {
        char *cur = dup_bytes(s->s, k);
        drop(prev, k - 1);
        prev = cur;
        long long got = resp_parse(&p, cur, k, &r);
        if (k < s->n) {
            cr_assert_eq(got, RESP_PARTIAL, "%s: %zu of %zu bytes", s->name, k, s->n);
            size_t want = resp_parser_want(&p);
            cr_assert(want == 0 || (want > k && want <= s->n), "%s: want %zu", s->name, want);
        } else {
            cr_assert_eq(got, (long long)s->n, "%s: all bytes", s->name);
            expect_reply(r, s->s, s->n, s->name);
        }
    }
    free(prev);
    resp_parser_free(&p);
}

Test(split, every_prefix_then_all) { for (size_t i = 0; i < NVALID; i++) split_fresh(&valid[i]); }
Test(split, byte_by_byte_moving) { for (size_t i = 0; i < NVALID; i++) split_growing(&valid[i]); }

Test(split, back_to_back)
{
    size_t total = 0;
    for (size_t i = 0; i < NVALID; i++)
        total += valid[i].n;
    char *all = malloc(total);
    cr_assert_not_null(all);
    for (size_t i = 0, at = 0; i < NVALID; at += valid[i].n, i++)
        memcpy(all + at, valid[i].s, valid[i].n);

    /* All in one buffer: each call consumes exactly one reply. */
    resp_parser p;
    resp_parser_init(&p, NULL);
    size_t at = 0;
    for (size_t i = 0; i < NVALID; i++) {
        const resp_reply *r = NULL;
        long long got = resp_parse(&p, all + at, total - at, &r);
        cr_assert_eq(got, (long long)valid[i].n, "%s: consumed %lld", valid[i].name, got);
        expect_reply(r, valid[i].s, valid[i].n, valid[i].name);
        at += (size_t)got;
    }
    cr_assert_eq(at, total);

    /* As a stream arriving in chunks of c bytes, the unparsed rest copied anew each call. */
    for (size_t c = 1; c <= 13; c++) {
        size_t start = 0, avail = 0, next = 0;
        while (next < NVALID) {
            avail = avail + c < total ? avail + c : total;
            for (;;) {
                char *buf = dup_bytes(all + start, avail - start);
                const resp_reply *r = NULL;
                long long got = resp_parse(&p, buf, avail - start, &r);
                if (got == RESP_PARTIAL) {
                    cr_assert(avail < total, "chunks of %zu: stuck at %s", c, valid[next].name);
                    free(buf);
                    break;
                }
                cr_assert_eq(got, (long long)valid[next].n, "chunks of %zu: %s", c,
                             valid[next].name);
                expect_reply(r, valid[next].s, valid[next].n, valid[next].name);
                free(buf);
                start += (size_t)got;
                if (++next == NVALID || start == avail)
                    break;
            }
        }
        cr_assert_eq(start, total);
    }
    resp_parser_free(&p);
    free(all);
}

/* ---- reads past the bytes given: each input ends right before an unreadable page ----- */

typedef struct guard {
    char *map;
    size_t maplen, room;    /* room: readable bytes before the PROT_NONE page */
} guard;

static void guard_init(guard *g, size_t need)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->room = (need + page - 1) / page * page;
    g->maplen = g->room + page;
    void *m = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    g->map = m;
    cr_assert_eq(mprotect(g->map + g->room, page, PROT_NONE), 0);
}

static void guard_free(guard *g) { munmap(g->map, g->maplen); }

/* Copies s[0..n) so that its last byte is the last readable one. */
static char *guard_put(guard *g, const char *s, size_t n)
{
    cr_assert(n <= g->room);
    char *at = g->map + g->room - n;
    if (n)
        memmove(at, s, n);
    return at;
}

static sigjmp_buf fault_jump;
static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(fault_jump, 1);
}

/* Proves the guard: reading the byte after an input faults (caught here, so that this works
   under ASan too, which otherwise turns the SIGSEGV into an exit). */
Test(guard, the_guard_page_faults)
{
    guard g;
    guard_init(&g, 16);
    volatile const char *end = guard_put(&g, "abc", 3) + 3;
    cr_assert_eq(end[-1], 'c');
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGSEGV, &sa, &old), 0);
    volatile int faulted = 0;
    if (sigsetjmp(fault_jump, 1) == 0)
        (void)*end;
    else
        faulted = 1;
    sigaction(SIGSEGV, &old, NULL);
    cr_assert(faulted, "the byte after the input must be unreadable");
    guard_free(&g);
}

/* Every prefix, to a fresh parser and to one that saw the shorter prefixes. */
static void guard_prefixes(guard *g, const sample *s, int valid_reply)
{
    resp_parser grow;
    resp_parser_init(&grow, NULL);
    long long gr = RESP_PARTIAL;
    for (size_t k = 0; k <= s->n; k++) {
        resp_parser p;
        resp_parser_init(&p, NULL);
        const resp_reply *r = NULL;
        char *b = guard_put(g, s->s, k);
        long long got = resp_parse(&p, b, k, &r);
        if (got > 0)
            expect_reply(r, s->s, s->n, s->name);   /* also reads every str byte */
        if (valid_reply)
            cr_assert_eq(got, k < s->n ? RESP_PARTIAL : (long long)s->n, "%s at %zu", s->name, k);
        resp_parser_free(&p);
        if (gr == RESP_PARTIAL) {
            gr = resp_parse(&grow, guard_put(g, s->s, k), k, &r);
            cr_assert_eq(gr, got, "%s at %zu: growing and fresh parsers differ", s->name, k);
        }
    }
    resp_parser_free(&grow);
}

Test(guard, no_read_past_the_end)
{
    guard g;
    guard_init(&g, 4096);
    for (size_t i = 0; i < NVALID; i++)
        guard_prefixes(&g, &valid[i], 1);
    for (size_t i = 0; i < NMALFORMED; i++)
        guard_prefixes(&g, &malformed[i], 0);
    guard_free(&g);
}

/* ---- malformed input ----------------------------------------------------------------- */

/* ---- RESP3 ------------------------------------------------------------------------------ */

TestSuite(resp3, .init = parser_up, .fini = parser_down);

Test(resp3, scalars)
{
    const resp_reply *r = parse_whole(&P, S("_\r\n"));
    cr_assert_eq(r->type, RESP_NIL, "a RESP3 null reads as RESP2's nil");
    r = parse_whole(&P, S("#t\r\n"));
    cr_assert(r->type == RESP_BOOLEAN && r->integer == 1);
    r = parse_whole(&P, S("#f\r\n"));
    cr_assert(r->type == RESP_BOOLEAN && r->integer == 0);
    r = parse_whole(&P, S(",3.25\r\n"));
    cr_assert(r->type == RESP_DOUBLE && r->len == 4 && memcmp(r->str, "3.25", 4) == 0);
    r = parse_whole(&P, S("(-12345678901234567890123\r\n"));
    cr_assert(r->type == RESP_BIGNUM && r->len == 24 && r->str[0] == '-');
    r = parse_whole(&P, S("=8\r\ntxt:a\r\nb\r\n"));
    cr_assert(r->type == RESP_VERBATIM && r->len == 4 && memcmp(r->str, "a\r\nb", 4) == 0);
    cr_assert(memcmp(r->str - 4, "txt:", 4) == 0, "the format sits before the text");
    r = parse_whole(&P, S("!22\r\nSYNTAX invalid\r\nsyntax\r\n"));
    cr_assert(r->type == RESP_ERROR && r->len == 22, "a blob error is an error");
}

Test(resp3, map_and_push)
{
    const char in[] = "%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n";
    const resp_reply *r = parse_whole(&P, in, sizeof in - 1);
    cr_assert_eq(r->type, RESP_MAP);
    cr_assert_eq(r->len, 4, "a map of 2 pairs has 4 elements");
    cr_assert_eq(resp_element(r, 3)->integer, 3);
    cr_assert(memcmp(resp_element(r, 1)->str, "redis", 5) == 0);
    r = parse_whole(&P, S(">2\r\n$10\r\ninvalidate\r\n_\r\n"));
    cr_assert_eq(r->type, RESP_PUSH);
    cr_assert_eq(resp_element(r, 1)->type, RESP_NIL, "FLUSHALL's invalidation: a null");
    r = parse_whole(&P, S("~3\r\n:1\r\n:2\r\n:3\r\n"));
    cr_assert(r->type == RESP_SET && r->len == 3 && resp_element(r, 2)->integer == 3);
}

Test(resp3, attributes_are_skipped)
{
    const char top[] = "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:42\r\n";
    const resp_reply *r = parse_whole(&P, top, sizeof top - 1);
    cr_assert(r->type == RESP_INTEGER && r->integer == 42, "the reply after the attribute");
    cr_assert_eq(r->span, 1);
    const char nested[] = "*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n|0\r\n:2\r\n";
    r = parse_whole(&P, nested, sizeof nested - 1);
    cr_assert(r->type == RESP_ARRAY && r->len == 2 && r->span == 3);
    cr_assert(resp_element(r, 0)->integer == 1 && resp_element(r, 1)->integer == 2);
    for (size_t k = 0; k < sizeof nested - 1; k++)
        expect_partial(NULL, nested, k);
    for (size_t k = 0; k < sizeof top - 1; k++)
        expect_partial(NULL, top, k);
}

Test(resp3, limits_hold)
{
    resp_limits lim = {.max_elements = 2, .max_depth = 2, .max_bulk = 4};
    expect_eproto(&lim, S("%3\r\n"));
    expect_eproto(&lim, S("~3\r\n"));
    expect_eproto(&lim, S(">3\r\n"));
    expect_eproto(&lim, S("|3\r\n"));
    expect_eproto(&lim, S("!5\r\n"));
    expect_eproto(&lim, S("=9\r\n"));
    expect_eproto(&lim, S("%1\r\n+a\r\n~1\r\n*1\r\n"));
    expect_eproto(&lim, S("*1\r\n|1\r\n+a\r\n*1\r\n"));   /* an attribute nests too */
    resp_parser p;
    resp_parser_init(&p, &lim);
    const resp_reply *r;
    cr_assert_eq(resp_parse(&p, S("%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n"), &r), 20);
    resp_parser_free(&p);
}

Test(resp3, no_allocation_for_scalars)
{
    static const char *const in[] = {"_\r\n", "#t\r\n", ",1e5\r\n", "(7\r\n", "=5\r\ntxt:x\r\n",
                                     "!1\r\nx\r\n", "%1\r\n:1\r\n:2\r\n", ">1\r\n:1\r\n"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        resp_parser p;
        resp_parser_init(&p, NULL);
        const resp_reply *r;
        cr_assert_gt(resp_parse(&p, in[i], strlen(in[i]), &r), 0, "%s", in[i]);
        cr_assert_null(p.nodes, "%s: the inline nodes suffice", in[i]);
        resp_parser_free(&p);
    }
}

Test(malformed, every_class_is_eproto)
{
    for (size_t i = 0; i < NMALFORMED; i++) {
        const sample *s = &malformed[i];
        cr_assert_eq(parse_fresh(NULL, s->s, s->n), RESP_EPROTO, "%s", s->name);
    }
}

/* Each prefix is partial until the error shows; from then on every longer one fails too,
   and a parser fed the bytes one at a time fails at the same byte. */
Test(malformed, fails_as_soon_as_it_shows)
{
    for (size_t i = 0; i < NMALFORMED; i++) {
        const sample *s = &malformed[i];
        size_t first = 0;
        for (size_t k = 0; k <= s->n; k++) {
            long long got = parse_fresh(NULL, s->s, k);
            if (first) {
                cr_assert_eq(got, RESP_EPROTO, "%s: fails at %zu but not at %zu", s->name,
                             first, k);
            } else if (got == RESP_EPROTO) {
                first = k;
            } else {
                cr_assert_eq(got, RESP_PARTIAL, "%s: %zu bytes give %lld", s->name, k, got);
            }
        }
        cr_assert_gt(first, 0, "%s", s->name);

        resp_parser p;
        resp_parser_init(&p, NULL);
        const resp_reply *r;
        char *prev = NULL;
        for (size_t k = 1; k <= first; k++) {
            char *cur = dup_bytes(s->s, k);
            drop(prev, k - 1);
            prev = cur;
            long long got = resp_parse(&p, cur, k, &r);
            cr_assert_eq(got, k < first ? RESP_PARTIAL : RESP_EPROTO, "%s growing: %zu", s->name,
                         k);
        }
        free(prev);
        resp_parser_free(&p);
    }
}

Test(malformed, unknown_type_fails_at_the_first_byte)
{
    /* No need to wait for a line that may never end. */
    static const char *const bytes[] = {"x", "?", ";", ".", "\x80\x81garbage", " ", "\r", "\n"};
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        expect_eproto(NULL, bytes[i], strlen(bytes[i]));
    expect_eproto(NULL, "\0", 1);
    expect_eproto(NULL, S("*2\r\n:1\r\n?"));
    expect_eproto(NULL, S("*1\r\n*1\r\n@"));
    expect_partial(NULL, S("*2\r\n:1\r\n+"));
}

Test(malformed, parser_works_after_an_error)
{
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r;
    for (size_t i = 0; i < NMALFORMED; i++) {
        cr_assert_eq(resp_parse(&p, malformed[i].s, malformed[i].n, &r), RESP_EPROTO);
        cr_assert_str_neq(resp_parser_error(&p), "");
        /* The error reset the parser; an explicit reset changes nothing. */
        if (i % 2)
            resp_parser_reset(&p);
        const sample *v = &valid[i % NVALID];
        r = parse_whole(&p, v->s, v->n);
        expect_reply(r, v->s, v->n, v->name);
    }
    /* An error midway through an array, then a new reply. */
    cr_assert_eq(resp_parse(&p, S("*3\r\n:1\r\n:2\r\n"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parse(&p, S("*3\r\n:1\r\n:2\r\n:x\r\n"), &r), RESP_EPROTO);
    r = parse_whole(&p, S("*1\r\n:3\r\n"));
    cr_assert_eq(resp_element(r, 0)->integer, 3);
    resp_parser_free(&p);

    /* Free then init again; and reset forgets a partial reply. */
    resp_parser_init(&p, NULL);
    r = parse_whole(&p, S(TWELVE));
    cr_assert_eq(r->len, 12);
    resp_parser_free(&p);
    resp_parser_init(&p, NULL);
    cr_assert_eq(resp_parse(&p, S("*2\r\n$5\r\nab"), &r), RESP_PARTIAL);
    resp_parser_reset(&p);
    r = parse_whole(&p, S("+OK\r\n"));
    cr_assert_eq(r->type, RESP_STRING);
    resp_parser_free(&p);
}

/* ---- limits -------------------------------------------------------------------------- */

static const resp_limits small = {.max_bulk = 5, .max_elements = 3, .max_depth = 2, .max_line = 8};

Test(limits, bulk)
{
    expect_ok(&small, S("$5\r\nabcde\r\n"));
    expect_ok(&small, S("$0\r\n\r\n"));
    expect_eproto(&small, S("$6\r\n"));                    /* before any data arrives */
    expect_eproto(&small, S("$6\r\nabcdef\r\n"));
    expect_ok(&small, S("*1\r\n$5\r\nabcde\r\n"));
    expect_eproto(&small, S("*1\r\n$6\r\n"));
}

Test(limits, elements)
{
    expect_ok(&small, S("*3\r\n:1\r\n:2\r\n:3\r\n"));
    expect_eproto(&small, S("*4\r\n"));                    /* before any element */
    expect_ok(&small, S("*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n:4\r\n"));
    expect_eproto(&small, S("*2\r\n:1\r\n*4\r\n"));
}

Test(limits, depth)
{
    expect_ok(&small, S("*1\r\n*1\r\n:1\r\n"));
    expect_ok(&small, S("*2\r\n*1\r\n:1\r\n*-1\r\n"));     /* a nil array does not nest */
    expect_ok(&small, S("*1\r\n*0\r\n"));
    expect_eproto(&small, S("*1\r\n*1\r\n*1\r\n"));
    expect_eproto(&small, S("*1\r\n*1\r\n*0\r\n"));        /* an empty array nests too */

    resp_limits one = {.max_depth = 1};
    expect_ok(&one, S("*3\r\n:1\r\n$-1\r\n*-1\r\n"));
    expect_ok(&one, S("*0\r\n"));
    expect_eproto(&one, S("*1\r\n*0\r\n"));
    expect_eproto(&one, S("*1\r\n*1\r\n"));

    /* Asking for more than RESP_HARD_MAX_DEPTH gets that. */
    resp_limits deep = {.max_depth = 1000};
    resp_parser p;
    resp_parser_init(&p, &deep);
    cr_assert_eq(p.lim.max_depth, RESP_HARD_MAX_DEPTH);
    resp_parser_free(&p);
    size_t n;
    char *s = repeat("", "*1\r\n", RESP_HARD_MAX_DEPTH, ":1\r\n", &n);
    expect_ok(&deep, s, n);
    free(s);
    s = repeat("", "*1\r\n", RESP_HARD_MAX_DEPTH + 1, ":1\r\n", &n);
    expect_eproto(&deep, s, n);
    free(s);
}

Test(limits, line)
{
    expect_ok(&small, S("+12345678\r\n"));
    expect_ok(&small, S("-12345678\r\n"));
    expect_ok(&small, S(":12345678\r\n"));
    expect_eproto(&small, S("+123456789\r\n"));
    expect_eproto(&small, S("-123456789\r\n"));
    expect_eproto(&small, S(":123456789\r\n"));
    expect_eproto(&small, S("*1\r\n+123456789\r\n"));
    /* A line that keeps growing fails without waiting for its CRLF. */
    expect_partial(&small, S("+12345678"));
    expect_partial(&small, S("+12345678\r"));
    expect_eproto(&small, S("+123456789"));
    expect_eproto(&small, S("+123456789\r"));
    expect_partial(&small, S("*1\r\n+12345678"));
    expect_eproto(&small, S("*1\r\n+123456789"));

    /* The same with one parser, one byte at a time. */
    resp_parser p;
    resp_parser_init(&p, &small);
    const char *s = "+123456789";
    const resp_reply *r;
    for (size_t k = 1; k <= 10; k++)
        cr_assert_eq(resp_parse(&p, s, k, &r), k < 10 ? RESP_PARTIAL : RESP_EPROTO, "%zu", k);
    resp_parser_free(&p);
}

Test(limits, defaults)
{
    resp_parser p;
    resp_parser_init(&p, NULL);
    cr_assert_eq(p.lim.max_bulk, (size_t)536870912);
    cr_assert_eq(p.lim.max_elements, (size_t)1048576);
    cr_assert_eq(p.lim.max_depth, 8);
    cr_assert_eq(p.lim.max_line, (size_t)65536);
    cr_assert_eq(RESP_DEFAULT_MAX_BULK, p.lim.max_bulk);
    resp_parser_free(&p);
    resp_limits zero = {0};
    resp_parser_init(&p, &zero);
    cr_assert_eq(p.lim.max_bulk, RESP_DEFAULT_MAX_BULK);
    cr_assert_eq(p.lim.max_elements, RESP_DEFAULT_MAX_ELEMENTS);
    cr_assert_eq(p.lim.max_depth, RESP_DEFAULT_MAX_DEPTH);
    cr_assert_eq(p.lim.max_line, RESP_DEFAULT_MAX_LINE);

    const resp_reply *r;
    cr_assert_eq(resp_parse(&p, S("$536870912\r\n"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), (size_t)12 + 536870912 + 2);
    resp_parser_reset(&p);
    cr_assert_eq(resp_parse(&p, S("$536870913\r\n"), &r), RESP_EPROTO);
    cr_assert_eq(resp_parse(&p, S("*1048576\r\n"), &r), RESP_PARTIAL);
    resp_parser_reset(&p);
    cr_assert_eq(resp_parse(&p, S("*1048577\r\n"), &r), RESP_EPROTO);
    resp_parser_free(&p);

    size_t n;
    char *s = repeat("", "*1\r\n", 8, ":1\r\n", &n);
    expect_ok(NULL, s, n);
    free(s);
    s = repeat("", "*1\r\n", 9, ":1\r\n", &n);
    expect_eproto(NULL, s, n);
    free(s);

    s = repeat("+", "a", 65536, "\r\n", &n);
    expect_ok(NULL, s, n);
    expect_partial(NULL, s, n - 2);
    free(s);
    s = repeat("+", "a", 65537, "\r\n", &n);
    expect_eproto(NULL, s, n);
    expect_eproto(NULL, s, n - 2);      /* no CRLF yet */
    free(s);
}

/* ---- the want hint ------------------------------------------------------------------- */

Test(want, bulk_size_hint)
{
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r;
    cr_assert_eq(resp_parser_want(&p), 0);
    cr_assert_eq(resp_parse(&p, S("$10\r"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), 0, "unknown before the length line ends");
    cr_assert_eq(resp_parse(&p, S("$10\r\n"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), 17, "the whole reply: header, data, CRLF");
    cr_assert_eq(resp_parse(&p, S("$10\r\nabcdefgh"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), 17);
    cr_assert_eq(resp_parse(&p, S("$10\r\nabcdefghij\r\n"), &r), 17);
    cr_assert_eq(resp_parser_want(&p), 0);

    /* Inside an array: counted from the reply's first byte. */
    cr_assert_eq(resp_parse(&p, S("*2\r\n:1\r\n$5\r\nab"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), 19);
    cr_assert_eq(resp_parse(&p, S("*2\r\n:1\r\n$5\r\nabcde\r\n"), &r), 19);
    cr_assert_eq(resp_parse(&p, S("*3\r\n"), &r), RESP_PARTIAL);
    cr_assert_eq(resp_parser_want(&p), 0);
    resp_parser_free(&p);
}

/* ---- no quadratic blowup ------------------------------------------------------------- */

Test(perf, big_array_in_small_chunks, .timeout = 20)
{
    size_t count = 200000, n;
    char *s = repeat("*200000\r\n", ":7\r\n", count, "", &n);
    resp_parser p;
    resp_parser_init(&p, NULL);
    const resp_reply *r = NULL;
    long long got = RESP_PARTIAL;
    size_t len = 0;
    while (got == RESP_PARTIAL && len < n) {
        len = len + 16 < n ? len + 16 : n;
        got = resp_parse(&p, s, len, &r);
    }
    cr_assert_eq(got, (long long)n);
    cr_assert_eq(r->len, count);
    for (size_t i = 0; i < count; i++)       /* resp_element on a flat array is direct */
        cr_assert_eq(resp_element(r, i)->integer, 7);
    resp_parser_free(&p);
    free(s);

    /* Nested: 50,000 pairs, walked by span. */
    s = repeat("*50000\r\n", "*2\r\n:1\r\n$1\r\nx\r\n", 50000, "", &n);
    resp_parser_init(&p, NULL);
    len = 0;
    got = RESP_PARTIAL;
    while (got == RESP_PARTIAL && len < n) {
        len = len + 16 < n ? len + 16 : n;
        got = resp_parse(&p, s, len, &r);
    }
    cr_assert_eq(got, (long long)n);
    const resp_reply *e = resp_element(r, 0);
    for (size_t i = 0; i < 50000; i++, e += e->span)
        cr_assert(e->len == 2 && resp_element(e, 1)->str[0] == 'x');
    resp_parser_free(&p);
    free(s);
}

/* ---- the fuzz target's stored inputs ------------------------------------------------- */

/* Feeds every file in $REDKV_SRC/<dir> to the fuzz target; returns how many. */
static int replay_dir(const char *dir)
{
    const char *src = getenv("REDKV_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", src && *src ? src : ".", dir);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        FILE *f = fopen(file, "rb");
        if (!f)
            continue;
        size_t cap = 1 << 16, n;
        uint8_t *buf = malloc(cap);
        cr_assert_not_null(buf);
        n = fread(buf, 1, cap, f);
        fclose(f);
        /* An exact-size copy, so ASan (SANITIZE=1) sees reads past the input. */
        uint8_t *in = malloc(n ? n : 1);
        cr_assert_not_null(in);
        memcpy(in, buf, n);
        free(buf);
        cr_log_info("replaying %s (%zu bytes)", file, n);
        LLVMFuzzerTestOneInput(in, n);
        free(in);
        files++;
    }
    closedir(d);
    return files;
}

Test(fuzz, regressions)
{
    if (replay_dir("fuzz/regress/resp") == 0)
        cr_skip_test("no stored inputs in fuzz/regress/resp");
}

Test(fuzz, seed_corpus)
{
    if (replay_dir("fuzz/corpus/resp") == 0)
        cr_skip_test("no seed corpus in fuzz/corpus/resp");
}
