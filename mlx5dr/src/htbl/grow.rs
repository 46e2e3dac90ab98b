//! Growth (rehash), incremental: a crowded table is rebuilt larger beside the old one a
//! few slots per update, then the one STE or anchor pointing at it is switched by a
//! single write.
//!
//! While a table grows, the old table stays the live one. Its slots are *mirrored* into
//! the new table in slot order, [`TablesConfig::growth_step`](super::TablesConfig) old
//! slots after each update of the tables: old slot `s` holds exactly the STEs that go to
//! new slots `s`, `s + m`, `s + 2m`, ... (`m` old entries; sizes are powers of two and
//! the index is the hash modulo the size), so a step writes those new slots whole, and
//! the collision entries behind them. An insert or removal in an old slot already
//! mirrored changes the new table too, with writes that come before its linking write in
//! the old table (the new table is not reachable yet, so their order does not matter).
//! Once every old slot is mirrored, one write switches the pointer; the old table and its
//! collision entries go back to the pool after the flush. One table grows at a time.
//!
//! Any failure while a table grows abandons the growth (the new table was never
//! reachable): the table keeps its size, [`HtblStats::grow_failures`](super::HtblStats)
//! counts it.

use ste_builder::ste::{Connect, Ste, STE_CTRL_SIZE, STE_SIZE};

use super::arena::NIL;
use super::records::IN_ENTRY;
use super::tables::MatcherTables;
use super::txn::{Failed, Outcome, Txn};
use crate::device::IcmRegion;
use crate::icm::{Chunk, Entry};
use crate::send::{SendError, SendRing};

/// How many times larger a table grows (log2).
const LOG_GROWTH: u8 = 2;

/// Old slots mirrored per update by default: up to 1024 new slots (64 KiB, one write).
pub const DEFAULT_GROWTH_STEP: u32 = 256;

/// A table being rebuilt larger.
///
/// Invariants: every STE of an old slot below `cursor` is in the new table (its place in
/// `place`), and no other STE is; `heads` are the new table's chain heads.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) table: u32,
    chunk: Chunk,
    heads: Box<[u32]>,
    cursor: u32,
    /// Per STE id: `[next in the new table, home in the new table]` (home NIL: not there).
    place: Vec<[u32; 2]>,
    collisions: u32,
}

impl Migration {
    fn home(&self, s: u32) -> u32 {
        self.place.get(s as usize).map_or(NIL, |p| p[1])
    }

    fn next(&self, s: u32) -> u32 {
        self.place.get(s as usize).map_or(NIL, |p| p[0])
    }

    fn set(&mut self, s: u32, next: u32, home: u32) {
        let i = s as usize;
        if i >= self.place.len() {
            self.place.resize(i + 1, [NIL, NIL]);
        }
        self.place[i] = [next, home];
    }

    fn set_next(&mut self, s: u32, next: u32) {
        let home = self.home(s);
        self.set(s, next, home);
    }

    /// The last STE of the new chain at `slot` (NIL: unused).
    fn tail(&self, slot: u32) -> u32 {
        let mut s = self.heads[slot as usize];
        if s == NIL {
            return NIL;
        }
        while self.next(s) != NIL {
            s = self.next(s);
        }
        s
    }

    /// The member before `x` in the new chain at `slot` (NIL: `x` heads it).
    fn pred(&self, slot: u32, x: u32) -> u32 {
        let mut p = NIL;
        let mut s = self.heads[slot as usize];
        while s != x && s != NIL {
            p = s;
            s = self.next(s);
        }
        p
    }

    /// The new table's chunk (the rest is bookkeeping).
    pub(super) fn into_chunk(self) -> Chunk {
        self.chunk
    }

    pub(super) fn host_bytes(&self) -> usize {
        std::mem::size_of::<Migration>() + self.heads.len() * 4 + self.place.capacity() * 8
    }
}

/// How an insert into a mirrored old slot is mirrored: the new slot and its chain's tail.
#[derive(Debug, Clone, Copy)]
pub(super) struct MirrorInsert {
    pub(super) slot: u32,
    pub(super) tail: u32,
}

/// How a removal from a mirrored old slot is mirrored.
#[derive(Debug, Clone, Copy)]
pub(super) struct MirrorRemove {
    slot: u32,
    pred: u32,
    next: u32,
}

impl MatcherTables {
    /// After an update: the growing table takes one more step, or `table` (which the
    /// update crowded) starts growing.
    pub(super) fn after_update(&mut self, ring: &mut SendRing, table: Option<u32>) {
        if self.migration.is_some() {
            self.migrate_step(ring);
        } else if let Some(t) = table {
            self.maybe_grow(ring, t);
        }
    }

    /// Starts growing `table` if it is crowded and may grow.
    fn maybe_grow(&mut self, ring: &mut SendRing, table: u32) {
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
        let chunk = match self.pool().alloc(new_log) {
            Ok(c) => c,
            Err(_) => {
                self.counters.grow_failures += 1;
                return;
            }
        };
        self.migration = Some(Migration {
            table,
            heads: vec![NIL; chunk.entries() as usize].into_boxed_slice(),
            chunk,
            cursor: 0,
            place: Vec::new(),
            collisions: 0,
        });
        self.migrate_step(ring);
    }

    /// Mirrors the next old slots into the new table; after the last, switches to it.
    pub(super) fn migrate_step(&mut self, ring: &mut SendRing) {
        let Some(m) = self.migration.as_ref() else {
            return;
        };
        let (table, cursor, new_size) = (m.table, m.cursor, m.heads.len() as u32);
        let old_size = self.tables[table].entries();
        let to = cursor.saturating_add(self.growth_step()).min(old_size);
        let level = self.level(usize::from(self.tables[table].level)).clone();

        // Place the members of old slots cursor..to.
        let mut placed = Vec::new();
        for slot in cursor..to {
            let mut s = self.tables[table].slots[slot as usize];
            while s != NIL {
                placed.push(s);
                s = self.stes[s].next;
            }
        }
        for &s in &placed {
            let ns = level.slot(new_size, &self.stes[s].tag);
            let tail = self.migration.as_ref().map_or(NIL, |m| m.tail(ns));
            let home = if tail == NIL {
                ns
            } else {
                match self.slab_mut().alloc() {
                    Ok(e) => IN_ENTRY | self.entries_mut().insert(e),
                    Err(_) => {
                        self.abort_migration(true, true);
                        return;
                    }
                }
            };
            if let Some(m) = self.migration.as_mut() {
                m.set(s, NIL, home);
                if tail == NIL {
                    m.heads[ns as usize] = s;
                } else {
                    m.set_next(tail, s);
                    m.collisions += 1;
                }
            }
        }
        let last = to == old_size;
        let res = self.write_step(ring, cursor, to, &placed, last);
        match res {
            Ok(())
            | Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => {
                if let Some(m) = self.migration.as_mut() {
                    m.cursor = to;
                }
                if last {
                    self.switch(true);
                }
            }
            Err(Failed {
                outcome: Outcome::Unknown,
                ..
            }) if last => self.switch(false),
            Err(Failed {
                outcome: Outcome::Unknown,
                ..
            }) => self.abort_migration(false, true),
            Err(Failed {
                outcome: Outcome::Rejected { settled },
                ..
            }) => self.abort_migration(settled, true),
        }
    }

    /// The region and address of a member's place in the new table.
    fn new_place(&self, m: &Migration, s: u32) -> (IcmRegion, u64) {
        let home = m.home(s);
        if home & IN_ENTRY != 0 {
            let e = &self.entries_ref()[home & !IN_ENTRY];
            (self.slab_region(e), e.icm_addr())
        } else {
            (
                m.chunk.region(),
                m.chunk.icm_addr() + (u64::from(home) << 6),
            )
        }
    }

    /// Where a member misses to in the new table.
    fn new_miss(&self, m: &Migration, s: u32) -> u64 {
        match m.next(s) {
            NIL => self.miss_of(NIL),
            n => self.new_place(m, n).1,
        }
    }

    /// Writes new slots mirroring old slots `from..to` and the collision entries of
    /// `placed`; `last`: then switches the pointer.
    fn write_step(
        &self,
        ring: &mut SendRing,
        from: u32,
        to: u32,
        placed: &[u32],
        last: bool,
    ) -> Result<(), Failed> {
        let Some(m) = self.migration.as_ref() else {
            return Ok(());
        };
        let enc = self.enc();
        let table = &self.tables[m.table];
        let level = self.level(usize::from(table.level));
        let unused = enc.posted(enc.unused_slot(level, self.miss_of(NIL)), STE_SIZE);
        let per_write = (ring.config().max_write / STE_SIZE).max(1) as u32;
        let (old_size, new_size) = (table.entries(), m.heads.len() as u32);
        let owner = table.owner;
        let mut buf = Vec::with_capacity(((to - from).min(per_write) as usize) * STE_SIZE);
        Txn::new(ring).run(|t| {
            for base in (0..new_size).step_by(old_size as usize) {
                let mut first = base + from;
                while first < base + to {
                    let end = (first + per_write).min(base + to);
                    buf.clear();
                    for &head in &m.heads[first as usize..end as usize] {
                        if head == NIL {
                            buf.extend_from_slice(&unused);
                        } else {
                            let image = self.image(head, self.new_miss(m, head), None);
                            buf.extend_from_slice(&enc.posted(image, STE_SIZE));
                        }
                    }
                    let addr = m.chunk.icm_addr() + u64::from(first) * STE_SIZE as u64;
                    t.write(&m.chunk.region(), addr, &buf)?;
                    first = end;
                }
            }
            for &s in placed {
                if m.home(s) & IN_ENTRY != 0 {
                    let (region, addr) = self.new_place(m, s);
                    let image = enc.posted(self.image(s, self.new_miss(m, s), None), STE_SIZE);
                    t.write(&region, addr, &image)?;
                }
            }
            if !last {
                return Ok(());
            }
            let target = (m.chunk.icm_addr(), new_size);
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
                    icm_addr: target.0,
                    num_entries: target.1,
                });
                t.link(&p.region, p.icm_addr, &enc.posted(image, STE_SIZE))
            } else {
                // Nothing points at the start table yet.
                Ok(())
            }
        })
    }

    /// Makes the new table the table's own; `free`: hand the old one back.
    fn switch(&mut self, free: bool) {
        let Some(m) = self.migration.take() else {
            return;
        };
        let mut old_entries = Vec::new();
        for &head in m.heads.iter() {
            let mut s = head;
            while s != NIL {
                let rec = &mut self.stes[s];
                rec.next = m.next(s);
                let old = std::mem::replace(&mut rec.home, m.home(s));
                if old & IN_ENTRY != 0 {
                    old_entries.push(old & !IN_ENTRY);
                }
                s = m.next(s);
            }
        }
        let t = &mut self.tables[m.table];
        let old_chunk = std::mem::replace(&mut t.chunk, m.chunk);
        t.slots = m.heads;
        t.collisions = m.collisions;
        for id in old_entries {
            self.release_entry(IN_ENTRY | id, free);
        }
        self.release_chunk(old_chunk, free);
        self.counters.grows += 1;
    }

    /// Gives up the growth; `free`: the new table may be handed back (no write to it can
    /// still land); `failed`: count it as a failed growth.
    pub(super) fn abort_migration(&mut self, free: bool, failed: bool) {
        let Some(m) = self.migration.take() else {
            return;
        };
        for &head in m.heads.iter() {
            let mut s = head;
            while s != NIL {
                let home = m.home(s);
                self.release_entry(home, free);
                s = m.next(s);
            }
        }
        self.release_chunk(m.chunk, free);
        if failed {
            self.counters.grow_failures += 1;
        }
    }

    // --- updates of mirrored slots ------------------------------------------------

    /// How an insert of `tag` into old slot `slot` of `table` is mirrored, if it is.
    pub(super) fn mirror_insert(
        &self,
        table: u32,
        slot: u32,
        tag: &[u8; 16],
    ) -> Option<MirrorInsert> {
        let m = self
            .migration
            .as_ref()
            .filter(|m| m.table == table && slot < m.cursor)?;
        let level = self.level(usize::from(self.tables[table].level));
        let ns = level.slot(m.heads.len() as u32, tag);
        Some(MirrorInsert {
            slot: ns,
            tail: m.tail(ns),
        })
    }

    /// Writes the mirrored insert: `image` (the new STE as built, missing to the end
    /// anchor) into its new slot, or into `entry` behind the new chain's tail.
    pub(super) fn write_mirror_insert(
        &self,
        t: &mut Txn<'_>,
        mi: MirrorInsert,
        image: &Ste,
        entry: Option<&Entry>,
    ) -> Result<(), SendError> {
        let Some(m) = self.migration.as_ref() else {
            return Ok(());
        };
        let enc = self.enc();
        let posted = enc.posted(*image, STE_SIZE);
        match entry {
            None => {
                let addr = m.chunk.icm_addr() + (u64::from(mi.slot) << 6);
                t.write(&m.chunk.region(), addr, &posted)
            }
            Some(e) => {
                t.write(&self.slab_region(e), e.icm_addr(), &posted)?;
                let tail = self.image(mi.tail, e.icm_addr(), None);
                let (region, addr) = self.new_place(m, mi.tail);
                t.write(
                    &region,
                    addr,
                    &enc.posted(tail, STE_CTRL_SIZE)[..STE_CTRL_SIZE],
                )
            }
        }
    }

    /// Records the mirrored insert of STE `s`.
    pub(super) fn commit_mirror_insert(&mut self, s: u32, mi: MirrorInsert, entry: Option<Entry>) {
        self.counters.mirrored += 1;
        let home = match entry {
            Some(e) => IN_ENTRY | self.entries_mut().insert(e),
            None => mi.slot,
        };
        let Some(m) = self.migration.as_mut() else {
            self.release_entry(home, true);
            return;
        };
        m.set(s, NIL, home);
        if mi.tail == NIL {
            m.heads[mi.slot as usize] = s;
        } else {
            m.set_next(mi.tail, s);
            m.collisions += 1;
        }
    }

    /// How the removal of STE `x` is mirrored, if it is in the new table.
    pub(super) fn mirror_remove(&self, x: u32) -> Option<MirrorRemove> {
        let m = self.migration.as_ref()?;
        if m.home(x) == NIL {
            return None;
        }
        let level = self.level(usize::from(self.tables[m.table].level));
        let slot = level.slot(m.heads.len() as u32, &self.stes[x].tag);
        Some(MirrorRemove {
            slot,
            pred: m.pred(slot, x),
            next: m.next(x),
        })
    }

    /// Writes the mirrored removal (the same three cases as in the live table).
    pub(super) fn write_mirror_remove(
        &self,
        t: &mut Txn<'_>,
        mr: MirrorRemove,
    ) -> Result<(), SendError> {
        let Some(m) = self.migration.as_ref() else {
            return Ok(());
        };
        let enc = self.enc();
        if mr.pred != NIL {
            let image = self.image(mr.pred, self.new_miss_past(m, mr.next), None);
            let (region, addr) = self.new_place(m, mr.pred);
            return t.write(
                &region,
                addr,
                &enc.posted(image, STE_CTRL_SIZE)[..STE_CTRL_SIZE],
            );
        }
        let image = if mr.next == NIL {
            let level = self.level(usize::from(self.tables[m.table].level));
            enc.unused_slot(level, self.miss_of(NIL))
        } else {
            self.image(mr.next, self.new_miss(m, mr.next), None)
        };
        let addr = m.chunk.icm_addr() + (u64::from(mr.slot) << 6);
        t.write(&m.chunk.region(), addr, &enc.posted(image, STE_SIZE))
    }

    /// Where a miss past the removed member goes: to `next`, or the end anchor.
    fn new_miss_past(&self, m: &Migration, next: u32) -> u64 {
        match next {
            NIL => self.miss_of(NIL),
            n => self.new_place(m, n).1,
        }
    }

    /// Records the mirrored removal of STE `x`; `free`: hand its entries back.
    pub(super) fn commit_mirror_remove(&mut self, x: u32, mr: MirrorRemove, free: bool) {
        self.counters.mirrored += 1;
        let Some(m) = self.migration.as_mut() else {
            return;
        };
        let x_home = m.home(x);
        m.set(x, NIL, NIL);
        let mut release = Vec::with_capacity(2);
        if mr.pred != NIL {
            m.set_next(mr.pred, mr.next);
            m.collisions -= 1;
            release.push(x_home);
        } else if mr.next == NIL {
            m.heads[mr.slot as usize] = NIL;
        } else {
            // The next member now lives in the slot.
            release.push(m.home(mr.next));
            let next_next = m.next(mr.next);
            m.set(mr.next, next_next, mr.slot);
            m.heads[mr.slot as usize] = mr.next;
            m.collisions -= 1;
        }
        for home in release {
            self.release_entry(home, free);
        }
    }
}

#[cfg(test)]
impl MatcherTables {
    /// The growing copy holds exactly the STEs of the copied old slots, each written as
    /// it would be now, and every copied new slot is written.
    pub(super) fn check_migration(
        &self,
        m: &Migration,
        line: &dyn Fn(u64, Ste, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        let table = &self.tables[m.table];
        let level = self.level(usize::from(table.level));
        let (old_size, new_size) = (table.entries(), m.heads.len() as u32);
        let mut copied = 0;
        for slot in 0..m.cursor {
            let mut s = table.slots[slot as usize];
            while s != NIL {
                if m.home(s) == NIL {
                    return Err(format!("STE {s} of copied slot {slot} is not in the copy"));
                }
                copied += 1;
                s = self.stes[s].next;
            }
        }
        let mut in_copy = 0;
        for ns in 0..new_size {
            if ns % old_size >= m.cursor {
                if m.heads[ns as usize] != NIL {
                    return Err(format!(
                        "new slot {ns} is used before its old slot is copied"
                    ));
                }
                continue;
            }
            let addr = m.chunk.icm_addr() + u64::from(ns) * STE_SIZE as u64;
            let mut s = m.heads[ns as usize];
            if s == NIL {
                line(
                    addr,
                    self.enc().unused_slot(level, self.miss_of(NIL)),
                    "new unused slot",
                )?;
            }
            while s != NIL {
                if level.slot(new_size, &self.stes[s].tag) != ns {
                    return Err(format!("STE {s} is in new slot {ns}"));
                }
                let at = self.new_place(m, s).1;
                line(at, self.image(s, self.new_miss(m, s), None), "copied STE")?;
                in_copy += 1;
                s = m.next(s);
            }
        }
        if copied != in_copy {
            return Err(format!(
                "{copied} STEs in copied slots, {in_copy} in the copy"
            ));
        }
        Ok(())
    }
}
