//! PRM facts of the command interface that [`crate::prm`] does not carry: opcodes,
//! enumerations, and the fields that rdma-core's `mlx5_ifc.h` leaves out (it declares
//! only what rdma-core itself sends; the kernel and DPDK send the rest). These come from
//! the PRM as the Linux kernel's `mlx5_ifc.h` states it, in the same numbering as
//! [`crate::prm`]: a field is a bit offset and width, bit 0 the MSB of byte 0. The
//! driver builds these commands and the simulator decodes them from the same layouts.

use crate::bits::BitField;

/// Command opcodes.
pub mod opcode {
    /// `QUERY_HCA_CAP`.
    pub const QUERY_HCA_CAP: u16 = 0x100;
    /// `QUERY_ESW_FUNCTIONS`.
    pub const QUERY_ESW_FUNCTIONS: u16 = 0x740;
    /// `QUERY_ESW_VPORT_CONTEXT`.
    pub const QUERY_ESW_VPORT_CONTEXT: u16 = 0x752;
    /// `QUERY_NIC_VPORT_CONTEXT`.
    pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
    /// `CREATE_TIR`.
    pub const CREATE_TIR: u16 = 0x900;
    /// `DESTROY_TIR`.
    pub const DESTROY_TIR: u16 = 0x902;
    /// `CREATE_FLOW_TABLE`.
    pub const CREATE_FLOW_TABLE: u16 = 0x930;
    /// `ALLOC_PACKET_REFORMAT_CONTEXT`.
    pub const ALLOC_PACKET_REFORMAT_CONTEXT: u16 = 0x93d;
    /// `DEALLOC_PACKET_REFORMAT_CONTEXT`.
    pub const DEALLOC_PACKET_REFORMAT_CONTEXT: u16 = 0x93e;
    /// `DESTROY_FLOW_TABLE`.
    pub const DESTROY_FLOW_TABLE: u16 = 0x931;
    /// `QUERY_FLOW_TABLE`.
    pub const QUERY_FLOW_TABLE: u16 = 0x932;
    /// `CREATE_FLOW_GROUP`.
    pub const CREATE_FLOW_GROUP: u16 = 0x933;
    /// `DESTROY_FLOW_GROUP`.
    pub const DESTROY_FLOW_GROUP: u16 = 0x934;
    /// `SET_FLOW_TABLE_ENTRY`.
    pub const SET_FLOW_TABLE_ENTRY: u16 = 0x936;
    /// `DELETE_FLOW_TABLE_ENTRY`.
    pub const DELETE_FLOW_TABLE_ENTRY: u16 = 0x938;
    /// `ALLOC_FLOW_COUNTER`.
    pub const ALLOC_FLOW_COUNTER: u16 = 0x939;
    /// `DEALLOC_FLOW_COUNTER`.
    pub const DEALLOC_FLOW_COUNTER: u16 = 0x93a;
    /// `QUERY_FLOW_COUNTER`.
    pub const QUERY_FLOW_COUNTER: u16 = 0x93b;
    /// `MODIFY_FLOW_TABLE`.
    pub const MODIFY_FLOW_TABLE: u16 = 0x93c;
    /// `SYNC_STEERING`.
    pub const SYNC_STEERING: u16 = 0xb00;
}

/// `flow_context.action` bits.
pub mod action {
    /// Allow (NIC TX: to the wire).
    pub const ALLOW: u16 = 0x1;
    /// Drop.
    pub const DROP: u16 = 0x2;
    /// Forward to the destination list.
    pub const FWD_DEST: u16 = 0x4;
    /// Count in the counter list.
    pub const COUNT: u16 = 0x8;
}

/// `dest_format.destination_type` values.
pub mod dest_type {
    /// An e-switch vport (`destination_id` is the vport number; 0xffff is the uplink).
    pub const VPORT: u8 = 0x0;
    /// A flow table.
    pub const FLOW_TABLE: u8 = 0x1;
    /// A TIR.
    pub const TIR: u8 = 0x2;
    /// The uplink.
    pub const UPLINK: u8 = 0x8;
}

/// `flow_table_context.table_miss_action` values.
pub mod miss_action {
    /// The table type's default.
    pub const DEFAULT: u8 = 0;
    /// Go to `table_miss_id`.
    pub const FORWARD: u8 = 1;
}

/// `modify_flow_table_in.modify_field_select` bits.
pub mod modify_field {
    /// `table_miss_action` and `table_miss_id`.
    pub const MISS_TABLE_ID: u16 = 1 << 0;
    /// `lag_master_next_table_id`.
    pub const LAG_NEXT_TABLE_ID: u16 = 1 << 15;
}

/// `SET_FLOW_TABLE_ENTRY` `op_mod` values.
pub mod set_fte_op {
    /// Create an entry at a free index.
    pub const CREATE: u16 = 0;
    /// Replace the entry at an index.
    pub const MODIFY: u16 = 1;
}

/// `modify_flow_table_in`.
pub mod modify_flow_table_in {
    use super::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x200;
    /// Other vport.
    pub const OTHER_VPORT: BitField = BitField::new(0x40, 0x1);
    /// Which context fields to change.
    pub const MODIFY_FIELD_SELECT: BitField = BitField::new(0x70, 0x10);
    /// Table type.
    pub const TABLE_TYPE: BitField = BitField::new(0x80, 0x8);
    /// Table id.
    pub const TABLE_ID: BitField = BitField::new(0xa8, 0x18);
    /// Start of the `flow_table_context`.
    pub const FLOW_TABLE_CONTEXT_OFF: usize = 0xc0;
}

/// `create_flow_group_in`: the kernel's fields (rdma-core sends an always-hit group with
/// all of these zero).
pub mod create_flow_group_in {
    use super::BitField;
    /// Size up to the end of `match_criteria` (the layout pads to 0x2000 bits).
    pub const MIN_BITS: usize = 0x1200;
    /// Group type (0: a classic match group).
    pub const GROUP_TYPE: BitField = BitField::new(0x8c, 0x4);
    /// First flow index.
    pub const START_FLOW_INDEX: BitField = BitField::new(0xe0, 0x20);
    /// Last flow index.
    pub const END_FLOW_INDEX: BitField = BitField::new(0x120, 0x20);
    /// Enabled sections of the mask.
    pub const MATCH_CRITERIA_ENABLE: BitField = BitField::new(0x1f8, 0x8);
    /// Start of the `fte_match_param` mask.
    pub const MATCH_CRITERIA_OFF: usize = 0x200;
}

/// `flow_context`: the kernel's fields beyond rdma-core's.
pub mod flow_context {
    use super::BitField;
    /// Packet reformat context (with the reformat action).
    pub const PACKET_REFORMAT_ID: BitField = BitField::new(0xc0, 0x20);
    /// Modify-header context (with the modify-header action).
    pub const MODIFY_HEADER_ID: BitField = BitField::new(0xe0, 0x20);
    /// Start of the `fte_match_param` value.
    pub const MATCH_VALUE_OFF: usize = 0x200;
}

/// `alloc_flow_counter_in`: the bulk fields.
pub mod alloc_flow_counter_in {
    use super::BitField;
    /// Bulk of `2^n` counters (newer devices; 0 when unused).
    pub const FLOW_COUNTER_BULK_LOG_SIZE: BitField = BitField::new(0x73, 0x5);
    /// Bulk of `128 * n` counters, `n` a single bit (0: one counter).
    pub const FLOW_COUNTER_BULK: BitField = BitField::new(0x78, 0x8);
}

/// `query_flow_counter_in`.
pub mod query_flow_counter_in {
    use super::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x100;
    /// Clear the counters after reading them.
    pub const CLEAR: BitField = BitField::new(0xc0, 0x1);
    /// How many consecutive counters (0 means one).
    pub const NUM_OF_COUNTERS: BitField = BitField::new(0xd0, 0x10);
    /// First counter.
    pub const FLOW_COUNTER_ID: BitField = BitField::new(0xe0, 0x20);
}

/// `query_flow_counter_out`.
pub mod query_flow_counter_out {
    /// Start of the `traffic_counter` array.
    pub const FLOW_STATISTICS_OFF: usize = 0x80;
}

/// `traffic_counter`.
pub mod traffic_counter {
    use super::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x80;
    /// Packets.
    pub const PACKETS: BitField = BitField::new(0x0, 0x40);
    /// Bytes.
    pub const OCTETS: BitField = BitField::new(0x40, 0x40);
}

/// `query_nic_vport_context_in`: the vport fields.
pub mod query_nic_vport_context_in {
    use super::BitField;
    /// Query another vport's context.
    pub const OTHER_VPORT: BitField = BitField::new(0x40, 0x1);
    /// That vport.
    pub const VPORT_NUMBER: BitField = BitField::new(0x50, 0x10);
}

/// `alloc_packet_reformat_context_in`: the header, then `packet_reformat_context_in`
/// at bit 0xe0 whose data runs on past the fixed part.
pub mod alloc_packet_reformat_context_in {
    use super::BitField;
    /// Through the first two data bytes.
    pub const SIZE_BITS: usize = 0x120;
    /// `packet_reformat_context.reformat_type`.
    pub const REFORMAT_TYPE: BitField = BitField::new(0xe5, 0x3);
    /// `packet_reformat_context.reformat_data_size` in bytes.
    pub const REFORMAT_DATA_SIZE: BitField = BitField::new(0xf6, 0xa);
    /// Where `packet_reformat_context.reformat_data` starts.
    pub const REFORMAT_DATA_OFF: usize = 0x110;
}

/// `alloc_packet_reformat_context_out`.
pub mod alloc_packet_reformat_context_out {
    use super::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x80;
    /// The new context's id.
    pub const PACKET_REFORMAT_ID: BitField = BitField::new(0x40, 0x20);
}

/// `dealloc_packet_reformat_context_in`.
pub mod dealloc_packet_reformat_context_in {
    use super::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x80;
    /// The context to free.
    pub const PACKET_REFORMAT_ID: BitField = BitField::new(0x40, 0x20);
}

/// `create_tir_in`: the header, then the `tirc` context at bit 0x100.
pub mod create_tir_in {
    use super::BitField;
    /// Size: the header and a `tirc` of 0x780 bits.
    pub const SIZE_BITS: usize = 0x880;
    /// `tirc.disp_type`: 0 dispatches to one RQ (`inline_rqn`), 1 spreads by hash.
    pub const DISP_TYPE: BitField = BitField::new(0x120, 0x4);
    /// `tirc.inline_rqn`.
    pub const INLINE_RQN: BitField = BitField::new(0x1e8, 0x18);
    /// `tirc.transport_domain`.
    pub const TRANSPORT_DOMAIN: BitField = BitField::new(0x228, 0x18);
}

/// `query_esw_functions_out`.
pub mod query_esw_functions_out {
    /// The output up to the end of `host_params_context`, all a driver reads. rdma-core
    /// 44 hands a buffer of that and a little more (not the whole layout) when the
    /// device has no scalable functions.
    pub const MIN_BITS: usize = 0x280;
}
