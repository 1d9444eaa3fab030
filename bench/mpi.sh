#!/bin/bash
# bench/mpi.sh: data-parallel pretraining on CPU ranks, one global batch.
#
# Prints a Markdown table: images per second of `nta pretrain` (the default
# supernet, sandwich rule, Fashion-MNIST) at global batch BATCH, for one
# process on every core, the same with the batch in R shards (what R ranks
# compute, one after another), and R ranks of ./nta-mpi sharing the cores
# (threads per rank = cores / R). The rate is the training loop's own (the
# progress line's img/s after the one epoch: no data loading, no evaluation).
# Run it on an idle machine; it prints the load average it started under.
#
#   bench/mpi.sh                    ranks 1, 2, 4 up to the cores
#   RANKS="1 2" LIMIT=4096 BATCH=256 bench/mpi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make -s nta nta-mpi >/dev/null
CORES=$(nproc)
LIMIT=${LIMIT:-2048}
BATCH=${BATCH:-128}
RANKS=${RANKS:-$(r=1; while [ $r -le "$CORES" ]; do printf '%d ' $r; r=$((r * 2)); done)}
OUT=$(mktemp -d /tmp/nta-bench-mpi-XXXXXX)
ARGS="pretrain --data fashion-mnist --limit $LIMIT --val 0 --epochs 1 --batch $BATCH --calib 1 -o $OUT/s.nta"
# (mpirun refuses root without these; --bind-to none: Open MPI would pin each
# rank to one core, and a rank's threads with it)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

# the training loop's images per second in a log
rate() { tr '\r' '\n' < "$1" | grep -o '[0-9.]* img/s' | tail -n 1 | cut -d' ' -f1; }

echo "# nta pretrain, global batch $BATCH, $LIMIT images, $(lscpu | sed -n 's/^Model name: *//p'), $CORES cores"
echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ), commit $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo
echo "| ranks | threads per rank | shards | img/s | vs 1 process, 1 shard |"
echo "|---:|---:|---:|---:|---:|"
base=""
for R in $RANKS; do
    T=$((CORES / R > 0 ? CORES / R : 1))
    if [ "$R" = 1 ]; then
        OMP_NUM_THREADS=$CORES ./nta $ARGS --threads "$CORES" --shards 1 > "$OUT/1.log" 2>&1
        base=$(rate "$OUT/1.log")
        echo "| 1 | $CORES | 1 | $base | 1.00 |"
        continue
    fi
    OMP_NUM_THREADS=$CORES ./nta $ARGS --threads "$CORES" --shards "$R" > "$OUT/s$R.log" 2>&1
    s=$(rate "$OUT/s$R.log")
    echo "| 1 | $CORES | $R | $s | $(awk "BEGIN { printf \"%.2f\", $s / $base }") |"
    over=$([ "$R" -gt "$CORES" ] && echo --oversubscribe || true)
    OMP_NUM_THREADS=$T mpirun -np "$R" $over --bind-to none ./nta-mpi $ARGS --threads "$T" > "$OUT/r$R.log" 2>&1
    r=$(rate "$OUT/r$R.log")
    echo "| $R | $T | $R | $r | $(awk "BEGIN { printf \"%.2f\", $r / $base }") |"
done
echo
grep -h 'one all-reduce' "$OUT"/r*.log 2>/dev/null | head -n 1 | sed 's/^/# /'
for R in $RANKS; do grep -h 'the all-reduce took' "$OUT/r$R.log" 2>/dev/null | sed "s/^/# $R ranks: /"; done
echo "# logs: $OUT"
