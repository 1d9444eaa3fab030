/* ntaa.h: the paper's pipeline on a target task (ntaa.c) and the demo that
 * runs it on every task (demo.c).
 *
 * NTAA: neural transfer (the pretrained supernet, with a new head, trained on
 * the task with the sandwich rule), architecture adaptation (evolution on the
 * transferred supernet, fitness = validation metric with inherited weights),
 * then the winner finetuned with its inherited weights. The baselines run
 * through the same method runner, ntaa_run: random search (instead of
 * evolution), WP&F (a fixed architecture of the pretrained supernet, its
 * weights finetuned) and from scratch (the same architecture, random weights). */
#ifndef NTAA_H
#define NTAA_H

#include "nta.h"
#include "report.h"
#include "train.h"

/* The settings of adapt, finetune and demo. */
typedef struct {
    TrainCfg train;       /* every training phase; train.epochs: finetuning epochs */
    SearchCfg search;     /* evolution and random search (search.seed is train.seed) */
    const char *task;     /* the target task (data_task) */
    const char *out;      /* the finished model; "" = none */
    const char *log;      /* the search log; "" = none */
    int train_images;     /* labelled training images of the task (0 = all) */
    int transfer_epochs;  /* epochs of neural transfer */
    int transfer_within;  /* --transfer-within-budget: neural transfer only within transfer_region */
    double transfer_region;   /* MFLOPs: neural transfer samples only architectures of at most
                                 this cost (TrainCfg.region); 0 = the whole supernet */
    int online_epochs;    /* evolution: NAT's online adaptation, epochs of training the supernet on
                             the population's architectures before each generation (0 = none) */
    int kind_space;       /* --kind-space: the search within its task kind's space (ntaa_kind_space) */
    int random;           /* random search: architectures scored */
    int resume;           /* adapt: continue from OUT.transfer and the log's last generation */
    int scratch;          /* finetune: random initial weights instead of inherited ones */
    int seeds;            /* finetuning runs per method (seeds seed .. seed+seeds-1) */
    int linear;           /* adapt --fitness linear: no neural transfer; the search's fitness is
                             linear evaluation (linear_fitness_arch) of the pretrained supernet */
} AdaptCfg;

/* Why linear evaluation (eval --linear 1, adapt --fitness linear, demo --ssl)
 * is not run on domain adaptation. */
#define LINEAR_NO_UDA "linear evaluation does not apply to mnist-uda: a head fitted on the labelled source " \
    "images measures the source domain, and the target domain's labels may not be used"

/* The search's space for a task kind (adapt --kind-space 1), set in sc. From
 * nta rank's study of 20 architectures per demo task, the choices'
 * correlations with the finetuned metric printed by bench/rank_choices.py:
 * on regression the last stage's depth ordered the finetuned MAE (Spearman
 * 0.82; the search's fitness 0.48), so that stage keeps its full depth; on
 * the other kinds no choice (kernel, expansion, blocks, any stage's depth)
 * ordered it beyond noise (|rho| <= 0.40, a standard error of about 0.23),
 * so their space is the whole supernet. The stage is only as deep as leaves
 * the search room under sc's budgets (KIND_SPACE_ROOM, ntaa.c): under a
 * budget near the smallest architecture the space is the whole supernet. */
void ntaa_kind_space(SearchCfg *sc, const NetDesc *d, int kind);

enum { METHOD_NTAA, METHOD_RANDOM, METHOD_WPF, METHOD_SCRATCH };

/* What a search leaves for the report: best and mean fitness per generation. */
typedef struct { int ngen; double best[256], mean[256]; } SearchTrace;

/* One method's run on a task: what it starts from and what it leaves. */
typedef struct {
    int method;            /* METHOD_* */
    const char *name;      /* the row's name; NULL: the method's own ("NTAA", "WP&F", ...) */
    Net *transferred;      /* NTAA, random search: the supernet after neural transfer */
    const char *supernet;  /* WP&F, from scratch: the pretrained supernet's file */
    Arch arch;             /* WP&F, from scratch: the fixed architecture; NTAA and
                              random search set it to their winner */
    int epochs;            /* finetuning epochs */
    const char *log;       /* the search log; "" = none */
    int resume;            /* continue the search from its log */
    const char *out;       /* the finished model; "" = none */
    double t0;             /* when the method's clock started (its row's seconds and
                              search_seconds count from it) */
    SearchState last;      /* NTAA, random search: the last population, fittest first
                              (the caller frees it with search_free) */
    SearchTrace *trace;    /* if set: filled with the search's progress */
} Method;

/* The task's data, with a line saying what it holds. */
void ntaa_load_task(DataSplits *d, const AdaptCfg *a);

/* The supernet (or model) file with a fresh head for the task (no training). */
Net *ntaa_load(const char *path, const Backend *be, const DataSplits *d, const AdaptCfg *a);

/* Neural transfer: the supernet file with a new head for the task, trained
 * on it for a->transfer_epochs with the sandwich rule. */
Net *ntaa_transfer(const char *supernet, const Backend *be, const DataSplits *d, const AdaptCfg *a);

/* The search's fitness of an architecture of the transferred supernet: the
 * validation metric (higher is better) with inherited weights after BN
 * recalibration; with linear, linear_fitness_arch (a ridge head on the frozen
 * pooled features of the training split, leave-one-out). ctx: a Fitness. */
typedef struct { Net *net; const DataSplits *d; int calib; uint64_t seed; int linear; } Fitness;
double ntaa_fitness(void *ctx, const Arch *a);

/* Evolution (random == 0) or random search of `random` architectures on the
 * transferred supernet, every generation written to the log (if log_path);
 * st ends with the last population, fittest first. resume: continue from the
 * log's last complete generation if it has one. */
void ntaa_search(Net *transferred, const DataSplits *d, const AdaptCfg *a, int random, const char *log_path,
                 int resume, SearchState *st, SearchTrace *trace);
/* The last complete generation of the search log at path into st: 1 if there
 * was one, 0 if not (no log, or none complete), -1 and a message in err when
 * the log is not one of this search (its first line differs from header) or
 * claims what is not so (a candidate's cost or its order, a generation out
 * of sequence or beyond sc->generations, a fitness that is not a number). A
 * last line cut short by a crash is ignored. */
int ntaa_log_read(const char *path, const NetDesc *d, const char *header, const SearchCfg *sc, SearchState *st,
                  char *err, size_t errlen);

/* Inherit: the standalone network of architecture `arch` holding the
 * supernet's weights for it, its batchnorm statistics recalibrated. */
Net *ntaa_inherit(Net *super, const DataSplits *d, const AdaptCfg *a, const Arch *arch);
/* WP&F's starting point: the fixed architecture `arch` of the pretrained
 * supernet (no neural transfer; a new head for the task), its weights
 * inherited as by ntaa_inherit. */
Net *ntaa_wpf(Net *pretrained, const DataSplits *d, const AdaptCfg *a, const Arch *arch);
/* From scratch (classic NAS retraining): the same architecture with random
 * initial weights drawn from a->train.seed. */
Net *ntaa_scratch(const Net *pretrained, const DataSplits *d, const AdaptCfg *a, const Arch *arch);

/* Finetune a standalone model for c->epochs and score it on the test split
 * into row (seconds counted from t0). With seeds = n > 1, n runs from the
 * same starting weights with seeds c->seed+n-1 down to c->seed (shuffles,
 * augmentation); row gets their mean and standard deviation, and the model
 * ends as the run with c->seed. row->items (the caller frees it) keeps each
 * run's score of each test item (task_score_items), for report_compare. */
void ntaa_finetune(Net *model, const DataSplits *d, const TrainCfg *c, int seeds, const char *method,
                   const char *arch, double t0, ReportRow *row);

/* The method runner: NTAA and random search (search the transferred supernet,
 * inherit the winner, finetune), WP&F and from scratch (the fixed
 * architecture, inherited or random weights, finetuned); the result in row,
 * the model saved to m->out if set. */
void ntaa_run(Method *m, const Backend *be, const DataSplits *d, const AdaptCfg *a, ReportRow *row);

/* nta adapt (NTAA or, with a->random, random search) and nta finetune (WP&F
 * or, with a->scratch, from scratch, of the supernet's architecture arch) on
 * one task. Return the exit status. */
int ntaa_adapt(const char *supernet, const AdaptCfg *a, const Backend *be);
int ntaa_baseline(const char *supernet, const Arch *arch, const AdaptCfg *a, const Backend *be);

/* nta rank (rank.c): on one task, neural transfer, then n architectures
 * spread in MFLOPs up to the budget, each scored by the search's fitness
 * and its alternatives and finetuned as NTAA's winner; prints per fitness
 * its Spearman correlation with the finetuned test metric. Returns the exit
 * status. */
int ntaa_rank(const char *supernet, const AdaptCfg *a, const Backend *be, int n);

/* ---------------------------------------------------------------- demo */

#define DEMO_MAX_TASKS 16
#define DEMO_TASK_LEN 1024
#define DEMO_MAX_FRONT 6      /* budgets, and fixed architectures, of the fronts */

typedef struct {
    AdaptCfg a;               /* every task's settings (a.task is set per task) */
    const char *dir;          /* models, search logs, report.md, report.html */
    const char *supernet;     /* the pretrained supernet's file */
    const char *pretrained;   /* how it came: "reused" or the pretraining's time */
    const char *ssl_supernet; /* --ssl 1: the self-supervised supernet's file, else NULL */
    const char *ssl_pretrained;   /* how it came */
    const char (*tasks)[DEMO_TASK_LEN];   /* [ntasks] task names (demo_tasks) */
    int ntasks;
    int quick;                /* tiny settings: say so in the report */
    int nbudgets;             /* the fronts: NTAA under each of these MFLOPs budgets too */
    double budgets[DEMO_MAX_FRONT];
    int narchs;               /* and WP&F of each of these architectures (arch_named) */
    char archs[DEMO_MAX_FRONT][256];
    double t0;                /* when the demo started */
} DemoCfg;

/* The tasks of a comma-separated list into names (at most max); the commas
 * of a classify:idx:A,B,... task stay in it (an item that is no task of its
 * own continues the classify: task before it). Every name is checked
 * (data_task_check). Returns the count, or -1 with a message in err. */
int demo_tasks(const char *list, char names[][DEMO_TASK_LEN], int max, char *err, size_t errlen);

/* NTAA and its three baselines on every task from one supernet, then the
 * report. Returns the exit status. */
int demo_run(const DemoCfg *c, const Backend *be);

#endif
