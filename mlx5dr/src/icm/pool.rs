//! [`IcmPool`]: the ICM of one kind, as regions from the device with a buddy allocator
//! each, handing out aligned power-of-two chunks and taking them back through the
//! deferred-reuse rule of the module documentation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ste_builder::prm::{sync_steering_in, sync_steering_out};

use super::buddy::{Buddy, MAX_ORDER};
use super::{IcmError, PoolConfig};
use crate::cmd::CmdIn;
use crate::device::{Device, DeviceError, IcmKind, IcmRegion};

use crate::cmd::opcode::SYNC_STEERING;

/// A new region is at most an eighth of what the pool holds, unless the chunk asked for
/// is larger (then it is that chunk's size): what the pool holds but has not handed out
/// stays a small share however large the pool grows. Doubling instead kept up to half
/// of it idle (a 32 MiB region for one 4 KiB slab block, at 1 M rules).
const REGION_GROWTH_SHIFT: u8 = 3;

/// The most regions a pool holds (a chunk names its region in 16 bits).
const MAX_REGIONS: usize = 1 << 16;

/// A run of `2^log_entries` ICM entries handed out by an [`IcmPool`]: a hash table, or a
/// block an [`super::EntrySlab`] splits.
///
/// Aligned to its byte size, inside one device region ([`Chunk::region`], what writes to
/// it are aimed with). Not `Clone`: the handle is the ownership, given back with
/// [`IcmPool::free`]. Dropping it without freeing leaks the entries until the pool is
/// dropped (which gives every region back). 16 bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Chunk {
    addr: u64,
    rkey: u32,
    log_entries: u8,
    log_entry_size: u8,
    /// Its region is `2^log_region` bytes, aligned to that size.
    log_region: u8,
    kind: IcmKind,
}

impl Chunk {
    /// The ICM address of entry 0.
    pub fn icm_addr(&self) -> u64 {
        self.addr
    }

    /// The rkey RDMA writes to the chunk carry.
    pub fn rkey(&self) -> u32 {
        self.rkey
    }

    /// The device region the chunk lies in: what [`crate::send::SendRing::write`] takes
    /// with an address inside the chunk (the region's registration is zero-based, so
    /// writes carry offsets from its start).
    pub fn region(&self) -> IcmRegion {
        let size = 1u64 << self.log_region;
        IcmRegion {
            kind: self.kind,
            addr: self.addr & !(size - 1),
            size,
            rkey: self.rkey,
        }
    }

    /// log2 of the entry count.
    pub fn log_entries(&self) -> u8 {
        self.log_entries
    }

    /// Entries.
    pub fn entries(&self) -> u64 {
        1 << self.log_entries
    }

    /// Bytes of one entry.
    pub fn entry_size(&self) -> u64 {
        1 << self.log_entry_size
    }

    /// Bytes of the chunk.
    pub fn byte_size(&self) -> u64 {
        1 << (self.log_entries + self.log_entry_size)
    }

    /// The ICM address of entry `index`, if the chunk has it.
    pub fn entry_addr(&self, index: u64) -> Option<u64> {
        (index < self.entries()).then(|| self.addr + (index << self.log_entry_size))
    }
}

/// What a pool holds and has done, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Regions held from the device.
    pub regions: usize,
    /// Bytes of ICM held from the device.
    pub allocated_bytes: u64,
    /// Live chunks handed out by [`IcmPool::alloc`].
    pub chunks: u64,
    /// Bytes in those chunks.
    pub chunk_bytes: u64,
    /// Bytes in blocks held by entry slabs (their entries used, hot or free).
    pub slab_bytes: u64,
    /// Bytes of freed chunks and blocks waiting for a sync.
    pub hot_bytes: u64,
    /// Bytes freed (chunks, blocks and reported slab entries) since the last sync
    /// started: what the sync threshold is compared with.
    pub pending_bytes: u64,
    /// Host bytes of the pool's own bookkeeping.
    pub host_bytes: usize,
    /// `SYNC_STEERING` commands the pool completed.
    pub syncs: u64,
    /// `SYNC_STEERING` commands that failed.
    pub sync_failures: u64,
    /// Regions the pool failed to give back to the device (their ICM is lost).
    pub release_failures: u64,
}

impl PoolStats {
    /// Bytes held from the device and ready to be handed out.
    pub fn free_bytes(&self) -> u64 {
        self.allocated_bytes - self.chunk_bytes - self.slab_bytes - self.hot_bytes
    }
}

/// One region from the device and its buddy.
#[derive(Debug)]
struct Region {
    icm: IcmRegion,
    /// The buddy covers `2^log_bytes` bytes from `icm.addr`.
    log_bytes: u8,
    buddy: Buddy,
}

/// log2 of the region size a pool holding `allocated` bytes prefers next, before it is
/// clamped to the configured sizes and raised to what the chunk asked for needs: the
/// largest power of two not above `allocated >> REGION_GROWTH_SHIFT`.
fn next_region_log(allocated: u64) -> u8 {
    (allocated >> REGION_GROWTH_SHIFT)
        .checked_ilog2()
        .map_or(0, |l| l as u8)
}

/// A freed chunk waiting for a sync.
#[derive(Debug, Clone, Copy)]
struct HotChunk {
    region: u16,
    first: u32,
    order: u8,
    /// Syncs started when it was freed: reusable once a sync numbered above this
    /// completes.
    stamp: u64,
}

/// What chunks are for, for the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Handed out by `alloc`.
    Chunk,
    /// A slab's block.
    Slab,
}

/// Everything behind the pool's mutex.
#[derive(Debug, Default)]
struct State {
    /// Slots; `None` for a region given back.
    regions: Vec<Option<Region>>,
    hot: Vec<HotChunk>,
    hot_bytes: u64,
    /// A device call (growth or sync) is running with the mutex released.
    busy: bool,
    allocated: u64,
    chunks: u64,
    chunk_bytes: u64,
    slab_bytes: u64,
    syncs: u64,
    sync_failures: u64,
    release_failures: u64,
}

impl State {
    /// A free block of `order` from the region whose smallest fitting free block is the
    /// smallest (lowest region on ties), so large free blocks stay whole.
    fn take(&mut self, order: u8) -> Option<(u32, IcmRegion, u8)> {
        let mut best: Option<(u8, usize)> = None;
        for (i, r) in self.regions.iter().enumerate() {
            let Some(fit) = r.as_ref().and_then(|r| r.buddy.fit(order)) else {
                continue;
            };
            if best.map_or(true, |(b, _)| fit < b) {
                best = Some((fit, i));
                if fit == order {
                    break;
                }
            }
        }
        let (_, i) = best?;
        let r = self.regions[i].as_mut()?;
        let first = r.buddy.alloc(order)?;
        Some((first, r.icm, r.log_bytes))
    }

    /// The region slot and buddy position of `chunk`, if this state handed it out.
    fn locate(&self, chunk: &Chunk, log_entry_size: u8) -> Option<(u16, u32)> {
        let (i, r) = self.regions.iter().enumerate().find_map(|(i, r)| {
            let r = r.as_ref()?;
            let inside = chunk.addr >= r.icm.addr && chunk.addr - r.icm.addr < 1 << r.log_bytes;
            (inside && r.icm.rkey == chunk.rkey).then_some((i, r))
        })?;
        let off = chunk.addr - r.icm.addr;
        let first = u32::try_from(off >> log_entry_size).ok()?;
        let ok = chunk.log_entry_size == log_entry_size
            && chunk.log_region == r.log_bytes
            && off & ((1 << log_entry_size) - 1) == 0
            && r.buddy.is_allocated(first, chunk.log_entries);
        ok.then_some((i as u16, first))
    }

    fn add_region(&mut self, icm: IcmRegion, log_bytes: u8, log_entry_size: u8) {
        let region = Region {
            icm,
            log_bytes,
            buddy: Buddy::new(log_bytes - log_entry_size),
        };
        self.allocated += icm.size;
        match self.regions.iter().position(Option::is_none) {
            Some(i) => self.regions[i] = Some(region),
            None => self.regions.push(Some(region)),
        }
    }

    fn has_room_for_region(&self) -> bool {
        self.regions.len() < MAX_REGIONS || self.regions.iter().any(Option::is_none)
    }

    /// Called after entries went back into region `i`: if it is now empty and another
    /// region is empty too, the smaller of the two leaves the pool (at most one empty
    /// region is kept as a spare). Returns the region to give back to the device.
    fn after_free(&mut self, i: u16) -> Option<IcmRegion> {
        let i = usize::from(i);
        let this = self.regions.get(i)?.as_ref()?;
        if !this.buddy.is_empty() {
            return None;
        }
        let other = self.regions.iter().enumerate().find_map(|(j, r)| {
            let r = r.as_ref()?;
            (j != i && r.buddy.is_empty()).then_some((j, r.log_bytes))
        })?;
        let victim = if other.1 < this.log_bytes { other.0 } else { i };
        let region = self.regions[victim].take()?;
        self.allocated -= region.icm.size;
        Some(region.icm)
    }

    /// Moves the hot chunks freed before sync `n` started back into their buddies.
    fn reclaim(&mut self, n: u64, log_entry_size: u8) -> Vec<IcmRegion> {
        let mut release = Vec::new();
        let mut i = 0;
        while i < self.hot.len() {
            let h = self.hot[i];
            if h.stamp >= n {
                i += 1;
                continue;
            }
            self.hot.swap_remove(i);
            self.hot_bytes -= 1 << (h.order + log_entry_size);
            if let Some(r) = self
                .regions
                .get_mut(usize::from(h.region))
                .and_then(Option::as_mut)
            {
                r.buddy.free(h.first, h.order);
            }
            release.extend(self.after_free(h.region));
        }
        release
    }

    fn host_bytes(&self) -> usize {
        self.regions.capacity() * std::mem::size_of::<Option<Region>>()
            + self
                .regions
                .iter()
                .flatten()
                .map(|r| r.buddy.host_bytes())
                .sum::<usize>()
            + self.hot.capacity() * std::mem::size_of::<HotChunk>()
    }
}

/// The ICM of one kind: regions allocated from the device, each managed by a buddy
/// allocator over its entries, with deferred reuse of freed chunks (see the module
/// documentation for the sync invariant and the concurrency design).
///
/// `Send + Sync`; share it with `Arc`. Dropping the pool gives every region back to the
/// device, so it must outlive the chunks and slabs it handed out (slabs hold an `Arc`
/// to it; the owner of chunks, a domain's tables, is dropped first).
pub struct IcmPool {
    dev: Arc<dyn Device>,
    cfg: PoolConfig,
    state: Mutex<State>,
    /// Signalled whenever `busy` clears.
    idle: Condvar,
    /// Syncs started: the number of the latest one.
    started: AtomicU64,
    /// The number of the latest sync that succeeded (syncs run one at a time).
    synced: AtomicU64,
    /// Bytes freed since the latest sync started.
    pending: AtomicU64,
    /// The state's `allocated`, readable without the mutex (for the sync threshold).
    allocated: AtomicU64,
}

impl fmt::Debug for IcmPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcmPool")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

impl IcmPool {
    /// An empty pool on `dev`; it asks the device for ICM on the first allocation.
    pub fn new(dev: Arc<dyn Device>, cfg: PoolConfig) -> Result<IcmPool, IcmError> {
        cfg.validate()?;
        Ok(IcmPool {
            dev,
            cfg,
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            started: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        })
    }

    /// The ICM kind.
    pub fn kind(&self) -> IcmKind {
        self.cfg.kind
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.idle.wait(st).unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates a chunk of `2^log_entries` entries, aligned to its byte size.
    ///
    /// Served from free memory if any fits; otherwise the pool syncs when at least the
    /// chunk's size of freed memory waits, then grows by a region. On error nothing was
    /// handed out and no live chunk changed.
    pub fn alloc(&self, log_entries: u8) -> Result<Chunk, IcmError> {
        if log_entries > self.cfg.max_log_chunk {
            return Err(IcmError::ChunkTooLarge {
                kind: self.cfg.kind,
                log_entries,
                max_log_entries: self.cfg.max_log_chunk,
            });
        }
        self.alloc_as(log_entries, Use::Chunk)
    }

    pub(crate) fn alloc_as(&self, order: u8, usage: Use) -> Result<Chunk, IcmError> {
        let need = self.cfg.chunk_bytes(order);
        // Each fallback runs at most once per call.
        let mut synced = false;
        let mut device_full = false;
        let mut st = self.lock();
        loop {
            if let Some((first, icm, log_region)) = st.take(order) {
                match usage {
                    Use::Chunk => {
                        st.chunks += 1;
                        st.chunk_bytes += need;
                    }
                    Use::Slab => st.slab_bytes += need,
                }
                return Ok(Chunk {
                    addr: icm.addr + (u64::from(first) << self.cfg.log_entry_size),
                    rkey: icm.rkey,
                    log_entries: order,
                    log_entry_size: self.cfg.log_entry_size,
                    log_region,
                    kind: self.cfg.kind,
                });
            }
            if st.busy {
                st = self.wait(st);
                continue;
            }
            // Freed memory that may serve the request is cheaper to sync than a new
            // region is to allocate and register.
            if !synced && st.hot_bytes >= need {
                drop(st);
                // A failure is counted; growing may still serve the request.
                let _ = self.sync_now(true);
                synced = true;
                st = self.lock();
                continue;
            }
            if !device_full && st.has_room_for_region() {
                st.busy = true;
                let preferred = next_region_log(st.allocated);
                drop(st);
                let grown = self.grow(order, preferred);
                st = self.lock();
                st.busy = false;
                self.idle.notify_all();
                match grown? {
                    Some((icm, log_bytes)) => {
                        st.add_region(icm, log_bytes, self.cfg.log_entry_size);
                        self.allocated.store(st.allocated, SeqCst);
                    }
                    None => device_full = true,
                }
                continue;
            }
            if !synced && st.hot_bytes > 0 {
                // Last resort: whatever is hot, in case it coalesces into enough.
                drop(st);
                self.sync_now(true)?;
                synced = true;
                st = self.lock();
                continue;
            }
            return Err(IcmError::Exhausted {
                kind: self.cfg.kind,
                requested: need,
                in_use: st.chunk_bytes + st.slab_bytes,
                allocated: st.allocated,
            });
        }
    }

    /// Asks the device for a region able to hold a chunk of `order`: `preferred` log
    /// bytes (clamped to the configured sizes), halved on exhaustion down to what the
    /// chunk needs. `None`: the device has no room even for that.
    fn grow(&self, order: u8, preferred: u8) -> Result<Option<(IcmRegion, u8)>, IcmError> {
        let cfg = &self.cfg;
        let floor = (order + cfg.log_entry_size).max(cfg.log_min_region);
        let mut log = preferred
            .max(cfg.log_initial_region)
            .min(cfg.log_max_region())
            .max(floor);
        loop {
            let size = 1u64 << log;
            match self.dev.alloc_icm(cfg.kind, size, log) {
                Ok(icm) => {
                    if icm.addr & (size - 1) != 0 || icm.size < size || icm.kind != cfg.kind {
                        let _ = self.dev.free_icm(&icm);
                        return Err(IcmError::Device {
                            kind: cfg.kind,
                            size,
                            source: DeviceError::Icm(format!(
                                "region at {:#x} of {} bytes is not the {size}-byte aligned {:?} region asked for",
                                icm.addr, icm.size, cfg.kind
                            )),
                        });
                    }
                    return Ok(Some((icm, log)));
                }
                Err(DeviceError::IcmExhausted { .. }) if log > floor => log -= 1,
                Err(DeviceError::IcmExhausted { .. }) => return Ok(None),
                Err(source) => {
                    return Err(IcmError::Device {
                        kind: cfg.kind,
                        size,
                        source,
                    })
                }
            }
        }
    }

    /// Frees `chunk`: it becomes reusable after the next sync that starts from now on
    /// (see the module documentation: free only what the device can no longer reach
    /// through completed writes). May run that sync when enough freed memory waits; a
    /// failure of that sync is counted in [`PoolStats::sync_failures`] and retried by
    /// the next one, and does not fail the free.
    ///
    /// Fails only for a chunk this pool did not hand out.
    pub fn free(&self, chunk: Chunk) -> Result<(), IcmError> {
        self.free_as(chunk, Use::Chunk, false)
    }

    /// Frees a chunk of `usage`. `synced`: its entries were all freed and synced
    /// already (a slab's fully free block), so it skips the hot list.
    pub(crate) fn free_as(&self, chunk: Chunk, usage: Use, synced: bool) -> Result<(), IcmError> {
        let bytes = chunk.byte_size();
        let release = {
            let mut st = self.lock();
            let (region, first) =
                st.locate(&chunk, self.cfg.log_entry_size)
                    .ok_or(IcmError::Foreign {
                        kind: self.cfg.kind,
                        what: "chunk",
                        owner: "pool",
                        addr: chunk.addr,
                    })?;
            match usage {
                Use::Chunk => {
                    st.chunks -= 1;
                    st.chunk_bytes -= bytes;
                }
                Use::Slab => st.slab_bytes -= bytes,
            }
            if synced {
                if let Some(r) = st
                    .regions
                    .get_mut(usize::from(region))
                    .and_then(Option::as_mut)
                {
                    r.buddy.free(first, chunk.log_entries);
                }
                let release = st.after_free(region);
                self.allocated.store(st.allocated, SeqCst);
                release
            } else {
                let stamp = self.started.load(SeqCst);
                st.hot.push(HotChunk {
                    region,
                    first,
                    order: chunk.log_entries,
                    stamp,
                });
                st.hot_bytes += bytes;
                None
            }
        };
        if let Some(region) = release {
            self.release(&[region]);
        }
        if !synced {
            self.note_freed(bytes);
        }
        Ok(())
    }

    /// Runs `SYNC_STEERING` and makes everything freed before this call reusable. If a
    /// sync is running, waits for it and then runs another (that one may have started
    /// before some of the frees this call must cover).
    pub fn sync(&self) -> Result<(), IcmError> {
        self.sync_now(true).map(|_| ())
    }

    /// Syncs and gives every region without live chunks back to the device (the spare
    /// too). Returns the bytes given back.
    pub fn trim(&self) -> Result<u64, IcmError> {
        self.sync()?;
        let release: Vec<IcmRegion> = {
            let mut st = self.lock();
            let mut out = Vec::new();
            for slot in st.regions.iter_mut() {
                if slot.as_ref().is_some_and(|r| r.buddy.is_empty()) {
                    out.extend(slot.take().map(|r| r.icm));
                }
            }
            st.allocated -= out.iter().map(|r| r.size).sum::<u64>();
            self.allocated.store(st.allocated, SeqCst);
            out
        };
        self.release(&release);
        Ok(release.iter().map(|r| r.size).sum())
    }

    /// One sync. `wait`: if another device call is running, wait for it; otherwise
    /// return `Ok(false)` without syncing.
    fn sync_now(&self, wait: bool) -> Result<bool, IcmError> {
        let (n, pending) = {
            let mut st = self.lock();
            while st.busy {
                if !wait {
                    return Ok(false);
                }
                st = self.wait(st);
            }
            st.busy = true;
            // Under the mutex, so chunk frees are stamped either before or after it.
            let n = self.started.fetch_add(1, SeqCst) + 1;
            (n, self.pending.swap(0, SeqCst))
        };
        let res = CmdIn::new("SYNC_STEERING", SYNC_STEERING, sync_steering_in::SIZE_BITS)
            .exec(&*self.dev, sync_steering_out::SIZE_BITS);
        let release = {
            let mut st = self.lock();
            st.busy = false;
            self.idle.notify_all();
            if let Err(source) = res {
                st.sync_failures += 1;
                // Still owed: the next sync covers these bytes.
                self.pending.fetch_add(pending, SeqCst);
                return Err(IcmError::Sync {
                    kind: self.cfg.kind,
                    source,
                });
            }
            st.syncs += 1;
            self.synced.store(n, SeqCst);
            let release = st.reclaim(n, self.cfg.log_entry_size);
            self.allocated.store(st.allocated, SeqCst);
            release
        };
        self.release(&release);
        Ok(true)
    }

    /// Gives regions (already out of the state) back to the device.
    fn release(&self, regions: &[IcmRegion]) {
        let failures = regions
            .iter()
            .filter(|r| self.dev.free_icm(r).is_err())
            .count() as u64;
        if failures > 0 {
            self.lock().release_failures += failures;
        }
    }

    /// Accounts `bytes` freed (chunks, or entries a slab reports in batches) and syncs
    /// when the threshold is passed and no other device call is running.
    pub(crate) fn note_freed(&self, bytes: u64) {
        let pending = self.pending.fetch_add(bytes, SeqCst) + bytes;
        let threshold = self
            .cfg
            .sync_min_bytes
            .max(self.allocated.load(SeqCst) >> self.cfg.sync_shift);
        if pending >= threshold {
            // A failure is counted in the stats and the bytes stay pending.
            let _ = self.sync_now(false);
        }
    }

    /// The stamp of a free happening now: syncs started so far.
    pub(crate) fn stamp(&self) -> u64 {
        self.started.load(SeqCst)
    }

    /// The latest successful sync: frees stamped below it are reusable.
    pub(crate) fn synced(&self) -> u64 {
        self.synced.load(SeqCst)
    }

    /// A snapshot of the accounting.
    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        PoolStats {
            regions: st.regions.iter().flatten().count(),
            allocated_bytes: st.allocated,
            chunks: st.chunks,
            chunk_bytes: st.chunk_bytes,
            slab_bytes: st.slab_bytes,
            hot_bytes: st.hot_bytes,
            pending_bytes: self.pending.load(SeqCst),
            host_bytes: std::mem::size_of::<IcmPool>() + st.host_bytes(),
            syncs: st.syncs,
            sync_failures: st.sync_failures,
            release_failures: st.release_failures,
        }
    }

    /// The regions held, in slot order (for tests and dumps).
    pub fn regions(&self) -> Vec<IcmRegion> {
        self.lock()
            .regions
            .iter()
            .flatten()
            .map(|r| r.icm)
            .collect()
    }
}

impl Drop for IcmPool {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for r in st.regions.drain(..).flatten() {
            // Nothing can report a failure any more; the device reclaims the ICM when
            // the process's device context closes.
            let _ = self.dev.free_icm(&r.icm);
        }
    }
}

// The hot list costs 16 bytes per freed chunk.
const _: () = assert!(std::mem::size_of::<HotChunk>() == 16);

// A region's buddy indexes entries in u32 and orders fit in the `avail` mask.
const _: () = assert!(super::MAX_LOG_REGION_ENTRIES <= MAX_ORDER);
