//! Installed rules changed in place: new actions ([`MatcherTables::update_actions`]) and
//! identical duplicates sharing one rule ([`TablesConfig::share_identical`]), with packet
//! walks on v0/v1/v2, per-WQE probes, injected error CQEs, timeouts and growth.

use super::*;

/// Hops after the rule's last match STE: its action-only STEs.
fn action_hops(v: &Verdict) -> usize {
    let rule = v
        .trace
        .iter()
        .rposition(|h| h.masked && matches!(h.outcome, Outcome::Hit { .. }));
    rule.map_or(usize::MAX, |i| v.trace.len() - 1 - i)
}

/// A last STE that drops with flow tag `tag` after `k` always-hit action STEs of its own
/// (beyond those the encoder needs for the tag and the drop, if any).
fn tagged_after(rig: &Rig, tag: u32, k: usize) -> impl LastSte + Clone {
    tagged_after_to(rig, tag, k, rig.drop_addr)
}

/// The same, its last action STE hitting `to` (only with `k` > 0).
fn tagged_after_to(rig: &Rig, tag: u32, k: usize, to: u64) -> impl LastSte + Clone {
    let (gvmi, drop_addr) = (rig.caps.gvmi, rig.drop_addr);
    let attr = ActionsAttr {
        final_icm_addr: drop_addr,
        flow_tag: tag,
        gvmi,
        hit_gvmi: gvmi,
        ..ActionsAttr::default()
    };
    let set: ActionTypeSet = [ActionType::Tag, ActionType::Drop].into_iter().collect();
    move |format: SteFormat, stes: &mut [u8]| {
        let a = set_actions_rx(format, &set, stes, &attr)?.added_stes;
        let ctrl = format.ctrl();
        for j in a + 1..=a + k {
            ctrl.init(
                &mut stes[j * STE_SIZE..(j + 1) * STE_SIZE],
                LU_TYPE_DONT_CARE,
                true,
                gvmi,
            );
        }
        if k > 0 {
            let last = &mut stes[(a + k) * STE_SIZE..(a + k + 1) * STE_SIZE];
            ctrl.set_hit_addr(last, to, 1);
        }
        Ok::<usize, ActionError>(a + k)
    }
}

/// The action STEs the encoder itself adds for a flow tag and a drop.
fn encoder_stes(rig: &Rig) -> usize {
    let mut stes = [0u8; STE_SIZE * (1 + MAX_ACTION_STES)];
    tagged_after(rig, 1, 0).fill(rig.format, &mut stes).unwrap()
}

/// `value`'s packet hits the rule `handle` with flow tag `tag` after `hops` action
/// STEs, and ends at the drop address.
fn assert_sees(
    rig: &Rig,
    t: &MatcherTables,
    handle: &RuleHandle,
    value: &MatchParam,
    tag: Option<u32>,
    hops: usize,
) {
    let v = rig.walk(value);
    assert_eq!(v.last_rule_hit(), t.rule_addr(handle), "{:#?}", v.trace);
    assert_eq!(v.flow_tag(), tag, "{:#?}", v.trace);
    assert_eq!(action_hops(&v), hops, "{:#?}", v.trace);
    assert_eq!(v.final_addr(), Some(rig.drop_addr));
    assert!(!v.missed_into(t.end_anchor()));
}

/// The last STE of a handle (tests look at the records).
fn ste(h: &RuleHandle) -> u32 {
    h.ste
}

// --- update_actions -------------------------------------------------------------------

/// A rule's flow tag changes, action STEs come and go, a rule that only dropped gets a
/// tag and back; every other rule keeps its actions, and the action STEs given up go
/// back to the slab. Refused actions and foreign handles change nothing.
#[test]
fn update_actions_changes_what_packets_see() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let mut t = rig.tables(&chain, true);
        let mut rng = Rng(0x0bad_cafe ^ model as u64);
        let live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 40);
        let a = encoder_stes(&rig);
        let base = rig.in_use(&t);
        let (r, others) = live.split_first().unwrap();
        assert_eq!(r.tag, Some(0x1000));

        // Tag A to tag B, then through 2, 1 and 0 action STEs of its own.
        for (tag, k) in [(0xb0, 0), (0xc0, 2), (0xd0, 1), (0xe0, 0)] {
            let blocks = t.stats().ctrl_blocks;
            let last = tagged_after(&rig, tag, k);
            t.update_actions(&mut rig.ring, &r.handle, last).unwrap();
            assert_sees(&rig, &t, &r.handle, &r.value, Some(tag), a + k);
            let s = t.stats();
            assert_eq!(s.action_stes, (a + k) as u64, "{s:?}");
            // One block per tag: the old one went with the new one's coming.
            assert_eq!(s.ctrl_blocks, blocks, "{s:?}");
            assert_eq!(rig.in_use(&t).1, base.1 + (a + k) as u64);
            assert_eq!(s.rules, 40);
            check(&rig, &t);
        }
        // To a rule that only drops (its block is the one the untagged rules share),
        // and an untagged rule to a tagged one.
        let hit = rig.hit();
        t.update_actions(&mut rig.ring, &r.handle, hit).unwrap();
        assert_sees(&rig, &t, &r.handle, &r.value, None, 0);
        let u = &others[0];
        assert_eq!(u.tag, None);
        let last = tagged_after(&rig, 0x77, 1);
        t.update_actions(&mut rig.ring, &u.handle, last).unwrap();
        assert_sees(&rig, &t, &u.handle, &u.value, Some(0x77), a + 1);
        for o in &others[1..] {
            assert_hits(&rig, &t, o);
        }
        check(&rig, &t);

        // Refusals change nothing: too many action STEs, a touched tag, the encoder's
        // own error, another instance's handle.
        let before = (rig.in_use(&t), t.stats());
        let too_many = |_: SteFormat, _: &mut [u8]| Ok::<_, ActionError>(MAX_ACTION_STES + 1);
        assert!(matches!(
            t.update_actions(&mut rig.ring, &u.handle, too_many),
            Err(HtblError::BadActionStes(_))
        ));
        let touches = |_: SteFormat, stes: &mut [u8]| {
            stes[40] ^= 1;
            Ok::<_, ActionError>(0)
        };
        assert!(matches!(
            t.update_actions(&mut rig.ring, &u.handle, touches),
            Err(HtblError::BadActionStes(_))
        ));
        let refused =
            |_: SteFormat, _: &mut [u8]| Err::<usize, _>(ActionError::TooManyVlans { count: 3 });
        assert!(matches!(
            t.update_actions(&mut rig.ring, &u.handle, refused),
            Err(HtblError::Actions(_))
        ));
        let l2 = rig.chain(&dmac_mask());
        let end = Connect::Miss {
            miss_addr: rig.drop_addr,
        };
        let cfg = rig.config(true);
        let mut other = MatcherTables::new(rig.pool.clone(), &l2, cfg, end, &mut rig.ring).unwrap();
        let tags = rig.tags(&l2, &dmac(0x0200_0000_0001));
        let hit = rig.hit();
        let foreign = other.insert(&mut rig.ring, &tags, hit).unwrap();
        assert!(matches!(
            t.update_actions(&mut rig.ring, &foreign, hit),
            Err(HtblError::ForeignHandle)
        ));
        other.remove(&mut rig.ring, foreign).unwrap();
        drop(other);
        assert_eq!((rig.in_use(&t), t.stats()), before);
        assert_sees(&rig, &t, &u.handle, &u.value, Some(0x77), a + 1);

        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_eq!(t.stats().action_stes, 0);
        assert_no_leak_after_drop(rig, t);
    }
}

/// An update is the new action STEs, then one write: an error CQE on any WQE before that
/// write's READ changes nothing (host state, ICM in use, what the packet sees); on the
/// READ, the update stands. Adding action STEs (3 writes, 6 WQEs) and dropping them all
/// (1 write, 2 WQEs).
#[test]
fn error_cqe_on_each_wqe_of_an_update_changes_nothing() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let mut t = rig.tables(&chain, false);
        let mut rng = Rng(17);
        let live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 6);
        let a = encoder_stes(&rig);
        let r = &live[2];
        let last = tagged_after(&rig, 0x11, 1);
        t.update_actions(&mut rig.ring, &r.handle, last).unwrap();
        for (tag, k, wqes) in [(0x22, 2, 6 + 2 * a as u64), (0x33, 0, 2)] {
            let old = t.stats().action_stes as usize;
            let old_tag = if k == 2 { 0x11 } else { 0x22 };
            let mut nth = 0;
            loop {
                let before = (rig.in_use(&t), t.stats());
                rig.inject_error(nth);
                let last = tagged_after(&rig, tag, k);
                let res = t.update_actions(&mut rig.ring, &r.handle, last);
                rig.new_ring();
                match res {
                    Err(HtblError::Send(e)) => {
                        assert!(matches!(e, crate::send::SendError::WqeFailed { .. }), "{e}");
                        assert_eq!((rig.in_use(&t), t.stats()), before, "WQE {nth}");
                        assert_sees(&rig, &t, &r.handle, &r.value, Some(old_tag), old);
                        check(&rig, &t);
                    }
                    Ok(()) => {
                        assert_eq!(nth + 1, wqes, "{model:?}");
                        break;
                    }
                    Err(e) => panic!("WQE {nth}: {e}"),
                }
                for o in live.iter().filter(|o| o.handle != r.handle) {
                    assert_hits(&rig, &t, o);
                }
                nth += 1;
            }
            assert_sees(&rig, &t, &r.handle, &r.value, Some(tag), a + k);
            assert_eq!(t.stats().action_stes, (a + k) as u64);
            check(&rig, &t);
        }
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// While rules are inserted, removed, updated and tables grow (one old slot copied per
/// update, so updates land in slots already copied and change both tables), every
/// packet sees, after every WQE, either the old or the new actions of its rule (the flow
/// tag and the number of action STEs that go with it), never a miss; packets of no rule
/// keep missing.
#[test]
fn updates_are_atomic_at_every_wqe() {
    for model in MODELS {
        for step in [DEFAULT_GROWTH_STEP, 1] {
            updates_atomic_at_every_wqe(model, step);
        }
    }
}

fn updates_atomic_at_every_wqe(model: DeviceModel, step: u32) {
    let mut rig = Rig::new(model);
    let chain = rig.chain(&dmac_mask());
    let cfg = TablesConfig {
        growth_step: step,
        ..rig.config(true)
    };
    let mut t = rig.tables_with(&chain, cfg);
    let a = encoder_stes(&rig);
    let mut rng = Rng(0x5151 ^ model as u64);
    let misses: Vec<MatchParam> = (0..3).map(|_| dmac(rng.next() >> 16)).collect();
    let (root, end, drop_addr) = (rig.root_addr(), t.end_anchor(), rig.drop_addr);
    // Probes: a packet and what it may see (flow tag, action STEs).
    type Probes = Arc<Mutex<Vec<(MatchParam, Vec<(u32, usize)>)>>>;
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
        for (value, may) in p.lock().unwrap().iter() {
            let v = walk_from(&be, root, value);
            *c.lock().unwrap() += 1;
            let seen = (v.flow_tag().unwrap_or(u32::MAX), action_hops(&v));
            if !may.contains(&seen) || v.missed_into(end) || v.final_addr() != Some(drop_addr) {
                f.lock()
                    .unwrap()
                    .push(format!("{e:?}: saw {seen:?}, may {may:?}: {:#?}", v.trace));
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
    // Each live rule: handle, value, (flow tag, action STEs).
    let mut live: Vec<(RuleHandle, MatchParam, (u32, usize))> = Vec::new();
    let before = t.counters;
    // Of every six updates three insert, two change actions, one removes.
    for round in 0..150u32 {
        let op = match round % 6 {
            _ if live.len() < 4 => 0,
            0..=2 => 0,
            3 => 1,
            4 => 2,
            _ => 3,
        };
        let victim = (op != 0).then(|| rng.below(live.len() as u64) as usize);
        let next = (0x1_0000 + round, rng.below(4) as usize);
        *probes.lock().unwrap() = live
            .iter()
            .enumerate()
            .filter(|(i, _)| op != 3 || Some(*i) != victim)
            .map(|(i, (_, value, now))| {
                let mut may = vec![(now.0, a + now.1)];
                if Some(i) == victim {
                    may.push((next.0, a + next.1));
                }
                (value.clone(), may)
            })
            .collect();
        check(&rig, &t);
        match (op, victim) {
            (3, Some(i)) => {
                let (handle, ..) = live.swap_remove(i);
                t.remove(&mut rig.ring, handle).unwrap();
            }
            (1 | 2, Some(i)) => {
                let last = tagged_after(&rig, next.0, next.1);
                t.update_actions(&mut rig.ring, &live[i].0, last).unwrap();
                live[i].2 = next;
            }
            _ => {
                let value = dmac(rng.next() >> 16);
                let tags = rig.tags(&chain, &value);
                let last = tagged_after(&rig, next.0, next.1);
                let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
                live.push((handle, value, next));
            }
        }
    }
    rig.be
        .sim()
        .with_queue(rig.ring.qpn(), |q| q.set_wqe_hook(None))
        .unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{model:?} step {step}: {}",
        failures[0]
    );
    let s = t.stats();
    assert!(s.grows >= 1 && s.collision_entries > 0, "{s:?}");
    assert_eq!(s.grow_failures, 0);
    if step == 1 {
        let mirrored = t.counters.updates_mirrored - before.updates_mirrored;
        assert!(mirrored > 0, "{:?}", t.counters);
    }
    assert!(*checked.lock().unwrap() > 1000);
    drop(failures);
    check(&rig, &t);
    for (handle, value, (tag, k)) in &live {
        assert_sees(&rig, &t, handle, value, Some(*tag), a + k);
    }
    for (handle, ..) in live {
        t.remove(&mut rig.ring, handle).unwrap();
    }
    assert_no_leak_after_drop(rig, t);
}

/// While a table grows, an update of a rule already in the copy rewrites it there too:
/// the copy then switches in with the new actions. An error CQE on the copy's write gives
/// the growth up and leaves the rule as it was.
#[test]
fn updates_during_growth_change_the_growing_copy() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let cfg = TablesConfig {
            growth_step: 1,
            ..rig.config(true)
        };
        let mut t = rig.tables_with(&chain, cfg);
        let a = encoder_stes(&rig);
        let mut rng = Rng(0x600d);
        let mut live = Vec::new();
        // Until the level-1 table is being copied with a rule in a copied slot.
        let copied = loop {
            live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1));
            if !t.copying() {
                continue;
            }
            if let Some(i) = live
                .iter()
                .position(|r| t.mirror_update(ste(&r.handle)).is_some())
            {
                break i;
            }
        };
        let grows = t.stats().grows;
        let r = live.remove(copied);

        // An error on the copy's write (the first WQE: no action STEs): the growth is
        // given up, the rule keeps its actions.
        let failures = t.stats().grow_failures;
        rig.inject_error(0);
        let last = tagged_after(&rig, 0xdead, 0);
        let err = t
            .update_actions(&mut rig.ring, &r.handle, last)
            .unwrap_err();
        rig.new_ring();
        assert!(matches!(err, HtblError::Send(_)), "{err}");
        assert_hits(&rig, &t, &r);
        assert!(!t.copying());
        assert_eq!(t.stats().grow_failures, failures + 1);
        check(&rig, &t);

        // Once more, without an error.
        let r = loop {
            if t.copying() && t.mirror_update(ste(&r.handle)).is_some() {
                break r;
            }
            live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1));
        };
        let mirrored = t.counters.updates_mirrored;
        let last = tagged_after(&rig, 0xbeef, 2);
        t.update_actions(&mut rig.ring, &r.handle, last).unwrap();
        assert_eq!(t.counters.updates_mirrored, mirrored + 1);
        // The copy holds the new image (checked against ICM).
        check(&rig, &t);
        while t.copying() {
            live.extend(insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 1));
        }
        assert!(t.stats().grows > grows);
        check(&rig, &t);
        assert_sees(&rig, &t, &r.handle, &r.value, Some(0xbeef), a + 2);
        for o in &live {
            assert_hits(&rig, &t, o);
        }
        t.remove(&mut rig.ring, r.handle).unwrap();
        for o in live {
            t.remove(&mut rig.ring, o.handle).unwrap();
        }
        assert_no_leak_after_drop(rig, t);
    }
}

/// A timeout after the replacing write was posted: the new actions are assumed in place
/// (they are, once the device completes), the old action STEs are kept out of use.
#[test]
fn an_unconfirmed_update_is_assumed_to_have_landed() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    rig.new_ring_with(SendConfig {
        timeout: std::time::Duration::from_millis(20),
        ..SendConfig::default()
    });
    let chain = rig.chain(&five_tuple_mask());
    let mut t = rig.tables(&chain, false);
    let a = encoder_stes(&rig);
    let mut rng = Rng(23);
    let value = five_tuple(&mut rng);
    let tags = rig.tags(&chain, &value);
    let last = tagged_after(&rig, 1, 2);
    let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
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
    let last = tagged_after(&rig, 2, 1);
    let err = t.update_actions(&mut rig.ring, &handle, last).unwrap_err();
    let HtblError::UpdateUnconfirmed(source) = err else {
        panic!("{err}");
    };
    assert!(
        matches!(source, crate::send::SendError::Timeout { .. }),
        "{source}"
    );
    hold(&rig, false);
    rig.ring.flush().unwrap();
    assert_sees(&rig, &t, &handle, &value, Some(2), a + 1);
    let s = t.stats();
    assert_eq!(s.leaked_entries, 2 + a as u64, "{s:?}");
    assert_eq!(s.action_stes, 1 + a as u64, "{s:?}");
    check(&rig, &t);
    t.remove(&mut rig.ring, handle).unwrap();
    assert_no_leak_after_drop(rig, t);
}

// --- shared identical duplicates ------------------------------------------------------

fn sharing(rig: &Rig, grow: bool) -> TablesConfig {
    TablesConfig {
        share_identical: true,
        ..rig.config(grow)
    }
}

/// With `share_identical`, a duplicate whose actions are the installed rule's byte for
/// byte (action STEs included) gets a second handle to the same STE and writes nothing;
/// one that differs in anything is refused. Removing a handle while others remain
/// writes nothing and the rule keeps hitting; the last one unlinks it. A shared rule's
/// actions cannot change for one handle.
#[test]
fn identical_duplicates_share_one_rule() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&five_tuple_mask());
        let cfg = sharing(&rig, true);
        let mut t = rig.tables_with(&chain, cfg);
        let a = encoder_stes(&rig);
        let mut rng = Rng(0x5ea ^ model as u64);
        let live = insert_five_tuples(&mut rig, &mut t, &chain, &mut rng, 30);
        // A rule with action STEs of its own.
        let value = five_tuple(&mut rng);
        let tags = rig.tags(&chain, &value);
        let with_stes = tagged_after(&rig, 0x55, 2);
        let x = t.insert(&mut rig.ring, &tags, with_stes.clone()).unwrap();
        let x_tags = tags;
        check(&rig, &t);

        let writes = rig.record_writes();
        let before = (rig.in_use(&t), t.stats());
        // Tagged rule 0 twice more, untagged rule 1 and the rule with action STEs once.
        let tags0 = rig.tags(&chain, &live[0].value);
        let tags1 = rig.tags(&chain, &live[1].value);
        let mut shared0 = Vec::new();
        for _ in 0..2 {
            let last = rig.tagged(0x1000);
            let h = t.insert(&mut rig.ring, &tags0, last).unwrap();
            assert_eq!(h, live[0].handle);
            shared0.push(h);
        }
        let hit = rig.hit();
        let shared1 = t.insert(&mut rig.ring, &tags1, hit).unwrap();
        let shared_x = t.insert(&mut rig.ring, &x_tags, with_stes.clone()).unwrap();
        assert_eq!(t.rule_addr(&shared_x), t.rule_addr(&x));
        assert!(writes.lock().unwrap().is_empty(), "sharing writes nothing");
        let s = t.stats();
        assert_eq!(
            (s.rules, s.shared_handles),
            (before.1.rules + 4, 4),
            "{s:?}"
        );
        assert_eq!(
            (s.stes, s.action_stes, s.ctrl_blocks),
            (before.1.stes, before.1.action_stes, before.1.ctrl_blocks)
        );
        assert_eq!(rig.in_use(&t), before.0);
        check(&rig, &t);

        // Duplicates that differ: another flow tag, no tag, one action STE fewer, and
        // the same control block whose last action STE hits elsewhere.
        let before = (rig.in_use(&t), t.stats());
        type Insert<'a> =
            Box<dyn Fn(&mut Rig, &mut MatcherTables) -> Result<RuleHandle, HtblError> + 'a>;
        let differing: Vec<Insert<'_>> = vec![
            Box::new(|rig, t| {
                let last = rig.tagged(0x1001);
                t.insert(&mut rig.ring, &tags0, last)
            }),
            Box::new(|rig, t| {
                let hit = rig.hit();
                t.insert(&mut rig.ring, &tags0, hit)
            }),
            Box::new(|rig, t| {
                let last = rig.tagged(0x1000);
                t.insert(&mut rig.ring, &tags1, last)
            }),
            Box::new(|rig, t| {
                let last = tagged_after(rig, 0x55, 1);
                t.insert(&mut rig.ring, &x_tags, last)
            }),
            Box::new(|rig, t| {
                let last = tagged_after_to(rig, 0x55, 2, rig.root_addr());
                t.insert(&mut rig.ring, &x_tags, last)
            }),
        ];
        for (i, insert) in differing.iter().enumerate() {
            let res = insert(&mut rig, &mut t);
            assert!(matches!(res, Err(HtblError::Duplicate)), "{i}: {res:?}");
        }
        assert_eq!((rig.in_use(&t), t.stats()), before);
        assert!(writes.lock().unwrap().is_empty());

        // A shared rule's actions stay.
        let err = t
            .update_actions(&mut rig.ring, &live[0].handle, hit)
            .unwrap_err();
        assert!(matches!(err, HtblError::Shared { handles: 3 }), "{err}");
        assert_eq!((rig.in_use(&t), t.stats()), before);

        // Handles go one by one; the rule hits until the last is gone.
        let mut handles0 = shared0;
        let mut live = live;
        let r0 = live.remove(0);
        handles0.push(r0.handle);
        while handles0.len() > 1 {
            t.remove(&mut rig.ring, handles0.pop().unwrap()).unwrap();
            assert!(
                writes.lock().unwrap().is_empty(),
                "a shared handle's removal"
            );
            let h = &handles0[0];
            assert_sees(&rig, &t, h, &r0.value, Some(0x1000), a);
            check(&rig, &t);
        }
        t.remove(&mut rig.ring, handles0.pop().unwrap()).unwrap();
        assert_eq!(
            writes.lock().unwrap().len(),
            1,
            "the last handle unlinks the rule"
        );
        assert_misses(&rig, &t, &r0.value);
        t.remove(&mut rig.ring, shared1).unwrap();
        assert_hits(&rig, &t, &live[0]);
        t.remove(&mut rig.ring, shared_x).unwrap();
        assert_sees(&rig, &t, &x, &value, Some(0x55), a + 2);
        let s = t.stats();
        assert_eq!(
            (s.rules, s.shared_handles),
            (before.1.rules - 5, 0),
            "{s:?}"
        );
        check(&rig, &t);

        // Alone again, the rule's actions change (its kept action STE images with
        // them), and an identical duplicate of the new actions shares it.
        let last = tagged_after(&rig, 0x66, 3);
        t.update_actions(&mut rig.ring, &x, last).unwrap();
        check(&rig, &t);
        assert!(matches!(
            t.insert(&mut rig.ring, &x_tags, with_stes),
            Err(HtblError::Duplicate)
        ));
        let last = tagged_after(&rig, 0x66, 3);
        let x2 = t.insert(&mut rig.ring, &x_tags, last).unwrap();
        assert_sees(&rig, &t, &x2, &value, Some(0x66), a + 3);
        t.remove(&mut rig.ring, x).unwrap();
        assert_sees(&rig, &t, &x2, &value, Some(0x66), a + 3);
        t.remove(&mut rig.ring, x2).unwrap();
        assert_misses(&rig, &t, &value);
        for r in live {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        assert_eq!(t.stats().action_stes, 0);
        assert_no_leak_after_drop(rig, t);
    }
}

/// Shared rules in one miss chain (a one-entry table that may not grow): the chain's
/// head, a middle member and its neighbours are removed around them; a shared rule that
/// moves into the slot keeps every handle. Then in a growing table: rules shared and
/// unshared while it is copied and switched stay reachable through each handle.
#[test]
fn shared_rules_live_through_neighbour_removal_and_growth() {
    for model in MODELS {
        let mut rig = Rig::new(model);
        let chain = rig.chain(&dmac_mask());
        let cfg = sharing(&rig, false);
        let mut t = rig.tables_with(&chain, cfg);
        let mut chain_rules: Vec<Live> = (0..8u64)
            .map(|i| {
                let value = dmac(0x0200_0000_0000 + i * 0x1_0001);
                let tags = rig.tags(&chain, &value);
                let last = rig.tagged(i as u32);
                let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
                Live {
                    handle,
                    value,
                    tag: Some(i as u32),
                }
            })
            .collect();
        assert_eq!(t.stats().longest_chain, 8);
        // Second handles to members 1 (behind the head) and 4 (the middle).
        let mut twins = Vec::new();
        for i in [1, 4] {
            let tags = rig.tags(&chain, &chain_rules[i].value);
            let last = rig.tagged(i as u32);
            let h = t.insert(&mut rig.ring, &tags, last).unwrap();
            twins.push(Live {
                handle: h,
                value: chain_rules[i].value.clone(),
                tag: Some(i as u32),
            });
        }
        // Neighbours of 4 go (3 and 5), then the head: 1 moves into the slot.
        for i in [5, 3, 0] {
            let r = chain_rules.remove(i);
            t.remove(&mut rig.ring, r.handle).unwrap();
            assert_misses(&rig, &t, &r.value);
            check(&rig, &t);
        }
        for r in chain_rules.iter().chain(&twins) {
            assert_hits(&rig, &t, r);
        }
        let Connect::Hit { icm_addr: slot, .. } = t.start() else {
            panic!("{:?}", t.start());
        };
        assert_eq!(
            t.rule_addr(&twins[0].handle),
            Some(slot),
            "the shared rule heads the chain"
        );
        // One handle of each shared rule goes; the others still hit.
        let first_of_1 = chain_rules.remove(0);
        t.remove(&mut rig.ring, first_of_1.handle).unwrap();
        let twin4 = twins.pop().unwrap();
        t.remove(&mut rig.ring, twin4.handle).unwrap();
        for r in chain_rules.iter().chain(&twins) {
            assert_hits(&rig, &t, r);
        }
        assert_eq!(t.stats().shared_handles, 0);
        check(&rig, &t);
        for r in chain_rules.into_iter().chain(twins) {
            t.remove(&mut rig.ring, r.handle).unwrap();
            assert_misses(&rig, &t, &r.value);
        }
        assert_eq!(t.stats().rules, 0);
        drop(t);

        // Growth, one old slot per update: every third rule gets a second handle; every
        // so often one handle of a shared rule, or a neighbour, goes.
        let cfg = TablesConfig {
            growth_step: 1,
            ..sharing(&rig, true)
        };
        let mut t = rig.tables_with(&chain, cfg);
        let mut rng = Rng(0xface ^ model as u64);
        let mut live: Vec<Live> = Vec::new();
        let mut twins: Vec<Live> = Vec::new();
        let mut removed_while_copying = 0;
        for i in 0..200u32 {
            let value = dmac(rng.next() >> 16);
            let tags = rig.tags(&chain, &value);
            let last = rig.tagged(i);
            let handle = t.insert(&mut rig.ring, &tags, last).unwrap();
            if i % 3 == 0 {
                let last = rig.tagged(i);
                let h = t.insert(&mut rig.ring, &tags, last).unwrap();
                twins.push(Live {
                    handle: h,
                    value: value.clone(),
                    tag: Some(i),
                });
            }
            live.push(Live {
                handle,
                value,
                tag: Some(i),
            });
            if i % 7 == 6 {
                removed_while_copying += u32::from(t.copying());
                let victim = if i % 2 == 0 && !twins.is_empty() {
                    twins.swap_remove(rng.below(twins.len() as u64) as usize)
                } else {
                    live.swap_remove(rng.below(live.len() as u64) as usize)
                };
                t.remove(&mut rig.ring, victim.handle).unwrap();
                let still = live.iter().chain(&twins).any(|r| r.value == victim.value);
                if !still {
                    assert_misses(&rig, &t, &victim.value);
                }
            }
            if i % 10 == 0 {
                check(&rig, &t);
            }
        }
        let s = t.stats();
        assert!(s.grows >= 2, "{s:?}");
        assert!(removed_while_copying > 0);
        // A second handle whose first went is its rule's only handle now.
        let pairs = twins
            .iter()
            .filter(|w| live.iter().any(|r| r.value == w.value))
            .count();
        assert!(pairs < twins.len() && pairs > 0);
        assert_eq!(s.shared_handles, pairs as u64, "{s:?}");
        check(&rig, &t);
        for r in live.iter().chain(&twins) {
            assert_hits(&rig, &t, r);
        }
        for r in live.into_iter().chain(twins) {
            t.remove(&mut rig.ring, r.handle).unwrap();
        }
        let s = t.stats();
        assert_eq!((s.rules, s.stes, s.shared_handles), (0, 0, 0));
        assert_no_leak_after_drop(rig, t);
    }
}
