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
//! `dest_vport`, `dest_uplink`, `counter`), and `encap` writes. Checkers made for
//! rdma-core's files may refuse those. There are no `chunk_events` and no
//! `rdma_core_dump`, and our duplicate refusal means no rule is ever `shadowed`.

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

use json::{hex, Json};
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
        let mut st = self.state();
        for (i, sides) in fresh {
            st.matchers[i].sides = sides;
        }
        let doc = self.document(&st)?;
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

    /// The whole document.
    fn document(&self, st: &State) -> Result<Json, RecordError> {
        let mut top: Vec<(&'static str, Json)> = vec![
            (
                "source",
                concat!("mlx5dr-rs ", env!("CARGO_PKG_VERSION"), " (mlx5dr::record)").into(),
            ),
            ("schema", SCHEMA.into()),
            ("schema_expect", SCHEMA_EXPECT.into()),
            ("scenario", st.scenario.as_str().into()),
            ("description", st.description.as_str().into()),
        ];
        if st.log.uses_sparse() {
            top.push(("note", SPARSE_NOTE.into()));
        }
        top.extend([
            ("domain", self.domain_name().into()),
            ("fake_device", self.device_json()),
            ("domain_addrs", self.domain_addrs_json()),
            ("tables", tables_json(st)),
            ("matchers", matchers_json(st)),
            ("rules", rules_json(st)),
        ]);
        if let Some(expect) = expect_json(st, &self.info.sides)? {
            top.push(("expect", expect));
        }
        top.extend([
            ("probes", probes_json(st)),
            ("phases", st.log.phases_json()),
            ("num_writes", st.log.len().into()),
            ("writes", st.log.writes_json()),
            ("icm", st.log.image_json()),
            ("stats", st.log.stats_json()),
        ]);
        Ok(Json::Obj(top))
    }

    fn domain_name(&self) -> &'static str {
        match self.info.domain_type {
            DomainType::NicRx => "nic_rx",
            DomainType::NicTx => "nic_tx",
            DomainType::Fdb => "fdb",
        }
    }

    /// `fake_device`: the device's capabilities as the domain discovered them.
    fn device_json(&self) -> Json {
        let c = &self.info.caps;
        let mut o: Vec<(&'static str, Json)> = vec![
            ("steering_format_version", c.steering_format_version.into()),
            ("gvmi", c.gvmi.into()),
            ("log_steering_sw_icm_size", c.icm.steering.log_size.into()),
            ("max_log_sw_icm_sz", c.max_log_ste_table_size().into()),
            ("max_send_size", self.info.max_send.into()),
            ("nic_rx_drop_icm", c.nic_rx_drop_icm.into()),
            ("nic_tx_drop_icm", c.nic_tx_drop_icm.into()),
            ("nic_tx_allow_icm", c.nic_tx_allow_icm.into()),
        ];
        if let Some(esw) = &c.esw {
            o.extend([
                ("esw_rx_drop_icm", esw.rx_drop_icm.into()),
                ("esw_tx_drop_icm", esw.tx_drop_icm.into()),
            ]);
        }
        o.extend([
            ("definer_format_sup", c.definer_formats.into()),
            (
                "support_modify_argument",
                c.modify_argument.is_some().into(),
            ),
        ]);
        if let Some(esw) = &c.esw {
            o.extend([
                ("uplink_rx_icm", esw.uplink.icm_address_rx.into()),
                ("uplink_tx_icm", esw.uplink.icm_address_tx.into()),
                (
                    "esw_manager_vport_rx_icm",
                    esw.manager.icm_address_rx.into(),
                ),
                (
                    "esw_manager_vport_tx_icm",
                    esw.manager.icm_address_tx.into(),
                ),
            ]);
        }
        Json::Obj(o)
    }

    fn domain_addrs_json(&self) -> Json {
        Json::Obj(
            self.info
                .sides
                .iter()
                .map(|s| {
                    (
                        side_name(s.side),
                        Json::Obj(vec![
                            ("drop_icm_addr", s.drop.into()),
                            ("default_icm_addr", s.default_miss.into()),
                        ]),
                    )
                })
                .collect(),
        )
    }
}

fn tables_json(st: &State) -> Json {
    Json::Arr(
        st.tables
            .iter()
            .map(|t| {
                Json::Obj(vec![
                    ("level", t.level.into()),
                    ("devx_table_id", t.fw_id.into()),
                    ("root_icm_addr_rx", t.root_rx.into()),
                    ("root_icm_addr_tx", t.root_tx.into()),
                ])
            })
            .collect(),
    )
}

fn anchor_json(a: &AnchorRec) -> Vec<(&'static str, Json)> {
    vec![
        ("start_htbl_icm_addr", a.start.into()),
        ("end_anchor_icm_addr", a.end.into()),
        ("num_ste_builders", a.lu_types.len().into()),
    ]
}

fn matchers_json(st: &State) -> Json {
    Json::Arr(
        st.matchers
            .iter()
            .map(|m| {
                let lookups: Vec<String> = m
                    .sides
                    .first()
                    .map(|a| a.lu_types.iter().map(|t| format!("{t:#06x}")).collect())
                    .unwrap_or_default();
                let mut o: Vec<(&'static str, Json)> = vec![
                    ("table", m.table.into()),
                    ("priority", m.priority.into()),
                    ("criteria", m.criteria.into()),
                    ("match_sz", m.mask.len().into()),
                    (
                        "description",
                        format!("priority {}, lookups {}", m.priority, lookups.join(" ")).into(),
                    ),
                    ("mask", hex(&m.mask).into()),
                ];
                if let Some(first) = m.sides.first() {
                    o.extend(anchor_json(first));
                }
                let anchors = m
                    .sides
                    .iter()
                    .map(|a| {
                        let mut fields = anchor_json(a);
                        fields.push((
                            "lu_types",
                            Json::Arr(a.lu_types.iter().map(|t| (*t).into()).collect()),
                        ));
                        (side_name(a.side), Json::Obj(fields))
                    })
                    .collect();
                o.push(("anchors", Json::Obj(anchors)));
                Json::Obj(o)
            })
            .collect(),
    )
}

fn span(s: (usize, usize)) -> Json {
    Json::Arr(vec![s.0.into(), s.1.into()])
}

fn rules_json(st: &State) -> Json {
    Json::Arr(
        st.rules
            .iter()
            .map(|r| {
                let mut o: Vec<(&'static str, Json)> = vec![
                    ("matcher", r.matcher.into()),
                    ("value", hex(&r.value).into()),
                    (
                        "actions",
                        Json::Arr(r.actions.iter().map(ActionRec::json).collect()),
                    ),
                    ("insert_writes", span(r.insert_writes)),
                    ("deleted", r.deleted.is_some().into()),
                ];
                if let Some(d) = r.deleted {
                    o.push(("delete_order", d.order.into()));
                    o.push(("delete_writes", span(d.writes)));
                }
                Json::Obj(o)
            })
            .collect(),
    )
}

/// `expect`, or `None` when no rule has expectations (readers then derive them from
/// the rules); an error when only some live rules have them.
fn expect_json(st: &State, sides: &[SideInfo]) -> Result<Option<Json>, RecordError> {
    let missing: Vec<usize> = st
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.deleted.is_none() && r.expect.is_empty())
        .map(|(i, _)| i)
        .collect();
    let any = st.rules.iter().any(|r| !r.expect.is_empty());
    if !any {
        return Ok(None);
    }
    if let Some(&first) = missing.first() {
        return Err(RecordError::NoExpectation {
            missing: missing.len(),
            first,
        });
    }
    let mut out = Vec::new();
    for (i, r) in st.rules.iter().enumerate() {
        let deleted = r.deleted.is_some();
        for e in &r.expect {
            // A removed rule's packet falls through its matcher to the side's default.
            let default = || {
                sides
                    .iter()
                    .find(|s| s.side == e.side)
                    .map_or(e.final_addr, |s| s.default_miss)
            };
            out.push(Json::Obj(vec![
                ("rule", i.into()),
                ("side", side_name(e.side).into()),
                ("root_icm_addr", e.root.into()),
                (
                    "final_addr",
                    if deleted { default() } else { e.final_addr }.into(),
                ),
                ("flow_tag", if deleted { None } else { e.flow_tag }.into()),
                ("deleted", deleted.into()),
                ("shadowed", false.into()),
                ("shadowed_by", Json::Null),
                (
                    "hit_ste_icm_addr",
                    if deleted { None } else { Some(e.rule_ste) }.into(),
                ),
                ("rule_ste_icm_addr", e.rule_ste.into()),
                ("end_anchor_icm_addr", e.end_anchor.into()),
            ]));
        }
    }
    Ok(Some(Json::Arr(out)))
}

fn probes_json(st: &State) -> Json {
    Json::Arr(
        st.probes
            .iter()
            .map(|p| {
                let sides = p
                    .sides
                    .iter()
                    .map(|s| {
                        Json::Obj(vec![
                            ("side", side_name(s.side).into()),
                            ("root_icm_addr", s.root.into()),
                            ("final_addr", s.final_addr.into()),
                            ("flow_tag", s.flow_tag.into()),
                            ("hit_ste_icm_addr", s.hit.into()),
                        ])
                    })
                    .collect();
                Json::Obj(vec![
                    ("description", p.description.as_str().into()),
                    ("table", p.table.into()),
                    ("value", hex(&p.value).into()),
                    ("expected_rule", p.expected_rule.into()),
                    ("expect", Json::Arr(sides)),
                ])
            })
            .collect(),
    )
}

/// The inline summary of the schema (the README next to rdma-core's recordings is the
/// full reference).
const SCHEMA: &str = "The schema of rdma-core's public ICM recordings (README.md next to them). Top level: source, schema, schema_expect, scenario, description, domain (nic_rx|nic_tx|fdb), fake_device (the device's capabilities as the driver discovered them), domain_addrs, tables[i] = {level, devx_table_id (firmware flow table id), root_icm_addr_rx, root_icm_addr_tx (the table's root anchor per side, null where the domain has no such side)}, matchers[i] = {table, priority, criteria (match_criteria_enable bits), match_sz, description, mask (hex of the 448-byte fte_match_param), start_htbl_icm_addr, end_anchor_icm_addr, num_ste_builders (first side), anchors}, rules[i] = {matcher, value (hex, trailing zero bytes trimmed to a 4-byte boundary), actions (drop | dest_table {table} | tag {value}; beyond rdma-core's files: default_miss, dest_tir {tirn}, dest_qp {qpn}, dest_vport {vport}, dest_uplink, counter {id, offset}), insert_writes [first, count], deleted, delete_order, delete_writes [first, count]} in registration order, phases [{name, first_write, num_writes}], num_writes, writes = every ICM write the driver posted on the domain's send rings, in posting order: {icm_addr, kind (ste: at most one 64-byte line; htbl: several lines; action, pattern, encap: other ICM kinds), data (hex as it reaches ICM)}, icm = the image the writes leave: runs of written 64-byte lines {base, icm_type, data}; a blob may be in the sparse form {len, fill, lines}; stats = writes and bytes per kind. No chunk_events, no rdma_core_dump.";

/// The inline summary of the expectations.
const SCHEMA_EXPECT: &str = "domain_addrs = {rx|tx: {drop_icm_addr, default_icm_addr}}; matchers[].anchors = {rx|tx: {start_htbl_icm_addr (now), end_anchor_icm_addr, num_ste_builders, lu_types}}; expect = one entry per recorded rule and side it is installed on, computed from the driver's objects (not from ICM): {rule, side, root_icm_addr, final_addr (the address the rule's action list makes its last STE hit; for a deleted rule the side's default), flow_tag, deleted, shadowed (always false: the driver refuses duplicates), shadowed_by, hit_ste_icm_addr (the rule's last STE as its hash tables place it; null when deleted), rule_ste_icm_addr (the same; for a deleted rule before deletion), end_anchor_icm_addr}; probes = [{description, table, value, expected_rule, expect: [{side, root_icm_addr, final_addr, flow_tag, hit_ste_icm_addr}]}].";

/// The `note` of a file with sparse blobs.
const SPARSE_NOTE: &str = "writes and icm runs of 4 KiB or more whose 64-byte lines are mostly identical are in the sparse form {len, fill, lines}: every line equals fill except those listed as [line_index, hex]";
