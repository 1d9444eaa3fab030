/* simt.h: the CUDA execution model on a CPU, so that the project's kernel
 * sources (.cu, plain CUDA C) also compile as C++ and run in tests on machines
 * without a GPU.
 *
 * Kernel sources use plain CUDA plus two macros:
 *   SIMT_LAUNCH(kernel, grid, block, shmem_bytes, stream, args...)
 *       instead of kernel<<<grid, block, shmem_bytes, stream>>>(args...)
 *   SIMT_EXTERN_SHARED(T, name);
 *       inside a kernel or device function, instead of extern __shared__ T name[];
 *       (name is then a T *const; every such name points at the same bytes,
 *       aligned to 16, as with CUDA's dynamic shared memory)
 *
 * Under nvcc (and NVRTC) this header defines only those two macros. Otherwise
 * (g++ -x c++ file.cu, linked with simt.cpp) it provides the CUDA keywords,
 * built-in variables, intrinsics and the part of the runtime API a backend
 * uses, implemented by an emulator:
 *   - every block of a launch runs; the threads of a block are user-space
 *     fibers on small stacks of their own; __syncthreads switches to the next
 *     fiber and is a barrier counting arrivals against live threads (threads
 *     that returned count as arrived);
 *   - a warp is 32 consecutive threads; shuffles, votes and __syncwarp meet
 *     once per call among the live threads of the warp named in the masks;
 *   - blocks run one after another on simt_config.threads OS threads (static
 *     __shared__ is `static thread_local`, so each OS thread has its own);
 *   - checking mode (simt_config.check or SIMT_CHECK=1): dynamic shared memory
 *     is filled with NaN (0xFF bytes) at each block start and the order in which
 *     fibers run between barriers is shuffled (simt_config.seed, SIMT_SEED);
 *   - always: threads of a block waiting at different __syncthreads sites, and
 *     deadlocks (threads waiting at a warp operation others never reach), are
 *     reported with the kernel name and file:line, and the launch fails
 *     (cudaGetLastError) instead of hanging;
 *   - device buffers from cudaMalloc carry guard bytes before and after; a
 *     launch that corrupts one fails with a report naming the kernel and the
 *     buffer's size (cudaFree checks them too).
 * Compile a kernel file for the CPU with
 *   g++ -std=c++17 -O2 -I<dir of simt.h> -x c++ -c kernels.cu
 * Define SIMT_ONE_THREAD first to make __shared__ plain `static` (for code
 * loaded with dlopen, where thread_local can make dlopen fail); launches from
 * such a file then run their blocks on one OS thread.
 *
 * Not emulated: tensor cores (wmma/mma), __half, textures, cooperative groups,
 * clock(), races inside one barrier interval (only a GPU shows those); the
 * launch macro cannot take a template kernel whose name contains a comma
 * (assign it to a function pointer first); static __shared__ memory is not
 * poisoned in checking mode.
 */
#ifndef SIMT_H
#define SIMT_H

#if defined(__CUDACC__)
/* ================================================================ nvcc, NVRTC */
#if !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#endif
#if !defined(__CUDACC_RTC__)
/* The name of the last kernel this file launched (for LAUNCH_CHECK's message) */
static const char *simt_last_kernel __attribute__((unused));
#endif
#define SIMT_LAUNCH(kernel, grid, block, shmem, stream, ...) \
    (simt_last_kernel = #kernel, kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__))
#define SIMT_EXTERN_SHARED(T, name)                                    \
    extern __shared__ __align__(16) unsigned char simt_dynamic_smem_[]; \
    T *const name = reinterpret_cast<T *>(simt_dynamic_smem_)

#else
/* ================================================================ emulation */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

/* ------------------------------------------------------------ settings */

typedef struct {
    int check;                /* 1: checking mode (see above); env SIMT_CHECK */
    unsigned long long seed;  /* seed of the shuffled order; env SIMT_SEED */
    int threads;              /* OS threads that run blocks (>= 1); env SIMT_THREADS */
    int quiet;                /* 1: reports are kept for simt_last_report(), not printed */
    int stack_kib;            /* fiber stack size; 0: 64 KiB (256 KiB under ASan) */
    int asan_guards;          /* ASan builds: 1 (default) = guard bytes of device buffers
                                 are poisoned, so ASan stops at the faulting access;
                                 0 = they are left to the guard check */
    int trace;                /* 1: every launch prints "simt: launch NAME file:line" to
                                 stderr (which kernels a step runs: pipe through
                                 sort | uniq -c); env SIMT_TRACE */
} simt_config_t;
extern simt_config_t simt_config;  /* read at each launch / allocation */

/* What the host has asked of the emulated device since the program started:
 * kernel launches (failed ones too, and the kernels a graph launch runs; not
 * those recorded by a stream capture), host waits for the device (stream,
 * event and device synchronisations, and synchronous cudaMemcpy), and
 * allocations (cudaMalloc, cudaMallocHost). Tests hold the CUDA backend to
 * its budgets with them. */
typedef struct {
    unsigned long long launches, syncs, allocs;
    unsigned long long graphs;    /* cudaGraphLaunch calls (their kernels count as launches) */
} simt_counters_t;
extern simt_counters_t simt_counters;

/* The text of the latest report (a failed launch, a corrupted guard, a bad
 * copy), "" if none. Reports also go to stderr unless simt_config.quiet. */
const char *simt_last_report(void);

/* ------------------------------------------------------------ keywords */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* __restrict__ is a g++ keyword already. */
#if defined(SIMT_ONE_THREAD)
#define __shared__ static
#define SIMT_OS_THREADS_MAX 1
#else
#define __shared__ static thread_local
#define SIMT_OS_THREADS_MAX 0   /* no limit */
#endif

/* ------------------------------------------------------------ vector types */

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned int x, y; };
struct __align__(16) uint4 { unsigned int x, y, z, w; };
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

/* ------------------------------------------------------------ built-in variables */

/* What kernel code sees of the running fiber; simt_self points at it. */
struct simt_thread {
    uint3 tid, bid;      /* threadIdx, blockIdx */
    dim3 bdim, gdim;     /* blockDim, gridDim */
};
extern __thread simt_thread *simt_self;
#define threadIdx (simt_self->tid)
#define blockIdx (simt_self->bid)
#define blockDim (simt_self->bdim)
#define gridDim (simt_self->gdim)
static constexpr int warpSize = 32;

/* Dynamic shared memory of the running block (16-byte aligned). */
void *simt_dynamic_shared(void);
#define SIMT_EXTERN_SHARED(T, name) T *const name = static_cast<T *>(simt_dynamic_shared())

/* ------------------------------------------------------------ barriers, warps */

/* Operations threads wait at (also named in reports). */
enum {
    SIMT_BAR_SYNC, SIMT_BAR_COUNT, SIMT_BAR_AND, SIMT_BAR_OR,
    SIMT_SHFL_IDX, SIMT_SHFL_UP, SIMT_SHFL_DOWN, SIMT_SHFL_XOR,
    SIMT_WARP_BALLOT, SIMT_WARP_SYNC
};
/* A block barrier; returns how many threads passed a non-zero pred. */
int simt_barrier(int op, int pred, const char *file, int line);
/* One warp meeting: the lane offers bits and gets the result of op (arg: source
 * lane, delta or lane mask; width: the shuffle's segment). */
unsigned long long simt_warp(int op, unsigned mask, unsigned long long bits, int arg,
                             int width, const char *file, int line);

/* A call site, so that the intrinsics keep CUDA's default arguments. */
struct simt_site {
    const char *file;
    int line;
    template <typename T> T shfl(int op, unsigned mask, T v, int arg, int width) const
    {
        static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                      "simt: shuffles move values of at most 8 bytes");
        unsigned long long bits = 0;
        memcpy(&bits, &v, sizeof v);
        bits = simt_warp(op, mask, bits, arg, width, file, line);
        memcpy(&v, &bits, sizeof v);
        return v;
    }
    template <typename T> T idx(unsigned m, T v, int src, int w = 32) const { return shfl(SIMT_SHFL_IDX, m, v, src, w); }
    template <typename T> T up(unsigned m, T v, unsigned d, int w = 32) const { return shfl(SIMT_SHFL_UP, m, v, (int)d, w); }
    template <typename T> T down(unsigned m, T v, unsigned d, int w = 32) const { return shfl(SIMT_SHFL_DOWN, m, v, (int)d, w); }
    template <typename T> T bxor(unsigned m, T v, int lm, int w = 32) const { return shfl(SIMT_SHFL_XOR, m, v, lm, w); }
    unsigned ballot(unsigned m, int p) const { return (unsigned)simt_warp(SIMT_WARP_BALLOT, m, p != 0, 0, 32, file, line); }
    void syncwarp(unsigned m = 0xffffffffu) const { simt_warp(SIMT_WARP_SYNC, m, 0, 0, 32, file, line); }
};
#define SIMT_SITE (simt_site{__FILE__, __LINE__})

#define __syncthreads() ((void)simt_barrier(SIMT_BAR_SYNC, 0, __FILE__, __LINE__))
#define __syncthreads_count(p) simt_barrier(SIMT_BAR_COUNT, (p) != 0, __FILE__, __LINE__)
#define __syncthreads_and(p) (simt_barrier(SIMT_BAR_AND, !(p), __FILE__, __LINE__) == 0)
#define __syncthreads_or(p) (simt_barrier(SIMT_BAR_OR, (p) != 0, __FILE__, __LINE__) != 0)
#define __shfl_sync(...) SIMT_SITE.idx(__VA_ARGS__)
#define __shfl_up_sync(...) SIMT_SITE.up(__VA_ARGS__)
#define __shfl_down_sync(...) SIMT_SITE.down(__VA_ARGS__)
#define __shfl_xor_sync(...) SIMT_SITE.bxor(__VA_ARGS__)
#define __ballot_sync(m, p) SIMT_SITE.ballot((m), (p))
#define __any_sync(m, p) (SIMT_SITE.ballot((m), (p)) != 0)
#define __all_sync(m, p) (SIMT_SITE.ballot((m), !(p)) == 0)
#define __syncwarp(...) SIMT_SITE.syncwarp(__VA_ARGS__)
unsigned __activemask(void);   /* the live lanes of the caller's warp */
void __threadfence(void);
void __threadfence_block(void);

/* ------------------------------------------------------------ atomics */

float atomicAdd(float *p, float v);
double atomicAdd(double *p, double v);
int atomicAdd(int *p, int v);
unsigned atomicAdd(unsigned *p, unsigned v);
unsigned long long atomicAdd(unsigned long long *p, unsigned long long v);
int atomicSub(int *p, int v);
unsigned atomicSub(unsigned *p, unsigned v);
int atomicMax(int *p, int v);
unsigned atomicMax(unsigned *p, unsigned v);
int atomicMin(int *p, int v);
unsigned atomicMin(unsigned *p, unsigned v);
int atomicExch(int *p, int v);
unsigned atomicExch(unsigned *p, unsigned v);
float atomicExch(float *p, float v);
int atomicCAS(int *p, int compare, int v);
unsigned atomicCAS(unsigned *p, unsigned compare, unsigned v);
unsigned long long atomicCAS(unsigned long long *p, unsigned long long compare,
                             unsigned long long v);

/* ------------------------------------------------------------ intrinsics */

template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
/* glibc's math.h declares (but does not export) __expf and friends: macros. */
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __powf(x, y) powf(x, y)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
static inline float __uint_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned v; memcpy(&v, &f, 4); return v; }
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
static inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
static inline int __ffs(int v) { return __builtin_ffs(v); }
#define SIMT_MINMAX(T)                                              \
    static inline T min(T a, T b) { return a < b ? a : b; }         \
    static inline T max(T a, T b) { return a > b ? a : b; }
SIMT_MINMAX(int)
SIMT_MINMAX(unsigned)
SIMT_MINMAX(long)
SIMT_MINMAX(unsigned long)
SIMT_MINMAX(long long)
SIMT_MINMAX(unsigned long long)
#undef SIMT_MINMAX
static inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
static inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
static inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
static inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

/* ------------------------------------------------------------ runtime API */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901
} cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

/* Work runs synchronously: streams are handles only, events hold host times. */
typedef struct simt_stream *cudaStream_t;
typedef struct simt_event *cudaEvent_t;
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaEventDefault 0x0
#define cudaEventDisableTiming 0x2

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);     /* returns and clears this host thread's last error */
cudaError_t cudaPeekAtLastError(void);

cudaError_t cudaGetDeviceCount(int *n);  /* 1: the emulated device */
/* The CUDA version (1000 * major + 10 * minor) the driver supports and the
 * runtime's; here both SIMT_CUDA_VERSION. */
#define SIMT_CUDA_VERSION 12000
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaDeviceSynchronize(void);
/* Of the attributes, only the SM count: the OS threads that run blocks. */
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);

cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes)
{
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s = 0);
/* __constant__ and __device__ variables are ordinary globals here. */
template <typename T>
static inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t bytes,
                                             size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyHostToDevice)
{
    if (offset + bytes > sizeof symbol || kind == cudaMemcpyDeviceToHost)
        return cudaErrorInvalidValue;
    memcpy(reinterpret_cast<char *>(&symbol) + offset, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

/* Stream capture and graphs: between cudaStreamBeginCapture and
 * cudaStreamEndCapture, the kernel launches, cudaMemcpyAsync and
 * cudaMemsetAsync queued on that stream are recorded (launches with a copy of
 * their arguments), not run; cudaGraphLaunch runs the recorded work again, in
 * order. While a capture is open, what CUDA's global capture mode forbids
 * fails with cudaErrorStreamCaptureUnsupported and invalidates the capture:
 * host waits (synchronisations, cudaMemcpy, cudaEventQuery) and, stricter
 * than CUDA, any allocation or free (a captured step must allocate nothing).
 * Work queued on another stream during a capture runs at once. Graphs hold no
 * dependencies beyond their order (one stream). */
typedef struct simt_graph *cudaGraph_t;
typedef struct simt_graph *cudaGraphExec_t;
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2
};
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

/* Kernels may ask for more than 48 KiB of dynamic shared memory only after
 * raising this attribute, as on a GPU. */
cudaError_t simt_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value);
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F *kernel, cudaFuncAttribute attr, int value)
{
    return simt_func_set_attribute(reinterpret_cast<const void *>(kernel), attr, value);
}

/* ------------------------------------------------------------ launch */

/* Run every block of a launch; run(arg) is one thread's call of the kernel.
 * Failures go to the host thread's last error and to a report. On a
 * capturing stream the launch is recorded instead, with clone(arg) (freed by
 * destroy when its graph is). */
void simt_launch(const char *name, const char *file, int line, dim3 grid, dim3 block,
                 size_t shmem, cudaStream_t stream, const void *kernel,
                 void (*run)(void *), void *arg, void *(*clone)(const void *),
                 void (*destroy)(void *), int os_threads_max);

template <typename... P, typename... A>
static inline void simt_launch_kernel(const char *name, const char *file, int line,
                                      dim3 grid, dim3 block, size_t shmem,
                                      cudaStream_t stream, void (*kernel)(P...),
                                      A &&...args)
{
    /* The arguments are converted to the kernel's parameter types once; each
     * thread's call copies them, as a GPU thread gets its own parameters. */
    struct Call {
        void (*kernel)(P...);
        std::tuple<typename std::decay<P>::type...> args;
        static void run(void *self)
        {
            Call *c = static_cast<Call *>(self);
            std::apply(c->kernel, c->args);
        }
        /* (malloc and placement new: the C programs that link the emulator
         * have no C++ runtime's operator new) */
        static void *clone(const void *self)
        {
            void *p = malloc(sizeof(Call));
            return p ? new (p) Call(*static_cast<const Call *>(self)) : NULL;
        }
        static void destroy(void *self)
        {
            if (self) static_cast<Call *>(self)->~Call();
            free(self);
        }
    } call{kernel, std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
    simt_launch(name, file, line, grid, block, shmem, stream,
                reinterpret_cast<const void *>(kernel), &Call::run, &call, &Call::clone,
                &Call::destroy, SIMT_OS_THREADS_MAX);
}

/* The name of the last kernel this file launched (for LAUNCH_CHECK's message) */
static const char *simt_last_kernel __attribute__((unused));
#define SIMT_LAUNCH(kernel, grid, block, shmem, stream, ...)                                 \
    (simt_last_kernel = #kernel,                                                             \
     simt_launch_kernel(#kernel, __FILE__, __LINE__, (grid), (block), (shmem), (stream), \
                        kernel, ##__VA_ARGS__))

#endif /* emulation */
#endif /* SIMT_H */
