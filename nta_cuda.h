/* nta_cuda.h: what the CUDA sources (cuda.cu, kernels.cu, gemm.cu, conv.cu)
 * share: the error-checking macros, the one stream, device scratch, and the
 * host launchers of each op (same arguments as the Backend table in nta.h).
 *
 * Every .cu file compiles twice: with nvcc for the GPU, and as C++ with g++
 * and simt.h for the CPU emulator the tests run on (see simt.h). Kernel code
 * is plain CUDA; launches go through SIMT_LAUNCH.
 * Shapes: see the legend in nta.h.
 */
#ifndef NTA_CUDA_H
#define NTA_CUDA_H

#include "simt.h"

#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "nta.h"
}

/* Wrap every runtime call: on failure print file:line, the call and CUDA's
 * error text, then exit(1). */
#define CUDA_CHECK(call)                                                                   \
    do {                                                                                   \
        cudaError_t err_ = (call);                                                         \
        if (err_ != cudaSuccess) {                                                         \
            fprintf(stderr, "nta: CUDA error at %s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                    cudaGetErrorString(err_));                                             \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)
/* After a launch: a bad configuration or (emulated) a faulting kernel, named
 * with the launch's file:line. A GPU reports a kernel's fault at a later
 * call; with NTA_CUDA_SYNC=1 in the environment every launch is followed by
 * a stream synchronisation, so that the kernel at fault is the one named. */
#define LAUNCH_CHECK() cuda_check_launch(simt_last_kernel, __FILE__, __LINE__)
void cuda_check_launch(const char *kernel, const char *file, int line);

/* Unroll the loop that follows (nvcc's #pragma unroll; g++ has its own). */
#if defined(__CUDACC__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 64")
#endif

/* Batchnorm with running statistics of v, a value of channel c, then ReLU6 if
 * relu6 (bn_eval_kernel, dw_bn_eval_kernel). */
static __device__ __forceinline__ float bn_eval_at(float v, int c, const float *gamma,
                                                   const float *beta, const float *run_mean,
                                                   const float *run_var, int relu6)
{
    float scale = gamma[c] / sqrtf(run_var[c] + NTA_BN_EPS);
    v = (v - run_mean[c]) * scale + beta[c];    /* centred first: see cpu.c's bn_apply */
    return relu6 ? relu6f(v) : v;
}

#define CUDA_THREADS 256      /* threads per block of the one-dimensional kernels */

/* ------------------------------------------------ batchnorm loads (BnLoad) */

/* A BnLoad (nta.h) for one channel c, its parameters read once: kind 0 reads
 * x as it is, 1 forward, 2 backward (then x is the masked gradient g and z
 * the conv's output, at the same index). scale = gamma istd, as bn_stats,
 * bn_apply and cpu.c compute it. */
struct ChanLoad {
    int kind, relu6;
    float mean, istd, scale, beta, g_mean, gx_mean;
    const float *z;
};

static __device__ __forceinline__ ChanLoad chan_load_of(const BnLoad &b, int c)
{
    ChanLoad l = {0, b.relu6, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, b.z};
    if (!b.mean) return l;
    l.kind = b.z ? 2 : 1;
    l.mean = b.mean[c], l.istd = b.istd[c], l.scale = b.gamma[c] * l.istd;
    if (b.z) l.g_mean = b.g_mean[c], l.gx_mean = b.gx_mean[c];
    else l.beta = b.beta[c];
    return l;
}

/* x' of x = v at element i (the index of z too, for a backward load) */
static __device__ __forceinline__ float chan_load(const ChanLoad &l, float v, size_t i)
{
    if (l.kind == 0) return v;
    if (l.kind == 2) return l.scale * (v - l.g_mean - (l.z[i] - l.mean) * l.istd * l.gx_mean);
    v = (v - l.mean) * l.scale + l.beta;    /* centred first: see cpu.c's bn_apply */
    return l.relu6 ? relu6f(v) : v;
}

/* The same for one element v = x[i] of channel c */
static __device__ __forceinline__ float bn_load_at(const BnLoad &b, float v, int c, size_t i)
{
    return b.mean ? chan_load(chan_load_of(b, c), v, i) : v;
}

/* ------------------------------------------------- batchnorm statistics */

/* Batchnorm statistics are combined from chunks of rows: chunk k of `chunks`
 * holds n_k rows, with their mean c_k (a float), and the sums d_k of (z - c_k)
 * and q_k of (z - c_k)^2, in part [3, chunks, C] (planes c, d, q). The kernel
 * that produces z computes them (bn_stats_kernel; gemm_bn's and dw_fwd's
 * epilogues), and the last block to finish (cuda_last_block) combines the
 * chunks of channel c in order, exactly for any centres:
 *   mean = sum (n_k c_k + d_k) / P,
 *   P var = sum q_k + 2 (c_k - mean) d_k + n_k (c_k - mean)^2,
 * then saves mean and istd and updates the running averages (BnStats).
 * (Centred on each chunk's own mean: no cancellation however large the mean.)
 * Chunk k is rows [k tile, min(P, (k+1) tile)) when tile > 0, else
 * bn_chunk's even split.
 * d_k, q_k and the combination are in double, z - c_k too (exact): mean and
 * var come out with double's precision, so that mean and istd are the float
 * roundings of their exact values whatever the chunks; the CPU's (cpu.c,
 * col_moments) are within a small fraction of a unit in the last place of
 * them. A training step's gradients are sensitive to these statistics (one
 * float ulp of istd moved the SSL network's step check in test_cuda by a
 * whole tolerance), so the two backends must round the same values, not
 * merely values close to each other. */
enum { BN_TX = 32, BN_TY = 8 };   /* the batchnorm kernels' blocks: 32 channels x 8 row lanes */

/* Chunks of rows for P rows: about 256 rows each, at most 1024. */
static inline int bn_chunks(int P)
{
    int c = (P + 255) / 256;
    return c < 1 ? 1 : c > 1024 ? 1024 : c;
}

/* Rows [lo, hi) of chunk k of `chunks` over P rows. */
static __device__ __forceinline__ void bn_chunk(int P, int k, int chunks, int *lo, int *hi)
{
    *lo = (int)((long)P * k / chunks), *hi = (int)((long)P * (k + 1) / chunks);
}

static __device__ __forceinline__ void bn_stats_finish(const BnStats &st, const double *part, int c, int C, int P,
                                                       int chunks, int tile)
{
    size_t plane = (size_t)chunks * C;
    double s = 0, q = 0;
    for (int k = 0; k < chunks; k++) {
        int lo, hi;
        if (tile > 0) lo = k * tile, hi = min(P, lo + tile);
        else bn_chunk(P, k, chunks, &lo, &hi);
        s += (double)(hi - lo) * __ldcg(&part[(size_t)k * C + c]) + __ldcg(&part[plane + (size_t)k * C + c]);
    }
    double mu = s / P;
    for (int k = 0; k < chunks; k++) {
        int lo, hi;
        if (tile > 0) lo = k * tile, hi = min(P, lo + tile);
        else bn_chunk(P, k, chunks, &lo, &hi);
        double e = __ldcg(&part[(size_t)k * C + c]) - mu;
        q += __ldcg(&part[2 * plane + (size_t)k * C + c]) + 2 * e * __ldcg(&part[plane + (size_t)k * C + c]) +
             (hi - lo) * e * e;
    }
    double var = q > 0 ? q / P : 0;
    float m = st.momentum;
    st.mean[c] = (float)mu;
    st.istd[c] = (float)(1.0 / sqrt(var + NTA_BN_EPS));
    st.run_mean[c] = (1 - m) * st.run_mean[c] + m * (float)mu;
    st.run_var[c] = (1 - m) * st.run_var[c] + m * (float)(var * P / (P > 1 ? P - 1 : 1));
}

/* The sum over the 8 row lanes of a (32, 8) block, in order, of each thread's
 * a, returned to every thread of the lane's channel. Every thread calls it. */
template <typename T> static __device__ __forceinline__ T bn_block_sum(T a)
{
    __shared__ T s[BN_TY][BN_TX];
    __shared__ T t[BN_TX];
    int tx = threadIdx.x, ty = threadIdx.y;
    s[ty][tx] = a;
    __syncthreads();
    if (ty == 0) {
        T v = 0;
        for (int i = 0; i < BN_TY; i++) v += s[i][tx];
        t[tx] = v;
    }
    __syncthreads();
    T v = t[tx];
    __syncthreads();   /* s and t are free again for the next call */
    return v;
}

/* Chunk blockIdx.y of the statistics of channel c (above), over rows [lo,
 * hi) of z [P,C]: the centre c_k from each thread's sum of its rows, then d_k
 * and q_k, written to part [3, chunks, C]. Every thread of the (32, 8) block
 * calls it; rows r = lo + threadIdx.y + 8i are this thread's. */
static __device__ __forceinline__ void bn_chunk_moments(double *part, const float *z, float sum, int c, int C,
                                                        int lo, int hi)
{
    size_t plane = (size_t)gridDim.y * C, at = (size_t)blockIdx.y * C + c;
    float ck = hi > lo ? bn_block_sum(sum) / (hi - lo) : 0.0f;
    double a = 0, b = 0;
    for (int r = lo + threadIdx.y; c < C && r < hi; r += BN_TY) {
        double d = (double)z[(size_t)r * C + c] - ck;
        a += d;
        b += d * d;
    }
    double dk = bn_block_sum(a), qk = bn_block_sum(b);
    if (threadIdx.y == 0 && c < C) part[at] = ck, part[plane + at] = dk, part[2 * plane + at] = qk;
}

/* "Last block" reductions (one launch instead of a partial-sums kernel and a
 * kernel that adds them): every block writes its partial results, then counts
 * itself on a ticket; the block that arrives last adds the partials in a fixed
 * order (deterministic) and resets the ticket for the next launch. Every
 * thread of the block calls cuda_last_block after writing; it returns 1 in
 * every thread of the last of `blocks` blocks. That block reads the partials
 * with __ldcg (from L2, never a stale L1 line), and never through a const
 * __restrict__ pointer (which may read through the non-coherent cache). */
static __device__ __forceinline__ int cuda_last_block(unsigned *ticket, unsigned blocks)
{
    __shared__ int last;
    __threadfence();                  /* this thread's partials are visible first */
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        last = atomicAdd(ticket, 1u) == blocks - 1;
        if (last) *ticket = 0;        /* every block has counted: ready for the next launch */
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

/* The stream every op runs on (created at first use). */
cudaStream_t cuda_stream(void);
/* Device scratch of at least `bytes`, valid until the next call (ops on the one
 * stream run in order, so an op may use it for its partial sums). */
void *cuda_scratch(size_t bytes);
/* Blocks for a grid-stride loop over n items of CUDA_THREADS threads each. */
static inline unsigned cuda_grid(size_t n)
{
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b > 1024 ? 1024 : b);
}

/* gemm.cu */
void cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
/* 1: the TF32 tensor-core path is compiled in and the device has it (sm_80+). */
int cuda_gemm_tf32_supported(void);
/* training with fused batchnorms: gemm with operand loads and C's statistics (nta.h) */
void cuda_gemm_bn(int ta, int tb, int M, int N, int K, const float *A, int lda, const BnLoad *abn,
                  const float *B, int ldb, const BnLoad *bbn, float beta, float *C, int ldc, const BnStats *st);

/* conv.cu */
void cuda_conv_fwd(float *y, const float *x, const float *w, int N, int H, int W, int Ci,
                   int Co, int K, int s);
void cuda_conv_bwd_w(float *dw, const float *dy, const BnLoad *dybn, const float *x, int N, int H, int W,
                     int Ci, int Co, int K, int s);
void cuda_dw_fwd(float *y, const BnStats *st, const float *x, const BnLoad *xbn, const float *w, int ldr,
                 int ldc, int N, int H, int W, int C, int K, int s);
/* inference: dw_fwd then bn_fwd_eval (+ReLU6) in one kernel */
void cuda_dw_bn_eval(float *y, const float *x, const float *w, int ldr, int ldc,
                     const float *gamma, const float *beta, const float *run_mean,
                     const float *run_var, int N, int H, int W, int C, int K, int s, int relu6);
void cuda_dw_bwd_x(float *dx, const float *dy, const BnLoad *dybn, const float *w, int ldr, int ldc, int N,
                   int H, int W, int C, int K, int s);
void cuda_dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const BnLoad *dybn, const float *x,
                   const BnLoad *xbn, int N, int H, int W, int C, int K, int s);

/* kernels.cu */
/* z [P,C]'s batchnorm statistics into st (one launch) */
void cuda_bn_stats(const BnStats *st, const float *z, int P, int C);
void cuda_bn_apply(float *y, const float *z, const BnLoad *zbn, const float *res, int P, int C);
void cuda_bn_bwd_sums(float *g, float *g_mean, float *gx_mean, float *dgamma, float *dbeta, const float *dy,
                      const float *z, const float *mean, const float *istd, const float *gamma,
                      const float *beta, int P, int C, int relu6);
void cuda_bn_fwd_train(float *y, float *mean, float *istd, float *run_mean, float *run_var,
                       const float *z, const float *res, const float *gamma, const float *beta, int P,
                       int C, float momentum, int relu6);
void cuda_bn_fwd_eval(float *y, const float *z, const float *gamma, const float *beta,
                      const float *run_mean, const float *run_var, int P, int C, int relu6);
/* gemm then bn_fwd_eval in place (the CPU fuses them; here two launches) */
void cuda_gemm_bn_eval(float *y, const float *x, int ldx, const float *w, int ldw,
                       const float *gamma, const float *beta, const float *run_mean,
                       const float *run_var, int M, int N, int K, int relu6);
void cuda_bn_bwd(float *dz, float *dgamma, float *dbeta, const float *dy, const float *z,
                 const float *mean, const float *istd, const float *gamma, const float *beta,
                 int P, int C, int relu6);
void cuda_add(float *y, const float *x, size_t n);
void cuda_gap_fwd(float *y, const float *x, const BnLoad *xbn, int N, int HW, int C);
void cuda_gap_bwd(float *dx, const float *dy, int N, int HW, int C);
void cuda_bias_fwd(float *y, const float *b, int M, int N);
void cuda_bias_bwd(float *db, const float *dy, int M, int N);
double cuda_xent(float *dlogits, int *correct, const float *logits, const int32_t *label,
                 int N, int L);
double cuda_l1(float *dpred, const float *pred, const float *target, int N);
void cuda_xent_acc(float *dlogits, double *acc, const float *logits, const int32_t *label, int N, int L);
void cuda_l1_acc(float *dpred, double *acc, const float *pred, const float *target, int N);
double cuda_entropy(float *dlogits, const float *logits, float weight, int N, int L);
double cuda_mmd(float *dx, const float *x, int N, int S, int C, float weight);
void cuda_l2norm_fwd(float *y, float *norm, const float *x, int N, int D);
void cuda_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int N, int D);
double cuda_ntxent(float *de, int *correct, const float *e, int N, int D, float tau);
void cuda_sgd(float *w, float *m, const float *g, const float *decay, size_t n, const float *lr, float mu, float wd);

#endif
