//! Walks over hand-built STE tables.

use super::*;
use crate::pipeline::action::{v1_id, Anchor, FieldWrite};
use std::cell::RefCell;
use std::collections::HashMap;
use ste_builder::builder::v1::lu;
use ste_builder::prm::{dr_match_spec as spec, ste_rx_steering_mult as rx};
use ste_builder::Section;

const DROP: u64 = 0x7ff0_0000;
const DEFAULT: u64 = 0x7ff0_0040;
const BASE: u64 = 0x10_0000_0000;

#[derive(Default)]
struct TestEnv {
    lines: HashMap<u64, [u8; STE_SIZE]>,
    counted: RefCell<Vec<(u32, u64)>>,
    lists: HashMap<u32, Vec<u8>>,
    patterns: HashMap<u32, Vec<u8>>,
    arguments: HashMap<u32, Vec<u8>>,
}

impl Environment for TestEnv {
    fn terminal(&self, addr: u64) -> Option<Terminal> {
        match addr {
            DROP => Some(Terminal::Drop),
            DEFAULT => Some(Terminal::Allow),
            _ => None,
        }
    }
    fn read_ste(&self, addr: u64) -> Result<[u8; STE_SIZE], EnvError> {
        self.lines
            .get(&addr)
            .copied()
            .ok_or(EnvError::NotBacked { addr })
    }
    fn count(&self, id: u32, bytes: u64) -> Result<(), EnvError> {
        self.counted.borrow_mut().push((id, bytes));
        Ok(())
    }
    fn modify_header_list(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        stored(&self.lists, index, num)
    }
    fn modify_header_pattern(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        stored(&self.patterns, index, num)
    }
    fn modify_header_argument(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        stored(&self.arguments, index, num)
    }
}

fn stored(map: &HashMap<u32, Vec<u8>>, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
    match map.get(&index) {
        Some(l) if l.len() == 8 * usize::from(num) => Ok(l.clone()),
        _ => Err(EnvError::NoSuch("modify-header memory")),
    }
}

/// What a v1 STE does.
struct V1Ste {
    lu_type: u16,
    mask: [u8; 16],
    tag: [u8; 16],
    miss: u64,
    hit: Option<(u64, u32)>,
    next_lu_type: u16,
    byte_mask: u16,
    actions: [u8; 8],
    counter: u32,
}

impl V1Ste {
    fn anchor_hit(next: u64, n: u32, next_lu_type: u16, byte_mask: u16) -> Self {
        V1Ste {
            lu_type: LU_TYPE_DONT_CARE,
            mask: [0; 16],
            tag: [0; 16],
            miss: DEFAULT,
            hit: Some((next, n)),
            next_lu_type,
            byte_mask,
            actions: [0; 8],
            counter: 0,
        }
    }

    fn always_miss(lu_type: u16, miss: u64) -> Self {
        let mut tag = [0; 16];
        tag[0] = 0xdc;
        V1Ste {
            lu_type,
            mask: [0; 16],
            tag,
            miss,
            hit: None,
            next_lu_type: LU_TYPE_DONT_CARE,
            byte_mask: 0,
            actions: [0; 8],
            counter: 0,
        }
    }

    fn line(&self) -> [u8; STE_SIZE] {
        let c = SteFormat::V1.ctrl();
        let mut l = [0u8; STE_SIZE];
        c.init(&mut l, self.lu_type, true, 1);
        c.set_miss_addr(&mut l, self.miss);
        match self.hit {
            Some((addr, n)) => c.set_hit_addr(&mut l, addr, n),
            None => c.set_hit_addr(&mut l, u64::MAX, 0),
        }
        c.set_next_lu_type(&mut l, self.next_lu_type);
        c.set_byte_mask(&mut l, self.byte_mask);
        ste_builder::bits::set(
            &mut l,
            ste_builder::prm::ste_match_bwc_v1::COUNTER_ID,
            self.counter.into(),
        );
        l[24..32].copy_from_slice(&self.actions);
        // In ICM a v1 STE has its mask before its tag.
        l[32..48].copy_from_slice(&self.mask);
        l[48..64].copy_from_slice(&self.tag);
        l
    }
}

fn udp_packet(dport: u64) -> Unedited {
    let mut p = MatchParam::default();
    p.set(Section::Outer, spec::IP_VERSION, 4);
    p.set(Section::Outer, spec::IP_PROTOCOL, 17);
    p.set(Section::Outer, spec::DST_IP_31_0, 0x0a00_0001);
    p.set(Section::Outer, spec::UDP_DPORT, dport);
    Unedited {
        fields: p,
        len: 100,
    }
}

/// Destination address, destination port and protocol of the 5-tuple key.
const FIVE_TUPLE_MASK: [u8; 16] = [
    0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0, 0xff,
];

fn key5(p: &Unedited) -> [u8; 16] {
    lookup_key(
        SteFormat::V1,
        lu::ETHL3_IPV4_5_TUPLE_O,
        &p.fields,
        &Caps::default(),
    )
    .unwrap()
}

fn masked(key: [u8; 16], mask: [u8; 16]) -> [u8; 16] {
    let mut t = [0u8; 16];
    for i in 0..16 {
        t[i] = key[i] & mask[i];
    }
    t
}

/// A root that hits a 4-entry 5-tuple table; an end anchor that misses to the
/// default. Rules for UDP ports 53 and 80 (the second with a flow tag and a counter)
/// are placed at their hash slots, or chained behind the first when they collide.
fn tables() -> (TestEnv, u64, u64) {
    let root = BASE;
    let end_anchor = BASE + 0x40;
    let table = BASE + 0x1000;
    let byte_mask = ste_builder::hash::byte_mask_of(&FIVE_TUPLE_MASK);
    let mut env = TestEnv::default();
    env.lines.insert(
        root,
        V1Ste::anchor_hit(table, 4, lu::ETHL3_IPV4_5_TUPLE_O, byte_mask).line(),
    );
    env.lines.insert(
        end_anchor,
        V1Ste::always_miss(LU_TYPE_DONT_CARE, DEFAULT).line(),
    );
    for i in 0..4 {
        env.lines.insert(
            table + 64 * i,
            V1Ste::always_miss(lu::ETHL3_IPV4_5_TUPLE_O, end_anchor).line(),
        );
    }
    let mut tag_and_count = [0u8; 8];
    tag_and_count[..4].copy_from_slice(&[v1_id::FLOW_TAG, 0, 0x12, 0x34]);
    let mut collision = BASE + 0x2000;
    for (dport, actions, counter, hit) in [(53, [0; 8], 0, DROP), (80, tag_and_count, 7, DEFAULT)] {
        let key = key5(&udp_packet(dport));
        let slot = hash_index(HtblType::Legacy, byte_mask, 4, &key) as u64;
        let mut ste = V1Ste {
            lu_type: lu::ETHL3_IPV4_5_TUPLE_O,
            mask: FIVE_TUPLE_MASK,
            tag: masked(key, FIVE_TUPLE_MASK),
            miss: end_anchor,
            hit: Some((hit, 1)),
            next_lu_type: LU_TYPE_DONT_CARE,
            byte_mask: 0,
            actions,
            counter,
        };
        let at = table + 64 * slot;
        let occupied = env.lines[&at][32..48] != [0; 16];
        if occupied {
            // Chain behind the slot's rule.
            let mut prev = env.lines[&at];
            SteFormat::V1.ctrl().set_miss_addr(&mut prev, collision);
            env.lines.insert(at, prev);
            ste.miss = end_anchor;
            env.lines.insert(collision, ste.line());
            collision += 64;
        } else {
            env.lines.insert(at, ste.line());
        }
    }
    (env, root, end_anchor)
}

fn cfg(caps: &Caps) -> WalkConfig<'_> {
    WalkConfig::new(SteFormat::V1, caps)
}

#[test]
fn hits_collect_actions_and_end_at_terminals() {
    let (env, root, end_anchor) = tables();
    let caps = Caps::default();
    let v = walk(&env, &cfg(&caps), root, &mut udp_packet(53));
    assert_eq!(v.final_addr(), Some(DROP));
    assert_eq!(v.terminal(), Some(Terminal::Drop));
    assert!(v.actions.is_empty());
    assert!(v.last_rule_hit().is_some());
    assert!(!v.missed_into(end_anchor));

    let v = walk(&env, &cfg(&caps), root, &mut udp_packet(80));
    assert_eq!(v.terminal(), Some(Terminal::Allow));
    assert_eq!(v.flow_tag(), Some(0x1234));
    assert_eq!(v.counters(), vec![7]);
    assert_eq!(*env.counted.borrow(), vec![(7, 100)]);
    // The root hop records the table it is in; the rule hop the 4-entry table.
    assert_eq!(v.trace[0].table.num_entries, 1);
    assert_eq!(v.trace.last().unwrap().table.num_entries, 4);
    assert_eq!(v.trace.last().unwrap().actions.len(), 2);
}

#[test]
fn a_miss_falls_through_the_end_anchor() {
    let (env, root, end_anchor) = tables();
    let caps = Caps::default();
    let v = walk(&env, &cfg(&caps), root, &mut udp_packet(443));
    assert_eq!(v.terminal(), Some(Terminal::Allow));
    assert!(v.missed_into(end_anchor));
    assert_eq!(v.last_rule_hit(), None);
    assert!(matches!(
        v.trace.last().unwrap().outcome,
        Outcome::Miss { next: DEFAULT }
    ));
}

#[test]
fn faults_are_reported_not_panicked() {
    let caps = Caps::default();
    // An STE that misses to itself.
    let mut env = TestEnv::default();
    env.lines
        .insert(BASE, V1Ste::always_miss(LU_TYPE_DONT_CARE, BASE).line());
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert_eq!(v.fate, Fate::Fault(WalkFault::HopLimit(DEFAULT_MAX_HOPS)));

    // A miss into memory nobody wrote.
    env.lines.insert(
        BASE,
        V1Ste::always_miss(LU_TYPE_DONT_CARE, BASE + 0x40).line(),
    );
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(
        v.fate,
        Fate::Fault(WalkFault::NotBacked { addr, .. }) if addr == BASE + 0x40
    ));

    // A lookup type the model does not know, with a mask that needs its key.
    let mut ste = V1Ste::anchor_hit(DROP, 1, LU_TYPE_DONT_CARE, 0);
    ste.lu_type = 0x0102;
    ste.mask[0] = 0xff;
    env.lines.insert(BASE, ste.line());
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(
        v.fate,
        Fate::Fault(WalkFault::Lookup {
            error: KeyError::UnsupportedLookupType {
                lu_type: 0x0102,
                ..
            },
            ..
        })
    ));

    // An entry that matches every packet but has no hit address.
    let mut ste = V1Ste::always_miss(LU_TYPE_DONT_CARE, DEFAULT);
    ste.tag = [0; 16];
    env.lines.insert(BASE, ste.line());
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(v.fate, Fate::Fault(WalkFault::Malformed { .. })));

    // An unknown action id.
    let mut ste = V1Ste::anchor_hit(DROP, 1, LU_TYPE_DONT_CARE, 0);
    ste.actions[0] = 0x3f;
    env.lines.insert(BASE, ste.line());
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert_eq!(
        v.fate,
        Fate::Fault(WalkFault::Action {
            addr: BASE,
            error: ActionError::Unknown(0x3f)
        })
    );

    // A definer-based match entry of a real definer.
    let mut line = V1Ste::anchor_hit(DROP, 1, LU_TYPE_DONT_CARE, 0).line();
    line[0] = 0x04;
    line[6] = 0x22;
    env.lines.insert(BASE, line);
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(
        v.fate,
        Fate::Fault(WalkFault::Lookup {
            error: KeyError::UnsupportedLookupType {
                lu_type: 0x0422,
                ..
            },
            ..
        })
    ));

    // A v1 entry format the model does not read.
    line[0] = 0x02;
    env.lines.insert(BASE, line);
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(
        v.fate,
        Fate::Fault(WalkFault::Ste {
            error: SteError::EntryFormat(2),
            ..
        })
    ));
}

#[test]
fn action_only_match_entries_and_modify_lists() {
    let caps = Caps::default();
    let mut env = TestEnv::default();
    let action_ste = BASE + 0x40;
    // The rule STE hits an action-only entry (a "don't care" match entry), which
    // applies a modify-header list and then goes to the drop address.
    env.lines
        .insert(BASE, V1Ste::anchor_hit(action_ste, 1, 0x040f, 0).line());
    let c = SteFormat::V1.ctrl();
    let mut l = [0u8; STE_SIZE];
    c.init(&mut l, 0x040f, true, 1);
    c.set_hit_addr(&mut l, DROP, 1);
    // Actions of a match entry start at byte 20: modify list 5 with 2 actions, then a
    // flow tag.
    l[20..24].copy_from_slice(&[v1_id::MODIFY_LIST, 2, 0, 5]);
    l[24..28].copy_from_slice(&[v1_id::FLOW_TAG, 0, 0, 9]);
    env.lines.insert(action_ste, l);
    let mut list = vec![0u8; 16];
    list[0] = v1_id::SET;
    list[1] = 0x12;
    list[4..8].copy_from_slice(&[0, 0, 0, 0x40]);
    list[8] = v1_id::ADD;
    env.lists.insert(5, list);
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert_eq!(v.terminal(), Some(Terminal::Drop));
    assert_eq!(v.actions.len(), 3);
    assert!(matches!(
        v.actions[0],
        Action::Set(FieldWrite {
            field: 0x12,
            data: 0x40,
            ..
        })
    ));
    assert!(matches!(v.actions[1], Action::Add(_)));
    assert_eq!(v.actions[2], Action::FlowTag(9));
    // No rule STE was hit: both STEs have empty masks.
    assert_eq!(v.last_rule_hit(), None);

    // Without the list in action memory, the walk reports it.
    env.lists.clear();
    let v = walk(&env, &cfg(&caps), BASE, &mut udp_packet(1));
    assert!(matches!(
        v.fate,
        Fate::Fault(WalkFault::ActionMemory { .. })
    ));
}

#[test]
fn v0_entries_keep_the_tag_before_the_mask() {
    let caps = Caps::default();
    let c = SteFormat::V0.ctrl();
    let pkt = udp_packet(53);
    let lu5 = ste_builder::builder::v0::lu::ETHL3_IPV4_5_TUPLE.rx;
    let key = lookup_key(SteFormat::V0, lu5, &pkt.fields, &caps).unwrap();
    let mut env = TestEnv::default();
    let table = BASE + 0x40;
    let mut root = [0u8; STE_SIZE];
    c.init(&mut root, LU_TYPE_DONT_CARE, true, 1);
    c.set_ctrl_always_hit_htbl(&mut root, 0, lu5, table, 1, 1);
    env.lines.insert(BASE, root);
    let mut rule = [0u8; STE_SIZE];
    c.init(&mut rule, lu5, true, 1);
    c.set_miss_addr(&mut rule, DEFAULT);
    c.set_hit_addr(&mut rule, DROP, 1);
    ste_builder::bits::set(&mut rule, rx::QP_LIST_POINTER, (1 << 31) | 0x77);
    let mask = [0xffu8; 16];
    rule[32..48].copy_from_slice(&key);
    rule[48..64].copy_from_slice(&mask);
    env.lines.insert(table, rule);
    let v = walk(
        &env,
        &WalkConfig::new(SteFormat::V0, &caps),
        BASE,
        &mut udp_packet(53),
    );
    assert_eq!(v.terminal(), Some(Terminal::Drop));
    assert_eq!(v.flow_tag(), Some(0x77));
    let v = walk(
        &env,
        &WalkConfig::new(SteFormat::V0, &caps),
        BASE,
        &mut udp_packet(54),
    );
    assert_eq!(v.terminal(), Some(Terminal::Allow));
    assert_eq!(v.flow_tag(), None);
}

mod encoded_by_ste_builder {
    //! Actions encoded by `ste_builder::action` (rdma-core's encoders), decoded by the
    //! walk: each action the rule was given must come out with its parameters.

    use super::*;
    use ste_builder::action::{
        set_actions_rx, set_actions_tx, ActionType as T, ActionsAttr, Aso, AsoKind, Vlans,
        INVALID_PATTERN_INDEX,
    };

    const RULE: u64 = BASE + 0x10_0000;
    const FINAL: u64 = DROP;

    /// A modify-header list whose every action sets field `tag`: recognisable in the
    /// decoded actions.
    fn list(format: SteFormat, num: u16, tag: u8) -> Vec<u8> {
        let mut l = vec![0u8; 8 * usize::from(num)];
        for a in l.chunks_exact_mut(8) {
            match format {
                // v0 hardware "set" opcode.
                SteFormat::V0 => a[0] = 2,
                _ => a[0] = v1_id::SET,
            }
            a[1] = tag;
        }
        l
    }

    /// Encodes `types` with `attr` into a rule STE plus added STEs, places them in ICM
    /// chained by hit addresses (as the driver links them), and walks a packet.
    fn walk_encoded(format: SteFormat, rx: bool, types: &[T], attr: &ActionsAttr) -> Verdict {
        let set: ste_builder::action::ActionTypeSet = types.iter().copied().collect();
        let c = format.ctrl();
        let mut stes = vec![0u8; STE_SIZE * 8];
        c.init(&mut stes[..STE_SIZE], LU_TYPE_DONT_CARE, rx, 1);
        c.set_miss_addr(&mut stes[..STE_SIZE], DEFAULT);
        let encode = if rx { set_actions_rx } else { set_actions_tx };
        let out = encode(format, &set, &mut stes, attr).unwrap();
        let mut env = TestEnv::default();
        for i in 0..=out.added_stes {
            let mut line = [0u8; STE_SIZE];
            line.copy_from_slice(&stes[i * STE_SIZE..(i + 1) * STE_SIZE]);
            let addr = RULE + 0x40 * i as u64;
            if i < out.added_stes {
                c.set_hit_addr(&mut line, addr + 0x40, 1);
            }
            c.prepare_for_postsend(&mut line, STE_SIZE);
            env.lines.insert(addr, line);
        }
        for (index, num) in [
            (attr.modify_index, attr.modify_actions),
            (attr.decap_index, attr.decap_actions),
        ] {
            env.lists.insert(index, list(format, num, index as u8));
        }
        if attr.modify_pat_idx != INVALID_PATTERN_INDEX {
            // The pattern holds the fields, the argument the data; the hardware ORs them.
            let mut pattern = list(format, attr.modify_actions, 0x33);
            let mut args = vec![0u8; pattern.len()];
            for (p, a) in pattern.chunks_exact_mut(8).zip(args.chunks_exact_mut(8)) {
                p[7] = 0;
                a[7] = 0x5a;
            }
            env.patterns.insert(attr.modify_pat_idx, pattern);
            env.arguments.insert(attr.modify_index, args);
        }
        let caps = Caps::default();
        let v = walk(
            &env,
            &WalkConfig::new(format, &caps),
            RULE,
            &mut udp_packet(1),
        );
        assert_eq!(
            v.final_addr(),
            Some(FINAL),
            "{format} {types:?}: {:?}",
            v.fate
        );
        v
    }

    fn attr() -> ActionsAttr {
        ActionsAttr {
            final_icm_addr: FINAL,
            flow_tag: 0xab_cdef,
            ctr_id: 0x4321,
            gvmi: 1,
            hit_gvmi: 1,
            modify_index: 0x21,
            modify_actions: 3,
            decap_index: 0x42,
            decap_actions: 2,
            reformat_id: 0x0bad_cafe,
            reformat_size: 50,
            vlans: Vlans {
                count_pop: 1,
                count_push: 2,
                headers: [0x8100_0123, 0x88a8_0456],
            },
            ..ActionsAttr::default()
        }
    }

    fn sets_of(v: &Verdict, field: u8) -> usize {
        v.actions
            .iter()
            .filter(|a| matches!(a, Action::Set(w) if w.field == field))
            .count()
    }

    fn removed_vlan_bytes(v: &Verdict) -> u16 {
        v.actions
            .iter()
            .map(|a| match a {
                Action::RemoveBytes { start, len, .. } if *start == Anchor::FIRST_VLAN => *len,
                _ => 0,
            })
            .sum()
    }

    fn pushed(v: &Verdict) -> Vec<u32> {
        v.actions
            .iter()
            .filter_map(|a| match a {
                Action::InsertInline {
                    offset: 12, data, ..
                } => Some(*data),
                _ => None,
            })
            .collect()
    }

    fn encap(v: &Verdict, a: &ActionsAttr) -> bool {
        v.actions.iter().any(|x| {
            *x == Action::InsertPointer {
                start: Anchor::START_OUTER,
                offset: 0,
                len: a.reformat_size as u16,
                pointer: a.reformat_id,
                encap: true,
            }
        })
    }

    #[test]
    fn rx_actions() {
        let a = attr();
        for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
            let v = walk_encoded(format, true, &[T::Tag, T::Ctr, T::Ft], &a);
            assert_eq!(v.flow_tags(), vec![a.flow_tag]);
            assert_eq!(v.counters(), vec![a.ctr_id]);

            let v = walk_encoded(format, true, &[T::TnlL2ToL2, T::Tag, T::Ft], &a);
            assert!(v.actions.iter().any(|x| matches!(
                x,
                Action::RemoveHeaders {
                    end: Anchor::INNER_MAC,
                    decap: true,
                    ..
                }
            )));
            assert_eq!(v.flow_tags(), vec![a.flow_tag]);

            // L3 decapsulation: its rewrite list rebuilds the L2 header.
            let v = walk_encoded(format, true, &[T::TnlL3ToL2, T::Tag, T::Ft], &a);
            assert_eq!(
                sets_of(&v, a.decap_index as u8),
                usize::from(a.decap_actions)
            );
            assert_eq!(
                v.actions.contains(&Action::DecapL3 { with_vlan: false }),
                format == SteFormat::V0
            );

            let v = walk_encoded(format, true, &[T::PopVlan, T::ModifyHdr, T::Tag, T::Ft], &a);
            assert_eq!(removed_vlan_bytes(&v), 4);
            assert_eq!(
                sets_of(&v, a.modify_index as u8),
                usize::from(a.modify_actions)
            );
            assert_eq!(v.flow_tags(), vec![a.flow_tag]);
        }
        for format in [SteFormat::V1, SteFormat::V2] {
            let v = walk_encoded(format, true, &[T::PushVlan, T::Ft], &a);
            assert_eq!(pushed(&v), a.vlans.headers.to_vec());

            let aso = Aso {
                object_id: 0x100,
                offset: 513,
                dest_reg_id: 3,
                domain_gvmi: 1,
                kind: AsoKind::FirstHit { set: true },
            };
            let v = walk_encoded(
                format,
                true,
                &[T::AsoFirstHit, T::Ft],
                &ActionsAttr {
                    aso: Some(aso),
                    ..a
                },
            );
            assert!(v.actions.iter().any(|x| matches!(
                x,
                Action::Aso {
                    context: 0x101,
                    context_type: 4,
                    dest_reg_pair: 1,
                    ..
                }
            )));

            // An accelerated modify header: pattern ORed with its argument.
            let accel = ActionsAttr {
                modify_pat_idx: 0x77,
                ..a
            };
            let v = walk_encoded(format, true, &[T::ModifyHdr, T::Ft], &accel);
            let merged = v
                .actions
                .iter()
                .filter(|x| matches!(x, Action::Set(w) if w.field == 0x33 && w.data & 0xff == 0x5a))
                .count();
            assert_eq!(merged, usize::from(a.modify_actions));
        }
    }

    #[test]
    fn tx_actions() {
        let a = attr();
        for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
            let v = walk_encoded(
                format,
                false,
                &[T::ModifyHdr, T::PushVlan, T::L2ToTnlL2, T::Ctr, T::Vport],
                &a,
            );
            assert_eq!(
                sets_of(&v, a.modify_index as u8),
                usize::from(a.modify_actions)
            );
            assert_eq!(pushed(&v), a.vlans.headers.to_vec());
            assert!(encap(&v, &a));
            assert_eq!(v.counters(), vec![a.ctr_id]);
            assert!(v.flow_tags().is_empty());

            let v = walk_encoded(format, false, &[T::L2ToTnlL3, T::Vport], &a);
            assert!(encap(&v, &a));
            assert!(v.actions.iter().any(|x| matches!(
                x,
                Action::RemoveHeaders {
                    end: Anchor::IPV6_IPV4,
                    decap: false,
                    ..
                }
            )));
        }
        for format in [SteFormat::V1, SteFormat::V2] {
            let v = walk_encoded(format, false, &[T::PopVlan, T::Vport], &a);
            assert_eq!(removed_vlan_bytes(&v), 4);
        }
    }
}
