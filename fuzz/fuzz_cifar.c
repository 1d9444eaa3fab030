/* fuzz/fuzz_cifar.c: data_read_cifar, one CIFAR-10 binary batch (records of
 * a label byte and R, G, B planes of 32x32). Invariants: it succeeds exactly
 * when the file is a nonzero whole number of records; then every label and
 * pixel is the file's, planes moved to channels last. */
#include "../nta.h"
#include "fuzz.h"

#include <string.h>

#define RECORD 3073

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, data, size);
    char err[512] = "";
    uint8_t *pix = (uint8_t *)1;
    int32_t *label = (int32_t *)1;
    int n = -1, rc = data_read_cifar(path, &pix, &label, &n, err, sizeof err);
    int whole = size > 0 && size % RECORD == 0;
    FUZZ_CHECK((rc == 0) == whole);
    if (rc) {
        FUZZ_CHECK(rc == -1 && pix == NULL && label == NULL && n == 0 && strstr(err, path));
        return 0;
    }
    FUZZ_CHECK((size_t)n == size / RECORD);
    for (int i = 0; i < n; i++) {
        const uint8_t *rec = data + (size_t)i * RECORD;
        FUZZ_CHECK(label[i] == rec[0]);
        for (int q = 0; q < 1024; q++)
            for (int c = 0; c < 3; c++)
                FUZZ_CHECK(pix[((size_t)i * 1024 + q) * 3 + c] == rec[1 + c * 1024 + q]);
    }
    free(pix);
    free(label);
    return 0;
}
