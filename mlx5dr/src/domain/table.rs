//! Tables: a root anchor per side in ICM and the firmware flow table that owns them.
//!
//! ```text
//!   firmware flow table (CREATE_FLOW_TABLE, sw_owner)        ICM (1-entry chunks)
//!     sw_owner_icm_root_0 ------------------------------------> root anchor (RX side, or
//!     sw_owner_icm_root_1 (FDB: the TX side) ---------------> root anchor  NIC TX's only)
//!                                                               | always-miss to the side's
//!                                                               | default while the table is
//!                                                               v empty; always-hit into the
//!                                                                 first matcher's start table
//! ```
//!
//! Packets reach a table through its firmware flow table (from a firmware entry that
//! forwards to it, e.g. the kernel's root table) or through its root anchor's ICM
//! address (a goto-table action's hit address). rdma-core gives every software-owned
//! table the firmware level `max_ft_level - 1`, so that any firmware table may forward
//! to it; the table's own level only orders goto-table actions (a rule may go only to a
//! table of a higher level).
//!
//! The matcher layer repoints a root anchor with [`Table::connect_root`], one 64-byte
//! write that the hardware sees atomically, and points it back at the default with
//! [`Table::disconnect_root`].

use std::sync::{Arc, Mutex, MutexGuard};

use ste_builder::prm::{
    create_flow_table_in, create_flow_table_out, destroy_flow_table_in, flow_table_context,
};
use ste_builder::ste::Connect;

use super::{create_object, destroy_object, opcode, out_get, Domain, DomainType, PerSide};
use crate::cmd::{CmdError, CmdIn};
use crate::device::ObjectId;
use crate::htbl::AnchorRef;
use crate::icm::{Chunk, IcmError, IcmPool};
use crate::matcher::Linked;
use crate::matching::DomainSide;
use crate::send::{SendError, WriteFate};

/// Why a table operation failed. A failed [`Table::new`] leaves nothing behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Level 0 is the kernel's root table, which software steering does not own.
    #[error(
        "level 0 is the root table, which the kernel flow path owns; SW tables start at level 1"
    )]
    RootLevel,
    /// A level above the device's highest table level.
    #[error("table level {level} is above the device's max_ft_level {max}")]
    LevelTooHigh {
        /// The level asked for.
        level: u8,
        /// `max_ft_level`.
        max: u8,
    },
    /// The side does not belong to the table's domain.
    #[error("a {domain} table has no {side} side")]
    NoSuchSide {
        /// The table's domain type.
        domain: DomainType,
        /// The side asked for.
        side: DomainSide,
    },
    /// No ICM for a root anchor.
    #[error(transparent)]
    Icm(#[from] IcmError),
    /// Writing a root anchor failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// Creating the firmware flow table failed.
    #[error(transparent)]
    Command(#[from] CmdError),
}

/// [`Table::destroy`] of a table something still refers to (a goto-table action, a
/// matcher): the table comes back unchanged.
#[derive(Debug, thiserror::Error)]
#[error("table (firmware id {:#x}) is still used by {users} other holder(s)", .table.fw_id())]
pub struct TableInUse {
    /// The table, still alive.
    pub table: Arc<Table>,
    /// How many other `Arc`s to it exist.
    pub users: usize,
}

/// The root anchors of a table, given back to the pool when dropped.
#[derive(Debug)]
struct Anchors {
    pool: Arc<IcmPool>,
    chunks: PerSide<Chunk>,
}

impl Drop for Anchors {
    fn drop(&mut self) {
        for chunk in self.chunks.take_all() {
            // The pool handed the chunk out, so it takes it back.
            let _ = self.pool.free(chunk);
        }
    }
}

/// The firmware flow table of a SW table.
#[derive(Debug)]
struct FwTable {
    obj: ObjectId,
    id: u32,
}

/// A software-steering table of a domain: a root anchor per side and the firmware flow
/// table whose software-owned roots they are. See the module documentation.
///
/// Shared as `Arc<Table>`: goto-table actions (and matchers) hold it, so a table cannot
/// go while something still points at it; [`Table::destroy`] says so when asked to.
/// Dropping the last `Arc` destroys the firmware table, drains the domain's ring and
/// gives the anchors back to the ICM pool.
#[derive(Debug)]
pub struct Table {
    fw: FwTable,
    anchors: Anchors,
    /// The table's matchers in lookup order, each as its shards one after the other
    /// (see [`crate::matcher`]); the lock is the table's control lock, taken only to
    /// add or remove a matcher.
    matchers: Mutex<Vec<Arc<Linked>>>,
    level: u8,
    dmn: Arc<Domain>,
}

impl Table {
    /// Creates a table at `level` (1 ..= the device's `max_ft_level`) in `dmn`: root
    /// anchors missing to each side's default, written and flushed, then the firmware
    /// flow table over them.
    pub fn new(dmn: &Arc<Domain>, level: u8) -> Result<Arc<Table>, TableError> {
        let max = dmn.caps().max_ft_level;
        if level == 0 {
            return Err(TableError::RootLevel);
        }
        if level > max {
            return Err(TableError::LevelTooHigh { level, max });
        }
        let mut anchors = Anchors {
            pool: Arc::clone(dmn.ste_pool()),
            chunks: PerSide::default(),
        };
        for &side in dmn.sides() {
            anchors.chunks.insert(side, dmn.ste_pool().alloc(0)?);
        }
        {
            let mut ring = dmn.ring();
            for &side in dmn.sides() {
                let (Some(chunk), Some(info)) = (anchors.chunks.get(side), dmn.side(side)) else {
                    continue;
                };
                let ste = dmn.anchor_ste(
                    side,
                    Connect::Miss {
                        miss_addr: info.default_miss,
                    },
                );
                ring.write(&chunk.region(), chunk.icm_addr(), &ste)?;
            }
            // The firmware may send packets to the roots as soon as the table exists.
            ring.flush()?;
        }
        let fw = create_fw_table(dmn, &anchors.chunks)?;
        Ok(Arc::new(Table {
            fw,
            anchors,
            matchers: Mutex::new(Vec::new()),
            level,
            dmn: Arc::clone(dmn),
        }))
    }

    /// Destroys the table now if nothing else holds it; otherwise hands it back with
    /// how many other holders there are.
    pub fn destroy(this: Arc<Table>) -> Result<(), TableInUse> {
        match Arc::try_unwrap(this) {
            Ok(table) => {
                drop(table);
                Ok(())
            }
            Err(table) => {
                let users = Arc::strong_count(&table) - 1;
                Err(TableInUse { table, users })
            }
        }
    }

    /// The domain.
    pub fn domain(&self) -> &Arc<Domain> {
        &self.dmn
    }

    /// The table's level.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The firmware flow table's id (what a firmware entry forwards to).
    pub fn fw_id(&self) -> u32 {
        self.fw.id
    }

    /// The ICM address of the root anchor of `side` (what a goto-table action on that
    /// side hits), if the table has the side.
    pub fn root_addr(&self, side: DomainSide) -> Option<u64> {
        self.dmn.side(side)?;
        self.anchors.chunks.get(side).map(Chunk::icm_addr)
    }

    /// The root anchor of `side` as an [`AnchorRef`] (what the first matcher's tables
    /// are told points at their start table).
    pub fn root_ref(&self, side: DomainSide) -> Option<AnchorRef> {
        self.dmn.side(side)?;
        self.anchors.chunks.get(side).map(|c| AnchorRef {
            region: c.region(),
            icm_addr: c.icm_addr(),
        })
    }

    /// The matchers' shards in lookup order, locked: the table's control lock.
    pub(crate) fn matchers(&self) -> MutexGuard<'_, Vec<Arc<Linked>>> {
        self.matchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many matchers the table has.
    pub fn matcher_count(&self) -> usize {
        self.matchers().iter().filter(|m| m.shard == 0).count()
    }

    /// Rewrites the root anchor of `side` as an anchor that `connect` says: always hit
    /// into a table (the first matcher's start table), or always miss. One 64-byte
    /// write, flushed: on `Ok` packets see the new anchor.
    ///
    /// Once the table has matchers ([`crate::matcher::Matcher`]), they own the root:
    /// rewriting it here would cut them off.
    pub fn connect_root(&self, side: DomainSide, connect: Connect) -> Result<(), TableError> {
        let chunk = self
            .dmn
            .side(side)
            .and(self.anchors.chunks.get(side))
            .ok_or(TableError::NoSuchSide {
                domain: self.dmn.domain_type(),
                side,
            })?;
        let ste = self.dmn.anchor_ste(side, connect);
        let mut ring = self.dmn.ring();
        let id = ring.write(&chunk.region(), chunk.icm_addr(), &ste)?;
        match ring.flush() {
            // The write landed all the same (the READ that fences it failed): the anchor
            // is rewritten, and the caller must treat it so.
            Err(e) if e.fate_of(id) == WriteFate::Landed => Ok(()),
            other => other.map_err(TableError::from),
        }
    }

    /// Points the root anchor of `side` back at the side's default miss (the table is
    /// empty again).
    pub fn disconnect_root(&self, side: DomainSide) -> Result<(), TableError> {
        let info = self.dmn.side(side).ok_or(TableError::NoSuchSide {
            domain: self.dmn.domain_type(),
            side,
        })?;
        self.connect_root(
            side,
            Connect::Miss {
                miss_addr: info.default_miss,
            },
        )
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // First the firmware table, so that the firmware stops entering the roots; then
        // whatever was posted to the anchors lands; then `anchors` frees them (the pool
        // defers their reuse behind a SYNC_STEERING). Failures cannot be reported: a
        // failed destroy leaves the firmware object to the device's teardown, and the
        // handle is gone either way.
        let _ = destroy_fw_table(&self.dmn, &self.fw);
        // Root rewrites go through the control ring (and every update flushes before it
        // returns); only that ring, so a table going does not wait on rule updates.
        let _ = self.dmn.ring().flush();
    }
}

/// `CREATE_FLOW_TABLE` of a software-owned table whose roots are `roots`, at the level
/// rdma-core gives SW tables.
fn create_fw_table(dmn: &Domain, roots: &PerSide<Chunk>) -> Result<FwTable, CmdError> {
    use flow_table_context as ctx;
    let at = create_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    let ty = dmn.domain_type();
    // `Table::new` checked 1 <= level <= max_ft_level, so max_ft_level >= 1.
    let fw_level = dmn.caps().max_ft_level.saturating_sub(1);
    let root = |side: DomainSide| roots.get(side).map_or(0, Chunk::icm_addr);
    // Root 0 is the only root of a NIC table (RX or TX) and FDB's RX root; root 1 is
    // FDB's TX root.
    let (root_0, root_1) = match ty {
        DomainType::NicRx => (root(DomainSide::NicRx), 0),
        DomainType::NicTx => (root(DomainSide::NicTx), 0),
        DomainType::Fdb => (root(DomainSide::FdbRx), root(DomainSide::FdbTx)),
    };
    let cmd = CmdIn::new(
        "CREATE_FLOW_TABLE",
        opcode::CREATE_FLOW_TABLE,
        create_flow_table_in::SIZE_BITS,
    )
    .set(create_flow_table_in::TABLE_TYPE, ty.prm().into())
    .set(ctx::SW_OWNER.at(at), 1)
    .set(ctx::LEVEL.at(at), fw_level.into())
    .set(ctx::SW_OWNER_ICM_ROOT_0.at(at), root_0)
    .set(ctx::SW_OWNER_ICM_ROOT_1.at(at), root_1);
    let (obj, out) = create_object(&**dmn.device(), &cmd, create_flow_table_out::SIZE_BITS)?;
    Ok(FwTable {
        obj,
        id: out_get(&out, create_flow_table_out::TABLE_ID) as u32,
    })
}

/// `DESTROY_FLOW_TABLE` of a table made by [`create_fw_table`].
fn destroy_fw_table(dmn: &Domain, fw: &FwTable) -> Result<(), CmdError> {
    let cmd = CmdIn::new(
        "DESTROY_FLOW_TABLE",
        opcode::DESTROY_FLOW_TABLE,
        destroy_flow_table_in::SIZE_BITS,
    )
    .set(
        destroy_flow_table_in::TABLE_TYPE,
        dmn.domain_type().prm().into(),
    )
    .set(destroy_flow_table_in::TABLE_ID, fw.id.into());
    destroy_object(&**dmn.device(), fw.obj, &cmd)
}
