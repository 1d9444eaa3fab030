/* test/test_cpu.c: every CPU op against a float64 reference (forward) and
 * against central differences (backward).
 *
 * Gradient checks use the scalar L = sum_i y_i r_i (r random), summed in double,
 * so dL/dy = r is the upstream gradient handed to the backward op. The error of a
 * check is max |analytic - numeric| / max |numeric| over the probed inputs. */
#include "../nta.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Backend *be = &cpu_backend;
#define GRAD_TOL 1e-3

static float *randv(Rng *r, size_t n, float scale)
{
    float *v = nta_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = scale * (2 * rng_uniform(r) - 1);
    return v;
}

static double dot(const float *y, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

static double max_rel(const float *a, const double *ref, size_t n)
{
    double e = 0, m = 1e-12;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    return e / m;
}

/* A forward pass under test: fills y from the inputs held in ctx. */
typedef void (*Fwd)(void *ctx, float *y);

/* Compare analytic[j] with dL/dx[j] by central differences at up to 48 probes. */
static double grad_check(Fwd f, void *ctx, float *x, size_t nx, const float *analytic,
                         const float *r, float *y, size_t ny)
{
    const float eps = 1e-2f;
    size_t stride = nx > 48 ? nx / 48 : 1;
    double err = 0, mag = 1e-12;
    for (size_t j = 0; j < nx; j += stride) {
        float keep = x[j];
        x[j] = keep + eps;
        f(ctx, y);
        double lp = dot(y, r, ny);
        x[j] = keep - eps;
        f(ctx, y);
        double lm = dot(y, r, ny);
        x[j] = keep;
        double num = (lp - lm) / (2 * eps);
        err = fmax(err, fabs(num - analytic[j]));
        mag = fmax(mag, fabs(num));
    }
    return err / mag;
}

/* ---------------------------------------------------------------- GEMM */

static void test_gemm(void)
{
    Rng r;
    rng_seed(&r, 1);
    /* shapes cover the row split, the column split (64 rows: 5 tiles a thread
     * and 4 rows over), the K split, the edges of the 6x16 tile, 8 last rows
     * as 4 + 4, B read in place (width a multiple of 8), K longer than one
     * slice with beta 0 and 1.3, and a narrow C (10 columns, computed
     * transposed from A^T in place or transposed first by blocks of rows; on
     * one thread, or by 8-row units on each: 248 rows = 120 + 128; not with
     * K > 512 unless A is transposed) */
    int shapes[][3] = {{37, 29, 41}, {1, 1, 1}, {200, 17, 5}, {8, 20, 3000}, {97, 130, 300},
                       {61, 24, 300}, {130, 48, 70}, {7, 40, 2000}, {64, 96, 200}, {44, 64, 400},
                       {64, 10, 128}, {128, 10, 64}, {248, 10, 96}, {248, 10, 104}, {8, 10, 1024}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
                float *A = randv(&r, (size_t)(ta ? K : M) * lda, 1);
                float *B = randv(&r, (size_t)(tb ? N : K) * ldb, 1);
                float *C = randv(&r, (size_t)M * ldc, 1);
                double *ref = nta_malloc((size_t)M * ldc * sizeof(double));
                float alpha = 0.7f, beta = s % 2 ? 0.0f : 1.3f;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < ldc; j++) {
                        double acc = 0;
                        for (int k = 0; k < K && j < N; k++)
                            acc += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                                   (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                        ref[(size_t)i * ldc + j] = j < N ? alpha * acc + beta * C[(size_t)i * ldc + j]
                                                         : C[(size_t)i * ldc + j];
                    }
                be->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                double e = max_rel(C, ref, (size_t)M * ldc);
                CHECK(e < 1e-5, "gemm ta=%d tb=%d %dx%dx%d: rel error %.2e (padding must be untouched)",
                      ta, tb, M, N, K, e);
                free(A), free(B), free(C), free(ref);
            }
}

/* The fused inference op against its unfused reference (gemm, then
 * bn_fwd_eval in place): tile edges, B read in place and packed, K longer
 * than one slice, small and tall M, the column split (62 rows), with and without ReLU6. */
static void test_gemm_bn_eval(void)
{
    Rng r;
    rng_seed(&r, 2);
    int shapes[][3] = {{37, 29, 41}, {1, 1, 1}, {200, 24, 5}, {61, 48, 300}, {9, 130, 7}, {500, 16, 64},
                       {62, 64, 150}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int relu6 = 0; relu6 < 2; relu6++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldx = K + 3, ldw = N + 2;
            float *x = randv(&r, (size_t)M * ldx, 1), *w = randv(&r, (size_t)K * ldw, 1);
            float *gamma = randv(&r, N, 1), *beta = randv(&r, N, 3), *rm = randv(&r, N, 1);
            float *rv = randv(&r, N, 0.5f);
            for (int j = 0; j < N; j++) rv[j] += 1.0f;           /* variances in [0.5, 1.5] */
            float *y = nta_malloc((size_t)M * N * sizeof(float)), *z = nta_malloc((size_t)M * N * sizeof(float));
            double *ref = nta_malloc((size_t)M * N * sizeof(double));
            be->gemm(0, 0, M, N, K, 1, x, ldx, w, ldw, 0, z, N);
            be->bn_fwd_eval(z, z, gamma, beta, rm, rv, M, N, relu6);
            for (size_t i = 0; i < (size_t)M * N; i++) ref[i] = z[i];
            be->gemm_bn_eval(y, x, ldx, w, ldw, gamma, beta, rm, rv, M, N, K, relu6);
            double e = max_rel(y, ref, (size_t)M * N);
            CHECK(e < 1e-5, "gemm_bn_eval %dx%dx%d relu6=%d: rel error %.2e against gemm + bn_fwd_eval",
                  M, N, K, relu6, e);
            free(x), free(w), free(gamma), free(beta), free(rm), free(rv), free(y), free(z), free(ref);
        }
}

/* ---------------------------------------------------------- convolutions */

typedef struct {
    int N, H, W, Ci, Co, K, s, ldr, ldc;
    float *x, *w;
} ConvCase;

static void conv_f(void *ctx, float *y)
{
    ConvCase *c = ctx;
    be->conv_fwd(y, c->x, c->w, c->N, c->H, c->W, c->Ci, c->Co, c->K, c->s);
}

static void dw_f(void *ctx, float *y)
{
    ConvCase *c = ctx;
    be->dw_fwd(y, NULL, c->x, NULL, c->w, c->ldr, c->ldc, c->N, c->H, c->W, c->Ci, c->K, c->s);
}

static void test_conv(void)
{
    Rng r;
    rng_seed(&r, 2);
    /* {N, H, W, Ci, Co, K}: the last three have Co a multiple of 8, the
     * weight gradient's register path, with K = 3, 5 and 7; Co = 16 is also
     * the forward's */
    int cases[][6] = {{2, 7, 6, 1, 5, 3}, {2, 5, 5, 3, 4, 3}, {1, 6, 7, 2, 3, 5}, {2, 6, 5, 2, 16, 3},
                      {2, 9, 7, 3, 24, 5}, {1, 8, 6, 1, 8, 7}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        for (int s = 1; s <= 2; s++) {
            ConvCase c = {cases[t][0], cases[t][1], cases[t][2], cases[t][3], cases[t][4],
                          cases[t][5], s, 0, 0, NULL, NULL};
            int Ho = conv_out(c.H, c.K, s), Wo = conv_out(c.W, c.K, s), pad = c.K / 2;
            size_t nx = (size_t)c.N * c.H * c.W * c.Ci, nw = (size_t)c.K * c.K * c.Ci * c.Co,
                   ny = (size_t)c.N * Ho * Wo * c.Co;
            c.x = randv(&r, nx, 1), c.w = randv(&r, nw, 1);
            float *y = nta_malloc(ny * sizeof(float)), *rr = randv(&r, ny, 1);
            float *dw = nta_calloc(nw, sizeof(float));
            double *ref = nta_calloc(ny, sizeof(double));
            for (int n = 0; n < c.N; n++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++)
                        for (int co = 0; co < c.Co; co++) {
                            double a = 0;
                            for (int ky = 0; ky < c.K; ky++)
                                for (int kx = 0; kx < c.K; kx++)
                                    for (int ci = 0; ci < c.Ci; ci++) {
                                        int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                                        if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                                        a += (double)c.x[((n * c.H + iy) * c.W + ix) * c.Ci + ci] *
                                             c.w[((ky * c.K + kx) * c.Ci + ci) * c.Co + co];
                                    }
                            ref[((n * Ho + oy) * Wo + ox) * c.Co + co] = a;
                        }
            conv_f(&c, y);
            CHECK(max_rel(y, ref, ny) < 1e-5, "conv K%d s%d forward", c.K, s);
            be->conv_bwd_w(dw, rr, NULL, c.x, c.N, c.H, c.W, c.Ci, c.Co, c.K, s);
            double e = grad_check(conv_f, &c, c.w, nw, dw, rr, y, ny);
            CHECK(e < GRAD_TOL, "conv K%d s%d weight gradient: rel error %.2e", c.K, s, e);
            free(c.x), free(c.w), free(y), free(rr), free(dw), free(ref);
        }
    }
}

/* Depthwise with the active KxK window in the centre of a 7x7 over Cmax = C+3
 * channels: the pitches the supernet will use. */
static void test_depthwise(void)
{
    Rng r;
    rng_seed(&r, 3);
    for (int K = 3; K <= 7; K += 2)
        for (int s = 1; s <= 2; s++) {
            int N = 2, H = 7 + K % 3, W = 6, C = 13, Cmax = C + 3, Kmax = 7, off = (Kmax - K) / 2;
            ConvCase c = {N, H, W, C, C, K, s, Kmax * Cmax, Cmax, NULL, NULL};
            int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
            size_t nx = (size_t)N * H * W * C, nwf = (size_t)Kmax * Kmax * Cmax,
                   ny = (size_t)N * Ho * Wo * C;
            float *wfull = randv(&r, nwf, 1), *dwfull = nta_calloc(nwf, sizeof(float));
            c.x = randv(&r, nx, 1);
            c.w = wfull + off * c.ldr + off * c.ldc;
            float *y = nta_malloc(ny * sizeof(float)), *rr = randv(&r, ny, 1);
            float *dx = nta_malloc(nx * sizeof(float));
            double *ref = nta_calloc(ny, sizeof(double));
            for (int n = 0; n < N; n++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++)
                        for (int ch = 0; ch < C; ch++) {
                            double a = 0;
                            for (int ky = 0; ky < K; ky++)
                                for (int kx = 0; kx < K; kx++) {
                                    int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                    a += (double)c.x[((n * H + iy) * W + ix) * C + ch] *
                                         c.w[ky * c.ldr + kx * c.ldc + ch];
                                }
                            ref[((n * Ho + oy) * Wo + ox) * C + ch] = a;
                        }
            dw_f(&c, y);
            CHECK(max_rel(y, ref, ny) < 1e-5, "depthwise K%d s%d forward", K, s);
            be->dw_bwd_x(dx, rr, NULL, c.w, c.ldr, c.ldc, N, H, W, C, K, s);
            double e = grad_check(dw_f, &c, c.x, nx, dx, rr, y, ny);
            CHECK(e < GRAD_TOL, "depthwise K%d s%d input gradient: rel error %.2e", K, s, e);
            be->dw_bwd_w(dwfull + off * c.ldr + off * c.ldc, c.ldr, c.ldc, rr, NULL, c.x, NULL, N, H, W, C, K, s);
            e = grad_check(dw_f, &c, c.w, (size_t)(K - 1) * c.ldr + (K - 1) * c.ldc + C,
                           dwfull + off * c.ldr + off * c.ldc, rr, y, ny);
            CHECK(e < GRAD_TOL, "depthwise K%d s%d weight gradient: rel error %.2e", K, s, e);
            /* gradients land only inside the active window and channels */
            int outside = 0;
            for (int ky = 0; ky < Kmax; ky++)
                for (int kx = 0; kx < Kmax; kx++)
                    for (int ch = 0; ch < Cmax; ch++) {
                        int in = ky >= off && ky < off + K && kx >= off && kx < off + K && ch < C;
                        if (!in && dwfull[ky * c.ldr + kx * c.ldc + ch] != 0) outside++;
                    }
            CHECK(outside == 0, "depthwise K%d: %d gradients outside the active slice", K, outside);
            free(wfull), free(dwfull), free(c.x), free(y), free(rr), free(dx), free(ref);
        }
}

/* The fused depthwise inference op against its unfused reference (dw_fwd,
 * then bn_fwd_eval in place): channel counts that use the 32- and 8-wide
 * register blocks and the scalar tail, kernel sizes 1..7 inside a 7x7
 * weight tensor, strides 1 and 2, with and without ReLU6. */
static void test_dw_bn_eval(void)
{
    Rng r;
    rng_seed(&r, 4);
    int shapes[][5] = {{2, 9, 7, 45, 3}, {1, 6, 11, 8, 5}, {2, 5, 6, 3, 7}, {1, 8, 8, 96, 3}, {3, 4, 5, 37, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++)
        for (int s = 1; s <= 2; s++) {
            int N = shapes[t][0], H = shapes[t][1], W = shapes[t][2], C = shapes[t][3], K = shapes[t][4];
            int relu6 = (int)(t + s) % 2, Cmax = C + 5, ldr = 7 * Cmax, ldc = Cmax, off = (7 - K) / 2;
            size_t nx = (size_t)N * H * W * C, ny = (size_t)N * conv_out(H, K, s) * conv_out(W, K, s) * C;
            float *x = randv(&r, nx, 1), *wfull = randv(&r, (size_t)49 * Cmax, 1);
            const float *w = wfull + (size_t)off * ldr + (size_t)off * ldc;
            float *gamma = randv(&r, C, 1), *beta = randv(&r, C, 3), *rm = randv(&r, C, 1);
            float *rv = randv(&r, C, 0.5f);
            for (int j = 0; j < C; j++) rv[j] += 1.0f;           /* variances in [0.5, 1.5] */
            float *y = nta_malloc(ny * sizeof(float)), *z = nta_malloc(ny * sizeof(float));
            double *ref = nta_malloc(ny * sizeof(double));
            be->dw_fwd(z, NULL, x, NULL, w, ldr, ldc, N, H, W, C, K, s);
            be->bn_fwd_eval(z, z, gamma, beta, rm, rv, (int)(ny / C), C, relu6);
            for (size_t i = 0; i < ny; i++) ref[i] = z[i];
            be->dw_bn_eval(y, x, w, ldr, ldc, gamma, beta, rm, rv, N, H, W, C, K, s, relu6);
            double e = max_rel(y, ref, ny);
            CHECK(e < 1e-5, "dw_bn_eval N%d %dx%dx%d K%d s%d relu6=%d: rel error %.2e against dw_fwd + bn_fwd_eval",
                  N, H, W, C, K, s, relu6, e);
            free(x), free(wfull), free(gamma), free(beta), free(rm), free(rv), free(y), free(z), free(ref);
        }
}

/* ----------------------------------------------------------- batchnorm */

typedef struct {
    int P, C, relu6;
    float *z, *gamma, *beta, *mean, *istd, *rm, *rv;
} BnCase;

static void bn_f(void *ctx, float *y)
{
    BnCase *b = ctx;
    be->bn_fwd_train(y, b->mean, b->istd, b->rm, b->rv, b->z, NULL, b->gamma, b->beta, b->P, b->C,
                     0.1f, b->relu6);
}

static void test_batchnorm(void)
{
    Rng r;
    rng_seed(&r, 4);
    for (int relu6 = 0; relu6 <= 1; relu6++) {
        BnCase b = {37, 11, relu6, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        size_t n = (size_t)b.P * b.C;
        b.z = randv(&r, n, 3);
        for (size_t i = 0; i < n; i++) b.z[i] += 1.5f;        /* a non-zero mean */
        b.gamma = randv(&r, b.C, 1), b.beta = randv(&r, b.C, 2);
        for (int c = 0; c < b.C; c++) b.gamma[c] += 2.0f, b.beta[c] += relu6 ? 2.0f : 0.0f;
        b.mean = nta_calloc(b.C, 4), b.istd = nta_calloc(b.C, 4);
        b.rm = nta_calloc(b.C, 4), b.rv = nta_calloc(b.C, 4);
        for (int c = 0; c < b.C; c++) b.rv[c] = 1;
        float *y = nta_malloc(n * 4), *rr = randv(&r, n, 1), *dz = nta_malloc(n * 4);
        float *dg = nta_calloc(b.C, 4), *db = nta_calloc(b.C, 4);

        bn_f(&b, y);
        /* forward against the float64 formula, and the running averages */
        double *ref = nta_malloc(n * sizeof(double));
        int stat_ok = 1;
        for (int c = 0; c < b.C; c++) {
            double m = 0, v = 0;
            for (int p = 0; p < b.P; p++) m += b.z[p * b.C + c];
            m /= b.P;
            for (int p = 0; p < b.P; p++) v += (b.z[p * b.C + c] - m) * (b.z[p * b.C + c] - m);
            v /= b.P;
            for (int p = 0; p < b.P; p++) {
                double o = b.gamma[c] * (b.z[p * b.C + c] - m) / sqrt(v + NTA_BN_EPS) + b.beta[c];
                ref[p * b.C + c] = relu6 ? fmin(fmax(o, 0), 6) : o;
            }
            stat_ok &= fabs(b.rm[c] - 0.1 * m) < 1e-5 &&
                       fabs(b.rv[c] - (0.9 + 0.1 * v * b.P / (b.P - 1))) < 1e-4;
        }
        CHECK(max_rel(y, ref, n) < 1e-5, "batchnorm train forward relu6=%d", relu6);
        CHECK(stat_ok, "batchnorm running mean/var (unbiased) relu6=%d", relu6);

        be->bn_bwd(dz, dg, db, rr, b.z, b.mean, b.istd, b.gamma, b.beta, b.P, b.C, relu6);
        /* numeric checks re-run the forward, which moves the running averages:
         * harmless, they are not inputs of the train forward */
        double e = grad_check(bn_f, &b, b.z, n, dz, rr, y, n);
        CHECK(e < GRAD_TOL, "batchnorm dz relu6=%d: rel error %.2e", relu6, e);
        e = grad_check(bn_f, &b, b.gamma, b.C, dg, rr, y, n);
        CHECK(e < GRAD_TOL, "batchnorm dgamma relu6=%d: rel error %.2e", relu6, e);
        e = grad_check(bn_f, &b, b.beta, b.C, db, rr, y, n);
        CHECK(e < GRAD_TOL, "batchnorm dbeta relu6=%d: rel error %.2e", relu6, e);

        /* eval mode uses the running statistics */
        be->bn_fwd_eval(y, b.z, b.gamma, b.beta, b.rm, b.rv, b.P, b.C, relu6);
        for (int p = 0; p < b.P; p++)
            for (int c = 0; c < b.C; c++) {
                double o = b.gamma[c] * (b.z[p * b.C + c] - b.rm[c]) / sqrt(b.rv[c] + NTA_BN_EPS) + b.beta[c];
                ref[p * b.C + c] = relu6 ? fmin(fmax(o, 0), 6) : o;
            }
        CHECK(max_rel(y, ref, n) < 1e-5, "batchnorm eval forward relu6=%d", relu6);
        free(b.z), free(b.gamma), free(b.beta), free(b.mean), free(b.istd), free(b.rm), free(b.rv);
        free(y), free(rr), free(dz), free(dg), free(db), free(ref);
    }
}

/* ------------------------------------------------- pooling, linear, loss */

typedef struct { int N, HW, C; float *x; } GapCase;

static void gap_f(void *ctx, float *y)
{
    GapCase *g = ctx;
    be->gap_fwd(y, g->x, NULL, g->N, g->HW, g->C);
}

typedef struct { int M, N; float *x, *b; } BiasCase;

static void bias_f(void *ctx, float *y)
{
    BiasCase *c = ctx;
    memcpy(y, c->x, (size_t)c->M * c->N * 4);
    be->bias_fwd(y, c->b, c->M, c->N);
}

typedef struct { int N, L; float *z; int32_t *label; float *scratch; } XentCase;

/* y[0] = loss, so that L = loss * r[0] with r[0] = 1 */
static void xent_f(void *ctx, float *y)
{
    XentCase *c = ctx;
    y[0] = (float)(be->xent(c->scratch, NULL, c->z, c->label, c->N, c->L) / c->N);
}

typedef struct { int N, L; float *z, *t, weight; float *scratch; } LossCase;

static void l1_f(void *ctx, float *y)
{
    LossCase *c = ctx;
    y[0] = (float)(be->l1(c->scratch, c->z, c->t, c->N) / c->N);
}

static void entropy_f(void *ctx, float *y)
{
    LossCase *c = ctx;
    y[0] = (float)(c->weight * be->entropy(c->scratch, c->z, c->weight, c->N, c->L) / c->N);
}

/* MMD between the first 3 of N rows and the rest (z [N,L]) */
static void mmd_f(void *ctx, float *y)
{
    LossCase *c = ctx;
    y[0] = (float)be->mmd(c->scratch, c->z, c->N, 3, c->L, c->weight);
}

/* L1, entropy and MMD: values by hand, gradients numerically. */
static void test_losses(Rng *r)
{
    float z[6] = {0.5f, -1, 2, 0.25f, 3, -2}, t[6] = {0, 1, 1.5f, -1, 2, 0}, d[6], one = 1, y;
    LossCase lc = {6, 1, z, t, 1, d};
    float scratch[6];
    lc.scratch = scratch;
    double l = be->l1(d, z, t, 6);
    CHECK(fabs(l - 7.25) < 1e-6 && d[0] == 1.0f / 6 && d[1] == -1.0f / 6, "l1 value %.6f (want 7.25), dpred %g %g",
          l, d[0], d[1]);
    double e = grad_check(l1_f, &lc, z, 6, d, &one, &y, 1);
    CHECK(e < GRAD_TOL, "l1 gradient: rel error %.2e", e);

    LossCase ec = {3, 4, randv(r, 12, 2), NULL, 0.3f, nta_malloc(12 * 4)};
    float *dl = nta_malloc(12 * 4);
    double h = be->entropy(dl, ec.z, ec.weight, 3, 4), want = 0;
    for (int n = 0; n < 3; n++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += exp(ec.z[n * 4 + j]);
        for (int j = 0; j < 4; j++) want -= exp(ec.z[n * 4 + j]) / s * (ec.z[n * 4 + j] - log(s));
    }
    CHECK(fabs(h - want) < 1e-5 * want, "entropy value %.6f vs %.6f", h, want);
    e = grad_check(entropy_f, &ec, ec.z, 12, dl, &one, &y, 1);
    CHECK(e < GRAD_TOL, "entropy gradient: rel error %.2e", e);
    free(ec.z), free(ec.scratch), free(dl);

    /* MMD of rows {0,1,2} against {3,4}: by hand, then numerically */
    LossCase mc = {5, 4, randv(r, 20, 2), NULL, 0.7f, nta_malloc(20 * 4)};
    float *dm = nta_malloc(20 * 4);
    double m = be->mmd(dm, mc.z, 5, 3, 4, mc.weight), want_m = 0;
    for (int c = 0; c < 4; c++) {
        double a = (mc.z[c] + mc.z[4 + c] + mc.z[8 + c]) / 3, b = (mc.z[12 + c] + mc.z[16 + c]) / 2;
        want_m += mc.weight * (a - b) * (a - b);
    }
    CHECK(fabs(m - want_m) < 1e-6 * want_m, "mmd value %.6f vs %.6f", m, want_m);
    e = grad_check(mmd_f, &mc, mc.z, 20, dm, &one, &y, 1);
    CHECK(e < GRAD_TOL, "mmd gradient: rel error %.2e", e);
    free(mc.z), free(mc.scratch), free(dm);
}

/* ---------------------------------------------------- self-supervised ops */

typedef struct { int N, D; float *x, *norm, *e, *scratch, tau; } SslCase;

/* y = the unit rows of x */
static void l2norm_f(void *ctx, float *y)
{
    SslCase *c = ctx;
    be->l2norm_fwd(y, c->norm, c->x, c->N, c->D);
}

/* y[0] = the mean NT-Xent of the rows of e, taken as they are */
static void ntxent_e_f(void *ctx, float *y)
{
    SslCase *c = ctx;
    y[0] = (float)(be->ntxent(c->scratch, NULL, c->e, c->N, c->D, c->tau) / c->N);
}

/* y[0] = the mean NT-Xent of the unit rows of x (l2norm, then ntxent) */
static void ntxent_f(void *ctx, float *y)
{
    SslCase *c = ctx;
    be->l2norm_fwd(c->e, c->norm, c->x, c->N, c->D);
    y[0] = (float)(be->ntxent(c->scratch, NULL, c->e, c->N, c->D, c->tau) / c->N);
}

/* NT-Xent by its definition, in double: the mean over rows i of
 * -log(exp(s_i,pos) / sum_{j != i} exp s_ij), s_ij = e_i.e_j / tau. */
static double ntxent_ref(const float *e, int N, int D, double tau, int *right)
{
    double total = 0;
    *right = 0;
    for (int i = 0; i < N; i++) {
        int pos = (i + N / 2) % N, best = -1;
        double den = 0, num = 0, sbest = -INFINITY;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)e[i * D + d] * e[j * D + d];
            s /= tau;
            den += exp(s), num = j == pos ? exp(s) : num;
            if (s > sbest) sbest = s, best = j;
        }
        total -= log(num / den);
        *right += best == pos;
    }
    return total;
}

/* l2norm and NT-Xent: values by definition, gradients numerically (also
 * through both ops together, the loss the SSL pretraining minimises), and a
 * row of zeros (the clamped length). */
static void test_ssl_ops(Rng *r)
{
    int N = 6, D = 5;
    size_t n = (size_t)N * D;
    float one = 1, loss1;
    SslCase c = {N, D, randv(r, n, 1), nta_malloc(N * 4), nta_malloc(n * 4), nta_malloc(n * 4), 0.5f};
    float *y = nta_malloc(n * 4), *rr = randv(r, n, 1), *dx = nta_malloc(n * 4);
    be->l2norm_fwd(y, c.norm, c.x, N, D);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)c.x[i * D + d] * c.x[i * D + d];
        worst = fmax(worst, fabs(c.norm[i] - sqrt(ss)) / sqrt(ss));
        for (int d = 0; d < D; d++) worst = fmax(worst, fabs(y[i * D + d] - c.x[i * D + d] / sqrt(ss)));
    }
    CHECK(worst < 1e-6, "l2norm value: error %.2e", worst);
    be->l2norm_bwd(dx, rr, y, c.norm, N, D);
    double e = grad_check(l2norm_f, &c, c.x, n, dx, rr, y, n);
    CHECK(e < GRAD_TOL, "l2norm gradient: rel error %.2e", e);

    /* a zero row: y = 0, and the gradient dy / eps */
    float z[3] = {0, 0, 0}, yz[3], nz, gz[3] = {1e-13f, -2e-13f, 0}, dz[3];
    be->l2norm_fwd(yz, &nz, z, 1, 3);
    be->l2norm_bwd(dz, gz, yz, &nz, 1, 3);
    CHECK(nz == 0 && yz[0] == 0 && fabsf(dz[0] - 0.1f) < 1e-6f && fabsf(dz[1] + 0.2f) < 1e-6f,
          "l2norm of a zero row: norm %g, y %g, dx %g %g (want 0, 0, 0.1, -0.2)", nz, yz[0], dz[0], dz[1]);

    /* NT-Xent of unit rows against its definition */
    int right = -1, want_right;
    float *de = nta_malloc(n * 4);
    be->l2norm_fwd(c.e, c.norm, c.x, N, D);
    double loss = be->ntxent(de, &right, c.e, N, D, c.tau), want = ntxent_ref(c.e, N, D, c.tau, &want_right);
    CHECK(fabs(loss - want) < 1e-6 * want && right == want_right, "ntxent value %.8f vs %.8f, right %d vs %d", loss,
          want, right, want_right);
    e = grad_check(ntxent_e_f, &c, c.e, n, de, &one, &loss1, 1);
    CHECK(e < GRAD_TOL, "ntxent gradient: rel error %.2e", e);
    /* through l2norm, w.r.t. x: the loss the SSL pretraining minimises */
    be->l2norm_bwd(dx, de, c.e, c.norm, N, D);
    e = grad_check(ntxent_f, &c, c.x, n, dx, &one, &loss1, 1);
    CHECK(e < GRAD_TOL, "ntxent through l2norm: gradient rel error %.2e", e);

    /* a collapsed embedding (every row the same): the loss is log(N - 1),
     * chance; the gradient vanishes */
    for (size_t i = 0; i < n; i++) c.e[i] = i % D == 0 ? 1.0f : 0.0f;
    loss = be->ntxent(de, NULL, c.e, N, D, c.tau);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(de[i]));
    CHECK(fabs(loss / N - log(N - 1.0)) < 1e-9 && gmax < 1e-9, "ntxent of a collapsed embedding: %.9f (want log %d), "
          "gradient %.2e (want 0)", loss / N, N - 1, gmax);
    free(c.x), free(c.norm), free(c.e), free(c.scratch), free(y), free(rr), free(dx), free(de);
}

static void test_small_ops(void)
{
    Rng r;
    rng_seed(&r, 5);
    /* global average pool */
    GapCase g = {3, 10, 7, NULL};
    size_t nx = (size_t)g.N * g.HW * g.C, ny = (size_t)g.N * g.C;
    g.x = randv(&r, nx, 1);
    float *y = nta_malloc(nx * 4), *rr = randv(&r, nx, 1), *dx = nta_malloc(nx * 4);
    be->gap_bwd(dx, rr, g.N, g.HW, g.C);
    double e = grad_check(gap_f, &g, g.x, nx, dx, rr, y, ny);
    CHECK(e < GRAD_TOL, "global average pool gradient: rel error %.2e", e);

    /* bias */
    BiasCase bc = {5, 7, randv(&r, 35, 1), randv(&r, 7, 1)};
    float *db = nta_calloc(7, 4);
    be->bias_bwd(db, rr, bc.M, bc.N);
    e = grad_check(bias_f, &bc, bc.b, 7, db, rr, y, 35);
    CHECK(e < GRAD_TOL, "bias gradient: rel error %.2e", e);

    /* residual add */
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {.5f, .5f, .5f, .5f, -5};
    be->add(a, b, 5);
    CHECK(a[0] == 1.5f && a[4] == 0, "residual add");

    /* softmax cross-entropy: value against log-sum-exp, gradient numerically */
    int32_t label[4] = {0, 3, 2, 3};
    XentCase xc = {4, 5, randv(&r, 20, 3), label, nta_malloc(20 * 4)};
    float *dl = nta_malloc(20 * 4), one = 1, loss1;
    int correct = -1;
    double loss = be->xent(dl, &correct, xc.z, label, 4, 5), want = 0;
    int right = 0;
    for (int n = 0; n < 4; n++) {
        double s = 0;
        int best = 0;
        for (int j = 0; j < 5; j++) s += exp(xc.z[n * 5 + j]), best = xc.z[n * 5 + j] > xc.z[n * 5 + best] ? j : best;
        want += log(s) - xc.z[n * 5 + label[n]];
        right += best == label[n];
    }
    CHECK(fabs(loss - want) < 1e-5 * fabs(want) && correct == right, "cross-entropy value %.6f vs %.6f, correct %d vs %d",
          loss, want, correct, right);
    e = grad_check(xent_f, &xc, xc.z, 20, dl, &one, &loss1, 1);
    CHECK(e < GRAD_TOL, "cross-entropy gradient: rel error %.2e", e);
    test_losses(&r);
    test_ssl_ops(&r);

    /* SGD with momentum, two steps by hand: a weight (decay 0.01), a value
     * without decay, one not trained (left alone) */
    float w[3] = {1, -2, 5}, m[3] = {0, 0, 0}, gr[3] = {0.5f, 0.25f, 1}, decay[3] = {1, 0, -1};
    float lr = 0.1f;    /* CPU backend memory is host memory */
    be->sgd(w, m, gr, decay, 3, &lr, 0.9f, 0.01f);
    be->sgd(w, m, gr, decay, 3, &lr, 0.9f, 0.01f);
    double m1 = 0.5 + 0.01, w1 = 1 - 0.1 * m1, m2 = 0.9 * m1 + 0.5 + 0.01 * w1, w2 = w1 - 0.1 * m2;
    double n2 = 0.9 * 0.25 + 0.25, v2 = -2 - 0.1 * 0.25 - 0.1 * n2;
    CHECK(fabs(w[0] - w2) < 1e-6 && fabs(m[0] - m2) < 1e-6, "sgd step: w %.7f want %.7f", w[0], w2);
    CHECK(fabs(w[1] - v2) < 1e-6 && fabs(m[1] - n2) < 1e-6, "sgd step without decay: w %.7f want %.7f", w[1], v2);
    CHECK(w[2] == 5 && m[2] == 0, "sgd leaves an untrained value alone: w %g m %g", w[2], m[2]);

    /* cosine schedule with warm-up */
    CHECK(fabsf(lr_cosine(1, 0, 10, 110) - 0.1f) < 1e-6 && fabsf(lr_cosine(1, 9, 10, 110) - 1) < 1e-6 &&
          fabsf(lr_cosine(1, 60, 10, 110) - 0.5f) < 1e-6 && lr_cosine(1, 110, 10, 110) < 1e-6,
          "cosine learning rate with warm-up");
    free(g.x), free(y), free(rr), free(dx), free(bc.x), free(bc.b), free(db), free(xc.z), free(xc.scratch), free(dl);
}

void test_cpu(void)
{
    test_gemm();
    test_gemm_bn_eval();
    test_conv();
    test_depthwise();
    test_dw_bn_eval();
    test_batchnorm();
    test_small_ops();
}
