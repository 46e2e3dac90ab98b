//! What a cache miss costs on this machine, serial and overlapped: the yardstick for
//! BENCHMARKS.md's budget of an insert at 1 M rules.
//!
//! ```sh
//! cargo run --release -p mlx5dr --example memory_latency
//! ```
//!
//! A pointer chase: each 64-byte line of an array holds the index of the next line of a
//! random cycle through all of them, so every load depends on the one before and lands
//! on a line the prefetchers cannot guess. Over spans from 4 MiB to 256 MiB it prints
//! the time per load; then, over 64 MiB, it interleaves 1 to 16 independent chases, so
//! the CPU may overlap their misses, and prints the time per load again.

#[path = "insert_bench/shapes.rs"]
#[allow(dead_code)]
mod shapes;

use std::hint::black_box;
use std::time::Instant;

/// `u64` words per cache line.
const LINE_WORDS: usize = 8;

/// An array of `mib` MiB whose lines form one random cycle: line `i`'s first word is the
/// word index of the next line's first word.
fn cycle(mib: usize, seed: u64) -> Vec<u64> {
    let lines = (mib << 20) / 64;
    let mut order: Vec<usize> = (0..lines).collect();
    // Fisher-Yates, drawing with insert_bench's mixer: reproducible, no dependency.
    for i in (1..lines).rev() {
        let z = shapes::mix64(seed ^ i as u64);
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    let mut words = vec![0u64; lines * LINE_WORDS];
    for k in 0..lines {
        let next = order[(k + 1) % lines];
        words[order[k] * LINE_WORDS] = (next * LINE_WORDS) as u64;
    }
    words
}

/// Nanoseconds per load of `chains` chases interleaved, `loads` loads in all, starting
/// at spread-out points of the cycle.
fn chase(words: &[u64], chains: usize, loads: usize) -> f64 {
    let lines = words.len() / LINE_WORDS;
    let mut at: Vec<usize> = (0..chains)
        .map(|c| (c * lines / chains) * LINE_WORDS)
        .collect();
    // Walk each start onto the cycle proper (any line is on it; this only warms up).
    for p in at.iter_mut() {
        *p = words[*p] as usize;
    }
    let rounds = loads / chains;
    let t = Instant::now();
    for _ in 0..rounds {
        for p in at.iter_mut() {
            *p = words[*p] as usize;
        }
    }
    let ns = t.elapsed().as_nanos() as f64;
    black_box(&at);
    ns / (rounds * chains) as f64
}

fn main() {
    const LOADS: usize = 8_000_000;
    println!("serial loads (one chase):");
    for mib in [4, 64, 256] {
        let words = cycle(mib, 1);
        println!(
            "  {mib:>4} MiB: {:6.1} ns per load",
            chase(&words, 1, LOADS)
        );
    }
    println!("independent chases interleaved over 64 MiB:");
    let words = cycle(64, 1);
    for chains in [1, 2, 4, 8, 16] {
        println!(
            "  {chains:>4} chains: {:6.1} ns per load",
            chase(&words, chains, LOADS)
        );
    }
}
