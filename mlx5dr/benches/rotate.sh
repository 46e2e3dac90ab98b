#!/usr/bin/env bash
# Paired runs: insert_bench configurations taking turns, ROUNDS times, and each one's
# median insert and delete rates with the median of its per-round ratios to the first
# configuration. On a machine whose speed drifts from minute to minute (BENCHMARKS.md,
# "The machine"), ratios of runs taken side by side are firmer than a series' medians.
#
#   bash mlx5dr/benches/rotate.sh ROUNDS RULES "ARGS1" "ARGS2" ...
#
# e.g. one thread against two sharing a 2-shard matcher placed by thread:
#   bash mlx5dr/benches/rotate.sh 5 1000000 "--threads 1" \
#       "--threads 2 --shared --shards 2 --placement thread"
# Every run adds --no-latency --json; a failed run (a check that did not pass) stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
rounds=$1
rules=$2
shift 2

cargo build --release -p mlx5dr --example insert_bench >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/insert_bench

for r in $(seq "$rounds"); do
    echo "round $r of $rounds ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    k=0
    for args in "$@"; do
        # shellcheck disable=SC2086 # each configuration is a list of options
        line=$("$bin" --rules "$rules" --no-latency --json $args | tail -n 1)
        echo "$k $line"
        k=$((k + 1))
    done
done | python3 -c '
import json, statistics as st, sys
names = sys.argv[1:]
runs = {k: [] for k in range(len(names))}
for line in sys.stdin:
    k, obj = line.split(" ", 1)
    d = json.loads(obj)
    runs[int(k)].append((d["insert"]["rules_per_s"], d["delete"]["rules_per_s"]))
print("| configuration | inserts/s, median [runs, k] | x first (pairs) | deletes/s | x first |")
print("|---|---|---|---|---|")
for k, name in enumerate(names):
    ins = [i for i, _ in runs[k]]
    dels = [d for _, d in runs[k]]
    ri = [a[0] / b[0] for a, b in zip(runs[k], runs[0])]
    rd = [a[1] / b[1] for a, b in zip(runs[k], runs[0])]
    print("| %s | %.0fk [%s] | %.2f [%s] | %.0fk | %.2f |" % (
        name, st.median(ins) / 1e3, ", ".join("%.0f" % (i / 1e3) for i in ins),
        st.median(ri), " ".join("%.2f" % r for r in ri), st.median(dels) / 1e3, st.median(rd)))
' "$@"
