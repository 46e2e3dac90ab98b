//! STE v1 (ConnectX-6 Dx) lookup builders; v2 (ConnectX-7) uses them unchanged.
//!
//! Every non-definer v1 lookup is a legacy hash-table lookup with a 16-byte tag. Most of
//! them encode a matcher's mask exactly the way they encode a rule's value (the bit mask
//! is "the tag of the mask"); the few that differ override [`Lookup::mask`]. The
//! builders live in submodules by header layer; this module holds the lookup-type
//! numbers and the glue that turns a [`Lookup`] into an init and a tag function.

mod flex;
mod l2;
mod l3l4;
mod meta;
mod tunnel;

use super::steps::Step;
use super::{finish_legacy, BuildError, BuilderKind, InitFn, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;

pub mod lu {
    //! Each constant is named after rdma-core's `DR_STE_V1_LU_TYPE_*` value it equals.
    #![allow(missing_docs)]

    pub const ETHL2_TNL: u16 = 0x0002;
    pub const ETHL2_O: u16 = 0x0003;
    pub const ETHL2_I: u16 = 0x0004;
    pub const SRC_QP_GVMI: u16 = 0x0104;
    pub const ETHL2_SRC_O: u16 = 0x0005;
    pub const ETHL2_SRC_I: u16 = 0x0006;
    pub const ETHL3_IPV4_5_TUPLE_O: u16 = 0x0007;
    pub const IPV6_DES_O: u16 = 0x0107;
    pub const ETHL3_IPV4_5_TUPLE_I: u16 = 0x0008;
    pub const IPV6_DES_I: u16 = 0x0108;
    pub const ETHL4_O: u16 = 0x0009;
    pub const IPV6_SRC_O: u16 = 0x0109;
    pub const ETHL4_I: u16 = 0x000a;
    pub const IPV6_SRC_I: u16 = 0x010a;
    pub const ETHL2_SRC_DST_O: u16 = 0x000b;
    pub const MPLS_O: u16 = 0x010b;
    pub const ETHL2_SRC_DST_I: u16 = 0x000c;
    pub const MPLS_I: u16 = 0x010c;
    pub const ETHL3_IPV4_MISC_O: u16 = 0x000d;
    pub const GRE: u16 = 0x010d;
    pub const FLEX_PARSER_TNL_HEADER: u16 = 0x000e;
    pub const GENERAL_PURPOSE: u16 = 0x010e;
    pub const ETHL3_IPV4_MISC_I: u16 = 0x000f;
    pub const STEERING_REGISTERS_0: u16 = 0x010f;
    pub const STEERING_REGISTERS_1: u16 = 0x0110;
    pub const FLEX_PARSER_OK: u16 = 0x0011;
    pub const FLEX_PARSER_0: u16 = 0x0111;
    pub const FLEX_PARSER_1: u16 = 0x0112;
    pub const ETHL4_MISC_O: u16 = 0x0113;
    pub const TNL_HEADER: u16 = 0x0117;
}

/// The outer or inner flavour of a header lookup type.
fn sided(sb: &SteBuild, outer: u16, inner: u16) -> u16 {
    if sb.inner {
        inner
    } else {
        outer
    }
}

/// A parameter's outer or inner header section together with its misc section.
fn headers_and_misc(p: &mut MatchParam, inner: bool) -> (&mut [u8; 64], &mut [u8; 64]) {
    let MatchParam {
        outer,
        misc,
        inner: inner_headers,
        ..
    } = p;
    (if inner { inner_headers } else { outer }, misc)
}

/// The 16 bytes a legacy lookup writes: its tag, or its bit mask.
type Tag = [u8; 16];

/// One v1 legacy lookup: how it picks its lookup type and how it encodes a match
/// parameter into a tag.
trait Lookup {
    /// The lookup type, known before anything is encoded (the flex-parser lookups read
    /// it back while encoding).
    fn lu_type(sb: &SteBuild, caps: &Caps) -> u16;

    /// The value encoding as steps, for a lookup whose [`Lookup::tag`] is exactly
    /// running them (on the inner headers when `inner`); `None` for the others.
    fn steps(_inner: bool) -> Option<&'static [Step]> {
        None
    }

    /// Moves a rule value's fields into `tag`, consuming what it encodes.
    fn tag(
        sb: &SteBuild,
        value: &mut MatchParam,
        caps: &Caps,
        tag: &mut Tag,
    ) -> Result<(), BuildError>;

    /// Moves a matcher mask's fields into `bit_mask`, consuming what it covers. By default
    /// the mask is encoded like a value; every lookup that keeps this default has an
    /// infallible tag encoding, so there is no error to lose.
    fn mask(sb: &SteBuild, mask: &mut MatchParam, caps: &Caps, bit_mask: &mut Tag) {
        let _ = Self::tag(sb, mask, caps, bit_mask);
    }
}

/// The init function of a [`Lookup`].
fn init<L: Lookup>(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = L::lu_type(sb, caps);
    sb.lu_type = lu_type;
    let mut bit_mask = [0u8; 16];
    L::mask(sb, mask, caps, &mut bit_mask);
    sb.bit_mask = bit_mask;
    finish_legacy(sb, lu_type, tag::<L>);
    sb.steps = L::steps(sb.inner);
    Ok(())
}

/// The tag function of a [`Lookup`]. Encodes into a copy of the caller's first 16 bytes
/// so that a short buffer is filled as far as it goes instead of panicking.
fn tag<L: Lookup>(
    sb: &SteBuild,
    value: &mut MatchParam,
    caps: &Caps,
    out: &mut [u8],
) -> Result<(), BuildError> {
    let mut t: Tag = [0; 16];
    let n = out.len().min(t.len());
    t[..n].copy_from_slice(&out[..n]);
    L::tag(sb, value, caps, &mut t)?;
    out[..n].copy_from_slice(&t[..n]);
    Ok(())
}

/// The init function of `kind` in v1/v2, or `None` when there is no such lookup.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    use BuilderKind as K;
    let f: InitFn = match kind {
        K::EmptyAlwaysHit => super::init_empty_always_hit,
        K::EthL2SrcDst => init::<l2::EthL2SrcDst>,
        K::EthL2Src => init::<l2::EthL2Src>,
        K::EthL2Dst => init::<l2::EthL2Dst>,
        K::EthL2Tnl => init::<l2::EthL2Tnl>,
        K::EthL3Ipv6Dst => init::<l3l4::EthL3Ipv6Dst>,
        K::EthL3Ipv6Src => init::<l3l4::EthL3Ipv6Src>,
        K::EthL3Ipv4_5Tuple => init::<l3l4::EthL3Ipv4FiveTuple>,
        K::EthL3Ipv4Misc => init::<l3l4::EthL3Ipv4Misc>,
        K::EthIpv6L3L4 => init::<l3l4::EthIpv6L3L4>,
        K::EthL4Misc => init::<l3l4::EthL4Misc>,
        K::Icmp => init::<l3l4::Icmp>,
        K::Mpls => init::<tunnel::Mpls>,
        K::TnlGre => init::<tunnel::TnlGre>,
        K::TnlVxlanGpe => init::<tunnel::TnlVxlanGpe>,
        K::TnlGeneve => init::<tunnel::TnlGeneve>,
        K::TnlGtpu => init::<tunnel::TnlGtpu>,
        K::TunnelHeader => init::<tunnel::TunnelHeader>,
        K::TnlMplsOverGre => init::<flex::TnlMplsOverGre>,
        K::TnlMplsOverUdp => init::<flex::TnlMplsOverUdp>,
        K::TnlGeneveTlvOpt => init::<flex::TnlGeneveTlvOpt>,
        K::TnlGeneveTlvOptExist => init::<flex::TnlGeneveTlvOptExist>,
        K::TnlGtpuFlexParser0 => init::<flex::TnlGtpuFlexParser0>,
        K::TnlGtpuFlexParser1 => init::<flex::TnlGtpuFlexParser1>,
        K::FlexParser0 => init::<flex::FlexParser0>,
        K::FlexParser1 => init::<flex::FlexParser1>,
        K::GeneralPurpose => init::<meta::GeneralPurpose>,
        K::Register0 => init::<meta::Register0>,
        K::Register1 => init::<meta::Register1>,
        K::SrcGvmiQpn => init::<meta::SrcGvmiQpn>,
        _ => return super::definers::init_fn(kind),
    };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VportCap;
    use crate::match_param::Section;
    use crate::prm::{
        dr_match_set_misc as misc, dr_match_set_misc4 as misc4, dr_match_spec as spec,
    };
    use crate::ste::SteFormat;

    fn build(kind: BuilderKind, mask: &MatchParam, caps: &Caps) -> SteBuild {
        SteBuild::new(SteFormat::V1, kind, false, true, &mut mask.clone(), caps).unwrap()
    }

    #[test]
    fn ip_version_other_than_4_or_6_fails_the_tag() {
        let mut mask = MatchParam::default();
        mask.set(Section::Outer, spec::IP_VERSION, 4);
        let sb = build(BuilderKind::EthL2SrcDst, &mask, &Caps::default());
        assert_eq!(
            sb.bit_mask[11] & 0x30,
            0x30,
            "l3_type is all ones in the mask"
        );
        let mut value = MatchParam::default();
        value.set(Section::Outer, spec::IP_VERSION, 5);
        let mut tag = [0u8; 16];
        assert!(matches!(
            sb.tag(&mut value, &Caps::default(), &mut tag),
            Err(BuildError::Unsupported { .. })
        ));
    }

    #[test]
    fn unknown_source_port_fails_the_tag() {
        let caps = Caps {
            esw_manager_vhca_gvmi: 7,
            vports: vec![VportCap {
                vport_num: 1,
                vport_gvmi: 17,
                vhca_gvmi: 7,
                ..VportCap::default()
            }],
            ..Caps::default()
        };
        let mut mask = MatchParam::default();
        mask.set(Section::Misc, misc::SOURCE_PORT, 0xffff);
        let sb = build(BuilderKind::SrcGvmiQpn, &mask, &caps);
        let mut value = MatchParam::default();
        value.set(Section::Misc, misc::SOURCE_PORT, 1);
        let mut tag = [0u8; 16];
        sb.tag(&mut value.clone(), &caps, &mut tag).unwrap();
        assert_eq!(tag[2..4], [0, 17]);
        value.set(Section::Misc, misc::SOURCE_PORT, 2);
        assert_eq!(
            sb.tag(&mut value, &caps, &mut tag),
            Err(BuildError::UnknownVport { vport: 2 })
        );
    }

    #[test]
    fn first_sample_slot_claims_its_parser() {
        // Slot 0 is unused (id 0, value 0) and claims parser 0, so slot 1's parser-0
        // sample is left over.
        let mut mask = MatchParam::default();
        mask.set(
            Section::Misc4,
            misc4::PROG_SAMPLE_FIELD_VALUE_1,
            0xffff_ffff,
        );
        let mut left = mask.clone();
        let sb = SteBuild::new(
            SteFormat::V1,
            BuilderKind::FlexParser0,
            false,
            true,
            &mut left,
            &Caps::default(),
        )
        .unwrap();
        assert_eq!(sb.bit_mask, [0; 16]);
        assert_eq!(left, mask);
    }

    #[test]
    fn short_tag_buffer_does_not_panic() {
        let mut mask = MatchParam::default();
        mask.set(Section::Outer, spec::DST_IP_31_0, 0xffff_ffff);
        let sb = build(BuilderKind::EthL3Ipv6Dst, &mask, &Caps::default());
        let mut value = mask.clone();
        let mut tag = [0u8; 4];
        sb.tag(&mut value, &Caps::default(), &mut tag).unwrap();
        assert_eq!(tag, [0; 4]);
    }
}
