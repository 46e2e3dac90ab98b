//! STE v1/v2 action encodings.

use crate::bits::set;
use crate::prm::ste_double_action_aso_v1 as aso;

/// v1 action ids (the first byte of each action word).
pub(crate) mod action_id {
    pub const NOP: u64 = 0x00;
    pub const COPY: u64 = 0x05;
    pub const SET: u64 = 0x06;
    pub const ADD: u64 = 0x07;
    pub const REMOVE_BY_SIZE: u64 = 0x08;
    pub const REMOVE_HEADER_TO_HEADER: u64 = 0x09;
    pub const INSERT_INLINE: u64 = 0x0a;
    pub const INSERT_POINTER: u64 = 0x0b;
    pub const FLOW_TAG: u64 = 0x0c;
    pub const QUEUE_ID_SEL: u64 = 0x0d;
    pub const ACCELERATED_LIST: u64 = 0x0e;
    pub const MODIFY_LIST: u64 = 0x0f;
    pub const ASO: u64 = 0x12;
    pub const TRAILER: u64 = 0x13;
    pub const COUNTER_ID: u64 = 0x14;
    pub const MAX: u64 = 0x21;
    pub const SPECIAL_ENCAP_L3: u64 = 0x22;
}

/// ASO context types.
pub(crate) mod aso_ctx_type {
    pub const CT: u64 = 0x1;
    pub const POLICERS: u64 = 0x2;
    pub const FIRST_HIT: u64 = 0x4;
}

/// CT contexts per ASO object.
const ASO_CT_NUM_PER_OBJ: u32 = 1;

/// Writes a connection-tracking ASO double action (8 bytes) into `d_action`.
pub(crate) fn set_aso_ct(
    d_action: &mut [u8],
    object_id: u32,
    offset: u32,
    dest_reg_id: u8,
    direction: bool,
) {
    set(d_action, aso::ACTION_ID, action_id::ASO);
    set(
        d_action,
        aso::ASO_CONTEXT_NUMBER,
        u64::from(object_id.wrapping_add(offset / ASO_CT_NUM_PER_OBJ)),
    );
    // The register is named by its C index; hardware counts 64-bit register pairs.
    set(
        d_action,
        aso::DEST_REG_ID,
        ((i32::from(dest_reg_id) - 1) / 2) as u64,
    );
    set(d_action, aso::ASO_CONTEXT_TYPE, aso_ctx_type::CT);
    set(
        d_action,
        crate::prm::ste_aso_ct_action_v1::DIRECTION.at(aso::CT_OFF),
        u64::from(direction),
    );
}
