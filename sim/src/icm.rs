//! SW-ICM: the device memory software steering writes STEs and action data into.
//!
//! A device has one ICM address range per kind ([`IcmKind`]), described by its
//! capabilities (start address and log size). Drivers allocate regions inside a range
//! (on hardware `mlx5dv_alloc_dm` with a SW-ICM type, then a registration that yields an
//! rkey) and reach them only through the steering queue, by ICM address. Every access
//! is checked: the whole span must lie in one live allocation.
//!
//! Backing store: each range is split into fixed-size chunks (64 KiB), each an anonymous
//! `memmap2` map created on first write and guarded by its own lock. Unwritten memory
//! reads as zeros and costs nothing, so a device-sized range (1 GiB or more) is cheap, and
//! writers to different chunks do not contend. A write that stays inside one chunk (as
//! every line-aligned STE write does) holds that chunk's lock throughout, so it is atomic
//! for packets walking the same memory, as the device's 64-byte ICM writes are.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use memmap2::{MmapMut, MmapOptions};

/// One ICM line: the size of an STE.
pub const LINE: usize = 64;

/// The largest backing chunk. Smaller ranges use one chunk of their own size.
///
/// Small, because a chunk's lock is what concurrent queues share: every WQE takes it, so
/// two threads filling tables that sit in the same chunk would pass its cache line back
/// and forth on each write (with 16 MiB chunks, a million rules' tables fill only a few).
/// A 1 GiB range is then 16 384 chunk slots of one cache line each, and a filled 100 MiB
/// of tables about 1 600 maps. (Measured on a noisy VM, the two-matcher speed-up did not
/// move beyond the noise; BENCHMARKS.md, fourth round.)
const MAX_CHUNK: u64 = 64 << 10;

/// What an ICM range holds; each kind has its own address range and capability pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IcmKind {
    /// Steering table entries (`MLX5DV_DM_TYPE_STEERING_SW_ICM`).
    Steering,
    /// Modify-header action lists (`MLX5DV_DM_TYPE_HEADER_MODIFY_SW_ICM`).
    ModifyAction,
    /// Modify-header patterns (`MLX5DV_DM_TYPE_HEADER_MODIFY_PATTERN_SW_ICM`).
    ModifyPattern,
    /// Encapsulation data (`MLX5DV_DM_TYPE_ENCAP_SW_ICM`).
    Encap,
}

/// The address range of one ICM kind.
///
/// Invariant (checked by [`Icm::new`]): `base` is aligned to `1 << log_size`, ranges do
/// not overlap, `log_granularity <= log_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmLayout {
    /// The kind.
    pub kind: IcmKind,
    /// First ICM address of the range.
    pub base: u64,
    /// The range is `1 << log_size` bytes.
    pub log_size: u8,
    /// Allocations are multiples of `1 << log_granularity` bytes, aligned to it at least.
    pub log_granularity: u8,
}

/// A live ICM allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmAlloc {
    /// Its kind.
    pub kind: IcmKind,
    /// First ICM address.
    pub addr: u64,
    /// Length in bytes (the request rounded up to the range's granularity).
    pub size: u64,
    /// The remote key RDMA WRITE/READ WQEs must quote to reach it.
    pub rkey: u32,
}

/// Bytes and allocations in use, over all kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmUsage {
    /// Allocated bytes.
    pub bytes: u64,
    /// Live allocations.
    pub allocations: usize,
}

/// Why an ICM operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcmError {
    /// The device has no range of this kind.
    #[error("the device has no {0:?} ICM")]
    NoSuchKind(IcmKind),
    /// The request is zero, larger than the range, or its alignment exceeds the range.
    #[error("invalid {kind:?} ICM request: {size} bytes aligned to 2^{log_align}")]
    BadRequest {
        /// The kind.
        kind: IcmKind,
        /// Requested bytes.
        size: u64,
        /// Requested log alignment.
        log_align: u8,
    },
    /// No free span is large enough.
    #[error("{kind:?} ICM exhausted: no free span of {size} bytes aligned to 2^{log_align}")]
    Exhausted {
        /// The kind.
        kind: IcmKind,
        /// Requested bytes.
        size: u64,
        /// Requested log alignment.
        log_align: u8,
    },
    /// `free` of an address that is not the start of a live allocation.
    #[error("ICM address {0:#x} is not a live allocation")]
    BadFree(u64),
    /// An access that is not inside one live allocation.
    #[error("ICM access of {len} bytes at {addr:#x} is outside every live allocation")]
    OutOfBounds {
        /// First address accessed.
        addr: u64,
        /// Bytes accessed.
        len: u64,
    },
    /// A test armed this allocation to fail ([`crate::device::Device::fail_icm_alloc`]).
    #[error("injected fault: {kind:?} ICM allocation of {size} bytes fails")]
    Injected {
        /// The kind.
        kind: IcmKind,
        /// Requested bytes.
        size: u64,
    },
    /// An access whose rkey is not the allocation's.
    #[error("rkey {rkey:#x} does not cover ICM address {addr:#x}")]
    BadRkey {
        /// The rkey given.
        rkey: u32,
        /// First address accessed.
        addr: u64,
    },
}

/// One backing chunk: its map (none until first written) behind its own lock.
///
/// Aligned to a cache line so that threads writing neighbouring chunks do not share
/// the lock's cache line.
#[derive(Default)]
#[repr(align(64))]
struct Chunk {
    map: RwLock<Option<MmapMut>>,
}

/// One ICM range: its free spans and its backing chunks.
struct Range {
    layout: IcmLayout,
    /// Free spans, start → length. Adjacent spans are always merged.
    free: Mutex<BTreeMap<u64, u64>>,
    chunk_size: u64,
    /// log2 of `chunk_size` (both the range size and `MAX_CHUNK` are powers of two), so
    /// that locating a chunk is a shift and a mask.
    chunk_shift: u32,
    chunks: Vec<Chunk>,
}

impl Range {
    fn new(layout: IcmLayout) -> Range {
        let size = 1u64 << layout.log_size;
        let chunk_size = size.min(MAX_CHUNK);
        let chunks = (0..size / chunk_size).map(|_| Chunk::default()).collect();
        Range {
            layout,
            free: Mutex::new(BTreeMap::from([(layout.base, size)])),
            chunk_size,
            chunk_shift: chunk_size.trailing_zeros(),
            chunks,
        }
    }

    fn contains(&self, addr: u64) -> bool {
        addr >= self.layout.base && addr - self.layout.base < (1u64 << self.layout.log_size)
    }

    /// First fit: the lowest free address that satisfies the alignment.
    fn take(&self, size: u64, align: u64) -> Option<u64> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let (start, len, addr) = free.iter().find_map(|(&start, &len)| {
            let addr = start.checked_add(align - 1)? & !(align - 1);
            (addr - start + size <= len).then_some((start, len, addr))
        })?;
        free.remove(&start);
        if addr > start {
            free.insert(start, addr - start);
        }
        let end = addr + size;
        if end < start + len {
            free.insert(end, start + len - end);
        }
        Some(addr)
    }

    fn give_back(&self, addr: u64, size: u64) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let mut start = addr;
        let mut len = size;
        if let Some((&prev, &prev_len)) = free.range(..addr).next_back() {
            if prev + prev_len == addr {
                free.remove(&prev);
                start = prev;
                len += prev_len;
            }
        }
        if let Some(next_len) = free.remove(&(addr + size)) {
            len += next_len;
        }
        free.insert(start, len);
    }

    /// Splits `[addr, addr + len)` into (chunk index, offset in chunk, byte range of the
    /// caller's buffer) pieces.
    fn pieces(
        &self,
        addr: u64,
        len: usize,
    ) -> impl Iterator<Item = (usize, usize, std::ops::Range<usize>)> + '_ {
        let mut done = 0usize;
        std::iter::from_fn(move || {
            if done == len {
                return None;
            }
            let rel = addr - self.layout.base + done as u64;
            let chunk = (rel / self.chunk_size) as usize;
            let off = (rel % self.chunk_size) as usize;
            let n = (len - done).min(self.chunk_size as usize - off);
            let piece = (chunk, off, done..done + n);
            done += n;
            Some(piece)
        })
    }

    /// The chunk and offset of `addr` if `[addr, addr + len)` lies in one chunk (the
    /// common case: allocations are far smaller than chunks).
    #[inline]
    fn in_one_chunk(&self, addr: u64, len: usize) -> Option<(usize, usize)> {
        let rel = addr - self.layout.base;
        let off = (rel & (self.chunk_size - 1)) as usize;
        (off + len <= self.chunk_size as usize).then_some(((rel >> self.chunk_shift) as usize, off))
    }

    #[inline(always)]
    fn write(&self, addr: u64, data: &[u8]) {
        let Some((chunk, off)) = self.in_one_chunk(addr, data.len()) else {
            return self.write_pieces(addr, data);
        };
        let mut guard = self.chunks[chunk]
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let map = match guard.as_mut() {
            Some(map) => map,
            None => guard.insert(anon_map(self.chunk_size)),
        };
        copy_bytes(&mut map[off..off + data.len()], data);
    }

    /// [`Range::write`] of a span that crosses chunks.
    #[cold]
    fn write_pieces(&self, addr: u64, data: &[u8]) {
        for (chunk, off, span) in self.pieces(addr, data.len()) {
            let mut guard = self.chunks[chunk]
                .map
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let map = guard.get_or_insert_with(|| anon_map(self.chunk_size));
            map[off..off + span.len()].copy_from_slice(&data[span]);
        }
    }

    #[inline(always)]
    fn read(&self, addr: u64, out: &mut [u8]) {
        let len = out.len();
        let Some((chunk, off)) = self.in_one_chunk(addr, len) else {
            return self.read_pieces(addr, out);
        };
        let guard = self.chunks[chunk]
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(map) => copy_bytes(out, &map[off..off + len]),
            None => out.fill(0),
        }
    }

    /// [`Range::read`] of a span that crosses chunks.
    #[cold]
    fn read_pieces(&self, addr: u64, out: &mut [u8]) {
        for (chunk, off, span) in self.pieces(addr, out.len()) {
            let guard = self.chunks[chunk]
                .map
                .read()
                .unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(map) => out[span.clone()].copy_from_slice(&map[off..off + span.len()]),
                None => out[span].fill(0),
            }
        }
    }
}

/// Copies `src` into `dst`, of the same length. Most accesses are one line (an STE): as a
/// fixed-size copy that is a few moves instead of a call into the C library.
#[inline(always)]
pub(crate) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    if let (Ok(dst), Ok(src)) = (
        <&mut [u8; LINE]>::try_from(&mut *dst),
        <&[u8; LINE]>::try_from(src),
    ) {
        *dst = *src;
        return;
    }
    dst.copy_from_slice(src);
}

#[cold]
fn anon_map(len: u64) -> MmapMut {
    // An anonymous private map only fails when the address space is exhausted; the
    // simulator cannot go on without its memory, so that is fatal like an OOM.
    MmapOptions::new()
        .len(len as usize)
        .map_anon()
        .expect("anonymous map for simulated ICM")
}

/// `[offset, offset + len)` of a zero-based registration of `alloc`, as an ICM address.
#[inline]
fn zero_based(alloc: &IcmAlloc, offset: u64, len: u64) -> Result<u64, IcmError> {
    match offset.checked_add(len) {
        Some(end) if end <= alloc.size => Ok(alloc.addr + offset),
        _ => Err(IcmError::OutOfBounds {
            addr: alloc.addr.saturating_add(offset),
            len,
        }),
    }
}

/// A hasher for small integer keys (rkeys, lkeys, QP numbers): one rotate, xor and
/// multiply per word, as rustc's FxHash. The keys are handed out by the device, not
/// chosen by an adversary, so SipHash's flood resistance buys nothing here, and its
/// cost (~20 ns a lookup) is most of a lookup.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // The odd multiplier FxHash uses; the top bits (which hashbrown's control
        // bytes take) depend on every bit of the key.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by device-issued integers, hashed with [`KeyHasher`].
pub(crate) type KeyMap<V> = HashMap<u32, V, BuildHasherDefault<KeyHasher>>;

/// An ICM span resolved from an rkey and offset ([`Icm::resolve_cached`]): where it is,
/// which range holds it, and the ICM generation the resolution is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmPlace {
    /// First ICM address.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
    range: usize,
    generation: u64,
}

impl IcmPlace {
    /// The part `[skip, skip + len)` of this place, if it lies inside it.
    pub fn sub(self, skip: u64, len: u64) -> Option<IcmPlace> {
        let end = skip.checked_add(len)?;
        (end <= self.len).then_some(IcmPlace {
            addr: self.addr + skip,
            len,
            ..self
        })
    }
}

/// How many rkeys an [`RkeyCache`] remembers: a power of two, since an rkey's slot is its
/// low bits. The device hands rkeys out in sequence, so the few regions a steering queue
/// writes into at a time mostly sit in different slots; a collision costs only the locked
/// map lookup the memo replaces.
const RKEY_CACHE_SLOTS: usize = 16;

/// A memo of rkey resolutions, kept by a steering queue across doorbells: direct mapped,
/// so a lookup is one probe.
///
/// Invariant: every entry was looked up while the ICM's generation was `generation`;
/// the whole memo is dropped as soon as the ICM's generation moves on (any free), so an
/// entry never outlives its allocation. Allocations made later are simply misses.
#[derive(Debug, Clone, Default)]
pub struct RkeyCache {
    generation: u64,
    /// `(rkey, its allocation, its range index)` in slot `rkey mod RKEY_CACHE_SLOTS`.
    entries: [Option<(u32, IcmAlloc, usize)>; RKEY_CACHE_SLOTS],
}

impl RkeyCache {
    /// An empty memo.
    pub fn new() -> RkeyCache {
        RkeyCache::default()
    }

    /// Out of line: the generation moves only when ICM is freed.
    #[cold]
    fn clear(&mut self, generation: u64) {
        *self = RkeyCache {
            generation,
            ..RkeyCache::default()
        };
    }

    #[inline(always)]
    fn slot(rkey: u32) -> usize {
        rkey as usize & (RKEY_CACHE_SLOTS - 1)
    }

    #[inline(always)]
    fn get(&self, rkey: u32) -> Option<(IcmAlloc, usize)> {
        match self.entries[Self::slot(rkey)] {
            Some((key, alloc, range)) if key == rkey => Some((alloc, range)),
            _ => None,
        }
    }

    fn put(&mut self, rkey: u32, (alloc, range): (IcmAlloc, usize)) {
        self.entries[Self::slot(rkey)] = Some((rkey, alloc, range));
    }
}

/// The device's SW-ICM: ranges per kind, allocations, and their contents.
///
/// All methods take `&self`; the type is `Send + Sync`, and accesses to different
/// backing chunks proceed in parallel.
pub struct Icm {
    ranges: Vec<Range>,
    /// Live allocations by start address.
    allocs: RwLock<BTreeMap<u64, IcmAlloc>>,
    /// The live allocation of each rkey, and the index of its range in `ranges`.
    by_rkey: RwLock<KeyMap<(IcmAlloc, usize)>>,
    next_rkey: Mutex<u32>,
    /// Bumped after every free, once the allocation is gone from both maps: a
    /// resolution made at an earlier generation may name memory that is no longer
    /// allocated, one made at the current generation cannot ([`RkeyCache`]).
    generation: AtomicU64,
}

impl std::fmt::Debug for Icm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Icm")
            .field(
                "layouts",
                &self.ranges.iter().map(|r| r.layout).collect::<Vec<_>>(),
            )
            .field("usage", &self.usage())
            .finish()
    }
}

impl Icm {
    /// An ICM with the given ranges, all free.
    ///
    /// # Panics
    /// If a layout breaks the [`IcmLayout`] invariants: that is a bug in the device
    /// profile, not a runtime condition.
    pub fn new(layouts: &[IcmLayout]) -> Icm {
        for (i, l) in layouts.iter().enumerate() {
            assert!(l.log_size < 48, "{l:?}: range too large");
            assert!(
                l.log_granularity <= l.log_size,
                "{l:?}: granularity above size"
            );
            assert_eq!(
                l.base & ((1u64 << l.log_size) - 1),
                0,
                "{l:?}: base not aligned"
            );
            for m in &layouts[..i] {
                let (a, b) = (l.base, l.base + (1u64 << l.log_size));
                let (c, d) = (m.base, m.base + (1u64 << m.log_size));
                assert!(b <= c || d <= a, "{l:?} overlaps {m:?}");
                assert_ne!(l.kind, m.kind, "two ranges of kind {:?}", l.kind);
            }
        }
        Icm {
            ranges: layouts.iter().map(|&l| Range::new(l)).collect(),
            allocs: RwLock::new(BTreeMap::new()),
            by_rkey: RwLock::new(KeyMap::default()),
            next_rkey: Mutex::new(0x100),
            generation: AtomicU64::new(0),
        }
    }

    /// The ranges this ICM was made with.
    pub fn layouts(&self) -> impl Iterator<Item = IcmLayout> + '_ {
        self.ranges.iter().map(|r| r.layout)
    }

    fn range_of_kind(&self, kind: IcmKind) -> Result<&Range, IcmError> {
        self.range_index(kind).map(|i| &self.ranges[i])
    }

    fn range_index(&self, kind: IcmKind) -> Result<usize, IcmError> {
        self.ranges
            .iter()
            .position(|r| r.layout.kind == kind)
            .ok_or(IcmError::NoSuchKind(kind))
    }

    /// Allocates `size` bytes of `kind`, aligned to `1 << log_align` (and at least to the
    /// range's granularity). The size is rounded up to the granularity.
    pub fn alloc(&self, kind: IcmKind, size: u64, log_align: u8) -> Result<IcmAlloc, IcmError> {
        let index = self.range_index(kind)?;
        let range = &self.ranges[index];
        let l = range.layout;
        let bad = IcmError::BadRequest {
            kind,
            size,
            log_align,
        };
        if size == 0 || log_align > l.log_size || size > 1u64 << l.log_size {
            return Err(bad);
        }
        let gran = 1u64 << l.log_granularity;
        let size = size.div_ceil(gran) * gran;
        let align = (1u64 << log_align).max(gran);
        let addr = range.take(size, align).ok_or(IcmError::Exhausted {
            kind,
            size,
            log_align,
        })?;
        let rkey = {
            let mut next = self.next_rkey.lock().unwrap_or_else(|e| e.into_inner());
            *next = next.wrapping_add(1).max(0x100);
            *next
        };
        let alloc = IcmAlloc {
            kind,
            addr,
            size,
            rkey,
        };
        self.allocs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr, alloc);
        self.by_rkey
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rkey, (alloc, index));
        Ok(alloc)
    }

    /// Frees the allocation that starts at `addr`. Its bytes become unreachable; a later
    /// allocation of the same span reads whatever was left there, as on hardware.
    pub fn free(&self, addr: u64) -> Result<IcmAlloc, IcmError> {
        let alloc = self
            .allocs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr)
            .ok_or(IcmError::BadFree(addr))?;
        self.by_rkey
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&alloc.rkey);
        // After both removals: whoever sees the new generation and then looks the rkey
        // up does not find it.
        self.generation.fetch_add(1, Ordering::Release);
        let range = self.range_of_kind(alloc.kind)?;
        range.give_back(alloc.addr, alloc.size);
        Ok(alloc)
    }

    /// The live allocation that holds all of `[addr, addr + len)`.
    pub fn allocation(&self, addr: u64, len: u64) -> Result<IcmAlloc, IcmError> {
        let oob = IcmError::OutOfBounds { addr, len };
        let allocs = self.allocs.read().unwrap_or_else(|e| e.into_inner());
        let (_, a) = allocs.range(..=addr).next_back().ok_or(oob.clone())?;
        let end = addr.checked_add(len).ok_or(oob.clone())?;
        if end > a.addr + a.size {
            return Err(oob);
        }
        Ok(*a)
    }

    /// Resolves an RDMA remote address the way the steering queue sees it: ICM is
    /// registered zero-based (`IBV_ACCESS_ZERO_BASED`, as rdma-core registers it), so a
    /// WQE names a byte `offset` into the allocation whose key is `rkey`. Returns the ICM
    /// address of `[offset, offset + len)`, which must lie inside that allocation.
    pub fn resolve(&self, rkey: u32, offset: u64, len: u64) -> Result<u64, IcmError> {
        let (alloc, _) = self.alloc_of_rkey(rkey, offset)?;
        zero_based(&alloc, offset, len)
    }

    /// The live allocation of `rkey` and its range index; `offset` only goes into the
    /// error.
    fn alloc_of_rkey(&self, rkey: u32, offset: u64) -> Result<(IcmAlloc, usize), IcmError> {
        self.by_rkey
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rkey)
            .copied()
            .ok_or(IcmError::BadRkey { rkey, addr: offset })
    }

    /// [`Icm::resolve`] through `cache`: the same checks and errors, but an rkey seen
    /// before (and not freed since) costs a short scan instead of a locked map lookup.
    /// The result can be handed to [`Icm::write_at`] and [`Icm::read_at`].
    #[inline(always)]
    pub fn resolve_cached(
        &self,
        cache: &mut RkeyCache,
        rkey: u32,
        offset: u64,
        len: u64,
    ) -> Result<IcmPlace, IcmError> {
        let generation = self.generation.load(Ordering::Acquire);
        if cache.generation != generation {
            cache.clear(generation);
        }
        let (alloc, range) = match cache.get(rkey) {
            Some(hit) => hit,
            None => self.fill(cache, rkey, offset)?,
        };
        Ok(IcmPlace {
            addr: zero_based(&alloc, offset, len)?,
            len,
            range,
            generation,
        })
    }

    /// Looks `rkey` up under the map lock and memoises it in `cache`. Out of line: a
    /// queue misses only on the first WQE into an allocation.
    #[cold]
    fn fill(
        &self,
        cache: &mut RkeyCache,
        rkey: u32,
        offset: u64,
    ) -> Result<(IcmAlloc, usize), IcmError> {
        let found = self.alloc_of_rkey(rkey, offset)?;
        cache.put(rkey, found);
        Ok(found)
    }

    /// Writes `data` (of `place.len` bytes) to a resolved place. If an allocation was
    /// freed since the resolution, the span is checked again as [`Icm::write`] checks it.
    #[inline(always)]
    pub fn write_at(&self, place: IcmPlace, data: &[u8]) -> Result<(), IcmError> {
        if data.len() as u64 != place.len || !self.is_current(place) {
            return self.write_at_rechecked(place, data);
        }
        self.ranges[place.range].write(place.addr, data);
        Ok(())
    }

    /// [`Icm::write_at`] of a place whose length does not match or whose resolution is
    /// stale.
    #[cold]
    fn write_at_rechecked(&self, place: IcmPlace, data: &[u8]) -> Result<(), IcmError> {
        if data.len() as u64 != place.len {
            return Err(IcmError::OutOfBounds {
                addr: place.addr,
                len: data.len() as u64,
            });
        }
        self.write(place.addr, data)
    }

    /// Reads `out.len()` bytes (`place.len`) from a resolved place; checked again as
    /// [`Icm::read`] checks if an allocation was freed since the resolution.
    #[inline(always)]
    pub fn read_at(&self, place: IcmPlace, out: &mut [u8]) -> Result<(), IcmError> {
        if out.len() as u64 != place.len || !self.is_current(place) {
            return self.read_at_rechecked(place, out);
        }
        self.ranges[place.range].read(place.addr, out);
        Ok(())
    }

    /// [`Icm::read_at`] of a place whose length does not match or whose resolution is
    /// stale.
    #[cold]
    fn read_at_rechecked(&self, place: IcmPlace, out: &mut [u8]) -> Result<(), IcmError> {
        if out.len() as u64 != place.len {
            return Err(IcmError::OutOfBounds {
                addr: place.addr,
                len: out.len() as u64,
            });
        }
        self.read(place.addr, out)
    }

    /// The first byte of a resolved place, read only to bring its line into the CPU's
    /// cache (see the steering queue's warming pass). A stale resolution reads 0.
    #[inline(always)]
    pub fn touch_at(&self, place: IcmPlace) -> u8 {
        if !self.is_current(place) {
            return 0;
        }
        let mut byte = [0u8; 1];
        self.ranges[place.range].read(place.addr, &mut byte);
        byte[0]
    }

    /// True when nothing was freed since `place` was resolved.
    #[inline(always)]
    fn is_current(&self, place: IcmPlace) -> bool {
        self.generation.load(Ordering::Acquire) == place.generation
    }

    /// Checks that `rkey` is the key of the allocation holding `[addr, addr + len)`.
    pub fn check_rkey(&self, rkey: u32, addr: u64, len: u64) -> Result<IcmAlloc, IcmError> {
        let a = self.allocation(addr, len)?;
        if a.rkey != rkey {
            return Err(IcmError::BadRkey { rkey, addr });
        }
        Ok(a)
    }

    fn range_for(&self, addr: u64, len: u64) -> Result<&Range, IcmError> {
        let a = self.allocation(addr, len)?;
        self.ranges
            .iter()
            .find(|r| r.contains(a.addr))
            .ok_or(IcmError::OutOfBounds { addr, len })
    }

    /// Writes `data` at `addr`; the span must lie in one live allocation.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), IcmError> {
        self.range_for(addr, data.len() as u64)?.write(addr, data);
        Ok(())
    }

    /// Reads `out.len()` bytes at `addr`; the span must lie in one live allocation.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), IcmError> {
        self.range_for(addr, out.len() as u64)?.read(addr, out);
        Ok(())
    }

    /// Reads the 64-byte line at `addr` (which need not be line aligned).
    pub fn read_line(&self, addr: u64) -> Result<[u8; LINE], IcmError> {
        let mut line = [0u8; LINE];
        self.read(addr, &mut line)?;
        Ok(line)
    }

    /// Bytes and allocations in use.
    pub fn usage(&self) -> IcmUsage {
        let allocs = self.allocs.read().unwrap_or_else(|e| e.into_inner());
        IcmUsage {
            bytes: allocs.values().map(|a| a.size).sum(),
            allocations: allocs.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icm() -> Icm {
        Icm::new(&[
            IcmLayout {
                kind: IcmKind::Steering,
                base: 1 << 36,
                log_size: 30,
                log_granularity: 12,
            },
            IcmLayout {
                kind: IcmKind::ModifyAction,
                base: 1 << 37,
                log_size: 20,
                log_granularity: 6,
            },
        ])
    }

    #[test]
    fn alloc_rounds_aligns_and_frees() {
        let icm = icm();
        let a = icm.alloc(IcmKind::Steering, 100, 0).unwrap();
        assert_eq!((a.addr, a.size), (1 << 36, 4096));
        let b = icm.alloc(IcmKind::Steering, 4096, 16).unwrap();
        assert_eq!(b.addr % (1 << 16), 0);
        assert_ne!(a.rkey, b.rkey);
        assert_eq!(icm.usage().allocations, 2);
        icm.free(a.addr).unwrap();
        icm.free(b.addr).unwrap();
        assert_eq!(icm.usage(), IcmUsage::default());
        // Free spans merged back: the whole range is allocatable again.
        let all = icm.alloc(IcmKind::Steering, 1 << 30, 30).unwrap();
        assert_eq!(all.addr, 1 << 36);
        assert_eq!(
            icm.free(all.addr + 64),
            Err(IcmError::BadFree(all.addr + 64))
        );
    }

    #[test]
    fn exhaustion_and_bad_requests_are_errors() {
        let icm = icm();
        let _all = icm.alloc(IcmKind::ModifyAction, 1 << 20, 0).unwrap();
        assert!(matches!(
            icm.alloc(IcmKind::ModifyAction, 64, 0),
            Err(IcmError::Exhausted { .. })
        ));
        assert!(matches!(
            icm.alloc(IcmKind::Steering, 0, 0),
            Err(IcmError::BadRequest { .. })
        ));
        assert_eq!(
            icm.alloc(IcmKind::Encap, 64, 0),
            Err(IcmError::NoSuchKind(IcmKind::Encap))
        );
    }

    #[test]
    fn accesses_are_bounded_by_live_allocations() {
        let icm = icm();
        let a = icm.alloc(IcmKind::Steering, 4096, 0).unwrap();
        icm.write(a.addr + 4032, &[0xab; 64]).unwrap();
        assert_eq!(icm.read_line(a.addr + 4032).unwrap(), [0xab; 64]);
        assert_eq!(icm.read_line(a.addr).unwrap(), [0; 64]);
        assert!(matches!(
            icm.write(a.addr + 4033, &[0; 64]),
            Err(IcmError::OutOfBounds { .. })
        ));
        assert!(icm.read_line((1 << 36) + (1 << 20)).is_err());
        assert!(icm.check_rkey(a.rkey, a.addr, 64).is_ok());
        assert!(matches!(
            icm.check_rkey(a.rkey + 1, a.addr, 64),
            Err(IcmError::BadRkey { .. })
        ));
        // Zero-based remote addresses: offsets into the allocation of the rkey.
        assert_eq!(icm.resolve(a.rkey, 4032, 64), Ok(a.addr + 4032));
        assert!(matches!(
            icm.resolve(a.rkey, 4033, 64),
            Err(IcmError::OutOfBounds { .. })
        ));
        assert!(matches!(
            icm.resolve(a.rkey + 1, 0, 64),
            Err(IcmError::BadRkey { .. })
        ));
        icm.free(a.addr).unwrap();
        assert!(icm.read_line(a.addr).is_err());
        assert!(icm.resolve(a.rkey, 0, 64).is_err());
    }

    #[test]
    fn cached_resolutions_end_with_their_allocation() {
        let icm = icm();
        let a = icm.alloc(IcmKind::Steering, 4096, 0).unwrap();
        let b = icm.alloc(IcmKind::ModifyAction, 128, 0).unwrap();
        let mut cache = RkeyCache::new();
        for _ in 0..2 {
            let at = icm.resolve_cached(&mut cache, a.rkey, 64, 64).unwrap();
            assert_eq!((at.addr, at.len), (a.addr + 64, 64));
            icm.write_at(at, &[7; 64]).unwrap();
        }
        let at_b = icm.resolve_cached(&mut cache, b.rkey, 64, 64).unwrap();
        icm.write_at(at_b, &[9; 64]).unwrap();
        assert_eq!(icm.read_line(b.addr + 64).unwrap(), [9; 64]);
        let mut back = [0u8; 64];
        icm.read_at(at_b, &mut back).unwrap();
        assert_eq!(back, [9; 64]);
        // The same checks as the uncached path.
        assert_eq!(
            icm.resolve_cached(&mut cache, a.rkey, 4033, 64),
            Err(IcmError::OutOfBounds {
                addr: a.addr + 4033,
                len: 64
            })
        );
        assert!(matches!(
            icm.resolve_cached(&mut cache, a.rkey + 100, 0, 64),
            Err(IcmError::BadRkey { .. })
        ));
        assert!(icm.write_at(at_b, &[0; 32]).is_err(), "length must match");
        let part = at_b.sub(32, 32).unwrap();
        assert_eq!(part.addr, b.addr + 96);
        assert_eq!(at_b.sub(33, 32), None);

        // A place resolved before a free is checked again; the freed rkey no longer
        // resolves, though its memo was filled before.
        let stale = icm.resolve_cached(&mut cache, a.rkey, 0, 64).unwrap();
        icm.free(a.addr).unwrap();
        assert!(matches!(
            icm.write_at(stale, &[1; 64]),
            Err(IcmError::OutOfBounds { .. })
        ));
        assert!(matches!(
            icm.resolve_cached(&mut cache, a.rkey, 0, 64),
            Err(IcmError::BadRkey { .. })
        ));
        // Resolutions of live allocations survive as plain lookups.
        assert_eq!(
            icm.resolve_cached(&mut cache, b.rkey, 0, 64).unwrap().addr,
            b.addr
        );
    }

    #[test]
    fn cached_rkeys_sharing_a_slot_resolve_to_their_own_allocations() {
        let icm = icm();
        let allocs: Vec<IcmAlloc> = (0..=RKEY_CACHE_SLOTS)
            .map(|_| icm.alloc(IcmKind::ModifyAction, 64, 0).unwrap())
            .collect();
        let (a, b) = (allocs[0], allocs[RKEY_CACHE_SLOTS]);
        assert_eq!(RkeyCache::slot(a.rkey), RkeyCache::slot(b.rkey));
        let mut cache = RkeyCache::new();
        for _ in 0..2 {
            for x in [a, b] {
                let at = icm.resolve_cached(&mut cache, x.rkey, 0, 64).unwrap();
                assert_eq!(at.addr, x.addr);
                icm.write_at(at, &[x.rkey as u8; 64]).unwrap();
            }
        }
        assert_eq!(icm.read_line(a.addr).unwrap(), [a.rkey as u8; 64]);
        assert_eq!(icm.read_line(b.addr).unwrap(), [b.rkey as u8; 64]);
        // An rkey in an occupied slot that is not the occupant's is still looked up.
        assert!(matches!(
            icm.resolve_cached(&mut cache, b.rkey + RKEY_CACHE_SLOTS as u32, 0, 64),
            Err(IcmError::BadRkey { .. })
        ));
    }

    #[test]
    fn writes_across_chunk_boundaries() {
        let icm = icm();
        let a = icm.alloc(IcmKind::Steering, 64 << 20, 0).unwrap();
        let at = a.addr + MAX_CHUNK - 32;
        let data: Vec<u8> = (0..64).collect();
        icm.write(at, &data).unwrap();
        let mut back = [0u8; 64];
        icm.read(at, &mut back).unwrap();
        assert_eq!(&back[..], &data[..]);
    }
}
