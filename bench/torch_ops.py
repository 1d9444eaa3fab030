#!/usr/bin/python3
"""bench/torch_ops.py: the PyTorch side of bench/ops.c. Where a PyTorch training
step and an inference pass of an nta network spend their time, grouped under
ops.c's op names, on random data.

    usage: /usr/bin/python3 bench/torch_ops.py BATCH [THREADS [STEPS]]
               [--desc DESC] [--nta FILE] [--check]

DESC: the network's description (bench/step --desc NET); the reference
network's by default. FILE: bench/ops's output for the same batch and threads;
with it, one merged table per pass is printed (op | calls | nta ms | torch ms |
ratio, ratio = torch ms / nta ms, above 1 where nta is faster); without it,
torch's own tables in ops.c's format. --check: first compare the op-by-op
step's gradients and inference logits with autograd's and nn.Module's.

The step runs op by op through the kernels autograd would call (F.conv2d,
aten.convolution_backward, aten.native_batch_norm(_backward), ...), in the
network's order and on its real tensors (NCHW, as bench/torch_step.py), each
call timed on its own; the minimum over STEPS of each op's per-step time is
reported, as ops.c does. Autograd's bookkeeping (graph, gradient accumulation)
is not in any op; the header gives the real nn.Module + autograd step beside
the op sum. Where the two libraries split the work differently:
  - nta fuses ReLU6 into its BN ops; torch's BN rows include its separate ReLU6
    (hardtanh) forward and backward.
  - torch computes a conv's input and weight gradients in one call
    (convolution_backward); here each half is asked for alone, so that 1x1
    convs map onto nta's two gemm calls and the depthwise ones onto dw_bwd_x
    and dw_bwd_w.
  - bias_fwd: torch adds the bias inside the classifier's gemm (addmm): n/a.
  - gemm_bn_eval (inference): nta's fused 1x1 conv + BN + ReLU6; torch runs
    conv, batch_norm and relu6 one after another (eager mode fuses nothing).
  - dw_bn_eval (inference): nta's fused depthwise conv + BN + ReLU6; torch
    runs the depthwise conv, batch_norm and relu6 one after another.
  - sgd and zero: one torch call over all parameters (optimizer.step,
    zero_grad), against nta's one call per parameter tensor (sgd).
Python's dispatch (a few microseconds a call) is inside every torch figure.
"""
import argparse
import copy
import re
import sys
import time

import torch
import torch.nn.functional as F

from torch_step import Net, nta_desc, parse_desc, sgd

aten = torch.ops.aten
EPS = 1e-5                  # nn.BatchNorm2d's
# ops.c's op names, in its order
OPS = ["gemm", "conv_fwd", "conv_bwd_w", "dw_fwd", "dw_bwd_x", "dw_bwd_w", "bn_fwd_train",
       "bn_fwd_eval", "bn_bwd", "add", "gap_fwd", "gap_bwd", "bias_fwd", "bias_bwd", "xent",
       "sgd", "zero", "gemm_bn_eval", "dw_bn_eval"]
NOT_IN_TORCH = {"bias_fwd": "in gemm"}   # ops torch has no call of its own for


class Timer:
    """Seconds and calls per op name of one step: t(op, fn, *args) runs
    fn(*args), books its time to op and returns its result."""

    def __init__(self):
        self.sec, self.calls = {}, {}

    def __call__(self, op, fn, *args):
        t0 = time.perf_counter()
        r = fn(*args)
        self.sec[op] = self.sec.get(op, 0.0) + time.perf_counter() - t0
        self.calls[op] = self.calls.get(op, 0) + 1
        return r


# ------------------------------------------------------------ the ops

def conv(x, w, s=1, groups=1):
    """y [B,Co,Ho,Wo] = x [B,Ci,H,W] conv w [Co,Ci/groups,K,K], stride s, padding K/2"""
    return F.conv2d(x, w, None, s, w.shape[-1] // 2, 1, groups)


def conv_bwd(dy, x, w, s, groups, want_dx):
    """One half of a conv's backward: dx [B,Ci,H,W] (want_dx) or dw [Co,Ci/groups,K,K]"""
    p = w.shape[-1] // 2
    r = aten.convolution_backward(dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], groups,
                                  [want_dx, not want_dx, False])
    return r[0] if want_dx else r[1]


def bn_train(z, bn, relu6):
    """BN of z [B,C,H,W] with batch statistics (running ones updated), then ReLU6
    if relu6: (y, BN output before ReLU6, saved mean [C], saved 1/std [C])"""
    o, mean, istd = aten.native_batch_norm(z, bn.weight, bn.bias, bn.running_mean,
                                           bn.running_var, True, bn.momentum, EPS)
    return (F.relu6(o) if relu6 else o), o, mean, istd


def bn_bwd(dy, z, saved, bn, relu6, grads):
    """Backward of bn_train: dz [B,C,H,W]; dgamma, dbeta [C] into grads"""
    _, o, mean, istd = saved
    if relu6:
        dy = aten.hardtanh_backward(dy, o, 0.0, 6.0)
    dz, grads[bn.weight], grads[bn.bias] = aten.native_batch_norm_backward(
        dy, z, bn.weight, bn.running_mean, bn.running_var, mean, istd, True, EPS,
        [True, True, True])
    return dz


def bn_eval(z, bn, relu6):
    """BN of z [B,C,H,W] with the running statistics (+ReLU6)"""
    y = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, EPS)
    return F.relu6(y) if relu6 else y


def conv_bn_eval(x, w, bn, relu6):
    """nta's gemm_bn_eval: BN (+ReLU6) of the 1x1 conv of x [B,Ci,H,W] by w [Co,Ci,1,1]"""
    return bn_eval(conv(x, w), bn, relu6)


def dw_bn_eval(x, w, stride, groups, bn):
    """nta's dw_bn_eval: BN + ReLU6 of the depthwise conv of x [B,E,H,W] by w [E,1,K,K]"""
    return bn_eval(conv(x, w, stride, groups), bn, True)


def xent(z, y):
    """Mean softmax cross-entropy of logits z [B,L] against y [B] and its gradient
    dz [B,L], through the kernels F.cross_entropy and its backward run"""
    ls = torch.log_softmax(z, 1)
    loss, total = aten.nll_loss_forward(ls, y, None, 1, -100)
    g = aten.nll_loss_backward(torch.ones_like(loss), ls, y, None, 1, -100, total)
    return aten._log_softmax_backward_data(g, ls, 1, z.dtype)


def gap_bwd(dp, shape):
    """mean over HxW's backward as autograd runs it: dp [B,C] -> [B,C,H,W]"""
    b, c, h, w = shape
    return dp[:, :, None, None].expand(b, c, h, w) / (h * w)


# ---------------------------------------------------------- the passes

def block_forward(t, b, x):
    """One block in train mode: its output and what its backward needs"""
    E = b.dw.weight.shape[0]
    z1 = t("gemm", conv, x, b.exp.weight)                              # [B,E,H,W]
    s1 = t("bn_fwd_train", bn_train, z1, b.exp_bn, True)
    z2 = t("dw_fwd", conv, s1[0], b.dw.weight, b.dw.stride[0], E)      # [B,E,Ho,Wo]
    s2 = t("bn_fwd_train", bn_train, z2, b.dw_bn, True)
    z3 = t("gemm", conv, s2[0], b.proj.weight)                         # [B,Co,Ho,Wo]
    s3 = t("bn_fwd_train", bn_train, z3, b.proj_bn, False)
    out = t("add", torch.add, s3[0], x) if b.residual else s3[0]
    return out, (x, z1, s1, z2, s2, z3, s3)


def block_backward(t, b, dout, saved, grads):
    """dx of one block from its output's gradient dout; parameter gradients into grads"""
    x, z1, s1, z2, s2, z3, s3 = saved
    E, s = b.dw.weight.shape[0], b.dw.stride[0]
    dz3 = t("bn_bwd", bn_bwd, dout, z3, s3, b.proj_bn, False, grads)
    grads[b.proj.weight] = t("gemm", conv_bwd, dz3, s2[0], b.proj.weight, 1, 1, False)
    da2 = t("gemm", conv_bwd, dz3, s2[0], b.proj.weight, 1, 1, True)
    dz2 = t("bn_bwd", bn_bwd, da2, z2, s2, b.dw_bn, True, grads)
    grads[b.dw.weight] = t("dw_bwd_w", conv_bwd, dz2, s1[0], b.dw.weight, s, E, False)
    da1 = t("dw_bwd_x", conv_bwd, dz2, s1[0], b.dw.weight, s, E, True)
    dz1 = t("bn_bwd", bn_bwd, da1, z1, s1, b.exp_bn, True, grads)
    grads[b.exp.weight] = t("gemm", conv_bwd, dz1, x, b.exp.weight, 1, 1, False)
    dx = t("gemm", conv_bwd, dz1, x, b.exp.weight, 1, 1, True)
    return t("add", torch.add, dx, dout) if b.residual else dx


def train_step(t, net, opt, x, y):
    """zero_grad, forward, cross-entropy, backward, SGD, op by op; returns the
    parameter gradients {param: grad}"""
    t("zero", opt.zero_grad)
    zs = t("conv_fwd", conv, x, net.stem.weight)                       # [B,16,28,28]
    ss = t("bn_fwd_train", bn_train, zs, net.stem_bn, True)
    a, saved = ss[0], []
    for b in net.blocks:
        a, sv = block_forward(t, b, a)
        saved.append(sv)
    zh = t("gemm", conv, a, net.head.weight)                          # [B,128,hh,hw]
    sh = t("bn_fwd_train", bn_train, zh, net.head_bn, True)
    pooled = t("gap_fwd", torch.mean, sh[0], (2, 3))                   # [B,128]
    logits = t("gemm", F.linear, pooled, net.fc.weight, net.fc.bias)   # [B,L]
    dlogits = t("xent", xent, logits, y)

    g = {}
    g[net.fc.weight] = t("gemm", torch.mm, dlogits.t(), pooled)       # [L,128]
    g[net.fc.bias] = t("bias_bwd", torch.sum, dlogits, 0)
    dpooled = t("gemm", torch.mm, dlogits, net.fc.weight)             # [B,128]
    dah = t("gap_bwd", gap_bwd, dpooled, sh[0].shape)
    dzh = t("bn_bwd", bn_bwd, dah, zh, sh, net.head_bn, True, g)
    g[net.head.weight] = t("gemm", conv_bwd, dzh, a, net.head.weight, 1, 1, False)
    d = t("gemm", conv_bwd, dzh, a, net.head.weight, 1, 1, True)
    for b, sv in zip(reversed(net.blocks), reversed(saved)):
        d = block_backward(t, b, d, sv, g)
    dzs = t("bn_bwd", bn_bwd, d, zs, ss, net.stem_bn, True, g)
    g[net.stem.weight] = t("conv_bwd_w", conv_bwd, dzs, x, net.stem.weight, 1, 1, False)
    for p, gp in g.items():
        p.grad = gp
    t("sgd", opt.step)
    return g


def infer_step(t, net, x):
    """Eval-mode forward, op by op; returns the logits [B,L]"""
    a = t("conv_fwd", conv, x, net.stem.weight)
    a = t("bn_fwd_eval", bn_eval, a, net.stem_bn, True)
    for b in net.blocks:
        E = b.dw.weight.shape[0]
        y = t("gemm_bn_eval", conv_bn_eval, a, b.exp.weight, b.exp_bn, True)
        y = t("dw_bn_eval", dw_bn_eval, y, b.dw.weight, b.dw.stride[0], E, b.dw_bn)
        y = t("gemm_bn_eval", conv_bn_eval, y, b.proj.weight, b.proj_bn, False)
        a = t("add", torch.add, y, a) if b.residual else y
    a = t("gemm_bn_eval", conv_bn_eval, a, net.head.weight, net.head_bn, True)
    pooled = t("gap_fwd", torch.mean, a, (2, 3))
    return t("gemm", F.linear, pooled, net.fc.weight, net.fc.bias)


# ------------------------------------------------------------- driving

def best_of(step, steps):
    """Run step(timer) once to warm up, then `steps` times: (best seconds per op,
    calls per op, best whole step in seconds)"""
    best, calls, best_step = {}, {}, float("inf")
    for i in range(steps + 1):
        t = Timer()
        t0 = time.perf_counter()
        step(t)
        dt = time.perf_counter() - t0
        if i == 0:
            continue
        best_step = min(best_step, dt)
        for op, sec in t.sec.items():
            best[op] = min(best.get(op, float("inf")), sec)
        calls = t.calls
    return best, calls, best_step


def best_real_step(fn, steps):
    """Best seconds of fn() over `steps` calls after one warm-up"""
    fn()
    best = float("inf")
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def check(net, x, y):
    """The op-by-op passes against nn.Module + autograd on a copy: largest
    relative gradient and logit differences; exits if they are off."""
    ref = copy.deepcopy(net)
    ref.train()
    F.cross_entropy(ref(x), y).backward()
    mine = copy.deepcopy(net)
    with torch.no_grad():
        g = train_step(Timer(), mine, torch.optim.SGD(mine.parameters(), lr=0.0), x, y)
    named = dict(mine.named_parameters())
    # relative to each tensor's largest gradient, but at least 1e-3 of the
    # network's (some, e.g. the biases of BN before another BN, are ~0)
    floor = 1e-3 * max(p.grad.abs().max().item() for p in ref.parameters())
    worst = 0.0
    for name, p in ref.named_parameters():
        gp = g[named[name]]
        err = (gp - p.grad).abs().max().item()
        worst = max(worst, err / max(p.grad.abs().max().item(), floor))
    ref.eval()
    with torch.no_grad():
        want = ref(x)
        got = infer_step(Timer(), ref, x)
    diff = ((got - want).abs().max() / want.abs().max()).item()
    print(f"check: gradients within {worst:.1e}, inference logits within {diff:.1e} (relative)",
          file=sys.stderr)
    if worst > 1e-3 or diff > 1e-4:
        sys.exit("torch_ops: the op-by-op passes do not match autograd")


def read_nta(path):
    """bench/ops's output -> {"training step"|"inference": (ms per step,
    {op: (calls, ms)})}"""
    out, cur = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"(training step|inference), .*: ([0-9.]+) ms per step", line)
            if m:
                cur = out[m.group(1)] = (float(m.group(2)), {})
                continue
            m = re.match(r"\| (\w+) \| (\d+) \| ([0-9.]+) \|$", line.strip())
            if m and cur:
                cur[1][m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return out


def fmt_ratio(torch_ms, nta_ms):
    return f"{torch_ms / nta_ms:.2f}" if torch_ms is not None and nta_ms and nta_ms > 0 else "n/a"


def print_table(title, B, T, steps, best, calls, step_s, real_s, nta=None):
    """torch's table in ops.c's format, or merged with nta's (ms per step, {op: (calls, ms)})"""
    print(f"\n{title}, batch {B}, {T} threads (best of {steps} steps): ", end="")
    if nta:
        print(f"nta {nta[0]:.2f} ms per step; torch {step_s * 1e3:.2f} ms op by op, "
              f"{real_s * 1e3:.2f} ms as nn.Module + autograd\n")
        print("| op | calls | nta ms | torch ms | ratio |\n|---|---:|---:|---:|---:|")
    else:
        print(f"{step_s * 1e3:.2f} ms per step op by op, {real_s * 1e3:.2f} ms as nn.Module"
              f" + autograd, {B / real_s:.0f} img/s\n")
        print("| op | calls | ms |\n|---|---:|---:|")
    nsum = tsum = 0.0
    for op in OPS:
        n_calls, n_ms = nta[1].get(op, (0, None)) if nta else (0, None)
        t_calls, t_ms = calls.get(op, 0), (best[op] * 1e3 if op in best else None)
        if not nta:
            if t_calls:
                print(f"| {op} | {t_calls} | {t_ms:.3f} |")
                tsum += t_ms
            continue
        if not n_calls and not t_calls:
            continue
        nsum += n_ms or 0.0
        tsum += t_ms or 0.0
        same = n_calls == t_calls or op in NOT_IN_TORCH
        c = str(n_calls) if same else f"{n_calls} (torch {t_calls})"
        t_txt = f"{t_ms:.3f}" if t_ms is not None else f"n/a ({NOT_IN_TORCH.get(op, 'none')})"
        n_txt = f"{n_ms:.3f}" if n_ms is not None else "n/a"
        print(f"| {op} | {c} | {n_txt} | {t_txt} | {fmt_ratio(t_ms, n_ms)} |")
    if nta:
        print(f"| (sum of ops) | | {nsum:.3f} | {tsum:.3f} | {fmt_ratio(tsum, nsum)} |")
    else:
        print(f"| (sum of ops) | | {tsum:.3f} |")


def main():
    ap = argparse.ArgumentParser(description="PyTorch per-op times (bench/ops.c's side)")
    ap.add_argument("batch", type=int)
    ap.add_argument("threads", type=int, nargs="?", default=2)
    ap.add_argument("steps", type=int, nargs="?", default=20)
    ap.add_argument("--desc", help="network description (bench/step --desc NET)")
    ap.add_argument("--nta", metavar="FILE", help="bench/ops's output to merge with")
    ap.add_argument("--check", action="store_true", help="compare with autograd first")
    a = ap.parse_args()
    B, T, steps = a.batch, a.threads, a.steps
    if B < 2 or T < 1 or steps < 1:
        sys.exit(f"torch_ops: bad batch {B}, threads {T} or steps {steps}")
    nta = read_nta(a.nta) if a.nta else None
    torch.set_num_threads(T)
    torch.manual_seed(1)
    desc = parse_desc(a.desc or nta_desc())
    net = Net(desc)
    h, w, c = desc["in_hwc"]
    x = torch.randn(B, c, h, w)
    y = torch.randint(0, desc["classes"], (B,))
    if a.check:
        check(net, x, y)

    # the real step, as bench/torch_step.py runs it, for the header
    real_opt = sgd(net)

    def real_train():
        real_opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        real_opt.step()

    def real_infer():
        with torch.no_grad():
            net(x)

    net.train()
    real_tr = best_real_step(real_train, steps)
    opt = sgd(net)
    with torch.no_grad():
        best, calls, step_s = best_of(lambda t: train_step(t, net, opt, x, y), steps)
    print_table("training step", B, T, steps, best, calls, step_s, real_tr,
                nta and nta.get("training step"))
    net.eval()
    real_inf = best_real_step(real_infer, steps)
    with torch.no_grad():
        best, calls, step_s = best_of(lambda t: infer_step(t, net, x), steps)
    print_table("inference", B, T, steps, best, calls, step_s, real_inf,
                nta and nta.get("inference"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
