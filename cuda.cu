/* cuda.cu: the CUDA backend's host side: is a device usable (and why not),
 * device memory, the one stream, scratch space, and the Backend table whose
 * ops live in kernels.cu, gemm.cu and conv.cu.
 *
 * Every op is queued on one stream and returns at once, except those that
 * make the host wait: download (cudaStreamSynchronize, so the host buffer is
 * filled when it returns); the losses xent, l1, entropy, mmd and ntxent (they
 * read their sums back; training uses xent_acc and l1_acc, which do not);
 * free (cudaFree waits for the device); and an upload only when it is larger
 * than the pinned staging buffers take, or when the host is STAGE_SLOTS
 * uploads ahead of the device (see cuda_upload). An op that needs more
 * scratch than cuda_scratch holds allocates more, without a wait.
 * Memory comes from cudaMalloc and is zeroed on the stream when allocated, as
 * the Backend promises.
 * Built by nvcc this is the GPU backend; built with g++ and simt.h it runs
 * the same kernels on the CPU emulator (the tests' "device").
 */
#include "nta_cuda.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- the device */

extern "C" int cuda_available(char *why, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();   /* a failed probe must not stay the last error */
    /* 35 = cudaErrorInsufficientDriver (no driver, or one too old for this
     * runtime), 100 = cudaErrorNoDevice: both mean there is no GPU to use */
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);         /* 0 when no driver is installed */
    cudaRuntimeGetVersion(&runtime);
    cudaGetLastError();
    if ((int)e == 35 && driver == 0) {
        snprintf(why, len, "no CUDA GPU (no driver found)");
        return 0;
    }
    if ((int)e == 35) {
        snprintf(why, len, "no usable CUDA GPU: the NVIDIA driver supports CUDA %d.%d, this nta was built with "
                 "CUDA %d.%d; update the driver, or run with --device cpu", driver / 1000, driver % 1000 / 10,
                 runtime / 1000, runtime % 1000 / 10);
        return 0;
    }
    if ((int)e == 100 || (e == cudaSuccess && n < 1)) {
        snprintf(why, len, "no CUDA GPU (no device found)");
        return 0;
    }
    if (e != cudaSuccess) {
        snprintf(why, len, "no CUDA GPU (%s; driver for CUDA %d.%d, runtime CUDA %d.%d)", cudaGetErrorString(e),
                 driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return 0;
    }
#if defined(__CUDACC__)
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, len, "no usable CUDA GPU (%s)", cudaGetErrorString(e));
        return 0;
    }
    if (prop.major < 8) {
        snprintf(why, len, "no usable CUDA GPU (%s is sm_%d%d; this nta has kernels for sm_80 and newer)",
                 prop.name, prop.major, prop.minor);
        return 0;
    }
    snprintf(why, len, "%s (sm_%d%d, %d SMs, %.0f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
#else
    snprintf(why, len, "the SIMT emulator on the CPU (simt.h)");
#endif
    return 1;
}

cudaStream_t cuda_stream(void)
{
    static cudaStream_t stream;
    static int ready;
    if (!ready) {
        CUDA_CHECK(cudaSetDevice(0));
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        ready = 1;
    }
    return stream;
}

void cuda_check_launch(const char *kernel, const char *file, int line)
{
    static int sync = -1;
    if (sync < 0) sync = getenv("NTA_CUDA_SYNC") && !strcmp(getenv("NTA_CUDA_SYNC"), "1");
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sync) e = cudaStreamSynchronize(cuda_stream());
    if (e == cudaSuccess) return;
    fprintf(stderr, "nta: CUDA error after the launch of %s (%s:%d): %s%s\n", kernel ? kernel : "a kernel", file,
            line, cudaGetErrorString(e),
            sync ? "" : "\n  (a kernel's fault may surface at a later launch: NTA_CUDA_SYNC=1 names the kernel at fault)");
    exit(1);
}

/* Scratch grows by half again when an op needs more; the buffer it outgrew is
 * kept, not freed (cudaFree would wait for the device, and a captured graph
 * may still name it), so growing costs one cudaMalloc and no wait. The
 * largest ops of a network run in its first step: no step after it allocates. */
void *cuda_scratch(size_t bytes)
{
    static void *buf;
    static size_t cap;
    if (bytes > cap) {
        cap = bytes + bytes / 2;
        CUDA_CHECK(cudaMalloc(&buf, cap));
    }
    return buf;
}

/* ----------------------------------------------------------------- memory */

static void *cuda_alloc(size_t bytes)
{
    void *p = NULL;
    cuda_stream();
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation)
        nta_die("out of GPU memory allocating %zu bytes (try a smaller --batch)", bytes);
    CUDA_CHECK(e);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
    return p;
}

static void cuda_free(void *p) { CUDA_CHECK(cudaFree(p)); }

/* Uploads are staged: the host bytes are copied into one of STAGE_SLOTS
 * pinned buffers (cudaMallocHost), taken in turn, and an asynchronous copy
 * from there is queued; the host returns at once, free to reuse its buffer
 * and to prepare the next batch while the device trains on this one. A slot
 * is taken again STAGE_SLOTS uploads later (a training step makes three: the
 * images, the labels, the learning rate); only if the device has not yet
 * copied out of it (the host ran that far ahead) does the host wait, for that
 * copy alone. When an upload is larger than the slots, all of them grow at
 * once (allocations, and cudaFreeHost waits for the device): in a training
 * run, during its first step only. Uploads larger than STAGE_MAX are copied
 * from pageable memory and waited for. */
enum { STAGE_SLOTS = 6 };
#define STAGE_MAX ((size_t)16 << 20)

typedef struct {
    void *buf;             /* pinned host memory [stage_cap bytes] */
    cudaEvent_t copied;    /* recorded after the last copy out of buf */
    int used;
} Stage;

static Stage stage[STAGE_SLOTS];
static size_t stage_cap;

/* The next slot, free for the host to write, holding at least `bytes`. */
static Stage *stage_take(size_t bytes)
{
    static int next;
    if (bytes > stage_cap) {
        stage_cap = bytes;
        for (int i = 0; i < STAGE_SLOTS; i++) {
            CUDA_CHECK(cudaFreeHost(stage[i].buf));
            CUDA_CHECK(cudaMallocHost(&stage[i].buf, stage_cap));
            stage[i].used = 0;
        }
    }
    Stage *s = &stage[next];
    next = (next + 1) % STAGE_SLOTS;
    if (!s->copied) CUDA_CHECK(cudaEventCreateWithFlags(&s->copied, cudaEventDisableTiming));
    if (s->used) {
        cudaError_t e = cudaEventQuery(s->copied);
        if (e == cudaErrorNotReady) {
            cudaGetLastError();   /* not an error: the copy is still queued */
            e = cudaEventSynchronize(s->copied);
        }
        CUDA_CHECK(e);
    }
    return s;
}

/* Whether the one stream is recording a graph (nothing may upload then). */
static int capturing(void)
{
    cudaStreamCaptureStatus st;
    CUDA_CHECK(cudaStreamIsCapturing(cuda_stream(), &st));
    return st != cudaStreamCaptureStatusNone;
}

/* The host buffer may be reused as soon as this returns. */
static void cuda_upload(void *dst, const void *src, size_t bytes)
{
    cudaStream_t st = cuda_stream();
    if (capturing()) nta_die("internal: an upload while a CUDA graph is being recorded (upload before it)");
    if (bytes > STAGE_MAX) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        return;
    }
    Stage *s = stage_take(bytes);
    memcpy(s->buf, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, s->buf, bytes, cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaEventRecord(s->copied, st));
    s->used = 1;
}

static void cuda_download(void *dst, const void *src, size_t bytes)
{
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

static void cuda_zero(void *p, size_t bytes)
{
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}

/* ------------------------------------------------------------- graphs */

/* A graph records the ops queued on the one stream (stream capture) and runs
 * them again with one launch. Not while NTA_CUDA_SYNC=1 asks for a wait after
 * every launch (a capture forbids waits): then ops run as they are called. */
static int cuda_graph_begin(void)
{
    const char *sync = getenv("NTA_CUDA_SYNC");
    if (sync && !strcmp(sync, "1")) return 0;
    CUDA_CHECK(cudaStreamBeginCapture(cuda_stream(), cudaStreamCaptureModeGlobal));
    return 1;
}

static void *cuda_graph_end(void)
{
    cudaGraph_t g;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamEndCapture(cuda_stream(), &g));
    CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    return (void *)exec;
}

static void cuda_graph_run(void *graph)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, cuda_stream()));
}

static void cuda_graph_free(void *graph)
{
    if (graph) CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}

/* ------------------------------------------------------------ the backend */

/* By slot name (C++20 designated initializers, accepted by g++ and nvcc in
 * C++17 mode): they must follow the order of the Backend struct (nta.h), and
 * every slot is named, or nvcc warns. */
const Backend cuda_backend = {
    .name = "cuda",
    .eval_piece = 0,    /* inference: the whole batch at once */
    .load_bn = 1,       /* training: batchnorms fused into the ops around them */
    .alloc = cuda_alloc, .free = cuda_free, .upload = cuda_upload, .download = cuda_download,
    .zero = cuda_zero,
    .gemm = cuda_gemm,
    .conv_fwd = cuda_conv_fwd, .conv_bwd_w = cuda_conv_bwd_w,
    .dw_fwd = cuda_dw_fwd, .dw_bwd_x = cuda_dw_bwd_x, .dw_bwd_w = cuda_dw_bwd_w,
    .bn_fwd_train = cuda_bn_fwd_train, .bn_fwd_eval = cuda_bn_fwd_eval, .bn_bwd = cuda_bn_bwd,
    .gemm_bn = cuda_gemm_bn, .bn_apply = cuda_bn_apply, .bn_bwd_sums = cuda_bn_bwd_sums,
    .add = cuda_add, .gap_fwd = cuda_gap_fwd, .gap_bwd = cuda_gap_bwd,
    .bias_fwd = cuda_bias_fwd, .bias_bwd = cuda_bias_bwd,
    .xent = cuda_xent, .l1 = cuda_l1, .xent_acc = cuda_xent_acc, .l1_acc = cuda_l1_acc,
    .entropy = cuda_entropy, .mmd = cuda_mmd,
    .l2norm_fwd = cuda_l2norm_fwd, .l2norm_bwd = cuda_l2norm_bwd, .ntxent = cuda_ntxent, .sgd = cuda_sgd,
    .gemm_bn_eval = cuda_gemm_bn_eval, .dw_bn_eval = cuda_dw_bn_eval,
    .graph_begin = cuda_graph_begin, .graph_end = cuda_graph_end, .graph_run = cuda_graph_run,
    .graph_free = cuda_graph_free,
};
