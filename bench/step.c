/* bench/step.c: images per second of one training step and of inference of
 * a 28x28x1 network on the CPU backend, on random data.
 *   usage: bench/step BATCH [THREADS [SECONDS [NET]]]
 *          bench/step --desc [NET]
 * NET: reference (net_reference, the default), largest or smallest (the
 * largest / smallest architecture of the default supernet, net_supernet with
 * space_default() and stage depth up to 4, as a standalone network).
 * SECONDS (3 by default) is cut into 5 timing windows (BENCH_WINDOWS in the
 * environment to change it; 1 gives the mean over SECONDS); each figure is the
 * best window's. Also prints how many threads the CPU backend's governor ran
 * the parts on at the end (fewer than THREADS while another process was
 * keeping ours waiting for a core).
 * Prints: "nta batch B threads T net NET: train X img/s, infer Y img/s";
 * with --desc, the network's description (net_desc_format), which
 * bench/torch_step.py and bench/torch_ops.py build the same network from. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

/* The named 28x28x1, 10-class network; dies on an unknown name. */
static NetDesc named_net(const char *name)
{
    if (!strcmp(name, "reference")) return net_reference(28, 28, 1, 10);
    int big = !strcmp(name, "largest");
    if (!big && strcmp(name, "smallest"))
        nta_die("unknown network '%s' (reference, largest or smallest)", name);
    Space sp = space_default();
    NetDesc super = net_supernet(28, 28, 1, 10, &sp, 4);
    Arch a = big ? arch_largest(&super) : arch_smallest(&super);
    return arch_standalone(&super, &a);
}

/* Steps per second: one warm-up step, then WINDOWS timing windows of secs /
 * WINDOWS each (every window runs whole steps until its time has passed);
 * returns the best window's rate. bench/torch_step.py times PyTorch by the
 * same rule, so a busy moment on the machine costs either side a window, not
 * the measurement. */
static double rate(Net *net, int B, int train, double secs)
{
    const char *env = getenv("BENCH_WINDOWS");
    int WINDOWS = env && atoi(env) > 0 ? atoi(env) : 5;
    double best = 0;
    bench_step(net, B, train);
    for (int w = 0; w < WINDOWS; w++) {
        int n = 0;
        double t0 = nta_now(), t;
        do {
            bench_step(net, B, train);
            n++;
        } while ((t = nta_now() - t0) < secs / WINDOWS);
        if (n / t > best) best = n / t;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--desc")) {
        NetDesc d = named_net(argc > 2 ? argv[2] : "reference");
        char buf[1024];
        net_desc_format(&d, buf, sizeof buf);
        printf("%s\n", buf);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s BATCH [THREADS [SECONDS [NET]]]\n"
                        "       %s --desc [NET]\n"
                        "NET: reference (default), largest or smallest\n", argv[0], argv[0]);
        return 2;
    }
    int B = atoi(argv[1]), T = argc > 2 ? atoi(argv[2]) : 2;
    double secs = argc > 3 ? atof(argv[3]) : 3;
    const char *name = argc > 4 ? argv[4] : "reference";
    if (B < 2 || T < 1) nta_die("bad batch %d or threads %d", B, T);
    NetDesc d = named_net(name);
    cpu_set_threads(T);
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 1, 0);
    Rng r;
    rng_seed(&r, 1);
    size_t nx = (size_t)B * d.in_h * d.in_w * d.in_c;        /* x_in [B,28,28,1] */
    for (size_t i = 0; i < nx; i++) net->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)rng_below(&r, (uint32_t)d.classes);
    double tr = rate(net, B, 1, secs) * B, inf = rate(net, B, 0, secs) * B;
    printf("nta batch %d threads %d net %s: train %.0f img/s, infer %.0f img/s (on %d threads at the end)\n",
           B, T, name, tr, inf, cpu_threads());
    net_free(net);
    return 0;
}
