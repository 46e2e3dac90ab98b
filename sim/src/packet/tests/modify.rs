//! Modify-header tests: field semantics, checksums, errors, and the hardware-action path
//! checked against the PRM-action path through ste-builder's field tables.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use ste_builder::match_param::Section::{Inner, Misc3, Outer};
use ste_builder::modify_header::{
    plan, sw_field, HwModifyOp, ModifyAction, ModifyCaps, FLEX_PARSER_GTPU_TEID_ENABLED,
};
use ste_builder::prm::{dr_match_set_misc3 as misc3, dr_match_spec as spec};
use ste_builder::SteFormat;

use super::*;
use crate::packet::{EditError, HdrField};

/// Asserts every checksum the packet has is correct.
fn assert_checksums_ok(p: &Packet) {
    let parsed = p.parse();
    let f = &parsed.fields;
    if parsed.outer.l3_type() == 1 {
        assert_eq!(
            get(f, Outer, spec::IPV4_CHECKSUM_OK),
            1,
            "IPv4 header checksum"
        );
    }
    if parsed.outer.l4_type() != 0 {
        assert_eq!(get(f, Outer, spec::L4_CHECKSUM_OK), 1, "L4 checksum");
    }
}

fn udp6() -> Packet {
    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .single_vlan(etherparse::VlanId::try_new(0x123).unwrap())
        .ipv6(SRC6, DST6, 20)
        .udp(1000, 2000);
    let mut out = Vec::new();
    b.write(&mut out, b"payload!").unwrap();
    pkt(out)
}

#[test]
fn ttl_and_addresses_keep_checksums_valid() {
    let mut p = pkt(tcp4(1000, 80, b"data"));
    p.set_field(HdrField::IpTtl, 0, 8, 7).unwrap();
    assert_eq!(get(&p.fields(), Outer, spec::IP_TTL_HOPLIMIT), 7);
    assert_checksums_ok(&p);
    p.set_field(HdrField::SrcIpv4, 0, 0, 0xc633_6401).unwrap();
    p.set_field(HdrField::DstIpv4, 8, 8, 0xff).unwrap();
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::SRC_IP_31_0), 0xc633_6401);
    assert_eq!(get(&f, Outer, spec::DST_IP_31_0), 0xc0a8_ff09);
    assert_checksums_ok(&p);
}

#[test]
fn tcp_fields() {
    let mut p = pkt(tcp4(1000, 80, b"odd"));
    p.set_field(HdrField::TcpDport, 0, 16, 8080).unwrap();
    p.set_field(HdrField::TcpFlags, 0, 9, 0x1ff).unwrap();
    p.add_field(HdrField::TcpSeq, 1).unwrap();
    p.set_field(HdrField::TcpAck, 0, 0, 0xffff_ffff).unwrap();
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::TCP_DPORT), 8080);
    assert_eq!(get(&f, Outer, spec::TCP_FLAGS), 0x1ff);
    assert_eq!(get(&f, Misc3, misc3::OUTER_TCP_SEQ_NUM), 0x1234_5679);
    assert_eq!(get(&f, Misc3, misc3::OUTER_TCP_ACK_NUM), 0xffff_ffff);
    assert_checksums_ok(&p);
}

#[test]
fn ipv6_fields() {
    let mut p = udp6();
    p.set_field(HdrField::SrcIpv6_63_32, 0, 0, 0xdead_beef)
        .unwrap();
    p.set_field(HdrField::DstIpv6_127_96, 16, 16, 0xabcd)
        .unwrap();
    p.set_field(HdrField::IpDscp, 0, 6, 0x2e).unwrap();
    p.set_field(HdrField::IpEcn, 0, 2, 3).unwrap();
    p.add_field(HdrField::Ipv6HopLimit, 0xff).unwrap();
    p.set_field(HdrField::UdpSport, 0, 16, 7).unwrap();
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::SRC_IP_63_32), 0xdead_beef);
    assert_eq!(get(&f, Outer, spec::DST_IP_127_96), 0xabcd_0000);
    assert_eq!(get(&f, Outer, spec::IP_DSCP), 0x2e);
    assert_eq!(get(&f, Outer, spec::IP_ECN), 3);
    assert_eq!(get(&f, Outer, spec::IP_TTL_HOPLIMIT), 19);
    assert_eq!(get(&f, Outer, spec::UDP_SPORT), 7);
    assert_checksums_ok(&p);
}

#[test]
fn l2_fields_and_partial_writes() {
    let mut p = udp6();
    p.set_field(HdrField::Dmac15_0, 4, 8, 0xff).unwrap();
    assert_eq!(&p.bytes[4..6], &[0xdf, 0xfe]);
    p.set_field(HdrField::Smac47_16, 0, 0, 0x0a0b_0c0d).unwrap();
    assert_eq!(&p.bytes[6..10], &[0x0a, 0x0b, 0x0c, 0x0d]);
    // A VLAN id rewrite keeps the priority bits.
    p.bytes[14] |= 0xe0;
    p.set_field(HdrField::FirstVid, 0, 12, 0x456).unwrap();
    assert_eq!(&p.bytes[14..16], &[0xe4, 0x56]);
    // The ethertype is the one after the tag.
    assert_eq!(p.read_field(HdrField::Ethertype), Ok(0x86dd));
    p.set_field(HdrField::Ethertype, 0, 16, 0x0800).unwrap();
    assert_eq!(&p.bytes[16..18], &[0x08, 0x00]);
}

#[test]
fn add_wraps_in_the_field() {
    let mut p = pkt(tcp4(0xfffe, 80, &[]));
    p.add_field(HdrField::TcpSport, 3).unwrap();
    assert_eq!(p.read_field(HdrField::TcpSport), Ok(1));
    p.add_field(HdrField::IpDscp, 0x41).unwrap();
    assert_eq!(p.read_field(HdrField::IpDscp), Ok(1));
    assert_eq!(
        p.read_field(HdrField::IpEcn),
        Ok(0),
        "the neighbour is untouched"
    );
    assert_checksums_ok(&p);
}

#[test]
fn copy_between_packet_and_registers() {
    let mut p = pkt(tcp4(1000, 80, &[]));
    p.copy_field(HdrField::SrcIpv4, 0, HdrField::RegC0, 0, 0)
        .unwrap();
    assert_eq!(p.meta.reg_c[0], 0x0a00_0001);
    p.meta.reg_b = 0x1234_5678;
    p.copy_field(HdrField::RegB, 8, HdrField::TcpDport, 4, 12)
        .unwrap();
    // Bits 8..19 of register B (0x456) land in bits 4..15; port 80's low nibble stays.
    assert_eq!(p.read_field(HdrField::TcpDport), Ok(0x4560));
    p.copy_field(HdrField::Dmac47_16, 0, HdrField::RegA, 0, 32)
        .unwrap();
    assert_eq!(p.meta.reg_a, 0x02aa_bbcc);
    assert_checksums_ok(&p);
}

#[test]
fn zero_udp_checksum_stays_zero() {
    let mut bytes = udp4(1, 2, b"x");
    bytes[40] = 0;
    bytes[41] = 0;
    let mut p = pkt(bytes);
    p.set_field(HdrField::UdpDport, 0, 16, 99).unwrap();
    p.set_field(HdrField::DstIpv4, 0, 32, 1).unwrap();
    assert_eq!(&p.bytes[40..42], &[0, 0]);
    assert_checksums_ok(&p);
}

#[test]
fn gtpu_teid_updates_the_udp_checksum() {
    let gtp = [0x30, 0xff, 0, 0, 0, 0, 0, 1];
    let mut p = pkt(udp4(1, 2152, &gtp));
    assert_checksums_ok(&p);
    p.set_field(HdrField::GtpuTeid, 0, 0, 0xabcd_0123).unwrap();
    assert_eq!(get(&p.fields(), Misc3, misc3::GTPU_TEID), 0xabcd_0123);
    assert_checksums_ok(&p);
}

#[test]
fn inner_headers_are_not_modified() {
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    payload.extend(inner_tcp4());
    let mut p = pkt(udp4(5, 4789, &payload));
    let before = get(&p.fields(), Inner, spec::IP_TTL_HOPLIMIT);
    p.set_field(HdrField::IpTtl, 0, 8, 1).unwrap();
    assert_eq!(get(&p.fields(), Inner, spec::IP_TTL_HOPLIMIT), before);
    assert_eq!(get(&p.fields(), Outer, spec::IP_TTL_HOPLIMIT), 1);
    assert_eq!(
        p.set_field(HdrField::TcpSport, 0, 16, 1),
        Err(EditError::FieldAbsent {
            field: HdrField::TcpSport
        })
    );
}

#[test]
fn errors() {
    let mut p = pkt(tcp4(1, 2, &[]));
    let absent = |field| Err(EditError::FieldAbsent { field });
    assert_eq!(
        p.set_field(HdrField::UdpSport, 0, 16, 1),
        absent(HdrField::UdpSport)
    );
    assert_eq!(
        p.set_field(HdrField::Ipv6HopLimit, 0, 8, 1),
        absent(HdrField::Ipv6HopLimit)
    );
    assert_eq!(
        p.set_field(HdrField::FirstVid, 0, 12, 1),
        absent(HdrField::FirstVid)
    );
    assert_eq!(
        p.add_field(HdrField::GtpuTeid, 1),
        absent(HdrField::GtpuTeid)
    );
    assert_eq!(
        p.set_field(HdrField::IpDscp, 2, 5, 1),
        Err(EditError::OutOfField {
            field: HdrField::IpDscp,
            offset: 2,
            length: 5,
            width: 6
        })
    );
    let unknown = ModifyAction::Set {
        field: 0x99,
        offset: 0,
        length: 0,
        data: 0,
    };
    assert_eq!(p.apply_modify(&unknown), Err(EditError::UnknownField(0x99)));
    let mut runt = pkt(vec![0; 10]);
    assert_eq!(
        runt.read_field(HdrField::Smac15_0),
        Err(EditError::FieldAbsent {
            field: HdrField::Smac15_0
        })
    );
    assert_eq!(runt.set_field(HdrField::RegC5, 0, 0, 5), Ok(()));
    assert_eq!(runt.meta.reg_c[5], 5);
}

#[test]
fn field_widths_agree_with_ste_builder() {
    let caps = ModifyCaps::from_device(true, FLEX_PARSER_GTPU_TEID_ENABLED, 3);
    for f in HdrField::all() {
        assert_eq!(HdrField::from_sw_id(f.sw_id()), Some(f));
        for format in [SteFormat::V1, SteFormat::V2] {
            let mf = ste_builder::modify_header::conv_sw_field(format, &caps, f.sw_id())
                .unwrap_or_else(|| panic!("{f:?} on {format:?}"));
            assert_eq!(mf.width(), f.width(), "{f:?} on {format:?}");
        }
        if let Some(mf) = ste_builder::modify_header::conv_sw_field(SteFormat::V0, &caps, f.sw_id())
        {
            assert_eq!(mf.width(), f.width(), "{f:?} on v0");
        }
    }
}

#[test]
fn hardware_windows_spanning_fields() {
    // v0 hardware field L3_1 (0x04) holds DSCP (bits 0..5), ECN (6..7) and the TTL or
    // hop limit (8..15), as rdma-core's table says.
    let caps = ModifyCaps::default();
    let mut p = pkt(tcp4(1, 2, &[]));
    let op = HwModifyOp::Set {
        hw_field: 0x04,
        shifter: 0,
        length: 16,
        data: 0x3f_c1,
    };
    p.apply_hw_modify(SteFormat::V0, &caps, &op).unwrap();
    assert_eq!(p.read_field(HdrField::IpDscp), Ok(1));
    assert_eq!(p.read_field(HdrField::IpEcn), Ok(3));
    assert_eq!(p.read_field(HdrField::IpTtl), Ok(0x3f));
    assert_checksums_ok(&p);
    // The same bits on IPv6 are the hop limit.
    let mut q = udp6();
    let op = HwModifyOp::Add {
        hw_field: 0x04,
        shifter: 8,
        length: 8,
        data: 1,
    };
    q.apply_hw_modify(SteFormat::V0, &caps, &op).unwrap();
    assert_eq!(q.read_field(HdrField::Ipv6HopLimit), Ok(21));
    // An add across two fields is refused; bits no field covers too.
    let across = HwModifyOp::Add {
        hw_field: 0x04,
        shifter: 4,
        length: 8,
        data: 1,
    };
    assert_eq!(
        p.apply_hw_modify(SteFormat::V0, &caps, &across),
        Err(EditError::AddAcrossFields { hw_field: 0x04 })
    );
    let gap = HwModifyOp::Set {
        hw_field: 0x02,
        shifter: 16,
        length: 8,
        data: 0,
    };
    assert!(matches!(
        p.apply_hw_modify(SteFormat::V0, &caps, &gap),
        Err(EditError::UnmappedHwBits { .. })
    ));
    // TCP ports on a UDP packet: the hardware bits exist, the packet's field does not.
    let tcp_only = HwModifyOp::Set {
        hw_field: 0x18,
        shifter: 0,
        length: 16,
        data: 0,
    };
    assert!(
        q.apply_hw_modify(SteFormat::V1, &caps, &tcp_only).is_ok(),
        "UDP ports share the bits"
    );
    let seq = HwModifyOp::Set {
        hw_field: 0x5e,
        shifter: 0,
        length: 32,
        data: 0,
    };
    assert_eq!(
        q.apply_hw_modify(SteFormat::V1, &caps, &seq),
        Err(EditError::FieldAbsent {
            field: HdrField::TcpSeq
        })
    );
}

/// Packets with many modifiable fields: TCP over IPv4 with a VLAN, UDP over IPv6 with a
/// VLAN, and GTP-U over IPv4.
fn sample_packets() -> Vec<Packet> {
    let tcp = {
        let b = PacketBuilder::ethernet2(SMAC, DMAC)
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4(SRC4, DST4, 64)
            .tcp(1, 2, 3, 4)
            .ack(5);
        let mut v = Vec::new();
        b.write(&mut v, b"tcp payload").unwrap();
        pkt(v)
    };
    let gtp = pkt(udp4(1, 2152, &[0x30, 0xff, 0, 0, 0, 0, 0, 1]));
    vec![tcp, udp6(), gtp]
}

fn action_strategy() -> impl Strategy<Value = ModifyAction> {
    let ids: Vec<u16> = HdrField::all().map(HdrField::sw_id).collect();
    let id = proptest::sample::select(ids);
    prop_oneof![
        (id.clone(), 0u8..32, 0u8..32, any::<u32>()).prop_map(|(field, offset, length, data)| {
            ModifyAction::Set {
                field,
                offset,
                length,
                data,
            }
        }),
        (id.clone(), any::<u32>()).prop_map(|(field, data)| ModifyAction::Add { field, data }),
        (id.clone(), 0u8..32, id, 0u8..32, 0u8..32).prop_map(
            |(src_field, src_offset, dst_field, dst_offset, length)| ModifyAction::Copy {
                src_field,
                src_offset,
                dst_field,
                dst_offset,
                length,
            }
        ),
    ]
}

proptest! {
    // Case count: proptest's default, or PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A PRM action applied directly, and the same action converted by ste-builder into
    /// each format's hardware action and applied through the hardware tables, give the
    /// same packet; checksums stay valid.
    #[test]
    fn hardware_path_equals_prm_path(action in action_strategy(), which in 0usize..3,
                                     regs in any::<[u32; 3]>()) {
        let caps = ModifyCaps::from_device(true, FLEX_PARSER_GTPU_TEID_ENABLED, 3);
        let mut base = sample_packets().swap_remove(which);
        base.meta.reg_a = regs[0];
        base.meta.reg_b = regs[1];
        base.meta.reg_c[2] = regs[2];
        let mut direct = base.clone();
        let direct_result = direct.apply_modify(&action);
        if direct_result.is_ok() {
            assert_checksums_ok(&direct);
        }
        for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
            let Ok((op, _, _)) = plan(format, &caps, &action) else {
                continue;
            };
            let mut hw = base.clone();
            let hw_result = hw.apply_hw_modify(format, &caps, &op);
            // Where the PRM field is absent the hardware may still find another field of
            // the packet in the same bits (TCP and UDP ports, TTL and hop limit), as the
            // NIC would; where it is present both paths must agree exactly.
            if direct_result.is_ok() {
                prop_assert_eq!(hw_result, Ok(()), "{:?} {:?}", format, op);
                prop_assert_eq!(&hw, &direct, "{:?} {:?}", format, op);
            }
        }
    }
}

#[test]
fn sw_ids_are_the_prm_ids() {
    assert_eq!(
        HdrField::from_sw_id(sw_field::IP_ECN),
        Some(HdrField::IpEcn)
    );
    assert_eq!(HdrField::TcpAck.sw_id(), 0x5b);
}
