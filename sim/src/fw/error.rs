//! Why a firmware operation was refused.
//!
//! One variant per reason. The command interface turns each into a PRM status and a
//! syndrome ([`crate::cmd::status`]); tests and the pipeline see the typed value.

use super::table::TableType;

/// A refused firmware operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FwError {
    /// The table type number is not NIC RX (0), NIC TX (1) or FDB (4).
    #[error("flow table type {0} is not supported")]
    UnsupportedTableType(u8),
    /// FDB tables need the e-switch manager; other tables need `ft_support`.
    #[error("{0:?} flow tables are not available on this function")]
    TableTypeUnavailable(TableType),
    /// No flow table has this id.
    #[error("no flow table {0}")]
    NoSuchTable(u32),
    /// The command names a table type other than the table's own.
    #[error("flow table {id} is a {actual:?} table, not {given:?}")]
    TableTypeMismatch {
        /// The table.
        id: u32,
        /// Its type.
        actual: TableType,
        /// The type the command gave.
        given: TableType,
    },
    /// The level is above the type's `max_ft_level`.
    #[error("flow table level {level} is above the maximum {max}")]
    LevelTooHigh {
        /// Requested level.
        level: u8,
        /// `max_ft_level`.
        max: u8,
    },
    /// The size is above the type's `log_max_ft_size`.
    #[error("flow table log size {log_size} is above the maximum {max}")]
    TableTooLarge {
        /// Requested log size.
        log_size: u8,
        /// `log_max_ft_size`.
        max: u8,
    },
    /// The type does not support software-owned tables on this device.
    #[error("{0:?} tables cannot be software owned on this device")]
    SwOwnerUnsupported(TableType),
    /// A software-owned table's root is not a 64-byte aligned steering ICM address.
    #[error("SW-owned table root {0:#x} is not an aligned steering ICM address")]
    BadRootAddress(u64),
    /// The miss action number is not one the simulator knows.
    #[error("table miss action {0} is not supported")]
    BadMissAction(u8),
    /// A software-owned table's misses are in ICM; the firmware has none to set.
    #[error("flow table {0} is software owned: the firmware holds no groups, entries or miss action for it")]
    NotFirmwareOwned(u32),
    /// The kernel's root tables exist for the device's lifetime.
    #[error("flow table {0} is a root table and cannot be destroyed")]
    RootTable(u32),
    /// A forward (entry destination or miss) must go to a deeper table.
    #[error(
        "flow table {from} (level {from_level}) cannot forward to table {to} (level {to_level})"
    )]
    BadLevelOrder {
        /// Source table.
        from: u32,
        /// Its level.
        from_level: u8,
        /// Destination table.
        to: u32,
        /// Its level.
        to_level: u8,
    },
    /// The table still has groups or is still a destination or miss target.
    #[error("flow table {id} is busy: {reason}")]
    TableBusy {
        /// The table.
        id: u32,
        /// What still holds it.
        reason: &'static str,
    },
    /// No flow group with this id in the table.
    #[error("no flow group {group} in table {table}")]
    NoSuchGroup {
        /// The table.
        table: u32,
        /// The group.
        group: u32,
    },
    /// The group's index range is empty or does not fit the table.
    #[error("flow group range {start}..={end} does not fit a table of {size} entries")]
    BadGroupRange {
        /// First index.
        start: u32,
        /// Last index.
        end: u32,
        /// Table size.
        size: u64,
    },
    /// The group's index range overlaps another group's.
    #[error("flow group range {start}..={end} overlaps group {other}")]
    GroupOverlap {
        /// First index.
        start: u32,
        /// Last index.
        end: u32,
        /// The group already there.
        other: u32,
    },
    /// `match_criteria_enable` has bits beyond the seven sections.
    #[error("match criteria {0:#x} enables unknown sections")]
    BadCriteria(u8),
    /// The group still has entries.
    #[error("flow group {0} still has entries")]
    GroupBusy(u32),
    /// The flow index is outside the group's range.
    #[error("flow index {index} is outside group {group}")]
    IndexOutsideGroup {
        /// The index.
        index: u32,
        /// The group.
        group: u32,
    },
    /// Creating an entry at an index that is in use.
    #[error("flow index {0} is already in use")]
    EntryExists(u32),
    /// Modifying or deleting an entry that does not exist.
    #[error("no entry at flow index {index} of table {table}")]
    NoSuchEntry {
        /// The table.
        table: u32,
        /// The index.
        index: u32,
    },
    /// Action bits the simulator does not model (reformat, decap, modify header, VLAN,
    /// crypto, ASO...).
    #[error("flow context action bits {0:#x} are not supported")]
    UnsupportedAction(u16),
    /// An entry needs exactly one fate (allow, drop or forward), and lists only what its
    /// action bits announce.
    #[error("flow context action {action:#x} is inconsistent: {reason}")]
    BadFate {
        /// The action bits.
        action: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// A destination type the simulator does not model.
    #[error("destination type {0:#x} is not supported")]
    UnsupportedDestination(u32),
    /// A destination that the table's type cannot reach.
    #[error("a {table_type:?} table cannot forward to {what}")]
    DestinationNotAllowed {
        /// The table's type.
        table_type: TableType,
        /// The destination kind.
        what: &'static str,
    },
    /// Too many destinations or counters for the type's limits.
    #[error("{what}: {count} is above the limit {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A feature the simulator does not model (its name).
    #[error("not supported by the simulated device: {0}")]
    Unsupported(&'static str),
    /// No e-switch vport with this number.
    #[error("no vport {0}")]
    NoSuchVport(u16),
    /// The operation needs the e-switch manager.
    #[error("only the e-switch manager may do this")]
    NotEswitchManager,
    /// No TIR with this number.
    #[error("no TIR {0}")]
    NoSuchTir(u32),
    /// The TIR belongs to a QP and goes with it.
    #[error("TIR {tirn} belongs to QP {qpn}")]
    TirOwnedByQp {
        /// The TIR.
        tirn: u32,
        /// Its QP.
        qpn: u32,
    },
    /// The TIR is a destination of a flow entry.
    #[error("TIR {0} is still a flow destination")]
    TirBusy(u32),
    /// No QP with this number.
    #[error("no QP {0}")]
    NoSuchQp(u32),
    /// No live flow counter with this id (or the id is not the first of its bulk).
    #[error("no flow counter {0}")]
    NoSuchCounter(u32),
    /// The counter bulk is referenced by a flow entry.
    #[error("flow counter {0} is still used by a flow entry")]
    CounterBusy(u32),
    /// The bulk size is zero, not expressible, or above `log_max_flow_counter_bulk`.
    #[error("flow counter bulk of {0} counters is not allowed")]
    BadCounterBulk(u64),
    /// No packet reformat context with this id.
    #[error("no packet reformat context {0}")]
    NoSuchReformat(u32),
    /// Reformat data of this many bytes is not allowed (empty or above the size field).
    #[error("packet reformat data of {0} bytes is not allowed")]
    BadReformatSize(usize),
    /// Counters, object ids or firmware addresses ran out.
    #[error("out of {0}")]
    Exhausted(&'static str),
    /// The object belongs to another user context (uid).
    #[error("object belongs to uid {owner}, not uid {caller}")]
    UidMismatch {
        /// The object's uid.
        owner: u16,
        /// The caller's uid.
        caller: u16,
    },
    /// A firmware walk visited more tables than its budget (a guard against table graphs
    /// that fan out without end, not a PRM error).
    #[error("firmware table walk visited more than {0} tables")]
    WalkTooLong(usize),
}
