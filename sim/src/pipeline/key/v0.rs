//! Lookup keys of STE v0 (ConnectX-5).
//!
//! A v0 lookup type is one byte. Header lookups exist three times: on the outer headers
//! of a TX packet (`_O`), on the outer headers of an RX packet (`_D`), and on the inner
//! headers (`_I`); the `_O` and `_D` keys carry the same fields.

use super::view::{self, Headers, ParserGen};
use super::{KeyBuf, RegisterLookup};
use ste_builder::builder::v0::{lu, LuTypes};
use ste_builder::prm::{
    dr_match_spec as spec, ste_eth_l2_dst as l2_dst, ste_eth_l2_src as l2_src,
    ste_eth_l2_src_dst as l2_src_dst, ste_eth_l2_tnl as l2_tnl,
    ste_eth_l3_ipv4_5_tuple as five_tuple, ste_eth_l3_ipv4_misc as ipv4_misc,
    ste_eth_l3_ipv6_dst as ipv6_dst, ste_eth_l3_ipv6_src as ipv6_src, ste_eth_l4 as l4,
    ste_eth_l4_misc as l4_misc, ste_flex_parser_0 as flex0, ste_flex_parser_1 as flex1,
    ste_gre as gre, ste_mpls as mpls, ste_src_gvmi_qp as src_qp, ste_tunnel_header as tnl_hdr,
};
use ste_builder::{Caps, MatchParam};

/// Header lookups, by the header position they read.
#[derive(Clone, Copy)]
enum Sided {
    EthL2Dst,
    EthL2Src,
    EthL2SrcDst,
    Ipv6Dst,
    Ipv6Src,
    Ipv4FiveTuple,
    Ipv4Misc,
    EthL4,
    EthL4Misc,
    Mpls,
}

const SIDED: [(LuTypes, Sided); 10] = [
    (lu::ETHL2_DST, Sided::EthL2Dst),
    (lu::ETHL2_SRC, Sided::EthL2Src),
    (lu::ETHL2_SRC_DST, Sided::EthL2SrcDst),
    (lu::ETHL3_IPV6_DST, Sided::Ipv6Dst),
    (lu::ETHL3_IPV6_SRC, Sided::Ipv6Src),
    (lu::ETHL3_IPV4_5_TUPLE, Sided::Ipv4FiveTuple),
    (lu::ETHL3_IPV4_MISC, Sided::Ipv4Misc),
    (lu::ETHL4, Sided::EthL4),
    (lu::ETHL4_MISC, Sided::EthL4Misc),
    (lu::MPLS_FIRST, Sided::Mpls),
];

/// The header lookup `lu_type` names, and whether it reads the inner headers.
fn sided(lu_type: u16) -> Option<(Sided, bool)> {
    SIDED.iter().find_map(|&(t, s)| {
        if lu_type == t.inner {
            Some((s, true))
        } else if lu_type == t.outer || lu_type == t.rx {
            Some((s, false))
        } else {
            None
        }
    })
}

/// The 16-byte key of `lu_type` for packet `p`, or `None` for a lookup type this model
/// does not know.
pub(super) fn key(lu_type: u16, p: &MatchParam, caps: &Caps) -> Option<[u8; 16]> {
    let mut k = KeyBuf::default();
    if let Some((lookup, inner)) = sided(lu_type) {
        match lookup {
            Sided::EthL2Dst => eth_l2(&mut k, p, inner, false),
            Sided::EthL2Src => eth_l2(&mut k, p, inner, true),
            Sided::EthL2SrcDst => eth_l2_src_dst(&mut k, p, inner),
            Sided::Ipv6Dst => {
                let h = Headers::of(p, inner);
                k.set(ipv6_dst::DST_IP_127_96, h.get(spec::DST_IP_127_96));
                k.set(ipv6_dst::DST_IP_95_64, h.get(spec::DST_IP_95_64));
                k.set(ipv6_dst::DST_IP_63_32, h.get(spec::DST_IP_63_32));
                k.set(ipv6_dst::DST_IP_31_0, h.get(spec::DST_IP_31_0));
            }
            Sided::Ipv6Src => {
                let h = Headers::of(p, inner);
                k.set(ipv6_src::SRC_IP_127_96, h.get(spec::SRC_IP_127_96));
                k.set(ipv6_src::SRC_IP_95_64, h.get(spec::SRC_IP_95_64));
                k.set(ipv6_src::SRC_IP_63_32, h.get(spec::SRC_IP_63_32));
                k.set(ipv6_src::SRC_IP_31_0, h.get(spec::SRC_IP_31_0));
            }
            Sided::Ipv4FiveTuple => ipv4_5_tuple(&mut k, p, inner),
            Sided::Ipv4Misc => {
                let h = Headers::of(p, inner);
                k.set(ipv4_misc::VERSION, h.get(spec::IP_VERSION));
                k.set(ipv4_misc::IHL, h.get(spec::IPV4_IHL));
                k.set(ipv4_misc::TIME_TO_LIVE, h.get(spec::IP_TTL_HOPLIMIT));
            }
            Sided::EthL4 => eth_l4(&mut k, p, inner),
            Sided::EthL4Misc => {
                if Headers::of(p, inner).protocol() == view::ipproto::TCP {
                    let (seq, ack) = view::tcp_seq_ack(p, inner);
                    k.set(l4_misc::SEQ_NUM, seq);
                    k.set(l4_misc::ACK_NUM, ack);
                }
            }
            Sided::Mpls => {
                let [label, exp, s_bos, ttl] = view::mpls(p, inner);
                k.set(mpls::MPLS0_LABEL, label);
                k.set(mpls::MPLS0_EXP, exp);
                k.set(mpls::MPLS0_S_BOS, s_bos);
                k.set(mpls::MPLS0_TTL, ttl);
            }
        }
        return Some(k.0);
    }
    match lu_type {
        lu::ETHL2_TUNNELING_I => eth_l2_tnl(&mut k, p),
        lu::GRE => {
            let g = view::gre(p);
            k.set(gre::GRE_C_PRESENT, g.c_present);
            k.set(gre::GRE_K_PRESENT, g.k_present);
            k.set(gre::GRE_S_PRESENT, g.s_present);
            k.set(gre::GRE_PROTOCOL, g.protocol);
            k.set(gre::GRE_KEY_H, g.key_h);
            k.set(gre::GRE_KEY_L, g.key_l);
        }
        // The flex-parser tunnel header lookup and the tunnel header lookup both carry
        // the first two dwords of the tunnel header (VXLAN-GPE, GENEVE and GTP-U are
        // views of them).
        lu::FLEX_PARSER_TNL_HEADER | lu::TUNNEL_HEADER => {
            let w = view::tunnel_header(p);
            k.set(tnl_hdr::TUNNEL_HEADER_DW0, w[0].into());
            k.set(tnl_hdr::TUNNEL_HEADER_DW1, w[1].into());
        }
        lu::GENERAL_PURPOSE => RegisterLookup::GeneralPurpose.key(&mut k, p),
        lu::STEERING_REGISTERS_0 => RegisterLookup::Registers0.key(&mut k, p),
        lu::STEERING_REGISTERS_1 => RegisterLookup::Registers1.key(&mut k, p),
        lu::SRC_GVMI_AND_QP => {
            let s = view::source(p, caps);
            k.set(src_qp::SOURCE_GVMI, s.gvmi);
            k.set(src_qp::FUNCTIONAL_LB, s.functional_lb.into());
            k.set(src_qp::SOURCE_QP, s.qp);
        }
        lu::FLEX_PARSER_0 => {
            let fp = view::flex_parsers(p, caps, ParserGen::V0);
            k.set(flex0::FLEX_PARSER_0, fp[0].into());
            k.set(flex0::FLEX_PARSER_1, fp[1].into());
            k.set(flex0::FLEX_PARSER_2, fp[2].into());
            k.set(flex0::FLEX_PARSER_3, fp[3].into());
        }
        lu::FLEX_PARSER_1 => {
            let fp = view::flex_parsers(p, caps, ParserGen::V0);
            k.set(flex1::FLEX_PARSER_4, fp[4].into());
            k.set(flex1::FLEX_PARSER_5, fp[5].into());
            k.set(flex1::FLEX_PARSER_6, fp[6].into());
            k.set(flex1::FLEX_PARSER_7, fp[7].into());
        }
        _ => return None,
    }
    Some(k.0)
}

/// `ETHL2_DST` / `ETHL2_SRC`: one MAC, ethertype, both VLANs, fragment bit and L3 type.
/// The layouts differ only in the MAC.
fn eth_l2(k: &mut KeyBuf, p: &MatchParam, inner: bool, src: bool) {
    let h = Headers::of(p, inner);
    let v2 = view::second_vlan(p, inner);
    if src {
        k.set(l2_src::SMAC_47_16, h.get(spec::SMAC_47_16));
        k.set(l2_src::SMAC_15_0, h.get(spec::SMAC_15_0));
    } else {
        k.set(l2_dst::DMAC_47_16, h.get(spec::DMAC_47_16));
        k.set(l2_dst::DMAC_15_0, h.get(spec::DMAC_15_0));
    }
    k.set(l2_dst::L3_ETHERTYPE, h.get(spec::ETHERTYPE));
    k.set(l2_dst::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_dst::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_dst::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_dst::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
    k.set(l2_dst::IP_FRAGMENTED, h.get(spec::FRAG));
    k.set(l2_dst::L3_TYPE, h.l3_type());
    k.set(l2_dst::SECOND_PRIORITY, v2.prio);
    k.set(l2_dst::SECOND_CFI, v2.cfi);
    k.set(l2_dst::SECOND_VLAN_QUALIFIER, v2.qualifier);
    k.set(l2_dst::SECOND_VLAN_ID, v2.vid);
}

/// `ETHL2_SRC_DST`: both MACs (the source MAC split 16 + 32), the first VLAN and the L3
/// type.
fn eth_l2_src_dst(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    let smac = (h.get(spec::SMAC_47_16) << 16) | h.get(spec::SMAC_15_0);
    k.set(l2_src_dst::DMAC_47_16, h.get(spec::DMAC_47_16));
    k.set(l2_src_dst::DMAC_15_0, h.get(spec::DMAC_15_0));
    k.set(l2_src_dst::SMAC_47_32, smac >> 32);
    k.set(l2_src_dst::SMAC_31_0, smac & 0xffff_ffff);
    k.set(l2_src_dst::L3_TYPE, h.l3_type());
    k.set(l2_src_dst::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_src_dst::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_src_dst::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_src_dst::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
}

/// `ETHL2_TUNNELING_I`: the inner L2 header and the tunnel network id.
fn eth_l2_tnl(k: &mut KeyBuf, p: &MatchParam) {
    let h = Headers::of(p, true);
    k.set(l2_tnl::DMAC_47_16, h.get(spec::DMAC_47_16));
    k.set(l2_tnl::DMAC_15_0, h.get(spec::DMAC_15_0));
    k.set(l2_tnl::L3_ETHERTYPE, h.get(spec::ETHERTYPE));
    k.set(l2_tnl::L2_TUNNELING_NETWORK_ID, view::tunnel_network_id(p));
    k.set(l2_tnl::IP_FRAGMENTED, h.get(spec::FRAG));
    k.set(l2_tnl::L3_TYPE, h.l3_type());
    k.set(l2_tnl::FIRST_PRIORITY, h.get(spec::FIRST_PRIO));
    k.set(l2_tnl::FIRST_CFI, h.get(spec::FIRST_CFI));
    k.set(l2_tnl::FIRST_VLAN_QUALIFIER, h.vlan_qualifier());
    k.set(l2_tnl::FIRST_VLAN_ID, h.get(spec::FIRST_VID));
}

/// `ETHL3_IPV4_5_TUPLE`.
fn ipv4_5_tuple(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    let (sport, dport) = h.l4_ports();
    k.set(five_tuple::DESTINATION_ADDRESS, h.get(spec::DST_IP_31_0));
    k.set(five_tuple::SOURCE_ADDRESS, h.get(spec::SRC_IP_31_0));
    k.set(five_tuple::SOURCE_PORT, sport);
    k.set(five_tuple::DESTINATION_PORT, dport);
    k.set(five_tuple::FRAGMENTED, h.get(spec::FRAG));
    k.set(five_tuple::ECN, h.get(spec::IP_ECN));
    k.set(
        super::tcp_flags_field(five_tuple::TCP_NS),
        h.get(spec::TCP_FLAGS),
    );
    k.set(five_tuple::DSCP, h.get(spec::IP_DSCP));
    k.set(five_tuple::PROTOCOL, h.protocol());
}

/// `ETHL4`.
fn eth_l4(k: &mut KeyBuf, p: &MatchParam, inner: bool) {
    let h = Headers::of(p, inner);
    let (sport, dport) = h.l4_ports();
    k.set(l4::FRAGMENTED, h.get(spec::FRAG));
    k.set(l4::PROTOCOL, h.protocol());
    k.set(l4::DST_PORT, dport);
    k.set(l4::ECN, h.get(spec::IP_ECN));
    k.set(super::tcp_flags_field(l4::TCP_NS), h.get(spec::TCP_FLAGS));
    k.set(l4::SRC_PORT, sport);
    k.set(l4::IPV6_HOP_LIMIT, h.get(spec::IP_TTL_HOPLIMIT));
    k.set(l4::DSCP, h.get(spec::IP_DSCP));
    k.set(l4::FLOW_LABEL, view::flow_label(p, inner));
}
