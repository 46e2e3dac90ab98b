//! Definer-based lookups of v1/v2 (`def0` … `def33`): a firmware definer object selects
//! packet fields into a 32-byte match tag that is hashed whole.
//!
//! Each definer has a fixed format (the PRM `ste_defN_v1` layout). Its *definer mask*
//! (`SteBuild::definer_match`, sent with `CREATE_DEFINER`) says which bits of that format
//! take part in the match; the STE's tag holds the rule's values in the same layout.
//!
//! As for the legacy lookups, the mask is built by running the tag encoding over the
//! matcher's mask, so most fields are written the same way into both. A few fields are
//! different in the mask: a "type" field (first VLAN type, L4 type) is all ones there,
//! because the mask only says "this field matters", while the value encodes which type.
//! Those are handled first, before the shared encoding runs.

use super::common::{
    mask_vlan_qualifier, put_vlan_qualifier, source_port_gvmi, L3_TYPE_IPV4, L3_TYPE_IPV6,
};
use super::{put, put_ones, BuildError, BuilderKind, InitFn, SteBuild, TagFn};
use crate::bits::{self, BitField};
use crate::caps::Caps;
use crate::hash::{HtblType, MATCH_TAG_SIZE};
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc5 as misc5, dr_match_spec as spec,
};
use crate::prm::{
    ste_def0_v1 as d0, ste_def16_v1 as d16, ste_def22_v1 as d22, ste_def24_v1 as d24,
    ste_def25_v1 as d25, ste_def26_v1 as d26, ste_def28_v1 as d28, ste_def2_v1 as d2,
    ste_def33_v1 as d33, ste_def6_v1 as d6,
};

/// Lookup type of a definer match entry (entry format `MATCH` in the high byte). The
/// low byte stays zero here; the matcher ORs in the definer object id it creates.
pub(crate) const LU_TYPE_MATCH: u16 = 0x0400;

/// The init function of definer `kind`, or `None` for a non-definer builder.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    let init: InitFn = match kind {
        BuilderKind::Def0 => init_def0,
        BuilderKind::Def2 => init_def2,
        BuilderKind::Def6 => init_def6,
        BuilderKind::Def16 => init_def16,
        BuilderKind::Def22 => init_def22,
        BuilderKind::Def24 => init_def24,
        BuilderKind::Def25 => init_def25,
        BuilderKind::Def26 => init_def26,
        BuilderKind::Def28 => init_def28,
        BuilderKind::Def33 => init_def33,
        _ => return None,
    };
    Some(init)
}

// ---- encodings shared by several definers ------------------------------------------------

/// STE L4 type codes.
mod l4_type {
    pub const TCP: u64 = 1;
    pub const UDP: u64 = 2;
}

const IP_VERSION_4: u64 = 4;
const IP_VERSION_6: u64 = 6;
const IP_PROTOCOL_TCP: u64 = 0x06;
const IP_PROTOCOL_UDP: u64 = 0x11;

/// True when the header's `ip_version` field says IPv4. In a mask this is the convention
/// DR uses: the pre-check only lets 0, 4 or 6 through, so the mask names the version.
fn is_ipv4(hdr: &[u8]) -> bool {
    bits::get(hdr, spec::IP_VERSION) == IP_VERSION_4
}

fn is_ipv6(hdr: &[u8]) -> bool {
    bits::get(hdr, spec::IP_VERSION) == IP_VERSION_6
}

/// Encodes `ip_version` 4 or 6 as an L3 type and consumes it. Other versions stay in
/// the parameter, so a matcher with them fails as having unmatched fields.
fn put_l3_type(tag: &mut [u8], field: BitField, hdr: &mut [u8]) {
    let code = match bits::get(hdr, spec::IP_VERSION) {
        IP_VERSION_4 => L3_TYPE_IPV4,
        IP_VERSION_6 => L3_TYPE_IPV6,
        _ => return,
    };
    bits::set(tag, field, code);
    bits::set(hdr, spec::IP_VERSION, 0);
}

/// Encodes `ip_protocol` TCP or UDP as an L4 type and consumes it.
fn put_l4_type(tag: &mut [u8], field: BitField, hdr: &mut [u8]) {
    let code = match bits::get(hdr, spec::IP_PROTOCOL) {
        IP_PROTOCOL_UDP => l4_type::UDP,
        IP_PROTOCOL_TCP => l4_type::TCP,
        _ => return,
    };
    bits::set(tag, field, code);
    bits::set(hdr, spec::IP_PROTOCOL, 0);
}

/// The first VLAN's type (qualifier) of an outer or inner header: C-VLAN wins over
/// S-VLAN, and only the presence bit used is consumed.
fn put_first_vlan_type(tag: &mut [u8], field: BitField, hdr: &mut [u8]) {
    put_vlan_qualifier(tag, field, hdr, spec::CVLAN_TAG, spec::SVLAN_TAG);
}

/// Mask side of [`put_first_vlan_type`]: either presence bit makes the whole type field
/// significant, and both bits are consumed.
fn mask_first_vlan_type(mask: &mut [u8], field: BitField, hdr: &mut [u8]) {
    mask_vlan_qualifier(mask, field, hdr, spec::CVLAN_TAG, spec::SVLAN_TAG);
}

/// Mask side of [`put_l4_type`]. The L4 type field can only say TCP or UDP, so a
/// protocol mask is taken as "match the L4 type" only when the mask shows the packet is
/// TCP or UDP: an L4 port is matched, or the mask's protocol is itself TCP or UDP.
/// Otherwise the protocol is left to the value encoding (which takes it only when it
/// equals TCP or UDP) or to another lookup.
fn mask_l4_type(mask: &mut [u8], field: BitField, hdr: &mut [u8]) {
    let protocol = bits::get(hdr, spec::IP_PROTOCOL);
    let tcp_or_udp = [
        spec::TCP_DPORT,
        spec::TCP_SPORT,
        spec::UDP_DPORT,
        spec::UDP_SPORT,
    ]
    .iter()
    .any(|&port| bits::get(hdr, port) != 0)
        || protocol == IP_PROTOCOL_UDP
        || protocol == IP_PROTOCOL_TCP;
    if protocol != 0 && tcp_or_udp {
        bits::set(mask, field, u64::MAX);
        bits::set(hdr, spec::IP_PROTOCOL, 0);
    }
}

/// Spreads `tcp_flags` onto one-bit flag fields. `flags` lists the fields from the
/// highest flag down to FIN (bit 0); each gets 1 or 0 from its flag bit. The flags
/// covered are consumed; higher ones (NS, when only eight fields exist) stay.
fn put_tcp_flags(tag: &mut [u8], hdr: &mut [u8], flags: &[BitField]) {
    let value = bits::get(hdr, spec::TCP_FLAGS);
    if value == 0 {
        return;
    }
    let count = flags.len();
    for (i, &field) in flags.iter().enumerate() {
        let bit = count - 1 - i;
        bits::set(tag, field, (value >> bit) & 1);
    }
    let covered = (1u64 << count) - 1;
    bits::set(hdr, spec::TCP_FLAGS, value & !covered);
}

/// Copies the outer L4 source and destination ports, TCP first and UDP second: both
/// feed the same field, so a UDP port overrides a TCP one.
fn put_l4_ports(tag: &mut [u8], sport: BitField, dport: BitField, hdr: &mut [u8]) {
    put(tag, sport, hdr, spec::TCP_SPORT);
    put(tag, sport, hdr, spec::UDP_SPORT);
    put(tag, dport, hdr, spec::TCP_DPORT);
    put(tag, dport, hdr, spec::UDP_DPORT);
}

/// Copies IPv4 source and destination addresses (the low dword of the address fields)
/// when the header is IPv4. The version itself is not consumed here.
fn put_ipv4_addrs(tag: &mut [u8], src: BitField, dst: BitField, hdr: &mut [u8]) {
    if is_ipv4(hdr) {
        put(tag, src, hdr, spec::SRC_IP_31_0);
        put(tag, dst, hdr, spec::DST_IP_31_0);
    }
}

/// The eight L3/L4 "ok" and checksum-ok bits, as placed by one definer format.
struct OkBits {
    outer_l3_ok: BitField,
    outer_l4_ok: BitField,
    inner_l3_ok: BitField,
    inner_l4_ok: BitField,
    outer_ipv4_checksum_ok: BitField,
    outer_l4_checksum_ok: BitField,
    inner_ipv4_checksum_ok: BitField,
    inner_l4_checksum_ok: BitField,
}

fn put_ok_bits(tag: &mut [u8], p: &mut MatchParam, f: &OkBits) {
    let (outer, inner) = (&mut p.outer, &mut p.inner);
    put(tag, f.outer_l3_ok, outer, spec::L3_OK);
    put(tag, f.outer_l4_ok, outer, spec::L4_OK);
    put(tag, f.inner_l3_ok, inner, spec::L3_OK);
    put(tag, f.inner_l4_ok, inner, spec::L4_OK);
    put(tag, f.outer_ipv4_checksum_ok, outer, spec::IPV4_CHECKSUM_OK);
    put(tag, f.outer_l4_checksum_ok, outer, spec::L4_CHECKSUM_OK);
    put(tag, f.inner_ipv4_checksum_ok, inner, spec::IPV4_CHECKSUM_OK);
    put(tag, f.inner_l4_checksum_ok, inner, spec::L4_CHECKSUM_OK);
}

// ---- plumbing -----------------------------------------------------------------------------

/// Fills the definer part of `sb` once its mask is in `sb.definer_match`.
fn finish(sb: &mut SteBuild, format_id: u16, tag_fn: TagFn) {
    sb.lu_type = LU_TYPE_MATCH;
    sb.byte_mask = format_id;
    sb.htbl_type = HtblType::Match;
    sb.tag_fn = tag_fn;
}

/// Runs a definer's value encoding into a full-size scratch tag and copies it out, so
/// that a short caller buffer truncates the tag instead of panicking.
fn write_tag(
    tag: &mut [u8],
    encode: impl FnOnce(&mut [u8; MATCH_TAG_SIZE]) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let mut full = [0u8; MATCH_TAG_SIZE];
    encode(&mut full)?;
    let n = tag.len().min(MATCH_TAG_SIZE);
    tag[..n].copy_from_slice(&full[..n]);
    Ok(())
}

/// Declares a definer whose tag needs nothing beyond the value and the caps: its tag
/// function runs `$encode` on the value, and its init runs `$mask` (the mask-only
/// steps) and then `$encode` on the mask, into the definer mask.
macro_rules! simple_definer {
    ($init:ident, $tag:ident, $format_id:expr, $mask:path, $encode:path) => {
        fn $init(sb: &mut SteBuild, m: &mut MatchParam, caps: &Caps) -> Result<(), BuildError> {
            let mut dm = [0u8; MATCH_TAG_SIZE];
            $mask(&mut dm, m);
            $encode(&mut dm, m, caps);
            sb.definer_match = dm;
            finish(sb, $format_id, $tag);
            Ok(())
        }

        fn $tag(
            _sb: &SteBuild,
            v: &mut MatchParam,
            caps: &Caps,
            tag: &mut [u8],
        ) -> Result<(), BuildError> {
            write_tag(tag, |t| {
                $encode(t, v, caps);
                Ok(())
            })
        }
    };
}

/// For definers whose mask needs no step of its own.
fn no_mask_step(_dm: &mut [u8], _m: &mut MatchParam) {}

// ---- def0 ---------------------------------------------------------------------------------

simple_definer!(init_def0, tag_def0, 0, mask_def0, encode_def0);

/// Definer 0: registers C0/C1 and the outer L2 header: MACs, ethertype, first VLAN (type,
/// priority, CFI, id), IP fragment and L3 type, eight TCP flags (CWR..FIN), and, when the
/// device supports it, the outer and inner L3/L4 ok and checksum-ok bits.
fn encode_def0(t: &mut [u8], p: &mut MatchParam, caps: &Caps) {
    put(
        t,
        d0::METADATA_REG_C_0,
        &mut p.misc2,
        misc2::METADATA_REG_C_0,
    );
    put(
        t,
        d0::METADATA_REG_C_1,
        &mut p.misc2,
        misc2::METADATA_REG_C_1,
    );

    let o = &mut p.outer;
    put(t, d0::DMAC_47_16, o, spec::DMAC_47_16);
    put(t, d0::DMAC_15_0, o, spec::DMAC_15_0);
    put(t, d0::SMAC_47_16, o, spec::SMAC_47_16);
    put(t, d0::SMAC_15_0, o, spec::SMAC_15_0);
    put(t, d0::ETHERTYPE, o, spec::ETHERTYPE);
    put(t, d0::IP_FRAG, o, spec::FRAG);
    put_l3_type(t, d0::OUTER_L3_TYPE, o);
    put_first_vlan_type(t, d0::FIRST_VLAN_QUALIFIER, o);
    put(t, d0::FIRST_PRIORITY, o, spec::FIRST_PRIO);
    put(t, d0::FIRST_VLAN_ID, o, spec::FIRST_VID);
    put(t, d0::FIRST_CFI, o, spec::FIRST_CFI);

    if caps.definer_supp_checksum {
        put_ok_bits(t, p, &DEF0_OK_BITS);
    }

    // The format has no NS bit: the NS flag stays unconsumed.
    put_tcp_flags(
        t,
        &mut p.outer,
        &[
            d0::TCP_CWR,
            d0::TCP_ECE,
            d0::TCP_URG,
            d0::TCP_ACK,
            d0::TCP_PSH,
            d0::TCP_RST,
            d0::TCP_SYN,
            d0::TCP_FIN,
        ],
    );
}

const DEF0_OK_BITS: OkBits = OkBits {
    outer_l3_ok: d0::OUTER_L3_OK,
    outer_l4_ok: d0::OUTER_L4_OK,
    inner_l3_ok: d0::INNER_L3_OK,
    inner_l4_ok: d0::INNER_L4_OK,
    outer_ipv4_checksum_ok: d0::OUTER_IPV4_CHECKSUM_OK,
    outer_l4_checksum_ok: d0::OUTER_L4_CHECKSUM_OK,
    inner_ipv4_checksum_ok: d0::INNER_IPV4_CHECKSUM_OK,
    inner_l4_checksum_ok: d0::INNER_L4_CHECKSUM_OK,
};

fn mask_def0(dm: &mut [u8], m: &mut MatchParam) {
    mask_first_vlan_type(dm, d0::FIRST_VLAN_QUALIFIER, &mut m.outer);
}

// ---- def2 ---------------------------------------------------------------------------------

simple_definer!(init_def2, tag_def2, 2, mask_def2, encode_def2);

/// Definer 2: register A and the outer L3/L4 header: IP version, IHL, DSCP, ECN, TTL,
/// protocol, fragment, L4 ports, all nine TCP flags, and, when the device supports it,
/// the outer and inner L3/L4 ok and checksum-ok bits.
fn encode_def2(t: &mut [u8], p: &mut MatchParam, caps: &Caps) {
    put(t, d2::METADATA_REG_A, &mut p.misc2, misc2::METADATA_REG_A);

    let o = &mut p.outer;
    put(t, d2::OUTER_IP_VERSION, o, spec::IP_VERSION);
    put(t, d2::OUTER_IP_IHL, o, spec::IPV4_IHL);
    put(t, d2::OUTER_IP_DSCP, o, spec::IP_DSCP);
    put(t, d2::OUTER_IP_ECN, o, spec::IP_ECN);
    put(t, d2::OUTER_IP_TTL, o, spec::IP_TTL_HOPLIMIT);
    put(t, d2::OUTER_IP_PROTOCOL, o, spec::IP_PROTOCOL);
    put_l4_ports(t, d2::OUTER_L4_SPORT, d2::OUTER_L4_DPORT, o);
    put(t, d2::OUTER_IP_FRAG, o, spec::FRAG);
    put_tcp_flags(
        t,
        o,
        &[
            d2::TCP_NS,
            d2::TCP_CWR,
            d2::TCP_ECE,
            d2::TCP_URG,
            d2::TCP_ACK,
            d2::TCP_PSH,
            d2::TCP_RST,
            d2::TCP_SYN,
            d2::TCP_FIN,
        ],
    );

    if caps.definer_supp_checksum {
        put_ok_bits(
            t,
            p,
            &OkBits {
                outer_l3_ok: d2::OUTER_L3_OK,
                outer_l4_ok: d2::OUTER_L4_OK,
                inner_l3_ok: d2::INNER_L3_OK,
                inner_l4_ok: d2::INNER_L4_OK,
                outer_ipv4_checksum_ok: d2::OUTER_IPV4_CHECKSUM_OK,
                outer_l4_checksum_ok: d2::OUTER_L4_CHECKSUM_OK,
                inner_ipv4_checksum_ok: d2::INNER_IPV4_CHECKSUM_OK,
                inner_l4_checksum_ok: d2::INNER_L4_CHECKSUM_OK,
            },
        );
    }
}

/// The version field is matched as a number, so any version mask selects all its bits.
fn mask_def2(dm: &mut [u8], m: &mut MatchParam) {
    put_ones(dm, d2::OUTER_IP_VERSION, &mut m.outer, spec::IP_VERSION);
}

// ---- def6 ---------------------------------------------------------------------------------

simple_definer!(init_def6, tag_def6, 6, no_mask_step, encode_def6);

/// Definer 6: the outer IPv6 destination address with the outer L4 ports, fragment,
/// L3/L4 ok bits and all nine TCP flags.
fn encode_def6(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    let o = &mut p.outer;
    // The address is taken whatever the IP version: the caller picks this definer only
    // for IPv6.
    put(t, d6::DST_IPV6_127_96, o, spec::DST_IP_127_96);
    put(t, d6::DST_IPV6_95_64, o, spec::DST_IP_95_64);
    put(t, d6::DST_IPV6_63_32, o, spec::DST_IP_63_32);
    put(t, d6::DST_IPV6_31_0, o, spec::DST_IP_31_0);
    put_l4_ports(t, d6::OUTER_L4_SPORT, d6::OUTER_L4_DPORT, o);
    put(t, d6::IP_FRAG, o, spec::FRAG);
    put(t, d6::L3_OK, o, spec::L3_OK);
    put(t, d6::L4_OK, o, spec::L4_OK);
    put_tcp_flags(
        t,
        o,
        &[
            d6::TCP_NS,
            d6::TCP_CWR,
            d6::TCP_ECE,
            d6::TCP_URG,
            d6::TCP_ACK,
            d6::TCP_PSH,
            d6::TCP_RST,
            d6::TCP_SYN,
            d6::TCP_FIN,
        ],
    );
}

// ---- def16 --------------------------------------------------------------------------------

/// Definer 16: tunnel header dwords 0..3, register A, the source vport (as its gvmi) and
/// source SQ, and the outer first VLAN type, L3 type, L4 type and fragment.
fn init_def16(sb: &mut SteBuild, m: &mut MatchParam, caps: &Caps) -> Result<(), BuildError> {
    let mut dm = [0u8; MATCH_TAG_SIZE];
    mask_l4_type(&mut dm, d16::OUTER_L4_TYPE, &mut m.outer);
    mask_first_vlan_type(&mut dm, d16::OUTER_FIRST_VLAN_TYPE, &mut m.outer);
    // The source port is not encoded from the mask (the vport table maps values, not
    // masks): any source_port mask selects the whole gvmi field.
    encode_def16(&mut dm, m, caps, false)?;
    put_ones(&mut dm, d16::SOURCE_GVMI, &mut m.misc, misc::SOURCE_PORT);
    sb.definer_match = dm;
    finish(sb, 16, tag_def16);
    Ok(())
}

fn tag_def16(
    sb: &SteBuild,
    v: &mut MatchParam,
    caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let match_source = bits::get(&sb.definer_match, d16::SOURCE_GVMI) != 0;
    write_tag(tag, |t| encode_def16(t, v, caps, match_source))
}

/// The value encoding of definer 16. With `match_source`, `misc.source_port` is looked
/// up in the vport table (even when it is zero: vport 0 is the e-switch manager's PF)
/// and its gvmi written; a gvmi of 0 (the uplink) leaves the field zero.
fn encode_def16(
    t: &mut [u8],
    p: &mut MatchParam,
    caps: &Caps,
    match_source: bool,
) -> Result<(), BuildError> {
    put(
        t,
        d16::TUNNEL_HEADER_0,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_0,
    );
    put(
        t,
        d16::TUNNEL_HEADER_1,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_1,
    );
    put(
        t,
        d16::TUNNEL_HEADER_2,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_2,
    );
    put(
        t,
        d16::TUNNEL_HEADER_3,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_3,
    );
    put(t, d16::METADATA_REG_A, &mut p.misc2, misc2::METADATA_REG_A);

    if match_source {
        // Field width is 16 bits, so the value always fits a vport number.
        let port = bits::get(&p.misc, misc::SOURCE_PORT) as u16;
        let gvmi = source_port_gvmi(caps, port)?;
        if gvmi != 0 {
            bits::set(t, d16::SOURCE_GVMI, gvmi.into());
        }
        bits::set(&mut p.misc, misc::SOURCE_PORT, 0);
    }

    let o = &mut p.outer;
    put_first_vlan_type(t, d16::OUTER_FIRST_VLAN_TYPE, o);
    put_l3_type(t, d16::OUTER_L3_TYPE, o);
    put_l4_type(t, d16::OUTER_L4_TYPE, o);
    put(t, d16::SOURCE_SQN, &mut p.misc, misc::SOURCE_SQN);
    put(t, d16::OUTER_IP_FRAG, &mut p.outer, spec::FRAG);
    Ok(())
}

// ---- def22 --------------------------------------------------------------------------------

simple_definer!(init_def22, tag_def22, 22, mask_def22, encode_def22);

/// Definer 22: the outer IPv4 5-tuple (addresses only for IPv4, L4 ports, L4 type from
/// the protocol) with L3 type, fragment, first VLAN, MACs and register C0.
fn encode_def22(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    let o = &mut p.outer;
    put_ipv4_addrs(t, d22::OUTER_IP_SRC_ADDR, d22::OUTER_IP_DST_ADDR, o);
    put_l3_type(t, d22::OUTER_L3_TYPE, o);
    put_l4_type(t, d22::OUTER_L4_TYPE, o);
    put_first_vlan_type(t, d22::FIRST_VLAN_QUALIFIER, o);
    put(t, d22::OUTER_IP_FRAG, o, spec::FRAG);
    put_l4_ports(t, d22::OUTER_L4_SPORT, d22::OUTER_L4_DPORT, o);
    put(t, d22::FIRST_PRIORITY, o, spec::FIRST_PRIO);
    put(t, d22::FIRST_VLAN_ID, o, spec::FIRST_VID);
    put(t, d22::FIRST_CFI, o, spec::FIRST_CFI);
    put(
        t,
        d22::METADATA_REG_C_0,
        &mut p.misc2,
        misc2::METADATA_REG_C_0,
    );
    let o = &mut p.outer;
    put(t, d22::OUTER_DMAC_47_16, o, spec::DMAC_47_16);
    put(t, d22::OUTER_DMAC_15_0, o, spec::DMAC_15_0);
    put(t, d22::OUTER_SMAC_47_16, o, spec::SMAC_47_16);
    put(t, d22::OUTER_SMAC_15_0, o, spec::SMAC_15_0);
}

fn mask_def22(dm: &mut [u8], m: &mut MatchParam) {
    mask_l4_type(dm, d22::OUTER_L4_TYPE, &mut m.outer);
    mask_first_vlan_type(dm, d22::FIRST_VLAN_QUALIFIER, &mut m.outer);
}

// ---- def24 --------------------------------------------------------------------------------

simple_definer!(init_def24, tag_def24, 24, mask_def24, encode_def24);

/// Definer 24: registers C0..C3 with the outer IPv4 5-tuple (addresses only for IPv4,
/// L4 ports, protocol), outer L3 type and fragment, the outer and inner first VLAN
/// types, and the inner L3 type, protocol and fragment.
fn encode_def24(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    let r = &mut p.misc2;
    put(t, d24::METADATA_REG_C_0, r, misc2::METADATA_REG_C_0);
    put(t, d24::METADATA_REG_C_1, r, misc2::METADATA_REG_C_1);
    put(t, d24::METADATA_REG_C_2, r, misc2::METADATA_REG_C_2);
    put(t, d24::METADATA_REG_C_3, r, misc2::METADATA_REG_C_3);

    let o = &mut p.outer;
    put_ipv4_addrs(t, d24::OUTER_IP_SRC_ADDR, d24::OUTER_IP_DST_ADDR, o);
    put_l3_type(t, d24::OUTER_L3_TYPE, o);
    put_l4_ports(t, d24::OUTER_L4_SPORT, d24::OUTER_L4_DPORT, o);
    put(t, d24::OUTER_IP_PROTOCOL, o, spec::IP_PROTOCOL);
    put(t, d24::OUTER_IP_FRAG, o, spec::FRAG);

    put_l3_type(t, d24::INNER_L3_TYPE, &mut p.inner);
    put_first_vlan_type(t, d24::OUTER_FIRST_VLAN_TYPE, &mut p.outer);
    let i = &mut p.inner;
    put_first_vlan_type(t, d24::INNER_FIRST_VLAN_TYPE, i);
    put(t, d24::INNER_IP_PROTOCOL, i, spec::IP_PROTOCOL);
    put(t, d24::INNER_IP_FRAG, i, spec::FRAG);
}

fn mask_def24(dm: &mut [u8], m: &mut MatchParam) {
    mask_first_vlan_type(dm, d24::OUTER_FIRST_VLAN_TYPE, &mut m.outer);
    mask_first_vlan_type(dm, d24::INNER_FIRST_VLAN_TYPE, &mut m.inner);
}

// ---- def25 --------------------------------------------------------------------------------

simple_definer!(init_def25, tag_def25, 25, mask_def25, encode_def25);

/// Definer 25: the inner IPv4 5-tuple behind a tunnel: inner addresses and L4 ports,
/// tunnel header dwords 0..1, the outer L4 destination port, and the outer and inner L3
/// types, L4 types and first VLAN types.
fn encode_def25(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    // rdma-core takes the inner addresses when the *outer* header is IPv4 (not the
    // inner one); the vectors follow that, so do we.
    if is_ipv4(&p.outer) {
        put(t, d25::INNER_IP_SRC_ADDR, &mut p.inner, spec::SRC_IP_31_0);
        put(t, d25::INNER_IP_DST_ADDR, &mut p.inner, spec::DST_IP_31_0);
    }
    put_l4_ports(t, d25::INNER_L4_SPORT, d25::INNER_L4_DPORT, &mut p.inner);

    put(
        t,
        d25::TUNNEL_HEADER_0,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_0,
    );
    put(
        t,
        d25::TUNNEL_HEADER_1,
        &mut p.misc5,
        misc5::TUNNEL_HEADER_1,
    );

    let o = &mut p.outer;
    put(t, d25::OUTER_L4_DPORT, o, spec::TCP_DPORT);
    put(t, d25::OUTER_L4_DPORT, o, spec::UDP_DPORT);

    put_l3_type(t, d25::OUTER_L3_TYPE, &mut p.outer);
    put_l3_type(t, d25::INNER_L3_TYPE, &mut p.inner);
    put_l4_type(t, d25::OUTER_L4_TYPE, &mut p.outer);
    put_l4_type(t, d25::INNER_L4_TYPE, &mut p.inner);
    put_first_vlan_type(t, d25::OUTER_FIRST_VLAN_TYPE, &mut p.outer);
    put_first_vlan_type(t, d25::INNER_FIRST_VLAN_TYPE, &mut p.inner);
}

fn mask_def25(dm: &mut [u8], m: &mut MatchParam) {
    // Both L4 hints look at the mask before any of it is consumed.
    mask_l4_type(dm, d25::OUTER_L4_TYPE, &mut m.outer);
    mask_first_vlan_type(dm, d25::OUTER_FIRST_VLAN_TYPE, &mut m.outer);
    mask_l4_type(dm, d25::INNER_L4_TYPE, &mut m.inner);
    mask_first_vlan_type(dm, d25::INNER_FIRST_VLAN_TYPE, &mut m.inner);
}

// ---- def26 --------------------------------------------------------------------------------

simple_definer!(init_def26, tag_def26, 26, mask_def26, encode_def26);

/// Definer 26: the outer IPv6 source address (only for IPv6) with the outer L2 header:
/// source MAC, first and second VLAN (type, priority, CFI, id), plus IPv6 L3 type,
/// fragment, L3/L4 ok bits, IP protocol and eight TCP flags (CWR..FIN).
fn encode_def26(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    let o = &mut p.outer;
    if is_ipv6(o) {
        put(t, d26::SRC_IPV6_127_96, o, spec::SRC_IP_127_96);
        put(t, d26::SRC_IPV6_95_64, o, spec::SRC_IP_95_64);
        put(t, d26::SRC_IPV6_63_32, o, spec::SRC_IP_63_32);
        put(t, d26::SRC_IPV6_31_0, o, spec::SRC_IP_31_0);
    }
    put(t, d26::IP_FRAG, o, spec::FRAG);
    // Only IPv6 has a code here; an IPv4 version is left for another lookup.
    if is_ipv6(o) {
        bits::set(t, d26::L3_TYPE, L3_TYPE_IPV6);
        bits::set(o, spec::IP_VERSION, 0);
    }
    put_first_vlan_type(t, d26::FIRST_VLAN_TYPE, o);
    put(t, d26::FIRST_VLAN_ID, o, spec::FIRST_VID);
    put(t, d26::FIRST_CFI, o, spec::FIRST_CFI);
    put(t, d26::FIRST_PRIORITY, o, spec::FIRST_PRIO);
    put(t, d26::L3_OK, o, spec::L3_OK);
    put(t, d26::L4_OK, o, spec::L4_OK);

    let m = &mut p.misc;
    put_vlan_qualifier(
        t,
        d26::SECOND_VLAN_TYPE,
        m,
        misc::OUTER_SECOND_CVLAN_TAG,
        misc::OUTER_SECOND_SVLAN_TAG,
    );
    put(t, d26::SECOND_VLAN_ID, m, misc::OUTER_SECOND_VID);
    put(t, d26::SECOND_CFI, m, misc::OUTER_SECOND_CFI);
    put(t, d26::SECOND_PRIORITY, m, misc::OUTER_SECOND_PRIO);

    let o = &mut p.outer;
    put(t, d26::SMAC_47_16, o, spec::SMAC_47_16);
    put(t, d26::SMAC_15_0, o, spec::SMAC_15_0);
    put(t, d26::IP_POROTCOL, o, spec::IP_PROTOCOL);
    // No NS bit in this format: the NS flag stays unconsumed.
    put_tcp_flags(
        t,
        o,
        &[
            d26::TCP_CWR,
            d26::TCP_ECE,
            d26::TCP_URG,
            d26::TCP_ACK,
            d26::TCP_PSH,
            d26::TCP_RST,
            d26::TCP_SYN,
            d26::TCP_FIN,
        ],
    );
}

fn mask_def26(dm: &mut [u8], m: &mut MatchParam) {
    mask_first_vlan_type(dm, d26::FIRST_VLAN_TYPE, &mut m.outer);
    mask_vlan_qualifier(
        dm,
        d26::SECOND_VLAN_TYPE,
        &mut m.misc,
        misc::OUTER_SECOND_CVLAN_TAG,
        misc::OUTER_SECOND_SVLAN_TAG,
    );
}

// ---- def28 --------------------------------------------------------------------------------

simple_definer!(init_def28, tag_def28, 28, mask_def28, encode_def28);

/// Definer 28: a GTP-U tunnel: the TEID with the outer and inner IPv4 5-tuples
/// (addresses only for IPv4), L3 types, fragments and first VLAN types.
fn encode_def28(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    put(t, d28::FLEX_GTPU_TEID, &mut p.misc3, misc3::GTPU_TEID);

    put_ipv4_addrs(
        t,
        d28::OUTER_IP_SRC_ADDR,
        d28::OUTER_IP_DST_ADDR,
        &mut p.outer,
    );
    put_ipv4_addrs(
        t,
        d28::INNER_IP_SRC_ADDR,
        d28::INNER_IP_DST_ADDR,
        &mut p.inner,
    );
    put_l3_type(t, d28::OUTER_L3_TYPE, &mut p.outer);

    put_l4_ports(t, d28::OUTER_L4_SPORT, d28::OUTER_L4_DPORT, &mut p.outer);
    put_l4_ports(t, d28::INNER_L4_SPORT, d28::INNER_L4_DPORT, &mut p.inner);

    let o = &mut p.outer;
    put(t, d28::OUTER_IP_PROTOCOL, o, spec::IP_PROTOCOL);
    put(t, d28::OUTER_IP_FRAG, o, spec::FRAG);

    put_l3_type(t, d28::INNER_L3_TYPE, &mut p.inner);
    put_first_vlan_type(t, d28::OUTER_FIRST_VLAN_TYPE, &mut p.outer);
    let i = &mut p.inner;
    put_first_vlan_type(t, d28::INNER_FIRST_VLAN_TYPE, i);
    put(t, d28::INNER_IP_PROTOCOL, i, spec::IP_PROTOCOL);
    put(t, d28::INNER_IP_FRAG, i, spec::FRAG);
}

fn mask_def28(dm: &mut [u8], m: &mut MatchParam) {
    mask_first_vlan_type(dm, d28::OUTER_FIRST_VLAN_TYPE, &mut m.outer);
    mask_first_vlan_type(dm, d28::INNER_FIRST_VLAN_TYPE, &mut m.inner);
}

// ---- def33 --------------------------------------------------------------------------------

simple_definer!(init_def33, tag_def33, 33, mask_def33, encode_def33);

/// Definer 33: the outer IPv4 5-tuple (addresses only for IPv4) with fragment, L3 type,
/// first VLAN (type, priority, CFI, id), IP version, IHL, TTL, protocol and the outer
/// and inner L3/L4 ok and checksum-ok bits (unconditionally, unlike def0/def2).
fn encode_def33(t: &mut [u8], p: &mut MatchParam, _caps: &Caps) {
    let o = &mut p.outer;
    put_ipv4_addrs(t, d33::OUTER_IP_SRC_ADDR, d33::OUTER_IP_DST_ADDR, o);
    put_l4_ports(t, d33::OUTER_L4_SPORT, d33::OUTER_L4_DPORT, o);
    put(t, d33::OUTER_IP_FRAG, o, spec::FRAG);
    // The L3 type consumes a version of 4 or 6, so the IP version field below only
    // ever receives another value.
    put_l3_type(t, d33::OUTER_L3_TYPE, o);
    put_first_vlan_type(t, d33::OUTER_FIRST_VLAN_TYPE, o);
    put(t, d33::OUTER_FIRST_VLAN_PRIO, o, spec::FIRST_PRIO);
    put(t, d33::OUTER_FIRST_VLAN_CFI, o, spec::FIRST_CFI);
    put(t, d33::OUTER_FIRST_VLAN_VID, o, spec::FIRST_VID);
    put(t, d33::OUTER_IP_VERSION, o, spec::IP_VERSION);
    put(t, d33::OUTER_IP_IHL, o, spec::IPV4_IHL);

    put_ok_bits(
        t,
        p,
        &OkBits {
            outer_l3_ok: d33::OUTER_L3_OK,
            outer_l4_ok: d33::OUTER_L4_OK,
            inner_l3_ok: d33::INNER_L3_OK,
            inner_l4_ok: d33::INNER_L4_OK,
            outer_ipv4_checksum_ok: d33::OUTER_IPV4_CHECKSUM_OK,
            outer_l4_checksum_ok: d33::OUTER_L4_CHECKSUM_OK,
            inner_ipv4_checksum_ok: d33::INNER_IPV4_CHECKSUM_OK,
            inner_l4_checksum_ok: d33::INNER_L4_CHECKSUM_OK,
        },
    );

    let o = &mut p.outer;
    put(t, d33::OUTER_IP_TTL, o, spec::IP_TTL_HOPLIMIT);
    put(t, d33::OUTER_IP_PROTOCOL, o, spec::IP_PROTOCOL);
}

fn mask_def33(dm: &mut [u8], m: &mut MatchParam) {
    mask_first_vlan_type(dm, d33::OUTER_FIRST_VLAN_TYPE, &mut m.outer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VportCap;
    use crate::ste::SteFormat;

    fn build(kind: BuilderKind, mask: &mut MatchParam, caps: &Caps) -> SteBuild {
        SteBuild::new(SteFormat::V1, kind, false, true, mask, caps).expect("definer exists")
    }

    fn caps_with_vport() -> Caps {
        Caps {
            gvmi: 7,
            esw_manager_vhca_gvmi: 7,
            vports: vec![VportCap {
                vport_num: 1,
                vport_gvmi: 17,
                vhca_gvmi: 7,
                ..VportCap::default()
            }],
            ..Caps::default()
        }
    }

    #[test]
    fn def16_maps_source_port_to_gvmi_and_rejects_unknown_ports() {
        let caps = caps_with_vport();
        let mut mask = MatchParam::default();
        bits::set(&mut mask.misc, misc::SOURCE_PORT, 0xffff);
        let sb = build(BuilderKind::Def16, &mut mask, &caps);
        assert!(mask.is_zero());
        assert_eq!(sb.lu_type, LU_TYPE_MATCH);
        assert_eq!(sb.byte_mask, 16);
        assert_eq!(bits::get(&sb.definer_match, d16::SOURCE_GVMI), 0xffff);

        let mut value = MatchParam::default();
        bits::set(&mut value.misc, misc::SOURCE_PORT, 1);
        let mut tag = [0u8; MATCH_TAG_SIZE];
        sb.tag(&mut value, &caps, &mut tag)
            .expect("vport 1 is known");
        assert_eq!(bits::get(&tag, d16::SOURCE_GVMI), 17);
        assert!(value.is_zero());

        bits::set(&mut value.misc, misc::SOURCE_PORT, 9);
        assert_eq!(
            sb.tag(&mut value, &caps, &mut [0u8; MATCH_TAG_SIZE]),
            Err(BuildError::UnknownVport { vport: 9 })
        );
    }

    #[test]
    fn eight_flag_formats_leave_ns_unconsumed() {
        let mut mask = MatchParam::default();
        bits::set(&mut mask.outer, spec::TCP_FLAGS, 0x1ff);
        let sb = build(BuilderKind::Def0, &mut mask, &Caps::default());
        assert_eq!(bits::get(&mask.outer, spec::TCP_FLAGS), 0x100);
        assert_eq!(bits::get(&sb.definer_match, d0::TCP_CWR), 1);
        assert_eq!(bits::get(&sb.definer_match, d0::TCP_FIN), 1);
    }

    #[test]
    fn short_tag_buffers_are_truncated_not_overrun() {
        let mut mask = MatchParam::default();
        bits::set(&mut mask.misc2, misc2::METADATA_REG_C_0, 0xffff_ffff);
        bits::set(&mut mask.outer, spec::SMAC_15_0, 0xffff);
        let sb = build(BuilderKind::Def0, &mut mask, &Caps::default());
        let mut value = MatchParam::default();
        bits::set(&mut value.misc2, misc2::METADATA_REG_C_0, 0x1234_5678);
        bits::set(&mut value.outer, spec::SMAC_15_0, 0xabcd);
        let mut short = [0u8; 4];
        sb.tag(&mut value, &Caps::default(), &mut short)
            .expect("no vport lookup");
        assert_eq!(short, [0x12, 0x34, 0x56, 0x78]);
    }
}
