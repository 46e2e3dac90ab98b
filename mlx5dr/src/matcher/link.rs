//! A table's matchers in lookup order: linking a matcher in and out of the anchors.
//!
//! The list holds each matcher's shards ([`super::MatcherOptions::shards`]) one after
//! the other; each shard is linked and unlinked as a matcher of its own, so "matcher"
//! below means one shard.
//!
//! ```text
//!  table root ──▶ start(M1) … end anchor(M1) ──▶ start(M2) … end anchor(M2) ──▶ default miss
//! ```
//!
//! Every matcher side's start table is pointed at by exactly one anchor: the table's root
//! for the first matcher, the previous matcher's end anchor otherwise. That anchor is
//! the matcher's *start pointer* ([`MatcherTables::set_start_pointer`]): when the start
//! table grows, the engine rewrites it. So the rule of this module is:
//!
//! > the anchor that points at a matcher side's start table is written only by someone
//! > holding that matcher side's lock.
//!
//! Rule updates hold one matcher side's lock (and may, by growing its start table,
//! rewrite its start pointer). Linking and unlinking hold the table's control lock (the
//! matcher list), then the lock of the side whose start pointer changes (the next
//! matcher's) from reading its start until its start pointer is set again, and the
//! previous matcher's lock to rewrite its end anchor. No rule update holds two side
//! locks, and one control operation runs per table at a time, so these locks cannot
//! deadlock.
//!
//! Linking a matcher M between P and N (either may be absent) on one side:
//!
//! 1. lock N; M's tables are written with their end anchor hitting N's start table (or
//!    missing to the side's default), unreachable;
//! 2. one write makes P's end anchor (or the table root) hit M's start table: from now
//!    on packets pass through M, and as M is empty they leave through its end anchor
//!    into N as before;
//! 3. M's start pointer is that anchor, and N's start pointer is M's end anchor.
//!
//! Unlinking is the reverse: with N locked, P's end anchor (or the root) is rewritten to
//! lead where M's end anchor leads (N's current start), and N's start pointer goes back
//! to P's anchor. M's tables are freed after that write has completed (their ICM is
//! reused only after a `SYNC_STEERING`, so packets still inside them finish their walk).

use std::num::NonZeroU32;
use std::sync::{Arc, MutexGuard};

use ste_builder::ste::Connect;

use super::combine::Combining;
use super::MatcherError;
use crate::domain::{PerSide, Table, TableError};
use crate::htbl::{AnchorRef, HtblError, MatcherTables};
use crate::matching::{BuilderChain, DomainSide};
use crate::send::SendError;

/// One side of a matcher: its lookups and its hash tables.
#[derive(Debug)]
pub(crate) struct MatcherSide {
    pub(crate) chain: BuilderChain,
    /// Rule updates go through [`Combining::run`], so that threads sharing the matcher
    /// hand their updates to whoever holds the lock; control paths take the lock.
    pub(crate) tables: Combining<MatcherTables>,
    /// The tables' [`MatcherTables::id`], which their rules' handles carry.
    pub(crate) id: NonZeroU32,
}

impl MatcherSide {
    pub(crate) fn new(chain: BuilderChain, tables: MatcherTables) -> MatcherSide {
        MatcherSide {
            chain,
            id: tables.id(),
            tables: Combining::new(tables),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, MatcherTables> {
        // A panic under the lock cannot leave the tables half-updated for packets (every
        // update is one linking write); the host records may be, which the engine's
        // operations tolerate no worse than a crash would.
        self.tables.lock()
    }
}

/// A matcher's shard as its table lists it: priority, send ring and sides. Shared between the
/// user's [`super::Matcher`] and the table's matcher list.
#[derive(Debug)]
pub(crate) struct Linked {
    pub(crate) priority: u32,
    /// Which of its matcher's shards this is (0: the first, which the table counts as
    /// the matcher).
    pub(crate) shard: u8,
    pub(crate) ring: usize,
    pub(crate) sides: PerSide<MatcherSide>,
}

impl Linked {
    pub(crate) fn side(&self, side: DomainSide) -> Option<&MatcherSide> {
        self.sides.get(side).filter(|s| s.chain.side() == side)
    }
}

/// Where a new matcher of `priority` goes in `list`: before the first matcher whose
/// priority is not smaller, as rdma-core orders them (so among equal priorities the
/// newest is looked up first).
pub(crate) fn position(list: &[Arc<Linked>], priority: u32) -> usize {
    list.iter()
        .position(|m| m.priority >= priority)
        .unwrap_or(list.len())
}

/// The matchers before and after position `at` of `list`; with `skip_self` the one at
/// `at` is the matcher itself and the next is the one after it.
pub(crate) fn neighbours(
    list: &[Arc<Linked>],
    at: usize,
    skip_self: bool,
) -> (Option<&Linked>, Option<&Linked>) {
    let prev = at.checked_sub(1).map(|i| &*list[i]);
    let next = list.get(at + usize::from(skip_self)).map(|m| &**m);
    (prev, next)
}

/// Makes the anchor before position `at` (the previous matcher's end anchor, or the
/// table root) lead to `to`, and returns it as a start pointer.
fn point_prev(
    table: &Table,
    prev: Option<&Linked>,
    side: DomainSide,
    to: Connect,
) -> Result<AnchorRef, MatcherError> {
    let dmn = table.domain();
    match prev {
        Some(p) => {
            let ps = p.side(side).ok_or(MatcherError::NoSuchSide { side })?;
            let mut pt = ps.lock();
            let mut ring = dmn.ring_at(p.ring);
            pt.set_end_target(&mut ring, to)
                .map_err(|source| MatcherError::Link { side, source })?;
            Ok(pt.end_anchor_ref())
        }
        None => {
            table
                .connect_root(side, to)
                .map_err(|source| MatcherError::Root { side, source })?;
            table
                .root_ref(side)
                .ok_or(MatcherError::NoSuchSide { side })
        }
    }
}

/// Where a matcher placed before `next` ends on `side`: `next`'s start table (read under
/// the held lock), or the side's default.
fn end_of(
    table: &Table,
    next: Option<&MatcherTables>,
    side: DomainSide,
) -> Result<Connect, MatcherError> {
    match next {
        Some(n) => Ok(n.start()),
        None => {
            let info = table
                .domain()
                .side(side)
                .ok_or(MatcherError::NoSuchSide { side })?;
            Ok(Connect::Miss {
                miss_addr: info.default_miss,
            })
        }
    }
}

/// Builds one side's tables with `build` (given where they must end) and links them
/// between `prev` and `next`. On error nothing is linked and the tables are dropped
/// (or, if the linking write may have landed, kept out of use for good).
pub(crate) fn link_side(
    table: &Table,
    (prev, next): (Option<&Linked>, Option<&Linked>),
    side: DomainSide,
    build: impl FnOnce(Connect) -> Result<MatcherTables, MatcherError>,
) -> Result<MatcherTables, MatcherError> {
    let next_side = match next {
        Some(n) => Some(n.side(side).ok_or(MatcherError::NoSuchSide { side })?),
        None => None,
    };
    let mut next_guard = next_side.map(MatcherSide::lock);
    let end = end_of(table, next_guard.as_deref(), side)?;
    let mut tables = build(end)?;
    let pointer = match point_prev(table, prev, side, tables.start()) {
        Ok(p) => p,
        Err(e) => {
            if may_have_landed(&e) {
                // The anchor may lead into these tables: they must never be reused.
                std::mem::forget(tables);
            }
            return Err(e);
        }
    };
    tables.set_start_pointer(Some(pointer));
    if let Some(g) = next_guard.as_mut() {
        g.set_start_pointer(Some(tables.end_anchor_ref()));
    }
    Ok(tables)
}

/// Takes the matcher between `prev` and `next` out of the lookup on `side`: the anchor
/// before it leads to what follows it. Its own tables are left alone (the caller frees
/// them once every side is unlinked).
pub(crate) fn unlink_side(
    table: &Table,
    (prev, next): (Option<&Linked>, Option<&Linked>),
    side: DomainSide,
) -> Result<(), MatcherError> {
    let next_side = match next {
        Some(n) => Some(n.side(side).ok_or(MatcherError::NoSuchSide { side })?),
        None => None,
    };
    let mut next_guard = next_side.map(MatcherSide::lock);
    let to = end_of(table, next_guard.as_deref(), side)?;
    let pointer = point_prev(table, prev, side, to)?;
    if let Some(g) = next_guard.as_mut() {
        g.set_start_pointer(Some(pointer));
    }
    Ok(())
}

/// Whether the failed anchor write behind `e` may have reached ICM all the same (a
/// completion timeout, a device failure): then whatever it points at must stay in place.
pub(crate) fn may_have_landed(e: &MatcherError) -> bool {
    let send = match e {
        MatcherError::Link {
            source: HtblError::Send(s),
            ..
        } => s,
        MatcherError::Root {
            source: TableError::Send(s),
            ..
        } => s,
        _ => return false,
    };
    matches!(
        send,
        SendError::Timeout { .. } | SendError::BadCompletion { .. } | SendError::Device(_)
    )
}
