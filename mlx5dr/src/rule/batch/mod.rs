//! Batches of updates: [`Matcher::insert_batch_raw`] and [`Matcher::remove_batch`].
//!
//! A datapath that offloads flows in bursts (a conntrack table's new connections and
//! its aged-out ones, a switch's upcall batch and its revalidator's deletions) pays for
//! each update's lock and, by default, its own wait for the device. A batch pays for
//! them once per group of rules instead:
//!
//! - each side's lock and send ring are taken once per group of 64 rules (in a sharded
//!   matcher, see [`crate::MatcherOptions::shards`], once per shard and group of 64
//!   rules per shard, up to 256);
//! - a matcher that waits for its updates ([`Completion::Wait`]) waits once for the
//!   whole group ([`crate::htbl::MatcherTables::batch`]), and its doorbell carries the
//!   group's writes together;
//! - an insert batch computes every rule's tags first, outside any lock;
//! - in a large matcher, an insert group first reads every rule's chain head, then the
//!   record of the STE heading each chain, before inserting any: loads that do not
//!   depend on one another, so their cache misses overlap (about +10 % inserts/s at 1 M
//!   rules; BENCHMARKS.md, ninth round). The first pass keeps each rule's last-level
//!   hash for its insert, and looks the shared upper STEs up once per run of equal
//!   prefixes; a first try that ran each rule's full lookup cost half as much again and
//!   gained nothing (sixth round).
//!
//! Each rule succeeds or fails on its own, as a single insert or removal would have in
//! its place, and the rest goes on. What differs is a send failure with
//! `Completion::Wait`: as with `Completion::Queue`, it loses the matcher side's tables
//! (every later call fails with [`HtblError::Lost`]), and every rule of the group that
//! had been updated on that side is reported failed with it.
//!
//! [`Completion::Wait`]: crate::Completion::Wait
//! [`Matcher::insert_batch_raw`]: crate::Matcher::insert_batch_raw
//! [`Matcher::remove_batch`]: crate::Matcher::remove_batch

mod insert;
mod remove;

pub use insert::BatchRule;

use crate::htbl::{HtblError, MatcherTables};
use crate::matcher::{Linked, Matcher, MatcherSide};
use crate::matching::DomainSide;
use crate::send::{SendError, SendRing};

/// Rules a batch updates under one lock and, with `Completion::Wait`, one wait. Bounds
/// how long a batch keeps other threads out of a matcher side, and the per-thread tag
/// buffers of an insert batch (two 700-byte `RuleTags` per rule).
const GROUP: usize = 64;

/// A sharded matcher's group is [`GROUP`] rules per shard, up to this many shards: its
/// rules are split by shard, and each shard's lock is taken once per group, so each
/// turn on a lock still covers about [`GROUP`] rules. Every turn moves the shard's
/// state (its lock, ring and bookkeeping) to the thread's core; fewer, longer turns are
/// what lets threads sharing a matcher gain from its shards (BENCHMARKS.md, eighth
/// round). The cap bounds the tag buffers at 256 rules (360 KB per thread).
const GROUP_SHARDS: usize = 4;

/// Whether a step of a batch waits for a shard side's lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Only if the lock is free.
    Try,
    /// Waiting for it.
    Wait,
}

/// The error each rule of a group reports when the group's wait failed with `e`: the
/// tables are lost, for the reason the wait gave.
fn lost_like(e: &SendError) -> HtblError {
    HtblError::Lost(e.clone())
}

impl Matcher {
    /// Rules per group of a batch on this matcher: [`GROUP`] per shard, for up to
    /// [`GROUP_SHARDS`] shards.
    fn group_len(&self) -> usize {
        GROUP * self.shard_count().min(GROUP_SHARDS)
    }

    /// Runs `updates` as one batch ([`MatcherTables::batch`]) on side `ms` of `shard`,
    /// under its lock and on the shard's send ring, then drops the holds that landed.
    /// Returns the batch's wait: with `Completion::Wait`, an error (the send failure)
    /// means the tables are lost and the batch's updates on this side may not have
    /// landed. With `Turn::Try`
    /// and the lock taken by another thread, nothing runs and `None` comes back.
    fn side_batch(
        &self,
        shard: &Linked,
        ms: &MatcherSide,
        turn: Turn,
        updates: impl FnOnce(&mut MatcherTables, &mut SendRing),
    ) -> Option<Result<(), SendError>> {
        let run = |tables: &mut MatcherTables| {
            let mut ring = self.table().domain().ring_at(shard.ring);
            let ((), synced) = tables.batch(&mut ring, updates);
            drop(ring);
            tables.drop_released();
            synced
        };
        match turn {
            Turn::Wait => Some(ms.tables.with(run)),
            Turn::Try => ms.tables.try_with(run).ok(),
        }
    }

    /// Runs `step(shard, linked, (k, side), turn)` for every shard and every side (the
    /// `k`th of the domain's) of a group, `step` saying whether it ran: first on each
    /// whose lock is free (`Turn::Try`), then, waiting, on those left (`Turn::Wait`). A
    /// thread that shares the matcher with another then takes the shards the other
    /// does not hold before it waits for one.
    fn each_shard_side(
        &self,
        mut step: impl FnMut(usize, &Linked, (usize, DomainSide), Turn) -> bool,
    ) {
        let sides = self.table().domain().sides();
        // One bit per shard and side.
        const _: () = assert!(crate::MAX_SHARDS as usize * 2 <= u32::BITS as usize);
        let mut left: u32 = 0;
        for bit in 0..self.shards().len() * sides.len() {
            left |= 1 << bit;
        }
        for turn in [Turn::Try, Turn::Wait] {
            for bit in 0..self.shards().len() * sides.len() {
                if left & (1 << bit) == 0 {
                    continue;
                }
                let (shard, k) = (bit / sides.len(), bit % sides.len());
                if step(shard, &self.shards()[shard], (k, sides[k]), turn) {
                    left &= !(1 << bit);
                }
            }
        }
    }
}
