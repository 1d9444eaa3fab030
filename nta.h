/* nta.h: the types every module shares.
 *
 * Shape legend (used in comments across the project):
 *   N  images in a batch          H, W  height, width of an activation
 *   C  channels (Ci in, Co out)   P     rows of an NHWC tensor = N*H*W
 *   K  kernel size (3, 5 or 7)    E     expanded channels of a block
 *   L  classes (logits)
 * Activations are NHWC: element (n, y, x, c) of an [N,H,W,C] tensor sits at
 * ((n*H + y)*W + x)*C + c, so a pointwise conv is one GEMM [P,Ci] x [Ci,Co].
 * Weights are stored at their largest size and read through pitches, so an
 * elastic sub-layer (fewer channels, a smaller kernel) needs no copy.
 */
#ifndef NTA_H
#define NTA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NTA_BN_EPS 1e-5f          /* batchnorm epsilon, the one value every backend uses */
#define NTA_L2_EPS 1e-12f         /* l2norm: the smallest length a row is divided by (as PyTorch's) */

/* ------------------------------------------------------ shared arithmetic */

/* Computed alike by the network code, the CPU ops and the CUDA kernels, so
 * defined once here (nta_cuda.h includes this file). Under nvcc a function a
 * kernel calls is also a device function. */
#if defined(__CUDACC__)
#define NTA_HOST_DEVICE __host__ __device__
#else
#define NTA_HOST_DEVICE
#endif

/* Output size of a KxK conv with stride s and padding K/2 over n pixels. */
static inline int conv_out(int n, int K, int s) { return (n + 2 * (K / 2) - K) / s + 1; }
/* ReLU6: min(max(v, 0), 6). (cpu.c's relu6_8 does it on 8 floats, but maps
 * -0 and NaN to +0.) */
static inline NTA_HOST_DEVICE float relu6f(float v) { return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v; }
/* Its backward: the gradient g where 0 < pre < 6 (pre: the value ReLU6 was
 * applied to), else 0. `&`, not `&&`: both tests always run, nothing to branch on. */
static inline NTA_HOST_DEVICE float relu6_grad(float pre, float g)
{
    return ((pre > 0.0f) & (pre < 6.0f)) ? g : 0.0f;
}

/* ----------------------------------------------------------------- errors */

/* Print "nta: message" to stderr and exit(1). Every user-facing failure ends
 * here or returns an error code that ends here. */
void nta_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* The same, exit(2): an option that does not fit what it applies to (the
 * data's size, the search space), found after the options were read. */
void nta_die_option(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void *nta_malloc(size_t bytes);        /* dies with a message when out of memory */
void *nta_calloc(size_t n, size_t size);
double nta_now(void);                  /* seconds, monotonic */
/* A duration as "42s", "3m07s" or "1h05m". */
void nta_fmt_time(char *buf, size_t len, double seconds);
/* Read a whole regular file of at most maxbytes (NUL-terminated); NULL and a
 * message naming the file on failure. */
uint8_t *nta_read_file(const char *path, size_t maxbytes, size_t *len, char *err, size_t errlen);

/* ------------------------------------------------------------------- rng */

/* A counter-based generator (splitmix64 over a counter): the same seed gives
 * the same stream on every machine and thread count. */
typedef struct { uint64_t state; } Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
uint32_t rng_below(Rng *r, uint32_t n);  /* uniform in [0, n) */
float rng_uniform(Rng *r);               /* uniform in [0, 1) */
float rng_normal(Rng *r);                /* standard normal */

/* ------------------------------------------------------------------ data */

/* Images are kept as bytes; batches are made as normalised floats. */
typedef struct {
    int n, h, w, c;         /* n images of [H,W,C] */
    uint8_t *pix;           /* [n,H,W,C] */
    int32_t *label;         /* [n] */
    float *value;           /* [n] regression targets, or NULL */
    int classes;            /* 1 + the largest label */
} Dataset;

/* What a task asks of the network (see data_task). */
enum { TASK_CLASSIFY, TASK_REGRESS, TASK_RETRIEVE, TASK_UDA };

typedef struct {
    Dataset train, val, test;
    float mean[4], std[4];  /* per channel, from the training split, in [0,1] units */
    int pad;                /* random-crop padding (pixels) when augmenting */
    int flip;               /* random horizontal flip when augmenting */
    char name[64];
    int kind;               /* TASK_*: TASK_CLASSIFY for plain datasets */
    Dataset target;         /* TASK_UDA: unlabelled target-domain training images
                               (labels zeroed); test is then the target domain */
} DataSplits;

/* Spec forms: "fashion-mnist", "mnist", "idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]",
 * "cifar:DIR". Dies with a message naming the file and what is wrong.
 * Sources without a test file hold out a test split chosen by a fixed seed
 * (the same on every run). Then limit, if > 0, keeps the first `limit`
 * training images and at most `limit` test images; then val images are held
 * out of the training split by a shuffle seeded with `seed`. */
void data_load(DataSplits *d, const char *spec, int val, int limit, uint64_t seed);
/* Whether a spec (data_load) or a task name (data_task) has a known form,
 * without reading any file: 0, or -1 with a message in err. */
int data_spec_check(const char *spec, char *err, size_t errlen);
int data_task_check(const char *task, char *err, size_t errlen);
void data_free(DataSplits *d);
/* The target tasks (README, "Tasks"), built deterministically from the
 * installed data: "mnist", "mnist-parity", "mnist-rotation" (value = angle /
 * DATA_ROT_MAX), "mnist-retrieval" (train on digits 0-5; val and test hold
 * digits 6-9 as unseen identities), "mnist-uda" (labelled MNIST; target:
 * MNIST digits blended onto Fashion-MNIST images), or "classify:SPEC" with
 * SPEC as for data_load. train_images > 0 keeps the first that many labelled
 * training images. Dies naming the task when it is unknown. */
#define DATA_ROT_MAX 45.0f
void data_task(DataSplits *d, const char *task, int train_images, int val, int limit, uint64_t seed);
/* Read one IDX file (raw or gzip). On failure returns -1 and writes a message
 * naming the file into err. ndim/dims: the IDX header; *bytes: the payload. */
int data_read_idx(const char *path, int *ndim, int dims[4], uint8_t **bytes,
                  char *err, size_t errlen);
/* Read one MNIST JSON digit file, {"data": [v0, v1, ...]} with every v in
 * [0,1] and 784 values (28x28) per image: *pix [n,28,28] bytes round(v*255)
 * and *n. On failure returns -1 when the file cannot be read, -2 when its
 * contents are wrong, with a message naming the file in err. */
int data_read_mnist_json(const char *path, uint8_t **pix, int *n, char *err, size_t errlen);
/* Read one CIFAR-10 binary batch (records of 1 label byte + R, G, B planes of
 * 32x32): *pix [n,32,32,3], *label [n], *n. On failure returns -1 and writes
 * a message naming the file into err. */
int data_read_cifar(const char *path, uint8_t **pix, int32_t **label, int *n,
                    char *err, size_t errlen);
/* Fill x [B,H,W,C] (normalised floats) and y [B] from images idx[0..B).
 * rng == NULL: no augmentation. */
void data_batch(const DataSplits *d, const Dataset *s, const int *idx, int B,
                float *x, int32_t *y, Rng *rng);
/* Two augmented views of images idx[0..n) (self-supervised pretraining; no
 * label is read): x [2n,H,W,C] normalised floats, rows b and n + b the two
 * views of image idx[b]. The transformations are drawn from rng (data.c,
 * view_draw: resized crop, rotation, flip where allowed, contrast,
 * brightness, noise, erasing). */
void data_views(const DataSplits *d, const Dataset *s, const int *idx, int n, float *x, Rng *rng);
/* A seeded permutation of 0..n-1 into perm. */
void data_shuffle(int *perm, int n, Rng *rng);

/* --------------------------------------------------------------- backend */

/* An input read through its batchnorm (training statistics mean, istd [C]),
 * so that no normalised copy of it is written. Per channel c (the stored
 * column of the tensor x [P,C] or of a GEMM operand):
 *   forward (z NULL): x' = (x - mean) * (gamma istd) + beta, then ReLU6 if
 *     relu6, as bn_fwd_train would have written it from a conv's output x;
 *   backward (z set): x holds g, the gradient masked by ReLU6 that
 *     bn_bwd_sums wrote, and x' = gamma istd (g - g_mean - (z - mean) istd
 *     gx_mean), the dz that bn_bwd would have written; z has x's layout.
 * An op given NULL reads x as it is. */
typedef struct {
    const float *mean, *istd, *gamma, *beta;
    int relu6;
    const float *z, *g_mean, *gx_mean;   /* backward only: [P,C] like x; [C], [C] */
} BnLoad;
/* Where an op that produces a conv's output z also computes z's batchnorm
 * statistics, as bn_fwd_train with y NULL does: mean, istd [C] saved,
 * run_mean, run_var [C] updated with momentum. */
typedef struct { float *mean, *istd, *run_mean, *run_var; float momentum; } BnStats;

/* The operations a network runs; the CPU (cpu.c) and CUDA backends implement the
 * same signatures. Pointers are backend memory. Outputs first, then saved
 * statistics, then inputs, then weights, then sizes. "acc" = accumulate into
 * the output (beta = 1) instead of overwriting it. */
typedef struct Backend {
    const char *name;
    /* How net_forward runs inference: 0, each op over the whole batch; n > 0,
     * the batch in pieces of n images, each thread running whole pieces
     * through the network on its own (so they stay in its core's cache). */
    int eval_piece;
    /* How training applies its batchnorms: 1, fused into the ops around them
     * (on a GPU, each saves a launch and a pass over a tensor): the conv that
     * produces z computes its statistics (gemm_bn, dw_fwd with a BnStats), the
     * consumers read z through the batchnorm (a BnLoad) instead of a
     * normalised copy, and in the backward pass bn_bwd_sums leaves the
     * gradient's last step to the consumers of dz (a backward BnLoad); 0, one
     * op per batchnorm that writes its output (on the CPU, whose consumers
     * would redo the normalisation). Both give the same values. */
    int load_bn;
    void *(*alloc)(size_t bytes);                        /* zeroed */
    void (*free)(void *p);
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);

    /* C[M,N] = alpha * op(A) op(B) + beta * C, row-major with leading dims.
     * op(A) is [M,K]: A is [M,K] (lda) or, with ta, [K,M]. Same for B [K,N]. */
    void (*gemm)(int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

    /* Full conv KxK, stride s, pad K/2: y [N,Ho,Wo,Co] = x [N,H,W,Ci] * w [K,K,Ci,Co]. */
    void (*conv_fwd)(float *y, const float *x, const float *w,
                     int N, int H, int W, int Ci, int Co, int K, int s);
    /* dw [K,K,Ci,Co] += grad w.r.t. w, dy read through dybn when not NULL.
     * (The stem needs no input gradient.) */
    void (*conv_bwd_w)(float *dw, const float *dy, const BnLoad *dybn, const float *x,
                       int N, int H, int W, int Ci, int Co, int K, int s);

    /* Depthwise KxK, stride s, pad K/2: y [N,Ho,Wo,C] from x [N,H,W,C] (read
     * through xbn when not NULL; the padding is zeros after it).
     * Tap (ky,kx) of channel c is w[ky*ldr + kx*ldc + c]: w points at the top-left
     * tap of the active window inside a larger [Kmax,Kmax,Cmax] tensor.
     * st not NULL: y's batchnorm statistics too (BnStats). */
    void (*dw_fwd)(float *y, const BnStats *st, const float *x, const BnLoad *xbn, const float *w, int ldr,
                   int ldc, int N, int H, int W, int C, int K, int s);
    /* dx [N,H,W,C] = grad w.r.t. x of dy [N,Ho,Wo,C] (read through dybn when not NULL) */
    void (*dw_bwd_x)(float *dx, const float *dy, const BnLoad *dybn, const float *w, int ldr, int ldc,
                     int N, int H, int W, int C, int K, int s);
    /* dw (same pitches as w) += grad w.r.t. w (dy read through dybn, x
     * through xbn as in dw_fwd) */
    void (*dw_bwd_w)(float *dw, int ldr, int ldc, const float *dy, const BnLoad *dybn, const float *x,
                     const BnLoad *xbn, int N, int H, int W, int C, int K, int s);

    /* Batchnorm over P rows of C channels, optionally followed by ReLU6 (relu6=1).
     * Train: batch statistics (biased variance) saved in mean/istd [C]; running
     * averages updated with momentum; then res [P,C], when not NULL, added to
     * y (a residual block's output, in the same pass); y NULL: the statistics
     * only (a consumer reads z through a BnLoad). Eval: running statistics. */
    void (*bn_fwd_train)(float *y, float *mean, float *istd, float *run_mean,
                         float *run_var, const float *z, const float *res, const float *gamma,
                         const float *beta, int P, int C, float momentum, int relu6);
    void (*bn_fwd_eval)(float *y, const float *z, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, int P, int C, int relu6);
    /* dz [P,C] = grad w.r.t. z (overwritten); dgamma, dbeta [C] += */
    void (*bn_bwd)(float *dz, float *dgamma, float *dbeta, const float *dy,
                   const float *z, const float *mean, const float *istd,
                   const float *gamma, const float *beta, int P, int C, int relu6);

    /* Training with fused batchnorms (load_bn = 1):
     * C [M,N] (ldc) = op(A) op(B) + beta C as gemm with alpha 1, A read through
     * abn and B through bbn (NULL: as stored; the channel of an operand is its
     * stored column, and a backward load's z has the operand's leading
     * dimension), and, when st is not NULL (then ldc = N), the batchnorm
     * statistics of C's columns. */
    void (*gemm_bn)(int ta, int tb, int M, int N, int K, const float *A, int lda, const BnLoad *abn,
                    const float *B, int ldb, const BnLoad *bbn, float beta, float *C, int ldc,
                    const BnStats *st);
    /* y [P,C] = z read through zbn (not NULL), then + res [P,C] when not NULL
     * (bn_fwd_train's second half, after statistics computed elsewhere) */
    void (*bn_apply)(float *y, const float *z, const BnLoad *zbn, const float *res, int P, int C);
    /* bn_bwd's first half: g [P,C] = dy masked by ReLU6 (g may be dy); g_mean,
     * gx_mean [C] = the means over P of g and of g xh, xh = (z - mean) istd;
     * dgamma, dbeta [C] += as bn_bwd. Its consumers read dz from g through a
     * backward BnLoad. */
    void (*bn_bwd_sums)(float *g, float *g_mean, float *gx_mean, float *dgamma, float *dbeta, const float *dy,
                        const float *z, const float *mean, const float *istd, const float *gamma,
                        const float *beta, int P, int C, int relu6);

    /* y [n] += x [n] (residual add and gradient accumulation) */
    void (*add)(float *y, const float *x, size_t n);
    /* y [N,C] = mean over HW of x [N,HW,C] (read through xbn when not NULL);
     * backward spreads dy evenly (overwrites dx) */
    void (*gap_fwd)(float *y, const float *x, const BnLoad *xbn, int N, int HW, int C);
    void (*gap_bwd)(float *dx, const float *dy, int N, int HW, int C);
    /* y [M,N] += b [N] per row; db [N] += column sums of dy [M,N] */
    void (*bias_fwd)(float *y, const float *b, int M, int N);
    void (*bias_bwd)(float *db, const float *dy, int M, int N);
    /* Softmax cross-entropy, mean over N rows of logits [N,L]: writes dlogits
     * [N,L] (already divided by N), returns the summed loss and the number of
     * rows whose arg-max equals the label through *correct. */
    double (*xent)(float *dlogits, int *correct, const float *logits,
                   const int32_t *label, int N, int L);
    /* L1 regression: dpred [N] = sign(pred - target) / N, returns sum |pred - target| */
    double (*l1)(float *dpred, const float *pred, const float *target, int N);
    /* Training's losses without a wait: as xent and l1, but the summed loss is
     * added to acc[0] and the right answers (none for l1) to acc[1], acc [2]
     * backend memory (NULL: nothing is kept), and nothing is read back. */
    void (*xent_acc)(float *dlogits, double *acc, const float *logits, const int32_t *label, int N, int L);
    void (*l1_acc)(float *dpred, double *acc, const float *pred, const float *target, int N);
    /* Softmax entropy of logits [N,L] (unlabelled data): dlogits [N,L] = weight *
     * grad of the mean entropy; returns the summed entropy. */
    double (*entropy)(float *dlogits, const float *logits, float weight, int N, int L);
    /* Linear MMD between the first S rows of x [N,C] and the other N-S: returns
     * weight * |mean of the first - mean of the rest|^2; dx [N,C] = its gradient.
     * Needs 0 < S < N. */
    double (*mmd)(float *dx, const float *x, int N, int S, int C, float weight);
    /* Self-supervised learning (SimCLR, train.c): the rows of x [N,D] scaled
     * to unit length, y = x / max(|x|, NTA_L2_EPS), norm [N] = |x| (saved for
     * the backward); dx [N,D] = the gradient through it of dy [N,D]
     * (overwritten). */
    void (*l2norm_fwd)(float *y, float *norm, const float *x, int N, int D);
    void (*l2norm_bwd)(float *dx, const float *dy, const float *y, const float *norm, int N, int D);
    /* NT-Xent over N unit rows e [N,D] (N even; the positive of row i is the
     * other view of its image, row (i + N/2) mod N): per row the cross-entropy
     * of the softmax of its similarities e_i.e_j / tau to the other N-1 rows,
     * the positive as the label. de [N,D] = the gradient of the mean over the
     * rows; returns the summed loss and, through *correct, the rows whose most
     * similar other row is their positive. */
    double (*ntxent)(float *de, int *correct, const float *e, int N, int D, float tau);
    /* SGD with momentum and L2 over a whole parameter arena, in one pass:
     * per element, decay [n] is 1 (a weight: g += wd*w), 0 (no decay) or -1
     * (not trained: running statistics, padding; left alone); then
     * m = mu*m + g; w -= lr*m, lr [1] read from backend memory (so that a
     * recorded graph takes each step's rate). */
    void (*sgd)(float *w, float *m, const float *g, const float *decay, size_t n, const float *lr, float mu,
                float wd);
    /* Inference, a pointwise conv and its batchnorm (running statistics) in one
     * pass: y [M,N] = BN_eval(x [M,K] (ldx) w [K,N] (ldw)), then ReLU6 if relu6.
     * The same as gemm into y then bn_fwd_eval in place, up to rounding. */
    void (*gemm_bn_eval)(float *y, const float *x, int ldx, const float *w, int ldw,
                         const float *gamma, const float *beta, const float *run_mean,
                         const float *run_var, int M, int N, int K, int relu6);
    /* Inference, a depthwise conv and its batchnorm (running statistics) in one
     * pass: y [N,Ho,Wo,C] = BN_eval(dw_fwd of x [N,H,W,C]), then ReLU6 if relu6.
     * The same as dw_fwd into y then bn_fwd_eval in place, up to rounding. */
    void (*dw_bn_eval)(float *y, const float *x, const float *w, int ldr, int ldc,
                       const float *gamma, const float *beta, const float *run_mean,
                       const float *run_var, int N, int H, int W, int C, int K, int s,
                       int relu6);
    /* Graphs, where the backend has them (NULL slots where not: the CPU's
     * ops run as they are called). After graph_begin returns 1, the ops
     * called are recorded, not run, until graph_end returns them as one
     * graph; graph_run runs them again, in order, on the same memory as it
     * is then. Recorded ops may not upload, download or free. graph_begin
     * returns 0 when graphs are off (NTA_CUDA_SYNC=1): the ops then run. */
    int (*graph_begin)(void);
    void *(*graph_end)(void);
    void (*graph_run)(void *graph);
    void (*graph_free)(void *graph);
} Backend;

extern const Backend cpu_backend;
/* n threads (at least 1): the work of every op is split into n parts, which
 * run on up to n threads; fewer while another process keeps ours waiting for
 * a core (cpu.c's governor). cpu_threads: how many run them now. */
void cpu_set_threads(int n);
int cpu_threads(void);
int cpu_parts(void);     /* the n of the last cpu_set_threads (OpenMP's count before any) */
/* Run the parts on n threads from now on, the governor off; n = 0: on all
 * of them, the governor back on (the tests) */
void cpu_pin_threads(int n);
/* For nta --version: the CPU backend's SIMD path and whether this CPU takes it. */
const char *cpu_simd(void);

/* The CUDA backend (cuda.cu, kernels.cu, gemm.cu, conv.cu): linked into nta
 * when nvcc was found (the Makefile then defines NTA_CUDA), and into the tests
 * on the SIMT emulator. cuda_available: 1 if a device can be used (why: which
 * one), else 0 (why: the reason, e.g. "no CUDA GPU (no driver found)").
 * cuda_set_tf32: gemm on TF32 tensor cores (sm_80+, nvcc builds only) on or
 * off; returns whether it is on. Off by default; NTA_TF32=1 turns it on. */
extern const Backend cuda_backend;
int cuda_available(char *why, size_t len);
int cuda_set_tf32(int on);

/* ------------------------------------------------------------------- net */

#define NET_MAX_BLOCKS 32
#define NET_MAX_STAGES 8

/* One inverted-residual block: 1x1 expand (Ci -> E = e*Ci) + BN + ReLU6,
 * KxK depthwise stride s + BN + ReLU6, 1x1 project (E -> Co) + BN,
 * residual add when s == 1 and Ci == Co. In a supernet, k and e are the
 * largest choices. */
typedef struct { int k, e, s, co; } BlockDesc;

/* The choices of an elastic (super)network; nk == 0 for a fixed network. */
typedef struct {
    int nk, ks[4];          /* depthwise kernel sizes, ascending */
    int ne, es[4];          /* expansion ratios, ascending */
    int dmin;               /* smallest stage depth (the largest: the stage's blocks) */
} Space;

/* A network description: stem KxK conv (in_c -> stem_c, stride 1) + BN + ReLU6,
 * the blocks, 1x1 head conv (-> head_c) + BN + ReLU6, global average pool,
 * linear head_c -> classes. A stage is a run of blocks that starts at a block
 * with stride 2 or new output channels. With mlp > 0 (self-supervised
 * pretraining: SimCLR's projection head), the pool is followed by linear
 * head_c -> mlp (no bias) + BN + ReLU6, then the linear mlp -> classes, whose
 * outputs are then the projection (D = classes dimensions), not logits. */
typedef struct {
    int in_h, in_w, in_c;
    int stem_c, stem_k;
    int nblocks;
    BlockDesc blk[NET_MAX_BLOCKS];
    int head_c;
    int classes;
    int mlp;                /* hidden width of the projection head; 0 = none */
    Space space;
} NetDesc;

/* An architecture inside a description: per stage the active depth (its first
 * depth[s] blocks run), per block the kernel size and expansion ratio. Text
 * form: one token kKeE per active block, '-' between blocks, '/' between
 * stages, e.g. "k3e6-k3e6/k5e4-k3e3-k7e6/k3e6-k3e6". */
typedef struct {
    int depth[NET_MAX_STAGES];
    int k[NET_MAX_BLOCKS], e[NET_MAX_BLOCKS];
} Arch;

/* Stages of a description: returns their count; first[s] is the first block of
 * stage s, first[count] == nblocks. */
int net_stages(const NetDesc *d, int first[NET_MAX_STAGES + 1]);
/* The supernet for an HxWxC input: stem 16, three stride-2 stages of up to
 * maxdepth blocks (24, 32, 64 channels), head 128, every block at its largest
 * choice. Dies with a message if the input is too small for the strides. */
NetDesc net_supernet(int h, int w, int c, int classes, const Space *space, int maxdepth);
Space space_default(void);  /* kernels 3,5,7; expansions 3,4,6; depth 2..4 */
Arch arch_largest(const NetDesc *d);
Arch arch_smallest(const NetDesc *d);
Arch arch_random(const NetDesc *d, Rng *r);
/* The blocks a's depths leave out set to their largest choice, as arch_parse
 * leaves them: an architecture is then all its text form says, so a search
 * read back from its log goes on as the unbroken one (every arch_* and search
 * step returns architectures in this form). */
void arch_canonical(const NetDesc *d, Arch *a);
/* Parse/format the text form; parse returns -1 and a message naming the bad
 * token when the text is not an architecture of d. */
int arch_parse(const NetDesc *d, const char *text, Arch *a, char *err, size_t errlen);
void arch_format(const NetDesc *d, const Arch *a, char *buf, size_t len);
/* An architecture named on the command line: "largest", "smallest", "random"
 * (drawn from r, when r is given) or its text form (arch_parse). */
int arch_named(const NetDesc *d, const char *name, Rng *r, Arch *a, char *err, size_t errlen);
/* The fixed network that runs exactly the active part of a. */
NetDesc arch_standalone(const NetDesc *d, const Arch *a);

/* The reference network of the engine issue for an HxWxC input. */
NetDesc net_reference(int h, int w, int c, int classes);

/* A parameter tensor in the arena. kind: what the optimiser does with it. */
enum { PARAM_WEIGHT, PARAM_NODECAY, PARAM_STAT };
typedef struct {
    char name[48];
    int kind;
    int ndim, dims[4];
    size_t off, n;            /* offset and count in floats */
} ParamInfo;

typedef struct { float *gamma, *beta, *run_mean, *run_var; } BnParams;  /* each [C] */
typedef struct {
    float *mean, *istd;          /* [C] batch statistics */
    float *g_mean, *gx_mean;     /* [C] bn_bwd_sums' means, for a backward BnLoad (load_bn) */
} BnSaved;

/* Per layer: pointers into the parameter arena (p), the gradient arena (g), and
 * the activation arena (saved for backward). */
typedef struct {
    int ci, co, s, h, w, ho, wo;          /* h,w in, ho,wo out */
    int kmax, emax;                       /* largest kernel, largest expanded channels Emax */
    float *w_exp, *w_dw, *w_proj;         /* [Ci,Emax], [Kmax,Kmax,Emax], [Emax,Co] */
    BnParams bn_exp, bn_dw, bn_proj;
    float *g_exp, *g_dw, *g_proj;
    BnParams gbn_exp, gbn_dw, gbn_proj;   /* gradients of gamma/beta */
    /* activations at the active E, batch B: z = conv output, a = after BN(+ReLU6) */
    float *z_exp, *a_exp;                 /* [B,H,W,E] (a_exp not written in training where
                                             Backend.load_bn) */
    float *z_dw, *a_dw;                   /* [B,Ho,Wo,E] */
    float *z_proj, *out;                  /* [B,Ho,Wo,Co] (out includes the residual) */
    BnSaved sv_exp, sv_dw, sv_proj;
} Block;

/* What a recorded graph holds (kind: a whole step, net_train_step, or one
 * pass, net_train_pass) and what it depends on beyond the memory it reads;
 * compared as bytes (it has no padding). */
typedef struct { int kind, B, count; float momentum, wd, bn_momentum; Arch arch; } NetGraphKey;
typedef struct { NetGraphKey key; void *graph; long used; } NetGraph;   /* key.kind 0: empty */
#define NET_GRAPHS 4      /* recorded graphs a network keeps, the least recently used replaced */

typedef struct {
    NetDesc d;
    Arch arch;                            /* the active architecture */
    int on[NET_MAX_BLOCKS];               /* block i runs under arch */
    const Backend *be;
    int B;                                /* batch the activation arena holds */
    /* arenas: one allocation per category */
    int nparam;
    ParamInfo *param;
    size_t nfloats;
    float *p, *g, *m;                     /* parameters, gradients, momentum [nfloats] */
    float *decay;                         /* [nfloats] 1 weight, 0 no decay, -1 not trained (be->sgd) */
    float *act; size_t nact;              /* activations */
    float *gbuf[3]; size_t ngbuf;         /* activation-gradient scratch, each [ngbuf] */
    int32_t *y_in;                        /* [B] labels */
    float *t_in;                          /* [B] regression targets */
    int loss;                             /* LOSS_XENT (y_in) or LOSS_L1 (t_in, one output) */
    double *stats;                        /* [2] backend memory: training loss summed, right answers */
    double stats_host[2];                 /* the same, of losses computed on the host */
    float *lr;                            /* [1] backend memory: the learning rate be->sgd reads */
    NetGraph graphs[NET_GRAPHS];          /* recorded steps and passes (net_train_step, net_train_pass) */
    long graph_tick;                      /* uses so far: their clock */
    /* stem */
    float *w_stem, *g_stem;               /* [K,K,Cin,Cs] */
    BnParams bn_stem, gbn_stem;
    float *x_in;                          /* [B,H,W,Cin] */
    float *z_stem, *a_stem;               /* [B,H,W,Cs] */
    BnSaved sv_stem;
    Block blk[NET_MAX_BLOCKS];
    /* head */
    float *w_head, *g_head;               /* [Cl,Ch], Cl = last block's Co */
    BnParams bn_head, gbn_head;
    float *z_head, *a_head;               /* [B,h,w,Ch] */
    BnSaved sv_head;
    int hh, hw;                           /* spatial size at the head */
    float *pooled;                        /* [B,Ch] */
    float *w_mlp, *g_mlp;                 /* [Ch,M] the projection head's hidden layer (d.mlp = M > 0) */
    BnParams bn_mlp, gbn_mlp;
    float *z_mlp, *a_mlp;                 /* [B,M] */
    BnSaved sv_mlp;
    float *emb, *emb_norm, *demb;         /* [B,L] unit projections, [B] their lengths, [B,L] */
    float *w_fc, *b_fc, *g_fc, *gb_fc;    /* [F,L], [L]; F = M with the projection head, else Ch */
    float *logits, *dlogits;              /* [B,L] */
    float *dpooled_add;                   /* [B,Ch] added to the gradient of pooled when */
    int dpooled_on;                       /* dpooled_on (a loss on the features: domain adaptation) */
    float bn_momentum;
    char meta[1024];                      /* metadata lines of a loaded model file */
    int norm_set;                         /* the input normalisation is known: */
    float norm_mean[4], norm_std[4];      /* per channel, as DataSplits; saved with the model */
    int has_momentum;                     /* a loaded checkpoint restored net->m */
} Net;

enum { LOSS_XENT, LOSS_L1 };

/* Build a network for batch B on backend be, trained with loss (LOSS_*); print
 * one line per layer if verbose. Weights are initialised from seed
 * (Kaiming-normal convs, BN gamma 1, beta 0). */
Net *net_create(const NetDesc *d, int loss, const Backend *be, int B, uint64_t seed, int verbose);
void net_free(Net *net);
const NetDesc *net_desc(const Net *net);
const Backend *net_backend(const Net *net);
int net_batch(const Net *net);           /* the batch its activations hold */
/* The parameters and running statistics [nfloats] into host memory (a new
 * buffer when host is NULL; returned), and back. */
float *net_weights_get(const Net *net, float *host);
void net_weights_put(Net *net, const float *host);
void net_momentum_reset(Net *net);    /* SGD starts again from no momentum */
/* The input normalisation a model carries (per channel, as DataSplits);
 * net_norm returns 0 when the model has none. */
void net_set_norm(Net *net, const float mean[4], const float std[4]);
int net_norm(const Net *net, float mean[4], float std[4]);
/* A loaded checkpoint's metadata lines (the run's settings), or NULL when the
 * file was a model, not a checkpoint. */
const char *net_checkpoint_meta(const Net *net);
/* Make a the active architecture (a must be valid for net->d). */
void net_set_arch(Net *net, const Arch *a);
/* Forward B' <= B images x [B',H,W,Cin] (backend memory already holds them at
 * net->x_in). train: batch statistics; else running statistics. */
void net_forward(Net *net, int B, int train);
/* An inference net_forward that also says where the time went: sec
 * [nblocks+2] = seconds of the stem (0), of each block i (1+i; 0 if not
 * active) and of the head with pool and fc (nblocks+1). When the backend
 * splits the batch into pieces run side by side on the threads, a layer's
 * seconds are its time summed over the pieces, divided by the threads that
 * ran them: its share of the wall time. For latency tables (latency.c). */
void net_forward_timed(Net *net, int B, double *sec);
/* The loss of net->logits (LOSS_XENT: softmax cross-entropy against net->y_in;
 * LOSS_L1: absolute error of the one output against net->t_in); fills
 * net->dlogits. Returns the summed loss; *correct = right answers (0 for L1). */
double net_loss(Net *net, int B, int *correct);
/* The same without a wait (a step that never stops the device): fills
 * net->dlogits and, when count, adds the summed loss and the right answers to
 * the network's training counters in backend memory (net_stats_take). */
void net_train_loss(Net *net, int B, int count);
/* Add a loss computed on the host to the counters. */
void net_stats_add(Net *net, double loss, int correct);
/* The counters since the last take (summed loss; right answers in *correct),
 * then zeroed. Reading them waits for the device. */
double net_stats_take(Net *net, int *correct);
/* SimCLR's loss of the projections net->logits [B,L] of B = 2n views (rows
 * i and i + n: the two views of image i), d.mlp > 0: l2norm into net->emb,
 * NT-Xent at temperature tau; fills net->dlogits. Returns the summed loss;
 * *correct = rows whose most similar other row is their positive. */
double net_ssl_loss(Net *net, int B, float tau, int *correct);
/* Backward from net->dlogits. Gradients are accumulated into net->g. */
void net_backward(Net *net, int B);
void net_zero_grad(Net *net);
/* One SGD step over every trainable parameter. */
void net_update(Net *net, float lr, float momentum, float wd);
/* Data-parallel training (dist.c): the running statistics copied into the
 * gradient arena's slots of PARAM_STAT tensors (which no gradient uses), so
 * one all-reduce of the arena averages gradients and statistics; and back.
 * net_grad_arena: the gradient arena (backend memory) and its floats in *n. */
void net_stats_to_grad(Net *net);
void net_stats_from_grad(Net *net);
float *net_grad_arena(Net *net, size_t *n);
/* A whole training step of a fixed architecture on the batch already
 * uploaded (x_in, y_in or t_in): zero the gradients, forward, the training
 * loss (counted, net_train_loss), backward, SGD. Where the backend records
 * graphs, the first step with a new batch size, momentum, decay, batchnorm
 * momentum or architecture runs as called (sizing the backend's scratch),
 * the second is recorded as one graph, and every later one runs that graph
 * again (the learning rate read from backend memory): the same work, one
 * launch. */
void net_train_step(Net *net, int B, float lr, float momentum, float wd);
/* One pass of a supernet's step for the active architecture on the batch
 * already uploaded: forward, the training loss (counted when count),
 * backward; the gradients accumulate. Where the backend records graphs, an
 * architecture's second pass (same batch size and batchnorm momentum) is
 * recorded and later ones run it again: the sandwich rule's largest and
 * smallest recur every step; its random ones almost never do, and run as
 * called. */
void net_train_pass(Net *net, int B, int count);
/* Text form of a description (one line) and its parser (returns -1 and a
 * message in err when the text is malformed). */
void net_desc_format(const NetDesc *d, char *buf, size_t len);
int net_desc_parse(NetDesc *d, const char *text, char *err, size_t errlen);
/* Multiply-accumulates x 2 of one forward image; parameter count (trainable). */
double net_flops(const NetDesc *d);
size_t net_params(const NetDesc *d);
/* One line per layer: shapes in and out, MFLOPs, params; then the totals. */
void net_print(const NetDesc *d);
/* The parameter tensor with this name, or NULL. */
const ParamInfo *net_param(const Net *net, const char *name);
/* A standalone network (batch B) holding architecture a's slice of a
 * supernet's weights and batchnorm statistics. */
Net *net_extract(const Net *super, const Arch *a, int B);
/* The same network with a new linear head of `classes` outputs (initialised
 * from seed) trained with loss, straight after the pool (a projection head is
 * dropped); every other tensor is copied. */
Net *net_rehead(const Net *src, int classes, int loss, uint64_t seed);
/* The linear layer after the pool (no projection head): w [Ch,L], b [L], host memory. */
void net_set_linear(Net *net, const float *w, const float *b);
/* Reset the batchnorm running statistics and re-estimate them for the active
 * architecture from `batches` training batches drawn by seed. */
void net_recalibrate(Net *net, const DataSplits *d, int batches, uint64_t seed);
/* The same from one pass over split s in order (batches of at most B whose
 * sizes differ by at most 1), that pass's pooled features [s->n, head_c]
 * into pooled: each image normalised by its batch's statistics (training
 * mode), the running statistics their average. */
void net_recalibrate_split(Net *net, const DataSplits *d, const Dataset *s, float *pooled);
/* Model files: magic, version, description, metadata lines (with the input
 * normalisation when set), named tensors, CRC32; written to a temporary name
 * and renamed. A checkpoint also holds the momentum. Save returns 0, or -1
 * with a message in err. Load (for batch B, trained with loss) returns NULL
 * and a message in err on failure; it keeps a checkpoint's metadata
 * (net_checkpoint_meta) and restores its momentum. */
int net_save(const Net *net, const char *path, const char *meta, int checkpoint, char *err, size_t errlen);
Net *net_load(const char *path, int loss, const Backend *be, int B, char *err, size_t errlen);

/* ------------------------------------------------------------------ task */

/* task.c: what each task kind (TASK_*) trains and measures. */
int task_outputs(const DataSplits *d);          /* the head's width */
int task_loss(const DataSplits *d);             /* LOSS_XENT or LOSS_L1, for net->loss */
const char *task_metric_name(const DataSplits *d);
int task_lower_better(const DataSplits *d);     /* 1: an error (MAE) */
/* Images idx[0..B) of s (augmented when aug) into x, y and the network's
 * inputs: x_in, y_in, and t_in when s has regression values. */
void task_batch(Net *net, const DataSplits *d, const Dataset *s, const int *idx, int B, float *x,
                int32_t *y, Rng *aug);
/* The task's metric on split s with the network's running statistics:
 * accuracy %, MAE in degrees, or retrieval mAP % (rank-1 % in *second, else
 * NAN there). */
double task_score(Net *net, const DataSplits *d, const Dataset *s, double *second);
/* task_score, and when item is set each image's own score into item [s->n],
 * whose mean is the metric: 100 or 0 (right or wrong: accuracy), the absolute
 * error in degrees (MAE), the query's average precision % (retrieval mAP). The
 * paired comparison of two methods (report_bootstrap) resamples these. */
double task_score_items(Net *net, const DataSplits *d, const Dataset *s, double *second, float *item);
/* Retrieval of emb [n,dim] by cosine similarity, each row a query against all
 * the others: returns mAP %, rank-1 % in *rank1. */
double task_retrieval(const float *emb, const int32_t *label, int n, int dim, double *rank1);
/* The features of every image of split s with the network's running
 * statistics: pooled [n,Ch] (the head's pooled features) and, if out is not
 * NULL, out [n,L] (the network's outputs: logits, or an SSL projection). */
void task_features(Net *net, const DataSplits *d, const Dataset *s, float *pooled, float *out);
/* Leave-one-out k-nearest-neighbour accuracy % of feat [n,dim]: each row's k
 * most cosine-similar other rows vote for their labels, each with its
 * similarity; the most voted label is the prediction. */
double task_knn(const float *feat, const int32_t *label, int n, int dim, int k);
/* A training batch: images idx[0..B) of the training split, or for TASK_UDA
 * B/2 of them followed by B - B/2 target images drawn by rng. */
void task_train_batch(Net *net, const DataSplits *d, const int *idx, int B, float *x, int32_t *y, Rng *aug,
                      Rng *rng);
/* The training loss of that batch (net_loss; TASK_UDA: cross-entropy of the
 * first B/2 rows, plus entropy x the mean softmax entropy of the rest, plus
 * mmd x the linear MMD between the two halves' pooled features); fills
 * net->dlogits (and net->dpooled_add), returns the summed labelled loss. */
double task_train_loss(Net *net, const DataSplits *d, int B, float entropy, float mmd, int *correct);
/* A supernet's architecture a scored on split s: a made active, its batchnorm
 * statistics re-estimated on `calib` training batches drawn by seed, then
 * task_score. */
double task_score_arch(Net *net, const DataSplits *d, const Dataset *s, const Arch *a, int calib,
                       uint64_t seed, double *second);
/* A metric as a fitness (higher is better: an error is negated). */
double task_fitness(const DataSplits *d, double metric);
/* "accuracy 93.10%", "MAE 3.21 degrees" or "mAP 71.20% (rank-1 90.00%)"; returns buf. */
const char *task_format_metric(char *buf, size_t len, const DataSplits *d, double metric, double second);
/* Dies (naming `what`, a file) unless a network of description nd takes d's
 * images (task_check_images) and has outputs enough for the task. */
void task_check_images(const NetDesc *nd, const DataSplits *d, const char *what);
void task_check_net(const NetDesc *nd, const DataSplits *d, const char *what);

/* ------------------------------------------------------ linear evaluation */

/* linear.c: a linear head fitted on frozen features (the unsupervised
 * paradigm's measure; adapt --fitness linear). */

/* Ridge regression: out = b + ((x - mean) * scale) w, scale = 1/std of each
 * feature on the fitting set (0 for a constant feature). */
typedef struct {
    int F, K;
    double *mean, *scale;   /* [F] */
    double *w;              /* [F,K] */
    double *b;              /* [K] the targets' means */
} LinearHead;

/* The ridge penalty, in units of the standardised features' sum of squares
 * (lambda n: 1% of each diagonal entry of Xs^T Xs). */
#define LINEAR_RIDGE 1e-2

/* Fit h to features X [n,F] and targets Y [n,K]: w minimises
 * |Xs w - (Y - mean Y)|^2 + lambda n |w|^2 (Xs: X standardised), in closed form. */
void linear_fit(LinearHead *h, const float *X, int n, int F, const float *Y, int K, double lambda);
/* The same, and loo [n,K]: each row's output from the head fitted (with the
 * same standardisation and penalty) on the other n - 1 rows. */
void linear_fit_loo(LinearHead *h, const float *X, int n, int F, const float *Y, int K, double lambda, float *loo);
void linear_predict(const LinearHead *h, const float *X, int n, float *out);   /* out [n,K] */
void linear_free(LinearHead *h);
/* The task's metric on split s of a head fitted (LINEAR_RIDGE) on the
 * features train_feat [d->train.n,F] of the training split, applied to feat
 * [s->n,F]: accuracy % (classification, attribute), MAE in degrees
 * (regression); retrieval: the mAP % of feat itself (rank-1 % in *second).
 * Dies for domain adaptation. */
double linear_eval_features(const DataSplits *d, const float *train_feat, const float *feat, const Dataset *s,
                            int F, double *second);
/* Give net (a standalone model for task d, no projection head) the head
 * linear evaluation fits on its pooled features of the training split, as
 * its linear layer: a finetuning that starts from it starts from the linear
 * probe's predictions. Retrieval and domain adaptation keep their head. */
void linear_head_init(Net *net, const DataSplits *d);
/* The same with the pooled features of net (running statistics as they are). */
double linear_eval(Net *net, const DataSplits *d, const Dataset *s, double *second);
/* The floors of linear evaluation, by the same protocol: the head fitted
 * on the raw pixels (normalised as the network sees them), and on the pooled
 * features of architecture a of super's description with random, untrained
 * weights (initialised from seed, BN statistics estimated on `calib`
 * training batches). */
double linear_floor_pixels(const DataSplits *d, const Dataset *s, double *second);
double linear_floor_random(const Net *super, const DataSplits *d, const Dataset *s, const Arch *a, int calib,
                           uint64_t seed, double *second);
/* A supernet's architecture a: made active, BN statistics re-estimated on
 * `calib` training batches drawn by seed, then linear_eval. */
double linear_eval_arch(Net *net, const DataSplits *d, const Dataset *s, const Arch *a, int calib, uint64_t seed,
                        double *second);
/* The search's linear-evaluation fitness of a supernet's architecture a
 * (made active): net_recalibrate_split over the training split, a ridge head
 * (LINEAR_RIDGE) fitted on those features, and the task's metric of its
 * leave-one-out outputs there; retrieval: the same pass over the validation
 * split, and the mAP % of its features. Dies for domain adaptation. */
double linear_fitness_arch(Net *net, const DataSplits *d, const Arch *a);

/* ---------------------------------------------------------------- search */

typedef struct {
    Arch arch;
    double fitness;          /* higher is better */
    double mflops;
    size_t params;
} Candidate;

/* A per-layer latency table (latency.c): inference milliseconds of the stem,
 * the head, and every block position at every (kernel, expansion) choice of
 * the supernet desc, on one machine, backend, thread count and batch (key). */
typedef struct {
    char key[2048];          /* host=... simd=... backend=... device=... threads=... batch=... net=... */
    NetDesc desc;            /* the supernet the table is for */
    int batch;
    double stem_ms, head_ms; /* head: 1x1 conv, BN, ReLU6, pool, fc */
    double overhead_ms;      /* a whole pass beyond the sum of its layers (may be < 0) */
    double block_ms[NET_MAX_BLOCKS][4][4];   /* [block][index in space.ks][index in space.es] */
} LatencyTable;

/* The key of a table: the host CPU (model, family, stepping, count), the
 * CPU's SIMD path, the backend and its device (the GPU for CUDA: name,
 * architecture, SMs, memory; "-" for the CPU), threads, batch and the
 * supernet's shape. */
void latency_key(char *buf, size_t len, const NetDesc *d, const Backend *be, int threads, int batch);
/* Timed passes per measurement at a batch: 51 up to batch 8, else 31. */
int latency_reps(int batch);
/* Measure t for supernet d on be at this batch: `reps` timed passes of each
 * calibration network, the least time of each layer (latency.c). */
void latency_measure(LatencyTable *t, const NetDesc *d, const Backend *be, int threads, int batch, int reps);
/* An architecture's predicted latency in ms: stem + head + overhead + its active blocks' entries. */
double latency_predict(const LatencyTable *t, const Arch *a);
/* The architecture of least predicted latency: every stage at its smallest
 * depth, every block at its fastest choice. */
Arch latency_fastest(const LatencyTable *t);
/* An architecture's measured latency in ms at t's batch: the least of reps
 * forward passes of its standalone network. */
double latency_time(const LatencyTable *t, const Arch *a, const Backend *be, int reps);
/* The cache file of a key: latency-HASH.txt in nta's cache folder
 * (rtc_cache_dir: $XDG_CACHE_HOME/nta, else ~/.cache/nta); -1 (and why in
 * buf) when there is no such folder. */
int latency_cache_path(char *buf, size_t len, const char *key);
/* Save: 0, or -1 with a message naming the file. Load: 1 when path holds a
 * complete table of this key for d, else 0 (missing, stale or damaged). */
int latency_save(const LatencyTable *t, const char *path, char *err, size_t errlen);
int latency_load(LatencyTable *t, const char *path, const NetDesc *d, const char *key);
/* The table for this machine: loaded from the cache when it holds this key
 * (unless fresh), else measured with reps passes and cached; path gets the
 * cache file. Returns "cached", "measured" or "measured, not cached". */
const char *latency_table(LatencyTable *t, const NetDesc *d, const Backend *be, int threads, int batch, int reps,
                          int fresh, char *path, size_t plen);

/* The fitness of an architecture (e.g. a validation metric); deterministic. */
typedef double (*SearchFitness)(void *ctx, const Arch *a);

typedef struct {
    int population;          /* candidates kept per generation */
    int generations;
    int parents;             /* the fittest candidates that make children */
    int mutants, crosses;    /* children per generation by mutation, by crossover */
    float mutate_prob;       /* per choice */
    double budget_mflops;    /* <= 0: no budget */
    double budget_ms;        /* <= 0: no budget; else the latency predicted by `latency` */
    const LatencyTable *latency;
    int min_depth[NET_MAX_STAGES];   /* the search's space: each stage at least this deep
                                        (0: as shallow as the supernet allows) */
    uint64_t seed;
} SearchCfg;

/* An evolution in progress: resumable from (gen, rng, pop). */
typedef struct {
    int gen;                 /* generations done; 0 = the initial population */
    Rng rng;
    int n;                   /* candidates in pop */
    Candidate *pop;          /* [population], fittest first */
} SearchState;

double search_mflops(const NetDesc *d, const Arch *a);
/* Whether a is within cfg's space and budgets (MFLOPs, and predicted latency
 * when set). */
int search_fits(const NetDesc *d, const SearchCfg *cfg, const Arch *a);
/* The smallest architecture within cfg's space (arch_smallest with each stage
 * at least cfg->min_depth[s] deep). */
Arch search_smallest(const NetDesc *d, const SearchCfg *cfg);
/* The initial population: distinct random architectures within budget, scored.
 * Returns -1 with a message when the budget admits no architecture. */
int search_init(const NetDesc *d, const SearchCfg *cfg, SearchFitness fit, void *ctx,
                SearchState *st, char *err, size_t errlen);
/* One generation: children by mutation and crossover of the fittest parents,
 * within budget and new, scored; the fittest `population` survive. */
void search_step(const NetDesc *d, const SearchCfg *cfg, SearchFitness fit, void *ctx, SearchState *st);
void search_free(SearchState *st);
/* Score the population again (the supernet's weights changed: adapt
 * --online-epochs) and sort it, fittest first. */
void search_rescore(SearchFitness fit, void *ctx, SearchState *st);
/* n random architectures within budget, scored, fittest first in out[n]. */
int search_random(const NetDesc *d, const SearchCfg *cfg, int n, SearchFitness fit, void *ctx,
                  Candidate *out, char *err, size_t errlen);

/* The Pareto front of pop[n] (fewer MFLOPs and higher fitness both better):
 * writes the indices of the non-dominated candidates into front, by ascending
 * MFLOPs, and returns their count. */
int search_pareto(const Candidate *pop, int n, int *front);
/* A random architecture whose MFLOPs fall in bin i of n equal bins between
 * the smallest and the largest architecture (rejection sampling; a bin no
 * draw reaches gives its end of the space). */
Arch search_arch_in_bin(const NetDesc *d, Rng *r, int i, int n);
/* A random architecture of d of at most `mflops` (rejection sampling), or
 * the smallest if none turns up in SEARCH_TRIES draws. */
Arch search_draw_under(const NetDesc *d, double mflops, Rng *r);

/* ------------------------------------------------------------- schedule */

/* Cosine learning rate with linear warm-up: step in [0, total). */
float lr_cosine(float base, long step, long warmup, long total);

#endif
