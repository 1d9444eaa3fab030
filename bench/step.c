/* bench/step.c: images per second of one training step and of inference of
 * the reference 28x28 network on the CPU backend, on random data.
 *   usage: bench/step BATCH [THREADS [SECONDS]]
 * Prints: "nta batch B threads T: train X img/s, infer Y img/s". */
#include "../nta.h"

#include <stdlib.h>

/* Run fn until `secs` have passed (after one warm-up call); return calls/s. */
static double rate(Net *net, int B, int train, double secs)
{
    int n = 0;
    double t0 = 0;
    for (;;) {
        if (train) net_zero_grad(net);
        net_forward(net, B, train);
        if (train) {
            net_loss(net, B, NULL);
            net_backward(net, B);
            net_update(net, 0.01f, 0.9f, 5e-5f);
        }
        if (n++ == 0) t0 = nta_now();
        else if (nta_now() - t0 > secs) return (n - 1) / (nta_now() - t0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BATCH [THREADS [SECONDS]]\n", argv[0]);
        return 2;
    }
    int B = atoi(argv[1]), T = argc > 2 ? atoi(argv[2]) : 2;
    double secs = argc > 3 ? atof(argv[3]) : 3;
    if (B < 2 || T < 1) nta_die("bad batch %d or threads %d", B, T);
    cpu_set_threads(T);
    NetDesc d = net_reference(28, 28, 1, 10);
    Net *net = net_create(&d, &cpu_backend, B, 1, 0);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * 28 * 28; i++) net->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)rng_below(&r, 10);
    double tr = rate(net, B, 1, secs) * B, inf = rate(net, B, 0, secs) * B;
    printf("nta batch %d threads %d: train %.0f img/s, infer %.0f img/s\n", B, T, tr, inf);
    net_free(net);
    return 0;
}
