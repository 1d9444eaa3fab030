/* rtc.h: kernels specialised for the layers of a fixed architecture (rtc.c).
 *
 * Once search has fixed an architecture every shape is known, so a layer's
 * kernel can be written with each shape baked in as a constant: no division
 * by a run-time value, loops the compiler unrolls. rtc.c writes that CUDA
 * source, and compiles it with NVRTC, opened at run time (dlopen), so that
 * nta stays one file that runs where NVRTC is absent. The same source also
 * compiles with the host compiler against simt.h (the tests run it on the
 * emulator against the generic kernels).
 */
#ifndef NTA_RTC_H
#define NTA_RTC_H
#include <stddef.h>

/* Inference of a depthwise layer: y [N,Ho,Wo,C] = BN_eval(depthwise KxK,
 * stride s, pad K/2, of x [N,H,W,C]), then ReLU6 if relu6; tap (ky,kx) of
 * channel c is w[ky*ldr + kx*ldc + c] (the Backend's dw_bn_eval). */
typedef struct {
    int N, H, W, C, K, s, ldr, ldc, relu6;
} RtcDw;

/* The CUDA source of kernel `name` for layer L into buf (NUL-terminated):
 *   extern "C" __global__ void NAME(float *y, const float *x, const float *w,
 *       const float *gamma, const float *beta, const float *run_mean,
 *       const float *run_var)
 * launched with NAME_GRID blocks of NAME_BLOCK threads (both in the source's
 * comment, and returned through grid and block). Built by a host compiler
 * (against simt.h, where it also defines `extern "C" void NAME_launch(...)`
 * with the same parameters, which launches it on the emulator).
 * Returns the source's length, or -1 when buf is too small. */
int rtc_dw_source(const RtcDw *L, const char *name, char *buf, size_t len, unsigned *grid,
                  unsigned *block);

/* NVRTC, opened once (NTA_NVRTC names the library; else libnvrtc.so.13, .12,
 * then libnvrtc.so): its version as 1000 * major + 10 * minor, or 0 with the
 * reason in why. */
int rtc_nvrtc_version(char *why, size_t len);
/* 1 if NVRTC can compile for sm_<sm> (nvrtcGetSupportedArchs), else 0. */
int rtc_nvrtc_supports(int sm);
/* Compile src to a cubin for sm_<sm>: 0 and a malloc'ed cubin of *size bytes,
 * or -1 with NVRTC's log (or why it could not run) in log. */
int rtc_compile(const char *src, const char *name, int sm, void **cubin, size_t *size, char *log,
                size_t loglen);

/* The on-disk cache of compiled kernels: --cache DIR, else
 * $XDG_CACHE_HOME/nta, else $HOME/.cache/nta, into dir (made if missing);
 * 0, or -1 when there is no such place. */
int rtc_cache_dir(const char *given, char *dir, size_t len);
/* How rtc_compile_cached got its cubin */
enum { RTC_HIT, RTC_MISS, RTC_REBUILT, RTC_UNCACHED };
/* rtc_compile through the cache in dir (NULL: none): an entry is named by a
 * hash of the format version, NVRTC's version, the architecture and the
 * source, holds a header with the cubin's size and CRC-32, is checked on
 * read (a damaged entry is deleted and compiled again, RTC_REBUILT) and is
 * written to a temporary file then renamed; a directory that cannot be
 * written to still compiles, in memory (RTC_UNCACHED). Returns RTC_* or -1
 * (as rtc_compile). */
int rtc_compile_cached(const char *src, const char *name, int sm, const char *dir, void **cubin, size_t *size,
                       char *log, size_t loglen);
#endif
