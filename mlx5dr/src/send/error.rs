//! What can go wrong on a send ring.

use std::fmt;
use std::time::Duration;

use ste_builder::wqe::{RdmaOp, Syndrome, WqeError};

use crate::device::DeviceError;

/// A write's number on its ring: writes are numbered from 0 in the order
/// [`super::SendRing::write`] accepted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

impl fmt::Display for WriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write #{}", self.0)
    }
}

/// Why a send-ring operation failed.
///
/// [`SendError::WqeFailed`], [`SendError::BadCompletion`] and [`SendError::Device`]
/// break the ring: every later call returns [`SendError::Broken`] with the first error.
/// The other errors leave the ring as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The ring's configuration is unusable.
    #[error("invalid send ring configuration: {0}")]
    Config(&'static str),
    /// A write of no bytes or of more than the ring's largest write.
    #[error("a write of {len} bytes: writes carry 1..={max} bytes")]
    BadLength {
        /// Bytes asked for.
        len: usize,
        /// The ring's largest write.
        max: usize,
    },
    /// A write's span is not wholly inside the ICM region it was aimed at (nothing was
    /// posted).
    #[error("{len} bytes at ICM {icm_addr:#x} are outside the ICM region {region_addr:#x} + {region_size:#x}")]
    OutsideRegion {
        /// The ICM address of the write.
        icm_addr: u64,
        /// The write's length.
        len: usize,
        /// The region's first ICM address.
        region_addr: u64,
        /// The region's size.
        region_size: u64,
    },
    /// The device completed a WQE with an error: the write it belongs to, and every
    /// write after it, did not take effect (the queue flushes everything that follows);
    /// every write before it did.
    #[error("{write}: {op:?} WQE {wqe_counter:#06x} ({len} bytes at ICM {icm_addr:#x}) failed with syndrome {syndrome:?} (vendor syndrome {vendor_syndrome:#04x})")]
    WqeFailed {
        /// The write.
        write: WriteId,
        /// Which WQE of the write's pair: the WRITE or the READ that fences it.
        op: RdmaOp,
        /// The WQE's counter on the send queue.
        wqe_counter: u16,
        /// The ICM address the write targets (the absolute address, not the offset the
        /// WQE carried).
        icm_addr: u64,
        /// The write's length.
        len: u32,
        /// The CQE's syndrome.
        syndrome: Syndrome,
        /// The CQE's vendor syndrome.
        vendor_syndrome: u8,
    },
    /// The completion queue holds something the ring did not ask for.
    #[error("unexpected completion (CQE {cqe_index}): {reason}")]
    BadCompletion {
        /// The CQE's consumer index.
        cqe_index: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// The device did not complete the outstanding WQEs in time. The ring stays usable:
    /// a later [`super::SendRing::flush`] waits again.
    #[error("completions did not arrive within {timeout:?} ({outstanding} WQEs outstanding)")]
    Timeout {
        /// The time waited.
        timeout: Duration,
        /// WQEs posted and not completed.
        outstanding: u32,
    },
    /// A WQE could not be encoded (a bug: lengths are checked before encoding).
    #[error("WQE encoding: {0}")]
    Encode(#[from] WqeError),
    /// The device seam failed (a doorbell, a ring access, a completion-queue overrun).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The ring failed earlier and can post nothing more.
    #[error("the send ring is unusable since an earlier failure: {0}")]
    Broken(Box<SendError>),
    /// A write was asked about on a ring that neither made it nor replaced the ring that
    /// did (a bug: a matcher keeps its ring).
    #[error("the ring instance that accepted the write is gone")]
    Gone,
}

/// A write as its ring instance numbered it: a [`WriteId`] of one ring instance (a ring
/// that replaces a broken one is a new instance, numbering from 0 again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteTag {
    pub(super) gen: u64,
    /// The write's number on its instance.
    pub id: WriteId,
}

/// What a ring knows about an accepted write ([`super::SendRing::confirmation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// In ICM (and so is every earlier write of its ring).
    Landed,
    /// Posted or queued; no completion says yet, and the ring works.
    InFlight,
    /// The ring failed and the write did not land, or may not have: the failure.
    Failed(SendError),
}

/// What a send failure says about one write the ring had accepted before it: whether
/// its bytes are in ICM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteFate {
    /// In ICM: an error CQE named a later write's WQE or the READ fencing this write,
    /// and the queue executes its WQEs in order.
    Landed,
    /// Not in ICM, and never will be: an error CQE named this write's WRITE or an
    /// earlier write, and the queue executes nothing after a failed WQE.
    NotLanded,
    /// The failure does not tell (a completion timeout, an unexpected completion, a
    /// device failure): the write may have landed or may still land.
    Unknown,
}

impl SendError {
    /// The fate of `write`, a write this ring accepted before the failure arose (the
    /// writes of an update are classified by their linking write's fate).
    pub fn fate_of(&self, write: WriteId) -> WriteFate {
        match self {
            SendError::WqeFailed {
                write: failed, op, ..
            } => {
                if write < *failed || (write == *failed && *op == RdmaOp::Read) {
                    WriteFate::Landed
                } else {
                    WriteFate::NotLanded
                }
            }
            _ => WriteFate::Unknown,
        }
    }

    /// True for the errors after which the ring is unusable.
    pub fn breaks_ring(&self) -> bool {
        matches!(
            self,
            SendError::WqeFailed { .. }
                | SendError::BadCompletion { .. }
                | SendError::Device(_)
                | SendError::Encode(_)
                | SendError::Broken(_)
        )
    }
}
