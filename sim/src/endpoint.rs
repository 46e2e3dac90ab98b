//! Where a packet can leave software steering: the meanings of firmware-owned ICM
//! addresses and of flow-table destinations.
//!
//! STEs end a lookup by hitting (or missing to) an address. Most addresses are ICM lines
//! the driver wrote; a few belong to the firmware (the drop address, the TX allow address,
//! a vport's or the uplink's address, a firmware flow table's entry point). This is the
//! shared vocabulary of the firmware model ([`crate::fw`]) and the packet pipeline
//! ([`crate::pipeline`]).

/// A firmware-owned destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// The packet is dropped.
    Drop,
    /// NIC TX: the packet is sent to the wire.
    Allow,
    /// E-switch: the packet is delivered to this vport (the e-switch manager is one).
    Vport(u16),
    /// E-switch: the packet leaves through the uplink.
    Uplink,
    /// The packet continues in a firmware flow table (by table id).
    FlowTable(u32),
    /// NIC RX: the packet is delivered to this TIR.
    Tir(u32),
    /// NIC RX: the packet is delivered to this QP.
    Qp(u32),
}
