/* main.c - a consumer of redkv built through CMake: the header and the library it links
 * agree on the version, and a store opens (no server needed: opening does not connect). */
#include <stdio.h>
#include <string.h>

#include <redkv.h>

#define STR_(x) #x
#define STR(x) STR_(x)

int main(void)
{
    const char *header = STR(REDKV_VERSION_MAJOR) "." STR(REDKV_VERSION_MINOR) "." STR(REDKV_VERSION_PATCH);
    redkv *s = NULL;
    redkv_options opt = {0};
    if (strcmp(redkv_version(), header) != 0) {
        fprintf(stderr, "consumer: library %s, header %s\n", redkv_version(), header);
        return 1;
    }
    opt.url = "redis://127.0.0.1:1";
    opt.ns = "consumer";
    if (redkv_open(&s, &opt) != REDKV_OK || strcmp(redkv_namespace(s), "consumer") != 0) {
        fprintf(stderr, "consumer: %s\n", redkv_last_error());
        return 1;
    }
    redkv_close(s);
    opt.url = "bogus://x";
    if (redkv_open(&s, &opt) != REDKV_ECONFIG) {
        fprintf(stderr, "consumer: a bad URL was not ECONFIG\n");
        return 1;
    }
    printf("consumer: redkv %s\n", redkv_version());
    return 0;
}
