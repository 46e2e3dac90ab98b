//! Build tests: values like the recordings', conflicts, and the round-trip property.

use proptest::prelude::*;
use ste_builder::bits::BitField;
use ste_builder::match_param::Section::{self, Inner, Misc, Misc2, Misc3, Misc4, Outer};
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, dr_match_spec as spec,
};

use super::*;
use crate::packet::parse::TunnelKind;
use crate::packet::side::{SideFields, INNER, OUTER};
use crate::packet::{build_from_match, build_from_match_lossy, BuildError, Parsed};

/// Fields of a value: section, field, value.
type Fields = Vec<(Section, BitField, u64)>;

fn value(fields: &[(Section, BitField, u64)]) -> MatchParam {
    let mut v = MatchParam::default();
    for &(s, f, x) in fields {
        v.set(s, f, x);
    }
    v
}

fn build(v: &MatchParam) -> Packet {
    build_from_match(v, Metadata::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn five_tuple_tcp() {
    let v = value(&[
        (Outer, spec::IP_VERSION, 4),
        (Outer, spec::IP_PROTOCOL, 6),
        (Outer, spec::SRC_IP_31_0, 0x0a01_0203),
        (Outer, spec::DST_IP_31_0, 0x0a04_0506),
        (Outer, spec::TCP_SPORT, 1234),
        (Outer, spec::TCP_DPORT, 80),
    ]);
    let p = build(&v);
    assert_eq!(p.len(), 60, "padded to the minimum frame");
    assert_eq!(&p.bytes[12..14], &[0x08, 0x00]);
    assert_eq!(
        &p.bytes[..12],
        &[0; 12],
        "MACs the value leaves zero stay zero"
    );
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::L4_CHECKSUM_OK), 1);
    assert_eq!(get(&f, Outer, spec::IPV4_CHECKSUM_OK), 1);
    assert_eq!(get(&f, Outer, spec::IP_TTL_HOPLIMIT), 0);
}

#[test]
fn ip_version_6_with_ipv4_sized_addresses() {
    // The recordings' IPv6 probes: a 5-tuple value with ip_version 6.
    let v = value(&[
        (Outer, spec::IP_VERSION, 6),
        (Outer, spec::IP_PROTOCOL, 17),
        (Outer, spec::SRC_IP_31_0, 0x0102_0304),
        (Outer, spec::UDP_DPORT, 53),
    ]);
    let p = build(&v);
    let parsed = p.parse();
    assert_eq!(parsed.outer.l3_type(), 2);
    assert_eq!(&p.bytes[12..14], &[0x86, 0xdd]);
    assert_eq!(get(&parsed.fields, Outer, spec::SRC_IP_127_96), 0);
}

#[test]
fn vlan_rules_and_the_untagged_probe() {
    let tagged = value(&[
        (Outer, spec::DMAC_47_16, 0x0011_2233),
        (Outer, spec::DMAC_15_0, 0x4455),
        (Outer, spec::CVLAN_TAG, 1),
        (Outer, spec::FIRST_VID, 0x123),
        (Outer, spec::FIRST_PRIO, 3),
    ]);
    let p = build(&tagged);
    assert_eq!(&p.bytes[12..16], &[0x81, 0x00, 0x61, 0x23]);
    assert_eq!(&p.bytes[16..18], &[0, 0], "no ethertype asked for");

    let untagged = value(&[
        (Outer, spec::DMAC_47_16, 0x0011_2233),
        (Outer, spec::FIRST_VID, 0x123),
    ]);
    match build_from_match(&untagged, Metadata::default()) {
        Err(BuildError::NotReproduced(d)) => {
            assert_eq!(d.field.to_string(), "outer.first_vid");
            assert_eq!((d.wanted, d.got), (0x123, 0));
        }
        other => panic!("{other:?}"),
    }
    let (p, dropped) = build_from_match_lossy(&untagged, Metadata::default()).unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(p.parse().outer.l2.unwrap().vlans.is_empty());
    assert_eq!(get(&p.fields(), Outer, spec::DMAC_47_16), 0x0011_2233);
}

#[test]
fn qinq() {
    let v = value(&[
        (Outer, spec::SVLAN_TAG, 1),
        (Outer, spec::FIRST_VID, 10),
        (Misc, misc::OUTER_SECOND_CVLAN_TAG, 1),
        (Misc, misc::OUTER_SECOND_VID, 20),
        (Misc, misc::OUTER_SECOND_CFI, 1),
        (Outer, spec::IP_VERSION, 4),
    ]);
    let p = build(&v);
    assert_eq!(
        &p.bytes[12..22],
        &[0x88, 0xa8, 0, 10, 0x81, 0, 0x10, 20, 0x08, 0]
    );
}

#[test]
fn vxlan_with_inner_ipv4_and_ipv6() {
    let mut v = value(&[
        (Outer, spec::IP_VERSION, 4),
        (Outer, spec::IP_PROTOCOL, 17),
        (Outer, spec::UDP_DPORT, 4789),
        (Misc, misc::VXLAN_VNI, 0xabcdef),
        (Inner, spec::IP_VERSION, 4),
        (Inner, spec::DST_IP_31_0, 0x0a0b_0c0d),
    ]);
    let p = build(&v).parse();
    let t = p.tunnel.unwrap();
    assert_eq!(t.kind, TunnelKind::Vxlan);
    let inner = p.inner.as_ref().unwrap();
    assert_eq!(inner.l2.as_ref().unwrap().ethertype, 0x0800);
    assert_eq!(inner.l3_type(), 1);
    // The recordings' probe with an inner IPv6 header.
    v.set(Inner, spec::IP_VERSION, 6);
    let p = build(&v).parse();
    assert_eq!(p.inner.as_ref().unwrap().l3_type(), 2);
    assert_eq!(get(&p.fields, Inner, spec::DST_IP_31_0), 0x0a0b_0c0d);
}

#[test]
fn inner_fields_alone_make_a_vxlan_packet() {
    let v = value(&[(Inner, spec::TCP_DPORT, 443)]);
    let p = build(&v).parse();
    assert_eq!(p.tunnel.unwrap().kind, TunnelKind::Vxlan);
    assert_eq!(get(&p.fields, Outer, spec::UDP_DPORT), 4789);
    assert_eq!(get(&p.fields, Inner, spec::IP_PROTOCOL), 6);
}

#[test]
fn tunnels_by_their_fields() {
    let cases: Vec<(Fields, TunnelKind)> = vec![
        (
            vec![
                (Misc3, misc3::OUTER_VXLAN_GPE_VNI, 5),
                (Inner, spec::IP_VERSION, 6),
            ],
            TunnelKind::VxlanGpe,
        ),
        (
            vec![
                (Misc, misc::GENEVE_VNI, 5),
                (Misc3, misc3::GENEVE_TLV_OPTION_0_DATA, 0xfeed),
                (Misc, misc::GENEVE_OAM, 1),
                (Inner, spec::SMAC_15_0, 1),
            ],
            TunnelKind::Geneve,
        ),
        (
            vec![
                (Misc, misc::GRE_KEY_H, 0x123456),
                (Misc, misc::GRE_C_PRESENT, 1),
                (Misc, misc::GRE_S_PRESENT, 1),
                (Inner, spec::UDP_SPORT, 9),
            ],
            TunnelKind::Gre,
        ),
        (
            vec![
                (Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL, 77),
                (Inner, spec::IP_TTL_HOPLIMIT, 3),
            ],
            TunnelKind::Gre,
        ),
        (
            vec![
                (Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL, 9),
                (Inner, spec::IP_VERSION, 4),
            ],
            TunnelKind::MplsOverUdp,
        ),
        (
            vec![
                (Misc3, misc3::GTPU_TEID, 0x1234),
                (Misc3, misc3::GTPU_FIRST_EXT_DW_0, 0x0100_0900),
                (Inner, spec::IP_VERSION, 6),
            ],
            TunnelKind::Gtpu,
        ),
    ];
    for (fields, kind) in cases {
        let v = value(&fields);
        let p = build(&v).parse();
        assert_eq!(p.tunnel.map(|t| t.kind), Some(kind), "{v:?}");
        assert!(p.inner.is_some(), "{v:?}");
    }
}

#[test]
fn mpls_bottom_of_stack_zero_is_carried() {
    let v = value(&[
        (Misc2, misc2::OUTER_FIRST_MPLS_LABEL, 0xfffff),
        (Misc2, misc2::OUTER_FIRST_MPLS_TTL, 1),
    ]);
    let p = build(&v);
    assert_eq!(&p.bytes[12..14], &[0x88, 0x47]);
    assert_eq!(&p.bytes[14..22], &[0xff, 0xff, 0xf0, 0x01, 0, 0, 1, 0]);
}

#[test]
fn gtpu_dword_0_length_is_honoured() {
    let v = value(&[
        (Misc3, misc3::GTPU_DW_0, 0x30ff_0040),
        (Misc3, misc3::GTPU_TEID, 1),
    ]);
    let p = build(&v);
    let t = p.parse().tunnel.unwrap();
    assert_eq!(t.kind, TunnelKind::Gtpu);
    assert_eq!(&p.bytes[t.offset..t.offset + 4], &[0x30, 0xff, 0, 0x40]);
}

#[test]
fn metadata_comes_from_the_value_over_meta() {
    let v = value(&[
        (Misc, misc::SOURCE_PORT, 7),
        (Misc, misc::SOURCE_SQN, 0x55),
        (Misc2, misc2::METADATA_REG_C_3, 0xdead),
    ]);
    let meta = Metadata {
        reg_c: [9; 8],
        reg_b: 4,
        ..Metadata::new(crate::packet::Side::Tx)
    };
    let p = build_from_match(&v, meta).unwrap();
    assert_eq!(p.meta.source_vport, 7);
    assert_eq!(p.meta.source_qp, 0x55);
    assert_eq!(p.meta.reg_c, [9, 9, 9, 0xdead, 9, 9, 9, 9]);
    assert_eq!((p.meta.reg_b, p.meta.side), (4, crate::packet::Side::Tx));
}

#[test]
fn conflicts_are_errors() {
    let bad: Vec<Fields> = vec![
        vec![(Outer, spec::TCP_SPORT, 1), (Outer, spec::UDP_DPORT, 2)],
        vec![(Misc, misc::VXLAN_VNI, 1), (Misc, misc::GENEVE_VNI, 1)],
        vec![
            (Outer, spec::ETHERTYPE, 0x0806),
            (Outer, spec::IP_TTL_HOPLIMIT, 1),
        ],
        vec![(Outer, spec::IP_VERSION, 5)],
        vec![
            (Outer, spec::IP_VERSION, 4),
            (Outer, spec::ETHERTYPE, 0x86dd),
        ],
        vec![(Outer, spec::IP_PROTOCOL, 6), (Outer, spec::UDP_SPORT, 1)],
        vec![(Outer, spec::UDP_DPORT, 53), (Inner, spec::IP_VERSION, 4)],
        vec![(Outer, spec::CVLAN_TAG, 1), (Outer, spec::SVLAN_TAG, 1)],
        vec![(Misc, misc::BTH_DST_QP, 1), (Inner, spec::IP_VERSION, 4)],
        vec![(Outer, spec::IPV4_IHL, 3)],
        vec![
            (Misc2, misc2::OUTER_FIRST_MPLS_LABEL, 1),
            (Outer, spec::IP_VERSION, 4),
        ],
    ];
    for fields in bad {
        let v = value(&fields);
        let r = build_from_match_lossy(&v, Metadata::default());
        assert!(
            matches!(r, Err(BuildError::Conflict { .. })),
            "{v:?}: {r:?}"
        );
    }
    let v = value(&[(Misc4, misc4::PROG_SAMPLE_FIELD_ID_0, 1)]);
    assert!(matches!(
        build_from_match(&v, Metadata::default()),
        Err(BuildError::Unsupported { .. })
    ));
}

// ---- the round-trip property -----------------------------------------------------------

/// A small deterministic generator, so one seed describes one value.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// A random value of `width` bits, or zero half of the time.
    fn maybe(&mut self, width: usize) -> u64 {
        if self.coin() {
            self.next() & BitField::new(0, width).max()
        } else {
            0
        }
    }
}

const TUNNEL_PORTS: [u64; 6] = [4789, 4790, 6081, 6635, 2152, 4791];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    None,
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trans {
    None,
    Tcp,
    Udp,
    Icmp,
    Esp,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    v: MatchParam,
}

impl Gen<'_> {
    fn put(&mut self, s: Section, f: BitField) {
        let x = self.rng.maybe(f.width);
        self.v.set(s, f, x);
    }

    fn put_nonzero(&mut self, s: Section, f: BitField) {
        let x = (self.rng.next() & f.max()).max(1);
        self.v.set(s, f, x);
    }

    fn l2(&mut self, side: &SideFields) {
        let s = side.spec;
        for f in [
            spec::SMAC_47_16,
            spec::SMAC_15_0,
            spec::DMAC_47_16,
            spec::DMAC_15_0,
        ] {
            self.put(s, f);
        }
        let tags = self.rng.below(3);
        if tags >= 1 {
            let flag = if self.rng.coin() {
                spec::CVLAN_TAG
            } else {
                spec::SVLAN_TAG
            };
            self.v.set(s, flag, 1);
            for f in [spec::FIRST_PRIO, spec::FIRST_CFI, spec::FIRST_VID] {
                self.put(s, f);
            }
        }
        if tags == 2 {
            let flag = if self.rng.coin() {
                side.second_cvlan_tag
            } else {
                side.second_svlan_tag
            };
            self.v.set(Misc, flag, 1);
            for f in [side.second_prio, side.second_cfi, side.second_vid] {
                self.put(Misc, f);
            }
        }
    }

    /// IP fields of a side (`net` given), with the version field set half of the time.
    fn l3(&mut self, side: &SideFields, net: Net) {
        let s = side.spec;
        match net {
            Net::None => {}
            Net::V4 => {
                if self.rng.coin() {
                    self.v.set(s, spec::IP_VERSION, 4);
                }
                for f in [
                    spec::IP_DSCP,
                    spec::IP_ECN,
                    spec::IP_TTL_HOPLIMIT,
                    spec::FRAG,
                ] {
                    self.put(s, f);
                }
                self.put(s, spec::SRC_IP_31_0);
                self.put(s, spec::DST_IP_31_0);
                if self.rng.below(4) == 0 {
                    self.v.set(s, spec::IPV4_IHL, 5 + self.rng.below(11));
                }
            }
            Net::V6 => {
                self.v.set(s, spec::IP_VERSION, 6);
                for f in [
                    spec::IP_DSCP,
                    spec::IP_ECN,
                    spec::IP_TTL_HOPLIMIT,
                    spec::FRAG,
                ] {
                    self.put(s, f);
                }
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
                    self.put(s, f);
                }
                self.put(Misc, side.ipv6_flow_label);
            }
        }
    }

    fn l4(&mut self, side: &SideFields, net: Net, trans: Trans, outer_no_tunnel: bool) {
        let s = side.spec;
        match trans {
            Trans::None => {}
            Trans::Tcp => {
                self.v.set(s, spec::IP_PROTOCOL, 6);
                for f in [spec::TCP_SPORT, spec::TCP_DPORT, spec::TCP_FLAGS] {
                    self.put(s, f);
                }
                self.put(Misc3, side.tcp_seq);
                self.put(Misc3, side.tcp_ack);
            }
            Trans::Udp => {
                if self.rng.coin() {
                    self.v.set(s, spec::IP_PROTOCOL, 17);
                }
                self.put_nonzero(s, spec::UDP_SPORT);
                let mut dport = self.rng.maybe(16);
                if outer_no_tunnel && TUNNEL_PORTS.contains(&dport) {
                    dport += 1;
                }
                self.v.set(s, spec::UDP_DPORT, dport);
            }
            Trans::Icmp => {
                let (ty, code, data) = if net == Net::V6 {
                    (
                        misc3::ICMPV6_TYPE,
                        misc3::ICMPV6_CODE,
                        misc3::ICMPV6_HEADER_DATA,
                    )
                } else {
                    (misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA)
                };
                self.put_nonzero(Misc3, ty);
                self.put(Misc3, code);
                self.put(Misc3, data);
            }
            Trans::Esp => self.put_nonzero(Misc, side.esp_spi),
        }
    }

    fn net(&mut self) -> Net {
        match self.rng.below(3) {
            0 => Net::None,
            1 => Net::V4,
            _ => Net::V6,
        }
    }

    fn trans(&mut self, net: Net) -> Trans {
        if net == Net::None {
            return Trans::None;
        }
        match self.rng.below(5) {
            0 => Trans::None,
            1 => Trans::Tcp,
            2 => Trans::Udp,
            3 => Trans::Icmp,
            _ => Trans::Esp,
        }
    }

    /// An inner side: with L2 when `l2`, IP only otherwise (then an IP version is
    /// always chosen, as a tunnel that carries IP needs one).
    fn inner(&mut self, l2: bool) -> Net {
        if l2 {
            self.l2(&INNER);
        }
        let net = if l2 {
            self.net()
        } else if self.rng.coin() {
            Net::V4
        } else {
            Net::V6
        };
        if !l2 {
            // Say the version so that the tunnel's protocol field agrees.
            let ver = if net == Net::V4 { 4 } else { 6 };
            self.v.set(Inner, spec::IP_VERSION, ver);
        }
        self.l3(&INNER, net);
        let trans = self.trans(net);
        self.l4(&INNER, net, trans, false);
        net
    }

    fn ethertype_of(net: Net) -> u64 {
        if net == Net::V4 {
            0x0800
        } else {
            0x86dd
        }
    }

    /// A tunnel on an outer IP header; returns nothing (the fields are in the value).
    fn tunnel(&mut self) {
        match self.rng.below(7) {
            0 => {
                self.put(Misc, misc::VXLAN_VNI);
                self.v.set(Outer, spec::UDP_DPORT, 4789);
                self.inner(true);
            }
            1 => {
                self.put_nonzero(Misc3, misc3::OUTER_VXLAN_GPE_VNI);
                self.put(Misc3, misc3::OUTER_VXLAN_GPE_FLAGS);
                let l2 = self.rng.coin();
                let net = self.inner(l2);
                if self.rng.coin() {
                    let np = match (l2, net) {
                        (true, _) => 3,
                        (false, Net::V4) => 1,
                        _ => 2,
                    };
                    self.v.set(Misc3, misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL, np);
                }
            }
            2 => {
                self.put_nonzero(Misc, misc::GENEVE_VNI);
                self.put(Misc, misc::GENEVE_OAM);
                if self.rng.coin() {
                    self.put_nonzero(Misc3, misc3::GENEVE_TLV_OPTION_0_DATA);
                    self.v.set(Misc, misc::GENEVE_TLV_OPTION_0_EXIST, 1);
                    self.v
                        .set(Misc, misc::GENEVE_OPT_LEN, 2 + self.rng.below(40));
                }
                let l2 = self.rng.coin();
                let net = self.inner(l2);
                if self.rng.coin() {
                    let p = if l2 { 0x6558 } else { Self::ethertype_of(net) };
                    self.v.set(Misc, misc::GENEVE_PROTOCOL_TYPE, p);
                }
            }
            3 => {
                self.put(Misc, misc::GRE_C_PRESENT);
                self.put(Misc, misc::GRE_S_PRESENT);
                self.put(Misc, misc::GRE_K_PRESENT);
                self.put(Misc, misc::GRE_KEY_H);
                self.put(Misc, misc::GRE_KEY_L);
                self.v.set(Outer, spec::IP_PROTOCOL, 47);
                if self.rng.coin() {
                    self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL);
                    self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP);
                    self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS);
                    self.put_nonzero(Misc2, misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL);
                    self.inner(false);
                } else {
                    let l2 = self.rng.coin();
                    let net = self.inner(l2);
                    if self.rng.coin() {
                        let p = if l2 { 0x6558 } else { Self::ethertype_of(net) };
                        self.v.set(Misc, misc::GRE_PROTOCOL, p);
                    }
                }
            }
            4 => {
                self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL);
                self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP);
                self.put(Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS);
                self.put_nonzero(Misc2, misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL);
                self.inner(false);
            }
            5 => {
                self.put_nonzero(Misc3, misc3::GTPU_TEID);
                if self.rng.coin() {
                    self.v.set(Misc3, misc3::GTPU_MSG_TYPE, 0xff);
                }
                if self.rng.coin() {
                    let ext = (1 + self.rng.below(3)) << 24 | (self.rng.next() & 0xff_ff00);
                    self.v.set(Misc3, misc3::GTPU_FIRST_EXT_DW_0, ext);
                } else {
                    self.put(Misc3, misc3::GTPU_DW_2);
                }
                self.inner(false);
            }
            _ => {
                self.put_nonzero(Misc, misc::BTH_DST_QP);
            }
        }
    }
}

/// A random value in the builder's field space.
fn random_value(seed: u64) -> MatchParam {
    let mut rng = Rng(seed | 1);
    let mut g = Gen {
        rng: &mut rng,
        v: MatchParam::default(),
    };
    g.l2(&OUTER);
    let tunnelled = g.rng.below(3) == 0;
    let net = if tunnelled {
        if g.rng.coin() {
            Net::V4
        } else {
            Net::V6
        }
    } else {
        g.net()
    };
    g.l3(&OUTER, net);
    if tunnelled {
        if net == Net::V6 {
            g.v.set(Outer, spec::IP_VERSION, 6);
        }
        g.tunnel();
        if g.v.get(Outer, spec::IP_PROTOCOL) != 47 {
            g.put_nonzero(Outer, spec::UDP_SPORT);
        }
    } else {
        let trans = g.trans(net);
        g.l4(&OUTER, net, trans, true);
        if net == Net::None && g.rng.coin() {
            g.v.set(Outer, spec::ETHERTYPE, 0x0806);
        }
    }
    if g.rng.coin() {
        g.put(Misc, misc::SOURCE_PORT);
        g.put(Misc, misc::SOURCE_SQN);
        g.put(Misc2, misc2::METADATA_REG_C_0);
        g.put(Misc2, misc2::METADATA_REG_A);
    }
    g.v
}

/// The derived fields of one parsed side agree with its headers.
fn check_derived(p: &Parsed, inner: bool) {
    let h = if inner {
        p.inner.as_ref()
    } else {
        Some(&p.outer)
    };
    let Some(h) = h else {
        return;
    };
    let s = if inner { Inner } else { Outer };
    let f = &p.fields;
    if let Some(l3) = h.l3 {
        assert_eq!(get(f, s, spec::L3_OK), 1);
        let v4 = h.l3_type() == 1;
        assert_eq!(get(f, s, spec::IP_VERSION), if v4 { 4 } else { 6 });
        if let Some(l2) = &h.l2 {
            assert_eq!(l2.ethertype, if v4 { 0x0800 } else { 0x86dd });
        }
        assert_eq!(get(f, s, spec::IPV4_CHECKSUM_OK), u64::from(v4));
        if h.l4_type() != 0 {
            assert_eq!(get(f, s, spec::L4_OK), 1);
            assert_eq!(get(f, s, spec::L4_CHECKSUM_OK), u64::from(!l3.fragment));
            let proto = if h.l4_type() == 1 { 6 } else { 17 };
            assert_eq!(get(f, s, spec::IP_PROTOCOL), proto);
        }
    }
}

proptest! {
    // Case count: proptest's default, or PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn build_then_parse_reproduces_the_value(seed in any::<u64>()) {
        let v = random_value(seed);
        let p = match build_from_match(&v, Metadata::default()) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{v:?}"))),
        };
        let parsed = p.parse();
        for (field, want) in v.nonzero_fields() {
            prop_assert_eq!(parsed.fields.get(field.section, field.field), want, "{}", field);
        }
        // Only an empty tunnel payload ends the parse early.
        prop_assert!(parsed.stop.is_none() || v.inner.iter().all(|&b| b == 0),
            "stopped at {:?}", parsed.stop);
        check_derived(&parsed, false);
        check_derived(&parsed, true);
        // Everything the parse found describes the same packet again.
        let again = match build_from_match(&parsed.fields, Metadata::default()) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("rebuild: {e}\n{v:?}"))),
        };
        prop_assert_eq!(&again.bytes, &p.bytes);
    }
}
