/* test/test_data.c: the data module. Small IDX, CIFAR and mnist-JSON files are
 * written into a temporary directory; data_read_idx is checked on good and bad
 * files, data_load on good sources and (in a forked child, since it exits
 * through nta_die) on bad ones; then batches, augmentation and shuffling. */
#define _XOPEN_SOURCE 700   /* mkdtemp, setenv, nftw, fork */
#include "../nta.h"
#include "test.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char tmp[64];   /* the temporary directory of this test */

/* buf = tmp/name */
static char *tp(char *buf, const char *name)
{
    snprintf(buf, 512, "%s/%s", tmp, name);
    return buf;
}

/* ------------------------------------------------------- file writers */

static void write_bytes(const char *path, const void *p, size_t n, const char *gzmode)
{
    if (gzmode) {
        gzFile f = gzopen(path, gzmode);
        if (!f || gzwrite(f, p, (unsigned)n) != (int)n || gzclose(f) != Z_OK)
            nta_die("test: cannot write %s", path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) nta_die("test: cannot write %s", path);
}

/* An IDX file of type `type`, dims [ndim], payload n bytes (may disagree
 * with the dims on purpose); gzmode NULL = raw. */
static void write_idx(const char *path, int type, int ndim, const uint32_t *dims,
                      const uint8_t *payload, size_t n, const char *gzmode)
{
    uint8_t *buf = nta_malloc(4 + 4 * (size_t)ndim + n);
    buf[0] = 0, buf[1] = 0, buf[2] = (uint8_t)type, buf[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++) buf[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
    if (n) memcpy(buf + 4 + 4 * ndim, payload, n);
    write_bytes(path, buf, 4 + 4 * (size_t)ndim + n, gzmode);
    free(buf);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text), NULL);
}

/* image i of an idx test set: byte 0 = i (its identity), then a pattern */
static uint8_t idx_pixel(int i, int j) { return (uint8_t)(j ? (i * 13 + j * 3) : i); }

/* n images [h,w,c] (c = 0: a 3-dim file) and labels i % mod (plus `extra` on
 * the last label) into files IMG and LAB under tmp */
static void write_idx_set(const char *img, const char *lab, int n, int h, int w, int c,
                          int mod, int extra)
{
    char p[512];
    size_t per = (size_t)h * w * (c ? c : 1);
    uint8_t *pix = nta_malloc(n * per), *labels = nta_malloc(n);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < per; j++) pix[i * per + j] = idx_pixel(i, (int)j);
        labels[i] = (uint8_t)(i % mod + (i == n - 1 ? extra : 0));
    }
    uint32_t dims[4] = {(uint32_t)n, (uint32_t)h, (uint32_t)w, (uint32_t)c};
    write_idx(tp(p, img), 8, c ? 4 : 3, dims, pix, n * per, "wb6");
    write_idx(tp(p, lab), 8, 1, dims, labels, n, NULL);
    free(pix);
    free(labels);
}

/* ----------------------------------------------- dying in a child process */

/* Run data_load(spec, val) in a forked child with stderr captured into msg and
 * NTA_DATA_DIR = datadir (if not NULL); returns its exit status. */
static int die_status(const char *spec, int val, const char *datadir, char *msg, size_t len)
{
    char out[512];
    tp(out, "stderr.txt");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 2) < 0) _exit(99);
        if (datadir) setenv("NTA_DATA_DIR", datadir, 1);
        DataSplits d;
        data_load(&d, spec, val, 0, 1);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    msg[0] = 0;
    FILE *f = fopen(out, "r");
    if (f) {
        size_t n = fread(msg, 1, len - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* data_load(spec) must exit with status (1: the files; 2: an option that does
 * not fit them) and a message holding want1 and want2 */
static void check_exits(const char *spec, int val, const char *datadir, int status, const char *want1,
                        const char *want2)
{
    char msg[2048];
    int rc = die_status(spec, val, datadir, msg, sizeof msg);
    CHECK(rc == status, "data_load(%s) exit status %d, want %d (%s)", spec, rc, status, msg);
    CHECK(strstr(msg, want1) && (!want2 || strstr(msg, want2)),
          "data_load(%s): message \"%s\" lacks \"%s\" / \"%s\"", spec, msg, want1,
          want2 ? want2 : "");
}

static void check_dies(const char *spec, int val, const char *datadir, const char *want1,
                       const char *want2)
{
    check_exits(spec, val, datadir, 1, want1, want2);
}

/* ----------------------------------------------------- data_read_idx */

/* data_read_idx(path) must fail with an error naming path and holding want */
static void check_idx_fails(const char *path, const char *want)
{
    char err[512] = "";
    int nd = -1, dims[4];
    uint8_t *bytes = (uint8_t *)1;
    int rc = data_read_idx(path, &nd, dims, &bytes, err, sizeof err);
    CHECK(rc == -1 && bytes == NULL, "data_read_idx(%s) rc %d, want -1", path, rc);
    CHECK(strstr(err, path) && strstr(err, want), "error \"%s\" lacks the path or \"%s\"",
          err, want);
}

static void test_idx_good(void)
{
    char p[512], err[512];
    uint8_t pay[60];
    uint32_t dims[3] = {5, 4, 3};
    for (int i = 0; i < 60; i++) pay[i] = (uint8_t)(i * 7);
    const char *name[2] = {"good.idx", "good.idx.gz"};
    for (int k = 0; k < 2; k++) {
        int nd = 0, d[4] = {0};
        uint8_t *bytes = NULL;
        write_idx(tp(p, name[k]), 8, 3, dims, pay, 60, k ? "wb9" : NULL);
        int rc = data_read_idx(p, &nd, d, &bytes, err, sizeof err);
        CHECK(rc == 0, "read %s: %s", name[k], err);
        CHECK(nd == 3 && d[0] == 5 && d[1] == 4 && d[2] == 3, "%s header", name[k]);
        CHECK(bytes && !memcmp(bytes, pay, 60), "%s payload", name[k]);
        free(bytes);
    }
}

static void test_idx_bad(void)
{
    char p[512];
    uint8_t pay[4096] = {0};
    uint32_t dims[5] = {5, 4, 3, 1, 1};
    for (int i = 0; i < 4096; i++) pay[i] = (uint8_t)(i * 31 + (i >> 5));

    check_idx_fails(tp(p, "missing.idx"), "No such file");
    write_text(tp(p, "magic.idx"), "\x12\x34\x08\x01\0\0\0\1x");
    check_idx_fails(p, "not an IDX file (magic 0x12340801)");
    write_text(tp(p, "short.idx"), "\0");
    check_idx_fails(p, "not an IDX file");
    write_idx(tp(p, "float.idx"), 0x0D, 3, dims, pay, 240, NULL);
    check_idx_fails(p, "unsupported IDX type 0x0d");
    write_idx(tp(p, "ndim0.idx"), 8, 0, dims, pay, 4, NULL);
    check_idx_fails(p, "ndim 0");
    write_idx(tp(p, "ndim5.idx"), 8, 5, dims, pay, 60, NULL);
    check_idx_fails(p, "ndim 5");
    write_idx(tp(p, "trunc.idx"), 8, 3, dims, pay, 30, NULL);
    check_idx_fails(p, "truncated: header says 60 bytes, file has 30");
    write_idx(tp(p, "trunc.idx.gz"), 8, 3, dims, pay, 30, "wb");
    check_idx_fails(p, "truncated");
    write_idx(tp(p, "hdr.idx"), 8, 3, dims, pay, 0, NULL);
    write_bytes(p, "\0\0\x08\x03\0\0\0\5\0\0", 10, NULL);   /* dims cut short */
    check_idx_fails(p, "truncated");

    uint32_t zero[3] = {5, 0, 3}, wide[3] = {1, 5000, 2}, huge[3] = {65536, 256, 256};
    write_idx(tp(p, "zero.idx"), 8, 3, zero, pay, 0, NULL);
    check_idx_fails(p, "dimension 1 is zero");
    write_idx(tp(p, "wide.idx"), 8, 3, wide, pay, 4096, NULL);
    check_idx_fails(p, "absurd image size");
    write_idx(tp(p, "huge.idx"), 8, 3, huge, pay, 16, NULL);
    check_idx_fails(p, "absurd size");

    /* a gzip header followed by garbage: inflate fails at once */
    uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memset(junk + 10, 0xff, sizeof junk - 10);
    write_bytes(tp(p, "junk.gz"), junk, sizeof junk, NULL);
    check_idx_fails(p, "corrupt gzip");

    /* a stored (level 0) stream with one payload byte flipped: only the CRC
     * at the end of the stream can tell */
    uint32_t big[2] = {64, 64};
    write_idx(tp(p, "crc.idx.gz"), 8, 2, big, pay, 4096, "wb0");
    FILE *f = fopen(p, "r+b");
    int c = (fseek(f, 2000, SEEK_SET), fgetc(f));
    fseek(f, 2000, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    check_idx_fails(p, "corrupt gzip");
}

/* ----------------------------------------------------------- idx sources */

/* The identity byte of every image in s, marked in seen[]; returns the number
 * of images whose label disagrees with (identity % mod). */
static int mark_images(const Dataset *s, int *seen, int mod)
{
    int bad = 0;
    for (int i = 0; i < s->n; i++) {
        int id = s->pix[(size_t)i * s->h * s->w * s->c];
        seen[id]++;
        bad += s->label[i] != id % mod;
    }
    return bad;
}

/* mean/std recomputed plainly in doubles from the training split */
static void check_stats(const DataSplits *d)
{
    const Dataset *s = &d->train;
    size_t npix = (size_t)s->n * s->h * s->w;
    for (int c = 0; c < s->c; c++) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < npix; i++) {
            double v = s->pix[i * s->c + c] / 255.0;
            sum += v, sq += v * v;
        }
        double m = sum / npix, sd = sqrt(sq / npix - m * m);
        CHECK(fabs(d->mean[c] - m) < 1e-5 && fabs(d->std[c] - sd) < 1e-5,
              "channel %d mean/std %g/%g, want %g/%g", c, d->mean[c], d->std[c], m, sd);
    }
}

static void test_idx_load(void)
{
    char spec[4096], a[512], b[512], c[512], e[512];
    DataSplits d, d2;
    int seen[256];
    write_idx_set("tri.gz", "trl", 60, 6, 5, 0, 4, 0);
    write_idx_set("tei", "tel", 7, 6, 5, 0, 4, 4);      /* last label 6 % 4 + 4 = 6 */

    /* no test files: 60/6 = 10 held out, 5 to val, 45 train */
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "tri.gz"), tp(b, "trl"));
    data_load(&d, spec, 5, 0, 1);
    CHECK(d.train.n == 45 && d.val.n == 5 && d.test.n == 10, "idx split sizes %d/%d/%d",
          d.train.n, d.val.n, d.test.n);
    CHECK(d.train.h == 6 && d.train.w == 5 && d.train.c == 1 && d.test.w == 5, "idx shape");
    CHECK(d.train.classes == 4 && d.test.classes == 4, "idx classes %d", d.train.classes);
    CHECK(d.pad == 0 && d.flip == 0, "idx pad %d (6/8 = 0) flip %d", d.pad, d.flip);
    memset(seen, 0, sizeof seen);
    int bad = mark_images(&d.train, seen, 4) + mark_images(&d.val, seen, 4) +
              mark_images(&d.test, seen, 4);
    int once = 1;
    for (int i = 0; i < 60; i++) once &= seen[i] == 1;
    CHECK(bad == 0 && once, "idx splits: %d wrong labels, every image once: %d", bad, once);
    check_stats(&d);

    /* another seed: the same test split, another val split */
    data_load(&d2, spec, 5, 0, 2);
    CHECK(d2.test.n == 10 && !memcmp(d.test.pix, d2.test.pix, 10 * 30),
          "the held-out test split must not depend on the seed");
    CHECK(memcmp(d.val.pix, d2.val.pix, 5 * 30) != 0, "val split should follow the seed");
    data_free(&d2);

    /* limit: the first 20 training images (those of val 0), test <= limit */
    data_free(&d);
    data_load(&d, spec, 0, 0, 1);
    data_load(&d2, spec, 0, 20, 1);
    CHECK(d2.train.n == 20 && d2.test.n == 10 && !memcmp(d.train.pix, d2.train.pix, 20 * 30),
          "limit 20 keeps the first 20 training images (%d, test %d)", d2.train.n, d2.test.n);
    data_free(&d2);
    data_load(&d2, spec, 3, 8, 1);
    CHECK(d2.train.n == 5 && d2.val.n == 3 && d2.test.n == 8, "limit 8 val 3: %d/%d/%d",
          d2.train.n, d2.val.n, d2.test.n);
    data_free(&d2);
    data_free(&d);

    /* with test files: the test split is that file, classes include its labels */
    snprintf(spec, sizeof spec, "idx:%s,%s,%s,%s", tp(a, "tri.gz"), tp(b, "trl"),
             tp(c, "tei"), tp(e, "tel"));
    data_load(&d, spec, 10, 0, 3);
    CHECK(d.train.n == 50 && d.val.n == 10 && d.test.n == 7, "idx+test sizes %d/%d/%d",
          d.train.n, d.val.n, d.test.n);
    CHECK(d.train.classes == 7 && d.val.classes == 7, "classes %d, want 1 + 6",
          d.train.classes);
    int ok = 1;
    for (int i = 0; i < 7; i++) ok &= d.test.pix[i * 30 + 7] == idx_pixel(i, 7);
    CHECK(ok && d.test.label[6] == 6 && d.test.label[5] == 1, "test file read in order");
    check_stats(&d);
    data_free(&d);

    /* 4-dim images, C = 3 */
    write_idx_set("rgb", "rgbl", 12, 8, 8, 3, 3, 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "rgb"), tp(b, "rgbl"));
    data_load(&d, spec, 2, 0, 1);
    CHECK(d.train.c == 3 && d.train.n == 8 && d.test.n == 2 && d.pad == 1,
          "rgb idx c %d n %d test %d pad %d", d.train.c, d.train.n, d.test.n, d.pad);
    CHECK(d.mean[3] == 0 && d.std[3] == 1, "unused channel mean/std %g/%g", d.mean[3],
          d.std[3]);
    check_stats(&d);
    data_free(&d);
}

static void test_idx_dies(void)
{
    char spec[4096], a[512], b[512], c[512], e[512];
    write_idx_set("ten", "tenl", 10, 6, 5, 0, 4, 0);
    write_idx_set("nine", "ninel", 9, 6, 5, 0, 4, 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "ten"), tp(b, "ninel"));
    check_dies(spec, 0, NULL, a, b);                       /* 10 images, 9 labels */
    check_dies(spec, 0, NULL, "10 images", "9 labels");

    uint32_t dims[2] = {5, 2};
    uint8_t lab[10] = {0};
    write_idx(tp(b, "lab2d"), 8, 2, dims, lab, 10, NULL);
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "ten"), b);
    check_dies(spec, 0, NULL, b, "1 dimension");

    write_idx_set("tall", "talll", 4, 5, 6, 0, 4, 0);     /* 5x6, not 6x5 */
    snprintf(spec, sizeof spec, "idx:%s,%s,%s,%s", tp(a, "ten"), tp(b, "tenl"),
             tp(c, "tall"), tp(e, "talll"));
    check_dies(spec, 0, NULL, a, c);

    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "ten"), tp(b, "tenl"));
    check_exits(spec, 9, NULL, 2, "--val 9", "9 training images");   /* 10 - 1 held out */
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "ten"), tp(b, "nothere"));
    check_dies(spec, 0, NULL, b, "No such file");
    snprintf(spec, sizeof spec, "idx:%s,%s,x", tp(a, "ten"), tp(b, "tenl"));
    check_dies(spec, 0, NULL, "bad dataset", "TEST_LABELS");
    check_dies("foo:bar", 0, NULL, "foo:bar", "cifar:DIR");
}

/* --------------------------------------------------------------- cifar */

static uint8_t cifar_byte(int rec, int c, int p) { return (uint8_t)(rec * 37 + c * 101 + p); }

/* records first..first+n-1 (label = record number + label0) into dir/name */
static void write_cifar(const char *dir, const char *name, int first, int n, int label0,
                        size_t cut)
{
    char p[1024];
    size_t len = (size_t)n * 3073;
    uint8_t *buf = nta_malloc(len);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * 3073;
        rec[0] = (uint8_t)(first + r + label0);
        for (int c = 0; c < 3; c++)
            for (int q = 0; q < 1024; q++) rec[1 + c * 1024 + q] = cifar_byte(first + r, c, q);
    }
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_bytes(p, buf, len - cut, NULL);
    free(buf);
}

static void test_cifar(void)
{
    char dir[512], bad[512], empty[512], spec[1024];
    DataSplits d;
    mkdir(tp(dir, "cifar"), 0755);
    write_cifar(dir, "data_batch_1.bin", 0, 3, 0, 0);
    write_cifar(dir, "data_batch_3.bin", 3, 2, 0, 0);     /* batches 2, 4, 5 absent */
    write_cifar(dir, "test_batch.bin", 5, 2, 2, 0);       /* labels 7, 8 */
    snprintf(spec, sizeof spec, "cifar:%s", dir);
    data_load(&d, spec, 0, 0, 1);
    CHECK(d.train.n == 5 && d.val.n == 0 && d.test.n == 2, "cifar sizes %d/%d/%d", d.train.n,
          d.val.n, d.test.n);
    CHECK(d.train.h == 32 && d.train.w == 32 && d.train.c == 3, "cifar shape");
    CHECK(d.pad == 4 && d.flip == 1 && d.train.classes == 9, "cifar pad/flip/classes");
    int ok = 1;
    for (int r = 0; r < 5; r++) {
        ok &= d.train.label[r] == r;
        for (int q = 0; q < 1024; q++)                   /* q = y*32 + x */
            for (int c = 0; c < 3; c++)
                ok &= d.train.pix[(size_t)r * 3072 + q * 3 + c] == cifar_byte(r, c, q);
    }
    for (int q = 0; q < 1024; q++) ok &= d.test.pix[3072 + q * 3 + 2] == cifar_byte(6, 2, q);
    CHECK(ok && d.test.label[1] == 8, "cifar planes to HWC");
    check_stats(&d);
    data_free(&d);

    mkdir(tp(bad, "cifar_bad"), 0755);
    write_cifar(bad, "data_batch_1.bin", 0, 2, 0, 0);
    write_cifar(bad, "data_batch_2.bin", 0, 2, 0, 5);     /* 5 bytes short */
    write_cifar(bad, "test_batch.bin", 0, 1, 0, 0);
    snprintf(spec, sizeof spec, "cifar:%s", bad);
    check_dies(spec, 0, NULL, "data_batch_2.bin", "6141 bytes");
    mkdir(tp(empty, "cifar_empty"), 0755);
    snprintf(spec, sizeof spec, "cifar:%s", empty);
    check_dies(spec, 0, NULL, empty, "data_batch_1.bin");

    /* the form that returns */
    char p[1024], err[512];
    uint8_t *pix = (uint8_t *)1;
    int32_t *label = (int32_t *)1;
    int n = -1;
    snprintf(p, sizeof p, "%s/data_batch_2.bin", bad);
    CHECK(data_read_cifar(p, &pix, &label, &n, err, sizeof err) == -1 && !pix && !label && n == 0 &&
          strstr(err, p) && strstr(err, "6141 bytes"), "short CIFAR file: %s", err);
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    CHECK(data_read_cifar(p, &pix, &label, &n, err, sizeof err) == 0 && n == 2 && label[1] == 8 &&
          pix[3072 + 5 * 3 + 1] == cifar_byte(6, 1, 5), "CIFAR file read: %s", err);
    free(pix), free(label);
}

/* ---------------------------------------------------------- mnist JSON */

/* pixel q of copy j of digit k */
static int mnist_pixel(int k, int j, int q) { return q ? (q * 7 + k) % 256 : k * 10 + j; }

/* DIR/mnist/digits/K.json for K < ndigits, `per` images each */
static void write_mnist(const char *dir, int ndigits, int per)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/mnist", dir);
    mkdir(dir, 0755);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/mnist/digits", dir);
    mkdir(p, 0755);
    for (int k = 0; k < ndigits; k++) {
        snprintf(p, sizeof p, "%s/mnist/digits/%d.json", dir, k);
        FILE *f = fopen(p, "w");
        fputs("{ \"data\":\n  [", f);
        for (int j = 0; j < per; j++)
            for (int q = 0; q < 784; q++) {
                int v = mnist_pixel(k, j, q);
                fprintf(f, j || q ? ", %.3f" : "%g", v / 255.0);  /* 0 and 1 as ints */
            }
        fputs("]\n}\n", f);
        fclose(f);
    }
}

static void test_mnist(void)
{
    char dir[512], bad[512], p[1024];
    const char *old = getenv("NTA_DATA_DIR");
    char *saved = old ? strcpy(nta_malloc(strlen(old) + 1), old) : NULL;
    DataSplits d;
    write_mnist(tp(dir, "mn"), 10, 2);
    setenv("NTA_DATA_DIR", dir, 1);
    data_load(&d, "mnist", 2, 0, 1);
    CHECK(d.train.n == 14 && d.val.n == 2 && d.test.n == 4, "mnist sizes %d/%d/%d (20/5 test)",
          d.train.n, d.val.n, d.test.n);
    CHECK(d.train.h == 28 && d.train.c == 1 && d.train.classes == 10 && d.pad == 2 &&
          d.flip == 0, "mnist shape/classes/pad");
    int seen[100] = {0}, ok = 1;
    const Dataset *s[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < s[k]->n; i++) {
            const uint8_t *img = s[k]->pix + (size_t)i * 784;
            int lab = s[k]->label[i], j = img[0] - 10 * lab;
            ok &= j >= 0 && j < 2;
            if (!ok) break;
            seen[img[0]]++;
            for (int q = 1; q < 784; q++) ok &= img[q] == mnist_pixel(lab, j, q);
        }
    for (int k = 0; k < 10; k++) ok &= seen[10 * k] == 1 && seen[10 * k + 1] == 1;
    CHECK(ok, "mnist pixels and labels");
    data_free(&d);
    if (saved) setenv("NTA_DATA_DIR", saved, 1);
    else unsetenv("NTA_DATA_DIR");
    free(saved);

    /* bad data dirs: the error names the file */
    write_mnist(tp(bad, "mnbad"), 3, 1);
    snprintf(p, sizeof p, "%s/mnist/digits/3.json", bad);
    write_text(p, "{ \"data\": [0.1, 0.2,, 0.3] }");
    check_dies("mnist", 0, bad, p, "malformed JSON");
    write_text(p, "{ \"data\": [0.1, 0.2, 0.3 }");
    check_dies("mnist", 0, bad, p, "malformed JSON");
    write_text(p, "{ \"data\": [0.1, 0.2, 0.3] }");
    check_dies("mnist", 0, bad, p, "not a multiple of 784");
    write_text(p, "{ \"data\": [0.1, 1.5, 0.3] }");
    check_dies("mnist", 0, bad, p, "outside [0, 1]");
    write_text(p, "[0.1]");
    check_dies("mnist", 0, bad, p, "malformed JSON");
    check_dies("mnist", 0, tp(bad, "nowhere"), "nowhere/mnist/digits/0.json", "make setup");

    /* the form that returns: -1 unreadable, -2 bad contents, 0 and the images */
    char err[512];
    uint8_t *pix = (uint8_t *)1;
    int n = -1;
    CHECK(data_read_mnist_json(tp(p, "nowhere.json"), &pix, &n, err, sizeof err) == -1 && !pix &&
          n == 0 && strstr(err, p), "missing JSON: %s", err);
    CHECK(data_read_mnist_json(tp(p, "mnbad/mnist/digits/3.json"), &pix, &n, err, sizeof err) == -2 &&
          !pix && strstr(err, p) && strstr(err, "malformed JSON at byte 0"), "bad JSON: %s", err);
    CHECK(data_read_mnist_json(tp(p, "mnbad/mnist/digits/2.json"), &pix, &n, err, sizeof err) == 0 &&
          n == 1 && pix[1] == mnist_pixel(2, 0, 1), "one-image JSON read: %s", err);
    free(pix);
}

/* ------------------------------------------------------------- batches */

/* x (one image [H,W,C]) equals plain (the unaugmented one) shifted by some dy,
 * dx in [-pad, pad] (and mirrored if flip), outside filled with zero */
static int is_shift_of(const float *x, const float *plain, float zero, int H, int W, int C,
                       int pad, int flip)
{
    for (int f = 0; f <= flip; f++)
        for (int dy = -pad; dy <= pad; dy++)
            for (int dx = -pad; dx <= pad; dx++) {
                int same = 1;
                for (int y = 0; y < H && same; y++)
                    for (int xx = 0; xx < W && same; xx++) {
                        int sy = y + dy, sx = (f ? W - 1 - xx : xx) + dx;
                        for (int c = 0; c < C; c++) {
                            float want = sy < 0 || sy >= H || sx < 0 || sx >= W
                                             ? zero : plain[(sy * W + sx) * C + c];
                            same &= x[(y * W + xx) * C + c] == want;
                        }
                    }
                if (same) return 1;
            }
    return 0;
}

static void test_batch(void)
{
    char spec[2048], a[512], b[512];
    DataSplits d;
    write_idx_set("bat", "batl", 24, 7, 6, 3, 5, 0);
    snprintf(spec, sizeof spec, "idx:%s,%s", tp(a, "bat"), tp(b, "batl"));
    data_load(&d, spec, 0, 0, 1);
    const Dataset *s = &d.train;
    int B = s->n, img = s->h * s->w * s->c, idx[64];
    for (int i = 0; i < B; i++) idx[i] = B - 1 - i;
    float *x = nta_malloc(sizeof(float) * B * img), *x2 = nta_malloc(sizeof(float) * B * img);
    float *plain = nta_malloc(sizeof(float) * B * img);
    int32_t y[64];

    data_batch(&d, s, idx, B, plain, y, NULL);
    int ok = 1;
    for (int b = 0; b < B; b++) {
        ok &= y[b] == s->label[idx[b]];
        for (int j = 0; j < img; j++) {
            int c = j % s->c;
            float want = ((float)s->pix[(size_t)idx[b] * img + j] / 255.0f - d.mean[c]) / d.std[c];
            ok &= plain[(size_t)b * img + j] == want;
        }
    }
    CHECK(ok, "data_batch without rng normalises exactly");

    Rng r;
    DataSplits e = d;
    e.pad = 2, e.flip = 1;
    rng_seed(&r, 5);
    data_batch(&e, s, idx, B, x, y, &r);
    rng_seed(&r, 5);
    data_batch(&e, s, idx, B, x2, y, &r);
    CHECK(!memcmp(x, x2, sizeof(float) * B * img), "same seed, same augmentation");
    CHECK(memcmp(x, plain, sizeof(float) * B * img) != 0, "augmentation changes something");
    /* channel by channel, each padded with its own normalised zero */
    ok = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < s->c; c++) {
            float xc[7 * 6], pc[7 * 6];                  /* one channel [H,W] */
            for (int q = 0; q < s->h * s->w; q++) {
                xc[q] = x[(size_t)b * img + q * s->c + c];
                pc[q] = plain[(size_t)b * img + q * s->c + c];
            }
            ok &= is_shift_of(xc, pc, (0.0f - d.mean[c]) / d.std[c], s->h, s->w, 1, 2, 1);
        }
    CHECK(ok, "augmented images are shifts (|d| <= pad) or mirrors of the originals");

    e.pad = 0, e.flip = 0;
    rng_seed(&r, 9);
    data_batch(&e, s, idx, B, x, y, &r);
    CHECK(!memcmp(x, plain, sizeof(float) * B * img), "pad 0, flip 0 = no augmentation");
    free(x);
    free(x2);
    free(plain);
    data_free(&d);
}

static void test_shuffle(void)
{
    enum { N = 1000 };
    static int perm[N], perm2[N], seen[N];
    Rng r;
    rng_seed(&r, 42);
    data_shuffle(perm, N, &r);
    rng_seed(&r, 43);
    data_shuffle(perm2, N, &r);
    int ok = 1, moved = 0;
    for (int i = 0; i < N; i++) ok &= perm[i] >= 0 && perm[i] < N && ++seen[perm[i]] == 1;
    for (int i = 0; i < N; i++) moved += perm[i] != i;
    CHECK(ok && moved > N / 2, "data_shuffle is a permutation (moved %d)", moved);
    CHECK(memcmp(perm, perm2, sizeof perm) != 0, "another seed, another permutation");
    data_shuffle(perm, 1, &r);
    CHECK(perm[0] == 0, "shuffle of one");
}

/* -------------------------------------------------------- fashion-mnist */

static void test_fashion(void)
{
    if (!test_have_data(NEED_FASHION, "data_load(fashion-mnist)")) return;
    DataSplits d;
    data_load(&d, "fashion-mnist", 5000, 0, 1);
    CHECK(d.train.n == 55000 && d.val.n == 5000 && d.test.n == 10000,
          "fashion-mnist sizes %d/%d/%d", d.train.n, d.val.n, d.test.n);
    CHECK(d.train.h == 28 && d.train.w == 28 && d.train.c == 1 && d.train.classes == 10,
          "fashion-mnist shape and classes");
    CHECK(d.mean[0] > 0.25f && d.mean[0] < 0.32f && d.std[0] > 0.32f && d.std[0] < 0.38f,
          "fashion-mnist mean/std %g/%g", d.mean[0], d.std[0]);
    CHECK(d.pad == 2 && d.flip == 1, "fashion-mnist pad/flip");
    data_free(&d);
}

/* ---------------------------------------------------------------- main */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void test_data(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/nta-test-data-XXXXXX");
    if (!mkdtemp(tmp)) nta_die("test: cannot make a temporary directory");
    test_idx_good();
    test_idx_bad();
    test_idx_load();
    test_idx_dies();
    test_cifar();
    test_mnist();
    test_batch();
    test_shuffle();
    test_fashion();
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
