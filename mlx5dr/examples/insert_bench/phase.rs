//! The timed phases: threads started together, each running its share of the inserts or
//! deletes in a tight loop, optionally timing every operation.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mlx5dr::{ActionList, BatchRule, Matcher, Rule};
use ste_builder::MatchParam;

use crate::hist::Histogram;
use crate::Result;

/// One thread's share of the inserts.
pub struct InsertWork<'a> {
    /// The matcher.
    pub matcher: Arc<Matcher>,
    /// Drop and goto: value `i` gets `actions[i % 2]`.
    pub actions: [Arc<ActionList>; 2],
    /// The values.
    pub values: &'a [MatchParam],
    /// The global index of `values[0]` (its parity picks the action).
    pub first: usize,
    /// Where the rules go (allocated beforehand).
    pub rules: Vec<Rule>,
    /// Where the latencies go (allocated beforehand).
    pub hist: Histogram,
}

/// What one thread's timed loop produced.
pub struct Done<T> {
    /// The loop's result (the rules, or the emptied vector).
    pub out: T,
    /// The latencies, if timed.
    pub hist: Histogram,
    /// The loop's wall time.
    pub took: Duration,
    /// The thread's time on a CPU and waiting for one during the loop, if the system
    /// tells ([`Sched`]).
    pub sched: Option<Sched>,
}

/// How the scheduler treated a thread: time on a CPU, and time runnable but waiting on
/// a run queue (what other processes on a shared machine cost it). Linux's
/// `/proc/thread-self/schedstat`, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Sched {
    /// Time on a CPU.
    pub cpu: Duration,
    /// Time runnable, waiting for a CPU.
    pub waited: Duration,
    /// The CPU the thread last ran on (`/proc/thread-self/stat`, field 39).
    pub last_cpu: Option<u32>,
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
pub struct Phase<T> {
    /// From the common start to the last thread's end.
    pub wall: Duration,
    /// Each thread's results, in share order.
    pub threads: Vec<Done<T>>,
}

impl<T> Phase<T> {
    /// The threads' latency histograms merged (allocates: call after the snapshots).
    pub fn hist(&self) -> Histogram {
        let mut hist = Histogram::default();
        for t in &self.threads {
            hist.merge(&t.hist);
        }
        hist
    }
}

/// Runs `work` on one thread each, started together; `f` is each thread's timed loop.
pub fn timed<W: Send, T: Send>(
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

/// Inserts a thread's share, each value with its action, timing every insert into the
/// histogram when `latency`.
pub fn insert_loop(
    mut w: InsertWork<'_>,
    latency: bool,
    batch: usize,
) -> std::result::Result<Done<Vec<Rule>>, String> {
    let fail = |i: usize, e: mlx5dr::InsertError| format!("insert of value {i}: {e}");
    let mut group: Vec<BatchRule<'_>> = Vec::with_capacity(batch);
    let mut results = Vec::with_capacity(batch);
    let start = Instant::now();
    if batch > 0 {
        // Whole batches: each latency recorded is a batch's, under its first value.
        let mut prev = start;
        for (c, vs) in w.values.chunks(batch).enumerate() {
            let first = w.first + c * batch;
            group.clear();
            group.extend(vs.iter().zip(first..).map(|(v, i)| (v, &w.actions[i & 1])));
            w.matcher.insert_batch_raw(&group, &mut results);
            for (r, i) in results.drain(..).zip(first..) {
                w.rules.push(r.map_err(|e| fail(i, e))?);
            }
            if latency {
                let now = Instant::now();
                w.hist.record((now - prev).as_nanos() as u64, first as u64);
                prev = now;
            }
        }
    } else if latency {
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
    // Updates that did not wait are waited for here, inside the timed region.
    w.matcher
        .sync()
        .map_err(|(side, e)| format!("sync after the inserts on {side}: {e}"))?;
    Ok(Done {
        took: start.elapsed(),
        out: w.rules,
        hist: w.hist,
        sched: None,
    })
}

/// Removes a thread's rules in insertion order, timing every removal into the histogram
/// when `latency`; with a nonzero `batch`, through `Matcher::remove_batch` calls of
/// `batch` rules, each timed as one.
pub fn delete_loop(
    (mut rules, mut hist): (Vec<Rule>, Histogram),
    latency: bool,
    batch: usize,
) -> std::result::Result<Done<Vec<Rule>>, String> {
    let fail =
        |j: usize, e: mlx5dr::RuleRemoveError| format!("delete of the thread's rule {j}: {e}");
    let matcher = rules.first().map(|r| Arc::clone(r.matcher()));
    let mut results = Vec::with_capacity(batch);
    let start = Instant::now();
    if let (true, Some(m)) = (batch > 0, &matcher) {
        let mut prev = start;
        let mut j = 0;
        let mut left = rules.drain(..);
        while left.len() > 0 {
            // Each latency recorded is a batch's, under its first rule.
            let first = j;
            m.remove_batch(left.by_ref().take(batch), &mut results);
            for r in results.drain(..) {
                r.map_err(|e| fail(j, e))?;
                j += 1;
            }
            if latency {
                let now = Instant::now();
                hist.record((now - prev).as_nanos() as u64, first as u64);
                prev = now;
            }
        }
    } else if latency {
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
    if let Some(m) = matcher {
        m.sync()
            .map_err(|(side, e)| format!("sync after the deletes on {side}: {e}"))?;
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
pub fn shares(n: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    (0..threads)
        .map(|t| (n * t / threads)..(n * (t + 1) / threads))
        .collect()
}
