//! PRM command numbers the driver sends that `ste_builder::prm` (layouts only) does not
//! carry: opcodes and the `QUERY_HCA_CAP` capability-page selectors.
//!
//! These are written down here from the PRM rather than taken from the simulator, so
//! that the simulator checks the driver's encoding instead of sharing it.

/// `QUERY_HCA_CAP`.
pub const QUERY_HCA_CAP: u16 = 0x100;
/// `QUERY_ESW_FUNCTIONS`.
pub const QUERY_ESW_FUNCTIONS: u16 = 0x740;
/// `QUERY_ESW_VPORT_CONTEXT`.
pub const QUERY_ESW_VPORT_CONTEXT: u16 = 0x752;
/// `QUERY_NIC_VPORT_CONTEXT`.
pub const QUERY_NIC_VPORT_CONTEXT: u16 = 0x754;
/// `SYNC_STEERING`.
pub const SYNC_STEERING: u16 = 0xb00;
/// `CREATE_TIR`.
pub const CREATE_TIR: u16 = 0x900;
/// `DESTROY_TIR`.
pub const DESTROY_TIR: u16 = 0x902;
/// `CREATE_FLOW_TABLE`.
pub const CREATE_FLOW_TABLE: u16 = 0x930;
/// `DESTROY_FLOW_TABLE`.
pub const DESTROY_FLOW_TABLE: u16 = 0x931;
/// `ALLOC_FLOW_COUNTER`.
pub const ALLOC_FLOW_COUNTER: u16 = 0x939;
/// `DEALLOC_FLOW_COUNTER`.
pub const DEALLOC_FLOW_COUNTER: u16 = 0x93a;
/// `QUERY_FLOW_COUNTER`.
pub const QUERY_FLOW_COUNTER: u16 = 0x93b;

/// `QUERY_HCA_CAP` `op_mod`: the capability type in bits 15..1, and bit 0 set for the
/// current (rather than the maximum) values.
pub mod cap {
    /// Ask for the current values (bit 0 of `op_mod`).
    pub const CURRENT: u16 = 1;
    /// `cmd_hca_cap`: the general device page.
    pub const GENERAL: u16 = 0x0 << 1;
    /// `roce_cap`.
    pub const ROCE: u16 = 0x4 << 1;
    /// `flow_table_nic_cap`: NIC RX/TX flow tables.
    pub const NIC_FLOW_TABLE: u16 = 0x7 << 1;
    /// `flow_table_eswitch_cap`: FDB flow tables.
    pub const ESW_FLOW_TABLE: u16 = 0x8 << 1;
    /// `e_switch_cap`.
    pub const ESW: u16 = 0x9 << 1;
    /// `device_mem_cap`: the SW-ICM ranges.
    pub const DEVICE_MEMORY: u16 = 0xf << 1;
}

/// `flex_parser_protocols` bits: the protocols a flex parser is assigned to (only then
/// is the matching `flex_parser_id_*` capability meaningful).
pub mod flex {
    /// GENEVE.
    pub const GENEVE: u32 = 1 << 3;
    /// MPLS over GRE.
    pub const MPLS_OVER_GRE: u32 = 1 << 4;
    /// MPLS over UDP.
    pub const MPLS_OVER_UDP: u32 = 1 << 5;
    /// VXLAN-GPE.
    pub const VXLAN_GPE: u32 = 1 << 7;
    /// ICMPv4.
    pub const ICMP_V4: u32 = 1 << 8;
    /// ICMPv6.
    pub const ICMP_V6: u32 = 1 << 9;
    /// GENEVE TLV option 0.
    pub const GENEVE_OPT_0: u32 = 1 << 10;
    /// GTP-U.
    pub const GTPU: u32 = 1 << 11;
    /// GTP-U dword 2.
    pub const GTPU_DW_2: u32 = 1 << 16;
    /// GTP-U first extension header dword 0.
    pub const GTPU_FIRST_EXT_DW_0: u32 = 1 << 17;
    /// GTP-U dword 0.
    pub const GTPU_DW_0: u32 = 1 << 18;
    /// GTP-U TEID.
    pub const GTPU_TEID: u32 = 1 << 19;
}

/// `general_obj_types` bit of the modify-header argument object.
pub const OBJ_TYPE_HEADER_MODIFY_ARGUMENT: u32 = 0x23;
