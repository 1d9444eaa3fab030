/* test/test_fixture.c: the network against an outside reference. test/fixture.bin
 * (written by test/make_fixture.py with PyTorch) holds a small 2-block network's
 * random parameters, a batch, and what PyTorch computed from them in one train
 * step: logits, mean loss, every parameter gradient ("grad:" + name) and the
 * BN running statistics after the forward ("after:" + name). Each is compared
 * per tensor as max|nta - torch| / max|torch| < 1e-4. test/fixture_ssl.bin
 * (test/make_fixture_ssl.py) does the same for the SSL loss: SimCLR's NT-Xent
 * of a batch of projections and its gradient.
 * File format (little-endian): records of u32 name bytes, name, u32 count, f32 data. */
#include "../nta.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_PATH "test/fixture.bin"
#define FIXTURE_SSL_PATH "test/fixture_ssl.bin"
#define FIXTURE_TOL 1e-4
#define FIXTURE_MAX 256

typedef struct {
    char name[64];
    size_t n;
    const float *data;      /* [n], inside Fixture.floats */
} Tensor;

typedef struct {
    uint8_t *buf;
    float *floats;          /* every record's data, copied to aligned memory */
    Tensor t[FIXTURE_MAX];
    int n;
} Fixture;

/* The network make_fixture.py builds:
 * in=12x12x1 stem=8k3 blocks=k3e3s2c12,k5e4s1c12 head=16 classes=5 */
static NetDesc fixture_desc(void)
{
    NetDesc d = {.in_h = 12, .in_w = 12, .in_c = 1, .stem_c = 8, .stem_k = 3, .nblocks = 2,
                 .head_c = 16, .classes = 5};
    d.blk[0] = (BlockDesc){3, 3, 2, 12};
    d.blk[1] = (BlockDesc){5, 4, 1, 12};
    return d;
}

/* Parse the whole file; 0 on success, -1 with a message in err. */
static int fixture_read(Fixture *fx, const char *path, char *err, size_t errlen)
{
    size_t len = 0, at = 0, nf = 0;
    memset(fx, 0, sizeof *fx);
    fx->buf = nta_read_file(path, (size_t)1 << 24, &len, err, errlen);
    if (!fx->buf) return -1;
    fx->floats = nta_malloc(len);            /* more than the data needs */
    while (at < len) {
        uint32_t nl, cnt;
        if (fx->n == FIXTURE_MAX || len - at < 4) goto bad;
        memcpy(&nl, fx->buf + at, 4), at += 4;
        if (nl == 0 || nl >= sizeof fx->t[0].name || len - at < (size_t)nl + 4) goto bad;
        Tensor *t = &fx->t[fx->n++];
        memcpy(t->name, fx->buf + at, nl), at += nl;
        memcpy(&cnt, fx->buf + at, 4), at += 4;
        if ((len - at) / 4 < cnt) goto bad;
        memcpy(fx->floats + nf, fx->buf + at, (size_t)cnt * 4), at += (size_t)cnt * 4;
        t->data = fx->floats + nf, t->n = cnt, nf += cnt;
    }
    return 0;
bad:
    snprintf(err, errlen, "'%s' is malformed near byte %zu (record %d)", path, at, fx->n);
    return -1;
}

static void fixture_free(Fixture *fx)
{
    free(fx->buf);
    free(fx->floats);
}

static const Tensor *fixture_find(const Fixture *fx, const char *name)
{
    for (int i = 0; i < fx->n; i++)
        if (!strcmp(fx->t[i].name, name)) return &fx->t[i];
    return NULL;
}

/* max|a - ref| / max|ref| */
static double rel_err(const float *a, const float *ref, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* One CHECK: `got` [n] against the fixture's tensor `name`. */
static void check_tensor(const Fixture *fx, const char *name, const float *got, size_t n)
{
    const Tensor *t = fixture_find(fx, name);
    if (!t || t->n != n) {
        CHECK(0, "fixture tensor '%s': %s (want %zu floats)", name,
              t ? "wrong count" : "missing", n);
        return;
    }
    double e = rel_err(got, t->data, n);
    CHECK(e < FIXTURE_TOL, "%s: max|nta - torch| / max|torch| = %.3e (limit %.0e)", name, e,
          FIXTURE_TOL);
}

/* The gradient of a project BN's beta is exactly zero in train mode: every path
 * from that BN's output (directly or through residual adds) reaches the loss
 * only through a 1x1 conv followed by a train-mode BN (the next expand, or the
 * head), which subtracts the per-channel mean and so cancels any constant
 * shift. Both sides then hold rounding noise (~1e-8), and dividing by
 * max|torch| would compare noise with noise. Such a tensor is measured against
 * the scale of the same BN's gamma gradient instead: both the difference and
 * torch's own value must be below 1e-4 of it. */
static void check_zero_tensor(const Fixture *fx, const char *name, const char *scale_name,
                              const float *got, size_t n)
{
    const Tensor *t = fixture_find(fx, name), *s = fixture_find(fx, scale_name);
    if (!t || t->n != n || !s) {
        CHECK(0, "fixture tensor '%s' or '%s' missing or of the wrong count", name, scale_name);
        return;
    }
    double scale = max_abs(s->data, s->n), diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)got[i] - t->data[i]));
    double e = diff / scale, z = max_abs(t->data, n) / scale;
    CHECK(e < FIXTURE_TOL && z < FIXTURE_TOL,
          "%s (exactly zero in theory): max|nta - torch| / max|%s| = %.3e, "
          "max|torch| / max|%s| = %.3e (limit %.0e)", name, scale_name, e, scale_name, z,
          FIXTURE_TOL);
}

/* The SSL loss (l2norm, then NT-Xent) against PyTorch's (test/make_fixture_ssl.py):
 * the mean loss and its gradient w.r.t. the projections x. */
static void test_fixture_ssl(void)
{
    Fixture fx;
    char err[512];
    if (fixture_read(&fx, FIXTURE_SSL_PATH, err, sizeof err) != 0) {
        CHECK(0, "cannot read the PyTorch fixture of the SSL loss (run from the project root; regenerate "
                 "with /usr/bin/python3 test/make_fixture_ssl.py): %s", err);
        fixture_free(&fx);
        return;
    }
    const Tensor *x = fixture_find(&fx, "x"), *tau = fixture_find(&fx, "tau");
    const int N = 10, D = 7;
    if (!x || x->n != (size_t)N * D || !tau || tau->n != 1) {
        CHECK(0, "fixture_ssl: x [%d,%d] or tau missing", N, D);
        fixture_free(&fx);
        return;
    }
    const Backend *be = &cpu_backend;
    float *e = nta_malloc((size_t)N * D * sizeof(float)), *de = nta_malloc((size_t)N * D * sizeof(float));
    float *dx = nta_malloc((size_t)N * D * sizeof(float)), norm[10];
    be->l2norm_fwd(e, norm, x->data, N, D);
    float loss = (float)(be->ntxent(de, NULL, e, N, D, tau->data[0]) / N);   /* ntxent returns the sum */
    be->l2norm_bwd(dx, de, e, norm, N, D);
    check_tensor(&fx, "loss", &loss, 1);
    check_tensor(&fx, "grad:x", dx, (size_t)N * D);
    free(e), free(de), free(dx);
    fixture_free(&fx);
}

void test_fixture(void)
{
    test_fixture_ssl();

    Fixture fx;
    char err[512];
    if (fixture_read(&fx, FIXTURE_PATH, err, sizeof err) != 0) {
        CHECK(0, "cannot read the PyTorch fixture (run from the project root; regenerate "
                 "with /usr/bin/python3 test/make_fixture.py): %s", err);
        fixture_free(&fx);
        return;
    }
    NetDesc d = fixture_desc();
    const int B = 4;
    Net *net = net_create(&d, LOSS_XENT, &cpu_backend, B, 1, 0);

    /* parameters, by name: every one of the net's tensors must be in the file */
    int loaded = 0;
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        const Tensor *t = fixture_find(&fx, pi->name);
        if (!t || t->n != pi->n) {
            CHECK(0, "fixture parameter '%s': %s (nta has %zu floats, fixture %zu)", pi->name,
                  t ? "count differs" : "missing", pi->n, t ? t->n : 0);
            continue;
        }
        memcpy(net->p + pi->off, t->data, pi->n * sizeof(float));
        loaded++;
    }
    CHECK(loaded == net->nparam, "fixture supplies %d of the net's %d parameter tensors", loaded,
          net->nparam);
    /* and every plain tensor of the file must be one of the net's parameters */
    for (int i = 0; i < fx.n; i++) {
        const char *nm = fx.t[i].name;
        if (strchr(nm, ':') || !strcmp(nm, "input") || !strcmp(nm, "labels") ||
            !strcmp(nm, "logits") || !strcmp(nm, "loss"))
            continue;
        int found = 0;
        for (int j = 0; j < net->nparam && !found; j++) found = !strcmp(net->param[j].name, nm);
        CHECK(found, "fixture tensor '%s' is no parameter of the net", nm);
    }

    /* the batch (CPU backend: host memory) */
    const Tensor *x = fixture_find(&fx, "input"), *y = fixture_find(&fx, "labels");
    size_t nx = (size_t)B * d.in_h * d.in_w * d.in_c;
    CHECK(x && x->n == nx, "fixture input: want %zu floats, have %zu", nx, x ? x->n : 0);
    CHECK(y && y->n == (size_t)B, "fixture labels: want %d, have %zu", B, y ? y->n : 0);
    if (!x || x->n != nx || !y || y->n != (size_t)B || loaded != net->nparam) {
        net_free(net);
        fixture_free(&fx);
        return;
    }
    memcpy(net->x_in, x->data, nx * sizeof(float));
    for (int i = 0; i < B; i++) net->y_in[i] = (int32_t)y->data[i];

    /* one train step, as the trainer runs it */
    net_zero_grad(net);
    net_forward(net, B, 1);
    float loss = (float)(net_loss(net, B, NULL) / B);   /* net_loss returns the sum */
    net_backward(net, B);

    check_tensor(&fx, "logits", net->logits, (size_t)B * d.classes);
    check_tensor(&fx, "loss", &loss, 1);
    char name[80];
    for (int i = 0; i < net->nparam; i++) {
        const ParamInfo *pi = &net->param[i];
        if (pi->kind == PARAM_STAT) {
            snprintf(name, sizeof name, "after:%s", pi->name);
            check_tensor(&fx, name, net->p + pi->off, pi->n);
        } else if (strstr(pi->name, ".proj.bn.beta")) {
            char scale[80];
            snprintf(name, sizeof name, "grad:%s", pi->name);
            snprintf(scale, sizeof scale, "grad:%.*s.gamma",
                     (int)(strlen(pi->name) - strlen(".beta")), pi->name);
            check_zero_tensor(&fx, name, scale, net->g + pi->off, pi->n);
        } else {
            snprintf(name, sizeof name, "grad:%s", pi->name);
            check_tensor(&fx, name, net->g + pi->off, pi->n);
        }
    }
    net_free(net);
    fixture_free(&fx);
}
