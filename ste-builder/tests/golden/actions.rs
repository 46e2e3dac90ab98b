//! `ste_actions_v*.json`: rdma-core's `dr_ste_set_actions_rx/tx` of one STE format, run on
//! an 11-STE buffer whose first STE is the rule's last match STE.
//!
//! Every key of a case is either checked or used as input; an unknown key fails the case.

use crate::common::{boolean, format_of, hex_array, same, same_bytes, string, uint, Tally};
use serde_json::{Map, Value};
use ste_builder::action::{
    self, ActionCaps, ActionType, ActionTypeSet, ActionsAttr, Aso, AsoKind, Vlans,
};
use ste_builder::ste::STE_SIZE;
use ste_builder::SteFormat;

/// STEs in the buffer rdma-core was called with.
const BUFFER_STES: usize = 11;
/// rdma-core's `-1` in an unsigned field: "no location".
const NO_LOC: u64 = 0xffff_ffff;

const TOP_KEYS: &[&str] = &[
    "source",
    "steering_format",
    "schema",
    "caps",
    "ste_ctx_actions_caps",
    "peer_domain_gvmi",
    "cases",
];
const CASE_KEYS: &[&str] = &[
    "domain",
    "function",
    "action_types",
    "action_type_set",
    "init",
    "attr",
    "added_stes",
    "aso_ste_loc_out",
    "stes",
];
const INIT_KEYS: &[&str] = &["lu_type", "is_rx", "gvmi", "bytes_32_63"];
const ATTR_KEYS: &[&str] = &[
    "modify_index",
    "modify_pat_idx",
    "modify_actions",
    "single_modify_action",
    "decap_index",
    "decap_pat_idx",
    "decap_actions",
    "decap_with_vlan",
    "final_icm_addr",
    "flow_tag",
    "ctr_id",
    "gvmi",
    "hit_gvmi",
    "reformat_id",
    "reformat_size",
    "prio_tag_required",
    "vlans",
    "aso",
    "aso_ste_loc",
];
const VLAN_KEYS: &[&str] = &["count_pop", "count_push", "headers"];
const ASO_COMMON_KEYS: &[&str] = &[
    "type",
    "object_id",
    "offset",
    "dest_reg_id",
    "aso_domain_gvmi",
];

pub fn run(doc: &Value) -> Tally {
    let format = match format_of(doc) {
        Ok(f) => f,
        Err(e) => return Tally::unknown(e),
    };
    if let Err(e) = check_top(format, doc) {
        return Tally::unknown(e);
    }
    let mut t = Tally::default();
    t.run_cases(doc, "cases", |c| check(format, c));
    t
}

/// The file-level fields: known keys only, and the format's action caps as rdma-core's.
fn check_top(format: SteFormat, doc: &Value) -> Result<(), String> {
    only_keys("file", doc, TOP_KEYS)?;
    // `caps` (the fake device) and `peer_domain_gvmi` only explain how each case's attr
    // was derived; the attr itself is the input.
    if !doc["caps"].is_object() {
        return Err("caps: not an object".into());
    }
    uint(doc, "peer_domain_gvmi")?;
    same(
        "ste_ctx_actions_caps",
        u64::from(ActionCaps::of(format).bits()),
        uint(doc, "ste_ctx_actions_caps")?,
    )
}

/// Fails on a key outside `known` (or on a non-object).
fn only_keys(what: &str, v: &Value, known: &[&str]) -> Result<(), String> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| format!("{what}: not an object"))?;
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unknown key {k:?}")),
        None => Ok(()),
    }
}

fn check(format: SteFormat, case: &Value) -> Result<(), String> {
    only_keys("case", case, CASE_KEYS)?;
    let rx = match string(case, "function")? {
        "set_actions_rx" => true,
        "set_actions_tx" => false,
        other => return Err(format!("unknown function {other}")),
    };
    let domain_rx = match string(case, "domain")? {
        "nic_rx" | "fdb_rx" => true,
        "nic_tx" | "fdb_tx" => false,
        other => return Err(format!("unknown domain {other}")),
    };
    same("domain side is the function's", domain_rx, rx)?;

    let set = action_type_set(case)?;
    let attr = actions_attr(&case["attr"])?;

    // The buffer as rdma-core had it: STE 0 initialised, its tag and mask copied in.
    let init = &case["init"];
    only_keys("init", init, INIT_KEYS)?;
    let mut buf = vec![0u8; BUFFER_STES * STE_SIZE];
    format.ctrl().init(
        &mut buf[..STE_SIZE],
        u16_of(init, "lu_type")?,
        boolean(init, "is_rx")?,
        u16_of(init, "gvmi")?,
    );
    buf[32..64].copy_from_slice(&hex_array::<32>(init, "bytes_32_63")?);

    let outcome = if rx {
        action::set_actions_rx(format, &set, &mut buf, &attr)
    } else {
        action::set_actions_tx(format, &set, &mut buf, &attr)
    }
    .map_err(|e| format!("set_actions: {e}"))?;

    same(
        "added_stes",
        outcome.added_stes as u64,
        uint(case, "added_stes")?,
    )?;
    same(
        "aso_ste_loc_out",
        loc_to_u64(outcome.aso_ste_loc),
        uint(case, "aso_ste_loc_out")?,
    )?;
    let want = case["stes"].as_array().ok_or("stes: not an array")?;
    same("number of stes", want.len(), outcome.added_stes + 1)?;
    for (i, w) in want.iter().enumerate() {
        let w = hex::decode(w.as_str().ok_or("stes: not a string")?)
            .map_err(|e| format!("stes[{i}]: bad hex: {e}"))?;
        same_bytes(
            &format!("ste[{i}]"),
            &buf[i * STE_SIZE..(i + 1) * STE_SIZE],
            &w,
        )?;
    }
    let rest = &buf[want.len() * STE_SIZE..];
    same_bytes("bytes after the stes", rest, &vec![0u8; rest.len()])
}

/// `action_type_set` as counts, checked against the ordered `action_types`.
fn action_type_set(case: &Value) -> Result<ActionTypeSet, String> {
    let counts = case["action_type_set"]
        .as_array()
        .ok_or("action_type_set: not an array")?;
    if counts.len() != ActionType::COUNT {
        return Err(format!("action_type_set: {} entries", counts.len()));
    }
    let mut arr = [0u8; ActionType::COUNT];
    for (slot, c) in arr.iter_mut().zip(counts) {
        *slot = c
            .as_u64()
            .and_then(|c| u8::try_from(c).ok())
            .ok_or("action_type_set: not a small count")?;
    }
    let set = ActionTypeSet::from_counts(arr);

    let names = case["action_types"]
        .as_array()
        .ok_or("action_types: not an array")?;
    let mut from_names = ActionTypeSet::new();
    for n in names {
        let n = n.as_str().ok_or("action_types: not a string")?;
        from_names.insert(ActionType::from_name(n).ok_or(format!("unknown action type {n}"))?);
    }
    same("action_type_set of action_types", from_names, set)?;
    Ok(set)
}

fn actions_attr(v: &Value) -> Result<ActionsAttr, String> {
    only_keys("attr", v, ATTR_KEYS)?;
    let u32_of = |k: &str| -> Result<u32, String> {
        u32::try_from(uint(v, k)?).map_err(|_| format!("attr.{k}: out of range"))
    };
    let single_modify_action = match &v["single_modify_action"] {
        Value::Null => None,
        _ => Some(hex_array::<8>(v, "single_modify_action")?),
    };
    let loc = u32_of("aso_ste_loc")?;
    Ok(ActionsAttr {
        modify_index: u32_of("modify_index")?,
        modify_pat_idx: u32_of("modify_pat_idx")?,
        modify_actions: u16_of(v, "modify_actions")?,
        single_modify_action,
        decap_index: u32_of("decap_index")?,
        decap_pat_idx: u32_of("decap_pat_idx")?,
        decap_actions: u16_of(v, "decap_actions")?,
        decap_with_vlan: boolean(v, "decap_with_vlan")?,
        final_icm_addr: uint(v, "final_icm_addr")?,
        flow_tag: u32_of("flow_tag")?,
        ctr_id: u32_of("ctr_id")?,
        gvmi: u16_of(v, "gvmi")?,
        hit_gvmi: u16_of(v, "hit_gvmi")?,
        reformat_id: u32_of("reformat_id")?,
        reformat_size: u32_of("reformat_size")?,
        prio_tag_required: boolean(v, "prio_tag_required")?,
        vlans: vlans(&v["vlans"])?,
        aso: aso(&v["aso"])?,
        aso_ste_loc: (u64::from(loc) != NO_LOC).then_some(loc),
    })
}

fn vlans(v: &Value) -> Result<Vlans, String> {
    only_keys("vlans", v, VLAN_KEYS)?;
    let headers = v["headers"]
        .as_array()
        .ok_or("vlans.headers: not an array")?;
    let mut out = [0u32; action::MAX_VLANS];
    if headers.len() != out.len() {
        return Err(format!("vlans.headers: {} entries", headers.len()));
    }
    for (slot, h) in out.iter_mut().zip(headers) {
        *slot = h
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or("vlans.headers: not a u32")?;
    }
    let count = |k: &str| -> Result<u8, String> {
        u8::try_from(uint(v, k)?).map_err(|_| format!("vlans.{k}: out of range"))
    };
    Ok(Vlans {
        count_pop: count("count_pop")?,
        count_push: count("count_push")?,
        headers: out,
    })
}

fn aso(v: &Value) -> Result<Option<Aso>, String> {
    if v.is_null() {
        return Ok(None);
    }
    let (kind, extra) = match string(v, "type")? {
        "ASO_FIRST_HIT" => (
            AsoKind::FirstHit {
                set: boolean(v, "first_hit_set")?,
            },
            "first_hit_set",
        ),
        "ASO_FLOW_METER" => (
            AsoKind::FlowMeter {
                initial_color: u8::try_from(uint(v, "flow_meter_initial_color")?)
                    .map_err(|_| "aso.flow_meter_initial_color: out of range")?,
            },
            "flow_meter_initial_color",
        ),
        "ASO_CT" => (
            AsoKind::Ct {
                direction: boolean(v, "ct_direction")?,
            },
            "ct_direction",
        ),
        other => return Err(format!("unknown aso type {other}")),
    };
    let mut known = ASO_COMMON_KEYS.to_vec();
    known.push(extra);
    only_keys("aso", v, &known)?;
    Ok(Some(Aso {
        object_id: u32::try_from(uint(v, "object_id")?).map_err(|_| "aso.object_id: range")?,
        offset: u32::try_from(uint(v, "offset")?).map_err(|_| "aso.offset: range")?,
        dest_reg_id: u8::try_from(uint(v, "dest_reg_id")?).map_err(|_| "aso.dest_reg_id: range")?,
        domain_gvmi: u16_of(v, "aso_domain_gvmi")?,
        kind,
    }))
}

fn u16_of(v: &Value, k: &str) -> Result<u16, String> {
    u16::try_from(uint(v, k)?).map_err(|_| format!("{k}: out of range"))
}

fn loc_to_u64(loc: Option<u32>) -> u64 {
    loc.map_or(NO_LOC, u64::from)
}
