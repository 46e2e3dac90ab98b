//! Lookups on packet metadata rather than headers: the general-purpose register, the
//! steering registers and the source vport / QP.

use super::{lu, Lookup, Tag};
use crate::bits;
use crate::builder::common::source_port_gvmi;
use crate::builder::{put, put_ones, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, ste_general_purpose as gp,
    ste_register_0 as reg0, ste_register_1 as reg1, ste_src_gvmi_qp_v1 as src_qp,
};

/// The metadata register A (`general_purpose`).
pub(super) struct GeneralPurpose;

impl Lookup for GeneralPurpose {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::GENERAL_PURPOSE
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        put(
            out,
            gp::GENERAL_PURPOSE_LOOKUP_FIELD,
            &mut p.misc2,
            misc2::METADATA_REG_A,
        );
        Ok(())
    }
}

/// Metadata registers C0..C3 (`register_0`).
pub(super) struct Register0;

impl Lookup for Register0 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::STEERING_REGISTERS_0
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m2 = &mut p.misc2;
        put(out, reg0::REGISTER_0_H, m2, misc2::METADATA_REG_C_0);
        put(out, reg0::REGISTER_0_L, m2, misc2::METADATA_REG_C_1);
        put(out, reg0::REGISTER_1_H, m2, misc2::METADATA_REG_C_2);
        put(out, reg0::REGISTER_1_L, m2, misc2::METADATA_REG_C_3);
        Ok(())
    }
}

/// Metadata registers C4..C7 (`register_1`).
pub(super) struct Register1;

impl Lookup for Register1 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::STEERING_REGISTERS_1
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m2 = &mut p.misc2;
        put(out, reg1::REGISTER_2_H, m2, misc2::METADATA_REG_C_4);
        put(out, reg1::REGISTER_2_L, m2, misc2::METADATA_REG_C_5);
        put(out, reg1::REGISTER_3_H, m2, misc2::METADATA_REG_C_6);
        put(out, reg1::REGISTER_3_L, m2, misc2::METADATA_REG_C_7);
        Ok(())
    }
}

/// The uplink's vport number.
const WIRE_PORT: u16 = 0xffff;

/// Source vport (as its gvmi) and source QP / SQ number (`src_gvmi_qpn`).
///
/// The mask only says whether the port and the QP matter; the rule's `source_port` is
/// translated through the vport table into a gvmi.
pub(super) struct SrcGvmiQpn;

impl Lookup for SrcGvmiQpn {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::SRC_QP_GVMI
    }

    fn mask(sb: &SteBuild, mask: &mut MatchParam, _: &Caps, bit_mask: &mut Tag) {
        let m = &mut mask.misc;
        if sb.rx && bits::get(m, misc::SOURCE_PORT) != 0 {
            bits::set(bit_mask, src_qp::FUNCTIONAL_LB, 1);
        }
        put_ones(bit_mask, src_qp::SOURCE_GVMI, m, misc::SOURCE_PORT);
        put_ones(bit_mask, src_qp::SOURCE_QP, m, misc::SOURCE_SQN);
    }

    fn tag(
        sb: &SteBuild,
        p: &mut MatchParam,
        caps: &Caps,
        out: &mut Tag,
    ) -> Result<(), BuildError> {
        let m = &mut p.misc;
        put(out, src_qp::SOURCE_QP, m, misc::SOURCE_SQN);
        if bits::get(&sb.bit_mask, src_qp::SOURCE_GVMI) == 0 {
            return Ok(());
        }
        let port = bits::get(m, misc::SOURCE_PORT) as u16;
        let gvmi = source_port_gvmi(caps, port)?;
        // A zero gvmi is the tag's default and needs no write.
        if gvmi != 0 {
            bits::set(out, src_qp::SOURCE_GVMI, gvmi.into());
        }
        // The wire's gvmi is 0 and could alias another vport's, so on RX a packet that
        // should come from a vport must also have been looped back by a function.
        if sb.rx && port != WIRE_PORT {
            bits::set(out, src_qp::FUNCTIONAL_LB, 1);
        }
        bits::set(m, misc::SOURCE_PORT, 0);
        Ok(())
    }
}
