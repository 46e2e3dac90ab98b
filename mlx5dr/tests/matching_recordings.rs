//! Builder chains against rdma-core's own choices: for every matcher of the public
//! recordings (rdma-core 44 on a simulated ConnectX-6 Dx, STEv1), the chain chosen from
//! the matcher's mask and the discovered caps must have exactly the lookup types
//! rdma-core chained (`anchors.<side>.lu_types`); every rule must pass the value checks;
//! and each live rule's last STE in the final ICM image must carry our bit mask and tag,
//! byte for byte.
//!
//! The folder is `MLX5DR_RECORDINGS_DIR` if set, else the simulator's copy.

#![cfg(feature = "sim")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx5dr::caps::DeviceCaps;
use mlx5dr::device::sim::SimBackend;
use mlx5dr::matching::{BuilderChain, ChainCaps, DomainSide, RawMatch};
use sim::profile::{DeviceModel, Profile};
use ste_builder::Caps;

use json::Json;

fn recordings_dir() -> PathBuf {
    match std::env::var_os("MLX5DR_RECORDINGS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/tests/data/recordings"),
    }
}

fn recordings() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(recordings_dir())
        .expect("recordings folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no recordings found");
    files
}

/// The ConnectX-6 Dx the recordings were made on, as the driver discovers it.
fn connectx6dx() -> (DeviceCaps, Caps) {
    let profile = Profile::new(DeviceModel::ConnectX6Dx);
    let be = SimBackend::with_profile(profile.clone()).unwrap();
    let caps = DeviceCaps::query(&be).unwrap();
    let vports: Vec<_> = profile
        .vports
        .iter()
        .map(|v| caps.query_vport(&be, v.num).unwrap())
        .collect();
    let ste = caps.ste_caps(&vports);
    (caps, ste)
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The sides of a recording's domain, with their JSON names.
fn sides(domain: &str) -> &'static [(DomainSide, &'static str)] {
    match domain {
        "nic_rx" => &[(DomainSide::NicRx, "rx")],
        "nic_tx" => &[(DomainSide::NicTx, "tx")],
        "fdb" => &[(DomainSide::FdbRx, "rx"), (DomainSide::FdbTx, "tx")],
        other => panic!("unknown domain {other}"),
    }
}

/// The final ICM image of a recording: runs of 64-byte lines, decoded once.
struct Image(Vec<Run>);

/// One run: its base address, its length in lines, and its lines (the sparse form lists
/// the lines that differ from a fill line).
struct Run {
    base: u64,
    lines: usize,
    listed: HashMap<usize, Vec<u8>>,
    fill: Vec<u8>,
}

impl Image {
    fn new(runs: &[Json]) -> Image {
        Image(
            runs.iter()
                .map(|run| {
                    let base = run["base"].u64();
                    match run.get("data") {
                        Some(data) => {
                            let bytes = hex(data.str());
                            Run {
                                base,
                                lines: bytes.len() / 64,
                                listed: bytes.chunks(64).map(<[u8]>::to_vec).enumerate().collect(),
                                fill: Vec::new(),
                            }
                        }
                        None => Run {
                            base,
                            lines: run["len"].u64() as usize / 64,
                            listed: run["lines"]
                                .arr()
                                .iter()
                                .map(|l| (l.arr()[0].u64() as usize, hex(l.arr()[1].str())))
                                .collect(),
                            fill: hex(run["fill"].str()),
                        },
                    }
                })
                .collect(),
        )
    }

    /// The 64-byte line at `addr`.
    fn line(&self, addr: u64) -> &[u8] {
        for run in &self.0 {
            if addr < run.base || (addr - run.base) / 64 >= run.lines as u64 {
                continue;
            }
            let index = ((addr - run.base) / 64) as usize;
            return run.listed.get(&index).unwrap_or(&run.fill);
        }
        panic!("ICM line {addr:#x} is not in the image");
    }
}

#[test]
fn chains_and_tags_match_rdma_core() {
    let (dev, ste) = connectx6dx();
    let caps = ChainCaps::new(&dev, &ste).unwrap();
    let mut checked_chains = 0;
    let mut checked_stes = 0;
    for path in recordings() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let rec = json::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let device = &rec["fake_device"];
        assert_eq!(device["steering_format_version"].u64(), 1, "{name}");
        assert_eq!(device["definer_format_sup"].u64(), 0, "{name}");
        let sides = sides(rec["domain"].str());

        // Chains, per matcher and side.
        let mut chains = Vec::new();
        for (i, m) in rec["matchers"].arr().iter().enumerate() {
            let criteria = m["criteria"].u64() as u8;
            let mask = RawMatch::from_bytes(criteria, &hex(m["mask"].str())).unwrap();
            let mut per_side = Vec::new();
            for &(side, key) in sides {
                let chain = BuilderChain::new(&mask, side, &caps)
                    .unwrap_or_else(|e| panic!("{name} matcher {i} {side}: {e}"));
                let want: Vec<u16> = m["anchors"][key]["lu_types"]
                    .arr()
                    .iter()
                    .map(|v| v.u64() as u16)
                    .collect();
                let got: Vec<u16> = chain.lu_types().collect();
                assert_eq!(
                    got,
                    want,
                    "{name} matcher {i} ({}) {side}",
                    m["description"].str()
                );
                checked_chains += 1;
                per_side.push(chain);
            }
            chains.push(per_side);
        }

        // Every rule's tags; each live rule's last STE as rdma-core wrote it.
        let image = Image::new(rec["icm"].arr());
        let rules = rec["rules"].arr();
        for e in rec["expect"].arr() {
            let r = e["rule"].u64() as usize;
            let rule = &rules[r];
            let side_index = sides
                .iter()
                .position(|&(_, k)| k == e["side"].str())
                .unwrap();
            let chain = &chains[rule["matcher"].u64() as usize][side_index];
            let value = RawMatch::from_bytes(0, &hex(rule["value"].str())).unwrap();
            assert!(!chain.skips_rule(&value.param), "{name} rule {r}");
            let tags = chain
                .rule_tags(&value.param, &ste)
                .unwrap_or_else(|err| panic!("{name} rule {r}: {err}"));
            if rule["deleted"].bool() {
                continue;
            }
            let line = image.line(e["rule_ste_icm_addr"].u64());
            let last = chain.builders().last().unwrap();
            assert_eq!(line[32..48], last.bit_mask, "{name} rule {r}: bit mask");
            assert_eq!(
                &line[48..64],
                tags.get(tags.len() - 1).unwrap(),
                "{name} rule {r}: tag"
            );
            checked_stes += 1;
        }
    }
    assert!(checked_chains >= 8, "{checked_chains} chains");
    assert!(checked_stes > 3000, "{checked_stes} STEs");
}

/// Just enough JSON for the recordings: objects, arrays, strings without escapes beyond
/// the simple ones, numbers, booleans and null.
mod json {
    use std::ops::Index;

    #[derive(Debug)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    static NULL: Json = Json::Null;

    impl Json {
        pub fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn u64(&self) -> u64 {
            match self {
                Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => *n as u64,
                other => panic!("not an unsigned integer: {other:?}"),
            }
        }

        pub fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }

        pub fn bool(&self) -> bool {
            match self {
                Json::Bool(b) => *b,
                other => panic!("not a boolean: {other:?}"),
            }
        }

        pub fn arr(&self) -> &[Json] {
            match self {
                Json::Arr(a) => a,
                other => panic!("not an array: {other:?}"),
            }
        }
    }

    impl Index<&str> for Json {
        type Output = Json;
        fn index(&self, key: &str) -> &Json {
            self.get(key).unwrap_or(&NULL)
        }
    }

    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            b: text.as_bytes(),
            at: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.at != p.b.len() {
            return Err(format!("trailing bytes at {}", p.at));
        }
        Ok(v)
    }

    struct Parser<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.at < self.b.len() && self.b[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
        }

        fn peek(&mut self) -> Result<u8, String> {
            self.ws();
            self.b.get(self.at).copied().ok_or("unexpected end".into())
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            if self.peek()? == c {
                self.at += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.at))
            }
        }

        fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
            if self.b[self.at..].starts_with(word.as_bytes()) {
                self.at += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.at))
            }
        }

        fn value(&mut self) -> Result<Json, String> {
            match self.peek()? {
                b'{' => {
                    self.at += 1;
                    let mut fields = Vec::new();
                    if self.peek()? == b'}' {
                        self.at += 1;
                        return Ok(Json::Obj(fields));
                    }
                    loop {
                        let k = self.string()?;
                        self.expect(b':')?;
                        fields.push((k, self.value()?));
                        match self.peek()? {
                            b',' => self.at += 1,
                            b'}' => {
                                self.at += 1;
                                return Ok(Json::Obj(fields));
                            }
                            _ => return Err(format!("bad object at {}", self.at)),
                        }
                    }
                }
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    if self.peek()? == b']' {
                        self.at += 1;
                        return Ok(Json::Arr(items));
                    }
                    loop {
                        items.push(self.value()?);
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                return Ok(Json::Arr(items));
                            }
                            _ => return Err(format!("bad array at {}", self.at)),
                        }
                    }
                }
                b'"' => Ok(Json::Str(self.string()?)),
                b't' => self.literal("true", Json::Bool(true)),
                b'f' => self.literal("false", Json::Bool(false)),
                b'n' => self.literal("null", Json::Null),
                _ => {
                    let start = self.at;
                    while self.at < self.b.len()
                        && matches!(
                            self.b[self.at],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.at += 1;
                    }
                    let s = std::str::from_utf8(&self.b[start..self.at]).unwrap();
                    s.parse()
                        .map(Json::Num)
                        .map_err(|_| format!("bad number {s:?} at {start}"))
                }
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = Vec::new();
            loop {
                let c = *self.b.get(self.at).ok_or("unterminated string")?;
                self.at += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let e = *self.b.get(self.at).ok_or("unterminated escape")?;
                        self.at += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'u' => {
                                let h = std::str::from_utf8(&self.b[self.at..self.at + 4])
                                    .map_err(|e| e.to_string())?;
                                let cp = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                                self.at += 4;
                                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                                let mut buf = [0; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            other => out.push(other),
                        }
                    }
                    other => out.push(other),
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
    }
}
