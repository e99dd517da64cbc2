/* alloc.c - counting heap allocations two ways:
 *  - redkv's own hook (redkv_set_allocator), which every allocation of the library takes;
 *  - a malloc/calloc/realloc/free interposer compiled into this binary, which sees every
 *    allocation of the process, hiredis's included (hiredis 0.14 has no allocator hook).
 *    Exported with default visibility so that libhiredis.so and libc bind to it.
 * The interposer is left out under sanitizers, which bring their own allocator. */
#include <stdlib.h>

#include "bench.h"

#if defined(__SANITIZE_ADDRESS__) || defined(BENCH_NO_INTERPOSE)
#define NO_INTERPOSE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define NO_INTERPOSE 1
#endif
#endif

static uint64_t hook_count;

static void *hook_malloc(size_t n)
{
    __atomic_add_fetch(&hook_count, 1, __ATOMIC_RELAXED);
    return malloc(n);
}

static void *hook_realloc(void *p, size_t n)
{
    __atomic_add_fetch(&hook_count, 1, __ATOMIC_RELAXED);
    return realloc(p, n);
}

void alloc_hook_install(void) { redkv_set_allocator(hook_malloc, hook_realloc, free); }
uint64_t alloc_hook_count(void) { return __atomic_load_n(&hook_count, __ATOMIC_RELAXED); }

#ifdef NO_INTERPOSE

int alloc_libc_available(void) { return 0; }
void alloc_libc_counting(int on) { (void)on; }
uint64_t alloc_libc_count(void) { return 0; }

#else

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int counting;
static uint64_t libc_count;

#define VISIBLE __attribute__((visibility("default")))

static void count(void)
{
    if (__atomic_load_n(&counting, __ATOMIC_RELAXED))
        __atomic_add_fetch(&libc_count, 1, __ATOMIC_RELAXED);
}

VISIBLE void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

VISIBLE void *calloc(size_t n, size_t m)
{
    count();
    return __libc_calloc(n, m);
}

VISIBLE void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

VISIBLE void free(void *p) { __libc_free(p); }

int alloc_libc_available(void) { return 1; }
void alloc_libc_counting(int on) { __atomic_store_n(&counting, on, __ATOMIC_RELAXED); }
uint64_t alloc_libc_count(void) { return __atomic_load_n(&libc_count, __ATOMIC_RELAXED); }

#endif
