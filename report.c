/* report.c: the demo's report, report.md and a self-contained report.html.
 *
 * report.md: a title, the intro, per task the comparison table, the best
 * method, NTAA (and the best method) against each other method with a 95%
 * paired bootstrap interval and a word (win, tie, loss; report_compare), the
 * fronts when the demo ran them (every point; each NTAA point against the
 * WP&F architecture nearest in MFLOPs, report_front_nearest, with its
 * interval and word), the budget and the search progress; then a summary
 * table (rows: tasks, columns: each method's metric) and NTAA against each
 * method on every task.
 *
 * Which gaps are real (report_bootstrap): the paired bootstrap resamples both
 * the test items (images, or retrieval queries) and the seeds, with
 * replacement: the same items and seeds for the two methods, run k of each
 * being the one with seed SEED+k. Percentile interval, 2000 replicates.
 *
 * report.html: the same tables with inline CSS and, per task, three inline SVG
 * figures written by hand: search progress (best and mean fitness per
 * generation), the last population (MFLOPs vs fitness, its Pareto front, the
 * budget, NTAA's winner) and the chosen architecture drawn block by block;
 * a fourth with the fronts (test metric against MFLOPs, NTAA and WP&F).
 * No external resources and no JavaScript.
 *
 * Both files are written to a temporary name and renamed. Units: MFLOPs are
 * millions of FLOPs (net_flops / 1e6); wall times are seconds; SVG coordinates
 * are CSS pixels. A missing value (NaN) is printed as "-".
 */
#define _POSIX_C_SOURCE 200809L
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPORT_MAX_METHODS 16

/* ------------------------------------------------------------ formatting */

/* v with 2 decimals, or "-" when v is not finite */
static const char *fmt2(double v, char *buf, size_t len)
{
    if (!isfinite(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%.2f", v);
    return buf;
}

/* A wall time in seconds as "42.1s", "3m12s" or "2h05m"; "-" when unknown. */
static const char *fmt_time(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0) snprintf(buf, len, "-");
    else if (s < 60) snprintf(buf, len, "%.1fs", s);
    else if (s < 3600) snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

/* A parameter count as "123.4k" or "1.23M". */
static const char *fmt_params(size_t n, char *buf, size_t len)
{
    if (n >= 1000000) snprintf(buf, len, "%.2fM", n / 1e6);
    else if (n >= 1000) snprintf(buf, len, "%.1fk", n / 1e3);
    else snprintf(buf, len, "%zu", n);
    return buf;
}

static const char *fmt_budget(double mflops, char *buf, size_t len)
{
    if (mflops > 0 && isfinite(mflops)) snprintf(buf, len, "%.2f MFLOPs", mflops);
    else snprintf(buf, len, "none");
    return buf;
}

/* The row with the best finite metric (respecting lower_better), -1 if none;
 * ties go to the first row. */
static int best_row(const ReportTask *t)
{
    int best = -1;
    for (int i = 0; i < t->nrows; i++) {
        double m = t->rows[i].metric;
        if (!isfinite(m)) continue;
        double b = best < 0 ? 0 : t->rows[best].metric;
        if (best < 0 || (t->lower_better ? m < b : m > b)) best = i;
    }
    return best;
}

/* Distinct method names over all tasks, in order of appearance; returns the count. */
static int methods_of(const ReportTask *tasks, int ntasks, const char *names[REPORT_MAX_METHODS])
{
    int n = 0;
    for (int t = 0; t < ntasks; t++)
        for (int r = 0; r < tasks[t].nrows; r++) {
            const char *m = tasks[t].rows[r].method ? tasks[t].rows[r].method : "?";
            int j = 0;
            while (j < n && strcmp(names[j], m) != 0) j++;
            if (j == n && n < REPORT_MAX_METHODS) names[n++] = m;
        }
    return n;
}

/* The metric of `method` in task t, NAN if the task has no such row. */
static double metric_of(const ReportTask *t, const char *method)
{
    for (int r = 0; r < t->nrows; r++)
        if (strcmp(t->rows[r].method ? t->rows[r].method : "?", method) == 0) return t->rows[r].metric;
    return NAN;
}

const ReportRow *report_row(const ReportTask *t, const char *method)
{
    for (int r = 0; r < t->nrows; r++)
        if (strcmp(t->rows[r].method ? t->rows[r].method : "?", method) == 0) return &t->rows[r];
    return NULL;
}

static const char *fmt_compare(const Compare *c, char *buf, size_t len);

/* Method a against method b in task t as fmt_compare writes it ("-" if either is missing). */
static const char *compare_of(const ReportTask *t, const char *a, const char *b, char *buf, size_t len)
{
    const ReportRow *ra = report_row(t, a), *rb = report_row(t, b);
    Compare c = {NAN, NAN, NAN, "-"};
    if (ra && rb) c = report_compare(ra, rb, t->lower_better);
    return fmt_compare(&c, buf, len);
}

/* A row's metric, "92.75" or, over several runs, "92.75 ± 0.40". */
static const char *fmt_row_metric(const ReportRow *r, char *buf, size_t len)
{
    char m[32], s[32];
    fmt2(r->metric, m, sizeof m);
    if (r->runs > 1) snprintf(buf, len, "%s ± %s", m, fmt2(r->sd, s, sizeof s));
    else snprintf(buf, len, "%s", m);
    return buf;
}

/* --------------------------------------------------- which gaps are real */

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The q-quantile of sorted v[n] (linear between neighbours). */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

void report_bootstrap(const float *a, const float *b, int runs, int n, int reps, uint64_t seed, double *diff,
                      double *lo, double *hi)
{
    double *d = nta_malloc((size_t)runs * n * sizeof *d), *rep = nta_malloc((size_t)reps * sizeof *rep), sum = 0;
    int *weight = nta_malloc((size_t)runs * sizeof *weight);     /* how often each run was drawn */
    for (size_t j = 0; j < (size_t)runs * n; j++) d[j] = (double)a[j] - b[j], sum += d[j];
    Rng r;
    rng_seed(&r, seed);
    for (int k = 0; k < reps; k++) {
        memset(weight, 0, (size_t)runs * sizeof *weight);
        for (int j = 0; j < runs; j++) weight[rng_below(&r, (uint32_t)runs)]++;
        double s = 0;
        for (int m = 0; m < n; m++) {
            int i = (int)rng_below(&r, (uint32_t)n);
            for (int j = 0; j < runs; j++) s += weight[j] * d[(size_t)j * n + i];
        }
        rep[k] = s / ((double)runs * n);
    }
    qsort(rep, (size_t)reps, sizeof *rep, by_value);
    *diff = sum / ((double)runs * n), *lo = quantile(rep, reps, 0.025), *hi = quantile(rep, reps, 0.975);
    free(d), free(rep), free(weight);
}

#define REPORT_REPS 2000        /* bootstrap replicates per comparison */
#define REPORT_SEED 20210401    /* their seed: the same report for the same runs */

Compare report_compare(const ReportRow *a, const ReportRow *b, int lower_better)
{
    Compare c = {NAN, NAN, NAN, "-"};
    int runs = a->runs > 1 ? a->runs : 1;
    if (!a->items || !b->items || a->nitems < 1 || a->nitems != b->nitems || runs != (b->runs > 1 ? b->runs : 1))
        return c;
    report_bootstrap(a->items, b->items, runs, a->nitems, REPORT_REPS, REPORT_SEED, &c.diff, &c.lo, &c.hi);
    double s = lower_better ? -1 : 1;    /* s * diff > 0: a is better */
    c.word = s * c.lo > 0 && s * c.hi > 0 ? "win" : s * c.lo < 0 && s * c.hi < 0 ? "loss" : "tie";
    return c;
}

int report_front_nearest(const ReportTask *t, int j)
{
    if (!isfinite(t->front_budget[j])) return -1;
    int best = -1;
    for (int k = 0; k < t->nfront; k++) {
        if (isfinite(t->front_budget[k])) continue;
        double dk = fabs(t->front[k].mflops - t->front[j].mflops);
        double db = best < 0 ? INFINITY : fabs(t->front[best].mflops - t->front[j].mflops);
        if (dk < db || (dk == db && t->front[k].mflops < t->front[best].mflops)) best = k;
    }
    return best;
}

int report_front_as_good(const ReportTask *t, int j)
{
    if (!isfinite(t->front_budget[j])) return -1;
    int best = -1;
    for (int k = 0; k < t->nfront; k++) {
        if (isfinite(t->front_budget[k])) continue;
        Compare c = report_compare(&t->front[k], &t->front[j], t->lower_better);
        if (strcmp(c.word, "tie") && strcmp(c.word, "win")) continue;    /* a loss, or no interval */
        if (best < 0 || t->front[k].mflops < t->front[best].mflops) best = k;
    }
    return best;
}

const char *report_word_equal_accuracy(const ReportTask *t, int j, int k)
{
    if (k < 0) return "win";
    return t->front[k].mflops > t->front[j].mflops ? "win" : t->front[k].mflops < t->front[j].mflops ? "loss" : "tie";
}

/* "tie, +0.35 [-0.10, +0.80]"; "-" when there is no interval. */
static const char *fmt_compare(const Compare *c, char *buf, size_t len)
{
    if (!isfinite(c->lo)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%s, %+.2f [%+.2f, %+.2f]", c->word, c->diff, c->lo, c->hi);
    return buf;
}

/* "NTAA - each other method (95% paired bootstrap interval over test images
 * and seeds): WP&F: tie, +0.35 [-0.10, +0.80]; ..." for row i of t. */
static const char *comparisons(char *buf, size_t len, const ReportTask *t, int i)
{
    char c[96];
    const char *me = t->rows[i].method ? t->rows[i].method : "?";
    int n = snprintf(buf, len, "%s - each other method (%s; 95%% paired bootstrap interval over test images and seeds):",
                     me, t->metric_name);
    for (int j = 0, first = 1; j < t->nrows && n >= 0 && (size_t)n < len; j++) {
        if (j == i) continue;
        Compare k = report_compare(&t->rows[i], &t->rows[j], t->lower_better);
        n += snprintf(buf + n, len - n, "%s %s: %s", first ? "" : ";", t->rows[j].method ? t->rows[j].method : "?",
                      fmt_compare(&k, c, sizeof c));
        first = 0;
    }
    if (n >= 0 && (size_t)n + 1 < len) strcat(buf, ".");
    return buf;
}

/* Whether row i gets its comparisons with every other row: NTAA's rows (the
 * supervised one first, and the unsupervised paradigm's), and the best. */
static int compared(const ReportTask *t, int i, int best)
{
    return i == 0 || i == best || (t->rows[i].method && !strncmp(t->rows[i].method, "NTAA", 4));
}

/* "Wall time until the search's winner was known (neural transfer included
 * where there is one): NTAA 3m10s; random search 2m51s." "" if no row searched. */
static const char *search_times(char *buf, size_t len, const ReportTask *t)
{
    char e[32];
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < t->nrows && n >= 0 && (size_t)n < len; i++) {
        const ReportRow *r = &t->rows[i];
        if (!(r->search_seconds > 0)) continue;
        n += snprintf(buf + n, len - n, "%s%s %s", n ? "; " : "Wall time until the search's winner was known "
                      "(neural transfer included where there is one): ", r->method ? r->method : "?",
                      fmt_time(r->search_seconds, e, sizeof e));
    }
    if (n > 0 && (size_t)n + 1 < len) strcat(buf, ".");
    return buf;
}

/* --------------------------------------------------------------- markdown */

static void md_table(FILE *f, const ReportTask *t)
{
    char a[80], b[32], c[32], d[32], e[32];
    fprintf(f, "| method | %s |", t->metric_name);
    if (t->second_name) fprintf(f, " %s |", t->second_name);
    fprintf(f, " MFLOPs | params | wall time | architecture |\n|---|---:|");
    if (t->second_name) fprintf(f, "---:|");
    fprintf(f, "---:|---:|---:|---|\n");
    for (int i = 0; i < t->nrows; i++) {
        const ReportRow *r = &t->rows[i];
        fprintf(f, "| %s | %s |", r->method ? r->method : "?", fmt_row_metric(r, a, sizeof a));
        if (t->second_name) fprintf(f, " %s |", fmt2(r->second, b, sizeof b));
        fprintf(f, " %s | %s | %s | `%s` |\n", fmt2(r->mflops, c, sizeof c),
                fmt_params(r->params, d, sizeof d), fmt_time(r->seconds, e, sizeof e), r->arch);
    }
}

/* Front point j's label: "NTAA, budget 14 MFLOPs" or "WP&F". */
static const char *front_label(const ReportTask *t, int j, char *buf, size_t len)
{
    const char *m = t->front[j].method ? t->front[j].method : "?";
    if (isfinite(t->front_budget[j])) snprintf(buf, len, "%s, budget %g MFLOPs", m, t->front_budget[j]);
    else snprintf(buf, len, "%s", m);
    return buf;
}

/* The fronts: every point, then each NTAA point against the WP&F
 * architecture nearest in MFLOPs. */
static void md_front(FILE *f, const ReportTask *t)
{
    char a[96], b[32], c[96], l[96];
    if (t->nfront == 0) return;
    fprintf(f, "\nAccuracy-cost fronts (%s, mean ± standard deviation over the seeds):\n\n"
               "| point | MFLOPs | %s | architecture |\n|---|---:|---:|---|\n", t->metric_name, t->metric_name);
    for (int j = 0; j < t->nfront; j++)
        fprintf(f, "| %s | %s | %s | `%s` |\n", front_label(t, j, l, sizeof l), fmt2(t->front[j].mflops, b, sizeof b),
                fmt_row_metric(&t->front[j], a, sizeof a), t->front[j].arch);
    fprintf(f, "\nAt equal cost: each NTAA point against the WP&F architecture nearest in MFLOPs (NTAA - WP&F, "
               "95%% paired bootstrap interval over test images and seeds):\n\n"
               "| NTAA point | NTAA MFLOPs | WP&F MFLOPs | NTAA - WP&F |\n|---|---:|---:|---|\n");
    for (int j = 0; j < t->nfront; j++) {
        int k = report_front_nearest(t, j);
        if (k < 0) continue;
        Compare cmp = report_compare(&t->front[j], &t->front[k], t->lower_better);
        fprintf(f, "| %s | %s | %s | %s |\n", front_label(t, j, l, sizeof l), fmt2(t->front[j].mflops, b, sizeof b),
                fmt2(t->front[k].mflops, a, sizeof a), fmt_compare(&cmp, c, sizeof c));
    }
    fprintf(f, "\nAt equal accuracy: each NTAA point against the cheapest WP&F architecture at least as good as it "
               "(WP&F - NTAA a tie or a win by the same interval). NTAA wins when that architecture costs more "
               "MFLOPs or there is none, loses when it costs fewer:\n\n"
               "| NTAA point | NTAA MFLOPs | cheapest WP&F as good | its MFLOPs | WP&F - NTAA | NTAA |\n"
               "|---|---:|---|---:|---|---|\n");
    for (int j = 0; j < t->nfront; j++) {
        if (!isfinite(t->front_budget[j])) continue;
        int k = report_front_as_good(t, j);
        Compare cmp = k < 0 ? (Compare){NAN, NAN, NAN, "-"} : report_compare(&t->front[k], &t->front[j], t->lower_better);
        fprintf(f, "| %s | %s | %s%s%s | %s | %s | %s |\n", front_label(t, j, l, sizeof l),
                fmt2(t->front[j].mflops, b, sizeof b), k < 0 ? "" : "`", k < 0 ? "none" : t->front[k].arch,
                k < 0 ? "" : "`",
                k < 0 ? "-" : fmt2(t->front[k].mflops, a, sizeof a), fmt_compare(&cmp, c, sizeof c),
                report_word_equal_accuracy(t, j, k));
    }
}

static void md_task(FILE *f, const ReportTask *t)
{
    char a[32], b[48];
    fprintf(f, "\n## %s\n\n", t->task);
    md_table(f, t);
    int best = best_row(t);
    char text[2048];
    if (best >= 0)
        fprintf(f, "\nBest mean on %s (%s is better): **%s** (%s).\n", t->metric_name,
                t->lower_better ? "lower" : "higher", t->rows[best].method, fmt2(t->rows[best].metric, a, sizeof a));
    for (int i = 0; i < t->nrows; i++)
        if (compared(t, i, best)) fprintf(f, "\n%s\n", comparisons(text, sizeof text, t, i));
    if (*search_times(text, sizeof text, t)) fprintf(f, "\n%s\n", text);
    md_front(f, t);
    fprintf(f, "\nBudget: %s.\n", fmt_budget(t->budget_mflops, b, sizeof b));
    if (t->ngen <= 0) {
        fprintf(f, "\nNo search progress was recorded.\n");
        return;
    }
    fprintf(f, "\nSearch progress (%s of the population):\n\n", t->metric_name);
    for (int g = 0; g < t->ngen; g++)
        fprintf(f, "- generation %d: best %s, mean %s\n", g, fmt2(t->gen_best[g], a, sizeof a),
                fmt2(t->gen_mean[g], b, sizeof b));
}

static void md_summary(FILE *f, const ReportTask *tasks, int ntasks)
{
    const char *names[REPORT_MAX_METHODS];
    int nm = methods_of(tasks, ntasks, names);
    char a[32], c[96];
    fprintf(f, "\n## Summary\n\n| task | metric |");
    for (int m = 0; m < nm; m++) fprintf(f, " %s |", names[m]);
    fprintf(f, "\n|---|---|");
    for (int m = 0; m < nm; m++) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int t = 0; t < ntasks; t++) {
        fprintf(f, "| %s | %s |", tasks[t].task, tasks[t].metric_name);
        for (int m = 0; m < nm; m++) fprintf(f, " %s |", fmt2(metric_of(&tasks[t], names[m]), a, sizeof a));
        fprintf(f, "\n");
    }
    fprintf(f, "\nNTAA against each method: win, tie or loss by whether the 95%% paired bootstrap interval of "
               "NTAA - method (over test images and seeds) excludes zero; the difference and the interval in the "
               "metric's units.\n\n| task |");
    for (int m = 1; m < nm; m++) fprintf(f, " %s |", names[m]);
    fprintf(f, "\n|---|");
    for (int m = 1; m < nm; m++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int t = 0; t < ntasks; t++) {
        fprintf(f, "| %s |", tasks[t].task);
        for (int m = 1; m < nm; m++) fprintf(f, " %s |", compare_of(&tasks[t], names[0], names[m], c, sizeof c));
        fprintf(f, "\n");
    }
}

static void md_write(FILE *f, const char *intro, const ReportTask *tasks, int ntasks)
{
    fprintf(f, "# NTAA report\n\n%s\n", intro ? intro : "");
    for (int t = 0; t < ntasks; t++) md_task(f, &tasks[t]);
    md_summary(f, tasks, ntasks);
}

/* ------------------------------------------------------------ html text */

/* s with &, <, > (and ") escaped */
static void html_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void html_cell(FILE *f, const char *tag, const char *s)
{
    fprintf(f, "<%s>", tag);
    html_text(f, s);
    fprintf(f, "</%s>", tag);
}

static void html_table(FILE *f, const ReportTask *t)
{
    char a[80], b[32], c[32], d[32], e[32];
    int best = best_row(t);
    fprintf(f, "<table>\n<tr><th>method</th>");
    html_cell(f, "th", t->metric_name);
    if (t->second_name) html_cell(f, "th", t->second_name);
    fprintf(f, "<th>MFLOPs</th><th>params</th><th>wall time</th><th>architecture</th></tr>\n");
    for (int i = 0; i < t->nrows; i++) {
        const ReportRow *r = &t->rows[i];
        fprintf(f, "<tr%s>", i == best ? " class=\"best\"" : "");
        html_cell(f, "td", r->method ? r->method : "?");
        html_cell(f, "td", fmt_row_metric(r, a, sizeof a));
        if (t->second_name) html_cell(f, "td", fmt2(r->second, b, sizeof b));
        html_cell(f, "td", fmt2(r->mflops, c, sizeof c));
        html_cell(f, "td", fmt_params(r->params, d, sizeof d));
        html_cell(f, "td", fmt_time(r->seconds, e, sizeof e));
        fprintf(f, "<td class=\"arch\"><code>");
        html_text(f, r->arch);
        fprintf(f, "</code></td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

static void html_summary(FILE *f, const ReportTask *tasks, int ntasks)
{
    const char *names[REPORT_MAX_METHODS];
    int nm = methods_of(tasks, ntasks, names);
    char a[96];
    fprintf(f, "<h2>Summary</h2>\n<table>\n<tr><th>task</th><th>metric</th>");
    for (int m = 0; m < nm; m++) html_cell(f, "th", names[m]);
    fprintf(f, "</tr>\n");
    for (int t = 0; t < ntasks; t++) {
        int best = best_row(&tasks[t]);
        const char *bm = best >= 0 ? tasks[t].rows[best].method : NULL;
        fprintf(f, "<tr>");
        html_cell(f, "td", tasks[t].task);
        html_cell(f, "td", tasks[t].metric_name);
        for (int m = 0; m < nm; m++)
            fprintf(f, "<td%s>%s</td>", bm && strcmp(bm, names[m]) == 0 ? " class=\"best\"" : "",
                    fmt2(metric_of(&tasks[t], names[m]), a, sizeof a));
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n<p>NTAA against each method: win, tie or loss by whether the 95%% paired bootstrap "
               "interval of NTAA - method (over test images and seeds) excludes zero; the difference and the "
               "interval in the metric's units.</p>\n<table>\n<tr><th>task</th>");
    for (int m = 1; m < nm; m++) html_cell(f, "th", names[m]);
    fprintf(f, "</tr>\n");
    for (int t = 0; t < ntasks; t++) {
        fprintf(f, "<tr>");
        html_cell(f, "td", tasks[t].task);
        for (int m = 1; m < nm; m++) html_cell(f, "td", compare_of(&tasks[t], names[0], names[m], a, sizeof a));
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* ------------------------------------------------------------------- svg */

/* A chart: the data ranges [x0,x1] x [y0,y1] mapped into a w x h pixel box
 * with margins (left ml, right mr, top mt, bottom mb) for ticks and legend. */
typedef struct { double x0, x1, y0, y1; int w, h, ml, mr, mt, mb; } Plot;

#define PLOT_W 540
#define PLOT_H 320

static Plot plot_new(void)
{
    return (Plot){INFINITY, -INFINITY, INFINITY, -INFINITY, PLOT_W, PLOT_H, 64, 20, 40, 46};
}

/* data to pixels */
static double px(const Plot *p, double x) { return p->ml + (x - p->x0) / (p->x1 - p->x0) * (p->w - p->ml - p->mr); }
static double py(const Plot *p, double y) { return p->h - p->mb - (y - p->y0) / (p->y1 - p->y0) * (p->h - p->mt - p->mb); }

/* Grow [*lo,*hi] to hold v (non-finite values are ignored). */
static void range_add(double *lo, double *hi, double v)
{
    if (!isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* Make a range drawable: nothing seen -> [0,1]; one value -> +-5% of it (+-1
 * at 0); else widen by frac of the span on each side. */
static void range_fix(double *lo, double *hi, double frac)
{
    if (!(*lo <= *hi)) { *lo = 0; *hi = 1; return; }
    double span = *hi - *lo;
    if (span <= 1e-9 * fmax(1, fabs(*lo))) {
        double pad = *lo != 0 ? fabs(*lo) * 0.05 : 1;
        *lo -= pad, *hi += pad;
        return;
    }
    *lo -= span * frac, *hi += span * frac;
}

static void svg_open(FILE *f, int w, int h, const char *title)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>",
            w, h, w, h);
    html_text(f, title);
    fprintf(f, "</title>\n");
}

/* text at (x,y); anchor: start, middle or end; extra: more attributes or "" */
static void svg_text(FILE *f, double x, double y, const char *anchor, const char *extra, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" %s>", x, y, anchor, extra);
    html_text(f, s);
    fprintf(f, "</text>\n");
}

/* Tick values of [lo,hi] (lo < hi) into v[<=8] at a round step (1, 2 or 5
 * times a power of ten; at least 1 when integer); *dec: the decimals their
 * labels need. Returns the count. */
static int ticks(double lo, double hi, int integer, double v[8], int *dec)
{
    double raw = (hi - lo) / 5, p = pow(10, floor(log10(raw))), step = p;
    if (raw / p > 5) step = 10 * p;
    else if (raw / p > 2) step = 5 * p;
    else if (raw / p > 1) step = 2 * p;
    if (integer && step < 1) step = 1;
    *dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (*dec > 6) *dec = 6;
    double k0 = ceil(lo / step - 1e-9);
    int n = 0;
    for (; n < 8 && (k0 + n) * step <= hi + step * 1e-9; n++) {
        v[n] = (k0 + n) * step;
        if (fabs(v[n]) < step * 1e-6) v[n] = 0;  /* no "-0" */
    }
    return n;
}

/* The frame, grid, ticks with labels and the axis titles. */
static void plot_axes(FILE *f, const Plot *p, int xint, const char *xlabel, const char *ylabel)
{
    double v[8], bottom = p->h - p->mb, right = p->w - p->mr;
    char s[32];
    int dec, n = ticks(p->x0, p->x1, xint, v, &dec);
    for (int i = 0; i < n; i++) {
        double x = px(p, v[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", x, p->mt, x, bottom);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x, bottom, x, bottom + 5);
        snprintf(s, sizeof s, "%.*f", dec, v[i]);
        svg_text(f, x, bottom + 17, "middle", "", s);
    }
    n = ticks(p->y0, p->y1, 0, v, &dec);
    for (int i = 0; i < n; i++) {
        double y = py(p, v[i]);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", p->ml, y, right, y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", p->ml - 5, y, p->ml, y);
        snprintf(s, sizeof s, "%.*f", dec, v[i]);
        svg_text(f, p->ml - 8, y + 4, "end", "", s);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", p->ml, p->mt,
            p->w - p->ml - p->mr, p->h - p->mt - p->mb);
    svg_text(f, p->ml + (right - p->ml) / 2, p->h - 8, "middle", "", xlabel);
    char rot[64];
    double ym = p->mt + (bottom - p->mt) / 2;
    snprintf(rot, sizeof rot, "transform=\"rotate(-90 14 %.1f)\"", ym);
    svg_text(f, 14, ym, "middle", rot, ylabel);
}

/* One legend entry at (x,y): a short line (dash: dashed) and/or a dot, then the label. */
static void svg_legend(FILE *f, double x, double y, const char *color, int line, int dash, const char *label)
{
    if (line)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>", x, y,
                x + 20, y, color, dash ? " stroke-dasharray=\"5 3\"" : "");
    else fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x + 10, y, color);
    svg_text(f, x + 26, y + 4, "start", "", label);
}

/* A line through the finite points (i, v[i]), i < n, with a dot on each. */
static void svg_series(FILE *f, const Plot *p, const double *v, int n, const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) fprintf(f, "%.1f,%.1f ", px(p, i), py(p, v[i]));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px(p, i), py(p, v[i]), color);
    fprintf(f, "\n");
}

/* ---------------------------------------------------- figure: progress */

/* Best and mean fitness (metric units) against the generation. */
static void fig_progress(FILE *f, const ReportTask *t)
{
    Plot p = plot_new();
    p.x0 = 0, p.x1 = t->ngen - 1;
    range_fix(&p.x0, &p.x1, 0.03);
    for (int g = 0; g < t->ngen; g++) {
        range_add(&p.y0, &p.y1, t->gen_best[g]);
        range_add(&p.y0, &p.y1, t->gen_mean[g]);
    }
    range_fix(&p.y0, &p.y1, 0.05);
    char title[128];
    snprintf(title, sizeof title, "%.80s: search progress", t->task);
    svg_open(f, p.w, p.h, title);
    plot_axes(f, &p, 1, "generation", t->metric_name);
    svg_series(f, &p, t->gen_mean, t->ngen, "#ff7f0e");
    svg_series(f, &p, t->gen_best, t->ngen, "#1f77b4");
    svg_legend(f, p.ml, 18, "#1f77b4", 1, 0, "best");
    svg_legend(f, p.ml + 90, 18, "#ff7f0e", 1, 0, "mean");
    fprintf(f, "</svg>\n");
}

/* ------------------------------------------------- figure: population */

/* The index in t->pop of NTAA's chosen architecture, -1 if it is not there. */
static int winner_index(const ReportTask *t)
{
    char want[512], got[512];
    arch_format(&t->desc, &t->arch, want, sizeof want);
    for (int i = 0; i < t->npop; i++) {
        arch_format(&t->desc, &t->pop[i].arch, got, sizeof got);
        if (strcmp(want, got) == 0) return i;
    }
    return -1;
}

/* The Pareto front of t->pop into front[npop] (ascending MFLOPs); fitness is
 * negated for lower_better tasks, where the pop holds the metric itself. */
static int task_front(const ReportTask *t, int *front)
{
    Candidate *c = nta_malloc((size_t)t->npop * sizeof *c);
    memcpy(c, t->pop, (size_t)t->npop * sizeof *c);
    for (int i = 0; i < t->npop; i++) {
        if (t->lower_better) c[i].fitness = -c[i].fitness;
        if (!isfinite(c[i].mflops) || !isfinite(c[i].fitness)) c[i].fitness = NAN;  /* off the front */
    }
    int n = search_pareto(c, t->npop, front);
    free(c);
    return n;
}

/* The front as a step line (the best fitness available at each cost) and dots. */
static void svg_front(FILE *f, const Plot *p, const ReportTask *t, const int *front, int nf)
{
    fprintf(f, "<path fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" d=\"");
    for (int j = 0; j < nf; j++) {
        const Candidate *c = &t->pop[front[j]];
        if (j == 0) fprintf(f, "M%.1f %.1f", px(p, c->mflops), py(p, c->fitness));
        else fprintf(f, " H%.1f V%.1f", px(p, c->mflops), py(p, c->fitness));
    }
    fprintf(f, "\"/>\n");
    for (int j = 0; j < nf; j++) {
        const Candidate *c = &t->pop[front[j]];
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#d62728\"/>", px(p, c->mflops), py(p, c->fitness));
    }
    fprintf(f, "\n");
}

/* The last population: MFLOPs (x) vs fitness (y), front, budget, winner. */
static void fig_population(FILE *f, const ReportTask *t)
{
    int *front = nta_malloc((size_t)t->npop * sizeof *front), nf = task_front(t, front), win = winner_index(t);
    int budget = t->budget_mflops > 0 && isfinite(t->budget_mflops);
    Plot p = plot_new();
    for (int i = 0; i < t->npop; i++) {
        if (!isfinite(t->pop[i].fitness)) continue;
        range_add(&p.x0, &p.x1, t->pop[i].mflops);
        range_add(&p.y0, &p.y1, t->pop[i].fitness);
    }
    if (budget) range_add(&p.x0, &p.x1, t->budget_mflops);
    range_fix(&p.x0, &p.x1, 0.05);
    range_fix(&p.y0, &p.y1, 0.05);
    char title[128];
    snprintf(title, sizeof title, "%.80s: last population", t->task);
    svg_open(f, p.w, p.h, title);
    plot_axes(f, &p, 0, "MFLOPs", t->metric_name);
    if (budget) {
        double x = px(&p, t->budget_mflops);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" stroke-dasharray=\"5 3\"/>\n",
                x, p.mt, x, p.h - p.mb);
    }
    for (int i = 0; i < t->npop; i++)
        if (isfinite(t->pop[i].fitness) && isfinite(t->pop[i].mflops))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#9a9a9a\"/>", px(&p, t->pop[i].mflops),
                    py(&p, t->pop[i].fitness));
    fprintf(f, "\n");
    svg_front(f, &p, t, front, nf);
    if (win >= 0 && isfinite(t->pop[win].fitness))
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"2.5\"/>\n",
                px(&p, t->pop[win].mflops), py(&p, t->pop[win].fitness));
    svg_legend(f, p.ml, 18, "#9a9a9a", 0, 0, "population");
    svg_legend(f, p.ml + 105, 18, "#d62728", 1, 0, "Pareto front");
    if (budget) svg_legend(f, p.ml + 225, 18, "#555", 1, 1, "budget");
    fprintf(f, "<circle cx=\"%d\" cy=\"18\" r=\"6\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"2.5\"/>", p.ml + 325);
    svg_text(f, p.ml + 337, 22, "start", "", "NTAA's choice");
    fprintf(f, "</svg>\n");
    free(front);
}

/* ----------------------------------------------- figure: architecture */

#define ARCH_H   240      /* figure height, pixels */
#define ARCH_MID 122      /* the y of the data path */
#define ARCH_GAP 6        /* between blocks */
#define ARCH_FIX 54       /* width of stem, head and fc boxes */

/* A block's box: width grows with the kernel k, height with the expansion e. */
static int box_w(int k) { return 18 + 4 * k; }  /* k3: 30, k5: 38, k7: 46 */
static int box_h(int e) { return e > 13 ? 150 : 20 + 10 * e; }  /* e3: 50, e4: 60, e6: 80 */

/* Width of stage s's group: its active blocks, at least room for its label. */
static int stage_w(const Arch *a, const int *first, int s)
{
    int w = 0;
    for (int i = first[s]; i < first[s] + a->depth[s]; i++) w += box_w(a->k[i]) + ARCH_GAP;
    return w < 84 ? 84 : w;
}

/* A box of width w, height h centred on the data path, with one or two text lines. */
static void svg_box(FILE *f, int x, int w, int h, const char *fill, const char *l1, const char *l2)
{
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"3\" fill=\"%s\" stroke=\"#345\"/>\n", x,
            ARCH_MID - h / 2, w, h, fill);
    svg_text(f, x + w / 2.0, ARCH_MID + (l2 ? -2 : 3), "middle", "font-size=\"9\"", l1);
    if (l2) svg_text(f, x + w / 2.0, ARCH_MID + 9, "middle", "font-size=\"9\"", l2);
}

/* Stage s: a dashed group box with a label, its active blocks inside. Returns its width. */
static int svg_stage(FILE *f, const NetDesc *d, const Arch *a, const int *first, int s, int x)
{
    int w = stage_w(a, first, s), used = 0;
    char s1[48], s2[48];
    fprintf(f, "<rect x=\"%d\" y=\"26\" width=\"%d\" height=\"%d\" rx=\"4\" fill=\"#f6f6f6\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>\n",
            x - 3, w, ARCH_H - 52);
    snprintf(s1, sizeof s1, "stage %d: %d ch, /%d", s + 1, d->blk[first[s]].co, d->blk[first[s]].s);
    svg_text(f, x - 3 + w / 2.0, 40, "middle", "font-size=\"9\"", s1);
    snprintf(s2, sizeof s2, "%d of %d blocks", a->depth[s], first[s + 1] - first[s]);
    svg_text(f, x - 3 + w / 2.0, ARCH_H - 32, "middle", "font-size=\"9\"", s2);
    for (int i = first[s]; i < first[s] + a->depth[s]; i++) used += box_w(a->k[i]) + ARCH_GAP;
    int bx = x + (w - used) / 2;
    for (int i = first[s]; i < first[s] + a->depth[s]; i++) {
        snprintf(s1, sizeof s1, "k%d e%d", a->k[i], a->e[i]);
        svg_box(f, bx, box_w(a->k[i]), box_h(a->e[i]), "#cfe3f7", s1, NULL);
        bx += box_w(a->k[i]) + ARCH_GAP;
    }
    return w;
}

/* The chosen architecture: stem, each stage's active blocks, head, fc. */
static void fig_arch(FILE *f, const ReportTask *t)
{
    const NetDesc *d = &t->desc;
    const Arch *a = &t->arch;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first), w = 10 + 3 * ARCH_FIX + 2 * 12 + 10;
    for (int s = 0; s < ns; s++) w += stage_w(a, first, s) + 12;
    char title[128], s1[32], s2[32];
    snprintf(title, sizeof title, "%.80s: chosen architecture", t->task);
    svg_open(f, w, ARCH_H, title);
    fprintf(f, "<line x1=\"10\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#345\" stroke-width=\"1.5\"/>\n", ARCH_MID,
            w - 10, ARCH_MID);
    int x = 10;
    snprintf(s1, sizeof s1, "k%d, %d ch", d->stem_k, d->stem_c);
    svg_box(f, x, ARCH_FIX, 40, "#e8e8e8", "stem", s1);
    x += ARCH_FIX + 12;
    for (int s = 0; s < ns; s++) x += svg_stage(f, d, a, first, s, x) + 12;
    snprintf(s1, sizeof s1, "%d ch", d->head_c);
    svg_box(f, x, ARCH_FIX, 40, "#e8e8e8", "head 1x1", s1);
    x += ARCH_FIX + 12;
    snprintf(s2, sizeof s2, "%d out", d->classes);
    svg_box(f, x, ARCH_FIX, 40, "#e8e8e8", "pool, fc", s2);
    svg_text(f, 10, 16, "start", "font-size=\"10\"", "box width: kernel k, box height: expansion e");
    fprintf(f, "</svg>\n");
}

/* ------------------------------------------------------------------- html */

static const char *CSS =
    "body{font-family:sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th:first-child,td:first-child,td.arch{text-align:left}"
    "tr.best td,td.best{font-weight:bold;background:#eaf5ea}"
    "figure{margin:1.2em 0}figcaption{color:#555;font-size:90%}"
    "svg{max-width:100%;height:auto;font-family:sans-serif;font-size:11px;background:#fff}"
    "code{font-size:90%}";

/* A figure with its caption (plain text) */
static void html_figure(FILE *f, void (*draw)(FILE *, const ReportTask *), const ReportTask *t, const char *caption)
{
    fprintf(f, "<figure>\n");
    draw(f, t);
    fprintf(f, "<figcaption>");
    html_text(f, caption);
    fprintf(f, "</figcaption>\n</figure>\n");
}

static void html_front(FILE *f, const ReportTask *t)
{
    char a[96], b[32], c[96], l[96];
    fprintf(f, "<p>Accuracy-cost fronts (mean ± standard deviation over the seeds):</p>\n<table>\n<tr><th>point</th>"
               "<th>MFLOPs</th>");
    html_cell(f, "th", t->metric_name);
    fprintf(f, "<th>architecture</th></tr>\n");
    for (int j = 0; j < t->nfront; j++) {
        fprintf(f, "<tr>");
        html_cell(f, "td", front_label(t, j, l, sizeof l));
        html_cell(f, "td", fmt2(t->front[j].mflops, b, sizeof b));
        html_cell(f, "td", fmt_row_metric(&t->front[j], a, sizeof a));
        fprintf(f, "<td class=\"arch\"><code>");
        html_text(f, t->front[j].arch);
        fprintf(f, "</code></td></tr>\n");
    }
    fprintf(f, "</table>\n<p>At equal cost: each NTAA point against the WP&amp;F architecture nearest in MFLOPs "
               "(NTAA - WP&amp;F, 95%% paired bootstrap interval over test images and seeds):</p>\n<table>\n"
               "<tr><th>NTAA point</th><th>NTAA MFLOPs</th><th>WP&amp;F MFLOPs</th><th>NTAA - WP&amp;F</th></tr>\n");
    for (int j = 0; j < t->nfront; j++) {
        int k = report_front_nearest(t, j);
        if (k < 0) continue;
        Compare cmp = report_compare(&t->front[j], &t->front[k], t->lower_better);
        fprintf(f, "<tr>");
        html_cell(f, "td", front_label(t, j, l, sizeof l));
        html_cell(f, "td", fmt2(t->front[j].mflops, b, sizeof b));
        html_cell(f, "td", fmt2(t->front[k].mflops, a, sizeof a));
        html_cell(f, "td", fmt_compare(&cmp, c, sizeof c));
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* One method's points of the fronts (ntaa: the NTAA points, else WP&F's) as
 * a line by ascending MFLOPs, a dot on each, a bar of one standard deviation. */
static void svg_front_series(FILE *f, const Plot *p, const ReportTask *t, int ntaa, const char *color)
{
    int idx[REPORT_MAX_FRONT], n = 0;
    for (int j = 0; j < t->nfront; j++)
        if ((isfinite(t->front_budget[j]) != 0) == ntaa && isfinite(t->front[j].metric)) idx[n++] = j;
    for (int x = 1; x < n; x++)       /* insertion sort by MFLOPs */
        for (int y = x; y > 0 && t->front[idx[y]].mflops < t->front[idx[y - 1]].mflops; y--) {
            int tmp = idx[y];
            idx[y] = idx[y - 1], idx[y - 1] = tmp;
        }
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", px(p, t->front[idx[i]].mflops), py(p, t->front[idx[i]].metric));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < n; i++) {
        const ReportRow *r = &t->front[idx[i]];
        double x = px(p, r->mflops), sd = isfinite(r->sd) ? r->sd : 0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x,
                py(p, r->metric - sd), x, py(p, r->metric + sd), color);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, py(p, r->metric), color);
    }
    fprintf(f, "\n");
}

/* The fronts: test metric (mean, one standard deviation) against MFLOPs, NTAA and WP&F. */
static void fig_fronts(FILE *f, const ReportTask *t)
{
    Plot p = plot_new();
    for (int j = 0; j < t->nfront; j++) {
        const ReportRow *r = &t->front[j];
        double sd = isfinite(r->sd) ? r->sd : 0;
        range_add(&p.x0, &p.x1, r->mflops);
        range_add(&p.y0, &p.y1, r->metric - sd);
        range_add(&p.y0, &p.y1, r->metric + sd);
    }
    range_fix(&p.x0, &p.x1, 0.05);
    range_fix(&p.y0, &p.y1, 0.05);
    char title[128];
    snprintf(title, sizeof title, "%.80s: accuracy-cost fronts", t->task);
    svg_open(f, p.w, p.h, title);
    plot_axes(f, &p, 0, "MFLOPs", t->metric_name);
    svg_front_series(f, &p, t, 0, "#ff7f0e");
    svg_front_series(f, &p, t, 1, "#1f77b4");
    svg_legend(f, p.ml, 18, "#1f77b4", 1, 0, "NTAA (one point per budget)");
    svg_legend(f, p.ml + 200, 18, "#ff7f0e", 1, 0, "WP&F (fixed architectures)");
    fprintf(f, "</svg>\n");
}

static void html_task(FILE *f, const ReportTask *t)
{
    char a[32], b[48], cap[768];
    fprintf(f, "<h2>");
    html_text(f, t->task);
    fprintf(f, "</h2>\n");
    html_table(f, t);
    int best = best_row(t);
    if (best >= 0) {
        fprintf(f, "<p>Best mean on ");
        html_text(f, t->metric_name);
        fprintf(f, " (%s is better): <b>", t->lower_better ? "lower" : "higher");
        html_text(f, t->rows[best].method);
        fprintf(f, "</b> (%s).</p>\n", fmt2(t->rows[best].metric, a, sizeof a));
    }
    char text[2048];
    for (int i = 0; i < t->nrows; i++)
        if (compared(t, i, best)) {
            fprintf(f, "<p>");
            html_text(f, comparisons(text, sizeof text, t, i));
            fprintf(f, "</p>\n");
        }
    if (*search_times(text, sizeof text, t)) {
        fprintf(f, "<p>");
        html_text(f, text);
        fprintf(f, "</p>\n");
    }
    if (t->nfront > 0) {
        html_front(f, t);
        html_figure(f, fig_fronts, t, "The fronts: test metric (mean, a bar of one standard deviation over the seeds) "
                    "against MFLOPs, NTAA under each budget and WP&F of each fixed architecture.");
    }
    fprintf(f, "<p>Budget: %s.</p>\n", fmt_budget(t->budget_mflops, b, sizeof b));
    if (t->ngen > 0) html_figure(f, fig_progress, t, "Search progress: the best and mean fitness of each generation.");
    else fprintf(f, "<p>No search progress was recorded, so there is no progress figure.</p>\n");
    if (t->npop > 0)
        html_figure(f, fig_population, t,
                    "The last population: each candidate's MFLOPs and fitness, the Pareto front (red), "
                    "the budget (dashed) and NTAA's choice (green ring).");
    else fprintf(f, "<p>No population was recorded, so there is no population figure.</p>\n");
    arch_format(&t->desc, &t->arch, text, sizeof text);
    snprintf(cap, sizeof cap, "NTAA's architecture %.500s (%s MFLOPs).", text,
             fmt2(search_mflops(&t->desc, &t->arch), a, sizeof a));
    html_figure(f, fig_arch, t, cap);
}

static void html_write(FILE *f, const char *intro, const ReportTask *tasks, int ntasks)
{
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>NTAA report</title>\n"
               "<style>%s</style>\n</head>\n<body>\n<h1>NTAA report</h1>\n<p>", CSS);
    html_text(f, intro);
    fprintf(f, "</p>\n");
    for (int t = 0; t < ntasks; t++) html_task(f, &tasks[t]);
    html_summary(f, tasks, ntasks);
    fprintf(f, "</body>\n</html>\n");
}

/* ------------------------------------------------------------------ files */

typedef void (*ReportWriter)(FILE *f, const char *intro, const ReportTask *tasks, int ntasks);

/* Write path through a temporary name and a rename; -1 and a message naming
 * the file on failure. */
static int write_file(const char *path, ReportWriter fn, const char *intro, const ReportTask *tasks,
                      int ntasks, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (ok) {
        fn(f, intro, tasks, ntasks);
        ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    }
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "cannot write report '%s': %s", path, strerror(e));
        if (f) remove(tmp);
        return -1;
    }
    return 0;
}

int report_write(const char *md_path, const char *html_path, const char *intro,
                 const ReportTask *tasks, int ntasks, char *err, size_t errlen)
{
    if (write_file(md_path, md_write, intro, tasks, ntasks, err, errlen) != 0) return -1;
    return write_file(html_path, html_write, intro, tasks, ntasks, err, errlen);
}
