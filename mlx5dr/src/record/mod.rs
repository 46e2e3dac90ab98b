//! Recordings: the driver's own ICM writes and objects, written in the JSON schema of
//! rdma-core's recordings (`sim/tests/data/recordings/README.md`), so that every checker
//! written for rdma-core's output (the simulator's replay and lookup test among them)
//! applies to ours.
//!
//! A [`Recorder`] is attached to a [`Domain`] ([`Recorder::start`], or [`from_env`] when
//! `MLX5DR_RECORD=<path>` is set). From then on it sees every ICM write on every send
//! ring of the domain, in posting order (a [`WriteTap`]), and keeps the image they
//! leave. The caller registers the objects whose meaning the file should carry:
//!
//! ```text
//!   rec = Recorder::start(&dmn)          every write from here on is logged
//!   rec.table(&t)                        tables[i]   (phase table_create)
//!   rec.matcher(&m)                      matchers[i] (phase matcher_create)
//!   id = rec.rule(&rule, &value)         rules[i]    (phase rule_insert)
//!   rec.remove(id, rule)                 deleted     (phase rule_delete)
//!   rec.expect_for(id, &rule)            expect: computed from the driver's state now
//!   rec.probe(..)                        probes
//!   rec.write_to(path) / rec.finish()    the JSON file
//! ```
//!
//! The `expect` entries come from the driver's own objects, never from walking ICM:
//! the table's root anchor, the final address the rule's action list encodes, its flow
//! tag, the address of the rule's last STE as its hash tables know it, and its
//! matcher's end anchor. A checker that walks the recorded ICM (the simulator's
//! `recordings` test) then checks them independently. Addresses move when tables grow,
//! so ask for expectations ([`Recorder::expect_for`]) once the rule set is final;
//! [`Recorder::finish`] refuses a file in which some live rules have expectations and
//! others have none.
//!
//! Remove recorded rules with [`Recorder::remove`]: a recorded rule dropped any other
//! way still counts as live in the file, and its expectations would then be wrong.
//!
//! Phases and the `insert_writes`/`delete_writes` spans are the writes since the
//! previous registration: exact when one thread builds the rule set, approximate when
//! several write at once (the `writes` list itself is always complete and in order).
//! Start recording before the first table: writes made before are not in the file, and
//! the image then lacks what they wrote.
//!
//! What the file cannot say in rdma-core's terms is written in the same style:
//! actions other than drop, goto and tag (`default_miss`, `dest_tir`, `dest_qp`,
//! `dest_vport`, `dest_uplink`, `counter`), the e-switch's vports
//! (`fake_device.vports`, which source-port lookups and vport destinations need), and
//! `encap` writes. Checkers made for rdma-core's files may refuse those. There are no `chunk_events` and no
//! `rdma_core_dump`, and our duplicate refusal means no rule is ever `shadowed`.

mod export;
mod json;
mod log;

#[cfg(all(test, feature = "sim"))]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ste_builder::MatchParam;

use crate::action::ActionKind;
use crate::caps::{DeviceCaps, UPLINK_VPORT};
use crate::device::IcmRegion;
use crate::domain::{Domain, DomainType, SideInfo, Table};
use crate::matcher::Matcher;
use crate::matching::DomainSide;
use crate::rule::{Rule, RuleRemoveError};
use crate::send::WriteTap;

use json::Json;
use log::WriteLog;

/// The environment variable naming the file [`from_env`] records to.
pub const RECORD_ENV: &str = "MLX5DR_RECORD";

/// A recorder for `dmn` if `MLX5DR_RECORD` names a file (non-empty); [`Recorder::finish`]
/// writes it there. For examples: recording is off unless asked for.
pub fn from_env(dmn: &Arc<Domain>) -> Option<Arc<Recorder>> {
    let path = std::env::var_os(RECORD_ENV).filter(|p| !p.is_empty())?;
    Some(Recorder::attach(dmn, Some(PathBuf::from(path))))
}

/// Why a recording call failed. A failed call records nothing.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The object belongs to another domain than the recorded one.
    #[error("the {what} belongs to another domain than the recorded one")]
    OtherDomain {
        /// What was given: a table, matcher or rule.
        what: &'static str,
    },
    /// No rule of that id was recorded.
    #[error("no rule {0} was recorded")]
    UnknownRule(usize),
    /// The rule was removed already.
    #[error("rule {0} was removed already")]
    Removed(usize),
    /// The rule handle given is not of the recorded rule's matcher.
    #[error("the rule given for rule {0} belongs to another matcher")]
    NotTheRule(usize),
    /// Some live rules have expectations and others none (call
    /// [`Recorder::expect_for`] for every live rule, or for none).
    #[error("{missing} live rule(s) have no expectation (the first is rule {first}); call Recorder::expect_for for each")]
    NoExpectation {
        /// How many.
        missing: usize,
        /// The first of them.
        first: usize,
    },
    /// The removal failed; the rule is handed back in the error if still installed.
    #[error("removing rule {rule}: {source}")]
    Remove {
        /// The rule's id.
        rule: usize,
        /// Why.
        #[source]
        source: Box<RuleRemoveError>,
    },
    /// [`Recorder::finish`] of a recorder without a file (not made by [`from_env`]).
    #[error("the recorder has no file to write to (only from_env gives one); use write_to")]
    NoPath,
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A recorded rule: its index in the file's `rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub usize);

/// A table as recorded.
#[derive(Debug)]
struct TableRec {
    /// Identity (the allocation stays while the weak reference does).
    table: Weak<Table>,
    level: u8,
    fw_id: u32,
    root_rx: Option<u64>,
    root_tx: Option<u64>,
}

impl TableRec {
    fn of(t: &Arc<Table>) -> TableRec {
        let root = |rx: bool| {
            t.domain()
                .sides()
                .iter()
                .find(|s| s.rx() == rx)
                .and_then(|s| t.root_addr(*s))
        };
        TableRec {
            table: Arc::downgrade(t),
            level: t.level(),
            fw_id: t.fw_id(),
            root_rx: root(true),
            root_tx: root(false),
        }
    }
}

/// One side of a matcher: its anchors and lookups.
#[derive(Debug, Clone)]
struct AnchorRec {
    side: DomainSide,
    start: u64,
    end: u64,
    lu_types: Vec<u16>,
}

/// A matcher as recorded.
#[derive(Debug)]
struct MatcherRec {
    matcher: Weak<Matcher>,
    table: usize,
    priority: u32,
    criteria: u8,
    mask: Vec<u8>,
    sides: Vec<AnchorRec>,
}

/// A matcher's per-side anchors now (locks each side briefly).
fn anchors_of(m: &Matcher) -> Vec<AnchorRec> {
    m.table()
        .domain()
        .sides()
        .iter()
        .filter_map(|&side| {
            let (start, end) = m.anchors(side)?;
            Some(AnchorRec {
                side,
                start,
                end,
                lu_types: m.lu_types(side)?,
            })
        })
        .collect()
}

/// A rule action, in the file's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ActionRec {
    Drop,
    DefaultMiss,
    DestTable(usize),
    Tag(u32),
    Tir(u32),
    Qp(u32),
    Vport(u16),
    Counter { id: u32, offset: u32 },
}

impl ActionRec {
    fn json(&self) -> Json {
        let ty = |t: &str| ("type", Json::from(t));
        Json::Obj(match self {
            ActionRec::Drop => vec![ty("drop")],
            ActionRec::DefaultMiss => vec![ty("default_miss")],
            ActionRec::DestTable(t) => vec![ty("dest_table"), ("table", (*t).into())],
            ActionRec::Tag(v) => vec![ty("tag"), ("value", (*v).into())],
            ActionRec::Tir(n) => vec![ty("dest_tir"), ("tirn", (*n).into())],
            ActionRec::Qp(n) => vec![ty("dest_qp"), ("qpn", (*n).into())],
            ActionRec::Vport(UPLINK_VPORT) => vec![ty("dest_uplink")],
            ActionRec::Vport(n) => vec![ty("dest_vport"), ("vport", (*n).into())],
            ActionRec::Counter { id, offset } => vec![
                ty("counter"),
                ("id", (*id).into()),
                ("offset", (*offset).into()),
            ],
        })
    }
}

/// One `expect` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExpectRec {
    side: DomainSide,
    root: u64,
    final_addr: u64,
    flow_tag: Option<u32>,
    /// The rule's last STE (for a removed rule, before removal).
    rule_ste: u64,
    end_anchor: u64,
}

/// A removal.
#[derive(Debug, Clone, Copy)]
struct Deletion {
    order: usize,
    writes: (usize, usize),
}

/// A rule as recorded.
#[derive(Debug)]
struct RuleRec {
    matcher: usize,
    /// The matcher, to check the handles given later.
    matcher_ref: Weak<Matcher>,
    value: Vec<u8>,
    actions: Vec<ActionRec>,
    insert_writes: (usize, usize),
    deleted: Option<Deletion>,
    expect: Vec<ExpectRec>,
}

/// One side of a probe.
#[derive(Debug, Clone)]
struct ProbeSide {
    side: DomainSide,
    root: u64,
    final_addr: u64,
    flow_tag: Option<u32>,
    hit: Option<u64>,
}

/// A probe: a packet value and where it must end.
#[derive(Debug)]
struct ProbeRec {
    description: String,
    table: usize,
    value: Vec<u8>,
    expected_rule: Option<usize>,
    sides: Vec<ProbeSide>,
}

/// What the recorder knows of its domain, fixed at the start (no reference to the
/// domain is kept but a weak one: the domain's rings hold the recorder).
#[derive(Debug)]
struct DomainInfo {
    domain_type: DomainType,
    sides: Vec<SideInfo>,
    caps: DeviceCaps,
    max_send: usize,
}

/// The recorded state.
#[derive(Debug, Default)]
struct State {
    log: WriteLog,
    scenario: String,
    description: String,
    tables: Vec<TableRec>,
    matchers: Vec<MatcherRec>,
    rules: Vec<RuleRec>,
    probes: Vec<ProbeRec>,
    deletions: usize,
}

/// Records a domain's ICM writes and the objects registered with it, and writes them as
/// a recording. See the module documentation.
///
/// Lock order: the recorder's lock is taken last (the write tap runs under a send
/// ring's lock, often under a matcher side's lock), so the recorder never calls into
/// the driver while holding it.
#[derive(Debug)]
pub struct Recorder {
    dmn: Weak<Domain>,
    info: DomainInfo,
    path: Option<PathBuf>,
    state: Mutex<State>,
}

impl WriteTap for Recorder {
    fn write(&self, region: &IcmRegion, icm_addr: u64, data: &[u8]) {
        self.state().log.write(region.kind, icm_addr, data);
    }
}

/// The JSON name of a side.
fn side_name(side: DomainSide) -> &'static str {
    if side.rx() {
        "rx"
    } else {
        "tx"
    }
}

/// The bytes of a match parameter, section by section in layout order.
fn param_bytes(p: &MatchParam) -> Vec<u8> {
    [
        &p.outer[..],
        &p.misc[..],
        &p.inner[..],
        &p.misc2[..],
        &p.misc3[..],
        &p.misc4[..],
        &p.misc5[..],
    ]
    .concat()
}

/// A value as the recordings give it: trailing zero bytes trimmed to a 4-byte boundary.
fn trimmed(bytes: &[u8]) -> Vec<u8> {
    let used = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes[..used.div_ceil(4) * 4].to_vec()
}

impl Recorder {
    /// Starts recording `dmn`: every write on its rings from now on is logged.
    pub fn start(dmn: &Arc<Domain>) -> Arc<Recorder> {
        Recorder::attach(dmn, None)
    }

    fn attach(dmn: &Arc<Domain>, path: Option<PathBuf>) -> Arc<Recorder> {
        let info = DomainInfo {
            domain_type: dmn.domain_type(),
            sides: dmn
                .sides()
                .iter()
                .filter_map(|s| dmn.side(*s).copied())
                .collect(),
            caps: dmn.caps().clone(),
            max_send: dmn.ring().config().max_write,
        };
        let rec = Arc::new(Recorder {
            dmn: Arc::downgrade(dmn),
            info,
            path,
            state: Mutex::new(State::default()),
        });
        dmn.set_write_tap(Some(Arc::clone(&rec) as Arc<dyn WriteTap>));
        rec
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every call (each takes the lock once per step).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file [`Recorder::finish`] writes (set by [`from_env`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Names the recording (`scenario`) and says what it builds (`description`).
    pub fn describe(&self, scenario: &str, description: &str) {
        let mut st = self.state();
        st.scenario = scenario.to_string();
        st.description = description.to_string();
    }

    /// Writes logged so far.
    pub fn num_writes(&self) -> usize {
        self.state().log.len()
    }

    fn check_domain(&self, dmn: &Arc<Domain>, what: &'static str) -> Result<(), RecordError> {
        if std::ptr::eq(self.dmn.as_ptr(), Arc::as_ptr(dmn)) {
            Ok(())
        } else {
            Err(RecordError::OtherDomain { what })
        }
    }

    /// The index of `t`, registering it if new.
    fn table_in(st: &mut State, t: &Arc<Table>) -> (usize, bool) {
        let ptr = Arc::as_ptr(t);
        if let Some(i) = st.tables.iter().position(|r| r.table.as_ptr() == ptr) {
            return (i, false);
        }
        st.tables.push(TableRec::of(t));
        (st.tables.len() - 1, true)
    }

    /// Registers a table (`tables[i]`); its creation's writes since the last
    /// registration become a `table_create` phase. Returns its index; a table already
    /// registered keeps its index.
    pub fn table(&self, t: &Arc<Table>) -> Result<usize, RecordError> {
        self.check_domain(t.domain(), "table")?;
        let mut st = self.state();
        let (i, new) = Recorder::table_in(&mut st, t);
        if new {
            st.log.phase("table_create");
        }
        Ok(i)
    }

    /// The index of `m`, registering it (and its table) if new; `phase` names the
    /// phase a new registration closes.
    fn matcher_in(&self, m: &Arc<Matcher>, phase: Option<&'static str>) -> usize {
        let ptr = Arc::as_ptr(m);
        let known = |st: &State| st.matchers.iter().position(|r| r.matcher.as_ptr() == ptr);
        if let Some(i) = known(&self.state()) {
            return i;
        }
        // Read without the recorder's lock (the anchors take the matcher's locks).
        let sides = anchors_of(m);
        let mask = m.mask();
        let mut st = self.state();
        if let Some(i) = known(&st) {
            return i;
        }
        let (table, _) = Recorder::table_in(&mut st, m.table());
        st.matchers.push(MatcherRec {
            matcher: Arc::downgrade(m),
            table,
            priority: m.priority(),
            criteria: mask.criteria.bits(),
            mask: param_bytes(&mask.param),
            sides,
        });
        if let Some(name) = phase {
            st.log.phase(name);
        }
        st.matchers.len() - 1
    }

    /// Registers a matcher (`matchers[i]`, with its table if that is new); its
    /// creation's writes since the last registration become a `matcher_create` phase.
    /// Returns its index.
    pub fn matcher(&self, m: &Arc<Matcher>) -> Result<usize, RecordError> {
        self.check_domain(m.table().domain(), "matcher")?;
        Ok(self.matcher_in(m, Some("matcher_create")))
    }

    /// The file's form of a rule's actions (registering goto targets as tables).
    fn actions_in(st: &mut State, rule: &Rule) -> Vec<ActionRec> {
        rule.actions()
            .actions()
            .iter()
            .map(|a| match a.kind() {
                ActionKind::Drop => ActionRec::Drop,
                ActionKind::DefaultMiss => ActionRec::DefaultMiss,
                ActionKind::GotoTable(t) => ActionRec::DestTable(Recorder::table_in(st, t).0),
                ActionKind::Tir(t) => ActionRec::Tir(t.tirn()),
                ActionKind::Qp(q) => ActionRec::Qp(q.qpn),
                ActionKind::Vport { vport, .. } => ActionRec::Vport(vport.vport_num),
                ActionKind::Tag(v) => ActionRec::Tag(*v),
                ActionKind::Counter { counter, offset } => ActionRec::Counter {
                    id: counter.id(),
                    offset: *offset,
                },
            })
            .collect()
    }

    /// Registers an inserted rule with the value it was inserted with (`rules[i]`; its
    /// matcher and tables too if new). The writes since the last registration are its
    /// `insert_writes` (phase `rule_insert`).
    pub fn rule(&self, rule: &Rule, value: &MatchParam) -> Result<RuleId, RecordError> {
        self.check_domain(rule.matcher().table().domain(), "rule")?;
        let matcher = self.matcher_in(rule.matcher(), None);
        let mut st = self.state();
        let actions = Recorder::actions_in(&mut st, rule);
        let insert_writes = st.log.phase("rule_insert");
        st.rules.push(RuleRec {
            matcher,
            matcher_ref: Arc::downgrade(rule.matcher()),
            value: trimmed(&param_bytes(value)),
            actions,
            insert_writes,
            deleted: None,
            expect: Vec::new(),
        });
        Ok(RuleId(st.rules.len() - 1))
    }

    /// Checks that `rule` may be the live rule `id`.
    fn check_rule(&self, id: RuleId, rule: &Rule) -> Result<(), RecordError> {
        let st = self.state();
        let r = st.rules.get(id.0).ok_or(RecordError::UnknownRule(id.0))?;
        if r.deleted.is_some() {
            return Err(RecordError::Removed(id.0));
        }
        if r.matcher_ref.as_ptr() != Arc::as_ptr(rule.matcher()) {
            return Err(RecordError::NotTheRule(id.0));
        }
        Ok(())
    }

    /// The expectations of a live rule on each side it is installed on, from the
    /// driver's objects (locks the matcher's sides briefly).
    fn expectations(rule: &Rule) -> Vec<ExpectRec> {
        let m = rule.matcher();
        let tag = rule
            .actions()
            .actions()
            .iter()
            .find_map(|a| match a.kind() {
                ActionKind::Tag(v) => Some(*v),
                _ => None,
            });
        rule.sides()
            .filter_map(|side| {
                Some(ExpectRec {
                    side,
                    root: m.table().root_addr(side)?,
                    final_addr: rule.actions().final_icm_addr(side).ok()?,
                    flow_tag: tag,
                    rule_ste: rule.icm_addr(side)?,
                    end_anchor: m.anchors(side)?.1,
                })
            })
            .collect()
    }

    /// Sets rule `id`'s `expect` entries from the driver's state now: where a packet
    /// carrying its value must end, with which flow tag, and the address of the last
    /// STE it must hit. Call it when the rule set is final (growth moves STEs).
    pub fn expect_for(&self, id: RuleId, rule: &Rule) -> Result<(), RecordError> {
        self.check_rule(id, rule)?;
        let expect = Recorder::expectations(rule);
        let anchors = anchors_of(rule.matcher());
        let mut st = self.state();
        let matcher = st.rules[id.0].matcher;
        st.rules[id.0].expect = expect;
        st.matchers[matcher].sides = anchors;
        Ok(())
    }

    /// Removes rule `id` (given as `rule`) and records it as deleted: its last STE's
    /// address before the removal, and the removal's writes (`delete_writes`, phase
    /// `rule_delete`). A packet with its value must then end at the side's default,
    /// having missed into its matcher's end anchor.
    pub fn remove(&self, id: RuleId, rule: Rule) -> Result<(), RecordError> {
        self.check_rule(id, &rule)?;
        let before = Recorder::expectations(&rule);
        if let Err(e) = rule.remove() {
            return Err(RecordError::Remove {
                rule: id.0,
                source: Box::new(e),
            });
        }
        let mut st = self.state();
        let writes = st.log.phase("rule_delete");
        let order = st.deletions;
        st.deletions += 1;
        let r = &mut st.rules[id.0];
        r.deleted = Some(Deletion { order, writes });
        r.expect = before;
        Ok(())
    }

    /// Adds a probe: a packet `value` entering `table`, expected to be decided by
    /// `expected` (the rule and its id) or, with `None`, to miss every rule and end at
    /// each side's default. Its expectations are taken from the driver's state now.
    pub fn probe(
        &self,
        description: &str,
        table: &Arc<Table>,
        value: &MatchParam,
        expected: Option<(RuleId, &Rule)>,
    ) -> Result<(), RecordError> {
        self.check_domain(table.domain(), "table")?;
        let mut sides = Vec::new();
        let expect = match expected {
            Some((id, rule)) => {
                self.check_rule(id, rule)?;
                Recorder::expectations(rule)
            }
            None => Vec::new(),
        };
        for info in &self.info.sides {
            let Some(root) = table.root_addr(info.side) else {
                continue;
            };
            let side = match expected {
                Some(_) => match expect.iter().find(|e| e.side == info.side) {
                    Some(e) => ProbeSide {
                        side: info.side,
                        root,
                        final_addr: e.final_addr,
                        flow_tag: e.flow_tag,
                        hit: Some(e.rule_ste),
                    },
                    // The rule is not on this side: the probe says nothing there.
                    None => continue,
                },
                None => ProbeSide {
                    side: info.side,
                    root,
                    final_addr: info.default_miss,
                    flow_tag: None,
                    hit: None,
                },
            };
            sides.push(side);
        }
        let mut st = self.state();
        let (table, _) = Recorder::table_in(&mut st, table);
        st.probes.push(ProbeRec {
            description: description.to_string(),
            table,
            value: trimmed(&param_bytes(value)),
            expected_rule: expected.map(|(id, _)| id.0),
            sides,
        });
        Ok(())
    }

    /// Stops logging writes (the domain's rings forget the recorder). Registered
    /// objects stay; the file can still be written.
    pub fn stop(&self) {
        if let Some(dmn) = self.dmn.upgrade() {
            dmn.set_write_tap(None);
        }
        self.state().log.skip();
    }

    /// The recording as JSON text.
    pub fn to_json(&self) -> Result<String, RecordError> {
        // Matchers' anchors as they are now (the start tables move when they grow).
        let live: Vec<(usize, Arc<Matcher>)> = self
            .state()
            .matchers
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m.matcher.upgrade()?)))
            .collect();
        let fresh: Vec<(usize, Vec<AnchorRec>)> =
            live.iter().map(|(i, m)| (*i, anchors_of(m))).collect();
        drop(live);
        let vports = self.vports();
        let mut st = self.state();
        for (i, sides) in fresh {
            st.matchers[i].sides = sides;
        }
        let doc = self.document(&st, &vports)?;
        let mut out = String::new();
        doc.write_document(&mut out);
        Ok(out)
    }

    /// Writes the recording to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), RecordError> {
        let text = self.to_json()?;
        std::fs::write(path, text).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Stops recording and writes the file named by [`RECORD_ENV`] (see [`from_env`]);
    /// returns its path.
    pub fn finish(&self) -> Result<PathBuf, RecordError> {
        self.stop();
        let path = self.path.clone().ok_or(RecordError::NoPath)?;
        self.write_to(&path)?;
        Ok(path)
    }
}
