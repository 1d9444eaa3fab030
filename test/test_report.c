/* test/test_report.c: the Pareto front of a hand-made population (dominated
 * points left out, ascending MFLOPs, one of exact duplicates), and report_write
 * on two fake tasks: both files are written, hold every task, method and
 * budget, the HTML has three balanced SVG figures per task and no "nan"; an
 * unwritable path is reported by name. */
#define _POSIX_C_SOURCE 200809L
#include "../nta.h"
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
        CHECK(count(s, "<svg") == 7 && count(s, "</svg>") == 7, "html: %d svg with an empty task", count(s, "<svg"));
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
    }
}
