//! Host memory the driver shares with the device: queue rings and staging buffers, registered for DMA under an lkey.
//!
//! [`HostMemory`] is the simulated analogue of pinned, DMA-able memory: a fixed-size byte
//! buffer that the driver and the device both hold a handle to. [`MemoryRegistry`] is the
//! device's memory-registration table: registering a buffer gives it an lkey and an IO
//! virtual address (IOVA) range, and the data segments of WQEs name local memory as
//! `(lkey, iova + offset, length)`, which the device resolves and bound-checks here.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Why a host-memory access failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostMemError {
    /// The span is not inside the buffer.
    #[error(
        "host memory access of {len} bytes at offset {offset} is outside the {size}-byte buffer"
    )]
    OutOfRange {
        /// First byte accessed.
        offset: usize,
        /// Bytes accessed.
        len: usize,
        /// The buffer's size.
        size: usize,
    },
}

/// A host byte buffer shared between driver and device.
///
/// Cloning gives another handle to the same bytes. The size is fixed at creation, so a
/// bounds check made once (say, that a ring fits) holds for the buffer's whole life.
/// Accesses are serialised by a reader-writer lock; bulk users take one guard
/// ([`HostMemory::lock_read`], [`HostMemory::lock_write`]) for many accesses instead of
/// one lock per access.
#[derive(Clone)]
pub struct HostMemory {
    bytes: Arc<Bytes>,
    len: usize,
}

impl std::fmt::Debug for HostMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostMemory")
            .field("len", &self.len)
            .field("at", &Arc::as_ptr(&self.bytes))
            .finish()
    }
}

/// A buffer's bytes behind their lock, on a cache line of their own: each steering queue
/// takes its ring buffers' locks on every WQE, and two queues' buffers allocated side by
/// side could otherwise share a line and pass it between the CPUs driving them.
#[repr(align(64))]
struct Bytes(RwLock<Box<[u8]>>);

/// Shared access to a whole [`HostMemory`] buffer.
pub struct HostReadGuard<'a>(RwLockReadGuard<'a, Box<[u8]>>);

impl Deref for HostReadGuard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Exclusive access to a whole [`HostMemory`] buffer.
pub struct HostWriteGuard<'a>(RwLockWriteGuard<'a, Box<[u8]>>);

impl Deref for HostWriteGuard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for HostWriteGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl HostMemory {
    /// A zero-filled buffer of `len` bytes.
    pub fn new(len: usize) -> HostMemory {
        HostMemory::from_vec(vec![0; len])
    }

    /// A buffer holding `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> HostMemory {
        let len = bytes.len();
        HostMemory {
            bytes: Arc::new(Bytes(RwLock::new(bytes.into_boxed_slice()))),
            len,
        }
    }

    /// The buffer's size in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-byte buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when both handles refer to the same bytes.
    pub fn same_buffer(&self, other: &HostMemory) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes)
    }

    /// Checks that `[offset, offset + len)` lies in the buffer.
    #[inline]
    pub fn check(&self, offset: usize, len: usize) -> Result<(), HostMemError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(HostMemError::OutOfRange {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    #[inline]
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), HostMemError> {
        self.check(offset, out.len())?;
        out.copy_from_slice(&self.lock_read()[offset..offset + out.len()]);
        Ok(())
    }

    /// `len` bytes at `offset`, copied out.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, HostMemError> {
        let mut out = vec![0; len];
        self.read(offset, &mut out)?;
        Ok(out)
    }

    /// Copies `data` to `offset`.
    #[inline]
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), HostMemError> {
        self.check(offset, data.len())?;
        self.lock_write()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Shared access to the whole buffer until the guard drops.
    #[inline]
    pub fn lock_read(&self) -> HostReadGuard<'_> {
        // A panic while a guard was held leaves bytes, not broken invariants: go on.
        HostReadGuard(self.bytes.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Exclusive access to the whole buffer until the guard drops.
    #[inline]
    pub fn lock_write(&self) -> HostWriteGuard<'_> {
        HostWriteGuard(self.bytes.0.write().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A memory registration: what the driver puts in data segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mr {
    /// The local key.
    pub lkey: u32,
    /// The IO virtual address of the buffer's first byte; byte `i` is at `iova + i`.
    pub iova: u64,
    /// Bytes registered (the whole buffer).
    pub len: u64,
}

/// A resolved data-segment span: which buffer, and where in it.
#[derive(Debug, Clone)]
pub struct MrSpan {
    /// The registered buffer.
    pub mem: HostMemory,
    /// Offset of the span's first byte in `mem`.
    pub offset: usize,
    /// The span's length.
    pub len: usize,
}

/// Why a registration or a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrError {
    /// Zero-byte buffers cannot be registered.
    #[error("cannot register an empty buffer")]
    Empty,
    /// No lkeys or IOVA space are left (lkeys and IOVAs are never reused).
    #[error("memory registrations exhausted")]
    Exhausted,
    /// The lkey names no live registration.
    #[error("lkey {0:#x} is not registered")]
    UnknownLkey(u32),
    /// The span is not inside the registration.
    #[error("{len} bytes at {addr:#x} are outside the registration of lkey {lkey:#x}")]
    OutOfBounds {
        /// The lkey.
        lkey: u32,
        /// First address accessed.
        addr: u64,
        /// Bytes accessed.
        len: u64,
    },
}

/// IOVAs start high so that a driver passing a buffer offset where an address belongs
/// gets an error instead of a silent hit.
const IOVA_BASE: u64 = 1 << 32;
/// Registrations are page aligned with an unmapped page between them, so running off the
/// end of one never lands in the next.
const IOVA_PAGE: u64 = 4096;
/// The first lkey; small values (and `INVALID_LKEY`, 0x100) are never handed out.
const FIRST_LKEY: u32 = 0x1000;

struct Region {
    mem: HostMemory,
    iova: u64,
}

struct Registry {
    by_lkey: BTreeMap<u32, Region>,
    next_lkey: u32,
    next_iova: u64,
}

/// The device's table of memory registrations.
///
/// All methods take `&self`; the type is `Send + Sync`. Lkeys and IOVA ranges are never
/// reused, so a stale lkey or address fails instead of reaching a newer buffer.
pub struct MemoryRegistry {
    inner: RwLock<Registry>,
    /// Bumped after every deregistration, once the lkey is gone: an [`LkeyCache`] filled
    /// at an earlier generation may hold an lkey that no longer resolves.
    generation: AtomicU64,
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRegistry")
            .field("registrations", &self.len())
            .finish()
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        MemoryRegistry::new()
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> MemoryRegistry {
        MemoryRegistry {
            inner: RwLock::new(Registry {
                by_lkey: BTreeMap::new(),
                next_lkey: FIRST_LKEY,
                next_iova: IOVA_BASE,
            }),
            generation: AtomicU64::new(0),
        }
    }

    /// Registers the whole of `mem` under a new lkey and IOVA range.
    pub fn register(&self, mem: &HostMemory) -> Result<Mr, MrError> {
        if mem.is_empty() {
            return Err(MrError::Empty);
        }
        let len = mem.len() as u64;
        let mut reg = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let lkey = reg.next_lkey;
        let iova = reg.next_iova;
        let next_lkey = lkey.checked_add(1).ok_or(MrError::Exhausted)?;
        let next_iova = len
            .div_ceil(IOVA_PAGE)
            .checked_add(1)
            .and_then(|pages| pages.checked_mul(IOVA_PAGE))
            .and_then(|span| iova.checked_add(span))
            .ok_or(MrError::Exhausted)?;
        reg.next_lkey = next_lkey;
        reg.next_iova = next_iova;
        reg.by_lkey.insert(
            lkey,
            Region {
                mem: mem.clone(),
                iova,
            },
        );
        Ok(Mr { lkey, iova, len })
    }

    /// Removes a registration; later WQEs quoting its lkey fail.
    pub fn deregister(&self, lkey: u32) -> Result<Mr, MrError> {
        let mut reg = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let region = reg
            .by_lkey
            .remove(&lkey)
            .ok_or(MrError::UnknownLkey(lkey))?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(Mr {
            lkey,
            iova: region.iova,
            len: region.mem.len() as u64,
        })
    }

    /// The registration of `lkey`, if live.
    pub fn get(&self, lkey: u32) -> Option<Mr> {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        reg.by_lkey.get(&lkey).map(|r| Mr {
            lkey,
            iova: r.iova,
            len: r.mem.len() as u64,
        })
    }

    /// Resolves `len` bytes at IOVA `addr` under `lkey`: the whole span must lie in that
    /// registration.
    pub fn lookup(&self, lkey: u32, addr: u64, len: u64) -> Result<MrSpan, MrError> {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let region = reg.by_lkey.get(&lkey).ok_or(MrError::UnknownLkey(lkey))?;
        let offset = region_offset(lkey, region.iova, region.mem.len(), addr, len)?;
        Ok(MrSpan {
            mem: region.mem.clone(),
            offset,
            len: len as usize,
        })
    }

    /// [`MemoryRegistry::lookup`] through `cache`: the same checks and errors, but an
    /// lkey already in the cache costs a short scan instead of a locked map lookup and
    /// a buffer handle clone. Call [`LkeyCache::refresh`] before each group of lookups
    /// whose spans are used together (a WQE's).
    #[inline]
    pub fn lookup_cached(
        &self,
        cache: &mut LkeyCache,
        lkey: u32,
        addr: u64,
        len: u64,
    ) -> Result<CachedSpan, MrError> {
        let slot = match cache.entries.iter().position(|e| e.lkey == lkey) {
            Some(slot) => slot,
            None => self.fill(cache, lkey)?,
        };
        let entry = &cache.entries[slot];
        let offset = region_offset(lkey, entry.iova, entry.mem.len(), addr, len)?;
        Ok(CachedSpan {
            slot,
            offset,
            len: len as usize,
        })
    }

    /// Looks `lkey` up under the registry lock and memoises it in `cache`; returns its
    /// slot. Out of line: a queue misses only on its first use of a buffer.
    #[cold]
    fn fill(&self, cache: &mut LkeyCache, lkey: u32) -> Result<usize, MrError> {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let region = reg.by_lkey.get(&lkey).ok_or(MrError::UnknownLkey(lkey))?;
        cache.entries.push(CachedMr {
            lkey,
            mem: region.mem.clone(),
            iova: region.iova,
        });
        Ok(cache.entries.len() - 1)
    }

    /// Live registrations.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_lkey
            .len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The offset in a registration's buffer of `len` bytes at IOVA `addr`, if the whole span
/// lies in it.
#[inline]
fn region_offset(lkey: u32, iova: u64, size: usize, addr: u64, len: u64) -> Result<usize, MrError> {
    match addr.checked_sub(iova) {
        Some(offset)
            if offset
                .checked_add(len)
                .is_some_and(|end| end <= size as u64) =>
        {
            Ok(offset as usize)
        }
        _ => Err(MrError::OutOfBounds { lkey, addr, len }),
    }
}

/// How many registrations an [`LkeyCache`] keeps before [`LkeyCache::refresh`] starts it
/// over. A steering queue uses a handful (its staging and sync buffers).
const LKEY_CACHE_SLOTS: usize = 16;

struct CachedMr {
    lkey: u32,
    mem: HostMemory,
    iova: u64,
}

/// A memo of lkey resolutions, kept by a steering queue across doorbells.
///
/// Invariant: after [`refresh`](LkeyCache::refresh), every entry was live at the
/// registry's current generation: any deregistration empties the memo at the next
/// refresh. Entries are only added between refreshes, so a [`CachedSpan`] stays valid
/// until then.
#[derive(Default)]
pub struct LkeyCache {
    generation: u64,
    entries: Vec<CachedMr>,
}

impl std::fmt::Debug for LkeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkeyCache")
            .field("generation", &self.generation)
            .field(
                "lkeys",
                &self.entries.iter().map(|e| e.lkey).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl LkeyCache {
    /// An empty memo.
    pub fn new() -> LkeyCache {
        LkeyCache::default()
    }

    /// Forgets everything if `registry` deregistered anything since the last refresh
    /// (or the memo is full). Spans from before a refresh must not be used after it.
    #[inline]
    pub fn refresh(&mut self, registry: &MemoryRegistry) {
        let generation = registry.generation.load(Ordering::Acquire);
        if generation != self.generation || self.entries.len() >= LKEY_CACHE_SLOTS {
            self.entries.clear();
            self.generation = generation;
        }
    }

    /// The buffer a span from [`MemoryRegistry::lookup_cached`] lies in; `None` for a
    /// span from before the last [`refresh`](LkeyCache::refresh) that no longer fits.
    #[inline]
    pub fn memory(&self, span: &CachedSpan) -> Option<&HostMemory> {
        self.entries.get(span.slot).map(|e| &e.mem)
    }
}

/// A resolved data-segment span in an [`LkeyCache`]: its buffer is
/// [`LkeyCache::memory`], the bytes `offset..offset + len` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedSpan {
    slot: usize,
    /// Offset of the span's first byte in the buffer.
    pub offset: usize,
    /// The span's length.
    pub len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_bytes_and_accesses_are_checked() {
        let a = HostMemory::new(128);
        let b = a.clone();
        assert!(a.same_buffer(&b));
        assert!(!a.same_buffer(&HostMemory::new(128)));
        b.write(120, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(a.read_vec(120, 8).unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            a.write(121, &[0; 8]),
            Err(HostMemError::OutOfRange {
                offset: 121,
                len: 8,
                size: 128
            })
        );
        assert!(a.read(usize::MAX, &mut [0; 2]).is_err());
        assert!(a.read(128, &mut []).is_ok());
        {
            let mut g = a.lock_write();
            g[0] = 9;
        }
        assert_eq!(b.lock_read()[0], 9);
        fn send_sync<T: Send + Sync>() {}
        send_sync::<HostMemory>();
        send_sync::<MemoryRegistry>();
    }

    #[test]
    fn registrations_resolve_and_bound_check() {
        let reg = MemoryRegistry::new();
        let a = HostMemory::new(100);
        let b = HostMemory::new(5000);
        let ma = reg.register(&a).unwrap();
        let mb = reg.register(&b).unwrap();
        assert_ne!(ma.lkey, mb.lkey);
        assert_eq!(ma.len, 100);
        assert_eq!(ma.iova % IOVA_PAGE, 0);
        assert!(
            mb.iova >= ma.iova + ma.len + IOVA_PAGE,
            "a guard page between"
        );
        assert_eq!(reg.get(ma.lkey), Some(ma));

        let span = reg.lookup(mb.lkey, mb.iova + 4000, 1000).unwrap();
        assert!(span.mem.same_buffer(&b));
        assert_eq!((span.offset, span.len), (4000, 1000));
        assert_eq!(
            reg.lookup(mb.lkey, mb.iova + 4001, 1000).unwrap_err(),
            MrError::OutOfBounds {
                lkey: mb.lkey,
                addr: mb.iova + 4001,
                len: 1000
            }
        );
        assert!(reg.lookup(ma.lkey, ma.iova - 1, 1).is_err());
        assert!(reg.lookup(ma.lkey, u64::MAX, 2).is_err());
        // An address of the other registration under this lkey is out of bounds.
        assert!(reg.lookup(ma.lkey, mb.iova, 1).is_err());
        assert_eq!(
            reg.lookup(0x100, 0, 1).unwrap_err(),
            MrError::UnknownLkey(0x100)
        );

        assert_eq!(reg.deregister(ma.lkey), Ok(ma));
        assert_eq!(
            reg.lookup(ma.lkey, ma.iova, 1).unwrap_err(),
            MrError::UnknownLkey(ma.lkey)
        );
        assert_eq!(reg.deregister(ma.lkey), Err(MrError::UnknownLkey(ma.lkey)));
        // Keys and addresses are not reused.
        let mc = reg.register(&a).unwrap();
        assert!(mc.lkey != ma.lkey && mc.iova > mb.iova);
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.register(&HostMemory::new(0)), Err(MrError::Empty));
    }

    #[test]
    fn cached_lookups_check_as_uncached_ones_and_forget_deregistrations() {
        let reg = MemoryRegistry::new();
        let a = HostMemory::new(100);
        let ma = reg.register(&a).unwrap();
        let mut cache = LkeyCache::new();
        cache.refresh(&reg);
        let span = reg
            .lookup_cached(&mut cache, ma.lkey, ma.iova + 10, 90)
            .unwrap();
        assert!(cache.memory(&span).unwrap().same_buffer(&a));
        assert_eq!((span.offset, span.len), (10, 90));
        let again = reg.lookup_cached(&mut cache, ma.lkey, ma.iova, 1).unwrap();
        assert_eq!(cache.memory(&again).map(HostMemory::len), Some(100));
        assert_eq!(
            reg.lookup_cached(&mut cache, ma.lkey, ma.iova + 10, 91),
            Err(MrError::OutOfBounds {
                lkey: ma.lkey,
                addr: ma.iova + 10,
                len: 91
            })
        );
        assert_eq!(
            reg.lookup_cached(&mut cache, 0x100, 0, 1),
            Err(MrError::UnknownLkey(0x100))
        );
        reg.deregister(ma.lkey).unwrap();
        cache.refresh(&reg);
        assert!(cache.memory(&span).is_none());
        assert_eq!(
            reg.lookup_cached(&mut cache, ma.lkey, ma.iova, 1),
            Err(MrError::UnknownLkey(ma.lkey))
        );
    }
}
