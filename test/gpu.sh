#!/bin/bash
# test/gpu.sh: the checks that need an NVIDIA GPU (sm_80 or newer) and the CUDA
# toolkit (nvcc, libcudart_static.a). One prepared script:
#   1. build nta, nta-emu, test/run-gpu (the test suite with the CUDA backend
#      on the real device instead of the emulator) and bench/gpu_bench;
#   2. run test/run-gpu: every CUDA op and whole training steps against the
#      CPU reference (TF32 GEMM too), the CLI with --device cuda and auto;
#   3. the benchmark (bench/gpu_bench.cu, bench/torch_gpu.py): the kernels
#      against the device's measured peaks (SGEMM beside cuBLAS, batchnorm and
#      depthwise against the measured memory bandwidth), then the last table:
#      the reference network and the supernet's largest and smallest at batch
#      64 and 256, img/s of training and inference, nta as called and with one
#      CUDA graph per step, beside PyTorch eager with cuDNN and with CUDA
#      graphs where python3-torch sees the GPU.
#      Then a model's inference by the specialised (NVRTC) and the generic
#      kernels (nta bench).
# Exit status: that of the tests (the timings never fail it). A kernel fault
# on the device is named by NTA_CUDA_SYNC=1 (a synchronisation after every
# launch), e.g. NTA_CUDA_SYNC=1 ./test/run-gpu --only cuda.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
else
    echo "gpu.sh: nvidia-smi not found (continuing: the tests ask the runtime)"
fi
# the datasets and packages the tests use (a test whose data is still absent
# says "skipped:" and the runner goes on)
make setup || echo "gpu.sh: make setup failed; the tests that need its data will be skipped"
make -j"$(nproc)" nta nta-emu test/run-gpu bench/gpu_bench || { echo "gpu.sh: build failed"; exit 1; }
ldd nta | grep -q libcudart && echo "gpu.sh: warning: nta needs libcudart.so (expected static)"

echo "== tests on the device (test/run-gpu)"
./test/run-gpu
rc=$?

echo "== benchmark"
./bench/gpu_bench --nets > build/gpu-nets.txt || echo "gpu.sh: gpu_bench --nets failed"
torch_rates=()
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 bench/torch_gpu.py --nets build/gpu-nets.txt --out build/torch-nets.txt &&
        torch_rates=(--torch build/torch-nets.txt) || echo "gpu.sh: bench/torch_gpu.py failed"
else
    echo "(python3-torch with CUDA not found: no PyTorch/cuDNN columns)"
fi
./bench/gpu_bench ${torch_rates[@]+"${torch_rates[@]}"} || echo "gpu.sh: bench/gpu_bench failed"
echo "== specialised kernels (NVRTC) against generic ones: nta bench of the reference network"
m=$(mktemp /tmp/nta-gpu-XXXXXX.nta)
./nta train --epochs 1 --limit 2000 --device cuda -o "$m" >/dev/null &&
    ./nta bench "$m" --batch 256 --device cuda || echo "gpu.sh: nta bench failed"
rm -f "$m"
echo "gpu.sh: tests $([ $rc = 0 ] && echo passed || echo FAILED)"
exit $rc
