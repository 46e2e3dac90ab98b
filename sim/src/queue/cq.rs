//! The completion ring: where the device writes CQEs, and how it knows the ring is full.
//!
//! CQEs are produced into `pending` as WQEs complete and copied to the ring in host
//! memory by [`CompletionRing::flush`], all under one lock. Holding completions (a test
//! fault) just means not flushing until released.

use ste_builder::wqe::{cqe_owner_for, Cqe, CQE_SIZE};

use super::DbRecord;
use crate::host_mem::HostMemory;

/// The consumer index in a CQ doorbell record is 24 bits.
const CI_MASK: u32 = 0x00ff_ffff;

/// A flush found the ring full (or already broken by an earlier overrun).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overrun {
    /// CQEs written by this flush before it stopped.
    pub written: usize,
}

pub(crate) struct CompletionRing {
    mem: HostMemory,
    offset: usize,
    log_size: u8,
    dbrec: DbRecord,
    /// CQEs written so far: the next CQE goes to slot `pi mod size` with owner bit
    /// `(pi >> log_size) & 1`.
    pi: u32,
    /// Produced CQEs, oldest first; those before `head` are written. A plain vector
    /// with a read position (emptied whenever it is all written) is cheaper per CQE
    /// than a ring buffer, and no CQE waits long: a doorbell writes what it produced.
    pending: Vec<Cqe>,
    head: usize,
    /// Set by an overrun; a broken ring takes no more CQEs.
    broken: bool,
    /// CQEs discarded since the last flush because the ring is broken.
    dropped: usize,
}

impl CompletionRing {
    /// The caller has checked that the ring and the doorbell record fit their buffers.
    pub(crate) fn new(
        mem: HostMemory,
        offset: usize,
        log_size: u8,
        dbrec: DbRecord,
    ) -> CompletionRing {
        CompletionRing {
            mem,
            offset,
            log_size,
            dbrec,
            pi: 0,
            pending: Vec::new(),
            head: 0,
            broken: false,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, cqe: Cqe) {
        if self.broken {
            self.dropped += 1;
        } else {
            self.pending.push(cqe);
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.len() - self.head
    }

    pub(crate) fn produced(&self) -> u32 {
        self.pi
    }

    /// The consumer index the driver last published in the doorbell record.
    fn consumer_index(&self) -> u32 {
        let mem = self.dbrec.mem.lock_read();
        // The record's span was checked at creation and buffers never shrink.
        let word = mem
            .get(self.dbrec.offset..self.dbrec.offset + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .unwrap_or_default();
        u32::from_be_bytes(word) & CI_MASK
    }

    /// Writes up to `limit` pending CQEs, oldest first; returns how many. Writing into a
    /// full ring is an overrun: the ring breaks, and every pending and later CQE is lost.
    pub(crate) fn flush(&mut self, limit: usize) -> Result<usize, Overrun> {
        if self.broken {
            let dropped = std::mem::take(&mut self.dropped);
            return if dropped > 0 {
                Err(Overrun { written: 0 })
            } else {
                Ok(0)
            };
        }
        let n = limit.min(self.pending());
        if n == 0 {
            return Ok(0);
        }
        let size = 1u32 << self.log_size;
        let ci = self.consumer_index();
        // Free slots as of the published consumer index: a CQE beyond them would
        // overwrite one the driver has not consumed.
        let used = self.pi.wrapping_sub(ci) & CI_MASK;
        let room = size.saturating_sub(used) as usize;
        let fits = n.min(room);
        let mut ring = self.mem.lock_write();
        for cqe in &self.pending[self.head..self.head + fits] {
            let slot = self.offset + (self.pi & (size - 1)) as usize * CQE_SIZE;
            // Cannot fail: the slot is 64 bytes and queue QPNs are checked at creation.
            let _ = cqe.encode(
                cqe_owner_for(self.pi, self.log_size),
                &mut ring[slot..slot + CQE_SIZE],
            );
            self.pi = self.pi.wrapping_add(1);
        }
        drop(ring);
        if fits < n {
            self.broken = true;
            self.pending.clear();
            self.head = 0;
            return Err(Overrun { written: fits });
        }
        self.head += n;
        if self.head == self.pending.len() {
            self.pending.clear();
            self.head = 0;
        }
        Ok(n)
    }
}
