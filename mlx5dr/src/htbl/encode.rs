//! The STE images the engine writes: anchors, unused slots, and rule STEs rebuilt from
//! the host records (no shadow copy of ICM is kept, so every write is built afresh).
//!
//! Images are built in the layout of `ste_builder` ("as built": control block, tag, bit
//! mask) and turned into the posted layout by [`Encoder::posted`] right before a write.

use ste_builder::hash::HtblType;
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
}

impl Level {
    pub(super) fn of(b: &SteBuild) -> Level {
        Level {
            lu_type: b.lu_type,
            byte_mask: b.byte_mask,
            htbl_type: b.htbl_type,
            bit_mask: b.bit_mask,
        }
    }

    /// The slot `tag` hashes to in a table of `entries` entries of this level.
    pub(super) fn slot(&self, entries: u32, tag: &[u8; STE_TAG_SIZE]) -> u32 {
        ste_builder::hash::hash_index(self.htbl_type, self.byte_mask, entries, tag)
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

    /// A rule STE of `level` with `tag`: no hit address, no miss address yet.
    pub(super) fn rule_ste(&self, level: &Level, tag: &[u8; STE_TAG_SIZE]) -> Ste {
        let mut s = [0; STE_SIZE];
        self.ctrl.init(&mut s, level.lu_type, self.rx, self.gvmi);
        ste::tag_mut(&mut s)[..STE_TAG_SIZE].copy_from_slice(tag);
        ste::set_bit_mask(&mut s, &level.bit_mask);
        s
    }

    /// A rule STE of a level that is not the last: it hits into its child table of
    /// level `next` (`child` at ICM address, entries) and misses to `miss`.
    pub(super) fn inner_ste(
        &self,
        level: &Level,
        next: &Level,
        tag: &[u8; STE_TAG_SIZE],
        child: (u64, u32),
        miss: u64,
    ) -> Ste {
        let mut s = self.rule_ste(level, tag);
        self.ctrl.set_next_lu_type(&mut s, next.lu_type);
        self.ctrl.set_byte_mask(&mut s, next.byte_mask);
        self.ctrl.set_hit_addr(&mut s, child.0, child.1);
        self.ctrl.set_miss_addr(&mut s, miss);
        s
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
        s[..STE_CTRL_SIZE].copy_from_slice(ctrl);
        ste::tag_mut(&mut s)[..STE_TAG_SIZE].copy_from_slice(tag);
        ste::set_bit_mask(&mut s, &level.bit_mask);
        self.ctrl.set_miss_addr(&mut s, miss);
        s
    }

    /// The bytes posted for the first `len` bytes of `ste` (64: the whole entry; 32: a
    /// control-block update).
    pub(super) fn posted(&self, mut ste: Ste, len: usize) -> Ste {
        self.ctrl.prepare_for_postsend(&mut ste, len);
        ste
    }
}
