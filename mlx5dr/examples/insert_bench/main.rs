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
//! i.e. `MatcherOptions::default()`), `--no-grow`, `--no-shrink` (`MatcherOptions::shrink`
//! off), `--growth 2|4`
//! (`MatcherOptions::growth`, 4), `--completion wait|post|queue`
//! (`MatcherOptions::completion`, wait), `--shards S` (`MatcherOptions::shards`, 1),
//! `--placement tags|thread` (`MatcherOptions::placement`, tags),
//! `--doorbell-batch W` (`SendConfig::doorbell_batch`,
//! WQEs per doorbell when updates are queued; 128), `--batch K` (inserts go through
//! `Matcher::insert_batch_raw` and deletes through `Matcher::remove_batch`, K rules per
//! call; the latencies recorded are then whole batches'; 0, one `insert_raw` and one
//! `Rule::remove` per rule), `--no-latency` (no per-operation
//! timing: only the phase's wall time), `--check K` (packets per check, 1000), `--keep K`
//! (the delete phase leaves the first K rules installed, so that what removals give
//! back from a table that keeps rules shows; 0),
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
//!    into a latency histogram unless `--no-latency`. With `--completion wait` every
//!    insert is complete when it returns (written, and flushed through the simulated
//!    queue); otherwise each thread ends its timed loop with `Matcher::sync`, so the
//!    phase's time includes waiting for every update.
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
//! ICM pools hold from the device (allocated, not only written).
//!
//! Exits with status 1 if a check fails, 2 on a usage or setup error.

mod alloc;
mod args;
mod check;
mod hist;
mod phase;
mod report;
mod shapes;

use std::collections::HashSet;
use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use mlx5dr::device::sim::SimBackend;
use mlx5dr::{
    Action, ActionList, Device, Domain, DomainConfig, DomainSide, DomainType, Matcher,
    MatcherOptions, Rule, Table,
};
use ste_builder::MatchParam;

use args::Args;
use check::{Prober, Tally};
use hist::Histogram;
use phase::{delete_loop, insert_loop, shares, timed, InsertWork};
use report::{PhaseReport, Report, Snapshot};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Errors of setup and of the timed loops (a failed check is not one: it is reported).
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

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
        let mut cfg = DomainConfig::default();
        if let Some(w) = args.doorbell_batch {
            cfg.send.doorbell_batch = w;
        }
        let dmn = Domain::open_with(dev, DomainType::NicRx, cfg)?;
        let table1 = Table::new(&dmn, 1)?;
        let table2 = Table::new(&dmn, 2)?;
        let opts = MatcherOptions {
            expected_log_rules: args.expected_log,
            grow: args.grow,
            shrink: args.shrink,
            growth: args.growth,
            completion: args.completion,
            shards: args.shards,
            placement: args.placement,
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

/// One run: values, the rig, the timed inserts, the checks, the timed deletes, the
/// checks again, the report. `Ok(false)` when a check failed.
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

    let before = Snapshot::take(&rig.dmn, &rig.matchers);
    let ins = timed(work, |w| insert_loop(w, args.latency, args.batch))?;
    let after_ins = Snapshot::take(&rig.dmn, &rig.matchers);

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

    // The deletes: every rule but the first `keep`, which stay installed until the end.
    let mut ins = ins;
    let keep = args.keep as usize;
    let mut kept: Vec<Rule> = Vec::with_capacity(keep);
    let mut deleted = Vec::with_capacity(args.threads);
    let mut work = Vec::with_capacity(args.threads);
    for (t, r) in ins.threads.iter_mut().zip(&shares) {
        let mut rules = std::mem::take(&mut t.out);
        let k = keep.saturating_sub(r.start).min(r.len());
        let rest = rules.split_off(k);
        kept.extend(rules);
        deleted.push(r.start + k..r.end);
        work.push((rest, Histogram::default()));
    }
    let before_del = Snapshot::take(&rig.dmn, &rig.matchers);
    let del = timed(work, |w| delete_loop(w, args.latency, args.batch))?;
    let after_del = Snapshot::take(&rig.dmn, &rig.matchers);

    let mut gone = Tally::default();
    let mut still = Tally::default();
    // With rules kept, a deleted rule's packet still meets the STEs it shared with them:
    // it must hit none of the kept rules' last STEs instead of no STE at all.
    let kept_addrs: HashSet<u64> = kept
        .iter()
        .filter_map(|r| r.icm_addr(DomainSide::NicRx))
        .collect();
    for &i in &sample {
        if i < keep {
            let r = match kept[i].icm_addr(DomainSide::NicRx) {
                Some(addr) => prober.expect_hit(&values[i], addr, i & 1 == 1),
                None => Err("the rule has no NIC RX STE".into()),
            };
            still.count(|| format!("kept rule {i}"), r);
        } else {
            let r = if keep == 0 {
                prober.expect_gone(&values[i])
            } else {
                prober.expect_no_rule(&values[i], &kept_addrs)
            };
            gone.count(|| format!("deleted rule {i}"), r);
        }
    }
    let left = after_del.tables.rules;
    gone.count(
        || "rules counted by the matchers after the deletes".into(),
        if left == args.keep {
            Ok(())
        } else {
            Err(format!("{left} left, not {keep}"))
        },
    );

    let report = Report {
        args,
        matchers: rig.matchers.len(),
        format: rig.dmn.format().to_string(),
        lu_types,
        gen_time,
        load,
        insert: PhaseReport::new(&ins, args.rules, &shares, &before, &after_ins, args.latency),
        delete: PhaseReport::new(
            &del,
            args.rules - args.keep,
            &deleted,
            &before_del,
            &after_del,
            args.latency,
        ),
        before,
        after_insert: after_ins,
        after_delete: after_del,
        checks: vec![
            ("reachable", reachable),
            ("installed", installed),
            ("absent", no_rule),
            ("gone", gone),
            ("kept", still),
        ],
    };
    print!("{}", report.text()?);
    if args.json {
        println!("{}", report.json());
    }
    Ok(report.ok())
}
