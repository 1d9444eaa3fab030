/* rtc.c: kernels specialised for the layers of a fixed architecture, and
 * NVRTC opened at run time (see rtc.h).
 *
 * The first specialised kernel is inference of a depthwise layer with its
 * batchnorm and ReLU6: the generic dw_bn_eval_kernel (conv.cu) with every
 * shape a constant. Its arithmetic is the generic kernel's, term for term
 * and in the same order, so the two agree bitwise where both are built the
 * same way (the tests: both on the emulator, without FMA contraction).
 */
#define _GNU_SOURCE
#include "rtc.h"
#include "nta.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ the source */

/* What every generated source starts with (once per translation unit): the
 * emulator for a host compiler, an unroll pragma for each compiler, ReLU6 as
 * nta.h's relu6f. */
static const char *prelude =
    "#if !defined(__CUDACC_RTC__) && !defined(__CUDACC__)\n"
    "#include \"simt.h\"\n"
    "#endif\n"
    "#ifndef NTA_RTC_PRELUDE\n"
    "#define NTA_RTC_PRELUDE\n"
    "#if defined(__CUDACC_RTC__) || defined(__CUDACC__)\n"
    "#define NTA_RTC_UNROLL _Pragma(\"unroll\")\n"
    "#else\n"
    "#define NTA_RTC_UNROLL _Pragma(\"GCC unroll 8\")\n"
    "#endif\n"
    "static __device__ __forceinline__ float nta_rtc_relu6(float v)\n"
    "{\n"
    "    return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;\n"
    "}\n"
    "#endif\n";

/* The kernel: one output element per loop trip, as dw_sum and bn_eval_at
 * (conv.cu, nta_cuda.h) compute it; printf arguments: the name, then the
 * shapes, the element count, epsilon and the output's expression. */
static const char *dw_body =
    "extern \"C\" __global__ void %s(float *y, const float *__restrict__ x,\n"
    "        const float *__restrict__ w, const float *__restrict__ gamma,\n"
    "        const float *__restrict__ beta, const float *__restrict__ run_mean,\n"
    "        const float *__restrict__ run_var)\n"
    "{\n"
    "    enum { H = %d, W = %d, C = %d, K = %d, S = %d, PAD = %d, HO = %d, WO = %d, LDR = %d, LDC = %d };\n"
    "    const size_t total = %zuu;\n"
    "    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;\n"
    "         i += (size_t)gridDim.x * blockDim.x) {\n"
    "        int c = (int)(i %% C);\n"
    "        size_t pix = i / C;\n"
    "        int ox = (int)(pix %% WO), oy = (int)(pix / WO %% HO), n = (int)(pix / WO / HO);\n"
    "        float acc = 0.0f;\n"
    "        NTA_RTC_UNROLL\n"
    "        for (int ky = 0; ky < K; ky++) {\n"
    "            int iy = oy * S - PAD + ky;\n"
    "            if (iy < 0 || iy >= H) continue;\n"
    "            NTA_RTC_UNROLL\n"
    "            for (int kx = 0; kx < K; kx++) {\n"
    "                int ix = ox * S - PAD + kx;\n"
    "                if (ix < 0 || ix >= W) continue;\n"
    "                acc += x[(((size_t)n * H + iy) * W + ix) * C + c] *\n"
    "                       w[(size_t)ky * LDR + (size_t)kx * LDC + c];\n"
    "            }\n"
    "        }\n"
    "        float scale = gamma[c] / sqrtf(run_var[c] + %.9ef);\n"
    "        float v = (acc - run_mean[c]) * scale + beta[c];\n"
    "        y[i] = %s;\n"
    "    }\n"
    "}\n";

/* The host compiler's launcher on the emulator */
static const char *dw_launcher =
    "#if !defined(__CUDACC_RTC__) && !defined(__CUDACC__)\n"
    "extern \"C\" void %s_launch(float *y, const float *x, const float *w, const float *gamma,\n"
    "        const float *beta, const float *run_mean, const float *run_var)\n"
    "{\n"
    "    SIMT_LAUNCH(%s, %uu, %uu, 0, (cudaStream_t)0, y, x, w, gamma, beta, run_mean, run_var);\n"
    "}\n"
    "#endif\n";

/* Count n more characters written at *at (by snprintf into len bytes);
 * -1 once they no longer fit. */
static int put(size_t len, size_t *at, int n)
{
    if (n < 0 || (size_t)n >= len - *at) return -1;
    *at += (size_t)n;
    return 0;
}

int rtc_dw_source(const RtcDw *L, const char *name, char *buf, size_t len, unsigned *grid, unsigned *block)
{
    int Ho = conv_out(L->H, L->K, L->s), Wo = conv_out(L->W, L->K, L->s);
    size_t total = (size_t)L->N * Ho * Wo * L->C, blocks = (total + 255) / 256;
    *block = 256;        /* one element a thread, as the generic kernel (CUDA_THREADS, cuda_grid) */
    *grid = (unsigned)(blocks < 1 ? 1 : blocks > 1024 ? 1024 : blocks);
    size_t at = 0;
    if (!len) return -1;
    buf[0] = 0;
    if (put(len, &at,
            snprintf(buf + at, len - at,
                     "/* nta rtc: %s: depthwise %dx%d stride %d, batchnorm (running statistics)%s; batch %d, "
                     "%dx%dx%d -> %dx%dx%d; %u blocks of %u threads */\n",
                     name, L->K, L->K, L->s, L->relu6 ? " and ReLU6" : "", L->N, L->H, L->W, L->C, Ho, Wo, L->C,
                     *grid, *block)) ||
        put(len, &at, snprintf(buf + at, len - at, "%s", prelude)) ||
        put(len, &at,
            snprintf(buf + at, len - at, dw_body, name, L->H, L->W, L->C, L->K, L->s, L->K / 2, Ho, Wo, L->ldr,
                     L->ldc, total, (double)NTA_BN_EPS, L->relu6 ? "nta_rtc_relu6(v)" : "v")) ||
        put(len, &at, snprintf(buf + at, len - at, dw_launcher, name, name, *grid, *block)))
        return -1;
    return (int)at;
}

/* ------------------------------------------------------------------ NVRTC */

/* The part of NVRTC's C API nta calls (nvrtc.h is not needed to build) */
typedef int nvrtcResult;               /* 0: NVRTC_SUCCESS */
typedef struct _nvrtcProgram *nvrtcProgram;
static struct {
    int tried, version;
    char why[256];
    nvrtcResult (*version_of)(int *, int *);
    nvrtcResult (*num_archs)(int *);
    nvrtcResult (*archs)(int *);
    nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                          const char *const *);
    nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*cubin_size)(nvrtcProgram, size_t *);
    nvrtcResult (*cubin)(nvrtcProgram, char *);
    nvrtcResult (*log_size)(nvrtcProgram, size_t *);
    nvrtcResult (*log)(nvrtcProgram, char *);
    nvrtcResult (*destroy)(nvrtcProgram *);
    const char *(*error)(nvrtcResult);
} nv;

/* dlsym into *slot; 0, or -1 with the missing symbol in nv.why */
static int sym(void *lib, void *slot, const char *name)
{
    void *f = dlsym(lib, name);
    if (!f) snprintf(nv.why, sizeof nv.why, "NVRTC lacks %s", name);
    memcpy(slot, &f, sizeof f);
    return f ? 0 : -1;
}

static void nvrtc_open(void)
{
    nv.tried = 1;
    const char *given = getenv("NTA_NVRTC"), *names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2",
                                                   "libnvrtc.so"};
    void *lib = NULL;
    if (given && *given) lib = dlopen(given, RTLD_NOW | RTLD_LOCAL);
    for (int i = 0; !lib && !(given && *given) && i < 4; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nv.why, sizeof nv.why, "no NVRTC (%s): install the CUDA toolkit's libnvrtc or set NTA_NVRTC",
                 given && *given ? given : "libnvrtc.so.13, .12, .11.2");
        return;
    }
    if (sym(lib, &nv.version_of, "nvrtcVersion") || sym(lib, &nv.num_archs, "nvrtcGetNumSupportedArchs") ||
        sym(lib, &nv.archs, "nvrtcGetSupportedArchs") || sym(lib, &nv.create, "nvrtcCreateProgram") ||
        sym(lib, &nv.compile, "nvrtcCompileProgram") || sym(lib, &nv.cubin_size, "nvrtcGetCUBINSize") ||
        sym(lib, &nv.cubin, "nvrtcGetCUBIN") || sym(lib, &nv.log_size, "nvrtcGetProgramLogSize") ||
        sym(lib, &nv.log, "nvrtcGetProgramLog") || sym(lib, &nv.destroy, "nvrtcDestroyProgram") ||
        sym(lib, &nv.error, "nvrtcGetErrorString"))
        return;
    int major = 0, minor = 0;
    if (nv.version_of(&major, &minor)) {
        snprintf(nv.why, sizeof nv.why, "nvrtcVersion failed");
        return;
    }
    nv.version = 1000 * major + 10 * minor;
}

int rtc_nvrtc_version(char *why, size_t len)
{
    if (!nv.tried) nvrtc_open();
    if (!nv.version && why) snprintf(why, len, "%s", nv.why);
    return nv.version;
}

int rtc_nvrtc_supports(int sm)
{
    int n = 0, *archs, ok = 0;
    if (!rtc_nvrtc_version(NULL, 0) || nv.num_archs(&n) || n <= 0) return 0;
    archs = nta_malloc((size_t)n * sizeof *archs);
    if (!nv.archs(archs))
        for (int i = 0; i < n; i++) ok |= archs[i] == sm;
    free(archs);
    return ok;
}

int rtc_compile(const char *src, const char *name, int sm, void **cubin, size_t *size, char *log, size_t loglen)
{
    *cubin = NULL, *size = 0;
    if (!rtc_nvrtc_version(log, loglen)) return -1;
    char arch[64];
    snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d", sm);
    const char *opts[] = {arch, "--std=c++17"};
    nvrtcProgram prog;
    nvrtcResult r = nv.create(&prog, src, name, 0, NULL, NULL);
    if (r) {
        snprintf(log, loglen, "nvrtcCreateProgram: %s", nv.error(r));
        return -1;
    }
    r = nv.compile(prog, 2, opts);
    size_t n = 0;
    if (r) {
        char *text = NULL;
        if (!nv.log_size(prog, &n) && n) {
            text = nta_malloc(n);
            if (nv.log(prog, text)) text[0] = 0;
        }
        snprintf(log, loglen, "nvrtcCompileProgram (%s): %s\n%s", arch, nv.error(r), text ? text : "");
        free(text);
        nv.destroy(&prog);
        return -1;
    }
    if (nv.cubin_size(prog, &n) || !n) {
        snprintf(log, loglen, "NVRTC gave no cubin for %s", arch);
        nv.destroy(&prog);
        return -1;
    }
    *cubin = nta_malloc(n);
    if (nv.cubin(prog, *cubin)) {
        snprintf(log, loglen, "nvrtcGetCUBIN failed");
        free(*cubin), *cubin = NULL;
        nv.destroy(&prog);
        return -1;
    }
    *size = n;
    nv.destroy(&prog);
    return 0;
}

/* ------------------------------------------------------------ the cache */

int rtc_cache_dir(const char *given, char *dir, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (given && *given) snprintf(dir, len, "%s", given);
    else if (xdg && *xdg) snprintf(dir, len, "%s/nta", xdg);
    else if (home && *home) snprintf(dir, len, "%s/.cache/nta", home);
    else return -1;
    /* make each missing folder of the path */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0777);
            *p = '/';
        }
    mkdir(dir, 0777);
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* An entry: "nta rtc 1\n", the cubin's size and CRC-32 (8 + 4 bytes,
 * little-endian), the cubin. */
static const char cache_magic[] = "nta rtc 1\n";
enum { CACHE_HEAD = sizeof cache_magic - 1 + 12 };

/* 64-bit FNV-1a of n bytes, continuing h */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void le(unsigned char *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> 8 * i);
}

static uint64_t from_le(const unsigned char *in, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | in[i];
    return v;
}

/* The entry at path: 1 and a malloc'ed cubin, 0 if there is none, -1 if it
 * is damaged (wrong header, size or CRC) */
static int cache_read(const char *path, void **cubin, size_t *size)
{
    char err[256];
    size_t len;
    uint8_t *b = nta_read_file(path, (size_t)1 << 30, &len, err, sizeof err);
    if (!b) return access(path, F_OK) == 0 ? -1 : 0;
    int ok = len >= CACHE_HEAD && !memcmp(b, cache_magic, sizeof cache_magic - 1);
    size_t n = ok ? (size_t)from_le(b + sizeof cache_magic - 1, 8) : 0;
    ok = ok && n == len - CACHE_HEAD && n > 0 &&
         crc32(0, b + CACHE_HEAD, (uInt)n) == from_le(b + sizeof cache_magic - 1 + 8, 4);
    if (ok) {
        *cubin = nta_malloc(n);
        memcpy(*cubin, b + CACHE_HEAD, n);
        *size = n;
    }
    free(b);
    return ok ? 1 : -1;
}

/* Write the entry through a temporary file renamed over path; 0 or -1 */
static int cache_write(const char *path, const void *cubin, size_t size)
{
    char tmp[4200];
    unsigned char head[CACHE_HEAD];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    memcpy(head, cache_magic, sizeof cache_magic - 1);
    le(head + sizeof cache_magic - 1, size, 8);
    le(head + sizeof cache_magic - 1 + 8, crc32(0, cubin, (uInt)size), 4);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int bad = fwrite(head, 1, sizeof head, f) != sizeof head || fwrite(cubin, 1, size, f) != size;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rtc_compile_cached(const char *src, const char *name, int sm, const char *dir, void **cubin, size_t *size,
                       char *log, size_t loglen)
{
    int version = rtc_nvrtc_version(log, loglen);
    if (!version) return -1;
    if (!dir) return rtc_compile(src, name, sm, cubin, size, log, loglen) ? -1 : RTC_UNCACHED;
    uint64_t h = fnv(0xcbf29ce484222325ULL, cache_magic, sizeof cache_magic - 1);
    h = fnv(h, &version, sizeof version);
    h = fnv(h, &sm, sizeof sm);
    h = fnv(h, src, strlen(src));
    char path[4096];
    snprintf(path, sizeof path, "%s/%016llx-sm%d.cubin", dir, (unsigned long long)h, sm);
    int got = cache_read(path, cubin, size);
    if (got == 1) return RTC_HIT;
    if (got < 0) unlink(path);                            /* damaged: compiled again */
    if (rtc_compile(src, name, sm, cubin, size, log, loglen)) return -1;
    if (cache_write(path, *cubin, *size)) return RTC_UNCACHED;
    return got < 0 ? RTC_REBUILT : RTC_MISS;
}
