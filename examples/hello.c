/* hello.c - the blocking API in one page: a session that expires, read back and renewed.
 *
 *   build/examples/hello [URL]        (default: $REDKV_URL, else redis://localhost:6379)
 *
 * cc hello.c $(pkg-config --cflags --libs redkv) -o hello */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redkv.h"

static int check(int status, const char *what)
{
    if (status < 0) {
        fprintf(stderr, "hello: %s: %s\n", what, redkv_last_error());
        exit(1);
    }
    return status;
}

int main(int argc, char **argv)
{
    redkv_options opt = {0};
    opt.url = argc > 1 ? argv[1] : getenv("REDKV_URL");
    opt.ns = "hello";                       /* keys live at hello:<key> */

    redkv *store;
    check(redkv_open(&store, &opt), "open");

    /* A session for 30 minutes. */
    const char *session = "{\"user\":\"ada\",\"cart\":3}";
    check(redkv_set(store, "session:42", 10, session, strlen(session), 30 * 60 * 1000, 0), "set");

    /* Read it back and renew it for another hour, atomically. */
    void *val;
    size_t vlen;
    if (check(redkv_get(store, "session:42", 10, 60 * 60 * 1000, &val, &vlen), "get") == REDKV_OK) {
        printf("session:42 = %.*s\n", (int)vlen, (const char *)val);
        redkv_free(val);
    }

    int64_t ms;
    if (check(redkv_expires_in(store, "session:42", 10, &ms), "expires_in") == REDKV_OK)
        printf("expires in %lld s\n", (long long)((ms + 999) / 1000));

    /* A child namespace (hello_cache) and a bulk delete of everything under hello. */
    redkv *cache;
    check(redkv_with_namespace(store, "cache", &cache), "with_namespace");
    check(redkv_set(cache, "page:/", 6, "<h1>hi</h1>", 11, 5000, 0), "set");
    printf("cached page exists: %s\n", check(redkv_exists(cache, "page:/", 6), "exists") ? "yes" : "no");
    check(redkv_delete_all(store), "delete_all");
    printf("after delete_all: %s\n",
           check(redkv_exists(cache, "page:/", 6), "exists") ? "still there" : "gone");

    redkv_close(cache);
    redkv_close(store);
    return 0;
}
