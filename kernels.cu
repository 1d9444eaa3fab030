/* kernels.cu: the Backend's ops (nta.h) other than gemm (gemm.cu) and the
 * convs (conv.cu), on the GPU; cpu.c is the reference. Its kernels:
 *   batchnorm, train     bn_stats_kernel (statistics and running averages),
 *                        bn_apply_kernel (+ ReLU6; any BnLoad, forward or backward)
 *   batchnorm, eval      bn_eval_kernel (+ ReLU6; gemm_bn_eval is gemm then this)
 *   batchnorm, backward  bn_bwd_sums_kernel (masked by ReLU6; sums and means),
 *                        then bn_apply_kernel with a backward BnLoad
 *   residual add         add_kernel
 *   global average pool  gap_fwd_kernel, gap_bwd_kernel
 *   bias                 bias_fwd_kernel, bias_bwd_kernel
 *   losses               xent_kernel (softmax cross-entropy), l1_kernel (each
 *                        adds its rows into a device accumulator: no wait),
 *                        entropy_kernel, mmd_kernel
 *   self-supervised      l2norm_fwd_kernel, l2norm_bwd_kernel (unit rows),
 *                        ntxent_lse_kernel, ntxent_grad_kernel (SimCLR's loss)
 *   SGD step             sgd_kernel
 *
 * Column reductions over P rows (batchnorm statistics and gradients) are
 * deterministic: a block of 32x8 threads sums one range of rows ("chunk") for
 * 32 channels, its 8 row lanes are added in order through shared memory into
 * a scratch row part[chunk][C], and the last block of the launch to finish
 * (cuda_last_block) adds the chunks in order in double, one thread per
 * channel. The number of chunks depends on P only.
 * Elementwise kernels are grid-stride loops over at most 1024 blocks.
 * Shapes: see nta.h.
 */
#include "nta_cuda.h"

#include <math.h>

/* --------------------------------------------------------------- batchnorm */

/* Tickets of the last-block reductions (cuda_last_block): one per column of
 * blocks (32 channels), so at most BN_GROUPS * 32 channels. */
enum { BN_GROUPS = 256 };
static __device__ unsigned bn_ticket[BN_GROUPS];

/* Batchnorm statistics in one launch (see bn_stats_finish, nta_cuda.h). Each
 * block, for its 32 channels and its chunk of rows: pass 1 the chunk's mean
 * c_k (in float), pass 2 around it the sums d_k = sum (z - c_k) and q_k = sum
 * (z - c_k)^2, into part [3, chunks, C]; the last block of each column
 * combines the chunks. grid (ceil(C/32), chunks), block (32, 8). */
__global__ void bn_stats_kernel(BnStats st, double *part, const float *__restrict__ z, int P, int C)
{
    int c = blockIdx.x * BN_TX + threadIdx.x, chunks = gridDim.y, lo, hi;
    bn_chunk(P, blockIdx.y, chunks, &lo, &hi);
    float s = 0.0f;
    for (int r = lo + threadIdx.y; c < C && r < hi; r += BN_TY) s += z[(size_t)r * C + c];
    bn_chunk_moments(part, z, s, c, C, lo, hi);
    if (!cuda_last_block(&bn_ticket[blockIdx.x], chunks) || threadIdx.y != 0 || c >= C) return;
    bn_stats_finish(st, part, c, C, P, chunks, 0);
}

/* y [P,C] = z read through l (nta_cuda.h's chan_load: forward, (z - mean)
 * gamma istd + beta then ReLU6 if asked; backward, the gradient's last
 * step), then + res [P,C] when not NULL. y may be z. */
__global__ void bn_apply_kernel(float *y, const float *z, BnLoad l, const float *res, size_t n, int C)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = bn_load_at(l, z[i], (int)(i % C), i);
        if (res) v += res[i];
        y[i] = v;
    }
}

/* z's batchnorm statistics into st (one launch; gemm_bn's TF32 path) */
void cuda_bn_stats(const BnStats *st, const float *z, int P, int C)
{
    if (P <= 0 || C <= 0) return;
    int chunks = bn_chunks(P), groups = (C + BN_TX - 1) / BN_TX;
    if (groups > BN_GROUPS) nta_die("internal: batchnorm over %d channels (the CUDA backend takes %d)", C, BN_GROUPS * BN_TX);
    double *part = (double *)cuda_scratch(3 * (size_t)chunks * C * sizeof(double));
    SIMT_LAUNCH(bn_stats_kernel, dim3(groups, chunks), dim3(BN_TX, BN_TY), 0, cuda_stream(), *st, part, z, P, C);
    LAUNCH_CHECK();
}

void cuda_bn_apply(float *y, const float *z, const BnLoad *zbn, const float *res, int P, int C)
{
    size_t n = (size_t)P * C;
    if (!n) return;
    SIMT_LAUNCH(bn_apply_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), y, z, *zbn, res, n, C);
    LAUNCH_CHECK();
}

void cuda_bn_fwd_train(float *y, float *mean, float *istd, float *run_mean, float *run_var,
                       const float *z, const float *res, const float *gamma, const float *beta, int P,
                       int C, float momentum, int relu6)
{
    BnStats st = {mean, istd, run_mean, run_var, momentum};
    cuda_bn_stats(&st, z, P, C);
    if (!y) return;   /* the statistics only */
    BnLoad l = {mean, istd, gamma, beta, relu6, NULL, NULL, NULL};
    cuda_bn_apply(y, z, &l, res, P, C);
}

/* y = gamma (z - run_mean) / sqrt(run_var + eps) + beta, then ReLU6 if asked */
__global__ void bn_eval_kernel(float *y, const float *z,   /* z may be y (gemm_bn_eval) */
                               const float *__restrict__ gamma, const float *__restrict__ beta,
                               const float *__restrict__ run_mean,
                               const float *__restrict__ run_var, size_t n, int C, int relu6)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = bn_eval_at(z[i], (int)(i % C), gamma, beta, run_mean, run_var, relu6);
}

void cuda_bn_fwd_eval(float *y, const float *z, const float *gamma, const float *beta,
                      const float *run_mean, const float *run_var, int P, int C, int relu6)
{
    size_t n = (size_t)P * C;
    if (!n) return;
    SIMT_LAUNCH(bn_eval_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), y, z, gamma, beta,
                run_mean, run_var, n, C, relu6);
    LAUNCH_CHECK();
}

/* Inference: the pointwise conv, then its batchnorm in place over the output */
void cuda_gemm_bn_eval(float *y, const float *x, int ldx, const float *w, int ldw,
                       const float *gamma, const float *beta, const float *run_mean,
                       const float *run_var, int M, int N, int K, int relu6)
{
    cuda_gemm(0, 0, M, N, K, 1.0f, x, ldx, w, ldw, 0.0f, y, N);
    cuda_bn_fwd_eval(y, y, gamma, beta, run_mean, run_var, M, N, relu6);
}

/* Backward pass 1, with xh = (z - mean) istd and g = dy masked by ReLU6
 * (0 < gamma xh + beta < 6): g written (g may be dy); per block the sums of g
 * and of g xh over its chunk into part1, part2 [chunks,C]; the last block of
 * each column adds the chunks in order in double: dbeta += sum g, dgamma +=
 * sum g xh, g_mean, gx_mean [C] = their means over P.
 * grid (ceil(C/32), chunks), block (32, 8). */
__global__ void bn_bwd_sums_kernel(float *dgamma, float *dbeta, float *g_mean, float *gx_mean, float *part1,
                                   float *part2, float *gout, const float *dy, const float *__restrict__ z,
                                   const float *__restrict__ mean, const float *__restrict__ istd,
                                   const float *__restrict__ gamma, const float *__restrict__ beta, int P,
                                   int C, int relu6)
{
    int c = blockIdx.x * BN_TX + threadIdx.x, chunks = gridDim.y, lo, hi;
    bn_chunk(P, blockIdx.y, chunks, &lo, &hi);
    float a1 = 0.0f, a2 = 0.0f;
    if (c < C) {
        float m = mean[c], is = istd[c], ga = gamma[c], be = beta[c];
        for (int r = lo + threadIdx.y; r < hi; r += BN_TY) {
            size_t i = (size_t)r * C + c;
            float xh = (z[i] - m) * is, g = dy[i];
            if (relu6) g = relu6_grad(ga * xh + be, g);
            gout[i] = g;
            a1 += g;
            a2 += g * xh;
        }
    }
    float t1 = bn_block_sum(a1), t2 = bn_block_sum(a2);
    if (threadIdx.y == 0 && c < C) {
        part1[(size_t)blockIdx.y * C + c] = t1;
        part2[(size_t)blockIdx.y * C + c] = t2;
    }
    if (!cuda_last_block(&bn_ticket[blockIdx.x], chunks) || threadIdx.y != 0 || c >= C) return;
    double b = 0, g = 0;
    for (int k = 0; k < chunks; k++)
        b += __ldcg(&part1[(size_t)k * C + c]), g += __ldcg(&part2[(size_t)k * C + c]);
    dbeta[c] += (float)b;
    dgamma[c] += (float)g;
    g_mean[c] = (float)(b / P);
    gx_mean[c] = (float)(g / P);
}

/* The sums kernel, its partial sums in part [2, chunks, C] */
static void bn_bwd_sums_run(float *part, float *g, float *g_mean, float *gx_mean, float *dgamma, float *dbeta,
                            const float *dy, const float *z, const float *mean, const float *istd,
                            const float *gamma, const float *beta, int P, int C, int relu6)
{
    dim3 grid((C + BN_TX - 1) / BN_TX, bn_chunks(P)), block(BN_TX, BN_TY);
    if (grid.x > BN_GROUPS) nta_die("internal: batchnorm over %d channels (the CUDA backend takes %d)", C, BN_GROUPS * BN_TX);
    SIMT_LAUNCH(bn_bwd_sums_kernel, grid, block, 0, cuda_stream(), dgamma, dbeta, g_mean, gx_mean, part,
                part + (size_t)grid.y * C, g, dy, z, mean, istd, gamma, beta, P, C, relu6);
    LAUNCH_CHECK();
}

void cuda_bn_bwd_sums(float *g, float *g_mean, float *gx_mean, float *dgamma, float *dbeta, const float *dy,
                      const float *z, const float *mean, const float *istd, const float *gamma,
                      const float *beta, int P, int C, int relu6)
{
    if (P <= 0 || C <= 0) return;
    float *part = (float *)cuda_scratch(2 * (size_t)bn_chunks(P) * C * sizeof(float));
    bn_bwd_sums_run(part, g, g_mean, gx_mean, dgamma, dbeta, dy, z, mean, istd, gamma, beta, P, C, relu6);
}

/* Both passes: the sums (the means kept in scratch), then dz = gamma istd (g
 * - mean(g) - xh mean(g xh)) in place over g (bn_apply_kernel with a
 * backward load) */
void cuda_bn_bwd(float *dz, float *dgamma, float *dbeta, const float *dy, const float *z,
                 const float *mean, const float *istd, const float *gamma, const float *beta,
                 int P, int C, int relu6)
{
    if (P <= 0 || C <= 0) return;
    size_t np = 2 * (size_t)bn_chunks(P) * C;
    float *part = (float *)cuda_scratch((np + 2 * (size_t)C) * sizeof(float)), *means = part + np;
    bn_bwd_sums_run(part, dz, means, means + C, dgamma, dbeta, dy, z, mean, istd, gamma, beta, P, C, relu6);
    BnLoad l = {mean, istd, gamma, NULL, 0, z, means, means + C};
    cuda_bn_apply(dz, dz, &l, NULL, P, C);
}

/* ------------------------------------------------------ small elementwise ops */

/* y [n] += x [n] */
__global__ void add_kernel(float *y, const float *__restrict__ x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void cuda_add(float *y, const float *x, size_t n)
{
    if (!n) return;
    SIMT_LAUNCH(add_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), y, x, n);
    LAUNCH_CHECK();
}

/* y [N,C] = mean over HW of x [N,HW,C] read through xbn: one thread per
 * (n, c), rows in order */
__global__ void gap_fwd_kernel(float *y, const float *__restrict__ x, BnLoad xbn, int N, int HW, int C)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N * C; i += gridDim.x * blockDim.x) {
        int n = i / C, c = i % C;
        size_t at = (size_t)n * HW * C + c;
        ChanLoad l = chan_load_of(xbn, c);
        float s = 0.0f;
        for (int p = 0; p < HW; p++) s += chan_load(l, x[at + (size_t)p * C], at + (size_t)p * C);
        y[i] = s / HW;
    }
}

void cuda_gap_fwd(float *y, const float *x, const BnLoad *xbn, int N, int HW, int C)
{
    if (N <= 0 || C <= 0) return;
    SIMT_LAUNCH(gap_fwd_kernel, cuda_grid((size_t)N * C), CUDA_THREADS, 0, cuda_stream(), y, x,
                xbn ? *xbn : BnLoad{}, N, HW, C);
    LAUNCH_CHECK();
}

/* dx [N,HW,C] = dy [N,C] / HW */
__global__ void gap_bwd_kernel(float *dx, const float *__restrict__ dy, int N, int HW, int C)
{
    size_t n = (size_t)N * HW * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dx[i] = dy[i / ((size_t)HW * C) * C + i % C] / HW;
}

void cuda_gap_bwd(float *dx, const float *dy, int N, int HW, int C)
{
    size_t n = (size_t)N * HW * C;
    if (!n) return;
    SIMT_LAUNCH(gap_bwd_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), dx, dy, N, HW, C);
    LAUNCH_CHECK();
}

/* y [M,N] += b [N] per row */
__global__ void bias_fwd_kernel(float *y, const float *__restrict__ b, size_t n, int N)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % N];
}

void cuda_bias_fwd(float *y, const float *b, int M, int N)
{
    size_t n = (size_t)M * N;
    if (!n) return;
    SIMT_LAUNCH(bias_fwd_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), y, b, n, N);
    LAUNCH_CHECK();
}

/* db [N] += column sums of dy [M,N]: one thread per column, rows in order */
__global__ void bias_bwd_kernel(float *db, const float *__restrict__ dy, int M, int N)
{
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < N; j += gridDim.x * blockDim.x) {
        float s = db[j];
        for (int i = 0; i < M; i++) s += dy[(size_t)i * N + j];
        db[j] = s;
    }
}

void cuda_bias_bwd(float *db, const float *dy, int M, int N)
{
    if (M <= 0 || N <= 0) return;
    SIMT_LAUNCH(bias_bwd_kernel, cuda_grid(N), CUDA_THREADS, 0, cuda_stream(), db, dy, M, N);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------------ cross-entropy */

/* Tickets of the losses' last-block sums (one loss kernel runs at a time). */
static __device__ unsigned loss_ticket;

/* The last block of a loss kernel: acc[0] += loss[0..N) and acc[1] +=
 * right[0..N) (right NULL: none), added in row order in double by one thread,
 * as the CPU adds its rows. acc NULL: nothing is kept. Every thread calls it. */
__device__ void loss_rows_sum(double *acc, double *loss, int *right, int N)
{
    if (!cuda_last_block(&loss_ticket, gridDim.x) || threadIdx.x != 0 || !acc) return;
    double sum = 0, r = 0;
    for (int n = 0; n < N; n++) sum += __ldcg(&loss[n]), r += right ? __ldcg(&right[n]) : 0;
    acc[0] += sum;
    acc[1] += r;
}

/* One warp per row of logits [N,L]: the arg-max (the first of equal maxima, as
 * the CPU), the softmax in double, dlogits [N,L] = (softmax - onehot) / N, and
 * per row loss [N] (double) and right [N] (0/1), summed into acc by the last
 * block (loss_rows_sum). */
__global__ void xent_kernel(float *dlogits, double *acc, double *loss, int *right,
                            const float *__restrict__ logits, const int32_t *__restrict__ label,
                            int N, int L)
{
    int lane = threadIdx.x % 32;
    int n = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n < N) {   /* the whole warp together */
        const float *z = logits + (size_t)n * L;
        float *d = dlogits + (size_t)n * L;
        int best = -1;
        float bv = 0.0f;
        for (int j = lane; j < L; j += 32)
            if (best < 0 || z[j] > bv) best = j, bv = z[j];
        for (int off = 16; off > 0; off /= 2) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            int ob = __shfl_xor_sync(0xffffffffu, best, off);
            if (ob >= 0 && (best < 0 || ov > bv || (ov == bv && ob < best))) best = ob, bv = ov;
        }
        double zmax = z[best], sum = 0;
        for (int j = lane; j < L; j += 32) sum += exp((double)z[j] - zmax);
        for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        int y = label[n];
        for (int j = lane; j < L; j += 32) {
            float v = (float)(exp((double)z[j] - zmax) / sum / N);
            if (j == y) v -= 1.0f / N;
            d[j] = v;
        }
        if (lane == 0) {
            loss[n] = log(sum) - ((double)z[y] - zmax);
            right[n] = best == y;
        }
    }
    loss_rows_sum(acc, loss, right, N);
}

void cuda_xent_acc(float *dlogits, double *acc, const float *logits, const int32_t *label, int N, int L)
{
    if (N <= 0 || L <= 0) return;
    double *loss = (double *)cuda_scratch((size_t)N * (sizeof(double) + sizeof(int)));
    int *right = (int *)(loss + N);
    SIMT_LAUNCH(xent_kernel, (N + 7) / 8, 256, 0, cuda_stream(), dlogits, acc, loss, right, logits, label,
                N, L);
    LAUNCH_CHECK();
}

/* A loss op that returns its sum: acc zeroed in scratch beside the op's own
 * scratch (`rows` bytes), the op, then a download (the host waits). */
static double *acc_scratch(size_t rows)
{
    size_t at = (rows + 7) / 8;   /* in doubles, past the op's bytes */
    double *acc = (double *)cuda_scratch((at + 2) * sizeof(double)) + at;
    CUDA_CHECK(cudaMemsetAsync(acc, 0, 2 * sizeof(double), cuda_stream()));
    return acc;
}

static double acc_read(const double *acc, int *correct)
{
    double host[2];
    CUDA_CHECK(cudaMemcpyAsync(host, acc, sizeof host, cudaMemcpyDeviceToHost, cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    if (correct) *correct = (int)host[1];
    return host[0];
}

double cuda_xent(float *dlogits, int *correct, const float *logits, const int32_t *label, int N,
                 int L)
{
    if (N <= 0 || L <= 0) {
        if (correct) *correct = 0;
        return 0;
    }
    double *acc = acc_scratch((size_t)N * (sizeof(double) + sizeof(int)));
    cuda_xent_acc(dlogits, acc, logits, label, N, L);
    return acc_read(acc, correct);
}

/* ------------------------------------------------- L1 and entropy losses */

/* Per row the loss [N] (double); dpred [N] = sign(pred - target) / N; the
 * last block adds the rows into acc (loss_rows_sum). */
__global__ void l1_kernel(float *dpred, double *acc, double *loss, const float *__restrict__ pred,
                          const float *__restrict__ target, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n < N) {
        float e = pred[n] - target[n];
        dpred[n] = (float)((e > 0) - (e < 0)) / N;
        loss[n] = fabsf(e);
    }
    loss_rows_sum(acc, loss, NULL, N);
}

/* One warp per row of logits [N,L]: the softmax entropy h [N] (double) and
 * dlogits = weight * -p (log p + h) / N, in double as the CPU. */
__global__ void entropy_kernel(float *dlogits, double *loss, const float *__restrict__ logits,
                               float weight, int N, int L)
{
    int lane = threadIdx.x % 32;
    int n = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n >= N) return;   /* the whole warp leaves together */
    const float *z = logits + (size_t)n * L;
    float *d = dlogits + (size_t)n * L;
    float zmax = z[0];
    for (int j = lane; j < L; j += 32) zmax = fmaxf(zmax, z[j]);
    for (int off = 16; off > 0; off /= 2) zmax = fmaxf(zmax, __shfl_xor_sync(0xffffffffu, zmax, off));
    double sum = 0, h = 0;
    for (int j = lane; j < L; j += 32) sum += exp((double)z[j] - zmax);
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    double lse = zmax + log(sum);
    for (int j = lane; j < L; j += 32) h -= exp(z[j] - lse) * (z[j] - lse);
    for (int off = 16; off > 0; off /= 2) h += __shfl_xor_sync(0xffffffffu, h, off);
    for (int j = lane; j < L; j += 32) d[j] = (float)(-weight * exp(z[j] - lse) * (z[j] - lse + h) / N);
    if (lane == 0) loss[n] = h;
}

/* The host sums the rows' losses in order, as the CPU does. */
static double sum_rows(const double *loss, int N)
{
    double *host = (double *)nta_malloc((size_t)N * sizeof(double)), sum = 0;
    CUDA_CHECK(cudaMemcpyAsync(host, loss, (size_t)N * sizeof(double), cudaMemcpyDeviceToHost, cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    for (int n = 0; n < N; n++) sum += host[n];
    free(host);
    return sum;
}

void cuda_l1_acc(float *dpred, double *acc, const float *pred, const float *target, int N)
{
    if (N <= 0) return;
    double *loss = (double *)cuda_scratch((size_t)N * sizeof(double));
    SIMT_LAUNCH(l1_kernel, (N + 255) / 256, 256, 0, cuda_stream(), dpred, acc, loss, pred, target, N);
    LAUNCH_CHECK();
}

double cuda_l1(float *dpred, const float *pred, const float *target, int N)
{
    if (N <= 0) return 0;
    double *acc = acc_scratch((size_t)N * sizeof(double));
    cuda_l1_acc(dpred, acc, pred, target, N);
    return acc_read(acc, NULL);
}

double cuda_entropy(float *dlogits, const float *logits, float weight, int N, int L)
{
    if (N <= 0 || L <= 0) return 0;
    double *loss = (double *)cuda_scratch((size_t)N * sizeof(double));
    SIMT_LAUNCH(entropy_kernel, (N + 7) / 8, 256, 0, cuda_stream(), dlogits, loss, logits, weight, N, L);
    LAUNCH_CHECK();
    return sum_rows(loss, N);
}

/* One thread per channel of x [N,C]: m = mean of rows [0,S) - mean of rows
 * [S,N) in double, loss [C] = m^2, dx = 2 weight m / S on the first rows and
 * -2 weight m / (N-S) on the rest, as the CPU. */
__global__ void mmd_kernel(float *dx, double *loss, const float *__restrict__ x, int N, int S, int C,
                           float weight)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double a = 0, b = 0;
    for (int n = 0; n < S; n++) a += x[(size_t)n * C + c];
    for (int n = S; n < N; n++) b += x[(size_t)n * C + c];
    double m = a / S - b / (N - S);
    for (int n = 0; n < N; n++) dx[(size_t)n * C + c] = (float)(2 * weight * m / (n < S ? S : -(N - S)));
    loss[c] = m * m;
}

double cuda_mmd(float *dx, const float *x, int N, int S, int C, float weight)
{
    if (C <= 0) return 0;
    double *loss = (double *)cuda_scratch((size_t)C * sizeof(double));
    SIMT_LAUNCH(mmd_kernel, (C + 255) / 256, 256, 0, cuda_stream(), dx, loss, x, N, S, C, weight);
    LAUNCH_CHECK();
    return weight * sum_rows(loss, C);
}

/* ------------------------------------------------ self-supervised learning */

/* The sum of v over the 32 lanes of a warp, in every lane (double). */
static __device__ __forceinline__ double warp_sum(double v)
{
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* One warp per row of x [N,D]: norm [N] = |x| (double sum), y = x / max(norm, eps). */
__global__ void l2norm_fwd_kernel(float *y, float *norm, const float *__restrict__ x, int N, int D)
{
    int lane = threadIdx.x % 32, n = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n >= N) return;   /* the whole warp leaves together */
    const float *xr = x + (size_t)n * D;
    double ss = 0;
    for (int d = lane; d < D; d += 32) ss += (double)xr[d] * xr[d];
    double len = sqrt(warp_sum(ss)), div = len > NTA_L2_EPS ? len : NTA_L2_EPS;
    for (int d = lane; d < D; d += 32) y[(size_t)n * D + d] = (float)(xr[d] / div);
    if (lane == 0) norm[n] = (float)len;
}

/* One warp per row: dx = (dy - y (y.dy)) / |x|, or dy / eps where |x| <= eps. */
__global__ void l2norm_bwd_kernel(float *dx, const float *__restrict__ dy, const float *__restrict__ y,
                                  const float *__restrict__ norm, int N, int D)
{
    int lane = threadIdx.x % 32, n = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (n >= N) return;
    const float *yr = y + (size_t)n * D, *gr = dy + (size_t)n * D;
    double dot = 0, len = norm[n];
    for (int d = lane; d < D; d += 32) dot += (double)yr[d] * gr[d];
    dot = warp_sum(dot);
    if (!(len > NTA_L2_EPS)) dot = 0, len = NTA_L2_EPS;
    for (int d = lane; d < D; d += 32) dx[(size_t)n * D + d] = (float)((gr[d] - yr[d] * dot) / len);
}

void cuda_l2norm_fwd(float *y, float *norm, const float *x, int N, int D)
{
    if (N <= 0 || D <= 0) return;
    SIMT_LAUNCH(l2norm_fwd_kernel, (N + 7) / 8, 256, 0, cuda_stream(), y, norm, x, N, D);
    LAUNCH_CHECK();
}

void cuda_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int N, int D)
{
    if (N <= 0 || D <= 0) return;
    SIMT_LAUNCH(l2norm_bwd_kernel, (N + 7) / 8, 256, 0, cuda_stream(), dx, dy, y, norm, N, D);
    LAUNCH_CHECK();
}

/* e_i.e_j over D by the lanes of a warp (double), in every lane. */
static __device__ __forceinline__ double warp_dot(const float *a, const float *b, int D, int lane)
{
    double s = 0;
    for (int d = lane; d < D; d += 32) s += (double)a[d] * b[d];
    return warp_sum(s);
}

/* One warp per row i of e [N,D]: over j != i in order, the online log-sum-exp
 * of s_ij = e_i.e_j / tau into lse [N], loss [N] = lse - s_i,pos(i), right [N]
 * = the first most similar j is pos(i) (as cpu_ntxent). */
__global__ void ntxent_lse_kernel(double *lse, double *loss, int *right, const float *__restrict__ e, int N,
                                  int D, double inv_tau)
{
    int lane = threadIdx.x % 32, i = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (i >= N) return;
    int pos = (i + N / 2) % N, best = -1;
    double m = -INFINITY, z = 0, sp = 0, sbest = -INFINITY;
    for (int j = 0; j < N; j++) {
        if (j == i) continue;
        double s = warp_dot(e + (size_t)i * D, e + (size_t)j * D, D, lane) * inv_tau;
        if (s > sbest) sbest = s, best = j;
        if (s > m) z = z * exp(m - s) + 1, m = s;
        else z += exp(s - m);
        if (j == pos) sp = s;
    }
    if (lane == 0) {
        lse[i] = m + log(z);
        loss[i] = lse[i] - sp;
        right[i] = best == pos;
    }
}

#define NTXENT_MAX_D 1024   /* 32 accumulators a lane */

/* One warp per row k: de_k = 1/(N tau) sum_{j != k} (exp(s_kj - lse_k) +
 * exp(s_kj - lse_j) - 2 [j = pos(k)]) e_j, each lane summing its columns d
 * over j in order, in double (as cpu_ntxent). */
__global__ void ntxent_grad_kernel(float *de, const double *__restrict__ lse, const float *__restrict__ e, int N,
                                   int D, double inv_tau)
{
    int lane = threadIdx.x % 32, k = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (k >= N) return;
    double acc[NTXENT_MAX_D / 32];
    int pos = (k + N / 2) % N, per = (D + 31) / 32;
    for (int t = 0; t < per; t++) acc[t] = 0;
    for (int j = 0; j < N; j++) {
        if (j == k) continue;
        const float *ej = e + (size_t)j * D;
        double s = warp_dot(e + (size_t)k * D, ej, D, lane) * inv_tau;
        double w = exp(s - lse[k]) + exp(s - lse[j]) - (j == pos ? 2 : 0);
        for (int t = 0; t < per; t++)
            if (lane + 32 * t < D) acc[t] += w * ej[lane + 32 * t];
    }
    for (int t = 0; t < per; t++)
        if (lane + 32 * t < D) de[(size_t)k * D + lane + 32 * t] = (float)(acc[t] * inv_tau / N);
}

double cuda_ntxent(float *de, int *correct, const float *e, int N, int D, float tau)
{
    if (correct) *correct = 0;
    if (N <= 0 || D <= 0) return 0;
    if (D > NTXENT_MAX_D) nta_die("ntxent: embeddings of %d dimensions; the CUDA kernel takes at most %d", D, NTXENT_MAX_D);
    size_t bytes = (size_t)N * (2 * sizeof(double) + sizeof(int));
    double *lse = (double *)cuda_scratch(bytes), *loss = lse + N, inv_tau = 1.0 / tau;
    int *right = (int *)(loss + N);
    cudaStream_t st = cuda_stream();
    SIMT_LAUNCH(ntxent_lse_kernel, (N + 7) / 8, 256, 0, st, lse, loss, right, e, N, D, inv_tau);
    LAUNCH_CHECK();
    SIMT_LAUNCH(ntxent_grad_kernel, (N + 7) / 8, 256, 0, st, de, lse, e, N, D, inv_tau);
    LAUNCH_CHECK();
    /* the host sums the rows in order */
    double *host = (double *)nta_malloc(bytes);
    int *hright = (int *)(host + 2 * (size_t)N);
    CUDA_CHECK(cudaMemcpyAsync(host, lse, bytes, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    double sum = 0;
    int r = 0;
    for (int n = 0; n < N; n++) sum += host[N + n], r += hright[n];
    free(host);
    if (correct) *correct = r;
    return sum;
}

/* ---------------------------------------------------------------- optimiser */

/* g += wd*w; m = mu*m + g; w -= lr*m (g itself is left as it was) */
__global__ void sgd_kernel(float *w, float *m, const float *__restrict__ g,
                           const float *__restrict__ decay, size_t n, const float *__restrict__ rate,
                           float mu, float wd)
{
    float lr = *rate;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if (decay[i] < 0) continue;
        float d = g[i] + decay[i] * wd * w[i];
        m[i] = mu * m[i] + d;
        w[i] -= lr * m[i];
    }
}

void cuda_sgd(float *w, float *m, const float *g, const float *decay, size_t n, const float *lr, float mu, float wd)
{
    if (!n) return;
    SIMT_LAUNCH(sgd_kernel, cuda_grid(n), CUDA_THREADS, 0, cuda_stream(), w, m, g, decay, n, lr, mu, wd);
    LAUNCH_CHECK();
}
