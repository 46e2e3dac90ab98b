//! Matchers: one mask, its STE lookups and hash tables per side, placed in a table's
//! lookup order by priority.
//!
//! A [`Matcher`] belongs to a [`Table`] and matches the fields its mask sets. Packets
//! entering the table try its matchers in order of priority (lower values first; among
//! equal priorities the newest first, as in rdma-core), each matcher's miss leading into
//! the next, and the last one's into the side's default. A matcher can be added before,
//! between or after existing ones at any time; see the `link` module for how the anchors are
//! rewritten so that packets never see a half-linked matcher.
//!
//! Rules go into a matcher with [`Matcher::insert`] (see [`crate::rule`]).
//!
//! ## Ownership and concurrency
//!
//! `Arc<Matcher>` is shared by its owner and its rules: a matcher lives until its last
//! rule is gone, and holds its table (which holds its domain). Dropping the last `Arc`
//! unlinks the matcher and frees its tables; [`Matcher::destroy`] does the same, or says
//! why it cannot.
//!
//! Each side of a matcher has its own lock and its own send ring (assigned round robin
//! over the domain's rings), so rules of different matchers are inserted and removed in
//! parallel. Threads sharing one matcher take turns on its lock, unless the matcher is
//! split into shards ([`MatcherOptions::shards`]): each shard is a set of hash tables
//! with its own lock and ring, listed in the table as consecutive matchers of the same
//! priority, and a rule lives in the shard its tags hash to, or in its inserting
//! thread's shard ([`MatcherOptions::placement`]). Adding or removing a
//! matcher takes the table's control lock and, briefly, the locks of its neighbours; it
//! never waits on a firmware command under a lock that a rule update takes.

mod combine;
mod link;
mod route;

use std::sync::Arc;

use ste_builder::Caps;

use crate::action::{Action, ActionError, ActionList};
use crate::caps::CapsError;
use crate::domain::{PerSide, Table, TableError};
use crate::htbl::{
    Completion, Growth, HtblError, HtblStats, MatcherTables, RuleHandle, TablesConfig,
};
use crate::matching::{
    BuilderChain, ChainCaps, ChainError, DomainSide, Match, MatchError, RawMatch, RuleTags,
};

pub(crate) use link::{Linked, MatcherSide};
pub(crate) use route::Routes;

/// What inserting a rule whose value equals an installed rule's does.
///
/// rdma-core installs the second copy behind the first in the same miss chain, where no
/// packet ever reaches it; we never do that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// Refuse it with `HtblError::Duplicate` (the default).
    #[default]
    Refuse,
    /// If its actions encode to the same STEs as the installed rule's, hand out another
    /// [`crate::Rule`] for the same installed entries (reference counted: the entries go
    /// when the last such rule is dropped; nothing is written). Differing actions are
    /// still refused. Such shared rules cannot change their actions
    /// ([`crate::Rule::set_actions`]) while shared.
    ShareIdentical,
}

/// How a matcher is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatcherOptions {
    /// Lookup order in the table: lower first; a new matcher goes before existing ones of
    /// the same priority.
    pub priority: u32,
    /// About `2^expected_log_rules` rules are expected (0: no idea): the start table
    /// and the first hash table of every lower level start at that size (capped by the
    /// bits the level hashes and the largest ICM chunk) instead of growing to it. Fits
    /// matchers whose rules share their first STEs (a 5-tuple matcher); costs a full
    /// table at a level where all rules share one STE. With several
    /// [`MatcherOptions::shards`] it counts the whole matcher's rules: each shard starts
    /// at its share.
    pub expected_log_rules: u8,
    /// The hash tables may grow when crowded; if not they keep their size and miss
    /// chains get longer.
    pub grow: bool,
    /// How many times larger a crowded table grows: fourfold (the default, as
    /// rdma-core) or twofold, for tables at most about twice the size their rules need
    /// at the price of twice the growths. Twofold suits a matcher whose final size is
    /// unknown and whose ICM matters, such as one with several
    /// [`MatcherOptions::shards`] placed by thread, where each shard grows on its own.
    pub growth: Growth,
    /// A hash table that removals leave at less than a sixteenth of its size's worth of
    /// rules shrinks by the [`MatcherOptions::growth`] factor (never below the size it
    /// started with, so not below the `expected_log_rules` hint), so that the ICM and
    /// host memory of a burst of rules come back once they are removed. It costs the
    /// removals that follow a copy step each, as growth costs inserts. On by default;
    /// off, tables keep the largest size they reached, as rdma-core's do.
    pub shrink: bool,
    /// What an insert of an installed rule's value does.
    pub duplicates: Duplicates,
    /// When an insert or a removal returns: once it is in ICM (the default), or once it
    /// is posted or queued, which is cheaper but reports a send failure later, as
    /// [`HtblError::Lost`] on every later call (see [`Completion`]). Changing a rule's
    /// actions always waits. [`Matcher::sync`] waits for everything posted.
    pub completion: Completion,
    /// Into how many shards the rules are split, 1 (the default) to [`MAX_SHARDS`].
    ///
    /// Each shard is a whole set of the matcher's hash tables, with its own lock and
    /// send ring, and a rule goes into the shard its tags hash to, or its inserting
    /// thread's ([`MatcherOptions::placement`]). The shards follow one another in the
    /// table's lookup order, each one's misses leading into the next, so packets see
    /// one matcher. Threads that insert into or remove from the matcher at the same
    /// time then mostly update different shards in parallel, where with one shard they
    /// take turns (see the module documentation).
    ///
    /// The price is paid in the device's lookups: a packet that matches no rule of
    /// the matcher walks every shard's tables instead of one set, and one that matches
    /// walks half of them on average. Each shard also has its own start table, end
    /// anchor and copies of shared STEs (rules whose first tags are equal share those
    /// STEs only within a shard). Use more than one shard for a matcher that several
    /// threads update at high rates.
    pub shards: u8,
    /// Which shard a rule goes into, when there are several.
    pub placement: ShardPlacement,
}

/// Which shard of a sharded matcher ([`MatcherOptions::shards`]) a rule goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardPlacement {
    /// The shard its tags hash to (the default): a duplicate of an installed rule
    /// always meets it there. Every thread updates every shard, so each shard's state
    /// (its lock, send ring and bookkeeping) moves between the threads' cores; batches
    /// ([`Matcher::insert_batch_raw`]) pay for that once per shard and group instead of
    /// once per rule, and scale with this placement.
    #[default]
    Tags,
    /// The inserting thread's own shard (the matcher gives its shards out in turn to
    /// the threads as they first insert into it, so that up to `shards` threads each
    /// have one of their own), so that threads inserting and removing one rule at a
    /// time each keep to a shard, whose state then stays on their core.
    ///
    /// Duplicates are then found through the matcher's routes: for every installed
    /// rule and side, a keyed digest of its tags and the shard that holds it. An
    /// insert whose digest has a route goes to that shard (where an equal rule is
    /// refused or shared as usual) instead of the thread's. The routes cost 5 to 11
    /// host bytes per rule and side, and each insert and removal one lookup in them
    /// under one of 256 locks.
    Thread,
}

/// The most shards a matcher can have ([`MatcherOptions::shards`]).
pub const MAX_SHARDS: u8 = 16;

impl Default for MatcherOptions {
    /// Priority 0, no size hint, tables that grow and shrink, duplicates refused, every
    /// update waited for, one shard.
    fn default() -> Self {
        MatcherOptions {
            priority: 0,
            expected_log_rules: 0,
            grow: true,
            growth: Growth::Quadruple,
            shrink: true,
            duplicates: Duplicates::Refuse,
            completion: Completion::Wait,
            shards: 1,
            placement: ShardPlacement::Tags,
        }
    }
}

impl MatcherOptions {
    /// The default options with `priority`.
    pub fn priority(priority: u32) -> MatcherOptions {
        MatcherOptions {
            priority,
            ..MatcherOptions::default()
        }
    }
}

/// Why a matcher could not be made (or unlinked). A failed [`Matcher::new`] leaves the
/// table as it was.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The typed mask is invalid (a value too wide for its field, ...).
    #[error("the mask: {0}")]
    Mask(#[from] MatchError),
    /// The device's capabilities cannot drive the lookups.
    #[error(transparent)]
    Caps(#[from] CapsError),
    /// No lookup of the device can match the mask on a side (the error names the
    /// field).
    #[error("{side}: {source}")]
    Chain {
        /// The side.
        side: DomainSide,
        /// What is wrong with the mask.
        #[source]
        source: ChainError,
    },
    /// The side's hash tables could not be set up (no ICM, the send ring failed, a
    /// lookup kind the engine does not build).
    #[error("{side}: setting up the hash tables: {source}")]
    Tables {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: HtblError,
    },
    /// Rewriting the previous matcher's end anchor failed.
    #[error("{side}: rewriting the previous matcher's end anchor: {source}")]
    Link {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: HtblError,
    },
    /// Rewriting the table's root anchor failed.
    #[error("{side}: rewriting the table root: {source}")]
    Root {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: TableError,
    },
    /// [`MatcherOptions::shards`] is 0 or more than [`MAX_SHARDS`].
    #[error("{shards} shards: a matcher has 1 to {MAX_SHARDS}")]
    Shards {
        /// The number asked for.
        shards: u8,
    },
    /// A side the table's domain does not have (an internal inconsistency).
    #[error("the matcher has no {side} side")]
    NoSuchSide {
        /// The side.
        side: DomainSide,
    },
}

/// [`Matcher::destroy`] of a matcher that still has rules (or other holders).
#[derive(Debug, thiserror::Error)]
#[error("the matcher still has {users} other holder(s) (its rules, clones of its Arc)")]
pub struct MatcherInUse {
    /// The matcher, unchanged.
    pub matcher: Arc<Matcher>,
    /// Other holders.
    pub users: usize,
}

/// Sizes and counters of a matcher, per side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatcherStats {
    /// The hash tables' statistics of each side the matcher has (all shards').
    pub sides: Vec<(DomainSide, HtblStats)>,
    /// Rules in each shard ([`MatcherOptions::shards`]; the largest count over the
    /// sides, as [`MatcherStats::rules`]).
    pub shard_rules: Vec<u64>,
    /// Routes of a matcher placed by thread ([`ShardPlacement::Thread`]): one per
    /// distinct installed value and side (0 for other matchers).
    pub routes: usize,
    /// Host bytes of those routes.
    pub route_bytes: usize,
}

impl MatcherStats {
    /// Rules installed (the largest count over the sides: an FDB rule may skip one).
    pub fn rules(&self) -> u64 {
        self.sides.iter().map(|(_, s)| s.rules).max().unwrap_or(0)
    }

    /// Host bytes of the hash tables, all sides, and of the routes.
    pub fn host_bytes(&self) -> usize {
        self.sides.iter().map(|(_, s)| s.host_bytes).sum::<usize>() + self.route_bytes
    }
}

/// A matcher: a mask, a priority, and per side of its table's domain the STE lookups
/// chosen for the mask and the hash tables its rules live in, in one or more shards.
/// See the module documentation.
#[derive(Debug)]
pub struct Matcher {
    // Field order is drop order: `Drop` unlinks, then the tables go with `shards`, then
    // the table.
    /// Never empty; the shards stand in this order, one after the other, in the table's
    /// matcher list.
    shards: Box<[Arc<Linked>]>,
    /// Where each installed value is, when rules are placed by thread.
    routes: Option<Routes>,
    mask: RawMatch,
    /// The capabilities rule tags are computed with (vports looked up on demand).
    pub(crate) caps: Caps,
    table: Arc<Table>,
}

impl Matcher {
    /// Makes a matcher for `mask` in `table` and links it into the table's lookup order
    /// by `opts.priority`.
    pub fn new(
        table: &Arc<Table>,
        mask: &Match,
        opts: MatcherOptions,
    ) -> Result<Arc<Matcher>, MatcherError> {
        Matcher::new_raw(table, &mask.to_raw()?, opts)
    }

    /// [`Matcher::new`] with a raw 448-byte PRM mask and its `match_criteria_enable`.
    pub fn new_raw(
        table: &Arc<Table>,
        mask: &RawMatch,
        opts: MatcherOptions,
    ) -> Result<Arc<Matcher>, MatcherError> {
        if !(1..=MAX_SHARDS).contains(&opts.shards) {
            return Err(MatcherError::Shards {
                shards: opts.shards,
            });
        }
        let dmn = table.domain();
        let caps = dmn.ste_caps();
        let mut chain_caps = ChainCaps::new(dmn.caps(), &caps)?;
        // The hash-table engine does not build definer (match-type) tables yet, so keep
        // to the legacy lookups, as rdma-core does when CREATE_DEFINER fails: a mask
        // only a definer could match is refused naming the field.
        chain_caps.definer_formats = 0;
        // Every side's lookups first: a mask no side can match fails before anything is
        // written.
        let mut chains = PerSide::default();
        for &side in dmn.sides() {
            let chain = BuilderChain::new(mask, side, &chain_caps)
                .map_err(|source| MatcherError::Chain { side, source })?;
            chains.insert(side, chain);
        }

        let mut list = table.matchers();
        let at = link::position(&list, opts.priority);
        let mut shards = Vec::with_capacity(usize::from(opts.shards));
        for k in 0..usize::from(opts.shards) {
            match link_shard(table, &mut list, (at, at + k), &chains, opts) {
                Ok(shard) => shards.push(shard),
                Err(e) => {
                    // Shards linked already go out again, the last first (best effort, as
                    // in `link_shard`).
                    for k in (0..shards.len()).rev() {
                        unlink_shard(table, &mut list, at + k, false);
                    }
                    return Err(e);
                }
            }
        }
        drop(list);
        let by_thread = opts.placement == ShardPlacement::Thread && opts.shards > 1;
        Ok(Arc::new(Matcher {
            shards: shards.into_boxed_slice(),
            routes: by_thread.then(Routes::new),
            mask: mask.clone(),
            caps,
            table: Arc::clone(table),
        }))
    }

    /// Unlinks and frees the matcher now if nothing else holds it (no rule, no clone);
    /// otherwise hands it back.
    pub fn destroy(this: Arc<Matcher>) -> Result<(), MatcherInUse> {
        match Arc::try_unwrap(this) {
            Ok(m) => {
                drop(m);
                Ok(())
            }
            Err(matcher) => {
                let users = Arc::strong_count(&matcher) - 1;
                Err(MatcherInUse { matcher, users })
            }
        }
    }

    /// The table.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// The priority.
    pub fn priority(&self) -> u32 {
        self.shards[0].priority
    }

    /// The mask, as given (raw form).
    pub fn mask(&self) -> &RawMatch {
        &self.mask
    }

    /// How many shards the rules are split into ([`MatcherOptions::shards`]).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Where rules go among the shards: [`ShardPlacement::Thread`] only if it was asked
    /// for and there are several shards.
    pub fn placement(&self) -> ShardPlacement {
        match self.routes {
            Some(_) => ShardPlacement::Thread,
            None => ShardPlacement::Tags,
        }
    }

    /// The send ring the updates of the matcher's first shard use (the others' follow
    /// round robin over the domain's rings).
    pub fn ring_index(&self) -> usize {
        self.shards[0].ring
    }

    /// The lookup types of a rule's STEs on `side`, in chain order.
    pub fn lu_types(&self, side: DomainSide) -> Option<Vec<u16>> {
        self.chain(side).map(|c| c.lu_types().collect())
    }

    /// The lookups of `side`.
    pub fn chain(&self, side: DomainSide) -> Option<&BuilderChain> {
        self.shards[0].side(side).map(|s| &s.chain)
    }

    /// The ICM addresses of `side`'s start table and end anchor now (the start table
    /// moves when it grows): the first shard's start table, and the last shard's end
    /// anchor, through which every miss of the matcher leaves.
    pub fn anchors(&self, side: DomainSide) -> Option<(u64, u64)> {
        let start = match self.shards[0].side(side)?.lock().start() {
            ste_builder::ste::Connect::Hit { icm_addr, .. } => icm_addr,
            ste_builder::ste::Connect::Miss { miss_addr } => miss_addr,
        };
        let last = self.shards.last()?.side(side)?;
        let end = last.lock().end_anchor();
        Some((start, end))
    }

    /// Waits until every insert and removal made so far on the matcher is in ICM, and
    /// releases the memory they freed. With [`Completion::Wait`] there is nothing to
    /// wait for. An error names the side: a send failure now, or
    /// [`HtblError::Lost`] if an update posted earlier failed (the matcher then takes no
    /// more updates; see [`MatcherOptions::completion`]).
    pub fn sync(&self) -> Result<(), (DomainSide, HtblError)> {
        for shard in self.shards.iter() {
            for s in shard.sides.values() {
                let side = s.chain.side();
                let mut tables = s.lock();
                let mut ring = self.table.domain().ring_at(shard.ring);
                let res = tables.sync(&mut ring);
                drop(ring);
                tables.drop_released();
                res.map_err(|e| (side, e))?;
            }
        }
        Ok(())
    }

    /// The hash tables' statistics of each side (all shards' together), and each
    /// shard's rule count.
    pub fn stats(&self) -> MatcherStats {
        let mut sides: Vec<(DomainSide, HtblStats)> = Vec::new();
        let mut shard_rules = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let mut rules = 0;
            for s in shard.sides.values() {
                let side = s.chain.side();
                let stats = s.lock().stats();
                rules = rules.max(stats.rules);
                match sides.iter_mut().find(|(d, _)| *d == side) {
                    Some((_, sum)) => sum.merge(&stats),
                    None => sides.push((side, stats)),
                }
            }
            shard_rules.push(rules);
        }
        let (routes, route_bytes) = self
            .routes
            .as_ref()
            .map_or((0, 0), |r| (r.len(), r.host_bytes()));
        MatcherStats {
            sides,
            shard_rules,
            routes,
            route_bytes,
        }
    }

    /// An action list for rules of this matcher (checked for its table); the same list
    /// may serve any number of rules ([`Matcher::insert`]).
    pub fn actions(&self, actions: &[Arc<Action>]) -> Result<Arc<ActionList>, ActionError> {
        ActionList::new(&self.table, actions).map(Arc::new)
    }

    /// The shards, in lookup order.
    pub(crate) fn shards(&self) -> &[Arc<Linked>] {
        &self.shards
    }

    /// The routes, when rules are placed by thread.
    pub(crate) fn routes(&self) -> Option<&Routes> {
        self.routes.as_ref()
    }

    /// Where a rule that goes to sides `on` with `tags` (one per side, in the domain's
    /// side order) goes: a shard where a duplicate of it would be found, and with
    /// routes, each side's claim on them, which the caller hands on with the side's
    /// insert or gives back. `Err(side)`: the routes of the rule's sides name
    /// different shards, so its tags on `side` equal those of a rule installed
    /// elsewhere (nothing is claimed).
    pub(crate) fn place(
        &self,
        on: &[Option<DomainSide>; 2],
        tags: &[RuleTags; 2],
    ) -> Result<Placement, DomainSide> {
        let mut placement = Placement::default();
        let Some(routes) = &self.routes else {
            placement.shard = self.shard_by_tags(on, tags);
            return Ok(placement);
        };
        let home = routes.home(self.shards.len());
        let mut shard: Option<u8> = None;
        for (k, (side, tags)) in on.iter().zip(tags).enumerate() {
            let Some(side) = *side else {
                continue;
            };
            let digest = routes.digest(side, tags.iter());
            let got = routes.claim(digest, shard.unwrap_or(home));
            placement.claims[k] = Some(digest);
            match shard {
                None => shard = Some(got),
                Some(s) if s == got => {}
                Some(_) => {
                    placement.release(routes);
                    return Err(side);
                }
            }
        }
        placement.shard = usize::from(shard.unwrap_or(home));
        Ok(placement)
    }

    /// The shard of a rule that goes to sides `on` with `tags`: the one its tags on the
    /// first of those sides hash to. The same value always lands in the same shard,
    /// where a duplicate of it is found.
    fn shard_by_tags(&self, on: &[Option<DomainSide>; 2], tags: &[RuleTags; 2]) -> usize {
        let n = self.shards.len();
        if n == 1 {
            return 0;
        }
        let Some((_, tags)) = on.iter().zip(tags).find(|(side, _)| side.is_some()) else {
            return 0;
        };
        // The tables hash a tag's CRC into their slots; an unrelated hash here keeps a
        // shard's rules spread over all of its slots.
        let mut h: u64 = 0;
        for tag in tags.iter() {
            for word in tag.chunks(8) {
                let mut w = [0u8; 8];
                w[..word.len()].copy_from_slice(word);
                h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
            }
        }
        // The high half is the best mixed; scaled to 0..n without a division.
        (((h >> 32) * n as u64) >> 32) as usize
    }

    /// The index of the shard whose tables on `side` hold `handle`; `None` for a
    /// handle of another matcher.
    pub(crate) fn shard_of(&self, side: DomainSide, handle: &RuleHandle) -> Option<usize> {
        let id = handle.tables_id();
        self.shards
            .iter()
            .position(|shard| shard.side(side).is_some_and(|s| s.id == id))
    }
}

/// Where a rule goes ([`Matcher::place`]).
#[derive(Debug, Default)]
pub(crate) struct Placement {
    /// The shard.
    pub(crate) shard: usize,
    /// Each side's digest claimed on the matcher's routes, in the domain's side order,
    /// while the claim is the caller's: taken out when handed on with the side's
    /// insert, which then gives it back if the insert fails.
    pub(crate) claims: [Option<u64>; 2],
}

impl Placement {
    /// Gives back every claim still held.
    pub(crate) fn release(&mut self, routes: &Routes) {
        for digest in self.claims.iter_mut().filter_map(Option::take) {
            routes.release(digest);
        }
    }
}

impl Drop for Matcher {
    fn drop(&mut self) {
        // No rule holds the matcher any more, so no update runs on its tables. Updates
        // posted without waiting land first: their memory is freed with the tables. If
        // some may still land later (a completion timeout), nothing of that shard is
        // freed.
        let unsettled: Vec<bool> = self
            .shards
            .iter()
            .map(|shard| {
                let mut leak = false;
                for s in shard.sides.values() {
                    let mut tables = s.lock();
                    let mut ring = self.table.domain().ring_at(shard.ring);
                    if let Err(HtblError::Send(e)) = tables.sync(&mut ring) {
                        leak |= !e.breaks_ring();
                    }
                }
                leak
            })
            .collect();
        let mut list = self.table.matchers();
        for (shard, leak) in self.shards.iter().zip(unsettled) {
            if let Some(at) = list.iter().position(|m| Arc::ptr_eq(m, shard)) {
                unlink_shard(&self.table, &mut list, at, leak);
            }
        }
    }
}

/// Builds one shard's tables on every side and links them in at position `at` of the
/// table's matcher `list`, where it is then listed; its matcher's first shard is at
/// `first`. On error nothing of it is linked.
fn link_shard(
    table: &Arc<Table>,
    list: &mut Vec<Arc<Linked>>,
    (first, at): (usize, usize),
    chains: &PerSide<BuilderChain>,
    opts: MatcherOptions,
) -> Result<Arc<Linked>, MatcherError> {
    let dmn = table.domain();
    let ring = dmn.assign_ring();
    let mut sides: PerSide<MatcherSide> = PerSide::default();
    for &side in dmn.sides() {
        let Some(chain) = chains.get(side) else {
            continue;
        };
        let cfg = TablesConfig {
            grow: opts.grow,
            growth: opts.growth,
            shrink: opts.shrink,
            initial_log: shard_log(opts.expected_log_rules, opts.shards),
            share_identical: opts.duplicates == Duplicates::ShareIdentical,
            completion: opts.completion,
            ..TablesConfig::new(dmn.format(), side.rx(), dmn.gvmi())
        };
        let build = |end| {
            let mut r = dmn.ring_at(ring);
            MatcherTables::new(dmn.ste_pool().clone(), chain, cfg, end, &mut r)
                .map_err(|source| MatcherError::Tables { side, source })
        };
        match link::link_side(table, link::neighbours(list, at, false), side, build) {
            Ok(tables) => {
                sides.insert(side, MatcherSide::new(chain.clone(), tables));
            }
            Err(e) => {
                // Sides linked already go out again (best effort: a second failure
                // leaves that side's empty tables in the lookup, never freed).
                for linked_side in sides.take_all() {
                    let s = linked_side.chain.side();
                    if link::unlink_side(table, link::neighbours(list, at, false), s).is_err() {
                        std::mem::forget(linked_side);
                    }
                }
                return Err(e);
            }
        }
    }
    let shard = Arc::new(Linked {
        priority: opts.priority,
        shard: u8::try_from(at - first).unwrap_or(u8::MAX),
        ring,
        sides,
    });
    list.insert(at, Arc::clone(&shard));
    Ok(shard)
}

/// The size hint of one of `shards` shards when the matcher expects about
/// `2^expected_log` rules: each gets its share (rounded up to a power of two), so the
/// shards together presize what one set of tables would (0 stays "no hint").
fn shard_log(expected_log: u8, shards: u8) -> u8 {
    if expected_log == 0 {
        return 0;
    }
    // log2 of the shard count, rounded down: the shares round up.
    let split = (u8::BITS - 1 - shards.max(1).leading_zeros()) as u8;
    expected_log.saturating_sub(split).max(1)
}

/// Takes the shard at position `at` of the table's matcher `list` out of the lookup on
/// every side and out of the list. A side whose anchor rewrite failed stays reachable,
/// so the shard's tables are then never freed (the rest of the chain stays consistent:
/// the shard is gone from the list, and its neighbours' pointers are untouched); with
/// `leak` they never are either way (writes to them may still land).
fn unlink_shard(table: &Table, list: &mut Vec<Arc<Linked>>, at: usize, mut leak: bool) {
    for &side in table.domain().sides() {
        if link::unlink_side(table, link::neighbours(list, at, true), side).is_err() {
            leak = true;
        }
    }
    let shard = list.remove(at);
    if leak {
        std::mem::forget(shard);
    }
}
