/* test_manpages.c - the man pages render without a single groff warning (man --warnings),
 * the check itself catches a broken page, and redkv(3) names every public function and
 * status of redkv.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *src_path(const char *rel)
{
    static char path[512];
    const char *root = getenv("REDKV_SRC");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    return path;
}

/* What formatting page at 80 columns writes to standard error (groff's warnings), into
   out; returns man's exit status. */
static int man_warnings(const char *page, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "MANWIDTH=80 man --warnings=w -E UTF-8 -l '%s' 2>&1 >/dev/null", page);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_clean(const char *rel)
{
    char warnings[8192];
    const char *page = src_path(rel);
    cr_assert_eq(access(page, R_OK), 0, "%s is missing", page);
    cr_assert_eq(system("command -v man >/dev/null"), 0, "man is not installed (apt-get install man-db groff-base)");
    cr_assert_eq(man_warnings(page, warnings, sizeof warnings), 0, "man failed on %s: %s", rel, warnings);
    cr_assert_str_empty(warnings, "%s has warnings:\n%s", rel, warnings);
}

Test(manpages, redkv_1_has_no_warnings, .timeout = 60) { assert_clean("doc/redkv.1"); }
Test(manpages, redkv_3_has_no_warnings, .timeout = 60) { assert_clean("doc/redkv.3"); }

/* The check above must be able to fail: a page with an unknown macro and a line too long
   to fit gives warnings. */
Test(manpages, broken_page_is_caught, .timeout = 60)
{
    char page[] = "/tmp/redkv-man-XXXXXX", warnings[8192];
    int fd = mkstemp(page);
    cr_assert_neq(fd, -1);
    FILE *f = fdopen(fd, "w");
    fputs(".TH BROKEN 3\n.SH NAME\nbroken \\- a page\n.XYZ not a macro\n.SH DESCRIPTION\n"
          "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongword\n", f);
    fclose(f);
    man_warnings(page, warnings, sizeof warnings);
    unlink(page);
    cr_assert(strstr(warnings, "warning") != NULL, "no warning for a broken page: '%s'", warnings);
}

/* The whole file as a string (static buffer). */
static const char *slurp(const char *rel)
{
    static char buf[2][262144];
    static int which;
    char *b = buf[which++ % 2];
    FILE *f = fopen(src_path(rel), "r");
    cr_assert_not_null(f, "cannot read %s", rel);
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

/* Every public function (REDKV_API ... redkv_x() and every status (X(NAME, ...) in
   REDKV_STATUS_TABLE) of redkv.h appears in redkv(3). */
Test(manpages, redkv_3_covers_the_header)
{
    const char *header = slurp("include/redkv.h"), *page = slurp("doc/redkv.3");
    int functions = 0, statuses = 0;
    for (const char *p = header; (p = strstr(p, "REDKV_API ")) != NULL; p++) {
        const char *name = strstr(p, "redkv_"), *paren = name ? strchr(name, '(') : NULL;
        const char *eol = strchr(p, '\n');
        if (!paren || (eol && paren > eol) || p[-1] != '\n')
            continue;                  /* the macro's own definition */
        char fn[64];
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz_0123456789");   /* (redkv_open) */
        snprintf(fn, sizeof fn, "%.*s", (int)len, name);
        cr_expect(strstr(page, fn) != NULL, "doc/redkv.3 does not mention %s", fn);
        functions++;
    }
    for (const char *p = header; (p = strstr(p, "    X(")) != NULL; p++) {
        char name[32], full[48];
        if (sscanf(p + 6, "%31[A-Z]", name) != 1)
            continue;
        snprintf(full, sizeof full, "REDKV_%s", name);
        cr_expect(strstr(page, full) != NULL, "doc/redkv.3 does not mention %s", full);
        statuses++;
    }
    cr_assert_gt(functions, 20, "found only %d functions in redkv.h", functions);
    cr_assert_gt(statuses, 10, "found only %d statuses in redkv.h", statuses);
}
