//! The pipeline's lookup keys against `ste_builder`'s tags.
//!
//! For a random packet, described by its fields as a match parameter, and for every
//! classic lookup builder: the builder's tag of those fields (under a matcher mask
//! covering everything the builder can match) must equal the key the pipeline builds
//! for the builder's lookup type, masked with the builder's bit mask. The key is built
//! from the packet the way the hardware does; the tag is rdma-core's encoding of a rule
//! value. They are written independently, so each checks the other.
//!
//! Generated packets are packets that can exist (the key model's input contract):
//! - a first or second VLAN is a C-VLAN or an S-VLAN, never both;
//! - L4 fields belong to the L4 protocol: TCP ports, flags, sequence and
//!   acknowledgement numbers only in TCP packets, UDP ports only in UDP packets, ICMP
//!   fields only in ICMP packets (rdma-core's 5-tuple and L4 builders write TCP and UDP
//!   ports into the same key field, so a value with both cannot match any packet);
//! - at most one tunnel; its raw header words (`misc5.tunnel_header_*`), when the parser
//!   reports them, agree with its decoded fields (the raw-header rule is skipped for a
//!   decoded tunnel without them); UDP tunnels have UDP outer headers, GRE tunnels protocol 47;
//! - flex parsers: the device assigns protocol fields (ICMP, GENEVE option, MPLS over
//!   GRE/UDP, GTP-U) to one half of the parsers; programmable samples (misc4) use the
//!   other half, on distinct parsers.
//!
//! Builder pairings that describe different packets are skipped: an ICMP rule describes
//! ICMP packets, an L4-misc (TCP sequence) rule non-ICMP ones, a VXLAN-GPE / GENEVE /
//! GTP-U header rule packets without one of the other flex tunnels (their fields are
//! views of the same tunnel header words), and a rule on a flex-parser protocol (GENEVE
//! option, MPLS over GRE/UDP, GTP-U dwords) packets without another such protocol (the
//! test device shares parsers between protocols no packet carries together).
//!
//! One rdma-core quirk is left out: for the inner TCP sequence/ack lookup, STE v1
//! rdma-core uses the outer L4-misc lookup type (`ETHL4_MISC_O`) with inner values, a
//! rule the hardware can only match when inner and outer numbers agree. The inner
//! L4-misc builder is therefore checked on v0 only.

use proptest::prelude::*;
use ste_builder::bits::{self, BitField};
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, dr_match_set_misc5 as misc5, dr_match_spec as spec,
    ste_flex_parser_tnl_geneve as geneve_l, ste_flex_parser_tnl_gtpu as gtpu_l,
    ste_flex_parser_tnl_vxlan_gpe as gpe_l,
};
use ste_builder::{
    BuildError, BuilderKind, Caps, FlexParserIds, MatchParam, Section, SteBuild, SteFormat,
    VportCap,
};

use sim::pipeline::lookup_key;

/// A stream of random bits that field values are cut from.
struct Bits {
    words: Vec<u64>,
    at: usize,
}

impl Bits {
    fn next(&mut self, width: usize) -> u64 {
        let w = self.words[self.at % self.words.len()].rotate_left(self.at as u32 / 7);
        self.at += 1;
        if width >= 64 {
            w
        } else {
            w & ((1u64 << width) - 1)
        }
    }
    fn set(&mut self, p: &mut MatchParam, section: Section, field: BitField) {
        let v = self.next(field.width);
        p.set(section, field, v);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    None,
    Vxlan,
    VxlanGpe,
    Geneve,
    Gtpu,
    Gre,
    MplsOverGre,
    MplsOverUdp,
    /// A tunnel the parser reports only as raw header words.
    Raw,
}

const TUNNELS: [Tunnel; 9] = [
    Tunnel::None,
    Tunnel::Vxlan,
    Tunnel::VxlanGpe,
    Tunnel::Geneve,
    Tunnel::Gtpu,
    Tunnel::Gre,
    Tunnel::MplsOverGre,
    Tunnel::MplsOverUdp,
    Tunnel::Raw,
];

/// The shape of a generated packet; field values come from `words`.
#[derive(Debug, Clone)]
struct Shape {
    ip: u8,
    l4: L4,
    vlans: u8,
    vlan_kinds: (bool, bool),
    tunnel: Tunnel,
    inner_ip: u8,
    inner_l4: L4,
    /// Programmable samples on this many parsers.
    samples: usize,
    /// Protocol fields on parsers 4..7 (samples on 0..3), or the other way round.
    features_high: bool,
    full_tunnel_header: bool,
    /// The parser reports the raw header words of a decoded tunnel too.
    raw_reported: bool,
    source_vport: usize,
    words: Vec<u64>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        (
            prop::sample::select(vec![0u8, 4, 6]),
            prop::sample::select(vec![L4::Tcp, L4::Udp, L4::Icmp, L4::Other]),
            0u8..3,
            any::<(bool, bool)>(),
            prop::sample::select(TUNNELS.to_vec()),
            prop::sample::select(vec![0u8, 4, 6]),
            prop::sample::select(vec![L4::Tcp, L4::Udp, L4::Other]),
        ),
        (
            0usize..=4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0usize..VPORTS.len(),
            prop::collection::vec(any::<u64>(), 61),
        ),
    )
        .prop_map(
            |(
                (ip, l4, vlans, vlan_kinds, tunnel, inner_ip, inner_l4),
                (samples, features_high, full_tunnel_header, raw_reported, source_vport, words),
            )| Shape {
                ip,
                l4,
                vlans,
                vlan_kinds,
                tunnel,
                inner_ip,
                inner_l4,
                samples,
                features_high,
                full_tunnel_header,
                raw_reported,
                source_vport,
                words,
            },
        )
}

/// Vport numbers of the e-switch (the last is the uplink).
const VPORTS: [(u16, u16); 3] = [(1, 17), (2, 18), (0xffff, 0)];
const ESW_GVMI: u16 = 7;

fn caps(s: &Shape) -> Caps {
    // All protocol fields share one half of the parsers: a packet carries at most one
    // of them (ICMP excludes every tunnel, the tunnels exclude each other).
    let b = if s.features_high { 4 } else { 0 };
    Caps {
        gvmi: ESW_GVMI,
        is_ecpf: false,
        esw_manager_vhca_gvmi: ESW_GVMI,
        flex_parser: FlexParserIds {
            icmp_dw0: b + 2,
            icmp_dw1: b + 3,
            icmpv6_dw0: b + 2,
            icmpv6_dw1: b + 3,
            geneve_tlv_option_0: b,
            mpls_over_gre: b + 1,
            mpls_over_udp: b + 1,
            gtpu_dw_0: b,
            gtpu_teid: b + 1,
            gtpu_dw_2: b + 2,
            gtpu_first_ext_dw_0: b + 3,
        },
        definer_supp_checksum: false,
        support_full_tnl_hdr: s.full_tunnel_header,
        vports: VPORTS
            .iter()
            .map(|&(vport_num, vport_gvmi)| VportCap {
                vport_num,
                vport_gvmi,
                vhca_gvmi: ESW_GVMI,
                ..VportCap::default()
            })
            .collect(),
    }
}

/// The header stack of one side: L2, VLANs, L3, L4.
fn headers(p: &mut MatchParam, r: &mut Bits, s: &Shape, inner: bool, ip: u8, l4: L4) {
    let sec = if inner {
        Section::Inner
    } else {
        Section::Outer
    };
    for f in [
        spec::SMAC_47_16,
        spec::SMAC_15_0,
        spec::DMAC_47_16,
        spec::DMAC_15_0,
        spec::ETHERTYPE,
    ] {
        r.set(p, sec, f);
    }
    // VLANs: none, one or two; each a C-VLAN or an S-VLAN.
    let (second_c, second_s, second_prio, second_cfi, second_vid) = if inner {
        (
            misc::INNER_SECOND_CVLAN_TAG,
            misc::INNER_SECOND_SVLAN_TAG,
            misc::INNER_SECOND_PRIO,
            misc::INNER_SECOND_CFI,
            misc::INNER_SECOND_VID,
        )
    } else {
        (
            misc::OUTER_SECOND_CVLAN_TAG,
            misc::OUTER_SECOND_SVLAN_TAG,
            misc::OUTER_SECOND_PRIO,
            misc::OUTER_SECOND_CFI,
            misc::OUTER_SECOND_VID,
        )
    };
    if s.vlans >= 1 {
        let f = if s.vlan_kinds.0 {
            spec::CVLAN_TAG
        } else {
            spec::SVLAN_TAG
        };
        p.set(sec, f, 1);
        for f in [spec::FIRST_PRIO, spec::FIRST_CFI, spec::FIRST_VID] {
            r.set(p, sec, f);
        }
    }
    if s.vlans >= 2 {
        let f = if s.vlan_kinds.1 { second_c } else { second_s };
        p.set(Section::Misc, f, 1);
        for f in [second_prio, second_cfi, second_vid] {
            r.set(p, Section::Misc, f);
        }
    }
    if ip == 0 {
        return;
    }
    p.set(sec, spec::IP_VERSION, ip.into());
    for f in [
        spec::IP_DSCP,
        spec::IP_ECN,
        spec::FRAG,
        spec::IP_TTL_HOPLIMIT,
    ] {
        r.set(p, sec, f);
    }
    if ip == 4 {
        for f in [spec::SRC_IP_31_0, spec::DST_IP_31_0, spec::IPV4_IHL] {
            r.set(p, sec, f);
        }
    } else {
        for f in [
            spec::SRC_IP_127_96,
            spec::SRC_IP_95_64,
            spec::SRC_IP_63_32,
            spec::SRC_IP_31_0,
            spec::DST_IP_127_96,
            spec::DST_IP_95_64,
            spec::DST_IP_63_32,
            spec::DST_IP_31_0,
        ] {
            r.set(p, sec, f);
        }
        let fl = if inner {
            misc::INNER_IPV6_FLOW_LABEL
        } else {
            misc::OUTER_IPV6_FLOW_LABEL
        };
        r.set(p, Section::Misc, fl);
    }
    match l4 {
        L4::Tcp => {
            p.set(sec, spec::IP_PROTOCOL, 6);
            for f in [spec::TCP_SPORT, spec::TCP_DPORT, spec::TCP_FLAGS] {
                r.set(p, sec, f);
            }
            let (seq, ack) = if inner {
                (misc3::INNER_TCP_SEQ_NUM, misc3::INNER_TCP_ACK_NUM)
            } else {
                (misc3::OUTER_TCP_SEQ_NUM, misc3::OUTER_TCP_ACK_NUM)
            };
            r.set(p, Section::Misc3, seq);
            r.set(p, Section::Misc3, ack);
        }
        L4::Udp => {
            p.set(sec, spec::IP_PROTOCOL, 17);
            r.set(p, sec, spec::UDP_SPORT);
            r.set(p, sec, spec::UDP_DPORT);
        }
        L4::Icmp => {
            let v6 = ip == 6;
            p.set(sec, spec::IP_PROTOCOL, if v6 { 58 } else { 1 });
            let fields = if v6 {
                [
                    misc3::ICMPV6_TYPE,
                    misc3::ICMPV6_CODE,
                    misc3::ICMPV6_HEADER_DATA,
                ]
            } else {
                [misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA]
            };
            for f in fields {
                r.set(p, Section::Misc3, f);
            }
        }
        L4::Other => {
            // Anything but TCP, UDP, ICMP and ICMPv6.
            let proto = [0u64, 2, 47, 50, 132][r.next(8) as usize % 5];
            p.set(sec, spec::IP_PROTOCOL, proto);
        }
    }
}

/// Raw tunnel header words written through a tunnel layout, when the parser reports
/// them.
fn raw_words(p: &mut MatchParam, r: &mut Bits, s: &Shape, set: &[(BitField, u64)]) {
    if !s.raw_reported {
        return;
    }
    let mut buf = [0u8; 16];
    for &(f, v) in set {
        bits::set(&mut buf, f, v);
    }
    p.set(
        Section::Misc5,
        misc5::TUNNEL_HEADER_0,
        bits::get(&buf, BitField::new(0, 32)),
    );
    p.set(
        Section::Misc5,
        misc5::TUNNEL_HEADER_1,
        bits::get(&buf, BitField::new(32, 32)),
    );
    r.set(p, Section::Misc5, misc5::TUNNEL_HEADER_2);
    r.set(p, Section::Misc5, misc5::TUNNEL_HEADER_3);
}

/// A packet of shape `s`, as its parser reports it.
fn packet(s: &Shape) -> MatchParam {
    let mut r = Bits {
        words: s.words.clone(),
        at: 0,
    };
    let mut p = MatchParam::default();
    let r = &mut r;
    let udp_tunnel = matches!(
        s.tunnel,
        Tunnel::Vxlan
            | Tunnel::VxlanGpe
            | Tunnel::Geneve
            | Tunnel::Gtpu
            | Tunnel::MplsOverUdp
            | Tunnel::Raw
    );
    let gre_tunnel = matches!(s.tunnel, Tunnel::Gre | Tunnel::MplsOverGre);
    let tunnel = s.tunnel != Tunnel::None;
    // Tunnels need IP outer headers; ICMP carries no tunnel.
    let ip = if tunnel && s.ip == 0 { 4 } else { s.ip };
    let l4 = if udp_tunnel {
        L4::Udp
    } else if gre_tunnel {
        L4::Other
    } else {
        s.l4
    };
    headers(&mut p, r, s, false, ip, l4);
    if gre_tunnel {
        p.set(Section::Outer, spec::IP_PROTOCOL, 47);
    }
    let m3 = |p: &mut MatchParam, r: &mut Bits, f| r.set(p, Section::Misc3, f);
    match s.tunnel {
        Tunnel::None => {}
        Tunnel::Vxlan => r.set(&mut p, Section::Misc, misc::VXLAN_VNI),
        Tunnel::VxlanGpe => {
            let (flags, next, vni) = (r.next(8), r.next(8), r.next(24));
            p.set(Section::Misc3, misc3::OUTER_VXLAN_GPE_FLAGS, flags);
            p.set(Section::Misc3, misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL, next);
            p.set(Section::Misc3, misc3::OUTER_VXLAN_GPE_VNI, vni);
            raw_words(
                &mut p,
                r,
                s,
                &[
                    (gpe_l::OUTER_VXLAN_GPE_FLAGS, flags),
                    (gpe_l::OUTER_VXLAN_GPE_NEXT_PROTOCOL, next),
                    (gpe_l::OUTER_VXLAN_GPE_VNI, vni),
                ],
            );
        }
        Tunnel::Geneve => {
            let (opt_len, oam, proto, vni) = (r.next(6), r.next(1), r.next(16), r.next(24));
            p.set(Section::Misc, misc::GENEVE_OPT_LEN, opt_len);
            p.set(Section::Misc, misc::GENEVE_OAM, oam);
            p.set(Section::Misc, misc::GENEVE_PROTOCOL_TYPE, proto);
            p.set(Section::Misc, misc::GENEVE_VNI, vni);
            raw_words(
                &mut p,
                r,
                s,
                &[
                    (geneve_l::GENEVE_OPT_LEN, opt_len),
                    (geneve_l::GENEVE_OAM, oam),
                    (geneve_l::GENEVE_PROTOCOL_TYPE, proto),
                    (geneve_l::GENEVE_VNI, vni),
                ],
            );
            if r.next(1) == 1 {
                p.set(Section::Misc, misc::GENEVE_TLV_OPTION_0_EXIST, 1);
                m3(&mut p, r, misc3::GENEVE_TLV_OPTION_0_DATA);
            }
        }
        Tunnel::Gtpu => {
            let (flags, msg_type, len, teid) = (r.next(8), r.next(8), r.next(16), r.next(32));
            p.set(Section::Misc3, misc3::GTPU_MSG_FLAGS, flags);
            p.set(Section::Misc3, misc3::GTPU_MSG_TYPE, msg_type);
            p.set(Section::Misc3, misc3::GTPU_TEID, teid);
            p.set(
                Section::Misc3,
                misc3::GTPU_DW_0,
                (flags << 24) | (msg_type << 16) | len,
            );
            m3(&mut p, r, misc3::GTPU_DW_2);
            m3(&mut p, r, misc3::GTPU_FIRST_EXT_DW_0);
            raw_words(
                &mut p,
                r,
                s,
                &[
                    (gtpu_l::GTPU_MSG_FLAGS, flags),
                    (gtpu_l::GTPU_MSG_TYPE, msg_type),
                    (BitField::new(16, 16), len),
                    (gtpu_l::GTPU_TEID, teid),
                ],
            );
        }
        Tunnel::Gre | Tunnel::MplsOverGre => {
            for f in [
                misc::GRE_C_PRESENT,
                misc::GRE_K_PRESENT,
                misc::GRE_S_PRESENT,
                misc::GRE_PROTOCOL,
                misc::GRE_KEY_H,
                misc::GRE_KEY_L,
            ] {
                r.set(&mut p, Section::Misc, f);
            }
            if s.tunnel == Tunnel::MplsOverGre {
                for f in [
                    misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL,
                    misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP,
                    misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS,
                    misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL,
                ] {
                    r.set(&mut p, Section::Misc2, f);
                }
            }
        }
        Tunnel::MplsOverUdp => {
            for f in [
                misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL,
            ] {
                r.set(&mut p, Section::Misc2, f);
            }
        }
        Tunnel::Raw => {
            for f in [
                misc5::TUNNEL_HEADER_0,
                misc5::TUNNEL_HEADER_1,
                misc5::TUNNEL_HEADER_2,
                misc5::TUNNEL_HEADER_3,
            ] {
                r.set(&mut p, Section::Misc5, f);
            }
        }
    }
    if tunnel {
        headers(&mut p, r, s, true, s.inner_ip, s.inner_l4);
    }
    // Metadata: source vport and QP, registers, MPLS stacks.
    p.set(
        Section::Misc,
        misc::SOURCE_PORT,
        VPORTS[s.source_vport].0.into(),
    );
    r.set(&mut p, Section::Misc, misc::SOURCE_SQN);
    for f in [
        misc2::METADATA_REG_A,
        misc2::METADATA_REG_C_0,
        misc2::METADATA_REG_C_1,
        misc2::METADATA_REG_C_2,
        misc2::METADATA_REG_C_3,
        misc2::METADATA_REG_C_4,
        misc2::METADATA_REG_C_5,
        misc2::METADATA_REG_C_6,
        misc2::METADATA_REG_C_7,
        misc2::OUTER_FIRST_MPLS_LABEL,
        misc2::OUTER_FIRST_MPLS_EXP,
        misc2::OUTER_FIRST_MPLS_S_BOS,
        misc2::OUTER_FIRST_MPLS_TTL,
        misc2::INNER_FIRST_MPLS_LABEL,
        misc2::INNER_FIRST_MPLS_EXP,
        misc2::INNER_FIRST_MPLS_S_BOS,
        misc2::INNER_FIRST_MPLS_TTL,
    ] {
        r.set(&mut p, Section::Misc2, f);
    }
    // Programmable samples on distinct parsers of the half the protocols do not use.
    let free = if s.features_high { 0..4u64 } else { 4..8u64 };
    let mut ids: Vec<u64> = free.collect();
    let rot = r.next(2) as usize;
    ids.rotate_left(rot);
    for (slot, &id) in ids.iter().take(s.samples).enumerate() {
        p.set(Section::Misc4, SAMPLES[slot].0, id);
        r.set(&mut p, Section::Misc4, SAMPLES[slot].1);
    }
    p
}

const SAMPLES: [(BitField, BitField); 8] = [
    (
        misc4::PROG_SAMPLE_FIELD_ID_0,
        misc4::PROG_SAMPLE_FIELD_VALUE_0,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_1,
        misc4::PROG_SAMPLE_FIELD_VALUE_1,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_2,
        misc4::PROG_SAMPLE_FIELD_VALUE_2,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_3,
        misc4::PROG_SAMPLE_FIELD_VALUE_3,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_4,
        misc4::PROG_SAMPLE_FIELD_VALUE_4,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_5,
        misc4::PROG_SAMPLE_FIELD_VALUE_5,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_6,
        misc4::PROG_SAMPLE_FIELD_VALUE_6,
    ),
    (
        misc4::PROG_SAMPLE_FIELD_ID_7,
        misc4::PROG_SAMPLE_FIELD_VALUE_7,
    ),
];

/// A matcher mask that covers every field: all ones, except the fields whose mask
/// carries a value (the IP version, the sample parser ids), which take the packet's.
fn mask_for(value: &MatchParam, samples: usize) -> MatchParam {
    let mut m = MatchParam::default();
    for section in Section::ALL {
        for &(_, f) in section.fields() {
            m.set(section, f, u64::MAX);
        }
    }
    for sec in [Section::Outer, Section::Inner] {
        m.set(sec, spec::IP_VERSION, value.get(sec, spec::IP_VERSION));
    }
    for (slot, &(id, v)) in SAMPLES.iter().enumerate() {
        m.set(Section::Misc4, id, value.get(Section::Misc4, id));
        m.set(Section::Misc4, v, if slot < samples { u64::MAX } else { 0 });
    }
    m
}

/// The classic builders, with the header positions they are used at (`inner`).
fn builders() -> Vec<(BuilderKind, &'static [bool])> {
    use BuilderKind as K;
    const BOTH: &[bool] = &[false, true];
    const OUTER: &[bool] = &[false];
    const INNER: &[bool] = &[true];
    vec![
        (K::EthL2SrcDst, BOTH),
        (K::EthL2Src, BOTH),
        (K::EthL2Dst, BOTH),
        (K::EthL2Tnl, INNER),
        (K::EthL3Ipv6Dst, BOTH),
        (K::EthL3Ipv6Src, BOTH),
        (K::EthL3Ipv4_5Tuple, BOTH),
        (K::EthL3Ipv4Misc, BOTH),
        (K::EthIpv6L3L4, BOTH),
        (K::EthL4Misc, BOTH),
        (K::Mpls, BOTH),
        (K::TnlGre, OUTER),
        (K::TnlMplsOverGre, OUTER),
        (K::TnlMplsOverUdp, OUTER),
        (K::Icmp, OUTER),
        (K::GeneralPurpose, OUTER),
        (K::TnlVxlanGpe, OUTER),
        (K::TnlGeneve, OUTER),
        (K::TnlGeneveTlvOpt, OUTER),
        (K::TnlGeneveTlvOptExist, OUTER),
        (K::TnlGtpu, OUTER),
        (K::TnlGtpuFlexParser0, OUTER),
        (K::TnlGtpuFlexParser1, OUTER),
        (K::Register0, OUTER),
        (K::Register1, OUTER),
        (K::SrcGvmiQpn, OUTER),
        (K::FlexParser0, OUTER),
        (K::FlexParser1, OUTER),
        (K::TunnelHeader, OUTER),
    ]
}

/// The protocol field a packet carries on the flex parsers, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlexFeature {
    Icmp,
    GeneveOption,
    MplsOverGre,
    MplsOverUdp,
    Gtpu,
}

fn packet_feature(s: &Shape, p: &MatchParam) -> Option<FlexFeature> {
    let outer_proto = p.get(Section::Outer, spec::IP_PROTOCOL);
    if outer_proto == 1 || outer_proto == 58 {
        return Some(FlexFeature::Icmp);
    }
    match s.tunnel {
        Tunnel::Geneve => Some(FlexFeature::GeneveOption),
        Tunnel::MplsOverGre => Some(FlexFeature::MplsOverGre),
        Tunnel::MplsOverUdp => Some(FlexFeature::MplsOverUdp),
        Tunnel::Gtpu => Some(FlexFeature::Gtpu),
        _ => None,
    }
}

/// Whether builder `kind` at `inner` describes packets of shape `s` (see the module
/// documentation for why some pairings are skipped).
fn applies(format: SteFormat, kind: BuilderKind, inner: bool, s: &Shape, p: &MatchParam) -> bool {
    use BuilderKind as K;
    let feature = packet_feature(s, p);
    // A rule on one flex-parser protocol describes packets of that protocol or of none:
    // the device shares parsers between protocols no packet carries together.
    let flex = |f: FlexFeature| feature.is_none() || feature == Some(f);
    let flex_tunnel = |t: Tunnel| {
        !matches!(
            s.tunnel,
            Tunnel::VxlanGpe | Tunnel::Geneve | Tunnel::Gtpu | Tunnel::Raw
        ) || s.tunnel == t
    };
    match kind {
        K::Icmp => feature == Some(FlexFeature::Icmp),
        K::EthL4Misc => {
            (format == SteFormat::V0 || !inner) && (inner || feature != Some(FlexFeature::Icmp))
        }
        K::TnlGeneveTlvOpt => flex(FlexFeature::GeneveOption),
        K::TnlMplsOverGre => flex(FlexFeature::MplsOverGre),
        K::TnlMplsOverUdp => flex(FlexFeature::MplsOverUdp),
        K::TnlGtpuFlexParser0 | K::TnlGtpuFlexParser1 => flex(FlexFeature::Gtpu),
        K::TnlVxlanGpe => flex_tunnel(Tunnel::VxlanGpe),
        K::TnlGeneve => flex_tunnel(Tunnel::Geneve),
        K::TnlGtpu => flex_tunnel(Tunnel::Gtpu),
        // Without raw words the fields say nothing about the raw header.
        K::TunnelHeader => {
            s.raw_reported || !matches!(s.tunnel, Tunnel::VxlanGpe | Tunnel::Geneve | Tunnel::Gtpu)
        }
        _ => true,
    }
}

/// Kinds whose bit mask may be empty for some packets (samples on the other half).
fn may_mask_nothing(kind: BuilderKind) -> bool {
    use BuilderKind as K;
    matches!(
        kind,
        K::FlexParser0 | K::FlexParser1 | K::TnlGtpuFlexParser0 | K::TnlGtpuFlexParser1
    )
}

fn check(s: &Shape) -> Result<(), TestCaseError> {
    let caps = caps(s);
    let value = packet(s);
    let mask = mask_for(&value, s.samples);
    for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
        for (kind, positions) in builders() {
            for &inner in positions {
                if !applies(format, kind, inner, s, &value) {
                    continue;
                }
                for rx in [false, true] {
                    let mut m = mask.clone();
                    let sb = match SteBuild::new(format, kind, inner, rx, &mut m, &caps) {
                        Ok(sb) => sb,
                        Err(BuildError::Unavailable { .. }) => continue,
                        Err(e) => return Err(TestCaseError::fail(format!("{format} {kind}: {e}"))),
                    };
                    let ctx = || {
                        format!(
                            "{format} {kind} inner={inner} rx={rx} lu={:#06x}",
                            sb.lu_type
                        )
                    };
                    prop_assert!(
                        may_mask_nothing(kind) || sb.bit_mask != [0; 16],
                        "{}: empty bit mask",
                        ctx()
                    );
                    let mut v = value.clone();
                    let mut tag = [0u8; 16];
                    sb.tag(&mut v, &caps, &mut tag)
                        .map_err(|e| TestCaseError::fail(format!("{}: tag: {e}", ctx())))?;
                    let key = lookup_key(format, sb.lu_type, &value, &caps)
                        .map_err(|e| TestCaseError::fail(format!("{}: {e}", ctx())))?;
                    let masked: Vec<u8> = key.iter().zip(sb.bit_mask).map(|(k, m)| k & m).collect();
                    prop_assert_eq!(
                        hex::encode(&masked),
                        hex::encode(tag),
                        "{}: key {} mask {}",
                        ctx(),
                        hex::encode(key),
                        hex::encode(sb.bit_mask)
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn key_under_bit_mask_equals_builder_tag(s in shape()) {
        check(&s)?;
    }
}
