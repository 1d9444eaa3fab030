/* fuzz/make_seeds.c: writes the seed corpora fuzz/corpus/TARGET/ (small,
 * valid inputs in nta's real formats, plus a few near misses): run by
 * `make fuzz-seeds` (docs/FUZZING.md), which rewrites fuzz/corpus.
 * The MNIST seed is the first image of data/mnist/digits/3.json when `make
 * setup` has installed it, else a synthetic image in the same layout. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static char root[1024];

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) nta_die("cannot write %s", path);
}

/* ---------------------------------------------------------------- IDX */

static size_t idx(uint8_t *out, int ndim, const uint32_t *dims, uint8_t seed)
{
    size_t n = 4, total = 1;
    out[0] = out[1] = 0, out[2] = 8, out[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++, n += 4) {
        out[n] = (uint8_t)(dims[i] >> 24), out[n + 1] = (uint8_t)(dims[i] >> 16);
        out[n + 2] = (uint8_t)(dims[i] >> 8), out[n + 3] = (uint8_t)dims[i];
        total *= dims[i];
    }
    for (size_t i = 0; i < total; i++) out[n + i] = (uint8_t)(seed + i * 29);
    return n + total;
}

static void seeds_idx(void)
{
    static uint8_t b[4096], z[4096];
    uint32_t img[3] = {3, 4, 4}, rgb[4] = {2, 3, 3, 3}, lab[1] = {5};
    size_t n = idx(b, 3, img, 1);
    put("idx", "images-3x4x4", b, n);
    uLongf zn = sizeof z;
    /* gzip via gzip-format deflate so the raw input already is a gzip stream */
    z_stream s = {0};
    deflateInit2(&s, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    s.next_in = b, s.avail_in = (uInt)n, s.next_out = z, s.avail_out = (uInt)zn;
    deflate(&s, Z_FINISH);
    put("idx", "images-3x4x4.gz", z, zn - s.avail_out);
    deflateEnd(&s);
    put("idx", "images-rgb-2x3x3x3", b, idx(b, 4, rgb, 7));
    put("idx", "labels-5", b, idx(b, 1, lab, 0));
    n = idx(b, 3, img, 1);
    put("idx", "truncated", b, n - 5);
}

/* ---------------------------------------------------------------- MNIST */

static void seeds_mnist(void)
{
    size_t len = 0, at = 0, values = 0;
    char err[512];
    uint8_t *text = nta_read_file("data/mnist/digits/3.json", 1u << 26, &len, err, sizeof err);
    char *out = malloc(16384);
    if (text) {                     /* the first 784 values, as the file writes them */
        while (at < len && values < 784) values += text[at++] == ',';
        if (values < 784) nta_die("data/mnist/digits/3.json has under 784 values");
        memcpy(out, text, at - 1);
        strcpy(out + at - 1, "]}\n");
    } else {
        size_t n = (size_t)sprintf(out, "{ \"data\": [");
        for (int q = 0; q < 784; q++)
            n += (size_t)sprintf(out + n, q ? ",%g" : "%g", (q * 37 % 256) / 255.0 > 0.5 ? 0.992 : 0);
        strcpy(out + n, "]}\n");
        fprintf(stderr, "make_seeds: %s; a synthetic MNIST image instead\n", err);
    }
    put("mnist", "digit-3-one-image.json", out, strlen(out));
    free(text);
    const char *small[] = {"{ \"data\": [] }\n", "{\"data\":[0.5, 1, 0,\n 0.024]}"};
    put("mnist", "empty.json", small[0], strlen(small[0]));
    put("mnist", "four-values.json", small[1], strlen(small[1]));
    free(out);
}

/* ---------------------------------------------------------------- CIFAR */

static void seeds_cifar(void)
{
    static uint8_t rec[2 * 3073];
    for (int r = 0; r < 2; r++) {
        rec[r * 3073] = (uint8_t)(3 + r);
        for (int i = 1; i < 3073; i++) rec[r * 3073 + i] = (uint8_t)(i * 7 + r);
    }
    put("cifar", "one-record.bin", rec, 3073);
    put("cifar", "two-records.bin", rec, sizeof rec);
    put("cifar", "short.bin", rec, 3000);
}

/* ---------------------------------------------------------------- model */

/* A model file without its CRC32 (its last 4 bytes): fuzz_model appends the
 * right one to whatever the fuzzer makes of it. */
static void save(const Net *net, const char *name, const char *meta, int checkpoint)
{
    char path[2048], err[512];
    size_t len;
    snprintf(path, sizeof path, "%s/model.tmp", root);
    if (net_save(net, path, meta, checkpoint, err, sizeof err)) nta_die("%s", err);
    uint8_t *buf = nta_read_file(path, 1u << 24, &len, err, sizeof err);
    if (!buf || len < 4) nta_die("%s", err);
    remove(path);
    put("model", name, buf, len - 4);
    free(buf);
}

static void seeds_model(void)
{
    /* a fixed network with its input normalisation */
    NetDesc d = {.in_h = 8, .in_w = 8, .in_c = 1, .stem_c = 4, .stem_k = 3, .nblocks = 2,
                 .head_c = 8, .classes = 3};
    d.blk[0] = (BlockDesc){3, 2, 2, 4};
    d.blk[1] = (BlockDesc){3, 2, 1, 4};
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, 2, 1, 0);
    net->norm_set = 1;
    net->norm_mean[0] = 0.286f, net->norm_std[0] = 0.353f, net->norm_std[1] = 1;
    net->norm_std[2] = 1, net->norm_std[3] = 1;
    save(net, "fixed-norm.model", "train: seed for fuzz_model\n", 0);
    net_free(net);

    /* a supernet with a search space, saved as a checkpoint (with momentum) */
    Space sp = {.nk = 2, .ks = {3, 5}, .ne = 2, .es = {2, 3}, .dmin = 1};
    NetDesc s = net_supernet(8, 8, 1, 2, &sp, 2);
    s.stem_c = 2, s.head_c = 4;
    for (int i = 0; i < s.nblocks; i++) s.blk[i].co = 2 + i / 2;
    s.nblocks = 4;
    net = net_create(&s, LOSS_XENT, &cpu_backend, 2, 2, 0);
    save(net, "supernet-checkpoint.model", "epoch=1 seed=1\n", 1);
    /* its smallest architecture on its own */
    Arch a = arch_smallest(&s);
    Net *alone = net_extract(net, &a, 2);
    save(alone, "standalone.model", "", 0);
    net_free(alone);
    net_free(net);
}

/* ---------------------------------------------------------------- arch */

static void seeds_arch(void)
{
    const char *text[] = {
        "k7e6-k7e6-k7e6-k7e6/k7e6-k7e6-k7e6-k7e6/k7e6-k7e6-k7e6-k7e6",
        "k3e3-k3e3/k3e3-k3e3/k3e3-k3e3",
        "k3e6-k5e4/k7e3-k3e6-k5e6/k3e4-k7e3-k5e4-k3e6",
        "in=28x28x1 stem=16k3 blocks=k3e6s2c24,k3e6s1c24,k3e6s2c32,k3e6s1c32,k3e6s2c64,k3e6s1c64 "
        "head=128 classes=10\nk3e6-k3e6/k3e6-k3e6/k3e6-k3e6",
        "in=8x8x1 stem=2k3 blocks=k5e3s2c2,k5e3s1c2,k5e3s2c3,k5e3s1c3 head=4 classes=2 "
        "space=k3,5:e2,3:d1\nk5e2/k3e3-k5e3",
    };
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "arch-%d", i);
        put("arch", name, text[i], strlen(text[i]));
    }
}

/* ---------------------------------------------------------- search log */

/* A search log of `gens` generations of 4 random architectures of the
 * default 28x28x1 supernet under 20 MFLOPs, as ntaa.c's log_generation
 * writes it; cut (no newline at the end) when cut. */
static void searchlog(const char *name, int gens, int cut)
{
    static char buf[16384];
    Space sp = space_default();
    NetDesc d = net_supernet(28, 28, 1, 10, &sp, 4);
    Rng r;
    rng_seed(&r, 5);
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", FUZZ_SEARCHLOG_HEADER);
    for (int g = 0; g < gens; g++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "# generation %d n 4 rng %llu\n", g, 1000ULL + g);
        for (int i = 0; i < 4; i++) {
            Arch a;
            do a = arch_random(&d, &r);
            while (search_mflops(&d, &a) > 20);
            NetDesc sd = arch_standalone(&d, &a);
            char text[512];
            arch_format(&d, &a, text, sizeof text);
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%d %d %.17g %.4f %zu %s\n", g, i, 90.0 - i - 0.1 * g,
                                  1e-6 * net_flops(&sd), net_params(&sd), text);
        }
    }
    put("searchlog", name, buf, cut ? n - 20 : n);
}

static void seeds_searchlog(void)
{
    searchlog("searchlog-0", 1, 0);
    searchlog("searchlog-1", 3, 0);
    searchlog("searchlog-cut", 2, 1);
    searchlog("searchlog-too-many", 4, 0);   /* beyond --generations: refused */
}

int main(int argc, char **argv)
{
    if (argc != 2) nta_die("usage: make_seeds DIR (e.g. fuzz/corpus)");
    snprintf(root, sizeof root, "%s", argv[1]);
    mkdir(root, 0755);
    seeds_idx();
    seeds_mnist();
    seeds_cifar();
    seeds_model();
    seeds_arch();
    seeds_searchlog();
    return 0;
}
