//! What a matcher side's tables owe the device while updates are in flight: the updates
//! posted without waiting ([`Completion::Post`], [`Completion::Queue`]) that no completion
//! has confirmed yet, and the memory they made unreachable.
//!
//! Memory an update unlinks may be handed back to the pool only once the unlinking
//! write is in ICM (the pool's `SYNC_STEERING` rule assumes it: see [`crate::icm`]), and
//! a removed rule's action list must live as long as an STE in ICM may still lead to
//! what it points at. With `Wait` every update is in ICM when its call returns, so
//! everything is released at once; otherwise it waits here in *limbo*, tagged with the
//! side's latest write at the time, until the ring confirms that write. Tags of one
//! ring instance increase, and a ring executes in order, so the limbo is released from
//! its front.
//!
//! A write that failed (or may have) poisons the side: an update whose call returned
//! `Ok` is not in ICM, so the tables no longer describe the hardware. Every later call
//! on the tables then fails with [`super::HtblError::Lost`]; memory in limbo behind the
//! failure is never reused.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::icm::{Chunk, Entry, EntrySlab, IcmPool};
use crate::send::{Confirmation, SendError, SendRing, WriteTag};

pub use super::txn::Completion;

/// Something kept alive for the device: an action list (or anything else) a removed
/// rule's STEs pointed at.
pub type Hold = Arc<dyn Any + Send + Sync>;

/// Memory or an object released by an update, waiting for its write to land.
#[derive(Debug)]
enum Freed {
    Chunk(Chunk),
    Entry(Entry),
    Hold(Hold),
}

/// Limbo entries that make [`Deferred::settle`] read the ring's completions: fewer wait
/// (a few KiB at most) unless the ring broke, which is checked on every call. Reading
/// completions costs about as much as a small update, so it is not done per update.
const SETTLE_AFTER: usize = 64;

/// A matcher side's unconfirmed updates; empty (and free of cost) with `Wait`.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// The side's latest write not yet confirmed: everything the side posted before
    /// it is confirmed with it.
    unconfirmed: Option<WriteTag>,
    limbo: VecDeque<(WriteTag, Freed)>,
    /// Holds whose writes landed, dropped by [`Deferred::drop_released`] (outside the
    /// ring's lock: dropping the last holder of an action list may destroy a table,
    /// which flushes the rings).
    released: Vec<Hold>,
    /// The failure that made the tables differ from ICM.
    lost: Option<SendError>,
    /// Chunks and entries never to be reused: their unlinking write failed.
    pub(super) leaked_chunks: u64,
    pub(super) leaked_entries: u64,
}

impl Deferred {
    /// Notes an update's writes, posted without waiting, ending with `last`.
    pub(super) fn posted(&mut self, last: Option<WriteTag>) {
        if last.is_some() {
            self.unconfirmed = last;
        }
    }

    /// True while an update of the side may not be in ICM yet.
    pub(super) fn in_flight(&self) -> bool {
        self.unconfirmed.is_some()
    }

    /// Nothing in flight, nothing waiting: always so with `Wait`.
    #[inline]
    pub(super) fn idle(&self) -> bool {
        self.unconfirmed.is_none() && self.limbo.is_empty() && self.lost.is_none()
    }

    /// The failure that poisoned the side, if one did.
    pub(super) fn lost(&self) -> Option<&SendError> {
        self.lost.as_ref()
    }

    /// A chunk to hand back to `pool` once the side's latest write lands (at once if
    /// nothing is in flight).
    pub(super) fn free_chunk(&mut self, pool: &IcmPool, c: Chunk) {
        match self.unconfirmed {
            Some(tag) => self.limbo.push_back((tag, Freed::Chunk(c))),
            None => {
                let _ = pool.free(c);
            }
        }
    }

    /// An entry to hand back to `slab` once the side's latest write lands.
    pub(super) fn free_entry(&mut self, slab: &mut EntrySlab, e: Entry) {
        match self.unconfirmed {
            Some(tag) => self.limbo.push_back((tag, Freed::Entry(e))),
            None => {
                let _ = slab.free(e);
            }
        }
    }

    /// Keeps `hold` alive until the side's latest write lands (dropped at once if
    /// nothing is in flight).
    pub(super) fn hold(&mut self, hold: Hold) {
        match self.unconfirmed {
            Some(tag) => self.limbo.push_back((tag, Freed::Hold(hold))),
            None => self.released.push(hold),
        }
    }

    /// Catches up with the ring: poisons the side if one of its writes failed (the
    /// ring broke or was replaced since), and releases what waited for writes that
    /// landed, consuming the ring's completions first once enough waits (or when
    /// `thorough`). Cheap (no completion read) while the ring works and the limbo is
    /// short.
    pub(super) fn settle(
        &mut self,
        ring: &mut SendRing,
        pool: &IcmPool,
        slab: &mut EntrySlab,
        thorough: bool,
    ) {
        let Some(tag) = self.unconfirmed.or(self.limbo.front().map(|l| l.0)) else {
            return;
        };
        let ring_sound = ring.made(tag) && ring.failure().is_none();
        if ring_sound && !thorough && self.limbo.len() < SETTLE_AFTER {
            return;
        }
        // An error completion found here breaks the ring; the confirmations say the rest.
        let _ = ring.poll();
        while let Some((tag, _)) = self.limbo.front() {
            let landed = match ring.confirmation(*tag) {
                Confirmation::InFlight => break,
                Confirmation::Landed => true,
                Confirmation::Failed(_) => false,
            };
            let Some((_, freed)) = self.limbo.pop_front() else {
                break;
            };
            match (freed, landed) {
                (Freed::Chunk(c), true) => {
                    let _ = pool.free(c);
                }
                (Freed::Entry(e), true) => {
                    let _ = slab.free(e);
                }
                (Freed::Chunk(_), false) => self.leaked_chunks += 1,
                (Freed::Entry(_), false) => self.leaked_entries += 1,
                // What the STEs pointed at lives on for good: one may still lead there.
                (Freed::Hold(h), false) => std::mem::forget(h),
                (Freed::Hold(h), true) => self.released.push(h),
            }
        }
        if let Some(tag) = self.unconfirmed {
            match ring.confirmation(tag) {
                Confirmation::InFlight => {}
                Confirmation::Landed => self.unconfirmed = None,
                Confirmation::Failed(e) => {
                    self.unconfirmed = None;
                    if self.lost.is_none() {
                        self.lost = Some(e);
                    }
                }
            }
        }
    }

    /// Drops the holds whose writes landed (call without the ring's lock held).
    #[inline]
    pub(super) fn drop_released(&mut self) {
        if !self.released.is_empty() {
            self.released.clear();
        }
    }

    /// At the tables' end, when the matcher is unlinked and nothing it posted can still
    /// land (its ring was flushed, or broke): nothing reaches what is in limbo any more,
    /// whether its unlinking write landed or not, so it all goes back.
    pub(super) fn drain(&mut self, pool: &IcmPool, slab: &mut EntrySlab) {
        for (_, freed) in self.limbo.drain(..) {
            match freed {
                Freed::Chunk(c) => {
                    let _ = pool.free(c);
                }
                Freed::Entry(e) => {
                    let _ = slab.free(e);
                }
                Freed::Hold(h) => drop(h),
            }
        }
        self.released.clear();
    }

    /// Host bytes held beyond the struct.
    pub(super) fn host_bytes(&self) -> usize {
        self.limbo.capacity() * std::mem::size_of::<(WriteTag, Freed)>()
            + self.released.capacity() * std::mem::size_of::<Hold>()
    }
}
