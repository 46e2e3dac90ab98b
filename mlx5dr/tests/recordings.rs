//! The driver against rdma-core's recordings, and the driver's own recordings against
//! the simulator's checker.
//!
//! Every recording in the folder `MLX5DR_RECORDINGS_DIR` (default: the copy in
//! `sim/tests/data/recordings`, rdma-core 44 on a simulated ConnectX-6 Dx) is rebuilt
//! with this driver on a simulated device of the recording's `fake_device`: the same
//! domain type, tables (levels), matchers (mask, criteria, priority, in creation order)
//! and rules (values and actions, in creation order, then the recorded deletions in
//! their order), with a [`Recorder`] attached. Then:
//!
//! - `chains_decode_like_rdma_core`: for every rule and side (and every probe), a lookup
//!   of the rule's value is walked from the table root through our ICM and through
//!   rdma-core's final image, and the STEs each walk hits must agree one for one: lookup
//!   type, bit mask, tag and actions, and the walk must end at the same place (drop,
//!   default, or the same table's root). Addresses may differ.
//! - `own_recordings_pass_the_simulator_checker`: our recording of each rebuild is
//!   written to a folder (`MLX5DR_RECORDINGS_OUT` if set and kept, else a temporary
//!   folder) and checked by the simulator's recordings checker, the same code as
//!   `cargo test -p sim --test recordings` (its modules are included below): our writes
//!   replayed through a steering queue must give our image, and every `expect` entry
//!   (computed from the driver's objects) and probe must hold for a packet walk.
//!
//! What the driver does not rebuild is listed as `SKIPPED` with the reason, never
//! passed: rdma-core installs an exact duplicate of a rule as an unreachable copy,
//! which the driver refuses by design. Each recording prints its counts.

#![cfg(feature = "sim")]

// The simulator's recordings checker, shared with `sim/tests/recordings.rs`.
#[path = "../../sim/tests/recordings/check.rs"]
mod check;
#[allow(dead_code)]
#[path = "../../sim/tests/device/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/lookups.rs"]
mod lookups;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/replay.rs"]
mod replay;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/schema.rs"]
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ::sim::endpoint::Terminal;
use ::sim::icm::LINE;
use ::sim::pipeline::{
    walk, Action as SimAction, EnvError, Environment, Fate, Outcome, Unedited, WalkConfig,
};
use ::sim::profile::{DeviceModel, Profile};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::htbl::HtblError;
use mlx5dr::record::{Recorder, RuleId};
use mlx5dr::{
    Action, ActionList, Device, Domain, DomainSide, DomainType, InsertError, Matcher,
    MatcherOptions, RawMatch, Rule, Table,
};
use serde_json::Value;
use ste_builder::{Caps, MatchParam, SteFormat};

use schema::{Recording, RuleAction, Side};

/// Prints past the test harness's capture, so the counts show on success too.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("MLX5DR_RECORDINGS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/tests/data/recordings"),
    }
}

/// What the parsed schema leaves out and a rebuild needs.
struct Extra {
    levels: Vec<u8>,
    /// Per matcher: priority, criteria, mask.
    matchers: Vec<(u32, u8, Vec<u8>)>,
    /// Per rule: its place in the deletion order, if deleted.
    delete_order: Vec<Option<u64>>,
    description: String,
}

fn extra(v: &Value) -> Result<Extra, String> {
    let arr = |k: &str| {
        v[k].as_array()
            .ok_or_else(|| format!("`{k}` is not an array"))
    };
    let num = |x: &Value, what: &str| x.as_u64().ok_or_else(|| format!("{what}: not a number"));
    let mut levels = Vec::new();
    for t in arr("tables")? {
        levels.push(num(&t["level"], "tables[].level")? as u8);
    }
    let mut matchers = Vec::new();
    for m in arr("matchers")? {
        let mask = m["mask"].as_str().ok_or("matchers[].mask: not a string")?;
        matchers.push((
            num(&m["priority"], "matchers[].priority")? as u32,
            num(&m["criteria"], "matchers[].criteria")? as u8,
            hex::decode(mask).map_err(|e| format!("matchers[].mask: {e}"))?,
        ));
    }
    let delete_order = arr("rules")?
        .iter()
        .map(|r| r["delete_order"].as_u64())
        .collect();
    Ok(Extra {
        levels,
        matchers,
        delete_order,
        description: v["description"].as_str().unwrap_or("").to_string(),
    })
}

/// A recording rebuilt by the driver.
struct Rebuilt {
    name: String,
    golden: Recording,
    be: Arc<SimBackend>,
    dmn: Arc<Domain>,
    tables: Vec<Arc<Table>>,
    /// Per golden rule: our rule (live or removed), or why it is not rebuilt.
    rules: Vec<Result<Option<(RuleId, Rule)>, String>>,
    /// Our recording, as written.
    json: String,
}

fn domain_type(rec: &Recording) -> Result<DomainType, String> {
    let has = |s| rec.sides.contains_key(&s);
    match (has(Side::Rx), has(Side::Tx)) {
        (true, true) => Ok(DomainType::Fdb),
        (true, false) => Ok(DomainType::NicRx),
        (false, true) => Ok(DomainType::NicTx),
        _ => Err("no sides".into()),
    }
}

/// The simulated device of a recording: its steering format and SW-ICM size.
fn backend(rec: &Recording) -> Result<SimBackend, String> {
    let model = [
        DeviceModel::ConnectX5,
        DeviceModel::ConnectX6Dx,
        DeviceModel::ConnectX7,
    ]
    .into_iter()
    .find(|m| m.steering_format_version() == rec.steering_format_version)
    .ok_or("no device model of the recording's steering format")?;
    let mut profile = Profile::new(model);
    if let Some(log) = rec.log_icm_size {
        profile.log_steering_sw_icm_size = log;
    }
    SimBackend::with_profile(profile).map_err(|e| e.to_string())
}

/// The sides of a domain type with their names in the recordings.
fn sides(ty: DomainType) -> Vec<(DomainSide, Side)> {
    DomainSide::of(ty)
        .iter()
        .map(|&s| (s, if s.rx() { Side::Rx } else { Side::Tx }))
        .collect()
}

fn rebuild(path: &Path) -> Result<Rebuilt, String> {
    let name = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let golden = schema::parse(&v)?;
    let x = extra(&v)?;
    let ty = domain_type(&golden)?;
    let be = Arc::new(backend(&golden)?);
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, ty).map_err(|e| format!("opening the domain: {e}"))?;
    let rec = Recorder::start(&dmn);
    rec.describe(
        &name,
        &format!("mlx5dr's rebuild of rdma-core's {name}: {}", x.description),
    );

    let mut tables = Vec::new();
    for &level in &x.levels {
        let t = Table::new(&dmn, level).map_err(|e| format!("table level {level}: {e}"))?;
        rec.table(&t).map_err(|e| e.to_string())?;
        tables.push(t);
    }
    let mut matchers = Vec::new();
    for (i, (priority, criteria, mask)) in x.matchers.iter().enumerate() {
        let table = golden.matcher_tables[i];
        let raw = RawMatch::from_bytes(*criteria, mask).map_err(|e| format!("matcher {i}: {e}"))?;
        let m = Matcher::new_raw(&tables[table], &raw, MatcherOptions::priority(*priority))
            .map_err(|e| format!("matcher {i}: {e}"))?;
        rec.matcher(&m).map_err(|e| e.to_string())?;
        matchers.push(m);
    }

    // One action list per matcher and action sequence, shared by its rules.
    let mut lists: HashMap<(usize, String), Arc<ActionList>> = HashMap::new();
    let mut rules = Vec::new();
    for (i, r) in golden.rules.iter().enumerate() {
        let m = &matchers[r.matcher];
        let key = (r.matcher, format!("{:?}", r.actions));
        let acts = match lists.get(&key) {
            Some(l) => Arc::clone(l),
            None => {
                let actions = r
                    .actions
                    .iter()
                    .map(|a| match *a {
                        RuleAction::Drop => Ok(Action::drop()),
                        RuleAction::DefaultMiss => Ok(Action::default_miss()),
                        RuleAction::DestTable(t) => Ok(Action::goto_table(&tables[t])),
                        RuleAction::Tag(v) => Action::flow_tag(v).map_err(|e| e.to_string()),
                        RuleAction::DestVport(n) => {
                            Action::dest_vport(&dmn, n).map_err(|e| e.to_string())
                        }
                        RuleAction::DestUplink => {
                            Action::dest_uplink(&dmn).map_err(|e| e.to_string())
                        }
                        // TIRs, QPs and counters of the recording's device: a rebuild
                        // has none of them.
                        other => Err(format!("{other:?} names an object a rebuild lacks")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("rule {i}: {e}"))?;
                let l = m.actions(&actions).map_err(|e| format!("rule {i}: {e}"))?;
                lists.insert(key, Arc::clone(&l));
                l
            }
        };
        let value = MatchParam::from_bytes(&r.value).map_err(|e| format!("rule {i}: {e}"))?;
        match m.insert_raw(&value, &acts) {
            Ok(rule) => {
                let id = rec.rule(&rule, &value).map_err(|e| e.to_string())?;
                rules.push(Ok(Some((id, rule))));
            }
            Err(InsertError::Insert {
                source: HtblError::Duplicate,
                ..
            }) => {
                let first = golden.rules[..i]
                    .iter()
                    .position(|o| o.matcher == r.matcher && o.value == r.value);
                let of = first.map_or("an earlier rule".to_string(), |j| format!("rule {j}"));
                rules.push(Err(format!(
                    "an exact duplicate of {of}, which rdma-core installs unreachable and the driver refuses"
                )));
            }
            Err(e) => return Err(format!("rule {i}: {e}")),
        }
    }

    // Deletions in the recorded order.
    let mut order: Vec<(u64, usize)> = x
        .delete_order
        .iter()
        .enumerate()
        .filter(|(i, _)| golden.rules[*i].deleted)
        .map(|(i, o)| (o.unwrap_or(u64::MAX), i))
        .collect();
    order.sort();
    for (_, i) in order {
        if let Ok(slot) = &mut rules[i] {
            let (id, rule) = slot.take().ok_or("deleted twice")?;
            rec.remove(id, rule)
                .map_err(|e| format!("deleting rule {i}: {e}"))?;
            // Keep the slot's id for the probes' sake: a removed rule decides nothing.
            *slot = None;
        }
    }
    for (id, rule) in rules.iter().flatten().flatten() {
        rec.expect_for(*id, rule).map_err(|e| e.to_string())?;
    }
    for p in &golden.probes {
        let table = p
            .expect
            .first()
            .and_then(|x| {
                golden
                    .tables
                    .iter()
                    .position(|t| t.root(x.side) == Some(x.root))
            })
            .ok_or_else(|| format!("probe `{}`: no table has its root", p.description))?;
        let expected = match p.expected_rule {
            None => None,
            Some(i) => match rules.get(i) {
                Some(Ok(Some((id, rule)))) => Some((*id, rule)),
                _ => continue,
            },
        };
        let value = MatchParam::from_bytes(&p.value).map_err(|e| e.to_string())?;
        rec.probe(&p.description, &tables[table], &value, expected)
            .map_err(|e| e.to_string())?;
    }
    rec.stop();
    let json = rec.to_json().map_err(|e| e.to_string())?;
    Ok(Rebuilt {
        name,
        golden,
        be,
        dmn,
        tables,
        rules,
        json,
    })
}

/// Every recording of the golden folder, rebuilt once for both tests.
fn rebuilt() -> &'static [(PathBuf, Result<Rebuilt, String>)] {
    static ALL: OnceLock<Vec<(PathBuf, Result<Rebuilt, String>)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let dir = golden_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("recordings folder {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no *.json recordings in {}",
            dir.display()
        );
        files
            .into_iter()
            .map(|p| {
                let r = rebuild(&p);
                (p, r)
            })
            .collect()
    })
}

/// ICM lines and firmware ends, for walks.
struct Env {
    lines: Box<dyn Fn(u64) -> Option<[u8; LINE]> + Send + Sync>,
    terminals: BTreeMap<u64, Terminal>,
}

impl Environment for Env {
    fn terminal(&self, addr: u64) -> Option<Terminal> {
        self.terminals.get(&addr).copied()
    }
    fn read_ste(&self, addr: u64) -> Result<[u8; LINE], EnvError> {
        (self.lines)(addr).ok_or(EnvError::NotBacked { addr })
    }
    fn count(&self, id: u32, _bytes: u64) -> Result<(), EnvError> {
        Err(EnvError::NoCounter(id))
    }
}

/// One STE a walk hit, as compared: lookup type, mask, tag, actions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    lu_type: u16,
    mask: [u8; 16],
    tag: [u8; 16],
    actions: Vec<SimAction>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{:#06x} mask {} tag {}{}]",
            self.lu_type,
            hex::encode(self.mask),
            hex::encode(self.tag),
            if self.actions.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.actions)
            }
        )
    }
}

/// Where a walk ended, without addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Drop,
    Default,
    Table(usize),
    Other(String),
}

/// The STEs a walk hit, in order, and where it ended.
#[derive(Debug, PartialEq, Eq)]
struct Chain {
    steps: Vec<Step>,
    end: End,
}

impl std::fmt::Display for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.steps {
            write!(f, "{s} ")?;
        }
        write!(f, "-> {:?}", self.end)
    }
}

/// One side of one ICM for walks: lines, roots per table, end addresses.
struct View<'a> {
    env: &'a Env,
    format: SteFormat,
    roots: Vec<Option<u64>>,
    drop: u64,
    default: u64,
}

impl View<'_> {
    fn chain(&self, root: u64, value: &[u8]) -> Chain {
        let caps = Caps::default();
        let cfg = WalkConfig::new(self.format, &caps);
        let fields = MatchParam::from_bytes(value).unwrap_or_default();
        let mut packet = Unedited { fields, len: 64 };
        let v = walk(self.env, &cfg, root, &mut packet);
        let steps = v
            .trace
            .iter()
            .filter(|h| matches!(h.outcome, Outcome::Hit { .. }))
            .map(|h| {
                let line = self.env.read_ste(h.addr).unwrap_or([0; LINE]);
                let (mut mask, mut tag) = ([0u8; 16], [0u8; 16]);
                // v1/v2 lines carry mask then tag; v0 lines tag then mask.
                let (m, t) = if self.format == SteFormat::V0 {
                    (48, 32)
                } else {
                    (32, 48)
                };
                mask.copy_from_slice(&line[m..m + 16]);
                tag.copy_from_slice(&line[t..t + 16]);
                Step {
                    lu_type: h.lu_type,
                    mask,
                    tag,
                    actions: h.actions.clone(),
                }
            })
            .collect();
        let end = match v.fate {
            Fate::Terminal { addr, .. } => {
                if let Some(t) = self.roots.iter().position(|r| *r == Some(addr)) {
                    End::Table(t)
                } else if addr == self.drop {
                    End::Drop
                } else if addr == self.default {
                    End::Default
                } else {
                    End::Other(format!("{addr:#x}"))
                }
            }
            Fate::Fault(f) => End::Other(f.to_string()),
        };
        Chain { steps, end }
    }
}

/// rdma-core's image and ends.
fn golden_env(rec: &Recording) -> Env {
    let mut lines: HashMap<u64, [u8; LINE]> = HashMap::new();
    for run in &rec.image {
        for (i, l) in run.data.chunks_exact(LINE).enumerate() {
            let mut line = [0u8; LINE];
            line.copy_from_slice(l);
            lines.insert(run.base + (i * LINE) as u64, line);
        }
    }
    let mut terminals = rec.firmware.clone();
    for (t, table) in rec.tables.iter().enumerate() {
        for root in [table.root_rx, table.root_tx].into_iter().flatten() {
            terminals.insert(root, Terminal::FlowTable(t as u32));
        }
    }
    Env {
        lines: Box::new(move |a| lines.get(&a).copied()),
        terminals,
    }
}

/// Our ICM (the simulated device's) and ends.
fn our_env(r: &Rebuilt) -> Env {
    let mut terminals = BTreeMap::new();
    for (s, _) in sides(r.dmn.domain_type()) {
        let info = r.dmn.side(s).expect("a side of the domain");
        terminals.insert(info.drop, Terminal::Drop);
        terminals
            .entry(info.default_miss)
            .or_insert(Terminal::Allow);
    }
    for (t, table) in r.tables.iter().enumerate() {
        for (s, _) in sides(r.dmn.domain_type()) {
            if let Some(root) = table.root_addr(s) {
                terminals.insert(root, Terminal::FlowTable(t as u32));
            }
        }
    }
    let be = Arc::clone(&r.be);
    Env {
        lines: Box::new(move |a| be.sim().icm().read_line(a).ok()),
        terminals,
    }
}

/// Compared, differing and skipped lookups of one recording.
#[derive(Default)]
struct Count {
    lookups: usize,
    stes: usize,
    failed: Vec<String>,
    skipped: Vec<String>,
}

fn compare(r: &Rebuilt) -> Count {
    let g = &r.golden;
    let format =
        SteFormat::from_version(g.steering_format_version).expect("a known steering format");
    let (genv, oenv) = (golden_env(g), our_env(r));
    let mut count = Count::default();
    for (ds, side) in sides(r.dmn.domain_type()) {
        let gaddrs = g.sides[&side];
        let info = r.dmn.side(ds).expect("a side of the domain");
        let theirs = View {
            env: &genv,
            format,
            roots: g.tables.iter().map(|t| t.root(side)).collect(),
            drop: gaddrs.drop,
            default: gaddrs.default,
        };
        let ours = View {
            env: &oenv,
            format,
            roots: r.tables.iter().map(|t| t.root_addr(ds)).collect(),
            drop: info.drop,
            default: info.default_miss,
        };
        let one = |count: &mut Count, what: String, table: usize, value: &[u8]| {
            let (Some(groot), Some(oroot)) = (theirs.roots[table], ours.roots[table]) else {
                count
                    .failed
                    .push(format!("{what}: the table has no root on this side"));
                return;
            };
            let (want, got) = (theirs.chain(groot, value), ours.chain(oroot, value));
            if want == got {
                count.lookups += 1;
                count.stes += got.steps.len();
            } else {
                count.failed.push(format!(
                    "{what}:\n    rdma-core {want}\n    ours      {got}"
                ));
            }
        };
        for (i, rule) in g.rules.iter().enumerate() {
            let what = format!("rule {i} {}", side.name());
            if let Err(why) = &r.rules[i] {
                // Not installed; its lookup (decided by the earlier rule) still compares.
                count.skipped.push(format!(
                    "{what} not installed: {why}; its lookup is compared all the same"
                ));
            }
            let table = g.matcher_tables[rule.matcher];
            one(&mut count, what, table, &rule.value);
        }
        // The comparison sees values: our chain for one rule is not rdma-core's chain
        // for another rule of the same matcher.
        let live: Vec<usize> = (0..g.rules.len())
            .filter(|i| matches!(r.rules[*i], Ok(Some(_))))
            .collect();
        let pair = live.first().and_then(|&a| {
            let (ra, m) = (&g.rules[a], g.rules[a].matcher);
            live.iter()
                .find(|&&b| g.rules[b].matcher == m && g.rules[b].value != ra.value)
                .map(|&b| (a, b))
        });
        if let Some((a, b)) = pair {
            let table = g.matcher_tables[g.rules[a].matcher];
            if let (Some(groot), Some(oroot)) = (theirs.roots[table], ours.roots[table]) {
                let (ga, ob) = (
                    theirs.chain(groot, &g.rules[a].value),
                    ours.chain(oroot, &g.rules[b].value),
                );
                if ga == ob {
                    count.failed.push(format!(
                        "rules {a} and {b} {}: different values, yet the same chain {ga}",
                        side.name()
                    ));
                }
            }
        }
        for (n, p) in g.probes.iter().enumerate() {
            for x in p.expect.iter().filter(|x| x.side == side) {
                let Some(table) = g.tables.iter().position(|t| t.root(side) == Some(x.root)) else {
                    count
                        .failed
                        .push(format!("probe {n}: no table has its root"));
                    continue;
                };
                let what = format!("probe {n} {} ({})", side.name(), p.description);
                one(&mut count, what, table, &p.value);
            }
        }
    }
    count
}

#[test]
fn chains_decode_like_rdma_core() {
    let (mut lookups, mut failed) = (0, 0);
    for (path, r) in rebuilt() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                say(&format!("{name}: not rebuilt: {e}"));
                failed += 1;
                continue;
            }
        };
        let c = compare(r);
        say(&format!(
            "{name}: {} lookups ({} STEs) decode alike, {} differ, {} skipped",
            c.lookups,
            c.stes,
            c.failed.len(),
            c.skipped.len()
        ));
        for f in c.failed.iter().take(10) {
            say(&format!("  FAILED {f}"));
        }
        for s in &c.skipped {
            say(&format!("  SKIPPED {s}"));
        }
        lookups += c.lookups;
        failed += c.failed.len();
    }
    say(&format!("{lookups} lookups decode alike, {failed} differ"));
    assert_eq!(failed, 0, "{failed} chains differ from rdma-core's");
    assert!(lookups > 0, "nothing compared");
}

#[test]
fn own_recordings_pass_the_simulator_checker() {
    let (dir, keep) = match std::env::var_os("MLX5DR_RECORDINGS_OUT") {
        Some(d) if !d.is_empty() => (PathBuf::from(d), true),
        _ => (
            std::env::temp_dir().join(format!("mlx5dr-own-recordings-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mut expected_checks = 0;
    for (path, r) in rebuilt() {
        let name = path.file_name().unwrap_or_default();
        let r = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{name:?}: not rebuilt: {e}"));
        let v: Value = serde_json::from_str(&r.json).unwrap();
        // The checker walks each entry twice (value and packet) plus replay and read-back.
        expected_checks += 2 + 2 * v["expect"].as_array().map_or(0, Vec::len);
        assert_eq!(v["scenario"], r.name.as_str());
        std::fs::write(dir.join(name), &r.json).unwrap();
    }
    say(&format!("our recordings: {}", dir.display()));
    let result = check::check_folder(&dir, &mut |l| say(l));
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (passed, failed) = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failed, 0, "{failed} checks of our recordings failed");
    assert!(
        passed >= expected_checks,
        "{passed} checks passed, fewer than the {expected_checks} our expectations make"
    );
}
