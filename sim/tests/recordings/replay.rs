//! Replaying a recording's writes into simulated ICM and comparing with its image.

use super::schema::{Recording, WriteKind};
use sim::icm::{Icm, IcmKind, IcmLayout, LINE};
use std::collections::BTreeMap;

fn icm_kind(k: WriteKind) -> IcmKind {
    match k {
        WriteKind::Ste => IcmKind::Steering,
        WriteKind::Action => IcmKind::ModifyAction,
        WriteKind::Pattern => IcmKind::ModifyPattern,
    }
}

/// The smallest aligned range of at least `2^min_log` bytes that holds `[lo, hi)`.
fn covering(lo: u64, hi: u64, min_log: u8) -> Result<(u64, u8), String> {
    let mut log = min_log;
    loop {
        let base = lo & !((1u64 << log) - 1);
        if hi <= base + (1u64 << log) {
            return Ok((base, log));
        }
        log += 1;
        if log >= 48 {
            return Err(format!("addresses {lo:#x}..{hi:#x} span too much"));
        }
    }
}

/// An ICM with one range per kind the recording uses, each range covering every
/// address written or imaged, allocated whole.
pub fn icm_for(rec: &Recording) -> Result<Icm, String> {
    let mut spans: BTreeMap<IcmKind, (u64, u64)> = BTreeMap::new();
    let all = rec
        .writes
        .iter()
        .map(|w| (w.kind, w.addr, w.data.len()))
        .chain(rec.image.iter().map(|r| (r.kind, r.base, r.data.len())));
    for (kind, addr, len) in all {
        let end = addr + len as u64;
        let e = spans.entry(icm_kind(kind)).or_insert((addr, end));
        e.0 = e.0.min(addr);
        e.1 = e.1.max(end);
    }
    let mut layouts: Vec<IcmLayout> = Vec::new();
    for (&kind, &(lo, hi)) in &spans {
        let min_log = match kind {
            IcmKind::Steering => rec.log_icm_size.unwrap_or(20),
            _ => 20,
        };
        let (base, log_size) = covering(lo, hi, min_log)?;
        let end = base + (1u64 << log_size);
        for l in &layouts {
            let (b, e) = (l.base, l.base + (1u64 << l.log_size));
            if base < e && b < end {
                return Err(format!(
                    "{kind:?} ICM {base:#x}..{end:#x} overlaps {:?}",
                    l.kind
                ));
            }
        }
        layouts.push(IcmLayout {
            kind,
            base,
            log_size,
            log_granularity: 6,
        });
    }
    let icm = Icm::new(&layouts);
    for l in &layouts {
        icm.alloc(l.kind, 1u64 << l.log_size, l.log_size)
            .map_err(|e| format!("allocating {:?} ICM: {e}", l.kind))?;
    }
    Ok(icm)
}

/// Applies every write in order.
pub fn replay(rec: &Recording, icm: &Icm) -> Result<(), String> {
    for (i, w) in rec.writes.iter().enumerate() {
        if w.addr % LINE as u64 != 0 {
            return Err(format!("write {i} at {:#x} is not line aligned", w.addr));
        }
        icm.write(w.addr, &w.data)
            .map_err(|e| format!("write {i} at {:#x}: {e}", w.addr))?;
    }
    Ok(())
}

/// Compares every line of the image with the replayed ICM; returns the differences
/// (at most `max` of them, then a count).
pub fn image_differences(rec: &Recording, icm: &Icm, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0usize;
    let mut lines = 0usize;
    for run in &rec.image {
        if run.data.len() % LINE != 0 || run.base % LINE as u64 != 0 {
            out.push(format!("image run at {:#x} is not whole lines", run.base));
            continue;
        }
        for (i, want) in run.data.chunks_exact(LINE).enumerate() {
            lines += 1;
            let addr = run.base + (i * LINE) as u64;
            let got = icm.read_line(addr);
            let ok = matches!(&got, Ok(line) if line[..] == *want);
            if !ok {
                total += 1;
                if out.len() < max {
                    out.push(match got {
                        Ok(line) => format!(
                            "line {addr:#x}: replayed {} expected {}",
                            hex::encode(line),
                            hex::encode(want)
                        ),
                        Err(e) => format!("line {addr:#x}: {e}"),
                    });
                }
            }
        }
    }
    if lines == 0 {
        out.push("the image is empty".to_string());
    }
    if total > out.len() {
        out.push(format!("... {total} lines differ in all"));
    }
    out
}
