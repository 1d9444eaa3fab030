#!/usr/bin/python3
"""bench/torch_gpu.py: the vendor libraries on what bench/gpu_bench.cu times.

Kernels: matrix products through cuBLAS (torch.matmul, FP32 and TF32) and the
reference network's batchnorm and depthwise convolution through cuDNN
(channels-last, batch 128); one table: kernel, GFLOP/s or GB/s (the same
minimum traffic as gpu_bench).

Networks (--nets FILE, the lines of `gpu_bench --nets`: name, tab, nta's
description of the network): each built in PyTorch layer for layer as nta
builds it (stem conv + BN + ReLU6; per block 1x1 expand + BN + ReLU6, KxK
depthwise + BN + ReLU6, 1x1 project + BN, residual where stride 1 and the
channels match; 1x1 head + BN + ReLU6, average pool, linear), channels-last,
cudnn.benchmark on, at batch 64 and 256: training steps (SGD with momentum,
cross-entropy; weight decay on every parameter, where nta decays the
weights only) and inference, in images per second, eager and with CUDA
graphs (torch.cuda.CUDAGraph; 0 where this PyTorch cannot capture). With
--out FILE the rates go there as lines "name batch train_eager train_graph
infer_eager infer_graph", for `gpu_bench --torch FILE`.
Run by test/gpu.sh when python3-torch sees a GPU.
"""
import argparse
import re

import torch
import torch.nn.functional as F


def time_ms(fn, reps=20):
    fn()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(reps):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / reps


# ------------------------------------------------------------ networks

def parse_desc(text):
    """nta's description "in=28x28x1 stem=16k3 blocks=k3e6s2c24,... head=128 classes=10"."""
    f = dict(kv.split("=", 1) for kv in text.split())
    h, w, c = (int(v) for v in f["in"].split("x"))
    stem_c, stem_k = (int(v) for v in re.fullmatch(r"(\d+)k(\d+)", f["stem"]).groups())
    blocks = [tuple(int(v) for v in re.fullmatch(r"k(\d+)e(\d+)s(\d+)c(\d+)", b).groups())
              for b in f["blocks"].split(",")]
    return dict(h=h, w=w, c=c, stem_c=stem_c, stem_k=stem_k, blocks=blocks,
                head_c=int(f["head"]), classes=int(f["classes"]))


def conv_bn(ci, co, k, s, groups=1, relu6=True):
    layers = [torch.nn.Conv2d(ci, co, k, s, k // 2, groups=groups, bias=False), torch.nn.BatchNorm2d(co)]
    return torch.nn.Sequential(*layers, *([torch.nn.ReLU6()] if relu6 else []))


class Block(torch.nn.Module):
    def __init__(self, ci, k, e, s, co):
        super().__init__()
        E = e * ci
        self.body = torch.nn.Sequential(conv_bn(ci, E, 1, 1), conv_bn(E, E, k, s, groups=E),
                                        conv_bn(E, co, 1, 1, relu6=False))
        self.residual = s == 1 and ci == co

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def build(d):
    layers, c = [conv_bn(d["c"], d["stem_c"], d["stem_k"], 1)], d["stem_c"]
    for k, e, s, co in d["blocks"]:
        layers.append(Block(c, k, e, s, co))
        c = co
    layers += [conv_bn(c, d["head_c"], 1, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
               torch.nn.Linear(d["head_c"], d["classes"])]
    return torch.nn.Sequential(*layers)


def rate(fn, B, reps=30):
    for _ in range(3):
        fn()
    return B / (time_ms(fn, reps) * 1e-3)


def graphed(fn):
    """fn recorded once as a CUDA graph (after warm-up on a side stream), or None."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return g.replay
    except Exception as e:  # an older PyTorch, or an op it cannot capture
        print("torch_gpu.py: CUDA graph capture failed (%s); no graph column" % e)
        return None


def net_rates(d, B, dev):
    """img/s: training eager, training graph, inference eager, inference graph (0: not run)."""
    torch.backends.cudnn.benchmark = True
    model = build(d).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-5)
    x = torch.randn(B, d["c"], d["h"], d["w"], device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, d["classes"], (B,), device=dev)

    def train():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.train()
    out = [rate(train, B)]
    g = graphed(train)
    out.append(rate(g, B) if g else 0.0)
    model.eval()
    out.append(rate(infer, B))
    g = graphed(infer)
    out.append(rate(g, B) if g else 0.0)
    return out


def networks(path, out_path, dev):
    rows = []
    with open(path) as f:
        nets = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    for name, text in nets:
        d = parse_desc(text)
        for B in (64, 256):
            rows.append((name, B, net_rates(d, B, dev)))
    print("\n%-15s %5s %12s %12s %12s %12s  (img/s)" % ("network", "batch", "train eager", "train graph",
                                                        "infer eager", "infer graph"))
    for name, B, v in rows:
        print("%-15s %5d %12.0f %12.0f %12.0f %12.0f" % (name, B, *v))
    if out_path:
        with open(out_path, "w") as f:
            for name, B, v in rows:
                f.write("%s %d %.1f %.1f %.1f %.1f\n" % (name, B, *v))


# ------------------------------------------------------------ kernels

def kernels():
    dev = torch.device("cuda")
    rows = []
    B = 128
    # block 0 at 28x28 (16 -> 96) and block 3 at 7x7 (32 -> 192), as gpu_bench
    for name, P, c, E in (("b0", B * 28 * 28, 16, 96), ("b3", B * 7 * 7, 32, 192)):
        x = torch.randn(P, c, device=dev)
        w = torch.randn(c, E, device=dev)
        dz = torch.randn(P, E, device=dev)
        cases = (("fwd", lambda: x @ w, P, E, c), ("dgrad", lambda: dz @ w.t(), P, c, E),
                 ("wgrad", lambda: x.t() @ dz, c, E, P))
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for what, fn, M, N, K in cases:
                ms = time_ms(fn)
                rows.append(("torch%s %s %s %dx%dx%d" % (" tf32" if tf32 else "", name, what, M, N, K),
                             2.0 * M * N * K / (ms * 1e6), "GFLOP/s"))
    torch.backends.cuda.matmul.allow_tf32 = False
    C = 96
    z = torch.randn(B, C, 28, 28, device=dev).to(memory_format=torch.channels_last)
    mb = z.numel() * 4
    rm, rv = torch.zeros(C, device=dev), torch.ones(C, device=dev)
    g, b = torch.ones(C, device=dev), torch.zeros(C, device=dev)
    ms = time_ms(lambda: F.batch_norm(z, rm, rv, g, b, training=True, momentum=0.1))
    rows.append(("torch batch_norm train 100352x96 (z, y)", 2 * mb / (ms * 1e6), "GB/s"))
    ms = time_ms(lambda: F.batch_norm(z, rm, rv, g, b, training=False))
    rows.append(("torch batch_norm eval 100352x96 (z, y)", 2 * mb / (ms * 1e6), "GB/s"))
    wd = torch.randn(C, 1, 3, 3, device=dev)
    ob = B * C * 14 * 14 * 4
    ms = time_ms(lambda: F.conv2d(z, wd, stride=2, padding=1, groups=C))
    rows.append(("torch depthwise 28x28x96 k3 s2 (x, y)", (mb + ob) / (ms * 1e6), "GB/s"))
    print("%-44s %12s  (PyTorch %s, cuDNN %s)" % ("kernel", "rate", torch.__version__,
                                                 torch.backends.cudnn.version()))
    for name, v, unit in rows:
        print("%-44s %8.0f %s" % (name, v, unit))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", help="the networks to time: the output of `gpu_bench --nets`")
    ap.add_argument("--out", help="write the networks' rates here (for `gpu_bench --torch`)")
    a = ap.parse_args()
    kernels()
    if a.nets:
        networks(a.nets, a.out, torch.device("cuda"))


if __name__ == "__main__":
    main()
