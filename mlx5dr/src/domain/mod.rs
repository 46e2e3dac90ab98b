//! Domains and tables: what software steering owns on one device for one table type.
//!
//! A [`Domain`] is opened on a device for NIC RX, NIC TX or FDB ([`DomainType`]). Opening
//! it discovers the capabilities through PRM commands, checks that software may own
//! tables of the type ([`crate::caps::DeviceCaps::check_sw_steering`]: a refusal names
//! the missing capability), and sets up what every table, matcher and rule of the domain
//! shares:
//!
//! - the ICM pools: steering entries ([`Domain::ste_pool`]) and modify-header actions
//!   ([`Domain::action_pool`]); both ask the device for ICM only when first used;
//! - the send ring that writes into ICM ([`Domain::ring`]);
//! - per side (NIC RX and NIC TX have one, FDB has RX and TX), the firmware addresses a
//!   chain ends at: the default miss and the drop address ([`SideInfo`]), and the gvmi
//!   STEs are stamped with.
//!
//! A [`Table`] ([`table`]) hangs off a domain with one root anchor per side and a
//! firmware flow table whose software-owned roots are those anchors.
//!
//! ## Ownership
//!
//! Everything that needs the domain holds an `Arc<Domain>`: a table, an action bound to
//! the domain (a vport destination). The domain's resources are released when the last
//! holder goes: the send ring is drained, the device is told to sync steering, and the
//! ICM goes back to the device. A table likewise lives until the last holder of its
//! `Arc` (its owner, and every goto action naming it) is gone.
//!
//! ## Concurrency
//!
//! `Domain` is `Send + Sync`. It has several send rings ([`DomainConfig::rings`]), each
//! behind its own lock: a matcher is given one when it is made (round robin, as
//! rdma-core gives each matcher a ring by lock index), so rule updates of different
//! matchers write in parallel. Control writes (table roots) use ring 0
//! ([`Domain::ring`]); every write is flushed before the call that made it returns (a
//! matcher that does not wait for its rule updates, [`crate::Completion`], holds back the
//! memory they free until they land), so writes on different rings never need ordering
//! between them. The pools are shared
//! without a domain-wide lock (see [`crate::icm`]).

mod object;
pub mod table;

#[cfg(all(test, feature = "sim"))]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ste_builder::prm::{sync_steering_in, sync_steering_out};
use ste_builder::ste::{set_formatted_ste, Connect, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::{Caps, SteFormat, VportCap};

use crate::caps::{CapsError, DeviceCaps, SwSteering, UPLINK_VPORT};
use crate::cmd::opcode::SYNC_STEERING;
use crate::cmd::{CmdError, CmdIn};
use crate::device::Device;
use crate::icm::{IcmError, IcmPool, PoolConfig};
use crate::matching::DomainSide;
use crate::send::{SendConfig, SendError, SendRing, WriteTap};

pub use crate::caps::TableType as DomainType;

pub(crate) use crate::cmd::opcode;
pub(crate) use object::{create as create_object, destroy as destroy_object, out_get};
pub use table::{Table, TableError, TableInUse};

/// Why a domain could not be opened or a domain-wide operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A capability query failed, or the device cannot steer this table type in
    /// software (the error names the missing capability).
    #[error(transparent)]
    Caps(#[from] CapsError),
    /// An ICM pool could not be set up.
    #[error(transparent)]
    Icm(#[from] IcmError),
    /// The send ring could not be created, or a write or flush failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A command failed.
    #[error(transparent)]
    Command(#[from] CmdError),
    /// Vports exist only in FDB domains.
    #[error("vport {vport:#x}: vports are destinations of FDB domains, not of {domain}")]
    VportOutsideFdb {
        /// The vport asked for.
        vport: u16,
        /// The domain's type.
        domain: DomainType,
    },
}

/// What STEs of one side of a domain need to know: where a chain ends when nothing
/// matches, and where a drop goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SideInfo {
    /// The side.
    pub side: DomainSide,
    /// The default miss address: NIC RX drops, NIC TX sends to the wire (the "allow"
    /// address), FDB delivers to the e-switch manager's vport.
    pub default_miss: u64,
    /// The drop address.
    pub drop: u64,
}

/// One value per side: RX and TX slots, filled for the sides a domain has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerSide<T> {
    rx: Option<T>,
    tx: Option<T>,
}

impl<T> Default for PerSide<T> {
    fn default() -> Self {
        PerSide { rx: None, tx: None }
    }
}

impl<T> PerSide<T> {
    fn slot(&self, side: DomainSide) -> &Option<T> {
        if side.rx() {
            &self.rx
        } else {
            &self.tx
        }
    }

    fn slot_mut(&mut self, side: DomainSide) -> &mut Option<T> {
        if side.rx() {
            &mut self.rx
        } else {
            &mut self.tx
        }
    }

    /// The value of `side` (RX or TX, whatever the domain type), if set.
    pub fn get(&self, side: DomainSide) -> Option<&T> {
        self.slot(side).as_ref()
    }

    /// Sets the value of `side`; returns the one it replaces.
    pub fn insert(&mut self, side: DomainSide, value: T) -> Option<T> {
        self.slot_mut(side).replace(value)
    }

    /// Takes the value of `side` out.
    pub fn take(&mut self, side: DomainSide) -> Option<T> {
        self.slot_mut(side).take()
    }

    /// Takes every value out, RX first.
    pub fn take_all(&mut self) -> impl Iterator<Item = T> {
        self.rx.take().into_iter().chain(self.tx.take())
    }

    /// The RX value then the TX value, those that are set.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.rx.iter().chain(self.tx.iter())
    }
}

/// How a domain is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    /// The sizing of each send ring.
    pub send: SendConfig,
    /// How many send rings (at least 1): matchers are spread over them, so this many
    /// matchers can be updated in parallel.
    pub rings: usize,
}

impl Default for DomainConfig {
    /// rdma-core's ring sizing, four rings.
    fn default() -> Self {
        DomainConfig {
            send: SendConfig::default(),
            rings: 4,
        }
    }
}

/// One send ring and its lock, starting on a cache line of its own: the rings sit side
/// by side, so threads updating matchers on neighbouring rings could otherwise share the
/// line holding one ring's lock word and the other's last fields.
#[repr(align(64))]
struct RingSlot(Mutex<SendRing>);

/// Software steering of one table type on one device: capabilities, ICM pools, the send
/// rings and the per-side firmware addresses. See the module documentation.
pub struct Domain {
    // Field order is drop order: the rings are drained before the pools give their ICM
    // back (and `Drop` syncs steering in between).
    rings: Box<[RingSlot]>,
    next_ring: AtomicUsize,
    /// The sizing of a ring, for replacing a broken one.
    send: SendConfig,
    ring_replacements: AtomicUsize,
    ste_pool: Arc<IcmPool>,
    action_pool: Arc<IcmPool>,
    vports: Mutex<HashMap<u16, VportCap>>,
    caps: DeviceCaps,
    sw: SwSteering,
    sides: PerSide<SideInfo>,
    dev: Arc<dyn Device>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("type", &self.sw.table_type)
            .field("format", &self.sw.format)
            .field("sides", &self.sides)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks is left half-changed by a panic that unwinds through
    // a caller: the ring checks its own state on every call.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Domain {
    /// Opens a domain of `domain_type` on `dev` with the default configuration.
    ///
    /// Nothing is left behind on failure: whatever was created is released again.
    pub fn open(dev: Arc<dyn Device>, domain_type: DomainType) -> Result<Arc<Domain>, DomainError> {
        Domain::open_with(dev, domain_type, DomainConfig::default())
    }

    /// Opens a domain set up as `cfg` says.
    pub fn open_with(
        dev: Arc<dyn Device>,
        domain_type: DomainType,
        cfg: DomainConfig,
    ) -> Result<Arc<Domain>, DomainError> {
        let caps = DeviceCaps::query(&*dev)?;
        let sw = caps.check_sw_steering(domain_type)?;
        let mut sides = PerSide::default();
        for &side in DomainSide::of(domain_type) {
            let addrs = if side.rx() { sw.rx } else { sw.tx };
            // `check_sw_steering` fills exactly the sides of the type.
            if let Some(a) = addrs {
                sides.insert(
                    side,
                    SideInfo {
                        side,
                        default_miss: a.default_miss,
                        drop: a.drop,
                    },
                );
            }
        }
        let ste_pool = Arc::new(IcmPool::new(Arc::clone(&dev), PoolConfig::steering(&caps))?);
        let action_pool = Arc::new(IcmPool::new(
            Arc::clone(&dev),
            PoolConfig::modify_action(&caps),
        )?);
        let rings = (0..cfg.rings.max(1))
            .map(|_| SendRing::new(&*dev, cfg.send.clone()).map(|r| RingSlot(Mutex::new(r))))
            .collect::<Result<Box<[_]>, _>>()?;
        Ok(Arc::new(Domain {
            rings,
            next_ring: AtomicUsize::new(0),
            send: cfg.send,
            ring_replacements: AtomicUsize::new(0),
            ste_pool,
            action_pool,
            vports: Mutex::new(HashMap::new()),
            caps,
            sw,
            sides,
            dev,
        }))
    }

    /// The domain's type.
    pub fn domain_type(&self) -> DomainType {
        self.sw.table_type
    }

    /// The sides of the domain, RX first.
    pub fn sides(&self) -> &'static [DomainSide] {
        DomainSide::of(self.sw.table_type)
    }

    /// The firmware addresses of `side`; `None` for a side the domain does not have.
    pub fn side(&self, side: DomainSide) -> Option<&SideInfo> {
        self.sides.get(side).filter(|s| s.side == side)
    }

    /// The STE format of the device.
    pub fn format(&self) -> SteFormat {
        self.sw.format
    }

    /// The gvmi STEs of this domain carry.
    pub fn gvmi(&self) -> u16 {
        self.caps.gvmi
    }

    /// The device's capabilities, as discovered when the domain was opened.
    pub fn caps(&self) -> &DeviceCaps {
        &self.caps
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.dev
    }

    /// The steering-entry ICM pool.
    pub fn ste_pool(&self) -> &Arc<IcmPool> {
        &self.ste_pool
    }

    /// The modify-header action ICM pool.
    pub fn action_pool(&self) -> &Arc<IcmPool> {
        &self.action_pool
    }

    /// The control ring (ring 0), locked for the caller's writes.
    ///
    /// Do not drop a [`Table`] (or anything whose drop writes or flushes, like the last
    /// `Arc` of one) while holding a ring guard: its drop flushes the rings and would
    /// wait for the lock forever.
    pub fn ring(&self) -> MutexGuard<'_, SendRing> {
        self.ring_at(0)
    }

    /// Ring `index` (taken modulo the number of rings), locked for the caller's writes.
    ///
    /// A ring broken by an earlier failure (an error CQE puts its queue in the error
    /// state, and it executes nothing more) is replaced by a fresh one first: the
    /// failure was reported to the call that met it, every write before the failed one
    /// landed and none after it, so nothing is in flight. Matchers whose updates did not
    /// wait ([`crate::Completion`]) learn from the fresh ring what became of theirs. Without this, one error CQE
    /// would leave every matcher on the ring unable to insert, remove or roll back. If
    /// the device refuses a new queue, the broken ring stays and reports its failure.
    pub fn ring_at(&self, index: usize) -> MutexGuard<'_, SendRing> {
        let mut ring = lock(&self.rings[index % self.rings.len()].0);
        if ring.failure().is_some() {
            if let Ok(mut fresh) = SendRing::new(&*self.dev, self.send.clone()) {
                fresh.set_tap(ring.set_tap(None));
                // Matchers that did not wait for their writes ask the fresh ring what
                // became of them.
                fresh.succeed(&mut ring);
                *ring = fresh;
                self.ring_replacements.fetch_add(1, Ordering::Relaxed);
            }
        }
        ring
    }

    /// How many broken rings were replaced by fresh ones ([`Domain::ring_at`]).
    pub fn ring_replacements(&self) -> usize {
        self.ring_replacements.load(Ordering::Relaxed)
    }

    /// How many send rings the domain has.
    pub fn ring_count(&self) -> usize {
        self.rings.len()
    }

    /// The ring the next matcher gets: round robin over the rings.
    pub fn assign_ring(&self) -> usize {
        self.next_ring.fetch_add(1, Ordering::Relaxed) % self.rings.len()
    }

    /// Waits until every write posted on the domain's rings is in ICM; the first failure
    /// is reported after every ring was tried.
    pub fn flush(&self) -> Result<(), SendError> {
        let mut first = Ok(());
        for i in 0..self.rings.len() {
            let res = self.ring_at(i).flush();
            if first.is_ok() {
                first = res;
            }
        }
        first
    }

    /// Sets (or with `None` removes) the observer of every write on every ring of the
    /// domain (see [`WriteTap`]; [`crate::record::Recorder`] is one). Each ring takes it
    /// under its lock, so writes in flight on other threads may be seen from the next
    /// one on.
    pub fn set_write_tap(&self, tap: Option<Arc<dyn WriteTap>>) {
        for ring in self.rings.iter() {
            lock(&ring.0).set_tap(tap.clone());
        }
    }

    /// Send statistics of each ring, ring 0 first.
    pub fn send_stats(&self) -> Vec<crate::send::SendStats> {
        self.rings.iter().map(|r| lock(&r.0).stats()).collect()
    }

    /// The capabilities the STE encoders read, with the vports the domain has looked up
    /// so far ([`Domain::vport`]) in its vport table.
    pub fn ste_caps(&self) -> Caps {
        let mut known: Vec<VportCap> = lock(&self.vports).values().copied().collect();
        known.sort_by_key(|v| v.vport_num);
        self.caps.ste_caps(&known)
    }

    /// E-switch vport `num` (the uplink is [`UPLINK_VPORT`]): its ICM addresses and
    /// gvmis. Asked of the device the first time, then remembered. FDB domains only.
    pub fn vport(&self, num: u16) -> Result<VportCap, DomainError> {
        if self.sw.table_type != DomainType::Fdb {
            return Err(DomainError::VportOutsideFdb {
                vport: num,
                domain: self.sw.table_type,
            });
        }
        let esw = self.caps.esw.as_ref().ok_or(CapsError::NotEswitchManager)?;
        if num == UPLINK_VPORT {
            return Ok(esw.uplink);
        }
        if let Some(v) = lock(&self.vports).get(&num) {
            return Ok(*v);
        }
        // Queried without the lock held: two threads asking at once both ask the
        // device, and get the same answer.
        let v = self.caps.query_vport(&*self.dev, num)?;
        lock(&self.vports).insert(num, v);
        Ok(v)
    }

    /// The 64 bytes of an anchor-style entry of `side` (lookup type "don't care"), as
    /// posted to ICM: always hitting into the table `connect` names, or always missing
    /// to its address.
    pub fn anchor_ste(&self, side: DomainSide, connect: Connect) -> [u8; STE_SIZE] {
        let ctrl = self.sw.format.ctrl();
        let mut ste = [0u8; STE_SIZE];
        set_formatted_ste(
            ctrl,
            &mut ste,
            self.caps.gvmi,
            side.rx(),
            LU_TYPE_DONT_CARE,
            connect,
        );
        ctrl.prepare_for_postsend(&mut ste, STE_SIZE);
        ste
    }

    /// Runs `SYNC_STEERING`: the device drops what it cached of ICM written before.
    pub fn sync_steering(&self) -> Result<(), CmdError> {
        CmdIn::new("SYNC_STEERING", SYNC_STEERING, sync_steering_in::SIZE_BITS)
            .exec(&*self.dev, sync_steering_out::SIZE_BITS)
            .map(|_| ())
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // As rdma-core does before freeing a domain's resources: everything posted has
        // landed, and the device no longer holds cached entries of the ICM about to go.
        // Nothing can report a failure here; a broken ring has nothing in flight.
        for ring in self.rings.iter_mut() {
            let _ = ring.0.get_mut().unwrap_or_else(|e| e.into_inner()).flush();
        }
        let _ = self.sync_steering();
    }
}
