/* test/test.c: the one test runner. Runs every group (or those named by
 * --only), prints one closing line "N passed, N failed" (", N skipped" when a
 * test lacked its data), exits non-zero on any failure. Run from the project
 * root (the CLI tests call ./nta). */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int test_passed, test_failed, test_skipped;

int test_have_data(int needs, const char *what)
{
    static const char *fashion[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    const char *dir = getenv("NTA_DATA_DIR");
    char path[4200];
    if (!dir || !*dir) dir = "data";
    for (int k = 0; k < 10 && (needs & NEED_MNIST); k++) {
        snprintf(path, sizeof path, "%s/mnist/digits/%d.json", dir, k);
        if (access(path, R_OK)) goto missing;
    }
    for (int k = 0; k < 4 && (needs & NEED_FASHION); k++) {
        snprintf(path, sizeof path, "/usr/share/datasets/fashion-mnist/%s", fashion[k]);
        if (access(path, R_OK)) goto missing;
    }
    return 1;
missing:
    test_skipped++;
    printf("skipped: %s: needs %s (make setup)\n", what, path);
    return 0;
}

int test_run(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int test_capture(const char *cmd, const char *dir, char *out, size_t len)
{
    char line[4096], path[512];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(line, sizeof line, "OMP_NUM_THREADS=2 %s > %s 2>&1", cmd, path);
    int rc = test_run(line);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    return rc;
}

static const struct { const char *key, *name; void (*fn)(void); } groups[] = {
    {"cpu", "cpu ops", test_cpu}, {"net", "network", test_net}, {"super", "supernet", test_super},
    {"search", "search", test_search}, {"report", "report", test_report}, {"data", "data", test_data},
    {"fixture", "pytorch fixture", test_fixture}, {"simt", "simt emulator", test_simt},
    {"cli", "command line", test_cli}, {"task", "tasks", test_task}, {"ssl", "self-supervised", test_ssl},
    {"cuda", "cuda backend", test_cuda}, {"binary", "binary", test_binary}, {"rtc", "specialised kernels", test_rtc},
    {"mpi", "several processes", test_mpi},
};
#define NGROUPS (sizeof groups / sizeof *groups)

/* Whether key is one of the comma-separated names in list. */
static int listed(const char *list, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, key, n) && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

/* Whether every name in the comma-separated list is a group's key. */
static int all_known(const char *list)
{
    int named = 1, known = 0;
    for (const char *p = list; *p; p++) named += *p == ',';
    for (size_t i = 0; i < NGROUPS; i++) known += listed(list, groups[i].key);
    return *list && known == named;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc == 3 && !strcmp(argv[1], "--only") ? argv[2] : NULL;
    if (argc > 1 && !(only && all_known(only))) {
        fprintf(stderr, "usage: test/run [--only GROUP[,GROUP...]]\ngroups:");
        for (size_t i = 0; i < NGROUPS; i++) fprintf(stderr, " %s", groups[i].key);
        fputc('\n', stderr);
        return 2;
    }
    for (size_t i = 0; i < NGROUPS; i++) {
        if (only && !listed(only, groups[i].key)) continue;
        int p = test_passed, f = test_failed, s = test_skipped;
        groups[i].fn();
        printf("%-16s %4d passed, %d failed", groups[i].name, test_passed - p, test_failed - f);
        if (test_skipped > s) printf(", %d skipped", test_skipped - s);
        printf("\n");
    }
    printf("%d passed, %d failed", test_passed, test_failed);
    if (test_skipped) printf(", %d skipped", test_skipped);
    printf("\n");
    return test_failed ? 1 : 0;
}
