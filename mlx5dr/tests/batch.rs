//! Batches of inserts (`Matcher::insert_batch_raw`) and removals (`Matcher::remove_batch`)
//! through the public API on a simulated ConnectX-6 Dx.
//!
//! - A batch installs the rules one-by-one inserts would, with the same tables (rules,
//!   STEs, growth) and the same verdicts for packets, in every completion mode.
//! - Each rule fails on its own (a bad value, a duplicate within the batch or of an
//!   installed rule, actions for another table) and changes nothing; the rest goes in.
//! - An FDB batch installs every rule on both sides, and a removal batch removes it from both.
//! - A device failure during a waited-for batch reports the group's rules failed and
//!   loses the matcher, which still drops cleanly.
//! - A removal batch leaves the tables single removals leave, in every completion mode;
//!   rules of other matchers in it are removed in their place; a device failure during
//!   a waited-for removal batch fails its group, as gone, and the rest comes back.

#![cfg(feature = "sim")]

mod common;
#[path = "common/sim_table.rs"]
mod sim_table;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::Side;
use ::sim::Fate;
use mlx5dr::htbl::HtblError;
use mlx5dr::{
    Action, ActionList, Completion, DomainType, InsertError, Match, Matcher, MatcherOptions, Rule,
};
use ste_builder::wqe::Syndrome;
use ste_builder::MatchParam;

use common::{five_tuple_mask, five_tuple_spread as five_tuple, round_robin};
use sim_table::SimTable;

/// The shared rig; this file adds its matchers.
type Rig = SimTable;

impl SimTable {
    fn matcher(&self, completion: Completion) -> Arc<Matcher> {
        let opts = MatcherOptions {
            completion,
            ..MatcherOptions::default()
        };
        Matcher::new(&self.table, &five_tuple_mask(), opts).unwrap()
    }
}

fn flow_tags(m: &Matcher) -> Vec<Arc<ActionList>> {
    (1..=4)
        .map(|t| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap())
        .collect()
}

/// `n` rules through batches of `size`, or one by one when `size` is 0: each probed
/// value's tag, and the matcher's rules, STEs and growth events.
fn install(completion: Completion, n: u32, size: usize) -> (Vec<Option<u32>>, [u64; 3]) {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(completion);
    let lists = flow_tags(&m);
    let values: Vec<MatchParam> = (0..n).map(five_tuple).collect();
    let mut rules: Vec<Rule> = Vec::new();
    if size == 0 {
        for (i, v) in values.iter().enumerate() {
            rules.push(m.insert_raw(v, &lists[i % 4]).unwrap());
        }
    } else {
        let batch = round_robin(&values, &lists);
        let mut out = Vec::new();
        for part in batch.chunks(size) {
            m.insert_batch_raw(part, &mut out);
        }
        rules = out.into_iter().map(Result::unwrap).collect();
    }
    if completion == Completion::Wait {
        // Nothing left to wait for: the batch waited.
        let before = rig.dmn.send_stats()[0].wqes;
        m.sync().unwrap();
        assert_eq!(rig.dmn.send_stats()[0].wqes, before);
    }
    m.sync().unwrap();
    // Every rule, and values never inserted.
    let tags = (0..n + 50).map(|i| rig.tag_of(&five_tuple(i))).collect();
    let s = m.stats().sides[0].1;
    assert_eq!((s.leaked_chunks, s.leaked_entries), (0, 0));
    drop(rules);
    m.sync().unwrap();
    assert_eq!(m.stats().rules(), 0);
    (tags, [s.rules, s.stes, s.grows])
}

/// Asserts that `run` gives `want` in every completion mode, with batches of 1, 5, 64,
/// 65 and 1000 rules.
fn in_every_mode_and_size<T: PartialEq + std::fmt::Debug>(
    want: &T,
    run: impl Fn(Completion, usize) -> T,
) {
    for completion in [Completion::Wait, Completion::Post, Completion::Queue] {
        for size in [1, 5, 64, 65, 1000] {
            assert_eq!(
                &run(completion, size),
                want,
                "{completion:?}, batches of {size}"
            );
        }
    }
}

#[test]
fn a_batch_installs_what_single_inserts_install() {
    let n = 700;
    let (tags, stats) = install(Completion::Wait, n, 0);
    for (i, t) in tags.iter().enumerate() {
        let want = (i < n as usize).then_some(i as u32 % 4 + 1);
        assert_eq!(*t, want, "value {i}");
    }
    assert!(stats[2] > 0, "the tables grew: {stats:?}");
    in_every_mode_and_size(&(tags, stats), |completion, size| {
        install(completion, n, size)
    });
}

/// In a matcher large enough that a group reads its chain heads ahead (from 2^16
/// rules), the groups still install every rule where packets find it, and refuse
/// duplicates, within the group and of installed rules.
#[test]
fn a_large_matchers_batches_install_every_rule() {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(Completion::Wait);
    let lists = flow_tags(&m);
    let n = 70_000u32;
    let values: Vec<MatchParam> = (0..n).map(five_tuple).collect();
    let batch = round_robin(&values, &lists);
    let mut out = Vec::new();
    for part in batch.chunks(1000) {
        m.insert_batch_raw(part, &mut out);
    }
    let rules: Vec<Rule> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(m.stats().rules(), u64::from(n));
    // The rules inserted after the read-ahead began, and a few before.
    for i in (0..n).step_by(997).chain(n - 3000..n) {
        assert_eq!(rig.tag_of(&values[i as usize]), Some(1 + i % 4), "rule {i}");
    }
    // The last groups again, each value twice in a row: all duplicates.
    let twice: Vec<_> = batch[n as usize - 300..]
        .iter()
        .flat_map(|r| [*r, *r])
        .collect();
    let mut out = Vec::new();
    m.insert_batch_raw(&twice, &mut out);
    assert!(
        out.iter().all(|r| matches!(
            r,
            Err(InsertError::Insert {
                source: HtblError::Duplicate,
                ..
            })
        )),
        "{:?}",
        out.iter().find(|r| r.is_ok())
    );
    // New values twice in a row in one group: the first goes in, the second is refused.
    let fresh: Vec<MatchParam> = (n..n + 200).map(five_tuple).collect();
    let pairs: Vec<_> = fresh
        .iter()
        .flat_map(|v| [(v, &lists[0]), (v, &lists[1])])
        .collect();
    let mut out = Vec::new();
    m.insert_batch_raw(&pairs, &mut out);
    for (k, r) in out.iter().enumerate() {
        assert_eq!(r.is_ok(), k % 2 == 0, "{k}: {r:?}");
    }
    for v in &fresh {
        assert_eq!(rig.tag_of(v), Some(1));
    }
    drop((out, rules));
    assert_eq!(m.stats().rules(), 0);
}

#[test]
fn each_rule_of_a_batch_fails_on_its_own() {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(Completion::Wait);
    let lists = flow_tags(&m);
    let installed = m.insert_raw(&five_tuple(1), &lists[0]).unwrap();
    // A value with a bit outside the mask: the destination port is matched, the VLAN
    // is not.
    let outside = Match::new()
        .outer(|h| h.ipv4_dst(Ipv4Addr::new(192, 168, 0, 1)).vlan_id(7))
        .to_raw()
        .unwrap()
        .param;
    // Actions for a table of another domain.
    let other = Rig::new(DomainType::NicRx);
    let other_m = other.matcher(Completion::Wait);
    let foreign = other_m.actions(&[Action::flow_tag(9).unwrap()]).unwrap();
    let (v2, v3, v4, v5) = (five_tuple(2), five_tuple(3), five_tuple(4), five_tuple(5));
    let v1 = five_tuple(1);
    let batch = [
        (&v2, &lists[1]),
        (&v1, &lists[2]),      // a duplicate of an installed rule
        (&v3, &lists[2]),      //
        (&v2, &lists[3]),      // a duplicate of the batch's first rule
        (&outside, &lists[0]), // a bit outside the mask
        (&v4, &foreign),       // another table's actions
        (&v5, &lists[3]),
    ];
    let mut out = Vec::new();
    m.insert_batch_raw(&batch, &mut out);
    assert_eq!(out.len(), batch.len());
    let duplicate = |r: &Result<Rule, InsertError>| {
        matches!(
            r,
            Err(InsertError::Insert {
                source: HtblError::Duplicate,
                ..
            })
        )
    };
    assert!(
        out[0].is_ok() && out[2].is_ok() && out[6].is_ok(),
        "{out:?}"
    );
    assert!(duplicate(&out[1]) && duplicate(&out[3]), "{out:?}");
    assert!(
        matches!(out[4], Err(InsertError::Refused { .. })),
        "{:?}",
        out[4]
    );
    assert!(
        matches!(out[5], Err(InsertError::ActionsForOtherTable { .. })),
        "{:?}",
        out[5]
    );
    assert_eq!(m.stats().rules(), 4);
    assert_eq!(rig.tag_of(&v1), Some(1));
    assert_eq!(rig.tag_of(&v2), Some(2));
    assert_eq!(rig.tag_of(&v3), Some(3));
    assert_eq!(rig.tag_of(&v4), None);
    assert_eq!(rig.tag_of(&v5), Some(4));
    drop((out, installed));
    assert_eq!(m.stats().rules(), 0);
    assert_eq!(rig.tag_of(&v2), None);
}

#[test]
fn an_fdb_batch_installs_and_removes_every_rule_on_both_sides() {
    let rig = Rig::new(DomainType::Fdb);
    let m = rig.matcher(Completion::Wait);
    let to = |vport: u16| {
        m.actions(&[Action::dest_vport(&rig.dmn, vport).unwrap()])
            .unwrap()
    };
    let lists = [to(1), to(2)];
    let values: Vec<MatchParam> = (0..150).map(five_tuple).collect();
    let batch: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (v, &lists[i % 2]))
        .collect();
    let mut out = Vec::new();
    m.insert_batch_raw(&batch, &mut out);
    let rules: Vec<Rule> = out.into_iter().map(Result::unwrap).collect();
    for (i, (r, v)) in rules.iter().zip(&values).enumerate() {
        assert_eq!(r.sides().count(), 2);
        let want = Fate::Delivered(Terminal::Vport(1 + i as u16 % 2));
        for pipe in [Side::Rx, Side::Tx] {
            assert_eq!(rig.fate(v, pipe).0, want, "rule {i} on {pipe:?}");
        }
    }
    let mut out = Vec::new();
    m.remove_batch(rules, &mut out);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(m.stats().rules(), 0);
    // Every value now ends as one never inserted does.
    let never = five_tuple(10_000);
    for pipe in [Side::Rx, Side::Tx] {
        let miss = rig.fate(&never, pipe).0;
        assert!(
            !matches!(miss, Fate::Delivered(Terminal::Vport(1 | 2))),
            "{miss:?}"
        );
        for (i, v) in values.iter().enumerate() {
            assert_eq!(rig.fate(v, pipe).0, miss, "rule {i} on {pipe:?}");
        }
    }
}

/// An error CQE on each WQE in turn of a waited-for batch: either no WQE failed and every
/// rule is in, or the failure's group reports its rules failed and the matcher is lost;
/// the rules that came back `Ok` are reachable, and everything drops cleanly.
#[test]
fn a_device_failure_during_a_waited_batch_fails_its_group() {
    for (round, nth) in (0..).step_by(7).enumerate() {
        let rig = Rig::new(DomainType::NicRx);
        let m = rig.matcher(Completion::Wait);
        let lists = flow_tags(&m);
        let values: Vec<MatchParam> = (0..100).map(five_tuple).collect();
        let batch: Vec<_> = values.iter().map(|v| (v, &lists[0])).collect();
        let qpn = rig.dmn.ring_at(0).qpn();
        rig.be
            .sim()
            .with_queue(qpn, |q| {
                q.inject_error(nth, Syndrome::LocalProtection, 0x42)
            })
            .unwrap();
        let mut out = Vec::new();
        m.insert_batch_raw(&batch, &mut out);
        let failed = out.iter().filter(|r| r.is_err()).count();
        if failed == 0 {
            // The batch ended before the error's WQE.
            assert!(round > 0, "the first WQEs failed nothing");
            break;
        }
        for r in out.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(
                    r,
                    InsertError::Insert {
                        source: HtblError::Lost(_),
                        ..
                    }
                ),
                "{r:?}"
            );
        }
        // Whole groups fail: 64 rules, or the 36 of the second.
        assert!(failed == 64 || failed == 36 || failed == 100, "{failed}");
        for (i, r) in out.iter().enumerate() {
            if r.is_ok() {
                assert_eq!(rig.tag_of(&values[i]), Some(1), "rule {i}");
            }
        }
        assert!(matches!(
            m.insert_raw(&five_tuple(500), &lists[0]),
            Err(InsertError::Insert {
                source: HtblError::Lost(_),
                ..
            })
        ));
        let in_pool = rig.dmn.ste_pool().stats().chunks;
        drop(out);
        drop(m);
        drop(lists);
        // A lost matcher keeps out of use what a write may still reach, and gives the
        // rest back; packets skip it.
        assert!(rig.dmn.ste_pool().stats().chunks < in_pool, "WQE {nth}");
        for v in &values {
            assert_eq!(rig.tag_of(v), None);
        }
    }
}

/// `n` rules inserted one by one, then the even ones removed through batches of `size`
/// (one by one when `size` is 0), then the rest: after the first removals each probed
/// value's tag, the matcher's rules and STEs, and the pool's chunks and slab bytes.
fn uninstall(completion: Completion, n: u32, size: usize) -> (Vec<Option<u32>>, [u64; 4]) {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(completion);
    let lists = flow_tags(&m);
    let mut rules: Vec<Option<Rule>> = (0..n)
        .map(|i| {
            Some(
                m.insert_raw(&five_tuple(i), &lists[i as usize % 4])
                    .unwrap(),
            )
        })
        .collect();
    let remove = |rules: Vec<Rule>| {
        if size == 0 {
            for r in rules {
                r.remove().unwrap();
            }
        } else {
            let mut out = Vec::new();
            let mut rules = rules.into_iter().peekable();
            while rules.peek().is_some() {
                m.remove_batch(rules.by_ref().take(size), &mut out);
            }
            assert!(out.iter().all(Result::is_ok), "{out:?}");
        }
    };
    let evens = rules
        .iter_mut()
        .step_by(2)
        .map(|r| r.take().unwrap())
        .collect();
    remove(evens);
    if completion == Completion::Wait {
        let before = rig.dmn.send_stats()[0].wqes;
        m.sync().unwrap();
        assert_eq!(rig.dmn.send_stats()[0].wqes, before, "the batch waited");
    }
    m.sync().unwrap();
    let tags = (0..n + 50).map(|i| rig.tag_of(&five_tuple(i))).collect();
    let s = m.stats().sides[0].1;
    let pool = rig.dmn.ste_pool().stats();
    remove(rules.into_iter().flatten().collect());
    m.sync().unwrap();
    assert_eq!(m.stats().rules(), 0);
    for i in (0..n).step_by(37) {
        assert_eq!(rig.tag_of(&five_tuple(i)), None, "value {i}");
    }
    (tags, [s.rules, s.stes, pool.chunks, pool.slab_bytes])
}

#[test]
fn a_removal_batch_leaves_what_single_removals_leave() {
    let n = 700;
    let (tags, stats) = uninstall(Completion::Wait, n, 0);
    for (i, t) in tags.iter().enumerate() {
        let want = (i < n as usize && i % 2 == 1).then_some(i as u32 % 4 + 1);
        assert_eq!(*t, want, "value {i}");
    }
    assert_eq!(stats[0], u64::from(n / 2));
    in_every_mode_and_size(&(tags, stats), |completion, size| {
        uninstall(completion, n, size)
    });
}

#[test]
fn a_removal_batch_removes_other_matchers_rules_in_their_place() {
    let rig = Rig::new(DomainType::NicRx);
    let m = rig.matcher(Completion::Wait);
    // A second matcher on the destination address only, in the same table.
    let other = Matcher::new(
        &rig.table,
        &Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::BROADCAST)),
        MatcherOptions::default(),
    )
    .unwrap();
    let lists = flow_tags(&m);
    let mut rules = Vec::new();
    for i in 0..150 {
        rules.push(m.insert_raw(&five_tuple(i), &lists[0]).unwrap());
        if i % 50 == 7 {
            let v = Match::new()
                .outer(|h| h.ipv4_dst(Ipv4Addr::from(0x0a00_0000 + i)))
                .to_raw()
                .unwrap()
                .param;
            rules.push(other.insert_raw(&v, &lists[1]).unwrap());
        }
    }
    let n = rules.len();
    let mut out = Vec::new();
    m.remove_batch(rules, &mut out);
    assert_eq!(out.len(), n);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!((m.stats().rules(), other.stats().rules()), (0, 0));
    for i in 0..150 {
        assert_eq!(rig.tag_of(&five_tuple(i)), None, "value {i}");
    }
}

/// An error CQE on each WQE in turn of a waited-for removal batch: every removal before
/// the failed group's is done; the failed group's rules are reported lost and gone; the
/// later groups' rules come back in their errors, still installed; everything drops
/// cleanly. (An error on a group's last READ, after its last write completed, fails
/// nothing.)
#[test]
fn a_device_failure_during_a_waited_removal_batch_fails_its_group() {
    // 150 removals, each one WRITE and one READ: groups of 64, 64 and 22 rules.
    let mut failed_groups = Vec::new();
    for nth in (0..300).step_by(5) {
        let rig = Rig::new(DomainType::NicRx);
        let m = rig.matcher(Completion::Wait);
        let lists = flow_tags(&m);
        let values: Vec<MatchParam> = (0..150).map(five_tuple).collect();
        let rules: Vec<Rule> = values
            .iter()
            .map(|v| m.insert_raw(v, &lists[0]).unwrap())
            .collect();
        let qpn = rig.dmn.ring_at(0).qpn();
        rig.be
            .sim()
            .with_queue(qpn, |q| {
                q.inject_error(nth, Syndrome::LocalProtection, 0x42)
            })
            .unwrap();
        let mut out = Vec::new();
        m.remove_batch(rules, &mut out);
        assert_eq!(out.len(), values.len());
        let Some(first) = out.iter().position(Result::is_err) else {
            continue;
        };
        failed_groups.push(first / 64);
        // Whole groups of 64 fail; the ones before are out of the hardware.
        assert_eq!(first % 64, 0, "{out:?}");
        for (i, v) in values.iter().enumerate().take(first) {
            assert_eq!(rig.tag_of(v), None, "rule {i}");
        }
        for (i, v) in values.iter().enumerate().skip(first + 64) {
            assert_eq!(rig.tag_of(v), Some(1), "rule {i}");
        }
        let mut back = Vec::new();
        for (i, r) in out.into_iter().enumerate().skip(first) {
            let e = r.expect_err("every rule from the failed group on fails");
            assert!(matches!(e.error, HtblError::Lost(_)), "rule {i}: {e:?}");
            if i < first + 64 {
                assert!(e.rule.is_none(), "rule {i} of the failed group is gone");
            } else {
                back.push(e.rule.expect("a later group's rule is still installed"));
            }
        }
        assert_eq!(back.len(), values.len().saturating_sub(first + 64));
        let in_pool = rig.dmn.ste_pool().stats().chunks;
        drop(back);
        drop(m);
        drop(lists);
        assert!(rig.dmn.ste_pool().stats().chunks < in_pool, "WQE {nth}");
        for v in &values {
            assert_eq!(rig.tag_of(v), None);
        }
    }
    failed_groups.dedup();
    assert_eq!(failed_groups, [0, 1, 2], "a failure in each group");
}
