//! The ICM side of a recording: every write in posting order, the image the writes
//! leave (line by line), and the phases that group them.

use std::collections::{BTreeMap, HashMap};

use super::json::{hex, Json};
use crate::device::IcmKind;

/// Bytes of one ICM line (one STE).
pub(crate) const LINE: usize = 64;

/// Blobs of at least this many bytes may be written in the sparse form.
const SPARSE_MIN: usize = 4096;

/// What a write stored, in the recordings' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum WriteKind {
    /// STE memory, at most one line (an STE or its control block).
    Ste,
    /// STE memory, several lines (a hash table or a piece of one).
    Htbl,
    /// Modify-header actions.
    Action,
    /// Modify-header patterns.
    Pattern,
    /// Encapsulation headers (not in rdma-core's recordings).
    Encap,
}

impl WriteKind {
    fn of(kind: IcmKind, len: usize) -> WriteKind {
        match kind {
            IcmKind::Steering if len <= LINE => WriteKind::Ste,
            IcmKind::Steering => WriteKind::Htbl,
            IcmKind::ModifyAction => WriteKind::Action,
            IcmKind::ModifyPattern => WriteKind::Pattern,
            IcmKind::Encap => WriteKind::Encap,
        }
    }

    /// The `kind` of a write.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WriteKind::Ste => "ste",
            WriteKind::Htbl => "htbl",
            WriteKind::Action => "action",
            WriteKind::Pattern => "pattern",
            WriteKind::Encap => "encap",
        }
    }
}

/// The `icm_type` of an image run.
fn icm_type(kind: IcmKind) -> &'static str {
    match kind {
        IcmKind::Steering => "ste",
        IcmKind::ModifyAction => "action",
        IcmKind::ModifyPattern => "pattern",
        IcmKind::Encap => "encap",
    }
}

/// One write as posted.
#[derive(Debug, Clone)]
struct Write {
    addr: u64,
    kind: WriteKind,
    data: Vec<u8>,
}

/// One line of the image: the ICM kind it lies in and its bytes (zero where no write
/// reached).
#[derive(Debug, Clone)]
struct Line {
    kind: IcmKind,
    bytes: [u8; LINE],
}

/// A named span of writes (`phases[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    pub(crate) first: usize,
    pub(crate) count: usize,
}

/// The writes, their image, and the phases.
#[derive(Debug, Default)]
pub(crate) struct WriteLog {
    writes: Vec<Write>,
    image: BTreeMap<u64, Line>,
    phases: Vec<Phase>,
    /// Writes before this index belong to a phase already.
    mark: usize,
}

impl WriteLog {
    /// Logs a write of `data` at `addr` in ICM of `kind`.
    pub(crate) fn write(&mut self, kind: IcmKind, addr: u64, data: &[u8]) {
        self.writes.push(Write {
            addr,
            kind: WriteKind::of(kind, data.len()),
            data: data.to_vec(),
        });
        // Line by line: a write may start or end inside a line (a 32-byte control
        // block), and the rest of that line keeps what it had.
        let mut at = addr;
        let mut rest = data;
        while !rest.is_empty() {
            let base = at - at % LINE as u64;
            let off = (at - base) as usize;
            let n = rest.len().min(LINE - off);
            let line = self.image.entry(base).or_insert(Line {
                kind,
                bytes: [0; LINE],
            });
            line.bytes[off..off + n].copy_from_slice(&rest[..n]);
            at += n as u64;
            rest = &rest[n..];
        }
    }

    /// Writes so far.
    pub(crate) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Closes a phase: the writes since the last one are `name`'s. Consecutive rule
    /// inserts (and deletes) share one phase, as in rdma-core's recordings. Returns the
    /// span as `(first, count)`.
    pub(crate) fn phase(&mut self, name: &'static str) -> (usize, usize) {
        let (first, count) = (self.mark, self.writes.len() - self.mark);
        self.mark = self.writes.len();
        let merge = matches!(name, "rule_insert" | "rule_delete");
        match self.phases.last_mut() {
            Some(p) if merge && p.name == name && p.first + p.count == first => p.count += count,
            _ => self.phases.push(Phase { name, first, count }),
        }
        (first, count)
    }

    /// Skips the writes since the last phase (they belong to none).
    pub(crate) fn skip(&mut self) {
        self.mark = self.writes.len();
    }

    /// `phases`.
    pub(crate) fn phases_json(&self) -> Json {
        Json::Arr(
            self.phases
                .iter()
                .map(|p| {
                    Json::Obj(vec![
                        ("name", p.name.into()),
                        ("first_write", p.first.into()),
                        ("num_writes", p.count.into()),
                    ])
                })
                .collect(),
        )
    }

    /// True when some blob will be written in the sparse form.
    pub(crate) fn uses_sparse(&self) -> bool {
        self.writes.iter().any(|w| sparse_fill(&w.data).is_some())
            || self.runs().iter().any(|r| sparse_fill(&r.2).is_some())
    }

    /// `writes`.
    pub(crate) fn writes_json(&self) -> Json {
        Json::Arr(
            self.writes
                .iter()
                .map(|w| {
                    let mut o = vec![("icm_addr", w.addr.into()), ("kind", w.kind.name().into())];
                    o.extend(blob(&w.data));
                    Json::Obj(o)
                })
                .collect(),
        )
    }

    /// The image as runs of consecutive lines of one kind: `(base, kind, bytes)`.
    fn runs(&self) -> Vec<(u64, IcmKind, Vec<u8>)> {
        let mut runs: Vec<(u64, IcmKind, Vec<u8>)> = Vec::new();
        for (&addr, line) in &self.image {
            match runs.last_mut() {
                Some((base, kind, data))
                    if *kind == line.kind && *base + data.len() as u64 == addr =>
                {
                    data.extend_from_slice(&line.bytes)
                }
                _ => runs.push((addr, line.kind, line.bytes.to_vec())),
            }
        }
        runs
    }

    /// `icm`.
    pub(crate) fn image_json(&self) -> Json {
        Json::Arr(
            self.runs()
                .into_iter()
                .map(|(base, kind, data)| {
                    let mut o = vec![("base", base.into()), ("icm_type", icm_type(kind).into())];
                    o.extend(blob(&data));
                    Json::Obj(o)
                })
                .collect(),
        )
    }

    /// `stats`: writes and bytes per kind (the kinds rdma-core's recordings count, and
    /// any other kind that occurs).
    pub(crate) fn stats_json(&self) -> Json {
        let mut per: BTreeMap<&'static str, (u64, u64)> =
            ["ste", "htbl", "formatted_htbl", "action", "pattern", "arg"]
                .into_iter()
                .map(|k| (k, (0, 0)))
                .collect();
        for w in &self.writes {
            let e = per.entry(w.kind.name()).or_default();
            e.0 += 1;
            e.1 += w.data.len() as u64;
        }
        let mut o = Vec::new();
        for (k, (n, bytes)) in per {
            o.push((stat_key("writes_", k), n.into()));
            o.push((stat_key("bytes_", k), bytes.into()));
        }
        Json::Obj(o)
    }
}

/// The `stats` key of a counter of `kind`.
fn stat_key(prefix: &str, kind: &str) -> &'static str {
    const KEYS: &[(&str, &str, &str)] = &[
        ("ste", "writes_ste", "bytes_ste"),
        ("htbl", "writes_htbl", "bytes_htbl"),
        (
            "formatted_htbl",
            "writes_formatted_htbl",
            "bytes_formatted_htbl",
        ),
        ("action", "writes_action", "bytes_action"),
        ("pattern", "writes_pattern", "bytes_pattern"),
        ("arg", "writes_arg", "bytes_arg"),
        ("encap", "writes_encap", "bytes_encap"),
    ];
    let (_, w, b) = KEYS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .copied()
        .unwrap_or(("", "writes_other", "bytes_other"));
    if prefix == "writes_" {
        w
    } else {
        b
    }
}

/// The line most lines of `data` equal, when the sparse form is worth it: a blob of at
/// least 4 KiB of whole lines, more than half of them equal to that line.
fn sparse_fill(data: &[u8]) -> Option<&[u8]> {
    if data.len() < SPARSE_MIN || data.len() % LINE != 0 {
        return None;
    }
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for line in data.chunks_exact(LINE) {
        *counts.entry(line).or_default() += 1;
    }
    let (fill, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    (n * 2 > data.len() / LINE).then_some(fill)
}

/// The fields of a blob: `data`, or the sparse `len`, `fill` and `lines`.
fn blob(data: &[u8]) -> Vec<(&'static str, Json)> {
    let Some(fill) = sparse_fill(data) else {
        return vec![("data", hex(data).into())];
    };
    let lines = data
        .chunks_exact(LINE)
        .enumerate()
        .filter(|(_, l)| *l != fill)
        .map(|(i, l)| Json::Arr(vec![i.into(), hex(l).into()]))
        .collect();
    vec![
        ("len", data.len().into()),
        ("fill", hex(fill).into()),
        ("lines", Json::Arr(lines)),
    ]
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The bytes of a blob written by [`blob`], decoded back (plain or sparse).
    pub(crate) fn unblob(fields: &[(&'static str, Json)]) -> Vec<u8> {
        let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        if let Some(Json::Str(s)) = get("data") {
            return unhex(s);
        }
        let (Some(Json::U64(len)), Some(Json::Str(fill)), Some(Json::Arr(lines))) =
            (get("len"), get("fill"), get("lines"))
        else {
            panic!("neither plain nor sparse: {fields:?}");
        };
        let mut out = unhex(fill).repeat(*len as usize / LINE);
        for l in lines {
            let Json::Arr(pair) = l else { panic!() };
            let (Json::U64(i), Json::Str(h)) = (&pair[0], &pair[1]) else {
                panic!()
            };
            let i = *i as usize;
            out[i * LINE..(i + 1) * LINE].copy_from_slice(&unhex(h));
        }
        out
    }

    pub(crate) fn blob_of(data: &[u8]) -> Vec<(&'static str, Json)> {
        blob(data)
    }

    /// The image as `(base, bytes)` runs.
    pub(crate) fn runs_of(log: &WriteLog) -> Vec<(u64, Vec<u8>)> {
        log.runs().into_iter().map(|(b, _, d)| (b, d)).collect()
    }
}
