//! [`EntrySlab`]: single ICM entries (the collision entries of STE miss chains) served
//! from 64-entry blocks of an [`IcmPool`], with the pool's deferred-reuse rule.
//!
//! A block is one pool [`Chunk`] of [`SLAB_BLOCK_ENTRIES`] entries; its state is two
//! masks: `free` (may be handed out) and `hot` (freed, waiting for a sync), with the
//! sync stamp of its latest free. Allocation takes the lowest free bit of the block on
//! top of a stack of blocks with free entries; freeing sets a hot bit. Neither touches
//! the pool except to fetch a block (one allocation in 64), to report freed bytes (one
//! atomic add per 64 frees), and to reclaim: when no free entry is left, hot blocks
//! whose stamp is below the pool's latest successful sync turn their hot bits free.
//! The lists are sized when a block is added, so the alloc and free paths never
//! allocate host memory.

use std::fmt;
use std::sync::Arc;

use super::pool::{Chunk, IcmPool, Use};
use super::IcmError;
use crate::device::IcmRegion;

/// Entries per slab block (one `u64` mask each).
pub const SLAB_BLOCK_ENTRIES: u64 = 64;
/// log2 of [`SLAB_BLOCK_ENTRIES`].
const LOG_BLOCK: u8 = 6;
/// A block with every entry free.
const FULL: u64 = u64::MAX;
/// Freed entries are reported to the pool's sync threshold in batches of this many.
const REPORT_ENTRIES: u64 = 64;
/// Wholly free blocks a slab keeps; more go back to the pool when reclaimed.
const SPARE_BLOCKS: u32 = 1;

/// One ICM entry handed out by an [`EntrySlab`].
///
/// Not `Clone`: the handle is the ownership, given back with [`EntrySlab::free`]. Writes
/// to it are aimed with [`EntrySlab::region`]. 16 bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    addr: u64,
    rkey: u32,
    /// The slab's block slot.
    slot: u32,
}

impl Entry {
    /// Its ICM address.
    pub fn icm_addr(&self) -> u64 {
        self.addr
    }

    /// The rkey RDMA writes to it carry.
    pub fn rkey(&self) -> u32 {
        self.rkey
    }
}

/// One block slot.
///
/// Invariants: a vacant slot (`chunk` is `None`) has `free == hot == 0` and is not in
/// the hot list; `free & hot == 0`; a block with `free != 0` is in the free stack
/// (`listed`); a block with `hot != 0` is in the hot list (`in_hot`). `listed` belongs to
/// the slot: a stale listing of a vacated slot stays until popped.
#[derive(Debug)]
struct Block {
    chunk: Option<Chunk>,
    free: u64,
    hot: u64,
    /// The pool's stamp at the latest free into this block.
    stamp: u64,
    listed: bool,
    in_hot: bool,
}

/// Counters of a slab, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Blocks held from the pool.
    pub blocks: u64,
    /// Their bytes of ICM.
    pub block_bytes: u64,
    /// Entries handed out.
    pub live_entries: u64,
    /// Entries freed and waiting for a sync.
    pub hot_entries: u64,
    /// Entries ready to be handed out.
    pub free_entries: u64,
    /// Host bytes of the slab's bookkeeping.
    pub host_bytes: usize,
}

/// Single entries from 64-entry blocks of an [`IcmPool`]: the allocator for collision
/// entries. One per user (a matcher's tables), used through `&mut self`, so the per-rule
/// path takes no lock; `Send + Sync`.
///
/// Dropping the slab gives its blocks back to the pool; entries still handed out are
/// treated as freed then (the owner drops its entries' users first).
pub struct EntrySlab {
    pool: Arc<IcmPool>,
    log_entry_size: u8,
    blocks: Vec<Block>,
    /// Slots with (possibly) free entries; the top one serves.
    with_free: Vec<u32>,
    /// Slots with hot entries.
    hot_blocks: Vec<u32>,
    /// Vacant slots.
    vacant: Vec<u32>,
    /// The pool's `synced` at the latest reclaim scan.
    seen_synced: u64,
    /// Entries freed and not yet reported to the pool.
    unreported: u64,
    /// Blocks with every entry free.
    empty_blocks: u32,
    live: u64,
    hot: u64,
    held: u64,
}

impl fmt::Debug for EntrySlab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySlab")
            .field("kind", &self.pool.kind())
            .field("stats", &self.stats())
            .finish()
    }
}

impl EntrySlab {
    /// An empty slab over `pool`.
    pub fn new(pool: Arc<IcmPool>) -> EntrySlab {
        EntrySlab {
            log_entry_size: pool.config().log_entry_size,
            pool,
            blocks: Vec::new(),
            with_free: Vec::new(),
            hot_blocks: Vec::new(),
            vacant: Vec::new(),
            seen_synced: 0,
            unreported: 0,
            empty_blocks: 0,
            live: 0,
            hot: 0,
            held: 0,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<IcmPool> {
        &self.pool
    }

    /// The device region `entry` lies in: what [`crate::send::SendRing::write`] takes
    /// with the entry's address. `None` for an entry this slab did not hand out.
    pub fn region(&self, entry: &Entry) -> Option<IcmRegion> {
        let chunk = self.blocks.get(entry.slot as usize)?.chunk.as_ref()?;
        let inside = entry.addr.checked_sub(chunk.icm_addr())? < chunk.byte_size();
        inside.then(|| chunk.region())
    }

    /// Hands out one entry.
    ///
    /// From a free entry if there is one; else from hot entries a sync has covered since;
    /// else from a new block. When the pool is out of ICM and entries of this slab are
    /// hot, it syncs and reuses them. On error nothing was handed out.
    pub fn alloc(&mut self) -> Result<Entry, IcmError> {
        if let Some(e) = self.take() {
            return Ok(e);
        }
        if self.reclaim() {
            if let Some(e) = self.take() {
                return Ok(e);
            }
        }
        match self.add_block() {
            Ok(()) => {}
            Err(exhausted @ IcmError::Exhausted { .. }) if self.hot > 0 => {
                self.pool.sync()?;
                self.reclaim();
                return self.take().ok_or(exhausted);
            }
            Err(e) => return Err(e),
        }
        self.take()
            .ok_or(IcmError::Config("a new slab block had no free entry"))
    }

    /// The lowest free entry of the block on top of the free stack.
    fn take(&mut self) -> Option<Entry> {
        while let Some(&slot) = self.with_free.last() {
            let b = &mut self.blocks[slot as usize];
            if let (Some(chunk), true) = (&b.chunk, b.free != 0) {
                if b.free == FULL {
                    self.empty_blocks -= 1;
                }
                let bit = b.free.trailing_zeros();
                b.free &= !(1 << bit);
                let entry = Entry {
                    addr: chunk.icm_addr() + (u64::from(bit) << self.log_entry_size),
                    rkey: chunk.rkey(),
                    slot,
                };
                if b.free == 0 {
                    b.listed = false;
                    self.with_free.pop();
                }
                self.live += 1;
                return Some(entry);
            }
            b.listed = false;
            self.with_free.pop();
        }
        None
    }

    /// Takes a block from the pool and lists it.
    fn add_block(&mut self) -> Result<(), IcmError> {
        let chunk = self.pool.alloc_as(LOG_BLOCK, Use::Slab)?;
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                self.blocks.push(Block {
                    chunk: None,
                    free: 0,
                    hot: 0,
                    stamp: 0,
                    listed: false,
                    in_hot: false,
                });
                // Each slot is at most once in each list: with this capacity, pushes on
                // the alloc and free paths never reallocate.
                let n = self.blocks.len();
                self.with_free.reserve(n - self.with_free.len());
                self.hot_blocks.reserve(n - self.hot_blocks.len());
                self.vacant.reserve(n - self.vacant.len());
                (n - 1) as u32
            }
        };
        let b = &mut self.blocks[slot as usize];
        b.chunk = Some(chunk);
        b.free = FULL;
        b.hot = 0;
        if !b.listed {
            b.listed = true;
            self.with_free.push(slot);
        }
        self.empty_blocks += 1;
        self.held += 1;
        Ok(())
    }

    /// Frees `entry`: it is handed out again only after a sync that starts from now on
    /// (see the module documentation of [`super`]: free only what the device can no
    /// longer reach through completed writes). Fails only for an entry this slab did not
    /// hand out.
    pub fn free(&mut self, entry: Entry) -> Result<(), IcmError> {
        let Some(bit) = self.live_bit(&entry) else {
            return Err(IcmError::Foreign {
                kind: self.pool.kind(),
                what: "entry",
                owner: "slab",
                addr: entry.addr,
            });
        };
        let b = &mut self.blocks[entry.slot as usize];
        b.hot |= bit;
        b.stamp = self.pool.stamp();
        if !b.in_hot {
            b.in_hot = true;
            self.hot_blocks.push(entry.slot);
        }
        self.live -= 1;
        self.hot += 1;
        self.unreported += 1;
        if self.unreported >= REPORT_ENTRIES {
            let bytes = self.unreported << self.log_entry_size;
            self.unreported = 0;
            self.pool.note_freed(bytes);
        }
        Ok(())
    }

    /// The mask bit of `entry` in its block, if this slab handed it out and it is live.
    fn live_bit(&self, entry: &Entry) -> Option<u64> {
        let b = self.blocks.get(entry.slot as usize)?;
        let chunk = b.chunk.as_ref()?;
        let off = entry.addr.checked_sub(chunk.icm_addr())?;
        let index = off >> self.log_entry_size;
        let bit = 1u64 << (index % SLAB_BLOCK_ENTRIES);
        let ok = index < SLAB_BLOCK_ENTRIES
            && off & ((1 << self.log_entry_size) - 1) == 0
            && entry.rkey == chunk.rkey()
            && (b.free | b.hot) & bit == 0;
        ok.then_some(bit)
    }

    /// Turns hot entries free in the blocks a sync has covered since they were freed.
    /// Wholly free blocks beyond [`SPARE_BLOCKS`] go back to the pool. Scans only when
    /// the pool completed a sync since the last scan. Returns whether an entry became
    /// free.
    fn reclaim(&mut self) -> bool {
        let synced = self.pool.synced();
        if synced == self.seen_synced {
            return false;
        }
        self.seen_synced = synced;
        let mut any = false;
        let mut i = 0;
        while i < self.hot_blocks.len() {
            let slot = self.hot_blocks[i];
            let b = &mut self.blocks[slot as usize];
            if b.stamp >= synced {
                i += 1;
                continue;
            }
            self.hot_blocks.swap_remove(i);
            b.in_hot = false;
            self.hot -= u64::from(b.hot.count_ones());
            b.free |= b.hot;
            b.hot = 0;
            any = true;
            if b.free == FULL {
                if self.empty_blocks >= SPARE_BLOCKS {
                    // Every entry is free and synced: straight back to the buddy.
                    if let Some(chunk) = b.chunk.take() {
                        b.free = 0;
                        self.held -= 1;
                        self.vacant.push(slot);
                        // The pool handed this chunk out; it cannot refuse it.
                        let _ = self.pool.free_as(chunk, Use::Slab, true);
                    }
                    continue;
                }
                self.empty_blocks += 1;
            }
            if !b.listed {
                b.listed = true;
                self.with_free.push(slot);
            }
        }
        any
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SlabStats {
        let entries = self.held * SLAB_BLOCK_ENTRIES;
        SlabStats {
            blocks: self.held,
            block_bytes: entries << self.log_entry_size,
            live_entries: self.live,
            hot_entries: self.hot,
            free_entries: entries - self.live - self.hot,
            host_bytes: std::mem::size_of::<EntrySlab>()
                + self.blocks.capacity() * std::mem::size_of::<Block>()
                + (self.with_free.capacity() + self.hot_blocks.capacity() + self.vacant.capacity())
                    * 4,
        }
    }
}

impl Drop for EntrySlab {
    fn drop(&mut self) {
        for b in &mut self.blocks {
            if let Some(chunk) = b.chunk.take() {
                // Blocks with live or hot entries wait for a sync like any freed chunk.
                let synced = b.free == FULL;
                let _ = self.pool.free_as(chunk, Use::Slab, synced);
            }
        }
    }
}
