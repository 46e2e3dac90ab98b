//! Keys checked against the layouts the public recordings document (README §4.6), bit
//! by bit, and the value-dependent parts.

use super::*;
use ste_builder::prm::{dr_match_set_misc as misc, dr_match_spec as spec};
use ste_builder::Section;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v1(lu_type: u16, p: &MatchParam) -> Key {
    lookup_key(SteFormat::V1, lu_type, p, &Caps::default()).unwrap()
}

fn tcp_packet() -> MatchParam {
    let mut p = MatchParam::default();
    p.set(Section::Outer, spec::IP_VERSION, 4);
    p.set(Section::Outer, spec::IP_PROTOCOL, 6);
    p.set(Section::Outer, spec::SRC_IP_31_0, 0x6468_5565);
    p.set(Section::Outer, spec::DST_IP_31_0, 0xcb00_7170);
    p.set(Section::Outer, spec::TCP_SPORT, 0x16bf);
    p.set(Section::Outer, spec::TCP_DPORT, 0x0050);
    p
}

#[test]
fn v1_five_tuple_matches_the_recorded_key() {
    // p6 rule 0's key, from the recordings' README.
    assert_eq!(
        v1(0x0007, &tcp_packet()).to_vec(),
        hex("64685565cb00717016bf005000000006")
    );
}

#[test]
fn ports_follow_the_protocol() {
    let mut p = tcp_packet();
    // UDP ports are not TCP's: a TCP packet's key ignores them.
    p.set(Section::Outer, spec::UDP_SPORT, 0x1111);
    assert_eq!(v1(0x0007, &p)[8..10], [0x16, 0xbf]);
    p.set(Section::Outer, spec::IP_PROTOCOL, 17);
    assert_eq!(v1(0x0007, &p)[8..12], [0x11, 0x11, 0, 0]);
    p.set(Section::Outer, spec::IP_PROTOCOL, 47);
    assert_eq!(v1(0x0007, &p)[8..12], [0; 4]);
}

#[test]
fn v1_eth_l2_bits() {
    let mut p = MatchParam::default();
    p.set(Section::Outer, spec::IP_VERSION, 4);
    assert_eq!(
        v1(0x0003, &p).to_vec(),
        hex("00100000000000000000000000000000")
    );
    p.set(Section::Outer, spec::IP_VERSION, 6);
    p.set(Section::Outer, spec::CVLAN_TAG, 1);
    p.set(Section::Outer, spec::FIRST_VID, 0xabc);
    p.set(Section::Outer, spec::DMAC_47_16, 0x0102_0304);
    p.set(Section::Outer, spec::DMAC_15_0, 0x0506);
    p.set(Section::Outer, spec::ETHERTYPE, 0x86dd);
    p.set(Section::Misc, misc::OUTER_SECOND_SVLAN_TAG, 1);
    p.set(Section::Misc, misc::OUTER_SECOND_VID, 0x123);
    assert_eq!(
        v1(0x0003, &p).to_vec(),
        hex("00220abc01020304050686dd00010123")
    );
    // The source-MAC lookup has the same layout with the source MAC.
    p.set(Section::Outer, spec::SMAC_47_16, 0xa0a1_a2a3);
    assert_eq!(v1(0x0005, &p)[4..10], [0xa0, 0xa1, 0xa2, 0xa3, 0, 0]);
    // S-VLAN qualifier is 1.
    p.set(Section::Outer, spec::CVLAN_TAG, 0);
    p.set(Section::Outer, spec::SVLAN_TAG, 1);
    assert_eq!(v1(0x0003, &p)[1] & 0x3, 1);
}

#[test]
fn v1_eth_l2_tnl_reads_the_inner_headers() {
    let mut p = MatchParam::default();
    p.set(Section::Misc, misc::VXLAN_VNI, 0x12_3456);
    p.set(Section::Outer, spec::IP_VERSION, 4);
    p.set(Section::Inner, spec::IP_VERSION, 4);
    let k = v1(0x0002, &p);
    assert_eq!(k[..4], [0x12, 0x34, 0x56, 0]);
    assert_eq!(k[13] & 0x30, 0x10);
    p.set(Section::Inner, spec::IP_VERSION, 6);
    assert_eq!(v1(0x0002, &p)[13] & 0x30, 0x20);
}

#[test]
fn v0_five_tuple_puts_the_destination_first() {
    let k = lookup_key(SteFormat::V0, 0x11, &tcp_packet(), &Caps::default()).unwrap();
    assert_eq!(
        k.to_vec(),
        hex("cb00717064685565 16bf005000000006"
            .replace(' ', "")
            .as_str())
    );
    // The RX ("D") and TX ("O") outer lookups read the same fields.
    assert_eq!(
        lookup_key(SteFormat::V0, 0x20, &tcp_packet(), &Caps::default()).unwrap(),
        k
    );
}

#[test]
fn unknown_and_definer_lookups_are_errors() {
    let p = MatchParam::default();
    for (format, lu_type) in [
        (SteFormat::V1, 0x0400),
        (SteFormat::V1, 0x0102),
        (SteFormat::V2, 0x0000),
        (SteFormat::V0, 0x00),
        (SteFormat::V0, 0xff),
    ] {
        assert_eq!(
            lookup_key(format, lu_type, &p, &Caps::default()),
            Err(KeyError::UnsupportedLookupType { format, lu_type })
        );
    }
}
