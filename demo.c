/* demo.c: nta demo. From one pretrained supernet, every task: neural
 * transfer, then NTAA and its three baselines through the method runner
 * (ntaa_run), then the report (report.c) with a verdict.
 */
#define _POSIX_C_SOURCE 200809L
#include "ntaa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fill t's header (task, metric, budget) from the task's data. */
static void task_header(ReportTask *t, const DataSplits *d, const AdaptCfg *a)
{
    snprintf(t->task, sizeof t->task, "%s", a->task);
    t->metric_name = task_metric_name(d);
    t->second_name = d->kind == TASK_RETRIEVE ? "rank-1 %" : NULL;
    t->lower_better = task_lower_better(d);
    t->budget_mflops = a->search.budget_mflops;
}

/* NTAA's search for the report: progress per generation and the last
 * population, their fitness back in the metric's units. */
static void task_search(ReportTask *t, const SearchTrace *trace, SearchState *last)
{
    double sign = t->lower_better ? -1 : 1;
    t->ngen = trace->ngen, t->npop = last->n, t->pop = last->pop;   /* the report keeps the last population */
    t->gen_best = nta_malloc(trace->ngen * sizeof(double)), t->gen_mean = nta_malloc(trace->ngen * sizeof(double));
    for (int g = 0; g < trace->ngen; g++) t->gen_best[g] = sign * trace->best[g], t->gen_mean[g] = sign * trace->mean[g];
    for (int i = 0; i < last->n; i++) t->pop[i].fitness *= sign;
    *last = (SearchState){0};
}

/* A task's name as the start of a file name in the demo's folder: what is
 * not a letter, digit, '.', '-' or '_' becomes '_' (classify:idx:A,B). */
static void file_stem(char *stem, size_t len, const char *task)
{
    size_t i = 0;
    for (; task[i] && i + 1 < len; i++) {
        char ch = task[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr(".-_", ch);
        stem[i] = ok ? ch : '_';
    }
    stem[i] = 0;
}

/* A front point that repeats a row of the comparison: a copy, its own items. */
static void front_copy(ReportTask *t, const ReportRow *r, double budget)
{
    ReportRow *f = &t->front[t->nfront];
    *f = *r;
    if (r->items) {
        size_t n = (size_t)(r->runs > 1 ? r->runs : 1) * r->nitems * sizeof(float);
        f->items = memcpy(nta_malloc(n), r->items, n);
    }
    t->front_budget[t->nfront++] = budget;
}

/* The NTAA front: the comparison's NTAA run (the main budget), then NTAA
 * under each of the --front-budgets from the same transferred supernet
 * (the clock counts the transfer, as NTAA's does). */
static void front_ntaa(const DemoCfg *c, const AdaptCfg *a, const Backend *be, const DataSplits *d, Net *net,
                       double t_transfer, const char *stem, ReportTask *t)
{
    char log[4096];
    if (!c->nbudgets) return;
    front_copy(t, &t->rows[0], a->search.budget_mflops);
    for (int i = 0; i < c->nbudgets; i++) {
        AdaptCfg ab = *a;
        ab.search.budget_mflops = c->budgets[i];
        printf("NTAA front: budget %g MFLOPs\n", c->budgets[i]);
        snprintf(log, sizeof log, "%s/%s.front-%g.log", c->dir, stem, c->budgets[i]);
        Method m = {.method = METHOD_NTAA, .transferred = net, .epochs = a->train.epochs, .log = log, .out = "",
                    .t0 = nta_now() - t_transfer};
        ntaa_run(&m, be, d, &ab, &t->front[t->nfront]);
        t->front_budget[t->nfront++] = c->budgets[i];
        search_free(&m.last);
    }
}

/* The WP&F front: each of the --front-archs with as many epochs as WP&F in
 * the comparison (the comparison's own WP&F run when it is the same
 * architecture). */
static void front_wpf(const DemoCfg *c, const AdaptCfg *a, const Backend *be, const DataSplits *d, ReportTask *t)
{
    char err[512], text[512];
    for (int i = 0; c->nbudgets && i < c->narchs; i++) {
        Arch arch;
        if (arch_named(&t->desc, c->archs[i], NULL, &arch, err, sizeof err)) nta_die("--front-archs: %s", err);
        arch_format(&t->desc, &arch, text, sizeof text);
        if (!strcmp(text, t->rows[2].arch)) {
            front_copy(t, &t->rows[2], NAN);
            continue;
        }
        printf("WP&F front: %s, %d epochs\n", text, a->transfer_epochs + a->train.epochs);
        Method m = {.method = METHOD_WPF, .supernet = c->supernet, .arch = arch,
                    .epochs = a->transfer_epochs + a->train.epochs, .log = "", .out = "", .t0 = nta_now()};
        ntaa_run(&m, be, d, a, &t->front[t->nfront]);
        t->front_budget[t->nfront++] = NAN;
    }
}

/* The row names of the unsupervised paradigm (demo --ssl 1) */
#define NAME_LINEAR "NTAA (linear evaluation)"
#define NAME_SSL_WPF "WP&F (self-supervised supernet)"

/* The unsupervised paradigm's rows of a task, from the self-supervised
 * supernet: NTAA with linear-evaluation search (no neural transfer; its
 * clock starts before the supernet is read), where the task allows it, and
 * WP&F of the largest architecture with as many epochs as the comparison's. */
static void demo_ssl(const DemoCfg *c, const AdaptCfg *a, const Backend *be, const DataSplits *d, const char *stem,
                     ReportTask *t)
{
    char log[4096];
    if (d->kind == TASK_UDA)
        printf(NAME_LINEAR ": not run on %s (%s)\n", a->task, LINEAR_NO_UDA);
    else {
        AdaptCfg al = *a;
        al.linear = 1, al.online_epochs = 0;
        printf(NAME_LINEAR ": the self-supervised supernet searched by linear evaluation, no neural transfer\n");
        snprintf(log, sizeof log, "%s/%s.linear.log", c->dir, stem);
        double t0 = nta_now();
        Net *super = ntaa_load(c->ssl_supernet, be, d, &al);
        Method m = {.method = METHOD_NTAA, .transferred = super, .epochs = a->train.epochs, .log = log, .out = "",
                    .t0 = t0};
        ntaa_run(&m, be, d, &al, &t->rows[t->nrows++]);
        search_free(&m.last);
        net_free(super);
    }
    int epochs = a->transfer_epochs + a->train.epochs;
    printf(NAME_SSL_WPF ": %d epochs\n", epochs);
    Method fixed = {.method = METHOD_WPF, .name = NAME_SSL_WPF, .supernet = c->ssl_supernet,
                    .arch = arch_largest(&t->desc), .epochs = epochs, .log = "", .out = "", .t0 = nta_now()};
    ntaa_run(&fixed, be, d, a, &t->rows[t->nrows++]);
}

/* NTAA and the three baselines on one task, from one supernet, under one
 * budget, the unsupervised paradigm's rows and the fronts when asked for;
 * the results and the search's traces go into t. */
static void demo_task(const DemoCfg *c, const AdaptCfg *a, const Backend *be, ReportTask *t)
{
    DataSplits d;
    char log[4096], out[4096], stem[256];
    file_stem(stem, sizeof stem, a->task);
    ntaa_load_task(&d, a);
    task_header(t, &d, a);

    double t0 = nta_now();
    Net *net = ntaa_transfer(c->supernet, be, &d, a);
    double t_transfer = nta_now() - t0;

    /* NTAA: evolution on the transferred supernet, the winner finetuned */
    SearchTrace *trace = nta_calloc(1, sizeof *trace);
    snprintf(log, sizeof log, "%s/%s.search.log", c->dir, stem);
    snprintf(out, sizeof out, "%s/%s.ntaa.nta", c->dir, stem);
    Method ntaa = {.method = METHOD_NTAA, .transferred = net, .epochs = a->train.epochs, .log = log, .out = out,
                   .t0 = t0, .trace = trace};
    ntaa_run(&ntaa, be, &d, a, &t->rows[0]);
    t->desc = *net_desc(net), t->arch = ntaa.arch;
    task_search(t, trace, &ntaa.last);
    free(trace);

    /* random search: as many architectures as evolution scored, same supernet;
     * its clock counts the transfer too */
    snprintf(log, sizeof log, "%s/%s.random.log", c->dir, stem);
    Method rs = {.method = METHOD_RANDOM, .transferred = net, .epochs = a->train.epochs, .log = log, .out = "",
                 .t0 = nta_now() - t_transfer};
    ntaa_run(&rs, be, &d, a, &t->rows[1]);
    search_free(&rs.last);
    front_ntaa(c, a, be, &d, net, t_transfer, stem, t);
    net_free(net);

    /* WP&F (the largest architecture) and the winner from scratch, with as
     * many epochs as transfer and finetuning together */
    int epochs = a->transfer_epochs + a->train.epochs;
    for (int scratch = 0; scratch < 2; scratch++) {
        printf("%s: %d epochs\n", scratch ? "from scratch (classic NAS)" : "WP&F (largest)", epochs);
        Method fixed = {.method = scratch ? METHOD_SCRATCH : METHOD_WPF, .supernet = c->supernet,
                        .arch = scratch ? t->arch : arch_largest(&t->desc), .epochs = epochs, .log = "",
                        .out = "", .t0 = nta_now()};
        ntaa_run(&fixed, be, &d, a, &t->rows[2 + scratch]);
    }
    t->nrows = 4;
    if (c->ssl_supernet) demo_ssl(c, a, be, &d, stem, t);
    front_wpf(c, a, be, &d, t);
    data_free(&d);
}

/* Method a against method b on every task that has both: wins, ties and
 * losses by the 95% paired bootstrap interval (report_compare); the tasks
 * of each word listed after it. */
static void verdict_against(char *buf, size_t len, const ReportTask *t, int n, const char *a, const char *b)
{
    static const char *const words[3] = {"win", "tie", "loss"};
    char list[3][512] = {"", "", ""};
    int count[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        const ReportRow *ra = report_row(&t[i], a), *rb = report_row(&t[i], b);
        if (!ra || !rb) continue;
        Compare c = report_compare(ra, rb, t[i].lower_better);
        for (int w = 0; w < 3; w++)
            if (!strcmp(c.word, words[w])) {
                count[w]++;
                size_t l = strlen(list[w]);
                snprintf(list[w] + l, sizeof list[w] - l, "%s%.100s", l ? ", " : "", t[i].task);
            }
    }
    snprintf(buf, len, "%d win%s%s%.400s%s, %d tie%s%s%.400s%s, %d loss%s%s%.400s%s", count[0],
             count[0] == 1 ? "" : "s", *list[0] ? " (" : "", list[0], *list[0] ? ")" : "", count[1],
             count[1] == 1 ? "" : "s", *list[1] ? " (" : "", list[1], *list[1] ? ")" : "", count[2],
             count[2] == 1 ? "" : "es", *list[2] ? " (" : "", list[2], *list[2] ? ")" : "");
}

/* "N wins, N ties, N losses of P" from count[3] (win, tie, loss) */
static void words_count(char *buf, size_t len, const int *count)
{
    snprintf(buf, len, "%d win%s, %d tie%s, %d loss%s of %d", count[0], count[0] == 1 ? "" : "s", count[1],
             count[1] == 1 ? "" : "s", count[2], count[2] == 1 ? "" : "es", count[0] + count[1] + count[2]);
}

/* "; each NTAA point of the fronts, at equal cost (against the WP&F
 * architecture nearest in MFLOPs): N wins, ...; at equal accuracy (against
 * the cheapest WP&F architecture as good): N wins, ..." ("" without fronts). */
static void verdict_fronts(char *buf, size_t len, const ReportTask *t, int n)
{
    int cost[3] = {0, 0, 0}, acc[3] = {0, 0, 0};
    char a[96], b[96];
    buf[0] = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < t[i].nfront; j++) {
            int k = report_front_nearest(&t[i], j);
            if (k < 0) continue;
            const char *w = report_compare(&t[i].front[j], &t[i].front[k], t[i].lower_better).word;
            cost[0] += !strcmp(w, "win"), cost[1] += !strcmp(w, "tie"), cost[2] += !strcmp(w, "loss");
            w = report_word_equal_accuracy(&t[i], j, report_front_as_good(&t[i], j));
            acc[0] += !strcmp(w, "win"), acc[1] += !strcmp(w, "tie"), acc[2] += !strcmp(w, "loss");
        }
    words_count(a, sizeof a, cost);
    words_count(b, sizeof b, acc);
    if (cost[0] + cost[1] + cost[2])
        snprintf(buf, len, "; each NTAA point of the fronts, at equal cost (against the WP&F architecture nearest in "
                 "MFLOPs): %s; at equal accuracy (against the cheapest WP&F architecture as good, by the same "
                 "interval): %s", a, b);
}

/* " The unsupervised paradigm: NTAA (linear evaluation) against NTAA: ...;
 * WP&F (self-supervised supernet) against WP&F: ...; the linear-evaluation
 * searches took X, N% of supervised NTAA's transfer + search (Y) on the
 * same tasks." ("" without demo --ssl) */
static void verdict_ssl(char *buf, size_t len, const ReportTask *t, int n)
{
    char linear[1536], wpf[1536], a[32], b[32];
    double t_linear = 0, t_ntaa = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const ReportRow *rl = report_row(&t[i], NAME_LINEAR), *rn = report_row(&t[i], "NTAA");
        if (rl && rn) t_linear += rl->search_seconds, t_ntaa += rn->search_seconds;
    }
    int any_ssl = 0;
    for (int i = 0; i < n; i++) any_ssl |= report_row(&t[i], NAME_SSL_WPF) != NULL;
    if (!any_ssl) return;
    verdict_against(linear, sizeof linear, t, n, NAME_LINEAR, "NTAA");
    verdict_against(wpf, sizeof wpf, t, n, NAME_SSL_WPF, "WP&F");
    nta_fmt_time(a, sizeof a, t_linear);
    nta_fmt_time(b, sizeof b, t_ntaa);
    snprintf(buf, len,
             " The unsupervised paradigm (a self-supervised supernet): " NAME_LINEAR " against NTAA: %s; " NAME_SSL_WPF
             " against WP&F: %s. The linear-evaluation searches took %s in all, %.0f%% of supervised NTAA's "
             "transfer + search (%s) on the same tasks.",
             linear, wpf, a, t_ntaa > 0 ? 100 * t_linear / t_ntaa : NAN, b);
}

/* "Against WP&F (...): N wins (...), N ties (...), N losses; against ..." */
static void demo_verdict(char *buf, size_t len, const ReportTask *t, int n)
{
    char wpf[1536], scratch[1536], fronts[512], ssl[4096];
    verdict_against(wpf, sizeof wpf, t, n, "NTAA", "WP&F");
    verdict_against(scratch, sizeof scratch, t, n, "NTAA", "from scratch");
    verdict_fronts(fronts, sizeof fronts, t, n);
    verdict_ssl(ssl, sizeof ssl, t, n);
    snprintf(buf, len,
             "NTAA against WP&F (the largest architecture): %s; against the same "
             "architecture trained from scratch: %s%s (a win or a loss: the 95%% paired bootstrap interval of the "
             "difference, over test images and seeds, excludes zero; a tie: it does not).%s",
             wpf, scratch, fronts, ssl);
}

/* The report's opening paragraph: the settings, the supernet, the time. */
static void demo_intro(char *buf, size_t len, const DemoCfg *c, const ReportTask *rt, int nt, const Backend *be,
                       const char *took, const char *verdict)
{
    const AdaptCfg *a = &c->a;
    const SearchCfg *s = &a->search;
    const TrainCfg *tr = &a->train;
    char ssl[4400] = "";
    if (c->ssl_supernet)
        snprintf(ssl, sizeof ssl,
                 " The unsupervised paradigm (demo --ssl 1): self-supervised supernet %.4000s (%s); per task NTAA "
                 "searched by linear evaluation of its frozen pooled features (no neural transfer; as many candidates "
                 "as evolution; the winner finetuned %d epochs), except on domain adaptation, and WP&F of its "
                 "largest architecture.", c->ssl_supernet, c->ssl_pretrained, tr->epochs);
    char region[96] = "";
    if (a->transfer_region > 0)
        snprintf(region, sizeof region, " within %.2f MFLOPs (--transfer-within-budget 1)", a->transfer_region);
    char levers[160] = "";
    if (a->online_epochs > 0)
        snprintf(levers, sizeof levers, ", %d epochs of NAT's online adaptation before each generation "
                 "(--online-epochs)", a->online_epochs);
    if (a->kind_space)
        snprintf(levers + strlen(levers), sizeof levers - strlen(levers), ", in the task kind's space (--kind-space 1)");
    snprintf(buf, len,
             "Supernet: %s (%s). Every task: %d labelled training images, %d validation images, "
             "neural transfer %d epochs (sandwich rule%s), evolution of %d candidates for %d generations "
             "(%d parents, %d mutants, %d crosses%s) under %.2f MFLOPs, random search over %d architectures, "
             "winners finetuned %d epochs; WP&F (the largest architecture, %.2f MFLOPs) and from-scratch "
             "training of NTAA's architecture get %d epochs, as many as transfer and finetuning together; every phase "
             "at peak learning rate %g (cosine)%s; each finetuning runs with %d seed%s. "
             "Backend %s, %d threads, seed %d%s.%s "
             "Total time %s. %s",
             c->supernet, c->pretrained, a->train_images, tr->val, a->transfer_epochs, region, s->population,
             s->generations, s->parents, s->mutants, s->crosses, levers, s->budget_mflops, a->random, tr->epochs,
             nt ? rt[0].rows[2].mflops : 0, a->transfer_epochs + tr->epochs, tr->lr,
             tr->keep_best ? "; every finetuned model keeps its epoch with the best validation metric "
                             "(epoch 0, the weights as they came, only for WP&F: the winners were chosen on that split)"
                           : "; every finetuned model is scored as its last epoch left it",
             a->seeds, a->seeds > 1 ? "s (the tables give mean ± standard deviation)" : "",
             be->name, tr->threads, tr->seed,
             c->quick ? "; QUICK MODE: tiny data and settings, the numbers mean nothing" : "",
             ssl, took, verdict);
}

/* " Fronts: NTAA also under 9, 14 MFLOPs; WP&F of smallest, ..." ("" without fronts). */
static void demo_fronts_intro(char *buf, size_t len, const DemoCfg *c)
{
    size_t n = 0;
    buf[0] = 0;
    if (!c->nbudgets) return;
    n += snprintf(buf + n, len - n, " Fronts: NTAA also under");
    for (int i = 0; i < c->nbudgets && n < len; i++) n += snprintf(buf + n, len - n, "%s %g", i ? "," : "", c->budgets[i]);
    if (n < len) n += snprintf(buf + n, len - n, " MFLOPs from the same transferred supernet; WP&F of");
    for (int i = 0; i < c->narchs && n < len; i++) n += snprintf(buf + n, len - n, "%s %.200s", i ? "," : "", c->archs[i]);
    if (n < len) snprintf(buf + n, len - n, ", each as the comparison's WP&F.");
}

int demo_tasks(const char *list, char names[][DEMO_TASK_LEN], int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        char item[DEMO_TASK_LEN], why[512];
        snprintf(item, sizeof item, "%.*s", (int)(end - p), p);
        int task = !strncmp(item, "classify:", 9) || !data_task_check(item, why, sizeof why);
        if (!*item) {
            snprintf(err, errlen, "--tasks '%s' has an empty item", list);
            return -1;
        }
        if (task && n == max) {
            snprintf(err, errlen, "--tasks: at most %d tasks", max);
            return -1;
        }
        if (task) snprintf(names[n++], DEMO_TASK_LEN, "%s", item);
        else if (n && !strncmp(names[n - 1], "classify:", 9) && strlen(names[n - 1]) + strlen(item) + 2 < DEMO_TASK_LEN)
            strcat(strcat(names[n - 1], ","), item);       /* a comma inside classify:idx:A,B,... */
        else {
            snprintf(err, errlen, "--tasks: %s", why);
            return -1;
        }
        if (!comma) break;
        p = comma + 1;
    }
    for (int i = 0; i < n; i++)
        if (data_task_check(names[i], err, errlen)) return -1;
    return n;
}

int demo_run(const DemoCfg *c, const Backend *be)
{
    int nt = c->ntasks;
    ReportTask *rt = nta_calloc((size_t)nt, sizeof *rt);
    for (int i = 0; i < nt; i++) {
        AdaptCfg at = c->a;
        at.task = c->tasks[i];
        printf("== task %s\n", c->tasks[i]);
        demo_task(c, &at, be, &rt[i]);
    }
    char all[32], intro[16384], verdict[8192], md[4096], html[4096], err[512];
    nta_fmt_time(all, sizeof all, nta_now() - c->t0);
    demo_verdict(verdict, sizeof verdict, rt, nt);
    demo_fronts_intro(verdict + strlen(verdict), sizeof verdict - strlen(verdict), c);
    demo_intro(intro, sizeof intro, c, rt, nt, be, all, verdict);
    snprintf(md, sizeof md, "%s/report.md", c->dir);
    snprintf(html, sizeof html, "%s/report.html", c->dir);
    if (report_write(md, html, intro, rt, nt, err, sizeof err)) nta_die("%s", err);
    printf("== done in %s. %s\nreport: %s and %s\n", all, verdict, md, html);
    for (int i = 0; i < nt; i++) {
        free(rt[i].pop), free(rt[i].gen_best), free(rt[i].gen_mean);
        for (int r = 0; r < rt[i].nrows; r++) free(rt[i].rows[r].items);
        for (int r = 0; r < rt[i].nfront; r++) free(rt[i].front[r].items);
    }
    free(rt);
    return 0;
}
