/* dist.h: several processes (dist.c).
 *
 * nta-mpi (built with mpicc where it is found) runs under mpirun as R ranks;
 * ./nta is the same program with one rank and no MPI. Data parallelism splits
 * each step's global batch into S shards (TrainCfg.shards; S = R unless
 * given), each rank running S/R of them: batchnorm statistics are each
 * shard's own; the gradients (and the running statistics) of the shards are
 * summed in a fixed order and divided by S, then every rank takes the same
 * SGD step. One process with --shards S computes the same bits as S ranks. */
#ifndef DIST_H
#define DIST_H

#include "nta.h"

/* Called first in main: under mpirun (nta-mpi) join the other ranks, silence
 * stdout on ranks other than 0 and print the first line (ranks, hosts, MPI
 * library); a plain nta started by mpirun with several ranks exits with a
 * message naming nta-mpi. cmd: the command, refused under several ranks
 * unless it is one that runs data-parallel (train, pretrain, adapt,
 * finetune). */
void dist_init(int *argc, char ***argv, const char *cmd);
/* Leave MPI (the last call of main). Any exit without it (nta_die on any
 * rank) aborts every rank. */
void dist_finalize(void);
int dist_rank(void);          /* 0..R-1; 0 without MPI */
int dist_size(void);          /* R; 1 without MPI */
int dist_local_size(void);    /* ranks on this host (they share its cores and GPUs) */
/* What this binary has, for nta --version. */
const char *dist_version(void);

/* After a rank picked its backend: rank 0 prints every rank's backend and
 * threads in one line; dies when the ranks picked different backends. */
void dist_report_backend(const Backend *be, int threads);

/* ---------------------------------------------- data-parallel training */

typedef struct DistGrad DistGrad;

/* For the training of net with S shards per step (S a multiple of R). */
DistGrad *dist_grad_new(Net *net, int shards);
void dist_grad_free(DistGrad *g);
/* The global shards [*first, *first + *count) this rank runs each step. */
void dist_grad_shards(const DistGrad *g, int *first, int *count);
/* At a step's start, before its first shard. */
void dist_grad_begin(DistGrad *g);
/* After shard first + k's backward passes: keep its gradients, statistics,
 * summed loss and right answers (and, before the next local shard, restore
 * the statistics the step started from). */
void dist_grad_shard(DistGrad *g, int k, double loss, int right);
/* Every shard's gradients summed (fixed order) and divided by S, into the
 * gradient arena; the running statistics the mean of the shards'; *loss and
 * *right the sums over the shards. */
void dist_grad_reduce(DistGrad *g, double *loss, int *right);

/* Rank 0's bytes of buf, on every rank (e.g. the latency table rank 0 measured). */
void dist_broadcast(void *buf, size_t bytes);

/* ---------------------------------------------------------- search */

/* c[i].fitness = fit(ctx, &c[i].arch) for i in [0, n): each rank scores a
 * contiguous share, then every rank has them all. */
void dist_fitness(SearchFitness fit, void *ctx, Candidate *c, int n);

#endif
