/* test/test_search.c: evolutionary and random search on a synthetic fitness
 * (cheap, deterministic): budgets are respected, the best never gets worse,
 * the same seed gives the same search, an impossible budget is reported. */
#include "../nta.h"
#include "test.h"

#include <string.h>

/* Prefer large kernels and expansions: the sum of k*e over active blocks. */
static double greedy(void *ctx, const Arch *a)
{
    const NetDesc *d = ctx;
    NetDesc s = arch_standalone(d, a);
    double f = 0;
    for (int i = 0; i < s.nblocks; i++) f += s.blk[i].k * s.blk[i].e;
    return f;
}

static SearchCfg cfg_default(double budget)
{
    return (SearchCfg){.population = 16, .generations = 6, .parents = 4, .mutants = 8, .crosses = 8,
                       .mutate_prob = 0.1f, .budget_mflops = budget, .seed = 7};
}

static void run(const NetDesc *d, const SearchCfg *c, SearchState *st, double *best)
{
    char err[256];
    CHECK(search_init(d, c, greedy, (void *)d, st, err, sizeof err) == 0, "search_init: %s", err);
    best[0] = st->pop[0].fitness;
    for (int g = 1; g <= c->generations; g++) {
        search_step(d, c, greedy, (void *)d, st);
        best[g] = st->pop[0].fitness;
    }
}

void test_search(void)
{
    Space sp = space_default();
    NetDesc d = net_supernet(28, 28, 1, 10, &sp, 4);
    SearchCfg c = cfg_default(15.0);
    SearchState a, b;
    double best_a[16], best_b[16];
    run(&d, &c, &a, best_a);
    int within = 1, rising = 1, distinct = 1;
    for (int i = 0; i < a.n; i++) {
        within &= a.pop[i].mflops <= c.budget_mflops && a.pop[i].mflops == search_mflops(&d, &a.pop[i].arch);
        for (int j = 0; j < i; j++) {
            char x[512], y[512];
            arch_format(&d, &a.pop[i].arch, x, sizeof x);
            arch_format(&d, &a.pop[j].arch, y, sizeof y);
            distinct &= strcmp(x, y) != 0;
        }
    }
    for (int g = 1; g <= c.generations; g++) rising &= best_a[g] >= best_a[g - 1];
    CHECK(a.n == c.population && a.gen == c.generations, "population %d after %d generations", a.n, a.gen);
    CHECK(within, "every survivor is within the 15 MFLOPs budget");
    CHECK(distinct, "survivors are distinct architectures");
    CHECK(rising, "the best fitness never decreases over generations");
    CHECK(best_a[c.generations] > best_a[0], "evolution improves on the random population: %.0f -> %.0f",
          best_a[0], best_a[c.generations]);
    for (int i = 1; i < a.n; i++) CHECK(a.pop[i - 1].fitness >= a.pop[i].fitness, "population sorted, fittest first");

    run(&d, &c, &b, best_b);
    CHECK(!memcmp(a.pop, b.pop, (size_t)a.n * sizeof *a.pop), "the same seed gives the same search");
    search_free(&b);
    c.seed = 8;
    run(&d, &c, &b, best_b);
    CHECK(memcmp(a.pop, b.pop, (size_t)a.n * sizeof *a.pop) != 0, "another seed, another search");
    search_free(&a), search_free(&b);

    /* random search: within budget, sorted */
    Candidate out[10];
    char err[256];
    CHECK(search_random(&d, &c, 10, greedy, &d, out, err, sizeof err) == 0, "random search: %s", err);
    int ok = 1;
    for (int i = 0; i < 10; i++) ok &= out[i].mflops <= c.budget_mflops && (i == 0 || out[i - 1].fitness >= out[i].fitness);
    CHECK(ok, "random search stays within budget, fittest first");

    /* a budget below the smallest architecture */
    c.budget_mflops = 1.0;
    SearchState e;
    CHECK(search_init(&d, &c, greedy, &d, &e, err, sizeof err) == -1 && strstr(err, "smallest costs 6.94 MFLOPs"),
          "impossible budget reported: %s", err);
    search_free(&e);
}
