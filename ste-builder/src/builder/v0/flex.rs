//! v0 lookups on the programmable flex parsers: MPLS over GRE/UDP, ICMP, the GENEVE TLV
//! option, GTP-U fields, and the user's programmable sample fields.
//!
//! A `FLEX_PARSER_0` lookup holds parsers 0..=3 and a `FLEX_PARSER_1` lookup parsers
//! 4..=7; firmware tells which parser carries which protocol field.

use super::{fill_bit_mask, init_by_tag, lu};
use crate::bits::{self, BitField};
use crate::builder::common::{flex_parser_dword, mpls_header, FLEX_PARSER_COUNT};
use crate::builder::{finish_legacy, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::dr_match_set_misc4 as misc4;
use crate::prm::{dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3};

/// Writes `value` as the whole dword of flex parser `id`, zero included.
fn set_flex_parser(tag: &mut [u8], id: u8, value: u64) {
    bits::set(tag, flex_parser_dword(id.into()), value);
}

// ---- MPLS over GRE / UDP -------------------------------------------------------------

/// The misc2 fields (label, EXP, bottom of stack, TTL) of the first MPLS label after a
/// GRE header.
const MPLS_OVER_GRE: [BitField; 4] = [
    misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL,
    misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP,
    misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS,
    misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL,
];

/// The same for the first MPLS label after a UDP header.
const MPLS_OVER_UDP: [BitField; 4] = [
    misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL,
    misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP,
    misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS,
    misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL,
];

/// Consumes an MPLS label's four fields and returns the label stack entry the flex
/// parser sees.
fn take_mpls_header(misc2_sec: &mut [u8], [label, exp, s_bos, ttl]: [BitField; 4]) -> u64 {
    let mut take = |f| bits::take(misc2_sec, f);
    mpls_header(take(label), take(exp), take(s_bos), take(ttl)).into()
}

/// The first MPLS header after a GRE header (`tnl_mpls_over_gre`), on the flex parser
/// firmware assigned to it.
pub(super) fn init_tnl_mpls_over_gre(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::flex_parser_of(caps.flex_parser.mpls_over_gre);
    init_by_tag(sb, mask, caps, lu_type, tag_tnl_mpls_over_gre)
}

fn tag_tnl_mpls_over_gre(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let header = take_mpls_header(&mut value.misc2, MPLS_OVER_GRE);
    set_flex_parser(tag, caps.flex_parser.mpls_over_gre, header);
    Ok(())
}

/// The first MPLS header after a UDP header (`tnl_mpls_over_udp`), on the flex parser
/// firmware assigned to it.
pub(super) fn init_tnl_mpls_over_udp(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::flex_parser_of(caps.flex_parser.mpls_over_udp);
    init_by_tag(sb, mask, caps, lu_type, tag_tnl_mpls_over_udp)
}

fn tag_tnl_mpls_over_udp(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let header = take_mpls_header(&mut value.misc2, MPLS_OVER_UDP);
    set_flex_parser(tag, caps.flex_parser.mpls_over_udp, header);
    Ok(())
}

// ---- ICMP ----------------------------------------------------------------------------

/// True when any ICMPv4 field is set; otherwise the ICMPv6 fields are meant.
fn is_icmpv4(m3: &[u8]) -> bool {
    [misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA]
        .iter()
        .any(|&f| bits::get(m3, f) != 0)
}

/// ICMPv4 or ICMPv6 type, code and header data (`icmp`): type and code form the first
/// ICMP dword, the header data the second, each on the flex parser firmware assigned.
pub(super) fn init_icmp(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    fill_bit_mask(sb, mask, caps, tag_icmp)?;
    // rdma-core decides between ICMPv4 and ICMPv6 here by looking at the mask *after*
    // the ICMP fields were consumed, so it always takes the ICMPv6 dword-0 parser. The
    // vectors follow that, so the same (stale) test is kept.
    let dw0 = if is_icmpv4(&mask.misc3) {
        caps.flex_parser.icmp_dw0
    } else {
        caps.flex_parser.icmpv6_dw0
    };
    finish_legacy(sb, lu::flex_parser_of(dw0), tag_icmp);
    Ok(())
}

fn tag_icmp(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let ids = &caps.flex_parser;
    let m3 = &mut value.misc3;
    let (ty, code, data, dw0, dw1) = if is_icmpv4(m3) {
        (
            misc3::ICMP_TYPE,
            misc3::ICMP_CODE,
            misc3::ICMP_HEADER_DATA,
            ids.icmp_dw0,
            ids.icmp_dw1,
        )
    } else {
        (
            misc3::ICMPV6_TYPE,
            misc3::ICMPV6_CODE,
            misc3::ICMPV6_HEADER_DATA,
            ids.icmpv6_dw0,
            ids.icmpv6_dw1,
        )
    };
    // Both dwords are always written, zero included; when firmware put both on one
    // parser, the header data overwrites type and code.
    let first_dword = (bits::take(m3, ty) << 24) | (bits::take(m3, code) << 16);
    set_flex_parser(tag, dw0, first_dword);
    set_flex_parser(tag, dw1, bits::take(m3, data));
    Ok(())
}

// ---- GENEVE TLV option ---------------------------------------------------------------

/// The data of GENEVE TLV option 0 (`tnl_geneve_tlv_opt`), on the flex parser firmware
/// assigned to it.
pub(super) fn init_tnl_geneve_tlv_opt(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::flex_parser_of(caps.flex_parser.geneve_tlv_option_0);
    init_by_tag(sb, mask, caps, lu_type, tag_tnl_geneve_tlv_opt)
}

fn tag_tnl_geneve_tlv_opt(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let data = bits::take(&mut value.misc3, misc3::GENEVE_TLV_OPTION_0_DATA);
    set_flex_parser(tag, caps.flex_parser.geneve_tlv_option_0, data);
    Ok(())
}

// ---- GTP-U on flex parsers -----------------------------------------------------------

/// The GTP-U fields (dword 0, TEID, dword 2, first extension dword) that firmware
/// placed on flex parsers 0..=3 (`tnl_gtpu_flex_parser_0`).
pub(super) fn init_tnl_gtpu_flex_parser_0(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(
        sb,
        mask,
        caps,
        lu::FLEX_PARSER_0,
        tag_tnl_gtpu_flex_parser_0,
    )
}

fn tag_tnl_gtpu_flex_parser_0(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_gtpu_flex_fields(tag, value, caps, true);
    Ok(())
}

/// The GTP-U fields that firmware placed on flex parsers 4..=7
/// (`tnl_gtpu_flex_parser_1`).
pub(super) fn init_tnl_gtpu_flex_parser_1(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(
        sb,
        mask,
        caps,
        lu::FLEX_PARSER_1,
        tag_tnl_gtpu_flex_parser_1,
    )
}

fn tag_tnl_gtpu_flex_parser_1(
    _sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_gtpu_flex_fields(tag, value, caps, false);
    Ok(())
}

/// Moves the non-zero GTP-U fields whose parser is in the chosen lookup; later fields
/// overwrite earlier ones that share a parser.
fn put_gtpu_flex_fields(tag: &mut [u8], value: &mut MatchParam, caps: &Caps, flex_0: bool) {
    let ids = &caps.flex_parser;
    let fields = [
        (ids.gtpu_dw_0, misc3::GTPU_DW_0),
        (ids.gtpu_teid, misc3::GTPU_TEID),
        (ids.gtpu_dw_2, misc3::GTPU_DW_2),
        (ids.gtpu_first_ext_dw_0, misc3::GTPU_FIRST_EXT_DW_0),
    ];
    for (id, field) in fields {
        if lu::in_flex_parser_0(id.into()) != flex_0 {
            continue;
        }
        let v = bits::take(&mut value.misc3, field);
        if v != 0 {
            set_flex_parser(tag, id, v);
        }
    }
}

// ---- programmable sample fields ------------------------------------------------------

/// The programmable sample fields on flex parsers 0..=3 (`flex_parser_0`).
pub(super) fn init_flex_parser_0(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::FLEX_PARSER_0, tag_flex_parser_0)
}

/// The programmable sample fields (`prog_sample_field_id_N`, `_value_N`) in order.
const PROG_SAMPLES: [(BitField, BitField); 8] = [
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

/// Places the sample fields whose parser id belongs to this lookup and consumes them.
///
/// The first sample naming a parser wins; later samples for the same parser stay
/// unconsumed. An unused slot reads as parser 0 with value 0, so in a `FLEX_PARSER_0`
/// lookup it claims parser 0 (writing a zero dword) and shadows a later sample for
/// parser 0. rdma-core behaves the same way.
fn put_prog_samples(tag: &mut [u8], misc4_sec: &mut [u8], flex_0: bool) {
    let mut used = [false; FLEX_PARSER_COUNT as usize];
    for (id_field, value_field) in PROG_SAMPLES {
        let id = bits::get(misc4_sec, id_field);
        if id >= u64::from(FLEX_PARSER_COUNT) || lu::in_flex_parser_0(id) != flex_0 {
            continue;
        }
        let slot = &mut used[id as usize];
        if *slot {
            continue;
        }
        *slot = true;
        let value = bits::take(misc4_sec, value_field);
        bits::set(tag, flex_parser_dword(id as u32), value);
        bits::set(misc4_sec, id_field, 0);
    }
}

fn tag_flex_parser_0(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_prog_samples(tag, &mut value.misc4, true);
    Ok(())
}

/// The programmable sample fields on flex parsers 4..=7 (`flex_parser_1`).
pub(super) fn init_flex_parser_1(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::FLEX_PARSER_1, tag_flex_parser_1)
}

fn tag_flex_parser_1(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_prog_samples(tag, &mut value.misc4, false);
    Ok(())
}
