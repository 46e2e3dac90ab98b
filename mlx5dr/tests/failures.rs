//! Failures and leaks, through the public API on a simulated ConnectX.
//!
//! - No leaks: after a whole scenario (domains, tables, matchers, rules, counters,
//!   TIRs) is dropped, the pools hold no chunk, the device no object, and once the
//!   pools are trimmed and the domains gone, the device's ICM is back to where it
//!   started.
//! - Errors: a mask no lookup can match, ICM exhausted (before and in the middle of
//!   a matcher creation, of a sharded one's later shards, or a rule insert, and on the
//!   second side of an FDB insert), an
//!   error CQE on each WQE in turn of an insert, a matcher creation and a removal, a
//!   value outside the mask, a duplicate, actions made for another table. Each fails
//!   with its typed error, and leaves every packet's way through ICM (hop by hop) and
//!   the matchers' statistics and ICM in use as they were before the call; an error
//!   CQE that comes after the linking write landed leaves the change made.
//!
//! An error CQE puts a send queue in the error state for good; the domain replaces the
//! broken ring with a fresh queue the next time the ring is taken, which is what lets
//! a two-sided FDB insert or link roll its first side back. Each injected error still
//! gets a fresh device, so the cases stay independent.

#![cfg(feature = "sim")]

mod common;
#[path = "common/sim_table.rs"]
mod sim_table;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::profile::{DeviceModel, Profile};
use ::sim::queue::QueueState;
use ::sim::{Entry, Fate, Stage};
use mlx5dr::action::{Tir, TirSpec};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::htbl::{HtblError, HtblStats};
use mlx5dr::icm::{Chunk, IcmError};
use mlx5dr::matching::{ChainError, MaskBits, RuleError};
use mlx5dr::{
    Action, ActionList, Counter, Device, Domain, DomainConfig, DomainSide, DomainType, InsertError,
    Match, Matcher, MatcherError, MatcherOptions, Rule, RuleRemoveError, SendError, ShardPlacement,
    Table, TableError,
};
use ste_builder::wqe::{RdmaOp, Syndrome};
use ste_builder::MatchParam;

use common::five_tuple_mask;
use sim_table::SimTable;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

/// The vport FDB rules of these tests forward to (the e-switch manager, where FDB
/// misses go, is another).
const VPORT: u16 = 4;

// --- the rig -------------------------------------------------------------------------

/// Where one packet went: its end, its flow tag and every STE it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walk {
    fate: Fate,
    tag: Option<u32>,
    hops: Vec<u64>,
}

/// What a failed call must leave as it was: the matchers' statistics (host bytes aside,
/// as vectors keep their capacity, and the count of growths given up, which counts
/// attempts), the pool's live chunks, the device's objects and the table's matcher
/// count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InUse {
    matchers: Vec<Vec<(DomainSide, HtblStats)>>,
    /// The matchers' routes (matchers placed by thread).
    routes: Vec<usize>,
    chunks: u64,
    chunk_bytes: u64,
    objects: usize,
    matcher_count: usize,
}

/// The shared rig, on a device of any model or profile; this file adds its checks.
type Rig = SimTable;

impl SimTable {
    fn of_model(model: DeviceModel, ty: DomainType) -> Rig {
        Rig::with_profile(Profile::new(model), ty)
    }

    fn with_profile(profile: Profile, ty: DomainType) -> Rig {
        let be = SimBackend::with_profile(profile).unwrap();
        SimTable::open(be, ty, DomainConfig::default())
    }

    /// A device with the least steering ICM SW steering accepts (64 MiB).
    fn small_icm(model: DeviceModel, ty: DomainType) -> Rig {
        let mut p = Profile::new(model);
        p.log_steering_sw_icm_size = 26;
        Rig::with_profile(p, ty)
    }

    fn sides(&self) -> &'static [DomainSide] {
        self.dmn.sides()
    }

    /// The walk of a packet built from `value` on `side`, sent into the table.
    fn walk(&self, side: DomainSide, value: &MatchParam) -> Walk {
        let pipe = if matches!(side, DomainSide::NicRx | DomainSide::FdbRx) {
            Side::Rx
        } else {
            Side::Tx
        };
        let d = self.deliver(value, pipe);
        let hops = d
            .stages
            .iter()
            .flat_map(|s| match s {
                Stage::Software { verdict, .. } => verdict.trace.iter().map(|h| h.addr).collect(),
                _ => Vec::new(),
            })
            .collect();
        Walk {
            fate: d.fate.clone(),
            tag: d.packet.meta.flow_tag,
            hops,
        }
    }

    /// The walks of `values` on every side.
    fn walks(&self, values: &[MatchParam]) -> Vec<Walk> {
        values
            .iter()
            .flat_map(|v| self.sides().iter().map(move |s| (s, v)))
            .map(|(s, v)| self.walk(*s, v))
            .collect()
    }

    /// Whether the packet of `value` on `side` hits the rule with `tag` (NIC RX: its
    /// flow tag; FDB: the test's vport).
    fn hits(&self, side: DomainSide, value: &MatchParam, tag: u32) -> bool {
        let w = self.walk(side, value);
        match side {
            DomainSide::NicRx => w.fate == Fate::Delivered(Terminal::Drop) && w.tag == Some(tag),
            _ => w.fate == Fate::Delivered(Terminal::Vport(VPORT)),
        }
    }

    /// Whether the packet of `value` on `side` reaches the side's default untouched.
    fn misses(&self, side: DomainSide, value: &MatchParam) -> bool {
        let w = self.walk(side, value);
        let default = match side {
            DomainSide::NicRx => Terminal::Drop,
            DomainSide::NicTx => Terminal::Allow,
            _ => Terminal::Vport(self.be.sim().profile().esw_manager_vport),
        };
        w.fate == Fate::Delivered(default) && w.tag.is_none()
    }

    /// The actions of the rule with `tag`: the flow tag on NIC RX, the test's vport on
    /// FDB.
    fn actions(&self, m: &Matcher, tag: u32) -> Arc<ActionList> {
        let action = match self.dmn.domain_type() {
            DomainType::Fdb => Action::dest_vport(&self.dmn, VPORT).unwrap(),
            _ => Action::flow_tag(tag).unwrap(),
        };
        m.actions(&[action]).unwrap()
    }

    fn in_use(&self, matchers: &[&Arc<Matcher>]) -> InUse {
        let pool = self.dmn.ste_pool().stats();
        InUse {
            matchers: matchers
                .iter()
                .map(|m| {
                    m.stats()
                        .sides
                        .into_iter()
                        .map(|(side, s)| {
                            let s = HtblStats {
                                host_bytes: 0,
                                grow_failures: 0,
                                ..s
                            };
                            (side, s)
                        })
                        .collect()
                })
                .collect(),
            routes: matchers.iter().map(|m| m.stats().routes).collect(),
            chunks: pool.chunks,
            chunk_bytes: pool.chunk_bytes,
            objects: self.be.live_objects(),
            matcher_count: self.table.matcher_count(),
        }
    }

    /// Writes each of the domain's send rings has taken so far.
    fn ring_writes(&self) -> Vec<u64> {
        (0..self.dmn.ring_count())
            .map(|r| self.dmn.ring_at(r).stats().writes)
            .collect()
    }

    /// The ring that took the most writes since `before` ([`Rig::ring_writes`]): the
    /// one a shard placed by thread uses for this thread's rules.
    fn busiest_since(&self, before: &[u64]) -> usize {
        let now = self.ring_writes();
        (0..now.len()).max_by_key(|&r| now[r] - before[r]).unwrap()
    }

    fn qpn(&self, ring: usize) -> u32 {
        self.dmn.ring_at(ring).qpn()
    }

    /// Makes the `nth` WQE ring `ring` executes from now on fail with an error CQE;
    /// returns the ring's queue.
    fn inject_error(&self, ring: usize, nth: u64) -> u32 {
        let qpn = self.qpn(ring);
        self.be
            .sim()
            .with_queue(qpn, |q| {
                q.inject_error(nth, Syndrome::LocalProtection, 0x42)
            })
            .unwrap();
        qpn
    }

    /// Whether the error injected on queue `qpn` fired: the queue is in the error
    /// state, or the domain has replaced the broken ring (the queue is gone).
    fn fired(&self, qpn: u32) -> bool {
        match self.be.sim().with_queue(qpn, |q| q.state()) {
            Ok(state) => state != QueueState::Ready,
            Err(_) => true,
        }
    }

    /// Every chunk the STE pool can still hand out (the device's ICM included), the
    /// largest first: the last ones are single entries.
    fn hog_icm(&self) -> Vec<Chunk> {
        let pool = self.dmn.ste_pool();
        let mut hog = Vec::new();
        for log in (0..=pool.config().max_log_chunk).rev() {
            loop {
                match pool.alloc(log) {
                    Ok(c) => hog.push(c),
                    Err(IcmError::Exhausted { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert_eq!(hog.last().map(Chunk::log_entries), Some(0));
        hog
    }
}

fn five_tuple(i: u32) -> MatchParam {
    Match::new()
        .outer(|h| {
            h.ipv4_src(Ipv4Addr::from(0x0a00_0000 + i))
                .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
                .ip_protocol(6)
                .tcp_sport(1000 + (i as u16 % 5000))
                .tcp_dport(80)
        })
        .to_raw()
        .unwrap()
        .param
}

/// The outer destination and UDP port, the VNI and the inner destination: four lookups
/// on every format (outer L2, outer L3/L4, tunnel, inner L3), so a rule with a new outer
/// destination needs two new one-entry tables (for the VNI and the inner destination).
fn vxlan_mask() -> Match {
    Match::new()
        .outer(|h| {
            h.ipv4_dst(Ipv4Addr::BROADCAST)
                .ip_protocol(0xff)
                .udp_dport(0xffff)
        })
        .tunnel(|t| t.vxlan_vni(0xff_ffff))
        .inner(|h| h.ipv4_dst(Ipv4Addr::BROADCAST))
}

/// VXLAN to outer destination 192.0.2.`outer`.
fn vxlan(outer: u8, vni: u32, dst: u32) -> MatchParam {
    Match::new()
        .outer(|h| {
            h.ipv4_dst(Ipv4Addr::new(192, 0, 2, outer))
                .ip_protocol(17)
                .udp_dport(4789)
        })
        .tunnel(|t| t.vxlan_vni(vni))
        .inner(|h| h.ipv4_dst(Ipv4Addr::from(dst)))
        .to_raw()
        .unwrap()
        .param
}

/// A rule the test holds.
struct Live {
    value: MatchParam,
    tag: u32,
    rule: Rule,
}

fn insert(rig: &Rig, m: &Arc<Matcher>, value: MatchParam, tag: u32) -> Live {
    let rule = m.insert_raw(&value, &rig.actions(m, tag)).unwrap();
    Live { value, tag, rule }
}

/// The matcher options of a failure test: the defaults, or (`by_thread`) two shards
/// placed by thread, whose routes a failed call must leave as they were too.
fn options(by_thread: bool) -> MatcherOptions {
    if !by_thread {
        return MatcherOptions::default();
    }
    MatcherOptions {
        shards: 2,
        placement: ShardPlacement::Thread,
        ..MatcherOptions::default()
    }
}

fn assert_all_hit(rig: &Rig, live: &[Live], what: &str) {
    for l in live {
        for side in l.rule.sides() {
            assert!(rig.hits(side, &l.value, l.tag), "{what}: rule {}", l.tag);
        }
    }
}

// --- leaks ---------------------------------------------------------------------------

/// A whole scenario on NIC RX and FDB domains of one device, then everything dropped
/// (the user's handles first: the rules hold what they need and go last): no chunk in
/// the pools, no object on the device; trimmed pools give every region back, and with
/// the domains gone the device's ICM and queues are as before the first domain.
#[test]
fn nothing_leaks_after_everything_is_dropped() {
    for model in MODELS {
        let be = Arc::new(SimBackend::of_model(model));
        let icm_start = be.sim().icm().usage();
        let objects_start = be.live_objects();
        let dev: Arc<dyn Device> = be.clone();
        let rx = Domain::open(Arc::clone(&dev), DomainType::NicRx).unwrap();
        let fdb = Domain::open(dev, DomainType::Fdb).unwrap();
        let qpns: Vec<u32> = [&rx, &fdb]
            .iter()
            .flat_map(|d| (0..d.ring_count()).map(|i| d.ring_at(i).qpn()))
            .collect();

        // NIC RX: t1 (5-tuple rules counted and sent to t2, or tagged to a TIR; VXLAN
        // rules tagged), t2 (a MAC rule, tagged).
        let t1 = Table::new(&rx, 1).unwrap();
        let t2 = Table::new(&rx, 2).unwrap();
        let counter = Counter::alloc(&rx, 4).unwrap();
        let tir = Tir::create(&rx, TirSpec::default()).unwrap();
        let m1 = Matcher::new(&t1, &five_tuple_mask(), MatcherOptions::priority(1)).unwrap();
        let m1b = Matcher::new(&t1, &vxlan_mask(), MatcherOptions::priority(2)).unwrap();
        let mac_mask = Match::new().outer(|h| h.dmac([0xff; 6]));
        let m2 = Matcher::new(&t2, &mac_mask, Default::default()).unwrap();
        let to_t2 = m1
            .actions(&[
                Action::counter(&counter, 3).unwrap(),
                Action::goto_table(&t2),
            ])
            .unwrap();
        let to_tir = m1
            .actions(&[
                Action::flow_tag(9).unwrap(),
                Action::dest_tir(&tir).unwrap(),
            ])
            .unwrap();
        let mut rules = Vec::new();
        for i in 0..300 {
            let acts = if i % 2 == 0 { &to_t2 } else { &to_tir };
            rules.push(m1.insert_raw(&five_tuple(i), acts).unwrap());
        }
        for i in 0..40 {
            let acts = m1b.actions(&[Action::flow_tag(i).unwrap()]).unwrap();
            rules.push(m1b.insert_raw(&vxlan(1, i, 0x0a00_0001), &acts).unwrap());
        }
        let tag = m2.actions(&[Action::flow_tag(42).unwrap()]).unwrap();
        let mac = [0x02, 0, 0, 0, 0, 1];
        rules.push(
            m2.insert(&Match::new().outer(|h| h.dmac(mac)), &tag)
                .unwrap(),
        );
        assert!(m1.stats().sides[0].1.grows >= 2);
        // Packets go where the rules say.
        let send = |t: &Table, v: &MatchParam| {
            let pkt = build_from_match(v, Metadata::new(Side::Rx)).unwrap();
            let out = be.sim().process(pkt, Entry::Table(t.fw_id())).unwrap();
            (out[0].fate.clone(), out[0].packet.meta.flow_tag)
        };
        let with_mac = Match::new()
            .outer(|h| {
                h.ipv4_src(Ipv4Addr::from(0x0a00_0000))
                    .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
                    .ip_protocol(6)
                    .tcp_sport(1000)
                    .tcp_dport(80)
                    .dmac(mac)
            })
            .to_raw()
            .unwrap()
            .param;
        assert_eq!(
            send(&t1, &with_mac),
            (Fate::Delivered(Terminal::Drop), Some(42))
        );
        assert_eq!(
            send(&t1, &five_tuple(1)),
            (Fate::Delivered(Terminal::Tir(tir.tirn())), Some(9))
        );
        assert_eq!(counter.query(3).unwrap().packets, 1);
        // Half the rules go early.
        let mut k = 0;
        rules.retain(|_| {
            k += 1;
            k % 2 == 0
        });

        // FDB: one table, rules on both sides to a vport.
        let tf = Table::new(&fdb, 1).unwrap();
        let mf = Matcher::new(&tf, &five_tuple_mask(), Default::default()).unwrap();
        let to_vport = mf
            .actions(&[Action::dest_vport(&fdb, VPORT).unwrap()])
            .unwrap();
        for i in 0..100 {
            rules.push(mf.insert_raw(&five_tuple(i), &to_vport).unwrap());
        }
        for pipe in [Side::Rx, Side::Tx] {
            let pkt = build_from_match(&five_tuple(7), Metadata::new(pipe)).unwrap();
            let out = be.sim().process(pkt, Entry::Table(tf.fw_id())).unwrap();
            assert_eq!(out[0].fate, Fate::Delivered(Terminal::Vport(VPORT)));
        }
        assert!(be.live_objects() > objects_start);
        assert!(be.sim().icm().usage().bytes > icm_start.bytes);

        // The user's handles go first: tables, matchers, lists, counter and TIR live
        // on in the rules that use them.
        drop((t1, t2, tf, counter, tir));
        drop((m1, m1b, m2, mf, to_t2, to_tir, tag, to_vport));
        assert!(be.live_objects() > objects_start);
        drop(rules);

        for d in [&rx, &fdb] {
            let s = d.ste_pool().stats();
            assert_eq!(
                (s.chunks, s.chunk_bytes, s.slab_bytes),
                (0, 0, 0),
                "{model:?} {s:?}"
            );
            assert_eq!(s.release_failures, 0);
            assert_eq!(d.action_pool().stats().chunks, 0);
        }
        assert_eq!(be.live_objects(), objects_start, "{model:?}");
        for d in [&rx, &fdb] {
            d.ste_pool().trim().unwrap();
            d.action_pool().trim().unwrap();
            assert_eq!(d.ste_pool().stats().regions, 0);
        }
        assert_eq!(be.sim().icm().usage(), icm_start, "{model:?}");
        drop((rx, fdb));
        assert_eq!(be.sim().icm().usage(), icm_start, "{model:?}");
        assert_eq!(be.live_objects(), objects_start);
        for qpn in qpns {
            assert!(be.sim().with_queue(qpn, |_| ()).is_err(), "queue {qpn:#x}");
        }
    }
}

// --- matcher creation ------------------------------------------------------------------

/// Masks no lookup can match, and masks that are not valid, are refused with errors
/// naming the field, before anything is written.
#[test]
fn unmatchable_masks_are_refused_naming_the_field() {
    for model in MODELS {
        let rig = Rig::of_model(model, DomainType::NicRx);
        let m = Matcher::new(&rig.table, &five_tuple_mask(), Default::default()).unwrap();
        let live: Vec<Live> = (0..5)
            .map(|i| insert(&rig, &m, five_tuple(i), i + 1))
            .collect();
        let values: Vec<MatchParam> = (0..6).map(five_tuple).collect();
        let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
        let sends = rig.dmn.send_stats();

        for (mask, field) in [
            // No lookup of DR carries the ESP SPI.
            (Match::new().outer(|h| h.esp_spi(1)), "misc.outer_esp_spi"),
            // L3 fields need the IP version.
            (
                Match::new().outer(|h| h.ip_protocol(0xff)),
                "outer.ip_protocol",
            ),
        ] {
            match Matcher::new(&rig.table, &mask, Default::default()) {
                Err(MatcherError::Chain {
                    side: DomainSide::NicRx,
                    source:
                        ChainError::Unmatchable {
                            bits: MaskBits::Field(f),
                            ..
                        },
                }) => assert_eq!(f.to_string(), field),
                other => panic!("{model:?}: {other:?}"),
            }
        }
        // A value too wide for its field.
        let wide = Match::new().field("outer.tcp_dport", 0x1_0000);
        assert!(matches!(
            Matcher::new(&rig.table, &wide, Default::default()),
            Err(MatcherError::Mask(_))
        ));
        assert_eq!(rig.dmn.send_stats(), sends, "nothing was written");
        assert_eq!((rig.walks(&values), rig.in_use(&[&m])), (walks, in_use));
        assert_all_hit(&rig, &live, "after refused masks");
    }
}

/// ICM exhausted when a matcher is made: before its first table (nothing free) and
/// between its tables (one entry free), in one shard and, for a sharded matcher, in each
/// of its shards after the first ones are linked: a typed error, and nothing changed.
#[test]
fn matcher_creation_out_of_icm_changes_nothing() {
    for model in MODELS {
        // The failures one shard goes through: a sharded matcher's first shard goes
        // through the same, so any more fail after it was linked.
        let mut one_shard = 0;
        for shards in [1u8, 3] {
            let rig = Rig::small_icm(model, DomainType::NicRx);
            let m = Matcher::new(&rig.table, &five_tuple_mask(), Default::default()).unwrap();
            let live: Vec<Live> = (0..20)
                .map(|i| insert(&rig, &m, five_tuple(i), i + 1))
                .collect();
            let values: Vec<MatchParam> = (0..21).map(five_tuple).collect();
            let mut hog = rig.hog_icm();
            let mut failures = 0;
            let opts = MatcherOptions {
                priority: 9,
                shards,
                ..MatcherOptions::default()
            };
            let made = loop {
                let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
                match Matcher::new(&rig.table, &vxlan_mask(), opts) {
                    Ok(made) => break made,
                    Err(MatcherError::Tables {
                        side: DomainSide::NicRx,
                        source: HtblError::Icm(IcmError::Exhausted { .. }),
                    }) => {
                        failures += 1;
                        assert_eq!(rig.walks(&values), walks, "{model:?}, {shards} shards");
                        assert_eq!(rig.in_use(&[&m]), in_use, "{model:?}, {shards} shards");
                        assert_eq!(rig.table.matcher_count(), 1);
                        // One more entry free for the next try.
                        rig.dmn.ste_pool().free(hog.pop().unwrap()).unwrap();
                    }
                    Err(e) => panic!("{model:?}: {e}"),
                }
            };
            // A matcher needs a start table and an end anchor: with nothing free it fails
            // at the first, with one entry free at the second.
            if shards == 1 {
                assert!(failures >= 2, "{model:?}: {failures}");
                one_shard = failures;
            } else {
                assert!(
                    failures > one_shard,
                    "{model:?}, {shards} shards: {failures}"
                );
            }
            assert_eq!(rig.table.matcher_count(), 2);
            assert_all_hit(&rig, &live, "after the matcher was made");
            drop(made);
            for c in hog {
                rig.dmn.ste_pool().free(c).unwrap();
            }
        }
    }
}

/// How an error CQE on one WQE of a matcher creation ended.
enum Creation {
    /// The error did not fire: the creation used fewer WQEs on that ring.
    Clean,
    /// The creation failed and changed nothing.
    Failed,
    /// The error came after the linking write landed: the matcher was made.
    Made,
    /// The creation failed after the root anchor's WRITE had landed (the READ fencing
    /// it failed): the half state `an_error_cqe_on_the_root_rewrite_read_keeps_the_matcher`
    /// rules out.
    RootReadFailed,
}

/// Makes a matcher at `priority` with an error CQE on the `nth` WQE of ring `ring`, in
/// a table whose one matcher (priority 5, ring 1) holds 8 rules (a matcher of another
/// table took ring 0, which also writes table roots; the new one gets ring 2).
fn make_matcher_with_error(
    model: DeviceModel,
    ty: DomainType,
    priority: u32,
    ring: usize,
    nth: u64,
) -> Creation {
    let rig = Rig::of_model(model, ty);
    let other = Table::new(&rig.dmn, 2).unwrap();
    let _first = Matcher::new(&other, &five_tuple_mask(), Default::default()).unwrap();
    let m = Matcher::new(&rig.table, &five_tuple_mask(), MatcherOptions::priority(5)).unwrap();
    assert_eq!(m.ring_index(), 1);
    let live: Vec<Live> = (0..8)
        .map(|i| insert(&rig, &m, five_tuple(i), i + 1))
        .collect();
    let values: Vec<MatchParam> = (0..9).map(five_tuple).collect();
    let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
    let qpn = rig.inject_error(ring, nth);
    let res = Matcher::new(
        &rig.table,
        &vxlan_mask(),
        MatcherOptions::priority(priority),
    );
    let fired = rig.fired(qpn);
    let what = format!("{model:?} {ty} priority {priority} ring {ring} WQE {nth}");
    match res {
        Err(e) => {
            assert!(fired, "{what}: {e}");
            match &e {
                MatcherError::Root {
                    source:
                        TableError::Send(SendError::WqeFailed {
                            op: RdmaOp::Read, ..
                        }),
                    ..
                } => {
                    return Creation::RootReadFailed;
                }
                MatcherError::Root {
                    source: TableError::Send(SendError::WqeFailed { .. }),
                    ..
                }
                | MatcherError::Tables {
                    source: HtblError::Send(SendError::WqeFailed { .. }),
                    ..
                }
                | MatcherError::Link {
                    source: HtblError::Send(SendError::WqeFailed { .. }),
                    ..
                } => {}
                other => panic!("{what}: {other:?}"),
            }
            assert_eq!(rig.walks(&values), walks, "{what}: {e}");
            assert_eq!(rig.in_use(&[&m]), in_use, "{what}: {e}");
            Creation::Failed
        }
        Ok(made) => {
            assert_eq!(rig.table.matcher_count(), 2, "{what}");
            assert_all_hit(&rig, &live, &what);
            drop(made);
            if fired {
                Creation::Made
            } else {
                Creation::Clean
            }
        }
    }
}

/// An error CQE on each WQE in turn of a matcher creation: on the new matcher's ring,
/// which writes its tables, and on the ring that links it (ring 0 for the table root
/// when it goes first, the previous matcher's ring for its end anchor when it goes
/// last). Until the linking write has landed the creation fails with a typed error and
/// no packet's way changes; after it, the matcher is made. On FDB, errors on the new
/// matcher's own ring (the linking rings are the test below).
#[test]
fn error_cqe_while_making_a_matcher_changes_nothing() {
    for model in MODELS {
        matcher_errors(model, DomainType::NicRx, &[(1, 2), (1, 0), (9, 2), (9, 1)]);
        matcher_errors(model, DomainType::Fdb, &[(1, 2), (9, 2)]);
    }
}

/// FDB matchers link RX then TX on the same ring: an error CQE on the TX side's
/// linking write must leave the RX side unlinked again.
#[test]
fn error_cqe_while_linking_an_fdb_matcher_changes_nothing() {
    for model in MODELS {
        matcher_errors(model, DomainType::Fdb, &[(1, 0), (9, 1)]);
    }
}

/// Runs `make_matcher_with_error` on every WQE of each (priority, ring) of `cases`.
fn matcher_errors(model: DeviceModel, ty: DomainType, cases: &[(u32, usize)]) {
    for &(priority, ring) in cases {
        let mut failures = 0;
        for nth in 0.. {
            match make_matcher_with_error(model, ty, priority, ring, nth) {
                Creation::Clean => break,
                Creation::Failed => failures += 1,
                Creation::Made => {}
                Creation::RootReadFailed => {
                    panic!("{model:?} {ty} priority {priority} ring {ring} WQE {nth}: the root's READ failed and the matcher was given up")
                }
            }
        }
        assert!(
            failures > 0,
            "{model:?} {ty} priority {priority} ring {ring}"
        );
    }
}

/// The root anchor's WRITE lands and the READ fencing it fails: the WRITE executed, so
/// the root leads into the new matcher, and `Matcher::new` must keep it (report
/// success) rather than free tables packets already walk through. No error on the
/// root-writing ring may end in that half state; at least one of them lands after the
/// root's WRITE and yields a made matcher.
#[test]
fn an_error_cqe_on_the_root_rewrite_read_keeps_the_matcher() {
    for model in MODELS {
        let mut made_despite_error = false;
        for nth in 0.. {
            match make_matcher_with_error(model, DomainType::NicRx, 1, 0, nth) {
                Creation::Clean => break,
                Creation::RootReadFailed => panic!(
                    "{model:?} WQE {nth}: the root's READ failed and the matcher was given up"
                ),
                Creation::Made => made_despite_error = true,
                Creation::Failed => {}
            }
        }
        assert!(
            made_despite_error,
            "{model:?}: no error landed after the root's WRITE"
        );
    }
}

// --- rule inserts ----------------------------------------------------------------------

/// Values the matcher cannot take, duplicates and action lists of another table are
/// refused with typed errors before anything is written.
#[test]
fn refused_rules_change_nothing() {
    for model in MODELS {
        let rig = Rig::of_model(model, DomainType::NicRx);
        let dst_port = Match::new().outer(|h| {
            h.ipv4_dst(Ipv4Addr::BROADCAST)
                .ip_protocol(0xff)
                .tcp_dport(0xffff)
        });
        let m = Matcher::new(&rig.table, &dst_port, Default::default()).unwrap();
        let value = |i: u32| {
            Match::new().outer(|h| {
                h.ipv4_dst(Ipv4Addr::from(0xc0a8_0000 + i))
                    .ip_protocol(6)
                    .tcp_dport(80)
            })
        };
        let raw = |i: u32| value(i).to_raw().unwrap().param;
        let live: Vec<Live> = (0..5).map(|i| insert(&rig, &m, raw(i), i + 1)).collect();
        let values: Vec<MatchParam> = (0..6).map(raw).collect();
        // Matchers of a table of another level, and of another domain's table.
        let t2 = Table::new(&rig.dmn, 2).unwrap();
        let m2 = Matcher::new(&t2, &dst_port, Default::default()).unwrap();
        let dev: Arc<dyn Device> = rig.be.clone();
        let other_dmn = Domain::open(dev, DomainType::NicRx).unwrap();
        let other_table = Table::new(&other_dmn, 1).unwrap();
        let m3 = Matcher::new(&other_table, &dst_port, Default::default()).unwrap();
        let acts = rig.actions(&m, 77);
        let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
        let sends = rig.dmn.send_stats();

        // A bit outside the mask: the source port.
        let outside = value(5).outer(|h| h.tcp_sport(1));
        match m.insert(&outside, &acts) {
            Err(InsertError::Refused {
                side: DomainSide::NicRx,
                source: RuleError::OutsideMask(e),
            }) => assert_eq!(e.field.to_string(), "outer.tcp_sport"),
            other => panic!("{model:?}: {other:?}"),
        }
        // An invalid typed value.
        let wide = value(5).field("outer.tcp_dport", 0x1_0000);
        assert!(matches!(m.insert(&wide, &acts), Err(InsertError::Value(_))));
        // A duplicate of an installed rule.
        match m.insert(&value(3), &acts) {
            Err(InsertError::Insert {
                side: DomainSide::NicRx,
                source: HtblError::Duplicate,
            }) => {}
            other => panic!("{model:?}: {other:?}"),
        }
        // Actions checked for a table of another level, and of another domain.
        for foreign in [rig.actions(&m2, 5), rig.actions(&m3, 5)] {
            match m.insert(&value(5), &foreign) {
                Err(InsertError::ActionsForOtherTable { level: 1 }) => {}
                other => panic!("{model:?}: {other:?}"),
            }
        }
        assert_eq!(rig.dmn.send_stats(), sends, "nothing was written");
        assert_eq!((rig.walks(&values), rig.in_use(&[&m])), (walks, in_use));
        assert_all_hit(&rig, &live, "after refusals");
        assert!(rig.misses(DomainSide::NicRx, &values[5]));
    }
}

/// ICM runs out for an insert: with nothing free, then with one, two, ... entries free
/// again (so the insert gets some of its tables and not all, and on FDB its RX side in
/// and not its TX side): each failure is typed and changes nothing, until the rule
/// fits.
#[test]
fn insert_out_of_icm_changes_nothing() {
    for model in MODELS {
        for ty in [DomainType::NicRx, DomainType::Fdb] {
            for by_thread in [false, true] {
                insert_out_of_icm(model, ty, by_thread);
            }
        }
    }
}

fn insert_out_of_icm(model: DeviceModel, ty: DomainType, by_thread: bool) {
    let rig = Rig::small_icm(model, ty);
    let m = Matcher::new(&rig.table, &vxlan_mask(), options(by_thread)).unwrap();
    let live: Vec<Live> = (0..30)
        .map(|i| insert(&rig, &m, vxlan(1, i + 1, 0x0a00_0001 + i), i + 1))
        .collect();
    // A rule with a new outer destination: two new one-entry tables per side.
    let failed = vxlan(2, 1000, 0x0b00_0001);
    let values: Vec<MatchParam> = live
        .iter()
        .map(|l| l.value.clone())
        .chain([failed.clone()])
        .collect();
    // Nothing left, then one entry more per try.
    let mut hog = rig.hog_icm();
    let mut tries = 0;
    let mut failed_sides = Vec::new();
    let rule = loop {
        let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
        match m.insert_raw(&failed, &rig.actions(&m, 0xfff)) {
            Ok(rule) => break rule,
            Err(InsertError::Insert {
                side,
                source: HtblError::Icm(IcmError::Exhausted { .. }),
            }) => {
                failed_sides.push(side);
                assert_eq!(rig.walks(&values), walks, "{model:?} {ty} try {tries}");
                assert_eq!(rig.in_use(&[&m]), in_use, "{model:?} {ty} try {tries}");
            }
            Err(e) => panic!("{model:?} {ty} try {tries}: {e}"),
        }
        tries += 1;
        let c = hog.pop().expect("room at last");
        rig.dmn.ste_pool().free(c).unwrap();
    };
    // The rule needs two new one-entry tables on every side: it failed with none free,
    // with one (in the middle of the side), and on FDB with its RX side in and its TX
    // side short (the RX side rolled back).
    assert!(tries > rig.sides().len(), "{model:?} {ty}: {tries}");
    assert_eq!(
        failed_sides.last(),
        rig.sides().last(),
        "{model:?} {ty}: {failed_sides:?}"
    );
    for &side in rig.sides() {
        assert!(rig.hits(side, &failed, 0xfff));
    }
    assert_all_hit(&rig, &live, "after the ICM came back");
    if by_thread {
        assert_eq!(m.stats().routes, 31 * rig.sides().len());
    }
    drop((rule, live));
    assert_eq!(m.stats().routes, 0);
    for c in hog {
        rig.dmn.ste_pool().free(c).unwrap();
    }
}

/// An error CQE on each WQE in turn of an insert into matchers holding 0 to 17 rules
/// (fresh tables, collisions, growths): until the linking write has landed the insert
/// fails with a typed error and no packet's way, no statistic and no ICM in use
/// changes; once it has, the rule is in.
#[test]
fn error_cqe_on_each_wqe_of_an_insert_changes_nothing() {
    for model in MODELS {
        let mut grew = false;
        for prefill in [0, 1, 3, 4, 5, 15, 16, 17] {
            grew |= error_cqe_on_insert(model, DomainType::NicRx, prefill);
        }
        assert!(grew, "{model:?}: no insert grew a table");
    }
}

/// The same on FDB, where a rule goes into two sides one after the other: an error
/// CQE on the second side's WQEs must leave the first side rolled back.
#[test]
fn error_cqe_on_each_wqe_of_an_fdb_insert_changes_nothing() {
    for model in MODELS {
        for prefill in [0, 4, 16] {
            error_cqe_on_insert(model, DomainType::Fdb, prefill);
        }
    }
}

/// Returns whether the insert grew a table.
fn error_cqe_on_insert(model: DeviceModel, ty: DomainType, prefill: u32) -> bool {
    let mut failures = 0;
    for nth in 0.. {
        let rig = Rig::of_model(model, ty);
        let m = Matcher::new(&rig.table, &five_tuple_mask(), Default::default()).unwrap();
        let ring = m.ring_index();
        let live: Vec<Live> = (0..prefill)
            .map(|i| insert(&rig, &m, five_tuple(i), i + 1))
            .collect();
        let values: Vec<MatchParam> = (0..=prefill).map(five_tuple).collect();
        let new = five_tuple(prefill);
        let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
        let grows = m.stats().sides[0].1.grows;
        let qpn = rig.inject_error(ring, nth);
        let res = m.insert_raw(&new, &rig.actions(&m, 0xabc));
        let fired = rig.fired(qpn);
        let what = format!("{model:?} {ty} prefill {prefill} WQE {nth}");
        match res {
            Err(e) => {
                assert!(fired, "{what}: {e}");
                // The failed WQE; or (FDB) the second side's, on a ring broken by an
                // error after the first side's linking write.
                assert!(
                    matches!(
                        e,
                        InsertError::Insert {
                            source: HtblError::Send(
                                SendError::WqeFailed { .. } | SendError::Broken(_)
                            ),
                            ..
                        }
                    ),
                    "{what}: {e:?}"
                );
                failures += 1;
                assert_eq!(rig.walks(&values), walks, "{what}: {e}");
                assert_eq!(rig.in_use(&[&m]), in_use, "{what}: {e}");
            }
            Ok(rule) => {
                for &side in rig.sides() {
                    assert!(rig.hits(side, &new, 0xabc), "{what}");
                }
                assert_all_hit(&rig, &live, &what);
                if !fired {
                    assert!(failures > 0, "{what}");
                    return m.stats().sides[0].1.grows > grows;
                }
                drop(rule);
            }
        }
    }
    unreachable!("the loop ends when the error no longer fires")
}

// --- rule removal ----------------------------------------------------------------------

/// An error CQE on each WQE in turn of a removal: before the unlinking write lands the
/// removal fails, hands the rule back and nothing changes; after it, the rule is gone.
/// On FDB a removal whose RX unlink landed before the ring broke hands back the rule
/// with its TX side only.
#[test]
fn error_cqe_on_each_wqe_of_a_removal() {
    for model in MODELS {
        for (ty, by_thread) in [DomainType::NicRx, DomainType::Fdb]
            .into_iter()
            .flat_map(|ty| [(ty, false), (ty, true)])
        {
            let mut kept = 0;
            for nth in 0.. {
                let rig = Rig::of_model(model, ty);
                let m = Matcher::new(&rig.table, &five_tuple_mask(), options(by_thread)).unwrap();
                let before = rig.ring_writes();
                let mut live: Vec<Live> = (0..6)
                    .map(|i| insert(&rig, &m, five_tuple(i), i + 1))
                    .collect();
                let ring = rig.busiest_since(&before);
                let values: Vec<MatchParam> = (0..6).map(five_tuple).collect();
                let (walks, in_use) = (rig.walks(&values), rig.in_use(&[&m]));
                // Each rule's route per side, while the matcher is placed by thread.
                let routes = |rules: usize| if by_thread { rules } else { 0 };
                let victim = live.remove(2);
                let qpn = rig.inject_error(ring, nth);
                let res = victim.rule.remove();
                let fired = rig.fired(qpn);
                let what = format!("{model:?} {ty} by thread {by_thread} WQE {nth}");
                assert_all_hit(&rig, &live, &what);
                let sides = rig.sides().len();
                match res {
                    // The side whose unlinking write failed; or (FDB) the second side,
                    // whose ring broke after the first side's unlink had landed.
                    Err(RuleRemoveError {
                        side,
                        error: HtblError::Send(SendError::WqeFailed { .. } | SendError::Broken(_)),
                        rule: Some(rule),
                    }) => {
                        assert!(fired, "{what}");
                        kept += 1;
                        let left: Vec<DomainSide> = rule.sides().collect();
                        assert_eq!(left[0], side, "{what}");
                        // A removed side gave its route back; a side left keeps its own.
                        let want = routes(5 * sides + left.len());
                        assert_eq!(m.stats().routes, want, "{what}");
                        if left.len() == rig.sides().len() {
                            // Nothing was removed.
                            assert_eq!(rig.walks(&values), walks, "{what}");
                            assert_eq!(rig.in_use(&[&m]), in_use, "{what}");
                        }
                        for &s in rig.sides() {
                            if left.contains(&s) {
                                assert!(rig.hits(s, &victim.value, victim.tag), "{what} {s}");
                            } else {
                                assert!(rig.misses(s, &victim.value), "{what} {s}");
                            }
                        }
                        // The broken ring is replaced, so dropping it now removes it.
                        drop(rule);
                        for &s in rig.sides() {
                            assert!(rig.misses(s, &victim.value), "{what} {s} after drop");
                        }
                        assert_eq!(m.stats().routes, routes(5 * sides), "{what} after drop");
                    }
                    Err(e) => panic!("{what}: {e:?}"),
                    Ok(()) => {
                        for &s in rig.sides() {
                            assert!(rig.misses(s, &victim.value), "{what} {s}");
                        }
                        assert_eq!(m.stats().routes, routes(5 * sides), "{what}");
                        if !fired {
                            break;
                        }
                    }
                }
            }
            assert!(kept > 0, "{model:?} {ty}");
        }
    }
}
