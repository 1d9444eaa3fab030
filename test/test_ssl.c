/* test/test_ssl.c: self-supervised pretraining (pretrain --objective ssl):
 * the two views (deterministic for a seed, different from each other), the
 * collapse monitor (a constant encoder is detected, a random one is not), the
 * kNN vote, and the command line end to end on tiny data: no label is read
 * in training, and a resumed run ends as the unbroken one. The ops and the
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
    char dir[] = "/tmp/nta-ssl-XXXXXX", cmd[4096], data[1024], img[256], lab[256];
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
    static const char *const bad[][2] = {
        {"--objective bogus", "--objective must be supervised or ssl"},
        {"--objective ssl --batch 15", "give an even number"},
        {"--objective ssl --augment 0", "--augment 0 leaves nothing to learn"},
        {"--objective ssl --temperature 0", "--temperature must be in"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "./nta pretrain %s > %s/bad.log 2>&1; test $? = 2 && grep -q -- '%s' %s/bad.log",
                 bad[i][0], dir, bad[i][1], dir);
        CHECK(test_run(cmd) == 0, "pretrain %s exits 2 saying '%s'", bad[i][0], bad[i][1]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!test_failed) test_run(cmd);
}

void test_ssl(void)
{
    test_views();
    test_collapse();
    test_pretrain_cli();
}
