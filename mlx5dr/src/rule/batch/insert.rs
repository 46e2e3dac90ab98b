//! Batch inserts: [`Matcher::insert_batch_raw`].

use std::cell::RefCell;
use std::sync::Arc;

use ste_builder::MatchParam;

use super::{lost_like, Turn};
use crate::action::ActionList;
use crate::domain::PerSide;
use crate::htbl::{HtblError, RuleHandle, WarmMemo, Warmed};
use crate::matcher::{Linked, Matcher, Placement};
use crate::matching::{DomainSide, RuleTags};
use crate::rule::{insert_on_ring, InsertError, Rule};

/// Rules in a matcher side from which a group's inserts read their chain heads ahead
/// (the warming pass in [`Matcher::insert_group_side`]): below, its records and heads
/// (some 3 MB at 2^16 rules) mostly stay in the CPU's caches, and the pass would cost
/// its instructions (about 4 % of a batched insert) for nothing.
const WARM_RULES: u64 = 1 << 16;

/// One rule of a batch: its raw 448-byte PRM value and its actions.
pub type BatchRule<'a> = (&'a MatchParam, &'a Arc<ActionList>);

/// A group's working memory, kept per thread and reused from batch to batch, so that
/// a batch allocates nothing once a thread's first group has sized it.
struct GroupBuffers {
    /// One tag buffer per rule and side.
    tags: Vec<[RuleTags; 2]>,
    /// One entry per rule of the group in progress.
    pending: Vec<Pending>,
}

thread_local! {
    static GROUP_BUFFERS: RefCell<GroupBuffers> = const {
        RefCell::new(GroupBuffers { tags: Vec::new(), pending: Vec::new() })
    };
}

/// A rule of a group on its way in.
#[derive(Default)]
struct Pending {
    /// The sides it goes to, in the domain's side order.
    on: [Option<DomainSide>; 2],
    /// The matcher's shard it goes to, and its claims on the matcher's routes until
    /// each side's insert takes its own.
    place: Placement,
    handles: PerSide<RuleHandle>,
    /// The chain head of the side in progress, read ahead of the inserts.
    warmed: Warmed,
    /// Why it failed; it goes no further once set.
    error: Option<InsertError>,
}

impl Matcher {
    /// Installs the rules of `batch` in order, appending one result per rule to `out`:
    /// the same rules [`Matcher::insert_raw`] would install one by one, for less. Tags
    /// are computed first; each side's lock and send ring are then taken once per group
    /// of 64 rules (in a sharded matcher, once per shard and group of 64 rules per
    /// shard, up to 256), and with [`Completion::Wait`] the group's writes are waited
    /// for once, after which every rule whose result is `Ok` is in ICM.
    ///
    /// Each rule succeeds or fails on its own (a value that does not fit, a duplicate of
    /// an installed rule or of an earlier rule of the batch, exhausted ICM) and a
    /// failure changes nothing. The one difference from single inserts: with
    /// `Completion::Wait`, a send failure during a group loses the matcher side's
    /// tables as it would with [`Completion::Queue`] (every later call fails with
    /// [`HtblError::Lost`]), and the group's rules on that side are reported failed.
    ///
    /// [`HtblError::Lost`]: crate::htbl::HtblError::Lost
    /// [`Completion::Wait`]: crate::Completion::Wait
    /// [`Completion::Queue`]: crate::Completion::Queue
    pub fn insert_batch_raw(
        self: &Arc<Self>,
        batch: &[BatchRule<'_>],
        out: &mut Vec<Result<Rule, InsertError>>,
    ) {
        out.reserve(batch.len());
        let mut run = |buffers: &mut GroupBuffers| {
            buffers
                .tags
                .resize(self.group_len(), [RuleTags::EMPTY, RuleTags::EMPTY]);
            for group in batch.chunks(self.group_len()) {
                self.insert_group(group, buffers, out);
            }
        };
        GROUP_BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
            Ok(mut buffers) => run(&mut buffers),
            // A batch within a batch on this thread (from a drop it caused): buffers of
            // its own.
            Err(_) => run(&mut GroupBuffers {
                tags: Vec::new(),
                pending: Vec::new(),
            }),
        })
    }

    /// Inserts a group of at most [`Matcher::group_len`] rules (`buffers.tags` holds as
    /// many tag buffer pairs).
    fn insert_group(
        self: &Arc<Self>,
        group: &[BatchRule<'_>],
        buffers: &mut GroupBuffers,
        out: &mut Vec<Result<Rule, InsertError>>,
    ) {
        let GroupBuffers { tags, pending } = buffers;
        // Empty unless a group before panicked half way.
        pending.clear();
        for (&(value, actions), t) in group.iter().zip(tags.iter_mut()) {
            let mut p = Pending::default();
            if !actions.fits(self.table()) {
                p.error = Some(InsertError::ActionsForOtherTable {
                    level: self.table().level(),
                });
            } else {
                match self.all_tags(value, t) {
                    Ok(on) => match self.place(&on, t) {
                        Ok(place) => {
                            p.place = place;
                            p.on = on;
                        }
                        Err(side) => {
                            p.error = Some(InsertError::Insert {
                                side,
                                source: HtblError::Duplicate,
                            })
                        }
                    },
                    Err(e) => p.error = Some(e),
                }
            }
            pending.push(p);
        }

        self.each_shard_side(|shard, linked, side, turn| {
            self.insert_group_side(group, tags, pending, (shard, linked), side, turn)
        });

        for (p, &(_, actions)) in pending.drain(..).zip(group) {
            let Pending {
                mut handles,
                error,
                mut place,
                ..
            } = p;
            if let Some(routes) = self.routes() {
                // The claims of sides whose insert never ran.
                place.release(routes);
            }
            match error {
                None => out.push(Ok(Rule {
                    handles,
                    matcher: Arc::clone(self),
                    actions: Arc::clone(actions),
                })),
                Some(e) => {
                    // Sides already in go out again; one that cannot stays installed,
                    // out of reach, until the matcher's tables go.
                    let _ = self.remove_handles(&mut handles, actions);
                    out.push(Err(e));
                }
            }
        }
    }

    /// Inserts the rules of `group` that go to `shard` on `side` (the `k`th of the
    /// domain's sides), under that side's lock, recording each one's handle or error
    /// in `pending`. Returns whether that is done: with `Turn::Try` and the lock taken,
    /// nothing is.
    fn insert_group_side(
        &self,
        group: &[BatchRule<'_>],
        tags: &[[RuleTags; 2]],
        pending: &mut [Pending],
        (shard, linked): (usize, &Linked),
        (k, side): (usize, DomainSide),
        turn: Turn,
    ) -> bool {
        let Some(ms) = linked.side(side) else {
            return true;
        };
        let goes = |p: &Pending| p.error.is_none() && p.place.shard == shard && p.on[k].is_some();
        if !pending.iter().any(goes) {
            return true;
        }
        let Some(synced) = self.side_batch(linked, ms, turn, |tables, ring| {
            // Every rule's chain head, then the STE heading each chain: loads that do not
            // depend on one another, so their cache misses overlap, where each insert
            // alone would wait for its own.
            if tables.rules() >= WARM_RULES {
                let mut memo = WarmMemo::default();
                for (p, t) in pending.iter_mut().zip(tags) {
                    if goes(p) {
                        p.warmed = tables.warm_head(&t[k], &mut memo);
                    }
                }
                for p in pending.iter().filter(|p| goes(p)) {
                    tables.warm_ste(&p.warmed);
                }
            }
            for ((p, t), &(_, actions)) in pending.iter_mut().zip(tags).zip(group) {
                if !goes(p) {
                    continue;
                }
                let route = self.routes().zip(p.place.claims[k].take());
                let warmed = std::mem::take(&mut p.warmed);
                match insert_on_ring(tables, ring, side, (&t[k], &warmed), actions, route) {
                    Ok(h) => {
                        p.handles.insert(side, h);
                    }
                    Err(source) => p.error = Some(InsertError::Insert { side, source }),
                }
            }
        }) else {
            return false;
        };
        if let Err(e) = synced {
            // The group's writes on this side did not all land, and which did is not
            // known per rule: none of its rules here counts as in.
            for p in pending
                .iter_mut()
                .filter(|p| p.error.is_none() && p.place.shard == shard)
            {
                if p.handles.get(side).is_some() {
                    p.error = Some(InsertError::Insert {
                        side,
                        source: lost_like(&e),
                    });
                }
            }
        }
        true
    }
}
