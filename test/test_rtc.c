/* test/test_rtc.c: kernels specialised for fixed architectures (rtc.c).
 *
 * The networks: the reference network, the default supernet's largest and
 * smallest architectures and 10 random ones (28x28x1 inputs, 10 classes), at
 * batch 2, as rtc_net_build makes them (stem, pointwise + depthwise +
 * projection of every block, head, pool and linear; batchnorm folded):
 *   - every layer's generated kernel compiles with NVRTC to a cubin for
 *     sm_80 and sm_90, as do whole networks' sources (skipped, with the
 *     reason, where libnvrtc is absent);
 *   - every distinct layer, compiled by the host compiler against simt.h
 *     into a shared object, runs on the emulator, and gives the generic
 *     kernels' output (the Backend's ops, emulated, with the batchnorm not
 *     folded) within the bound that folding's rounding allows (rtc.c, at
 *     rtc_fold: 2 gamma_{n+3} M per element), or bit for bit where the sums
 *     are the same terms in the same order (pool and linear; both built
 *     without FMA contraction, as in test/run: test/run-fma, whose generic
 *     kernels contract, runs the cuda group alone);
 *   - whole networks, specialised and run layer after layer on the
 *     emulator, give the generic net_forward's logits within the bound
 *     carried through the layers (each layer's own rounding, plus its
 *     input's difference times |w|);
 * and the cache of compiled kernels keeps, checks and rebuilds its entries.
 */
#define _GNU_SOURCE
#include "../nta.h"
#include "../rtc.h"
#include "test.h"

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_CXX
#define TEST_CXX "c++"
#endif

enum { NETS = 13, MAX_LAYERS = 512 };

/* gamma_n of the rounding analysis (rtc.c, rtc_fold) */
static double gam(int n)
{
    double u = ldexp(1.0, -24);
    return n * u / (1 - n * u);
}

/* Random values in [lo, hi) */
static void fill(Rng *r, float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_uniform(r);
}

/* The test networks' descriptions: the reference network, then the
 * supernet's largest, smallest and 10 random architectures standing alone */
static void nets(NetDesc *d)
{
    Space sp = space_default();
    NetDesc super = net_supernet(28, 28, 1, 10, &sp, 4);
    Arch a[NETS - 1] = {arch_largest(&super), arch_smallest(&super)};
    Rng r;
    rng_seed(&r, 19);
    for (int i = 2; i < NETS - 1; i++) a[i] = arch_random(&super, &r);
    d[0] = net_reference(28, 28, 1, 10);
    for (int i = 1; i < NETS; i++) d[i] = arch_standalone(&super, &a[i - 1]);
}

/* A network of description d for batch B on backend be, with random weights
 * (seed) and random batchnorm parameters and running statistics, so that
 * folding has something to fold */
static Net *random_net(const NetDesc *d, const Backend *be, int B, uint64_t seed)
{
    Net *net = net_create(d, LOSS_XENT, be, B, seed, 0);
    float *p = net_weights_get(net, NULL);
    Rng r;
    rng_seed(&r, seed + 1);
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        const char *end = strrchr(pi->name, '.');
        if (!end) continue;
        if (!strcmp(end, ".gamma")) fill(&r, p + pi->off, pi->n, 0.5f, 1.5f);
        if (!strcmp(end, ".beta")) fill(&r, p + pi->off, pi->n, -0.5f, 0.5f);
        if (!strcmp(end, ".mean")) fill(&r, p + pi->off, pi->n, -0.5f, 0.5f);
        if (!strcmp(end, ".var")) fill(&r, p + pi->off, pi->n, 0.1f, 2.0f);
    }
    net_weights_put(net, p);
    free(p);
    return net;
}

/* The distinct layers of the networks */
static int distinct_layers(RtcNet **rn, RtcLayer *L)
{
    int n = 0;
    for (int i = 0; i < NETS; i++)
        for (int j = 0; j < rn[i]->n; j++) {
            int seen = 0;
            for (int k = 0; k < n && !seen; k++) seen = !memcmp(&L[k], &rn[i]->L[j], sizeof *L);
            if (!seen && n < MAX_LAYERS) L[n++] = rn[i]->L[j];
        }
    return n;
}

/* One source of the n layers L, kernels nta_t0, nta_t1, ... (malloc'ed) */
static char *layers_source(const RtcLayer *L, int n)
{
    size_t cap = 8192 + (size_t)n * 4096, at = 0;
    char *src = nta_malloc(cap);
    unsigned grid, block;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "nta_t%d", i);
        CHECK(rtc_layer_source(&L[i], name, i == 0, src, cap, &at, &grid, &block) == 0, "layer %d's source fits", i);
    }
    return src;
}

/* ------------------------------------------------------------------ NVRTC */

/* Every layer kernel of the networks (the distinct ones in one source: a
 * network's source is the prelude and kernels of the same text, names
 * aside), and the whole sources of the reference network and the largest
 * architecture, compiled by NVRTC for sm_80 and sm_90 */
static void test_nvrtc(RtcNet **rn)
{
    char why[512];
    int version = rtc_nvrtc_version(why, sizeof why);
    if (!version) {
        printf("skipped: rtc: NVRTC compiles: %s\n", why);
        test_skipped++;
        return;
    }
    static RtcLayer L[MAX_LAYERS];
    static char log[16384];
    int n = distinct_layers(rn, L), total = 0;
    for (int i = 0; i < NETS; i++) total += rn[i]->n;
    char *layers = layers_source(L, n);
    const char *src[3] = {layers, rn[0]->src, rn[1]->src};
    const char *what[3] = {"the distinct layers", "the reference network", "the largest architecture"};
    int sms[2] = {80, 90};
    for (int k = 0; k < 2; k++) {
        CHECK(rtc_nvrtc_supports(sms[k]), "NVRTC %d.%d compiles for sm_%d", version / 1000, version % 1000 / 10,
              sms[k]);
        size_t bytes = 0;
        double t0 = nta_now();
        for (int j = 0; j < 3; j++) {
            void *cubin;
            size_t size;
            int ok = rtc_compile(src[j], "nta_net.cu", sms[k], &cubin, &size, log, sizeof log) == 0;
            CHECK(ok, "NVRTC compiles %s for sm_%d: %s", what[j], sms[k], ok ? "" : log);
            if (ok) bytes += size, free(cubin);
        }
        printf("rtc: NVRTC %d.%d compiled the %d distinct layers of %d networks (%d layers), and two whole networks, "
               "for sm_%d: %zu bytes of cubin in %.1f s\n",
               version / 1000, version % 1000 / 10, n, NETS, total, sms[k], bytes, nta_now() - t0);
    }
    /* the target of a device: its own sm, an earlier minor of its major, PTX
     * of NVRTC's newest for a device newer than NVRTC knows, none for one older */
    char why2[512];
    int newer = rtc_target(2000, why2, sizeof why2), older = rtc_target(10, why2, sizeof why2);
    CHECK(rtc_target(90, why, sizeof why) == 90 && rtc_target(89, why, sizeof why) == 89 && newer < 0 &&
              rtc_nvrtc_supports(-newer) && older == 0 && strstr(why2, "older"),
          "rtc_target: sm_90, sm_89, PTX for sm_200 (compute_%d), none for sm_10 (%s)", -newer, why2);
    void *ptx = NULL;
    size_t size = 0;
    int ok = rtc_compile(rn[0]->src, "nta_net.cu", RTC_PTX(90), &ptx, &size, log, sizeof log) == 0;
    CHECK(ok && size > 1 && ((char *)ptx)[size - 1] == 0 && strstr(ptx, ".target sm_90") && strstr(ptx, ".entry nta_l0"),
          "NVRTC compiles the reference network to PTX for compute_90: %s", ok ? "" : log);
    free(ptx);
    free(layers);
}

/* ------------------------------------------------------------ the emulator */

/* Source src built by the host compiler into dir/NAME.so; the handle, or
 * NULL (a failure counted). */
static void *host_build(const char *src, const char *dir, const char *name)
{
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/%s.cpp", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return NULL;
    }
    fputs(src, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s -std=c++17 -O1 -Wall -fPIC -shared -I. %s/%s.cpp -o %s/%s.so > %s/%s.log 2>&1", TEST_CXX, dir,
             name, dir, name, dir, name);
    if (test_run(cmd) != 0) {
        CHECK(0, "the host compiler builds the specialised source (see %s/%s.log)", dir, name);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.so", dir, name);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL, "dlopen %s: %s", path, lib ? "" : dlerror());
    return lib;
}

typedef void (*Launch)(float *, const float *, const float *, const float *, const float *);

static Launch launcher(void *lib, const char *kernel)
{
    char name[64];
    snprintf(name, sizeof name, "%s_launch", kernel);
    Launch run;
    void *f = dlsym(lib, name);
    memcpy(&run, &f, sizeof f);
    CHECK(f != NULL, "%s is in the shared object", name);
    return run;
}

/* out = |w| applied to in with layer L's structure, no bias (doubles):
 * sums of |w| |x| for the rounding bound, and how a difference of the
 * input carries to the output */
static void abs_layer(const RtcLayer *L, double *out, const double *in, const float *w)
{
    int Ho = conv_out(L->H, L->K, L->s), Wo = conv_out(L->W, L->K, L->s), K = L->K, Ci = L->Ci, Co = L->Co;
    int pad = K / 2;
    if (L->kind == RTC_PW) {
        size_t P = (size_t)L->N * L->H * L->W;
        for (size_t m = 0; m < P; m++)
            for (int n = 0; n < Co; n++) {
                double s = 0;
                for (int k = 0; k < Ci; k++) s += in[m * Ci + k] * fabsf(w[(size_t)k * Co + n]);
                out[m * Co + n] = s;
            }
        return;
    }
    if (L->kind == RTC_POOL_FC) {
        int HW = L->H * L->W;
        for (int n = 0; n < L->N; n++)
            for (int l = 0; l < Co; l++) {
                double s = 0;
                for (int c = 0; c < Ci; c++) {
                    double pool = 0;
                    for (int p = 0; p < HW; p++) pool += in[((size_t)n * HW + p) * Ci + c];
                    s += pool / HW * fabsf(w[(size_t)c * Co + l]);
                }
                out[(size_t)n * Co + l] = s;
            }
        return;
    }
    for (int n = 0; n < L->N; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int co = 0; co < Co; co++) {
                    double s = 0;
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy * L->s - pad + ky, ix = ox * L->s - pad + kx;
                            if (iy < 0 || iy >= L->H || ix < 0 || ix >= L->W) continue;
                            const double *xi = in + (((size_t)n * L->H + iy) * L->W + ix) * Ci;
                            if (L->kind == RTC_DW) s += xi[co] * fabsf(w[(ky * K + kx) * Co + co]);
                            else
                                for (int ci = 0; ci < Ci; ci++)
                                    s += xi[ci] * fabsf(w[((size_t)(ky * K + kx) * Ci + ci) * Co + co]);
                        }
                    out[(((size_t)n * Ho + oy) * Wo + ox) * Co + co] = s;
                }
}

/* The generic kernels (Backend be) of layer L, batchnorm not folded: y from
 * x with weights w (pitches ld1, ld2 as rtc_fold reads them), batchnorm g,
 * b, m, v (or the bias b), residual r; z: scratch of y's size */
static void generic_layer(const Backend *be, const RtcLayer *L, float *y, float *z, const float *x, const float *w,
                          int ld1, int ld2, const float *g, const float *b, const float *m, const float *v,
                          const float *r)
{
    int P = L->N * L->H * L->W;
    switch (L->kind) {
    case RTC_STEM:
        be->conv_fwd(z, x, w, L->N, L->H, L->W, L->Ci, L->Co, L->K, L->s);
        be->bn_fwd_eval(y, z, g, b, m, v, (int)(rtc_layer_out(L) / L->Co), L->Co, L->relu6);
        break;
    case RTC_DW:
        be->dw_bn_eval(y, x, w, ld1, ld2, g, b, m, v, L->N, L->H, L->W, L->Co, L->K, L->s, L->relu6);
        break;
    case RTC_PW:
        be->gemm_bn_eval(y, x, L->Ci, w, ld1, g, b, m, v, P, L->Co, L->Ci, L->relu6);
        if (L->residual) be->add(y, r, rtc_layer_out(L));
        break;
    default:
        be->gap_fwd(z, x, NULL, L->N, L->H * L->W, L->Ci);
        be->gemm(0, 0, L->N, L->Co, L->Ci, 1, z, L->Ci, w, ld1, 0, y, L->Co);
        be->bias_fwd(y, b, L->N, L->Co);
    }
}

static float *dev(const Backend *be, const float *h, size_t n)
{
    float *d = be->alloc(n * sizeof(float) + 16);
    if (h) be->upload(d, h, n * sizeof(float));
    return d;
}

/* Element-wise check of a layer's output y1 against the generic y0 [ny]:
 * within 2 gamma_{n+3} (sum |x| |w'| / (1 - u) + bmag), plus |r| and one
 * more rounding with a residual (rtc.c, at rtc_fold). x [l's input], r
 * (or NULL) and wf, bmag (folded) on the host. Returns 1 if within, and
 * the largest difference as a share of its bound into *worst. */
static int within_bound(const RtcLayer *l, const float *y0, const float *y1, const float *x, const float *r,
                        const float *wf, const float *bmag, double *worst, const char *what)
{
    size_t nx = (size_t)l->N * l->H * l->W * l->Ci, ny = rtc_layer_out(l);
    double *xa = nta_malloc(nx * sizeof(double)), *sa = nta_malloc(ny * sizeof(double));
    for (size_t k = 0; k < nx; k++) xa[k] = fabsf(x[k]);
    abs_layer(l, sa, xa, wf);
    int ok = 1, terms = rtc_layer_terms(l) + 3 + (r != NULL);
    for (size_t k = 0; k < ny && ok; k++) {
        double M = sa[k] / (1 - ldexp(1.0, -24)) + bmag[k % (size_t)l->Co] + (r ? fabsf(r[k]) : 0);
        double bound = 2 * gam(terms) * M, diff = fabs((double)y1[k] - y0[k]);
        ok = diff <= bound;
        if (bound > 0 && diff / bound > *worst) *worst = diff / bound;
        if (!ok)
            CHECK(0, "%s (kind %d: K %d s %d %d -> %d, %dx%d) output %zu: %.9g, generic %.9g, bound %.3g", what,
                  l->kind, l->K, l->s, l->Ci, l->Co, l->H, l->W, k, y1[k], y0[k], bound);
    }
    free(xa), free(sa);
    return ok;
}

/* Every distinct layer alone: random input, weights and batchnorm, the
 * specialised kernel (folded) against the generic ops (not folded) */
static void test_layers(RtcNet **rn, const char *dir)
{
    static RtcLayer L[MAX_LAYERS];
    int n = distinct_layers(rn, L);
    char *src = layers_source(L, n);
    void *lib = host_build(src, dir, "layers");
    free(src);
    if (!lib) return;
    const Backend *be = &cuda_backend;
    Rng r;
    rng_seed(&r, 3);
    int within = 0, bitwise = 0, kinds[4] = {0};
    double worst = 0;         /* the largest difference as a share of its bound */
    for (int i = 0; i < n; i++) {
        const RtcLayer *l = &L[i];
        char name[32];
        snprintf(name, sizeof name, "nta_t%d", i);
        Launch run = launcher(lib, name);
        if (!run) continue;
        size_t nx = (size_t)l->N * l->H * l->W * l->Ci;
        size_t ny = rtc_layer_out(l), nw = rtc_layer_weights(l), C = (size_t)l->Co;
        int ld1 = l->kind == RTC_DW ? l->K * l->Co : l->Co, ld2 = l->kind == RTC_DW ? l->Co : 0;
        float *x = nta_malloc(nx * sizeof(float)), *w = nta_malloc(nw * sizeof(float));
        float *bn = nta_malloc(4 * C * sizeof(float)), *res = nta_malloc(ny * sizeof(float));
        float *wf = nta_malloc(nw * sizeof(float)), *bf = nta_malloc(C * sizeof(float));
        float *bmag = nta_malloc(C * sizeof(float));
        fill(&r, x, nx, l->kind == RTC_PW || l->kind == RTC_STEM ? -2 : 0, 2), fill(&r, w, nw, -1, 1);
        fill(&r, bn, C, 0.5f, 1.5f), fill(&r, bn + C, 2 * C, -0.5f, 0.5f), fill(&r, bn + 3 * C, C, 0.1f, 2);
        fill(&r, res, ny, -2, 2);
        int pool = l->kind == RTC_POOL_FC;
        rtc_fold(l, wf, bf, bmag, w, ld1, ld2, pool ? NULL : bn, bn + C, bn + 2 * C, bn + 3 * C);
        float *dx = dev(be, x, nx), *dw = dev(be, w, nw), *dbn = dev(be, bn, 4 * C), *dr = dev(be, res, ny);
        float *dwf = dev(be, wf, nw), *dbf = dev(be, bf, C);
        float *y0 = dev(be, NULL, ny), *y1 = dev(be, NULL, ny), *z = dev(be, NULL, ny > nx ? ny : nx);
        generic_layer(be, l, y0, z, dx, dw, ld1, ld2, dbn, dbn + C, dbn + 2 * C, dbn + 3 * C, dr);
        run(y1, dx, dwf, dbf, l->residual ? dr : NULL);
        float *h0 = nta_malloc(ny * sizeof(float)), *h1 = nta_malloc(ny * sizeof(float));
        be->download(h0, y0, ny * sizeof(float));
        be->download(h1, y1, ny * sizeof(float));
        snprintf(name, sizeof name, "layer %d", i);
        int ok = within_bound(l, h0, h1, x, l->residual ? res : NULL, wf, bmag, &worst, name);
        within += ok, kinds[l->kind]++;
        if (pool) {
            int same = !memcmp(h0, h1, ny * sizeof(float));
            bitwise += same;
            CHECK(same, "layer %d (pool and linear %d -> %d): not bitwise the generic ops' output", i, l->Ci, l->Co);
        }
        free(x), free(w), free(bn), free(res), free(wf), free(bf), free(bmag), free(h0), free(h1);
        be->free(dx), be->free(dw), be->free(dbn), be->free(dr), be->free(dwf), be->free(dbf);
        be->free(y0), be->free(y1), be->free(z);
    }
    CHECK(within == n, "%d of %d layers within the folding bound", within, n);
    printf("rtc: %d distinct specialised layers (%d stem, %d pointwise, %d depthwise, %d pool+linear) equal the "
           "generic ops on the emulator within the folding bound (largest difference %.2f of its bound; pool+linear "
           "%d bit for bit)\n",
           n, kinds[RTC_STEM], kinds[RTC_PW], kinds[RTC_DW], kinds[RTC_POOL_FC], worst, bitwise);
    dlclose(lib);
}

/* The generic network's tensors that correspond to rtc_net_build's layers,
 * in its order: out[i] is layer i's output, its input out[i-1] (x_in for
 * layer 0), a block's residual (stride 1, Ci == Co) the input of its
 * expansion */
static int generic_tensors(Net *net, float **out, float **res)
{
    int n = 0;
    out[n] = net->a_stem, res[n++] = NULL;
    for (int i = 0; i < net->d.nblocks; i++) {
        if (!net->on[i]) continue;
        float *in = out[n - 1];
        out[n] = net->blk[i].a_exp, res[n++] = NULL;
        out[n] = net->blk[i].a_dw, res[n++] = NULL;
        const Block *k = &net->blk[i];
        out[n] = k->out, res[n++] = k->s == 1 && k->ci == k->co ? in : NULL;
    }
    out[n] = net->a_head, res[n++] = NULL;
    out[n] = net->logits, res[n++] = NULL;
    return n;
}

static float *download(const Backend *be, const float *d, size_t n)
{
    float *h = nta_malloc(n * sizeof(float));
    be->download(h, d, n * sizeof(float));
    return h;
}

/* A device for rtc_run_open made of the emulator: it takes NVRTC's cubin as
 * a real one would (so compiling and the cache are exercised), then builds
 * the same source with the host compiler and runs that. */
static const char *tdev_dir;
static int tdev_refuse;                   /* 1: load fails, as a bad cubin would */
static int tdev_arch = 90;                /* the architecture it reports */
static int tdev_ptx;                      /* 1: the last image loaded was PTX text */

static int tdev_sm(char *why, size_t len)
{
    (void)why, (void)len;
    return tdev_arch;
}

static void *tdev_load(const void *cubin, size_t size, const char *src, char *why, size_t len)
{
    static int count;
    char name[32];
    if (tdev_refuse || !cubin || !size) {
        snprintf(why, len, "the test device refuses the cubin");
        return NULL;
    }
    tdev_ptx = ((const char *)cubin)[size - 1] == 0 && strstr(cubin, ".target sm_") != NULL;
    snprintf(name, sizeof name, "run%d", count++);
    void *lib = host_build(src, tdev_dir, name);
    if (!lib) snprintf(why, len, "the host compiler failed");
    return lib;
}

static void *tdev_kernel(void *module, const char *name, char *why, size_t len)
{
    char launch[64];
    snprintf(launch, sizeof launch, "%s_launch", name);
    void *f = dlsym(module, launch);
    if (!f) snprintf(why, len, "no %s", launch);
    return f;
}

static int tdev_launch(void *kernel, unsigned grid, unsigned block, float *y, const float *x, const float *w,
                       const float *b, const float *r, char *why, size_t len)
{
    (void)grid, (void)block, (void)why, (void)len;
    Launch run;
    memcpy(&run, &kernel, sizeof run);
    run(y, x, w, b, r);
    return 0;
}

static void tdev_unload(void *module) { dlclose(module); }

static const RtcDevice tdev = {"emulator (test)", tdev_sm, tdev_load, tdev_kernel, tdev_launch, tdev_unload};

/* The compiled network src on device: for the test device the host
 * compiler's build (NVRTC plays no part: this runs where it is absent),
 * else NVRTC's cubin for the device, loaded. NULL: a failure counted. */
static void *load_module(const RtcDevice *device, const char *src, const char *dir, const char *name)
{
    if (device == &tdev) return host_build(src, dir, name);
    char why[1024];
    static char log[16384];
    int sm = device->sm(why, sizeof why);
    void *cubin = NULL, *mod = NULL;
    size_t size;
    if (sm && rtc_compile(src, name, sm, &cubin, &size, log, sizeof log) == 0)
        mod = device->load(cubin, size, src, why, sizeof why);
    CHECK(mod != NULL, "%s: the network's kernels on the %s device: %s", name, device->name, sm && cubin ? why : sm ? log : why);
    free(cubin);
    return mod;
}

/* Whole networks with random weights and batchnorm, made by net_create and
 * specialised by rtc_net_build, against net_forward (generic kernels,
 * emulated): each specialised layer, given the generic network's input of
 * that layer, gives its output within the folding bound (which checks the
 * wiring: inputs, residuals, weights folded from the network's own layout);
 * then the specialised layers run one after another from the image alone
 * give the same classes, and the logits' difference is printed (carried
 * through 20-30 layers as sums of |w| times differences, the worst-case
 * bound is astronomically loose, so that run is not held to one). */
static void test_networks(const NetDesc *d, const char *dir, const RtcDevice *device)
{
    const Backend *be = &cuda_backend;
    int pick[3] = {0, 2, 5}, B = 2;
    for (int q = 0; q < 3; q++) {
        Net *net = random_net(&d[pick[q]], be, B, 100 + (uint64_t)q);
        char err[256], name[64];
        RtcNet *rn = rtc_net_build(net, B, err, sizeof err);
        float *gen[RTC_MAX_LAYERS], *gres[RTC_MAX_LAYERS];
        if (!rn || generic_tensors(net, gen, gres) != rn->n) {
            CHECK(0, "rtc_net_build: %s", rn ? "not the network's layers" : err);
            rtc_net_free(rn), net_free(net);
            continue;
        }
        snprintf(name, sizeof name, "net%d", q);
        void *lib = load_module(device, rn->src, dir, name);
        if (!lib) {
            rtc_net_free(rn), net_free(net);
            continue;
        }
        Rng r;
        rng_seed(&r, 7 + (uint64_t)q);
        float *x = nta_malloc(rn->nin * sizeof(float));
        fill(&r, x, rn->nin, -2, 2);
        be->upload(net->x_in, x, rn->nin * sizeof(float));
        net_forward(net, B, 0);
        float *param = dev(be, rn->param, rn->nparam), *act = dev(be, NULL, rn->nact), *in = dev(be, x, rn->nin);
        /* layer by layer, from the generic network's own inputs */
        int ok = 0;
        double worst = 0;
        void *run[RTC_MAX_LAYERS];
        for (int i = 0; i < rn->n; i++) {
            const RtcLayer *l = &rn->L[i];
            snprintf(name, sizeof name, "nta_l%d", i);
            run[i] = device->kernel(lib, name, err, sizeof err);
            const float *xi = i ? gen[i - 1] : net->x_in;
            CHECK((rn->res[i] >= -1) == (gres[i] != NULL), "layer %d: a residual where the network has one", i);
            CHECK(run[i] != NULL, "%s: %s", name, err);
            if (!run[i]) continue;
            CHECK(device->launch(run[i], rn->grid[i], rn->block[i], act + rn->aoff[i], xi, param + rn->woff[i],
                                 param + rn->boff[i], gres[i], err, sizeof err) == 0, "launch %s: %s", name, err);
            size_t nx = (size_t)l->N * l->H * l->W * l->Ci, ny = rtc_layer_out(l);
            float *hx = download(be, xi, nx), *h0 = download(be, gen[i], ny), *h1 = download(be, act + rn->aoff[i], ny);
            float *hr = gres[i] ? download(be, gres[i], ny) : NULL;
            snprintf(name, sizeof name, "network %d layer %d", q, i);
            ok += within_bound(l, h0, h1, hx, hr, rn->param + rn->woff[i], rn->bmag + rn->boff[i], &worst, name);
            free(hx), free(h0), free(h1), free(hr);
        }
        CHECK(ok == rn->n, "network %d: %d of %d layers within the folding bound on the network's own inputs", q, ok,
              rn->n);
        /* the specialised layers alone, one after another */
        for (int i = 0; i < rn->n; i++) {
            const float *ri = rn->res[i] >= 0 ? act + rn->aoff[rn->res[i]] : rn->res[i] == -1 ? in : NULL;
            if (run[i]) device->launch(run[i], rn->grid[i], rn->block[i], act + rn->aoff[i], i ? act + rn->aoff[i - 1] : in,
                                       param + rn->woff[i], param + rn->boff[i], ri, err, sizeof err);
        }
        int L = d[pick[q]].classes, same = 1;
        float *g = download(be, net->logits, (size_t)B * L), *mine = download(be, act + rn->aoff[rn->n - 1], (size_t)B * L);
        double diff = 0, top = 0;
        for (int b = 0; b < B; b++) {
            int c0 = 0, c1 = 0;
            for (int k = 0; k < L; k++) {
                c0 = g[b * L + k] > g[b * L + c0] ? k : c0, c1 = mine[b * L + k] > mine[b * L + c1] ? k : c1;
                diff = fmax(diff, fabs((double)mine[b * L + k] - g[b * L + k])), top = fmax(top, fabs(g[b * L + k]));
            }
            same &= c0 == c1;
        }
        CHECK(same, "network %d: the specialised network's classes differ from net_forward's", q);
        printf("rtc: network %d, %d specialised layers on the %s device: each within the folding bound given the "
               "generic network's input (largest difference %.2f of its bound); run alone, the same classes, logits "
               "within %.2g of net_forward's (largest %.3g)\n",
               q, rn->n, device->name, worst, diff, top);
        free(x), free(g), free(mine);
        be->free(param), be->free(act), be->free(in);
        device->unload(lib);
        rtc_net_free(rn), net_free(net);
    }
}

/* ------------------------------------------------------- running them */

/* rtc_run_open and rtc_run_forward on the test device: a network compiled
 * (a miss), run, and the same classes as net_forward; opened again (a hit);
 * a source NVRTC rejects: NULL, its source and log saved in the cache
 * folder and named in why; a device that refuses the cubin: NULL, why. */
static void test_run_open(const NetDesc *d, const char *dir, const RtcDevice *device)
{
    char why[1024];
    if (!rtc_nvrtc_version(why, sizeof why)) {
        RtcNet none = {0};
        CHECK(rtc_run_open(&none, device, &cuda_backend, NULL, NULL, why, sizeof why) == NULL && strstr(why, "NVRTC"),
              "without NVRTC rtc_run_open says so: %s", why);
        printf("skipped: rtc: specialised networks compiled, loaded and run: %s\n", why);
        test_skipped++;
        return;
    }
    const Backend *be = &cuda_backend;
    int B = 2, how = -1;
    Net *net = random_net(&d[1], be, B, 300);
    RtcNet *rn = rtc_net_build(net, B, why, sizeof why);
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    CHECK(rtc_cache_dir(cache, why, sizeof why) == 0, "make %s", cache);
    RtcRun *run = rtc_run_open(rn, device, be, cache, &how, why, sizeof why);
    CHECK(run && how == RTC_MISS, "rtc_run_open compiles (a cache miss: %d): %s", how, run ? "" : why);
    if (run) {
        Rng r;
        rng_seed(&r, 5);
        float *x = nta_malloc(rn->nin * sizeof(float)), *out = be->alloc((size_t)B * 10 * sizeof(float));
        fill(&r, x, rn->nin, -2, 2);
        be->upload(net->x_in, x, rn->nin * sizeof(float));
        net_forward(net, B, 0);
        CHECK(rtc_run_forward(run, out, net->x_in, why, sizeof why) == 0, "rtc_run_forward: %s", why);
        float *g = download(be, net->logits, (size_t)B * 10), *mine = download(be, out, (size_t)B * 10);
        int same = 1;
        double diff = 0;
        for (int b = 0; b < B; b++) {
            int c0 = 0, c1 = 0;
            for (int k = 0; k < 10; k++) {
                c0 = g[b * 10 + k] > g[b * 10 + c0] ? k : c0, c1 = mine[b * 10 + k] > mine[b * 10 + c1] ? k : c1;
                diff = fmax(diff, fabs((double)g[b * 10 + k] - mine[b * 10 + k]));
            }
            same &= c0 == c1;
        }
        CHECK(same, "rtc_run_forward's classes are net_forward's (logits within %.2g)", diff);
        /* timed, layer by layer: the same logits; every layer in a part of the network */
        double sec[RTC_MAX_LAYERS];
        CHECK(rtc_run_forward_timed(run, out, net->x_in, sec, why, sizeof why) == 0, "rtc_run_forward_timed: %s", why);
        float *again = download(be, out, (size_t)B * 10);
        int parts = rtc_run_net(run) == rn && rn->part[0] == 0 && rn->part[rn->n - 1] == net->d.nblocks + 1;
        for (int i = 1; i < rn->n; i++) {
            int p = rn->part[i], block = p >= 1 && p <= net->d.nblocks;
            parts &= p >= rn->part[i - 1] && (!block || net->on[p - 1]) && sec[i] >= 0;
        }
        CHECK(!memcmp(again, mine, (size_t)B * 10 * sizeof(float)) && parts,
              "the timed run gives the same logits, and each layer belongs to a running part of the network");
        free(again);
        rtc_run_close(run);
        free(x), free(g), free(mine);
        be->free(out);
        run = rtc_run_open(rn, device, be, cache, &how, why, sizeof why);
        CHECK(run && how == RTC_HIT, "opened again, the kernels come from the cache: %d", how);
        rtc_run_close(run);
    }
    /* a source NVRTC rejects */
    RtcNet broken = *rn;
    size_t n = strlen(rn->src);
    broken.src = nta_malloc(n + 64);
    snprintf(broken.src, n + 64, "%s\nthis is not CUDA;\n", rn->src);
    run = rtc_run_open(&broken, device, be, cache, &how, why, sizeof why);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "grep -q 'this is not CUDA' %s/nta-*.cu && grep -q error %s/nta-*.log", cache, cache);
    CHECK(!run && strstr(why, "error") && strstr(why, ".cu, .log") && test_run(cmd) == 0,
          "a compile error: no runner, NVRTC's first error and where the source and log are: %s", why);
    rtc_run_close(run);
    free(broken.src);
    /* a device that will not load the cubin */
    if (device != &tdev) {
        rtc_net_free(rn), net_free(net);
        return;
    }
    tdev_refuse = 1;
    run = rtc_run_open(rn, &tdev, be, cache, &how, why, sizeof why);
    tdev_refuse = 0;
    CHECK(!run && strstr(why, "refuses"), "a load error: no runner, and why: %s", why);
    rtc_run_close(run);
    /* a device newer than every architecture NVRTC knows: PTX of the newest, for the driver to compile */
    tdev_arch = 2000;
    run = rtc_run_open(rn, &tdev, be, cache, &how, why, sizeof why);
    tdev_arch = 90;
    CHECK(run && how == RTC_MISS && tdev_ptx, "a device newer than NVRTC knows gets PTX (a miss: %d): %s", how,
          run ? "" : why);
    rtc_run_close(run);
    rtc_net_free(rn), net_free(net);
}

/* Exported models: written and read back, the same layers and the same
 * folded weights bit for bit; a flipped byte, a cut file and a file that is
 * no exported model are refused with a message naming the file. The CPU
 * path of an exported model (rtc_layer_cpu), layer by layer on the generic
 * CPU network's own inputs, within the folding bound. */
static void test_export(const NetDesc *d, const char *dir)
{
    char path[600], err[512], cmd[1400];
    Net *net = random_net(&d[0], &cpu_backend, 2, 500);
    RtcNet *rn = rtc_net_build(net, 2, err, sizeof err);
    snprintf(path, sizeof path, "%s/x.nti", dir);
    CHECK(rtc_export_write(rn, path, err, sizeof err) == 0, "rtc_export_write: %s", err);
    CHECK(rtc_export_is(path), "%s is an exported model", path);
    RtcNet *back = rtc_export_read(path, 2, err, sizeof err);
    int same = back && back->n == rn->n && back->nparam == rn->nparam && back->nact == rn->nact &&
               !memcmp(back->L, rn->L, sizeof rn->L) && !memcmp(back->res, rn->res, sizeof rn->res) &&
               !memcmp(back->param, rn->param, rn->nparam * sizeof(float)) && back->norm_set == rn->norm_set &&
               !strcmp(back->src, rn->src);
    CHECK(same, "an exported model reads back as it was written (%s)", back ? "" : err);
    rtc_net_free(back);
    const char *damage[3] = {"printf '\\001' | dd of=%s bs=1 seek=2000 conv=notrunc 2>/dev/null", "truncate -s -9 %s",
                             "printf 'nta model' > %s"};
    const char *said[3] = {"CRC", "truncated", "not an exported model"};
    for (int k = 0; k < 3; k++) {
        rtc_export_write(rn, path, err, sizeof err);
        snprintf(cmd, sizeof cmd, damage[k], path);
        test_run(cmd);
        back = rtc_export_read(path, 2, err, sizeof err);
        CHECK(!back && strstr(err, path) && strstr(err, said[k]), "a damaged export (%s) is refused: %s", said[k],
              back ? "read" : err);
        rtc_net_free(back);
    }
    /* the CPU path on the generic network's own inputs */
    Rng r;
    rng_seed(&r, 8);
    float *x = nta_malloc(rn->nin * sizeof(float)), *y = nta_malloc(rn->nact * sizeof(float));
    fill(&r, x, rn->nin, -2, 2);
    memcpy(net->x_in, x, rn->nin * sizeof(float));
    net_forward(net, 2, 0);
    float *gen[RTC_MAX_LAYERS], *gres[RTC_MAX_LAYERS];
    int ok = generic_tensors(net, gen, gres) == rn->n;
    double worst = 0;
    for (int i = 0; ok && i < rn->n; i++) {
        const RtcLayer *l = &rn->L[i];
        const float *in = i ? gen[i - 1] : net->x_in;
        rtc_layer_cpu(l, y, in, rn->param + rn->woff[i], rn->param + rn->boff[i], gres[i]);
        snprintf(err, sizeof err, "exported layer %d on the CPU", i);
        ok = within_bound(l, gen[i], y, in, l->residual ? gres[i] : NULL, rn->param + rn->woff[i],
                          rn->bmag + rn->boff[i], &worst, err);
    }
    CHECK(ok, "an exported model on the CPU: every layer within the folding bound of the generic CPU network's");
    printf("rtc: an exported model's %d layers on the CPU within the folding bound of the generic CPU network "
           "(largest difference %.2f of its bound)\n", rn->n, worst);
    free(x), free(y);
    rtc_net_free(rn), net_free(net);
}

/* The commands' policy, on nta-emu (whose CUDA backend is the emulator: its
 * device runs no cubins, so the specialised path always fails there):
 * predict falls back with one line and the generic kernels' output
 * (NTA_RTC unset), says nothing (off), exits 1 (strict), exits 2 for a bad
 * NTA_RTC; ./nta predict --help names --cache. */
static void test_commands(const char *dir)
{
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s/img", dir);
    char lab[600];
    snprintf(lab, sizeof lab, "%s/lab", dir);
    test_write_dataset(cmd, lab, 96, 4, 9);
    snprintf(cmd, sizeof cmd,
             "./nta train --data idx:%s/img,%s/lab --epochs 1 --batch 16 --val 16 --device cpu -o %s/m.nta", dir,
             dir, dir);
    if (test_capture(cmd, dir, out, sizeof out)) {
        CHECK(0, "train a model for predict: %s", out);
        return;
    }
    const char *modes[4] = {"", "off", "strict", "bogus"};
    int want[4] = {0, 0, 1, 2};
    for (int m = 0; m < 4; m++) {
        snprintf(cmd, sizeof cmd,
                 "NTA_RTC=%s ./nta-emu predict %s/m.nta --data idx:%s/img,%s/lab --batch 32 --device cuda "
                 "--cache %s/cache -o %s/p%d.csv",
                 modes[m], dir, dir, dir, dir, dir, m);
        int rc = test_capture(cmd, dir, out, sizeof out);
        const char *said = strstr(out, "specialised kernels not used: the CUDA backend is the emulator");
        CHECK(rc == want[m] && (m == 0) == (said != NULL) && (m != 2 || strstr(out, "NTA_RTC=strict")) &&
                  (m != 3 || strstr(out, "NTA_RTC must be on, off or strict")),
              "NTA_RTC=%s nta-emu predict: exit %d (want %d):\n%s", modes[m], rc, want[m], out);
    }
    snprintf(cmd, sizeof cmd, "cmp -s %s/p0.csv %s/p1.csv", dir, dir);
    CHECK(test_run(cmd) == 0, "after the fallback, predict writes what it writes with NTA_RTC=off");
    CHECK(test_capture("./nta predict --help", dir, out, sizeof out) == 0 && strstr(out, "--cache"),
          "predict --help names --cache:\n%s", out);
    /* export, and predict of the exported model: eval's accuracy and classes */
    snprintf(cmd, sizeof cmd, "./nta export %s/m.nta -o %s/m.nti", dir, dir);
    CHECK(test_capture(cmd, dir, out, sizeof out) == 0 && strstr(out, "batchnorm folded"), "%s:\n%s", cmd, out);
    char acc[2][64] = {"", ""};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "./nta predict %s/m.nt%c --data idx:%s/img,%s/lab --batch 32 --device cpu -o %s/q%d.csv",
                 dir, k ? 'i' : 'a', dir, dir, dir, k);
        int rc = test_capture(cmd, dir, out, sizeof out);
        const char *a = strstr(out, "accuracy ");
        if (a) snprintf(acc[k], sizeof acc[k], "%.20s", a);
        CHECK(rc == 0 && a, "%s:\n%s", cmd, out);
    }
    snprintf(cmd, sizeof cmd, "cut -d, -f1-3 %s/q0.csv > %s/q0.cut && cut -d, -f1-3 %s/q1.csv > %s/q1.cut && "
             "cmp -s %s/q0.cut %s/q1.cut", dir, dir, dir, dir, dir, dir);
    CHECK(*acc[0] && !strcmp(acc[0], acc[1]) && test_run(cmd) == 0,
          "predict of the exported model: the model's classes and accuracy (%s vs %s)", acc[1], acc[0]);
    /* an exported model where the kernels cannot load: the CPU, or exit 1 when strict */
    for (int strict = 0; strict < 2; strict++) {
        snprintf(cmd, sizeof cmd,
                 "NTA_RTC=%s ./nta-emu predict %s/m.nti --data idx:%s/img,%s/lab --batch 32 --device cuda -o %s/q2.csv",
                 strict ? "strict" : "on", dir, dir, dir, dir);
        int rc = test_capture(cmd, dir, out, sizeof out);
        snprintf(cmd, sizeof cmd, "cmp -s %s/q1.csv %s/q2.csv", dir, dir);
        CHECK(strict ? rc == 1 && strstr(out, "NTA_RTC=strict")
                     : rc == 0 && test_run(cmd) == 0 &&
                           strstr(out, "not used: the CUDA backend is the emulator, which runs no cubins; running the "
                                       "exported model on the CPU"),
              "NTA_RTC=%s nta-emu predict of an exported model: exit %d, the CPU's CSV:\n%s", strict ? "strict" : "on",
              rc, out);
    }
    snprintf(cmd, sizeof cmd, "./nta export %s/m.nti -o %s/again.nti", dir, dir);
    CHECK(test_capture(cmd, dir, out, sizeof out) == 1, "export of an exported file: exit 1:\n%s", out);
    /* bench: the table, and what was not timed */
    snprintf(cmd, sizeof cmd, "./nta bench %s/m.nta --batch 4 --reps 3 --device cpu", dir);
    int rc = test_capture(cmd, dir, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "ms/pass") && strstr(out, "cpu, ") && strstr(out, "the CPU backend alone was timed") &&
              !strstr(out, "cuda,"),
          "bench on the CPU: a table of the CPU backend, and why no GPU was timed:\n%s", out);
    snprintf(cmd, sizeof cmd, "NTA_RTC=strict ./nta-emu bench %s/m.nta --batch 2 --reps 1 --device cuda", dir);
    CHECK(test_capture(cmd, dir, out, sizeof out) == 1 && strstr(out, "NTA_RTC=strict"),
          "bench with NTA_RTC=strict where the kernels cannot load: exit 1:\n%s", out);
    CHECK(test_capture("./nta bench --help", dir, out, sizeof out) == 0 && strstr(out, "--batch"), "bench --help");
    CHECK(test_capture("./nta export --help", dir, out, sizeof out) == 0 && strstr(out, "-o"), "export --help");
}

/* ------------------------------------------------------------------ cache */

/* The cache: a miss then a hit of the same bytes; a damaged entry (a byte
 * of the cubin flipped, or cut short) deleted and compiled again; a place
 * that cannot be written (a file where the folder should be) still compiles. */
static void test_cache(const char *src)
{
    char why[256], dir[] = "/tmp/nta-rtc-cache-XXXXXX", path[600], log[4096];
    if (!rtc_nvrtc_version(why, sizeof why)) {
        printf("skipped: rtc: the kernel cache: %s\n", why);
        test_skipped++;
        return;
    }
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    void *c[5];
    size_t n[5];
    int got[5];
    got[0] = rtc_compile_cached(src, "nta_cache", 80, dir, &c[0], &n[0], log, sizeof log);
    got[1] = rtc_compile_cached(src, "nta_cache", 80, dir, &c[1], &n[1], log, sizeof log);
    CHECK(got[0] == RTC_MISS && got[1] == RTC_HIT && n[0] == n[1] && !memcmp(c[0], c[1], n[0]),
          "the cache: a miss (%d), then a hit (%d) of the same %zu bytes", got[0], got[1], n[0]);
    char cmd[1024];
    for (int k = 2; k <= 3; k++) {       /* 2: a byte of the cubin flipped; 3: the entry cut short */
        snprintf(cmd, sizeof cmd,
                 k == 2 ? "f=$(ls %s/*.cubin) && printf '\\377' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null"
                        : "f=$(ls %s/*.cubin) && truncate -s 50 $f",
                 dir);
        CHECK(test_run(cmd) == 0, "damage the cache entry (%s)", cmd);
        got[k] = rtc_compile_cached(src, "nta_cache", 80, dir, &c[k], &n[k], log, sizeof log);
        CHECK(got[k] == RTC_REBUILT && n[k] == n[0] && !memcmp(c[k], c[0], n[0]),
              "a damaged cache entry (%s) is compiled again: %d", k == 2 ? "a flipped byte" : "cut short", got[k]);
    }
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/file/nta", dir);
    CHECK(rtc_cache_dir(path, why, sizeof why) == -1, "no cache folder under a file");
    got[4] = rtc_compile_cached(src, "nta_cache", 80, path, &c[4], &n[4], log, sizeof log);
    CHECK(got[4] == RTC_UNCACHED && n[4] == n[0], "a cache that cannot be written still compiles: %d", got[4]);
    for (int k = 0; k < 5; k++) free(c[k]);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}

void test_rtc(void)
{
    NetDesc d[NETS];
    RtcNet *rn[NETS];
    nets(d);
    for (int i = 0; i < NETS; i++) {
        char err[256];
        Net *net = random_net(&d[i], &cpu_backend, 2, 40 + (uint64_t)i);
        rn[i] = rtc_net_build(net, 2, err, sizeof err);
        net_free(net);
        if (!rn[i]) nta_die("rtc_net_build: %s", err);
    }
    test_nvrtc(rn);
    test_cache(rn[0]->src);
    /* on the emulator, the test device (the host compiler's build of the
     * sources); on a GPU (test/run-gpu), the CUDA runtime's */
    char why[256], dir[] = "/tmp/nta-rtc-XXXXXX";
    int gpu = cuda_available(why, sizeof why), emulated = gpu && strstr(why, "emulator");
    if (!gpu) {
        printf("skipped: rtc: specialised networks run: the CUDA backend here is %s\n", why);
        test_skipped++;
    } else if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
    } else {
        int failed = test_failed;
        tdev_dir = dir;
        const RtcDevice *device = emulated ? &tdev : &rtc_cuda_device;
        if (emulated) test_layers(rn, dir);
        test_networks(d, dir, device);
        test_run_open(d, dir, device);
        test_export(d, dir);
        test_commands(dir);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (test_failed == failed) test_run(cmd);
    }
    for (int i = 0; i < NETS; i++) rtc_net_free(rn[i]);
}
