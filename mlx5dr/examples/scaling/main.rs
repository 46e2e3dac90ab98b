//! Where two inserting threads lose speed: one process runs the same insert load in
//! several arrangements of threads, matchers, domains and simulated devices, taking
//! turns round after round, so that the drift of a shared machine spreads over all
//! of them (issue 5, "2 threads into 2 matchers").
//!
//! ```sh
//! cargo run --release -p mlx5dr --example scaling -- [--rules N] [--rounds R] [--completion wait|queue]
//! ```
//!
//! Every thread inserts `N` (default 300 000) distinct IPv4 5-tuple rules, drop or goto
//! as in `insert_bench`, into a fresh matcher. The arrangements:
//!
//! - `1 thread`: one thread, one device, one domain;
//! - `2 thr, 1 domain`: two threads, two matchers of one table of one domain (what
//!   `insert_bench --threads 2` measures);
//! - `2 thr, 2 domains`: two threads, each with its own domain, table and matcher on one
//!   shared simulated device;
//! - `2 thr, 2 devices`: two threads, each with its own simulated device and domain:
//!   nothing of the library or the simulator shared, only the process.
//!
//! Per arrangement and round it prints the wall-clock rate of all threads together and
//! each thread's inserts per CPU-second (`/proc/thread-self/schedstat`); at the end the
//! medians. If CPU per insert rises only where the threads share a domain or a device,
//! the cost is in what they share there; if it rises with separate devices too, it is
//! in the process (allocator, address space) or the machine.

#[path = "../insert_bench/shapes.rs"]
#[allow(dead_code)]
mod shapes;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mlx5dr::device::sim::SimBackend;
use mlx5dr::{
    Action, ActionList, Completion, Device, Domain, DomainType, Matcher, MatcherOptions, Table,
};
use shapes::Shape;
use sim::profile::DeviceModel;
use ste_builder::MatchParam;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The arrangements, in the order of the first round.
const ARRANGEMENTS: [Arrangement; 4] = [
    Arrangement::One,
    Arrangement::OneDomain,
    Arrangement::TwoDomains,
    Arrangement::TwoDevices,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrangement {
    One,
    OneDomain,
    TwoDomains,
    TwoDevices,
}

impl Arrangement {
    fn name(self) -> &'static str {
        match self {
            Arrangement::One => "1 thread",
            Arrangement::OneDomain => "2 thr, 1 domain",
            Arrangement::TwoDomains => "2 thr, 2 domains",
            Arrangement::TwoDevices => "2 thr, 2 devices",
        }
    }

    fn threads(self) -> usize {
        if self == Arrangement::One {
            1
        } else {
            2
        }
    }
}

/// What one thread inserts into, with what it needs kept alive.
struct Target {
    matcher: Arc<Matcher>,
    actions: [Arc<ActionList>; 2],
    // Held so the matcher's table and the goto target outlive the inserts.
    _tables: [Arc<Table>; 2],
}

/// A fresh NIC RX domain on `dev` with table 1 (for the matchers) and table 2 (the goto
/// target).
fn tables(dev: &Arc<dyn Device>) -> Result<[Arc<Table>; 2]> {
    let dmn = Domain::open(Arc::clone(dev), DomainType::NicRx)?;
    Ok([Table::new(&dmn, 1)?, Table::new(&dmn, 2)?])
}

/// A fresh matcher in `tables[0]`, with drop and goto `tables[1]` as in `insert_bench`.
fn target(tables: &[Arc<Table>; 2], opts: MatcherOptions) -> Result<Target> {
    let matcher = Matcher::new(&tables[0], &Shape::FiveTuple.mask(), opts)?;
    let drop = matcher.actions(&[Action::drop()])?;
    let goto = matcher.actions(&[Action::goto_table(&tables[1])])?;
    Ok(Target {
        matcher,
        actions: [drop, goto],
        _tables: tables.clone(),
    })
}

/// Fresh targets for `arr`, one per thread.
fn targets(arr: Arrangement, opts: MatcherOptions) -> Result<Vec<Target>> {
    let device = || -> Arc<dyn Device> { Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx)) };
    match arr {
        Arrangement::One => Ok(vec![target(&tables(&device())?, opts)?]),
        Arrangement::OneDomain => {
            // Both matchers in one table, with one goto target, as insert_bench has it.
            let t = tables(&device())?;
            Ok(vec![target(&t, opts)?, target(&t, opts)?])
        }
        Arrangement::TwoDomains => {
            let dev = device();
            (0..2).map(|_| target(&tables(&dev)?, opts)).collect()
        }
        Arrangement::TwoDevices => (0..2).map(|_| target(&tables(&device())?, opts)).collect(),
    }
}

/// The calling thread's time on a CPU so far.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// One measurement: all threads' inserts per wall second, each thread's per CPU-second.
struct Sample {
    wall_rate: f64,
    cpu_rates: Vec<f64>,
}

fn run(arr: Arrangement, values: &[Vec<MatchParam>], opts: MatcherOptions) -> Result<Sample> {
    let targets = targets(arr, opts)?;
    let go = Barrier::new(targets.len() + 1);
    let (wall, cpus) = std::thread::scope(|s| -> Result<(Duration, Vec<Duration>)> {
        let handles: Vec<_> = targets
            .iter()
            .zip(values)
            .map(|(t, vals)| {
                let go = &go;
                s.spawn(move || -> std::result::Result<(Duration, Vec<_>), String> {
                    let mut rules = Vec::with_capacity(vals.len());
                    go.wait();
                    let cpu0 = thread_cpu().unwrap_or_default();
                    for (i, v) in vals.iter().enumerate() {
                        let r = t
                            .matcher
                            .insert_raw(v, &t.actions[i & 1])
                            .map_err(|e| format!("insert {i}: {e}"))?;
                        rules.push(r);
                    }
                    t.matcher
                        .sync()
                        .map_err(|(side, e)| format!("sync ({side:?}): {e}"))?;
                    let cpu = thread_cpu().unwrap_or_default().saturating_sub(cpu0);
                    // The rules go (untimed) after the clock stops.
                    Ok((cpu, rules))
                })
            })
            .collect();
        go.wait();
        let start = Instant::now();
        let mut cpus = Vec::new();
        let mut kept = Vec::new();
        for h in handles {
            let (cpu, rules) = h.join().map_err(|_| "a thread panicked")??;
            cpus.push(cpu);
            kept.push(rules);
        }
        let wall = start.elapsed();
        drop(kept);
        Ok((wall, cpus))
    })?;
    let n = values[0].len() as f64;
    Ok(Sample {
        wall_rate: n * arr.threads() as f64 / wall.as_secs_f64(),
        cpu_rates: cpus.iter().map(|c| n / c.as_secs_f64()).collect(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() -> Result<()> {
    let mut rules = 300_000u64;
    let mut rounds = 5usize;
    let mut completion = Completion::Wait;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rules" => rules = val()?.parse()?,
            "--rounds" => rounds = val()?.parse()?,
            "--completion" => {
                completion = match val()?.as_str() {
                    "wait" => Completion::Wait,
                    "queue" => Completion::Queue,
                    "post" => Completion::Post,
                    other => return Err(format!("unknown completion {other:?}").into()),
                }
            }
            other => return Err(format!("unknown option {other:?}").into()),
        }
    }
    let opts = MatcherOptions {
        completion,
        ..MatcherOptions::default()
    };
    // Two disjoint sets of values, one per thread (a single thread takes the first).
    let values = (0..2u64)
        .map(|t| {
            (0..rules)
                .map(|i| Shape::FiveTuple.raw_value(1, 2 * rules, t * rules + i))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;

    println!("{rules} rules per thread, {rounds} rounds, completion {completion:?}");
    println!(
        "{:<18} {:>6} {:>12} {:>22}",
        "arrangement", "round", "all k/s", "per thread k/CPU-s"
    );
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); ARRANGEMENTS.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); ARRANGEMENTS.len()];
    for round in 0..rounds {
        // Each round starts with the next arrangement, so none always runs first.
        for k in 0..ARRANGEMENTS.len() {
            let a = (round + k) % ARRANGEMENTS.len();
            let arr = ARRANGEMENTS[a];
            let s = run(arr, &values[..arr.threads()], opts)?;
            let per: Vec<String> = s
                .cpu_rates
                .iter()
                .map(|r| format!("{:.0}", r / 1e3))
                .collect();
            println!(
                "{:<18} {:>6} {:>12.0} {:>22}",
                arr.name(),
                round,
                s.wall_rate / 1e3,
                per.join(" / ")
            );
            wall[a].push(s.wall_rate);
            cpu[a].extend(s.cpu_rates);
        }
    }
    println!();
    println!(
        "{:<18} {:>14} {:>12} {:>18} {:>12}",
        "median", "all k/s", "vs 1 thread", "k/CPU-s (thread)", "vs 1 thread"
    );
    let (w1, c1) = (median(wall[0].clone()), median(cpu[0].clone()));
    for (a, arr) in ARRANGEMENTS.iter().enumerate() {
        let (w, c) = (median(wall[a].clone()), median(cpu[a].clone()));
        println!(
            "{:<18} {:>14.0} {:>11.2}x {:>18.0} {:>11.2}x",
            arr.name(),
            w / 1e3,
            w / w1,
            c / 1e3,
            c / c1
        );
    }
    Ok(())
}
