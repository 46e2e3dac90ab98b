//! STE v1 (ConnectX-6 Dx) modify-header actions: field numbers, the double-action
//! encodings (shared with v2) and the L3-decapsulation list built from header
//! removal and inline insertion.

use super::sw_field as sw;
use super::{FieldTables, L3Type, L4Type, ModifyField, HW_ACTION_SIZE};
use crate::bits::set;
use crate::prm::{
    ste_double_action_add_v1 as add_v1, ste_double_action_copy_v1 as copy_v1,
    ste_double_action_insert_with_inline_v1 as insert_inline_v1,
    ste_double_action_set_v1 as set_v1, ste_single_action_remove_header_size_v1 as remove_size_v1,
    ste_single_action_remove_header_v1 as remove_header_v1,
};

/// v1 hardware fields: dword offsets into the packet-header and metadata layout.
mod fld {
    pub const L2_OUT_0: u8 = 0x00;
    pub const L2_OUT_1: u8 = 0x01;
    pub const L2_OUT_2: u8 = 0x02;
    pub const SRC_L2_OUT_0: u8 = 0x08;
    pub const SRC_L2_OUT_1: u8 = 0x09;
    pub const L3_OUT_0: u8 = 0x0e;
    pub const L4_OUT_0: u8 = 0x18;
    pub const L4_OUT_1: u8 = 0x19;
    pub const IPV4_OUT_0: u8 = 0x40;
    pub const IPV4_OUT_1: u8 = 0x41;
    pub const IPV6_DST_OUT_0: u8 = 0x44;
    pub const IPV6_DST_OUT_1: u8 = 0x45;
    pub const IPV6_DST_OUT_2: u8 = 0x46;
    pub const IPV6_DST_OUT_3: u8 = 0x47;
    pub const IPV6_SRC_OUT_0: u8 = 0x4c;
    pub const IPV6_SRC_OUT_1: u8 = 0x4d;
    pub const IPV6_SRC_OUT_2: u8 = 0x4e;
    pub const IPV6_SRC_OUT_3: u8 = 0x4f;
    pub const TCP_MISC_0: u8 = 0x5e;
    pub const TCP_MISC_1: u8 = 0x5f;
    pub const METADATA_2_CQE: u8 = 0x7b;
    pub const GNRL_PURPOSE: u8 = 0x7c;
    /// Flex parser `n` is at `FLEX_PARSER_0 - n`.
    pub const FLEX_PARSER_0: u8 = 0x89;
    pub const REGISTER_2_0: u8 = 0x8c;
    pub const REGISTER_2_1: u8 = 0x8d;
    pub const REGISTER_1_0: u8 = 0x8e;
    pub const REGISTER_1_1: u8 = 0x8f;
    pub const REGISTER_0_0: u8 = 0x90;
    pub const REGISTER_0_1: u8 = 0x91;
}

/// v1 action ids (first byte of each action).
mod action_id {
    pub const COPY: u64 = 0x05;
    pub const SET: u64 = 0x06;
    pub const ADD: u64 = 0x07;
    pub const REMOVE_BY_SIZE: u64 = 0x08;
    pub const REMOVE_HEADER_TO_HEADER: u64 = 0x09;
    pub const INSERT_INLINE: u64 = 0x0a;
}

/// v1 encodes shifters relative to a quad-word: bit positions inside the 32-bit field are
/// moved up by 32.
const QW_OFFSET: u8 = 0x20;

/// The header anchor at the start of the inner IPv4/IPv6 header.
const ANCHOR_INNER_IPV6_IPV4: u64 = 0x19;

const fn f(hw_field: u8, start: u8, end: u8) -> ModifyField {
    ModifyField::new(hw_field, start, end)
}

/// The metadata registers' hardware fields, C0 to C5; the only difference between the
/// v1 and v2 tables.
pub(super) type RegisterFields = [u8; 6];

/// The user field → hardware field table shared by v1 and v2, with `reg` the fields of
/// metadata registers C0..C5.
pub(super) const fn fields(reg: RegisterFields) -> [(u16, ModifyField); 36] {
    [
        (sw::SMAC_47_16, f(fld::SRC_L2_OUT_0, 0, 31)),
        (sw::SMAC_15_0, f(fld::SRC_L2_OUT_1, 16, 31)),
        (sw::ETHERTYPE, f(fld::L2_OUT_1, 0, 15)),
        (sw::DMAC_47_16, f(fld::L2_OUT_0, 0, 31)),
        (sw::DMAC_15_0, f(fld::L2_OUT_1, 16, 31)),
        (sw::IP_DSCP, f(fld::L3_OUT_0, 18, 23)),
        (sw::IP_ECN, f(fld::L3_OUT_0, 16, 17)),
        (sw::TCP_FLAGS, f(fld::L4_OUT_1, 16, 24).with_l4(L4Type::Tcp)),
        (sw::TCP_SPORT, f(fld::L4_OUT_0, 16, 31).with_l4(L4Type::Tcp)),
        (sw::TCP_DPORT, f(fld::L4_OUT_0, 0, 15).with_l4(L4Type::Tcp)),
        (sw::IP_TTL, f(fld::L3_OUT_0, 8, 15).with_l3(L3Type::Ipv4)),
        (
            sw::IPV6_HOPLIMIT,
            f(fld::L3_OUT_0, 8, 15).with_l3(L3Type::Ipv6),
        ),
        (sw::UDP_SPORT, f(fld::L4_OUT_0, 16, 31).with_l4(L4Type::Udp)),
        (sw::UDP_DPORT, f(fld::L4_OUT_0, 0, 15).with_l4(L4Type::Udp)),
        (
            sw::SIPV6_127_96,
            f(fld::IPV6_SRC_OUT_0, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::SIPV6_95_64,
            f(fld::IPV6_SRC_OUT_1, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::SIPV6_63_32,
            f(fld::IPV6_SRC_OUT_2, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::SIPV6_31_0,
            f(fld::IPV6_SRC_OUT_3, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::DIPV6_127_96,
            f(fld::IPV6_DST_OUT_0, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::DIPV6_95_64,
            f(fld::IPV6_DST_OUT_1, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::DIPV6_63_32,
            f(fld::IPV6_DST_OUT_2, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (
            sw::DIPV6_31_0,
            f(fld::IPV6_DST_OUT_3, 0, 31).with_l3(L3Type::Ipv6),
        ),
        (sw::SIPV4, f(fld::IPV4_OUT_0, 0, 31).with_l3(L3Type::Ipv4)),
        (sw::DIPV4, f(fld::IPV4_OUT_1, 0, 31).with_l3(L3Type::Ipv4)),
        (sw::METADATA_REGA, f(fld::GNRL_PURPOSE, 0, 31)),
        (sw::METADATA_REGB, f(fld::METADATA_2_CQE, 0, 31)),
        (sw::METADATA_REGC_0, f(reg[0], 0, 31)),
        (sw::METADATA_REGC_1, f(reg[1], 0, 31)),
        (sw::METADATA_REGC_2, f(reg[2], 0, 31)),
        (sw::METADATA_REGC_3, f(reg[3], 0, 31)),
        (sw::METADATA_REGC_4, f(reg[4], 0, 31)),
        (sw::METADATA_REGC_5, f(reg[5], 0, 31)),
        // As on v0, the TCP sequence and acknowledgement numbers carry no L4 requirement.
        (sw::TCP_SEQ_NUM, f(fld::TCP_MISC_0, 0, 31)),
        (sw::TCP_ACK_NUM, f(fld::TCP_MISC_1, 0, 31)),
        (sw::FIRST_VID, f(fld::L2_OUT_2, 0, 15)),
        (sw::GTPU_TEID, ModifyField::flex(0, 31)),
    ]
}

const V1_FIELDS: [(u16, ModifyField); 36] = fields([
    fld::REGISTER_0_0,
    fld::REGISTER_0_1,
    fld::REGISTER_1_0,
    fld::REGISTER_1_1,
    fld::REGISTER_2_0,
    fld::REGISTER_2_1,
]);

/// Flex parser id → hardware field (v1 and v2 agree): parser `n` is field
/// `FLEX_PARSER_0 - n`.
pub(super) const FLEX_FIELDS: [ModifyField; 8] = [
    f(fld::FLEX_PARSER_0, 0, 31),
    f(fld::FLEX_PARSER_0 - 1, 0, 31),
    f(fld::FLEX_PARSER_0 - 2, 0, 31),
    f(fld::FLEX_PARSER_0 - 3, 0, 31),
    f(fld::FLEX_PARSER_0 - 4, 0, 31),
    f(fld::FLEX_PARSER_0 - 5, 0, 31),
    f(fld::FLEX_PARSER_0 - 6, 0, 31),
    f(fld::FLEX_PARSER_0 - 7, 0, 31),
];

pub(super) static TABLES: FieldTables = FieldTables {
    fields: &V1_FIELDS,
    flex_fields: &FLEX_FIELDS,
};

/// The 6-bit length field holds 32 as is.
pub(super) fn set_action_set(
    hw_action: &mut [u8],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    set(hw_action, set_v1::ACTION_ID, action_id::SET);
    set(hw_action, set_v1::DESTINATION_DW_OFFSET, hw_field.into());
    set(
        hw_action,
        set_v1::DESTINATION_LEFT_SHIFTER,
        shifter.wrapping_add(QW_OFFSET).into(),
    );
    set(hw_action, set_v1::DESTINATION_LENGTH, length.into());
    set(hw_action, set_v1::INLINE_DATA, data.into());
}

pub(super) fn set_action_add(
    hw_action: &mut [u8],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    set(hw_action, add_v1::ACTION_ID, action_id::ADD);
    set(hw_action, add_v1::DESTINATION_DW_OFFSET, hw_field.into());
    set(
        hw_action,
        add_v1::DESTINATION_LEFT_SHIFTER,
        shifter.wrapping_add(QW_OFFSET).into(),
    );
    set(hw_action, add_v1::DESTINATION_LENGTH, length.into());
    set(hw_action, add_v1::ADD_VALUE, data.into());
}

pub(super) fn set_action_copy(
    hw_action: &mut [u8],
    dst_hw_field: u8,
    dst_shifter: u8,
    dst_len: u8,
    src_hw_field: u8,
    src_shifter: u8,
) {
    set(hw_action, copy_v1::ACTION_ID, action_id::COPY);
    set(
        hw_action,
        copy_v1::DESTINATION_DW_OFFSET,
        dst_hw_field.into(),
    );
    set(
        hw_action,
        copy_v1::DESTINATION_LEFT_SHIFTER,
        dst_shifter.wrapping_add(QW_OFFSET).into(),
    );
    set(hw_action, copy_v1::DESTINATION_LENGTH, dst_len.into());
    set(hw_action, copy_v1::SOURCE_DW_OFFSET, src_hw_field.into());
    set(
        hw_action,
        copy_v1::SOURCE_RIGHT_SHIFTER,
        src_shifter.wrapping_add(QW_OFFSET).into(),
    );
}

/// Room the decapsulation list demands in the action buffer, in 8-byte actions: more
/// than the 6 or 7 it uses.
pub(super) const DECAP_L3_ACTION_ROOM: usize = 8;

/// Bytes inserted by one inline-insert action.
const INLINE_BYTES: usize = insert_inline_v1::INLINE_DATA.width / 8;

/// Replaces the outer headers up to the inner IP header by `hdr`: one header removal,
/// then the header pushed 4 bytes at a time from its end (each insertion goes to the
/// front of the packet, and inserting back to front keeps what the parser sees
/// consistent), then a removal of the 2 bytes of padding that make the 14- or 18-byte
/// header a whole number of dwords. Every action takes an 8-byte slot, single ones
/// included. The caller has checked the header length and the buffer room.
pub(super) fn decap_l3_list(hdr: &[u8], out: &mut [u8]) -> usize {
    // The header with the padding in front.
    let pad = hdr.len() % INLINE_BYTES;
    let mut padded = [0u8; 2 * INLINE_BYTES + super::L2_HDR_LEN_WITH_VLAN];
    padded[pad..pad + hdr.len()].copy_from_slice(hdr);
    let padded = &padded[..pad + hdr.len()];

    let mut slots = out.chunks_exact_mut(HW_ACTION_SIZE);
    let mut used = 0;

    if let Some(slot) = slots.next() {
        set(
            slot,
            remove_header_v1::ACTION_ID,
            action_id::REMOVE_HEADER_TO_HEADER,
        );
        set(slot, remove_header_v1::DECAP, 1);
        set(slot, remove_header_v1::VNI_TO_CQE, 1);
        set(slot, remove_header_v1::END_ANCHOR, ANCHOR_INNER_IPV6_IPV4);
        used += 1;
    }
    // The chunks go first in the zip so that their end does not consume a slot.
    for (chunk, slot) in padded.rchunks(INLINE_BYTES).zip(slots.by_ref()) {
        set(slot, insert_inline_v1::ACTION_ID, action_id::INSERT_INLINE);
        // Offsets are in 2-byte words; insert at the very start.
        set(slot, insert_inline_v1::START_OFFSET, 0);
        let at = insert_inline_v1::INLINE_DATA.offset / 8;
        slot[at..at + INLINE_BYTES].copy_from_slice(chunk);
        used += 1;
    }
    if let Some(slot) = slots.next() {
        set(slot, remove_size_v1::ACTION_ID, action_id::REMOVE_BY_SIZE);
        set(slot, remove_size_v1::START_OFFSET, 0);
        // The size is in 2-byte words: the one word of padding.
        set(slot, remove_size_v1::REMOVE_SIZE, 1);
        used += 1;
    }
    used
}
