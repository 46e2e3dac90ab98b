//! Parsing: the fields the NIC's parser extracts from a packet, written at their places
//! in an `fte_match_param`, and where each header lies.
//!
//! What is parsed, outer side first:
//!
//! - Ethernet II with up to two VLAN tags (TPID 0x8100 is a C-VLAN, 0x88a8 an S-VLAN); the
//!   `ethertype` field is the one after the tags. A third tag is not parsed: its TPID is
//!   then the ethertype.
//! - MPLS directly after Ethernet (`*_first_mpls_*`); what follows the label stack is not
//!   parsed.
//! - IPv4 (options skipped) or IPv6 (extension headers walked with etherparse);
//!   `ip_protocol` of IPv6 is the protocol after the extension headers. `frag` is set for
//!   any fragment (more-fragments set or a non-zero offset); L4 is parsed only in a first
//!   fragment.
//! - TCP, UDP, ICMP (IPv4), ICMPv6 (IPv6), ESP.
//! - Tunnels, outer side only: VXLAN (UDP 4789), VXLAN-GPE (4790), GENEVE (6081), MPLS
//!   over UDP (6635), GTP-U (2152), GRE / NVGRE (IP protocol 47, version 0, with MPLS over
//!   GRE); the RoCE v2 BTH (UDP 4791) gives `bth_dst_qp`. Then the inner headers: inner
//!   Ethernet (VXLAN; VXLAN-GPE next protocol 3; GENEVE and GRE protocol 0x6558) or inner
//!   IP directly (the other next protocols; after MPLS and GTP-U T-PDUs by the IP version
//!   nibble). A tunnel inside the inner packet is not parsed as one.
//!
//! Derived fields: `l3_ok` (version right, header complete, total / payload length
//! consistent with the bytes), `ipv4_checksum_ok`, `l4_ok` (TCP: data offset sane and
//! within the packet; UDP: length field sane and within the packet), `l4_checksum_ok` (TCP
//! and UDP, verified over the whole segment with the pseudo-header; a zero UDP checksum
//! over IPv4 counts as correct; never set on fragments). The metadata gives
//! `source_port`, `source_sqn`, `source_vhca_port`, `source_eswitch_owner_vhca_id` and the
//! registers A and C0..C7. `misc5.tunnel_header_0..3` hold the first 16 bytes of the
//! tunnel header (zero-padded). The GENEVE TLV "option 0" is modelled as the first option
//! of the header (the firmware object that names its class and type is not modelled);
//! its data is the option's first data dword.

use etherparse::{IpNumber, Ipv6ExtensionSlice, Ipv6ExtensionsSlice};
use ste_builder::bits::{self, BitField};
use ste_builder::match_param::Section;
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc3 as misc3, dr_match_set_misc5 as misc5,
    dr_match_spec as spec,
};
use ste_builder::MatchParam;

use super::checksum::{self, PseudoHeader};
use super::side::{MplsFields, SideFields, INNER, MPLS_OVER_GRE, MPLS_OVER_UDP, OUTER, REG_C};
use super::wire::{
    bth, esp, eth, ethertype, geneve, gre, gtpu, icmp, ip_proto, ipv4, ipv6, ipv6_frag, mpls, read,
    tcp, udp, udp_port, vlan, vxlan, vxlan_gpe,
};
use super::Metadata;

/// The most MPLS label stack entries walked before giving up on finding the bottom.
pub const MAX_MPLS_LABELS: usize = 8;
/// The most GTP-U extension headers walked.
pub const MAX_GTPU_EXTENSIONS: usize = 8;

/// A parsed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Every extracted field at its `fte_match_param` position.
    pub fields: MatchParam,
    /// The outer headers.
    pub outer: Headers,
    /// The tunnel, when the outer headers lead into one.
    pub tunnel: Option<Tunnel>,
    /// The headers after the tunnel.
    pub inner: Option<Headers>,
    /// Where and why the parse ended early, if it did.
    pub stop: Option<Stop>,
    /// The raw dwords flex parsers sample ([`crate::packet::flex`]).
    pub flex: FlexSamples,
}

/// Where the headers of one side are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Ethernet and VLAN tags.
    pub l2: Option<L2>,
    /// Offset of an MPLS label stack right after the L2 header.
    pub mpls: Option<usize>,
    /// IP.
    pub l3: Option<L3>,
    /// The transport header.
    pub l4: Option<L4>,
}

impl Headers {
    /// The STE `l3_type` code of this side: 1 IPv4, 2 IPv6, 0 none.
    pub fn l3_type(&self) -> u8 {
        match self.l3.as_ref().map(|l| l.version) {
            Some(IpVersion::V4) => 1,
            Some(IpVersion::V6) => 2,
            None => 0,
        }
    }

    /// The STE `l4_type` code of this side: 1 TCP, 2 UDP, 0 anything else.
    pub fn l4_type(&self) -> u8 {
        match self.l4.as_ref().map(|l| l.kind) {
            Some(L4Kind::Tcp) => 1,
            Some(L4Kind::Udp) => 2,
            _ => 0,
        }
    }
}

/// An Ethernet header and its VLAN tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2 {
    /// Offset of the destination MAC.
    pub offset: usize,
    /// The parsed tags, outermost first (at most two).
    pub vlans: Vec<VlanTag>,
    /// The ethertype after the tags.
    pub ethertype: u16,
    /// First byte after the L2 header.
    pub end: usize,
}

/// One VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Its TPID (0x8100 or 0x88a8).
    pub tpid: u16,
    /// Offset of its TCI (the TPID is the 2 bytes before).
    pub offset: usize,
}

/// IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3 {
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Offset of the header.
    pub offset: usize,
    /// Length of the header: IPv4 with options, IPv6 with the extension headers walked.
    pub header_len: usize,
    /// End of the IP payload: the declared length when the bytes hold it, else the end
    /// of the bytes available.
    pub end: usize,
    /// The payload protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// A fragment (more-fragments set or a non-zero offset).
    pub fragment: bool,
    /// The payload starts with the L4 header (fragment offset zero).
    pub first_fragment: bool,
    /// `l3_ok`.
    pub ok: bool,
}

impl L3 {
    /// Offset of the payload.
    pub fn payload(&self) -> usize {
        self.offset + self.header_len
    }
}

/// Transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Kind {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (over IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
    /// IPsec ESP.
    Esp,
}

/// A transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    /// Its protocol.
    pub kind: L4Kind,
    /// Offset of the header.
    pub offset: usize,
    /// End of the segment (UDP: by its length field when sane).
    pub end: usize,
}

/// Tunnel protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN.
    Vxlan,
    /// VXLAN-GPE.
    VxlanGpe,
    /// GENEVE.
    Geneve,
    /// GRE (NVGRE and MPLS over GRE included).
    Gre,
    /// MPLS over UDP.
    MplsOverUdp,
    /// GTP-U.
    Gtpu,
}

/// A tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// Its protocol.
    pub kind: TunnelKind,
    /// Offset of the tunnel header.
    pub offset: usize,
    /// Bytes from `offset` to the inner packet (options, extension headers and MPLS
    /// labels included), when the parse got that far.
    pub len: Option<usize>,
    /// End of the tunnel payload.
    pub end: usize,
    /// Offset of the MPLS label stack of MPLS over GRE / UDP.
    pub mpls: Option<usize>,
}

impl Tunnel {
    /// Offset of the inner packet.
    pub fn inner_offset(&self) -> Option<usize> {
        self.len.map(|l| self.offset + l)
    }
}

/// A header the parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet.
    Ethernet,
    /// A VLAN tag.
    Vlan,
    /// An MPLS label.
    Mpls,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// IPv6 extension headers.
    Ipv6Ext,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// ESP.
    Esp,
    /// VXLAN.
    Vxlan,
    /// VXLAN-GPE.
    VxlanGpe,
    /// GENEVE.
    Geneve,
    /// GRE.
    Gre,
    /// GTP-U.
    Gtpu,
    /// RoCE v2 BTH.
    Bth,
}

/// Why the parse ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The packet (or the length its outer header declares) ends inside the header.
    Truncated,
    /// The header is inconsistent (wrong version, a length below the minimum, an MPLS
    /// stack or GTP-U extension chain without end).
    Malformed,
}

/// Where the parse ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stop {
    /// The header that could not be read.
    pub layer: Layer,
    /// Its offset.
    pub offset: usize,
    /// Why.
    pub reason: StopReason,
}

/// The raw header dwords that flex parsers sample, for the protocols the packet has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlexSamples {
    /// ICMP dwords 0 and 1.
    pub icmp: Option<[u32; 2]>,
    /// ICMPv6 dwords 0 and 1.
    pub icmpv6: Option<[u32; 2]>,
    /// The data dword of GENEVE TLV option 0 (0 when the option has no data).
    pub geneve_opt0: Option<u32>,
    /// The first MPLS label stack entry after GRE.
    pub mpls_over_gre: Option<u32>,
    /// The first MPLS label stack entry after UDP.
    pub mpls_over_udp: Option<u32>,
    /// GTP-U dword 0.
    pub gtpu_dw0: Option<u32>,
    /// GTP-U TEID.
    pub gtpu_teid: Option<u32>,
    /// GTP-U dword 2 (present with any of the E, S, PN flags).
    pub gtpu_dw2: Option<u32>,
    /// The first dword of the first GTP-U extension header.
    pub gtpu_first_ext_dw0: Option<u32>,
}

/// Parses `bytes` with metadata `meta`.
pub fn parse(bytes: &[u8], meta: &Metadata) -> Parsed {
    let mut p = Parser {
        bytes,
        out: MatchParam::default(),
        stop: None,
        flex: FlexSamples::default(),
    };
    p.metadata(meta);
    let outer = p.headers(0, bytes.len(), &OUTER, Start::Ethernet);
    let mut tunnel = None;
    let mut inner = None;
    if let Some((t, start)) = p.tunnel(&outer) {
        if let (Some(at), Some(start)) = (t.inner_offset(), start) {
            inner = Some(p.headers(at, t.end, &INNER, start));
        }
        tunnel = Some(t);
    }
    Parsed {
        fields: p.out,
        outer,
        tunnel,
        inner,
        stop: p.stop,
        flex: p.flex,
    }
}

/// The pseudo-header of the L4 checksum under the IP header `l3` (which is complete).
pub(super) fn pseudo_header<'a>(bytes: &'a [u8], l3: &L3) -> PseudoHeader<'a> {
    match l3.version {
        IpVersion::V4 => PseudoHeader::V4(&bytes[l3.offset..l3.offset + ipv4::MIN_LEN]),
        IpVersion::V6 => PseudoHeader::V6(&bytes[l3.offset..l3.offset + ipv6::LEN]),
    }
}

/// What a side starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Ethernet,
    Ip(IpVersion),
}

struct Parser<'a> {
    bytes: &'a [u8],
    out: MatchParam,
    stop: Option<Stop>,
    flex: FlexSamples,
}

impl Parser<'_> {
    /// Reads a field whose bytes the caller has checked are present.
    fn get(&self, at: usize, field: BitField) -> u64 {
        read(self.bytes, at, field).unwrap_or(0)
    }

    fn get32(&self, at: usize, field: BitField) -> u32 {
        self.get(at, field) as u32
    }

    /// True when `len` bytes at `at` lie before `end` (and in the packet).
    fn has(&self, at: usize, len: usize, end: usize) -> bool {
        at.checked_add(len)
            .is_some_and(|e| e <= end && e <= self.bytes.len())
    }

    fn put(&mut self, section: Section, field: BitField, value: u64) {
        self.out.set(section, field, value);
    }

    /// Copies `src` of the header at `at` to `dst` of `section`.
    fn copy(&mut self, at: usize, src: BitField, section: Section, dst: BitField) {
        let v = self.get(at, src);
        self.put(section, dst, v);
    }

    fn stopped(&mut self, layer: Layer, offset: usize, reason: StopReason) {
        self.stop.get_or_insert(Stop {
            layer,
            offset,
            reason,
        });
    }

    /// Requires the fixed part of a header; records a truncation otherwise.
    fn need(&mut self, layer: Layer, at: usize, len: usize, end: usize) -> bool {
        let ok = self.has(at, len, end);
        if !ok {
            self.stopped(layer, at, StopReason::Truncated);
        }
        ok
    }

    fn metadata(&mut self, meta: &Metadata) {
        let m = Section::Misc;
        self.put(m, misc::SOURCE_PORT, meta.source_vport.into());
        self.put(m, misc::SOURCE_SQN, meta.source_qp.into());
        self.put(m, misc::SOURCE_VHCA_PORT, meta.source_vhca_port.into());
        self.put(
            m,
            misc::SOURCE_ESWITCH_OWNER_VHCA_ID,
            meta.source_eswitch_owner_vhca_id.into(),
        );
        for (field, value) in REG_C.iter().zip(meta.reg_c) {
            self.put(Section::Misc2, *field, value.into());
        }
        self.put(
            Section::Misc2,
            ste_builder::prm::dr_match_set_misc2::METADATA_REG_A,
            meta.reg_a.into(),
        );
    }

    /// Parses one side from `at` up to `end`.
    fn headers(&mut self, at: usize, end: usize, side: &SideFields, start: Start) -> Headers {
        let mut h = Headers::default();
        let (l3_at, version) = match start {
            Start::Ethernet => {
                let Some(l2) = self.l2(at, end, side) else {
                    return h;
                };
                let (next, et) = (l2.end, l2.ethertype);
                h.l2 = Some(l2);
                match et {
                    ethertype::IPV4 => (next, IpVersion::V4),
                    ethertype::IPV6 => (next, IpVersion::V6),
                    ethertype::MPLS_UC | ethertype::MPLS_MC => {
                        if self.has(next, mpls::LEN, end) {
                            h.mpls = Some(next);
                        }
                        // What follows the stack is not parsed: only its first entry
                        // is a match field.
                        self.mpls_stack(next, end, &side.first_mpls);
                        return h;
                    }
                    _ => return h,
                }
            }
            Start::Ip(v) => (at, v),
        };
        h.l3 = match version {
            IpVersion::V4 => self.ipv4(l3_at, end, side),
            IpVersion::V6 => self.ipv6(l3_at, end, side),
        };
        if let Some(l3) = h.l3 {
            h.l4 = self.l4(&l3, side);
        }
        h
    }

    fn l2(&mut self, at: usize, end: usize, side: &SideFields) -> Option<L2> {
        if !self.need(Layer::Ethernet, at, eth::LEN, end) {
            return None;
        }
        let s = side.spec;
        self.copy(at, eth::DMAC_47_16, s, spec::DMAC_47_16);
        self.copy(at, eth::DMAC_15_0, s, spec::DMAC_15_0);
        self.copy(at, eth::SMAC_47_16, s, spec::SMAC_47_16);
        self.copy(at, eth::SMAC_15_0, s, spec::SMAC_15_0);
        // `type_at` is where the current ethertype (or TPID) sits.
        let mut type_at = at + eth::ETHERTYPE_OFFSET;
        let mut et = self.get(at, eth::ETHERTYPE) as u16;
        let mut vlans = Vec::new();
        while (et == ethertype::CVLAN || et == ethertype::SVLAN) && vlans.len() < 2 {
            let tag_at = type_at + 2;
            if !self.need(Layer::Vlan, tag_at, vlan::LEN, end) {
                break;
            }
            vlans.push(VlanTag {
                tpid: et,
                offset: tag_at,
            });
            et = self.get(tag_at, vlan::ETHERTYPE) as u16;
            type_at = tag_at + 2;
        }
        self.put(s, spec::ETHERTYPE, et.into());
        if let Some(first) = vlans.first() {
            let (cvlan, tag) = (first.tpid == ethertype::CVLAN, first.offset);
            self.put(
                s,
                if cvlan {
                    spec::CVLAN_TAG
                } else {
                    spec::SVLAN_TAG
                },
                1,
            );
            self.copy(tag, vlan::PRIO, s, spec::FIRST_PRIO);
            self.copy(tag, vlan::CFI, s, spec::FIRST_CFI);
            self.copy(tag, vlan::VID, s, spec::FIRST_VID);
        }
        if let Some(second) = vlans.get(1) {
            let (cvlan, tag) = (second.tpid == ethertype::CVLAN, second.offset);
            let m = Section::Misc;
            let flag = if cvlan {
                side.second_cvlan_tag
            } else {
                side.second_svlan_tag
            };
            self.put(m, flag, 1);
            self.copy(tag, vlan::PRIO, m, side.second_prio);
            self.copy(tag, vlan::CFI, m, side.second_cfi);
            self.copy(tag, vlan::VID, m, side.second_vid);
        }
        Some(L2 {
            offset: at,
            vlans,
            ethertype: et,
            end: type_at + 2,
        })
    }

    /// Walks an MPLS label stack, writing its first entry to `fields`; returns the
    /// offset after the bottom of the stack.
    fn mpls_stack(&mut self, at: usize, end: usize, fields: &MplsFields) -> Option<usize> {
        let mut pos = at;
        for i in 0..MAX_MPLS_LABELS {
            if !self.need(Layer::Mpls, pos, mpls::LEN, end) {
                return None;
            }
            if i == 0 {
                self.copy(pos, mpls::LABEL, Section::Misc2, fields.label);
                self.copy(pos, mpls::EXP, Section::Misc2, fields.exp);
                self.copy(pos, mpls::S_BOS, Section::Misc2, fields.s_bos);
                self.copy(pos, mpls::TTL, Section::Misc2, fields.ttl);
            }
            let bottom = self.get(pos, mpls::S_BOS) != 0;
            pos += mpls::LEN;
            if bottom {
                return Some(pos);
            }
        }
        self.stopped(Layer::Mpls, at, StopReason::Malformed);
        None
    }

    /// What follows an MPLS stack or a GTP-U header: IP, told by its version nibble.
    fn ip_by_version(&self, at: usize, end: usize) -> Option<Start> {
        if !self.has(at, 1, end) {
            return None;
        }
        match self.bytes[at] >> 4 {
            4 => Some(Start::Ip(IpVersion::V4)),
            6 => Some(Start::Ip(IpVersion::V6)),
            _ => None,
        }
    }

    fn ipv4(&mut self, at: usize, end: usize, side: &SideFields) -> Option<L3> {
        if !self.need(Layer::Ipv4, at, ipv4::MIN_LEN, end) {
            return None;
        }
        let s = side.spec;
        let version_ok = self.get(at, ipv4::VERSION) == 4;
        let ihl = self.get(at, ipv4::IHL) as usize;
        let header_len = ihl * 4;
        let total = self.get(at, ipv4::TOTAL_LEN) as usize;
        let frag_offset = self.get(at, ipv4::FRAG_OFFSET);
        let fragment = self.get(at, ipv4::MF) != 0 || frag_offset != 0;
        let protocol = self.get(at, ipv4::PROTOCOL) as u8;

        self.put(s, spec::IP_VERSION, 4);
        self.put(s, spec::IPV4_IHL, ihl as u64);
        self.copy(at, ipv4::DSCP, s, spec::IP_DSCP);
        self.copy(at, ipv4::ECN, s, spec::IP_ECN);
        self.copy(at, ipv4::TTL, s, spec::IP_TTL_HOPLIMIT);
        self.put(s, spec::IP_PROTOCOL, protocol.into());
        self.put(s, spec::FRAG, fragment.into());
        self.copy(at, ipv4::SRC, s, spec::SRC_IP_31_0);
        self.copy(at, ipv4::DST, s, spec::DST_IP_31_0);

        let complete = ihl >= 5 && self.has(at, header_len, end);
        if !version_ok || ihl < 5 {
            self.stopped(Layer::Ipv4, at, StopReason::Malformed);
        } else if !complete {
            self.stopped(Layer::Ipv4, at, StopReason::Truncated);
        }
        let length_ok = total >= header_len && self.has(at, total, end);
        let ok = version_ok && complete && length_ok;
        let checksum_ok = complete && checksum::checksum(&self.bytes[at..at + header_len]) == 0;
        self.put(s, spec::L3_OK, ok.into());
        self.put(s, spec::IPV4_CHECKSUM_OK, checksum_ok.into());
        if !(version_ok && complete) {
            return None;
        }
        let payload_end = if length_ok { at + total } else { end };
        Some(L3 {
            version: IpVersion::V4,
            offset: at,
            header_len,
            end: payload_end.min(self.bytes.len()),
            protocol,
            fragment,
            first_fragment: frag_offset == 0,
            ok,
        })
    }

    fn ipv6(&mut self, at: usize, end: usize, side: &SideFields) -> Option<L3> {
        if !self.need(Layer::Ipv6, at, ipv6::LEN, end) {
            return None;
        }
        let s = side.spec;
        let version_ok = self.get(at, ipv6::VERSION) == 6;
        self.put(s, spec::IP_VERSION, 6);
        self.copy(at, ipv6::DSCP, s, spec::IP_DSCP);
        self.copy(at, ipv6::ECN, s, spec::IP_ECN);
        self.copy(at, ipv6::HOP_LIMIT, s, spec::IP_TTL_HOPLIMIT);
        self.copy(at, ipv6::FLOW_LABEL, Section::Misc, side.ipv6_flow_label);
        let src = [
            spec::SRC_IP_127_96,
            spec::SRC_IP_95_64,
            spec::SRC_IP_63_32,
            spec::SRC_IP_31_0,
        ];
        let dst = [
            spec::DST_IP_127_96,
            spec::DST_IP_95_64,
            spec::DST_IP_63_32,
            spec::DST_IP_31_0,
        ];
        for i in 0..4 {
            self.copy(at, ipv6::src_word(i), s, src[i]);
            self.copy(at, ipv6::dst_word(i), s, dst[i]);
        }
        if !version_ok {
            self.stopped(Layer::Ipv6, at, StopReason::Malformed);
            self.put(s, spec::L3_OK, 0);
            return None;
        }
        let declared = ipv6::LEN + self.get(at, ipv6::PAYLOAD_LEN) as usize;
        let length_ok = self.has(at, declared, end);
        let payload_end = if length_ok { at + declared } else { end }.min(self.bytes.len());

        let next = self.get(at, ipv6::NEXT_HEADER) as u8;
        let ext_area = &self.bytes[at + ipv6::LEN..payload_end];
        let (exts, protocol, _, error) =
            Ipv6ExtensionsSlice::from_slice_lax(IpNumber(next), ext_area);
        let ext_len = exts.slice().len();
        let mut frag_offset = 0;
        let mut more_fragments = false;
        // etherparse 0.16's iterator does not stop where `from_slice_lax` stopped: after
        // an error it follows the last good header's next-header field past the valid
        // bytes. Stop once the valid headers are used up.
        let mut seen = 0;
        let mut headers = exts.into_iter();
        while seen < ext_len {
            let Some(ext) = headers.next() else { break };
            seen += ext_slice_len(&ext);
            if let Ipv6ExtensionSlice::Fragment(f) = ext {
                // Read with our layout: etherparse 0.16 decodes the offset and M bits of
                // this header in the wrong positions (its issue #150, fixed in 0.20); its
                // walk of the header lengths is right.
                let raw = f.slice();
                frag_offset = bits::get(raw, ipv6_frag::FRAG_OFFSET);
                more_fragments = bits::get(raw, ipv6_frag::M) != 0;
            }
        }
        let fragment = more_fragments || frag_offset != 0;
        self.put(s, spec::IP_PROTOCOL, protocol.0.into());
        self.put(s, spec::FRAG, fragment.into());
        let ok = length_ok && error.is_none();
        self.put(s, spec::L3_OK, ok.into());
        if let Some((e, _)) = &error {
            let reason = match e {
                etherparse::err::ipv6_exts::HeaderSliceError::Len(_) => StopReason::Truncated,
                etherparse::err::ipv6_exts::HeaderSliceError::Content(_) => StopReason::Malformed,
            };
            self.stopped(Layer::Ipv6Ext, at + ipv6::LEN + ext_len, reason);
        }
        Some(L3 {
            version: IpVersion::V6,
            offset: at,
            header_len: ipv6::LEN + ext_len,
            end: payload_end,
            protocol: protocol.0,
            fragment,
            // After a broken extension header nothing is an L4 header.
            first_fragment: frag_offset == 0 && error.is_none(),
            ok,
        })
    }

    fn l4(&mut self, l3: &L3, side: &SideFields) -> Option<L4> {
        if !l3.first_fragment {
            return None;
        }
        let (at, end, s) = (l3.payload(), l3.end, side.spec);
        let pseudo = |bytes| pseudo_header(bytes, l3);
        let verify = !l3.fragment;
        match (l3.protocol, l3.version) {
            (ip_proto::TCP, _) => {
                if !self.need(Layer::Tcp, at, tcp::MIN_LEN, end) {
                    return None;
                }
                self.copy(at, tcp::SPORT, s, spec::TCP_SPORT);
                self.copy(at, tcp::DPORT, s, spec::TCP_DPORT);
                self.copy(at, tcp::FLAGS, s, spec::TCP_FLAGS);
                self.copy(at, tcp::SEQ, Section::Misc3, side.tcp_seq);
                self.copy(at, tcp::ACK, Section::Misc3, side.tcp_ack);
                let hl = self.get(at, tcp::DATA_OFFSET) as usize * 4;
                let ok = hl >= tcp::MIN_LEN && self.has(at, hl, end);
                let sum_ok = ok
                    && verify
                    && checksum::l4_checksum(
                        pseudo(self.bytes),
                        ip_proto::TCP,
                        &self.bytes[at..end],
                    ) == 0;
                self.put(s, spec::L4_OK, ok.into());
                self.put(s, spec::L4_CHECKSUM_OK, sum_ok.into());
                Some(L4 {
                    kind: L4Kind::Tcp,
                    offset: at,
                    end,
                })
            }
            (ip_proto::UDP, _) => {
                if !self.need(Layer::Udp, at, udp::LEN, end) {
                    return None;
                }
                self.copy(at, udp::SPORT, s, spec::UDP_SPORT);
                self.copy(at, udp::DPORT, s, spec::UDP_DPORT);
                let len = self.get(at, udp::LENGTH) as usize;
                let ok = len >= udp::LEN && self.has(at, len, end);
                let seg_end = if ok { at + len } else { end };
                let stored = self.get(at, udp::CHECKSUM);
                let sum_ok = ok
                    && verify
                    && ((stored == 0 && l3.version == IpVersion::V4)
                        || checksum::l4_checksum(
                            pseudo(self.bytes),
                            ip_proto::UDP,
                            &self.bytes[at..seg_end],
                        ) == 0);
                self.put(s, spec::L4_OK, ok.into());
                self.put(s, spec::L4_CHECKSUM_OK, sum_ok.into());
                Some(L4 {
                    kind: L4Kind::Udp,
                    offset: at,
                    end: seg_end,
                })
            }
            (ip_proto::ICMP, IpVersion::V4) | (ip_proto::ICMPV6, IpVersion::V6) => {
                if !self.need(Layer::Icmp, at, icmp::LEN, end) {
                    return None;
                }
                let v6 = l3.version == IpVersion::V6;
                let (ty, code, data) = if v6 {
                    (
                        misc3::ICMPV6_TYPE,
                        misc3::ICMPV6_CODE,
                        misc3::ICMPV6_HEADER_DATA,
                    )
                } else {
                    (misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA)
                };
                self.copy(at, icmp::TYPE, Section::Misc3, ty);
                self.copy(at, icmp::CODE, Section::Misc3, code);
                self.copy(at, icmp::DATA, Section::Misc3, data);
                let dwords = Some([self.get32(at, icmp::DW0), self.get32(at, icmp::DATA)]);
                if v6 {
                    self.flex.icmpv6 = dwords;
                } else {
                    self.flex.icmp = dwords;
                }
                Some(L4 {
                    kind: if v6 { L4Kind::Icmpv6 } else { L4Kind::Icmp },
                    offset: at,
                    end,
                })
            }
            (ip_proto::ESP, _) => {
                if !self.need(Layer::Esp, at, esp::LEN, end) {
                    return None;
                }
                self.copy(at, esp::SPI, Section::Misc, side.esp_spi);
                Some(L4 {
                    kind: L4Kind::Esp,
                    offset: at,
                    end,
                })
            }
            _ => None,
        }
    }

    /// Recognises a tunnel after the outer headers and parses its header; returns it
    /// with what the inner packet starts with (`None` when it is not parsed).
    fn tunnel(&mut self, outer: &Headers) -> Option<(Tunnel, Option<Start>)> {
        let l3 = outer.l3.as_ref()?;
        let (tunnel, start) = match &outer.l4 {
            Some(l4) if l4.kind == L4Kind::Udp => {
                let dport = self.get(l4.offset, udp::DPORT) as u16;
                let (at, end) = (l4.offset + udp::LEN, l4.end);
                match dport {
                    udp_port::VXLAN => self.vxlan(at, end),
                    udp_port::VXLAN_GPE => self.vxlan_gpe(at, end),
                    udp_port::GENEVE => self.geneve(at, end),
                    udp_port::MPLS => self.mpls_over_udp(at, end),
                    udp_port::GTPU => self.gtpu(at, end),
                    udp_port::ROCE_V2 => {
                        if self.need(Layer::Bth, at, bth::LEN, end) {
                            self.copy(at, bth::DEST_QP, Section::Misc, misc::BTH_DST_QP);
                        }
                        return None;
                    }
                    _ => return None,
                }
            }
            None if l3.protocol == ip_proto::GRE && l3.first_fragment => {
                self.gre(l3.payload(), l3.end)
            }
            _ => return None,
        }?;
        // The raw tunnel header words, zero-padded where the packet ends.
        let mut raw = [0u8; 16];
        let avail = tunnel
            .end
            .min(self.bytes.len())
            .saturating_sub(tunnel.offset);
        let n = avail.min(raw.len());
        raw[..n].copy_from_slice(&self.bytes[tunnel.offset..tunnel.offset + n]);
        let words = [
            misc5::TUNNEL_HEADER_0,
            misc5::TUNNEL_HEADER_1,
            misc5::TUNNEL_HEADER_2,
            misc5::TUNNEL_HEADER_3,
        ];
        for (i, field) in words.iter().enumerate() {
            let w =
                u32::from_be_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
            self.put(Section::Misc5, *field, w.into());
        }
        Some((tunnel, start))
    }

    fn tunnel_at(kind: TunnelKind, at: usize, end: usize) -> Tunnel {
        Tunnel {
            kind,
            offset: at,
            len: None,
            end,
            mpls: None,
        }
    }

    fn vxlan(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::Vxlan, at, end);
        if !self.need(Layer::Vxlan, at, vxlan::LEN, end) {
            return Some((t, None));
        }
        self.copy(at, vxlan::VNI, Section::Misc, misc::VXLAN_VNI);
        t.len = Some(vxlan::LEN);
        Some((t, Some(Start::Ethernet)))
    }

    fn vxlan_gpe(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::VxlanGpe, at, end);
        if !self.need(Layer::VxlanGpe, at, vxlan_gpe::LEN, end) {
            return Some((t, None));
        }
        let m3 = Section::Misc3;
        self.copy(at, vxlan_gpe::FLAGS, m3, misc3::OUTER_VXLAN_GPE_FLAGS);
        self.copy(
            at,
            vxlan_gpe::NEXT_PROTOCOL,
            m3,
            misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
        );
        self.copy(at, vxlan_gpe::VNI, m3, misc3::OUTER_VXLAN_GPE_VNI);
        t.len = Some(vxlan_gpe::LEN);
        let start = match self.get(at, vxlan_gpe::NEXT_PROTOCOL) as u8 {
            vxlan_gpe::NP_IPV4 => Some(Start::Ip(IpVersion::V4)),
            vxlan_gpe::NP_IPV6 => Some(Start::Ip(IpVersion::V6)),
            vxlan_gpe::NP_ETHERNET => Some(Start::Ethernet),
            _ => None,
        };
        Some((t, start))
    }

    fn geneve(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::Geneve, at, end);
        if !self.need(Layer::Geneve, at, geneve::LEN, end) {
            return Some((t, None));
        }
        let m = Section::Misc;
        self.copy(at, geneve::VNI, m, misc::GENEVE_VNI);
        self.copy(at, geneve::OAM, m, misc::GENEVE_OAM);
        self.copy(at, geneve::OPT_LEN, m, misc::GENEVE_OPT_LEN);
        self.copy(at, geneve::PROTOCOL, m, misc::GENEVE_PROTOCOL_TYPE);
        let opts_len = self.get(at, geneve::OPT_LEN) as usize * 4;
        let opts = at + geneve::LEN;
        if opts_len >= geneve::OPT_HDR_LEN && self.has(opts, geneve::OPT_HDR_LEN, end) {
            self.put(m, misc::GENEVE_TLV_OPTION_0_EXIST, 1);
            let data_words = self.get(opts, geneve::OPT_DATA_LEN) as usize;
            let data_at = opts + geneve::OPT_HDR_LEN;
            let data = if data_words >= 1
                && opts_len >= geneve::OPT_HDR_LEN + 4
                && self.has(data_at, 4, end)
            {
                self.get32(data_at, BitField::new(0, 32))
            } else {
                0
            };
            self.put(Section::Misc3, misc3::GENEVE_TLV_OPTION_0_DATA, data.into());
            self.flex.geneve_opt0 = Some(data);
        }
        if !self.need(Layer::Geneve, at, geneve::LEN + opts_len, end) {
            return Some((t, None));
        }
        t.len = Some(geneve::LEN + opts_len);
        let start = match self.get(at, geneve::PROTOCOL) as u16 {
            ethertype::TEB => Some(Start::Ethernet),
            ethertype::IPV4 => Some(Start::Ip(IpVersion::V4)),
            ethertype::IPV6 => Some(Start::Ip(IpVersion::V6)),
            _ => None,
        };
        Some((t, start))
    }

    fn gre(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::Gre, at, end);
        if !self.need(Layer::Gre, at, gre::LEN, end) {
            return Some((t, None));
        }
        let m = Section::Misc;
        self.copy(at, gre::C, m, misc::GRE_C_PRESENT);
        self.copy(at, gre::K, m, misc::GRE_K_PRESENT);
        self.copy(at, gre::S, m, misc::GRE_S_PRESENT);
        self.copy(at, gre::PROTOCOL, m, misc::GRE_PROTOCOL);
        let c = self.get(at, gre::C) as usize;
        let k = self.get(at, gre::K) != 0;
        let s = self.get(at, gre::S) as usize;
        let len = gre::LEN + gre::OPT_LEN * (c + usize::from(k) + s);
        if k {
            let key_at = at + gre::LEN + gre::OPT_LEN * c;
            if self.has(key_at, 4, end) {
                let key = self.get(key_at, BitField::new(0, 32));
                self.put(m, misc::GRE_KEY_H, key >> 8);
                self.put(m, misc::GRE_KEY_L, key & 0xff);
            }
        }
        if !self.need(Layer::Gre, at, len, end) {
            return Some((t, None));
        }
        t.len = Some(len);
        if self.get(at, gre::VERSION) != 0 {
            return Some((t, None));
        }
        let payload = at + len;
        let start = match self.get(at, gre::PROTOCOL) as u16 {
            ethertype::TEB => Some(Start::Ethernet),
            ethertype::IPV4 => Some(Start::Ip(IpVersion::V4)),
            ethertype::IPV6 => Some(Start::Ip(IpVersion::V6)),
            ethertype::MPLS_UC | ethertype::MPLS_MC => {
                t.mpls = Some(payload);
                if self.has(payload, mpls::LEN, end) {
                    self.flex.mpls_over_gre = Some(self.get32(payload, mpls::ENTRY));
                }
                let Some(after) = self.mpls_stack(payload, end, &MPLS_OVER_GRE) else {
                    t.len = None;
                    return Some((t, None));
                };
                t.len = Some(after - at);
                self.ip_by_version(after, end)
            }
            _ => None,
        };
        Some((t, start))
    }

    fn mpls_over_udp(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::MplsOverUdp, at, end);
        t.mpls = Some(at);
        if self.has(at, mpls::LEN, end) {
            self.flex.mpls_over_udp = Some(self.get32(at, mpls::ENTRY));
        }
        let Some(after) = self.mpls_stack(at, end, &MPLS_OVER_UDP) else {
            return Some((t, None));
        };
        t.len = Some(after - at);
        Some((t, self.ip_by_version(after, end)))
    }

    fn gtpu(&mut self, at: usize, end: usize) -> Option<(Tunnel, Option<Start>)> {
        let mut t = Self::tunnel_at(TunnelKind::Gtpu, at, end);
        if !self.need(Layer::Gtpu, at, gtpu::LEN, end) {
            return Some((t, None));
        }
        let m3 = Section::Misc3;
        self.copy(at, gtpu::FLAGS, m3, misc3::GTPU_MSG_FLAGS);
        self.copy(at, gtpu::MSG_TYPE, m3, misc3::GTPU_MSG_TYPE);
        self.copy(at, gtpu::TEID, m3, misc3::GTPU_TEID);
        self.copy(at, gtpu::DW0, m3, misc3::GTPU_DW_0);
        self.flex.gtpu_dw0 = Some(self.get32(at, gtpu::DW0));
        self.flex.gtpu_teid = Some(self.get32(at, gtpu::TEID));
        let flags = self.get(at, gtpu::FLAGS) as u8;
        let mut pos = at + gtpu::LEN;
        if flags & (gtpu::FLAG_E | gtpu::FLAG_S | gtpu::FLAG_PN) != 0 {
            if !self.need(Layer::Gtpu, at, gtpu::LEN + gtpu::OPT_LEN, end) {
                return Some((t, None));
            }
            let dw2 = self.get32(at, gtpu::DW2);
            self.put(m3, misc3::GTPU_DW_2, dw2.into());
            self.flex.gtpu_dw2 = Some(dw2);
            pos += gtpu::OPT_LEN;
            let mut next_type = if flags & gtpu::FLAG_E != 0 {
                dw2 & 0xff
            } else {
                0
            };
            let mut count = 0;
            while next_type != 0 {
                if count == MAX_GTPU_EXTENSIONS {
                    self.stopped(Layer::Gtpu, pos, StopReason::Malformed);
                    return Some((t, None));
                }
                if !self.need(Layer::Gtpu, pos, 1, end) {
                    return Some((t, None));
                }
                let len = usize::from(self.bytes[pos]) * 4;
                if len == 0 {
                    self.stopped(Layer::Gtpu, pos, StopReason::Malformed);
                    return Some((t, None));
                }
                if !self.need(Layer::Gtpu, pos, len, end) {
                    return Some((t, None));
                }
                if count == 0 {
                    let dw = self.get32(pos, BitField::new(0, 32));
                    self.put(m3, misc3::GTPU_FIRST_EXT_DW_0, dw.into());
                    self.flex.gtpu_first_ext_dw0 = Some(dw);
                }
                next_type = u32::from(self.bytes[pos + len - 1]);
                pos += len;
                count += 1;
            }
        }
        t.len = Some(pos - at);
        let start = if self.get(at, gtpu::MSG_TYPE) as u8 == gtpu::MSG_TPDU {
            self.ip_by_version(pos, end)
        } else {
            None
        };
        Some((t, start))
    }
}

/// The bytes of one IPv6 extension header.
fn ext_slice_len(ext: &Ipv6ExtensionSlice<'_>) -> usize {
    match ext {
        Ipv6ExtensionSlice::HopByHop(h)
        | Ipv6ExtensionSlice::Routing(h)
        | Ipv6ExtensionSlice::DestinationOptions(h) => h.slice().len(),
        Ipv6ExtensionSlice::Fragment(f) => f.slice().len(),
        Ipv6ExtensionSlice::Authentication(a) => a.slice().len(),
    }
}
