//! Parse tests: one hand- or etherparse-built packet per protocol.

use etherparse::{
    DoubleVlanHeader, EtherType, IpNumber, Ipv4Header, PacketBuilder, SingleVlanHeader, VlanHeader,
    VlanId, VlanPcp,
};
use proptest::prelude::*;
use ste_builder::match_param::Section::{Inner, Misc, Misc2, Misc3, Misc5, Outer};
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc5 as misc5, dr_match_spec as spec,
};
use ste_builder::FlexParserIds;

use super::*;
use crate::packet::parse::{Layer, StopReason, TunnelKind};
use crate::packet::{IpVersion, L4Kind, Side};

#[test]
fn ethernet_ipv4_tcp() {
    let bytes = tcp4(4321, 80, b"hello");
    let p = pkt(bytes).parse();
    let f = &p.fields;
    assert_eq!(get(f, Outer, spec::SMAC_47_16), 0x0211_2233);
    assert_eq!(get(f, Outer, spec::SMAC_15_0), 0x4455);
    assert_eq!(get(f, Outer, spec::DMAC_47_16), 0x02aa_bbcc);
    assert_eq!(get(f, Outer, spec::DMAC_15_0), 0xddee);
    assert_eq!(get(f, Outer, spec::ETHERTYPE), 0x0800);
    assert_eq!(get(f, Outer, spec::IP_VERSION), 4);
    assert_eq!(get(f, Outer, spec::IPV4_IHL), 5);
    assert_eq!(get(f, Outer, spec::IP_TTL_HOPLIMIT), 64);
    assert_eq!(get(f, Outer, spec::IP_PROTOCOL), 6);
    assert_eq!(get(f, Outer, spec::SRC_IP_31_0), 0x0a00_0001);
    assert_eq!(get(f, Outer, spec::DST_IP_31_0), 0xc0a8_0709);
    assert_eq!(get(f, Outer, spec::SRC_IP_127_96), 0);
    assert_eq!(get(f, Outer, spec::TCP_SPORT), 4321);
    assert_eq!(get(f, Outer, spec::TCP_DPORT), 80);
    // SYN (0x02) and ACK (0x10).
    assert_eq!(get(f, Outer, spec::TCP_FLAGS), 0x12);
    assert_eq!(get(f, Misc3, misc3::OUTER_TCP_SEQ_NUM), 0x1234_5678);
    assert_eq!(get(f, Misc3, misc3::OUTER_TCP_ACK_NUM), 0x0bad_cafe);
    for ok in [
        spec::L3_OK,
        spec::L4_OK,
        spec::IPV4_CHECKSUM_OK,
        spec::L4_CHECKSUM_OK,
    ] {
        assert_eq!(get(f, Outer, ok), 1);
    }
    assert_eq!(get(f, Outer, spec::FRAG), 0);
    assert_eq!(get(f, Outer, spec::CVLAN_TAG), 0);
    assert!(p.tunnel.is_none() && p.inner.is_none() && p.stop.is_none());
    assert_eq!((p.outer.l3_type(), p.outer.l4_type()), (1, 1));
    let l4 = p.outer.l4.unwrap();
    assert_eq!((l4.kind, l4.offset), (L4Kind::Tcp, 34));
}

#[test]
fn dscp_ecn_and_bad_checksums() {
    let mut bytes = udp4(1, 2, b"abc");
    bytes[15] = (46 << 2) | 1; // DSCP EF, ECN 1 (checksum now wrong)
    let f = pkt(bytes.clone()).fields();
    assert_eq!(get(&f, Outer, spec::IP_DSCP), 46);
    assert_eq!(get(&f, Outer, spec::IP_ECN), 1);
    assert_eq!(get(&f, Outer, spec::IPV4_CHECKSUM_OK), 0);
    assert_eq!(
        get(&f, Outer, spec::L3_OK),
        1,
        "l3_ok does not look at the checksum"
    );
    // Break the UDP checksum instead.
    let mut bytes = udp4(1, 2, b"abc");
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let f = pkt(bytes).fields();
    assert_eq!(get(&f, Outer, spec::IPV4_CHECKSUM_OK), 1);
    assert_eq!(get(&f, Outer, spec::L4_OK), 1);
    assert_eq!(get(&f, Outer, spec::L4_CHECKSUM_OK), 0);
}

#[test]
fn two_vlans_ipv6_udp() {
    let vlans = VlanHeader::Double(DoubleVlanHeader {
        outer: SingleVlanHeader {
            pcp: VlanPcp::try_new(5).unwrap(),
            drop_eligible_indicator: true,
            vlan_id: VlanId::try_new(100).unwrap(),
            ether_type: EtherType(0),
        },
        inner: SingleVlanHeader {
            pcp: VlanPcp::try_new(2).unwrap(),
            drop_eligible_indicator: false,
            vlan_id: VlanId::try_new(0xabc).unwrap(),
            ether_type: EtherType(0),
        },
    });
    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .vlan(vlans)
        .ipv6(SRC6, DST6, 33)
        .udp(5000, 53);
    let mut bytes = Vec::new();
    b.write(&mut bytes, b"query").unwrap();
    // Flow label 0x12345, traffic class DSCP 10 ECN 2.
    let ip = 22;
    bytes[ip] = 0x60 | (10 >> 2);
    bytes[ip + 1] = ((10 & 3) << 6) | (2 << 4) | 0x1;
    bytes[ip + 2] = 0x23;
    bytes[ip + 3] = 0x45;
    let p = pkt(bytes).parse();
    let f = &p.fields;
    assert_eq!(get(f, Outer, spec::SVLAN_TAG), 1);
    assert_eq!(get(f, Outer, spec::CVLAN_TAG), 0);
    assert_eq!(get(f, Outer, spec::FIRST_PRIO), 5);
    assert_eq!(get(f, Outer, spec::FIRST_CFI), 1);
    assert_eq!(get(f, Outer, spec::FIRST_VID), 100);
    assert_eq!(get(f, Misc, misc::OUTER_SECOND_CVLAN_TAG), 1);
    assert_eq!(get(f, Misc, misc::OUTER_SECOND_SVLAN_TAG), 0);
    assert_eq!(get(f, Misc, misc::OUTER_SECOND_PRIO), 2);
    assert_eq!(get(f, Misc, misc::OUTER_SECOND_VID), 0xabc);
    assert_eq!(get(f, Outer, spec::ETHERTYPE), 0x86dd);
    assert_eq!(get(f, Outer, spec::IP_VERSION), 6);
    assert_eq!(get(f, Outer, spec::IP_DSCP), 10);
    assert_eq!(get(f, Outer, spec::IP_ECN), 2);
    assert_eq!(get(f, Misc, misc::OUTER_IPV6_FLOW_LABEL), 0x12345);
    assert_eq!(get(f, Outer, spec::IP_TTL_HOPLIMIT), 33);
    assert_eq!(get(f, Outer, spec::IP_PROTOCOL), 17);
    assert_eq!(get(f, Outer, spec::SRC_IP_127_96), 0x2001_0db8);
    assert_eq!(get(f, Outer, spec::SRC_IP_31_0), 0x0005_0006);
    assert_eq!(get(f, Outer, spec::DST_IP_63_32), 0x1234_5678);
    assert_eq!(get(f, Outer, spec::UDP_SPORT), 5000);
    assert_eq!(get(f, Outer, spec::UDP_DPORT), 53);
    assert_eq!(get(f, Outer, spec::L4_CHECKSUM_OK), 1);
    assert_eq!(get(f, Outer, spec::IPV4_IHL), 0);
    let l2 = p.outer.l2.as_ref().unwrap();
    assert_eq!(l2.vlans.len(), 2);
    assert_eq!(l2.end, 22);
    assert_eq!(p.outer.l3_type(), 2);
}

#[test]
fn icmp_and_icmpv6() {
    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .ipv4(SRC4, DST4, 1)
        .icmpv4_echo_request(0x1234, 0x0007);
    let mut bytes = Vec::new();
    b.write(&mut bytes, b"ping").unwrap();
    let p = pkt(bytes).parse();
    assert_eq!(get(&p.fields, Misc3, misc3::ICMP_TYPE), 8);
    assert_eq!(get(&p.fields, Misc3, misc3::ICMP_CODE), 0);
    assert_eq!(get(&p.fields, Misc3, misc3::ICMP_HEADER_DATA), 0x1234_0007);
    assert_eq!(get(&p.fields, Outer, spec::IP_PROTOCOL), 1);
    assert_eq!(p.outer.l4.unwrap().kind, L4Kind::Icmp);
    assert_eq!(p.flex.icmp.unwrap()[1], 0x1234_0007);

    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .ipv6(SRC6, DST6, 255)
        .icmpv6_echo_reply(9, 10);
    let mut bytes = Vec::new();
    b.write(&mut bytes, b"pong").unwrap();
    let p = pkt(bytes).parse();
    assert_eq!(get(&p.fields, Misc3, misc3::ICMPV6_TYPE), 129);
    assert_eq!(
        get(&p.fields, Misc3, misc3::ICMPV6_HEADER_DATA),
        0x0009_000a
    );
    assert_eq!(get(&p.fields, Misc3, misc3::ICMP_TYPE), 0);
    let ids = FlexParserIds {
        icmpv6_dw0: 4,
        icmpv6_dw1: 5,
        ..FlexParserIds::default()
    };
    let s = p.flex.by_parser(&ids);
    assert_eq!(s.dwords[4] >> 16, 129 << 8);
    assert_eq!(s.dwords[5], 0x0009_000a);
}

/// Ethernet / IPv4 / UDP to `dport` / `tunnel` header / `inner`.
fn udp_tunnel(dport: u16, tunnel: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut payload = tunnel.to_vec();
    payload.extend_from_slice(inner);
    udp4(40000, dport, &payload)
}

#[test]
fn vxlan_with_inner_ethernet() {
    let vxlan = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0];
    let inner = inner_tcp4();
    let p = pkt(udp_tunnel(4789, &vxlan, &inner)).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc, misc::VXLAN_VNI), 0x123456);
    assert_eq!(get(f, Outer, spec::UDP_DPORT), 4789);
    let t = p.tunnel.unwrap();
    assert_eq!(
        (t.kind, t.offset, t.inner_offset()),
        (TunnelKind::Vxlan, 42, Some(50))
    );
    assert_eq!(get(f, Inner, spec::DMAC_47_16), 0x0808_0808);
    assert_eq!(get(f, Inner, spec::SMAC_15_0), 0x0606);
    assert_eq!(get(f, Inner, spec::ETHERTYPE), 0x0800);
    assert_eq!(get(f, Inner, spec::IP_VERSION), 4);
    assert_eq!(get(f, Inner, spec::SRC_IP_31_0), 0xac10_0001);
    assert_eq!(get(f, Inner, spec::IP_TTL_HOPLIMIT), 9);
    assert_eq!(get(f, Inner, spec::TCP_SPORT), 1111);
    assert_eq!(get(f, Inner, spec::TCP_DPORT), 2222);
    assert_eq!(get(f, Misc3, misc3::INNER_TCP_SEQ_NUM), 7);
    assert_eq!(get(f, Inner, spec::L4_CHECKSUM_OK), 1);
    assert_eq!(get(f, Misc5, misc5::TUNNEL_HEADER_0), 0x0800_0000);
    assert_eq!(get(f, Misc5, misc5::TUNNEL_HEADER_1), 0x1234_5600);
    assert_eq!(get(f, Misc5, misc5::TUNNEL_HEADER_2), be32(&inner[0..4]));
    let inner_h = p.inner.as_ref().unwrap();
    assert_eq!(inner_h.l2.as_ref().unwrap().offset, 50);
    assert_eq!(inner_h.l3.unwrap().offset, 64);
}

#[test]
fn vxlan_gpe_with_inner_ipv6() {
    let inner = {
        let b = PacketBuilder::ipv6(DST6, SRC6, 7).udp(1, 2);
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    };
    let gpe = [0x0c, 0, 0, 2, 0xab, 0xcd, 0xef, 0];
    let p = pkt(udp_tunnel(4790, &gpe, &inner)).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc3, misc3::OUTER_VXLAN_GPE_FLAGS), 0x0c);
    assert_eq!(get(f, Misc3, misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL), 2);
    assert_eq!(get(f, Misc3, misc3::OUTER_VXLAN_GPE_VNI), 0xabcdef);
    assert_eq!(get(f, Misc, misc::VXLAN_VNI), 0);
    assert_eq!(get(f, Inner, spec::ETHERTYPE), 0, "no inner L2");
    assert_eq!(get(f, Inner, spec::IP_VERSION), 6);
    assert_eq!(get(f, Inner, spec::SRC_IP_127_96), 0xfe80_0000);
    assert_eq!(get(f, Inner, spec::UDP_DPORT), 2);
    assert!(p.inner.as_ref().unwrap().l2.is_none());
}

#[test]
fn geneve_with_option() {
    // Version 0, 3 option words, OAM, protocol Ethernet, VNI 0x00beef.
    let mut geneve = vec![0x03, 0x80, 0x65, 0x58, 0x00, 0xbe, 0xef, 0x00];
    // Option class 0x0102, type 0x80, 2 data words.
    geneve.extend_from_slice(&[0x01, 0x02, 0x80, 0x02]);
    geneve.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
    let p = pkt(udp_tunnel(6081, &geneve, &inner_tcp4())).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc, misc::GENEVE_VNI), 0xbeef);
    assert_eq!(get(f, Misc, misc::GENEVE_OAM), 1);
    assert_eq!(get(f, Misc, misc::GENEVE_OPT_LEN), 3);
    assert_eq!(get(f, Misc, misc::GENEVE_PROTOCOL_TYPE), 0x6558);
    assert_eq!(get(f, Misc, misc::GENEVE_TLV_OPTION_0_EXIST), 1);
    assert_eq!(get(f, Misc3, misc3::GENEVE_TLV_OPTION_0_DATA), 0xdead_beef);
    assert_eq!(get(f, Inner, spec::TCP_DPORT), 2222);
    let t = p.tunnel.unwrap();
    assert_eq!((t.kind, t.len), (TunnelKind::Geneve, Some(20)));
    let ids = FlexParserIds {
        geneve_tlv_option_0: 7,
        ..FlexParserIds::default()
    };
    let s = p.flex.by_parser(&ids);
    assert_eq!((s.dwords[7], s.ok), (0xdead_beef, 0x80));
}

/// Ethernet / IPv4 / GRE header `gre` / `payload`, by etherparse.
fn gre4(gre: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = gre.to_vec();
    body.extend_from_slice(payload);
    let b = PacketBuilder::ethernet2(SMAC, DMAC).ipv4(SRC4, DST4, 64);
    let mut out = Vec::new();
    b.write(&mut out, IpNumber::GRE, &body).unwrap();
    out
}

#[test]
fn nvgre() {
    // K bit, protocol 0x6558, key = VSID 0xabcdef, flow id 0x42.
    let gre = [0x20, 0x00, 0x65, 0x58, 0xab, 0xcd, 0xef, 0x42];
    let p = pkt(gre4(&gre, &inner_tcp4())).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc, misc::GRE_C_PRESENT), 0);
    assert_eq!(get(f, Misc, misc::GRE_K_PRESENT), 1);
    assert_eq!(get(f, Misc, misc::GRE_S_PRESENT), 0);
    assert_eq!(get(f, Misc, misc::GRE_PROTOCOL), 0x6558);
    assert_eq!(get(f, Misc, misc::GRE_KEY_H), 0xabcdef);
    assert_eq!(get(f, Misc, misc::GRE_KEY_L), 0x42);
    assert_eq!(get(f, Outer, spec::IP_PROTOCOL), 47);
    assert_eq!(get(f, Inner, spec::TCP_SPORT), 1111);
    assert!(p.outer.l4.is_none());
    assert_eq!(p.tunnel.unwrap().kind, TunnelKind::Gre);
}

#[test]
fn gre_with_checksum_and_sequence_carries_ip() {
    let gre = [0x90, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 9];
    let p = pkt(gre4(&gre, &inner_ip_udp4())).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc, misc::GRE_C_PRESENT), 1);
    assert_eq!(get(f, Misc, misc::GRE_S_PRESENT), 1);
    assert_eq!(get(f, Misc, misc::GRE_KEY_H), 0);
    assert_eq!(get(f, Misc, misc::GRE_PROTOCOL), 0x0800);
    assert_eq!(get(f, Inner, spec::UDP_SPORT), 3333);
    assert_eq!(p.tunnel.unwrap().len, Some(12));
}

fn mpls_entry(label: u32, exp: u32, bos: bool, ttl: u32) -> [u8; 4] {
    ((label << 12) | (exp << 9) | (u32::from(bos) << 8) | ttl).to_be_bytes()
}

#[test]
fn mpls_over_gre() {
    let gre = [0x00, 0x00, 0x88, 0x47];
    let mut payload = mpls_entry(0xabcde, 5, false, 64).to_vec();
    payload.extend_from_slice(&mpls_entry(17, 0, true, 1));
    payload.extend(inner_ip_udp4());
    let p = pkt(gre4(&gre, &payload)).parse();
    let f = &p.fields;
    assert_eq!(
        get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL),
        0xabcde
    );
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP), 5);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS), 0);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL), 64);
    assert_eq!(get(f, Inner, spec::IP_VERSION), 4);
    assert_eq!(get(f, Inner, spec::UDP_DPORT), 4444);
    assert_eq!(
        p.flex.mpls_over_gre,
        Some(be32(&mpls_entry(0xabcde, 5, false, 64)) as u32)
    );
}

#[test]
fn mpls_over_udp() {
    let mut payload = mpls_entry(99, 7, true, 3).to_vec();
    payload.extend(inner_ip_udp4());
    let p = pkt(udp4(1, 6635, &payload)).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL), 99);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP), 7);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS), 1);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL), 3);
    assert_eq!(get(f, Inner, spec::UDP_SPORT), 3333);
    assert_eq!(p.tunnel.unwrap().kind, TunnelKind::MplsOverUdp);
}

#[test]
fn mpls_after_ethernet() {
    let mut bytes = DMAC.to_vec();
    bytes.extend_from_slice(&SMAC);
    bytes.extend_from_slice(&[0x88, 0x47]);
    bytes.extend_from_slice(&mpls_entry(0x12345, 2, true, 8));
    bytes.extend(inner_ip_udp4());
    let p = pkt(bytes).parse();
    let f = &p.fields;
    assert_eq!(get(f, Outer, spec::ETHERTYPE), 0x8847);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_LABEL), 0x12345);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_EXP), 2);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_S_BOS), 1);
    assert_eq!(get(f, Misc2, misc2::OUTER_FIRST_MPLS_TTL), 8);
    assert_eq!(
        get(f, Outer, spec::IP_VERSION),
        0,
        "not parsed past the stack"
    );
    assert_eq!(p.outer.mpls, Some(14));
}

#[test]
fn gtpu_with_extension() {
    let inner = inner_ip_udp4();
    // Flags: version 1, PT, E. Type T-PDU. TEID 0x01020304.
    let mut gtp = vec![0x34, 0xff, 0, 0, 1, 2, 3, 4];
    // Sequence 0, N-PDU 0, next extension 0x85.
    gtp.extend_from_slice(&[0, 0, 0, 0x85]);
    // PDU session container: 1 word, QFI 9, next type 0.
    gtp.extend_from_slice(&[1, 0x10, 0x09, 0]);
    let len = (gtp.len() - 8 + inner.len()) as u16;
    gtp[2..4].copy_from_slice(&len.to_be_bytes());
    let p = pkt(udp_tunnel(2152, &gtp, &inner)).parse();
    let f = &p.fields;
    assert_eq!(get(f, Misc3, misc3::GTPU_MSG_FLAGS), 0x34);
    assert_eq!(get(f, Misc3, misc3::GTPU_MSG_TYPE), 0xff);
    assert_eq!(get(f, Misc3, misc3::GTPU_TEID), 0x0102_0304);
    assert_eq!(get(f, Misc3, misc3::GTPU_DW_0), be32(&gtp[0..4]));
    assert_eq!(get(f, Misc3, misc3::GTPU_DW_2), 0x85);
    assert_eq!(get(f, Misc3, misc3::GTPU_FIRST_EXT_DW_0), 0x0110_0900);
    assert_eq!(get(f, Inner, spec::UDP_DPORT), 4444);
    let t = p.tunnel.unwrap();
    assert_eq!((t.kind, t.len), (TunnelKind::Gtpu, Some(16)));
}

#[test]
fn gtpu_signalling_is_not_entered() {
    let gtp = [0x30, 0x01, 0, 4, 0, 0, 0, 1, 0x45, 0, 0, 0];
    let p = pkt(udp_tunnel(2152, &gtp, &[])).parse();
    assert_eq!(get(&p.fields, Misc3, misc3::GTPU_MSG_TYPE), 1);
    assert!(p.inner.is_none());
}

#[test]
fn roce_bth_and_esp() {
    let mut bth = [0u8; 12];
    bth[5..8].copy_from_slice(&[0x12, 0x34, 0x56]);
    let f = pkt(udp4(9, 4791, &bth)).fields();
    assert_eq!(get(&f, Misc, misc::BTH_DST_QP), 0x123456);

    let b = PacketBuilder::ethernet2(SMAC, DMAC).ipv4(SRC4, DST4, 64);
    let mut bytes = Vec::new();
    b.write(
        &mut bytes,
        IpNumber::ENCAPSULATING_SECURITY_PAYLOAD,
        &[0xca, 0xfe, 0xf0, 0x0d, 0, 0, 0, 1],
    )
    .unwrap();
    let p = pkt(bytes).parse();
    assert_eq!(get(&p.fields, Misc, misc::OUTER_ESP_SPI), 0xcafe_f00d);
    assert_eq!(p.outer.l4.unwrap().kind, L4Kind::Esp);
}

#[test]
fn ipv4_fragments() {
    let first = {
        let mut ip = Ipv4Header::new(8, 64, IpNumber::UDP, SRC4, DST4).unwrap();
        ip.more_fragments = true;
        let b = PacketBuilder::ethernet2(SMAC, DMAC)
            .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()));
        let mut out = Vec::new();
        b.udp(7, 8).write(&mut out, &[]).unwrap();
        out
    };
    let f = pkt(first).fields();
    assert_eq!(get(&f, Outer, spec::FRAG), 1);
    assert_eq!(
        get(&f, Outer, spec::UDP_DPORT),
        8,
        "a first fragment carries L4"
    );
    assert_eq!(
        get(&f, Outer, spec::L4_CHECKSUM_OK),
        0,
        "no whole datagram to check"
    );

    let mut later = udp4(7, 8, b"12345678");
    later[20] = 0x00;
    later[21] = 0x10; // fragment offset 16 (x8 bytes)
    let f = pkt(later).fields();
    assert_eq!(get(&f, Outer, spec::FRAG), 1);
    assert_eq!(
        get(&f, Outer, spec::UDP_DPORT),
        0,
        "a later fragment has no L4 header"
    );
    assert_eq!(get(&f, Outer, spec::IP_PROTOCOL), 17);
}

#[test]
fn ipv6_extension_headers_and_fragment() {
    // IPv6 / hop-by-hop (8 bytes) / fragment (offset 0, M) / TCP.
    let tcp_bytes = {
        let b = PacketBuilder::ipv4(SRC4, DST4, 1).tcp(10, 20, 0, 0);
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v[20..].to_vec()
    };
    let mut ip6 = vec![0x60, 0, 0, 0, 0, 0, 0, 7];
    ip6.extend_from_slice(&SRC6);
    ip6.extend_from_slice(&DST6);
    ip6[6] = 0; // hop-by-hop
    let mut exts = vec![44, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop: next fragment, len 0, PadN
    exts.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]); // fragment: next TCP, offset 0, M
    let payload_len = (exts.len() + tcp_bytes.len()) as u16;
    ip6[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let mut bytes = DMAC.to_vec();
    bytes.extend_from_slice(&SMAC);
    bytes.extend_from_slice(&[0x86, 0xdd]);
    bytes.extend(ip6);
    bytes.extend(exts);
    bytes.extend(tcp_bytes);
    let p = pkt(bytes).parse();
    let f = &p.fields;
    assert_eq!(get(f, Outer, spec::IP_PROTOCOL), 6);
    assert_eq!(get(f, Outer, spec::FRAG), 1);
    assert_eq!(get(f, Outer, spec::TCP_DPORT), 20);
    assert_eq!(get(f, Outer, spec::L3_OK), 1);
    assert_eq!(p.outer.l3.unwrap().header_len, 56);
}

#[test]
fn truncation_and_malformed_headers_stop_the_parse() {
    let full = tcp4(1, 2, &[]);
    // The IPv4 header cut in the middle: nothing of it is read.
    let p = pkt(full[..24].to_vec()).parse();
    assert_eq!(get(&p.fields, Outer, spec::ETHERTYPE), 0x0800);
    assert_eq!(get(&p.fields, Outer, spec::IP_VERSION), 0);
    assert_eq!(
        p.stop.map(|s| (s.layer, s.offset, s.reason)),
        Some((Layer::Ipv4, 14, StopReason::Truncated))
    );
    // The TCP header cut: IP is read (l3_ok 0: the total length is longer than the bytes).
    let p = pkt(full[..40].to_vec()).parse();
    assert_eq!(get(&p.fields, Outer, spec::IP_VERSION), 4);
    assert_eq!(get(&p.fields, Outer, spec::L3_OK), 0);
    assert_eq!(get(&p.fields, Outer, spec::TCP_SPORT), 0);
    assert_eq!(p.stop.unwrap().layer, Layer::Tcp);
    // IHL below 5.
    let mut bad = full.clone();
    bad[14] = 0x44;
    let p = pkt(bad).parse();
    assert_eq!(get(&p.fields, Outer, spec::IPV4_IHL), 4);
    assert_eq!(get(&p.fields, Outer, spec::L3_OK), 0);
    assert_eq!(p.stop.unwrap().reason, StopReason::Malformed);
    assert!(p.outer.l3.is_none());
    // A runt.
    let p = pkt(full[..10].to_vec()).parse();
    assert!(p.fields.is_zero());
    assert_eq!(p.stop.unwrap().layer, Layer::Ethernet);
}

#[test]
fn trailing_padding_is_not_payload() {
    // A 60-byte frame with a UDP datagram to the VXLAN port and no VXLAN header: the
    // padding after the IP total length is not read as one.
    let mut bytes = udp4(1, 4789, &[]);
    bytes.resize(60, 0xee);
    let p = pkt(bytes).parse();
    assert_eq!(get(&p.fields, Misc, misc::VXLAN_VNI), 0);
    assert_eq!(get(&p.fields, Outer, spec::L4_CHECKSUM_OK), 1);
    assert_eq!(p.stop.unwrap().layer, Layer::Vxlan);
}

#[test]
fn metadata_fields() {
    let meta = Metadata {
        side: Side::Tx,
        source_vport: 0xffff,
        source_gvmi: 3,
        source_qp: 0x00ab_cdef,
        source_vhca_port: 1,
        source_eswitch_owner_vhca_id: 2,
        reg_a: 0xa,
        reg_b: 0xb,
        reg_c: [1, 2, 3, 4, 5, 6, 7, 8],
        flow_tag: None,
    };
    let f = Packet::new(tcp4(1, 2, &[]), meta).fields();
    assert_eq!(get(&f, Misc, misc::SOURCE_PORT), 0xffff);
    assert_eq!(get(&f, Misc, misc::SOURCE_SQN), 0xab_cdef);
    assert_eq!(get(&f, Misc, misc::SOURCE_VHCA_PORT), 1);
    assert_eq!(get(&f, Misc, misc::SOURCE_ESWITCH_OWNER_VHCA_ID), 2);
    assert_eq!(get(&f, Misc2, misc2::METADATA_REG_A), 0xa);
    assert_eq!(get(&f, Misc2, misc2::METADATA_REG_C_0), 1);
    assert_eq!(get(&f, Misc2, misc2::METADATA_REG_C_7), 8);
}

#[test]
fn ip_version_follows_the_ethertype() {
    // Ethertype IPv4 with a version-6 nibble: read as a malformed IPv4 header.
    let mut bytes = tcp4(1, 2, &[]);
    bytes[14] = 0x65;
    let p = pkt(bytes).parse();
    assert_eq!(get(&p.fields, Outer, spec::IP_VERSION), 4);
    assert_eq!(get(&p.fields, Outer, spec::L3_OK), 0);
    assert!(p.outer.l3.is_none());
    assert_eq!(p.outer.l3.map(|l| l.version), None::<IpVersion>);
}

proptest! {
    // Case count: proptest's default, or PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes never panic, and neither do arbitrary changes to a tunnelled
    /// packet (so that the deep parsers see near-valid input).
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                    flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..6),
                    cut in 0usize..200) {
        let _ = pkt(bytes).parse();
        let geneve = [0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 1, 2, 1, 0, 0, 0, 5];
        for base in [
            udp_tunnel(6081, &geneve, &inner_tcp4()),
            udp_tunnel(2152, &[0x37, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 2, 0, 0, 0, 0, 0, 0, 0x85], &inner_ip_udp4()),
            gre4(&[0xb0, 0, 0x88, 0x47, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2], &inner_ip_udp4()),
        ] {
            let mut b = base;
            for &(at, v) in &flips {
                if at < b.len() {
                    b[at] ^= v;
                }
            }
            b.truncate(cut.max(14));
            let _ = pkt(b).parse();
        }
    }
}

/// Found by the `sim_device` fuzz target: an IPv6 packet whose hop-by-hop header claims
/// a next header with no bytes left. etherparse's extension iterator used to run past
/// the valid headers here (a debug assertion, and an out-of-bounds read in release).
#[test]
fn ipv6_extension_chain_cut_short() {
    let mut bytes = vec![0u8; 12];
    bytes.extend_from_slice(&[0x86, 0xdd]);
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[5] = 8; // payload length: just the hop-by-hop header
    ip[6] = 0; // next header: hop-by-hop
    bytes.extend_from_slice(&ip);
    bytes.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop → fragment (absent)
    let p = Packet::new(bytes, Metadata::new(Side::Rx));
    let parsed = p.parse();
    assert_eq!(parsed.fields.get(Outer, spec::IP_VERSION), 6);
    assert_eq!(parsed.fields.get(Outer, spec::L3_OK), 0);
    assert_eq!(parsed.fields.get(Outer, spec::FRAG), 0);
}
