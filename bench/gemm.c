/* bench/gemm.c: our GEMM against OpenBLAS on the shapes the reference network
 * really runs. One training step (forward + backward) is run through a
 * backend that records every gemm call; each distinct call is then timed
 * with cpu_backend.gemm and with cblas_sgemm on the same operands (the best
 * of REPS calls in each of ROUNDS passes), both on THREADS threads. OpenBLAS
 * is linked into this benchmark only, never into nta.
 *   usage: bench/gemm BATCH [THREADS [REPS]]
 * Prints a markdown table: shape, where it is used, GFLOP/s of each, ratio. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ROUNDS = 3 };     /* passes over the shapes, each side's best kept */

typedef struct { int ta, tb, M, N, K, lda, ldb, ldc; float beta; int count; } Shape;
static Shape shapes[64];
static int nshapes;

static void rec_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    Shape s = {ta, tb, M, N, K, lda, ldb, ldc, beta, 1};
    for (int i = 0; i < nshapes; i++) {
        Shape *t = &shapes[i];
        if (t->ta == ta && t->tb == tb && t->M == M && t->N == N && t->K == K &&
            t->lda == lda && t->ldb == ldb && t->ldc == ldc && t->beta == beta) {
            t->count++;
            s.count = 0;
            break;
        }
    }
    if (s.count && nshapes < 64) shapes[nshapes++] = s;
    cpu_backend.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* best seconds of reps calls */
static double best_time(int ours, const Shape *s, const float *A, const float *B, float *C, int reps)
{
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = nta_now();
        if (ours)
            cpu_backend.gemm(s->ta, s->tb, s->M, s->N, s->K, 1, A, s->lda, B, s->ldb, s->beta, C,
                             s->ldc);
        else
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                        s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1, A, s->lda, B,
                        s->ldb, s->beta, C, s->ldc);
        double t = nta_now() - t0;
        if (r && t < best) best = t;     /* r == 0 warms up */
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BATCH [THREADS [REPS]]\n", argv[0]);
        return 2;
    }
    int B = atoi(argv[1]), T = argc > 2 ? atoi(argv[2]) : 2, reps = argc > 3 ? atoi(argv[3]) : 20;
    if (B < 2 || T < 1 || reps < 1) nta_die("bad batch %d, threads %d or reps %d", B, T, reps);
    cpu_set_threads(T);
    openblas_set_num_threads(T);
    Backend be = cpu_backend;
    be.gemm = rec_gemm;
    NetDesc d = net_reference(28, 28, 1, 10);
    Net *net = net_create(&d, LOSS_XENT, &be, B, 1, 0);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * 28 * 28; i++) net->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)rng_below(&r, 10);
    net_zero_grad(net);
    net_forward(net, B, 1);
    net_loss(net, B, NULL);
    net_backward(net, B);

    /* ROUNDS passes over all shapes, keeping each side's best: a burst of
     * noise (this machine has them) then hits one turn of a shape, not all.
     * In a pass, OpenBLAS then ours, a pause before each: idle OpenMP and
     * OpenBLAS threads spin for a while after their last work and would
     * steal the other's cores. */
    double tb[64], to[64];
    for (int i = 0; i < nshapes; i++) tb[i] = to[i] = 1e30;
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < nshapes; i++) {
            const Shape *s = &shapes[i];
            size_t na = (size_t)(s->ta ? s->K : s->M) * s->lda, nb = (size_t)(s->tb ? s->N : s->K) * s->ldb;
            size_t nc = (size_t)s->M * s->ldc;
            float *A = malloc(na * sizeof(float)), *Bm = malloc(nb * sizeof(float));
            float *C = calloc(nc, sizeof(float)), *C2 = calloc(nc, sizeof(float));
            for (size_t j = 0; j < na; j++) A[j] = rng_normal(&r);
            for (size_t j = 0; j < nb; j++) Bm[j] = rng_normal(&r);
            nanosleep(&(struct timespec){0, 50000000}, NULL);
            tb[i] = fmin(tb[i], best_time(0, s, A, Bm, C2, reps));
            nanosleep(&(struct timespec){0, 50000000}, NULL);
            to[i] = fmin(to[i], best_time(1, s, A, Bm, C, reps));
            if (round == 0 && s->beta == 0) {     /* same operands, so the same product */
                double err = 0, mag = 0;
                for (size_t j = 0; j < nc; j++) {
                    err = fmax(err, fabs((double)C[j] - C2[j]));
                    mag = fmax(mag, fabs(C2[j]));
                }
                if (err > 1e-4 * mag)
                    fprintf(stderr, "gemm: %dx%dx%d differs from OpenBLAS by %.3g\n", s->M, s->N, s->K,
                            err / mag);
            }
            free(A), free(Bm), free(C), free(C2);
        }

    printf("\nGEMM, batch %d, %d threads, best of %d passes of %d calls: ours vs OpenBLAS %s\n\n", B,
           T, ROUNDS, reps, openblas_get_config());
    printf("| op(A) x op(B) | M | N | K | calls/step | ours GFLOP/s | OpenBLAS GFLOP/s | ours/OpenBLAS |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    double tot_ours = 0, tot_blas = 0;
    for (int i = 0; i < nshapes; i++) {
        const Shape *s = &shapes[i];
        double fl = 2.0 * s->M * s->N * s->K;
        tot_ours += to[i] * s->count, tot_blas += tb[i] * s->count;
        printf("| %s x %s | %d | %d | %d | %d | %.1f | %.1f | %.2f |\n", s->ta ? "A'" : "A",
               s->tb ? "B'" : "B", s->M, s->N, s->K, s->count, fl / to[i] * 1e-9, fl / tb[i] * 1e-9,
               tb[i] / to[i]);
    }
    printf("| **all calls of a step** | | | | | %.2f ms | %.2f ms | %.2f |\n", tot_ours * 1e3,
           tot_blas * 1e3, tot_blas / tot_ours);
    net_free(net);
    return 0;
}
