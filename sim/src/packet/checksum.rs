//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are over big-endian 16-bit words; an odd trailing byte is padded with zero.

use super::wire::{ipv4, ipv6};

/// The one's-complement sum of `bytes` as big-endian words, added to `acc`, unfolded.
pub fn sum(acc: u64, bytes: &[u8]) -> u64 {
    let mut acc = acc;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits and complements it: the checksum field value.
pub fn finish(acc: u64) -> u16 {
    let mut acc = acc;
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `bytes` (with the checksum field itself zero or included: a correct
/// field makes this 0).
pub fn checksum(bytes: &[u8]) -> u16 {
    finish(sum(0, bytes))
}

/// The IP version whose pseudo-header an L4 checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader<'a> {
    /// IPv4: the header (for its addresses).
    V4(&'a [u8]),
    /// IPv6: the fixed header (for its addresses).
    V6(&'a [u8]),
}

impl PseudoHeader<'_> {
    /// The sum of the pseudo-header for an L4 segment of `len` bytes of `protocol`.
    pub fn sum(&self, protocol: u8, len: usize) -> u64 {
        let (addrs, len_words) = match *self {
            PseudoHeader::V4(h) => (&h[ipv4::ADDRS], sum(0, &(len as u16).to_be_bytes())),
            PseudoHeader::V6(h) => (&h[ipv6::ADDRS], sum(0, &(len as u32).to_be_bytes())),
        };
        sum(len_words + u64::from(protocol), addrs)
    }
}

/// The checksum of an L4 segment under its pseudo-header.
pub fn l4_checksum(pseudo: PseudoHeader<'_>, protocol: u8, segment: &[u8]) -> u16 {
    finish(sum(pseudo.sum(protocol, segment.len()), segment))
}

/// Updates checksum `csum` for a change of the bytes `old` into `new` (equal lengths,
/// starting at an even offset from the checksum's origin): `HC' = ~(~HC + ~m + m')`.
pub fn update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = u64::from(!csum);
    let mut o = old.chunks(2);
    for n in new.chunks(2) {
        let o = o.next().unwrap_or(&[]);
        let word = |c: &[u8]| match *c {
            [a, b] => u16::from_be_bytes([a, b]),
            [a] => u16::from_be_bytes([a, 0]),
            _ => 0,
        };
        acc += u64::from(!word(o)) + u64::from(word(n));
    }
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The example of RFC 1071 section 3: the sum is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
    }

    #[test]
    fn update_equals_recompute() {
        let mut data: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37)).collect();
        let before = checksum(&data);
        let old = data[10..14].to_vec();
        data[10..14].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(update(before, &old, &data[10..14]), checksum(&data));
    }

    #[test]
    fn odd_tail_is_padded() {
        assert_eq!(sum(0, &[0x12]), 0x1200);
    }
}
