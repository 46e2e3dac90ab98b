//! STE v0 (ConnectX-5) modify-header actions: field codes, the `dr_action_hw_set` /
//! `dr_action_hw_copy` encodings and the L3-decapsulation rewrite list.

use super::l2_hdr;
use super::sw_field as sw;
use super::{FieldTables, L3Type, L4Type, ModifyField, HW_ACTION_SIZE, L2_HDR_LEN};
use crate::bits::set;
use crate::prm::{dr_action_hw_copy as hw_copy, dr_action_hw_set as hw_set};

/// v0 hardware field codes: 64-bit windows over the packet headers and metadata.
mod fld {
    pub const L2_0: u8 = 0x00;
    pub const L2_1: u8 = 0x01;
    pub const L2_2: u8 = 0x02;
    pub const L3_0: u8 = 0x03;
    pub const L3_1: u8 = 0x04;
    pub const L3_2: u8 = 0x05;
    pub const L3_3: u8 = 0x06;
    pub const L3_4: u8 = 0x07;
    pub const L4_0: u8 = 0x08;
    pub const L4_1: u8 = 0x09;
    pub const REG_0: u8 = 0x0c;
    pub const REG_1: u8 = 0x0d;
    pub const REG_2: u8 = 0x0e;
    pub const METADATA: u8 = 0x16;
}

/// v0 modify opcodes.
mod op {
    pub const COPY: u64 = 0x1;
    pub const SET: u64 = 0x2;
    pub const ADD: u64 = 0x3;
}

const fn f(hw_field: u8, start: u8, end: u8) -> ModifyField {
    ModifyField::new(hw_field, start, end)
}

/// User field → v0 hardware field.
const FIELDS: &[(u16, ModifyField)] = &[
    (sw::SMAC_47_16, f(fld::L2_1, 16, 47)),
    (sw::SMAC_15_0, f(fld::L2_1, 0, 15)),
    (sw::ETHERTYPE, f(fld::L2_2, 32, 47)),
    (sw::DMAC_47_16, f(fld::L2_0, 16, 47)),
    (sw::DMAC_15_0, f(fld::L2_0, 0, 15)),
    (sw::IP_DSCP, f(fld::L3_1, 0, 5)),
    (sw::IP_ECN, f(fld::L3_1, 6, 7)),
    (sw::TCP_FLAGS, f(fld::L4_0, 48, 56).with_l4(L4Type::Tcp)),
    (sw::TCP_SPORT, f(fld::L4_0, 0, 15).with_l4(L4Type::Tcp)),
    (sw::TCP_DPORT, f(fld::L4_0, 16, 31).with_l4(L4Type::Tcp)),
    (sw::IP_TTL, f(fld::L3_1, 8, 15).with_l3(L3Type::Ipv4)),
    (sw::IPV6_HOPLIMIT, f(fld::L3_1, 8, 15).with_l3(L3Type::Ipv6)),
    (sw::UDP_SPORT, f(fld::L4_0, 0, 15).with_l4(L4Type::Udp)),
    (sw::UDP_DPORT, f(fld::L4_0, 16, 31).with_l4(L4Type::Udp)),
    (sw::SIPV6_127_96, f(fld::L3_3, 32, 63).with_l3(L3Type::Ipv6)),
    (sw::SIPV6_95_64, f(fld::L3_3, 0, 31).with_l3(L3Type::Ipv6)),
    (sw::SIPV6_63_32, f(fld::L3_4, 32, 63).with_l3(L3Type::Ipv6)),
    (sw::SIPV6_31_0, f(fld::L3_4, 0, 31).with_l3(L3Type::Ipv6)),
    (sw::DIPV6_127_96, f(fld::L3_0, 32, 63).with_l3(L3Type::Ipv6)),
    (sw::DIPV6_95_64, f(fld::L3_0, 0, 31).with_l3(L3Type::Ipv6)),
    (sw::DIPV6_63_32, f(fld::L3_2, 32, 63).with_l3(L3Type::Ipv6)),
    (sw::DIPV6_31_0, f(fld::L3_2, 0, 31).with_l3(L3Type::Ipv6)),
    (sw::SIPV4, f(fld::L3_0, 0, 31).with_l3(L3Type::Ipv4)),
    (sw::DIPV4, f(fld::L3_0, 32, 63).with_l3(L3Type::Ipv4)),
    (sw::METADATA_REGA, f(fld::METADATA, 0, 31)),
    (sw::METADATA_REGB, f(fld::METADATA, 32, 63)),
    (sw::METADATA_REGC_0, f(fld::REG_0, 32, 63)),
    (sw::METADATA_REGC_1, f(fld::REG_0, 0, 31)),
    (sw::METADATA_REGC_2, f(fld::REG_1, 32, 63)),
    (sw::METADATA_REGC_3, f(fld::REG_1, 0, 31)),
    (sw::METADATA_REGC_4, f(fld::REG_2, 32, 63)),
    (sw::METADATA_REGC_5, f(fld::REG_2, 0, 31)),
    // v0 has no L4 requirement on the TCP sequence and acknowledgement numbers.
    (sw::TCP_SEQ_NUM, f(fld::L4_1, 32, 63)),
    (sw::TCP_ACK_NUM, f(fld::L4_1, 0, 31)),
    (sw::FIRST_VID, f(fld::L2_2, 0, 15)),
];

/// v0 cannot modify flex-parser fields.
pub(super) static TABLES: FieldTables = FieldTables {
    fields: FIELDS,
    flex_fields: &[],
};

/// The set and add actions share one layout; a 32-bit length is written as 0 because the
/// length field has only 5 bits.
fn set_or_add(hw_action: &mut [u8], opcode: u64, hw_field: u8, shifter: u8, length: u8, data: u32) {
    let length = if length == 32 { 0 } else { length };
    set(hw_action, hw_set::OPCODE, opcode);
    set(hw_action, hw_set::DESTINATION_FIELD_CODE, hw_field.into());
    set(hw_action, hw_set::DESTINATION_LEFT_SHIFTER, shifter.into());
    set(hw_action, hw_set::DESTINATION_LENGTH, length.into());
    set(hw_action, hw_set::INLINE_DATA, data.into());
}

pub(super) fn set_action_set(
    hw_action: &mut [u8],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    set_or_add(hw_action, op::SET, hw_field, shifter, length, data);
}

pub(super) fn set_action_add(
    hw_action: &mut [u8],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    set_or_add(hw_action, op::ADD, hw_field, shifter, length, data);
}

/// The copy layout has a 6-bit length, so 32 is written as is.
pub(super) fn set_action_copy(
    hw_action: &mut [u8],
    dst_hw_field: u8,
    dst_shifter: u8,
    dst_len: u8,
    src_hw_field: u8,
    src_shifter: u8,
) {
    set(hw_action, hw_copy::OPCODE, op::COPY);
    set(
        hw_action,
        hw_copy::DESTINATION_FIELD_CODE,
        dst_hw_field.into(),
    );
    set(
        hw_action,
        hw_copy::DESTINATION_LEFT_SHIFTER,
        dst_shifter.into(),
    );
    set(hw_action, hw_copy::DESTINATION_LENGTH, dst_len.into());
    set(hw_action, hw_copy::SOURCE_FIELD_CODE, src_hw_field.into());
    set(hw_action, hw_copy::SOURCE_LEFT_SHIFTER, src_shifter.into());
}

/// Actions in the decapsulation list for an L2 header of `hdr_len` bytes: five set
/// actions, one more for a VLAN tag.
pub(super) fn decap_l3_actions(hdr_len: usize) -> usize {
    if hdr_len == L2_HDR_LEN {
        5
    } else {
        6
    }
}

/// SVLAN TPID; any other TPID is taken as a CVLAN.
const SVLAN_ETHERTYPE: u32 = 0x88a8;
/// The VLAN-type values v0 expects above the ethertype when it writes a tagged header.
const VLAN_TYPE_SVLAN: u32 = 0x1;
const VLAN_TYPE_CVLAN: u32 = 0x2;

/// Rewrites the L2 header field by field with set actions. The caller has checked the
/// header length and that `out` holds [`decap_l3_actions`] actions.
pub(super) fn decap_l3_list(hdr: &[u8], out: &mut [u8]) -> usize {
    let vlan = hdr.len() != L2_HDR_LEN;
    let v = |range| l2_hdr::value(hdr, range);
    let mut actions: Vec<(u8, u8, u8, u32)> = vec![
        (fld::L2_0, 16, 32, v(l2_hdr::DMAC_47_16)),
        (fld::L2_1, 16, 32, v(l2_hdr::SMAC_47_16)),
        (fld::L2_0, 0, 16, v(l2_hdr::DMAC_15_0)),
    ];
    if vlan {
        // The 18-bit write covers the ethertype and the two VLAN-type bits above it.
        let vlan_type = if v(l2_hdr::ETHERTYPE) == SVLAN_ETHERTYPE {
            VLAN_TYPE_SVLAN
        } else {
            VLAN_TYPE_CVLAN
        };
        let data = (vlan_type << 16) | v(l2_hdr::INNER_ETHERTYPE);
        actions.push((fld::L2_2, 32, 18, data));
    } else {
        actions.push((fld::L2_2, 32, 16, v(l2_hdr::ETHERTYPE)));
    }
    actions.push((fld::L2_1, 0, 16, v(l2_hdr::SMAC_15_0)));
    if vlan {
        actions.push((fld::L2_2, 0, 16, v(l2_hdr::VLAN_TCI)));
    }
    for (slot, &(hw_field, shifter, length, data)) in
        out.chunks_exact_mut(HW_ACTION_SIZE).zip(&actions)
    {
        set_action_set(slot, hw_field, shifter, length, data);
    }
    actions.len()
}
