//! Insertion and deletion speed, latency and memory of the steering engine on a
//! simulated ConnectX (issue 5's measurement).
//!
//! ```sh
//! cargo run --release -p mlx5dr --example insert_bench -- \
//!     --rules 1000000 --shape 5tuple --threads 1 [--shared] [--json]
//! ```
//!
//! Options: `--rules N` (100 000), `--shape 5tuple|dmac|vxlan` (5tuple),
//! `--threads T` (1), `--shared` (the T threads insert into one matcher instead of one
//! matcher each), `--expected-log L` (`MatcherOptions::expected_log_rules`; default 0,
//! i.e. `MatcherOptions::default()`), `--no-grow`, `--no-latency` (no per-operation
//! timing: only the phase's wall time), `--check K` (packets per check, 1000),
//! `--vni-rules R` (vxlan: rules per VNI, 256), `--seed S`, `--model cx5|cx6dx|cx7`
//! (cx6dx), `--json` (the results as one JSON object on the last line).
//!
//! What it does:
//!
//! 1. Generates the N distinct rule values (raw 448-byte PRM buffers, as rdma-core's
//!    `mlx5dv_dr_rule_create` takes them) before anything is timed.
//! 2. Opens a NIC RX domain with table 1 (the matchers) and table 2 (an empty goto
//!    target); rule `i` drops when `i` is even and goes to table 2 when odd, with one
//!    shared action list each.
//! 3. Times the inserts: T threads, each inserting its contiguous share of the values
//!    into its own matcher (or, with `--shared`, all into one), every operation timed
//!    into a latency histogram unless `--no-latency`. Every insert is complete when it
//!    returns (written, and flushed through the simulated queue).
//! 4. Outside the timed region: host and ICM memory, the send ring's and the hash
//!    tables' counters, and packets through the simulator: a sample of rules must be
//!    hit (at their own STE, with their own action), a sample of never-inserted values
//!    must hit no rule.
//! 5. Times the deletes (each thread deletes its rules in insertion order), then checks
//!    that the sampled rules' packets hit nothing any more.
//!
//! Host memory is measured by a counting global allocator ([`alloc`]): live bytes after
//! the inserts minus live bytes before (the values, the handle vectors and the
//! histograms already allocated by then, so they do not count). ICM is what the domain's
//! STE pool holds from the device (allocated, not only written).
//!
//! Exits with status 1 if a check fails, 2 on a usage or setup error.

mod alloc;
mod check;
mod hist;
mod shapes;

use std::collections::HashSet;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mlx5dr::device::sim::SimBackend;
use mlx5dr::htbl::HtblStats;
use mlx5dr::icm::PoolStats;
use mlx5dr::send::SendStats;
use mlx5dr::{
    Action, ActionList, Device, Domain, DomainSide, DomainType, Matcher, MatcherOptions, Rule,
    Table,
};
use serde_json::json;
use sim::profile::DeviceModel;
use ste_builder::MatchParam;

use check::{Prober, Tally};
use hist::Histogram;
use shapes::Shape;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    rules: u64,
    shape: Shape,
    threads: usize,
    shared: bool,
    expected_log: u8,
    grow: bool,
    latency: bool,
    check: u64,
    seed: u64,
    model: DeviceModel,
    json: bool,
}

const USAGE: &str = "usage: insert_bench [--rules N] [--shape 5tuple|dmac|vxlan] [--threads T] \
[--shared] [--expected-log L] [--no-grow] [--no-latency] [--check K] [--vni-rules R] \
[--seed S] [--model cx5|cx6dx|cx7] [--json]";

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> std::result::Result<Args, String> {
        let mut a = Args {
            rules: 100_000,
            shape: Shape::FiveTuple,
            threads: 1,
            shared: false,
            expected_log: 0,
            grow: true,
            latency: true,
            check: 1000,
            seed: 0x5eed,
            model: DeviceModel::ConnectX6Dx,
            json: false,
        };
        let mut vni_rules = None;
        while let Some(flag) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match flag.as_str() {
                "--rules" => a.rules = num(&value("--rules")?)?,
                "--shape" => a.shape = value("--shape")?.parse()?,
                "--threads" => a.threads = num(&value("--threads")?)?,
                "--shared" => a.shared = true,
                "--expected-log" => a.expected_log = num(&value("--expected-log")?)?,
                "--no-grow" => a.grow = false,
                "--no-latency" => a.latency = false,
                "--check" => a.check = num(&value("--check")?)?,
                "--vni-rules" => vni_rules = Some(num(&value("--vni-rules")?)?),
                "--seed" => a.seed = num(&value("--seed")?)?,
                "--model" => {
                    a.model = match value("--model")?.as_str() {
                        "cx5" => DeviceModel::ConnectX5,
                        "cx6dx" => DeviceModel::ConnectX6Dx,
                        "cx7" => DeviceModel::ConnectX7,
                        m => return Err(format!("unknown model {m:?} (cx5, cx6dx or cx7)")),
                    }
                }
                "--json" => a.json = true,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        if let (Shape::Vxlan { per_vni }, Some(r)) = (&mut a.shape, vni_rules) {
            *per_vni = r;
        }
        if a.rules == 0 || a.rules >= 1 << 32 {
            return Err("--rules must be in 1..2^32".into());
        }
        if a.threads == 0 || a.threads as u64 > a.rules {
            return Err("--threads must be in 1..=rules".into());
        }
        Ok(a)
    }
}

fn num<T: std::str::FromStr>(s: &str) -> std::result::Result<T, String> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    clean.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("insert_bench: {e}");
            std::process::exit(2);
        }
    }
}

/// The device, domain, tables, matchers and action lists.
struct Rig {
    be: Arc<SimBackend>,
    dmn: Arc<Domain>,
    table1: Arc<Table>,
    table2: Arc<Table>,
    /// One per thread, or one shared.
    matchers: Vec<Arc<Matcher>>,
    /// Per matcher: [drop, goto table 2].
    actions: Vec<[Arc<ActionList>; 2]>,
}

impl Rig {
    fn new(args: &Args) -> Result<Rig> {
        let be = Arc::new(SimBackend::of_model(args.model));
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open(dev, DomainType::NicRx)?;
        let table1 = Table::new(&dmn, 1)?;
        let table2 = Table::new(&dmn, 2)?;
        let opts = MatcherOptions {
            expected_log_rules: args.expected_log,
            grow: args.grow,
            ..MatcherOptions::default()
        };
        let count = if args.shared { 1 } else { args.threads };
        let mask = args.shape.mask();
        let mut matchers = Vec::new();
        let mut actions = Vec::new();
        for _ in 0..count {
            let m = Matcher::new(&table1, &mask, opts)?;
            let drop = m.actions(&[Action::drop()])?;
            let goto = m.actions(&[Action::goto_table(&table2)])?;
            actions.push([drop, goto]);
            matchers.push(m);
        }
        Ok(Rig {
            be,
            dmn,
            table1,
            table2,
            matchers,
            actions,
        })
    }
}

/// Counters of everything measured, at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    mem: alloc::Usage,
    send: SendStats,
    ste_pool: PoolStats,
    action_pool: PoolStats,
    tables: HtblStats,
}

impl Snapshot {
    fn take(rig: &Rig) -> Snapshot {
        // The counters are read first: building the others allocates.
        let mem = alloc::usage();
        let mut send = SendStats::default();
        for s in rig.dmn.send_stats() {
            send.writes += s.writes;
            send.bytes += s.bytes;
            send.wqes += s.wqes;
            send.signaled += s.signaled;
            send.doorbells += s.doorbells;
            send.cqes += s.cqes;
            send.full_waits += s.full_waits;
        }
        let mut tables = HtblStats::default();
        for m in &rig.matchers {
            for (_, s) in m.stats().sides {
                tables.rules += s.rules;
                tables.stes += s.stes;
                tables.tables += s.tables;
                tables.table_entries += s.table_entries;
                tables.collision_entries += s.collision_entries;
                tables.action_stes += s.action_stes;
                tables.longest_chain = tables.longest_chain.max(s.longest_chain);
                tables.grows += s.grows;
                tables.grow_failures += s.grow_failures;
                tables.presize_fallbacks += s.presize_fallbacks;
                tables.leaked_chunks += s.leaked_chunks;
                tables.host_bytes += s.host_bytes;
            }
        }
        Snapshot {
            mem,
            send,
            ste_pool: rig.dmn.ste_pool().stats(),
            action_pool: rig.dmn.action_pool().stats(),
            tables,
        }
    }
}

/// One thread's share of the inserts.
struct InsertWork<'a> {
    matcher: Arc<Matcher>,
    actions: [Arc<ActionList>; 2],
    values: &'a [MatchParam],
    /// The global index of `values[0]` (its parity picks the action).
    first: usize,
    rules: Vec<Rule>,
    hist: Histogram,
}

/// What one thread's timed loop produced.
struct Done<T> {
    out: T,
    hist: Histogram,
    took: Duration,
    /// The thread's time on a CPU and waiting for one during the loop, if the system
    /// tells ([`Sched`]).
    sched: Option<Sched>,
}

/// How the scheduler treated a thread: time on a CPU, and time runnable but waiting on
/// a run queue (what other processes on a shared machine cost it). Linux's
/// `/proc/thread-self/schedstat`, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Sched {
    cpu: Duration,
    waited: Duration,
    /// The CPU the thread last ran on (`/proc/thread-self/stat`, field 39).
    last_cpu: Option<u32>,
}

impl Sched {
    /// The calling thread's totals so far, or `None` where the file does not exist.
    fn now() -> Option<Sched> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
        let last_cpu = std::fs::read_to_string("/proc/thread-self/stat")
            .ok()
            .and_then(|st| {
                // Fields after the parenthesised command name start at field 3.
                let rest = &st[st.rfind(')')? + 1..];
                rest.split_whitespace().nth(39 - 3)?.parse().ok()
            });
        Some(Sched {
            cpu: Duration::from_nanos(it.next()??),
            waited: Duration::from_nanos(it.next()??),
            last_cpu,
        })
    }

    fn since(self, earlier: Sched) -> Sched {
        Sched {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            waited: self.waited.saturating_sub(earlier.waited),
            last_cpu: self.last_cpu,
        }
    }
}

/// A timed phase: the wall time from the common start to the last thread's end, and
/// each thread's results.
struct Phase<T> {
    wall: Duration,
    threads: Vec<Done<T>>,
}

impl<T> Phase<T> {
    /// The threads' latency histograms merged (allocates: call after the snapshots).
    fn hist(&self) -> Histogram {
        let mut hist = Histogram::default();
        for t in &self.threads {
            hist.merge(&t.hist);
        }
        hist
    }
}

/// Runs `work` on one thread each, started together; `f` is each thread's timed loop.
fn timed<W: Send, T: Send>(
    work: Vec<W>,
    f: impl Fn(W) -> std::result::Result<Done<T>, String> + Sync,
) -> Result<Phase<T>> {
    let go = Barrier::new(work.len() + 1);
    let mut results = Vec::with_capacity(work.len());
    let wall = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|w| {
                let (go, f) = (&go, &f);
                s.spawn(move || {
                    go.wait();
                    let before = Sched::now();
                    let mut done = f(w)?;
                    done.sched = Sched::now().zip(before).map(|(b, a)| b.since(a));
                    Ok::<_, String>(done)
                })
            })
            .collect();
        go.wait();
        let start = Instant::now();
        for h in handles {
            results.push(h.join().map_err(|_| "a worker thread panicked".to_string()));
        }
        start.elapsed()
    });
    let mut threads = Vec::with_capacity(results.len());
    for r in results {
        threads.push(r??);
    }
    Ok(Phase { wall, threads })
}

fn insert_loop(
    mut w: InsertWork<'_>,
    latency: bool,
) -> std::result::Result<Done<Vec<Rule>>, String> {
    let fail = |i: usize, e: mlx5dr::InsertError| format!("insert of value {i}: {e}");
    let start = Instant::now();
    if latency {
        let mut prev = start;
        for (j, v) in w.values.iter().enumerate() {
            let i = w.first + j;
            let rule = w
                .matcher
                .insert_raw(v, &w.actions[i & 1])
                .map_err(|e| fail(i, e))?;
            w.rules.push(rule);
            let now = Instant::now();
            w.hist.record((now - prev).as_nanos() as u64, i as u64);
            prev = now;
        }
    } else {
        for (j, v) in w.values.iter().enumerate() {
            let i = w.first + j;
            let rule = w
                .matcher
                .insert_raw(v, &w.actions[i & 1])
                .map_err(|e| fail(i, e))?;
            w.rules.push(rule);
        }
    }
    Ok(Done {
        took: start.elapsed(),
        out: w.rules,
        hist: w.hist,
        sched: None,
    })
}

fn delete_loop(
    (mut rules, mut hist): (Vec<Rule>, Histogram),
    latency: bool,
) -> std::result::Result<Done<Vec<Rule>>, String> {
    let fail =
        |j: usize, e: mlx5dr::RuleRemoveError| format!("delete of the thread's rule {j}: {e}");
    let start = Instant::now();
    if latency {
        let mut prev = start;
        for (j, r) in rules.drain(..).enumerate() {
            r.remove().map_err(|e| fail(j, e))?;
            let now = Instant::now();
            hist.record((now - prev).as_nanos() as u64, j as u64);
            prev = now;
        }
    } else {
        for (j, r) in rules.drain(..).enumerate() {
            r.remove().map_err(|e| fail(j, e))?;
        }
    }
    // The emptied vector goes back, so its memory is freed outside the timed loop.
    Ok(Done {
        took: start.elapsed(),
        out: rules,
        hist,
        sched: None,
    })
}

/// The global index range of each thread's share: contiguous, as even as possible.
fn shares(n: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    (0..threads)
        .map(|t| (n * t / threads)..(n * (t + 1) / threads))
        .collect()
}

/// Per-phase figures.
struct PhaseReport {
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
    fn new<T>(
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

fn run(args: &Args) -> Result<bool> {
    let n = args.rules as usize;
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();

    // Values first, outside everything measured.
    let t = Instant::now();
    let values = (0..args.rules)
        .map(|i| args.shape.raw_value(args.seed, args.rules, i))
        .collect::<std::result::Result<Vec<MatchParam>, String>>()?;
    let absent = (0..args.check.min(args.rules))
        .map(|k| args.shape.raw_value(args.seed, args.rules, args.rules + k))
        .collect::<std::result::Result<Vec<MatchParam>, String>>()?;
    let gen_time = t.elapsed();

    let rig = Rig::new(args)?;
    let lu_types = rig.matchers[0]
        .lu_types(DomainSide::NicRx)
        .unwrap_or_default();
    let shares = shares(n, args.threads);

    // Everything the timed phases hand around is allocated before the first snapshot.
    let mut work = Vec::with_capacity(args.threads);
    for (t, r) in shares.iter().enumerate() {
        let m = if args.shared { 0 } else { t };
        work.push(InsertWork {
            matcher: Arc::clone(&rig.matchers[m]),
            actions: rig.actions[m].clone(),
            values: &values[r.clone()],
            first: r.start,
            rules: Vec::with_capacity(r.len()),
            hist: Histogram::default(),
        });
    }

    let before = Snapshot::take(&rig);
    let ins = timed(work, |w| insert_loop(w, args.latency))?;
    let after_ins = Snapshot::take(&rig);

    // Checks after the inserts.
    let prober = Prober::new(
        Arc::clone(rig.be.sim()),
        rig.table1.fw_id(),
        rig.table2
            .root_addr(DomainSide::NicRx)
            .ok_or("table 2 has no NIC RX root")?,
    );
    let rule_of = |i: usize| -> &Rule {
        let t = shares
            .iter()
            .position(|r| r.contains(&i))
            .expect("in a share");
        &ins.threads[t].out[i - shares[t].start]
    };
    let sample: Vec<usize> = {
        let k = args.check.min(args.rules) as usize;
        (0..k).map(|j| j * n / k).collect()
    };
    let mut reachable = Tally::default();
    for &i in &sample {
        let r = match rule_of(i).icm_addr(DomainSide::NicRx) {
            Some(addr) => prober.expect_hit(&values[i], addr, i & 1 == 1),
            None => Err("the rule has no NIC RX STE".into()),
        };
        reachable.count(|| format!("rule {i}"), r);
    }
    let mut installed = Tally::default();
    let counted = after_ins.tables.rules;
    installed.count(
        || "rules counted by the matchers".into(),
        if counted == args.rules {
            Ok(())
        } else {
            Err(format!("{counted}, not {}", args.rules))
        },
    );
    let mut no_rule = Tally::default();
    if !absent.is_empty() {
        let addrs: HashSet<u64> = ins
            .threads
            .iter()
            .flat_map(|t| t.out.iter())
            .filter_map(|r| r.icm_addr(DomainSide::NicRx))
            .collect();
        for (k, v) in absent.iter().enumerate() {
            no_rule.count(
                || format!("absent value {k}"),
                prober.expect_no_rule(v, &addrs),
            );
        }
    }

    // The deletes.
    let mut ins = ins;
    let mut work = Vec::with_capacity(args.threads);
    for t in &mut ins.threads {
        work.push((std::mem::take(&mut t.out), Histogram::default()));
    }
    let before_del = Snapshot::take(&rig);
    let del = timed(work, |w| delete_loop(w, args.latency))?;
    let after_del = Snapshot::take(&rig);

    let mut gone = Tally::default();
    for &i in &sample {
        gone.count(
            || format!("deleted rule {i}"),
            prober.expect_gone(&values[i]),
        );
    }
    let left = after_del.tables.rules;
    gone.count(
        || "rules counted by the matchers after the deletes".into(),
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} left"))
        },
    );

    let ins_rep = PhaseReport::new(&ins, args.rules, &shares, &before, &after_ins, args.latency);
    let del_rep = PhaseReport::new(
        &del,
        args.rules,
        &shares,
        &before_del,
        &after_del,
        args.latency,
    );
    let per_rule = |x: u64| x as f64 / args.rules as f64;
    let host = after_ins.mem.live as i64 - before.mem.live as i64;
    let icm_alloc = after_ins.ste_pool.allocated_bytes + after_ins.action_pool.allocated_bytes;
    let icm_used = after_ins.ste_pool.chunk_bytes + after_ins.ste_pool.slab_bytes;
    let grows = after_ins.tables.grows - before.tables.grows;
    let checks = [
        ("reachable", &reachable),
        ("installed", &installed),
        ("absent", &no_rule),
        ("gone", &gone),
    ];
    let ok = checks.iter().all(|(_, t)| t.failed == 0);

    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "insert_bench: {} x {}, {} thread(s) into {} matcher(s), {:?} (STE {}), expected_log {}, grow {}, per-op timing {}",
        args.rules,
        args.shape.name(),
        args.threads,
        rig.matchers.len(),
        args.model,
        rig.dmn.format(),
        args.expected_log,
        args.grow,
        if args.latency { "on" } else { "off" },
    )?;
    writeln!(
        w,
        "lookups per rule {} ({}); values generated in {:.2} s; load average {load}",
        lu_types.len(),
        lu_types
            .iter()
            .map(|t| format!("{t:#x}"))
            .collect::<Vec<_>>()
            .join(", "),
        gen_time.as_secs_f64(),
    )?;
    writeln!(w, "{:<28} {:>14} {:>14}", "", "insert", "delete")?;
    let row = |w: &mut String, name: &str, a: String, b: String| {
        writeln!(w, "{name:<28} {a:>14} {b:>14}")
    };
    row(
        w,
        "rules/s",
        format!("{:.0}", ins_rep.rate),
        format!("{:.0}", del_rep.rate),
    )?;
    row(
        w,
        "wall s",
        format!("{:.3}", ins_rep.wall.as_secs_f64()),
        format!("{:.3}", del_rep.wall.as_secs_f64()),
    )?;
    if args.threads > 1 {
        let rates = |r: &PhaseReport| {
            r.per_thread_rate
                .iter()
                .map(|x| format!("{:.0}", x / 1000.0))
                .collect::<Vec<_>>()
                .join("/")
        };
        row(w, "per thread k rules/s", rates(&ins_rep), rates(&del_rep))?;
    }
    for (name, q) in [
        ("latency p50", 0.5),
        ("latency p99", 0.99),
        ("latency p99.9", 0.999),
    ] {
        let f = |r: &PhaseReport| r.hist.as_ref().map_or("-".into(), |h| us(h.quantile(q)));
        row(w, name, f(&ins_rep), f(&del_rep))?;
    }
    let f = |r: &PhaseReport| r.hist.as_ref().map_or("-".into(), |h| us(h.max()));
    row(w, "latency max", f(&ins_rep), f(&del_rep))?;
    for (name, r) in [("inserts", &ins_rep), ("deletes", &del_rep)] {
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
    let cpu = |r: &PhaseReport, f: fn((f64, f64)) -> f64| {
        r.cpu.map_or("-".into(), |c| format!("{:.3}", f(c)))
    };
    row(
        w,
        "CPU s (all threads)",
        cpu(&ins_rep, |c| c.0),
        cpu(&del_rep, |c| c.0),
    )?;
    row(
        w,
        "waiting for a CPU s",
        cpu(&ins_rep, |c| c.1),
        cpu(&del_rep, |c| c.1),
    )?;
    let unloaded = |r: &PhaseReport| r.unloaded_rate.map_or("-".into(), |x| format!("{x:.0}"));
    row(
        w,
        "rules/s less CPU waits",
        unloaded(&ins_rep),
        unloaded(&del_rep),
    )?;
    let cpus = |r: &PhaseReport| {
        let names: Vec<String> = r
            .cpus
            .iter()
            .map(|c| c.map_or("?".into(), |c| c.to_string()))
            .collect();
        names.join("/")
    };
    row(w, "threads last ran on CPU", cpus(&ins_rep), cpus(&del_rep))?;
    row(
        w,
        "STE writes/rule",
        format!("{:.3}", ins_rep.writes),
        format!("{:.3}", del_rep.writes),
    )?;
    row(
        w,
        "WQEs/rule",
        format!("{:.3}", ins_rep.wqes),
        format!("{:.3}", del_rep.wqes),
    )?;
    row(
        w,
        "bytes written/rule",
        format!("{:.1}", ins_rep.bytes),
        format!("{:.1}", del_rep.bytes),
    )?;
    row(
        w,
        "doorbells",
        ins_rep.doorbells.to_string(),
        del_rep.doorbells.to_string(),
    )?;
    row(
        w,
        "ring-full waits",
        ins_rep.full_waits.to_string(),
        del_rep.full_waits.to_string(),
    )?;
    row(
        w,
        "heap allocations/rule",
        format!("{:.3}", ins_rep.allocs),
        format!("{:.3}", del_rep.allocs),
    )?;
    writeln!(
        w,
        "ICM bytes/rule: {:.1} allocated from the device ({} regions, {} MiB), {:.1} in chunks and slab blocks",
        per_rule(icm_alloc),
        after_ins.ste_pool.regions + after_ins.action_pool.regions,
        icm_alloc >> 20,
        per_rule(icm_used),
    )?;
    writeln!(
        w,
        "host bytes/rule: {:.1} measured (allocator), {:.1} by the tables' own count; plus the {} byte Rule handle the caller holds",
        host as f64 / args.rules as f64,
        per_rule(after_ins.tables.host_bytes as u64),
        std::mem::size_of::<Rule>(),
    )?;
    writeln!(
        w,
        "after the deletes: {} host bytes retained, {} KiB ICM in chunks and slab blocks, {} KiB hot",
        after_del.mem.live as i64 - before.mem.live as i64,
        (after_del.ste_pool.chunk_bytes + after_del.ste_pool.slab_bytes) >> 10,
        after_del.ste_pool.hot_bytes >> 10,
    )?;
    let t = &after_ins.tables;
    writeln!(
        w,
        "tables: {} growth events ({} failed), {} tables, {} entries, {} STEs, {} in collision entries, longest chain {}, {} presize fallbacks",
        grows, t.grow_failures, t.tables, t.table_entries, t.stes, t.collision_entries, t.longest_chain, t.presize_fallbacks,
    )?;
    for (name, tally) in &checks {
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
    print!("{out}");

    if args.json {
        let checks_json: serde_json::Map<String, serde_json::Value> = checks
            .iter()
            .map(|(name, t)| {
                (
                    name.to_string(),
                    json!({"checked": t.checked, "failed": t.failed}),
                )
            })
            .collect();
        let j = json!({
            "shape": args.shape.name(),
            "rules": args.rules,
            "threads": args.threads,
            "matchers": rig.matchers.len(),
            "model": format!("{:?}", args.model),
            "expected_log": args.expected_log,
            "grow": args.grow,
            "latency_timing": args.latency,
            "load_average": load,
            "lookups": lu_types.len(),
            "insert": ins_rep.json(),
            "delete": del_rep.json(),
            "icm_bytes_per_rule": per_rule(icm_alloc),
            "icm_in_use_bytes_per_rule": per_rule(icm_used),
            "host_bytes_per_rule": host as f64 / args.rules as f64,
            "tables_host_bytes_per_rule": per_rule(after_ins.tables.host_bytes as u64),
            "rule_handle_bytes": std::mem::size_of::<Rule>(),
            "retained_host_bytes_after_delete": after_del.mem.live as i64 - before.mem.live as i64,
            "growth_events": grows,
            "grow_failures": t.grow_failures,
            "tables": t.tables,
            "table_entries": t.table_entries,
            "stes": t.stes,
            "collision_entries": t.collision_entries,
            "longest_chain": t.longest_chain,
            "presize_fallbacks": t.presize_fallbacks,
            "checks": checks_json,
            "checks_ok": ok,
        });
        println!("{j}");
    }
    Ok(ok)
}

/// Nanoseconds as microseconds with two decimals.
fn us(ns: u64) -> String {
    format!("{:.2} us", ns as f64 / 1000.0)
}
