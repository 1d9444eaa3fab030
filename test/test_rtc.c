/* test/test_rtc.c: kernels specialised for fixed architectures (rtc.c).
 *
 * The depthwise layers (with batchnorm and ReLU6) of the reference network,
 * the default supernet's largest and smallest architectures and 10 random
 * ones, at batch 2: each layer's generated source
 *   - compiles with NVRTC to a cubin for sm_80 and sm_90 (skipped, with the
 *     reason, where libnvrtc is absent);
 *   - compiled by the host compiler against simt.h into a shared object,
 *     runs on the emulator and gives the generic kernel's output (the
 *     Backend's dw_bn_eval, emulated) bit for bit: the same terms in the same
 *     order, neither built with FMA contraction;
 * and the cache of compiled kernels keeps, checks and rebuilds its entries.
 */
#define _GNU_SOURCE
#include "../nta.h"
#include "../rtc.h"
#include "test.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_CXX
#define TEST_CXX "c++"
#endif

enum { MAX_LAYERS = 256 };

/* The depthwise layers of standalone network d at batch B, appended to L
 * unless a layer of the same shape is there; returns the new count. */
static int dw_layers(const NetDesc *d, int B, RtcDw *L, int n)
{
    int h = d->in_h, w = d->in_w, ci = d->stem_c;   /* the stem keeps the size (stride 1) */
    for (int i = 0; i < d->nblocks; i++) {
        const BlockDesc *b = &d->blk[i];
        RtcDw l = {B, h, w, b->e * ci, b->k, b->s, b->k * b->e * ci, b->e * ci, 1};
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= !memcmp(&L[j], &l, sizeof l);
        if (!seen && n < MAX_LAYERS) L[n++] = l;
        h = conv_out(h, b->k, b->s), w = conv_out(w, b->k, b->s), ci = b->co;
    }
    return n;
}

static int layers(RtcDw *L)
{
    Space sp = space_default();
    NetDesc super = net_supernet(28, 28, 1, 10, &sp, 4), ref = net_reference(28, 28, 1, 10);
    Arch a[12] = {arch_largest(&super), arch_smallest(&super)};
    Rng r;
    rng_seed(&r, 19);
    for (int i = 2; i < 12; i++) a[i] = arch_random(&super, &r);
    int n = dw_layers(&ref, 2, L, 0);
    for (int i = 0; i < 12; i++) {
        NetDesc alone = arch_standalone(&super, &a[i]);
        n = dw_layers(&alone, 2, L, n);
    }
    return n;
}

static void test_nvrtc(const RtcDw *L, int n)
{
    char why[512];
    int version = rtc_nvrtc_version(why, sizeof why);
    if (!version) {
        printf("skipped: rtc: NVRTC compiles: %s\n", why);
        test_skipped++;
        return;
    }
    static char src[16384], log[8192];
    int sms[2] = {80, 90};
    for (int k = 0; k < 2; k++) {
        CHECK(rtc_nvrtc_supports(sms[k]), "NVRTC %d.%d compiles for sm_%d", version / 1000, version % 1000 / 10,
              sms[k]);
        int ok = 0;
        size_t bytes = 0;
        for (int i = 0; i < n; i++) {
            unsigned grid, block;
            void *cubin;
            size_t size;
            char name[32];
            snprintf(name, sizeof name, "nta_dw_%d", i);
            int len = rtc_dw_source(&L[i], name, src, sizeof src, &grid, &block);
            if (len > 0 && rtc_compile(src, name, sms[k], &cubin, &size, log, sizeof log) == 0) {
                ok++, bytes += size;
                free(cubin);
            } else {
                CHECK(0, "layer %d (K %d s %d C %d, %dx%d) for sm_%d: %s", i, L[i].K, L[i].s, L[i].C, L[i].H,
                      L[i].W, sms[k], len > 0 ? log : "the source does not fit");
            }
        }
        CHECK(ok == n, "NVRTC compiled %d of %d specialised depthwise layers for sm_%d (%zu bytes of cubin)", ok, n,
              sms[k], bytes);
    }
}

/* The sources of all layers, built by the host compiler into dir/rtc.so;
 * the handle, or NULL (a failure counted). */
static void *host_build(const RtcDw *L, int n, const char *dir)
{
    char path[512], cmd[2048];
    static char src[16384];
    snprintf(path, sizeof path, "%s/rtc.cpp", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        unsigned grid, block;
        char name[32];
        snprintf(name, sizeof name, "nta_dw_%d", i);
        CHECK(rtc_dw_source(&L[i], name, src, sizeof src, &grid, &block) > 0, "layer %d's source fits", i);
        fputs(src, f);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O2 -Wall -fPIC -shared -I. %s/rtc.cpp -o %s/rtc.so > %s/cxx.log 2>&1",
             TEST_CXX, dir, dir, dir);
    if (test_run(cmd) != 0) {
        CHECK(0, "the host compiler builds the specialised sources (see %s/cxx.log)", dir);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/rtc.so", dir);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL, "dlopen %s: %s", path, lib ? "" : dlerror());
    return lib;
}

typedef void (*Launch)(float *, const float *, const float *, const float *, const float *, const float *,
                       const float *);

/* Random values in [lo, hi) on the device (the Backend be) */
static float *dev_rand(const Backend *be, Rng *r, size_t n, float lo, float hi)
{
    float *h = nta_malloc(n * sizeof(float)), *d = be->alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * rng_uniform(r);
    be->upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

static void test_emulated(const RtcDw *L, int n)
{
    char why[256], dir[] = "/tmp/nta-rtc-XXXXXX";
    if (!cuda_available(why, sizeof why) || !strstr(why, "emulator")) {
        printf("skipped: rtc: specialised kernels on the emulator: the CUDA backend here is %s\n", why);
        test_skipped++;
        return;
    }
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    void *lib = host_build(L, n, dir);
    if (!lib) return;
    const Backend *be = &cuda_backend;
    Rng r;
    rng_seed(&r, 3);
    int same = 0;
    for (int i = 0; i < n; i++) {
        const RtcDw *l = &L[i];
        char name[48];
        snprintf(name, sizeof name, "nta_dw_%d_launch", i);
        Launch run;
        void *f = dlsym(lib, name);
        memcpy(&run, &f, sizeof f);
        if (!f) {
            CHECK(0, "%s is in the shared object", name);
            continue;
        }
        int Ho = conv_out(l->H, l->K, l->s), Wo = conv_out(l->W, l->K, l->s);
        size_t nx = (size_t)l->N * l->H * l->W * l->C, ny = (size_t)l->N * Ho * Wo * l->C;
        size_t nw = (size_t)l->K * l->ldr;
        float *x = dev_rand(be, &r, nx, -2, 2), *w = dev_rand(be, &r, nw, -1, 1);
        float *g = dev_rand(be, &r, l->C, 0.5f, 1.5f), *b = dev_rand(be, &r, l->C, -0.5f, 0.5f);
        float *m = dev_rand(be, &r, l->C, -0.5f, 0.5f), *v = dev_rand(be, &r, l->C, 0.1f, 2);
        float *y0 = be->alloc(ny * sizeof(float)), *y1 = be->alloc(ny * sizeof(float));
        be->dw_bn_eval(y0, x, w, l->ldr, l->ldc, g, b, m, v, l->N, l->H, l->W, l->C, l->K, l->s, l->relu6);
        run(y1, x, w, g, b, m, v);
        float *h0 = nta_malloc(ny * sizeof(float)), *h1 = nta_malloc(ny * sizeof(float));
        be->download(h0, y0, ny * sizeof(float));
        be->download(h1, y1, ny * sizeof(float));
        int eq = !memcmp(h0, h1, ny * sizeof(float));
        same += eq;
        CHECK(eq, "layer %d (K %d s %d C %d, %dx%d): the specialised kernel differs from the generic one", i, l->K,
              l->s, l->C, l->H, l->W);
        free(h0), free(h1);
        be->free(x), be->free(w), be->free(g), be->free(b), be->free(m), be->free(v), be->free(y0), be->free(y1);
    }
    printf("rtc: %d specialised depthwise layers equal the generic kernel bit for bit on the emulator\n", same);
    dlclose(lib);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed) test_run(cmd);
}

/* The cache: a miss then a hit of the same bytes; a damaged entry (a byte
 * of the cubin flipped, or cut short) deleted and compiled again; a place
 * that cannot be written (a file where the folder should be) still compiles. */
static void test_cache(const RtcDw *L)
{
    char why[256], dir[] = "/tmp/nta-rtc-cache-XXXXXX", path[600], log[4096];
    static char src[16384];
    if (!rtc_nvrtc_version(why, sizeof why)) {
        printf("skipped: rtc: the kernel cache: %s\n", why);
        test_skipped++;
        return;
    }
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    unsigned grid, block;
    rtc_dw_source(&L[0], "nta_dw_cache", src, sizeof src, &grid, &block);
    void *c[5];
    size_t n[5];
    int got[5];
    got[0] = rtc_compile_cached(src, "nta_dw_cache", 80, dir, &c[0], &n[0], log, sizeof log);
    got[1] = rtc_compile_cached(src, "nta_dw_cache", 80, dir, &c[1], &n[1], log, sizeof log);
    CHECK(got[0] == RTC_MISS && got[1] == RTC_HIT && n[0] == n[1] && !memcmp(c[0], c[1], n[0]),
          "the cache: a miss (%d), then a hit (%d) of the same %zu bytes", got[0], got[1], n[0]);
    char cmd[1024];
    for (int k = 2; k <= 3; k++) {       /* 2: a byte of the cubin flipped; 3: the entry cut short */
        snprintf(cmd, sizeof cmd,
                 k == 2 ? "f=$(ls %s/*.cubin) && printf '\\377' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null"
                        : "f=$(ls %s/*.cubin) && truncate -s 50 $f",
                 dir);
        CHECK(test_run(cmd) == 0, "damage the cache entry (%s)", cmd);
        got[k] = rtc_compile_cached(src, "nta_dw_cache", 80, dir, &c[k], &n[k], log, sizeof log);
        CHECK(got[k] == RTC_REBUILT && n[k] == n[0] && !memcmp(c[k], c[0], n[0]),
              "a damaged cache entry (%s) is compiled again: %d", k == 2 ? "a flipped byte" : "cut short", got[k]);
    }
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/file/nta", dir);
    CHECK(rtc_cache_dir(path, why, sizeof why) == -1, "no cache folder under a file");
    got[4] = rtc_compile_cached(src, "nta_dw_cache", 80, path, &c[4], &n[4], log, sizeof log);
    CHECK(got[4] == RTC_UNCACHED && n[4] == n[0], "a cache that cannot be written still compiles: %d", got[4]);
    for (int k = 0; k < 5; k++) free(c[k]);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}

void test_rtc(void)
{
    static RtcDw L[MAX_LAYERS];
    int n = layers(L);
    CHECK(n >= 10, "%d distinct depthwise layers to specialise", n);
    test_nvrtc(L, n);
    test_cache(L);
    test_emulated(L, n);
}
