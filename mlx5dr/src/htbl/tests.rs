//! The engine on the simulator: rules inserted through a real steering queue, then
//! classified by walking ICM from an always-hit root anchor (the walk a NIC does).
//! 5-tuple and VXLAN chains on v0/v1/v2, collisions, shared prefixes, duplicates,
//! removal, growth, presized tables, ICM exhaustion, error CQEs, per-WQE reachability
//! and teardown; rules changed in place and shared duplicates in `update`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::pipeline::{Outcome, Verdict};
use ::sim::profile::{DeviceModel, Profile};
use ::sim::queue::WqeEvent;
use ::sim::{Fate, Stage};
use ste_builder::action::{set_actions_rx, ActionError, ActionType, ActionTypeSet, ActionsAttr};
use ste_builder::ste::{set_formatted_ste, Connect, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::wqe::{Opcode, Syndrome};
use ste_builder::{Caps, MatchParam, SteFormat};

use super::grow::DEFAULT_GROWTH_STEP;
use super::*;
use crate::caps::DeviceCaps;
use crate::device::sim::SimBackend;
use crate::device::Device;
use crate::icm::{Chunk, IcmError, IcmPool, PoolConfig};
use crate::matching::{BuilderChain, ChainCaps, DomainSide, Match};
use crate::send::{SendConfig, SendRing};
use crate::test_masks::five_tuple_mask;
use crate::test_rng::Rng;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

/// A simulated device with the driver's caps, an STE pool, a send ring and a root
/// anchor in ICM that always hits into the tables under test.
struct Rig {
    be: Arc<SimBackend>,
    caps: DeviceCaps,
    ste_caps: Caps,
    format: SteFormat,
    pool: Arc<IcmPool>,
    ring: SendRing,
    root: Option<Chunk>,
    drop_addr: u64,
}

impl Rig {
    fn new(model: DeviceModel) -> Rig {
        Rig::with_profile(Profile::new(model))
    }

    fn with_profile(profile: Profile) -> Rig {
        let be = Arc::new(SimBackend::with_profile(profile).unwrap());
        let caps = DeviceCaps::query(&*be).unwrap();
        let ste_caps = caps.ste_caps(&[]);
        let format = caps.ste_format().unwrap();
        let dev: Arc<dyn Device> = be.clone();
        let pool = Arc::new(IcmPool::new(dev, PoolConfig::steering(&caps)).unwrap());
        let ring = SendRing::new(&*be, SendConfig::default()).unwrap();
        let drop_addr = caps.nic_rx_drop_icm;
        Rig {
            be,
            caps,
            ste_caps,
            format,
            pool,
            ring,
            root: None,
            drop_addr,
        }
    }

    fn chain(&self, mask: &Match) -> BuilderChain {
        let cc = ChainCaps::new(&self.caps, &self.ste_caps).unwrap();
        BuilderChain::new(&mask.to_raw().unwrap(), DomainSide::NicRx, &cc).unwrap()
    }

    fn config(&self, grow: bool) -> TablesConfig {
        TablesConfig {
            grow,
            ..TablesConfig::new(self.format, true, self.caps.gvmi)
        }
    }

    /// Tables expecting about `2^initial_log` rules.
    fn sized(&self, grow: bool, initial_log: u8) -> TablesConfig {
        TablesConfig {
            initial_log,
            ..self.config(grow)
        }
    }

    /// Tables for `chain` missing to the drop address, with the root anchor pointing at
    /// their start table.
    fn tables(&mut self, chain: &BuilderChain, grow: bool) -> MatcherTables {
        self.tables_with(chain, self.config(grow))
    }

    fn tables_with(&mut self, chain: &BuilderChain, cfg: TablesConfig) -> MatcherTables {
        let end = Connect::Miss {
            miss_addr: self.drop_addr,
        };
        let mut t = MatcherTables::new(self.pool.clone(), chain, cfg, end, &mut self.ring).unwrap();
        let root = match self.root.take() {
            Some(r) => r,
            None => self.pool.alloc(0).unwrap(),
        };
        self.write_anchor(&root, t.start());
        t.set_start_pointer(Some(AnchorRef {
            region: root.region(),
            icm_addr: root.icm_addr(),
        }));
        self.root = Some(root);
        t
    }

    fn write_anchor(&mut self, at: &Chunk, to: Connect) {
        let ctrl = self.format.ctrl();
        let mut ste = [0u8; STE_SIZE];
        set_formatted_ste(ctrl, &mut ste, self.caps.gvmi, true, LU_TYPE_DONT_CARE, to);
        ctrl.prepare_for_postsend(&mut ste, STE_SIZE);
        self.ring.write(&at.region(), at.icm_addr(), &ste).unwrap();
        self.ring.flush().unwrap();
    }

    fn root_addr(&self) -> u64 {
        self.root.as_ref().unwrap().icm_addr()
    }

    /// The walk of a packet built from `value`, from the root anchor.
    fn walk(&self, value: &MatchParam) -> Verdict {
        walk_from(&self.be, self.root_addr(), value)
    }

    fn tags(&self, chain: &BuilderChain, value: &MatchParam) -> crate::matching::RuleTags {
        chain.rule_tags(value, &self.ste_caps).unwrap()
    }

    /// A last STE that drops with flow tag `tag`.
    fn tagged(&self, tag: u32) -> impl LastSte {
        let attr = ActionsAttr {
            final_icm_addr: self.drop_addr,
            flow_tag: tag,
            gvmi: self.caps.gvmi,
            hit_gvmi: self.caps.gvmi,
            ..ActionsAttr::default()
        };
        let set: ActionTypeSet = [ActionType::Tag, ActionType::Drop].into_iter().collect();
        move |format: SteFormat, stes: &mut [u8]| {
            set_actions_rx(format, &set, stes, &attr).map(|o| o.added_stes)
        }
    }

    fn hit(&self) -> HitOnly {
        HitOnly {
            icm_addr: self.drop_addr,
            num_entries: 1,
        }
    }

    fn new_ring(&mut self) {
        self.new_ring_with(SendConfig::default());
    }

    fn new_ring_with(&mut self, cfg: SendConfig) {
        self.ring = SendRing::new(&*self.be, cfg).unwrap();
    }

    /// From now on, the byte count of every RDMA WRITE the ring's queue executes.
    fn record_writes(&self) -> Arc<Mutex<Vec<u64>>> {
        let writes: Arc<Mutex<Vec<u64>>> = Arc::default();
        let w = writes.clone();
        let hook = move |e: &WqeEvent| {
            if e.opcode == Opcode::RdmaWrite {
                w.lock().unwrap().push(e.icm.map_or(0, |span| span.len));
            }
        };
        self.be
            .sim()
            .with_queue(self.ring.qpn(), |q| q.set_wqe_hook(Some(Box::new(hook))))
            .unwrap();
        writes
    }

    fn inject_error(&self, nth: u64) {
        self.be
            .sim()
            .with_queue(self.ring.qpn(), |q| {
                q.inject_error(nth, Syndrome::LocalProtection, 0x42)
            })
            .unwrap();
    }

    /// Bytes and count of the pool's live chunks.
    fn in_use_pool(&self) -> (u64, u64) {
        let p = self.pool.stats();
        (p.chunk_bytes, p.chunks)
    }

    /// Bytes in live chunks and live slab entries of the pool.
    fn in_use(&self, t: &MatcherTables) -> (u64, u64, u64) {
        let p = self.pool.stats();
        let s = t.slab().stats();
        (p.chunk_bytes, s.live_entries, p.chunks)
    }
}

fn walk_from(be: &SimBackend, root: u64, value: &MatchParam) -> Verdict {
    let packet = build_from_match(value, Metadata::new(Side::Rx)).unwrap();
    let out = be.sim().process(packet, ::sim::Entry::Icm(root)).unwrap();
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(matches!(out[0].fate, Fate::Delivered(_)), "{:#?}", out[0]);
    out[0]
        .stages
        .iter()
        .find_map(|s| match s {
            Stage::Software { verdict, .. } => Some(verdict.clone()),
            _ => None,
        })
        .unwrap()
}

fn five_tuple(rng: &mut Rng) -> MatchParam {
    let (src, dst, ports) = (rng.next() as u32, rng.next() as u32, rng.next());
    Match::new()
        .outer(|h| {
            h.ipv4_src(Ipv4Addr::from(src))
                .ipv4_dst(Ipv4Addr::from(dst))
                .ip_protocol(6)
                .tcp_sport(ports as u16)
                .tcp_dport((ports >> 16) as u16)
        })
        .to_raw()
        .unwrap()
        .param
}

fn vxlan_mask() -> Match {
    Match::new()
        .outer(|h| h.ip_version(4).ip_protocol(0xff).udp_dport(0xffff))
        .tunnel(|t| t.vxlan_vni(0xff_ffff))
        .inner(|h| h.ipv4_dst(Ipv4Addr::BROADCAST))
}

fn vxlan(vni: u32, dst: u32) -> MatchParam {
    Match::new()
        .outer(|h| h.ip_version(4).ip_protocol(17).udp_dport(4789))
        .tunnel(|t| t.vxlan_vni(vni))
        .inner(|h| h.ipv4_dst(Ipv4Addr::from(dst)))
        .to_raw()
        .unwrap()
        .param
}

fn dmac_mask() -> Match {
    Match::new().outer(|h| h.dmac([0xff; 6]))
}

fn dmac(mac: u64) -> MatchParam {
    let b = mac.to_be_bytes();
    Match::new()
        .outer(|h| h.dmac([b[2], b[3], b[4], b[5], b[6], b[7]]))
        .to_raw()
        .unwrap()
        .param
}

/// Every table as (level, entries), sorted.
fn table_sizes(t: &MatcherTables) -> Vec<(u8, u32)> {
    let mut sizes: Vec<(u8, u32)> = t
        .tables
        .iter()
        .map(|(_, r)| (r.level, r.entries()))
        .collect();
    sizes.sort_unstable();
    sizes
}

/// The engine's records agree with each other and with ICM.
fn check(rig: &Rig, t: &MatcherTables) {
    let icm = rig.be.sim().icm();
    let read = |addr: u64| icm.read_line(addr).unwrap();
    if let Err(e) = t.check(&read) {
        panic!("{e}");
    }
}

/// An installed rule as the tests remember it.
struct Live {
    handle: RuleHandle,
    value: MatchParam,
    tag: Option<u32>,
}

/// The packet of `rule` ends at its last STE (with its flow tag, if it has one) and the
/// drop address.
fn assert_hits(rig: &Rig, t: &MatcherTables, rule: &Live) {
    let v = rig.walk(&rule.value);
    assert_eq!(
        v.last_rule_hit(),
        t.rule_addr(&rule.handle),
        "{:#?}",
        v.trace
    );
    assert_eq!(v.flow_tag(), rule.tag);
    assert_eq!(v.final_addr(), Some(rig.drop_addr));
    assert!(!v.missed_into(t.end_anchor()));
}

/// The packet of `value` matches no rule: its walk ends in the end anchor's miss (it
/// may have hit shared STEs of earlier levels on the way).
fn assert_misses(rig: &Rig, t: &MatcherTables, value: &MatchParam) {
    let v = rig.walk(value);
    let last = v.trace.last().unwrap();
    assert_eq!(last.addr, t.end_anchor(), "{:#?}", v.trace);
    assert!(
        matches!(last.outcome, Outcome::Miss { .. }),
        "{:#?}",
        v.trace
    );
    assert_eq!(v.final_addr(), Some(rig.drop_addr));
    assert_eq!(v.flow_tag(), None);
}

/// Inserts `n` random 5-tuple rules, half with a flow tag.
fn insert_five_tuples(
    rig: &mut Rig,
    t: &mut MatcherTables,
    chain: &BuilderChain,
    rng: &mut Rng,
    n: usize,
) -> Vec<Live> {
    let mut live = Vec::new();
    for i in 0..n {
        let value = five_tuple(rng);
        let tags = rig.tags(chain, &value);
        let (handle, tag) = if i % 2 == 0 {
            let tag = 0x1000 + i as u32;
            (
                {
                    let last = rig.tagged(tag);
                    t.insert(&mut rig.ring, &tags, last)
                }
                .unwrap(),
                Some(tag),
            )
        } else {
            (
                {
                    let last = rig.hit();
                    t.insert(&mut rig.ring, &tags, last)
                }
                .unwrap(),
                None,
            )
        };
        live.push(Live { handle, value, tag });
    }
    live
}

fn five_tuple_rules_on(model: DeviceModel) {
    let mut rig = Rig::new(model);
    let chain = rig.chain(&five_tuple_mask());
    assert_eq!(chain.len(), 2);
    let mut t = rig.tables(&chain, true);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ model as u64);

    // The empty matcher: everything misses into the end anchor.
    assert_misses(&rig, &t, &five_tuple(&mut rng));

    let mut live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 400);
    check(&rig, &t);
    let s = t.stats();
    assert_eq!(s.rules, 400);
    // One shared level-0 STE (it matches only the IP version), one STE per rule below.
    assert_eq!(s.stes, 401);
    assert!(s.grows > 0, "{s:?}");
    // Tagged rules have one control block each; those that drop share one (recently
    // interned blocks are found again, so only a few copies of it are kept).
    assert!((201..=210).contains(&s.ctrl_blocks), "{s:?}");
    for r in &live {
        assert_hits(&rig, &t, r);
    }
    for _ in 0..50 {
        assert_misses(&rig, &t, &five_tuple(&mut rng));
    }

    // A duplicate is refused and changes nothing.
    let before = rig.in_use(&t);
    let tags = rig.tags(&chain, &live[7].value);
    assert!(matches!(
        {
            let last = rig.hit();
            t.insert(&mut rig.ring, &tags, last)
        },
        Err(HtblError::Duplicate)
    ));
    assert_eq!(rig.in_use(&t), before);
    assert_hits(&rig, &t, &live[7]);

    // Remove a random half.
    let mut removed = Vec::new();
    let mut i = 0;
    while removed.len() < 200 {
        i = (i + rng.below(7) as usize + 1) % live.len();
        let r = live.swap_remove(i);
        t.remove(&mut rig.ring, r.handle).unwrap();
        removed.push(r.value);
    }
    assert_eq!(t.rules(), 200);
    assert_eq!(t.stats().stes, 201);
    check(&rig, &t);
    for r in &live {
        assert_hits(&rig, &t, r);
    }
    for v in &removed {
        assert_misses(&rig, &t, v);
    }
    // Removed rules may come back.
    for v in removed.drain(..50) {
        let tags = rig.tags(&chain, &v);
        let handle = {
            let last = rig.hit();
            t.insert(&mut rig.ring, &tags, last)
        }
        .unwrap();
        live.push(Live {
            handle,
            value: v,
            tag: None,
        });
    }
    for r in &live {
        assert_hits(&rig, &t, r);
    }

    // Everything removed: the tables are as empty as they started, but keep their size.
    for r in live.drain(..) {
        t.remove(&mut rig.ring, r.handle).unwrap();
    }
    let s = t.stats();
    assert_eq!(
        (s.rules, s.stes, s.tables, s.collision_entries),
        (0, 0, 1, 0)
    );
    assert_eq!(rig.in_use(&t).1, 0, "no collision entry is live");
    for v in &removed {
        assert_misses(&rig, &t, v);
    }
    assert_no_leak_after_drop(rig, t);
}

/// Dropping the tables gives every chunk and entry back; trimming the pool then gives
/// the device all its ICM back.
fn assert_no_leak_after_drop(mut rig: Rig, t: MatcherTables) {
    check(&rig, &t);
    drop(t);
    if let Some(root) = rig.root.take() {
        rig.pool.free(root).unwrap();
    }
    let s = rig.pool.stats();
    assert_eq!((s.chunks, s.chunk_bytes, s.slab_bytes), (0, 0, 0), "{s:?}");
    rig.pool.trim().unwrap();
    assert_eq!(rig.be.sim().icm().usage().bytes, 0);
}

#[test]
fn five_tuple_rules_connectx5_v0() {
    five_tuple_rules_on(DeviceModel::ConnectX5);
}

#[test]
fn five_tuple_rules_connectx6dx_v1() {
    five_tuple_rules_on(DeviceModel::ConnectX6Dx);
}

#[test]
fn five_tuple_rules_connectx7_v2() {
    five_tuple_rules_on(DeviceModel::ConnectX7);
}

/// Without growth every rule of a one-level matcher lands in the one-entry start table:
/// a single miss chain. Removing its head, middle and tail keeps the rest reachable.
#[test]
fn collisions_form_one_miss_chain_in_a_tiny_table() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&dmac_mask());
        assert_eq!(chain.len(), 1);
        let mut t = rig.tables(&chain, false);
        let mut live: Vec<Live> = (0..12u64)
            .map(|i| {
                let value = dmac(0x0200_0000_0000 + i * 0x1_0001);
                let tags = rig.tags(&chain, &value);
                let tag = 0x77 + i as u32;
                let handle = {
                    let last = rig.tagged(tag);
                    t.insert(&mut rig.ring, &tags, last)
                }
                .unwrap();
                Live {
                    handle,
                    value,
                    tag: Some(tag),
                }
            })
            .collect();
        let s = t.stats();
        assert_eq!(
            (s.table_entries, s.collision_entries, s.longest_chain),
            (1, 11, 12)
        );
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        // The slot's occupant: the next entry is copied into the slot.
        let head = live.remove(0);
        let head_addr = t.rule_addr(&head.handle).unwrap();
        t.remove(&mut rig.ring, head.handle).unwrap();
        assert_eq!(t.rule_addr(&live[0].handle), Some(head_addr));
        // A middle entry and the tail: the predecessor's miss address skips them.
        for middle in [true, false] {
            let r = live.remove(if middle { 5 } else { live.len() - 1 });
            t.remove(&mut rig.ring, r.handle).unwrap();
            assert_misses(&rig, &t, &r.value);
        }
        assert_misses(&rig, &t, &head.value);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        assert_eq!(t.stats().longest_chain, 9);
        // Down to one rule, then none: the unused-slot STE is back.
        while live.len() > 1 {
            let r = live.remove(live.len() / 2);
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_hits(&rig, &t, &live[0]);
        let last = live.pop().unwrap();
        t.remove(&mut rig.ring, last.handle).unwrap();
        assert_misses(&rig, &t, &last.value);
        assert_no_leak_after_drop(rig, t);
    }
}

/// VXLAN: four lookups; rules with one VNI share the first three STEs, all rules share
/// the first two. Shared STEs live as long as a rule uses them.
#[test]
fn vxlan_rules_share_prefixes() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&vxlan_mask());
        assert_eq!(chain.len(), 4, "{model:?}");
        let mut t = rig.tables(&chain, true);
        let mut live = HashMap::new();
        for vni in 1..=6u32 {
            for host in 1..=20u32 {
                let value = vxlan(vni * 1000, 0x0a00_0000 | (vni << 8) | host);
                let tags = rig.tags(&chain, &value);
                let tag = vni << 8 | host;
                let handle = {
                    let last = rig.tagged(tag);
                    t.insert(&mut rig.ring, &tags, last)
                }
                .unwrap();
                live.insert(
                    (vni, host),
                    Live {
                        handle,
                        value,
                        tag: Some(tag),
                    },
                );
            }
        }
        check(&rig, &t);
        let s = t.stats();
        // 1 + 1 shared, one per VNI, one per rule.
        assert_eq!(s.stes, 2 + 6 + 120, "{s:?}");
        for r in live.values() {
            assert_hits(&rig, &t, r);
        }
        // An unknown VNI, and a known VNI with an unknown inner address, miss.
        assert_misses(&rig, &t, &vxlan(7000, 0x0a00_0701));
        assert_misses(&rig, &t, &vxlan(3000, 0x0a00_0399));

        // Remove every rule of VNI 3: its level-2 STE and level-3 table go too.
        let before = t.stats();
        for host in 1..=20 {
            let r = live.remove(&(3, host)).unwrap();
            t.remove(&mut rig.ring, r.handle).unwrap();
            assert_misses(&rig, &t, &r.value);
        }
        let s = t.stats();
        assert_eq!(s.stes, before.stes - 21);
        assert_eq!(s.tables, before.tables - 1);
        for r in live.values() {
            assert_hits(&rig, &t, r);
        }
        // A duplicate deep in a shared prefix is refused.
        let tags = rig.tags(&chain, &vxlan(2000, 0x0a00_0205));
        assert!(matches!(
            {
                let last = rig.hit();
                t.insert(&mut rig.ring, &tags, last)
            },
            Err(HtblError::Duplicate)
        ));
        for ((_, _), r) in live.drain() {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_eq!(t.stats().stes, 0);
        assert_no_leak_after_drop(rig, t);
    }
}

/// A rule whose actions need action-only STEs: they are placed and chained after the
/// match STE, and go away with the rule.
#[test]
fn action_stes_are_chained_after_the_last_match_ste() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let mut t = rig.tables(&chain, true);
        let (gvmi, drop_addr) = (rig.caps.gvmi, rig.drop_addr);
        let mut rng = Rng(5);
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        // Two always-hit action-only STEs; the last one hits the drop address.
        let last = move |format: SteFormat, stes: &mut [u8]| {
            let ctrl = format.ctrl();
            for k in 1..=2 {
                let ste = &mut stes[k * STE_SIZE..(k + 1) * STE_SIZE];
                ctrl.init(ste, LU_TYPE_DONT_CARE, true, gvmi);
            }
            ctrl.set_hit_addr(&mut stes[2 * STE_SIZE..3 * STE_SIZE], drop_addr, 1);
            Ok::<_, ActionError>(2)
        };
        let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
        assert_eq!(t.stats().action_stes, 2);
        let v = rig.walk(&value);
        assert_eq!(v.last_rule_hit(), t.rule_addr(&handle));
        assert_eq!(v.final_addr(), Some(drop_addr));
        // Root, level 0, level 1, then the two action STEs.
        assert_eq!(v.trace.len(), 5, "{:#?}", v.trace);
        let before = rig.in_use(&t);
        t.remove(&mut rig.ring, handle).unwrap();
        assert_eq!(t.stats().action_stes, 0);
        assert_eq!(rig.in_use(&t).1, before.1 - 2);
        assert_misses(&rig, &t, &value);

        // An encoder that reports more STEs than there is room for, or touches the tag,
        // is refused before anything is allocated.
        let before = rig.in_use(&t);
        let too_many = |_: SteFormat, _: &mut [u8]| Ok::<_, ActionError>(MAX_ACTION_STES + 1);
        assert!(matches!(
            t.insert(&mut rig.ring, &tags, too_many),
            Err(HtblError::BadActionStes(_))
        ));
        let touches = |_: SteFormat, stes: &mut [u8]| {
            stes[40] ^= 1;
            Ok::<_, ActionError>(0)
        };
        assert!(matches!(
            t.insert(&mut rig.ring, &tags, touches),
            Err(HtblError::BadActionStes(_))
        ));
        let refused =
            |_: SteFormat, _: &mut [u8]| Err::<usize, _>(ActionError::TooManyVlans { count: 3 });
        let err = t.insert(&mut rig.ring, &tags, refused).unwrap_err();
        assert!(matches!(err, HtblError::Actions(_)), "{err}");
        assert!(err.to_string().contains("3 VLAN headers"), "{err}");
        assert_eq!(rig.in_use(&t), before);
        assert_misses(&rig, &t, &value);
        assert_no_leak_after_drop(rig, t);
    }
}

#[test]
fn tables_and_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MatcherTables>();
    send_sync::<RuleHandle>();
    send_sync::<HtblError>();
}

#[test]
fn tags_of_another_chain_and_foreign_handles_are_refused() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    let five = rig.chain(&five_tuple_mask());
    let l2 = rig.chain(&dmac_mask());
    let mut a = rig.tables(&five, true);
    let mut b = rig.tables(&l2, true);
    let tags = rig.tags(&l2, &dmac(0x0200_0000_0001));
    assert!(matches!(
        {
            let last = rig.hit();
            a.insert(&mut rig.ring, &tags, last)
        },
        Err(HtblError::TagCount { got: 1, want: 2 })
    ));
    let handle = {
        let last = rig.hit();
        b.insert(&mut rig.ring, &tags, last)
    }
    .unwrap();
    let err = a.remove(&mut rig.ring, handle).unwrap_err();
    assert!(matches!(err.error, HtblError::ForeignHandle));
    let handle = err.rule.unwrap();
    assert_eq!(a.rule_addr(&handle), None);
    b.remove(&mut rig.ring, handle).unwrap();
    drop(a);
    assert_no_leak_after_drop(rig, b);
}

/// Growth rewrites a table 4× larger and switches its pointer: the start table's root
/// anchor, or the STE above.
#[test]
fn tables_grow_and_stay_reachable() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        // One level: the start table itself grows, through the root anchor.
        let chain = rig.chain(&dmac_mask());
        let mut t = rig.tables(&chain, true);
        let live: Vec<Live> = (0..300u64)
            .map(|i| {
                let value = dmac(0x0200_0000_0000 | (i * 0x9e37_79b9) & 0xffff_ffff_ffff);
                let tags = rig.tags(&chain, &value);
                let handle = {
                    let last = rig.hit();
                    t.insert(&mut rig.ring, &tags, last)
                }
                .unwrap();
                Live {
                    handle,
                    value,
                    tag: None,
                }
            })
            .collect();
        let s = t.stats();
        assert!(s.table_entries >= 64, "{s:?}");
        assert!(s.grows >= 3, "{s:?}");
        assert_eq!(s.grow_failures, 0);
        assert!(s.longest_chain <= 8, "{s:?}");
        assert!(
            matches!(t.start(), Connect::Hit { num_entries, .. } if u64::from(num_entries) == s.table_entries)
        );
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// ICM runs out: the insert that finds none fails with a typed error and changes
/// nothing; every earlier rule still hits, and rules can be removed and added after.
#[test]
fn icm_exhaustion_changes_nothing() {
    for model in MODELS {
        let mut profile = Profile::new(model);
        // 64 KiB of steering ICM: 1024 STEs.
        profile.log_steering_sw_icm_size = 16;
        let mut rig = Rig::with_profile(profile);
        let chain = rig.chain(&vxlan_mask());
        let mut t = rig.tables(&chain, true);
        let mut live = Vec::new();
        let mut failed = None;
        for i in 0..2000u32 {
            // A new VNI per rule: three new one-entry tables each.
            let value = vxlan(i + 1, 0x0a00_0001 + i);
            let tags = rig.tags(&chain, &value);
            let before = rig.in_use(&t);
            let stats = t.stats();
            let last = rig.tagged(i);
            match t.insert(&mut rig.ring, &tags, last) {
                Ok(handle) => live.push(Live {
                    handle,
                    value,
                    tag: Some(i),
                }),
                Err(e) => {
                    assert!(
                        matches!(e, HtblError::Icm(IcmError::Exhausted { .. })),
                        "{e}"
                    );
                    assert_eq!(rig.in_use(&t), before);
                    assert_eq!(t.stats(), stats);
                    check(&rig, &t);
                    failed = Some(value);
                    break;
                }
            }
        }
        let failed = failed.expect("64 KiB of ICM runs out");
        assert!(live.len() > 50, "{}", live.len());
        assert_misses(&rig, &t, &failed);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        // Room again after a removal.
        let r = live.pop().unwrap();
        t.remove(&mut rig.ring, r.handle).unwrap();
        let tags = rig.tags(&chain, &failed);
        let handle = {
            let last = rig.hit();
            t.insert(&mut rig.ring, &tags, last)
        }
        .unwrap();
        live.push(Live {
            handle,
            value: failed,
            tag: None,
        });
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// An error CQE on each WQE of an insert and of a removal in turn: before the linking
/// WRITE completes nothing changes (host state, ICM in use, every packet's verdict);
/// once it did (the error is on the READ that fences it), the change stands.
#[test]
fn error_cqe_mid_update_leaves_everything_as_before() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&vxlan_mask());
        let mut t = rig.tables(&chain, false);
        let mut live = Vec::new();
        for i in 0..6u32 {
            let value = vxlan(100, 0x0a00_0001 + i);
            let tags = rig.tags(&chain, &value);
            let handle = {
                let last = rig.tagged(i);
                t.insert(&mut rig.ring, &tags, last)
            }
            .unwrap();
            live.push(Live {
                handle,
                value,
                tag: Some(i),
            });
        }
        // A rule with a new VNI shares levels 0 and 1; it writes a one-entry level-3 table
        // and links into the one-entry level-2 table's chain (a collision entry, then the
        // tail's control block): 3 writes, 6 WQEs, the link's READ last.
        let mut nth = 0;
        loop {
            let value = vxlan(200 + nth as u32, 0x0b00_0001);
            let tags = rig.tags(&chain, &value);
            let before = (rig.in_use(&t), t.stats());
            rig.inject_error(nth);
            let res = {
                let last = rig.tagged(0xabc);
                t.insert(&mut rig.ring, &tags, last)
            };
            rig.new_ring();
            match res {
                Err(HtblError::Send(e)) => {
                    assert!(matches!(e, crate::send::SendError::WqeFailed { .. }), "{e}");
                    assert_eq!((rig.in_use(&t), t.stats()), before, "WQE {nth}");
                    assert_misses(&rig, &t, &value);
                    check(&rig, &t);
                }
                Ok(handle) => {
                    // The error hit the READ after the link: the rule is in.
                    assert_eq!(nth, 5, "{model:?}");
                    live.push(Live {
                        handle,
                        value,
                        tag: Some(0xabc),
                    });
                    break;
                }
                Err(e) => panic!("WQE {nth}: {e}"),
            }
            for r in &live {
                assert_hits(&rig, &t, r);
            }
            nth += 1;
        }
        for r in &live {
            assert_hits(&rig, &t, r);
        }

        // Removal is one write: an error on its WRITE keeps the rule, on its READ not.
        let r = live.remove(2);
        rig.inject_error(0);
        let err = t.remove(&mut rig.ring, r.handle).unwrap_err();
        rig.new_ring();
        let handle = err.rule.expect("the rule is still installed");
        let r = Live { handle, ..r };
        assert_hits(&rig, &t, &r);
        rig.inject_error(1);
        t.remove(&mut rig.ring, r.handle).unwrap();
        rig.new_ring();
        assert_misses(&rig, &t, &r.value);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        // The tables go on working on a new ring.
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// After every WQE of inserts, removals and growths, every rule that exists before and
/// after the update is still reached by its packet (its own flow tag, no miss into the
/// end anchor). One level (the start table grows, switched through the root anchor) and
/// two levels (the level-1 table grows, switched through the level-0 STE).
///
/// With a growth step of one old slot per update, tables take many updates to grow, and
/// inserts and removals land in slots already copied: they change both tables.
///
/// Packets of rules never inserted end in the end anchor at every WQE too: no table is
/// linked before every slot of it is written.
#[test]
fn every_rule_stays_reachable_at_every_wqe() {
    for model in MODELS {
        for two_levels in [false, true] {
            for step in [DEFAULT_GROWTH_STEP, 1] {
                reachable_at_every_wqe(model, two_levels, step, 0, Schedule::Mixed);
            }
        }
    }
}

/// Tables grown by a burst of inserts shrink back as the rules go, and every rule stays
/// reachable at every WQE meanwhile: with a step of one slot, inserts and removals land
/// in groups already copied into the smaller table and are mirrored there.
#[test]
fn tables_shrink_back_and_rules_stay_reachable_at_every_wqe() {
    for model in MODELS {
        for two_levels in [false, true] {
            for step in [DEFAULT_GROWTH_STEP, 1] {
                reachable_at_every_wqe(model, two_levels, step, 0, Schedule::BurstThenDrain);
            }
        }
    }
}

/// The same with presized tables (4 entries: the start table of the one-level chain, the
/// level-1 table of the two-level one, made by the first insert), which then grow.
#[test]
fn every_rule_stays_reachable_at_every_wqe_from_presized_tables() {
    for model in MODELS {
        for two_levels in [false, true] {
            for schedule in [Schedule::Mixed, Schedule::BurstThenDrain] {
                reachable_at_every_wqe(model, two_levels, DEFAULT_GROWTH_STEP, 2, schedule);
            }
        }
    }
}

/// The updates of [`reachable_at_every_wqe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// 80 updates, every third a removal: the tables grow.
    Mixed,
    /// 120 inserts, then removals with an insert every fourth update until 2 rules are
    /// left, then an insert and a removal in turn up to update 440 (which finishes the
    /// last shrink's copy): the tables grow, then shrink.
    BurstThenDrain,
}

impl Schedule {
    /// Whether update `round`, with `live` rules installed, is a removal; `None`: done.
    fn removes(self, round: u32, live: usize) -> Option<bool> {
        match self {
            Schedule::Mixed => (round < 80).then_some(round % 3 == 2),
            Schedule::BurstThenDrain if round < 120 => Some(false),
            Schedule::BurstThenDrain if live > 2 => Some(round % 4 != 3),
            Schedule::BurstThenDrain => (round < 440).then_some(live == 2),
        }
    }
}

fn reachable_at_every_wqe(
    model: DeviceModel,
    two_levels: bool,
    step: u32,
    initial_log: u8,
    schedule: Schedule,
) {
    let mut rig = Rig::new(model);
    let chain = rig.chain(&if two_levels {
        five_tuple_mask()
    } else {
        dmac_mask()
    });
    let cfg = TablesConfig {
        growth_step: step,
        ..rig.sized(true, initial_log)
    };
    let mut t = rig.tables_with(&chain, cfg);
    assert_eq!(
        table_sizes(&t),
        [(0, if two_levels { 1 } else { 1 << initial_log })]
    );
    let mut rng = Rng(77);
    let new_value = |rng: &mut Rng| {
        if two_levels {
            five_tuple(rng)
        } else {
            dmac(rng.next() >> 16)
        }
    };
    // Packets no rule matches (the generator repeats no value in this test).
    let misses: Vec<MatchParam> = (0..3).map(|_| new_value(&mut rng)).collect();
    let (root, end) = (rig.root_addr(), t.end_anchor());
    // Probes: (packet value, flow tag) of the rules that must stay reachable.
    type Probes = Arc<Mutex<Vec<(MatchParam, u32)>>>;
    let probes: Probes = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let checked = Arc::new(Mutex::new(0u64));
    let (p, f, c, weak) = (
        probes.clone(),
        failures.clone(),
        checked.clone(),
        Arc::downgrade(&rig.be),
    );
    let m = misses.clone();
    let hook = move |e: &WqeEvent| {
        let Some(be) = weak.upgrade() else { return };
        for (value, tag) in p.lock().unwrap().iter() {
            let v = walk_from(&be, root, value);
            *c.lock().unwrap() += 1;
            if v.flow_tag() != Some(*tag) || v.missed_into(end) {
                f.lock().unwrap().push(format!("{e:?}: {:#?}", v.trace));
            }
        }
        for value in &m {
            let v = walk_from(&be, root, value);
            let at_end = v
                .trace
                .last()
                .is_some_and(|l| l.addr == end && matches!(l.outcome, Outcome::Miss { .. }));
            if !at_end || v.flow_tag().is_some() {
                f.lock()
                    .unwrap()
                    .push(format!("miss probe, {e:?}: {:#?}", v.trace));
            }
        }
    };
    rig.be
        .sim()
        .with_queue(rig.ring.qpn(), |q| q.set_wqe_hook(Some(Box::new(hook))))
        .unwrap();
    let mut live: Vec<Live> = Vec::new();
    let mut largest = 0;
    for round in 0.. {
        let Some(remove) = schedule.removes(round, live.len()) else {
            break;
        };
        largest = largest.max(t.stats().table_entries);
        // The probes are the rules live before this update that it keeps.
        let victim = remove.then(|| rng.below(live.len() as u64) as usize);
        *probes.lock().unwrap() = live
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != victim)
            .map(|(_, r)| (r.value.clone(), r.tag.unwrap()))
            .collect();
        check(&rig, &t);
        if let Some(i) = victim {
            let r = live.swap_remove(i);
            t.remove(&mut rig.ring, r.handle).unwrap();
        } else {
            let value = new_value(&mut rng);
            let tags = rig.tags(&chain, &value);
            let last = rig.tagged(round);
            let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
            live.push(Live {
                handle,
                value,
                tag: Some(round),
            });
        }
    }
    rig.be
        .sim()
        .with_queue(rig.ring.qpn(), |q| q.set_wqe_hook(None))
        .unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{model:?} two levels {two_levels}: {}",
        failures[0]
    );
    let s = t.stats();
    assert!(s.grows >= 2, "{s:?}");
    assert_eq!((s.grow_failures, s.presize_fallbacks), (0, 0));
    if step == 1 {
        assert!(t.counters.mirrored > 5, "{:?}", t.counters);
    }
    match schedule {
        Schedule::Mixed => assert!(s.collision_entries > 0 && s.shrinks == 0, "{s:?}"),
        Schedule::BurstThenDrain => {
            // One or two rules left: every table is back to at most 16 entries (64
            // entries shrink below 4 rules), and the presized one (the last level's)
            // no smaller than it started.
            assert!(s.shrinks >= 1, "{s:?}");
            let sizes = table_sizes(&t);
            let last = sizes.iter().map(|&(level, _)| level).max();
            for &(level, entries) in &sizes {
                let floor = if Some(level) == last {
                    1 << initial_log
                } else {
                    1
                };
                assert!(entries <= 16 && entries >= floor, "{sizes:?}");
            }
            assert!(s.table_entries * 4 <= largest, "{s:?}, largest {largest}");
        }
    }
    assert!(*checked.lock().unwrap() > 1000);
    for r in &live {
        assert_hits(&rig, &t, r);
    }
    for v in &misses {
        assert_misses(&rig, &t, v);
    }
    drop(failures);
    assert_no_leak_after_drop(rig, t);
}

/// The end anchor can be switched from a miss to a hit into another matcher's start
/// table: a packet that misses the first matcher then meets the second. The second's
/// start table grows several times, each time switched through the first's end anchor.
#[test]
fn end_anchor_chains_matchers() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let five = rig.chain(&five_tuple_mask());
        let l2 = rig.chain(&dmac_mask());
        let mut first = rig.tables(&five, true);
        let end = Connect::Miss {
            miss_addr: rig.drop_addr,
        };
        let cfg = rig.config(true);
        let mut second =
            MatcherTables::new(rig.pool.clone(), &l2, cfg, end, &mut rig.ring).unwrap();
        first.set_end_target(&mut rig.ring, second.start()).unwrap();
        second.set_start_pointer(Some(first.end_anchor_ref()));
        let mut rng = Rng(3);
        let firsts = insert_five_tuples(&mut rig, &mut first, &five, &mut rng, 20);
        let mut seconds = Vec::new();
        for i in 0..200 {
            let value = dmac(rng.next() >> 16);
            let tags = rig.tags(&l2, &value);
            let last = rig.tagged(i);
            let handle = second.insert(&mut rig.ring, &tags, last).unwrap();
            seconds.push(Live {
                handle,
                value,
                tag: Some(i),
            });
        }
        assert!(second.stats().grows >= 3, "{:?}", second.stats());
        for r in &firsts {
            assert_hits(&rig, &first, r);
        }
        for r in &seconds {
            let v = rig.walk(&r.value);
            assert!(v.missed_into(first.end_anchor()));
            assert_eq!(v.last_rule_hit(), second.rule_addr(&r.handle));
            assert_eq!(v.flow_tag(), r.tag);
        }
        assert_misses(&rig, &second, &dmac(0x0200_dead_beef));
        // The first's record of its end target is behind the growths; writing the truth
        // again changes nothing for packets.
        first.set_end_target(&mut rig.ring, second.start()).unwrap();
        check(&rig, &first);
        check(&rig, &second);
        for r in seconds {
            second.remove(&mut rig.ring, r.handle).unwrap();
        }
        for r in firsts {
            first.remove(&mut rig.ring, r.handle).unwrap();
        }
        first.set_end_target(&mut rig.ring, end).unwrap();
        drop(second);
        assert_no_leak_after_drop(rig, first);
    }
}

/// The per-rule host memory of a 2-level 5-tuple matcher whose rules drop: the engine's
/// records, measured by its own accounting (not a timing).
#[test]
fn host_memory_per_rule_is_small() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    let chain = rig.chain(&five_tuple_mask());
    let mut t = rig.tables(&chain, true);
    let mut rng = Rng(11);
    let n = 20_000;
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        handles.push(
            {
                let last = rig.hit();
                t.insert(&mut rig.ring, &tags, last)
            }
            .unwrap(),
        );
    }
    let s = t.stats();
    let per_rule = s.host_bytes as f64 / n as f64;
    assert!(per_rule < 96.0, "{per_rule} bytes per rule: {s:?}");
    // 64 bytes of ICM per STE plus the tables' unused slots.
    assert!(s.table_entries < 4 * n as u64, "{s:?}");
    for h in handles {
        t.remove(&mut rig.ring, h).unwrap();
    }
    assert_no_leak_after_drop(rig, t);
}

/// An error CQE in the middle of a growth: the insert that triggered it stands, the
/// table keeps its old size and contents, every rule still hits; on a new ring the table
/// grows later.
#[test]
fn failed_growth_leaves_the_table_as_it_was() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&dmac_mask());
        let mut t = rig.tables(&chain, true);
        let mut live = Vec::new();
        let mut rng = Rng(21);
        let mut failed_once = false;
        while t.stats().grows < 2 {
            let value = dmac(rng.next() >> 16);
            let tags = rig.tags(&chain, &value);
            let before = t.stats();
            // A colliding insert is 2 writes (4 WQEs); a growth after it starts at WQE 4.
            if !failed_once {
                rig.inject_error(4);
            }
            let last = rig.hit();
            let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
            live.push(Live {
                handle,
                value,
                tag: None,
            });
            if rig.ring.failure().is_some() {
                let s = t.stats();
                assert_eq!(s.grow_failures, 1, "{s:?}");
                assert_eq!(s.grows, before.grows);
                assert_eq!(s.table_entries, before.table_entries);
                assert_eq!((s.leaked_chunks, s.leaked_entries), (0, 0));
                check(&rig, &t);
                failed_once = true;
                rig.new_ring();
            } else {
                rig.be
                    .sim()
                    .with_queue(rig.ring.qpn(), |q| q.clear_injected_error())
                    .unwrap();
            }
            for r in &live {
                assert_hits(&rig, &t, r);
            }
        }
        assert!(failed_once);
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// Completions that never come (a timeout after the link was posted): the engine cannot
/// tell whether the link landed, so it assumes it did. The insert returns the rule in
/// its error; a removal forgets the rule and keeps its memory out of use.
#[test]
fn unconfirmed_updates_are_assumed_to_have_landed() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    rig.ring = SendRing::new(
        &*rig.be,
        SendConfig {
            timeout: std::time::Duration::from_millis(20),
            ..SendConfig::default()
        },
    )
    .unwrap();
    let chain = rig.chain(&five_tuple_mask());
    let mut t = rig.tables(&chain, false);
    let mut rng = Rng(8);
    let first = five_tuple(&mut rng);
    let tags = rig.tags(&chain, &first);
    let last = rig.tagged(1);
    let kept = t.insert(&mut rig.ring, &tags, last).unwrap();

    let hold = |rig: &Rig, on: bool| {
        rig.be
            .sim()
            .with_queue(rig.ring.qpn(), |q| {
                if on {
                    q.hold_completions();
                } else {
                    q.resume_completions().unwrap();
                }
            })
            .unwrap();
    };
    hold(&rig, true);
    let value = five_tuple(&mut rng);
    let tags = rig.tags(&chain, &value);
    let last = rig.tagged(2);
    let err = t.insert(&mut rig.ring, &tags, last).unwrap_err();
    let HtblError::Unconfirmed { rule, source } = err else {
        panic!("{err}");
    };
    assert!(
        matches!(source, crate::send::SendError::Timeout { .. }),
        "{source}"
    );
    // The device did execute the writes: the rule is reachable, as assumed.
    let second = Live {
        handle: rule,
        value,
        tag: Some(2),
    };
    assert_hits(&rig, &t, &second);
    assert_eq!(t.rules(), 2);
    check(&rig, &t);

    // A removal whose completion does not come: the rule is gone for the engine, and
    // what it used is not handed back.
    let err = t.remove(&mut rig.ring, second.handle).unwrap_err();
    assert!(err.rule.is_none(), "{err}");
    assert_eq!(t.rules(), 1);
    let s = t.stats();
    assert!(s.leaked_chunks + s.leaked_entries > 0, "{s:?}");
    hold(&rig, false);
    rig.ring.flush().unwrap();
    assert_misses(&rig, &t, &second.value);
    let kept = Live {
        handle: kept,
        value: first,
        tag: Some(1),
    };
    assert_hits(&rig, &t, &kept);
    t.remove(&mut rig.ring, kept.handle).unwrap();
    // Entries kept out of use go back with the tables' slab.
    assert_no_leak_after_drop(rig, t);
}

/// A table that empties while it grows: the growth is dropped with it, not counted as a
/// failure, and nothing leaks.
#[test]
fn a_table_emptied_while_growing_takes_its_growth_along() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let cfg = TablesConfig {
            growth_step: 1,
            ..rig.config(true)
        };
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(99);
        let mut live = Vec::new();
        // Until the level-1 table (the only one with more than one STE) is being copied
        // into a larger one, with some slots copied already.
        while !t.copying() {
            live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1));
        }
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live.drain(..) {
            t.remove(&mut rig.ring, r.handle).unwrap();
            assert_misses(&rig, &t, &r.value);
        }
        assert!(t.migration.is_none());
        let s = t.stats();
        assert_eq!((s.stes, s.tables, s.grow_failures), (0, 1, 0), "{s:?}");
        assert_no_leak_after_drop(rig, t);
    }
}

/// Error CQEs on every WQE of updates made while a table grows a slot per update (the
/// update's own writes, its mirror in the growing copy, the growth step): whatever
/// fails, the records match ICM, every rule still hits, and the growth is given up or
/// goes on consistently.
#[test]
fn errors_while_a_table_grows_leave_everything_consistent() {
    for model in MODELS {
        let (mut rig, chain, mut t) = dmac_tables(model, 1);
        let mut rng = Rng(1234);
        let mut live: Vec<Live> = Vec::new();
        let mut failures = 0;
        for round in 0..60 {
            // Every other update goes through at once (so the growth moves on); the
            // others fail at each of their WQEs in turn until they go through.
            let (remove, inject) = (round % 4 == 3, round % 2 == 1);
            failures += update_through_errors(
                &mut rig, &mut t, &chain, &mut rng, &mut live, remove, inject,
            );
        }
        let s = t.stats();
        assert!(failures > 40, "{failures}");
        assert!(s.grow_failures > 0 && s.grows > 0, "{s:?}");
        assert!(t.counters.mirrored > 0, "{:?}", t.counters);
        assert_eq!((s.leaked_chunks, s.leaked_entries), (0, 0));
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// A rig and growing DMAC tables on it that migrate `step` slot groups per update.
fn dmac_tables(model: DeviceModel, step: u32) -> (Rig, BuilderChain, MatcherTables) {
    let mut rig = Rig::new(model);
    let chain = rig.chain(&dmac_mask());
    let cfg = TablesConfig {
        growth_step: step,
        ..rig.config(true)
    };
    let t = rig.tables_with(&chain, cfg);
    (rig, chain, t)
}

/// One insert of a new DMAC value, or the removal of `live[0]`; with `inject`, failing
/// at each of its WQEs in turn (a new ring after each failure) until it goes through.
/// After every attempt the records match ICM and every live rule hits. Returns the
/// failed attempts.
fn update_through_errors(
    rig: &mut Rig,
    t: &mut MatcherTables,
    chain: &BuilderChain,
    rng: &mut Rng,
    live: &mut Vec<Live>,
    remove: bool,
    inject: bool,
) -> u32 {
    let mut failures = 0;
    for nth in 0.. {
        if inject {
            rig.inject_error(nth);
        }
        let done = if remove {
            let r = live.swap_remove(0);
            match t.remove(&mut rig.ring, r.handle) {
                Ok(()) => true,
                Err(RemoveError {
                    rule: Some(handle), ..
                }) => {
                    live.push(Live { handle, ..r });
                    false
                }
                Err(e) => panic!("{e}"),
            }
        } else {
            let value = dmac(rng.next() >> 16);
            let tags = rig.tags(chain, &value);
            let last = rig.hit();
            match t.insert(&mut rig.ring, &tags, last) {
                Ok(handle) => {
                    live.push(Live {
                        handle,
                        value,
                        tag: None,
                    });
                    true
                }
                Err(HtblError::Send(_)) => false,
                Err(e) => panic!("{e}"),
            }
        };
        if rig.ring.failure().is_some() {
            failures += 1;
            rig.new_ring();
        } else {
            rig.be
                .sim()
                .with_queue(rig.ring.qpn(), |q| q.clear_injected_error())
                .unwrap();
        }
        check(rig, t);
        for r in live.iter() {
            assert_hits(rig, t, r);
        }
        if done {
            break;
        }
    }
    failures
}

/// The same while a table shrinks, four slots per update: 300 rules go in, then
/// removals (with an insert every fourth update) fail at each of their WQEs in turn,
/// every other one, until two rules are left, and a last shrink then finishes without
/// errors. Shrinks are given up and started again, and the records always match ICM.
#[test]
fn errors_while_a_table_shrinks_leave_everything_consistent() {
    for model in MODELS {
        let (mut rig, chain, mut t) = dmac_tables(model, 4);
        let mut rng = Rng(4321);
        let mut live: Vec<Live> = Vec::new();
        for _ in 0..300 {
            update_through_errors(&mut rig, &mut t, &chain, &mut rng, &mut live, false, false);
        }
        let grown = t.stats();
        let mut failures = 0;
        for round in 0.. {
            if live.len() <= 2 {
                break;
            }
            let (remove, inject) = (round % 4 != 3, round % 2 == 1);
            failures += update_through_errors(
                &mut rig, &mut t, &chain, &mut rng, &mut live, remove, inject,
            );
        }
        for round in 0..20 {
            let remove = round % 2 == 1;
            update_through_errors(&mut rig, &mut t, &chain, &mut rng, &mut live, remove, false);
        }
        let s = t.stats();
        assert!(failures > 100, "{failures}");
        assert!(
            s.shrinks > 0 && s.grow_failures > grown.grow_failures,
            "{s:?}"
        );
        assert!(
            s.table_entries < grown.table_entries,
            "{s:?} after {grown:?}"
        );
        assert_eq!((s.leaked_chunks, s.leaked_entries), (0, 0));
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

// --- presized tables (TablesConfig::initial_log) ----------------------------------------

/// About 2^10 rules expected: a 5-tuple matcher's level-1 table (under its one shared
/// level-0 STE) starts with 1024 entries, so 1000 rules go in without a growth, few of
/// them in collision entries, and every one hits. Past the hint the table grows from
/// its size as before.
#[test]
fn expected_rules_go_in_without_growth() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let cfg = rig.sized(true, 10);
        let mut t = rig.tables_with(&chain, cfg);
        // Level 0 hashes no byte (it matches part of one): its table keeps one entry.
        assert_eq!(table_sizes(&t), [(0, 1)]);
        let mut rng = Rng(0x5eed_0001 ^ model as u64);
        let mut live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1000);
        let s = t.stats();
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1024)]);
        assert_eq!(
            (s.grows, s.grow_failures, s.presize_fallbacks),
            (0, 0, 0),
            "{s:?}"
        );
        // 1000 tags in 1024 slots: about 1000 - 1024 (1 - e^(-1000/1024)) ≈ 360 collide.
        assert!(s.collision_entries < 400, "{s:?}");
        assert!(s.longest_chain <= 8, "{s:?}");
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for _ in 0..100 {
            assert_misses(&rig, &t, &five_tuple(&mut rng));
        }

        live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1000));
        let s = t.stats();
        assert!(s.grows >= 1, "{s:?}");
        assert_eq!(table_sizes(&t), [(0, 1), (1, 4096)]);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// Only the first table of the last level is presized: a VXLAN matcher's first rule
/// makes its level-1 and level-2 tables with one entry (they hold a prefix each) and
/// its level-3 table with 2^6; a second VNI's level-3 table starts with one entry, and
/// so does a level-3 table made after the first one went with its rules. The presized
/// table goes out at creation, in writes of up to the ring's `max_write`; the first
/// insert writes only its own STE into it.
#[test]
fn only_the_first_table_of_the_last_level_is_presized() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        // 1 KiB writes: 16 slots each.
        rig.new_ring_with(SendConfig {
            max_write: 1024,
            ..SendConfig::default()
        });
        let chain = rig.chain(&vxlan_mask());
        let cfg = rig.sized(true, 6);
        let writes = rig.record_writes();
        let mut t = rig.tables_with(&chain, cfg);
        // Level 0 hashes no byte. The end anchor, the start table and the presized
        // level-3 table in four 16-slot writes, then the root anchor.
        assert_eq!(table_sizes(&t), [(0, 1)]);
        let w = std::mem::take(&mut *writes.lock().unwrap());
        assert_eq!(w.len(), 7, "{w:?}");
        assert_eq!(w.iter().filter(|&&len| len == 1024).count(), 4, "{w:?}");
        let insert = |rig: &mut Rig, t: &mut MatcherTables, vni: u32, host: u32| {
            let value = vxlan(vni, 0x0a00_0000 | host);
            let tags = rig.tags(&chain, &value);
            let tag = vni << 8 | host;
            let last = rig.tagged(tag);
            let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
            Live {
                handle,
                value,
                tag: Some(tag),
            }
        };
        let mut live = vec![insert(&mut rig, &mut t, 100, 1)];
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1), (2, 1), (3, 64)]);
        // The level-3 STE into its slot of the prewritten table, the two one-entry
        // tables, then the link: one STE into the start table's slot.
        let w = std::mem::take(&mut *writes.lock().unwrap());
        assert_eq!(w, [STE_SIZE as u64; 4]);

        // A second VNI: its STE collides in the one-entry level-2 table, which grows
        // 4x; its level-3 table has one entry.
        live.push(insert(&mut rig, &mut t, 200, 1));
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1), (2, 4), (3, 1), (3, 64)]);
        // The first VNI's presized table takes more hosts.
        for host in 2..=20 {
            live.push(insert(&mut rig, &mut t, 100, host));
        }
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1), (2, 4), (3, 1), (3, 64)]);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        assert_misses(&rig, &t, &vxlan(100, 0x0a00_0099));
        assert_misses(&rig, &t, &vxlan(300, 0x0a00_0001));

        // VNI 100 goes, and its table; a new VNI's table has one entry.
        for r in std::mem::take(&mut live) {
            if r.tag.is_some_and(|tag| tag >> 8 == 100) {
                t.remove(&mut rig.ring, r.handle).unwrap();
            } else {
                live.push(r);
            }
        }
        live.push(insert(&mut rig, &mut t, 300, 1));
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1), (2, 4), (3, 1), (3, 1)]);
        assert_eq!(t.stats().presize_fallbacks, 0);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// A presized start table is written whole before anything points at it: every slot
/// misses to the end anchor. With growth off it keeps its size; with growth on it
/// grows from it.
#[test]
fn a_presized_start_table_is_written_whole_and_grows_from_its_size() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&dmac_mask());
        let cfg = rig.sized(true, 10);
        let t = rig.tables_with(&chain, cfg);
        assert_eq!(table_sizes(&t), [(0, 1024)]);
        assert!(matches!(
            t.start(),
            Connect::Hit {
                num_entries: 1024,
                ..
            }
        ));
        // Every slot holds the unused-slot STE.
        check(&rig, &t);
        let mut rng = Rng(0xfeed ^ model as u64);
        for _ in 0..64 {
            assert_misses(&rig, &t, &dmac(rng.next() >> 16));
        }
        drop(t);

        let mut last = None;
        for grow in [false, true] {
            let cfg = rig.sized(grow, 4);
            let mut t = rig.tables_with(&chain, cfg);
            let live: Vec<Live> = (0..100)
                .map(|i| {
                    let value = dmac(rng.next() >> 16);
                    let tags = rig.tags(&chain, &value);
                    let last = rig.tagged(i);
                    let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
                    Live {
                        handle,
                        value,
                        tag: Some(i),
                    }
                })
                .collect();
            let s = t.stats();
            if grow {
                assert!(s.grows >= 1, "{s:?}");
                assert!(s.table_entries >= 64, "{s:?}");
            } else {
                assert_eq!(table_sizes(&t), [(0, 16)]);
                assert_eq!(s.grows, 0);
                assert!(s.longest_chain > 2, "{s:?}");
            }
            check(&rig, &t);
            for r in &live {
                assert_hits(&rig, &t, r);
            }
            last = Some(t);
        }
        assert_no_leak_after_drop(rig, last.unwrap());
    }
}

/// ICM short of a presized table: the table starts with one entry instead (counted).
/// When not even that is to be had, the insert fails with a typed error and changes
/// nothing; once ICM is back it goes in, and the table grows from one entry.
#[test]
fn icm_exhaustion_when_presizing_changes_nothing() {
    for model in MODELS {
        let mut profile = Profile::new(model);
        // 64 KiB of steering ICM: 1024 STEs.
        profile.log_steering_sw_icm_size = 16;
        let mut rig = Rig::with_profile(profile);
        rig.root = Some(rig.pool.alloc(0).unwrap());
        // Take every STE left, then give two back: room for an end anchor and a
        // one-entry start table, not for a presized one.
        let mut held = Vec::new();
        while let Ok(c) = rig.pool.alloc(0) {
            held.push(c);
        }
        assert!(held.len() > 900, "{}", held.len());
        for c in held.drain(held.len() - 2..) {
            rig.pool.free(c).unwrap();
        }
        let dmacs = rig.chain(&dmac_mask());
        let cfg = rig.sized(true, 10);
        let mut t = rig.tables_with(&dmacs, cfg);
        assert_eq!(table_sizes(&t), [(0, 1)]);
        assert_eq!(t.stats().presize_fallbacks, 1);
        let value = dmac(0x0200_0000_0001);
        let tags = rig.tags(&dmacs, &value);
        let last = rig.tagged(1);
        let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
        let r = Live {
            handle,
            value,
            tag: Some(1),
        };
        check(&rig, &t);
        assert_hits(&rig, &t, &r);
        t.remove(&mut rig.ring, r.handle).unwrap();
        drop(t);

        // The same two entries hold a 5-tuple matcher's end anchor and start table; its
        // first rule needs a level-1 table, and there is no entry for one.
        let chain = rig.chain(&five_tuple_mask());
        let cfg = rig.sized(true, 10);
        let mut t = rig.tables_with(&chain, cfg);
        assert_eq!(t.stats().presize_fallbacks, 0);
        let mut rng = Rng(0xe7 ^ model as u64);
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        let (before, stats) = (rig.in_use(&t), t.stats());
        let last = rig.tagged(2);
        let err = t.insert(&mut rig.ring, &tags, last).unwrap_err();
        assert!(
            matches!(err, HtblError::Icm(IcmError::Exhausted { .. })),
            "{err}"
        );
        assert_eq!((rig.in_use(&t), t.stats()), (before, stats));
        assert_eq!(table_sizes(&t), [(0, 1)]);
        check(&rig, &t);
        assert_misses(&rig, &t, &value);

        // One entry back: the level-1 table starts with one entry.
        rig.pool.free(held.pop().unwrap()).unwrap();
        let last = rig.tagged(2);
        let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
        let mut live = vec![Live {
            handle,
            value,
            tag: Some(2),
        }];
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1)]);
        assert_eq!(t.stats().presize_fallbacks, 1);
        for c in held.drain(..) {
            rig.pool.free(c).unwrap();
        }
        live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 100));
        let s = t.stats();
        assert!(s.grows >= 2, "{s:?}");
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// An error CQE on each WQE of the insert that adopts the presized table written at
/// creation (its STE into the table, then the link): until the link lands nothing
/// changes (host state, ICM in use, every packet's verdict), and the next insert still
/// adopts the table.
#[test]
fn error_cqe_while_writing_a_presized_table_changes_nothing() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        // 16 KiB writes: the 1024-entry table in 4.
        let ring_cfg = SendConfig {
            max_write: 16 << 10,
            ..SendConfig::default()
        };
        rig.new_ring_with(ring_cfg.clone());
        let chain = rig.chain(&five_tuple_mask());
        let cfg = rig.sized(false, 10);
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(0xc9e ^ model as u64);
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        let mut nth = 0;
        let first = loop {
            let before = (rig.in_use(&t), t.stats());
            rig.inject_error(nth);
            let last = rig.tagged(7);
            let res = t.insert(&mut rig.ring, &tags, last);
            rig.new_ring_with(ring_cfg.clone());
            match res {
                Err(HtblError::Send(e)) => {
                    assert!(matches!(e, crate::send::SendError::WqeFailed { .. }), "{e}");
                    // Host bytes only: the prewritten table notes the slot the STE may
                    // have gone into.
                    let (used, stats) = (rig.in_use(&t), t.stats());
                    let grown = stats.host_bytes - before.1.host_bytes;
                    assert!(grown <= 64, "WQE {nth}: {grown}");
                    let stats = HtblStats {
                        host_bytes: before.1.host_bytes,
                        ..stats
                    };
                    assert_eq!((used, stats), before, "WQE {nth}");
                    assert_eq!(table_sizes(&t), [(0, 1)]);
                    assert_misses(&rig, &t, &value);
                    check(&rig, &t);
                }
                Ok(handle) => {
                    // The STE and the link, a WRITE and a READ each: the error hit the
                    // READ after the link.
                    assert_eq!(nth, 3, "{model:?}");
                    break Live {
                        handle,
                        value,
                        tag: Some(7),
                    };
                }
                Err(e) => panic!("WQE {nth}: {e}"),
            }
            nth += 1;
        };
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1024)]);
        let mut live = vec![first];
        live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 50));
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1024)]);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

mod update;

/// The presized level-1 table of a 5-tuple matcher is written at creation: the first
/// insert writes two STEs (its level-1 STE into the table, and the link), every rule
/// hits, and a matcher that never got a rule gives the table back when dropped. A first
/// insert whose link fails keeps the table for the next one, which writes the slot the
/// failed one may have left behind back to the unused-slot STE.
#[test]
fn the_presized_last_level_table_is_written_at_creation() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let cfg = rig.sized(true, 10);
        let before = rig.in_use_pool();
        let t = rig.tables_with(&chain, cfg);
        // The end anchor, the start table, the root anchor and the presized table.
        assert_eq!(rig.in_use_pool().0 - before.0, (3 + 1024) * STE_SIZE as u64);
        assert_eq!(table_sizes(&t), [(0, 1)]);
        assert_eq!(t.stats().table_entries, 1 + 1024);
        check(&rig, &t);
        // Never a rule: dropping it gives everything back.
        assert_no_leak_after_drop(rig, t);

        let mut rig = Rig::new(model);
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(0x9e3 ^ model as u64);
        let writes = rig.record_writes();
        // The level-1 STE's write lands, its READ fails: the slot holds a rule STE
        // nothing reaches.
        let failed = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &failed);
        rig.inject_error(1);
        let last = rig.tagged(1);
        let err = t.insert(&mut rig.ring, &tags, last).unwrap_err();
        assert!(matches!(err, HtblError::Send(_)), "{err}");
        rig.new_ring();
        let writes_after = rig.record_writes();
        assert_eq!(table_sizes(&t), [(0, 1)]);
        assert_eq!(t.stats().table_entries, 1 + 1024);
        check(&rig, &t);
        assert_misses(&rig, &t, &failed);
        drop(writes);

        let bytes = rig.ring.stats().bytes;
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        let last = rig.tagged(2);
        let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
        // The failed rule's slot back to unused (unless the new STE goes there), the
        // new STE, the link.
        let w = std::mem::take(&mut *writes_after.lock().unwrap());
        assert!(
            w.len() <= 3 && w.iter().all(|&len| len == STE_SIZE as u64),
            "{w:?}"
        );
        assert!(rig.ring.stats().bytes - bytes <= 3 * STE_SIZE as u64);
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1024)]);
        let s = t.stats();
        assert_eq!(
            (s.table_entries, s.presize_fallbacks),
            (1 + 1024, 0),
            "{s:?}"
        );
        check(&rig, &t);
        assert_misses(&rig, &t, &failed);
        let mut live = vec![Live {
            handle,
            value,
            tag: Some(2),
        }];
        live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 300));
        assert_eq!(table_sizes(&t), [(0, 1), (1, 1024)]);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// Inserts read ahead by a batch's first pass (`warm_head`, `warm_ste`, then
/// `insert_warmed`) land where plain inserts do, through shared prefixes, duplicates in
/// one group, and tables growing between a rule's first pass and its insert (the head
/// read ahead is stale by then; the hash is not).
#[test]
fn warmed_inserts_land_where_plain_ones_do() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    for mask in [five_tuple_mask(), vxlan_mask()] {
        let chain = rig.chain(&mask);
        let mut t = rig.tables(&chain, true);
        let mut rng = Rng(7);
        let values: Vec<MatchParam> = (0..1500)
            .map(|i| match chain.len() {
                2 => five_tuple(&mut rng),
                // Few VNIs: long runs of equal upper tags, and new prefixes.
                _ => vxlan(1 + (i / 100) as u32, rng.next() as u32),
            })
            .collect();
        let mut live = Vec::new();
        for group in values.chunks(64) {
            let tags: Vec<_> = group.iter().map(|v| rig.tags(&chain, v)).collect();
            let mut memo = WarmMemo::default();
            let warmed: Vec<Warmed> = tags.iter().map(|t_| t.warm_head(t_, &mut memo)).collect();
            for w in &warmed {
                t.warm_ste(w);
            }
            for ((value, tags), w) in group.iter().zip(&tags).zip(&warmed) {
                let last = rig.hit();
                let handle = t.insert_warmed(&mut rig.ring, tags, w, last).unwrap();
                // Again, in the same group: a duplicate.
                let last = rig.hit();
                let again = t.insert_warmed(&mut rig.ring, tags, w, last);
                assert!(matches!(again, Err(HtblError::Duplicate)), "{again:?}");
                live.push(Live {
                    handle,
                    value: value.clone(),
                    tag: None,
                });
            }
        }
        assert!(t.stats().grows > 0, "{:?}", t.stats());
        check(&rig, &t);
        for rule in &live {
            assert_hits(&rig, &t, rule);
        }
        for rule in live {
            t.remove(&mut rig.ring, rule.handle).unwrap();
        }
        rig.new_ring();
    }
}

/// Twofold growth: the same rules end in a table half the size fourfold growth makes
/// (2 000 5-tuple rules: 2^11 entries against 2^12), after more growths, with every rule
/// reachable and the records consistent; and removals still work after it.
#[test]
fn twofold_growth_keeps_tables_smaller() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    let chain = rig.chain(&five_tuple_mask());
    let mut grown = Vec::new();
    for growth in [Growth::Quadruple, Growth::Double] {
        let cfg = TablesConfig {
            growth,
            ..rig.config(true)
        };
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(0x5151);
        let live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 2000);
        check(&rig, &t);
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        let last = table_sizes(&t)
            .into_iter()
            .filter(|&(l, _)| l == 1)
            .map(|(_, e)| e);
        grown.push((last.max().unwrap(), t.stats().grows));
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        check(&rig, &t);
        rig.new_ring();
    }
    let [(four, four_grows), (two, two_grows)] = grown[..] else {
        unreachable!()
    };
    assert_eq!((four, two), (1 << 12, 1 << 11));
    assert!(two_grows > four_grows, "{grown:?}");
}

/// 2 000 5-tuple rules, then all but 100 removed: with `shrink` the level-1 table goes
/// from 2^12 entries to 2^10 (100 STEs are fewer than a sixteenth of 2^12, not of 2^10),
/// twofold growth's from 2^11 to 2^10, and the rest keep hitting; without it the table
/// keeps its size. Packets, records and ICM agree throughout.
#[test]
fn sparse_tables_shrink_by_the_growth_factor_only_when_asked() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    let chain = rig.chain(&five_tuple_mask());
    for (growth, shrink, peak, after) in [
        (Growth::Quadruple, true, 1 << 12, 1 << 10),
        (Growth::Double, true, 1 << 11, 1 << 10),
        (Growth::Quadruple, false, 1 << 12, 1 << 12),
    ] {
        let cfg = TablesConfig {
            growth,
            shrink,
            ..rig.config(true)
        };
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(0x5152);
        let mut live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 2000);
        let level1 = |t: &MatcherTables| {
            table_sizes(t)
                .into_iter()
                .filter(|&(l, _)| l == 1)
                .map(|(_, e)| e)
                .max()
        };
        assert_eq!(level1(&t), Some(peak), "{growth:?}");
        for r in live.drain(100..) {
            t.remove(&mut rig.ring, r.handle).unwrap();
            check(&rig, &t);
        }
        // Updates that finish the copy: a rule in and out again, until no table
        // migrates.
        while t.migration.is_some() {
            let extra = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1);
            for r in extra {
                t.remove(&mut rig.ring, r.handle).unwrap();
            }
        }
        check(&rig, &t);
        let s = t.stats();
        assert_eq!(level1(&t), Some(after), "{growth:?} shrink {shrink}: {s:?}");
        assert_eq!(s.shrinks > 0, shrink, "{s:?}");
        for r in &live {
            assert_hits(&rig, &t, r);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        rig.new_ring();
    }
}
