#!/usr/bin/python3
"""test/make_fixture.py: the outside reference for test/test_fixture.c.

Builds in PyTorch the small 2-block network nta builds from

    in=12x12x1 stem=8k3 blocks=k3e3s2c12,k5e4s1c12 head=16 classes=5

gives it random (non-default) weights, runs one train-mode forward on a batch
of 4, a mean cross-entropy loss and a backward, and writes test/fixture.bin in
nta's layouts and parameter names:

    NAME                 the initial parameter (BN running mean 0, var 1)
    grad:NAME            its gradient (trainable tensors only)
    after:NAME           a BN running mean/var after the forward
    input, labels        [N,H,W,C] NHWC input; labels as float32
    logits, loss         [N,L]; the mean loss (one float)

File format (little-endian), one record per tensor:
    u32 name bytes | name | u32 element count | float32 data

Not run by CI. Regenerate by hand (deterministic):
    /usr/bin/python3 test/make_fixture.py
"""
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

N, H, W, CIN = 4, 12, 12, 1
STEM_C, STEM_K = 8, 3
BLOCKS = [(3, 3, 2, 12), (5, 4, 1, 12)]  # k, e, s, co
HEAD_C, CLASSES = 16, 5


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class Block(nn.Module):
    def __init__(self, ci, k, e, s, co):
        super().__init__()
        E = e * ci
        self.exp = nn.Conv2d(ci, E, 1, bias=False)
        self.exp_bn = bn(E)
        self.dw = nn.Conv2d(E, E, k, stride=s, padding=k // 2, groups=E, bias=False)
        self.dw_bn = bn(E)
        self.proj = nn.Conv2d(E, co, 1, bias=False)
        self.proj_bn = bn(co)
        self.residual = s == 1 and ci == co

    def forward(self, x):
        y = F.relu6(self.exp_bn(self.exp(x)))
        y = F.relu6(self.dw_bn(self.dw(y)))
        y = self.proj_bn(self.proj(y))
        return y + x if self.residual else y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(CIN, STEM_C, STEM_K, padding=STEM_K // 2, bias=False)
        self.stem_bn = bn(STEM_C)
        blocks, c = [], STEM_C
        for k, e, s, co in BLOCKS:
            blocks.append(Block(c, k, e, s, co))
            c = co
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, HEAD_C, 1, bias=False)
        self.head_bn = bn(HEAD_C)
        self.fc = nn.Linear(HEAD_C, CLASSES)

    def forward(self, x):
        x = F.relu6(self.stem_bn(self.stem(x)))
        for b in self.blocks:
            x = b(x)
        x = F.relu6(self.head_bn(self.head(x)))
        return self.fc(x.mean(dim=(2, 3)))


def randomise(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_().mul_(0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.normal_().mul_(0.5)
                m.bias.normal_().mul_(0.1)


def nta_tensors(net):
    """nta weight name -> (conv module, layout kind); nta BN prefix -> BN module."""
    conv = {"stem.w": (net.stem, "full"), "head.w": (net.head, "1x1")}
    bns = {"stem": net.stem_bn, "head": net.head_bn}
    for i, b in enumerate(net.blocks):
        conv[f"b{i}.exp.w"] = (b.exp, "1x1")
        conv[f"b{i}.dw.w"] = (b.dw, "dw")
        conv[f"b{i}.proj.w"] = (b.proj, "1x1")
        bns[f"b{i}.exp"] = b.exp_bn
        bns[f"b{i}.dw"] = b.dw_bn
        bns[f"b{i}.proj"] = b.proj_bn
    return conv, bns


def layout(t, kind):
    if kind == "full":   # [Co,Ci,K,K] -> [K,K,Ci,Co]
        return t.permute(2, 3, 1, 0)
    if kind == "1x1":    # [Co,Ci,1,1] -> [Ci,Co]
        return t[:, :, 0, 0].t()
    if kind == "dw":     # [E,1,K,K] -> [K,K,E]
        return t[:, 0].permute(1, 2, 0)
    raise ValueError(kind)


def write_fixture(name, rec, loss):
    """test/NAME in the format test_fixture.c reads: per tensor of rec
    [(name, tensor)], the name's length (uint32), the name, the value count
    (uint32), the values as float32, all little-endian."""
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    with open(out, "wb") as f:
        for key, t in rec:
            t = t.detach().contiguous().float().reshape(-1)
            b = key.encode()
            f.write(struct.pack("<I", len(b)) + b + struct.pack("<I", t.numel()))
            f.write(t.numpy().astype("<f4").tobytes())
    print(f"{out}: {len(rec)} tensors, {os.path.getsize(out)} bytes, loss {loss.item():.6f}",
          file=sys.stderr)


def main():
    torch.manual_seed(20240611)
    torch.set_num_threads(1)  # one summation order, the same bytes on every run
    net = Net().float()
    randomise(net)
    net.train()
    x = torch.randn(N, CIN, H, W)
    y = torch.randint(0, CLASSES, (N,))

    conv, bns = nta_tensors(net)
    rec = []  # (name, float32 tensor)

    def put(name, t):
        rec.append((name, t.detach().contiguous().float().reshape(-1).clone()))

    put("input", x.permute(0, 2, 3, 1))
    put("labels", y.float())
    for name, (m, kind) in conv.items():
        put(name, layout(m.weight, kind))
    for p, m in bns.items():
        put(p + ".bn.gamma", m.weight)
        put(p + ".bn.beta", m.bias)
        put(p + ".bn.mean", m.running_mean)
        put(p + ".bn.var", m.running_var)
    put("fc.w", net.fc.weight.t())
    put("fc.b", net.fc.bias)

    net.zero_grad()
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    put("logits", logits)
    put("loss", loss.reshape(1))
    for name, (m, kind) in conv.items():
        put("grad:" + name, layout(m.weight.grad, kind))
    for p, m in bns.items():
        put("grad:" + p + ".bn.gamma", m.weight.grad)
        put("grad:" + p + ".bn.beta", m.bias.grad)
    put("grad:fc.w", net.fc.weight.grad.t())
    put("grad:fc.b", net.fc.bias.grad)
    for p, m in bns.items():
        put("after:" + p + ".bn.mean", m.running_mean)
        put("after:" + p + ".bn.var", m.running_var)

    write_fixture("fixture.bin", rec, loss)

if __name__ == "__main__":
    main()
