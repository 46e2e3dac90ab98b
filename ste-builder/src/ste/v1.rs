//! STE v1 (ConnectX-6 Dx) control words; v2 (ConnectX-7) uses the same layout.

use super::{SteCtrl, SteFormat, LU_TYPE_DONT_CARE, STE_CTRL_SIZE, STE_SIZE, STE_TAG_SIZE};
use crate::bits::{get, set};
use crate::prm::{ste_mask_and_match_v1 as mam, ste_match_bwc_v1 as bwc};

/// Entry formats of v1 (the high byte of a v1 lookup type).
pub(crate) mod entry_format {
    pub const BWC_BYTE: u64 = 0x0;
    /// Definer-based entry: a 32-byte tag and no mask.
    pub const MATCH: u64 = 0x4;
}

/// The v1 ops table (ConnectX-6 Dx).
#[derive(Debug, Clone, Copy, Default)]
pub struct V1;

/// The v2 ops table (ConnectX-7): v1's control words.
#[derive(Debug, Clone, Copy, Default)]
pub struct V2;

/// True for a lookup type of a definer-based match entry.
pub(crate) fn is_match_lu_type(lu_type: u16) -> bool {
    u64::from(lu_type >> 8) == entry_format::MATCH
}

fn entry_type(ste: &[u8]) -> u64 {
    get(ste, bwc::ENTRY_FORMAT)
}

fn set_lu_type(ste: &mut [u8], lu_type: u16) {
    set(ste, bwc::ENTRY_FORMAT, u64::from(lu_type >> 8));
    set(ste, bwc::MATCH_DEFINER_CTX_IDX, u64::from(lu_type & 0xff));
}

fn init(ste: &mut [u8], lu_type: u16, _is_rx: bool, gvmi: u16) {
    set_lu_type(ste, lu_type);
    // Match entries carry no gvmi of their own.
    if !is_match_lu_type(lu_type) {
        set(ste, bwc::GVMI, gvmi.into());
    }
    set_next_lu_type(ste, LU_TYPE_DONT_CARE);
    set(ste, bwc::NEXT_TABLE_BASE_63_48, gvmi.into());
    set(ste, bwc::MISS_ADDRESS_63_48, gvmi.into());
}

fn set_next_lu_type(ste: &mut [u8], lu_type: u16) {
    if entry_type(ste) != entry_format::MATCH {
        set(ste, bwc::NEXT_ENTRY_FORMAT, u64::from(lu_type >> 8));
    }
    set(ste, bwc::HASH_DEFINER_CTX_IDX, u64::from(lu_type & 0xff));
}

fn next_lu_type(ste: &[u8]) -> u16 {
    ((get(ste, bwc::NEXT_ENTRY_FORMAT) << 8) | get(ste, bwc::HASH_DEFINER_CTX_IDX)) as u16
}

fn set_miss_addr(ste: &mut [u8], miss_addr: u64) {
    let index = miss_addr >> 6;
    set(ste, bwc::MISS_ADDRESS_39_32, index >> 26);
    set(ste, bwc::MISS_ADDRESS_31_6, index);
}

fn miss_addr(ste: &[u8]) -> u64 {
    let index = get(ste, bwc::MISS_ADDRESS_31_6) | (get(ste, bwc::MISS_ADDRESS_39_32) << 26);
    index << 6
}

fn set_hit_addr(ste: &mut [u8], icm_addr: u64, ht_size: u32) {
    let index = (icm_addr >> 5) | u64::from(ht_size);
    set(ste, bwc::NEXT_TABLE_BASE_39_32_SIZE, index >> 27);
    set(ste, bwc::NEXT_TABLE_BASE_31_5_SIZE, index);
}

fn hit_index(ste: &[u8]) -> u64 {
    (get(ste, bwc::NEXT_TABLE_BASE_39_32_SIZE) << 27) | get(ste, bwc::NEXT_TABLE_BASE_31_5_SIZE)
}

fn set_byte_mask(ste: &mut [u8], byte_mask: u16) {
    if entry_type(ste) != entry_format::MATCH {
        set(ste, bwc::BYTE_MASK, byte_mask.into());
    }
}

fn set_ctrl_always_hit_htbl(
    ste: &mut [u8],
    byte_mask: u16,
    lu_type: u16,
    icm_addr: u64,
    num_of_entries: u32,
    gvmi: u16,
) {
    if is_match_lu_type(lu_type) {
        // Hitting into a definer table turns this entry into a match entry.
        set(ste, bwc::ENTRY_FORMAT, entry_format::MATCH);
        set_miss_addr(ste, 0);
        let first_action = mam::ACTION.offset / 8;
        ste[first_action..first_action + 4].fill(0);
    } else {
        set(ste, bwc::ENTRY_FORMAT, entry_format::BWC_BYTE);
        set_byte_mask(ste, byte_mask);
        set(ste, bwc::GVMI, gvmi.into());
        set(ste, bwc::MASK_MODE, 0);
    }
    set_next_lu_type(ste, lu_type);
    set_hit_addr(ste, icm_addr, num_of_entries);
}

fn set_ctrl_always_miss(ste: &mut [u8], miss_addr: u64) {
    // An all-ones hit index: "no hit target"; the entry never matches anyway.
    set_hit_addr(ste, u64::MAX, 0);
    set_next_lu_type(ste, LU_TYPE_DONT_CARE);
    set_miss_addr(ste, miss_addr);
}

fn prepare_for_postsend(ste: &mut [u8], size: usize) {
    // v1 hardware expects the mask before the tag; match entries have no mask.
    if size != STE_SIZE || entry_type(ste) == entry_format::MATCH {
        return;
    }
    let (tag, mask) = ste[STE_CTRL_SIZE..STE_SIZE].split_at_mut(STE_TAG_SIZE);
    tag.swap_with_slice(mask);
}

macro_rules! v1_ctrl {
    ($t:ty, $fmt:expr) => {
        impl SteCtrl for $t {
            fn init(&self, ste: &mut [u8], lu_type: u16, is_rx: bool, gvmi: u16) {
                init(ste, lu_type, is_rx, gvmi)
            }
            fn set_next_lu_type(&self, ste: &mut [u8], lu_type: u16) {
                set_next_lu_type(ste, lu_type)
            }
            fn next_lu_type(&self, ste: &[u8]) -> u16 {
                next_lu_type(ste)
            }
            fn set_miss_addr(&self, ste: &mut [u8], addr: u64) {
                set_miss_addr(ste, addr)
            }
            fn miss_addr(&self, ste: &[u8]) -> u64 {
                miss_addr(ste)
            }
            fn set_hit_addr(&self, ste: &mut [u8], icm_addr: u64, ht_size: u32) {
                set_hit_addr(ste, icm_addr, ht_size)
            }
            fn hit_index(&self, ste: &[u8]) -> u64 {
                hit_index(ste)
            }
            fn set_byte_mask(&self, ste: &mut [u8], byte_mask: u16) {
                set_byte_mask(ste, byte_mask)
            }
            fn byte_mask(&self, ste: &[u8]) -> u16 {
                get(ste, bwc::BYTE_MASK) as u16
            }
            fn set_hit_gvmi(&self, ste: &mut [u8], gvmi: u16) {
                set(ste, bwc::NEXT_TABLE_BASE_63_48, gvmi.into())
            }
            fn set_ctrl_always_hit_htbl(
                &self,
                ste: &mut [u8],
                byte_mask: u16,
                lu_type: u16,
                icm_addr: u64,
                num_of_entries: u32,
                gvmi: u16,
            ) {
                set_ctrl_always_hit_htbl(ste, byte_mask, lu_type, icm_addr, num_of_entries, gvmi)
            }
            fn set_ctrl_always_miss(&self, ste: &mut [u8], miss_addr: u64, _gvmi: u16) {
                set_ctrl_always_miss(ste, miss_addr)
            }
            fn prepare_for_postsend(&self, ste: &mut [u8], size: usize) {
                prepare_for_postsend(ste, size)
            }
            fn format(&self) -> SteFormat {
                $fmt
            }
        }
    };
}

v1_ctrl!(V1, SteFormat::V1);
v1_ctrl!(V2, SteFormat::V2);
