/* nta.c: the command line. main() reads like a table of contents: find the
 * subcommand, parse its options from one table (the same table prints the
 * usage text and the resolved settings), check them, call the module that
 * does the work (train.c, ntaa.c, demo.c, eval.c).
 *
 *   nta train     train the reference network from scratch on a dataset
 *   nta pretrain  train a weight-sharing supernet (sandwich or uniform sampling)
 *   nta adapt     NTAA: transfer a supernet to a task, search its architecture, finetune
 *   nta finetune  the WP&F baseline (or, --from-scratch, classic NAS retraining)
 *   nta demo      pretrain (or reuse) a supernet, NTAA and the baselines on every task, a report
 *   nta eval      evaluate a model, or a supernet's sub-architectures, on a test split
 *   nta latency   this machine's per-layer latency table of a supernet (adapt --budget-ms)
 *   nta arch      print an architecture of the supernet layer by layer
 *   nta predict   a model's output for every test image, as CSV
 *   nta export    a model's network for inference, batchnorm folded (rtc.c)
 *   nta bench     time a model's inference: specialised, generic, CPU
 */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"
#include "eval.h"
#include "ntaa.h"
#include "rtc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ options */

typedef enum { OPT_INT, OPT_FLOAT, OPT_DOUBLE, OPT_STR } OptType;

typedef struct {
    const char *name;   /* "epochs" for --epochs */
    OptType type;
    void *dst;          /* int *, float *, double *, const char ** */
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
                 o->type == OPT_INT ? "N" : o->type == OPT_STR ? "S" : "X");
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
    } else if (o->type == OPT_FLOAT) {         /* underflow (1e-50) is a number: it rounds to 0 */
        float v = strtof(text, &end);
        if (*end || end == text || !isfinite(v)) return -1;
        *(float *)o->dst = v;
    } else if (o->type == OPT_DOUBLE) {
        double v = strtod(text, &end);
        if (*end || end == text || !isfinite(v)) return -1;
        *(double *)o->dst = v;
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

/* The value argv gives option --name (its last --name VALUE or --name=VALUE),
 * or NULL: for a default that depends on another option, set before parsing. */
static const char *argv_value(int argc, char **argv, const char *name)
{
    const char *v = NULL;
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, name, len)) continue;
        if (argv[i][2 + len] == '=') v = argv[i] + 3 + len;
        else if (!argv[i][2 + len] && i + 1 < argc) v = argv[++i];
    }
    return v;
}

/* Option `name` of c defaults to def instead (before opts_parse). */
static void opt_default(const Command *c, const char *name, const char *def)
{
    for (int i = 0; i < c->nopts; i++)
        if (!strcmp(c->opts[i].name, name)) c->opts[i].def = def;
}

/* One line with every resolved setting, so a log says how it was run. */
static void opts_print(const Command *c)
{
    printf("nta %s:", c->name);
    for (int i = 0; i < c->nopts; i++) {
        const Opt *o = &c->opts[i];
        if (o->type == OPT_INT) printf(" %s=%d", o->name, *(int *)o->dst);
        else if (o->type == OPT_FLOAT) printf(" %s=%g", o->name, *(float *)o->dst);
        else if (o->type == OPT_DOUBLE) printf(" %s=%g", o->name, *(double *)o->dst);
        else printf(" %s=%s", o->name, **(const char **)o->dst ? *(const char **)o->dst : "none");
    }
    printf("\n");
}

/* Exit 2 with a message naming the option (and where to read about it). */
static void bad_option(const Command *c, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void bad_option(const Command *c, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "nta %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun 'nta %s --help' for the options\n", c->name);
    exit(2);
}

/* Check a condition on the options or exit 2 with `what`. */
static void need(int ok, const Command *c, const char *what)
{
    if (!ok) bad_option(c, "%s", what);
}

/* --NAME must lie in [lo, hi]. */
static void need_in(const Command *c, const char *name, double v, double lo, double hi)
{
    if (!(v >= lo && v <= hi)) bad_option(c, "--%s must be in %.15g..%.15g (got %.15g)", name, lo, hi, v);
}

/* A flag: --NAME must be 0 or 1. */
static void need_flag(const Command *c, const char *name, int v)
{
    if (v != 0 && v != 1) bad_option(c, "--%s must be 0 or 1 (got %d)", name, v);
}

/* A file the run will write ("" = none): it must be a regular file or not
 * exist yet, in a folder that exists and can be written, so that nothing is
 * trained only to be lost, and no device or folder is replaced. */
static void need_output(const Command *c, const char *name, const char *path)
{
    struct stat st;
    char dir[4096];
    if (!*path) bad_option(c, "--%s is empty; give a file name", name);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        bad_option(c, "--%s '%s' is not a regular file (a folder, device or pipe); give a file name", name, path);
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        bad_option(c, "--%s '%s': the folder '%s' does not exist; create it first", name, path, dir);
    if (access(dir, W_OK) != 0) bad_option(c, "--%s '%s': cannot write in the folder '%s'", name, path, dir);
    /* the name itself (too long, a read-only file system): net_save writes
     * PATH.tmpPID, then renames it, so that name is made and removed now */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp)
        bad_option(c, "--%s: the path is too long (%zu characters)", name, strlen(path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 && errno != EEXIST)
        bad_option(c, "--%s '%.200s': cannot create it: %s", name, path, strerror(errno));
    if (fd >= 0) close(fd), unlink(tmp);
}

/* --------------------------------------------------------- the machine */

/* --device auto: CUDA when this nta has it (NTA_CUDA) and a GPU answers, else
 * the CPU with one line saying why; cuda: a GPU or exit 1; cpu: the CPU. */
/* Where pick_backend's line goes: stdout, but stderr where stdout is data
 * (predict's CSV) */
static FILE *device_note;

static const Backend *pick_backend(const char *device, int threads)
{
#if defined(NTA_CUDA)
    FILE *note = device_note ? device_note : stdout;
    if (strcmp(device, "cpu") && strcmp(device, "auto") && strcmp(device, "cuda"))
        nta_die("--device must be auto, cpu or cuda (got '%s')", device);
    if (strcmp(device, "cpu")) {
        char why[256];
        if (cuda_available(why, sizeof why)) {
            fprintf(note, "device: cuda, %s\n", why);
            cpu_set_threads(threads);
            dist_report_backend(&cuda_backend, threads);
            return &cuda_backend;
        }
        if (!strcmp(device, "cuda")) nta_die("--device cuda: %s; use --device cpu", why);
        fprintf(note, "device: %s; using the CPU\n", why);
    }
#else
    if (!strcmp(device, "cuda"))
        nta_die("--device cuda: this nta was built without the CUDA backend; use --device cpu");
    if (strcmp(device, "cpu") && strcmp(device, "auto"))
        nta_die("--device must be auto, cpu or cuda (got '%s')", device);
#endif
    cpu_set_threads(threads);
    dist_report_backend(&cpu_backend, threads);
    return &cpu_backend;
}

/* One per core, shared among the MPI ranks on this host. */
static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / dist_local_size();
    return n > 0 ? (int)n : 1;
}

/* -------------------------------------------------- the search space */

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

/* ------------------------------------------------------ option tables */

/* Options of every training run: the SGD settings, then (RUN_OPTS) the seed,
 * threads and device. t is a TrainCfg. */
#define SGD_OPTS(t, batch_def, lr_def)                                                                 \
    {"batch", OPT_INT, &t.batch, batch_def, "images per step"},                                       \
    {"lr", OPT_FLOAT, &t.lr, lr_def, "peak learning rate of each training phase (cosine decay to 0)"}, \
    {"warmup", OPT_FLOAT, &t.warmup, "1", "epochs of linear learning-rate warm-up"},                   \
    {"momentum", OPT_FLOAT, &t.momentum, "0.9", "SGD momentum"},                                      \
    {"wd", OPT_FLOAT, &t.wd, "5e-5", "weight decay of conv and linear weights"},                      \
    {"augment", OPT_INT, &t.augment, "1", "random crop (and flip where the dataset allows): 1 on, 0 off"}, \
    {"shards", OPT_INT, &t.shards, "0", "data parallelism: each batch in this many shards, each with its own batchnorm statistics, their gradients averaged; 0 = one per MPI rank (nta-mpi), 1 without MPI"}
#define RUN_OPTS(t)                                                                                    \
    {"seed", OPT_INT, &t.seed, "1", "seed of every random choice (initialisation, shuffles, augmentation, sampling)"}, \
    {"threads", OPT_INT, &t.threads, "0", "CPU threads; 0 = one per core"},                           \
    {"device", OPT_STR, &t.device, "auto", "auto, cpu or cuda"}

/* train and pretrain (c is a TrainCfg); the caller appends its own. */
#define TRAIN_OPTS(c, epochs_def, out_def)                                                          \
    {"data", OPT_STR, &c.data, "fashion-mnist", "fashion-mnist, mnist, idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or cifar:DIR"}, \
    {"epochs", OPT_INT, &c.epochs, epochs_def, "passes over the training split"},                     \
    SGD_OPTS(c, "128", "0.1"),                                                                       \
    {"val", OPT_INT, &c.val, "5000", "training images held out for validation"},                     \
    {"limit", OPT_INT, &c.limit, "0", "use only the first N training (and test) images; 0 = all"},   \
    RUN_OPTS(c),                                                                                     \
    {"resume", OPT_STR, &c.resume, "", "continue from this checkpoint (same options as the run that wrote it)"}, \
    {"stop-after", OPT_INT, &c.stop_after, "0", "stop after this epoch, to --resume later; 0 = run all epochs"}, \
    {"out", OPT_STR, &c.out, out_def, "checkpoint written after every epoch (-o)"}

/* One set of defaults: adapt and finetune default to the settings of the
 * demo's comparison (README, Results), which runs them on every task. */
#define DEF_TRANSFER_EPOCHS "12"   /* neural transfer */
#define DEF_FINETUNE_EPOCHS "16"   /* finetuning a searched winner */
#define DEF_FIXED_EPOCHS "28"      /* WP&F, from scratch: transfer + finetuning epochs, 12 + 16 */
#define DEF_SEEDS "3"
#define DEF_TASK "mnist"
#define DEF_UDA_ENTROPY "0.1"
#define DEF_UDA_MMD "1"
#define DEF_TEMPERATURE "0.1"
#define DEF_SSL_WD "1e-5"         /* pretrain --objective ssl's weight decay (the supervised default: 5e-5) */
#define DEF_SSL_EPOCHS "7"        /* and its epochs (supervised: 6); ~50 minutes on the 2-core test machine */
#define DEF_LATENCY_BATCH "1"

/* adapt, finetune and demo (a is an AdaptCfg); the caller appends its own. */
#define ADAPT_OPTS(a, epochs_name, epochs_def, epochs_help)                                           \
    {"task", OPT_STR, &a.task, DEF_TASK, "mnist, mnist-parity, mnist-rotation, mnist-retrieval, mnist-uda, or classify:DATA with DATA as for --data of train"}, \
    {"train-images", OPT_INT, &a.train_images, "1000", "labelled training images of the task (0 = all)"}, \
    {"val", OPT_INT, &a.train.val, "500", "training images held out for validation (the search's fitness)"}, \
    {"limit", OPT_INT, &a.train.limit, "0", "use only the first N images of the task's files; 0 = all"}, \
    {epochs_name, OPT_INT, &a.train.epochs, epochs_def, epochs_help},                                 \
    SGD_OPTS(a.train, "64", "0.05"),                                                                 \
    {"calib", OPT_INT, &a.train.calib, "10", "training batches for BN recalibration before each evaluation"}, \
    {"keep-best", OPT_INT, &a.train.keep_best, "0", "1: a finetuned model keeps its epoch with the best validation metric (epoch 0, as inherited, only for a fixed architecture: a searched winner was chosen on that split); 0: the last"}, \
    {"uda-entropy", OPT_FLOAT, &a.train.uda_entropy, DEF_UDA_ENTROPY, "mnist-uda: weight of the unlabelled target images' mean entropy"}, \
    {"uda-mmd", OPT_FLOAT, &a.train.uda_mmd, DEF_UDA_MMD, "mnist-uda: weight of the MMD between source and target features"}, \
    {"seeds", OPT_INT, &a.seeds, DEF_SEEDS, "finetuning runs per method with seeds SEED, SEED+1, ...: their mean and standard deviation are reported; a saved model is the run with SEED"}, \
    RUN_OPTS(a.train)

#define SEARCH_OPTS(a)                                                                                \
    {"transfer-epochs", OPT_INT, &a.transfer_epochs, DEF_TRANSFER_EPOCHS, "epochs of neural transfer (the whole supernet, sandwich rule)"}, \
    {"transfer-within-budget", OPT_INT, &a.transfer_within, "0", "1: neural transfer trains only architectures within the MFLOPs budget (the demo: its largest budget), the sandwich's largest replaced by a random one within it; 0: the whole supernet"}, \
    {"online-epochs", OPT_INT, &a.online_epochs, "0", "NAT's online adaptation: before each generation of evolution, N epochs of training the supernet on the population's architectures, then the population scored again; 0: none"}, \
    {"budget-mflops", OPT_DOUBLE, &a.search.budget_mflops, "20", "largest MFLOPs an architecture may cost"}, \
    {"population", OPT_INT, &a.search.population, "16", "candidates kept per generation"},           \
    {"generations", OPT_INT, &a.search.generations, "6", "generations of evolution"},                 \
    {"parents", OPT_INT, &a.search.parents, "4", "fittest candidates that make children"},             \
    {"mutants", OPT_INT, &a.search.mutants, "8", "children by mutation per generation"},              \
    {"crosses", OPT_INT, &a.search.crosses, "8", "children by crossover per generation (0 = no crossover)"}, \
    {"mutate-prob", OPT_FLOAT, &a.search.mutate_prob, "0.1", "probability of resampling each choice"}

/* adapt and demo: the search's space (not rank's, which spreads its
 * architectures over the whole supernet). */
#define KIND_SPACE_OPT(a) \
    {"kind-space", OPT_INT, &a.kind_space, "1", "1: search the task kind's space: on regression the last stage at its full depth where the budget leaves room (it ordered the finetuned MAE in nta rank's study), on the other kinds the whole supernet; 0: the whole supernet"}

/* Limits that keep every count and product in range (and a typo from
 * allocating the machine away). */
#define MAX_THREADS 1024
#define MAX_EPOCHS 100000
#define MAX_IMAGES 100000000

/* --device: known values only. */
static void need_device(const Command *c, const char *device)
{
    if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
        bad_option(c, "--device must be auto, cpu or cuda (got '%s')", device);
}

/* The checks every training run shares; resolves --threads 0. */
static void check_sgd(const Command *cmd, TrainCfg *t)
{
    need_in(cmd, "batch", t->batch, 2, 65536);
    if (!(t->lr > 0)) bad_option(cmd, "--lr must be > 0 (got %g)", t->lr);
    need(t->momentum >= 0 && t->momentum < 1, cmd, "--momentum must be in [0,1)");
    need_in(cmd, "wd", t->wd, 0, 1);
    need_in(cmd, "warmup", t->warmup, 0, MAX_EPOCHS);
    need_in(cmd, "threads", t->threads, 0, MAX_THREADS);
    need_in(cmd, "shards", t->shards, 0, 4096);
    need_flag(cmd, "augment", t->augment);
    need_in(cmd, "limit", t->limit, 0, MAX_IMAGES);
    need_device(cmd, t->device);
    if (t->threads == 0) t->threads = default_threads();
}

static void check_train(const Command *cmd, TrainCfg *c)
{
    char err[512];
    check_sgd(cmd, c);
    need_in(cmd, "epochs", c->epochs, 1, MAX_EPOCHS);
    need_in(cmd, "val", c->val, 0, MAX_IMAGES);
    need_in(cmd, "stop-after", c->stop_after, 0, c->epochs);
    if (*c->resume && access(c->resume, R_OK) != 0)
        nta_die("--resume: cannot read '%s': %s", c->resume, strerror(errno));
    if (data_spec_check(c->data, err, sizeof err)) bad_option(cmd, "--data: %s", err);
    need_output(cmd, "out", c->out);
}

static void check_adapt(const Command *cmd, AdaptCfg *a)
{
    char err[512];
    TrainCfg *t = &a->train;
    check_sgd(cmd, t);
    t->out = t->resume = "";                  /* phases write no checkpoints */
    need_in(cmd, "epochs", t->epochs, 0, MAX_EPOCHS);
    need_in(cmd, "calib", t->calib, 1, 100000);
    need_in(cmd, "uda-entropy", t->uda_entropy, 0, 1000);
    need_in(cmd, "uda-mmd", t->uda_mmd, 0, 1000);
    need_in(cmd, "val", t->val, 1, MAX_IMAGES);
    need_in(cmd, "train-images", a->train_images, 0, MAX_IMAGES);
    need_flag(cmd, "keep-best", t->keep_best);
    need_in(cmd, "seeds", a->seeds, 1, 100);
    if (a->task && data_task_check(a->task, err, sizeof err)) bad_option(cmd, "--task: %s", err);
}

/* --uda-entropy and --uda-mmd weigh mnist-uda's losses: changed from their
 * defaults where no task is mnist-uda (uda 0), they would be ignored */
static void need_uda_task(const Command *cmd, const TrainCfg *t, int uda)
{
    need(uda || (t->uda_entropy == (float)atof(DEF_UDA_ENTROPY) && t->uda_mmd == (float)atof(DEF_UDA_MMD)), cmd,
         "--uda-entropy and --uda-mmd apply only to the task mnist-uda");
}

static void check_search(const Command *cmd, AdaptCfg *a)
{
    const SearchCfg *s = &a->search;
    need_in(cmd, "transfer-epochs", a->transfer_epochs, 0, MAX_EPOCHS);
    need_flag(cmd, "transfer-within-budget", a->transfer_within);
    need(!a->transfer_within || s->budget_mflops > 0, cmd, "--transfer-within-budget 1 needs an MFLOPs budget (--budget-mflops)");
    a->transfer_region = a->transfer_within ? s->budget_mflops : 0;
    need_in(cmd, "budget-mflops", s->budget_mflops, 0, 1e9);
    need(s->budget_mflops >= 1e-3 || (s->budget_mflops == 0 && s->budget_ms > 0), cmd,
         "--budget-mflops must be at least 0.001, or 0 (none) with --budget-ms");
    need_in(cmd, "population", s->population, 1, 10000);
    need_in(cmd, "generations", s->generations, 0, 10000);
    need_in(cmd, "parents", s->parents, 1, s->population);
    need_in(cmd, "mutants", s->mutants, 0, 10000);
    need_in(cmd, "crosses", s->crosses, 0, 10000);
    need_in(cmd, "mutate-prob", s->mutate_prob, 0, 1);
    need_in(cmd, "random", a->random, 0, 1000000);
    need_in(cmd, "online-epochs", a->online_epochs, 0, MAX_EPOCHS);
}

/* The description of the model or supernet a command starts from (exit 1
 * if the file cannot be read). */
static NetDesc probe_desc(const char *path)
{
    char err[512];
    Net *probe = net_load(path, LOSS_XENT, &cpu_backend, 2, err, sizeof err);
    if (!probe) nta_die("%s", err);
    NetDesc d = *net_desc(probe);
    net_free(probe);
    return d;
}

/* A supernet whose smallest architecture the budget (--OPTION) admits. */
static void need_supernet(const Command *cmd, const char *option, const char *path, const NetDesc *d, double budget)
{
    if (d->space.nk == 0) nta_die("%s is a fixed network, not a supernet: give 'nta pretrain' output", path);
    Arch small = arch_smallest(d);
    double least = search_mflops(d, &small);
    if (budget > 0 && least > budget)
        bad_option(cmd, "--%s %g admits no architecture of %s: its smallest costs %.2f MFLOPs", option, budget,
                   path, least);
}

/* ------------------------------------------------------------ commands */

static int cmd_train(int argc, char **argv)
{
    TrainCfg c = {0};
    Opt opts[] = {TRAIN_OPTS(c, "15", "model.nta")};
    Command cmd = {"train", "[options]", "train the reference network on a dataset and report test accuracy",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    check_train(&cmd, &c);
    opts_print(&cmd);
    return train_run(&c, SAMPLE_FIXED, pick_backend(c.device, c.threads));
}

static int cmd_pretrain(int argc, char **argv)
{
    TrainCfg c = {0};
    const char *sampling, *kernels, *expands, *objective;
    int min_depth;
    char err[256];
    Opt opts[] = {
        TRAIN_OPTS(c, "6", "supernet.nta"),
        {"objective", OPT_STR, &objective, "supervised", "supervised (the labels, cross-entropy) or ssl (self-supervised, SimCLR: two augmented views per image, no labels; --batch counts views; --epochs defaults to " DEF_SSL_EPOCHS ", --wd to " DEF_SSL_WD ")"},
        {"temperature", OPT_FLOAT, &c.tau, DEF_TEMPERATURE, "ssl: the NT-Xent temperature"},
        {"sampling", OPT_STR, &sampling, "sandwich", "sandwich (largest + smallest + 2 random per step) or uniform (1 random)"},
        {"kernels", OPT_STR, &kernels, "3,5,7", "depthwise kernel choices"},
        {"expands", OPT_STR, &expands, "3,4,6", "expansion ratio choices"},
        {"depth", OPT_INT, &c.depth, "4", "largest blocks per stage (3 stages)"},
        {"min-depth", OPT_INT, &min_depth, "2", "smallest blocks per stage"},
        {"calib", OPT_INT, &c.calib, "20", "training batches for BN recalibration before each evaluation"},
    };
    Command cmd = {"pretrain", "[options]",
                   "train a weight-sharing supernet on the source data (sampled sub-architectures per step)",
                   opts, sizeof opts / sizeof *opts};
    const char *asked = argv_value(argc, argv, "objective");
    if (asked && !strcmp(asked, "ssl")) {
        opt_default(&cmd, "epochs", DEF_SSL_EPOCHS);
        opt_default(&cmd, "wd", DEF_SSL_WD);
    }
    opts_parse(&cmd, argc, argv, NULL, 0);
    check_train(&cmd, &c);
    int rule = !strcmp(sampling, "sandwich") ? SAMPLE_SANDWICH : !strcmp(sampling, "uniform") ? SAMPLE_UNIFORM : -1;
    need(rule > 0, &cmd, "--sampling must be sandwich or uniform");
    c.ssl = !strcmp(objective, "ssl");
    need(c.ssl || !strcmp(objective, "supervised"), &cmd, "--objective must be supervised or ssl");
    need_in(&cmd, "temperature", c.tau, 0.01, 100);
    need(c.ssl || c.tau == (float)atof(DEF_TEMPERATURE), &cmd, "--temperature is used only with --objective ssl");
    need(!c.ssl || c.batch % 2 == 0, &cmd, "--objective ssl: --batch counts the two views of each image; give an even number");
    need(!c.ssl || c.augment, &cmd, "--objective ssl learns from augmented views: --augment 0 leaves nothing to learn");
    need(c.depth >= min_depth && min_depth >= 1 && c.depth <= NET_MAX_BLOCKS / 3, &cmd,
         "need 1 <= --min-depth <= --depth <= 10");
    need_in(&cmd, "calib", c.calib, 1, 100000);
    if (parse_space(&c.space, kernels, expands, min_depth, err, sizeof err)) need(0, &cmd, err);
    opts_print(&cmd);
    return train_run(&c, rule, pick_backend(c.device, c.threads));
}

/* The latency table of --budget-ms for adapt's backend, threads and
 * --latency-batch (cached, or measured now), into t; exit 2 when the budget
 * admits no architecture. */
static void adapt_latency(const Command *cmd, AdaptCfg *a, const NetDesc *d, const Backend *be, int batch,
                          LatencyTable *t)
{
    char path[4096];
    const char *how = latency_table(t, d, be, a->train.threads, batch, latency_reps(batch), 0, path, sizeof path);
    printf("latency table: %s (%s)\n", path, how);
    a->search.latency = t;
    Arch fast = latency_fastest(t);
    if (latency_predict(t, &fast) > a->search.budget_ms)
        bad_option(cmd, "--budget-ms %g admits no architecture: the fastest is predicted at %.3f ms at batch %d "
                   "here (nta latency %s)", a->search.budget_ms, latency_predict(t, &fast), batch, path);
}

static int cmd_adapt(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *super[1], *fitness;
    int latency_batch;
    static LatencyTable table;
    Opt opts[] = {
        ADAPT_OPTS(a, "finetune-epochs", DEF_FINETUNE_EPOCHS, "epochs of finetuning the winner with its inherited weights"),
        SEARCH_OPTS(a),
        KIND_SPACE_OPT(a),
        {"budget-ms", OPT_DOUBLE, &a.search.budget_ms, "0", "largest inference latency an architecture may have, in milliseconds, as predicted by this machine's latency table (nta latency); 0 = none. The MFLOPs budget still applies: --budget-mflops 0 for none"},
        {"latency-batch", OPT_INT, &latency_batch, DEF_LATENCY_BATCH, "the batch of --budget-ms"},
        {"fitness", OPT_STR, &fitness, "transfer", "transfer (neural transfer, then the validation metric with inherited weights) or linear (no transfer: a linear head fitted on the pretrained supernet's frozen pooled features; the unsupervised paradigm's search)"},
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
    check_adapt(&cmd, &a);
    need_uda_task(&cmd, &a.train, !strcmp(a.task, "mnist-uda"));
    check_search(&cmd, &a);
    a.linear = !strcmp(fitness, "linear");
    need(a.linear || !strcmp(fitness, "transfer"), &cmd, "--fitness must be transfer or linear");
    need(!a.linear || strcmp(a.task, "mnist-uda"), &cmd, LINEAR_NO_UDA);
    need(!a.linear || !a.transfer_within, &cmd, "--transfer-within-budget is used only with --fitness transfer "
         "(--fitness linear has no neural transfer)");
    need(!a.linear || !a.online_epochs, &cmd, "--online-epochs is used only with --fitness transfer "
         "(it trains the transferred supernet)");
    need(!a.random || !a.online_epochs, &cmd, "--online-epochs adapts the supernet between generations of "
         "evolution: random search (--random) has none");
    need_flag(&cmd, "resume", a.resume);
    need_flag(&cmd, "kind-space", a.kind_space);
    need(*a.out || !a.resume, &cmd, "--resume needs the -o of the run to continue");
    need(!a.resume || !a.online_epochs, &cmd, "--resume cannot continue a search with --online-epochs: the "
         "supernet's weights changed between its generations and are not saved; run it again");
    need_output(&cmd, "out", a.out);
    need_output(&cmd, "log", a.log);
    need_in(&cmd, "budget-ms", a.search.budget_ms, 0, 1e9);
    need_in(&cmd, "latency-batch", latency_batch, 1, 65536);
    need(a.search.budget_ms > 0 || latency_batch == atoi(DEF_LATENCY_BATCH), &cmd,
         "--latency-batch is used only with --budget-ms");
    NetDesc d = probe_desc(super[0]);
    need_supernet(&cmd, "budget-mflops", super[0], &d, a.search.budget_mflops);
    opts_print(&cmd);
    const Backend *be = pick_backend(a.train.device, a.train.threads);
    if (a.search.budget_ms > 0) {   /* under mpirun: rank 0's table, so that every rank searches the same space */
        if (dist_rank() == 0) adapt_latency(&cmd, &a, &d, be, latency_batch, &table);
        dist_broadcast(&table, sizeof table);
        a.search.latency = &table;
    }
    return ntaa_adapt(super[0], &a, be);
}

static int cmd_finetune(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *super[1], *name;
    Opt opts[] = {
        ADAPT_OPTS(a, "epochs", DEF_FIXED_EPOCHS, "epochs of finetuning (by default as many as adapt's transfer and finetuning together, as the demo gives WP&F)"),
        {"arch", OPT_STR, &name, "largest", "the fixed architecture: largest, smallest or a string"},
        {"from-scratch", OPT_INT, &a.scratch, "0", "1: random initial weights (classic NAS retraining), 0: inherited"},
        {"out", OPT_STR, &a.out, "model.nta", "the finished model (-o)"},
    };
    Command cmd = {"finetune", "SUPERNET [options]",
                   "WP&F baseline: finetune a fixed architecture's weights on a task (or train it from scratch)",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, super, 1);
    need(npos == 1, &cmd, "which supernet? e.g. 'nta finetune supernet.nta --task mnist'");
    check_adapt(&cmd, &a);
    need_uda_task(&cmd, &a.train, !strcmp(a.task, "mnist-uda"));
    need_flag(&cmd, "from-scratch", a.scratch);
    need_output(&cmd, "out", a.out);
    char err[512];
    NetDesc d = probe_desc(super[0]);
    Arch arch;
    if (arch_named(&d, name, NULL, &arch, err, sizeof err)) bad_option(&cmd, "--arch: %s", err);
    opts_print(&cmd);
    return ntaa_baseline(super[0], &arch, &a, pick_backend(a.train.device, a.train.threads));
}

/* The fronts' options into c: --front-budgets "9,14" (MFLOPs) and
 * --front-archs "smallest,STRING,largest"; exit 2 naming the option when an
 * item is malformed or there are more than DEMO_MAX_FRONT. The
 * architectures are checked against the supernet later (demo_check_fronts). */
static void demo_fronts(const Command *cmd, DemoCfg *c, const char *budgets, const char *archs)
{
    c->nbudgets = c->narchs = 0;
    for (const char *p = budgets; *p;) {
        char *end;
        double b = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(b >= 1e-3 && b <= 1e9) || c->nbudgets == DEMO_MAX_FRONT)
            bad_option(cmd, "--front-budgets '%s': give up to %d MFLOPs budgets, comma-separated, e.g. 9,14",
                       budgets, DEMO_MAX_FRONT);
        c->budgets[c->nbudgets++] = b;
        p = *end ? end + 1 : end;
    }
    for (const char *p = archs; c->nbudgets && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof c->archs[0] || c->narchs == DEMO_MAX_FRONT)
            bad_option(cmd, "--front-archs '%s': give up to %d architectures (largest, smallest or strings), "
                       "comma-separated", archs, DEMO_MAX_FRONT);
        snprintf(c->archs[c->narchs++], sizeof c->archs[0], "%.*s", (int)n, p);
        p += n + (p[n] == ',');
    }
}

/* Every front budget admits an architecture of the supernet d, and every
 * front architecture is one of it. */
static void demo_check_fronts(const Command *cmd, const DemoCfg *c, const char *path, const NetDesc *d)
{
    char err[512];
    Arch a;
    for (int i = 0; i < c->nbudgets; i++) need_supernet(cmd, "front-budgets", path, d, c->budgets[i]);
    for (int i = 0; i < c->narchs; i++)
        if (arch_named(d, c->archs[i], NULL, &a, err, sizeof err)) bad_option(cmd, "--front-archs: %s", err);
}

/* The demo's supernet: --supernet, or DIR/supernet.nta, pretrained there
 * (nta pretrain on fashion-mnist) when missing; with ssl, the self-supervised
 * one: --ssl-supernet, or DIR/supernet-ssl.nta, pretrained there with
 * --objective ssl. Returns how it came. */
static const char *demo_supernet(char *path, size_t len, const char *dir, const char *given, int epochs, int ssl,
                                 int quick, const TrainCfg *t, char *took, size_t tooklen)
{
    double t0 = nta_now();
    if (*given) snprintf(path, len, "%s", given);
    else snprintf(path, len, "%s/%s", dir, ssl ? "supernet-ssl.nta" : "supernet.nta");
    if (access(path, R_OK) == 0) return "reused";
    if (*given) nta_die("--%s: cannot read '%s': %s", ssl ? "ssl-supernet" : "supernet", given, strerror(errno));
    char e[16], seed[16], threads[16];
    snprintf(e, sizeof e, "%d", epochs);
    snprintf(seed, sizeof seed, "%d", t->seed);
    snprintf(threads, sizeof threads, "%d", t->threads);
    char *args[24] = {"--epochs", e, "--seed", seed, "--threads", threads, "--device", (char *)t->device,
                      "--out", path};
    int n = 10;
    if (ssl) args[n++] = "--objective", args[n++] = "ssl";
    if (quick) {
        char *q[] = {"--limit", "800", "--val", "64", "--batch", "32", "--calib", "2", "--depth", "2", "--min-depth", "1"};
        for (size_t i = 0; i < sizeof q / sizeof *q; i++) args[n++] = q[i];
    }
    printf("== pretraining the %ssupernet on fashion-mnist (%s)\n", ssl ? "self-supervised " : "", path);
    cmd_pretrain(n, args);
    nta_fmt_time(took, tooklen, nta_now() - t0);
    return took;
}

/* The supernet demo_supernet's pretraining will make (pretrain's defaults on
 * fashion-mnist; --quick: stage depth 1-2), to check the options against
 * before the pretraining's minutes are spent. */
static NetDesc demo_planned_supernet(int quick)
{
    Space sp = space_default();
    if (quick) sp.dmin = 1;
    return net_supernet(28, 28, 1, 10, &sp, quick ? 2 : 4);
}

/* Whether two supernets take the same input and have the same largest and
 * smallest architectures (and so the same search space) */
static int same_space(const NetDesc *a, const NetDesc *b)
{
    char x[512], y[512];
    Arch as[2] = {arch_largest(a), arch_smallest(a)}, bs[2] = {arch_largest(b), arch_smallest(b)};
    for (int i = 0; i < 2; i++) {
        arch_format(a, &as[i], x, sizeof x);
        arch_format(b, &bs[i], y, sizeof y);
        if (strcmp(x, y)) return 0;
    }
    return a->in_h == b->in_h && a->in_w == b->in_w && a->in_c == b->in_c;
}

/* demo's defaults that a check compares with: given otherwise, they need another option */
#define DEMO_SSL_EPOCHS "3"
#define DEMO_FRONT_ARCHS "smallest,k3e6-k3e6/k3e6-k3e6/k3e6-k3e6,largest"

static int cmd_demo(int argc, char **argv)
{
    DemoCfg c = {0};
    AdaptCfg *a = &c.a;
    const char *supernet, *tasks, *front_budgets, *front_archs, *ssl_supernet;
    int pretrain_epochs, ssl, ssl_epochs;
    Opt opts[] = {
        {"dir", OPT_STR, &c.dir, "demo", "folder for the supernet, models, search logs, report.md and report.html"},
        {"supernet", OPT_STR, &supernet, "", "reuse this supernet; default DIR/supernet.nta, pretrained there if missing"},
        {"pretrain-epochs", OPT_INT, &pretrain_epochs, "3", "epochs of 'nta pretrain' on fashion-mnist when there is no supernet"},
        {"tasks", OPT_STR, &tasks, "mnist,mnist-parity,mnist-rotation,mnist-retrieval,mnist-uda", "the tasks, comma-separated"},
        ADAPT_OPTS((*a), "finetune-epochs", DEF_FINETUNE_EPOCHS, "epochs of finetuning the winners"),
        SEARCH_OPTS((*a)),
        KIND_SPACE_OPT((*a)),
        {"random", OPT_INT, &a->random, "0", "architectures of the random-search baseline; 0 = as many as evolution scores"},
        {"quick", OPT_INT, &c.quick, "0", "1: tiny settings that finish in about a minute (a smoke test, not a result)"},
        {"front-budgets", OPT_STR, &front_budgets, "", "the fronts: NTAA also under each of these MFLOPs budgets (comma-separated, e.g. 9,14), from the same transferred supernet, and WP&F of each --front-archs; the report compares each NTAA point with the WP&F architecture nearest in MFLOPs. Empty: no fronts"},
        {"ssl", OPT_INT, &ssl, "0", "1: the unsupervised paradigm too: per task, NTAA searched by linear evaluation of a self-supervised supernet (no neural transfer) and WP&F of that supernet's largest architecture, beside the supervised rows, with the searches' wall times"},
        {"ssl-supernet", OPT_STR, &ssl_supernet, "", "with --ssl 1: reuse this self-supervised supernet; default DIR/supernet-ssl.nta, pretrained there (nta pretrain --objective ssl) if missing"},
        {"ssl-epochs", OPT_INT, &ssl_epochs, DEMO_SSL_EPOCHS, "epochs of 'nta pretrain --objective ssl' on fashion-mnist when there is no self-supervised supernet"},
        {"front-archs", OPT_STR, &front_archs, DEMO_FRONT_ARCHS, "the fixed architectures of the WP&F front (with --front-budgets); the default: the smallest, nta train's reference network and the largest"},
    };
    Command cmd = {"demo", "[options]",
                   "pretrain (or reuse) a supernet, then NTAA and its baselines on every task; write a report",
                   opts, sizeof opts / sizeof *opts};
    opts_parse(&cmd, argc, argv, NULL, 0);
    if (c.quick) {
        TrainCfg *t = &a->train;
        SearchCfg *s = &a->search;
        t->limit = 800, a->train_images = 128, t->val = 64, t->batch = 32, t->calib = 2, a->transfer_epochs = 1;
        t->epochs = 1, s->population = 4, s->generations = 1, s->parents = 2, s->mutants = 2, s->crosses = 2;
        a->seeds = 2;
    }
    check_adapt(&cmd, a);
    check_search(&cmd, a);
    need_in(&cmd, "pretrain-epochs", pretrain_epochs, 1, MAX_EPOCHS);
    need_flag(&cmd, "quick", c.quick);
    need_flag(&cmd, "ssl", ssl);
    need_flag(&cmd, "kind-space", a->kind_space);
    need_in(&cmd, "ssl-epochs", ssl_epochs, 1, MAX_EPOCHS);
    need(!strcmp(a->task, DEF_TASK), &cmd, "the demo runs every task of --tasks; give --tasks, not --task");
    need(ssl || !*ssl_supernet, &cmd, "--ssl-supernet is used only with --ssl 1");
    need(ssl || ssl_epochs == atoi(DEMO_SSL_EPOCHS), &cmd, "--ssl-epochs is used only with --ssl 1");
    need(*front_budgets || !strcmp(front_archs, DEMO_FRONT_ARCHS), &cmd,
         "--front-archs is used only with --front-budgets (the NTAA points of the fronts), e.g. --front-budgets 9,14");
    demo_fronts(&cmd, &c, front_budgets, front_archs);
    for (int i = 0; i < c.nbudgets && a->transfer_within; i++) a->transfer_region = fmax(a->transfer_region, c.budgets[i]);
    char names[DEMO_MAX_TASKS][DEMO_TASK_LEN], err[512];
    c.ntasks = demo_tasks(tasks, names, DEMO_MAX_TASKS, err, sizeof err);
    if (c.ntasks < 0) bad_option(&cmd, "%s", err);
    c.tasks = (const char (*)[DEMO_TASK_LEN])names;
    int uda = 0;
    for (int i = 0; i < c.ntasks; i++) uda |= !strcmp(c.tasks[i], "mnist-uda");
    need_uda_task(&cmd, &a->train, uda);
    for (int i = 0; i < c.ntasks; i++) {   /* every task's files read now: none found missing hours later */
        DataSplits data;
        data_task(&data, c.tasks[i], a->train_images, a->train.val, a->train.limit, a->train.seed);
        data_free(&data);
    }
    struct stat st;
    need(*c.dir, &cmd, "--dir is empty; give a folder");
    if (stat(c.dir, &st) == 0 && !S_ISDIR(st.st_mode)) bad_option(&cmd, "--dir '%s' is not a folder", c.dir);
    if (!a->random) a->random = a->search.population + a->search.generations * (a->search.mutants + a->search.crosses);
    char path[4096], took[32], ssl_path[4096], ssl_took[32];
    snprintf(path, sizeof path, "%s/supernet.nta", c.dir);
    if (!*supernet && access(path, R_OK) != 0) {      /* to be pretrained: check against its plan now */
        NetDesc plan = demo_planned_supernet(c.quick);
        need_supernet(&cmd, "budget-mflops", "the supernet to pretrain", &plan, a->search.budget_mflops);
        demo_check_fronts(&cmd, &c, "the supernet to pretrain", &plan);
    }
    opts_print(&cmd);
    if (mkdir(c.dir, 0777) && errno != EEXIST) nta_die("--dir: cannot make '%s': %s", c.dir, strerror(errno));
    c.t0 = nta_now();
    c.supernet = path;
    c.pretrained = demo_supernet(path, sizeof path, c.dir, supernet, pretrain_epochs, 0, c.quick, &a->train, took,
                                 sizeof took);
    NetDesc d = probe_desc(path);
    need_supernet(&cmd, "budget-mflops", path, &d, a->search.budget_mflops);
    if (ssl) {
        c.ssl_supernet = ssl_path;
        c.ssl_pretrained = demo_supernet(ssl_path, sizeof ssl_path, c.dir, ssl_supernet, ssl_epochs, 1, c.quick,
                                         &a->train, ssl_took, sizeof ssl_took);
        NetDesc s = probe_desc(ssl_path);
        need_supernet(&cmd, "budget-mflops", ssl_path, &s, a->search.budget_mflops);
        if (!same_space(&d, &s))
            bad_option(&cmd, "--ssl-supernet %s: its input or search space differs from %s's", ssl_path, path);
    }
    demo_check_fronts(&cmd, &c, path, &d);
    return demo_run(&c, pick_backend(a->train.device, a->train.threads));
}

/* The table as a grid: a row per block position, a column per choice. */
static void latency_print(const LatencyTable *t)
{
    const NetDesc *d = &t->desc;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    char col[16];
    printf("ms at batch %-6d", t->batch);
    for (int ki = 0; ki < d->space.nk; ki++)
        for (int ei = 0; ei < d->space.ne; ei++) {
            snprintf(col, sizeof col, "k%de%d", d->space.ks[ki], d->space.es[ei]);
            printf(" %8s", col);
        }
    printf("\n%-18s %8.4f\n", "stem", t->stem_ms);
    for (int s = 0; s < ns; s++)
        for (int i = first[s]; i < first[s + 1]; i++) {
            char name[32];
            snprintf(name, sizeof name, "block %d (stage %d)", i, s + 1);
            printf("%-18s", name);
            for (int ki = 0; ki < d->space.nk; ki++)
                for (int ei = 0; ei < d->space.ne; ei++) printf(" %8.4f", t->block_ms[i][ki][ei]);
            printf("\n");
        }
    printf("%-18s %8.4f\n%-18s %8.4f\n", "head, pool, fc", t->head_ms, "overhead", t->overhead_ms);
    Arch named[3] = {arch_smallest(d), latency_fastest(t), arch_largest(d)};
    const char *what[3] = {"smallest", "fastest", "largest"};
    for (int j = 0; j < 3; j++) {
        char text[512];
        arch_format(d, &named[j], text, sizeof text);
        printf("predicted: %s %.3f ms, %.2f MFLOPs: %s\n", what[j], latency_predict(t, &named[j]),
               search_mflops(d, &named[j]), text);
    }
}

static int cmd_latency(int argc, char **argv)
{
    const char *device, *super[1];
    int threads, batch, fresh;
    static LatencyTable t;
    Opt opts[] = {
        {"batch", OPT_INT, &batch, "1", "images per forward pass"},
        {"fresh", OPT_INT, &fresh, "0", "1: measure again even when the cache holds this machine's table"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
    };
    Command cmd = {"latency", "SUPERNET [options]",
                   "measure (or read from the cache) this machine's per-layer latency table of a supernet and print it",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, super, 1);
    need(npos == 1, &cmd, "which supernet? e.g. 'nta latency supernet.nta --batch 1'");
    need_in(&cmd, "batch", batch, 1, 65536);
    need_flag(&cmd, "fresh", fresh);
    need_in(&cmd, "threads", threads, 0, MAX_THREADS);
    need_device(&cmd, device);
    if (threads == 0) threads = default_threads();
    NetDesc d = probe_desc(super[0]);
    if (d.space.nk == 0) nta_die("%s is a fixed network, not a supernet: give 'nta pretrain' output", super[0]);
    opts_print(&cmd);
    const Backend *be = pick_backend(device, threads);
    char path[4096];
    const char *how = latency_table(&t, &d, be, threads, batch, latency_reps(batch), fresh, path, sizeof path);
    printf("latency table: %s (%s)\nkey: %s\n", path, how, t.key);
    latency_print(&t);
    return 0;
}

static int cmd_rank(int argc, char **argv)
{
    AdaptCfg a = {0};
    const char *super[1];
    int archs;
    Opt opts[] = {
        ADAPT_OPTS(a, "finetune-epochs", DEF_FINETUNE_EPOCHS, "epochs of finetuning each architecture (the truth the fitness should predict)"),
        SEARCH_OPTS(a),
        {"archs", OPT_INT, &archs, "20", "architectures, spread evenly in MFLOPs from the smallest to the budget"},
    };
    Command cmd = {"rank", "SUPERNET [options]",
                   "how well the search's fitness (and alternatives) rank architectures: Spearman with the "
                   "finetuned test metric",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, super, 1);
    need(npos == 1, &cmd, "which supernet? e.g. 'nta rank supernet.nta --task mnist'");
    check_adapt(&cmd, &a);
    need_uda_task(&cmd, &a.train, !strcmp(a.task, "mnist-uda"));
    check_search(&cmd, &a);
    need_in(&cmd, "archs", archs, 3, 1000);
    need(!a.online_epochs, &cmd, "--online-epochs is used by a search (adapt, demo), not by rank");
    NetDesc d = probe_desc(super[0]);
    need_supernet(&cmd, "budget-mflops", super[0], &d, a.search.budget_mflops);
    opts_print(&cmd);
    return ntaa_rank(super[0], &a, pick_backend(a.train.device, a.train.threads), archs);
}

/* What eval and predict check alike: the batch, --limit, --threads (0
 * resolved), the device, and the dataset or task scored. */
static void check_scoring(const Command *cmd, EvalCfg *c, int *threads, const char *device)
{
    char err[512];
    need_in(cmd, "batch", c->batch, 2, 65536);
    need_in(cmd, "limit", c->limit, 0, MAX_IMAGES);
    need_in(cmd, "threads", *threads, 0, MAX_THREADS);
    need_device(cmd, device);
    if (*c->task && data_task_check(c->task, err, sizeof err)) bad_option(cmd, "--task: %s", err);
    if (!*c->task && data_spec_check(c->data, err, sizeof err)) bad_option(cmd, "--data: %s", err);
    if (*threads == 0) *threads = default_threads();
}

static int cmd_eval(int argc, char **argv)
{
    EvalCfg c = {0};
    const char *device, *model[1];
    int threads;
    Opt opts[] = {
        {"data", OPT_STR, &c.data, "fashion-mnist", "dataset whose test split is evaluated"},
        {"task", OPT_STR, &c.task, "", "instead of --data: a task of adapt (e.g. mnist-rotation), scored by its metric"},
        {"arch", OPT_STR, &c.arch, "largest", "for a supernet: largest, smallest, random or an architecture string"},
        {"random", OPT_INT, &c.random, "0", "for a supernet: evaluate N random architectures, a table by MFLOPs"},
        {"spread", OPT_INT, &c.spread, "0", "1: draw the i-th random architecture from the i-th of N equal MFLOPs bins between the smallest and the largest"},
        {"calib", OPT_INT, &c.calib, "20", "training batches for BN recalibration (supernets)"},
        {"linear", OPT_INT, &c.linear, "0", "1: linear evaluation: a ridge-regression head fitted on the frozen pooled features of the training split, scored on the test split, beside its floors (raw pixels; the architecture with random weights; not with --random) (not for mnist-uda)"},
        {"seed", OPT_INT, &c.seed, "1", "seed of random architectures and recalibration batches"},
        {"batch", OPT_INT, &c.batch, "256", "images per forward pass"},
        {"limit", OPT_INT, &c.limit, "0", "use only the first N training and test images; 0 = all"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
    };
    Command cmd = {"eval", "MODEL [options]",
                   "report a model's (or a supernet sub-architecture's) test accuracy, MFLOPs and params",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? give the model file, e.g. 'nta eval model.nta'");
    char err[512];
    check_scoring(&cmd, &c, &threads, device);
    need_in(&cmd, "calib", c.calib, 1, 100000);
    need_in(&cmd, "random", c.random, 0, 100000);
    need_flag(&cmd, "spread", c.spread);
    need(c.random || !c.spread, &cmd, "--spread is used only with --random N");
    need_flag(&cmd, "linear", c.linear);
    need(!c.linear || strcmp(c.task, "mnist-uda"), &cmd, LINEAR_NO_UDA);
    c.model = model[0];
    NetDesc d = probe_desc(c.model);
    Arch a;
    if (d.mlp && !c.linear)
        bad_option(&cmd, "%s was pretrained without labels (--objective ssl): its outputs are projections, not "
                   "classes; judge it by linear evaluation (--linear 1)", c.model);
    if (d.space.nk == 0 && (strcmp(c.arch, "largest") || c.random))
        bad_option(&cmd, "%s is a fixed network; --arch and --random apply to supernets", c.model);
    if (strcmp(c.arch, "random") && arch_named(&d, c.arch, NULL, &a, err, sizeof err))
        bad_option(&cmd, "--arch: %s", err);
    opts_print(&cmd);
    return eval_run(&c, pick_backend(device, threads));
}

/* Specialised kernels (rtc.h) for predict and bench: NTA_RTC's mode (a bad
 * value is a bad option); rtc_device: the device that runs them, the CUDA
 * backend's when it was chosen (the CPU backend runs none). */
static void rtc_setup(const Command *cmd, EvalCfg *c)
{
    char err[256];
    c->rtc_mode = rtc_mode(err, sizeof err);
    if (c->rtc_mode < 0) bad_option(cmd, "%s", err);
}

static const RtcDevice *rtc_device(const Backend *be)
{
#if defined(NTA_CUDA)
    if (be == &cuda_backend) return &rtc_cuda_device;
#endif
    (void)be;
    return NULL;
}

static int cmd_predict(int argc, char **argv)
{
    EvalCfg c = {0};
    const char *device, *out, *model[1];
    int threads;
    Opt opts[] = {
        {"data", OPT_STR, &c.data, "fashion-mnist", "dataset whose test split is predicted"},
        {"task", OPT_STR, &c.task, "", "instead of --data: a task of adapt (e.g. mnist-rotation); not a retrieval task"},
        {"out", OPT_STR, &out, "", "CSV file (-o): index,label,class,p_0,... or index,target,prediction; \"\" = stdout"},
        {"batch", OPT_INT, &c.batch, "256", "images per forward pass"},
        {"limit", OPT_INT, &c.limit, "0", "use only the first N training and test images; 0 = all"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
        {"cache", OPT_STR, &c.cache, "", "folder of compiled specialised kernels (GPU); \"\" = $XDG_CACHE_HOME/nta or ~/.cache/nta"},
    };
    Command cmd = {"predict", "MODEL [options]",
                   "write a model's (or an exported model's) class and scores (or value) for every test image as CSV, "
                   "then its accuracy",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? give the model file, e.g. 'nta predict model.nta'");
    check_scoring(&cmd, &c, &threads, device);
    if (*out) need_output(&cmd, "out", out);
    need(strcmp(c.task, "mnist-retrieval"), &cmd,
         "--task mnist-retrieval: a retrieval task has no class or value per image (use nta eval)");
    c.model = model[0];
    if (!rtc_export_is(c.model) && probe_desc(c.model).space.nk > 0)
        bad_option(&cmd, "%s is a supernet; predict takes a model (adapt's or finetune's)", c.model);
    rtc_setup(&cmd, &c);
    if (*out) opts_print(&cmd);
    else device_note = stderr;       /* stdout is the CSV's alone */
    const Backend *be = pick_backend(device, threads);
    c.rtc_dev = rtc_device(be);
    return eval_predict(&c, out, be);
}

static int cmd_export(int argc, char **argv)
{
    const char *out, *model[1];
    Opt opts[] = {
        {"out", OPT_STR, &out, "", "the exported file (-o)"},
    };
    Command cmd = {"export", "MODEL -o FILE",
                   "write a model's network for inference, batchnorm folded into the weights (nta predict reads it; "
                   "the format: rtc.h)",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? e.g. 'nta export model.nta -o model.nti'");
    need(*out, &cmd, "where to? give -o FILE");
    need_output(&cmd, "out", out);
    NetDesc d = probe_desc(model[0]);
    if (d.space.nk > 0) bad_option(&cmd, "%s is a supernet; export takes a model (adapt's or finetune's)", model[0]);
    if (d.mlp) bad_option(&cmd, "%s has a projection head (self-supervised pretraining); export takes a model with "
                          "classes (adapt's or finetune's)", model[0]);
    return eval_export(model[0], out);
}

static int cmd_bench(int argc, char **argv)
{
    EvalCfg c = {0};
    const char *device, *model[1];
    int threads;
    Opt opts[] = {
        {"batch", OPT_INT, &c.batch, "64", "the second batch timed (the first is 1)"},
        {"reps", OPT_INT, &c.reps, "21", "timed passes per measurement (their median is shown)"},
        {"threads", OPT_INT, &threads, "0", "CPU threads; 0 = one per core"},
        {"device", OPT_STR, &device, "auto", "auto, cpu or cuda"},
        {"cache", OPT_STR, &c.cache, "", "folder of compiled specialised kernels (GPU); \"\" = $XDG_CACHE_HOME/nta or ~/.cache/nta"},
    };
    Command cmd = {"bench", "MODEL [options]",
                   "time a model's inference at batch 1 and --batch: specialised (NVRTC) and generic kernels on a GPU, "
                   "and the CPU backend",
                   opts, sizeof opts / sizeof *opts};
    int npos = opts_parse(&cmd, argc, argv, model, 1);
    need(npos == 1, &cmd, "which model? e.g. 'nta bench model.nta --batch 64'");
    need_in(&cmd, "batch", c.batch, 1, 65536);
    need_in(&cmd, "reps", c.reps, 1, 100000);
    need_in(&cmd, "threads", threads, 0, MAX_THREADS);
    need_device(&cmd, device);
    if (threads == 0) threads = default_threads();
    c.model = model[0];
    NetDesc d = probe_desc(c.model);
    if (d.space.nk > 0) bad_option(&cmd, "%s is a supernet; bench takes a model (adapt's or finetune's)", c.model);
    rtc_setup(&cmd, &c);
    opts_print(&cmd);
    const Backend *be = pick_backend(device, threads);
    c.rtc_dev = rtc_device(be);
    char why[256] = "";
    int gpu = be != &cpu_backend;
#if defined(NTA_CUDA)
    if (!gpu) cuda_available(why, sizeof why);
#else
    snprintf(why, sizeof why, "this nta was built without the CUDA backend");
#endif
    return eval_bench(&c, be, gpu ? NULL : why);
}

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
    if (parse_space(&sp, kernels, expands, min_depth, err, sizeof err)) need(0, &cmd, err);
    NetDesc d = net_supernet(h, w, c, classes, &sp, depth);
    Arch a;
    if (arch_named(&d, arch[0], NULL, &a, err, sizeof err)) nta_die("%s", err);
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
    {"predict", cmd_predict, "a model's class and scores (or value) for every test image, as CSV"},
    {"export", cmd_export, "a model's network for inference, batchnorm folded, in one file (predict reads it)"},
    {"bench", cmd_bench, "time a model's inference: specialised and generic GPU kernels, the CPU backend"},
    {"latency", cmd_latency, "this machine's per-layer latency table of a supernet (for adapt --budget-ms)"},
    {"rank", cmd_rank, "how well the search's fitness ranks architectures on a task (Spearman)"},
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
    char why[256];
    int nvrtc = rtc_nvrtc_version(why, sizeof why);
#if defined(NTA_CUDA)
    const char *use = "specialised kernels for predict and bench on a GPU";
#else
    const char *use = "unused: this nta has no CUDA backend";
#endif
    if (nvrtc) printf("  NVRTC: %d.%d found (opened at run time; %s)\n", nvrtc / 1000, nvrtc % 1000 / 10, use);
    else printf("  NVRTC: %s\n", why);
    printf("  CPU backend: %s\n", cpu_simd());
    printf("  MPI: %s\n", dist_version());
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
    dist_init(&argc, &argv, argv[1]);   /* under mpirun: join the other ranks */
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 2, argv + 2);
            dist_finalize();
            return rc;
        }
    fprintf(stderr, "nta: unknown command '%s'\n\n", argv[1]);
    main_usage(stderr);
    return 2;
}
