/* fuzz/fuzz.c: the fuzzing directory and its files (fuzz.h). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include <string.h>
#include <sys/stat.h>

#define FUZZ_SLOTS 4

static char fuzz_dir[64];

static void fuzz_cleanup(void)
{
    for (int i = 0; i < FUZZ_SLOTS; i++) remove(fuzz_path(i));
    remove(fuzz_dir);
}

const char *fuzz_path(int slot)
{
    static char path[FUZZ_SLOTS][96];
    if (!fuzz_dir[0]) {
        struct stat st;
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/nta-fuzz-XXXXXX",
                 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir)) { perror("fuzz: mkdtemp"); abort(); }
        for (int i = 0; i < FUZZ_SLOTS; i++) snprintf(path[i], sizeof path[i], "%s/f%d", fuzz_dir, i);
        atexit(fuzz_cleanup);
    }
    FUZZ_CHECK(slot >= 0 && slot < FUZZ_SLOTS);
    return path[slot];
}

const char *fuzz_write(int slot, const void *data, size_t size)
{
    const char *path = fuzz_path(slot);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) { perror(path); abort(); }
    return path;
}
