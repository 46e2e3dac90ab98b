//! Executing one decoded RDMA WQE against ICM and registered host memory.
//!
//! Every check comes before the first byte moves: the remote address is an offset into
//! the zero-based registration of the rkey's ICM allocation ([`Icm::resolve_cached`])
//! and the whole target must lie inside it, and every pointer segment must resolve
//! inside its registration. A WQE that fails therefore leaves ICM and host memory
//! untouched (only a concurrent free or deregistration between check and copy can cut a
//! copy short; it still fails with the matching syndrome).
//!
//! The queue resolves keys through caches it keeps across doorbells
//! ([`RkeyCache`](crate::icm::RkeyCache), [`LkeyCache`]), so a WQE whose keys were seen before takes no registry lock and
//! clones no buffer handle.

use ste_builder::wqe::{DataChunk, DataChunks, DataSeg, RdmaOp, Syndrome, WqeError};

use crate::host_mem::{CachedSpan, HostMemory, LkeyCache, MemoryRegistry};
use crate::icm::{Icm, IcmError, IcmPlace};

/// The syndrome hardware reports for a WQE that does not decode.
pub(crate) fn syndrome_of(err: &WqeError) -> Syndrome {
    match err {
        // Lengths that do not add up.
        WqeError::InlineOverflow { .. }
        | WqeError::MessageTooLong { .. }
        | WqeError::BadSegmentLength { .. } => Syndrome::LocalLength,
        // Structure: DS count, truncation, and what only an encoder can get wrong.
        WqeError::Truncated { .. }
        | WqeError::BufferTooSmall { .. }
        | WqeError::DsZero
        | WqeError::DsTooSmall { .. }
        | WqeError::TooLarge { .. }
        | WqeError::QpnTooLarge(_)
        | WqeError::InlineRead => Syndrome::LocalQpOp,
    }
}

/// Host memory as the queue sees it: the registry, the queue's cache of it, and scratch
/// space for a WQE's resolved segments (kept so that no WQE allocates).
pub(crate) struct Local<'a> {
    pub mrs: &'a MemoryRegistry,
    pub lkeys: &'a mut LkeyCache,
    pub spans: &'a mut Vec<CachedSpan>,
}

/// Runs an RDMA WRITE (gather from host memory or inline bytes into ICM at the remote
/// address) or READ (ICM into the scatter buffers). `target` is the remote span the
/// queue resolved for the whole message (`data.total_len()` bytes, at least one).
/// Returns the bytes moved.
pub(crate) fn rdma(
    op: RdmaOp,
    target: Result<IcmPlace, IcmError>,
    data: DataChunks<'_>,
    icm: &Icm,
    local: Local<'_>,
) -> Result<u32, Syndrome> {
    let total = data.total_len();
    // A zero-length operation touches no remote memory, so there is nothing to check;
    // its (empty) segments then go through the checked accessors at address 0.
    let place = if total > 0 {
        Some(target.map_err(|_| Syndrome::RemoteAccess)?)
    } else {
        None
    };
    local.lkeys.refresh(local.mrs);
    local.spans.clear();
    let mut chunks = 0usize;
    for chunk in data {
        chunks += 1;
        match chunk {
            DataChunk::Pointer(seg) => local.spans.push(
                local
                    .mrs
                    .lookup_cached(local.lkeys, seg.lkey, seg.addr, seg.len())
                    .map_err(|_| Syndrome::LocalProtection)?,
            ),
            // READ data lands in local memory; there is nowhere inline for it to go.
            DataChunk::Inline(_) if op == RdmaOp::Read => return Err(Syndrome::LocalQpOp),
            DataChunk::Inline(_) => {}
        }
    }
    let lkeys = &*local.lkeys;
    if let (Some(place), true) = (place, chunks == local.spans.len()) {
        // Only pointer segments (what drivers post): move them from the resolved spans
        // without parsing the segments a second time.
        let mut at = 0u64;
        for span in local.spans.iter() {
            let len = span.len as u64;
            let dest = place.sub(at, len).ok_or(Syndrome::RemoteAccess)?;
            let mem = lkeys.memory(span).ok_or(Syndrome::LocalProtection)?;
            move_span(op, icm, dest, mem, span)?;
            at += len;
        }
        return Ok(total as u32);
    }
    let mut at = 0u64;
    let mut resolved = local.spans.iter();
    for chunk in data {
        let len = chunk.len();
        let dest = place.map(|p| p.sub(at, len).ok_or(Syndrome::RemoteAccess));
        let moved = match chunk {
            DataChunk::Inline(bytes) => match dest {
                Some(dest) => icm.write_at(dest?, bytes),
                None => icm.write(at, bytes),
            }
            .map_err(|_| Syndrome::RemoteAccess),
            DataChunk::Pointer(_) => {
                let span = resolved.next().ok_or(Syndrome::LocalProtection)?;
                let mem = lkeys.memory(span).ok_or(Syndrome::LocalProtection)?;
                match dest {
                    Some(dest) => move_span(op, icm, dest?, mem, span),
                    // Zero bytes: only the checks of the plain accessors remain.
                    None => match op {
                        RdmaOp::Write => icm.write(at, &[]),
                        RdmaOp::Read => icm.read(at, &mut []),
                    }
                    .map_err(|_| Syndrome::RemoteAccess),
                }
            }
        };
        moved?;
        at += len;
    }
    // Decoding bounds a message to 2^31 bytes.
    Ok(total as u32)
}

/// [`rdma`] for a WQE with one pointer segment `seg` and nothing else: the same checks
/// in the same order, without the segment walk or the span list.
#[inline]
pub(crate) fn rdma_pointer(
    op: RdmaOp,
    target: Result<IcmPlace, IcmError>,
    seg: DataSeg,
    icm: &Icm,
    local: Local<'_>,
) -> Result<u32, Syndrome> {
    // A pointer segment moves at least one byte, so the target is always checked.
    let place = target.map_err(|_| Syndrome::RemoteAccess)?;
    local.lkeys.refresh(local.mrs);
    let span = local
        .mrs
        .lookup_cached(local.lkeys, seg.lkey, seg.addr, seg.len())
        .map_err(|_| Syndrome::LocalProtection)?;
    let mem = local.lkeys.memory(&span).ok_or(Syndrome::LocalProtection)?;
    move_span(op, icm, place, mem, &span)?;
    // At most 2^31 bytes.
    Ok(seg.len() as u32)
}

/// Moves one resolved pointer segment: host memory into ICM for a WRITE, ICM into host
/// memory for a READ.
#[inline(always)]
fn move_span(
    op: RdmaOp,
    icm: &Icm,
    dest: IcmPlace,
    mem: &HostMemory,
    span: &CachedSpan,
) -> Result<(), Syndrome> {
    let range = span.offset..span.offset + span.len;
    match op {
        RdmaOp::Write => {
            let host = mem.lock_read();
            let src = host.get(range).ok_or(Syndrome::LocalProtection)?;
            icm.write_at(dest, src).map_err(|_| Syndrome::RemoteAccess)
        }
        RdmaOp::Read => {
            let mut host = mem.lock_write();
            let dst = host.get_mut(range).ok_or(Syndrome::LocalProtection)?;
            icm.read_at(dest, dst).map_err(|_| Syndrome::RemoteAccess)
        }
    }
}
