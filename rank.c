/* rank.c: nta rank. How well does the search's fitness rank architectures?
 *
 * On one task: neural transfer as adapt does it, then N architectures spread
 * evenly in MFLOPs from the smallest to the budget. Each is scored by the
 * search's fitness and by the alternatives below, then finetuned as NTAA
 * finetunes its winner (--finetune-epochs, --seeds) and scored on the test
 * split: the truth the fitness should predict. The table gives, per fitness,
 * Spearman's rank correlation with the finetuned test metric and what it
 * costs per candidate. Two rows bound it: MFLOPs alone (what a fitness must
 * beat to be worth computing), and with two seeds or more, the finetuned
 * metric of seed SEED against seed SEED+1 (how much of the ranking is noise).
 */
#define _POSIX_C_SOURCE 200809L
#include "eval.h"
#include "ntaa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FIT_SEARCH, FIT_CALIB5, FIT_REPEAT3, FIT_LOSS, FIT_EPOCH1, FIT_LINEAR, FIT_LINEAR_LOO, NFIT };

static const char *const fit_name[NFIT] = {
    "validation metric after BN recalibration on --calib batches (the search's fitness)",
    "the same, recalibrated on 5x --calib batches",
    "the same, mean over 3 recalibrations (seeds SEED..SEED+2)",
    "validation cross-entropy (classification kinds only)",
    "validation metric after 1 epoch of finetuning",
    "linear evaluation: a ridge head on the frozen pooled features, validation metric (eval --linear 1)",
    "linear evaluation in one training-mode pass, leave-one-out metric on the training split (adapt --fitness linear)",
};

/* An architecture of d at MFLOPs in bin i of n between the smallest and
 * `budget`; the bin's nearest end when no random draw lands in it. */
static Arch arch_in_budget_bin(const NetDesc *d, Rng *r, int i, int n, double budget)
{
    Arch lo = arch_smallest(d);
    double a = search_mflops(d, &lo), w = (budget - a) / n;
    for (int t = 0; t < 1000000; t++) {
        Arch x = arch_random(d, r);
        double f = search_mflops(d, &x);
        if (f >= a + i * w && f <= a + (i + 1) * w) return x;
    }
    return lo;
}

/* Mean cross-entropy of the active architecture on split s (natural log), from
 * its logits out [s->n, L] and the split's labels. */
static double val_xent(Net *net, const DataSplits *d, const Dataset *s)
{
    int L = net->d.classes;
    float *pooled = nta_malloc((size_t)s->n * net->d.head_c * sizeof(float));
    float *out = nta_malloc((size_t)s->n * L * sizeof(float));
    task_features(net, d, s, pooled, out);
    double sum = 0;
    for (int i = 0; i < s->n; i++) {
        const float *z = out + (size_t)i * L;
        double m = z[0], e = 0;
        for (int j = 1; j < L; j++) m = fmax(m, z[j]);
        for (int j = 0; j < L; j++) e += exp(z[j] - m);
        sum += m + log(e) - z[s->label[i]];
    }
    free(pooled), free(out);
    return sum / s->n;
}

/* Every fitness of architecture x of the transferred supernet into fit[NFIT]
 * (FIT_*; higher is better, NAN where one does not apply), and the seconds
 * each took into secs[NFIT]. */
static void fitnesses(Net *super, const DataSplits *d, const AdaptCfg *a, const Arch *x, double *fit, double *secs)
{
    uint64_t seed = (uint64_t)a->train.seed;
    int calib = a->train.calib;
    double t = nta_now();
    fit[FIT_SEARCH] = task_fitness(d, task_score_arch(super, d, &d->val, x, calib, seed, NULL));
    secs[FIT_SEARCH] = nta_now() - t, t = nta_now();
    fit[FIT_CALIB5] = task_fitness(d, task_score_arch(super, d, &d->val, x, 5 * calib, seed, NULL));
    secs[FIT_CALIB5] = nta_now() - t, t = nta_now();
    fit[FIT_REPEAT3] = 0;
    for (int k = 0; k < 3; k++) fit[FIT_REPEAT3] += task_fitness(d, task_score_arch(super, d, &d->val, x, calib, seed + k, NULL)) / 3;
    secs[FIT_REPEAT3] = nta_now() - t, t = nta_now();
    int classify = d->kind != TASK_REGRESS && d->kind != TASK_RETRIEVE;
    fit[FIT_LOSS] = NAN, secs[FIT_LOSS] = NAN;
    if (classify) {
        net_set_arch(super, x);
        net_recalibrate(super, d, calib, seed);
        fit[FIT_LOSS] = -val_xent(super, d, &d->val);
        secs[FIT_LOSS] = nta_now() - t;
    }
    t = nta_now();
    Net *model = ntaa_inherit(super, d, a, x);
    net_set_norm(model, d->mean, d->std);
    TrainCfg c = a->train;
    c.epochs = 1, c.out = "", c.stop_after = 0, c.keep_best = 0;
    train_fit(model, d, &c, SAMPLE_FIXED, 0);
    fit[FIT_EPOCH1] = task_fitness(d, task_score(model, d, &d->val, NULL));
    net_free(model);
    secs[FIT_EPOCH1] = nta_now() - t, t = nta_now();
    fit[FIT_LINEAR] = fit[FIT_LINEAR_LOO] = secs[FIT_LINEAR] = secs[FIT_LINEAR_LOO] = NAN;
    if (d->kind != TASK_UDA) {
        fit[FIT_LINEAR] = task_fitness(d, linear_eval_arch(super, d, &d->val, x, calib, seed, NULL));
        secs[FIT_LINEAR] = nta_now() - t, t = nta_now();
        fit[FIT_LINEAR_LOO] = task_fitness(d, linear_fitness_arch(super, d, x));
        secs[FIT_LINEAR_LOO] = nta_now() - t;
    }
}

/* Run k's test metric: the mean of its items (r->items [runs, nitems]; task_score_items). */
static double run_metric(const ReportRow *r, int k)
{
    double s = 0;
    for (int i = 0; i < r->nitems; i++) s += r->items[(size_t)k * r->nitems + i];
    return s / r->nitems;
}

int ntaa_rank(const char *supernet, const AdaptCfg *a, const Backend *be, int n)
{
    DataSplits d;
    ntaa_load_task(&d, a);
    Net *super = ntaa_transfer(supernet, be, &d, a);
    const NetDesc *nd = net_desc(super);
    int seeds = a->seeds > 1 ? a->seeds : 1;
    double *fit = nta_malloc((size_t)n * NFIT * sizeof(double)), secs[NFIT], cost[NFIT] = {0};
    double *truth = nta_malloc((size_t)n * sizeof(double)), *mflops = nta_malloc((size_t)n * sizeof(double));
    double *s0 = nta_malloc((size_t)n * sizeof(double)), *s1 = nta_malloc((size_t)n * sizeof(double));
    Rng r;
    rng_seed(&r, (uint64_t)a->train.seed);
    for (int i = 0; i < n; i++) {
        Arch x = arch_in_budget_bin(nd, &r, i, n, a->search.budget_mflops);
        char text[512], m[128];
        arch_format(nd, &x, text, sizeof text);
        mflops[i] = search_mflops(nd, &x);
        printf("== architecture %d of %d: %s, %.2f MFLOPs\n", i + 1, n, text, mflops[i]);
        fitnesses(super, &d, a, &x, fit + (size_t)i * NFIT, secs);
        for (int f = 0; f < NFIT; f++) cost[f] += secs[f] / n;
        Net *model = ntaa_inherit(super, &d, a, &x);
        TrainCfg tc = a->train;
        tc.searched = 1;
        ReportRow row;
        ntaa_finetune(model, &d, &tc, seeds, "finetuned", text, nta_now(), &row);
        net_free(model);
        truth[i] = task_fitness(&d, row.metric);
        s0[i] = task_fitness(&d, run_metric(&row, 0));
        s1[i] = seeds > 1 ? task_fitness(&d, run_metric(&row, 1)) : NAN;
        printf("architecture %d: search fitness %.4f, finetuned test %s\n", i + 1, fit[(size_t)i * NFIT],
               task_format_metric(m, sizeof m, &d, row.metric, row.second));
        free(row.items);
    }
    printf("\nfitness ranking on %s: %d architectures, %.2f to %.2f MFLOPs (budget %.2f), each finetuned %d epochs "
           "with %d seed%s (the truth: their mean test %s)\n\n",
           a->task, n, mflops[0], mflops[n - 1], a->search.budget_mflops, a->train.epochs, seeds,
           seeds > 1 ? "s" : "", task_metric_name(&d));
    printf("| fitness | Spearman with the finetuned test metric | seconds per candidate |\n|---|---:|---:|\n");
    double *col = nta_malloc((size_t)n * sizeof(double));
    for (int f = 0; f < NFIT; f++) {
        for (int i = 0; i < n; i++) col[i] = fit[(size_t)i * NFIT + f];
        if (isnan(col[0])) continue;
        printf("| %s | %.2f | %.2f |\n", fit_name[f], eval_spearman(col, truth, n), cost[f]);
    }
    printf("| MFLOPs alone | %.2f | 0 |\n", eval_spearman(mflops, truth, n));
    if (seeds > 1)
        printf("| the finetuned test metric of seed %d against seed %d (the ceiling: the truth's own noise) | %.2f | |\n",
               a->train.seed, a->train.seed + 1, eval_spearman(s0, s1, n));
    free(col), free(fit), free(truth), free(mflops), free(s0), free(s1);
    net_free(super);
    data_free(&d);
    return 0;
}
