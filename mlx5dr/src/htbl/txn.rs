//! One update of the tables as a sequence of writes ending in a single *linking* write,
//! and what a send failure means for it.
//!
//! Every update is built so that all its writes but one go to places no packet can reach
//! yet, and one last write (the link) makes the change visible at once. When the ring
//! fails, what matters is whether the link reached ICM:
//!
//! - an error CQE names the failed write and WQE; the queue executes nothing after it.
//!   So the link landed only if the failure is the READ that fences the link's WRITE
//!   (or a later write);
//! - a timeout or a device failure after the link was posted leaves it open;
//! - a failure before the link was posted means it did not land. Whether earlier writes
//!   may still land later (into memory that is not reachable) decides whether that
//!   memory may be handed back.

use crate::device::IcmRegion;
use crate::send::{SendError, SendRing, WriteFate, WriteId, WriteTag};

/// When an update's call returns: once its writes are in ICM, or once they are posted.
///
/// Either way an update is atomic for packets (one linking write) and a refusal (a
/// duplicate, a value outside the mask, no ICM) changes nothing. The modes differ in
/// what a send failure (an error completion, a device failure) does: with
/// [`Completion::Wait`] the call that made the update reports it and the update is
/// undone or kept by the link's fate; otherwise a later call finds it, and if an
/// update whose call had returned `Ok` did not land (or may not have), the tables no
/// longer describe ICM: every later call on them fails with [`super::HtblError::Lost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Completion {
    /// Every update rings the doorbell and waits for its completion (the default).
    #[default]
    Wait,
    /// Every update rings the doorbell and returns without waiting: the device applies
    /// it shortly after (in order with everything else on the ring).
    Post,
    /// Updates are queued without a doorbell; the device sees them when the ring's
    /// doorbell batch fills, when the ring is full, or at a flush (a matcher's `sync`,
    /// the domain's `flush`, any `Wait` update on the same ring). The cheapest mode,
    /// for callers that insert in bursts and flush at the end of each.
    Queue,
}

/// What became of an update whose writes failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The link landed: the update is in effect.
    Applied,
    /// The link did not land: ICM is reachable as before the update. `settled`: no
    /// write of the update can still land, so its new memory can be handed back.
    Rejected { settled: bool },
    /// The link may or may not have landed.
    Unknown,
}

/// The writes of one update.
pub(super) struct Txn<'r> {
    ring: &'r mut SendRing,
    completion: Completion,
    link: Option<WriteId>,
    /// The update's latest write.
    last: Option<WriteId>,
}

/// A failed update: the ring's error and what it means for the update.
pub(super) struct Failed {
    pub(super) error: SendError,
    pub(super) outcome: Outcome,
}

impl<'r> Txn<'r> {
    /// An update whose `run` waits for its writes.
    pub(super) fn new(ring: &'r mut SendRing) -> Txn<'r> {
        Txn::with(ring, Completion::Wait)
    }

    /// An update completed as `completion` says.
    pub(super) fn with(ring: &'r mut SendRing, completion: Completion) -> Txn<'r> {
        Txn {
            ring,
            completion,
            link: None,
            last: None,
        }
    }

    /// A write to a place no packet reaches yet.
    pub(super) fn write(
        &mut self,
        region: &IcmRegion,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        debug_assert!(self.link.is_none(), "the link is the update's last write");
        self.last = Some(self.ring.write(region, addr, bytes)?);
        Ok(())
    }

    /// The linking write.
    pub(super) fn link(
        &mut self,
        region: &IcmRegion,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        // The link is the update's last write, and a doorbell follows it unless the
        // update is queued: its READ may as well ask for the CQE that doorbell needs.
        let id = match self.completion {
            Completion::Queue => self.ring.write(region, addr, bytes)?,
            Completion::Wait | Completion::Post => self.ring.write_last(region, addr, bytes)?,
        };
        self.last = Some(id);
        self.link = Some(id);
        Ok(())
    }

    /// Runs `writes`, then completes them as the update's [`Completion`] says. `Ok`:
    /// with `Wait`, every write is in ICM (`None`); otherwise they are posted or queued,
    /// and the tag of the last one, if any, is returned: the update has landed once that
    /// write has.
    pub(super) fn run(
        mut self,
        writes: impl FnOnce(&mut Txn<'r>) -> Result<(), SendError>,
    ) -> Result<Option<WriteTag>, Failed> {
        let res = writes(&mut self).and_then(|()| match self.completion {
            Completion::Wait => self.ring.flush().map(|()| None),
            Completion::Post => self.ring.post(true).map(|()| self.tag()),
            Completion::Queue => self.ring.post(false).map(|()| self.tag()),
        });
        res.map_err(|error| {
            let outcome = self.classify(&error);
            Failed { error, outcome }
        })
    }

    fn tag(&self) -> Option<WriteTag> {
        self.last.map(|id| self.ring.tag(id))
    }

    fn classify(&mut self, error: &SendError) -> Outcome {
        // The link was accepted: its fate is the update's.
        if let Some(link) = self.link {
            return match error.fate_of(link) {
                WriteFate::Landed => Outcome::Applied,
                WriteFate::NotLanded => Outcome::Rejected { settled: true },
                WriteFate::Unknown => Outcome::Unknown,
            };
        }
        match error {
            // An earlier write (of this update or before it) failed, so nothing after it
            // executes.
            SendError::WqeFailed { .. } => Outcome::Rejected { settled: true },
            // Broken before this update posted anything of its own.
            SendError::Broken(_) if self.last.is_none() => Outcome::Rejected { settled: true },
            SendError::Timeout { .. } => Outcome::Rejected { settled: false },
            e if e.breaks_ring() => Outcome::Rejected { settled: false },
            // Refused before posting (a bad length or region): drain what was posted, so
            // nothing of this update lands later.
            _ => match self.ring.flush() {
                Ok(()) | Err(SendError::WqeFailed { .. }) => Outcome::Rejected { settled: true },
                Err(_) => Outcome::Rejected { settled: false },
            },
        }
    }
}
