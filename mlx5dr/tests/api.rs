//! The public API end to end on a simulated ConnectX: domain, tables, matchers by
//! priority, rules with actions, packets through the firmware table into ICM.

#![cfg(feature = "sim")]

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::profile::DeviceModel;
use ::sim::{Entry, Fate};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::htbl::HtblError;
use mlx5dr::matcher::MatcherInUse;
use mlx5dr::{
    Action, Device, Domain, DomainType, InsertError, Match, Matcher, MatcherOptions, Table,
};
use ste_builder::MatchParam;

use common::five_tuple_mask;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

struct Rig {
    be: Arc<SimBackend>,
    dmn: Arc<Domain>,
    table: Arc<Table>,
}

impl Rig {
    fn new(model: DeviceModel) -> Rig {
        let be = Arc::new(SimBackend::of_model(model));
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open(dev, DomainType::NicRx).unwrap();
        let table = Table::new(&dmn, 1).unwrap();
        Rig { be, dmn, table }
    }

    /// Sends a packet built from `value` into the table's firmware table: its flow tag,
    /// or `None` when it reached the default (drop on NIC RX) without one.
    fn classify(&self, value: &Match) -> Result<Option<u32>, String> {
        let v = value.to_raw().unwrap().param;
        self.classify_raw(&v)
    }

    fn classify_raw(&self, v: &MatchParam) -> Result<Option<u32>, String> {
        let pkt = build_from_match(v, Metadata::new(Side::Rx)).map_err(|e| e.to_string())?;
        let out = self
            .be
            .sim()
            .process(pkt, Entry::Table(self.table.fw_id()))
            .map_err(|e| e.to_string())?;
        match &out[..] {
            [d] => match &d.fate {
                Fate::Delivered(Terminal::Drop) => Ok(d.packet.meta.flow_tag),
                other => Err(format!("unexpected fate {other:?}")),
            },
            _ => Err(format!("{} copies", out.len())),
        }
    }
}

fn five_tuple(i: u32) -> Match {
    Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::from(0x0a00_0000 + i))
            .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
            .ip_protocol(6)
            .tcp_sport(1000 + (i as u16 % 5000))
            .tcp_dport(80)
    })
}

#[test]
fn rules_hit_miss_and_go_on_drop() {
    for model in MODELS {
        let rig = Rig::new(model);
        let m = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
        let mut rules = Vec::new();
        for i in 0..200 {
            let acts = m
                .actions(&[Action::flow_tag(i + 1).unwrap(), Action::drop()])
                .unwrap();
            rules.push(m.insert(&five_tuple(i), &acts).unwrap());
        }
        for i in 0..200 {
            assert_eq!(
                rig.classify(&five_tuple(i)),
                Ok(Some(i + 1)),
                "{model:?} {i}"
            );
        }
        assert_eq!(rig.classify(&five_tuple(500)), Ok(None));
        // Dropping a rule removes it.
        let r = rules.remove(7);
        drop(r);
        assert_eq!(rig.classify(&five_tuple(7)), Ok(None));
        assert_eq!(rig.classify(&five_tuple(8)), Ok(Some(9)));
        assert_eq!(m.stats().rules(), 199);
        // A duplicate is refused.
        let acts = m.actions(&[Action::flow_tag(77).unwrap()]).unwrap();
        let dup = m.insert(&five_tuple(8), &acts);
        assert!(
            matches!(
                dup,
                Err(InsertError::Insert {
                    source: HtblError::Duplicate,
                    ..
                })
            ),
            "{dup:?}"
        );
        // The matcher cannot go while rules hold it.
        let m = match Matcher::destroy(m) {
            Err(MatcherInUse { matcher, users }) => {
                assert_eq!(users, 199);
                matcher
            }
            Ok(()) => panic!("destroyed a matcher with rules"),
        };
        drop(rules);
        Matcher::destroy(m).unwrap();
        assert_eq!(rig.table.matcher_count(), 0);
        assert_eq!(rig.classify(&five_tuple(8)), Ok(None));
    }
}

#[test]
fn matchers_are_looked_up_by_priority() {
    for model in MODELS {
        let rig = Rig::new(model);
        let dst_mask = Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::BROADCAST));
        // Priority 5 first, then 1 (goes before it), then 9 (after both), then 5 again
        // (before the first 5).
        let m5 = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::priority(5)).unwrap();
        let m1 = Matcher::new(&rig.table, &dst_mask, MatcherOptions::priority(1)).unwrap();
        let m9 = Matcher::new(&rig.table, &dst_mask, MatcherOptions::priority(9)).unwrap();
        let m5b =
            Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::priority(5)).unwrap();
        let tag = |m: &Arc<Matcher>, t: u32| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap();

        let r5 = m5.insert(&five_tuple(1), &tag(&m5, 5)).unwrap();
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(5)));
        let r9 = m9
            .insert(
                &Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))),
                &tag(&m9, 9),
            )
            .unwrap();
        // m5 comes before m9.
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(5)));
        assert_eq!(rig.classify(&five_tuple(2)), Ok(Some(9)));
        let r5b = m5b.insert(&five_tuple(1), &tag(&m5b, 55)).unwrap();
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(55)));
        let r1 = m1
            .insert(
                &Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))),
                &tag(&m1, 1),
            )
            .unwrap();
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(1)));
        // Remove the front matcher: the next in line answers.
        drop(r1);
        drop(m1);
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(55)));
        drop(r5b);
        drop(m5b);
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(5)));
        drop(r5);
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(9)));
        // A middle matcher removed while its neighbours keep rules.
        drop(m5);
        assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(9)));
        drop(r9);
        assert_eq!(rig.classify(&five_tuple(1)), Ok(None));
        assert_eq!(rig.table.matcher_count(), 1);
    }
}

#[test]
fn goto_table_and_counters() {
    let rig = Rig::new(DeviceModel::ConnectX6Dx);
    let t2 = Table::new(&rig.dmn, 2).unwrap();
    let counter = mlx5dr::Counter::alloc(&rig.dmn, 4).unwrap();
    let m1 = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
    let dmac_mask = Match::new().outer(|h| h.dmac([0xff; 6]));
    let m2 = Matcher::new(&t2, &dmac_mask, MatcherOptions::default()).unwrap();
    let to_t2 = m1
        .actions(&[
            Action::counter(&counter, 3).unwrap(),
            Action::goto_table(&t2),
        ])
        .unwrap();
    let _r1 = m1.insert(&five_tuple(1), &to_t2).unwrap();
    let tag = m2.actions(&[Action::flow_tag(42).unwrap()]).unwrap();
    let mac = [0x02, 0, 0, 0, 0, 1];
    let _r2 = m2
        .insert(&Match::new().outer(|h| h.dmac(mac)), &tag)
        .unwrap();
    let pkt = five_tuple(1).outer(|h| h.dmac(mac));
    assert_eq!(rig.classify(&pkt), Ok(Some(42)));
    assert_eq!(rig.classify(&five_tuple(1)), Ok(None));
    assert_eq!(counter.query(3).unwrap().packets, 2);
    // The goto's table cannot be destroyed while the list holds it.
    assert!(Table::destroy(t2).is_err());
}

#[test]
fn set_actions_swaps_what_packets_get() {
    for model in MODELS {
        let rig = Rig::new(model);
        let m = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
        let tag = |t: u32| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap();
        let mut rules: Vec<_> = (0..50)
            .map(|i| m.insert(&five_tuple(i), &tag(i + 1)).unwrap())
            .collect();
        rules[10].set_actions(&tag(1000)).unwrap();
        assert_eq!(rig.classify(&five_tuple(10)), Ok(Some(1000)), "{model:?}");
        assert_eq!(rig.classify(&five_tuple(11)), Ok(Some(12)), "{model:?}");
        // A list of another table is refused and changes nothing.
        let t2 = Table::new(&rig.dmn, 2).unwrap();
        let other = mlx5dr::ActionList::new(&t2, &[Action::flow_tag(5).unwrap()]).unwrap();
        assert!(matches!(
            rules[10].set_actions(&Arc::new(other)),
            Err(mlx5dr::UpdateError::ActionsForOtherTable { level: 1 })
        ));
        assert_eq!(rig.classify(&five_tuple(10)), Ok(Some(1000)));
        // The rule holds its current list; dropping it removes the rule as before.
        assert_eq!(Arc::strong_count(rules[10].actions()), 1);
        drop(rules.remove(10));
        assert_eq!(rig.classify(&five_tuple(10)), Ok(None));
    }
}

#[test]
fn fdb_rules_change_actions_on_both_sides() {
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::Fdb).unwrap();
    let table = Table::new(&dmn, 1).unwrap();
    let m = Matcher::new(&table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
    let to = |vport: u16| {
        m.actions(&[Action::dest_vport(&dmn, vport).unwrap()])
            .unwrap()
    };
    let mut rule = m.insert(&five_tuple(3), &to(1)).unwrap();
    assert_eq!(rule.sides().count(), 2);
    let fate = |pipe: Side| {
        let v = five_tuple(3).to_raw().unwrap().param;
        let out = be
            .sim()
            .process(
                build_from_match(&v, Metadata::new(pipe)).unwrap(),
                Entry::Table(table.fw_id()),
            )
            .unwrap();
        out[0].fate.clone()
    };
    for pipe in [Side::Rx, Side::Tx] {
        assert_eq!(fate(pipe), Fate::Delivered(Terminal::Vport(1)));
    }
    rule.set_actions(&to(2)).unwrap();
    for pipe in [Side::Rx, Side::Tx] {
        assert_eq!(fate(pipe), Fate::Delivered(Terminal::Vport(2)), "{pipe:?}");
    }
}

#[test]
fn identical_duplicates_may_share_one_rule() {
    let rig = Rig::new(DeviceModel::ConnectX6Dx);
    let opts = MatcherOptions {
        duplicates: mlx5dr::Duplicates::ShareIdentical,
        ..MatcherOptions::default()
    };
    let m = Matcher::new(&rig.table, &five_tuple_mask(), opts).unwrap();
    let seven = m.actions(&[Action::flow_tag(7).unwrap()]).unwrap();
    let a = m.insert(&five_tuple(1), &seven).unwrap();
    // Another list with the same encoding shares too.
    let seven_again = m.actions(&[Action::flow_tag(7).unwrap()]).unwrap();
    let mut b = m.insert(&five_tuple(1), &seven_again).unwrap();
    // Different actions: still a duplicate.
    let eight = m.actions(&[Action::flow_tag(8).unwrap()]).unwrap();
    assert!(matches!(
        m.insert(&five_tuple(1), &eight),
        Err(InsertError::Insert {
            source: HtblError::Duplicate,
            ..
        })
    ));
    // A shared rule cannot change its actions alone.
    assert!(matches!(
        b.set_actions(&eight),
        Err(mlx5dr::UpdateError::Update {
            source: HtblError::Shared { .. },
            ..
        })
    ));
    assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(7)));
    drop(a);
    assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(7)));
    // Alone now, it can.
    b.set_actions(&eight).unwrap();
    assert_eq!(rig.classify(&five_tuple(1)), Ok(Some(8)));
    drop(b);
    assert_eq!(rig.classify(&five_tuple(1)), Ok(None));
    assert_eq!(m.stats().rules(), 0);
}

/// An error CQE on each WQE in turn of a two-sided FDB action change: the rule ends
/// with the old actions on both sides or the new ones on both, never mixed.
#[test]
fn a_failed_fdb_action_change_leaves_both_sides_alike() {
    use ::sim::queue::QueueState;
    use ste_builder::wqe::Syndrome;
    let mut failures = 0;
    for nth in 0.. {
        let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open(dev, DomainType::Fdb).unwrap();
        let table = Table::new(&dmn, 1).unwrap();
        let m = Matcher::new(&table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
        let to = |vport: u16| {
            m.actions(&[Action::dest_vport(&dmn, vport).unwrap()])
                .unwrap()
        };
        let mut rule = m.insert(&five_tuple(3), &to(1)).unwrap();
        let qpn = dmn.ring_at(m.ring_index()).qpn();
        be.sim()
            .with_queue(qpn, |q| {
                q.inject_error(nth, Syndrome::LocalProtection, 0x42)
            })
            .unwrap();
        let res = rule.set_actions(&to(2));
        let fired = match be.sim().with_queue(qpn, |q| q.state()) {
            Ok(state) => state != QueueState::Ready,
            Err(_) => true,
        };
        let fates: Vec<Fate> = [Side::Rx, Side::Tx]
            .into_iter()
            .map(|pipe| {
                let v = five_tuple(3).to_raw().unwrap().param;
                let pkt = build_from_match(&v, Metadata::new(pipe)).unwrap();
                let out = be.sim().process(pkt, Entry::Table(table.fw_id())).unwrap();
                out[0].fate.clone()
            })
            .collect();
        let want = |v: u16| vec![Fate::Delivered(Terminal::Vport(v)); 2];
        match res {
            Ok(()) => {
                assert_eq!(fates, want(2), "WQE {nth}");
                if !fired {
                    break;
                }
            }
            Err(e) => {
                assert!(fired, "WQE {nth}: {e}");
                failures += 1;
                assert_eq!(fates, want(1), "WQE {nth}: {e}");
            }
        }
        // The rule is still removable (the broken ring was replaced).
        drop(rule);
    }
    assert!(failures >= 2, "{failures}");
}

/// A device that offers definers (as a ConnectX-7 may) still gets matchers: the engine
/// keeps to the legacy lookups until it builds definer tables.
#[test]
fn devices_with_definers_get_legacy_lookups() {
    let mut p = ::sim::profile::Profile::new(DeviceModel::ConnectX7);
    p.match_definer_format_supported = u64::MAX;
    let be = Arc::new(SimBackend::with_profile(p).unwrap());
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::NicRx).unwrap();
    let table = Table::new(&dmn, 1).unwrap();
    let rig = Rig { be, dmn, table };
    let m = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::default()).unwrap();
    let tag = m.actions(&[Action::flow_tag(9).unwrap()]).unwrap();
    let _r = m.insert(&five_tuple(4), &tag).unwrap();
    assert_eq!(rig.classify(&five_tuple(4)), Ok(Some(9)));
    assert_eq!(rig.classify(&five_tuple(5)), Ok(None));
}
