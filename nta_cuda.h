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

/* conv.cu */
void cuda_conv_fwd(float *y, const float *x, const float *w, int N, int H, int W, int Ci,
                   int Co, int K, int s);
void cuda_conv_bwd_w(float *dw, const float *dy, const float *x, int N, int H, int W, int Ci,
                     int Co, int K, int s);
void cuda_dw_fwd(float *y, const float *x, const BnLoad *xbn, const float *w, int ldr, int ldc, int N,
                 int H, int W, int C, int K, int s);
/* inference: dw_fwd then bn_fwd_eval (+ReLU6) in one kernel */
void cuda_dw_bn_eval(float *y, const float *x, const float *w, int ldr, int ldc,
                     const float *gamma, const float *beta, const float *run_mean,
                     const float *run_var, int N, int H, int W, int C, int K, int s, int relu6);
void cuda_dw_bwd_x(float *dx, const float *dy, const float *w, int ldr, int ldc, int N, int H,
                   int W, int C, int K, int s);
void cuda_dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const float *x, const BnLoad *xbn, int N,
                   int H, int W, int C, int K, int s);

/* kernels.cu */
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
void cuda_gap_fwd(float *y, const float *x, int N, int HW, int C);
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
