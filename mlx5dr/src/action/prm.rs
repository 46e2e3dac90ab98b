//! PRM layouts of the action objects that `ste_builder::prm` (which carries what
//! rdma-core's `mlx5_ifc.h` declares) does not have: the TIR context fields a direct
//! TIR needs, the bulk fields of `ALLOC_FLOW_COUNTER` and `QUERY_FLOW_COUNTER`. Written
//! down from the PRM (the Linux kernel's `mlx5_ifc.h` states them), in the numbering of
//! `ste_builder::prm`: a field is a bit offset and width, bit 0 the MSB of byte 0.

/// `create_tir_in`: the header, then the `tirc` context at bit 0x100.
pub mod create_tir_in {
    use ste_builder::bits::BitField;
    /// Size: the header and a `tirc` of 0x780 bits.
    pub const SIZE_BITS: usize = 0x880;
    /// `tirc.disp_type`: 0 dispatches to one RQ (`inline_rqn`), 1 spreads by hash.
    pub const DISP_TYPE: BitField = BitField::new(0x120, 0x4);
    /// `tirc.inline_rqn`.
    pub const INLINE_RQN: BitField = BitField::new(0x1e8, 0x18);
    /// `tirc.transport_domain`.
    pub const TRANSPORT_DOMAIN: BitField = BitField::new(0x228, 0x18);
}

/// `alloc_flow_counter_in`: the bulk fields after the header.
pub mod alloc_flow_counter_in {
    use ste_builder::bits::BitField;
    /// A bulk of `2^n` counters (devices that support the log-size encoding).
    pub const FLOW_COUNTER_BULK_LOG_SIZE: BitField = BitField::new(0x73, 0x5);
    /// A bulk of `128 * n` counters, `n` a single bit (0: one counter).
    pub const FLOW_COUNTER_BULK: BitField = BitField::new(0x78, 0x8);
}

/// `query_flow_counter_in`.
pub mod query_flow_counter_in {
    use ste_builder::bits::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x100;
    /// Clear the counters once read.
    pub const CLEAR: BitField = BitField::new(0xc0, 0x1);
    /// How many consecutive counters to read (0 reads one).
    pub const NUM_OF_COUNTERS: BitField = BitField::new(0xd0, 0x10);
    /// The first counter.
    pub const FLOW_COUNTER_ID: BitField = BitField::new(0xe0, 0x20);
}

/// `query_flow_counter_out`: the header, then one `traffic_counter` per counter.
pub mod query_flow_counter_out {
    /// Where the `traffic_counter` array starts.
    pub const FLOW_STATISTICS_OFF: usize = 0x80;
}

/// `traffic_counter`.
pub mod traffic_counter {
    use ste_builder::bits::BitField;
    /// Size.
    pub const SIZE_BITS: usize = 0x80;
    /// Packets counted.
    pub const PACKETS: BitField = BitField::new(0x0, 0x40);
    /// Bytes counted.
    pub const OCTETS: BitField = BitField::new(0x40, 0x40);
}
