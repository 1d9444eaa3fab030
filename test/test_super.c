/* test/test_super.c: the supernet. Architecture strings (round trip and every
 * kind of bad token), costs counted by hand, a sub-architecture inside the
 * supernet against a standalone network holding the same sliced weights
 * (forward and gradients), batchnorm recalibration, and pretrain's resume
 * giving the same checkpoint as an unbroken run. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "../ntaa.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static NetDesc super28(void)
{
    Space sp = space_default();
    return net_supernet(28, 28, 1, 10, &sp, 4);
}

/* ------------------------------------------------------------- strings */

static int same_arch(const NetDesc *d, const Arch *a, const Arch *b)
{
    char x[512], y[512];
    arch_format(d, a, x, sizeof x);
    arch_format(d, b, y, sizeof y);
    return !strcmp(x, y);
}

static void test_strings(void)
{
    NetDesc d = super28();
    Rng r;
    rng_seed(&r, 5);
    char text[512], err[512];
    int ok = 1;
    for (int t = 0; t < 200; t++) {
        Arch a = arch_random(&d, &r), b;
        arch_format(&d, &a, text, sizeof text);
        ok &= arch_parse(&d, text, &b, err, sizeof err) == 0 && same_arch(&d, &a, &b);
        int first[NET_MAX_STAGES + 1], ns = net_stages(&d, first);
        for (int s = 0; s < ns; s++) {
            ok &= a.depth[s] == b.depth[s];
            for (int j = 0; j < a.depth[s]; j++)
                ok &= a.k[first[s] + j] == b.k[first[s] + j] && a.e[first[s] + j] == b.e[first[s] + j];
        }
    }
    CHECK(ok, "200 random architectures round-trip through their text exactly");
    Arch big = arch_largest(&d), small = arch_smallest(&d);
    arch_format(&d, &big, text, sizeof text);
    CHECK(!strcmp(text, "k7e6-k7e6-k7e6-k7e6/k7e6-k7e6-k7e6-k7e6/k7e6-k7e6-k7e6-k7e6"), "largest: %s", text);
    arch_format(&d, &small, text, sizeof text);
    CHECK(!strcmp(text, "k3e3-k3e3/k3e3-k3e3/k3e3-k3e3"), "smallest: %s", text);

    static const struct { const char *text, *msg; } bad[] = {
        {"k4e6-k3e6/k3e6-k3e6/k3e6-k3e6", "token 1 ('k4e6'): kernel 4 is not one of 3,5,7"},
        {"k3e6-k3e5/k3e6-k3e6/k3e6-k3e6", "token 2 ('k3e5'): expansion 5 is not one of 3,4,6"},
        {"k3e6-k3e6/k3e6/k3e6-k3e6", "stage 2 has 1 blocks, fewer than the smallest depth 2"},
        {"k3e6-k3e6-k3e6-k3e6-k3e6/k3e6-k3e6/k3e6-k3e6", "stage 1 has more than its 4 blocks at token 5"},
        {"k3e6-k3e6/k3e6-k3e6", "names 2 stages; this network has 3"},
        {"k3e6-k3e6/k3e6-k3e6/k3e6-k3e6/k3e6", "unexpected '/k3e6' after token 6"},
        {"k3e6-k3e6/k3e6-k3e6/k3e6-k3e6 ", "unexpected ' ' after token 6"},
        {"largest", "token 1 ('largest') is not of the form kKeE"},
        {"", "token 1 ('') is not of the form kKeE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Arch a;
        int rc = arch_parse(&d, bad[i].text, &a, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].msg), "'%s' rejected with '%s': got '%s'", bad[i].text,
              bad[i].msg, rc ? err : "accepted");
    }
    /* the engine's reference network is one architecture of the space */
    Arch ref;
    NetDesc want = net_reference(28, 28, 1, 10), got;
    CHECK(arch_parse(&d, "k3e6-k3e6/k3e6-k3e6/k3e6-k3e6", &ref, err, sizeof err) == 0, "reference parses: %s", err);
    got = arch_standalone(&d, &ref);
    CHECK(!memcmp(&got, &want, sizeof got), "the reference network is a member of the supernet");
    /* a description with its space survives the model-file text form */
    NetDesc back;
    net_desc_format(&d, text, sizeof text);
    CHECK(net_desc_parse(&back, text, err, sizeof err) == 0 && !memcmp(&back, &d, sizeof d),
          "supernet description round trip: %s", text);
}

/* ---------------------------------------------------------------- costs */

static void test_costs(void)
{
    NetDesc d = super28();
    Arch a;
    char err[256];
    /* smallest: k3 e3, two blocks per stage. Multiply-accumulates per image:
     * stem 784*9*16
     * stage 1: b0 16->48 @28x28, dw3 @14x14, 48->24 @14x14; b1 24->72 @14, dw3 @14, 72->24 @14
     * stage 2: b0 24->72 @14, dw3 @7, 72->32 @7;            b1 32->96 @7, dw3 @7, 96->32 @7
     * stage 3: b0 32->96 @7, dw3 @4, 96->64 @4;             b1 64->192 @4, dw3 @4, 192->64 @4
     * head 64->128 @4; linear 128->10 */
    double macs = 784.0 * 9 * 16 +
                  784 * 16 * 48 + 196 * 9 * 48 + 196 * 48 * 24 + 196 * 24 * 72 + 196 * 9 * 72 + 196 * 72 * 24 +
                  196 * 24 * 72 + 49 * 9 * 72 + 49 * 72 * 32 + 49 * 32 * 96 + 49 * 9 * 96 + 49 * 96 * 32 +
                  49 * 32 * 96 + 16 * 9 * 96 + 16 * 96 * 64 + 16 * 64 * 192 + 16 * 9 * 192 + 16 * 192 * 64 +
                  16 * 64 * 128 + 128 * 10;
    /* params: weights + BN gamma/beta (2 per channel) per layer */
    size_t params = 9 * 16 + 32 +
                    16 * 48 + 96 + 9 * 48 + 96 + 48 * 24 + 48 + 24 * 72 + 144 + 9 * 72 + 144 + 72 * 24 + 48 +
                    24 * 72 + 144 + 9 * 72 + 144 + 72 * 32 + 64 + 32 * 96 + 192 + 9 * 96 + 192 + 96 * 32 + 64 +
                    32 * 96 + 192 + 9 * 96 + 192 + 96 * 64 + 128 + 64 * 192 + 384 + 9 * 192 + 384 + 192 * 64 + 128 +
                    64 * 128 + 256 + 128 * 10 + 10;
    a = arch_smallest(&d);
    NetDesc s = arch_standalone(&d, &a);
    CHECK(net_flops(&s) == 2 * macs && net_params(&s) == params,
          "smallest: %.0f FLOPs %zu params, by hand %.0f %zu", net_flops(&s), net_params(&s), 2 * macs, params);

    /* mixed: stage 1 k7e6, k5e4, k3e3; stage 2 k5e3, k3e6; stage 3 k3e4 x4 */
    CHECK(arch_parse(&d, "k7e6-k5e4-k3e3/k5e3-k3e6/k3e4-k3e4-k3e4-k3e4", &a, err, sizeof err) == 0, "%s", err);
    macs = 784.0 * 9 * 16 +
           784 * 16 * 96 + 196 * 49 * 96 + 196 * 96 * 24 +   /* 16->96 k7 s2 */
           196 * 24 * 96 + 196 * 25 * 96 + 196 * 96 * 24 +   /* 24->96 k5 */
           196 * 24 * 72 + 196 * 9 * 72 + 196 * 72 * 24 +    /* 24->72 k3 */
           196 * 24 * 72 + 49 * 25 * 72 + 49 * 72 * 32 +     /* 24->72 k5 s2 */
           49 * 32 * 192 + 49 * 9 * 192 + 49 * 192 * 32 +     /* 32->192 k3 */
           49 * 32 * 128 + 16 * 9 * 128 + 16 * 128 * 64 +     /* 32->128 k3 s2 */
           3 * (16 * 64 * 256 + 16 * 9 * 256 + 16 * 256 * 64) + /* 64->256 k3 x3 */
           16 * 64 * 128 + 128 * 10;
    params = 9 * 16 + 32 +
             16 * 96 + 192 + 49 * 96 + 192 + 96 * 24 + 48 +
             24 * 96 + 192 + 25 * 96 + 192 + 96 * 24 + 48 +
             24 * 72 + 144 + 9 * 72 + 144 + 72 * 24 + 48 +
             24 * 72 + 144 + 25 * 72 + 144 + 72 * 32 + 64 +
             32 * 192 + 384 + 9 * 192 + 384 + 192 * 32 + 64 +
             32 * 128 + 256 + 9 * 128 + 256 + 128 * 64 + 128 +
             3 * (64 * 256 + 512 + 9 * 256 + 512 + 256 * 64 + 128) +
             64 * 128 + 256 + 128 * 10 + 10;
    s = arch_standalone(&d, &a);
    CHECK(net_flops(&s) == 2 * macs && net_params(&s) == params,
          "mixed: %.0f FLOPs %zu params, by hand %.0f %zu", net_flops(&s), net_params(&s), 2 * macs, params);
}

/* ------------------------------------------- sub-network == standalone */

/* Copy tensor `sn` of the supernet into `tn` of the standalone net: leading
 * rows/columns, except depthwise weights, whose KxK window is centred. */
static void copy_slice(const ParamInfo *tp, float *dst, const ParamInfo *sp, const float *src)
{
    if (strstr(tp->name, ".dw.w")) {                     /* [K,K,E] inside [Km,Km,Em] */
        int K = tp->dims[0], E = tp->dims[2], Km = sp->dims[0], Em = sp->dims[2], o = (Km - K) / 2;
        for (int y = 0; y < K; y++)
            for (int x = 0; x < K; x++)
                for (int c = 0; c < E; c++) dst[(y * K + x) * E + c] = src[((y + o) * Km + x + o) * Em + c];
    } else if (tp->ndim == 2) {                          /* [R,C] inside [Rm,Cm] */
        for (int r = 0; r < tp->dims[0]; r++)
            for (int c = 0; c < tp->dims[1]; c++) dst[r * tp->dims[1] + c] = src[r * sp->dims[1] + c];
    } else {
        memcpy(dst, src, tp->n * sizeof(float));         /* vectors, the stem */
    }
}

/* Name of block i's tensor in the other network: "b<i>.rest" -> "b<j>.rest". */
static const ParamInfo *find_param(const Net *net, const char *name, int from, int to)
{
    char want[64];
    if (name[0] == 'b' && atoi(name + 1) == from) snprintf(want, sizeof want, "b%d%s", to, strchr(name, '.'));
    else snprintf(want, sizeof want, "%s", name);
    for (int i = 0; i < net->nparam; i++)
        if (!strcmp(net->param[i].name, want)) return &net->param[i];
    return NULL;
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double e = 0, m = 1e-20;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i])), m = fmax(m, fabs(b[i]));
    return e / m;
}

static void check_standalone(const NetDesc *d, const Arch *a)
{
    int B = 3, first[NET_MAX_STAGES + 1], ns = net_stages(d, first), map[NET_MAX_BLOCKS], nb = 0;
    char text[512];
    arch_format(d, a, text, sizeof text);
    NetDesc sd = arch_standalone(d, a);
    Net *S = net_create(d, LOSS_XENT, &cpu_backend, B, 21, 0), *T = net_create(&sd, LOSS_XENT, &cpu_backend, B, 22, 0);
    net_set_arch(S, a);
    for (int s = 0; s < ns; s++)
        for (int j = 0; j < a->depth[s]; j++) map[nb++] = first[s] + j;  /* standalone -> super */
    /* move the weights of the active slice (and BN statistics) over */
    int missing = 0;
    for (int i = 0; i < T->nparam; i++) {
        const ParamInfo *tp = &T->param[i];
        int j = tp->name[0] == 'b' ? atoi(tp->name + 1) : -1;
        const ParamInfo *sp = find_param(S, tp->name, j, j >= 0 ? map[j] : -1);
        if (!sp) { missing++; continue; }
        copy_slice(tp, T->p + tp->off, sp, S->p + sp->off);
    }
    CHECK(missing == 0, "%s: %d tensors without a supernet counterpart", text, missing);
    Rng r;
    rng_seed(&r, 23);
    size_t nx = (size_t)B * d->in_h * d->in_w * d->in_c;
    for (size_t i = 0; i < nx; i++) S->x_in[i] = T->x_in[i] = rng_normal(&r);
    for (int i = 0; i < B; i++) S->y_in[i] = T->y_in[i] = (int32_t)rng_below(&r, 10);

    net_zero_grad(S), net_zero_grad(T);
    net_forward(S, B, 1), net_forward(T, B, 1);
    net_loss(S, B, NULL), net_loss(T, B, NULL);
    double e = rel_diff(S->logits, T->logits, (size_t)B * 10);
    CHECK(e < 1e-5, "%s: supernet logits vs standalone: rel diff %.2e", text, e);
    net_backward(S, B), net_backward(T, B);
    /* the standalone gradients are the slices of the supernet gradients... */
    double worst = 0;
    float *slice = nta_malloc(S->nfloats * sizeof(float));
    for (int i = 0; i < T->nparam; i++) {
        const ParamInfo *tp = &T->param[i];
        if (tp->kind == PARAM_STAT) continue;
        int j = tp->name[0] == 'b' ? atoi(tp->name + 1) : -1;
        const ParamInfo *sp = find_param(S, tp->name, j, j >= 0 ? map[j] : -1);
        copy_slice(tp, slice, sp, S->g + sp->off);
        worst = fmax(worst, rel_diff(slice, T->g + tp->off, tp->n));
    }
    CHECK(worst < 1e-4, "%s: supernet gradients vs standalone: worst rel diff %.2e", text, worst);
    /* ...and nothing lands outside them: zero a copy of each active slice, the rest must be 0 */
    memcpy(slice, S->g, S->nfloats * sizeof(float));
    float *zero = nta_calloc(S->nfloats, sizeof(float));
    for (int i = 0; i < T->nparam; i++) {
        const ParamInfo *tp = &T->param[i];
        int j = tp->name[0] == 'b' ? atoi(tp->name + 1) : -1;
        const ParamInfo *sp = find_param(S, tp->name, j, j >= 0 ? map[j] : -1);
        /* copy_slice in reverse: write zeros into the slice's places */
        ParamInfo fake = *sp;
        if (strstr(tp->name, ".dw.w")) {
            int K = tp->dims[0], E = tp->dims[2], Km = sp->dims[0], Em = sp->dims[2], o = (Km - K) / 2;
            for (int y = 0; y < K; y++)
                for (int x = 0; x < K; x++)
                    for (int c = 0; c < E; c++) slice[sp->off + ((y + o) * Km + x + o) * Em + c] = 0;
        } else if (tp->ndim == 2) {
            for (int rr = 0; rr < tp->dims[0]; rr++)
                for (int c = 0; c < tp->dims[1]; c++) slice[sp->off + rr * sp->dims[1] + c] = 0;
        } else {
            memset(slice + sp->off, 0, tp->n * sizeof(float));
        }
        (void)fake;
    }
    CHECK(!memcmp(slice, zero, S->nfloats * sizeof(float)), "%s: gradients outside the active slices", text);
    free(slice), free(zero);
    net_free(S), net_free(T);
}

static void test_standalone(void)
{
    NetDesc d = super28();
    Rng r;
    rng_seed(&r, 9);
    Arch a = arch_smallest(&d);
    check_standalone(&d, &a);
    a = arch_largest(&d);
    check_standalone(&d, &a);
    for (int i = 0; i < 3; i++) {
        a = arch_random(&d, &r);
        check_standalone(&d, &a);
    }
}

/* ----------------------------------------------------- recalibration */

/* After recalibration on T batches the running mean of the stem's BN is the
 * mean of the T batch means (momentum 1/(t+1)). */
static void test_recalibrate(void)
{
    NetDesc d = super28();
    DataSplits ds;
    memset(&ds, 0, sizeof ds);
    Dataset *tr = &ds.train;
    tr->n = 40, tr->h = 28, tr->w = 28, tr->c = 1, tr->classes = 10;
    tr->pix = nta_malloc(40 * 784);
    tr->label = nta_calloc(40, sizeof(int32_t));
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 40 * 784; i++) tr->pix[i] = (uint8_t)rng_below(&r, 256);
    ds.mean[0] = 0.5f, ds.std[0] = 0.25f;
    int B = 8, T = 3;
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 4, 0);
    Arch a = arch_smallest(&d);
    net_set_arch(net, &a);
    net_recalibrate(net, &ds, T, 77);
    /* redo by hand: the same batches (same seed and draw), the stem's batch means */
    double want[16] = {0};
    Rng q;
    rng_seed(&q, 77);
    int idx[8];
    float *x = nta_malloc(B * 784 * sizeof(float));
    int32_t y[8];
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < B; j++) idx[j] = (int)rng_below(&q, 40);
        data_batch(&ds, tr, idx, B, x, y, NULL);
        memcpy(net->x_in, x, B * 784 * sizeof(float));
        net_forward(net, B, 1);                          /* saved batch mean in sv_stem */
        for (int c = 0; c < 16; c++) want[c] += net->sv_stem.mean[c] / T;
    }
    double e = 0;
    Net *again = net_create(&d, LOSS_XENT, &cpu_backend, B, 4, 0);
    net_set_arch(again, &a);
    net_recalibrate(again, &ds, T, 77);
    for (int c = 0; c < 16; c++) e = fmax(e, fabs(again->bn_stem.run_mean[c] - want[c]));
    CHECK(e < 1e-5, "recalibrated running mean is the mean of the batch means: error %.2e", e);
    free(x), free(tr->pix), free(tr->label);
    net_free(net), net_free(again);
}

/* ------------------------------------------ resume, adapt and baselines */

/* The number after `after` in file path (the first occurrence), NAN if none. */
static double number_after(const char *path, const char *after)
{
    size_t len;
    char err[256], *text = (char *)nta_read_file(path, 1 << 22, &len, err, sizeof err);
    const char *p = text ? strstr(text, after) : NULL;
    double v = p ? atof(p + strlen(after)) : NAN;
    free(text);
    return v;
}

/* adapt --budget-ms end to end on the tiny supernet dir/a.nta (quick
 * settings): nta latency measures and caches the table (a second run reads
 * it), a budget halfway between the smallest and the largest architecture's
 * predictions is honoured by every candidate the search logged and by the
 * winner, whose predicted and measured latency are printed; a budget below
 * the fastest architecture is refused up front. */
static void test_budget_ms(const char *dir, const char *task)
{
    char cmd[4096], path[1024], line[4096];
    snprintf(cmd, sizeof cmd, "XDG_CACHE_HOME=%s/cache OMP_NUM_THREADS=2 ./nta latency %s/a.nta --threads 2 > %s/lat.out "
             "2>&1 && XDG_CACHE_HOME=%s/cache OMP_NUM_THREADS=2 ./nta latency %s/a.nta --threads 2 > %s/lat2.out 2>&1 && "
             "grep -q '(measured)' %s/lat.out && grep -q '(cached)' %s/lat2.out", dir, dir, dir, dir, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "nta latency measures the table, then reads it from the cache (see %s/lat.out)", dir);
    snprintf(path, sizeof path, "%s/lat.out", dir);
    double lo = number_after(path, "predicted: smallest "), hi = number_after(path, "predicted: largest ");
    CHECK(lo > 0 && hi > lo, "nta latency predicts the smallest (%g ms) below the largest (%g ms)", lo, hi);
    if (!(lo > 0 && hi > lo)) return;
    double budget = (lo + hi) / 2;
    snprintf(cmd, sizeof cmd, "XDG_CACHE_HOME=%s/cache OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --threads 2 "
             "--transfer-epochs 1 --finetune-epochs 1 --seeds 1 --population 4 --generations 2 --parents 2 --mutants 2 "
             "--crosses 2 --budget-mflops 0 --budget-ms %.6f --log %s/lat.log -o %s/lat.nta > %s/ad-lat.out 2>&1",
             dir, dir, task, budget, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "adapt --budget-ms runs (see %s/ad-lat.out)", dir);
    snprintf(path, sizeof path, "%s/ad-lat.out", dir);
    double pred = number_after(path, "latency of the winner at batch 1: predicted ");
    double meas = number_after(path, " ms), measured ");
    CHECK(pred > 0 && pred <= budget && meas > 0, "the winner's predicted latency %g ms is within the budget %g ms "
          "(measured %g ms)", pred, budget, meas);
    /* every candidate of the log, predicted from the cached table */
    static LatencyTable t;
    char err[512], key[sizeof t.key], table[1024];
    snprintf(path, sizeof path, "%s/a.nta", dir);
    Net *super = net_load(path, LOSS_XENT, &cpu_backend, 2, err, sizeof err);
    CHECK(super != NULL, "%s", err);
    if (!super) return;
    NetDesc d = *net_desc(super);
    net_free(super);
    snprintf(path, sizeof path, "%s/ad-lat.out", dir);
    FILE *f = fopen(path, "r");
    table[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "latency table: %1023s", table) == 1) break;
    if (f) fclose(f);
    f = fopen(table, "r");
    key[0] = 0;
    if (f && fgets(line, sizeof line, f) && fgets(line, sizeof line, f) && !strncmp(line, "key ", 4))
        snprintf(key, sizeof key, "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
    if (f) fclose(f);
    CHECK(*key && latency_load(&t, table, &d, key) == 1, "adapt's latency table '%s' is in the cache", table);
    snprintf(path, sizeof path, "%s/lat.log", dir);
    f = fopen(path, "r");
    int n = 0, over = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        char text[512];
        Arch a;
        if (line[0] == '#') continue;
        if (sscanf(line, "%*d %*d %*g %*g %*u %511s", text) != 1 || arch_parse(&d, text, &a, err, sizeof err)) {
            bad++;
            continue;
        }
        n++;
        over += latency_predict(&t, &a) > budget;
    }
    if (f) fclose(f);
    Arch big = arch_largest(&d);
    CHECK(n == 12 && over == 0 && bad == 0 && latency_predict(&t, &big) > budget,
          "all %d logged candidates (want 12) are predicted within %g ms: %d over, %d unreadable", n, budget, over, bad);
    snprintf(cmd, sizeof cmd, "XDG_CACHE_HOME=%s/cache OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --threads 2 "
             "--budget-ms %.6f > %s/ad-lat2.out 2>&1; test $? = 2 && grep -q 'admits no architecture' %s/ad-lat2.out",
             dir, dir, task, lo / 100, dir, dir);
    CHECK(test_run(cmd) == 0, "a latency budget below the fastest architecture is an option error (see %s/ad-lat2.out)",
          dir);
}

/* NAT's online adaptation (adapt --online-epochs): the supernet trains on
 * the population before each generation, so generation 0 is scored as
 * without it and generation 1 is not; and the method hands the supernet
 * back as it got it (the demo's next budget searches the same one). */
static void test_online(const char *dir, const char *task, const char *img, const char *lab)
{
    char one[4096];
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 1 --finetune-epochs 1 "
             "--population 4 --generations 2 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 "
             "--online-epochs 1 --log %s/o.log -o %s/o.nta > %s/o.out 2>&1 && "
             "grep -q 'online adaptation before generation 2: 1 epochs' %s/o.out && "
             "head -n 1 %s/o.log | grep -q 'online-epochs=1$' && "
             "cmp -s %s/ad0.nta.transfer %s/o.nta.transfer && "
             "test \"$(grep '^0 ' %s/o.log)\" = \"$(grep '^0 ' %s/s0.log)\" && "
             "test \"$(grep '^1 ' %s/o.log)\" != \"$(grep '^1 ' %s/s0.log)\"",
             dir, task, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    CHECK(test_run(one) == 0, "adapt --online-epochs 1: generation 0 scored as without it, generation 1 after "
          "training on the population (see %s/o.out)", dir);
    char spec[600], err[512];
    snprintf(spec, sizeof spec, "classify:idx:%s,%s", img, lab);
    AdaptCfg a = {.task = spec, .train_images = 64, .seeds = 1, .online_epochs = 1, .out = "", .log = ""};
    a.train = (TrainCfg){.batch = 16, .val = 16, .calib = 2, .epochs = 1, .seed = 1, .threads = 2, .augment = 1,
                         .lr = 0.05f, .momentum = 0.9f, .wd = 5e-5f, .warmup = 1};
    a.search = (SearchCfg){.budget_mflops = 20, .population = 4, .generations = 1, .parents = 2, .mutants = 2,
                           .crosses = 2, .mutate_prob = 0.1f};
    DataSplits d;
    data_task(&d, spec, a.train_images, a.train.val, 0, 1);
    snprintf(one, sizeof one, "%s/a.nta", dir);
    Net *super = net_load(one, LOSS_XENT, &cpu_backend, 16, err, sizeof err);
    CHECK(super != NULL, "load the tiny supernet: %s", super ? "" : err);
    if (!super) return;
    float *before = net_weights_get(super, NULL);
    Method m = {.method = METHOD_NTAA, .transferred = super, .epochs = 1, .log = "", .out = "", .t0 = nta_now()};
    ReportRow row;
    ntaa_run(&m, &cpu_backend, &d, &a, &row);
    float *after = net_weights_get(super, NULL);
    CHECK(!memcmp(before, after, super->nfloats * sizeof *after), "with online adaptation the method hands the supernet "
          "back with its weights as before");
    free(before), free(after), free(row.items);
    search_free(&m.last);
    net_free(super);
    data_free(&d);
}

/* The search in its task kind's space (adapt --kind-space 1) end to end, on
 * the regression task: every logged candidate's last stage at its full depth
 * (2 blocks in the tiny supernet, whose stages may run 1), said on the
 * terminal and in the log's header (which a search in the whole supernet
 * leaves as it was). */
static void test_kind_space_adapt(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta --task mnist-rotation --limit 300 "
             "--train-images 100 --val 50 --calib 2 --batch 16 --transfer-epochs 1 --finetune-epochs 1 --population 4 "
             "--generations 1 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 --kind-space 1 --log %s/k.log "
             "-o %s/k.nta > %s/k.out 2>&1 && grep -q 'stage depths of at least 1/1/2$' %s/k.out && "
             "head -n 1 %s/k.log | grep -q ' min-depth=1/1/2$' && "
             "test \"$(grep -v '^#' %s/k.log | awk '{n = split($6, s, \"/\"); m++; if (split(s[n], b, \"-\") == 2) deep++} "
             "END {print m \" \" deep}')\" = '8 8'", dir, dir, dir, dir, dir, dir, dir);
    if (test_have_data(NEED_MNIST, "adapt --kind-space 1 on the regression task"))
        CHECK(test_run(cmd) == 0, "adapt --kind-space 1 on mnist-rotation: all 8 logged candidates with a full last "
              "stage (see %s/k.out)", dir);
}

static void test_pipeline(void)
{
    char dir[] = "/tmp/nta-super-XXXXXX", cmd[4096], data[1024], img[256], lab[256];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(img, sizeof img, "%s/img", dir);
    snprintf(lab, sizeof lab, "%s/lab", dir);
    test_write_dataset(img, lab, 120, 4, 5);
    snprintf(data, sizeof data, "--data idx:%s,%s --batch 16 --val 16 --calib 2 --epochs 3 --depth 2 "
             "--min-depth 1 --kernels 3,5 --expands 2,3", img, lab);
    /* unbroken: 3 epochs; broken: a copy of the checkpoint after epoch 1, resumed */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s -o %s/a.nta > %s/a.log 2>&1 && "
             "OMP_NUM_THREADS=2 ./nta pretrain %s --epochs 1 -o %s/b1.nta > %s/b1.log 2>&1", data, dir, dir,
             data, dir, dir);
    CHECK(test_run(cmd) == 0, "pretrain runs on tiny data (see %s/*.log)", dir);
    /* the 1-epoch run wrote epochs=1 into its checkpoint: it is not the same run */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s --resume %s/b1.nta -o %s/b.nta > %s/b.log 2>&1",
             data, dir, dir, dir);
    CHECK(test_run(cmd) == 1, "resuming a run with other settings is refused");
    /* the same run stopped after epoch 1, then resumed */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s --stop-after 1 -o %s/c.nta > %s/c.log 2>&1 && "
             "OMP_NUM_THREADS=2 ./nta pretrain %s --resume %s/c.nta -o %s/d.nta > %s/d.log 2>&1 "
             "&& cmp -s %s/a.nta %s/d.nta", data, dir, dir, data, dir, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "a resumed pretrain ends with the same checkpoint, byte for byte (see %s)", dir);
    snprintf(cmd, sizeof cmd, "grep -q 'largest' %s/a.log && grep -q 'resuming from' %s/d.log", dir, dir);
    CHECK(test_run(cmd) == 0, "pretrain reports the largest and smallest; resume says so");
    /* eval of sub-architectures of the result */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta eval %s/a.nta --data idx:%s,%s --calib 2 --random 3 "
             "> %s/e.log 2>&1 && grep -c 'k[35]e[23]' %s/e.log | grep -q 3 && grep -q 'Spearman' %s/e.log", dir, img, lab,
             dir, dir, dir);
    CHECK(test_run(cmd) == 0, "eval --random 3 prints three architectures (see %s/e.log)", dir);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta eval %s/a.nta --data idx:%s,%s --arch k7e6 > %s/f.log 2>&1; "
             "test $? = 2 && grep -q 'kernel 7 is not one of 3,5' %s/f.log", dir, img, lab, dir, dir);
    CHECK(test_run(cmd) == 0, "eval --arch with a bad token names it");
    /* NTAA and the baselines on the tiny supernet, treating the same files as the task */
    char task[600];
    snprintf(task, sizeof task, "--task classify:idx:%s,%s --train-images 64 --val 16 --calib 2 --batch 16", img, lab);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 1 --finetune-epochs 1 "
             "--population 4 --generations 2 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 "
             "--log %s/s%%d.log -o %s/ad%%d.nta > %s/ad%%d.out 2>&1", dir, task, dir, dir, dir);
    char one[4096];
    int rc[2];
    for (int i = 0; i < 2; i++) {
        snprintf(one, sizeof one, cmd, i, i, i);
        rc[i] = test_run(one);
    }
    snprintf(one, sizeof one, "grep -q 'NTAA: test accuracy' %s/ad0.out && test $(grep -vc '^#' %s/s0.log) = 12 && "
             "cmp -s %s/s0.log %s/s1.log && cmp -s %s/ad0.nta %s/ad1.nta", dir, dir, dir, dir, dir, dir);
    CHECK(rc[0] == 0 && rc[1] == 0 && test_run(one) == 0,
          "adapt runs, logs 3 generations of 4, and repeats itself exactly for a seed (see %s/ad0.out)", dir);
    /* a run stopped after generation 1, resumed to 2 generations, ends like the unbroken run */
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 1 --finetune-epochs 1 "
             "--population 4 --generations 1 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 "
             "--log %s/s2.log -o %s/ad2.nta > %s/ad2.out 2>&1 && head -n 11 %s/s2.log > %s/s2.cut && "
             "mv %s/s2.cut %s/s2.log && "
             "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 1 --finetune-epochs 1 --resume 1 "
             "--population 4 --generations 2 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 "
             "--log %s/s2.log -o %s/ad2.nta > %s/ad3.out 2>&1 && grep -q 'resumed after generation 1' %s/ad3.out && "
             "cmp -s %s/ad0.nta %s/ad2.nta && cmp -s %s/s0.log %s/s2.log", dir, task, dir, dir, dir, dir, dir, dir, dir,
             dir, task, dir, dir, dir, dir, dir, dir, dir, dir);
    CHECK(test_run(one) == 0, "a stopped adapt resumes from its last complete generation and ends as the "
          "unbroken run: the same search log and model (see %s/ad3.out)", dir);
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --budget-mflops 0.1 > %s/ad2.out 2>&1; "
             "test $? = 2 && grep -q 'smallest costs' %s/ad2.out", dir, task, dir, dir);
    CHECK(test_run(one) == 0, "adapt with a budget below the smallest architecture says so");
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 1 --finetune-epochs 1 "
             "--population 4 --generations 1 --parents 2 --mutants 2 --crosses 2 --budget-mflops 20 "
             "--transfer-within-budget 1 --log %s/w.log -o %s/w.nta > %s/w.out 2>&1 && "
             "grep -q 'neural transfer: 1 epochs of the architectures of at most 20 MFLOPs' %s/w.out && "
             "grep -q 'NTAA: test accuracy' %s/w.out && ! cmp -s %s/w.nta.transfer %s/ad0.nta.transfer",
             dir, task, dir, dir, dir, dir, dir, dir, dir);
    CHECK(test_run(one) == 0, "adapt --transfer-within-budget 1 transfers within the budget, another supernet "
          "than the whole one's (see %s/w.out)", dir);
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta %s --transfer-epochs 0 --finetune-epochs 1 "
             "--random 3 --budget-mflops 20 --log %s/r.log -o %s/r.nta > %s/r.out 2>&1 && "
             "grep -q 'random search: test accuracy' %s/r.out && test $(grep -vc '^#' %s/r.log) = 3", dir, task, dir, dir,
             dir, dir, dir);
    CHECK(test_run(one) == 0, "adapt --random 3 (the random-search baseline) runs (see %s/r.out)", dir);
    test_budget_ms(dir, task);
    test_online(dir, task, img, lab);
    test_kind_space_adapt(dir);
    for (int scratch = 0; scratch < 2; scratch++) {
        snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta finetune %s/a.nta %s --epochs 1 --from-scratch %d "
                 "-o %s/ft.nta > %s/ft.out 2>&1 && grep -q '%s: test accuracy' %s/ft.out", dir, task, scratch, dir,
                 dir, scratch ? "from scratch" : "WP&F", dir);
        CHECK(test_run(one) == 0, "finetune --from-scratch %d runs (see %s/ft.out)", scratch, dir);
    }
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta finetune %s/a.nta --task mnist-parity --limit 300 --val 50 "
             "--epochs 1 --calib 2 --batch 16 -o %s/par.nta > %s/par.out 2>&1 && "
             "grep -q 'task mnist-parity: 250 train, 50 val, 300 test images of 28x28x1, 2 outputs' %s/par.out", dir,
             dir, dir, dir);
    if (test_have_data(NEED_MNIST, "finetune --task mnist-parity"))
        CHECK(test_run(one) == 0, "the mnist-parity task is a two-class problem (see %s/par.out)", dir);
    /* eval of the finished model (the run with --seed 1 of adapt's default 3
     * seeds) reproduces that run's test accuracy (same normalisation) */
    snprintf(one, sizeof one, "OMP_NUM_THREADS=2 ./nta eval %s/ad0.nta --data idx:%s,%s > %s/ev.out 2>&1 && "
             "a=$(sed -n 's/.*NTAA, seed 1: test accuracy \\([0-9.]*\\)%%.*/\\1/p' %s/ad0.out) && "
             "grep -q \"test accuracy $a%%\" %s/ev.out", dir, img, lab, dir, dir, dir);
    CHECK(test_run(one) == 0, "eval reproduces adapt's test accuracy (see %s/ev.out)", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed) test_run(cmd);
}

void test_super(void)
{
    test_strings();
    test_costs();
    test_standalone();
    test_recalibrate();
    test_pipeline();
}
