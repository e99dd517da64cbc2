/* api.c - the library-wide public calls: status texts, the last error, the allocator hook,
 * the version. */
#include "fmacros.h"

#include "store.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *redkv_version(void)
{
    return STR(REDKV_VERSION_MAJOR) "." STR(REDKV_VERSION_MINOR) "." STR(REDKV_VERSION_PATCH);
}

const char *redkv_last_error(void) { return rk_error_text(); }

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
