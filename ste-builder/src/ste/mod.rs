//! STE (steering table entry) formats and their control words.
//!
//! An STE is 64 bytes: a 32-byte control block (entry type, lookup type, next table
//! address and size, miss address, actions…), then a 16-byte tag and a 16-byte bit mask
//! (definer-based "match" STEs of v1/v2 use the 32 bytes as one tag). Three generations
//! exist: v0 (ConnectX-5), v1 (ConnectX-6 Dx) and v2 (ConnectX-7, v1's control layout).
//! Each generation is one ops table ([`SteCtrl`]) over the shared logic in this module.

pub(crate) mod v0;
pub(crate) mod v1;

pub use v0::V0;
pub use v1::{V1, V2};

/// Size of an STE in bytes.
pub const STE_SIZE: usize = 64;
/// Size of the control block at the start of an STE.
pub const STE_CTRL_SIZE: usize = 32;
/// Size of a legacy tag (bytes 32..48 of an STE as built).
pub const STE_TAG_SIZE: usize = 16;
/// Size of a legacy bit mask (bytes 48..64 of an STE as built).
pub const STE_MASK_SIZE: usize = 16;
/// The "don't care" lookup type of anchors and always-hit/miss entries.
pub const LU_TYPE_DONT_CARE: u16 = 0x0f;
/// The first tag byte of an always-miss entry: with an all-zero mask the masked key is
/// zero and can never equal a non-zero tag.
pub const ALWAYS_MISS_TAG_BYTE: u8 = 0xdc;

/// One STE as bytes.
pub type Ste = [u8; STE_SIZE];

/// A steering format generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteFormat {
    /// ConnectX-5.
    V0,
    /// ConnectX-6 Dx.
    V1,
    /// ConnectX-7.
    V2,
}

impl SteFormat {
    /// The format for a device's `steering_format_version` capability.
    pub fn from_version(version: u8) -> Option<SteFormat> {
        match version {
            0 => Some(SteFormat::V0),
            1 => Some(SteFormat::V1),
            2 => Some(SteFormat::V2),
            _ => None,
        }
    }

    /// The capability value of this format.
    pub fn version(self) -> u8 {
        self as u8
    }

    /// The control-word operations of this format.
    pub fn ctrl(self) -> &'static dyn SteCtrl {
        match self {
            SteFormat::V0 => &V0,
            SteFormat::V1 => &V1,
            SteFormat::V2 => &V2,
        }
    }
}

impl std::fmt::Display for SteFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "STEv{}", self.version())
    }
}

/// Control-word operations of one STE format.
///
/// Addresses: hardware keeps bits 6..39 of a miss address and bits 5..39 of a hit address;
/// the setters truncate like the hardware, and the getters return what was kept.
pub trait SteCtrl: Send + Sync {
    /// Initialises an STE for `lu_type` on the RX or TX side of vhca `gvmi`: entry type,
    /// lookup type, "don't care" next lookup type, and the gvmi of hit and miss addresses.
    fn init(&self, ste: &mut [u8], lu_type: u16, is_rx: bool, gvmi: u16);
    /// Sets the lookup type of the table the hit address points to.
    fn set_next_lu_type(&self, ste: &mut [u8], lu_type: u16);
    /// The lookup type of the next table.
    fn next_lu_type(&self, ste: &[u8]) -> u16;
    /// Sets the miss address (64-byte aligned ICM address).
    fn set_miss_addr(&self, ste: &mut [u8], miss_addr: u64);
    /// The miss address as hardware follows it (bits 6..39).
    fn miss_addr(&self, ste: &[u8]) -> u64;
    /// The miss address as rdma-core 44's getter reads it back: its 32-bit shift drops
    /// bits 38 and 39. Only for comparing with rdma-core; use [`SteCtrl::miss_addr`].
    fn miss_addr_as_rdma_core(&self, ste: &[u8]) -> u64 {
        self.miss_addr(ste) & ((1 << 38) - 1)
    }
    /// Sets the hit address together with the next table's size (a power of two):
    /// hardware stores `(icm_addr >> 5) | ht_size`.
    fn set_hit_addr(&self, ste: &mut [u8], icm_addr: u64, ht_size: u32);
    /// The raw 35-bit hit index `(hit_addr >> 5) | num_entries`.
    fn hit_index(&self, ste: &[u8]) -> u64;
    /// Sets the byte mask of the next table's hash.
    fn set_byte_mask(&self, ste: &mut [u8], byte_mask: u16);
    /// The byte mask of the next table's hash.
    fn byte_mask(&self, ste: &[u8]) -> u16;
    /// Sets the gvmi of the hit address (forwarding into another vhca's tables).
    fn set_hit_gvmi(&self, ste: &mut [u8], gvmi: u16);
    /// Makes the control block hit into a table (anchors, shared STEs).
    fn set_ctrl_always_hit_htbl(
        &self,
        ste: &mut [u8],
        byte_mask: u16,
        lu_type: u16,
        icm_addr: u64,
        num_of_entries: u32,
        gvmi: u16,
    );
    /// Makes the control block miss to `miss_addr`.
    fn set_ctrl_always_miss(&self, ste: &mut [u8], miss_addr: u64, gvmi: u16);
    /// Turns an STE as built into the bytes posted to hardware (`size` is how many bytes
    /// are written: 32 for a control-only update, 64 for a full entry).
    fn prepare_for_postsend(&self, ste: &mut [u8], size: usize);
    /// The format.
    fn format(&self) -> SteFormat;
}

/// The hit address and next-table size encoded in a hit index.
///
/// The index is `(addr >> 5) | num_entries` with `num_entries` a power of two and the
/// table aligned to `num_entries * 64`, so the lowest set bit is the size. Returns `None`
/// for an index with no bit set.
pub fn decode_hit_index(index: u64) -> Option<(u64, u32)> {
    if index == 0 {
        return None;
    }
    let num = index & index.wrapping_neg();
    Some(((index - num) << 5, num as u32))
}

/// Where a formatted entry leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Always hit into the table at `icm_addr` of `num_entries` entries, hashed with
    /// `byte_mask` under lookup type `lu_type`.
    Hit {
        /// Next table's lookup type.
        lu_type: u16,
        /// Next table's byte mask.
        byte_mask: u16,
        /// Next table's ICM address.
        icm_addr: u64,
        /// Next table's size.
        num_entries: u32,
    },
    /// Always miss to `miss_addr`.
    Miss {
        /// Where to go.
        miss_addr: u64,
    },
}

/// Writes an anchor-style entry of a table whose lookup type is `htbl_lu_type`: an
/// always-hit entry (zero tag and mask) into the next table, or an always-miss entry.
pub fn set_formatted_ste(
    ctrl: &dyn SteCtrl,
    ste: &mut [u8],
    gvmi: u16,
    is_rx: bool,
    htbl_lu_type: u16,
    connect: Connect,
) {
    ctrl.init(ste, htbl_lu_type, is_rx, gvmi);
    match connect {
        Connect::Hit {
            lu_type,
            byte_mask,
            icm_addr,
            num_entries,
        } => {
            ctrl.set_ctrl_always_hit_htbl(ste, byte_mask, lu_type, icm_addr, num_entries, gvmi);
            set_always_hit(ste);
        }
        Connect::Miss { miss_addr } => {
            ctrl.set_ctrl_always_miss(ste, miss_addr, gvmi);
            set_always_miss(ste);
        }
    }
}

/// Zeroes tag and mask: every key matches.
pub fn set_always_hit(ste: &mut [u8]) {
    ste[STE_CTRL_SIZE..STE_SIZE].fill(0);
}

/// A tag no masked key can equal (the mask's first byte is zero, the tag's is not).
pub fn set_always_miss(ste: &mut [u8]) {
    ste[STE_CTRL_SIZE] = ALWAYS_MISS_TAG_BYTE;
    ste[STE_CTRL_SIZE + STE_TAG_SIZE] = 0;
}

/// Copies a legacy bit mask into the mask half of an STE as built (`dr_ste_set_bit_mask`).
pub fn set_bit_mask(ste: &mut [u8], bit_mask: &[u8; STE_MASK_SIZE]) {
    ste[STE_CTRL_SIZE + STE_TAG_SIZE..STE_SIZE].copy_from_slice(bit_mask);
}

/// The tag area of an STE as built.
pub fn tag_mut(ste: &mut [u8]) -> &mut [u8] {
    &mut ste[STE_CTRL_SIZE..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_index_round_trip() {
        assert_eq!(
            decode_hit_index((0x0010_0004_0000 >> 5) | 4096),
            Some((0x0010_0004_0000, 4096))
        );
        assert_eq!(
            decode_hit_index((0x7ff0_0000 >> 5) | 1),
            Some((0x7ff0_0000, 1))
        );
        assert_eq!(decode_hit_index(0), None);
    }
}
