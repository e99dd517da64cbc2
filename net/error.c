/* error.c - each thread's last error, in words (read through redkv_last_error). */
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

const char *rk_error_text(void) { return last_error[0] ? last_error : "no error"; }
