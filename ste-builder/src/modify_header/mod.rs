//! Modify-header actions: converting the user's PRM modify actions (set, add, copy of a
//! packet field) into the hardware's per-format action words, and the action lists that
//! rewrite an L2 header after L3 decapsulation.
//!
//! Users describe header rewrites with the 8-byte PRM actions `set_action_in`,
//! `add_action_in` and `copy_action_in`, naming fields by their `MLX5_ACTION_IN_FIELD_OUT_*`
//! id ([`sw_field`]). Each STE format has its own hardware field numbering and its own
//! 8-byte action encoding:
//!
//! 1. [`conv_sw_field`] maps a user field id to the format's hardware field and the bit
//!    range the user field occupies in it ([`ModifyField`]);
//! 2. [`plan`] checks a parsed [`ModifyAction`] against those ranges and yields the
//!    encoder call ([`HwModifyOp`]);
//! 3. [`encode`] (or the raw [`set_action_set`], [`set_action_add`], [`set_action_copy`])
//!    writes the hardware action word.
//!
//! [`sw_to_hw`] does all three from the 8 PRM bytes. [`decap_l3_list`] builds the action
//! list that replaces the outer L2/L3 headers by a new L2 header.

mod v0;
mod v1;
mod v2;

use crate::bits::{get, set};
use crate::prm::{add_action_in, copy_action_in, set_action_in};
use crate::ste::SteFormat;

/// The `MLX5_ACTION_IN_FIELD_OUT_*` ids: the packet and metadata fields a user modify
/// action can name.
pub mod sw_field {
    /// Source MAC, bits 47..16.
    pub const SMAC_47_16: u16 = 0x01;
    /// Source MAC, bits 15..0.
    pub const SMAC_15_0: u16 = 0x02;
    /// Ethertype.
    pub const ETHERTYPE: u16 = 0x03;
    /// Destination MAC, bits 47..16.
    pub const DMAC_47_16: u16 = 0x04;
    /// Destination MAC, bits 15..0.
    pub const DMAC_15_0: u16 = 0x05;
    /// IP DSCP (6 bits).
    pub const IP_DSCP: u16 = 0x06;
    /// TCP flags (9 bits).
    pub const TCP_FLAGS: u16 = 0x07;
    /// TCP source port.
    pub const TCP_SPORT: u16 = 0x08;
    /// TCP destination port.
    pub const TCP_DPORT: u16 = 0x09;
    /// IPv4 TTL.
    pub const IP_TTL: u16 = 0x0a;
    /// UDP source port.
    pub const UDP_SPORT: u16 = 0x0b;
    /// UDP destination port.
    pub const UDP_DPORT: u16 = 0x0c;
    /// Source IPv6, bits 127..96.
    pub const SIPV6_127_96: u16 = 0x0d;
    /// Source IPv6, bits 95..64.
    pub const SIPV6_95_64: u16 = 0x0e;
    /// Source IPv6, bits 63..32.
    pub const SIPV6_63_32: u16 = 0x0f;
    /// Source IPv6, bits 31..0.
    pub const SIPV6_31_0: u16 = 0x10;
    /// Destination IPv6, bits 127..96.
    pub const DIPV6_127_96: u16 = 0x11;
    /// Destination IPv6, bits 95..64.
    pub const DIPV6_95_64: u16 = 0x12;
    /// Destination IPv6, bits 63..32.
    pub const DIPV6_63_32: u16 = 0x13;
    /// Destination IPv6, bits 31..0.
    pub const DIPV6_31_0: u16 = 0x14;
    /// Source IPv4.
    pub const SIPV4: u16 = 0x15;
    /// Destination IPv4.
    pub const DIPV4: u16 = 0x16;
    /// First VLAN id.
    pub const FIRST_VID: u16 = 0x17;
    /// IPv6 hop limit.
    pub const IPV6_HOPLIMIT: u16 = 0x47;
    /// Metadata register A.
    pub const METADATA_REGA: u16 = 0x49;
    /// Metadata register B.
    pub const METADATA_REGB: u16 = 0x50;
    /// Metadata register C0.
    pub const METADATA_REGC_0: u16 = 0x51;
    /// Metadata register C1.
    pub const METADATA_REGC_1: u16 = 0x52;
    /// Metadata register C2.
    pub const METADATA_REGC_2: u16 = 0x53;
    /// Metadata register C3.
    pub const METADATA_REGC_3: u16 = 0x54;
    /// Metadata register C4.
    pub const METADATA_REGC_4: u16 = 0x55;
    /// Metadata register C5.
    pub const METADATA_REGC_5: u16 = 0x56;
    /// TCP sequence number.
    pub const TCP_SEQ_NUM: u16 = 0x59;
    /// TCP acknowledgement number.
    pub const TCP_ACK_NUM: u16 = 0x5b;
    /// GTP-U TEID (reached through a flex parser).
    pub const GTPU_TEID: u16 = 0x6e;
    /// IP ECN (2 bits).
    pub const IP_ECN: u16 = 0x73;
}

/// The `action_type` values of the PRM modify actions.
pub mod action_type {
    /// `set_action_in`: write a value into a field.
    pub const SET: u8 = 0x1;
    /// `add_action_in`: add a value to a field.
    pub const ADD: u8 = 0x2;
    /// `copy_action_in`: copy bits of one field into another.
    pub const COPY: u8 = 0x3;
}

/// `flex_protocols` capability bit: the GTP-U TEID is parsed by a flex parser.
pub const FLEX_PARSER_GTPU_TEID_ENABLED: u32 = 1 << 19;

/// Size of one hardware modify action (all formats).
pub const HW_ACTION_SIZE: usize = 8;

/// Length of an untagged Ethernet header, the L2 header of an L3 decapsulation.
pub const L2_HDR_LEN: usize = 14;
/// Length of an Ethernet header with one VLAN tag.
pub const L2_HDR_LEN_WITH_VLAN: usize = 18;

/// The L3 protocol a modified field belongs to; a rule modifying it must match that
/// protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum L3Type {
    /// Not an L3 field.
    #[default]
    None = 0,
    /// An IPv4 field.
    Ipv4 = 1,
    /// An IPv6 field.
    Ipv6 = 2,
}

/// The L4 protocol a modified field belongs to; a rule modifying it must match that
/// protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum L4Type {
    /// Not an L4 field (or one shared by TCP and UDP).
    #[default]
    None = 0,
    /// A TCP field.
    Tcp = 1,
    /// A UDP field.
    Udp = 2,
}

/// Where a user field lives in a format's hardware: hardware field `hw_field`, bits
/// `start..=end` of it (bit 0 is the least significant), and the protocols it requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModifyField {
    /// The format's hardware field number (v0 field code, v1/v2 dword offset).
    pub hw_field: u8,
    /// First bit of the user field inside the hardware field.
    pub start: u8,
    /// Last bit (inclusive) of the user field inside the hardware field.
    pub end: u8,
    /// The L3 protocol the field requires.
    pub l3: L3Type,
    /// The L4 protocol the field requires.
    pub l4: L4Type,
    /// The field is reached through a flex parser chosen by the device capabilities. Set
    /// only on table entries; fields returned by [`conv_sw_field`] are resolved.
    pub req_flex: bool,
}

impl ModifyField {
    /// A field with no protocol requirement.
    pub const fn new(hw_field: u8, start: u8, end: u8) -> Self {
        ModifyField {
            hw_field,
            start,
            end,
            l3: L3Type::None,
            l4: L4Type::None,
            req_flex: false,
        }
    }

    /// The same field, requiring L3 protocol `l3`.
    pub const fn with_l3(self, l3: L3Type) -> Self {
        ModifyField { l3, ..self }
    }

    /// The same field, requiring L4 protocol `l4`.
    pub const fn with_l4(self, l4: L4Type) -> Self {
        ModifyField { l4, ..self }
    }

    /// A placeholder for a field reached through a flex parser: bits `start..=end` of
    /// whichever flex-parser field the capabilities name.
    pub const fn flex(start: u8, end: u8) -> Self {
        ModifyField {
            req_flex: true,
            ..ModifyField::new(0, start, end)
        }
    }

    /// Width of the user field in bits (`end - start + 1`), as rdma-core computes it in a
    /// byte (wrapping, although no table entry makes it wrap).
    pub const fn width(&self) -> u8 {
        self.end.wrapping_sub(self.start).wrapping_add(1)
    }
}

/// The device capabilities the field conversion depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ModifyCaps {
    /// `flex_parser_header_modify`: flex-parser fields can be modified.
    pub flex_parser_header_modify: bool,
    /// `flex_protocols` has [`FLEX_PARSER_GTPU_TEID_ENABLED`].
    pub gtpu_teid_enabled: bool,
    /// `flex_parser_id_gtpu_teid`: the flex parser holding the GTP-U TEID.
    pub flex_parser_id_gtpu_teid: u8,
}

impl ModifyCaps {
    /// The capabilities from the raw `flex_parser_header_modify` and `flex_protocols`
    /// capability values.
    pub fn from_device(
        flex_parser_header_modify: bool,
        flex_protocols: u32,
        flex_parser_id_gtpu_teid: u8,
    ) -> Self {
        ModifyCaps {
            flex_parser_header_modify,
            gtpu_teid_enabled: flex_protocols & FLEX_PARSER_GTPU_TEID_ENABLED != 0,
            flex_parser_id_gtpu_teid,
        }
    }
}

/// Why a modify action or action list cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModifyError {
    /// A set or add action names a field this format (with these capabilities) cannot
    /// modify.
    #[error("invalid field {field:#x}")]
    InvalidField {
        /// The user field id.
        field: u16,
    },
    /// A copy action names a source or destination field this format cannot modify.
    #[error("invalid src/dst field (src {src_field:#x}, dst {dst_field:#x})")]
    InvalidCopyField {
        /// The source field id.
        src_field: u16,
        /// The destination field id.
        dst_field: u16,
    },
    /// A set action's offset plus length runs past the end of its field.
    #[error("length + offset exceeds field: {offset} + {length} > {width} bits")]
    LengthOffsetExceedsField {
        /// Bit offset inside the field.
        offset: u8,
        /// Length in bits (0 already read as 32).
        length: u8,
        /// Width of the field.
        width: u8,
    },
    /// A copy action's length plus source or destination offset runs past the end of
    /// that field.
    #[error("length exceeds field")]
    LengthExceedsField {
        /// Length in bits (0 already read as 32).
        length: u8,
        /// Source bit offset.
        src_offset: u8,
        /// Width of the source field.
        src_width: u8,
        /// Destination bit offset.
        dst_offset: u8,
        /// Width of the destination field.
        dst_width: u8,
    },
    /// The action type is not set, add or copy.
    #[error("unknown modify action type {0}")]
    UnknownActionType(u8),
    /// The new L2 header of an L3 decapsulation is neither 14 nor 18 bytes.
    #[error("L2 header of {0} bytes: only 14 (untagged) or 18 (one VLAN) are supported")]
    BadL2HeaderLength(usize),
    /// The action buffer cannot hold the decapsulation action list.
    #[error("{format} needs room for {needed} modify actions, buffer holds {available}")]
    ActionBufferTooSmall {
        /// The STE format (rdma-core reports this as ENOMEM on v0, EINVAL on v1/v2).
        format: SteFormat,
        /// Actions the format requires room for.
        needed: usize,
        /// Actions that fit.
        available: usize,
    },
}

impl ModifyError {
    /// The errno rdma-core returns for this error.
    pub fn errno(&self) -> i32 {
        const EINVAL: i32 = 22;
        const ENOMEM: i32 = 12;
        const EOPNOTSUPP: i32 = 95;
        match self {
            ModifyError::UnknownActionType(_) => EOPNOTSUPP,
            ModifyError::ActionBufferTooSmall {
                format: SteFormat::V0,
                ..
            } => ENOMEM,
            _ => EINVAL,
        }
    }
}

/// A user modify action, as parsed from its 8-byte PRM form.
///
/// Lengths keep the PRM encoding: 0 means 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModifyAction {
    /// `set_action_in`: write the low `length` bits of `data` at bit `offset` of `field`.
    Set {
        /// The user field id.
        field: u16,
        /// Bit offset inside the field.
        offset: u8,
        /// Bits to write (0 = 32).
        length: u8,
        /// The value.
        data: u32,
    },
    /// `add_action_in`: add `data` to the whole of `field`.
    Add {
        /// The user field id.
        field: u16,
        /// The addend.
        data: u32,
    },
    /// `copy_action_in`: copy `length` bits from `src_offset` of `src_field` to
    /// `dst_offset` of `dst_field`.
    Copy {
        /// The source field id.
        src_field: u16,
        /// Bit offset inside the source field.
        src_offset: u8,
        /// The destination field id.
        dst_field: u16,
        /// Bit offset inside the destination field.
        dst_offset: u8,
        /// Bits to copy (0 = 32).
        length: u8,
    },
}

impl ModifyAction {
    /// Parses the 8-byte big-endian PRM form; fails only on an unknown action type.
    pub fn parse(sw_action: &[u8; 8]) -> Result<Self, ModifyError> {
        let small = |f| get(sw_action, f) as u8;
        let field = |f| get(sw_action, f) as u16;
        match get(sw_action, set_action_in::ACTION_TYPE) as u8 {
            action_type::SET => Ok(ModifyAction::Set {
                field: field(set_action_in::FIELD),
                offset: small(set_action_in::OFFSET),
                length: small(set_action_in::LENGTH),
                data: get(sw_action, set_action_in::DATA) as u32,
            }),
            action_type::ADD => Ok(ModifyAction::Add {
                field: field(add_action_in::FIELD),
                data: get(sw_action, add_action_in::DATA) as u32,
            }),
            action_type::COPY => Ok(ModifyAction::Copy {
                src_field: field(copy_action_in::SRC_FIELD),
                src_offset: small(copy_action_in::SRC_OFFSET),
                dst_field: field(copy_action_in::DST_FIELD),
                dst_offset: small(copy_action_in::DST_OFFSET),
                length: small(copy_action_in::LENGTH),
            }),
            other => Err(ModifyError::UnknownActionType(other)),
        }
    }

    /// The 8-byte PRM form (values wider than their PRM field are truncated).
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        match *self {
            ModifyAction::Set {
                field,
                offset,
                length,
                data,
            } => {
                set(&mut b, set_action_in::ACTION_TYPE, action_type::SET.into());
                set(&mut b, set_action_in::FIELD, field.into());
                set(&mut b, set_action_in::OFFSET, offset.into());
                set(&mut b, set_action_in::LENGTH, length.into());
                set(&mut b, set_action_in::DATA, data.into());
            }
            ModifyAction::Add { field, data } => {
                set(&mut b, add_action_in::ACTION_TYPE, action_type::ADD.into());
                set(&mut b, add_action_in::FIELD, field.into());
                set(&mut b, add_action_in::DATA, data.into());
            }
            ModifyAction::Copy {
                src_field,
                src_offset,
                dst_field,
                dst_offset,
                length,
            } => {
                set(
                    &mut b,
                    copy_action_in::ACTION_TYPE,
                    action_type::COPY.into(),
                );
                set(&mut b, copy_action_in::SRC_FIELD, src_field.into());
                set(&mut b, copy_action_in::SRC_OFFSET, src_offset.into());
                set(&mut b, copy_action_in::DST_FIELD, dst_field.into());
                set(&mut b, copy_action_in::DST_OFFSET, dst_offset.into());
                set(&mut b, copy_action_in::LENGTH, length.into());
            }
        }
        b
    }
}

/// One call of a format's hardware action encoder: the arguments rdma-core passes to
/// `set_action_set`, `set_action_add` or `set_action_copy`.
///
/// Shifters are bit positions inside the hardware field (before any per-format
/// adjustment); lengths are in bits, 32 written as 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HwModifyOp {
    /// Write `length` bits of `data` at bit `shifter` of `hw_field`.
    Set {
        /// Hardware field.
        hw_field: u8,
        /// Bit position.
        shifter: u8,
        /// Bits written.
        length: u8,
        /// The value.
        data: u32,
    },
    /// Add `data` to the `length` bits at bit `shifter` of `hw_field`.
    Add {
        /// Hardware field.
        hw_field: u8,
        /// Bit position.
        shifter: u8,
        /// Bits affected.
        length: u8,
        /// The addend.
        data: u32,
    },
    /// Copy `dst_len` bits from bit `src_shifter` of `src_hw_field` to bit `dst_shifter`
    /// of `dst_hw_field`.
    Copy {
        /// Destination hardware field.
        dst_hw_field: u8,
        /// Destination bit position.
        dst_shifter: u8,
        /// Bits copied.
        dst_len: u8,
        /// Source hardware field.
        src_hw_field: u8,
        /// Source bit position.
        src_shifter: u8,
    },
}

/// A user action converted for one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvertedAction {
    /// The encoder call.
    pub op: HwModifyOp,
    /// The hardware action word.
    pub hw_action: [u8; HW_ACTION_SIZE],
    /// The field written (its L3/L4 requirements constrain the rule).
    pub dst: ModifyField,
    /// The field read, for a copy.
    pub src: Option<ModifyField>,
}

/// The per-format field tables.
struct FieldTables {
    /// User field id → hardware field, sparse; ids not listed cannot be modified.
    fields: &'static [(u16, ModifyField)],
    /// Flex-parser id → hardware field, for entries marked [`ModifyField::req_flex`].
    flex_fields: &'static [ModifyField],
}

fn tables(format: SteFormat) -> &'static FieldTables {
    match format {
        SteFormat::V0 => &v0::TABLES,
        SteFormat::V1 => &v1::TABLES,
        SteFormat::V2 => &v2::TABLES,
    }
}

/// Maps user field `field` (a [`sw_field`] id) to where it lives in `format`'s hardware
/// (`dr_ste_conv_modify_hdr_sw_field`); `None` when the format, or the device
/// capabilities, do not allow modifying it.
pub fn conv_sw_field(format: SteFormat, caps: &ModifyCaps, field: u16) -> Option<ModifyField> {
    let t = tables(format);
    let entry = t
        .fields
        .iter()
        .find(|(id, _)| *id == field)
        .map(|(_, f)| *f)?;
    if !entry.req_flex {
        return Some(entry);
    }
    // A flex entry is resolved to the flex-parser field the firmware assigned; GTP-U
    // TEID is the only protocol this is defined for.
    if !caps.flex_parser_header_modify {
        return None;
    }
    let flex_id = match field {
        sw_field::GTPU_TEID if caps.gtpu_teid_enabled => caps.flex_parser_id_gtpu_teid,
        _ => return None,
    };
    t.flex_fields.get(usize::from(flex_id)).copied()
}

/// Checks `action` against `format`'s fields and yields the encoder call, with the fields
/// written and read (`dr_action_modify_sw_to_hw_set/add/copy`).
pub fn plan(
    format: SteFormat,
    caps: &ModifyCaps,
    action: &ModifyAction,
) -> Result<(HwModifyOp, ModifyField, Option<ModifyField>), ModifyError> {
    // A PRM length of 0 stands for 32 bits.
    let full = |length: u8| if length == 0 { 32 } else { length };
    match *action {
        ModifyAction::Set {
            field,
            offset,
            length,
            data,
        } => {
            let dst =
                conv_sw_field(format, caps, field).ok_or(ModifyError::InvalidField { field })?;
            let length = full(length);
            let width = dst.width();
            if u16::from(length) + u16::from(offset) > u16::from(width) {
                return Err(ModifyError::LengthOffsetExceedsField {
                    offset,
                    length,
                    width,
                });
            }
            let op = HwModifyOp::Set {
                hw_field: dst.hw_field,
                shifter: dst.start.wrapping_add(offset),
                length,
                data,
            };
            Ok((op, dst, None))
        }
        ModifyAction::Add { field, data } => {
            // Add always covers the whole field.
            let dst =
                conv_sw_field(format, caps, field).ok_or(ModifyError::InvalidField { field })?;
            let op = HwModifyOp::Add {
                hw_field: dst.hw_field,
                shifter: dst.start,
                length: dst.width(),
                data,
            };
            Ok((op, dst, None))
        }
        ModifyAction::Copy {
            src_field,
            src_offset,
            dst_field,
            dst_offset,
            length,
        } => {
            let src = conv_sw_field(format, caps, src_field);
            let dst = conv_sw_field(format, caps, dst_field);
            let (Some(src), Some(dst)) = (src, dst) else {
                return Err(ModifyError::InvalidCopyField {
                    src_field,
                    dst_field,
                });
            };
            let length = full(length);
            let fits = |offset: u8, f: &ModifyField| {
                u16::from(length) + u16::from(offset) <= u16::from(f.width())
            };
            if !fits(src_offset, &src) || !fits(dst_offset, &dst) {
                return Err(ModifyError::LengthExceedsField {
                    length,
                    src_offset,
                    src_width: src.width(),
                    dst_offset,
                    dst_width: dst.width(),
                });
            }
            let op = HwModifyOp::Copy {
                dst_hw_field: dst.hw_field,
                dst_shifter: dst.start.wrapping_add(dst_offset),
                dst_len: length,
                src_hw_field: src.hw_field,
                src_shifter: src.start.wrapping_add(src_offset),
            };
            Ok((op, dst, Some(src)))
        }
    }
}

/// Converts a user modify action in its 8-byte PRM form into `format`'s hardware action
/// (`dr_action_modify_sw_to_hw`).
pub fn sw_to_hw(
    format: SteFormat,
    caps: &ModifyCaps,
    sw_action: &[u8; 8],
) -> Result<ConvertedAction, ModifyError> {
    let action = ModifyAction::parse(sw_action)?;
    let (op, dst, src) = plan(format, caps, &action)?;
    Ok(ConvertedAction {
        op,
        hw_action: encode(format, &op),
        dst,
        src,
    })
}

/// Encodes one encoder call into a fresh (zeroed) hardware action word.
pub fn encode(format: SteFormat, op: &HwModifyOp) -> [u8; HW_ACTION_SIZE] {
    let mut hw = [0u8; HW_ACTION_SIZE];
    match *op {
        HwModifyOp::Set {
            hw_field,
            shifter,
            length,
            data,
        } => set_action_set(format, &mut hw, hw_field, shifter, length, data),
        HwModifyOp::Add {
            hw_field,
            shifter,
            length,
            data,
        } => set_action_add(format, &mut hw, hw_field, shifter, length, data),
        HwModifyOp::Copy {
            dst_hw_field,
            dst_shifter,
            dst_len,
            src_hw_field,
            src_shifter,
        } => set_action_copy(
            format,
            &mut hw,
            dst_hw_field,
            dst_shifter,
            dst_len,
            src_hw_field,
            src_shifter,
        ),
    }
    hw
}

/// Writes a set action into `hw_action` (only its fields; other bits are kept).
pub fn set_action_set(
    format: SteFormat,
    hw_action: &mut [u8; HW_ACTION_SIZE],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    match format {
        SteFormat::V0 => v0::set_action_set(hw_action, hw_field, shifter, length, data),
        SteFormat::V1 | SteFormat::V2 => {
            v1::set_action_set(hw_action, hw_field, shifter, length, data)
        }
    }
}

/// Writes an add action into `hw_action` (only its fields; other bits are kept).
pub fn set_action_add(
    format: SteFormat,
    hw_action: &mut [u8; HW_ACTION_SIZE],
    hw_field: u8,
    shifter: u8,
    length: u8,
    data: u32,
) {
    match format {
        SteFormat::V0 => v0::set_action_add(hw_action, hw_field, shifter, length, data),
        SteFormat::V1 | SteFormat::V2 => {
            v1::set_action_add(hw_action, hw_field, shifter, length, data)
        }
    }
}

/// Writes a copy action into `hw_action` (only its fields; other bits are kept).
pub fn set_action_copy(
    format: SteFormat,
    hw_action: &mut [u8; HW_ACTION_SIZE],
    dst_hw_field: u8,
    dst_shifter: u8,
    dst_len: u8,
    src_hw_field: u8,
    src_shifter: u8,
) {
    match format {
        SteFormat::V0 => v0::set_action_copy(
            hw_action,
            dst_hw_field,
            dst_shifter,
            dst_len,
            src_hw_field,
            src_shifter,
        ),
        SteFormat::V1 | SteFormat::V2 => v1::set_action_copy(
            hw_action,
            dst_hw_field,
            dst_shifter,
            dst_len,
            src_hw_field,
            src_shifter,
        ),
    }
}

/// Writes the action list that, after an L3 decapsulation, puts `l2_header` (14 bytes, or
/// 18 with one VLAN tag) in front of the packet (`dr_ste_set_action_decap_l3_list`).
///
/// `hw_action_sz` is the size of the action buffer in bytes, as rdma-core is told it;
/// the buffer actually used is `out` cut to that size. Only the returned number of
/// 8-byte actions is written; the rest of `out` is left as it was.
pub fn decap_l3_list(
    format: SteFormat,
    l2_header: &[u8],
    hw_action_sz: usize,
    out: &mut [u8],
) -> Result<usize, ModifyError> {
    if l2_header.len() != L2_HDR_LEN && l2_header.len() != L2_HDR_LEN_WITH_VLAN {
        return Err(ModifyError::BadL2HeaderLength(l2_header.len()));
    }
    let size = hw_action_sz.min(out.len());
    let available = size / HW_ACTION_SIZE;
    let needed = match format {
        SteFormat::V0 => v0::decap_l3_actions(l2_header.len()),
        SteFormat::V1 | SteFormat::V2 => v1::DECAP_L3_ACTION_ROOM,
    };
    if available < needed {
        return Err(ModifyError::ActionBufferTooSmall {
            format,
            needed,
            available,
        });
    }
    let out = &mut out[..size];
    let used = match format {
        SteFormat::V0 => v0::decap_l3_list(l2_header, out),
        SteFormat::V1 | SteFormat::V2 => v1::decap_l3_list(l2_header, out),
    };
    Ok(used)
}

/// The fields of the new L2 header of an L3 decapsulation, by byte range (`l2_hdr`).
mod l2_hdr {
    use std::ops::Range;

    /// Destination MAC, bits 47..16.
    pub const DMAC_47_16: Range<usize> = 0..4;
    /// Destination MAC, bits 15..0.
    pub const DMAC_15_0: Range<usize> = 4..6;
    /// Source MAC, bits 47..16.
    pub const SMAC_47_16: Range<usize> = 6..10;
    /// Source MAC, bits 15..0.
    pub const SMAC_15_0: Range<usize> = 10..12;
    /// Ethertype, or the VLAN TPID of a tagged header.
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// The VLAN TCI of a tagged header (rdma-core's layout calls it `vlan_type`).
    pub const VLAN_TCI: Range<usize> = 14..16;
    /// The inner ethertype of a tagged header (rdma-core's layout calls it `vlan`).
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;

    /// The big-endian value of the bytes `range` of `hdr`.
    pub fn value(hdr: &[u8], range: Range<usize>) -> u32 {
        hdr[range]
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prm_action_round_trips() {
        let a = ModifyAction::Copy {
            src_field: sw_field::METADATA_REGC_0,
            src_offset: 3,
            dst_field: sw_field::TCP_SPORT,
            dst_offset: 1,
            length: 7,
        };
        assert_eq!(ModifyAction::parse(&a.to_bytes()), Ok(a));
    }

    #[test]
    fn unknown_type_is_rejected() {
        let err = sw_to_hw(
            SteFormat::V1,
            &ModifyCaps::default(),
            &[0x40, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(err, Err(ModifyError::UnknownActionType(4)));
    }

    #[test]
    fn gtpu_teid_needs_caps() {
        let none = ModifyCaps::default();
        assert_eq!(
            conv_sw_field(SteFormat::V1, &none, sw_field::GTPU_TEID),
            None
        );
        let caps = ModifyCaps::from_device(true, FLEX_PARSER_GTPU_TEID_ENABLED, 3);
        let f = conv_sw_field(SteFormat::V1, &caps, sw_field::GTPU_TEID).unwrap();
        assert_eq!((f.hw_field, f.start, f.end), (0x86, 0, 31));
        assert_eq!(
            conv_sw_field(SteFormat::V0, &caps, sw_field::GTPU_TEID),
            None
        );
    }

    #[test]
    fn decap_l3_never_panics_on_short_buffers() {
        let hdr = [0u8; 18];
        for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
            for len in 0..80 {
                let mut out = vec![0u8; len];
                let _ = decap_l3_list(format, &hdr, 1024, &mut out);
            }
        }
    }
}
