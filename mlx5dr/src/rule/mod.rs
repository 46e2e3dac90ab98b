//! Rules: a match value and actions, installed into a matcher's hash tables on every
//! side of its domain.
//!
//! [`Matcher::insert`] turns the value into one tag per lookup of each side's chain
//! (checked: within the mask, passing DR's pre-check, reachable), then installs the
//! STEs side by side, each with the rule's actions encoded into its last STE
//! ([`ActionList::encode_in_place`]). If a side fails, the sides installed before it are
//! removed again, so a failed insert leaves the hardware and the host as they were.
//!
//! A [`Rule`] is the installed rule: dropping it removes it from the hardware (one
//! linking write per side, flushed), and [`Rule::remove`] does the same with the error
//! reported. [`Matcher::insert_batch_raw`] and [`Matcher::remove_batch`] do the same for
//! bursts of rules, for less per rule. [`Rule::set_actions`] changes its actions in place, atomically for packets
//! on each side. A second insert of an installed value is refused, or, with
//! [`crate::matcher::Duplicates::ShareIdentical`] and identical actions, shares the
//! installed entries. It holds its matcher and its action list, so neither the matcher's tables
//! nor anything its actions point at (a goto's table, a TIR, a counter) can go while an
//! STE in ICM may still lead there.
//!
//! ## Completion
//!
//! By default an insert or a removal returns once its writes are in ICM. A matcher made
//! with [`crate::MatcherOptions::completion`] `Post` or `Queue` returns once they are
//! posted (or queued): cheaper, and on hardware no round trip per rule, but a send
//! failure surfaces later, as [`HtblError::Lost`] on every later call of that matcher
//! ([`Matcher::sync`] waits for everything and reports it). A removed rule's action
//! list lives until its unlinking write has landed.
//!
//! ## Cost
//!
//! An insert takes the matcher side's lock and its send ring's lock (no domain-wide
//! lock, no allocation on the engine's path). The handle is 32 bytes (two 8-byte STE
//! handles and two `Arc`s); the hash tables keep about 60 bytes per rule (see
//! [`crate::htbl`]). Share one [`ActionList`] between rules with the same actions: made
//! once, it is only copied into each rule's STE.

mod batch;

pub use batch::BatchRule;

use std::cell::RefCell;
use std::sync::Arc;

use ste_builder::MatchParam;

use crate::action::{ActionError, ActionList};
use crate::domain::{DomainError, PerSide};
use crate::htbl::{Completion, Hold, HtblError, MatcherTables, RemoveError, RuleHandle, Warmed};
use crate::matcher::{Matcher, MatcherSide, Routes};
use crate::matching::{self, DomainSide, Match, MatchError, RuleTags};
use crate::send::SendRing;
use ste_builder::BuildError;

/// Why a rule could not be inserted. A failed insert changed nothing (but see
/// [`InsertError::Insert`] with [`HtblError::Unconfirmed`]-style device failures, noted
/// there).
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The typed value is invalid (a value too wide for its field, ...).
    #[error("the value: {0}")]
    Value(#[from] MatchError),
    /// The action list was checked for a table of another domain or level.
    #[error("the action list was made for a table of another domain or level than the matcher's (level {level})")]
    ActionsForOtherTable {
        /// The matcher's table level.
        level: u8,
    },
    /// The actions are not valid for the matcher's table.
    #[error(transparent)]
    Actions(#[from] ActionError),
    /// The value does not fit the matcher on a side: a bit outside the mask, DR's
    /// pre-check, a value no packet could match (the error names the field or lookup).
    #[error("{side}: {source}")]
    Refused {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: matching::RuleError,
    },
    /// The value's source port could not be looked up.
    #[error("looking up the source port: {0}")]
    Vport(#[source] DomainError),
    /// The hash tables refused the rule: a duplicate of an installed rule, ICM exhausted,
    /// the send ring failed. If the ring failed in a way that leaves open whether a write
    /// landed (a timeout, a device failure), the rule's STEs are removed again if the
    /// ring still works, and otherwise stay installed, out of reach of any handle, until
    /// the matcher goes.
    #[error("{side}: {source}")]
    Insert {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: HtblError,
    },
}

/// [`Rule::remove`] failed: the error, and the rule if it is still (partly) installed.
#[derive(Debug, thiserror::Error)]
#[error("removing the rule on {side}: {error}")]
pub struct RuleRemoveError {
    /// The side whose removal failed.
    pub side: DomainSide,
    /// Why.
    #[source]
    pub error: HtblError,
    /// The rule with the sides still installed, or `None` if it is gone (the unlinking
    /// write landed or may have; then its memory is not reused).
    pub rule: Option<Rule>,
}

/// Why [`Rule::set_actions`] failed. The rule keeps its old actions on every side
/// (a side already changed is changed back), unless the error is
/// [`HtblError::UpdateUnconfirmed`]: then the new actions are assumed in place on that
/// side, the rule holds the new list, and the old one is kept alive for good (an STE
/// may still lead where it points).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The action list was checked for a table of another domain or level.
    #[error("the action list was made for a table of another domain or level than the matcher's (level {level})")]
    ActionsForOtherTable {
        /// The matcher's table level.
        level: u8,
    },
    /// The hash tables refused or failed the update on a side (`HtblError::Shared`
    /// while other rules share the installed entries).
    #[error("{side}: {source}")]
    Update {
        /// The side.
        side: DomainSide,
        /// Why.
        #[source]
        source: HtblError,
    },
}

/// An installed rule. Dropping it removes it from the hardware; see the module
/// documentation.
#[derive(Debug)]
pub struct Rule {
    // Drop order matters: `Drop` removes the STEs; then the matcher (whose tables, should
    // a removal have failed, still hold the rule) goes before the actions it may hit.
    handles: PerSide<RuleHandle>,
    matcher: Arc<Matcher>,
    actions: Arc<ActionList>,
}

// The caller keeps one `Rule` per installed rule: a side's handle is 8 bytes (its
// `Option` too), so a rule is two handles and two pointers.
const _: () = assert!(std::mem::size_of::<Rule>() <= 32);

thread_local! {
    /// Each thread's buffers for an insert's tags, one per side (a NIC domain has one),
    /// reused from insert to insert: fresh ones would cost zeroing some 700 bytes per side,
    /// of which a rule reads its few tags only (a [`RuleTags`] reads no further than
    /// what it was last filled with).
    static TAGS: RefCell<[RuleTags; 2]> = const { RefCell::new([RuleTags::EMPTY, RuleTags::EMPTY]) };
}

impl Matcher {
    /// Installs a rule matching `value` with `actions` (made with
    /// [`Matcher::actions`] or `ActionList::new` for this matcher's table).
    pub fn insert(
        self: &Arc<Self>,
        value: &Match,
        actions: &Arc<ActionList>,
    ) -> Result<Rule, InsertError> {
        let raw = value.to_raw()?;
        self.insert_raw(&raw.param, actions)
    }

    /// [`Matcher::insert`] with the raw 448-byte PRM value.
    pub fn insert_raw(
        self: &Arc<Self>,
        value: &MatchParam,
        actions: &Arc<ActionList>,
    ) -> Result<Rule, InsertError> {
        if !actions.fits(self.table()) {
            return Err(InsertError::ActionsForOtherTable {
                level: self.table().level(),
            });
        }
        TAGS.with(|tags| match tags.try_borrow_mut() {
            Ok(mut tags) => self.insert_tagged(value, actions, &mut tags),
            // An insert within an insert on this thread (from a drop it caused): buffers
            // of its own.
            Err(_) => self.insert_tagged(value, actions, &mut [RuleTags::EMPTY, RuleTags::EMPTY]),
        })
    }

    /// [`Matcher::insert_raw`] of checked actions, with `tags` to compute each side's
    /// tags in (any earlier contents).
    fn insert_tagged(
        self: &Arc<Self>,
        value: &MatchParam,
        actions: &Arc<ActionList>,
        tags: &mut [RuleTags; 2],
    ) -> Result<Rule, InsertError> {
        // Every side's tags first: a value that does not fit fails before any write.
        let on = self.all_tags(value, tags)?;
        let mut place = self.place(&on, tags).map_err(|side| InsertError::Insert {
            side,
            source: HtblError::Duplicate,
        })?;

        let mut handles = PerSide::default();
        for (k, (side, t)) in on.iter().zip(tags.iter()).enumerate() {
            let Some(side) = side else {
                continue;
            };
            let claim = place.claims[k].take();
            match self.insert_side(place.shard, *side, t, actions, claim) {
                Ok(h) => {
                    handles.insert(*side, h);
                }
                Err(source) => {
                    // Sides already in go out again; one that cannot stays installed,
                    // out of reach, until the matcher's tables go. The failed side gave
                    // its claim back; the sides after it have not used theirs.
                    if let Some(routes) = self.routes() {
                        place.release(routes);
                    }
                    let _ = self.remove_handles(&mut handles, actions);
                    return Err(InsertError::Insert {
                        side: *side,
                        source,
                    });
                }
            }
        }
        Ok(Rule {
            handles,
            matcher: Arc::clone(self),
            actions: Arc::clone(actions),
        })
    }

    /// The tags of `value` on each side of the domain, in the domain's side order, into
    /// `tags`; returns the sides the rule goes to (`None` for a side the matcher does not
    /// have or that the value's source port rules out).
    fn all_tags(
        &self,
        value: &MatchParam,
        tags: &mut [RuleTags; 2],
    ) -> Result<[Option<DomainSide>; 2], InsertError> {
        let mut on: [Option<DomainSide>; 2] = [None, None];
        let sides = self.table().domain().sides();
        for ((slot, side), t) in on.iter_mut().zip(sides).zip(tags.iter_mut()) {
            // Every shard has the same lookups.
            let Some(ms) = self.shards()[0].side(*side) else {
                continue;
            };
            if ms.chain.skips_rule(value) {
                continue;
            }
            self.tags(ms, *side, value, t)?;
            *slot = Some(*side);
        }
        Ok(on)
    }

    /// The tags of `value` on `side` into `out`, looking up a source vport the domain
    /// does not know yet.
    fn tags(
        &self,
        ms: &MatcherSide,
        side: DomainSide,
        value: &MatchParam,
        out: &mut RuleTags,
    ) -> Result<(), InsertError> {
        match ms.chain.rule_tags_into(value, &self.caps, out) {
            Err(matching::RuleError::Build(BuildError::UnknownVport { vport })) => {
                let dmn = self.table().domain();
                dmn.vport(vport).map_err(InsertError::Vport)?;
                ms.chain
                    .rule_tags_into(value, &dmn.ste_caps(), out)
                    .map_err(|source| InsertError::Refused { side, source })
            }
            other => other.map_err(|source| InsertError::Refused { side, source }),
        }
    }

    /// Installs the rule on `side` of shard `shard`, with `claim` its digest's claim
    /// on the routes (given back if the insert fails). Under the side's lock, or, when
    /// another thread holds it, handed to that thread over owned copies of the inputs
    /// ([`crate::matcher`]'s combining lock).
    fn insert_side(
        self: &Arc<Self>,
        shard: usize,
        side: DomainSide,
        tags: &RuleTags,
        actions: &Arc<ActionList>,
        claim: Option<u64>,
    ) -> Result<RuleHandle, HtblError> {
        let linked = &self.shards()[shard];
        let Some(ms) = linked.side(side) else {
            if let (Some(routes), Some(digest)) = (self.routes(), claim) {
                routes.release(digest);
            }
            return Err(HtblError::ForeignHandle);
        };
        let ring = linked.ring;
        ms.tables.run(
            (),
            |tables, ()| self.insert_locked(tables, ring, side, tags, actions, claim),
            |()| {
                let (m, tags, actions) = (Arc::clone(self), tags.clone(), Arc::clone(actions));
                move |tables: &mut MatcherTables| {
                    m.insert_locked(tables, ring, side, &tags, &actions, claim)
                }
            },
        )
    }

    /// [`Matcher::insert_side`] with the side's tables locked; they use send ring
    /// `ring`.
    fn insert_locked(
        &self,
        tables: &mut MatcherTables,
        ring: usize,
        side: DomainSide,
        tags: &RuleTags,
        actions: &Arc<ActionList>,
        claim: Option<u64>,
    ) -> Result<RuleHandle, HtblError> {
        let mut ring = self.table().domain().ring_at(ring);
        let route = self.routes().zip(claim);
        let res = insert_on_ring(
            tables,
            &mut ring,
            side,
            (tags, &Warmed::default()),
            actions,
            route,
        );
        drop(ring);
        tables.drop_released();
        res
    }

    fn update_side(
        &self,
        side: DomainSide,
        handle: &RuleHandle,
        actions: &ActionList,
    ) -> Result<(), HtblError> {
        let shard = self
            .shard_of(side, handle)
            .ok_or(HtblError::ForeignHandle)?;
        let linked = &self.shards()[shard];
        let ms = linked.side(side).ok_or(HtblError::ForeignHandle)?;
        let mut tables = ms.lock();
        let mut ring = self.table().domain().ring_at(linked.ring);
        let fill = |_format, stes: &mut [u8]| actions.encode_in_place(side, stes);
        let res = tables.update_actions(&mut ring, handle, fill);
        drop(ring);
        tables.drop_released();
        res
    }

    /// Removes every handle in `handles`, RX first; stops at the first failure and
    /// leaves the handles not yet removed in place. `actions` (the rule's) are kept
    /// alive until the removal is in ICM.
    fn remove_handles(
        self: &Arc<Self>,
        handles: &mut PerSide<RuleHandle>,
        actions: &Arc<ActionList>,
    ) -> Result<(), (DomainSide, HtblError)> {
        for &side in self.table().domain().sides() {
            let Some(h) = handles.take(side) else {
                continue;
            };
            let Some(linked) = self.shard_of(side, &h).map(|k| &self.shards()[k]) else {
                continue;
            };
            let Some(ms) = linked.side(side) else {
                continue;
            };
            let ring = linked.ring;
            // Like an insert, handed to the lock's holder if another thread has it.
            let res = ms.tables.run(
                h,
                |tables, h| self.remove_locked(tables, ring, side, h, actions),
                |h| {
                    let (m, actions) = (Arc::clone(self), Arc::clone(actions));
                    move |tables: &mut MatcherTables| {
                        m.remove_locked(tables, ring, side, h, &actions)
                    }
                },
            );
            if let Err(e) = res {
                if let Some(h) = e.rule {
                    handles.insert(side, h);
                }
                return Err((side, e.error));
            }
        }
        Ok(())
    }

    /// Removes `side`'s handle with that side's tables locked; they use send ring
    /// `ring`.
    fn remove_locked(
        &self,
        tables: &mut MatcherTables,
        ring: usize,
        side: DomainSide,
        h: RuleHandle,
        actions: &Arc<ActionList>,
    ) -> Result<(), RemoveError> {
        let mut ring = self.table().domain().ring_at(ring);
        let routes = self.routes().map(|r| (r, side));
        let res = remove_on_ring(tables, &mut ring, h, actions, routes);
        drop(ring);
        tables.drop_released();
        res
    }
}

/// Installs a rule on `side` of `tables` through `ring` (both locked). `route`: the
/// matcher's routes and the digest the rule claimed on them, given back unless the rule
/// is installed (or, after an unconfirmed insert, still may be).
fn insert_on_ring(
    tables: &mut MatcherTables,
    ring: &mut SendRing,
    side: DomainSide,
    (tags, warmed): (&RuleTags, &Warmed),
    actions: &Arc<ActionList>,
    route: Option<(&Routes, u64)>,
) -> Result<RuleHandle, HtblError> {
    let fill = |_format, stes: &mut [u8]| actions.encode_in_place(side, stes);
    match tables.insert_warmed(ring, tags, warmed, fill) {
        Ok(h) => Ok(h),
        Err(HtblError::Unconfirmed { rule, source }) => {
            // Maybe installed: take it out again, so the failed call changes nothing
            // (if the ring still works); the removal gives the claim back.
            // If that fails too, the rule stays installed, unreachable by handle,
            // until the tables go, and keeps its claim.
            let routes = route.map(|(r, _)| (r, side));
            let _ = remove_on_ring(tables, ring, rule, actions, routes);
            Err(HtblError::Send(source))
        }
        Err(e) => {
            if let Some((routes, digest)) = route {
                routes.release(digest);
            }
            Err(e)
        }
    }
}

/// Removes rule `h` on `side`, whose last STE carries `actions`, from `tables` through
/// `ring` (both locked), and, with `routes`, gives back its claim on the matcher's
/// routes once the tables have let go of it. When the tables do not wait for the
/// unlinking write, `actions` are held until it has landed: an STE in ICM may still
/// lead where they point.
fn remove_on_ring(
    tables: &mut MatcherTables,
    ring: &mut SendRing,
    h: RuleHandle,
    actions: &Arc<ActionList>,
    routes: Option<(&Routes, DomainSide)>,
) -> Result<(), RemoveError> {
    // Read before the removal frees the records it is read from.
    let route = routes.and_then(|(r, side)| Some((r, r.digest(side, tables.rule_tags(&h)?))));
    let res = tables.remove(ring, h);
    let gone = match &res {
        Ok(()) => {
            if tables.completion() != Completion::Wait {
                tables.hold(Arc::clone(actions) as Hold);
            }
            true
        }
        // The tables no longer hold it (its unlinking write may have landed).
        Err(e) => e.rule.is_none(),
    };
    if let (true, Some((routes, digest))) = (gone, route) {
        routes.release(digest);
    }
    res
}

impl Rule {
    /// The matcher.
    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }

    /// The actions.
    pub fn actions(&self) -> &Arc<ActionList> {
        &self.actions
    }

    /// The sides the rule is installed on (an FDB rule matching the source port lives
    /// on one).
    pub fn sides(&self) -> impl Iterator<Item = DomainSide> + '_ {
        self.matcher
            .table()
            .domain()
            .sides()
            .iter()
            .copied()
            .filter(|s| self.handles.get(*s).is_some())
    }

    /// The ICM address of the rule's last match STE on `side` now (it moves when its
    /// table grows or a rule before it in its miss chain goes).
    pub fn icm_addr(&self, side: DomainSide) -> Option<u64> {
        let h = self.handles.get(side)?;
        let shard = self.matcher.shard_of(side, h)?;
        let ms = self.matcher.shards()[shard].side(side)?;
        let addr = ms.lock().rule_addr(h);
        addr
    }

    /// Gives the rule new actions, atomically for packets on each side: a packet sees the
    /// old actions or the new ones, never a miss (one 64-byte write per side replaces
    /// the rule's last STE in place, after any new action STEs are written). On a
    /// two-sided FDB rule the sides change one after the other; a failure on the second
    /// changes the first back. See [`UpdateError`].
    pub fn set_actions(&mut self, actions: &Arc<ActionList>) -> Result<(), UpdateError> {
        if !actions.fits(self.matcher.table()) {
            return Err(UpdateError::ActionsForOtherTable {
                level: self.matcher.table().level(),
            });
        }
        let sides = self.matcher.table().domain().sides();
        for (i, &side) in sides.iter().enumerate() {
            let Some(h) = self.handles.get(side) else {
                continue;
            };
            match self.matcher.update_side(side, h, actions) {
                Ok(()) => {}
                Err(HtblError::UpdateUnconfirmed(e)) => {
                    // The new actions may be live: hold them, and never free the old.
                    let old = std::mem::replace(&mut self.actions, Arc::clone(actions));
                    std::mem::forget(old);
                    return Err(UpdateError::Update {
                        side,
                        source: HtblError::UpdateUnconfirmed(e),
                    });
                }
                Err(source) => {
                    for &done in &sides[..i] {
                        if let Some(h) = self.handles.get(done) {
                            // Best effort: the old list encoded before, so it encodes
                            // again; a ring failure here leaves that side's new actions.
                            let _ = self.matcher.update_side(done, h, &self.actions);
                        }
                    }
                    return Err(UpdateError::Update { side, source });
                }
            }
        }
        self.actions = Arc::clone(actions);
        Ok(())
    }

    /// Removes the rule from the hardware, reporting a failure (dropping the rule does
    /// the same and ignores it).
    pub fn remove(mut self) -> Result<(), RuleRemoveError> {
        let mut handles = std::mem::take(&mut self.handles);
        match self.matcher.remove_handles(&mut handles, &self.actions) {
            Ok(()) => Ok(()),
            Err((side, error)) => {
                let left = handles.values().next().is_some();
                self.handles = handles;
                Err(RuleRemoveError {
                    side,
                    error,
                    rule: left.then_some(self),
                })
            }
        }
    }
}

impl Drop for Rule {
    fn drop(&mut self) {
        let mut handles = std::mem::take(&mut self.handles);
        // A side that cannot be removed stays installed until the matcher's tables go;
        // the matcher is dropped before the actions (field order), so nothing the STE
        // hits is freed while the tables that hold it are still linked.
        let _ = self.matcher.remove_handles(&mut handles, &self.actions);
    }
}
