/* cpu.c: the CPU backend, the reference implementation of every op.
 *
 * Every other backend is tested against these functions. They are written to be
 * read first and to be fast enough second: plain loops over NHWC tensors whose
 * innermost loop runs over channels (so the compiler vectorises it), OpenMP
 * over images or rows, and a packed, cache-blocked GEMM whose 6x16 micro-kernel
 * is compiled twice (AVX2+FMA and portable) and chosen at run time.
 *
 * Shapes: see the legend in nta.h. Reductions that cross threads split the
 * work into a fixed number of parts (the --threads count) with one private
 * buffer per part, summed in part order, so a run is deterministic for a given
 * --threads however many threads run the parts.
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <math.h>
#include <dirent.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Clone hot loops for AVX2+FMA; the loader picks the clone the CPU supports. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#define CPU_CLONES 1
#else
#define HOT
#define CPU_CLONES 0
#endif

/* Threads. Every op that sums across threads splits its work into `parts`
 * (cpu_set_threads' n) whatever the number of threads that run them, each
 * thread taking parts t, t + n, ... (FOR_PART); so a result depends on n
 * only, and the governor (cpu_govern) may run the parts on fewer threads. */
static int parts, threads_max, threads_now, pinned;   /* parts 0: not set yet */

/* The parts of every split: cpu_set_threads' n, or OpenMP's thread count
 * when it was not called (read outside any parallel region) */
static int nparts(void)
{
    if (!parts) parts = threads_max = threads_now = omp_get_max_threads();
    return parts;
}

#define FOR_PART(p, np) for (int p = omp_get_thread_num(); p < (np); p += omp_get_num_threads())

void cpu_set_threads(int n)
{
    parts = threads_max = threads_now = n > 0 ? n : 1;
    pinned = 0;
    omp_set_num_threads(n > 0 ? n : 1);
}

void cpu_pin_threads(int n)
{
    nparts();
    pinned = n > 0;
    threads_now = n > 0 && n < threads_max ? n : threads_max;
    omp_set_num_threads(threads_now);
}

int cpu_threads(void) { return nparts(), threads_now; }
int cpu_parts(void) { return nparts(); }

/* Seconds our threads waited for a CPU in the run queue (the second field of
 * each /proc/self/task/TID/schedstat, in ns); -1 without /proc. */
static double queued_seconds(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    double ns = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[64];
        unsigned long long run, wait;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu %llu", &run, &wait) == 2) ns += (double)wait;
        fclose(f);
    }
    closedir(d);
    return ns * 1e-9;
}

/* Seconds that the machine's CPUs have been idle, summed over CPUs (the idle
 * and iowait fields of /proc/stat's first line); -1 without /proc. */
static double idle_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long user, nice, sys, idle, iowait;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait);
    fclose(f);
    return n == 5 ? (double)(idle + iowait) / sysconf(_SC_CLK_TCK) : -1;
}

/* Sharing the machine. OpenMP threads wait for each other at the end of every
 * op, spinning; when another process takes a core, one of ours waits in the
 * run queue while the others spin at the next barrier, and a step ran 2-3x
 * slower for the loss of half a core. So, at most once a second (called
 * between batches), the governor looks at the last second: when our threads
 * waited for a CPU for more than 0.3 of a core's time, it runs the parts on one
 * thread fewer; when more than 0.7 of a core sat idle, on one more (up to the
 * --threads count). Results do not change (the parts do not). */
static void cpu_govern(void)
{
    static double t0, q0, i0;
    if (omp_in_parallel() || nparts() == 1 || pinned) return;
    double t = nta_now();
    if (t - t0 < 1.0) return;
    double q = queued_seconds(), i = idle_seconds();
    if (q < 0 || i < 0) return;
    if (t0 > 0) {
        double waiting = (q - q0) / (t - t0), idle = (i - i0) / (t - t0);
        int n = waiting > 0.3 && threads_now > 1 ? threads_now - 1
              : idle > 0.7 && threads_now < threads_max ? threads_now + 1 : threads_now;
        if (n != threads_now) omp_set_num_threads(threads_now = n);
    }
    t0 = t, q0 = q, i0 = i;
}

const char *cpu_simd(void)
{
#if CPU_CLONES
    return __builtin_cpu_supports("x86-64-v3") ? "AVX2+FMA clones of the hot loops (x86-64-v3), used on this CPU"
                                               : "AVX2+FMA clones of the hot loops (x86-64-v3), not used: this CPU lacks them";
#else
    return "portable loops only (no AVX2 clones in this build)";
#endif
}

/* Per-thread scratch that grows on demand and lives as long as the thread.
 * Slots: 0 the GEMM's packed B (and the other ops' short buffers), 1 its edge
 * tile, 2 and 3 gemm_narrow's C^T and A^T. */
static float *scratch(int slot, size_t n)
{
    static _Thread_local float *buf[4];
    static _Thread_local size_t cap[4];
    if (n > cap[slot]) {
        free(buf[slot]);
        size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
        buf[slot] = aligned_alloc(64, bytes);
        if (!buf[slot]) nta_die("out of memory allocating %zu bytes of CPU scratch", bytes);
        cap[slot] = n;
    }
    return buf[slot];
}

/* Split [0, n) into nt contiguous parts; part t is [*lo, *hi). */
static void split(int n, int t, int nt, int *lo, int *hi)
{
    *lo = (int)((long)n * t / nt);
    *hi = (int)((long)n * (t + 1) / nt);
}

/* ------------------------------------------------------------- memory */

static void *cpu_alloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) nta_die("out of memory allocating %zu bytes", bytes);
    memset(p, 0, bytes);
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

/* --------------------------------------------------------------- GEMM */

/* C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C. Blocking: K is cut into KC
 * slices, the columns into NC blocks and NR-wide panels, the rows into MR tiles; the
 * micro-kernel multiplies an MR x kc tile of A by a kc x NR panel of B into a
 * 6x16 register tile. A is read where it lies (its six rows, or with ta six
 * adjacent columns, are streams the prefetcher follows), so the activations,
 * the big operand, are never copied. B is read in place too when it is not
 * transposed and its width is a multiple of 8; otherwise it is packed into
 * zero-padded NR-wide panels. The first K slice stores into C when beta is 0,
 * so C is written once instead of being cleared first. */
enum { MR = 6, NR = 16, KC = 256, NC = 512 };
/* ISO C mode keeps a*b+c as two roundings; the GEMM wants fused multiply-adds */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
typedef float v8 __attribute__((vector_size(32)));

/* unaligned 8-float load and store (macros: a v8 return value would change
 * the ABI of the portable clone) */
#define load8(p) ({ v8 v_; memcpy(&v_, (p), 32); v_; })
#define store8(p, v) do { v8 v_ = (v); memcpy((p), &v_, 32); } while (0)
typedef int vi8 __attribute__((vector_size(32)));
/* relu6f (nta.h) of a v8, except that it gives +0 for -0 and NaN */
#define relu6_8(t) ({ v8 t_ = (t), z_ = {0}, six_ = z_ + 6.0f; vi8 m_ = t_ > z_;              \
                      t_ = (v8)((vi8)t_ & m_); m_ = t_ < six_;                              \
                      (v8)(((vi8)t_ & m_) | ((vi8)six_ & ~m_)); })

/* An epilogue applied as C is stored after the last K slice: per column j,
 * C = C * scale[j] + shift[j], then ReLU6 if relu6 (batchnorm in eval mode). */
typedef struct { const float *scale, *shift; int relu6; } Epi;

/* At[K][M] = A[M][K] (lda apart), M and K multiples of 8: by 8x8 blocks
 * transposed in registers (__builtin_shufflevector: GCC 12+ and clang). Each
 * register is blended from 8-float loads to hold 4 columns of rows k and k + 4,
 * so the 128-bit lanes hold two 4x4 blocks and two rounds of in-lane shuffles
 * finish the transpose. (The loads reach 4 floats before or past the block's
 * columns, always inside the memory its 8 rows span.) */
HOT static void transpose8(float *At, const float *A, int lda, int M, int K)
{
#define LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define HI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define LO2(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define HI2(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
    vi8 lo = {-1, -1, -1, -1, 0, 0, 0, 0};     /* a blend by masks: off the shuffle port */
#define BLEND(a, b) (v8)(((vi8)(a) & lo) | ((vi8)(b) & ~lo))
    for (int i = 0; i < M; i += 8)
        for (int p = 0; p < K; p += 8) {
            v8 r[8];     /* r[4h + k] = A[i+k][p+4h : p+4h+4], A[i+k+4][p+4h : p+4h+4] */
            for (int h = 0; h < 2; h++)
                for (int k = 0; k < 4; k++) {
                    const float *a = A + (size_t)(i + k) * lda + p + 4 * h;
                    r[4 * h + k] = BLEND(load8(a), load8(a + 4 * (size_t)lda - 4));
                }
            for (int h = 0; h < 8; h += 4) {    /* columns p+h .. p+h+3 */
                v8 t0 = LO(r[h], r[h + 1]), t1 = HI(r[h], r[h + 1]);
                v8 t2 = LO(r[h + 2], r[h + 3]), t3 = HI(r[h + 2], r[h + 3]);
                float *o = At + (size_t)(p + h) * M + i;
                store8(o, LO2(t0, t2));
                store8(o + M, HI2(t0, t2));
                store8(o + 2 * M, LO2(t1, t3));
                store8(o + 3 * M, HI2(t1, t3));
            }
        }
#undef LO
#undef HI
#undef LO2
#undef HI2
#undef BLEND
}

/* pack op(B)[p0:p0+kc, j0:j0+nc] into zero-padded panels pb[nc/NR][kc][NR]:
 * each panel row is copied (B); or (tb) a full panel's first kc & ~7 rows are
 * B^T's 16 rows transposed by 8x8 blocks, and the rest gathered */
static void pack_b(float *pb, const float *B, int tb, int ldb, int p0, int kc,
                   int j0, int nc)
{
    for (int jp = 0; jp < nc; jp += NR, pb += (size_t)kc * NR) {
        int w = nc - jp < NR ? nc - jp : NR;
        if (tb) {
            const float *bt = B + (size_t)(j0 + jp) * ldb + p0;     /* [w][kc], ldb apart */
            int p8 = w == NR ? kc & ~7 : 0;
            if (w < NR) memset(pb, 0, (size_t)kc * NR * sizeof(float));
            if (p8) transpose8(pb, bt, ldb, NR, p8);
            for (int j = 0; j < w; j++)
                for (int p = p8; p < kc; p++) pb[(size_t)p * NR + j] = bt[(size_t)j * ldb + p];
        } else {
            for (int p = 0; p < kc; p++) {
                float *dst = pb + (size_t)p * NR;
                memcpy(dst, B + (size_t)(p0 + p) * ldb + j0 + jp, w * sizeof(float));
                memset(dst + w, 0, (NR - w) * sizeof(float));
            }
        }
    }
}

/* C[0:mr, 0:nr] = (store ? 0 : C) + alpha * A-tile x B-panel, then the
 * epilogue of columns sc, sh [nr] if sc is not NULL. The tile has rows rows
 * (MR, or 4 or 2 for the last rows of C; mr <= rows); element (i, p) of the
 * tile is a[i*lda + p] (ta = 0) or a[p*lda + i] (ta = 1); row p of the panel
 * is b + p*ldb, 8*nv wide (nv = 1 or 2). ta, nv and rows are constants at
 * every call, so each use is specialised; the rows x 8nv sums stay in
 * registers. */
static inline __attribute__((always_inline)) void micro_kernel(
    int kc, const float *a, int lda, int ta, const float *b, int ldb, int nv,
    float *C, int ldc, int mr, int nr, float alpha, int store, const float *sc,
    const float *sh, int relu6, int rows)
{
    v8 c[MR][2] = {{{0}}}, z = {0};
    for (int p = 0; p < kc; p++, b += ldb) {
        v8 b0 = load8(b), b1 = nv == 2 ? load8(b + 8) : z;
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            float s = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
            v8 ai = {s, s, s, s, s, s, s, s};
            c[i][0] += ai * b0;
            if (nv == 2) c[i][1] += ai * b1;
        }
    }
    if (alpha != 1.0f)
        for (int i = 0; i < rows; i++) c[i][0] *= alpha, c[i][1] *= alpha;
    if (mr == rows && nr == 8 * nv) {
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) {
                float *q = C + (size_t)i * ldc + 8 * v;
                v8 t = store ? c[i][v] : load8(q) + c[i][v];
                if (sc) {
                    t = t * load8(sc + 8 * v) + load8(sh + 8 * v);
                    if (relu6) t = relu6_8(t);
                }
                store8(q, t);
            }
    } else {
        float t[MR][NR];     /* (each sum stored by a constant index: c stays in registers) */
        for (int i = 0; i < rows; i++)
            for (int v = 0; v < nv; v++) store8(&t[i][8 * v], c[i][v]);
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) {
                float *q = C + (size_t)i * ldc + j, v = store ? t[i][j] : *q + t[i][j];
                if (sc) {
                    v = v * sc[j] + sh[j];
                    if (relu6) v = relu6f(v);
                }
                *q = v;
            }
    }
}

/* One tile of `rows` rows: dispatch on ta and the panel width */
static inline __attribute__((always_inline)) void tile_rows(
    int kc, const float *a, int lda, int ta, const float *b, int ldb, float *C, int ldc,
    int mr, int nr, float alpha, int store, const float *sc, const float *sh, int relu6, int rows)
{
#define MK(TA, NV) micro_kernel(kc, a, lda, TA, b, ldb, NV, C, ldc, mr, nr, alpha, store, sc, sh, \
                                relu6, rows)
    if (ta) {
        if (nr > 8) MK(1, 2);
        else MK(1, 1);
    } else {
        if (nr > 8) MK(0, 2);
        else MK(0, 1);
    }
#undef MK
}

/* One tile: dispatch to the specialised kernels. The last rows of C, when
 * fewer than MR, run a 4- or 2-row kernel where they are 4 or 2 rows (read in
 * place: M = 16, 32, 64, 128 end in 4); other edge tiles are first copied,
 * zero-padded, into edge [kc][MR]. */
static inline __attribute__((always_inline)) void tile(
    int kc, const float *a, int lda, int ta, const float *b, int ldb, float *C, int ldc,
    int mr, int nr, float alpha, int store, float *edge, const float *sc, const float *sh,
    int relu6)
{
    if (mr == 4) {
        tile_rows(kc, a, lda, ta, b, ldb, C, ldc, mr, nr, alpha, store, sc, sh, relu6, 4);
        return;
    }
    if (mr == 2) {
        tile_rows(kc, a, lda, ta, b, ldb, C, ldc, mr, nr, alpha, store, sc, sh, relu6, 2);
        return;
    }
    if (mr < MR) {
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < MR; i++)
                edge[p * MR + i] = i < mr ? (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]) : 0.0f;
        a = edge, lda = MR, ta = 1;
    }
    tile_rows(kc, a, lda, ta, b, ldb, C, ldc, mr, nr, alpha, store, sc, sh, relu6, MR);
}

/* Rows of the tile at row i of M: MR, or what is left; 8 rows left run as
 * 4 + 4, since a 2-row tile has too few sums to hide the FMA latency. */
static inline int tile_rows_at(int M, int i)
{
    return M - i == MR + 2 ? 4 : M - i < MR ? M - i : MR;
}

/* C[M,N] = alpha op(A) op(B) + (beta0 ? 0 : C) on the calling thread, then
 * the epilogue ep if not NULL */
HOT static void gemm_serial(int ta, int tb, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb,
                            float *C, int ldc, int beta0, const Epi *ep)
{
    int direct = !tb && N % 8 == 0;
    float *edge = scratch(1, (size_t)KC * MR);
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        int ncp = (nc + NR - 1) / NR * NR;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC, store = beta0 && pc == 0;
            const Epi *e = pc + kc >= K ? ep : NULL;     /* the last slice */
            const float *pb = B + (size_t)pc * ldb + jc;
            if (!direct) {
                float *buf = scratch(0, (size_t)kc * ncp);
                pack_b(buf, B, tb, ldb, pc, kc, jc, nc);
                pb = buf;
            }
            /* Row tiles outer: the A tile stays in L1 while it meets every
             * panel of B (in L2). For a short A^T (ta, M <= 64: its slice,
             * at most 64 KB, stays in L2) of more than two row tiles, panels
             * outer: each panel of B is then read once instead of once per
             * row tile, which matters when B is read in place, rows ldb apart. */
            int pout = ta && 2 * MR < M && M <= 64, n1 = pout ? nc : M, n2 = pout ? M : nc;
            for (int u = 0; u < n1; u += pout ? NR : tile_rows_at(M, u))
                for (int v = 0; v < n2; v += pout ? tile_rows_at(M, v) : NR) {
                    int i = pout ? v : u, jr = pout ? u : v;
                    int mr = tile_rows_at(M, i), nr = nc - jr < NR ? nc - jr : NR;
                    const float *a = ta ? A + (size_t)pc * lda + i : A + (size_t)i * lda + pc;
                    const float *b = direct ? pb + jr : pb + (size_t)jr * kc;
                    tile(kc, a, lda, ta, b, direct ? ldb : NR, C + (size_t)i * ldc + jc + jr, ldc,
                         mr, nr, alpha, store, edge,
                         e ? e->scale + jc + jr : NULL, e ? e->shift + jc + jr : NULL,
                         e ? e->relu6 : 0);
                }
        }
    }
}

#pragma GCC pop_options

/* A narrow C[M,N] (the classifier, N = 10) = alpha op(A) op(B) + (beta0 ? 0 :
 * C), computed as C^T [N,M] = op(B)^T op(A)^T: N short rows, and A^T as its
 * wide panels with no padded columns, read in place (ta) or first transposed
 * by blocks of rows that fill 16 KB, so that each stays in L1 (M and K
 * multiples of 8, K <= 512: a block has 8 rows or more); then C takes C^T
 * transposed. */
static void gemm_narrow(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float *C, int ldc, int beta0)
{
    float *t = scratch(2, (size_t)N * M);
    if (ta)
        gemm_serial(!tb, 0, N, M, K, alpha, B, ldb, A, lda, t, M, 1, NULL);
    else {
        int rb = 4096 / K & ~7;     /* rows of A per block: its transpose, [K][rb], fills 16 KB */
        float *at = scratch(3, (size_t)K * rb);
        for (int i = 0; i < M; i += rb) {
            int r = M - i < rb ? M - i : rb;
            transpose8(at, A + (size_t)i * lda, lda, r, K);
            gemm_serial(!tb, 0, N, r, K, alpha, B, ldb, at, r, t + i, M, 1, NULL);
        }
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = (beta0 ? 0.0f : C[(size_t)i * ldc + j]) + t[(size_t)j * M + i];
}

/* Whether gemm_narrow can take C[M,N] = op(A)[M,K] op(B)[K,N]: fewer
 * columns than a panel, whole 8-row units, no epilogue, and A^T in place or
 * A transposable by its 16 KB blocks (K a multiple of 8, K <= 512). */
static int narrow_ok(int ta, int M, int N, int K, const Epi *ep)
{
    return N < NR && M % 8 == 0 && (ta || (K % 8 == 0 && K <= 512)) && !ep;
}

/* C[M,N] = alpha op(A) op(B) + (beta0 ? 0 : C), then ep, on the calling
 * thread: gemm_narrow where it applies, else gemm_serial. */
static void gemm_one(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float *C, int ldc, int beta0, const Epi *ep)
{
    if (narrow_ok(ta, M, N, K, ep))
        gemm_narrow(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc, beta0);
    else
        gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc, beta0, ep);
}

/* Per-part partial products of the K split, kept between calls. */
static float *gemm_part;
static size_t gemm_part_cap;

/* cpu_gemm, then the epilogue ep (if not NULL) */
static void gemm_run(int ta, int tb, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc, const Epi *ep)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || (beta != 0 && beta != 1)) {    /* C = beta C first; then accumulate */
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            if (beta == 0) memset(c, 0, N * sizeof(float));
            else for (int j = 0; j < N; j++) c[j] *= beta;
        }
        if (K <= 0) {
            if (ep)
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        float *q = C + (size_t)i * ldc + j, v = *q * ep->scale[j] + ep->shift[j];
                        *q = ep->relu6 ? relu6f(v) : v;
                    }
            return;
        }
        beta = 1;
    }
    /* inside a parallel region (inference runs pieces of the batch on each
     * thread) the GEMM runs on the calling thread alone */
    int nt = omp_in_parallel() ? 1 : nparts(), beta0 = beta == 0;
    /* tiny (the classifier at batch 64): entering a region costs more */
    if (nt == 1 || (double)M * N * K < 2e5) {
        gemm_one(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc, beta0, ep);
        return;
    }
    if (ep || M >= 4 * MR * nt || (long)K < 4L * M) {
        /* Tall C: split the rows into parts; or the columns, when few rows
         * would not share out into whole tiles (64 rows in 2 parts) */
        int cols = M % (MR * nt) && M < 32 * MR && N % (NR * nt) == 0;
#pragma omp parallel
        FOR_PART(t, nt) {
            int n = nt, lo, hi;
            if (cols) {
                split(N / NR, t, n, &lo, &hi);
                lo *= NR, hi *= NR;
                Epi e = ep ? (Epi){ep->scale + lo, ep->shift + lo, ep->relu6} : (Epi){0};
                if (hi > lo)
                    gemm_serial(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + (size_t)lo * ldb : B + lo,
                                ldb, C + lo, ldc, beta0, ep ? &e : NULL);
            } else {
                int unit = narrow_ok(ta, M, N, K, ep) ? 8 : MR;     /* rows in whole tiles */
                split(M / unit, t, n, &lo, &hi);
                lo *= unit;
                hi = t == n - 1 ? M : hi * unit;     /* the last part takes the rest */
                if (hi > lo)
                    gemm_one(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + (size_t)lo * lda, lda,
                             B, ldb, C + (size_t)lo * ldc, ldc, beta0, ep);
            }
        }
        return;
    }
    /* Small C, long K (weight gradients): split K into parts; each stores its
     * partial product, then the rows of C are shared out between the threads
     * and each sums the partials in part order (deterministic for a count of
     * parts). */
    size_t mn = (size_t)M * N;
    if (gemm_part_cap < (size_t)nt * mn) {
        free(gemm_part);
        gemm_part_cap = (size_t)nt * mn;
        gemm_part = aligned_alloc(64, (gemm_part_cap * sizeof(float) + 63) & ~(size_t)63);
        if (!gemm_part) nta_die("out of memory allocating the GEMM's partial products");
    }
    float *part = gemm_part;
#pragma omp parallel
    {
        int lo, hi;
        FOR_PART(t, nt) {
            split(K, t, nt, &lo, &hi);
            float *pt = part + (size_t)t * mn;
            if (hi > lo)
                gemm_serial(ta, tb, M, N, hi - lo, alpha,
                            ta ? A + (size_t)lo * lda : A + lo, lda,
                            tb ? B + lo : B + (size_t)lo * ldb, ldb, pt, N, 1, NULL);
            else
                memset(pt, 0, mn * sizeof(float));
        }
#pragma omp barrier
        split(M, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int i = lo; i < hi; i++) {
            float *c = C + (size_t)i * ldc;
            for (int u = 0; u < nt; u++) {
                const float *q = part + (size_t)u * mn + (size_t)i * N;
                if (u == 0 && beta0) memcpy(c, q, N * sizeof(float));
                else for (int j = 0; j < N; j++) c[j] += q[j];
            }
        }
    }
}

static void cpu_gemm(int ta, int tb, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc)
{
    gemm_run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

/* -------------------------------------------------------- dense conv */

/* y [N,Ho,Wo,Co] = x [N,H,W,Ci] * w [K,K,Ci,Co] */
HOT static void cpu_conv_fwd(float *y, const float *x, const float *w,
                             int N, int H, int W, int Ci, int Co, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N * Ho; r++) {
        int n = r / Ho, oy = r % Ho;
        for (int ox = 0; ox < Wo; ox++) {
            float *yo = y + ((size_t)r * Wo + ox) * Co;
            v8 a0 = {0}, a1 = a0;       /* Co == 16 (the stem): the sums stay in two registers */
            if (Co != 16) memset(yo, 0, Co * sizeof(float));
            for (int ky = 0; ky < K; ky++) {
                int iy = oy * s - pad + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < K; kx++) {
                    int ix = ox * s - pad + kx;
                    if (ix < 0 || ix >= W) continue;
                    const float *xi = x + (((size_t)n * H + iy) * W + ix) * Ci;
                    const float *wk = w + (size_t)(ky * K + kx) * Ci * Co;
                    if (Co == 16) {
                        for (int ci = 0; ci < Ci; ci++, wk += 16) {
                            v8 xs = {0};
                            xs += xi[ci];
                            a0 += xs * load8(wk);
                            a1 += xs * load8(wk + 8);
                        }
                        continue;
                    }
                    for (int ci = 0; ci < Ci; ci++)
                        for (int co = 0; co < Co; co++) yo[co] += xi[ci] * wk[ci * Co + co];
                }
            }
            if (Co == 16) {
                store8(yo, a0);
                store8(yo + 8, a1);
            }
        }
    }
}

/* For kx < K: dw[ky][kx][ci][co : co+8] += sum over ox < Wo of
 * xr[ox*s - pad + kx][ci] * dyr[ox][co : co+8] (taps outside the row
 * skipped), where dyr [Wo,Co] is one row of output gradients and xr [W,Ci]
 * the input row under kernel row ky. The K sums stay in registers along the
 * row, and each adds its outputs in order. */
static inline __attribute__((always_inline)) void conv_bwd_w_row(
    float *dw, const float *dyr, const float *xr, int W, int Ci, int Co, int K, int s, int Wo,
    int ky, int ci, int co)
{
    int pad = K / 2;
    v8 acc[7];
    float *wk = dw + ((size_t)ky * K * Ci + ci) * Co + co;     /* tap (ky, kx) at wk + kx*Ci*Co */
    for (int kx = 0; kx < K; kx++) acc[kx] = load8(wk + (size_t)kx * Ci * Co);
    for (int ox = 0; ox < Wo; ox++) {
        v8 g = load8(dyr + (size_t)ox * Co + co);
        for (int kx = 0; kx < K; kx++) {
            int ix = ox * s - pad + kx;
            if (ix >= 0 && ix < W) {
                float v = xr[(size_t)ix * Ci + ci];
                acc[kx] += (v8){v, v, v, v, v, v, v, v} * g;
            }
        }
    }
    for (int kx = 0; kx < K; kx++) store8(wk + (size_t)kx * Ci * Co, acc[kx]);
}

/* dw [K,K,Ci,Co] += sum over outputs of x (tap) * dy: each part sums its
 * rows of outputs in order into its own copy, then the copies are added in
 * part order */
HOT static void conv_bwd_w(float *dw, const float *dy, const float *x,
                           int N, int H, int W, int Ci, int Co, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
    size_t nw = (size_t)K * K * Ci * Co;
    int nt = nparts();
    float *part = nta_calloc((size_t)nt * nw, sizeof(float));
#pragma omp parallel
    FOR_PART(t, nt) {
        int lo, hi;
        float *pw = part + t * nw;
        split(N * Ho, t, nt, &lo, &hi);
        for (int r = lo; r < hi; r++) {
            int n = r / Ho, oy = r % Ho;
            const float *dyr = dy + (size_t)r * Wo * Co;
            for (int ky = 0; ky < K; ky++) {
                int iy = oy * s - pad + ky;
                if (iy < 0 || iy >= H) continue;
                const float *xr = x + ((size_t)n * H + iy) * W * Ci;
                if (Co % 8 == 0 && K % 2 && K <= 7) {
                    /* K a constant in each call, so that the sums are registers */
                    for (int ci = 0; ci < Ci; ci++)
                        for (int co = 0; co < Co; co += 8)
                            switch (K) {
                            case 1: conv_bwd_w_row(pw, dyr, xr, W, Ci, Co, 1, s, Wo, ky, ci, co); break;
                            case 3: conv_bwd_w_row(pw, dyr, xr, W, Ci, Co, 3, s, Wo, ky, ci, co); break;
                            case 5: conv_bwd_w_row(pw, dyr, xr, W, Ci, Co, 5, s, Wo, ky, ci, co); break;
                            default: conv_bwd_w_row(pw, dyr, xr, W, Ci, Co, 7, s, Wo, ky, ci, co);
                            }
                    continue;
                }
                for (int ox = 0; ox < Wo; ox++)
                    for (int kx = 0; kx < K; kx++) {
                        int ix = ox * s - pad + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *xi = xr + (size_t)ix * Ci, *g = dyr + (size_t)ox * Co;
                        float *wk = pw + (size_t)(ky * K + kx) * Ci * Co;
                        for (int ci = 0; ci < Ci; ci++)
                            for (int co = 0; co < Co; co++) wk[ci * Co + co] += xi[ci] * g[co];
                    }
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (size_t i = 0; i < nw; i++) dw[i] += part[t * nw + i];
    free(part);
}

/* --------------------------------------------------- depthwise conv */

/* x * scale + shift, then ReLU6 if relu6, of channels [c, c+8) (the epilogue ep) */
#define epi8(t, ep, c) ({ v8 e_ = (t) * load8((ep)->scale + (c)) + load8((ep)->shift + (c)); \
                          (ep)->relu6 ? relu6_8(e_) : e_; })

/* yo [C] = the depthwise KxK sum at the output pixel whose window starts at
 * (iy0, ix0) of image xn [H,W,C] (taps outside the image skipped), then the
 * epilogue ep if not NULL. Channels go in blocks of 32 and 8 whose sums stay
 * in registers across the taps; the taps are added in the order ky, kx. */
static inline __attribute__((always_inline)) void dw_pixel(
    float *yo, const float *xn, const float *w, int ldr, int ldc, int H, int W, int C, int K,
    int iy0, int ix0, const Epi *ep)
{
    int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = H - iy0 < K ? H - iy0 : K;
    int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = W - ix0 < K ? W - ix0 : K;
#define DW_TAPS(body)                                                                        \
    for (int ky = ky0; ky < ky1; ky++)                                                       \
        for (int kx = kx0; kx < kx1; kx++) {                                                 \
            const float *xi = xn + ((size_t)(iy0 + ky) * W + ix0 + kx) * C + c;              \
            const float *wk = w + (size_t)ky * ldr + (size_t)kx * ldc + c;                   \
            body;                                                                            \
        }
    int c = 0;
    for (; c + 32 <= C; c += 32) {
        v8 a0 = {0}, a1 = a0, a2 = a0, a3 = a0;
        DW_TAPS(a0 += load8(xi) * load8(wk); a1 += load8(xi + 8) * load8(wk + 8);
                a2 += load8(xi + 16) * load8(wk + 16); a3 += load8(xi + 24) * load8(wk + 24))
        if (ep) a0 = epi8(a0, ep, c), a1 = epi8(a1, ep, c + 8), a2 = epi8(a2, ep, c + 16),
                a3 = epi8(a3, ep, c + 24);
        store8(yo + c, a0);
        store8(yo + c + 8, a1);
        store8(yo + c + 16, a2);
        store8(yo + c + 24, a3);
    }
    for (; c + 8 <= C; c += 8) {
        v8 a0 = {0};
        DW_TAPS(a0 += load8(xi) * load8(wk))
        if (ep) a0 = epi8(a0, ep, c);
        store8(yo + c, a0);
    }
    for (; c < C; c++) {
        float a = 0.0f;
        DW_TAPS(a += xi[0] * wk[0])
        if (ep) {
            a = a * ep->scale[c] + ep->shift[c];
            if (ep->relu6) a = relu6f(a);
        }
        yo[c] = a;
    }
#undef DW_TAPS
}

/* y [N,Ho,Wo,C] = depthwise KxK of x [N,H,W,C], tap (ky,kx) at w + ky*ldr + kx*ldc;
 * then the epilogue ep if not NULL. (HOT itself, not inlined into its callers:
 * only then is the parallel loop, which OpenMP outlines, compiled for AVX2 too.) */
HOT static void dw_run(
    float *y, const float *x, const float *w, int ldr, int ldc, int N, int H, int W, int C,
    int K, int s, const Epi *ep)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N * Ho; r++) {
        int n = r / Ho, oy = r % Ho;
        const float *xn = x + (size_t)n * H * W * C;
        for (int ox = 0; ox < Wo; ox++)
            dw_pixel(y + ((size_t)r * Wo + ox) * C, xn, w, ldr, ldc, H, W, C, K, oy * s - pad,
                     ox * s - pad, ep);
    }
}

HOT static void bn_apply(float *y, const float *z, const float *res, const float *mean, const float *scale,
                         const float *beta, int P, int C, int relu6);

HOT static void bn_grad_apply(float *dz, const float *g, int ldg, const float *z, const float *mean,
                              const float *istd, const float *gamma, const float *g_mean, const float *gx_mean,
                              int P, int C);

/* x [P,C] (leading dimension ld) as read through xbn (nta.h): x itself when
 * xbn is NULL, else a copy [P,C] (leading dimension C) in a new buffer *tmp
 * (the caller frees it), made as bn_fwd_train's apply (forward) or bn_bwd's
 * second pass (backward) makes it */
static const float *bn_load_ld(const BnLoad *xbn, const float *x, int P, int C, int ld, float **tmp)
{
    *tmp = NULL;
    if (!xbn) return x;
    *tmp = nta_malloc((size_t)P * C * sizeof(float) + 1);
    if (xbn->z) {
        bn_grad_apply(*tmp, x, ld, xbn->z, xbn->mean, xbn->istd, xbn->gamma, xbn->g_mean, xbn->gx_mean, P, C);
        return *tmp;
    }
    float *scale = nta_malloc(C * sizeof(float) + 1);
    for (int c = 0; c < C; c++) scale[c] = xbn->gamma[c] * xbn->istd[c];
    for (int r = 0; r < P; r++) memcpy(*tmp + (size_t)r * C, x + (size_t)r * ld, C * sizeof(float));
    bn_apply(*tmp, *tmp, NULL, xbn->mean, scale, xbn->beta, P, C, xbn->relu6);
    free(scale);
    return *tmp;
}

static const float *bn_load(const BnLoad *xbn, const float *x, int P, int C, float **tmp)
{
    return bn_load_ld(xbn, x, P, C, C, tmp);
}

static void bn_stats(const BnStats *st, const float *z, int P, int C);
HOT static void dw_bwd_x(float *dx, const float *dy, const float *w, int ldr, int ldc,
                         int N, int H, int W, int C, int K, int s);

static void cpu_dw_fwd(float *y, const BnStats *st, const float *x, const BnLoad *xbn, const float *w, int ldr,
                       int ldc, int N, int H, int W, int C, int K, int s)
{
    float *tmp;
    dw_run(y, bn_load(xbn, x, N * H * W, C, &tmp), w, ldr, ldc, N, H, W, C, K, s, NULL);
    free(tmp);
    if (st) bn_stats(st, y, N * conv_out(H, K, s) * conv_out(W, K, s), C);
}

static void cpu_dw_bwd_x(float *dx, const float *dy, const BnLoad *dybn, const float *w, int ldr, int ldc,
                         int N, int H, int W, int C, int K, int s)
{
    float *tmp;
    int Po = N * conv_out(H, K, s) * conv_out(W, K, s);
    dw_bwd_x(dx, bn_load(dybn, dy, Po, C, &tmp), w, ldr, ldc, N, H, W, C, K, s);
    free(tmp);
}

static void cpu_conv_bwd_w(float *dw, const float *dy, const BnLoad *dybn, const float *x,
                           int N, int H, int W, int Ci, int Co, int K, int s)
{
    float *tmp;
    int Po = N * conv_out(H, K, s) * conv_out(W, K, s);
    conv_bwd_w(dw, bn_load(dybn, dy, Po, Co, &tmp), x, N, H, W, Ci, Co, K, s);
    free(tmp);
}

/* dx [N,H,W,C] = gradient w.r.t. x, gathered per input pixel (no write conflicts) */
HOT static void dw_bwd_x(float *dx, const float *dy, const float *w, int ldr, int ldc,
                         int N, int H, int W, int C, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N * H; r++) {
        int n = r / H, iy = r % H;
        for (int ix = 0; ix < W; ix++) {
            float *d = dx + ((size_t)r * W + ix) * C;
            memset(d, 0, C * sizeof(float));
            for (int ky = 0; ky < K; ky++) {
                int t = iy + pad - ky;          /* = oy * s */
                if (t < 0 || t % s || t / s >= Ho) continue;
                for (int kx = 0; kx < K; kx++) {
                    int u = ix + pad - kx;      /* = ox * s */
                    if (u < 0 || u % s || u / s >= Wo) continue;
                    const float *g = dy + (((size_t)n * Ho + t / s) * Wo + u / s) * C;
                    const float *wk = w + (size_t)ky * ldr + (size_t)kx * ldc;
                    for (int c = 0; c < C; c++) d[c] += g[c] * wk[c];
                }
            }
        }
    }
}

/* dw (pitches ldr, ldc) += sum over outputs of dy * x (tap) */
HOT static void dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const float *x,
                         int N, int H, int W, int C, int K, int s)
{
    int Ho = conv_out(H, K, s), Wo = conv_out(W, K, s), pad = K / 2;
    size_t nw = (size_t)K * K * C;              /* private [K,K,C] per part */
    int nt = nparts();
    float *part = nta_calloc((size_t)nt * nw, sizeof(float));
#pragma omp parallel
    FOR_PART(t, nt) {
        int lo, hi;
        float *pw = part + t * nw;
        split(N * Ho, t, nt, &lo, &hi);
        for (int r = lo; r < hi; r++) {
            int n = r / Ho, oy = r % Ho;
            for (int ox = 0; ox < Wo; ox++) {
                const float *g = dy + ((size_t)r * Wo + ox) * C;
                for (int ky = 0; ky < K; ky++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < K; kx++) {
                        int ix = ox * s - pad + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float *xi = x + (((size_t)n * H + iy) * W + ix) * C;
                        float *wk = pw + (size_t)(ky * K + kx) * C;
                        for (int c = 0; c < C; c++) wk[c] += g[c] * xi[c];
                    }
                }
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < K * K; k++) {
            float *d = dw + (size_t)(k / K) * ldr + (size_t)(k % K) * ldc;
            const float *p = part + t * nw + (size_t)k * C;
            for (int c = 0; c < C; c++) d[c] += p[c];
        }
    free(part);
}

static void cpu_dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const BnLoad *dybn, const float *x,
                         const BnLoad *xbn, int N, int H, int W, int C, int K, int s)
{
    float *tmp, *tmpg;
    int Po = N * conv_out(H, K, s) * conv_out(W, K, s);
    dw_bwd_w(dw, ldr, ldc, bn_load(dybn, dy, Po, C, &tmpg), bn_load(xbn, x, N * H * W, C, &tmp), N, H, W, C, K,
             s);
    free(tmp);
    free(tmpg);
}

/* --------------------------------------------------------- batchnorm */

/* p1 [C] += the sums over n rows z [n,C] of d = z - center, p2 [C] += of
 * d^2: in float over the n rows (n <= 8), then added in double */
static inline __attribute__((always_inline)) void moments_rows(double *p1, double *p2, const float *z,
                                                               const float *center, int n, int C)
{
    for (int c = 0; c < C; c++) {
        float a = 0, b = 0;
        for (int k = 0; k < n; k++) {
            float d = z[(size_t)k * C + c] - center[c];
            a += d;
            b += d * d;
        }
        p1[c] += a;
        p2[c] += b;
    }
}

/* Column sums of z - center and of its square over P rows of C channels,
 * deterministic, in double but for blocks of 8 rows summed in float. The
 * statistics come out within a small fraction of a unit in the last place of
 * the CUDA backend's, the float roundings of their exact values (nta_cuda.h,
 * bn_stats_finish: a training step's gradients are that sensitive to them).
 * Blocks of 64 rows were a few tenths of a unit off; double for every element
 * cost the training step about 16%. */
HOT static void col_moments(double *s1, double *s2, const float *z, const float *center,
                            int P, int C)
{
    int nt = nparts();
    double *part = nta_calloc((size_t)nt * 2 * C, sizeof(double));
#pragma omp parallel
    FOR_PART(t, nt) {
        int lo, hi, r = 0;
        double *p1 = part + (size_t)t * 2 * C, *p2 = p1 + C;
        split(P, t, nt, &lo, &hi);
        for (r = lo; r + 8 <= hi; r += 8) moments_rows(p1, p2, z + (size_t)r * C, center, 8, C);
        if (r < hi) moments_rows(p1, p2, z + (size_t)r * C, center, hi - r, C);
    }
    for (int c = 0; c < C; c++) s1[c] = s2[c] = 0;
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++)
            s1[c] += part[(size_t)t * 2 * C + c], s2[c] += part[(size_t)t * 2 * C + C + c];
    free(part);
}

/* y = (z - mean) * scale + beta, scale = gamma * istd, then ReLU6 if asked.
 * Centred first, so that no term is larger than the output's own scale: the
 * folded z * scale + (beta - mean * scale) rounds terms of size |mean * scale|,
 * which a large mean over a small std makes far larger than y, and a fused
 * multiply-add (nvcc contracts a*b+c) then differs from this by more than y's
 * tolerance. Centred, each rounding is within a few units of |y| + |beta|. */
HOT static void bn_apply(float *y, const float *z, const float *res, const float *mean, const float *scale,
                         const float *beta, int P, int C, int relu6)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < P; r++) {
        const float *zr = z + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        for (int c = 0; c < C; c++) {
            float v = (zr[c] - mean[c]) * scale[c] + beta[c];
            if (relu6) v = relu6f(v);
            yr[c] = v;
        }
        if (res)
            for (int c = 0; c < C; c++) yr[c] += res[(size_t)r * C + c];
    }
}

/* z [P,C]'s batch statistics into st (BnStats, nta.h) */
static void bn_stats(const BnStats *st, const float *z, int P, int C)
{
    double *s1 = nta_malloc(2 * C * sizeof(double) + 1), *s2 = s1 + C;
    float m = st->momentum;
    /* one pass: moments of z - z[0] (the first row); shifted by a sample of
     * the batch, the variance suffers no cancellation however large the mean */
    col_moments(s1, s2, z, z, P, C);
    for (int c = 0; c < C; c++) {
        double m1 = s1[c] / P, var = s2[c] / P - m1 * m1;
        st->mean[c] = (float)(z[c] + m1);
        if (var < 0) var = 0;
        st->istd[c] = (float)(1.0 / sqrt(var + NTA_BN_EPS));
        st->run_mean[c] = (1 - m) * st->run_mean[c] + m * st->mean[c];
        st->run_var[c] = (1 - m) * st->run_var[c] + m * (float)(var * P / (P > 1 ? P - 1 : 1));
    }
    free(s1);
}

static void cpu_bn_fwd_train(float *y, float *mean, float *istd, float *run_mean,
                             float *run_var, const float *z, const float *res, const float *gamma,
                             const float *beta, int P, int C, float momentum, int relu6)
{
    BnStats st = {mean, istd, run_mean, run_var, momentum};
    bn_stats(&st, z, P, C);
    if (!y) return;   /* the statistics only */
    float *scale = nta_malloc(C * sizeof(float) + 1);
    for (int c = 0; c < C; c++) scale[c] = gamma[c] * istd[c];
    bn_apply(y, z, res, mean, scale, beta, P, C, relu6);
    free(scale);
}

HOT static void cpu_add(float *y, const float *x, size_t n);

/* y = z read through zbn, + res: the statistics computed before (gemm_bn, dw_fwd) */
static void cpu_bn_apply(float *y, const float *z, const BnLoad *zbn, const float *res, int P, int C)
{
    float *tmp;
    const float *v = bn_load(zbn, z, P, C, &tmp);
    if (v != y) memcpy(y, v, (size_t)P * C * sizeof(float));
    free(tmp);
    if (res) cpu_add(y, res, (size_t)P * C);
}

/* gemm_bn: the loads as copies, the product, then the statistics */
static void cpu_gemm_bn(int ta, int tb, int M, int N, int K, const float *A, int lda, const BnLoad *abn,
                        const float *B, int ldb, const BnLoad *bbn, float beta, float *C, int ldc, const BnStats *st)
{
    float *ta_tmp, *tb_tmp;
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;   /* as stored */
    const float *a = bn_load_ld(abn, A, ar, ac, lda, &ta_tmp), *b = bn_load_ld(bbn, B, br, bc, ldb, &tb_tmp);
    gemm_run(ta, tb, M, N, K, 1.0f, a, abn ? ac : lda, b, bbn ? bc : ldb, beta, C, ldc, NULL);
    free(ta_tmp);
    free(tb_tmp);
    if (st) {
        if (ldc != N) nta_die("internal: gemm_bn statistics of a C with ldc %d != N %d", ldc, N);
        bn_stats(st, C, M, N);
    }
}

/* Eval-mode batchnorm as y = z * scale + shift: scale, shift [C] */
static void bn_eval_coeffs(float *scale, float *shift, const float *gamma, const float *beta,
                           const float *run_mean, const float *run_var, int C)
{
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(run_var[c] + NTA_BN_EPS);
        shift[c] = beta[c] - run_mean[c] * scale[c];
    }
}

static void cpu_bn_fwd_eval(float *y, const float *z, const float *gamma, const float *beta,
                            const float *run_mean, const float *run_var, int P, int C, int relu6)
{
    float *scale = nta_malloc(2 * C * sizeof(float)), *shift = scale + C;
    bn_eval_coeffs(scale, shift, gamma, beta, run_mean, run_var, C);
    bn_apply(y, z, NULL, run_mean, scale, beta, P, C, relu6);
    free(scale);
}

/* Inference: the pointwise conv with its batchnorm (+ReLU6) as the GEMM's
 * epilogue, applied to each register tile as it is stored: one pass over y. */
static void cpu_gemm_bn_eval(float *y, const float *x, int ldx, const float *w, int ldw,
                             const float *gamma, const float *beta, const float *run_mean,
                             const float *run_var, int M, int N, int K, int relu6)
{
    float *scale = nta_malloc(2 * (size_t)(N > 0 ? N : 1) * sizeof(float)), *shift = scale + N;
    bn_eval_coeffs(scale, shift, gamma, beta, run_mean, run_var, N);
    Epi ep = {scale, shift, relu6};
    gemm_run(0, 0, M, N, K, 1.0f, x, ldx, w, ldw, 0.0f, y, N, &ep);
    free(scale);
}

/* Inference: the depthwise conv with its batchnorm (+ReLU6) applied to each
 * output pixel's sums while they are in registers: one pass over y. */
static void cpu_dw_bn_eval(float *y, const float *x, const float *w, int ldr, int ldc,
                           const float *gamma, const float *beta, const float *run_mean,
                           const float *run_var, int N, int H, int W, int C, int K, int s,
                           int relu6)
{
    float *scale = nta_malloc(2 * (size_t)(C > 0 ? C : 1) * sizeof(float)), *shift = scale + C;
    bn_eval_coeffs(scale, shift, gamma, beta, run_mean, run_var, C);
    Epi ep = {scale, shift, relu6};
    dw_run(y, x, w, ldr, ldc, N, H, W, C, K, s, &ep);
    free(scale);
}

/* With xh = (z - mean) istd and g = dy masked by ReLU6 (0 < pre-activation < 6):
 *   dbeta = sum g, dgamma = sum g xh,
 *   dz = gamma istd / P (P g - dbeta - xh dgamma).
 * Pass 1 (bn_bwd_sums): g into dz, dbeta and dgamma, and g_mean = dbeta / P,
 * gx_mean = dgamma / P (this step's sums); pass 2 (bn_grad_apply). */
HOT static void cpu_bn_bwd_sums(float *dz, float *g_mean, float *gx_mean, float *dgamma, float *dbeta,
                                const float *dy, const float *z, const float *mean, const float *istd,
                                const float *gamma, const float *beta, int P, int C, int relu6)
{
    int nt = nparts();
    double *part = nta_calloc((size_t)nt * 2 * C, sizeof(double));
    /* pass 1: sums of g and g*xh; g is kept in dz for pass 2 */
#pragma omp parallel
    FOR_PART(t, nt) {
        int lo, hi;
        double *pb = part + (size_t)t * 2 * C, *pg = pb + C;
        float *b1 = scratch(0, 2 * (size_t)C), *b2 = b1 + C;
        split(P, t, nt, &lo, &hi);
        for (int r0 = lo; r0 < hi; r0 += 64) {
            int r1 = r0 + 64 < hi ? r0 + 64 : hi;
            memset(b1, 0, 2 * C * sizeof(float));
            for (int r = r0; r < r1; r++) {
                const float *zr = z + (size_t)r * C, *gr = dy + (size_t)r * C;
                float *dr = dz + (size_t)r * C;    /* may be gr: same index only */
                if (relu6) {
#pragma GCC ivdep
                    for (int c = 0; c < C; c++) {
                        float xh = (zr[c] - mean[c]) * istd[c], pre = gamma[c] * xh + beta[c];
                        float g = relu6_grad(pre, gr[c]);
                        dr[c] = g;
                        b1[c] += g;
                        b2[c] += g * xh;
                    }
                } else {
#pragma GCC ivdep
                    for (int c = 0; c < C; c++) {
                        float xh = (zr[c] - mean[c]) * istd[c], g = gr[c];
                        dr[c] = g;
                        b1[c] += g;
                        b2[c] += g * xh;
                    }
                }
            }
            for (int c = 0; c < C; c++) pb[c] += b1[c], pg[c] += b2[c];
        }
    }
    for (int c = 0; c < C; c++) {
        double b = 0, g = 0;
        for (int t = 0; t < nt; t++) b += part[(size_t)t * 2 * C + c], g += part[(size_t)t * 2 * C + C + c];
        dbeta[c] += (float)b;
        dgamma[c] += (float)g;
        g_mean[c] = (float)(b / P);
        gx_mean[c] = (float)(g / P);
    }
    free(part);
}

/* pass 2: dz [P,C] = k (g - mean(g) - xh mean(g xh)), k = gamma istd, from g
 * [P,C] (leading dimension ldg; may be dz when ldg = C) and z [P,C] (ldg) */
HOT static void bn_grad_apply(float *dz, const float *g, int ldg, const float *z, const float *mean,
                              const float *istd, const float *gamma, const float *g_mean, const float *gx_mean,
                              int P, int C)
{
    float *k = nta_malloc(C * sizeof(float) + 1);
    for (int c = 0; c < C; c++) k[c] = gamma[c] * istd[c];
#pragma omp parallel for schedule(static)
    for (int r = 0; r < P; r++) {
        const float *zr = z + (size_t)r * ldg, *gr = g + (size_t)r * ldg;
        float *dr = dz + (size_t)r * C;
#pragma GCC ivdep
        for (int c = 0; c < C; c++) {
            float xh = (zr[c] - mean[c]) * istd[c];
            dr[c] = k[c] * (gr[c] - g_mean[c] - xh * gx_mean[c]);
        }
    }
    free(k);
}

static void cpu_bn_bwd(float *dz, float *dgamma, float *dbeta, const float *dy, const float *z,
                       const float *mean, const float *istd, const float *gamma, const float *beta, int P, int C,
                       int relu6)
{
    float *means = nta_malloc(2 * C * sizeof(float) + 1);
    cpu_bn_bwd_sums(dz, means, means + C, dgamma, dbeta, dy, z, mean, istd, gamma, beta, P, C, relu6);
    bn_grad_apply(dz, dz, C, z, mean, istd, gamma, means, means + C, P, C);
    free(means);
}

/* ------------------------------------------------ small elementwise ops */

HOT static void cpu_add(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_gap_fwd(float *y, const float *x0, const BnLoad *xbn, int N, int HW, int C)
{
    float *tmp;
    const float *x = bn_load(xbn, x0, N * HW, C, &tmp);
    for (int n = 0; n < N; n++) {
        float *yn = y + (size_t)n * C;
        memset(yn, 0, C * sizeof(float));
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) yn[c] += x[((size_t)n * HW + p) * C + c];
        for (int c = 0; c < C; c++) yn[c] /= HW;
    }
    free(tmp);
}

static void cpu_gap_bwd(float *dx, const float *dy, int N, int HW, int C)
{
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++) dx[((size_t)n * HW + p) * C + c] = dy[(size_t)n * C + c] / HW;
}

static void cpu_bias_fwd(float *y, const float *b, int M, int N)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) y[(size_t)i * N + j] += b[j];
}

static void cpu_bias_bwd(float *db, const float *dy, int M, int N)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) db[j] += dy[(size_t)i * N + j];
}

static double cpu_xent(float *dlogits, int *correct, const float *logits,
                       const int32_t *label, int N, int L)
{
    cpu_govern();       /* once per batch */
    double loss = 0;
    int right = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * L;
        float *d = dlogits + (size_t)n * L;
        int best = 0;
        for (int j = 1; j < L; j++) if (z[j] > z[best]) best = j;
        double sum = 0;
        for (int j = 0; j < L; j++) sum += exp((double)z[j] - z[best]);
        for (int j = 0; j < L; j++)
            d[j] = (float)(exp((double)z[j] - z[best]) / sum / N);
        d[label[n]] -= 1.0f / N;
        loss += log(sum) - ((double)z[label[n]] - z[best]);
        right += best == label[n];
    }
    if (correct) *correct = right;
    return loss;
}

/* Mean absolute error of pred [N] against target [N]: dpred = sign(pred - t) / N
 * (0 where equal); returns the summed absolute error. */
static double cpu_l1(float *dpred, const float *pred, const float *target, int N)
{
    cpu_govern();       /* once per batch */
    double loss = 0;
    for (int n = 0; n < N; n++) {
        float e = pred[n] - target[n];
        dpred[n] = (float)((e > 0) - (e < 0)) / N;
        loss += fabsf(e);
    }
    return loss;
}

/* xent and l1 adding into acc (nta.h): on the CPU backend memory is host memory */
static void cpu_xent_acc(float *dlogits, double *acc, const float *logits, const int32_t *label, int N, int L)
{
    int right;
    double loss = cpu_xent(dlogits, &right, logits, label, N, L);
    if (acc) acc[0] += loss, acc[1] += right;
}

static void cpu_l1_acc(float *dpred, double *acc, const float *pred, const float *target, int N)
{
    double loss = cpu_l1(dpred, pred, target, N);
    if (acc) acc[0] += loss;
}

/* Softmax entropy H = -sum p log p of each row of logits [N,L], mean over rows
 * times weight: dlogits = weight * -p (log p + H) / N; returns the summed H. */
static double cpu_entropy(float *dlogits, const float *logits, float weight, int N, int L)
{
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * L;
        float *d = dlogits + (size_t)n * L;
        double zmax = z[0], sum = 0, h = 0;
        for (int j = 1; j < L; j++) if (z[j] > zmax) zmax = z[j];
        for (int j = 0; j < L; j++) sum += exp(z[j] - zmax);
        double lse = zmax + log(sum);
        for (int j = 0; j < L; j++) h -= exp(z[j] - lse) * (z[j] - lse);
        for (int j = 0; j < L; j++) d[j] = (float)(-weight * exp(z[j] - lse) * (z[j] - lse + h) / N);
        total += h;
    }
    return total;
}

/* Linear MMD of x [N,C] between rows [0,S) and [S,N): with m = mean_a - mean_b
 * per channel, loss = weight * sum m^2; dx = 2 weight m / S on the first rows,
 * -2 weight m / (N-S) on the rest. */
static double cpu_mmd(float *dx, const float *x, int N, int S, int C, float weight)
{
    double loss = 0;
    for (int c = 0; c < C; c++) {
        double a = 0, b = 0;
        for (int n = 0; n < S; n++) a += x[(size_t)n * C + c];
        for (int n = S; n < N; n++) b += x[(size_t)n * C + c];
        double m = a / S - b / (N - S);
        for (int n = 0; n < N; n++) dx[(size_t)n * C + c] = (float)(2 * weight * m / (n < S ? S : -(N - S)));
        loss += m * m;
    }
    return weight * loss;
}

/* ------------------------------------------- self-supervised learning */

/* Per row of x [N,D]: norm = |x| (in double), y = x / max(norm, NTA_L2_EPS). */
static void cpu_l2norm_fwd(float *y, float *norm, const float *x, int N, int D)
{
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        double len = sqrt(ss), div = len > NTA_L2_EPS ? len : NTA_L2_EPS;
        norm[n] = (float)len;
        for (int d = 0; d < D; d++) y[(size_t)n * D + d] = (float)(xr[d] / div);
    }
}

/* dx = (dy - y (y.dy)) / |x| where |x| > NTA_L2_EPS, else dy / NTA_L2_EPS
 * (there y = x / eps is linear in x). */
static void cpu_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int N, int D)
{
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        const float *yr = y + (size_t)n * D, *gr = dy + (size_t)n * D;
        double dot = 0, len = norm[n];
        for (int d = 0; d < D; d++) dot += (double)yr[d] * gr[d];
        if (!(len > NTA_L2_EPS)) dot = 0, len = NTA_L2_EPS;
        for (int d = 0; d < D; d++) dx[(size_t)n * D + d] = (float)((gr[d] - yr[d] * dot) / len);
    }
}

/* The similarity e_i.e_j / tau of two rows of e [N,D], in double. */
static double ntxent_sim(const float *e, int i, int j, int D, double inv_tau)
{
    const float *a = e + (size_t)i * D, *b = e + (size_t)j * D;
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s * inv_tau;
}

/* With s_ij = e_i.e_j / tau, pos(i) = (i + N/2) mod N, and over j != i:
 *   lse_i = log sum_j exp s_ij,   loss_i = lse_i - s_i,pos(i),
 *   p_ij = exp(s_ij - lse_i),
 *   de_k = 1/(N tau) sum_{j != k} (p_kj + p_jk - 2 [j = pos(k)]) e_j
 * (s is symmetric, and k is the positive of j when j is k's). Two passes
 * over the rows, each O(N^2 D): lse of every row, then the gradient. */
static double cpu_ntxent(float *de, int *correct, const float *e, int N, int D, float tau)
{
    cpu_govern();       /* once per batch */
    double inv_tau = 1.0 / tau, *lse = nta_malloc((size_t)N * sizeof(double));
    double *loss = nta_malloc((size_t)N * sizeof(double));
    int *right = nta_malloc((size_t)N * sizeof(int)), half = N / 2;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        int pos = (i + half) % N, best = -1;
        double m = -INFINITY, z = 0, sp = 0, sbest = -INFINITY;
        for (int j = 0; j < N; j++) {     /* online log-sum-exp over j != i */
            if (j == i) continue;
            double s = ntxent_sim(e, i, j, D, inv_tau);
            if (s > sbest) sbest = s, best = j;
            if (s > m) z = z * exp(m - s) + 1, m = s;
            else z += exp(s - m);
            if (j == pos) sp = s;
        }
        lse[i] = m + log(z);
        loss[i] = lse[i] - sp;
        right[i] = best == pos;
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < N; k++) {
        double *acc = nta_calloc((size_t)D, sizeof(double));
        int pos = (k + half) % N;
        for (int j = 0; j < N; j++) {
            if (j == k) continue;
            double s = ntxent_sim(e, k, j, D, inv_tau);
            double w = exp(s - lse[k]) + exp(s - lse[j]) - (j == pos ? 2 : 0);
            const float *ej = e + (size_t)j * D;
            for (int d = 0; d < D; d++) acc[d] += w * ej[d];
        }
        for (int d = 0; d < D; d++) de[(size_t)k * D + d] = (float)(acc[d] * inv_tau / N);
        free(acc);
    }
    double sum = 0;
    int r = 0;
    for (int i = 0; i < N; i++) sum += loss[i], r += right[i];
    if (correct) *correct = r;
    free(lse), free(loss), free(right);
    return sum;
}

HOT static void cpu_sgd(float *w, float *m, const float *g, const float *decay, size_t n, const float *rate,
                        float mu, float wd)
{
    float lr = *rate;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        if (decay[i] < 0) continue;
        float d = g[i] + decay[i] * wd * w[i];
        m[i] = mu * m[i] + d;
        w[i] -= lr * m[i];
    }
}

const Backend cpu_backend = {
    .name = "cpu",
    .eval_piece = 2,    /* inference: 2 images per piece, one thread each (net_forward) */
    .load_bn = 0,       /* training: the depthwise conv reads the batchnorm's normalised copy */
    .alloc = cpu_alloc, .free = cpu_free, .upload = cpu_copy, .download = cpu_copy,
    .zero = cpu_zero,
    .gemm = cpu_gemm,
    .conv_fwd = cpu_conv_fwd, .conv_bwd_w = cpu_conv_bwd_w,
    .dw_fwd = cpu_dw_fwd, .dw_bwd_x = cpu_dw_bwd_x, .dw_bwd_w = cpu_dw_bwd_w,
    .bn_fwd_train = cpu_bn_fwd_train, .bn_fwd_eval = cpu_bn_fwd_eval, .bn_bwd = cpu_bn_bwd,
    .gemm_bn = cpu_gemm_bn, .bn_apply = cpu_bn_apply, .bn_bwd_sums = cpu_bn_bwd_sums,
    .add = cpu_add, .gap_fwd = cpu_gap_fwd, .gap_bwd = cpu_gap_bwd,
    .bias_fwd = cpu_bias_fwd, .bias_bwd = cpu_bias_bwd,
    .xent = cpu_xent, .l1 = cpu_l1, .xent_acc = cpu_xent_acc, .l1_acc = cpu_l1_acc,
    .entropy = cpu_entropy, .mmd = cpu_mmd,
    .l2norm_fwd = cpu_l2norm_fwd, .l2norm_bwd = cpu_l2norm_bwd, .ntxent = cpu_ntxent, .sgd = cpu_sgd,
    .gemm_bn_eval = cpu_gemm_bn_eval, .dw_bn_eval = cpu_dw_bn_eval,
    .graph_begin = NULL, .graph_end = NULL, .graph_run = NULL, .graph_free = NULL,   /* no graphs */
};
