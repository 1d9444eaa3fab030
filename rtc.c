/* rtc.c: kernels specialised for the layers of a fixed architecture, and
 * NVRTC opened at run time (see rtc.h). In reading order:
 *   the layers     what a layer computes, batchnorm folding and its rounding
 *   the source     the CUDA text of each layer kind, every shape a constant
 *   networks       a fixed network (Net) as a list of folded layers, its source
 *   on the CPU     the same layers as plain loops (exported models' path)
 *   exported       the file nta export writes and predict reads
 *   NVRTC          dlopen'ed; compile to a cubin
 *   the cache      compiled kernels on disk
 *   running them   load through a device table (rtc_cuda.cu), launch, and the
 *                  commands' policy (NTA_RTC: on, off, strict)
 * Each kernel sums its terms in the generic kernels' order; with batchnorm
 * folded the results differ only by rounding, bounded at rtc_fold.
 */
#define _GNU_SOURCE
#include "rtc.h"
#include "nta.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Little-endian bytes of v, and back */
static void le(unsigned char *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> 8 * i);
}

static uint64_t from_le(const unsigned char *in, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | in[i];
    return v;
}

/* ------------------------------------------------------------ the layers */

size_t rtc_layer_out(const RtcLayer *L)
{
    if (L->kind == RTC_POOL_FC) return (size_t)L->N * L->Co;
    int Ho = conv_out(L->H, L->K, L->s), Wo = conv_out(L->W, L->K, L->s);
    return (size_t)L->N * Ho * Wo * L->Co;
}

size_t rtc_layer_weights(const RtcLayer *L)
{
    switch (L->kind) {
    case RTC_STEM: return (size_t)L->K * L->K * L->Ci * L->Co;
    case RTC_DW: return (size_t)L->K * L->K * L->Co;
    default: return (size_t)L->Ci * L->Co;
    }
}

int rtc_layer_terms(const RtcLayer *L)
{
    switch (L->kind) {
    case RTC_STEM: return L->K * L->K * L->Ci;
    case RTC_DW: return L->K * L->K;
    case RTC_PW: return L->Ci;
    default: return L->H * L->W + L->Ci;
    }
}

/* Folding and its rounding. The generic kernels compute, per output channel
 * with scale s = fl(gamma / sqrtf(var + eps)),
 *     y  = fl(fl(fl(z - mean) * s) + beta),   z = fl(sum of n products x w);
 * the folded kernels, with the same s (computed here exactly as there),
 *     y' = fl(z' + b'),  z' = fl(sum of x w'),  w' = fl(w s),  b' = fl(beta - fl(mean s)).
 * Against the exact Y = (sum x w - mean) s + beta: a sum of n products
 * rounded in any order (with or without FMA) is within gamma_n sum|x w|,
 * gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability of
 * Numerical Algorithms, 3.1); each further operation adds one rounding. So
 * both |y - Y| and |y' - Y| are at most gamma_{n+3} M, with
 *     M = |s| sum |x w| + |mean s| + |beta|   (bmag holds the last two),
 * hence |y' - y| <= 2 gamma_{n+3} M, and with a residual add (one more
 * rounding each, of |y| + |r|) 2 gamma_{n+4} (M + |r|). ReLU6 does not
 * increase a difference. For n = 384 terms that is 4.6e-5 M: folding is not
 * bitwise, and the tests compare with this bound element by element, not
 * with a guessed tolerance. (s itself is not exact, but it is the same s in
 * both, so its error is no difference between them.) */
void rtc_fold(const RtcLayer *L, float *wf, float *bf, float *bmag, const float *w, int ld1, int ld2,
              const float *gamma, const float *beta, const float *mean, const float *var)
{
    int K = L->K, Ci = L->Ci, Co = L->Co;
    for (int c = 0; c < Co; c++) {
        float s = gamma ? gamma[c] / sqrtf(var[c] + NTA_BN_EPS) : 1.0f;
        bf[c] = gamma ? beta[c] - mean[c] * s : beta[c];
        bmag[c] = gamma ? fabsf(beta[c]) + fabsf(mean[c] * s) : fabsf(beta[c]);
        if (L->kind == RTC_STEM)
            for (size_t t = 0; t < (size_t)K * K * Ci; t++) wf[t * Co + c] = w[t * Co + c] * s;
        else if (L->kind == RTC_DW)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++)
                    wf[(ky * K + kx) * Co + c] = w[(size_t)ky * ld1 + (size_t)kx * ld2 + c] * s;
        else
            for (int k = 0; k < Ci; k++) wf[(size_t)k * Co + c] = w[(size_t)k * ld1 + c] * s;
    }
}

/* ------------------------------------------------------------ the source */

/* What every generated source starts with (once per translation unit): the
 * emulator for a host compiler, unroll pragmas for each compiler, ReLU6 as
 * nta.h's relu6f. */
static const char *prelude =
    "#if !defined(__CUDACC_RTC__) && !defined(__CUDACC__)\n"
    "#include \"simt.h\"\n"
    "#endif\n"
    "#if defined(__CUDACC_RTC__) || defined(__CUDACC__)\n"
    "#define NTA_RTC_UNROLL _Pragma(\"unroll\")\n"
    "#define NTA_RTC_UNROLL4 _Pragma(\"unroll 4\")\n"
    "#else\n"
    "#define NTA_RTC_UNROLL _Pragma(\"GCC unroll 8\")\n"
    "#define NTA_RTC_UNROLL4 _Pragma(\"GCC unroll 4\")\n"
    "#endif\n"
    "static __device__ __forceinline__ float nta_rtc_relu6(float v)\n"
    "{\n"
    "    return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;\n"
    "}\n";

/* Every kernel's signature; printf argument: the name */
static const char *head =
    "extern \"C\" __global__ void %s(float *y, const float *__restrict__ x,\n"
    "        const float *__restrict__ w, const float *__restrict__ b, const float *__restrict__ r)\n"
    "{\n";

/* A grid-stride loop over `total` items; printf argument: the count */
static const char *loop =
    "    const size_t total = %zuu;\n"
    "    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;\n"
    "         i += (size_t)gridDim.x * blockDim.x) {\n";

/* The full conv, one output element per item, summed as conv_fwd_kernel
 * (conv.cu): taps in order, channels in order. Each body leaves `v`, the
 * output before the epilogue, and `o`, its index. */
static const char *stem_body =
    "        int co = (int)(i % CO);\n"
    "        size_t pix = i / CO;\n"
    "        int ox = (int)(pix % WO), oy = (int)(pix / WO % HO), n = (int)(pix / WO / HO);\n"
    "        float acc = 0.0f;\n"
    "        NTA_RTC_UNROLL\n"
    "        for (int ky = 0; ky < K; ky++) {\n"
    "            int iy = oy * S - PAD + ky;\n"
    "            if (iy < 0 || iy >= H) continue;\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int kx = 0; kx < K; kx++) {\n"
    "                int ix = ox * S - PAD + kx;\n"
    "                if (ix < 0 || ix >= W) continue;\n"
    "                const float *xi = x + (((size_t)n * H + iy) * W + ix) * CI;\n"
    "                const float *wk = w + (size_t)(ky * K + kx) * CI * CO + co;\n"
    "                NTA_RTC_UNROLL\n"
    "                for (int ci = 0; ci < CI; ci++) acc += xi[ci] * wk[(size_t)ci * CO];\n"
    "            }\n"
    "        }\n"
    "        size_t o = i;\n"
    "        float v = acc + b[co];\n";

/* The depthwise conv, one output element per item, summed as dw_sum (conv.cu) */
static const char *dw_body =
    "        int c = (int)(i % CO);\n"
    "        size_t pix = i / CO;\n"
    "        int ox = (int)(pix % WO), oy = (int)(pix / WO % HO), n = (int)(pix / WO / HO);\n"
    "        float acc = 0.0f;\n"
    "        NTA_RTC_UNROLL\n"
    "        for (int ky = 0; ky < K; ky++) {\n"
    "            int iy = oy * S - PAD + ky;\n"
    "            if (iy < 0 || iy >= H) continue;\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int kx = 0; kx < K; kx++) {\n"
    "                int ix = ox * S - PAD + kx;\n"
    "                if (ix < 0 || ix >= W) continue;\n"
    "                acc += x[(((size_t)n * H + iy) * W + ix) * CO + c] * w[(ky * K + kx) * CO + c];\n"
    "            }\n"
    "        }\n"
    "        size_t o = i;\n"
    "        float v = acc + b[c];\n";

/* The pointwise conv: item i is a register tile of RM rows x RN columns of
 * y [P,CO] (rows m0.., columns n0..; neighbouring threads take neighbouring
 * columns, so they share the rows of x they read). Sums run over k in order,
 * as the generic gemm's. Closed by pw_tail. */
static const char *pw_body =
    "        int n0 = (int)(i % CG) * RN, m0 = (int)(i / CG) * RM;\n"
    "        float acc[RM][RN];\n"
    "        NTA_RTC_UNROLL\n"
    "        for (int a = 0; a < RM; a++)\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int q = 0; q < RN; q++) acc[a][q] = 0.0f;\n"
    "        const float *xr = x + (size_t)m0 * CI;\n"
    "        NTA_RTC_UNROLL4\n"
    "        for (int k = 0; k < CI; k++) {\n"
    "            float xa[RM], wb[RN];\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int a = 0; a < RM; a++) xa[a] = xr[(size_t)a * CI + k];\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int q = 0; q < RN; q++) wb[q] = w[(size_t)k * CO + n0 + q];\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int a = 0; a < RM; a++)\n"
    "                NTA_RTC_UNROLL\n"
    "                for (int q = 0; q < RN; q++) acc[a][q] += xa[a] * wb[q];\n"
    "        }\n"
    "        NTA_RTC_UNROLL\n"
    "        for (int a = 0; a < RM; a++)\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int q = 0; q < RN; q++) {\n"
    "                size_t o = (size_t)(m0 + a) * CO + n0 + q;\n"
    "                float v = acc[a][q] + b[n0 + q];\n";

/* Pooling then the linear layer, one output (n, l) per item: the pool sums
 * rows in order and divides (gap_fwd_kernel), the product sums channels in
 * order (gemm), then the bias (bias_fwd_kernel): the generic ops' terms in
 * their order. */
static const char *pool_fc_body =
    "        int l = (int)(i % CO), n = (int)(i / CO);\n"
    "        const float *xn = x + (size_t)n * HW * CI;\n"
    "        float acc = 0.0f;\n"
    "        for (int c = 0; c < CI; c++) {\n"
    "            float s = 0.0f;\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int p = 0; p < HW; p++) s += xn[(size_t)p * CI + c];\n"
    "            float pooled = s / HW;\n"
    "            acc += pooled * w[(size_t)c * CO + l];\n"
    "        }\n"
    "        size_t o = i;\n"
    "        float v = acc + b[l];\n";

/* The host compiler's launcher on the emulator; printf arguments: the name
 * twice, grid, block */
static const char *launcher =
    "#if !defined(__CUDACC_RTC__) && !defined(__CUDACC__)\n"
    "extern \"C\" void %s_launch(float *y, const float *x, const float *w, const float *b, const float *r)\n"
    "{\n"
    "    SIMT_LAUNCH(%s, %uu, %uu, 0, (cudaStream_t)0, y, x, w, b, r);\n"
    "}\n"
    "#endif\n";

/* Append printf output at buf[*at..len); -1 once it no longer fits. */
static int put(char *buf, size_t len, size_t *at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    if (*at >= len) return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *at) return -1;
    *at += (size_t)n;
    return 0;
}

/* The register tile of a pointwise layer y [P,Co]: RN columns, the most of
 * 4, 2, 1 that divides Co (a thread's weights are RN neighbours of a row of
 * w); RM rows, the most of 4, 2, 1 that divides P and still leaves at least
 * 8192 items (threads enough to fill a large GPU: 132 SMs of 64 threads). */
static void pw_tile(const RtcLayer *L, int *rm, int *rn)
{
    long P = (long)L->N * L->H * L->W;
    *rn = L->Co % 4 == 0 ? 4 : L->Co % 2 == 0 ? 2 : 1;
    *rm = 4;
    while (*rm > 1 && (P % *rm || P / *rm * (L->Co / *rn) < 8192)) *rm /= 2;
}

static const char *kind_name[] = {"stem conv", "pointwise conv", "depthwise conv", "pool and linear"};

int rtc_layer_source(const RtcLayer *L, const char *name, int with_prelude, char *buf, size_t len, size_t *at,
                     unsigned *grid, unsigned *block)
{
    int Ho = conv_out(L->H, L->K, L->s), Wo = conv_out(L->W, L->K, L->s), rm = 1, rn = 1;
    if (L->kind == RTC_PW) pw_tile(L, &rm, &rn);
    size_t items = L->kind == RTC_PW ? (size_t)L->N * L->H * L->W / rm * (L->Co / rn) : rtc_layer_out(L);
    size_t blocks = (items + 255) / 256;
    *block = items < 256 ? (unsigned)((items + 31) / 32 * 32) : 256;
    *grid = (unsigned)(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks);
    const char *epi = L->relu6 ? "nta_rtc_relu6(v)" : "v";
    if (put(buf, len, at,
            "/* nta rtc: %s: %s %dx%d stride %d%s%s%s; batch %d, %dx%dx%d -> %dx%dx%d; "
            "%u blocks of %u threads",
            name, kind_name[L->kind], L->K, L->K, L->s, L->kind == RTC_POOL_FC ? "" : ", batchnorm folded",
            L->relu6 ? ", ReLU6" : "", L->residual ? ", residual add" : "", L->N, L->H, L->W, L->Ci,
            L->kind == RTC_POOL_FC ? 1 : Ho, L->kind == RTC_POOL_FC ? 1 : Wo, L->Co, *grid, *block) ||
        (L->kind == RTC_PW && put(buf, len, at, ", tiles of %dx%d", rm, rn)) || put(buf, len, at, " */\n") ||
        (with_prelude && put(buf, len, at, "%s", prelude)) || put(buf, len, at, head, name))
        return -1;
    int bad = 0;
    switch (L->kind) {
    case RTC_STEM:
    case RTC_DW:
        bad = put(buf, len, at,
                  "    enum { H = %d, W = %d, CI = %d, CO = %d, K = %d, S = %d, PAD = %d, HO = %d, WO = %d };\n",
                  L->H, L->W, L->Ci, L->Co, L->K, L->s, L->K / 2, Ho, Wo) ||
              put(buf, len, at, loop, items) || put(buf, len, at, "%s", L->kind == RTC_STEM ? stem_body : dw_body);
        break;
    case RTC_PW:
        bad = put(buf, len, at, "    enum { CI = %d, CO = %d, RM = %d, RN = %d, CG = CO / RN };\n", L->Ci, L->Co,
                  rm, rn) ||
              put(buf, len, at, loop, items) || put(buf, len, at, "%s", pw_body);
        break;
    default:
        bad = put(buf, len, at, "    enum { HW = %d, CI = %d, CO = %d };\n", L->H * L->W, L->Ci, L->Co) ||
              put(buf, len, at, loop, items) || put(buf, len, at, "%s", pool_fc_body);
    }
    const char *ind = L->kind == RTC_PW ? "        " : "";   /* the tile loops indent the epilogue */
    if (bad || (L->residual && put(buf, len, at, "%s        v = %s + r[o];\n", ind, epi)) ||
        (!L->residual && put(buf, len, at, "%s        v = %s;\n", ind, epi)) ||
        put(buf, len, at, "%s        y[o] = v;\n", ind) || (L->kind == RTC_PW && put(buf, len, at, "            }\n")) ||
        put(buf, len, at, "    }\n}\n") || put(buf, len, at, launcher, name, name, *grid, *block))
        return -1;
    return 0;
}

/* ------------------------------------------------------ specialised networks */

/* Append layer L (weights folded from w with pitches ld1, ld2 and batchnorm
 * bn, or for the linear layer bias) reading layer n-1's output */
static void net_add(RtcNet *r, const float *host, const Net *net, RtcLayer L, const float *w, int ld1, int ld2,
                    const BnParams *bn, const float *bias)
{
    int i = r->n++;
    r->L[i] = L;
    r->res[i] = -2;
    r->woff[i] = r->nparam, r->nparam += rtc_layer_weights(&L);
    r->boff[i] = r->nparam, r->nparam += (size_t)L.Co;
    r->aoff[i] = r->nact, r->nact += rtc_layer_out(&L);
    r->param = realloc(r->param, r->nparam * sizeof(float));
    r->bmag = realloc(r->bmag, r->nparam * sizeof(float));
    if (!r->param || !r->bmag) nta_die("out of memory (specialised network)");
#define HOST(q) ((q) ? host + ((q) - net->p) : NULL)   /* a parameter's host copy */
    rtc_fold(&L, r->param + r->woff[i], r->param + r->boff[i], r->bmag + r->boff[i], HOST(w), ld1, ld2,
             bn ? HOST(bn->gamma) : NULL, bn ? HOST(bn->beta) : HOST(bias), bn ? HOST(bn->run_mean) : NULL,
             bn ? HOST(bn->run_var) : NULL);
#undef HOST
}

static void net_source(RtcNet *r);

RtcNet *rtc_net_build(const Net *net, int B, char *err, size_t len)
{
    const NetDesc *d = &net->d;
    if (d->mlp) {
        snprintf(err, len, "a network with a projection head (self-supervised pretraining) is not specialised");
        return NULL;
    }
    float *host = net_weights_get(net, NULL);
    RtcNet *r = nta_calloc(1, sizeof *r);
    r->B = B;
    r->nin = (size_t)B * d->in_h * d->in_w * d->in_c;
    int h = d->in_h, w = d->in_w, c = d->stem_c;
    net_add(r, host, net, (RtcLayer){RTC_STEM, B, h, w, d->in_c, c, d->stem_k, 1, 1, 0}, net->w_stem, 0, 0,
            &net->bn_stem, NULL);
    r->part[0] = 0;
    for (int i = 0; i < d->nblocks; i++) {
        const Block *k = &net->blk[i];
        if (!net->on[i]) continue;
        if (r->n + 4 > RTC_MAX_LAYERS) {
            snprintf(err, len, "more than %d layers to specialise", RTC_MAX_LAYERS);
            rtc_net_free(r), free(host);
            return NULL;
        }
        int K = net->arch.k[i], E = net->arch.e[i] * k->ci, off = (k->kmax - K) / 2, in = r->n - 1;
        const float *wdw = k->w_dw + (size_t)off * k->kmax * k->emax + (size_t)off * k->emax;
        net_add(r, host, net, (RtcLayer){RTC_PW, B, h, w, k->ci, E, 1, 1, 1, 0}, k->w_exp, k->emax, 0,
                &k->bn_exp, NULL);
        net_add(r, host, net, (RtcLayer){RTC_DW, B, h, w, E, E, K, k->s, 1, 0}, wdw, k->kmax * k->emax, k->emax,
                &k->bn_dw, NULL);
        h = conv_out(h, K, k->s), w = conv_out(w, K, k->s);
        int res = k->s == 1 && k->ci == k->co;
        net_add(r, host, net, (RtcLayer){RTC_PW, B, h, w, E, k->co, 1, 1, 0, res}, k->w_proj, k->co, 0,
                &k->bn_proj, NULL);
        if (res) r->res[r->n - 1] = in;
        r->part[r->n - 3] = r->part[r->n - 2] = r->part[r->n - 1] = 1 + i;
        c = k->co;
    }
    net_add(r, host, net, (RtcLayer){RTC_PW, B, h, w, c, d->head_c, 1, 1, 1, 0}, net->w_head, d->head_c, 0,
            &net->bn_head, NULL);
    net_add(r, host, net, (RtcLayer){RTC_POOL_FC, B, h, w, d->head_c, d->classes, 1, 1, 0, 0}, net->w_fc,
            d->classes, 0, NULL, net->b_fc);
    r->part[r->n - 2] = r->part[r->n - 1] = 1 + d->nblocks;
    free(host);
    r->norm_set = net_norm(net, r->norm_mean, r->norm_std);
    net_source(r);
    return r;
}

/* The network's CUDA source: the prelude, then every layer's kernel */
static void net_source(RtcNet *r)
{
    size_t cap = 4096 + (size_t)r->n * 4096, at = 0;
    r->src = nta_malloc(cap);
    for (int i = 0; i < r->n; i++) {
        char name[32];
        snprintf(name, sizeof name, "nta_l%d", i);
        if (rtc_layer_source(&r->L[i], name, i == 0, r->src, cap, &at, &r->grid[i], &r->block[i]))
            nta_die("rtc: layer %d's source is longer than %zu bytes (a bug)", i, cap);
    }
}

/* ---------------------------------------------------------- on the CPU */

void rtc_layer_cpu(const RtcLayer *L, float *y, const float *x, const float *w, const float *b, const float *r)
{
    int H = L->H, W = L->W, Ci = L->Ci, Co = L->Co, K = L->K, S = L->s, pad = K / 2;
    int Ho = conv_out(H, K, S), Wo = conv_out(W, K, S), HW = H * W;
    long rows = L->kind == RTC_POOL_FC ? L->N : (long)L->N * Ho * Wo;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < rows; p++) {           /* an output pixel (an image for RTC_POOL_FC) */
        int ox = (int)(p % Wo), oy = (int)(p / Wo % Ho), n = (int)(p / Wo / Ho);
        for (int c = 0; c < Co; c++) {
            float acc = 0.0f;
            if (L->kind == RTC_PW) {
                for (int k = 0; k < Ci; k++) acc += x[(size_t)p * Ci + k] * w[(size_t)k * Co + c];
            } else if (L->kind == RTC_POOL_FC) {
                for (int k = 0; k < Ci; k++) {
                    float s = 0.0f;
                    for (int q = 0; q < HW; q++) s += x[((size_t)p * HW + q) * Ci + k];
                    float pooled = s / HW;
                    acc += pooled * w[(size_t)k * Co + c];
                }
            } else {
                for (int ky = 0; ky < K; ky++) {
                    int iy = oy * S - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int ix = ox * S - pad + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *xi = x + (((size_t)n * H + iy) * W + ix) * Ci;
                        if (L->kind == RTC_DW) acc += xi[c] * w[(ky * K + kx) * Co + c];
                        else
                            for (int ci = 0; ci < Ci; ci++) acc += xi[ci] * w[((size_t)(ky * K + kx) * Ci + ci) * Co + c];
                    }
                }
            }
            size_t o = (size_t)p * Co + c;
            float v = acc + b[c];
            if (L->relu6) v = relu6f(v);
            if (L->residual) v = v + r[o];
            y[o] = v;
        }
    }
}

const float *rtc_net_forward_cpu(const RtcNet *r, float *act, const float *x)
{
    for (int i = 0; i < r->n; i++) {
        const float *res = r->res[i] >= 0 ? act + r->aoff[r->res[i]] : r->res[i] == -1 ? x : NULL;
        rtc_layer_cpu(&r->L[i], act + r->aoff[i], i ? act + r->aoff[i - 1] : x, r->param + r->woff[i],
                      r->param + r->boff[i], res);
    }
    return act + r->aoff[r->n - 1];
}

/* ------------------------------------------------------ exported models */

static const char export_magic[] = "nta inference 1\n";
static const char *kind_word[] = {"stem", "pw", "dw", "pool_fc"};

int rtc_export_write(const RtcNet *r, const char *path, char *err, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, len, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    /* the text head, then the floats, each through the running CRC */
    size_t cap = 512 + (size_t)r->n * 96, at = 0;
    char *head = nta_malloc(cap);
    put(head, cap, &at, "%sinput %dx%dx%d\n", export_magic, r->L[0].H, r->L[0].W, r->L[0].Ci);
    if (r->norm_set)
        put(head, cap, &at, "norm %.9g,%.9g,%.9g,%.9g %.9g,%.9g,%.9g,%.9g\n", r->norm_mean[0], r->norm_mean[1],
            r->norm_mean[2], r->norm_mean[3], r->norm_std[0], r->norm_std[1], r->norm_std[2], r->norm_std[3]);
    else
        put(head, cap, &at, "norm none\n");
    put(head, cap, &at, "layers %d\n", r->n);
    for (int i = 0; i < r->n; i++) {
        const RtcLayer *l = &r->L[i];
        put(head, cap, &at, "%s %d %d %d %d %d %d %d %d %d\n", kind_word[l->kind], l->Ci, l->Co, l->K, l->s, l->H,
            l->W, l->relu6, l->residual, r->res[i]);
    }
    put(head, cap, &at, "params %zu\n", r->nparam);
    uLong crc = crc32(0, (const Bytef *)head, (uInt)at);
    int bad = fwrite(head, 1, at, f) != at;
    free(head);
    unsigned char buf[4096];
    for (size_t i = 0; i < r->nparam && !bad; i += sizeof buf / 4) {
        size_t n = r->nparam - i < sizeof buf / 4 ? r->nparam - i : sizeof buf / 4;
        for (size_t k = 0; k < n; k++) {
            uint32_t u;
            memcpy(&u, &r->param[i + k], 4);
            le(buf + 4 * k, u, 4);
        }
        crc = crc32(crc, buf, (uInt)(4 * n));
        bad |= fwrite(buf, 4, n, f) != n;
    }
    le(buf, crc, 4);
    bad |= fwrite(buf, 1, 4, f) != 4;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        snprintf(err, len, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rtc_export_is(const char *path)
{
    char b[sizeof export_magic] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof export_magic - 1, f);
    fclose(f);
    return n == sizeof export_magic - 1 && !memcmp(b, export_magic, n);
}

/* Whether layer l (index i of r) takes what the layers before give it:
 * its input is the previous output (or the network's input), a residual
 * names an earlier tensor of its own output's shape, shapes are sane. */
static int layer_fits(const RtcNet *r, int i, int h, int w, int c)
{
    const RtcLayer *l = &r->L[i];
    int ok = l->kind >= RTC_STEM && l->kind <= RTC_POOL_FC && l->H == h && l->W == w && l->Ci == c &&
             l->Co >= 1 && l->Co <= 65536 && l->K >= 1 && l->K <= 15 && l->K % 2 == 1 && l->s >= 1 && l->s <= 4 &&
             (l->relu6 == 0 || l->relu6 == 1) && (l->residual == 0 || l->residual == 1) &&
             (l->kind == RTC_STEM || l->kind == RTC_DW || (l->K == 1 && l->s == 1)) &&
             (l->kind != RTC_DW || l->Ci == l->Co) && (l->kind == RTC_POOL_FC) == (i == r->n - 1);
    if (!ok) return 0;
    if (!l->residual) return r->res[i] == -2;
    if (l->kind != RTC_PW || r->res[i] < -1 || r->res[i] >= i - 1) return 0;
    if (r->res[i] == -1) return l->H == r->L[0].H && l->W == r->L[0].W && l->Co == r->L[0].Ci;
    const RtcLayer *s = &r->L[r->res[i]];
    return rtc_layer_out(s) == rtc_layer_out(l);
}

RtcNet *rtc_export_read(const char *path, int B, char *err, size_t len)
{
    char why[256];
    size_t n;
    uint8_t *b = nta_read_file(path, (size_t)1 << 31, &n, why, sizeof why);
    if (!b) {
        snprintf(err, len, "%s", why);
        return NULL;
    }
    RtcNet *r = nta_calloc(1, sizeof *r);
    r->B = B;
    const char *t = (const char *)b, *bad = NULL;
    int h, w, c, used, layers = 0;
    size_t count = 0;
    float m[4], s[4];
    if (n < sizeof export_magic + 4 || memcmp(b, export_magic, sizeof export_magic - 1)) bad = "not an exported model (no 'nta inference 1' first line)";
    else if (t += sizeof export_magic - 1, sscanf(t, "input %dx%dx%d\n%n", &h, &w, &c, &used) != 3 || h < 1 ||
             w < 1 || c < 1 || c > 4 || h > 4096 || w > 4096)
        bad = "a bad 'input' line";
    else if (t += used, !strncmp(t, "norm none\n", 10)) t += 10;
    else if (sscanf(t, "norm %g,%g,%g,%g %g,%g,%g,%g\n%n", &m[0], &m[1], &m[2], &m[3], &s[0], &s[1], &s[2], &s[3],
                    &used) == 8)
        t += used, r->norm_set = 1, memcpy(r->norm_mean, m, sizeof m), memcpy(r->norm_std, s, sizeof s);
    else bad = "a bad 'norm' line";
    if (!bad && (sscanf(t, "layers %d\n%n", &layers, &used) != 1 || layers < 2 || layers > RTC_MAX_LAYERS))
        bad = "a bad 'layers' line";
    if (!bad) t += used;
    for (int i = 0; !bad && i < layers; i++) {
        RtcLayer *l = &r->L[i];
        char kind[16];
        if (sscanf(t, "%15s %d %d %d %d %d %d %d %d %d\n%n", kind, &l->Ci, &l->Co, &l->K, &l->s, &l->H, &l->W,
                   &l->relu6, &l->residual, &r->res[i], &used) != 10) {
            bad = "a layer line that cannot be read";
            break;
        }
        t += used;
        l->kind = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(kind, kind_word[k])) l->kind = k;
        l->N = B;
        r->n = i + 1;
    }
    /* the layers must fit together, the first taking the input */
    int ih = h, iw = w, ic = c;
    for (int i = 0; !bad && i < layers; i++) {
        r->n = layers;
        if (!layer_fits(r, i, ih, iw, ic) || (i == 0 && r->L[0].kind != RTC_STEM)) {
            snprintf(why, sizeof why, "layer %d does not fit the layers before it", i);
            bad = why;
            break;
        }
        ih = conv_out(ih, r->L[i].K, r->L[i].s), iw = conv_out(iw, r->L[i].K, r->L[i].s), ic = r->L[i].Co;
        r->woff[i] = r->nparam, r->nparam += rtc_layer_weights(&r->L[i]);
        r->boff[i] = r->nparam, r->nparam += (size_t)r->L[i].Co;
        r->aoff[i] = r->nact, r->nact += rtc_layer_out(&r->L[i]);
    }
    if (!bad && (sscanf(t, "params %zu\n%n", &count, &used) != 1 || count != r->nparam))
        bad = "a 'params' count that is not the layers' weights";
    size_t headlen = bad ? 0 : (size_t)(t + used - (const char *)b);
    if (!bad && n != headlen + 4 * count + 4) bad = "a size that is not its header's (truncated?)";
    if (!bad && crc32(crc32(0, NULL, 0), b, (uInt)(n - 4)) != from_le(b + n - 4, 4)) bad = "a CRC that does not match (damaged)";
    if (bad) {
        snprintf(err, len, "%s: %s", path, bad);
        free(b);
        rtc_net_free(r);
        return NULL;
    }
    r->param = nta_malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        uint32_t u = (uint32_t)from_le(b + headlen + 4 * i, 4);
        memcpy(&r->param[i], &u, 4);
    }
    r->nin = (size_t)B * h * w * c;
    free(b);
    net_source(r);
    return r;
}

void rtc_net_free(RtcNet *r)
{
    if (!r) return;
    free(r->param), free(r->bmag), free(r->src);
    free(r);
}

/* ------------------------------------------------------------------ NVRTC */

/* The part of NVRTC's C API nta calls (nvrtc.h is not needed to build) */
typedef int nvrtcResult;               /* 0: NVRTC_SUCCESS */
typedef struct _nvrtcProgram *nvrtcProgram;
static struct {
    int tried, version;
    char why[256];
    nvrtcResult (*version_of)(int *, int *);
    nvrtcResult (*num_archs)(int *);
    nvrtcResult (*archs)(int *);
    nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                          const char *const *);
    nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*cubin_size)(nvrtcProgram, size_t *);
    nvrtcResult (*cubin)(nvrtcProgram, char *);
    nvrtcResult (*ptx_size)(nvrtcProgram, size_t *);
    nvrtcResult (*ptx)(nvrtcProgram, char *);
    nvrtcResult (*log_size)(nvrtcProgram, size_t *);
    nvrtcResult (*log)(nvrtcProgram, char *);
    nvrtcResult (*destroy)(nvrtcProgram *);
    const char *(*error)(nvrtcResult);
} nv;

/* dlsym into *slot; 0, or -1 with the missing symbol in nv.why */
static int sym(void *lib, void *slot, const char *name)
{
    void *f = dlsym(lib, name);
    if (!f) snprintf(nv.why, sizeof nv.why, "NVRTC lacks %s", name);
    memcpy(slot, &f, sizeof f);
    return f ? 0 : -1;
}

static void nvrtc_open(void)
{
    nv.tried = 1;
    const char *given = getenv("NTA_NVRTC"), *names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2",
                                                   "libnvrtc.so"};
    void *lib = NULL;
    if (given && *given) lib = dlopen(given, RTLD_NOW | RTLD_LOCAL);
    for (int i = 0; !lib && !(given && *given) && i < 4; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nv.why, sizeof nv.why, "no NVRTC (%s): install the CUDA toolkit's libnvrtc or set NTA_NVRTC",
                 given && *given ? given : "libnvrtc.so.13, .12, .11.2");
        return;
    }
    if (sym(lib, &nv.version_of, "nvrtcVersion") || sym(lib, &nv.num_archs, "nvrtcGetNumSupportedArchs") ||
        sym(lib, &nv.archs, "nvrtcGetSupportedArchs") || sym(lib, &nv.create, "nvrtcCreateProgram") ||
        sym(lib, &nv.compile, "nvrtcCompileProgram") || sym(lib, &nv.cubin_size, "nvrtcGetCUBINSize") ||
        sym(lib, &nv.ptx_size, "nvrtcGetPTXSize") || sym(lib, &nv.ptx, "nvrtcGetPTX") ||
        sym(lib, &nv.cubin, "nvrtcGetCUBIN") || sym(lib, &nv.log_size, "nvrtcGetProgramLogSize") ||
        sym(lib, &nv.log, "nvrtcGetProgramLog") || sym(lib, &nv.destroy, "nvrtcDestroyProgram") ||
        sym(lib, &nv.error, "nvrtcGetErrorString"))
        return;
    int major = 0, minor = 0;
    if (nv.version_of(&major, &minor)) {
        snprintf(nv.why, sizeof nv.why, "nvrtcVersion failed");
        return;
    }
    nv.version = 1000 * major + 10 * minor;
}

int rtc_nvrtc_version(char *why, size_t len)
{
    if (!nv.tried) nvrtc_open();
    if (!nv.version && why) snprintf(why, len, "%s", nv.why);
    return nv.version;
}

int rtc_nvrtc_supports(int sm)
{
    int n = 0, *archs, ok = 0;
    if (!rtc_nvrtc_version(NULL, 0) || nv.num_archs(&n) || n <= 0) return 0;
    archs = nta_malloc((size_t)n * sizeof *archs);
    if (!nv.archs(archs))
        for (int i = 0; i < n; i++) ok |= archs[i] == sm;
    free(archs);
    return ok;
}

int rtc_compile(const char *src, const char *name, int sm, void **cubin, size_t *size, char *log, size_t loglen)
{
    *cubin = NULL, *size = 0;
    if (!rtc_nvrtc_version(log, loglen)) return -1;
    char arch[64];
    int ptx = sm < 0;                    /* RTC_PTX(sm): PTX for compute_<sm>, which the driver compiles */
    snprintf(arch, sizeof arch, "--gpu-architecture=%s_%d", ptx ? "compute" : "sm", ptx ? -sm : sm);
    const char *opts[] = {arch, "--std=c++17"};
    nvrtcProgram prog;
    nvrtcResult r = nv.create(&prog, src, name, 0, NULL, NULL);
    if (r) {
        snprintf(log, loglen, "nvrtcCreateProgram: %s", nv.error(r));
        return -1;
    }
    r = nv.compile(prog, 2, opts);
    size_t n = 0;
    if (r) {
        char *text = NULL;
        if (!nv.log_size(prog, &n) && n) {
            text = nta_malloc(n);
            if (nv.log(prog, text)) text[0] = 0;
        }
        snprintf(log, loglen, "nvrtcCompileProgram (%s): %s\n%s", arch, nv.error(r), text ? text : "");
        free(text);
        nv.destroy(&prog);
        return -1;
    }
    if ((ptx ? nv.ptx_size : nv.cubin_size)(prog, &n) || !n) {
        snprintf(log, loglen, "NVRTC gave no %s for %s", ptx ? "PTX" : "cubin", arch);
        nv.destroy(&prog);
        return -1;
    }
    *cubin = nta_malloc(n);              /* PTX: text with its closing NUL, as cudaLibraryLoadData takes it */
    if ((ptx ? nv.ptx : nv.cubin)(prog, *cubin)) {
        snprintf(log, loglen, "nvrtcGet%s failed", ptx ? "PTX" : "CUBIN");
        free(*cubin), *cubin = NULL;
        nv.destroy(&prog);
        return -1;
    }
    *size = n;
    nv.destroy(&prog);
    return 0;
}

/* ------------------------------------------------------------ the cache */

int rtc_cache_dir(const char *given, char *dir, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (given && *given) snprintf(dir, len, "%s", given);
    else if (xdg && *xdg) snprintf(dir, len, "%s/nta", xdg);
    else if (home && *home) snprintf(dir, len, "%s/.cache/nta", home);
    else return -1;
    /* make each missing folder of the path */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0777);
            *p = '/';
        }
    mkdir(dir, 0777);
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* An entry: "nta rtc 1\n", the cubin's size and CRC-32 (8 + 4 bytes,
 * little-endian), the cubin. */
static const char cache_magic[] = "nta rtc 1\n";
enum { CACHE_HEAD = sizeof cache_magic - 1 + 12 };

/* 64-bit FNV-1a of n bytes, continuing h */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* The entry at path: 1 and a malloc'ed cubin, 0 if there is none, -1 if it
 * is damaged (wrong header, size or CRC) */
static int cache_read(const char *path, void **cubin, size_t *size)
{
    char err[256];
    size_t len;
    uint8_t *b = nta_read_file(path, (size_t)1 << 30, &len, err, sizeof err);
    if (!b) return access(path, F_OK) == 0 ? -1 : 0;
    int ok = len >= CACHE_HEAD && !memcmp(b, cache_magic, sizeof cache_magic - 1);
    size_t n = ok ? (size_t)from_le(b + sizeof cache_magic - 1, 8) : 0;
    ok = ok && n == len - CACHE_HEAD && n > 0 &&
         crc32(0, b + CACHE_HEAD, (uInt)n) == from_le(b + sizeof cache_magic - 1 + 8, 4);
    if (ok) {
        *cubin = nta_malloc(n);
        memcpy(*cubin, b + CACHE_HEAD, n);
        *size = n;
    }
    free(b);
    return ok ? 1 : -1;
}

/* Write the entry through a temporary file renamed over path; 0 or -1 */
static int cache_write(const char *path, const void *cubin, size_t size)
{
    char tmp[4200];
    unsigned char head[CACHE_HEAD];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    memcpy(head, cache_magic, sizeof cache_magic - 1);
    le(head + sizeof cache_magic - 1, size, 8);
    le(head + sizeof cache_magic - 1 + 8, crc32(0, cubin, (uInt)size), 4);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int bad = fwrite(head, 1, sizeof head, f) != sizeof head || fwrite(cubin, 1, size, f) != size;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rtc_compile_cached(const char *src, const char *name, int sm, const char *dir, void **cubin, size_t *size,
                       char *log, size_t loglen)
{
    int version = rtc_nvrtc_version(log, loglen);
    if (!version) return -1;
    if (!dir) return rtc_compile(src, name, sm, cubin, size, log, loglen) ? -1 : RTC_UNCACHED;
    uint64_t h = fnv(0xcbf29ce484222325ULL, cache_magic, sizeof cache_magic - 1);
    h = fnv(h, &version, sizeof version);
    h = fnv(h, &sm, sizeof sm);
    h = fnv(h, src, strlen(src));
    char path[4096];
    if (sm < 0) snprintf(path, sizeof path, "%s/%016llx-compute%d.ptx", dir, (unsigned long long)h, -sm);
    else snprintf(path, sizeof path, "%s/%016llx-sm%d.cubin", dir, (unsigned long long)h, sm);
    int got = cache_read(path, cubin, size);
    if (got == 1) return RTC_HIT;
    if (got < 0) unlink(path);                            /* damaged: compiled again */
    if (rtc_compile(src, name, sm, cubin, size, log, loglen)) return -1;
    if (cache_write(path, *cubin, *size)) return RTC_UNCACHED;
    return got < 0 ? RTC_REBUILT : RTC_MISS;
}

/* ------------------------------------------------------------ running them */

int rtc_mode(char *err, size_t len)
{
    const char *m = getenv("NTA_RTC");
    if (!m || !*m || !strcmp(m, "on")) return RTC_ON;
    if (!strcmp(m, "off")) return RTC_OFF;
    if (!strcmp(m, "strict")) return RTC_STRICT;
    snprintf(err, len, "NTA_RTC must be on, off or strict (got '%s')", m);
    return -1;
}

struct RtcRun {
    const RtcNet *rn;
    const RtcDevice *dev;
    const Backend *be;
    void *module;
    void *kernel[RTC_MAX_LAYERS];
    float *param, *act;                  /* be memory: [nparam], [nact] */
    RtcNet *owned;                       /* rtc_prepare's network, freed with the runner */
};

/* The newest architecture NVRTC compiles for, 0 if it says none */
static int newest_sm(void)
{
    int n = 0, newest = 0;
    if (!rtc_nvrtc_version(NULL, 0) || nv.num_archs(&n) || n <= 0) return 0;
    int *archs = nta_malloc((size_t)n * sizeof(int));
    if (!nv.archs(archs))
        for (int i = 0; i < n; i++) newest = archs[i] > newest ? archs[i] : newest;
    free(archs);
    return newest;
}

int rtc_target(int device_sm, char *why, size_t len)
{
    for (int sm = device_sm; sm >= device_sm / 10 * 10; sm--)
        if (rtc_nvrtc_supports(sm)) return sm;
    int newest = newest_sm();
    if (newest && device_sm > newest) return RTC_PTX(newest);
    snprintf(why, len, "NVRTC %d.%d cannot compile for sm_%d (nor an earlier sm_%dx, and the device is older than "
             "sm_%d, NVRTC's newest)", nv.version / 1000, nv.version % 1000 / 10, device_sm, device_sm / 10, newest);
    return 0;
}

/* A compile error: the source and NVRTC's log as dir/nta-HASH.cu and .log;
 * why gets the log's first error (or first line) and where both are */
static void save_failure(const char *src, const char *log, const char *dir, char *why, size_t len)
{
    char path[4200], first[200];
    const char *e = strstr(log, ": error");        /* the first error's line, else the log's first line */
    while (e && e > log && e[-1] != '\n') e--;
    if (!e) e = log;
    size_t n = strcspn(e, "\n");
    n = n < sizeof first - 1 ? n : sizeof first - 1;
    memcpy(first, e, n);
    first[n] = 0;
    if (!dir) {
        snprintf(why, len, "%s (no cache folder to save the source and log in)", first);
        return;
    }
    unsigned long long h = (unsigned long long)fnv(0xcbf29ce484222325ULL, src, strlen(src));
    snprintf(path, sizeof path, "%s/nta-%016llx.cu", dir, h);
    FILE *f = fopen(path, "w");
    int ok = f && fputs(src, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    snprintf(path, sizeof path, "%s/nta-%016llx.log", dir, h);
    f = ok ? fopen(path, "w") : NULL;
    ok = f && fputs(log, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    if (ok) snprintf(why, len, "%s (source and NVRTC's log: %s/nta-%016llx.cu, .log)", first, dir, h);
    else snprintf(why, len, "%s (the source and log could not be saved in %s)", first, dir);
}

RtcRun *rtc_run_open(const RtcNet *rn, const RtcDevice *dev, const Backend *be, const char *cache_dir, int *how,
                     char *why, size_t len)
{
    int dsm = dev->sm(why, len), sm;
    if (!dsm || !rtc_nvrtc_version(why, len) || !(sm = rtc_target(dsm, why, len))) return NULL;
    static char log[16384];
    void *cubin;
    size_t size;
    int got = rtc_compile_cached(rn->src, "nta_net.cu", sm, cache_dir, &cubin, &size, log, sizeof log);
    if (got < 0) {
        save_failure(rn->src, log, cache_dir, why, len);
        return NULL;
    }
    if (how) *how = got;
    RtcRun *run = nta_calloc(1, sizeof *run);
    run->rn = rn, run->dev = dev, run->be = be;
    run->module = dev->load(cubin, size, rn->src, why, len);
    free(cubin);
    for (int i = 0; run->module && i < rn->n; i++) {
        char name[32];
        snprintf(name, sizeof name, "nta_l%d", i);
        if (!(run->kernel[i] = dev->kernel(run->module, name, why, len))) {
            rtc_run_close(run);
            return NULL;
        }
    }
    if (!run->module) {
        free(run);
        return NULL;
    }
    run->param = be->alloc(rn->nparam * sizeof(float));
    run->act = be->alloc(rn->nact * sizeof(float));
    be->upload(run->param, rn->param, rn->nparam * sizeof(float));
    return run;
}

int rtc_run_forward_timed(RtcRun *run, float *logits, const float *x, double *sec, char *why, size_t len)
{
    const RtcNet *rn = run->rn;
    for (int i = 0; i < rn->n; i++) {
        double t0 = sec ? nta_now() : 0;
        float *y = i == rn->n - 1 ? logits : run->act + rn->aoff[i];
        const float *in = i ? run->act + rn->aoff[i - 1] : x, *r = NULL;
        if (rn->res[i] >= -1) r = rn->res[i] >= 0 ? run->act + rn->aoff[rn->res[i]] : x;
        if (run->dev->launch(run->kernel[i], rn->grid[i], rn->block[i], y, in, run->param + rn->woff[i],
                             run->param + rn->boff[i], r, why, len))
            return -1;
        if (sec) {            /* wait for the layer: a 4-byte download drains the device's queue */
            float sync;
            run->be->download(&sync, y, sizeof sync);
            sec[i] = nta_now() - t0;
        }
    }
    return 0;
}

int rtc_run_forward(RtcRun *run, float *logits, const float *x, char *why, size_t len)
{
    return rtc_run_forward_timed(run, logits, x, NULL, why, len);
}

const RtcNet *rtc_run_net(const RtcRun *run) { return run->rn; }

void rtc_run_close(RtcRun *run)
{
    if (!run) return;
    if (run->module) run->dev->unload(run->module);
    if (run->param) run->be->free(run->param);
    if (run->act) run->be->free(run->act);
    rtc_net_free(run->owned);
    free(run);
}

/* A failure under mode: fatal when strict, else one line on note */
static void fall_back(int mode, const char *why, const char *instead, FILE *note)
{
    if (mode == RTC_STRICT) nta_die("specialised kernels (NTA_RTC=strict): %s", why);
    fprintf(note, "nta: specialised kernels not used: %s; running %s\n", why, instead);
}

RtcRun *rtc_prepare_built(const RtcNet *rn, const Backend *be, const RtcDevice *dev, int mode, const char *cache_dir,
                          const char *instead, FILE *note)
{
    if (mode == RTC_OFF || !dev) return NULL;
    char why[1024], dir[4096];
    int how = 0, have = rtc_cache_dir(cache_dir, dir, sizeof dir) == 0;
    double t0 = nta_now();
    RtcRun *run = rtc_run_open(rn, dev, be, have ? dir : NULL, &how, why, sizeof why);
    if (!run) {
        fall_back(mode, why, instead, note);
        return NULL;
    }
    static const char *said[] = {"loaded from the cache", "compiled", "compiled again (a damaged cache entry)",
                                 "compiled (not cached)"};
    fprintf(note, "specialised kernels: %d layers at batch %d, %s in %.2f s\n", rn->n, rn->B, said[how],
            nta_now() - t0);
    return run;
}

RtcRun *rtc_prepare(const Net *net, int B, const RtcDevice *dev, int mode, const char *cache_dir, FILE *note)
{
    if (mode == RTC_OFF || !dev) return NULL;
    char why[1024];
    RtcNet *rn = rtc_net_build(net, B, why, sizeof why);
    if (!rn) {
        fall_back(mode, why, "the generic kernels", note);
        return NULL;
    }
    RtcRun *run = rtc_prepare_built(rn, net_backend(net), dev, mode, cache_dir, "the generic kernels", note);
    if (run) run->owned = rn;
    else rtc_net_free(rn);
    return run;
}
