//! A binary buddy allocator over the entries of one ICM region (pure bookkeeping: it
//! knows entry indices, not addresses or devices).
//!
//! The region has `2^max_order` entries. A block of order `o` is `2^o` entries starting
//! at a multiple of `2^o`, so every block is aligned to its own size: an ICM region
//! aligned to its size therefore yields chunks aligned to theirs, which the STE
//! hit-address encoding needs. Allocation takes the lowest free block of the smallest
//! order that fits and splits it down; freeing merges a block with its buddy for as
//! long as the buddy is free.
//!
//! Host memory: one bit per block per order (about two bits per entry) plus the
//! [`BitSet`] summaries, nothing per allocation.

use std::fmt;

use super::bitset::BitSet;

/// The largest order a buddy covers (entry indices are `u32`).
pub(crate) const MAX_ORDER: u8 = 31;

/// Free blocks of one region.
///
/// Invariants: `free[o]` holds block `s` (entries `s << o .. (s + 1) << o`) iff that
/// block is free and not part of a larger free block; two buddies are never both free
/// (they are merged); `num_free[o]` counts `free[o]`; bit `o` of `avail` is set iff
/// `num_free[o] > 0`; `free_entries` is the sum over orders of `num_free[o] << o`.
#[derive(Clone)]
pub(crate) struct Buddy {
    max_order: u8,
    free: Vec<BitSet>,
    num_free: Vec<u32>,
    avail: u32,
    free_entries: u64,
}

impl fmt::Debug for Buddy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buddy")
            .field("max_order", &self.max_order)
            .field("free_entries", &self.free_entries)
            .field("num_free", &self.num_free)
            .finish()
    }
}

impl Buddy {
    /// A wholly free region of `2^max_order` entries (`max_order <= MAX_ORDER`).
    pub(crate) fn new(max_order: u8) -> Buddy {
        let max_order = max_order.min(MAX_ORDER);
        let free = (0..=max_order)
            .map(|o| BitSet::new(1usize << (max_order - o)))
            .collect();
        let mut b = Buddy {
            max_order,
            free,
            num_free: vec![0; usize::from(max_order) + 1],
            avail: 0,
            free_entries: 0,
        };
        b.put(max_order, 0);
        b.free_entries = 1 << max_order;
        b
    }

    /// Free entries.
    #[cfg(test)]
    pub(crate) fn free_entries(&self) -> u64 {
        self.free_entries
    }

    /// Nothing is allocated.
    pub(crate) fn is_empty(&self) -> bool {
        self.free_entries == 1 << self.max_order
    }

    /// The smallest order at or above `order` that has a free block.
    pub(crate) fn fit(&self, order: u8) -> Option<u8> {
        if order > self.max_order {
            return None;
        }
        let above = self.avail >> order;
        (above != 0).then(|| order + above.trailing_zeros() as u8)
    }

    fn put(&mut self, order: u8, seg: usize) {
        let o = usize::from(order);
        self.free[o].insert(seg);
        self.num_free[o] += 1;
        self.avail |= 1 << order;
    }

    fn take(&mut self, order: u8, seg: usize) {
        let o = usize::from(order);
        self.free[o].remove(seg);
        self.num_free[o] -= 1;
        if self.num_free[o] == 0 {
            self.avail &= !(1 << order);
        }
    }

    /// Allocates a block of `2^order` entries: the index of its first entry.
    pub(crate) fn alloc(&mut self, order: u8) -> Option<u32> {
        let mut o = self.fit(order)?;
        let mut seg = self.free[usize::from(o)].first()?;
        self.take(o, seg);
        while o > order {
            o -= 1;
            seg <<= 1;
            // Keep the lower half, free the upper one.
            self.put(o, seg | 1);
        }
        self.free_entries -= 1 << order;
        Some((seg << order) as u32)
    }

    /// Frees the block of `2^order` entries at entry `first`, which [`Buddy::alloc`]
    /// returned for that order and which is not free: the caller checks that with
    /// [`Buddy::is_allocated`].
    pub(crate) fn free(&mut self, first: u32, order: u8) {
        let mut seg = (first >> order) as usize;
        let mut o = order;
        while o < self.max_order && self.free[usize::from(o)].contains(seg ^ 1) {
            self.take(o, seg ^ 1);
            seg >>= 1;
            o += 1;
        }
        self.put(o, seg);
        self.free_entries += 1 << order;
    }

    /// Whether the block of `2^order` entries at `first` can be a live allocation: it is
    /// inside the region, aligned to its size, and not itself a free block. (One bitmap
    /// probe: handles are unique and cannot be forged, so this guards against a handle
    /// of another pool, not against every corruption.)
    pub(crate) fn is_allocated(&self, first: u32, order: u8) -> bool {
        order <= self.max_order
            && u64::from(first) < 1u64 << self.max_order
            && first & ((1u32 << order) - 1) == 0
            && !self.free[usize::from(order)].contains((first >> order) as usize)
    }

    /// Host bytes of the bookkeeping.
    pub(crate) fn host_bytes(&self) -> usize {
        self.free.iter().map(BitSet::host_bytes).sum::<usize>()
            + self.num_free.capacity() * 4
            + std::mem::size_of::<Buddy>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowest_first_and_merges_back() {
        let mut b = Buddy::new(4);
        assert_eq!(b.alloc(0), Some(0));
        assert_eq!(b.alloc(0), Some(1));
        assert_eq!(b.alloc(1), Some(2));
        assert_eq!(b.alloc(2), Some(4));
        assert_eq!(b.alloc(3), Some(8));
        assert_eq!(b.alloc(0), None);
        assert_eq!(b.free_entries(), 0);
        assert!(b.is_allocated(8, 3));
        assert!(!b.is_allocated(9, 3));
        b.free(1, 0);
        assert!(!b.is_allocated(1, 0));
        assert!(b.is_allocated(0, 0));
        assert!(!b.is_allocated(0, 5));
        assert_eq!(b.fit(0), Some(0));
        assert_eq!(b.fit(1), None);
        b.free(0, 0);
        assert_eq!(b.fit(1), Some(1));
        b.free(2, 1);
        b.free(4, 2);
        b.free(8, 3);
        assert!(b.is_empty());
        assert_eq!(b.fit(4), Some(4));
        assert_eq!(b.alloc(4), Some(0));
        assert_eq!(b.alloc(5), None);
    }

    #[test]
    fn smallest_fitting_order_is_used() {
        let mut b = Buddy::new(6);
        let big = b.alloc(5).unwrap();
        let small = b.alloc(0).unwrap();
        // The 1-entry block came from splitting the other half; freeing the big half
        // leaves a free order-5 block, and a new order-0 request still uses the split
        // remains instead of breaking it.
        b.free(big, 5);
        let next = b.alloc(0).unwrap();
        assert_eq!(small >> 5, next >> 5);
        assert_eq!(b.fit(5), Some(5));
    }
}
