//! Firmware flow-table objects: tables, groups and entries, as plain data.
//!
//! A table is owned by the firmware (it holds groups and entries, and the firmware looks
//! packets up in it) or by software steering (its contents are STEs in ICM, reached from
//! the root addresses the driver gave; the firmware only knows those addresses).

use ste_builder::{MatchCriteria, MatchParam, Section};

/// A flow-table type (`table_type` of the flow-table commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableType {
    /// NIC receive (`FS_FT_NIC_RX`, 0).
    NicRx,
    /// NIC transmit (`FS_FT_NIC_TX`, 1).
    NicTx,
    /// E-switch forwarding database (`FS_FT_FDB`, 4).
    Fdb,
}

impl TableType {
    /// All supported types.
    pub const ALL: [TableType; 3] = [TableType::NicRx, TableType::NicTx, TableType::Fdb];

    /// The type with PRM number `v`, if supported.
    pub fn from_prm(v: u8) -> Option<TableType> {
        match v {
            0 => Some(TableType::NicRx),
            1 => Some(TableType::NicTx),
            4 => Some(TableType::Fdb),
            _ => None,
        }
    }

    /// The PRM number.
    pub const fn prm(self) -> u8 {
        match self {
            TableType::NicRx => 0,
            TableType::NicTx => 1,
            TableType::Fdb => 4,
        }
    }
}

/// Who holds a table's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOwner {
    /// The firmware: groups and entries. Software steering reaches the table through
    /// its firmware entry addresses (one per side), which the firmware reports as the
    /// table's `sw_owner_icm_root_0` (RX) and `sw_owner_icm_root_1` (TX).
    Firmware {
        /// Entry address for RX-side STEs.
        entry_rx: u64,
        /// Entry address for TX-side STEs.
        entry_tx: u64,
    },
    /// Software steering: ICM roots as the driver passed them. rdma-core passes NIC RX
    /// and NIC TX roots in `root_0` and, for FDB, the RX root in `root_0` and the TX
    /// root in `root_1`.
    Software {
        /// `sw_owner_icm_root_0`.
        root_0: u64,
        /// `sw_owner_icm_root_1`.
        root_1: u64,
    },
}

/// What a firmware-owned table does with a packet no entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissAction {
    /// The table type's default: NIC RX drops, NIC TX sends to the wire, FDB delivers to
    /// the e-switch manager's vport.
    Default,
    /// Continue in another table of the same type (`table_miss_id`).
    Forward(u32),
}

/// A flow table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTable {
    /// Table id.
    pub id: u32,
    /// Type.
    pub table_type: TableType,
    /// Level: forwards go from lower to higher levels.
    pub level: u8,
    /// The table has `2^log_size` flow indexes.
    pub log_size: u8,
    /// The user context that created it (0: the kernel).
    pub uid: u16,
    /// `termination_table`.
    pub termination: bool,
    /// `reformat_en`.
    pub reformat_en: bool,
    /// `decap_en`.
    pub decap_en: bool,
    /// Contents owner.
    pub owner: TableOwner,
    /// Miss behaviour (firmware-owned tables).
    pub miss: MissAction,
    /// The kernel's root table of its type.
    pub root: bool,
}

/// A flow group: an index range of a table whose entries share a match mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowGroup {
    /// Group id.
    pub id: u32,
    /// The table it belongs to.
    pub table_id: u32,
    /// First flow index.
    pub start: u32,
    /// Last flow index (inclusive).
    pub end: u32,
    /// Enabled sections.
    pub criteria: MatchCriteria,
    /// The mask, with sections not enabled by `criteria` cleared.
    pub mask: MatchParam,
    /// Creator's uid.
    pub uid: u16,
}

impl FlowGroup {
    /// True when a packet with fields `packet` matches `value` under this group's mask.
    pub fn matches(&self, packet: &MatchParam, value: &MatchParam) -> bool {
        Section::ALL.into_iter().all(|s| {
            let m = self.mask.section(s);
            let p = packet.section(s);
            let v = value.section(s);
            m.iter()
                .zip(p.iter().zip(v.iter()))
                .all(|(m, (p, v))| p & m == v & m)
        })
    }
}

/// Where an entry forwards a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An e-switch vport (FDB).
    Vport(u16),
    /// The uplink (FDB).
    Uplink,
    /// Another flow table of the same type (firmware or software owned).
    FlowTable(u32),
    /// A TIR (NIC RX); a QP's TIR delivers to the QP.
    Tir(u32),
}

/// What happens to a packet an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Dropped.
    Drop,
    /// Allowed: NIC TX sends it to the wire.
    Allow,
    /// A copy goes to each destination (at least one).
    Forward(Vec<Destination>),
}

/// The actions of a flow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FteAction {
    /// The fate.
    pub fate: Fate,
    /// Counters the packet is counted in.
    pub counters: Vec<u32>,
    /// The flow tag (24 bits; 0 means none).
    pub flow_tag: u32,
}

/// A flow table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fte {
    /// Flow index in its table.
    pub flow_index: u32,
    /// Its group.
    pub group_id: u32,
    /// The match value (448 bytes of `fte_match_param`).
    pub value: MatchParam,
    /// The actions.
    pub action: FteAction,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::prm::dr_match_spec;

    #[test]
    fn table_type_numbers_round_trip() {
        for t in TableType::ALL {
            assert_eq!(TableType::from_prm(t.prm()), Some(t));
        }
        assert_eq!(TableType::from_prm(2), None);
    }

    #[test]
    fn group_match_is_under_mask() {
        let mut mask = MatchParam::default();
        mask.set(Section::Outer, dr_match_spec::TCP_DPORT, 0xff00);
        let g = FlowGroup {
            id: 1,
            table_id: 1,
            start: 0,
            end: 0,
            criteria: MatchCriteria::OUTER,
            mask,
            uid: 0,
        };
        let mut value = MatchParam::default();
        value.set(Section::Outer, dr_match_spec::TCP_DPORT, 0x1234);
        let mut packet = MatchParam::default();
        packet.set(Section::Outer, dr_match_spec::TCP_DPORT, 0x12ff);
        packet.set(Section::Outer, dr_match_spec::TCP_SPORT, 7);
        assert!(g.matches(&packet, &value));
        packet.set(Section::Outer, dr_match_spec::TCP_DPORT, 0x1334);
        assert!(!g.matches(&packet, &value));
    }
}
