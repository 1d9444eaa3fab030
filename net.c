/* net.c: a MobileNetV2-style network built from a description.
 *
 *   stem    KxK conv Cin -> Cs, stride 1, BN, ReLU6
 *   blocks  inverted residuals: 1x1 expand Ci -> E, BN, ReLU6;
 *           KxK depthwise stride s, BN, ReLU6; 1x1 project E -> Co, BN;
 *           + input when s == 1 and Ci == Co
 *   head    1x1 conv -> Ch, BN, ReLU6; global average pool; linear Ch -> L
 *
 * Memory is one allocation per category: parameters, gradients, momentum (one
 * float arena each, laid out from the same parameter table) and activations
 * (one arena sized for the batch). Every op runs through the backend table, and
 * what differs by device is a property in that table (Backend.eval_piece), so
 * this file never asks which device it is on.
 * Shapes: see the legend in nta.h; B is the batch.
 */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------ descriptions */

NetDesc net_reference(int h, int w, int c, int classes)
{
    static const BlockDesc blocks[] = {
        {3, 6, 2, 24}, {3, 6, 1, 24}, {3, 6, 2, 32},
        {3, 6, 1, 32}, {3, 6, 2, 64}, {3, 6, 1, 64},
    };
    NetDesc d = {.in_h = h, .in_w = w, .in_c = c, .stem_c = 16, .stem_k = 3,
                 .nblocks = 6, .head_c = 128, .classes = classes};
    memcpy(d.blk, blocks, sizeof blocks);
    return d;
}

/* "in=28x28x1 stem=16k3 blocks=k3e6s2c24,... head=128 classes=10[ mlp=128][ space=k3,5,7:e3,4,6:d2]" */
void net_desc_format(const NetDesc *d, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "in=%dx%dx%d stem=%dk%d blocks=", d->in_h,
                                d->in_w, d->in_c, d->stem_c, d->stem_k);
    for (int i = 0; i < d->nblocks && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%sk%de%ds%dc%d", i ? "," : "", d->blk[i].k,
                              d->blk[i].e, d->blk[i].s, d->blk[i].co);
    if (n < len) n += (size_t)snprintf(buf + n, len - n, " head=%d classes=%d", d->head_c, d->classes);
    if (d->mlp && n < len) n += (size_t)snprintf(buf + n, len - n, " mlp=%d", d->mlp);
    const Space *s = &d->space;
    for (int i = 0; i < s->nk && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : " space=k", s->ks[i]);
    for (int i = 0; i < s->ne && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : ":e", s->es[i]);
    if (s->nk && n < len) snprintf(buf + n, len - n, ":d%d", s->dmin);
}

/* 1 if the text, up to its end or a newline, holds a number of more than 9
 * digits: sscanf's %d would overflow on it, which C leaves undefined (glibc
 * wraps, so "k4294967299" read as k3). */
static int has_long_number(const char *p)
{
    for (int run = 0; *p && *p != '\n'; p++) {
        run = *p >= '0' && *p <= '9' ? run + 1 : 0;
        if (run > 9) return 1;
    }
    return 0;
}

/* Read "k3,5,7:e3,4,6:d2" into s; 0 on success. */
static int space_parse(Space *s, const char *p)
{
    int used = 0;
    memset(s, 0, sizeof *s);
    if (*p++ != 'k') return -1;
    while (s->nk < 4 && sscanf(p, "%d%n", &s->ks[s->nk], &used) == 1) {
        s->nk++, p += used;
        if (*p != ',') break;
        p++;
    }
    if (*p++ != ':' || *p++ != 'e') return -1;
    while (s->ne < 4 && sscanf(p, "%d%n", &s->es[s->ne], &used) == 1) {
        s->ne++, p += used;
        if (*p != ',') break;
        p++;
    }
    if (sscanf(p, ":d%d", &s->dmin) != 1 || s->nk == 0 || s->ne == 0 || s->dmin < 1) return -1;
    for (int i = 0; i < s->nk; i++)
        if (s->ks[i] < 1 || s->ks[i] > 7 || !(s->ks[i] % 2) || (i && s->ks[i] <= s->ks[i - 1])) return -1;
    for (int i = 0; i < s->ne; i++)
        if (s->es[i] < 1 || s->es[i] > 8 || (i && s->es[i] <= s->es[i - 1])) return -1;
    return 0;
}

int net_desc_parse(NetDesc *d, const char *text, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    const char *p = strstr(text, "blocks="), *sp, *eol = strchr(text, '\n');
    int used = 0;
    if (p && eol && p > eol) p = NULL;            /* the description is the first line */
    if (has_long_number(text) ||
        sscanf(text, "in=%dx%dx%d stem=%dk%d", &d->in_h, &d->in_w, &d->in_c, &d->stem_c,
               &d->stem_k) != 5 || !p) {
        snprintf(err, errlen, "malformed network description '%.60s'", text);
        return -1;
    }
    p += 7;
    while (d->nblocks < NET_MAX_BLOCKS) {
        BlockDesc *b = &d->blk[d->nblocks];
        if (sscanf(p, "k%de%ds%dc%d%n", &b->k, &b->e, &b->s, &b->co, &used) != 4) break;
        d->nblocks++;
        p += used;
        if (*p != ',') break;
        p++;
    }
    if (sscanf(p, " head=%d classes=%d%n", &d->head_c, &d->classes, &used) != 2) {
        snprintf(err, errlen, "malformed network description near '%.30s'", p);
        return -1;
    }
    p += used;
    if (sscanf(p, " mlp=%d%n", &d->mlp, &used) == 1) p += used;
    sp = strncmp(p, " space=", 7) == 0 ? p + 7 : NULL;
    if (sp && space_parse(&d->space, sp) != 0) {
        snprintf(err, errlen, "malformed search space '%.40s'", sp);
        return -1;
    }
    /* sizes a network can be built with */
    int ok = d->in_h > 0 && d->in_h <= 4096 && d->in_w > 0 && d->in_w <= 4096 &&
             d->in_c > 0 && d->in_c <= 4 && d->stem_c > 0 && d->stem_c <= 4096 &&
             d->stem_k > 0 && d->stem_k % 2 && d->stem_k <= 7 && d->nblocks > 0 && d->head_c > 0 &&
             d->head_c <= 4096 && d->classes > 0 && d->classes <= 100000 && d->mlp >= 0 && d->mlp <= 4096;
    for (int i = 0; i < d->nblocks; i++) {
        const BlockDesc *b = &d->blk[i];
        ok = ok && b->k > 0 && b->k % 2 && b->k <= 7 && b->e > 0 && b->e <= 8 &&
             (b->s == 1 || b->s == 2) && b->co > 0 && b->co <= 4096;
    }
    int first[NET_MAX_STAGES + 1];
    ok = ok && net_stages(d, first) > 0;
    if (!ok) {
        snprintf(err, errlen, "network description has out-of-range sizes: '%.60s'", text);
        return -1;
    }
    /* a supernet's blocks hold the weights of its largest choices; a smaller
     * block would let an architecture of the space read past them */
    const Space *s = &d->space;
    for (int i = 0; s->nk && i < d->nblocks; i++)
        if (d->blk[i].k != s->ks[s->nk - 1] || d->blk[i].e != s->es[s->ne - 1]) {
            snprintf(err, errlen, "network description: block %d is k%de%d, not the search "
                     "space's largest choices k%de%d", i, d->blk[i].k, d->blk[i].e,
                     s->ks[s->nk - 1], s->es[s->ne - 1]);
            return -1;
        }
    return 0;
}

/* ----------------------------------------------------- architectures */

int net_stages(const NetDesc *d, int first[NET_MAX_STAGES + 1])
{
    int n = 0;
    for (int i = 0; i < d->nblocks; i++) {
        int prev = i ? d->blk[i - 1].co : d->stem_c;
        if (i == 0 || d->blk[i].s == 2 || d->blk[i].co != prev) {
            if (n == NET_MAX_STAGES) return -1;
            first[n++] = i;
        }
    }
    first[n] = d->nblocks;
    return n;
}

Space space_default(void)
{
    return (Space){.nk = 3, .ks = {3, 5, 7}, .ne = 3, .es = {3, 4, 6}, .dmin = 2};
}

NetDesc net_supernet(int h, int w, int c, int classes, const Space *space, int maxdepth)
{
    static const int stage_c[] = {24, 32, 64};
    if (h < 8 || w < 8)
        nta_die("the supernet's three stride-2 stages need images of at least 8x8, not %dx%d", h, w);
    if (maxdepth < space->dmin || maxdepth * 3 > NET_MAX_BLOCKS)
        nta_die("stage depth %d is outside %d..%d", maxdepth, space->dmin, NET_MAX_BLOCKS / 3);
    NetDesc d = {.in_h = h, .in_w = w, .in_c = c, .stem_c = 16, .stem_k = 3, .head_c = 128,
                 .classes = classes, .space = *space};
    for (int s = 0; s < 3; s++)
        for (int j = 0; j < maxdepth; j++)
            d.blk[d.nblocks++] = (BlockDesc){space->ks[space->nk - 1], space->es[space->ne - 1],
                                             j ? 1 : 2, stage_c[s]};
    return d;
}

/* The choices of block i: from the space, or the block's own for a fixed net. */
static int choices(const NetDesc *d, int i, int kernel, const int **list)
{
    const Space *s = &d->space;
    if (s->nk == 0) {
        *list = kernel ? &d->blk[i].k : &d->blk[i].e;
        return 1;
    }
    *list = kernel ? s->ks : s->es;
    return kernel ? s->nk : s->ne;
}

static int stage_dmin(const NetDesc *d, int blocks)
{
    return d->space.nk == 0 || d->space.dmin > blocks ? blocks : d->space.dmin;
}

void arch_canonical(const NetDesc *d, Arch *a)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    for (int s = 0; s < ns; s++)
        for (int i = first[s] + a->depth[s]; i < first[s + 1]; i++) {
            const int *ks, *es;
            int nk = choices(d, i, 1, &ks), ne = choices(d, i, 0, &es);
            a->k[i] = ks[nk - 1], a->e[i] = es[ne - 1];
        }
}

/* which = 0 smallest, 1 largest, 2 random */
static Arch arch_pick(const NetDesc *d, int which, Rng *r)
{
    Arch a;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    memset(&a, 0, sizeof a);
    for (int s = 0; s < ns; s++) {
        int blocks = first[s + 1] - first[s], lo = stage_dmin(d, blocks);
        a.depth[s] = which == 1 ? blocks : which == 0 ? lo : lo + (int)rng_below(r, (uint32_t)(blocks - lo + 1));
    }
    for (int i = 0; i < d->nblocks; i++) {
        const int *ks, *es;
        int nk = choices(d, i, 1, &ks), ne = choices(d, i, 0, &es);
        a.k[i] = which == 1 ? ks[nk - 1] : which == 0 ? ks[0] : ks[rng_below(r, (uint32_t)nk)];
        a.e[i] = which == 1 ? es[ne - 1] : which == 0 ? es[0] : es[rng_below(r, (uint32_t)ne)];
    }
    arch_canonical(d, &a);
    return a;
}

Arch arch_largest(const NetDesc *d) { return arch_pick(d, 1, NULL); }
Arch arch_smallest(const NetDesc *d) { return arch_pick(d, 0, NULL); }
Arch arch_random(const NetDesc *d, Rng *r) { return arch_pick(d, 2, r); }

void arch_format(const NetDesc *d, const Arch *a, char *buf, size_t len)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    size_t n = 0;
    buf[0] = 0;
    for (int s = 0; s < ns; s++)
        for (int j = 0; j < a->depth[s] && n < len; j++) {
            int i = first[s] + j;
            n += (size_t)snprintf(buf + n, len - n, "%sk%de%d", j ? "-" : s ? "/" : "", a->k[i], a->e[i]);
        }
}

static int in_list(int v, const int *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v) return 1;
    return 0;
}

static void list_text(char *buf, size_t len, const int *list, int n)
{
    size_t at = 0;
    for (int i = 0; i < n && at < len; i++) at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "", list[i]);
}

int arch_parse(const NetDesc *d, const char *text, Arch *a, char *err, size_t errlen)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first), s = 0, j = 0, tok = 0;
    const char *p = text;
    char list[32];
    memset(a, 0, sizeof *a);
    *a = arch_largest(d);
    if (has_long_number(text)) {
        snprintf(err, errlen, "architecture '%.80s' has a number of more than 9 digits", text);
        return -1;
    }
    for (;;) {
        int k, e, used = 0, i = first[s] + j;
        tok++;
        if (sscanf(p, "k%de%d%n", &k, &e, &used) != 2 || used == 0) {
            snprintf(err, errlen, "architecture '%s': token %d ('%.12s') is not of the form kKeE, e.g. k3e6",
                     text, tok, p);
            return -1;
        }
        if (j == first[s + 1] - first[s]) {
            snprintf(err, errlen, "architecture '%s': stage %d has more than its %d blocks at token %d",
                     text, s + 1, j, tok);
            return -1;
        }
        const int *ks, *es;
        int nk = choices(d, i, 1, &ks), ne = choices(d, i, 0, &es);
        if (!in_list(k, ks, nk) || !in_list(e, es, ne)) {
            int bad_k = !in_list(k, ks, nk);
            list_text(list, sizeof list, bad_k ? ks : es, bad_k ? nk : ne);
            snprintf(err, errlen, "architecture '%s': token %d ('k%de%d'): %s %d is not one of %s",
                     text, tok, k, e, bad_k ? "kernel" : "expansion", bad_k ? k : e, list);
            return -1;
        }
        a->k[i] = k, a->e[i] = e;
        j++;
        p += used;
        if (*p == '-') { p++; continue; }
        int lo = stage_dmin(d, first[s + 1] - first[s]);
        if (j < lo) {
            snprintf(err, errlen, "architecture '%s': stage %d has %d blocks, fewer than the smallest depth %d",
                     text, s + 1, j, lo);
            return -1;
        }
        a->depth[s] = j;
        if (*p == 0 && s == ns - 1) return 0;
        if (*p == 0) {
            snprintf(err, errlen, "architecture '%s' names %d stages; this network has %d", text, s + 1, ns);
            return -1;
        }
        if (*p != '/' || s == ns - 1) {
            snprintf(err, errlen, "architecture '%s': unexpected '%.8s' after token %d", text, p, tok);
            return -1;
        }
        p++, s++, j = 0;
    }
}

int arch_named(const NetDesc *d, const char *name, Rng *r, Arch *a, char *err, size_t errlen)
{
    if (!strcmp(name, "largest")) *a = arch_largest(d);
    else if (!strcmp(name, "smallest")) *a = arch_smallest(d);
    else if (!strcmp(name, "random") && r) *a = arch_random(d, r);
    else return arch_parse(d, name, a, err, errlen);
    return 0;
}

NetDesc arch_standalone(const NetDesc *d, const Arch *a)
{
    NetDesc o = *d;
    int first[NET_MAX_STAGES + 1], ns = net_stages(d, first);
    memset(&o.space, 0, sizeof o.space);
    memset(o.blk, 0, sizeof o.blk);
    o.nblocks = 0;
    for (int s = 0; s < ns; s++)
        for (int j = 0; j < a->depth[s]; j++) {
            int i = first[s] + j;
            o.blk[o.nblocks++] = (BlockDesc){a->k[i], a->e[i], d->blk[i].s, d->blk[i].co};
        }
    return o;
}

/* ---------------------------------------------------- counting cost */

/* Visit every layer with its shapes; used for FLOPs, parameters, the printed
 * table. macs: multiply-accumulates per image; params: trainable floats. */
typedef void (*LayerFn)(void *ctx, const char *name, int h, int w, int ci, int ho,
                        int wo, int co, double macs, size_t params);

static void net_walk(const NetDesc *d, LayerFn fn, void *ctx)
{
    int h = d->in_h, w = d->in_w, c = d->in_c, K = d->stem_k;
    char name[32];
    fn(ctx, "stem", h, w, c, h, w, d->stem_c, (double)h * w * K * K * c * d->stem_c,
       (size_t)K * K * c * d->stem_c + 2 * d->stem_c);
    c = d->stem_c;
    for (int i = 0; i < d->nblocks; i++) {
        const BlockDesc *b = &d->blk[i];
        int E = b->e * c, ho = conv_out(h, b->k, b->s), wo = conv_out(w, b->k, b->s);
        double macs = (double)h * w * c * E + (double)ho * wo * b->k * b->k * E +
                      (double)ho * wo * E * b->co;
        size_t params = (size_t)c * E + 2 * E + (size_t)b->k * b->k * E + 2 * E +
                        (size_t)E * b->co + 2 * b->co;
        snprintf(name, sizeof name, "block%d k%d e%d s%d", i, b->k, b->e, b->s);
        fn(ctx, name, h, w, c, ho, wo, b->co, macs, params);
        h = ho, w = wo, c = b->co;
    }
    fn(ctx, "head 1x1", h, w, c, h, w, d->head_c, (double)h * w * c * d->head_c,
       (size_t)c * d->head_c + 2 * d->head_c);
    int f = d->mlp ? d->mlp : d->head_c;    /* the linear layer's input */
    if (d->mlp)
        fn(ctx, "pool+mlp", h, w, d->head_c, 1, 1, d->mlp, (double)d->head_c * d->mlp,
           (size_t)d->head_c * d->mlp + 2 * d->mlp);
    fn(ctx, d->mlp ? "linear" : "pool+linear", d->mlp ? 1 : h, d->mlp ? 1 : w, f, 1, 1, d->classes,
       (double)f * d->classes, (size_t)f * d->classes + d->classes);
}

typedef struct { double macs; size_t params; } Cost;

static void cost_add(void *ctx, const char *name, int h, int w, int ci, int ho, int wo,
                     int co, double macs, size_t params)
{
    (void)name, (void)h, (void)w, (void)ci, (void)ho, (void)wo, (void)co;
    Cost *c = ctx;
    c->macs += macs;
    c->params += params;
}

double net_flops(const NetDesc *d)
{
    Cost c = {0, 0};
    net_walk(d, cost_add, &c);
    return 2 * c.macs;
}

size_t net_params(const NetDesc *d)
{
    Cost c = {0, 0};
    net_walk(d, cost_add, &c);
    return c.params;
}

static void layer_print(void *ctx, const char *name, int h, int w, int ci, int ho,
                        int wo, int co, double macs, size_t params)
{
    (void)ctx;
    printf("  %-18s %4dx%-4dx%4d -> %4dx%-4dx%4d %8.2f MFLOPs %8zu params\n", name, h, w,
           ci, ho, wo, co, 2e-6 * macs, params);
}

void net_print(const NetDesc *d)
{
    printf("  %-18s %-14s    %-14s %14s %15s\n", "layer", "in HxWxC", "out HxWxC", "cost/image", "");
    net_walk(d, layer_print, NULL);
    printf("  total %.2f MFLOPs, %zu params\n", 1e-6 * net_flops(d), net_params(d));
}

/* ---------------------------------------------------------- building */

/* A parameter or activation waiting for its arena: where to store the
 * pointers once the arena exists. */
typedef struct { float **p, **g; size_t off; } Bind;

typedef struct {
    Net *net;
    Bind *bind; int nbind;       /* parameters */
    Bind *abind; int nabind;     /* activations */
    size_t nact;
} Builder;

static void add_param(Builder *b, const char *name, int kind, float **p, float **g,
                      int ndim, int d0, int d1, int d2, int d3)
{
    Net *net = b->net;
    ParamInfo *pi = &net->param[net->nparam++];
    int dims[4] = {d0, d1, d2, d3};
    snprintf(pi->name, sizeof pi->name, "%s", name);
    pi->kind = kind;
    pi->ndim = ndim;
    pi->n = 1;
    for (int i = 0; i < ndim; i++) pi->dims[i] = dims[i], pi->n *= dims[i];
    pi->off = net->nfloats;
    net->nfloats += (pi->n + 15) & ~(size_t)15;  /* 64-byte aligned tensors */
    b->bind[b->nbind++] = (Bind){p, g, pi->off};
}

static void add_bn(Builder *b, const char *prefix, BnParams *bn, BnParams *gbn, int C)
{
    char name[48];
    snprintf(name, sizeof name, "%s.bn.gamma", prefix);
    add_param(b, name, PARAM_NODECAY, &bn->gamma, &gbn->gamma, 1, C, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bn.beta", prefix);
    add_param(b, name, PARAM_NODECAY, &bn->beta, &gbn->beta, 1, C, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bn.mean", prefix);
    add_param(b, name, PARAM_STAT, &bn->run_mean, &gbn->run_mean, 1, C, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bn.var", prefix);
    add_param(b, name, PARAM_STAT, &bn->run_var, &gbn->run_var, 1, C, 0, 0, 0);
}

static void add_act(Builder *b, float **p, size_t n)
{
    b->abind[b->nabind++] = (Bind){p, NULL, b->nact};
    b->nact += (n + 15) & ~(size_t)15;
}

static void add_saved(Builder *b, BnSaved *sv, int C)
{
    add_act(b, &sv->mean, C);
    add_act(b, &sv->istd, C);
    add_act(b, &sv->g_mean, C);
    add_act(b, &sv->gx_mean, C);
}

/* Lay out every parameter and activation tensor of the network. */
static void net_layout(Builder *bd)
{
    Net *net = bd->net;
    const NetDesc *d = &net->d;
    int B = net->B, h = d->in_h, w = d->in_w, K = d->stem_k, Cs = d->stem_c;
    size_t maxact = 0;
#define ACT(ptr, n) do { size_t n_ = (n); add_act(bd, (ptr), n_); if (n_ > maxact) maxact = n_; } while (0)
    char name[48];

    add_param(bd, "stem.w", PARAM_WEIGHT, &net->w_stem, &net->g_stem, 4, K, K, d->in_c, Cs);
    add_bn(bd, "stem", &net->bn_stem, &net->gbn_stem, Cs);
    ACT(&net->x_in, (size_t)B * h * w * d->in_c);
    ACT(&net->z_stem, (size_t)B * h * w * Cs);
    ACT(&net->a_stem, (size_t)B * h * w * Cs);
    add_saved(bd, &net->sv_stem, Cs);

    int c = Cs;
    for (int i = 0; i < d->nblocks; i++) {
        Block *k = &net->blk[i];
        const BlockDesc *bd_ = &d->blk[i];
        k->ci = c, k->emax = bd_->e * c, k->co = bd_->co, k->kmax = bd_->k, k->s = bd_->s;
        k->h = h, k->w = w, k->ho = conv_out(h, k->kmax, k->s), k->wo = conv_out(w, k->kmax, k->s);
        int E = k->emax;
        snprintf(name, sizeof name, "b%d.exp.w", i);
        add_param(bd, name, PARAM_WEIGHT, &k->w_exp, &k->g_exp, 2, c, E, 0, 0);
        snprintf(name, sizeof name, "b%d.exp", i);
        add_bn(bd, name, &k->bn_exp, &k->gbn_exp, E);
        snprintf(name, sizeof name, "b%d.dw.w", i);
        add_param(bd, name, PARAM_WEIGHT, &k->w_dw, &k->g_dw, 3, k->kmax, k->kmax, E, 0);
        snprintf(name, sizeof name, "b%d.dw", i);
        add_bn(bd, name, &k->bn_dw, &k->gbn_dw, E);
        snprintf(name, sizeof name, "b%d.proj.w", i);
        add_param(bd, name, PARAM_WEIGHT, &k->w_proj, &k->g_proj, 2, E, k->co, 0, 0);
        snprintf(name, sizeof name, "b%d.proj", i);
        add_bn(bd, name, &k->bn_proj, &k->gbn_proj, k->co);
        size_t pin = (size_t)B * h * w, pout = (size_t)B * k->ho * k->wo;
        ACT(&k->z_exp, pin * E);
        ACT(&k->a_exp, pin * E);
        ACT(&k->z_dw, pout * E);
        ACT(&k->a_dw, pout * E);
        ACT(&k->z_proj, pout * k->co);
        ACT(&k->out, pout * k->co);
        add_saved(bd, &k->sv_exp, E);
        add_saved(bd, &k->sv_dw, E);
        add_saved(bd, &k->sv_proj, k->co);
        h = k->ho, w = k->wo, c = k->co;
    }

    net->hh = h, net->hw = w;
    add_param(bd, "head.w", PARAM_WEIGHT, &net->w_head, &net->g_head, 2, c, d->head_c, 0, 0);
    add_bn(bd, "head", &net->bn_head, &net->gbn_head, d->head_c);
    ACT(&net->z_head, (size_t)B * h * w * d->head_c);
    ACT(&net->a_head, (size_t)B * h * w * d->head_c);
    add_saved(bd, &net->sv_head, d->head_c);
    int M = d->mlp, F = M ? M : d->head_c;
    if (M) {                               /* the projection head's hidden layer */
        add_param(bd, "mlp.w", PARAM_WEIGHT, &net->w_mlp, &net->g_mlp, 2, d->head_c, M, 0, 0);
        add_bn(bd, "mlp", &net->bn_mlp, &net->gbn_mlp, M);
        ACT(&net->z_mlp, (size_t)B * M);
        ACT(&net->a_mlp, (size_t)B * M);
        add_saved(bd, &net->sv_mlp, M);
        ACT(&net->emb, (size_t)B * d->classes);
        ACT(&net->demb, (size_t)B * d->classes);
        ACT(&net->emb_norm, (size_t)B);
    }
    add_param(bd, "fc.w", PARAM_WEIGHT, &net->w_fc, &net->g_fc, 2, F, d->classes, 0, 0);
    add_param(bd, "fc.b", PARAM_NODECAY, &net->b_fc, &net->gb_fc, 1, d->classes, 0, 0, 0);
    ACT(&net->pooled, (size_t)B * d->head_c);
    ACT(&net->logits, (size_t)B * d->classes);
    ACT(&net->dlogits, (size_t)B * d->classes);
    ACT(&net->dpooled_add, (size_t)B * d->head_c);
    net->ngbuf = maxact;
#undef ACT
}

/* Kaiming-normal (fan-out) convolutions and projection head, BN gamma 1, var
 * 1; the last linear layer N(0, 0.01), or N(0, 1/fan-in) after a projection
 * head's hidden layer (its outputs are normalised to unit length, so small
 * ones would only make the first steps' gradients large). */
static void net_init(Net *net, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    float *host = nta_calloc(net->nfloats, sizeof(float));
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        float *p = host + pi->off;
        const char *leaf = strrchr(pi->name, '.') + 1;
        if (pi->kind == PARAM_WEIGHT) {
            /* fan_out = Co * K * K: the last dim is Co except for depthwise [K,K,E] */
            double fan_out = strstr(pi->name, ".dw.") ? pi->dims[0] * pi->dims[1]
                             : pi->ndim == 4         ? (double)pi->dims[0] * pi->dims[1] * pi->dims[3]
                                                     : pi->dims[1];
            float sd = strcmp(pi->name, "fc.w") ? (float)sqrt(2.0 / fan_out)
                       : net->d.mlp        ? (float)sqrt(1.0 / pi->dims[0])
                                           : 0.01f;
            for (size_t j = 0; j < pi->n; j++) p[j] = sd * rng_normal(&r);
        } else if (!strcmp(leaf, "gamma") || !strcmp(leaf, "var")) {
            for (size_t j = 0; j < pi->n; j++) p[j] = 1.0f;
        }
    }
    net->be->upload(net->p, host, net->nfloats * sizeof(float));
    free(host);
}

/* decay [nfloats] for be->sgd: 1 for the elements of weights (conv and
 * linear: weight decay), 0 for the other trained ones (batchnorm, bias), -1
 * for running statistics and the padding between tensors */
static void net_decay_init(Net *net)
{
    float *h = nta_malloc(net->nfloats * sizeof(float));
    for (size_t i = 0; i < net->nfloats; i++) h[i] = -1;
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        float v = pi->kind == PARAM_WEIGHT ? 1 : pi->kind == PARAM_NODECAY ? 0 : -1;
        for (size_t j = 0; j < pi->n; j++) h[pi->off + j] = v;
    }
    net->be->upload(net->decay, h, net->nfloats * sizeof(float));
    free(h);
}

Net *net_create(const NetDesc *d, int loss, const Backend *be, int B, uint64_t seed, int verbose)
{
    Net *net = nta_calloc(1, sizeof *net);
    net->d = *d;
    net->loss = loss;
    net->be = be;
    net->B = B;
    net->bn_momentum = 0.1f;
    net->param = nta_calloc(16 + 20 * (size_t)d->nblocks, sizeof(ParamInfo));
    Builder bd = {.net = net};
    bd.bind = nta_calloc(16 + 20 * (size_t)d->nblocks, sizeof(Bind));
    bd.abind = nta_calloc(64 + 24 * (size_t)d->nblocks, sizeof(Bind));   /* at most 18 a block */
    net_layout(&bd);

    net->p = be->alloc(net->nfloats * sizeof(float));
    net->g = be->alloc(net->nfloats * sizeof(float));
    net->m = be->alloc(net->nfloats * sizeof(float));
    net->decay = be->alloc(net->nfloats * sizeof(float));
    net->nact = bd.nact;
    net->act = be->alloc(net->nact * sizeof(float));
    for (int i = 0; i < 3; i++) net->gbuf[i] = be->alloc(net->ngbuf * sizeof(float));
    net->y_in = be->alloc((size_t)B * sizeof(int32_t));
    net->t_in = be->alloc((size_t)B * sizeof(float));
    net->stats = be->alloc(2 * sizeof(double));
    net->lr = be->alloc(sizeof(float));
    for (int i = 0; i < bd.nbind; i++) {
        *bd.bind[i].p = net->p + bd.bind[i].off;
        *bd.bind[i].g = net->g + bd.bind[i].off;
    }
    for (int i = 0; i < bd.nabind; i++) *bd.abind[i].p = net->act + bd.abind[i].off;
    free(bd.bind);
    free(bd.abind);
    net_init(net, seed);
    net_decay_init(net);
    Arch a = arch_largest(d);
    net_set_arch(net, &a);

    if (verbose) {
        printf("network (batch %d, %s):\n", B, be->name);
        net_print(d);
        printf("  memory: %.1f MB parameters+grads+momentum+decay mask, %.1f MB activations\n",
               4 * 4e-6 * net->nfloats, 4e-6 * (net->nact + 3 * net->ngbuf));
    }
    return net;
}

void net_free(Net *net)
{
    if (!net) return;
    const Backend *be = net->be;
    be->free(net->p), be->free(net->g), be->free(net->m), be->free(net->decay), be->free(net->act);
    for (int i = 0; i < 3; i++) be->free(net->gbuf[i]);
    be->free(net->y_in), be->free(net->t_in), be->free(net->stats), be->free(net->lr);
    for (int i = 0; i < NET_GRAPHS; i++)
        if (net->graphs[i].graph) be->graph_free(net->graphs[i].graph);
    free(net->param);
    free(net);
}

const NetDesc *net_desc(const Net *net) { return &net->d; }
const Backend *net_backend(const Net *net) { return net->be; }
int net_batch(const Net *net) { return net->B; }

float *net_weights_get(const Net *net, float *host)
{
    if (!host) host = nta_malloc(net->nfloats * sizeof(float));
    net->be->download(host, net->p, net->nfloats * sizeof(float));
    return host;
}

void net_weights_put(Net *net, const float *host)
{
    net->be->upload(net->p, host, net->nfloats * sizeof(float));
}

void net_momentum_reset(Net *net) { net->be->zero(net->m, net->nfloats * sizeof(float)); }

void net_set_norm(Net *net, const float mean[4], const float std[4])
{
    memcpy(net->norm_mean, mean, sizeof net->norm_mean);
    memcpy(net->norm_std, std, sizeof net->norm_std);
    net->norm_set = 1;
}

int net_norm(const Net *net, float mean[4], float std[4])
{
    if (!net->norm_set) return 0;
    memcpy(mean, net->norm_mean, sizeof net->norm_mean);
    memcpy(std, net->norm_std, sizeof net->norm_std);
    return 1;
}

const char *net_checkpoint_meta(const Net *net) { return net->has_momentum ? net->meta : NULL; }

void net_set_arch(Net *net, const Arch *a)
{
    int first[NET_MAX_STAGES + 1], ns = net_stages(&net->d, first);
    net->arch = *a;
    for (int s = 0; s < ns; s++)
        for (int i = first[s]; i < first[s + 1]; i++) net->on[i] = i - first[s] < a->depth[s];
}

/* The output of the last active block before block i (the stem's if none). */
static float *input_of(Net *net, int i)
{
    while (--i >= 0)
        if (net->on[i]) return net->blk[i].out;
    return net->a_stem;
}

/* ----------------------------------------------------------- forward */

/* Training on a backend that fuses its batchnorms (Backend.load_bn): the
 * conv that produces z computes its statistics (bn_stats_of); the consumers
 * read z through the batchnorm (bn_read: a_exp, a_dw and a_head are then not
 * written), and in the backward pass the consumers of dz read it from the
 * masked gradient g that bn_bwd_sums left (bn_grad_read). */
static BnStats bn_stats_of(const Net *net, const BnSaved *sv, const BnParams *bn)
{
    return (BnStats){sv->mean, sv->istd, bn->run_mean, bn->run_var, net->bn_momentum};
}

static BnLoad bn_read(const BnSaved *sv, const BnParams *bn, int relu6)
{
    return (BnLoad){sv->mean, sv->istd, bn->gamma, bn->beta, relu6, NULL, NULL, NULL};
}

static BnLoad bn_grad_read(const BnSaved *sv, const BnParams *bn, const float *z)
{
    return (BnLoad){sv->mean, sv->istd, bn->gamma, bn->beta, 0, z, sv->g_mean, sv->gx_mean};
}

/* y = BN(z) (+ReLU6) in train or eval mode; then + res [P,C] when not NULL
 * (train: y NULL computes the statistics only) */
static void bn_forward(Net *net, float *y, BnSaved *sv, const float *z, const float *res, const BnParams *bn,
                       int P, int C, int relu6, int train)
{
    if (train) {         /* the residual added in the same pass */
        net->be->bn_fwd_train(y, sv->mean, sv->istd, bn->run_mean, bn->run_var, z, res, bn->gamma,
                              bn->beta, P, C, net->bn_momentum, relu6);
        return;
    }
    net->be->bn_fwd_eval(y, z, bn->gamma, bn->beta, bn->run_mean, bn->run_var, P, C, relu6);
    if (res) net->be->add(y, res, (size_t)P * C);
}

/* y = BN(z) (+ReLU6) (+ res [P,N] when not NULL) of the pointwise conv z
 * [P,N] = x [P,K] (ldx) w [K,N] (ldw); in eval mode one fused op that never
 * writes z; in training y NULL computes z and its statistics only */
static void pw_bn_forward(Net *net, float *y, float *z, BnSaved *sv, const BnParams *bn,
                          const float *x, int ldx, const float *w, int ldw, const float *res, int P, int N,
                          int K, int relu6, int train)
{
    if (train) {
        net->be->gemm(0, 0, P, N, K, 1, x, ldx, w, ldw, 0, z, N);
        bn_forward(net, y, sv, z, res, bn, P, N, relu6, 1);
        return;
    }
    net->be->gemm_bn_eval(y, x, ldx, w, ldw, bn->gamma, bn->beta, bn->run_mean, bn->run_var, P, N, K, relu6);
    if (res) net->be->add(y, res, (size_t)P * N);
}

/* The forward pass of images [b0, b0+n) of the batch (every op sees a batch of
 * n images). The input x_in and the outputs pooled and logits are the batch's
 * tensors at image b0; the activations in between are the batch's tensors at
 * image s0 (s0 = b0 when training, which keeps them all for the backward pass;
 * inference passes each thread its own fixed slot, so that the memory a piece
 * writes is the memory the thread's previous piece wrote, still in its cache).
 * Training needs the whole batch at once (batch statistics); inference does not. */
/* The clock of a timed forward pass (net_forward_timed): t [nblocks+2], when
 * set, gains the seconds since *t0 at layer l (0 stem, 1+i block i, nblocks+1
 * head with pool and fc), and *t0 moves on. The backend is synchronised
 * first (a 4-byte download waits for a GPU's queue; on the CPU it is a copy). */
static void lap(Net *net, double *t, double *t0, int l)
{
    if (!t) return;
    float sync;
    net->be->download(&sync, net->logits, sizeof sync);
    double now = nta_now();
    t[l] += now - *t0, *t0 = now;
}

static void forward_part(Net *net, int b0, int s0, int n, int train, double *t)
{
    double t0 = t ? nta_now() : 0;
    const Backend *be = net->be;
    const NetDesc *d = &net->d;
    int h = d->in_h, w = d->in_w;
    size_t hw = (size_t)h * w;
#define IMG(ptr, per_image) ((ptr) + (size_t)s0 * (per_image))   /* image s0 of a [B,...] tensor */
#define OUT(ptr, per_image) ((ptr) + (size_t)b0 * (per_image))   /* image b0 of a [B,...] tensor */

    be->conv_fwd(IMG(net->z_stem, hw * d->stem_c), OUT(net->x_in, hw * d->in_c), net->w_stem, n,
                 h, w, d->in_c, d->stem_c, d->stem_k, 1);
    bn_forward(net, IMG(net->a_stem, hw * d->stem_c), &net->sv_stem,
               IMG(net->z_stem, hw * d->stem_c), NULL, &net->bn_stem, n * h * w, d->stem_c, 1, train);
    lap(net, t, &t0, 0);
    for (int i = 0; i < d->nblocks; i++) {
        Block *k = &net->blk[i];
        if (!net->on[i]) continue;
        /* the active slice: K x K centre of the depthwise weights, the first E
         * expanded channels; weights are read with the full tensors' pitches */
        int pin = n * k->h * k->w, pout = n * k->ho * k->wo, Em = k->emax;
        int K = net->arch.k[i], E = net->arch.e[i] * k->ci, off = (k->kmax - K) / 2;
        size_t in_img = (size_t)k->h * k->w, out_img = (size_t)k->ho * k->wo;
        const float *x = IMG(input_of(net, i), in_img * k->ci);   /* [n,h,w,Ci] */
        float *z_exp = IMG(k->z_exp, in_img * E), *a_exp = IMG(k->a_exp, in_img * E);
        float *z_dw = IMG(k->z_dw, out_img * E), *a_dw = IMG(k->a_dw, out_img * E);
        float *z_proj = IMG(k->z_proj, out_img * k->co), *out = IMG(k->out, out_img * k->co);
        const float *wdw = k->w_dw + (size_t)off * k->kmax * Em + (size_t)off * Em;
        const float *res = k->s == 1 && k->ci == k->co ? x : NULL;   /* the residual */
        if (train && be->load_bn) {   /* z_exp [n,h,w,E] -> z_dw [n,ho,wo,E] -> z_proj -> out [n,ho,wo,Co] */
            BnStats se = bn_stats_of(net, &k->sv_exp, &k->bn_exp), sd = bn_stats_of(net, &k->sv_dw, &k->bn_dw);
            BnStats sp = bn_stats_of(net, &k->sv_proj, &k->bn_proj);
            BnLoad ebn = bn_read(&k->sv_exp, &k->bn_exp, 1), dbn = bn_read(&k->sv_dw, &k->bn_dw, 1);
            BnLoad pbn = bn_read(&k->sv_proj, &k->bn_proj, 0);
            be->gemm_bn(0, 0, pin, E, k->ci, x, k->ci, NULL, k->w_exp, Em, NULL, 0, z_exp, E, &se);
            be->dw_fwd(z_dw, &sd, z_exp, &ebn, wdw, k->kmax * Em, Em, n, k->h, k->w, E, K, k->s);
            be->gemm_bn(0, 0, pout, k->co, E, z_dw, E, &dbn, k->w_proj, k->co, NULL, 0, z_proj, k->co, &sp);
            be->bn_apply(out, z_proj, &pbn, res, pout, k->co);
            lap(net, t, &t0, 1 + i);
            continue;
        }
        if (train) {
            pw_bn_forward(net, a_exp, z_exp, &k->sv_exp, &k->bn_exp, x, k->ci, k->w_exp, Em, NULL, pin, E,
                          k->ci, 1, 1);
            be->dw_fwd(z_dw, NULL, a_exp, NULL, wdw, k->kmax * Em, Em, n, k->h, k->w, E, K, k->s);
            bn_forward(net, a_dw, &k->sv_dw, z_dw, NULL, &k->bn_dw, pout, E, 1, 1);
        } else {        /* fused ops that never write z_exp, z_dw */
            pw_bn_forward(net, a_exp, z_exp, &k->sv_exp, &k->bn_exp, x, k->ci, k->w_exp, Em, NULL, pin, E,
                          k->ci, 1, 0);
            be->dw_bn_eval(a_dw, a_exp, wdw, k->kmax * Em, Em, k->bn_dw.gamma, k->bn_dw.beta,
                           k->bn_dw.run_mean, k->bn_dw.run_var, n, k->h, k->w, E, K, k->s, 1);
        }
        pw_bn_forward(net, out, z_proj, &k->sv_proj, &k->bn_proj, a_dw, E, k->w_proj, k->co, res, pout,
                      k->co, E, 0, train);
        lap(net, t, &t0, 1 + i);
    }
    size_t head_img = (size_t)net->hh * net->hw;
    int ph = n * net->hh * net->hw, cl = d->nblocks ? net->blk[d->nblocks - 1].co : d->stem_c;
    const float *x = IMG(input_of(net, d->nblocks), head_img * cl);   /* [n,hh,hw,Cl] */
    float *z_head = IMG(net->z_head, head_img * d->head_c), *a_head = IMG(net->a_head, head_img * d->head_c);
    float *pooled = OUT(net->pooled, d->head_c), *logits = OUT(net->logits, d->classes);
    if (train && be->load_bn) {      /* the pool reads z_head through its batchnorm */
        BnStats sh = bn_stats_of(net, &net->sv_head, &net->bn_head);
        BnLoad hbn = bn_read(&net->sv_head, &net->bn_head, 1);
        be->gemm_bn(0, 0, ph, d->head_c, cl, x, cl, NULL, net->w_head, d->head_c, NULL, 0, z_head, d->head_c, &sh);
        be->gap_fwd(pooled, z_head, &hbn, n, net->hh * net->hw, d->head_c);
    } else {
        pw_bn_forward(net, a_head, z_head, &net->sv_head, &net->bn_head, x, cl, net->w_head, d->head_c,
                      NULL, ph, d->head_c, cl, 1, train);
        be->gap_fwd(pooled, a_head, NULL, n, net->hh * net->hw, d->head_c);
    }
    const float *fin = pooled;             /* the last linear layer's input [n,F] */
    int F = d->head_c;
    if (d->mlp) {                          /* the projection head's hidden layer */
        F = d->mlp;
        float *a_mlp = OUT(net->a_mlp, F);
        pw_bn_forward(net, a_mlp, OUT(net->z_mlp, F), &net->sv_mlp, &net->bn_mlp, pooled, d->head_c,
                      net->w_mlp, F, NULL, n, F, d->head_c, 1, train);
        fin = a_mlp;
    }
    be->gemm(0, 0, n, d->classes, F, 1, fin, F, net->w_fc, d->classes, 0, logits, d->classes);
    be->bias_fwd(logits, net->b_fc, n, d->classes);
    lap(net, t, &t0, 1 + d->nblocks);
#undef IMG
#undef OUT
}

/* Inference splits the batch when the backend asks for it (Backend.eval_piece:
 * the CPU does; a GPU runs the whole batch at once). Then each thread runs
 * whole pieces of `piece` images through the network on its own, in its own
 * slot of the activation tensors (images [t*piece, (t+1)*piece) for thread t),
 * so a piece's activations stay in the core's cache and the threads never wait
 * for each other; the ops then run single-threaded (nested OpenMP regions are
 * inactive). */
static void forward(Net *net, int B, int train, double *t)
{
    int piece = net->be->eval_piece;
    if (train || piece <= 0 || B <= piece) {
        forward_part(net, 0, 0, B, train, t);
        return;
    }
    int pieces = (B + piece - 1) / piece, threads = omp_get_max_threads();
    int slots = threads * piece <= B;   /* else each piece at its own images */
    int nl = net->d.nblocks + 2, used = pieces < threads ? pieces : threads;
    double *tt = t ? nta_calloc((size_t)threads * nl, sizeof *tt) : NULL;   /* [threads, nl] */
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < pieces; p++) {
        int b0 = p * piece, s0 = slots ? omp_get_thread_num() * piece : b0;
        forward_part(net, b0, s0, B - b0 < piece ? B - b0 : piece, 0,
                     tt ? tt + (size_t)omp_get_thread_num() * nl : NULL);
    }
    /* the threads ran their pieces side by side: a layer's share of the wall
     * time is its time summed over the pieces, over the threads that ran them */
    for (int th = 0; tt && th < threads; th++)
        for (int l = 0; l < nl; l++) t[l] += tt[(size_t)th * nl + l] / used;
    free(tt);
}

void net_forward(Net *net, int B, int train) { forward(net, B, train, NULL); }

void net_forward_timed(Net *net, int B, double *sec)
{
    memset(sec, 0, ((size_t)net->d.nblocks + 2) * sizeof *sec);
    forward(net, B, 0, sec);
}

double net_loss(Net *net, int B, int *correct)
{
    if (net->loss == LOSS_L1) {
        if (correct) *correct = 0;
        return net->be->l1(net->dlogits, net->logits, net->t_in, B);
    }
    return net->be->xent(net->dlogits, correct, net->logits, net->y_in, B, net->d.classes);
}

void net_train_loss(Net *net, int B, int count)
{
    double *acc = count ? net->stats : NULL;
    if (net->loss == LOSS_L1) net->be->l1_acc(net->dlogits, acc, net->logits, net->t_in, B);
    else net->be->xent_acc(net->dlogits, acc, net->logits, net->y_in, B, net->d.classes);
}

void net_stats_add(Net *net, double loss, int correct)
{
    net->stats_host[0] += loss, net->stats_host[1] += correct;
}

double net_stats_take(Net *net, int *correct)
{
    double dev[2];
    net->be->download(dev, net->stats, sizeof dev);
    net->be->zero(net->stats, sizeof dev);
    double loss = dev[0] + net->stats_host[0];
    if (correct) *correct = (int)(dev[1] + net->stats_host[1]);
    net->stats_host[0] = net->stats_host[1] = 0;
    return loss;
}

double net_ssl_loss(Net *net, int B, float tau, int *correct)
{
    const Backend *be = net->be;
    int L = net->d.classes;
    if (!net->d.mlp) nta_die("internal: net_ssl_loss on a network without a projection head");
    be->l2norm_fwd(net->emb, net->emb_norm, net->logits, B, L);
    double loss = be->ntxent(net->demb, correct, net->emb, B, L, tau);
    be->l2norm_bwd(net->dlogits, net->demb, net->emb, net->emb_norm, B, L);
    return loss;
}

/* ---------------------------------------------------------- backward */

/* dz = BN backward of dy (in place allowed); parameter gradients accumulate */
static void bn_backward(Net *net, float *dz, const float *dy, const float *z, const BnSaved *sv,
                        const BnParams *bn, BnParams *gbn, int P, int C, int relu6)
{
    net->be->bn_bwd(dz, gbn->gamma, gbn->beta, dy, z, sv->mean, sv->istd, bn->gamma, bn->beta,
                    P, C, relu6);
}

/* g = dy masked by ReLU6 (in place allowed), its means saved in sv for a
 * backward BnLoad; parameter gradients accumulate (load_bn) */
static void bn_backward_sums(Net *net, float *g, const float *dy, const float *z, const BnSaved *sv,
                             const BnParams *bn, BnParams *gbn, int P, int C, int relu6)
{
    net->be->bn_bwd_sums(g, sv->g_mean, sv->gx_mean, gbn->gamma, gbn->beta, dy, z, sv->mean, sv->istd, bn->gamma,
                         bn->beta, P, C, relu6);
}

void net_backward(Net *net, int B)
{
    const Backend *be = net->be;
    const NetDesc *d = &net->d;
    int L = d->classes, Ch = d->head_c;
    int ph = B * net->hh * net->hw, cl = d->nblocks ? net->blk[d->nblocks - 1].co : d->stem_c;
    float *g0 = net->gbuf[0], *g1 = net->gbuf[1], *g2 = net->gbuf[2];

    /* linear (and the projection head) and pool: dpooled [B,Ch] in g1, then
     * da_head [B,hh,hw,Ch] in g0 */
    int M = d->mlp, F = M ? M : Ch;
    const float *fin = M ? net->a_mlp : net->pooled;      /* the linear layer's input [B,F] */
    be->gemm(1, 0, F, L, B, 1, fin, F, net->dlogits, L, 1, net->g_fc, L);
    be->bias_bwd(net->gb_fc, net->dlogits, B, L);
    be->gemm(0, 1, B, F, L, 1, net->dlogits, L, net->w_fc, L, 0, M ? g2 : g1, F);
    if (M) {                                               /* da_mlp in g2 -> dz_mlp -> dpooled */
        bn_backward(net, g2, g2, net->z_mlp, &net->sv_mlp, &net->bn_mlp, &net->gbn_mlp, B, M, 1);
        be->gemm(1, 0, Ch, M, B, 1, net->pooled, Ch, g2, M, 1, net->g_mlp, M);
        be->gemm(0, 1, B, Ch, M, 1, g2, M, net->w_mlp, M, 0, g1, Ch);
    }
    if (net->dpooled_on) be->add(g1, net->dpooled_add, (size_t)B * Ch);
    be->gap_bwd(g0, g1, B, net->hh * net->hw, Ch);
    const float *x = input_of(net, d->nblocks);
    if (be->load_bn) {     /* g0 keeps the masked gradient; the gemms read dz_head from it */
        BnLoad hg = bn_grad_read(&net->sv_head, &net->bn_head, net->z_head);
        bn_backward_sums(net, g0, g0, net->z_head, &net->sv_head, &net->bn_head, &net->gbn_head, ph, Ch, 1);
        be->gemm_bn(1, 0, cl, Ch, ph, x, cl, NULL, g0, Ch, &hg, 1, net->g_head, Ch, NULL);
        be->gemm_bn(0, 1, ph, cl, Ch, g0, Ch, &hg, net->w_head, Ch, NULL, 0, g1, cl, NULL);
    } else {
        bn_backward(net, g0, g0, net->z_head, &net->sv_head, &net->bn_head, &net->gbn_head, ph, Ch, 1);
        be->gemm(1, 0, cl, Ch, ph, 1, x, cl, g0, Ch, 1, net->g_head, Ch);
        be->gemm(0, 1, ph, cl, Ch, 1, g0, Ch, net->w_head, Ch, 0, g1, cl);
    }
    float *dout = g1, *spare = g0;                         /* gradient of the last output */

    for (int i = d->nblocks - 1; i >= 0; i--) {
        Block *k = &net->blk[i];
        if (!net->on[i]) continue;
        int pin = B * k->h * k->w, pout = B * k->ho * k->wo, Em = k->emax;
        int K = net->arch.k[i], E = net->arch.e[i] * k->ci, off = (k->kmax - K) / 2;
        size_t wo = (size_t)off * k->kmax * Em + (size_t)off * Em;  /* window offset */
        const float *in = input_of(net, i);
        int residual = k->s == 1 && k->ci == k->co;
        if (be->load_bn) {
            /* the same with fused batchnorms: spare, g2, spare hold the masked
             * gradients g of z_proj, z_dw, z_exp in turn, and the ops after
             * each bn_bwd_sums read dz from them (bn_grad_read); the
             * depthwise activations are read from z_exp and z_dw (bn_read) */
            BnLoad pg = bn_grad_read(&k->sv_proj, &k->bn_proj, k->z_proj);
            BnLoad dg = bn_grad_read(&k->sv_dw, &k->bn_dw, k->z_dw);
            BnLoad eg = bn_grad_read(&k->sv_exp, &k->bn_exp, k->z_exp);
            BnLoad dbn = bn_read(&k->sv_dw, &k->bn_dw, 1), ebn = bn_read(&k->sv_exp, &k->bn_exp, 1);
            bn_backward_sums(net, spare, dout, k->z_proj, &k->sv_proj, &k->bn_proj, &k->gbn_proj, pout, k->co, 0);
            be->gemm_bn(1, 0, E, k->co, pout, k->z_dw, E, &dbn, spare, k->co, &pg, 1, k->g_proj, k->co, NULL);
            be->gemm_bn(0, 1, pout, E, k->co, spare, k->co, &pg, k->w_proj, k->co, NULL, 0, g2, E, NULL);
            bn_backward_sums(net, g2, g2, k->z_dw, &k->sv_dw, &k->bn_dw, &k->gbn_dw, pout, E, 1);
            be->dw_bwd_w(k->g_dw + wo, k->kmax * Em, Em, g2, &dg, k->z_exp, &ebn, B, k->h, k->w, E, K, k->s);
            be->dw_bwd_x(spare, g2, &dg, k->w_dw + wo, k->kmax * Em, Em, B, k->h, k->w, E, K, k->s);
            bn_backward_sums(net, spare, spare, k->z_exp, &k->sv_exp, &k->bn_exp, &k->gbn_exp, pin, E, 1);
            be->gemm_bn(1, 0, k->ci, E, pin, in, k->ci, NULL, spare, E, &eg, 1, k->g_exp, Em, NULL);
            be->gemm_bn(0, 1, pin, k->ci, E, spare, E, &eg, k->w_exp, Em, NULL, residual, residual ? dout : g2,
                        k->ci, NULL);
            if (residual) continue;                        /* dout now holds din */
            float *t = dout;                               /* din becomes dout */
            dout = g2, g2 = t;
            continue;
        }
        /* project: dz_proj in spare, then da_dw [B,ho,wo,E] in g2 */
        bn_backward(net, spare, dout, k->z_proj, &k->sv_proj, &k->bn_proj, &k->gbn_proj, pout,
                    k->co, 0);
        be->gemm(1, 0, E, k->co, pout, 1, k->a_dw, E, spare, k->co, 1, k->g_proj, k->co);
        be->gemm(0, 1, pout, E, k->co, 1, spare, k->co, k->w_proj, k->co, 0, g2, E);
        /* depthwise: dz_dw in g2, da_exp [B,h,w,E] in spare */
        bn_backward(net, g2, g2, k->z_dw, &k->sv_dw, &k->bn_dw, &k->gbn_dw, pout, E, 1);
        be->dw_bwd_w(k->g_dw + wo, k->kmax * Em, Em, g2, NULL, k->a_exp, NULL, B, k->h, k->w, E, K, k->s);
        be->dw_bwd_x(spare, g2, NULL, k->w_dw + wo, k->kmax * Em, Em, B, k->h, k->w, E, K, k->s);
        /* expand: dz_exp in spare, then din [B,h,w,Ci] in g2; with a residual,
         * din is added onto dout (the same shape, no longer needed) */
        bn_backward(net, spare, spare, k->z_exp, &k->sv_exp, &k->bn_exp, &k->gbn_exp, pin, E, 1);
        be->gemm(1, 0, k->ci, E, pin, 1, in, k->ci, spare, E, 1, k->g_exp, Em);
        if (residual) {
            be->gemm(0, 1, pin, k->ci, E, 1, spare, E, k->w_exp, Em, 1, dout, k->ci);
            continue;                                      /* dout now holds din */
        }
        be->gemm(0, 1, pin, k->ci, E, 1, spare, E, k->w_exp, Em, 0, g2, k->ci);
        float *t = dout;                                   /* din becomes dout */
        dout = g2, g2 = t;
    }
    /* stem: dz_stem in place, then the weight gradient */
    int ps = B * d->in_h * d->in_w;
    BnLoad sg = bn_grad_read(&net->sv_stem, &net->bn_stem, net->z_stem);
    if (be->load_bn)
        bn_backward_sums(net, dout, dout, net->z_stem, &net->sv_stem, &net->bn_stem, &net->gbn_stem, ps, d->stem_c, 1);
    else
        bn_backward(net, dout, dout, net->z_stem, &net->sv_stem, &net->bn_stem, &net->gbn_stem, ps, d->stem_c, 1);
    be->conv_bwd_w(net->g_stem, dout, be->load_bn ? &sg : NULL, net->x_in, B, d->in_h, d->in_w, d->in_c,
                   d->stem_c, d->stem_k, 1);
}

void net_zero_grad(Net *net) { net->be->zero(net->g, net->nfloats * sizeof(float)); }

/* One SGD step over the whole arena (one launch on the GPU) */
void net_update(Net *net, float lr, float momentum, float wd)
{
    net->be->upload(net->lr, &lr, sizeof lr);
    net->be->sgd(net->p, net->m, net->g, net->decay, net->nfloats, net->lr, momentum, wd);
}

/* The kinds of recorded graphs */
enum { GRAPH_STEP = 1, GRAPH_PASS };

/* The device work of a training step (key->B, momentum, wd), the learning
 * rate already in net->lr */
static void train_step_ops(Net *net, const NetGraphKey *key)
{
    net_zero_grad(net);
    net_forward(net, key->B, 1);
    net_train_loss(net, key->B, 1);
    net_backward(net, key->B);
    net->be->sgd(net->p, net->m, net->g, net->decay, net->nfloats, net->lr, key->momentum, key->wd);
}

/* The device work of one pass (key->B, count) */
static void train_pass_ops(Net *net, const NetGraphKey *key)
{
    net_forward(net, key->B, 1);
    net_train_loss(net, key->B, key->count);
    net_backward(net, key->B);
}

/* ops for key: on key's first use as called (its entry replaces the least
 * recently used one; the backend's scratch is sized by it), on its second
 * recorded as a graph and run, later its graph run. As called where the
 * backend has no graphs or they are off. */
static void graph_or_ops(Net *net, const NetGraphKey *key, void (*ops)(Net *, const NetGraphKey *))
{
    const Backend *be = net->be;
    if (!be->graph_begin) {
        ops(net, key);
        return;
    }
    NetGraph *e = NULL, *lru = &net->graphs[0];
    for (int i = 0; i < NET_GRAPHS; i++) {
        NetGraph *g = &net->graphs[i];
        if (!memcmp(&g->key, key, sizeof *key)) e = g;
        if (g->used < lru->used) lru = g;
    }
    if (!e) {
        if (lru->graph) be->graph_free(lru->graph);
        *lru = (NetGraph){.key = *key, .used = ++net->graph_tick};
        ops(net, key);
        return;
    }
    e->used = ++net->graph_tick;
    if (!e->graph && be->graph_begin()) {
        ops(net, key);
        e->graph = be->graph_end();
    }
    if (e->graph) be->graph_run(e->graph);
    else ops(net, key);           /* graphs off (NTA_CUDA_SYNC=1) */
}

void net_train_step(Net *net, int B, float lr, float momentum, float wd)
{
    net->be->upload(net->lr, &lr, sizeof lr);
    NetGraphKey key = {.kind = GRAPH_STEP, .B = B, .momentum = momentum, .wd = wd,
                       .bn_momentum = net->bn_momentum, .arch = net->arch};
    graph_or_ops(net, &key, train_step_ops);
}

void net_train_pass(Net *net, int B, int count)
{
    NetGraphKey key = {.kind = GRAPH_PASS, .B = B, .count = !!count, .bn_momentum = net->bn_momentum,
                       .arch = net->arch};
    graph_or_ops(net, &key, train_pass_ops);
}

/* Data-parallel training (dist.c): between the last backward pass of a step
 * and net_update, the gradient slots of the running statistics (PARAM_STAT
 * tensors have no gradient, and be->sgd leaves them alone) carry the
 * statistics, so that one all-reduce over the gradient arena averages both. */
void net_stats_to_grad(Net *net)
{
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind != PARAM_STAT) continue;
        net->be->zero(net->g + pi->off, pi->n * sizeof(float));
        net->be->add(net->g + pi->off, net->p + pi->off, pi->n);
    }
}

void net_stats_from_grad(Net *net)
{
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind != PARAM_STAT) continue;
        net->be->zero(net->p + pi->off, pi->n * sizeof(float));
        net->be->add(net->p + pi->off, net->g + pi->off, pi->n);
    }
}

float *net_grad_arena(Net *net, size_t *n)
{
    *n = net->nfloats;
    return net->g;
}

/* ---------------------------------------------- moving weights between nets */

/* Copy tensor sp of a supernet (host copy src) into tensor tp of a network
 * holding a slice of it (host copy dst): the centred KxK window of depthwise
 * weights, the leading rows and columns of everything else. */
static void copy_slice(float *dst, const ParamInfo *tp, const float *src, const ParamInfo *sp)
{
    if (strstr(tp->name, ".dw.w")) {                      /* [K,K,E] inside [Km,Km,Em] */
        int K = tp->dims[0], E = tp->dims[2], Km = sp->dims[0], Em = sp->dims[2], o = (Km - K) / 2;
        for (int y = 0; y < K; y++)
            for (int x = 0; x < K; x++)
                memcpy(dst + (size_t)(y * K + x) * E, src + (size_t)((y + o) * Km + x + o) * Em,
                       (size_t)E * sizeof(float));
    } else if (tp->ndim >= 2) {                           /* [R,C] inside [Rm,Cm] (the stem: whole) */
        int R = 1, C = tp->dims[tp->ndim - 1], Cm = sp->dims[sp->ndim - 1];
        for (int i = 0; i < tp->ndim - 1; i++) R *= tp->dims[i];
        for (int r = 0; r < R; r++) memcpy(dst + (size_t)r * C, src + (size_t)r * Cm, (size_t)C * sizeof(float));
    } else {
        memcpy(dst, src, tp->n * sizeof(float));          /* [C] vectors: the leading C */
    }
}

const ParamInfo *net_param(const Net *net, const char *name)
{
    for (int i = 0; i < net->nparam; i++)
        if (!strcmp(net->param[i].name, name)) return &net->param[i];
    return NULL;
}

/* Copy every tensor of dst that src has (block j of dst is block map[j] of
 * src; map NULL: the same index), sliced as copy_slice does, except the
 * tensors whose names start with `skip` (NULL: none). */
static void copy_params(Net *dst, const Net *src, const int *map, const char *skip)
{
    float *hs = nta_malloc(src->nfloats * sizeof(float)), *hd = nta_malloc(dst->nfloats * sizeof(float));
    src->be->download(hs, src->p, src->nfloats * sizeof(float));
    dst->be->download(hd, dst->p, dst->nfloats * sizeof(float));
    for (int i = 0; i < dst->nparam; i++) {
        const ParamInfo *tp = &dst->param[i];
        char name[64];
        if (skip && !strncmp(tp->name, skip, strlen(skip))) continue;
        if (tp->name[0] == 'b' && map) snprintf(name, sizeof name, "b%d%s", map[atoi(tp->name + 1)], strchr(tp->name, '.'));
        else snprintf(name, sizeof name, "%s", tp->name);
        const ParamInfo *sp = net_param(src, name);
        if (!sp) nta_die("internal: tensor '%s' has no counterpart '%s'", tp->name, name);
        copy_slice(hd + tp->off, tp, hs + sp->off, sp);
    }
    dst->be->upload(dst->p, hd, dst->nfloats * sizeof(float));
    free(hs), free(hd);
}

Net *net_extract(const Net *super, const Arch *a, int B)
{
    NetDesc sd = arch_standalone(&super->d, a);
    int first[NET_MAX_STAGES + 1], ns = net_stages(&super->d, first), map[NET_MAX_BLOCKS], nb = 0;
    for (int s = 0; s < ns; s++)
        for (int j = 0; j < a->depth[s]; j++) map[nb++] = first[s] + j;
    Net *net = net_create(&sd, super->loss, super->be, B, 0, 0);
    copy_params(net, super, map, NULL);
    return net;
}

Net *net_rehead(const Net *src, int classes, int loss, uint64_t seed)
{
    NetDesc d = src->d;
    d.classes = classes;
    d.mlp = 0;                              /* a projection head is dropped with the old linear layer */
    Net *net = net_create(&d, loss, src->be, src->B, seed, 0);
    copy_params(net, src, NULL, "fc.");
    return net;
}

void net_set_linear(Net *net, const float *w, const float *b)
{
    const NetDesc *d = &net->d;
    if (d->mlp) nta_die("internal: net_set_linear on a network with a projection head");
    net->be->upload(net->w_fc, w, (size_t)d->head_c * d->classes * sizeof(float));
    net->be->upload(net->b_fc, b, (size_t)d->classes * sizeof(float));
}

/* ---------------------------------------------- batchnorm recalibration */

/* Running statistics are not shared between sub-architectures: before an
 * architecture is evaluated, reset them and average the batch statistics of
 * training batches (momentum 1/(t+1) makes the running value the plain mean
 * of the batches seen). Batches are not augmented. */

/* Recalibration's start: every running mean 0, every running variance 1. */
static void reset_stats(Net *net)
{
    const Backend *be = net->be;
    float *host = nta_malloc(net->nfloats * sizeof(float));
    be->download(host, net->p, net->nfloats * sizeof(float));
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind != PARAM_STAT) continue;
        float v = strcmp(strrchr(pi->name, '.'), ".var") == 0 ? 1.0f : 0.0f;
        for (size_t j = 0; j < pi->n; j++) host[pi->off + j] = v;
    }
    be->upload(net->p, host, net->nfloats * sizeof(float));
    free(host);
}

/* One training-mode forward pass of the B images idx of split s: batch
 * statistics, the running ones averaged over the t + 1 batches so far. */
static void stats_pass(Net *net, const DataSplits *d, const Dataset *s, const int *idx, int B, int t, float *x,
                       int32_t *y)
{
    data_batch(d, s, idx, B, x, y, NULL);
    net->be->upload(net->x_in, x, (size_t)B * s->h * s->w * s->c * sizeof(float));
    float keep = net->bn_momentum;
    net->bn_momentum = 1.0f / (t + 1);
    net_forward(net, B, 1);
    net->bn_momentum = keep;
}

void net_recalibrate(Net *net, const DataSplits *d, int batches, uint64_t seed)
{
    const Dataset *s = &d->train;
    int B = net->B < s->n ? net->B : s->n;
    reset_stats(net);
    Rng r;
    rng_seed(&r, seed);
    int *idx = nta_malloc((size_t)B * sizeof(int));
    float *x = nta_malloc((size_t)B * s->h * s->w * s->c * sizeof(float));
    int32_t *y = nta_malloc((size_t)B * sizeof(int32_t));
    for (int t = 0; t < batches; t++) {
        for (int j = 0; j < B; j++) idx[j] = (int)rng_below(&r, (uint32_t)s->n);
        stats_pass(net, d, s, idx, B, t, x, y);
    }
    free(idx), free(x), free(y);
}

void net_recalibrate_split(Net *net, const DataSplits *d, const Dataset *s, float *pooled)
{
    int nb = (s->n + net->B - 1) / net->B, ch = net->d.head_c;   /* nb batches of sizes differing by at most 1 */
    reset_stats(net);
    int *idx = nta_malloc(((size_t)net->B + 1) * sizeof(int));
    float *x = nta_malloc(((size_t)net->B * s->h * s->w * s->c + 1) * sizeof(float));
    int32_t *y = nta_malloc(((size_t)net->B + 1) * sizeof(int32_t));
    for (int t = 0; t < nb; t++) {
        int i0 = (int)((int64_t)s->n * t / nb), b = (int)((int64_t)s->n * (t + 1) / nb) - i0;
        for (int j = 0; j < b; j++) idx[j] = i0 + j;
        stats_pass(net, d, s, idx, b, t, x, y);
        net->be->download(pooled + (size_t)i0 * ch, net->pooled, (size_t)b * ch * sizeof(float));
    }
    free(idx), free(x), free(y);
}

/* -------------------------------------------------------- model files */

/* Layout (little-endian):
 *   "NTAMODEL" | u32 version | u32 text bytes | text (description line, then
 *   free-form metadata lines) | u32 tensors | per tensor: u32 name bytes, name,
 *   u32 ndim, u32 dims[ndim], f32 data | u32 CRC32 of everything before it.
 * A checkpoint holds every tensor twice: the parameters, then the momentum
 * under the same names prefixed with "m:". */
#define MODEL_MAGIC "NTAMODEL"
#define MODEL_VERSION 1u

typedef struct { uint8_t *buf; size_t len, cap; } Bytes;

static void bytes_put(Bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->buf = realloc(b->buf, b->cap);
        if (!b->buf) nta_die("out of memory writing a model (%zu bytes)", b->cap);
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void bytes_u32(Bytes *b, uint32_t v) { bytes_put(b, &v, 4); }

static void put_tensors(Bytes *b, const Net *net, const float *arena, const char *prefix)
{
    float *host = nta_malloc(net->nfloats * sizeof(float));
    net->be->download(host, arena, net->nfloats * sizeof(float));
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        bytes_u32(b, (uint32_t)(strlen(prefix) + strlen(pi->name)));
        bytes_put(b, prefix, strlen(prefix));
        bytes_put(b, pi->name, strlen(pi->name));
        bytes_u32(b, (uint32_t)pi->ndim);
        for (int j = 0; j < pi->ndim; j++) bytes_u32(b, (uint32_t)pi->dims[j]);
        bytes_put(b, host + pi->off, pi->n * sizeof(float));
    }
    free(host);
}

int net_save(const Net *net, const char *path, const char *meta, int checkpoint, char *err, size_t errlen)
{
    char desc[2048], tmp[4096];
    net_desc_format(&net->d, desc, sizeof desc);
    Bytes b = {0};
    bytes_put(&b, MODEL_MAGIC, 8);
    bytes_u32(&b, MODEL_VERSION);
    char norm[256] = "";
    if (net->norm_set)
        snprintf(norm, sizeof norm, "norm=%.9g,%.9g,%.9g,%.9g/%.9g,%.9g,%.9g,%.9g\n", net->norm_mean[0],
                 net->norm_mean[1], net->norm_mean[2], net->norm_mean[3], net->norm_std[0],
                 net->norm_std[1], net->norm_std[2], net->norm_std[3]);
    size_t tl = strlen(desc) + 1 + (meta ? strlen(meta) : 0) + strlen(norm);
    bytes_u32(&b, (uint32_t)tl);
    bytes_put(&b, desc, strlen(desc));
    bytes_put(&b, "\n", 1);
    if (meta) bytes_put(&b, meta, strlen(meta));
    bytes_put(&b, norm, strlen(norm));
    bytes_u32(&b, (uint32_t)net->nparam * (checkpoint ? 2 : 1));
    put_tensors(&b, net, net->p, "");
    if (checkpoint) put_tensors(&b, net, net->m, "m:");
    bytes_u32(&b, (uint32_t)crc32(0L, b.buf, (uInt)b.len));

    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot write the model '%s': it exists and is not a regular file", path);
        free(b.buf);
        return -1;
    }
    /* write to a temporary name, flush to disk, rename over the target */
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(b.buf, 1, b.len, f) == b.len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write the model '%s': %s", path, strerror(errno));
        remove(tmp);
        free(b.buf);
        return -1;
    }
    free(b.buf);
    return 0;
}

/* Bounds-checked reader over a loaded file. */
typedef struct { const uint8_t *p; size_t len, at; int bad; } Reader;

static const void *rd(Reader *r, size_t n)
{
    if (r->bad || n > r->len - r->at) { r->bad = 1; return NULL; }
    r->at += n;
    return r->p + r->at - n;
}

static uint32_t rd_u32(Reader *r)
{
    const void *p = rd(r, 4);
    uint32_t v = 0;
    if (p) memcpy(&v, p, 4);
    return v;
}

#define MODEL_MAX_NAME 64   /* longest tensor name we believe ("m:" + ParamInfo's name) */

/* Walk the nt tensors that follow, before any network exists: each must be
 * whole (a printable name, 1 to 4 dimensions, its data inside the file) and
 * hold only finite values, and nothing may follow the last. *total = the
 * values they hold, which bounds what the description may claim. */
static int check_tensors(Reader *r, uint32_t nt, size_t *total, const char *path, char *err,
                         size_t errlen)
{
    *total = 0;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t nl = rd_u32(r), ndim;
        const uint8_t *name = nl <= MODEL_MAX_NAME ? rd(r, nl) : NULL;
        int ok = name && nl > 0;
        for (uint32_t j = 0; ok && j < nl; j++) ok = name[j] > ' ' && name[j] < 0x7f;
        if (!ok) {
            snprintf(err, errlen, "'%s': tensor %u of %u has %s", path, i, nt,
                     r->bad ? "been cut short" : "no name of 1 to 64 printable characters");
            return -1;
        }
        ndim = rd_u32(r);
        size_t n = 1, room;
        ok = ndim >= 1 && ndim <= 4;
        for (uint32_t j = 0; ok && j < ndim; j++) {
            uint32_t v = rd_u32(r);
            room = (r->len - r->at) / sizeof(float);
            ok = v > 0 && n <= room / v;           /* so n * v cannot overflow */
            n *= ok ? v : 1;
        }
        const uint8_t *data = ok ? rd(r, n * sizeof(float)) : NULL;
        if (!data) {
            snprintf(err, errlen, "'%s': tensor '%.*s' has %s", path, (int)nl, name,
                     ndim < 1 || ndim > 4 ? "not 1 to 4 dimensions"
                                          : "a zero dimension or more values than the file holds");
            return -1;
        }
        for (size_t j = 0; j < n; j++) {
            float v;
            memcpy(&v, data + j * sizeof v, sizeof v);
            if (!isfinite(v)) {
                snprintf(err, errlen, "'%s': tensor '%.*s' holds %s at element %zu", path,
                         (int)nl, name, isnan(v) ? "NaN" : "an infinity", j);
                return -1;
            }
        }
        *total += n;
    }
    if (r->at != r->len) {
        snprintf(err, errlen, "'%s' has %zu stray bytes after its last tensor", path,
                 r->len - r->at);
        return -1;
    }
    return 0;
}

/* Read the net's tensors (names prefixed by prefix) into host [nfloats]; the
 * file is already known to be well formed (check_tensors). */
static int get_tensors(Reader *r, const Net *net, float *host, const char *prefix,
                       const char *path, char *err, size_t errlen)
{
    size_t pl = strlen(prefix);
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        uint32_t nl = rd_u32(r);
        const char *name = rd(r, nl);
        uint32_t ndim = rd_u32(r);
        int same = name && nl == pl + strlen(pi->name) && !memcmp(name, prefix, pl) &&
                   !memcmp(name + pl, pi->name, nl - pl) && ndim == (uint32_t)pi->ndim;
        for (int j = 0; same && j < pi->ndim; j++) same = rd_u32(r) == (uint32_t)pi->dims[j];
        const void *data = same ? rd(r, pi->n * sizeof(float)) : NULL;
        if (!data) {
            snprintf(err, errlen, "'%s': tensor %d is not '%s%s' of the expected shape", path, i,
                     prefix, pi->name);
            return -1;
        }
        float *dst = host + pi->off;
        memcpy(dst, data, pi->n * sizeof(float));
        const char *leaf = strrchr(pi->name, '.');
        if (pi->kind == PARAM_STAT && !pl && leaf && !strcmp(leaf, ".var"))
            for (size_t j = 0; j < pi->n; j++)
                if (dst[j] < 0) {
                    snprintf(err, errlen, "'%s': tensor '%s' (a batchnorm running variance) "
                             "has the negative value %g at element %zu", path, pi->name,
                             (double)dst[j], j);
                    return -1;
                }
    }
    return 0;
}

/* The input normalisation line "norm=M0,M1,M2,M3/S0,S1,S2,S3": means finite,
 * standard deviations finite and positive. 0, or -1 with a message. */
static int parse_norm(const char *line, float mean[4], float std[4], const char *path,
                      char *err, size_t errlen)
{
    if (sscanf(line, "norm=%g,%g,%g,%g/%g,%g,%g,%g", &mean[0], &mean[1], &mean[2], &mean[3],
               &std[0], &std[1], &std[2], &std[3]) != 8) {
        snprintf(err, errlen, "'%s': malformed normalisation line '%.60s'", path, line);
        return -1;
    }
    for (int c = 0; c < 4; c++)
        if (!isfinite(mean[c]) || !isfinite(std[c]) || !(std[c] > 0)) {
            snprintf(err, errlen, "'%s': the input normalisation of channel %d (mean %g, std %g) "
                     "needs a finite mean and a finite std above 0", path, c, (double)mean[c],
                     (double)std[c]);
            return -1;
        }
    return 0;
}

/* Every claim of the file is checked against the file before the network is
 * built: the header, the description, the normalisation line, then every
 * tensor (whole, finite, nothing after the last), and the description's
 * parameter count against the values the tensors hold, so a small file cannot
 * make us allocate for a large network. Only then net_create, the names and
 * shapes against its parameter table, and the batchnorm variances. */
Net *net_load(const char *path, int loss, const Backend *be, int B, char *err, size_t errlen)
{
    size_t len = 0, total = 0;
    uint8_t *buf = nta_read_file(path, (size_t)1 << 34, &len, err, errlen);
    if (!buf) return NULL;
    Net *net = NULL;
    float *host = NULL;
    Reader r = {buf, len >= 4 ? len - 4 : 0, 0, 0};
    char text[sizeof net->meta + 2048];
    float nmean[4], nstd[4];
    NetDesc d;
    uint32_t crc;
    if (len < 20 || memcmp(buf, MODEL_MAGIC, 8) != 0) {
        snprintf(err, errlen, "'%s' is not an nta model (bad magic)", path);
        goto fail;
    }
    memcpy(&crc, buf + len - 4, 4);
    if (crc != (uint32_t)crc32(0L, buf, (uInt)(len - 4))) {
        snprintf(err, errlen, "'%s' is corrupt or truncated (CRC mismatch)", path);
        goto fail;
    }
    rd(&r, 8);
    uint32_t version = rd_u32(&r);
    if (version != MODEL_VERSION) {
        snprintf(err, errlen, "'%s' has format version %u; this nta reads version %u", path,
                 version, MODEL_VERSION);
        goto fail;
    }
    uint32_t tl = rd_u32(&r);
    const char *t = tl < sizeof text ? rd(&r, tl) : NULL;
    if (!t) {
        snprintf(err, errlen, "'%s': bad header", path);
        goto fail;
    }
    memcpy(text, t, tl);
    text[tl] = 0;
    char why[512];
    if (net_desc_parse(&d, text, why, sizeof why) != 0) {
        snprintf(err, errlen, "'%s': %s", path, why);
        goto fail;
    }
    /* the metadata: the lines after the description; net_save writes the
     * normalisation line last */
    char *meta = strchr(text, '\n'), *norm = NULL;
    meta = meta ? meta + 1 : text + tl;
    for (char *p = meta - 1; (p = strstr(p, "\nnorm=")) != NULL; p++) norm = p + 1;
    if (norm && parse_norm(norm, nmean, nstd, path, err, errlen)) goto fail;
    if (norm) *norm = 0;                             /* meta keeps the caller's lines only */
    if (strlen(meta) >= sizeof net->meta) {
        snprintf(err, errlen, "'%s': %zu bytes of metadata, over the %zu this nta keeps", path,
                 strlen(meta), sizeof net->meta - 1);
        goto fail;
    }
    uint32_t nt = rd_u32(&r);
    size_t start = r.at;
    if (check_tensors(&r, nt, &total, path, err, errlen)) goto fail;
    if (net_params(&d) > total) {
        snprintf(err, errlen, "'%s': its description needs %zu parameters, its tensors hold %zu "
                 "values", path, net_params(&d), total);
        goto fail;
    }

    net = net_create(&d, loss, be, B, 0, 0);
    snprintf(net->meta, sizeof net->meta, "%s", meta);
    if (norm) {
        net->norm_set = 1;
        memcpy(net->norm_mean, nmean, sizeof nmean);
        memcpy(net->norm_std, nstd, sizeof nstd);
    }
    if (nt != (uint32_t)net->nparam && nt != 2u * (uint32_t)net->nparam) {
        snprintf(err, errlen, "'%s' holds %u tensors, its network needs %d", path, nt, net->nparam);
        goto fail;
    }
    host = nta_malloc(net->nfloats * sizeof(float));
    be->download(host, net->p, net->nfloats * sizeof(float));
    r.at = start;
    if (get_tensors(&r, net, host, "", path, err, errlen)) goto fail;
    be->upload(net->p, host, net->nfloats * sizeof(float));
    if (nt == 2u * (uint32_t)net->nparam) {
        if (get_tensors(&r, net, host, "m:", path, err, errlen)) goto fail;
        be->upload(net->m, host, net->nfloats * sizeof(float));
        net->has_momentum = 1;
    }
    free(host);
    free(buf);
    return net;
fail:
    free(host);
    free(buf);
    net_free(net);
    return NULL;
}
