#!/bin/bash
# bench/bench.sh: nta against PyTorch on 28x28x1 networks, same batch, 2
# threads, random data: training-step and inference images per second of the
# reference network and of the largest and smallest architectures of the
# default supernet (bench/step NET; PyTorch builds each from nta's description,
# bench/step --desc NET).
#   bench/bench.sh                 (BENCH_SECONDS=10 per measurement by default)
#   BENCH_SECONDS=1 bench/bench.sh (a quick check; noisy numbers)
#   BENCH_TABLES=0 bench/bench.sh  (only the whole-step table)
#   BENCH_NETS=reference bench/bench.sh  (only some networks in that table)
#   BENCH_STEPS=5 bench/bench.sh   (steps per op table, best of; 20 by default)
# Prints a markdown table (one row per network and batch), then the machine and
# the torch version; then, per batch and for the reference network, where a
# training step and an inference pass spend their time, nta (bench/ops.c)
# beside PyTorch (bench/torch_ops.py), and our GEMM against OpenBLAS on the
# network's shapes (bench/gemm.c; needs libopenblas-dev, which is linked into
# that benchmark only, never into nta).
set -e
cd "$(dirname "$0")/.."

SECONDS_EACH=${BENCH_SECONDS:-10}
NETS=${BENCH_NETS:-reference largest smallest}
STEPS=${BENCH_STEPS:-20}
THREADS=2
PY=/usr/bin/python3
export OMP_NUM_THREADS=$THREADS

make nta bench/step >&2
OBJ="build/util.o build/cpu.o build/net.o build/data.o build/search.o"
TABLES=${BENCH_TABLES:-1}
if [ "$TABLES" = 1 ]; then
    cc -O2 -std=c11 -Wall -Wextra -fopenmp -I. bench/ops.c $OBJ -o build/bench-ops -lz -lm >&2
    if [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; then
        cc -O2 -std=c11 -Wall -Wextra -fopenmp -I. bench/gemm.c $OBJ -o build/bench-gemm -lz -lm -lopenblas >&2
    else
        echo "bench: no OpenBLAS (apt-get install libopenblas-dev): no GEMM table" >&2
        rm -f build/bench-gemm
    fi
fi

if ! $PY -c 'import torch' 2>/dev/null; then
    echo "bench: installing python3-torch" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get install -y python3-torch >&2
fi

# "... train X img/s, infer Y img/s" -> "X Y"
rates() { sed -n 's/.*train \([0-9.]*\) img\/s, infer \([0-9.]*\) img\/s.*/\1 \2/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

rows=""
for NET in $NETS; do
    desc=$(bench/step --desc "$NET")
    echo "$NET: $desc" >&2
    for B in 64 256; do
        nta_line=$(bench/step "$B" "$THREADS" "$SECONDS_EACH" "$NET")
        torch_line=$($PY bench/torch_step.py "$B" "$THREADS" "$SECONDS_EACH" "$desc")
        echo "$nta_line" >&2
        echo "$torch_line" >&2
        read -r nt ni <<<"$(echo "$nta_line" | rates)"
        read -r tt ti <<<"$(echo "$torch_line" | rates)"
        if [ -z "$nt" ] || [ -z "$tt" ]; then
            echo "bench: cannot parse '$nta_line' or '$torch_line'" >&2
            exit 1
        fi
        rows+="| $NET | $B | $nt | $tt | $(ratio "$nt" "$tt") | $ni | $ti | $(ratio "$ni" "$ti") |"$'\n'
    done
done

echo
echo "img/s: the best of 5 timing windows of $((SECONDS_EACH))/5 s each, the same rule on both sides (bench/step.c, bench/torch_step.py)"
echo
echo "| network | batch | nta train img/s | torch train img/s | train ratio | nta infer img/s | torch infer img/s | infer ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
echo
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}; $THREADS threads, ${SECONDS_EACH} s per measurement;" \
     "torch $($PY -c 'import torch; print(torch.__version__)')"

if [ "$TABLES" = 1 ]; then
    ops_out=$(mktemp)
    trap 'rm -f "$ops_out"' EXIT
    ref_desc=$(bench/step --desc reference)
    for B in 64 256; do
        # per-op tables: nta's and PyTorch's side by side (bench/torch_ops.py merges)
        build/bench-ops "$B" "$THREADS" "$STEPS" >"$ops_out"
        if ! $PY bench/torch_ops.py "$B" "$THREADS" "$STEPS" --check --desc "$ref_desc" --nta "$ops_out"; then
            echo "bench: bench/torch_ops.py failed; nta's per-op table alone:" >&2
            cat "$ops_out"
        fi
        if [ -x build/bench-gemm ]; then build/bench-gemm "$B" "$THREADS" "$STEPS"; fi
    done
fi
