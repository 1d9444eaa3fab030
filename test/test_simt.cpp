/* test/test_simt.cpp: the SIMT emulator (simt.h) against plain CPU loops, on
 * the sample kernels of test/simt_kernels.cu, and its checks on kernels with
 * planted bugs. Also prints (never asserts) the cost of a barrier per thread.
 */
#include "simt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "test.h"
}

/* test/simt_kernels.cu */
cudaError_t skt_sgemm(float *C, const float *A, const float *B, int M, int N, int K);
cudaError_t skt_reduce(float *out, const float *in, int n, int blocks, int threads, int use_xor);
cudaError_t skt_atomic(float *bins, int nbins, float *total, int blocks, int threads);
cudaError_t skt_votes(int *out, int threads);
cudaError_t skt_reverse(float *out, const float *in, int n, int threads);
cudaError_t skt_ids(int *out, dim3 grid, dim3 block);
cudaError_t skt_shift(float *out, const float *in, int n, int threads, int sync);
cudaError_t skt_barrier_mismatch(float *out, int threads);
cudaError_t skt_shuffle_deadlock(float *out, int threads);
cudaError_t skt_write_past_end(float *p, int n);
cudaError_t skt_barriers(int *out, int blocks, int threads, int iters);
cudaError_t skt_axpy(float *y, const float *x, float a, int n, cudaStream_t s);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A device copy of host data, or a device buffer of n floats. */
static float *dev_floats(const float *host, size_t n)
{
    float *d = NULL;
    if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) return NULL;
    if (host) cudaMemcpy(d, host, n * sizeof(float), cudaMemcpyHostToDevice);
    else cudaMemset(d, 0, n * sizeof(float));
    return d;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
}

/* Largest |a-b| / (1e-5 + 1e-4*|b|) over n: <= 1 means within tolerance (NaN: huge). */
static double worst(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1e-5 + 1e-4 * fabs((double)b[i]));
        if (!(e <= w)) w = e != e ? 1e30 : e;
    }
    return w;
}

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

/* ------------------------------------------------------------ kernels vs CPU */

static void test_sgemm(int M, int N, int K)
{
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *A = (float *)malloc(na * 4), *B = (float *)malloc(nb * 4);
    float *C = (float *)malloc(nc * 4), *R = (float *)malloc(nc * 4);
    fill(A, na, 1);
    fill(B, nb, 2);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)A[m * K + k] * B[k * N + n];
            R[m * N + n] = (float)s;
        }
    float *dA = dev_floats(A, na), *dB = dev_floats(B, nb), *dC = dev_floats(NULL, nc);
    cudaError_t e = skt_sgemm(dC, dA, dB, M, N, K);
    cudaMemcpy(C, dC, nc * 4, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "sgemm %dx%dx%d: %s", M, N, K, cudaGetErrorString(e));
    double w = worst(C, R, nc);
    CHECK(w <= 1, "sgemm %dx%dx%d: off by %g tolerances", M, N, K, w);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    free(A), free(B), free(C), free(R);
}

static void test_reduce(int use_xor, int n, int blocks, int threads)
{
    float *x = (float *)malloc(n * 4), out[64], ref[64] = {0};
    fill(x, n, 3);
    for (int i = 0; i < n; i++) ref[i / threads % blocks] += x[i];
    float *dx = dev_floats(x, n), *dout = dev_floats(NULL, blocks);
    cudaError_t e = skt_reduce(dout, dx, n, blocks, threads, use_xor);
    cudaMemcpy(out, dout, blocks * 4, cudaMemcpyDeviceToHost);
    const char *how = use_xor ? "__shfl_xor_sync" : "__shfl_down_sync";
    CHECK(e == cudaSuccess, "reduce %s: %s", how, cudaGetErrorString(e));
    double w = worst(out, ref, blocks);
    CHECK(w <= 1, "reduce %s n=%d blocks=%d threads=%d: off by %g tolerances", how, n,
          blocks, threads, w);
    cudaFree(dx);
    cudaFree(dout);
    free(x);
}

static void test_atomic(int os_threads)
{
    enum { NBINS = 8, BLOCKS = 64, THREADS = 256 };
    int saved = simt_config.threads;
    simt_config.threads = os_threads;
    float bins[NBINS], total = 0;
    float *dbins = dev_floats(NULL, NBINS), *dtotal = dev_floats(NULL, 1);
    cudaError_t e = skt_atomic(dbins, NBINS, dtotal, BLOCKS, THREADS);
    cudaMemcpy(bins, dbins, sizeof bins, cudaMemcpyDeviceToHost);
    cudaMemcpy(&total, dtotal, 4, cudaMemcpyDeviceToHost);
    simt_config.threads = saved;
    CHECK(e == cudaSuccess, "atomicAdd: %s", cudaGetErrorString(e));
    int ok = total == 0.5f * BLOCKS * THREADS;
    for (int i = 0; i < NBINS; i++) ok &= bins[i] == (float)(BLOCKS * THREADS / NBINS);
    CHECK(ok, "atomicAdd on %d OS threads: total %g, bin 0 %g", os_threads, total, bins[0]);
    cudaFree(dbins);
    cudaFree(dtotal);
}

static void test_votes(void)
{
    enum { T = 64 };
    int out[T * 6], *dout = NULL;
    cudaMalloc(&dout, sizeof out);
    cudaError_t e = skt_votes(dout, T);
    cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "votes: %s", cudaGetErrorString(e));
    int ok = 1;
    for (int t = 0; t < T; t++) {
        const int *o = out + 6 * t;
        int lane = t % 32;
        ok &= (unsigned)o[0] == 0xAAAAAAAAu && o[1] == 1 && o[2] == 1;
        ok &= o[3] == (lane == 0 ? t : t - 1);
        ok &= o[4] == t - lane % 16 + 3;
        ok &= o[5] == T / 2;
        if (!ok) {
            CHECK(0, "votes: thread %d got %x %d %d %d %d %d", t, o[0], o[1], o[2], o[3],
                  o[4], o[5]);
            break;
        }
    }
    if (ok) CHECK(1, "votes");
    cudaFree(dout);
}

static void test_dynamic_shared(void)
{
    enum { N = 1000, T = 128 };
    float x[N], out[N], ref[N];
    fill(x, N, 4);
    for (int i = 0; i < N; i++) {
        int b = i / T, r = b * T + (T - 1 - i % T);
        ref[i] = r < N ? x[r] : 0.0f;
    }
    float *dx = dev_floats(x, N), *dout = dev_floats(NULL, N);
    cudaError_t e = skt_reverse(dout, dx, N, T);
    cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "dynamic shared: %s", cudaGetErrorString(e));
    /* elements whose partner lies past n are never written: compare the rest */
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int b = i / T, r = b * T + (T - 1 - i % T);
        if (r < N) bad += out[i] != ref[i];
    }
    CHECK(!bad, "dynamic shared memory: %d elements wrong", bad);
    cudaFree(dx);
    cudaFree(dout);
}

static void test_ids(dim3 g, dim3 b)
{
    int nb = g.x * g.y * g.z, nt = b.x * b.y * b.z, n = nb * nt * 4;
    int *out = (int *)malloc(n * sizeof(int)), *dout = NULL;
    cudaMalloc(&dout, n * sizeof(int));
    cudaError_t e = skt_ids(dout, g, b);
    cudaMemcpy(out, dout, n * sizeof(int), cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "ids: %s", cudaGetErrorString(e));
    int bad = 0;
    for (unsigned bz = 0; bz < g.z; bz++)
        for (unsigned by = 0; by < g.y; by++)
            for (unsigned bx = 0; bx < g.x; bx++)
                for (unsigned tz = 0; tz < b.z; tz++)
                    for (unsigned ty = 0; ty < b.y; ty++)
                        for (unsigned tx = 0; tx < b.x; tx++) {
                            int bl = bx + g.x * (by + g.y * bz), tl = tx + b.x * (ty + b.y * tz);
                            const int *o = out + 4 * (bl * nt + tl);
                            bad += o[0] != (int)(bx + 100 * by + 10000 * bz);
                            bad += o[1] != (int)(tx + 100 * ty + 10000 * tz);
                            bad += o[2] != (int)(g.x + 100 * g.y + 10000 * g.z);
                            bad += o[3] != (int)(b.x + 100 * b.y + 10000 * b.z);
                        }
    CHECK(!bad, "blockIdx/threadIdx/gridDim/blockDim over grid (%u,%u,%u) block (%u,%u,%u): "
          "%d wrong", g.x, g.y, g.z, b.x, b.y, b.z, bad);
    cudaFree(dout);
    free(out);
}

/* ------------------------------------------------------------ planted bugs */

/* Run skt_shift in checking mode: 1 if its output matches the CPU's. */
static int shift_matches(int sync, cudaError_t *e)
{
    enum { N = 512, T = 128 };
    float x[N], out[N], ref[N];
    fill(x, N, 5);
    for (int i = 0; i < N; i++) ref[i] = i % T ? x[i - 1] : 0.0f;
    float *dx = dev_floats(x, N), *dout = dev_floats(NULL, N);
    *e = skt_shift(dout, dx, N, T, sync);
    cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
    cudaFree(dx);
    cudaFree(dout);
    return worst(out, ref, N) <= 1;
}

static void test_checking_mode(void)
{
    simt_config_t saved = simt_config;
    cudaError_t e;
    simt_config.check = 1;
    simt_config.seed = 12345;
    int good = shift_matches(1, &e);
    CHECK(good && e == cudaSuccess, "checking mode: the correct kernel must match (%s)",
          cudaGetErrorString(e));
    int bad = shift_matches(0, &e);
    CHECK(!bad, "checking mode: a kernel missing its __syncthreads must give wrong results");
    simt_config = saved;
}

static void test_barrier_mismatch(void)
{
    simt_config_t saved = simt_config;
    simt_config.quiet = 1;
    float *d = dev_floats(NULL, 64);
    cudaError_t e = skt_barrier_mismatch(d, 64);
    const char *r = simt_last_report();
    CHECK(e == cudaErrorLaunchFailure, "barrier mismatch: launch returned %s",
          cudaGetErrorString(e));
    CHECK(contains(r, "skt_barrier_mismatch_kernel") && contains(r, "different barriers") &&
          contains(r, "32 threads at __syncthreads (") && contains(r, "simt_kernels.cu:"),
          "barrier mismatch report: %s", r);
    CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears the error");
    cudaFree(d);
    simt_config = saved;
}

static void test_deadlock(void)
{
    simt_config_t saved = simt_config;
    simt_config.quiet = 1;
    float *d = dev_floats(NULL, 64);
    cudaError_t e = skt_shuffle_deadlock(d, 64);
    const char *r = simt_last_report();
    CHECK(e == cudaErrorLaunchFailure, "deadlock: launch returned %s", cudaGetErrorString(e));
    CHECK(contains(r, "skt_shuffle_deadlock_kernel") && contains(r, "deadlock") &&
          contains(r, "__shfl_xor_sync (") && contains(r, "__syncthreads ("),
          "deadlock report: %s", r);
    /* the emulator is usable after an abandoned block */
    test_reduce(0, 300, 2, 64);
    cudaFree(d);
    simt_config = saved;
}

static void test_guards(void)
{
    enum { N = 100 };
    simt_config_t saved = simt_config;
    simt_config.quiet = 1;
    simt_config.asan_guards = 0;  /* ASan builds: let our guard check see it */
    float *d = dev_floats(NULL, N);
    cudaError_t e = skt_write_past_end(d, N);
    const char *r = simt_last_report();
    CHECK(e == cudaErrorIllegalAddress, "write past the end: launch returned %s",
          cudaGetErrorString(e));
    CHECK(contains(r, "skt_write_past_end_kernel") && contains(r, "400 bytes") &&
          contains(r, "past the end"), "guard report: %s", r);
    CHECK(cudaFree(d) == cudaSuccess, "guards are re-armed after a report");

    /* host-side misuse: a copy longer than the buffer, a host pointer as device */
    float host[2 * N] = {0};
    d = dev_floats(NULL, N);
    e = cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost);
    CHECK(e == cudaErrorInvalidValue && contains(simt_last_report(), "past the end"),
          "cudaMemcpy past the end: %s / %s", cudaGetErrorString(e), simt_last_report());
    e = cudaMemset(host, 0, sizeof host);
    CHECK(e == cudaErrorInvalidValue && contains(simt_last_report(), "not device memory"),
          "cudaMemset on host memory: %s", cudaGetErrorString(e));
    cudaGetLastError();
    cudaFree(d);
    simt_config = saved;
}

/* ------------------------------------------------------------ timings (printed) */

static void print_costs(void)
{
    enum { BLOCKS = 4, THREADS = 256, ITERS = 500 };
    int os_threads = simt_config.threads, *d = NULL;
    simt_config.threads = 1;  /* the cost of one switch, not a throughput */
    cudaMalloc(&d, sizeof(int));
    skt_barriers(d, 1, THREADS, 10);  /* warm up: stacks mapped */
    double t0 = now_s();
    cudaError_t e = skt_barriers(d, BLOCKS, THREADS, ITERS);
    double t = now_s() - t0;
    CHECK(e == cudaSuccess, "barrier loop: %s", cudaGetErrorString(e));
    printf("simt: %.1f ns per thread per barrier (%s)\n",
           t * 1e9 / ((double)BLOCKS * THREADS * ITERS),
#if defined(__x86_64__) && !defined(SIMT_UCONTEXT)
           "x86-64 switch"
#else
           "ucontext switch"
#endif
    );
    cudaFree(d);
    simt_config.threads = os_threads;

    int n = 256;
    float *A = dev_floats(NULL, n * n), *B = dev_floats(NULL, n * n), *C = dev_floats(NULL, n * n);
    t0 = now_s();
    e = skt_sgemm(C, A, B, n, n, n);
    t = now_s() - t0;
    CHECK(e == cudaSuccess, "sgemm 256^3: %s", cudaGetErrorString(e));
    printf("simt: 256^3 SGEMM, 64x64 tiles, 256 threads/block: %.1f ms (%d OS thread%s%s)\n",
           t * 1e3, simt_config.threads, simt_config.threads == 1 ? "" : "s",
           simt_config.check ? ", checking mode" : "");
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
}

/* ------------------------------------------------------------ stream capture */

/* A captured copy, memset and two launches: nothing runs while recording;
 * each graph launch runs them again in order, reading the host buffer as it
 * is then; a host wait or an allocation during a capture fails and
 * invalidates it. */
static void test_capture(void)
{
    enum { n = 100 };
    float hx[n], hy[n];
    fill(hx, n, 7);
    float *x = dev_floats(NULL, n), *y = dev_floats(NULL, n);
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "capture: a stream");
    cudaMemset(y, 0, n * sizeof(float));
    simt_counters_t c0 = simt_counters;
    cudaStreamCaptureStatus st;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaStreamIsCapturing(s, &st);
    CHECK(e == cudaSuccess && st == cudaStreamCaptureStatusActive, "capture begins: %s", cudaGetErrorString(e));
    cudaMemcpyAsync(x, hx, sizeof hx, cudaMemcpyHostToDevice, s);
    cudaMemsetAsync(y, 0, n * sizeof(float), s);
    skt_axpy(y, x, 2.0f, n, s);
    e = skt_axpy(y, x, 2.0f, n, s);
    CHECK(e == cudaSuccess && cudaStreamEndCapture(s, &g) == cudaSuccess && g, "capture ends with a graph: %s",
          cudaGetErrorString(e));
    cudaMemcpy(hy, x, sizeof hy, cudaMemcpyDeviceToHost);
    CHECK(hy[0] == 0 && hy[n - 1] == 0 && simt_counters.launches == c0.launches,
          "capture records without running: x[0] %g, %llu launches", hy[0], simt_counters.launches - c0.launches);
    cudaGraphExec_t ex = NULL;
    CHECK(cudaGraphInstantiate(&ex, g, 0) == cudaSuccess && ex, "graph instantiated");
    cudaGraphDestroy(g);     /* the executable graph stands alone */
    for (int run = 0; run < 2; run++) {
        hx[0] = (float)(run + 1);   /* the copy reads the host buffer at launch */
        c0 = simt_counters;
        e = cudaGraphLaunch(ex, s);
        cudaMemcpy(hy, y, sizeof hy, cudaMemcpyDeviceToHost);
        int bad = 0;
        for (int i = 0; i < n; i++) bad += hy[i] != 3 * hx[i];
        CHECK(e == cudaSuccess && !bad && simt_counters.launches - c0.launches == 2 &&
                  simt_counters.graphs - c0.graphs == 1,
              "graph launch %d: %s, %d of %d wrong (y[0] %g, want %g), %llu launches", run, cudaGetErrorString(e),
              bad, n, hy[0], 3 * hx[0], simt_counters.launches - c0.launches);
    }
    cudaGraphExecDestroy(ex);
    /* forbidden while capturing */
    int quiet = simt_config.quiet;
    simt_config.quiet = 1;
    void *p = NULL;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    e = cudaStreamSynchronize(s);
    CHECK(e == cudaErrorStreamCaptureUnsupported && contains(simt_last_report(), "cudaStreamSynchronize"),
          "a host wait during a capture fails: %s", cudaGetErrorString(e));
    e = cudaMalloc(&p, 16);
    CHECK(e == cudaErrorStreamCaptureUnsupported && !p, "an allocation during a capture fails: %s",
          cudaGetErrorString(e));
    cudaStreamIsCapturing(s, &st);
    CHECK(st == cudaStreamCaptureStatusInvalidated, "the capture is invalidated");
    e = cudaStreamEndCapture(s, &g);
    CHECK(e == cudaErrorStreamCaptureInvalidated && !g, "ending it gives no graph: %s", cudaGetErrorString(e));
    cudaGetLastError();
    simt_config.quiet = quiet;
    cudaStreamIsCapturing(s, &st);
    CHECK(st == cudaStreamCaptureStatusNone && cudaMalloc(&p, 16) == cudaSuccess, "after it, allocation works again");
    cudaFree(p), cudaFree(x), cudaFree(y);
    cudaStreamDestroy(s);
}

/* ------------------------------------------------------------ entry */

extern "C" void test_simt(void)
{
    test_sgemm(67, 45, 33);
    test_sgemm(64, 64, 16);
    test_sgemm(1, 130, 7);
    test_reduce(0, 10000, 7, 256);
    test_reduce(1, 10000, 7, 256);
    test_reduce(0, 777, 3, 96);
    test_reduce(1, 777, 3, 96);
    test_atomic(1);
    test_atomic(2);
    test_votes();
    test_dynamic_shared();
    test_ids(dim3(3, 2, 2), dim3(4, 2, 3));
    test_ids(dim3(5, 3), dim3(8, 8));
    test_checking_mode();
    test_barrier_mismatch();
    test_deadlock();
    test_guards();
    test_capture();
    print_costs();
}
