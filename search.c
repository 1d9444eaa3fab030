/* search.c: architecture search inside a supernet under a cost budget.
 *
 * Evolution (the shape of single-path one-shot NAS): a population drawn at
 * random within the budget; each generation keeps the `parents` fittest
 * candidates, makes children by mutation (every choice resampled with a small
 * probability) and by crossover (every choice taken from one of two parents),
 * rejects children over budget (they are drawn again), scores the new ones and
 * keeps the fittest `population`. Random search scores N random architectures
 * within the budget. The fitness is a callback (the target task's validation
 * metric with inherited weights, in `nta adapt`); higher is better.
 *
 * Every draw comes from one seeded generator, so a search is deterministic for
 * a seed. A generation's architectures are all drawn before any is scored, in
 * one call of dist_fitness, which splits them across MPI ranks (dist.h): the
 * search is the same whatever the number of ranks. There is no progress callback: the caller runs one generation per
 * call of search_step on a SearchState it keeps, so it reports between calls
 * (the terminal line and the search log are its) and can save and resume the
 * state.
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"
#include "dist.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ cost */

double search_mflops(const NetDesc *d, const Arch *a)
{
    NetDesc s = arch_standalone(d, a);
    return 1e-6 * net_flops(&s);
}

int search_fits(const NetDesc *d, const SearchCfg *cfg, const Arch *a)
{
    for (int s = 0; s < NET_MAX_STAGES; s++)
        if (a->depth[s] < cfg->min_depth[s]) return 0;
    if (cfg->budget_mflops > 0 && search_mflops(d, a) > cfg->budget_mflops) return 0;
    return cfg->budget_ms <= 0 || latency_predict(cfg->latency, a) <= cfg->budget_ms;
}

static Candidate candidate(const NetDesc *d, const Arch *a)
{
    NetDesc s = arch_standalone(d, a);
    Candidate c = {.arch = *a, .mflops = 1e-6 * net_flops(&s), .params = net_params(&s)};
    return c;
}

/* ---------------------------------------------------- making architectures */

/* Up to this many draws for one architecture within the budget. */
#define SEARCH_TRIES 10000

/* A random architecture within budget, or -1 when none was found. */
static int draw_in_budget(const NetDesc *d, const SearchCfg *cfg, Rng *r, Arch *out)
{
    for (int t = 0; t < SEARCH_TRIES; t++) {
        *out = arch_random(d, r);
        if (search_fits(d, cfg, out)) return 0;
    }
    return -1;
}

Arch search_draw_under(const NetDesc *d, double mflops, Rng *r)
{
    SearchCfg cfg = {.budget_mflops = mflops};
    Arch a;
    return draw_in_budget(d, &cfg, r, &a) ? arch_smallest(d) : a;
}

/* Resample each choice (kernel, expansion of each block; depth of each stage)
 * with probability p. */
static Arch mutate(const NetDesc *d, const Arch *a, float p, Rng *r)
{
    Arch m = *a, fresh = arch_random(d, r);
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    for (int s = 0; s < ns; s++)
        if (rng_uniform(r) < p) m.depth[s] = fresh.depth[s];
    for (int i = 0; i < d->nblocks; i++) {
        if (rng_uniform(r) < p) m.k[i] = fresh.k[i];
        if (rng_uniform(r) < p) m.e[i] = fresh.e[i];
    }
    arch_canonical(d, &m);
    return m;
}

/* Each choice from one of the two parents, with equal odds. */
static Arch crossover(const NetDesc *d, const Arch *a, const Arch *b, Rng *r)
{
    Arch c = *a;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    for (int s = 0; s < ns; s++)
        if (rng_below(r, 2)) c.depth[s] = b->depth[s];
    for (int i = 0; i < d->nblocks; i++) {
        if (rng_below(r, 2)) c.k[i] = b->k[i];
        if (rng_below(r, 2)) c.e[i] = b->e[i];
    }
    arch_canonical(d, &c);
    return c;
}

/* Same active architecture (choices of inactive blocks do not count). */
static int same(const NetDesc *d, const Arch *a, const Arch *b)
{
    char x[512], y[512];
    arch_format(d, a, x, sizeof x);
    arch_format(d, b, y, sizeof y);
    return !strcmp(x, y);
}

static int seen_before(const NetDesc *d, const Candidate *pool, int n, const Arch *a)
{
    for (int i = 0; i < n; i++)
        if (same(d, &pool[i].arch, a)) return 1;
    return 0;
}

/* Fittest first; ties go to the cheaper architecture. */
static int by_fitness(const void *x, const void *y)
{
    const Candidate *a = x, *b = y;
    if (a->fitness != b->fitness) return a->fitness > b->fitness ? -1 : 1;
    return (a->mflops > b->mflops) - (a->mflops < b->mflops);
}

/* ------------------------------------------------------------ searches */

Arch search_smallest(const NetDesc *d, const SearchCfg *cfg)
{
    Arch a = arch_smallest(d);
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    for (int s = 0; s < ns; s++) {      /* a deeper stage repeats its first block's (smallest) choices */
        int blocks = first[s + 1] - first[s], depth = cfg->min_depth[s] < blocks ? cfg->min_depth[s] : blocks;
        for (int i = first[s] + a.depth[s]; i < first[s] + depth; i++) a.k[i] = a.k[first[s]], a.e[i] = a.e[first[s]];
        if (depth > a.depth[s]) a.depth[s] = depth;
    }
    return a;
}

static int no_budget_error(const NetDesc *d, const SearchCfg *cfg, char *err, size_t errlen)
{
    Arch small = search_smallest(d, cfg), plain = arch_smallest(d);
    int deep = memcmp(&small, &plain, sizeof small) != 0;
    char ms[128] = "";
    if (cfg->budget_ms > 0)
        snprintf(ms, sizeof ms, " and %.3f ms (predicted: %.3f ms)", cfg->budget_ms, latency_predict(cfg->latency, &small));
    snprintf(err, errlen, "no architecture within the budget of %.2f MFLOPs%s found in %d draws "
             "(the smallest%s costs %.2f MFLOPs)", cfg->budget_mflops, ms, SEARCH_TRIES,
             deep ? " in the search's space" : "", search_mflops(d, &small));
    return -1;
}

int search_random(const NetDesc *d, const SearchCfg *cfg, int n, SearchFitness fit, void *ctx,
                  Candidate *out, char *err, size_t errlen)
{
    Rng r;
    rng_seed(&r, cfg->seed);
    for (int i = 0; i < n; i++) {
        Arch a;
        if (draw_in_budget(d, cfg, &r, &a)) return no_budget_error(d, cfg, err, errlen);
        out[i] = candidate(d, &a);
    }
    dist_fitness(fit, ctx, out, n);
    qsort(out, (size_t)n, sizeof *out, by_fitness);
    return 0;
}

int search_init(const NetDesc *d, const SearchCfg *cfg, SearchFitness fit, void *ctx,
                SearchState *st, char *err, size_t errlen)
{
    st->gen = 0;
    st->n = 0;
    st->pop = nta_calloc((size_t)cfg->population, sizeof(Candidate));
    rng_seed(&st->rng, cfg->seed);
    for (int tries = 0; st->n < cfg->population && tries < SEARCH_TRIES; tries++) {
        Arch a;
        if (draw_in_budget(d, cfg, &st->rng, &a)) return no_budget_error(d, cfg, err, errlen);
        if (seen_before(d, st->pop, st->n, &a)) continue;
        st->pop[st->n] = candidate(d, &a);
        st->n++;
    }
    dist_fitness(fit, ctx, st->pop, st->n);
    qsort(st->pop, (size_t)st->n, sizeof *st->pop, by_fitness);
    return 0;
}

void search_step(const NetDesc *d, const SearchCfg *cfg, SearchFitness fit, void *ctx, SearchState *st)
{
    int parents = cfg->parents < st->n ? cfg->parents : st->n, want = cfg->mutants + cfg->crosses;
    Candidate *all = nta_calloc((size_t)(st->n + want), sizeof(Candidate));
    memcpy(all, st->pop, (size_t)st->n * sizeof(Candidate));
    int n = st->n;
    for (int c = 0; c < want; c++) {
        /* a new child within budget, or give up on this one */
        for (int t = 0; t < SEARCH_TRIES; t++) {
            const Arch *p = &st->pop[rng_below(&st->rng, (uint32_t)parents)].arch;
            Arch child = c < cfg->mutants
                             ? mutate(d, p, cfg->mutate_prob, &st->rng)
                             : crossover(d, p, &st->pop[rng_below(&st->rng, (uint32_t)parents)].arch, &st->rng);
            if (!search_fits(d, cfg, &child)) continue;
            if (seen_before(d, all, n, &child)) continue;
            all[n] = candidate(d, &child);
            n++;
            break;
        }
    }
    dist_fitness(fit, ctx, all + st->n, n - st->n);
    qsort(all, (size_t)n, sizeof *all, by_fitness);
    memcpy(st->pop, all, (size_t)st->n * sizeof(Candidate));
    free(all);
    st->gen++;
}

void search_rescore(SearchFitness fit, void *ctx, SearchState *st)
{
    dist_fitness(fit, ctx, st->pop, st->n);
    qsort(st->pop, (size_t)st->n, sizeof *st->pop, by_fitness);
}

void search_free(SearchState *st)
{
    free(st->pop);
    st->pop = NULL;
}

/* ------------------------------------------------------------ Pareto front */

typedef struct { double mflops, fitness; int idx; } ParetoKey;

/* Ascending MFLOPs, then descending fitness, then index: a total order. */
static int by_cost(const void *pa, const void *pb)
{
    const ParetoKey *a = pa, *b = pb;
    if (a->mflops != b->mflops) return a->mflops < b->mflops ? -1 : 1;
    if (a->fitness != b->fitness) return a->fitness > b->fitness ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Sorted by cost, a candidate is on the front exactly when it is fitter than
 * every candidate before it (those cost no more and, at equal cost, are at
 * least as fit); of exact duplicates the first is kept. NaN values are never
 * on the front. */
int search_pareto(const Candidate *pop, int n, int *front)
{
    ParetoKey *key = nta_malloc((size_t)(n > 0 ? n : 1) * sizeof *key);
    int m = 0, count = 0;
    for (int i = 0; i < n; i++)
        if (pop[i].fitness == pop[i].fitness && pop[i].mflops == pop[i].mflops)
            key[m++] = (ParetoKey){pop[i].mflops, pop[i].fitness, i};
    qsort(key, (size_t)m, sizeof *key, by_cost);
    double best = 0;
    for (int j = 0; j < m; j++)
        if (count == 0 || key[j].fitness > best) {
            front[count++] = key[j].idx;
            best = key[j].fitness;
        }
    free(key);
    return count;
}

Arch search_arch_in_bin(const NetDesc *d, Rng *r, int i, int n)
{
    Arch lo = arch_smallest(d), hi = arch_largest(d);
    double a = search_mflops(d, &lo), b = search_mflops(d, &hi), w = (b - a) / n;
    for (int t = 0; t < 1000000; t++) {
        Arch x = arch_random(d, r);
        double f = search_mflops(d, &x);
        if (f >= a + i * w && (f < a + (i + 1) * w || (i == n - 1 && f <= b))) return x;
    }
    return i < n / 2 ? lo : hi;   /* a bin no random draw reaches: its end of the space */
}
