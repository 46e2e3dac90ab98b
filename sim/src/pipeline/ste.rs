//! An STE line as the lookup hardware reads it.
//!
//! STE v1/v2 lines are a control block, then the 16-byte bit mask, then the 16-byte tag
//! (the driver swaps rdma-core's tag-then-mask before posting); definer-based "match"
//! entries have one 32-byte tag and no mask. STE v0 lines are a control block, then the
//! tag, then the mask. Control words are read with `ste_builder::ste`'s getters.

use ste_builder::bits::get;
use ste_builder::prm::{ste_general as gen, ste_match_bwc_v1 as bwc};
use ste_builder::ste::{STE_CTRL_SIZE, STE_SIZE};
use ste_builder::SteFormat;

use super::key::{Key, KEY_SIZE};

/// v1 entry formats (the high byte of a v1 lookup type).
pub(super) mod v1_format {
    /// Byte-mask hash entry.
    pub const BWC_BYTE: u8 = 0x0;
    /// Dword-mask hash entry.
    pub const BWC_DW: u8 = 0x1;
    /// Definer-based match entry.
    pub const MATCH: u8 = 0x4;
}

/// The definer index of the "don't care" lookup: its key is all zeros.
pub(super) const DONT_CARE_INDEX: u8 = 0x0f;

/// How an STE decides hit or miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    /// Classic lookup: hit when `key & mask == tag`.
    Masked {
        /// The bit mask.
        mask: Key,
        /// The tag.
        tag: Key,
    },
    /// A v1 definer-based entry: hit when the definer's 32-byte key equals the tag.
    /// Only the "don't care" definer (action-only STEs) is modelled: its key is all
    /// zeros.
    Definer {
        /// The definer index.
        index: u8,
        /// The 32-byte tag.
        tag: [u8; 32],
    },
}

/// Where an STE's actions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ActionArea {
    /// v1 action words (8 bytes in a BWC entry, 12 in a match entry) at this byte range
    /// of the line.
    V1(usize, usize),
    /// v0 control-block fields.
    V0,
}

/// The decoded parts of one STE line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ste {
    /// This STE's own lookup type (what it compares).
    pub lu_type: u16,
    /// Hit or miss rule.
    pub compare: Compare,
    /// Where a miss continues.
    pub miss_addr: u64,
    /// The raw 35-bit hit index: next table address and size.
    pub hit_index: u64,
    /// Lookup type of the next table.
    pub next_lu_type: u16,
    /// Byte mask of the next table's hash. Zero for v1 match entries, which have none.
    pub byte_mask: u16,
    /// v1: the flow counter in the control block (0 = none). v0 keeps it with the actions.
    pub counter_id: u32,
    /// The actions.
    pub actions: ActionArea,
}

/// Why an STE line cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SteError {
    /// A v1 entry format other than the byte/dword hash entries and match entries.
    #[error("v1 entry format {0:#x} is not supported")]
    EntryFormat(u8),
    /// A v0 entry type other than RX, TX and modify-packet.
    #[error("v0 entry type {0:#x} is not an STE type")]
    EntryType(u8),
}

/// Decodes the line of an STE of `format`.
pub(super) fn decode(format: SteFormat, line: &[u8; STE_SIZE]) -> Result<Ste, SteError> {
    let ctrl = format.ctrl();
    let hit_index = ctrl.hit_index(line);
    let miss_addr = ctrl.miss_addr(line);
    let key_at = |at: usize| -> Key {
        let mut k = [0u8; KEY_SIZE];
        k.copy_from_slice(&line[at..at + KEY_SIZE]);
        k
    };
    match format {
        SteFormat::V0 => {
            let entry_type = get(line, gen::ENTRY_TYPE) as u8;
            if ![1, 2, 6].contains(&entry_type) {
                return Err(SteError::EntryType(entry_type));
            }
            Ok(Ste {
                lu_type: get(line, gen::ENTRY_SUB_TYPE) as u16,
                compare: Compare::Masked {
                    tag: key_at(STE_CTRL_SIZE),
                    mask: key_at(STE_CTRL_SIZE + KEY_SIZE),
                },
                miss_addr,
                hit_index,
                next_lu_type: ctrl.next_lu_type(line),
                byte_mask: ctrl.byte_mask(line),
                counter_id: 0,
                actions: ActionArea::V0,
            })
        }
        SteFormat::V1 | SteFormat::V2 => {
            let entry_format = get(line, bwc::ENTRY_FORMAT) as u8;
            let index = get(line, bwc::MATCH_DEFINER_CTX_IDX) as u8;
            let lu_type = (u16::from(entry_format) << 8) | u16::from(index);
            let counter_id = get(line, bwc::COUNTER_ID) as u32;
            match entry_format {
                v1_format::BWC_BYTE | v1_format::BWC_DW => Ok(Ste {
                    lu_type,
                    compare: Compare::Masked {
                        mask: key_at(STE_CTRL_SIZE),
                        tag: key_at(STE_CTRL_SIZE + KEY_SIZE),
                    },
                    miss_addr,
                    hit_index,
                    next_lu_type: ctrl.next_lu_type(line),
                    byte_mask: ctrl.byte_mask(line),
                    counter_id,
                    actions: ActionArea::V1(24, 32),
                }),
                v1_format::MATCH => {
                    let mut tag = [0u8; 32];
                    tag.copy_from_slice(&line[STE_CTRL_SIZE..]);
                    // A match entry has no next-entry-format bit or byte mask (its
                    // action words take their place): only the definer index of the
                    // next table is encoded.
                    Ok(Ste {
                        lu_type,
                        compare: Compare::Definer { index, tag },
                        miss_addr,
                        hit_index,
                        next_lu_type: get(line, bwc::HASH_DEFINER_CTX_IDX) as u16,
                        byte_mask: 0,
                        counter_id,
                        actions: ActionArea::V1(20, 32),
                    })
                }
                other => Err(SteError::EntryFormat(other)),
            }
        }
    }
}

impl Compare {
    /// True when every mask bit is zero: the entry matches every key or none (anchors,
    /// action-only entries, unused slots).
    pub(super) fn mask_is_zero(&self) -> bool {
        match self {
            Compare::Masked { mask, .. } => mask.iter().all(|&b| b == 0),
            Compare::Definer { .. } => true,
        }
    }
}
