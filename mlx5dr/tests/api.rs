//! The public API end to end on a simulated ConnectX: domain, tables, matchers by
//! priority, rules with actions, packets through the firmware table into ICM.

#![cfg(feature = "sim")]

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

fn five_tuple_mask() -> Match {
    Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::BROADCAST)
            .ipv4_dst(Ipv4Addr::BROADCAST)
            .ip_protocol(0xff)
            .tcp_sport(0xffff)
            .tcp_dport(0xffff)
    })
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
        let _ = &rig.dmn;
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
