#!/bin/bash
# bench/contention.sh: training throughput on a shared machine. The reference
# network at batch 64 on 2 threads, nta (bench/step) and PyTorch
# (bench/torch_step.py) side by side: idle, beside one busy single-threaded
# process (a shell loop, normal priority), and beside one at nice 19.
#   bench/contention.sh                  (BENCH_SECONDS=20 per measurement)
#   BENCH_SECONDS=5 bench/contention.sh  (a quick check; noisy numbers)
# Each figure is the mean over the whole measurement (BENCH_WINDOWS=1), the
# time the CPU backend's governor takes to notice the busy process included.
# Prints a markdown table: img/s, and each contended figure as a percentage of
# the same runner's idle figure.
set -e
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-20}
B=64
THREADS=2
PY=/usr/bin/python3
export OMP_NUM_THREADS=$THREADS BENCH_WINDOWS=1

make nta bench/step >&2
if ! $PY -c 'import torch' 2>/dev/null; then
    echo "bench: installing python3-torch" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get install -y python3-torch >&2
fi
desc=$(bench/step --desc reference)

# "... train X img/s ..." -> X
train_rate() { sed -n 's/.*train \([0-9.]*\) img\/s.*/\1/p'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }

# run_beside NICE CMD...: CMD's training img/s beside a busy shell loop at
# niceness NICE ("" for none: the machine idle)
run_beside() {
    local nice=$1 busy=""
    shift
    if [ -n "$nice" ]; then
        nice -n "$nice" sh -c 'while :; do :; done' &
        busy=$!
    fi
    local line
    line=$("$@")
    [ -n "$busy" ] && kill "$busy"
    echo "$line" >&2
    echo "$line" | train_rate
}

echo "| runner | idle img/s | beside 1 busy process | % of idle | beside 1 busy process at nice 19 | % of idle |"
echo "|---|---:|---:|---:|---:|---:|"
for runner in nta torch; do
    if [ $runner = nta ]; then cmd=(bench/step $B $THREADS "$SECS" reference)
    else cmd=($PY bench/torch_step.py $B $THREADS "$SECS" "$desc"); fi
    idle=$(run_beside "" "${cmd[@]}")
    busy=$(run_beside 0 "${cmd[@]}")
    nice19=$(run_beside 19 "${cmd[@]}")
    echo "| $runner | $idle | $busy | $(pct "$busy" "$idle") | $nice19 | $(pct "$nice19" "$idle") |"
done
echo
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1); reference network, batch $B, $THREADS threads, $SECS s per figure; torch $($PY -c 'import torch; print(torch.__version__)')"
