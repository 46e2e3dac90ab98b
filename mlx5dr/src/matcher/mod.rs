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
//! parallel. Adding or removing a matcher takes the table's control lock and, briefly,
//! the locks of its neighbours; it never waits on a firmware command under a lock that a
//! rule update takes.

mod combine;
mod link;

use std::sync::Arc;

use ste_builder::Caps;

use crate::action::{Action, ActionError, ActionList};
use crate::caps::CapsError;
use crate::domain::{PerSide, Table, TableError};
use crate::htbl::{Completion, HtblError, HtblStats, MatcherTables, TablesConfig};
use crate::matching::{
    BuilderChain, ChainCaps, ChainError, DomainSide, Match, MatchError, RawMatch,
};

pub(crate) use link::{Linked, MatcherSide};

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
    /// table at a level where all rules share one STE.
    pub expected_log_rules: u8,
    /// The hash tables may grow when crowded; if not they keep their size and miss
    /// chains get longer.
    pub grow: bool,
    /// What an insert of an installed rule's value does.
    pub duplicates: Duplicates,
    /// When an insert or a removal returns: once it is in ICM (the default), or once it
    /// is posted or queued, which is cheaper but reports a send failure later, as
    /// [`HtblError::Lost`] on every later call (see [`Completion`]). Changing a rule's
    /// actions always waits. [`Matcher::sync`] waits for everything posted.
    pub completion: Completion,
}

impl Default for MatcherOptions {
    /// Priority 0, no size hint, growing tables, duplicates refused, every update waited
    /// for.
    fn default() -> Self {
        MatcherOptions {
            priority: 0,
            expected_log_rules: 0,
            grow: true,
            duplicates: Duplicates::Refuse,
            completion: Completion::Wait,
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
    /// The hash tables' statistics of each side the matcher has.
    pub sides: Vec<(DomainSide, HtblStats)>,
}

impl MatcherStats {
    /// Rules installed (the largest count over the sides: an FDB rule may skip one).
    pub fn rules(&self) -> u64 {
        self.sides.iter().map(|(_, s)| s.rules).max().unwrap_or(0)
    }

    /// Host bytes of the hash tables, all sides.
    pub fn host_bytes(&self) -> usize {
        self.sides.iter().map(|(_, s)| s.host_bytes).sum()
    }
}

/// A matcher: a mask, a priority, and per side of its table's domain the STE lookups
/// chosen for the mask and the hash tables its rules live in. See the module
/// documentation.
#[derive(Debug)]
pub struct Matcher {
    // Field order is drop order: `Drop` unlinks, then the tables go with `linked`, then
    // the table.
    linked: Arc<Linked>,
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

        let ring = dmn.assign_ring();
        let mut list = table.matchers();
        let at = link::position(&list, opts.priority);
        let mut sides: PerSide<MatcherSide> = PerSide::default();
        for &side in dmn.sides() {
            let Some(chain) = chains.take(side) else {
                continue;
            };
            let cfg = TablesConfig {
                grow: opts.grow,
                initial_log: opts.expected_log_rules,
                share_identical: opts.duplicates == Duplicates::ShareIdentical,
                completion: opts.completion,
                ..TablesConfig::new(dmn.format(), side.rx(), dmn.gvmi())
            };
            let build = |end| {
                let mut r = dmn.ring_at(ring);
                MatcherTables::new(dmn.ste_pool().clone(), &chain, cfg, end, &mut r)
                    .map_err(|source| MatcherError::Tables { side, source })
            };
            match link::link_side(table, link::neighbours(&list, at, false), side, build) {
                Ok(tables) => {
                    sides.insert(
                        side,
                        MatcherSide {
                            chain,
                            tables: combine::Combining::new(tables),
                        },
                    );
                }
                Err(e) => {
                    // Sides linked already go out again (best effort: a second failure
                    // leaves that side's empty tables in the lookup, never freed).
                    for linked_side in sides.take_all() {
                        let s = linked_side.chain.side();
                        if link::unlink_side(table, link::neighbours(&list, at, false), s).is_err()
                        {
                            std::mem::forget(linked_side);
                        }
                    }
                    return Err(e);
                }
            }
        }
        let linked = Arc::new(Linked {
            priority: opts.priority,
            ring,
            sides,
        });
        list.insert(at, Arc::clone(&linked));
        drop(list);
        Ok(Arc::new(Matcher {
            linked,
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
        self.linked.priority
    }

    /// The mask, as given (raw form).
    pub fn mask(&self) -> &RawMatch {
        &self.mask
    }

    /// The send ring the matcher's updates use.
    pub fn ring_index(&self) -> usize {
        self.linked.ring
    }

    /// The lookup types of a rule's STEs on `side`, in chain order.
    pub fn lu_types(&self, side: DomainSide) -> Option<Vec<u16>> {
        self.linked.side(side).map(|s| s.chain.lu_types().collect())
    }

    /// The lookups of `side`.
    pub fn chain(&self, side: DomainSide) -> Option<&BuilderChain> {
        self.linked.side(side).map(|s| &s.chain)
    }

    /// The ICM addresses of `side`'s start table and end anchor now (the start table
    /// moves when it grows).
    pub fn anchors(&self, side: DomainSide) -> Option<(u64, u64)> {
        let s = self.linked.side(side)?;
        let t = s.lock();
        let start = match t.start() {
            ste_builder::ste::Connect::Hit { icm_addr, .. } => icm_addr,
            ste_builder::ste::Connect::Miss { miss_addr } => miss_addr,
        };
        Some((start, t.end_anchor()))
    }

    /// Waits until every insert and removal made so far on the matcher is in ICM, and
    /// releases the memory they freed. With [`Completion::Wait`] there is nothing to
    /// wait for. An error names the side: a send failure now, or
    /// [`HtblError::Lost`] if an update posted earlier failed (the matcher then takes no
    /// more updates; see [`MatcherOptions::completion`]).
    pub fn sync(&self) -> Result<(), (DomainSide, HtblError)> {
        for s in self.linked.sides.values() {
            let side = s.chain.side();
            let mut tables = s.lock();
            let mut ring = self.table.domain().ring_at(self.linked.ring);
            let res = tables.sync(&mut ring);
            drop(ring);
            tables.drop_released();
            res.map_err(|e| (side, e))?;
        }
        Ok(())
    }

    /// The hash tables' statistics of each side.
    pub fn stats(&self) -> MatcherStats {
        MatcherStats {
            sides: self
                .linked
                .sides
                .values()
                .map(|s| (s.chain.side(), s.lock().stats()))
                .collect(),
        }
    }

    /// An action list for rules of this matcher (checked for its table); the same list
    /// may serve any number of rules ([`Matcher::insert`]).
    pub fn actions(&self, actions: &[Arc<Action>]) -> Result<Arc<ActionList>, ActionError> {
        ActionList::new(&self.table, actions).map(Arc::new)
    }

    pub(crate) fn linked(&self) -> &Linked {
        &self.linked
    }
}

impl Drop for Matcher {
    fn drop(&mut self) {
        // No rule holds the matcher any more, so no update runs on its tables. Updates
        // posted without waiting land first: their memory is freed with the tables. If
        // some may still land later (a completion timeout), nothing is freed.
        let mut leak = false;
        for s in self.linked.sides.values() {
            let mut tables = s.lock();
            let mut ring = self.table.domain().ring_at(self.linked.ring);
            if let Err(HtblError::Send(e)) = tables.sync(&mut ring) {
                leak |= !e.breaks_ring();
            }
        }
        let mut list = self.table.matchers();
        let Some(at) = list.iter().position(|m| Arc::ptr_eq(m, &self.linked)) else {
            return;
        };
        // Each side goes out of the lookup; a side whose anchor rewrite failed stays
        // reachable, so its tables are never freed (the rest of the chain stays
        // consistent: the matcher is gone from the list, and its neighbours' pointers
        // are untouched).
        for &side in self.table.domain().sides() {
            if link::unlink_side(&self.table, link::neighbours(&list, at, true), side).is_err() {
                leak = true;
            }
        }
        list.remove(at);
        drop(list);
        if leak {
            std::mem::forget(Arc::clone(&self.linked));
        }
    }
}
