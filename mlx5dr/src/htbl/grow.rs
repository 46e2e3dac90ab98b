//! Growth and shrinking (rehash), incremental: a crowded table is rebuilt larger, and a
//! sparse one smaller, beside the old one a few slots per update, then the one STE or
//! anchor pointing at it is switched by a single write.
//!
//! - **Copy.** The old table stays the live one. Its slots are copied into the new table
//!   a group at a time, [`TablesConfig::growth_step`](super::TablesConfig) groups after
//!   each update of the tables. Sizes are powers of two and the index is the hash modulo
//!   the size, so with `m` the smaller of the two sizes, group `g < m` is old slots `g`,
//!   `g + m`, ... and new slots `g`, `g + m`, ..., and no STE leaves its group: growing,
//!   old slot `g` holds exactly the STEs of new slots `g`, `g + m`, `g + 2m`, ...;
//!   shrinking, new slot `g` gathers the STEs of old slots `g`, `g + m`, .... A step
//!   writes its groups' new slots whole, and the collision entries behind them (entries
//!   adjacent in ICM in one write). Each STE's place in the copy is its spare place
//!   (`SteRec::place`). An insert or removal in a group already copied changes the copy
//!   too, with writes that come before its linking write in the old table (the copy is
//!   not reachable yet, so their order does not matter).
//! - **Switch.** Once every group is copied, one write points the table's pointer at
//!   the copy; on the host, the table's live place index flips (constant time) and the
//!   old chunk goes back to the pool.
//! - **Sweep.** The spare places now name the old table's collision entries; they go back
//!   to the slab a step of slots per update, after which another table may migrate.
//!
//! A table grows when crowded ([`TablesConfig::growth`](super::TablesConfig)) and, with
//! [`TablesConfig::shrink`](super::TablesConfig), shrinks by the same factor when a
//! removal leaves it holding fewer than a sixteenth of its entries' worth of STEs, down
//! to the size it started with (so it is then at most a quarter full, well below where
//! it would grow again). One table migrates at a time. Any failure that may have touched
//! the copy abandons the migration (the copy was never reachable): the table keeps its
//! size, and [`HtblStats::grow_failures`](super::HtblStats) counts it.

use ste_builder::ste::{Connect, Ste, STE_CTRL_SIZE, STE_SIZE, STE_TAG_SIZE};

use super::arena::NIL;
use super::encode::Level;
use super::records::{Heads, Place, IN_ENTRY};
use super::tables::MatcherTables;
use super::txn::{Failed, Outcome, Txn};
use crate::device::IcmRegion;
use crate::icm::{Chunk, Entry};
use crate::send::{SendError, SendRing, WriteTag};

/// Control blocks whose image a copy step keeps (see `write_step`).
const TAIL_IMAGES: usize = 4;

/// How many times larger a crowded table grows ([`TablesConfig::growth`]).
///
/// [`TablesConfig::growth`]: super::TablesConfig::growth
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Growth {
    /// Fourfold, as rdma-core grows (the default): few growths, but a table may end up
    /// to four times larger than its rules need (at 1 M 5-tuple rules a 2^20-entry
    /// table, 64 MiB of ICM, holds them; at 300 000 the same table does).
    #[default]
    Quadruple,
    /// Twofold: a table at most about twice as large as its rules need, for about
    /// twice the growths, each copying every STE of the table.
    Double,
}

impl Growth {
    /// log2 of the factor.
    pub(super) fn log(self) -> u8 {
        match self {
            Growth::Quadruple => 2,
            Growth::Double => 1,
        }
    }
}

/// The largest [`Growth::log`].
const MAX_LOG_GROWTH: u8 = 2;

/// Groups of slots copied per update by default: up to 256 new slots (16 KiB, one write)
/// when growing, 64 when shrinking.
pub const DEFAULT_GROWTH_STEP: u32 = 64;

/// A table shrinks once it holds fewer STEs than its entries over this: after a fourfold
/// shrink it is then less than a quarter full, where growing takes more than one STE per
/// entry, so a table does not go back and forth between two sizes.
const SPARSE: u64 = 16;

/// The growth or shrinking of one table.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) table: u32,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Copy(Copy),
    /// Slots below `cursor` of the (switched) table are swept; `free`: hand the old
    /// entries back (else keep them out of use: the switch may not have landed).
    Sweep {
        cursor: u32,
        free: bool,
        /// Scratch of the steps: the old entries a step hands back.
        homes: Vec<u32>,
    },
}

/// The copy being filled.
///
/// Invariants: the STEs of the groups below `cursor` (old slots whose index modulo the
/// smaller size is below it; see the module documentation) are in the copy (their spare
/// places), no other STE is; `heads` are the copy's chain heads.
#[derive(Debug)]
struct Copy {
    chunk: Chunk,
    heads: Heads,
    cursor: u32,
    collisions: u32,
    /// Scratch of the steps, kept so that a step allocates nothing.
    scratch: Scratch,
}

/// What the steps of one copy reuse.
#[derive(Debug, Default)]
struct Scratch {
    /// The STEs a step put in collision entries.
    in_entries: Vec<u32>,
    /// The images of a step's collision entries.
    images: Vec<u8>,
    /// The images of a run of new slots: the level's unused-slot image in every slot but
    /// those listed in `dirty` (byte offsets), which hold a copied STE's image from the
    /// last run. Most new slots are unused (the copy is 4x the size), so a run rewrites
    /// only the slots the last run used and the slots it uses itself.
    run: Vec<u8>,
    dirty: Vec<usize>,
}

impl Scratch {
    fn host_bytes(&self) -> usize {
        self.in_entries.capacity() * 4
            + self.images.capacity()
            + self.run.capacity()
            + self.dirty.capacity() * std::mem::size_of::<usize>()
    }

    /// `run` as `slots` unused slots (`unused` the level's posted image), ready for a run
    /// to put its copied STEs in (noting them in `dirty`).
    fn clean_run_parts<'r>(
        run: &'r mut Vec<u8>,
        dirty: &mut Vec<usize>,
        unused: &Ste,
        slots: usize,
    ) -> &'r mut [u8] {
        for &at in dirty.iter() {
            run[at..at + STE_SIZE].copy_from_slice(unused);
        }
        dirty.clear();
        while run.len() < slots * STE_SIZE {
            run.extend_from_slice(unused);
        }
        &mut run[..slots * STE_SIZE]
    }
}

impl Copy {
    fn slot_addr(&self, slot: u32) -> u64 {
        self.chunk.icm_addr() + u64::from(slot) * STE_SIZE as u64
    }

    /// The copy's entries.
    fn size(&self) -> u32 {
        self.heads.len() as u32
    }

    /// Whether slot `slot` of the old table (of `old_size` entries) is copied: its group
    /// is below the cursor.
    fn has_copied(&self, old_size: u32, slot: u32) -> bool {
        slot & (groups(old_size, self.size()) - 1) < self.cursor
    }
}

/// The groups of a copy between tables of `old_size` and `new_size` entries: the
/// smaller size (see the module documentation).
fn groups(old_size: u32, new_size: u32) -> u32 {
    old_size.min(new_size)
}

impl Migration {
    fn copy(&self) -> Option<&Copy> {
        match &self.phase {
            Phase::Copy(c) => Some(c),
            Phase::Sweep { .. } => None,
        }
    }

    fn copy_mut(&mut self) -> Option<&mut Copy> {
        match &mut self.phase {
            Phase::Copy(c) => Some(c),
            Phase::Sweep { .. } => None,
        }
    }

    /// The copy's chunk, if the table is still being copied.
    pub(super) fn into_chunk(self) -> Option<Chunk> {
        match self.phase {
            Phase::Copy(c) => Some(c.chunk),
            Phase::Sweep { .. } => None,
        }
    }

    pub(super) fn host_bytes(&self) -> usize {
        std::mem::size_of::<Migration>()
            + match &self.phase {
                Phase::Copy(c) => c.heads.host_bytes() + c.scratch.host_bytes(),
                Phase::Sweep { homes, .. } => homes.capacity() * 4,
            }
    }
}

/// How an insert into a copied old slot is mirrored: the new slot and its chain's tail.
#[derive(Debug, Clone, Copy)]
pub(super) struct MirrorInsert {
    pub(super) slot: u32,
    pub(super) tail: u32,
}

/// How a removal from a copied old slot is mirrored.
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
        match self.migration.as_ref().map(|m| &m.phase) {
            Some(Phase::Copy(_)) => self.copy_step(ring),
            Some(Phase::Sweep { .. }) => self.sweep_step(self.growth_step().saturating_mul(4)),
            None => {
                if let Some(t) = table {
                    self.maybe_grow(ring, t);
                }
            }
        }
    }

    /// After a removal from `table`: the migrating table takes one more step, or
    /// `table`, if the removal left it sparse, starts shrinking.
    pub(super) fn after_removal(&mut self, ring: &mut SendRing, table: u32) {
        if self.migration.is_some() {
            self.after_update(ring, None);
        } else {
            self.maybe_shrink(ring, table);
        }
    }

    /// True unless the old entries being swept must be kept out of use.
    pub(super) fn sweep_frees(&self) -> bool {
        !matches!(
            self.migration.as_ref().map(|m| &m.phase),
            Some(Phase::Sweep { free: false, .. })
        )
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
        let new_log = (log + self.growth().log()).min(max_log);
        self.migrate(ring, table, new_log);
    }

    /// Starts shrinking `table` if it holds fewer than a sixteenth of its entries' worth
    /// of STEs and is larger than it started.
    fn maybe_shrink(&mut self, ring: &mut SendRing, table: u32) {
        if !self.shrink_enabled() {
            return;
        }
        let Some(t) = self.tables.get(table) else {
            return;
        };
        let log = t.chunk.log_entries();
        let sparse = u64::from(t.stes) * SPARSE < u64::from(t.entries());
        let new_log = log.saturating_sub(self.growth().log()).max(t.floor);
        if sparse && new_log < log {
            self.migrate(ring, table, new_log);
        }
    }

    /// Starts copying `table` into a new table of `2^new_log` entries.
    fn migrate(&mut self, ring: &mut SendRing, table: u32, new_log: u8) {
        let chunk = match self.pool().alloc(new_log) {
            Ok(c) => c,
            Err(_) => {
                self.counters.grow_failures += 1;
                return;
            }
        };
        self.migration = Some(Migration {
            table,
            phase: Phase::Copy(Copy {
                heads: Heads::new(chunk.entries() as usize),
                chunk,
                cursor: 0,
                collisions: 0,
                scratch: Scratch::default(),
            }),
        });
        self.copy_step(ring);
    }

    /// Copies the next old slots; after the last, switches to the copy.
    fn copy_step(&mut self, ring: &mut SendRing) {
        let Some((table, c)) = self
            .migration
            .as_mut()
            .and_then(|m| Some((m.table, m.copy_mut()?)))
        else {
            return;
        };
        let (cursor, new_size) = (c.cursor, c.size());
        let mut scratch = std::mem::take(&mut c.scratch);
        scratch.in_entries.clear();
        let t = &self.tables[table];
        let (old_size, gen) = (t.entries(), usize::from(t.gen));
        let spare = 1 - gen;
        let groups = groups(old_size, new_size);
        let log_groups = groups.trailing_zeros();
        let to = cursor.saturating_add(self.growth_step()).min(groups);
        let level = self.level(usize::from(t.level)).clone();

        // Place the STEs of groups cursor..to. Group `g`'s new slots `g + k * groups`
        // stay empty until `g` is copied (see `Copy`), so each new chain is built here
        // from its first STE on: `tails[k]`. The STEs behind a head get their collision
        // entries below, in chain order.
        {
            let MatcherTables {
                tables,
                stes,
                migration,
                ..
            } = &mut *self;
            let Some(c) = migration.as_mut().and_then(Migration::copy_mut) else {
                return;
            };
            let slots = &tables[table].slots;
            for group in cursor..to {
                let mut tails = [NIL; 1 << MAX_LOG_GROWTH];
                for old in (group..old_size).step_by(groups as usize) {
                    let mut s = slots.get(old);
                    while s != NIL {
                        let rec = &mut stes[s];
                        let next = rec.place[gen].next;
                        let ns = Level::index(level.hash(&rec.tag), new_size);
                        rec.place[spare] = Place {
                            next: NIL,
                            home: ns,
                        };
                        let tail = std::mem::replace(&mut tails[(ns >> log_groups) as usize], s);
                        if tail == NIL {
                            c.heads.set(ns, s);
                        } else {
                            stes[tail].place[spare].next = s;
                            c.collisions += 1;
                            scratch.in_entries.push(s);
                        }
                        s = next;
                    }
                }
            }
        }
        for &s in &scratch.in_entries {
            match self.slab_mut().alloc() {
                Ok(e) => self.stes[s].place[spare].home = IN_ENTRY | self.entries_mut().insert(e),
                Err(_) => {
                    // The STEs still homed in a slot hold no entry.
                    self.abort_migration(true, true);
                    return;
                }
            }
        }
        let last = to == groups;
        let res = self.write_step(ring, cursor, to, &mut scratch, last);
        if let Some(c) = self.migration.as_mut().and_then(Migration::copy_mut) {
            c.scratch = scratch;
        }
        let res = res.map(|posted| self.deferred_mut().posted(posted));
        match res {
            Ok(())
            | Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => {
                self.copy_mut().cursor = to;
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

    /// The copy being filled (only called while there is one).
    fn copy_ref(&self) -> &Copy {
        match self.migration.as_ref().and_then(Migration::copy) {
            Some(c) => c,
            None => panic!("no table is being copied"),
        }
    }

    fn copy_mut(&mut self) -> &mut Copy {
        match self.migration.as_mut().and_then(Migration::copy_mut) {
            Some(c) => c,
            None => panic!("no table is being copied"),
        }
    }

    /// The last STE of the copy's chain at `slot` (NIL: unused).
    fn copy_tail(&self, slot: u32) -> u32 {
        let mut s = self.copy_ref().heads.get(slot);
        if s == NIL {
            return NIL;
        }
        while self.spare(s).next != NIL {
            s = self.spare(s).next;
        }
        s
    }

    /// The STE before `x` in the copy's chain at `slot` (NIL: `x` heads it).
    fn copy_pred(&self, slot: u32, x: u32) -> u32 {
        let mut p = NIL;
        let mut s = self.copy_ref().heads.get(slot);
        while s != x && s != NIL {
            p = s;
            s = self.spare(s).next;
        }
        p
    }

    /// The region and address of an STE's place in the copy.
    fn copy_place(&self, s: u32) -> (IcmRegion, u64) {
        let home = self.spare(s).home;
        if home & IN_ENTRY != 0 {
            let e = &self.entries_ref()[home & !IN_ENTRY];
            (self.slab_region(e), e.icm_addr())
        } else {
            let c = self.copy_ref();
            (c.chunk.region(), c.slot_addr(home))
        }
    }

    /// Where a miss to `next` goes in the copy (NIL: the end anchor).
    fn copy_miss(&self, next: u32) -> u64 {
        match next {
            NIL => self.miss_of(NIL),
            n => self.copy_place(n).1,
        }
    }

    /// Writes the new slots of groups `from..to` and the collision entries of the STEs
    /// `scratch.in_entries` (the step put them there); `last`: then switches the pointer.
    ///
    /// Images are built where they are posted from: an unused slot is the level's
    /// constant image (kept in `scratch.run` from one run to the next), a copied STE its
    /// image with the copy's miss address. Collision entries that lie next to each other
    /// in ICM (the slab hands out a block's entries in order) go in one write.
    fn write_step(
        &self,
        ring: &mut SendRing,
        from: u32,
        to: u32,
        scratch: &mut Scratch,
        last: bool,
    ) -> Result<Option<WriteTag>, Failed> {
        let c = self.copy_ref();
        let table = self.migration.as_ref().map_or(NIL, |m| m.table);
        let enc = self.enc();
        let t_rec = &self.tables[table];
        let level = usize::from(t_rec.level);
        let unused = self.unused_posted(level);
        let spare = 1 - usize::from(t_rec.gen);
        let per_write = (ring.config().max_write / STE_SIZE).max(1) as u32;
        let (old_size, new_size) = (t_rec.entries(), c.heads.len() as u32);
        let owner = t_rec.owner;
        let end = self.miss_of(NIL);
        // The last level's STEs (every rule's) are built here from their records; an
        // inner STE, rarer, as everywhere else.
        let last_level = (level + 1 == self.lookups()).then(|| self.level(level));
        // Most copied STEs end their chain in the copy (growth splits chains), and the
        // rules of a matcher use few control blocks (one per distinct action list):
        // such an STE is its control block's image, missing to the end anchor, with its
        // own tag. Those images are built once per step and block (a few kept, by the
        // block's id) rather than field by field for every STE.
        let mut tail_images = [(NIL, [0u8; STE_SIZE]); TAIL_IMAGES];
        // An STE's image in the copy, posted, into `out` (one STE).
        let mut copied = |s: u32, out: &mut [u8]| {
            let rec = &self.stes[s];
            let next = rec.place[spare].next;
            match last_level {
                Some(l) if next == NIL => {
                    let (link, image) = &mut tail_images[rec.link as usize % TAIL_IMAGES];
                    if *link != rec.link {
                        *link = rec.link;
                        *image = enc.last_ste(self.ctrls.get(rec.link), l, &[0; STE_TAG_SIZE], end);
                    }
                    out.copy_from_slice(image);
                    // As `Encoder::last_ste_into` would build it: its other fields (the
                    // mask, the miss address) are the image's already.
                    out[STE_CTRL_SIZE..STE_CTRL_SIZE + STE_TAG_SIZE].copy_from_slice(&rec.tag);
                }
                _ => {
                    let miss = match next {
                        NIL => end,
                        n => {
                            let home = self.stes[n].place[spare].home;
                            if home & IN_ENTRY != 0 {
                                self.entries_ref()[home & !IN_ENTRY].icm_addr()
                            } else {
                                c.slot_addr(home)
                            }
                        }
                    };
                    match last_level {
                        Some(l) => {
                            enc.last_ste_into(out, self.ctrls.get(rec.link), l, &rec.tag, miss)
                        }
                        None => self.image_into(out, s, miss, None),
                    }
                }
            }
            enc.post_in_place(out);
        };
        let Scratch {
            in_entries,
            images,
            run,
            dirty,
        } = scratch;
        Txn::with(ring, self.completion()).run(|t| {
            for base in (0..new_size).step_by(groups(old_size, new_size) as usize) {
                let mut first = base + from;
                while first < base + to {
                    let end = (first + per_write).min(base + to);
                    let buf = Scratch::clean_run_parts(run, dirty, unused, (end - first) as usize);
                    for (i, head) in (first..end).map(|i| c.heads.get(i)).enumerate() {
                        if head != NIL {
                            let at = i * STE_SIZE;
                            copied(head, &mut buf[at..at + STE_SIZE]);
                            dirty.push(at);
                        }
                    }
                    t.write(&c.chunk.region(), c.slot_addr(first), buf)?;
                    first = end;
                }
            }
            // Runs of adjacent entries, each one write.
            images.clear();
            let mut run: Option<(IcmRegion, u64)> = None;
            let mut run_start = 0;
            for &s in in_entries.iter() {
                let (region, addr) = self.copy_place(s);
                let at = images.len();
                let slots = ((at - run_start) / STE_SIZE) as u64;
                let extends = run.is_some_and(|(r, a)| {
                    r == region
                        && a + slots * STE_SIZE as u64 == addr
                        && slots < u64::from(per_write)
                });
                if !extends {
                    if let Some((r, a)) = run {
                        t.write(&r, a, &images[run_start..at])?;
                    }
                    run = Some((region, addr));
                    run_start = at;
                }
                images.resize(at + STE_SIZE, 0);
                copied(s, &mut images[at..]);
            }
            if let Some((r, a)) = run {
                t.write(&r, a, &images[run_start..])?;
            }
            if !last {
                return Ok(());
            }
            let target = (c.chunk.icm_addr(), new_size);
            if owner != NIL {
                let miss = self.miss_of(self.at(owner).next);
                let image = self.image(owner, miss, Some(target));
                let (region, addr) = self.place(owner);
                let posted = enc.posted(image, STE_CTRL_SIZE);
                t.link(&region, addr, &posted[..STE_CTRL_SIZE])
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

    /// Makes the copy the live table (flipping which place of its STEs is live); the old
    /// chunk goes back to the pool (`free`) or stays out of use, and the sweep begins.
    fn switch(&mut self, free: bool) {
        let Some(m) = self.migration.as_mut() else {
            return;
        };
        let table = m.table;
        let sweep = Phase::Sweep {
            cursor: 0,
            free,
            homes: Vec::new(),
        };
        let phase = std::mem::replace(&mut m.phase, sweep);
        let Phase::Copy(mut c) = phase else {
            return;
        };
        if let Phase::Sweep { homes, .. } = &mut m.phase {
            *homes = std::mem::take(&mut c.scratch.in_entries);
        }
        let t = &mut self.tables[table];
        t.gen ^= 1;
        let grew = c.chunk.log_entries() > t.chunk.log_entries();
        let old_chunk = std::mem::replace(&mut t.chunk, c.chunk);
        t.slots = c.heads;
        t.collisions = c.collisions;
        self.release_chunk(old_chunk, free);
        if grew {
            self.counters.grows += 1;
        } else {
            self.counters.shrinks += 1;
        }
    }

    /// Hands back the old collision entries of the next `slots` slots of the switched
    /// table; the migration ends when all are swept.
    fn sweep_step(&mut self, slots: u32) {
        let MatcherTables {
            tables,
            stes,
            migration,
            ..
        } = &mut *self;
        let Some(Migration {
            table,
            phase:
                Phase::Sweep {
                    cursor,
                    free,
                    homes,
                },
        }) = migration.as_mut()
        else {
            return;
        };
        let t = &tables[*table];
        let (size, gen) = (t.entries(), usize::from(t.gen));
        let (from, to) = (*cursor, cursor.saturating_add(slots.max(1)).min(size));
        *cursor = to;
        let free = *free;
        let mut old_homes = std::mem::take(homes);
        old_homes.clear();
        for slot in from..to {
            let mut s = t.slots.get(slot);
            // Every STE of the chain is of this table: its places are `place[gen]` (live)
            // and `place[1 - gen]` (the old table's).
            while s != NIL {
                let rec = &mut stes[s];
                let old = std::mem::replace(&mut rec.place[1 - gen], Place::NONE);
                s = rec.place[gen].next;
                if old.home != NIL && old.home & IN_ENTRY != 0 {
                    old_homes.push(old.home);
                }
            }
        }
        for &home in &old_homes {
            self.release_entry(home, free);
        }
        match self.migration.as_mut().map(|m| &mut m.phase) {
            _ if to == size => self.migration = None,
            Some(Phase::Sweep { homes, .. }) => *homes = old_homes,
            _ => {}
        }
    }

    /// Gives up the migration. While copying: the copy and its entries go back to the
    /// pool (`free`: no write to them can still land) or stay out of use, and `failed`
    /// counts it in `grow_failures`. While sweeping: the sweep finishes now.
    pub(super) fn abort_migration(&mut self, free: bool, failed: bool) {
        let Some(m) = self.migration.as_ref() else {
            return;
        };
        if let Phase::Sweep { .. } = m.phase {
            self.sweep_step(u32::MAX);
            return;
        }
        let heads = self.copy_ref().heads.clone();
        for head in heads.iter() {
            let mut s = head;
            while s != NIL {
                let p = std::mem::replace(self.spare_mut(s), Place::NONE);
                self.release_entry(p.home, free);
                s = p.next;
            }
        }
        if let Some(Migration {
            phase: Phase::Copy(c),
            ..
        }) = self.migration.take()
        {
            self.release_chunk(c.chunk, free);
        }
        if failed {
            self.counters.grow_failures += 1;
        }
    }

    // --- updates of copied slots --------------------------------------------------

    /// How an insert of `tag` into old slot `slot` of `table` is mirrored, if it is.
    pub(super) fn mirror_insert(
        &self,
        table: u32,
        slot: u32,
        tag: &[u8; STE_TAG_SIZE],
    ) -> Option<MirrorInsert> {
        let m = self.migration.as_ref().filter(|m| m.table == table)?;
        let old_size = self.tables[table].entries();
        let c = m.copy().filter(|c| c.has_copied(old_size, slot))?;
        let level = self.level(usize::from(self.tables[table].level));
        let ns = level.slot(c.size(), tag);
        Some(MirrorInsert {
            slot: ns,
            tail: self.copy_tail(ns),
        })
    }

    /// Writes the mirrored insert: `posted` (the new STE, missing to the end anchor, as
    /// posted) into its new slot, or into `entry` behind the copy's chain tail.
    pub(super) fn write_mirror_insert(
        &self,
        t: &mut Txn<'_>,
        mi: MirrorInsert,
        posted: &Ste,
        entry: Option<&Entry>,
    ) -> Result<(), SendError> {
        let enc = self.enc();
        match entry {
            None => {
                let c = self.copy_ref();
                t.write(&c.chunk.region(), c.slot_addr(mi.slot), posted)
            }
            Some(e) => {
                t.write(&self.slab_region(e), e.icm_addr(), posted)?;
                let tail = enc.posted(self.image(mi.tail, e.icm_addr(), None), STE_CTRL_SIZE);
                let (region, addr) = self.copy_place(mi.tail);
                t.write(&region, addr, &tail[..STE_CTRL_SIZE])
            }
        }
    }

    /// Records the mirrored insert of STE `s` (its entry in the copy, if it has one).
    pub(super) fn commit_mirror_insert(&mut self, s: u32, mi: MirrorInsert, entry: Option<Entry>) {
        self.counters.mirrored += 1;
        let home = match entry {
            Some(e) => IN_ENTRY | self.entries_mut().insert(e),
            None => mi.slot,
        };
        *self.spare_mut(s) = Place { next: NIL, home };
        if mi.tail == NIL {
            self.copy_mut().heads.set(mi.slot, s);
        } else {
            self.spare_mut(mi.tail).next = s;
            self.copy_mut().collisions += 1;
        }
    }

    /// How the removal of STE `x` is mirrored, if it is in the copy.
    pub(super) fn mirror_remove(&self, x: u32) -> Option<MirrorRemove> {
        let m = self.migration.as_ref()?;
        let c = m.copy()?;
        if self.stes[x].table != m.table || self.spare(x).home == NIL {
            return None;
        }
        let level = self.level(usize::from(self.tables[m.table].level));
        let slot = level.slot(c.heads.len() as u32, &self.stes[x].tag);
        Some(MirrorRemove {
            slot,
            pred: self.copy_pred(slot, x),
            next: self.spare(x).next,
        })
    }

    /// Where a new image of STE `s` (an action update) is mirrored, if its table is
    /// being copied and `s` is in the copy already: its place there, and the miss
    /// address it carries there.
    pub(super) fn mirror_update(&self, s: u32) -> Option<(IcmRegion, u64, u64)> {
        let m = self.migration.as_ref()?;
        m.copy()?;
        if self.stes[s].table != m.table || self.spare(s).home == NIL {
            return None;
        }
        let (region, addr) = self.copy_place(s);
        Some((region, addr, self.copy_miss(self.spare(s).next)))
    }

    /// Writes the mirrored removal (the same three cases as in the live table).
    pub(super) fn write_mirror_remove(
        &self,
        t: &mut Txn<'_>,
        mr: MirrorRemove,
    ) -> Result<(), SendError> {
        let enc = self.enc();
        if mr.pred != NIL {
            let image = self.image(mr.pred, self.copy_miss(mr.next), None);
            let (region, addr) = self.copy_place(mr.pred);
            let posted = enc.posted(image, STE_CTRL_SIZE);
            return t.write(&region, addr, &posted[..STE_CTRL_SIZE]);
        }
        let c = self.copy_ref();
        let (region, addr) = (c.chunk.region(), c.slot_addr(mr.slot));
        if mr.next == NIL {
            let table = self.migration.as_ref().map_or(NIL, |m| m.table);
            let unused = self.unused_posted(usize::from(self.tables[table].level));
            t.write(&region, addr, unused)
        } else {
            let miss = self.copy_miss(self.spare(mr.next).next);
            let image = self.image(mr.next, miss, None);
            t.write(&region, addr, &enc.posted(image, STE_SIZE))
        }
    }

    /// Records the mirrored removal of STE `x`; `free`: hand its entries back.
    pub(super) fn commit_mirror_remove(&mut self, x: u32, mr: MirrorRemove, free: bool) {
        self.counters.mirrored += 1;
        let gone = std::mem::replace(self.spare_mut(x), Place::NONE);
        if mr.pred != NIL {
            self.spare_mut(mr.pred).next = mr.next;
            self.copy_mut().collisions -= 1;
            self.release_entry(gone.home, free);
        } else if mr.next == NIL {
            self.copy_mut().heads.set(mr.slot, NIL);
        } else {
            // The next STE now sits in the slot; its entry is free.
            let moved = std::mem::replace(&mut self.spare_mut(mr.next).home, mr.slot);
            self.copy_mut().heads.set(mr.slot, mr.next);
            self.copy_mut().collisions -= 1;
            self.release_entry(moved, free);
        }
    }
}

#[cfg(test)]
impl MatcherTables {
    /// True while a table is being copied (before its switch).
    pub(super) fn copying(&self) -> bool {
        self.migration.as_ref().is_some_and(|m| m.copy().is_some())
    }

    /// The copy holds exactly the STEs of the copied old slots, each written as it would
    /// be now, and every copied new slot is written; while sweeping, only STEs of slots
    /// not swept yet have a spare place, naming a live entry.
    pub(super) fn check_migration(
        &self,
        line: &dyn Fn(u64, Ste, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(m) = self.migration.as_ref() else {
            return Ok(());
        };
        let table = &self.tables[m.table];
        let Phase::Copy(c) = &m.phase else {
            let Phase::Sweep { cursor, .. } = m.phase else {
                return Ok(());
            };
            for (slot, head) in table.slots.iter().enumerate() {
                let mut s = head;
                while s != NIL {
                    let spare = self.spare(s);
                    // Not swept yet: the old place (a slot, or an entry still held).
                    let ok = spare == Place::NONE
                        || (slot as u32 >= cursor
                            && spare
                                .entry()
                                .map_or(true, |e| self.entries_ref().get(e).is_some()));
                    if !ok {
                        return Err(format!("swept STE {s} has spare place {spare:?}"));
                    }
                    s = self.at(s).next;
                }
            }
            return Ok(());
        };
        let level = self.level(usize::from(table.level));
        let (old_size, new_size) = (table.entries(), c.size());
        let mut copied = 0;
        for slot in 0..old_size {
            let mut s = table.slots.get(slot);
            while s != NIL {
                let in_copy = self.spare(s).home != NIL;
                if in_copy != c.has_copied(old_size, slot) {
                    return Err(format!("STE {s} of old slot {slot}: in the copy {in_copy}"));
                }
                copied += u32::from(in_copy);
                s = self.at(s).next;
            }
        }
        let mut in_copy = 0;
        for ns in 0..new_size {
            if ns % groups(old_size, new_size) >= c.cursor {
                if c.heads.get(ns) != NIL {
                    return Err(format!("new slot {ns} is used before its group is copied"));
                }
                continue;
            }
            let mut s = c.heads.get(ns);
            if s == NIL {
                let unused = self.enc().unused_slot(level, self.miss_of(NIL));
                line(c.slot_addr(ns), unused, "new unused slot")?;
            }
            while s != NIL {
                if level.slot(new_size, &self.stes[s].tag) != ns {
                    return Err(format!("STE {s} is in new slot {ns}"));
                }
                let at = self.copy_place(s).1;
                let miss = self.copy_miss(self.spare(s).next);
                line(at, self.image(s, miss, None), "copied STE")?;
                in_copy += 1;
                s = self.spare(s).next;
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
