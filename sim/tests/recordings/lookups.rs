//! Lookup checks of a recording (README §5): every `expect` entry and every probe is
//! walked over the replayed ICM with the simulator's pipeline, once with the match value
//! as the packet's fields and once as a real packet built from the value.
//!
//! The driver's recordings add destinations and counters (see `schema.rs`): a vport or
//! uplink destination must end at the address `fake_device.vports` gives it on the
//! walk's side, a TIR or QP destination at the address its `expect` entry names (the
//! file gives no other), and the flow counters a walk counts must be exactly the
//! deciding rule's, counted at its STE or the action STEs after it. In an FDB domain a
//! rule of a matcher that masks the source port lives on its source's side only, and
//! has `expect` entries there only.

use super::schema::{Expect, Probe, ProbeExpect, Recording, Rule, RuleAction, Side, UPLINK_VPORT};
use sim::endpoint::Terminal;
use sim::icm::{Icm, LINE};
use sim::packet::{build_from_match_lossy, Metadata, Side as PacketSide};
use sim::pipeline::{walk, Action, EnvError, Environment, Outcome, Unedited, Verdict, WalkConfig};
use std::collections::{BTreeMap, BTreeSet};
use ste_builder::{MatchParam, SteFormat};

/// The device as the recordings see it: ICM, the firmware's addresses, the roots of the
/// recorded tables as walk ends, and the flow counters the rules name. The expectations
/// stop at a goto's destination root (README §6.3); the real device would go on into
/// that table.
struct RecordingEnv<'a> {
    icm: &'a Icm,
    terminals: BTreeMap<u64, Terminal>,
    counters: BTreeSet<u32>,
}

impl Environment for RecordingEnv<'_> {
    fn terminal(&self, addr: u64) -> Option<Terminal> {
        self.terminals.get(&addr).copied()
    }

    fn read_ste(&self, addr: u64) -> Result<[u8; LINE], EnvError> {
        self.icm
            .read_line(addr)
            .map_err(|_| EnvError::NotBacked { addr })
    }

    fn count(&self, id: u32, _bytes: u64) -> Result<(), EnvError> {
        // Only the counters some rule's counter action names exist.
        if self.counters.contains(&id) {
            Ok(())
        } else {
            Err(EnvError::NoCounter(id))
        }
    }
}

/// The outcome the walk must have.
struct Want<'a> {
    final_addr: u64,
    flow_tag: Option<u32>,
    /// The last non-zero-mask STE hit, when known.
    hit_ste: Option<u64>,
    /// The flow counters the walk must count (sorted): the deciding rule's.
    counters: &'a [u32],
}

/// Pass and fail counts with the failures' descriptions.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: Vec<String>,
    /// Checks that cannot be made, with why (neither passed nor failed).
    pub skipped: Vec<String>,
}

impl Tally {
    pub fn skip(&mut self, what: String, why: String) {
        self.skipped.push(format!("{what}: {why}"));
    }

    pub fn record(&mut self, what: impl FnOnce() -> String, problems: Vec<String>) {
        if problems.is_empty() {
            self.passed += 1;
        } else {
            self.failed
                .push(format!("{}: {}", what(), problems.join("; ")));
        }
    }
}

/// Checks common to rules and probes: final address, flow tags, last rule hit, flow
/// counters.
fn check_outcome(v: &Verdict, want: &Want<'_>, problems: &mut Vec<String>) {
    match v.final_addr() {
        Some(a) if a == want.final_addr => {}
        Some(a) => problems.push(format!("ends at {a:#x}, expected {:#x}", want.final_addr)),
        None => problems.push(format!("{:?}", v.fate)),
    }
    let tags = v.flow_tags();
    let want_tags: Vec<u32> = want.flow_tag.into_iter().collect();
    if tags != want_tags {
        problems.push(format!("flow tags {tags:x?}, expected {want_tags:x?}"));
    }
    if let Some(h) = want.hit_ste {
        if v.last_rule_hit() != Some(h) {
            problems.push(format!(
                "last rule hit {:x?}, expected {h:#x}",
                v.last_rule_hit()
            ));
        }
    }
    check_counters(v, want, problems);
}

/// The walk counts exactly the wanted counters; with a known deciding STE, at that STE
/// or after it (its action STEs), never on the way to it.
fn check_counters(v: &Verdict, want: &Want<'_>, problems: &mut Vec<String>) {
    let mut counted = v.counters();
    counted.sort_unstable();
    if counted != want.counters {
        problems.push(format!(
            "flow counters {counted:x?}, expected {:x?}",
            want.counters
        ));
    }
    let Some(hit) = want.hit_ste else {
        return;
    };
    let decided_at = v
        .trace
        .iter()
        .rposition(|h| h.addr == hit && h.masked && matches!(h.outcome, Outcome::Hit { .. }));
    let Some(at) = decided_at else {
        return; // already reported as the wrong last hit
    };
    let early: Vec<u32> = v.trace[..at]
        .iter()
        .flat_map(|h| &h.actions)
        .filter_map(|a| match a {
            Action::Counter(id) => Some(*id),
            _ => None,
        })
        .collect();
    if !early.is_empty() {
        problems.push(format!(
            "flow counters {early:x?} counted before the rule's STE {hit:#x}"
        ));
    }
}

/// The rule that decides rule `i`'s packets (README §5.2): the first live rule of its
/// matcher with the same value; `None` for a deleted rule.
fn winner(rec: &Recording, i: usize) -> Option<&Rule> {
    let rule = rec.rules.get(i).filter(|r| !r.deleted)?;
    let pad = |v: &[u8]| {
        let mut b = v.to_vec();
        b.resize(448, 0);
        b
    };
    let same =
        |r: &Rule| r.matcher == rule.matcher && !r.deleted && pad(&r.value) == pad(&rule.value);
    Some(rec.rules.iter().find(|r| same(r)).unwrap_or(rule))
}

/// The flow counters a rule counts on, sorted.
fn counters_of(rule: Option<&Rule>) -> Vec<u32> {
    let mut ids: Vec<u32> = rule
        .into_iter()
        .flat_map(|r| r.actions.iter().filter_map(|a| a.counter_id()))
        .collect();
    ids.sort_unstable();
    ids
}

/// What the rules say of a rule's packet on one side.
struct Derived {
    /// Where the walk ends; `None` when the file names the destination but not its
    /// address (a TIR or a QP).
    final_addr: Option<u64>,
    flow_tag: Option<u32>,
}

/// The expectation of rule `i` on `side` derived from the rules (README §5.5): the
/// first live rule of its matcher with the same value decides; a deleted rule falls
/// through to the default, and so does a rule without a fate action.
fn derive(rec: &Recording, i: usize, side: Side) -> Result<Derived, String> {
    let addrs = rec
        .sides
        .get(&side)
        .ok_or_else(|| format!("no {} side addresses", side.name()))?;
    rec.rules.get(i).ok_or_else(|| format!("no rule {i}"))?;
    let Some(winner) = winner(rec, i) else {
        return Ok(Derived {
            final_addr: Some(addrs.default),
            flow_tag: None,
        });
    };
    let vport = |n: u16| {
        rec.vport_addr(n, side).ok_or_else(|| {
            format!(
                "vport {n:#x} has no {} address in fake_device.vports",
                side.name()
            )
        })
    };
    let mut final_addr = Some(addrs.default);
    let mut tag = None;
    for a in &winner.actions {
        match *a {
            RuleAction::Drop => final_addr = Some(addrs.drop),
            RuleAction::DefaultMiss => final_addr = Some(addrs.default),
            RuleAction::DestTable(t) => {
                let root = rec
                    .tables
                    .get(t)
                    .and_then(|t| t.root(side))
                    .ok_or_else(|| format!("table {t} has no {} root", side.name()))?;
                final_addr = Some(root);
            }
            RuleAction::Tag(v) => tag = Some(v),
            RuleAction::DestTir(_) | RuleAction::DestQp(_) => final_addr = None,
            RuleAction::DestVport(n) => final_addr = Some(vport(n)?),
            RuleAction::DestUplink => final_addr = Some(vport(UPLINK_VPORT)?),
            RuleAction::Counter { .. } => {}
        }
    }
    Ok(Derived {
        final_addr,
        flow_tag: tag,
    })
}

/// The terminal a TIR or QP destination of `rule` ends at, if it has one.
fn queue_terminal(rule: &Rule) -> Option<Terminal> {
    rule.actions.iter().rev().find_map(|a| match *a {
        RuleAction::DestTir(n) => Some(Terminal::Tir(n)),
        RuleAction::DestQp(n) => Some(Terminal::Qp(n)),
        _ => None,
    })
}

/// How a walk sees the packet of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The entry's match value taken as the packet's fields.
    Value,
    /// A real packet built from the value, parsed.
    Packet,
}

impl Form {
    const BOTH: [Form; 2] = [Form::Value, Form::Packet];

    fn suffix(self) -> &'static str {
        match self {
            Form::Value => "",
            Form::Packet => " as a packet",
        }
    }
}

/// The fields a walk sees for `value` in `form` on `side`. The error says why no packet
/// carries the value.
fn fields_of(value: &[u8], side: Side, form: Form) -> Result<Unedited, String> {
    let fields = MatchParam::from_bytes(value).map_err(|e| e.to_string())?;
    if form == Form::Value {
        return Ok(Unedited { fields, len: 64 });
    }
    let meta = Metadata::new(match side {
        Side::Rx => PacketSide::Rx,
        Side::Tx => PacketSide::Tx,
    });
    let (packet, dropped) = build_from_match_lossy(&fields, meta)
        .map_err(|e| format!("no packet carries the value: {e}"))?;
    if !dropped.is_empty() {
        let what: Vec<String> = dropped
            .iter()
            .map(|d| format!("{} = {:#x} (parses as {:#x})", d.field, d.wanted, d.got))
            .collect();
        return Err(format!(
            "the built packet does not carry {}",
            what.join(", ")
        ));
    }
    Ok(Unedited {
        fields: packet.fields(),
        len: packet.len() as u64,
    })
}

/// What the walk of a rule's packet must show.
enum RuleWant<'a> {
    /// The recorded `expect` entry, and the deciding rule's counters.
    Recorded(&'a Expect, Vec<u32>),
    /// Derived from the rules (files without `expect`).
    Derived {
        final_addr: u64,
        flow_tag: Option<u32>,
        counters: Vec<u32>,
    },
}

/// The problems of walk `v` against `want`.
fn rule_walk_problems(want: &RuleWant<'_>, v: &Verdict) -> Vec<String> {
    let mut problems = Vec::new();
    let (e, counters) = match want {
        RuleWant::Derived {
            final_addr,
            flow_tag,
            counters,
        } => {
            check_outcome(
                v,
                &Want {
                    final_addr: *final_addr,
                    flow_tag: *flow_tag,
                    hit_ste: None,
                    counters,
                },
                &mut problems,
            );
            return problems;
        }
        RuleWant::Recorded(e, counters) => (e, counters),
    };
    if e.deleted {
        check_outcome(
            v,
            &Want {
                final_addr: e.final_addr,
                flow_tag: None,
                hit_ste: None,
                counters: &[],
            },
            &mut problems,
        );
        if !v.missed_into(e.end_anchor) {
            problems.push(format!(
                "did not miss into the end anchor {:#x}",
                e.end_anchor
            ));
        }
        if e.rule_ste.is_some() && v.last_rule_hit() == e.rule_ste {
            problems.push("still hits the deleted rule's STE".into());
        }
    } else {
        check_outcome(
            v,
            &Want {
                final_addr: e.final_addr,
                flow_tag: e.flow_tag,
                hit_ste: e.hit_ste,
                counters,
            },
            &mut problems,
        );
        if e.hit_ste.is_none() {
            problems.push("a live rule's entry has no hit STE".into());
        }
        if e.shadowed {
            // The duplicate's own STE sits behind the winner's: never hit.
            let hit_own = v
                .trace
                .iter()
                .any(|h| Some(h.addr) == e.rule_ste && matches!(h.outcome, Outcome::Hit { .. }));
            if hit_own {
                problems.push("the shadowed duplicate's STE was hit".into());
            }
        } else if e.hit_ste != e.rule_ste {
            problems.push("hit STE and rule STE differ for an unshadowed rule".into());
        }
    }
    problems
}

/// Walks every expectation of `rec` over `icm`, each twice: with the match value as the
/// packet's fields, and as a real packet built from the value.
pub fn check(rec: &Recording, icm: &Icm, tally: &mut Tally) -> Result<(), String> {
    let format = SteFormat::from_version(rec.steering_format_version)
        .ok_or_else(|| format!("steering format {}", rec.steering_format_version))?;
    let caps = rec.caps();
    let cfg = WalkConfig::new(format, &caps);
    let mut terminals = rec.firmware.clone();
    for (t, table) in rec.tables.iter().enumerate() {
        for root in [table.root_rx, table.root_tx].into_iter().flatten() {
            terminals.insert(root, Terminal::FlowTable(t as u32));
        }
    }
    // A TIR's or QP's address is named only by the entries of the rules going there.
    for e in rec.expect.iter().flatten().filter(|e| !e.deleted) {
        if let Some(t) = winner(rec, e.rule).and_then(queue_terminal) {
            terminals.entry(e.final_addr).or_insert(t);
        }
    }
    let env = RecordingEnv {
        icm,
        terminals,
        counters: rec.counter_ids().collect(),
    };

    // Rules: the recorded expectations, or the derived ones.
    let entries: Vec<_> = match &rec.expect {
        Some(list) => {
            // One entry per rule and side it is installed on, none elsewhere.
            let (mut missing, mut extra) = (Vec::new(), Vec::new());
            for i in 0..rec.rules.len() {
                for &side in rec.sides.keys() {
                    let has = list.iter().any(|e| e.rule == i && e.side == side);
                    let name = || format!("rule {i} {}", side.name());
                    match (rec.rule_on_side(i, side), has) {
                        (true, false) => missing.push(name()),
                        (false, true) => extra.push(name()),
                        _ => {}
                    }
                }
            }
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!("no entry for {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                problems.push(format!(
                    "an entry for {}, a side the rule is not installed on (its matcher \
                     masks the source port)",
                    extra.join(", ")
                ));
            }
            if !problems.is_empty() {
                tally.record(|| "expect coverage".to_string(), problems);
            }
            list.iter().map(|e| (e.rule, e.side, Some(e))).collect()
        }
        None => rec
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, _)| {
                rec.sides
                    .keys()
                    .filter(move |&&side| rec.rule_on_side(i, side))
                    .map(move |&side| (i, side, None))
            })
            .collect(),
    };
    for (i, side, e) in entries {
        let rule = rec
            .rules
            .get(i)
            .ok_or_else(|| format!("expect names rule {i}"))?;
        let root = match e {
            Some(e) => Some(e.root),
            None => rule_root(rec, i, side),
        };
        let Some(root) = root else {
            tally.record(
                || format!("rule {i} {}", side.name()),
                vec!["no root".into()],
            );
            continue;
        };
        // The entry itself, checked once: its root and its agreement with the rules.
        let mut consistency = Vec::new();
        let derived = derive(rec, i, side);
        let counters = counters_of(winner(rec, i));
        let want = match (e, derived) {
            (Some(e), derived) => {
                if rule_root(rec, i, side) != Some(root) {
                    consistency.push(format!(
                        "root {root:#x} is not the root of the rule's table"
                    ));
                }
                match derived {
                    // A TIR's or QP's address: the entry's word is all there is.
                    Ok(d)
                        if d.final_addr.unwrap_or(e.final_addr) == e.final_addr
                            && d.flow_tag == e.flow_tag => {}
                    Ok(d) => consistency.push(format!(
                        "entry says {:#x}/{:x?}, rules say {:x?}/{:x?}",
                        e.final_addr, e.flow_tag, d.final_addr, d.flow_tag
                    )),
                    Err(m) => consistency.push(m),
                }
                if e.deleted != rule.deleted {
                    consistency.push("entry and rule disagree on deletion".into());
                }
                Some(RuleWant::Recorded(e, counters))
            }
            (
                None,
                Ok(Derived {
                    final_addr: Some(final_addr),
                    flow_tag,
                }),
            ) => Some(RuleWant::Derived {
                final_addr,
                flow_tag,
                counters,
            }),
            (
                None,
                Ok(Derived {
                    final_addr: None, ..
                }),
            ) => {
                consistency.push(
                    "the rule goes to a TIR or QP whose address only an expect entry gives".into(),
                );
                None
            }
            (None, Err(m)) => {
                consistency.push(m);
                None
            }
        };
        for form in Form::BOTH {
            let mut problems = if form == Form::Value {
                std::mem::take(&mut consistency)
            } else {
                Vec::new()
            };
            match (&want, fields_of(&rule.value, side, form)) {
                (Some(want), Ok(mut packet)) => {
                    let v = walk(&env, &cfg, root, &mut packet);
                    let walked = rule_walk_problems(want, &v);
                    if !walked.is_empty() {
                        problems.extend(walked);
                        problems.push(format!("trace {}", trace_text(&v)));
                    }
                }
                (None, _) => {}
                (Some(_), Err(m)) => problems.push(m),
            }
            tally.record(
                || format!("rule {i} {}{}", side.name(), form.suffix()),
                problems,
            );
        }
    }

    for (n, p) in rec.probes.iter().enumerate() {
        for x in &p.expect {
            for form in Form::BOTH {
                let what = || {
                    format!(
                        "probe {n} {} ({}){}",
                        x.side.name(),
                        p.description,
                        form.suffix()
                    )
                };
                let mut problems = Vec::new();
                match fields_of(&p.value, x.side, form) {
                    Ok(mut packet) => {
                        let v = walk(&env, &cfg, x.root, &mut packet);
                        probe_walk_problems(rec, p, x, &v, &mut problems);
                    }
                    // Some probes describe lookup keys no frame produces (a VLAN id on
                    // an untagged frame): their expectation holds for the key, and the
                    // value form above checks it.
                    Err(m) => {
                        tally.skip(what(), m);
                        continue;
                    }
                }
                tally.record(what, problems);
            }
        }
    }
    Ok(())
}

/// The problems of probe walk `v` against the probe's side `x`.
fn probe_walk_problems(
    rec: &Recording,
    p: &Probe,
    x: &ProbeExpect,
    v: &Verdict,
    problems: &mut Vec<String>,
) {
    let counters = counters_of(p.expected_rule.and_then(|r| winner(rec, r)));
    check_outcome(
        v,
        &Want {
            final_addr: x.final_addr,
            flow_tag: x.flow_tag,
            hit_ste: p.expected_rule.and(x.hit_ste),
            counters: &counters,
        },
        problems,
    );
    if p.expected_rule.is_some() && x.hit_ste.is_none() {
        problems.push("a probe with an expected rule has no hit STE".into());
    }
    if p.expected_rule.is_none() {
        // A probe that hits no rule ends with a miss.
        let last_missed = matches!(
            v.trace.last().map(|h| h.outcome),
            Some(Outcome::Miss { .. })
        );
        if !last_missed || Some(x.final_addr) != rec.sides.get(&x.side).map(|s| s.default) {
            problems.push("a probe of no rule must miss to the default".into());
        }
    }
    if !problems.is_empty() {
        problems.push(format!("trace {}", trace_text(v)));
    }
}

/// The root of rule `i`'s table on `side`, found through its matcher's table. Files
/// without `expect` still name each matcher's table.
fn rule_root(rec: &Recording, i: usize, side: Side) -> Option<u64> {
    let matcher = rec.rules.get(i)?.matcher;
    let table = *rec.matcher_tables.get(matcher)?;
    rec.tables.get(table)?.root(side)
}

fn trace_text(v: &Verdict) -> String {
    v.trace
        .iter()
        .map(|h| {
            let (c, next) = match h.outcome {
                Outcome::Hit { next } => ("hit", next),
                Outcome::Miss { next } => ("miss", next),
            };
            format!("{:#x}[{:#06x}] {c} -> {next:#x}", h.addr, h.lu_type)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
