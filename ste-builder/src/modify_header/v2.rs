//! STE v2 (ConnectX-7) modify-header fields. v2 encodes actions exactly as v1 and
//! numbers fields as v1, except that the metadata registers moved.

use super::v1::{self, fields};
use super::{FieldTables, ModifyField};

/// v2's hardware fields of metadata registers C0..C5.
mod reg {
    pub const REGISTER_2_0: u8 = 0x90;
    pub const REGISTER_2_1: u8 = 0x91;
    pub const REGISTER_1_0: u8 = 0x92;
    pub const REGISTER_1_1: u8 = 0x93;
    pub const REGISTER_0_0: u8 = 0x94;
    pub const REGISTER_0_1: u8 = 0x95;
}

const V2_FIELDS: [(u16, ModifyField); 36] = fields([
    reg::REGISTER_0_0,
    reg::REGISTER_0_1,
    reg::REGISTER_1_0,
    reg::REGISTER_1_1,
    reg::REGISTER_2_0,
    reg::REGISTER_2_1,
]);

/// v2 reaches flex-parser fields through v1's table.
pub(super) static TABLES: FieldTables = FieldTables {
    fields: &V2_FIELDS,
    flex_fields: &v1::FLEX_FIELDS,
};
