//! Lookups through the flex parsers: firmware-programmed parsers whose ids come from the
//! device capabilities (MPLS over GRE/UDP, GENEVE option 0, GTP-U) or from the rule
//! itself (programmable sample fields). Parsers 0..=3 are read by the `FLEX_PARSER_0`
//! lookup and 4..=7 by `FLEX_PARSER_1`.

use super::{lu, Lookup, Tag};
use crate::bits::{self, BitField};
use crate::builder::common::{
    flex_parser_dword, mpls_header, FLEX_PARSER_COUNT, MAX_FLEX_PARSER_0_ID,
};
use crate::builder::{put, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, ste_flex_parser_ok as flex_ok,
};

/// The flex-parser lookup that reads parser `id`.
fn lu_type_of_parser(id: u32) -> u16 {
    if id <= MAX_FLEX_PARSER_0_ID {
        lu::FLEX_PARSER_0
    } else {
        lu::FLEX_PARSER_1
    }
}

/// The four fields of one MPLS label stack entry in misc2.
struct MplsFields {
    label: BitField,
    exp: BitField,
    s_bos: BitField,
    ttl: BitField,
}

impl MplsFields {
    /// Packs the entry into the dword of flex parser `parser_id`, consuming all four
    /// fields. The dword is written even when the entry is zero.
    fn put(&self, out: &mut Tag, m2: &mut [u8], parser_id: u8) {
        let word = mpls_header(
            bits::take(m2, self.label),
            bits::take(m2, self.exp),
            bits::take(m2, self.s_bos),
            bits::take(m2, self.ttl),
        );
        bits::set(out, flex_parser_dword(parser_id.into()), word.into());
    }
}

/// The first MPLS label after a GRE header, through its flex parser
/// (`tnl_mpls_over_gre`).
pub(super) struct TnlMplsOverGre;

impl Lookup for TnlMplsOverGre {
    fn lu_type(_: &SteBuild, caps: &Caps) -> u16 {
        lu_type_of_parser(caps.flex_parser.mpls_over_gre.into())
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let fields = MplsFields {
            label: misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL,
            exp: misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP,
            s_bos: misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS,
            ttl: misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL,
        };
        fields.put(out, &mut p.misc2, caps.flex_parser.mpls_over_gre);
        Ok(())
    }
}

/// The first MPLS label after a UDP header, through its flex parser
/// (`tnl_mpls_over_udp`).
pub(super) struct TnlMplsOverUdp;

impl Lookup for TnlMplsOverUdp {
    fn lu_type(_: &SteBuild, caps: &Caps) -> u16 {
        lu_type_of_parser(caps.flex_parser.mpls_over_udp.into())
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let fields = MplsFields {
            label: misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL,
            exp: misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP,
            s_bos: misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS,
            ttl: misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL,
        };
        fields.put(out, &mut p.misc2, caps.flex_parser.mpls_over_udp);
        Ok(())
    }
}

/// The data of GENEVE TLV option 0, through its flex parser (`tnl_geneve_tlv_opt`).
pub(super) struct TnlGeneveTlvOpt;

impl Lookup for TnlGeneveTlvOpt {
    fn lu_type(_: &SteBuild, caps: &Caps) -> u16 {
        lu_type_of_parser(caps.flex_parser.geneve_tlv_option_0.into())
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let id = caps.flex_parser.geneve_tlv_option_0;
        // Written even when zero.
        let data = bits::take(&mut p.misc3, misc3::GENEVE_TLV_OPTION_0_DATA);
        bits::set(out, flex_parser_dword(id.into()), data);
        Ok(())
    }
}

/// Whether GENEVE TLV option 0 is present: its parser's bit in the flex-parser-ok
/// bitmap (`tnl_geneve_tlv_opt_exist`).
pub(super) struct TnlGeneveTlvOptExist;

impl Lookup for TnlGeneveTlvOptExist {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_OK
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        if bits::take(&mut p.misc, misc::GENEVE_TLV_OPTION_0_EXIST) != 0 {
            // The bitmap has eight bits; a parser id beyond it sets none (the bit is
            // shifted out of the field).
            let id = caps.flex_parser.geneve_tlv_option_0;
            let bit = 1u64.checked_shl(id.into()).unwrap_or(0);
            bits::set(out, flex_ok::FLEX_PARSERS_OK, bit);
        }
        Ok(())
    }
}

/// The GTP-U fields that have flex parsers, each paired with its parser id.
fn gtpu_parsers(caps: &Caps) -> [(BitField, u8); 4] {
    let ids = &caps.flex_parser;
    [
        (misc3::GTPU_DW_0, ids.gtpu_dw_0),
        (misc3::GTPU_TEID, ids.gtpu_teid),
        (misc3::GTPU_DW_2, ids.gtpu_dw_2),
        (misc3::GTPU_FIRST_EXT_DW_0, ids.gtpu_first_ext_dw_0),
    ]
}

/// Moves the GTP-U fields whose parsers the lookup `lu_type` reads into their dwords.
fn put_gtpu_fields(lu_type: u16, p: &mut MatchParam, caps: &Caps, out: &mut Tag) {
    for (field, id) in gtpu_parsers(caps) {
        if lu_type_of_parser(id.into()) == lu_type {
            put(out, flex_parser_dword(id.into()), &mut p.misc3, field);
        }
    }
}

/// GTP-U header dwords whose flex parsers are 0..=3 (`tnl_gtpu_flex_parser_0`).
pub(super) struct TnlGtpuFlexParser0;

impl Lookup for TnlGtpuFlexParser0 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_0
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        put_gtpu_fields(lu::FLEX_PARSER_0, p, caps, out);
        Ok(())
    }
}

/// GTP-U header dwords whose flex parsers are 4..=7 (`tnl_gtpu_flex_parser_1`).
pub(super) struct TnlGtpuFlexParser1;

impl Lookup for TnlGtpuFlexParser1 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_1
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, caps: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        put_gtpu_fields(lu::FLEX_PARSER_1, p, caps, out);
        Ok(())
    }
}

/// The eight programmable sample slots of misc4: (parser id, value).
const SAMPLES: [(BitField, BitField); 8] = [
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

/// Moves the sample slots whose parser the lookup `lu_type` reads into their dwords.
///
/// The first slot naming a parser claims it; later slots naming the same parser stay
/// unconsumed. A slot is judged by its id alone, so an unused slot (id 0, value 0)
/// claims parser 0 for the `FLEX_PARSER_0` lookup, consuming nothing visible but
/// shadowing any later slot that really targets parser 0, as rdma-core does.
fn put_samples(lu_type: u16, p: &mut MatchParam, out: &mut Tag) {
    let m4 = &mut p.misc4;
    let mut claimed = [false; FLEX_PARSER_COUNT as usize];
    for (id_field, value_field) in SAMPLES {
        let id = bits::get(m4, id_field) as u32;
        if id >= FLEX_PARSER_COUNT || lu_type_of_parser(id) != lu_type {
            continue;
        }
        let slot = &mut claimed[id as usize];
        if *slot {
            continue;
        }
        *slot = true;
        let value = bits::take(m4, value_field);
        bits::set(m4, id_field, 0);
        bits::set(out, flex_parser_dword(id), value);
    }
}

/// Programmable sample fields on flex parsers 0..=3 (`flex_parser_0`).
pub(super) struct FlexParser0;

impl Lookup for FlexParser0 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_0
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        put_samples(sb.lu_type, p, out);
        Ok(())
    }
}

/// Programmable sample fields on flex parsers 4..=7 (`flex_parser_1`).
pub(super) struct FlexParser1;

impl Lookup for FlexParser1 {
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::FLEX_PARSER_1
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        put_samples(sb.lu_type, p, out);
        Ok(())
    }
}
