/* eval.c: nta eval. A model's metric on a test split, or a supernet's
 * sub-architectures' (each after BN recalibration), and how the metric ranks
 * with cost (Spearman's rank correlation).
 */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Ranks of x[n] (1-based; ties share their mean rank). */
static void ranks(double *r, const double *x, int n)
{
    for (int i = 0; i < n; i++) {
        int below = 0, same = 0;
        for (int j = 0; j < n; j++) below += x[j] < x[i], same += x[j] == x[i];
        r[i] = below + (same + 1) / 2.0;
    }
}

double eval_spearman(const double *a, const double *b, int n)
{
    double *ra = nta_malloc((size_t)n * sizeof(double)), *rb = nta_malloc((size_t)n * sizeof(double));
    double sab = 0, saa = 0, sbb = 0, m = (n + 1) / 2.0;
    ranks(ra, a, n), ranks(rb, b, n);
    for (int i = 0; i < n; i++)
        sab += (ra[i] - m) * (rb[i] - m), saa += (ra[i] - m) * (ra[i] - m), sbb += (rb[i] - m) * (rb[i] - m);
    free(ra), free(rb);
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/* One scored architecture. */
typedef struct { Arch arch; double metric, second, mflops; } Scored;

/* In order of cost (stable: equal costs keep their order). */
static void sort_by_mflops(Scored *s, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j].mflops < s[j - 1].mflops; j--) {
            Scored t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
}

/* The architectures to score: the one named by --arch, or --random ones
 * (uniform, or one per MFLOPs bin with --spread). */
static void pick(Scored *s, int n, const NetDesc *d, const EvalCfg *c, Rng *r)
{
    char err[512];
    for (int i = 0; i < n; i++) {
        if (c->random && c->spread) s[i].arch = search_arch_in_bin(d, r, i, n);
        else if (arch_named(d, c->random ? "random" : c->arch, r, &s[i].arch, err, sizeof err))
            nta_die_option("--arch: %s", err);
    }
}

static void print_table(const Scored *s, int n, const NetDesc *d, const DataSplits *data, const EvalCfg *c)
{
    char text[512], m[128];
    int super = d->space.nk > 0;
    for (int i = 0; i < n && !c->random; i++) {
        NetDesc sd = arch_standalone(d, &s[i].arch);
        arch_format(d, &s[i].arch, text, sizeof text);
        printf("%s on %s: test %s on %d images; %.2f MFLOPs, %zu params%s%s\n", c->model, data->name,
               task_format_metric(m, sizeof m, data, s[i].metric, s[i].second), data->test.n, s[i].mflops,
               net_params(&sd), super ? "; architecture " : "", super ? text : "");
    }
    if (!c->random) return;
    printf("%s on %s, %d test images, BN recalibrated per architecture:\n  %8s %8s %9s  %s\n", c->model,
           data->name, data->test.n, task_metric_name(data), "MFLOPs", "params", "architecture");
    double *metric = nta_malloc((size_t)n * sizeof(double)), *cost = nta_malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        NetDesc sd = arch_standalone(d, &s[i].arch);
        arch_format(d, &s[i].arch, text, sizeof text);
        printf("  %8.2f %8.2f %9zu  %s\n", s[i].metric, s[i].mflops, net_params(&sd), text);
        metric[i] = s[i].metric, cost[i] = s[i].mflops;
    }
    if (n > 2) printf("rank correlation of the metric with MFLOPs (Spearman): %.2f\n", eval_spearman(metric, cost, n));
    free(metric), free(cost);
}

int eval_run(const EvalCfg *c, const Backend *be)
{
    char err[512];
    DataSplits d;
    if (*c->task) data_task(&d, c->task, 0, 0, c->limit, 1);
    else data_load(&d, c->data, 0, c->limit, 1);
    Net *net = net_load(c->model, task_loss(&d), be, c->batch, err, sizeof err);
    if (!net) nta_die("%s", err);
    const NetDesc *nd = net_desc(net);
    task_check_net(nd, &d, c->model);
    net_norm(net, d.mean, d.std);             /* the model's own input normalisation, if it has one */
    int super = nd->space.nk > 0;
    Rng r;
    rng_seed(&r, (uint64_t)c->seed);
    int n = c->random ? c->random : 1;
    Scored *s = nta_calloc((size_t)n, sizeof *s);
    pick(s, n, nd, c, &r);
    for (int i = 0; i < n; i++) {
        NetDesc sd = arch_standalone(nd, &s[i].arch);
        s[i].metric = super ? task_score_arch(net, &d, &d.test, &s[i].arch, c->calib, (uint64_t)c->seed, &s[i].second)
                            : task_score(net, &d, &d.test, &s[i].second);
        s[i].mflops = 1e-6 * net_flops(&sd);
    }
    sort_by_mflops(s, n);
    print_table(s, n, nd, &d, c);
    free(s);
    net_free(net);
    data_free(&d);
    return 0;
}
