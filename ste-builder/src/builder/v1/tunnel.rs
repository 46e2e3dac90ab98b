//! Tunnel lookups in fixed layouts: MPLS, GRE, VXLAN-GPE, GENEVE, GTP-U and the raw
//! tunnel header. Masks and values are encoded alike.

use super::{lu, sided, Lookup, Tag};
use crate::builder::{put, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc5 as misc5, ste_flex_parser_tnl_geneve as geneve,
    ste_flex_parser_tnl_gtpu as gtpu, ste_flex_parser_tnl_vxlan_gpe as vxlan_gpe,
    ste_gre_v1 as gre, ste_mpls_v1 as mpls, ste_tunnel_header_v1 as tnl_hdr,
};

/// The first MPLS label stack entry: label, EXP, bottom of stack and TTL (`mpls`).
pub(super) struct Mpls;

impl Lookup for Mpls {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::MPLS_O, lu::MPLS_I)
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
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
        let m2 = &mut p.misc2;
        put(out, mpls::MPLS0_LABEL, m2, label);
        put(out, mpls::MPLS0_S_BOS, m2, s_bos);
        put(out, mpls::MPLS0_EXP, m2, exp);
        put(out, mpls::MPLS0_TTL, m2, ttl);
        Ok(())
    }
}

/// GRE protocol, key and the C/K/S present bits (`tnl_gre`).
pub(super) struct TnlGre;

impl Lookup for TnlGre {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::GRE
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m = &mut p.misc;
        put(out, gre::GRE_PROTOCOL, m, misc::GRE_PROTOCOL);
        put(out, gre::GRE_K_PRESENT, m, misc::GRE_K_PRESENT);
        put(out, gre::GRE_KEY_H, m, misc::GRE_KEY_H);
        put(out, gre::GRE_KEY_L, m, misc::GRE_KEY_L);
        put(out, gre::GRE_C_PRESENT, m, misc::GRE_C_PRESENT);
        put(out, gre::GRE_S_PRESENT, m, misc::GRE_S_PRESENT);
        Ok(())
    }
}

/// VXLAN-GPE flags, next protocol and VNI (`tnl_vxlan_gpe`).
pub(super) struct TnlVxlanGpe;

impl Lookup for TnlVxlanGpe {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_TNL_HEADER
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m3 = &mut p.misc3;
        put(
            out,
            vxlan_gpe::OUTER_VXLAN_GPE_FLAGS,
            m3,
            misc3::OUTER_VXLAN_GPE_FLAGS,
        );
        put(
            out,
            vxlan_gpe::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
            m3,
            misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
        );
        put(
            out,
            vxlan_gpe::OUTER_VXLAN_GPE_VNI,
            m3,
            misc3::OUTER_VXLAN_GPE_VNI,
        );
        Ok(())
    }
}

/// GENEVE protocol type, OAM bit, option length and VNI (`tnl_geneve`).
pub(super) struct TnlGeneve;

impl Lookup for TnlGeneve {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_TNL_HEADER
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m = &mut p.misc;
        put(
            out,
            geneve::GENEVE_PROTOCOL_TYPE,
            m,
            misc::GENEVE_PROTOCOL_TYPE,
        );
        put(out, geneve::GENEVE_OAM, m, misc::GENEVE_OAM);
        put(out, geneve::GENEVE_OPT_LEN, m, misc::GENEVE_OPT_LEN);
        put(out, geneve::GENEVE_VNI, m, misc::GENEVE_VNI);
        Ok(())
    }
}

/// GTP-U flags, message type and TEID in the tunnel-header layout (`tnl_gtpu`).
pub(super) struct TnlGtpu;

impl Lookup for TnlGtpu {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_TNL_HEADER
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m3 = &mut p.misc3;
        put(out, gtpu::GTPU_MSG_FLAGS, m3, misc3::GTPU_MSG_FLAGS);
        put(out, gtpu::GTPU_MSG_TYPE, m3, misc3::GTPU_MSG_TYPE);
        put(out, gtpu::GTPU_TEID, m3, misc3::GTPU_TEID);
        Ok(())
    }
}

/// Raw tunnel header dwords (`tunnel_header`): dwords 0 and 1, plus 2 and 3 when the
/// device parses the full tunnel header (which also changes the lookup type).
pub(super) struct TunnelHeader;

impl Lookup for TunnelHeader {
    fn lu_type(_: &SteBuild, caps: &Caps) -> u16 {
        if caps.support_full_tnl_hdr {
            lu::TNL_HEADER
        } else {
            lu::FLEX_PARSER_TNL_HEADER
        }
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m5 = &mut p.misc5;
        put(out, tnl_hdr::TUNNEL_HEADER_0, m5, misc5::TUNNEL_HEADER_0);
        put(out, tnl_hdr::TUNNEL_HEADER_1, m5, misc5::TUNNEL_HEADER_1);
        if caps.support_full_tnl_hdr {
            put(out, tnl_hdr::TUNNEL_HEADER_2, m5, misc5::TUNNEL_HEADER_2);
            put(out, tnl_hdr::TUNNEL_HEADER_3, m5, misc5::TUNNEL_HEADER_3);
        }
        Ok(())
    }
}
