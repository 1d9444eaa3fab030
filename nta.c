/* nta.c: the command line. main() reads like a table of contents: find the
 * subcommand, parse its options from one table (the same table prints the
 * usage text and the resolved settings), run it.
 *
 *   nta train     train the reference network from scratch on a dataset
 *   nta pretrain  train a weight-sharing supernet (sandwich or uniform sampling)
 *   nta adapt     NTAA: transfer a supernet to a task, search its architecture, finetune
 *   nta finetune  the WP&F baseline (or, --from-scratch, classic NAS retraining)
 *   nta demo      pretrain (or reuse) a supernet, NTAA and the baselines on every task, a report
 *   nta eval      evaluate a model, or a supernet's sub-architectures, on a test split
 *   nta arch      print an architecture of the supernet layer by layer
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ options */

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR } OptType;

typedef struct {
    const char *name;   /* "epochs" for --epochs */
    OptType type;
    void *dst;          /* int *, float *, const char ** */
    const char *def;    /* default, as text: parsed at start, printed in usage */
    const char *help;
} Opt;

typedef struct {
    const char *name, *args, *summary;
    Opt *opts;
    int nopts;
} Command;

static void usage(const Command *c, FILE *f)
{
    fprintf(f, "usage: nta %s %s\n  %s\n\noptions:\n", c->name, c->args, c->summary);
    for (int i = 0; i < c->nopts; i++) {
        const Opt *o = &c->opts[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", o->name,
                 o->type == OPT_INT ? "N" : o->type == OPT_FLOAT ? "X" : "S");
        fprintf(f, "  %-20s %s (default: %s)\n", flag, o->help, *o->def ? o->def : "none");
    }
    fprintf(f, "  %-20s this text\n", "--help");
}

/* Parse text into an option's destination; returns 0 or -1 if malformed. */
static int opt_set(const Opt *o, const char *text)
{
    char *end;
    errno = 0;
    if (o->type == OPT_INT) {
        long v = strtol(text, &end, 10);
        if (errno || *end || end == text || v < -2147483647L || v > 2147483647L) return -1;
        *(int *)o->dst = (int)v;
    } else if (o->type == OPT_FLOAT) {
        float v = strtof(text, &end);
        if (errno || *end || end == text || !isfinite(v)) return -1;
        *(float *)o->dst = v;
    } else {
        *(const char **)o->dst = text;
    }
    return 0;
}

/* Apply defaults, then argv. Positional arguments are returned in pos[]. Exits
 * 0 on --help, 2 on a bad option. */
static int opts_parse(const Command *c, int argc, char **argv, const char **pos, int maxpos)
{
    int npos = 0;
    for (int i = 0; i < c->nopts; i++) opt_set(&c->opts[i], c->opts[i].def);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(c, stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-o") != 0) {
            if (npos == maxpos) {
                fprintf(stderr, "nta %s: unexpected argument '%s'\n", c->name, a);
                goto bad;
            }
            pos[npos++] = a;
            continue;
        }
        const char *name = !strcmp(a, "-o") ? "out" : a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const Opt *o = NULL;
        for (int j = 0; j < c->nopts; j++)
            if (strlen(c->opts[j].name) == len && !strncmp(c->opts[j].name, name, len)) o = &c->opts[j];
        if (!o) {
            fprintf(stderr, "nta %s: unknown option '%s'\n", c->name, a);
            goto bad;
        }
        const char *val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            fprintf(stderr, "nta %s: option --%s needs a value\n", c->name, o->name);
            goto bad;
        }
        if (opt_set(o, val) != 0) {
            fprintf(stderr, "nta %s: --%s expects %s, got '%s'\n", c->name, o->name,
                    o->type == OPT_INT ? "an integer" : "a number", val);
            goto bad;
        }
    }
    return npos;
bad:
    fprintf(stderr, "run 'nta %s --help' for the options\n", c->name);
    exit(2);
}

/* One line with every resolved setting, so a log says how it was run. */
static void opts_print(const Command *c)
{
    printf("nta %s:", c->name);
    for (int i = 0; i < c->nopts; i++) {
        const Opt *o = &c->opts[i];
        if (o->type == OPT_INT) printf(" %s=%d", o->name, *(int *)o->dst);
        else if (o->type == OPT_FLOAT) printf(" %s=%g", o->name, *(float *)o->dst);
        else printf(" %s=%s", o->name, **(const char **)o->dst ? *(const char **)o->dst : "none");
    }
    printf("\n");
}

/* Check a number is in range or exit 2 naming the option. */
static void need(int ok, const Command *c, const char *what)
{
    if (ok) return;
    fprintf(stderr, "nta %s: %s\nrun 'nta %s --help' for the options\n", c->name, what, c->name);
    exit(2);
}

/* --------------------------------------------------------- shared bits */

/* --device auto: CUDA when this nta has it (NTA_CUDA) and a GPU answers, else
 * the CPU with one line saying why; cuda: a GPU or exit 1; cpu: the CPU. */
static const Backend *pick_backend(const char *device, int threads)
{
#if defined(NTA_CUDA)
    if (strcmp(device, "cpu") && strcmp(device, "auto") && strcmp(device, "cuda"))
        nta_die("--device must be auto, cpu or cuda (got '%s')", device);
    if (strcmp(device, "cpu")) {
        char why[256];
        if (cuda_available(why, sizeof why)) {
            printf("device: cuda, %s\n", why);
            cpu_set_threads(threads);
            return &cuda_backend;
        }
        if (!strcmp(device, "cuda")) nta_die("--device cuda: %s; use --device cpu", why);
        printf("device: %s; using the CPU\n", why);
    }
#else
    if (!strcmp(device, "cuda"))
        nta_die("--device cuda: this nta was built without the CUDA backend; use --device cpu");
    if (strcmp(device, "cpu") && strcmp(device, "auto"))
        nta_die("--device must be auto, cpu or cuda (got '%s')", device);
#endif
    cpu_set_threads(threads);
    return &cpu_backend;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fmt_time(char *buf, size_t len, double s)
{
    if (s < 60) snprintf(buf, len, "%.0fs", s);
    else if (s < 3600) snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* "accuracy 93.10%", "MAE 3.21 degrees" or "mAP 71.20% (rank-1 90.00%)" */
static const char *fmt_metric(char *buf, size_t len, const DataSplits *d, double m, double second)
{
    if (d->kind == TASK_REGRESS) snprintf(buf, len, "MAE %.2f degrees", m);
    else if (d->kind == TASK_RETRIEVE) snprintf(buf, len, "mAP %.2f%% (rank-1 %.2f%%)", m, second);
    else snprintf(buf, len, "accuracy %.2f%%", m);
    return buf;
}

/* Higher is better: the search's fitness of a metric. */
static double fitness_of(const DataSplits *d, double m) { return task_lower_better(d) ? -m : m; }

/* Models carry the input normalisation of the data they were trained on. */
static void norm_from_data(Net *net, const DataSplits *d)
{
    memcpy(net->norm_mean, d->mean, sizeof net->norm_mean);
    memcpy(net->norm_std, d->std, sizeof net->norm_std);
    net->norm_set = 1;
}

static void norm_to_data(DataSplits *d, const Net *net)
{
    if (!net->norm_set) return;
    memcpy(d->mean, net->norm_mean, sizeof d->mean);
    memcpy(d->std, net->norm_std, sizeof d->std);
}

/* The network's input and outputs must match the data. */
static void check_fits(const NetDesc *nd, const DataSplits *d, const char *what)
{
    const Dataset *t = &d->test;
    if (nd->in_h != t->h || nd->in_w != t->w || nd->in_c != t->c)
        nta_die("%s expects %dx%dx%d images, but data '%s' has %dx%dx%d", what, nd->in_h,
                nd->in_w, nd->in_c, d->name, t->h, t->w, t->c);
    if (nd->classes < task_outputs(d))
        nta_die("%s has %d outputs, but data '%s' needs %d (labels up to %d)", what, nd->classes,
                d->name, task_outputs(d), task_outputs(d) - 1);
}

/* An architecture named on the command line: largest, smallest, random (from
 * r) or its text form; dies naming the option (if any) on a bad string. */
static Arch arch_named(const NetDesc *d, const char *name, Rng *r, const char *option)
{
    char err[512];
    Arch a;
    if (!strcmp(name, "largest")) return arch_largest(d);
    if (!strcmp(name, "smallest")) return arch_smallest(d);
    if (!strcmp(name, "random") && r) return arch_random(d, r);
    if (arch_parse(d, name, &a, err, sizeof err)) nta_die("%s%s%s", option ? option : "", option ? ": " : "", err);
    return a;
}

/* ------------------------------------------------------------ training */

/* Settings shared by train and pretrain. */
typedef struct {
    const char *data, *out, *device, *sampling, *resume, *kernels, *expands;
    int epochs, stop_after, batch, val, limit, seed, threads, augment, calib, depth, min_depth;
    int keep_best;        /* fixed networks: end with the weights of the epoch (0: before
                           * training, unless searched) whose validation metric was best */
    int searched;         /* the architecture was picked on the validation split: its
                           * epoch-0 score is inflated by that choice, so keep_best
                           * chooses among the trained epochs only */
    float lr, momentum, wd, warmup;
    float uda_entropy, uda_mmd;   /* TASK_UDA: weights of the target entropy and the feature MMD */
} TrainCfg;

enum { SAMPLE_FIXED, SAMPLE_SANDWICH, SAMPLE_UNIFORM };
static const char *sampling_name[] = {"fixed", "sandwich", "uniform"};

/* The options both commands take; the caller appends its own. */
#define TRAIN_OPTS(c, epochs_def, out_def)                                                          \
    {"data", OPT_STR, &c.data, "fashion-mnist", "fashion-mnist, mnist, idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or cifar:DIR"}, \
    {"epochs", OPT_INT, &c.epochs, epochs_def, "passes over the training split"},                     \
    {"batch", OPT_INT, &c.batch, "128", "images per step"},                                          \
    {"lr", OPT_FLOAT, &c.lr, "0.1", "peak learning rate (cosine decay to 0)"},                       \
    {"warmup", OPT_FLOAT, &c.warmup, "1", "epochs of linear learning-rate warm-up"},                 \
    {"momentum", OPT_FLOAT, &c.momentum, "0.9", "SGD momentum"},                                     \
    {"wd", OPT_FLOAT, &c.wd, "5e-5", "weight decay of conv and linear weights"},                     \
    {"augment", OPT_INT, &c.augment, "1", "random crop (and flip where the dataset allows): 1 on, 0 off"}, \
    {"val", OPT_INT, &c.val, "5000", "training images held out for validation"},                     \
    {"limit", OPT_INT, &c.limit, "0", "use only the first N training (and test) images; 0 = all"},   \
    {"seed", OPT_INT, &c.seed, "1", "seed of initialisation, shuffles, augmentation and sampling"},  \
    {"threads", OPT_INT, &c.threads, "0", "CPU threads; 0 = one per core"},                          \
    {"device", OPT_STR, &c.device, "auto", "auto, cpu or cuda"},                                     \
    {"resume", OPT_STR, &c.resume, "", "continue from this checkpoint (same options as the run that wrote it)"}, \
    {"stop-after", OPT_INT, &c.stop_after, "0", "stop after this epoch, to --resume later; 0 = run all epochs"}, \
    {"out", OPT_STR, &c.out, out_def, "checkpoint written after every epoch (-o)"}

static void check_train_cfg(const Command *cmd, TrainCfg *c)
{
    if (c->threads == 0) c->threads = default_threads();
    need(c->epochs > 0, cmd, "--epochs must be at least 1");
    need(c->batch > 1 && c->batch <= 65536, cmd, "--batch must be in 2..65536");
    need(c->lr > 0 && c->momentum >= 0 && c->momentum < 1 && c->wd >= 0 && c->warmup >= 0, cmd,
         "--lr must be > 0, --momentum in [0,1), --wd and --warmup >= 0");
    need(c->val >= 0 && c->limit >= 0 && c->threads > 0, cmd, "--val, --limit and --threads must be >= 0");
    need(c->stop_after >= 0, cmd, "--stop-after must be >= 0");
}

/* The metadata line a checkpoint carries; resume checks it. */
static void train_meta(char *buf, size_t len, const TrainCfg *c, int sampling, int epoch)
{
    snprintf(buf, len, "data=%s seed=%d epochs=%d batch=%d sampling=%s epoch=%d\n", c->data, c->seed,
             c->epochs, c->batch, sampling_name[sampling], epoch);
}

/* Load a checkpoint to continue from; returns the last finished epoch. */
static Net *resume_from(const TrainCfg *c, int sampling, const Backend *be, int *epoch)
{
    char err[512], want[512];
    Net *net = net_load(c->resume, be, c->batch, err, sizeof err);
    if (!net) nta_die("--resume: %s", err);
    const char *e = strstr(net->meta, " epoch=");
    if (!net->has_momentum || !e) nta_die("--resume: '%s' is a model, not a checkpoint of a training run", c->resume);
    *epoch = atoi(e + 7);
    train_meta(want, sizeof want, c, sampling, *epoch);
    if (strcmp(want, net->meta) != 0)
        nta_die("--resume: '%s' was written by a run with other settings:\n  it has:  %s  asked:   %s"
                "  give the same --data --seed --epochs --batch as that run", c->resume, net->meta, want);
    if (*epoch >= c->epochs) nta_die("--resume: '%s' already finished all %d epochs", c->resume, c->epochs);
    printf("resuming from %s after epoch %d\n", c->resume, *epoch);
    return net;
}

/* The task metric of architecture a on split s after BN recalibration. */
static double eval_arch(Net *net, const DataSplits *d, const Dataset *s, const Arch *a, int calib,
                        uint64_t seed, double *second)
{
    net_set_arch(net, a);
    net_recalibrate(net, d, calib, seed);
    return task_score(net, d, s, second);
}

/* The validation line of an epoch: the metric of the network, or of a
 * supernet's largest and smallest architectures after recalibration. Returns
 * a fixed network's validation fitness (higher is better), else NAN. */
static double report_val(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int ep)
{
    char m1[96], m2[96];
    double s1, s2;
    if (!d->val.n) return NAN;
    if (sampling == SAMPLE_FIXED) {
        double v = task_score(net, d, &d->val, &s1);
        printf("epoch %d: val %s\n", ep, fmt_metric(m1, sizeof m1, d, v, s1));
        return fitness_of(d, v);
    }
    Arch big = arch_largest(&net->d), small = arch_smallest(&net->d);
    double vb = eval_arch(net, d, &d->val, &big, c->calib, (uint64_t)c->seed, &s1);
    double vs = eval_arch(net, d, &d->val, &small, c->calib, (uint64_t)c->seed, &s2);
    printf("epoch %d: val largest %s, smallest %s\n", ep, fmt_metric(m1, sizeof m1, d, vb, s1),
           fmt_metric(m2, sizeof m2, d, vs, s2));
    return NAN;
}

/* net's parameters and running statistics [nfloats] into host memory (a new
 * buffer when host is NULL), and back. */
static float *params_save(const Net *net, float *host)
{
    if (!host) host = nta_malloc(net->nfloats * sizeof(float));
    net->be->download(host, net->p, net->nfloats * sizeof(float));
    return host;
}

static void params_load(Net *net, const float *host)
{
    net->be->upload(net->p, host, net->nfloats * sizeof(float));
}

/* Train for epochs start+1..c->epochs. Fixed networks run one forward/backward
 * per step; a supernet accumulates the gradients of several sampled
 * sub-architectures per step (the sandwich rule: the largest, the smallest and
 * two random; or one uniform random) on the same batch before one update.
 * Every epoch draws its shuffle, augmentation and architectures from its own
 * seed, so a resumed run repeats an unbroken one exactly. */
static void fit(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int start)
{
    /* per: labelled images per step (TASK_UDA: half the batch, the rest target images) */
    int B = c->batch, per = d->kind == TASK_UDA ? B / 2 : B, steps = d->train.n / per;
    int classify = d->kind != TASK_REGRESS;
    const Dataset *tr = &d->train;
    int *perm = nta_malloc((size_t)tr->n * sizeof(int));
    float *x = nta_malloc((size_t)B * tr->h * tr->w * tr->c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    long total = (long)steps * c->epochs, warm = lrintf(c->warmup * steps), step = (long)steps * start;
    int tty = isatty(fileno(stdout));
    double t0 = nta_now(), tlast = t0;
    long step0 = step;
    char eta[32], meta[512], acc[48] = "";
    Arch big = arch_largest(&net->d), small = arch_smallest(&net->d);
    /* keep_best: the weights of the best epoch so far */
    int keep = c->keep_best && sampling == SAMPLE_FIXED && d->val.n, best_ep = start;
    double best_fit = keep ? report_val(net, d, c, sampling, start) : NAN;
    if (keep && c->searched) best_fit = -INFINITY;
    float *best = keep ? params_save(net, NULL) : NULL;

    for (int ep = start + 1; ep <= c->epochs; ep++) {
        Rng rng;
        rng_seed(&rng, (uint64_t)c->seed * 1000003u + (uint64_t)ep);
        data_shuffle(perm, tr->n, &rng);
        double loss = 0;
        int right = 0, seen = 0;
        for (int s = 0; s < steps; s++, step++) {
            int corr = 0, passes = sampling == SAMPLE_SANDWICH ? 4 : 1;
            task_train_batch(net, d, perm + (size_t)s * per, B, x, y, c->augment ? &rng : NULL, &rng);
            net_zero_grad(net);
            for (int p = 0; p < passes; p++) {
                if (sampling != SAMPLE_FIXED) {
                    Arch a = sampling == SAMPLE_SANDWICH && p == 0 ? big
                             : sampling == SAMPLE_SANDWICH && p == 1 ? small
                                                                    : arch_random(&net->d, &rng);
                    net_set_arch(net, &a);
                }
                net_forward(net, B, 1);
                double l = task_train_loss(net, d, B, c->uda_entropy, c->uda_mmd, &corr);
                net_backward(net, B);
                if (p == 0) loss += l, right += corr, seen += per;  /* report the largest */
            }
            net_update(net, lr_cosine(c->lr, step, warm, total), c->momentum, c->wd);
            double now = nta_now();
            if (now - tlast > (tty ? 0.5 : 30) || s == steps - 1) {
                double rate = (step + 1 - step0) * (double)B / (now - t0);   /* images through the network */
                fmt_time(eta, sizeof eta, (total - step - 1) * (double)B / rate);
                if (classify) snprintf(acc, sizeof acc, " train acc %.2f%%", 100.0 * right / seen);
                printf("%sepoch %d/%d step %d/%d loss %.4f%s %.0f img/s ETA %s%s", tty ? "\r" : "", ep,
                       c->epochs, s + 1, steps, loss / seen, acc, rate, eta, tty ? "\033[K" : "\n");
                fflush(stdout);
                tlast = now;
            }
        }
        if (tty) printf("\n");
        double v = report_val(net, d, c, sampling, ep);
        if (best && v > best_fit) best_fit = v, best_ep = ep, params_save(net, best);
        train_meta(meta, sizeof meta, c, sampling, ep);
        if (*c->out && net_save(net, c->out, meta, 1) != 0) nta_die("could not save the checkpoint '%s'", c->out);
        if (ep == c->stop_after && ep < c->epochs) break;
    }
    if (best && best_ep != c->epochs) {
        params_load(net, best);
        printf("keeping the weights of epoch %d, the best on validation\n", best_ep);
    }
    free(perm), free(x), free(y), free(best);
}

static int parse_space(Space *sp, const char *kernels, const char *expands, int min_depth,
                       char *err, size_t errlen);

/* Load the data, build or resume the network, train, report on the test split. */
static int run_training(const Command *cmd, TrainCfg *c, int sampling)
{
    opts_print(cmd);
    const Backend *be = pick_backend(c->device, c->threads);
    DataSplits d;
    data_load(&d, c->data, c->val, c->limit, (uint64_t)c->seed);
    printf("data %s: %d train, %d val, %d test images of %dx%dx%d, %d classes\n", d.name,
           d.train.n, d.val.n, d.test.n, d.train.h, d.train.w, d.train.c, d.train.classes);
    if (d.train.n / c->batch == 0) nta_die("--batch %d is larger than the %d training images", c->batch, d.train.n);
    int start = 0;
    Net *net;
    if (*c->resume) {
        net = resume_from(c, sampling, be, &start);
        check_fits(&net->d, &d, c->resume);
    } else {
        NetDesc nd = net_reference(d.train.h, d.train.w, d.train.c, d.train.classes);
        if (sampling != SAMPLE_FIXED) {
            Space sp = space_default();
            char err[256];
            if (parse_space(&sp, c->kernels, c->expands, c->min_depth, err, sizeof err))
                nta_die("%s", err);
            nd = net_supernet(d.train.h, d.train.w, d.train.c, d.train.classes, &sp, c->depth);
        }
        net = net_create(&nd, be, c->batch, (uint64_t)c->seed, 1);
    }
    norm_from_data(net, &d);
    double t0 = nta_now();
    fit(net, &d, c, sampling, start);
    char took[32];
    fmt_time(took, sizeof took, nta_now() - t0);
    if (c->stop_after > start && c->stop_after < c->epochs) {
        printf("stopped after epoch %d of %d in %s; continue with --resume %s\n", c->stop_after, c->epochs,
               took, c->out);
    } else if (sampling == SAMPLE_FIXED) {
        double tacc = task_score(net, &d, &d.test, NULL);
        printf("test accuracy %.2f%% on %d images; %.2f MFLOPs, %zu params; trained in %s\n", tacc,
               d.test.n, 1e-6 * net_flops(&net->d), net_params(&net->d), took);
    } else {
        printf("supernet trained in %s; test accuracy after BN recalibration on %d batches:\n", took, c->calib);
        Arch ends[2] = {arch_largest(&net->d), arch_smallest(&net->d)};
        for (int i = 0; i < 2; i++) {
            NetDesc sd = arch_standalone(&net->d, &ends[i]);
            double acc = eval_arch(net, &d, &d.test, &ends[i], c->calib, (uint64_t)c->seed, NULL);
            printf("  %-8s %6.2f%%  %6.2f MFLOPs %8zu params\n", i ? "smallest" : "largest", acc,
                   1e-6 * net_flops(&sd), net_params(&sd));
        }
    }
    if (*c->out) printf("saved to %s\n", c->out);
    net_free(net);
    data_free(&d);
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    TrainCfg c = {0};
    Opt opts[] = {TRAIN_OPTS(c, "15", "model.nta")};
    Command cmd = {"train", "[options]", "train the reference network on a dataset and report test accuracy",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    check_train_cfg(&cmd, &c);
    return run_training(&cmd, &c, SAMPLE_FIXED);
}

/* ----------------------------------------------------------- pretrain */

/* "3,5,7" into an ascending list of at most 4 values in [lo, hi] */
static int parse_list(int *out, const char *text, int lo, int hi)
{
    int n = 0;
    const char *p = text;
    while (n < 4) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || (n && v <= out[n - 1])) return -1;
        out[n++] = (int)v;
        if (*end == 0) return n;
        if (*end != ',') return -1;
        p = end + 1;
    }
    return -1;
}

static int parse_space(Space *sp, const char *kernels, const char *expands, int min_depth,
                       char *err, size_t errlen)
{
    sp->nk = parse_list(sp->ks, kernels, 1, 7);
    sp->ne = parse_list(sp->es, expands, 1, 8);
    sp->dmin = min_depth;
    int odd = 1;
    for (int i = 0; i < sp->nk; i++) odd &= sp->ks[i] % 2;
    if (sp->nk < 1 || !odd) {
        snprintf(err, errlen, "--kernels '%s': give ascending odd sizes up to 7, e.g. 3,5,7", kernels);
        return -1;
    }
    if (sp->ne < 1) {
        snprintf(err, errlen, "--expands '%s': give ascending ratios up to 8, e.g. 3,4,6", expands);
        return -1;
    }
    return 0;
}

static int cmd_pretrain(int argc, char **argv)
{
    TrainCfg c = {0};
    Opt opts[] = {
        TRAIN_OPTS(c, "6", "supernet.nta"),
        {"sampling", OPT_STR, &c.sampling, "sandwich", "sandwich (largest + smallest + 2 random per step) or uniform (1 random)"},
        {"kernels", OPT_STR, &c.kernels, "3,5,7", "depthwise kernel choices"},
        {"expands", OPT_STR, &c.expands, "3,4,6", "expansion ratio choices"},
        {"depth", OPT_INT, &c.depth, "4", "largest blocks per stage (3 stages)"},
        {"min-depth", OPT_INT, &c.min_depth, "2", "smallest blocks per stage"},
        {"calib", OPT_INT, &c.calib, "20", "training batches for BN recalibration before each evaluation"},
    };
    Command cmd = {"pretrain", "[options]",
                   "train a weight-sharing supernet on the source data (sampled sub-architectures per step)",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    check_train_cfg(&cmd, &c);
    int sampling = !strcmp(c.sampling, "sandwich") ? SAMPLE_SANDWICH
                   : !strcmp(c.sampling, "uniform") ? SAMPLE_UNIFORM : -1;
    need(sampling > 0, &cmd, "--sampling must be sandwich or uniform");
    need(c.depth >= c.min_depth && c.min_depth >= 1 && c.depth <= NET_MAX_BLOCKS / 3, &cmd,
         "need 1 <= --min-depth <= --depth <= 10");
    need(c.calib >= 1, &cmd, "--calib must be at least 1");
    return run_training(&cmd, &c, sampling);
}

/* ------------------------------------------------------ target tasks */

/* Settings of adapt, finetune and demo. */
typedef struct {
    const char *task, *device, *out, *log, *arch;
    int train_images, val, limit, seed, threads, batch, augment, calib, transfer_epochs, epochs;
    int population, generations, parents, mutants, crosses, scratch, random, resume, keep_best;
    int seeds;            /* demo: finetuning runs per method (finish) */
    int searched;         /* finetuning a searched winner (TrainCfg.searched) */
    float lr, warmup, momentum, wd, budget, mutate_prob, uda_entropy, uda_mmd;
} AdaptCfg;

#define ADAPT_OPTS(a, epochs_name, epochs_def, epochs_help)                                           \
    {"task", OPT_STR, &a.task, "mnist", "mnist, mnist-parity, mnist-rotation, mnist-retrieval, mnist-uda, or classify:DATA with DATA as for --data of train"}, \
    {"train-images", OPT_INT, &a.train_images, "1000", "labelled training images of the task (0 = all)"}, \
    {"val", OPT_INT, &a.val, "500", "training images held out for validation (the search's fitness)"}, \
    {"limit", OPT_INT, &a.limit, "0", "use only the first N images of the task's files; 0 = all"},   \
    {epochs_name, OPT_INT, &a.epochs, epochs_def, epochs_help},                                       \
    {"batch", OPT_INT, &a.batch, "64", "images per step"},                                           \
    {"lr", OPT_FLOAT, &a.lr, "0.05", "peak learning rate of each training phase (cosine)"},           \
    {"warmup", OPT_FLOAT, &a.warmup, "1", "epochs of warm-up"},                                      \
    {"momentum", OPT_FLOAT, &a.momentum, "0.9", "SGD momentum"},                                     \
    {"wd", OPT_FLOAT, &a.wd, "5e-5", "weight decay"},                                                \
    {"augment", OPT_INT, &a.augment, "1", "random crop (and flip where allowed): 1 on, 0 off"},       \
    {"calib", OPT_INT, &a.calib, "10", "training batches for BN recalibration before each evaluation"}, \
    {"keep-best", OPT_INT, &a.keep_best, "0", "1: a finetuned model keeps its epoch with the best validation metric (epoch 0, as inherited, only for a fixed architecture: a searched winner was chosen on that split); 0: the last"}, \
    {"uda-entropy", OPT_FLOAT, &a.uda_entropy, "0.1", "mnist-uda: weight of the unlabelled target images' mean entropy"}, \
    {"uda-mmd", OPT_FLOAT, &a.uda_mmd, "1", "mnist-uda: weight of the MMD between source and target features"}, \
    {"seed", OPT_INT, &a.seed, "1", "seed of every random choice"},                                  \
    {"threads", OPT_INT, &a.threads, "0", "CPU threads; 0 = one per core"},                          \
    {"device", OPT_STR, &a.device, "auto", "auto, cpu or cuda"}

#define SEARCH_OPTS(a, d_transfer, d_budget, d_population, d_generations, d_parents, d_mutants, d_crosses)           \
    {"transfer-epochs", OPT_INT, &a.transfer_epochs, d_transfer, "epochs of neural transfer (the whole supernet, sandwich rule)"}, \
    {"budget-mflops", OPT_FLOAT, &a.budget, d_budget, "largest MFLOPs an architecture may cost"},        \
    {"population", OPT_INT, &a.population, d_population, "candidates kept per generation"},             \
    {"generations", OPT_INT, &a.generations, d_generations, "generations of evolution"},                 \
    {"parents", OPT_INT, &a.parents, d_parents, "fittest candidates that make children"},                 \
    {"mutants", OPT_INT, &a.mutants, d_mutants, "children by mutation per generation"},                  \
    {"crosses", OPT_INT, &a.crosses, d_crosses, "children by crossover per generation (0 = no crossover)"}, \
    {"mutate-prob", OPT_FLOAT, &a.mutate_prob, "0.1", "probability of resampling each choice"}

static void check_adapt_cfg(const Command *cmd, AdaptCfg *a)
{
    if (a->threads == 0) a->threads = default_threads();
    need(a->epochs >= 0 && a->batch > 1 && a->batch <= 65536 && a->calib > 0, cmd,
         "need epochs >= 0, --batch in 2..65536, --calib >= 1");
    need(a->lr > 0 && a->momentum >= 0 && a->momentum < 1 && a->wd >= 0 && a->warmup >= 0 && a->uda_entropy >= 0 && a->uda_mmd >= 0,
         cmd, "--lr must be > 0, --momentum in [0,1); --wd, --warmup, --uda-entropy, --uda-mmd >= 0");
    need(a->val > 0 && a->limit >= 0 && a->train_images >= 0 && a->threads > 0, cmd,
         "--val must be >= 1; --limit, --train-images and --threads >= 0");
    need(a->keep_best == 0 || a->keep_best == 1, cmd, "--keep-best must be 0 or 1");
}

static void check_search_cfg(const Command *cmd, const AdaptCfg *a)
{
    need(a->transfer_epochs >= 0 && a->population > 0 && a->generations >= 0 && a->parents > 0 &&
         a->mutants >= 0 && a->crosses >= 0 && a->mutate_prob >= 0 && a->mutate_prob <= 1 && a->random >= 0,
         cmd, "need --population, --parents >= 1; --generations, --mutants, --crosses, --random, "
              "--transfer-epochs >= 0; --mutate-prob in [0,1]");
}

/* The settings of finetuning a searched winner (NTAA, random search). */
static AdaptCfg winner_cfg(const AdaptCfg *a)
{
    AdaptCfg w = *a;
    w.searched = 1;
    return w;
}

/* The task's data, with a line saying what it holds. */
static void load_task(DataSplits *d, const AdaptCfg *a)
{
    data_task(d, a->task, a->train_images, a->val, a->limit, (uint64_t)a->seed);
    printf("task %s: %d train, %d val, %d test images of %dx%dx%d, %d outputs, metric %s", a->task,
           d->train.n, d->val.n, d->test.n, d->train.h, d->train.w, d->train.c, task_outputs(d),
           task_metric_name(d));
    if (d->kind == TASK_UDA) printf("; %d unlabelled target-domain images", d->target.n);
    printf("\n");
}

/* The supernet (or model) file, with a fresh head for the task. */
static Net *load_for_task(const char *path, const Backend *be, int B, const DataSplits *d, uint64_t seed)
{
    char err[512];
    Net *src = net_load(path, be, B, err, sizeof err);
    if (!src) nta_die("%s", err);
    NetDesc probe = src->d;
    probe.classes = task_outputs(d);
    check_fits(&probe, d, path);
    Net *net = net_rehead(src, probe.classes, seed);
    net_free(src);
    net->loss = task_loss(d);
    return net;
}

/* A training phase with the adapt settings (no checkpoints). */
static void train_phase(Net *net, const DataSplits *d, const AdaptCfg *a, int epochs, int sampling)
{
    TrainCfg c = {.data = a->task, .out = "", .epochs = epochs, .batch = a->batch, .seed = a->seed,
                  .keep_best = a->keep_best, .searched = a->searched,
                  .augment = a->augment, .calib = a->calib, .lr = a->lr, .momentum = a->momentum,
                  .wd = a->wd, .warmup = a->warmup,
                  .uda_entropy = a->uda_entropy, .uda_mmd = a->uda_mmd};
    if (epochs > 0) fit(net, d, &c, sampling, 0);
}

/* Neural transfer: the supernet with a new head, trained on the task with the
 * sandwich rule. */
static Net *transfer(const char *super, const Backend *be, const DataSplits *d, const AdaptCfg *a)
{
    Net *net = load_for_task(super, be, a->batch, d, (uint64_t)a->seed);
    if (net->d.space.nk == 0)
        nta_die("%s is a fixed network, not a supernet: adapt needs 'nta pretrain' output", super);
    printf("neural transfer: %d epochs of the whole supernet on %s\n", a->transfer_epochs, a->task);
    train_phase(net, d, a, a->transfer_epochs, SAMPLE_SANDWICH);
    return net;
}

/* Finetune a standalone model and score it on the test split into row
 * (seconds counted from t0). With a->seeds = n > 1, n runs from the same
 * starting weights with seeds seed+n-1 down to seed (shuffles, augmentation);
 * row gets their mean and standard deviation, and the model ends as the run
 * with the command's own seed. */
static void finish(Net *model, const DataSplits *d, const AdaptCfg *a, int epochs, const char *method,
                   const char *arch, double t0, ReportRow *row)
{
    char m[128], took[32];
    int n = a->seeds > 1 ? a->seeds : 1;
    float *start = n > 1 ? params_save(model, NULL) : NULL;
    double sum = 0, sum2 = 0, sum_second = 0;
    norm_from_data(model, d);
    for (int k = n - 1; k >= 0; k--) {
        AdaptCfg run = *a;
        run.seed = a->seed + k;
        if (k < n - 1) {   /* back to the starting weights, no momentum */
            params_load(model, start);
            model->be->zero(model->m, model->nfloats * sizeof(float));
        }
        train_phase(model, d, &run, epochs, SAMPLE_FIXED);
        double second, metric = task_score(model, d, &d->test, &second);
        if (n > 1) printf("%s, seed %d: test %s\n", method, run.seed, fmt_metric(m, sizeof m, d, metric, second));
        sum += metric, sum2 += metric * metric, sum_second += second;
    }
    *row = (ReportRow){.method = method, .mflops = 1e-6 * net_flops(&model->d), .params = net_params(&model->d),
                       .seconds = nta_now() - t0, .runs = n, .metric = sum / n, .second = sum_second / n};
    row->sd = n > 1 ? sqrt(fmax(0, (sum2 - sum * sum / n) / (n - 1))) : NAN;
    snprintf(row->arch, sizeof row->arch, "%s", arch);
    fmt_time(took, sizeof took, row->seconds);
    printf("%s: test %s on %d images%s; %.2f MFLOPs, %zu params; %s; architecture %s\n", method,
           fmt_metric(m, sizeof m, d, row->metric, row->second), d->test.n, n > 1 ? ", mean of the seeds" : "",
           row->mflops, row->params, took, arch);
    free(start);
}

static void save_model(Net *net, const AdaptCfg *a, const char *out, const char *what, const char *arch)
{
    char meta[1024];
    snprintf(meta, sizeof meta, "task=%s method=%s arch=%s seed=%d\n", a->task, what, arch, a->seed);
    if (*out && net_save(net, out, meta, 0) != 0) nta_die("could not save the model to '%s'", out);
    if (*out) printf("saved to %s\n", out);
}

/* The search's fitness: the validation metric (higher is better) with
 * inherited weights after BN recalibration. */
typedef struct { Net *net; const DataSplits *d; int calib; uint64_t seed; } Fitness;

static double val_fitness(void *ctx, const Arch *a)
{
    Fitness *f = ctx;
    return fitness_of(f->d, eval_arch(f->net, f->d, &f->d->val, a, f->calib, f->seed, NULL));
}

/* The search log: per generation a header "# generation G n N rng STATE", then
 * one line per candidate, fittest first: "G rank fitness MFLOPs params arch".
 * Fitness is written exactly (%.17g) so a resumed search ranks as the
 * unbroken one did. */
static void log_generation(FILE *log, const NetDesc *d, const SearchState *st, double budget, double t0)
{
    double mean = 0, cost = 0;
    char text[512], took[32];
    for (int i = 0; i < st->n; i++) mean += st->pop[i].fitness / st->n, cost += st->pop[i].mflops / st->n;
    arch_format(d, &st->pop[0].arch, text, sizeof text);
    fmt_time(took, sizeof took, nta_now() - t0);
    printf("generation %d: fitness best %.2f mean %.2f, best %.2f MFLOPs, mean %.2f MFLOPs (%.0f%% of budget), %s: %s\n",
           st->gen, st->pop[0].fitness, mean, st->pop[0].mflops, cost, budget > 0 ? 100 * cost / budget : 0,
           took, text);
    if (!log) return;
    fprintf(log, "# generation %d n %d rng %llu\n", st->gen, st->n, (unsigned long long)st->rng.state);
    for (int i = 0; i < st->n; i++) {
        arch_format(d, &st->pop[i].arch, text, sizeof text);
        fprintf(log, "%d %d %.17g %.4f %zu %s\n", st->gen, i, st->pop[i].fitness, st->pop[i].mflops,
                st->pop[i].params, text);
    }
    fflush(log);
}

/* The last complete generation of a search log into st; 0 if there is none. */
static int log_restore(const char *path, const NetDesc *d, SearchState *st)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024], text[512], err[512];
    int gen = -1, n = 0, got = 0, done = 0;
    unsigned long long rng = 0;
    Candidate *pop = NULL;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "# generation %d n %d rng %llu", &gen, &n, &rng) == 3) {
            if (n < 1 || n > 100000) break;
            pop = realloc(pop, (size_t)n * sizeof *pop);
            if (!pop) nta_die("out of memory reading '%s'", path);
            got = 0;
            continue;
        }
        int g, rank;
        Candidate c = {0};
        if (!pop || sscanf(line, "%d %d %lg %lg %zu %511s", &g, &rank, &c.fitness, &c.mflops, &c.params, text) != 6 ||
            g != gen || rank != got || arch_parse(d, text, &c.arch, err, sizeof err))
            continue;                          /* a partial or foreign line: ignored */
        pop[got++] = c;
        if (got == n) {                         /* a complete generation */
            free(st->pop);
            st->pop = nta_malloc((size_t)n * sizeof *pop);
            memcpy(st->pop, pop, (size_t)n * sizeof *pop);
            st->n = n, st->gen = gen, st->rng.state = rng;
            done = 1;
        }
    }
    free(pop);
    fclose(f);
    return done;
}

/* What a search leaves for the report: best and mean fitness per generation. */
typedef struct { int ngen; double best[256], mean[256]; } Progress;

static void progress_add(Progress *p, const SearchState *st)
{
    if (!p || p->ngen >= 256) return;
    double mean = 0;
    for (int i = 0; i < st->n; i++) mean += st->pop[i].fitness / st->n;
    p->best[p->ngen] = st->pop[0].fitness, p->mean[p->ngen] = mean, p->ngen++;
}

/* Evolution (random == 0) or random search of N architectures on the
 * transferred supernet; st ends with the last population, fittest first.
 * resume: continue from the log's last complete generation if it has one. */
static void search_arch(Net *net, const DataSplits *d, const AdaptCfg *a, int random, const char *log_path,
                        int resume, SearchState *st, Progress *prog)
{
    printf("architecture adaptation: %s under %.2f MFLOPs, fitness: validation %s\n",
           random ? "random search" : "evolution", a->budget, task_metric_name(d));
    SearchCfg sc = {.population = a->population, .generations = a->generations, .parents = a->parents,
                    .mutants = a->mutants, .crosses = a->crosses, .mutate_prob = a->mutate_prob,
                    .budget_mflops = a->budget, .seed = (uint64_t)a->seed};
    Fitness fx = {net, d, a->calib, (uint64_t)a->seed};
    char err[512];
    double t0 = nta_now();
    *st = (SearchState){0};
    int resumed = resume && !random && *log_path && log_restore(log_path, &net->d, st);
    FILE *log = *log_path ? fopen(log_path, resumed ? "a" : "w") : NULL;
    if (*log_path && !log) nta_die("cannot write the search log '%s': %s", log_path, strerror(errno));
    if (resumed) {
        printf("search: resumed after generation %d from %s\n", st->gen, log_path);
    } else if (random) {                   /* the baseline: one "generation" of N random candidates */
        *st = (SearchState){.n = random, .pop = nta_calloc((size_t)random, sizeof(Candidate))};
        if (search_random(&net->d, &sc, random, val_fitness, &fx, st->pop, err, sizeof err))
            nta_die("--budget-mflops: %s", err);
        sc.generations = 0;
    } else if (search_init(&net->d, &sc, val_fitness, &fx, st, err, sizeof err)) {
        nta_die("--budget-mflops: %s", err);
    }
    if (!resumed) log_generation(log, &net->d, st, a->budget, t0);
    progress_add(prog, st);
    while (st->gen < sc.generations) {
        search_step(&net->d, &sc, val_fitness, &fx, st);
        log_generation(log, &net->d, st, a->budget, t0);
        progress_add(prog, st);
    }
    if (log) fclose(log);
}

/* The standalone winner of a search, holding its inherited weights. */
static Net *winner(Net *net, const DataSplits *d, const AdaptCfg *a, const Arch *best)
{
    net_set_arch(net, best);
    net_recalibrate(net, d, a->calib, (uint64_t)a->seed);
    return net_extract(net, best, a->batch);
}

/* A fixed architecture of the supernet, finetuned: WP&F (inherited weights)
 * or classic NAS (scratch: random initial weights). */
static Net *fixed_model(const char *super, const Backend *be, const DataSplits *d, const AdaptCfg *a,
                        const Arch *arch, int scratch)
{
    Net *net = load_for_task(super, be, a->batch, d, (uint64_t)a->seed), *model;
    if (scratch) {
        NetDesc sd = arch_standalone(&net->d, arch);
        model = net_create(&sd, be, a->batch, (uint64_t)a->seed, 0);
        model->loss = net->loss;
    } else {
        model = winner(net, d, a, arch);
    }
    net_free(net);
    return model;
}

static int cmd_adapt(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *super[1];
    Opt opts[] = {
        ADAPT_OPTS(a, "finetune-epochs", "10", "epochs of finetuning the winner with its inherited weights"),
        SEARCH_OPTS(a, "10", "10", "50", "10", "10", "25", "25"),
        {"random", OPT_INT, &a.random, "0", "random-search baseline: the best of N random architectures instead of evolution"},
        {"log", OPT_STR, &a.log, "search.log", "every generation's population: gen, rank, fitness, MFLOPs, params, architecture"},
        {"resume", OPT_INT, &a.resume, "0", "1: continue a stopped run from OUT.transfer and the log's last generation"},
        {"out", OPT_STR, &a.out, "model.nta", "the finished model (-o)"},
    };
    Command cmd = {"adapt", "SUPERNET [options]",
                   "NTAA: transfer a supernet to a task, search its architecture under a budget, finetune the winner",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, super, 1);
    need(npos == 1, &cmd, "which supernet? e.g. 'nta adapt supernet.nta --task mnist'");
    check_adapt_cfg(&cmd, &a);
    check_search_cfg(&cmd, &a);
    need(*a.out || !a.resume, &cmd, "--resume needs the -o of the run to continue");
    opts_print(&cmd);
    const Backend *be = pick_backend(a.device, a.threads);
    DataSplits d;
    load_task(&d, &a);
    /* the transferred supernet is kept beside the output, for --resume */
    char transferred[4096], text[512];
    snprintf(transferred, sizeof transferred, "%s.transfer", a.out);
    double t0 = nta_now();
    Net *net;
    if (a.resume) {
        char err[512];
        if (!(net = net_load(transferred, be, a.batch, err, sizeof err))) nta_die("--resume: %s", err);
        check_fits(&net->d, &d, transferred);
        net->loss = task_loss(&d);
        printf("neural transfer: done before, resumed from %s\n", transferred);
    } else {
        net = transfer(super[0], be, &d, &a);
        if (*a.out && net_save(net, transferred, "adapt: the supernet after neural transfer\n", 0))
            nta_die("could not save '%s'", transferred);
    }
    SearchState st;
    search_arch(net, &d, &a, a.random, a.log, a.resume, &st, NULL);
    Arch best = st.pop[0].arch;
    arch_format(&net->d, &best, text, sizeof text);
    search_free(&st);
    printf("finetuning the winner with its inherited weights: %d epochs\n", a.epochs);
    Net *model = winner(net, &d, &a, &best);
    net_free(net);
    ReportRow row;
    const char *method = a.random ? "random search" : "NTAA";
    AdaptCfg w = winner_cfg(&a);
    finish(model, &d, &w, a.epochs, method, text, t0, &row);
    save_model(model, &a, a.out, a.random ? "random" : "ntaa", text);
    net_free(model);
    data_free(&d);
    return 0;
}

static int cmd_finetune(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *super[1];
    Opt opts[] = {
        ADAPT_OPTS(a, "epochs", "20", "epochs of finetuning"),
        {"arch", OPT_STR, &a.arch, "largest", "the fixed architecture: largest, smallest or a string"},
        {"from-scratch", OPT_INT, &a.scratch, "0", "1: random initial weights (classic NAS retraining), 0: inherited"},
        {"out", OPT_STR, &a.out, "model.nta", "the finished model (-o)"},
    };
    Command cmd = {"finetune", "SUPERNET [options]",
                   "WP&F baseline: finetune a fixed architecture's weights on a task (or train it from scratch)",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, super, 1);
    need(npos == 1, &cmd, "which supernet? e.g. 'nta finetune supernet.nta --task mnist'");
    check_adapt_cfg(&cmd, &a);
    need(a.scratch == 0 || a.scratch == 1, &cmd, "--from-scratch must be 0 or 1");
    opts_print(&cmd);
    const Backend *be = pick_backend(a.device, a.threads);
    DataSplits d;
    load_task(&d, &a);
    char err[512], text[512];
    Net *probe = net_load(super[0], be, 2, err, sizeof err);
    if (!probe) nta_die("%s", err);
    Arch arch = arch_named(&probe->d, a.arch, NULL, "--arch");
    arch_format(&probe->d, &arch, text, sizeof text);
    net_free(probe);
    double t0 = nta_now();
    Net *model = fixed_model(super[0], be, &d, &a, &arch, a.scratch);
    ReportRow row;
    finish(model, &d, &a, a.epochs, a.scratch ? "from scratch" : "WP&F", text, t0, &row);
    save_model(model, &a, a.out, a.scratch ? "scratch" : "wpf", text);
    net_free(model);
    data_free(&d);
    return 0;
}

/* --------------------------------------------------------------- demo */

/* NTAA and the three baselines on one task, from one supernet, under one
 * budget; the results and the search's traces go into t. */
static void demo_task(const char *super, const Backend *be, const AdaptCfg *a, int random, const char *dir,
                      ReportTask *t)
{
    DataSplits d;
    char log[4096], out[4096], text[512];
    ReportRow *row = t->rows;
    load_task(&d, a);
    snprintf(t->task, sizeof t->task, "%s", a->task);
    t->metric_name = task_metric_name(&d);
    t->second_name = d.kind == TASK_RETRIEVE ? "rank-1 %" : NULL;
    t->lower_better = task_lower_better(&d);
    t->budget_mflops = a->budget;

    double t0 = nta_now();
    Net *net = transfer(super, be, &d, a);
    double t_transfer = nta_now() - t0;

    /* NTAA: evolution on the transferred supernet, the winner finetuned */
    Progress *prog = nta_calloc(1, sizeof *prog);
    SearchState st;
    snprintf(log, sizeof log, "%s/%s.search.log", dir, a->task);
    search_arch(net, &d, a, 0, log, 0, &st, prog);
    Arch best = st.pop[0].arch;
    arch_format(&net->d, &best, text, sizeof text);
    Net *model = winner(net, &d, a, &best);
    AdaptCfg w = winner_cfg(a);
    finish(model, &d, &w, a->epochs, "NTAA", text, t0, row++);
    snprintf(out, sizeof out, "%s/%s.ntaa.nta", dir, a->task);
    save_model(model, a, out, "ntaa", text);
    net_free(model);
    t->desc = net->d, t->arch = best;
    t->ngen = prog->ngen, t->npop = st.n, t->pop = st.pop;   /* the report keeps the last population */
    t->gen_best = nta_malloc(prog->ngen * sizeof(double)), t->gen_mean = nta_malloc(prog->ngen * sizeof(double));
    double sign = t->lower_better ? -1 : 1;                  /* fitness back to the metric's units */
    for (int g = 0; g < prog->ngen; g++) t->gen_best[g] = sign * prog->best[g], t->gen_mean[g] = sign * prog->mean[g];
    for (int i = 0; i < st.n; i++) t->pop[i].fitness *= sign;
    free(prog);

    /* random search: as many architectures as evolution scored, same supernet */
    double t1 = nta_now() - t_transfer;
    SearchState rs;
    snprintf(log, sizeof log, "%s/%s.random.log", dir, a->task);
    search_arch(net, &d, a, random, log, 0, &rs, NULL);
    Arch rbest = rs.pop[0].arch;
    arch_format(&net->d, &rbest, text, sizeof text);
    search_free(&rs);
    model = winner(net, &d, a, &rbest);
    net_free(net);
    finish(model, &d, &w, a->epochs, "random search", text, t1, row++);
    net_free(model);

    /* WP&F (the largest architecture) and the winner from scratch, with as
     * many epochs as transfer and finetuning together */
    int epochs = a->transfer_epochs + a->epochs;
    for (int scratch = 0; scratch < 2; scratch++) {
        Arch arch = scratch ? best : arch_largest(&t->desc);
        arch_format(&t->desc, &arch, text, sizeof text);
        printf("%s: %d epochs\n", scratch ? "from scratch (classic NAS)" : "WP&F (largest)", epochs);
        double t2 = nta_now();
        model = fixed_model(super, be, &d, a, &arch, scratch);
        finish(model, &d, a, epochs, scratch ? "from scratch" : "WP&F", text, t2, row++);
        net_free(model);
    }
    t->nrows = (int)(row - t->rows);
    data_free(&d);
}

/* "NTAA matches WP&F with fewer MFLOPs on N of M tasks; ..." */
static void demo_verdict(char *buf, size_t len, const ReportTask *t, int n)
{
    int wpf = 0, scratch = 0;
    char lost[512] = "";
    for (int i = 0; i < n; i++) {
        const ReportRow *r = t[i].rows;         /* NTAA, random, WP&F, scratch */
        double s = t[i].lower_better ? -1 : 1;
        int ok = s * r[0].metric >= s * r[2].metric && r[0].mflops < r[2].mflops;
        wpf += ok;
        scratch += s * r[0].metric > s * r[3].metric;
        if (!ok) snprintf(lost + strlen(lost), sizeof lost - strlen(lost), "%s%s", *lost ? ", " : "", t[i].task);
    }
    snprintf(buf, len,
             "NTAA was at least as good as WP&F on the task metric with fewer MFLOPs on %d of %d tasks%s%s%s; "
             "inherited weights beat training the same architecture from scratch on %d of %d.",
             wpf, n, *lost ? " (not on " : "", lost, *lost ? ")" : "", scratch, n);
}

static int cmd_demo(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *dir, *supernet, *tasks;
    int pretrain_epochs, quick, random;
    Opt opts[] = {
        {"dir", OPT_STR, &dir, "demo", "folder for the supernet, models, search logs, report.md and report.html"},
        {"supernet", OPT_STR, &supernet, "", "reuse this supernet; default DIR/supernet.nta, pretrained there if missing"},
        {"pretrain-epochs", OPT_INT, &pretrain_epochs, "3", "epochs of 'nta pretrain' on fashion-mnist when there is no supernet"},
        {"tasks", OPT_STR, &tasks, "mnist,mnist-parity,mnist-rotation,mnist-retrieval,mnist-uda", "the tasks, comma-separated"},
        ADAPT_OPTS(a, "finetune-epochs", "16", "epochs of finetuning the winners"),
        SEARCH_OPTS(a, "12", "20", "16", "6", "4", "8", "8"),
        {"random", OPT_INT, &random, "0", "architectures of the random-search baseline; 0 = as many as evolution scores"},
        {"seeds", OPT_INT, &a.seeds, "3", "finetuning runs per method (seeds SEED, SEED+1, ...); the report gives their mean and standard deviation"},
        {"quick", OPT_INT, &quick, "0", "1: tiny settings that finish in about a minute (a smoke test, not a result)"},
    };
    Command cmd = {"demo", "[options]",
                   "pretrain (or reuse) a supernet, then NTAA and its baselines on every task; write a report",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    if (quick) {
        a.limit = 800, a.train_images = 128, a.val = 64, a.batch = 32, a.calib = 2, a.transfer_epochs = 1;
        a.epochs = 1, a.population = 4, a.generations = 1, a.parents = 2, a.mutants = 2, a.crosses = 2;
        a.seeds = 2;
    }
    check_adapt_cfg(&cmd, &a);
    check_search_cfg(&cmd, &a);
    need(pretrain_epochs > 0 && random >= 0 && a.seeds >= 1, &cmd, "--pretrain-epochs and --seeds must be >= 1, --random >= 0");
    if (!random) random = a.population + a.generations * (a.mutants + a.crosses);
    opts_print(&cmd);
    if (mkdir(dir, 0777) && errno != EEXIST) nta_die("--dir: cannot make '%s': %s", dir, strerror(errno));
    double t0 = nta_now();
    char path[4096], intro[8192], verdict[1024], took[32];
    if (*supernet) snprintf(path, sizeof path, "%s", supernet);
    else snprintf(path, sizeof path, "%s/supernet.nta", dir);
    int reuse = access(path, R_OK) == 0;
    if (!reuse && *supernet) nta_die("--supernet: cannot read '%s': %s", supernet, strerror(errno));
    if (!reuse) {
        char epochs[16], seed[16], threads[16];
        snprintf(epochs, sizeof epochs, "%d", pretrain_epochs);
        snprintf(seed, sizeof seed, "%d", a.seed);
        snprintf(threads, sizeof threads, "%d", a.threads);
        char *args[24] = {"--epochs", epochs, "--seed", seed, "--threads", threads, "--device", (char *)a.device,
                          "--out", path};
        int n = 10;
        if (quick) {
            char *q[] = {"--limit", "800", "--val", "64", "--batch", "32", "--calib", "2", "--depth", "2", "--min-depth", "1"};
            for (size_t i = 0; i < sizeof q / sizeof *q; i++) args[n++] = q[i];
        }
        printf("== pretraining the supernet on fashion-mnist (%s)\n", path);
        cmd_pretrain(n, args);
    }
    double t_pre = nta_now() - t0;
    fmt_time(took, sizeof took, t_pre);
    const Backend *be = pick_backend(a.device, a.threads);

    ReportTask *rt = nta_calloc(16, sizeof *rt);
    int nt = 0;
    char list[1024], *save = NULL;
    snprintf(list, sizeof list, "%s", tasks);
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (nt == 16) nta_die("--tasks: at most 16 tasks");
        AdaptCfg at = a;
        at.task = name;
        printf("== task %s\n", name);
        demo_task(path, be, &at, random, dir, &rt[nt++]);
    }
    double total = nta_now() - t0;
    char all[32];
    fmt_time(all, sizeof all, total);
    demo_verdict(verdict, sizeof verdict, rt, nt);
    snprintf(intro, sizeof intro,
             "Supernet: %s (%s). Every task: %d labelled training images, %d validation images, "
             "neural transfer %d epochs (sandwich rule), evolution of %d candidates for %d generations "
             "(%d parents, %d mutants, %d crosses) under %.2f MFLOPs, random search over %d architectures, "
             "winners finetuned %d epochs; WP&F (the largest architecture, %.2f MFLOPs) and from-scratch "
             "training of NTAA's architecture get %d epochs, as many as transfer and finetuning together; every phase "
             "at peak learning rate %g (cosine)%s; each finetuning runs with %d seed%s. "
             "Backend %s, %d threads, seed %d%s. "
             "Total time %s. %s",
             path, reuse ? "reused" : took, a.train_images, a.val, a.transfer_epochs, a.population, a.generations,
             a.parents, a.mutants, a.crosses, a.budget, random, a.epochs, nt ? rt[0].rows[2].mflops : 0,
             a.transfer_epochs + a.epochs, a.lr,
             a.keep_best ? "; every finetuned model keeps its epoch with the best validation metric "
                           "(epoch 0, the weights as they came, only for WP&F: the winners were chosen on that split)"
                         : "; every finetuned model is scored as its last epoch left it",
             a.seeds, a.seeds > 1 ? "s (the tables give mean ± standard deviation)" : "",
             be->name, a.threads, a.seed,
             quick ? "; QUICK MODE: tiny data and settings, the numbers mean nothing" : "", all, verdict);
    char md[4096], html[4096], err[512];
    snprintf(md, sizeof md, "%s/report.md", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    if (report_write(md, html, intro, rt, nt, err, sizeof err)) nta_die("%s", err);
    printf("== done in %s. %s\nreport: %s and %s\n", all, verdict, md, html);
    for (int i = 0; i < nt; i++) free(rt[i].pop), free(rt[i].gen_best), free(rt[i].gen_mean);
    free(rt);
    return 0;
}

/* --------------------------------------------------------------- eval */

/* Ranks of x[n] (1-based; ties share their mean rank). */
static void ranks(double *r, const double *x, int n)
{
    for (int i = 0; i < n; i++) {
        int below = 0, same = 0;
        for (int j = 0; j < n; j++) below += x[j] < x[i], same += x[j] == x[i];
        r[i] = below + (same + 1) / 2.0;
    }
}

/* Spearman's rank correlation of a[n] and b[n]: Pearson's on their ranks. */
static double spearman(const double *a, const double *b, int n)
{
    double *ra = nta_malloc((size_t)n * sizeof(double)), *rb = nta_malloc((size_t)n * sizeof(double));
    double sab = 0, saa = 0, sbb = 0, m = (n + 1) / 2.0;
    ranks(ra, a, n), ranks(rb, b, n);
    for (int i = 0; i < n; i++)
        sab += (ra[i] - m) * (rb[i] - m), saa += (ra[i] - m) * (ra[i] - m), sbb += (rb[i] - m) * (rb[i] - m);
    free(ra), free(rb);
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/* A random architecture whose MFLOPs fall in bin i of n equal bins between
 * the smallest and the largest architecture (rejection sampling). */
static Arch arch_in_bin(const NetDesc *d, Rng *r, int i, int n)
{
    Arch lo = arch_smallest(d), hi = arch_largest(d);
    double a = search_mflops(d, &lo), b = search_mflops(d, &hi), w = (b - a) / n;
    for (int t = 0; t < 1000000; t++) {
        Arch x = arch_random(d, r);
        double f = search_mflops(d, &x);
        if (f >= a + i * w && (f < a + (i + 1) * w || (i == n - 1 && f <= b))) return x;
    }
    return i < n / 2 ? lo : hi;   /* a bin no random draw reaches: its end of the space */
}

static int cmd_eval(int argc, char **argv)
{
    const char *data, *task, *device, *arch, *model[1];
    int batch, threads, limit, calib, random, seed, spread;
    Opt opts[] = {
        {"data", OPT_STR, &data, "fashion-mnist", "dataset whose test split is evaluated"},
        {"task", OPT_STR, &task, "", "instead of --data: a task of adapt (e.g. mnist-rotation), scored by its metric"},
        {"arch", OPT_STR, &arch, "largest", "for a supernet: largest, smallest, random or an architecture string"},
        {"random", OPT_INT, &random, "0", "for a supernet: evaluate N random architectures, a table by MFLOPs"},
        {"spread", OPT_INT, &spread, "0", "1: draw the i-th random architecture from the i-th of N equal MFLOPs bins between the smallest and the largest"},
        {"calib", OPT_INT, &calib, "20", "training batches for BN recalibration (supernets)"},
        {"seed", OPT_INT, &seed, "1", "seed of random architectures and recalibration batches"},
        {"batch", OPT_INT, &batch, "256", "images per forward pass"},
        {"limit", OPT_INT, &limit, "0", "use only the first N training and test images; 0 = all"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
    };
    Command cmd = {"eval", "MODEL [options]",
                   "report a model's (or a supernet sub-architecture's) test accuracy, MFLOPs and params",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? give the model file, e.g. 'nta eval model.nta'");
    if (threads == 0) threads = default_threads();
    need(batch > 1 && batch <= 65536 && limit >= 0 && threads > 0 && calib > 0 && random >= 0 &&
         (spread == 0 || spread == 1), &cmd, "--batch must be in 2..65536, --calib >= 1, --limit, --random, --threads >= 0, --spread 0 or 1");
    opts_print(&cmd);
    const Backend *be = pick_backend(device, threads);
    char err[512], text[512], m[128];
    double second;
    Net *net = net_load(model[0], be, batch, err, sizeof err);
    if (!net) nta_die("%s", err);
    DataSplits d;
    if (*task) data_task(&d, task, 0, 0, limit, 1);
    else data_load(&d, data, 0, limit, 1);
    check_fits(&net->d, &d, model[0]);
    net->loss = task_loss(&d);
    norm_to_data(&d, net);
    int super = net->d.space.nk > 0;
    if (!super && (strcmp(arch, "largest") || random))
        nta_die("%s is a fixed network; --arch and --random apply to supernets", model[0]);
    Rng r;
    rng_seed(&r, (uint64_t)seed);
    int n = random ? random : 1;
    Arch *as = nta_calloc((size_t)n, sizeof(Arch));
    double *acc = nta_calloc((size_t)n, sizeof(double)), *mf = nta_calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        as[i] = random && spread ? arch_in_bin(&net->d, &r, i, n) : arch_named(&net->d, random ? "random" : arch, &r, "--arch");
        if (super) acc[i] = eval_arch(net, &d, &d.test, &as[i], calib, (uint64_t)seed, &second);
        else acc[i] = task_score(net, &d, &d.test, &second);
        NetDesc sd = arch_standalone(&net->d, &as[i]);
        mf[i] = 1e-6 * net_flops(&sd);
    }
    /* report in order of cost */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && mf[j] < mf[j - 1]; j--) {
            Arch ta = as[j]; as[j] = as[j - 1]; as[j - 1] = ta;
            double t = mf[j]; mf[j] = mf[j - 1]; mf[j - 1] = t;
            t = acc[j]; acc[j] = acc[j - 1]; acc[j - 1] = t;
        }
    for (int i = 0; i < n && !random; i++) {
        NetDesc sd = arch_standalone(&net->d, &as[i]);
        arch_format(&net->d, &as[i], text, sizeof text);
        printf("%s on %s: test %s on %d images; %.2f MFLOPs, %zu params%s%s\n", model[0], d.name,
               fmt_metric(m, sizeof m, &d, acc[i], second), d.test.n, mf[i], net_params(&sd),
               super ? "; architecture " : "", super ? text : "");
    }
    if (random) printf("%s on %s, %d test images, BN recalibrated per architecture:\n  %8s %8s %9s  %s\n",
                       model[0], d.name, d.test.n, task_metric_name(&d), "MFLOPs", "params", "architecture");
    for (int i = 0; i < n && random; i++) {
        NetDesc sd = arch_standalone(&net->d, &as[i]);
        arch_format(&net->d, &as[i], text, sizeof text);
        printf("  %8.2f %8.2f %9zu  %s\n", acc[i], mf[i], net_params(&sd), text);
    }
    if (random > 2) printf("rank correlation of the metric with MFLOPs (Spearman): %.2f\n", spearman(acc, mf, n));
    free(as), free(acc), free(mf);
    net_free(net);
    data_free(&d);
    return 0;
}

/* --------------------------------------------------------------- arch */

static int cmd_arch(int argc, char **argv)
{
    const char *arch[1], *input, *kernels, *expands;
    int classes, depth, min_depth;
    Opt opts[] = {
        {"input", OPT_STR, &input, "28x28x1", "image size HxWxC"},
        {"classes", OPT_INT, &classes, "10", "classes of the linear head"},
        {"kernels", OPT_STR, &kernels, "3,5,7", "depthwise kernel choices"},
        {"expands", OPT_STR, &expands, "3,4,6", "expansion ratio choices"},
        {"depth", OPT_INT, &depth, "4", "largest blocks per stage (3 stages)"},
        {"min-depth", OPT_INT, &min_depth, "2", "smallest blocks per stage"},
    };
    Command cmd = {"arch", "STRING|largest|smallest [options]",
                   "print an architecture of the supernet layer by layer, with its MFLOPs and params",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, arch, 1);
    need(npos == 1, &cmd, "which architecture? e.g. 'nta arch k3e6-k3e6/k3e6-k3e6/k3e6-k3e6'");
    int h, w, c;
    char err[512], text[512];
    need(sscanf(input, "%dx%dx%d", &h, &w, &c) == 3 && h > 0 && w > 0 && c > 0 && c <= 4 && h <= 4096 &&
         w <= 4096, &cmd, "--input must be HxWxC, e.g. 28x28x1 or 32x32x3");
    need(classes > 0 && depth >= min_depth && min_depth >= 1 && depth <= NET_MAX_BLOCKS / 3, &cmd,
         "need --classes >= 1 and 1 <= --min-depth <= --depth <= 10");
    Space sp;
    if (parse_space(&sp, kernels, expands, min_depth, err, sizeof err)) nta_die("%s", err);
    NetDesc d = net_supernet(h, w, c, classes, &sp, depth);
    Arch a = arch_named(&d, arch[0], NULL, NULL);
    arch_format(&d, &a, text, sizeof text);
    printf("%s\n", text);
    NetDesc sd = arch_standalone(&d, &a);
    net_print(&sd);
    return 0;
}

/* --------------------------------------------------------------- main */

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "train the reference network on a dataset, report test accuracy"},
    {"pretrain", cmd_pretrain, "train a weight-sharing supernet on the source data"},
    {"adapt", cmd_adapt, "NTAA: transfer a supernet to a task and adapt its architecture"},
    {"finetune", cmd_finetune, "baselines: finetune a fixed architecture (WP&F) or train it from scratch"},
    {"demo", cmd_demo, "the whole comparison: supernet, NTAA and baselines on every task, report.html"},
    {"eval", cmd_eval, "evaluate a model, or sub-architectures of a supernet, on a test split"},
    {"arch", cmd_arch, "print an architecture of the supernet layer by layer"},
};

static void main_usage(FILE *f)
{
    fprintf(f, "nta: neural transfer and architecture adaptation (NTAA)\n\n"
               "usage: nta COMMAND [options]     (nta COMMAND --help for its options)\n"
               "       nta --version             the commit and what this build has\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

/* What this binary is. The Makefile's nta rule defines NTA_COMMIT (git
 * describe, "unknown" outside a checkout), NTA_CUDA_ARCHS (nvcc builds) and
 * NTA_GLIBC (the newest GLIBC_ symbol version of the linked binary, from a
 * first link). */
#ifndef NTA_COMMIT
#define NTA_COMMIT "unknown"
#endif
#ifndef NTA_GLIBC
#define NTA_GLIBC "unknown"
#endif
static int main_version(void)
{
    printf("nta commit %s\n", NTA_COMMIT);
#if defined(NTA_CUDA) && defined(NTA_CUDA_ARCHS)
    printf("  CUDA backend: %s\n", NTA_CUDA_ARCHS);
#elif defined(NTA_CUDA)
    printf("  CUDA backend: the SIMT emulator on the CPU (a test build)\n");
#else
    printf("  CUDA backend: not built (no nvcc at build time)\n");
#endif
    printf("  NVRTC: not built\n");
    printf("  CPU backend: %s\n", cpu_simd());
    printf("  glibc: %s or newer (the newest GLIBC_ symbol version it uses)\n", *NTA_GLIBC ? NTA_GLIBC : "unknown");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        main_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) return main_version();
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "nta: unknown command '%s'\n\n", argv[1]);
    main_usage(stderr);
    return 2;
}
