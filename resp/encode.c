/* encode.c - writes commands as RESP2 arrays of bulk strings, without printf. */
#include "fmacros.h"

#include <string.h>

#include "resp.h"

int resp_buf_reserve(resp_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    char *data = resp_realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

void resp_buf_free(resp_buf *b)
{
    resp_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

size_t resp_format_ll(char *out, long long v)
{
    char tmp[24];
    size_t n = 0, i = 0;
    /* Work on the magnitude as unsigned so LLONG_MIN does not overflow. */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[i++] = '-';
    while (n)
        out[i++] = tmp[--n];
    return i;
}

/* Appends "<c><v>\r\n"; room must be reserved. */
static void put_line(resp_buf *b, char c, long long v)
{
    char *p = b->data + b->len;
    *p++ = c;
    p += resp_format_ll(p, v);
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
}

enum { LINE_ROOM = 1 + 20 + 2 };

int resp_encode_header(resp_buf *b, int argc)
{
    if (resp_buf_reserve(b, LINE_ROOM))
        return -1;
    put_line(b, '*', argc);
    return 0;
}

int resp_encode_arg2(resp_buf *b, const void *p1, size_t n1, const void *p2, size_t n2)
{
    if (n1 > SIZE_MAX / 4 || n2 > SIZE_MAX / 4 || resp_buf_reserve(b, LINE_ROOM + n1 + n2 + 2))
        return -1;
    put_line(b, '$', (long long)(n1 + n2));
    if (n1)
        memcpy(b->data + b->len, p1, n1);
    if (n2)
        memcpy(b->data + b->len + n1, p2, n2);
    b->len += n1 + n2;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
    return 0;
}

int resp_encode_arg(resp_buf *b, const void *p, size_t n)
{
    return resp_encode_arg2(b, p, n, NULL, 0);
}

int resp_encode_int(resp_buf *b, long long v)
{
    char digits[24];
    return resp_encode_arg(b, digits, resp_format_ll(digits, v));
}

int resp_encode(resp_buf *b, int argc, const void *const *argv, const size_t *argvlen)
{
    size_t start = b->len;
    if (argc < 0 || resp_encode_header(b, argc))
        return -1;
    for (int i = 0; i < argc; i++) {
        if (resp_encode_arg(b, argv[i], argvlen[i])) {
            b->len = start;
            return -1;
        }
    }
    return 0;
}
