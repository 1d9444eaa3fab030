/* bench/gpu_bench.cu: the CUDA backend on a real GPU (nvcc only).
 *   1. Kernels against the device's measured peaks: a copy kernel gives the
 *      memory bandwidth, a loop of independent FMAs the FP32 rate. The GEMMs
 *      of the reference network (28x28x1, batch 128: forward, data and weight
 *      gradients) in GFLOP/s, SIMT and TF32, beside cuBLAS when built with it
 *      (GPU_BENCH_CUBLAS); batchnorm and depthwise in GB/s of their minimum
 *      traffic (each tensor read or written once).
 *   2. Whole networks (the reference network, the supernet's largest and
 *      smallest architectures as standalone networks; 28x28x1, 10 classes)
 *      at batch 64 and 256, in images per second: training steps run as
 *      called ("eager") and as one CUDA graph per step (net_train_step),
 *      inference likewise; beside PyTorch's (bench/torch_gpu.py, eager with
 *      cuDNN and with CUDA graphs) when given its results.
 *   usage: gpu_bench [--torch FILE] [--nets-only] [--batch B]
 *            --torch FILE   PyTorch's columns from FILE (bench/torch_gpu.py --out)
 *            --nets-only    the networks' table only (no kernels)
 *            --batch B      that batch only (not 64 and 256)
 *          gpu_bench --nets the networks, one "name<TAB>description" a line
 * Run by test/gpu.sh; timings never go in tests.
 */
#include "../nta_cuda.h"

#include <string.h>
#if defined(GPU_BENCH_CUBLAS)
#include <cublas_v2.h>
#endif

/* ------------------------------------------------------------ peaks */

__global__ void copy_kernel(float4 *dst, const float4 *__restrict__ src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

/* 8 independent FMA chains per thread, iters times: 16 * iters flops a thread */
__global__ void fma_kernel(float *out, int iters, float a, float b)
{
    float x[8];
    for (int k = 0; k < 8; k++) x[k] = threadIdx.x + k;
    for (int i = 0; i < iters; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = fmaf(x[k], a, b);
    float s = 0;
    for (int k = 0; k < 8; k++) s += x[k];
    if (s == 1.2345f) out[0] = s;   /* keeps the loop; practically never true */
}

typedef struct {
    char name[64];
    double value, peak;   /* GFLOP/s or GB/s; the measured peak they are a share of */
    const char *unit;
} Row;

static Row rows[64];
static int nrows;

static void row(const char *name, double value, double peak, const char *unit)
{
    if (nrows == 64) return;
    Row *r = &rows[nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->value = value, r->peak = peak, r->unit = unit;
}

/* Warm up once, then the mean of reps runs on the backend's stream, in ms. */
template <typename F> static double time_ms(int reps, F run)
{
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    run();
    CUDA_CHECK(cudaEventRecord(e0, cuda_stream()));
    for (int r = 0; r < reps; r++) run();
    CUDA_CHECK(cudaEventRecord(e1, cuda_stream()));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return (double)ms / reps;
}

static float *dev_random(size_t n, unsigned seed)
{
    float *h = (float *)nta_malloc(n * sizeof(float)), *d;
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) h[i] = 2 * rng_uniform(&r) - 1;
    d = (float *)cuda_backend.alloc(n * sizeof(float));
    cuda_backend.upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

/* ------------------------------------------------------------ whole networks */

enum { NNETS = 3 };
static const char *net_names[NNETS] = {"reference", "super-largest", "super-smallest"};

/* The networks of the table: the reference network, and the default
 * supernet's largest and smallest architectures as standalone networks. */
static void bench_nets(NetDesc d[NNETS])
{
    Space sp = space_default();
    NetDesc super = net_supernet(28, 28, 1, 10, &sp, 4);
    Arch big = arch_largest(&super), small = arch_smallest(&super);
    d[0] = net_reference(28, 28, 1, 10);
    d[1] = arch_standalone(&super, &big);
    d[2] = arch_standalone(&super, &small);
}

/* A network at batch B holding a random batch (normal images, uniform labels). */
static Net *bench_net(const NetDesc *d, int B)
{
    Net *net = net_create(d, LOSS_XENT, &cuda_backend, B, 1, 0);
    size_t nx = (size_t)B * d->in_h * d->in_w * d->in_c;
    float *x = (float *)nta_malloc(nx * sizeof(float));
    int32_t *y = (int32_t *)nta_malloc(B * sizeof(int32_t));
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < nx; i++) x[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) y[i] = (int32_t)rng_below(&r, (uint32_t)d->classes);
    cuda_backend.upload(net->x_in, x, nx * sizeof(float));
    cuda_backend.upload(net->y_in, y, B * sizeof(int32_t));
    free(x), free(y);
    return net;
}

/* Training images per second: steps as called, or one graph per step. */
static double train_rate(Net *net, int B, int graph)
{
    auto step = [&] {
        if (graph) {
            net_train_step(net, B, 0.01f, 0.9f, 5e-5f);
            return;
        }
        net_zero_grad(net);
        net_forward(net, B, 1);
        net_train_loss(net, B, 1);
        net_backward(net, B);
        net_update(net, 0.01f, 0.9f, 5e-5f);
    };
    for (int i = 0; i < 3; i++) step();    /* scratch sized; the graph recorded */
    return B / (time_ms(30, step) * 1e-3);
}

/* Inference images per second: the forward pass as called, or recorded once
 * as a graph and run again. */
static double infer_rate(Net *net, int B, int graph)
{
    void *g = NULL;
    net_forward(net, B, 0);
    if (graph && cuda_backend.graph_begin()) {
        net_forward(net, B, 0);
        g = cuda_backend.graph_end();
    }
    double ms = time_ms(30, [&] {
        if (g) cuda_backend.graph_run(g);
        else net_forward(net, B, 0);
    });
    cuda_backend.graph_free(g);
    return B / (ms * 1e-3);
}

/* PyTorch's rates from bench/torch_gpu.py's file: lines "name batch
 * train_eager train_graph infer_eager infer_graph" (img/s, 0 = not run). */
typedef struct { char name[32]; int batch; double v[4]; } TorchRow;

static int torch_rows(const char *path, TorchRow *rows, int max)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    int n = 0;
    if (!f) return 0;
    while (n < max && fscanf(f, "%31s %d %lf %lf %lf %lf", rows[n].name, &rows[n].batch, &rows[n].v[0],
                             &rows[n].v[1], &rows[n].v[2], &rows[n].v[3]) == 6)
        n++;
    fclose(f);
    return n;
}

static void print_rate(double v)
{
    if (v > 0) printf(" %9.0f", v);
    else printf(" %9s", "-");
}

/* The networks' table: img/s of nta (eager, graph) and PyTorch (eager, graph),
 * training then inference. */
static void network_table(const char *torch_file, int batch)
{
    static TorchRow tr[64];
    int nt = torch_rows(torch_file, tr, 64);
    int batches[2] = {batch ? batch : 64, batch ? 0 : 256};
    NetDesc d[NNETS];
    bench_nets(d);
    printf("\nimages per second (28x28x1, 10 classes; eager: ops as called, graph: one CUDA graph per step;"
           " torch: bench/torch_gpu.py, cuDNN)\n");
    printf("%-15s %5s | %9s %9s %9s %9s | %9s %9s %9s %9s\n", "network", "batch", "train", "", "", "", "infer",
           "", "", "");
    printf("%-15s %5s | %9s %9s %9s %9s | %9s %9s %9s %9s\n", "", "", "nta eager", "nta graph", "torch", "torch gr.",
           "nta eager", "nta graph", "torch", "torch gr.");
    for (int i = 0; i < NNETS; i++)
        for (int b = 0; b < 2 && batches[b]; b++) {
            int B = batches[b];
            Net *net = bench_net(&d[i], B);
            double te = train_rate(net, B, 0), tg = train_rate(net, B, 1);
            double ie = infer_rate(net, B, 0), ig = infer_rate(net, B, 1);
            net_free(net);
            const TorchRow *t = NULL;
            for (int k = 0; k < nt; k++)
                if (!strcmp(tr[k].name, net_names[i]) && tr[k].batch == B) t = &tr[k];
            printf("%-15s %5d |", net_names[i], B);
            print_rate(te), print_rate(tg), print_rate(t ? t->v[0] : 0), print_rate(t ? t->v[1] : 0);
            printf(" |");
            print_rate(ie), print_rate(ig), print_rate(t ? t->v[2] : 0), print_rate(t ? t->v[3] : 0);
            if (b == 0 && t && t->v[0] > 0) printf("   train: nta graph / torch eager = %.2fx", tg / t->v[0]);
            printf("\n");
        }
}

int main(int argc, char **argv)
{
    const char *torch_file = NULL;
    int nets_only = 0, batch = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nets")) {
            NetDesc d[NNETS];
            char text[2048];
            bench_nets(d);
            for (int k = 0; k < NNETS; k++) {
                net_desc_format(&d[k], text, sizeof text);
                printf("%s\t%s\n", net_names[k], text);
            }
            return 0;
        } else if (!strcmp(argv[i], "--torch") && i + 1 < argc) {
            torch_file = argv[++i];
        } else if (!strcmp(argv[i], "--nets-only")) {
            nets_only = 1;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc && atoi(argv[i + 1]) > 1) {
            batch = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: gpu_bench [--torch FILE] [--nets-only] [--batch B] | gpu_bench --nets\n");
            return 2;
        }
    }
    char why[256];
    if (!cuda_available(why, sizeof why)) {
        fprintf(stderr, "gpu_bench: %s\n", why);
        return 1;
    }
    printf("gpu_bench on %s\n", why);
    if (nets_only) {
        network_table(torch_file, batch);
        return 0;
    }
    cudaStream_t st = cuda_stream();

    /* memory bandwidth: 512 MiB copied */
    size_t n4 = (size_t)32 << 20;
    float4 *a = (float4 *)cuda_backend.alloc(n4 * sizeof(float4));
    float4 *b = (float4 *)cuda_backend.alloc(n4 * sizeof(float4));
    double ms = time_ms(10, [&] {
        SIMT_LAUNCH(copy_kernel, 4096, 256, 0, st, b, a, n4);
        LAUNCH_CHECK();
    });
    double bw = 2.0 * n4 * sizeof(float4) / (ms * 1e6);
    cuda_backend.free(a), cuda_backend.free(b);

    /* FP32 rate */
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    float *sink = (float *)cuda_backend.alloc(sizeof(float));
    int blocks = sms * 8, iters = 4096;
    ms = time_ms(5, [&] {
        SIMT_LAUNCH(fma_kernel, blocks, 256, 0, st, sink, iters, 0.999f, 1e-3f);
        LAUNCH_CHECK();
    });
    double flops = 16.0 * iters * blocks * 256 / (ms * 1e6);
    cuda_backend.free(sink);
    row("copy kernel (peak)", bw, bw, "GB/s");
    row("FMA loop (peak)", flops, flops, "GFLOP/s");

    /* the reference network's GEMMs at batch 128 */
    const int B = 128;
    NetDesc d = net_reference(28, 28, 1, 10);
    int h = d.in_h, w = d.in_w, c = d.stem_c;
    size_t big = (size_t)B * 28 * 28 * 384;
    float *X = dev_random(big, 1), *Y = dev_random(big, 2), *Wt = dev_random(384 * 384, 3);
#if defined(GPU_BENCH_CUBLAS)
    cublasHandle_t cb;
    int have_cublas = cublasCreate(&cb) == CUBLAS_STATUS_SUCCESS;
    if (have_cublas) cublasSetStream(cb, st);
#endif
    for (int i = 0; i < d.nblocks; i++) {
        const BlockDesc *k = &d.blk[i];
        int E = k->e * c, ho = conv_out(h, k->k, k->s), P = B * h * w;
        /* expand: z [P,E] = x [P,c] w [c,E]; dx [P,c] = dz [P,E] w^T; dw [c,E] = x^T dz */
        struct { const char *what; int ta, tb, M, N, K; float *A, *B, *C; } g[3] = {
            {"fwd", 0, 0, P, E, c, X, Wt, Y}, {"dgrad", 0, 1, P, c, E, X, Wt, Y},
            {"wgrad", 1, 0, c, E, P, X, Y, Wt}};
        for (int j = 0; j < 3 && (i == 0 || i == 3); j++) {   /* blocks at 28x28 and 7x7 */
            char name[64];
            double f = 2.0 * g[j].M * g[j].N * g[j].K;
            int lda = g[j].ta ? g[j].M : g[j].K, ldb = g[j].tb ? g[j].K : g[j].N;
            for (int tf = 0; tf < 2; tf++) {
                if (tf && !cuda_set_tf32(1)) continue;
                ms = time_ms(20, [&] {
                    cuda_backend.gemm(g[j].ta, g[j].tb, g[j].M, g[j].N, g[j].K, 1.0f, g[j].A, lda,
                                      g[j].B, ldb, 0.0f, g[j].C, g[j].N);
                });
                cuda_set_tf32(0);
                snprintf(name, sizeof name, "gemm%s b%d %s %dx%dx%d", tf ? " tf32" : "", i,
                         g[j].what, g[j].M, g[j].N, g[j].K);
                row(name, f / (ms * 1e6), flops, "GFLOP/s");
            }
#if defined(GPU_BENCH_CUBLAS)
            if (have_cublas) {
                /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
                const float one = 1.0f, zero = 0.0f;
                ms = time_ms(20, [&] {
                    cublasSgemm(cb, g[j].tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                g[j].ta ? CUBLAS_OP_T : CUBLAS_OP_N, g[j].N, g[j].M, g[j].K, &one,
                                g[j].B, ldb, g[j].A, lda, &zero, g[j].C, g[j].N);
                });
                snprintf(name, sizeof name, "cublas b%d %s %dx%dx%d", i, g[j].what, g[j].M,
                         g[j].N, g[j].K);
                row(name, f / (ms * 1e6), flops, "GFLOP/s");
            }
#endif
        }
        h = ho, w = conv_out(w, k->k, k->s), c = k->co;
    }

    /* batchnorm and depthwise on block 0's expanded tensor: 28x28x96, batch 128 */
    {
        int C = 96, P = B * 28 * 28, s = 2, K = 3, Ho = 14;
        float *stats = dev_random(8 * 384, 4);
        float *mean = stats, *istd = stats + 384, *rm = stats + 768, *rv = stats + 1152;
        float *gam = stats + 1536, *bet = stats + 1920, *dg = stats + 2304, *db = stats + 2688;
        double mb = (double)P * C * sizeof(float);
        ms = time_ms(20, [&] {
            cuda_backend.bn_fwd_train(Y, mean, istd, rm, rv, X, NULL, gam, bet, P, C, 0.1f, 1);
        });
        row("bn_fwd_train 100352x96 (z, y)", 2 * mb / (ms * 1e6), bw, "GB/s");
        ms = time_ms(20, [&] { cuda_backend.bn_fwd_eval(Y, X, gam, bet, rm, rv, P, C, 1); });
        row("bn_fwd_eval 100352x96 (z, y)", 2 * mb / (ms * 1e6), bw, "GB/s");
        ms = time_ms(20, [&] {
            cuda_backend.bn_bwd(Y, dg, db, Y, X, mean, istd, gam, bet, P, C, 1);
        });
        row("bn_bwd 100352x96 (dy, z, dz)", 3 * mb / (ms * 1e6), bw, "GB/s");
        double ob = (double)B * Ho * Ho * C * sizeof(float);
        ms = time_ms(20, [&] { cuda_backend.dw_fwd(Y, NULL, X, NULL, Wt, K * C, C, B, 28, 28, C, K, s); });
        row("dw_fwd 28x28x96 k3 s2 (x, y)", (mb + ob) / (ms * 1e6), bw, "GB/s");
        ms = time_ms(20, [&] { cuda_backend.dw_bwd_x(Y, X, NULL, Wt, K * C, C, B, 28, 28, C, K, s); });
        row("dw_bwd_x 28x28x96 k3 s2 (dy, dx)", (mb + ob) / (ms * 1e6), bw, "GB/s");
        ms = time_ms(20, [&] { cuda_backend.dw_bwd_w(Wt, K * C, C, Y, NULL, X, NULL, B, 28, 28, C, K, s); });
        row("dw_bwd_w 28x28x96 k3 s2 (dy, x)", (mb + ob) / (ms * 1e6), bw, "GB/s");
        cuda_backend.free(stats);
    }
#if defined(GPU_BENCH_CUBLAS)
    if (have_cublas) cublasDestroy(cb);
#endif
    cuda_backend.free(X), cuda_backend.free(Y), cuda_backend.free(Wt);

    printf("\n%-44s %12s %10s\n", "kernel", "rate", "of peak");
    for (int i = 0; i < nrows; i++)
        printf("%-44s %8.0f %-7s %5.1f%%\n", rows[i].name, rows[i].value, rows[i].unit,
               100 * rows[i].value / rows[i].peak);
    network_table(torch_file, batch);
    return 0;
}
