//! Batch removals: [`Matcher::remove_batch`].

use std::sync::Arc;

use super::{lost_like, Turn};
use crate::htbl::HtblError;
use crate::matcher::{Linked, Matcher};
use crate::matching::DomainSide;
use crate::rule::{remove_on_ring, Rule, RuleRemoveError};

/// A rule of a group on its way out. Its handles are taken out side by side as each
/// side's removal is posted, and put back if that side refuses.
struct Leaving {
    rule: Rule,
    /// The matcher's shard it is in.
    shard: usize,
    /// Whether its removal was posted on the side in progress.
    posted: bool,
    /// Why it failed, on which side; it goes no further once set.
    error: Option<(DomainSide, HtblError)>,
}

impl Matcher {
    /// Removes `rules` in order, appending one result per rule to `out`: what
    /// [`Rule::remove`] would do rule by rule, for less. Each side's lock and send ring
    /// are taken once per group of 64 rules of this matcher (in a sharded matcher, once
    /// per shard and group of 64 rules per shard, up to 256), and with
    /// [`Completion::Wait`] the group's unlinking writes are waited for once, after
    /// which every rule whose result is `Ok` is out of ICM. A rule of another matcher
    /// is removed on its own, in its place.
    ///
    /// Each rule succeeds or fails on its own, and a failed rule comes back in its
    /// [`RuleRemoveError`] when a side of it is still installed. The one difference
    /// from single removals: with `Completion::Wait`, a send failure during a group
    /// loses the matcher side's tables as it would with [`Completion::Queue`] (every
    /// later call fails with [`HtblError::Lost`]), and the group's rules removed on that
    /// side are reported failed, as gone (their memory is not reused).
    ///
    /// [`Completion::Wait`]: crate::Completion::Wait
    /// [`Completion::Queue`]: crate::Completion::Queue
    pub fn remove_batch(
        self: &Arc<Self>,
        rules: impl IntoIterator<Item = Rule>,
        out: &mut Vec<Result<(), RuleRemoveError>>,
    ) {
        let rules = rules.into_iter();
        out.reserve(rules.size_hint().0);
        let group_len = self.group_len();
        let mut group: Vec<Leaving> = Vec::with_capacity(rules.size_hint().0.min(group_len));
        for rule in rules {
            if !Arc::ptr_eq(&rule.matcher, self) {
                // Results stay in order: the group before it goes first.
                self.remove_group(&mut group, out);
                out.push(rule.remove());
                continue;
            }
            group.push(Leaving {
                shard: self.shard_of_rule(&rule),
                rule,
                posted: false,
                error: None,
            });
            if group.len() == group_len {
                self.remove_group(&mut group, out);
            }
        }
        self.remove_group(&mut group, out);
    }

    /// Removes the rules of `group` (this matcher's), side after side in the domain's
    /// order, and appends their results to `out`, leaving `group` empty.
    fn remove_group(
        self: &Arc<Self>,
        group: &mut Vec<Leaving>,
        out: &mut Vec<Result<(), RuleRemoveError>>,
    ) {
        self.each_shard_side(|shard, linked, (_, side), turn| {
            self.remove_group_side(group, (shard, linked), side, turn)
        });

        for l in group.drain(..) {
            let Leaving { rule, error, .. } = l;
            out.push(match error {
                None => Ok(()),
                Some((side, error)) => {
                    let left = rule.handles.values().next().is_some();
                    Err(RuleRemoveError {
                        side,
                        error,
                        rule: left.then_some(rule),
                    })
                }
            });
        }
    }

    /// The shard `rule` (this matcher's) is in: where its handle on the first side it
    /// is installed on lives.
    fn shard_of_rule(&self, rule: &Rule) -> usize {
        self.table()
            .domain()
            .sides()
            .iter()
            .find_map(|&side| self.shard_of(side, rule.handles.get(side)?))
            .unwrap_or(0)
    }

    /// Removes the rules of `group` that are in `shard` from `side`, under that side's
    /// lock, recording each one's failure in the group. Returns whether that is done:
    /// with `Turn::Try` and the lock taken, nothing is.
    fn remove_group_side(
        &self,
        group: &mut [Leaving],
        (shard, linked): (usize, &Linked),
        side: DomainSide,
        turn: Turn,
    ) -> bool {
        let Some(ms) = linked.side(side) else {
            return true;
        };
        let goes = |l: &Leaving| {
            l.error.is_none() && l.shard == shard && l.rule.handles.get(side).is_some()
        };
        if !group.iter().any(goes) {
            return true;
        }
        let Some(synced) = self.side_batch(linked, ms, turn, |tables, ring| {
            for l in group.iter_mut() {
                l.posted = false;
                if !goes(l) {
                    continue;
                }
                let Some(h) = l.rule.handles.take(side) else {
                    continue;
                };
                let routes = self.routes().map(|r| (r, side));
                match remove_on_ring(tables, ring, h, &l.rule.actions, routes) {
                    Ok(()) => l.posted = true,
                    Err(e) => {
                        if let Some(h) = e.rule {
                            l.rule.handles.insert(side, h);
                        }
                        l.error = Some((side, e.error));
                    }
                }
            }
        }) else {
            return false;
        };
        if let Err(e) = synced {
            // Which of the group's unlinking writes landed is not known: every rule
            // posted here is gone, and failed.
            for l in group.iter_mut().filter(|l| l.posted) {
                l.error = Some((side, lost_like(&e)));
            }
        }
        true
    }
}
