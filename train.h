/* train.h: the training loop of every phase (train.c).
 *
 * A fixed network runs one forward and backward pass per step. A supernet
 * sums the gradients of several sampled sub-architectures on the same batch
 * before one SGD step: the sandwich rule (the largest, the smallest and two
 * random ones) or the uniform rule (one random). */
#ifndef TRAIN_H
#define TRAIN_H

#include "nta.h"

enum { SAMPLE_FIXED, SAMPLE_SANDWICH, SAMPLE_UNIFORM };

/* The settings of a training run or phase (nta train, pretrain, and every
 * phase of adapt, finetune and demo). */
typedef struct {
    const char *data;     /* dataset spec (train, pretrain) */
    const char *out;      /* checkpoint written after every epoch; "" = none */
    const char *resume;   /* checkpoint to continue from; "" = none */
    const char *device;   /* auto, cpu or cuda */
    int epochs, stop_after, batch, val, limit, seed, threads, augment;
    int calib;            /* training batches of BN recalibration before an evaluation */
    Space space;          /* pretrain: the supernet's choices */
    int depth;            /* pretrain: the largest blocks per stage */
    int keep_best;        /* fixed networks: end with the weights of the epoch (0: before
                           * training, unless searched) whose validation metric was best */
    int searched;         /* the architecture was picked on the validation split: its
                           * epoch-0 score is inflated by that choice, so keep_best
                           * chooses among the trained epochs only */
    float lr, momentum, wd, warmup;
    float uda_entropy, uda_mmd;   /* TASK_UDA: weights of the target entropy and the feature MMD */
    int shards;           /* data parallelism: each step's batch in this many shards, each with its
                           * own batchnorm statistics, gradients averaged (dist.h); 0 = one per rank */
    int ssl;              /* pretrain --objective ssl: SimCLR on two views per image, no labels */
    float tau;            /* ssl: the NT-Xent temperature */
    double region;        /* sandwich, uniform: draw sub-architectures only among those of at
                           * most this many MFLOPs (adapt --transfer-within-budget); 0 = all */
    const Arch *pool;     /* sandwich, uniform: when npool > 0, every pass draws one of pool[npool]
                           * instead (the search's population: adapt --online-epochs) */
    int npool;
} TrainCfg;

/* The architecture of pass `pass` of a step under a sampling rule (not
 * SAMPLE_FIXED): sandwich: pass 0 the largest, pass 1 the smallest, then
 * random ones drawn from rng; uniform: one random. With a region (c->region
 * MFLOPs, > 0), every pass but the sandwich's smallest is a random one of at
 * most that cost instead (the largest of the region is not one
 * architecture). With a pool (c->npool > 0), every pass is one of c->pool,
 * drawn from rng. */
Arch train_sample_arch(const NetDesc *d, const TrainCfg *c, int sampling, int pass, Rng *rng);
int train_passes(int sampling);          /* passes per step: 4 sandwich, else 1 */

/* Train net on d for epochs start+1..c->epochs, reporting the validation
 * metric after each epoch and writing a checkpoint to c->out when set. Every
 * epoch draws its shuffle, augmentation and architectures from its own seed,
 * so a resumed run repeats an unbroken one exactly. */
void train_fit(Net *net, const DataSplits *d, const TrainCfg *c, int sampling, int start);

/* nta train (SAMPLE_FIXED: the reference network) and nta pretrain (a
 * supernet): load the data, build or resume the network, train, report on
 * the test split. Returns the exit status. */
int train_run(const TrainCfg *c, int sampling, const Backend *be);

/* Self-supervised pretraining (--objective ssl, SimCLR): the projection the
 * loss sees has TRAIN_SSL_DIM dimensions, after a hidden layer of the head's
 * width. */
#define TRAIN_SSL_DIM 64
#define TRAIN_SSL_KNN 20      /* neighbours of the kNN monitor */

/* What the SSL monitor measures of an architecture (train_ssl_monitor). */
typedef struct {
    double std;           /* mean over dimensions of the std of the unit-length projections */
    double even;          /* what std would be with the projections spread evenly: 1/sqrt(D) */
    double knn;           /* leave-one-out kNN accuracy % of the pooled features */
    int collapsed;        /* std below a tenth of even: every image maps to (nearly) one point */
} SslMonitor;

/* The SSL monitor of net's active architecture (its BN statistics already
 * estimated) on the labelled split s: the labels of s are read for the kNN
 * vote only. */
SslMonitor train_ssl_monitor(Net *net, const DataSplits *d, const Dataset *s);

/* Sampling rule names as in the checkpoint's metadata. */
extern const char *const train_sampling_name[];

#endif
