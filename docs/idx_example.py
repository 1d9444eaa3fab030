#!/usr/bin/env python3
"""Write numpy arrays as IDX files that nta reads (--data idx:..., --task classify:idx:...).

The README's worked example: Fashion-MNIST (installed by `make setup`) stands in
for your own arrays. It is split into two datasets, clothes (7 classes) as a
source to pretrain on and shoes (3 classes) as a target task, written to
OUTDIR/{clothes,shoes}-{train,test}-{images,labels}.gz.

    python3 docs/idx_example.py mydata
"""
import gzip
import os
import struct
import sys

import numpy as np


def write_idx(path, a):
    """a: uint8 images [n,H,W] or [n,H,W,C] (C <= 4), or uint8 labels [n] (0 .. classes-1)."""
    a = np.ascontiguousarray(a)
    assert a.dtype == np.uint8, "scale images to 0..255 and convert them to uint8 first"
    with gzip.open(path, 'wb') as f:        # plain open() works too: nta reads raw or gzip
        f.write(bytes([0, 0, 0x08, a.ndim]) + struct.pack('>%dI' % a.ndim, *a.shape) + a.tobytes())


def read_idx(path):
    with gzip.open(path) as f:
        b = f.read()
    shape = struct.unpack('>%dI' % b[3], b[4:4 + 4 * b[3]])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * b[3]).reshape(shape)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'mydata'
    os.makedirs(out, exist_ok=True)
    src = '/usr/share/datasets/fashion-mnist/'
    groups = {'clothes': [0, 1, 2, 3, 4, 6, 8], 'shoes': [5, 7, 9]}   # sandal, sneaker, ankle boot
    for split, prefix in (('train', 'train'), ('test', 't10k')):
        x = read_idx(src + prefix + '-images-idx3-ubyte.gz')          # [n,28,28] uint8
        y = read_idx(src + prefix + '-labels-idx1-ubyte.gz')          # [n] uint8
        for name, classes in groups.items():
            keep = np.isin(y, classes)
            labels = np.searchsorted(classes, y[keep]).astype(np.uint8)   # 0 .. len(classes)-1
            write_idx(os.path.join(out, '%s-%s-images.gz' % (name, split)), x[keep])
            write_idx(os.path.join(out, '%s-%s-labels.gz' % (name, split)), labels)
            print('%s/%s-%s: %d images' % (out, name, split, keep.sum()))


if __name__ == '__main__':
    main()
