//! Layer-2 lookups: MAC addresses, VLANs, ethertype and the tunnel network id.
//!
//! These are the lookups whose mask encoding differs from their value encoding: a mask's
//! `ip_version` (4 or 6) and VLAN tag bits only say "the L3 type / VLAN qualifier
//! matters", so they set the whole qualifier field, while a value's are translated into
//! the hardware's codes.

use super::{headers_and_misc, lu, sided, Lookup, Tag};
use crate::bits::{self, BitField};
use crate::builder::common::mask_vlan_qualifier;
use crate::builder::steps::{self, headers, Step};
use crate::builder::{put, put_ones, put_val, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::{MatchParam, Section};
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
    const fn of(inner: bool) -> SecondVlan {
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

    fn steps(inner: bool) -> Option<&'static [Step]> {
        Some(&SRC_DST_STEPS[usize::from(inner)])
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        steps::run(&SRC_DST_STEPS[usize::from(sb.inner)], sb.kind, value, tag)
    }
}

/// The `eth_l2_src_dst` value encoding of the outer and the inner headers.
static SRC_DST_STEPS: [[Step; 9]; 2] = [src_dst_steps(false), src_dst_steps(true)];

const fn src_dst_steps(inner: bool) -> [Step; 9] {
    let h = headers(inner);
    [
        Step::put(src_dst::DMAC_47_16, h, spec::DMAC_47_16),
        Step::put(src_dst::DMAC_15_0, h, spec::DMAC_15_0),
        Step::put(src_dst::SMAC_47_16, h, spec::SMAC_47_16),
        Step::put(src_dst::SMAC_15_0, h, spec::SMAC_15_0),
        Step::L3Type {
            dst: src_dst::L3_TYPE,
            section: h,
        },
        Step::put(SRC_DST_VLAN.vlan_id, h, spec::FIRST_VID),
        Step::put(SRC_DST_VLAN.cfi, h, spec::FIRST_CFI),
        Step::put(SRC_DST_VLAN.priority, h, spec::FIRST_PRIO),
        Step::VlanQualifier {
            dst: SRC_DST_VLAN.qualifier,
            section: h,
            cvlan: spec::CVLAN_TAG,
            svlan: spec::SVLAN_TAG,
        },
    ]
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

/// The value encoding of the source-MAC or destination-MAC lookup: the MAC's two
/// fields (`mac`: tag field and header field of the upper 32 bits, then of the lower
/// 16), then what the two share (see [`mask_l2_common`]), in the order rdma-core
/// writes them.
const fn l2_steps(mac: [(BitField, BitField); 2], inner: bool) -> [Step; 13] {
    let h = headers(inner);
    let second = SecondVlan::of(inner);
    [
        Step::put(mac[0].0, h, mac[0].1),
        Step::put(mac[1].0, h, mac[1].1),
        Step::put(SRC_VLAN.vlan_id, h, spec::FIRST_VID),
        Step::put(SRC_VLAN.cfi, h, spec::FIRST_CFI),
        Step::put(SRC_VLAN.priority, h, spec::FIRST_PRIO),
        Step::put(src::IP_FRAGMENTED, h, spec::FRAG),
        Step::put(src::L3_ETHERTYPE, h, spec::ETHERTYPE),
        Step::L3Type {
            dst: src::L3_TYPE,
            section: h,
        },
        Step::VlanQualifier {
            dst: SRC_VLAN.qualifier,
            section: h,
            cvlan: spec::CVLAN_TAG,
            svlan: spec::SVLAN_TAG,
        },
        Step::VlanQualifier {
            dst: src::SECOND_VLAN_QUALIFIER,
            section: Section::Misc,
            cvlan: second.cvlan_tag,
            svlan: second.svlan_tag,
        },
        Step::put(src::SECOND_VLAN_ID, Section::Misc, second.vid),
        Step::put(src::SECOND_CFI, Section::Misc, second.cfi),
        Step::put(src::SECOND_PRIORITY, Section::Misc, second.prio),
    ]
}

const SRC_MAC: [(BitField, BitField); 2] = [
    (src::SMAC_47_16, spec::SMAC_47_16),
    (src::SMAC_15_0, spec::SMAC_15_0),
];

const DST_MAC: [(BitField, BitField); 2] = [
    (dst::DMAC_47_16, spec::DMAC_47_16),
    (dst::DMAC_15_0, spec::DMAC_15_0),
];

/// The `eth_l2_src` value encoding of the outer and the inner headers.
static SRC_STEPS: [[Step; 13]; 2] = [l2_steps(SRC_MAC, false), l2_steps(SRC_MAC, true)];

/// The `eth_l2_dst` value encoding of the outer and the inner headers.
static DST_STEPS: [[Step; 13]; 2] = [l2_steps(DST_MAC, false), l2_steps(DST_MAC, true)];

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

    fn steps(inner: bool) -> Option<&'static [Step]> {
        Some(&SRC_STEPS[usize::from(inner)])
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        steps::run(&SRC_STEPS[usize::from(sb.inner)], sb.kind, value, tag)
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

    fn steps(inner: bool) -> Option<&'static [Step]> {
        Some(&DST_STEPS[usize::from(inner)])
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        steps::run(&DST_STEPS[usize::from(sb.inner)], sb.kind, value, tag)
    }
}

/// VXLAN VNI as the tunnel network id, with the (inner) destination MAC, first VLAN,
/// ethertype and L3 type (`eth_l2_tnl`). One lookup type serves both sides.
pub(super) struct EthL2Tnl;

impl EthL2Tnl {
    /// The fields whose mask and value encodings agree (as the mask encodes them; values
    /// go through [`TNL_STEPS`]).
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

    fn steps(inner: bool) -> Option<&'static [Step]> {
        Some(&TNL_STEPS[usize::from(inner)])
    }

    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        _: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError> {
        steps::run(&TNL_STEPS[usize::from(sb.inner)], sb.kind, value, tag)
    }
}

/// The `eth_l2_tnl` value encoding of the outer and the inner headers, in the order of
/// [`EthL2Tnl::put_plain`], then the VLAN qualifier and the L3 type.
static TNL_STEPS: [[Step; 10]; 2] = [tnl_steps(false), tnl_steps(true)];

const fn tnl_steps(inner: bool) -> [Step; 10] {
    let h = headers(inner);
    [
        Step::put(tnl::DMAC_47_16, h, spec::DMAC_47_16),
        Step::put(tnl::DMAC_15_0, h, spec::DMAC_15_0),
        Step::put(TNL_VLAN.vlan_id, h, spec::FIRST_VID),
        Step::put(TNL_VLAN.cfi, h, spec::FIRST_CFI),
        Step::put(TNL_VLAN.priority, h, spec::FIRST_PRIO),
        Step::put(tnl::IP_FRAGMENTED, h, spec::FRAG),
        Step::put(tnl::L3_ETHERTYPE, h, spec::ETHERTYPE),
        // The 24-bit VNI into the upper bits of the network id (`put_plain` writes it
        // shifted by the reserved byte); the tag's low byte stays zero.
        Step::put(
            BitField::new(tnl::L2_TUNNELING_NETWORK_ID.offset, 24),
            Section::Misc,
            misc::VXLAN_VNI,
        ),
        Step::VlanQualifier {
            dst: TNL_VLAN.qualifier,
            section: h,
            cvlan: spec::CVLAN_TAG,
            svlan: spec::SVLAN_TAG,
        },
        Step::L3Type {
            dst: tnl::L3_TYPE,
            section: h,
        },
    ]
}
