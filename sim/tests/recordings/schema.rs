//! The recording schema (see `data/recordings/README.md`), parsed from JSON into typed
//! values. Anything that does not fit the schema is an error naming the offending path.
//!
//! Beyond rdma-core's files, it reads what the driver's own recordings
//! (`mlx5dr::record`) add in the same style: the actions `default_miss`, `dest_tir`
//! `{tirn}`, `dest_qp` `{qpn}`, `dest_vport` `{vport}`, `dest_uplink` and `counter`
//! `{id, offset}`, and in `fake_device` the e-switch's `vports` (`[{vport, gvmi,
//! vhca_gvmi, icm_address_rx, icm_address_tx}]`) with `esw_manager_vhca_gvmi`, which a
//! `misc.source_port` lookup and a vport destination need.

use serde_json::{Map, Value};
use sim::endpoint::Terminal;
use std::collections::BTreeMap;
use ste_builder::prm::dr_match_set_misc as misc;
use ste_builder::{Caps, MatchParam, Section, VportCap};

/// A schema violation: where, and what.
pub type SchemaError = String;

/// A JSON object with path-aware accessors.
#[derive(Clone, Copy)]
struct Obj<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn of(path: &'a str, v: &'a Value) -> Result<Self, SchemaError> {
        v.as_object()
            .map(|map| Obj { path, map })
            .ok_or_else(|| format!("{path}: not an object"))
    }
    fn get(&self, key: &str) -> Result<&'a Value, SchemaError> {
        self.map
            .get(key)
            .ok_or_else(|| format!("{}: missing key `{key}`", self.path))
    }
    fn opt(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
    fn u64(&self, key: &str) -> Result<u64, SchemaError> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| format!("{}.{key}: not an unsigned integer", self.path))
    }
    fn opt_u64(&self, key: &str) -> Result<Option<u64>, SchemaError> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{}.{key}: not an unsigned integer or null", self.path)),
        }
    }
    fn str(&self, key: &str) -> Result<&'a str, SchemaError> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| format!("{}.{key}: not a string", self.path))
    }
    fn bool(&self, key: &str) -> Result<bool, SchemaError> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| format!("{}.{key}: not a boolean", self.path))
    }
    fn array(&self, key: &str) -> Result<&'a Vec<Value>, SchemaError> {
        self.get(key)?
            .as_array()
            .ok_or_else(|| format!("{}.{key}: not an array", self.path))
    }
}

fn unhex(path: &str, s: &str) -> Result<Vec<u8>, SchemaError> {
    hex::decode(s).map_err(|e| format!("{path}: bad hex: {e}"))
}

/// Bytes given in the plain form (`data`) or the sparse form (`len`, `fill`, `lines`).
fn blob(o: Obj<'_>) -> Result<Vec<u8>, SchemaError> {
    if let Some(data) = o.opt("data") {
        let s = data
            .as_str()
            .ok_or_else(|| format!("{}.data: not a string", o.path))?;
        return unhex(o.path, s);
    }
    let len = usize::try_from(o.u64("len")?).map_err(|e| format!("{}.len: {e}", o.path))?;
    let fill = unhex(o.path, o.str("fill")?)?;
    if fill.len() != 64 || len % 64 != 0 {
        return Err(format!(
            "{}: sparse blob of {len} bytes with a {}-byte fill line",
            o.path,
            fill.len()
        ));
    }
    let mut out = fill.repeat(len / 64);
    for (n, line) in o.array("lines")?.iter().enumerate() {
        let pair = line.as_array().filter(|a| a.len() == 2);
        let (i, h) = match pair.map(|a| (a[0].as_u64(), a[1].as_str())) {
            Some((Some(i), Some(h))) => (i as usize, h),
            _ => return Err(format!("{}.lines[{n}]: not [index, hex]", o.path)),
        };
        let bytes = unhex(o.path, h)?;
        if bytes.len() != 64 || i >= len / 64 {
            return Err(format!("{}.lines[{n}]: line {i} out of the blob", o.path));
        }
        out[i * 64..(i + 1) * 64].copy_from_slice(&bytes);
    }
    Ok(out)
}

/// What a write stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// STE memory (`ste`, `htbl`, `formatted_htbl`).
    Ste,
    /// Modify-header actions.
    Action,
    /// Modify-header patterns.
    Pattern,
}

/// One ICM write.
pub struct Write {
    pub addr: u64,
    pub kind: WriteKind,
    pub data: Vec<u8>,
}

/// One run of the final image.
pub struct ImageRun {
    pub base: u64,
    pub kind: WriteKind,
    pub data: Vec<u8>,
}

/// The end addresses of one side of the domain.
#[derive(Debug, Clone, Copy)]
pub struct SideAddrs {
    pub drop: u64,
    pub default: u64,
}

/// A rule action. rdma-core's files have only drop, goto and tag; the driver's own
/// recordings (`mlx5dr::record`) also write the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Drop,
    /// To the side's default (miss) address.
    DefaultMiss,
    DestTable(usize),
    Tag(u32),
    /// To a TIR (NIC RX); the file names its number, not its address.
    DestTir(u32),
    /// To a QP through its TIR (NIC RX); the file names the QP, not the address.
    DestQp(u32),
    /// To an e-switch vport (FDB); its addresses are in `fake_device.vports`.
    DestVport(u16),
    /// To the uplink (FDB).
    DestUplink,
    /// Counts on flow counter `id + offset` (the id the STE carries).
    Counter {
        id: u32,
        offset: u32,
    },
}

impl RuleAction {
    /// The flow counter the action counts on, for a counter action.
    pub fn counter_id(self) -> Option<u32> {
        match self {
            RuleAction::Counter { id, offset } => Some(id.wrapping_add(offset)),
            _ => None,
        }
    }
}

pub struct Table {
    pub root_rx: Option<u64>,
    pub root_tx: Option<u64>,
}

impl Table {
    pub fn root(&self, side: Side) -> Option<u64> {
        match side {
            Side::Rx => self.root_rx,
            Side::Tx => self.root_tx,
        }
    }
}

pub struct Rule {
    pub matcher: usize,
    pub value: Vec<u8>,
    pub actions: Vec<RuleAction>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Rx,
    Tx,
}

impl Side {
    fn parse(path: &str, s: &str) -> Result<Side, SchemaError> {
        match s {
            "rx" => Ok(Side::Rx),
            "tx" => Ok(Side::Tx),
            _ => Err(format!("{path}: unknown side `{s}`")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Side::Rx => "rx",
            Side::Tx => "tx",
        }
    }
}

/// One `expect` entry (README §5.1).
pub struct Expect {
    pub rule: usize,
    pub side: Side,
    pub root: u64,
    pub final_addr: u64,
    pub flow_tag: Option<u32>,
    pub deleted: bool,
    pub shadowed: bool,
    pub hit_ste: Option<u64>,
    pub rule_ste: Option<u64>,
    pub end_anchor: u64,
}

/// One side of a probe (README §5.3).
pub struct ProbeExpect {
    pub side: Side,
    pub root: u64,
    pub final_addr: u64,
    pub flow_tag: Option<u32>,
    pub hit_ste: Option<u64>,
}

pub struct Probe {
    pub description: String,
    pub value: Vec<u8>,
    pub expected_rule: Option<usize>,
    pub expect: Vec<ProbeExpect>,
}

/// The uplink's vport number (`misc.source_port` of traffic from the wire).
pub const UPLINK_VPORT: u16 = 0xffff;

/// A whole recording.
pub struct Recording {
    /// The domain is an e-switch (`fdb`).
    pub fdb: bool,
    pub steering_format_version: u8,
    pub gvmi: u16,
    /// `log_steering_sw_icm_size`, when given.
    pub log_icm_size: Option<u8>,
    /// `max_log_sw_icm_sz` (log2 of the largest hash table, in STEs), when given.
    pub max_log_sw_icm_sz: Option<u8>,
    pub sides: BTreeMap<Side, SideAddrs>,
    /// Firmware-owned addresses and what they are.
    pub firmware: BTreeMap<u64, Terminal>,
    pub tables: Vec<Table>,
    /// The table of each matcher.
    pub matcher_tables: Vec<usize>,
    /// Per matcher: its mask covers `misc.source_port`. In an FDB domain each rule of
    /// such a matcher lives on one side only, the side its source port sends on: RX
    /// for the wire, TX for every other port (rdma-core's `dr_rule_skip`).
    pub matcher_port_split: Vec<bool>,
    /// The e-switch vports `fake_device.vports` lists (the driver's recordings), for
    /// source-port lookups and vport destinations. Empty in rdma-core's files.
    pub vports: Vec<VportCap>,
    /// `fake_device.esw_manager_vhca_gvmi`: the vhca whose vports `vports` are (the
    /// domain's own gvmi when absent).
    pub esw_manager_vhca_gvmi: Option<u16>,
    /// The uplink's address per side (`fake_device.uplink_rx_icm`, `uplink_tx_icm`).
    pub uplink: BTreeMap<Side, u64>,
    pub rules: Vec<Rule>,
    pub writes: Vec<Write>,
    pub image: Vec<ImageRun>,
    pub expect: Option<Vec<Expect>>,
    pub probes: Vec<Probe>,
}

impl Recording {
    /// Whether rule `i` is installed on `side`: every rule is on every side of the
    /// domain, except in FDB the rules of a matcher that masks the source port (see
    /// [`Recording::matcher_port_split`]).
    pub fn rule_on_side(&self, i: usize, side: Side) -> bool {
        let Some(rule) = self.rules.get(i) else {
            return false;
        };
        let split = self.matcher_port_split.get(rule.matcher) == Some(&true);
        if !self.fdb || !split {
            return true;
        }
        let from_wire = MatchParam::from_bytes(&rule.value)
            .map(|v| v.get(Section::Misc, misc::SOURCE_PORT) == u64::from(UPLINK_VPORT))
            .unwrap_or(false);
        (side == Side::Rx) == from_wire
    }

    /// The address delivering to vport `n` (the uplink too) on `side`, if the file
    /// gives it.
    pub fn vport_addr(&self, n: u16, side: Side) -> Option<u64> {
        if let Some(v) = self.vports.iter().find(|v| v.vport_num == n) {
            return Some(match side {
                Side::Rx => v.icm_address_rx,
                Side::Tx => v.icm_address_tx,
            });
        }
        if n == UPLINK_VPORT {
            return self.uplink.get(&side).copied();
        }
        None
    }

    /// The capabilities lookup keys read: the domain's gvmi and the vport table (a
    /// `misc.source_port` key is the source vport's gvmi).
    pub fn caps(&self) -> Caps {
        Caps {
            gvmi: self.gvmi,
            esw_manager_vhca_gvmi: self.esw_manager_vhca_gvmi.unwrap_or(self.gvmi),
            vports: self.vports.clone(),
            ..Caps::default()
        }
    }

    /// The flow counters the rules count on (their STEs carry these ids).
    pub fn counter_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.rules
            .iter()
            .flat_map(|r| r.actions.iter().filter_map(|a| a.counter_id()))
    }
}

fn write_kind(path: &str, s: &str) -> Result<WriteKind, SchemaError> {
    match s {
        "ste" | "htbl" | "formatted_htbl" => Ok(WriteKind::Ste),
        "action" => Ok(WriteKind::Action),
        "pattern" => Ok(WriteKind::Pattern),
        other => Err(format!("{path}: write kind `{other}` is not supported")),
    }
}

fn tag_value(path: &str, v: Option<u64>) -> Result<Option<u32>, SchemaError> {
    v.map(|t| u32::try_from(t).map_err(|_| format!("{path}: flow tag {t} too large")))
        .transpose()
}

fn u16_field(path: &str, v: u64) -> Result<u16, SchemaError> {
    u16::try_from(v).map_err(|_| format!("{path}: {v} does not fit 16 bits"))
}

fn u32_field(path: &str, v: u64) -> Result<u32, SchemaError> {
    u32::try_from(v).map_err(|_| format!("{path}: {v} does not fit 32 bits"))
}

/// `fake_device.vports`: `[{vport, gvmi, vhca_gvmi, icm_address_rx, icm_address_tx}]`,
/// the e-switch vports the recording's rules and actions name.
fn vport_table(fd: Obj<'_>) -> Result<Vec<VportCap>, SchemaError> {
    let mut out: Vec<VportCap> = Vec::new();
    for (i, v) in fd.array("vports")?.iter().enumerate() {
        let path = format!("$.fake_device.vports[{i}]");
        let o = Obj::of(&path, v)?;
        let cap = VportCap {
            vport_num: u16_field(&path, o.u64("vport")?)?,
            vport_gvmi: u16_field(&path, o.u64("gvmi")?)?,
            vhca_gvmi: u16_field(&path, o.u64("vhca_gvmi")?)?,
            icm_address_rx: o.u64("icm_address_rx")?,
            icm_address_tx: o.u64("icm_address_tx")?,
        };
        if out.iter().any(|c| c.vport_num == cap.vport_num) {
            return Err(format!("{path}: vport {} listed twice", cap.vport_num));
        }
        out.push(cap);
    }
    Ok(out)
}

/// The e-switch manager's vport number, for the firmware's e-switch manager addresses.
const ESW_MANAGER_VPORT: u16 = 0;

/// The fate of the default (miss) address of a domain.
fn default_terminal(domain: &str) -> Result<Terminal, SchemaError> {
    match domain {
        "nic_rx" => Ok(Terminal::Drop),
        "nic_tx" => Ok(Terminal::Allow),
        "fdb" => Ok(Terminal::Vport(ESW_MANAGER_VPORT)),
        other => Err(format!("domain `{other}` is not nic_rx, nic_tx or fdb")),
    }
}

/// A log2 size: an address-space exponent below 48.
fn log2_field(o: Obj<'_>, key: &str) -> Result<Option<u8>, SchemaError> {
    match o.opt_u64(key)? {
        Some(l) if l < 48 => Ok(Some(l as u8)),
        Some(l) => Err(format!("{}.{key}: log2 size {l} is not below 48", o.path)),
        None => Ok(None),
    }
}

/// Parses a recording.
pub fn parse(v: &Value) -> Result<Recording, SchemaError> {
    let top = Obj::of("$", v)?;
    let domain = top.str("domain")?.to_string();
    let default_fate = default_terminal(&domain)?;

    // Firmware addresses: from the fake device's capabilities, then the domain's.
    let mut firmware = BTreeMap::new();
    let (mut version, mut gvmi, mut log_icm_size, mut max_log_sw_icm_sz) = (1u8, 0u16, None, None);
    let mut fake_sides = BTreeMap::new();
    let (mut vports, mut esw_manager_vhca_gvmi, mut uplink) = (Vec::new(), None, BTreeMap::new());
    if let Some(fd) = top.opt("fake_device") {
        let fd = Obj::of("$.fake_device", fd)?;
        if let Some(v) = fd.opt_u64("steering_format_version")? {
            version = u8::try_from(v).map_err(|_| "steering_format_version too large")?;
        }
        gvmi = fd.opt_u64("gvmi")?.unwrap_or(0) as u16;
        log_icm_size = log2_field(fd, "log_steering_sw_icm_size")?;
        max_log_sw_icm_sz = log2_field(fd, "max_log_sw_icm_sz")?;
        for (key, t) in [
            ("nic_rx_drop_icm", Terminal::Drop),
            ("nic_tx_drop_icm", Terminal::Drop),
            ("nic_tx_allow_icm", Terminal::Allow),
            ("esw_rx_drop_icm", Terminal::Drop),
            ("esw_tx_drop_icm", Terminal::Drop),
            ("uplink_rx_icm", Terminal::Uplink),
            ("uplink_tx_icm", Terminal::Uplink),
            (
                "esw_manager_vport_rx_icm",
                Terminal::Vport(ESW_MANAGER_VPORT),
            ),
            (
                "esw_manager_vport_tx_icm",
                Terminal::Vport(ESW_MANAGER_VPORT),
            ),
        ] {
            if let Some(a) = fd.opt_u64(key)? {
                firmware.entry(a).or_insert(t);
            }
        }
        for (side, key) in [(Side::Rx, "uplink_rx_icm"), (Side::Tx, "uplink_tx_icm")] {
            if let Some(a) = fd.opt_u64(key)? {
                uplink.insert(side, a);
            }
        }
        esw_manager_vhca_gvmi = fd
            .opt_u64("esw_manager_vhca_gvmi")?
            .map(|g| u16_field("$.fake_device.esw_manager_vhca_gvmi", g))
            .transpose()?;
        if fd.opt("vports").is_some() {
            vports = vport_table(fd)?;
        }
        for v in &vports {
            let t = match v.vport_num {
                UPLINK_VPORT => Terminal::Uplink,
                n => Terminal::Vport(n),
            };
            firmware.entry(v.icm_address_rx).or_insert(t);
            firmware.entry(v.icm_address_tx).or_insert(t);
        }
        // README §5.4: the sides' addresses when a file has no `domain_addrs`.
        let addr = |k: &str| fd.opt_u64(k);
        let pairs: &[(Side, &str, &str)] = match domain.as_str() {
            "nic_rx" => &[(Side::Rx, "nic_rx_drop_icm", "nic_rx_drop_icm")],
            "nic_tx" => &[(Side::Tx, "nic_tx_drop_icm", "nic_tx_allow_icm")],
            _ => &[
                (Side::Rx, "esw_rx_drop_icm", "esw_manager_vport_rx_icm"),
                (Side::Tx, "esw_tx_drop_icm", "esw_manager_vport_tx_icm"),
            ],
        };
        for &(side, drop, default) in pairs {
            if let (Some(drop), Some(default)) = (addr(drop)?, addr(default)?) {
                fake_sides.insert(side, SideAddrs { drop, default });
            }
        }
    }
    let sides = match top.opt("domain_addrs") {
        Some(da) => {
            let da = Obj::of("$.domain_addrs", da)?;
            let mut sides = BTreeMap::new();
            for (name, v) in da.map {
                let path = format!("$.domain_addrs.{name}");
                let side = Side::parse(&path, name)?;
                let o = Obj::of(&path, v)?;
                let s = SideAddrs {
                    drop: o.u64("drop_icm_addr")?,
                    default: o.u64("default_icm_addr")?,
                };
                firmware.entry(s.drop).or_insert(Terminal::Drop);
                firmware.entry(s.default).or_insert(default_fate);
                sides.insert(side, s);
            }
            sides
        }
        None => fake_sides,
    };
    if sides.is_empty() {
        return Err("no side addresses: neither domain_addrs nor fake_device gives them".into());
    }

    let mut tables = Vec::new();
    for (i, t) in top.array("tables")?.iter().enumerate() {
        let path = format!("$.tables[{i}]");
        let o = Obj::of(&path, t)?;
        tables.push(Table {
            root_rx: o.opt_u64("root_icm_addr_rx")?,
            root_tx: o.opt_u64("root_icm_addr_tx")?,
        });
    }

    let (mut matcher_tables, mut matcher_port_split) = (Vec::new(), Vec::new());
    for (i, m) in top.array("matchers")?.iter().enumerate() {
        let path = format!("$.matchers[{i}]");
        let o = Obj::of(&path, m)?;
        matcher_tables.push(o.u64("table")? as usize);
        let masks_port = match o.opt("mask") {
            Some(mask) => {
                let hex = mask
                    .as_str()
                    .ok_or_else(|| format!("{path}.mask: not a string"))?;
                let mask = MatchParam::from_bytes(&unhex(&path, hex)?)
                    .map_err(|e| format!("{path}.mask: {e}"))?;
                mask.get(Section::Misc, misc::SOURCE_PORT) != 0
            }
            None => false,
        };
        matcher_port_split.push(masks_port);
    }

    let mut rules = Vec::new();
    for (i, r) in top.array("rules")?.iter().enumerate() {
        let path = format!("$.rules[{i}]");
        let o = Obj::of(&path, r)?;
        let mut actions = Vec::new();
        for (j, a) in o.array("actions")?.iter().enumerate() {
            let apath = format!("{path}.actions[{j}]");
            let ao = Obj::of(&apath, a)?;
            actions.push(match ao.str("type")? {
                "drop" => RuleAction::Drop,
                "default_miss" => RuleAction::DefaultMiss,
                "dest_table" => RuleAction::DestTable(ao.u64("table")? as usize),
                "tag" => RuleAction::Tag(tag_value(&apath, Some(ao.u64("value")?))?.unwrap_or(0)),
                "dest_tir" => RuleAction::DestTir(u32_field(&apath, ao.u64("tirn")?)?),
                "dest_qp" => RuleAction::DestQp(u32_field(&apath, ao.u64("qpn")?)?),
                "dest_vport" => RuleAction::DestVport(u16_field(&apath, ao.u64("vport")?)?),
                "dest_uplink" => RuleAction::DestUplink,
                "counter" => RuleAction::Counter {
                    id: u32_field(&apath, ao.u64("id")?)?,
                    offset: u32_field(&apath, ao.u64("offset")?)?,
                },
                other => return Err(format!("{apath}: unknown action `{other}`")),
            });
        }
        rules.push(Rule {
            matcher: o.u64("matcher")? as usize,
            value: unhex(&path, o.str("value")?)?,
            actions,
            deleted: o.bool("deleted")?,
        });
    }

    let mut writes = Vec::new();
    for (i, w) in top.array("writes")?.iter().enumerate() {
        let path = format!("$.writes[{i}]");
        let o = Obj::of(&path, w)?;
        writes.push(Write {
            addr: o.u64("icm_addr")?,
            kind: write_kind(&path, o.str("kind")?)?,
            data: blob(o)?,
        });
    }
    if let Some(n) = top.opt_u64("num_writes")? {
        if n as usize != writes.len() {
            return Err(format!("num_writes is {n}, writes has {}", writes.len()));
        }
    }

    let mut image = Vec::new();
    for (i, run) in top.array("icm")?.iter().enumerate() {
        let path = format!("$.icm[{i}]");
        let o = Obj::of(&path, run)?;
        let kind = match o.str("icm_type")? {
            "ste" => WriteKind::Ste,
            "action" => WriteKind::Action,
            "pattern" => WriteKind::Pattern,
            other => return Err(format!("{path}: unknown icm_type `{other}`")),
        };
        image.push(ImageRun {
            base: o.u64("base")?,
            kind,
            data: blob(o)?,
        });
    }

    let expect = match top.opt("expect") {
        None => None,
        Some(e) => {
            let list = e.as_array().ok_or("$.expect: not an array")?;
            let mut out = Vec::new();
            for (i, x) in list.iter().enumerate() {
                let path = format!("$.expect[{i}]");
                let o = Obj::of(&path, x)?;
                out.push(Expect {
                    rule: o.u64("rule")? as usize,
                    side: Side::parse(&path, o.str("side")?)?,
                    root: o.u64("root_icm_addr")?,
                    final_addr: o.u64("final_addr")?,
                    flow_tag: tag_value(&path, o.opt_u64("flow_tag")?)?,
                    deleted: o.bool("deleted")?,
                    shadowed: o.bool("shadowed")?,
                    hit_ste: o.opt_u64("hit_ste_icm_addr")?,
                    rule_ste: o.opt_u64("rule_ste_icm_addr")?,
                    end_anchor: o.u64("end_anchor_icm_addr")?,
                });
            }
            Some(out)
        }
    };

    let mut probes = Vec::new();
    if let Some(ps) = top.opt("probes") {
        for (i, p) in ps
            .as_array()
            .ok_or("$.probes: not an array")?
            .iter()
            .enumerate()
        {
            let path = format!("$.probes[{i}]");
            let o = Obj::of(&path, p)?;
            let mut expect = Vec::new();
            for (j, x) in o.array("expect")?.iter().enumerate() {
                let xpath = format!("{path}.expect[{j}]");
                let xo = Obj::of(&xpath, x)?;
                expect.push(ProbeExpect {
                    side: Side::parse(&xpath, xo.str("side")?)?,
                    root: xo.u64("root_icm_addr")?,
                    final_addr: xo.u64("final_addr")?,
                    flow_tag: tag_value(&xpath, xo.opt_u64("flow_tag")?)?,
                    hit_ste: xo.opt_u64("hit_ste_icm_addr")?,
                });
            }
            probes.push(Probe {
                description: o
                    .opt("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                value: unhex(&path, o.str("value")?)?,
                expected_rule: o.opt_u64("expected_rule")?.map(|r| r as usize),
                expect,
            });
        }
    }

    Ok(Recording {
        fdb: domain == "fdb",
        steering_format_version: version,
        gvmi,
        log_icm_size,
        max_log_sw_icm_sz,
        sides,
        firmware,
        tables,
        matcher_tables,
        matcher_port_split,
        vports,
        esw_manager_vhca_gvmi,
        uplink,
        rules,
        writes,
        image,
        expect,
        probes,
    })
}
