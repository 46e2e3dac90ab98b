//! The firmware: flow tables (firmware and software owned), flow groups, flow entries,
//! counters and receive endpoints, with the checks the device applies when they are
//! created, changed and destroyed.
//!
//! This is the logic under the PRM command interface ([`crate::cmd`] decodes mailboxes
//! and calls these methods), and the model of the kernel flow path: the root table of
//! each table type exists from the start, and packets are looked up in firmware tables
//! with [`Firmware::lookup`] and [`Firmware::walk`] ([`lookup`]).
//!
//! Rules enforced (as the device does):
//! - table types NIC RX, NIC TX and FDB (FDB only on the e-switch manager); level at
//!   most `max_ft_level`, size at most `2^log_max_ft_size`;
//! - a software-owned table needs `sw_owner`/`sw_owner_v2` and 64-byte aligned roots
//!   inside steering ICM; it holds no groups, entries or firmware miss action;
//! - a forward (entry destination or table miss) stays in the table type and goes to a
//!   firmware-owned table of a higher level, or to any software-owned table (rdma-core's
//!   own firmware tables forward to software tables of their own level);
//! - groups are disjoint index ranges; an entry lies in its group's range;
//! - nothing is destroyed while something refers to it (a table with groups or that is
//!   a destination or miss target, a group with entries, a counter, TIR or QP an entry
//!   names): the operation fails and nothing changes;
//! - objects belong to the uid that created them; uid 0 (the kernel) may use any.

pub mod addr;
pub mod counter;
pub mod error;
pub mod lookup;
pub mod reformat;
pub mod table;
pub mod tir;

use std::collections::BTreeMap;

use ste_builder::{MatchCriteria, MatchParam, Section};

use crate::endpoint::Terminal;
use crate::profile::{FlowTableProps, Profile};
use addr::AddrWindow;
use counter::{check_uid, Counters, Traffic};
pub use error::FwError;
pub use lookup::{FwExit, FwHop, FwPath, FwWalk, TableLookup};
use reformat::{Reformat, Reformats};
pub use table::{
    Destination, Fate, FlowGroup, FlowTable, Fte, FteAction, MissAction, TableOwner, TableType,
};
use tir::{Qp, Tir};

/// The largest id of a table, group, TIR or QP (24-bit PRM fields).
pub const MAX_OBJECT_ID: u32 = (1 << 24) - 1;

/// The first QP number handed out (low numbers are special QPs on a real device).
const FIRST_QPN: u32 = 0x100;

/// What `CREATE_FLOW_TABLE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableAttr {
    /// Type.
    pub table_type: TableType,
    /// Level.
    pub level: u8,
    /// `2^log_size` flow indexes.
    pub log_size: u8,
    /// `Some((root_0, root_1))` for a software-owned table.
    pub sw_owner: Option<(u64, u64)>,
    /// Miss behaviour (firmware-owned tables).
    pub miss: MissAction,
    /// `termination_table`.
    pub termination: bool,
    /// `reformat_en`.
    pub reformat_en: bool,
    /// `decap_en`.
    pub decap_en: bool,
}

impl TableAttr {
    /// A firmware-owned table of `table_type` at `level` with `2^log_size` entries and
    /// the default miss.
    pub fn firmware(table_type: TableType, level: u8, log_size: u8) -> TableAttr {
        TableAttr {
            table_type,
            level,
            log_size,
            sw_owner: None,
            miss: MissAction::Default,
            termination: false,
            reformat_en: false,
            decap_en: false,
        }
    }

    /// A software-owned table with ICM roots `root_0` and `root_1`.
    pub fn software(table_type: TableType, level: u8, root_0: u64, root_1: u64) -> TableAttr {
        TableAttr {
            sw_owner: Some((root_0, root_1)),
            ..TableAttr::firmware(table_type, level, 0)
        }
    }
}

/// A stand-alone TIR, as created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TirInfo {
    /// TIR number.
    pub tirn: u32,
    /// Its ICM address.
    pub icm_addr: u64,
}

/// What `CREATE_FLOW_GROUP` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// First flow index.
    pub start: u32,
    /// Last flow index (inclusive).
    pub end: u32,
    /// `match_criteria_enable`: the sections the mask applies to.
    pub criteria: u8,
    /// The match mask (`match_criteria`).
    pub mask: MatchParam,
}

/// Whether `SET_FLOW_TABLE_ENTRY` creates an entry or replaces an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOp {
    /// The index must be free.
    Create,
    /// The index must hold an entry; it is replaced.
    Modify,
}

/// The firmware state of one device.
#[derive(Debug)]
pub struct Firmware {
    profile: Profile,
    tables: BTreeMap<u32, FlowTable>,
    groups: BTreeMap<u32, FlowGroup>,
    /// Entries by (table id, flow index).
    entries: BTreeMap<(u32, u32), Fte>,
    counters: Counters,
    tirs: BTreeMap<u32, Tir>,
    qps: BTreeMap<u32, Qp>,
    reformats: Reformats,
    addrs: AddrWindow,
    roots: BTreeMap<TableType, u32>,
    next_table: u32,
    next_group: u32,
    next_tirn: u32,
    next_qpn: u32,
    syncs: u64,
}

/// Takes the next id from `next`, or fails when the 24-bit space is used up.
fn take_id(next: &mut u32, what: &'static str) -> Result<u32, FwError> {
    if *next > MAX_OBJECT_ID {
        return Err(FwError::Exhausted(what));
    }
    *next += 1;
    Ok(*next - 1)
}

impl Firmware {
    /// A device with `profile`'s capabilities, no objects but the kernel's root table of
    /// each available table type (FDB only on the e-switch manager).
    pub fn new(profile: Profile) -> Firmware {
        let addrs = AddrWindow::new(profile.fw_icm_base, profile.log_fw_icm_size);
        let mut fw = Firmware {
            profile,
            tables: BTreeMap::new(),
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
            counters: Counters::default(),
            tirs: BTreeMap::new(),
            qps: BTreeMap::new(),
            reformats: Reformats::default(),
            addrs,
            roots: BTreeMap::new(),
            next_table: 1,
            next_group: 1,
            next_tirn: 1,
            next_qpn: FIRST_QPN,
            syncs: 0,
        };
        for ty in TableType::ALL {
            let Ok(props) = fw.props(ty) else { continue };
            let attr = TableAttr::firmware(ty, 0, props.log_max_ft_size);
            // A fresh device has ids and addresses to spare; a profile whose firmware
            // window cannot hold three tables simply has no root of that type.
            if let Ok(id) = fw.create_table(0, &attr) {
                if let Some(t) = fw.tables.get_mut(&id) {
                    t.root = true;
                }
                fw.roots.insert(ty, id);
            }
        }
        fw
    }

    /// The capabilities.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The capabilities, to change. Capability checks and [`Firmware::terminal`] see
    /// changes at once; objects already created keep what they were given, and the
    /// firmware address window stays where it was when the firmware was made.
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// The kernel's root table of `ty`, if the device has one.
    pub fn root_table(&self, ty: TableType) -> Option<u32> {
        self.roots.get(&ty).copied()
    }

    /// A table.
    pub fn table(&self, id: u32) -> Option<&FlowTable> {
        self.tables.get(&id)
    }

    /// All tables, by id.
    pub fn tables(&self) -> impl Iterator<Item = &FlowTable> {
        self.tables.values()
    }

    /// A group.
    pub fn group(&self, id: u32) -> Option<&FlowGroup> {
        self.groups.get(&id)
    }

    /// The entry at `flow_index` of `table_id`.
    pub fn entry(&self, table_id: u32, flow_index: u32) -> Option<&Fte> {
        self.entries.get(&(table_id, flow_index))
    }

    /// The entries of `table_id`, by flow index.
    pub fn entries(&self, table_id: u32) -> impl Iterator<Item = &Fte> {
        self.entries
            .range((table_id, 0)..=(table_id, u32::MAX))
            .map(|(_, e)| e)
    }

    /// A TIR.
    pub fn tir(&self, tirn: u32) -> Option<&Tir> {
        self.tirs.get(&tirn)
    }

    /// A QP.
    pub fn qp(&self, qpn: u32) -> Option<&Qp> {
        self.qps.get(&qpn)
    }

    /// How many `SYNC_STEERING` commands the device has executed.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// The flow-table properties of `ty`, if this function may use such tables.
    pub fn props(&self, ty: TableType) -> Result<&FlowTableProps, FwError> {
        let p = &self.profile;
        let props = match ty {
            TableType::NicRx => &p.nic_rx,
            TableType::NicTx => &p.nic_tx,
            TableType::Fdb if p.eswitch_manager => &p.fdb,
            TableType::Fdb => return Err(FwError::TableTypeUnavailable(ty)),
        };
        if !props.ft_support {
            return Err(FwError::TableTypeUnavailable(ty));
        }
        Ok(props)
    }

    /// The table `id`, checked to be of `ty` and usable by `uid`.
    pub fn table_checked(&self, uid: u16, ty: TableType, id: u32) -> Result<&FlowTable, FwError> {
        let t = self.tables.get(&id).ok_or(FwError::NoSuchTable(id))?;
        if t.table_type != ty {
            return Err(FwError::TableTypeMismatch {
                id,
                actual: t.table_type,
                given: ty,
            });
        }
        check_uid(t.uid, uid)?;
        Ok(t)
    }

    /// Checks that a table of `ty` at `level` (id `from`, if it exists yet) may forward
    /// to table `to`.
    fn check_forward(&self, ty: TableType, from: u32, level: u8, to: u32) -> Result<(), FwError> {
        let target = self.tables.get(&to).ok_or(FwError::NoSuchTable(to))?;
        if target.table_type != ty {
            return Err(FwError::TableTypeMismatch {
                id: to,
                actual: target.table_type,
                given: ty,
            });
        }
        let firmware_owned = matches!(target.owner, TableOwner::Firmware { .. });
        if to == from || (firmware_owned && target.level <= level) {
            return Err(FwError::BadLevelOrder {
                from,
                from_level: level,
                to,
                to_level: target.level,
            });
        }
        Ok(())
    }

    /// Checks a software-owned table's root address.
    fn check_root(&self, addr: u64) -> Result<(), FwError> {
        let p = &self.profile;
        let size = 1u64 << p.log_steering_sw_icm_size.min(47);
        let inside = addr >= p.steering_sw_icm_start && addr - p.steering_sw_icm_start < size;
        if addr % 64 != 0 || !inside {
            return Err(FwError::BadRootAddress(addr));
        }
        Ok(())
    }

    /// `CREATE_FLOW_TABLE`: returns the new table's id.
    pub fn create_table(&mut self, uid: u16, attr: &TableAttr) -> Result<u32, FwError> {
        let ty = attr.table_type;
        let props = self.props(ty)?;
        if attr.level > props.max_ft_level {
            return Err(FwError::LevelTooHigh {
                level: attr.level,
                max: props.max_ft_level,
            });
        }
        if attr.log_size > props.log_max_ft_size {
            return Err(FwError::TableTooLarge {
                log_size: attr.log_size,
                max: props.log_max_ft_size,
            });
        }
        if let Some((root_0, root_1)) = attr.sw_owner {
            if !props.sw_steering(self.profile.steering_format_version) {
                return Err(FwError::SwOwnerUnsupported(ty));
            }
            if attr.miss != MissAction::Default {
                return Err(FwError::Unsupported(
                    "a firmware miss action on a software-owned table",
                ));
            }
            self.check_root(root_0)?;
            if ty == TableType::Fdb {
                self.check_root(root_1)?;
            }
        }
        if let MissAction::Forward(to) = attr.miss {
            self.check_forward(ty, 0, attr.level, to)?;
        }
        if self.next_table > MAX_OBJECT_ID {
            return Err(FwError::Exhausted("flow table ids"));
        }
        let id = self.next_table;
        let owner = match attr.sw_owner {
            Some((root_0, root_1)) => TableOwner::Software { root_0, root_1 },
            None => {
                let rx = self.addrs.alloc(Terminal::FlowTable(id));
                let tx = self.addrs.alloc(Terminal::FlowTable(id));
                match (rx, tx) {
                    (Some(entry_rx), Some(entry_tx)) => TableOwner::Firmware { entry_rx, entry_tx },
                    (rx, tx) => {
                        rx.into_iter().chain(tx).for_each(|a| self.addrs.release(a));
                        return Err(FwError::Exhausted("firmware ICM addresses"));
                    }
                }
            }
        };
        self.next_table += 1;
        self.tables.insert(
            id,
            FlowTable {
                id,
                table_type: ty,
                level: attr.level,
                log_size: attr.log_size,
                uid,
                termination: attr.termination,
                reformat_en: attr.reformat_en,
                decap_en: attr.decap_en,
                owner,
                miss: attr.miss,
                root: false,
            },
        );
        Ok(id)
    }

    /// `MODIFY_FLOW_TABLE` of the miss action.
    pub fn modify_table_miss(
        &mut self,
        uid: u16,
        ty: TableType,
        id: u32,
        miss: MissAction,
    ) -> Result<(), FwError> {
        let t = self.table_checked(uid, ty, id)?;
        if matches!(t.owner, TableOwner::Software { .. }) {
            return Err(FwError::NotFirmwareOwned(id));
        }
        if let MissAction::Forward(to) = miss {
            self.check_forward(ty, id, t.level, to)?;
        }
        if let Some(t) = self.tables.get_mut(&id) {
            t.miss = miss;
        }
        Ok(())
    }

    /// What still refers to table `id`, if anything.
    fn table_holder(&self, id: u32) -> Option<&'static str> {
        if self.groups.values().any(|g| g.table_id == id) {
            return Some("it has flow groups");
        }
        if self
            .tables
            .values()
            .any(|t| t.id != id && t.miss == MissAction::Forward(id))
        {
            return Some("it is another table's miss target");
        }
        let is_dest = |e: &Fte| match &e.action.fate {
            Fate::Forward(d) => d.contains(&Destination::FlowTable(id)),
            _ => false,
        };
        if self.entries.values().any(is_dest) {
            return Some("it is a flow entry's destination");
        }
        None
    }

    /// `DESTROY_FLOW_TABLE`.
    pub fn destroy_table(&mut self, uid: u16, ty: TableType, id: u32) -> Result<(), FwError> {
        let t = self.table_checked(uid, ty, id)?;
        if t.root {
            return Err(FwError::RootTable(id));
        }
        if let Some(reason) = self.table_holder(id) {
            return Err(FwError::TableBusy { id, reason });
        }
        if let Some(t) = self.tables.remove(&id) {
            if let TableOwner::Firmware { entry_rx, entry_tx } = t.owner {
                self.addrs.release(entry_rx);
                self.addrs.release(entry_tx);
            }
        }
        Ok(())
    }

    /// `CREATE_FLOW_GROUP` in table `table_id`; returns the group id.
    pub fn create_group(
        &mut self,
        uid: u16,
        ty: TableType,
        table_id: u32,
        spec: &GroupSpec,
    ) -> Result<u32, FwError> {
        let GroupSpec {
            start,
            end,
            criteria,
            ref mask,
        } = *spec;
        let t = self.table_checked(uid, ty, table_id)?;
        if matches!(t.owner, TableOwner::Software { .. }) {
            return Err(FwError::NotFirmwareOwned(table_id));
        }
        let size = 1u64 << t.log_size.min(63);
        if start > end || u64::from(end) >= size {
            return Err(FwError::BadGroupRange { start, end, size });
        }
        let criteria = MatchCriteria::from_bits(criteria).ok_or(FwError::BadCriteria(criteria))?;
        if let Some(other) = self
            .groups
            .values()
            .find(|g| g.table_id == table_id && g.start <= end && start <= g.end)
        {
            return Err(FwError::GroupOverlap {
                start,
                end,
                other: other.id,
            });
        }
        let mut effective = MatchParam::default();
        for s in Section::ALL {
            if criteria.contains(s.criteria()) {
                *effective.section_mut(s) = *mask.section(s);
            }
        }
        let id = take_id(&mut self.next_group, "flow group ids")?;
        self.groups.insert(
            id,
            FlowGroup {
                id,
                table_id,
                start,
                end,
                criteria,
                mask: effective,
                uid,
            },
        );
        Ok(id)
    }

    /// The group `group_id` of table `table_id`.
    fn group_in(&self, table_id: u32, group_id: u32) -> Result<&FlowGroup, FwError> {
        self.groups
            .get(&group_id)
            .filter(|g| g.table_id == table_id)
            .ok_or(FwError::NoSuchGroup {
                table: table_id,
                group: group_id,
            })
    }

    /// `DESTROY_FLOW_GROUP`.
    pub fn destroy_group(
        &mut self,
        uid: u16,
        ty: TableType,
        table_id: u32,
        group_id: u32,
    ) -> Result<(), FwError> {
        self.table_checked(uid, ty, table_id)?;
        let g = self.group_in(table_id, group_id)?;
        check_uid(g.uid, uid)?;
        if self.entries(table_id).any(|e| e.group_id == group_id) {
            return Err(FwError::GroupBusy(group_id));
        }
        self.groups.remove(&group_id);
        Ok(())
    }

    /// Checks an entry's actions against the table it goes into and the device's limits.
    fn check_action(&self, table: &FlowTable, action: &FteAction) -> Result<(), FwError> {
        let ty = table.table_type;
        let props = self.props(ty)?;
        let counters = action.counters.len() as u64;
        let max_counters = 1u64 << props.log_max_flow_counter.min(32);
        if counters > max_counters {
            return Err(FwError::TooMany {
                what: "flow counters per entry",
                count: counters,
                max: max_counters,
            });
        }
        for &c in &action.counters {
            if !self.counters.is_live(c) {
                return Err(FwError::NoSuchCounter(c));
            }
        }
        let not_allowed = |what| FwError::DestinationNotAllowed {
            table_type: ty,
            what,
        };
        match &action.fate {
            Fate::Drop => {}
            Fate::Allow if ty == TableType::NicTx => {}
            Fate::Allow => return Err(not_allowed("the wire (allow)")),
            Fate::Forward(dests) => {
                let max = 1u64 << props.log_max_destination.min(32);
                if dests.len() as u64 > max {
                    return Err(FwError::TooMany {
                        what: "destinations per entry",
                        count: dests.len() as u64,
                        max,
                    });
                }
                for d in dests {
                    match *d {
                        Destination::FlowTable(to) => {
                            self.check_forward(ty, table.id, table.level, to)?
                        }
                        Destination::Vport(_) | Destination::Uplink if ty != TableType::Fdb => {
                            return Err(not_allowed("a vport"))
                        }
                        Destination::Vport(n) => {
                            self.profile.vport(n).ok_or(FwError::NoSuchVport(n))?;
                        }
                        Destination::Uplink => {}
                        Destination::Tir(_) if ty != TableType::NicRx => {
                            return Err(not_allowed("a TIR"))
                        }
                        Destination::Tir(t) => {
                            self.tirs.get(&t).ok_or(FwError::NoSuchTir(t))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `SET_FLOW_TABLE_ENTRY`: creates or replaces (`op`) the entry `fte` of table
    /// `table_id`.
    pub fn set_entry(
        &mut self,
        uid: u16,
        ty: TableType,
        table_id: u32,
        op: EntryOp,
        fte: Fte,
    ) -> Result<(), FwError> {
        let (flow_index, group_id) = (fte.flow_index, fte.group_id);
        let t = self.table_checked(uid, ty, table_id)?;
        if matches!(t.owner, TableOwner::Software { .. }) {
            return Err(FwError::NotFirmwareOwned(table_id));
        }
        let g = self.group_in(table_id, group_id)?;
        check_uid(g.uid, uid)?;
        if flow_index < g.start || flow_index > g.end {
            return Err(FwError::IndexOutsideGroup {
                index: flow_index,
                group: group_id,
            });
        }
        let exists = self.entries.contains_key(&(table_id, flow_index));
        match op {
            EntryOp::Create if exists => return Err(FwError::EntryExists(flow_index)),
            EntryOp::Modify if !exists => {
                return Err(FwError::NoSuchEntry {
                    table: table_id,
                    index: flow_index,
                })
            }
            _ => {}
        }
        self.check_action(t, &fte.action)?;
        self.entries.insert((table_id, flow_index), fte);
        Ok(())
    }

    /// `DELETE_FLOW_TABLE_ENTRY`.
    pub fn delete_entry(
        &mut self,
        uid: u16,
        ty: TableType,
        table_id: u32,
        flow_index: u32,
    ) -> Result<(), FwError> {
        self.table_checked(uid, ty, table_id)?;
        self.entries
            .remove(&(table_id, flow_index))
            .map(|_| ())
            .ok_or(FwError::NoSuchEntry {
                table: table_id,
                index: flow_index,
            })
    }

    /// `ALLOC_FLOW_COUNTER`: a bulk of `n` counters; returns the first id.
    pub fn alloc_counters(&mut self, uid: u16, n: u32) -> Result<u32, FwError> {
        let max_bulk = 1u64 << self.profile.log_max_flow_counter_bulk.min(32);
        if u64::from(n) > max_bulk {
            return Err(FwError::BadCounterBulk(n.into()));
        }
        let max_total = u64::from(self.profile.max_flow_counter);
        self.counters.alloc(uid, n, max_total)
    }

    /// `DEALLOC_FLOW_COUNTER` of the bulk that starts at `id`.
    pub fn dealloc_counters(&mut self, uid: u16, id: u32) -> Result<(), FwError> {
        if let Some((base, len)) = self.counters.bulk_of(id).filter(|&(b, _)| b == id) {
            let in_bulk = |c: &u32| (base..base + len).contains(c);
            if self
                .entries
                .values()
                .any(|e| e.action.counters.iter().any(in_bulk))
            {
                return Err(FwError::CounterBusy(id));
            }
        }
        self.counters.dealloc(uid, id)
    }

    /// `QUERY_FLOW_COUNTER` of counters `id .. id + n`.
    pub fn query_counters(
        &self,
        uid: u16,
        id: u32,
        n: u32,
        clear: bool,
    ) -> Result<Vec<Traffic>, FwError> {
        self.counters.query(uid, id, n, clear)
    }

    /// Counts `packets` packets of `bytes` bytes in total into counter `id` (the packet
    /// pipeline calls this for counter actions).
    pub fn count(&self, id: u32, packets: u64, bytes: u64) -> Result<(), FwError> {
        self.counters.count(id, packets, bytes)
    }

    /// The value of counter `id`, if it is live.
    pub fn counter(&self, id: u32) -> Option<Traffic> {
        self.counters.value(id)
    }

    /// True when an entry forwards to TIR `tirn`.
    fn tir_is_destination(&self, tirn: u32) -> bool {
        self.entries.values().any(|e| match &e.action.fate {
            Fate::Forward(d) => d.contains(&Destination::Tir(tirn)),
            _ => false,
        })
    }

    fn new_tir(&mut self, uid: u16, qp: Option<u32>) -> Result<Tir, FwError> {
        if self.next_tirn > MAX_OBJECT_ID {
            return Err(FwError::Exhausted("TIR numbers"));
        }
        let tirn = self.next_tirn;
        let mut tir = Tir {
            tirn,
            icm_addr: 0,
            qp,
            uid,
        };
        tir.icm_addr = self
            .addrs
            .alloc(tir.terminal())
            .ok_or(FwError::Exhausted("firmware ICM addresses"))?;
        self.next_tirn += 1;
        self.tirs.insert(tirn, tir);
        Ok(tir)
    }

    /// `ALLOC_PACKET_REFORMAT_CONTEXT`: stores header bytes for encapsulation actions.
    pub fn alloc_reformat(
        &mut self,
        uid: u16,
        reformat_type: u8,
        data: &[u8],
    ) -> Result<u32, FwError> {
        self.reformats.alloc(uid, reformat_type, data)
    }

    /// `DEALLOC_PACKET_REFORMAT_CONTEXT`.
    pub fn dealloc_reformat(&mut self, uid: u16, id: u32) -> Result<(), FwError> {
        self.reformats.dealloc(uid, id)
    }

    /// A live packet reformat context.
    pub fn reformat(&self, id: u32) -> Option<&Reformat> {
        self.reformats.get(id)
    }

    /// `CREATE_TIR`: a stand-alone receive endpoint.
    pub fn create_tir(&mut self, uid: u16) -> Result<TirInfo, FwError> {
        let t = self.new_tir(uid, None)?;
        Ok(TirInfo {
            tirn: t.tirn,
            icm_addr: t.icm_addr,
        })
    }

    /// `DESTROY_TIR`.
    pub fn destroy_tir(&mut self, uid: u16, tirn: u32) -> Result<(), FwError> {
        let t = self.tirs.get(&tirn).ok_or(FwError::NoSuchTir(tirn))?;
        check_uid(t.uid, uid)?;
        if let Some(qpn) = t.qp {
            return Err(FwError::TirOwnedByQp { tirn, qpn });
        }
        if self.tir_is_destination(tirn) {
            return Err(FwError::TirBusy(tirn));
        }
        self.addrs.release(t.icm_addr);
        self.tirs.remove(&tirn);
        Ok(())
    }

    /// A raw-packet QP with its own TIR (what `ibv_create_qp` of a raw-packet QP gives
    /// rdma-core: the QP number, the TIR number and `tir_icm_addr`).
    pub fn create_qp(&mut self, uid: u16) -> Result<Qp, FwError> {
        if self.next_qpn > MAX_OBJECT_ID {
            return Err(FwError::Exhausted("QP numbers"));
        }
        let qpn = self.next_qpn;
        let tir = self.new_tir(uid, Some(qpn))?;
        self.next_qpn += 1;
        let qp = Qp {
            qpn,
            tirn: tir.tirn,
            tir_icm_addr: tir.icm_addr,
            uid,
        };
        self.qps.insert(qpn, qp);
        Ok(qp)
    }

    /// Destroys a QP and its TIR.
    pub fn destroy_qp(&mut self, uid: u16, qpn: u32) -> Result<(), FwError> {
        let qp = *self.qps.get(&qpn).ok_or(FwError::NoSuchQp(qpn))?;
        check_uid(qp.uid, uid)?;
        if self.tir_is_destination(qp.tirn) {
            return Err(FwError::TirBusy(qp.tirn));
        }
        self.addrs.release(qp.tir_icm_addr);
        self.tirs.remove(&qp.tirn);
        self.qps.remove(&qpn);
        Ok(())
    }

    /// `SYNC_STEERING`: the device drops cached steering state, so that ICM written
    /// before the command is what later packets see. The simulator caches nothing; it
    /// counts the syncs.
    pub fn sync_steering(&mut self) {
        self.syncs += 1;
    }

    /// What a firmware-owned ICM address means: the profile's drop, allow, uplink and
    /// vport addresses, and the entry addresses of firmware tables, TIRs and QPs.
    /// `None` for any other address (ICM lines are the driver's).
    pub fn terminal(&self, addr: u64) -> Option<Terminal> {
        let p = &self.profile;
        let fixed = [
            (p.nic_rx_drop_icm, Terminal::Drop),
            (p.nic_tx_drop_icm, Terminal::Drop),
            (p.nic_tx_allow_icm, Terminal::Allow),
            (p.esw_rx_drop_icm, Terminal::Drop),
            (p.esw_tx_drop_icm, Terminal::Drop),
            (p.uplink_rx_icm, Terminal::Uplink),
            (p.uplink_tx_icm, Terminal::Uplink),
        ];
        if let Some(&(_, t)) = fixed.iter().find(|&&(a, _)| a == addr) {
            return Some(t);
        }
        if let Some(v) = p
            .vports
            .iter()
            .find(|v| v.icm_rx == addr || v.icm_tx == addr)
        {
            return Some(Terminal::Vport(v.num));
        }
        self.addrs.get(addr)
    }
}

#[cfg(test)]
mod tests;
