//! Encodes a sample outer IPv4 5-tuple matcher and one rule for a ConnectX-6 Dx (STE v1)
//! and prints the STE bytes a driver would post, with the hash index of each.
//!
//! `cargo run --release -p ste-builder --example encode_5tuple`

use ste_builder::hash::hash_index;
use ste_builder::match_param::{pre_check, MatchCriteria, MatchParam, Section};
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::ste::{self, STE_SIZE};
use ste_builder::{BuilderKind, Caps, SteBuild, SteFormat};

/// The size of the rule hash table in this example.
const TABLE_ENTRIES: u32 = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let format = SteFormat::V1;
    let caps = Caps {
        gvmi: 1,
        ..Caps::default()
    };
    let criteria = MatchCriteria::OUTER;

    // Matcher mask: IPv4 (the mask carries the version), protocol, addresses, TCP ports.
    let mut user_mask = MatchParam::default();
    for (field, v) in [
        (spec::IP_VERSION, 4),
        (spec::IP_PROTOCOL, 0xff),
        (spec::SRC_IP_31_0, 0xffff_ffff),
        (spec::DST_IP_31_0, 0xffff_ffff),
        (spec::TCP_SPORT, 0xffff),
        (spec::TCP_DPORT, 0xffff),
    ] {
        user_mask.set(Section::Outer, field, v);
    }
    // Rule value: TCP 10.0.0.1:40000 -> 192.168.1.10:443.
    let mut user_value = MatchParam::default();
    for (field, v) in [
        (spec::IP_VERSION, 4),
        (spec::IP_PROTOCOL, 6),
        (spec::SRC_IP_31_0, 0x0a00_0001),
        (spec::DST_IP_31_0, 0xc0a8_010a),
        (spec::TCP_SPORT, 40000),
        (spec::TCP_DPORT, 443),
    ] {
        user_value.set(Section::Outer, field, v);
    }

    let mask = MatchParam::copy_from(criteria, &user_mask);
    let value = MatchParam::copy_from(criteria, &user_value);
    pre_check(criteria, &mask, Some(&value))?;
    MatchParam::check_value_within_mask(&mask, &value)?;

    // The lookup chain rdma-core picks for this mask: L2 (the IPv4 l3 type), then the
    // 5-tuple.
    let chain = [BuilderKind::EthL2Dst, BuilderKind::EthL3Ipv4_5Tuple];
    let mut left = mask.clone();
    let builders = chain
        .iter()
        .map(|&kind| SteBuild::new(format, kind, false, true, &mut left, &caps))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((field, v)) = left.nonzero_fields().next() {
        return Err(format!("mask field {field} = {v:#x} is not matched by any lookup").into());
    }

    println!(
        "{format}: outer IPv4 5-tuple matcher, one rule, RX side, gvmi {}",
        caps.gvmi
    );
    let ctrl = format.ctrl();
    let mut value_left = value.clone();
    for (i, sb) in builders.iter().enumerate() {
        let mut ste = [0u8; STE_SIZE];
        ctrl.init(&mut ste, sb.lu_type, sb.rx, caps.gvmi);
        ste::set_bit_mask(&mut ste, &sb.bit_mask);
        sb.tag(
            &mut value_left,
            &caps,
            &mut ste::tag_mut(&mut ste)[..sb.tag_len()],
        )?;
        if let Some(next) = builders.get(i + 1) {
            ctrl.set_next_lu_type(&mut ste, next.lu_type);
            ctrl.set_byte_mask(&mut ste, next.byte_mask);
        }
        let index = hash_index(sb.htbl_type, sb.byte_mask, TABLE_ENTRIES, &ste[32..]);
        ctrl.prepare_for_postsend(&mut ste, STE_SIZE);
        println!(
            "\nSTE {i}: {} lookup type {:#06x}, byte mask {:#06x}, hash index {index} of {TABLE_ENTRIES}",
            sb.kind, sb.lu_type, sb.byte_mask
        );
        for (row, chunk) in ste.chunks(16).enumerate() {
            let words: Vec<String> = chunk.chunks(4).map(hex).collect();
            let what = ["control", "control", "bit mask", "tag"][row];
            println!("  {:02x}: {}  {what}", row * 16, words.join(" "));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
