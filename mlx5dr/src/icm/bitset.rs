//! A fixed-size set of positions with a fast "lowest member" search.
//!
//! Level 0 is a plain bitmap; above it, each level has one bit per word of the level
//! below, set exactly when that word is non-zero, up to a top level of one word. Finding
//! the lowest member walks one word per level (four levels cover 2^24 positions);
//! inserting or removing touches the levels only while a word turns empty or non-empty.
//! The summaries cost 1/63 of the bitmap.

use std::fmt;

/// A set of positions `0..len`.
///
/// Invariant: bit `j` of `levels[k + 1]` is set iff word `j` of `levels[k]` is non-zero;
/// the last level is one word; no bit at or past `len` is set in level 0.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BitSet {
    levels: Vec<Vec<u64>>,
    len: usize,
}

impl fmt::Debug for BitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitSet")
            .field("len", &self.len)
            .field("first", &self.first())
            .finish()
    }
}

impl BitSet {
    /// An empty set of `len` positions.
    pub(crate) fn new(len: usize) -> BitSet {
        let mut levels = Vec::new();
        let mut words = len.div_ceil(64).max(1);
        loop {
            levels.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            words = words.div_ceil(64);
        }
        BitSet { levels, len }
    }

    /// Whether `i` is in the set (false for positions past the end).
    pub(crate) fn contains(&self, i: usize) -> bool {
        i < self.len && self.levels[0][i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `i` (which must be below `len`; others are ignored).
    pub(crate) fn insert(&mut self, i: usize) {
        if i >= self.len {
            return;
        }
        let mut i = i;
        for level in &mut self.levels {
            let word = &mut level[i / 64];
            let was_empty = *word == 0;
            *word |= 1 << (i % 64);
            if !was_empty {
                return;
            }
            i /= 64;
        }
    }

    /// Removes `i` (a position not in the set is ignored).
    pub(crate) fn remove(&mut self, i: usize) {
        if !self.contains(i) {
            return;
        }
        let mut i = i;
        for level in &mut self.levels {
            let word = &mut level[i / 64];
            *word &= !(1 << (i % 64));
            if *word != 0 {
                return;
            }
            i /= 64;
        }
    }

    /// The lowest position in the set.
    pub(crate) fn first(&self) -> Option<usize> {
        let mut i = 0usize;
        for level in self.levels.iter().rev() {
            let word = level[i];
            if word == 0 {
                // Only the top word can be empty here: every lower word reached is
                // non-zero by the summary invariant.
                return None;
            }
            i = i * 64 + word.trailing_zeros() as usize;
        }
        Some(i)
    }

    /// Host bytes the set's words take.
    pub(crate) fn host_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.capacity() * 8 + std::mem::size_of::<Vec<u64>>())
            .sum::<usize>()
            + std::mem::size_of::<BitSet>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn lowest_member_through_every_level() {
        for len in [3usize, 63, 64, 65, 4096, 4097, 1 << 18] {
            let mut s = BitSet::new(len);
            assert_eq!(s.first(), None);
            s.insert(len - 1);
            assert_eq!(s.first(), Some(len - 1));
            s.insert(len / 2);
            assert_eq!(s.first(), Some(len / 2));
            s.remove(len / 2);
            assert_eq!(s.first(), Some(len - 1));
            s.remove(len - 1);
            assert_eq!(s.first(), None);
            // Out-of-range positions are neither stored nor reported.
            s.insert(len);
            assert!(!s.contains(len));
            assert_eq!(s.first(), None);
        }
    }

    #[test]
    fn a_single_position() {
        let mut s = BitSet::new(1);
        s.insert(0);
        assert_eq!(s.first(), Some(0));
        s.remove(0);
        assert_eq!(s.first(), None);
    }

    #[test]
    fn agrees_with_an_ordered_set() {
        let len = 300_000;
        let mut s = BitSet::new(len);
        let mut model = BTreeSet::new();
        // A fixed pseudo-random walk (xorshift) of inserts and removes.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % len as u64) as usize;
            if x & (1 << 40) != 0 {
                s.insert(i);
                model.insert(i);
            } else {
                let j = model.range(i..).next().copied();
                if let Some(j) = j {
                    s.remove(j);
                    model.remove(&j);
                }
            }
            assert_eq!(s.first(), model.first().copied());
        }
        for i in (0..len).step_by(997) {
            assert_eq!(s.contains(i), model.contains(&i));
        }
    }
}
