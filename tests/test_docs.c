/* test_docs.c - the README's complete example program compiles as written and runs. */
#include <criterion/criterion.h>
#include <sys/wait.h>

#include "helpers.h"

/* Writes the README's first C block that has a main() to path; 0 when found. */
static int extract_example(const char *readme, const char *path)
{
    FILE *in = fopen(readme, "r"), *out = NULL;
    char line[1024];
    int in_block = 0, found = 0;
    if (!in)
        return -1;
    while (!found && fgets(line, sizeof line, in)) {
        if (!in_block && strncmp(line, "```c", 4) == 0) {
            in_block = 1;
            out = fopen(path, "w");
        } else if (in_block && strncmp(line, "```", 3) == 0) {
            fclose(out);
            in_block = 0;
            FILE *check = fopen(path, "r");
            char buf[8192];
            size_t n = fread(buf, 1, sizeof buf - 1, check);
            buf[n] = 0;
            fclose(check);
            found = strstr(buf, "int main(") != NULL;
        } else if (in_block) {
            fputs(line, out);
        }
    }
    fclose(in);
    return found ? 0 : -1;
}

/* Writes the README's example into a new temp dir (its path into dir), builds it there with
   build_fmt (given dir, dir), runs it against a private server and checks what it stored. */
static void build_and_run_example(char *dir, const char *build_fmt)
{
    test_server srv;
    char src[128], cmd[2048], readme[512];
    const char *root = getenv("REDKV_SRC");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/hello.c", dir);
    snprintf(readme, sizeof readme, "%s/README.md", root ? root : ".");
    cr_assert_eq(extract_example(readme, src), 0, "no complete C program in the README");
    snprintf(cmd, sizeof cmd, build_fmt, dir, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    cr_assert_eq(srv_start(&srv, NULL), 0);
    snprintf(cmd, sizeof cmd, "REDKV_URL=%s %s/hello > %s/out", srv.url, dir, dir);
    int status = system(cmd);
    char out[64];
    SRV(&srv, out, "GET", "myapp:greeting");
    srv_stop(&srv);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_str_eq(out, "hello");
    cr_assert_eq(system(cmd), 0);
}

Test(docs, readme_example_compiles_and_runs, .timeout = 60)
{
    char dir[] = "/tmp/redkv-readme-XXXXXX", fmt[1024];
    const char *root = getenv("REDKV_SRC");
    /* the compiler and link flags of the build under test (a sanitizer build needs its own) */
    const char *cc = getenv("REDKV_CC"), *ldflags = getenv("REDKV_LDFLAGS");
    snprintf(fmt, sizeof fmt, "%s -std=c99 -Wall -Wextra -Werror -I%s/include %%s/hello.c "
             "-o %%s/hello %s %s -lpthread", cc && *cc ? cc : "cc", root ? root : ".",
             build_path("libredkv.a"), ldflags ? ldflags : "");
    build_and_run_example(dir, fmt);
}

/* The amalgamation (make amalgamation) alone builds the README's example: no -D, no
   other file (-I. finds its redkv.h), warnings as errors, and it works against a real
   server. */
Test(docs, amalgamation_builds_alone_with_no_flags, .timeout = 120)
{
    char dir[] = "/tmp/redkv-amalg-XXXXXX", fmt[1024];
    const char *amalg = build_path("amalgamation/redkv.c");
    int from = (int)(strlen(amalg) - 8);   /* the directory of redkv.c */
    snprintf(fmt, sizeof fmt, "cp %s %.*s/redkv.h %.*s/resp.h %%s/ && cd %%s && "
             "cc -std=c99 -Wall -Wextra -Werror -I. -o hello hello.c redkv.c -lpthread",
             amalg, from, amalg, from, amalg);
    build_and_run_example(dir, fmt);
}

/* Every switch, alone and all together, compiles the amalgamation warning-free: each
   internal function a switch leaves out is declared only where it is defined. */
Test(docs, amalgamation_builds_with_each_switch, .timeout = 300)
{
    static const char *const switches[] = {
        "-DREDKV_NO_CLUSTER", "-DREDKV_NO_TLS", "-DREDKV_NO_THREADS", "-DREDKV_NO_SENTINEL",
        "-DREDKV_NO_CACHE",
        "-DREDKV_NO_CLUSTER -DREDKV_NO_TLS -DREDKV_NO_THREADS -DREDKV_NO_SENTINEL -DREDKV_NO_CACHE"};
    const char *amalg = build_path("amalgamation/redkv.c");
    int from = (int)(strlen(amalg) - 8);
    for (size_t i = 0; i < sizeof switches / sizeof *switches; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cd %.*s && cc -std=c99 -Wall -Wextra -Werror -O0 %s -c redkv.c "
                 "-o /dev/null", from, amalg, switches[i]);
        cr_expect_eq(system(cmd), 0, "%s", switches[i]);
    }
}
