//! PRM bit fields over byte buffers.
//!
//! Every NIC-facing layout in this crate (match parameters, STEs, actions) is described the
//! way the PRM describes it: a field is a run of bits at a bit offset, numbered big-endian
//! (bit 0 is the most significant bit of byte 0), and its value is the big-endian integer
//! formed by those bits. [`BitField`] is that description; [`get`] and [`set`] read and
//! write one field of a buffer.

/// A field of a PRM layout: `width` bits starting at bit `offset` (PRM numbering).
///
/// Fields up to 32 bits are the rule; [`get`] and [`set`] handle up to 64. Wider fields
/// (whole tag or action areas) are only used for their offset and byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BitField {
    /// Bit offset from the start of the layout; bit 0 is the MSB of byte 0.
    pub offset: usize,
    /// Width in bits.
    pub width: usize,
}

impl BitField {
    /// A field of `width` bits at bit `offset`.
    pub const fn new(offset: usize, width: usize) -> Self {
        assert!(width >= 1);
        BitField { offset, width }
    }

    /// The same field moved by `base` bits, for a field of a nested layout.
    pub const fn at(self, base: usize) -> Self {
        BitField {
            offset: self.offset + base,
            width: self.width,
        }
    }

    /// The all-ones value of this field.
    pub const fn max(self) -> u64 {
        if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }
    }

    /// One past the last byte this field touches.
    pub const fn end_byte(self) -> usize {
        (self.offset + self.width).div_ceil(8)
    }
}

/// Reads `field` from `buf` as a big-endian integer.
///
/// # Panics
/// If the field is wider than 64 bits or does not lie inside `buf`: layouts are fixed at compile time, so this is a
/// programming error, never a property of input data.
#[inline]
pub fn get(buf: &[u8], field: BitField) -> u64 {
    debug_assert!(field.width <= 64);
    let first = field.offset / 8;
    let last = field.end_byte();
    let trailing = last * 8 - (field.offset + field.width);
    if last - first <= 8 {
        if let Some((start, word)) = window(buf, last) {
            // `first >= start`, so the field and its trailing bits lie in the word; the
            // mask drops the neighbours above it.
            let shift = trailing + (start + 8 - last) * 8;
            return (word >> shift) & field.max();
        }
    }
    let mut acc: u128 = 0;
    for &b in &buf[first..last] {
        acc = (acc << 8) | u128::from(b);
    }
    ((acc >> trailing) as u64) & field.max()
}

/// The 8 bytes of `buf` that end at byte `last` (its first 8 when `last < 8`), as a
/// big-endian word with the index of its first byte; `None` when they do not lie in
/// `buf` (the callers' byte path then slices, and panics on, a field beyond it).
#[inline(always)]
fn window(buf: &[u8], last: usize) -> Option<(usize, u64)> {
    let start = last.saturating_sub(8);
    let bytes: [u8; 8] = buf.get(start..start + 8)?.try_into().ok()?;
    Some((start, u64::from_be_bytes(bytes)))
}

/// Writes the low `field.width` bits of `value` into `buf` (higher bits are dropped, as the
/// PRM's `SET` accessors do). Bits outside the field are preserved.
///
/// # Panics
/// If the field does not lie inside `buf` (see [`get`]).
#[inline]
pub fn set(buf: &mut [u8], field: BitField, value: u64) {
    debug_assert!(field.width <= 64);
    let first = field.offset / 8;
    let last = field.end_byte();
    let trailing = last * 8 - (field.offset + field.width);
    if last - first <= 8 {
        if let Some((start, word)) = window(buf, last) {
            // See `get`; the neighbours in the word are written back unchanged.
            let shift = trailing + (start + 8 - last) * 8;
            let mask = field.max() << shift;
            let new = (word & !mask) | ((value << shift) & mask);
            buf[start..start + 8].copy_from_slice(&new.to_be_bytes());
            return;
        }
    }
    let mask = u128::from(field.max()) << trailing;
    let val = (u128::from(value & field.max())) << trailing;
    let n = last - first;
    for (i, b) in buf[first..last].iter_mut().enumerate() {
        let shift = 8 * (n - 1 - i);
        let m = (mask >> shift) as u8;
        let v = (val >> shift) as u8;
        *b = (*b & !m) | v;
    }
}

/// Reads `field` and clears it in `buf`: the "consume" step of the lookup builders, which
/// take each match field they encode out of the parameter so that leftovers can be
/// detected.
#[inline]
pub fn take(buf: &mut [u8], field: BitField) -> u64 {
    let v = get(buf, field);
    if v != 0 {
        set(buf, field, 0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_unaligned_fields() {
        let mut buf = [0u8; 8];
        let f = BitField::new(4, 12);
        set(&mut buf, f, 0xabc);
        assert_eq!(buf[..2], [0x0a, 0xbc]);
        assert_eq!(get(&buf, f), 0xabc);
        set(&mut buf, BitField::new(0, 4), 0xf);
        assert_eq!(get(&buf, f), 0xabc);
        assert_eq!(buf[0], 0xfa);
    }

    #[test]
    fn truncates_to_width_and_handles_64_bits() {
        let mut buf = [0u8; 9];
        set(&mut buf, BitField::new(3, 5), 0xff);
        assert_eq!(buf[0], 0x1f);
        let wide = BitField::new(8, 64);
        set(&mut buf, wide, 0x0123_4567_89ab_cdef);
        assert_eq!(get(&buf, wide), 0x0123_4567_89ab_cdef);
        assert_eq!(buf[0], 0x1f);
    }

    /// The word fast path against a bit-by-bit model, for every offset and width.
    #[test]
    fn every_offset_and_width_matches_a_bitwise_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for offset in 0..16 {
            for width in 1..=64 {
                let f = BitField::new(offset, width);
                let mut buf = [0u8; 12];
                buf.iter_mut().for_each(|b| *b = next() as u8);
                // Short buffers take the byte path; check it on the same bits.
                if offset + width <= 48 {
                    let mut short = [0u8; 6];
                    short.copy_from_slice(&buf[..6]);
                    let mut long = buf;
                    assert_eq!(get(&short, f), get(&long, f));
                    set(&mut short, f, 0x5a5a_5a5a_5a5a);
                    set(&mut long, f, 0x5a5a_5a5a_5a5a);
                    assert_eq!(short[..], long[..6]);
                }
                let before = buf;
                let bit = |b: &[u8], i: usize| u64::from(b[i / 8] >> (7 - i % 8) & 1);
                let want = (0..width).fold(0u64, |acc, i| acc << 1 | bit(&buf, offset + i));
                assert_eq!(get(&buf, f), want, "get {offset}/{width}");
                let v = next();
                set(&mut buf, f, v);
                for i in 0..96 {
                    let expect = if (offset..offset + width).contains(&i) {
                        v >> (width - 1 - (i - offset)) & 1
                    } else {
                        bit(&before, i)
                    };
                    assert_eq!(bit(&buf, i), expect, "set {offset}/{width} bit {i}");
                }
            }
        }
    }

    #[test]
    fn take_clears() {
        let mut buf = [0xffu8; 4];
        assert_eq!(take(&mut buf, BitField::new(8, 8)), 0xff);
        assert_eq!(buf, [0xff, 0, 0xff, 0xff]);
    }
}
