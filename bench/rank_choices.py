#!/usr/bin/env python3
"""Which choices of an architecture order the finetuned metric?

Reads the output of `nta rank SUPERNET --task T ...` (one log per task; the
lines "finetuned: test METRIC V ...; M MFLOPs, ...; architecture A" and
"architecture N: search fitness ...") and prints, per task, Spearman's
correlation of the finetuned metric (better = higher: MAE is negated) with
each choice of the architecture: the mean kernel size, the mean expansion,
the number of blocks, each stage's depth, and the MFLOPs. With 20
architectures one coefficient has a standard error of about 0.23.

    python3 bench/rank_choices.py rank/mnist.log rank/mnist-parity.log ...

This is what `adapt --kind-space 1` (ntaa_kind_space, ntaa.c) is based on.
"""
import re
import sys

FINETUNED = re.compile(r"^finetuned: test (MAE|mAP|accuracy) ([\d.]+).*?; ([\d.]+) MFLOPs.*architecture (\S+)")
SCORED = re.compile(r"^architecture \d+: search fitness")


def ranks(v):
    """Average ranks (ties share theirs), 0-based."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman(x, y):
    a, b = ranks(x), ranks(y)
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((p - ma) * (q - mb) for p, q in zip(a, b))
    den = (sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b)) ** 0.5
    return num / den if den else float("nan")


def read(path):
    """[(metric, better-is-higher metric, MFLOPs, arch)] of the scored architectures."""
    rows, last = [], None
    with open(path, errors="replace") as f:
        for line in f.read().replace("\r", "\n").split("\n"):
            m = FINETUNED.match(line)
            if m:
                v = float(m.group(2))
                last = (v, -v if m.group(1) == "MAE" else v, float(m.group(3)), m.group(4))
            elif SCORED.match(line) and last:
                rows.append(last)
                last = None
    return rows


def main(paths):
    if not paths:
        sys.exit(__doc__)
    cols = ["kernel", "expansion", "blocks", "stage 1", "stage 2", "stage 3", "MFLOPs"]
    print("| task | archs | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for path in paths:
        rows = read(path)
        if len(rows) < 3:
            sys.exit(f"{path}: {len(rows)} scored architectures; is it the output of nta rank?")
        y = [r[1] for r in rows]
        blocks = [re.findall(r"k(\d)e(\d)", r[3]) for r in rows]
        stages = [[len(s.split("-")) for s in r[3].split("/")] for r in rows]
        feats = [
            [sum(int(k) for k, _ in b) / len(b) for b in blocks],
            [sum(int(e) for _, e in b) / len(b) for b in blocks],
            [len(b) for b in blocks],
            *[[s[i] for s in stages] for i in range(3)],
            [r[2] for r in rows],
        ]
        name = path.rsplit("/", 1)[-1].removesuffix(".log")
        print(f"| {name} | {len(rows)} | " + " | ".join(f"{spearman(f, y):+.2f}" for f in feats) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
