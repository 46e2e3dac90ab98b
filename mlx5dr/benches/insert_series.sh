#!/usr/bin/env bash
# The insert_bench series behind BENCHMARKS.md: every configuration REPEAT times, one JSON
# object per run appended to OUT (default insert_series.jsonl), then a summary table.
#
#   bash mlx5dr/benches/insert_series.sh [OUT] [REPEAT]
#
# Each run is a separate process (a fresh simulated device), so runs do not warm each
# other up, and the configurations take turns, so a noisy minute spreads over all of them.
# The machine's load average is in every JSON object (`load_average`), and so are each
# thread's CPU time and run-queue wait (`cpu_s`, `runqueue_wait_s`).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-insert_series.jsonl}
repeat=${2:-5}

cargo build --release -p mlx5dr --example insert_bench
bin=${CARGO_TARGET_DIR:-target}/release/examples/insert_bench

run() {
    "$bin" "$@" --json | tail -n 1 >>"$out"
}

for r in $(seq "$repeat"); do
    echo "round $r of $repeat ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    for n in 10000 100000 1000000; do
        run --rules "$n" --shape 5tuple --threads 1
        run --rules "$n" --shape 5tuple --threads 1 --no-latency
        run --rules "$n" --shape 5tuple --threads 2
        run --rules "$n" --shape 5tuple --threads 2 --shared
    done
    run --rules 1000000 --shape 5tuple --threads 1 --expected-log 20
    # Updates that do not wait for their completions (MatcherOptions::completion).
    for c in post queue; do
        run --rules 100000 --shape 5tuple --threads 1 --completion "$c"
        run --rules 1000000 --shape 5tuple --threads 1 --completion "$c"
    done
    run --rules 1000000 --shape 5tuple --threads 2 --completion queue
    run --rules 1000000 --shape 5tuple --threads 2 --shared --completion queue
    # Batches (Matcher::insert_batch_raw and Matcher::remove_batch, 64 rules per call).
    run --rules 100000 --shape 5tuple --threads 1 --batch 64
    run --rules 1000000 --shape 5tuple --threads 1 --batch 64
    run --rules 1000000 --shape 5tuple --threads 1 --batch 64 --completion queue
    run --rules 1000000 --shape 5tuple --threads 2 --batch 64
    run --rules 1000000 --shape 5tuple --threads 2 --shared --batch 64
    # Sharded matchers (MatcherOptions::shards), for threads sharing one.
    run --rules 1000000 --shape 5tuple --threads 2 --shared --shards 4
    run --rules 1000000 --shape 5tuple --threads 1 --batch 256
    run --rules 1000000 --shape 5tuple --threads 2 --batch 256
    run --rules 1000000 --shape 5tuple --threads 2 --shared --shards 4 --batch 256
    # Shards placed by thread (MatcherOptions::placement), one by one and in batches.
    run --rules 1000000 --shape 5tuple --threads 2 --shared --shards 2 --placement thread
    run --rules 1000000 --shape 5tuple --threads 2 --shared --shards 2 --placement thread --batch 256
    for shape in dmac vxlan; do
        for n in 10000 100000 1000000; do
            run --rules "$n" --shape "$shape" --threads 1
        done
        run --rules 100000 --shape "$shape" --threads 2
        run --rules 100000 --shape "$shape" --threads 2 --shared
    done
done

python3 mlx5dr/benches/summarize.py "$out"
