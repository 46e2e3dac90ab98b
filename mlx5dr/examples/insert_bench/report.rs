//! What a run measured and checked, printed as a table and as one JSON object.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use mlx5dr::htbl::HtblStats;
use mlx5dr::icm::PoolStats;
use mlx5dr::send::SendStats;
use mlx5dr::{Domain, Matcher, Rule};
use serde_json::json;

use crate::alloc;
use crate::args::Args;
use crate::check::Tally;
use crate::hist::Histogram;
use crate::phase::Phase;

/// Counters of everything measured, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// The counting allocator's counters.
    pub mem: alloc::Usage,
    /// The send rings' counters, summed.
    pub send: SendStats,
    /// The STE ICM pool.
    pub ste_pool: PoolStats,
    /// The modify-header action ICM pool.
    pub action_pool: PoolStats,
    /// The matchers' hash-table statistics, summed (the longest chain: the largest).
    pub tables: HtblStats,
}

impl Snapshot {
    /// Reads the counters of `dmn` and its `matchers`.
    pub fn take(dmn: &Domain, matchers: &[Arc<Matcher>]) -> Snapshot {
        // The counters are read first: building the others allocates.
        let mem = alloc::usage();
        let mut send = SendStats::default();
        for s in dmn.send_stats() {
            send.writes += s.writes;
            send.bytes += s.bytes;
            send.wqes += s.wqes;
            send.signaled += s.signaled;
            send.doorbells += s.doorbells;
            send.cqes += s.cqes;
            send.full_waits += s.full_waits;
        }
        let mut tables = HtblStats::default();
        for m in matchers {
            for (_, s) in m.stats().sides {
                tables.rules += s.rules;
                tables.stes += s.stes;
                tables.tables += s.tables;
                tables.table_entries += s.table_entries;
                tables.collision_entries += s.collision_entries;
                tables.action_stes += s.action_stes;
                tables.longest_chain = tables.longest_chain.max(s.longest_chain);
                tables.grows += s.grows;
                tables.shrinks += s.shrinks;
                tables.grow_failures += s.grow_failures;
                tables.presize_fallbacks += s.presize_fallbacks;
                tables.leaked_chunks += s.leaked_chunks;
                tables.host_bytes += s.host_bytes;
            }
        }
        Snapshot {
            mem,
            send,
            ste_pool: dmn.ste_pool().stats(),
            action_pool: dmn.action_pool().stats(),
            tables,
        }
    }
}

/// The figures of one timed phase.
pub struct PhaseReport {
    rate: f64,
    wall: Duration,
    per_thread_rate: Vec<f64>,
    hist: Option<Histogram>,
    writes: f64,
    wqes: f64,
    bytes: f64,
    doorbells: u64,
    full_waits: u64,
    allocs: f64,
    /// Rules the phase handled.
    n: u64,
    /// CPU seconds of all threads and seconds spent waiting for a CPU (if known).
    cpu: Option<(f64, f64)>,
    /// Rules per second had no thread ever waited for a CPU: the phase's rules over the
    /// longest thread's time less its run-queue wait. An estimate of the rate on an idle
    /// machine, for a machine shared with other work (it cannot undo cache sharing, or a
    /// lock holder's wait passed on to a thread blocked on that lock).
    unloaded_rate: Option<f64>,
    /// The CPU each thread last ran on.
    cpus: Vec<Option<u32>>,
}

impl PhaseReport {
    /// The figures of phase `p`, which handled `n` rules in `shares`, between snapshots
    /// `a` and `b`; the latency histogram only if the operations were timed.
    pub fn new<T>(
        p: &Phase<T>,
        n: u64,
        shares: &[std::ops::Range<usize>],
        a: &Snapshot,
        b: &Snapshot,
        latency: bool,
    ) -> PhaseReport {
        let per = |x: u64| x as f64 / n as f64;
        PhaseReport {
            rate: n as f64 / p.wall.as_secs_f64(),
            wall: p.wall,
            per_thread_rate: p
                .threads
                .iter()
                .zip(shares)
                .map(|(t, r)| r.len() as f64 / t.took.as_secs_f64())
                .collect(),
            hist: latency.then(|| p.hist()),
            writes: per(b.send.writes - a.send.writes),
            wqes: per(b.send.wqes - a.send.wqes),
            bytes: per(b.send.bytes - a.send.bytes),
            doorbells: b.send.doorbells - a.send.doorbells,
            full_waits: b.send.full_waits - a.send.full_waits,
            allocs: per(b.mem.allocs - a.mem.allocs),
            n,
            cpus: p
                .threads
                .iter()
                .map(|t| t.sched.and_then(|s| s.last_cpu))
                .collect(),
            cpu: p
                .threads
                .iter()
                .map(|t| {
                    t.sched
                        .map(|s| (s.cpu.as_secs_f64(), s.waited.as_secs_f64()))
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| {
                    v.iter()
                        .fold((0.0, 0.0), |acc, x| (acc.0 + x.0, acc.1 + x.1))
                }),
            unloaded_rate: p
                .threads
                .iter()
                .map(|t| {
                    t.sched
                        .map(|s| t.took.saturating_sub(s.waited).as_secs_f64())
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| n as f64 / v.iter().fold(0.0f64, |m, x| m.max(*x))),
        }
    }

    fn json(&self) -> serde_json::Value {
        let q = |f: fn(&Histogram) -> u64| self.hist.as_ref().map(f);
        json!({
            "rules_per_s": self.rate.round(),
            "wall_s": self.wall.as_secs_f64(),
            "per_thread_rules_per_s": self.per_thread_rate.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "p50_ns": q(|h| h.quantile(0.5)),
            "p99_ns": q(|h| h.quantile(0.99)),
            "p999_ns": q(|h| h.quantile(0.999)),
            "max_ns": q(|h| h.max()),
            "mean_ns": self.hist.as_ref().map(|h| h.mean().round()),
            "timed_ops": self.hist.as_ref().map(|h| h.count()),
            "slowest_ns_at_op": self.hist.as_ref().map(|h| h.worst().collect::<Vec<_>>()),
            "ste_writes_per_rule": self.writes,
            "wqes_per_rule": self.wqes,
            "bytes_written_per_rule": self.bytes,
            "doorbells": self.doorbells,
            "full_waits": self.full_waits,
            "heap_allocs_per_rule": self.allocs,
            "cpu_s": self.cpu.map(|c| c.0),
            "runqueue_wait_s": self.cpu.map(|c| c.1),
            "rules_per_cpu_s": self.cpu.map(|c| (self.n as f64 / c.0).round()),
            "unloaded_rules_per_s": self.unloaded_rate.map(f64::round),
            "thread_cpus": self.cpus,
        })
    }
}

/// Everything one run measured and checked.
pub struct Report<'a> {
    /// The command line.
    pub args: &'a Args,
    /// Matchers the rules went into.
    pub matchers: usize,
    /// The domain's STE format, by name.
    pub format: String,
    /// The lookup types of a matcher's chain (NIC RX).
    pub lu_types: Vec<u16>,
    /// How long generating the values took.
    pub gen_time: Duration,
    /// The system's load average at the start.
    pub load: String,
    /// The inserts.
    pub insert: PhaseReport,
    /// The deletes.
    pub delete: PhaseReport,
    /// Before the inserts.
    pub before: Snapshot,
    /// After the inserts.
    pub after_insert: Snapshot,
    /// After the deletes.
    pub after_delete: Snapshot,
    /// The checks, by name.
    pub checks: Vec<(&'static str, Tally)>,
}

impl Report<'_> {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|(_, t)| t.failed == 0)
    }

    fn per_rule(&self, x: u64) -> f64 {
        x as f64 / self.args.rules as f64
    }

    /// Live heap bytes the inserts added.
    fn host_bytes(&self) -> i64 {
        self.after_insert.mem.live as i64 - self.before.mem.live as i64
    }

    /// Live heap bytes left after the deletes, against before the inserts.
    fn retained_bytes(&self) -> i64 {
        self.after_delete.mem.live as i64 - self.before.mem.live as i64
    }

    /// ICM the domain's pools hold from the device after the inserts.
    fn icm_allocated(&self) -> u64 {
        self.after_insert.ste_pool.allocated_bytes + self.after_insert.action_pool.allocated_bytes
    }

    /// STE ICM in chunks and slab blocks after the inserts.
    fn icm_in_use(&self) -> u64 {
        self.after_insert.ste_pool.chunk_bytes + self.after_insert.ste_pool.slab_bytes
    }

    fn grows(&self) -> u64 {
        self.after_insert.tables.grows - self.before.tables.grows
    }

    /// Tables shrunk by the deletes.
    fn shrinks(&self) -> u64 {
        self.after_delete.tables.shrinks - self.after_insert.tables.shrinks
    }

    /// STE ICM in chunks and slab blocks after the deletes.
    fn icm_in_use_after_delete(&self) -> u64 {
        self.after_delete.ste_pool.chunk_bytes + self.after_delete.ste_pool.slab_bytes
    }

    /// The human-readable table.
    pub fn text(&self) -> Result<String, std::fmt::Error> {
        let (a, ins, del) = (self.args, &self.insert, &self.delete);
        let mut out = String::new();
        let w = &mut out;
        writeln!(
            w,
            "insert_bench: {} x {}, {} thread(s) into {} matcher(s), {:?} (STE {}), expected_log {}, grow {} ({:?}), shrink {}, completion {:?}, shards {} ({:?}), batch {}, per-op timing {}",
            a.rules,
            a.shape.name(),
            a.threads,
            self.matchers,
            a.model,
            self.format,
            a.expected_log,
            a.grow,
            a.growth,
            a.shrink,
            a.completion,
            a.shards,
            a.placement,
            a.batch,
            if a.latency { "on" } else { "off" },
        )?;
        let lu: Vec<String> = self.lu_types.iter().map(|t| format!("{t:#x}")).collect();
        writeln!(
            w,
            "lookups per rule {} ({}); values generated in {:.2} s; load average {}",
            lu.len(),
            lu.join(", "),
            self.gen_time.as_secs_f64(),
            self.load,
        )?;
        writeln!(w, "{:<28} {:>14} {:>14}", "", "insert", "delete")?;
        // One row: a figure of each phase.
        let mut row = |name: &str, f: &dyn Fn(&PhaseReport) -> String| {
            writeln!(w, "{name:<28} {:>14} {:>14}", f(ins), f(del))
        };
        row("rules/s", &|r| format!("{:.0}", r.rate))?;
        row("wall s", &|r| format!("{:.3}", r.wall.as_secs_f64()))?;
        if a.threads > 1 {
            row("per thread k rules/s", &|r| {
                let k: Vec<String> = r
                    .per_thread_rate
                    .iter()
                    .map(|x| format!("{:.0}", x / 1000.0))
                    .collect();
                k.join("/")
            })?;
        }
        for (name, q) in [
            ("latency p50", 0.5),
            ("latency p99", 0.99),
            ("latency p99.9", 0.999),
        ] {
            row(name, &|r| {
                r.hist.as_ref().map_or("-".into(), |h| us(h.quantile(q)))
            })?;
        }
        row("latency max", &|r| {
            r.hist.as_ref().map_or("-".into(), |h| us(h.max()))
        })?;
        row("CPU s (all threads)", &|r| {
            r.cpu.map_or("-".into(), |c| format!("{:.3}", c.0))
        })?;
        row("waiting for a CPU s", &|r| {
            r.cpu.map_or("-".into(), |c| format!("{:.3}", c.1))
        })?;
        row("rules/s less CPU waits", &|r| {
            r.unloaded_rate.map_or("-".into(), |x| format!("{x:.0}"))
        })?;
        row("threads last ran on CPU", &|r| {
            let c: Vec<String> = r
                .cpus
                .iter()
                .map(|c| c.map_or("?".into(), |c| c.to_string()))
                .collect();
            c.join("/")
        })?;
        row("STE writes/rule", &|r| format!("{:.3}", r.writes))?;
        row("WQEs/rule", &|r| format!("{:.3}", r.wqes))?;
        row("bytes written/rule", &|r| format!("{:.1}", r.bytes))?;
        row("doorbells", &|r| r.doorbells.to_string())?;
        row("ring-full waits", &|r| r.full_waits.to_string())?;
        row("heap allocations/rule", &|r| format!("{:.3}", r.allocs))?;
        for (name, r) in [("inserts", ins), ("deletes", del)] {
            if let Some(h) = &r.hist {
                let worst: Vec<String> = h
                    .worst()
                    .map(|(ns, op)| format!("{} at {op}", us(ns)))
                    .collect();
                writeln!(
                    w,
                    "slowest {name} (value index / thread's delete number): {}",
                    worst.join(", ")
                )?;
            }
        }
        let after = &self.after_insert;
        writeln!(
            w,
            "ICM bytes/rule: {:.1} allocated from the device ({} regions, {} MiB), {:.1} in chunks and slab blocks",
            self.per_rule(self.icm_allocated()),
            after.ste_pool.regions + after.action_pool.regions,
            self.icm_allocated() >> 20,
            self.per_rule(self.icm_in_use()),
        )?;
        writeln!(
            w,
            "host bytes/rule: {:.1} measured (allocator), {:.1} by the tables' own count; plus the {} byte Rule handle the caller holds",
            self.host_bytes() as f64 / a.rules as f64,
            self.per_rule(after.tables.host_bytes as u64),
            std::mem::size_of::<Rule>(),
        )?;
        let gone = &self.after_delete;
        writeln!(
            w,
            "after the deletes: {} host bytes retained, {} KiB ICM in chunks and slab blocks ({} KiB allocated), {} KiB hot, {} table entries, {} shrink events",
            self.retained_bytes(),
            self.icm_in_use_after_delete() >> 10,
            (gone.ste_pool.allocated_bytes + gone.action_pool.allocated_bytes) >> 10,
            gone.ste_pool.hot_bytes >> 10,
            gone.tables.table_entries,
            self.shrinks(),
        )?;
        let t = &after.tables;
        writeln!(
            w,
            "tables: {} growth events ({} failed), {} tables, {} entries, {} STEs, {} in collision entries, longest chain {}, {} presize fallbacks",
            self.grows(), t.grow_failures, t.tables, t.table_entries, t.stes, t.collision_entries, t.longest_chain, t.presize_fallbacks,
        )?;
        for (name, tally) in &self.checks {
            writeln!(
                w,
                "check {name}: {} of {} passed",
                tally.checked - tally.failed,
                tally.checked
            )?;
            for f in &tally.first {
                writeln!(w, "    {f}")?;
            }
        }
        Ok(out)
    }

    /// The same as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let a = self.args;
        let t = &self.after_insert.tables;
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|(name, t)| {
                (
                    name.to_string(),
                    json!({"checked": t.checked, "failed": t.failed}),
                )
            })
            .collect();
        json!({
            "shape": a.shape.name(),
            "rules": a.rules,
            "threads": a.threads,
            "matchers": self.matchers,
            "model": format!("{:?}", a.model),
            "expected_log": a.expected_log,
            "grow": a.grow,
            "shrink": a.shrink,
            "growth": format!("{:?}", a.growth),
            "completion": format!("{:?}", a.completion),
            "shards": a.shards,
            "placement": format!("{:?}", a.placement),
            "doorbell_batch": a.doorbell_batch,
            "batch": a.batch,
            "latency_timing": a.latency,
            "load_average": self.load,
            "lookups": self.lu_types.len(),
            "insert": self.insert.json(),
            "delete": self.delete.json(),
            "icm_bytes_per_rule": self.per_rule(self.icm_allocated()),
            "icm_in_use_bytes_per_rule": self.per_rule(self.icm_in_use()),
            "host_bytes_per_rule": self.host_bytes() as f64 / a.rules as f64,
            "tables_host_bytes_per_rule": self.per_rule(t.host_bytes as u64),
            "rule_handle_bytes": std::mem::size_of::<Rule>(),
            "retained_host_bytes_after_delete": self.retained_bytes(),
            "retained_icm_in_use_bytes_after_delete": self.icm_in_use_after_delete(),
            "retained_icm_bytes_after_delete": self.after_delete.ste_pool.allocated_bytes
                + self.after_delete.action_pool.allocated_bytes,
            "table_entries_after_delete": self.after_delete.tables.table_entries,
            "shrink_events": self.shrinks(),
            "growth_events": self.grows(),
            "grow_failures": t.grow_failures,
            "tables": t.tables,
            "table_entries": t.table_entries,
            "stes": t.stes,
            "collision_entries": t.collision_entries,
            "longest_chain": t.longest_chain,
            "presize_fallbacks": t.presize_fallbacks,
            "checks": checks,
            "checks_ok": self.ok(),
        })
    }
}

/// Nanoseconds as microseconds with two decimals.
fn us(ns: u64) -> String {
    format!("{:.2} us", ns as f64 / 1000.0)
}
