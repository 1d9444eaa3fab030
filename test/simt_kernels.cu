/* test/simt_kernels.cu: sample kernels for test/test_simt.cpp, in plain CUDA C
 * with simt.h's two macros. The same file builds with nvcc (-arch=sm_90 -c)
 * and, through the emulator, with g++ -x c++. Each skt_* function launches one
 * kernel on device pointers and returns cudaGetLastError(). Some kernels are
 * wrong on purpose (skt_shift without its barrier, skt_barrier_mismatch,
 * skt_shuffle_deadlock, skt_write_past_end): the emulator must catch them.
 *
 * Shapes: A [M,K], B [K,N], C [M,N] row-major.
 */
#include "simt.h"

/* ------------------------------------------------------------ tiled SGEMM */

#define SKT_TM 64   /* rows of C per block */
#define SKT_TN 64   /* columns of C per block */
#define SKT_TK 16   /* depth of one shared-memory tile */

/* 256 threads as 16x16, each computing a 4x4 grid of C at a stride of 16. */
__global__ void __launch_bounds__(256)
skt_sgemm_kernel(float *C, const float *__restrict__ A, const float *__restrict__ B,
                 int M, int N, int K)
{
    __shared__ float As[SKT_TK][SKT_TM];  /* As[k][m] = A[m0+m, k0+k] */
    __shared__ float Bs[SKT_TK][SKT_TN];  /* Bs[k][n] = B[k0+k, n0+n] */
    int t = threadIdx.x, tx = t % 16, ty = t / 16;
    int m0 = blockIdx.y * SKT_TM, n0 = blockIdx.x * SKT_TN;
    float acc[4][4] = {{0.0f}};
    for (int k0 = 0; k0 < K; k0 += SKT_TK) {
        for (int i = t; i < SKT_TM * SKT_TK; i += 256) {
            int m = i / SKT_TK, k = i % SKT_TK;
            As[k][m] = m0 + m < M && k0 + k < K ? A[(size_t)(m0 + m) * K + k0 + k] : 0.0f;
        }
        for (int i = t; i < SKT_TK * SKT_TN; i += 256) {
            int k = i / SKT_TN, n = i % SKT_TN;
            Bs[k][n] = k0 + k < K && n0 + n < N ? B[(size_t)(k0 + k) * N + n0 + n] : 0.0f;
        }
        __syncthreads();
        for (int k = 0; k < SKT_TK; k++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = As[k][ty + 16 * i];
            for (int j = 0; j < 4; j++) b[j] = Bs[k][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) C[(size_t)m * N + n] = acc[i][j];
        }
}

cudaError_t skt_sgemm(float *C, const float *A, const float *B, int M, int N, int K)
{
    dim3 grid((N + SKT_TN - 1) / SKT_TN, (M + SKT_TM - 1) / SKT_TM);
    SIMT_LAUNCH(skt_sgemm_kernel, grid, 256, 0, 0, C, A, B, M, N, K);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ reductions */

/* out [gridDim.x] = per-block sums of in [n] (grid-stride), by warp shuffles
 * down to lane 0, then one warp over the warps' sums. */
__global__ void skt_reduce_down_kernel(float *out, const float *in, int n)
{
    __shared__ float warp_sum[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        v += in[i];
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) warp_sum[warp] = v;
    __syncthreads();
    if (warp != 0) return;
    v = lane < (int)(blockDim.x / 32) ? warp_sum[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) out[blockIdx.x] = v;
}

/* The same with butterfly (xor) shuffles: every lane ends with the sum. The
 * block's sum is written by its last thread. */
__global__ void skt_reduce_xor_kernel(float *out, const float *in, int n)
{
    __shared__ float warp_sum[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarp = blockDim.x / 32;
    float v = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        v += in[i];
    for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
    if (lane == 31) warp_sum[warp] = v;
    __syncthreads();
    v = lane < nwarp ? warp_sum[lane] : 0.0f;
    for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
    if (threadIdx.x == blockDim.x - 1) out[blockIdx.x] = v;
}

cudaError_t skt_reduce(float *out, const float *in, int n, int blocks, int threads, int use_xor)
{
    if (use_xor) SIMT_LAUNCH(skt_reduce_xor_kernel, blocks, threads, 0, 0, out, in, n);
    else SIMT_LAUNCH(skt_reduce_down_kernel, blocks, threads, 0, 0, out, in, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ atomics, votes */

/* Every thread adds 1 to bin (global thread index % nbins) and 0.5 to total. */
__global__ void skt_atomic_kernel(float *bins, int nbins, float *total)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&bins[i % nbins], 1.0f);
    atomicAdd(total, 0.5f);
}

cudaError_t skt_atomic(float *bins, int nbins, float *total, int blocks, int threads)
{
    SIMT_LAUNCH(skt_atomic_kernel, blocks, threads, 0, 0, bins, nbins, total);
    return cudaGetLastError();
}

/* out [blockDim.x, 6]: per thread: ballot(lane odd), any(lane == 5), all(lane < 32),
 * shfl_up by 1, shfl idx of lane 3 within 16-lane segments, __syncthreads_count
 * of even threads. */
__global__ void skt_votes_kernel(int *out)
{
    int t = threadIdx.x, lane = t % 32;
    int *o = out + 6 * t;
    o[0] = (int)__ballot_sync(0xffffffffu, lane & 1);
    o[1] = __any_sync(0xffffffffu, lane == 5);
    o[2] = __all_sync(0xffffffffu, lane < 32);
    o[3] = __shfl_up_sync(0xffffffffu, t, 1);
    o[4] = __shfl_sync(0xffffffffu, t, 3, 16);
    __syncwarp();
    o[5] = __syncthreads_count(t % 2 == 0);
}

cudaError_t skt_votes(int *out, int threads)
{
    SIMT_LAUNCH(skt_votes_kernel, 1, threads, 0, 0, out);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ dynamic shared memory */

/* Each block reverses its blockDim.x elements of in [n] through dynamic shared
 * memory holding blockDim.x floats, then blockDim.x ints (the source index). */
__global__ void skt_reverse_kernel(float *out, const float *in, int n)
{
    SIMT_EXTERN_SHARED(float, smem);
    int *from = reinterpret_cast<int *>(smem + blockDim.x);
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    smem[t] = i < n ? in[i] : 0.0f;
    from[t] = i;
    __syncthreads();
    int r = blockDim.x - 1 - t;
    int j = blockIdx.x * blockDim.x + r;
    if (j < n && from[t] == i) out[j] = smem[t];
}

cudaError_t skt_reverse(float *out, const float *in, int n, int threads)
{
    size_t shmem = threads * (sizeof(float) + sizeof(int));
    SIMT_LAUNCH(skt_reverse_kernel, (n + threads - 1) / threads, threads, shmem, 0, out, in, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ indices */

/* out [blocks*threads, 4]: per thread (linear over the grid and the block):
 * blockIdx packed, threadIdx packed, gridDim packed, blockDim packed
 * (packed: x + 100*y + 10000*z). */
__global__ void skt_ids_kernel(int *out)
{
    int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int *o = out + 4 * (b * (blockDim.x * blockDim.y * blockDim.z) + t);
    o[0] = blockIdx.x + 100 * blockIdx.y + 10000 * blockIdx.z;
    o[1] = threadIdx.x + 100 * threadIdx.y + 10000 * threadIdx.z;
    o[2] = gridDim.x + 100 * gridDim.y + 10000 * gridDim.z;
    o[3] = blockDim.x + 100 * blockDim.y + 10000 * blockDim.z;
}

cudaError_t skt_ids(int *out, dim3 grid, dim3 block)
{
    SIMT_LAUNCH(skt_ids_kernel, grid, block, 0, 0, out);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ planted bugs */

/* out[i] = in[i-1] within each block (0 for a block's first thread), through
 * dynamic shared memory. With sync == 0 the barrier between the write and the
 * read of another thread's element is missing: a race. */
__global__ void skt_shift_kernel(float *out, const float *in, int n, int sync)
{
    SIMT_EXTERN_SHARED(float, s);
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    s[t] = i < n ? in[i] : 0.0f;
    if (sync) __syncthreads();
    if (i < n) out[i] = t > 0 ? s[t - 1] : 0.0f;
}

cudaError_t skt_shift(float *out, const float *in, int n, int threads, int sync)
{
    SIMT_LAUNCH(skt_shift_kernel, (n + threads - 1) / threads, threads,
                threads * sizeof(float), 0, out, in, n, sync);
    return cudaGetLastError();
}

/* Half of the block waits at one __syncthreads, half at another. */
__global__ void skt_barrier_mismatch_kernel(float *out)
{
    if (threadIdx.x < blockDim.x / 2) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        out[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

cudaError_t skt_barrier_mismatch(float *out, int threads)
{
    SIMT_LAUNCH(skt_barrier_mismatch_kernel, 1, threads, 0, 0, out);
    return cudaGetLastError();
}

/* Lanes 0..15 shuffle with a full mask while lanes 16..31 go on to a barrier. */
__global__ void skt_shuffle_deadlock_kernel(float *out)
{
    float v = (float)threadIdx.x;
    if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}

cudaError_t skt_shuffle_deadlock(float *out, int threads)
{
    SIMT_LAUNCH(skt_shuffle_deadlock_kernel, 1, threads, 0, 0, out);
    return cudaGetLastError();
}

/* Fills p [n] with 1 and, by mistake, writes p[n] as well. */
__global__ void skt_write_past_end_kernel(float *p, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) p[i] = 1.0f;
}

cudaError_t skt_write_past_end(float *p, int n)
{
    SIMT_LAUNCH(skt_write_past_end_kernel, (n + 1 + 63) / 64, 64, 0, 0, p, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ stream capture */

/* y [n] = a * y + x, on stream s */
__global__ void skt_axpy_kernel(float *y, const float *x, float a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * y[i] + x[i];
}

cudaError_t skt_axpy(float *y, const float *x, float a, int n, cudaStream_t s)
{
    SIMT_LAUNCH(skt_axpy_kernel, (n + 63) / 64, 64, 0, s, y, x, a, n);
    return cudaGetLastError();
}

/* ------------------------------------------------------------ switch cost */

/* iters barriers in a row; out[0] written so the loop is not empty. */
__global__ void skt_barriers_kernel(int *out, int iters)
{
    for (int i = 0; i < iters; i++) __syncthreads();
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = iters;
}

cudaError_t skt_barriers(int *out, int blocks, int threads, int iters)
{
    SIMT_LAUNCH(skt_barriers_kernel, blocks, threads, 0, 0, out, iters);
    return cudaGetLastError();
}
