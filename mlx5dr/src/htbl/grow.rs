//! Growth (rehash): a crowded table is rebuilt 4× larger beside the old one, then the one
//! STE or anchor pointing at it is switched by a single write.

use ste_builder::ste::{Connect, STE_CTRL_SIZE, STE_SIZE};

use super::arena::NIL;
use super::error::HtblError;
use super::records::IN_ENTRY;
use super::tables::MatcherTables;
use super::txn::{Failed, Outcome, Txn};
use crate::icm::{Chunk, Entry};
use crate::send::SendRing;

/// How many times larger a table grows (log2).
const LOG_GROWTH: u8 = 2;

/// A table's new layout, before it is switched to.
struct Layout {
    chunk: Chunk,
    /// The table's STEs, chain by chain in old slot order.
    members: Vec<u32>,
    /// Per new slot: the member heading its chain, or NIL.
    heads: Vec<u32>,
    /// Per member: its new slot, and the member after it in its new chain (or NIL).
    slot: Vec<u32>,
    next: Vec<u32>,
    /// Members that collide in the new table, with their new collision entries.
    entries: Vec<(u32, Entry)>,
    /// Per member: its index in `entries`, or NIL.
    entry_of: Vec<u32>,
}

impl Layout {
    fn addr(&self, member: u32) -> u64 {
        match self.entry_of[member as usize] {
            NIL => self.chunk.icm_addr() + (u64::from(self.slot[member as usize]) << 6),
            i => self.entries[i as usize].1.icm_addr(),
        }
    }

    fn miss(&self, member: u32, end: u64) -> u64 {
        match self.next[member as usize] {
            NIL => end,
            n => self.addr(n),
        }
    }
}

impl MatcherTables {
    /// Grows `table` if it is crowded and may grow; a failure is counted and leaves the
    /// table as it was.
    pub(super) fn maybe_grow(&mut self, ring: &mut SendRing, table: u32) {
        let (enabled, max_log) = self.grow_enabled();
        let t = &self.tables[table];
        let log = t.chunk.log_entries();
        let threshold = t.entries().div_ceil(2);
        let crowded = t.collisions >= threshold && t.stes - t.collisions >= threshold;
        if !enabled
            || !crowded
            || log >= max_log
            || !self.level(usize::from(t.level)).may_grow_beyond(log)
        {
            return;
        }
        let new_log = (log + LOG_GROWTH).min(max_log);
        match self.grow_table(ring, table, new_log) {
            Ok(()) => self.counters.grows += 1,
            Err(_) => self.counters.grow_failures += 1,
        }
    }

    /// Rebuilds `table` with `2^new_log` entries and switches its pointer to it.
    pub(super) fn grow_table(
        &mut self,
        ring: &mut SendRing,
        table: u32,
        new_log: u8,
    ) -> Result<(), HtblError> {
        let chunk = self.pool().alloc(new_log)?;
        let layout = match self.plan(table, chunk) {
            Ok(l) => l,
            Err((chunk, entries, e)) => {
                let _ = self.pool().free(chunk);
                for e in entries {
                    let _ = self.slab_mut().free(e);
                }
                return Err(e);
            }
        };
        match self.write_layout(ring, table, &layout) {
            Ok(()) => {
                self.switch(table, layout, true);
                Ok(())
            }
            Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => {
                self.switch(table, layout, true);
                Ok(())
            }
            Err(Failed {
                outcome: Outcome::Unknown,
                error,
            }) => {
                self.switch(table, layout, false);
                Err(HtblError::Send(error))
            }
            Err(Failed {
                outcome: Outcome::Rejected { settled },
                error,
            }) => {
                if settled {
                    let _ = self.pool().free(layout.chunk);
                    for (_, e) in layout.entries {
                        let _ = self.slab_mut().free(e);
                    }
                } else {
                    self.counters.leaked_chunks += 1;
                    self.counters.leaked_entries += layout.entries.len() as u64;
                }
                Err(HtblError::Send(error))
            }
        }
    }

    /// Places every STE of `table` into `chunk`, allocating collision entries.
    #[allow(clippy::type_complexity)]
    fn plan(&mut self, table: u32, chunk: Chunk) -> Result<Layout, (Chunk, Vec<Entry>, HtblError)> {
        let t = &self.tables[table];
        let level = self.level(usize::from(t.level)).clone();
        let size = chunk.entries() as u32;
        let mut members = Vec::with_capacity(t.stes as usize);
        for &head in t.slots.iter() {
            let mut s = head;
            while s != NIL {
                members.push(s);
                s = self.stes[s].next;
            }
        }
        let m = members.len();
        let mut layout = Layout {
            chunk,
            heads: vec![NIL; size as usize],
            slot: vec![0; m],
            next: vec![NIL; m],
            entries: Vec::new(),
            entry_of: vec![NIL; m],
            members: Vec::new(),
        };
        let mut tails = vec![NIL; size as usize];
        for (i, &s) in members.iter().enumerate() {
            let i = i as u32;
            let slot = level.slot(size, &self.stes[s].tag);
            layout.slot[i as usize] = slot;
            let tail = tails[slot as usize];
            if tail == NIL {
                layout.heads[slot as usize] = i;
            } else {
                layout.next[tail as usize] = i;
                match self.slab_mut().alloc() {
                    Ok(e) => {
                        layout.entry_of[i as usize] = layout.entries.len() as u32;
                        layout.entries.push((i, e));
                    }
                    Err(e) => {
                        let entries = layout.entries.into_iter().map(|(_, e)| e).collect();
                        return Err((layout.chunk, entries, e.into()));
                    }
                }
            }
            tails[slot as usize] = i;
        }
        layout.members = members;
        Ok(layout)
    }

    /// Writes the new table and its collision entries, then switches the pointer.
    fn write_layout(&self, ring: &mut SendRing, table: u32, layout: &Layout) -> Result<(), Failed> {
        let enc = self.enc();
        let end = self.miss_of(NIL);
        let level = self.level(usize::from(self.tables[table].level));
        let unused = enc.posted(enc.unused_slot(level, end), STE_SIZE);
        let per_write = (ring.config().max_write / STE_SIZE).max(1);
        let owner = self.tables[table].owner;
        let (base, size) = (layout.chunk.icm_addr(), layout.heads.len());
        let mut buf = Vec::with_capacity(per_write.min(size) * STE_SIZE);
        Txn::new(ring).run(|t| {
            for first in (0..size).step_by(per_write) {
                buf.clear();
                for &head in &layout.heads[first..(first + per_write).min(size)] {
                    if head == NIL {
                        buf.extend_from_slice(&unused);
                    } else {
                        let s = layout.members[head as usize];
                        let image = self.image(s, layout.miss(head, end), None);
                        buf.extend_from_slice(&enc.posted(image, STE_SIZE));
                    }
                }
                let addr = base + (first as u64) * STE_SIZE as u64;
                t.write(&layout.chunk.region(), addr, &buf)?;
            }
            for &(i, ref e) in &layout.entries {
                let s = layout.members[i as usize];
                let image = enc.posted(self.image(s, layout.miss(i, end), None), STE_SIZE);
                t.write(&self.slab_region(e), e.icm_addr(), &image)?;
            }
            let target = (base, size as u32);
            if owner != NIL {
                let image = self.image(owner, self.miss_of(self.stes[owner].next), Some(target));
                let (region, addr) = self.place(owner);
                t.link(
                    &region,
                    addr,
                    &enc.posted(image, STE_CTRL_SIZE)[..STE_CTRL_SIZE],
                )
            } else if let Some(p) = self.start_pointer() {
                let level0 = self.level(0);
                let image = enc.anchor(Connect::Hit {
                    lu_type: level0.lu_type,
                    byte_mask: level0.byte_mask,
                    icm_addr: base,
                    num_entries: size as u32,
                });
                t.link(&p.region, p.icm_addr, &enc.posted(image, STE_SIZE))
            } else {
                // Nothing points at the start table yet.
                Ok(())
            }
        })
    }

    /// Records the switch to the new layout; `free`: hand the old table and entries back.
    fn switch(&mut self, table: u32, layout: Layout, free: bool) {
        let Layout {
            chunk,
            members,
            heads,
            slot,
            next,
            entries,
            entry_of: _,
        } = layout;
        let collisions = entries.len() as u32;
        let mut new_home: Vec<u32> = slot.clone();
        for (i, e) in entries {
            new_home[i as usize] = IN_ENTRY | self.entries_mut().insert(e);
        }
        let mut old_entries = Vec::new();
        for (i, &s) in members.iter().enumerate() {
            let rec = &mut self.stes[s];
            rec.next = match next[i] {
                NIL => NIL,
                n => members[n as usize],
            };
            let old = std::mem::replace(&mut rec.home, new_home[i]);
            if old & IN_ENTRY != 0 {
                old_entries.push(old & !IN_ENTRY);
            }
        }
        let t = &mut self.tables[table];
        let old_chunk = std::mem::replace(&mut t.chunk, chunk);
        t.slots = heads
            .iter()
            .map(|&h| if h == NIL { NIL } else { members[h as usize] })
            .collect();
        t.collisions = collisions;
        for id in old_entries {
            if let Some(e) = self.entries_mut().remove(id) {
                if free {
                    let _ = self.slab_mut().free(e);
                } else {
                    self.counters.leaked_entries += 1;
                }
            }
        }
        self.release_chunk(old_chunk, free);
    }
}
