//! Lookup keys of STE v1 (ConnectX-6 Dx) and v2 (ConnectX-7).
//!
//! A v1 lookup type is two bytes: the definer mode (0 or 1 for the classic byte-mask
//! lookups) and the definer index. Most header lookups exist for the outer and for the
//! inner headers.

use super::view::{self, Headers, ParserGen};
use super::{KeyBuf, RegisterLookup};
use ste_builder::builder::v1::lu;
use ste_builder::prm::{
    dr_match_spec as spec, ste_eth_l2_dst_v1 as l2_dst, ste_eth_l2_src_dst_v1 as l2_src_dst,
    ste_eth_l2_src_v1 as l2_src, ste_eth_l2_tnl_v1 as l2_tnl,
    ste_eth_l3_ipv4_5_tuple_v1 as five_tuple, ste_eth_l3_ipv4_misc_v1 as ipv4_misc,
    ste_eth_l3_ipv6_dst as ipv6_dst, ste_eth_l3_ipv6_src as ipv6_src,
    ste_eth_l4_misc_v1 as l4_misc, ste_eth_l4_v1 as l4, ste_flex_parser_0 as flex0,
    ste_flex_parser_1 as flex1, ste_flex_parser_ok as flex_ok, ste_gre_v1 as gre,
    ste_icmp_v1 as icmp, ste_mpls_v1 as mpls, ste_src_gvmi_qp_v1 as src_qp,
    ste_tunnel_header_v1 as tnl_hdr,
};
use ste_builder::{Caps, MatchParam};

/// The inner L4-misc lookup (`DR_STE_V1_LU_TYPE_ETHL4_MISC_I`). rdma-core defines it but
/// builds no STE with it, so the builder crate has no constant for it.
pub(super) const ETHL4_MISC_I: u16 = 0x0114;

/// The 16-byte key of `lu_type` for packet `p`, or `None` for a lookup type this model
/// does not know.
pub(super) fn key(lu_type: u16, p: &MatchParam, caps: &Caps) -> Option<[u8; 16]> {
    let mut k = KeyBuf::default();
    match lu_type {
        lu::ETHL2_O => eth_l2(&mut k, p, false, Mac::Dst),
        lu::ETHL2_I => eth_l2(&mut k, p, true, Mac::Dst),
        lu::ETHL2_SRC_O => eth_l2(&mut k, p, false, Mac::Src),
        lu::ETHL2_SRC_I => eth_l2(&mut k, p, true, Mac::Src),
        lu::ETHL2_SRC_DST_O => eth_l2_src_dst(&mut k, p, false),
        lu::ETHL2_SRC_DST_I => eth_l2_src_dst(&mut k, p, true),
        lu::ETHL2_TNL => eth_l2_tnl(&mut k, p),
        lu::ETHL3_IPV4_5_TUPLE_O => ipv4_5_tuple(&mut k, p, false),
        lu::ETHL3_IPV4_5_TUPLE_I => ipv4_5_tuple(&mut k, p, true),
        lu::IPV6_DES_O => ipv6_address(&mut k, p, false, Ipv6Addr::Dst),
        lu::IPV6_DES_I => ipv6_address(&mut k, p, true, Ipv6Addr::Dst),
        lu::IPV6_SRC_O => ipv6_address(&mut k, p, false, Ipv6Addr::Src),
        lu::IPV6_SRC_I => ipv6_address(&mut k, p, true, Ipv6Addr::Src),
        lu::ETHL4_O => eth_l4(&mut k, p, false),
        lu::ETHL4_I => eth_l4(&mut k, p, true),
        // 0x000f is also the "don't care" type of anchors; their masks are zero, so the
        // key they compute is never compared.
        lu::ETHL3_IPV4_MISC_O => ipv4_misc_key(&mut k, p, false),
        lu::ETHL3_IPV4_MISC_I => ipv4_misc_key(&mut k, p, true),
        lu::ETHL4_MISC_O => eth_l4_misc(&mut k, p, false),
        ETHL4_MISC_I => eth_l4_misc(&mut k, p, true),
        lu::MPLS_O => mpls_key(&mut k, p, false),
        lu::MPLS_I => mpls_key(&mut k, p, true),
        lu::GRE => gre_key(&mut k, p),
        lu::FLEX_PARSER_TNL_HEADER => tunnel_header(&mut k, p, false),
        lu::TNL_HEADER => tunnel_header(&mut k, p, true),
        lu::GENERAL_PURPOSE => RegisterLookup::GeneralPurpose.key(&mut k, p),
        lu::STEERING_REGISTERS_0 => RegisterLookup::Registers0.key(&mut k, p),
        lu::STEERING_REGISTERS_1 => RegisterLookup::Registers1.key(&mut k, p),
        lu::SRC_QP_GVMI => {
            let s = view::source(p, caps);
            k.set(src_qp::FUNCTIONAL_LB, s.functional_lb.into());
            k.set(src_qp::SOURCE_GVMI, s.gvmi);
            k.set(src_qp::SOURCE_QP, s.qp);
        }
        lu::FLEX_PARSER_0 => {
            let fp = view::flex_parsers(p, caps, ParserGen::V1);
            k.set(flex0::FLEX_PARSER_0, fp[0].into());
            k.set(flex0::FLEX_PARSER_1, fp[1].into());
            k.set(flex0::FLEX_PARSER_2, fp[2].into());
            k.set(flex0::FLEX_PARSER_3, fp[3].into());
        }
        lu::FLEX_PARSER_1 => {
            let fp = view::flex_parsers(p, caps, ParserGen::V1);
            k.set(flex1::FLEX_PARSER_4, fp[4].into());
            k.set(flex1::FLEX_PARSER_5, fp[5].into());
            k.set(flex1::FLEX_PARSER_6, fp[6].into());
            k.set(flex1::FLEX_PARSER_7, fp[7].into());
        }
        lu::FLEX_PARSER_OK => {
            let fp = view::flex_parsers(p, caps, ParserGen::V1);
            k.set(flex_ok::FLEX_PARSER_3, fp[3].into());
            k.set(flex_ok::FLEX_PARSER_2, fp[2].into());
            k.set(flex_ok::FLEX_PARSERS_OK, view::flex_parsers_ok(p, caps));
            k.set(flex_ok::FLEX_PARSER_0, fp[0].into());
        }
        _ => return None,
    }
    Some(k.0)
}

/// Which MAC address an L2 lookup carries.
#[derive(Clone, Copy)]
enum Mac {
    Src,
    Dst,
}

/// `ETHL2` (destination MAC) and `ETHL2_SRC` (source MAC): one MAC, ethertype, both
/// VLANs, fragment bit and L3 type. The two layouts differ only in the MAC.
fn eth_l2(k: &mut KeyBuf, p: &MatchParam, inner: bool, mac: Mac) {
    let h = Headers::of(p, inner);
    let v2 = view::second_vlan(p, inner);
    match mac {
        Mac::Dst => {
            k.set(l2_dst::DMAC_47_16, h.get(spec::DMAC_47_16));
            k.set(l2_dst::DMAC_15_0, h.get(spec::DMAC_15_0));
        }
        Mac::Src => {
            k.set(l2_src::SMAC_47_16, h.get(spec::SMAC_47_16));
            k.set(l2_src::SMAC_15_0, h.get(spec::SMAC_15_0));
        }
    }
    // The rest of the layout is shared; the dst layout's constants name it.
    k.set(l2_dst::IP_FRAGMENTED, h.get(spec::FRAG));
    k.set(l2_dst::L3_TYPE, h.l3_type());
    k.set(l2_dst::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_dst::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_dst::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_dst::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
    k.set(l2_dst::L3_ETHERTYPE, h.get(spec::ETHERTYPE));
    k.set(l2_dst::SECOND_VLAN_QUALIFIER, v2.qualifier);
    k.set(l2_dst::SECOND_PRIORITY, v2.prio);
    k.set(l2_dst::SECOND_CFI, v2.cfi);
    k.set(l2_dst::SECOND_VLAN_ID, v2.vid);
}

/// `ETHL2_SRC_DST`: both MACs, the first VLAN and the L3 type.
fn eth_l2_src_dst(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    k.set(l2_src_dst::DMAC_47_16, h.get(spec::DMAC_47_16));
    k.set(l2_src_dst::DMAC_15_0, h.get(spec::DMAC_15_0));
    k.set(l2_src_dst::SMAC_47_16, h.get(spec::SMAC_47_16));
    k.set(l2_src_dst::SMAC_15_0, h.get(spec::SMAC_15_0));
    k.set(l2_src_dst::L3_TYPE, h.l3_type());
    k.set(l2_src_dst::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_src_dst::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_src_dst::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_src_dst::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
}

/// `ETHL2_TNL`: the tunnel network id and the inner L2 header.
fn eth_l2_tnl(k: &mut KeyBuf, p: &MatchParam) {
    let h = Headers::of(p, true);
    k.set(l2_tnl::L2_TUNNELING_NETWORK_ID, view::tunnel_network_id(p));
    k.set(l2_tnl::DMAC_47_16, h.get(spec::DMAC_47_16));
    k.set(l2_tnl::DMAC_15_0, h.get(spec::DMAC_15_0));
    k.set(l2_tnl::L3_ETHERTYPE, h.get(spec::ETHERTYPE));
    k.set(l2_tnl::IP_FRAGMENTED, h.get(spec::FRAG));
    k.set(l2_tnl::L3_TYPE, h.l3_type());
    k.set(l2_tnl::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_tnl::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_tnl::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_tnl::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
}

/// `ETHL3_IPV4_5_TUPLE`: IPv4 addresses, L4 ports, protocol, DSCP/ECN, fragment bit and
/// TCP flags.
fn ipv4_5_tuple(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    let (sport, dport) = h.l4_ports();
    k.set(five_tuple::SOURCE_ADDRESS, h.get(spec::SRC_IP_31_0));
    k.set(five_tuple::DESTINATION_ADDRESS, h.get(spec::DST_IP_31_0));
    k.set(five_tuple::SOURCE_PORT, sport);
    k.set(five_tuple::DESTINATION_PORT, dport);
    k.set(five_tuple::FRAGMENTED, h.get(spec::FRAG));
    k.set(
        super::tcp_flags_field(five_tuple::TCP_NS),
        h.get(spec::TCP_FLAGS),
    );
    k.set(five_tuple::DSCP, h.get(spec::IP_DSCP));
    k.set(five_tuple::ECN, h.get(spec::IP_ECN));
    k.set(five_tuple::PROTOCOL, h.protocol());
}

#[derive(Clone, Copy)]
enum Ipv6Addr {
    Src,
    Dst,
}

/// `IPV6_DES` / `IPV6_SRC`: one 128-bit address (the v0 layouts, shared by v1).
fn ipv6_address(k: &mut KeyBuf, p: &MatchParam, inner: bool, which: Ipv6Addr) {
    let h = Headers::of(p, inner);
    match which {
        Ipv6Addr::Dst => {
            k.set(ipv6_dst::DST_IP_127_96, h.get(spec::DST_IP_127_96));
            k.set(ipv6_dst::DST_IP_95_64, h.get(spec::DST_IP_95_64));
            k.set(ipv6_dst::DST_IP_63_32, h.get(spec::DST_IP_63_32));
            k.set(ipv6_dst::DST_IP_31_0, h.get(spec::DST_IP_31_0));
        }
        Ipv6Addr::Src => {
            k.set(ipv6_src::SRC_IP_127_96, h.get(spec::SRC_IP_127_96));
            k.set(ipv6_src::SRC_IP_95_64, h.get(spec::SRC_IP_95_64));
            k.set(ipv6_src::SRC_IP_63_32, h.get(spec::SRC_IP_63_32));
            k.set(ipv6_src::SRC_IP_31_0, h.get(spec::SRC_IP_31_0));
        }
    }
}

/// `ETHL4`: L4 ports, protocol, DSCP/ECN, hop limit, flow label, fragment bit and TCP
/// flags.
fn eth_l4(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    let (sport, dport) = h.l4_ports();
    k.set(l4::DSCP, h.get(spec::IP_DSCP));
    k.set(l4::ECN, h.get(spec::IP_ECN));
    k.set(l4::IPV6_HOP_LIMIT, h.get(spec::IP_TTL_HOPLIMIT));
    k.set(l4::PROTOCOL, h.protocol());
    k.set(l4::SRC_PORT, sport);
    k.set(l4::DST_PORT, dport);
    k.set(l4::FLOW_LABEL, view::flow_label(p, inner));
    k.set(l4::FRAGMENTED, h.get(spec::FRAG));
    k.set(super::tcp_flags_field(l4::TCP_NS), h.get(spec::TCP_FLAGS));
}

/// `ETHL3_IPV4_MISC`: version, IHL and TTL of the IPv4 header.
fn ipv4_misc_key(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    k.set(ipv4_misc::VERSION, h.get(spec::IP_VERSION));
    k.set(ipv4_misc::IHL, h.get(spec::IPV4_IHL));
    k.set(ipv4_misc::TIME_TO_LIVE, h.get(spec::IP_TTL_HOPLIMIT));
}

/// `ETHL4_MISC`: the L4 header's second view. Its layout depends on the protocol: TCP
/// sequence and acknowledgement numbers, or the ICMP/ICMPv6 type, code and header data.
fn eth_l4_misc(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    match h.protocol() {
        view::ipproto::TCP => {
            let (seq, ack) = view::tcp_seq_ack(p, inner);
            k.set(l4_misc::SEQ_NUM, seq);
            k.set(l4_misc::ACK_NUM, ack);
        }
        // The match parameter describes one ICMP header, the outer one.
        view::ipproto::ICMP | view::ipproto::ICMPV6 if !inner => {
            if let Some(i) = view::icmp(p) {
                k.set(icmp::ICMP_HEADER_DATA, i.header_data);
                k.set(icmp::ICMP_TYPE, i.icmp_type);
                k.set(icmp::ICMP_CODE, i.code);
            }
        }
        _ => {}
    }
}

/// `MPLS`: the first label stack entry.
fn mpls_key(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let [label, exp, s_bos, ttl] = view::mpls(p, inner);
    k.set(mpls::MPLS0_LABEL, label);
    k.set(mpls::MPLS0_EXP, exp);
    k.set(mpls::MPLS0_S_BOS, s_bos);
    k.set(mpls::MPLS0_TTL, ttl);
}

/// `GRE`: the GRE header's flags, protocol and key.
fn gre_key(k: &mut KeyBuf, p: &MatchParam) {
    let g = view::gre(p);
    k.set(gre::GRE_C_PRESENT, g.c_present);
    k.set(gre::GRE_K_PRESENT, g.k_present);
    k.set(gre::GRE_S_PRESENT, g.s_present);
    k.set(gre::GRE_PROTOCOL, g.protocol);
    k.set(gre::GRE_KEY_H, g.key_h);
    k.set(gre::GRE_KEY_L, g.key_l);
}

/// `FLEX_PARSER_TNL_HEADER` (the first two dwords of the tunnel header) and
/// `TNL_HEADER` (the first four).
fn tunnel_header(k: &mut KeyBuf, p: &MatchParam, full: bool) {
    let w = view::tunnel_header(p);
    k.set(tnl_hdr::TUNNEL_HEADER_0, w[0].into());
    k.set(tnl_hdr::TUNNEL_HEADER_1, w[1].into());
    if full {
        k.set(tnl_hdr::TUNNEL_HEADER_2, w[2].into());
        k.set(tnl_hdr::TUNNEL_HEADER_3, w[3].into());
    }
}
