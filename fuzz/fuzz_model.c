/* fuzz/fuzz_model.c: net_load, the model-file reader. An input is a model
 * file without its last 4 bytes: the harness appends the right CRC32 (else
 * nearly every input would stop at the CRC check) and loads the file at
 * batch 1 on the CPU backend.
 * Invariants: a failure names the file; a loaded network holds only finite
 * weights, batchnorm variances >= 0 and a sane input normalisation, runs an
 * inference pass, and saving it then loading the copy gives the same
 * description, metadata, normalisation and tensors.
 * A well-formed model of a network for large images legitimately needs
 * large activations (they grow with the image size, which no tensor
 * records, so the file's length cannot bound them): inputs whose
 * description needs more than FUZZ_MAX_ACT activation values per image are
 * skipped, so the fuzzer's memory limit flags only what the reader does.
 * Parameters are not exempt: the file must hold them. */
#include "../nta.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

#define FUZZ_MAX_ACT (1u << 24)

/* About the activation values of one image (the tensors net.c's net_layout
 * puts in the activation arena): each layer's input, its outputs before and
 * after batchnorm. */
static double act_per_image(const NetDesc *d)
{
    double h = d->in_h, w = d->in_w, c = d->stem_c, n = h * w * (d->in_c + 2.0 * c);
    for (int i = 0; i < d->nblocks; i++) {
        const BlockDesc *b = &d->blk[i];
        double E = (double)b->e * c, ho = (h - 1) / b->s + 1, wo = (w - 1) / b->s + 1;
        n += 2 * h * w * E + 2 * ho * wo * E + 2 * ho * wo * b->co;
        h = ho, w = wo, c = b->co;
    }
    return n + 2 * h * w * d->head_c + 2.0 * d->head_c + 2.0 * d->classes;
}

/* 1 if the bytes start like a model whose description we skip. */
static int too_large(const uint8_t *data, size_t size)
{
    char text[4096], err[256];
    uint32_t tl;
    NetDesc d;
    if (size < 16 || memcmp(data, "NTAMODEL", 8)) return 0;
    memcpy(&tl, data + 12, 4);
    if (tl >= sizeof text || tl > size - 16) return 0;
    memcpy(text, data + 16, tl);
    text[tl] = 0;
    return net_desc_parse(&d, text, err, sizeof err) == 0 && act_per_image(&d) > FUZZ_MAX_ACT;
}

static void check_loaded(const Net *net)
{
    for (size_t i = 0; i < net->nfloats; i++) FUZZ_CHECK(isfinite(net->p[i]));
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (strstr(pi->name, ".bn.var"))
            for (size_t j = 0; j < pi->n; j++) FUZZ_CHECK(net->p[pi->off + j] >= 0);
    }
    if (net->norm_set)
        for (int c = 0; c < 4; c++)
            FUZZ_CHECK(isfinite(net->norm_mean[c]) && isfinite(net->norm_std[c]) && net->norm_std[c] > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) cpu_set_threads(1), once = 1;
    if (too_large(data, size)) return 0;
    uint8_t *buf = malloc(size + 4);
    FUZZ_CHECK(buf);
    if (size) memcpy(buf, data, size);
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)size);
    memcpy(buf + size, &crc, 4);
    const char *path = fuzz_write(0, buf, size + 4);
    free(buf);

    char err[512] = "";
    Net *net = net_load(path, LOSS_XENT, &cpu_backend, 1, err, sizeof err);
    if (!net) {
        FUZZ_CHECK(strstr(err, path));
        return 0;
    }
    check_loaded(net);
    net_forward(net, 1, 0);

    const char *copy = fuzz_path(1);
    FUZZ_CHECK(net_save(net, copy, net->meta, net->has_momentum, err, sizeof err) == 0);
    Net *again = net_load(copy, LOSS_XENT, &cpu_backend, 1, err, sizeof err);
    if (!again) fprintf(stderr, "reloading the saved copy: %s\n", err);
    FUZZ_CHECK(again);
    FUZZ_CHECK(!memcmp(&net->d, &again->d, sizeof net->d));
    FUZZ_CHECK(!strcmp(net->meta, again->meta));
    FUZZ_CHECK(net->norm_set == again->norm_set && net->has_momentum == again->has_momentum);
    FUZZ_CHECK(!net->norm_set || (!memcmp(net->norm_mean, again->norm_mean, sizeof net->norm_mean) &&
                                  !memcmp(net->norm_std, again->norm_std, sizeof net->norm_std)));
    FUZZ_CHECK(net->nfloats == again->nfloats && !memcmp(net->p, again->p, net->nfloats * sizeof(float)));
    FUZZ_CHECK(!net->has_momentum || !memcmp(net->m, again->m, net->nfloats * sizeof(float)));
    net_free(again);
    net_free(net);
    return 0;
}
