//! v0 L2 lookups: MAC addresses, VLANs, L3 type and the L2 tunnelling lookup.

use super::{lu, spec_and_misc};
use crate::bits::{self, BitField};
use crate::builder::common::{mask_vlan_qualifier, put_l3_type, put_vlan_qualifier};
use crate::builder::{finish_legacy, put, put_ones, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{dr_match_set_misc as misc, dr_match_spec as spec};
use crate::prm::{ste_eth_l2_dst as l2_dst, ste_eth_l2_src as l2_src};
use crate::prm::{ste_eth_l2_src_dst as src_dst, ste_eth_l2_tnl as tnl};

// ---- eth_l2_src_dst ------------------------------------------------------------------

/// Splits a non-zero source MAC over the `smac_47_32`/`smac_31_0` fields of the
/// source-and-destination lookup, which cut the address at a different place than the
/// match parameter does.
fn put_split_smac(out: &mut [u8], spec_sec: &mut [u8]) {
    let high = bits::take(spec_sec, spec::SMAC_47_16);
    let low = bits::take(spec_sec, spec::SMAC_15_0);
    if high != 0 || low != 0 {
        bits::set(out, src_dst::SMAC_47_32, high >> 16);
        bits::set(out, src_dst::SMAC_31_0, (high << 16) | low);
    }
}

/// The fields the mask and the tag of `eth_l2_src_dst` encode alike.
fn put_src_dst_common(out: &mut [u8], spec_sec: &mut [u8]) {
    put(out, src_dst::DMAC_47_16, spec_sec, spec::DMAC_47_16);
    put(out, src_dst::DMAC_15_0, spec_sec, spec::DMAC_15_0);
    put_split_smac(out, spec_sec);
}

fn put_src_dst_first_vlan(out: &mut [u8], spec_sec: &mut [u8]) {
    put(out, src_dst::FIRST_VLAN_ID, spec_sec, spec::FIRST_VID);
    put(out, src_dst::FIRST_CFI, spec_sec, spec::FIRST_CFI);
    put(out, src_dst::FIRST_PRIORITY, spec_sec, spec::FIRST_PRIO);
}

/// Source and destination MAC, first VLAN and L3 type (`eth_l2_src_dst`).
pub(super) fn init_eth_l2_src_dst(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    let m = mask.spec_mut(sb.inner);
    let bm = &mut sb.bit_mask;
    put_src_dst_common(bm, m);
    put_src_dst_first_vlan(bm, m);
    put_ones(bm, src_dst::L3_TYPE, m, spec::IP_VERSION);
    mask_vlan_qualifier(
        bm,
        src_dst::FIRST_VLAN_QUALIFIER,
        m,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    let lu_type = lu::ETHL2_SRC_DST.pick(sb.rx, sb.inner);
    finish_legacy(sb, lu_type, tag_eth_l2_src_dst);
    Ok(())
}

fn tag_eth_l2_src_dst(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = value.spec_mut(sb.inner);
    put_src_dst_common(tag, v);
    put_l3_type(tag, src_dst::L3_TYPE, v, sb.kind)?;
    put_src_dst_first_vlan(tag, v);
    put_vlan_qualifier(
        tag,
        src_dst::FIRST_VLAN_QUALIFIER,
        v,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    Ok(())
}

// ---- eth_l2_src / eth_l2_dst ---------------------------------------------------------

// The source and destination lookups share everything but the address; their layouts
// put the other fields at the same offsets, so the `ste_eth_l2_src` fields serve both.

/// The misc fields of the second VLAN on the chosen side.
struct SecondVlan {
    cvlan: BitField,
    svlan: BitField,
    vid: BitField,
    cfi: BitField,
    prio: BitField,
}

const SECOND_VLAN_OUTER: SecondVlan = SecondVlan {
    cvlan: misc::OUTER_SECOND_CVLAN_TAG,
    svlan: misc::OUTER_SECOND_SVLAN_TAG,
    vid: misc::OUTER_SECOND_VID,
    cfi: misc::OUTER_SECOND_CFI,
    prio: misc::OUTER_SECOND_PRIO,
};

const SECOND_VLAN_INNER: SecondVlan = SecondVlan {
    cvlan: misc::INNER_SECOND_CVLAN_TAG,
    svlan: misc::INNER_SECOND_SVLAN_TAG,
    vid: misc::INNER_SECOND_VID,
    cfi: misc::INNER_SECOND_CFI,
    prio: misc::INNER_SECOND_PRIO,
};

fn second_vlan(inner: bool) -> &'static SecondVlan {
    if inner {
        &SECOND_VLAN_INNER
    } else {
        &SECOND_VLAN_OUTER
    }
}

fn put_second_vlan_fields(out: &mut [u8], misc_sec: &mut [u8], f: &SecondVlan) {
    put(out, l2_src::SECOND_VLAN_ID, misc_sec, f.vid);
    put(out, l2_src::SECOND_CFI, misc_sec, f.cfi);
    put(out, l2_src::SECOND_PRIORITY, misc_sec, f.prio);
}

/// The copied fields of the header part shared by `eth_l2_src` and `eth_l2_dst`.
fn put_src_or_dst_header(out: &mut [u8], spec_sec: &mut [u8]) {
    put(out, l2_src::FIRST_VLAN_ID, spec_sec, spec::FIRST_VID);
    put(out, l2_src::FIRST_CFI, spec_sec, spec::FIRST_CFI);
    put(out, l2_src::FIRST_PRIORITY, spec_sec, spec::FIRST_PRIO);
    put(out, l2_src::IP_FRAGMENTED, spec_sec, spec::FRAG);
    put(out, l2_src::L3_ETHERTYPE, spec_sec, spec::ETHERTYPE);
}

/// The bit mask of the part shared by `eth_l2_src` and `eth_l2_dst`.
fn src_or_dst_bit_mask(bm: &mut [u8], mask: &mut MatchParam, inner: bool) {
    let (m, misc_sec) = spec_and_misc(mask, inner);
    put_src_or_dst_header(bm, m);
    put_ones(bm, l2_src::L3_TYPE, m, spec::IP_VERSION);
    mask_vlan_qualifier(
        bm,
        l2_src::FIRST_VLAN_QUALIFIER,
        m,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    let f = second_vlan(inner);
    mask_vlan_qualifier(
        bm,
        l2_src::SECOND_VLAN_QUALIFIER,
        misc_sec,
        f.cvlan,
        f.svlan,
    );
    put_second_vlan_fields(bm, misc_sec, f);
}

/// The tag of the part shared by `eth_l2_src` and `eth_l2_dst`.
fn src_or_dst_tag(sb: &SteBuild, value: &mut MatchParam, tag: &mut [u8]) -> Result<(), BuildError> {
    let (v, misc_sec) = spec_and_misc(value, sb.inner);
    put_src_or_dst_header(tag, v);
    put_l3_type(tag, l2_src::L3_TYPE, v, sb.kind)?;
    put_vlan_qualifier(
        tag,
        l2_src::FIRST_VLAN_QUALIFIER,
        v,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    let f = second_vlan(sb.inner);
    put_vlan_qualifier(
        tag,
        l2_src::SECOND_VLAN_QUALIFIER,
        misc_sec,
        f.cvlan,
        f.svlan,
    );
    put_second_vlan_fields(tag, misc_sec, f);
    Ok(())
}

fn put_smac(out: &mut [u8], spec_sec: &mut [u8]) {
    put(out, l2_src::SMAC_47_16, spec_sec, spec::SMAC_47_16);
    put(out, l2_src::SMAC_15_0, spec_sec, spec::SMAC_15_0);
}

fn put_dmac(out: &mut [u8], spec_sec: &mut [u8]) {
    put(out, l2_dst::DMAC_47_16, spec_sec, spec::DMAC_47_16);
    put(out, l2_dst::DMAC_15_0, spec_sec, spec::DMAC_15_0);
}

/// Source MAC with both VLANs, fragment bit, ethertype and L3 type (`eth_l2_src`).
pub(super) fn init_eth_l2_src(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    put_smac(&mut sb.bit_mask, mask.spec_mut(sb.inner));
    src_or_dst_bit_mask(&mut sb.bit_mask, mask, sb.inner);
    let lu_type = lu::ETHL2_SRC.pick(sb.rx, sb.inner);
    finish_legacy(sb, lu_type, tag_eth_l2_src);
    Ok(())
}

fn tag_eth_l2_src(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_smac(tag, value.spec_mut(sb.inner));
    src_or_dst_tag(sb, value, tag)
}

/// Destination MAC with both VLANs, fragment bit, ethertype and L3 type (`eth_l2_dst`).
pub(super) fn init_eth_l2_dst(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    put_dmac(&mut sb.bit_mask, mask.spec_mut(sb.inner));
    src_or_dst_bit_mask(&mut sb.bit_mask, mask, sb.inner);
    let lu_type = lu::ETHL2_DST.pick(sb.rx, sb.inner);
    finish_legacy(sb, lu_type, tag_eth_l2_dst);
    Ok(())
}

fn tag_eth_l2_dst(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    put_dmac(tag, value.spec_mut(sb.inner));
    src_or_dst_tag(sb, value, tag)
}

// ---- eth_l2_tnl ----------------------------------------------------------------------

/// The copied fields of `eth_l2_tnl`, plus the VXLAN VNI, which the lookup holds in the
/// top three bytes of its tunnelling network id.
fn put_tnl_fields(out: &mut [u8], spec_sec: &mut [u8], misc_sec: &mut [u8]) {
    put(out, tnl::DMAC_47_16, spec_sec, spec::DMAC_47_16);
    put(out, tnl::DMAC_15_0, spec_sec, spec::DMAC_15_0);
    put(out, tnl::FIRST_VLAN_ID, spec_sec, spec::FIRST_VID);
    put(out, tnl::FIRST_CFI, spec_sec, spec::FIRST_CFI);
    put(out, tnl::FIRST_PRIORITY, spec_sec, spec::FIRST_PRIO);
    put(out, tnl::IP_FRAGMENTED, spec_sec, spec::FRAG);
    put(out, tnl::L3_ETHERTYPE, spec_sec, spec::ETHERTYPE);
    let vni = bits::take(misc_sec, misc::VXLAN_VNI);
    if vni != 0 {
        bits::set(out, tnl::L2_TUNNELING_NETWORK_ID, vni << 8);
    }
}

/// Inner destination MAC, first VLAN, L3 type and the VXLAN VNI (`eth_l2_tnl`). There is
/// only an inner variant of this lookup, whatever the builder's position.
pub(super) fn init_eth_l2_tnl(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    let (m, misc_sec) = spec_and_misc(mask, sb.inner);
    let bm = &mut sb.bit_mask;
    put_tnl_fields(bm, m, misc_sec);
    put_ones(bm, tnl::L3_TYPE, m, spec::IP_VERSION);
    mask_vlan_qualifier(
        bm,
        tnl::FIRST_VLAN_QUALIFIER,
        m,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    finish_legacy(sb, lu::ETHL2_TUNNELING_I, tag_eth_l2_tnl);
    Ok(())
}

fn tag_eth_l2_tnl(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let (v, misc_sec) = spec_and_misc(value, sb.inner);
    put_tnl_fields(tag, v, misc_sec);
    put_vlan_qualifier(
        tag,
        tnl::FIRST_VLAN_QUALIFIER,
        v,
        spec::CVLAN_TAG,
        spec::SVLAN_TAG,
    );
    put_l3_type(tag, tnl::L3_TYPE, v, sb.kind)?;
    Ok(())
}
