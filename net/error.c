/* error.c - each thread's last error, in words (read through redkv_last_error). */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include "net.h"

#ifdef REDKV_NO_THREADS
#define THREAD_LOCAL
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define THREAD_LOCAL _Thread_local
#else
#define THREAD_LOCAL __thread
#endif

static THREAD_LOCAL char last_error[256];

int rk_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

void rk_error_clear(void) { last_error[0] = 0; }

const char *rk_error_text(void) { return last_error[0] ? last_error : "no error"; }

/* Where text (of len bytes) holds word, or len. */
static size_t find_word(const char *text, size_t len, const char *word, size_t n)
{
    for (size_t i = 0; n && i + n <= len; i++)
        if (memcmp(text + i, word, n) == 0)
            return i;
    return len;
}

void rk_redact(char *out, size_t cap, const char *text, size_t len, const char *secret)
{
    static const char echo[] = ", with args beginning with";
    size_t keep = find_word(text, len, echo, sizeof echo - 1), o = 0;
    size_t slen = secret ? strlen(secret) : 0;
    for (size_t i = 0; i < keep && o + 4 < cap; i++) {
        if (slen && i + slen <= keep && memcmp(text + i, secret, slen) == 0) {
            memcpy(out + o, "***", 3);   /* a password that still shows */
            o += 3;
            i += slen - 1;
        } else {
            unsigned char ch = (unsigned char)text[i];
            out[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
    }
    if (cap)
        out[o] = 0;
}
