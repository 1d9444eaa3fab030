/* gemm.cu: C[M,N] = alpha op(A) op(B) + beta C on the GPU, row-major with
 * leading dimensions, the Backend's gemm (nta.h).
 *
 *   SIMT path (every device, and the emulator the tests run on): a block of
 *   256 threads computes a 64x64 tile of C; the K dimension is walked in
 *   slices of 16 staged in shared memory (the next slice is loaded into
 *   registers while the current one is multiplied); each thread keeps a 4x4
 *   register tile at a stride of 16 rows/columns (conflict-free reads).
 *   TF32 path (nvcc only, sm_80+, off unless asked for): the same tiling fed
 *   to tensor cores through wmma m16n16k8 fragments, fp32 accumulation.
 *
 * Small C with long K (the weight gradients, [Ci,Co] from P = N*H*W rows)
 * would leave the GPU idle, so K is split: block z computes the product of
 * its slice of K into a scratch buffer part [splits, M, N], and the last
 * block of each tile to finish (cuda_last_block) sums the slices in order
 * (deterministic: no atomics) and applies alpha and beta, in the same
 * launch. beta == 0 never reads C.
 * gemm_bn (training with fused batchnorms, nta.h): either operand may be
 * read through a batchnorm (a BnLoad, applied as each element is fetched),
 * and the epilogue may compute the batchnorm statistics of C's columns: each
 * 64-row tile is a chunk (its column means, then the sums around them, from
 * the registers), and the last block of each column of tiles combines them
 * (bn_stats_finish). The TF32 path takes the loads, but splits K with a
 * second kernel and computes statistics with a separate launch.
 * Shapes: A is [M,K] (lda) or, with ta, [K,M]; B is [K,N] (ldb) or, with tb, [N,K].
 */
#include "nta_cuda.h"

#if defined(__CUDACC__)
#include <mma.h>
#endif

enum { TM = 64, TN = 64, TK = 16, GEMM_THREADS = 256 };

/* op(A)[m,k] and op(B)[k,n] from global memory, read through the batchnorm
 * l (a no-op without one), whose channel is the stored column */
template <int T> __device__ __forceinline__ float load_op(const float *X, int ld, int r, int c, const BnLoad &l)
{
    size_t i = T ? (size_t)c * ld + r : (size_t)r * ld + c;
    return bn_load_at(l, X[i], T ? r : c, i);
}

/* A gemm's arguments (one launch's): C = alpha op(A) op(B) + beta C; part
 * [splits, M, N] when K is split; st.mean set: C's statistics, chunk sums in
 * stpart [3, tiles along M, N] */
struct GemmArgs {
    int M, N, K, kchunk;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    BnLoad la, lb;
    float *C, *part;
    double *stpart;
    BnStats st;
};

/* Tickets of the last-block steps: per tile (split K) and per column of
 * tiles (statistics) */
enum { GEMM_TICKETS = 256 };
static __device__ unsigned gemm_split_ticket[GEMM_TICKETS];
static __device__ unsigned gemm_stats_ticket[GEMM_TICKETS];

/* Fetch this thread's 4 elements of the 64x16 slice of op(A) at (m0, k0) and
 * of the 16x64 slice of op(B) at (k0, n0), zero outside the matrices. The
 * element order follows memory: along k when A is [M,K], along m when it is
 * [K,M] (and the same for B), so a warp reads consecutive addresses. */
template <int TA, int TB>
__device__ __forceinline__ void fetch_slices(float ra[4], float rb[4], const GemmArgs &g, int kend,
                                             int m0, int n0, int k0, int t)
{
    UNROLL
    for (int q = 0; q < 4; q++) {
        int i = t + q * GEMM_THREADS;
        int m = TA ? i % TM : i / TK, k = TA ? i / TM : i % TK;
        ra[q] = m0 + m < g.M && k0 + k < kend ? load_op<TA>(g.A, g.lda, m0 + m, k0 + k, g.la) : 0.0f;
        int n = TB ? i / TK : i % TN, kb = TB ? i % TK : i / TN;
        rb[q] = k0 + kb < kend && n0 + n < g.N ? load_op<TB>(g.B, g.ldb, k0 + kb, n0 + n, g.lb) : 0.0f;
    }
}

/* Store the fetched elements as As[k][m] and Bs[k][n]. */
template <int TA, int TB>
__device__ __forceinline__ void store_slices(float (*As)[TM + 1], float (*Bs)[TN + 1],
                                             const float ra[4], const float rb[4], int t)
{
    UNROLL
    for (int q = 0; q < 4; q++) {
        int i = t + q * GEMM_THREADS;
        int m = TA ? i % TM : i / TK, k = TA ? i / TM : i % TK;
        As[k][m] = ra[q];
        int n = TB ? i / TK : i % TN, kb = TB ? i % TK : i / TN;
        Bs[kb][n] = rb[q];
    }
}

/* The statistics epilogue of one 64x64 tile, v [4][4] this thread's values
 * of C (rows ty + 16i, columns tx + 16j; those outside C are ignored): the
 * tile's rows are chunk blockIdx.x of its column of tiles. */
__device__ void gemm_stats_epilogue(const GemmArgs &g, const float v[4][4], int m0, int n0, int t)
{
    __shared__ float s0[16][TN + 1];                     /* [ty][column in the tile] */
    __shared__ double s1[16][TN + 1], s2[16][TN + 1];
    __shared__ float ctr[TN];                            /* the tile's column means */
    int tx = t % 16, ty = t / 16, rows = min(TM, g.M - m0);
    for (int j = 0; j < 4; j++) {
        float a = 0.0f;
        for (int i = 0; i < 4; i++)
            if (ty + 16 * i < rows) a += v[i][j];
        s0[ty][tx + 16 * j] = a;
    }
    __syncthreads();
    if (t < TN) {
        float a = 0.0f;
        for (int y = 0; y < 16; y++) a += s0[y][t];
        ctr[t] = a / rows;
    }
    __syncthreads();
    for (int j = 0; j < 4; j++) {
        float ck = ctr[tx + 16 * j];
        double a = 0, b = 0;
        for (int i = 0; i < 4; i++)
            if (ty + 16 * i < rows) {
                double d = (double)v[i][j] - ck;
                a += d;
                b += d * d;
            }
        s1[ty][tx + 16 * j] = a, s2[ty][tx + 16 * j] = b;
    }
    __syncthreads();
    int n = n0 + t, chunks = gridDim.x;
    size_t plane = (size_t)chunks * g.N, at = (size_t)blockIdx.x * g.N + n;
    if (t < TN && n < g.N) {
        double d = 0, q = 0;
        for (int y = 0; y < 16; y++) d += s1[y][t], q += s2[y][t];
        g.stpart[at] = ctr[t], g.stpart[plane + at] = d, g.stpart[2 * plane + at] = q;
    }
    if (!cuda_last_block(&gemm_stats_ticket[blockIdx.y], chunks) || t >= TN || n >= g.N) return;
    bn_stats_finish(g.st, g.stpart, n, g.N, g.M, chunks, TM);
}

/* One 64x64 tile of C per block, slice z of K.
 * grid: x = tiles along M, y = tiles along N, z = splits of K (kchunk each).
 * One split: C = alpha acc + beta C. Several: part[z][M][N] = acc, and the
 * last block of the tile adds the parts in order z = 0, 1, ... for C.
 * Then, if asked, C's statistics (gemm_stats_epilogue). */
template <int TA, int TB>
__global__ void __launch_bounds__(GEMM_THREADS)
sgemm_kernel(GemmArgs g)
{
    __shared__ float As[TK][TM + 1];   /* As[k][m] = op(A)[m0+m, k0+k] */
    __shared__ float Bs[TK][TN + 1];   /* Bs[k][n] = op(B)[k0+k, n0+n] */
    int t = threadIdx.x, tx = t % 16, ty = t / 16;
    int m0 = blockIdx.x * TM, n0 = blockIdx.y * TN;
    int kbeg = blockIdx.z * g.kchunk, kend = min(g.K, kbeg + g.kchunk);
    float acc[4][4] = {{0.0f}}, ra[4], rb[4];

    fetch_slices<TA, TB>(ra, rb, g, kend, m0, n0, kbeg, t);
    for (int k0 = kbeg; k0 < kend; k0 += TK) {
        store_slices<TA, TB>(As, Bs, ra, rb, t);
        __syncthreads();
        if (k0 + TK < kend)   /* the next slice travels while this one is used */
            fetch_slices<TA, TB>(ra, rb, g, kend, m0, n0, k0 + TK, t);
UNROLL
        for (int k = 0; k < TK; k++) {
            float a[4], b[4];
UNROLL
            for (int i = 0; i < 4; i++) a[i] = As[k][ty + 16 * i];
UNROLL
            for (int j = 0; j < 4; j++) b[j] = Bs[k][tx + 16 * j];
UNROLL
            for (int i = 0; i < 4; i++)
UNROLL
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    size_t MN = (size_t)g.M * g.N;
    if (gridDim.z > 1) {   /* split K: the last block of the tile adds the parts */
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
                if (m < g.M && n < g.N) g.part[blockIdx.z * MN + (size_t)m * g.N + n] = acc[i][j];
            }
        if (!cuda_last_block(&gemm_split_ticket[blockIdx.y * gridDim.x + blockIdx.x], gridDim.z)) return;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
                if (m >= g.M || n >= g.N) continue;
                float s = 0.0f;
                for (unsigned z = 0; z < gridDim.z; z++) s += __ldcg(&g.part[z * MN + (size_t)m * g.N + n]);
                acc[i][j] = s;
            }
    }
    float v[4][4];   /* C's values, for the statistics */
    for (int i = 0; i < 4; i++) {
        int m = m0 + ty + 16 * i;
        for (int j = 0; j < 4; j++) {
            int n = n0 + tx + 16 * j;
            v[i][j] = 0.0f;
            if (m >= g.M || n >= g.N) continue;
            float *c = g.C + (size_t)m * g.ldc + n;
            v[i][j] = g.beta == 0.0f ? g.alpha * acc[i][j] : g.alpha * acc[i][j] + g.beta * *c;
            *c = v[i][j];
        }
    }
    if (g.st.mean) gemm_stats_epilogue(g, v, m0, n0, t);
}

/* ------------------------------------------------------ TF32 tensor cores */

#if defined(__CUDACC__)
/* C[M,N] = alpha * sum over z of part[z] + beta C, slices summed in order
 * (the TF32 path's split K) */
__global__ void splitk_reduce_kernel(float *C, int ldc, const float *__restrict__ part,
                                     int splits, int M, int N, float alpha, float beta)
{
    size_t MN = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < MN;
         i += (size_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int z = 0; z < splits; z++) s += part[z * MN + i];
        float *c = C + (i / N) * ldc + i % N;
        *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
    }
}

using namespace nvcuda;
enum { TF_THREADS = 128, TF_LDA = TK + 4, TF_LDB = TN + 4 };

/* The 64x64 tile as 4 warps of 32x32, each 2x2 wmma fragments of 16x16. */
template <int TA, int TB>
__global__ void __launch_bounds__(TF_THREADS)
tf32_kernel(GemmArgs g)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    int M = g.M, N = g.N, K = g.K, kchunk = g.kchunk, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
    float alpha = g.alpha, beta = g.beta, *C = g.C, *part = g.part;
    const float *A = g.A, *B = g.B;
    __shared__ __align__(32) float As[TM][TF_LDA];   /* As[m][k], rounded to tf32 */
    __shared__ __align__(32) float Bs[TK][TF_LDB];   /* Bs[k][n] */
    __shared__ __align__(32) float Cs[TM][TF_LDB];   /* the accumulators, for the epilogue */
    int t = threadIdx.x, warp = t / 32, wm = warp / 2, wn = warp % 2;
    int m0 = blockIdx.x * TM, n0 = blockIdx.y * TN;
    int kbeg = blockIdx.z * kchunk, kend = min(K, kbeg + kchunk);
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = kbeg; k0 < kend; k0 += TK) {
        for (int i = t; i < TM * TK; i += TF_THREADS) {
            int m = TA ? i % TM : i / TK, k = TA ? i / TM : i % TK;
            float v = m0 + m < M && k0 + k < kend ? load_op<TA>(A, lda, m0 + m, k0 + k, g.la) : 0.0f;
            As[m][k] = wmma::__float_to_tf32(v);
            int n = TB ? i / TK : i % TN, kb = TB ? i % TK : i / TN;
            v = k0 + kb < kend && n0 + n < N ? load_op<TB>(B, ldb, k0 + kb, n0 + n, g.lb) : 0.0f;
            Bs[kb][n] = wmma::__float_to_tf32(v);
        }
        __syncthreads();
        for (int kk = 0; kk < TK; kk += 8) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][kk], TF_LDA);
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], TF_LDB);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], TF_LDB,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int i = t; i < TM * TN; i += TF_THREADS) {
        int m = m0 + i / TN, n = n0 + i % TN;
        if (m >= M || n >= N) continue;
        float v = Cs[i / TN][i % TN];
        if (part) {
            part[((size_t)blockIdx.z * M + m) * N + n] = v;
        } else {
            float *c = C + (size_t)m * ldc + n;
            *c = beta == 0.0f ? alpha * v : alpha * v + beta * *c;
        }
    }
#endif
}
#endif

/* --------------------------------------------------------------- launcher */

static int tf32_on = -1;   /* -1: not yet decided (NTA_TF32 in the environment) */

int cuda_gemm_tf32_supported(void)
{
#if defined(__CUDACC__)
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return 0;
    return major >= 8;
#else
    return 0;   /* the emulator has no tensor cores */
#endif
}

extern "C" int cuda_set_tf32(int on)
{
    tf32_on = on && cuda_gemm_tf32_supported();
    return tf32_on;
}

typedef void (*GemmKernel)(GemmArgs);

/* C = alpha op(A) op(B) + beta C, A and B read through la, lb (NULL: as
 * stored); st: C's batchnorm statistics too (ldc = N) */
static void gemm_run(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const BnLoad *la,
                     const float *B, int ldb, const BnLoad *lb, float beta, float *C, int ldc, const BnStats *st)
{
    static const GemmKernel simt[2][2] = {{sgemm_kernel<0, 0>, sgemm_kernel<0, 1>},
                                          {sgemm_kernel<1, 0>, sgemm_kernel<1, 1>}};
    if (M <= 0 || N <= 0) return;
    if (tf32_on < 0) {
        const char *e = getenv("NTA_TF32");
        cuda_set_tf32(e && *e && *e != '0');
    }
    GemmKernel kernel = simt[!!ta][!!tb];
    int threads = GEMM_THREADS;
#if defined(__CUDACC__)
    static const GemmKernel tf32[2][2] = {{tf32_kernel<0, 0>, tf32_kernel<0, 1>},
                                          {tf32_kernel<1, 0>, tf32_kernel<1, 1>}};
    if (tf32_on) kernel = tf32[!!ta][!!tb], threads = TF_THREADS;
#endif
    /* Split K when the tiles of C alone give fewer than 256 blocks; each
     * split keeps at least 256 of K. The choice depends on the shape only. */
    unsigned gm = (M + TM - 1) / TM, gn = (N + TN - 1) / TN;
    long tiles = (long)gm * gn;
    int splits = 1, kchunk = K > 0 ? K : 1;
    if (tiles < 256 && K >= 512) {
        long by_tiles = (256 + tiles - 1) / tiles, by_k = K / 256;
        splits = (int)(by_tiles < by_k ? by_tiles : by_k);
        if (splits > 64) splits = 64;
        kchunk = (K + splits - 1) / splits;
        kchunk = (kchunk + TK - 1) / TK * TK;
        splits = (K + kchunk - 1) / kchunk;
    }
    if (st && gn > GEMM_TICKETS) nta_die("internal: gemm_bn statistics over %d columns (at most %d)", N, GEMM_TICKETS * TN);
    GemmArgs g = {M, N, K, kchunk, alpha, beta, A, B, lda, ldb, ldc, la ? *la : BnLoad{}, lb ? *lb : BnLoad{},
                  C, NULL, NULL, st ? *st : BnStats{}};
    size_t npart = splits > 1 ? ((size_t)splits * M * N + 1) / 2 * 2 : 0, nst = st ? 3 * (size_t)gm * N : 0;
    if (npart + nst) {   /* the split parts (floats, an even count), then the statistics' (doubles) */
        float *buf = (float *)cuda_scratch(npart * sizeof(float) + nst * sizeof(double));
        g.part = npart ? buf : NULL, g.stpart = nst ? (double *)(buf + npart) : NULL;
    }
    cudaStream_t st_ = cuda_stream();
    SIMT_LAUNCH(kernel, dim3(gm, gn, splits), threads, 0, st_, g);
    LAUNCH_CHECK();
#if defined(__CUDACC__)
    if (!tf32_on) return;
    /* the TF32 kernel leaves the split sum and the statistics to more launches */
    if (splits > 1) {
        SIMT_LAUNCH(splitk_reduce_kernel, cuda_grid((size_t)M * N), CUDA_THREADS, 0, st_, C, ldc, g.part,
                    splits, M, N, alpha, beta);
        LAUNCH_CHECK();
    }
    if (st) cuda_bn_stats(st, C, M, N);
#endif
}

void cuda_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_run(ta, tb, M, N, K, alpha, A, lda, NULL, B, ldb, NULL, beta, C, ldc, NULL);
}

void cuda_gemm_bn(int ta, int tb, int M, int N, int K, const float *A, int lda, const BnLoad *abn,
                  const float *B, int ldb, const BnLoad *bbn, float beta, float *C, int ldc, const BnStats *st)
{
    if (st && ldc != N) nta_die("internal: gemm_bn statistics of a C with ldc %d != N %d", ldc, N);
    gemm_run(ta, tb, M, N, K, 1.0f, A, lda, abn, B, ldb, bbn, beta, C, ldc, st);
}
