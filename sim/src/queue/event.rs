//! What the queue reports about each WQE it consumes, and the faults a test can inject.

use ste_builder::wqe::{Opcode, Syndrome};

/// The ICM span an RDMA WQE targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmSpan {
    /// First ICM address.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
}

/// How a consumed WQE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WqeOutcome {
    /// Executed; `byte_cnt` bytes moved.
    Completed {
        /// Bytes moved.
        byte_cnt: u32,
    },
    /// Not executed (ICM untouched) and completed with this error; the queue is now in
    /// the error state.
    Failed(Syndrome),
    /// Consumed without execution because the queue was already in the error state.
    Flushed,
}

/// One consumed WQE, as the per-WQE hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WqeEvent {
    /// How many WQEs the queue consumed before this one (0 for its first).
    pub seq: u64,
    /// The WQE's position: the send queue's BB counter (mod 2^16) at its first BB.
    pub wqe_counter: u16,
    /// The opcode byte of its control segment, decoded.
    pub opcode: Opcode,
    /// For a READ or WRITE whose segments could be decoded, the ICM span it targets
    /// (whether or not it was reached).
    pub icm: Option<IcmSpan>,
    /// How it ended.
    pub outcome: WqeOutcome,
}

/// The callback the queue runs after each WQE it consumes, with no lock held: a test can
/// read ICM or walk packets through it between any two writes.
pub type WqeHook = Box<dyn FnMut(&WqeEvent) + Send>;

/// An injected WQE failure: the WQE with sequence number `seq` is not executed and
/// completes with an error CQE carrying these syndromes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InjectedError {
    pub seq: u64,
    pub syndrome: Syndrome,
    pub vendor_syndrome: u8,
}
