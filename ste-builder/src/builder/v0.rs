//! STE v0 (ConnectX-5) lookup builders.
//!
//! Every v0 lookup is a legacy one: a 16-byte tag compared under a 16-byte bit mask. Most
//! builders derive the bit mask by running their tag encoder over the matcher's mask
//! (a mask bit set means "this tag bit matters"); the few whose tag encodes values rather
//! than copying bits (L3 type, VLAN qualifier, source vport) have a separate mask encoder.
//!
//! The builders live in submodules by header family; this module holds the lookup-type
//! numbers and the dispatch from [`BuilderKind`].

mod flex;
mod l2;
mod l3_l4;
mod meta;
mod tunnel;

use super::{finish_legacy, BuildError, BuilderKind, InitFn, SteBuild, TagFn};
use crate::caps::Caps;
use crate::match_param::MatchParam;

/// A lookup that exists once per header position: on the outer headers of a TX packet
/// (`_O`), on the outer headers of an RX packet (`_D`), and on the inner headers (`_I`).
#[derive(Debug, Clone, Copy)]
pub struct LuTypes {
    /// Outer headers of a TX packet.
    pub outer: u16,
    /// Outer headers of an RX packet.
    pub rx: u16,
    /// Inner headers.
    pub inner: u16,
}

impl LuTypes {
    /// The lookup type for a builder's position: inner headers take precedence, then the
    /// RX side (`DR_STE_CALC_LU_TYPE`).
    pub fn pick(self, rx: bool, inner: bool) -> u16 {
        if inner {
            self.inner
        } else if rx {
            self.rx
        } else {
            self.outer
        }
    }
}

pub mod lu {
    //! Each constant is named after rdma-core's `DR_STE_V0_LU_TYPE_*` value it equals.
    #![allow(missing_docs)]

    use super::LuTypes;

    pub const SRC_GVMI_AND_QP: u16 = 0x05;
    /// L2 tunnelling exists only as an inner lookup.
    pub const ETHL2_TUNNELING_I: u16 = 0x0a;
    pub const ETHL2_DST: LuTypes = LuTypes {
        outer: 0x06,
        inner: 0x07,
        rx: 0x1b,
    };
    pub const ETHL2_SRC: LuTypes = LuTypes {
        outer: 0x08,
        inner: 0x09,
        rx: 0x1c,
    };
    pub const ETHL2_SRC_DST: LuTypes = LuTypes {
        outer: 0x36,
        inner: 0x37,
        rx: 0x38,
    };
    pub const ETHL3_IPV6_DST: LuTypes = LuTypes {
        outer: 0x0d,
        inner: 0x0e,
        rx: 0x1e,
    };
    pub const ETHL3_IPV6_SRC: LuTypes = LuTypes {
        outer: 0x0f,
        inner: 0x10,
        rx: 0x1f,
    };
    pub const ETHL3_IPV4_5_TUPLE: LuTypes = LuTypes {
        outer: 0x11,
        inner: 0x12,
        rx: 0x20,
    };
    pub const ETHL3_IPV4_MISC: LuTypes = LuTypes {
        outer: 0x29,
        inner: 0x2a,
        rx: 0x2b,
    };
    pub const ETHL4: LuTypes = LuTypes {
        outer: 0x13,
        inner: 0x14,
        rx: 0x21,
    };
    pub const ETHL4_MISC: LuTypes = LuTypes {
        outer: 0x2c,
        inner: 0x2d,
        rx: 0x2e,
    };
    pub const MPLS_FIRST: LuTypes = LuTypes {
        outer: 0x15,
        inner: 0x24,
        rx: 0x25,
    };
    pub const GRE: u16 = 0x16;
    pub const FLEX_PARSER_0: u16 = 0x22;
    pub const FLEX_PARSER_1: u16 = 0x23;
    pub const FLEX_PARSER_TNL_HEADER: u16 = 0x19;
    pub const GENERAL_PURPOSE: u16 = 0x18;
    pub const STEERING_REGISTERS_0: u16 = 0x2f;
    pub const STEERING_REGISTERS_1: u16 = 0x30;
    pub const TUNNEL_HEADER: u16 = 0x34;

    /// True when flex parser `id` sits in the `FLEX_PARSER_0` lookup (else `_1`).
    pub(crate) fn in_flex_parser_0(id: u64) -> bool {
        id <= u64::from(crate::builder::common::MAX_FLEX_PARSER_0_ID)
    }

    /// The flex-parser lookup that holds parser `id` (0..=3 or 4..=7).
    pub(crate) fn flex_parser_of(id: u8) -> u16 {
        if in_flex_parser_0(id.into()) {
            FLEX_PARSER_0
        } else {
            FLEX_PARSER_1
        }
    }
}

/// The init function of `kind` in v0, or `None` when v0 has no such lookup.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    use BuilderKind as K;
    let init: InitFn = match kind {
        K::EmptyAlwaysHit => super::init_empty_always_hit,
        K::EthL2SrcDst => l2::init_eth_l2_src_dst,
        K::EthL2Src => l2::init_eth_l2_src,
        K::EthL2Dst => l2::init_eth_l2_dst,
        K::EthL2Tnl => l2::init_eth_l2_tnl,
        K::EthL3Ipv6Dst => l3_l4::init_eth_l3_ipv6_dst,
        K::EthL3Ipv6Src => l3_l4::init_eth_l3_ipv6_src,
        K::EthL3Ipv4_5Tuple => l3_l4::init_eth_l3_ipv4_5_tuple,
        K::EthL3Ipv4Misc => l3_l4::init_eth_l3_ipv4_misc,
        K::EthIpv6L3L4 => l3_l4::init_eth_ipv6_l3_l4,
        K::EthL4Misc => l3_l4::init_eth_l4_misc,
        K::Mpls => tunnel::init_mpls,
        K::TnlGre => tunnel::init_tnl_gre,
        K::TnlVxlanGpe => tunnel::init_tnl_vxlan_gpe,
        K::TnlGeneve => tunnel::init_tnl_geneve,
        K::TnlGtpu => tunnel::init_tnl_gtpu,
        K::TunnelHeader => tunnel::init_tunnel_header,
        K::TnlMplsOverGre => flex::init_tnl_mpls_over_gre,
        K::TnlMplsOverUdp => flex::init_tnl_mpls_over_udp,
        K::Icmp => flex::init_icmp,
        K::TnlGeneveTlvOpt => flex::init_tnl_geneve_tlv_opt,
        K::TnlGtpuFlexParser0 => flex::init_tnl_gtpu_flex_parser_0,
        K::TnlGtpuFlexParser1 => flex::init_tnl_gtpu_flex_parser_1,
        K::FlexParser0 => flex::init_flex_parser_0,
        K::FlexParser1 => flex::init_flex_parser_1,
        K::GeneralPurpose => meta::init_general_purpose,
        K::Register0 => meta::init_register_0,
        K::Register1 => meta::init_register_1,
        K::SrcGvmiQpn => meta::init_src_gvmi_qpn,
        // v0 has no GENEVE option-presence lookup (rdma-core's wrapper silently builds
        // nothing) and no definers.
        K::TnlGeneveTlvOptExist
        | K::Def0
        | K::Def2
        | K::Def6
        | K::Def16
        | K::Def22
        | K::Def24
        | K::Def25
        | K::Def26
        | K::Def28
        | K::Def33 => return None,
    };
    Some(init)
}

/// Derives the bit mask by running `tag` over the mask, consuming the mask fields it
/// covers.
fn fill_bit_mask(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
    tag: TagFn,
) -> Result<(), BuildError> {
    let mut bit_mask = [0u8; 16];
    tag(sb, mask, caps, &mut bit_mask)?;
    sb.bit_mask = bit_mask;
    Ok(())
}

/// The init of a builder whose bit mask is its tag encoding of the mask.
fn init_by_tag(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
    lu_type: u16,
    tag: TagFn,
) -> Result<(), BuildError> {
    fill_bit_mask(sb, mask, caps, tag)?;
    finish_legacy(sb, lu_type, tag);
    Ok(())
}

/// The header section (outer or inner) and the misc section, borrowed together.
pub(crate) fn spec_and_misc(p: &mut MatchParam, inner: bool) -> (&mut [u8], &mut [u8]) {
    let MatchParam {
        outer,
        inner: inner_sec,
        misc: misc_sec,
        ..
    } = p;
    let s = if inner { inner_sec } else { outer };
    (s, misc_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits;
    use crate::caps::VportCap;
    use crate::prm::dr_match_set_misc as misc;
    use crate::ste::SteFormat;

    fn caps_with_vport(num: u16, gvmi: u16) -> Caps {
        Caps {
            gvmi: 1,
            esw_manager_vhca_gvmi: 1,
            vports: vec![VportCap {
                vport_num: num,
                vport_gvmi: gvmi,
                vhca_gvmi: 1,
                ..VportCap::default()
            }],
            ..Caps::default()
        }
    }

    fn build(
        kind: BuilderKind,
        rx: bool,
        inner: bool,
        mask: &mut MatchParam,
        caps: &Caps,
    ) -> SteBuild {
        SteBuild::new(SteFormat::V0, kind, inner, rx, mask, caps).expect("v0 has this lookup")
    }

    #[test]
    fn position_picks_lookup_type() {
        let caps = Caps::default();
        let kind = BuilderKind::EthL2Src;
        let lu_of = |rx, inner| build(kind, rx, inner, &mut MatchParam::default(), &caps).lu_type;
        assert_eq!(lu_of(false, false), 0x08);
        assert_eq!(lu_of(true, false), 0x1c);
        assert_eq!(lu_of(true, true), 0x09);
        assert_eq!(lu_of(false, true), 0x09);
    }

    #[test]
    fn missing_lookups_are_unavailable() {
        for kind in [BuilderKind::TnlGeneveTlvOptExist, BuilderKind::Def22] {
            let r = SteBuild::new(
                SteFormat::V0,
                kind,
                false,
                true,
                &mut MatchParam::default(),
                &Caps::default(),
            );
            assert!(matches!(r, Err(BuildError::Unavailable { .. })));
        }
    }

    #[test]
    fn source_port_maps_to_gvmi_or_fails() {
        let caps = caps_with_vport(3, 0x13);
        let mut mask = MatchParam::default();
        bits::set(&mut mask.misc, misc::SOURCE_PORT, 0xffff);
        let sb = build(BuilderKind::SrcGvmiQpn, true, false, &mut mask, &caps);
        assert!(mask.is_zero());

        let mut value = MatchParam::default();
        bits::set(&mut value.misc, misc::SOURCE_PORT, 3);
        let mut tag = [0u8; 16];
        sb.tag(&mut value, &caps, &mut tag)
            .expect("vport 3 is known");
        assert_eq!(&tag[..6], &[0, 0, 0, 0x13, 0x02, 0]);
        assert!(value.is_zero());

        let mut value = MatchParam::default();
        bits::set(&mut value.misc, misc::SOURCE_PORT, 4);
        let err = sb.tag(&mut value, &caps, &mut [0u8; 16]);
        assert_eq!(err, Err(BuildError::UnknownVport { vport: 4 }));
    }

    #[test]
    fn bad_ip_version_fails_the_tag() {
        let caps = Caps::default();
        let sb = build(
            BuilderKind::EthL2Tnl,
            false,
            true,
            &mut MatchParam::default(),
            &caps,
        );
        let mut value = MatchParam::default();
        bits::set(&mut value.inner, crate::prm::dr_match_spec::IP_VERSION, 5);
        assert!(matches!(
            sb.tag(&mut value, &caps, &mut [0u8; 16]),
            Err(BuildError::Unsupported { .. })
        ));
    }
}
