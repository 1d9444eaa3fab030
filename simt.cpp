/* simt.cpp: the emulator behind simt.h: fibers, the block scheduler (barriers,
 * warp meetings, deadlock and mismatch reports), launches over OS threads,
 * guarded device memory and the runtime API.
 *
 * A block runs on one OS thread. Its threads are fibers; a fiber runs until it
 * waits (a barrier or a warp operation) or returns, then switches directly to
 * the next fiber of the block's ready queue. The last thread to arrive at a
 * barrier or a warp meeting puts the waiters back on the queue and carries on
 * (in checking mode the queue order is shuffled instead). When the queue is
 * empty the block is done, or, if threads are still alive, they wait for each
 * other: a deadlock, reported, and the block is abandoned.
 *
 * Sections: settings; reports; context switch; fibers and workers; the block
 * scheduler; launches; device memory; runtime API; atomics.
 */
#include "simt.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifndef SIMT_ASAN
#define SIMT_ASAN 0
#endif
#if SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Build with -DSIMT_UCONTEXT to use the portable switch on x86-64 too. */
#if defined(__x86_64__) && !defined(SIMT_UCONTEXT)
#define SIMT_X86 1
#else
#define SIMT_X86 0
#include <ucontext.h>
#endif

#define MAX_THREADS 1024         /* threads per block, as on a GPU */
#define MAX_WARPS (MAX_THREADS / 32)
#define MAX_WORKERS 64           /* OS threads running blocks */
#define SMEM_DEFAULT_LIMIT (48 * 1024)

/* ================================================================ settings */

static simt_config_t config_from_env(void)
{
    simt_config_t c;
    const char *s;
    memset(&c, 0, sizeof c);
    c.seed = 1;
    c.threads = 1;
    c.asan_guards = 1;
    if ((s = getenv("SIMT_CHECK")) && *s) c.check = atoi(s);
    if ((s = getenv("SIMT_SEED")) && *s) c.seed = strtoull(s, NULL, 0);
    if ((s = getenv("SIMT_THREADS")) && *s) c.threads = atoi(s);
    if ((s = getenv("SIMT_TRACE")) && *s) c.trace = atoi(s);
    return c;
}

simt_config_t simt_config = config_from_env();

/* ================================================================ reports */

static pthread_mutex_t report_mu = PTHREAD_MUTEX_INITIALIZER;
static char report_text[2048];
static __thread cudaError_t last_error;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&report_mu);
    va_start(ap, fmt);
    vsnprintf(report_text, sizeof report_text, fmt, ap);
    va_end(ap);
    if (!simt_config.quiet) {
        fflush(stdout);
        fprintf(stderr, "simt: %s\n", report_text);
    }
    pthread_mutex_unlock(&report_mu);
}

const char *simt_last_report(void) { return report_text; }

/* Record e as this host thread's last error (CUDA keeps the latest failure). */
static cudaError_t fail(cudaError_t e)
{
    if (e != cudaSuccess) last_error = e;
    return e;
}

/* ================================================================ context switch */

#if SIMT_X86
/* Save the callee-saved registers, MXCSR and the x87 control word on the old
 * stack, store its stack pointer in *save_sp, load load_sp and undo the same
 * on the new stack. No system call: a few nanoseconds. */
typedef struct { void *sp; } Ctx;
extern "C" void simt_ctx_swap(void **save_sp, void *load_sp)
    __attribute__((visibility("hidden")));
asm(R"(
    .pushsection .text
    .p2align 4
    .globl simt_ctx_swap
    .hidden simt_ctx_swap
    .type simt_ctx_swap, @function
simt_ctx_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_ctx_swap, .-simt_ctx_swap
    .popsection
)");

/* A new context "returns" into entry with the stack aligned as after a call. */
static void ctx_make(Ctx *c, char *stack, size_t size, void (*entry)(void), uint64_t fpu)
{
    uint64_t *sp = (uint64_t *)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    *--sp = 0;                      /* entry's return address: it never returns */
    *--sp = (uint64_t)(uintptr_t)entry;
    for (int i = 0; i < 6; i++) *--sp = 0;  /* rbp rbx r12 r13 r14 r15 */
    *--sp = fpu;                    /* MXCSR | x87 control word << 32 */
    c->sp = sp;
}

static inline void ctx_swap(Ctx *from, Ctx *to) { simt_ctx_swap(&from->sp, to->sp); }

static uint64_t fpu_state(void)
{
    uint32_t mxcsr;
    uint16_t cw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(cw));
    return mxcsr | (uint64_t)cw << 32;
}
#else
/* Portable and slow: glibc's swapcontext makes a system call per switch. */
typedef struct { ucontext_t uc; } Ctx;

static void ctx_make(Ctx *c, char *stack, size_t size, void (*entry)(void), uint64_t fpu)
{
    (void)fpu;
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
}

static inline void ctx_swap(Ctx *from, Ctx *to) { swapcontext(&from->uc, &to->uc); }

static uint64_t fpu_state(void) { return 0; }
#endif

/* Switch contexts, telling ASan which stack we move to. leaving: the old
 * context never runs again (a fiber that returned or a block abandoned). */
static void jump(Ctx *from, Ctx *to, const void *to_bottom, size_t to_size, int leaving)
{
#if SIMT_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(leaving ? NULL : &fake, to_bottom, to_size);
    ctx_swap(from, to);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)to_bottom, (void)to_size, (void)leaving;
    ctx_swap(from, to);
#endif
}

/* ================================================================ fibers and workers */

enum { F_READY, F_BARRIER, F_WARP, F_DONE };

typedef struct Fiber {
    simt_thread t;            /* first: simt_self points here */
    Ctx ctx;
    struct Worker *w;
    int lin;                  /* linear thread index in the block */
    int state;                /* F_* */
    int op;                   /* SIMT_BAR_* or SIMT_SHFL_* / SIMT_WARP_* waited on */
    const char *file;         /* the call site of that wait */
    int line;
    int pred;                 /* barrier predicate */
    int src;                  /* shuffle: lane to read */
    unsigned mask;            /* warp operation's mask */
    unsigned long long val;   /* value offered to the warp */
    unsigned long long out;   /* result of the warp operation */
    char *stack;              /* usable stack (a guard page lies below) */
    size_t stack_size;
} Fiber;

typedef struct {
    unsigned live;            /* lanes that exist and have not returned */
    unsigned arrived;         /* lanes waiting at the current meeting */
    unsigned want;            /* union of their masks */
} Warp;

struct Launch;

typedef struct Worker {
    Ctx host;                 /* the OS thread's own context */
    const struct Launch *launch;
    Fiber *fibers;            /* [MAX_THREADS] */
    Fiber *tmp[MAX_THREADS];  /* fibers being woken */
    int rq[MAX_THREADS];      /* ready queue: a ring of fiber indices */
    int rq_head, rq_n;
    Warp warps[MAX_WARPS];
    int nthreads, live;       /* threads of the block, those not returned */
    int bar_waiting, bar_result;
    int check;                /* this launch runs in checking mode */
    int failed;               /* the block was abandoned (reported) */
    uint64_t rng;             /* checking mode's shuffles */
    uint3 bid;
    char *smem;               /* dynamic shared memory */
    size_t smem_size;
    unsigned long seen;       /* helper threads: the last launch generation seen */
    int index;
#if SIMT_ASAN
    const void *host_bottom;  /* the OS thread's stack, learnt on the first switch */
    size_t host_size;
    int from_host;
#endif
} Worker;

typedef struct Launch {
    const char *name, *file;
    int line;
    dim3 grid, block;
    size_t shmem, stack_size;
    void (*run)(void *);
    void *arg;
    long nblocks;
    int nthreads, check;
    unsigned long long seed, id;
    long next;                /* next block to run (atomic) */
    int failed;               /* a block failed: stop (atomic) */
    int error;                /* its cudaError_t */
} Launch;

__thread simt_thread *simt_self;

static inline Fiber *self_fiber(void) { return reinterpret_cast<Fiber *>(simt_self); }

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static Worker *worker_new(int index)
{
    Worker *w = (Worker *)calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fibers = (Fiber *)calloc(MAX_THREADS, sizeof *w->fibers);
    if (!w->fibers) {
        free(w);
        return NULL;
    }
    for (int i = 0; i < MAX_THREADS; i++) {
        w->fibers[i].w = w;
        w->fibers[i].lin = i;
    }
    w->index = index;
    return w;
}

/* Give f a stack of size bytes with a PROT_NONE page below it (stacks are kept
 * and reused by later blocks and launches). */
static int fiber_stack(Fiber *f, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (f->stack && f->stack_size == size) return 0;
    if (f->stack) munmap(f->stack - page, f->stack_size + page);
    f->stack = NULL;
    char *m = (char *)mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return -1;
    mprotect(m, page, PROT_NONE);
    f->stack = m + page;
    f->stack_size = size;
    return 0;
}

/* ================================================================ the block scheduler */

static void rq_push(Worker *w, Fiber *f)
{
    w->rq[(w->rq_head + w->rq_n++) % MAX_THREADS] = f->lin;
}

static Fiber *rq_pop(Worker *w)
{
    if (!w->rq_n) return NULL;
    Fiber *f = &w->fibers[w->rq[w->rq_head]];
    w->rq_head = (w->rq_head + 1) % MAX_THREADS;
    w->rq_n--;
    return f;
}

static const char *op_name(int op)
{
    static const char *names[] = {
        "__syncthreads", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or",
        "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
        "__ballot_sync", "__syncwarp"};
    return op >= 0 && op < (int)(sizeof names / sizeof *names) ? names[op] : "?";
}

/* Warp operations that may share one meeting: the four shuffles, or a vote,
 * or __syncwarp. */
static int op_class(int op) { return op <= SIMT_SHFL_XOR ? 0 : op; }

static int same_site(const Fiber *a, const Fiber *b)
{
    return a->line == b->line && (a->file == b->file || !strcmp(a->file, b->file));
}

/* Report where the block's waiting threads wait: "what: N threads at op
 * (file:line), ...". */
static void report_waits(Worker *w, const char *what)
{
    const Launch *L = w->launch;
    char buf[1536];
    size_t len = 0;
    const Fiber *site[8];
    int count[8], nsite = 0, other = 0;
    for (int i = 0; i < w->nthreads; i++) {
        const Fiber *f = &w->fibers[i];
        if (f->state != F_BARRIER && f->state != F_WARP) continue;
        int k = 0;
        while (k < nsite && !(site[k]->op == f->op && same_site(site[k], f))) k++;
        if (k == nsite && nsite == 8) {
            other++;
            continue;
        }
        if (k == nsite) {
            site[nsite] = f;
            count[nsite++] = 0;
        }
        count[k]++;
    }
    for (int k = 0; k < nsite && len < sizeof buf; k++)
        len += snprintf(buf + len, sizeof buf - len, "%s%d thread%s at %s (%s:%d)",
                        k ? ", " : "", count[k], count[k] == 1 ? "" : "s",
                        op_name(site[k]->op), site[k]->file, site[k]->line);
    if (other && len < sizeof buf)
        len += snprintf(buf + len, sizeof buf - len, ", %d more elsewhere", other);
    if (w->nthreads - w->live > 0 && len < sizeof buf)
        snprintf(buf + len, sizeof buf - len, "; %d returned", w->nthreads - w->live);
    report("kernel %s (launched at %s:%d) block (%u,%u,%u): %s: %s", L->name, L->file,
           L->line, w->bid.x, w->bid.y, w->bid.z, what, buf);
}

/* Leave the block for good: back to the OS thread, which abandons it. */
static void abort_block(Fiber *self)
{
    Worker *w = self->w;
    w->failed = 1;
    simt_self = NULL;
#if SIMT_ASAN
    jump(&self->ctx, &w->host, w->host_bottom, w->host_size, 1);
#else
    jump(&self->ctx, &w->host, NULL, 0, 1);
#endif
    __builtin_unreachable();
}

/* self waits (or has returned: leaving): run the next ready fiber; with none
 * left the block is done, or deadlocked if threads are still alive. */
static void schedule(Fiber *self, int leaving)
{
    Worker *w = self->w;
    Fiber *next = rq_pop(w);
    if (next == self) return;
    if (next) {
        simt_self = &next->t;
        jump(&self->ctx, &next->ctx, next->stack, next->stack_size, leaving);
        return;
    }
    if (w->live > 0) {
        report_waits(w, "deadlock, threads wait for each other");
        abort_block(self);
    }
    simt_self = NULL;
#if SIMT_ASAN
    jump(&self->ctx, &w->host, w->host_bottom, w->host_size, 1);
#else
    jump(&self->ctx, &w->host, NULL, 0, 1);
#endif
}

/* Make the n fibers of list ready. by: the fiber doing it, which carries on
 * (or, in checking mode, if it is one of them, takes its turn in the shuffled
 * order: by_waits). */
static void wake(Worker *w, Fiber **list, int n, Fiber *by, int by_waits)
{
    if (!w->check) {
        for (int i = 0; i < n; i++)
            if (list[i] != by) rq_push(w, list[i]);
        return;
    }
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix(&w->rng) % (uint64_t)(i + 1));
        Fiber *t = list[i];
        list[i] = list[j];
        list[j] = t;
    }
    for (int i = 0; i < n; i++) rq_push(w, list[i]);
    if (by_waits) schedule(by, 0);
}

/* All live threads wait at a barrier: check they wait at the same one, then
 * let them go. by: the last to arrive, or a thread that returned. */
static void release_barrier(Worker *w, Fiber *by, int by_waits)
{
    Fiber *ref = NULL;
    int n = 0, count = 0, mismatch = 0;
    for (int i = 0; i < w->nthreads; i++) {
        Fiber *f = &w->fibers[i];
        if (f->state != F_BARRIER) continue;
        if (!ref) ref = f;
        else if (f->op != ref->op || !same_site(f, ref)) mismatch = 1;
        count += f->pred;
        w->tmp[n++] = f;
    }
    if (mismatch) {
        report_waits(w, "threads wait at different barriers");
        abort_block(by);
    }
    for (int i = 0; i < n; i++) w->tmp[i]->state = F_READY;
    w->bar_waiting = 0;
    w->bar_result = count;
    wake(w, w->tmp, n, by, by_waits);
}

int simt_barrier(int op, int pred, const char *file, int line)
{
    Fiber *f = self_fiber();
    Worker *w = f->w;
    f->op = op;
    f->file = file;
    f->line = line;
    f->pred = pred;
    f->state = F_BARRIER;
    if (++w->bar_waiting < w->live) schedule(f, 0);
    else release_barrier(w, f, 1);
    /* Still valid: the next barrier cannot complete before this thread arrives. */
    return w->bar_result;
}

static int warp_complete(const Warp *wp) { return !(wp->want & wp->live & ~wp->arrived); }

/* Every lane the meeting waits for has arrived: compute each lane's result. */
static void resolve_warp(Worker *w, Warp *wp, Fiber *by, int by_waits)
{
    Fiber *lanes = &w->fibers[(wp - w->warps) * 32];
    unsigned arrived = wp->arrived;
    unsigned long long votes = 0;
    int n = 0;
    for (int l = 0; l < 32; l++)
        if (arrived >> l & 1 && lanes[l].val) votes |= 1ull << l;
    for (int l = 0; l < 32; l++) {
        if (!(arrived >> l & 1)) continue;
        Fiber *f = &lanes[l];
        if (op_class(f->op) == 0) {
            if (arrived >> f->src & 1) f->out = lanes[f->src].val;
            else f->out = w->check ? ~0ull : f->val;  /* an absent lane: undefined */
        } else if (f->op == SIMT_WARP_BALLOT) {
            f->out = votes & f->mask;
        } else {
            f->out = 0;
        }
        f->state = F_READY;
        w->tmp[n++] = f;
    }
    wp->arrived = wp->want = 0;
    wake(w, w->tmp, n, by, by_waits);
}

unsigned long long simt_warp(int op, unsigned mask, unsigned long long bits, int arg,
                             int width, const char *file, int line)
{
    Fiber *f = self_fiber();
    Worker *w = f->w;
    Warp *wp = &w->warps[f->lin / 32];
    int lane = f->lin % 32;
    if (width < 1 || width > 32 || (width & (width - 1))) width = 32;
    int base = lane & ~(width - 1), src = lane;
    switch (op) {
    case SIMT_SHFL_IDX: src = base + (arg & (width - 1)); break;
    case SIMT_SHFL_UP: if (lane - arg >= base) src = lane - arg; break;
    case SIMT_SHFL_DOWN: if (lane + arg < base + width) src = lane + arg; break;
    case SIMT_SHFL_XOR:
        src = lane ^ (arg & 31);
        if (src >= base + width) src = lane;
        break;
    }
    f->op = op;
    f->file = file;
    f->line = line;
    f->val = bits;
    f->src = src;
    f->mask = mask;
    f->state = F_WARP;
    if (wp->arrived) {
        /* one meeting serves one kind of operation */
        const Fiber *first = &w->fibers[(f->lin & ~31) + __builtin_ctz(wp->arrived)];
        if (op_class(first->op) != op_class(op)) {
            report_waits(w, "lanes of a warp wait at different warp operations");
            abort_block(f);
        }
    }
    wp->arrived |= 1u << lane;
    wp->want |= mask | 1u << lane;
    if (warp_complete(wp)) resolve_warp(w, wp, f, 1);
    else schedule(f, 0);
    return f->out;
}

unsigned __activemask(void)
{
    Fiber *f = self_fiber();
    return f->w->warps[f->lin / 32].live;
}

void *simt_dynamic_shared(void) { return self_fiber()->w->smem; }

/* A thread returned: it counts as arrived at barriers and warp meetings. */
static void fiber_exit(Fiber *f)
{
    Worker *w = f->w;
    Warp *wp = &w->warps[f->lin / 32];
    f->state = F_DONE;
    w->live--;
    wp->live &= ~(1u << (f->lin % 32));
    if (w->bar_waiting && w->bar_waiting == w->live) release_barrier(w, f, 0);
    if (wp->arrived && warp_complete(wp)) resolve_warp(w, wp, f, 0);
    schedule(f, 1);
    __builtin_unreachable();
}

static void fiber_entry(void)
{
    Fiber *f = self_fiber();
    Worker *w = f->w;
#if SIMT_ASAN
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (w->from_host) {
        w->host_bottom = bottom;
        w->host_size = size;
        w->from_host = 0;
    }
#endif
    w->launch->run(w->launch->arg);
    fiber_exit(f);
}

/* Run block b of the launch on this OS thread. */
static void run_block(Worker *w, const Launch *L, long b)
{
    const dim3 bd = L->block, gd = L->grid;
    int n = L->nthreads;
    uint64_t fpu = fpu_state();
    w->bid.x = (unsigned)(b % gd.x);
    w->bid.y = (unsigned)(b / gd.x % gd.y);
    w->bid.z = (unsigned)(b / ((long)gd.x * gd.y));
    w->nthreads = w->live = n;
    w->bar_waiting = 0;
    w->rq_head = w->rq_n = 0;
    w->failed = 0;
    w->check = L->check;
    for (int i = 0; i < n; i++) {
        Fiber *f = &w->fibers[i];
        f->t.tid.x = (unsigned)i % bd.x;
        f->t.tid.y = (unsigned)i / bd.x % bd.y;
        f->t.tid.z = (unsigned)i / (bd.x * bd.y);
        f->t.bid = w->bid;
        f->t.bdim = bd;
        f->t.gdim = gd;
        f->state = F_READY;
#if SIMT_ASAN
        /* a returned fiber leaves a few frames' poison near the top */
        size_t top = f->stack_size < 16384 ? f->stack_size : 16384;
        ASAN_UNPOISON_MEMORY_REGION(f->stack + f->stack_size - top, top);
#endif
        ctx_make(&f->ctx, f->stack, f->stack_size, fiber_entry, fpu);
        w->tmp[i] = f;
    }
    for (int k = 0; k < (n + 31) / 32; k++) {
        int lanes = n - 32 * k < 32 ? n - 32 * k : 32;
        w->warps[k].live = lanes == 32 ? ~0u : (1u << lanes) - 1;
        w->warps[k].arrived = w->warps[k].want = 0;
    }
    if (L->check) {
        w->rng = L->seed ^ (L->id * 0xD1B54A32D192ED03ull) ^ ((uint64_t)b << 20);
        splitmix(&w->rng);
        if (w->smem_size) memset(w->smem, 0xFF, w->smem_size);
    }
    wake(w, w->tmp, n, NULL, 0);   /* all ready (shuffled in checking mode) */
    Fiber *first = rq_pop(w);
    simt_self = &first->t;
#if SIMT_ASAN
    w->from_host = 1;
#endif
    jump(&w->host, &first->ctx, first->stack, first->stack_size, 0);
    simt_self = NULL;
#if SIMT_ASAN
    if (w->failed)  /* abandoned fibers leave their frames' poison */
        for (int i = 0; i < n; i++)
            ASAN_UNPOISON_MEMORY_REGION(w->fibers[i].stack, w->fibers[i].stack_size);
#endif
}

/* ================================================================ launches */

static void launch_fail(Launch *L, cudaError_t e)
{
    int zero = 0;
    if (__atomic_compare_exchange_n(&L->failed, &zero, 1, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        L->error = e;
}

/* One OS thread's share of a launch: take blocks until none are left. */
static void worker_run(Worker *w, Launch *L)
{
    w->launch = L;
    if (w->smem_size != L->shmem || (!w->smem && L->shmem)) {
        free(w->smem);
        w->smem = NULL;
        w->smem_size = 0;
        void *p = NULL;
        if (L->shmem && posix_memalign(&p, 64, L->shmem)) {
            report("kernel %s: out of memory for %zu bytes of shared memory", L->name, L->shmem);
            launch_fail(L, cudaErrorLaunchOutOfResources);
            return;
        }
        w->smem = (char *)p;
        w->smem_size = L->shmem;
    }
    for (int i = 0; i < L->nthreads; i++)
        if (fiber_stack(&w->fibers[i], L->stack_size)) {
            report("kernel %s: cannot map a fiber stack of %zu bytes", L->name, L->stack_size);
            launch_fail(L, cudaErrorLaunchOutOfResources);
            return;
        }
    for (;;) {
        if (__atomic_load_n(&L->failed, __ATOMIC_RELAXED)) break;
        long b = __atomic_fetch_add(&L->next, 1, __ATOMIC_RELAXED);
        if (b >= L->nblocks) break;
        run_block(w, L, b);
        if (w->failed) {
            launch_fail(L, cudaErrorLaunchFailure);
            break;
        }
    }
    w->launch = NULL;
}

/* Helper OS threads wait for a new launch generation; worker 0 is the
 * launching thread itself. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    Launch *launch;
    unsigned long gen;
    int nworkers, pending, started;
    Worker *workers[MAX_WORKERS];
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          NULL, 0, 0, 0, 0, {NULL}};
static pthread_mutex_t launch_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long launch_count;

static void *helper_main(void *arg)
{
    Worker *w = (Worker *)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.gen == w->seen) pthread_cond_wait(&pool.wake, &pool.mu);
        w->seen = pool.gen;
        if (w->index >= pool.nworkers) continue;
        Launch *L = pool.launch;
        pthread_mutex_unlock(&pool.mu);
        worker_run(w, L);
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Have workers 0..n-1 ready (helpers started); returns how many are. */
static int workers_ready(int n)
{
    if (!pool.workers[0] && !(pool.workers[0] = worker_new(0))) return 0;
    while (pool.started + 1 < n) {
        int i = pool.started + 1;
        Worker *w = worker_new(i);
        if (!w) break;
        w->seen = pool.gen;
        pthread_t t;
        if (pthread_create(&t, NULL, helper_main, w)) {
            free(w->fibers);
            free(w);
            break;
        }
        pthread_detach(t);
        pool.workers[i] = w;
        pool.started = i;
    }
    return pool.started + 1 < n ? pool.started + 1 : n;
}

static struct {
    pthread_mutex_t mu;
    int n;
    const void *kernel[64];
    int bytes[64];
} smem_attr = {PTHREAD_MUTEX_INITIALIZER, 0, {NULL}, {0}};

cudaError_t simt_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0)
        return fail(cudaErrorInvalidValue);
    pthread_mutex_lock(&smem_attr.mu);
    int i = 0;
    while (i < smem_attr.n && smem_attr.kernel[i] != kernel) i++;
    if (i == 64) {
        pthread_mutex_unlock(&smem_attr.mu);
        return fail(cudaErrorInvalidValue);
    }
    if (i == smem_attr.n) smem_attr.kernel[smem_attr.n++] = kernel;
    smem_attr.bytes[i] = value;
    pthread_mutex_unlock(&smem_attr.mu);
    return cudaSuccess;
}

static size_t smem_limit(const void *kernel)
{
    size_t limit = SMEM_DEFAULT_LIMIT;
    pthread_mutex_lock(&smem_attr.mu);
    for (int i = 0; i < smem_attr.n; i++)
        if (smem_attr.kernel[i] == kernel && (size_t)smem_attr.bytes[i] > limit)
            limit = (size_t)smem_attr.bytes[i];
    pthread_mutex_unlock(&smem_attr.mu);
    return limit;
}

static int guards_check_all(const char *kernel, const char *file, int line);

simt_counters_t simt_counters;

static void counted_sync(void) { __atomic_add_fetch(&simt_counters.syncs, 1, __ATOMIC_RELAXED); }
/* 0, or (an open stream capture forbids `what`) a report, the capture
 * invalidated, and cudaErrorStreamCaptureUnsupported as the last error */
static cudaError_t capture_forbids(const char *what);

static int capture_record_launch(cudaStream_t stream, const char *name, const char *file, int line, dim3 grid,
                                 dim3 block, size_t shmem, const void *kernel, void (*run)(void *), void *arg,
                                 void *(*clone)(const void *), void (*destroy)(void *), int os_threads_max);

void simt_launch(const char *name, const char *file, int line, dim3 grid, dim3 block,
                 size_t shmem, cudaStream_t stream, const void *kernel,
                 void (*run)(void *), void *arg, void *(*clone)(const void *),
                 void (*destroy)(void *), int os_threads_max)
{
    if (capture_record_launch(stream, name, file, line, grid, block, shmem, kernel, run, arg, clone, destroy,
                              os_threads_max))
        return;
    __atomic_add_fetch(&simt_counters.launches, 1, __ATOMIC_RELAXED);
    if (simt_config.trace) fprintf(stderr, "simt: launch %s %s:%d\n", name, file, line);
    if (simt_self) {  /* would wait for the launch lock it holds */
        report("kernel %s launched from device code (%s:%d): not emulated", name, file, line);
        fail(cudaErrorLaunchFailure);
        return;
    }
    long nthreads = (long)block.x * block.y * block.z;
    long nblocks = (long)grid.x * grid.y * grid.z;
    if (nthreads < 1 || nthreads > MAX_THREADS || block.z > 64 || nblocks < 1 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        report("kernel %s (launched at %s:%d): invalid configuration grid (%u,%u,%u) "
               "block (%u,%u,%u)", name, file, line, grid.x, grid.y, grid.z,
               block.x, block.y, block.z);
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    size_t limit = smem_limit(kernel);
    if (shmem > limit) {
        report("kernel %s (launched at %s:%d): %zu bytes of dynamic shared memory, more "
               "than the %zu allowed (raise cudaFuncAttributeMaxDynamicSharedMemorySize)",
               name, file, line, shmem, limit);
        fail(cudaErrorInvalidValue);
        return;
    }
    Launch L{};
    L.name = name;
    L.file = file;
    L.line = line;
    L.grid = grid;
    L.block = block;
    L.shmem = shmem;
    L.run = run;
    L.arg = arg;
    L.nblocks = nblocks;
    L.nthreads = (int)nthreads;
    L.check = simt_config.check;
    L.seed = simt_config.seed;
    size_t kib = simt_config.stack_kib > 0 ? (size_t)simt_config.stack_kib
                                           : (SIMT_ASAN ? 256 : 64);
    L.stack_size = kib * 1024;

    pthread_mutex_lock(&launch_mu);
    L.id = ++launch_count;
    int nw = simt_config.threads < 1 ? 1 : simt_config.threads;
    if (nw > MAX_WORKERS) nw = MAX_WORKERS;
    if (os_threads_max > 0 && nw > os_threads_max) nw = os_threads_max;
    if (nw > nblocks) nw = (int)nblocks;
    nw = workers_ready(nw);
    if (nw < 1) {
        pthread_mutex_unlock(&launch_mu);
        report("kernel %s: out of memory for the emulator", name);
        fail(cudaErrorLaunchOutOfResources);
        return;
    }
    if (nw > 1) {
        pthread_mutex_lock(&pool.mu);
        pool.launch = &L;
        pool.nworkers = nw;
        pool.pending = nw - 1;
        pool.gen++;
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    worker_run(pool.workers[0], &L);
    if (nw > 1) {
        pthread_mutex_lock(&pool.mu);
        while (pool.pending) pthread_cond_wait(&pool.done, &pool.mu);
        pool.launch = NULL;
        pthread_mutex_unlock(&pool.mu);
    }
    pthread_mutex_unlock(&launch_mu);

    cudaError_t e = L.failed ? (cudaError_t)L.error : cudaSuccess;
    if (guards_check_all(name, file, line) && e == cudaSuccess) e = cudaErrorIllegalAddress;
    fail(e);
}

/* ================================================================ device memory */

/* A device buffer: GUARD_FRONT pattern bytes, the user's bytes (256-aligned,
 * as cudaMalloc's), then pattern bytes up to the end of the allocation (at
 * least GUARD_BACK). */
#define GUARD_FRONT 256
#define GUARD_BACK 64
#define GUARD_BYTE 0xFD

typedef struct Buf {
    char *user;
    size_t size, total;       /* user bytes; whole allocation from user - GUARD_FRONT */
    int poisoned;             /* the guards are ASan-poisoned, not checked by us */
    struct Buf *next;
} Buf;

static pthread_mutex_t mem_mu = PTHREAD_MUTEX_INITIALIZER;
static Buf *bufs;

static char *buf_back(const Buf *b) { return b->user + b->size; }
static size_t buf_back_size(const Buf *b) { return b->total - GUARD_FRONT - b->size; }

static void guards_fill(Buf *b)
{
    memset(b->user - GUARD_FRONT, GUARD_BYTE, GUARD_FRONT);
    memset(buf_back(b), GUARD_BYTE, buf_back_size(b));
}

/* First and last byte of p[0..n) that lost the pattern; 0 if none. */
static int guard_damage(const char *p, size_t n, size_t *first, size_t *last)
{
    size_t i = 0;
    while (i < n && (unsigned char)p[i] == GUARD_BYTE) i++;
    if (i == n) return 0;
    *first = *last = i;
    for (; i < n; i++)
        if ((unsigned char)p[i] != GUARD_BYTE) *last = i;
    return 1;
}

/* Check one buffer's guards (mem_mu held); report and re-arm them if damaged.
 * who: "kernel NAME (launched at FILE:LINE)" or "cudaFree". */
static int guards_check(Buf *b, const char *who)
{
    size_t first, last;
    int bad = 0;
    if (b->poisoned) return 0;
    if (guard_damage(b->user - GUARD_FRONT, GUARD_FRONT, &first, &last)) {
        report("%s: wrote before the start of a device buffer of %zu bytes (guard bytes "
               "%zd..%zd corrupted)", who, b->size, (ssize_t)first - GUARD_FRONT,
               (ssize_t)last - GUARD_FRONT);
        bad = 1;
    }
    if (guard_damage(buf_back(b), buf_back_size(b), &first, &last)) {
        report("%s: wrote past the end of a device buffer of %zu bytes (guard bytes "
               "%zu..%zu corrupted)", who, b->size, b->size + first, b->size + last);
        bad = 1;
    }
    if (bad) guards_fill(b);
    return bad;
}

static int guards_check_all(const char *kernel, const char *file, int line)
{
    char who[512];
    int bad = 0;
    snprintf(who, sizeof who, "kernel %s (launched at %s:%d)", kernel, file, line);
    pthread_mutex_lock(&mem_mu);
    for (Buf *b = bufs; b; b = b->next) bad |= guards_check(b, who);
    pthread_mutex_unlock(&mem_mu);
    return bad;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (cudaError_t e = capture_forbids("cudaMalloc")) return e;
    __atomic_add_fetch(&simt_counters.allocs, 1, __ATOMIC_RELAXED);
    if (!p) return fail(cudaErrorInvalidValue);
    *p = NULL;
    if (!bytes) return cudaSuccess;
    Buf *b = (Buf *)calloc(1, sizeof *b);
    size_t total = GUARD_FRONT + (bytes + GUARD_BACK + 255) / 256 * 256;
    char *base = b && total > bytes ? (char *)aligned_alloc(256, total) : NULL;
    if (!base) {
        free(b);
        report("cudaMalloc: out of memory for %zu bytes", bytes);
        return fail(cudaErrorMemoryAllocation);
    }
    b->user = base + GUARD_FRONT;
    b->size = bytes;
    b->total = total;
    guards_fill(b);
    if (simt_config.check) memset(b->user, 0xFF, bytes);  /* NaN: unwritten data shows */
#if SIMT_ASAN
    if (simt_config.asan_guards) {
        ASAN_POISON_MEMORY_REGION(base, GUARD_FRONT);
        ASAN_POISON_MEMORY_REGION(buf_back(b), buf_back_size(b));
        b->poisoned = 1;
    }
#endif
    pthread_mutex_lock(&mem_mu);
    b->next = bufs;
    bufs = b;
    pthread_mutex_unlock(&mem_mu);
    *p = b->user;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    if (cudaError_t e = capture_forbids("cudaFree")) return e;
    pthread_mutex_lock(&mem_mu);
    Buf **link = &bufs;
    while (*link && (*link)->user != p) link = &(*link)->next;
    Buf *b = *link;
    if (!b) {
        pthread_mutex_unlock(&mem_mu);
        report("cudaFree: %p is not a pointer from cudaMalloc (or was freed already)", p);
        return fail(cudaErrorInvalidDevicePointer);
    }
    *link = b->next;
    int bad = guards_check(b, "cudaFree");
    pthread_mutex_unlock(&mem_mu);
#if SIMT_ASAN
    ASAN_UNPOISON_MEMORY_REGION(b->user - GUARD_FRONT, b->total);
#endif
    free(b->user - GUARD_FRONT);
    free(b);
    return bad ? fail(cudaErrorIllegalAddress) : cudaSuccess;
}

/* Is [p, p+n) inside one device buffer? 1 yes, 0 p is in none, -1 it overruns one
 * (*size: that buffer's size). */
static int device_range(const void *p, size_t n, size_t *size)
{
    const char *c = (const char *)p;
    int r = 0;
    pthread_mutex_lock(&mem_mu);
    for (Buf *b = bufs; b; b = b->next)
        if (c >= b->user && c < b->user + b->size) {
            *size = b->size;
            r = n <= (size_t)(b->user + b->size - c) ? 1 : -1;
            break;
        }
    pthread_mutex_unlock(&mem_mu);
    return r;
}

/* what: "cudaMemcpy destination", ... Returns 0 if p..p+n is device memory. */
static int check_device(const char *what, const void *p, size_t n)
{
    size_t size = 0;
    int r = device_range(p, n, &size);
    if (r == 1) return 0;
    if (r == 0) report("%s: %p is not device memory from cudaMalloc", what, p);
    else report("%s: %zu bytes at %p run past the end of a device buffer of %zu bytes",
                what, n, p, size);
    return -1;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    if (cudaError_t e = capture_forbids("cudaMallocHost")) return e;
    __atomic_add_fetch(&simt_counters.allocs, 1, __ATOMIC_RELAXED);
    if (!p) return fail(cudaErrorInvalidValue);
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    if (cudaError_t e = capture_forbids("cudaFreeHost")) return e;
    free(p);
    return cudaSuccess;
}

/* The copy of cudaMemcpy and cudaMemcpyAsync (which the emulator runs at once) */
static cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if ((unsigned)kind > cudaMemcpyDefault) return fail(cudaErrorInvalidMemcpyDirection);
    if (!bytes) return cudaSuccess;
    if (!dst || !src) return fail(cudaErrorInvalidValue);
    int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    size_t size;
    if (kind == cudaMemcpyDefault) {  /* where a pointer is device memory, it must fit */
        src_dev = device_range(src, bytes, &size) != 0;
        dst_dev = device_range(dst, bytes, &size) != 0;
    }
    if ((src_dev && check_device("cudaMemcpy source", src, bytes)) ||
        (dst_dev && check_device("cudaMemcpy destination", dst, bytes)))
        return fail(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

static int capture_record_copy(cudaStream_t s, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
static int capture_record_set(cudaStream_t s, void *p, int value, size_t bytes);

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s)
{
    if (capture_record_copy(s, dst, src, bytes, kind)) return cudaSuccess;
    return copy(dst, src, bytes, kind);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (cudaError_t e = capture_forbids("cudaMemcpy (the host waits)")) return e;
    counted_sync();      /* on a GPU the host waits for the copy */
    return copy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    if (!bytes) return cudaSuccess;
    if (check_device("cudaMemset", p, bytes)) return fail(cudaErrorInvalidValue);
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s)
{
    if (capture_record_set(s, p, value, bytes)) return cudaSuccess;
    return cudaMemset(p, value, bytes);
}

/* ================================================================ runtime API */

static const struct { cudaError_t e; const char *name, *text; } error_table[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer",
     "invalid device pointer"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection",
     "invalid copy direction for memcpy"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle",
     "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress",
     "an illegal memory access was encountered"},
    {cudaErrorLaunchOutOfResources, "cudaErrorLaunchOutOfResources",
     "too many resources requested for launch"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
};

const char *cudaGetErrorString(cudaError_t e)
{
    for (size_t i = 0; i < sizeof error_table / sizeof *error_table; i++)
        if (error_table[i].e == e) return error_table[i].text;
    return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t e)
{
    for (size_t i = 0; i < sizeof error_table / sizeof *error_table; i++)
        if (error_table[i].e == e) return error_table[i].name;
    return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

cudaError_t cudaGetDeviceCount(int *n)
{
    if (!n) return fail(cudaErrorInvalidValue);
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    if (!v) return fail(cudaErrorInvalidValue);
    *v = SIMT_CUDA_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    if (!v) return fail(cudaErrorInvalidValue);
    *v = SIMT_CUDA_VERSION;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *d)
{
    if (!d) return fail(cudaErrorInvalidValue);
    *d = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device)
{
    if (!value || device != 0 || attr != cudaDevAttrMultiProcessorCount) return fail(cudaErrorInvalidValue);
    *value = simt_config.threads < 1 ? 1 : simt_config.threads;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    if (cudaError_t e = capture_forbids("cudaDeviceSynchronize")) return e;
    counted_sync();
    return cudaSuccess;
}

struct simt_graph;
struct simt_stream {
    unsigned flags;
    struct simt_graph *capture;   /* recording into this graph (cudaStreamBeginCapture) */
    int broken;                   /* the capture was invalidated */
};
struct simt_event { double ms; int recorded; };

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    if (!s) return fail(cudaErrorInvalidValue);
    *s = (cudaStream_t)calloc(1, sizeof **s);
    if (!*s) return fail(cudaErrorMemoryAllocation);
    (*s)->flags = flags;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    if (cudaError_t e = capture_forbids("cudaStreamSynchronize")) return e;
    counted_sync();
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags)
{
    (void)s, (void)flags;
    return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    if (!e) return fail(cudaErrorInvalidValue);
    *e = (cudaEvent_t)calloc(1, sizeof **e);
    return *e ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)s;
    struct timespec ts;
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    e->ms = ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
    e->recorded = 1;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (cudaError_t err = capture_forbids("cudaEventSynchronize")) return err;
    counted_sync();
    return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    if (cudaError_t err = capture_forbids("cudaEventQuery")) return err;
    return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!ms) return fail(cudaErrorInvalidValue);
    if (!start || !end || !start->recorded || !end->recorded)
        return fail(cudaErrorInvalidResourceHandle);
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

/* ================================================================ stream capture, graphs */

/* One recorded operation of a graph. */
typedef struct {
    enum { NODE_KERNEL, NODE_COPY, NODE_SET } kind;
    /* kernel */
    const char *name, *file;
    int line, os_threads_max;
    dim3 grid, block;
    size_t shmem;
    const void *kernel;
    void (*run)(void *);
    void *arg;                          /* the launch's arguments, cloned */
    void *(*clone)(const void *);
    void (*destroy)(void *);
    /* copy, set */
    void *dst;
    const void *src;
    size_t bytes;
    cudaMemcpyKind copy_kind;
    int value;
} Node;

struct simt_graph {
    Node *node;
    int n, cap;
};

static pthread_mutex_t capture_mu = PTHREAD_MUTEX_INITIALIZER;
static cudaStream_t capturing;      /* the stream of the one open capture, or NULL */

static cudaError_t capture_forbids(const char *what)
{
    pthread_mutex_lock(&capture_mu);
    cudaStream_t s = capturing;
    if (s) s->broken = 1;
    pthread_mutex_unlock(&capture_mu);
    if (!s) return cudaSuccess;
    report("%s while a stream capture is open: not permitted (the capture is invalidated)", what);
    return fail(cudaErrorStreamCaptureUnsupported);
}

/* Append node n to the graph s is capturing; 0 when s is not capturing. */
static int capture_add(cudaStream_t s, const Node *n)
{
    if (!s || !s->capture) return 0;
    simt_graph *g = s->capture;
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        Node *p = (Node *)realloc(g->node, (size_t)cap * sizeof *p);
        if (!p) {
            s->broken = 1;
            return 1;
        }
        g->node = p, g->cap = cap;
    }
    g->node[g->n++] = *n;
    return 1;
}

static int capture_record_launch(cudaStream_t stream, const char *name, const char *file, int line, dim3 grid,
                                 dim3 block, size_t shmem, const void *kernel, void (*run)(void *), void *arg,
                                 void *(*clone)(const void *), void (*destroy)(void *), int os_threads_max)
{
    if (!stream || !stream->capture) return 0;
    Node n{};
    n.kind = Node::NODE_KERNEL;
    n.name = name, n.file = file, n.line = line, n.os_threads_max = os_threads_max;
    n.grid = grid, n.block = block, n.shmem = shmem, n.kernel = kernel, n.run = run;
    n.arg = clone(arg), n.clone = clone, n.destroy = destroy;
    if (!n.arg) stream->broken = 1;
    else capture_add(stream, &n);
    return 1;
}

static int capture_record_copy(cudaStream_t s, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    Node n{};
    n.kind = Node::NODE_COPY;
    n.dst = dst, n.src = src, n.bytes = bytes, n.copy_kind = kind;
    return capture_add(s, &n);
}

static int capture_record_set(cudaStream_t s, void *p, int value, size_t bytes)
{
    Node n{};
    n.kind = Node::NODE_SET;
    n.dst = p, n.value = value, n.bytes = bytes;
    return capture_add(s, &n);
}

static void graph_free(simt_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n; i++)
        if (g->node[i].kind == Node::NODE_KERNEL) g->node[i].destroy(g->node[i].arg);
    free(g->node);
    free(g);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    (void)mode;   /* every mode is held to the global mode's rules */
    if (!s) return fail(cudaErrorStreamCaptureUnsupported);   /* the legacy stream cannot be captured */
    pthread_mutex_lock(&capture_mu);
    int busy = capturing != NULL;
    simt_graph *g = busy ? NULL : (simt_graph *)calloc(1, sizeof *g);
    if (g) capturing = s, s->capture = g, s->broken = 0;
    pthread_mutex_unlock(&capture_mu);
    if (busy) {
        report("cudaStreamBeginCapture: a capture is already open (the emulator holds one at a time)");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return g ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
    if (!s || !graph) return fail(cudaErrorInvalidValue);
    pthread_mutex_lock(&capture_mu);
    simt_graph *g = s->capture;
    int broken = s->broken;
    if (g) capturing = NULL, s->capture = NULL, s->broken = 0;
    pthread_mutex_unlock(&capture_mu);
    *graph = NULL;
    if (!g) return fail(cudaErrorInvalidValue);
    if (broken) {
        graph_free(g);
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status)
{
    if (!status) return fail(cudaErrorInvalidValue);
    *status = !s || !s->capture ? cudaStreamCaptureStatusNone
              : s->broken       ? cudaStreamCaptureStatusInvalidated
                                : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

/* An executable graph is a copy of the graph, its launches' arguments cloned. */
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    (void)flags;
    if (!exec || !graph) return fail(cudaErrorInvalidValue);
    simt_graph *e = (simt_graph *)calloc(1, sizeof *e);
    Node *node = graph->n ? (Node *)malloc((size_t)graph->n * sizeof *node) : NULL;
    if (!e || (graph->n && !node)) {
        free(e), free(node);
        return fail(cudaErrorMemoryAllocation);
    }
    for (int i = 0; i < graph->n; i++) {
        node[i] = graph->node[i];
        if (node[i].kind == Node::NODE_KERNEL) node[i].arg = node[i].clone(graph->node[i].arg);
    }
    e->node = node, e->n = e->cap = graph->n;
    *exec = e;
    return cudaSuccess;
}

/* Run the nodes in order, as the stream would have; stop at the first failure. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    if (!exec) return fail(cudaErrorInvalidResourceHandle);
    if (s && s->capture) {
        report("cudaGraphLaunch into a capturing stream: not emulated");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    __atomic_add_fetch(&simt_counters.graphs, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < exec->n; i++) {
        const Node *n = &exec->node[i];
        cudaError_t e = cudaSuccess;
        if (n->kind == Node::NODE_KERNEL) {
            simt_launch(n->name, n->file, n->line, n->grid, n->block, n->shmem, s, n->kernel, n->run, n->arg,
                        n->clone, n->destroy, n->os_threads_max);
            e = cudaPeekAtLastError();
        } else if (n->kind == Node::NODE_COPY) {
            e = copy(n->dst, n->src, n->bytes, n->copy_kind);
        } else {
            e = cudaMemset(n->dst, n->value, n->bytes);
        }
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    graph_free(graph);
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    graph_free(exec);
    return cudaSuccess;
}

/* ================================================================ atomics */

/* Relaxed, as CUDA's; real atomics because blocks may run on several OS threads. */
template <typename T, typename F> static T atomic_update(T *p, F f)
{
    T old, want;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do want = f(old);
    while (!__atomic_compare_exchange(p, &old, &want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}

float atomicAdd(float *p, float v) { return atomic_update(p, [v](float x) { return x + v; }); }
double atomicAdd(double *p, double v) { return atomic_update(p, [v](double x) { return x + v; }); }
int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
int atomicSub(int *p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
unsigned atomicSub(unsigned *p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
int atomicMax(int *p, int v) { return atomic_update(p, [v](int x) { return x > v ? x : v; }); }
unsigned atomicMax(unsigned *p, unsigned v)
{
    return atomic_update(p, [v](unsigned x) { return x > v ? x : v; });
}
int atomicMin(int *p, int v) { return atomic_update(p, [v](int x) { return x < v ? x : v; }); }
unsigned atomicMin(unsigned *p, unsigned v)
{
    return atomic_update(p, [v](unsigned x) { return x < v ? x : v; });
}
int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
unsigned atomicExch(unsigned *p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
float atomicExch(float *p, float v)
{
    float old;
    __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
    return old;
}
int atomicCAS(int *p, int compare, int v)
{
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
unsigned atomicCAS(unsigned *p, unsigned compare, unsigned v)
{
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
unsigned long long atomicCAS(unsigned long long *p, unsigned long long compare,
                             unsigned long long v)
{
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}

void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
