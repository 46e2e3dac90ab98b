//! Lookup keys: what the NIC hashes and compares at each STE.
//!
//! An STE names a lookup type. The hardware builds that lookup's 16-byte key from the
//! packet, hashes the key (under the table's byte mask) to pick a slot, and compares it
//! with each STE's tag under the STE's bit mask. [`lookup_key`] builds the key from the
//! packet's fields, from the PRM layouts of each lookup type.
//!
//! The packet is given as a [`MatchParam`]: every header field the parser found at its
//! `fte_match_param` position (outer and inner headers, tunnel fields in misc, misc3 and
//! misc5, MPLS and metadata registers in misc2, programmable flex-parser samples in
//! misc4 as (parser id, value) pairs, the source vport in `misc.source_port`), every
//! other field zero. The fields must describe one packet that can exist: a first or
//! second VLAN is a C-VLAN or an S-VLAN; the L4 ports are in the TCP or the UDP fields
//! as `ip_protocol` says (the STE layouts have one port pair, chosen by the protocol);
//! at most one tunnel is present, and raw tunnel header words, when given, agree with
//! the decoded tunnel fields. Values the parser computes rather than copies (the L3 type
//! from the IP version, VLAN qualifiers, the flex-parser samples of protocol fields the
//! device assigned to parsers, the source gvmi) are derived here.
//!
//! This is written independently of `ste_builder::builder`, which encodes rule values
//! into tags the way rdma-core does; the two meet only in tests, where the key of a
//! packet under a builder's bit mask must equal the builder's tag of the same fields.
//!
//! Not modelled: key fields no match-parameter field describes (L4 type, encapsulation
//! type, the `*_ok` bits, port, QP type, TCP SYN as its own bit, IPv4 checksum, total
//! length, ...). They read as zero; no classic rdma-core lookup masks them.

mod v0;
mod v1;
mod view;

use ste_builder::bits::{self, BitField};
use ste_builder::{Caps, MatchParam, SteFormat};

/// Size of a classic lookup key (and of an STE's tag and bit mask).
pub const KEY_SIZE: usize = 16;

/// A classic lookup key.
pub type Key = [u8; KEY_SIZE];

/// Why no key can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The lookup type is not a classic lookup of this format that the model knows:
    /// unknown numbers, definer ("match") lookups, InfiniBand lookups.
    #[error("{format} lookup type {lu_type:#06x} is not supported")]
    UnsupportedLookupType {
        /// The STE format.
        format: SteFormat,
        /// The lookup type.
        lu_type: u16,
    },
}

/// The key of lookup `lu_type` of STE format `format` for a packet with header fields
/// `packet`. `caps` supplies what the device knows beyond the packet: the flex-parser
/// assignment and the vport table (for the source gvmi).
pub fn lookup_key(
    format: SteFormat,
    lu_type: u16,
    packet: &MatchParam,
    caps: &Caps,
) -> Result<Key, KeyError> {
    let key = match format {
        SteFormat::V0 => v0::key(lu_type, packet, caps),
        SteFormat::V1 | SteFormat::V2 => v1::key(lu_type, packet, caps),
    };
    key.ok_or(KeyError::UnsupportedLookupType { format, lu_type })
}

/// A key under construction.
#[derive(Default)]
struct KeyBuf([u8; KEY_SIZE]);

impl KeyBuf {
    fn set(&mut self, field: BitField, value: u64) {
        bits::set(&mut self.0, field, value);
    }
}

/// The metadata-register lookups, whose layouts v0 and v1 share: general purpose
/// (`metadata_reg_a`) and steering registers 0 (`reg_c_0..3`) and 1 (`reg_c_4..7`).
#[derive(Debug, Clone, Copy)]
enum RegisterLookup {
    GeneralPurpose,
    Registers0,
    Registers1,
}

impl RegisterLookup {
    fn key(self, k: &mut KeyBuf, p: &MatchParam) {
        use ste_builder::prm::{
            ste_general_purpose as gp, ste_register_0 as reg0, ste_register_1 as reg1,
        };
        let (fields, first) = match self {
            RegisterLookup::GeneralPurpose => {
                return k.set(gp::GENERAL_PURPOSE_LOOKUP_FIELD, view::reg_a(p));
            }
            RegisterLookup::Registers0 => (
                [
                    reg0::REGISTER_0_H,
                    reg0::REGISTER_0_L,
                    reg0::REGISTER_1_H,
                    reg0::REGISTER_1_L,
                ],
                0,
            ),
            RegisterLookup::Registers1 => (
                [
                    reg1::REGISTER_2_H,
                    reg1::REGISTER_2_L,
                    reg1::REGISTER_3_H,
                    reg1::REGISTER_3_L,
                ],
                4,
            ),
        };
        for (i, field) in fields.into_iter().enumerate() {
            k.set(field, view::reg_c(p, first + i));
        }
    }
}

/// The nine TCP flag bits (NS … FIN) of a layout, as one field starting at its `tcp_ns`
/// bit: they are consecutive and in the order of `tcp_flags`.
fn tcp_flags_field(tcp_ns: BitField) -> BitField {
    BitField::new(tcp_ns.offset, 9)
}

#[cfg(test)]
mod tests;
