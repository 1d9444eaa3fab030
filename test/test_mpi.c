/* test_mpi.c: several processes (dist.c) under mpirun.
 *
 * The claim: R ranks (./nta-mpi under mpirun) compute the same bits as one
 * process (./nta) with --shards R, since each shard has its own batchnorm
 * statistics and draws whichever process runs it, and the all-reduce adds
 * the shards in a fixed order. So the checks compare files with cmp: the
 * checkpoint of a pretrain or train, the search log and model of an adapt;
 * also with 4 ranks, with 2 ranks of 2 shards, across a resume on another
 * number of ranks, and with the CUDA backend on the emulator (where NCCL
 * would run, the MPI path in its place). Then: a rank killed mid-run ends
 * the run with an error, not a hang; a plain nta under mpirun refuses.
 *
 * Needs Open MPI's mpirun (make setup installs openmpi-bin) and ./nta-mpi
 * (built where mpicc is found); else the checks print "skipped: ...". Every
 * rank runs 1 thread; ranks may outnumber the cores (--oversubscribe). */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run as root here; the settings are Open MPI's (no single-copy shared
 * memory: containers often forbid the ptrace it needs). */
#define MPIRUN "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none " \
               "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive " \
               "timeout 300 mpirun --oversubscribe"
#define ONE "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive timeout 300"

static char dir[] = "/tmp/nta-mpi-XXXXXX";

/* Whether Open MPI's mpirun and ./nta-mpi are here; else one skipped line. */
static int have_mpi(void)
{
    if (test_run("mpirun --version 2>/dev/null | grep -q 'Open MPI'") != 0) {
        test_skipped++;
        printf("skipped: mpi: needs Open MPI's mpirun (make setup installs openmpi-bin libopenmpi-dev)\n");
        return 0;
    }
    if (access("./nta-mpi", X_OK) || access("./nta-mpi-emu", X_OK)) {
        test_skipped++;
        printf("skipped: mpi: needs ./nta-mpi and ./nta-mpi-emu (make builds them where mpicc is found)\n");
        return 0;
    }
    return 1;
}

/* sh command (printf-style), 0 on exit status 0 */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return test_run(cmd);
}

/* A plain nta started by mpirun would run the whole job on every rank: it says so. */
static void plain_refuses(void)
{
    int rc = sh("OMPI_COMM_WORLD_SIZE=2 ./nta train --epochs 1 > %s/plain.out 2>&1; test $? = 1 && "
                "grep -q 'this nta has no MPI' %s/plain.out && grep -q 'nta-mpi' %s/plain.out", dir, dir, dir);
    CHECK(rc == 0, "./nta under mpirun (2 ranks) exits 1 naming nta-mpi (see %s/plain.out)", dir);
}

/* pretrain and train: R ranks == one process with --shards R, byte for byte */
static void train_ranks(const char *data)
{
    char sup[1200];
    snprintf(sup, sizeof sup, "%s --depth 2 --min-depth 1 --kernels 3,5 --expands 2,3 --calib 2", data);
    int rc = sh(ONE " ./nta pretrain %s --shards 2 -o %s/p1.nta > %s/p1.out 2>&1 && "
                MPIRUN " -np 2 ./nta-mpi pretrain %s -o %s/p2.nta > %s/p2.out 2>&1", sup, dir, dir, sup, dir, dir);
    CHECK(rc == 0, "pretrain runs on 1 process (--shards 2) and on 2 ranks (see %s/p1.out, p2.out)", dir);
    CHECK(sh("cmp -s %s/p1.nta %s/p2.nta", dir, dir) == 0,
          "pretrain on 2 ranks writes the checkpoint of one process with --shards 2, byte for byte");
    CHECK(sh("head -n 1 %s/p2.out | grep -q '^mpi: 2 ranks on 1 host' && "
             "grep -q '^mpi: backend per rank: cpu on all 2 ranks, 1 threads each' %s/p2.out", dir, dir) == 0,
          "the first line says 2 ranks; then the backend per rank (see %s/p2.out)", dir);
    CHECK(sh(ONE " ./nta pretrain %s -o %s/p0.nta > /dev/null 2>&1 && ! cmp -s %s/p0.nta %s/p1.nta", sup, dir, dir,
             dir) == 0, "--shards 2 is not --shards 1 (per-shard batchnorm): the comparison above can fail");
    /* 4 ranks; 2 ranks of 2 shards each */
    rc = sh(ONE " ./nta pretrain %s --shards 4 -o %s/q1.nta > /dev/null 2>&1 && "
            MPIRUN " -np 4 ./nta-mpi pretrain %s -o %s/q4.nta > %s/q4.out 2>&1 && "
            MPIRUN " -np 2 ./nta-mpi pretrain %s --shards 4 -o %s/q2.nta > %s/q2.out 2>&1 && "
            "cmp -s %s/q1.nta %s/q4.nta && cmp -s %s/q1.nta %s/q2.nta", sup, dir, sup, dir, dir, sup, dir, dir, dir,
            dir, dir, dir);
    CHECK(rc == 0, "4 shards: 1 process, 4 ranks and 2 ranks of 2 shards write the same checkpoint (see %s/q*.out)",
          dir);
    /* resume on another number of ranks: the checkpoint's shards are kept */
    rc = sh(MPIRUN " -np 2 ./nta-mpi pretrain %s --stop-after 1 -o %s/r.nta > %s/r.out 2>&1 && "
            ONE " ./nta pretrain %s --resume %s/r.nta -o %s/r1.nta > %s/r1.out 2>&1 && cmp -s %s/p1.nta %s/r1.nta",
            sup, dir, dir, sup, dir, dir, dir, dir, dir);
    CHECK(rc == 0, "a 2-rank pretrain stopped after epoch 1 and resumed by one process ends as the unbroken run, "
          "byte for byte (see %s/r1.out)", dir);
    rc = sh(MPIRUN " -np 3 ./nta-mpi pretrain %s --resume %s/r.nta -o %s/r3.nta > %s/r3.out 2>&1; test $? != 0 && "
            "grep -q 'give --shards a multiple of 3, or run on a number of ranks that divides 2' %s/r3.out", sup, dir, dir, dir, dir);
    CHECK(rc == 0, "resuming 2 shards on 3 ranks is refused with a message (see %s/r3.out)", dir);
    /* train: the reference network (no sampling rule) */
    rc = sh(ONE " ./nta train %s --epochs 1 --shards 2 -o %s/t1.nta > %s/t1.out 2>&1 && "
            MPIRUN " -np 2 ./nta-mpi train %s --epochs 1 -o %s/t2.nta > %s/t2.out 2>&1 && cmp -s %s/t1.nta %s/t2.nta",
            data, dir, dir, data, dir, dir, dir, dir);
    CHECK(rc == 0, "train on 2 ranks writes the checkpoint of one process with --shards 2 (see %s/t2.out)", dir);
}

/* adapt: neural transfer and finetuning data-parallel, the search's
 * fitness evaluations split across the ranks: the same log and winner */
static void search_ranks(const char *img, const char *lab)
{
    char task[2048];
    snprintf(task, sizeof task, "--task classify:idx:%s,%s --train-images 64 --val 16 --calib 2 --batch 16 "
             "--transfer-epochs 1 --finetune-epochs 1 --population 5 --generations 2 --parents 2 --mutants 2 "
             "--crosses 2 --budget-mflops 20 --seeds 1 --threads 1", img, lab);
    int rc = sh(ONE " ./nta adapt %s/p1.nta %s --shards 2 --log %s/s1.log -o %s/a1.nta > %s/a1.out 2>&1 && "
                MPIRUN " -np 2 ./nta-mpi adapt %s/p1.nta %s --log %s/s2.log -o %s/a2.nta > %s/a2.out 2>&1",
                dir, task, dir, dir, dir, dir, task, dir, dir, dir);
    CHECK(rc == 0, "adapt runs on 1 process (--shards 2) and 2 ranks (see %s/a1.out, a2.out)", dir);
    CHECK(sh("test $(grep -vc '^#' %s/s2.log) = 15 && cmp -s %s/s1.log %s/s2.log && cmp -s %s/a1.nta %s/a2.nta && "
             "test \"$(grep '^NTAA:' %s/a1.out | sed 's/; [0-9hms]*; architecture/ architecture/')\" = "
             "\"$(grep '^NTAA:' %s/a2.out | sed 's/; [0-9hms]*; architecture/ architecture/')\"",
             dir, dir, dir, dir, dir, dir, dir) == 0,
          "a 2-rank adapt writes the same search log (3 generations of 5), winner and model as 1 process");
    CHECK(sh("ls %s/a2.nta.tmp* %s/s2.log.tmp* 2>/dev/null | grep -q . ; test $? = 1", dir, dir) == 0,
          "no temporary files are left behind");
    /* a latency budget: every rank searches with rank 0's table (here the cached one of the first run) */
    rc = sh("XDG_CACHE_HOME=%s/cache " ONE " ./nta adapt %s/p1.nta %s --budget-mflops 0 --budget-ms 50 --shards 2 "
            "--log %s/b1.log -o %s/b1.nta > %s/b1.out 2>&1 && XDG_CACHE_HOME=%s/cache " MPIRUN " -np 2 ./nta-mpi adapt "
            "%s/p1.nta %s --budget-mflops 0 --budget-ms 50 --log %s/b2.log -o %s/b2.nta > %s/b2.out 2>&1 && "
            "grep -q 'latency table: .*(cached)' %s/b2.out && cmp -s %s/b1.log %s/b2.log && cmp -s %s/b1.nta %s/b2.nta",
            dir, dir, task, dir, dir, dir, dir, dir, task, dir, dir, dir, dir, dir, dir, dir, dir);
    CHECK(rc == 0, "adapt --budget-ms on 2 ranks searches rank 0's latency table: the log and model of one process "
          "(see %s/b2.out)", dir);
    rc = sh(MPIRUN " -np 2 ./nta-mpi eval %s/p1.nta --data idx:%s,%s > %s/ev.out 2>&1; test $? != 0 && "
            "grep -q \"'eval' does not run on several ranks\" %s/ev.out", dir, img, lab, dir, dir);
    CHECK(rc == 0, "a command that is not data-parallel refuses to run on several ranks (see %s/ev.out)", dir);
}

/* The CUDA backend (on the emulator), 2 ranks: the gradient arena goes
 * through host memory and MPI where NCCL would take it on GPUs. */
static void cuda_emu(const char *img, const char *lab)
{
    char d[2048];
    snprintf(d, sizeof d, "--data idx:%s,%s --batch 8 --val 16 --calib 1 --epochs 1 --depth 1 --min-depth 1 "
             "--kernels 3 --expands 2 --threads 1 --limit 40 --device cuda", img, lab);
    int rc = sh(ONE " ./nta-emu pretrain %s --shards 2 -o %s/e1.nta > %s/e1.out 2>&1 && "
                MPIRUN " -np 2 ./nta-mpi-emu pretrain %s -o %s/e2.nta > %s/e2.out 2>&1 && cmp -s %s/e1.nta %s/e2.nta",
                d, dir, dir, d, dir, dir, dir, dir);
    CHECK(rc == 0, "the emulated CUDA backend on 2 ranks (MPI in NCCL's place) writes the checkpoint of one "
          "process with --shards 2 (see %s/e1.out, e2.out)", dir);
    CHECK(sh("grep -q 'backend per rank: cuda on all 2 ranks' %s/e2.out", dir) == 0,
          "both ranks ran the CUDA backend");
}

/* A rank killed mid-run: the others end with an error within seconds (no
 * hang), and the checkpoint is the last whole epoch's or none. */
static void fault(const char *data)
{
    /* mpirun's children are the ranks (under timeout: its grandchildren) */
    int rc = sh("cd %s && (" MPIRUN " -np 2 $OLDPWD/nta-mpi pretrain %s --depth 2 --min-depth 1 --kernels 3,5 "
                "--expands 2,3 --calib 2 --epochs 1000 -o k.nta > k.out 2>&1 & m=$!; sleep 4; "
                "for p in $(pgrep -P $(pgrep -P $m)); do tr '\\0' '\\n' < /proc/$p/environ | "
                "grep -qx OMPI_COMM_WORLD_RANK=1 && kill -9 $p && date +%%s > killed; done; wait $m; echo $? > rc; "
                "date +%%s > ended)", dir, data);
    CHECK(rc == 0 && sh("test -s %s/killed && test $(cat %s/rc) != 0 && test $(cat %s/rc) != 124 && "
                        "test $(( $(cat %s/ended) - $(cat %s/killed) )) -le 30", dir, dir, dir, dir, dir) == 0,
          "killing rank 1 mid-run ends the run with an error within 30 s, not a hang (see %s/k.out, %s/rc)", dir,
          dir);
    CHECK(sh("grep -q 'rank 1' %s/k.out", dir) == 0, "the run's output names the rank that died (see %s/k.out)",
          dir);
    CHECK(sh("test ! -e %s/k.nta || " ONE " ./nta eval %s/k.nta --data idx:%s/img,%s/lab --calib 1 --limit 20 "
             "> %s/k-eval.out 2>&1", dir, dir, dir, dir, dir) == 0,
          "the checkpoint left behind is whole (it loads; see %s/k-eval.out)", dir);
}

void test_mpi(void)
{
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    plain_refuses();
    if (!have_mpi()) return;
    char img[256], lab[256], data[1024];
    snprintf(img, sizeof img, "%s/img", dir);
    snprintf(lab, sizeof lab, "%s/lab", dir);
    test_write_dataset(img, lab, 120, 4, 5);
    snprintf(data, sizeof data, "--data idx:%s,%s --batch 16 --val 16 --epochs 2 --threads 1", img, lab);
    train_ranks(data);
    search_ranks(img, lab);
    cuda_emu(img, lab);
    fault(data);
}
