#!/usr/bin/python3
"""bench/torch_gpu.py: the vendor libraries on the shapes bench/gpu_bench.cu
times: matrix products through cuBLAS (torch.matmul, FP32 and TF32) and the
reference network's batchnorm and depthwise convolution through cuDNN
(channels-last, batch 128). Run by test/gpu.sh when python3-torch sees a GPU.
Prints one table: kernel, GFLOP/s or GB/s (the same minimum traffic as
gpu_bench).
"""
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


def main():
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


if __name__ == "__main__":
    main()
