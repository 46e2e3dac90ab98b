//! Reformat tests: VLAN push / pop, decapsulation, encapsulation and their round trips.

use etherparse::{IpNumber, PacketBuilder};
use ste_builder::match_param::Section::{Inner, Misc, Outer};
use ste_builder::prm::{dr_match_set_misc as misc, dr_match_spec as spec};

use super::*;
use crate::packet::parse::TunnelKind;
use crate::packet::reformat::cvlan_tag;
use crate::packet::EditError;

fn vxlan_packet() -> (Vec<u8>, Vec<u8>) {
    let inner = inner_tcp4();
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    payload.extend_from_slice(&inner);
    (udp4(777, 4789, &payload), inner)
}

/// Reformat data for an L2 VXLAN encapsulation, lengths and checksums left zero as a
/// driver writes them.
fn vxlan_encap_data(udp_checksum: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([0xaa; 6], [0xbb; 6])
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
        .udp(5555, 4789);
    let mut out = Vec::new();
    b.write(&mut out, &[0x08, 0, 0, 0, 0, 0x10, 0x20, 0])
        .unwrap();
    // Zero the IPv4 total length and checksum and the UDP length and checksum.
    out[16..18].fill(0);
    out[24..26].fill(0);
    out[38..40].fill(0);
    out[40..42].fill(if udp_checksum { 0xff } else { 0 });
    out
}

#[test]
fn push_and_pop_vlan() {
    let original = pkt(tcp4(1, 2, b"x"));
    let mut p = original.clone();
    p.push_vlan(cvlan_tag(5, 0x321)).unwrap();
    assert_eq!(&p.bytes[12..16], &[0x81, 0x00, 0xa3, 0x21]);
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::CVLAN_TAG), 1);
    assert_eq!(get(&f, Outer, spec::FIRST_VID), 0x321);
    assert_eq!(get(&f, Outer, spec::FIRST_PRIO), 5);
    assert_eq!(get(&f, Outer, spec::TCP_DPORT), 2);
    // A second push makes QinQ with the new tag outermost.
    p.push_vlan(0x88a8_0007).unwrap();
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::SVLAN_TAG), 1);
    assert_eq!(get(&f, Misc, misc::OUTER_SECOND_VID), 0x321);
    p.pop_vlan().unwrap();
    p.pop_vlan().unwrap();
    assert_eq!(p, original);
    assert_eq!(p.pop_vlan(), Err(EditError::NoVlan));
    assert_eq!(pkt(vec![0; 13]).push_vlan(0), Err(EditError::NoEthernet));
    assert_eq!(pkt(vec![0; 13]).pop_vlan(), Err(EditError::NoEthernet));
}

#[test]
fn decap_l2_leaves_the_inner_frame() {
    let (bytes, inner) = vxlan_packet();
    let mut p = pkt(bytes);
    p.decap_l2().unwrap();
    assert_eq!(p.bytes, inner);
    assert_eq!(p.decap_l2(), Err(EditError::NotTunnelled));
    // VXLAN-GPE carrying IP has no inner Ethernet.
    let mut payload = vec![0x0c, 0, 0, 1, 0, 0, 1, 0];
    payload.extend(inner_ip_udp4());
    let mut gpe = pkt(udp4(1, 4790, &payload));
    assert_eq!(gpe.decap_l2(), Err(EditError::NoInnerL2));
    // A tunnel header cut short is not a tunnel to decapsulate.
    let mut cut = pkt(udp4(1, 4789, &[0x08, 0, 0]));
    assert_eq!(cut.decap_l2(), Err(EditError::NotTunnelled));
}

#[test]
fn decap_l3_puts_a_new_l2_header_before_the_inner_ip() {
    let (bytes, inner) = vxlan_packet();
    let mut p = pkt(bytes);
    let l2 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00];
    p.decap_l3(&l2).unwrap();
    assert_eq!(&p.bytes[..14], &l2);
    assert_eq!(&p.bytes[14..], &inner[14..]);
    let f = p.fields();
    assert_eq!(get(&f, Outer, spec::TCP_SPORT), 1111);
    assert_eq!(get(&f, Outer, spec::L4_CHECKSUM_OK), 1);
    assert!(p.parse().tunnel.is_none());
    // A tunnel with no IP inside.
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    payload.extend_from_slice(&[0; 12]);
    payload.extend_from_slice(&[0x08, 0x06]);
    let mut arp = pkt(udp4(1, 4789, &payload));
    assert_eq!(arp.decap_l3(&l2), Err(EditError::NoInnerL3));
}

#[test]
fn encap_l2_fills_lengths_and_round_trips() {
    let original = pkt(tcp4(1, 2, b"some payload"));
    let mut p = original.clone();
    p.encap_l2(&vxlan_encap_data(false)).unwrap();
    let parsed = p.parse();
    let f = &parsed.fields;
    assert_eq!(parsed.tunnel.map(|t| t.kind), Some(TunnelKind::Vxlan));
    assert_eq!(get(f, Misc, misc::VXLAN_VNI), 0x1020);
    assert_eq!(get(f, Outer, spec::L3_OK), 1);
    assert_eq!(get(f, Outer, spec::IPV4_CHECKSUM_OK), 1);
    assert_eq!(get(f, Outer, spec::L4_OK), 1);
    assert_eq!(
        get(f, Outer, spec::L4_CHECKSUM_OK),
        1,
        "zero UDP checksum: none"
    );
    assert_eq!(&p.bytes[40..42], &[0, 0]);
    assert_eq!(get(f, Inner, spec::TCP_DPORT), 2);
    assert_eq!(get(f, Inner, spec::L4_CHECKSUM_OK), 1);
    p.decap_l2().unwrap();
    assert_eq!(p, original);
}

#[test]
fn encap_l2_computes_a_requested_udp_checksum() {
    let mut p = pkt(tcp4(1, 2, b"abc"));
    p.encap_l2(&vxlan_encap_data(true)).unwrap();
    assert_ne!(&p.bytes[40..42], &[0, 0]);
    assert_eq!(get(&p.fields(), Outer, spec::L4_CHECKSUM_OK), 1);
}

#[test]
fn encap_l3_replaces_l2_and_round_trips() {
    let original = pkt(tcp4(1, 2, b"routed"));
    // Ethernet / IPv6 / GRE carrying IPv4, lengths zero.
    let data = {
        let b = PacketBuilder::ethernet2([0xaa; 6], [0xbb; 6]).ipv6(SRC6, DST6, 9);
        let mut out = Vec::new();
        b.write(&mut out, IpNumber::GRE, &[0, 0, 0x08, 0x00])
            .unwrap();
        out[18..20].fill(0);
        out
    };
    let mut p = original.clone();
    p.encap_l3(&data).unwrap();
    let parsed = p.parse();
    assert_eq!(parsed.tunnel.map(|t| t.kind), Some(TunnelKind::Gre));
    assert_eq!(get(&parsed.fields, Outer, spec::L3_OK), 1);
    assert_eq!(get(&parsed.fields, Inner, spec::TCP_SPORT), 1);
    assert_eq!(get(&parsed.fields, Inner, spec::L4_CHECKSUM_OK), 1);
    assert_eq!(get(&parsed.fields, Inner, spec::ETHERTYPE), 0);
    p.decap_l3(&original.bytes[..14]).unwrap();
    assert_eq!(p, original);
    assert_eq!(pkt(vec![0; 14]).encap_l3(&data), Err(EditError::NoL3));
}

#[test]
fn encap_l3_gtpu_length() {
    let data = {
        let b = PacketBuilder::ethernet2([0xaa; 6], [0xbb; 6])
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .udp(2152, 2152);
        let mut out = Vec::new();
        b.write(&mut out, &[0x30, 0xff, 0, 0, 0, 0, 0, 9]).unwrap();
        out
    };
    let mut p = pkt(tcp4(1, 2, b"abcd"));
    let ip_len = p.bytes.len() - 14;
    p.encap_l3(&data).unwrap();
    assert_eq!(&p.bytes[44..46], &(ip_len as u16).to_be_bytes());
    let parsed = p.parse();
    assert_eq!(get(&parsed.fields, Inner, spec::TCP_DPORT), 2);
    assert_eq!(get(&parsed.fields, Outer, spec::L4_CHECKSUM_OK), 1);
}

#[test]
fn raw_byte_edits() {
    let mut p = pkt(vec![1, 2, 3, 4]);
    p.insert_bytes(2, &[9, 9]).unwrap();
    assert_eq!(p.bytes, [1, 2, 9, 9, 3, 4]);
    p.remove_bytes(1, 3).unwrap();
    assert_eq!(p.bytes, [1, 3, 4]);
    assert_eq!(
        p.remove_bytes(2, 2),
        Err(EditError::OutOfPacket {
            at: 2,
            len: 2,
            packet_len: 3
        })
    );
    assert!(p.insert_bytes(4, &[0]).is_err());
    assert!(p.remove_bytes(usize::MAX, 2).is_err());
}

mod anchors {
    use ste_builder::bits::get;
    use ste_builder::modify_header::{decap_l3_list, HwModifyOp, ModifyCaps};
    use ste_builder::prm::{
        dr_action_hw_set as hw_set, ste_double_action_insert_with_inline_v1 as ins,
        ste_single_action_remove_header_size_v1 as rm_size,
        ste_single_action_remove_header_v1 as rm_hdr,
    };
    use ste_builder::SteFormat;

    use super::*;
    use crate::packet::reformat::anchor;

    #[test]
    fn anchor_offsets() {
        let (bytes, _) = vxlan_packet();
        let p = pkt(bytes);
        assert_eq!(p.anchor_offset(anchor::START_OUTER), Ok(0));
        assert_eq!(p.anchor_offset(anchor::IPV6_IPV4), Ok(14));
        assert_eq!(p.anchor_offset(anchor::INNER_MAC), Ok(50));
        assert_eq!(p.anchor_offset(anchor::INNER_IPV6_IPV4), Ok(64));
        assert_eq!(
            p.anchor_offset(anchor::FIRST_VLAN),
            Err(EditError::AnchorAbsent(anchor::FIRST_VLAN))
        );
        assert_eq!(p.anchor_offset(0x55), Err(EditError::UnknownAnchor(0x55)));
        let plain = pkt(tcp4(1, 2, &[]));
        assert_eq!(
            plain.anchor_offset(anchor::INNER_MAC),
            Err(EditError::AnchorAbsent(anchor::INNER_MAC))
        );
    }

    #[test]
    fn v1_vlan_push_and_pop_by_anchor() {
        let original = pkt(tcp4(1, 2, b"x"));
        let mut p = original.clone();
        // rdma-core pushes 12 bytes after the start and pops at the first VLAN.
        p.insert_at(
            anchor::START_OUTER,
            12,
            &cvlan_tag(0, 9).to_be_bytes(),
            false,
        )
        .unwrap();
        assert_eq!(p.fields().get(Outer, spec::FIRST_VID), 9);
        p.remove_at(anchor::FIRST_VLAN, 0, 4).unwrap();
        assert_eq!(p, original);
        assert!(p.remove_at(anchor::FIRST_VLAN, 0, 4).is_err());
    }

    /// Runs the STE v1 L3-decapsulation list rdma-core builds for `hdr`.
    fn run_v1_decap_list(p: &mut Packet, hdr: &[u8]) {
        let mut list = [0u8; 64];
        let n = decap_l3_list(SteFormat::V1, hdr, list.len(), &mut list).unwrap();
        for a in list.chunks(8).take(n) {
            match a[0] {
                0x09 => {
                    let end = get(a, rm_hdr::END_ANCHOR) as u8;
                    let start = get(a, rm_hdr::START_ANCHOR) as u8;
                    p.remove_headers(start, end).unwrap();
                }
                0x0a => {
                    let start = get(a, ins::START_ANCHOR) as u8;
                    let words = get(a, ins::START_OFFSET) as usize;
                    let at = ins::INLINE_DATA.offset / 8;
                    p.insert_at(start, 2 * words, &a[at..at + 4], false)
                        .unwrap();
                }
                0x08 => {
                    let start = get(a, rm_size::START_ANCHOR) as u8;
                    let words = get(a, rm_size::START_OFFSET) as usize;
                    let size = get(a, rm_size::REMOVE_SIZE) as usize;
                    p.remove_at(start, 2 * words, 2 * size).unwrap();
                }
                other => panic!("unexpected action {other:#x}"),
            }
        }
    }

    /// Runs the STE v0 L3-decapsulation: a blank header, then the set actions.
    fn run_v0_decap_list(p: &mut Packet, hdr: &[u8]) {
        let mut list = [0u8; 64];
        let n = decap_l3_list(SteFormat::V0, hdr, list.len(), &mut list).unwrap();
        p.decap_l3_blank(hdr.len() == 18).unwrap();
        for a in list.chunks(8).take(n) {
            let op = HwModifyOp::Set {
                hw_field: get(a, hw_set::DESTINATION_FIELD_CODE) as u8,
                shifter: get(a, hw_set::DESTINATION_LEFT_SHIFTER) as u8,
                length: get(a, hw_set::DESTINATION_LENGTH) as u8,
                data: get(a, hw_set::INLINE_DATA) as u32,
            };
            p.apply_hw_modify(SteFormat::V0, &ModifyCaps::default(), &op)
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
    }

    #[test]
    fn decap_l3_lists_of_both_formats_equal_decap_l3() {
        let (bytes, _) = vxlan_packet();
        let mut untagged = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        untagged.extend_from_slice(&[0x08, 0x00]);
        let mut tagged = untagged[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x05, 0x08, 0x00]);
        let mut s_tagged = tagged.clone();
        s_tagged[12..14].copy_from_slice(&[0x88, 0xa8]);
        for hdr in [untagged, tagged, s_tagged] {
            let mut want = pkt(bytes.clone());
            want.decap_l3(&hdr).unwrap();
            let mut v1 = pkt(bytes.clone());
            run_v1_decap_list(&mut v1, &hdr);
            assert_eq!(v1, want, "v1 with {hdr:02x?}");
            let mut v0 = pkt(bytes.clone());
            run_v0_decap_list(&mut v0, &hdr);
            assert_eq!(v0, want, "v0 with {hdr:02x?}");
        }
    }

    #[test]
    fn v0_vlan_type_needs_a_tag_and_a_known_code() {
        let caps = ModifyCaps::default();
        let set = |data| HwModifyOp::Set {
            hw_field: 0x02,
            shifter: 48,
            length: 2,
            data,
        };
        let mut plain = pkt(tcp4(1, 2, &[]));
        assert_eq!(
            plain.apply_hw_modify(SteFormat::V0, &caps, &set(1)),
            Err(EditError::NoVlan)
        );
        let mut tagged = plain.clone();
        tagged.push_vlan(cvlan_tag(0, 1)).unwrap();
        assert_eq!(
            tagged.apply_hw_modify(SteFormat::V0, &caps, &set(3)),
            Err(EditError::BadVlanType(3))
        );
        tagged
            .apply_hw_modify(SteFormat::V0, &caps, &set(1))
            .unwrap();
        assert_eq!(&tagged.bytes[12..14], &[0x88, 0xa8]);
        assert!(plain.decap_l3_blank(false).is_err());
    }
}
