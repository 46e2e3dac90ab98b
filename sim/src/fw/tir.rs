//! Receive endpoints: TIRs and the QPs behind them.
//!
//! rdma-core names a receive destination two ways. Software steering hits the TIR's ICM
//! address (`create_tir_out.icm_address`, or for a raw-packet QP the `tir_icm_addr` the
//! kernel reports for the QP's own TIR). The kernel flow path lists the TIR number as an
//! entry destination. Both lead to the same place: a stand-alone TIR delivers to
//! [`Terminal::Tir`], a QP's TIR to [`Terminal::Qp`].

use crate::endpoint::Terminal;

/// A TIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tir {
    /// TIR number.
    pub tirn: u32,
    /// The ICM address software steering hits to deliver here.
    pub icm_addr: u64,
    /// The QP this TIR belongs to, for a raw-packet QP's TIR.
    pub qp: Option<u32>,
    /// Creator's uid.
    pub uid: u16,
}

impl Tir {
    /// Where a packet delivered to this TIR ends.
    pub fn terminal(&self) -> Terminal {
        match self.qp {
            Some(qpn) => Terminal::Qp(qpn),
            None => Terminal::Tir(self.tirn),
        }
    }
}

/// A raw-packet QP: packets steered to it arrive through its TIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qp {
    /// QP number.
    pub qpn: u32,
    /// Its TIR.
    pub tirn: u32,
    /// The TIR's ICM address (`tir_icm_addr`).
    pub tir_icm_addr: u64,
    /// Creator's uid.
    pub uid: u16,
}
