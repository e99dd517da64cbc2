/* parser.c - the reply parser alone, no sockets: a stream of one kind of reply (integer,
 * 32-byte bulk, 4 KiB bulk, 10-element array of 12-byte bulks) fed in 16 KiB chunks.
 * redkv: resp_parse on a buffer the caller owns: append 16 KiB, parse every complete
 * reply, move the partial tail to the front. hiredis: redisReaderFeed 16 KiB, then
 * redisReaderGetReply (and freeReplyObject) until no reply is complete - its reader copies
 * and compacts its own buffer the same way. Both see the same bytes in the same chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define CHUNK 16384

enum { PK_INT, PK_BULK32, PK_BULK4K, PK_ARRAY10, NPK };
static const char *const PK_NAME[NPK] = {"integer", "32-byte bulk", "4 KiB bulk",
                                         "10-element array"};

typedef struct stream {
    char *data;
    size_t len;
    long replies;
} stream;

static void put(stream *s, size_t *cap, const char *p, size_t n)
{
    if (s->len + n > *cap) {
        *cap = (*cap + n) * 2;
        s->data = realloc(s->data, *cap);
        if (!s->data)
            die("out of memory");
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

/* About 8 MiB of one kind of reply, with some variety in the values. */
static void make_stream(int kind, stream *s)
{
    size_t cap = 0;
    char tmp[64];
    static char big[4096];
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    const size_t target = 8u << 20;
    while (s->len < target) {
        long i = s->replies++;
        int n;
        switch (kind) {
        case PK_INT:
            n = snprintf(tmp, sizeof tmp, ":%ld\r\n", 1000000 + i * 7919 % 9000000);
            put(s, &cap, tmp, (size_t)n);
            break;
        case PK_BULK32:
            n = snprintf(tmp, sizeof tmp, "$32\r\nvalue-%026ld\r\n", i);
            put(s, &cap, tmp, (size_t)n);
            break;
        case PK_BULK4K:
            put(s, &cap, "$4096\r\n", 7);
            put(s, &cap, big, sizeof big);
            put(s, &cap, "\r\n", 2);
            break;
        default:
            put(s, &cap, "*10\r\n", 5);
            for (int e = 0; e < 10; e++) {
                n = snprintf(tmp, sizeof tmp, "$12\r\nkey:%08ld\r\n", (i * 10 + e) % 100000000);
                put(s, &cap, tmp, (size_t)n);
            }
            break;
        }
    }
}

/* One pass over the stream; returns the replies parsed (checked against the stream). */
static long redkv_pass(const stream *s, char *buf, resp_parser *p)
{
    size_t have = 0;             /* bytes in buf: the partial tail of the last chunk */
    long got = 0;
    long long check = 0;
    for (size_t off = 0; off < s->len; off += CHUNK) {
        size_t n = s->len - off < CHUNK ? s->len - off : CHUNK;
        memcpy(buf + have, s->data + off, n);
        have += n;
        size_t pos = 0;
        for (;;) {
            const resp_reply *r;
            long long used = resp_parse(p, buf + pos, have - pos, &r);
            if (used == RESP_PARTIAL)
                break;
            if (used < 0)
                die("resp_parse: %s", resp_parser_error(p));
            check += r->type == RESP_INTEGER ? r->integer : (long long)r->len;
            pos += (size_t)used;
            got++;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    if (have || check == 0)
        die("redkv parser pass did not end on a reply boundary");
    return got;
}

#ifdef HAVE_HIREDIS
static long hiredis_pass(const stream *s)
{
    redisReader *rd = redisReaderCreate();
    long got = 0;
    long long check = 0;
    for (size_t off = 0; off < s->len; off += CHUNK) {
        size_t n = s->len - off < CHUNK ? s->len - off : CHUNK;
        if (redisReaderFeed(rd, s->data + off, n) != REDIS_OK)
            die("redisReaderFeed failed");
        for (;;) {
            void *v = NULL;
            if (redisReaderGetReply(rd, &v) != REDIS_OK)
                die("redisReaderGetReply: %s", rd->errstr);
            if (!v)
                break;
            redisReply *r = v;
            check += r->type == REDIS_REPLY_INTEGER ? r->integer : (long long)(r->len + r->elements);
            freeReplyObject(r);
            got++;
        }
    }
    redisReaderFree(rd);
    if (check == 0)
        die("hiredis reader pass saw nothing");
    return got;
}
#endif

typedef struct pk_ctx {
    const stream *s;
    char *buf;
    resp_parser *p;
} pk_ctx;

static void pk_work(void *arg, int who, long passes)
{
    pk_ctx *x = arg;
    for (long i = 0; i < passes; i++) {
        if (who == 0)
            redkv_pass(x->s, x->buf, x->p);
#ifdef HAVE_HIREDIS
        else
            hiredis_pass(x->s);
#endif
    }
}

void section_parser(void)
{
    double round_time = g_quick ? 0.1 : 0.3;       /* both parsers, per round */
    char *buf = malloc(2 * CHUNK + 8192);
    resp_parser p;
    resp_parser_init(&p, NULL);
    if (!buf)
        die("out of memory");
    progress("parser: %d rounds per reply kind, about %.1f s each", g_rounds, round_time);
    for (int kind = 0; kind < NPK; kind++) {
        stream s;
        rounds rr;
        memset(&rr, 0, sizeof rr);
        make_stream(kind, &s);
        pk_ctx x = {&s, buf, &p};
        double t0 = now_s();
        if (redkv_pass(&s, buf, &p) != s.replies)
            die("redkv parsed a different number of replies");
#ifdef HAVE_HIREDIS
        if (hiredis_pass(&s) != s.replies)
            die("hiredis parsed a different number of replies");
#endif
        double pair = now_s() - t0;                 /* one pass of each */
        int slices = (int)(round_time / pair);
        if (slices < 4)
            slices = 4;
        for (int r = 0; r < g_rounds; r++) {
            double rate[2];
            interleave(pk_work, &x, 1, slices, rate);
            rate[0] *= (double)s.replies;           /* passes/s to replies/s */
            rate[1] *= (double)s.replies;
            rounds_add(&rr, rate);
        }
        double a = rounds_median(&rr, 0), b = rounds_median(&rr, 1);
        double bytes_per = (double)s.len / (double)s.replies;
        char name[56];
        snprintf(name, sizeof name, "%s (%.0f B each)", PK_NAME[kind], bytes_per);
        row *w = add_row("parser", name, "replies/s");
        fmt_num(w->redkv, sizeof w->redkv, a);
        snprintf(w->refname, sizeof w->refname, "hiredis reader");
        snprintf(w->goal, sizeof w->goal, ">= 2.0x");
        row *m = add_row("parser", name, "MB/s");
        snprintf(m->redkv, sizeof m->redkv, "%.0f", a * bytes_per / 1e6);
        snprintf(m->refname, sizeof m->refname, "hiredis reader");
        snprintf(m->goal, sizeof m->goal, ">= 2.0x");
#ifdef HAVE_HIREDIS
        fmt_num(w->ref, sizeof w->ref, b);
        snprintf(m->ref, sizeof m->ref, "%.0f", b * bytes_per / 1e6);
        w->ratio = m->ratio = rounds_ratio(&rr);
        snprintf(w->verdict, sizeof w->verdict, "%s", w->ratio >= 2.0 ? "ok" : "SHORT");
        snprintf(m->verdict, sizeof m->verdict, "%s", w->verdict);
#else
        (void)b;
        snprintf(w->ref, sizeof w->ref, "n/a");
        snprintf(m->ref, sizeof m->ref, "n/a");
#endif
        free(s.data);
    }
    resp_parser_free(&p);
    free(buf);
}
