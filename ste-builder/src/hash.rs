//! The steering hash: a CRC-32 variant, and the hash-table index built on it.
//!
//! The NIC picks a slot in an STE hash table by hashing the lookup tag. The CRC is the
//! reflected CRC-32 (polynomial 0xEDB88320) with the register starting at 0 and no final
//! inversion; the result is the register byte-swapped. Equivalently
//! `bswap32(!zlib_crc32(0xffffffff, data))`. It is *not* the plain zlib CRC-32.

/// Size of a legacy (16-byte) tag, and of its byte mask in bits.
pub const LEGACY_TAG_SIZE: usize = 16;
/// Size of a definer ("match") tag.
pub const MATCH_TAG_SIZE: usize = 32;

/// The kind of hash table, which decides how much of the tag is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtblType {
    /// 16-byte tag and 16-byte bit mask; a byte mask selects the hashed bytes.
    Legacy,
    /// Definer-based 32-byte tag, hashed whole.
    Match,
}

/// Slicing-by-8 tables of the reflected polynomial, built at compile time: table 0 is
/// the classic byte table (one byte of input); table `k` advances a byte through `k`
/// further zero bytes, so eight input bytes fold into the register with eight lookups
/// instead of eight dependent steps.
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// One byte into the register.
#[inline]
fn step(reg: u32, b: u8) -> u32 {
    TABLES[0][((reg ^ u32::from(b)) & 0xff) as usize] ^ (reg >> 8)
}

/// The DR CRC of `data` (register from 0, no final xor, result byte-swapped).
#[inline]
pub fn crc32(data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut reg = 0u32;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ reg;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        reg = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in words.remainder() {
        reg = step(reg, b);
    }
    reg.swap_bytes()
}

/// Index of the slot a tag hashes to in a table of `num_entries` entries.
///
/// `tag` is the tag as written in the STE (16 bytes for [`HtblType::Legacy`], 32 for
/// [`HtblType::Match`]; shorter input is treated as zero-padded, longer input is cut).
/// For legacy tables only the bytes selected by `byte_mask` are hashed (bit 15 selects
/// byte 0); the others hash as zero. A one-entry table, or a legacy table with an empty
/// byte mask, always yields 0.
///
/// Invariant: the result is `< num_entries` for any `num_entries >= 1`.
#[inline]
pub fn hash_index(htbl_type: HtblType, byte_mask: u16, num_entries: u32, tag: &[u8]) -> u32 {
    if num_entries <= 1 {
        return 0;
    }
    let mut buf = [0u8; MATCH_TAG_SIZE];
    let len = match htbl_type {
        HtblType::Legacy => {
            if byte_mask == 0 {
                return 0;
            }
            for (i, b) in buf.iter_mut().take(LEGACY_TAG_SIZE).enumerate() {
                if byte_mask & (0x8000 >> i) != 0 {
                    *b = tag.get(i).copied().unwrap_or(0);
                }
            }
            LEGACY_TAG_SIZE
        }
        HtblType::Match => {
            let n = tag.len().min(MATCH_TAG_SIZE);
            buf[..n].copy_from_slice(&tag[..n]);
            MATCH_TAG_SIZE
        }
    };
    crc32(&buf[..len]) % num_entries
}

/// The byte mask of a 16-byte bit mask: bit `15 - i` is set when bit-mask byte `i` is
/// fully set (0xff). Partly masked bytes are compared but not hashed.
pub fn byte_mask_of(bit_mask: &[u8; LEGACY_TAG_SIZE]) -> u16 {
    bit_mask
        .iter()
        .fold(0u16, |acc, &b| (acc << 1) | u16::from(b == 0xff))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC one byte at a time: the definition the sliced one must equal.
    fn crc32_bytewise(data: &[u8]) -> u32 {
        data.iter().fold(0u32, |reg, &b| step(reg, b)).swap_bytes()
    }

    #[test]
    fn sliced_equals_bytewise_for_every_length_and_offset() {
        let data: Vec<u8> = (0..97u32).map(|i| (i * 181 + 7) as u8).collect();
        for start in 0..8 {
            for end in start..data.len() {
                let d = &data[start..end];
                assert_eq!(crc32(d), crc32_bytewise(d), "{start}..{end}");
            }
        }
    }

    #[test]
    fn check_values() {
        let data: Vec<u8> = (0u8..16).collect();
        assert_eq!(crc32(&data), 0xdda9_7522);
        assert_eq!(crc32(&[0u8; 16]), 0);
    }

    #[test]
    fn byte_mask_selects_full_bytes() {
        let mut m = [0u8; 16];
        m[0] = 0xff;
        m[1] = 0xfe;
        m[15] = 0xff;
        assert_eq!(byte_mask_of(&m), 0x8001);
    }
}
