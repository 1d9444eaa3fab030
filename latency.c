/* latency.c: per-layer latency tables, so that a search can honour a budget
 * in milliseconds on the machine where it runs (as Once-for-All does for its
 * target devices, with a table per device).
 *
 * A table holds, for one supernet shape, backend, thread count and batch,
 * the inference time of the stem, of the head (1x1 conv, pool, fc) and of
 * every block position at every choice of kernel and expansion. A block's
 * shapes depend on its position only (its input and output channels,
 * stride and size do not change with the other blocks' choices), so an
 * architecture's latency is predicted as the sum of its active blocks'
 * entries, the stem's and the head's (latency_predict).
 *
 * Measuring (latency_measure): C calibration networks (C = kernel choices x
 * expansion choices), every stage at full depth, the blocks' choices mixed
 * so that over the C networks every position takes every choice once
 * (calibration_arch). Each runs `reps` timed forward passes
 * (net_forward_timed) after two untimed ones; an entry is the least time of
 * its layer over the passes. The stem and head are the median over the C
 * networks of their least times; the overhead (what a whole pass costs
 * beyond the sum of its layers) is the least over every timed pass of its
 * wall time minus the sum of its layers' times. Measured whole-network
 * latency (latency_time): the least of `reps` net_forward calls (after two
 * untimed ones) of the architecture's standalone network. The least, not
 * the median: on a machine shared with other work the least pass is the one
 * it disturbed least, and the figure that repeats (bench/latency.sh). Weights
 * are random (the time does not depend on them); inputs are random normal.
 *
 * The cache: one text file per key in nta's cache folder (rtc_cache_dir:
 * $XDG_CACHE_HOME/nta, else ~/.cache/nta; compiled kernels live there too),
 * named latency-HASH.txt (HASH: FNV-1a of the key), written to a temporary
 * name and renamed:
 *
 *   # nta latency table 2
 *   key host=AMD EPYC (family 25 model 1 stepping 1, 2 cpus) simd=... backend=cpu device=- threads=2 batch=1 net=...
 *   stem MS
 *   head MS
 *   overhead MS
 *   block I kK eE MS          (one line per block position and choice)
 *
 * A file whose key differs from the run's (another machine, backend, thread
 * count, batch or supernet shape), or that lacks an entry, is measured again
 * and replaced. Times are milliseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"
#include "rtc.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LATENCY_FORMAT "# nta latency table 2\n"

/* ---------------------------------------------------------------- the key */

/* "AMD EPYC (family 25 model 1 stepping 1, 2 cpus)" from /proc/cpuinfo. */
static void host_name(char *buf, size_t len)
{
    char line[512], model[256] = "unknown CPU", family[32] = "?", mod[32] = "?", step[32] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1 + (colon[1] == ' ');
        v[strcspn(v, "\n")] = 0;
        if (!strncmp(line, "model name", 10)) snprintf(model, sizeof model, "%s", v);
        else if (!strncmp(line, "cpu family", 10)) snprintf(family, sizeof family, "%s", v);
        else if (!strncmp(line, "model\t", 6)) snprintf(mod, sizeof mod, "%s", v);
        else if (!strncmp(line, "stepping", 8)) snprintf(step, sizeof step, "%s", v);
        else if (!strcmp(line, "\n")) break;     /* the first processor is enough */
    }
    if (f) fclose(f);
    snprintf(buf, len, "%s (family %s model %s stepping %s, %ld cpus)", model, family, mod, step,
             sysconf(_SC_NPROCESSORS_ONLN));
}

/* cuda_available is defined only in builds with the CUDA backend (a weak
 * reference: NULL in the others, where no backend but the CPU exists). */
extern int cuda_available(char *why, size_t len) __attribute__((weak));

/* The device of backend be: the GPU (name, architecture, SMs, memory) for
 * the CUDA backend, "-" for the CPU, which the host names already. */
static void device_name(char *buf, size_t len, const Backend *be)
{
    snprintf(buf, len, "-");
    if (be != &cpu_backend && cuda_available && !cuda_available(buf, len)) snprintf(buf, len, "unavailable");
}

void latency_key(char *buf, size_t len, const NetDesc *d, const Backend *be, int threads, int batch)
{
    char host[400], device[256], net[1024];
    host_name(host, sizeof host);
    device_name(device, sizeof device, be);
    net_desc_format(d, net, sizeof net);
    snprintf(buf, len, "host=%s simd=%s backend=%s device=%s threads=%d batch=%d net=%s", host, cpu_simd(), be->name,
             device, threads, batch, net);
}

/* ------------------------------------------------------------ measuring */

int latency_reps(int batch) { return batch <= 8 ? 51 : 31; }

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The least of v[n]: the pass least disturbed by other work on the machine. */
static double least(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The standalone network of architecture a of d for batch B, random weights,
 * random normal inputs already uploaded. glibc's mmap threshold is pinned at
 * its starting 128 KiB first: it otherwise rises after the first large
 * buffers are freed, later arenas come from the heap instead of fresh
 * pages, and the same network then ran about 15% faster at batch 64 on one
 * thread (bench/latency.sh, run twice with MALLOC_MMAP_THRESHOLD_ unset and
 * set); pinned, every timing network's arenas are placed alike. */
static Net *timing_net(const NetDesc *d, const Arch *a, const Backend *be, int B)
{
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    NetDesc sd = arch_standalone(d, a);
    Net *net = net_create(&sd, LOSS_XENT, be, B, 7, 0);
    size_t n = (size_t)B * d->in_h * d->in_w * d->in_c;
    float *x = nta_malloc(n * sizeof *x);
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
    be->upload(net->x_in, x, n * sizeof *x);
    free(x);
    return net;
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* The least of reps forward passes (after two untimed ones) of architecture
 * a's standalone network at batch B, in ms. */
static double measure_whole(const NetDesc *d, const Arch *a, const Backend *be, int B, int reps)
{
    Net *net = timing_net(d, a, be, B);
    double *ms = nta_malloc((size_t)reps * sizeof *ms);
    float sync;
    for (int r = -2; r < reps; r++) {
        double t0 = nta_now();
        net_forward(net, B, 0);
        be->download(&sync, net->logits, sizeof sync);   /* waits for a GPU */
        if (r >= 0) ms[r] = 1e3 * (nta_now() - t0);
    }
    double m = least(ms, reps);
    free(ms);
    net_free(net);
    return m;
}

/* Calibration network r of C (C = kernels x expansions choices): every stage
 * at its full depth, block i at choice (r + step * i) mod C, choice c being
 * kernel c / ne, expansion c % ne. step is coprime with C and moves both the
 * kernel and the expansion, so over the C networks every position takes
 * every choice once, beside neighbours of other shapes, as in the
 * architectures a search draws (a network of one repeated block ran
 * measurably faster per block than a mixed one). */
static Arch calibration_arch(const NetDesc *d, int r, int *choice)
{
    int ne = d->space.ne, C = d->space.nk * ne, step = ne + 1;
    while (C > 1 && gcd(step, C) != 1) step++;
    Arch a = arch_largest(d);
    for (int i = 0; i < d->nblocks; i++) {
        choice[i] = (r + step * i) % C;
        a.k[i] = d->space.ks[choice[i] / ne], a.e[i] = d->space.es[choice[i] % ne];
    }
    return a;
}

void latency_measure(LatencyTable *t, const NetDesc *d, const Backend *be, int threads, int batch, int reps)
{
    int nl = d->nblocks + 2, ne = d->space.ne, C = d->space.nk * ne, choice[NET_MAX_BLOCKS];
    double *sec = nta_malloc((size_t)nl * sizeof *sec), *runs = nta_malloc((size_t)nl * reps * sizeof *runs);
    double *stem = nta_malloc((size_t)C * sizeof *stem), *head = nta_malloc((size_t)C * sizeof *head);
    double *over = nta_malloc((size_t)C * reps * sizeof *over);      /* [C, reps] */
    memset(t, 0, sizeof *t);
    t->desc = *d, t->batch = batch;
    latency_key(t->key, sizeof t->key, d, be, threads, batch);
    for (int r = 0; r < C; r++) {
        Arch a = calibration_arch(d, r, choice);
        Net *net = timing_net(d, &a, be, batch);
        for (int w = 0; w < 2; w++) net_forward_timed(net, batch, sec);   /* warm-up */
        for (int k = 0; k < reps; k++) {
            double t0 = nta_now(), sum = 0;
            net_forward_timed(net, batch, sec);
            double wall = 1e3 * (nta_now() - t0);
            for (int l = 0; l < nl; l++) runs[(size_t)l * reps + k] = 1e3 * sec[l], sum += 1e3 * sec[l];
            over[(size_t)r * reps + k] = wall - sum;
        }
        stem[r] = least(runs, reps), head[r] = least(runs + (size_t)(nl - 1) * reps, reps);
        for (int i = 0; i < d->nblocks; i++)
            t->block_ms[i][choice[i] / ne][choice[i] % ne] = least(runs + (size_t)(1 + i) * reps, reps);
        net_free(net);
    }
    /* the stem and head do not change with the blocks: the median of their
     * least times. What a pass costs beyond its layers (starting and joining
     * the threads, a piece left to one thread at the end) is measured in the
     * same passes as the layers: the least over every pass of every network,
     * as the layers' entries, the pass other work disturbed least (a pass
     * that lost a thread to another process for a while costs more than its
     * layers' times over the threads) */
    t->stem_ms = median(stem, C), t->head_ms = median(head, C);
    t->overhead_ms = least(over, C * reps);
    free(sec), free(runs), free(stem), free(head), free(over);
}

/* The index of v in list[n], -1 if absent. */
static int index_of(int v, const int *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v) return i;
    return -1;
}

double latency_predict(const LatencyTable *t, const Arch *a)
{
    const NetDesc *d = &t->desc;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    double ms = t->stem_ms + t->head_ms + t->overhead_ms;
    for (int s = 0; s < ns; s++)
        for (int i = first[s]; i < first[s] + a->depth[s]; i++) {
            int ki = index_of(a->k[i], d->space.ks, d->space.nk), ei = index_of(a->e[i], d->space.es, d->space.ne);
            if (ki < 0 || ei < 0) nta_die("latency_predict: block %d's k%de%d is not in the supernet's choices", i,
                                          a->k[i], a->e[i]);
            ms += t->block_ms[i][ki][ei];
        }
    return ms;
}

Arch latency_fastest(const LatencyTable *t)
{
    const NetDesc *d = &t->desc;
    Arch a = arch_smallest(d);
    for (int i = 0; i < d->nblocks; i++) {
        int bk = 0, be = 0;
        for (int ki = 0; ki < d->space.nk; ki++)
            for (int ei = 0; ei < d->space.ne; ei++)
                if (t->block_ms[i][ki][ei] < t->block_ms[i][bk][be]) bk = ki, be = ei;
        a.k[i] = d->space.ks[bk], a.e[i] = d->space.es[be];
    }
    return a;
}

double latency_time(const LatencyTable *t, const Arch *a, const Backend *be, int reps)
{
    return measure_whole(&t->desc, a, be, t->batch, reps);
}

/* ------------------------------------------------------------- the cache */

int latency_cache_path(char *buf, size_t len, const char *key)
{
    char dir[4096];
    uint64_t h = 1469598103934665603ull;             /* FNV-1a */
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    if (rtc_cache_dir(NULL, dir, sizeof dir)) {      /* the folder of nta's caches, made if missing */
        snprintf(buf, len, "(no cache folder: neither XDG_CACHE_HOME nor HOME can be used)");
        return -1;
    }
    snprintf(buf, len, "%s/latency-%016llx.txt", dir, (unsigned long long)h);
    return 0;
}

int latency_save(const LatencyTable *t, const char *path, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (ok) {
        const NetDesc *d = &t->desc;
        fprintf(f, LATENCY_FORMAT "key %s\nstem %.6f\nhead %.6f\noverhead %.6f\n", t->key, t->stem_ms, t->head_ms,
                t->overhead_ms);
        for (int i = 0; i < d->nblocks; i++)
            for (int ki = 0; ki < d->space.nk; ki++)
                for (int ei = 0; ei < d->space.ne; ei++)
                    fprintf(f, "block %d k%d e%d %.6f\n", i, d->space.ks[ki], d->space.es[ei], t->block_ms[i][ki][ei]);
        ok = fflush(f) == 0 && !ferror(f);
    }
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, path)) {
        snprintf(err, errlen, "cannot write the latency table '%s': %s", path, strerror(errno));
        if (f) remove(tmp);
        return -1;
    }
    return 0;
}

int latency_load(LatencyTable *t, const char *path, const NetDesc *d, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int i, k, e, got = 0, ok = fgets(line, sizeof line, f) && !strcmp(line, LATENCY_FORMAT) &&
                                fgets(line, sizeof line, f) && !strncmp(line, "key ", 4) &&
                                strlen(line) == strlen(key) + 5 && !strncmp(line + 4, key, strlen(key));
    double ms;
    memset(t, 0, sizeof *t);
    t->desc = *d;
    snprintf(t->key, sizeof t->key, "%s", key);
    int stem = 0, head = 0, over = 0;
    char seen[NET_MAX_BLOCKS][4][4] = {{{0}}};    /* entries read */
    while (ok && fgets(line, sizeof line, f)) {
        int ki, ei;
        if (sscanf(line, "stem %lf", &ms) == 1 && ms >= 0) t->stem_ms = ms, stem = 1;
        else if (sscanf(line, "head %lf", &ms) == 1 && ms >= 0) t->head_ms = ms, head = 1;
        else if (sscanf(line, "overhead %lf", &ms) == 1) t->overhead_ms = ms, over = 1;
        else if (sscanf(line, "block %d k%d e%d %lf", &i, &k, &e, &ms) == 4 && i >= 0 && i < d->nblocks &&
                 (ki = index_of(k, d->space.ks, d->space.nk)) >= 0 &&
                 (ei = index_of(e, d->space.es, d->space.ne)) >= 0 && ms >= 0) {
            got += !seen[i][ki][ei];
            seen[i][ki][ei] = 1;
            t->block_ms[i][ki][ei] = ms;
        } else ok = 0;
    }
    fclose(f);
    return ok && stem && head && over && got == d->nblocks * d->space.nk * d->space.ne;
}

const char *latency_table(LatencyTable *t, const NetDesc *d, const Backend *be, int threads, int batch, int reps,
                          int fresh, char *path, size_t plen)
{
    char key[sizeof t->key], err[512];
    latency_key(key, sizeof key, d, be, threads, batch);
    t->batch = batch;
    int cache = latency_cache_path(path, plen, key) == 0;
    if (cache && !fresh && latency_load(t, path, d, key)) {
        t->batch = batch;
        return "cached";
    }
    latency_measure(t, d, be, threads, batch, reps);
    if (!cache) return "measured, not cached";
    if (latency_save(t, path, err, sizeof err)) {
        printf("latency: %s; the table is not cached\n", err);
        return "measured, not cached";
    }
    return "measured";
}
