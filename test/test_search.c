/* test/test_search.c: evolutionary and random search on a synthetic fitness
 * (cheap, deterministic): budgets are respected, the best never gets worse,
 * the same seed gives the same search, an impossible budget is reported;
 * the search log that adapt --resume 1 reads back is checked, line by line. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "../ntaa.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ntaa_log_read on a log of one generation of two candidates (the largest
 * architecture under 40 MFLOPs, the smallest) with `edit` applied: 'x' none,
 * 'c' the last line cut short, 'L' a 2,000-character line before the
 * candidates, 'm' a wrong cost, 'n' a NaN fitness, 'h' another header, 'g'
 * generation 4 of a search of 3. */
static int read_log(const NetDesc *d, char edit, char *err, size_t errlen)
{
    const char *header = "# nta search log: test\n";
    char path[] = "/tmp/nta-log-XXXXXX", big[512], small[512];
    int fd = mkstemp(path);
    if (fd < 0) return -9;
    FILE *f = fdopen(fd, "w");
    Arch a[2] = {arch_largest(d), arch_smallest(d)};
    arch_format(d, &a[0], big, sizeof big);
    arch_format(d, &a[1], small, sizeof small);
    fputs(edit == 'h' ? "# nta search log: another\n" : header, f);
    if (edit == 'L') fprintf(f, "%2000s\n", "x");
    fprintf(f, "# generation %d n 2 rng 99\n", edit == 'g' ? 4 : 0);
    for (int i = 0; i < 2; i++) {
        NetDesc sd = arch_standalone(d, &a[i]);
        double mflops = 1e-6 * net_flops(&sd) + (edit == 'm' && i ? 1 : 0);
        fprintf(f, "0 %d %s %.4f %zu %s\n", i, edit == 'n' ? "nan" : i ? "50" : "60", mflops, net_params(&sd),
                i ? small : big);
    }
    if (edit == 'c') fputs("# generation 1 n 2 r", f);
    fclose(f);
    SearchCfg sc = {.population = 2, .generations = 3, .budget_mflops = 40};
    SearchState st = {0};
    int rc = ntaa_log_read(path, d, header, &sc, &st, err, errlen);
    if (rc == 1 && (st.n != 2 || st.gen != 0 || st.pop[0].fitness != 60)) rc = -8;
    free(st.pop);
    unlink(path);
    return rc;
}

static void test_search_log(const NetDesc *d)
{
    char err[1024] = "";
    CHECK(read_log(d, 'x', err, sizeof err) == 1, "a whole search log is read back: %s", err);
    CHECK(read_log(d, 'c', err, sizeof err) == 1, "a last line cut short by a crash is ignored: %s", err);
    const char *edits = "Lmnhg", *why[] = {"longer than", "claims", "claims fitness nan", "not written by this search",
                                           "at most --generations 3"};
    for (int i = 0; edits[i]; i++) {
        err[0] = 0;
        CHECK(read_log(d, edits[i], err, sizeof err) == -1 && strstr(err, why[i]),
              "a search log with edit '%c' is refused, saying '%s': %s", edits[i], why[i], err);
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
    test_search_log(&d);
}
