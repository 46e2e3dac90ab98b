//! Executing one decoded RDMA WQE against ICM and registered host memory.
//!
//! Every check comes before the first byte moves: the remote address is an offset into
//! the zero-based registration of the rkey's ICM allocation ([`Icm::resolve`]) and the
//! whole target must lie inside it, and every pointer segment must resolve inside its
//! registration. A WQE that fails therefore leaves ICM and host memory untouched (only
//! a concurrent free or deregistration between check and copy can cut a copy short; it
//! still fails with the matching syndrome).

use ste_builder::wqe::{DataChunk, DataChunks, RaddrSeg, RdmaOp, Syndrome, WqeError};

use crate::host_mem::{MemoryRegistry, MrSpan};
use crate::icm::Icm;

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

/// Runs an RDMA WRITE (gather from host memory or inline bytes into ICM at the remote
/// address) or READ (ICM into the scatter buffers). `spans` is scratch space kept by the
/// caller so that no WQE allocates. Returns the bytes moved.
pub(crate) fn rdma(
    op: RdmaOp,
    remote: RaddrSeg,
    data: DataChunks<'_>,
    icm: &Icm,
    mrs: &MemoryRegistry,
    spans: &mut Vec<MrSpan>,
) -> Result<u32, Syndrome> {
    let total = data.total_len();
    // A zero-length operation touches no remote memory, so there is nothing to check.
    let base = if total > 0 {
        icm.resolve(remote.rkey, remote.raddr, total)
            .map_err(|_| Syndrome::RemoteAccess)?
    } else {
        0
    };
    spans.clear();
    for chunk in data {
        match chunk {
            DataChunk::Pointer(seg) => spans.push(
                mrs.lookup(seg.lkey, seg.addr, seg.len())
                    .map_err(|_| Syndrome::LocalProtection)?,
            ),
            // READ data lands in local memory; there is nowhere inline for it to go.
            DataChunk::Inline(_) if op == RdmaOp::Read => return Err(Syndrome::LocalQpOp),
            DataChunk::Inline(_) => {}
        }
    }
    let mut at = base;
    let mut resolved = spans.iter();
    for chunk in data {
        let moved = match chunk {
            DataChunk::Inline(bytes) => icm.write(at, bytes).map_err(|_| Syndrome::RemoteAccess),
            DataChunk::Pointer(_) => {
                let span = resolved.next().ok_or(Syndrome::LocalProtection)?;
                let range = span.offset..span.offset + span.len;
                match op {
                    RdmaOp::Write => {
                        let host = span.mem.lock_read();
                        let src = host.get(range).ok_or(Syndrome::LocalProtection)?;
                        icm.write(at, src).map_err(|_| Syndrome::RemoteAccess)
                    }
                    RdmaOp::Read => {
                        let mut host = span.mem.lock_write();
                        let dst = host.get_mut(range).ok_or(Syndrome::LocalProtection)?;
                        icm.read(at, dst).map_err(|_| Syndrome::RemoteAccess)
                    }
                }
            }
        };
        moved?;
        at += chunk.len();
    }
    // Do not keep buffers alive past the WQE.
    spans.clear();
    // Decoding bounds a message to 2^31 bytes.
    Ok(total as u32)
}
