/* alloc.c - the one allocation hook every layer of redkv goes through. */
#include "fmacros.h"

#include <stdlib.h>

#include "resp.h"

static void *(*hook_malloc)(size_t) = malloc;
static void *(*hook_realloc)(void *, size_t) = realloc;
static void (*hook_free)(void *) = free;

void resp_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void (*free_fn)(void *))
{
    hook_malloc = malloc_fn ? malloc_fn : malloc;
    hook_realloc = realloc_fn ? realloc_fn : realloc;
    hook_free = free_fn ? free_fn : free;
}

void *resp_malloc(size_t n) { return hook_malloc(n ? n : 1); }
void *resp_realloc(void *p, size_t n) { return hook_realloc(p, n ? n : 1); }

void resp_free(void *p)
{
    if (p)
        hook_free(p);
}
