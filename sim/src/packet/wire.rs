//! Wire layouts of the headers the parser knows, and the protocol numbers that link them.
//!
//! Each header is a module of [`BitField`]s relative to the header's first byte, in the
//! PRM numbering the rest of the workspace uses (bit 0 is the most significant bit of byte
//! 0), so that [`ste_builder::bits::get`] and [`ste_builder::bits::set`] read and write
//! packet bytes exactly as they read and write match parameters. Parsing, building and
//! editing all go through these constants: one place says where a field is.
//!
//! A VLAN tag is modelled as etherparse models it: the 4 bytes after the TPID, that is
//! the TCI and the ethertype that follows; the TPID itself is the preceding ethertype.

use ste_builder::bits::BitField;

const fn bf(offset: usize, width: usize) -> BitField {
    BitField::new(offset, width)
}

/// Ethernet II header.
pub mod eth {
    use super::{bf, BitField};
    /// Header length.
    pub const LEN: usize = 14;
    /// Destination MAC, bits 47..16.
    pub const DMAC_47_16: BitField = bf(0, 32);
    /// Destination MAC, bits 15..0.
    pub const DMAC_15_0: BitField = bf(32, 16);
    /// Source MAC, bits 47..16.
    pub const SMAC_47_16: BitField = bf(48, 32);
    /// Source MAC, bits 15..0.
    pub const SMAC_15_0: BitField = bf(80, 16);
    /// Ethertype (or the TPID of a first VLAN tag).
    pub const ETHERTYPE: BitField = bf(96, 16);
    /// Byte offset of the ethertype: where a pushed VLAN tag goes.
    pub const ETHERTYPE_OFFSET: usize = 12;
}

/// One 802.1Q / 802.1ad tag after its TPID: TCI and the next ethertype.
pub mod vlan {
    use super::{bf, BitField};
    /// Length of the tag after its TPID (and of a whole tag, TPID included).
    pub const LEN: usize = 4;
    /// Priority code point.
    pub const PRIO: BitField = bf(0, 3);
    /// Drop-eligible indicator (CFI).
    pub const CFI: BitField = bf(3, 1);
    /// VLAN id.
    pub const VID: BitField = bf(4, 12);
    /// The whole tag control information.
    pub const TCI: BitField = bf(0, 16);
    /// The ethertype that follows the tag.
    pub const ETHERTYPE: BitField = bf(16, 16);
}

/// IPv4 header.
pub mod ipv4 {
    use super::{bf, BitField};
    /// Length without options.
    pub const MIN_LEN: usize = 20;
    /// Version (4).
    pub const VERSION: BitField = bf(0, 4);
    /// Header length in 32-bit words.
    pub const IHL: BitField = bf(4, 4);
    /// DSCP.
    pub const DSCP: BitField = bf(8, 6);
    /// ECN.
    pub const ECN: BitField = bf(14, 2);
    /// Total length of header and payload.
    pub const TOTAL_LEN: BitField = bf(16, 16);
    /// Identification.
    pub const IDENTIFICATION: BitField = bf(32, 16);
    /// Don't fragment.
    pub const DF: BitField = bf(49, 1);
    /// More fragments.
    pub const MF: BitField = bf(50, 1);
    /// Fragment offset in 8-byte units.
    pub const FRAG_OFFSET: BitField = bf(51, 13);
    /// Time to live.
    pub const TTL: BitField = bf(64, 8);
    /// Protocol of the payload.
    pub const PROTOCOL: BitField = bf(72, 8);
    /// Header checksum.
    pub const CHECKSUM: BitField = bf(80, 16);
    /// Byte offset of the header checksum.
    pub const CHECKSUM_OFFSET: usize = 10;
    /// Source address.
    pub const SRC: BitField = bf(96, 32);
    /// Destination address.
    pub const DST: BitField = bf(128, 32);
    /// Byte range of source and destination address (the pseudo-header part).
    pub const ADDRS: core::ops::Range<usize> = 12..20;
}

/// IPv6 fixed header.
pub mod ipv6 {
    use super::{bf, BitField};
    /// Length of the fixed header.
    pub const LEN: usize = 40;
    /// Version (6).
    pub const VERSION: BitField = bf(0, 4);
    /// DSCP (upper six bits of the traffic class).
    pub const DSCP: BitField = bf(4, 6);
    /// ECN (lower two bits of the traffic class).
    pub const ECN: BitField = bf(10, 2);
    /// Flow label.
    pub const FLOW_LABEL: BitField = bf(12, 20);
    /// Length of everything after the fixed header.
    pub const PAYLOAD_LEN: BitField = bf(32, 16);
    /// Next header.
    pub const NEXT_HEADER: BitField = bf(48, 8);
    /// Hop limit.
    pub const HOP_LIMIT: BitField = bf(56, 8);
    /// Source address word `i` (0 = bits 127..96).
    pub const fn src_word(i: usize) -> BitField {
        bf(64 + 32 * i, 32)
    }
    /// Destination address word `i` (0 = bits 127..96).
    pub const fn dst_word(i: usize) -> BitField {
        bf(192 + 32 * i, 32)
    }
    /// Byte range of source and destination address (the pseudo-header part).
    pub const ADDRS: core::ops::Range<usize> = 8..40;
}

/// IPv6 fragment extension header.
pub mod ipv6_frag {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 8;
    /// Next header.
    pub const NEXT_HEADER: BitField = bf(0, 8);
    /// Fragment offset in 8-byte units.
    pub const FRAG_OFFSET: BitField = bf(16, 13);
    /// More fragments.
    pub const M: BitField = bf(31, 1);
}

/// TCP header.
pub mod tcp {
    use super::{bf, BitField};
    /// Length without options.
    pub const MIN_LEN: usize = 20;
    /// Source port.
    pub const SPORT: BitField = bf(0, 16);
    /// Destination port.
    pub const DPORT: BitField = bf(16, 16);
    /// Sequence number.
    pub const SEQ: BitField = bf(32, 32);
    /// Acknowledgement number.
    pub const ACK: BitField = bf(64, 32);
    /// Header length in 32-bit words.
    pub const DATA_OFFSET: BitField = bf(96, 4);
    /// The nine flags NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN (FIN least significant),
    /// the same order as `tcp_flags` of the match parameter.
    pub const FLAGS: BitField = bf(103, 9);
    /// Receive window.
    pub const WINDOW: BitField = bf(112, 16);
    /// Checksum.
    pub const CHECKSUM: BitField = bf(128, 16);
    /// Byte offset of the checksum.
    pub const CHECKSUM_OFFSET: usize = 16;
}

/// UDP header.
pub mod udp {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 8;
    /// Source port.
    pub const SPORT: BitField = bf(0, 16);
    /// Destination port.
    pub const DPORT: BitField = bf(16, 16);
    /// Length of header and payload.
    pub const LENGTH: BitField = bf(32, 16);
    /// Checksum (0: none, IPv4 only).
    pub const CHECKSUM: BitField = bf(48, 16);
    /// Byte offset of the checksum.
    pub const CHECKSUM_OFFSET: usize = 6;
}

/// ICMP and ICMPv6 header (the same first 8 bytes).
pub mod icmp {
    use super::{bf, BitField};
    /// Length of the part the parser reads.
    pub const LEN: usize = 8;
    /// Type.
    pub const TYPE: BitField = bf(0, 8);
    /// Code.
    pub const CODE: BitField = bf(8, 8);
    /// Checksum.
    pub const CHECKSUM: BitField = bf(16, 16);
    /// Byte offset of the checksum.
    pub const CHECKSUM_OFFSET: usize = 2;
    /// The second dword ("rest of header", e.g. echo id and sequence).
    pub const DATA: BitField = bf(32, 32);
    /// The first dword (type, code, checksum), as a flex parser samples it.
    pub const DW0: BitField = bf(0, 32);
}

/// IPsec ESP header.
pub mod esp {
    use super::{bf, BitField};
    /// Length of the part the parser reads.
    pub const LEN: usize = 8;
    /// Security parameters index.
    pub const SPI: BitField = bf(0, 32);
}

/// VXLAN header (RFC 7348).
pub mod vxlan {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 8;
    /// Flags.
    pub const FLAGS: BitField = bf(0, 8);
    /// The I flag: the VNI is valid.
    pub const FLAG_I: u8 = 0x08;
    /// VXLAN network identifier.
    pub const VNI: BitField = bf(32, 24);
}

/// VXLAN-GPE header.
pub mod vxlan_gpe {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 8;
    /// Flags.
    pub const FLAGS: BitField = bf(0, 8);
    /// The flags a sender sets: I (VNI valid) and P (next protocol present).
    pub const FLAGS_I_P: u8 = 0x0c;
    /// Next protocol.
    pub const NEXT_PROTOCOL: BitField = bf(24, 8);
    /// VXLAN network identifier.
    pub const VNI: BitField = bf(32, 24);
    /// Next protocol: IPv4.
    pub const NP_IPV4: u8 = 1;
    /// Next protocol: IPv6.
    pub const NP_IPV6: u8 = 2;
    /// Next protocol: Ethernet.
    pub const NP_ETHERNET: u8 = 3;
}

/// GENEVE header (RFC 8926) and its TLV options.
pub mod geneve {
    use super::{bf, BitField};
    /// Length without options.
    pub const LEN: usize = 8;
    /// Version.
    pub const VERSION: BitField = bf(0, 2);
    /// Length of the options in 4-byte words.
    pub const OPT_LEN: BitField = bf(2, 6);
    /// OAM packet.
    pub const OAM: BitField = bf(8, 1);
    /// Critical options present.
    pub const CRITICAL: BitField = bf(9, 1);
    /// Protocol type of the payload (an ethertype).
    pub const PROTOCOL: BitField = bf(16, 16);
    /// Virtual network identifier.
    pub const VNI: BitField = bf(32, 24);
    /// A TLV option header: option class.
    pub const OPT_CLASS: BitField = bf(0, 16);
    /// A TLV option header: type.
    pub const OPT_TYPE: BitField = bf(16, 8);
    /// A TLV option header: length of the option data in 4-byte words.
    pub const OPT_DATA_LEN: BitField = bf(27, 5);
    /// Length of a TLV option header.
    pub const OPT_HDR_LEN: usize = 4;
}

/// GRE header (RFC 2784 / 2890) and its optional words.
pub mod gre {
    use super::{bf, BitField};
    /// Length without optional words.
    pub const LEN: usize = 4;
    /// Checksum present.
    pub const C: BitField = bf(0, 1);
    /// Key present.
    pub const K: BitField = bf(2, 1);
    /// Sequence number present.
    pub const S: BitField = bf(3, 1);
    /// Version (0 for the tunnels parsed here).
    pub const VERSION: BitField = bf(13, 3);
    /// Protocol type of the payload (an ethertype).
    pub const PROTOCOL: BitField = bf(16, 16);
    /// Length of each optional word (checksum+reserved, key, sequence number).
    pub const OPT_LEN: usize = 4;
}

/// One MPLS label stack entry.
pub mod mpls {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 4;
    /// Label.
    pub const LABEL: BitField = bf(0, 20);
    /// Traffic class (EXP).
    pub const EXP: BitField = bf(20, 3);
    /// Bottom of stack.
    pub const S_BOS: BitField = bf(23, 1);
    /// Time to live.
    pub const TTL: BitField = bf(24, 8);
    /// The whole entry.
    pub const ENTRY: BitField = bf(0, 32);
}

/// GTP-U header (3GPP TS 29.281).
pub mod gtpu {
    use super::{bf, BitField};
    /// Length of the mandatory part.
    pub const LEN: usize = 8;
    /// Flags (version, PT, E, S, PN).
    pub const FLAGS: BitField = bf(0, 8);
    /// Message type.
    pub const MSG_TYPE: BitField = bf(8, 8);
    /// Length of everything after the mandatory part.
    pub const LENGTH: BitField = bf(16, 16);
    /// Tunnel endpoint identifier.
    pub const TEID: BitField = bf(32, 32);
    /// Dword 0 (flags, type, length).
    pub const DW0: BitField = bf(0, 32);
    /// Dword 2: sequence number, N-PDU number, next extension type (present when any of
    /// E, S, PN is set).
    pub const DW2: BitField = bf(64, 32);
    /// Length of the optional dword.
    pub const OPT_LEN: usize = 4;
    /// Flags: version 1 with protocol type GTP.
    pub const FLAGS_V1_PT: u8 = 0x30;
    /// Flag: an extension header follows.
    pub const FLAG_E: u8 = 0x04;
    /// Flag: the sequence number is present.
    pub const FLAG_S: u8 = 0x02;
    /// Flag: the N-PDU number is present.
    pub const FLAG_PN: u8 = 0x01;
    /// Message type of a user-plane packet (T-PDU): an IP packet follows.
    pub const MSG_TPDU: u8 = 0xff;
}

/// InfiniBand base transport header of RoCE v2.
pub mod bth {
    use super::{bf, BitField};
    /// Length.
    pub const LEN: usize = 12;
    /// Destination queue pair.
    pub const DEST_QP: BitField = bf(40, 24);
}

/// Ethertypes.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const CVLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag.
    pub const SVLAN: u16 = 0x88a8;
    /// MPLS unicast.
    pub const MPLS_UC: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MC: u16 = 0x8848;
    /// Transparent Ethernet bridging (an Ethernet frame follows).
    pub const TEB: u16 = 0x6558;
}

/// IP protocol numbers.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// GRE.
    pub const GRE: u8 = 47;
    /// IPsec ESP.
    pub const ESP: u8 = 50;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// UDP destination ports that name what follows the UDP header.
pub mod udp_port {
    /// VXLAN.
    pub const VXLAN: u16 = 4789;
    /// VXLAN-GPE.
    pub const VXLAN_GPE: u16 = 4790;
    /// RoCE v2.
    pub const ROCE_V2: u16 = 4791;
    /// GENEVE.
    pub const GENEVE: u16 = 6081;
    /// MPLS over UDP.
    pub const MPLS: u16 = 6635;
    /// GTP-U.
    pub const GTPU: u16 = 2152;
}

/// Reads `field` of the header at `at`, or `None` when the packet ends before the field.
pub fn read(bytes: &[u8], at: usize, field: BitField) -> Option<u64> {
    let end = at.checked_add(field.end_byte())?;
    (end <= bytes.len()).then(|| ste_builder::bits::get(&bytes[at..end], field))
}
