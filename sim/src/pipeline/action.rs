//! STE actions: their wire encodings (v1/v2 action words, v0 control fields and
//! modify-header lists) decoded into one semantic [`Action`] vocabulary.
//!
//! Decoding is separate from execution: the walk collects actions in execution order;
//! editing packet bytes is the packet model's business. Encoding-specific numbers that
//! only the packet editor can interpret (modify-header field codes and shifts, header
//! anchors) are kept as encoded.

use ste_builder::bits::{get, BitField};
use ste_builder::prm::{
    dr_action_hw_copy as hw_copy, dr_action_hw_set as hw_set,
    ste_double_action_accelerated_modify_action_list_v1 as accel, ste_double_action_aso_v1 as aso,
    ste_double_action_copy_v1 as copy_v1, ste_double_action_insert_with_inline_v1 as ins_inline,
    ste_double_action_insert_with_ptr_v1 as ins_ptr, ste_double_action_set_v1 as set_v1,
    ste_modify_packet as mdfy, ste_rx_steering_mult as rx, ste_single_action_flow_tag_v1 as tag,
    ste_single_action_modify_list_v1 as mlist, ste_single_action_remove_header_size_v1 as rm_size,
    ste_single_action_remove_header_v1 as rm_hdr, ste_sx_transmit as tx,
};

/// A packet position that header insert and remove actions are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor(pub u8);

impl Anchor {
    /// The start of the packet (outer L2).
    pub const START_OUTER: Anchor = Anchor(0x00);
    /// The first VLAN header.
    pub const FIRST_VLAN: Anchor = Anchor(0x02);
    /// The outer IPv4/IPv6 header.
    pub const IPV6_IPV4: Anchor = Anchor(0x07);
    /// The inner L2 header.
    pub const INNER_MAC: Anchor = Anchor(0x13);
    /// The inner IPv4/IPv6 header.
    pub const INNER_IPV6_IPV4: Anchor = Anchor(0x19);
}

/// A modify-header write of a field: `length` bits at `left_shift` of hardware field
/// `field`, all as the STE format encodes them (v0: hardware field codes and a 5-bit
/// length where 0 means 32; v1/v2: dword offsets with the format's shift bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldWrite {
    /// Destination field code or dword offset.
    pub field: u8,
    /// Destination left shift.
    pub left_shift: u8,
    /// Number of bits.
    pub length: u8,
    /// The value to set or add.
    pub data: u32,
}

/// A modify-header copy between fields, as encoded (see [`FieldWrite`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldCopy {
    /// Destination field code or dword offset.
    pub dst_field: u8,
    /// Destination left shift.
    pub dst_left_shift: u8,
    /// Number of bits.
    pub length: u8,
    /// Source field code or dword offset.
    pub src_field: u8,
    /// Source shift.
    pub src_shift: u8,
}

/// One action the NIC executes on a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Mark the packet with a flow tag (NIC RX; reported in the completion).
    FlowTag(u32),
    /// Count the packet on a flow counter.
    Counter(u32),
    /// Set bits of a header field or metadata register.
    Set(FieldWrite),
    /// Add to a header field.
    Add(FieldWrite),
    /// Copy bits between fields.
    Copy(FieldCopy),
    /// Remove the headers from anchor `start` up to anchor `end` (tunnel decapsulation
    /// when `decap`).
    RemoveHeaders {
        /// First removed header.
        start: Anchor,
        /// First kept header.
        end: Anchor,
        /// This is a decapsulation (the inner packet becomes the packet).
        decap: bool,
    },
    /// Remove `len` bytes at `offset` bytes after `start` (VLAN pop).
    RemoveBytes {
        /// The anchor.
        start: Anchor,
        /// Offset from the anchor in bytes.
        offset: u16,
        /// Bytes removed.
        len: u16,
    },
    /// Insert four inline bytes (big-endian `data`) at `offset` bytes after `start`
    /// (VLAN push).
    InsertInline {
        /// The anchor.
        start: Anchor,
        /// Offset from the anchor in bytes.
        offset: u16,
        /// The inserted bytes.
        data: u32,
    },
    /// Insert `len` bytes of reformat data (by pointer) at `offset` bytes after `start`
    /// (encapsulation when `encap`).
    InsertPointer {
        /// The anchor.
        start: Anchor,
        /// Offset from the anchor in bytes.
        offset: u16,
        /// Bytes inserted.
        len: u16,
        /// The reformat data (an object id).
        pointer: u32,
        /// The inserted header is a tunnel.
        encap: bool,
    },
    /// ConnectX-5 L3 tunnel decapsulation: remove the outer headers up to the inner L3
    /// header; the L2 header to put in front follows as modify-header writes.
    DecapL3 {
        /// The new L2 header carries a VLAN.
        with_vlan: bool,
    },
    /// An advanced steering operation (flow meter, connection tracking, first hit).
    Aso {
        /// ASO context (object id plus offset).
        context: u32,
        /// Context type: 1 connection tracking, 2 policer, 4 first hit.
        context_type: u8,
        /// The 64-bit register pair that receives the result.
        dest_reg_pair: u8,
        /// Type-specific fields.
        fields: u16,
    },
}

/// Why an action cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// An action id the hardware does not define.
    #[error("unknown action id {0:#04x}")]
    Unknown(u8),
    /// An action the model does not execute.
    #[error("action id {0:#04x} is not supported by the model")]
    Unsupported(u8),
    /// A double action that does not fit in the remaining action space.
    #[error("action id {0:#04x} is cut off at the end of the action area")]
    Truncated(u8),
    /// A modify-header list whose size is not a whole number of actions.
    #[error("modify-header list of {0} bytes is not a whole number of 8-byte actions")]
    ListSize(usize),
}

/// v1 action ids (the first byte of an action word).
pub(super) mod v1_id {
    pub const NOP: u8 = 0x00;
    pub const COPY: u8 = 0x05;
    pub const SET: u8 = 0x06;
    pub const ADD: u8 = 0x07;
    pub const REMOVE_BY_SIZE: u8 = 0x08;
    pub const REMOVE_HEADER_TO_HEADER: u8 = 0x09;
    pub const INSERT_INLINE: u8 = 0x0a;
    pub const INSERT_POINTER: u8 = 0x0b;
    pub const FLOW_TAG: u8 = 0x0c;
    pub const QUEUE_ID_SEL: u8 = 0x0d;
    pub const ACCELERATED_LIST: u8 = 0x0e;
    pub const MODIFY_LIST: u8 = 0x0f;
    pub const ASO: u8 = 0x12;
    pub const TRAILER: u8 = 0x13;
    pub const COUNTER_ID: u8 = 0x14;
}

/// The insert-pointer attribute of a tunnel header.
const INSERT_ATTR_ENCAP: u64 = 1;

/// A decoded v1 action word, or a reference to more actions in action memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V1Item {
    /// An action.
    Action(Action),
    /// A basic modify-header list: `num` actions at list `index`.
    ModifyList { index: u32, num: u16 },
    /// An accelerated modify-header list: a pattern ORed with an argument.
    Pattern {
        pattern: u32,
        argument: u32,
        num: u16,
    },
}

fn field(word: &[u8], f: BitField) -> u64 {
    get(word, f)
}

/// Decodes the v1 action words of `area` (8 bytes in a BWC STE, 12 in a match STE) in
/// order. All-zero words are no-ops.
pub(super) fn decode_v1_area(area: &[u8]) -> Result<Vec<V1Item>, ActionError> {
    let mut items = Vec::new();
    let mut at = 0;
    while at + 4 <= area.len() {
        let (item, size) = decode_v1_one(&area[at..])?;
        items.extend(item);
        at += size;
    }
    Ok(items)
}

/// Decodes a v1 modify-header list (the contents of action memory): 8-byte entries,
/// each one action in the STE action encoding (single actions use the first word).
pub(super) fn decode_v1_list(list: &[u8]) -> Result<Vec<Action>, ActionError> {
    if list.len() % 8 != 0 {
        return Err(ActionError::ListSize(list.len()));
    }
    let mut out = Vec::new();
    for entry in list.chunks_exact(8) {
        match decode_v1_one(entry)?.0 {
            Some(V1Item::Action(a)) => out.push(a),
            // A list cannot point to further lists.
            Some(V1Item::ModifyList { .. }) => {
                return Err(ActionError::Unsupported(v1_id::MODIFY_LIST))
            }
            Some(V1Item::Pattern { .. }) => {
                return Err(ActionError::Unsupported(v1_id::ACCELERATED_LIST))
            }
            None => {}
        }
    }
    Ok(out)
}

/// One v1 action at the start of `w`: the item (None for a no-op) and its size.
fn decode_v1_one(w: &[u8]) -> Result<(Option<V1Item>, usize), ActionError> {
    let id = w[0];
    let double = |w: &[u8]| {
        if w.len() < 8 {
            Err(ActionError::Truncated(id))
        } else {
            Ok(())
        }
    };
    let act = |a| Some(V1Item::Action(a));
    let item = match id {
        v1_id::NOP => return Ok((None, 4)),
        v1_id::FLOW_TAG => act(Action::FlowTag(field(w, tag::FLOW_TAG) as u32)),
        v1_id::REMOVE_HEADER_TO_HEADER => act(Action::RemoveHeaders {
            start: Anchor(field(w, rm_hdr::START_ANCHOR) as u8),
            end: Anchor(field(w, rm_hdr::END_ANCHOR) as u8),
            decap: field(w, rm_hdr::DECAP) != 0,
        }),
        v1_id::REMOVE_BY_SIZE => act(Action::RemoveBytes {
            start: Anchor(field(w, rm_size::START_ANCHOR) as u8),
            // Offsets and sizes are in 2-byte words.
            offset: 2 * field(w, rm_size::START_OFFSET) as u16,
            len: 2 * field(w, rm_size::REMOVE_SIZE) as u16,
        }),
        v1_id::MODIFY_LIST => Some(V1Item::ModifyList {
            index: field(w, mlist::MODIFY_ACTIONS_PTR) as u32,
            num: field(w, mlist::NUM_OF_MODIFY_ACTIONS) as u16,
        }),
        v1_id::SET | v1_id::ADD => {
            double(w)?;
            // SET and ADD share one layout (the add value sits where SET's data does).
            let fw = FieldWrite {
                field: field(w, set_v1::DESTINATION_DW_OFFSET) as u8,
                left_shift: field(w, set_v1::DESTINATION_LEFT_SHIFTER) as u8,
                length: field(w, set_v1::DESTINATION_LENGTH) as u8,
                data: field(w, set_v1::INLINE_DATA) as u32,
            };
            act(if id == v1_id::SET {
                Action::Set(fw)
            } else {
                Action::Add(fw)
            })
        }
        v1_id::COPY => {
            double(w)?;
            act(Action::Copy(FieldCopy {
                dst_field: field(w, copy_v1::DESTINATION_DW_OFFSET) as u8,
                dst_left_shift: field(w, copy_v1::DESTINATION_LEFT_SHIFTER) as u8,
                length: field(w, copy_v1::DESTINATION_LENGTH) as u8,
                src_field: field(w, copy_v1::SOURCE_DW_OFFSET) as u8,
                src_shift: field(w, copy_v1::SOURCE_RIGHT_SHIFTER) as u8,
            }))
        }
        v1_id::INSERT_INLINE => {
            double(w)?;
            act(Action::InsertInline {
                start: Anchor(field(w, ins_inline::START_ANCHOR) as u8),
                offset: 2 * field(w, ins_inline::START_OFFSET) as u16,
                data: field(w, ins_inline::INLINE_DATA) as u32,
            })
        }
        v1_id::INSERT_POINTER => {
            double(w)?;
            act(Action::InsertPointer {
                start: Anchor(field(w, ins_ptr::START_ANCHOR) as u8),
                offset: 2 * field(w, ins_ptr::START_OFFSET) as u16,
                len: 2 * field(w, ins_ptr::SIZE) as u16,
                pointer: field(w, ins_ptr::POINTER) as u32,
                encap: field(w, ins_ptr::ATTRIBUTES) == INSERT_ATTR_ENCAP,
            })
        }
        v1_id::ACCELERATED_LIST => {
            double(w)?;
            Some(V1Item::Pattern {
                pattern: field(w, accel::MODIFY_ACTIONS_PATTERN_POINTER) as u32,
                argument: field(w, accel::MODIFY_ACTIONS_ARGUMENT_POINTER) as u32,
                num: field(w, accel::NUMBER_OF_MODIFY_ACTIONS) as u16,
            })
        }
        v1_id::ASO => {
            double(w)?;
            act(Action::Aso {
                context: field(w, aso::ASO_CONTEXT_NUMBER) as u32,
                context_type: field(w, aso::ASO_CONTEXT_TYPE) as u8,
                dest_reg_pair: field(w, aso::DEST_REG_ID) as u8,
                fields: field(w, aso::ASO_FIELDS) as u16,
            })
        }
        v1_id::QUEUE_ID_SEL | v1_id::TRAILER | v1_id::COUNTER_ID => {
            return Err(ActionError::Unsupported(id))
        }
        _ => return Err(ActionError::Unknown(id)),
    };
    let size = match id {
        v1_id::FLOW_TAG
        | v1_id::REMOVE_HEADER_TO_HEADER
        | v1_id::REMOVE_BY_SIZE
        | v1_id::MODIFY_LIST => 4,
        _ => 8,
    };
    Ok((item, size))
}

/// v0 modify-header opcodes.
mod v0_op {
    pub const COPY: u64 = 1;
    pub const SET: u64 = 2;
    pub const ADD: u64 = 3;
}

/// Decodes a v0 modify-header list: 8-byte hardware set/add/copy actions.
pub(super) fn decode_v0_list(list: &[u8]) -> Result<Vec<Action>, ActionError> {
    if list.len() % 8 != 0 {
        return Err(ActionError::ListSize(list.len()));
    }
    list.chunks_exact(8)
        .map(|w| {
            let write = || FieldWrite {
                field: get(w, hw_set::DESTINATION_FIELD_CODE) as u8,
                left_shift: get(w, hw_set::DESTINATION_LEFT_SHIFTER) as u8,
                length: get(w, hw_set::DESTINATION_LENGTH) as u8,
                data: get(w, hw_set::INLINE_DATA) as u32,
            };
            match get(w, hw_set::OPCODE) {
                v0_op::SET => Ok(Action::Set(write())),
                v0_op::ADD => Ok(Action::Add(write())),
                v0_op::COPY => Ok(Action::Copy(FieldCopy {
                    dst_field: get(w, hw_copy::DESTINATION_FIELD_CODE) as u8,
                    dst_left_shift: get(w, hw_copy::DESTINATION_LEFT_SHIFTER) as u8,
                    length: get(w, hw_copy::DESTINATION_LENGTH) as u8,
                    src_field: get(w, hw_copy::SOURCE_FIELD_CODE) as u8,
                    src_shift: get(w, hw_copy::SOURCE_LEFT_SHIFTER) as u8,
                })),
                op => Err(ActionError::Unknown(op as u8)),
            }
        })
        .collect()
}

/// v0 entry types (the kind of control block).
pub(super) mod v0_entry {
    pub const TX: u64 = 1;
    pub const RX: u64 = 2;
    pub const MODIFY_PKT: u64 = 6;
}

/// Tunneling actions of v0 RX and modify-packet entries.
mod v0_tunnel {
    pub const DECAP: u64 = 2;
    pub const L3_DECAP: u64 = 3;
    pub const POP_VLAN: u64 = 4;
}

/// Packet actions of v0 TX entries.
mod v0_tx {
    pub const PUSH_VLAN: u64 = 1;
    pub const ENCAP_L3: u64 = 3;
    pub const ENCAP: u64 = 4;
}

/// The flag in an RX entry's QP-list pointer that makes its low bits a flow tag.
const V0_FLOW_TAG_ENABLE: u64 = 1 << 31;
/// Flow tags are 24 bits.
const FLOW_TAG_MASK: u64 = 0xff_ffff;
/// Bytes of the two MAC addresses: a pushed VLAN goes after them.
const L2_MACS_LEN: u16 = 12;
/// Bytes of one VLAN header.
const VLAN_LEN: u16 = 4;

/// The actions of a v0 STE's control block, with the modify-header list it points to
/// (index, number of actions) if any. The list's actions go where
/// [`V0Actions::list_at`] says.
pub(super) struct V0Actions {
    /// Actions in execution order, without the list's.
    pub actions: Vec<Action>,
    /// The modify-header list: (index, number of actions).
    pub list: Option<(u32, u16)>,
    /// Position in `actions` where the list's actions belong.
    pub list_at: usize,
}

/// Decodes the actions of a v0 control block.
pub(super) fn decode_v0(ste: &[u8]) -> Result<V0Actions, ActionError> {
    let entry_type = get(ste, ste_builder::prm::ste_general::ENTRY_TYPE);
    let mut actions = Vec::new();
    let counter = (get(ste, rx::COUNTER_TRIGGER_23_16) << 16) | get(ste, rx::COUNTER_TRIGGER_15_0);
    if counter != 0 {
        actions.push(Action::Counter(counter as u32));
    }
    let mut list = None;
    let mut list_at = actions.len();
    match entry_type {
        v0_entry::RX | v0_entry::MODIFY_PKT => {
            match get(ste, rx::TUNNELING_ACTION) {
                0 => {}
                v0_tunnel::DECAP => actions.push(Action::RemoveHeaders {
                    start: Anchor::START_OUTER,
                    end: Anchor::INNER_MAC,
                    decap: true,
                }),
                v0_tunnel::L3_DECAP => actions.push(Action::DecapL3 {
                    with_vlan: get(ste, mdfy::ACTION_DESCRIPTION) != 0,
                }),
                v0_tunnel::POP_VLAN => actions.push(Action::RemoveBytes {
                    start: Anchor::FIRST_VLAN,
                    offset: 0,
                    len: VLAN_LEN,
                }),
                other => return Err(ActionError::Unknown(other as u8)),
            }
            if entry_type == v0_entry::MODIFY_PKT {
                let num = get(ste, mdfy::NUMBER_OF_RE_WRITE_ACTIONS) as u16;
                list = Some((get(ste, mdfy::HEADER_RE_WRITE_ACTIONS_POINTER) as u32, num));
                list_at = actions.len();
            } else {
                let qp_list = get(ste, rx::QP_LIST_POINTER);
                if qp_list & V0_FLOW_TAG_ENABLE != 0 {
                    actions.push(Action::FlowTag((qp_list & FLOW_TAG_MASK) as u32));
                }
            }
        }
        v0_entry::TX => {
            let data = get(ste, tx::ENCAP_POINTER_VLAN_DATA) as u32;
            // Encapsulation sizes are in 2-byte words.
            let len = 2 * get(ste, tx::ACTION_DESCRIPTION) as u16;
            match get(ste, tx::ACTION_TYPE) {
                0 => {}
                v0_tx::PUSH_VLAN => actions.push(Action::InsertInline {
                    start: Anchor::START_OUTER,
                    offset: L2_MACS_LEN,
                    data,
                }),
                v0_tx::ENCAP => actions.push(Action::InsertPointer {
                    start: Anchor::START_OUTER,
                    offset: 0,
                    len,
                    pointer: data,
                    encap: true,
                }),
                v0_tx::ENCAP_L3 => {
                    actions.push(Action::RemoveHeaders {
                        start: Anchor::START_OUTER,
                        end: Anchor::IPV6_IPV4,
                        decap: false,
                    });
                    actions.push(Action::InsertPointer {
                        start: Anchor::START_OUTER,
                        offset: 0,
                        len,
                        pointer: data,
                        encap: true,
                    });
                }
                other => return Err(ActionError::Unknown(other as u8)),
            }
        }
        other => return Err(ActionError::Unknown(other as u8)),
    }
    Ok(V0Actions {
        actions,
        list: list.filter(|&(_, num)| num > 0),
        list_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::bits::set;

    #[test]
    fn v1_flow_tag_and_nop() {
        let area = [0x0c, 0x12, 0x34, 0x56, 0, 0, 0, 0];
        assert_eq!(
            decode_v1_area(&area).unwrap(),
            vec![V1Item::Action(Action::FlowTag(0x12_3456))]
        );
        assert_eq!(decode_v1_area(&[0; 12]).unwrap(), vec![]);
    }

    #[test]
    fn v1_double_actions_and_errors() {
        let mut area = [0u8; 12];
        // Push VLAN: insert inline after the MACs (offset in words).
        set(&mut area, ins_inline::INLINE_DATA.at(32), 0x8100_0005);
        area[4] = v1_id::INSERT_INLINE;
        set(&mut area[4..], ins_inline::START_OFFSET, 6);
        area[0] = v1_id::FLOW_TAG;
        let items = decode_v1_area(&area).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            V1Item::Action(Action::InsertInline {
                start: Anchor::START_OUTER,
                offset: 12,
                data: 0x8100_0005
            })
        );
        // A double action in the last word is cut off.
        let mut cut = [0u8; 8];
        cut[4] = v1_id::SET;
        assert_eq!(
            decode_v1_area(&cut),
            Err(ActionError::Truncated(v1_id::SET))
        );
        assert_eq!(
            decode_v1_area(&[0x33, 0, 0, 0]),
            Err(ActionError::Unknown(0x33))
        );
        assert_eq!(
            decode_v1_area(&[v1_id::TRAILER, 0, 0, 0]),
            Err(ActionError::Unsupported(v1_id::TRAILER))
        );
        assert_eq!(decode_v1_list(&[0; 7]), Err(ActionError::ListSize(7)));
    }

    #[test]
    fn v0_rx_tag_counter_and_decap() {
        let mut ste = [0u8; 64];
        set(
            &mut ste,
            ste_builder::prm::ste_general::ENTRY_TYPE,
            v0_entry::RX,
        );
        set(&mut ste, rx::QP_LIST_POINTER, V0_FLOW_TAG_ENABLE | 0xabcdef);
        set(&mut ste, rx::COUNTER_TRIGGER_15_0, 0x5678);
        set(&mut ste, rx::COUNTER_TRIGGER_23_16, 0x12);
        set(&mut ste, rx::TUNNELING_ACTION, v0_tunnel::DECAP);
        let a = decode_v0(&ste).unwrap();
        assert_eq!(
            a.actions,
            vec![
                Action::Counter(0x12_5678),
                Action::RemoveHeaders {
                    start: Anchor::START_OUTER,
                    end: Anchor::INNER_MAC,
                    decap: true
                },
                Action::FlowTag(0xabcdef)
            ]
        );
        assert!(a.list.is_none());
    }

    #[test]
    fn v0_modify_list_entries() {
        let mut w = [0u8; 16];
        set(&mut w, hw_set::OPCODE, v0_op::SET);
        set(&mut w, hw_set::DESTINATION_FIELD_CODE, 0x21);
        set(&mut w, hw_set::DESTINATION_LENGTH, 8);
        set(&mut w, hw_set::INLINE_DATA, 0x40);
        set(&mut w[8..], hw_copy::OPCODE, v0_op::COPY);
        set(&mut w[8..], hw_copy::SOURCE_FIELD_CODE, 0x7);
        let list = decode_v0_list(&w).unwrap();
        assert_eq!(
            list[0],
            Action::Set(FieldWrite {
                field: 0x21,
                left_shift: 0,
                length: 8,
                data: 0x40
            })
        );
        assert!(matches!(
            list[1],
            Action::Copy(FieldCopy { src_field: 7, .. })
        ));
        assert_eq!(
            decode_v0_list(&[9, 0, 0, 0, 0, 0, 0, 0]),
            Err(ActionError::Unknown(9))
        );
    }
}
