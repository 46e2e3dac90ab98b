//! The two WQEs of one write, encoded straight into their wire bytes.
//!
//! Every WQE a [`super::SendRing`] posts has the same shape: a control segment, a
//! remote-address segment and one pointer data segment (DS 3, 48 bytes in a 64-byte
//! basic block). Of the control segment only the WQE counter, the opcode and the flags
//! vary; the QPN and DS word is fixed for the ring. So instead of building an
//! [`ste_builder::wqe::RdmaWqe`] and encoding it segment by segment, the ring fills the
//! few varying words of a pair of blocks. The bytes are the same as
//! [`ste_builder::wqe::RdmaWqe::encode`] writes (a test compares them).

use ste_builder::wqe::{
    CtrlFlags, Opcode, WqeError, BB_SIZE, CTRL_SEG_SIZE, DATA_SEG_SIZE, DS_UNIT, MAX_QPN,
    RADDR_SEG_SIZE,
};

/// Bytes of one posted WQE: control, remote address, one data segment.
const WQE_SIZE: usize = CTRL_SEG_SIZE + RADDR_SEG_SIZE + DATA_SEG_SIZE;

/// The control segment's `fm_ce_se` byte (fence, completion and solicited-event flags).
pub(super) const CTRL_FLAGS_BYTE: usize = 11;

/// One pointer data segment: `len` bytes (`1..2^31`) at `addr` under `lkey`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Local {
    pub(super) lkey: u32,
    pub(super) addr: u64,
    pub(super) len: u32,
}

/// One WQE of a pair, as far as it differs from its partner.
#[derive(Debug, Clone, Copy)]
pub(super) struct Half {
    pub(super) signaled: bool,
    pub(super) local: Local,
}

/// The fixed part of every WQE of one ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct WqeTemplate {
    /// The big-endian word `qpn << 8 | ds`.
    qpn_ds: [u8; 4],
}

impl WqeTemplate {
    /// The template for queue `qpn` (24 bits).
    pub(super) fn new(qpn: u32) -> Result<WqeTemplate, WqeError> {
        if qpn > MAX_QPN {
            return Err(WqeError::QpnTooLarge(qpn));
        }
        let ds = (WQE_SIZE / DS_UNIT) as u32;
        Ok(WqeTemplate {
            qpn_ds: ((qpn << 8) | ds).to_be_bytes(),
        })
    }

    /// Writes the RDMA WRITE of `write` (WQE `counter`) into the first block of `out`
    /// and the RDMA READ of `read` (WQE `counter + 1`) into the second, both to
    /// `raddr` under `rkey`. Bytes after each WQE in its block are zero.
    pub(super) fn pair(
        &self,
        out: &mut [u8; 2 * BB_SIZE],
        counter: u16,
        raddr: u64,
        rkey: u32,
        write: Half,
        read: Half,
    ) {
        let (first, second) = out.split_at_mut(BB_SIZE);
        self.one(first, Opcode::RdmaWrite, counter, raddr, rkey, write);
        self.one(
            second,
            Opcode::RdmaRead,
            counter.wrapping_add(1),
            raddr,
            rkey,
            read,
        );
    }

    fn one(&self, b: &mut [u8], op: Opcode, counter: u16, raddr: u64, rkey: u32, h: Half) {
        let b = &mut b[..BB_SIZE];
        // Control: opmod 0, counter, opcode; QPN and DS; signature and stream id 0,
        // flags; immediate 0.
        b[0] = 0;
        b[1..3].copy_from_slice(&counter.to_be_bytes());
        b[3] = op.byte();
        b[4..8].copy_from_slice(&self.qpn_ds);
        b[8..11].fill(0);
        b[CTRL_FLAGS_BYTE] = if h.signaled {
            CtrlFlags::CQ_UPDATE.bits()
        } else {
            0
        };
        b[12..16].fill(0);
        // Remote address: offset, rkey, reserved word.
        b[16..24].copy_from_slice(&raddr.to_be_bytes());
        b[24..28].copy_from_slice(&rkey.to_be_bytes());
        b[28..32].fill(0);
        // Data: byte count (bit 31 clear: a pointer), lkey, address.
        b[32..36].copy_from_slice(&h.local.len.to_be_bytes());
        b[36..40].copy_from_slice(&h.local.lkey.to_be_bytes());
        b[40..48].copy_from_slice(&h.local.addr.to_be_bytes());
        b[WQE_SIZE..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::wqe::{CtrlSeg, DataSeg, Payload, RaddrSeg, RdmaOp, RdmaWqe};

    fn reference(op: RdmaOp, counter: u16, qpn: u32, remote: RaddrSeg, h: Half) -> Vec<u8> {
        let seg = DataSeg::new(h.local.lkey, h.local.addr, h.local.len.into()).unwrap();
        let wqe = RdmaWqe {
            op,
            wqe_index: counter,
            qpn,
            flags: if h.signaled {
                CtrlFlags::CQ_UPDATE
            } else {
                CtrlFlags::empty()
            },
            remote,
            payload: Payload::Segments(std::slice::from_ref(&seg)),
        };
        let mut bb = [0u8; BB_SIZE];
        wqe.encode(&mut bb).unwrap();
        bb.to_vec()
    }

    #[test]
    fn pairs_match_the_generic_encoder() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let qpn = next() as u32 & MAX_QPN;
            let counter = next() as u16;
            let remote = RaddrSeg {
                raddr: next(),
                rkey: next() as u32,
            };
            let mut half = || Half {
                signaled: next() & 1 == 1,
                local: Local {
                    lkey: next() as u32,
                    addr: next(),
                    len: (next() as u32 & 0x7fff_ffff).max(1),
                },
            };
            let (w, r) = (half(), half());
            // Stale bytes in the buffer must not survive.
            let mut out = [0xa5u8; 2 * BB_SIZE];
            WqeTemplate::new(qpn)
                .unwrap()
                .pair(&mut out, counter, remote.raddr, remote.rkey, w, r);
            assert_eq!(
                out[..BB_SIZE],
                reference(RdmaOp::Write, counter, qpn, remote, w)[..]
            );
            assert_eq!(
                out[BB_SIZE..],
                reference(RdmaOp::Read, counter.wrapping_add(1), qpn, remote, r)[..]
            );
        }
        assert_eq!(
            WqeTemplate::new(MAX_QPN + 1).unwrap_err(),
            WqeError::QpnTooLarge(MAX_QPN + 1)
        );
    }

    #[test]
    fn the_flags_byte_is_where_the_control_segment_keeps_them() {
        let mut b = [0u8; CTRL_SEG_SIZE];
        CtrlSeg::new(Opcode::RdmaRead, 7, 1, 3, CtrlFlags::CQ_UPDATE)
            .encode(&mut b)
            .unwrap();
        let mut without = [0u8; CTRL_SEG_SIZE];
        CtrlSeg::new(Opcode::RdmaRead, 7, 1, 3, CtrlFlags::empty())
            .encode(&mut without)
            .unwrap();
        without[CTRL_FLAGS_BYTE] = CtrlFlags::CQ_UPDATE.bits();
        assert_eq!(b, without);
    }
}
