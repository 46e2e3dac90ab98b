//! `ste_ctrl_v*.json`: STE control words, applied op by op to a zeroed STE.

use crate::common::{
    boolean, format_of, hex_array, hex_field, same, same_bytes, string, uint, zero_ste, Tally,
};
use serde_json::Value;
use ste_builder::ste::{self, Connect, SteCtrl};
use ste_builder::SteFormat;

pub fn run(doc: &Value) -> Tally {
    let format = match format_of(doc) {
        Ok(f) => f,
        Err(e) => return Tally::unknown(e),
    };
    let mut t = Tally::default();
    t.run_cases(doc, "cases", |c| check(format, c));
    t
}

fn check(format: SteFormat, case: &Value) -> Result<(), String> {
    let ctrl = format.ctrl();
    let mut s = zero_ste();
    let ops = case["ops"].as_array().ok_or("no ops")?;
    for (i, op) in ops.iter().enumerate() {
        apply(format, ctrl, &mut s, op).map_err(|e| format!("op {i} ({}): {e}", op["op"]))?;
    }
    same_bytes("ste", &s, &hex_field(case, "ste")?)
}

fn apply(
    format: SteFormat,
    ctrl: &dyn SteCtrl,
    s: &mut [u8; 64],
    op: &Value,
) -> Result<(), String> {
    let u16_of = |k: &str| uint(op, k).map(|v| v as u16);
    match string(op, "op")? {
        "ste_init" => ctrl.init(
            s,
            u16_of("lu_type")?,
            boolean(op, "is_rx")?,
            u16_of("gvmi")?,
        ),
        "set_next_lu_type" => ctrl.set_next_lu_type(s, u16_of("lu_type")?),
        "get_next_lu_type" => same(
            "next_lu_type",
            u64::from(ctrl.next_lu_type(s)),
            uint(op, "result")?,
        )?,
        "set_miss_addr" => ctrl.set_miss_addr(s, uint(op, "miss_addr")?),
        "get_miss_addr" => same(
            "miss_addr",
            ctrl.miss_addr_as_rdma_core(s),
            uint(op, "result")?,
        )?,
        "set_hit_addr" => ctrl.set_hit_addr(s, uint(op, "icm_addr")?, uint(op, "ht_size")? as u32),
        "set_byte_mask" => ctrl.set_byte_mask(s, u16_of("byte_mask")?),
        "get_byte_mask" => same(
            "byte_mask",
            u64::from(ctrl.byte_mask(s)),
            uint(op, "result")?,
        )?,
        "set_hit_gvmi" => ctrl.set_hit_gvmi(s, u16_of("gvmi")?),
        "set_ctrl_always_hit_htbl" => ctrl.set_ctrl_always_hit_htbl(
            s,
            u16_of("byte_mask")?,
            u16_of("lu_type")?,
            uint(op, "icm_addr")?,
            uint(op, "num_of_entries")? as u32,
            u16_of("gvmi")?,
        ),
        "set_ctrl_always_miss" => {
            ctrl.set_ctrl_always_miss(s, uint(op, "miss_addr")?, u16_of("gvmi")?)
        }
        "set_bit_mask" => match string(op, "htbl_type")? {
            "legacy" => ste::set_bit_mask(s, &hex_array::<16>(op, "bit_mask")?),
            "match" => {}
            other => return Err(format!("unknown htbl_type {other}")),
        },
        "write_tag" => {
            let tag = hex_field(op, "tag")?;
            s[32..32 + tag.len()].copy_from_slice(&tag);
        }
        "prepare_for_postsend" => ctrl.prepare_for_postsend(s, uint(op, "ste_size")? as usize),
        "set_formatted_ste" => {
            let is_rx = match string(op, "nic_type")? {
                "rx" => true,
                "tx" => false,
                other => return Err(format!("unknown nic_type {other}")),
            };
            let connect = match string(op, "connect")? {
                "hit" => Connect::Hit {
                    lu_type: u16_of("next_htbl_lu_type")?,
                    byte_mask: u16_of("next_htbl_byte_mask")?,
                    icm_addr: uint(op, "next_htbl_icm_addr")?,
                    num_entries: uint(op, "next_htbl_num_of_entries")? as u32,
                },
                "miss" => Connect::Miss {
                    miss_addr: uint(op, "miss_icm_addr")?,
                },
                other => return Err(format!("unknown connect {other}")),
            };
            ste::set_formatted_ste(
                ctrl,
                s,
                u16_of("gvmi")?,
                is_rx,
                u16_of("htbl_lu_type")?,
                connect,
            );
        }
        "set_aso_ct_cross_dmn" => {
            ste_builder::action::set_aso_ct_cross_dmn(
                format,
                s,
                uint(op, "object_id")? as u32,
                uint(op, "offset")? as u32,
                uint(op, "dest_reg_id")? as u8,
                boolean(op, "direction")?,
            )
            .map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown op {other}")),
    }
    Ok(())
}
