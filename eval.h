/* eval.h: nta eval (eval.c). */
#ifndef EVAL_H
#define EVAL_H

#include "nta.h"
#include "rtc.h"

typedef struct {
    const char *model;    /* the model or supernet file */
    const char *data;     /* dataset whose test split is scored, or */
    const char *task;     /* a task of adapt, scored by its metric ("" = use data) */
    const char *arch;     /* supernets: largest, smallest, random or a string */
    int random;           /* supernets: score this many random architectures, a table by MFLOPs */
    int spread;           /* 1: the i-th random one from the i-th of `random` equal MFLOPs bins */
    int calib;            /* training batches of BN recalibration (supernets) */
    int linear;           /* 1: linear evaluation (a ridge head on the frozen pooled features of
                             the training split) instead of the model's own head */
    int seed, batch, limit;
    int reps;             /* bench: timed passes per measurement */
    /* predict, bench: specialised kernels (rtc.h) on this device (NULL: none,
     * e.g. the CPU backend), under NTA_RTC's mode, cached in cache ("": the default) */
    const RtcDevice *rtc_dev;
    int rtc_mode;
    const char *cache;
} EvalCfg;

/* Score the model (or the supernet's architectures) on the test split and
 * print the result, or a table by MFLOPs with the metric's rank correlation
 * with cost. Returns the exit status. */
int eval_run(const EvalCfg *c, const Backend *be);

/* nta predict: the model's (or an exported model's) class and softmax scores (or, for regression, its
 * value) for every test image, as CSV into out ("" = stdout), then its
 * accuracy (MAE) as eval measures it. Returns the exit status. */
int eval_predict(const EvalCfg *c, const char *out, const Backend *be);

/* nta export: the model's network for inference, batchnorm folded, into
 * out (rtc.h's exported models). Returns the exit status. */
int eval_export(const char *model, const char *out);

/* nta bench: the median time of an inference pass of the model at batch 1
 * and c->batch (the median of c->reps passes), by the
 * generic and the specialised kernels on a GPU (be the CUDA backend) and by
 * the CPU backend; no_gpu (or NULL) says why there is no GPU. A table on
 * stdout; returns the exit status. */
int eval_bench(const EvalCfg *c, const Backend *be, const char *no_gpu);

/* Spearman's rank correlation of a[n] and b[n] (ties share their mean rank). */
double eval_spearman(const double *a, const double *b, int n);

#endif
