//! v0 tunnel lookups with fixed layouts: MPLS, GRE, VXLAN-GPE, GENEVE, GTP-U and the raw
//! tunnel header.

use super::{init_by_tag, lu};
use crate::builder::{put, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{dr_match_set_misc as misc, dr_match_set_misc2 as misc2};
use crate::prm::{dr_match_set_misc3 as misc3, dr_match_set_misc5 as misc5};
use crate::prm::{ste_flex_parser_tnl_geneve as geneve, ste_flex_parser_tnl_gtpu as gtpu};
use crate::prm::{ste_flex_parser_tnl_vxlan_gpe as gpe, ste_tunnel_header as tnl_hdr};
use crate::prm::{ste_gre as gre, ste_mpls as mpls};

/// First MPLS label, EXP, bottom-of-stack bit and TTL (`mpls`), outer or inner.
pub(super) fn init_mpls(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::MPLS_FIRST.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_mpls)
}

fn tag_mpls(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let [label, s_bos, exp, ttl] = if sb.inner {
        [
            misc2::INNER_FIRST_MPLS_LABEL,
            misc2::INNER_FIRST_MPLS_S_BOS,
            misc2::INNER_FIRST_MPLS_EXP,
            misc2::INNER_FIRST_MPLS_TTL,
        ]
    } else {
        [
            misc2::OUTER_FIRST_MPLS_LABEL,
            misc2::OUTER_FIRST_MPLS_S_BOS,
            misc2::OUTER_FIRST_MPLS_EXP,
            misc2::OUTER_FIRST_MPLS_TTL,
        ]
    };
    let m2 = &mut value.misc2;
    put(tag, mpls::MPLS0_LABEL, m2, label);
    put(tag, mpls::MPLS0_S_BOS, m2, s_bos);
    put(tag, mpls::MPLS0_EXP, m2, exp);
    put(tag, mpls::MPLS0_TTL, m2, ttl);
    Ok(())
}

/// GRE protocol, key and the C/K/S present bits (`tnl_gre`).
pub(super) fn init_tnl_gre(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::GRE, tag_tnl_gre)
}

fn tag_tnl_gre(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m = &mut value.misc;
    put(tag, gre::GRE_PROTOCOL, m, misc::GRE_PROTOCOL);
    put(tag, gre::GRE_K_PRESENT, m, misc::GRE_K_PRESENT);
    put(tag, gre::GRE_KEY_H, m, misc::GRE_KEY_H);
    put(tag, gre::GRE_KEY_L, m, misc::GRE_KEY_L);
    put(tag, gre::GRE_C_PRESENT, m, misc::GRE_C_PRESENT);
    put(tag, gre::GRE_S_PRESENT, m, misc::GRE_S_PRESENT);
    Ok(())
}

/// VXLAN-GPE flags, next protocol and VNI (`tnl_vxlan_gpe`), on the tunnel-header flex
/// parser.
pub(super) fn init_tnl_vxlan_gpe(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(
        sb,
        mask,
        caps,
        lu::FLEX_PARSER_TNL_HEADER,
        tag_tnl_vxlan_gpe,
    )
}

fn tag_tnl_vxlan_gpe(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m3 = &mut value.misc3;
    put(
        tag,
        gpe::OUTER_VXLAN_GPE_FLAGS,
        m3,
        misc3::OUTER_VXLAN_GPE_FLAGS,
    );
    put(
        tag,
        gpe::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
        m3,
        misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
    );
    put(
        tag,
        gpe::OUTER_VXLAN_GPE_VNI,
        m3,
        misc3::OUTER_VXLAN_GPE_VNI,
    );
    Ok(())
}

/// GENEVE protocol type, OAM bit, option length and VNI (`tnl_geneve`), on the
/// tunnel-header flex parser.
pub(super) fn init_tnl_geneve(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::FLEX_PARSER_TNL_HEADER, tag_tnl_geneve)
}

fn tag_tnl_geneve(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m = &mut value.misc;
    put(
        tag,
        geneve::GENEVE_PROTOCOL_TYPE,
        m,
        misc::GENEVE_PROTOCOL_TYPE,
    );
    put(tag, geneve::GENEVE_OAM, m, misc::GENEVE_OAM);
    put(tag, geneve::GENEVE_OPT_LEN, m, misc::GENEVE_OPT_LEN);
    put(tag, geneve::GENEVE_VNI, m, misc::GENEVE_VNI);
    Ok(())
}

/// GTP-U flags, message type and TEID (`tnl_gtpu`), on the tunnel-header flex parser.
pub(super) fn init_tnl_gtpu(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::FLEX_PARSER_TNL_HEADER, tag_tnl_gtpu)
}

fn tag_tnl_gtpu(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m3 = &mut value.misc3;
    put(tag, gtpu::GTPU_MSG_FLAGS, m3, misc3::GTPU_MSG_FLAGS);
    put(tag, gtpu::GTPU_MSG_TYPE, m3, misc3::GTPU_MSG_TYPE);
    put(tag, gtpu::GTPU_TEID, m3, misc3::GTPU_TEID);
    Ok(())
}

/// The first two raw tunnel header dwords (`tunnel_header`). v0 has no room for dwords
/// 2 and 3, whatever the device offers.
pub(super) fn init_tunnel_header(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    init_by_tag(sb, mask, caps, lu::TUNNEL_HEADER, tag_tunnel_header)
}

fn tag_tunnel_header(
    _sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let m5 = &mut value.misc5;
    put(tag, tnl_hdr::TUNNEL_HEADER_DW0, m5, misc5::TUNNEL_HEADER_0);
    put(tag, tnl_hdr::TUNNEL_HEADER_DW1, m5, misc5::TUNNEL_HEADER_1);
    Ok(())
}
