/* dist.c: several processes: launch, data-parallel gradients, distributed
 * search.
 *
 *   dist_init / dist_finalize   join the ranks under mpirun; any other exit aborts them all
 *   dist_report_backend         every rank's backend in one line
 *   dist_grad_*                 one all-reduce over the gradient arena per step
 *   dist_fitness                a generation's fitness evaluations split across the ranks
 *
 * Built twice: without NTA_MPI into ./nta (one rank; the collectives are
 * no-ops, and --shards S runs the S shards one after another), and with
 * NTA_MPI by mpicc into ./nta-mpi. MPI is a second binary rather than a
 * library opened at run time because MPI has no stable binary interface: the
 * handles and constants of Open MPI and MPICH differ, so one nta cannot call
 * both. NCCL (nta-mpi built with nvcc: NTA_NCCL) has one, so it is opened at
 * run time (dlopen) and only where the ranks train on GPUs.
 *
 * The all-reduce. On CPU ranks (and GPU ranks without NCCL, through host
 * memory) it is MPI's reduce-scatter and all-gather, written with
 * MPI_Alltoall so that the order of the sum is ours: rank j receives slice j
 * of every rank's arena and adds them pairwise (fold: 0+1, 2+3, then those
 * pairs, ...), the same order in which one process adds its local shards. So
 * S ranks, or one process with --shards S, or R ranks with S/R a power of
 * two shards each, compute the same bits. With NCCL (GPU ranks, one shard
 * each) it is one ncclAllReduce (average) over the arena on the backend's
 * stream: NCCL picks the order, so the bits may differ from one process.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE        /* on_exit (glibc) */
#include "dist.h"

#include <stdlib.h>
#include <string.h>

#if defined(NTA_MPI)
#include <dlfcn.h>
#include <mpi.h>
#include <unistd.h>
#endif
#if defined(NTA_NCCL)
#include <nccl.h>
#endif

static int d_rank = 0, d_size = 1, d_local_size = 1;

int dist_rank(void) { return d_rank; }
int dist_size(void) { return d_size; }
int dist_local_size(void) { return d_local_size; }

/* The rank count a launcher gave this process in its environment (Open MPI,
 * MPICH/Hydra, Slurm's PMI), or 1. */
static int launched_ranks(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

/* ------------------------------------------------------- without MPI */
#if !defined(NTA_MPI)

void dist_init(int *argc, char ***argv, const char *cmd)
{
    (void)argc, (void)argv, (void)cmd;
    int n = launched_ranks();
    if (n > 1)
        nta_die("started by mpirun as one of %d ranks, but this nta has no MPI: each rank would run the whole "
                "job alone. Run ./nta-mpi instead (make builds it where mpicc is found: apt-get install "
                "libopenmpi-dev), or run nta without mpirun", n);
}

void dist_finalize(void) {}
const char *dist_version(void) { return "not in this binary (./nta-mpi is nta with MPI, built where mpicc is found)"; }
void dist_report_backend(const Backend *be, int threads) { (void)be, (void)threads; }

/* --------------------------------------------------------- with MPI */
#else

static int d_up;                  /* MPI initialised, not yet finalised */
static char d_lib[MPI_MAX_LIBRARY_VERSION_STRING];

/* The commands that run data-parallel; the others would only repeat their
 * work (and their files) on every rank. */
static int data_parallel(const char *cmd)
{
    static const char *const ok[] = {"train", "pretrain", "adapt", "finetune"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (cmd && !strcmp(cmd, ok[i])) return 1;
    return 0;
}

/* Every MPI call returns its error (MPI_ERRORS_RETURN) and ends here. */
#define MPI_CHECK(call)                                                                                   \
    do {                                                                                                  \
        int e_ = (call);                                                                                  \
        if (e_ != MPI_SUCCESS) mpi_fail(#call, e_, __FILE__, __LINE__);                                   \
    } while (0)

static void mpi_fail(const char *call, int e, const char *file, int line)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(e, msg, &len);
    nta_die("rank %d of %d: %s failed (%s:%d): %s; another rank has probably died (its own message comes first)",
            d_rank, d_size, call, file, line, msg);
}

/* An exit without dist_finalize: a failure (nta_die on this rank) takes
 * every rank down now rather than leave them waiting in a collective; exit 0
 * (--help, on every rank alike) leaves MPI as the end of main would. */
static void exit_ranks(int status, void *arg)
{
    (void)arg;
    if (!d_up) return;
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    dist_finalize();
}

/* Each host's name and rank count, e.g. "a (2), b (2)". */
static void hosts_line(char *out, size_t len, int *nhosts)
{
    char me[MPI_MAX_PROCESSOR_NAME] = "";
    int n = 0;
    MPI_CHECK(MPI_Get_processor_name(me, &n));
    char *all = nta_calloc((size_t)d_size, MPI_MAX_PROCESSOR_NAME);
    MPI_CHECK(MPI_Allgather(me, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                            MPI_COMM_WORLD));
    size_t used = 0;
    *nhosts = 0;
    out[0] = 0;
    for (int r = 0; r < d_size; r++) {
        const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
        int first = 1, count = 0;
        for (int q = 0; q < d_size; q++) {
            if (!strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME)) count++;
            if (q < r && !strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME)) first = 0;
        }
        if (!first) continue;
        (*nhosts)++;
        if (used < len) used += (size_t)snprintf(out + used, len - used, "%s%s (%d)", used ? ", " : "", h, count);
    }
    free(all);
}

/* The ranks on this host (d_local_size), and each of them its own GPU:
 * CUDA_VISIBLE_DEVICES = its local rank (the CUDA backend uses device 0 of
 * those it sees), unless the user set it. */
static void local_rank_setup(void)
{
    MPI_Comm local;
    int lrank = 0;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_rank(local, &lrank));
    MPI_CHECK(MPI_Comm_size(local, &d_local_size));
    MPI_Comm_free(&local);
    if (d_local_size > 1 && !getenv("CUDA_VISIBLE_DEVICES")) {
        char v[16];
        snprintf(v, sizeof v, "%d", lrank);
        setenv("CUDA_VISIBLE_DEVICES", v, 1);
    }
}

void dist_init(int *argc, char ***argv, const char *cmd)
{
    if (launched_ranks() < 2) return;          /* nta-mpi without mpirun: one rank, no MPI */
    if (MPI_Init(argc, argv) != MPI_SUCCESS) nta_die("MPI_Init failed: is this run started by mpirun?");
    d_up = 1;
    on_exit(exit_ranks, NULL);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &d_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &d_size));
    if (d_rank > 0 && !freopen("/dev/null", "w", stdout)) nta_die("rank %d: cannot silence stdout", d_rank);
    if (d_size > 1 && !data_parallel(cmd))
        nta_die("'%s' does not run on several ranks (train, pretrain, adapt and finetune do); run it with "
                "./nta, without mpirun", cmd ? cmd : "");
    local_rank_setup();
    int nhosts, len;
    char hosts[1024];
    hosts_line(hosts, sizeof hosts, &nhosts);
    MPI_Get_library_version(d_lib, &len);
    char *nl = strchr(d_lib, '\n');
    if (nl) *nl = 0;
    nl = strchr(d_lib, ',');                     /* "Open MPI v4.1.4, package: ..." */
    if (nl) *nl = 0;
    printf("mpi: %d ranks on %d host%s: %s; %s\n", d_size, nhosts, nhosts > 1 ? "s" : "", hosts, d_lib);
}

void dist_finalize(void)
{
    if (!d_up) return;
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    d_up = 0;
    MPI_Finalize();
}

const char *dist_version(void)
{
    static char v[MPI_MAX_LIBRARY_VERSION_STRING + 64];
    int major, minor;
    MPI_Get_version(&major, &minor);
    snprintf(v, sizeof v, "MPI %d.%d (%s)", major, minor,
#if defined(OMPI_MAJOR_VERSION)
             "built with Open MPI"
#else
             "built with mpicc"
#endif
    );
    return v;
}

void dist_report_backend(const Backend *be, int threads)
{
    if (d_size < 2) return;
    char mine[64], *all = nta_calloc((size_t)d_size, sizeof mine);
    snprintf(mine, sizeof mine, "%s", be->name);
    MPI_CHECK(MPI_Allgather(mine, sizeof mine, MPI_CHAR, all, sizeof mine, MPI_CHAR, MPI_COMM_WORLD));
    int same = 1;
    for (int r = 1; r < d_size; r++) same &= !strcmp(all, all + r * sizeof mine);
    if (same)
        printf("mpi: backend per rank: %s on all %d ranks%s", all, d_size, strcmp(all, "cpu") ? "\n" : "");
    else {
        printf("mpi: backend per rank:");
        for (int r = 0; r < d_size; r++) printf(" %d %s", r, all + r * sizeof mine);
        printf("\n");
    }
    if (same && !strcmp(all, "cpu")) printf(", %d threads each\n", threads);
    if (!same)
        nta_die("the ranks picked different backends (rank 0: %s): give --device cpu, or as many GPUs as ranks",
                all);
    free(all);
}

#endif

/* ---------------------------------------------- data-parallel training */

struct DistGrad {
    Net *net;
    int S, first, count;     /* shards per step; this rank's [first, first + count) */
    size_t n, slice;         /* floats in the arena; per rank in the all-reduce (n <= R*slice) */
    float *part;             /* [count][R*slice] host: each local shard's gradients and statistics */
    float *saved;            /* [n] host: parameters and statistics at the step's start (count > 1) */
    float *recv;             /* [R][slice] host: slice `rank` of every rank's sum */
    double *loss;            /* [S] summed loss of each shard */
    int *right;              /* [S] right answers of each shard */
    int nccl;                /* reduce with NCCL on the GPU arena (NTA_NCCL, cuda, one shard per rank) */
    long steps;              /* reduced so far, in */
    double seconds;          /* seconds (from the first shard's end to the arena's upload: waits included) */
};

/* parts[0] (m floats) = the sum of parts[0..n) (each `stride` apart), pair by
 * pair: 0+1, 2+3, ..., then (0+1)+(2+3), ...: the order every rank and every
 * process uses, so the result does not depend on who adds. */
static void fold(float *parts, int n, size_t m, size_t stride)
{
    for (int step = 1; step < n; step *= 2)
        for (int i = 0; i + step < n; i += 2 * step) {
            float *a = parts + (size_t)i * stride;
            const float *b = parts + (size_t)(i + step) * stride;
            for (size_t j = 0; j < m; j++) a[j] += b[j];
        }
}

#if defined(NTA_NCCL)
/* ------------------------------------------------------------------ NCCL */

/* libnccl opened at run time; the types come from nccl.h (build time only). */
static struct {
    int tried, ok;
    ncclComm_t comm;
    __typeof__(ncclGetUniqueId) *get_unique_id;
    __typeof__(ncclCommInitRank) *comm_init_rank;
    __typeof__(ncclAllReduce) *all_reduce;
    __typeof__(ncclGetErrorString) *error_string;
    __typeof__(ncclGetVersion) *get_version;
} nccl;


/* 1 when NCCL is ready for the ranks (every rank agrees), else 0 and why in
 * why. NTA_NCCL=0 asks for the MPI path. */
static int nccl_open(char *why, size_t len)
{
    const char *env = getenv("NTA_NCCL");
    void *h = NULL;
    int ok = 1;
    if (env && !strcmp(env, "0")) snprintf(why, len, "NTA_NCCL=0"), ok = 0;
    else if (!(h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL)) && !(h = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL)))
        snprintf(why, len, "libnccl.so.2 not found (%s)", dlerror()), ok = 0;
    if (ok) {
        *(void **)&nccl.get_unique_id = dlsym(h, "ncclGetUniqueId");
        *(void **)&nccl.comm_init_rank = dlsym(h, "ncclCommInitRank");
        *(void **)&nccl.all_reduce = dlsym(h, "ncclAllReduce");
        *(void **)&nccl.error_string = dlsym(h, "ncclGetErrorString");
        *(void **)&nccl.get_version = dlsym(h, "ncclGetVersion");
        if (!nccl.get_unique_id || !nccl.comm_init_rank || !nccl.all_reduce || !nccl.error_string ||
            !nccl.get_version)
            snprintf(why, len, "libnccl lacks ncclAllReduce and friends"), ok = 0;
    }
    int all = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (!all) {
        if (ok) snprintf(why, len, "not found on every rank");
        return 0;
    }
    ncclUniqueId id;
    if (d_rank == 0 && nccl.get_unique_id(&id) != ncclSuccess) nta_die("ncclGetUniqueId failed");
    MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
    ncclResult_t e = nccl.comm_init_rank(&nccl.comm, d_size, id, d_rank);
    if (e != ncclSuccess) nta_die("rank %d: ncclCommInitRank failed: %s", d_rank, nccl.error_string(e));
    int v = 0;
    nccl.get_version(&v);
    snprintf(why, len, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
    return 1;
}

/* The arena (GPU memory) averaged over the ranks in place: after the
 * backend's work (on its own stream) is done, on the default stream, waited
 * for. (Two waits a step; running it on the backend's stream would spare them.) */
static void nccl_average(float *g, size_t n)
{
    cudaError_t ce = cudaDeviceSynchronize();
    if (ce != cudaSuccess) nta_die("rank %d: CUDA error before the all-reduce: %s", d_rank, cudaGetErrorString(ce));
    ncclResult_t e = nccl.all_reduce(g, g, n, ncclFloat32, ncclAvg, nccl.comm, 0);
    if (e != ncclSuccess)
        nta_die("rank %d: ncclAllReduce failed: %s; another rank has probably died", d_rank, nccl.error_string(e));
    ce = cudaStreamSynchronize(0);
    if (ce != cudaSuccess) nta_die("rank %d: CUDA error in the all-reduce: %s", d_rank, cudaGetErrorString(ce));
}
#endif

DistGrad *dist_grad_new(Net *net, int shards)
{
    DistGrad *g = nta_calloc(1, sizeof *g);
    g->net = net;
    g->S = shards;
    g->count = shards / d_size;
    g->first = d_rank * g->count;
    if (shards % d_size) nta_die("%d shards on %d ranks: give a multiple of the ranks", shards, d_size);
    if (shards == 1) return g;
    net_grad_arena(net, &g->n);
    g->slice = (g->n + (size_t)d_size - 1) / (size_t)d_size;
    g->loss = nta_calloc((size_t)shards, sizeof *g->loss);
    g->right = nta_calloc((size_t)shards, sizeof *g->right);
#if defined(NTA_NCCL)
    if (d_size > 1 && g->count == 1 && net_backend(net) == &cuda_backend) {
        if (!nccl.tried) {
            char how[256];
            nccl.tried = 1, nccl.ok = nccl_open(how, sizeof how);
            printf("mpi: gradients all-reduced %s (%s)\n", nccl.ok ? "by NCCL on the GPUs" : "by MPI in host memory",
                   how);
        }
        g->nccl = nccl.ok;
    }
#endif
    static int said;
    if (!said++ && d_size > 1)
        printf("mpi: %d shards a step, %d on each of %d ranks; one all-reduce of the gradients and BN statistics a "
               "step: %zu floats (%.2f MB)\n", shards, g->count, d_size, g->n, g->n * 4e-6);
    else if (said == 1)
        printf("shards: %d a step, one after another; their gradients and BN statistics averaged (%zu floats)\n",
               shards, g->n);
    if (!g->nccl) {
        g->part = nta_calloc((size_t)g->count * d_size * g->slice, sizeof(float));
        g->recv = nta_calloc((size_t)d_size * g->slice, sizeof(float));
    }
    if (g->count > 1) g->saved = nta_malloc(g->n * sizeof(float));
    return g;
}

void dist_grad_free(DistGrad *g)
{
    if (!g) return;
    if (d_size > 1 && g->steps)
        printf("mpi: the all-reduce took %.3f ms a step (mean of %ld steps; waiting for the slowest rank included)\n",
               1e3 * g->seconds / g->steps, g->steps);
    free(g->part), free(g->recv), free(g->saved), free(g->loss), free(g->right);
    free(g);
}

void dist_grad_shards(const DistGrad *g, int *first, int *count)
{
    *first = g->first;
    *count = g->count;
}

void dist_grad_begin(DistGrad *g)
{
    if (g->count > 1) net_weights_get(g->net, g->saved);
}

void dist_grad_shard(DistGrad *g, int k, double loss, int right)
{
    if (g->S == 1) return;
    g->loss[g->first + k] = loss, g->right[g->first + k] = right;
    net_stats_to_grad(g->net);
    if (g->nccl) return;
    size_t n;
    const float *arena = net_grad_arena(g->net, &n);
    net_backend(g->net)->download(g->part + (size_t)k * d_size * g->slice, arena, n * sizeof(float));
    if (k + 1 < g->count) net_weights_put(g->net, g->saved);   /* the next shard starts from the same statistics */
}

/* The shards' losses and right answers, everywhere. */
static void gather_losses(DistGrad *g)
{
#if defined(NTA_MPI)
    if (d_size > 1) {
        MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g->loss, g->count, MPI_DOUBLE, MPI_COMM_WORLD));
        MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g->right, g->count, MPI_INT, MPI_COMM_WORLD));
    }
#else
    (void)g;
#endif
}

/* part[0] = the sum over every rank's part[0], in fold's order by rank. */
static void reduce_ranks(DistGrad *g)
{
#if defined(NTA_MPI)
    if (d_size == 1) return;
    int m = (int)g->slice;
    MPI_CHECK(MPI_Alltoall(g->part, m, MPI_FLOAT, g->recv, m, MPI_FLOAT, MPI_COMM_WORLD));
    fold(g->recv, d_size, g->slice, g->slice);
    MPI_CHECK(MPI_Allgather(g->recv, m, MPI_FLOAT, g->part, m, MPI_FLOAT, MPI_COMM_WORLD));
#else
    (void)g;
#endif
}

void dist_grad_reduce(DistGrad *g, double *loss, int *right)
{
    if (g->S == 1) return;
    double t0 = nta_now();
    size_t n;
    float *arena = net_grad_arena(g->net, &n);
    gather_losses(g);
    *loss = 0, *right = 0;
    for (int k = 0; k < g->S; k++) *loss += g->loss[k], *right += g->right[k];
#if defined(NTA_NCCL)
    if (g->nccl) {
        nccl_average(arena, n);
        net_stats_from_grad(g->net);
        g->steps++, g->seconds += nta_now() - t0;
        return;
    }
#endif
    size_t stride = (size_t)d_size * g->slice;
    fold(g->part, g->count, n, stride);        /* this rank's shards */
    reduce_ranks(g);                           /* then the ranks' sums */
    float *sum = g->part, S = (float)g->S;
    for (size_t j = 0; j < n; j++) sum[j] /= S;
    net_backend(g->net)->upload(arena, sum, n * sizeof(float));
    net_stats_from_grad(g->net);
    g->steps++, g->seconds += nta_now() - t0;
}

void dist_broadcast(void *buf, size_t bytes)
{
#if defined(NTA_MPI)
    for (size_t at = 0; d_size > 1 && at < bytes; at += 1u << 30) {     /* counts are ints */
        size_t n = bytes - at < (1u << 30) ? bytes - at : (1u << 30);
        MPI_CHECK(MPI_Bcast((char *)buf + at, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD));
    }
#else
    (void)buf, (void)bytes;
#endif
}

/* ---------------------------------------------------------- search */

void dist_fitness(SearchFitness fit, void *ctx, Candidate *c, int n)
{
    int lo = (int)((long)n * d_rank / d_size), hi = (int)((long)n * (d_rank + 1) / d_size);
    for (int i = lo; i < hi; i++) c[i].fitness = fit(ctx, &c[i].arch);
#if defined(NTA_MPI)
    if (d_size == 1 || n == 0) return;
    double *f = nta_malloc((size_t)n * sizeof *f);
    int *count = nta_malloc((size_t)d_size * sizeof *count), *at = nta_malloc((size_t)d_size * sizeof *at);
    for (int r = 0; r < d_size; r++) {
        at[r] = (int)((long)n * r / d_size);
        count[r] = (int)((long)n * (r + 1) / d_size) - at[r];
    }
    for (int i = lo; i < hi; i++) f[i] = c[i].fitness;
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, f, count, at, MPI_DOUBLE, MPI_COMM_WORLD));
    for (int i = 0; i < n; i++) c[i].fitness = f[i];
    free(f), free(count), free(at);
#endif
}
