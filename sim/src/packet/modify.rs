//! Modify-header actions on a packet: set, add and copy on the fields the PRM names
//! (`MLX5_ACTION_IN_FIELD_OUT_*`), with the checksum updates the hardware makes.
//!
//! Fields are numbered as in the PRM actions: bit 0 is a field's least significant bit,
//! and a PRM length of 0 means 32. Header fields are those of the outermost headers (after
//! a decapsulation, the former inner ones). Register fields live in the packet's
//! [`Metadata`](super::Metadata).
//!
//! Checksums stay valid: a change to an IPv4 header recomputes its header checksum; a
//! change to the IP addresses (the pseudo-header), to the TCP or UDP header, or to bytes
//! a UDP checksum covers (the GTP-U TEID) updates the outer L4 checksum incrementally
//! (RFC 1624), so a checksum that was correct stays correct. A zero UDP checksum over IPv4
//! means "none" and stays zero.
//!
//! [`Packet::apply_hw_modify`] executes a format's hardware action (as
//! [`HwModifyOp`]) by mapping its hardware field and bit window back to the PRM fields
//! through `ste_builder`'s field tables.

use std::ops::Range;

use ste_builder::bits::{self, BitField};
use ste_builder::modify_header::{conv_sw_field, sw_field, HwModifyOp, ModifyAction, ModifyCaps};
use ste_builder::SteFormat;

use super::checksum;
use super::parse::{IpVersion, L4Kind, Parsed, TunnelKind};
use super::wire::{eth, ethertype, gtpu, ipv4, ipv6, tcp, udp, vlan};
use super::Packet;

/// A field a modify-header action can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HdrField {
    Smac47_16,
    Smac15_0,
    Ethertype,
    Dmac47_16,
    Dmac15_0,
    IpDscp,
    IpEcn,
    TcpFlags,
    TcpSport,
    TcpDport,
    IpTtl,
    UdpSport,
    UdpDport,
    SrcIpv6_127_96,
    SrcIpv6_95_64,
    SrcIpv6_63_32,
    SrcIpv6_31_0,
    DstIpv6_127_96,
    DstIpv6_95_64,
    DstIpv6_63_32,
    DstIpv6_31_0,
    SrcIpv4,
    DstIpv4,
    FirstVid,
    Ipv6HopLimit,
    RegA,
    RegB,
    RegC0,
    RegC1,
    RegC2,
    RegC3,
    RegC4,
    RegC5,
    TcpSeq,
    TcpAck,
    GtpuTeid,
}

/// Every field with its PRM id and its width in bits.
const TABLE: [(HdrField, u16, u8); 36] = {
    use sw_field as s;
    use HdrField as F;
    [
        (F::Smac47_16, s::SMAC_47_16, 32),
        (F::Smac15_0, s::SMAC_15_0, 16),
        (F::Ethertype, s::ETHERTYPE, 16),
        (F::Dmac47_16, s::DMAC_47_16, 32),
        (F::Dmac15_0, s::DMAC_15_0, 16),
        (F::IpDscp, s::IP_DSCP, 6),
        (F::IpEcn, s::IP_ECN, 2),
        (F::TcpFlags, s::TCP_FLAGS, 9),
        (F::TcpSport, s::TCP_SPORT, 16),
        (F::TcpDport, s::TCP_DPORT, 16),
        (F::IpTtl, s::IP_TTL, 8),
        (F::UdpSport, s::UDP_SPORT, 16),
        (F::UdpDport, s::UDP_DPORT, 16),
        (F::SrcIpv6_127_96, s::SIPV6_127_96, 32),
        (F::SrcIpv6_95_64, s::SIPV6_95_64, 32),
        (F::SrcIpv6_63_32, s::SIPV6_63_32, 32),
        (F::SrcIpv6_31_0, s::SIPV6_31_0, 32),
        (F::DstIpv6_127_96, s::DIPV6_127_96, 32),
        (F::DstIpv6_95_64, s::DIPV6_95_64, 32),
        (F::DstIpv6_63_32, s::DIPV6_63_32, 32),
        (F::DstIpv6_31_0, s::DIPV6_31_0, 32),
        (F::SrcIpv4, s::SIPV4, 32),
        (F::DstIpv4, s::DIPV4, 32),
        // The whole TCI of the first tag: the hardware field is 16 bits, and a 12-bit
        // write at offset 0 is a VLAN id rewrite.
        (F::FirstVid, s::FIRST_VID, 16),
        (F::Ipv6HopLimit, s::IPV6_HOPLIMIT, 8),
        (F::RegA, s::METADATA_REGA, 32),
        (F::RegB, s::METADATA_REGB, 32),
        (F::RegC0, s::METADATA_REGC_0, 32),
        (F::RegC1, s::METADATA_REGC_1, 32),
        (F::RegC2, s::METADATA_REGC_2, 32),
        (F::RegC3, s::METADATA_REGC_3, 32),
        (F::RegC4, s::METADATA_REGC_4, 32),
        (F::RegC5, s::METADATA_REGC_5, 32),
        (F::TcpSeq, s::TCP_SEQ_NUM, 32),
        (F::TcpAck, s::TCP_ACK_NUM, 32),
        (F::GtpuTeid, s::GTPU_TEID, 32),
    ]
};

impl HdrField {
    /// Every field.
    pub fn all() -> impl Iterator<Item = HdrField> {
        TABLE.iter().map(|e| e.0)
    }

    /// The field a PRM id names.
    pub fn from_sw_id(id: u16) -> Option<HdrField> {
        TABLE.iter().find(|e| e.1 == id).map(|e| e.0)
    }

    fn entry(self) -> &'static (HdrField, u16, u8) {
        TABLE
            .iter()
            .find(|e| e.0 == self)
            .expect("every field is in the table")
    }

    /// The PRM id (`MLX5_ACTION_IN_FIELD_OUT_*`).
    pub fn sw_id(self) -> u16 {
        self.entry().1
    }

    /// Width in bits.
    pub fn width(self) -> u8 {
        self.entry().2
    }
}

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A PRM field id the simulator does not know.
    #[error("modify-header field id {0:#x} is not a known field")]
    UnknownField(u16),
    /// The packet lacks the header of the field.
    #[error("the packet has no {field:?}: its header is missing")]
    FieldAbsent {
        /// The field.
        field: HdrField,
    },
    /// The bits named run past the end of the field.
    #[error("bits {offset}..{offset}+{length} run past the {width}-bit field {field:?}")]
    OutOfField {
        /// The field.
        field: HdrField,
        /// First bit.
        offset: u8,
        /// Number of bits.
        length: u8,
        /// The field's width.
        width: u8,
    },
    /// A hardware action's bits are not exactly covered by fields of this packet.
    #[error("bits {shifter}..{shifter}+{length} of hardware field {hw_field:#x} are not fields of this packet")]
    UnmappedHwBits {
        /// The hardware field.
        hw_field: u8,
        /// First bit.
        shifter: u8,
        /// Number of bits.
        length: u8,
    },
    /// A hardware add whose bits span more than one field.
    #[error("an add on hardware field {hw_field:#x} spans several fields")]
    AddAcrossFields {
        /// The hardware field.
        hw_field: u8,
    },
    /// A v0 VLAN-type write of a value that names no tag type (1 S-VLAN, 2 C-VLAN).
    #[error("VLAN type {0} is neither 1 (S-VLAN) nor 2 (C-VLAN)")]
    BadVlanType(u64),
    /// The packet has no Ethernet header.
    #[error("the packet has no Ethernet header")]
    NoEthernet,
    /// A VLAN pop on a packet without a VLAN tag.
    #[error("the packet has no VLAN tag to pop")]
    NoVlan,
    /// A decapsulation of a packet that is not tunnelled (or whose tunnel header is cut).
    #[error("the packet has no (complete) tunnel to decapsulate")]
    NotTunnelled,
    /// An L2 decapsulation of a tunnel that does not carry Ethernet.
    #[error("the tunnel payload is not an Ethernet frame")]
    NoInnerL2,
    /// An L3 decapsulation of a tunnel whose payload has no IP header.
    #[error("the tunnel payload has no IP header")]
    NoInnerL3,
    /// An L3 encapsulation of a packet without an IP header.
    #[error("the packet has no IP header")]
    NoL3,
    /// A header anchor id the simulator does not know.
    #[error("header anchor {0:#x} is not a known anchor")]
    UnknownAnchor(u8),
    /// The packet lacks the header an anchor names.
    #[error("the packet has no header at anchor {0:#x}")]
    AnchorAbsent(u8),
    /// A byte range outside the packet.
    #[error("bytes {at}..{at}+{len} are outside the {packet_len}-byte packet")]
    OutOfPacket {
        /// Offset.
        at: usize,
        /// Length.
        len: usize,
        /// The packet's length.
        packet_len: usize,
    },
}

/// Which checksums a field's bytes feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csum {
    /// None (Ethernet, VLAN, IPv6 header fields outside the addresses).
    None,
    /// The IPv4 header checksum.
    Ipv4Header,
    /// The IPv4 header checksum and the L4 pseudo-header.
    Ipv4Addr,
    /// The L4 pseudo-header of IPv6.
    Ipv6Addr,
    /// The L4 checksum (bytes of the TCP / UDP segment).
    L4,
}

/// Where a field's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Bits `field` of the header at byte `at`.
    Bytes {
        at: usize,
        field: BitField,
        csum: Csum,
    },
    /// Register A.
    RegA,
    /// Register B.
    RegB,
    /// Register C `n`.
    RegC(usize),
    /// The type of the first VLAN tag, kept as the TPID at byte `at`.
    VlanType { at: usize },
}

/// What a part of a hardware action's bit window names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A PRM field.
    Field(HdrField),
    /// STE v0 only: the two bits above the ethertype in hardware field `L2_2` give the
    /// type of the first VLAN tag (1 S-VLAN, 2 C-VLAN). The L3 decapsulation list writes
    /// them along with the ethertype when the new L2 header has a tag.
    V0FirstVlanType,
}

/// STE v0's hardware field `L2_2` (ethertype, VLAN type and first VLAN TCI).
const V0_L2_2: u8 = 0x02;
/// Bits of [`Target::V0FirstVlanType`] in `L2_2`.
const V0_VLAN_TYPE_BITS: Range<u16> = 48..50;
/// The VLAN type codes of [`Target::V0FirstVlanType`].
const V0_VLAN_TYPE_SVLAN: u64 = 1;
const V0_VLAN_TYPE_CVLAN: u64 = 2;

/// `length` bits as a mask.
fn mask(length: u8) -> u64 {
    if length >= 64 {
        u64::MAX
    } else {
        (1u64 << length) - 1
    }
}

/// A PRM length: 0 stands for 32.
fn prm_len(length: u8) -> u8 {
    if length == 0 {
        32
    } else {
        length
    }
}

/// One field's part of a hardware action's bit window.
#[derive(Debug, Clone, Copy)]
struct Piece {
    target: Target,
    /// First bit inside the field.
    field_lo: u8,
    /// First bit inside the action's window.
    op_lo: u8,
    len: u8,
}

impl Packet {
    fn place_of(&self, parsed: &Parsed, target: Target) -> Result<Place, EditError> {
        match target {
            Target::Field(f) => self.place(parsed, f),
            Target::V0FirstVlanType => {
                let l2 = parsed.outer.l2.as_ref().ok_or(EditError::NoEthernet)?;
                let tag = l2.vlans.first().ok_or(EditError::NoVlan)?;
                Ok(Place::VlanType { at: tag.offset - 2 })
            }
        }
    }

    fn place(&self, parsed: &Parsed, f: HdrField) -> Result<Place, EditError> {
        use HdrField as F;
        let absent = EditError::FieldAbsent { field: f };
        let outer = &parsed.outer;
        let bytes = |at: usize, field: BitField, csum: Csum| Ok(Place::Bytes { at, field, csum });
        match f {
            F::RegA => return Ok(Place::RegA),
            F::RegB => return Ok(Place::RegB),
            F::RegC0 => return Ok(Place::RegC(0)),
            F::RegC1 => return Ok(Place::RegC(1)),
            F::RegC2 => return Ok(Place::RegC(2)),
            F::RegC3 => return Ok(Place::RegC(3)),
            F::RegC4 => return Ok(Place::RegC(4)),
            F::RegC5 => return Ok(Place::RegC(5)),
            _ => {}
        }
        match f {
            F::Smac47_16
            | F::Smac15_0
            | F::Dmac47_16
            | F::Dmac15_0
            | F::Ethertype
            | F::FirstVid => {
                let l2 = outer.l2.as_ref().ok_or(absent.clone())?;
                match f {
                    F::Smac47_16 => bytes(l2.offset, eth::SMAC_47_16, Csum::None),
                    F::Smac15_0 => bytes(l2.offset, eth::SMAC_15_0, Csum::None),
                    F::Dmac47_16 => bytes(l2.offset, eth::DMAC_47_16, Csum::None),
                    F::Dmac15_0 => bytes(l2.offset, eth::DMAC_15_0, Csum::None),
                    // The ethertype after the tags, as the match field reads it.
                    F::Ethertype => bytes(l2.end - 2, BitField::new(0, 16), Csum::None),
                    _ => {
                        let tag = l2.vlans.first().ok_or(absent)?;
                        bytes(tag.offset, vlan::TCI, Csum::None)
                    }
                }
            }
            F::IpDscp | F::IpEcn | F::IpTtl | F::Ipv6HopLimit | F::SrcIpv4 | F::DstIpv4 => {
                let l3 = outer.l3.as_ref().ok_or(absent.clone())?;
                let at = l3.offset;
                match (f, l3.version) {
                    (F::IpDscp, IpVersion::V4) => bytes(at, ipv4::DSCP, Csum::Ipv4Header),
                    (F::IpEcn, IpVersion::V4) => bytes(at, ipv4::ECN, Csum::Ipv4Header),
                    (F::IpDscp, IpVersion::V6) => bytes(at, ipv6::DSCP, Csum::None),
                    (F::IpEcn, IpVersion::V6) => bytes(at, ipv6::ECN, Csum::None),
                    (F::IpTtl, IpVersion::V4) => bytes(at, ipv4::TTL, Csum::Ipv4Header),
                    (F::Ipv6HopLimit, IpVersion::V6) => bytes(at, ipv6::HOP_LIMIT, Csum::None),
                    (F::SrcIpv4, IpVersion::V4) => bytes(at, ipv4::SRC, Csum::Ipv4Addr),
                    (F::DstIpv4, IpVersion::V4) => bytes(at, ipv4::DST, Csum::Ipv4Addr),
                    _ => Err(absent),
                }
            }
            F::SrcIpv6_127_96
            | F::SrcIpv6_95_64
            | F::SrcIpv6_63_32
            | F::SrcIpv6_31_0
            | F::DstIpv6_127_96
            | F::DstIpv6_95_64
            | F::DstIpv6_63_32
            | F::DstIpv6_31_0 => {
                let l3 = outer.l3.as_ref().ok_or(absent.clone())?;
                if l3.version != IpVersion::V6 {
                    return Err(absent);
                }
                let field = match f {
                    F::SrcIpv6_127_96 => ipv6::src_word(0),
                    F::SrcIpv6_95_64 => ipv6::src_word(1),
                    F::SrcIpv6_63_32 => ipv6::src_word(2),
                    F::SrcIpv6_31_0 => ipv6::src_word(3),
                    F::DstIpv6_127_96 => ipv6::dst_word(0),
                    F::DstIpv6_95_64 => ipv6::dst_word(1),
                    F::DstIpv6_63_32 => ipv6::dst_word(2),
                    _ => ipv6::dst_word(3),
                };
                bytes(l3.offset, field, Csum::Ipv6Addr)
            }
            F::TcpFlags | F::TcpSport | F::TcpDport | F::TcpSeq | F::TcpAck => {
                let l4 = outer.l4.as_ref().filter(|l| l.kind == L4Kind::Tcp);
                let l4 = l4.ok_or(absent)?;
                let field = match f {
                    F::TcpFlags => tcp::FLAGS,
                    F::TcpSport => tcp::SPORT,
                    F::TcpDport => tcp::DPORT,
                    F::TcpSeq => tcp::SEQ,
                    _ => tcp::ACK,
                };
                bytes(l4.offset, field, Csum::L4)
            }
            F::UdpSport | F::UdpDport => {
                let l4 = outer.l4.as_ref().filter(|l| l.kind == L4Kind::Udp);
                let l4 = l4.ok_or(absent)?;
                let field = if f == F::UdpSport {
                    udp::SPORT
                } else {
                    udp::DPORT
                };
                bytes(l4.offset, field, Csum::L4)
            }
            F::GtpuTeid => {
                let t = parsed
                    .tunnel
                    .as_ref()
                    .filter(|t| t.kind == TunnelKind::Gtpu);
                let t = t.ok_or(absent.clone())?;
                let fits = t.offset + gtpu::LEN <= t.end.min(self.bytes.len());
                if !fits {
                    return Err(absent);
                }
                bytes(t.offset, gtpu::TEID, Csum::L4)
            }
            _ => Err(absent),
        }
    }

    fn load(&self, place: Place) -> u64 {
        match place {
            Place::Bytes { at, field, .. } => bits::get(&self.bytes[at..], field),
            Place::RegA => self.meta.reg_a.into(),
            Place::RegB => self.meta.reg_b.into(),
            Place::RegC(n) => self.meta.reg_c[n].into(),
            Place::VlanType { at } => {
                match bits::get(&self.bytes[at..], BitField::new(0, 16)) as u16 {
                    ethertype::SVLAN => V0_VLAN_TYPE_SVLAN,
                    ethertype::CVLAN => V0_VLAN_TYPE_CVLAN,
                    _ => 0,
                }
            }
        }
    }

    /// Writes a whole field and repairs the checksums over it.
    fn store(&mut self, parsed: &Parsed, place: Place, value: u64) -> Result<(), EditError> {
        let (at, field, csum) = match place {
            Place::Bytes { at, field, csum } => (at, field, csum),
            Place::RegA => {
                self.meta.reg_a = value as u32;
                return Ok(());
            }
            Place::RegB => {
                self.meta.reg_b = value as u32;
                return Ok(());
            }
            Place::RegC(n) => {
                self.meta.reg_c[n] = value as u32;
                return Ok(());
            }
            Place::VlanType { at } => {
                let tpid = match value {
                    V0_VLAN_TYPE_SVLAN => ethertype::SVLAN,
                    V0_VLAN_TYPE_CVLAN => ethertype::CVLAN,
                    v => return Err(EditError::BadVlanType(v)),
                };
                bits::set(&mut self.bytes[at..], BitField::new(0, 16), tpid.into());
                return Ok(());
            }
        };
        let span = at + field.offset / 8..at + field.end_byte();
        // The incremental L4 update needs whole words counted from the checksum's origin.
        let origin = match csum {
            Csum::Ipv4Addr | Csum::Ipv6Addr => parsed.outer.l3.map(|l| l.offset),
            Csum::L4 => parsed.outer.l4.map(|l| l.offset),
            Csum::None | Csum::Ipv4Header => None,
        };
        let words = origin.map(|o| {
            let start = span.start - (span.start - o) % 2;
            let end = (span.end + (span.end - o) % 2).min(self.bytes.len());
            start..end
        });
        let old = words.as_ref().map(|w| self.bytes[w.clone()].to_vec());
        bits::set(&mut self.bytes[at..], field, value);
        if matches!(csum, Csum::Ipv4Header | Csum::Ipv4Addr) {
            self.refresh_ipv4_checksum(parsed);
        }
        if let (Some(words), Some(old)) = (words, old) {
            let pseudo = matches!(csum, Csum::Ipv4Addr | Csum::Ipv6Addr);
            self.update_l4_checksum(parsed, words, &old, pseudo);
        }
        Ok(())
    }

    fn refresh_ipv4_checksum(&mut self, parsed: &Parsed) {
        let Some(l3) = parsed.outer.l3.filter(|l| l.version == IpVersion::V4) else {
            return;
        };
        let hdr = l3.offset..l3.offset + l3.header_len;
        bits::set(&mut self.bytes[hdr.clone()], ipv4::CHECKSUM, 0);
        let sum = checksum::checksum(&self.bytes[hdr.clone()]);
        bits::set(&mut self.bytes[hdr], ipv4::CHECKSUM, sum.into());
    }

    /// Updates the outer L4 checksum for the change of bytes `words` from `old`;
    /// `pseudo` when the bytes are pseudo-header (IP address) bytes.
    fn update_l4_checksum(
        &mut self,
        parsed: &Parsed,
        words: Range<usize>,
        old: &[u8],
        pseudo: bool,
    ) {
        let Some(l4) = parsed.outer.l4 else {
            return;
        };
        let v4 = parsed.outer.l3.is_some_and(|l| l.version == IpVersion::V4);
        let (csum_at, is_udp) = match l4.kind {
            L4Kind::Tcp => (l4.offset + tcp::CHECKSUM_OFFSET, false),
            L4Kind::Udp => (l4.offset + udp::CHECKSUM_OFFSET, true),
            // ICMPv6 covers the pseudo-header; ICMPv4 does not.
            L4Kind::Icmpv6 if pseudo => (l4.offset + super::wire::icmp::CHECKSUM_OFFSET, false),
            _ => return,
        };
        let field = BitField::new(0, 16);
        let stored = bits::get(&self.bytes[csum_at..], field) as u16;
        if is_udp && v4 && stored == 0 {
            return;
        }
        let mut updated = checksum::update(stored, old, &self.bytes[words]);
        if is_udp && updated == 0 {
            updated = 0xffff;
        }
        bits::set(&mut self.bytes[csum_at..], field, updated.into());
    }

    /// Reads `length` bits at bit `lo` of `target`.
    fn read_bits(
        &self,
        parsed: &Parsed,
        target: Target,
        lo: u8,
        length: u8,
    ) -> Result<u64, EditError> {
        let place = self.place_of(parsed, target)?;
        Ok((self.load(place) >> lo) & mask(length))
    }

    /// Writes the low `length` bits of `value` at bit `lo` of `target`.
    fn write_bits(
        &mut self,
        parsed: &Parsed,
        target: Target,
        lo: u8,
        length: u8,
        value: u64,
    ) -> Result<(), EditError> {
        let place = self.place_of(parsed, target)?;
        let m = mask(length) << lo;
        let new = (self.load(place) & !m) | ((value << lo) & m);
        self.store(parsed, place, new)
    }

    fn check_range(f: HdrField, offset: u8, length: u8) -> Result<(), EditError> {
        let width = f.width();
        if u16::from(offset) + u16::from(length) > u16::from(width) {
            return Err(EditError::OutOfField {
                field: f,
                offset,
                length,
                width,
            });
        }
        Ok(())
    }

    /// The value of field `f`.
    pub fn read_field(&self, f: HdrField) -> Result<u32, EditError> {
        let parsed = self.parse();
        Ok(self.read_bits(&parsed, Target::Field(f), 0, f.width())? as u32)
    }

    /// `set_action_in`: writes the low `length` bits of `data` at bit `offset` of `f`
    /// (`length` 0 means 32).
    pub fn set_field(
        &mut self,
        f: HdrField,
        offset: u8,
        length: u8,
        data: u32,
    ) -> Result<(), EditError> {
        let length = prm_len(length);
        Self::check_range(f, offset, length)?;
        let parsed = self.parse();
        self.write_bits(&parsed, Target::Field(f), offset, length, data.into())
    }

    /// `add_action_in`: adds `data` to the whole of `f`, modulo its width.
    pub fn add_field(&mut self, f: HdrField, data: u32) -> Result<(), EditError> {
        let parsed = self.parse();
        let width = f.width();
        let target = Target::Field(f);
        let cur = self.read_bits(&parsed, target, 0, width)?;
        self.write_bits(&parsed, target, 0, width, cur.wrapping_add(data.into()))
    }

    /// `copy_action_in`: copies `length` bits (0 means 32) from bit `src_offset` of
    /// `src` to bit `dst_offset` of `dst`.
    pub fn copy_field(
        &mut self,
        src: HdrField,
        src_offset: u8,
        dst: HdrField,
        dst_offset: u8,
        length: u8,
    ) -> Result<(), EditError> {
        let length = prm_len(length);
        Self::check_range(src, src_offset, length)?;
        Self::check_range(dst, dst_offset, length)?;
        let parsed = self.parse();
        let v = self.read_bits(&parsed, Target::Field(src), src_offset, length)?;
        self.write_bits(&parsed, Target::Field(dst), dst_offset, length, v)
    }

    /// Executes a user modify action in its parsed PRM form.
    pub fn apply_modify(&mut self, action: &ModifyAction) -> Result<(), EditError> {
        let field = |id: u16| HdrField::from_sw_id(id).ok_or(EditError::UnknownField(id));
        match *action {
            ModifyAction::Set {
                field: f,
                offset,
                length,
                data,
            } => self.set_field(field(f)?, offset, length, data),
            ModifyAction::Add { field: f, data } => self.add_field(field(f)?, data),
            ModifyAction::Copy {
                src_field,
                src_offset,
                dst_field,
                dst_offset,
                length,
            } => self.copy_field(
                field(src_field)?,
                src_offset,
                field(dst_field)?,
                dst_offset,
                length,
            ),
        }
    }

    /// The fields of this packet that bits `shifter..shifter+length` of hardware field
    /// `hw_field` cover, in `format`'s numbering. Where several PRM fields share hardware
    /// bits (TCP and UDP ports, IPv4 and IPv6 addresses), the packet's protocols choose.
    fn resolve(
        &self,
        parsed: &Parsed,
        format: SteFormat,
        caps: &ModifyCaps,
        hw_field: u8,
        shifter: u8,
        length: u8,
    ) -> Result<Vec<Piece>, EditError> {
        let (lo, hi) = (u16::from(shifter), u16::from(shifter) + u16::from(length));
        // Every field the hardware field holds, with its bits in it.
        let mut candidates: Vec<(Target, Range<u16>)> = HdrField::all()
            .filter_map(|f| {
                let mf = conv_sw_field(format, caps, f.sw_id())?;
                (mf.hw_field == hw_field)
                    .then(|| (Target::Field(f), u16::from(mf.start)..u16::from(mf.end) + 1))
            })
            .collect();
        if format == SteFormat::V0 && hw_field == V0_L2_2 {
            candidates.push((Target::V0FirstVlanType, V0_VLAN_TYPE_BITS));
        }
        let mut pieces = Vec::new();
        let mut absent = None;
        for (target, bits) in candidates {
            let (a, b) = (lo.max(bits.start), hi.min(bits.end));
            if a >= b {
                continue;
            }
            if let Err(e) = self.place_of(parsed, target) {
                absent.get_or_insert(e);
                continue;
            }
            pieces.push(Piece {
                target,
                field_lo: (a - bits.start) as u8,
                op_lo: (a - lo) as u8,
                len: (b - a) as u8,
            });
        }
        pieces.sort_by_key(|p| p.op_lo);
        let mut covered = 0u16;
        for p in &pieces {
            if u16::from(p.op_lo) != covered {
                break;
            }
            covered += u16::from(p.len);
        }
        if covered != u16::from(length) || pieces.is_empty() {
            return Err(absent.unwrap_or(EditError::UnmappedHwBits {
                hw_field,
                shifter,
                length,
            }));
        }
        Ok(pieces)
    }

    /// Executes one hardware modify action of `format` (shifters relative to the hardware
    /// field, bit 0 least significant; a length of 0 means 32, as the set/add encodings
    /// write it).
    pub fn apply_hw_modify(
        &mut self,
        format: SteFormat,
        caps: &ModifyCaps,
        op: &HwModifyOp,
    ) -> Result<(), EditError> {
        let parsed = self.parse();
        match *op {
            HwModifyOp::Set {
                hw_field,
                shifter,
                length,
                data,
            } => {
                let length = prm_len(length);
                for p in self.resolve(&parsed, format, caps, hw_field, shifter, length)? {
                    let v = (u64::from(data) >> p.op_lo) & mask(p.len);
                    self.write_bits(&parsed, p.target, p.field_lo, p.len, v)?;
                }
                Ok(())
            }
            HwModifyOp::Add {
                hw_field,
                shifter,
                length,
                data,
            } => {
                let length = prm_len(length);
                let pieces = self.resolve(&parsed, format, caps, hw_field, shifter, length)?;
                let [p] = pieces[..] else {
                    return Err(EditError::AddAcrossFields { hw_field });
                };
                let cur = self.read_bits(&parsed, p.target, p.field_lo, p.len)?;
                self.write_bits(
                    &parsed,
                    p.target,
                    p.field_lo,
                    p.len,
                    cur.wrapping_add(data.into()),
                )
            }
            HwModifyOp::Copy {
                dst_hw_field,
                dst_shifter,
                dst_len,
                src_hw_field,
                src_shifter,
            } => {
                let length = prm_len(dst_len);
                let src = self.resolve(&parsed, format, caps, src_hw_field, src_shifter, length)?;
                let dst = self.resolve(&parsed, format, caps, dst_hw_field, dst_shifter, length)?;
                let mut v = 0u64;
                for p in &src {
                    v |= self.read_bits(&parsed, p.target, p.field_lo, p.len)? << p.op_lo;
                }
                for p in &dst {
                    self.write_bits(&parsed, p.target, p.field_lo, p.len, v >> p.op_lo)?;
                }
                Ok(())
            }
        }
    }
}
