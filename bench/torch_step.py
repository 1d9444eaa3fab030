#!/usr/bin/python3
"""bench/torch_step.py: the PyTorch side of bench/step.c. Images per second of
one training step and of inference of nta's reference 28x28x1 network
(net_reference in net.c) on random data, timed the way bench/step.c times it.

    usage: /usr/bin/python3 bench/torch_step.py BATCH [THREADS [SECONDS]]

Prints: "torch batch B threads T: train X img/s, infer Y img/s".
The training step is zero_grad, forward (train mode), mean cross-entropy,
backward, SGD (lr 0.01, momentum 0.9, weight decay 5e-5 on conv and linear
weights only, as nta's net_update does). Inference is eval mode under no_grad.
Each is run once to warm up, then repeated until SECONDS have passed.
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# net_reference(28, 28, 1, 10): stem 3x3 1->16; blocks (k, e, s, co); head 128; 10 classes
IN_H, IN_W, IN_C = 28, 28, 1
STEM_C, STEM_K = 16, 3
BLOCKS = [(3, 6, 2, 24), (3, 6, 1, 24), (3, 6, 2, 32),
          (3, 6, 1, 32), (3, 6, 2, 64), (3, 6, 1, 64)]
HEAD_C, CLASSES = 128, 10


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
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(IN_C, STEM_C, STEM_K, padding=STEM_K // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(STEM_C)
        blocks, c = [], STEM_C
        for k, e, s, co in BLOCKS:
            blocks.append(Block(c, k, e, s, co))
            c = co
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(c, HEAD_C, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(HEAD_C)
        self.fc = nn.Linear(HEAD_C, CLASSES)

    def forward(self, x):
        x = F.relu6(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = F.relu6(self.head_bn(self.head(x)))
        return self.fc(x.mean(dim=(2, 3)))


def rate(step, secs):
    """Calls per second of step() over `secs`, after one warm-up call (bench/step.c's rate)."""
    n, t0 = 0, 0.0
    while True:
        step()
        n += 1
        if n == 1:
            t0 = time.perf_counter()
        elif time.perf_counter() - t0 > secs:
            return (n - 1) / (time.perf_counter() - t0)


def main():
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} BATCH [THREADS [SECONDS]]", file=sys.stderr)
        return 2
    B = int(sys.argv[1])
    T = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    if B < 2 or T < 1:
        print(f"torch_step: bad batch {B} or threads {T}", file=sys.stderr)
        return 1
    torch.set_num_threads(T)
    torch.manual_seed(1)
    net = Net()
    # decay conv and linear weights only (nta: PARAM_WEIGHT), not BN or the bias
    decay = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ids = {id(p) for p in decay}
    rest = [p for p in net.parameters() if id(p) not in ids]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-5},
                           {"params": rest, "weight_decay": 0.0}], lr=0.01, momentum=0.9)
    x = torch.randn(B, IN_C, IN_H, IN_W)
    y = torch.randint(0, CLASSES, (B,))

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
