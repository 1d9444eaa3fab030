/* test/test.c: the one test runner. Runs every group, prints one closing line
 * "N passed, N failed", exits non-zero on any failure. Run from the project
 * root (the CLI tests call ./nta). */
#include "test.h"

#include <stdlib.h>
#include <sys/wait.h>

int test_passed, test_failed;

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

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct { const char *name; void (*fn)(void); } groups[] = {
        {"cpu ops", test_cpu}, {"network", test_net}, {"supernet", test_super},
        {"search", test_search}, {"report", test_report}, {"data", test_data},
        {"pytorch fixture", test_fixture}, {"simt emulator", test_simt},
        {"command line", test_cli}, {"tasks", test_task}, {"cuda backend", test_cuda},
    };
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++) {
        int p = test_passed, f = test_failed;
        groups[i].fn();
        printf("%-16s %4d passed, %d failed\n", groups[i].name, test_passed - p, test_failed - f);
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
