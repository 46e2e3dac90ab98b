//! STE v0 (ConnectX-5) control words.

use super::{SteCtrl, SteFormat, LU_TYPE_DONT_CARE};
use crate::bits::{get, set};
use crate::prm::{ste_general as gen, ste_rx_steering_mult as mult};

/// Entry types of v0.
pub(crate) mod entry_type {
    pub const TX: u64 = 1;
    pub const RX: u64 = 2;
    pub const MODIFY_PKT: u64 = 6;
}

/// The v0 ops table (ConnectX-5).
#[derive(Debug, Clone, Copy, Default)]
pub struct V0;

impl V0 {
    /// Initialises with an explicit entry type (action-only STEs use `MODIFY_PKT`).
    pub(crate) fn init_full(ste: &mut [u8], lu_type: u16, entry_type: u64, gvmi: u16) {
        set(ste, gen::ENTRY_TYPE, entry_type);
        set(ste, gen::ENTRY_SUB_TYPE, lu_type.into());
        set(ste, gen::NEXT_LU_TYPE, LU_TYPE_DONT_CARE.into());
        set(ste, mult::GVMI, gvmi.into());
        set(ste, mult::NEXT_TABLE_BASE_63_48, gvmi.into());
        set(ste, mult::MISS_ADDRESS_63_48, gvmi.into());
    }
}

impl SteCtrl for V0 {
    fn init(&self, ste: &mut [u8], lu_type: u16, is_rx: bool, gvmi: u16) {
        let t = if is_rx {
            entry_type::RX
        } else {
            entry_type::TX
        };
        V0::init_full(ste, lu_type, t, gvmi);
    }

    fn set_next_lu_type(&self, ste: &mut [u8], lu_type: u16) {
        set(ste, gen::NEXT_LU_TYPE, lu_type.into());
    }

    fn next_lu_type(&self, ste: &[u8]) -> u16 {
        get(ste, gen::NEXT_LU_TYPE) as u16
    }

    fn set_miss_addr(&self, ste: &mut [u8], miss_addr: u64) {
        // TX and RX entries keep the miss address at the same place.
        let index = miss_addr >> 6;
        set(ste, mult::MISS_ADDRESS_39_32, index >> 26);
        set(ste, mult::MISS_ADDRESS_31_6, index);
    }

    fn miss_addr(&self, ste: &[u8]) -> u64 {
        let index = get(ste, mult::MISS_ADDRESS_31_6) | (get(ste, mult::MISS_ADDRESS_39_32) << 26);
        index << 6
    }

    fn set_hit_addr(&self, ste: &mut [u8], icm_addr: u64, ht_size: u32) {
        let index = (icm_addr >> 5) | u64::from(ht_size);
        set(ste, gen::NEXT_TABLE_BASE_39_32_SIZE, index >> 27);
        set(ste, gen::NEXT_TABLE_BASE_31_5_SIZE, index);
    }

    fn hit_index(&self, ste: &[u8]) -> u64 {
        (get(ste, gen::NEXT_TABLE_BASE_39_32_SIZE) << 27) | get(ste, gen::NEXT_TABLE_BASE_31_5_SIZE)
    }

    fn set_byte_mask(&self, ste: &mut [u8], byte_mask: u16) {
        set(ste, gen::BYTE_MASK, byte_mask.into());
    }

    fn byte_mask(&self, ste: &[u8]) -> u16 {
        get(ste, gen::BYTE_MASK) as u16
    }

    fn set_hit_gvmi(&self, ste: &mut [u8], gvmi: u16) {
        set(ste, gen::NEXT_TABLE_BASE_63_48, gvmi.into());
    }

    fn set_ctrl_always_hit_htbl(
        &self,
        ste: &mut [u8],
        byte_mask: u16,
        lu_type: u16,
        icm_addr: u64,
        num_of_entries: u32,
        _gvmi: u16,
    ) {
        self.set_next_lu_type(ste, lu_type);
        self.set_hit_addr(ste, icm_addr, num_of_entries);
        self.set_byte_mask(ste, byte_mask);
    }

    fn set_ctrl_always_miss(&self, ste: &mut [u8], miss_addr: u64, _gvmi: u16) {
        self.set_next_lu_type(ste, LU_TYPE_DONT_CARE);
        self.set_miss_addr(ste, miss_addr);
    }

    fn prepare_for_postsend(&self, _ste: &mut [u8], _size: usize) {
        // v0 hardware takes the entry as built.
    }

    fn format(&self) -> SteFormat {
        SteFormat::V0
    }
}
