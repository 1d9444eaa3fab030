/* bench/latency.c: how well a per-layer latency table (latency.c) predicts
 * the measured whole-network latency, on the CPU backend.
 *   usage: bench/latency BATCH [THREADS [N [SEED]]]
 * Builds the default 28x28x1 supernet's shape (net_supernet, space_default(),
 * stage depth up to 4; no file needed: the time does not depend on weights),
 * measures its latency table at BATCH afresh (latency_measure, nothing read
 * from or written to the cache), then N (20) random architectures drawn with
 * SEED (1): each one's predicted latency (latency_predict) and its measured
 * latency (latency_time: the least of latency_reps(BATCH) forward passes of
 * its standalone network). Prints a markdown table, one row per architecture,
 * and the median and largest absolute error in percent of the measured. */
#include "../nta.h"

#include <math.h>
#include <stdlib.h>

static int by_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    if (argc < 2) nta_die("usage: bench/latency BATCH [THREADS [N [SEED]]]");
    int B = atoi(argv[1]), threads = argc > 2 ? atoi(argv[2]) : 2, n = argc > 3 ? atoi(argv[3]) : 20;
    int seed = argc > 4 ? atoi(argv[4]) : 1;
    if (B < 1 || threads < 1 || n < 1 || n > 1000) nta_die("need BATCH >= 1, THREADS >= 1, 1 <= N <= 1000");
    cpu_set_threads(threads);
    Space sp = space_default();
    NetDesc d = net_supernet(28, 28, 1, 10, &sp, 4);
    static LatencyTable t;
    double t0 = nta_now();
    latency_measure(&t, &d, &cpu_backend, threads, B, latency_reps(B));
    printf("latency table at batch %d, %d threads, measured in %.1f s (stem %.4f ms, head %.4f ms, overhead %.4f ms)\n\n",
           B, threads, nta_now() - t0, t.stem_ms, t.head_ms, t.overhead_ms);
    printf("| architecture | MFLOPs | predicted ms | measured ms | error %% |\n|---|---:|---:|---:|---:|\n");
    double *err = nta_malloc((size_t)n * sizeof *err);
    Rng r;
    rng_seed(&r, (uint64_t)seed);
    for (int i = 0; i < n; i++) {
        Arch a = arch_random(&d, &r);
        char text[512];
        arch_format(&d, &a, text, sizeof text);
        double p = latency_predict(&t, &a), m = latency_time(&t, &a, &cpu_backend, latency_reps(B));
        err[i] = 100 * (p - m) / m;
        printf("| `%s` | %.2f | %.4f | %.4f | %+.1f |\n", text, search_mflops(&d, &a), p, m, err[i]);
        err[i] = fabs(err[i]);
    }
    qsort(err, (size_t)n, sizeof *err, by_double);
    double med = n % 2 ? err[n / 2] : (err[n / 2 - 1] + err[n / 2]) / 2;
    printf("\nbatch %d, %d threads: median absolute error %.1f%%, largest %.1f%% over %d architectures\n", B, threads,
           med, err[n - 1], n);
    free(err);
    return 0;
}
