//! v0 lookups on packet metadata: the general purpose register, the steering registers
//! C0..C7 and the source vport/QP.

use super::{init_by_tag, lu};
use crate::bits;
use crate::builder::common::source_port_gvmi;
use crate::builder::{finish_legacy, put, put_ones, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{dr_match_set_misc as misc, dr_match_set_misc2 as misc2};
use crate::prm::{ste_general_purpose as gp, ste_src_gvmi_qp as gvmi_qp};
use crate::prm::{ste_register_0 as reg0, ste_register_1 as reg1};

/// `source_port` of the uplink.
const WIRE_PORT: u16 = 0xffff;

/// The general purpose register, `metadata_reg_a` (`general_purpose`).
pub(super) fn init_general_purpose(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::GENERAL_PURPOSE, tag_general_purpose)
}

fn tag_general_purpose(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put(
        tag,
        gp::GENERAL_PURPOSE_LOOKUP_FIELD,
        &mut value.misc2,
        misc2::METADATA_REG_A,
    );
    Ok(())
}

/// Steering registers C0..C3 (`register_0`).
pub(super) fn init_register_0(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::STEERING_REGISTERS_0, tag_register_0)
}

fn tag_register_0(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m2 = &mut value.misc2;
    put(tag, reg0::REGISTER_0_H, m2, misc2::METADATA_REG_C_0);
    put(tag, reg0::REGISTER_0_L, m2, misc2::METADATA_REG_C_1);
    put(tag, reg0::REGISTER_1_H, m2, misc2::METADATA_REG_C_2);
    put(tag, reg0::REGISTER_1_L, m2, misc2::METADATA_REG_C_3);
    Ok(())
}

/// Steering registers C4..C7 (`register_1`).
pub(super) fn init_register_1(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::STEERING_REGISTERS_1, tag_register_1)
}

fn tag_register_1(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m2 = &mut value.misc2;
    put(tag, reg1::REGISTER_2_H, m2, misc2::METADATA_REG_C_4);
    put(tag, reg1::REGISTER_2_L, m2, misc2::METADATA_REG_C_5);
    put(tag, reg1::REGISTER_3_H, m2, misc2::METADATA_REG_C_6);
    put(tag, reg1::REGISTER_3_L, m2, misc2::METADATA_REG_C_7);
    Ok(())
}

/// The source vport, matched through its gvmi, and the source QP/SQ number
/// (`src_gvmi_qpn`).
///
/// On the RX side the lookup also requires the functional-loopback bit, because the
/// uplink's gvmi is 0 and would otherwise alias any vport whose gvmi is 0.
pub(super) fn init_src_gvmi_qpn(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    let m = &mut mask.misc;
    let bm = &mut sb.bit_mask;
    if sb.rx && bits::get(m, misc::SOURCE_PORT) != 0 {
        bits::set(bm, gvmi_qp::FUNCTIONAL_LB, 1);
    }
    put_ones(bm, gvmi_qp::SOURCE_GVMI, m, misc::SOURCE_PORT);
    put_ones(bm, gvmi_qp::SOURCE_QP, m, misc::SOURCE_SQN);
    finish_legacy(sb, lu::SRC_GVMI_AND_QP, tag_src_gvmi_qpn);
    Ok(())
}

/// # Errors
/// [`BuildError::UnknownVport`] when the source vport is matched and the rule's
/// `source_port` is not in the vport table.
fn tag_src_gvmi_qpn(
    sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = &mut value.misc;
    put(tag, gvmi_qp::SOURCE_QP, v, misc::SOURCE_SQN);
    // Whether the vport is matched is a property of the matcher (its mask), not of the
    // rule: a rule value of 0 still means vport 0.
    if bits::get(&sb.bit_mask, gvmi_qp::SOURCE_GVMI) == 0 {
        return Ok(());
    }
    let port = bits::get(v, misc::SOURCE_PORT) as u16;
    let gvmi = source_port_gvmi(caps, port)?;
    bits::set(tag, gvmi_qp::SOURCE_GVMI, gvmi.into());
    if sb.rx && port != WIRE_PORT {
        bits::set(tag, gvmi_qp::FUNCTIONAL_LB, 1);
    }
    bits::set(v, misc::SOURCE_PORT, 0);
    Ok(())
}
