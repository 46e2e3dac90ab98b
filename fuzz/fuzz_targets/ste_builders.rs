//! Arbitrary bytes through match-parameter parsing, the checks, and every lookup builder
//! of every format: nothing may panic.
//!
//! Input: byte 0 picks format, inner and rx; byte 1 is the match criteria; byte 2 picks
//! flex-parser ids; the rest is the mask followed by the value (each up to 448 bytes,
//! zero-extended when short).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ste_builder::match_param::{pre_check, MatchCriteria, MatchParam, MATCH_PARAM_SIZE};
use ste_builder::{BuilderKind, Caps, FlexParserIds, SteBuild, SteFormat};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, rest) = data.split_at(3);
    let format = [SteFormat::V0, SteFormat::V1, SteFormat::V2][usize::from(head[0] % 3)];
    let inner = head[0] & 0x10 != 0;
    let rx = head[0] & 0x20 != 0;
    let criteria = MatchCriteria::from_bits_truncate(head[1]);
    let id = head[2] % 9; // 8 is out of range on purpose
    let caps = Caps {
        gvmi: 1,
        flex_parser: FlexParserIds {
            icmp_dw0: id,
            icmp_dw1: id ^ 1,
            icmpv6_dw0: id,
            icmpv6_dw1: id ^ 1,
            geneve_tlv_option_0: id,
            mpls_over_gre: id,
            mpls_over_udp: id,
            gtpu_dw_0: id,
            gtpu_teid: id ^ 2,
            gtpu_dw_2: id ^ 3,
            gtpu_first_ext_dw_0: id ^ 4,
        },
        ..Caps::default()
    };
    let split = rest.len().min(MATCH_PARAM_SIZE);
    let (mask_bytes, value_bytes) = rest.split_at(split);
    let value_bytes = &value_bytes[..value_bytes.len().min(MATCH_PARAM_SIZE)];
    let (Ok(mask), Ok(value)) = (MatchParam::from_bytes(mask_bytes), MatchParam::from_bytes(value_bytes)) else {
        return;
    };
    let mask = MatchParam::copy_from(criteria, &mask);
    let value = MatchParam::copy_from(criteria, &value);
    let _ = pre_check(criteria, &mask, Some(&value));
    let _ = MatchParam::check_value_within_mask(&mask, &value);
    for &kind in BuilderKind::ALL {
        let mut m = mask.clone();
        if let Ok(sb) = SteBuild::new(format, kind, inner, rx, &mut m, &caps) {
            let mut tag = [0u8; 32];
            let _ = sb.tag(&mut value.clone(), &caps, &mut tag[..sb.tag_len()]);
        }
    }
});
