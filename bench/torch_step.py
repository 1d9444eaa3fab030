#!/usr/bin/python3
"""bench/torch_step.py: the PyTorch side of bench/step.c. Images per second of
one training step and of inference of an nta network on random data, timed the
way bench/step.c times it. The network is built from nta's description text
(net_desc_format in net.c, printed by `bench/step --desc NET`), so it is
defined in one place.

    usage: /usr/bin/python3 bench/torch_step.py BATCH [THREADS [SECONDS [DESC]]]

DESC: e.g. "in=28x28x1 stem=16k3 blocks=k3e6s2c24,k3e6s1c24 head=128 classes=10";
without it, the reference network's (asked from bench/step --desc reference).
Prints: "torch batch B threads T: train X img/s, infer Y img/s".
The training step is zero_grad, forward (train mode), mean cross-entropy,
backward, SGD (lr 0.01, momentum 0.9, weight decay 5e-5 on conv and linear
weights only, as nta's net_update does). Inference is eval mode under no_grad.
Each is run once to warm up, then timed in 5 windows of SECONDS / 5 each
(BENCH_WINDOWS in the environment to change it; 1 gives the mean); the
figure is the best window's (bench/step.c's rule).
"""
import os
import re
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_desc(text):
    """nta's description "in=HxWxC stem=CkK blocks=kKeEsScC,... head=C classes=L"
    -> dict(in_hwc=(H, W, C), stem=(C, K), blocks=[(k, e, s, co), ...], head, classes).
    A supernet's description (with space=...) is refused: only fixed networks."""
    f = dict(t.split("=", 1) for t in text.split())
    if "space" in f:
        raise ValueError(f"'{text}' is a supernet; give a fixed network (arch_standalone)")
    h, w, c = (int(v) for v in f["in"].split("x"))
    sc, sk = (int(v) for v in re.fullmatch(r"(\d+)k(\d+)", f["stem"]).groups())
    blocks = []
    for b in filter(None, f["blocks"].split(",")):
        m = re.fullmatch(r"k(\d+)e(\d+)s(\d+)c(\d+)", b)
        if not m:
            raise ValueError(f"bad block '{b}' in '{text}'")
        blocks.append(tuple(int(v) for v in m.groups()))
    return dict(in_hwc=(h, w, c), stem=(sc, sk), blocks=blocks, head=int(f["head"]),
                classes=int(f["classes"]))


def nta_desc(name="reference"):
    """The description of bench/step's network NAME (bench/step --desc NAME)."""
    step = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step")
    return subprocess.run([step, "--desc", name], check=True, capture_output=True,
                          text=True).stdout.strip()


class Block(nn.Module):
    """1x1 expand + BN + ReLU6, KxK depthwise + BN + ReLU6, 1x1 project + BN,
    residual when stride 1 and Ci == Co."""

    def __init__(self, ci, k, e, s, co):
        super().__init__()
        E = e * ci
        self.exp = nn.Conv2d(ci, E, 1, bias=False)
        self.exp_bn = nn.BatchNorm2d(E)
        self.dw = nn.Conv2d(E, E, k, stride=s, padding=k // 2, groups=E, bias=False)
        self.dw_bn = nn.BatchNorm2d(E)
        self.proj = nn.Conv2d(E, co, 1, bias=False)
        self.proj_bn = nn.BatchNorm2d(co)
        self.residual = s == 1 and ci == co

    def forward(self, x):
        y = F.relu6(self.exp_bn(self.exp(x)))
        y = F.relu6(self.dw_bn(self.dw(y)))
        y = self.proj_bn(self.proj(y))
        return y + x if self.residual else y


class Net(nn.Module):
    """The network of a parsed description (parse_desc): stem KxK conv + BN + ReLU6,
    the blocks, 1x1 head conv + BN + ReLU6, global average pool, linear."""

    def __init__(self, desc):
        super().__init__()
        in_c = desc["in_hwc"][2]
        stem_c, stem_k = desc["stem"]
        self.stem = nn.Conv2d(in_c, stem_c, stem_k, padding=stem_k // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem_c)
        blocks, c = [], stem_c
        for k, e, s, co in desc["blocks"]:
            blocks.append(Block(c, k, e, s, co))
            c = co
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, desc["head"], 1, bias=False)
        self.head_bn = nn.BatchNorm2d(desc["head"])
        self.fc = nn.Linear(desc["head"], desc["classes"])

    def forward(self, x):
        x = F.relu6(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = F.relu6(self.head_bn(self.head(x)))
        return self.fc(x.mean(dim=(2, 3)))


def sgd(net):
    """nta's net_update as a torch optimiser: lr 0.01, momentum 0.9, weight decay
    5e-5 on conv and linear weights only (nta: PARAM_WEIGHT), not BN or the bias."""
    decay = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ids = {id(p) for p in decay}
    rest = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.SGD([{"params": decay, "weight_decay": 5e-5},
                            {"params": rest, "weight_decay": 0.0}], lr=0.01, momentum=0.9)


WINDOWS = max(1, int(os.environ.get("BENCH_WINDOWS", "5")))


def rate(step, secs):
    """Calls per second of step(): one warm-up call, then WINDOWS timing windows of
    secs / WINDOWS each (whole calls until the window's time has passed); the best
    window's rate. The same rule as bench/step.c's rate."""
    step()
    best = 0.0
    for _ in range(WINDOWS):
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            t = time.perf_counter() - t0
            if t >= secs / WINDOWS:
                break
        best = max(best, n / t)
    return best


def main():
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} BATCH [THREADS [SECONDS [DESC]]]", file=sys.stderr)
        return 2
    B = int(sys.argv[1])
    T = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    desc = parse_desc(sys.argv[4] if len(sys.argv) > 4 else nta_desc())
    if B < 2 or T < 1:
        print(f"torch_step: bad batch {B} or threads {T}", file=sys.stderr)
        return 1
    torch.set_num_threads(T)
    torch.manual_seed(1)
    net = Net(desc)
    opt = sgd(net)
    h, w, c = desc["in_hwc"]
    x = torch.randn(B, c, h, w)
    y = torch.randint(0, desc["classes"], (B,))

    def train_step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.no_grad():
            net(x)

    net.train()
    tr = rate(train_step, secs) * B
    net.eval()
    inf = rate(infer_step, secs) * B
    print(f"torch batch {B} threads {T}: train {tr:.0f} img/s, infer {inf:.0f} img/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
