/* test/test_cuda.cpp: the CUDA backend (cuda.cu, kernels.cu, gemm.cu, conv.cu)
 * against the CPU reference (cpu.c): every op on odd shapes, whole training
 * steps of a fixed network and of a supernet slice, then the command line
 * with --device. In test/run the backend runs on the SIMT emulator (simt.h);
 * in test/run-gpu (test/gpu.sh) the same checks run on the real device.
 *
 * Inputs are made on the host, copied to both backends, and the outputs
 * compared element by element: |cuda - cpu| <= abs + rel * |cpu|, with the
 * (abs, rel) of each kind of op in the one table below. TEST_CUDA_SHOW=1
 * prints the worst error of every comparison in units of its tolerance.
 * Launches are kept small (at most ~1e5 threads) so the emulator is quick.
 */
extern "C" {
#include "../nta.h"
#include "../train.h"
#include "test.h"
}
#if !defined(NTA_TEST_GPU)
#include "../nta_cuda.h"        /* SIMT_LAUNCH, LAUNCH_CHECK: the emulator only */
#endif

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ tolerances */

/* Float sums in another order (tiles, split K, partial sums, warp trees)
 * differ from the CPU's by a few units in the last place of the terms'
 * magnitudes; TF32 keeps 10 bits of mantissa. */
static const struct Tol {
    const char *what;
    double abs, rel;
} tols[] = {
    {"gemm", 5e-5, 1e-5},          /* inputs in [-1,1], K <= 3000: the CPU's own error
                                      against float64 reaches 1.5e-5 */
    {"gemm tf32", 2e-2, 1e-2},     /* the real device's tensor cores only */
    {"gemm+bn", 2e-4, 4e-5},       /* gemm's error times a batchnorm scale of up to 2, plus
                                      the batchnorm's own rounding */
    {"conv", 1e-5, 1e-5},          /* stem and depthwise, forward and gradients */
    {"conv+bn", 2e-5, 2e-5},       /* depthwise conv's error times a batchnorm scale of up
                                      to 2, plus the batchnorm's own rounding */
    {"bn", 1e-5, 1e-5},            /* outputs, statistics, gradients */
    {"elementwise", 1e-7, 1e-6},   /* add, pooling, bias, SGD (a GPU may fuse a*b+c) */
    {"xent", 1e-9, 1e-6},          /* dlogits, per-batch loss */
    {"loss", 1e-9, 1e-6},          /* l1, entropy, mmd and ntxent: gradient, per-batch loss */
    {"step", 1e-5, 1e-4},          /* a network's loss, gradients, parameters after 2 steps */
    {"cli loss", 1e-4, 1e-3},      /* test loss after training 1 epoch on each backend */
};

static const Tol *tol(const char *what)
{
    for (size_t i = 0; i < sizeof tols / sizeof *tols; i++)
        if (!strcmp(tols[i].what, what)) return &tols[i];
    fprintf(stderr, "test_cuda: no tolerance named '%s'\n", what);
    exit(1);
}

static int show;   /* TEST_CUDA_SHOW=1 */

/* Compare got with ref (n floats, both NaN counts as equal: untouched padding).
 * Returns the worst error in units of the tolerance. */
static double compare(const char *tname, const char *what, const float *got, const float *ref,
                      size_t n)
{
    const Tol *t = tol(tname);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(ref[i])) continue;
        double e = fabs((double)got[i] - ref[i]) / (t->abs + t->rel * fabs((double)ref[i]));
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e, at = i;
    }
    if (show) printf("  %-44s %-11s %.3f\n", what, tname, worst);
    CHECK(worst <= 1, "%s: element %zu is %.9g, the CPU's %.9g (%.3g tolerances '%s')", what, at,
          n ? got[at] : 0.0f, n ? ref[at] : 0.0f, worst, tname);
    return worst;
}

/* ------------------------------------------------------------ helpers */

static const Backend *cu = &cuda_backend, *cpu = &cpu_backend;

static float *randv(Rng *r, size_t n, float lo, float hi)
{
    float *v = (float *)nta_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * rng_uniform(r);
    return v;
}

static float *copyv(const float *x, size_t n)
{
    float *v = (float *)nta_malloc((n ? n : 1) * sizeof(float));
    memcpy(v, x, n * sizeof(float));
    return v;
}

/* A device copy of host floats. */
static float *dev(const float *host, size_t n)
{
    float *d = (float *)cu->alloc((n ? n : 1) * sizeof(float));
    cu->upload(d, host, n * sizeof(float));
    return d;
}

/* Download n floats into a new host buffer and free the device copy. */
static float *back(float *d, size_t n)
{
    float *h = (float *)nta_malloc((n ? n : 1) * sizeof(float));
    cu->download(h, d, n * sizeof(float));
    cu->free(d);
    return h;
}

/* A batchnorm load (BnLoad, nta.h) of C channels with random parameters, on
 * the host (h) and the same on the device (d): forward with ReLU6, or, given
 * z's size nz, backward (z random in [-1,1], with the operand's layout).
 * The ranges keep loaded values of inputs in [-1,1] within about 2, the
 * scale the 'gemm+bn' and 'conv+bn' tolerances allow for. */
struct TestLoad {
    float *hp[6], *dp[6];   /* mean, istd, gamma, beta, g_mean, gx_mean [C] */
    float *hz, *dz;         /* backward: z [nz] */
    BnLoad h, d;
};

static void test_load_make(TestLoad *t, Rng *r, int C, size_t nz)
{
    static const float lo[6] = {-0.3f, 0.5f, 0.5f, -0.1f, -0.2f, -0.2f}, hi[6] = {0.3f, 1.1f, 1.1f, 0.1f, 0.2f, 0.2f};
    for (int k = 0; k < 6; k++) t->hp[k] = randv(r, C, lo[k], hi[k]), t->dp[k] = dev(t->hp[k], C);
    t->hz = nz ? randv(r, nz, -1, 1) : NULL;
    t->dz = nz ? dev(t->hz, nz) : NULL;
    t->h = BnLoad{t->hp[0], t->hp[1], t->hp[2], t->hp[3], !nz, t->hz, nz ? t->hp[4] : NULL, nz ? t->hp[5] : NULL};
    t->d = BnLoad{t->dp[0], t->dp[1], t->dp[2], t->dp[3], !nz, t->dz, nz ? t->dp[4] : NULL, nz ? t->dp[5] : NULL};
}

static void test_load_free(TestLoad *t)
{
    for (int k = 0; k < 6; k++) free(t->hp[k]), cu->free(t->dp[k]);
    if (t->dz) free(t->hz), cu->free(t->dz);
}

/* Batchnorm statistics of C channels (BnStats) on the host and the device,
 * running averages random; compare_stats checks the device's against the
 * host's. */
struct TestStats {
    float *h[4], *d[4];     /* mean, istd, run_mean, run_var [C] */
    BnStats hs, ds;
};

static void test_stats_make(TestStats *t, Rng *r, int C)
{
    for (int k = 0; k < 4; k++) t->h[k] = randv(r, C, 0.5f, 1.5f), t->d[k] = dev(t->h[k], C);
    t->hs = BnStats{t->h[0], t->h[1], t->h[2], t->h[3], 0.1f};
    t->ds = BnStats{t->d[0], t->d[1], t->d[2], t->d[3], 0.1f};
}

static void compare_stats(TestStats *t, int C, const char *what)
{
    static const char *names[] = {"mean", "istd", "run_mean", "run_var"};
    for (int k = 0; k < 4; k++) {
        float *got = back(t->d[k], C);
        char w[160];
        snprintf(w, sizeof w, "%s %s", what, names[k]);
        compare("bn", w, got, t->h[k], C);
        free(got), free(t->h[k]);
    }
}

/* ------------------------------------------------------------ memory */

static void test_memory(void)
{
    size_t n = 3000;
    unsigned char *d = (unsigned char *)cu->alloc(n), h[3000];
    memset(h, 0x5a, n);
    cu->download(h, d, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= h[i] == 0;
    CHECK(zero, "alloc must return zeroed memory");
    memset(h, 7, n);
    cu->upload(d, h, n);
    cu->zero(d + 100, 50);
    memset(h, 1, n);
    cu->download(h, d, n);
    CHECK(h[99] == 7 && h[100] == 0 && h[149] == 0 && h[150] == 7, "zero clears exactly its bytes");
    cu->free(d);
}

/* ------------------------------------------------------------ GEMM */

static void gemm_case(Rng *r, const char *tname, int ta, int tb, int M, int N, int K, float beta)
{
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = randv(r, na, -1, 1), *B = randv(r, nb, -1, 1), *C = randv(r, nc, -1, 1);
    if (beta == 0)   /* must not be read */
        for (size_t i = 0; i < nc; i++) C[i] = NAN;
    float *dA = dev(A, na), *dB = dev(B, nb), *dC = dev(C, nc);
    cpu->gemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C, ldc);
    cu->gemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, beta, dC, ldc);
    char what[128];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d %dx%dx%d beta=%g", ta, tb, M, N, K, beta);
    if (K >= 512 && beta == 0) {   /* split K: the same bits every time */
        float *dC2 = dev(C, nc), *got2;
        cu->gemm(ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, beta, dC2, ldc);
        float *got1 = (float *)nta_malloc(nc * sizeof(float));
        cu->download(got1, dC, nc * sizeof(float));
        got2 = back(dC2, nc);
        CHECK(!memcmp(got1, got2, nc * sizeof(float)), "%s is not deterministic", what);
        free(got1), free(got2);
    }
    float *got = back(dC, nc);
    compare(tname, what, got, C, nc);
    cu->free(dA), cu->free(dB);
    free(A), free(B), free(C), free(got);
}

static void test_gemm(const char *tname)
{
    Rng r;
    rng_seed(&r, 11);
    /* tile edges (64x64x16), K = 0, and split K (small C, long K) */
    static const int shapes[][3] = {{1, 1, 1},    {37, 29, 41},  {64, 64, 16}, {65, 63, 17},
                                    {130, 70, 33}, {7, 5, 0},    {300, 20, 9}, {40, 30, 3000},
                                    {5, 200, 700}, {96, 24, 1030}};
    static const float betas[] = {0.0f, 1.0f, 1.3f};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                gemm_case(&r, tname, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                          betas[(s + ta + 2 * tb) % 3]);
}

/* gemm_bn (training with fused batchnorms) against the CPU's twin (the loads
 * as copies, cpu gemm, cpu statistics): A and B read as stored (0), through
 * a forward batchnorm (1) or a backward one (2), the statistics of C when
 * stats. The statistics are checked against the CPU's of the device's own C
 * (C itself differs by the gemm's rounding), and the same call twice gives
 * the same bits (split K and the statistics are last-block reductions). */
static void gemm_bn_case(Rng *r, int ta, int tb, int M, int N, int K, int la, int lb, int stats, float beta)
{
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;   /* as stored */
    int lda = ac + 3, ldb = bc + 2, ldc = stats ? N : N + 5;
    size_t na = (size_t)ar * lda, nb = (size_t)br * ldb, nc = (size_t)M * ldc;
    float *A = randv(r, na, -1, 1), *B = randv(r, nb, -1, 1), *C = randv(r, nc, -1, 1);
    TestLoad LA, LB;
    test_load_make(&LA, r, ac, la == 2 ? na : 0);
    test_load_make(&LB, r, bc, lb == 2 ? nb : 0);
    TestStats st, st2;
    test_stats_make(&st, r, N);
    float *dA = dev(A, na), *dB = dev(B, nb), *dC = dev(C, nc), *dC2 = dev(C, nc);
    for (int k = 0; k < 4; k++) st2.d[k] = dev(st.h[k], N);
    st2.ds = BnStats{st2.d[0], st2.d[1], st2.d[2], st2.d[3], 0.1f};
    cpu->gemm_bn(ta, tb, M, N, K, A, lda, la ? &LA.h : NULL, B, ldb, lb ? &LB.h : NULL, beta, C, ldc, NULL);
    cu->gemm_bn(ta, tb, M, N, K, dA, lda, la ? &LA.d : NULL, dB, ldb, lb ? &LB.d : NULL, beta, dC, ldc,
                stats ? &st.ds : NULL);
    cu->gemm_bn(ta, tb, M, N, K, dA, lda, la ? &LA.d : NULL, dB, ldb, lb ? &LB.d : NULL, beta, dC2, ldc,
                stats ? &st2.ds : NULL);
    char what[160];
    snprintf(what, sizeof what, "gemm_bn ta=%d tb=%d %dx%dx%d loads %d,%d beta=%g%s", ta, tb, M, N, K, la, lb, beta,
             stats ? " stats" : "");
    float *got = back(dC, nc), *again = back(dC2, nc);
    compare("gemm+bn", what, got, C, nc);
    CHECK(!memcmp(got, again, nc * sizeof(float)), "%s is not deterministic", what);
    if (stats) {
        cpu->bn_fwd_train(NULL, st.h[0], st.h[1], st.h[2], st.h[3], got, NULL, NULL, NULL, M, N, 0.1f, 0);
        for (int k = 0; k < 4; k++) {
            float *a = back(st2.d[k], N), *b = (float *)nta_malloc(N * sizeof(float));
            cu->download(b, st.d[k], N * sizeof(float));
            CHECK(!memcmp(a, b, N * sizeof(float)), "%s: statistics not deterministic", what);
            free(a), free(b);
        }
        compare_stats(&st, N, what);
    } else {
        for (int k = 0; k < 4; k++) free(st.h[k]), cu->free(st.d[k]), cu->free(st2.d[k]);
    }
    test_load_free(&LA), test_load_free(&LB);
    cu->free(dA), cu->free(dB);
    free(A), free(B), free(C), free(got), free(again);
}

static void test_gemm_bn(void)
{
    Rng r;
    rng_seed(&r, 16);
    /* small; several tiles each way (several chunks of statistics); split K */
    static const int shapes[][3] = {{37, 29, 41}, {130, 70, 33}, {200, 24, 700}, {65, 16, 7}, {1, 5, 3}};
    for (int s = 0; s < 5; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int la = (s + ta + 2 * tb) % 3, lb = (s + 2 * ta + tb + 1) % 3, stats = (s + ta + tb) % 2 || s == 2;
                gemm_bn_case(&r, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], la, lb, stats,
                             (s + ta) % 2 ? 1.0f : 0.0f);
            }
}

/* The fused inference op (pointwise conv + eval batchnorm + ReLU6) against
 * the CPU's, which fuses it into its GEMM. */
static void test_gemm_bn_eval(void)
{
    Rng r;
    rng_seed(&r, 17);
    static const int shapes[][3] = {{1, 1, 1}, {37, 29, 41}, {130, 48, 300}, {65, 16, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int relu6 = 0; relu6 < 2; relu6++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldx = K + 3, ldw = N + 2;
            size_t nx = (size_t)M * ldx, nw = (size_t)K * ldw, ny = (size_t)M * N;
            float *x = randv(&r, nx, -1, 1), *w = randv(&r, nw, -1, 1);
            float *gamma = randv(&r, N, 0.5f, 1.5f), *beta = randv(&r, N, -3, 3);
            float *rm = randv(&r, N, -1, 1), *rv = randv(&r, N, 0.5f, 1.5f);
            float *y = (float *)nta_malloc(ny * sizeof(float));
            cpu->gemm_bn_eval(y, x, ldx, w, ldw, gamma, beta, rm, rv, M, N, K, relu6);
            float *dx = dev(x, nx), *dw = dev(w, nw), *dg = dev(gamma, N), *db = dev(beta, N);
            float *dm = dev(rm, N), *dv = dev(rv, N), *dy = (float *)cu->alloc(ny * sizeof(float));
            cu->gemm_bn_eval(dy, dx, ldx, dw, ldw, dg, db, dm, dv, M, N, K, relu6);
            float *hy = back(dy, ny);
            char what[96];
            snprintf(what, sizeof what, "gemm_bn_eval %dx%dx%d relu6=%d", M, N, K, relu6);
            compare("gemm+bn", what, hy, y, ny);
            cu->free(dx), cu->free(dw), cu->free(dg), cu->free(db), cu->free(dm), cu->free(dv);
            free(x), free(w), free(gamma), free(beta), free(rm), free(rv), free(y), free(hy);
        }
}

/* The fused depthwise inference op (depthwise conv + eval batchnorm + ReLU6)
 * against the CPU's: KxK windows inside a [7,7,Cmax] tensor. */
static void test_dw_bn_eval(void)
{
    Rng r;
    rng_seed(&r, 19);
    static const int shapes[][5] = {/* N, H, W, C, K */
                                    {2, 9, 7, 37, 3}, {1, 6, 11, 5, 5}, {2, 8, 8, 70, 7}, {1, 5, 4, 8, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++)
        for (int s = 1; s <= 2; s++) {
            int N = shapes[t][0], H = shapes[t][1], W = shapes[t][2], C = shapes[t][3], K = shapes[t][4];
            int relu6 = (int)(t + s) % 2, Cmax = C + 4, ldr = 7 * Cmax, ldc = Cmax;
            size_t woff = (size_t)(7 - K) / 2 * ldr + (size_t)(7 - K) / 2 * ldc;
            size_t nx = (size_t)N * H * W * C, nw = (size_t)49 * Cmax;
            size_t ny = (size_t)N * conv_out(H, K, s) * conv_out(W, K, s) * C;
            float *x = randv(&r, nx, -1, 1), *w = randv(&r, nw, -1, 1);
            float *gamma = randv(&r, C, 0.5f, 1.5f), *beta = randv(&r, C, -3, 3);
            float *rm = randv(&r, C, -1, 1), *rv = randv(&r, C, 0.5f, 1.5f);
            float *y = (float *)nta_malloc(ny * sizeof(float));
            cpu->dw_bn_eval(y, x, w + woff, ldr, ldc, gamma, beta, rm, rv, N, H, W, C, K, s, relu6);
            float *dx = dev(x, nx), *dw = dev(w, nw), *dg = dev(gamma, C), *db = dev(beta, C);
            float *dm = dev(rm, C), *dv = dev(rv, C), *dy = (float *)cu->alloc(ny * sizeof(float));
            cu->dw_bn_eval(dy, dx, dw + woff, ldr, ldc, dg, db, dm, dv, N, H, W, C, K, s, relu6);
            float *hy = back(dy, ny);
            char what[96];
            snprintf(what, sizeof what, "dw_bn_eval N%d %dx%dx%d K%d s%d relu6=%d", N, H, W, C, K, s,
                     relu6);
            compare("conv+bn", what, hy, y, ny);
            cu->free(dx), cu->free(dw), cu->free(dg), cu->free(db), cu->free(dm), cu->free(dv);
            free(x), free(w), free(gamma), free(beta), free(rm), free(rv), free(y), free(hy);
        }
}

/* ------------------------------------------------------------ stem conv */

static void test_conv(void)
{
    Rng r;
    rng_seed(&r, 12);
    static const int cases[][7] = {/* N, H, W, Ci, Co, K, s */
                                   {2, 9, 7, 3, 16, 3, 1}, {3, 8, 8, 1, 5, 5, 2},
                                   {1, 11, 6, 2, 7, 7, 1}, {2, 5, 5, 4, 3, 1, 2},
                                   {2, 10, 9, 3, 33, 3, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int N = cases[c][0], H = cases[c][1], W = cases[c][2], Ci = cases[c][3], Co = cases[c][4];
        int K = cases[c][5], s = cases[c][6], Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
        size_t nx = (size_t)N * H * W * Ci, ny = (size_t)N * Ho * Wo * Co, nw = (size_t)K * K * Ci * Co;
        float *x = randv(&r, nx, -1, 1), *w = randv(&r, nw, -1, 1), *dy = randv(&r, ny, -1, 1);
        float *y = randv(&r, ny, 0, 0), *gw = randv(&r, nw, -1, 1);
        float *dx = dev(x, nx), *dwt = dev(w, nw), *ddy = dev(dy, ny), *dyo = dev(y, ny), *dgw = dev(gw, nw);
        char what[128];
        cpu->conv_fwd(y, x, w, N, H, W, Ci, Co, K, s);
        cu->conv_fwd(dyo, dx, dwt, N, H, W, Ci, Co, K, s);
        float *got = back(dyo, ny);
        snprintf(what, sizeof what, "conv_fwd N%d %dx%dx%d->%d K%d s%d", N, H, W, Ci, Co, K, s);
        compare("conv", what, got, y, ny);
        free(got);
        /* odd cases: dy read through a backward batchnorm (the stem in training) */
        TestLoad L;
        int load = c % 2;
        if (load) test_load_make(&L, &r, Co, ny);
        cpu->conv_bwd_w(gw, dy, load ? &L.h : NULL, x, N, H, W, Ci, Co, K, s);
        cu->conv_bwd_w(dgw, ddy, load ? &L.d : NULL, dx, N, H, W, Ci, Co, K, s);
        got = back(dgw, nw);
        snprintf(what, sizeof what, "conv_bwd_w N%d %dx%dx%d->%d K%d s%d%s", N, H, W, Ci, Co, K, s,
                 load ? " dy bn" : "");
        compare(load ? "conv+bn" : "conv", what, got, gw, nw);
        if (load) test_load_free(&L);
        free(got);
        cu->free(dx), cu->free(dwt), cu->free(ddy);
        free(x), free(w), free(dy), free(y), free(gw);
    }
}

/* ------------------------------------------------------------ depthwise */

/* KxK window at the centre of a [7,7,Cmax] tensor, its first C channels. */
/* The depthwise ops against the CPU; with_bn 1: x read through a batchnorm
 * (xbn holds host pointers for the CPU, dxbn the same values on the
 * device); 2: as training with fused batchnorms (load_bn) runs them: x read
 * through a batchnorm, y's statistics computed by dw_fwd, and dy read
 * through a backward batchnorm in dw_bwd_x and dw_bwd_w. */
static void dw_case(Rng *r, int N, int H, int W, int C, int Cmax, int K, int s, int with_bn)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), off = (7 - K) / 2, ldr = 7 * Cmax, ldc = Cmax;
    size_t nx = (size_t)N * H * W * C, ny = (size_t)N * Ho * Wo * C, nw = (size_t)49 * Cmax;
    size_t woff = (size_t)off * ldr + (size_t)off * ldc;
    float *x = randv(r, nx, -1, 1), *w = randv(r, nw, -1, 1), *dy = randv(r, ny, -1, 1);
    float *y = randv(r, ny, 0, 0), *gx = randv(r, nx, 5, 5), *gw = randv(r, nw, -1, 1);
    float *dx = dev(x, nx), *dwt = dev(w, nw), *ddy = dev(dy, ny);
    float *dyo = dev(y, ny), *dgx = dev(gx, nx), *dgw = dev(gw, nw), *dgw2 = dev(gw, nw);
    /* statistics that keep the inputs of order 1, as the 'conv' tolerance
     * assumes, with some below 0 (cut by ReLU6) and channel 0 scaled past 6 */
    float *bn[4] = {randv(r, C, -0.3f, 0.3f), randv(r, C, 0.5f, 1.5f), randv(r, C, 0.5f, 1.5f),
                    randv(r, C, -0.5f, 0.5f)};
    bn[2][0] = 20;
    float *dbn[4] = {dev(bn[0], C), dev(bn[1], C), dev(bn[2], C), dev(bn[3], C)};
    BnLoad hl = {bn[0], bn[1], bn[2], bn[3], 1, NULL, NULL, NULL}, dl = {dbn[0], dbn[1], dbn[2], dbn[3], 1, NULL, NULL, NULL};
    const BnLoad *xbn = with_bn ? &hl : NULL, *dxbn = with_bn ? &dl : NULL;
    char what[128], shape[64];
    snprintf(shape, sizeof shape, "N%d %dx%dx%d/%d K%d s%d%s", N, H, W, C, Cmax, K, s,
             with_bn == 2 ? " fused bn" : with_bn ? " bn" : "");
    TestStats st;
    TestLoad gl;
    if (with_bn == 2) test_stats_make(&st, r, C), test_load_make(&gl, r, C, ny);
    const BnStats *hst = with_bn == 2 ? &st.hs : NULL, *dst = with_bn == 2 ? &st.ds : NULL;
    const BnLoad *hgl = with_bn == 2 ? &gl.h : NULL, *dgl = with_bn == 2 ? &gl.d : NULL;

    cpu->dw_fwd(y, hst, x, xbn, w + woff, ldr, ldc, N, H, W, C, K, s);
    cu->dw_fwd(dyo, dst, dx, dxbn, dwt + woff, ldr, ldc, N, H, W, C, K, s);
    float *got = back(dyo, ny);
    snprintf(what, sizeof what, "dw_fwd %s", shape);
    compare("conv", what, got, y, ny);
    if (hst) compare_stats(&st, C, what);
    free(got);

    if (with_bn != 1) {
        cpu->dw_bwd_x(gx, dy, hgl, w + woff, ldr, ldc, N, H, W, C, K, s);
        cu->dw_bwd_x(dgx, ddy, dgl, dwt + woff, ldr, ldc, N, H, W, C, K, s);
        got = back(dgx, nx);
        snprintf(what, sizeof what, "dw_bwd_x %s", shape);
        compare(hgl ? "conv+bn" : "conv", what, got, gx, nx);
        free(got);
    } else {
        cu->free(dgx);
    }

    /* the whole [7,7,Cmax] tensor: outside the window it must be untouched */
    cpu->dw_bwd_w(gw + woff, ldr, ldc, dy, hgl, x, xbn, N, H, W, C, K, s);
    cu->dw_bwd_w(dgw + woff, ldr, ldc, ddy, dgl, dx, dxbn, N, H, W, C, K, s);
    cu->dw_bwd_w(dgw2 + woff, ldr, ldc, ddy, dgl, dx, dxbn, N, H, W, C, K, s);
    got = back(dgw, nw);
    float *again = back(dgw2, nw);
    snprintf(what, sizeof what, "dw_bwd_w %s", shape);
    compare(hgl ? "conv+bn" : "conv", what, got, gw, nw);
    if (with_bn == 2) test_load_free(&gl);
    CHECK(!memcmp(got, again, nw * sizeof(float)), "dw_bwd_w %s is not deterministic", shape);
    free(got), free(again);
    cu->free(dx), cu->free(dwt), cu->free(ddy);
    for (int k = 0; k < 4; k++) free(bn[k]), cu->free(dbn[k]);
    free(x), free(w), free(dy), free(y), free(gx), free(gw);
}

static void test_depthwise(void)
{
    Rng r;
    rng_seed(&r, 13);
    static const int ks[] = {1, 3, 5, 7};
    for (int k = 0; k < 4; k++)
        for (int s = 1; s <= 2; s++) {
            dw_case(&r, 2, 9, 7, 37, 48, ks[k], s, 0);
            dw_case(&r, 1, 6, 11, 5, 5, ks[k], s, 0);
            dw_case(&r, 2, 9, 7, 37, 48, ks[k], s, 1);
            dw_case(&r, 2, 9, 7, 37, 48, ks[k], s, 2);
        }
    dw_case(&r, 4, 14, 14, 70, 72, 5, 1, 0);   /* many pixel ranges in the weight gradient */
    dw_case(&r, 4, 14, 14, 70, 72, 5, 1, 1);
    dw_case(&r, 4, 14, 14, 70, 72, 3, 1, 2);   /* and several chunks of statistics */
}

/* ------------------------------------------------------------ batchnorm */

static void bn_case(Rng *r, int P, int C, int relu6)
{
    size_t n = (size_t)P * C;
    char what[128], shape[64];
    snprintf(shape, sizeof shape, "P%d C%d relu6=%d", P, C, relu6);
    /* channels with their own offsets and scales; gamma, beta push some
     * pre-activations past 0 and 6 */
    float *z = randv(r, n, -1, 1), *off = randv(r, C, -3, 3), *sc = randv(r, C, 0.1f, 4);
    for (size_t i = 0; i < n; i++) z[i] = z[i] * sc[i % C] + off[i % C];
    float *gamma = randv(r, C, 0.5f, 3), *beta = randv(r, C, -1, 3);
    float *rm = randv(r, C, -1, 1), *rv = randv(r, C, 0.5f, 2);
    float *y = randv(r, n, 0, 0), *mean = randv(r, C, 0, 0), *istd = randv(r, C, 0, 0);
    float *dz_ = dev(z, n), *dg = dev(gamma, C), *db = dev(beta, C), *drm = dev(rm, C), *drv = dev(rv, C);
    float *dy_ = dev(y, n), *dmean = dev(mean, C), *distd = dev(istd, C);

    /* train forward */
    /* without ReLU6 (a block's projection), a residual added in the same pass */
    float *res = relu6 ? NULL : randv(r, n, -2, 2), *dres = res ? dev(res, n) : NULL;
    cpu->bn_fwd_train(y, mean, istd, rm, rv, z, res, gamma, beta, P, C, 0.1f, relu6);
    cu->bn_fwd_train(dy_, dmean, distd, drm, drv, dz_, dres, dg, db, P, C, 0.1f, relu6);
    float *hy = (float *)nta_malloc(n * sizeof(float)), *hc = (float *)nta_malloc(C * sizeof(float));
    cu->download(hy, dy_, n * sizeof(float));
    snprintf(what, sizeof what, "bn_fwd_train y %s", shape);
    compare("bn", what, hy, y, n);
    static const char *names[] = {"mean", "istd", "run_mean", "run_var"};
    float *dstat[] = {dmean, distd, drm, drv}, *hstat[] = {mean, istd, rm, rv};
    for (int k = 0; k < 4; k++) {
        cu->download(hc, dstat[k], C * sizeof(float));
        snprintf(what, sizeof what, "bn_fwd_train %s %s", names[k], shape);
        compare("bn", what, hc, hstat[k], C);
    }
    /* the same again gives the same bits */
    float *y2 = dev(y, n), *m2 = dev(mean, C), *i2 = dev(istd, C), *rm2 = dev(rm, C), *rv2 = dev(rv, C);
    float *hy2 = (float *)nta_malloc(n * sizeof(float));
    cu->upload(drm, rm, C * sizeof(float));
    cu->upload(drv, rv, C * sizeof(float));
    cu->bn_fwd_train(dy_, dmean, distd, drm, drv, dz_, dres, dg, db, P, C, 0.1f, relu6);
    cu->bn_fwd_train(y2, m2, i2, rm2, rv2, dz_, dres, dg, db, P, C, 0.1f, relu6);
    if (dres) cu->free(dres);
    free(res);
    cu->download(hy, dy_, n * sizeof(float));
    cu->download(hy2, y2, n * sizeof(float));
    CHECK(!memcmp(hy, hy2, n * sizeof(float)), "bn_fwd_train %s is not deterministic", shape);
    cu->free(y2), cu->free(m2), cu->free(i2), cu->free(rm2), cu->free(rv2);
    free(hy2);

    /* eval forward with the (updated) running statistics */
    cu->upload(drm, rm, C * sizeof(float));
    cu->upload(drv, rv, C * sizeof(float));
    cpu->bn_fwd_eval(y, z, gamma, beta, rm, rv, P, C, relu6);
    cu->bn_fwd_eval(dy_, dz_, dg, db, drm, drv, P, C, relu6);
    cu->download(hy, dy_, n * sizeof(float));
    snprintf(what, sizeof what, "bn_fwd_eval %s", shape);
    compare("bn", what, hy, y, n);

    /* backward from the CPU's saved statistics, into a separate dz and in place */
    cu->upload(dmean, mean, C * sizeof(float));
    cu->upload(distd, istd, C * sizeof(float));
    float *gy = randv(r, n, -1, 1), *dzr = randv(r, n, 0, 0), *dgam = randv(r, C, -1, 1),
          *dbet = randv(r, C, -1, 1);
    for (int inplace = 0; inplace < 2; inplace++) {
        float *dgy = dev(gy, n), *ddz = inplace ? dgy : dev(dzr, n), *ddg = dev(dgam, C), *ddb = dev(dbet, C);
        float *rg = copyv(dgam, C), *rb = copyv(dbet, C);
        cpu->bn_bwd(dzr, rg, rb, gy, z, mean, istd, gamma, beta, P, C, relu6);
        cu->bn_bwd(ddz, ddg, ddb, dgy, dz_, dmean, distd, dg, db, P, C, relu6);
        cu->download(hy, ddz, n * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd dz %s%s", shape, inplace ? " in place" : "");
        compare("bn", what, hy, dzr, n);
        cu->download(hc, ddg, C * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd dgamma %s%s", shape, inplace ? " in place" : "");
        compare("bn", what, hc, rg, C);
        cu->download(hc, ddb, C * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd dbeta %s%s", shape, inplace ? " in place" : "");
        compare("bn", what, hc, rb, C);
        cu->free(dgy), cu->free(ddg), cu->free(ddb);
        if (!inplace) cu->free(ddz);
        free(rg), free(rb);
    }
    /* the same in two halves, as training with fused batchnorms runs it:
     * bn_bwd_sums (g, its means, the parameter gradients), then bn_apply
     * with a backward load (the consumer's read of dz) */
    {
        float *g = randv(r, n, 0, 0), *gm = randv(r, 2 * C, 0, 0), *rg = copyv(dgam, C), *rb = copyv(dbet, C);
        float *dgy = dev(gy, n), *dgo = dev(g, n), *dgm = dev(gm, 2 * C), *ddg = dev(dgam, C), *ddb = dev(dbet, C);
        cpu->bn_bwd_sums(g, gm, gm + C, rg, rb, gy, z, mean, istd, gamma, beta, P, C, relu6);
        cu->bn_bwd_sums(dgo, dgm, dgm + C, ddg, ddb, dgy, dz_, dmean, distd, dg, db, P, C, relu6);
        cu->download(hy, dgo, n * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd_sums g %s", shape);
        compare("bn", what, hy, g, n);
        float *hm = (float *)nta_malloc(2 * C * sizeof(float));
        cu->download(hm, dgm, 2 * C * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd_sums means %s", shape);
        compare("bn", what, hm, gm, 2 * C);
        cu->download(hc, ddg, C * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd_sums dgamma %s", shape);
        compare("bn", what, hc, rg, C);
        cu->download(hc, ddb, C * sizeof(float));
        snprintf(what, sizeof what, "bn_bwd_sums dbeta %s", shape);
        compare("bn", what, hc, rb, C);
        BnLoad dl = {dmean, distd, dg, db, 0, dz_, dgm, dgm + C};
        cu->bn_apply(dgy, dgo, &dl, NULL, P, C);
        cu->download(hy, dgy, n * sizeof(float));
        snprintf(what, sizeof what, "bn_apply backward %s", shape);
        compare("bn", what, hy, dzr, n);   /* bn_bwd's dz, above */
        cu->free(dgy), cu->free(dgo), cu->free(dgm), cu->free(ddg), cu->free(ddb);
        free(g), free(gm), free(rg), free(rb), free(hm);
    }
    cu->free(dz_), cu->free(dg), cu->free(db), cu->free(drm), cu->free(drv), cu->free(dy_);
    cu->free(dmean), cu->free(distd);
    free(z), free(off), free(sc), free(gamma), free(beta), free(rm), free(rv), free(y), free(mean);
    free(istd), free(hy), free(hc), free(gy), free(dzr), free(dgam), free(dbet);
}

static void test_batchnorm(void)
{
    Rng r;
    rng_seed(&r, 14);
    /* one row; a few; several chunks of 256 rows; C not a multiple of 32 */
    static const int cases[][2] = {{1, 3}, {37, 5}, {600, 33}, {1000, 70}, {257, 32}, {2000, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int relu6 = 0; relu6 < 2; relu6++) bn_case(&r, cases[c][0], cases[c][1], relu6);
}

/* ------------------------------------------------------------ small ops */

static void test_small_ops(void)
{
    Rng r;
    rng_seed(&r, 15);
    char what[64];
    /* add */
    size_t n = 1001;
    float *y = randv(&r, n, -1, 1), *x = randv(&r, n, -1, 1), *dy_ = dev(y, n), *dx = dev(x, n);
    cpu->add(y, x, n);
    cu->add(dy_, dx, n);
    float *got = back(dy_, n);
    compare("elementwise", "add n=1001", got, y, n);
    free(got), free(y), free(x);
    cu->free(dx);

    /* pooling: N=3, HW=35, C=37 */
    int N = 3, HW = 35, C = 37;
    size_t nx = (size_t)N * HW * C, np = (size_t)N * C;
    x = randv(&r, nx, -1, 1), y = randv(&r, np, 0, 0);
    dx = dev(x, nx), dy_ = dev(y, np);
    cpu->gap_fwd(y, x, NULL, N, HW, C);
    cu->gap_fwd(dy_, dx, NULL, N, HW, C);
    got = back(dy_, np);
    compare("elementwise", "gap_fwd N3 HW35 C37", got, y, np);
    free(got);
    {   /* read through a batchnorm (the head in training) */
        TestLoad L;
        test_load_make(&L, &r, C, 0);
        dy_ = dev(y, np);
        cpu->gap_fwd(y, x, &L.h, N, HW, C);
        cu->gap_fwd(dy_, dx, &L.d, N, HW, C);
        got = back(dy_, np);
        compare("bn", "gap_fwd N3 HW35 C37 bn", got, y, np);
        free(got);
        test_load_free(&L);
    }
    float *g = randv(&r, np, -1, 1), *gx = randv(&r, nx, 9, 9), *dg = dev(g, np), *dgx = dev(gx, nx);
    cpu->gap_bwd(gx, g, N, HW, C);
    cu->gap_bwd(dgx, dg, N, HW, C);
    got = back(dgx, nx);
    compare("elementwise", "gap_bwd N3 HW35 C37", got, gx, nx);
    free(got), free(x), free(y), free(g), free(gx);
    cu->free(dx), cu->free(dg);

    /* bias: M=13, N=37 */
    int M = 13;
    N = 37;
    y = randv(&r, (size_t)M * N, -1, 1);
    float *b = randv(&r, N, -1, 1), *db = dev(b, N);
    dy_ = dev(y, (size_t)M * N);
    cpu->bias_fwd(y, b, M, N);
    cu->bias_fwd(dy_, db, M, N);
    got = back(dy_, (size_t)M * N);
    compare("elementwise", "bias_fwd M13 N37", got, y, (size_t)M * N);
    free(got);
    dy_ = dev(y, (size_t)M * N);
    cpu->bias_bwd(b, y, M, N);
    cu->bias_bwd(db, dy_, M, N);
    got = back(db, N);
    compare("elementwise", "bias_bwd M13 N37", got, b, N);
    free(got), free(y), free(b);
    cu->free(dy_);

    /* SGD */
    float *w = randv(&r, n, -1, 1), *m = randv(&r, n, -1, 1), *gr = randv(&r, n, -1, 1);
    float *decay = (float *)nta_malloc(n * sizeof(float));
    for (size_t i = 0; i < (size_t)n; i++) decay[i] = (float)((int)(i % 3) - 1);   /* -1, 0, 1 */
    float *dw = dev(w, n), *dm = dev(m, n), *dgr = dev(gr, n), *ddecay = dev(decay, n);
    float lr = 0.1f, *dlr = dev(&lr, 1);   /* the rate is read from backend memory */
    cpu->sgd(w, m, gr, decay, n, &lr, 0.9f, 1e-3f);
    cu->sgd(dw, dm, dgr, ddecay, n, dlr, 0.9f, 1e-3f);
    cu->free(dlr);
    got = back(dw, n);
    compare("elementwise", "sgd w", got, w, n);
    free(got);
    got = back(dm, n);
    compare("elementwise", "sgd momentum", got, m, n);
    free(got), free(w), free(m), free(gr), free(decay);
    cu->free(dgr), cu->free(ddecay);

    /* cross-entropy: rows with tied maxima, one class, many classes */
    static const int shapes[][2] = {{13, 10}, {5, 1}, {9, 37}, {3, 100}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int R = shapes[s][0], L = shapes[s][1];
        size_t nl = (size_t)R * L;
        float *z = randv(&r, nl, -4, 4), *d = randv(&r, nl, 0, 0);
        int32_t *lab = (int32_t *)nta_malloc(R * sizeof(int32_t));
        for (int i = 0; i < R; i++) lab[i] = (int32_t)rng_below(&r, (uint32_t)L);
        if (L > 7) z[3] = z[7] = 5.0f, z[L + 2] = z[L + 5] = 4.5f, lab[0] = 7, lab[1] = 2;
        float *dz_ = dev(z, nl), *dd = dev(d, nl);
        int32_t *dlab = (int32_t *)cu->alloc(R * sizeof(int32_t));
        cu->upload(dlab, lab, R * sizeof(int32_t));
        int c1 = -1, c2 = -2;
        double l1 = cpu->xent(d, &c1, z, lab, R, L), l2 = cu->xent(dd, &c2, dz_, dlab, R, L);
        got = back(dd, nl);
        snprintf(what, sizeof what, "xent dlogits N%d L%d", R, L);
        compare("xent", what, got, d, nl);
        float fl1 = (float)l1, fl2 = (float)l2;
        snprintf(what, sizeof what, "xent loss N%d L%d", R, L);
        compare("xent", what, &fl2, &fl1, 1);
        CHECK(c1 == c2, "xent N%d L%d: %d right, the CPU %d", R, L, c2, c1);
        free(got);
        /* xent_acc adds into a device accumulator, twice here, and NULL keeps nothing */
        double zero[2] = {0, 0}, acc[2];
        double *dacc = (double *)cu->alloc(sizeof zero);
        dd = dev(d, nl);
        cu->xent_acc(dd, dacc, dz_, dlab, R, L);
        cu->xent_acc(dd, NULL, dz_, dlab, R, L);
        cu->xent_acc(dd, dacc, dz_, dlab, R, L);
        cu->free(dd);
        cu->download(acc, dacc, sizeof acc);
        CHECK(acc[0] == 2 * l2 && acc[1] == 2 * c2, "xent_acc N%d L%d twice: loss %.17g right %g, want %.17g %d",
              R, L, acc[0], acc[1], 2 * l2, 2 * c2);
        cu->upload(dacc, zero, sizeof zero);

        /* the entropy of the same logits, and L1 of their first column */
        float *e1 = randv(&r, nl, 0, 0), *t = randv(&r, R, -4, 4), *dt = dev(t, R), *de = dev(e1, nl);
        double h1 = cpu->entropy(e1, z, 0.3f, R, L), h2 = cu->entropy(de, dz_, 0.3f, R, L);
        got = back(de, nl);
        snprintf(what, sizeof what, "entropy dlogits N%d L%d", R, L);
        compare("loss", what, got, e1, nl);
        float fh1 = (float)h1, fh2 = (float)h2;
        snprintf(what, sizeof what, "entropy N%d L%d", R, L);
        compare("loss", what, &fh2, &fh1, 1);
        free(got);
        float *p = randv(&r, R, -4, 4), *dp = dev(p, R);
        float *dl1 = dev(e1, R);
        h1 = cpu->l1(e1, p, t, R), h2 = cu->l1(dl1, dp, dt, R);
        got = back(dl1, R);
        snprintf(what, sizeof what, "l1 dpred N%d", R);
        compare("loss", what, got, e1, R);
        fh1 = (float)h1, fh2 = (float)h2;
        snprintf(what, sizeof what, "l1 N%d", R);
        compare("loss", what, &fh2, &fh1, 1);
        dl1 = dev(e1, R);   /* (back freed the first) */
        cu->l1_acc(dl1, dacc, dp, dt, R);
        cu->l1_acc(dl1, dacc, dp, dt, R);
        cu->free(dl1);
        cu->download(acc, dacc, sizeof acc);
        CHECK(acc[0] == 2 * h2 && acc[1] == 0, "l1_acc N%d twice: %.17g, %g right; want %.17g, 0", R, acc[0], acc[1],
              2 * h2);
        cu->free(dacc);
        /* the MMD of the logits' first R/2 rows against the rest (as features) */
        float *dm = dev(z, nl);
        h1 = cpu->mmd(d, z, R, R / 2, L, 0.7f), h2 = cu->mmd(dm, dz_, R, R / 2, L, 0.7f);
        free(got);
        got = back(dm, nl);
        snprintf(what, sizeof what, "mmd dx N%d C%d", R, L);
        compare("loss", what, got, d, nl);
        fh1 = (float)h1, fh2 = (float)h2;
        snprintf(what, sizeof what, "mmd N%d C%d", R, L);
        compare("loss", what, &fh2, &fh1, 1);
        free(got), free(e1), free(t), free(p), free(z), free(d), free(lab);
        cu->free(dt), cu->free(dp), cu->free(dz_), cu->free(dlab);
    }
}

/* ------------------------------------------------------ self-supervised ops */

/* l2norm forward and backward, and NT-Xent, on row counts below, at and
 * across a warp's 32 lanes and a block's 8 warps, embeddings narrower and
 * wider than a warp (and more than 4 accumulators a lane); a zero row. */
static void test_ssl_ops(void)
{
    static const int shapes[][2] = {{8, 5}, {2, 64}, {34, 37}, {20, 130}, {6, 1}};
    Rng r;
    rng_seed(&r, 31);
    char what[96];
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int N = shapes[k][0], D = shapes[k][1];
        size_t n = (size_t)N * D;
        float *x = randv(&r, n, -2, 2), *y = randv(&r, n, 0, 0), *nrm = randv(&r, N, 0, 0);
        for (int d = 0; d < D; d++) x[d] = 0;     /* row 0: zero, the clamped length */
        float *dx_ = dev(x, n), *dy_ = dev(y, n), *dn = dev(nrm, N);
        cpu->l2norm_fwd(y, nrm, x, N, D);
        cu->l2norm_fwd(dy_, dn, dx_, N, D);
        float *got = back(dn, N);
        snprintf(what, sizeof what, "l2norm norm N%d D%d", N, D);
        compare("elementwise", what, got, nrm, N);
        free(got);
        dn = dev(nrm, N);                        /* both backends go on from the CPU's values */
        float *gy = randv(&r, n, -1, 1), *gx = randv(&r, n, 0, 0), *dgy = dev(gy, n), *dgx = dev(gx, n);
        got = back(dy_, n);
        snprintf(what, sizeof what, "l2norm y N%d D%d", N, D);
        compare("elementwise", what, got, y, n);
        free(got);
        dy_ = dev(y, n);
        cpu->l2norm_bwd(gx, gy, y, nrm, N, D);
        cu->l2norm_bwd(dgx, dgy, dy_, dn, N, D);
        got = back(dgx, n);
        snprintf(what, sizeof what, "l2norm dx N%d D%d", N, D);
        compare("elementwise", what, got, gx, n);
        free(got);

        /* NT-Xent of the unit rows (N even) */
        if (N % 2 == 0) {
            float *de = randv(&r, n, 0, 0), *dde = dev(de, n);
            int c1 = -1, c2 = -2;
            double l1 = cpu->ntxent(de, &c1, y, N, D, 0.3f), l2 = cu->ntxent(dde, &c2, dy_, N, D, 0.3f);
            got = back(dde, n);
            snprintf(what, sizeof what, "ntxent de N%d D%d", N, D);
            compare("loss", what, got, de, n);
            float f1 = (float)l1, f2 = (float)l2;
            snprintf(what, sizeof what, "ntxent loss N%d D%d", N, D);
            compare("loss", what, &f2, &f1, 1);
            CHECK(c1 == c2, "ntxent N%d D%d: %d right, the CPU %d", N, D, c2, c1);
            free(got), free(de);
        }
        free(x), free(y), free(nrm), free(gy), free(gx);
        cu->free(dx_), cu->free(dy_), cu->free(dn), cu->free(dgy);
    }
}

/* ------------------------------------------------------------ whole steps */

/* Train two steps of the same network on both backends from the same
 * initialisation and batch; compare loss, gradients and parameters (running
 * statistics included), then the eval-mode logits. With a projection head
 * (d->mlp), the loss is the SSL loss (net_ssl_loss). */
static void step_case(const char *name, const NetDesc *d, const Arch *arch, int B)
{
    float lr = d->mlp ? 0.01f : 0.1f;   /* SSL: gradients ~100x the classifier's at the start */
    Net *a = net_create(d, LOSS_XENT, cpu, B, 21, 0), *b = net_create(d, LOSS_XENT, cu, B, 21, 0);
    if (arch) net_set_arch(a, arch), net_set_arch(b, arch);
    Rng r;
    rng_seed(&r, 22);
    size_t nx = (size_t)B * d->in_h * d->in_w * d->in_c, nf = a->nfloats;
    float *x = randv(&r, nx, -2, 2), *h = (float *)nta_malloc(nf * sizeof(float));
    for (size_t i = nx / 2; d->mlp && i < nx; i++)   /* SSL: the second views, the first plus noise */
        x[i] = x[i - nx / 2] + 0.2f * (rng_uniform(&r) - 0.5f);
    int32_t *y = (int32_t *)nta_malloc(B * sizeof(int32_t));
    for (int i = 0; i < B; i++) y[i] = (int32_t)rng_below(&r, (uint32_t)d->classes);
    cpu->upload(a->x_in, x, nx * sizeof(float)), cu->upload(b->x_in, x, nx * sizeof(float));
    cpu->upload(a->y_in, y, B * sizeof(int32_t)), cu->upload(b->y_in, y, B * sizeof(int32_t));
    char what[160];
    for (int step = 0; step < 2; step++) {
        Net *n2[2] = {a, b};
        double loss[2];
        int right[2];
        for (int k = 0; k < 2; k++) {
            net_zero_grad(n2[k]);
            net_forward(n2[k], B, 1);
            if (d->mlp) {
                loss[k] = net_ssl_loss(n2[k], B, 0.5f, &right[k]);
            } else if (step == 0) {   /* the training path: counted on the device, read back once */
                net_train_loss(n2[k], B, 1);
                loss[k] = net_stats_take(n2[k], &right[k]);
            } else {
                loss[k] = net_loss(n2[k], B, &right[k]);
            }
            net_backward(n2[k], B);
        }
        float l0 = (float)loss[0], l1 = (float)loss[1];
        snprintf(what, sizeof what, "%s step %d loss", name, step);
        compare("step", what, &l1, &l0, 1);
        CHECK(right[0] == right[1], "%s step %d: %d right, the CPU %d", name, step, right[1], right[0]);
        cu->download(h, b->g, nf * sizeof(float));
        for (int i = 0; i < a->nparam; i++) {
            const ParamInfo *pi = &a->param[i];
            snprintf(what, sizeof what, "%s step %d grad %s", name, step, pi->name);
            compare("step", what, h + pi->off, a->g + pi->off, pi->n);
        }
        net_update(a, lr, 0.9f, 5e-4f);
        net_update(b, lr, 0.9f, 5e-4f);
    }
    cu->download(h, b->p, nf * sizeof(float));
    for (int i = 0; i < a->nparam; i++) {
        const ParamInfo *pi = &a->param[i];
        snprintf(what, sizeof what, "%s after 2 steps %s", name, pi->name);
        compare("step", what, h + pi->off, a->p + pi->off, pi->n);
    }
    net_forward(a, B, 0);
    net_forward(b, B, 0);
    size_t nl = (size_t)B * d->classes;
    cu->download(h, b->logits, nl * sizeof(float));
    snprintf(what, sizeof what, "%s eval logits", name);
    compare("step", what, h, a->logits, nl);
    free(x), free(h), free(y);
    net_free(a), net_free(b);
}

static void test_steps(void)
{
    /* the CPU side on one thread: tiny layers gain nothing from more, and
     * lose much when the machine is busy */
    int threads = cpu_parts();
    cpu_set_threads(1);
    /* every feature: both strides, residuals, K = 3, 5, 7, odd channel counts */
    NetDesc d = {};
    d.in_h = 11, d.in_w = 9, d.in_c = 2, d.stem_c = 6, d.stem_k = 3, d.nblocks = 4;
    d.head_c = 20, d.classes = 5;
    d.blk[0] = BlockDesc{3, 3, 2, 7};
    d.blk[1] = BlockDesc{5, 2, 1, 7};
    d.blk[2] = BlockDesc{7, 3, 2, 9};
    d.blk[3] = BlockDesc{3, 1, 1, 9};
    step_case("fixed net", &d, NULL, 4);
    /* the same trained by SimCLR: a projection head, NT-Xent over 4 images x 2 views */
    d.mlp = 11;
    step_case("SSL net", &d, NULL, 8);
    d.mlp = 0;
    /* a random slice of a small supernet: kernels and channels read through
     * the full tensors' pitches */
    Space sp = space_default();
    NetDesc s = net_supernet(10, 10, 1, 4, &sp, 2);
    Rng r;
    rng_seed(&r, 23);
    Arch arch = arch_random(&s, &r);
    step_case("supernet slice", &s, &arch, 3);
    cpu_set_threads(threads);
}

#if !defined(NTA_TEST_GPU)
/* What one training step of the reference network asks of the device, as
 * train_step does it (upload the batch and its labels, zero the gradients,
 * forward, loss, backward, SGD), counted by the emulator on the second step:
 * at most 100 launches (issue #18; 96 with the batchnorms fused into the ops
 * around them), no host wait, no allocation. SIMT_TRACE=1 names every
 * launch. */
static void test_step_budget(void)
{
    NetDesc d = net_reference(28, 28, 1, 10);
    int B = 2;
    const Backend *cu = &cuda_backend;
    Net *net = net_create(&d, LOSS_XENT, cu, B, 1, 0);
    Rng r;
    rng_seed(&r, 5);
    size_t nx = (size_t)B * 28 * 28;
    float *x = randv(&r, nx, -2, 2);
    int32_t y[2] = {3, 7};
    simt_counters_t c0 = simt_counters;
    for (int step = 0; step < 2; step++) {
        if (step == 1) c0 = simt_counters;
        cu->upload(net->x_in, x, nx * sizeof(float));
        cu->upload(net->y_in, y, sizeof y);
        net_zero_grad(net);
        net_forward(net, B, 1);
        net_train_loss(net, B, 1);
        net_backward(net, B);
        net_update(net, 0.1f, 0.9f, 5e-4f);
    }
    unsigned long long launches = simt_counters.launches - c0.launches, syncs = simt_counters.syncs - c0.syncs,
                       allocs = simt_counters.allocs - c0.allocs;
    printf("reference-network training step on the CUDA backend: %llu launches, %llu host waits, %llu "
           "allocations (at most 100, 0, 0)\n", launches, syncs, allocs);
    CHECK(launches <= 100 && syncs == 0 && allocs == 0,
          "a reference-network step: %llu launches (at most 100), %llu host waits (0), %llu allocations (0)",
          launches, syncs, allocs);
    /* the same step through net_train_step: run, then recorded, then one graph launch */
    for (int step = 0; step < 3; step++) {
        c0 = simt_counters;
        cu->upload(net->x_in, x, nx * sizeof(float));
        cu->upload(net->y_in, y, sizeof y);
        net_train_step(net, B, 0.1f, 0.9f, 5e-4f);
    }
    unsigned long long graphs = simt_counters.graphs - c0.graphs, glaunch = simt_counters.launches - c0.launches;
    syncs = simt_counters.syncs - c0.syncs, allocs = simt_counters.allocs - c0.allocs;
    printf("the same step as a graph: %llu graph launch, %llu kernels, %llu host waits, %llu allocations\n", graphs,
           glaunch, syncs, allocs);
    CHECK(graphs == 1 && glaunch == launches && syncs == 0 && allocs == 0,
          "a recorded reference-network step: %llu graph launches (1), %llu kernels (%llu), %llu host waits (0), "
          "%llu allocations (0)", graphs, glaunch, launches, syncs, allocs);
    free(x);
    net_free(net);
}

#endif

/* net_train_step's graphs against the same steps run as called: after 20
 * steps (new batches and learning rates each step; a supernet slice whose
 * architecture changes halfway, which records a second graph) the
 * parameters, momentum, running statistics and loss counters are the same
 * bits. */
static void graph_case(const char *name, const NetDesc *d, const Arch *a1, const Arch *a2, int B)
{
    Net *e = net_create(d, LOSS_XENT, cu, B, 31, 0), *g = net_create(d, LOSS_XENT, cu, B, 31, 0);
    Rng r;
    rng_seed(&r, 32);
    size_t nx = (size_t)B * d->in_h * d->in_w * d->in_c, nf = e->nfloats;
    int32_t *y = (int32_t *)nta_malloc(B * sizeof(int32_t));
#if !defined(NTA_TEST_GPU)
    unsigned long long g0 = simt_counters.graphs;
#endif
    for (int step = 0; step < 20; step++) {
        const Arch *a = step < 10 ? a1 : a2;
        if (a) net_set_arch(e, a), net_set_arch(g, a);
        float *x = randv(&r, nx, -2, 2), lr = lr_cosine(0.1f, step, 3, 20);
        for (int i = 0; i < B; i++) y[i] = (int32_t)rng_below(&r, (uint32_t)d->classes);
        Net *both[2] = {e, g};
        for (int k = 0; k < 2; k++) {
            cu->upload(both[k]->x_in, x, nx * sizeof(float));
            cu->upload(both[k]->y_in, y, B * sizeof(int32_t));
        }
        net_zero_grad(e);                 /* as called */
        net_forward(e, B, 1);
        net_train_loss(e, B, 1);
        net_backward(e, B);
        net_update(e, lr, 0.9f, 5e-4f);
        net_train_step(g, B, lr, 0.9f, 5e-4f);
        free(x);
    }
    float *he = (float *)nta_malloc(nf * sizeof(float)), *hg = (float *)nta_malloc(nf * sizeof(float));
    const char *what[2] = {"parameters and running statistics", "momentum"};
    float *arena[2][2] = {{e->p, g->p}, {e->m, g->m}};
    for (int k = 0; k < 2; k++) {
        cu->download(he, arena[k][0], nf * sizeof(float));
        cu->download(hg, arena[k][1], nf * sizeof(float));
        size_t diff = 0;
        for (size_t i = 0; i < nf; i++) diff += memcmp(&he[i], &hg[i], sizeof(float)) != 0;
        CHECK(diff == 0, "%s: graph replay vs as called after 20 steps: %zu of %zu %s differ", name, diff, nf, what[k]);
    }
    int re, rg;
    double le = net_stats_take(e, &re), lg = net_stats_take(g, &rg);
    CHECK(le == lg && re == rg, "%s: loss counters %.17g (%d right) as called, %.17g (%d) by graphs", name, le, re, lg,
          rg);
#if !defined(NTA_TEST_GPU)
    unsigned long long graphs = simt_counters.graphs - g0;
    int want = a2 ? 18 : 19;    /* per architecture: one step as called, then a graph each step */
    CHECK((int)graphs == want, "%s: %llu graph launches in 20 steps, want %d", name, graphs, want);
#endif
    free(he), free(hg), free(y);
    net_free(e), net_free(g);
}

/* net_train_pass's graphs (a supernet's sandwich steps: the largest and
 * smallest architectures recur every step, the random ones run as called)
 * against the same passes run as called: after 8 steps, the same bits. */
static void sandwich_case(int B)
{
    Space sp = space_default();
    NetDesc d = net_supernet(10, 10, 1, 4, &sp, 2);
    Net *e = net_create(&d, LOSS_XENT, cu, B, 41, 0), *g = net_create(&d, LOSS_XENT, cu, B, 41, 0);
    Rng r, ra;
    rng_seed(&r, 42), rng_seed(&ra, 43);
    size_t nx = (size_t)B * d.in_h * d.in_w * d.in_c, nf = e->nfloats;
    int32_t *y = (int32_t *)nta_malloc(B * sizeof(int32_t));
#if !defined(NTA_TEST_GPU)
    unsigned long long g0 = simt_counters.graphs;
#endif
    for (int step = 0; step < 8; step++) {
        float *x = randv(&r, nx, -2, 2);
        for (int i = 0; i < B; i++) y[i] = (int32_t)rng_below(&r, (uint32_t)d.classes);
        Net *both[2] = {e, g};
        for (int k = 0; k < 2; k++) {
            cu->upload(both[k]->x_in, x, nx * sizeof(float));
            cu->upload(both[k]->y_in, y, B * sizeof(int32_t));
            net_zero_grad(both[k]);
        }
        for (int p = 0; p < train_passes(SAMPLE_SANDWICH); p++) {
            TrainCfg whole = {};
            Arch a = train_sample_arch(&d, &whole, SAMPLE_SANDWICH, p, &ra);
            net_set_arch(e, &a), net_set_arch(g, &a);
            net_forward(e, B, 1);          /* as called */
            net_train_loss(e, B, p == 0);
            net_backward(e, B);
            net_train_pass(g, B, p == 0);
        }
        net_update(e, 0.05f, 0.9f, 5e-4f);
        net_update(g, 0.05f, 0.9f, 5e-4f);
        free(x);
    }
    float *he = (float *)nta_malloc(nf * sizeof(float)), *hg = (float *)nta_malloc(nf * sizeof(float));
    cu->download(he, e->p, nf * sizeof(float));
    cu->download(hg, g->p, nf * sizeof(float));
    size_t diff = 0;
    for (size_t i = 0; i < nf; i++) diff += memcmp(&he[i], &hg[i], sizeof(float)) != 0;
    CHECK(diff == 0, "sandwich steps: pass graphs vs as called after 8 steps: %zu of %zu parameters differ", diff,
          nf);
    int re, rg;
    double le = net_stats_take(e, &re), lg = net_stats_take(g, &rg);
    CHECK(le == lg && re == rg, "sandwich steps: loss counters %.17g (%d right) as called, %.17g (%d) by graphs", le,
          re, lg, rg);
#if !defined(NTA_TEST_GPU)
    /* largest and smallest: as called at step 0, recorded at 1, a graph launch from step 1 on */
    unsigned long long graphs = simt_counters.graphs - g0;
    CHECK(graphs == 14, "sandwich steps: %llu graph launches in 8 steps, want 14 (7 largest, 7 smallest)", graphs);
#endif
    free(he), free(hg), free(y);
    net_free(e), net_free(g);
}

static void test_graph_replay(void)
{
    sandwich_case(3);
    NetDesc d = net_reference(12, 12, 1, 10);
    graph_case("reference net", &d, NULL, NULL, 4);
    Space sp = space_default();
    NetDesc s = net_supernet(10, 10, 1, 4, &sp, 2);
    Rng r;
    rng_seed(&r, 33);
    Arch a1 = arch_random(&s, &r), a2 = arch_random(&s, &r);
    graph_case("supernet slices", &s, &a1, &a2, 3);
}

/* ------------------------------------------------------------ command line */

static char dir[] = "/tmp/nta-cuda-XXXXXX";
static char out[32768];

/* Run "BIN ARGS", capture stdout+stderr into out[], return the exit code. */
static int run_nta(const char *bin, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", bin, args);
    return test_capture(cmd, dir, out, sizeof out);
}

/* test_write_dataset (test_cli.c) into files of dir */
static void write_dataset(const char *images, const char *labels, int n, int classes, uint64_t seed)
{
    char img[512], lab[512];
    snprintf(img, sizeof img, "%s/%s", dir, images);
    snprintf(lab, sizeof lab, "%s/%s", dir, labels);
    test_write_dataset(img, lab, n, classes, seed);
}

/* "test accuracy A% (loss L)" of a train or eval run; -1 if absent */
static void accuracy_of(double *acc, double *loss)
{
    const char *t = strstr(out, "test accuracy ");
    *acc = t ? atof(t + 14) : -1;
    const char *l = t ? strstr(t, "(loss ") : NULL;
    *loss = l ? atof(l + 6) : -1;
}

/* Lines of out that start with prefix. */
static int lines_starting(const char *prefix)
{
    int n = 0;
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

static void test_cli_devices(void)
{
    char data[512], args[1024], common[768];
    write_dataset("tr-img", "tr-lab", 32, 4, 1);
    write_dataset("te-img", "te-lab", 8, 4, 2);
    snprintf(data, sizeof data, "idx:%s/tr-img,%s/tr-lab,%s/te-img,%s/te-lab", dir, dir, dir, dir);
    snprintf(common, sizeof common, "--data %s --limit 24 --epochs 1 --batch 8 --val 8 --lr 0.05 --augment 0 --threads 1",
             data);

    /* the training loop on the CUDA backend (emulated), against the CPU */
    snprintf(args, sizeof args, "train --device cuda %s -o %s/emu.nta", common, dir);
    int rc = run_nta("./nta-emu", args);
    double acc_cu, loss_cu, acc_cpu, loss_cpu;
    accuracy_of(&acc_cu, &loss_cu);
    CHECK(rc == 0 && lines_starting("device: cuda, the SIMT emulator") == 1 && acc_cu >= 0,
          "./nta-emu %s: exit %d:\n%s", args, rc, out);
    snprintf(args, sizeof args, "train --device cpu %s -o %s/cpu.nta", common, dir);
    rc = run_nta("./nta", args);
    accuracy_of(&acc_cpu, &loss_cpu);
    CHECK(rc == 0 && acc_cpu >= 0 && !strstr(out, "device:"), "./nta %s: exit %d:\n%s", args, rc, out);
    float fc = (float)loss_cu, fr = (float)loss_cpu;
    compare("cli loss", "test loss after 1 epoch, emulated CUDA vs CPU", &fc, &fr, 1);
    char acc_text[32];
    snprintf(acc_text, sizeof acc_text, "%.2f%%", acc_cu);
    snprintf(args, sizeof args, "eval %s/emu.nta --device cuda --data %s", dir, data);
    rc = run_nta("./nta-emu", args);
    CHECK(rc == 0 && strstr(out, acc_text), "./nta-emu %s: exit %d, want the accuracy train "
          "reported (%s):\n%s", args, rc, acc_text, out);

    /* the real binary: --device cuda needs a GPU, auto falls back with one line */
    snprintf(args, sizeof args, "train --device cuda %s -o %s/m.nta", common, dir);
    rc = run_nta("./nta", args);
#if defined(NTA_HAS_CUDA)
    int gpu = rc == 0;
    if (gpu)
        CHECK(lines_starting("device: cuda, ") == 1, "./nta %s on a GPU:\n%s", args, out);
    else
        CHECK(rc == 1 && strstr(out, "nta: --device cuda: no ") && strstr(out, "; use --device cpu"),
              "./nta %s without a GPU: exit %d (want 1) and the reason:\n%s", args, rc, out);
    snprintf(args, sizeof args, "train --device auto %s -o %s/m.nta", common, dir);
    rc = run_nta("./nta", args);
    if (gpu)
        CHECK(rc == 0 && lines_starting("device: cuda, ") == 1, "./nta %s:\n%s", args, out);
    else
        CHECK(rc == 0 && lines_starting("device: ") == 1 &&
                  lines_starting("device: no CUDA GPU (") == 1 && strstr(out, "); using the CPU\n"),
              "./nta %s without a GPU: exit %d, want one fallback line:\n%s", args, rc, out);
#else
    CHECK(rc == 1 && strstr(out, "built without the CUDA backend"),
          "./nta %s (no CUDA in this build): exit %d:\n%s", args, rc, out);
    snprintf(args, sizeof args, "train --device auto %s -o %s/m.nta", common, dir);
    rc = run_nta("./nta", args);
    CHECK(rc == 0 && !strstr(out, "device:"), "./nta %s: exit %d:\n%s", args, rc, out);
#endif
}

/* ------------------------------------------------------------ the group */

#if defined(NTA_TEST_GPU)
/* test/run-gpu links the real CUDA runtime: the emulator's own tests have no
 * place there. */
extern "C" void test_simt(void) { printf("(simt emulator tests: not in the GPU runner)\n"); }
#endif

/* ------------------------------------------------------- a failed launch */

#if !defined(NTA_TEST_GPU)
static __global__ void idle_kernel(int *p)
{
    if (p) p[threadIdx.x] = 0;
}

/* A launch that fails (2,048 threads a block: more than any device takes) is
 * reported by LAUNCH_CHECK with the kernel's name and the launch's file:line,
 * and the process exits 1. Run in a child process, which it ends. */
static void test_launch_error(void)
{
    char path[640], msg[2048] = "";
    snprintf(path, sizeof path, "%s/launch.err", dir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(path, "w", stderr)) _exit(3);
        SIMT_LAUNCH(idle_kernel, 1, 2048, 0, cuda_stream(), (int *)NULL);
        LAUNCH_CHECK();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    FILE *f = fopen(path, "r");
    if (f) {
        msg[fread(msg, 1, sizeof msg - 1, f)] = 0;
        fclose(f);
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(msg, "after the launch of idle_kernel (") &&
              strstr(msg, "test_cuda.cpp:") && strstr(msg, "NTA_CUDA_SYNC=1"),
          "a failed launch: exit %d (want 1) and a message naming the kernel:\n%s",
          WIFEXITED(st) ? WEXITSTATUS(st) : -1, msg);
}
#endif

extern "C" void test_cuda(void)
{
    const char *s = getenv("TEST_CUDA_SHOW");
    show = s && *s && *s != '0';
    char why[256];
    int ok = cuda_available(why, sizeof why);
    CHECK(ok, "cuda_available: %s", why);
    if (!ok) return;
    if (show) printf("cuda backend on %s\n", why);
    cuda_set_tf32(0);
    double t = nta_now();
#define TIMED(call) (call, show ? printf("%s: %.2f s\n", #call, nta_now() - t) : 0, t = nta_now())
    TIMED(test_memory());
    TIMED(test_gemm("gemm"));
    TIMED(test_gemm_bn_eval());
    TIMED(test_gemm_bn());
    if (cuda_set_tf32(1)) {   /* a real device with tensor cores */
        TIMED(test_gemm("gemm tf32"));
        cuda_set_tf32(0);
    }
    TIMED(test_conv());
    TIMED(test_depthwise());
    TIMED(test_dw_bn_eval());
    TIMED(test_batchnorm());
    TIMED(test_small_ops());
    TIMED(test_ssl_ops());
    TIMED(test_steps());
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot make a temporary directory");
        return;
    }
    TIMED(test_graph_replay());
#if !defined(NTA_TEST_GPU)
    TIMED(test_step_budget());
    TIMED(test_launch_error());   /* the GPU runner's test file is not built by nvcc */
#endif
    TIMED(test_cli_devices());
#undef TIMED
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}
