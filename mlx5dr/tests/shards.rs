//! Sharded matchers (`MatcherOptions::shards`) through the public API on a simulated
//! ConnectX-6 Dx.
//!
//! - A sharded matcher gives every packet the verdict a one-shard matcher gives, its
//!   rules spread over all shards, and it counts as one matcher of its table.
//! - Duplicates are refused (or shared) across the whole matcher, since a value always
//!   lands in the same shard.
//! - Single and batch removals leave the verdicts of the rules that stay, and dropping
//!   the matcher takes every shard out of the lookup.
//! - Matchers of other priorities stay before and after all of the shards, and a new
//!   matcher of the same priority goes before them.
//! - An FDB sharded matcher serves both sides.
//! - Two threads inserting into and removing from one sharded matcher end with the
//!   rules their logs predict.
//! - Placed by thread (`ShardPlacement::Thread`), a thread's rules go to its own
//!   shard, a duplicate is still found whichever thread inserts it, two threads
//!   racing to insert the same values install each one once, and two threads churning
//!   over the same values (inserts and removals racing) end with each held value
//!   installed once; the routes count every installed value and side, and drain when
//!   the rules go.
//! - Shard counts out of range are refused.

#![cfg(feature = "sim")]

mod common;
#[path = "common/sim_table.rs"]
mod sim_table;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread;

use ::sim::endpoint::Terminal;
use ::sim::packet::Side;
use ::sim::Fate;
use mlx5dr::htbl::HtblError;
use mlx5dr::{
    Action, ActionList, Completion, DomainType, Duplicates, InsertError, Match, Matcher,
    MatcherError, MatcherOptions, Rule, ShardPlacement, MAX_SHARDS,
};
use ste_builder::MatchParam;

use common::{five_tuple_mask, five_tuple_spread as five_tuple, round_robin, spread_src};
use sim_table::SimTable;

/// The shared rig; this file adds its matchers.
type Rig = SimTable;

impl SimTable {
    fn matcher(&self, shards: u8, completion: Completion) -> Arc<Matcher> {
        self.placed(shards, completion, ShardPlacement::Tags)
    }

    fn placed(
        &self,
        shards: u8,
        completion: Completion,
        placement: ShardPlacement,
    ) -> Arc<Matcher> {
        let opts = MatcherOptions {
            shards,
            completion,
            placement,
            ..MatcherOptions::default()
        };
        Matcher::new(&self.table, &five_tuple_mask(), opts).unwrap()
    }
}

/// Action lists setting flow tags `first..first + 4`.
fn flow_tags(m: &Matcher, first: u32) -> Vec<Arc<ActionList>> {
    (first..first + 4)
        .map(|t| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap())
        .collect()
}

/// Inserts `n` rules one by one into a matcher of `shards` shards, then removes every
/// third (one by one) and every third after it (in a batch); each value's tag after the
/// inserts and after the removals, with 50 never-inserted values after them.
fn verdicts(
    shards: u8,
    completion: Completion,
    placement: ShardPlacement,
    n: u32,
) -> [Vec<Option<u32>>; 2] {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.placed(shards, completion, placement);
    assert_eq!(m.shard_count(), usize::from(shards));
    let by_thread = shards > 1 && placement == ShardPlacement::Thread;
    assert_eq!(m.placement() == ShardPlacement::Thread, by_thread);
    assert_eq!(rig.table.matcher_count(), 1);
    let lists = flow_tags(&m, 1);
    let values: Vec<MatchParam> = (0..n).map(five_tuple).collect();
    let mut rules: Vec<Option<Rule>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Some(m.insert_raw(v, &lists[i % 4]).unwrap()))
        .collect();
    m.sync().unwrap();
    let stats = m.stats();
    assert_eq!(stats.rules(), u64::from(n));
    assert_eq!(stats.shard_rules.len(), usize::from(shards));
    assert_eq!(stats.shard_rules.iter().sum::<u64>(), u64::from(n));
    if by_thread {
        // One thread: all in its shard, each value with its route.
        let used: Vec<&u64> = stats.shard_rules.iter().filter(|&&r| r > 0).collect();
        assert_eq!(used, [&u64::from(n)], "{:?}", stats.shard_rules);
        assert_eq!(stats.routes, n as usize);
    } else {
        // Spread: no shard has less than half its share (2 000 rules over at most 16).
        for (k, &r) in stats.shard_rules.iter().enumerate() {
            assert!(
                r * 2 * u64::from(shards) >= u64::from(n),
                "shard {k}: {r} of {n} rules"
            );
        }
        assert_eq!(stats.routes, 0);
    }
    let probe = |rig: &Rig| -> Vec<Option<u32>> {
        (0..n + 50).map(|i| rig.tag_of(&five_tuple(i))).collect()
    };
    let installed = probe(&rig);

    for r in rules.iter_mut().step_by(3) {
        r.take().unwrap().remove().unwrap();
    }
    let batch: Vec<Rule> = rules
        .iter_mut()
        .skip(1)
        .step_by(3)
        .filter_map(Option::take)
        .collect();
    let mut out = Vec::new();
    m.remove_batch(batch, &mut out);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    m.sync().unwrap();
    assert_eq!(
        m.stats().rules(),
        rules.iter().filter(|r| r.is_some()).count() as u64
    );
    let after = probe(&rig);
    drop(rules);
    m.sync().unwrap();
    let s = m.stats();
    assert_eq!((s.rules(), s.routes), (0, 0));
    assert_eq!(
        (s.sides[0].1.leaked_chunks, s.sides[0].1.leaked_entries),
        (0, 0)
    );
    [installed, after]
}

#[test]
fn a_sharded_matcher_gives_the_verdicts_of_one_shard() {
    let n = 2000;
    let want = verdicts(1, Completion::Wait, ShardPlacement::Tags, n);
    // The reference itself: every rule's tag, then two thirds gone.
    for (i, tag) in want[0].iter().enumerate() {
        let i = i as u32;
        assert_eq!(*tag, (i < n).then_some(1 + i % 4), "value {i}");
    }
    for (i, tag) in want[1].iter().enumerate() {
        let i = i as u32;
        assert_eq!(
            *tag,
            (i < n && i % 3 == 2).then_some(1 + i % 4),
            "value {i}"
        );
    }
    for shards in [2, 3, 4, MAX_SHARDS] {
        for completion in [Completion::Wait, Completion::Queue] {
            for placement in [ShardPlacement::Tags, ShardPlacement::Thread] {
                assert_eq!(
                    verdicts(shards, completion, placement, n),
                    want,
                    "{shards} shards, {completion:?}, {placement:?}"
                );
            }
        }
    }
    // One shard placed by thread: nothing to place, no routes.
    assert_eq!(
        verdicts(1, Completion::Wait, ShardPlacement::Thread, n),
        want
    );
}

#[test]
fn a_batch_into_shards_installs_what_single_inserts_install() {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(4, Completion::Wait);
    let lists = flow_tags(&m, 1);
    let values: Vec<MatchParam> = (0..1000).map(five_tuple).collect();
    let batch = round_robin(&values, &lists);
    let mut out = Vec::new();
    // Calls of one group and less, and of several groups (256 rules with 4 shards).
    for part in batch.chunks(100).take(3).chain(batch[300..].chunks(600)) {
        m.insert_batch_raw(part, &mut out);
    }
    let rules: Vec<Rule> = out.into_iter().map(Result::unwrap).collect();
    assert!(
        m.stats().shard_rules.iter().all(|&r| r > 0),
        "{:?}",
        m.stats()
    );
    for (i, v) in values.iter().enumerate() {
        assert_eq!(rig.tag_of(v), Some(1 + i as u32 % 4), "rule {i}");
    }
    assert_eq!(rig.tag_of(&five_tuple(5000)), None);
    // A batch of duplicates: each refused on its own, whatever its shard.
    let mut out = Vec::new();
    m.insert_batch_raw(&batch[..200], &mut out);
    assert_eq!(out.len(), 200);
    for r in &out {
        assert!(
            matches!(
                r,
                Err(InsertError::Insert {
                    source: HtblError::Duplicate,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    let mut out = Vec::new();
    m.remove_batch(rules, &mut out);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(m.stats().rules(), 0);
    for v in &values {
        assert_eq!(rig.tag_of(v), None);
    }
}

#[test]
fn duplicates_are_found_in_whichever_shard_holds_the_rule() {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(8, Completion::Wait);
    let lists = flow_tags(&m, 1);
    let rules: Vec<Rule> = (0..200)
        .map(|i| m.insert_raw(&five_tuple(i), &lists[0]).unwrap())
        .collect();
    for i in 0..200 {
        let again = m.insert_raw(&five_tuple(i), &lists[1]);
        assert!(
            matches!(
                again,
                Err(InsertError::Insert {
                    source: HtblError::Duplicate,
                    ..
                })
            ),
            "value {i}: {again:?}"
        );
    }
    assert_eq!(m.stats().rules(), 200);
    drop(rules);

    // Shared identical duplicates: one installed rule per value, in its shard.
    let opts = MatcherOptions {
        shards: 8,
        duplicates: Duplicates::ShareIdentical,
        priority: 1,
        ..MatcherOptions::default()
    };
    let shared = Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap();
    let list = shared.actions(&[Action::flow_tag(9).unwrap()]).unwrap();
    let first: Vec<Rule> = (0..100)
        .map(|i| shared.insert_raw(&five_tuple(i), &list).unwrap())
        .collect();
    let second: Vec<Rule> = (0..100)
        .map(|i| shared.insert_raw(&five_tuple(i), &list).unwrap())
        .collect();
    let s = shared.stats();
    assert_eq!((s.rules(), s.sides[0].1.shared_handles), (200, 100));
    drop(first);
    for i in 0..100 {
        assert_eq!(rig.tag_of(&five_tuple(i)), Some(9), "value {i}");
    }
    drop(second);
    assert_eq!(shared.stats().rules(), 0);
    assert_eq!(rig.tag_of(&five_tuple(0)), None);
}

#[test]
fn other_matchers_stay_before_and_after_all_shards() {
    let rig = Rig::new(DomainType::NicRx);
    // Source address only: catches the values the 5-tuple matchers have too.
    let by_src = Match::new().outer(|h| h.ipv4_src(Ipv4Addr::BROADCAST));
    let early = |prio| Matcher::new(&rig.table, &by_src, MatcherOptions::priority(prio)).unwrap();
    let sharded = |prio| {
        let opts = MatcherOptions {
            priority: prio,
            shards: 4,
            ..MatcherOptions::default()
        };
        Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap()
    };
    let late = early(3);
    let m = sharded(2);
    let first = early(1);
    assert_eq!(rig.table.matcher_count(), 3);
    let tag = |m: &Matcher, t: u32| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap();
    let (t_first, t_m, t_late) = (tag(&first, 1), tag(&m, 2), tag(&late, 3));

    let values: Vec<MatchParam> = (0..300).map(five_tuple).collect();
    let _in_m: Vec<Rule> = values
        .iter()
        .map(|v| m.insert_raw(v, &t_m).unwrap())
        .collect();
    // Every 10th value is caught before the sharded matcher; every value is in the last.
    let src_only = |i: usize| {
        Match::new()
            .outer(|h| h.ipv4_src(spread_src(i as u32)))
            .to_raw()
            .unwrap()
            .param
    };
    let _in_first: Vec<Rule> = (0..values.len())
        .step_by(10)
        .map(|i| first.insert_raw(&src_only(i), &t_first).unwrap())
        .collect();
    let _in_late: Vec<Rule> = (0..values.len())
        .map(|i| late.insert_raw(&src_only(i), &t_late).unwrap())
        .collect();
    for (i, v) in values.iter().enumerate() {
        let want = if i % 10 == 0 { 1 } else { 2 };
        assert_eq!(rig.tag_of(v), Some(want), "value {i}");
    }
    // Same priority as the sharded matcher: before all of its shards.
    let same = Matcher::new(&rig.table, &by_src, MatcherOptions::priority(2)).unwrap();
    let t_same = tag(&same, 4);
    let _in_same = same.insert_raw(&src_only(1), &t_same).unwrap();
    assert_eq!(rig.tag_of(&values[1]), Some(4));
    assert_eq!(rig.tag_of(&values[2]), Some(2));
    assert_eq!(rig.table.matcher_count(), 4);

    // Without the sharded matcher every value falls through to the last matcher.
    drop(_in_m);
    assert!(Matcher::destroy(m).is_ok());
    assert_eq!(rig.table.matcher_count(), 3);
    for (i, v) in values.iter().enumerate() {
        let want = match i {
            _ if i % 10 == 0 => 1,
            1 => 4,
            _ => 3,
        };
        assert_eq!(rig.tag_of(v), Some(want), "value {i}");
    }
    // And a new sharded matcher links in where the old one was.
    let again = sharded(2);
    let t_again = tag(&again, 5);
    let _in_again = again.insert_raw(&values[2], &t_again).unwrap();
    assert_eq!(rig.tag_of(&values[2]), Some(5));
    assert_eq!(rig.tag_of(&values[3]), Some(3));
}

#[test]
fn an_fdb_sharded_matcher_serves_both_sides() {
    for placement in [ShardPlacement::Tags, ShardPlacement::Thread] {
        fdb_sides(placement);
    }
}

fn fdb_sides(placement: ShardPlacement) {
    let rig = Rig::new(DomainType::Fdb);
    let m = rig.placed(3, Completion::Queue, placement);
    let to = |vport: u16| {
        m.actions(&[Action::dest_vport(&rig.dmn, vport).unwrap()])
            .unwrap()
    };
    let lists = [to(1), to(2)];
    let values: Vec<MatchParam> = (0..150).map(five_tuple).collect();
    let rules: Vec<Rule> = values
        .iter()
        .enumerate()
        .map(|(i, v)| m.insert_raw(v, &lists[i % 2]).unwrap())
        .collect();
    m.sync().unwrap();
    assert_eq!(m.stats().sides.len(), 2);
    // A route per value and side.
    let routes = if placement == ShardPlacement::Thread {
        300
    } else {
        0
    };
    assert_eq!(m.stats().routes, routes);
    for (i, (r, v)) in rules.iter().zip(&values).enumerate() {
        assert_eq!(r.sides().count(), 2);
        let want = Fate::Delivered(Terminal::Vport(1 + i as u16 % 2));
        for pipe in [Side::Rx, Side::Tx] {
            assert_eq!(rig.fate(v, pipe).0, want, "rule {i} on {pipe:?}");
        }
        for side in r.sides() {
            assert!(r.icm_addr(side).is_some(), "rule {i} on {side:?}");
        }
    }
    drop(rules);
    m.sync().unwrap();
    assert_eq!((m.stats().rules(), m.stats().routes), (0, 0));
    let never = five_tuple(10_000);
    for pipe in [Side::Rx, Side::Tx] {
        let miss = rig.fate(&never, pipe).0;
        for (i, v) in values.iter().enumerate() {
            assert_eq!(rig.fate(v, pipe).0, miss, "rule {i} on {pipe:?}");
        }
    }
}

#[test]
fn two_threads_share_a_sharded_matcher() {
    let rig = Rig::new(DomainType::NicRx);
    let placements = [ShardPlacement::Tags, ShardPlacement::Thread];
    for (completion, placement) in [Completion::Wait, Completion::Queue]
        .into_iter()
        .flat_map(|c| placements.map(|p| (c, p)))
    {
        for batched in [false, true] {
            let m = rig.placed(4, completion, placement);
            let lists = flow_tags(&m, 1);
            // Each thread inserts its half, removes every other of its rules and keeps
            // the rest: one by one, or in batches that take the shards in turns.
            let kept: Vec<Vec<Rule>> = thread::scope(|s| {
                let workers: Vec<_> = (0..2u32)
                    .map(|t| {
                        let (m, lists) = (&m, &lists);
                        s.spawn(move || share(m, lists, t, batched))
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            let how = format!("{completion:?}, {placement:?}, batched {batched}");
            m.sync().unwrap();
            let stats = m.stats();
            assert_eq!(stats.rules(), 1000, "{how}");
            if placement == ShardPlacement::Thread {
                // Each thread's 500 rules in a shard of its own.
                let used: Vec<u64> = stats.shard_rules.into_iter().filter(|&r| r > 0).collect();
                assert_eq!(used, [500, 500], "{how}");
                assert_eq!(stats.routes, 1000, "{how}");
            }
            for i in 0..2000u32 {
                let want = (i % 4 >= 2).then_some(1 + i % 4);
                assert_eq!(rig.tag_of(&five_tuple(i)), want, "value {i}, {how}");
            }
            drop(kept);
            m.sync().unwrap();
            assert_eq!((m.stats().rules(), m.stats().routes), (0, 0), "{how}");
            assert!(Matcher::destroy(m).is_ok());
        }
    }
}

/// Thread `t`'s part of [`two_threads_share_a_sharded_matcher`]: values `2i + t`, those
/// with `value % 4 < 2` removed again; returns the rules kept.
fn share(m: &Arc<Matcher>, lists: &[Arc<ActionList>], t: u32, batched: bool) -> Vec<Rule> {
    let ids: Vec<u32> = (0..1000).map(|i| 2 * i + t).collect();
    let values: Vec<MatchParam> = ids.iter().map(|&i| five_tuple(i)).collect();
    let rules: Vec<Rule> = if batched {
        let batch: Vec<_> = values
            .iter()
            .zip(&ids)
            .map(|(v, &i)| (v, &lists[i as usize % 4]))
            .collect();
        let mut out = Vec::new();
        for part in batch.chunks(300) {
            m.insert_batch_raw(part, &mut out);
        }
        out.into_iter().map(Result::unwrap).collect()
    } else {
        values
            .iter()
            .zip(&ids)
            .map(|(v, &i)| m.insert_raw(v, &lists[i as usize % 4]).unwrap())
            .collect()
    };
    let (gone, kept): (Vec<_>, Vec<_>) = ids.iter().zip(rules).partition(|(&i, _)| i % 4 < 2);
    let gone = gone.into_iter().map(|(_, r)| r);
    if batched {
        let mut out = Vec::new();
        m.remove_batch(gone, &mut out);
        assert!(out.iter().all(Result::is_ok), "{out:?}");
    } else {
        for r in gone {
            r.remove().unwrap();
        }
    }
    kept.into_iter().map(|(_, r)| r).collect()
}

/// Placed by thread: another thread's insert of an installed value meets it in the
/// first thread's shard (refused, or shared), and once it is gone the value goes to
/// the inserting thread's shard.
#[test]
fn placed_by_thread_a_duplicate_is_found_whichever_thread_inserts_it() {
    let rig = Rig::new(DomainType::NicRx);
    for duplicates in [Duplicates::Refuse, Duplicates::ShareIdentical] {
        let opts = MatcherOptions {
            shards: 4,
            placement: ShardPlacement::Thread,
            duplicates,
            ..MatcherOptions::default()
        };
        let m = Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap();
        let list = m.actions(&[Action::flow_tag(7).unwrap()]).unwrap();
        let insert = |range: std::ops::Range<u32>| -> Vec<Result<Rule, InsertError>> {
            range.map(|i| m.insert_raw(&five_tuple(i), &list)).collect()
        };
        let mine: Vec<Rule> = insert(0..200).into_iter().map(Result::unwrap).collect();
        let home = |m: &Matcher| -> Vec<u64> { m.stats().shard_rules };
        let after_mine = home(&m);
        let theirs = thread::scope(|s| {
            s.spawn(|| {
                // The same values, then 100 new ones into this thread's shard.
                let again = insert(0..200);
                let fresh: Vec<Rule> = insert(200..300).into_iter().map(Result::unwrap).collect();
                (again, fresh)
            })
            .join()
            .unwrap()
        });
        let (again, fresh) = theirs;
        let how = format!("{duplicates:?}");
        let stats = m.stats();
        match duplicates {
            Duplicates::Refuse => {
                for (i, r) in again.iter().enumerate() {
                    assert!(
                        matches!(
                            r,
                            Err(InsertError::Insert {
                                source: HtblError::Duplicate,
                                ..
                            })
                        ),
                        "value {i}: {r:?}"
                    );
                }
                assert_eq!(stats.rules(), 300, "{how}");
            }
            Duplicates::ShareIdentical => {
                assert!(again.iter().all(Result::is_ok), "{how}");
                assert_eq!(stats.sides[0].1.shared_handles, 200, "{how}");
            }
        }
        // The first thread to insert has shard 0, the next shard 1: the duplicates
        // went to shard 0, the new values to shard 1.
        assert_eq!(after_mine, [200, 0, 0, 0], "{how}");
        let shared = if duplicates == Duplicates::ShareIdentical {
            200
        } else {
            0
        };
        assert_eq!(stats.shard_rules, [200 + shared, 100, 0, 0], "{how}");
        assert_eq!(stats.routes, 300, "{how}");
        drop(again);
        for i in 0..300 {
            assert_eq!(rig.tag_of(&five_tuple(i)), Some(7), "{how}: value {i}");
        }
        // Gone from the first thread's shard: the other thread's insert of the value now
        // goes to its own shard.
        drop(mine);
        assert_eq!(m.stats().routes, 100, "{how}");
        let before = home(&m);
        let moved: Vec<Rule> = thread::scope(|s| {
            s.spawn(|| insert(0..200).into_iter().map(Result::unwrap).collect())
                .join()
                .unwrap()
        });
        // The third thread to insert: shard 2.
        assert_eq!(before, [0, 100, 0, 0], "{how}");
        assert_eq!(home(&m), [0, 100, 200, 0], "{how}");
        drop((moved, fresh));
        assert_eq!((m.stats().rules(), m.stats().routes), (0, 0), "{how}");
    }
}

/// Two threads insert the same values at once (one by one, or in batches), each with
/// its own flow tag: every value is installed once, by one of them, and the other's
/// insert is refused as a duplicate; packets get the winner's tag.
#[test]
fn two_threads_racing_for_the_same_values_install_each_once() {
    let rig = Rig::new(DomainType::NicRx);
    let n = 1500u32;
    let values: Vec<MatchParam> = (0..n).map(five_tuple).collect();
    for placement in [ShardPlacement::Tags, ShardPlacement::Thread] {
        for batched in [false, true] {
            let how = format!("{placement:?}, batched {batched}");
            let m = rig.placed(4, Completion::Wait, placement);
            let lists = flow_tags(&m, 1);
            let race = |t: usize| -> Vec<Option<Rule>> {
                let list = &lists[t];
                let results: Vec<Result<Rule, InsertError>> = if batched {
                    let batch: Vec<_> = values.iter().map(|v| (v, list)).collect();
                    let mut out = Vec::new();
                    for part in batch.chunks(100) {
                        m.insert_batch_raw(part, &mut out);
                    }
                    out
                } else {
                    values.iter().map(|v| m.insert_raw(v, list)).collect()
                };
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(rule) => Some(rule),
                        Err(InsertError::Insert {
                            source: HtblError::Duplicate,
                            ..
                        }) => None,
                        Err(e) => panic!("{how}: {e}"),
                    })
                    .collect()
            };
            let won: Vec<Vec<Option<Rule>>> = thread::scope(|s| {
                let a = s.spawn(|| race(0));
                let b = s.spawn(|| race(1));
                vec![a.join().unwrap(), b.join().unwrap()]
            });
            for i in 0..n as usize {
                let winners: Vec<usize> = (0..2).filter(|&t| won[t][i].is_some()).collect();
                assert_eq!(winners.len(), 1, "{how}: value {i}");
                assert_eq!(
                    rig.tag_of(&values[i]),
                    Some(1 + winners[0] as u32),
                    "{how}: value {i}"
                );
            }
            let stats = m.stats();
            assert_eq!(stats.rules(), u64::from(n), "{how}");
            let routes = if placement == ShardPlacement::Thread {
                n as usize
            } else {
                0
            };
            assert_eq!(stats.routes, routes, "{how}");
            drop(won);
            assert_eq!((m.stats().rules(), m.stats().routes), (0, 0), "{how}");
            assert!(Matcher::destroy(m).is_ok());
        }
    }
}

/// Placed by thread, two threads churn over the same 300 values for a while: each
/// inserts a value (kept if it went in, refused as a duplicate if the other holds it)
/// and removes one of its own in turn, one by one and in batches. Removals and inserts
/// of one value race between the threads, so routes are claimed and given back
/// concurrently; at the end no value is installed twice, packets find exactly the
/// values the threads hold, and the routes count those, then nothing once they go.
#[test]
fn two_threads_churning_over_the_same_values_keep_the_routes_exact() {
    let rig = Rig::new(DomainType::NicRx);
    let n = 300u32;
    let values: Vec<MatchParam> = (0..n).map(five_tuple).collect();
    for completion in [Completion::Wait, Completion::Queue] {
        let m = rig.placed(4, completion, ShardPlacement::Thread);
        let lists = flow_tags(&m, 1);
        let churn = |t: u32| -> Vec<(u32, Rule)> {
            let mut x = 0x9e37_79b9u32.wrapping_mul(t + 1);
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            };
            let mut held: Vec<(u32, Rule)> = Vec::new();
            for round in 0..1500 {
                let i = next() % n;
                let list = &lists[t as usize];
                if round % 10 == 9 {
                    // A batch of 8 values, some already held by either thread.
                    let ids: Vec<u32> = (0..8).map(|_| next() % n).collect();
                    let batch: Vec<_> = ids.iter().map(|&i| (&values[i as usize], list)).collect();
                    let mut out = Vec::new();
                    m.insert_batch_raw(&batch, &mut out);
                    for (&i, r) in ids.iter().zip(out) {
                        match r {
                            Ok(rule) => held.push((i, rule)),
                            Err(InsertError::Insert {
                                source: HtblError::Duplicate,
                                ..
                            }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                } else {
                    match m.insert_raw(&values[i as usize], list) {
                        Ok(rule) => held.push((i, rule)),
                        Err(InsertError::Insert {
                            source: HtblError::Duplicate,
                            ..
                        }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                if round % 2 == 1 && !held.is_empty() {
                    let k = (next() as usize) % held.len();
                    held.swap_remove(k).1.remove().unwrap();
                }
            }
            held
        };
        let held: Vec<Vec<(u32, Rule)>> = thread::scope(|s| {
            let a = s.spawn(|| churn(0));
            let b = s.spawn(|| churn(1));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        m.sync().unwrap();
        let mut owner: Vec<Option<u32>> = vec![None; n as usize];
        for (t, rules) in held.iter().enumerate() {
            for (i, _) in rules {
                assert_eq!(owner[*i as usize], None, "{completion:?}: value {i} twice");
                owner[*i as usize] = Some(1 + t as u32);
            }
        }
        let installed = owner.iter().filter(|o| o.is_some()).count();
        assert!(installed > 20, "{completion:?}: {installed}");
        let stats = m.stats();
        assert_eq!(stats.rules(), installed as u64, "{completion:?}");
        assert_eq!(stats.routes, installed, "{completion:?}");
        for (i, v) in values.iter().enumerate() {
            assert_eq!(rig.tag_of(v), owner[i], "{completion:?}: value {i}");
        }
        drop(held);
        m.sync().unwrap();
        assert_eq!(
            (m.stats().rules(), m.stats().routes),
            (0, 0),
            "{completion:?}"
        );
        assert!(Matcher::destroy(m).is_ok());
    }
}

#[test]
fn a_size_hint_is_shared_out_between_the_shards() {
    let rig = Rig::new(DomainType::NicRx);
    let entries = |shards: u8| {
        let opts = MatcherOptions {
            shards,
            expected_log_rules: 14,
            ..MatcherOptions::default()
        };
        let m = Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap();
        let e = m.stats().sides[0].1.table_entries;
        assert!(Matcher::destroy(m).is_ok());
        e
    };
    let one = entries(1);
    assert!(one >= 1 << 14, "{one}");
    // Each shard presizes its share (3 shards: a third each, rounded up to a half), so
    // the matcher's tables are about as large as one set's, not S times.
    for (shards, at_most) in [(2, one + 64), (4, one + 64), (3, one * 3 / 2 + 64)] {
        let e = entries(shards);
        assert!(
            e >= one * 3 / 4 && e <= at_most,
            "{shards} shards: {e} entries, one: {one}"
        );
    }
}

#[test]
fn shard_counts_out_of_range_are_refused() {
    let rig = Rig::new(DomainType::NicRx);
    for shards in [0, MAX_SHARDS + 1, u8::MAX] {
        let opts = MatcherOptions {
            shards,
            ..MatcherOptions::default()
        };
        let e = Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap_err();
        assert!(
            matches!(e, MatcherError::Shards { shards: s } if s == shards),
            "{e:?}"
        );
        assert!(e.to_string().contains(&shards.to_string()), "{e}");
    }
    assert_eq!(rig.table.matcher_count(), 0);
    // Nothing was written: the table still lets every packet through to its default.
    assert_eq!(rig.tag_of(&five_tuple(0)), None);
}
