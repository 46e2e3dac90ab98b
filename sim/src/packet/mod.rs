//! Packets: wire bytes plus the metadata steering sees, parsed into the fields the
//! hardware matches on, built from a match value, and edited by steering actions.
//!
//! - [`wire`]: header layouts and protocol numbers.
//! - [`parse`]: bytes → [`Parsed`]: every field the NIC extracts, written at its place in
//!   an `fte_match_param` ([`MatchParam`]), plus where each header is.
//! - [`build`]: a match value → a real packet whose parse reproduces the value.
//! - [`modify`]: modify-header set / add / copy on the PRM fields, with the checksum
//!   updates the hardware makes.
//! - [`reformat`]: VLAN push / pop, decapsulation and encapsulation.
//! - [`flex`]: the dwords the flex parsers sample, for flex-parser lookups.
//! - [`checksum`]: the Internet checksum and its incremental update.
//!
//! Parsing never fails. Like the hardware, the parser reads headers as far as the packet
//! goes: a header whose fixed part is cut off, or that is malformed, ends the parse there,
//! and the fields of every header it did not read stay zero ([`Parsed::stop`] says where
//! and why). The `l3_ok` / `l4_ok` / checksum-ok bits tell a consumer whether the headers
//! that were read are sound.

pub mod build;
pub mod checksum;
pub mod flex;
pub mod modify;
pub mod parse;
pub mod reformat;
mod side;
pub mod wire;

pub use build::{build_from_match, build_from_match_lossy, BuildError, Dropped};
pub use flex::FlexParserSample;
pub use modify::{EditError, HdrField};
pub use parse::{
    Headers, IpVersion, L4Kind, Layer, Parsed, Stop, StopReason, Tunnel, TunnelKind, VlanTag, L2,
    L3, L4,
};
pub use ste_builder::MatchParam;

/// The side of the NIC a packet is steered on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Side {
    /// Received (NIC RX, or the e-switch's RX side: from the wire or a vport's send
    /// queue towards the e-switch).
    #[default]
    Rx,
    /// Transmitted (NIC TX, or the e-switch's TX side).
    Tx,
}

/// What steering knows about a packet besides its bytes.
///
/// The source fields are set by whoever injects the packet (the wire, or a vport's send
/// queue); the registers and the flow tag start at zero / none and are changed by
/// actions. Registers are 32 bits; `reg_c` holds C0..C7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// RX or TX.
    pub side: Side,
    /// The vport the packet came from (`misc.source_port`; 0xffff is the uplink).
    pub source_vport: u16,
    /// The gvmi of that vport: what the source-gvmi/QP lookup compares.
    pub source_gvmi: u16,
    /// The send queue the packet was sent from (`misc.source_sqn`, 24 bits; 0 when it
    /// came from the wire).
    pub source_qp: u32,
    /// The vhca port (`misc.source_vhca_port`, 4 bits) of dual-port devices.
    pub source_vhca_port: u8,
    /// The vhca id of the e-switch owner of the source vport
    /// (`misc.source_eswitch_owner_vhca_id`).
    pub source_eswitch_owner_vhca_id: u16,
    /// Metadata register A.
    pub reg_a: u32,
    /// Metadata register B (modifiable, not matchable).
    pub reg_b: u32,
    /// Metadata registers C0..C7.
    pub reg_c: [u32; 8],
    /// The flow tag set by a flow-tag action, if any (24 bits).
    pub flow_tag: Option<u32>,
}

impl Metadata {
    /// Metadata of a packet on `side` with every other field zero.
    pub fn new(side: Side) -> Self {
        Metadata {
            side,
            ..Metadata::default()
        }
    }
}

/// A packet: its bytes from the first byte of the Ethernet header (no FCS), and its
/// metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Wire bytes.
    pub bytes: Vec<u8>,
    /// Metadata.
    pub meta: Metadata,
}

impl Packet {
    /// A packet of `bytes` with metadata `meta`.
    pub fn new(bytes: Vec<u8>, meta: Metadata) -> Self {
        Packet { bytes, meta }
    }

    /// Parses the packet: fields and header positions. Never fails (see the module
    /// documentation).
    pub fn parse(&self) -> Parsed {
        parse::parse(&self.bytes, &self.meta)
    }

    /// The fields the hardware extracts, as a match parameter.
    pub fn fields(&self) -> MatchParam {
        self.parse().fields
    }

    /// Length in bytes (what byte counters count).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests;
