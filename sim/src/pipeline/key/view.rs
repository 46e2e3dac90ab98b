//! What the lookup hardware sees of a packet, derived from its fields.
//!
//! A packet reaches the lookup as a [`MatchParam`]: every header field the parser found
//! at its `fte_match_param` position (outer headers, inner headers, tunnel fields in
//! misc/misc3/misc5, MPLS and metadata registers in misc2, flex-parser samples in misc4,
//! the source vport in `misc.source_port`), every other field zero. Several key fields
//! are not copies of one match field but values the parser computes (the L3 type from
//! the IP version, the VLAN qualifier from the tag kind, the L4 ports of whichever L4
//! header is present, the raw tunnel header, the flex-parser samples); this module
//! computes them, once, for both STE formats.
//!
//! The contract on the input: the fields describe one packet that can exist. In
//! particular a first VLAN is either a C-VLAN or an S-VLAN, the L4 ports are in the TCP
//! or in the UDP fields as `ip_protocol` says, and at most one tunnel is present (its
//! fields, and `misc5.tunnel_header_*` when the parser reports raw header words, agree).

use ste_builder::bits::BitField;
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, dr_match_set_misc5 as misc5, dr_match_spec as spec,
};
use ste_builder::{Caps, MatchParam, Section};

/// IP protocol numbers the key builders tell apart.
pub(super) mod ipproto {
    pub const ICMP: u64 = 1;
    pub const TCP: u64 = 6;
    pub const UDP: u64 = 17;
    pub const ICMPV6: u64 = 58;
}

/// The vport number of the uplink: traffic from the wire.
pub(super) const WIRE_PORT: u16 = 0xffff;
/// The vport number DR uses for the e-switch manager on an embedded CPU function.
const ECPF_PORT: u16 = 0xfffe;

/// `l3_type` codes of the STE layouts.
const L3_TYPE_IPV4: u64 = 1;
const L3_TYPE_IPV6: u64 = 2;
/// VLAN qualifier codes of the STE layouts.
const VLAN_SVLAN: u64 = 1;
const VLAN_CVLAN: u64 = 2;

/// Number of flex parsers.
pub(super) const FLEX_PARSERS: usize = 8;

/// One header stack of a packet: the outer or the inner headers.
#[derive(Clone, Copy)]
pub(super) struct Headers<'a> {
    bytes: &'a [u8; 64],
}

impl<'a> Headers<'a> {
    /// The outer (`inner = false`) or inner headers of `p`.
    pub fn of(p: &'a MatchParam, inner: bool) -> Self {
        Headers {
            bytes: p.spec(inner),
        }
    }

    /// One header field.
    pub fn get(self, field: BitField) -> u64 {
        ste_builder::bits::get(self.bytes, field)
    }

    /// The parser's L3 type: IPv4, IPv6 or none.
    pub fn l3_type(self) -> u64 {
        match self.get(spec::IP_VERSION) {
            4 => L3_TYPE_IPV4,
            6 => L3_TYPE_IPV6,
            _ => 0,
        }
    }

    /// The kind of the first VLAN tag: C-VLAN, S-VLAN or none.
    pub fn vlan_qualifier(self) -> u64 {
        vlan_qualifier(self.get(spec::CVLAN_TAG), self.get(spec::SVLAN_TAG))
    }

    /// Source and destination L4 ports: the TCP ports of a TCP packet, the UDP ports of a
    /// UDP packet, zero otherwise. The STE layouts have one port pair; the match
    /// parameter has one per protocol.
    pub fn l4_ports(self) -> (u64, u64) {
        match self.get(spec::IP_PROTOCOL) {
            ipproto::TCP => (self.get(spec::TCP_SPORT), self.get(spec::TCP_DPORT)),
            ipproto::UDP => (self.get(spec::UDP_SPORT), self.get(spec::UDP_DPORT)),
            _ => (0, 0),
        }
    }

    /// The IPv4/IPv6 protocol (next header).
    pub fn protocol(self) -> u64 {
        self.get(spec::IP_PROTOCOL)
    }
}

fn vlan_qualifier(cvlan: u64, svlan: u64) -> u64 {
    if cvlan != 0 {
        VLAN_CVLAN
    } else if svlan != 0 {
        VLAN_SVLAN
    } else {
        0
    }
}

/// The second VLAN tag of a header stack (it lives in the misc section).
pub(super) struct SecondVlan {
    pub qualifier: u64,
    pub prio: u64,
    pub cfi: u64,
    pub vid: u64,
}

/// The second VLAN of the outer or inner headers.
pub(super) fn second_vlan(p: &MatchParam, inner: bool) -> SecondVlan {
    let m = |f| p.get(Section::Misc, f);
    if inner {
        SecondVlan {
            qualifier: vlan_qualifier(
                m(misc::INNER_SECOND_CVLAN_TAG),
                m(misc::INNER_SECOND_SVLAN_TAG),
            ),
            prio: m(misc::INNER_SECOND_PRIO),
            cfi: m(misc::INNER_SECOND_CFI),
            vid: m(misc::INNER_SECOND_VID),
        }
    } else {
        SecondVlan {
            qualifier: vlan_qualifier(
                m(misc::OUTER_SECOND_CVLAN_TAG),
                m(misc::OUTER_SECOND_SVLAN_TAG),
            ),
            prio: m(misc::OUTER_SECOND_PRIO),
            cfi: m(misc::OUTER_SECOND_CFI),
            vid: m(misc::OUTER_SECOND_VID),
        }
    }
}

/// The IPv6 flow label of the outer or inner headers.
pub(super) fn flow_label(p: &MatchParam, inner: bool) -> u64 {
    let f = if inner {
        misc::INNER_IPV6_FLOW_LABEL
    } else {
        misc::OUTER_IPV6_FLOW_LABEL
    };
    p.get(Section::Misc, f)
}

/// TCP sequence and acknowledgement numbers of the outer or inner TCP header.
pub(super) fn tcp_seq_ack(p: &MatchParam, inner: bool) -> (u64, u64) {
    let (seq, ack) = if inner {
        (misc3::INNER_TCP_SEQ_NUM, misc3::INNER_TCP_ACK_NUM)
    } else {
        (misc3::OUTER_TCP_SEQ_NUM, misc3::OUTER_TCP_ACK_NUM)
    };
    (p.get(Section::Misc3, seq), p.get(Section::Misc3, ack))
}

/// The ICMP header of a packet: type, code and the header's second dword.
pub(super) struct Icmp {
    pub icmp_type: u64,
    pub code: u64,
    pub header_data: u64,
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
}

/// The outer ICMP or ICMPv6 header, when the outer L4 protocol is one of them.
pub(super) fn icmp(p: &MatchParam) -> Option<Icmp> {
    let m = |f| p.get(Section::Misc3, f);
    match Headers::of(p, false).protocol() {
        ipproto::ICMP => Some(Icmp {
            icmp_type: m(misc3::ICMP_TYPE),
            code: m(misc3::ICMP_CODE),
            header_data: m(misc3::ICMP_HEADER_DATA),
            v6: false,
        }),
        ipproto::ICMPV6 => Some(Icmp {
            icmp_type: m(misc3::ICMPV6_TYPE),
            code: m(misc3::ICMPV6_CODE),
            header_data: m(misc3::ICMPV6_HEADER_DATA),
            v6: true,
        }),
        _ => None,
    }
}

/// The first MPLS label stack entry (label, exp, bottom-of-stack, TTL) of the outer or
/// inner MPLS stack.
pub(super) fn mpls(p: &MatchParam, inner: bool) -> [u64; 4] {
    let m = |f| p.get(Section::Misc2, f);
    if inner {
        [
            m(misc2::INNER_FIRST_MPLS_LABEL),
            m(misc2::INNER_FIRST_MPLS_EXP),
            m(misc2::INNER_FIRST_MPLS_S_BOS),
            m(misc2::INNER_FIRST_MPLS_TTL),
        ]
    } else {
        [
            m(misc2::OUTER_FIRST_MPLS_LABEL),
            m(misc2::OUTER_FIRST_MPLS_EXP),
            m(misc2::OUTER_FIRST_MPLS_S_BOS),
            m(misc2::OUTER_FIRST_MPLS_TTL),
        ]
    }
}

/// An MPLS label stack entry as 32 bits on the wire: label(20) exp(3) s(1) ttl(8).
fn mpls_word(label: u64, exp: u64, s_bos: u64, ttl: u64) -> u32 {
    (((label & 0xf_ffff) << 12) | ((exp & 7) << 9) | ((s_bos & 1) << 8) | (ttl & 0xff)) as u32
}

/// The first dwords of the tunnel header after the outer L4 header, as the flex parser
/// reads them. A parser may report them raw (`misc5.tunnel_header_*`) and decoded
/// (VXLAN-GPE, GENEVE and GTP-U fields); both views of one header agree, so they are
/// merged.
pub(super) fn tunnel_header(p: &MatchParam) -> [u32; 4] {
    let m3 = |f| p.get(Section::Misc3, f);
    let m = |f| p.get(Section::Misc, f);
    let m5 = |f| p.get(Section::Misc5, f) as u32;
    let mut w = [
        m5(misc5::TUNNEL_HEADER_0),
        m5(misc5::TUNNEL_HEADER_1),
        m5(misc5::TUNNEL_HEADER_2),
        m5(misc5::TUNNEL_HEADER_3),
    ];
    // VXLAN-GPE: flags(8) reserved(16) next protocol(8) | VNI(24) reserved(8).
    w[0] |= ((m3(misc3::OUTER_VXLAN_GPE_FLAGS) << 24) | m3(misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL))
        as u32;
    w[1] |= (m3(misc3::OUTER_VXLAN_GPE_VNI) << 8) as u32;
    // GENEVE: version(2) option length(6) O(1) C(1) reserved(6) protocol(16) | VNI(24)
    // reserved(8).
    w[0] |= ((m(misc::GENEVE_OPT_LEN) << 24)
        | (m(misc::GENEVE_OAM) << 23)
        | m(misc::GENEVE_PROTOCOL_TYPE)) as u32;
    w[1] |= (m(misc::GENEVE_VNI) << 8) as u32;
    // GTP-U: flags(8) message type(8) length(16) | TEID(32).
    w[0] |= ((m3(misc3::GTPU_MSG_FLAGS) << 24) | (m3(misc3::GTPU_MSG_TYPE) << 16)) as u32;
    w[1] |= m3(misc3::GTPU_TEID) as u32;
    w
}

/// Which STE format's parser graph: ICMP is a flex-parser protocol on ConnectX-5 only;
/// later devices parse it natively into the L4-misc lookup.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ParserGen {
    /// ConnectX-5 (STE v0).
    V0,
    /// ConnectX-6 Dx and later (STE v1/v2).
    V1,
}

/// The eight flex-parser samples of a packet.
///
/// The firmware assigns protocol fields to flex parsers (the `flex_parser_id_*`
/// capabilities); each parser then samples its field from the packet. Programmable
/// samples are reported in misc4 as (parser id, value) pairs. A parser that sampled
/// nothing reads zero. Each parser samples one field of one packet, so contributions
/// are merged (a consistent packet never gives one parser two different values).
pub(super) fn flex_parsers(p: &MatchParam, caps: &Caps, gen: ParserGen) -> [u32; FLEX_PARSERS] {
    let mut fp = [0u32; FLEX_PARSERS];
    let mut put = |id: u8, value: u32| {
        if let Some(slot) = fp.get_mut(usize::from(id)) {
            *slot |= value;
        }
    };
    let ids = &caps.flex_parser;
    let m2 = |f| p.get(Section::Misc2, f);
    let m3 = |f| p.get(Section::Misc3, f);

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
    for (id, value) in SAMPLES {
        let id = p.get(Section::Misc4, id);
        if let Ok(id) = u8::try_from(id) {
            put(id, p.get(Section::Misc4, value) as u32);
        }
    }

    if gen == ParserGen::V0 {
        if let Some(icmp) = icmp(p) {
            let (dw0, dw1) = if icmp.v6 {
                (ids.icmpv6_dw0, ids.icmpv6_dw1)
            } else {
                (ids.icmp_dw0, ids.icmp_dw1)
            };
            put(dw0, ((icmp.icmp_type << 24) | (icmp.code << 16)) as u32);
            put(dw1, icmp.header_data as u32);
        }
    }

    put(
        ids.geneve_tlv_option_0,
        m3(misc3::GENEVE_TLV_OPTION_0_DATA) as u32,
    );
    put(
        ids.mpls_over_gre,
        mpls_word(
            m2(misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL),
            m2(misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP),
            m2(misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS),
            m2(misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL),
        ),
    );
    put(
        ids.mpls_over_udp,
        mpls_word(
            m2(misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL),
            m2(misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP),
            m2(misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS),
            m2(misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL),
        ),
    );
    put(ids.gtpu_dw_0, m3(misc3::GTPU_DW_0) as u32);
    put(ids.gtpu_teid, m3(misc3::GTPU_TEID) as u32);
    put(ids.gtpu_dw_2, m3(misc3::GTPU_DW_2) as u32);
    put(
        ids.gtpu_first_ext_dw_0,
        m3(misc3::GTPU_FIRST_EXT_DW_0) as u32,
    );
    fp
}

/// The "flex parser OK" bits: bit `id` is set when parser `id` found its field. Only the
/// GENEVE option parser reports presence in the match parameter
/// (`misc.geneve_tlv_option_0_exist`).
pub(super) fn flex_parsers_ok(p: &MatchParam, caps: &Caps) -> u64 {
    let id = caps.flex_parser.geneve_tlv_option_0;
    if p.get(Section::Misc, misc::GENEVE_TLV_OPTION_0_EXIST) != 0 && usize::from(id) < FLEX_PARSERS
    {
        1 << id
    } else {
        0
    }
}

/// Where a packet came from, as the source lookup sees it.
pub(super) struct Source {
    /// The gvmi of the source vport (0 when the vport is unknown).
    pub gvmi: u64,
    /// The packet was sent by a function and looped back, rather than received from the
    /// wire.
    pub functional_lb: bool,
    /// The sending QP or SQ number.
    pub qp: u64,
}

/// The source of a packet: `misc.source_port` resolved through the e-switch's vport
/// table, and `misc.source_sqn`.
pub(super) fn source(p: &MatchParam, caps: &Caps) -> Source {
    let port = p.get(Section::Misc, misc::SOURCE_PORT) as u16;
    let gvmi = if port == ECPF_PORT && caps.is_ecpf {
        caps.esw_manager_vhca_gvmi
    } else {
        caps.vports
            .iter()
            .find(|v| v.vhca_gvmi == caps.esw_manager_vhca_gvmi && v.vport_num == port)
            .map_or(0, |v| v.vport_gvmi)
    };
    Source {
        gvmi: gvmi.into(),
        functional_lb: port != WIRE_PORT,
        qp: p.get(Section::Misc, misc::SOURCE_SQN),
    }
}

/// The GRE header fields (C, K, S present bits, protocol, key).
pub(super) struct Gre {
    pub c_present: u64,
    pub k_present: u64,
    pub s_present: u64,
    pub protocol: u64,
    pub key_h: u64,
    pub key_l: u64,
}

/// The GRE header of a packet.
pub(super) fn gre(p: &MatchParam) -> Gre {
    let m = |f| p.get(Section::Misc, f);
    Gre {
        c_present: m(misc::GRE_C_PRESENT),
        k_present: m(misc::GRE_K_PRESENT),
        s_present: m(misc::GRE_S_PRESENT),
        protocol: m(misc::GRE_PROTOCOL),
        key_h: m(misc::GRE_KEY_H),
        key_l: m(misc::GRE_KEY_L),
    }
}

/// The L2 tunnel network id: the VXLAN VNI in the upper 24 bits.
pub(super) fn tunnel_network_id(p: &MatchParam) -> u64 {
    p.get(Section::Misc, misc::VXLAN_VNI) << 8
}

/// Metadata register A and C registers 0..7.
pub(super) fn reg_a(p: &MatchParam) -> u64 {
    p.get(Section::Misc2, misc2::METADATA_REG_A)
}

/// Metadata register C `n` (0..=7).
pub(super) fn reg_c(p: &MatchParam, n: usize) -> u64 {
    const REGS: [BitField; 8] = [
        misc2::METADATA_REG_C_0,
        misc2::METADATA_REG_C_1,
        misc2::METADATA_REG_C_2,
        misc2::METADATA_REG_C_3,
        misc2::METADATA_REG_C_4,
        misc2::METADATA_REG_C_5,
        misc2::METADATA_REG_C_6,
        misc2::METADATA_REG_C_7,
    ];
    REGS.get(n).map_or(0, |&f| p.get(Section::Misc2, f))
}
