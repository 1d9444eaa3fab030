/* test/test_task.c: the target tasks (data_task), their metrics (task.c) and
 * the whole comparison in quick mode (nta demo --quick 1, then eval of a
 * model it wrote). The tasks are built from the installed MNIST digits and
 * Fashion-MNIST (make setup); without them these tests are skipped. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Four 2-D embeddings at angles 0, 60 (identity 0) and 20, 90 degrees
 * (identity 1). Ranked by cosine: query 0 sees 20, 60, 90 (AP 1/2); query 60
 * sees 90, 20, 0 (AP 1/3); query 20 sees 0, 60, 90 (AP 1/3); query 90 sees
 * 60, 20, 0 (AP 1/2). No query's nearest neighbour shares its identity. */
static void test_retrieval_metric(void)
{
    const double deg[4] = {0, 60, 20, 90};
    const int32_t label[4] = {0, 0, 1, 1};
    float emb[8];
    for (int i = 0; i < 4; i++) emb[2 * i] = (float)cos(deg[i] * 3.14159265358979 / 180), emb[2 * i + 1] = (float)sin(deg[i] * 3.14159265358979 / 180);
    double rank1, map = task_retrieval(emb, label, 4, 2, &rank1);
    CHECK(fabs(map - 100 * 5.0 / 12) < 1e-9 && rank1 == 0, "retrieval by hand: mAP %.4f (want 41.6667), rank-1 %.1f (want 0)",
          map, rank1);
    for (int i = 0; i < 8; i++) emb[i] *= (float)(i / 2 + 1);   /* cosine ignores each row's length */
    double map2 = task_retrieval(emb, label, 4, 2, &rank1);
    CHECK(fabs(map2 - map) < 1e-6 && rank1 == 0, "rows scaled: mAP %.4f, want %.4f", map2, map);
    const float pts[8] = {1, 0, 2, 0.1f, 0, 3, 0.1f, 1};          /* separated identities rank perfectly */
    map = task_retrieval(pts, label, 4, 2, &rank1);
    CHECK(fabs(map - 100) < 1e-9 && rank1 == 100, "separated identities: mAP %.2f, rank-1 %.2f", map, rank1);
}

static int all_in(const Dataset *s, int lo, int hi)
{
    for (int i = 0; i < s->n; i++)
        if (s->label[i] < lo || s->label[i] >= hi) return 0;
    return s->n > 0;
}

static void test_task_data(void)
{
    DataSplits plain, d, e;
    if (!test_have_data(NEED_MNIST | NEED_FASHION, "the mnist-* tasks (data_task)")) return;
    data_load(&plain, "mnist", 100, 0, 1);

    data_task(&d, "mnist-rotation", 300, 100, 0, 1);
    int ok = d.kind == TASK_REGRESS && d.train.n == 300 && d.val.n == 100 && d.test.n == plain.test.n;
    double lo = 1, hi = -1;
    for (int i = 0; i < d.test.n; i++) lo = fmin(lo, d.test.value[i]), hi = fmax(hi, d.test.value[i]);
    CHECK(ok && lo >= -1 && hi <= 1 && hi - lo > 1.5, "mnist-rotation: sizes, angles / 45 in [%.3f, %.3f]", lo, hi);
    CHECK(memcmp(d.test.pix, plain.test.pix, 784) != 0, "mnist-rotation: the test images are rotated");
    data_task(&e, "mnist-rotation", 0, 7, 0, 2);                /* other --val, seed: the same test set */
    CHECK(!memcmp(e.test.pix, d.test.pix, (size_t)d.test.n * 784) &&
          !memcmp(e.test.value, d.test.value, (size_t)d.test.n * sizeof(float)),
          "mnist-rotation: the test split does not depend on --val or --seed");
    data_free(&d), data_free(&e);

    data_task(&d, "mnist-retrieval", 0, 200, 0, 1);
    CHECK(d.kind == TASK_RETRIEVE && all_in(&d.train, 0, 6) && all_in(&d.val, 6, 10) && all_in(&d.test, 6, 10) &&
          d.val.n == 200 && task_outputs(&d) == 6,
          "mnist-retrieval: train on digits 0-5 (%d), val (%d) and test (%d) on 6-9, a 6-way head",
          d.train.n, d.val.n, d.test.n);
    data_free(&d);

    data_task(&d, "mnist-uda", 500, 100, 0, 1);
    int zero = 1, same = 1, differ = 0;
    for (int i = 0; i < d.target.n; i++) zero &= d.target.label[i] == 0;
    for (int i = 0; i < d.test.n; i++) same &= d.test.label[i] == plain.test.label[i];
    for (size_t p = 0; p < (size_t)d.test.n * 784; p++) {
        differ += d.test.pix[p] != plain.test.pix[p];
        same &= d.test.pix[p] >= plain.test.pix[p];               /* the digit stays on top */
    }
    CHECK(d.kind == TASK_UDA && d.train.n == 500 && d.target.n == plain.train.n && zero,
          "mnist-uda: 500 labelled source images, %d unlabelled target images (want %d)", d.target.n, plain.train.n);
    CHECK(same && differ > d.test.n * 100, "mnist-uda: target test images are the test digits over backgrounds");
    data_free(&d);

    data_task(&d, "mnist-parity", 0, 100, 0, 1);
    CHECK(all_in(&d.test, 0, 2) && task_outputs(&d) == 2 && d.test.label[0] == plain.test.label[0] % 2,
          "mnist-parity: labels are the digits' parity");
    data_free(&d), data_free(&plain);
}

/* occurrences of needle in hay */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* The whole pipeline on tiny data; every model it wrote is readable, and
 * eval reproduces its test metric. */
static void test_demo_quick(void)
{
    char dir[] = "/tmp/nta-demo-XXXXXX", cmd[1024], path[1024], line[256];
    static char out[1 << 20];
    if (!test_have_data(NEED_MNIST | NEED_FASHION, "nta demo --quick 1")) return;
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(cmd, sizeof cmd, "./nta demo --quick 1 --keep-best 1 --front-budgets 9 --front-archs smallest,largest --dir %s",
             dir);
    int rc = test_capture(cmd, dir, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "== done in"), "nta demo --quick 1: exit %d\n%s", rc, out + (strlen(out) > 3000 ? strlen(out) - 3000 : 0));
    /* a searched winner's epoch 0 is never kept (its validation score chose it) */
    int kept0 = 0, winners = 0;
    for (char *l = out, *kept = NULL; (l = strchr(l, '\n')); l++) {
        if (!strncmp(l + 1, "keeping the weights of epoch ", 29)) kept = l + 30;
        int won = !strncmp(l + 1, "NTAA, seed", 10) || !strncmp(l + 1, "random search, seed", 19);
        winners += won;
        if (won && kept && !strncmp(kept, "0,", 2)) kept0++;
        if (!strncmp(l + 1, "WP&F, seed", 10) || !strncmp(l + 1, "from scratch, seed", 18) || won) kept = NULL;
    }
    /* NTAA and random search on 5 tasks, and NTAA at the front's budget 9, 2 seeds each */
    CHECK(winners == 30 && kept0 == 0, "searched winners never keep epoch 0: %d of %d runs did", kept0, winners);
    static const char *tasks[] = {"mnist", "mnist-parity", "mnist-rotation", "mnist-retrieval", "mnist-uda"};
    snprintf(path, sizeof path, "%s/report.md", dir);
    size_t len;
    char err[256], *md = (char *)nta_read_file(path, 1 << 24, &len, err, sizeof err);
    int ok = md != NULL;
    for (int i = 0; i < 5 && md; i++) {
        snprintf(line, sizeof line, "## %s", tasks[i]);
        ok &= strstr(md, line) != NULL;
    }
    CHECK(ok && strstr(md, "| NTAA |") && strstr(md, "| WP&F |") && strstr(md, "| from scratch |") &&
          strstr(md, "| random search |") && strstr(md, " ± "), "report.md has every task and method, mean ± sd of 2 seeds");
    CHECK(md && count_of(md, "NTAA - each other method") == 5 && count_of(md, "[") >= 15 + 15 &&
              !strstr(md, "from scratch: - ") && strstr(md, "NTAA against WP&F (the largest architecture): "),
          "report.md: every comparison of NTAA with a baseline has its interval and word, on all 5 tasks");
    CHECK(md && count_of(md, "At equal cost") == 5 && count_of(md, "At equal accuracy") == 5 &&
              count_of(md, "| NTAA, budget 9 MFLOPs |") == 15 &&
              strstr(md, "each NTAA point of the fronts, at equal cost (against the WP&F architecture nearest in "
                         "MFLOPs): ") && count_of(md, " of 10") == 2,
          "report.md: the fronts of every task, two NTAA points each against WP&F at equal cost and at equal "
          "accuracy, and the verdict's counts");
    free(md);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = (char *)nta_read_file(path, 1 << 24, &len, err, sizeof err);
    CHECK(html && strstr(html, "<svg"), "report.html with figures");
    free(html);

    /* eval of the saved rotation model prints the MAE of the demo's run with seed 1 */
    const char *want = strstr(out, "NTAA, seed 1: test MAE ");
    double mae = want ? atof(want + 23) : -1;
    snprintf(cmd, sizeof cmd, "./nta eval %s/mnist-rotation.ntaa.nta --task mnist-rotation --limit 800", dir);
    rc = test_capture(cmd, dir, out, sizeof out);
    const char *got = strstr(out, "test MAE ");
    CHECK(rc == 0 && got && want && fabs(atof(got + 9) - mae) < 0.006, "eval reproduces the demo's MAE %.2f:\n%s", mae, out);
    /* nta rank on the demo's supernet: the table, every fitness's correlation in [-1, 1] */
    snprintf(cmd, sizeof cmd, "./nta rank %s/supernet.nta --task mnist-parity --limit 800 --train-images 128 --val 64 "
             "--batch 32 --calib 2 --transfer-epochs 1 --finetune-epochs 1 --seeds 2 --archs 4", dir);
    rc = test_capture(cmd, dir, out, sizeof out);
    int rows = 0, in_range = 1;
    for (const char *p = strstr(out, "|---|---:|---:|\n"); p && (p = strstr(p + 1, "\n| ")); rows++) {
        const char *bar = strstr(p + 3, " | ");
        double rho = bar ? atof(bar + 3) : 9;
        in_range &= rho >= -1 && rho <= 1;
    }
    CHECK(rc == 0 && strstr(out, "fitness ranking on mnist-parity: 4 architectures") && rows == 9 && in_range &&
              strstr(out, "| MFLOPs alone |") && strstr(out, "(the ceiling: the truth's own noise)"),
          "nta rank: seven fitnesses, MFLOPs and the seeds' ceiling, each a correlation in [-1, 1] (exit %d):\n%s", rc,
          out + (strlen(out) > 3000 ? strlen(out) - 3000 : 0));
    snprintf(cmd, sizeof cmd, "./nta demo --tasks nosuch --supernet %s/supernet.nta --dir %s", dir, dir);
    rc = test_capture(cmd, dir, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "unknown task 'nosuch'"), "an unknown task is named: exit %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}

void test_task(void)
{
    test_retrieval_metric();
    test_task_data();
    test_demo_quick();
}
