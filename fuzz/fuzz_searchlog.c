/* fuzz/fuzz_searchlog.c: the search log that `nta adapt --resume 1` reads
 * back (ntaa_log_read), against the default supernet for 28x28x1 images and
 * a search of population 4, at most 3 generations, budget 20 MFLOPs. The
 * input is the whole log; its first line must be FUZZ_SEARCHLOG_HEADER
 * (fuzz.h) for the parser to read on.
 * Invariants: the result is -1 with a message, 0, or 1 with a whole
 * population of the last complete generation: gen within --generations,
 * fitness finite and fittest first, every architecture inside the supernet
 * and the budget, with the costs of its own standalone network. */
#include "../nta.h"
#include "../ntaa.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static NetDesc d;
    if (!d.nblocks) {
        Space sp = space_default();
        d = net_supernet(28, 28, 1, 10, &sp, 4);
    }
    SearchCfg sc = {.population = 4, .generations = 3, .parents = 2, .mutants = 2, .crosses = 2,
                    .mutate_prob = 0.1f, .budget_mflops = 20, .seed = 1};
    SearchState st = {0};
    char err[1024] = "";
    int rc = ntaa_log_read(fuzz_write(0, data, size), &d, FUZZ_SEARCHLOG_HEADER, &sc, &st, err, sizeof err);
    FUZZ_CHECK(rc >= -1 && rc <= 1);
    if (rc == -1) FUZZ_CHECK(err[0]);
    if (rc == 1) {
        FUZZ_CHECK(st.n == sc.population && st.gen >= 0 && st.gen <= sc.generations && st.pop);
        for (int i = 0; i < st.n; i++) {
            const Candidate *c = &st.pop[i];
            FUZZ_CHECK(isfinite(c->fitness) && (i == 0 || c->fitness <= st.pop[i - 1].fitness));
            char text[512], why[512];
            Arch back;
            arch_format(&d, &c->arch, text, sizeof text);
            FUZZ_CHECK(arch_parse(&d, text, &back, why, sizeof why) == 0 && !memcmp(&back, &c->arch, sizeof back));
            NetDesc sd = arch_standalone(&d, &c->arch);
            FUZZ_CHECK(c->mflops == 1e-6 * net_flops(&sd) && c->params == net_params(&sd) &&
                       c->mflops <= sc.budget_mflops);
        }
    }
    free(st.pop);
    return 0;
}
