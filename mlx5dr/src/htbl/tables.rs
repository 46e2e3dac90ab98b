//! [`MatcherTables`]: the anchors, hash tables, miss chains and rule STEs of one matcher
//! on one side, with insert and remove.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ste_builder::hash::HtblType;
use ste_builder::ste::{Connect, Ste, STE_CTRL_SIZE, STE_SIZE, STE_TAG_SIZE};
use ste_builder::SteFormat;

use super::arena::{Arena, NIL};
use super::defer::{Completion, Deferred, Hold};
use super::encode::{Encoder, Level};
use super::error::{HtblError, RemoveError};
use super::grow::{Growth, Migration, MirrorInsert, DEFAULT_GROWTH_STEP};
use super::records::{CtrlStore, Place, SteRec, TableRec, IN_ENTRY};
use super::txn::{Failed, Outcome, Txn};
use super::{AnchorRef, HtblStats, LastSte, RuleHandle, MAX_ACTION_STES};
use crate::device::IcmRegion;
use crate::icm::{Chunk, Entry, EntrySlab, IcmError, IcmPool};
use crate::matching::{BuilderChain, RuleTags, MAX_LOOKUPS};
use crate::send::{SendError, SendRing, WriteTag};

/// Ids of tables instances, so a handle is never taken for another instance's rule.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// How one matcher's tables on one side are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesConfig {
    /// The STE format of the device.
    pub format: SteFormat,
    /// The receive side (its STEs carry RX entry types on v0).
    pub rx: bool,
    /// The gvmi STEs carry.
    pub gvmi: u16,
    /// Tables may grow (rehash) when crowded; if not, they keep their size and chains
    /// get longer.
    pub grow: bool,
    /// How many times larger a crowded table grows.
    pub growth: Growth,
    /// A table that a removal leaves holding fewer than a sixteenth of its entries'
    /// worth of STEs shrinks by the [`TablesConfig::growth`] factor, down to the size it
    /// started with (presized or one entry), so that ICM and host memory come back after
    /// a burst of rules is removed. Shrinking is a migration like growth, a step per
    /// update. Off: tables never shrink, as rdma-core's do not.
    pub shrink: bool,
    /// While a table grows or shrinks, how many groups of its slots are copied into the
    /// new table after each insert or removal (at least 1; a group is one old slot when
    /// growing, one new slot when shrinking): the bound on the extra writes an update
    /// pays for a migration.
    pub growth_step: u32,
    /// About `2^initial_log` rules are expected (0: no hint). The first table ever made
    /// at the last level, where rules land (the start table of a one-lookup chain, or
    /// the table under the first shared prefix, as level 1 of a 5-tuple matcher whose
    /// level 0 is one shared STE), starts with `2^k` entries, `k` the least of `initial_log`, the tag
    /// bits the level hashes (the bound growth stops at) and the pool's largest chunk;
    /// every other table starts with one entry. A presized table still grows from its
    /// size when crowded, if [`TablesConfig::grow`] is set: with `grow: false` the
    /// presized tables keep their size. When the pool has no chunk that large, the table
    /// starts with one entry instead ([`HtblStats::presize_fallbacks`](super::HtblStats)).
    /// With more than one lookup the presized table is allocated and written at
    /// creation, so the first insert writes only its own STEs (see the module
    /// documentation, "Expected size").
    pub initial_log: u8,
    /// An insert whose tags equal an installed rule's and whose last STE (control block:
    /// actions and hit address, as its [`LastSte`] fills it) and action STEs are the
    /// installed rule's byte for byte gets a further [`RuleHandle`] to the installed STE
    /// (nothing is written; the STE counts its handles, and only the removal of the last
    /// handle unlinks it). A duplicate that differs in anything is still refused with
    /// [`HtblError::Duplicate`]. Off (the default): every duplicate is refused.
    ///
    /// On, the engine keeps the bytes of each rule's action STEs (64 bytes per action
    /// STE, for the rules that have any) to compare them; off, it keeps none.
    pub share_identical: bool,
    /// When an update's call returns: once it is in ICM ([`Completion::Wait`], the
    /// default) or once it is posted or queued (see [`Completion`]).
    pub completion: Completion,
}

impl TablesConfig {
    /// Tables that start with one entry and grow, [`DEFAULT_GROWTH_STEP`] old slots per
    /// update.
    pub fn new(format: SteFormat, rx: bool, gvmi: u16) -> TablesConfig {
        TablesConfig {
            format,
            rx,
            gvmi,
            grow: true,
            growth: Growth::Quadruple,
            shrink: true,
            growth_step: DEFAULT_GROWTH_STEP,
            initial_log: 0,
            share_identical: false,
            completion: Completion::Wait,
        }
    }
}

/// The hash tables of one matcher on one side: its end anchor, its start table, the
/// per-level tables that shared STEs point to, the miss chains of colliding STEs, and
/// the rules' STEs.
///
/// Every change is made so that packets see either the old or the new state, never a
/// half-installed rule (see the module documentation). Used through `&mut self` (the
/// caller serialises a matcher side's updates) with the caller's [`SendRing`]; every
/// update is flushed before the call returns, so on `Ok` it is in ICM.
///
/// Dropping the tables gives all their ICM back to the pool: unlink the matcher first
/// (nothing may point at its start table or end anchor any more, through completed
/// writes).
pub struct MatcherTables {
    id: NonZeroU32,
    enc: Encoder,
    levels: Box<[Level]>,
    /// Per level, the posted unused-slot STE (always miss to the end anchor): the same
    /// bytes for every unused slot of the level's tables, so built once.
    unused: Box<[Ste]>,
    grow: bool,
    growth: Growth,
    /// [`TablesConfig::shrink`].
    shrink: bool,
    growth_step: u32,
    max_log: u8,
    /// [`TablesConfig::initial_log`].
    initial_log: u8,
    /// The lower levels' first tables were made (by the first insert that landed): the
    /// tables made after them start with one entry.
    presized: bool,
    /// The last level's presized first table, allocated and written at creation and
    /// unreachable until the first insert that makes a last-level table adopts it.
    /// `None` with one lookup, without a hint, once adopted, or when the pool had no
    /// chunk that large at creation (the first such insert then allocates as usual).
    prewritten: Option<Prewritten>,
    /// [`TablesConfig::share_identical`].
    pub(super) share_identical: bool,
    pool: Arc<IcmPool>,
    slab: EntrySlab,
    /// The end anchor's chunk (taken out only on drop).
    end_chunk: Option<Chunk>,
    /// Its region and ICM address.
    end_region: IcmRegion,
    end_addr: u64,
    end_target: Connect,
    start: u32,
    start_pointer: Option<AnchorRef>,
    pub(super) tables: Arena<TableRec>,
    pub(super) stes: Arena<SteRec>,
    entries: Arena<Entry>,
    pub(super) ctrls: CtrlStore,
    /// The action-only STEs after a rule's last STE, by the last STE's id.
    pub(super) extras: HashMap<u32, Box<[Entry]>>,
    /// Their bytes as built (chained, no miss address), by the last STE's id: kept only
    /// with [`TablesConfig::share_identical`], to compare a duplicate's with.
    pub(super) extra_images: HashMap<u32, Box<[Ste]>>,
    /// Rule handles: one per installed last STE, plus the shared ones.
    pub(super) rules: u64,
    /// Handles beyond the first of a last STE (identical duplicates sharing it).
    pub(super) shared: u64,
    /// The table growing now, if one is.
    pub(super) migration: Option<Migration>,
    pub(super) counters: Counters,
    /// [`TablesConfig::completion`].
    completion: Completion,
    /// Updates posted without waiting, and what waits for them.
    deferred: Deferred,
}

/// Events counted over the tables' life.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) grows: u64,
    pub(super) shrinks: u64,
    pub(super) grow_failures: u64,
    /// Inserts and removals also applied to a growing table's copy.
    pub(super) mirrored: u64,
    /// Action updates also applied to a growing table's copy.
    pub(super) updates_mirrored: u64,
    pub(super) leaked_chunks: u64,
    pub(super) leaked_entries: u64,
    pub(super) presize_fallbacks: u64,
}

impl std::fmt::Debug for MatcherTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatcherTables")
            .field("id", &self.id)
            .field("enc", &self.enc)
            .field("levels", &self.levels)
            .field("end_anchor", &self.end_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A presized last-level table written at creation, no rule in it yet.
///
/// Every slot holds the level's unused-slot STE (a miss to the end anchor, whose
/// address never changes: [`MatcherTables::set_end_target`] rewrites what the anchor
/// does, not where it is), except perhaps the `dirty` ones.
struct Prewritten {
    chunk: Chunk,
    /// Slots into which an insert that adopted the table and then failed (its link not
    /// landing) may have written its STE: the next adoption writes the unused-slot STE
    /// there again before its link. Empty unless an insert failed.
    dirty: Vec<u32>,
}

/// A rule's last STE as its [`LastSte`] fills it: the match STE, then room for the
/// action-only STEs.
pub(super) type LastImages = [u8; STE_SIZE * (1 + MAX_ACTION_STES)];

/// New memory of an insert, until it is linked in (or handed back).
#[derive(Default)]
pub(super) struct Fresh {
    /// One table per new level below the split level (one entry, or presized).
    tables: Vec<Chunk>,
    /// The collision entry of the split level's STE, if its slot is taken.
    collision: Option<Entry>,
    /// Its collision entry in a growing table, if it goes behind a chain there too.
    mirror: Option<Entry>,
    /// The action-only STEs.
    pub(super) extras: Vec<Entry>,
    /// The last table of `tables` is the prewritten one (its dirty slots with it):
    /// only the new STE's slot, and those, need writing.
    adopted: Option<Vec<u32>>,
}

/// A rule's tags, checked against the chain ([`MatcherTables::check_tags`]): one
/// 16-byte tag per level. Borrowed, so an insert never copies them.
#[derive(Clone, Copy)]
struct Tags<'t>(&'t RuleTags);

impl<'t> Tags<'t> {
    /// The tag of `level` (checked to exist and to be 16 bytes).
    fn get(self, level: usize) -> &'t [u8; STE_TAG_SIZE] {
        match self.0.get(level).and_then(|t| t.try_into().ok()) {
            Some(t) => t,
            None => panic!("tag {level} was checked to be {STE_TAG_SIZE} bytes"),
        }
    }
}

/// What a batch's first pass read of a rule ([`MatcherTables::warm_head`]): the STE
/// heading the chain it would go into, for [`MatcherTables::warm_ste`] to read, and its
/// last-level tag's hash, which [`MatcherTables::insert_warmed`] then need not compute
/// again. The head is only a hint for the cache, valid until the tables change; the
/// hash stays right (a table's size does not enter it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Warmed {
    head: u32,
    hash: Option<u32>,
}

impl Default for Warmed {
    /// Nothing read.
    fn default() -> Warmed {
        Warmed {
            head: NIL,
            hash: None,
        }
    }
}

/// The last-level table found for the previous rule of a batch's first pass, and the
/// tags above it that led there ([`MatcherTables::warm_head`]): the rules of a batch
/// mostly share their first STEs, and the pass need not look them up again.
#[derive(Debug, Clone)]
pub(crate) struct WarmMemo {
    upper: [[u8; STE_TAG_SIZE]; MAX_LOOKUPS],
    table: u32,
}

impl Default for WarmMemo {
    /// Nothing found yet.
    fn default() -> WarmMemo {
        WarmMemo {
            upper: [[0; STE_TAG_SIZE]; MAX_LOOKUPS],
            table: NIL,
        }
    }
}

/// What [`MatcherTables::find`] found in a table.
enum Probe {
    /// The STE with the tag.
    Found(u32),
    /// None has it: its slot in the table, and the last STE of that slot's chain (NIL:
    /// the slot is unused).
    Missing { slot: u32, tail: u32 },
}

/// Where an insert goes, decided before anything is written. The STEs of levels
/// `0..split` it shares are the owners up from `table`.
struct InsertPlan<'t> {
    tags: Tags<'t>,
    /// The first level with a new STE.
    split: usize,
    /// The split level's table, its slot there and the slot's chain tail (NIL: unused).
    table: u32,
    slot: u32,
    tail: u32,
    /// The same insert in the table's growing copy, if the slot is mirrored already.
    mirror: Option<MirrorInsert>,
    /// The last STE's control block, without a miss address.
    ctrl: [u8; STE_CTRL_SIZE],
}

impl MatcherTables {
    /// Builds a matcher's tables for `chain`: writes the end anchor (leading to `end`)
    /// and the start table (one entry, or presized for [`TablesConfig::initial_log`])
    /// whose unused slots miss to the end anchor, then flushes. Nothing points at the
    /// start table yet: see [`MatcherTables::start`].
    pub fn new(
        pool: Arc<IcmPool>,
        chain: &BuilderChain,
        cfg: TablesConfig,
        end: Connect,
        ring: &mut SendRing,
    ) -> Result<MatcherTables, HtblError> {
        let levels: Box<[Level]> = chain.builders().iter().map(Level::of).collect();
        if let Some(level) = levels.iter().position(|l| l.htbl_type == HtblType::Match) {
            return Err(HtblError::DefinerLookup { level });
        }
        let max_log = pool.config().max_log_chunk;
        let end_anchor = pool.alloc(0)?;
        // Rules land in the last level's tables; a level above holds one STE per distinct
        // prefix (a source port, an IP version), so presizing it wastes ICM.
        let start_log = if levels.len() == 1 {
            levels[0].presize_log(cfg.initial_log, max_log)
        } else {
            0
        };
        let start_chunk = match alloc_table(&pool, start_log) {
            Ok(c) => c,
            Err(e) => {
                let _ = pool.free(end_anchor);
                return Err(e.into());
            }
        };
        // The last level's first table, when it is not the start table: written whole
        // here, so the first insert does not pay for it. Short of ICM, the first insert
        // that needs it allocates it (or falls back to one entry) as any table.
        let last = levels.len() - 1;
        let prewritten = if last > 0 {
            match levels[last].presize_log(cfg.initial_log, max_log) {
                0 => None,
                log => pool.alloc(log).ok(),
            }
        } else {
            None
        };
        let enc = Encoder::new(cfg.format, cfg.rx, cfg.gvmi);
        let anchor = enc.anchor(end);
        let unused: Box<[Ste]> = levels
            .iter()
            .map(|l| enc.posted(enc.unused_slot(l, end_anchor.icm_addr()), STE_SIZE))
            .collect();
        let per_write = slots_per_write(ring);
        let written = Txn::new(ring).run(|t| {
            let a = enc.posted(anchor, STE_SIZE);
            t.write(&end_anchor.region(), end_anchor.icm_addr(), &a)?;
            write_table(t, &start_chunk, &unused[0], None, per_write)?;
            match &prewritten {
                Some(c) => write_table(t, c, &unused[last], None, per_write),
                None => Ok(()),
            }
        });
        if let Err(f) = written {
            // Nothing points at any chunk; give them back unless a write may land.
            if f.outcome == (Outcome::Rejected { settled: true }) {
                let _ = pool.free(end_anchor);
                let _ = pool.free(start_chunk);
                if let Some(c) = prewritten {
                    let _ = pool.free(c);
                }
            }
            return Err(HtblError::Send(f.error));
        }
        let counters = Counters {
            presize_fallbacks: u64::from(start_chunk.log_entries() < start_log),
            ..Counters::default()
        };
        let mut tables = Arena::new();
        let start = tables.insert(TableRec::new(start_chunk, NIL, 0));
        Ok(MatcherTables {
            // Ids wrap after 2^32 instances; 0 is skipped (it cannot be a handle's).
            id: NonZeroU32::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)).unwrap_or(NonZeroU32::MIN),
            enc,
            levels,
            unused,
            grow: cfg.grow,
            growth: cfg.growth,
            shrink: cfg.shrink,
            growth_step: cfg.growth_step.max(1),
            max_log,
            initial_log: cfg.initial_log,
            presized: false,
            prewritten: prewritten.map(|chunk| Prewritten {
                chunk,
                dirty: Vec::new(),
            }),
            share_identical: cfg.share_identical,
            slab: EntrySlab::new(pool.clone()),
            pool,
            end_region: end_anchor.region(),
            end_addr: end_anchor.icm_addr(),
            end_chunk: Some(end_anchor),
            end_target: end,
            start,
            start_pointer: None,
            tables,
            stes: Arena::new(),
            entries: Arena::new(),
            ctrls: CtrlStore::new(),
            extras: HashMap::new(),
            extra_images: HashMap::new(),
            rules: 0,
            shared: 0,
            migration: None,
            counters,
            completion: cfg.completion,
            deferred: Deferred::default(),
        })
    }

    /// How an anchor points at the start table: what the table root or the previous
    /// matcher's end anchor writes to lead here. Changes when the start table grows (the
    /// pointer set with [`MatcherTables::set_start_pointer`] is rewritten then).
    pub fn start(&self) -> Connect {
        let t = &self.tables[self.start];
        Connect::Hit {
            lu_type: self.levels[0].lu_type,
            byte_mask: self.levels[0].byte_mask,
            icm_addr: t.chunk.icm_addr(),
            num_entries: t.entries(),
        }
    }

    /// The end anchor's ICM address: every miss chain of the matcher ends there.
    pub fn end_anchor(&self) -> u64 {
        self.end_addr
    }

    /// The end anchor as an [`AnchorRef`]: what the next matcher's tables are told
    /// points at their start table.
    pub fn end_anchor_ref(&self) -> AnchorRef {
        AnchorRef {
            region: self.end_region,
            icm_addr: self.end_addr,
        }
    }

    /// Where the end anchor leads.
    pub fn end_target(&self) -> Connect {
        self.end_target
    }

    /// Makes the end anchor lead to `to` (miss to a default address, or hit into the next
    /// matcher's start table) with one 64-byte write, flushed.
    pub fn set_end_target(&mut self, ring: &mut SendRing, to: Connect) -> Result<(), HtblError> {
        let image = self.enc.posted(self.enc.anchor(to), STE_SIZE);
        let (region, addr) = (self.end_region, self.end_addr);
        let res = Txn::new(ring).run(|t| t.link(&region, addr, &image));
        match res {
            Ok(_)
            | Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => {
                self.end_target = to;
                Ok(())
            }
            Err(Failed {
                outcome: Outcome::Rejected { .. },
                error,
            }) => Err(HtblError::Send(error)),
            Err(Failed { error, .. }) => {
                self.end_target = to;
                Err(HtblError::Send(error))
            }
        }
    }

    /// Tells the tables which anchor points at their start table (the table root, or the
    /// previous matcher's end anchor), so that growing the start table can switch it;
    /// `None` while nothing does. The caller writes that anchor itself when linking.
    ///
    /// When the anchor is another [`MatcherTables`]' end anchor, a growth of this start
    /// table rewrites it behind that instance's back: its [`MatcherTables::end_target`]
    /// is then out of date, and [`MatcherTables::start`] here is the truth (writing it
    /// there again with [`MatcherTables::set_end_target`] is harmless).
    pub fn set_start_pointer(&mut self, pointer: Option<AnchorRef>) {
        self.start_pointer = pointer;
    }

    /// The anchor set with [`MatcherTables::set_start_pointer`].
    pub fn start_pointer(&self) -> Option<AnchorRef> {
        self.start_pointer
    }

    /// What tells these tables apart from every other [`MatcherTables`] of the process:
    /// their rules' handles carry it ([`RuleHandle::tables_id`]).
    pub fn id(&self) -> NonZeroU32 {
        self.id
    }

    /// Rules installed: their handles (identical duplicates sharing one rule count once
    /// each, see [`TablesConfig::share_identical`]).
    pub fn rules(&self) -> u64 {
        self.rules
    }

    /// The ICM address of `rule`'s last match STE (it moves when its table grows or the
    /// STE before it in its slot is removed). `None` for another instance's handle.
    pub fn rule_addr(&self, rule: &RuleHandle) -> Option<u64> {
        (rule.tables == self.id && self.stes.get(rule.ste).is_some())
            .then(|| self.place(rule.ste).1)
    }

    /// The tags `rule` was inserted with, in chain order (read back from its STEs'
    /// records); `None` for a handle of other tables.
    pub fn rule_tags(&self, rule: &RuleHandle) -> Option<impl Iterator<Item = &[u8]> + '_> {
        let n = self.levels.len();
        let mut path = [NIL; MAX_LOOKUPS];
        let mut s = self.last_ste_of(rule)?;
        for level in (0..n).rev() {
            path[level] = s;
            s = self.tables[self.stes[s].table].owner;
        }
        Some(path.into_iter().take(n).map(|s| &self.stes[s].tag[..]))
    }

    /// The last STE `rule` names, if it is a handle of these tables.
    pub(super) fn last_ste_of(&self, rule: &RuleHandle) -> Option<u32> {
        let n = self.levels.len();
        let valid = rule.tables == self.id
            && self
                .stes
                .get(rule.ste)
                .is_some_and(|s| usize::from(self.tables[s.table].level) + 1 == n);
        valid.then_some(rule.ste)
    }

    // --- insert -------------------------------------------------------------------

    /// Installs a rule whose STEs carry `tags` (one per lookup of the chain), with
    /// `last` filling its actions and hit address.
    ///
    /// STEs equal to an installed rule's at the first levels are shared. The new STEs,
    /// their tables, the rule's action STEs and, for a taken slot, the collision entry
    /// are written first; then one write links them in: the STE into an unused slot of
    /// a reachable table, or the 32-byte control block of the slot's chain tail with its
    /// miss address set to the new entry. On error nothing changed (but see
    /// [`HtblError::Unconfirmed`]). Afterwards a growing table takes a step, or the
    /// table the rule went into may start growing.
    ///
    /// A rule with the same tags as an installed one is refused with
    /// [`HtblError::Duplicate`], unless [`TablesConfig::share_identical`] is set and its
    /// last STE and action STEs, as `last` fills them, are the installed rule's byte for
    /// byte: then the call writes nothing and returns a further handle to the installed
    /// rule.
    pub fn insert<L: LastSte>(
        &mut self,
        ring: &mut SendRing,
        tags: &RuleTags,
        last: L,
    ) -> Result<RuleHandle, HtblError> {
        self.insert_warmed(ring, tags, &Warmed::default(), last)
    }

    /// [`MatcherTables::insert`] of a rule a batch's first pass read ahead
    /// ([`MatcherTables::warm_head`]; with `Warmed::default()`, the same as `insert`).
    pub(crate) fn insert_warmed<L: LastSte>(
        &mut self,
        ring: &mut SendRing,
        tags: &RuleTags,
        warmed: &Warmed,
        last: L,
    ) -> Result<RuleHandle, HtblError> {
        let n = self.levels.len();
        let tags = self.check_tags(tags)?;
        self.settle(ring)?;

        // The shared prefix: levels whose STE exists already. The first level without
        // one is where the rule splits off; its hash places it there.
        let mut table = self.start;
        let mut split = 0;
        let (slot, tail) = loop {
            let hash = if split + 1 == n { warmed.hash } else { None };
            match self.find(table, tags.get(split), hash) {
                Probe::Found(d) if split + 1 == n => {
                    if !self.share_identical {
                        return Err(HtblError::Duplicate);
                    }
                    return self.share(d, last);
                }
                Probe::Found(s) => {
                    table = self.stes[s].link;
                    split += 1;
                }
                Probe::Missing { slot, tail } => break (slot, tail),
            }
        };
        let mut plan = InsertPlan {
            tags,
            split,
            table,
            slot,
            tail,
            mirror: self.mirror_insert(table, slot, tags.get(split)),
            ctrl: [0; STE_CTRL_SIZE],
        };

        // The last STE with its actions (nothing allocated yet: a refusal costs nothing).
        let mut stes: LastImages = [0; STE_SIZE * (1 + MAX_ACTION_STES)];
        let added = self.fill_last(tags.get(n - 1), last, &mut stes)?;

        let mirror_entry = plan.mirror.is_some_and(|m| m.tail != NIL);
        let mut fresh = self.alloc_fresh(n - 1 - split, plan.tail != NIL, added)?;
        if mirror_entry {
            match self.slab.alloc() {
                Ok(e) => fresh.mirror = Some(e),
                // Short of ICM for the growing table: give the growth up, not the rule.
                Err(_) => {
                    self.abort_migration(true, true);
                    plan.mirror = None;
                }
            }
        }

        plan.ctrl = self.chain_actions(&mut stes, fresh.extras.iter().map(Entry::icm_addr));
        let images = &stes[STE_SIZE..(1 + added) * STE_SIZE];

        match self.write_insert(ring, &plan, &stes, &fresh) {
            Ok(posted) => {
                self.deferred.posted(posted);
                let rule = self.commit_insert(&plan, fresh, images);
                let crowded = (plan.tail != NIL).then_some(plan.table);
                self.after_update(ring, crowded);
                Ok(rule)
            }
            // The link landed before the ring failed: the rule is in (growth waits for
            // a working ring).
            Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => Ok(self.commit_insert(&plan, fresh, images)),
            Err(Failed {
                outcome: Outcome::Rejected { settled },
                error,
            }) => {
                if let (Some(dirty), Some(c)) = (&mut fresh.adopted, fresh.tables.last()) {
                    // The new STE's write into the adopted table may have landed.
                    let slot = self.levels[n - 1].slot(entries_of(c), tags.get(n - 1));
                    if !dirty.contains(&slot) {
                        dirty.push(slot);
                    }
                }
                self.give_back(fresh, settled);
                // The growing copy may have taken some of the writes.
                if plan.mirror.is_some() {
                    self.abort_migration(settled, true);
                }
                Err(HtblError::Send(error))
            }
            // It may have landed: keep the rule, and nothing it might reach out of use.
            Err(Failed {
                outcome: Outcome::Unknown,
                error,
            }) => {
                let rule = self.commit_insert(&plan, fresh, images);
                if plan.mirror.is_some() {
                    self.abort_migration(false, true);
                }
                Err(HtblError::Unconfirmed {
                    rule,
                    source: error,
                })
            }
        }
    }

    /// The rule's tags, checked against the chain: one per level, 16 bytes each.
    fn check_tags<'t>(&self, tags: &'t RuleTags) -> Result<Tags<'t>, HtblError> {
        let n = self.levels.len();
        if tags.len() != n {
            return Err(HtblError::TagCount {
                got: tags.len(),
                want: n,
            });
        }
        for (level, tag) in tags.iter().enumerate() {
            if tag.len() != STE_TAG_SIZE {
                return Err(HtblError::TagLength {
                    level,
                    got: tag.len(),
                    want: STE_TAG_SIZE,
                });
            }
        }
        Ok(Tags(tags))
    }

    /// Fills `stes` (zeroed) with a last STE of the last level with `tag`, filled by
    /// `last`: the match STE followed by room for [`MAX_ACTION_STES`] action STEs;
    /// returns how many of those it uses. Checked: the filler kept within that room and
    /// left the tag and mask alone. Filled in place: the 512 bytes are not moved about.
    pub(super) fn fill_last<L: LastSte>(
        &self,
        tag: &[u8; STE_TAG_SIZE],
        last: L,
        stes: &mut LastImages,
    ) -> Result<usize, HtblError> {
        let match_ste = &mut stes[..STE_SIZE];
        self.enc
            .rule_ste_into(match_ste, &self.levels[self.levels.len() - 1], tag);
        let mut built = [0; STE_SIZE - STE_CTRL_SIZE];
        built.copy_from_slice(&match_ste[STE_CTRL_SIZE..]);
        let added = last
            .fill(self.enc.ctrl.format(), stes)
            .map_err(|e| HtblError::Actions(Box::new(e)))?;
        if added > MAX_ACTION_STES {
            return Err(HtblError::BadActionStes(
                "reported more action STEs than it has room for",
            ));
        }
        if stes[STE_CTRL_SIZE..STE_SIZE] != built {
            return Err(HtblError::BadActionStes(
                "changed the match STE's tag or mask",
            ));
        }
        Ok(added)
    }

    /// Chains the action STEs of `stes` to the one-entry places at `addrs`: the match
    /// STE hits the first, each one the next (the last keeps the filler's hit address).
    /// Returns the match STE's control block without a miss address: what the
    /// [`CtrlStore`] keeps, so that equal blocks are shared whatever their miss chain.
    pub(super) fn chain_actions(
        &self,
        stes: &mut LastImages,
        addrs: impl Iterator<Item = u64>,
    ) -> [u8; STE_CTRL_SIZE] {
        for (k, addr) in addrs.enumerate() {
            let (before, rest) = stes.split_at_mut((k + 1) * STE_SIZE);
            self.enc
                .ctrl
                .set_hit_addr(&mut before[k * STE_SIZE..], addr, 1);
            // Action STEs always hit; their miss address is never followed.
            self.enc.ctrl.set_miss_addr(&mut rest[..STE_SIZE], 0);
        }
        let mut ctrl = [0u8; STE_CTRL_SIZE];
        ctrl.copy_from_slice(&stes[..STE_CTRL_SIZE]);
        self.enc.ctrl.set_miss_addr(&mut ctrl, 0);
        ctrl
    }

    /// Writes a rule's action STEs (as built, `stes` after the match STE) into `extras`.
    pub(super) fn write_action_stes(
        &self,
        t: &mut Txn<'_>,
        stes: &[u8],
        extras: &[Entry],
    ) -> Result<(), SendError> {
        for (k, e) in extras.iter().enumerate() {
            let mut ste: Ste = [0; STE_SIZE];
            ste.copy_from_slice(&stes[(k + 1) * STE_SIZE..(k + 2) * STE_SIZE]);
            let region = self.slab_region(e);
            t.write(&region, e.icm_addr(), &self.enc.posted(ste, STE_SIZE))?;
        }
        Ok(())
    }

    /// Records the action STEs of last STE `s`, which has none recorded (`images`: as
    /// built, one per entry in `extras`), and their bytes when duplicates may share
    /// rules. A rule without action STEs touches neither map.
    pub(super) fn set_action_stes(&mut self, s: u32, extras: Vec<Entry>, images: &[u8]) {
        debug_assert_eq!(images.len(), extras.len() * STE_SIZE);
        debug_assert!(!self.extras.contains_key(&s) && !self.extra_images.contains_key(&s));
        if extras.is_empty() {
            return;
        }
        self.extras.insert(s, extras.into_boxed_slice());
        if self.share_identical {
            let kept: Box<[Ste]> = images
                .chunks_exact(STE_SIZE)
                .map(|c| {
                    let mut ste: Ste = [0; STE_SIZE];
                    ste.copy_from_slice(c);
                    ste
                })
                .collect();
            self.extra_images.insert(s, kept);
        }
    }

    /// Reads the head of the chain a rule with `tags` would go into at the last level
    /// (through the STEs it shares above, when they exist) and returns it with the
    /// last-level hash. Changes nothing: a batch calls it for every rule of a group
    /// before inserting any, so that the loads of the heads, each likely a cache miss
    /// in a large table, overlap instead of coming one per insert. `memo` carries the
    /// upper levels' lookup from one call to the next; start each pass with a fresh one
    /// (the tables must not change during a pass).
    pub(crate) fn warm_head(&self, tags: &RuleTags, memo: &mut WarmMemo) -> Warmed {
        let Ok(tags) = self.check_tags(tags) else {
            return Warmed::default();
        };
        let last = self.levels.len() - 1;
        let upper = |memo: &WarmMemo| (0..last).all(|l| memo.upper[l] == *tags.get(l));
        if memo.table == NIL || !upper(memo) {
            let mut table = self.start;
            for level in 0..last {
                match self.find(table, tags.get(level), None) {
                    Probe::Found(s) => table = self.stes[s].link,
                    Probe::Missing { .. } => return Warmed::default(),
                }
                memo.upper[level] = *tags.get(level);
            }
            memo.table = table;
        }
        let t = &self.tables[memo.table];
        let hash = self.levels[last].hash(tags.get(last));
        Warmed {
            head: t.slots.get(Level::index(hash, t.entries())),
            hash: Some(hash),
        }
    }

    /// Reads the record of the STE heading a chain (from [`MatcherTables::warm_head`]),
    /// the second load of a batch's warming: the first STE an insert compares its tag
    /// with.
    pub(crate) fn warm_ste(&self, warmed: &Warmed) {
        if warmed.head != NIL {
            std::hint::black_box(self.stes[warmed.head].tag[0]);
        }
    }

    /// The STE of `table` with `tag`, or where one would go.
    /// `hash`: the tag's hash at the table's level, if known.
    fn find(&self, table: u32, tag: &[u8; STE_TAG_SIZE], hash: Option<u32>) -> Probe {
        let t = &self.tables[table];
        // A one-entry table (a level above the rules', often) needs no hash.
        let slot = match hash {
            Some(hash) => Level::index(hash, t.entries()),
            None => self.levels[usize::from(t.level)].slot(t.entries(), tag),
        };
        let gen = usize::from(t.gen);
        let (mut s, mut tail) = (t.slots.get(slot), NIL);
        while s != NIL {
            let rec = &self.stes[s];
            if rec.tag == *tag {
                return Probe::Found(s);
            }
            // The chain's STEs are all of this table.
            (tail, s) = (s, rec.place[gen].next);
        }
        Probe::Missing { slot, tail }
    }

    /// Allocates an insert's new memory; on failure hands back what it took.
    pub(super) fn alloc_fresh(
        &mut self,
        new_tables: usize,
        collision: bool,
        extras: usize,
    ) -> Result<Fresh, HtblError> {
        let mut fresh = Fresh::default();
        if new_tables == 0 && !collision && extras == 0 {
            // Most inserts: a rule STE into an unused slot of an existing table.
            return Ok(fresh);
        }
        let first = self.levels.len() - new_tables;
        let res = (|| {
            for j in first..self.levels.len() {
                let log = self.fresh_log(j);
                // A presized last-level table is the one written at creation, if any.
                if log > 0 && fresh.adopted.is_none() {
                    if let Some(p) = self.prewritten.take() {
                        fresh.tables.push(p.chunk);
                        fresh.adopted = Some(p.dirty);
                        continue;
                    }
                }
                fresh.tables.push(alloc_table(&self.pool, log)?);
            }
            if collision {
                fresh.collision = Some(self.slab.alloc()?);
            }
            for _ in 0..extras {
                fresh.extras.push(self.slab.alloc()?);
            }
            Ok::<(), HtblError>(())
        })();
        match res {
            Ok(()) => Ok(fresh),
            Err(e) => {
                self.give_back(fresh, true);
                Err(e)
            }
        }
    }

    /// log2 of the entries of a new table of lower level `j`: presized for the last
    /// level's first table, else one entry.
    fn fresh_log(&self, j: usize) -> u8 {
        if self.presized || j + 1 != self.levels.len() {
            0
        } else {
            self.levels[j].presize_log(self.initial_log, self.max_log)
        }
    }

    /// Hands back an insert's memory that never became reachable; when writes to it may
    /// still land (`settled` false), it is kept out of use instead.
    ///
    /// An adopted prewritten table goes back to being the prewritten one (with the
    /// slots the insert may have written marked dirty by the caller), so a failed first
    /// insert costs the next one no more than a few writes; unless writes may still
    /// land, then it is kept out of use like the rest.
    pub(super) fn give_back(&mut self, mut fresh: Fresh, settled: bool) {
        if let Some(dirty) = fresh.adopted.take() {
            if let Some(chunk) = fresh.tables.pop() {
                if settled {
                    self.prewritten = Some(Prewritten { chunk, dirty });
                } else {
                    self.counters.leaked_chunks += 1;
                }
            }
        }
        let entries = fresh
            .collision
            .into_iter()
            .chain(fresh.mirror)
            .chain(fresh.extras);
        if settled {
            for c in fresh.tables {
                let _ = self.pool.free(c);
            }
            for e in entries {
                let _ = self.slab.free(e);
            }
        } else {
            self.counters.leaked_chunks += fresh.tables.len() as u64;
            self.counters.leaked_entries += entries.count() as u64;
        }
    }

    /// Writes an insert: action STEs, the new tables deepest first (every slot of each:
    /// its one STE, and unused-slot STEs in the rest), the mirror in a growing table,
    /// then the link.
    fn write_insert(
        &self,
        ring: &mut SendRing,
        plan: &InsertPlan<'_>,
        stes: &[u8],
        fresh: &Fresh,
    ) -> Result<Option<WriteTag>, Failed> {
        let n = self.levels.len();
        let (split, tags) = (plan.split, plan.tags);
        let end = self.end_addr;
        let enc = self.enc;
        let per_write = slots_per_write(ring);
        Txn::with(ring, self.completion).run(|t| {
            self.write_action_stes(t, stes, &fresh.extras)?;
            // The new STEs, deepest first; level j > split sits alone in fresh table j-split-1.
            let mut posted: Ste = [0; STE_SIZE];
            for j in (split..n).rev() {
                if j + 1 == n {
                    enc.last_ste_into(&mut posted, &plan.ctrl, &self.levels[j], tags.get(j), end);
                } else {
                    let child = &fresh.tables[j - split];
                    enc.inner_ste_into(
                        &mut posted,
                        &self.levels[j],
                        &self.levels[j + 1],
                        tags.get(j),
                        (child.icm_addr(), entries_of(child)),
                        end,
                    );
                }
                enc.post_in_place(&mut posted);
                if j > split {
                    let c = &fresh.tables[j - split - 1];
                    let slot = self.levels[j].slot(entries_of(c), tags.get(j));
                    match &fresh.adopted {
                        // The prewritten table: every other slot holds the unused-slot
                        // STE already, but for the dirty ones.
                        Some(dirty) if j + 1 == n => {
                            for &d in dirty.iter().filter(|&&d| d != slot) {
                                t.write(&c.region(), slot_addr(c, d), &self.unused[j])?;
                            }
                            t.write(&c.region(), slot_addr(c, slot), &posted)?;
                        }
                        _ => write_table(t, c, &self.unused[j], Some((slot, &posted)), per_write)?,
                    }
                    continue;
                }
                if let Some(mi) = plan.mirror {
                    self.write_mirror_insert(t, mi, &posted, fresh.mirror.as_ref())?;
                }
                if let Some(e) = &fresh.collision {
                    t.write(&self.slab_region(e), e.icm_addr(), &posted)?;
                    // The link: the chain's tail now misses to the new entry.
                    let tail = self.image(plan.tail, e.icm_addr(), None);
                    let tail = enc.posted(tail, STE_CTRL_SIZE);
                    let (region, addr) = self.place(plan.tail);
                    t.link(&region, addr, &tail[..STE_CTRL_SIZE])?;
                } else {
                    let tbl = &self.tables[plan.table];
                    t.link(&tbl.chunk.region(), tbl.slot_addr(plan.slot), &posted)?;
                }
            }
            Ok(())
        })
    }

    /// Records an insert whose link landed (or is assumed to have); `images` are its
    /// action STEs as built.
    fn commit_insert(&mut self, plan: &InsertPlan<'_>, fresh: Fresh, images: &[u8]) -> RuleHandle {
        let n = self.levels.len();
        let (split, table, slot, tail) = (plan.split, plan.table, plan.slot, plan.tail);
        // One more rule through each shared STE above: the owners up from `table`.
        let mut up = self.tables[table].owner;
        while up != NIL {
            let rec = &mut self.stes[up];
            rec.refs = rec.refs.saturating_add(1);
            up = self.tables[rec.table].owner;
        }
        let Fresh {
            tables,
            collision,
            mirror,
            extras,
            adopted: _,
        } = fresh;
        // The split level's STE in the existing table.
        let home = match collision {
            Some(e) => IN_ENTRY | self.entries.insert(e),
            None => slot,
        };
        let gen = self.tables[table].gen;
        let mut s = self
            .stes
            .insert(SteRec::new(*plan.tags.get(split), table, gen, home));
        let t = &mut self.tables[table];
        t.stes += 1;
        if tail == NIL {
            t.slots.set(slot, s);
        } else {
            t.collisions += 1;
            self.at_mut(tail).next = s;
        }
        if let Some(mi) = plan.mirror {
            self.commit_mirror_insert(s, mi, mirror);
        }
        // Each deeper level: a new table owned by the STE above, holding one STE.
        for (j, chunk) in (split + 1..n).zip(tables) {
            if chunk.log_entries() < self.fresh_log(j) {
                self.counters.presize_fallbacks += 1;
            }
            let mut rec = TableRec::new(chunk, s, j as u8);
            rec.stes = 1;
            let tag = plan.tags.get(j);
            let slot = self.levels[j].slot(rec.entries(), tag);
            let child = self.tables.insert(rec);
            self.stes[s].link = child;
            let below = self.stes.insert(SteRec::new(*tag, child, 0, slot));
            self.tables[child].slots.set(slot, below);
            s = below;
        }
        if split + 1 < n {
            self.presized = true;
        }
        self.stes[s].link = self.ctrls.intern(&plan.ctrl);
        self.set_action_stes(s, extras, images);
        self.rules += 1;
        self.handle(s)
    }

    /// A handle to the rule whose last STE is `s`.
    pub(super) fn handle(&self, s: u32) -> RuleHandle {
        RuleHandle {
            tables: self.id,
            ste: s,
        }
    }

    // --- remove -------------------------------------------------------------------

    /// Removes `rule` with one write, flushed: the topmost of its STEs no other rule
    /// passes through is unlinked (the next STE of its chain copied into its slot, or the
    /// unused-slot STE written there, or its predecessor's miss address set past it).
    /// Then its STEs, tables and entries below that point go back to the pool, to be
    /// reused after the next `SYNC_STEERING`.
    ///
    /// A handle whose rule has other handles (identical duplicates, see
    /// [`TablesConfig::share_identical`]) only gives its share back: nothing is written,
    /// and the rule stays installed for the others.
    pub fn remove(&mut self, ring: &mut SendRing, rule: RuleHandle) -> Result<(), RemoveError> {
        let n = self.levels.len();
        if self.last_ste_of(&rule).is_none() {
            return Err(RemoveError {
                error: HtblError::ForeignHandle,
                rule: Some(rule),
            });
        }
        if let Err(error) = self.settle(ring) {
            return Err(RemoveError {
                error,
                rule: Some(rule),
            });
        }
        if self.stes[rule.ste].refs.get() > 1 {
            self.unshare(rule);
            return Ok(());
        }
        // The rule's STEs, level by level, and the topmost one only it uses.
        let mut path = [NIL; MAX_LOOKUPS];
        let mut s = rule.ste;
        for level in (0..n).rev() {
            path[level] = s;
            s = self.tables[self.stes[s].table].owner;
        }
        let top = (0..n)
            .find(|&i| self.stes[path[i]].refs.get() == 1)
            .unwrap_or(n - 1);
        let x = path[top];
        let rec = &self.stes[x];
        let (table, t) = (rec.table, &self.tables[rec.table]);
        let live = rec.place[usize::from(t.gen)];
        // In a slot, x is at home there; in a collision entry, its tag hashes to it.
        let slot = if live.home & IN_ENTRY == 0 {
            live.home
        } else {
            self.levels[usize::from(t.level)].slot(t.entries(), &rec.tag)
        };
        let next = live.next;
        let pred = self.predecessor(table, slot, x);
        let mirror = self.mirror_remove(x);

        let enc = self.enc;
        let res = Txn::with(ring, self.completion).run(|t| {
            if let Some(mr) = mirror {
                self.write_mirror_remove(t, mr)?;
            }
            if pred != NIL {
                let image = self.image(pred, self.miss_of(next), None);
                let (region, addr) = self.place(pred);
                let posted = enc.posted(image, STE_CTRL_SIZE);
                t.link(&region, addr, &posted[..STE_CTRL_SIZE])
            } else {
                let tbl = &self.tables[table];
                let (region, addr) = (tbl.chunk.region(), tbl.slot_addr(slot));
                if next == NIL {
                    t.link(&region, addr, &self.unused[top])
                } else {
                    let image = self.image(next, self.miss_of(self.at(next).next), None);
                    t.link(&region, addr, &enc.posted(image, STE_SIZE))
                }
            }
        });
        let (free, error, ring_ok) = match res {
            Ok(posted) => {
                self.deferred.posted(posted);
                (true, None, true)
            }
            Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => (true, None, false),
            Err(Failed {
                outcome: Outcome::Rejected { settled },
                error,
            }) => {
                if mirror.is_some() {
                    self.abort_migration(settled, true);
                }
                return Err(RemoveError {
                    error: HtblError::Send(error),
                    rule: Some(rule),
                });
            }
            // It may have landed: the rule is gone, what it used stays out of use.
            Err(Failed {
                outcome: Outcome::Unknown,
                error,
            }) => (false, Some(error), false),
        };
        if let Some(mr) = mirror {
            self.commit_mirror_remove(x, mr, free);
        }
        self.commit_remove(&path, top, slot, pred, free);
        match error {
            None => {
                if ring_ok {
                    self.after_removal(ring, table);
                }
                Ok(())
            }
            Some(error) => {
                if mirror.is_some() {
                    self.abort_migration(false, true);
                }
                Err(RemoveError {
                    error: HtblError::Send(error),
                    rule: None,
                })
            }
        }
    }

    /// The STE before `x` in the chain at `slot` of `table` (NIL: `x` heads it).
    fn predecessor(&self, table: u32, slot: u32, x: u32) -> u32 {
        let t = &self.tables[table];
        let gen = usize::from(t.gen);
        let mut p = NIL;
        let mut s = t.slots.get(slot);
        while s != x && s != NIL {
            p = s;
            s = self.stes[s].place[gen].next;
        }
        p
    }

    /// Records a landed removal of the rule whose STEs are `path`, unlinked at level `top`
    /// (its STE's slot `slot`, its predecessor `pred`); `free`: hand the unreachable
    /// memory back (else it is kept out of use, as the unlink may not have landed).
    fn commit_remove(
        &mut self,
        path: &[u32; MAX_LOOKUPS],
        top: usize,
        slot: u32,
        pred: u32,
        free: bool,
    ) {
        let n = self.levels.len();
        for &s in &path[..top] {
            let r = &mut self.stes[s].refs;
            *r = NonZeroU32::new(r.get() - 1).unwrap_or(NonZeroU32::MIN);
        }
        let x = path[top];
        let table = self.stes[x].table;
        let t = &mut self.tables[table];
        // x's chain members are all of this table: their live places are `place[gen]`.
        let gen = usize::from(t.gen);
        let places = self.stes[x].place;
        let (live, spare) = (places[gen], places[1 - gen]);
        let next = live.next;
        t.stes -= 1;
        if pred != NIL {
            // x sat in a collision entry.
            t.collisions -= 1;
            self.stes[pred].place[gen].next = next;
        } else if next == NIL {
            t.slots.set(slot, NIL);
        } else {
            // The next STE now lives in the slot; its entry is free.
            t.slots.set(slot, next);
            t.collisions -= 1;
            let moved = std::mem::replace(&mut self.stes[next].place[gen].home, slot);
            self.release_entry(moved, free);
        }
        // A spare place of x names an old table's entry after a growth's switch (a
        // growing copy's entry was released with the copy's own removal).
        self.release_entry(spare.home, free && self.sweep_frees());
        // x sat in a collision entry (its slot's STEs are dealt with above).
        self.release_entry(live.home, free);
        // x and everything below it belong to this rule alone. Below the top, each STE
        // sat alone in a one-version table's slot.
        for (&s, level) in path[top..n].iter().zip(top..) {
            let Some(rec) = self.stes.remove(s) else {
                continue;
            };
            if level + 1 < n {
                // A table that empties while growing stops growing.
                if self.migration.as_ref().is_some_and(|m| m.table == rec.link) {
                    self.abort_migration(free, false);
                }
                if let Some(child) = self.tables.remove(rec.link) {
                    self.release_chunk(child.chunk, free);
                }
            } else {
                self.ctrls.release(rec.link);
                // Most matchers' rules have no action STEs: skip hashing into empty maps.
                if !self.extras.is_empty() {
                    self.extra_images.remove(&s);
                    if let Some(extras) = self.extras.remove(&s) {
                        for e in extras.into_vec() {
                            self.release_slab_entry(e, free);
                        }
                    }
                }
            }
        }
        self.rules -= 1;
    }

    /// Frees the collision entry named by a `home`, if it names one.
    pub(super) fn release_entry(&mut self, home: u32, free: bool) {
        if home == NIL || home & IN_ENTRY == 0 {
            return;
        }
        if let Some(e) = self.entries.remove(home & !IN_ENTRY) {
            self.release_slab_entry(e, free);
        }
    }

    pub(super) fn release_slab_entry(&mut self, e: Entry, free: bool) {
        if free {
            self.deferred.free_entry(&mut self.slab, e);
        } else {
            self.counters.leaked_entries += 1;
        }
    }

    pub(super) fn release_chunk(&mut self, c: Chunk, free: bool) {
        if free {
            self.deferred.free_chunk(&self.pool, c);
        } else {
            self.counters.leaked_chunks += 1;
        }
    }

    // --- places and images ------------------------------------------------------------

    /// The live place of STE `s` (in its table's current version).
    pub(super) fn at(&self, s: u32) -> Place {
        let rec = &self.stes[s];
        rec.place[usize::from(self.tables[rec.table].gen)]
    }

    pub(super) fn at_mut(&mut self, s: u32) -> &mut Place {
        let gen = usize::from(self.tables[self.stes[s].table].gen);
        &mut self.stes[s].place[gen]
    }

    /// The other place of STE `s` (see [`SteRec::place`]).
    pub(super) fn spare(&self, s: u32) -> Place {
        let rec = &self.stes[s];
        rec.place[1 - usize::from(self.tables[rec.table].gen)]
    }

    pub(super) fn spare_mut(&mut self, s: u32) -> &mut Place {
        let gen = usize::from(self.tables[self.stes[s].table].gen);
        &mut self.stes[s].place[1 - gen]
    }

    /// The region and ICM address of an STE.
    pub(super) fn place(&self, s: u32) -> (IcmRegion, u64) {
        let home = self.at(s).home;
        if home & IN_ENTRY != 0 {
            let e = &self.entries[home & !IN_ENTRY];
            (self.slab_region(e), e.icm_addr())
        } else {
            let t = &self.tables[self.stes[s].table];
            (t.chunk.region(), t.slot_addr(home))
        }
    }

    pub(super) fn slab_region(&self, e: &Entry) -> IcmRegion {
        match self.slab.region(e) {
            Some(r) => r,
            None => panic!("collision entry {:#x} is not from this slab", e.icm_addr()),
        }
    }

    /// Where a miss to chain member `next` goes (NIL: the end anchor).
    pub(super) fn miss_of(&self, next: u32) -> u64 {
        if next == NIL {
            self.end_addr
        } else {
            self.place(next).1
        }
    }

    /// The image of STE `s` as built, missing to `miss`; `child` overrides where an
    /// inner STE hits (a table being switched to).
    pub(super) fn image(&self, s: u32, miss: u64, child: Option<(u64, u32)>) -> Ste {
        let mut image = [0; STE_SIZE];
        self.image_into(&mut image, s, miss, child);
        image
    }

    /// [`MatcherTables::image`] built into `out` (one STE).
    pub(super) fn image_into(&self, out: &mut [u8], s: u32, miss: u64, child: Option<(u64, u32)>) {
        let rec = &self.stes[s];
        let level = usize::from(self.tables[rec.table].level);
        if level + 1 < self.levels.len() {
            let child = child.unwrap_or_else(|| self.tables[rec.link].target());
            self.enc.inner_ste_into(
                out,
                &self.levels[level],
                &self.levels[level + 1],
                &rec.tag,
                child,
                miss,
            )
        } else {
            self.enc.last_ste_into(
                out,
                self.ctrls.get(rec.link),
                &self.levels[level],
                &rec.tag,
                miss,
            )
        }
    }

    /// The posted image of an unused slot of a table of level `i` (always miss to the
    /// end anchor).
    pub(super) fn unused_posted(&self, i: usize) -> &Ste {
        &self.unused[i]
    }

    pub(super) fn enc(&self) -> Encoder {
        self.enc
    }

    pub(super) fn level(&self, i: usize) -> &Level {
        &self.levels[i]
    }

    /// Lookups of the chain (levels).
    pub(super) fn lookups(&self) -> usize {
        self.levels.len()
    }

    pub(super) fn pool(&self) -> &Arc<IcmPool> {
        &self.pool
    }

    pub(super) fn slab_mut(&mut self) -> &mut EntrySlab {
        &mut self.slab
    }

    pub(super) fn entries_mut(&mut self) -> &mut Arena<Entry> {
        &mut self.entries
    }

    pub(super) fn entries_ref(&self) -> &Arena<Entry> {
        &self.entries
    }

    pub(super) fn growth_step(&self) -> u32 {
        self.growth_step
    }

    pub(super) fn growth(&self) -> Growth {
        self.growth
    }

    #[cfg(test)]
    pub(super) fn slab(&self) -> &EntrySlab {
        &self.slab
    }

    pub(super) fn grow_enabled(&self) -> (bool, u8) {
        (self.grow, self.max_log)
    }

    pub(super) fn shrink_enabled(&self) -> bool {
        self.shrink
    }

    // --- completion -----------------------------------------------------------------

    /// When the tables' updates return ([`TablesConfig::completion`]).
    pub fn completion(&self) -> Completion {
        self.completion
    }

    pub(super) fn deferred_mut(&mut self) -> &mut Deferred {
        &mut self.deferred
    }

    /// Catches up with `ring` (the ring these tables' updates go to): releases what
    /// waited for updates that have landed, and fails with [`HtblError::Lost`] if one
    /// did not. Every update calls it first; with [`Completion::Wait`] it costs a branch.
    #[inline]
    pub fn settle(&mut self, ring: &mut SendRing) -> Result<(), HtblError> {
        if self.deferred.idle() {
            return Ok(());
        }
        self.settle_with(ring, false).map_err(HtblError::Lost)
    }

    /// [`MatcherTables::settle`]; an error is the send failure that lost the tables.
    fn settle_with(&mut self, ring: &mut SendRing, thorough: bool) -> Result<(), SendError> {
        self.deferred
            .settle(ring, &self.pool, &mut self.slab, thorough);
        match self.deferred.lost() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Waits until every update made so far is in ICM (flushing `ring`), then
    /// [`MatcherTables::settle`]s: `Ok` means the tables describe ICM. A ring failure
    /// after the last of these updates landed is not theirs: still `Ok` (the ring is
    /// replaced when next taken).
    pub fn sync(&mut self, ring: &mut SendRing) -> Result<(), HtblError> {
        self.wait_all(ring).map_err(|(e, lost)| match lost {
            true => HtblError::Lost(e),
            false => HtblError::Send(e),
        })
    }

    /// [`MatcherTables::sync`]; an error is the send failure, and whether it lost the
    /// tables (`false`: the flush failed with updates of these tables in flight).
    fn wait_all(&mut self, ring: &mut SendRing) -> Result<(), (SendError, bool)> {
        let flushed = if self.deferred.in_flight() {
            ring.flush()
        } else {
            Ok(())
        };
        self.settle_with(ring, true).map_err(|e| (e, true))?;
        match flushed {
            Err(e) if self.deferred.in_flight() => Err((e, false)),
            _ => Ok(()),
        }
    }

    /// Runs `updates` as one batch: with [`Completion::Wait`] tables, its updates are
    /// queued as with [`Completion::Queue`] and waited for together at the end
    /// ([`MatcherTables::sync`]; its failure, the send error, is returned beside the
    /// batch's result); with the other modes they go as those modes say and nothing is
    /// waited for. A send failure during the batch therefore loses the tables
    /// ([`HtblError::Lost`]) as it would with `Queue`; refusals change nothing, as
    /// always.
    pub fn batch<R>(
        &mut self,
        ring: &mut SendRing,
        updates: impl FnOnce(&mut MatcherTables, &mut SendRing) -> R,
    ) -> (R, Result<(), SendError>) {
        if self.completion != Completion::Wait {
            return (updates(self, ring), Ok(()));
        }
        self.completion = Completion::Queue;
        let done = updates(self, ring);
        self.completion = Completion::Wait;
        let synced = self.wait_all(ring).map_err(|(e, _)| e);
        (done, synced)
    }

    /// Keeps `hold` alive until the updates made so far are in ICM: what a removed
    /// rule's STEs pointed at (its action list), which must outlive any STE that may
    /// still lead there.
    pub fn hold(&mut self, hold: Hold) {
        self.deferred.hold(hold);
    }

    /// Drops the holds whose updates have landed. Dropping the last holder of an
    /// action list may destroy a table, which flushes the domain's rings: call this
    /// without a ring's lock held.
    #[inline]
    pub fn drop_released(&mut self) {
        self.deferred.drop_released();
    }

    // --- accounting -----------------------------------------------------------------

    /// Counters and sizes, at this moment.
    pub fn stats(&self) -> HtblStats {
        let mut table_entries = 0;
        let mut slot_bytes = 0;
        let mut collisions = 0;
        let mut longest = 0u32;
        for (_, t) in self.tables.iter() {
            table_entries += u64::from(t.entries());
            slot_bytes += t.slots.host_bytes();
            collisions += u64::from(t.collisions);
            for head in t.slots.iter() {
                let mut len = 0;
                let mut s = head;
                while s != NIL {
                    len += 1;
                    s = self.at(s).next;
                }
                longest = longest.max(len);
            }
        }
        if let Some(p) = &self.prewritten {
            table_entries += u64::from(entries_of(&p.chunk));
        }
        let extras: usize = self.extras.values().map(|e| e.len()).sum();
        let images: usize = self.extra_images.values().map(|e| e.len()).sum();
        let host_bytes = std::mem::size_of::<MatcherTables>()
            + self.levels.len() * (std::mem::size_of::<Level>() + STE_SIZE)
            + self.tables.host_bytes()
            + slot_bytes
            + self.stes.host_bytes()
            + self.entries.host_bytes()
            + self.ctrls.host_bytes()
            + self.extras.capacity() * (std::mem::size_of::<(u32, Box<[Entry]>)>() + 1)
            + extras * std::mem::size_of::<Entry>()
            + self.extra_images.capacity() * (std::mem::size_of::<(u32, Box<[Ste]>)>() + 1)
            + images * STE_SIZE
            + self.migration.as_ref().map_or(0, |m| m.host_bytes())
            + self
                .prewritten
                .as_ref()
                .map_or(0, |p| p.dirty.capacity() * std::mem::size_of::<u32>())
            + self.slab.stats().host_bytes
            + self.deferred.host_bytes();
        HtblStats {
            rules: self.rules,
            shared_handles: self.shared,
            stes: self.stes.len() as u64,
            tables: self.tables.len() as u64,
            table_entries,
            collision_entries: collisions,
            action_stes: extras as u64,
            ctrl_blocks: self.ctrls.len() as u64,
            longest_chain: longest,
            grows: self.counters.grows,
            shrinks: self.counters.shrinks,
            grow_failures: self.counters.grow_failures,
            leaked_chunks: self.counters.leaked_chunks + self.deferred.leaked_chunks,
            leaked_entries: self.counters.leaked_entries + self.deferred.leaked_entries,
            presize_fallbacks: self.counters.presize_fallbacks,
            host_bytes,
        }
    }
}

/// A chunk for a new table of `2^log` entries; when the pool has none that large, one
/// of a single entry (the table grows from there if it may).
fn alloc_table(pool: &IcmPool, log: u8) -> Result<Chunk, IcmError> {
    match pool.alloc(log) {
        Err(_) if log > 0 => pool.alloc(0),
        r => r,
    }
}

/// The entries of a table's chunk, as STE hit addresses carry them.
fn entries_of(chunk: &Chunk) -> u32 {
    1 << chunk.log_entries()
}

/// The ICM address of `slot` of a table in `chunk`.
fn slot_addr(chunk: &Chunk, slot: u32) -> u64 {
    chunk.icm_addr() + (u64::from(slot) << crate::icm::LOG_STE_SIZE)
}

/// How many 64-byte slots one write of the ring takes.
fn slots_per_write(ring: &SendRing) -> u32 {
    u32::try_from(ring.config().max_write / STE_SIZE)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Writes every slot of a table no packet reaches yet: `unused` (posted) in each, but
/// `ste` (a slot and its posted image) in its slot. Contiguous slots go in one write,
/// up to `per_write` slots each: a table of up to `per_write` entries is one write.
fn write_table(
    t: &mut Txn<'_>,
    chunk: &Chunk,
    unused: &Ste,
    ste: Option<(u32, &Ste)>,
    per_write: u32,
) -> Result<(), SendError> {
    let entries = entries_of(chunk);
    let run = per_write.min(entries);
    let mut buf = Vec::with_capacity(run as usize * STE_SIZE);
    let mut first = 0;
    while first < entries {
        let end = first.saturating_add(run).min(entries);
        buf.clear();
        for slot in first..end {
            match ste {
                Some((at, image)) if at == slot => buf.extend_from_slice(image),
                _ => buf.extend_from_slice(unused),
            }
        }
        t.write(&chunk.region(), slot_addr(chunk, first), &buf)?;
        first = end;
    }
    Ok(())
}

impl Drop for MatcherTables {
    fn drop(&mut self) {
        self.deferred.drain(&self.pool, &mut self.slab);
        // The growing copy's entries are in `entries`, freed below.
        if let Some(c) = self.migration.take().and_then(Migration::into_chunk) {
            let _ = self.pool.free(c);
        }
        for t in self.tables.drain().collect::<Vec<_>>() {
            let _ = self.pool.free(t.chunk);
        }
        for e in self.entries.drain().collect::<Vec<_>>() {
            let _ = self.slab.free(e);
        }
        for (_, extras) in self.extras.drain().collect::<Vec<_>>() {
            for e in extras.into_vec() {
                let _ = self.slab.free(e);
            }
        }
        // Nothing ever pointed at it.
        if let Some(p) = self.prewritten.take() {
            let _ = self.pool.free(p.chunk);
        }
        if let Some(c) = self.end_chunk.take() {
            let _ = self.pool.free(c);
        }
    }
}

#[cfg(test)]
impl MatcherTables {
    /// Checks the records against each other and against ICM (`read` returns the line at
    /// an ICM address): chains, counts, homes, reference counts, and every STE, unused
    /// slot and anchor as the engine would write it now.
    pub(super) fn check(&self, read: &dyn Fn(u64) -> Ste) -> Result<(), String> {
        let n = self.levels.len();
        let line = |addr: u64, want: Ste, what: &str| -> Result<(), String> {
            let got = read(addr);
            let want = self.enc.posted(want, STE_SIZE);
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "{what} at {addr:#x}: ICM {got:02x?}, expected {want:02x?}"
                ))
            }
        };
        line(
            self.end_addr,
            self.enc.anchor(self.end_target),
            "end anchor",
        )?;
        if let Some(p) = &self.prewritten {
            let unused = self.enc.unused_slot(&self.levels[n - 1], self.end_addr);
            for slot in (0..entries_of(&p.chunk)).filter(|s| !p.dirty.contains(s)) {
                line(slot_addr(&p.chunk, slot), unused, "prewritten unused slot")?;
            }
        }
        let (mut last_level, mut shared) = (0, 0);
        for (id, t) in self.tables.iter() {
            let level = &self.levels[usize::from(t.level)];
            let (mut stes, mut collisions) = (0, 0);
            for (slot, head) in t.slots.iter().enumerate() {
                if head == NIL {
                    let unused = self.enc.unused_slot(level, self.end_addr);
                    line(t.slot_addr(slot as u32), unused, "unused slot")?;
                    continue;
                }
                let mut s = head;
                while s != NIL {
                    let rec = &self.stes[s];
                    if rec.table != id || level.slot(t.entries(), &rec.tag) != slot as u32 {
                        return Err(format!("STE {s} is not in table {id} slot {slot}"));
                    }
                    let at = self.at(s);
                    let in_entry = at.home & IN_ENTRY != 0;
                    if in_entry != (s != head) || (!in_entry && at.home != slot as u32) {
                        return Err(format!("STE {s} has home {:#x}", at.home));
                    }
                    let spare_ok = self.spare(s) == Place::NONE
                        || self.migration.as_ref().is_some_and(|m| m.table == id);
                    if !spare_ok {
                        return Err(format!("STE {s} has a spare place {:?}", self.spare(s)));
                    }
                    line(
                        self.place(s).1,
                        self.image(s, self.miss_of(at.next), None),
                        "STE",
                    )?;
                    if usize::from(t.level) + 1 < n {
                        let child = &self.tables[rec.link];
                        if child.owner != s {
                            return Err(format!("table {} is not owned by STE {s}", rec.link));
                        }
                        let below: u32 = child
                            .slots
                            .iter()
                            .flat_map(|h| {
                                std::iter::successors((h != NIL).then_some(h), |&x| {
                                    let nx = self.at(x).next;
                                    (nx != NIL).then_some(nx)
                                })
                            })
                            .map(|x| self.stes[x].refs.get())
                            .sum();
                        if below != rec.refs.get() {
                            return Err(format!("STE {s}: refs {} but {below} below", rec.refs));
                        }
                    } else {
                        last_level += u64::from(rec.refs.get());
                        shared += u64::from(rec.refs.get() - 1);
                        if rec.refs.get() != 1 && !self.share_identical {
                            return Err(format!("last-level STE {s} has refs {}", rec.refs));
                        }
                        self.check_action_stes(s, &line)?;
                    }
                    stes += 1;
                    collisions += u32::from(in_entry);
                    s = at.next;
                }
            }
            if (stes, collisions) != (t.stes, t.collisions) {
                return Err(format!(
                    "table {id}: {stes} STEs, {collisions} collisions; records say {}, {}",
                    t.stes, t.collisions
                ));
            }
        }
        if (last_level, shared) != (self.rules, self.shared) {
            return Err(format!(
                "{last_level} handles of last-level STEs ({shared} shared), records say {} ({})",
                self.rules, self.shared
            ));
        }
        if self
            .extra_images
            .keys()
            .any(|s| !self.extras.contains_key(s))
        {
            return Err("action STE images of a rule without action STEs".into());
        }
        self.check_migration(&line)
    }

    /// With [`TablesConfig::share_identical`], the kept images of last STE `s`'s action
    /// STEs are what ICM holds; without, none are kept.
    fn check_action_stes(
        &self,
        s: u32,
        line: &dyn Fn(u64, Ste, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        let extras = self.extras.get(&s).map_or(&[][..], |x| &x[..]);
        let Some(images) = self.extra_images.get(&s) else {
            if self.share_identical && !extras.is_empty() {
                return Err(format!("STE {s}: action STEs without their images"));
            }
            return Ok(());
        };
        if !self.share_identical || images.len() != extras.len() {
            return Err(format!(
                "STE {s}: {} action STE images for {} action STEs",
                images.len(),
                extras.len()
            ));
        }
        for (e, image) in extras.iter().zip(images.iter()) {
            line(e.icm_addr(), *image, "action STE")?;
        }
        Ok(())
    }
}
