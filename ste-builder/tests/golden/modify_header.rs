//! `modify_header_v*.json`: user field → hardware field conversion, user modify action →
//! hardware action (and the refusals), the raw set/add/copy encoders, and the action
//! lists of an L3 decapsulation.

use crate::common::{
    boolean, format_of, hex_array, hex_field, same, same_bytes, string, uint, Tally,
};
use serde_json::Value;
use ste_builder::modify_header::{
    self as mh, HwModifyOp, ModifyCaps, ModifyError, ModifyField, HW_ACTION_SIZE,
};
use ste_builder::SteFormat;

pub fn run(doc: &Value) -> Tally {
    let format = match format_of(doc) {
        Ok(f) => f,
        Err(e) => return Tally::unknown(e),
    };
    let mut t = Tally::default();
    t.run_cases(doc, "field_cases", |c| check_field(format, c));
    t.run_cases(doc, "action_cases", |c| check_action(format, c));
    t.run_cases(doc, "rejected_action_cases", |c| check_rejected(format, c));
    t.run_cases(doc, "raw_cases", |c| check_raw(format, c));
    t.run_cases(doc, "decap_l3_cases", |c| check_decap_l3(format, c));
    t
}

/// The capabilities of a case.
fn caps_of(case: &Value) -> Result<ModifyCaps, String> {
    let c = &case["caps"];
    Ok(ModifyCaps {
        flex_parser_header_modify: boolean(c, "flex_parser_header_modify")?,
        gtpu_teid_enabled: boolean(c, "flex_protocols_gtpu_teid_enabled")?,
        flex_parser_id_gtpu_teid: small(c, "flex_parser_id_gtpu_teid")?,
    })
}

/// The capabilities the rejected cases were produced with: everything enabled (the
/// schema's "caps of the action cases"); the TEID parser id does not matter to them.
fn full_caps() -> ModifyCaps {
    ModifyCaps {
        flex_parser_header_modify: true,
        gtpu_teid_enabled: true,
        flex_parser_id_gtpu_teid: 0,
    }
}

/// An integer field that must fit a byte.
fn small(v: &Value, key: &str) -> Result<u8, String> {
    u8::try_from(uint(v, key)?).map_err(|_| format!("{key}: does not fit a byte"))
}

/// A field in the vectors' `{hw_field, start, end, l3_type, l4_type, flags}` form.
fn field_json(f: &ModifyField) -> Value {
    serde_json::json!({
        "hw_field": f.hw_field,
        "start": f.start,
        "end": f.end,
        "l3_type": f.l3 as u8,
        "l4_type": f.l4 as u8,
        "flags": u8::from(f.req_flex),
    })
}

fn check_field(format: SteFormat, case: &Value) -> Result<(), String> {
    let caps = caps_of(case)?;
    let sw_field =
        u16::try_from(uint(case, "sw_field")?).map_err(|_| "sw_field: not a u16".to_string())?;
    let got = mh::conv_sw_field(format, &caps, sw_field);
    same("found", got.is_some(), boolean(case, "found")?)?;
    match got {
        Some(f) => same("hw", field_json(&f), case["hw"].clone()),
        None => same("hw", &Value::Null, &case["hw"]),
    }
}

fn check_action(format: SteFormat, case: &Value) -> Result<(), String> {
    let caps = caps_of(case)?;
    let sw = hex_array::<8>(case, "sw_action")?;
    let got = mh::sw_to_hw(format, &caps, &sw).map_err(|e| format!("rejected: {e}"))?;

    let op_name = match got.op {
        HwModifyOp::Set { .. } => "set",
        HwModifyOp::Add { .. } => "add",
        HwModifyOp::Copy { .. } => "copy",
    };
    same("op", op_name, string(case, "op")?)?;
    same("dst_hw", field_json(&got.dst), case["dst_hw"].clone())?;
    let src = got.src.as_ref().map(field_json).unwrap_or(Value::Null);
    same("src_hw", &src, &case["src_hw"])?;

    let args = &case["args"];
    let want = match got.op {
        HwModifyOp::Set { .. } | HwModifyOp::Add { .. } => {
            let (hw_field, shifter, length, data) = (
                small(args, "hw_field")?,
                small(args, "shifter")?,
                small(args, "length")?,
                u32::try_from(uint(args, "data")?).map_err(|_| "data: not a u32")?,
            );
            if op_name == "set" {
                HwModifyOp::Set {
                    hw_field,
                    shifter,
                    length,
                    data,
                }
            } else {
                HwModifyOp::Add {
                    hw_field,
                    shifter,
                    length,
                    data,
                }
            }
        }
        HwModifyOp::Copy { .. } => HwModifyOp::Copy {
            dst_hw_field: small(args, "dst_hw_field")?,
            dst_shifter: small(args, "dst_shifter")?,
            dst_len: small(args, "dst_len")?,
            src_hw_field: small(args, "src_hw_field")?,
            src_shifter: small(args, "src_shifter")?,
        },
    };
    same("args", got.op, want)?;
    same_bytes("hw_action", &got.hw_action, &hex_field(case, "hw_action")?)
}

fn check_rejected(format: SteFormat, case: &Value) -> Result<(), String> {
    let sw = hex_array::<8>(case, "sw_action")?;
    let reason = match mh::sw_to_hw(format, &full_caps(), &sw) {
        Ok(a) => return Err(format!("accepted as {}", hex::encode(a.hw_action))),
        Err(ModifyError::InvalidField { .. }) => "invalid field",
        Err(ModifyError::InvalidCopyField { .. }) => "invalid src/dst field",
        Err(ModifyError::LengthOffsetExceedsField { .. }) => "length + offset exceeds field",
        Err(ModifyError::LengthExceedsField { .. }) => "length exceeds field",
        Err(e) => return Err(format!("unexpected error {e}")),
    };
    same("reason", reason, string(case, "reason")?)
}

fn check_raw(format: SteFormat, case: &Value) -> Result<(), String> {
    let mut hw = [0u8; HW_ACTION_SIZE];
    match string(case, "fn")? {
        "set_action_set" | "set_action_add" => {
            let (hw_field, shifter, length) = (
                small(case, "hw_field")?,
                small(case, "shifter")?,
                small(case, "length")?,
            );
            let data = u32::try_from(uint(case, "data")?).map_err(|_| "data: not a u32")?;
            if string(case, "fn")? == "set_action_set" {
                mh::set_action_set(format, &mut hw, hw_field, shifter, length, data);
            } else {
                mh::set_action_add(format, &mut hw, hw_field, shifter, length, data);
            }
        }
        "set_action_copy" => mh::set_action_copy(
            format,
            &mut hw,
            small(case, "dst_hw_field")?,
            small(case, "dst_shifter")?,
            small(case, "dst_len")?,
            small(case, "src_hw_field")?,
            small(case, "src_shifter")?,
        ),
        other => return Err(format!("unknown fn {other}")),
    }
    same_bytes("hw_action", &hw, &hex_field(case, "hw_action")?)
}

fn check_decap_l3(format: SteFormat, case: &Value) -> Result<(), String> {
    let data = hex_field(case, "data")?;
    let size = usize::try_from(uint(case, "hw_action_sz")?).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size];
    let result = mh::decap_l3_list(format, &data, size, &mut buf);
    let rc = match &result {
        Ok(_) => 0,
        Err(e) => e.errno(),
    };
    same(
        "rc",
        u64::try_from(rc).unwrap_or(u64::MAX),
        uint(case, "rc")?,
    )?;
    let Ok(used) = result else {
        // A refused list leaves the buffer untouched.
        if buf.iter().any(|&b| b != 0) {
            return Err("refused, yet the buffer was written".into());
        }
        return Ok(());
    };
    same(
        "used_hw_action_num",
        used as u64,
        uint(case, "used_hw_action_num")?,
    )?;
    let want = hex_field(case, "hw_actions")?;
    let written = (used * HW_ACTION_SIZE).min(buf.len());
    same_bytes("hw_actions", &buf[..written], &want)?;
    if buf[written..].iter().any(|&b| b != 0) {
        return Err("bytes after the used actions were written".into());
    }
    Ok(())
}
