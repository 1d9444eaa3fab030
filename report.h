/* report.h: what the demo (nta.c) hands the report (report.c): one row per
 * method and one record per task, and report_write, which writes report.md
 * and report.html from them.
 */
#ifndef NTA_REPORT_H
#define NTA_REPORT_H

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
    char arch[512];           /* text form */
} ReportRow;

/* One task of a demo run. Fitness values are in the metric's units. */
typedef struct {
    char task[64];
    const char *metric_name;  /* e.g. "accuracy %", "MAE (degrees)", "mAP %" */
    const char *second_name;  /* e.g. "rank-1 %", NULL if none */
    int lower_better;         /* 1 for errors (MAE) */
    double budget_mflops;
    int nrows;
    ReportRow rows[4];        /* NTAA first */
    int ngen;                 /* search progress, generation 0..ngen-1 */
    double *gen_best, *gen_mean;
    int npop;                 /* NTAA's last population */
    Candidate *pop;
    NetDesc desc;             /* the supernet, and NTAA's winner in it */
    Arch arch;
} ReportTask;

/* report.c: report.md (tables, plain text) and a self-contained report.html
 * (the same tables, inline SVG: search progress, Pareto front of the last
 * population, each task's chosen architecture drawn block by block). intro:
 * a paragraph of Markdown-free text (settings, supernet, total time) put at
 * the top of both. Returns 0, or -1 with a message in err naming the file. */
int report_write(const char *md_path, const char *html_path, const char *intro,
                 const ReportTask *tasks, int ntasks, char *err, size_t errlen);

#endif
