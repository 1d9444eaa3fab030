/* test/test_search.c: evolutionary and random search on a synthetic fitness
 * (cheap, deterministic): budgets are respected, the best never gets worse,
 * the same seed gives the same search, an impossible budget is reported;
 * the search log that adapt --resume 1 reads back is checked, line by line.
 * Latency tables: a hand-made table's predictions, a latency budget in the
 * search, the cache file's round trip and its refusal of another key, and
 * the per-layer clock of a forward pass. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
#include "../ntaa.h"
#include "test.h"

#include <math.h>
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

/* A table by hand: block i at kernel choice ki, expansion choice ei costs
 * i + 10 ki + 100 ei ms; stem 1000, head 2000, overhead -0.5. */
static void hand_table(LatencyTable *t, const NetDesc *d)
{
    memset(t, 0, sizeof *t);
    t->desc = *d, t->batch = 1, t->stem_ms = 1000, t->head_ms = 2000, t->overhead_ms = -0.5;
    snprintf(t->key, sizeof t->key, "host=test backend=none threads=1 batch=1");
    for (int i = 0; i < d->nblocks; i++)
        for (int ki = 0; ki < d->space.nk; ki++)
            for (int ei = 0; ei < d->space.ne; ei++) t->block_ms[i][ki][ei] = i + 10 * ki + 100 * ei;
}

static void test_latency(const NetDesc *d)
{
    static LatencyTable t, u;
    char err[512], path[] = "/tmp/nta-latency-XXXXXX";
    hand_table(&t, d);
    /* the smallest: blocks 0, 1, 4, 5, 8, 9 at k3e3: 27 + 2999.5 */
    Arch a = arch_smallest(d), b;
    CHECK(fabs(latency_predict(&t, &a) - 3026.5) < 1e-9, "latency of the smallest: %g, want 3026.5",
          latency_predict(&t, &a));
    /* blocks 0 k5e6 (0+10+200), 1, 4, 5 k7e4 (5+20+100), 6, 8, 9: 363 + 2999.5 */
    CHECK(arch_parse(d, "k5e6-k3e3/k3e3-k7e4-k3e3/k3e3-k3e3", &b, err, sizeof err) == 0, "%s", err);
    CHECK(fabs(latency_predict(&t, &b) - 3362.5) < 1e-9, "latency by hand: %g, want 3362.5", latency_predict(&t, &b));
    SearchCfg c = cfg_default(0);
    c.budget_ms = 3362.5, c.latency = &t;
    CHECK(search_fits(d, &c, &b), "a latency equal to the budget fits");
    c.budget_ms = 3362.4;
    CHECK(!search_fits(d, &c, &b) && search_fits(d, &c, &a), "over the latency budget does not fit, under does");
    c.budget_mflops = 7;                          /* the smallest is 6.94 MFLOPs, b more */
    c.budget_ms = 1e9;
    CHECK(search_fits(d, &c, &a) && !search_fits(d, &c, &b), "both budgets apply");
    t.block_ms[0][2][2] = -5;                     /* block 0 is fastest at k7e6 */
    Arch f = latency_fastest(&t);
    CHECK(f.k[0] == 7 && f.e[0] == 6 && f.k[1] == 3 && f.e[1] == 3 && f.depth[1] == 2, "the fastest architecture");
    t.block_ms[0][2][2] = 220;
    /* evolution and random search under a latency budget (no MFLOPs budget) */
    c = cfg_default(0);
    c.budget_ms = 3200, c.latency = &t;
    SearchState st;
    double best[16];
    run(d, &c, &st, best);
    int ok = st.n == c.population;
    for (int i = 0; i < st.n; i++) ok &= latency_predict(&t, &st.pop[i].arch) <= c.budget_ms;
    CHECK(ok, "every survivor of evolution is within the latency budget");
    search_free(&st);
    Candidate out[10];
    ok = search_random(d, &c, 10, greedy, (void *)d, out, err, sizeof err) == 0;
    for (int i = 0; ok && i < 10; i++) ok &= latency_predict(&t, &out[i].arch) <= c.budget_ms;
    CHECK(ok, "random search stays within the latency budget");
    c.budget_ms = 3000;
    CHECK(search_init(d, &c, greedy, (void *)d, &st, err, sizeof err) == -1 && strstr(err, "3026.500 ms"),
          "an impossible latency budget is reported: %s", err);
    search_free(&st);
    /* the cache file: the same table back; another key or a cut file is not it */
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK(latency_save(&t, path, err, sizeof err) == 0, "latency_save: %s", err);
    CHECK(latency_load(&u, path, d, t.key) == 1 && fabs(u.block_ms[5][2][1] - t.block_ms[5][2][1]) < 1e-6 &&
              u.overhead_ms == -0.5 && fabs(latency_predict(&u, &b) - 3362.5) < 1e-5,
          "a saved table loads back");
    CHECK(latency_load(&u, path, d, "host=other backend=none threads=1 batch=1") == 0, "another key is refused");
    /* the key names the device: the GPU of the CUDA backend (here the emulator's) */
    char kc[2048], kg[2048], why[256];
    latency_key(kc, sizeof kc, d, &cpu_backend, 2, 1);
    CHECK(strstr(kc, " backend=cpu device=- threads=2 batch=1 ") != NULL, "the CPU's key: %s", kc);
    if (cuda_available(why, sizeof why)) {
        latency_key(kg, sizeof kg, d, &cuda_backend, 2, 1);
        char want[400];
        snprintf(want, sizeof want, " backend=%s device=%s threads=2 ", cuda_backend.name, why);
        CHECK(strstr(kg, want) != NULL, "the CUDA backend's key names its device (%s): %s", why, kg);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "head -n 20 %s > %s.cut && mv %s.cut %s", path, path, path, path);
    CHECK(test_run(cmd) == 0 && latency_load(&u, path, d, t.key) == 0, "a table missing entries is refused");
    remove(path);
    CHECK(latency_load(&u, path, d, t.key) == 0, "no file, no table");
    /* the clock: a layer per entry, all of them within the pass */
    NetDesc sd = arch_standalone(d, &b);
    Net *net = net_create(&sd, LOSS_XENT, &cpu_backend, 4, 1, 0);
    double sec[NET_MAX_BLOCKS + 2], t0 = nta_now(), sum = 0;
    net_forward_timed(net, 4, sec);
    double wall = nta_now() - t0;
    ok = 1;
    for (int l = 0; l < sd.nblocks + 2; l++) ok &= sec[l] > 0, sum += sec[l];
    CHECK(ok && sum <= wall * 1.0001, "net_forward_timed: every layer timed, %g s of a %g s pass", sum, wall);
    net_free(net);
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

/* The sampling rules within a region: the sandwich's pass 1 stays the
 * smallest; every other pass and the uniform rule draw architectures of at
 * most the region's MFLOPs, and not always the same one; without a region,
 * pass 0 is the largest. */
static void test_region(const NetDesc *d)
{
    Rng r;
    rng_seed(&r, 5);
    Arch small = arch_smallest(d), big = arch_largest(d);
    double region = 12.0, lo = 1e9, hi = 0;
    TrainCfg c = {.region = region}, whole = {0};
    int smallest = 1;
    for (int t = 0; t < 50; t++)
        for (int p = 0; p < 4; p++) {
            Arch a = train_sample_arch(d, &c, t % 5 ? SAMPLE_SANDWICH : SAMPLE_UNIFORM, p, &r);
            double m = search_mflops(d, &a);
            if (t % 5 && p == 1) {
                smallest &= !memcmp(&a, &small, sizeof a);
                continue;
            }
            lo = fmin(lo, m), hi = fmax(hi, m);
        }
    CHECK(smallest && hi <= region && lo < hi, "sampling within 12 MFLOPs: pass 1 the smallest, the others %.2f to "
          "%.2f MFLOPs", lo, hi);
    Arch a = train_sample_arch(d, &whole, SAMPLE_SANDWICH, 0, &r);
    CHECK(!memcmp(&a, &big, sizeof a), "without a region the sandwich's pass 0 is the largest");
}

/* A pool (adapt --online-epochs: the population): every pass, the sandwich's
 * largest and smallest included, is one of its architectures, and each is drawn. */
static void test_pool(const NetDesc *d)
{
    Rng r;
    rng_seed(&r, 6);
    Arch pool[3];
    for (int i = 0; i < 3; i++) pool[i] = search_draw_under(d, 15.0, &r);
    TrainCfg c = {.pool = pool, .npool = 3, .region = 9.0};
    int inside = 1, drawn[3] = {0};
    for (int t = 0; t < 30; t++)
        for (int p = 0; p < 4; p++) {
            Arch a = train_sample_arch(d, &c, t % 2 ? SAMPLE_SANDWICH : SAMPLE_UNIFORM, p, &r);
            int k = 0;
            while (k < 3 && memcmp(&a, &pool[k], sizeof a)) k++;
            inside &= k < 3;
            if (k < 3) drawn[k]++;
        }
    CHECK(inside && drawn[0] && drawn[1] && drawn[2], "sampling from a pool of 3: every pass one of them (drawn "
          "%d, %d, %d times of 120)", drawn[0], drawn[1], drawn[2]);
}

/* Fewer blocks are fitter: without a space the search ends shallow. */
static double shallow(void *ctx, const Arch *a)
{
    (void)ctx;
    return -(a->depth[0] + a->depth[1] + a->depth[2]);
}

/* The search's space (adapt --kind-space 1): on regression the last stage at
 * its full depth in every candidate, evolution's and random search's, even
 * against a fitness that prefers it shallow; the other kinds, the whole
 * supernet; under a budget that would leave the search no room (9 MFLOPs:
 * the space's smallest costs 8.63) the whole supernet too, and the search
 * runs; a budget below the space's smallest names its cost. */
static void test_kind_space(const NetDesc *d)
{
    SearchCfg c = cfg_default(15.0), whole = c;
    ntaa_kind_space(&c, d, TASK_REGRESS);
    ntaa_kind_space(&whole, d, TASK_CLASSIFY);
    SearchState st;
    Candidate out[10];
    char err[256];
    CHECK(search_init(d, &c, shallow, NULL, &st, err, sizeof err) == 0, "search_init in the space: %s", err);
    for (int g = 0; g < c.generations; g++) search_step(d, &c, shallow, NULL, &st);
    CHECK(search_random(d, &c, 10, shallow, NULL, out, err, sizeof err) == 0, "random search in the space: %s", err);
    int deep = 1;
    for (int i = 0; i < st.n; i++) deep &= st.pop[i].arch.depth[2] == 4;
    for (int i = 0; i < 10; i++) deep &= out[i].arch.depth[2] == 4;
    search_free(&st);
    CHECK(deep, "regression's space: every candidate's last stage 4 blocks deep");
    CHECK(search_init(d, &whole, shallow, NULL, &st, err, sizeof err) == 0, "search_init: %s", err);
    for (int g = 0; g < whole.generations; g++) search_step(d, &whole, shallow, NULL, &st);
    CHECK(st.pop[0].arch.depth[2] == 2 && !memcmp(whole.min_depth, (int[NET_MAX_STAGES]){0}, sizeof whole.min_depth),
          "classification's space: the whole supernet (the shallow fitness ends at a 2-block last stage)");
    search_free(&st);
    SearchCfg tight = cfg_default(9.0);
    ntaa_kind_space(&tight, d, TASK_REGRESS);
    CHECK(tight.min_depth[2] == 0 && search_init(d, &tight, shallow, NULL, &st, err, sizeof err) == 0,
          "regression under 9 MFLOPs: the whole supernet (last stage's min_depth %d, want 0), and the search runs: %s",
          tight.min_depth[2], err);
    search_free(&st);
    Arch small;
    CHECK(arch_parse(d, "k3e3-k3e3/k3e3-k3e3/k3e3-k3e3-k3e3-k3e3", &small, err, sizeof err) == 0, "parse: %s", err);
    char want[96];
    snprintf(want, sizeof want, "the smallest in the search's space costs %.2f MFLOPs", search_mflops(d, &small));
    c.budget_mflops = search_mflops(d, &small) - 0.01;
    CHECK(search_init(d, &c, shallow, NULL, &st, err, sizeof err) == -1 && strstr(err, want),
          "a budget below the space's smallest: %s (want '%s')", err, want);
    search_free(&st);
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
    test_latency(&d);
    test_region(&d);
    test_pool(&d);
    test_kind_space(&d);
}
