//! `crc32.json`: the steering CRC and the hash index.

use crate::common::{hex_field, same, string, uint, Tally};
use serde_json::Value;
use ste_builder::hash::{crc32, hash_index, HtblType};

pub fn run(doc: &Value) -> Tally {
    let mut t = Tally::default();
    t.run_cases(doc, "cases", |c| {
        let data = hex_field(c, "data")?;
        same("crc", u64::from(crc32(&data)), uint(c, "crc")?)
    });
    t.run_cases(doc, "hash_cases", |c| {
        let htbl_type = match string(c, "htbl_type")? {
            "legacy" => HtblType::Legacy,
            "match" => HtblType::Match,
            other => return Err(format!("unknown htbl_type {other}")),
        };
        let ste = hex_field(c, "ste")?;
        let tag = hex_field(c, "tag")?;
        // The hash reads the tag from the STE; check that the vector agrees with itself.
        same("tag in ste", &ste[32..32 + tag.len()], &tag[..])?;
        let byte_mask = uint(c, "byte_mask")? as u16;
        let n = uint(c, "num_entries")? as u32;
        let index = hash_index(htbl_type, byte_mask, n, &ste[32..]);
        same("index", u64::from(index), uint(c, "index")?)
    });
    t
}
