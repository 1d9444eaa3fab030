#!/bin/bash
# bench/latency.sh: does this machine's per-layer latency table predict the
# measured whole-network latency? bench/latency at batch 1 and at batch 64
# (2 threads, 20 random architectures of the default supernet, seed 1), each
# printing a markdown table and its median absolute error. The load average
# is printed before and after: time only on an otherwise idle machine.
#   bench/latency.sh [THREADS]
set -e
cd "$(dirname "$0")/.."
THREADS=${1:-2}
make nta bench/latency >&2
echo "before: $(uptime)"
for B in 1 64; do
    echo
    OMP_NUM_THREADS=$THREADS bench/latency $B $THREADS 20 1
done
echo
echo "after: $(uptime)"
