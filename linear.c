/* linear.c: linear evaluation, the unsupervised paradigm's measure of a
 * frozen network (and the search's fitness with adapt --fitness linear).
 *
 *   linear_fit       ridge regression in closed form: standardised features
 *                    [n,F] to targets [n,K] (one-hot classes, or the regression value)
 *   linear_predict   the fitted head's outputs
 *   linear_eval      a network's pooled features of the task's training split
 *                    (BN statistics as they are), the head fitted on them, its
 *                    metric on another split
 *   linear_eval_arch the same for a supernet's architecture, after BN
 *                    recalibration on the task's training images
 *   linear_fit_loo   linear_fit, and each training row's output from the head
 *                    fitted without it (leave-one-out, closed form)
 *   linear_fitness_arch  the search's fitness (adapt --fitness linear): one
 *                    pass over the training split, leave-one-out metric
 *   linear_head_init a model's linear layer set to the head fitted on its
 *                    features (adapt --fitness linear starts finetuning there)
 *   linear_floor_*   what linear evaluation means something against: the same
 *                    fit on the raw pixels, and on the pooled features of the
 *                    same architecture with random, untrained weights
 *
 * Why ridge regression on one-hot targets rather than logistic regression or
 * SGD: it has a closed form (one F x F solve, F = 128 pooled features), so it
 * is exact, deterministic and has no learning rate or epochs to tune, and it
 * costs one pass over the features, which is what makes a search by linear
 * evaluation cheap; the same code fits a regression target. Its accuracy as a
 * probe is typically a little below a tuned logistic regression.
 *
 * Why the search's fitness is not linear_eval_arch: per candidate that runs
 * the recalibration batches, the training split and the validation split
 * through the network (640 + 1,000 + 500 images with the demo's settings).
 * linear_fitness_arch runs the training split once, in training mode: the
 * pass re-estimates the BN statistics and yields features normalised by
 * their batch's statistics, all from the same pass, and the held-out
 * metric comes from the ridge fit's closed-form leave-one-out outputs
 * instead of a validation split (1,000 images, under half the work).
 * Retrieval fits no head: the pass goes over the validation split, whose
 * mAP it scores (500 images instead of 640 + 500).
 *
 * Per task kind: classification and attribute, accuracy of the arg-max of
 * the fitted outputs; regression, MAE in degrees of the fitted value; retrieval
 * ranks unseen identities by the cosine similarity of the pooled features
 * themselves (task_retrieval: a head fitted on the training identities has
 * nothing to say about others), so its linear evaluation is the frozen
 * features' mAP with no head; domain adaptation is refused (a head fitted on
 * labelled source features measures the source domain, and the target
 * domain's labels may not be used).
 * Shapes: see nta.h.
 */
#include "nta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- ridge regression */

/* Solve A X = B in place for A [F,F] symmetric positive definite (lower
 * triangle overwritten by its Cholesky factor) and B [F,K] (overwritten by
 * X). Returns -1 if A is not positive definite. */
static int cholesky_solve(double *A, double *B, int F, int K)
{
    for (int j = 0; j < F; j++) {
        double d = A[(size_t)j * F + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * F + k] * A[(size_t)j * F + k];
        if (!(d > 0)) return -1;
        A[(size_t)j * F + j] = sqrt(d);
        for (int i = j + 1; i < F; i++) {
            double s = A[(size_t)i * F + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * F + k] * A[(size_t)j * F + k];
            A[(size_t)i * F + j] = s / A[(size_t)j * F + j];
        }
    }
    for (int c = 0; c < K; c++) {
        for (int i = 0; i < F; i++) {          /* L y = b */
            double s = B[(size_t)i * K + c];
            for (int k = 0; k < i; k++) s -= A[(size_t)i * F + k] * B[(size_t)k * K + c];
            B[(size_t)i * K + c] = s / A[(size_t)i * F + i];
        }
        for (int i = F - 1; i >= 0; i--) {     /* L^T x = y */
            double s = B[(size_t)i * K + c];
            for (int k = i + 1; k < F; k++) s -= A[(size_t)k * F + i] * B[(size_t)k * K + c];
            B[(size_t)i * K + c] = s / A[(size_t)i * F + i];
        }
    }
    return 0;
}

/* G [F,F] (lower triangle) = Xs^T Xs and R [F,K] = Xs^T (Y - b) over the n
 * rows of X [n,F] and Y [n,K], Xs = (X - mean) scale (h's). Rows go by
 * blocks of 64, standardised into double; the threads split the rows f of G
 * and R, and every entry is summed in row order, so the result does not
 * depend on the number of threads. Raw pixels (F = 784, n = 55,000) make
 * this the costly part of a fit. */
static void gram(double *G, double *R, const LinearHead *h, const float *X, int n, const float *Y)
{
    enum { ROWS = 64 };
    int F = h->F, K = h->K;
    double *xs = nta_malloc((size_t)ROWS * F * sizeof(double)), *yc = nta_malloc((size_t)ROWS * K * sizeof(double));
    for (int i0 = 0; i0 < n; i0 += ROWS) {
        int m = n - i0 < ROWS ? n - i0 : ROWS;
        for (int i = 0; i < m; i++) {
            for (int f = 0; f < F; f++) xs[(size_t)i * F + f] = (X[(size_t)(i0 + i) * F + f] - h->mean[f]) * h->scale[f];
            for (int c = 0; c < K; c++) yc[(size_t)i * K + c] = Y[(size_t)(i0 + i) * K + c] - h->b[c];
        }
#pragma omp parallel for schedule(dynamic, 8) if ((size_t)F * F * m > 100000)
        for (int f = 0; f < F; f++) {
            double *gf = G + (size_t)f * F, *rf = R + (size_t)f * K;
            for (int i = 0; i < m; i++) {
                double a = xs[(size_t)i * F + f];
                const double *xi = xs + (size_t)i * F;
                for (int g = 0; g <= f; g++) gf[g] += a * xi[g];
                for (int c = 0; c < K; c++) rf[c] += a * yc[(size_t)i * K + c];
            }
        }
    }
    free(xs), free(yc);
}

/* Fit h (linear_fit) and return the Cholesky factor of its system,
 * Xs^T Xs + lambda n I (lower triangle of [F,F]), for the caller to free. */
static double *ridge(LinearHead *h, const float *X, int n, int F, const float *Y, int K, double lambda)
{
    *h = (LinearHead){.F = F, .K = K};
    h->mean = nta_calloc((size_t)F, sizeof(double));
    h->scale = nta_calloc((size_t)F, sizeof(double));
    h->w = nta_calloc((size_t)F * K, sizeof(double));
    h->b = nta_calloc((size_t)K, sizeof(double));
    double *G = nta_calloc((size_t)F * F, sizeof(double));
    if (n < 1) return G;
    for (int i = 0; i < n; i++)                 /* feature means and standard deviations */
        for (int f = 0; f < F; f++) h->mean[f] += (double)X[(size_t)i * F + f] / n;
    for (int i = 0; i < n; i++)
        for (int f = 0; f < F; f++) {
            double v = X[(size_t)i * F + f] - h->mean[f];
            h->scale[f] += v * v / n;
        }
    for (int f = 0; f < F; f++) h->scale[f] = h->scale[f] > 1e-12 ? 1 / sqrt(h->scale[f]) : 0;   /* constant: unused */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) h->b[c] += (double)Y[(size_t)i * K + c] / n;
    /* G = Xs^T Xs + lambda n I, R = Xs^T (Y - mean Y) (into w), with Xs the standardised features */
    gram(G, h->w, h, X, n, Y);
    for (int f = 0; f < F; f++) G[(size_t)f * F + f] += lambda * n;
    if (cholesky_solve(G, h->w, F, K) != 0)      /* cannot happen with lambda > 0 */
        nta_die("linear evaluation: the ridge system is not positive definite (lambda %g)", lambda);
    return G;
}

void linear_fit(LinearHead *h, const float *X, int n, int F, const float *Y, int K, double lambda)
{
    free(ridge(h, X, n, F, Y, K, lambda));
}

/* Leave-one-out, in closed form: with the hat matrix H = 11^T/n + Xs (Xs^T Xs
 * + lambda n I)^-1 Xs^T (the intercept unpenalised), the head fitted without
 * row i predicts (yhat_i - H_ii y_i) / (1 - H_ii) there. H_ii = 1/n + |z|^2
 * with L z = xs_i, L the system's Cholesky factor. The standardisation is
 * that of all n rows. */
void linear_fit_loo(LinearHead *h, const float *X, int n, int F, const float *Y, int K, double lambda, float *loo)
{
    double *L = ridge(h, X, n, F, Y, K, lambda);
#pragma omp parallel if ((size_t)n * F * F > 1000000)
    {
        double *z = nta_malloc(((size_t)F + 1) * sizeof(double));
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            double hii = 1.0 / n;
            for (int f = 0; f < F; f++) {      /* L z = xs_i */
                double s = (X[(size_t)i * F + f] - h->mean[f]) * h->scale[f];
                for (int g = 0; g < f; g++) s -= L[(size_t)f * F + g] * z[g];
                z[f] = s / L[(size_t)f * F + f];
                hii += z[f] * z[f];
            }
            for (int c = 0; c < K; c++) {
                double yhat = h->b[c], y = Y[(size_t)i * K + c];
                for (int f = 0; f < F; f++)
                    yhat += (X[(size_t)i * F + f] - h->mean[f]) * h->scale[f] * h->w[(size_t)f * K + c];
                loo[(size_t)i * K + c] = (float)((yhat - hii * y) / (1 - hii));
            }
        }
        free(z);
    }
    free(L);
}

void linear_predict(const LinearHead *h, const float *X, int n, float *out)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < h->K; c++) {
            double s = h->b[c];
            for (int f = 0; f < h->F; f++)
                s += (X[(size_t)i * h->F + f] - h->mean[f]) * h->scale[f] * h->w[(size_t)f * h->K + c];
            out[(size_t)i * h->K + c] = (float)s;
        }
}

void linear_free(LinearHead *h)
{
    free(h->mean), free(h->scale), free(h->w), free(h->b);
    *h = (LinearHead){0};
}

/* ------------------------------------------------ linear evaluation of a task */

/* The targets of split s [n,K]: one-hot labels (K classes), or the regression value (K = 1). */
static float *targets(const DataSplits *d, const Dataset *s, int K)
{
    float *Y = nta_calloc((size_t)s->n * K + 1, sizeof(float));
    for (int i = 0; i < s->n; i++) {
        if (d->kind == TASK_REGRESS) Y[i] = s->value[i];
        else if (s->label[i] >= 0 && s->label[i] < K) Y[(size_t)i * K + s->label[i]] = 1;
    }
    return Y;
}

/* The metric of the head's outputs out [n,K] on split s: accuracy % of the
 * arg-max, or MAE in degrees. */
static double head_metric(const DataSplits *d, const Dataset *s, const float *out, int K)
{
    double m = 0;
    for (int i = 0; i < s->n; i++) {
        if (d->kind == TASK_REGRESS) {
            m += fabs(out[i] - s->value[i]);
            continue;
        }
        int best = 0;
        for (int c = 1; c < K; c++) best = out[(size_t)i * K + c] > out[(size_t)i * K + best] ? c : best;
        m += best == s->label[i];
    }
    if (!s->n) return 0;
    return d->kind == TASK_REGRESS ? DATA_ROT_MAX * m / s->n : 100 * m / s->n;
}

static void refuse_uda(const DataSplits *d)
{
    nta_die("linear evaluation does not apply to domain adaptation ('%s'): a head fitted on the labelled "
            "source images measures the source domain, and the target domain's labels may not be used", d->name);
}

double linear_eval_features(const DataSplits *d, const float *train_feat, const float *feat, const Dataset *s,
                            int F, double *second)
{
    if (second) *second = NAN;
    if (d->kind == TASK_UDA) refuse_uda(d);
    if (d->kind == TASK_RETRIEVE) return task_retrieval(feat, s->label, s->n, F, second);
    int K = d->kind == TASK_REGRESS ? 1 : task_outputs(d);
    float *Y = targets(d, &d->train, K), *out = nta_malloc(((size_t)s->n * K + 1) * sizeof(float));
    LinearHead h;
    linear_fit(&h, train_feat, d->train.n, F, Y, K, LINEAR_RIDGE);
    linear_predict(&h, feat, s->n, out);
    double m = head_metric(d, s, out, K);
    linear_free(&h);
    free(Y), free(out);
    return m;
}

void linear_head_init(Net *net, const DataSplits *d)
{
    const NetDesc *nd = net_desc(net);
    int F = nd->head_c, L = nd->classes, K = d->kind == TASK_REGRESS ? 1 : task_outputs(d);
    if (d->kind == TASK_RETRIEVE || d->kind == TASK_UDA || K > L) return;
    float *X = nta_malloc(((size_t)d->train.n * F + 1) * sizeof(float)), *Y = targets(d, &d->train, K);
    task_features(net, d, &d->train, X, NULL);
    LinearHead h;
    linear_fit(&h, X, d->train.n, F, Y, K, LINEAR_RIDGE);
    /* out = b + sum_f (x_f - mean_f) scale_f w_fc = (b - sum_f mean_f scale_f w_fc) + x . (scale w) */
    float *w = nta_calloc((size_t)F * L, sizeof(float)), *b = nta_calloc((size_t)L, sizeof(float));
    for (int c = 0; c < K; c++) {
        double bias = h.b[c];
        for (int f = 0; f < F; f++) {
            double wf = h.scale[f] * h.w[(size_t)f * K + c];
            w[(size_t)f * L + c] = (float)wf;
            bias -= h.mean[f] * wf;
        }
        b[c] = (float)bias;
    }
    net_set_linear(net, w, b);
    linear_free(&h);
    free(X), free(Y), free(w), free(b);
}

double linear_eval(Net *net, const DataSplits *d, const Dataset *s, double *second)
{
    int F = net_desc(net)->head_c;
    float *tr = nta_malloc(((size_t)d->train.n * F + 1) * sizeof(float));
    float *ft = nta_malloc(((size_t)s->n * F + 1) * sizeof(float));
    if (d->kind != TASK_RETRIEVE) task_features(net, d, &d->train, tr, NULL);
    task_features(net, d, s, ft, NULL);
    double m = linear_eval_features(d, tr, ft, s, F, second);
    free(tr), free(ft);
    return m;
}

double linear_floor_pixels(const DataSplits *d, const Dataset *s, double *second)
{
    const Dataset *t = &d->train;
    int F = t->h * t->w * t->c;
    float *tr = nta_malloc(((size_t)t->n * F + 1) * sizeof(float)), *ft = nta_malloc(((size_t)s->n * F + 1) * sizeof(float));
    int *idx = nta_malloc(((size_t)(t->n > s->n ? t->n : s->n) + 1) * sizeof(int));
    int32_t *y = nta_malloc(((size_t)(t->n > s->n ? t->n : s->n) + 1) * sizeof(int32_t));
    for (int i = 0; i < t->n || i < s->n; i++) idx[i] = i;
    data_batch(d, t, idx, t->n, tr, y, NULL);
    data_batch(d, s, idx, s->n, ft, y, NULL);
    double m = linear_eval_features(d, tr, ft, s, F, second);
    free(tr), free(ft), free(idx), free(y);
    return m;
}

double linear_floor_random(const Net *super, const DataSplits *d, const Dataset *s, const Arch *a, int calib,
                           uint64_t seed, double *second)
{
    NetDesc sd = arch_standalone(net_desc(super), a);
    sd.mlp = 0;
    Net *fresh = net_create(&sd, LOSS_XENT, net_backend(super), net_batch(super), seed, 0);
    net_recalibrate(fresh, d, calib, seed);
    double m = linear_eval(fresh, d, s, second);
    net_free(fresh);
    return m;
}

double linear_eval_arch(Net *net, const DataSplits *d, const Dataset *s, const Arch *a, int calib, uint64_t seed,
                        double *second)
{
    net_set_arch(net, a);
    net_recalibrate(net, d, calib, seed);
    return linear_eval(net, d, s, second);
}

double linear_fitness_arch(Net *net, const DataSplits *d, const Arch *a)
{
    const Dataset *s = d->kind == TASK_RETRIEVE ? &d->val : &d->train;   /* retrieval: no head to fit */
    int F = net_desc(net)->head_c, K = d->kind == TASK_REGRESS ? 1 : task_outputs(d);
    if (d->kind == TASK_UDA) refuse_uda(d);
    net_set_arch(net, a);
    float *X = nta_malloc(((size_t)s->n * F + 1) * sizeof(float));
    net_recalibrate_split(net, d, s, X);
    if (d->kind == TASK_RETRIEVE) {
        double m = task_retrieval(X, s->label, s->n, F, NULL);
        free(X);
        return m;
    }
    float *Y = targets(d, s, K), *loo = nta_malloc(((size_t)s->n * K + 1) * sizeof(float));
    LinearHead h;
    linear_fit_loo(&h, X, s->n, F, Y, K, LINEAR_RIDGE, loo);
    double m = head_metric(d, s, loo, K);
    linear_free(&h);
    free(X), free(Y), free(loo);
    return m;
}
