/* bench/ops.c: where a CPU training step and an inference pass of the
 * reference network spend their time, per backend op. Wraps every op of
 * cpu_backend in a timer (the step runs unchanged through net.c) and prints
 * one markdown row per op: calls per step and milliseconds per step.
 * Inference would split the batch into pieces run on each thread (net.c,
 * Backend.eval_piece); the wrapped copy sets eval_piece to 0 and runs the whole
 * batch op by op: its table shows where the time goes, not the pieces' speed.
 *   usage: bench/ops BATCH [THREADS [STEPS]]
 * The minimum over STEPS of each op's per-step time is reported, which keeps
 * the table steady on a shared machine. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

enum { OP_GEMM, OP_CONV_FWD, OP_CONV_BWD_W, OP_DW_FWD, OP_DW_BWD_X, OP_DW_BWD_W,
       OP_BN_TRAIN, OP_BN_EVAL, OP_BN_BWD, OP_ADD, OP_GAP_FWD, OP_GAP_BWD, OP_BIAS_FWD,
       OP_BIAS_BWD, OP_XENT, OP_SGD, OP_ZERO, OP_GEMM_BN_EVAL, OP_DW_BN_EVAL, NOPS };
static const char *op_name[NOPS] = {
    "gemm", "conv_fwd", "conv_bwd_w", "dw_fwd", "dw_bwd_x", "dw_bwd_w", "bn_fwd_train",
    "bn_fwd_eval", "bn_bwd", "add", "gap_fwd", "gap_bwd", "bias_fwd", "bias_bwd", "xent",
    "sgd", "zero", "gemm_bn_eval", "dw_bn_eval"};
static double t_op[NOPS];    /* seconds in this step */
static int n_op[NOPS];       /* calls in this step */

#define TIMED(op, call) do { double t0_ = nta_now(); call; t_op[op] += nta_now() - t0_; n_op[op]++; } while (0)

static void t_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{ TIMED(OP_GEMM, cpu_backend.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)); }
static void t_conv_fwd(float *y, const float *x, const float *w, int N, int H, int W, int Ci,
                       int Co, int K, int s)
{ TIMED(OP_CONV_FWD, cpu_backend.conv_fwd(y, x, w, N, H, W, Ci, Co, K, s)); }
static void t_conv_bwd_w(float *dw, const float *dy, const BnLoad *dybn, const float *x, int N, int H, int W,
                         int Ci, int Co, int K, int s)
{ TIMED(OP_CONV_BWD_W, cpu_backend.conv_bwd_w(dw, dy, dybn, x, N, H, W, Ci, Co, K, s)); }
static void t_dw_fwd(float *y, const BnStats *st, const float *x, const BnLoad *xbn, const float *w, int ldr, int ldc, int N, int H,
                     int W, int C, int K, int s)
{ TIMED(OP_DW_FWD, cpu_backend.dw_fwd(y, st, x, xbn, w, ldr, ldc, N, H, W, C, K, s)); }
static void t_dw_bwd_x(float *dx, const float *dy, const BnLoad *dybn, const float *w, int ldr, int ldc, int N,
                       int H, int W, int C, int K, int s)
{ TIMED(OP_DW_BWD_X, cpu_backend.dw_bwd_x(dx, dy, dybn, w, ldr, ldc, N, H, W, C, K, s)); }
static void t_dw_bwd_w(float *dw, int ldr, int ldc, const float *dy, const BnLoad *dybn, const float *x, const BnLoad *xbn, int N,
                       int H, int W, int C, int K, int s)
{ TIMED(OP_DW_BWD_W, cpu_backend.dw_bwd_w(dw, ldr, ldc, dy, dybn, x, xbn, N, H, W, C, K, s)); }
static void t_bn_train(float *y, float *mean, float *istd, float *rm, float *rv, const float *z, const float *res,
                       const float *g, const float *b, int P, int C, float mom, int relu6)
{ TIMED(OP_BN_TRAIN, cpu_backend.bn_fwd_train(y, mean, istd, rm, rv, z, res, g, b, P, C, mom, relu6)); }
static void t_bn_eval(float *y, const float *z, const float *g, const float *b, const float *rm,
                      const float *rv, int P, int C, int relu6)
{ TIMED(OP_BN_EVAL, cpu_backend.bn_fwd_eval(y, z, g, b, rm, rv, P, C, relu6)); }
static void t_bn_bwd(float *dz, float *dg, float *db, const float *dy, const float *z,
                     const float *mean, const float *istd, const float *g, const float *b,
                     int P, int C, int relu6)
{ TIMED(OP_BN_BWD, cpu_backend.bn_bwd(dz, dg, db, dy, z, mean, istd, g, b, P, C, relu6)); }
static void t_add(float *y, const float *x, size_t n) { TIMED(OP_ADD, cpu_backend.add(y, x, n)); }
static void t_gap_fwd(float *y, const float *x, const BnLoad *xbn, int N, int HW, int C)
{ TIMED(OP_GAP_FWD, cpu_backend.gap_fwd(y, x, xbn, N, HW, C)); }
static void t_gap_bwd(float *dx, const float *dy, int N, int HW, int C)
{ TIMED(OP_GAP_BWD, cpu_backend.gap_bwd(dx, dy, N, HW, C)); }
static void t_bias_fwd(float *y, const float *b, int M, int N)
{ TIMED(OP_BIAS_FWD, cpu_backend.bias_fwd(y, b, M, N)); }
static void t_bias_bwd(float *db, const float *dy, int M, int N)
{ TIMED(OP_BIAS_BWD, cpu_backend.bias_bwd(db, dy, M, N)); }
static double t_xent(float *d, int *correct, const float *z, const int32_t *y, int N, int L)
{ double r; TIMED(OP_XENT, r = cpu_backend.xent(d, correct, z, y, N, L)); return r; }
static void t_sgd(float *w, float *m, const float *g, const float *decay, size_t n, const float *lr, float mu,
                  float wd)
{ TIMED(OP_SGD, cpu_backend.sgd(w, m, g, decay, n, lr, mu, wd)); }
static void t_zero(void *p, size_t bytes) { TIMED(OP_ZERO, cpu_backend.zero(p, bytes)); }
static void t_gemm_bn_eval(float *y, const float *x, int ldx, const float *w, int ldw,
                           const float *g, const float *b, const float *rm, const float *rv,
                           int M, int N, int K, int relu6)
{ TIMED(OP_GEMM_BN_EVAL, cpu_backend.gemm_bn_eval(y, x, ldx, w, ldw, g, b, rm, rv, M, N, K, relu6)); }
static void t_dw_bn_eval(float *y, const float *x, const float *w, int ldr, int ldc,
                         const float *g, const float *b, const float *rm, const float *rv, int N,
                         int H, int W, int C, int K, int s, int relu6)
{ TIMED(OP_DW_BN_EVAL, cpu_backend.dw_bn_eval(y, x, w, ldr, ldc, g, b, rm, rv, N, H, W, C, K, s, relu6)); }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BATCH [THREADS [STEPS]]\n", argv[0]);
        return 2;
    }
    int B = atoi(argv[1]), T = argc > 2 ? atoi(argv[2]) : 2, steps = argc > 3 ? atoi(argv[3]) : 20;
    if (B < 2 || T < 1 || steps < 1) nta_die("bad batch %d, threads %d or steps %d", B, T, steps);
    cpu_set_threads(T);
    Backend be = cpu_backend;
    be.gemm = t_gemm, be.conv_fwd = t_conv_fwd, be.conv_bwd_w = t_conv_bwd_w;
    be.dw_fwd = t_dw_fwd, be.dw_bwd_x = t_dw_bwd_x, be.dw_bwd_w = t_dw_bwd_w;
    be.bn_fwd_train = t_bn_train, be.bn_fwd_eval = t_bn_eval, be.bn_bwd = t_bn_bwd;
    be.add = t_add, be.gap_fwd = t_gap_fwd, be.gap_bwd = t_gap_bwd;
    be.bias_fwd = t_bias_fwd, be.bias_bwd = t_bias_bwd, be.xent = t_xent, be.sgd = t_sgd;
    be.zero = t_zero, be.gemm_bn_eval = t_gemm_bn_eval;
    be.dw_bn_eval = t_dw_bn_eval;
    be.eval_piece = 0;     /* the whole batch op by op (see the top) */
    NetDesc d = net_reference(28, 28, 1, 10);
    Net *net = net_create(&d, LOSS_XENT, &be, B, 1, 0);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * 28 * 28; i++) net->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)rng_below(&r, 10);

    for (int train = 1; train >= 0; train--) {
        double best[NOPS], best_step = 1e30;
        int calls[NOPS];
        for (int o = 0; o < NOPS; o++) best[o] = 1e30;
        for (int s = 0; s <= steps; s++) {        /* step 0 warms up */
            memset(t_op, 0, sizeof t_op);
            memset(n_op, 0, sizeof n_op);
            double t0 = nta_now();
            bench_step(net, B, train);
            double t = nta_now() - t0;
            if (s == 0) continue;
            if (t < best_step) best_step = t;
            for (int o = 0; o < NOPS; o++) {
                if (t_op[o] < best[o]) best[o] = t_op[o];
                calls[o] = n_op[o];
            }
        }
        double sum = 0;
        printf("\n%s, batch %d, %d threads (best of %d steps): %.2f ms per step, %.0f img/s\n\n",
               train ? "training step" : "inference", B, T, steps, best_step * 1e3, B / best_step);
        printf("| op | calls | ms |\n|---|---:|---:|\n");
        for (int o = 0; o < NOPS; o++) {
            if (!calls[o]) continue;
            printf("| %s | %d | %.3f |\n", op_name[o], calls[o], best[o] * 1e3);
            sum += best[o];
        }
        printf("| (sum of ops) | | %.3f |\n", sum * 1e3);
    }
    net_free(net);
    return 0;
}
