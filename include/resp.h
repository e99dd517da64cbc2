/* resp.h - the RESP2 codec of redkv (its parser reads RESP3 too), usable on its own: no
 * sockets, no globals but the allocator hook. Public names begin with resp_ (functions, types) or RESP_ (constants). */
#ifndef RESP_H
#define RESP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RESP_API __attribute__((visibility("default")))
#else
#define RESP_API
#endif

/* ---- memory ------------------------------------------------------------------------ */

/* Every allocation of redkv (codec, net, store) goes through these; redkv_set_allocator
   sets them. NULL arguments restore the libc functions. Call before any other use. */
RESP_API void resp_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void (*free_fn)(void *));
RESP_API void *resp_malloc(size_t n);
RESP_API void *resp_realloc(void *p, size_t n);
RESP_API void resp_free(void *p);

/* ---- encoder ----------------------------------------------------------------------- */

/* A growable byte buffer owned by the caller. Zero-initialise it; free with resp_buf_free. */
typedef struct resp_buf {
    char *data;
    size_t len;
    size_t cap;
} resp_buf;

RESP_API int resp_buf_reserve(resp_buf *b, size_t extra);   /* room for extra more bytes: 0, or -1 (no memory) */
RESP_API void resp_buf_free(resp_buf *b);                    /* releases the memory; b is zeroed */

/* Appends one command, an array of argc binary-safe bulk strings, to b.
   0, or -1 when memory ran out (b is left as it was). */
RESP_API int resp_encode(resp_buf *b, int argc, const void *const *argv, const size_t *argvlen);

/* The pieces resp_encode is made of, for callers that build a command in place without
   gathering pointers first. Each returns 0, or -1 when memory ran out; the caller must have
   reserved nothing: each piece reserves its own room. */
RESP_API int resp_encode_header(resp_buf *b, int argc);                             /* "*argc\r\n" */
RESP_API int resp_encode_arg(resp_buf *b, const void *p, size_t n);                 /* "$n\r\n<p>\r\n" */
RESP_API int resp_encode_arg2(resp_buf *b, const void *p1, size_t n1,
                     const void *p2, size_t n2);                           /* one bulk: p1 then p2 */
RESP_API int resp_encode_int(resp_buf *b, long long v);                             /* a bulk of v's digits */

/* Writes v in decimal at out (room for 21 bytes); returns the number of bytes written. */
RESP_API size_t resp_format_ll(char *out, long long v);

/* ---- parser ------------------------------------------------------------------------ */

enum resp_type {
    RESP_STRING = 1,  /* +OK       str/len */
    RESP_ERROR,       /* -ERR ...  str/len */
    RESP_INTEGER,     /* :42       integer */
    RESP_BULK,        /* $3 abc    str/len */
    RESP_NIL,         /* $-1 */
    RESP_ARRAY,       /* *n        len = n elements; see resp_element */
    RESP_NIL_ARRAY,   /* *-1 */
    /* RESP3 (a server spoken to with HELLO 3). Its null "_" reads as RESP_NIL and its blob
       error "!n" as RESP_ERROR, so RESP2 code reads them unchanged. Attributes ("|n") are
       skipped: the reply they annotate is returned. A build with REDKV_NO_CACHE has none of
       these: they are EPROTO there. */
    RESP_MAP,         /* %n        len = 2n elements: key, value, key, value ... */
    RESP_SET,         /* ~n        len = n elements */
    RESP_PUSH,        /* >n        len = n elements; out of band (invalidations), no request's */
    RESP_DOUBLE,      /* ,1.5      str/len: the text as sent (inf, -inf, nan included) */
    RESP_BOOLEAN,     /* #t #f     integer: 1 or 0 */
    RESP_BIGNUM,      /* (1234...  str/len: the digits, '-' first if negative */
    RESP_VERBATIM,    /* =n txt:.. str/len: the text; its 3-byte format is at str - 4 */
};

/* One reply, or one element of an array reply. str points into the bytes given to
   resp_parse and is valid while they are. An array's elements (and a map's, set's or push's)
   follow it in memory; walk them with resp_element. */
typedef struct resp_reply {
    int type;
    size_t len;            /* bytes of str; elements of an array */
    long long integer;     /* RESP_INTEGER */
    const char *str;       /* RESP_STRING, RESP_ERROR, RESP_BULK: not NUL-terminated */
    size_t span;           /* internal: this node and its descendants */
    size_t off;            /* internal: offset of str from the reply's first byte */
} resp_reply;

/* Limits on what a server may send; zero fields mean the defaults below. */
typedef struct resp_limits {
    size_t max_bulk;       /* longest bulk string */
    size_t max_elements;   /* most elements in one array (pairs in one map) */
    size_t max_depth;      /* deepest nesting of arrays (1: arrays of scalars only) */
    size_t max_line;       /* longest simple string, error or length line */
} resp_limits;

#define RESP_DEFAULT_MAX_BULK     ((size_t)512 * 1024 * 1024)
#define RESP_DEFAULT_MAX_ELEMENTS ((size_t)1024 * 1024)
#define RESP_DEFAULT_MAX_DEPTH    8
#define RESP_DEFAULT_MAX_LINE     ((size_t)64 * 1024)
#define RESP_HARD_MAX_DEPTH       64       /* max_depth is clamped to this */

/* Parse results. */
enum {
    RESP_PARTIAL = -2,   /* no complete reply yet: call again with the same bytes and more */
    RESP_EPROTO  = -1,   /* the bytes break RESP (or a limit): resp_parser_error says how */
    RESP_ENOMEM  = -3,   /* no memory for the array nodes */
};

typedef struct resp_parser {
    resp_limits lim;
    resp_reply *nodes;        /* the reply being parsed, flattened in pre-order */
    size_t nnodes, cap;
    size_t pos;               /* bytes of the current reply parsed so far */
    size_t scan;              /* bytes of the current line already searched for CR */
    size_t depth;
    size_t want;              /* bytes needed before the reply can complete, if known */
    struct { size_t node; size_t left; } stack[RESP_HARD_MAX_DEPTH + 1];
    const char *error;        /* text of the last protocol error (static, or error_text) */
    char error_text[48];      /* an error that names the byte at fault */
    resp_reply inline_nodes[4];
} resp_parser;

/* Prepares p; lim may be NULL (defaults). Cannot fail. */
RESP_API void resp_parser_init(resp_parser *p, const resp_limits *lim);
RESP_API void resp_parser_free(resp_parser *p);     /* releases array nodes; p may be re-initialised */
RESP_API void resp_parser_reset(resp_parser *p);    /* forgets a partial reply */

/* Parses one reply from buf[0..len). buf must begin where the current reply begins, and
   after RESP_PARTIAL hold the same bytes again (it may have moved) plus any more.
   Returns the bytes consumed (> 0) with *out set to the reply (valid until the next call
   on p, and while buf's bytes stay), or RESP_PARTIAL, RESP_EPROTO, RESP_ENOMEM.
   Work done on a partial reply is not repeated: a slow sender cannot make it quadratic. */
RESP_API long long resp_parse(resp_parser *p, const char *buf, size_t len, const resp_reply **out);

/* Element i (0-based, < a->len) of array a (or map, set, push). */
RESP_API const resp_reply *resp_element(const resp_reply *a, size_t i);

/* Bytes the parser needs at least before the current reply can complete (beyond len it
   was last given), a hint for sizing reads; 0 when unknown. */
RESP_API size_t resp_parser_want(const resp_parser *p);

RESP_API const char *resp_parser_error(const resp_parser *p);   /* why RESP_EPROTO, in words */

#ifdef __cplusplus
}
#endif
#endif
