/* nta.c: the command line. main() reads like a table of contents: find the
 * subcommand, parse its options from one table (the same table prints the
 * usage text and the resolved settings), run it.
 *
 *   nta train   train a network from scratch on a dataset
 *   nta eval    evaluate a saved model on a dataset's test split
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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

static const Backend *pick_backend(const char *device, int threads)
{
    if (!strcmp(device, "cuda"))
        nta_die("--device cuda: this nta was built without the CUDA backend; use --device cpu");
    if (strcmp(device, "cpu") && strcmp(device, "auto"))
        nta_die("--device must be auto, cpu or cuda (got '%s')", device);
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

/* Load images idx[0..B) of split s into the network's input and labels. */
static void load_batch(Net *net, const DataSplits *d, const Dataset *s, const int *idx, int B,
                       float *x, int32_t *y, Rng *aug)
{
    data_batch(d, s, idx, B, x, y, aug);
    net->be->upload(net->x_in, x, (size_t)B * s->h * s->w * s->c * sizeof(float));
    net->be->upload(net->y_in, y, (size_t)B * sizeof(int32_t));
}

/* Accuracy (and mean loss) of the network on a whole split, running statistics. */
static double evaluate(Net *net, const DataSplits *d, const Dataset *s, double *loss)
{
    int B = net->B, right = 0;
    double sum = 0;
    float *x = nta_malloc((size_t)B * s->h * s->w * s->c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    int *idx = nta_malloc((size_t)B * sizeof(int));
    for (int i = 0; i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B, c = 0;
        for (int j = 0; j < b; j++) idx[j] = i + j;
        load_batch(net, d, s, idx, b, x, y, NULL);
        net_forward(net, b, 0);
        sum += net_loss(net, b, &c);
        right += c;
    }
    free(x), free(y), free(idx);
    if (loss) *loss = s->n ? sum / s->n : 0;
    return s->n ? (double)right / s->n : 0;
}

/* The network's input and classes must match the data. */
static void check_fits(const NetDesc *nd, const DataSplits *d, const char *what)
{
    const Dataset *t = &d->test;
    if (nd->in_h != t->h || nd->in_w != t->w || nd->in_c != t->c)
        nta_die("%s expects %dx%dx%d images, but data '%s' has %dx%dx%d", what, nd->in_h,
                nd->in_w, nd->in_c, d->name, t->h, t->w, t->c);
    if (nd->classes < d->train.classes || nd->classes < d->test.classes)
        nta_die("%s has %d classes, but data '%s' has labels up to %d", what, nd->classes,
                d->name, (d->train.classes > d->test.classes ? d->train.classes : d->test.classes) - 1);
}

/* -------------------------------------------------------------- train */

typedef struct {
    const char *data, *out, *device;
    int epochs, batch, val, limit, seed, threads, augment;
    float lr, momentum, wd, warmup;
} TrainCfg;

static int cmd_train(int argc, char **argv)
{
    TrainCfg c;
    Opt opts[] = {
        {"data", OPT_STR, &c.data, "fashion-mnist", "fashion-mnist, mnist, idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or cifar:DIR"},
        {"epochs", OPT_INT, &c.epochs, "15", "passes over the training split"},
        {"batch", OPT_INT, &c.batch, "128", "images per step"},
        {"lr", OPT_FLOAT, &c.lr, "0.1", "peak learning rate (cosine decay to 0)"},
        {"warmup", OPT_FLOAT, &c.warmup, "1", "epochs of linear learning-rate warm-up"},
        {"momentum", OPT_FLOAT, &c.momentum, "0.9", "SGD momentum"},
        {"wd", OPT_FLOAT, &c.wd, "5e-5", "weight decay of conv and linear weights"},
        {"augment", OPT_INT, &c.augment, "1", "random crop (and flip where the dataset allows): 1 on, 0 off"},
        {"val", OPT_INT, &c.val, "5000", "training images held out for validation"},
        {"limit", OPT_INT, &c.limit, "0", "use only the first N training (and test) images; 0 = all"},
        {"seed", OPT_INT, &c.seed, "1", "seed of initialisation, shuffles and augmentation"},
        {"threads", OPT_INT, &c.threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &c.device, "auto", "auto, cpu or cuda"},
        {"out", OPT_STR, &c.out, "model.nta", "model file written after every epoch (-o)"},
    };
    Command cmd = {"train", "[options]", "train the reference network on a dataset and report test accuracy",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    if (c.threads == 0) c.threads = default_threads();
    need(c.epochs > 0, &cmd, "--epochs must be at least 1");
    need(c.batch > 1 && c.batch <= 65536, &cmd, "--batch must be in 2..65536");
    need(c.lr > 0 && c.momentum >= 0 && c.momentum < 1 && c.wd >= 0 && c.warmup >= 0, &cmd,
         "--lr must be > 0, --momentum in [0,1), --wd and --warmup >= 0");
    need(c.val >= 0 && c.limit >= 0 && c.threads > 0, &cmd, "--val, --limit and --threads must be >= 0");
    opts_print(&cmd);

    const Backend *be = pick_backend(c.device, c.threads);
    DataSplits d;
    data_load(&d, c.data, c.val, c.limit, (uint64_t)c.seed);
    printf("data %s: %d train, %d val, %d test images of %dx%dx%d, %d classes\n", d.name,
           d.train.n, d.val.n, d.test.n, d.train.h, d.train.w, d.train.c, d.train.classes);
    int B = c.batch, steps = d.train.n / B;
    if (steps == 0) nta_die("--batch %d is larger than the %d training images", B, d.train.n);
    NetDesc nd = net_reference(d.train.h, d.train.w, d.train.c, d.train.classes);
    Net *net = net_create(&nd, be, B, (uint64_t)c.seed, 1);

    Rng rng;
    rng_seed(&rng, (uint64_t)c.seed ^ 0x5eed);
    int *perm = nta_malloc((size_t)d.train.n * sizeof(int));
    float *x = nta_malloc((size_t)B * d.train.h * d.train.w * d.train.c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    long total = (long)steps * c.epochs, warm = lrintf(c.warmup * steps), step = 0;
    int tty = isatty(fileno(stdout));
    double t0 = nta_now(), tlast = t0;
    char eta[32], meta[256];

    for (int ep = 1; ep <= c.epochs; ep++) {
        data_shuffle(perm, d.train.n, &rng);
        double loss = 0;
        int right = 0, seen = 0;
        for (int s = 0; s < steps; s++, step++) {
            int corr = 0;
            load_batch(net, &d, &d.train, perm + (size_t)s * B, B, x, y, c.augment ? &rng : NULL);
            net_zero_grad(net);
            net_forward(net, B, 1);
            loss += net_loss(net, B, &corr);
            net_backward(net, B);
            net_update(net, lr_cosine(c.lr, step, warm, total), c.momentum, c.wd);
            right += corr, seen += B;
            double now = nta_now();
            if (now - tlast > (tty ? 0.5 : 30) || s == steps - 1) {
                double rate = (step + 1) * (double)B / (now - t0);
                fmt_time(eta, sizeof eta, (total - step - 1) * (double)B / rate);
                printf("%sepoch %d/%d step %d/%d loss %.4f train acc %.2f%% %.0f img/s ETA %s%s",
                       tty ? "\r" : "", ep, c.epochs, s + 1, steps, loss / seen,
                       100.0 * right / seen, rate, eta, tty ? "\033[K" : "\n");
                fflush(stdout);
                tlast = now;
            }
        }
        if (tty) printf("\n");
        if (d.val.n) {
            double vloss, vacc = evaluate(net, &d, &d.val, &vloss);
            printf("epoch %d: val loss %.4f val acc %.2f%%\n", ep, vloss, 100 * vacc);
        }
        snprintf(meta, sizeof meta, "data=%s epoch=%d/%d seed=%d\n", d.name, ep, c.epochs, c.seed);
        if (*c.out && net_save(net, c.out, meta, 0) != 0) nta_die("could not save the model to '%s'", c.out);
    }
    double tloss, tacc = evaluate(net, &d, &d.test, &tloss);
    fmt_time(eta, sizeof eta, nta_now() - t0);
    printf("test accuracy %.2f%% (loss %.4f) on %d images; %.2f MFLOPs, %zu params; trained in %s\n",
           100 * tacc, tloss, d.test.n, 1e-6 * net_flops(&nd), net_params(&nd), eta);
    if (*c.out) printf("model saved to %s\n", c.out);
    free(perm), free(x), free(y);
    net_free(net);
    data_free(&d);
    return 0;
}

/* --------------------------------------------------------------- eval */

static int cmd_eval(int argc, char **argv)
{
    const char *data, *device, *model[1];
    int batch, threads, limit;
    Opt opts[] = {
        {"data", OPT_STR, &data, "fashion-mnist", "dataset whose test split is evaluated"},
        {"batch", OPT_INT, &batch, "256", "images per forward pass"},
        {"limit", OPT_INT, &limit, "0", "use only the first N test images; 0 = all"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
    };
    Command cmd = {"eval", "MODEL [options]", "report a saved model's test accuracy, MFLOPs and params",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? give the model file, e.g. 'nta eval model.nta'");
    if (threads == 0) threads = default_threads();
    need(batch > 0 && batch <= 65536 && limit >= 0 && threads > 0, &cmd,
         "--batch must be in 1..65536, --limit >= 0, --threads >= 0");
    opts_print(&cmd);
    const Backend *be = pick_backend(device, threads);
    char err[512];
    Net *net = net_load(model[0], be, batch, err, sizeof err);
    if (!net) nta_die("%s", err);
    DataSplits d;
    data_load(&d, data, 0, limit, 1);
    check_fits(&net->d, &d, model[0]);
    double loss, acc = evaluate(net, &d, &d.test, &loss);
    printf("%s on %s: test accuracy %.2f%% (loss %.4f) on %d images; %.2f MFLOPs, %zu params\n",
           model[0], d.name, 100 * acc, loss, d.test.n, 1e-6 * net_flops(&net->d),
           net_params(&net->d));
    net_free(net);
    data_free(&d);
    return 0;
}

/* --------------------------------------------------------------- main */

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "train the reference network on a dataset, report test accuracy"},
    {"eval", cmd_eval, "evaluate a saved model on a dataset's test split"},
};

static void main_usage(FILE *f)
{
    fprintf(f, "nta: neural transfer and architecture adaptation (NTAA)\n\n"
               "usage: nta COMMAND [options]     (nta COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        main_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "nta: unknown command '%s'\n\n", argv[1]);
    main_usage(stderr);
    return 2;
}
