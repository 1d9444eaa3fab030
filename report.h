/* report.h: the demo's report (report.c). */
#ifndef REPORT_H
#define REPORT_H

#include "nta.h"

/* One method's result on one task. */
typedef struct {
    const char *method;       /* "NTAA", "WP&F", "random search", "from scratch" */
    double metric;            /* the task's metric on its test split (mean over runs) */
    double sd;                /* its standard deviation over the runs, when runs > 1 */
    int runs;                 /* finetuning runs with different seeds (0 or 1: one) */
    double second;            /* a second metric (retrieval: rank-1 %), NAN if none */
    double mflops;
    size_t params;
    double seconds;           /* wall time of the method, transfer included */
    double search_seconds;    /* of it, until the search's winner was known (transfer
                                 included); 0 or NAN for a fixed architecture */
    char arch[512];           /* text form */
    int nitems;               /* test items (images; retrieval: queries) scored per run */
    float *items;             /* [max(runs,1), nitems] each run's score of each item, run k
                                 with seed SEED+k (task_score_items: the metric is their
                                 mean); NULL if not kept. Owned by whoever made the row. */
} ReportRow;

/* Which gaps are real: a paired bootstrap of the difference of two methods'
 * test metrics. a and b are [runs, n]: each run's (seed's) score of each
 * test item, run k of both methods with the same seed, item i the same test
 * image. Each of `reps` replicates draws n test items with replacement (the
 * same items for both methods and every run) and `runs` seed indices with
 * replacement (the same for both methods), and takes the mean of a - b over
 * the drawn runs and items; [lo, hi] is the 2.5% and 97.5% percentile of the
 * replicates, diff the mean of a - b over all runs and items. Deterministic
 * for a seed. */
void report_bootstrap(const float *a, const float *b, int runs, int n, int reps, uint64_t seed, double *diff,
                      double *lo, double *hi);

/* A comparison of method a against method b on one task: diff = a - b in the
 * metric's units with its 95% interval [lo, hi] (report_bootstrap, 2000
 * replicates), and the word: win (a better: the interval excludes zero on
 * a's side, respecting lower_better), loss (excludes it on b's side) or tie
 * (contains zero). NaN and "-" when a row kept no items or the rows' runs or
 * items differ. */
typedef struct { double diff, lo, hi; const char *word; } Compare;
Compare report_compare(const ReportRow *a, const ReportRow *b, int lower_better);


#define REPORT_MAX_FRONT 16

/* One task of a demo run. Fitness values are in the metric's units. */
typedef struct {
    char task[1024];
    const char *metric_name;  /* e.g. "accuracy %", "MAE (degrees)", "mAP %" */
    const char *second_name;  /* e.g. "rank-1 %", NULL if none */
    int lower_better;         /* 1 for errors (MAE) */
    double budget_mflops;
    int nrows;
    ReportRow rows[6];        /* NTAA first; random search, WP&F, from scratch; with
                                 demo --ssl, NTAA (linear evaluation) where the task
                                 allows it and WP&F of the self-supervised supernet */
    int nfront;               /* the fronts (demo --front-budgets): NTAA under several */
    ReportRow front[REPORT_MAX_FRONT];      /* budgets, WP&F of several fixed architectures */
    double front_budget[REPORT_MAX_FRONT];  /* an NTAA point's MFLOPs budget; NAN for WP&F */
    int ngen;                 /* search progress, generation 0..ngen-1 */
    double *gen_best, *gen_mean;
    int npop;                 /* NTAA's last population */
    Candidate *pop;
    NetDesc desc;             /* the supernet, and NTAA's winner in it */
    Arch arch;
} ReportTask;

/* For NTAA point j of t's fronts (front_budget finite): the WP&F point
 * nearest to it in MFLOPs (the cheaper of two equally near), -1 if j is not
 * an NTAA point or there is none. */
int report_front_nearest(const ReportTask *t, int j);

/* For NTAA point j of t's fronts: the cheapest WP&F point at least as good
 * as it (report_compare of that point against j a tie or a win), -1 if none
 * is or j is not an NTAA point. */
int report_front_as_good(const ReportTask *t, int j);

/* NTAA point j's word at equal accuracy, k = report_front_as_good(t, j):
 * "win" when k is -1 or costs more MFLOPs than j, "tie" when as many, "loss"
 * when fewer. */
const char *report_word_equal_accuracy(const ReportTask *t, int j, int k);

/* The row of `method` in task t, NULL if it has none. */
const ReportRow *report_row(const ReportTask *t, const char *method);

/* report.c: report.md (tables, plain text) and a self-contained report.html
 * (the same tables, inline SVG: search progress, Pareto front of the last
 * population, each task's chosen architecture drawn block by block). intro:
 * a paragraph of Markdown-free text (settings, supernet, total time) put at
 * the top of both. Returns 0, or -1 with a message in err naming the file. */
int report_write(const char *md_path, const char *html_path, const char *intro,
                 const ReportTask *tasks, int ntasks, char *err, size_t errlen);

#endif
