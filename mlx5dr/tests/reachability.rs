//! Reachability during updates, through the public API on a simulated ConnectX: after
//! every WQE any of the domain's send rings executes, a probe packet for every live
//! rule (its insert returned, it is not being dropped) is sent into the table and must
//! leave with that rule's flow tag, and packets no rule matches must reach the default
//! untagged, while rules are inserted and deleted, the matcher's tables grow, and other
//! matchers are linked in before and after it and unlinked again.

#![cfg(feature = "sim")]

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, Weak};

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::profile::DeviceModel;
use ::sim::queue::{WqeEvent, WqeOutcome};
use ::sim::{Entry, Fate};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::{
    Action, Device, Domain, DomainType, Growth, Match, Matcher, MatcherOptions, Rule, Table,
};
use ste_builder::MatchParam;

use common::five_tuple_mask;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dmac_mask() -> Match {
    Match::new().outer(|h| h.dmac([0xff; 6]))
}

fn dst_mask() -> Match {
    Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::BROADCAST))
}

/// A 5-tuple value of the main matcher: random source and ports, destinations in
/// 192.168.0.0/16.
fn main_value(rng: &mut Rng) -> MatchParam {
    let (src, dst, ports) = (rng.next() as u32, rng.next() as u16, rng.next());
    raw(&Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::from(src))
            .ipv4_dst(Ipv4Addr::from(0xc0a8_0000 | u32::from(dst)))
            .ip_protocol(6)
            .tcp_sport(ports as u16)
            .tcp_dport((ports >> 16) as u16)
    }))
}

/// A destination MAC of the main MAC matcher (locally administered, never zero as the
/// other values' MACs are).
fn dmac_value(rng: &mut Rng) -> MatchParam {
    let b = rng.next().to_be_bytes();
    raw(&Match::new().outer(|h| h.dmac([0x02, b[1], b[2], b[3], b[4], b[5]])))
}

/// A destination-only value of the side matchers: 100.64.0.0/16.
fn side_value(i: u32) -> MatchParam {
    raw(&Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::from(0x6440_0000 | (i & 0xffff)))))
}

fn raw(m: &Match) -> MatchParam {
    m.to_raw().unwrap().param
}

/// Probes: the (value, flow tag) of every rule that must stay reachable.
type Probes = Arc<Mutex<Vec<(MatchParam, u32)>>>;

/// What the hooks found.
#[derive(Default)]
struct Findings {
    /// WQEs after which the probes ran.
    wqes: u64,
    /// Packets classified.
    packets: u64,
    /// What went wrong (the first few).
    failures: Vec<String>,
}

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

    /// The queue numbers of every send ring of the domain: matchers write on the ring
    /// they were given, table roots on ring 0, linking on the neighbour's ring.
    fn qpns(&self) -> Vec<u32> {
        (0..self.dmn.ring_count())
            .map(|i| self.dmn.ring_at(i).qpn())
            .collect()
    }

    /// Installs the probing hook on every ring's queue.
    fn probe_every_wqe(&self, probes: &Probes, misses: &[MatchParam]) -> Arc<Mutex<Findings>> {
        let findings: Arc<Mutex<Findings>> = Arc::default();
        for qpn in self.qpns() {
            let hook = probe_hook(
                Arc::downgrade(self.be.sim()),
                self.table.fw_id(),
                Arc::clone(probes),
                misses.to_vec(),
                Arc::clone(&findings),
            );
            self.be
                .sim()
                .with_queue(qpn, |q| q.set_wqe_hook(Some(hook)))
                .unwrap();
        }
        findings
    }

    fn stop_probing(&self) {
        for qpn in self.qpns() {
            self.be
                .sim()
                .with_queue(qpn, |q| q.set_wqe_hook(None))
                .unwrap();
        }
    }
}

/// Where a packet built from `value` ends when sent into firmware table `fw_table`:
/// its flow tag on the NIC RX default (drop), or what went wrong.
fn classify(dev: &::sim::Device, fw_table: u32, value: &MatchParam) -> Result<Option<u32>, String> {
    let pkt = build_from_match(value, Metadata::new(Side::Rx)).map_err(|e| e.to_string())?;
    let out = dev
        .process(pkt, Entry::Table(fw_table))
        .map_err(|e| e.to_string())?;
    match &out[..] {
        [d] if d.fate == Fate::Delivered(Terminal::Drop) => Ok(d.packet.meta.flow_tag),
        [d] => Err(format!("fate {:?} via {:#?}", d.fate, d.stages)),
        _ => Err(format!("{} copies: {out:#?}", out.len())),
    }
}

/// The hook: after each executed WQE, every probe must leave with its tag and every
/// miss value untagged.
fn probe_hook(
    dev: Weak<::sim::Device>,
    fw_table: u32,
    probes: Probes,
    misses: Vec<MatchParam>,
    findings: Arc<Mutex<Findings>>,
) -> Box<dyn FnMut(&WqeEvent) + Send> {
    Box::new(move |e: &WqeEvent| {
        let Some(dev) = dev.upgrade() else { return };
        if !matches!(e.outcome, WqeOutcome::Completed { .. }) {
            return;
        }
        let probes = probes.lock().unwrap();
        let mut f = findings.lock().unwrap();
        f.wqes += 1;
        let want = probes
            .iter()
            .map(|(v, tag)| (v, Some(*tag)))
            .chain(misses.iter().map(|v| (v, None)));
        for (value, tag) in want {
            f.packets += 1;
            let got = classify(&dev, fw_table, value);
            if got != Ok(tag) && f.failures.len() < 4 {
                f.failures
                    .push(format!("after {e:?}: want {tag:?}, got {got:?}"));
            }
        }
    })
}

/// A rule the test holds, with its probe.
struct Live {
    value: MatchParam,
    tag: u32,
    rule: Rule,
}

/// A matcher linked in and out around the main ones while they are updated.
struct SideMatcher {
    matcher: Arc<Matcher>,
    rules: Vec<Live>,
}

fn reachable_at_every_wqe(model: DeviceModel) {
    let rig = Rig::new(model);
    let mut rng = Rng(0x5eed ^ model as u64);
    let probes: Probes = Arc::default();
    // Destinations 198.51.100.0/24: no rule of the test matches them.
    let misses: Vec<MatchParam> = (0..3)
        .map(|i| {
            raw(&Match::new().outer(|h| {
                h.ipv4_src(Ipv4Addr::new(10, 0, 0, i))
                    .ipv4_dst(Ipv4Addr::new(198, 51, 100, i))
                    .ip_protocol(6)
                    .tcp_sport(1)
                    .tcp_dport(2)
            }))
        })
        .collect();
    let findings = rig.probe_every_wqe(&probes, &misses);

    // Two main matchers: a 5-tuple one (two lookups: its level-1 table grows, switched
    // through the level-0 STE) and a MAC one behind it (one lookup: its start table
    // grows twofold, switched through the anchor before it, which is another matcher's
    // end anchor or the table root as matchers come and go).
    let mains = [
        Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::priority(5)).unwrap(),
        // Growing twofold: more growths, and other old-to-new slot spans.
        Matcher::new(
            &rig.table,
            &dmac_mask(),
            MatcherOptions {
                growth: Growth::Double,
                ..MatcherOptions::priority(7)
            },
        )
        .unwrap(),
    ];
    let mut live: Vec<Live> = Vec::new();
    let mut side: Option<SideMatcher> = None;
    let mut side_tag = 0x1_0000;
    // Side matchers in turn: before the main ones, after them, between them, and at
    // their priorities (the newest of a priority comes first, so before them too).
    let side_priorities = [1, 9, 6, 5, 7, 1];
    let set_probes = |live: &[Live], side: &Option<SideMatcher>, skip: Option<u32>| {
        let rules = live.iter().chain(side.iter().flat_map(|s| s.rules.iter()));
        *probes.lock().unwrap() = rules
            .filter(|l| Some(l.tag) != skip)
            .map(|l| (l.value.clone(), l.tag))
            .collect();
    };

    for round in 0..120u32 {
        // Every 15 rounds a side matcher is linked in (with 3 rules), and 8 rounds later
        // its rules are dropped and it is unlinked.
        match (round % 15, side.is_some()) {
            (0, false) => {
                let prio = side_priorities[(round / 15) as usize % side_priorities.len()];
                let m = Matcher::new(&rig.table, &dst_mask(), MatcherOptions::priority(prio));
                side = Some(SideMatcher {
                    matcher: m.unwrap(),
                    rules: Vec::new(),
                });
            }
            (1..=3, true) => {
                side_tag += 1;
                let value = side_value(side_tag);
                let s = side.as_mut().unwrap();
                let acts = s.matcher.actions(&[Action::flow_tag(side_tag).unwrap()]);
                let rule = s.matcher.insert_raw(&value, &acts.unwrap()).unwrap();
                s.rules.push(Live {
                    value,
                    tag: side_tag,
                    rule,
                });
                set_probes(&live, &side, None);
            }
            (8..=10, true) => {
                let victim = side.as_ref().and_then(|s| s.rules.last()).map(|l| l.tag);
                set_probes(&live, &side, victim);
                // Dropping the rule removes it.
                side.as_mut().unwrap().rules.pop();
            }
            (11, true) => {
                let s = side.take().unwrap();
                assert!(s.rules.is_empty());
                Matcher::destroy(s.matcher).unwrap();
            }
            _ => {}
        }

        // The main matchers: an insert, or one in three rounds a deletion.
        if round % 3 == 2 {
            let k = rng.below(live.len() as u64) as usize;
            set_probes(&live, &side, Some(live[k].tag));
            let gone = live.swap_remove(k);
            if round % 2 == 0 {
                drop(gone.rule);
            } else {
                gone.rule.remove().unwrap();
            }
        } else {
            let which = rng.below(2) as usize;
            let value = match which {
                0 => main_value(&mut rng),
                _ => dmac_value(&mut rng),
            };
            let tag = round + 1;
            let m = &mains[which];
            let acts = m.actions(&[Action::flow_tag(tag).unwrap()]).unwrap();
            let rule = m.insert_raw(&value, &acts).unwrap();
            live.push(Live { value, tag, rule });
            set_probes(&live, &side, None);
        }
    }
    // A burst of rules into both main matchers, then removals down to two rules: their
    // tables shrink back, each switched as it grew.
    for k in 0..60u32 {
        let which = (k % 2) as usize;
        let value = match which {
            0 => main_value(&mut rng),
            _ => dmac_value(&mut rng),
        };
        let tag = 1000 + k;
        let m = &mains[which];
        let acts = m.actions(&[Action::flow_tag(tag).unwrap()]).unwrap();
        let rule = m.insert_raw(&value, &acts).unwrap();
        live.push(Live { value, tag, rule });
        set_probes(&live, &side, None);
    }
    let grown: Vec<u64> = mains
        .iter()
        .map(|m| m.stats().sides[0].1.table_entries)
        .collect();
    while live.len() > 2 {
        let k = rng.below(live.len() as u64) as usize;
        set_probes(&live, &side, Some(live[k].tag));
        live.swap_remove(k).rule.remove().unwrap();
    }
    rig.stop_probing();

    let f = findings.lock().unwrap();
    assert!(f.failures.is_empty(), "{model:?}: {:#?}", f.failures);
    assert!(
        f.wqes > 300 && f.packets > 5000,
        "{model:?}: {} {}",
        f.wqes,
        f.packets
    );
    let stats: Vec<_> = mains.iter().map(|m| m.stats().sides[0].1).collect();
    for (s, grown) in stats.iter().zip(grown) {
        assert!(s.grows >= 2 && s.shrinks >= 1, "{model:?}: {s:?}");
        assert!(
            s.table_entries < grown,
            "{model:?}: {s:?} after {grown} entries"
        );
        assert_eq!(s.grow_failures, 0);
    }
    assert_eq!(stats[0].rules + stats[1].rules, live.len() as u64);
    assert_eq!(rig.table.matcher_count(), 2);
    for l in &live {
        assert_eq!(
            classify(rig.be.sim(), rig.table.fw_id(), &l.value),
            Ok(Some(l.tag))
        );
    }
}

/// Inserts, deletions, growths (of a level-1 table and of a start table) and matchers
/// linked in and out before, between and after the two matchers updated:
/// no rule is ever unreachable, on v0, v1 and v2.
#[test]
fn every_live_rule_is_reachable_after_every_wqe() {
    for model in MODELS {
        reachable_at_every_wqe(model);
    }
}
