//! Building: a real wire packet from a match value, such that parsing the packet gives
//! back every field the value sets.
//!
//! A match value says nothing about the fields it leaves zero, but a packet must have
//! them. The builder makes the smallest packet that carries the value: every field the
//! value leaves zero is zero in the packet too (MACs, TTL, ports, identification …),
//! except what the headers structurally need:
//!
//! - the ethertype follows the IP version (0x0800 / 0x86dd), or is MPLS (0x8847) when an
//!   MPLS-after-Ethernet field is set; the IP version is 4 unless the value says 6 or sets
//!   a field only IPv6 has (upper address words, flow label, ICMPv6);
//! - `ip_protocol` follows the transport or tunnel fields (TCP 6, UDP 17, ICMP 1, ICMPv6
//!   58, ESP 50, GRE 47), and a bare `ip_protocol` of TCP, UDP, ICMP or ESP gets its
//!   (zeroed) header;
//! - lengths, IHL 5, TCP data offset 5 and all checksums are correct;
//! - a tunnel is chosen by its fields, by the UDP destination port (VXLAN 4789, VXLAN-GPE
//!   4790, GENEVE 6081, MPLS over UDP 6635, GTP-U 2152; RoCE v2 4791 for `bth_dst_qp`), by
//!   `ip_protocol` 47 (GRE), or, when only inner fields are set, VXLAN; the tunnel's own
//!   defaults are VXLAN flags 0x08, VXLAN-GPE flags 0x0c with the next protocol of the
//!   inner packet, GENEVE protocol 0x6558 (Ethernet) and enough option words for option 0,
//!   GRE protocol by the payload (0x6558 when inner L2 fields are set, else the inner IP's
//!   ethertype, 0x8847 for MPLS), GTP-U flags 0x30 (version 1) and message type 0xff;
//! - an MPLS entry whose bottom-of-stack bit is 0 is followed by a second entry (label 0,
//!   bottom of stack) so that the value's 0 is carried;
//! - the frame is padded with zeros to 60 bytes.
//!
//! After building, the packet is parsed and compared with the value. [`build_from_match`]
//! fails on the first field not reproduced; [`build_from_match_lossy`] returns the packet
//! and the list of such fields (for example a VLAN id without `cvlan_tag` / `svlan_tag`:
//! an untagged frame has no VLAN id). Choices no packet can satisfy (two tunnel kinds, TCP
//! and UDP ports on one side, an ethertype that contradicts the IP version …) are errors
//! in both. misc4 (programmable sample ids) and the MACsec tags of misc5 are not packet
//! fields: values using them are refused. The raw tunnel header words of misc5 are not
//! chosen by the builder, only checked: they are reproduced when they agree with the
//! tunnel the other fields describe (as in a value parsed from a packet).
//!
//! The metadata fields of the value (source port, source SQ, vhca port, e-switch owner,
//! registers) are written into the packet's metadata, over those of `meta`.

use ste_builder::bits::{self, BitField};
use ste_builder::match_param::{FieldRef, Section};
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_spec as spec,
};
use ste_builder::MatchParam;

use super::checksum::{self, PseudoHeader};
use super::parse::IpVersion;
use super::side::{MplsFields, SideFields, INNER, MPLS_OVER_GRE, MPLS_OVER_UDP, OUTER, REG_C};
use super::wire::{
    bth, esp, eth, ethertype, geneve, gre, gtpu, icmp, ip_proto, ipv4, ipv6, ipv6_frag, mpls, tcp,
    udp, udp_port, vlan, vxlan, vxlan_gpe,
};
use super::{Metadata, Packet};

/// The shortest Ethernet frame (without FCS); shorter frames are padded with zeros.
pub const MIN_FRAME: usize = 60;

/// Why a match value cannot be turned into a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The value asks for something no packet has.
    #[error("{field} = {value:#x}: {reason}")]
    Conflict {
        /// The field that cannot be honoured.
        field: FieldRef,
        /// Its value.
        value: u64,
        /// Why.
        reason: &'static str,
    },
    /// The value sets a field the builder does not produce.
    #[error("{field} is not a packet field the builder can produce: {reason}")]
    Unsupported {
        /// The field.
        field: FieldRef,
        /// Why.
        reason: &'static str,
    },
    /// A field the packet does not reproduce (strict building only).
    #[error("{} = {:#x} is not carried by the packet (it parses as {:#x})", .0.field, .0.wanted, .0.got)]
    NotReproduced(Dropped),
}

/// A field of the value that the built packet does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The field.
    pub field: FieldRef,
    /// The value's value.
    pub wanted: u64,
    /// What the packet parses as.
    pub got: u64,
}

/// A packet whose parse reproduces every field `value` sets, with metadata `meta`
/// updated by the value's metadata fields.
pub fn build_from_match(value: &MatchParam, meta: Metadata) -> Result<Packet, BuildError> {
    let (packet, dropped) = build_from_match_lossy(value, meta)?;
    match dropped.first() {
        Some(d) => Err(BuildError::NotReproduced(*d)),
        None => Ok(packet),
    }
}

/// Like [`build_from_match`], but a field the packet cannot carry is reported instead of
/// failing the build.
pub fn build_from_match_lossy(
    value: &MatchParam,
    meta: Metadata,
) -> Result<(Packet, Vec<Dropped>), BuildError> {
    refuse_unsupported(value)?;
    let meta = merge_metadata(value, meta);
    let mut bytes = Builder {
        v: value,
        icmp_inner: false,
    }
    .frame()?;
    if bytes.len() < MIN_FRAME {
        bytes.resize(MIN_FRAME, 0);
    }
    let packet = Packet::new(bytes, meta);
    let got = packet.fields();
    let dropped = value
        .nonzero_fields()
        .filter_map(|(field, wanted)| {
            let g = got.get(field.section, field.field);
            (g != wanted).then_some(Dropped {
                field,
                wanted,
                got: g,
            })
        })
        .collect();
    Ok((packet, dropped))
}

fn field_ref(section: Section, field: BitField) -> FieldRef {
    let name = section
        .fields()
        .iter()
        .find(|(_, f)| *f == field)
        .map_or("?", |(n, _)| n);
    FieldRef {
        section,
        name,
        field,
    }
}

/// Refuses the fields no packet content can be chosen for. The raw tunnel header words
/// of misc5 are not refused: they are checked like every other field, so a value parsed
/// from a packet can be built again.
fn refuse_unsupported(value: &MatchParam) -> Result<(), BuildError> {
    for (field, _) in value.nonzero_fields() {
        let reason = match field.section {
            Section::Misc4 => "programmable sample fields name flex parsers, not header fields",
            Section::Misc5 if field.name.starts_with("macsec") => "MACsec is not parsed",
            _ => continue,
        };
        return Err(BuildError::Unsupported { field, reason });
    }
    Ok(())
}

/// The metadata with the value's metadata fields (where non-zero) written over it.
fn merge_metadata(v: &MatchParam, mut meta: Metadata) -> Metadata {
    let get = |s, f| v.get(s, f);
    let over = |cur: &mut u32, new: u64| {
        if new != 0 {
            *cur = new as u32;
        }
    };
    let mut port = u32::from(meta.source_vport);
    over(&mut port, get(Section::Misc, misc::SOURCE_PORT));
    meta.source_vport = port as u16;
    over(&mut meta.source_qp, get(Section::Misc, misc::SOURCE_SQN));
    let mut vhca_port = u32::from(meta.source_vhca_port);
    over(&mut vhca_port, get(Section::Misc, misc::SOURCE_VHCA_PORT));
    meta.source_vhca_port = vhca_port as u8;
    let mut owner = u32::from(meta.source_eswitch_owner_vhca_id);
    over(
        &mut owner,
        get(Section::Misc, misc::SOURCE_ESWITCH_OWNER_VHCA_ID),
    );
    meta.source_eswitch_owner_vhca_id = owner as u16;
    over(&mut meta.reg_a, get(Section::Misc2, misc2::METADATA_REG_A));
    for (reg, field) in meta.reg_c.iter_mut().zip(REG_C) {
        over(reg, get(Section::Misc2, field));
    }
    meta
}

/// Tunnels the builder can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelPlan {
    Vxlan,
    VxlanGpe,
    Geneve,
    Gre,
    MplsOverUdp,
    Gtpu,
    /// Not a tunnel: a RoCE v2 BTH after UDP.
    Bth,
}

impl TunnelPlan {
    fn udp_port(self) -> Option<u16> {
        match self {
            TunnelPlan::Vxlan => Some(udp_port::VXLAN),
            TunnelPlan::VxlanGpe => Some(udp_port::VXLAN_GPE),
            TunnelPlan::Geneve => Some(udp_port::GENEVE),
            TunnelPlan::MplsOverUdp => Some(udp_port::MPLS),
            TunnelPlan::Gtpu => Some(udp_port::GTPU),
            TunnelPlan::Bth => Some(udp_port::ROCE_V2),
            TunnelPlan::Gre => None,
        }
    }

    fn carries_inner(self) -> bool {
        self != TunnelPlan::Bth
    }
}

/// Transport headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4Plan {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Esp,
    Gre,
    /// Another protocol number, with an empty payload.
    Other(u8),
}

impl L4Plan {
    fn protocol(self) -> u8 {
        match self {
            L4Plan::Tcp => ip_proto::TCP,
            L4Plan::Udp => ip_proto::UDP,
            L4Plan::Icmp => ip_proto::ICMP,
            L4Plan::Icmpv6 => ip_proto::ICMPV6,
            L4Plan::Esp => ip_proto::ESP,
            L4Plan::Gre => ip_proto::GRE,
            L4Plan::Other(p) => p,
        }
    }
}

/// What the inner packet starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InnerStart {
    Ethernet,
    Ip(IpVersion),
}

/// A header of `len` zero bytes with fields written into it.
struct Hdr(Vec<u8>);

impl Hdr {
    fn new(len: usize) -> Self {
        Hdr(vec![0; len])
    }

    fn set(&mut self, field: BitField, value: u64) -> &mut Self {
        bits::set(&mut self.0, field, value);
        self
    }
}

struct Builder<'a> {
    v: &'a MatchParam,
    /// The ICMP fields belong to the inner packet (the packet is tunnelled).
    icmp_inner: bool,
}

impl Builder<'_> {
    fn get(&self, section: Section, field: BitField) -> u64 {
        self.v.get(section, field)
    }

    fn spec(&self, side: &SideFields, field: BitField) -> u64 {
        self.get(side.spec, field)
    }

    fn any(&self, fields: &[(Section, BitField)]) -> bool {
        fields.iter().any(|&(s, f)| self.get(s, f) != 0)
    }

    fn conflict(&self, section: Section, field: BitField, reason: &'static str) -> BuildError {
        BuildError::Conflict {
            field: field_ref(section, field),
            value: self.get(section, field),
            reason,
        }
    }

    // ---- what the value asks for ------------------------------------------------------

    fn l2_fields(&self, side: &SideFields) -> bool {
        let s = side.spec;
        let m = Section::Misc;
        self.any(&[
            (s, spec::SMAC_47_16),
            (s, spec::SMAC_15_0),
            (s, spec::DMAC_47_16),
            (s, spec::DMAC_15_0),
            (s, spec::ETHERTYPE),
            (s, spec::FIRST_PRIO),
            (s, spec::FIRST_CFI),
            (s, spec::FIRST_VID),
            (s, spec::CVLAN_TAG),
            (s, spec::SVLAN_TAG),
            (m, side.second_prio),
            (m, side.second_cfi),
            (m, side.second_vid),
            (m, side.second_cvlan_tag),
            (m, side.second_svlan_tag),
        ]) || self.mpls_fields(&side.first_mpls)
    }

    fn l3_fields(&self, side: &SideFields) -> bool {
        let s = side.spec;
        self.any(&[
            (s, spec::IP_VERSION),
            (s, spec::IP_PROTOCOL),
            (s, spec::IP_DSCP),
            (s, spec::IP_ECN),
            (s, spec::FRAG),
            (s, spec::IPV4_IHL),
            (s, spec::IP_TTL_HOPLIMIT),
            (s, spec::L3_OK),
            (s, spec::IPV4_CHECKSUM_OK),
            (s, spec::SRC_IP_127_96),
            (s, spec::SRC_IP_95_64),
            (s, spec::SRC_IP_63_32),
            (s, spec::SRC_IP_31_0),
            (s, spec::DST_IP_127_96),
            (s, spec::DST_IP_95_64),
            (s, spec::DST_IP_63_32),
            (s, spec::DST_IP_31_0),
            (Section::Misc, side.ipv6_flow_label),
        ])
    }

    fn v6_only_fields(&self, side: &SideFields) -> bool {
        let s = side.spec;
        self.any(&[
            (s, spec::SRC_IP_127_96),
            (s, spec::SRC_IP_95_64),
            (s, spec::SRC_IP_63_32),
            (s, spec::DST_IP_127_96),
            (s, spec::DST_IP_95_64),
            (s, spec::DST_IP_63_32),
            (Section::Misc, side.ipv6_flow_label),
        ])
    }

    fn tcp_fields(&self, side: &SideFields) -> bool {
        let s = side.spec;
        self.any(&[
            (s, spec::TCP_SPORT),
            (s, spec::TCP_DPORT),
            (s, spec::TCP_FLAGS),
            (Section::Misc3, side.tcp_seq),
            (Section::Misc3, side.tcp_ack),
        ])
    }

    fn udp_fields(&self, side: &SideFields) -> bool {
        self.any(&[(side.spec, spec::UDP_SPORT), (side.spec, spec::UDP_DPORT)])
    }

    fn icmp_fields(&self) -> bool {
        let m3 = Section::Misc3;
        self.any(&[
            (m3, misc3::ICMP_TYPE),
            (m3, misc3::ICMP_CODE),
            (m3, misc3::ICMP_HEADER_DATA),
        ])
    }

    fn icmpv6_fields(&self) -> bool {
        let m3 = Section::Misc3;
        self.any(&[
            (m3, misc3::ICMPV6_TYPE),
            (m3, misc3::ICMPV6_CODE),
            (m3, misc3::ICMPV6_HEADER_DATA),
        ])
    }

    fn mpls_fields(&self, f: &MplsFields) -> bool {
        f.all().iter().any(|&x| self.get(Section::Misc2, x) != 0)
    }

    /// The value sets fields of the inner packet (ICMP ones only once the packet is known
    /// to be tunnelled: otherwise they are outer fields).
    fn inner_fields(&self) -> bool {
        let i = &INNER;
        self.icmp_inner && (self.icmp_fields() || self.icmpv6_fields())
            || self.l2_fields(i)
            || self.l3_fields(i)
            || self.tcp_fields(i)
            || self.udp_fields(i)
            || self.any(&[
                (i.spec, spec::TCP_FLAGS),
                (i.spec, spec::L4_OK),
                (i.spec, spec::L4_CHECKSUM_OK),
                (Section::Misc, i.esp_spi),
            ])
    }

    /// The tunnel the value asks for, if any.
    fn tunnel(&self) -> Result<Option<TunnelPlan>, BuildError> {
        let (m, m2, m3) = (Section::Misc, Section::Misc2, Section::Misc3);
        let mut asked: Vec<(TunnelPlan, Section, BitField)> = Vec::new();
        let mut ask = |plan, fields: &[(Section, BitField)]| {
            if let Some(&(s, f)) = fields.iter().find(|&&(s, f)| self.get(s, f) != 0) {
                asked.push((plan, s, f));
            }
        };
        ask(TunnelPlan::Vxlan, &[(m, misc::VXLAN_VNI)]);
        ask(
            TunnelPlan::VxlanGpe,
            &[
                (m3, misc3::OUTER_VXLAN_GPE_VNI),
                (m3, misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL),
                (m3, misc3::OUTER_VXLAN_GPE_FLAGS),
            ],
        );
        ask(
            TunnelPlan::Geneve,
            &[
                (m, misc::GENEVE_VNI),
                (m, misc::GENEVE_OAM),
                (m, misc::GENEVE_OPT_LEN),
                (m, misc::GENEVE_PROTOCOL_TYPE),
                (m, misc::GENEVE_TLV_OPTION_0_EXIST),
                (m3, misc3::GENEVE_TLV_OPTION_0_DATA),
            ],
        );
        let gre_fields: Vec<_> = [
            misc::GRE_C_PRESENT,
            misc::GRE_K_PRESENT,
            misc::GRE_S_PRESENT,
            misc::GRE_PROTOCOL,
            misc::GRE_KEY_H,
            misc::GRE_KEY_L,
        ]
        .iter()
        .map(|&f| (m, f))
        .chain(MPLS_OVER_GRE.all().iter().map(|&f| (m2, f)))
        .collect();
        ask(TunnelPlan::Gre, &gre_fields);
        let mpls_udp: Vec<_> = MPLS_OVER_UDP.all().iter().map(|&f| (m2, f)).collect();
        ask(TunnelPlan::MplsOverUdp, &mpls_udp);
        ask(
            TunnelPlan::Gtpu,
            &[
                (m3, misc3::GTPU_TEID),
                (m3, misc3::GTPU_MSG_TYPE),
                (m3, misc3::GTPU_MSG_FLAGS),
                (m3, misc3::GTPU_DW_0),
                (m3, misc3::GTPU_DW_2),
                (m3, misc3::GTPU_FIRST_EXT_DW_0),
            ],
        );
        ask(TunnelPlan::Bth, &[(m, misc::BTH_DST_QP)]);
        let by_port = match self.spec(&OUTER, spec::UDP_DPORT) as u16 {
            udp_port::VXLAN => Some(TunnelPlan::Vxlan),
            udp_port::VXLAN_GPE => Some(TunnelPlan::VxlanGpe),
            udp_port::GENEVE => Some(TunnelPlan::Geneve),
            udp_port::MPLS => Some(TunnelPlan::MplsOverUdp),
            udp_port::GTPU => Some(TunnelPlan::Gtpu),
            udp_port::ROCE_V2 => Some(TunnelPlan::Bth),
            _ => None,
        };
        if let Some(p) = by_port {
            asked.push((p, OUTER.spec, spec::UDP_DPORT));
        }
        if self.spec(&OUTER, spec::IP_PROTOCOL) as u8 == ip_proto::GRE {
            asked.push((TunnelPlan::Gre, OUTER.spec, spec::IP_PROTOCOL));
        }
        let mut plan = None;
        for &(p, s, f) in &asked {
            match plan {
                None => plan = Some(p),
                Some(q) if q == p => {}
                Some(_) => return Err(self.conflict(s, f, "names a second, different tunnel")),
            }
        }
        if plan.is_none() && self.inner_fields() {
            // Inner fields need a tunnel: VXLAN unless the outer headers exclude it.
            plan = Some(TunnelPlan::Vxlan);
        }
        if plan.is_some_and(|p| !p.carries_inner()) && self.inner_fields() {
            let (s, f) = (Section::Misc, misc::BTH_DST_QP);
            return Err(self.conflict(s, f, "RoCE v2 carries no inner packet"));
        }
        if let Some(port) = plan.and_then(TunnelPlan::udp_port) {
            let dport = self.spec(&OUTER, spec::UDP_DPORT) as u16;
            if dport != 0 && dport != port {
                return Err(self.conflict(OUTER.spec, spec::UDP_DPORT, "is not the tunnel's port"));
            }
        }
        Ok(plan)
    }

    /// The IP version of a side: `forced` by the carrier (a tunnel's protocol field),
    /// or from `ip_version` / `ethertype` / IPv6-only fields; `None` for no IP header.
    fn ip_version(
        &self,
        side: &SideFields,
        need_ip: bool,
        v6_hint: bool,
        forced: Option<IpVersion>,
    ) -> Result<Option<IpVersion>, BuildError> {
        let s = side.spec;
        let by_version = match self.spec(side, spec::IP_VERSION) {
            0 => None,
            4 => Some(IpVersion::V4),
            6 => Some(IpVersion::V6),
            _ => return Err(self.conflict(s, spec::IP_VERSION, "only IPv4 and IPv6 are built")),
        };
        let et = self.spec(side, spec::ETHERTYPE) as u16;
        let by_ethertype = match et {
            ethertype::IPV4 => Some(IpVersion::V4),
            ethertype::IPV6 => Some(IpVersion::V6),
            _ => None,
        };
        let other_ethertype = et != 0 && by_ethertype.is_none();
        if let (Some(a), Some(b)) = (by_version, by_ethertype) {
            if a != b {
                return Err(self.conflict(s, spec::ETHERTYPE, "contradicts ip_version"));
            }
        }
        let chosen = by_version.or(by_ethertype);
        if let (Some(f), Some(c)) = (forced, chosen) {
            if f != c {
                return Err(self.conflict(
                    s,
                    spec::IP_VERSION,
                    "contradicts the tunnel's payload type",
                ));
            }
        }
        let wanted = need_ip || self.l3_fields(side) || v6_hint || forced.is_some();
        if other_ethertype {
            if wanted {
                return Err(self.conflict(s, spec::ETHERTYPE, "is not IP, but IP fields are set"));
            }
            return Ok(None);
        }
        if let Some(c) = forced.or(chosen) {
            return Ok(Some(c));
        }
        if !wanted {
            return Ok(None);
        }
        Ok(Some(if v6_hint || self.v6_only_fields(side) {
            IpVersion::V6
        } else {
            IpVersion::V4
        }))
    }

    /// The transport of a side; `icmp_here` when the ICMP fields belong to this side.
    fn l4(
        &self,
        side: &SideFields,
        icmp_here: bool,
        tunnel: Option<TunnelPlan>,
    ) -> Result<Option<L4Plan>, BuildError> {
        let mut kinds = Vec::new();
        if self.tcp_fields(side) {
            kinds.push(L4Plan::Tcp);
        }
        if self.udp_fields(side) || tunnel.is_some_and(|t| t.udp_port().is_some()) {
            kinds.push(L4Plan::Udp);
        }
        if icmp_here && self.icmp_fields() {
            kinds.push(L4Plan::Icmp);
        }
        if icmp_here && self.icmpv6_fields() {
            kinds.push(L4Plan::Icmpv6);
        }
        if self.get(Section::Misc, side.esp_spi) != 0 {
            kinds.push(L4Plan::Esp);
        }
        if tunnel == Some(TunnelPlan::Gre) {
            kinds.push(L4Plan::Gre);
        }
        let protocol = self.spec(side, spec::IP_PROTOCOL) as u8;
        let s = side.spec;
        match kinds[..] {
            [] => Ok(match protocol {
                0 => None,
                ip_proto::TCP => Some(L4Plan::Tcp),
                ip_proto::UDP => Some(L4Plan::Udp),
                ip_proto::ICMP => Some(L4Plan::Icmp),
                ip_proto::ICMPV6 => Some(L4Plan::Icmpv6),
                ip_proto::ESP => Some(L4Plan::Esp),
                p => Some(L4Plan::Other(p)),
            }),
            [k] => {
                if protocol != 0 && protocol != k.protocol() {
                    return Err(self.conflict(
                        s,
                        spec::IP_PROTOCOL,
                        "contradicts the transport fields",
                    ));
                }
                Ok(Some(k))
            }
            _ => Err(self.conflict(s, spec::IP_PROTOCOL, "fields of two transports are set")),
        }
    }

    // ---- emitting -----------------------------------------------------------------------

    /// The whole frame.
    fn frame(&mut self) -> Result<Vec<u8>, BuildError> {
        let tunnel = self.tunnel()?;
        let inner_tunnel = tunnel.filter(|t| t.carries_inner());
        self.icmp_inner = inner_tunnel.is_some();
        let payload = match tunnel {
            Some(t) => Some(self.tunnel_bytes(t)?),
            None => None,
        };
        let icmp_outer = inner_tunnel.is_none();
        self.side(&OUTER, InnerStart::Ethernet, icmp_outer, tunnel, payload)
    }

    /// One side from its first header: Ethernet (with VLANs) or IP, then IP, transport
    /// and `payload` (the tunnel and inner packet) after the transport header.
    fn side(
        &self,
        side: &SideFields,
        start: InnerStart,
        icmp_here: bool,
        tunnel: Option<TunnelPlan>,
        payload: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, BuildError> {
        let l4 = self.l4(side, icmp_here, tunnel)?;
        let v6_hint = l4 == Some(L4Plan::Icmpv6);
        let forced = match start {
            InnerStart::Ip(v) => Some(v),
            InnerStart::Ethernet => None,
        };
        let mpls_after_l2 = self.mpls_fields(&side.first_mpls);
        let need_ip = l4.is_some() || payload.is_some();
        let version = if mpls_after_l2 {
            if need_ip || self.l3_fields(side) {
                let (s, f) = (Section::Misc2, side.first_mpls.label);
                return Err(self.conflict(
                    s,
                    f,
                    "nothing after an MPLS stack on Ethernet is built",
                ));
            }
            None
        } else {
            self.ip_version(side, need_ip, v6_hint, forced)?
        };
        let l3 = match version {
            Some(v) => {
                // IPv6 without a transport says "no next header" (59); protocol 0 would
                // announce a hop-by-hop header.
                let none = if v == IpVersion::V6 { 59 } else { 0 };
                let l4 = l4.unwrap_or(L4Plan::Other(none));
                let port = tunnel.and_then(TunnelPlan::udp_port);
                let transport = self.transport(side, l4, port, payload.unwrap_or_default())?;
                self.ip(side, v, l4, transport)?
            }
            None => Vec::new(),
        };
        if start != InnerStart::Ethernet {
            return Ok(l3);
        }
        let (et, net) = if mpls_after_l2 {
            let et = match self.spec(side, spec::ETHERTYPE) as u16 {
                0 | ethertype::MPLS_UC => ethertype::MPLS_UC,
                ethertype::MPLS_MC => ethertype::MPLS_MC,
                _ => return Err(self.conflict(side.spec, spec::ETHERTYPE, "is not MPLS")),
            };
            (et, self.mpls_stack(&side.first_mpls))
        } else {
            let et = match version {
                Some(IpVersion::V4) => ethertype::IPV4,
                Some(IpVersion::V6) => ethertype::IPV6,
                None => self.spec(side, spec::ETHERTYPE) as u16,
            };
            (et, l3)
        };
        let mut frame = self.ethernet(side, et)?;
        frame.extend_from_slice(&net);
        Ok(frame)
    }

    fn ethernet(&self, side: &SideFields, et: u16) -> Result<Vec<u8>, BuildError> {
        let s = side.spec;
        let mut h = Hdr::new(eth::LEN);
        h.set(eth::DMAC_47_16, self.get(s, spec::DMAC_47_16))
            .set(eth::DMAC_15_0, self.get(s, spec::DMAC_15_0))
            .set(eth::SMAC_47_16, self.get(s, spec::SMAC_47_16))
            .set(eth::SMAC_15_0, self.get(s, spec::SMAC_15_0));
        let mut out = h.0;
        out.truncate(eth::ETHERTYPE_OFFSET);
        let first_tpid = match (self.get(s, spec::CVLAN_TAG), self.get(s, spec::SVLAN_TAG)) {
            (0, 0) => None,
            (_, 0) => Some(ethertype::CVLAN),
            (0, _) => Some(ethertype::SVLAN),
            _ => {
                return Err(self.conflict(
                    s,
                    spec::SVLAN_TAG,
                    "a tag cannot be both C-VLAN and S-VLAN",
                ))
            }
        };
        let m = Section::Misc;
        let second_tpid = match (
            self.get(m, side.second_cvlan_tag),
            self.get(m, side.second_svlan_tag),
        ) {
            (0, 0) => None,
            (_, 0) => Some(ethertype::CVLAN),
            (0, _) => Some(ethertype::SVLAN),
            _ => {
                let f = side.second_svlan_tag;
                return Err(self.conflict(m, f, "a tag cannot be both C-VLAN and S-VLAN"));
            }
        };
        let tci = |prio: u64, cfi: u64, vid: u64| {
            let mut t = Hdr::new(2);
            t.set(vlan::PRIO, prio)
                .set(vlan::CFI, cfi)
                .set(vlan::VID, vid);
            t.0
        };
        if let Some(tpid) = first_tpid {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend(tci(
                self.get(s, spec::FIRST_PRIO),
                self.get(s, spec::FIRST_CFI),
                self.get(s, spec::FIRST_VID),
            ));
            // A second tag only exists after a first one.
            if let Some(tpid) = second_tpid {
                out.extend_from_slice(&tpid.to_be_bytes());
                out.extend(tci(
                    self.get(m, side.second_prio),
                    self.get(m, side.second_cfi),
                    self.get(m, side.second_vid),
                ));
            }
        }
        out.extend_from_slice(&et.to_be_bytes());
        Ok(out)
    }

    /// An MPLS stack whose first entry is `f`; an entry that is not the bottom of the
    /// stack gets a bottom entry after it.
    fn mpls_stack(&self, f: &MplsFields) -> Vec<u8> {
        let m2 = Section::Misc2;
        let mut e = Hdr::new(mpls::LEN);
        e.set(mpls::LABEL, self.get(m2, f.label))
            .set(mpls::EXP, self.get(m2, f.exp))
            .set(mpls::S_BOS, self.get(m2, f.s_bos))
            .set(mpls::TTL, self.get(m2, f.ttl));
        let mut out = e.0;
        if self.get(m2, f.s_bos) == 0 {
            let mut bottom = Hdr::new(mpls::LEN);
            bottom.set(mpls::S_BOS, 1);
            out.extend(bottom.0);
        }
        out
    }

    /// The transport header (checksum still zero) followed by `payload`; `tunnel_port`
    /// is the UDP destination port of the tunnel that follows.
    fn transport(
        &self,
        side: &SideFields,
        l4: L4Plan,
        tunnel_port: Option<u16>,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, BuildError> {
        let s = side.spec;
        let m3 = Section::Misc3;
        let mut out = match l4 {
            L4Plan::Tcp => {
                let mut h = Hdr::new(tcp::MIN_LEN);
                h.set(tcp::SPORT, self.get(s, spec::TCP_SPORT))
                    .set(tcp::DPORT, self.get(s, spec::TCP_DPORT))
                    .set(tcp::SEQ, self.get(m3, side.tcp_seq))
                    .set(tcp::ACK, self.get(m3, side.tcp_ack))
                    .set(tcp::DATA_OFFSET, (tcp::MIN_LEN / 4) as u64)
                    .set(tcp::FLAGS, self.get(s, spec::TCP_FLAGS));
                h.0
            }
            L4Plan::Udp => {
                let mut h = Hdr::new(udp::LEN);
                let len = (udp::LEN + payload.len()) as u64;
                let dport = match self.get(s, spec::UDP_DPORT) {
                    0 => tunnel_port.unwrap_or(0).into(),
                    p => p,
                };
                h.set(udp::SPORT, self.get(s, spec::UDP_SPORT))
                    .set(udp::DPORT, dport)
                    .set(udp::LENGTH, len);
                h.0
            }
            L4Plan::Icmp | L4Plan::Icmpv6 => {
                let (ty, code, data) = if l4 == L4Plan::Icmp {
                    (misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA)
                } else {
                    (
                        misc3::ICMPV6_TYPE,
                        misc3::ICMPV6_CODE,
                        misc3::ICMPV6_HEADER_DATA,
                    )
                };
                let mut h = Hdr::new(icmp::LEN);
                h.set(icmp::TYPE, self.get(m3, ty))
                    .set(icmp::CODE, self.get(m3, code))
                    .set(icmp::DATA, self.get(m3, data));
                h.0
            }
            L4Plan::Esp => {
                let mut h = Hdr::new(esp::LEN);
                h.set(esp::SPI, self.get(Section::Misc, side.esp_spi));
                h.0
            }
            L4Plan::Gre | L4Plan::Other(_) => Vec::new(),
        };
        out.extend(payload);
        Ok(out)
    }

    /// The IP header before `transport`, with the transport checksum filled in.
    fn ip(
        &self,
        side: &SideFields,
        version: IpVersion,
        l4: L4Plan,
        mut transport: Vec<u8>,
    ) -> Result<Vec<u8>, BuildError> {
        let s = side.spec;
        let protocol = l4.protocol();
        let frag = self.get(s, spec::FRAG);
        let mut header = match version {
            IpVersion::V4 => {
                let ihl = match self.get(s, spec::IPV4_IHL) {
                    0 => 5,
                    n if n < 5 => {
                        return Err(self.conflict(
                            s,
                            spec::IPV4_IHL,
                            "an IPv4 header is at least 5 words",
                        ))
                    }
                    n => n as usize,
                };
                let mut h = Hdr::new(ihl * 4);
                h.set(ipv4::VERSION, 4)
                    .set(ipv4::IHL, ihl as u64)
                    .set(ipv4::DSCP, self.get(s, spec::IP_DSCP))
                    .set(ipv4::ECN, self.get(s, spec::IP_ECN))
                    .set(ipv4::TOTAL_LEN, (ihl * 4 + transport.len()) as u64)
                    .set(ipv4::MF, frag)
                    .set(ipv4::TTL, self.get(s, spec::IP_TTL_HOPLIMIT))
                    .set(ipv4::PROTOCOL, protocol.into())
                    .set(ipv4::SRC, self.get(s, spec::SRC_IP_31_0))
                    .set(ipv4::DST, self.get(s, spec::DST_IP_31_0));
                let sum = checksum::checksum(&h.0);
                h.set(ipv4::CHECKSUM, sum.into());
                h.0
            }
            IpVersion::V6 => {
                let ext = if frag != 0 { ipv6_frag::LEN } else { 0 };
                let mut h = Hdr::new(ipv6::LEN + ext);
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
                    h.set(ipv6::src_word(i), self.get(s, src[i]));
                    h.set(ipv6::dst_word(i), self.get(s, dst[i]));
                }
                h.set(ipv6::VERSION, 6)
                    .set(ipv6::DSCP, self.get(s, spec::IP_DSCP))
                    .set(ipv6::ECN, self.get(s, spec::IP_ECN))
                    .set(
                        ipv6::FLOW_LABEL,
                        self.get(Section::Misc, side.ipv6_flow_label),
                    )
                    .set(ipv6::PAYLOAD_LEN, (ext + transport.len()) as u64)
                    .set(ipv6::HOP_LIMIT, self.get(s, spec::IP_TTL_HOPLIMIT));
                if frag != 0 {
                    // A first fragment: offset 0, more fragments.
                    h.set(
                        ipv6::NEXT_HEADER,
                        u64::from(etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER.0),
                    );
                    let mut f = Hdr::new(ipv6_frag::LEN);
                    f.set(ipv6_frag::NEXT_HEADER, protocol.into())
                        .set(ipv6_frag::M, 1);
                    h.0[ipv6::LEN..].copy_from_slice(&f.0);
                } else {
                    h.set(ipv6::NEXT_HEADER, protocol.into());
                }
                h.0
            }
        };
        let pseudo = match version {
            IpVersion::V4 => PseudoHeader::V4(&header[..ipv4::MIN_LEN]),
            IpVersion::V6 => PseudoHeader::V6(&header[..ipv6::LEN]),
        };
        let csum_at = match l4 {
            L4Plan::Tcp => Some((tcp::CHECKSUM_OFFSET, true)),
            L4Plan::Udp => Some((udp::CHECKSUM_OFFSET, true)),
            L4Plan::Icmpv6 => Some((icmp::CHECKSUM_OFFSET, true)),
            L4Plan::Icmp => Some((icmp::CHECKSUM_OFFSET, false)),
            _ => None,
        };
        if let Some((at, with_pseudo)) = csum_at {
            let mut sum = if with_pseudo {
                checksum::l4_checksum(pseudo, protocol, &transport)
            } else {
                checksum::checksum(&transport)
            };
            if l4 == L4Plan::Udp && sum == 0 {
                sum = 0xffff;
            }
            transport[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        header.extend(transport);
        Ok(header)
    }

    // ---- tunnels ------------------------------------------------------------------------

    /// What the inner packet starts with when the tunnel leaves it open.
    fn natural_inner_start(&self) -> Option<InnerStart> {
        if self.l2_fields(&INNER) {
            return Some(InnerStart::Ethernet);
        }
        if !self.inner_fields() {
            return None;
        }
        let version = self
            .ip_version(&INNER, true, self.icmpv6_fields(), None)
            .ok()
            .flatten()
            .unwrap_or(IpVersion::V4);
        Some(InnerStart::Ip(version))
    }

    /// The inner packet (nothing when the value sets no inner field).
    fn inner(&self, start: InnerStart) -> Result<Vec<u8>, BuildError> {
        if !self.inner_fields() {
            return Ok(Vec::new());
        }
        self.side(&INNER, start, true, None, None)
    }

    /// Refuses inner fields after a tunnel payload that is not parsed.
    fn no_inner(&self, section: Section, field: BitField) -> Result<Vec<u8>, BuildError> {
        if self.inner_fields() {
            return Err(self.conflict(section, field, "names a payload the parser does not enter"));
        }
        Ok(Vec::new())
    }

    /// An inner packet that must start with IP (after MPLS, GTP-U).
    fn inner_ip(&self, section: Section, field: BitField) -> Result<Vec<u8>, BuildError> {
        match self.natural_inner_start() {
            None => Ok(Vec::new()),
            Some(InnerStart::Ethernet) => {
                Err(self.conflict(section, field, "carries IP, but inner L2 fields are set"))
            }
            Some(start) => self.inner(start),
        }
    }

    /// The inner packet after a header whose payload type is an ethertype.
    fn inner_by_ethertype(
        &self,
        section: Section,
        field: BitField,
        et: u16,
    ) -> Result<Vec<u8>, BuildError> {
        match et {
            ethertype::TEB => self.inner(InnerStart::Ethernet),
            ethertype::IPV4 | ethertype::IPV6 => {
                if self.l2_fields(&INNER) {
                    return Err(self.conflict(
                        section,
                        field,
                        "carries IP, but inner L2 fields are set",
                    ));
                }
                let v = if et == ethertype::IPV4 {
                    IpVersion::V4
                } else {
                    IpVersion::V6
                };
                self.inner(InnerStart::Ip(v))
            }
            _ => self.no_inner(section, field),
        }
    }

    /// The ethertype that says what the inner packet is.
    fn inner_ethertype(&self) -> u16 {
        match self.natural_inner_start() {
            Some(InnerStart::Ethernet) => ethertype::TEB,
            Some(InnerStart::Ip(IpVersion::V4)) => ethertype::IPV4,
            Some(InnerStart::Ip(IpVersion::V6)) => ethertype::IPV6,
            None => 0,
        }
    }

    /// The tunnel header and everything after it.
    fn tunnel_bytes(&self, t: TunnelPlan) -> Result<Vec<u8>, BuildError> {
        let (m, m2, m3) = (Section::Misc, Section::Misc2, Section::Misc3);
        match t {
            TunnelPlan::Vxlan => {
                let mut h = Hdr::new(vxlan::LEN);
                h.set(vxlan::FLAGS, vxlan::FLAG_I.into())
                    .set(vxlan::VNI, self.get(m, misc::VXLAN_VNI));
                let mut out = h.0;
                out.extend(self.inner(InnerStart::Ethernet)?);
                Ok(out)
            }
            TunnelPlan::VxlanGpe => {
                let np_field = misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL;
                let np = match self.get(m3, np_field) as u8 {
                    0 => match self.natural_inner_start() {
                        Some(InnerStart::Ethernet) => vxlan_gpe::NP_ETHERNET,
                        Some(InnerStart::Ip(IpVersion::V4)) => vxlan_gpe::NP_IPV4,
                        Some(InnerStart::Ip(IpVersion::V6)) => vxlan_gpe::NP_IPV6,
                        None => 0,
                    },
                    n => n,
                };
                let flags = match self.get(m3, misc3::OUTER_VXLAN_GPE_FLAGS) {
                    0 => vxlan_gpe::FLAGS_I_P.into(),
                    f => f,
                };
                let mut h = Hdr::new(vxlan_gpe::LEN);
                h.set(vxlan_gpe::FLAGS, flags)
                    .set(vxlan_gpe::NEXT_PROTOCOL, np.into())
                    .set(vxlan_gpe::VNI, self.get(m3, misc3::OUTER_VXLAN_GPE_VNI));
                let mut out = h.0;
                let inner = match np {
                    vxlan_gpe::NP_ETHERNET => self.inner(InnerStart::Ethernet)?,
                    vxlan_gpe::NP_IPV4 => self.inner_by_ethertype(m3, np_field, ethertype::IPV4)?,
                    vxlan_gpe::NP_IPV6 => self.inner_by_ethertype(m3, np_field, ethertype::IPV6)?,
                    _ => self.no_inner(m3, np_field)?,
                };
                out.extend(inner);
                Ok(out)
            }
            TunnelPlan::Geneve => self.geneve(),
            TunnelPlan::Gre => self.gre(),
            TunnelPlan::MplsOverUdp => {
                let mut out = self.mpls_stack(&MPLS_OVER_UDP);
                out.extend(self.inner_ip(m2, MPLS_OVER_UDP.label)?);
                Ok(out)
            }
            TunnelPlan::Gtpu => self.gtpu(),
            TunnelPlan::Bth => {
                let mut h = Hdr::new(bth::LEN);
                h.set(bth::DEST_QP, self.get(m, misc::BTH_DST_QP));
                Ok(h.0)
            }
        }
    }

    fn geneve(&self) -> Result<Vec<u8>, BuildError> {
        let m = Section::Misc;
        let data = self.get(Section::Misc3, misc3::GENEVE_TLV_OPTION_0_DATA);
        let exist = self.get(m, misc::GENEVE_TLV_OPTION_0_EXIST) != 0;
        let opt_words = match self.get(m, misc::GENEVE_OPT_LEN) as usize {
            0 if data != 0 => 2,
            0 if exist => 1,
            n => n,
        };
        if data != 0 && opt_words < 2 {
            let f = misc::GENEVE_OPT_LEN;
            return Err(self.conflict(m, f, "leaves no room for option 0's data"));
        }
        let protocol = match self.get(m, misc::GENEVE_PROTOCOL_TYPE) as u16 {
            0 => ethertype::TEB,
            p => p,
        };
        let mut h = Hdr::new(geneve::LEN);
        h.set(geneve::OPT_LEN, opt_words as u64)
            .set(geneve::OAM, self.get(m, misc::GENEVE_OAM))
            .set(geneve::PROTOCOL, protocol.into())
            .set(geneve::VNI, self.get(m, misc::GENEVE_VNI));
        let mut out = h.0;
        // Options: option 0 first (class and type zero), its first data word the value's;
        // the rest of the area filled with options of zero data.
        let mut left = opt_words;
        let mut first = true;
        while left > 0 {
            let data_words = (left - 1).min(31);
            let mut o = Hdr::new(geneve::OPT_HDR_LEN + 4 * data_words);
            o.set(geneve::OPT_DATA_LEN, data_words as u64);
            if first && data_words > 0 {
                o.set(BitField::new(32, 32), data);
            }
            out.extend(o.0);
            left -= 1 + data_words;
            first = false;
        }
        out.extend(self.inner_by_ethertype(m, misc::GENEVE_PROTOCOL_TYPE, protocol)?);
        Ok(out)
    }

    fn gre(&self) -> Result<Vec<u8>, BuildError> {
        let m = Section::Misc;
        let key = (self.get(m, misc::GRE_KEY_H) << 8) | self.get(m, misc::GRE_KEY_L);
        let c = self.get(m, misc::GRE_C_PRESENT) != 0;
        let k = self.get(m, misc::GRE_K_PRESENT) != 0 || key != 0;
        let s = self.get(m, misc::GRE_S_PRESENT) != 0;
        let mpls = self.mpls_fields(&MPLS_OVER_GRE);
        let protocol = match self.get(m, misc::GRE_PROTOCOL) as u16 {
            0 if mpls => ethertype::MPLS_UC,
            0 => self.inner_ethertype(),
            p => p,
        };
        let payload = match protocol {
            ethertype::MPLS_UC | ethertype::MPLS_MC => {
                let mut out = self.mpls_stack(&MPLS_OVER_GRE);
                out.extend(self.inner_ip(m, misc::GRE_PROTOCOL)?);
                out
            }
            _ if mpls => {
                return Err(self.conflict(
                    m,
                    misc::GRE_PROTOCOL,
                    "is not MPLS, but MPLS over GRE fields are set",
                ))
            }
            _ => self.inner_by_ethertype(m, misc::GRE_PROTOCOL, protocol)?,
        };
        let mut h = Hdr::new(gre::LEN);
        h.set(gre::C, c.into())
            .set(gre::K, k.into())
            .set(gre::S, s.into())
            .set(gre::PROTOCOL, protocol.into());
        let mut out = h.0;
        let csum_at = out.len();
        if c {
            out.extend([0u8; gre::OPT_LEN]);
        }
        if k {
            out.extend((key as u32).to_be_bytes());
        }
        if s {
            out.extend([0u8; gre::OPT_LEN]);
        }
        out.extend(payload);
        if c {
            // RFC 2784: over the GRE header and payload, with the checksum field zero.
            let sum = checksum::checksum(&out);
            out[csum_at..csum_at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        Ok(out)
    }

    fn gtpu(&self) -> Result<Vec<u8>, BuildError> {
        let m3 = Section::Misc3;
        let dw0 = self.get(m3, misc3::GTPU_DW_0);
        let dw2 = self.get(m3, misc3::GTPU_DW_2);
        let first_ext = self.get(m3, misc3::GTPU_FIRST_EXT_DW_0);
        // Flags and type: the fields, else dword 0's bytes, else the defaults.
        let pick = |field: BitField, dw0_byte: u64, default: u8| -> Result<u64, BuildError> {
            let f = self.get(m3, field);
            if f != 0 && dw0 != 0 && f != dw0_byte {
                return Err(self.conflict(
                    m3,
                    misc3::GTPU_DW_0,
                    "contradicts the GTP-U flags or type",
                ));
            }
            Ok(if f != 0 {
                f
            } else if dw0 != 0 {
                dw0_byte
            } else {
                default.into()
            })
        };
        let mut flags = pick(misc3::GTPU_MSG_FLAGS, dw0 >> 24, 0)? as u8;
        let msg_type = pick(misc3::GTPU_MSG_TYPE, (dw0 >> 16) & 0xff, gtpu::MSG_TPDU)?;
        let mut dw2 = dw2;
        if first_ext != 0 && dw2 & 0xff == 0 {
            if dw2 != 0 {
                let f = misc3::GTPU_DW_2;
                return Err(self.conflict(m3, f, "names no extension header, but one is set"));
            }
            // PDU session container, the usual first extension.
            dw2 = 0x85;
        }
        if flags == 0 {
            flags = gtpu::FLAGS_V1_PT;
            if dw2 & 0xff != 0 {
                flags |= gtpu::FLAG_E;
            } else if dw2 != 0 {
                flags |= gtpu::FLAG_S;
            }
        }
        let mut h = Hdr::new(gtpu::LEN);
        h.set(gtpu::FLAGS, flags.into())
            .set(gtpu::MSG_TYPE, msg_type)
            .set(gtpu::TEID, self.get(m3, misc3::GTPU_TEID));
        let mut out = h.0;
        if flags & (gtpu::FLAG_E | gtpu::FLAG_S | gtpu::FLAG_PN) != 0 {
            out.extend((dw2 as u32).to_be_bytes());
            if flags & gtpu::FLAG_E != 0 && dw2 & 0xff != 0 {
                out.extend(self.gtpu_extensions(first_ext)?);
            }
        }
        let inner = if msg_type as u8 == gtpu::MSG_TPDU {
            self.inner_ip(m3, misc3::GTPU_MSG_TYPE)?
        } else {
            self.no_inner(m3, misc3::GTPU_MSG_TYPE)?
        };
        out.extend(inner);
        // The length covers what follows the mandatory 8 bytes; dword 0 may ask for more
        // (padding) than the packet needs.
        let natural = out.len() - gtpu::LEN;
        let wanted = (dw0 & 0xffff) as usize;
        if dw0 != 0 && wanted > natural {
            out.resize(gtpu::LEN + wanted, 0);
        }
        let len = out.len() - gtpu::LEN;
        bits::set(&mut out, gtpu::LENGTH, len as u64);
        Ok(out)
    }

    /// The extension header chain that starts with the dword `first` (length in its top
    /// byte, next type in the last byte of the header).
    fn gtpu_extensions(&self, first: u64) -> Result<Vec<u8>, BuildError> {
        if first == 0 {
            // An empty extension that ends the chain.
            return Ok(vec![1, 0, 0, 0]);
        }
        let words = (first >> 24) as usize;
        if words == 0 {
            let (s, f) = (Section::Misc3, misc3::GTPU_FIRST_EXT_DW_0);
            return Err(self.conflict(s, f, "an extension header is at least one word long"));
        }
        let mut out = vec![0u8; 4 * words];
        out[..4].copy_from_slice(&(first as u32).to_be_bytes());
        if out[out.len() - 1] != 0 {
            // The header names a next extension: end the chain with an empty one.
            out.extend([1, 0, 0, 0]);
        }
        Ok(out)
    }
}
