//! `ste_builders_v*.json`: lookup builders. For each case: normalise mask and value as DR
//! does, run the builder's init on the mask and its tag function on the value, and
//! compare lookup type, masks, tag, leftovers and the resulting STE.

use crate::common::{
    boolean, format_of, hex_array, hex_field, same, same_bytes, string, uint, zero_ste, Tally,
};
use serde_json::Value;
use std::collections::BTreeMap;
use ste_builder::match_param::{pre_check, MatchCriteria, MatchParam};
use ste_builder::{
    BuildError, BuilderKind, Caps, FlexParserIds, HtblType, SteBuild, SteFormat, VportCap,
};

pub fn run(doc: &Value) -> Tally {
    let format = match format_of(doc) {
        Ok(f) => f,
        Err(e) => return Tally::unknown(e),
    };
    let base = match base_caps(&doc["caps"]) {
        Ok(c) => c,
        Err(e) => return Tally::unknown(format!("caps: {e}")),
    };
    let mut t = Tally::default();
    t.run_cases(doc, "cases", |c| check_case(format, &base, c));
    t.run_cases(doc, "unsupported", |c| check_unsupported(format, &base, c));
    t
}

/// The file-wide capabilities: gvmi and the vport table.
pub fn base_caps(v: &Value) -> Result<Caps, String> {
    let mut caps = Caps {
        gvmi: uint(v, "gvmi")? as u16,
        is_ecpf: boolean(v, "is_ecpf")?,
        esw_manager_vhca_gvmi: uint(v, "esw_manager_vhca_gvmi")? as u16,
        ..Caps::default()
    };
    for vp in v["vports"].as_array().ok_or("no vports")? {
        caps.vports.push(VportCap {
            vport_num: uint(vp, "vport_num")? as u16,
            vport_gvmi: uint(vp, "vport_gvmi")? as u16,
            vhca_gvmi: uint(vp, "vhca_gvmi")? as u16,
            icm_address_rx: uint(vp, "icm_address_rx")?,
            icm_address_tx: uint(vp, "icm_address_tx")?,
        });
    }
    Ok(caps)
}

/// The file-wide caps with a case's own caps object applied.
fn case_caps(base: &Caps, v: &Value) -> Result<Caps, String> {
    let mut caps = base.clone();
    let obj = v.as_object().ok_or("caps: not an object")?;
    if obj.is_empty() {
        return Ok(caps);
    }
    let id = |k: &str| uint(v, k).map(|x| x as u8);
    caps.flex_parser = FlexParserIds {
        icmp_dw0: id("flex_parser_id_icmp_dw0")?,
        icmp_dw1: id("flex_parser_id_icmp_dw1")?,
        icmpv6_dw0: id("flex_parser_id_icmpv6_dw0")?,
        icmpv6_dw1: id("flex_parser_id_icmpv6_dw1")?,
        geneve_tlv_option_0: id("flex_parser_id_geneve_tlv_option_0")?,
        mpls_over_gre: id("flex_parser_id_mpls_over_gre")?,
        mpls_over_udp: id("flex_parser_id_mpls_over_udp")?,
        gtpu_dw_0: id("flex_parser_id_gtpu_dw_0")?,
        gtpu_teid: id("flex_parser_id_gtpu_teid")?,
        gtpu_dw_2: id("flex_parser_id_gtpu_dw_2")?,
        gtpu_first_ext_dw_0: id("flex_parser_id_gtpu_first_ext_dw_0")?,
    };
    caps.definer_supp_checksum = boolean(v, "definer_supp_checksum")?;
    caps.support_full_tnl_hdr = boolean(v, "support_full_tnl_hdr")?;
    Ok(caps)
}

/// The inputs every case has.
struct Inputs {
    kind: BuilderKind,
    inner: bool,
    rx: bool,
    criteria: MatchCriteria,
    caps: Caps,
    mask: MatchParam,
    value: MatchParam,
}

fn inputs(base: &Caps, c: &Value) -> Result<Inputs, String> {
    let name = string(c, "builder")?;
    let kind = BuilderKind::from_name(name).ok_or_else(|| format!("unknown builder {name}"))?;
    let criteria = MatchCriteria::from_bits_retain(uint(c, "criteria")? as u8);
    let user_mask = MatchParam::from_bytes(&hex_field(c, "mask")?).map_err(|e| e.to_string())?;
    let user_value = MatchParam::from_bytes(&hex_field(c, "value")?).map_err(|e| e.to_string())?;
    Ok(Inputs {
        kind,
        inner: boolean(c, "inner")?,
        rx: boolean(c, "rx")?,
        criteria,
        caps: case_caps(base, &c["caps"])?,
        mask: MatchParam::copy_from(criteria, &user_mask),
        value: MatchParam::copy_from(criteria, &user_value),
    })
}

/// Non-zero fields as `section.field -> value`.
fn leftovers(p: &MatchParam) -> BTreeMap<String, u64> {
    p.nonzero_fields()
        .map(|(f, v)| (f.to_string(), v))
        .collect()
}

fn expected_leftovers(v: &Value) -> Result<BTreeMap<String, u64>, String> {
    let obj = v.as_object().ok_or("leftovers: not an object")?;
    obj.iter()
        .map(|(k, x)| {
            x.as_u64()
                .map(|x| (k.clone(), x))
                .ok_or_else(|| format!("{k}: not an integer"))
        })
        .collect()
}

/// Checks what init produced against the case's lu_type and masks.
fn check_init(sb: &SteBuild, c: &Value) -> Result<(), String> {
    same("lu_type", u64::from(sb.lu_type), uint(c, "lu_type")?)?;
    if c["definer_match"].is_string() {
        same("htbl_type", sb.htbl_type, HtblType::Match)?;
        same_bytes(
            "definer_match",
            &sb.definer_match,
            &hex_field(c, "definer_match")?,
        )?;
    } else {
        same("htbl_type", sb.htbl_type, HtblType::Legacy)?;
        same_bytes("bit_mask", &sb.bit_mask, &hex_array::<16>(c, "bit_mask")?)?;
    }
    Ok(())
}

fn check_case(format: SteFormat, base: &Caps, c: &Value) -> Result<(), String> {
    let mut inp = inputs(base, c)?;
    same(
        "value_within_mask",
        MatchParam::check_value_within_mask(&inp.mask, &inp.value).is_ok(),
        boolean(c, "value_within_mask")?,
    )?;
    let sb = SteBuild::new(
        format,
        inp.kind,
        inp.inner,
        inp.rx,
        &mut inp.mask,
        &inp.caps,
    )
    .map_err(|e| format!("init failed: {e}"))?;
    check_init(&sb, c)?;
    match string(c, "htbl_type")? {
        "legacy" => same("byte_mask", u64::from(sb.byte_mask), uint(c, "byte_mask")?)?,
        "match" => same("format_id", u64::from(sb.byte_mask), uint(c, "format_id")?)?,
        other => return Err(format!("unknown htbl_type {other}")),
    }
    same(
        "mask_left",
        leftovers(&inp.mask),
        expected_leftovers(&c["mask_left"])?,
    )?;

    let mut tag = [0u8; 32];
    sb.tag(&mut inp.value, &inp.caps, &mut tag[..sb.tag_len()])
        .map_err(|e| format!("tag failed: {e}"))?;
    let want_tag = hex_field(c, "tag")?;
    same_bytes("tag", &tag[..want_tag.len()], &want_tag)?;
    same(
        "value_left",
        leftovers(&inp.value),
        expected_leftovers(&c["value_left"])?,
    )?;

    // The STE a one-builder matcher writes for this rule.
    let ctrl = format.ctrl();
    let mut ste = zero_ste();
    let definer_id = c["definer_obj_id"].as_u64().unwrap_or(0) as u16;
    ctrl.init(&mut ste, sb.lu_type | definer_id, inp.rx, inp.caps.gvmi);
    if sb.htbl_type == HtblType::Legacy {
        ste_builder::ste::set_bit_mask(&mut ste, &sb.bit_mask);
    }
    ste[32..32 + want_tag.len()].copy_from_slice(&tag[..want_tag.len()]);
    same_bytes("ste", &ste, &hex_field(c, "ste")?)
}

fn check_unsupported(format: SteFormat, base: &Caps, c: &Value) -> Result<(), String> {
    let inp = inputs(base, c)?;
    let rejected_at = string(c, "rejected_at")?;
    let init_rc = c["init_rc"].as_i64().ok_or("init_rc: not an integer")?;
    let built = SteBuild::new(
        format,
        inp.kind,
        inp.inner,
        inp.rx,
        &mut inp.mask.clone(),
        &inp.caps,
    );
    if rejected_at == "builder_unavailable" {
        return match built {
            Err(BuildError::Unavailable { .. }) => Ok(()),
            other => Err(format!(
                "expected the builder to be unavailable, got {other:?}"
            )),
        };
    }
    if init_rc != 0 {
        return Err(format!("init_rc {init_rc} with rejected_at {rejected_at}"));
    }
    let sb = built.map_err(|e| format!("init failed: {e}"))?;
    check_init(&sb, c)?;
    let mut tag = [0u8; 32];
    let tag_result = sb.tag(&mut inp.value.clone(), &inp.caps, &mut tag[..sb.tag_len()]);
    same("tag fails", tag_result.is_err(), uint(c, "tag_rc")? != 0)?;
    if tag_result.is_ok() {
        let want_tag = hex_field(c, "tag")?;
        same_bytes("tag", &tag[..want_tag.len()], &want_tag)?;
    }
    let matcher = pre_check(inp.criteria, &inp.mask, None);
    let rule = pre_check(inp.criteria, &inp.mask, Some(&inp.value));
    same(
        "matcher pre-check fails",
        matcher.is_err(),
        uint(c, "pre_check_matcher_rc")? != 0,
    )?;
    same(
        "rule pre-check fails",
        rule.is_err(),
        uint(c, "pre_check_rule_rc")? != 0,
    )?;
    match rejected_at {
        "pre_check_matcher" | "pre_check_rule" | "tag" => Ok(()),
        other => Err(format!("unknown rejected_at {other}")),
    }
}
