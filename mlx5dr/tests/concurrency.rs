//! Concurrency of the public API on a simulated ConnectX: handles are `Send + Sync`,
//! threads inserting and deleting rules at once end in the state their own logs
//! predict (checked by packet walks, flow counters and matcher statistics) while
//! another thread creates and destroys tables and matchers, and two tests show, without
//! any timing, that a matcher side busy on the device does not hold back inserts into
//! other matchers or control operations, and that a matcher creation busy on the device
//! does not hold back inserts into other matchers of the same table.

#![cfg(feature = "sim")]

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::profile::DeviceModel;
use ::sim::queue::WqeEvent;
use ::sim::{Entry, Fate};
use mlx5dr::action::Tir;
use mlx5dr::device::sim::SimBackend;
use mlx5dr::{
    Action, ActionList, Completion, Counter, Device, Domain, DomainConfig, DomainType, Match,
    Matcher, MatcherOptions, Rule, Table,
};

use common::five_tuple_mask;

// Every public handle can be shared between threads: checked when this file compiles.
const _: () = {
    fn send_sync<T: Send + Sync + ?Sized>() {}
    let _ = send_sync::<Domain>;
    let _ = send_sync::<Table>;
    let _ = send_sync::<Matcher>;
    let _ = send_sync::<Rule>;
    let _ = send_sync::<ActionList>;
    let _ = send_sync::<Action>;
    let _ = send_sync::<Counter>;
    let _ = send_sync::<Tir>;
    let _ = send_sync::<Arc<Matcher>>;
};

/// The completion modes the matchers of the multi-threaded test take turns with.
const MODES: [Completion; 3] = [Completion::Wait, Completion::Post, Completion::Queue];

/// Worker threads of the multi-threaded test.
const THREADS: u32 = 8;
/// Inserts and deletes per worker.
const OPS: u32 = 400;
/// Rounds of the control thread (matchers and tables made and destroyed).
const CONTROL_ROUNDS: u32 = 25;
/// How long a test waits for a thread to reach a point it must reach (a hang guard,
/// not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(30);

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

struct Rig {
    be: Arc<SimBackend>,
    dmn: Arc<Domain>,
}

impl Rig {
    fn new(rings: usize) -> Rig {
        let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
        let dev: Arc<dyn Device> = be.clone();
        let cfg = DomainConfig {
            rings,
            ..DomainConfig::default()
        };
        let dmn = Domain::open_with(dev, DomainType::NicRx, cfg).unwrap();
        Rig { be, dmn }
    }

    /// The flow tag a packet built from `value` leaves `table` with (`None`: it reached
    /// the NIC RX default, the drop, untagged). Anything else is an error.
    fn classify(&self, table: &Table, value: &Match) -> Result<Option<u32>, String> {
        let v = value.to_raw().map_err(|e| e.to_string())?.param;
        let pkt = build_from_match(&v, Metadata::new(Side::Rx)).map_err(|e| e.to_string())?;
        let out = self
            .be
            .sim()
            .process(pkt, Entry::Table(table.fw_id()))
            .map_err(|e| e.to_string())?;
        match &out[..] {
            [d] if d.fate == Fate::Delivered(Terminal::Drop) => Ok(d.packet.meta.flow_tag),
            [d] => Err(format!("unexpected fate {:?}", d.fate)),
            _ => Err(format!("{} copies", out.len())),
        }
    }

    /// Makes the next WQE the device executes on ring `ring`'s queue wait inside the
    /// device until the returned sender sends (or is dropped); the receiver hears when
    /// that WQE has been reached. The ring's lock stays held by whoever rang it.
    fn hold_next_wqe(&self, ring: usize) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let mut gate = Some((entered_tx, release_rx));
        let hook = move |_: &WqeEvent| {
            if let Some((entered, release)) = gate.take() {
                let _ = entered.send(());
                // Released by a send or by the sender going away.
                let _ = release.recv();
            }
        };
        let qpn = self.dmn.ring_at(ring).qpn();
        self.be
            .sim()
            .with_queue(qpn, |q| q.set_wqe_hook(Some(Box::new(hook))))
            .unwrap();
        (entered_rx, release_tx)
    }

    fn clear_hooks(&self) {
        for i in 0..self.dmn.ring_count() {
            let qpn = self.dmn.ring_at(i).qpn();
            self.be
                .sim()
                .with_queue(qpn, |q| q.set_wqe_hook(None))
                .unwrap();
        }
    }
}

/// Destination address, protocol and destination port.
fn dst_port_mask() -> Match {
    Match::new().outer(|h| {
        h.ipv4_dst(Ipv4Addr::BROADCAST)
            .ip_protocol(0xff)
            .tcp_dport(0xffff)
    })
}

fn dst_mask() -> Match {
    Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::BROADCAST))
}

/// The value of rule `i` of thread `t` in its own (5-tuple) matcher: sources
/// 10.t.x.y, destination 192.168.0.1, which no other rule of the tests uses.
fn own_value(t: u32, i: u32) -> Match {
    Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::new(10, t as u8, (i >> 8) as u8, i as u8))
            .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
            .ip_protocol(6)
            .tcp_sport(1000)
            .tcp_dport(80)
    })
}

/// The value of rule `i` of thread `t` in a shared (destination) matcher:
/// destinations 172.(16 + t).x.y.
fn shared_value(t: u32, i: u32) -> Match {
    Match::new().outer(|h| {
        h.ipv4_dst(Ipv4Addr::new(172, 16 + t as u8, (i >> 8) as u8, i as u8))
            .ip_protocol(6)
            .tcp_dport(80)
    })
}

/// The value of rule `i` of the control thread: destinations 100.64.x.y.
fn control_value(i: u32) -> Match {
    Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::new(100, 64, (i >> 8) as u8, i as u8)))
}

/// A rule one worker installed and still holds.
struct Live {
    value: Match,
    tag: u32,
    /// 0: the thread's own matcher; 1 + k: shared matcher k.
    matcher: usize,
    rule: Rule,
}

/// What a worker hands back: its matcher, its live rules, and the values of the rules
/// it deleted.
struct Outcome {
    own: Arc<Matcher>,
    live: Vec<Live>,
    deleted: Vec<Match>,
}

fn worker(
    t: u32,
    table: Arc<Table>,
    shared: [Arc<Matcher>; 2],
    counter: Arc<Counter>,
    start: Arc<Barrier>,
) -> Outcome {
    let mut rng = Rng(0x9e37_79b9 + u64::from(t));
    // Every worker makes its own matcher while the others insert.
    start.wait();
    // The three completion modes take turns; a rule's action list is its own, so a
    // removal that does not wait must keep it (and its counter) alive until it lands.
    let opts = MatcherOptions {
        completion: MODES[t as usize % MODES.len()],
        ..MatcherOptions::priority(10 + t)
    };
    let own = Matcher::new(&table, &five_tuple_mask(), opts).unwrap();
    let mut live: Vec<Live> = Vec::new();
    let mut deleted = Vec::new();
    for i in 0..OPS {
        if !live.is_empty() && rng.below(3) == 0 {
            let k = rng.below(live.len() as u64) as usize;
            let gone = live.swap_remove(k);
            // Both ways of deleting: dropping, and removing with the error reported.
            if i % 2 == 0 {
                drop(gone.rule);
            } else {
                gone.rule.remove().unwrap();
            }
            deleted.push(gone.value);
            continue;
        }
        let tag = ((t + 1) << 16) | i;
        let which = rng.below(3) as usize;
        let (m, value) = match which {
            0 => (&own, own_value(t, i)),
            k => (&shared[k - 1], shared_value(t, i)),
        };
        let acts = m
            .actions(&[
                Action::counter(&counter, t).unwrap(),
                Action::flow_tag(tag).unwrap(),
            ])
            .unwrap();
        let rule = m
            .insert(&value, &acts)
            .unwrap_or_else(|e| panic!("thread {t} insert {i}: {e}"));
        live.push(Live {
            value,
            tag,
            matcher: which,
            rule,
        });
    }
    Outcome { own, live, deleted }
}

/// The control thread: matchers at random priorities made, used and destroyed in the
/// workers' table (so that they link between matchers being updated), and whole
/// tables with matchers, counters and TIRs made and destroyed, until the workers are
/// done (and at least `CONTROL_ROUNDS` rounds).
fn control(rig: &Rig, table: &Arc<Table>, done: &AtomicBool, start: &Barrier) -> u32 {
    let mut rng = Rng(0xc0ffee);
    start.wait();
    let mut round = 0;
    while round < CONTROL_ROUNDS || !done.load(Ordering::Acquire) {
        // A matcher anywhere in the lookup order of the workers' table.
        let prio = rng.below(30) as u32;
        let m = Matcher::new(table, &dst_mask(), MatcherOptions::priority(prio)).unwrap();
        let acts = m.actions(&[Action::flow_tag(0xff_0000 | round).unwrap()]);
        let acts = acts.unwrap();
        let value = control_value(round);
        let rule = m.insert(&value, &acts).unwrap();
        assert_eq!(
            rig.classify(table, &value),
            Ok(Some(0xff_0000 | round)),
            "control round {round}"
        );
        drop(rule);
        assert_eq!(rig.classify(table, &value), Ok(None));
        Matcher::destroy(m).unwrap();

        // A table of its own, with a matcher, a counted rule and a TIR destination.
        let level = 2 + rng.below(3) as u8;
        let t2 = Table::new(&rig.dmn, level).unwrap();
        let m2 = Matcher::new(&t2, &dst_mask(), MatcherOptions::default()).unwrap();
        let counter = Counter::alloc(&rig.dmn, 0).unwrap();
        let tir = Tir::create(&rig.dmn, Default::default()).unwrap();
        let acts = m2
            .actions(&[
                Action::counter(&counter, 0).unwrap(),
                Action::dest_tir(&tir).unwrap(),
            ])
            .unwrap();
        let rule = m2.insert(&value, &acts).unwrap();
        drop(rule);
        drop(acts);
        Matcher::destroy(m2).unwrap();
        Table::destroy(t2).unwrap();
        drop((counter, tir));
        round += 1;
    }
    round
}

/// Worker threads insert into their own matcher and two shared ones and delete, with
/// values no two rules share, while a control thread makes and destroys matchers (in
/// the same table, at priorities before, between and after the workers') and tables.
/// At the end exactly the rules each worker still holds hit, with their flow tags, every
/// deleted one misses, each worker's flow counter counted its rules' packets, and every
/// matcher's statistics count its live rules. The matchers use every completion mode
/// (the shared ones post and queue), and are synced before the checks.
#[test]
fn threads_inserting_and_deleting_end_in_the_predicted_state() {
    let rig = Rig::new(4);
    let table = Table::new(&rig.dmn, 1).unwrap();
    let shared_opts = |priority, completion| MatcherOptions {
        completion,
        ..MatcherOptions::priority(priority)
    };
    let shared = [
        Matcher::new(&table, &dst_port_mask(), shared_opts(5, Completion::Post)).unwrap(),
        Matcher::new(&table, &dst_port_mask(), shared_opts(20, Completion::Queue)).unwrap(),
    ];
    let counter = Counter::alloc(&rig.dmn, 3).unwrap();
    let start = Arc::new(Barrier::new(THREADS as usize + 1));
    let done = AtomicBool::new(false);

    let (outcomes, rounds) = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (table, shared, counter, start) = (
                    Arc::clone(&table),
                    shared.clone(),
                    Arc::clone(&counter),
                    Arc::clone(&start),
                );
                s.spawn(move || worker(t, table, shared, counter, start))
            })
            .collect();
        let ctl = s.spawn(|| control(&rig, &table, &done, &start));
        let outcomes: Vec<Outcome> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        (outcomes, ctl.join().unwrap())
    });
    assert!(rounds >= CONTROL_ROUNDS);
    assert_eq!(table.matcher_count(), 2 + THREADS as usize);
    // What the matchers that do not wait posted or queued is in ICM after a sync.
    for m in outcomes.iter().map(|o| &o.own).chain(&shared) {
        m.sync().unwrap();
    }

    let mut shared_live = [0u64; 2];
    for (t, o) in outcomes.iter().enumerate() {
        for l in &o.live {
            assert_eq!(
                rig.classify(&table, &l.value),
                Ok(Some(l.tag)),
                "thread {t}"
            );
        }
        for v in &o.deleted {
            assert_eq!(rig.classify(&table, v), Ok(None), "thread {t}");
        }
        // Each live rule's packet went once through the thread's counter.
        let counted = counter.query(t as u32).unwrap().packets;
        assert_eq!(counted, o.live.len() as u64, "thread {t}");
        let own = o.live.iter().filter(|l| l.matcher == 0).count() as u64;
        assert_eq!(o.own.stats().rules(), own, "thread {t}");
        for (k, n) in shared_live.iter_mut().enumerate() {
            *n += o.live.iter().filter(|l| l.matcher == k + 1).count() as u64;
        }
        assert!(!o.deleted.is_empty() && !o.live.is_empty(), "thread {t}");
    }
    for (m, n) in shared.iter().zip(shared_live) {
        assert_eq!(m.stats().rules(), n);
    }
    // The control thread's rules are all gone: none of its values hits.
    for i in 0..rounds {
        assert_eq!(rig.classify(&table, &control_value(i)), Ok(None));
    }

    // Everything goes: the table keeps only its root anchor.
    drop(outcomes);
    drop(shared);
    assert_eq!(table.matcher_count(), 0);
    let pool = rig.dmn.ste_pool().stats();
    assert_eq!((pool.chunks, pool.slab_bytes), (1, 0), "{pool:?}");
}

/// Runs `held` on one thread until it reaches the device on ring `ring`, where its
/// first WQE is kept waiting, and meanwhile `meanwhile` on another; then lets `held`
/// go on. Fails (instead of hanging) if `meanwhile` cannot finish while `held` waits,
/// or if `held` finished before being let go. Returns both results.
fn while_held<H: Send, M: Send>(
    rig: &Rig,
    ring: usize,
    held: impl FnOnce() -> H + Send,
    meanwhile: impl FnOnce() -> M + Send,
) -> (H, M) {
    let (entered, release) = rig.hold_next_wqe(ring);
    let out = thread::scope(|s| {
        // Owned here, so that a panic drops it and lets the held WQE go.
        let release = release;
        let held = s.spawn(held);
        entered
            .recv_timeout(HANG_GUARD)
            .expect("the held operation reached the device");
        let (done_tx, done_rx) = mpsc::channel();
        let work = s.spawn(move || {
            let out = meanwhile();
            let _ = done_tx.send(());
            out
        });
        let finished = done_rx.recv_timeout(HANG_GUARD);
        let still_held = !held.is_finished();
        let _ = release.send(());
        let out = work.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert!(
            finished.is_ok(),
            "the other operations waited for the held one"
        );
        assert!(still_held, "the held operation was not held");
        let h = held.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (h, out)
    });
    rig.clear_hooks();
    out
}

/// While an insert into one matcher waits inside the device (its first WQE held by the
/// queue hook, so its matcher side's lock and its ring's lock stay taken), inserts into
/// and removals from another matcher of the same table complete, and so do control
/// operations: a new table, a matcher in it and one in the same table (not next to the
/// busy one), a counter, a TIR. Nothing here measures time: the busy insert cannot
/// finish before the hook lets it.
#[test]
fn a_busy_matcher_does_not_hold_back_other_matchers_or_control() {
    let rig = Rig::new(4);
    let table = Table::new(&rig.dmn, 1).unwrap();
    // Rings are handed out round robin from 0; ring 0 also writes the table roots.
    let spare = Matcher::new(&table, &dst_mask(), MatcherOptions::priority(20)).unwrap();
    let busy = Matcher::new(&table, &five_tuple_mask(), MatcherOptions::priority(5)).unwrap();
    let other = Matcher::new(&table, &dst_port_mask(), MatcherOptions::priority(1)).unwrap();
    assert_eq!(
        [spare.ring_index(), busy.ring_index(), other.ring_index()],
        [0, 1, 2]
    );
    let tag = |m: &Arc<Matcher>, t: u32| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap();
    let before = busy.insert(&own_value(0, 1), &tag(&busy, 1)).unwrap();

    let held = || busy.insert(&own_value(0, 2), &tag(&busy, 2));
    let meanwhile = || {
        // Another matcher of the same table: inserts and removals go through.
        let mut rules = Vec::new();
        for i in 0..20 {
            let v = shared_value(0, i);
            rules.push(other.insert(&v, &tag(&other, 100 + i)).unwrap());
            assert_eq!(rig.classify(&table, &v), Ok(Some(100 + i)));
        }
        rules.drain(..10).for_each(drop);
        assert_eq!(other.stats().rules(), 10);
        // The busy matcher's installed rule still hits; the held one is not in yet.
        assert_eq!(rig.classify(&table, &own_value(0, 1)), Ok(Some(1)));
        assert_eq!(rig.classify(&table, &own_value(0, 2)), Ok(None));

        // Control operations: a table, a matcher in it (ring 3), a matcher at the front
        // of the busy matcher's table (its neighbour is `other`, not `busy`; ring 0),
        // a counter and a TIR.
        let t2 = Table::new(&rig.dmn, 2).unwrap();
        let m2 = Matcher::new(&t2, &dst_mask(), MatcherOptions::default()).unwrap();
        let front = Matcher::new(&table, &dst_mask(), MatcherOptions::priority(0)).unwrap();
        assert_eq!([m2.ring_index(), front.ring_index()], [3, 0]);
        let r2 = m2.insert(&control_value(1), &tag(&m2, 7)).unwrap();
        assert_eq!(rig.classify(&t2, &control_value(1)), Ok(Some(7)));
        let rf = front.insert(&control_value(2), &tag(&front, 8)).unwrap();
        assert_eq!(rig.classify(&table, &control_value(2)), Ok(Some(8)));
        let counter = Counter::alloc(&rig.dmn, 0).unwrap();
        let tir = Tir::create(&rig.dmn, Default::default()).unwrap();
        drop((r2, rf, counter, tir));
        Matcher::destroy(m2).unwrap();
        Matcher::destroy(front).unwrap();
        // Destroying `t2` now would wait for the busy ring (a table's drop flushes every
        // ring of the domain): it goes after the release.
        (rules, t2)
    };
    let (r, (rules, t2)) = while_held(&rig, busy.ring_index(), held, meanwhile);
    let r = r.unwrap();
    assert_eq!(rig.classify(&table, &own_value(0, 2)), Ok(Some(2)));
    Table::destroy(t2).unwrap();
    drop((r, rules));
    assert_eq!(rig.classify(&table, &own_value(0, 1)), Ok(Some(1)));
    drop(before);
    assert_eq!(busy.stats().rules(), 0);
}

/// While a matcher creation waits inside the device (the first write of its hash
/// tables held; it holds the table's control lock and the lock of the matcher it goes
/// before), inserts into the other matchers of the table, the one it goes after
/// included, and into matchers of other tables complete, and another table can be made.
#[test]
fn a_busy_matcher_creation_does_not_hold_back_inserts() {
    let rig = Rig::new(4);
    let table = Table::new(&rig.dmn, 1).unwrap();
    let first = Matcher::new(&table, &dst_mask(), MatcherOptions::priority(1)).unwrap();
    let prev = Matcher::new(&table, &five_tuple_mask(), MatcherOptions::priority(3)).unwrap();
    let next = Matcher::new(&table, &dst_port_mask(), MatcherOptions::priority(5)).unwrap();
    assert_eq!(
        [first.ring_index(), prev.ring_index(), next.ring_index()],
        [0, 1, 2]
    );
    let tag = |m: &Arc<Matcher>, t: u32| m.actions(&[Action::flow_tag(t).unwrap()]).unwrap();
    let r_next = next.insert(&shared_value(1, 1), &tag(&next, 50)).unwrap();

    // The new matcher gets ring 3 and goes between `prev` and `next`.
    let held = || Matcher::new(&table, &dst_port_mask(), MatcherOptions::priority(4)).unwrap();
    let meanwhile = || {
        let mut rules = Vec::new();
        for i in 0..10 {
            let (a, b) = (control_value(i), own_value(1, i));
            rules.push(first.insert(&a, &tag(&first, 10 + i)).unwrap());
            rules.push(prev.insert(&b, &tag(&prev, 30 + i)).unwrap());
            assert_eq!(rig.classify(&table, &a), Ok(Some(10 + i)));
            assert_eq!(rig.classify(&table, &b), Ok(Some(30 + i)));
        }
        // Another table and a matcher in it (ring 0).
        let t2 = Table::new(&rig.dmn, 2).unwrap();
        let m2 = Matcher::new(&t2, &dst_mask(), MatcherOptions::default()).unwrap();
        let r2 = m2.insert(&control_value(99), &tag(&m2, 99)).unwrap();
        assert_eq!(rig.classify(&t2, &control_value(99)), Ok(Some(99)));
        // Packets pass the half-made matcher's place as before.
        assert_eq!(rig.classify(&table, &shared_value(1, 1)), Ok(Some(50)));
        // (`table.matcher_count()` would wait: it reads the list under the control
        // lock the creation holds.)
        (rules, t2, m2, r2)
    };
    let (made, (rules, t2, m2, r2)) = while_held(&rig, 3, held, meanwhile);
    assert_eq!(table.matcher_count(), 4);
    let r = made.insert(&shared_value(2, 1), &tag(&made, 60)).unwrap();
    assert_eq!(rig.classify(&table, &shared_value(2, 1)), Ok(Some(60)));
    assert_eq!(rig.classify(&table, &shared_value(1, 1)), Ok(Some(50)));
    drop((r, r2, rules));
    Matcher::destroy(m2).unwrap();
    Table::destroy(t2).unwrap();
    Matcher::destroy(made).unwrap();
    assert_eq!(rig.classify(&table, &shared_value(1, 1)), Ok(Some(50)));
    drop(r_next);
}
