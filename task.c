/* task.c: what a task trains on and measures. Batches with their labels or
 * regression targets (and, for domain adaptation, unlabelled target images),
 * the training loss, and the metric of a split (accuracy, MAE, retrieval
 * rank-1 and mAP).
 *
 *   kind            head                loss          metric (test split)
 *   TASK_CLASSIFY   classes             cross-entropy accuracy %
 *   TASK_REGRESS    1 (angle / 45)      L1            MAE in degrees (lower is better)
 *   TASK_RETRIEVE   training identities cross-entropy mAP % (and rank-1 %) of the
 *                                                     pooled features, each image a
 *                                                     query against all the others
 *   TASK_UDA        classes             cross-entropy accuracy % on the target domain
 *                   (+ entropy of unlabelled target
 *                    images, + MMD of the features)
 *
 * Domain adaptation trains on batches of half labelled source images and half
 * unlabelled target images: cross-entropy on the first half, plus a weight
 * times the mean softmax entropy of the second (entropy minimisation), plus a
 * weight times the linear MMD of the pooled features (the squared distance
 * between the two halves' mean feature vectors, as in DDC: Tzeng et al.
 * 2014), with batchnorm statistics over both, so the running statistics that
 * the test uses are those of the mixture. Without the MMD term every method
 * scored 25-35% on the target domain; with it, 81-92% (README). Re-estimating
 * the statistics on target images alone (AdaBN) was tried and measured worse:
 * a source-only model scored 62% on the target test split with source
 * statistics and 33% after AdaBN.
 */
#include "nta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int task_outputs(const DataSplits *d)
{
    if (d->kind == TASK_REGRESS) return 1;
    if (d->kind == TASK_RETRIEVE) return d->train.classes;
    return d->train.classes > d->test.classes ? d->train.classes : d->test.classes;
}

const char *task_metric_name(const DataSplits *d)
{
    return d->kind == TASK_REGRESS ? "MAE (degrees)" : d->kind == TASK_RETRIEVE ? "mAP %" : "accuracy %";
}

int task_lower_better(const DataSplits *d) { return d->kind == TASK_REGRESS; }

int task_loss(const DataSplits *d) { return d->kind == TASK_REGRESS ? LOSS_L1 : LOSS_XENT; }

void task_batch(Net *net, const DataSplits *d, const Dataset *s, const int *idx, int B, float *x,
                int32_t *y, Rng *aug)
{
    data_batch(d, s, idx, B, x, y, aug);
    net->be->upload(net->x_in, x, (size_t)B * s->h * s->w * s->c * sizeof(float));
    net->be->upload(net->y_in, y, (size_t)B * sizeof(int32_t));
    if (!s->value) return;
    float *t = nta_malloc((size_t)B * sizeof(float));
    for (int b = 0; b < B; b++) t[b] = s->value[idx[b]];
    net->be->upload(net->t_in, t, (size_t)B * sizeof(float));
    free(t);
}

typedef struct { float sim; int i; } Ranked;

/* By similarity, descending; ties by index, so the order is deterministic. */
static int ranked_cmp(const void *pa, const void *pb)
{
    const Ranked *a = pa, *b = pb;
    if (a->sim != b->sim) return a->sim < b->sim ? 1 : -1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Average precision of one query: sim [n] to every image, the query itself
 * (index q) excluded; positives share its label. *top1: the most similar
 * other image shares it. r: scratch [n]. */
static double average_precision(const float *sim, const int32_t *label, int n, int q, int *top1, Ranked *r)
{
    int m = 0, hits = 0;
    for (int i = 0; i < n; i++)
        if (i != q) r[m++] = (Ranked){sim[i], i};
    qsort(r, (size_t)m, sizeof *r, ranked_cmp);
    double ap = 0;
    for (int k = 0; k < m; k++)
        if (label[r[k].i] == label[q]) ap += (double)++hits / (k + 1);
    *top1 = m > 0 && label[r[0].i] == label[q];
    return hits ? ap / hits : 0;
}

/* Rows of x [n,dim] scaled to unit length (a zero row stays zero), in a new buffer. */
static float *unit_rows(const float *x, int n, int dim)
{
    float *e = nta_malloc(((size_t)n * dim + 1) * sizeof(float));
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < dim; k++) ss += (double)x[(size_t)i * dim + k] * x[(size_t)i * dim + k];
        float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
        for (int k = 0; k < dim; k++) e[(size_t)i * dim + k] = x[(size_t)i * dim + k] * inv;
    }
    return e;
}

/* task_retrieval, with each query's average precision (%) into ap [n] when ap is set. */
static double retrieval(const float *emb, const int32_t *label, int n, int dim, double *rank1, float *ap)
{
    float *e = unit_rows(emb, n, dim), *sim = nta_malloc((size_t)n * sizeof(float) + 1);   /* cosine: unit rows */
    Ranked *r = nta_malloc(((size_t)n + 1) * sizeof *r);
    double map = 0;
    int right = 0;
    for (int q = 0; q < n; q++) {
        for (int i = 0; i < n; i++) {
            float dot = 0;
            for (int k = 0; k < dim; k++) dot += e[(size_t)q * dim + k] * e[(size_t)i * dim + k];
            sim[i] = dot;
        }
        int top1;
        double apq = average_precision(sim, label, n, q, &top1, r);
        if (ap) ap[q] = (float)(100 * apq);
        map += apq;
        right += top1;
    }
    free(e), free(sim), free(r);
    if (rank1) *rank1 = n ? 100.0 * right / n : 0;
    return n ? 100 * map / n : 0;
}

double task_retrieval(const float *emb, const int32_t *label, int n, int dim, double *rank1)
{
    return retrieval(emb, label, n, dim, rank1, NULL);
}

/* Each image's score of a batch of b images idx[b] of s from the network's
 * outputs, into item[b]: 100 if the arg-max of its logits [b,L] is its label
 * (the first of equal maxima, as the backends' xent), else 0; regression: the
 * absolute error in degrees. */
static void batch_items(Net *net, const DataSplits *d, const Dataset *s, const int *idx, int b, float *item)
{
    int L = net->d.classes;
    float *z = nta_malloc((size_t)b * L * sizeof(float));
    net->be->download(z, net->logits, (size_t)b * L * sizeof(float));
    for (int j = 0; j < b; j++) {
        const float *zj = z + (size_t)j * L;
        int best = 0;
        for (int c = 1; c < L; c++)
            if (zj[c] > zj[best]) best = c;
        item[j] = d->kind == TASK_REGRESS ? DATA_ROT_MAX * fabsf(zj[0] - s->value[idx[j]])
                                          : best == s->label[idx[j]] ? 100.0f : 0.0f;
    }
    free(z);
}

double task_score(Net *net, const DataSplits *d, const Dataset *s, double *second)
{
    return task_score_items(net, d, s, second, NULL);
}

double task_score_items(Net *net, const DataSplits *d, const Dataset *s, double *second, float *item)
{
    int B = net->B, right = 0, dim = net->d.head_c;
    double err = 0;
    float *x = nta_malloc((size_t)B * s->h * s->w * s->c * sizeof(float));
    float *emb = d->kind == TASK_RETRIEVE ? nta_malloc(((size_t)s->n + 1) * dim * sizeof(float)) : NULL;
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    int *idx = nta_malloc((size_t)B * sizeof(int));
    for (int i = 0; i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B, c = 0;
        for (int j = 0; j < b; j++) idx[j] = i + j;
        task_batch(net, d, s, idx, b, x, y, NULL);
        net_forward(net, b, 0);
        if (emb) net->be->download(emb + (size_t)i * dim, net->pooled, (size_t)b * dim * sizeof(float));
        else err += net_loss(net, b, &c);   /* L1: the summed absolute error */
        if (item && !emb) batch_items(net, d, s, idx, b, item + i);
        right += c;
    }
    double m = 0;
    if (second) *second = NAN;
    if (emb) m = retrieval(emb, s->label, s->n, dim, second, item);
    else if (d->kind == TASK_REGRESS) m = s->n ? DATA_ROT_MAX * err / s->n : 0;
    else m = s->n ? 100.0 * right / s->n : 0;
    free(x), free(y), free(idx), free(emb);
    return m;
}

void task_features(Net *net, const DataSplits *d, const Dataset *s, float *pooled, float *out)
{
    int B = net->B, ch = net->d.head_c, L = net->d.classes;
    float *x = nta_malloc((size_t)B * s->h * s->w * s->c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    int *idx = nta_malloc((size_t)B * sizeof(int));
    for (int i = 0; i < s->n; i += B) {
        int b = s->n - i < B ? s->n - i : B;
        for (int j = 0; j < b; j++) idx[j] = i + j;
        task_batch(net, d, s, idx, b, x, y, NULL);
        net_forward(net, b, 0);
        net->be->download(pooled + (size_t)i * ch, net->pooled, (size_t)b * ch * sizeof(float));
        if (out) net->be->download(out + (size_t)i * L, net->logits, (size_t)b * L * sizeof(float));
    }
    free(x), free(y), free(idx);
}

double task_knn(const float *feat, const int32_t *label, int n, int dim, int k)
{
    if (n < 2) return 0;
    if (k > n - 1) k = n - 1;
    int classes = 1, right = 0;
    for (int i = 0; i < n; i++) classes = label[i] >= classes ? label[i] + 1 : classes;
    float *e = unit_rows(feat, n, dim);
#pragma omp parallel reduction(+ : right)
    {
        Ranked *top = nta_malloc(((size_t)k + 1) * sizeof *top);   /* the k best so far, best first */
        double *vote = nta_malloc((size_t)classes * sizeof(double));
#pragma omp for schedule(static)
        for (int q = 0; q < n; q++) {
            int m = 0;
            for (int i = 0; i < n; i++) {
                if (i == q) continue;
                float dot = 0;
                for (int j = 0; j < dim; j++) dot += e[(size_t)q * dim + j] * e[(size_t)i * dim + j];
                Ranked r = {dot, i};
                if (m == k && ranked_cmp(&r, &top[k - 1]) >= 0) continue;
                int at = m < k ? m++ : k - 1;            /* insert, keeping the order */
                while (at > 0 && ranked_cmp(&r, &top[at - 1]) < 0) top[at] = top[at - 1], at--;
                top[at] = r;
            }
            for (int c = 0; c < classes; c++) vote[c] = 0;
            for (int t = 0; t < m; t++) vote[label[top[t].i]] += top[t].sim;
            int best = 0;
            for (int c = 1; c < classes; c++) best = vote[c] > vote[best] ? c : best;
            right += best == label[q];
        }
        free(top), free(vote);
    }
    free(e);
    return 100.0 * right / n;
}

void task_train_batch(Net *net, const DataSplits *d, const int *idx, int B, float *x, int32_t *y, Rng *aug,
                      Rng *rng)
{
    if (d->kind != TASK_UDA) {
        task_batch(net, d, &d->train, idx, B, x, y, aug);
        return;
    }
    const Dataset *s = &d->train, *t = &d->target;
    int h = B / 2;
    size_t img = (size_t)s->h * s->w * s->c;
    int *tidx = nta_malloc((size_t)(B - h) * sizeof(int));
    for (int j = 0; j < B - h; j++) tidx[j] = (int)rng_below(rng, (uint32_t)t->n);
    data_batch(d, s, idx, h, x, y, aug);
    data_batch(d, t, tidx, B - h, x + h * img, y + h, aug);
    net->be->upload(net->x_in, x, (size_t)B * img * sizeof(float));
    net->be->upload(net->y_in, y, (size_t)B * sizeof(int32_t));
    free(tidx);
}

double task_train_loss(Net *net, const DataSplits *d, int B, float entropy, float mmd, int *correct)
{
    if (d->kind != TASK_UDA) return net_loss(net, B, correct);
    int h = B / 2, L = net->d.classes;
    double loss = net->be->xent(net->dlogits, correct, net->logits, net->y_in, h, L);
    net->be->entropy(net->dlogits + (size_t)h * L, net->logits + (size_t)h * L, entropy, B - h, L);
    net->be->mmd(net->dpooled_add, net->pooled, B, h, net->d.head_c, mmd);
    net->dpooled_on = 1;
    return loss;
}

double task_score_arch(Net *net, const DataSplits *d, const Dataset *s, const Arch *a, int calib,
                       uint64_t seed, double *second)
{
    net_set_arch(net, a);
    net_recalibrate(net, d, calib, seed);
    return task_score(net, d, s, second);
}

double task_fitness(const DataSplits *d, double metric) { return task_lower_better(d) ? -metric : metric; }

const char *task_format_metric(char *buf, size_t len, const DataSplits *d, double m, double second)
{
    if (d->kind == TASK_REGRESS) snprintf(buf, len, "MAE %.2f degrees", m);
    else if (d->kind == TASK_RETRIEVE) snprintf(buf, len, "mAP %.2f%% (rank-1 %.2f%%)", m, second);
    else snprintf(buf, len, "accuracy %.2f%%", m);
    return buf;
}

void task_check_images(const NetDesc *nd, const DataSplits *d, const char *what)
{
    const Dataset *t = &d->test;
    if (nd->in_h != t->h || nd->in_w != t->w || nd->in_c != t->c)
        nta_die("%s expects %dx%dx%d images, but data '%s' has %dx%dx%d", what, nd->in_h,
                nd->in_w, nd->in_c, d->name, t->h, t->w, t->c);
}

void task_check_net(const NetDesc *nd, const DataSplits *d, const char *what)
{
    task_check_images(nd, d, what);
    if (d->kind == TASK_REGRESS && nd->classes != 1)
        nta_die("%s has %d outputs; the regression task '%s' needs a model with one (made by a regression task)",
                what, nd->classes, d->name);
    if (nd->classes < task_outputs(d))
        nta_die("%s has %d outputs, but data '%s' needs %d (labels up to %d)", what, nd->classes,
                d->name, task_outputs(d), task_outputs(d) - 1);
}
