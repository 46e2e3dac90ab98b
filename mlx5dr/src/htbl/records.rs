//! The host records of a matcher's tables: what the engine keeps per hash table, per STE
//! and per distinct last-STE control block. No copy of ICM lines: everything written is
//! rebuilt from these.

use std::num::NonZeroU32;

use ste_builder::ste::{STE_CTRL_SIZE, STE_TAG_SIZE};

use super::arena::{Arena, NIL};
use crate::icm::Chunk;

/// Marks [`Place::home`] as an index into the collision entries (else a slot index).
pub(super) const IN_ENTRY: u32 = 1 << 31;

/// The chain heads of a hash table's slots: per slot the STE occupying it, or [`NIL`].
///
/// Kept bit-inverted, so that all-zero memory means "every slot unused": a table's
/// heads come from a zeroed allocation, which the system maps lazily, rather than
/// from a fill. (Filling a 2^20-slot table's 4 MiB, page faults included, took 2.5 ms
/// inside the one insert that started its growth.)
#[derive(Debug, Clone)]
pub(super) struct Heads(Box<[u32]>);

impl Heads {
    /// `n` unused slots.
    pub(super) fn new(n: usize) -> Heads {
        Heads(vec![0; n].into_boxed_slice())
    }

    /// The STE heading slot `i`'s chain, or [`NIL`].
    #[inline]
    pub(super) fn get(&self, i: u32) -> u32 {
        !self.0[i as usize]
    }

    /// Makes `s` (or [`NIL`]) the head of slot `i`'s chain.
    #[inline]
    pub(super) fn set(&mut self, i: u32, s: u32) {
        self.0[i as usize] = !s;
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every slot's head, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|&h| !h)
    }

    pub(super) fn host_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.0)
    }
}

/// One hash table: a chunk of `2^log` STEs of one level.
///
/// Invariants: `slots[i]` is the STE occupying slot `i` (the head of its miss chain) or
/// [`NIL`]; `stes` counts the STEs in the table (slot occupants and collision entries),
/// `collisions` those in collision entries.
#[derive(Debug)]
pub(super) struct TableRec {
    pub(super) chunk: Chunk,
    pub(super) slots: Heads,
    /// The STE whose hit address points here; [`NIL`] for the start table.
    pub(super) owner: u32,
    pub(super) level: u8,
    /// Which of its STEs' two places is live (see [`SteRec::place`]).
    pub(super) gen: u8,
    pub(super) stes: u32,
    pub(super) collisions: u32,
    /// log2 of the entries it started with: it never shrinks below them.
    pub(super) floor: u8,
}

impl TableRec {
    pub(super) fn new(chunk: Chunk, owner: u32, level: u8) -> TableRec {
        let slots = Heads::new(chunk.entries() as usize);
        let chunk_log = chunk.log_entries();
        TableRec {
            chunk,
            slots,
            owner,
            level,
            gen: 0,
            stes: 0,
            collisions: 0,
            floor: chunk_log,
        }
    }

    pub(super) fn entries(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The ICM address of slot `slot`.
    pub(super) fn slot_addr(&self, slot: u32) -> u64 {
        self.chunk.icm_addr() + (u64::from(slot) << crate::icm::LOG_STE_SIZE)
    }

    /// The hit address and size STEs pointing here carry.
    pub(super) fn target(&self) -> (u64, u32) {
        (self.chunk.icm_addr(), self.entries())
    }
}

/// Where an STE sits in one version of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    /// The next STE of its miss chain; [`NIL`]: it misses to the end anchor.
    pub(super) next: u32,
    /// `IN_ENTRY | index` into the collision entries, or its slot; [`NIL`]: nowhere.
    pub(super) home: u32,
}

impl Place {
    /// Not in this version of the table.
    pub(super) const NONE: Place = Place {
        next: NIL,
        home: NIL,
    };

    /// The collision entry it names, if it names one.
    #[cfg(test)]
    pub(super) fn entry(self) -> Option<u32> {
        (self.home != NIL && self.home & IN_ENTRY != 0).then_some(self.home & !IN_ENTRY)
    }
}

/// One rule STE, in a slot of its table or in a collision entry.
///
/// 44 bytes (and 44 as `Option<SteRec>` in the arena: `refs` gives the niche).
#[derive(Debug)]
pub(super) struct SteRec {
    /// The tag (what `hash_index` and the compare on insert read).
    pub(super) tag: [u8; STE_TAG_SIZE],
    /// The table it belongs to.
    pub(super) table: u32,
    /// Its place in the live table (`place[table.gen]`) and in the table's other version:
    /// the larger copy while the table grows, the old table's collision entry (to be
    /// freed) for a while after the switch, else [`Place::NONE`]. Switching a grown table
    /// in is flipping its `gen`.
    pub(super) place: [Place; 2],
    /// A level that is not the last: the child table its hit address points to. The last
    /// level: its control block in the [`CtrlStore`].
    pub(super) link: u32,
    /// Rule handles whose chain passes through it. A last-level STE has one, or more
    /// when identical duplicates share it (`TablesConfig::share_identical`).
    pub(super) refs: NonZeroU32,
}

/// A last STE's control block (actions, hit address), shared by every rule whose last
/// STE has the same one (for example all rules that drop, or go to one table).
struct CtrlBlock {
    bytes: [u8; STE_CTRL_SIZE],
    refs: u32,
}

/// Recently interned blocks, by hash.
const RECENT: usize = 64;

/// The control blocks of the last STEs, deduplicated among recently interned equal ones
/// (a small direct-mapped cache finds them; blocks that differ per rule, such as a flow
/// tag per rule, cost their 36 bytes each and nothing more).
pub(super) struct CtrlStore {
    blocks: Arena<CtrlBlock>,
    recent: [u32; RECENT],
}

impl CtrlStore {
    pub(super) fn new() -> CtrlStore {
        CtrlStore {
            blocks: Arena::new(),
            recent: [NIL; RECENT],
        }
    }

    /// A reference to a block with these bytes.
    pub(super) fn intern(&mut self, bytes: &[u8; STE_CTRL_SIZE]) -> u32 {
        let h = hash(bytes) % RECENT;
        let id = self.recent[h];
        if let Some(b) = self.blocks.get_mut(id) {
            if b.bytes == *bytes {
                b.refs += 1;
                return id;
            }
        }
        let id = self.blocks.insert(CtrlBlock {
            bytes: *bytes,
            refs: 1,
        });
        self.recent[h] = id;
        id
    }

    /// Drops one reference.
    pub(super) fn release(&mut self, id: u32) {
        let b = &mut self.blocks[id];
        b.refs -= 1;
        if b.refs == 0 {
            self.blocks.remove(id);
        }
    }

    pub(super) fn get(&self, id: u32) -> &[u8; STE_CTRL_SIZE] {
        &self.blocks[id].bytes
    }

    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(super) fn host_bytes(&self) -> usize {
        self.blocks.host_bytes() + std::mem::size_of::<CtrlStore>()
    }
}

fn hash(bytes: &[u8; STE_CTRL_SIZE]) -> usize {
    let mut h = 0u64;
    for w in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    (h >> 32) as usize
}

impl SteRec {
    /// An STE at `home` of a table whose live places are `place[gen]`.
    pub(super) fn new(tag: [u8; STE_TAG_SIZE], table: u32, gen: u8, home: u32) -> SteRec {
        let mut place = [Place::NONE; 2];
        place[usize::from(gen)] = Place { next: NIL, home };
        SteRec {
            tag,
            table,
            place,
            link: NIL,
            refs: NonZeroU32::MIN,
        }
    }
}

// The per-STE record is the bulk of the host memory per rule.
const _: () = assert!(std::mem::size_of::<Option<SteRec>>() == 44);
const _: () = assert!(std::mem::size_of::<TableRec>() == 48);
