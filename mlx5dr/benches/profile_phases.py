#!/usr/bin/env python3
"""Where an insert's (and a delete's) time goes: folds `perf script` output of an
insert_bench run into a few categories per timed phase.

    cargo build --profile bench -p mlx5dr --example insert_bench   # release + debug info
    perf record -e cpu-clock -F 700 --call-graph dwarf,32768 -o perf.data \
        target/release/examples/insert_bench --rules 1000000 --no-latency --check 100
    perf script -i perf.data | python3 mlx5dr/benches/profile_phases.py [--detail]

A sample belongs to the insert phase when its stack passes through `insert_loop`, to the
delete phase through `delete_loop`. Within a phase it is charged to the leaf-most frame
that names one of the categories below (so a `memcpy` is charged to whoever called it);
samples whose leaf is in the kernel are charged to "kernel" (page faults on first touch of
ICM or host memory, mostly). `ste_builder::wqe` frames are charged to their caller: the
driver encodes WQEs, the simulator decodes them. `--detail` lists the deciding functions of each category.
"""

import collections
import sys

# (category, prefixes of the frame's symbol), tried in this order on each frame.
CATEGORIES = [
    ("sim: ICM reads/writes", ("sim::icm",)),
    ("sim: host memory (staging, sync buffer, rings)", ("sim::host_mem",)),
    ("sim: queue, WQE decode, CQEs", ("sim::",)),
    ("backend shim (mlx5dr::device::sim)", ("mlx5dr::device",)),
    ("send ring: CQ polling", ("mlx5dr::send::cq",)),
    ("send ring: staging, WQE build, doorbell", ("mlx5dr::send",)),
    ("hash", ("ste_builder::hash",)),
    ("tags: lookup builders", ("ste_builder::builder",)),
    ("value checks and copies (rule_tags)", ("ste_builder::match_param", "mlx5dr::matching")),
    ("STE and action encoding", ("mlx5dr::action", "ste_builder::action", "ste_builder::ste")),
    ("ICM allocation (pool, slab)", ("mlx5dr::icm",)),
    ("tables: growth steps", ("mlx5dr::htbl::grow",)),
    ("tables: hash tables, records, write order", ("mlx5dr::htbl",)),
    ("rule and matcher layer (locks, handles)", ("mlx5dr::rule", "mlx5dr::matcher", "mlx5dr::domain")),
    ("benchmark loop", ("insert_bench::",)),
]

PHASES = [("insert", "insert_bench::phase::insert_loop"), ("delete", "insert_bench::phase::delete_loop")]


def symbol(line):
    # "\t  addr symbol+0xoff (dso)" -> symbol (generic parameters kept).
    parts = line.strip().split(" ", 1)
    if len(parts) < 2:
        return "", ""
    rest = parts[1]
    dso = rest[rest.rfind("(") + 1 : -1] if rest.endswith(")") else ""
    sym = rest[: rest.rfind(" (")] if " (" in rest else rest
    if "+0x" in sym:
        sym = sym[: sym.rfind("+0x")]
    # Trait impls print as "<T as Trait>::method": judge by the implementing type.
    if sym.startswith("<"):
        sym = sym[1:]
    return sym, dso


def classify(frames):
    """The sample's category and the frame that decided it."""
    if frames and "kernel.kallsyms" in frames[0][1]:
        return "kernel (page faults, ...)", frames[0][0]
    for sym, _ in frames:
        for name, prefixes in CATEGORIES:
            if sym.startswith(prefixes):
                return name, sym
    return "other", frames[0][0] if frames else ""


def main():
    detail = "--detail" in sys.argv[1:]
    counts = {p: collections.Counter() for p, _ in PHASES}
    funcs = {p: collections.defaultdict(collections.Counter) for p, _ in PHASES}
    frames = []

    def flush():
        if not frames:
            return
        syms = [s for s, _ in frames]
        for phase, marker in PHASES:
            if any(s.startswith(marker) for s in syms):
                name, sym = classify(frames)
                counts[phase][name] += 1
                funcs[phase][name][sym] += 1
                break
        frames.clear()

    for line in sys.stdin:
        if line.startswith(("\t", " ")) and line.strip():
            frames.append(symbol(line))
        else:
            flush()
    flush()

    for phase, c in counts.items():
        total = sum(c.values())
        if not total:
            continue
        print(f"{phase}: {total} samples")
        for name, n in c.most_common():
            print(f"  {100.0 * n / total:5.1f}%  {name}")
            if detail:
                for sym, k in funcs[phase][name].most_common(6):
                    print(f"           {100.0 * k / total:5.1f}%  {sym[:110]}")


if __name__ == "__main__":
    main()
