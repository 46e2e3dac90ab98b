//! The consumer side of a completion ring: owner-bit polling and the doorbell record.
//!
//! The CQE for consumer counter `ci` sits in slot `ci mod size`; it is new when its
//! opcode is not INVALID and its owner bit equals `(ci >> log_size) & 1`, the pass over
//! the ring the consumer is on. The consumer publishes how far it has read in the CQ
//! doorbell record (big-endian, low 24 bits), which is what tells the device that slots
//! are free again. The device needs the record for nothing else, so the consumer may
//! publish late, as long as the device never finds the ring full
//! ([`CqReader::must_publish`]).

use ste_builder::wqe::{cqe_owner_for, init_cq_ring, Cqe, CqeOpcode, CqeSummary, CQE_SIZE};

use super::error::SendError;
use crate::device::DmaMemory;

/// The consumer index in the doorbell record is 24 bits.
const CI_MASK: u32 = 0x00ff_ffff;

/// The CQE's last byte holds its opcode and owner bit (`op_own`).
const OP_OWN: usize = CQE_SIZE - 1;

/// The consumer state of one completion ring.
#[derive(Debug)]
pub(crate) struct CqReader {
    log_size: u8,
    /// CQEs consumed so far.
    ci: u32,
    /// `ci` as last written to the doorbell record.
    published: u32,
    /// One slot, read with its owner byte deciding (see [`CqReader::next`]).
    slot: [u8; CQE_SIZE],
}

impl CqReader {
    /// Initialises the ring (every slot INVALID) and the doorbell record (index 0).
    pub(crate) fn new(
        cq: &dyn DmaMemory,
        dbrec: &dyn DmaMemory,
        log_size: u8,
    ) -> Result<CqReader, SendError> {
        let mut ring = vec![0u8; CQE_SIZE << log_size];
        init_cq_ring(&mut ring)
            .map_err(|_| SendError::Config("completion ring is not a whole number of CQEs"))?;
        cq.write(0, &ring)?;
        dbrec.write(0, &0u32.to_be_bytes())?;
        Ok(CqReader {
            log_size,
            ci: 0,
            published: 0,
            slot: [0; CQE_SIZE],
        })
    }

    /// The consumer index (CQEs consumed so far).
    pub(crate) fn index(&self) -> u32 {
        self.ci
    }

    /// The next new CQE, if the device has written one; consumes it and returns its
    /// summary (the whole CQE stays readable with [`CqReader::last`] until the next call).
    ///
    /// The slot is read with [`DmaMemory::read_flagged`], its owner byte deciding: the
    /// contents are trusted only when that byte shows a new CQE, and are then at least
    /// as new as it (a backend over real memory reads the byte first, then the slot).
    #[inline]
    pub(crate) fn next(&mut self, cq: &dyn DmaMemory) -> Result<Option<CqeSummary>, SendError> {
        let at = (self.ci & ((1u32 << self.log_size) - 1)) as usize * CQE_SIZE;
        let owner = cqe_owner_for(self.ci, self.log_size);
        let fresh = move |op_own: u8| owned_by_software(op_own, owner);
        if !cq.read_flagged(at, &mut self.slot, OP_OWN, &fresh)? {
            return Ok(None);
        }
        self.ci = self.ci.wrapping_add(1);
        Ok(Some(CqeSummary::read(&self.slot)))
    }

    /// The CQE [`CqReader::next`] returned last, decoded in full: for the rare
    /// completion its summary does not settle.
    #[cold]
    pub(crate) fn last(&self) -> Result<Cqe, SendError> {
        // A slot is always a whole CQE, so this decode cannot fail; were it to, the
        // error would name that CQE.
        Cqe::decode(&self.slot)
            .map(|slot| slot.cqe)
            .map_err(|e| SendError::BadCompletion {
                cqe_index: self.ci.wrapping_sub(1),
                reason: e.to_string(),
            })
    }

    /// Whether the record must be published before a doorbell after which `pending`
    /// WQEs are outstanding.
    ///
    /// A device writes at most one CQE per WQE, and every CQE not yet consumed is for
    /// an outstanding WQE (CQEs arrive in WQE order and one completes its WQE and all
    /// before it), so from the doorbell on the device holds at most `pending` CQEs the
    /// consumer has not read, plus the slots consumed but not published, which it
    /// still counts as full. While that sum fits the ring, the device cannot find the
    /// ring full, however late the record is.
    pub(crate) fn must_publish(&self, pending: u32) -> bool {
        let unpublished = self.ci.wrapping_sub(self.published);
        u64::from(unpublished) + u64::from(pending) > 1u64 << self.log_size
    }

    /// Tells the device how far the ring has been consumed.
    pub(crate) fn publish(&mut self, dbrec: &dyn DmaMemory) -> Result<(), SendError> {
        dbrec.write(0, &(self.ci & CI_MASK).to_be_bytes())?;
        self.published = self.ci;
        Ok(())
    }
}

/// The ownership test of [`ste_builder::wqe::cqe_is_sw_owned`] on the owner byte alone: a CQE (not
/// INVALID) whose owner bit is `owner`, the bit of the consumer's pass over the ring.
fn owned_by_software(op_own: u8, owner: bool) -> bool {
    CqeOpcode::from_nibble(op_own >> 4) != CqeOpcode::Invalid && (op_own & 1 != 0) == owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::wqe::{cqe_is_sw_owned, Opcode, ReqCqe};

    /// Only the owner byte is read before the ownership test: it must be the byte the
    /// owner bit and opcode live in.
    #[test]
    fn ownership_is_decided_by_the_last_byte() {
        for owner in [false, true] {
            let cqe = Cqe::Req(ReqCqe {
                wqe_counter: 9,
                byte_cnt: 64,
                opcode: Opcode::RdmaRead,
                qpn: 5,
            });
            let mut full = [0u8; CQE_SIZE];
            cqe.encode(owner, &mut full).unwrap();
            let mut only_last = [0u8; CQE_SIZE];
            only_last[OP_OWN] = full[OP_OWN];
            let ci = if owner { 1 } else { 0 };
            assert_eq!(cqe_owner_for(ci, 0), owner);
            assert_eq!(
                cqe_is_sw_owned(&only_last, ci, 0).unwrap(),
                cqe_is_sw_owned(&full, ci, 0).unwrap()
            );
            assert!(cqe_is_sw_owned(&only_last, ci, 0).unwrap());
        }
    }

    /// The owner-byte test `next` uses is `cqe_is_sw_owned`'s, for every byte and pass.
    #[test]
    fn owner_byte_test_matches_the_slot_test() {
        for op_own in 0..=u8::MAX {
            let mut slot = [0u8; CQE_SIZE];
            slot[OP_OWN] = op_own;
            for (ci, log_size) in [(0, 0), (1, 0), (5, 2), (4, 2), (300, 8)] {
                assert_eq!(
                    owned_by_software(op_own, cqe_owner_for(ci, log_size)),
                    cqe_is_sw_owned(&slot, ci, log_size).unwrap(),
                    "{op_own:#04x} at {ci} of 2^{log_size}"
                );
            }
        }
    }
}
