//! The STE images the engine writes: anchors, unused slots, and rule STEs rebuilt from
//! the host records (no shadow copy of ICM is kept, so every write is built afresh).
//!
//! Images are built in the layout of `ste_builder` ("as built": control block, tag, bit
//! mask) and turned into the posted layout by [`Encoder::posted`] right before a write.

use ste_builder::hash::{crc32, HtblType, MATCH_TAG_SIZE};
use ste_builder::ste::{
    self, set_formatted_ste, Connect, Ste, SteCtrl, LU_TYPE_DONT_CARE, STE_CTRL_SIZE, STE_SIZE,
    STE_TAG_SIZE,
};
use ste_builder::{SteBuild, SteFormat};

/// One lookup of the chain, as its tables and STEs need it.
#[derive(Debug, Clone)]
pub(super) struct Level {
    /// The lookup type of its tables and STEs.
    pub(super) lu_type: u16,
    /// The hash byte mask of its tables.
    pub(super) byte_mask: u16,
    /// The kind of its tables.
    pub(super) htbl_type: HtblType,
    /// The bit mask every STE of the level carries.
    pub(super) bit_mask: [u8; STE_TAG_SIZE],
    /// `byte_mask` spread over the tag: 0xff in each byte the hash reads, else 0, so a
    /// legacy hash masks a tag with one AND instead of a loop over the mask's bits.
    hash_bytes: u128,
}

impl Level {
    pub(super) fn of(b: &SteBuild) -> Level {
        let mut spread = [0u8; STE_TAG_SIZE];
        for (i, byte) in spread.iter_mut().enumerate() {
            if b.byte_mask & (0x8000 >> i) != 0 {
                *byte = 0xff;
            }
        }
        Level {
            lu_type: b.lu_type,
            byte_mask: b.byte_mask,
            htbl_type: b.htbl_type,
            bit_mask: b.bit_mask,
            hash_bytes: u128::from_ne_bytes(spread),
        }
    }

    /// The hash of `tag` in this level's tables: a table of `entries` entries puts it in
    /// slot `hash % entries` ([`Level::index`]), whatever its size, so one hash serves
    /// every size a table grows through. The same as `ste_builder::hash::hash_index`.
    pub(super) fn hash(&self, tag: &[u8; STE_TAG_SIZE]) -> u32 {
        match self.htbl_type {
            HtblType::Legacy => {
                let masked = u128::from_ne_bytes(*tag) & self.hash_bytes;
                crc32(&masked.to_ne_bytes())
            }
            HtblType::Match => {
                let mut buf = [0u8; MATCH_TAG_SIZE];
                buf[..STE_TAG_SIZE].copy_from_slice(tag);
                crc32(&buf)
            }
        }
    }

    /// The slot of a tag with hash `hash` (see [`Level::hash`]) in a table of `entries`
    /// entries (a power of two).
    pub(super) fn index(hash: u32, entries: u32) -> u32 {
        debug_assert!(entries.is_power_of_two(), "{entries} entries");
        // A mask, not a division: sizes are powers of two.
        hash & entries.wrapping_sub(1)
    }

    /// The slot `tag` hashes to in a table of `entries` entries of this level.
    pub(super) fn slot(&self, entries: u32, tag: &[u8; STE_TAG_SIZE]) -> u32 {
        if entries <= 1 {
            return 0;
        }
        Level::index(self.hash(tag), entries)
    }

    /// The tag bits the level's hash reads: the fully masked bytes of the byte mask (a
    /// definer lookup hashes its whole tag, so it has no useful bound).
    fn hashed_bits(&self) -> u32 {
        match self.htbl_type {
            HtblType::Match => u32::MAX,
            HtblType::Legacy => self.byte_mask.count_ones() * 8,
        }
    }

    /// True when a table of this level with `2^log` entries spreads its STEs better by
    /// growing: it hashes something, and more bits than the table's index has.
    pub(super) fn may_grow_beyond(&self, log: u8) -> bool {
        self.hashed_bits() > u32::from(log)
    }

    /// log2 of the entries of a presized table of this level, for about
    /// `2^initial_log` expected rules and a largest chunk of `2^max_log`: no larger than
    /// its hash can spread STEs over (a level that hashes nothing gets one entry).
    pub(super) fn presize_log(&self, initial_log: u8, max_log: u8) -> u8 {
        let hashed = u8::try_from(self.hashed_bits()).unwrap_or(u8::MAX);
        initial_log.min(max_log).min(hashed)
    }
}

/// Builds STE images for one domain side.
#[derive(Clone, Copy)]
pub(super) struct Encoder {
    pub(super) ctrl: &'static dyn SteCtrl,
    pub(super) rx: bool,
    pub(super) gvmi: u16,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("format", &self.ctrl.format())
            .field("rx", &self.rx)
            .field("gvmi", &self.gvmi)
            .finish()
    }
}

impl Encoder {
    pub(super) fn new(format: SteFormat, rx: bool, gvmi: u16) -> Encoder {
        Encoder {
            ctrl: format.ctrl(),
            rx,
            gvmi,
        }
    }

    /// An anchor (lookup type "don't care"): always hit into a table, or always miss.
    pub(super) fn anchor(&self, to: Connect) -> Ste {
        let mut s = [0; STE_SIZE];
        set_formatted_ste(self.ctrl, &mut s, self.gvmi, self.rx, LU_TYPE_DONT_CARE, to);
        s
    }

    /// The STE of an unused slot of a table of `level`: always miss to `miss`.
    pub(super) fn unused_slot(&self, level: &Level, miss: u64) -> Ste {
        let mut s = [0; STE_SIZE];
        let to = Connect::Miss { miss_addr: miss };
        set_formatted_ste(self.ctrl, &mut s, self.gvmi, self.rx, level.lu_type, to);
        s
    }

    /// A rule STE of `level` with `tag`, built into `out` (one STE, zeroed): no hit
    /// address, no miss address yet.
    pub(super) fn rule_ste_into(&self, out: &mut [u8], level: &Level, tag: &[u8; STE_TAG_SIZE]) {
        self.ctrl.init(out, level.lu_type, self.rx, self.gvmi);
        ste::tag_mut(out)[..STE_TAG_SIZE].copy_from_slice(tag);
        ste::set_bit_mask(out, &level.bit_mask);
    }

    /// A rule STE of a level that is not the last, built into `out` (one STE, any bytes
    /// before): it hits into its child table of level `next` (`child` at ICM address,
    /// entries) and misses to `miss`.
    pub(super) fn inner_ste_into(
        &self,
        out: &mut [u8],
        level: &Level,
        next: &Level,
        tag: &[u8; STE_TAG_SIZE],
        child: (u64, u32),
        miss: u64,
    ) {
        out.fill(0);
        self.rule_ste_into(out, level, tag);
        self.ctrl.set_next_lu_type(out, next.lu_type);
        self.ctrl.set_byte_mask(out, next.byte_mask);
        self.ctrl.set_hit_addr(out, child.0, child.1);
        self.ctrl.set_miss_addr(out, miss);
    }

    /// A rule's last STE: its stored control block (actions and hit address), its tag
    /// and the level's mask, missing to `miss`.
    pub(super) fn last_ste(
        &self,
        ctrl: &[u8; STE_CTRL_SIZE],
        level: &Level,
        tag: &[u8; STE_TAG_SIZE],
        miss: u64,
    ) -> Ste {
        let mut s = [0; STE_SIZE];
        self.last_ste_into(&mut s, ctrl, level, tag, miss);
        s
    }

    /// [`Encoder::last_ste`] built into `out` (one STE, any bytes before: every byte is
    /// written).
    pub(super) fn last_ste_into(
        &self,
        out: &mut [u8],
        ctrl: &[u8; STE_CTRL_SIZE],
        level: &Level,
        tag: &[u8; STE_TAG_SIZE],
        miss: u64,
    ) {
        out[..STE_CTRL_SIZE].copy_from_slice(ctrl);
        ste::tag_mut(out)[..STE_TAG_SIZE].copy_from_slice(tag);
        ste::set_bit_mask(out, &level.bit_mask);
        self.ctrl.set_miss_addr(out, miss);
    }

    /// Turns one STE as built into the bytes posted for all of it, in place.
    pub(super) fn post_in_place(&self, ste: &mut [u8]) {
        self.ctrl.prepare_for_postsend(ste, STE_SIZE);
    }

    /// The bytes posted for the first `len` bytes of `ste` (64: the whole entry; 32: a
    /// control-block update).
    pub(super) fn posted(&self, mut ste: Ste, len: usize) -> Ste {
        self.ctrl.prepare_for_postsend(&mut ste, len);
        ste
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level's hash picks the slot `hash_index` picks, for every byte mask shape
    /// and table size.
    #[test]
    fn slot_is_hash_index() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200 {
            let byte_mask = match round {
                0 => 0,
                1 => 0xffff,
                _ => next() as u16,
            };
            for htbl_type in [HtblType::Legacy, HtblType::Match] {
                let mut spread = [0u8; STE_TAG_SIZE];
                for (i, b) in spread.iter_mut().enumerate() {
                    if byte_mask & (0x8000 >> i) != 0 {
                        *b = 0xff;
                    }
                }
                let level = Level {
                    lu_type: 0,
                    byte_mask,
                    htbl_type,
                    bit_mask: [0xff; STE_TAG_SIZE],
                    hash_bytes: u128::from_ne_bytes(spread),
                };
                let mut tag = [0u8; STE_TAG_SIZE];
                tag[..8].copy_from_slice(&next().to_le_bytes());
                tag[8..].copy_from_slice(&next().to_le_bytes());
                for log in 0..20 {
                    let entries = 1u32 << log;
                    let want = ste_builder::hash::hash_index(htbl_type, byte_mask, entries, &tag);
                    assert_eq!(level.slot(entries, &tag), want, "{byte_mask:#x} {log}");
                    assert_eq!(Level::index(level.hash(&tag), entries), want);
                }
            }
        }
    }
}
