/* eval.c: nta eval. A model's metric on a test split, or a supernet's
 * sub-architectures' (each after BN recalibration), and how the metric ranks
 * with cost (Spearman's rank correlation). With --linear 1, the metric of
 * linear evaluation (linear.c) instead, beside its floors. nta predict: a
 * model's output for every test image.
 */
#include "eval.h"

#include <errno.h>
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
        printf("%s on %s: %stest %s on %d images; %.2f MFLOPs, %zu params%s%s\n", c->model, data->name,
               c->linear ? "linear evaluation, " : "", task_format_metric(m, sizeof m, data, s[i].metric, s[i].second),
               data->test.n, s[i].mflops, net_params(&sd), super ? "; architecture " : "", super ? text : "");
    }
    if (!c->random) return;
    printf("%s on %s, %d test images, BN recalibrated per architecture%s:\n  %8s %8s %9s  %s\n", c->model,
           data->name, data->test.n, c->linear ? ", linear evaluation" : "", task_metric_name(data), "MFLOPs",
           "params", "architecture");
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

/* Linear evaluation's floors, by the same protocol on the same splits: the
 * raw pixels, and architecture a with random weights (from --seed). */
static void print_floors(const Net *net, const DataSplits *d, const Arch *a, const EvalCfg *c)
{
    char m1[128], m2[128];
    double s1, s2, pix = linear_floor_pixels(d, &d->test, &s1);
    double rnd = linear_floor_random(net, d, &d->test, a, c->calib, (uint64_t)c->seed, &s2);
    printf("floors, by the same protocol: raw pixels: test %s; the same architecture with random weights: test %s\n",
           task_format_metric(m1, sizeof m1, d, pix, s1), task_format_metric(m2, sizeof m2, d, rnd, s2));
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
    if (c->linear) task_check_images(nd, &d, c->model);    /* the model's own head plays no part */
    else task_check_net(nd, &d, c->model);
    net_norm(net, d.mean, d.std);             /* the model's own input normalisation, if it has one */
    int super = nd->space.nk > 0;
    NetDesc cost = *nd;                       /* what is counted: with linear evaluation, its head */
    if (c->linear) cost.mlp = 0, cost.classes = d.kind == TASK_REGRESS ? 1 : task_outputs(&d);
    Rng r;
    rng_seed(&r, (uint64_t)c->seed);
    int n = c->random ? c->random : 1;
    Scored *s = nta_calloc((size_t)n, sizeof *s);
    pick(s, n, nd, c, &r);
    for (int i = 0; i < n; i++) {
        NetDesc sd = arch_standalone(&cost, &s[i].arch);
        if (c->linear && super)
            s[i].metric = linear_eval_arch(net, &d, &d.test, &s[i].arch, c->calib, (uint64_t)c->seed, &s[i].second);
        else if (c->linear)
            s[i].metric = linear_eval(net, &d, &d.test, &s[i].second);
        else if (super)
            s[i].metric = task_score_arch(net, &d, &d.test, &s[i].arch, c->calib, (uint64_t)c->seed, &s[i].second);
        else
            s[i].metric = task_score(net, &d, &d.test, &s[i].second);
        s[i].mflops = 1e-6 * net_flops(&sd);
    }
    sort_by_mflops(s, n);
    print_table(s, n, &cost, &d, c);
    if (c->linear && !c->random) print_floors(net, &d, &s[0].arch, c);
    free(s);
    net_free(net);
    data_free(&d);
    return 0;
}

/* ---------------------------------------------------------------- predict */

/* The class of logits z [L]: the first largest (as the losses count it right) */
static int arg_max(const float *z, int L)
{
    int best = 0;
    for (int j = 1; j < L; j++) if (z[j] > z[best]) best = j;
    return best;
}

/* One CSV line per image i0..i0+b-1 of s from its logits z [b,L]:
 * "index,label,class,p_0,..." (their softmax) or, for regression (L = 1),
 * "index,target,prediction" in degrees; counts the right ones into *right
 * and adds the absolute errors (in outputs' units) to *err. */
static void predict_rows(FILE *f, const DataSplits *d, const Dataset *s, int i0, const float *z, int b, int L,
                         long *right, double *err)
{
    for (int k = 0; k < b; k++) {
        const float *zr = z + (size_t)k * L;
        int i = i0 + k;
        if (d->kind == TASK_REGRESS) {
            double p = DATA_ROT_MAX * zr[0], t = DATA_ROT_MAX * s->value[i];
            fprintf(f, "%d,%.6g,%.6g\n", i, t, p);
            *err += fabs(zr[0] - s->value[i]);
            continue;
        }
        int c = arg_max(zr, L);
        double sum = 0;
        for (int j = 0; j < L; j++) sum += exp((double)zr[j] - zr[c]);
        fprintf(f, "%d,%d,%d", i, s->label[i], c);
        for (int j = 0; j < L; j++) fprintf(f, ",%.6g", exp((double)zr[j] - zr[c]) / sum);
        fputc('\n', f);
        *right += c == s->label[i];
    }
}

/* Inference of the first b images at net->x_in into net->logits: by the
 * specialised kernels when *run is set (they always compute the whole batch
 * they were built for; the images past b are left over and not read), else
 * by the generic ones. A failed launch is fatal in mode RTC_STRICT, else
 * said in one line, and the generic kernels take over. */
static void forward(Net *net, int b, RtcRun **run, int mode, FILE *say)
{
    char why[512];
    if (*run && rtc_run_forward(*run, net->logits, net->x_in, why, sizeof why)) {
        if (mode == RTC_STRICT) nta_die("specialised kernels (NTA_RTC=strict): %s", why);
        fprintf(say, "nta: specialised kernels stopped: %s; running the generic kernels\n", why);
        rtc_run_close(*run);
        *run = NULL;
    }
    if (!*run) net_forward(net, b, 0);
}

int eval_predict(const EvalCfg *c, const char *out, const Backend *be)
{
    char err[512];
    DataSplits d;
    if (*c->task) data_task(&d, c->task, 0, 0, c->limit, 1);
    else data_load(&d, c->data, 0, c->limit, 1);
    if (d.kind == TASK_RETRIEVE)
        nta_die_option("predict writes a class or a value per image; a retrieval task has neither (use nta eval)");
    Net *net = net_load(c->model, task_loss(&d), be, c->batch, err, sizeof err);
    if (!net) nta_die("%s", err);
    const NetDesc *nd = net_desc(net);
    if (nd->space.nk > 0) nta_die_option("%s is a supernet; predict takes a model (adapt's or finetune's)", c->model);
    task_check_net(nd, &d, c->model);
    net_norm(net, d.mean, d.std);
    FILE *f = *out ? fopen(out, "w") : stdout;
    if (!f) nta_die("cannot write %s: %s", out, strerror(errno));
    const Dataset *s = &d.test;
    int B = net->B, L = d.kind == TASK_REGRESS ? 1 : nd->classes;
    fprintf(f, d.kind == TASK_REGRESS ? "index,target,prediction\n" : "index,label,class");
    for (int j = 0; d.kind != TASK_REGRESS && j < L; j++) fprintf(f, ",p_%d", j);
    if (d.kind != TASK_REGRESS) fputc('\n', f);
    float *x = nta_malloc((size_t)B * s->h * s->w * s->c * sizeof(float)), *z = nta_malloc((size_t)B * L * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    int *idx = nta_malloc((size_t)B * sizeof(int));
    long right = 0;
    double abs_err = 0;
    FILE *say = f == stdout ? stderr : stdout;
    RtcRun *run = rtc_prepare(net, B, c->rtc_dev, c->rtc_mode, c->cache, say);
    for (int i = 0; i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B;
        for (int j = 0; j < b; j++) idx[j] = i + j;
        task_batch(net, &d, s, idx, b, x, y, NULL);
        forward(net, b, &run, c->rtc_mode, say);
        be->download(z, net->logits, (size_t)b * L * sizeof(float));
        predict_rows(f, &d, s, i, z, b, L, &right, &abs_err);
    }
    rtc_run_close(run);
    if (f != stdout && fclose(f)) nta_die("cannot write %s: %s", out, strerror(errno));
    if (d.kind == TASK_REGRESS)
        fprintf(say, "predict: %d test images of %s; MAE %.2f degrees\n", s->n, d.name,
                s->n ? DATA_ROT_MAX * abs_err / s->n : 0);
    else
        fprintf(say, "predict: %d test images of %s; accuracy %.2f%%\n", s->n, d.name,
                s->n ? 100.0 * right / s->n : 0);
    free(x), free(z), free(y), free(idx);
    net_free(net);
    data_free(&d);
    return 0;
}
