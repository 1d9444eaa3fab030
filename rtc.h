/* rtc.h: kernels specialised for the layers of a fixed architecture (rtc.c).
 *
 * Once search has fixed an architecture every shape is known, so each layer's
 * kernel can be written with its shapes baked in as constants (no division
 * by a run-time value, loops the compiler unrolls) and its batchnorm folded
 * into the weights. rtc.c writes that CUDA source for a whole network,
 * compiles it with NVRTC, opened at run time (dlopen), so that nta stays one
 * file that runs where NVRTC is absent, caches the cubin on disk, and runs
 * it through a device table (rtc_cuda.cu) with a fallback to the generic
 * kernels. The same source also compiles with the host compiler against
 * simt.h (the tests run it on the emulator against the generic kernels).
 * The same folded layers are what nta export writes.
 */
#ifndef NTA_RTC_H
#define NTA_RTC_H
#include <stddef.h>

#include "nta.h"

/* ------------------------------------------------ specialised layers */

/* A layer of a fixed network for inference, batchnorm folded into its
 * weights and bias (rtc_fold). The kinds, with x [N,H,W,Ci] and
 * Ho = conv_out(H, K, s), Wo likewise:
 *   RTC_STEM     y [N,Ho,Wo,Co] = x * w [K,K,Ci,Co] + b [Co]       (full conv)
 *   RTC_PW       y [N,H,W,Co]   = x [P,Ci] w [Ci,Co] + b [Co]       (1x1 conv, P = N*H*W)
 *   RTC_DW       y [N,Ho,Wo,C]  = depthwise x * w [K,K,C] + b [C]  (Ci = Co = C)
 *   RTC_POOL_FC  y [N,Co]       = (mean over H*W of x) w [Ci,Co] + b [Co]
 * then ReLU6 if relu6, then (RTC_PW only) + r [N,H,W,Co] if residual. */
enum { RTC_STEM, RTC_PW, RTC_DW, RTC_POOL_FC };
typedef struct {
    int kind;
    int N, H, W, Ci, Co, K, s;
    int relu6, residual;
} RtcLayer;

/* The output's element count of layer L. */
size_t rtc_layer_out(const RtcLayer *L);
/* The folded weights' count (the layouts above); the bias has Co. */
size_t rtc_layer_weights(const RtcLayer *L);
/* The terms summed for one output element (rounding bounds): K*K*Ci, Ci,
 * K*K, and H*W + Ci for RTC_POOL_FC (the pool's sum, then the product's). */
int rtc_layer_terms(const RtcLayer *L);

/* Fold a batchnorm (running statistics gamma, beta, mean, var [Co]) into the
 * layer's weights: scale = gamma / sqrtf(var + NTA_BN_EPS) computed as the
 * generic kernels compute it, wf = w * scale (per output channel) in the
 * layout above, bf = beta - mean * scale; bmag [Co] = |beta| + |mean *
 * scale| (what the folding's rounding is relative to, for error bounds).
 * The source weights are read with pitches: RTC_PW and RTC_POOL_FC element
 * (k, n) at w[k*ld1 + n]; RTC_DW tap (ky, kx) of c at w[ky*ld1 + kx*ld2 + c];
 * RTC_STEM contiguous [K,K,Ci,Co]. RTC_POOL_FC has no batchnorm: gamma ==
 * NULL, and beta is its bias. */
void rtc_fold(const RtcLayer *L, float *wf, float *bf, float *bmag, const float *w, int ld1, int ld2,
              const float *gamma, const float *beta, const float *mean, const float *var);

/* The CUDA source of kernel `name` for layer L, appended at buf[*at..len)
 * (NUL-terminated; *at moves on):
 *   extern "C" __global__ void NAME(float *y, const float *x, const float *w,
 *                                   const float *b, const float *r)
 * (r: the residual, NULL unless L->residual) launched with *grid blocks of
 * *block threads, chosen from the shapes (both also in the source's
 * comment). Built by a host compiler (against simt.h) it also defines
 * `extern "C" void NAME_launch(y, x, w, b, r)`, which launches it on the
 * emulator. The common prelude is put once per source (with_prelude).
 * Returns 0, or -1 when buf is too small. */
int rtc_layer_source(const RtcLayer *L, const char *name, int with_prelude, char *buf, size_t len, size_t *at,
                     unsigned *grid, unsigned *block);

/* ------------------------------------------------ specialised networks */

#define RTC_MAX_LAYERS 128

/* A fixed network's inference as specialised layers: layer i reads the
 * output of layer i-1 (layer 0 the input [N,H,W,Cin]) and, when residual,
 * adds the output of layer res[i] (-1: the input). Host memory only. */
typedef struct {
    int n, B;                         /* layers; the batch they are built for */
    RtcLayer L[RTC_MAX_LAYERS];
    int res[RTC_MAX_LAYERS];          /* see above; -2: no residual */
    size_t woff[RTC_MAX_LAYERS], boff[RTC_MAX_LAYERS];   /* into param */
    size_t aoff[RTC_MAX_LAYERS];      /* layer i's output in an arena of nact floats */
    unsigned grid[RTC_MAX_LAYERS], block[RTC_MAX_LAYERS];
    size_t nparam, nact, nin;         /* nin: the input's floats */
    float *param;                     /* [nparam] folded weights and biases */
    float *bmag;                      /* [nparam] at the biases' offsets: rtc_fold's bmag */
    char *src;                        /* the whole CUDA source, kernels nta_l0, nta_l1, ... */
    int part[RTC_MAX_LAYERS];         /* rtc_net_build's: the layer's part of the network as
                                         net_forward_timed counts them (0 stem, 1+b block b,
                                         nblocks+1 head, pool and linear); 0 when read from a file */
    int norm_set;                     /* the input normalisation the model carries (net_norm) */
    float norm_mean[4], norm_std[4];
} RtcNet;

/* The active architecture of net (its running statistics) at batch B, every
 * batchnorm folded; NULL and why in err (a projection head, too many layers). */
RtcNet *rtc_net_build(const Net *net, int B, char *err, size_t len);
void rtc_net_free(RtcNet *r);
/* Layer L on the CPU (host memory, the arguments of the kernels): the same
 * terms in the same order as the generated kernel. */
void rtc_layer_cpu(const RtcLayer *L, float *y, const float *x, const float *w, const float *b, const float *r);
/* The whole network on the CPU: act [r->nact] receives every layer's output;
 * returns the last one's (the logits [B,L]). */
const float *rtc_net_forward_cpu(const RtcNet *r, float *act, const float *x);

/* Exported models (nta export): a fixed network for inference, batchnorm
 * folded, in a file that needs no supernet code to read:
 *   "nta inference 1\n"                  the magic and format version
 *   "input HxWxC\n"
 *   "norm M0,M1,M2,M3 S0,S1,S2,S3\n"      the input normalisation, or "norm none\n"
 *   "layers N\n", then per layer "KIND Ci Co K s H W relu6 residual res\n"
 *       KIND stem, pw, dw or pool_fc (rtc.h's RTC_*); H, W the input's;
 *       res: the layer whose output a residual adds (-1: the input), else -2
 *   "params COUNT\n", then COUNT little-endian float32: per layer its folded
 *       weights (rtc_fold's layout), then its bias [Co]
 *   the CRC-32 (zlib) of every byte before it, 4 bytes little-endian.
 * Written to a temporary name and renamed. Write returns 0, or -1 and why. */
int rtc_export_write(const RtcNet *r, const char *path, char *err, size_t len);
/* Read an exported model for batch B: NULL and a message naming the file
 * when it is not one, damaged, or its layers do not fit together. */
RtcNet *rtc_export_read(const char *path, int B, char *err, size_t len);
/* 1 if path starts with the exported models' magic */
int rtc_export_is(const char *path);

/* NVRTC, opened once (NTA_NVRTC names the library; else libnvrtc.so.13, .12,
 * then libnvrtc.so): its version as 1000 * major + 10 * minor, or 0 with the
 * reason in why. */
int rtc_nvrtc_version(char *why, size_t len);
/* 1 if NVRTC can compile for sm_<sm> (nvrtcGetSupportedArchs), else 0. */
int rtc_nvrtc_supports(int sm);
/* Compile src to a cubin for sm_<sm>, or with sm = RTC_PTX(s) to PTX for
 * compute_<s> (text with its closing NUL; the driver compiles it for the
 * device): 0 and a malloc'ed image of *size bytes, or -1 with NVRTC's log
 * (or why it could not run) in log. */
#define RTC_PTX(sm) (-(sm))
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
/* ------------------------------------------------ running them */

/* What to compile for a device of architecture device_sm (10 * major +
 * minor): its own sm where NVRTC knows it, else the newest NVRTC knows of
 * the same major below it (a cubin runs on later minors of its major); for
 * a device newer than every architecture NVRTC knows, RTC_PTX(the newest)
 * (the driver compiles PTX for newer devices); 0 and why when the device
 * is older than NVRTC supports. */
int rtc_target(int device_sm, char *why, size_t len);

/* A device that runs specialised kernels: the CUDA runtime's (rtc_cuda.cu;
 * on the emulator it has no architecture, so nta falls back), or a test's. */
typedef struct {
    const char *name;
    /* The device's architecture as 10 * major + minor (90: sm_90), or 0 and why */
    int (*sm)(char *why, size_t len);
    /* Load a cubin, or PTX text (rtc_target), of size bytes (compiled from src):
     * a module, or NULL and why */
    void *(*load)(const void *cubin, size_t size, const char *src, char *why, size_t len);
    /* The kernel `name` of a module: a handle, or NULL and why */
    void *(*kernel)(void *module, const char *name, char *why, size_t len);
    /* Queue a kernel of the signature rtc_layer_source writes on grid x block
     * threads; 0, or -1 and why */
    int (*launch)(void *kernel, unsigned grid, unsigned block, float *y, const float *x, const float *w,
                  const float *b, const float *r, char *why, size_t len);
    void (*unload)(void *module);
} RtcDevice;
/* In builds with the CUDA backend (nta, nta-emu, the tests) */
extern const RtcDevice rtc_cuda_device;

/* NTA_RTC: unset or "on" (use specialised kernels where they can run, else
 * one line and the generic ones), "off" (never), "strict" (any failure to
 * compile or load them is fatal). Returns RTC_* or -1 with a message. */
enum { RTC_OFF, RTC_ON, RTC_STRICT };
int rtc_mode(char *err, size_t len);

/* A specialised network loaded on a device */
typedef struct RtcRun RtcRun;
/* Compile rn's source with NVRTC for dev's architecture (the highest that
 * NVRTC supports of the same major version, not above the device's),
 * through the cache in cache_dir (NULL: none), load it, and upload the
 * folded weights with be. NULL and why (one line) on any failure; a
 * compile error's source and NVRTC's log are saved as NAME.cu and NAME.log
 * in cache_dir (named in why). *how (may be NULL) gets RTC_HIT, RTC_MISS,
 * RTC_REBUILT or RTC_UNCACHED. */
RtcRun *rtc_run_open(const RtcNet *rn, const RtcDevice *dev, const Backend *be, const char *cache_dir, int *how,
                     char *why, size_t len);
/* logits [B,Co of the last layer] from x [B,H,W,C] (both be memory), the
 * layers queued in order on the device; 0, or -1 and why */
int rtc_run_forward(RtcRun *run, float *logits, const float *x, char *why, size_t len);
/* The same, each layer waited for and timed: sec [n] its seconds */
int rtc_run_forward_timed(RtcRun *run, float *logits, const float *x, double *sec, char *why, size_t len);
void rtc_run_close(RtcRun *run);
const RtcNet *rtc_run_net(const RtcRun *run);   /* the network it runs */
/* The policy of the commands: under mode (RTC_*), a runner for net's active
 * architecture at batch B on dev (NULL: this build has no device for
 * them), with cache_dir as --cache (NULL or "": the default, rtc_cache_dir)
 * or NULL: off, or after a failure in mode RTC_ON, with one line "nta:
 * specialised kernels not used: WHY; running the generic kernels" on note;
 * in mode RTC_STRICT a failure is fatal (nta_die, exit 1). */
RtcRun *rtc_prepare(const Net *net, int B, const RtcDevice *dev, int mode, const char *cache_dir, FILE *note);
/* The same for a network already specialised (an exported model, read for
 * its batch), on backend be; "running INSTEAD" ends the fallback's line.
 * rn stays the caller's and must outlive the runner. */
RtcRun *rtc_prepare_built(const RtcNet *rn, const Backend *be, const RtcDevice *dev, int mode, const char *cache_dir,
                          const char *instead, FILE *note);
#endif
