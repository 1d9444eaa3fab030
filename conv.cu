/* conv.cu: the stem's dense KxK convolution (forward, weight gradient) and
 * the depthwise KxK convolution (forward, input gradient, weight gradient),
 * NHWC, stride s, pad K/2, as the Backend's ops in nta.h. Pointwise (1x1)
 * convolutions are GEMMs (gemm.cu).
 *
 * Forward and input-gradient kernels give one output element to a thread,
 * channels fastest, so a warp reads and writes consecutive addresses; each
 * thread sums its taps in the order the CPU reference does.
 * Weight gradients are sums over every output pixel. They are deterministic
 * without atomics: the pixels are cut into `parts` contiguous ranges, one
 * thread sums one range for one weight into a scratch row part[p][...], and
 * the last block of the launch to finish (cuda_last_block) adds the rows to
 * dw in order p = 0, 1, ...
 * Inputs may be read through batchnorms (BnLoad, nta.h: a forward one on x, a
 * backward one on dy), and in training the depthwise conv computes its
 * output's batchnorm statistics (dw_fwd_stats_kernel).
 * Shapes: see nta.h; Ho, Wo are the output size, Npix = N*Ho*Wo.
 */
#include "nta_cuda.h"

/* Tickets of the last-block steps: conv_bwd_w, dw_bwd_w; dw_fwd_stats per
 * column of blocks (32 channels) */
enum { CONV_GROUPS = 256 };
static __device__ unsigned conv_ticket[2];
static __device__ unsigned dw_stats_ticket[CONV_GROUPS];

/* How many pixel ranges a weight gradient uses: about 64k threads in all,
 * at least `min_pix` pixels per range, at most 2048 ranges. */
static int grad_parts(long npix, long weights, long min_pix)
{
    long by_threads = 65536 / (weights > 0 ? weights : 1), by_pix = (npix + min_pix - 1) / min_pix;
    long p = by_threads < by_pix ? by_threads : by_pix;
    return (int)(p < 1 ? 1 : p > 2048 ? 2048 : p);
}

/* The last block's step of a weight gradient: the sum over p of part[p * n +
 * i], p in order, for each i < n (read from L2: other blocks wrote them) */
static __device__ __forceinline__ float sum_parts(const float *part, int parts, int n, int i)
{
    float s = 0.0f;
    for (int p = 0; p < parts; p++) s += __ldcg(&part[(size_t)p * n + i]);
    return s;
}

/* -------------------------------------------------------------- stem conv */

/* y [N,Ho,Wo,Co] = x [N,H,W,Ci] * w [K,K,Ci,Co] */
__global__ void conv_fwd_kernel(float *y, const float *__restrict__ x, const float *__restrict__ w,
                                int N, int H, int W, int Ci, int Co, int K, int s, int Ho, int Wo)
{
    size_t total = (size_t)N * Ho * Wo * Co;
    int pad = K / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int co = (int)(i % Co);
        size_t pix = i / Co;
        int ox = (int)(pix % Wo), oy = (int)(pix / Wo % Ho), n = (int)(pix / Wo / Ho);
        float acc = 0.0f;
        for (int ky = 0; ky < K; ky++) {
            int iy = oy * s - pad + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < K; kx++) {
                int ix = ox * s - pad + kx;
                if (ix < 0 || ix >= W) continue;
                const float *xi = x + (((size_t)n * H + iy) * W + ix) * Ci;
                const float *wk = w + (size_t)(ky * K + kx) * Ci * Co + co;
                for (int ci = 0; ci < Ci; ci++) acc += xi[ci] * wk[(size_t)ci * Co];
            }
        }
        y[i] = acc;
    }
}

void cuda_conv_fwd(float *y, const float *x, const float *w, int N, int H, int W, int Ci,
                   int Co, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
    size_t total = (size_t)N * Ho * Wo * Co;
    if (!total) return;
    SIMT_LAUNCH(conv_fwd_kernel, cuda_grid(total), CUDA_THREADS, 0, cuda_stream(), y, x, w, N, H,
                W, Ci, Co, K, s, Ho, Wo);
    LAUNCH_CHECK();
}

/* part [parts, K*K*Ci*Co]: row p sums x (tap) * dy (read through dybn) over
 * pixel range p. Thread i holds weight i % nw of range i / nw; co is
 * fastest, so a warp reads one x value and consecutive dy values. Then the
 * last block adds the rows into dw [K,K,Ci,Co]. */
__global__ void conv_bwd_w_kernel(float *dw, float *part, const float *__restrict__ dy, BnLoad dybn,
                                  const float *__restrict__ x, int N, int H, int W, int Ci,
                                  int Co, int K, int s, int Ho, int Wo, int parts)
{
    int nw = K * K * Ci * Co, pad = K / 2;
    long npix = (long)N * Ho * Wo;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)parts * nw;
         i += (long)gridDim.x * blockDim.x) {
        int p = (int)(i / nw), wi = (int)(i % nw);
        int co = wi % Co, ci = wi / Co % Ci, tap = wi / Co / Ci, ky = tap / K, kx = tap % K;
        long lo = npix * p / parts, hi = npix * (p + 1) / parts;
        int ox = (int)(lo % Wo), oy = (int)(lo / Wo % Ho), n = (int)(lo / Wo / Ho);
        ChanLoad l = chan_load_of(dybn, co);
        float acc = 0.0f;
        for (long q = lo; q < hi; q++) {
            int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
            size_t at = (size_t)q * Co + co;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                acc += x[(((size_t)n * H + iy) * W + ix) * Ci + ci] * chan_load(l, dy[at], at);
            if (++ox == Wo) {
                ox = 0;
                if (++oy == Ho) oy = 0, n++;
            }
        }
        part[i] = acc;
    }
    if (!cuda_last_block(&conv_ticket[0], gridDim.x)) return;
    for (int i = threadIdx.x; i < nw; i += blockDim.x) dw[i] += sum_parts(part, parts, nw, i);
}

void cuda_conv_bwd_w(float *dw, const float *dy, const BnLoad *dybn, const float *x, int N, int H, int W,
                     int Ci, int Co, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), nw = K * K * Ci * Co;
    long npix = (long)N * Ho * Wo;
    if (!npix || !nw) return;
    int parts = grad_parts(npix, nw, 32);
    float *part = (float *)cuda_scratch((size_t)parts * nw * sizeof(float));
    cudaStream_t st = cuda_stream();
    SIMT_LAUNCH(conv_bwd_w_kernel, cuda_grid((size_t)parts * nw), CUDA_THREADS, 0, st, dw, part, dy,
                dybn ? *dybn : BnLoad{}, x, N, H, W, Ci, Co, K, s, Ho, Wo, parts);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------- depthwise conv */

/* The depthwise sum of element i of y [N,Ho,Wo,C]: tap (ky,kx) of channel c
 * is w[ky*ldr + kx*ldc + c]; x [N,H,W,C] is read through l (a forward load
 * of channel c); taps outside x are skipped (the padding is zeros after the
 * load) */
__device__ float dw_sum(const float *__restrict__ x, const ChanLoad &l, const float *__restrict__ w, size_t i,
                        int ldr, int ldc, int H, int W, int C, int K, int s, int Ho, int Wo)
{
    int c = (int)(i % C), pad = K / 2;
    size_t pix = i / C;
    int ox = (int)(pix % Wo), oy = (int)(pix / Wo % Ho), n = (int)(pix / Wo / Ho);
    float acc = 0.0f;
    for (int ky = 0; ky < K; ky++) {
        int iy = oy * s - pad + ky;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < K; kx++) {
            int ix = ox * s - pad + kx;
            if (ix < 0 || ix >= W) continue;
            size_t at = (((size_t)n * H + iy) * W + ix) * C + c;
            acc += chan_load(l, x[at], at) * w[(size_t)ky * ldr + (size_t)kx * ldc + c];
        }
    }
    return acc;
}

/* y [N,Ho,Wo,C] = depthwise conv of x (read through xbn) */
__global__ void dw_fwd_kernel(float *y, const float *__restrict__ x, BnLoad xbn, const float *__restrict__ w,
                              int ldr, int ldc, int N, int H, int W, int C, int K, int s, int Ho,
                              int Wo)
{
    size_t total = (size_t)N * Ho * Wo * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = dw_sum(x, chan_load_of(xbn, (int)(i % C)), w, i, ldr, ldc, H, W, C, K, s, Ho, Wo);
}

/* Training: y [Npix,C] = dw_fwd as dw_fwd_kernel, and y's batchnorm
 * statistics (bn_stats_finish, nta_cuda.h). A block of 32 channels x 8 row
 * lanes takes a chunk of output pixels: pass 1 computes and writes y and
 * sums it for the chunk's mean, pass 2 rereads the thread's own y for the
 * sums around that mean; the last block of each column of blocks combines
 * the chunks. grid (ceil(C/32), chunks), block (32, 8). */
__global__ void dw_fwd_stats_kernel(float *y, BnStats st, double *part, const float *__restrict__ x, BnLoad xbn,
                                    const float *__restrict__ w, int ldr, int ldc, int N, int H, int W, int C,
                                    int K, int s, int Ho, int Wo)
{
    int c = blockIdx.x * BN_TX + threadIdx.x, chunks = gridDim.y, P = N * Ho * Wo, lo, hi;
    bn_chunk(P, blockIdx.y, chunks, &lo, &hi);
    ChanLoad l = c < C ? chan_load_of(xbn, c) : ChanLoad{};
    float sum = 0.0f;
    for (int r = lo + threadIdx.y; c < C && r < hi; r += BN_TY) {
        size_t i = (size_t)r * C + c;
        float v = dw_sum(x, l, w, i, ldr, ldc, H, W, C, K, s, Ho, Wo);
        y[i] = v;
        sum += v;
    }
    bn_chunk_moments(part, y, sum, c, C, lo, hi);   /* reads back this thread's own writes */
    if (!cuda_last_block(&dw_stats_ticket[blockIdx.x], chunks) || threadIdx.y != 0 || c >= C) return;
    bn_stats_finish(st, part, c, C, P, chunks, 0);
}

/* Inference: y [N,Ho,Wo,C] = BN_eval(depthwise conv of x), then ReLU6 if asked */
__global__ void dw_bn_eval_kernel(float *y, const float *__restrict__ x,
                                  const float *__restrict__ w, int ldr, int ldc,
                                  const float *__restrict__ gamma, const float *__restrict__ beta,
                                  const float *__restrict__ run_mean,
                                  const float *__restrict__ run_var, int N, int H, int W, int C,
                                  int K, int s, int Ho, int Wo, int relu6)
{
    size_t total = (size_t)N * Ho * Wo * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = bn_eval_at(dw_sum(x, ChanLoad{}, w, i, ldr, ldc, H, W, C, K, s, Ho, Wo), (int)(i % C), gamma,
                          beta, run_mean, run_var, relu6);
}

void cuda_dw_fwd(float *y, const BnStats *st, const float *x, const BnLoad *xbn, const float *w, int ldr,
                 int ldc, int N, int H, int W, int C, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
    size_t total = (size_t)N * Ho * Wo * C;
    if (!total) return;
    BnLoad load = xbn ? *xbn : BnLoad{};
    if (st) {   /* chunks of about 64 pixels (8 a row lane): each costs K*K taps, so more blocks than bn_chunks */
        int P = N * Ho * Wo, chunks = (P + 63) / 64, groups = (C + BN_TX - 1) / BN_TX;
        if (chunks > 1024) chunks = 1024;
        if (groups > CONV_GROUPS) nta_die("internal: batchnorm over %d channels (the CUDA backend takes %d)", C, CONV_GROUPS * BN_TX);
        double *part = (double *)cuda_scratch(3 * (size_t)chunks * C * sizeof(double));
        SIMT_LAUNCH(dw_fwd_stats_kernel, dim3(groups, chunks), dim3(BN_TX, BN_TY), 0, cuda_stream(), y, *st, part,
                    x, load, w, ldr, ldc, N, H, W, C, K, s, Ho, Wo);
        LAUNCH_CHECK();
        return;
    }
    SIMT_LAUNCH(dw_fwd_kernel, cuda_grid(total), CUDA_THREADS, 0, cuda_stream(), y, x, load, w, ldr,
                ldc, N, H, W, C, K, s, Ho, Wo);
    LAUNCH_CHECK();
}

void cuda_dw_bn_eval(float *y, const float *x, const float *w, int ldr, int ldc,
                     const float *gamma, const float *beta, const float *run_mean,
                     const float *run_var, int N, int H, int W, int C, int K, int s, int relu6)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
    size_t total = (size_t)N * Ho * Wo * C;
    if (!total) return;
    SIMT_LAUNCH(dw_bn_eval_kernel, cuda_grid(total), CUDA_THREADS, 0, cuda_stream(), y, x, w, ldr,
                ldc, gamma, beta, run_mean, run_var, N, H, W, C, K, s, Ho, Wo, relu6);
    LAUNCH_CHECK();
}

/* dx [N,H,W,C], gathered per input element: the outputs (oy,ox) whose tap
 * (ky,kx) reads (iy,ix) have oy*s = iy + pad - ky, ox*s = ix + pad - kx;
 * dy is read through dybn. */
__global__ void dw_bwd_x_kernel(float *dx, const float *__restrict__ dy, BnLoad dybn,
                                const float *__restrict__ w, int ldr, int ldc, int N, int H,
                                int W, int C, int K, int s, int Ho, int Wo)
{
    size_t total = (size_t)N * H * W * C;
    int pad = K / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int ix = (int)(pix % W), iy = (int)(pix / W % H), n = (int)(pix / W / H);
        ChanLoad l = chan_load_of(dybn, c);
        float acc = 0.0f;
        for (int ky = 0; ky < K; ky++) {
            int t = iy + pad - ky;
            if (t < 0 || t % s || t / s >= Ho) continue;
            for (int kx = 0; kx < K; kx++) {
                int u = ix + pad - kx;
                if (u < 0 || u % s || u / s >= Wo) continue;
                size_t at = (((size_t)n * Ho + t / s) * Wo + u / s) * C + c;
                acc += chan_load(l, dy[at], at) * w[(size_t)ky * ldr + (size_t)kx * ldc + c];
            }
        }
        dx[i] = acc;
    }
}

void cuda_dw_bwd_x(float *dx, const float *dy, const BnLoad *dybn, const float *w, int ldr, int ldc, int N,
                   int H, int W, int C, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
    size_t total = (size_t)N * H * W * C;
    if (!total) return;
    SIMT_LAUNCH(dw_bwd_x_kernel, cuda_grid(total), CUDA_THREADS, 0, cuda_stream(), dx, dy,
                dybn ? *dybn : BnLoad{}, w, ldr, ldc, N, H, W, C, K, s, Ho, Wo);
    LAUNCH_CHECK();
}

/* part [parts, K*K, C]: thread i sums, for channel i % C over pixel range
 * i / C, dy (read through dybn) * x (read through xbn) at each of the K*K
 * taps (kept in registers: K is a template argument). Then the last block
 * adds the rows into dw (pitches ldr, ldc), p in order. */
template <int K>
__global__ void dw_bwd_w_kernel(float *dw, int ldr, int ldc, float *part, const float *__restrict__ dy,
                                BnLoad dybn, const float *__restrict__ x, BnLoad xbn, int N, int H, int W,
                                int C, int s, int Ho, int Wo, int parts)
{
    const int pad = K / 2;
    long npix = (long)N * Ho * Wo;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)parts * C;
         i += (long)gridDim.x * blockDim.x) {
        int p = (int)(i / C), c = (int)(i % C);
        long lo = npix * p / parts, hi = npix * (p + 1) / parts;
        int ox = (int)(lo % Wo), oy = (int)(lo / Wo % Ho), n = (int)(lo / Wo / Ho);
        ChanLoad l = chan_load_of(xbn, c), lg = chan_load_of(dybn, c);
        float acc[K * K];
UNROLL
        for (int k = 0; k < K * K; k++) acc[k] = 0.0f;
        for (long q = lo; q < hi; q++) {
            float g = chan_load(lg, dy[(size_t)q * C + c], (size_t)q * C + c);
UNROLL
            for (int ky = 0; ky < K; ky++) {
                int iy = oy * s - pad + ky;
                if (iy < 0 || iy >= H) continue;
                const float *xr = x + ((size_t)n * H + iy) * W * C + c;
UNROLL
                for (int kx = 0; kx < K; kx++) {
                    int ix = ox * s - pad + kx;
                    if (ix >= 0 && ix < W) acc[ky * K + kx] += g * chan_load(l, xr[(size_t)ix * C], 0);
                }
            }
            if (++ox == Wo) {
                ox = 0;
                if (++oy == Ho) oy = 0, n++;
            }
        }
UNROLL
        for (int k = 0; k < K * K; k++) part[((size_t)p * K * K + k) * C + c] = acc[k];
    }
    if (!cuda_last_block(&conv_ticket[1], gridDim.x)) return;
    for (int i = threadIdx.x; i < K * K * C; i += blockDim.x) {
        int tap = i / C, c = i % C;
        dw[(size_t)(tap / K) * ldr + (size_t)(tap % K) * ldc + c] += sum_parts(part, parts, K * K * C, i);
    }
}

typedef void (*DwGradKernel)(float *, int, int, float *, const float *, BnLoad, const float *, BnLoad, int, int,
                             int, int, int, int, int, int);

void cuda_dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const BnLoad *dybn, const float *x,
                   const BnLoad *xbn, int N, int H, int W, int C, int K, int s)
{
    DwGradKernel kernel = K == 1 ? dw_bwd_w_kernel<1>
                          : K == 3 ? dw_bwd_w_kernel<3>
                          : K == 5 ? dw_bwd_w_kernel<5>
                          : K == 7 ? dw_bwd_w_kernel<7> : NULL;
    if (!kernel) nta_die("cuda: depthwise kernels of size %d are not built (1, 3, 5, 7 are)", K);
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s);
    long npix = (long)N * Ho * Wo;
    if (!npix || !C) return;
    int parts = grad_parts(npix, C, 16);
    float *part = (float *)cuda_scratch((size_t)parts * K * K * C * sizeof(float));
    cudaStream_t st = cuda_stream();
    BnLoad load = xbn ? *xbn : BnLoad{};
    SIMT_LAUNCH(kernel, cuda_grid((size_t)parts * C), CUDA_THREADS, 0, st, dw, ldr, ldc, part, dy,
                dybn ? *dybn : BnLoad{}, x, load, N, H, W, C, s, Ho, Wo, parts);
    LAUNCH_CHECK();
}
