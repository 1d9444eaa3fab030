/* fuzz/fuzz.h: what the libFuzzer targets share (docs/FUZZING.md).
 *
 * nta's readers take paths, so each target writes the fuzzer's bytes to a
 * file in a directory made once (under /dev/shm when it exists, else /tmp)
 * and removed at exit, then calls the reader. Any broken invariant aborts,
 * which libFuzzer reports as a crash with the input that caused it. */
#ifndef NTA_FUZZ_H
#define NTA_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The first line of fuzz_searchlog's logs (its seeds, make_seeds.c, start
 * with it) */
#define FUZZ_SEARCHLOG_HEADER "# nta search log: fuzz\n"

/* The path of file `slot` (0..3) in the fuzzing directory. */
const char *fuzz_path(int slot);
/* Write size bytes to file `slot`, replacing what it held; returns its path. */
const char *fuzz_write(int slot, const void *data, size_t size);

/* Abort with file:line and the condition when cond is false. */
#define FUZZ_CHECK(cond)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#endif
