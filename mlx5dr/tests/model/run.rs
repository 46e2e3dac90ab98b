//! Running a case: every operation on the driver and on the reference model, and every
//! packet through both.

use std::fmt::Write as _;
use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match_lossy, Metadata, Side};
use ::sim::profile::DeviceModel;
use ::sim::Delivery;
use mlx5dr::action::MAX_FLOW_TAG;
use mlx5dr::htbl::HtblError;
use mlx5dr::matcher::MatcherInUse;
use mlx5dr::{
    Completion, Duplicates, Growth, InsertError, Matcher, MatcherOptions, RawMatch, ShardPlacement,
    UpdateError,
};
use ste_builder::prm::dr_match_set_misc as misc;
use ste_builder::{MatchParam, Section};

use super::reference::{Hop, RefActions, RefFate, RefMatcher, RefModel, RefRule, Verdict};
use super::rig::{counter_last_in, Installed, Rig, LOG_COUNTERS};
use super::shapes::{self, Dom, Rng, Shape, VPORTS, WIRE_PORT};

/// The priority of the catch-all matchers of [`Op::Funnel`]: after all others (random
/// matchers take priorities below it).
pub const FUNNEL_PRIORITY: u32 = 7;
/// Packets probed after an operation that changes rules.
const PROBES: usize = 12;

/// One step of a case. Matchers are named by an index into the live ones (modulo
/// their number), so any sequence is valid and shrinks to a valid one.
#[derive(Debug, Clone)]
pub enum Op {
    /// A matcher in table `table` (modulo the tables): a random shape, or another live
    /// matcher's; refusing or sharing identical duplicates.
    AddMatcher {
        table: usize,
        priority: u32,
        seed: u64,
    },
    /// `n` random rules into a matcher (some duplicates of its own rules, some copies
    /// of the rules of a matcher with the same mask).
    Insert { matcher: usize, n: usize, seed: u64 },
    /// Drops or removes a handle of up to `n` random rules of a matcher.
    Remove { matcher: usize, n: usize, seed: u64 },
    /// New random actions for up to `n` rules of a matcher.
    SetActions { matcher: usize, n: usize, seed: u64 },
    /// Destroys a matcher: refused while it has rules, unless `force` removes them
    /// first.
    Destroy { matcher: usize, force: bool },
    /// `n` random packets.
    Classify { n: usize, seed: u64 },
    /// A catch-all matcher of the lowest priority in `table` with one rule: goto the
    /// next table (so that packets missing a table's other matchers reach the rules of
    /// the next), maybe counted.
    Funnel { table: usize, counter: bool },
}

/// A case: the domain, the table levels (strictly increasing; packets enter the
/// first), and the operations.
#[derive(Debug, Clone)]
pub struct Case {
    pub dom: Dom,
    pub levels: Vec<u8>,
    pub ops: Vec<Op>,
}

/// A live matcher: its shape, table, duplicate policy and whether its tables grow.
struct Live {
    id: usize,
    table: usize,
    shape: Shape,
    share: bool,
    grow: bool,
}

/// The most rules a matcher whose tables do not grow gets. Only its last level is
/// presized: the levels above keep one entry, so every distinct prefix lands in one
/// miss chain, and a packet walking a few such chains must stay under the simulator's
/// hop limit (`sim::pipeline::DEFAULT_MAX_HOPS`, 4096).
const NO_GROW_RULES: usize = 500;

/// What an insert must do, by the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A new rule.
    Installed,
    /// Another handle of installed rule `.0` (identical duplicate, sharing matcher).
    Shared(usize),
    /// Refused as a duplicate.
    Refused,
    /// The same value with other actions that do the same to a packet (no fate, the
    /// default miss and a destination that is the default; the counter's position):
    /// they may or may not encode to the same STEs, so shared or refused.
    Either(usize),
}

/// Statistics of a case (printed with `MODEL_STATS=1`).
#[derive(Debug, Default)]
struct Stats {
    packets: usize,
    skipped: usize,
    hits: usize,
    inserted: usize,
    shared: usize,
    duplicates: usize,
    changed: usize,
    rules: usize,
    most_rules: usize,
}

/// A case in progress: the rig, the model, and the log a failure prints.
pub struct Run {
    dom: Dom,
    rig: Rig,
    model: RefModel,
    live: Vec<Live>,
    /// Values of removed rules (probed: they must no longer hit).
    removed: Vec<MatchParam>,
    /// Per counter offset: packets and bytes the model counted.
    counted: Vec<(u64, u64)>,
    next_id: usize,
    log: Vec<String>,
    stats: Stats,
}

impl Run {
    /// The rig and an empty model for `case` on `model`.
    pub fn new(model: DeviceModel, case: &Case) -> Run {
        let rig = Rig::new(model, case.dom, &case.levels);
        let default = match case.dom {
            Dom::NicRx => Terminal::Drop,
            Dom::NicTx => Terminal::Allow,
            Dom::Fdb => Terminal::Vport(rig.be.sim().profile().esw_manager_vport),
        };
        Run {
            dom: case.dom,
            rig,
            model: RefModel::new(default, &case.levels),
            live: Vec::new(),
            removed: Vec::new(),
            counted: vec![(0, 0); 1 << LOG_COUNTERS],
            next_id: 0,
            log: vec![format!(
                "{model:?} {:?}, tables at levels {:?}",
                case.dom, case.levels
            )],
            stats: Stats::default(),
        }
    }

    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    /// Changes the model behind the driver's back (for the test that the harness
    /// notices a wrong model).
    pub fn corrupt_model(&mut self, f: impl FnOnce(&mut RefModel)) {
        f(&mut self.model);
    }

    /// The failure report: the log, then `what`.
    fn fail(&self, what: String) -> String {
        let mut s = String::from("operations:\n");
        for l in &self.log {
            let _ = writeln!(s, "  {l}");
        }
        let _ = write!(s, "FAILED: {what}");
        s
    }

    /// Runs one operation, then compares the matcher and rule counts.
    pub fn op(&mut self, op: &Op) -> Result<(), String> {
        let n_live = self.live.len();
        match *op {
            Op::AddMatcher {
                table,
                priority,
                seed,
            } => self.add_matcher(table % self.model.tables.len(), priority, seed)?,
            Op::Funnel { table, counter } => self.funnel(table, counter)?,
            Op::Classify { n, seed } => {
                self.log.push(format!("classify {n} packets"));
                let mut rng = Rng::new(seed);
                for _ in 0..n {
                    let desc = self.random_packet(&mut rng);
                    self.check_packet(&mut rng, &desc)?;
                }
            }
            _ if n_live == 0 => {}
            Op::Insert { matcher, n, seed } => self.insert(matcher % n_live, n, seed)?,
            Op::Remove { matcher, n, seed } => self.remove(matcher % n_live, n, seed)?,
            Op::SetActions { matcher, n, seed } => self.set_actions(matcher % n_live, n, seed)?,
            Op::Destroy { matcher, force } => self.destroy(matcher % n_live, force)?,
        }
        self.check_counts()
    }

    // ---- matchers -------------------------------------------------------------------------

    fn add_matcher(&mut self, table: usize, priority: u32, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let (shape, twin) = if !self.live.is_empty() && rng.chance(20) {
            let l = &self.live[rng.below(self.live.len() as u64) as usize];
            (l.shape.clone(), format!(" (the mask of m{})", l.id))
        } else {
            (Shape::random(&mut rng, self.dom), String::new())
        };
        let share = rng.chance(30);
        let grow = !rng.chance(10);
        let opts = MatcherOptions {
            priority,
            // A table that may not grow starts at 16 entries or more: at 1 entry every
            // rule would be in one miss chain, and the simulator takes a walk of more
            // than 4096 STEs for a loop.
            expected_log_rules: if grow { rng.below(5) } else { 4 + rng.below(3) } as u8,
            grow,
            growth: if rng.chance(30) {
                Growth::Double
            } else {
                Growth::Quadruple
            },
            shrink: !rng.chance(20),
            duplicates: if share {
                Duplicates::ShareIdentical
            } else {
                Duplicates::Refuse
            },
            completion: [Completion::Wait, Completion::Post, Completion::Queue]
                [rng.below(3) as usize],
            shards: if rng.chance(25) {
                2 + rng.below(3) as u8
            } else {
                1
            },
            placement: if rng.chance(50) {
                ShardPlacement::Thread
            } else {
                ShardPlacement::Tags
            },
        };
        let id = self.id();
        self.log.push(format!(
            "m{id} = matcher in t{table} {opts:?}{twin}: {shape:?}"
        ));
        let raw = RawMatch::new(shape.mask.used_criteria(), shape.mask.clone());
        let m = Matcher::new_raw(&self.rig.tables[table], &raw, opts)
            .map_err(|e| self.fail(format!("m{id} refused: {e}")))?;
        self.rig.matchers.insert(id, m);
        self.model
            .add_matcher(table, id, priority, shape.mask.clone());
        self.live.push(Live {
            id,
            table,
            shape,
            share,
            grow,
        });
        Ok(())
    }

    fn funnel(&mut self, table: usize, counter: bool) -> Result<(), String> {
        if table + 1 >= self.model.tables.len() {
            return Ok(());
        }
        let shape = Shape::any();
        let id = self.id();
        let raw = RawMatch::new(shape.mask.used_criteria(), shape.mask.clone());
        let opts = MatcherOptions::priority(FUNNEL_PRIORITY);
        let m = Matcher::new_raw(&self.rig.tables[table], &raw, opts)
            .map_err(|e| self.fail(format!("m{id} (catch-all) refused: {e}")))?;
        let acts = RefActions {
            tag: None,
            counter: counter.then_some(0),
            fate: RefFate::Goto(table + 1),
        };
        let list = self
            .rig
            .list(table, &m, acts, false)
            .map_err(|e| self.fail(e))?;
        let rid = self.id();
        let rule = m
            .insert_raw(&shape.mask, &list)
            .map_err(|e| self.fail(format!("r{rid} (catch-all) refused: {e}")))?;
        self.log.push(format!(
            "m{id} = catch-all in t{table} priority {FUNNEL_PRIORITY}, r{rid}: {acts:?}"
        ));
        self.rig.matchers.insert(id, m);
        self.rig.rules.insert(
            rid,
            Installed {
                handles: vec![rule],
                counter_last: false,
            },
        );
        self.model
            .add_matcher(table, id, FUNNEL_PRIORITY, shape.mask.clone());
        self.model.add_rule(
            id,
            RefRule {
                id: rid,
                value: shape.mask.clone(),
                actions: acts,
            },
        );
        self.stats.inserted += 1;
        self.stats.rules += 1;
        self.live.push(Live {
            id,
            table,
            shape,
            share: false,
            grow: true,
        });
        Ok(())
    }

    fn destroy(&mut self, at: usize, force: bool) -> Result<(), String> {
        let mid = self.live[at].id;
        let ids = self.rule_ids(mid);
        if force {
            for &id in &ids {
                while self.rig.rules.contains_key(&id) {
                    self.drop_handle(mid, id, true)?;
                }
            }
        }
        let users: usize = self
            .rule_ids(mid)
            .iter()
            .map(|id| self.rig.rules[id].handles.len())
            .sum();
        let m = self.rig.matchers.remove(&mid).expect("matcher handle");
        match (Matcher::destroy(m), users) {
            (Ok(()), 0) => {
                self.model.remove_matcher(mid);
                self.live.remove(at);
                self.log.push(format!(
                    "destroy m{mid} (its {} rules removed first)",
                    if force { ids.len() } else { 0 }
                ));
                self.probe_removed(&mut Rng::new(mid as u64))
            }
            (Err(MatcherInUse { matcher, users: u }), n) if n > 0 && u == n => {
                self.rig.matchers.insert(mid, matcher);
                self.log
                    .push(format!("destroy m{mid}: refused, {n} rule handles hold it"));
                Ok(())
            }
            (r, n) => Err(self.fail(format!(
                "destroying m{mid} with {n} rule handles: {:?}",
                r.map_err(|e| e.users)
            ))),
        }
    }

    // ---- rules ----------------------------------------------------------------------------

    fn rule_ids(&self, mid: usize) -> Vec<usize> {
        self.model
            .matcher(mid)
            .map(|(_, m)| m.rules.iter().map(|r| r.id).collect())
            .unwrap_or_default()
    }

    fn random_actions(&self, rng: &mut Rng, table: usize) -> RefActions {
        let tag = (self.dom == Dom::NicRx && rng.chance(50))
            .then(|| 1 + rng.below(u64::from(MAX_FLOW_TAG)) as u32);
        let counter = rng.chance(40).then(|| rng.below(1 << LOG_COUNTERS) as u32);
        let mut fates = vec![
            (2, RefFate::None),
            (1, RefFate::DefaultMiss),
            (2, RefFate::Drop),
        ];
        for t in table + 1..self.model.tables.len() {
            fates.push((4, RefFate::Goto(t)));
        }
        for (t, _) in &self.rig.dests {
            fates.push((1, RefFate::To(*t)));
        }
        let total: u64 = fates.iter().map(|f| f.0).sum();
        let mut k = rng.below(total);
        for (w, fate) in fates {
            if k < w {
                return RefActions { tag, counter, fate };
            }
            k -= w;
        }
        unreachable!("k < total")
    }

    /// A value for a rule of live matcher `at`: mostly a fresh one (a second try when
    /// the first is taken, or small value spaces would give only duplicates), sometimes
    /// a rule value of another matcher with the same mask.
    fn rule_value(&self, rng: &mut Rng, at: usize) -> MatchParam {
        let l = &self.live[at];
        if rng.chance(20) {
            let twins: Vec<&RefMatcher> = self
                .model
                .tables
                .iter()
                .flat_map(|t| &t.matchers)
                .filter(|m| m.id != l.id && m.mask == l.shape.mask && !m.rules.is_empty())
                .collect();
            if !twins.is_empty() {
                let m = twins[rng.below(twins.len() as u64) as usize];
                return m.rules[rng.below(m.rules.len() as u64) as usize]
                    .value
                    .clone();
            }
        }
        let mut value = l.shape.value(rng, self.dom);
        if rng.chance(50) && self.model.has_value(l.id, &value) {
            value = l.shape.value(rng, self.dom);
        }
        value
    }

    fn insert(&mut self, at: usize, n: usize, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let (mid, table, share) = (self.live[at].id, self.live[at].table, self.live[at].share);
        let n = if self.live[at].grow {
            n
        } else {
            n.min(NO_GROW_RULES.saturating_sub(self.rule_ids(mid).len()))
        };
        let m = Arc::clone(&self.rig.matchers[&mid]);
        let (mut added, mut shared, mut dups) = (Vec::new(), 0, 0);
        for _ in 0..n {
            let value = self.rule_value(&mut rng, at);
            let existing = self.model.matcher(mid).and_then(|(_, m)| {
                m.rules
                    .iter()
                    .find(|r| r.value == value)
                    .map(|r| (r.id, r.actions))
            });
            let (acts, counter_last) = match existing {
                Some((id, acts)) if share && rng.chance(50) => {
                    (acts, self.rig.rules[&id].counter_last)
                }
                _ => (self.random_actions(&mut rng, table), rng.chance(50)),
            };
            let counter_last = counter_last_in(acts, counter_last);
            let expect = match existing {
                None => Expect::Installed,
                Some(_) if !share => Expect::Refused,
                Some((id, old)) => {
                    if (old, self.rig.rules[&id].counter_last) == (acts, counter_last) {
                        Expect::Shared(id)
                    } else if same_effect(old, acts, self.model.default) {
                        Expect::Either(id)
                    } else {
                        Expect::Refused
                    }
                }
            };
            let list = self
                .rig
                .list(table, &m, acts, counter_last)
                .map_err(|e| self.fail(e))?;
            let id = self.id();
            match (m.insert_raw(&value, &list), expect) {
                (Ok(rule), Expect::Installed) => {
                    self.rig.rules.insert(
                        id,
                        Installed {
                            handles: vec![rule],
                            counter_last,
                        },
                    );
                    self.model.add_rule(
                        mid,
                        RefRule {
                            id,
                            value: value.clone(),
                            actions: acts,
                        },
                    );
                    added.push(value);
                }
                (Ok(rule), Expect::Shared(old) | Expect::Either(old)) => {
                    self.rig
                        .rules
                        .get_mut(&old)
                        .expect("rule")
                        .handles
                        .push(rule);
                    shared += 1;
                }
                (
                    Err(InsertError::Insert {
                        source: HtblError::Duplicate,
                        ..
                    }),
                    Expect::Refused | Expect::Either(_),
                ) => dups += 1,
                (r, expect) => {
                    let what = format!(
                        "inserting {value:?} {acts:?} (counter last: {counter_last}) into \
                         m{mid}, expecting {expect:?}: {:?}",
                        r.map(|_| "installed")
                    );
                    return Err(self.fail(what));
                }
            }
        }
        let rules = self.rule_ids(mid).len();
        self.stats.inserted += added.len();
        self.stats.shared += shared;
        self.stats.duplicates += dups;
        self.stats.rules += added.len();
        self.stats.most_rules = self.stats.most_rules.max(self.stats.rules);
        self.log.push(format!(
            "insert {n} into m{mid}: {} new, {shared} shared, {dups} duplicates refused, \
             {rules} rules now",
            added.len()
        ));
        for v in added.iter().rev().take(PROBES) {
            self.check_packet(&mut rng, v)?;
        }
        Ok(())
    }

    fn remove(&mut self, at: usize, n: usize, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let mid = self.live[at].id;
        let mut ids = self.rule_ids(mid);
        let mut gone = 0;
        let mut still = Vec::new();
        for _ in 0..n.min(ids.len()) {
            let id = ids.swap_remove(rng.below(ids.len() as u64) as usize);
            if self.drop_handle(mid, id, rng.chance(50))? {
                gone += 1;
            } else {
                still.push(id);
            }
        }
        self.log.push(format!(
            "remove a handle of {} rules of m{mid}: {gone} gone, {} still held, {} left",
            gone + still.len(),
            still.len(),
            self.rule_ids(mid).len()
        ));
        // Rules that lost one of several handles still hit.
        let values: Vec<MatchParam> = still
            .iter()
            .take(PROBES)
            .filter_map(|id| {
                let (_, m) = self.model.matcher(mid)?;
                Some(m.rules.iter().find(|r| r.id == *id)?.value.clone())
            })
            .collect();
        for v in &values {
            self.check_packet(&mut rng, v)?;
        }
        self.probe_removed(&mut rng)
    }

    /// Drops (`by_drop`) or removes one handle of rule `id`; true when that was the
    /// last and the rule is gone.
    fn drop_handle(&mut self, mid: usize, id: usize, by_drop: bool) -> Result<bool, String> {
        let inst = self.rig.rules.get_mut(&id).expect("rule handles");
        let rule = inst.handles.pop().expect("a handle");
        let last = inst.handles.is_empty();
        if by_drop {
            drop(rule);
        } else if let Err(e) = rule.remove() {
            return Err(self.fail(format!("removing r{id} of m{mid}: {e}")));
        }
        if last {
            self.rig.rules.remove(&id);
            let r = self.model.remove_rule(mid, id);
            self.removed.push(r.value);
            self.stats.rules -= 1;
        }
        Ok(last)
    }

    fn set_actions(&mut self, at: usize, n: usize, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let (mid, table) = (self.live[at].id, self.live[at].table);
        let m = Arc::clone(&self.rig.matchers[&mid]);
        let mut ids = self.rule_ids(mid);
        let (mut changed, mut refused) = (Vec::new(), 0);
        for _ in 0..n.min(ids.len()) {
            let id = ids.swap_remove(rng.below(ids.len() as u64) as usize);
            let acts = self.random_actions(&mut rng, table);
            let counter_last = counter_last_in(acts, rng.chance(50));
            let list = self
                .rig
                .list(table, &m, acts, counter_last)
                .map_err(|e| self.fail(e))?;
            let inst = self.rig.rules.get_mut(&id).expect("rule handles");
            let handles = inst.handles.len();
            let r = inst.handles[0].set_actions(&list);
            match (r, handles) {
                (Ok(()), 1) => {
                    inst.counter_last = counter_last;
                    self.model.set_actions(mid, id, acts);
                    changed.push(id);
                }
                (
                    Err(UpdateError::Update {
                        source: HtblError::Shared { handles: h },
                        ..
                    }),
                    n,
                ) if n > 1 && h as usize == n => refused += 1,
                (r, n) => {
                    return Err(self.fail(format!(
                        "new actions {acts:?} for r{id} of m{mid} ({n} handles): {r:?}"
                    )))
                }
            }
        }
        self.stats.changed += changed.len();
        self.log.push(format!(
            "new actions for {} rules of m{mid}, {refused} refused (shared)",
            changed.len()
        ));
        let values: Vec<MatchParam> = changed
            .iter()
            .take(PROBES)
            .filter_map(|id| {
                let (_, m) = self.model.matcher(mid)?;
                Some(m.rules.iter().find(|r| r.id == *id)?.value.clone())
            })
            .collect();
        for v in &values {
            self.check_packet(&mut rng, v)?;
        }
        Ok(())
    }

    // ---- packets ------------------------------------------------------------------------

    /// Sends the values of the last rules removed.
    fn probe_removed(&mut self, rng: &mut Rng) -> Result<(), String> {
        let probes: Vec<_> = self.removed.iter().rev().take(PROBES).cloned().collect();
        for v in probes {
            self.check_packet(rng, &v)?;
        }
        Ok(())
    }

    /// A packet description: a rule's value as is, with the fields outside its mask
    /// changed, or with one masked bit flipped; a removed rule's value; or a random
    /// packet.
    fn random_packet(&mut self, rng: &mut Rng) -> MatchParam {
        let kind = rng.below(100);
        let with_rules: Vec<usize> = (0..self.live.len())
            .filter(|&i| {
                self.model
                    .matcher(self.live[i].id)
                    .is_some_and(|(_, m)| !m.rules.is_empty())
            })
            .collect();
        if kind < 75 && !with_rules.is_empty() {
            let l = &self.live[rng.pick(&with_rules)];
            let (_, m) = self.model.matcher(l.id).expect("live matcher");
            let r = &m.rules[rng.below(m.rules.len() as u64) as usize];
            let noise = shapes::describe(rng, &l.shape.form, self.dom);
            let desc = shapes::merge(&r.value, &m.mask, &noise);
            return match kind {
                0..=14 => r.value.clone(),
                15..=44 => desc,
                _ => shapes::flip_masked_bit(rng, &desc, &m.mask).unwrap_or(desc),
            };
        }
        if kind < 85 && !self.removed.is_empty() {
            return self.removed[rng.below(self.removed.len() as u64) as usize].clone();
        }
        let form = if self.live.is_empty() || rng.chance(50) {
            shapes::Form::default()
        } else {
            self.live[rng.below(self.live.len() as u64) as usize]
                .shape
                .form
        };
        shapes::describe(rng, &form, self.dom)
    }

    /// Builds the packet `desc` describes, classifies it on both sides and compares.
    fn check_packet(&mut self, rng: &mut Rng, desc: &MatchParam) -> Result<(), String> {
        let mut desc = desc.clone();
        let side = match self.dom {
            Dom::NicRx => Side::Rx,
            Dom::NicTx => Side::Tx,
            Dom::Fdb => {
                // The e-switch only sees packets from the wire (its RX side) and from
                // its vports (its TX side).
                let mut src = desc.get(Section::Misc, misc::SOURCE_PORT);
                if src != WIRE_PORT && !VPORTS.contains(&src) {
                    src = rng.pick(&VPORTS);
                    desc.set(Section::Misc, misc::SOURCE_PORT, src);
                }
                if src == WIRE_PORT {
                    Side::Rx
                } else {
                    Side::Tx
                }
            }
        };
        let mut meta = Metadata::new(side);
        if self.dom == Dom::Fdb {
            meta.source_vport = desc.get(Section::Misc, misc::SOURCE_PORT) as u16;
        }
        let Ok((packet, _)) = build_from_match_lossy(&desc, meta) else {
            // A flipped bit no packet can carry (two tunnels, ...).
            self.stats.skipped += 1;
            return Ok(());
        };
        self.stats.packets += 1;
        let fields = packet.fields();
        let len = packet.len() as u64;
        let (want, hops) = self.model.classify(&fields);
        self.stats.hits += usize::from(!hops.is_empty());
        match self.rig.classify(packet) {
            Ok((ref v, _)) if *v == want => {
                for &c in &want.counters {
                    let t = &mut self.counted[c as usize];
                    t.0 += 1;
                    t.1 += len;
                }
                Ok(())
            }
            got => Err(self.fail(self.mismatch(&desc, &fields, &want, &hops, got))),
        }
    }

    fn mismatch(
        &self,
        desc: &MatchParam,
        fields: &MatchParam,
        want: &Verdict,
        hops: &[Hop],
        got: Result<(Verdict, Vec<Delivery>), String>,
    ) -> String {
        let mut s = format!(
            "verdicts differ\n  packet: {desc:?}\n  parsed: {fields:?}\n  model:     {want:?}\n"
        );
        for h in hops {
            let (_, m) = self.model.matcher(h.matcher).expect("matcher");
            let r = m.rules.iter().find(|r| r.id == h.rule).expect("rule");
            let _ = writeln!(
                s,
                "    t{} m{} r{}: {:?} {:?}",
                h.table, h.matcher, h.rule, r.value, r.actions
            );
        }
        match got {
            Ok((v, d)) => {
                let _ = writeln!(s, "  simulator: {v:?}");
                for stage in &d[0].stages {
                    let _ = writeln!(s, "    {stage:?}");
                }
            }
            Err(e) => {
                let _ = writeln!(s, "  simulator: {e}");
            }
        }
        for (t, table) in self.model.tables.iter().enumerate() {
            let order: Vec<String> = table
                .matchers
                .iter()
                .map(|m| format!("m{}(p{}, {} rules)", m.id, m.priority, m.rules.len()))
                .collect();
            let _ = writeln!(s, "  t{t} lookup order: {}", order.join(" "));
        }
        s
    }

    // ---- counts -----------------------------------------------------------------------

    /// The driver's matcher and rule-handle counts against the model's.
    fn check_counts(&self) -> Result<(), String> {
        for (t, table) in self.model.tables.iter().enumerate() {
            let n = self.rig.tables[t].matcher_count();
            if n != table.matchers.len() {
                return Err(self.fail(format!(
                    "t{t} has {n} matchers, the model {}",
                    table.matchers.len()
                )));
            }
            for m in &table.matchers {
                let matcher = &self.rig.matchers[&m.id];
                let stats = matcher.stats();
                let got = stats.rules();
                let want = self.expected_handles(m);
                if got != want {
                    return Err(
                        self.fail(format!("m{} reports {got} rules, the model {want}", m.id))
                    );
                }
                let want = match matcher.placement() {
                    ShardPlacement::Thread => self.expected_routes(m),
                    ShardPlacement::Tags => 0,
                };
                // Two values whose route keys collide (32 bits) share a route: a
                // route or two fewer is a collision, about one in 2^33 / n^2 matchers;
                // more routes than values is a leak.
                if stats.routes > want || stats.routes + 2 < want {
                    return Err(self.fail(format!(
                        "m{} has {} routes, the model's values on their sides {want}",
                        m.id, stats.routes
                    )));
                }
            }
        }
        Ok(())
    }

    /// What `Matcher::stats().rules()` reports: the larger of the sides' rule handle
    /// counts. An FDB rule matching the source port lives on one side only: the RX side
    /// (traffic from the wire) for the uplink, the TX side (from the vports) for the
    /// others.
    fn expected_handles(&self, m: &RefMatcher) -> u64 {
        let handles = |r: &RefRule| self.rig.rules[&r.id].handles.len();
        let all: usize = m.rules.iter().map(handles).sum();
        if self.dom != Dom::Fdb || m.mask.get(Section::Misc, misc::SOURCE_PORT) == 0 {
            return all as u64;
        }
        let rx: usize = m
            .rules
            .iter()
            .filter(|r| r.value.get(Section::Misc, misc::SOURCE_PORT) == WIRE_PORT)
            .map(handles)
            .sum();
        rx.max(all - rx) as u64
    }

    /// The routes of a matcher placed by thread: one per distinct installed value and
    /// side it is on (rules sharing an installed rule share its routes).
    fn expected_routes(&self, m: &RefMatcher) -> usize {
        let mut seen = std::collections::HashSet::new();
        m.rules
            .iter()
            .filter(|r| seen.insert(&r.value))
            .map(|r| self.rig.rules[&r.id].handles[0].sides().count())
            .sum()
    }

    /// Every counter's totals against the packets the model counted.
    fn check_counters(&self) -> Result<(), String> {
        let got = self
            .rig
            .counter
            .query_many(0, 1 << LOG_COUNTERS)
            .map_err(|e| self.fail(format!("query counters: {e}")))?;
        for (i, (g, w)) in got.iter().zip(&self.counted).enumerate() {
            if (g.packets, g.bytes) != *w {
                return Err(self.fail(format!(
                    "counter {i}: {} packets / {} bytes, the model {} / {}",
                    g.packets, g.bytes, w.0, w.1
                )));
            }
        }
        Ok(())
    }

    /// The end of a case: counters compared, then everything dropped (rules before the
    /// matchers they hold), after which the values of rules that were live must reach
    /// the side's default.
    pub fn finish(mut self) -> Result<(), String> {
        self.check_counters()?;
        // Every update posted without waiting landed.
        for (id, m) in &self.rig.matchers {
            if let Err((side, e)) = m.sync() {
                return Err(self.fail(format!("m{id}: sync on {side}: {e}")));
            }
        }
        let values: Vec<MatchParam> = self
            .model
            .tables
            .iter()
            .flat_map(|t| &t.matchers)
            .flat_map(|m| &m.rules)
            .map(|r| r.value.clone())
            .take(PROBES)
            .collect();
        self.rig.rules.clear();
        self.rig.matchers.clear();
        for t in &mut self.model.tables {
            t.matchers.clear();
        }
        self.live.clear();
        self.log.push("drop every rule and matcher".into());
        self.check_counts()?;
        let mut rng = Rng::new(0);
        for v in &values {
            self.check_packet(&mut rng, v)?;
        }
        if std::env::var_os("MODEL_STATS").is_some() {
            eprintln!("{}: {:?}", self.log[0], self.stats);
        }
        Ok(())
    }
}

/// True when two action sets do the same to a packet (and so may encode to the same
/// STEs): the same tag, counter, and destination, where no fate and the default-miss
/// action go to the side's `default`, which may also be a drop or a vport.
fn same_effect(a: RefActions, b: RefActions, default: Terminal) -> bool {
    let dest = |f: RefFate| match f {
        RefFate::None | RefFate::DefaultMiss => Ok(default),
        RefFate::Drop => Ok(Terminal::Drop),
        RefFate::To(t) => Ok(t),
        RefFate::Goto(t) => Err(t),
    };
    (a.tag, a.counter, dest(a.fate)) == (b.tag, b.counter, dest(b.fate))
}

/// Runs `case` on `model`.
pub fn run(model: DeviceModel, case: &Case) -> Result<(), String> {
    let mut run = Run::new(model, case);
    for op in &case.ops {
        run.op(op)?;
    }
    run.finish()
}
