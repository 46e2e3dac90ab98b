#!/usr/bin/env python3
"""Summarises insert_bench JSON lines (from insert_series.sh) as Markdown tables: per
configuration the median of the runs, with the smallest and largest in brackets where
runs differ.

    python3 mlx5dr/benches/summarize.py insert_series.jsonl
"""

import json
import statistics
import sys


def key(r):
    return (
        r["shape"],
        r["rules"],
        r["threads"],
        r["matchers"],
        r["expected_log"],
        r["latency_timing"],
        r.get("completion", "Wait"),
        r.get("batch", 0),
        r.get("shards", 1),
        r.get("placement", "Tags"),
    )


def label(k):
    shape, rules, threads, matchers, log, timing, completion, batch, shards, placement = k
    mode = "1 thread" if threads == 1 else f"{threads} threads, {matchers} matcher{'s' if matchers > 1 else ''}"
    extra = []
    if log:
        extra.append(f"expected_log {log}")
    if not timing:
        extra.append("no per-op timing")
    if completion != "Wait":
        extra.append(f"completion {completion}")
    if batch:
        extra.append(f"batches of {batch}")
    if shards > 1:
        extra.append(f"{shards} shards" + (" by thread" if placement == "Thread" else ""))
    return f"{shape} {rules:,} {mode}" + (f" ({', '.join(extra)})" if extra else "")


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    if len(values) == 1 or fmt(lo) == fmt(hi):
        return fmt(med)
    return f"{fmt(med)} [{fmt(lo)}–{fmt(hi)}]"


def k_(x):
    return f"{x / 1000:.0f}k"


def us(x):
    return f"{x / 1000:.1f}"


def f1(x):
    return f"{x:.1f}"


def f2(x):
    return f"{x:.2f}"


def main():
    runs = {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        runs.setdefault(key(r), []).append(r)

    print("| configuration | runs | insert/s | delete/s | insert/CPU-s | ins p50 µs | p99 | p99.9 | max | del p99.9 µs | del max | STE writes/rule | WQEs/rule | ICM B/rule | host B/rule | growths | checks | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(runs, key=lambda k: (k[0] != "5tuple", k[0], k[1], k[2], k[3], k[4], not k[5], ["Wait", "Post", "Queue"].index(k[6]))):
        rs = runs[k]
        ins = [r["insert"] for r in rs]
        dele = [r["delete"] for r in rs]
        ok = all(r["checks_ok"] for r in rs)
        loads = sorted(float(r["load_average"].split()[0]) for r in rs if r.get("load_average"))
        load = f"{loads[0]:.1f}–{loads[-1]:.1f}" if loads else "-"
        cells = [
            label(k),
            str(len(rs)),
            spread([i["rules_per_s"] for i in ins], k_),
            spread([d["rules_per_s"] for d in dele], k_),
            spread([i.get("rules_per_cpu_s") for i in ins], k_),
            spread([i["p50_ns"] for i in ins], us),
            spread([i["p99_ns"] for i in ins], us),
            spread([i["p999_ns"] for i in ins], us),
            spread([i["max_ns"] for i in ins], us),
            spread([d["p999_ns"] for d in dele], us),
            spread([d["max_ns"] for d in dele], us),
            spread([i["ste_writes_per_rule"] for i in ins], f2),
            spread([i["wqes_per_rule"] for i in ins], f2),
            spread([r["icm_bytes_per_rule"] for r in rs], f1),
            spread([r["host_bytes_per_rule"] for r in rs], f1),
            spread([r["growth_events"] for r in rs], lambda x: f"{x:.0f}"),
            "ok" if ok else "FAILED",
            load,
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
