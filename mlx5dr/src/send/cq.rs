//! The consumer side of a completion ring: owner-bit polling and the doorbell record.
//!
//! The CQE for consumer counter `ci` sits in slot `ci mod size`; it is new when its
//! opcode is not INVALID and its owner bit equals `(ci >> log_size) & 1`, the pass over
//! the ring the consumer is on. The consumer publishes how far it has read in the CQ
//! doorbell record (big-endian, low 24 bits), which is what tells the device that slots
//! are free again.

use ste_builder::wqe::{cqe_is_sw_owned, init_cq_ring, Cqe, CQE_SIZE};

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
    /// One slot: its owner byte is read first, then all of it (see [`CqReader::next`]).
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
            slot: [0; CQE_SIZE],
        })
    }

    /// The consumer index (CQEs consumed so far).
    pub(crate) fn index(&self) -> u32 {
        self.ci
    }

    /// The next new CQE, if the device has written one; consumes it.
    ///
    /// The slot's owner byte is read to see whether it is new, and then the whole slot
    /// for the contents: by the [`DmaMemory`] ordering contract the second read is at
    /// least as new as the owner bit the first one saw.
    pub(crate) fn next(&mut self, cq: &dyn DmaMemory) -> Result<Option<Cqe>, SendError> {
        let at = (self.ci & ((1u32 << self.log_size) - 1)) as usize * CQE_SIZE;
        cq.read(at + OP_OWN, &mut self.slot[OP_OWN..])?;
        if !self.owned()? {
            return Ok(None);
        }
        cq.read(at, &mut self.slot)?;
        let slot = Cqe::decode(&self.slot).map_err(|e| self.bad(e.to_string()))?;
        self.ci = self.ci.wrapping_add(1);
        Ok(Some(slot.cqe))
    }

    fn owned(&self) -> Result<bool, SendError> {
        cqe_is_sw_owned(&self.slot, self.ci, self.log_size).map_err(|e| self.bad(e.to_string()))
    }

    /// A [`SendError::BadCompletion`] about the CQE at the consumer index.
    pub(crate) fn bad(&self, reason: String) -> SendError {
        SendError::BadCompletion {
            cqe_index: self.ci,
            reason,
        }
    }

    /// Tells the device how far the ring has been consumed.
    pub(crate) fn publish(&self, dbrec: &dyn DmaMemory) -> Result<(), SendError> {
        dbrec.write(0, &(self.ci & CI_MASK).to_be_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::wqe::{cqe_owner_for, Opcode, ReqCqe};

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
}
