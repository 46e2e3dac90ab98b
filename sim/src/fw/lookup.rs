//! Packet lookup in firmware-owned tables: the verdicts of the kernel flow path.
//!
//! A packet is given as an `fte_match_param` value holding its header fields (the packet
//! parser produces it). Within a table the entries are tried in flow-index order, which
//! is group order because groups are disjoint index ranges; the first entry whose group
//! mask selects equal bits in packet and entry value wins. No match means the table's
//! miss action. A walk follows forwards into deeper firmware tables until every copy of
//! the packet has left the firmware: dropped, allowed to the wire, delivered to a vport,
//! the uplink, a TIR or a QP, or handed to a software-owned table, where the packet
//! continues in ICM from that table's root.

use ste_builder::MatchParam;

use super::{
    Destination, Fate, Firmware, FlowTable, Fte, FwError, MissAction, TableOwner, TableType,
};
use crate::endpoint::Terminal;

/// The most table visits one walk makes, over all copies of the packet. Forwards between
/// firmware tables go to strictly higher levels, so chains are short, but entries with
/// many destinations can fan out; the budget keeps a walk's cost bounded.
pub const MAX_WALK_TABLES: usize = 4096;

/// The outcome of looking a packet up in one firmware table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLookup<'a> {
    /// This entry matched.
    Hit(&'a Fte),
    /// No entry matched; the table's miss action applies.
    Miss(MissAction),
}

/// One table a walk passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwHop {
    /// The table.
    pub table_id: u32,
    /// The entry that matched, or `None` for a miss.
    pub flow_index: Option<u32>,
}

/// Where a copy of the packet left the firmware tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwExit {
    /// A firmware destination: drop, allow, vport, uplink, TIR or QP (never
    /// [`Terminal::FlowTable`]: firmware tables are walked through).
    Terminal(Terminal),
    /// A software-owned table: the packet continues in ICM at the root of its side.
    SwTable {
        /// The table.
        table_id: u32,
        /// RX-side root (NIC RX and FDB tables).
        root_rx: Option<u64>,
        /// TX-side root (NIC TX and FDB tables).
        root_tx: Option<u64>,
    },
}

/// The way of one copy of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPath {
    /// Tables passed, in order.
    pub hops: Vec<FwHop>,
    /// The flow tag of the last entry on the way that set one.
    pub flow_tag: Option<u32>,
    /// Where the copy left.
    pub exit: FwExit,
}

/// A packet's walk through firmware tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwWalk {
    /// One path per copy (an entry with several destinations makes several copies).
    pub paths: Vec<FwPath>,
    /// Counters of the entries that matched, once per matched entry; the caller counts
    /// the packet in each ([`Firmware::count`]).
    pub counters: Vec<u32>,
}

impl Firmware {
    /// Looks `packet` up in firmware-owned table `table_id`.
    pub fn lookup(&self, table_id: u32, packet: &MatchParam) -> Result<TableLookup<'_>, FwError> {
        let t = self.table(table_id).ok_or(FwError::NoSuchTable(table_id))?;
        if matches!(t.owner, TableOwner::Software { .. }) {
            return Err(FwError::NotFirmwareOwned(table_id));
        }
        for e in self.entries(table_id) {
            let g = self.group(e.group_id).ok_or(FwError::NoSuchGroup {
                table: table_id,
                group: e.group_id,
            })?;
            if g.matches(packet, &e.value) {
                return Ok(TableLookup::Hit(e));
            }
        }
        Ok(TableLookup::Miss(t.miss))
    }

    /// Where a table type's default miss sends a packet: NIC RX drops it, NIC TX sends it
    /// to the wire, FDB delivers it to the e-switch manager's vport (the same defaults as
    /// software steering's, whose default addresses are these).
    pub fn default_miss(&self, ty: TableType) -> Terminal {
        match ty {
            TableType::NicRx => Terminal::Drop,
            TableType::NicTx => Terminal::Allow,
            TableType::Fdb => Terminal::Vport(self.profile().esw_manager_vport),
        }
    }

    /// Walks `packet` from table `table_id` (firmware or software owned) until every copy
    /// has left the firmware tables.
    pub fn walk(&self, table_id: u32, packet: &MatchParam) -> Result<FwWalk, FwError> {
        let mut state = WalkState {
            walk: FwWalk::default(),
            budget: MAX_WALK_TABLES,
        };
        self.walk_from(table_id, packet, Vec::new(), None, &mut state)?;
        Ok(state.walk)
    }

    fn walk_from(
        &self,
        table_id: u32,
        packet: &MatchParam,
        mut hops: Vec<FwHop>,
        tag: Option<u32>,
        state: &mut WalkState,
    ) -> Result<(), FwError> {
        state.budget = state
            .budget
            .checked_sub(1)
            .ok_or(FwError::WalkTooLong(MAX_WALK_TABLES))?;
        let t = self.table(table_id).ok_or(FwError::NoSuchTable(table_id))?;
        if let Some(exit) = software_exit(t) {
            state.walk.paths.push(FwPath {
                hops,
                flow_tag: tag,
                exit,
            });
            return Ok(());
        }
        match self.lookup(table_id, packet)? {
            TableLookup::Miss(miss) => {
                hops.push(FwHop {
                    table_id,
                    flow_index: None,
                });
                match miss {
                    MissAction::Default => {
                        leave(&mut state.walk, hops, tag, self.default_miss(t.table_type))
                    }
                    MissAction::Forward(next) => self.walk_from(next, packet, hops, tag, state)?,
                }
            }
            TableLookup::Hit(e) => {
                hops.push(FwHop {
                    table_id,
                    flow_index: Some(e.flow_index),
                });
                state.walk.counters.extend_from_slice(&e.action.counters);
                let tag = match e.action.flow_tag {
                    0 => tag,
                    t => Some(t),
                };
                match &e.action.fate {
                    Fate::Drop => leave(&mut state.walk, hops, tag, Terminal::Drop),
                    Fate::Allow => leave(&mut state.walk, hops, tag, Terminal::Allow),
                    Fate::Forward(dests) => {
                        for d in dests {
                            let terminal = match *d {
                                Destination::FlowTable(next) => {
                                    self.walk_from(next, packet, hops.clone(), tag, state)?;
                                    continue;
                                }
                                Destination::Vport(n) => Terminal::Vport(n),
                                Destination::Uplink => Terminal::Uplink,
                                Destination::Tir(n) => {
                                    self.tir(n).ok_or(FwError::NoSuchTir(n))?.terminal()
                                }
                            };
                            leave(&mut state.walk, hops.clone(), tag, terminal);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A walk under way: what it found so far and how many table visits it has left.
struct WalkState {
    walk: FwWalk,
    budget: usize,
}

/// Records a copy that left at a firmware destination.
fn leave(out: &mut FwWalk, hops: Vec<FwHop>, flow_tag: Option<u32>, terminal: Terminal) {
    out.paths.push(FwPath {
        hops,
        flow_tag,
        exit: FwExit::Terminal(terminal),
    });
}

/// The exit into a software-owned table, or `None` for a firmware-owned one.
fn software_exit(t: &FlowTable) -> Option<FwExit> {
    let TableOwner::Software { root_0, root_1 } = t.owner else {
        return None;
    };
    let (root_rx, root_tx) = match t.table_type {
        TableType::NicRx => (Some(root_0), None),
        TableType::NicTx => (None, Some(root_0)),
        TableType::Fdb => (Some(root_0), Some(root_1)),
    };
    Some(FwExit::SwTable {
        table_id: t.id,
        root_rx,
        root_tx,
    })
}
