/* train.c: the training loop of every phase, its checkpoints and resume,
 * keep-best, and the rules that sample a supernet's sub-architectures.
 *
 *   train_sample_arch  the sandwich and uniform rules
 *   train_fit          the loop: batches, passes, SGD, progress, validation, checkpoints
 *   train_run          nta train and nta pretrain end to end
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const train_sampling_name[] = {"fixed", "sandwich", "uniform"};

/* ------------------------------------------------------- sampling rules */

int train_passes(int sampling) { return sampling == SAMPLE_SANDWICH ? 4 : 1; }

Arch train_sample_arch(const NetDesc *d, int sampling, int pass, Rng *rng)
{
    if (sampling == SAMPLE_SANDWICH && pass == 0) return arch_largest(d);
    if (sampling == SAMPLE_SANDWICH && pass == 1) return arch_smallest(d);
    return arch_random(d, rng);
}

/* ------------------------------------------------- checkpoints, resume */

/* The metadata line a checkpoint carries: every setting that shapes the run
 * (a resumed run must repeat them to end as an unbroken one), then the epoch. */
static void checkpoint_meta(char *buf, size_t len, const TrainCfg *c, int sampling, int epoch)
{
    snprintf(buf, len,
             "data=%s seed=%d epochs=%d batch=%d sampling=%s lr=%.9g warmup=%.9g momentum=%.9g wd=%.9g "
             "augment=%d val=%d limit=%d epoch=%d\n",
             c->data, c->seed, c->epochs, c->batch, train_sampling_name[sampling], c->lr, c->warmup, c->momentum,
             c->wd, c->augment, c->val, c->limit, epoch);
}

/* Load a checkpoint to continue from; *epoch = the last finished epoch. */
static Net *resume_from(const TrainCfg *c, int sampling, const Backend *be, int *epoch)
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

/* One SGD step on the batch of images idx[0..per) (x [B,H,W,C] and y [B] are
 * its host scratch): the gradients of every pass (one sub-architecture each
 * under a sampling rule) summed, then one update. Returns the first pass's
 * summed loss and its right answers. */
static double train_step(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, const int *idx,
                         float *x, int32_t *y, Rng *rng, float lr, int *right)
{
    int B = c->batch, corr = 0;
    double loss = 0;
    task_train_batch(net, d, idx, B, x, y, c->augment ? rng : NULL, rng);
    net_zero_grad(net);
    for (int p = 0; p < train_passes(sampling); p++) {
        if (sampling != SAMPLE_FIXED) {
            Arch a = train_sample_arch(net_desc(net), sampling, p, rng);
            net_set_arch(net, &a);
        }
        net_forward(net, B, 1);
        double l = task_train_loss(net, d, B, c->uda_entropy, c->uda_mmd, &corr);
        net_backward(net, B);
        if (p == 0) loss = l, *right = corr;   /* report the largest */
    }
    net_update(net, lr, c->momentum, c->wd);
    return loss;
}

/* The progress line: epoch, step, loss, accuracy, rate and ETA; in place on
 * a terminal, every 30 s in a log. */
typedef struct { int tty; double t0, tlast; long step0, total; } Progress;

static void progress(Progress *pg, const TrainCfg *c, const DataSplits *d, int ep, int s, int steps, long step,
                     double loss, int right, int seen)
{
    double now = nta_now();
    if (!(now - pg->tlast > (pg->tty ? 0.5 : 30) || s == steps - 1)) return;
    char eta[32], acc[48] = "";
    double rate = (step + 1 - pg->step0) * (double)c->batch / (now - pg->t0);   /* images through the network */
    nta_fmt_time(eta, sizeof eta, (pg->total - step - 1) * (double)c->batch / rate);
    if (d->kind != TASK_REGRESS) snprintf(acc, sizeof acc, " train acc %.2f%%", 100.0 * right / seen);
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
    nta_die("the training loss became %g at epoch %d, step %d (learning rate %g): training diverged; "
            "lower --lr (now %g)%s%s%s", loss, ep, s + 1, lr, c->lr, *c->out ? "; the checkpoint '" : "",
            c->out, *c->out ? "' holds the last finished epoch" : "");
}

void train_fit(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int start)
{
    /* per: labelled images per step (TASK_UDA: half the batch, the rest target images) */
    int B = c->batch, per = d->kind == TASK_UDA ? B / 2 : B, steps = d->train.n / per;
    const Dataset *tr = &d->train;
    if (steps == 0)
        nta_die_option("--batch %d needs %d labelled training images a step, but '%s' has %d; lower --batch", B, per,
                d->name, tr->n);
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
            double l = train_step(net, d, c, sampling, perm + (size_t)s * per, x, y, &rng, lr, &corr);
            if (!isfinite(l)) diverged(c, ep, s, lr, l);
            loss += l, right += corr, seen += per;
            progress(&pg, c, d, ep, s, steps, step, loss, right, seen);
        }
        if (pg.tty) printf("\n");
        double v = validate(net, d, c, sampling, ep);
        if (best && v > best_fit) best_fit = v, best_ep = ep, net_weights_get(net, best);
        checkpoint_meta(meta, sizeof meta, c, sampling, ep);
        if (*c->out && net_save(net, c->out, meta, 1, err, sizeof err) != 0)
            nta_die("could not save the checkpoint: %s", err);
        if (ep == c->stop_after && ep < c->epochs) break;
    }
    if (best && best_ep != c->epochs) {
        net_weights_put(net, best);
        printf("keeping the weights of epoch %d, the best on validation\n", best_ep);
    }
    free(perm), free(x), free(y), free(best);
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
    printf("supernet trained in %s; test accuracy after BN recalibration on %d batches:\n", took, c->calib);
    Arch ends[2] = {arch_largest(nd), arch_smallest(nd)};
    for (int i = 0; i < 2; i++) {
        NetDesc sd = arch_standalone(nd, &ends[i]);
        double acc = task_score_arch(net, d, &d->test, &ends[i], c->calib, (uint64_t)c->seed, NULL);
        printf("  %-8s %6.2f%%  %6.2f MFLOPs %8zu params\n", i ? "smallest" : "largest", acc,
               1e-6 * net_flops(&sd), net_params(&sd));
    }
}

int train_run(const TrainCfg *c, int sampling, const Backend *be)
{
    DataSplits d;
    data_load(&d, c->data, c->val, c->limit, (uint64_t)c->seed);
    printf("data %s: %d train, %d val, %d test images of %dx%dx%d, %d classes\n", d.name,
           d.train.n, d.val.n, d.test.n, d.train.h, d.train.w, d.train.c, d.train.classes);
    if (d.train.n / c->batch == 0) nta_die_option("--batch %d is larger than the %d training images", c->batch, d.train.n);
    int start = 0;
    NetDesc nd = sampling == SAMPLE_FIXED
                     ? net_reference(d.train.h, d.train.w, d.train.c, d.train.classes)
                     : net_supernet(d.train.h, d.train.w, d.train.c, d.train.classes, &c->space, c->depth);
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
