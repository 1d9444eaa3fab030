/* fuzz/fuzz_arch.c: the architecture text form (arch_parse) and the network
 * description line of model files (net_desc_parse). Input: "DESCRIPTION\n
 * ARCHITECTURE", or an architecture alone (no newline), parsed against the
 * default supernet for 28x28x1 images.
 * Invariants: a parsed description formats and parses back to itself; a
 * parsed architecture runs only kernels and expansions its description's
 * weights hold (k and e at most the block's), at stage depths within range,
 * and formats and parses back to itself; its standalone network is a valid
 * description with finite cost. */
#include "../nta.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>

static void check_desc(const NetDesc *d)
{
    char text[4096], err[256];
    NetDesc back;
    /* sizes a network can be built with: every size positive, kernels odd */
    FUZZ_CHECK(d->in_h >= 1 && d->in_w >= 1 && d->in_c >= 1 && d->stem_c >= 1 &&
               d->stem_k >= 1 && d->stem_k % 2 && d->head_c >= 1 && d->classes >= 1 &&
               d->nblocks >= 1 && d->nblocks <= NET_MAX_BLOCKS);
    for (int i = 0; i < d->nblocks; i++)
        FUZZ_CHECK(d->blk[i].k >= 1 && d->blk[i].k % 2 && d->blk[i].e >= 1 &&
                   (d->blk[i].s == 1 || d->blk[i].s == 2) && d->blk[i].co >= 1);
    net_desc_format(d, text, sizeof text);
    FUZZ_CHECK(net_desc_parse(&back, text, err, sizeof err) == 0);
    FUZZ_CHECK(!memcmp(d, &back, sizeof back));
    FUZZ_CHECK(isfinite(net_flops(d)));
}

static void check_arch(const NetDesc *d, const Arch *a)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    char text[1024], err[1024];
    Arch back;
    FUZZ_CHECK(ns > 0);
    for (int s = 0; s < ns; s++) {
        int blocks = first[s + 1] - first[s];
        FUZZ_CHECK(a->depth[s] >= 1 && a->depth[s] <= blocks);
        for (int i = first[s]; i < first[s] + a->depth[s]; i++)
            FUZZ_CHECK(a->k[i] >= 1 && a->k[i] <= d->blk[i].k && a->k[i] % 2 &&
                       a->e[i] >= 1 && a->e[i] <= d->blk[i].e);
    }
    arch_format(d, a, text, sizeof text);
    FUZZ_CHECK(arch_parse(d, text, &back, err, sizeof err) == 0);
    FUZZ_CHECK(!memcmp(a, &back, sizeof back));
    NetDesc alone = arch_standalone(d, a);
    check_desc(&alone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[1024];
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = 0;
    char *nl = strchr(text, '\n'), *arch = text;
    NetDesc d;
    if (nl) {
        *nl = 0, arch = nl + 1;
        int rc = net_desc_parse(&d, text, err, sizeof err);
        if (rc) {
            FUZZ_CHECK(rc == -1 && err[0]);
            free(text);
            return 0;
        }
        check_desc(&d);
    } else {
        Space sp = space_default();
        d = net_supernet(28, 28, 1, 10, &sp, 4);
    }
    Arch a;
    int rc = arch_parse(&d, arch, &a, err, sizeof err);
    if (rc == 0) check_arch(&d, &a);
    else FUZZ_CHECK(rc == -1 && err[0]);
    free(text);
    return 0;
}
