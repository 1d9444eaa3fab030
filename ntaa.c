/* ntaa.c: the paper's pipeline on a target task, and its baselines.
 *
 *   ntaa_transfer   neural transfer: a new head, the whole supernet trained on the task
 *   ntaa_fitness    the search's fitness: validation metric with inherited weights
 *   ntaa_search     the search driver (evolution or random search) and its log
 *   ntaa_inherit    the winner as a standalone network with the supernet's weights
 *   ntaa_wpf        WP&F: a fixed architecture of the pretrained supernet
 *   ntaa_scratch    the same architecture from random weights
 *   ntaa_finetune   finetuning (over seeds) and the test metric
 *   ntaa_run        one method, start to finish: what adapt, finetune and demo call
 */
#define _POSIX_C_SOURCE 200809L
#include "ntaa.h"
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_name[] = {"NTAA", "random search", "WP&F", "from scratch"};
static const char *const method_tag[] = {"ntaa", "random", "wpf", "scratch"};   /* in model files */
/* NTAA and random search with --fitness linear (the unsupervised paradigm's search) */
static const char *const linear_name[] = {"NTAA (linear evaluation)", "random search (linear evaluation)"};

void ntaa_load_task(DataSplits *d, const AdaptCfg *a)
{
    data_task(d, a->task, a->train_images, a->train.val, a->train.limit, (uint64_t)a->train.seed);
    printf("task %s: %d train, %d val, %d test images of %dx%dx%d, %d outputs, metric %s", a->task,
           d->train.n, d->val.n, d->test.n, d->train.h, d->train.w, d->train.c, task_outputs(d),
           task_metric_name(d));
    if (d->kind == TASK_UDA) printf("; %d unlabelled target-domain images", d->target.n);
    printf("\n");
}

Net *ntaa_load(const char *path, const Backend *be, const DataSplits *d, const AdaptCfg *a)
{
    char err[512];
    Net *src = net_load(path, LOSS_XENT, be, a->train.batch, err, sizeof err);
    if (!src) nta_die("%s", err);
    NetDesc probe = *net_desc(src);
    probe.classes = task_outputs(d);
    task_check_net(&probe, d, path);
    Net *net = net_rehead(src, probe.classes, task_loss(d), (uint64_t)a->train.seed);
    net_free(src);
    return net;
}

/* A training phase of `epochs` epochs with the adapt settings (no checkpoints). */
static void train_phase(Net *net, const DataSplits *d, const TrainCfg *base, int epochs, int sampling)
{
    TrainCfg c = *base;
    c.epochs = epochs, c.out = "", c.stop_after = 0;
    if (epochs > 0) train_fit(net, d, &c, sampling, 0);
}

/* ----------------------------------------------------- neural transfer */

Net *ntaa_transfer(const char *supernet, const Backend *be, const DataSplits *d, const AdaptCfg *a)
{
    Net *net = ntaa_load(supernet, be, d, a);
    if (net_desc(net)->space.nk == 0)
        nta_die("%s is a fixed network, not a supernet: adapt needs 'nta pretrain' output", supernet);
    TrainCfg t = a->train;
    t.region = a->transfer_region;
    char within[64] = "the whole supernet";
    if (t.region > 0) snprintf(within, sizeof within, "the architectures of at most %g MFLOPs", t.region);
    printf("neural transfer: %d epochs of %s on %s\n", a->transfer_epochs, within, a->task);
    train_phase(net, d, &t, a->transfer_epochs, SAMPLE_SANDWICH);
    return net;
}

/* ---------------------------------------------- architecture adaptation */

double ntaa_fitness(void *ctx, const Arch *a)
{
    Fitness *f = ctx;
    if (f->linear) return task_fitness(f->d, linear_fitness_arch(f->net, f->d, a));
    return task_fitness(f->d, task_score_arch(f->net, f->d, &f->d->val, a, f->calib, f->seed, NULL));
}

/* The search log: per generation a header "# generation G n N rng STATE", then
 * one line per candidate, fittest first: "G rank fitness MFLOPs params arch".
 * Fitness is written exactly (%.17g) so a resumed search ranks as the
 * unbroken one did. The terminal gets one line per generation. */
static void log_generation(FILE *log, const NetDesc *d, const SearchState *st, double budget, double t0)
{
    double mean = 0, cost = 0;
    char text[512], took[32];
    for (int i = 0; i < st->n; i++) mean += st->pop[i].fitness / st->n, cost += st->pop[i].mflops / st->n;
    arch_format(d, &st->pop[0].arch, text, sizeof text);
    nta_fmt_time(took, sizeof took, nta_now() - t0);
    printf("generation %d: fitness best %.2f mean %.2f, best %.2f MFLOPs, mean %.2f MFLOPs (%.0f%% of budget), %s: %s\n",
           st->gen, st->pop[0].fitness, mean, st->pop[0].mflops, cost, budget > 0 ? 100 * cost / budget : 0,
           took, text);
    if (!log) return;
    fprintf(log, "# generation %d n %d rng %llu\n", st->gen, st->n, (unsigned long long)st->rng.state);
    for (int i = 0; i < st->n; i++) {
        arch_format(d, &st->pop[i].arch, text, sizeof text);
        fprintf(log, "%d %d %.17g %.4f %zu %s\n", st->gen, i, st->pop[i].fitness, st->pop[i].mflops,
                st->pop[i].params, text);
    }
    fflush(log);
}

/* " field" appended to the header line in buf, before its newline. */
static void header_add(char *buf, size_t len, const char *field)
{
    size_t n = strlen(buf);
    if (n > 0 && n < len) snprintf(buf + n - 1, len - n + 1, " %s\n", field);
}

/* The smallest depth of each stage in sc's space, as "2/2/4", into buf;
 * returns whether the space is narrower than the supernet. */
static int space_depths(const NetDesc *d, const SearchCfg *sc, char *buf, size_t len)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first), narrow = 0;
    Arch small = search_smallest(d, sc);
    buf[0] = 0;
    for (int s = 0; s < ns; s++) {
        narrow |= sc->min_depth[s] > 0;
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%d", s ? "/" : "", small.depth[s]);
    }
    return narrow;
}

/* The log's first line: what its fitness values and costs depend on, so that
 * a resumed search continues only a log of the same search; depths: the
 * narrowed space's smallest stage depths (space_depths), NULL for the whole
 * supernet. */
static void log_header(char *buf, size_t len, const AdaptCfg *a, const char *depths, int random)
{
    const SearchCfg *s = &a->search;
    snprintf(buf, len,
             "# nta search log: task=%s %s budget=%.17g budget-ms=%.17g seed=%d val=%d calib=%d train-images=%d "
             "transfer-epochs=%d population=%d parents=%d mutants=%d crosses=%d mutate-prob=%.9g\n",
             a->task, random ? "random" : "evolution", s->budget_mflops, s->budget_ms, a->train.seed, a->train.val,
             a->train.calib,
             a->train_images, a->transfer_epochs, s->population, s->parents, s->mutants, s->crosses, s->mutate_prob);
    /* another fitness, another search (appended: older logs keep their header) */
    if (a->linear) header_add(buf, len, "fitness=linear-loo");
    if (a->online_epochs > 0) {
        char online[48];
        snprintf(online, sizeof online, "online-epochs=%d", a->online_epochs);
        header_add(buf, len, online);
    }
    if (depths) {                       /* a narrower space (--kind-space), another search */
        char space[64];
        snprintf(space, sizeof space, "min-depth=%s", depths);
        header_add(buf, len, space);
    }
}

/* One candidate line "G rank fitness MFLOPs params arch" of generation gen:
 * 0 when it is well formed and its costs are those of its architecture
 * (recomputed into c), else -1 and a message. */
static int log_candidate(const char *line, const NetDesc *d, int gen, int rank, const SearchCfg *sc, Candidate *c,
                         char *err, size_t errlen)
{
    char text[512], why[512];
    int g, r;
    double mflops;
    size_t params;
    if (sscanf(line, "%d %d %lg %lg %zu %511s", &g, &r, &c->fitness, &mflops, &params, text) != 6 || g != gen ||
        r != rank) {
        snprintf(err, errlen, "expected candidate %d of generation %d, found: %.80s", rank, gen, line);
        return -1;
    }
    if (arch_parse(d, text, &c->arch, why, sizeof why)) {
        snprintf(err, errlen, "candidate %d of generation %d: %.300s", rank, gen, why);
        return -1;
    }
    NetDesc sd = arch_standalone(d, &c->arch);
    c->mflops = 1e-6 * net_flops(&sd), c->params = net_params(&sd);
    if (!isfinite(c->fitness) || fabs(mflops - c->mflops) > 1e-4 || params != c->params || !search_fits(d, sc, &c->arch)) {
        snprintf(err, errlen, "candidate %d of generation %d claims fitness %g, %.4f MFLOPs and %zu params; "
                 "its architecture costs %.4f MFLOPs and %zu params (budget %.2f MFLOPs, %g ms)", rank, gen,
                 c->fitness, mflops, params, c->mflops, c->params, sc->budget_mflops, sc->budget_ms);
        return -1;
    }
    return 0;
}

int ntaa_log_read(const char *path, const NetDesc *d, const char *header, const SearchCfg *sc, SearchState *st,
                  char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024], why[512];
    int gen = -1, n = 0, got = 0, done = 0, lineno = 2;
    unsigned long long rng = 0;
    if (!fgets(line, sizeof line, f)) {           /* empty: nothing to continue */
        fclose(f);
        return 0;
    }
    Candidate *pop = nta_calloc((size_t)sc->population, sizeof *pop);
    if (strcmp(line, header)) {
        snprintf(err, errlen, "--resume: the search log '%s' was not written by this search:\n  it has:   %.400s"
                 "  this run: %s", path, line, header);
        done = -1;
    }
    for (; done >= 0 && fgets(line, sizeof line, f); lineno++) {
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(why, sizeof why, "a line longer than %zu characters", sizeof line - 2);
            break;
        }
        if (!strchr(line, '\n')) break;          /* the last line, cut short by a crash */
        if (gen >= 0 && got < n) {
            if (log_candidate(line, d, gen, got, sc, &pop[got], why, sizeof why)) break;
            if (got && pop[got].fitness > pop[got - 1].fitness) {
                snprintf(why, sizeof why, "candidate %d of generation %d is fitter than the one before it", got, gen);
                break;
            }
            if (++got < n) continue;
            free(st->pop);                       /* a complete generation */
            st->pop = nta_malloc((size_t)n * sizeof *pop);
            memcpy(st->pop, pop, (size_t)n * sizeof *pop);
            st->n = n, st->gen = gen, st->rng.state = rng;
            done = 1;
            continue;
        }
        if (sscanf(line, "# generation %d n %d rng %llu", &gen, &n, &rng) != 3 || gen != (done ? st->gen + 1 : 0) ||
            n != sc->population || gen > sc->generations) {
            snprintf(why, sizeof why, "expected the header of generation %d (n %d, at most --generations %d), "
                     "found: %.80s", done ? st->gen + 1 : 0, sc->population, sc->generations, line);
            break;
        }
        got = 0;
    }
    if (done >= 0 && !feof(f)) {
        snprintf(err, errlen, "--resume: the search log '%s', line %d: %s", path, lineno, why);
        done = -1;
    }
    free(pop);
    fclose(f);
    return done;
}

static void trace_add(SearchTrace *t, const SearchState *st)
{
    if (!t || t->ngen >= 256) return;
    double mean = 0;
    for (int i = 0; i < st->n; i++) mean += st->pop[i].fitness / st->n;
    t->best[t->ngen] = st->pop[0].fitness, t->mean[t->ngen] = mean, t->ngen++;
}

/* The search's first population: restored from the log, N random
 * architectures (random search: one "generation"), or evolution's initial
 * one. Returns 1 when it was restored. */
static int search_start(Net *net, SearchCfg *sc, Fitness *fx, int random, const char *log_path, int resume,
                        const char *header, SearchState *st)
{
    char err[512];
    const NetDesc *nd = net_desc(net);
    *st = (SearchState){0};
    int restored = resume && !random && *log_path ? ntaa_log_read(log_path, nd, header, sc, st, err, sizeof err) : 0;
    if (restored < 0) nta_die("%s", err);
    if (restored) {
        printf("search: resumed after generation %d from %s\n", st->gen, log_path);
    } else if (random) {
        *st = (SearchState){.n = random, .pop = nta_calloc((size_t)random, sizeof(Candidate))};
        if (search_random(nd, sc, random, ntaa_fitness, fx, st->pop, err, sizeof err))
            nta_die_option("%s: %s", sc->budget_ms > 0 ? "--budget-mflops, --budget-ms" : "--budget-mflops", err);
        sc->generations = 0;
    } else if (search_init(nd, sc, ntaa_fitness, fx, st, err, sizeof err)) {
        nta_die_option("%s: %s", sc->budget_ms > 0 ? "--budget-mflops, --budget-ms" : "--budget-mflops", err);
    }
    return restored;
}

/* NAT's online adaptation (Lu et al. 2021): the supernet trains for
 * a->online_epochs on the architectures the search is exploring (each pass
 * of the sandwich's four draws one of the population; no warm-up, momentum
 * from zero, a shuffle of its own per generation), then the population is
 * scored again with the new weights. */
static void online_adapt(Net *net, const DataSplits *d, const AdaptCfg *a, SearchState *st, Fitness *fx)
{
    Arch *pool = nta_malloc((size_t)st->n * sizeof *pool);
    for (int i = 0; i < st->n; i++) pool[i] = st->pop[i].arch;
    TrainCfg t = a->train;
    t.pool = pool, t.npool = st->n, t.warmup = 0;
    t.seed = a->train.seed + 1 + st->gen;
    printf("online adaptation before generation %d: %d epochs on the population's %d architectures\n",
           st->gen + 1, a->online_epochs, st->n);
    net_momentum_reset(net);
    train_phase(net, d, &t, a->online_epochs, SAMPLE_SANDWICH);
    free(pool);
    search_rescore(ntaa_fitness, fx, st);
}

/* The share of the budget that the smallest architecture of a narrowed space
 * may cost: beyond it, random draws within the budget become too rare to
 * fill a population (the 9-MFLOPs front point, with the last stage 4 blocks
 * deep: the smallest 8.63 MFLOPs, none found in 10,000 draws). */
#define KIND_SPACE_ROOM 0.8

void ntaa_kind_space(SearchCfg *sc, const NetDesc *d, int kind)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first), last = ns - 1;
    memset(sc->min_depth, 0, sizeof sc->min_depth);
    if (kind != TASK_REGRESS) return;
    int shallowest = arch_smallest(d).depth[last];
    for (int depth = first[ns] - first[last]; depth > shallowest; depth--) {
        sc->min_depth[last] = depth;
        Arch small = search_smallest(d, sc);
        if ((sc->budget_mflops <= 0 || search_mflops(d, &small) <= KIND_SPACE_ROOM * sc->budget_mflops) &&
            (sc->budget_ms <= 0 || latency_predict(sc->latency, &small) <= KIND_SPACE_ROOM * sc->budget_ms))
            return;
    }
    sc->min_depth[last] = 0;
}

void ntaa_search(Net *net, const DataSplits *d, const AdaptCfg *a, int random, const char *log_path, int resume,
                 SearchState *st, SearchTrace *trace)
{
    char ms[96] = "";
    if (a->search.budget_ms > 0)
        snprintf(ms, sizeof ms, " and %g ms predicted at batch %d", a->search.budget_ms, a->search.latency->batch);
    printf("architecture adaptation: %s under %.2f MFLOPs%s, fitness: %s %s%s\n",
           random ? "random search" : "evolution", a->search.budget_mflops, ms,
           a->linear ? "leave-one-out training-split" : "validation", task_metric_name(d),
           a->linear ? " of a ridge head on the frozen pooled features (linear evaluation)" : "");
    SearchCfg sc = a->search;
    sc.seed = (uint64_t)a->train.seed;
    char depths[48];
    if (a->kind_space) ntaa_kind_space(&sc, net_desc(net), d->kind);
    int narrow = space_depths(net_desc(net), &sc, depths, sizeof depths);
    if (narrow) printf("search space (--kind-space 1): stage depths of at least %s\n", depths);
    Fitness fx = {net, d, a->train.calib, (uint64_t)a->train.seed, a->linear};
    double t0 = nta_now();
    char header[1024];
    log_header(header, sizeof header, a, narrow ? depths : NULL, random);
    int resumed = search_start(net, &sc, &fx, random, log_path, resume, header, st);
    FILE *log = *log_path && dist_rank() == 0 ? fopen(log_path, resumed ? "a" : "w") : NULL;   /* rank 0 writes */
    if (*log_path && dist_rank() == 0 && !log) nta_die("cannot write the search log '%s': %s", log_path, strerror(errno));
    if (log && !resumed) fputs(header, log);
    if (!resumed) log_generation(log, net_desc(net), st, sc.budget_mflops, t0);
    trace_add(trace, st);
    while (st->gen < sc.generations) {
        if (a->online_epochs > 0) online_adapt(net, d, a, st, &fx);
        search_step(net_desc(net), &sc, ntaa_fitness, &fx, st);
        log_generation(log, net_desc(net), st, sc.budget_mflops, t0);
        trace_add(trace, st);
    }
    if (log) fclose(log);
}

/* ------------------------------------------- inherit, baselines, finetune */

Net *ntaa_inherit(Net *super, const DataSplits *d, const AdaptCfg *a, const Arch *arch)
{
    net_set_arch(super, arch);
    net_recalibrate(super, d, a->train.calib, (uint64_t)a->train.seed);
    return net_extract(super, arch, a->train.batch);
}

Net *ntaa_wpf(Net *pretrained, const DataSplits *d, const AdaptCfg *a, const Arch *arch)
{
    return ntaa_inherit(pretrained, d, a, arch);
}

Net *ntaa_scratch(const Net *pretrained, const DataSplits *d, const AdaptCfg *a, const Arch *arch)
{
    const NetDesc *nd = net_desc(pretrained);
    NetDesc sd = arch_standalone(nd, arch);
    return net_create(&sd, task_loss(d), net_backend(pretrained), a->train.batch, (uint64_t)a->train.seed, 0);
}

void ntaa_finetune(Net *model, const DataSplits *d, const TrainCfg *c, int seeds, const char *method,
                   const char *arch, double t0, ReportRow *row)
{
    char m[128], took[32];
    int n = seeds > 1 ? seeds : 1;
    float *start = n > 1 ? net_weights_get(model, NULL) : NULL;
    double sum = 0, sum2 = 0, sum_second = 0;
    float *items = nta_malloc((size_t)n * (d->test.n > 0 ? d->test.n : 1) * sizeof(float));  /* [n, test.n] */
    net_set_norm(model, d->mean, d->std);
    for (int k = n - 1; k >= 0; k--) {
        TrainCfg run = *c;
        run.seed = c->seed + k;
        if (k < n - 1) {   /* back to the starting weights, no momentum */
            net_weights_put(model, start);
            net_momentum_reset(model);
        }
        train_phase(model, d, &run, c->epochs, SAMPLE_FIXED);
        double second, metric = task_score_items(model, d, &d->test, &second, items + (size_t)k * d->test.n);
        if (n > 1) printf("%s, seed %d: test %s\n", method, run.seed, task_format_metric(m, sizeof m, d, metric, second));
        sum += metric, sum2 += metric * metric, sum_second += second;
    }
    const NetDesc *nd = net_desc(model);
    *row = (ReportRow){.method = method, .mflops = 1e-6 * net_flops(nd), .params = net_params(nd),
                       .seconds = nta_now() - t0, .runs = n, .metric = sum / n, .second = sum_second / n,
                       .nitems = d->test.n, .items = items};
    row->sd = n > 1 ? sqrt(fmax(0, (sum2 - sum * sum / n) / (n - 1))) : NAN;
    snprintf(row->arch, sizeof row->arch, "%s", arch);
    nta_fmt_time(took, sizeof took, row->seconds);
    char spread[96] = "";
    if (n > 1) snprintf(spread, sizeof spread, ", mean of %d seeds (standard deviation %.2f)", n, row->sd);
    printf("%s: test %s on %d images%s; %.2f MFLOPs, %zu params; %s; architecture %s\n", method,
           task_format_metric(m, sizeof m, d, row->metric, row->second), d->test.n, spread, row->mflops,
           row->params, took, arch);
    free(start);
}

/* --------------------------------------------------- the method runner */

static void save_model(const Net *net, const AdaptCfg *a, const char *out, const char *tag, const char *arch)
{
    char meta[1024], err[512];
    snprintf(meta, sizeof meta, "task=%s method=%s arch=%s seed=%d\n", a->task, tag, arch, a->train.seed);
    if (dist_rank() == 0 && net_save(net, out, meta, 0, err, sizeof err) != 0) nta_die("could not save the model: %s", err);
    printf("saved to %s\n", out);
}

void ntaa_run(Method *m, const Backend *be, const DataSplits *d, const AdaptCfg *a, ReportRow *row)
{
    int searched = m->method == METHOD_NTAA || m->method == METHOD_RANDOM;
    TrainCfg tc = a->train;
    char text[512];
    Net *model;
    double searched_at = NAN;
    tc.epochs = m->epochs;
    if (searched) {
        Net *super = m->transferred;
        /* online adaptation trains the supernet: the next method gets it as it was */
        float *kept = a->online_epochs > 0 && m->method == METHOD_NTAA ? net_weights_get(super, NULL) : NULL;
        ntaa_search(super, d, a, m->method == METHOD_RANDOM ? a->random : 0, m->log, m->resume, &m->last,
                    m->trace);
        m->arch = m->last.pop[0].arch;
        searched_at = nta_now();
        arch_format(net_desc(super), &m->arch, text, sizeof text);
        printf("finetuning the winner with its inherited weights: %d epochs\n", m->epochs);
        model = ntaa_inherit(super, d, a, &m->arch);
        if (kept) net_weights_put(super, kept);
        free(kept);
        if (a->linear) linear_head_init(model, d);   /* the head the search scored it with */
        tc.searched = 1;
    } else {
        Net *pretrained = ntaa_load(m->supernet, be, d, a);
        arch_format(net_desc(pretrained), &m->arch, text, sizeof text);
        model = m->method == METHOD_WPF ? ntaa_wpf(pretrained, d, a, &m->arch)
                                        : ntaa_scratch(pretrained, d, a, &m->arch);
        net_free(pretrained);
    }
    const char *name = m->name               ? m->name
                       : searched && a->linear ? linear_name[m->method]
                                               : method_name[m->method];
    ntaa_finetune(model, d, &tc, a->seeds, name, text, m->t0, row);
    row->search_seconds = searched_at - m->t0;
    if (*m->out) save_model(model, a, m->out, method_tag[m->method], text);
    net_free(model);
}

/* ------------------------------------------------- adapt and finetune */

int ntaa_adapt(const char *supernet, const AdaptCfg *a, const Backend *be)
{
    DataSplits d;
    ntaa_load_task(&d, a);
    /* the transferred supernet is kept beside the output, for --resume */
    char transferred[4096], err[512];
    snprintf(transferred, sizeof transferred, "%s.transfer", a->out);
    Method m = {.method = a->random ? METHOD_RANDOM : METHOD_NTAA, .epochs = a->train.epochs, .log = a->log,
                .resume = a->resume, .out = a->out, .t0 = nta_now()};
    if (a->linear) {      /* the unsupervised paradigm: the pretrained supernet is searched as it is */
        m.transferred = ntaa_load(supernet, be, &d, a);
        if (net_desc(m.transferred)->space.nk == 0)
            nta_die("%s is a fixed network, not a supernet: adapt needs 'nta pretrain' output", supernet);
        printf("no neural transfer (--fitness linear): the search scores the pretrained supernet by linear "
               "evaluation\n");
    } else if (a->resume) {
        m.transferred = net_load(transferred, task_loss(&d), be, a->train.batch, err, sizeof err);
        if (!m.transferred) nta_die("--resume: %s", err);
        task_check_net(net_desc(m.transferred), &d, transferred);
        printf("neural transfer: done before, resumed from %s\n", transferred);
    } else {
        m.transferred = ntaa_transfer(supernet, be, &d, a);
        if (*a->out && dist_rank() == 0 && net_save(m.transferred, transferred, "adapt: the supernet after neural transfer\n", 0, err,
                                sizeof err))
            nta_die("could not save the transferred supernet: %s", err);
    }
    ReportRow row;
    ntaa_run(&m, be, &d, a, &row);
    free(row.items);
    if (a->search.budget_ms > 0) {
        const LatencyTable *t = a->search.latency;
        printf("latency of the winner at batch %d: predicted %.3f ms (budget %g ms), measured %.3f ms "
               "(the least of %d forward passes)\n", t->batch, latency_predict(t, &m.arch), a->search.budget_ms,
               latency_time(t, &m.arch, be, latency_reps(t->batch)), latency_reps(t->batch));
    }
    search_free(&m.last);
    net_free(m.transferred);
    data_free(&d);
    return 0;
}

int ntaa_baseline(const char *supernet, const Arch *arch, const AdaptCfg *a, const Backend *be)
{
    DataSplits d;
    ntaa_load_task(&d, a);
    Method m = {.method = a->scratch ? METHOD_SCRATCH : METHOD_WPF, .supernet = supernet, .arch = *arch,
                .epochs = a->train.epochs, .log = "", .out = a->out, .t0 = nta_now()};
    ReportRow row;
    ntaa_run(&m, be, &d, a, &row);
    free(row.items);
    data_free(&d);
    return 0;
}
