//! ICM memory management: pools of device SW-ICM, a buddy allocator for hash-table
//! chunks, a slab for single entries, and deferred reuse behind `SYNC_STEERING`.
//!
//! ## Shape
//!
//! ```text
//!   IcmPool (one per ICM kind, shared: Arc)             EntrySlab (one per user, &mut)
//!   ├─ regions from Device::alloc_icm, each aligned     ├─ blocks of 64 entries, each a
//!   │  to its size, each with a Buddy over its          │  pool Chunk; one u64 free mask
//!   │  entries (64-byte STEs, 8-byte actions)           │  and one u64 hot mask per block
//!   ├─ alloc(log) -> Chunk (2^log entries, aligned)     ├─ alloc() -> Entry (O(1), no buddy
//!   ├─ free(Chunk) -> hot list, stamped                 │  work in 63 of 64 allocations)
//!   └─ sync(): SYNC_STEERING, then hot -> buddy         └─ free(Entry) -> hot mask, stamped
//! ```
//!
//! - [`IcmPool`] grows by asking the device for regions: the first of
//!   [`PoolConfig::log_initial_region`] bytes, each next one the largest power of two
//!   not above an eighth of what the pool holds (but at least the initial size), up to
//!   the largest chunk ([`PoolConfig::max_log_chunk`] entries), and never smaller than
//!   the chunk asked for. So a large hash table gets a region of its own size, and the
//!   memory held but not handed out stays a small share of the pool (rdma-core asks for
//!   regions of the largest chunk's size each time). When the device refuses a size the pool halves it down to what
//!   the request needs. Regions are requested aligned to their size, so every chunk (a
//!   buddy block) is aligned to its own byte size, which the STE hit-address encoding
//!   relies on. A region that empties is given back to the device, except one spare.
//! - [`EntrySlab`] serves the single entries of collision (miss) chains: it takes
//!   64-entry blocks from the pool and hands out their entries from a bit mask, so a
//!   collision does not cost a buddy allocation as it does in rdma-core.
//!
//! ## Deferred reuse (the invariant)
//!
//! The hardware may still be walking an entry when the driver frees it (a lookup in
//! flight, a cached STE). So freed ICM is not handed out again until the device has
//! executed a `SYNC_STEERING` command that **started after the free**:
//!
//! - Every free is stamped with the number of syncs started so far (`s`). It becomes
//!   reusable once a sync numbered above `s` has completed successfully. Syncs run one
//!   at a time, so "the latest successful sync" is one counter, compared by the buddy
//!   side (hot chunks, under the pool lock) and by each slab (lazily, when it runs out
//!   of free entries) alike.
//! - The pool issues a sync when the bytes freed since the last sync pass
//!   `max(PoolConfig::sync_min_bytes, allocated >> PoolConfig::sync_shift)` (rdma-core
//!   waits for half its largest chunk), when an allocation would otherwise have to grow
//!   the pool or fail while enough freed memory waits, and on [`IcmPool::sync`].
//! - A failed sync reuses nothing: the freed memory stays hot and the next sync covers
//!   it. (rdma-core reuses it anyway.)
//! - **The caller's part**: free a chunk or entry only once nothing the device can still
//!   reach points at it, i.e. after the writes that unlinked it have completed (the send
//!   ring was flushed). The sync then covers what the hardware may have cached or had in
//!   flight; the pool does not drain send rings itself (rdma-core does, because it frees
//!   before its unlink writes complete).
//!
//! ## Host memory
//!
//! Nothing per ICM entry: a region's buddy keeps about two bits per entry (one bitmap
//! per order, with 1/63 summaries for the lowest-free search), a slab about 70 bytes
//! per 64-entry block (about one byte per entry), the hot list 16 bytes per freed chunk
//! until the next sync. rdma-core keeps a 144-byte host shadow per 64-byte entry.
//! [`PoolStats::host_bytes`] and [`SlabStats::host_bytes`] report the real figures.
//!
//! ## Concurrency
//!
//! [`IcmPool`] is `Send + Sync` behind one mutex. Growing and syncing call the device
//! with the mutex released, under a `busy` flag: one such call runs at a time, callers
//! that need one wait on a condition variable, and allocations that fit go on. (A
//! sync's reclaim of hot chunks runs under the mutex, linear in the chunks freed since
//! the previous sync.) The per-rule path does not touch the mutex: each matcher owns
//! its [`EntrySlab`] (`&mut self`, no lock of its own), which goes to the pool for one
//! block per 64 allocations; a free costs one atomic load, plus one atomic add per 64
//! frees. To shard further later: give each group of matchers its own sub-pool of
//! regions (picked by matcher id, with the sync counters shared so one
//! `SYNC_STEERING` serves all), or put a small per-thread cache of free blocks in front
//! of the buddy.
//!
//! ## Cost, measured (not a test)
//!
//! Measured once by hand with a throw-away loop (`--release`, simulated ConnectX-6 Dx,
//! 1 M operations per round, on the 2-core machine while other builds ran, so figures
//! are upper bounds; `cargo test` times nothing): `EntrySlab::alloc` ≈ 25–45 ns and
//! `EntrySlab::free` ≈ 15–20 ns each, block refills, reclaims and threshold syncs
//! included, in a loop that also stores every handle in a vector; the buddy path
//! (`IcmPool::alloc(0)` or `IcmPool::free` under the mutex) ≈ 130–150 ns each.

mod bitset;
mod buddy;
mod pool;
mod slab;

#[cfg(all(test, feature = "sim"))]
mod tests;

pub use pool::{Chunk, IcmPool, PoolStats};
pub use slab::{Entry, EntrySlab, SlabStats, SLAB_BLOCK_ENTRIES};

use crate::caps::DeviceCaps;
use crate::cmd::CmdError;
use crate::device::{DeviceError, IcmKind};

/// log2 of an STE's size in ICM (`DR_STE_LOG_SIZE`).
pub const LOG_STE_SIZE: u8 = 6;
/// log2 of a modify-header action's size (`DR_MODIFY_ACTION_LOG_SIZE`).
pub const LOG_ACTION_SIZE: u8 = 3;
/// The largest chunk of modify-header patterns DR uses, log2 of entries (4K).
const MAX_LOG_PATTERN_CHUNK: u8 = 12;
/// The first region of STE ICM: 1 MiB (16 Ki STEs).
const LOG_INITIAL_STE_REGION: u8 = 20;
/// The first region of action ICM: 64 KiB (8 Ki actions).
const LOG_INITIAL_ACTION_REGION: u8 = 16;
/// Sync when at least this much was freed, 1 MiB by default...
const SYNC_MIN_BYTES: u64 = 1 << 20;
/// ...and at least a quarter of the pool.
const SYNC_SHIFT: u8 = 2;
/// The largest entry index a region may need (the buddy counts entries in `u32`).
const MAX_LOG_REGION_ENTRIES: u8 = 30;
/// The largest entry size (a region's byte size must stay far below 2^64).
const MAX_LOG_ENTRY_SIZE: u8 = 12;

/// How a pool is sized and when it syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolConfig {
    /// The ICM kind the pool allocates.
    pub kind: IcmKind,
    /// log2 of an entry's bytes: 6 for STEs, 3 for modify-header actions.
    pub log_entry_size: u8,
    /// The largest chunk, log2 of entries; also the largest region the pool asks for.
    pub max_log_chunk: u8,
    /// No region is smaller than `2^log_min_region` bytes (the device's allocation
    /// granularity).
    pub log_min_region: u8,
    /// The first region is `2^log_initial_region` bytes (clamped between the smallest
    /// and the largest region).
    pub log_initial_region: u8,
    /// Freed bytes below this never trigger a sync on their own.
    pub sync_min_bytes: u64,
    /// A sync is due once the bytes freed since the last one reach
    /// `max(sync_min_bytes, allocated >> sync_shift)`.
    pub sync_shift: u8,
}

impl PoolConfig {
    /// STE ICM sized for `caps`: 64-byte entries, chunks up to
    /// [`DeviceCaps::max_log_ste_table_size`], regions from 1 MiB.
    pub fn steering(caps: &DeviceCaps) -> PoolConfig {
        PoolConfig {
            kind: IcmKind::Steering,
            log_entry_size: LOG_STE_SIZE,
            max_log_chunk: caps.max_log_ste_table_size(),
            log_min_region: caps.icm.log_alloc_granularity,
            log_initial_region: LOG_INITIAL_STE_REGION,
            sync_min_bytes: SYNC_MIN_BYTES,
            sync_shift: SYNC_SHIFT,
        }
    }

    /// Modify-header action ICM sized for `caps`: 8-byte entries, chunks up to
    /// [`DeviceCaps::max_log_action_icm_size`].
    pub fn modify_action(caps: &DeviceCaps) -> PoolConfig {
        PoolConfig {
            kind: IcmKind::ModifyAction,
            log_entry_size: LOG_ACTION_SIZE,
            max_log_chunk: caps.max_log_action_icm_size(),
            log_min_region: caps.icm.log_alloc_granularity,
            log_initial_region: LOG_INITIAL_ACTION_REGION,
            sync_min_bytes: SYNC_MIN_BYTES,
            sync_shift: SYNC_SHIFT,
        }
    }

    /// Modify-header pattern ICM: 8-byte entries, chunks up to 4K entries as DR uses.
    /// (A device without pattern ICM fails the first allocation with
    /// [`DeviceError::NoIcmKind`].)
    pub fn modify_pattern(caps: &DeviceCaps) -> PoolConfig {
        PoolConfig {
            kind: IcmKind::ModifyPattern,
            log_entry_size: LOG_ACTION_SIZE,
            max_log_chunk: MAX_LOG_PATTERN_CHUNK,
            log_min_region: caps.icm.log_alloc_granularity,
            log_initial_region: LOG_INITIAL_ACTION_REGION,
            sync_min_bytes: SYNC_MIN_BYTES,
            sync_shift: SYNC_SHIFT,
        }
    }

    /// log2 of the largest region's bytes.
    pub fn log_max_region(&self) -> u8 {
        self.max_log_chunk + self.log_entry_size
    }

    /// Bytes of a chunk of `2^log_entries` entries.
    pub fn chunk_bytes(&self, log_entries: u8) -> u64 {
        1u64 << (log_entries + self.log_entry_size)
    }

    fn validate(&self) -> Result<(), IcmError> {
        if self.log_entry_size > MAX_LOG_ENTRY_SIZE {
            return Err(IcmError::Config("log_entry_size must be at most 12"));
        }
        if self.max_log_chunk > MAX_LOG_REGION_ENTRIES {
            return Err(IcmError::Config("max_log_chunk must be at most 30"));
        }
        if self.log_min_region > self.log_max_region() {
            return Err(IcmError::Config(
                "the device granularity is above the largest chunk",
            ));
        }
        if self.sync_shift >= 64 {
            return Err(IcmError::Config("sync_shift must be below 64"));
        }
        Ok(())
    }
}

/// Why an ICM pool or slab operation failed. A failed allocation hands out nothing and
/// leaves every live chunk and entry as it was (it may have run a sync, which only makes
/// freed memory reusable sooner).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcmError {
    /// The configuration cannot work.
    #[error("invalid ICM pool configuration: {0}")]
    Config(&'static str),
    /// A chunk larger than the pool's largest.
    #[error(
        "{kind:?} ICM chunk of 2^{log_entries} entries is above the largest, 2^{max_log_entries}"
    )]
    ChunkTooLarge {
        /// The pool's kind.
        kind: IcmKind,
        /// Asked for, log2 of entries.
        log_entries: u8,
        /// The pool's largest chunk, log2 of entries.
        max_log_entries: u8,
    },
    /// The device has no more ICM of this kind for the request, and no freed memory
    /// could be synced to serve it.
    #[error("{kind:?} ICM exhausted: {requested} bytes asked for, {in_use} bytes in use of {allocated} allocated from the device")]
    Exhausted {
        /// The pool's kind.
        kind: IcmKind,
        /// Bytes asked for (the chunk, or a slab's block).
        requested: u64,
        /// Bytes in live chunks and slab blocks.
        in_use: u64,
        /// Bytes of ICM the pool holds from the device.
        allocated: u64,
    },
    /// The device failed to allocate a region for another reason, or returned one that
    /// breaks its contract (misaligned or short).
    #[error("{kind:?} ICM region of {size} bytes: {source}")]
    Device {
        /// The pool's kind.
        kind: IcmKind,
        /// The region's size asked for.
        size: u64,
        /// What the device said.
        #[source]
        source: DeviceError,
    },
    /// `SYNC_STEERING` failed: freed memory stays unusable until a later sync succeeds.
    #[error("SYNC_STEERING for {kind:?} ICM: {source}")]
    Sync {
        /// The pool's kind.
        kind: IcmKind,
        /// The command's failure.
        #[source]
        source: CmdError,
    },
    /// A chunk or entry freed to a pool or slab that did not hand it out.
    #[error("{what} at ICM {addr:#x} was not handed out by this {kind:?} {owner}")]
    Foreign {
        /// The kind of the pool (or of the slab's pool).
        kind: IcmKind,
        /// "chunk" or "entry".
        what: &'static str,
        /// "pool" or "slab".
        owner: &'static str,
        /// Its ICM address.
        addr: u64,
    },
}
