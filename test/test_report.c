/* test/test_report.c: the Pareto front of a hand-made population (dominated
 * points left out, ascending MFLOPs, one of exact duplicates), and report_write
 * on two fake tasks: both files are written, hold every task, method and
 * budget, the HTML has three balanced SVG figures per task and no "nan"; an
 * unwritable path is reported by name. */
#define _POSIX_C_SOURCE 200809L
#include "../report.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* occurrences of needle in hay */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void test_pareto(void)
{
    /* (MFLOPs, fitness): 3 dominated by 0, 4 duplicates 0, 5 and 6 dominated at
     * equal MFLOPs / equal fitness; the front is 1, 0, 2, 7 */
    double mf[8] = {10, 5, 20, 15, 10, 5, 25, 30}, fit[8] = {50, 40, 60, 45, 50, 30, 60, 70};
    Candidate pop[8];
    memset(pop, 0, sizeof pop);
    for (int i = 0; i < 8; i++) pop[i].mflops = mf[i], pop[i].fitness = fit[i];
    int front[8], n = search_pareto(pop, 8, front);
    CHECK(n == 4, "pareto: %d points on the front, want 4", n);
    if (n == 4) {
        CHECK(front[0] == 1 && front[2] == 2 && front[3] == 7, "pareto: front %d %d %d %d", front[0], front[1],
              front[2], front[3]);
        CHECK(front[1] == 0 || front[1] == 4, "pareto: one of the duplicates 0, 4 (got %d)", front[1]);
    }
    for (int j = 1; j < n; j++)
        CHECK(pop[front[j - 1]].mflops < pop[front[j]].mflops, "pareto: front not by ascending MFLOPs at %d", j);
    CHECK(search_pareto(pop, 0, front) == 0, "pareto: empty population");
    for (int i = 0; i < 8; i++) pop[i].mflops = 3, pop[i].fitness = 1;
    CHECK(search_pareto(pop, 8, front) == 1, "pareto: all equal gives one point");
    pop[5].fitness = NAN;
    pop[6].fitness = 2;
    n = search_pareto(pop, 8, front);
    CHECK(n == 1 && front[0] == 6, "pareto: a fitter point at equal cost (n %d)", n);
}

/* report_bootstrap against cases computed by hand. */
static void test_bootstrap(void)
{
    double diff, lo, hi;
    /* paired: b varies wildly, a = b + 2.5 on every item of every run: the
     * difference is 2.5 in every replicate, so the interval is [2.5, 2.5] (an
     * unpaired bootstrap would be wide) */
    float a[800], b[800];
    for (int i = 0; i < 800; i++) b[i] = (float)(i % 7 * 13), a[i] = b[i] + 2.5f;
    report_bootstrap(a, b, 2, 400, 2000, 1, &diff, &lo, &hi);
    CHECK(fabs(diff - 2.5) < 1e-9 && fabs(lo - 2.5) < 1e-6 && fabs(hi - 2.5) < 1e-6,
          "bootstrap, paired constant gap: %g [%g, %g], want 2.5 [2.5, 2.5]", diff, lo, hi);
    /* two items, differences 0 and 1, one run: a replicate's mean is 0, 0.5 or
     * 1 with odds 1/4, 1/2, 1/4, so the 2.5% and 97.5% points are 0 and 1 */
    float a2[2] = {5, 6}, b2[2] = {5, 5};
    report_bootstrap(a2, b2, 1, 2, 2000, 2, &diff, &lo, &hi);
    CHECK(diff == 0.5 && lo == 0 && hi == 1, "bootstrap, two items: %g [%g, %g], want 0.5 [0, 1]", diff, lo, hi);
    /* seeds are resampled too: two runs whose every item differs by 0 and by 2;
     * resampling images alone would give [1, 1], resampling runs gives 0, 1
     * or 2 with odds 1/4, 1/2, 1/4: [0, 2] */
    float a3[20], b3[20];
    for (int i = 0; i < 20; i++) b3[i] = 1, a3[i] = i < 10 ? 1 : 3;
    report_bootstrap(a3, b3, 2, 10, 2000, 3, &diff, &lo, &hi);
    CHECK(diff == 1 && lo == 0 && hi == 2, "bootstrap, two seeds: %g [%g, %g], want 1 [0, 2]", diff, lo, hi);
    /* 400 items, half right for a only (difference 100), half equal: mean 50,
     * standard error 50 / sqrt(400) = 2.5, so about 50 -+ 1.96 * 2.5 = [45.1, 54.9] */
    for (int i = 0; i < 400; i++) b[i] = 0, a[i] = i % 2 ? 100 : 0;
    report_bootstrap(a, b, 1, 400, 2000, 4, &diff, &lo, &hi);
    CHECK(diff == 50 && fabs(lo - 45.1) < 0.7 && fabs(hi - 54.9) < 0.7,
          "bootstrap, 400 coin flips: %g [%g, %g], want 50 [45.1, 54.9] within 0.7", diff, lo, hi);
    /* the words, and lower-is-better metrics */
    ReportRow ra = {.runs = 1, .nitems = 400, .items = a}, rb = {.runs = 1, .nitems = 400, .items = b};
    Compare c = report_compare(&ra, &rb, 0);
    CHECK(!strcmp(c.word, "win") && c.lo > 0, "compare: a clear gain is a win (%s)", c.word);
    c = report_compare(&ra, &rb, 1);
    CHECK(!strcmp(c.word, "loss"), "compare: a clear gain in an error is a loss (%s)", c.word);
    c = report_compare(&rb, &ra, 0);
    CHECK(!strcmp(c.word, "loss") && c.hi < 0, "compare: a clear drop is a loss (%s)", c.word);
    ReportRow r2a = {.runs = 1, .nitems = 2, .items = a2}, r2b = {.runs = 1, .nitems = 2, .items = b2};
    c = report_compare(&r2a, &r2b, 0);
    CHECK(!strcmp(c.word, "tie"), "compare: an interval that reaches zero is a tie (%s)", c.word);
    rb.nitems = 399;
    c = report_compare(&ra, &rb, 0);
    CHECK(!strcmp(c.word, "-") && isnan(c.lo), "compare: different test items give no interval (%s)", c.word);
}

/* The fronts' pairings: nearest in MFLOPs (equal cost) and cheapest as good
 * (equal accuracy), on points whose items make every word certain. */
static void test_front_pairs(void)
{
    enum { N = 40 };
    float right[N], half[N], wrong[N];
    for (int i = 0; i < N; i++) right[i] = 100, half[i] = i % 2 ? 100 : 0, wrong[i] = 0;
    ReportTask t = {.nfront = 6};
    struct { double mflops, budget; float *items; } p[6] = {
        {5, 5, right}, {9, 9, wrong}, {12, 12, half},   /* NTAA points */
        {3, NAN, wrong}, {8, NAN, right}, {20, NAN, wrong}, /* WP&F points */
    };
    for (int j = 0; j < 6; j++) {
        t.front[j] = (ReportRow){.mflops = p[j].mflops, .runs = 1, .nitems = N, .items = p[j].items};
        t.front_budget[j] = p[j].budget;
    }
    CHECK(report_front_nearest(&t, 0) == 3 && report_front_nearest(&t, 1) == 4 && report_front_nearest(&t, 2) == 4 &&
          report_front_nearest(&t, 3) == -1, "fronts: the WP&F point nearest in MFLOPs");
    /* 5 MFLOPs, all right: only the 8-MFLOPs WP&F is as good (a tie), and it costs more: a win */
    int k = report_front_as_good(&t, 0);
    CHECK(k == 4 && !strcmp(report_word_equal_accuracy(&t, 0, k), "win"), "equal accuracy: matched by a dearer WP&F (%d)", k);
    /* 9 MFLOPs, all wrong: every WP&F is as good; the cheapest (3) costs less: a loss */
    k = report_front_as_good(&t, 1);
    CHECK(k == 3 && !strcmp(report_word_equal_accuracy(&t, 1, k), "loss"), "equal accuracy: a cheaper WP&F as good (%d)", k);
    /* 12 MFLOPs, half right: the all-wrong WP&F points are clearly worse and the all-right 8 better,
     * so the 8 is the one as good, and cheaper: a loss; made all wrong, none is as good: a win */
    k = report_front_as_good(&t, 2);
    CHECK(k == 4 && !strcmp(report_word_equal_accuracy(&t, 2, k), "loss"), "equal accuracy: the better 8 (%d)", k);
    t.front[4].items = wrong;
    k = report_front_as_good(&t, 2);
    CHECK(k == -1 && !strcmp(report_word_equal_accuracy(&t, 2, k), "win"), "equal accuracy: none as good (%d)", k);
    CHECK(report_front_as_good(&t, 3) == -1, "equal accuracy: a WP&F point is not matched");
}

/* A fake task: search progress of ngen generations, a population of npop. */
static ReportTask fake_task(const char *name, int lower_better, const NetDesc *d, int ngen, int npop, Rng *r)
{
    ReportTask t;
    memset(&t, 0, sizeof t);
    snprintf(t.task, sizeof t.task, "%s", name);
    t.metric_name = lower_better ? "MAE (degrees)" : "accuracy %";
    t.second_name = lower_better ? "rank-1 %" : NULL;
    t.lower_better = lower_better;
    t.budget_mflops = 2.5;
    t.desc = *d;
    t.arch = arch_smallest(d);
    const char *methods[4] = {"NTAA", "WP&F", "random search", "from scratch"};
    Arch big = arch_largest(d);
    t.nrows = 4;
    for (int i = 0; i < 4; i++) {
        ReportRow *w = &t.rows[i];
        w->method = methods[i];
        w->metric = (lower_better ? 5.0 : 90.0) + i * 0.5;
        w->second = lower_better && i != 1 ? 60.0 + i : NAN;
        w->seconds = lower_better && i == 2 ? NAN : 42.0 + 100 * i;
        w->mflops = search_mflops(d, i == 3 ? &big : &t.arch);
        w->params = net_params(d);
        arch_format(d, i == 3 ? &big : &t.arch, w->arch, sizeof w->arch);
        if (npop == 0) continue;                  /* the empty task kept no items: no intervals */
        w->runs = 2, w->nitems = 60, w->items = nta_malloc(120 * sizeof(float));
        for (int j = 0; j < 120; j++) w->items[j] = (float)(rng_below(r, 100) < 80u + 5 * i ? 100 : 0);
    }
    /* fronts: NTAA under budgets 5 and 9, WP&F of two fixed architectures
     * (3 and 8 MFLOPs); a task with search progress but no population has none */
    double fm[4] = {4.5, 8.5, 3, 8}, fb[4] = {5, 9, NAN, NAN};
    for (int j = 0; npop > 0 && ngen > 3 && j < 4; j++) {
        ReportRow *w = &t.front[t.nfront];
        *w = t.rows[j < 2 ? 0 : 1];
        w->mflops = fm[j], w->metric = 80 + j, w->sd = 0.5;
        w->items = nta_malloc(120 * sizeof(float));
        for (int k = 0; k < 120; k++) w->items[k] = (float)(rng_below(r, 100) < 80u + 4 * j ? 100 : 0);
        t.front_budget[t.nfront++] = fb[j];
    }
    t.ngen = ngen;
    t.gen_best = nta_calloc((size_t)(ngen > 0 ? ngen : 1), sizeof(double));
    t.gen_mean = nta_calloc((size_t)(ngen > 0 ? ngen : 1), sizeof(double));
    for (int g = 0; g < ngen; g++) t.gen_best[g] = 80 + g, t.gen_mean[g] = g == 1 ? NAN : 70 + g;
    t.npop = npop;
    t.pop = nta_calloc((size_t)(npop > 0 ? npop : 1), sizeof(Candidate));
    for (int i = 0; i < npop; i++) {
        t.pop[i].arch = i == 0 ? t.arch : arch_random(d, r);
        t.pop[i].mflops = search_mflops(d, &t.pop[i].arch);
        t.pop[i].fitness = lower_better ? 5 + rng_uniform(r) : 80 + 10 * rng_uniform(r);
    }
    return t;
}

static char *slurp(const char *path)
{
    char err[256];
    size_t len;
    char *s = (char *)nta_read_file(path, 1 << 24, &len, err, sizeof err);
    CHECK(s != NULL, "%s", err);
    return s;
}

static void check_files(const char *md_path, const char *html_path, const ReportTask *tasks, int ntasks)
{
    char *md = slurp(md_path), *html = slurp(html_path);
    if (!md || !html) { free(md); free(html); return; }
    for (int t = 0; t < ntasks; t++) {
        CHECK(strstr(md, tasks[t].task) != NULL, "md: task %s missing", tasks[t].task);
        for (int r = 0; r < tasks[t].nrows; r++)
            CHECK(strstr(md, tasks[t].rows[r].method) != NULL, "md: method %s missing", tasks[t].rows[r].method);
    }
    CHECK(strstr(md, "2.50 MFLOPs") != NULL, "md: budget missing");
    CHECK(strstr(md, "## Summary") != NULL, "md: summary missing");
    CHECK(count(md, "NTAA - each other method") == ntasks && count(md, "95% paired bootstrap interval") >= ntasks,
          "md: every task compares NTAA with the others");
    CHECK(strstr(md, "NTAA against each method") && (strstr(md, "| tie, ") || strstr(md, "| loss, ")),
          "md: the summary's comparisons carry a word and an interval");
    CHECK(count(md, "At equal cost") == 1 && strstr(md, "| NTAA, budget 5 MFLOPs | 4.50 | 3.00 | ") &&
              strstr(md, "| NTAA, budget 9 MFLOPs | 8.50 | 8.00 | "),
          "md: the fronts' table pairs each NTAA point with the WP&F architecture nearest in MFLOPs");
    CHECK(count(md, "At equal accuracy") == 1 && count(md, "| NTAA, budget 5 MFLOPs |") == 3,
          "md: the fronts' second table matches each NTAA point with the cheapest WP&F architecture as good");
    CHECK(count(html, "accuracy-cost fronts") == 1, "html: one fronts figure");
    CHECK(strstr(md, "**from scratch**") && strstr(md, "**NTAA**") && !strstr(md, "**WP&F**"), "md: best method wrong");
    CHECK(strstr(md, "| 42.0s |") && strstr(md, "| 2m22s |") && strstr(md, "| - |"), "md: wall times");
    CHECK(strstr(html, ">fashion<") && strstr(html, ">pose &lt;angle&gt;<") && !strstr(html, "<angle>"),
          "html: task names missing or not escaped");
    CHECK(strstr(html, "WP&amp;F") != NULL && strstr(html, "WP&F") == NULL, "html: method not escaped");
    int svg = count(html, "<svg"), end = count(html, "</svg>");
    CHECK(svg >= 3 * ntasks && svg == end, "html: %d <svg and %d </svg> for %d tasks", svg, end, ntasks);
    CHECK(count(html, "nan") == 0 && count(html, "NaN") == 0 && count(html, "inf") == 0, "html: a nan or inf");
    CHECK(count(md, "nan") == 0, "md: a nan");
    CHECK(strstr(html, "<script") == NULL && strstr(html, "http://www.w3.org/2000/svg") != NULL &&
              count(html, "href") == 0 && count(html, "src=") == 0,
          "html: not self-contained");
    CHECK(count(html, "k3 e3") > 0 && strstr(html, "Pareto front") != NULL, "html: figures incomplete");
    free(md);
    free(html);
}

void test_report(void)
{
    test_pareto();
    test_bootstrap();
    test_front_pairs();
    Space sp = space_default();
    NetDesc d = net_supernet(28, 28, 1, 10, &sp, 4);
    Rng r;
    rng_seed(&r, 11);
    ReportTask tasks[3] = {fake_task("fashion", 0, &d, 5, 12, &r), fake_task("pose <angle>", 1, &d, 3, 9, &r),
                           fake_task("empty", 0, &d, 0, 0, &r)};
    tasks[1].pop[3].fitness = tasks[1].pop[4].fitness;  /* a duplicate fitness */
    char dir[] = "/tmp/nta-report-XXXXXX", md[256], html[256], err[256] = "";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(md, sizeof md, "%s/report.md", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    CHECK(report_write(md, html, "Intro: 2 tasks & a check.", tasks, 2, err, sizeof err) == 0, "report: %s", err);
    check_files(md, html, tasks, 2);
    /* a task without progress or population: the figures are skipped */
    CHECK(report_write(md, html, "three", tasks, 3, err, sizeof err) == 0, "report: %s", err);
    char *s = slurp(html);
    if (s) {
        CHECK(count(s, "<svg") == 8 && count(s, "</svg>") == 8, "html: %d svg with an empty task", count(s, "<svg"));
        CHECK(strstr(s, "No population was recorded") != NULL, "html: the empty task is not explained");
        free(s);
    }
    const char *bad = "/nonexistent/dir/r.md";
    err[0] = 0;
    CHECK(report_write(bad, html, "x", tasks, 2, err, sizeof err) == -1 && strstr(err, bad), "unwritable: '%s'", err);
    remove(md);
    remove(html);
    CHECK(rmdir(dir) == 0, "report: temporary files left in %s", dir);
    for (int t = 0; t < 3; t++) {
        free(tasks[t].gen_best);
        free(tasks[t].gen_mean);
        free(tasks[t].pop);
        for (int r = 0; r < tasks[t].nrows; r++) free(tasks[t].rows[r].items);
        for (int r = 0; r < tasks[t].nfront; r++) free(tasks[t].front[r].items);
    }
}
