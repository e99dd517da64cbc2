/* error.c - status texts (from the one table in redkv.h) and each thread's last error. */
#include <stdio.h>

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

const char *redkv_last_error(void) { return last_error[0] ? last_error : "no error"; }

const char *redkv_strerror(int status)
{
    switch (status) {
#define STATUS_TEXT(name, value, text) case value: return text;
        REDKV_STATUS_TABLE(STATUS_TEXT)
#undef STATUS_TEXT
    }
    return "unknown status";
}

void redkv_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                         void (*free_fn)(void *))
{
    resp_set_allocator(malloc_fn, realloc_fn, free_fn);
}

void redkv_free(void *p) { resp_free(p); }
