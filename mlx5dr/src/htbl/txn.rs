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
use crate::send::{SendError, SendRing, WriteFate, WriteId};

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
    link: Option<WriteId>,
    posted: bool,
}

/// A failed update: the ring's error and what it means for the update.
pub(super) struct Failed {
    pub(super) error: SendError,
    pub(super) outcome: Outcome,
}

impl<'r> Txn<'r> {
    pub(super) fn new(ring: &'r mut SendRing) -> Txn<'r> {
        Txn {
            ring,
            link: None,
            posted: false,
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
        self.ring.write(region, addr, bytes)?;
        self.posted = true;
        Ok(())
    }

    /// The linking write.
    pub(super) fn link(
        &mut self,
        region: &IcmRegion,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), SendError> {
        // The link is the update's last write and `run` flushes right after it.
        let id = self.ring.write_last(region, addr, bytes)?;
        self.posted = true;
        self.link = Some(id);
        Ok(())
    }

    /// Runs `writes`, then flushes: `Ok` once every write is in ICM.
    pub(super) fn run(
        mut self,
        writes: impl FnOnce(&mut Txn<'r>) -> Result<(), SendError>,
    ) -> Result<(), Failed> {
        let res = writes(&mut self).and_then(|()| self.ring.flush());
        res.map_err(|error| {
            let outcome = self.classify(&error);
            Failed { error, outcome }
        })
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
            SendError::Broken(_) if !self.posted => Outcome::Rejected { settled: true },
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
