//! Replaying a recording through a simulated device, the way rdma-core wrote it: SW-ICM
//! allocated from the device in rdma-core's pool sizes, every write posted as an RDMA
//! WRITE on a steering queue (inline or from a registered staging buffer), and the
//! result read back both directly and with RDMA READs.

use super::driver::{DriverError, RingSizes, SendRing};
use super::schema::{Recording, WriteKind};
use sim::icm::{IcmAlloc, IcmKind, LINE};
use sim::profile::{DeviceModel, Profile};
use sim::Device;
use std::collections::BTreeMap;

fn icm_kind(k: WriteKind) -> IcmKind {
    match k {
        WriteKind::Ste => IcmKind::Steering,
        WriteKind::Action => IcmKind::ModifyAction,
        WriteKind::Pattern => IcmKind::ModifyPattern,
    }
}

/// The device model of a steering format version.
fn model(version: u8) -> Result<DeviceModel, String> {
    [
        DeviceModel::ConnectX5,
        DeviceModel::ConnectX6Dx,
        DeviceModel::ConnectX7,
    ]
    .into_iter()
    .find(|m| m.steering_format_version() == version)
    .ok_or_else(|| format!("no device model has steering format version {version}"))
}

/// The lowest and highest (exclusive) address the recording touches in each kind.
fn spans(rec: &Recording) -> BTreeMap<IcmKind, (u64, u64)> {
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
    spans
}

/// Where a kind's ICM range starts: the profile's default when it holds `[lo, hi)`,
/// else the `2^log`-aligned base below `lo` (the recordings do not state the start).
fn range_start(default: u64, log: u8, (lo, hi): (u64, u64)) -> Result<u64, String> {
    let size = 1u64 << log;
    if lo >= default && hi <= default + size {
        return Ok(default);
    }
    let base = lo & !(size - 1);
    if hi > base + size {
        return Err(format!(
            "addresses {lo:#x}..{hi:#x} do not fit one 2^{log}-byte ICM range"
        ));
    }
    Ok(base)
}

/// The device profile the recording was made on: its STE format and steering ICM size
/// from `fake_device`, and ICM ranges placed over the recorded addresses.
pub fn profile_for(rec: &Recording) -> Result<Profile, String> {
    let mut p = Profile::new(model(rec.steering_format_version)?);
    if let Some(log) = rec.log_icm_size {
        p.log_steering_sw_icm_size = log;
    }
    for (kind, span) in spans(rec) {
        match kind {
            IcmKind::Steering => {
                p.steering_sw_icm_start =
                    range_start(p.steering_sw_icm_start, p.log_steering_sw_icm_size, span)?
            }
            IcmKind::ModifyAction => {
                p.header_modify_sw_icm_start = range_start(
                    p.header_modify_sw_icm_start,
                    p.log_header_modify_sw_icm_size,
                    span,
                )?
            }
            IcmKind::ModifyPattern => {
                if p.log_header_modify_pattern_sw_icm_size == 0 {
                    return Err("pattern writes on a device without pattern ICM".into());
                }
                p.header_modify_pattern_sw_icm_start = range_start(
                    p.header_modify_pattern_sw_icm_start,
                    p.log_header_modify_pattern_sw_icm_size,
                    span,
                )?
            }
            IcmKind::Encap => return Err("the recordings have no encap ICM".into()),
        }
    }
    Ok(p)
}

/// A recording replayed into a device.
pub struct Replayed {
    /// The device.
    pub device: Device,
    /// The SW-ICM pools allocated, in allocation order.
    pub pools: Vec<IcmAlloc>,
    /// The queue the writes went through.
    pub ring: SendRing,
}

impl Replayed {
    /// The pool holding `[addr, addr + len)`.
    fn pool(&self, addr: u64, len: u64) -> Option<&IcmAlloc> {
        self.pools
            .iter()
            .find(|p| addr >= p.addr && addr + len <= p.addr + p.size)
    }
}

/// Allocates pools of `kind` until `[lo, hi)` is covered. Each pool has the size
/// rdma-core's ICM pool gives its device memory (its largest chunk: `2^max_log` STEs
/// for steering), aligned to that size as rdma-core asks for steering pools; on a fresh
/// device they are laid out from the range's start.
fn alloc_pools(
    dev: &Device,
    kind: IcmKind,
    (lo, hi): (u64, u64),
    max_log: u8,
) -> Result<Vec<IcmAlloc>, String> {
    let layout = dev
        .icm()
        .layouts()
        .find(|l| l.kind == kind)
        .ok_or_else(|| format!("the device has no {kind:?} ICM"))?;
    let log = (u32::from(max_log) + LINE.trailing_zeros()).min(u32::from(layout.log_size)) as u8;
    let mut pools: Vec<IcmAlloc> = Vec::new();
    while pools.last().map_or(layout.base, |p| p.addr + p.size) < hi {
        let p = dev
            .alloc_icm(kind, 1u64 << log, log)
            .map_err(|e| format!("allocating {kind:?} ICM: {e}"))?;
        pools.push(p);
    }
    if pools.first().is_some_and(|p| p.addr > lo) {
        return Err(format!(
            "{kind:?} pools start at {:#x}, above the recorded {lo:#x}",
            pools[0].addr
        ));
    }
    Ok(pools)
}

/// A device like the recording's, with its ICM pools allocated and a steering queue.
pub fn device_for(rec: &Recording) -> Result<Replayed, String> {
    let profile = profile_for(rec)?;
    let max_log = rec
        .max_log_sw_icm_sz
        .unwrap_or_else(|| profile.dr_max_log_sw_icm_sz());
    let device = Device::new(profile).map_err(|e| e.to_string())?;
    let mut pools = Vec::new();
    for (kind, span) in spans(rec) {
        pools.extend(alloc_pools(&device, kind, span, max_log)?);
    }
    let ring = SendRing::new(&device, RingSizes::default()).map_err(|e| e.to_string())?;
    Ok(Replayed {
        device,
        pools,
        ring,
    })
}

/// Posts every write in order as an RDMA WRITE, then waits for all of them.
pub fn replay(rec: &Recording, r: &mut Replayed) -> Result<(), String> {
    for (i, w) in rec.writes.iter().enumerate() {
        if w.addr % LINE as u64 != 0 {
            return Err(format!("write {i} at {:#x} is not line aligned", w.addr));
        }
        let pool = *r
            .pool(w.addr, w.data.len() as u64)
            .ok_or_else(|| format!("write {i} at {:#x} lies in no ICM pool", w.addr))?;
        r.ring
            .write(&r.device, &pool, w.addr, &w.data)
            .map_err(|e| format!("write {i} at {:#x}: {e}", w.addr))?;
    }
    r.ring
        .flush(&r.device)
        .map_err(|e| format!("completing the writes: {e}"))?;
    let s = r.ring.stats();
    if s.inline_writes + s.pointer_writes != rec.writes.len() as u64 {
        return Err(format!(
            "{} writes posted for {} recorded",
            s.inline_writes + s.pointer_writes,
            rec.writes.len()
        ));
    }
    Ok(())
}

/// Compares every line of the image with the device's ICM; returns the differences
/// (at most `max` of them, then a count).
pub fn image_differences(rec: &Recording, r: &Replayed, max: usize) -> Vec<String> {
    let icm = r.device.icm();
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

/// Lines read back with single-line READs.
const SAMPLE_LINES: usize = 128;
/// Bytes read back with one multi-line READ from the start of the first image run.
const BLOCK_READ: usize = 4096;

/// Reads a sample of image lines back through the queue with RDMA READs (one per line,
/// plus one READ of a whole block) and compares them with the image. Returns the
/// differences, at most `max`.
pub fn read_back_differences(rec: &Recording, r: &mut Replayed, max: usize) -> Vec<String> {
    let lines: Vec<(u64, &[u8])> = rec
        .image
        .iter()
        .flat_map(|run| {
            run.data
                .chunks_exact(LINE)
                .enumerate()
                .map(move |(i, l)| (run.base + (i * LINE) as u64, l))
        })
        .collect();
    if lines.is_empty() {
        return vec!["the image is empty".into()];
    }
    let step = lines.len().div_ceil(SAMPLE_LINES);
    let sample: Vec<(u64, &[u8])> = lines.iter().copied().step_by(step).collect();
    let block = rec
        .image
        .first()
        .map(|run| (run.base, &run.data[..run.data.len().min(BLOCK_READ)]));

    let mut out = Vec::new();
    r.ring.reset_read_back();
    let mut posted = Vec::new();
    let reads = sample.iter().copied().chain(block);
    for (addr, want) in reads {
        let Some(&pool) = r.pool(addr, want.len() as u64) else {
            out.push(format!("image bytes at {addr:#x} lie in no ICM pool"));
            continue;
        };
        match r.ring.read(&r.device, &pool, addr, want.len()) {
            Ok(at) => posted.push((addr, want, at)),
            Err(e) => return vec![format!("posting a READ at {addr:#x}: {e}")],
        }
    }
    if let Err(e) = r.ring.flush(&r.device) {
        let what = match e {
            DriverError::Cqe(_) => "a READ failed",
            _ => "completing the READs",
        };
        return vec![format!("{what}: {e}")];
    }
    for (addr, want, at) in posted {
        let got = r.ring.read_back(at, want.len());
        if got != want {
            let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
            if out.len() < max {
                out.push(format!(
                    "READ of {} bytes at {addr:#x} differs from the image at byte {first}",
                    want.len()
                ));
            }
        }
    }
    out
}
