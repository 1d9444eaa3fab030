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

/* What predict runs: a model, by the generic kernels or (on a GPU) the
 * specialised ones, or an exported model, by the specialised kernels on a
 * GPU or else on the CPU (rtc_net_forward_cpu) */
typedef struct {
    Net *net;
    RtcRun *run;
    RtcNet *exported;
    float *act;             /* the exported model's activations [nact] (CPU) */
    const Backend *be;      /* on a GPU, the exported model's input and */
    float *x_dev, *z_dev;   /* logits there [B,H,W,C], [B,L] */
    int mode;
    FILE *say;
} Predictor;

/* The logits z [b,L] of images idx[0..b) of s (x [B,H,W,C], y [B]: scratch) */
static void predict_batch(Predictor *p, const DataSplits *d, const Dataset *s, const int *idx, int b, float *x,
                          int32_t *y, float *z, int L)
{
    if (p->exported) {
        data_batch(d, s, idx, b, x, y, NULL);
        char why[512];
        if (p->run) {         /* on the GPU: the whole batch up, the logits down */
            const Backend *be = p->be;
            be->upload(p->x_dev, x, p->exported->nin * sizeof(float));
            if (!rtc_run_forward(p->run, p->z_dev, p->x_dev, why, sizeof why)) {
                be->download(z, p->z_dev, (size_t)b * L * sizeof(float));
                return;
            }
            if (p->mode == RTC_STRICT) nta_die("specialised kernels (NTA_RTC=strict): %s", why);
            fprintf(p->say, "nta: specialised kernels stopped: %s; running the exported model on the CPU\n", why);
            rtc_run_close(p->run);
            p->run = NULL;
        }
        memcpy(z, rtc_net_forward_cpu(p->exported, p->act, x), (size_t)b * L * sizeof(float));
        return;
    }
    task_batch(p->net, d, s, idx, b, x, y, NULL);
    forward(p->net, b, &p->run, p->mode, p->say);
    net_backend(p->net)->download(z, p->net->logits, (size_t)b * L * sizeof(float));
}

/* An exported model for d: its input is d's images, its outputs enough */
static RtcNet *exported_for(const char *path, const DataSplits *d, int B)
{
    char err[512];
    RtcNet *r = rtc_export_read(path, B, err, sizeof err);
    if (!r) nta_die("%s", err);
    const RtcLayer *in = &r->L[0], *last = &r->L[r->n - 1];
    const Dataset *s = &d->test;
    if (in->H != s->h || in->W != s->w || in->Ci != s->c)
        nta_die_option("%s takes %dx%dx%d images; %s has %dx%dx%d", path, in->H, in->W, in->Ci, d->name, s->h, s->w,
                       s->c);
    int need = d->kind == TASK_REGRESS ? 1 : task_outputs(d);
    if (d->kind == TASK_REGRESS ? last->Co != 1 : last->Co < need)
        nta_die_option("%s has %d outputs; %s needs %s%d", path, last->Co, d->name,
                       d->kind == TASK_REGRESS ? "" : "at least ", need);
    return r;
}

int eval_predict(const EvalCfg *c, const char *out, const Backend *be)
{
    char err[512];
    DataSplits d;
    if (*c->task) data_task(&d, c->task, 0, 0, c->limit, 1);
    else data_load(&d, c->data, 0, c->limit, 1);
    if (d.kind == TASK_RETRIEVE)
        nta_die_option("predict writes a class or a value per image; a retrieval task has neither (use nta eval)");
    FILE *f = *out ? fopen(out, "w") : stdout;
    if (!f) nta_die("cannot write %s: %s", out, strerror(errno));
    FILE *say = f == stdout ? stderr : stdout;
    Predictor p = {.mode = c->rtc_mode, .say = say};
    int B = c->batch, L;
    if (rtc_export_is(c->model)) {
        p.exported = exported_for(c->model, &d, B);
        if (p.exported->norm_set) memcpy(d.mean, p.exported->norm_mean, sizeof d.mean), memcpy(d.std, p.exported->norm_std, sizeof d.std);
        p.act = nta_malloc(p.exported->nact * sizeof(float));
        L = p.exported->L[p.exported->n - 1].Co;
        p.run = rtc_prepare_built(p.exported, be, c->rtc_dev, c->rtc_mode, c->cache, "the exported model on the CPU",
                                  say);
        if (p.run) {
            p.be = be;
            p.x_dev = be->alloc(p.exported->nin * sizeof(float));
            p.z_dev = be->alloc((size_t)B * L * sizeof(float));
        }
    } else {
        p.net = net_load(c->model, task_loss(&d), be, B, err, sizeof err);
        if (!p.net) nta_die("%s", err);
        const NetDesc *nd = net_desc(p.net);
        if (nd->space.nk > 0) nta_die_option("%s is a supernet; predict takes a model (adapt's or finetune's)", c->model);
        task_check_net(nd, &d, c->model);
        net_norm(p.net, d.mean, d.std);
        L = nd->classes;
        p.run = rtc_prepare(p.net, B, c->rtc_dev, c->rtc_mode, c->cache, say);
    }
    if (d.kind == TASK_REGRESS) L = 1;
    const Dataset *s = &d.test;
    fprintf(f, d.kind == TASK_REGRESS ? "index,target,prediction\n" : "index,label,class");
    for (int j = 0; d.kind != TASK_REGRESS && j < L; j++) fprintf(f, ",p_%d", j);
    if (d.kind != TASK_REGRESS) fputc('\n', f);
    float *x = nta_calloc((size_t)B * s->h * s->w * s->c, sizeof(float)), *z = nta_malloc((size_t)B * L * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    int *idx = nta_malloc((size_t)B * sizeof(int));
    long right = 0;
    double abs_err = 0;
    for (int i = 0; i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B;
        for (int j = 0; j < b; j++) idx[j] = i + j;
        predict_batch(&p, &d, s, idx, b, x, y, z, L);
        predict_rows(f, &d, s, i, z, b, L, &right, &abs_err);
    }
    if (f != stdout && fclose(f)) nta_die("cannot write %s: %s", out, strerror(errno));
    if (d.kind == TASK_REGRESS)
        fprintf(say, "predict: %d test images of %s; MAE %.2f degrees\n", s->n, d.name,
                s->n ? DATA_ROT_MAX * abs_err / s->n : 0);
    else
        fprintf(say, "predict: %d test images of %s; accuracy %.2f%%\n", s->n, d.name,
                s->n ? 100.0 * right / s->n : 0);
    free(x), free(z), free(y), free(idx), free(p.act);
    rtc_run_close(p.run);
    if (p.x_dev) p.be->free(p.x_dev), p.be->free(p.z_dev);
    rtc_net_free(p.exported);
    net_free(p.net);
    data_free(&d);
    return 0;
}

/* ----------------------------------------------------------------- export */

int eval_export(const char *model, const char *out)
{
    char err[512];
    Net *net = net_load(model, LOSS_XENT, &cpu_backend, 1, err, sizeof err);
    if (!net) nta_die("%s", err);
    if (net_desc(net)->space.nk > 0) nta_die_option("%s is a supernet; export takes a model (adapt's or finetune's)", model);
    RtcNet *r = rtc_net_build(net, 1, err, sizeof err);
    if (!r) nta_die_option("%s: %s", model, err);
    if (rtc_export_write(r, out, err, sizeof err)) nta_die("%s", err);
    printf("export: %s: %d layers (batchnorm folded), %zu parameters, to %s\n", model, r->n, r->nparam, out);
    rtc_net_free(r);
    net_free(net);
    return 0;
}

/* ------------------------------------------------------------------ bench */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds of one inference pass of B images, the median of reps after
 * 3 untimed ones; each pass ends with a 4-byte download (a GPU's queue
 * drained; on the CPU a copy) */
static double time_passes(Net *net, RtcRun *run, int B, int reps)
{
    const Backend *be = net_backend(net);
    double *t = nta_malloc((size_t)reps * sizeof *t);
    char why[256];
    for (int i = -3; i < reps; i++) {
        double t0 = nta_now();
        if (run) {
            if (rtc_run_forward(run, net->logits, net->x_in, why, sizeof why)) nta_die("bench: %s", why);
        } else {
            net_forward(net, B, 0);
        }
        float sync;
        be->download(&sync, net->logits, sizeof sync);
        if (i >= 0) t[i] = nta_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

/* A model at batch B on be, with random inputs in [-2, 2) (seeded) */
static Net *bench_net(const char *model, const Backend *be, int B)
{
    char err[512];
    Net *net = net_load(model, LOSS_XENT, be, B, err, sizeof err);
    if (!net) nta_die("%s", err);
    if (net_desc(net)->space.nk > 0) nta_die_option("%s is a supernet; bench takes a model (adapt's or finetune's)", model);
    const NetDesc *d = net_desc(net);
    size_t n = (size_t)B * d->in_h * d->in_w * d->in_c;
    float *x = nta_malloc(n * sizeof(float));
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++) x[i] = 4 * rng_uniform(&r) - 2;
    be->upload(net->x_in, x, n * sizeof(float));
    free(x);
    return net;
}

static void bench_row(const char *what, int B, double sec)
{
    printf("%-34s %6d %12.3f %12.0f\n", what, B, 1e3 * sec, B / sec);
}

/* Per part of the network as net_forward_timed counts them (stem, each
 * block, head with pool and fc) at batch B: the median over c->reps passes
 * of its milliseconds by the generic kernels and by the specialised ones,
 * each layer waited for (so launch gaps count, as in a real pass) */
static void bench_parts(const EvalCfg *c, Net *net, RtcRun *run, int B)
{
    const NetDesc *d = net_desc(net);
    const RtcNet *rn = rtc_run_net(run);
    int np = d->nblocks + 2, reps = c->reps;
    double *gen = nta_calloc((size_t)np * reps, sizeof *gen), *spec = nta_calloc((size_t)np * reps, sizeof *spec);
    double *sec = nta_malloc((size_t)(np > rn->n ? np : rn->n) * sizeof *sec), *col = nta_malloc((size_t)reps * sizeof *col);
    char why[256];
    for (int r = 0; r < reps; r++) {      /* gen, spec [np][reps] */
        net_forward_timed(net, B, sec);
        for (int p = 0; p < np; p++) gen[(size_t)p * reps + r] = sec[p];
        if (rtc_run_forward_timed(run, net->logits, net->x_in, sec, why, sizeof why)) nta_die("bench: %s", why);
        for (int i = 0; i < rn->n; i++) spec[(size_t)rn->part[i] * reps + r] += sec[i];
    }
    printf("\nper part at batch %d, ms (median of %d): generic, specialised\n", B, reps);
    double tg = 0, ts = 0;
    for (int p = 0; p < np; p++) {
        if (p > 0 && p <= d->nblocks && !net->on[p - 1]) continue;
        double m[2];
        for (int k = 0; k < 2; k++) {
            memcpy(col, (k ? spec : gen) + (size_t)p * reps, (size_t)reps * sizeof *col);
            qsort(col, (size_t)reps, sizeof *col, cmp_double);
            m[k] = 1e3 * col[reps / 2];
        }
        char what[64];
        if (p == 0) snprintf(what, sizeof what, "stem");
        else if (p > d->nblocks) snprintf(what, sizeof what, "head, pool, linear");
        else snprintf(what, sizeof what, "block %d k%de%d s%d -> %d", p - 1, d->blk[p - 1].k, d->blk[p - 1].e,
                      d->blk[p - 1].s, d->blk[p - 1].co);
        printf("  %-32s %10.4f %10.4f\n", what, m[0], m[1]);
        tg += m[0], ts += m[1];
    }
    printf("  %-32s %10.4f %10.4f\n", "sum of the parts", tg, ts);
    free(gen), free(spec), free(sec), free(col);
}

int eval_bench(const EvalCfg *c, const Backend *be, const char *no_gpu)
{
    int batches[2] = {1, c->batch}, nb = c->batch == 1 ? 1 : 2;
    printf("%-34s %6s %12s %12s\n", "kernels", "batch", "ms/pass", "images/s");
    for (int k = 0; k < nb; k++) {
        int B = batches[k];
        if (be != &cpu_backend) {
            Net *net = bench_net(c->model, be, B);
            bench_row("cuda, generic", B, time_passes(net, NULL, B, c->reps));
            RtcRun *run = rtc_prepare(net, B, c->rtc_dev, c->rtc_mode, c->cache, stdout);
            if (run) bench_row("cuda, specialised (NVRTC)", B, time_passes(net, run, B, c->reps));
            else printf("%-34s %6d %12s %12s\n", "cuda, specialised (NVRTC)", B, "-", "-");
            if (run && k == nb - 1) bench_parts(c, net, run, B);
            rtc_run_close(run);
            net_free(net);
        }
        Net *net = bench_net(c->model, &cpu_backend, B);
        char what[64];
        snprintf(what, sizeof what, "cpu, %d thread%s", cpu_threads(), cpu_threads() == 1 ? "" : "s");
        bench_row(what, B, time_passes(net, NULL, B, c->reps));
        net_free(net);
    }
    if (no_gpu) printf("no GPU here (%s): the CPU backend alone was timed\n", no_gpu);
    return 0;
}
