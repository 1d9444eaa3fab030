/* fuzz/fuzz_idx.c: data_read_idx on the fuzzer's bytes as a raw file, and on
 * the same bytes gzip-compressed through zlib, so both of zlib's paths (raw
 * pass-through and inflate) run. Invariants: a failure leaves no buffer and
 * names the file; a success has 1 to 4 nonzero dimensions within the limits;
 * the raw and the gzip file read the same (unless the bytes are themselves a
 * gzip stream, which the raw read inflates). */
#include "../nta.h"
#include "fuzz.h"

#include <string.h>
#include <zlib.h>

static int read_idx(const char *path, int *nd, int dims[4], uint8_t **bytes)
{
    char err[512] = "";
    int rc = data_read_idx(path, nd, dims, bytes, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(rc == -1 && *bytes == NULL && *nd == 0 && strstr(err, path));
        return rc;
    }
    FUZZ_CHECK(*bytes && *nd >= 1 && *nd <= 4);
    for (int i = 0; i < *nd; i++) FUZZ_CHECK(dims[i] > 0);
    if (*nd >= 3) FUZZ_CHECK(dims[1] <= 4096 && dims[2] <= 4096);
    return 0;
}

static size_t payload(int nd, const int dims[4])
{
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    return n;
}

/* data [size] as one gzip member into a new buffer; *len its length */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    FUZZ_CHECK(out);
    z.next_in = (Bytef *)data, z.avail_in = (uInt)size;
    z.next_out = out, z.avail_out = (uInt)cap;
    FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    *len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int nd1 = -1, nd2 = -1, d1[4], d2[4];
    uint8_t *b1 = (uint8_t *)1, *b2 = (uint8_t *)1;
    int rc1 = read_idx(fuzz_write(0, data, size), &nd1, d1, &b1);

    size_t zlen;
    uint8_t *z = gzip(data, size, &zlen);
    int rc2 = read_idx(fuzz_write(1, z, zlen), &nd2, d2, &b2);
    free(z);

    int is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!is_gzip) {
        FUZZ_CHECK(rc1 == rc2);
        if (rc1 == 0) {
            FUZZ_CHECK(nd1 == nd2 && !memcmp(d1, d2, (size_t)nd1 * sizeof *d1));
            FUZZ_CHECK(!memcmp(b1, b2, payload(nd1, d1)));
            FUZZ_CHECK(payload(nd1, d1) + 4 + 4 * (size_t)nd1 <= size);
        }
    }
    if (rc1 == 0) free(b1);
    if (rc2 == 0) free(b2);
    return 0;
}
