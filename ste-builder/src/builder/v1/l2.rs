//! Layer-2 lookups: MAC addresses, VLANs, ethertype and the tunnel network id.
//!
//! These are the lookups whose mask encoding differs from their value encoding: a mask's
//! `ip_version` (4 or 6) and VLAN tag bits only say "the L3 type / VLAN qualifier
//! matters", so they set the whole qualifier field, while a value's are translated into
//! the hardware's codes.

use super::{headers_and_misc, lu, sided, Lookup, Tag};
use crate::bits::{self, BitField};
use crate::builder::common::{mask_vlan_qualifier, put_l3_type, put_vlan_qualifier};
use crate::builder::{put, put_ones, put_val, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_spec as spec, ste_eth_l2_dst_v1 as dst,
    ste_eth_l2_src_dst_v1 as src_dst, ste_eth_l2_src_v1 as src, ste_eth_l2_tnl_v1 as tnl,
};

/// Where a lookup keeps the first VLAN header and the L3 type.
struct FirstVlan {
    vlan_id: BitField,
    cfi: BitField,
    priority: BitField,
    qualifier: BitField,
}

const SRC_DST_VLAN: FirstVlan = FirstVlan {
    vlan_id: src_dst::FIRST_VLAN_ID,
    cfi: src_dst::FIRST_CFI,
    priority: src_dst::FIRST_PRIORITY,
    qualifier: src_dst::FIRST_VLAN_QUALIFIER,
};

const SRC_VLAN: FirstVlan = FirstVlan {
    vlan_id: src::FIRST_VLAN_ID,
    cfi: src::FIRST_CFI,
    priority: src::FIRST_PRIORITY,
    qualifier: src::FIRST_VLAN_QUALIFIER,
};

const TNL_VLAN: FirstVlan = FirstVlan {
    vlan_id: tnl::FIRST_VLAN_ID,
    cfi: tnl::FIRST_CFI,
    priority: tnl::FIRST_PRIORITY,
    qualifier: tnl::FIRST_VLAN_QUALIFIER,
};

impl FirstVlan {
    /// The VLAN id, CFI and priority: the same encoding for masks and values.
    fn put_header(&self, out: &mut Tag, headers: &mut [u8]) {
        put(out, self.vlan_id, headers, spec::FIRST_VID);
        put(out, self.cfi, headers, spec::FIRST_CFI);
        put(out, self.priority, headers, spec::FIRST_PRIO);
    }

    fn mask_qualifier(&self, bit_mask: &mut Tag, headers: &mut [u8]) {
        mask_vlan_qualifier(
            bit_mask,
            self.qualifier,
            headers,
            spec::CVLAN_TAG,
            spec::SVLAN_TAG,
        );
    }

    fn put_qualifier(&self, tag: &mut Tag, headers: &mut [u8]) {
        put_vlan_qualifier(
            tag,
            self.qualifier,
            headers,
            spec::CVLAN_TAG,
            spec::SVLAN_TAG,
        );
    }
}

/// The misc fields of the second (inner-most of a QinQ pair) VLAN header on one side.
struct SecondVlan {
    cvlan_tag: BitField,
    svlan_tag: BitField,
    vid: BitField,
    cfi: BitField,
    prio: BitField,
}

impl SecondVlan {
    fn of(inner: bool) -> SecondVlan {
        if inner {
            SecondVlan {
                cvlan_tag: misc::INNER_SECOND_CVLAN_TAG,
                svlan_tag: misc::INNER_SECOND_SVLAN_TAG,
                vid: misc::INNER_SECOND_VID,
                cfi: misc::INNER_SECOND_CFI,
                prio: misc::INNER_SECOND_PRIO,
            }
        } else {
            SecondVlan {
                cvlan_tag: misc::OUTER_SECOND_CVLAN_TAG,
                svlan_tag: misc::OUTER_SECOND_SVLAN_TAG,
                vid: misc::OUTER_SECOND_VID,
                cfi: misc::OUTER_SECOND_CFI,
                prio: misc::OUTER_SECOND_PRIO,
            }
        }
    }

    fn put_header(&self, out: &mut Tag, misc: &mut [u8]) {
        put(out, src::SECOND_VLAN_ID, misc, self.vid);
        put(out, src::SECOND_CFI, misc, self.cfi);
        put(out, src::SECOND_PRIORITY, misc, self.prio);
    }
}

/// Source and destination MAC, first VLAN and L3 type (`eth_l2_src_dst`).
pub(super) struct EthL2SrcDst;

impl EthL2SrcDst {
    fn put_macs(out: &mut Tag, headers: &mut [u8]) {
        put(out, src_dst::DMAC_47_16, headers, spec::DMAC_47_16);
        put(out, src_dst::DMAC_15_0, headers, spec::DMAC_15_0);
        put(out, src_dst::SMAC_47_16, headers, spec::SMAC_47_16);
        put(out, src_dst::SMAC_15_0, headers, spec::SMAC_15_0);
    }
}

impl Lookup for EthL2SrcDst {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL2_SRC_DST_O, lu::ETHL2_SRC_DST_I)
    }

    fn mask(sb: &SteBuild, mask: &mut MatchParam, _: &Caps, bit_mask: &mut Tag) {
        let headers = mask.spec_mut(sb.inner);
        Self::put_macs(bit_mask, headers);
        SRC_DST_VLAN.put_header(bit_mask, headers);
        put_ones(bit_mask, src_dst::L3_TYPE, headers, spec::IP_VERSION);
        SRC_DST_VLAN.mask_qualifier(bit_mask, headers);
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        let headers = value.spec_mut(sb.inner);
        Self::put_macs(tag, headers);
        put_l3_type(tag, src_dst::L3_TYPE, headers, sb.kind)?;
        SRC_DST_VLAN.put_header(tag, headers);
        SRC_DST_VLAN.put_qualifier(tag, headers);
        Ok(())
    }
}

/// What the source-MAC and destination-MAC lookups share: both VLAN headers, IP
/// fragmentation, ethertype and L3 type. The two layouts agree on these fields.
fn mask_l2_common(sb: &SteBuild, mask: &mut MatchParam, bit_mask: &mut Tag) {
    let (headers, misc) = headers_and_misc(mask, sb.inner);
    SRC_VLAN.put_header(bit_mask, headers);
    put(bit_mask, src::IP_FRAGMENTED, headers, spec::FRAG);
    put(bit_mask, src::L3_ETHERTYPE, headers, spec::ETHERTYPE);
    put_ones(bit_mask, src::L3_TYPE, headers, spec::IP_VERSION);
    SRC_VLAN.mask_qualifier(bit_mask, headers);

    let second = SecondVlan::of(sb.inner);
    mask_vlan_qualifier(
        bit_mask,
        src::SECOND_VLAN_QUALIFIER,
        misc,
        second.cvlan_tag,
        second.svlan_tag,
    );
    second.put_header(bit_mask, misc);
}

fn tag_l2_common(sb: &SteBuild, value: &mut MatchParam, tag: &mut Tag) -> Result<(), BuildError> {
    let (headers, misc) = headers_and_misc(value, sb.inner);
    SRC_VLAN.put_header(tag, headers);
    put(tag, src::IP_FRAGMENTED, headers, spec::FRAG);
    put(tag, src::L3_ETHERTYPE, headers, spec::ETHERTYPE);
    put_l3_type(tag, src::L3_TYPE, headers, sb.kind)?;
    SRC_VLAN.put_qualifier(tag, headers);

    let second = SecondVlan::of(sb.inner);
    put_vlan_qualifier(
        tag,
        src::SECOND_VLAN_QUALIFIER,
        misc,
        second.cvlan_tag,
        second.svlan_tag,
    );
    second.put_header(tag, misc);
    Ok(())
}

/// Source MAC with VLANs, ethertype and L2/L3 types (`eth_l2_src`).
pub(super) struct EthL2Src;

impl EthL2Src {
    fn put_mac(out: &mut Tag, p: &mut MatchParam, inner: bool) {
        let headers = p.spec_mut(inner);
        put(out, src::SMAC_47_16, headers, spec::SMAC_47_16);
        put(out, src::SMAC_15_0, headers, spec::SMAC_15_0);
    }
}

impl Lookup for EthL2Src {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL2_SRC_O, lu::ETHL2_SRC_I)
    }

    fn mask(sb: &SteBuild, mask: &mut MatchParam, _: &Caps, bit_mask: &mut Tag) {
        Self::put_mac(bit_mask, mask, sb.inner);
        mask_l2_common(sb, mask, bit_mask);
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        Self::put_mac(tag, value, sb.inner);
        tag_l2_common(sb, value, tag)
    }
}

/// Destination MAC with VLANs, ethertype and L2/L3 types (`eth_l2_dst`).
pub(super) struct EthL2Dst;

impl EthL2Dst {
    fn put_mac(out: &mut Tag, p: &mut MatchParam, inner: bool) {
        let headers = p.spec_mut(inner);
        put(out, dst::DMAC_47_16, headers, spec::DMAC_47_16);
        put(out, dst::DMAC_15_0, headers, spec::DMAC_15_0);
    }
}

impl Lookup for EthL2Dst {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL2_O, lu::ETHL2_I)
    }

    fn mask(sb: &SteBuild, mask: &mut MatchParam, _: &Caps, bit_mask: &mut Tag) {
        Self::put_mac(bit_mask, mask, sb.inner);
        mask_l2_common(sb, mask, bit_mask);
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        Self::put_mac(tag, value, sb.inner);
        tag_l2_common(sb, value, tag)
    }
}

/// VXLAN VNI as the tunnel network id, with the (inner) destination MAC, first VLAN,
/// ethertype and L3 type (`eth_l2_tnl`). One lookup type serves both sides.
pub(super) struct EthL2Tnl;

impl EthL2Tnl {
    /// The fields whose mask and value encodings agree.
    fn put_plain(out: &mut Tag, headers: &mut [u8], misc: &mut [u8]) {
        put(out, tnl::DMAC_47_16, headers, spec::DMAC_47_16);
        put(out, tnl::DMAC_15_0, headers, spec::DMAC_15_0);
        TNL_VLAN.put_header(out, headers);
        put(out, tnl::IP_FRAGMENTED, headers, spec::FRAG);
        put(out, tnl::L3_ETHERTYPE, headers, spec::ETHERTYPE);
        // The network id field is the VNI followed by the reserved byte of the VXLAN
        // header, so the 24-bit VNI sits in its upper bits.
        let vni = bits::get(misc, misc::VXLAN_VNI);
        put_val(
            out,
            tnl::L2_TUNNELING_NETWORK_ID,
            misc,
            misc::VXLAN_VNI,
            vni << 8,
        );
    }
}

impl Lookup for EthL2Tnl {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::ETHL2_TNL
    }

    fn mask(sb: &SteBuild, mask: &mut MatchParam, _: &Caps, bit_mask: &mut Tag) {
        let (headers, misc) = headers_and_misc(mask, sb.inner);
        Self::put_plain(bit_mask, headers, misc);
        put_ones(bit_mask, tnl::L3_TYPE, headers, spec::IP_VERSION);
        TNL_VLAN.mask_qualifier(bit_mask, headers);
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        let (headers, misc) = headers_and_misc(value, sb.inner);
        Self::put_plain(tag, headers, misc);
        TNL_VLAN.put_qualifier(tag, headers);
        put_l3_type(tag, tnl::L3_TYPE, headers, sb.kind)
    }
}
