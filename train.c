/* train.c: the training loop of every phase, its checkpoints and resume,
 * keep-best, and the rules that sample a supernet's sub-architectures.
 *
 *   train_sample_arch  the sandwich and uniform rules
 *   train_fit          the loop: batches, passes, SGD, progress, validation, checkpoints
 *   train_ssl_monitor  self-supervised pretraining's epoch line: collapse and kNN accuracy
 *   train_run          nta train and nta pretrain end to end
 *
 * Self-supervised pretraining (pretrain --objective ssl) is SimCLR (Chen et
 * al. 2020): each step takes B/2 images, two augmented views of each
 * (data_views), and trains the supernet's sub-architectures, with a
 * projection head (linear, BN, ReLU6, linear to TRAIN_SSL_DIM) after the pool,
 * to tell each view's partner among the other B-1 views (NT-Xent,
 * net_ssl_loss). The training split's labels are zeroed before training: no
 * step can read them. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"
#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const train_sampling_name[] = {"fixed", "sandwich", "uniform"};

/* ------------------------------------------------------- sampling rules */

int train_passes(int sampling) { return sampling == SAMPLE_SANDWICH ? 4 : 1; }

Arch train_sample_arch(const NetDesc *d, const TrainCfg *c, int sampling, int pass, Rng *rng)
{
    if (c->npool > 0) return c->pool[rng_below(rng, (uint32_t)c->npool)];
    if (sampling == SAMPLE_SANDWICH && pass == 1) return arch_smallest(d);
    if (c->region > 0) return search_draw_under(d, c->region, rng);
    if (sampling == SAMPLE_SANDWICH && pass == 0) return arch_largest(d);
    return arch_random(d, rng);
}

/* ------------------------------------------------- checkpoints, resume */

/* The shards of each step: --shards, or one per rank. */
static int train_shards(const TrainCfg *c) { return c->shards ? c->shards : dist_size(); }

/* The metadata line a checkpoint carries: every setting that shapes the run
 * (a resumed run must repeat them to end as an unbroken one), then the epoch. */
static void checkpoint_meta(char *buf, size_t len, const TrainCfg *c, int sampling, int epoch)
{
    snprintf(buf, len,
             "data=%s seed=%d epochs=%d batch=%d sampling=%s lr=%.9g warmup=%.9g momentum=%.9g wd=%.9g "
             "augment=%d val=%d limit=%d epoch=%d\n",
             c->data, c->seed, c->epochs, c->batch, train_sampling_name[sampling], c->lr, c->warmup, c->momentum,
             c->wd, c->augment, c->val, c->limit, epoch);
    if (c->ssl) {         /* before the epoch, so that it stays the last field */
        char *e = strstr(buf, " epoch=");
        snprintf(e, len - (size_t)(e - buf), " objective=ssl temperature=%.9g epoch=%d\n", c->tau, epoch);
    }
    if (c->region > 0) {  /* the same */
        char *e = strstr(buf, " epoch=");
        snprintf(e, len - (size_t)(e - buf), " region=%.9g epoch=%d\n", c->region, epoch);
    }
    if (train_shards(c) > 1) {     /* the same: a run of one shard keeps the meta line it always had */
        char *e = strstr(buf, " epoch=");
        snprintf(e, len - (size_t)(e - buf), " shards=%d epoch=%d\n", train_shards(c), epoch);
    }
}

/* The shards of the run that wrote a checkpoint's metadata. */
static int meta_shards(const char *meta)
{
    const char *s = strstr(meta, " shards=");
    return s ? atoi(s + 8) : 1;
}

/* Load a checkpoint to continue from; *epoch = the last finished epoch.
 * Shards not given (0): those of the run that wrote it, whatever the ranks now. */
static Net *resume_from(TrainCfg *c, int sampling, const Backend *be, int *epoch)
{
    char err[512], want[512];
    Net *net = net_load(c->resume, LOSS_XENT, be, c->batch, err, sizeof err);
    if (!net) nta_die("--resume: %s", err);
    const char *meta = net_checkpoint_meta(net), *e = meta ? strstr(meta, " epoch=") : NULL;
    if (!e) nta_die("--resume: '%s' is a model, not a checkpoint of a training run", c->resume);
    char *end;
    long ep = strtol(e + 7, &end, 10);
    if (ep < 1 || ep > c->epochs || *end != '\n')
        nta_die("--resume: '%s' claims epoch %ld; a checkpoint holds an epoch in 1..--epochs", c->resume, ep);
    *epoch = (int)ep;
    if (!c->shards) c->shards = meta_shards(meta);
    checkpoint_meta(want, sizeof want, c, sampling, *epoch);
    if (strcmp(want, meta) != 0)
        nta_die("--resume: '%s' was written by a run with other settings:\n  it has:  %s  asked:   %s"
                "  give the same options as that run", c->resume, meta, want);
    if (*epoch >= c->epochs) nta_die("--resume: '%s' already finished all %d epochs", c->resume, c->epochs);
    printf("resuming from %s after epoch %d\n", c->resume, *epoch);
    return net;
}

/* ------------------------------------------------------------ the loop */

/* The validation line of an epoch: the metric of the network, or of a
 * supernet's largest and smallest architectures after recalibration. Returns
 * a fixed network's validation fitness (higher is better), else NAN. */
static double validate(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int ep)
{
    char m1[96], m2[96];
    double s1, s2;
    if (!d->val.n) return NAN;
    if (sampling == SAMPLE_FIXED) {
        double v = task_score(net, d, &d->val, &s1);
        printf("epoch %d: val %s\n", ep, task_format_metric(m1, sizeof m1, d, v, s1));
        return task_fitness(d, v);
    }
    Arch big = arch_largest(net_desc(net)), small = arch_smallest(net_desc(net));
    double vb = task_score_arch(net, d, &d->val, &big, c->calib, (uint64_t)c->seed, &s1);
    double vs = task_score_arch(net, d, &d->val, &small, c->calib, (uint64_t)c->seed, &s2);
    printf("epoch %d: val largest %s, smallest %s\n", ep, task_format_metric(m1, sizeof m1, d, vb, s1),
           task_format_metric(m2, sizeof m2, d, vs, s2));
    return NAN;
}

/* ------------------------------------------------- the SSL monitor */

SslMonitor train_ssl_monitor(Net *net, const DataSplits *d, const Dataset *s)
{
    const NetDesc *nd = net_desc(net);
    int L = nd->classes, ch = nd->head_c;
    float *pooled = nta_malloc(((size_t)s->n * ch + 1) * sizeof(float));
    float *proj = nta_malloc(((size_t)s->n * L + 1) * sizeof(float));
    task_features(net, d, s, pooled, proj);
    SslMonitor m = {.even = 1 / sqrt((double)L)};
    double total = 0;
    for (int j = 0; j < L && s->n > 1; j++) {      /* per dimension of the unit projections */
        double s1 = 0, s2 = 0;
        for (int i = 0; i < s->n; i++) {
            const float *p = proj + (size_t)i * L;
            double len = 0;
            for (int k = 0; k < L; k++) len += (double)p[k] * p[k];
            double v = len > 0 ? p[j] / sqrt(len) : 0;
            s1 += v, s2 += v * v;
        }
        double var = s2 / s->n - (s1 / s->n) * (s1 / s->n);
        total += var > 0 ? sqrt(var) : 0;
    }
    m.std = total / L;
    m.collapsed = m.std < 0.1 * m.even;
    m.knn = task_knn(pooled, s->label, s->n, ch, TRAIN_SSL_KNN);
    free(pooled), free(proj);
    return m;
}

/* The SSL epoch line: the mean training loss (chance: log(B-1)), then the
 * monitor of the largest architecture on the validation split, after BN
 * recalibration. Returns NAN (no keep-best for a supernet). */
static double ssl_epoch(Net *net, const DataSplits *d, const TrainCfg *c, int ep, double loss)
{
    printf("epoch %d: loss %.4f (chance %.4f)", ep, loss, log(c->batch - 1.0));
    if (d->val.n > 1) {
        Arch big = arch_largest(net_desc(net));
        net_set_arch(net, &big);
        net_recalibrate(net, d, c->calib, (uint64_t)c->seed);
        SslMonitor m = train_ssl_monitor(net, d, &d->val);
        printf(", largest on val: embedding std %.4f (collapse: 0, even spread: %.4f), %d-NN accuracy %.2f%%%s", m.std,
               m.even, TRAIN_SSL_KNN, m.knn, m.collapsed ? "; COLLAPSED: every image maps to nearly one point" : "");
    }
    printf("\n");
    return NAN;
}

/* SSL: the batch of B = 2n views of the training images idx[0..n) into x
 * [B,H,W,C] and the network's input. */
static void ssl_batch(Net *net, const DataSplits *d, const int *idx, int B, float *x, Rng *rng)
{
    const Dataset *s = &d->train;
    data_views(d, s, idx, B / 2, x, rng);
    net_backend(net)->upload(net->x_in, x, (size_t)B * s->h * s->w * s->c * sizeof(float));
}

/* Shard images idx[0..) of a step, Bs rows, into x, y and the network's
 * input (SSL: Bs/2 images, two views each). */
static void load_shard(Net *net, const DataSplits *d, const TrainCfg *c, const int *idx, int Bs, float *x,
                       int32_t *y, Rng *rng)
{
    if (c->ssl) ssl_batch(net, d, idx, Bs, x, rng);
    else task_train_batch(net, d, idx, Bs, x, y, c->augment ? rng : NULL, rng);
}

/* Whether a step's loss is computed and kept on the device (net_train_loss):
 * a plain task's cross-entropy or L1; not SSL's NT-Xent nor domain
 * adaptation's combined loss, which are read back every pass. */
static int loss_on_device(const TrainCfg *c, const DataSplits *d) { return !c->ssl && d->kind != TASK_UDA; }

/* The passes of a batch already loaded (B rows), one per architecture of
 * arch[np] (NULL: the fixed network, one pass): their gradients summed; the
 * first pass's loss and right answers added to the network's counters. A
 * plain task's loss stays on the device (net_train_pass); SSL's and domain
 * adaptation's are computed on the host. */
static void step_passes(Net *net, const DataSplits *d, const TrainCfg *c, int B, const Arch *arch, int np)
{
    net_zero_grad(net);
    for (int p = 0; p < np; p++) {
        if (arch) net_set_arch(net, &arch[p]);
        if (loss_on_device(c, d)) {
            net_train_pass(net, B, p == 0);   /* report the largest */
            continue;
        }
        int corr = 0;
        net_forward(net, B, 1);
        double l = c->ssl ? net_ssl_loss(net, B, c->tau, &corr)
                          : task_train_loss(net, d, B, c->uda_entropy, c->uda_mmd, &corr);
        if (p == 0) net_stats_add(net, l, corr);
        net_backward(net, B);
    }
}

/* One SGD step on the batch of images idx[0..per) (x [B,H,W,C] and y [B] are
 * its host scratch; SSL: B/2 images, two views each): the gradients of every
 * pass (one sub-architecture each under a sampling rule) summed, then one
 * update. The first pass's summed loss and right answers (SSL: views whose
 * nearest other view is their partner) go to the network's counters
 * (net_stats_take). A plain task's loss stays on the device (net_train_loss),
 * so the host never waits for a step; SSL and domain adaptation read theirs.
 * A fixed network on a plain task trains through net_train_step: one CUDA
 * graph per step. A supernet's passes go through net_train_pass: one graph
 * per architecture that recurs (the sandwich rule's largest and smallest,
 * every step); its random architectures almost never recur, and a graph
 * recorded for each would be run once, costing more than it saves, so those
 * passes run as called.
 * With S > 1 shards (dg), shard k is images idx[k*per/S..) through the same
 * passes with its own batchnorm statistics and its own draws (seeded from
 * the step's stream and k, whichever rank runs it); dg averages their
 * gradients, and their losses are read back and summed in shard order. */
static void train_step(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, const int *idx,
                       float *x, int32_t *y, Rng *rng, float lr, DistGrad *dg)
{
    int S = train_shards(c), Bs = c->batch / S, per = d->kind == TASK_UDA || c->ssl ? Bs / 2 : Bs;
    int np = train_passes(sampling), first, count;
    uint64_t seed = S > 1 ? rng_u64(rng) : 0;
    Arch arch[4];
    if (S == 1) {
        load_shard(net, d, c, idx, Bs, x, y, rng);
        if (sampling == SAMPLE_FIXED && loss_on_device(c, d)) {
            net_train_step(net, Bs, lr, c->momentum, c->wd);   /* one graph per step where the backend has them */
            return;
        }
    }
    for (int p = 0; p < np && sampling != SAMPLE_FIXED; p++)   /* the same for every shard */
        arch[p] = train_sample_arch(net_desc(net), c, sampling, p, rng);
    const Arch *archs = sampling != SAMPLE_FIXED ? arch : NULL;
    if (S == 1) {
        step_passes(net, d, c, Bs, archs, np);
        net_update(net, lr, c->momentum, c->wd);
        return;
    }
    int carried_right, right;
    double carried = net_stats_take(net, &carried_right), loss;   /* the steps' counts before this one */
    dist_grad_shards(dg, &first, &count);
    dist_grad_begin(dg);
    for (int k = first; k < first + count; k++) {
        Rng r;
        rng_seed(&r, seed + (uint64_t)k);
        load_shard(net, d, c, idx + (size_t)k * per, Bs, x, y, &r);
        step_passes(net, d, c, Bs, archs, np);
        loss = net_stats_take(net, &right);
        dist_grad_shard(dg, k - first, loss, right);
    }
    dist_grad_reduce(dg, &loss, &right);
    net_stats_add(net, carried + loss, carried_right + right);
    net_update(net, lr, c->momentum, c->wd);
}

/* The progress line: epoch, step, loss, accuracy, rate and ETA; in place on
 * a terminal, every 30 s in a log. */
typedef struct { int tty; double t0, tlast; long step0, total; } Progress;

/* Whether step s of steps shows a progress line (the last one always does). */
static int progress_due(const Progress *pg, int s, int steps)
{
    return nta_now() - pg->tlast > (pg->tty ? 0.5 : 30) || s == steps - 1;
}

static void progress(Progress *pg, const TrainCfg *c, const DataSplits *d, int ep, int s, int steps, long step,
                     double loss, int right, int seen)
{
    double now = nta_now();
    char eta[32], acc[48] = "";
    double rate = (step + 1 - pg->step0) * (double)c->batch / (now - pg->t0);   /* images through the network */
    nta_fmt_time(eta, sizeof eta, (pg->total - step - 1) * (double)c->batch / rate);
    if (c->ssl) snprintf(acc, sizeof acc, " pair acc %.2f%%", 100.0 * right / seen);
    else if (d->kind != TASK_REGRESS) snprintf(acc, sizeof acc, " train acc %.2f%%", 100.0 * right / seen);
    char shared[64] = "";    /* the CPU backend's governor gave up threads to another process */
    if (cpu_threads() < c->threads)
        snprintf(shared, sizeof shared, " (machine shared: on %d of %d threads)", cpu_threads(), c->threads);
    printf("%sepoch %d/%d step %d/%d loss %.4f%s %.0f img/s ETA %s%s%s", pg->tty ? "\r" : "", ep, c->epochs,
           s + 1, steps, loss / seen, acc, rate, eta, shared, pg->tty ? "\033[K" : "\n");
    fflush(stdout);
    pg->tlast = now;
}

/* Stop a run whose loss is no longer a number; the checkpoint of the last
 * finished epoch is left as it was. */
static void diverged(const TrainCfg *c, int ep, int s, float lr, double loss)
{
    if (isatty(fileno(stdout))) printf("\n");
    nta_die("the training loss became %g at epoch %d, by step %d (learning rate %g): training diverged; "
            "lower --lr (now %g)%s%s%s", loss, ep, s + 1, lr, c->lr, *c->out ? "; the checkpoint '" : "",
            c->out, *c->out ? "' holds the last finished epoch" : "");
}

/* S shards of the batch (dist.h): as many as the ranks or a multiple, each
 * with rows enough for its loss. */
static void check_shards(const TrainCfg *c, const DataSplits *d, int S)
{
    int R = dist_size(), two = d->kind == TASK_UDA || c->ssl;
    if (S == 1) return;
    if (S % R)
        nta_die_option("%d shards a step (--shards, or those of the checkpoint resumed) on %d ranks: each rank "
                       "runs the same number of shards; give --shards a multiple of %d, or run on a number of ranks "
                       "that divides %d", S, R, R, S);
    if (c->batch % S || c->batch / S < (two ? 4 : 2) || (two && (c->batch / S) % 2))
        nta_die_option("--batch %d in %d shards (%s): give a batch that splits into shards of at least %d%s rows",
                       c->batch, S, c->shards ? "--shards" : "one per rank", two ? 4 : 2, two ? ", an even number of" : "");
}

void train_fit(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int start)
{
    /* per: training images per step (TASK_UDA: half the batch, the rest
     * target images; SSL: half the batch, two views each); rows: of the
     * batch the loss averages over */
    int B = c->batch, per = d->kind == TASK_UDA || c->ssl ? B / 2 : B, steps = d->train.n / per;
    int rows = c->ssl ? B : per, S = train_shards(c);
    const Dataset *tr = &d->train;
    if (steps == 0)
        nta_die_option("--batch %d needs %d labelled training images a step, but '%s' has %d; lower --batch", B, per,
                d->name, tr->n);
    check_shards(c, d, S);
    DistGrad *dg = dist_grad_new(net, S);
    int *perm = nta_malloc((size_t)tr->n * sizeof(int));
    float *x = nta_malloc((size_t)B * tr->h * tr->w * tr->c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    long warm = lrintf(c->warmup * steps), step = (long)steps * start;
    double now = nta_now();
    Progress pg = {isatty(fileno(stdout)), now, now, step, (long)steps * c->epochs};
    char meta[512], err[512];
    /* keep_best: the weights of the best epoch so far */
    int keep = c->keep_best && sampling == SAMPLE_FIXED && d->val.n, best_ep = start;
    double best_fit = keep ? validate(net, d, c, sampling, start) : NAN;
    if (keep && c->searched) best_fit = -INFINITY;
    float *best = keep ? net_weights_get(net, NULL) : NULL;

    for (int ep = start + 1; ep <= c->epochs; ep++) {
        Rng rng;
        rng_seed(&rng, (uint64_t)c->seed * 1000003u + (uint64_t)ep);
        data_shuffle(perm, tr->n, &rng);
        double loss = 0;
        int right = 0, seen = 0;
        for (int s = 0; s < steps; s++, step++) {
            int corr = 0;
            float lr = lr_cosine(c->lr, step, warm, pg.total);
            train_step(net, d, c, sampling, perm + (size_t)s * per, x, y, &rng, lr, dg);
            seen += rows;
            if (!progress_due(&pg, s, steps)) continue;
            /* the losses are read back only to be shown (on a GPU, reading waits) */
            double l = net_stats_take(net, &corr);
            if (!isfinite(l)) diverged(c, ep, s, lr, l);
            loss += l, right += corr;
            progress(&pg, c, d, ep, s, steps, step, loss, right, seen);
        }
        if (pg.tty) printf("\n");
        double v = c->ssl ? ssl_epoch(net, d, c, ep, loss / seen) : validate(net, d, c, sampling, ep);
        if (best && v > best_fit) best_fit = v, best_ep = ep, net_weights_get(net, best);
        checkpoint_meta(meta, sizeof meta, c, sampling, ep);
        if (*c->out && dist_rank() == 0 && net_save(net, c->out, meta, 1, err, sizeof err) != 0)
            nta_die("could not save the checkpoint: %s", err);
        if (ep == c->stop_after && ep < c->epochs) break;
    }
    if (best && best_ep != c->epochs) {
        net_weights_put(net, best);
        printf("keeping the weights of epoch %d, the best on validation\n", best_ep);
    }
    free(perm), free(x), free(y), free(best);
    dist_grad_free(dg);
}

/* ------------------------------------------------- nta train, pretrain */

/* The test split's metric of a fixed network, or of a supernet's largest and
 * smallest architectures after BN recalibration. */
static void report_test(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, const char *took)
{
    const NetDesc *nd = net_desc(net);
    if (sampling == SAMPLE_FIXED) {
        double tacc = task_score(net, d, &d->test, NULL);
        printf("test accuracy %.2f%% on %d images; %.2f MFLOPs, %zu params; trained in %s\n", tacc,
               d->test.n, 1e-6 * net_flops(nd), net_params(nd), took);
        return;
    }
    printf("supernet trained in %s; test %s after BN recalibration on %d batches:\n", took,
           c->ssl ? "split's leave-one-out kNN accuracy of the pooled features" : "accuracy", c->calib);
    Arch ends[2] = {arch_largest(nd), arch_smallest(nd)};
    for (int i = 0; i < 2; i++) {
        NetDesc sd = arch_standalone(nd, &ends[i]);
        sd.mlp = 0, sd.classes = d->test.classes;       /* the cost of the encoder with a classifier */
        double acc;
        if (c->ssl) {
            net_set_arch(net, &ends[i]);
            net_recalibrate(net, d, c->calib, (uint64_t)c->seed);
            acc = train_ssl_monitor(net, d, &d->test).knn;
        } else {
            acc = task_score_arch(net, d, &d->test, &ends[i], c->calib, (uint64_t)c->seed, NULL);
        }
        printf("  %-8s %6.2f%%  %6.2f MFLOPs %8zu params\n", i ? "smallest" : "largest", acc,
               1e-6 * net_flops(&sd), net_params(&sd));
    }
}

int train_run(const TrainCfg *cfg, int sampling, const Backend *be)
{
    TrainCfg run = *cfg, *c = &run;     /* --resume may take the shards of the checkpoint */
    DataSplits d;
    data_load(&d, c->data, c->val, c->limit, (uint64_t)c->seed);
    printf("data %s: %d train, %d val, %d test images of %dx%dx%d, %d classes\n", d.name,
           d.train.n, d.val.n, d.test.n, d.train.h, d.train.w, d.train.c, d.train.classes);
    if (d.train.n / c->batch == 0) nta_die_option("--batch %d is larger than the %d training images", c->batch, d.train.n);
    int start = 0;
    NetDesc nd = sampling == SAMPLE_FIXED
                     ? net_reference(d.train.h, d.train.w, d.train.c, d.train.classes)
                     : net_supernet(d.train.h, d.train.w, d.train.c, c->ssl ? TRAIN_SSL_DIM : d.train.classes,
                                    &c->space, c->depth);
    if (c->ssl) {
        nd.mlp = nd.head_c;
        memset(d.train.label, 0, (size_t)d.train.n * sizeof *d.train.label);
        printf("self-supervised (SimCLR, temperature %g): %d images and 2 views of each per step; the training "
               "labels are zeroed, never read; the %d validation labels are read by the kNN monitor only\n",
               c->tau, c->batch / 2, d.val.n);
    }
    Net *net;
    if (*c->resume) {
        char want[2048], has[2048];
        net = resume_from(c, sampling, be, &start);
        net_desc_format(&nd, want, sizeof want);
        net_desc_format(net_desc(net), has, sizeof has);
        if (strcmp(want, has))
            nta_die("--resume: '%s' holds another network:\n  it has:  %s\n  asked:   %s\n"
                    "  give the same --kernels --expands --depth --min-depth as that run", c->resume, has, want);
    } else {
        net = net_create(&nd, LOSS_XENT, be, c->batch, (uint64_t)c->seed, 1);
    }
    net_set_norm(net, d.mean, d.std);
    double t0 = nta_now();
    train_fit(net, &d, c, sampling, start);
    char took[32];
    nta_fmt_time(took, sizeof took, nta_now() - t0);
    if (c->stop_after > start && c->stop_after < c->epochs)
        printf("stopped after epoch %d of %d in %s; continue with --resume %s\n", c->stop_after, c->epochs,
               took, c->out);
    else
        report_test(net, &d, c, sampling, took);
    if (*c->out) printf("saved to %s\n", c->out);
    net_free(net);
    data_free(&d);
    return 0;
}
