//! Encoding steps that the v0 and v1 lookup builders share: they differ in where a tag
//! field lives, not in how a match field is turned into it.

use super::{put, BuildError, BuilderKind};
use crate::bits::{self, BitField};
use crate::caps::Caps;
use crate::prm::dr_match_spec as spec;

/// `l3_type` code of an IPv4 packet.
pub(crate) const L3_TYPE_IPV4: u64 = 1;
/// `l3_type` code of an IPv6 packet.
pub(crate) const L3_TYPE_IPV6: u64 = 2;
/// VLAN qualifier code of an S-VLAN (802.1ad) tag.
pub(crate) const VLAN_QUALIFIER_SVLAN: u64 = 1;
/// VLAN qualifier code of a C-VLAN (802.1Q) tag.
pub(crate) const VLAN_QUALIFIER_CVLAN: u64 = 2;

/// Number of flex-parser fields the hardware offers.
pub(crate) const FLEX_PARSER_COUNT: u32 = 8;
/// Flex parsers `0..=MAX_FLEX_PARSER_0_ID` sit in the first flex-parser lookup, the others
/// in the second.
pub(crate) const MAX_FLEX_PARSER_0_ID: u32 = 3;

/// The tag dword that carries flex parser `id`. A flex-parser lookup holds four parsers
/// in descending order (parser 3 or 7 first), so the dword is chosen by `id % 4` alone;
/// which of the two lookups applies is the caller's business.
pub(crate) fn flex_parser_dword(id: u32) -> BitField {
    let slot = 3 - (id % 4) as usize;
    BitField::new(slot * 32, 32)
}

/// Moves a header's `tcp_flags` into a tag whose nine one-bit flag fields run from
/// `tcp_ns` to `tcp_fin`. The flags are in the same order as in `tcp_flags` (NS is its
/// bit 8), so the nine fields read as one 9-bit field.
pub(crate) fn put_tcp_flags(dst: &mut [u8], tcp_ns: BitField, headers: &mut [u8]) {
    put(
        dst,
        BitField::new(tcp_ns.offset, 9),
        headers,
        spec::TCP_FLAGS,
    );
}

/// Moves a rule's `ip_version` into an `l3_type` tag field. A mask carries the version
/// itself (4 or 6), so any other non-zero value cannot be matched.
pub(crate) fn put_l3_type(
    dst: &mut [u8],
    l3_type: BitField,
    headers: &mut [u8],
    builder: BuilderKind,
) -> Result<(), BuildError> {
    let Some(code) = l3_type_code(bits::get(headers, spec::IP_VERSION), builder)? else {
        return Ok(());
    };
    bits::set(dst, l3_type, code);
    bits::set(headers, spec::IP_VERSION, 0);
    Ok(())
}

/// The `l3_type` code of a rule's `ip_version`: none for 0, an error for anything but
/// 4 or 6.
pub(crate) fn l3_type_code(version: u64, builder: BuilderKind) -> Result<Option<u64>, BuildError> {
    match version {
        0 => Ok(None),
        4 => Ok(Some(L3_TYPE_IPV4)),
        6 => Ok(Some(L3_TYPE_IPV6)),
        _ => Err(BuildError::Unsupported {
            builder,
            reason: "ip_version must be 4 or 6",
        }),
    }
}

/// Mask side of a VLAN qualifier: either tag bit in the mask makes the whole qualifier
/// significant, and both bits are consumed.
pub(crate) fn mask_vlan_qualifier(
    bit_mask: &mut [u8],
    qualifier: BitField,
    src: &mut [u8],
    cvlan: BitField,
    svlan: BitField,
) {
    if bits::get(src, cvlan) != 0 || bits::get(src, svlan) != 0 {
        bits::set(bit_mask, qualifier, u64::MAX);
        bits::set(src, cvlan, 0);
        bits::set(src, svlan, 0);
    }
}

/// Value side of a VLAN qualifier: a C-VLAN tag wins over an S-VLAN tag, and only the
/// bit that was used is consumed.
pub(crate) fn put_vlan_qualifier(
    tag: &mut [u8],
    qualifier: BitField,
    src: &mut [u8],
    cvlan: BitField,
    svlan: BitField,
) {
    if bits::take(src, cvlan) != 0 {
        bits::set(tag, qualifier, VLAN_QUALIFIER_CVLAN);
    } else if bits::take(src, svlan) != 0 {
        bits::set(tag, qualifier, VLAN_QUALIFIER_SVLAN);
    }
}

/// The 32-bit MPLS label stack entry built from its four fields (label, traffic class,
/// bottom of stack, TTL), as a flex parser sees it on the wire.
pub(crate) fn mpls_header(label: u64, exp: u64, s_bos: u64, ttl: u64) -> u32 {
    let word = (label << 12) | (exp << 9) | (s_bos << 8) | ttl;
    word as u32
}

/// The vport number under which DR names the e-switch manager of an ECPF.
pub(crate) const ECPF_PORT: u16 = 0xfffe;

/// The gvmi of the vport that `source_port` names, from the vport table (keyed by the
/// e-switch manager's gvmi, as DR keys it). On an ECPF the ECPF port number stands for
/// the e-switch manager itself, whose gvmi is its vhca's. A port the table does not
/// know fails the rule, as DR's failed vport query does.
pub(crate) fn source_port_gvmi(caps: &Caps, source_port: u16) -> Result<u16, BuildError> {
    if source_port == ECPF_PORT && caps.is_ecpf {
        return Ok(caps.esw_manager_vhca_gvmi);
    }
    caps.vport(caps.esw_manager_vhca_gvmi, source_port)
        .map(|v| v.vport_gvmi)
        .ok_or(BuildError::UnknownVport { vport: source_port })
}
