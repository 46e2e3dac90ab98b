//! Updates that do not wait for their completions (`Completion::Post` and
//! `Completion::Queue`), through the public API on a simulated ConnectX-6 Dx.
//!
//! - The same inserts and removals end in the same rules, reachable the same way, as
//!   with `Completion::Wait`; memory they free is reused only after they landed, and
//!   nothing leaks.
//! - Queued updates reach the device at a flush (`Matcher::sync`).
//! - A removed rule's actions live until its unlinking write has landed.
//! - A write that fails after its call returned `Ok` poisons the matchers whose updates
//!   it lost (`HtblError::Lost` on every later call), but not a matcher on the same ring
//!   whose updates all landed before it; a poisoned matcher still drops cleanly.

#![cfg(feature = "sim")]

mod common;
#[path = "common/sim_table.rs"]
mod sim_table;

use std::sync::Arc;

use ::sim::profile::DeviceModel;
use ::sim::queue::QueueState;
use mlx5dr::device::sim::SimBackend;
use mlx5dr::htbl::HtblError;
use mlx5dr::{
    Action, ActionList, Completion, DomainConfig, DomainSide, DomainType, InsertError, Matcher,
    MatcherOptions, Rule,
};
use ste_builder::wqe::Syndrome;

use common::{five_tuple_mask, five_tuple_spread as five_tuple};
use sim_table::SimTable;

/// The shared rig; this file adds its matchers and counters.
type Rig = SimTable;

impl SimTable {
    /// NIC RX with one send ring, so every matcher shares it.
    fn one_ring() -> Rig {
        let cfg = DomainConfig {
            rings: 1,
            ..DomainConfig::default()
        };
        let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
        SimTable::open(be, DomainType::NicRx, cfg)
    }

    fn matcher(&self, completion: Completion, priority: u32) -> Arc<Matcher> {
        let opts = MatcherOptions {
            priority,
            completion,
            ..MatcherOptions::default()
        };
        Matcher::new(&self.table, &five_tuple_mask(), opts).unwrap()
    }

    fn actions(&self, m: &Matcher, tag: u32) -> Arc<ActionList> {
        m.actions(&[Action::flow_tag(tag).unwrap()]).unwrap()
    }

    fn wqes(&self) -> u64 {
        self.dmn.send_stats()[0].wqes
    }
}

/// What a run leaves: each probed value's tag, and the matcher's rule and STE counts.
fn run(completion: Completion, n: u32) -> (Vec<Option<u32>>, u64, u64, u64) {
    let rig = Rig::one_ring();
    let base = rig.dmn.ste_pool().stats().chunks;
    let m = rig.matcher(completion, 0);
    let lists: Vec<Arc<ActionList>> = (0..4).map(|t| rig.actions(&m, t + 1)).collect();
    let mut rules: Vec<Option<Rule>> = (0..n)
        .map(|i| {
            Some(
                m.insert_raw(&five_tuple(i), &lists[i as usize % 4])
                    .unwrap(),
            )
        })
        .collect();
    // Every other rule goes, then a third of them come back: removals and inserts
    // interleave with growth and with memory waiting to be reused.
    for i in (0..n).step_by(2) {
        rules[i as usize] = None;
    }
    for i in (0..n).step_by(6) {
        rules[i as usize] = Some(m.insert_raw(&five_tuple(i), &lists[0]).unwrap());
    }
    m.sync().unwrap();
    let tags = (0..n).map(|i| rig.tag_of(&five_tuple(i))).collect();
    let stats = m.stats().sides[0].1;
    assert_eq!((stats.leaked_chunks, stats.leaked_entries), (0, 0));
    let grows = stats.grows;
    drop(rules);
    m.sync().unwrap();
    drop(m);
    drop(lists);
    // Everything the matcher had is back in the pool.
    assert_eq!(rig.dmn.ste_pool().stats().chunks, base);
    (tags, stats.rules, stats.stes, grows)
}

#[test]
fn posted_and_queued_updates_end_as_waited_ones() {
    let n = 3000;
    let waited = run(Completion::Wait, n);
    assert!(waited.3 > 0, "the run grows a table");
    let expect: Vec<Option<u32>> = (0..n)
        .map(|i| match i {
            i if i % 6 == 0 => Some(1),
            i if i % 2 == 0 => None,
            i => Some(i % 4 + 1),
        })
        .collect();
    assert_eq!(waited.0, expect);
    for completion in [Completion::Post, Completion::Queue] {
        assert_eq!(run(completion, n), waited, "{completion:?}");
    }
}

#[test]
fn queued_updates_reach_the_device_at_a_sync() {
    let rig = Rig::one_ring();
    let m = rig.matcher(Completion::Queue, 0);
    let v = five_tuple(7);
    let rule = m.insert_raw(&v, &rig.actions(&m, 9)).unwrap();
    assert_eq!(rig.tag_of(&v), None, "queued, no doorbell yet");
    m.sync().unwrap();
    assert_eq!(rig.tag_of(&v), Some(9));
    drop(rule);
    assert_eq!(rig.tag_of(&v), Some(9), "the removal is queued");
    m.sync().unwrap();
    assert_eq!(rig.tag_of(&v), None);
    // A posted update rings the doorbell itself.
    let p = rig.matcher(Completion::Post, 1);
    let _rule = p.insert_raw(&v, &rig.actions(&p, 3)).unwrap();
    assert_eq!(rig.tag_of(&v), Some(3));
}

#[test]
fn a_removed_rule_keeps_its_actions_until_the_unlink_lands() {
    let rig = Rig::one_ring();
    let m = rig.matcher(Completion::Queue, 0);
    let list = rig.actions(&m, 5);
    let weak = Arc::downgrade(&list);
    let rule = m.insert_raw(&five_tuple(1), &list).unwrap();
    drop(list);
    m.sync().unwrap();
    drop(rule);
    assert!(weak.upgrade().is_some(), "held while the unlink is queued");
    m.sync().unwrap();
    assert!(weak.upgrade().is_none(), "released once it landed");
}

/// Matcher `a` queues updates after matcher `b` did, on the same ring; the device then
/// fails the first WQE after `b`'s. `b`'s updates landed and it goes on; `a` is lost.
#[test]
fn a_failed_queued_update_poisons_only_the_matchers_it_lost() {
    let rig = Rig::one_ring();
    let a = rig.matcher(Completion::Queue, 0);
    let b = rig.matcher(Completion::Queue, 1);
    let w = rig.matcher(Completion::Wait, 2);
    let a_list = rig.actions(&a, 1);
    let b_list = rig.actions(&b, 2);
    let w_list = rig.actions(&w, 3);
    let mut a_rules: Vec<Rule> = (0..20)
        .map(|i| a.insert_raw(&five_tuple(i), &a_list).unwrap())
        .collect();
    let b_rules: Vec<Rule> = (100..120)
        .map(|i| b.insert_raw(&five_tuple(i), &b_list).unwrap())
        .collect();
    a.sync().unwrap();
    b.sync().unwrap();

    // Queued, nothing rung yet: b's two inserts, then a's.
    let before = rig.wqes();
    let b_late: Vec<Rule> = (120..122)
        .map(|i| b.insert_raw(&five_tuple(i), &b_list).unwrap())
        .collect();
    let b_wqes = rig.wqes() - before;
    let a_late = a.insert_raw(&five_tuple(20), &a_list).unwrap();
    let qpn = rig.dmn.ring_at(0).qpn();
    rig.be
        .sim()
        .with_queue(qpn, |q| {
            q.inject_error(b_wqes, Syndrome::LocalProtection, 0x42)
        })
        .unwrap();

    // `a` finds out at its sync; afterwards it takes no update.
    let lost = |e: &HtblError| matches!(e, HtblError::Lost(_));
    match a.sync() {
        Err((DomainSide::NicRx, e)) => assert!(lost(&e), "{e:?}"),
        other => panic!("{other:?}"),
    }
    match a.insert_raw(&five_tuple(21), &a_list) {
        Err(InsertError::Insert { source, .. }) => assert!(lost(&source), "{source:?}"),
        other => panic!("{other:?}"),
    }
    let e = a_rules.pop().unwrap().remove().unwrap_err();
    assert!(lost(&e.error), "{e:?}");
    assert!(
        e.rule.is_some(),
        "still held: the tables do not know better"
    );
    drop(e);
    assert!(a.sync().is_err());

    // `b` landed everything before the failure: it works on the replaced ring.
    b.sync().unwrap();
    let b_more = b.insert_raw(&five_tuple(122), &b_list).unwrap();
    b.sync().unwrap();
    for i in 100..123 {
        assert_eq!(rig.tag_of(&five_tuple(i)), Some(2), "b's rule {i}");
    }
    // So does a matcher that waits for its updates.
    let w_rule = w.insert_raw(&five_tuple(200), &w_list).unwrap();
    assert_eq!(rig.tag_of(&five_tuple(200)), Some(3));

    // The lost matcher drops cleanly, and packets skip it afterwards.
    let in_pool = rig.dmn.ste_pool().stats().chunks;
    drop((a_rules, a_late, a_list));
    drop(a);
    assert!(rig.dmn.ste_pool().stats().chunks < in_pool);
    for i in 0..21 {
        assert_eq!(rig.tag_of(&five_tuple(i)), None, "a's rule {i}");
    }
    for i in 100..123 {
        assert_eq!(rig.tag_of(&five_tuple(i)), Some(2), "b's rule {i}");
    }
    drop((b_rules, b_late, b_more, w_rule));
    b.sync().unwrap();
}

/// An error CQE on each WQE in turn of a burst of inserts and removals that do not wait.
/// A call may fail at once (a send error, or `Lost` once the matcher knows); after
/// the sync either nothing was lost and exactly the rules whose calls succeeded are
/// installed, or the matcher is lost. Either way everything drops cleanly: the pool
/// is back where it was before the matcher, and packets skip it.
#[test]
fn an_error_cqe_on_each_wqe_of_a_burst() {
    for mode in [Completion::Post, Completion::Queue] {
        let mut lost = 0;
        for nth in 0.. {
            let rig = Rig::one_ring();
            let base = rig.dmn.ste_pool().stats().chunks;
            let m = rig.matcher(mode, 0);
            let list = rig.actions(&m, 4);
            let mut rules: Vec<(u32, Rule)> = (0..20)
                .map(|i| (i, m.insert_raw(&five_tuple(i), &list).unwrap()))
                .collect();
            m.sync().unwrap();
            let before = rig.wqes();
            let qpn = rig.dmn.ring_at(0).qpn();
            rig.be
                .sim()
                .with_queue(qpn, |q| {
                    q.inject_error(nth, Syndrome::LocalProtection, 0x42)
                })
                .unwrap();
            let what = format!("{mode:?} WQE {nth}");
            let mut removed = Vec::new();
            for i in 20..50 {
                if let Ok(rule) = m.insert_raw(&five_tuple(i), &list) {
                    rules.push((i, rule));
                }
                if i % 3 == 0 {
                    let (j, rule) = rules.swap_remove(0);
                    match rule.remove() {
                        Ok(()) => removed.push(j),
                        Err(e) => rules.push((j, e.rule.expect("refused before the unlink"))),
                    }
                }
            }
            match m.sync() {
                Ok(()) => {
                    for (i, _) in &rules {
                        assert_eq!(rig.tag_of(&five_tuple(*i)), Some(4), "{what}: rule {i}");
                    }
                    for i in &removed {
                        assert_eq!(rig.tag_of(&five_tuple(*i)), None, "{what}: removed {i}");
                    }
                }
                Err((_, HtblError::Lost(_))) => lost += 1,
                Err(e) => panic!("{what}: {e:?}"),
            }
            let fired = match rig.be.sim().with_queue(qpn, |q| q.state()) {
                Ok(state) => state != QueueState::Ready,
                Err(_) => true,
            };
            if !fired {
                // Past the burst: the error would hit the matcher's unlinking (the failure
                // tests cover that), so every WQE of the burst has had its turn.
                assert!(nth >= rig.wqes() - before, "{what}");
                break;
            }
            drop(rules);
            drop(m);
            drop(list);
            assert_eq!(rig.dmn.ste_pool().stats().chunks, base, "{what}");
            for i in 0..50 {
                assert_eq!(
                    rig.tag_of(&five_tuple(i)),
                    None,
                    "{what}: after the drop, {i}"
                );
            }
        }
        assert!(lost > 0, "{mode:?}: some failure was found later");
    }
}
