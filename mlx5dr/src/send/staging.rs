//! The staging area: a byte ring in a registered buffer where write data waits for the
//! device to read it.
//!
//! Positions are monotonic byte counters (`head`: the next byte handed out, `tail`: the
//! oldest byte still in use); a position's offset in the buffer is the counter modulo
//! the size. A reservation is contiguous: when it does not fit before the end of the
//! buffer, the rest of the buffer is skipped and counted as in use until the
//! reservation is released. Every reservation starts on a 64-byte boundary.

/// Reservations start on this boundary (an STE), so the device reads whole lines.
pub(crate) const ALIGN: usize = 64;

/// The bookkeeping of a byte ring of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staging {
    size: u64,
    head: u64,
    tail: u64,
}

impl Staging {
    /// A ring of `size` bytes, a non-zero multiple of [`ALIGN`].
    pub(crate) fn new(size: usize) -> Staging {
        debug_assert!(size > 0 && size % ALIGN == 0);
        Staging {
            size: size as u64,
            head: 0,
            tail: 0,
        }
    }

    /// Reserves `len` bytes (`1..=size`) and returns their offset in the buffer, or
    /// `None` when that much is not free until earlier reservations are released.
    pub(crate) fn reserve(&mut self, len: usize) -> Option<usize> {
        let len = (len.div_ceil(ALIGN) * ALIGN) as u64;
        if len == 0 || len > self.size {
            return None;
        }
        if self.head == self.tail {
            // Nothing in use: start over at offset 0, so any length up to the size fits.
            let start = self.head.div_ceil(self.size) * self.size;
            self.head = start;
            self.tail = start;
        }
        let pos = self.head % self.size;
        let skip = if pos + len > self.size {
            self.size - pos
        } else {
            0
        };
        if self.in_use() + skip + len > self.size {
            return None;
        }
        self.head += skip;
        let offset = (self.head % self.size) as usize;
        self.head += len;
        Some(offset)
    }

    /// The position after the latest reservation: what [`Staging::release_to`] takes
    /// once everything reserved so far is no longer needed.
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Releases every reservation made before position `end` (a value
    /// [`Staging::head`] returned). Releases never move backwards.
    pub(crate) fn release_to(&mut self, end: u64) {
        if end > self.tail && end <= self.head {
            self.tail = end;
        }
    }

    /// Bytes in use, skipped space included.
    pub(crate) fn in_use(&self) -> u64 {
        self.head - self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_aligned_contiguous_and_bounded() {
        let mut s = Staging::new(256);
        assert_eq!(s.reserve(1), Some(0));
        assert_eq!(s.reserve(64), Some(64));
        assert_eq!(s.reserve(100), Some(128));
        assert_eq!(s.in_use(), 256);
        assert_eq!(s.reserve(1), None);
        let after_first = 64;
        s.release_to(after_first);
        // 64 bytes free, but only at offset 0 after the end: it fits exactly.
        assert_eq!(s.reserve(64), Some(0));
        assert_eq!(s.reserve(1), None);
        // A release never moves backwards or past the head.
        s.release_to(10);
        assert_eq!(s.in_use(), 256);
        s.release_to(s.head() + 64);
        assert_eq!(s.in_use(), 256);
    }

    #[test]
    fn a_reservation_that_does_not_fit_before_the_end_skips_it() {
        let mut s = Staging::new(256);
        assert_eq!(s.reserve(192), Some(0));
        let end = s.head();
        // 64 bytes free at the end, but 128 are asked: wait for the release.
        assert_eq!(s.reserve(128), None);
        s.release_to(end);
        // Empty again: start over at offset 0 instead of skipping.
        assert_eq!(s.reserve(128), Some(0));
        let first = s.head();
        assert_eq!(s.reserve(64), Some(128));
        let second = s.head();
        s.release_to(first);
        // In use: [128, 192). 128 bytes do not fit in [192, 256): skip those 64 bytes
        // and take [0, 128).
        assert_eq!(s.reserve(128), Some(0));
        assert_eq!(s.in_use(), 256);
        // Releasing the second reservation frees [128, 192); the skipped bytes stay in
        // use until the reservation after them is released.
        s.release_to(second);
        assert_eq!(s.in_use(), 64 + 128);
        assert_eq!(s.reserve(128), None);
        assert_eq!(s.reserve(64), Some(128));
    }

    #[test]
    fn oversized_or_empty_requests_never_fit() {
        let mut s = Staging::new(128);
        assert_eq!(s.reserve(0), None);
        assert_eq!(s.reserve(129), None);
        assert_eq!(s.reserve(128), Some(0));
    }
}
