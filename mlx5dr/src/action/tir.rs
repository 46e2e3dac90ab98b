//! Receive destinations of NIC RX rules: TIRs and QPs.
//!
//! A rule that delivers to a TIR hits the TIR's ICM address, which the firmware hands
//! out when the TIR is created (`CREATE_TIR`'s `icm_address` output, what rdma-core's
//! `dest_devx_tir` action reads). A raw-packet QP has a TIR of its own, whose address
//! the provider learns when the QP is created (`tir_icm_addr`, what `dest_ibv_qp`
//! reads); QPs are not made through this driver's seam, so a QP destination is given
//! as its number and that address ([`QpDest`]).

use std::sync::Arc;

use ste_builder::prm::{create_tir_out, destroy_tir_in};

use crate::cmd::{CmdError, CmdIn};
use crate::device::{Device, ObjectId};
use crate::domain::{create_object, destroy_object, opcode, out_get, Domain};
use ste_builder::prm_kernel::create_tir_in;

/// What a TIR dispatching to one receive queue needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TirSpec {
    /// The transport domain the TIR belongs to.
    pub transport_domain: u32,
    /// The receive queue packets are delivered to.
    pub inline_rqn: u32,
}

/// A TIR made with `CREATE_TIR`, destroyed when the last holder goes (destination
/// actions hold it, so a TIR in use is never destroyed).
pub struct Tir {
    dev: Arc<dyn Device>,
    obj: ObjectId,
    tirn: u32,
    icm_addr: u64,
}

impl std::fmt::Debug for Tir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tir")
            .field("tirn", &self.tirn)
            .field("icm_addr", &format_args!("{:#x}", self.icm_addr))
            .finish_non_exhaustive()
    }
}

impl Tir {
    /// Creates a direct-dispatch TIR on `dmn`'s device.
    pub fn create(dmn: &Domain, spec: TirSpec) -> Result<Arc<Tir>, CmdError> {
        let cmd = CmdIn::new("CREATE_TIR", opcode::CREATE_TIR, create_tir_in::SIZE_BITS)
            .set(create_tir_in::DISP_TYPE, 0)
            .set(create_tir_in::INLINE_RQN, spec.inline_rqn.into())
            .set(
                create_tir_in::TRANSPORT_DOMAIN,
                spec.transport_domain.into(),
            );
        let dev = Arc::clone(dmn.device());
        let (obj, out) = create_object(&*dev, &cmd, create_tir_out::SIZE_BITS)?;
        let icm_addr = out_get(&out, create_tir_out::ICM_ADDRESS_63_40) << 40
            | out_get(&out, create_tir_out::ICM_ADDRESS_39_32) << 32
            | out_get(&out, create_tir_out::ICM_ADDRESS_31_0);
        Ok(Arc::new(Tir {
            dev,
            obj,
            tirn: out_get(&out, create_tir_out::TIRN) as u32,
            icm_addr,
        }))
    }

    /// The TIR number.
    pub fn tirn(&self) -> u32 {
        self.tirn
    }

    /// The ICM address rules hit to deliver to the TIR (0 when the firmware gave none:
    /// such a TIR cannot be a steering destination).
    pub fn icm_addr(&self) -> u64 {
        self.icm_addr
    }

    /// The device the TIR lives on.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.dev
    }
}

impl Drop for Tir {
    fn drop(&mut self) {
        let cmd = CmdIn::new(
            "DESTROY_TIR",
            opcode::DESTROY_TIR,
            destroy_tir_in::SIZE_BITS,
        )
        .set(destroy_tir_in::TIRN, self.tirn.into());
        // Nothing can report a failure here; the handle is gone either way.
        let _ = destroy_object(&*self.dev, self.obj, &cmd);
    }
}

/// A raw-packet QP as a destination: its number and the ICM address of its TIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QpDest {
    /// The QP number.
    pub qpn: u32,
    /// The ICM address of the QP's TIR (`tir_icm_addr`).
    pub tir_icm_addr: u64,
}
