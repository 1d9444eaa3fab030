/* rtc_cuda.cu: the device that runs specialised kernels (rtc.h's RtcDevice)
 * through the CUDA runtime: the device's architecture, cubins loaded with
 * cudaLibraryLoadData (CUDA 12.0+), kernels found with cudaLibraryGetKernel
 * and launched with cudaLaunchKernel on the backend's one stream, so they
 * run in order with the generic ops around them (uploads, downloads).
 * Every failure returns with CUDA's error text; nothing here exits (rtc.c
 * decides whether to fall back).
 * Built by g++ for the emulator (nta-emu, the tests) the device has no
 * architecture: the emulator cannot run a cubin, so nta falls back there.
 */
#include "nta_cuda.h"

extern "C" {
#include "rtc.h"
}

#if defined(__CUDACC__)

/* why = what failed and CUDA's text; returns -1 */
static int fail(cudaError_t e, const char *what, char *why, size_t len)
{
    cudaGetLastError();   /* not left as the last error for the generic ops' checks */
    snprintf(why, len, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

static int device_sm(char *why, size_t len)
{
    int dev = 0, major = 0, minor = 0, runtime = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e != cudaSuccess) return fail(e, "the device's architecture", why, len), 0;
    cudaRuntimeGetVersion(&runtime);
    if (runtime < 12000) {
        snprintf(why, len, "loading cubins needs the CUDA 12 runtime (this nta has %d.%d)", runtime / 1000,
                 runtime % 1000 / 10);
        return 0;
    }
    return 10 * major + minor;
}

static void *device_load(const void *cubin, size_t size, const char *src, char *why, size_t len)
{
    (void)size, (void)src;
    cudaLibrary_t lib;
    cudaError_t e = cudaLibraryLoadData(&lib, cubin, NULL, NULL, 0, NULL, NULL, 0);
    if (e != cudaSuccess) return fail(e, "cudaLibraryLoadData", why, len), (void *)NULL;
    return (void *)lib;
}

static void *device_kernel(void *module, const char *name, char *why, size_t len)
{
    cudaKernel_t k;
    cudaError_t e = cudaLibraryGetKernel(&k, (cudaLibrary_t)module, name);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "cudaLibraryGetKernel(%s)", name);
        return fail(e, what, why, len), (void *)NULL;
    }
    return (void *)k;
}

static int device_launch(void *kernel, unsigned grid, unsigned block, float *y, const float *x, const float *w,
                         const float *b, const float *r, char *why, size_t len)
{
    void *args[] = {&y, &x, &w, &b, &r};
    cudaError_t e = cudaLaunchKernel((const void *)kernel, dim3(grid), dim3(block), args, 0, cuda_stream());
    return e == cudaSuccess ? 0 : fail(e, "cudaLaunchKernel", why, len);
}

static void device_unload(void *module) { cudaLibraryUnload((cudaLibrary_t)module); }

#else /* the emulator */

static int device_sm(char *why, size_t len)
{
    snprintf(why, len, "the CUDA backend is the emulator, which runs no cubins");
    return 0;
}
static void *device_load(const void *, size_t, const char *, char *why, size_t len)
{
    device_sm(why, len);
    return NULL;
}
static void *device_kernel(void *, const char *, char *why, size_t len) { return device_load(NULL, 0, NULL, why, len); }
static int device_launch(void *, unsigned, unsigned, float *, const float *, const float *, const float *,
                         const float *, char *why, size_t len)
{
    return device_sm(why, len) - 1;
}
static void device_unload(void *) {}

#endif

extern "C" const RtcDevice rtc_cuda_device = {
    .name = "cuda",
    .sm = device_sm,
    .load = device_load,
    .kernel = device_kernel,
    .launch = device_launch,
    .unload = device_unload,
};
