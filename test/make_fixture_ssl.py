#!/usr/bin/python3
"""test/make_fixture_ssl.py: the outside reference for the SSL loss in
test/test_fixture.c (test_fixture_ssl).

SimCLR's NT-Xent as PyTorch computes it, on a batch of 2 x 5 views of
projections x [10, 7] (row i and row i + 5 are the two views of image i):

    e = F.normalize(x, dim=1)                     # unit rows (eps 1e-12)
    s = e @ e.T / TAU, s_ii = -inf                # every other row
    loss = F.cross_entropy(s, (i + 5) mod 10)     # the other view as the label

in float64, and writes test/fixture_ssl.bin in test/fixture.bin's format
(records of u32 name bytes | name | u32 count | float32 data):

    x        [10, 7] the projections (nta: l2norm_fwd, then ntxent)
    tau      the temperature (one float)
    loss     the mean loss (one float)
    grad:x   [10, 7] d loss / d x (nta: ntxent, then l2norm_bwd)

Not run by CI. Regenerate by hand (deterministic):
    /usr/bin/python3 test/make_fixture_ssl.py
"""
import torch
import torch.nn.functional as F

from make_fixture import write_fixture

N, D, TAU = 10, 7, 0.5


def main():
    torch.manual_seed(20261201)
    x32 = torch.randn(N, D)
    x = x32.double().requires_grad_(True)
    e = F.normalize(x, dim=1)
    s = e @ e.t() / TAU
    s = s.masked_fill(torch.eye(N, dtype=torch.bool), float("-inf"))
    target = (torch.arange(N) + N // 2) % N
    loss = F.cross_entropy(s, target)
    loss.backward()

    rec = [("x", x32), ("tau", torch.tensor([TAU])), ("loss", loss.detach().reshape(1)),
           ("grad:x", x.grad)]
    write_fixture("fixture_ssl.bin", rec, loss)

if __name__ == "__main__":
    main()
