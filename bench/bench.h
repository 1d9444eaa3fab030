/* bench/bench.h: what bench/step.c and bench/ops.c both time. */
#ifndef NTA_BENCH_H
#define NTA_BENCH_H
#include "../nta.h"

/* One step of the batch of B images already in net: inference, or training
 * (zero the gradients, forward, loss, backward, SGD update). */
static inline void bench_step(Net *net, int B, int train)
{
    if (train) net_zero_grad(net);
    net_forward(net, B, train);
    if (train) {
        net_loss(net, B, NULL);
        net_backward(net, B);
        net_update(net, 0.01f, 0.9f, 5e-5f);
    }
}
#endif
