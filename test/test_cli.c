/* test/test_cli.c: the binary as a user meets it: exit codes and messages for
 * bad options and bad files, and train + eval end to end on a tiny IDX
 * dataset written here. Runs ./nta from the project root. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/nta-cli-XXXXXX";
static char out[16384];

/* Run "./nta ARGS", capture stdout+stderr into out[], return the exit code. */
static int nta(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "./nta %s", args);
    return test_capture(cmd, dir, out, sizeof out);
}

#define EXPECT(rc_, args, text)                                                             \
    do {                                                                                    \
        int rc = nta(args);                                                                 \
        CHECK(rc == (rc_) && strstr(out, text), "nta %s: exit %d (want %d), output lacks '%s':\n%s", \
              args, rc, rc_, text, out);                                                    \
    } while (0)

/* A raw IDX file of unsigned bytes with the given dims. */
static void write_idx(const char *path, int ndim, const int *dims, const uint8_t *data)
{
    FILE *f = fopen(path, "wb");
    uint8_t head[4] = {0, 0, 8, (uint8_t)ndim};
    size_t n = 1;
    fwrite(head, 1, 4, f);
    for (int i = 0; i < ndim; i++) {
        uint8_t be[4] = {(uint8_t)(dims[i] >> 24), (uint8_t)(dims[i] >> 16), (uint8_t)(dims[i] >> 8),
                         (uint8_t)dims[i]};
        fwrite(be, 1, 4, f);
        n *= dims[i];
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

void test_write_dataset(const char *images, const char *labels, int n, int classes, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    uint8_t *pix = nta_calloc((size_t)n * 784, 1), *lab = nta_malloc(n);
    for (int i = 0; i < n; i++) {
        int c = (int)rng_below(&r, classes), y0 = c / 2 * 18 + 1, x0 = c % 2 * 18 + 1;
        lab[i] = (uint8_t)c;
        for (int p = 0; p < 784; p++) pix[i * 784 + p] = (uint8_t)rng_below(&r, 60);
        for (int y = y0; y < y0 + 8; y++)
            for (int x = x0; x < x0 + 8; x++) pix[i * 784 + y * 28 + x] = 255;
    }
    int di[3] = {n, 28, 28}, dl[1] = {n};
    write_idx(images, 3, di, pix);
    write_idx(labels, 1, dl, lab);
    free(pix), free(lab);
}

static void test_options(void)
{
    EXPECT(2, "", "usage: nta COMMAND");
    EXPECT(0, "--help", "commands:");
    EXPECT(0, "train --help", "--epochs N");
    EXPECT(0, "eval --help", "usage: nta eval MODEL");
    EXPECT(2, "frobnicate", "unknown command 'frobnicate'");
    EXPECT(2, "train --bogus 1", "unknown option '--bogus'");
    EXPECT(2, "train --epochs", "--epochs needs a value");
    EXPECT(2, "train --epochs x", "--epochs expects an integer");
    EXPECT(2, "train --lr 1e99", "--lr expects a number");
    EXPECT(2, "train --epochs 0", "--epochs must be in 1..");
    EXPECT(2, "train --batch=1", "--batch must be in 2..65536");
    EXPECT(2, "eval", "which model?");
    EXPECT(2, "eval a.nta b.nta", "unexpected argument 'b.nta'");
    EXPECT(2, "train --data nosuch --limit 10", "cifar:DIR");
    EXPECT(1, "train --data idx:/nonexistent/i.idx,/nonexistent/l.idx", "/nonexistent/i.idx");
    EXPECT(2, "train --device tpu", "--device must be auto, cpu or cuda");
    EXPECT(1, "eval /nonexistent/m.nta", "cannot open /nonexistent/m.nta");
}

/* Careless and hostile options: each refused up front (exit 2) with a
 * message naming the option, before any data is read or anything written. */
static void test_hostile_options(void)
{
    EXPECT(2, "train --threads 100000", "--threads must be in 0..1024");
    EXPECT(2, "train --warmup 1e30", "--warmup must be in");
    EXPECT(2, "train --wd 1e-50 --epochs 0", "--epochs must be in");      /* 1e-50 is a number (0) */
    EXPECT(2, "train --augment 2", "--augment must be 0 or 1");
    EXPECT(2, "train --stop-after 9 --epochs 3", "--stop-after must be in 0..3");
    EXPECT(2, "train -o /dev/null", "not a regular file");
    EXPECT(2, "train -o /tmp", "not a regular file");
    EXPECT(2, "train -o /nonexistent/dir/m.nta", "the folder '/nonexistent/dir' does not exist");
    EXPECT(2, "train -o /proc/m.nta", "--out '/proc/m.nta': cannot create it");  /* a folder that takes no files */
    {
        char longname[400] = "train -o ";
        memset(longname + 9, 'a', 300);
        EXPECT(2, longname, "cannot create it: File name too long");
    }
    EXPECT(1, "pretrain --resume /nonexistent/ck.nta", "--resume: cannot read '/nonexistent/ck.nta'");
    EXPECT(2, "adapt s.nta --mutants 2147483647 --crosses 2147483647", "--mutants must be in 0..10000");
    EXPECT(2, "adapt s.nta --budget-mflops -5", "--budget-mflops must be in");
    EXPECT(2, "adapt s.nta --parents 9 --population 4", "--parents must be in 1..4");
    EXPECT(2, "adapt s.nta --task nosuch", "unknown task 'nosuch'");
    EXPECT(2, "adapt s.nta --budget-ms -1", "--budget-ms must be in 0..");
    EXPECT(2, "adapt s.nta --budget-mflops 0", "--budget-mflops must be at least 0.001, or 0 (none) with --budget-ms");
    EXPECT(2, "adapt s.nta --budget-ms 5 --latency-batch 0", "--latency-batch must be in 1..65536");
    EXPECT(2, "latency", "which supernet?");
    EXPECT(2, "latency s.nta --batch 0", "--batch must be in 1..65536");
    EXPECT(2, "latency s.nta --fresh 2", "--fresh must be 0 or 1");
    EXPECT(1, "latency /nonexistent/s.nta", "/nonexistent/s.nta");
    EXPECT(2, "adapt s.nta --log /dev/null", "--log '/dev/null' is not a regular file");
    EXPECT(2, "finetune s.nta -o /nonexistent/x.nta", "the folder '/nonexistent' does not exist");
    EXPECT(2, "finetune s.nta --from-scratch 3", "--from-scratch must be 0 or 1");
    EXPECT(2, "demo --tasks ,", "--tasks ',' has an empty item");
    EXPECT(2, "demo --tasks mnist,bogus", "unknown task 'bogus'");
    EXPECT(2, "demo --tasks mnist,classify:nosuch", "unknown dataset");
    EXPECT(2, "demo --seeds 0", "--seeds must be in 1..100");
    EXPECT(2, "demo --front-budgets 9,x", "--front-budgets '9,x': give up to 6 MFLOPs budgets");
    EXPECT(2, "demo --front-budgets 1,2,3,4,5,6,7", "--front-budgets '1,2,3,4,5,6,7'");
    EXPECT(2, "demo --front-budgets 9 --front-archs smallest,,largest", "--front-archs 'smallest,,largest'");
    EXPECT(2, "demo --front-archs smallest,largest", "--front-archs is used only with --front-budgets");
    EXPECT(2, "demo --ssl-epochs 5", "--ssl-epochs is used only with --ssl 1");
    EXPECT(2, "demo --task mnist-parity", "give --tasks, not --task");
    EXPECT(2, "demo --tasks mnist,mnist-parity --uda-mmd 2", "--uda-entropy and --uda-mmd apply only to the task mnist-uda");
    EXPECT(2, "adapt s.nta --uda-entropy 0", "--uda-entropy and --uda-mmd apply only to the task mnist-uda");
    EXPECT(2, "adapt s.nta --latency-batch 64", "--latency-batch is used only with --budget-ms");
    EXPECT(2, "adapt s.nta --fitness linear --transfer-within-budget 1", "--transfer-within-budget is used only with --fitness transfer");
    EXPECT(2, "adapt s.nta --transfer-within-budget 2", "--transfer-within-budget must be 0 or 1");
    EXPECT(2, "adapt s.nta --fitness linear --online-epochs 1", "--online-epochs is used only with --fitness transfer");
    EXPECT(2, "adapt s.nta --random 8 --online-epochs 1", "random search (--random) has none");
    EXPECT(2, "adapt s.nta --resume 1 --online-epochs 1", "--resume cannot continue a search with --online-epochs");
    EXPECT(2, "adapt s.nta --online-epochs -1", "--online-epochs must be in");
    EXPECT(2, "rank s.nta --online-epochs 1", "--online-epochs is used by a search (adapt, demo), not by rank");
    EXPECT(2, "rank s.nta --kind-space 1", "unknown option '--kind-space'");
    EXPECT(2, "adapt s.nta --kind-space 2", "--kind-space must be 0 or 1");
    EXPECT(2, "demo --kind-space -1", "--kind-space must be 0 or 1");
    EXPECT(2, "pretrain --temperature 0.5", "--temperature is used only with --objective ssl");
    EXPECT(2, "eval m.nta --spread 1", "--spread is used only with --random N");
    EXPECT(2, "demo --ssl-supernet x.nta", "--ssl-supernet is used only with --ssl 1");
    EXPECT(2, "demo --dir /dev/null", "--dir '/dev/null' is not a folder");
    /* a supernet still to pretrain: the budgets and fronts are checked against its plan first */
    EXPECT(2, "demo --dir /nonexistent/demo --front-budgets 0.5",
           "--front-budgets 0.5 admits no architecture of the supernet to pretrain");
    EXPECT(2, "demo --dir /nonexistent/demo --budget-mflops 3",
           "--budget-mflops 3 admits no architecture of the supernet to pretrain");
    EXPECT(2, "demo --dir /nonexistent/demo --front-budgets 9 --front-archs bogus", "--front-archs: architecture 'bogus'");
    EXPECT(2, "eval m.nta --random -1", "--random must be in");
    EXPECT(2, "eval m.nta --data nosuch", "unknown dataset");
    EXPECT(2, "train -o ''", "--out is empty");
    EXPECT(2, "adapt s.nta --log ''", "--log is empty");
    EXPECT(2, "demo --dir ''", "--dir is empty");
    EXPECT(2, "rank", "which supernet?");
    EXPECT(2, "rank x.nta --archs 2", "--archs must be in 3..1000");
    EXPECT(2, "rank x.nta --budget-mflops 0", "--budget-mflops must be at least 0.001");
    EXPECT(2, "predict", "which model?");
    EXPECT(2, "predict m.nta -o /nonexistent/p.csv", "the folder '/nonexistent' does not exist");
}

/* The default of --NAME in a command's --help text (out[]), into def; 0 if absent. */
static int default_of(const char *help, const char *name, char *def, size_t len)
{
    char flag[64];
    snprintf(flag, sizeof flag, "  --%s ", name);
    const char *p = strstr(help, flag), *e = p ? strchr(p, '\n') : NULL, *d = p ? strstr(p, "(default: ") : NULL;
    if (!d || (e && d > e)) return 0;
    snprintf(def, len, "%.*s", (int)strcspn(d + 10, ")"), d + 10);
    return 1;
}

/* One set of defaults: adapt and finetune default to the demo's settings,
 * and take --seeds as it does. */
static void test_defaults(void)
{
    static const char *shared[] = {"transfer-epochs", "budget-mflops", "population", "generations", "parents",
                                   "mutants", "crosses", "mutate-prob", "finetune-epochs", "seeds", "train-images",
                                   "val", "batch", "lr", "calib", "keep-best", "warmup", "wd"};
    static char demo[16384], adapt[16384], fine[16384];
    char a[64], b[64];
    nta("demo --help"), memcpy(demo, out, sizeof out);
    nta("adapt --help"), memcpy(adapt, out, sizeof out);
    nta("finetune --help"), memcpy(fine, out, sizeof out);
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++) {
        int ok = default_of(demo, shared[i], a, sizeof a) && default_of(adapt, shared[i], b, sizeof b);
        CHECK(ok && !strcmp(a, b), "adapt --%s defaults to %s, the demo to %s", shared[i], ok ? b : "?", ok ? a : "?");
    }
    char t[64], f[64], e[64], s[64];
    int ok = default_of(demo, "transfer-epochs", t, sizeof t) && default_of(demo, "finetune-epochs", f, sizeof f) &&
             default_of(fine, "epochs", e, sizeof e) && default_of(fine, "seeds", s, sizeof s) &&
             default_of(demo, "seeds", a, sizeof a);
    CHECK(ok && atoi(e) == atoi(t) + atoi(f) && !strcmp(s, a),
          "finetune defaults to as many epochs as the demo's transfer + finetuning (%s + %s = %s?) and its seeds",
          ok ? t : "?", ok ? f : "?", ok ? e : "?");
    EXPECT(2, "adapt s.nta --seeds 0", "--seeds must be in 1..100");
    EXPECT(2, "finetune s.nta --seeds 101", "--seeds must be in 1..100");
    /* pretrain's weight decay and epochs depend on the objective, however it is given */
    const char *ssl[] = {"pretrain --help", "pretrain --objective ssl --help", "pretrain --objective=ssl --help",
                         "pretrain --objective ssl --objective supervised --help"};
    const char *want[] = {"5e-5", "1e-5", "1e-5", "5e-5"}, *want_epochs[] = {"6", "7", "7", "6"};
    for (int i = 0; i < 4; i++) {
        nta(ssl[i]);
        ok = default_of(out, "wd", a, sizeof a) && default_of(out, "epochs", e, sizeof e);
        CHECK(ok && !strcmp(a, want[i]) && !strcmp(e, want_epochs[i]),
              "nta %s: --wd and --epochs default to %s, %s (want %s, %s)", ssl[i], ok ? a : "?", ok ? e : "?",
              want[i], want_epochs[i]);
    }
}

static void test_end_to_end(void)
{
    char args[1024], model[256], bad[256];
    char img[256], lab[256];
    const char *names[3][2] = {{"tr-img", "tr-lab"}, {"te-img", "te-lab"}, {"te3-img", "te3-lab"}};
    int count[3] = {240, 64, 64}, classes[3] = {4, 4, 3};
    for (int i = 0; i < 3; i++) {
        snprintf(img, sizeof img, "%s/%s", dir, names[i][0]);
        snprintf(lab, sizeof lab, "%s/%s", dir, names[i][1]);
        test_write_dataset(img, lab, count[i], classes[i], (uint64_t)i + 1);
    }
    snprintf(model, sizeof model, "%s/m.nta", dir);
    snprintf(args, sizeof args,
             "train --data idx:%s/tr-img,%s/tr-lab,%s/te-img,%s/te-lab --epochs 5 --batch 16 "
             "--val 32 --lr 0.05 -o %s", dir, dir, dir, dir, model);
    EXPECT(0, args, "test accuracy");
    CHECK(strstr(out, "epoch 5: val accuracy ") && strstr(out, "img/s ETA"), "training prints progress:\n%s", out);
    double acc = -1;
    const char *t = strstr(out, "test accuracy ");
    if (t) acc = atof(t + 14);
    CHECK(acc >= 90, "4 corner squares are easy: test accuracy %.1f%%", acc);

    snprintf(args, sizeof args, "eval %s --data idx:%s/tr-img,%s/tr-lab,%s/te-img,%s/te-lab", model,
             dir, dir, dir, dir);
    EXPECT(0, args, "test accuracy");
    double acc2 = -1;
    t = strstr(out, "test accuracy ");
    if (t) acc2 = atof(t + 14);
    CHECK(acc2 == acc, "eval reproduces the accuracy train reported: %.2f vs %.2f", acc2, acc);

    /* predict: one CSV line per test image, and eval's accuracy */
    snprintf(args, sizeof args, "predict %s --data idx:%s/tr-img,%s/tr-lab,%s/te-img,%s/te-lab -o %s/p.csv", model,
             dir, dir, dir, dir, dir);
    EXPECT(0, args, "predict: 64 test images");
    t = strstr(out, "accuracy ");
    CHECK(t && atof(t + 9) == acc, "predict's accuracy is eval's (%.2f):\n%s", acc, out);
    snprintf(args, sizeof args, "test $(wc -l < %s/p.csv) = 65 && head -n 1 %s/p.csv | grep -qx 'index,label,class,p_0,p_1,p_2,p_3' "
             "&& sed -n 2p %s/p.csv | grep -q '^0,[0-3],[0-3],'", dir, dir, dir);
    CHECK(test_run(args) == 0, "predict writes a header and one line per test image (%s/p.csv)", dir);
    snprintf(args, sizeof args, "predict %s --task mnist-retrieval", model);
    EXPECT(2, args, "a retrieval task has no class or value per image");

    /* demo: a task whose files are missing ends it before any work, the earlier tasks' included */
    snprintf(args, sizeof args, "demo --dir %s/d --val 50 --tasks classify:idx:%s/tr-img,%s/tr-lab,classify:idx:%s/no-img,%s/no-lab",
             dir, dir, dir, dir, dir);
    EXPECT(1, args, "/no-img: cannot open");
    snprintf(args, sizeof args, "test ! -e %s/d", dir);
    CHECK(test_run(args) == 0, "the demo stopped before making its folder");

    /* a model whose file was damaged, and data the model does not fit */
    snprintf(bad, sizeof bad, "%s/bad.nta", dir);
    snprintf(args, sizeof args, "head -c 3000 %s > %s", model, bad);
    test_run(args);
    snprintf(args, sizeof args, "eval %s --data idx:%s/tr-img,%s/tr-lab", bad, dir, dir);
    EXPECT(1, args, "corrupt or truncated");
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/te3-lab --epochs 1", dir, dir);
    EXPECT(1, args, "te3-lab");
    /* options that do not fit the data's size: exit 2 too */
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/tr-lab --epochs 1 --val 240", dir, dir);
    EXPECT(2, args, "--val 240 must be at least 0 and below the 200 training images");
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/tr-lab --epochs 1 --val 0 --batch 512", dir, dir);
    EXPECT(2, args, "--batch 512 is larger than the 200 training images");

    /* a run that diverges stops with a message and writes nothing */
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/tr-lab --epochs 2 --batch 16 --val 0 --lr 1e30 -o %s/nan.nta",
             dir, dir, dir);
    EXPECT(1, args, "training diverged");
    snprintf(bad, sizeof bad, "%s/nan.nta", dir);
    CHECK(access(bad, F_OK) != 0, "a diverged run saved no model");
    /* a resumed run must repeat the settings of the run it continues */
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/tr-lab --epochs 2 --stop-after 1 --batch 16 --val 0 -o %s/ck.nta",
             dir, dir, dir);
    EXPECT(0, args, "continue with --resume");
    snprintf(args, sizeof args, "train --data idx:%s/tr-img,%s/tr-lab --epochs 2 --batch 16 --val 0 --lr 0.2 --resume %s/ck.nta -o %s/ck.nta",
             dir, dir, dir, dir);
    EXPECT(1, args, "written by a run with other settings");
}

void test_cli(void)
{
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot make a temporary directory");
        return;
    }
    test_options();
    test_hostile_options();
    test_defaults();
    test_end_to_end();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}
