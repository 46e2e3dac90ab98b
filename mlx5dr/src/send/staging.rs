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
///
/// `pos` is always `head % size`, kept up to date as `head` moves, so a reservation
/// needs no division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staging {
    size: u64,
    head: u64,
    tail: u64,
    /// `head`'s offset in the buffer (`head % size`).
    pos: u64,
}

impl Staging {
    /// A ring of `size` bytes, a non-zero multiple of [`ALIGN`].
    pub(crate) fn new(size: usize) -> Staging {
        debug_assert!(size > 0 && size % ALIGN == 0);
        Staging {
            size: size as u64,
            head: 0,
            tail: 0,
            pos: 0,
        }
    }

    /// Reserves `len` bytes (`1..=size`) and returns their offset in the buffer, or
    /// `None` when that much is not free until earlier reservations are released.
    #[inline]
    pub(crate) fn reserve(&mut self, len: usize) -> Option<usize> {
        let len = (len.div_ceil(ALIGN) * ALIGN) as u64;
        if len == 0 || len > self.size {
            return None;
        }
        if self.head == self.tail && self.pos != 0 {
            // Nothing in use: start over at offset 0, so any length up to the size fits.
            self.head += self.size - self.pos;
            self.tail = self.head;
            self.pos = 0;
        }
        // Skip to the buffer's start when the reservation does not fit before its end.
        let (skip, offset) = if self.pos + len > self.size {
            (self.size - self.pos, 0)
        } else {
            (0, self.pos)
        };
        if self.in_use() + skip + len > self.size {
            return None;
        }
        self.head += skip + len;
        // `offset + len <= size`: the end of the buffer wraps to offset 0.
        self.pos = if offset + len == self.size {
            0
        } else {
            offset + len
        };
        Some(offset as usize)
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

    /// The ring as first written, with divisions: the offsets and refusals must match
    /// it over a long random run of reservations and releases.
    struct ByModulo {
        size: u64,
        head: u64,
        tail: u64,
    }

    impl ByModulo {
        fn reserve(&mut self, len: usize) -> Option<usize> {
            let len = (len.div_ceil(ALIGN) * ALIGN) as u64;
            if len == 0 || len > self.size {
                return None;
            }
            if self.head == self.tail {
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
            if self.head - self.tail + skip + len > self.size {
                return None;
            }
            self.head += skip;
            let offset = (self.head % self.size) as usize;
            self.head += len;
            Some(offset)
        }
    }

    #[test]
    fn offsets_match_the_modulo_definition() {
        for size in [64usize, 192, 256, 640, 4096] {
            let mut s = Staging::new(size);
            let mut m = ByModulo {
                size: size as u64,
                head: 0,
                tail: 0,
            };
            let mut ends = std::collections::VecDeque::new();
            let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
            for _ in 0..20_000 {
                if rng.below(3) == 0 {
                    // Release the oldest reservations still held, or all of them.
                    let n = rng.below(ends.len() as u64 + 1) as usize;
                    let mut end = None;
                    for _ in 0..n {
                        end = ends.pop_front();
                    }
                    if let Some(end) = end {
                        s.release_to(end);
                        m.tail = m.tail.max(end);
                    }
                } else {
                    let len = rng.below(size as u64 + 65) as usize;
                    let got = s.reserve(len);
                    assert_eq!(got, m.reserve(len), "size {size}, len {len}");
                    assert_eq!((s.head, s.tail), (m.head, m.tail));
                    assert_eq!(s.pos, s.head % s.size);
                    if got.is_some() {
                        ends.push_back(s.head());
                    }
                }
            }
        }
    }

    #[test]
    fn oversized_or_empty_requests_never_fit() {
        let mut s = Staging::new(128);
        assert_eq!(s.reserve(0), None);
        assert_eq!(s.reserve(129), None);
        assert_eq!(s.reserve(128), Some(0));
    }
}
