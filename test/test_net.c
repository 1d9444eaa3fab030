/* test/test_net.c: the network as a whole: its gradient against central
 * differences, cost counts by hand, description round trip, model files
 * (round trip and every kind of damage), and a tiny training run. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A small network with every feature: two strides, a residual, K=5 and K=3. */
static NetDesc tiny_desc(void)
{
    NetDesc d = {.in_h = 9, .in_w = 8, .in_c = 2, .stem_c = 4, .stem_k = 3, .nblocks = 3,
                 .head_c = 6, .classes = 3};
    d.blk[0] = (BlockDesc){3, 3, 2, 5};
    d.blk[1] = (BlockDesc){5, 2, 1, 5};
    d.blk[2] = (BlockDesc){3, 2, 2, 7};
    return d;
}

static void fill_batch(Net *net, int B, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    size_t n = (size_t)B * net->d.in_h * net->d.in_w * net->d.in_c;
    for (size_t i = 0; i < n; i++) net->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)rng_below(&r, (uint32_t)net->d.classes);
}

static double loss_of(Net *net, int B)
{
    net_forward(net, B, 1);
    return (net->d.mlp ? net_ssl_loss(net, B, 1.0f, NULL) : net_loss(net, B, NULL)) / B;
}

/* The tiny network (with a projection head of `mlp` channels if > 0) at a
 * point away from the ReLU6 kinks, its gradient computed: BN output 3 + 0.5
 * xh keeps most pre-activations inside (0, 6), where central differences are
 * meaningful (the kinks themselves are checked op by op in test_cpu.c). With
 * a projection head, the last layer's bias cancels the constant 3 its inputs
 * carry, so the projections of the views differ (not a collapsed start). */
static Net *gradient_point(int mlp, int B)
{
    NetDesc d = tiny_desc();
    d.mlp = mlp;
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 7, 0);
    fill_batch(net, B, 8);
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        const char *leaf = strrchr(pi->name, '.') + 1;
        for (size_t j = 0; j < pi->n; j++)
            if (!strcmp(leaf, "gamma")) net->p[pi->off + j] = 0.5f;
            else if (!strcmp(leaf, "beta")) net->p[pi->off + j] = 3.0f;
    }
    for (int j = 0; mlp && j < d.classes; j++) {
        double colsum = 0;
        for (int i = 0; i < mlp; i++) colsum += net->w_fc[i * d.classes + j];
        net->b_fc[j] = (float)(-3 * colsum);
    }
    net_zero_grad(net);
    loss_of(net, B);
    net_backward(net, B);
    return net;
}

/* dL/dp for a few entries of every trainable tensor, against the backward pass.
 * The error of a probe is |numeric - analytic| / max(|numeric|, 1e-3). */
static void test_net_gradient(void)
{
    int B = 4;
    Net *net = gradient_point(0, B);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind == PARAM_STAT) continue;
        for (size_t j = 0; j < pi->n; j += pi->n / 5 + 1) {
            float *p = net->p + pi->off + j, keep = *p, eps = 1e-2f;
            *p = keep + eps;
            double lp = loss_of(net, B);
            *p = keep - eps;
            double lm = loss_of(net, B);
            *p = keep;
            double num = (lp - lm) / (2 * eps);
            double e = fabs(num - net->g[pi->off + j]) / fmax(fabs(num), 1e-3);
            if (e > worst) worst = e, worst_name = pi->name;
        }
    }
    CHECK(worst < 1e-3, "whole-network gradient: worst rel error %.2e in %s", worst, worst_name);
    net_free(net);
}

/* The same for the SSL network: a projection head of 5 channels, NT-Xent
 * (temperature 1) over a batch of 8 rows, 4 images x 2 views. Its loss, a
 * function of unit-length projections, carries the float rounding of every
 * layer at full gain (about 2e-6 of the loss, where the classifier's small
 * initial logits damp it), so a probe's error is measured against the largest
 * gradient of the network (as test_cpu.c's checks do per op) and the
 * derivative is taken by the five-point stencil (error O(eps^4)). */
static void test_net_gradient_ssl(void)
{
    int B = 8;
    Net *net = gradient_point(5, B);
    double worst = 0, scale = 1e-12;
    const char *worst_name = "";
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind == PARAM_STAT) continue;
        for (size_t j = 0; j < pi->n; j += pi->n / 5 + 1) {
            float *p = net->p + pi->off + j, keep = *p, eps = 1e-2f;
            double l[4];
            for (int k = 0; k < 4; k++) {     /* keep + 2eps, + eps, - eps, - 2eps */
                *p = keep + (k < 2 ? 2 - k : 1 - k) * eps;
                l[k] = loss_of(net, B);
            }
            *p = keep;
            double num = (8 * (l[1] - l[2]) - (l[0] - l[3])) / (12 * eps);
            double e = fabs(num - net->g[pi->off + j]);
            scale = fmax(scale, fabs(num));
            if (e > worst) worst = e, worst_name = pi->name;
        }
    }
    CHECK(worst < 1e-3 * scale, "whole-network SSL gradient: worst error %.2e in %s, %.2e of the largest gradient",
          worst, worst_name, worst / scale);
    net_free(net);
}

/* The reference network's cost, counted by hand from the table. */
static void test_costs(void)
{
    NetDesc d = net_reference(28, 28, 1, 10);
    /* multiply-accumulates per image:
     * stem 28*28*9*16; blocks (expand at input size, depthwise and project at output):
     *  b0 16->96 @28, dw @14, 96->24 @14     b1 24->144 @14, dw @14, 144->24 @14
     *  b2 24->144 @14, dw @7, 144->32 @7     b3 32->192 @7, dw @7, 192->32 @7
     *  b4 32->192 @7, dw @4, 192->64 @4      b5 64->384 @4, dw @4, 384->64 @4
     * head 64->128 @4; linear 128->10 */
    double macs = 28 * 28 * 9 * 16 +
                  784 * 16 * 96 + 196 * 9 * 96 + 196 * 96 * 24 +
                  196 * 24 * 144 + 196 * 9 * 144 + 196 * 144 * 24 +
                  196 * 24 * 144 + 49 * 9 * 144 + 49 * 144 * 32 +
                  49 * 32 * 192 + 49 * 9 * 192 + 49 * 192 * 32 +
                  49 * 32 * 192 + 16 * 9 * 192 + 16 * 192 * 64 +
                  16 * 64 * 384 + 16 * 9 * 384 + 16 * 384 * 64 +
                  16 * 64 * 128 + 128 * 10;
    CHECK(net_flops(&d) == 2 * macs, "reference FLOPs %.0f, by hand %.0f", net_flops(&d), 2 * macs);
    /* params: conv weights + BN gamma/beta per layer, linear weight + bias */
    size_t params = 9 * 16 + 32 +
                    16 * 96 + 192 + 9 * 96 + 192 + 96 * 24 + 48 +
                    2 * (24 * 144 + 288 + 9 * 144 + 288) + 144 * 24 + 48 + 144 * 32 + 64 +
                    2 * (32 * 192 + 384 + 9 * 192 + 384) + 192 * 32 + 64 + 192 * 64 + 128 +
                    64 * 384 + 768 + 9 * 384 + 768 + 384 * 64 + 128 +
                    64 * 128 + 256 + 128 * 10 + 10;
    CHECK(net_params(&d) == params, "reference params %zu, by hand %zu", net_params(&d), params);
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, 2, 1, 0);
    size_t trainable = 0;
    for (int i = 0; i < net->nparam; i++)
        if (net->param[i].kind != PARAM_STAT) trainable += net->param[i].n;
    CHECK(trainable == params, "parameter table holds %zu trainable floats, want %zu", trainable, params);
    CHECK(net->hh == 4 && net->hw == 4, "reference head at %dx%d, want 4x4", net->hh, net->hw);
    net_free(net);
}

static void test_desc_text(void)
{
    NetDesc a = tiny_desc(), b;
    char text[512], err[256];
    net_desc_format(&a, text, sizeof text);
    CHECK(net_desc_parse(&b, text, err, sizeof err) == 0 && !memcmp(&a, &b, sizeof a),
          "description round trip: '%s'", text);
    a.mlp = 9;
    net_desc_format(&a, text, sizeof text);
    CHECK(net_desc_parse(&b, text, err, sizeof err) == 0 && !memcmp(&a, &b, sizeof a) && strstr(text, " mlp=9"),
          "description round trip with a projection head: '%s'", text);
    CHECK(net_desc_parse(&b, "in=28x28x1 stem=16k3 blocks=k4e6s2c24 head=128 classes=10", err, sizeof err) == -1,
          "even kernel size rejected");
    CHECK(net_desc_parse(&b, "garbage", err, sizeof err) == -1 && strstr(err, "malformed"),
          "malformed description rejected: %s", err);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_model_files(void)
{
    NetDesc d = tiny_desc();
    int B = 3;
    char dir[] = "/tmp/nta-net-XXXXXX", path[256], bad[256], err[512];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/m.nta", dir);
    snprintf(bad, sizeof bad, "%s/bad.nta", dir);
    Net *a = net_create(&d, LOSS_XENT, &cpu_backend, B, 11, 0);
    fill_batch(a, B, 12);
    net_forward(a, B, 1);                      /* moves the running statistics */
    CHECK(net_save(a, path, "note=test\n", 0, err, sizeof err) == 0, "model saved");
    Net *b = net_load(path, LOSS_XENT, &cpu_backend, B, err, sizeof err);
    CHECK(b != NULL, "model loads: %s", b ? "" : err);
    if (b) {
        CHECK(!memcmp(a->p, b->p, a->nfloats * sizeof(float)), "loaded parameters equal saved ones");
        fill_batch(b, B, 12);
        net_forward(a, B, 0), net_forward(b, B, 0);
        CHECK(!memcmp(a->logits, b->logits, (size_t)B * d.classes * 4), "loaded model computes the same logits");
        net_free(b);
    }
    /* damage: missing, truncated, flipped byte, bad magic */
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(net_load("/nonexistent/x.nta", LOSS_XENT, &cpu_backend, B, err, sizeof err) == NULL &&
          strstr(err, "/nonexistent/x.nta"), "missing model named: %s", err);
    write_bytes(bad, buf, n / 2);
    CHECK(net_load(bad, LOSS_XENT, &cpu_backend, B, err, sizeof err) == NULL && strstr(err, "truncated"),
          "truncated model: %s", err);
    buf[n / 2] ^= 0x40;
    write_bytes(bad, buf, n);
    CHECK(net_load(bad, LOSS_XENT, &cpu_backend, B, err, sizeof err) == NULL && strstr(err, "CRC"),
          "corrupt model: %s", err);
    buf[n / 2] ^= 0x40;
    buf[0] = 'X';
    write_bytes(bad, buf, n);
    CHECK(net_load(bad, LOSS_XENT, &cpu_backend, B, err, sizeof err) == NULL && strstr(err, "magic"),
          "not a model: %s", err);
    write_bytes(bad, "", 0);
    CHECK(net_load(bad, LOSS_XENT, &cpu_backend, B, err, sizeof err) == NULL, "empty file rejected: %s", err);
    net_free(a);
    remove(path), remove(bad), remove(dir);
}

/* buf [n] with its description line replaced by desc and the CRC recomputed,
 * written to path */
static void write_with_desc(const char *path, const uint8_t *buf, size_t n, const char *desc)
{
    uint32_t tl, ntl;
    memcpy(&tl, buf + 12, 4);
    const uint8_t *text = buf + 16, *eol = memchr(text, '\n', tl);
    size_t rest = (size_t)(text + tl - eol), dl = strlen(desc);
    uint8_t *out = nta_malloc(n + dl);
    ntl = (uint32_t)(dl + rest);
    memcpy(out, buf, 12);
    memcpy(out + 12, &ntl, 4);
    memcpy(out + 16, desc, dl);
    memcpy(out + 16 + dl, eol, rest);                  /* the metadata lines */
    size_t m = 16 + dl + rest, tail = n - 4 - (16 + tl);
    memcpy(out + m, text + tl, tail);                  /* the tensors */
    m += tail;
    uint32_t crc = (uint32_t)crc32(0L, out, (uInt)m);
    memcpy(out + m, &crc, 4);
    write_bytes(path, out, m + 4);
    free(out);
}

/* net_load(path) must fail naming the file, its message holding want */
static void check_refused(const char *path, const char *want, const char *what)
{
    char err[512] = "";
    Net *net = net_load(path, LOSS_XENT, &cpu_backend, 2, err, sizeof err);
    CHECK(!net && strstr(err, path) && strstr(err, want), "%s refused: \"%s\" lacks \"%s\"", what,
          err, want);
    net_free(net);
}

/* Model files whose CRC is right but whose contents mean nothing, and files
 * whose description claims more than they hold. */
static void test_model_contents(void)
{
    NetDesc d = tiny_desc();
    char dir[] = "/tmp/nta-net-XXXXXX", path[256], text[512], err[512];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/m.nta", dir);
    Net *a = net_create(&d, LOSS_XENT, &cpu_backend, 2, 11, 0);
    const ParamInfo *w = net_param(a, "b1.dw.w"), *var = net_param(a, "b0.exp.bn.var");
    float keep = a->p[w->off + 5];

    a->p[w->off + 5] = NAN;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "'b1.dw.w' holds NaN at element 5", "a NaN weight");
    a->p[w->off + 5] = -INFINITY;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "'b1.dw.w' holds an infinity at element 5", "an infinite weight");
    a->p[w->off + 5] = keep;

    a->p[var->off + 2] = -0.5f;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "'b0.exp.bn.var' (a batchnorm running variance) has the negative value -0.5 at "
                  "element 2", "a negative running variance");
    a->p[var->off + 2] = 1;
    a->m[var->off] = NAN;                            /* a checkpoint: momentum must be finite too */
    net_save(a, path, "", 1, err, sizeof err);
    check_refused(path, "'m:b0.exp.bn.var' holds NaN", "NaN momentum");
    a->m[var->off] = 0;

    a->norm_set = 1;
    for (int c = 0; c < 4; c++) a->norm_mean[c] = 0.5f, a->norm_std[c] = 0.25f;
    a->norm_std[1] = 0;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "normalisation of channel 1", "a zero normalisation std");
    a->norm_std[1] = -0.25f;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "needs a finite mean and a finite std above 0", "a negative normalisation std");
    a->norm_std[1] = 0.25f;
    a->norm_mean[3] = NAN;
    net_save(a, path, "", 0, err, sizeof err);
    check_refused(path, "normalisation of channel 3 (mean nan", "a NaN normalisation mean");
    a->norm_mean[3] = 0.5f;
    net_save(a, path, "note=fine\n", 0, err, sizeof err);
    Net *b = net_load(path, LOSS_XENT, &cpu_backend, 2, err, sizeof err);
    CHECK(b && b->norm_set && b->norm_std[1] == 0.25f && !strcmp(b->meta, "note=fine\n"),
          "the repaired model loads: %s", b ? b->meta : err);
    net_free(b);

    /* a 2 KB file whose description (CRC recomputed) claims layers of 1.6e9
     * parameters: refused before anything is allocated for them */
    static uint8_t buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/big.nta", dir);
    write_with_desc(path, buf, n, "in=9x8x2 stem=4k3 blocks=k3e3s2c5,k5e2s1c5,k3e2s2c7 head=4096 "
                    "classes=100000");
    check_refused(path, "its description needs 409737882 parameters", "a description larger than its tensors");
    /* a supernet whose blocks are smaller than its space's largest choices */
    net_desc_format(&d, text, sizeof text);
    strcat(text, " space=k3,5,7:e2,3:d1");
    write_with_desc(path, buf, n, text);
    check_refused(path, "not the search space's largest choices", "blocks below the space");
    /* a number sscanf would wrap: stem k4294967299 read as k3 */
    write_with_desc(path, buf, n, "in=9x8x2 stem=4k4294967299 blocks=k3e3s2c5,k5e2s1c5,k3e2s2c7 head=6 "
                    "classes=3");
    check_refused(path, "malformed network description", "a 10-digit number");
    /* stray bytes between the last tensor and the CRC */
    memcpy(buf + n - 4, "junk", 4);
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)n);
    memcpy(buf + n, &crc, 4);
    write_bytes(path, buf, n + 4);
    check_refused(path, "4 stray bytes after its last tensor", "trailing bytes");

    net_free(a);
    remove(path);
    snprintf(path, sizeof path, "%s/m.nta", dir);
    remove(path), remove(dir);
}

/* A few SGD steps on one fixed batch must drive its loss down. */
static void test_learns(void)
{
    NetDesc d = tiny_desc();
    int B = 8;
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 3, 0);
    fill_batch(net, B, 4);
    double first = 0, last = 0;
    for (int s = 0; s < 30; s++) {
        net_zero_grad(net);
        double l = loss_of(net, B);
        net_backward(net, B);
        net_update(net, 0.05f, 0.9f, 0);
        if (s == 0) first = l;
        last = l;
    }
    CHECK(last < 0.5 * first, "training on one batch: loss %.4f -> %.4f", first, last);
    net_free(net);
}

/* Inference on the CPU runs the batch in pieces, one thread per piece; a copy
 * of the CPU backend with eval_piece 0 runs the whole batch at once, op by
 * op. Both must give the same logits, with a batch that leaves a short piece,
 * on one thread and on two. */
static void test_eval_pieces(void)
{
    NetDesc d = tiny_desc();
    Backend whole = cpu_backend;
    whole.eval_piece = 0;
    int B = 7, was = cpu_parts();
    CHECK(cpu_backend.eval_piece > 0 && B % cpu_backend.eval_piece,
          "the CPU backend runs inference in pieces (eval_piece %d) and batch %d leaves a short one",
          cpu_backend.eval_piece, B);
    for (int threads = 1; threads <= 2; threads++) {
        cpu_set_threads(threads);
        Net *a = net_create(&d, LOSS_XENT, &cpu_backend, B, 5, 0), *b = net_create(&d, LOSS_XENT, &whole, B, 5, 0);
        fill_batch(a, B, 9);
        fill_batch(b, B, 9);
        net_forward(a, B, 1);          /* running statistics away from their start */
        net_forward(b, B, 1);
        net_forward(a, B, 0);
        net_forward(b, B, 0);
        double err = 0, mag = 0;
        for (int i = 0; i < B * d.classes; i++) {
            err = fmax(err, fabs((double)a->logits[i] - b->logits[i]));
            mag = fmax(mag, fabs((double)b->logits[i]));
        }
        CHECK(mag > 0 && err <= 1e-5 * mag, "inference in pieces (%d threads): logits differ by %.2e of %.2e",
              threads, err, mag);
        net_free(a), net_free(b);
    }
    cpu_set_threads(was);
}

/* The CPU backend splits every reduction into --threads parts whatever the
 * number of threads that run them (its governor runs them on fewer while
 * another process takes a core): a few training steps of the reference
 * network give the same bytes with the parts on one thread and on all. */
static void test_parts_any_threads(void)
{
    NetDesc d = net_reference(28, 28, 1, 10);
    int B = 16, was = cpu_parts();
    for (int parts = 2; parts <= 3; parts++) {
        float *w[2];
        for (int run = 0; run < 2; run++) {
            cpu_set_threads(parts);
            if (run == 1) cpu_pin_threads(1);
            Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 7, 0);
            for (int s = 0; s < 3; s++) {
                fill_batch(net, B, 20 + s);
                net_zero_grad(net);
                loss_of(net, B);
                net_backward(net, B);
                net_update(net, 0.05f, 0.9f, 5e-5f);
            }
            w[run] = net_weights_get(net, NULL);
            CHECK(run == 0 || (omp_get_max_threads() == 1 && cpu_threads() == 1), "%d parts ran on %d threads, not 1",
                  parts, omp_get_max_threads());
            if (run == 1)
                CHECK(!memcmp(w[0], w[1], net->nfloats * sizeof(float)),
                      "%d parts: 3 training steps on 1 thread differ from the same on %d threads", parts,
                      parts);
            net_free(net);
        }
        free(w[0]), free(w[1]);
    }
    cpu_set_threads(was);
}

void test_net(void)
{
    test_parts_any_threads();
    test_net_gradient();
    test_net_gradient_ssl();
    test_eval_pieces();
    test_costs();
    test_desc_text();
    test_model_files();
    test_model_contents();
    test_learns();
}
