//! The WQE and CQE layouts of an mlx5 send queue and completion queue, as steering uses them.
//!
//! A send queue is a ring of 64-byte basic blocks (BBs). A WQE starts on a BB boundary with
//! a control segment and is `ds` 16-byte units long, so it covers `ceil(ds / 4)` BBs; a WQE
//! may run past the ring's last BB and go on at its first, so a consumer reads BBs in
//! counter order. Steering posts RDMA WRITE and RDMA READ WQEs aimed at ICM:
//!
//! ```text
//! ctrl (16) | raddr (16) | data (16) | data (16) ...          data by lkey (pointer segments)
//! ctrl (16) | raddr (16) | be32 len|INLINE, bytes..., pad      inline data, padded to 16
//! ```
//!
//! A completion queue is a ring of 64-byte CQEs written by the device; the consumer knows
//! a slot holds a new CQE from its owner bit ([`cqe_is_sw_owned`]).
//!
//! Every multi-byte field is big-endian. This module is layouts only: encoders for what a
//! driver posts, decoders for what a device (the simulator) consumes, and the reverse for
//! CQEs. Each decoder checks lengths and structure and returns a typed error; none panics
//! on any input.

use bitflags::bitflags;

/// A send-queue basic block: the unit WQEs are placed and counted in.
pub const BB_SIZE: usize = 64;
/// `log2(BB_SIZE)`.
pub const BB_SHIFT: u32 = 6;
/// The unit of the control segment's DS count.
pub const DS_UNIT: usize = 16;
/// The DS count is a 6-bit field.
pub const MAX_DS: u8 = 0x3f;
/// The largest WQE the DS count can describe, in bytes.
pub const MAX_WQE_SIZE: usize = MAX_DS as usize * DS_UNIT;
/// Size of the control segment.
pub const CTRL_SEG_SIZE: usize = 16;
/// Size of the remote-address segment.
pub const RADDR_SEG_SIZE: usize = 16;
/// Size of a pointer data segment.
pub const DATA_SEG_SIZE: usize = 16;
/// Size of the inline segment's header (its byte count word).
pub const INLINE_HEADER_SIZE: usize = 4;
/// Set in a data segment's byte count when the data follows inline.
pub const INLINE_FLAG: u32 = 0x8000_0000;
/// The longest message a WQE may move: a pointer segment's byte count is 31 bits, and
/// the value 0 stands for this length.
pub const MAX_MESSAGE_LEN: u64 = 1 << 31;
/// The lkey mlx5 reserves as "no key" (it ends scatter lists; never a registration).
pub const INVALID_LKEY: u32 = 0x100;
/// QP numbers are 24 bits.
pub const MAX_QPN: u32 = 0x00ff_ffff;

/// Why a WQE could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WqeError {
    /// The bytes end before the segment or the DS count says.
    #[error("WQE truncated: {need} bytes needed, {have} given")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The output buffer is too small for the WQE.
    #[error("WQE needs {need} bytes, the buffer has {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// DS count 0: a WQE has at least its control segment.
    #[error("WQE DS count is 0")]
    DsZero,
    /// The DS count is too small for the segments the opcode requires.
    #[error("DS count {ds} is too small for opcode {opcode:#04x} (needs at least {min})")]
    DsTooSmall {
        /// The opcode byte.
        opcode: u8,
        /// The DS count.
        ds: u8,
        /// The least DS count the opcode needs.
        min: u8,
    },
    /// The WQE would need more than [`MAX_DS`] 16-byte units.
    #[error("WQE of {size} bytes exceeds the DS limit of {MAX_WQE_SIZE} bytes")]
    TooLarge {
        /// Bytes the WQE would take.
        size: usize,
    },
    /// An inline segment's data runs past the end of the WQE.
    #[error("inline segment of {len} bytes does not fit in the {room} bytes left in the WQE")]
    InlineOverflow {
        /// The inline byte count.
        len: u32,
        /// Bytes left in the WQE after the inline header.
        room: usize,
    },
    /// The data segments add up to more than [`MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds {MAX_MESSAGE_LEN}")]
    MessageTooLong {
        /// Total length.
        len: u64,
    },
    /// A pointer segment to encode has length 0 (the wire reads 0 as 2^31 bytes) or does
    /// not fit the 31-bit byte count.
    #[error("data segment length {len} is not in 1..2^31")]
    BadSegmentLength {
        /// The length asked for.
        len: u64,
    },
    /// A QP number above 24 bits.
    #[error("QP number {0:#x} does not fit 24 bits")]
    QpnTooLarge(u32),
    /// RDMA READ scatters into local memory, so its data cannot be inline.
    #[error("an RDMA READ cannot carry inline data")]
    InlineRead,
}

// Big-endian readers over slices whose length the caller has already checked.
#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

#[inline]
fn need(b: &[u8], n: usize) -> Result<(), WqeError> {
    if b.len() < n {
        return Err(WqeError::Truncated {
            need: n,
            have: b.len(),
        });
    }
    Ok(())
}

fn room(b: &[u8], n: usize) -> Result<(), WqeError> {
    if b.len() < n {
        return Err(WqeError::BufferTooSmall {
            need: n,
            have: b.len(),
        });
    }
    Ok(())
}

/// A send WQE opcode (the low byte of the control segment's first word).
///
/// Invariant: `Unknown` never holds the byte of a named opcode; build values with
/// [`Opcode::from_byte`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// `MLX5_OPCODE_NOP` (0x00): consumes its BBs and does nothing else.
    Nop,
    /// `MLX5_OPCODE_RDMA_WRITE` (0x08): local data to remote memory.
    RdmaWrite,
    /// `MLX5_OPCODE_RDMA_READ` (0x10): remote memory to local buffers.
    RdmaRead,
    /// Any other opcode byte (steering's queue executes none of them).
    Unknown(u8),
}

impl Opcode {
    /// The opcode for a byte.
    #[inline]
    pub const fn from_byte(b: u8) -> Opcode {
        match b {
            0x00 => Opcode::Nop,
            0x08 => Opcode::RdmaWrite,
            0x10 => Opcode::RdmaRead,
            other => Opcode::Unknown(other),
        }
    }

    /// The opcode's byte.
    pub const fn byte(self) -> u8 {
        match self {
            Opcode::Nop => 0x00,
            Opcode::RdmaWrite => 0x08,
            Opcode::RdmaRead => 0x10,
            Opcode::Unknown(b) => b,
        }
    }
}

bitflags! {
    /// The control segment's `fm_ce_se` byte: fence mode (bits 7..5), completion mode
    /// (bits 3..2) and solicited event (bit 1). Unnamed bits are kept as given.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct CtrlFlags: u8 {
        /// Solicited event (`MLX5_WQE_CTRL_SOLICITED`).
        const SOLICITED = 1 << 1;
        /// Write a CQE when this WQE completes (`MLX5_WQE_CTRL_CQ_UPDATE`, completion
        /// mode 2). Without it a CQE is written only on error.
        const CQ_UPDATE = 2 << 2;
        /// Initiator small fence (`MLX5_WQE_CTRL_INITIATOR_SMALL_FENCE`, fence mode 1).
        const INITIATOR_SMALL_FENCE = 1 << 5;
        /// Fence: wait for earlier WQEs (`MLX5_WQE_CTRL_FENCE`, fence mode 4).
        const FENCE = 4 << 5;
        // Every other bit round-trips unchanged.
        const _ = !0;
    }
}

impl CtrlFlags {
    /// The 3-bit fence mode.
    pub const fn fence_mode(self) -> u8 {
        self.bits() >> 5
    }

    /// The 2-bit completion mode.
    pub const fn completion_mode(self) -> u8 {
        (self.bits() >> 2) & 3
    }
}

/// The control segment that starts every WQE.
///
/// Wire layout (16 bytes): opmod (1), WQE index (be16), opcode (1); QPN (be24), DS (low 6
/// bits of 1); signature (1), stream/channel id (be16), `fm_ce_se` (1); immediate (be32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtrlSeg {
    /// The operation.
    pub opcode: Opcode,
    /// Opcode modifier (0 for NOP / WRITE / READ).
    pub opmod: u8,
    /// The WQE's position: the send queue's BB counter (mod 2^16) at its first BB. The
    /// device reports it back as the CQE's WQE counter.
    pub wqe_index: u16,
    /// The QP (24 bits).
    pub qpn: u32,
    /// WQE size in 16-byte units, this segment included (6 bits).
    pub ds: u8,
    /// WQE signature byte (unused by steering; 0).
    pub signature: u8,
    /// DCI stream channel id (unused by steering; 0).
    pub stream_id: u16,
    /// Fence, completion and solicited-event flags.
    pub flags: CtrlFlags,
    /// Immediate data / invalidation key, as the 4 bytes appear on the wire read
    /// big-endian.
    pub imm: u32,
}

impl CtrlSeg {
    /// A control segment with no signature, stream id or immediate.
    pub const fn new(
        opcode: Opcode,
        wqe_index: u16,
        qpn: u32,
        ds: u8,
        flags: CtrlFlags,
    ) -> CtrlSeg {
        CtrlSeg {
            opcode,
            opmod: 0,
            wqe_index,
            qpn,
            ds,
            signature: 0,
            stream_id: 0,
            flags,
            imm: 0,
        }
    }

    /// Reads a control segment from the first 16 bytes of `b`. The two reserved bits above
    /// the DS count are ignored, as hardware does.
    #[inline]
    pub fn decode(b: &[u8]) -> Result<CtrlSeg, WqeError> {
        need(b, CTRL_SEG_SIZE)?;
        Ok(CtrlSeg {
            opmod: b[0],
            wqe_index: be16(b, 1),
            opcode: Opcode::from_byte(b[3]),
            qpn: be32(b, 4) >> 8,
            ds: b[7] & MAX_DS,
            signature: b[8],
            stream_id: be16(b, 9),
            flags: CtrlFlags::from_bits_retain(b[11]),
            imm: be32(b, 12),
        })
    }

    /// Writes the segment into the first 16 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WqeError> {
        room(out, CTRL_SEG_SIZE)?;
        if self.qpn > MAX_QPN {
            return Err(WqeError::QpnTooLarge(self.qpn));
        }
        if self.ds > MAX_DS {
            return Err(WqeError::TooLarge {
                size: self.ds as usize * DS_UNIT,
            });
        }
        out[0] = self.opmod;
        out[1..3].copy_from_slice(&self.wqe_index.to_be_bytes());
        out[3] = self.opcode.byte();
        out[4..8].copy_from_slice(&((self.qpn << 8) | self.ds as u32).to_be_bytes());
        out[8] = self.signature;
        out[9..11].copy_from_slice(&self.stream_id.to_be_bytes());
        out[11] = self.flags.bits();
        out[12..16].copy_from_slice(&self.imm.to_be_bytes());
        Ok(())
    }

    /// The WQE's size in bytes (`ds * 16`).
    pub const fn size(&self) -> usize {
        self.ds as usize * DS_UNIT
    }

    /// How many BBs the WQE occupies (at least one: even a malformed DS of 0 takes the
    /// BB its control segment sits in).
    pub const fn bbs(&self) -> usize {
        let n = self.size().div_ceil(BB_SIZE);
        if n == 0 {
            1
        } else {
            n
        }
    }
}

/// The remote-address segment of an RDMA WQE: where in remote memory (here ICM), under
/// which rkey. Wire layout (16 bytes): address (be64), rkey (be32), reserved (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RaddrSeg {
    /// Remote (ICM) address.
    pub raddr: u64,
    /// Remote key.
    pub rkey: u32,
}

impl RaddrSeg {
    /// Reads the segment from the first 16 bytes of `b` (the reserved word is ignored).
    #[inline]
    pub fn decode(b: &[u8]) -> Result<RaddrSeg, WqeError> {
        need(b, RADDR_SEG_SIZE)?;
        Ok(RaddrSeg {
            raddr: be64(b, 0),
            rkey: be32(b, 8),
        })
    }

    /// Writes the segment (reserved word zero) into the first 16 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WqeError> {
        room(out, RADDR_SEG_SIZE)?;
        out[0..8].copy_from_slice(&self.raddr.to_be_bytes());
        out[8..12].copy_from_slice(&self.rkey.to_be_bytes());
        out[12..16].fill(0);
        Ok(())
    }
}

/// A pointer data segment: `byte_count` bytes of local memory at `addr` under `lkey`.
/// Wire layout (16 bytes): byte count (be32, bit 31 clear), lkey (be32), address (be64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataSeg {
    /// The raw 31-bit byte count; 0 means 2^31 (see [`DataSeg::len`]).
    pub byte_count: u32,
    /// Local key of the registration holding the buffer.
    pub lkey: u32,
    /// Address of the buffer in the registration's IO virtual address space.
    pub addr: u64,
}

impl DataSeg {
    /// A segment for `len` bytes at `addr` under `lkey`; `len` must be in `1..2^31`.
    pub fn new(lkey: u32, addr: u64, len: u64) -> Result<DataSeg, WqeError> {
        if len == 0 || len >= MAX_MESSAGE_LEN {
            return Err(WqeError::BadSegmentLength { len });
        }
        Ok(DataSeg {
            byte_count: len as u32,
            lkey,
            addr,
        })
    }

    /// Bytes the segment covers. A byte count of 0 stands for 2^31 bytes, which is why
    /// drivers never post zero-length segments.
    #[inline]
    pub const fn len(&self) -> u64 {
        if self.byte_count == 0 {
            MAX_MESSAGE_LEN
        } else {
            self.byte_count as u64
        }
    }

    /// Never true: a segment covers at least one byte (see [`DataSeg::len`]).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Reads a pointer segment from the first 16 bytes of `b`. The caller has already
    /// seen that the inline flag is clear; here it is masked off.
    #[inline]
    pub fn decode(b: &[u8]) -> Result<DataSeg, WqeError> {
        need(b, DATA_SEG_SIZE)?;
        Ok(DataSeg {
            byte_count: be32(b, 0) & !INLINE_FLAG,
            lkey: be32(b, 4),
            addr: be64(b, 8),
        })
    }

    /// Writes the segment into the first 16 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), WqeError> {
        room(out, DATA_SEG_SIZE)?;
        if self.byte_count & INLINE_FLAG != 0 {
            return Err(WqeError::BadSegmentLength {
                len: self.byte_count as u64,
            });
        }
        out[0..4].copy_from_slice(&self.byte_count.to_be_bytes());
        out[4..8].copy_from_slice(&self.lkey.to_be_bytes());
        out[8..16].copy_from_slice(&self.addr.to_be_bytes());
        Ok(())
    }
}

/// Bytes an inline segment carrying `len` bytes takes: header plus data, padded to 16.
pub const fn inline_seg_size(len: usize) -> usize {
    (INLINE_HEADER_SIZE + len).div_ceil(DS_UNIT) * DS_UNIT
}

/// Writes an inline segment carrying `data` at the start of `out`; returns its size.
pub fn encode_inline(data: &[u8], out: &mut [u8]) -> Result<usize, WqeError> {
    let size = inline_seg_size(data.len());
    room(out, size)?;
    if data.len() as u64 >= MAX_MESSAGE_LEN {
        return Err(WqeError::MessageTooLong {
            len: data.len() as u64,
        });
    }
    out[0..4].copy_from_slice(&(data.len() as u32 | INLINE_FLAG).to_be_bytes());
    out[4..4 + data.len()].copy_from_slice(data);
    out[4 + data.len()..size].fill(0);
    Ok(size)
}

/// The data an RDMA WQE to be encoded carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Pointer segments, by lkey (the gather list of a WRITE, the scatter list of a READ).
    Segments(&'a [DataSeg]),
    /// Bytes carried in the WQE itself (WRITE only).
    Inline(&'a [u8]),
}

/// The two RDMA operations steering posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RdmaOp {
    /// RDMA WRITE: local data to ICM.
    Write,
    /// RDMA READ: ICM to local buffers.
    Read,
}

impl RdmaOp {
    /// The WQE opcode.
    pub const fn opcode(self) -> Opcode {
        match self {
            RdmaOp::Write => Opcode::RdmaWrite,
            RdmaOp::Read => Opcode::RdmaRead,
        }
    }
}

/// An RDMA WRITE or READ WQE as a driver builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdmaWqe<'a> {
    /// WRITE or READ.
    pub op: RdmaOp,
    /// The send queue's BB counter (mod 2^16) where the WQE starts.
    pub wqe_index: u16,
    /// The QP number.
    pub qpn: u32,
    /// Completion and fence flags; `CQ_UPDATE` asks for a CQE.
    pub flags: CtrlFlags,
    /// Target address and rkey.
    pub remote: RaddrSeg,
    /// The data.
    pub payload: Payload<'a>,
}

impl RdmaWqe<'_> {
    /// The WQE's size in bytes (a multiple of 16), or why it cannot be encoded.
    pub fn size(&self) -> Result<usize, WqeError> {
        let data = match self.payload {
            Payload::Segments(segs) => segs.len().saturating_mul(DATA_SEG_SIZE),
            Payload::Inline(_) if self.op == RdmaOp::Read => return Err(WqeError::InlineRead),
            Payload::Inline(bytes) => inline_seg_size(bytes.len()),
        };
        let size = (CTRL_SEG_SIZE + RADDR_SEG_SIZE).saturating_add(data);
        if size > MAX_WQE_SIZE {
            return Err(WqeError::TooLarge { size });
        }
        Ok(size)
    }

    /// How many BBs the WQE takes: what the driver adds to its producer counter.
    pub fn bbs(&self) -> Result<usize, WqeError> {
        Ok(self.size()?.div_ceil(BB_SIZE))
    }

    /// Writes the WQE at the start of `out` and returns its size in bytes. `out` is
    /// contiguous; a driver whose ring wraps inside the WQE encodes into a scratch buffer
    /// and copies the two pieces. Bytes after the WQE are left alone.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WqeError> {
        let size = self.size()?;
        room(out, size)?;
        let ctrl = CtrlSeg::new(
            self.op.opcode(),
            self.wqe_index,
            self.qpn,
            (size / DS_UNIT) as u8,
            self.flags,
        );
        ctrl.encode(out)?;
        self.remote.encode(&mut out[CTRL_SEG_SIZE..])?;
        let mut at = CTRL_SEG_SIZE + RADDR_SEG_SIZE;
        match self.payload {
            Payload::Segments(segs) => {
                let mut total = 0u64;
                for seg in segs {
                    total += seg.len();
                    seg.encode(&mut out[at..])?;
                    at += DATA_SEG_SIZE;
                }
                if total > MAX_MESSAGE_LEN {
                    return Err(WqeError::MessageTooLong { len: total });
                }
            }
            Payload::Inline(bytes) => {
                encode_inline(bytes, &mut out[at..])?;
            }
        }
        Ok(size)
    }
}

/// Writes a NOP WQE of one BB (DS 1) at the start of `out`; returns its size.
pub fn encode_nop(
    wqe_index: u16,
    qpn: u32,
    flags: CtrlFlags,
    out: &mut [u8],
) -> Result<usize, WqeError> {
    CtrlSeg::new(Opcode::Nop, wqe_index, qpn, 1, flags).encode(out)?;
    Ok(CTRL_SEG_SIZE)
}

/// One piece of an RDMA WQE's data, as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChunk<'a> {
    /// A pointer segment.
    Pointer(DataSeg),
    /// Inline bytes.
    Inline(&'a [u8]),
}

impl DataChunk<'_> {
    /// Bytes this chunk moves.
    pub fn len(&self) -> u64 {
        match self {
            DataChunk::Pointer(seg) => seg.len(),
            DataChunk::Inline(bytes) => bytes.len() as u64,
        }
    }

    /// True for an empty inline chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The data segments of a decoded RDMA WQE, in order: any mix of pointer and inline
/// segments. Only [`decode_wqe`] builds one, after checking every segment fits, so
/// iterating cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunks<'a> {
    bytes: &'a [u8],
    total: u64,
}

impl<'a> DataChunks<'a> {
    /// Checks the segment area and sums its lengths.
    fn parse(bytes: &'a [u8]) -> Result<DataChunks<'a>, WqeError> {
        let mut total = 0u64;
        let mut rest = bytes;
        while let Some((chunk, tail)) = split_chunk(rest)? {
            total += chunk.len();
            rest = tail;
        }
        if total > MAX_MESSAGE_LEN {
            return Err(WqeError::MessageTooLong { len: total });
        }
        Ok(DataChunks { bytes, total })
    }

    /// Total bytes the WQE moves.
    pub const fn total_len(&self) -> u64 {
        self.total
    }

    /// True when there are no segments.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The first segment of `b` and what follows it; `None` at the end. `b` is a whole
/// number of 16-byte units (the caller sliced it by DS).
fn split_chunk(b: &[u8]) -> Result<Option<(DataChunk<'_>, &[u8])>, WqeError> {
    if b.is_empty() {
        return Ok(None);
    }
    need(b, DS_UNIT)?;
    let word = be32(b, 0);
    if word & INLINE_FLAG != 0 {
        let len = word & !INLINE_FLAG;
        let size = inline_seg_size(len as usize);
        if size > b.len() {
            return Err(WqeError::InlineOverflow {
                len,
                room: b.len() - INLINE_HEADER_SIZE,
            });
        }
        let data = &b[INLINE_HEADER_SIZE..INLINE_HEADER_SIZE + len as usize];
        Ok(Some((DataChunk::Inline(data), &b[size..])))
    } else {
        Ok(Some((
            DataChunk::Pointer(DataSeg::decode(b)?),
            &b[DATA_SEG_SIZE..],
        )))
    }
}

impl<'a> Iterator for DataChunks<'a> {
    type Item = DataChunk<'a>;

    fn next(&mut self) -> Option<DataChunk<'a>> {
        // `parse` has walked these bytes already, so the split cannot fail here.
        let (chunk, rest) = split_chunk(self.bytes).ok()??;
        self.bytes = rest;
        Some(chunk)
    }
}

/// What a decoded WQE asks for, past its control segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WqeBody<'a> {
    /// Nothing (the DS may cover padding, which is ignored).
    Nop,
    /// An RDMA WRITE or READ.
    Rdma {
        /// WRITE or READ.
        op: RdmaOp,
        /// Target address and rkey.
        remote: RaddrSeg,
        /// The data segments.
        data: DataChunks<'a>,
    },
    /// An opcode this layout does not describe; its segments are not parsed.
    Unknown,
}

/// A decoded WQE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wqe<'a> {
    /// The control segment.
    pub ctrl: CtrlSeg,
    /// The rest.
    pub body: WqeBody<'a>,
}

/// Decodes the WQE at the start of `b`, which must hold all `ds * 16` bytes of it
/// contiguously (a consumer copies a wrapped WQE out of its ring first). Bytes past the
/// WQE are ignored.
pub fn decode_wqe(b: &[u8]) -> Result<Wqe<'_>, WqeError> {
    let ctrl = CtrlSeg::decode(b)?;
    if ctrl.ds == 0 {
        return Err(WqeError::DsZero);
    }
    need(b, ctrl.size())?;
    let body = match ctrl.opcode {
        Opcode::Nop => WqeBody::Nop,
        Opcode::Unknown(_) => WqeBody::Unknown,
        Opcode::RdmaWrite | Opcode::RdmaRead => {
            let min = ((CTRL_SEG_SIZE + RADDR_SEG_SIZE) / DS_UNIT) as u8;
            if ctrl.ds < min {
                return Err(WqeError::DsTooSmall {
                    opcode: ctrl.opcode.byte(),
                    ds: ctrl.ds,
                    min,
                });
            }
            let op = if ctrl.opcode == Opcode::RdmaWrite {
                RdmaOp::Write
            } else {
                RdmaOp::Read
            };
            WqeBody::Rdma {
                op,
                remote: RaddrSeg::decode(&b[CTRL_SEG_SIZE..])?,
                data: DataChunks::parse(&b[CTRL_SEG_SIZE + RADDR_SEG_SIZE..ctrl.size()])?,
            }
        }
    };
    Ok(Wqe { ctrl, body })
}

/// An RDMA WRITE or READ with exactly one pointer data segment and nothing else: the
/// shape of every WQE a steering driver posts (DS 3, one BB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointerRdma {
    /// The control segment.
    pub ctrl: CtrlSeg,
    /// WRITE or READ.
    pub op: RdmaOp,
    /// Target address and rkey.
    pub remote: RaddrSeg,
    /// The local buffer.
    pub seg: DataSeg,
}

/// Size of a [`PointerRdma`] WQE: control, remote-address and one data segment.
const POINTER_RDMA_SIZE: usize = CTRL_SEG_SIZE + RADDR_SEG_SIZE + DATA_SEG_SIZE;

/// Decodes the WQE at the start of `b` if it has the [`PointerRdma`] shape; `None` for
/// anything else, which [`decode_wqe`] then handles. When this returns `Some`,
/// [`decode_wqe`] decodes the same bytes into the same control segment and an RDMA body
/// with the same remote segment and that one pointer chunk; the point is to get there
/// with one pass over 48 fixed-position bytes and no segment walk.
#[inline]
pub fn decode_pointer_rdma(b: &[u8]) -> Option<PointerRdma> {
    let b: &[u8; POINTER_RDMA_SIZE] = b.get(..POINTER_RDMA_SIZE)?.try_into().ok()?;
    let op = match Opcode::from_byte(b[3]) {
        Opcode::RdmaWrite => RdmaOp::Write,
        Opcode::RdmaRead => RdmaOp::Read,
        _ => return None,
    };
    let seg = &b[CTRL_SEG_SIZE + RADDR_SEG_SIZE..];
    // DS 3 covers exactly the three segments; an inline header is another shape.
    if b[7] & MAX_DS != (POINTER_RDMA_SIZE / DS_UNIT) as u8 || be32(seg, 0) & INLINE_FLAG != 0 {
        return None;
    }
    Some(PointerRdma {
        ctrl: CtrlSeg::decode(b).ok()?,
        op,
        remote: RaddrSeg::decode(&b[CTRL_SEG_SIZE..]).ok()?,
        // One segment covers at most 2^31 bytes, the message limit.
        seg: DataSeg::decode(seg).ok()?,
    })
}

// ---------------------------------------------------------------------------------------
// Completion queue entries
// ---------------------------------------------------------------------------------------

/// Size of a CQE (`mlx5_cqe64`).
pub const CQE_SIZE: usize = 64;

// Byte offsets inside a 64-byte CQE.
const CQE_SRQN: usize = 32;
const CQE_BYTE_CNT: usize = 44;
const CQE_VENDOR_SYNDROME: usize = 54;
const CQE_SYNDROME: usize = 55;
const CQE_SOP_QPN: usize = 56;
const CQE_WQE_COUNTER: usize = 60;
const CQE_SIGNATURE: usize = 62;
const CQE_OP_OWN: usize = 63;

/// Why a CQE could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CqeError {
    /// Fewer than 64 bytes.
    #[error("a CQE is {CQE_SIZE} bytes, {0} given")]
    Truncated(usize),
    /// A QP number above 24 bits.
    #[error("QP number {0:#x} does not fit 24 bits")]
    QpnTooLarge(u32),
    /// A CQ ring whose length is not a whole number of CQEs.
    #[error("a CQ ring of {0} bytes is not a whole number of CQEs")]
    RingLength(usize),
}

/// The CQE opcode (the high nibble of the last byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CqeOpcode {
    /// `MLX5_CQE_REQ` (0): a requester (send-queue) WQE completed.
    Req,
    /// `MLX5_CQE_REQ_ERR` (13): a requester WQE failed.
    ReqErr,
    /// `MLX5_CQE_RESP_ERR` (14): a responder (receive side) error.
    RespErr,
    /// `MLX5_CQE_INVALID` (15): the slot holds no CQE (how a driver initialises its ring).
    Invalid,
    /// Any other nibble (responder, resize, signature... not used by steering).
    Other(u8),
}

impl CqeOpcode {
    /// The opcode for a nibble (only the low 4 bits of `n` are used).
    pub const fn from_nibble(n: u8) -> CqeOpcode {
        match n & 0xf {
            0 => CqeOpcode::Req,
            13 => CqeOpcode::ReqErr,
            14 => CqeOpcode::RespErr,
            15 => CqeOpcode::Invalid,
            other => CqeOpcode::Other(other),
        }
    }

    /// The nibble.
    pub const fn nibble(self) -> u8 {
        match self {
            CqeOpcode::Req => 0,
            CqeOpcode::ReqErr => 13,
            CqeOpcode::RespErr => 14,
            CqeOpcode::Invalid => 15,
            CqeOpcode::Other(n) => n & 0xf,
        }
    }
}

/// The syndrome of an error CQE (`MLX5_CQE_SYNDROME_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syndrome {
    /// 0x01: a local length error (message or segment lengths inconsistent).
    LocalLength,
    /// 0x02: a local QP operation error (malformed WQE, unsupported opcode).
    LocalQpOp,
    /// 0x04: a local protection error (bad lkey, or an address outside its registration).
    LocalProtection,
    /// 0x05: the WQE was flushed because the queue is in the error state.
    WrFlush,
    /// 0x06: memory-window bind error.
    MwBind,
    /// 0x10: bad response.
    BadResponse,
    /// 0x11: local access error.
    LocalAccess,
    /// 0x12: remote invalid request.
    RemoteInvalidRequest,
    /// 0x13: remote access error (bad rkey, or remote address out of range).
    RemoteAccess,
    /// 0x14: remote operation error.
    RemoteOp,
    /// 0x15: transport retry counter exceeded.
    TransportRetryExceeded,
    /// 0x16: RNR retry counter exceeded.
    RnrRetryExceeded,
    /// 0x22: remote aborted.
    RemoteAborted,
    /// Any other byte.
    Other(u8),
}

impl Syndrome {
    /// The syndrome for a byte.
    pub const fn from_byte(b: u8) -> Syndrome {
        match b {
            0x01 => Syndrome::LocalLength,
            0x02 => Syndrome::LocalQpOp,
            0x04 => Syndrome::LocalProtection,
            0x05 => Syndrome::WrFlush,
            0x06 => Syndrome::MwBind,
            0x10 => Syndrome::BadResponse,
            0x11 => Syndrome::LocalAccess,
            0x12 => Syndrome::RemoteInvalidRequest,
            0x13 => Syndrome::RemoteAccess,
            0x14 => Syndrome::RemoteOp,
            0x15 => Syndrome::TransportRetryExceeded,
            0x16 => Syndrome::RnrRetryExceeded,
            0x22 => Syndrome::RemoteAborted,
            other => Syndrome::Other(other),
        }
    }

    /// The byte.
    pub const fn byte(self) -> u8 {
        match self {
            Syndrome::LocalLength => 0x01,
            Syndrome::LocalQpOp => 0x02,
            Syndrome::LocalProtection => 0x04,
            Syndrome::WrFlush => 0x05,
            Syndrome::MwBind => 0x06,
            Syndrome::BadResponse => 0x10,
            Syndrome::LocalAccess => 0x11,
            Syndrome::RemoteInvalidRequest => 0x12,
            Syndrome::RemoteAccess => 0x13,
            Syndrome::RemoteOp => 0x14,
            Syndrome::TransportRetryExceeded => 0x15,
            Syndrome::RnrRetryExceeded => 0x16,
            Syndrome::RemoteAborted => 0x22,
            Syndrome::Other(b) => b,
        }
    }
}

/// A successful requester completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReqCqe {
    /// The completed WQE's index (its control segment's `wqe_index`).
    pub wqe_counter: u16,
    /// Bytes moved (what a driver reads for an RDMA READ).
    pub byte_cnt: u32,
    /// The completed WQE's opcode.
    pub opcode: Opcode,
    /// The QP (24 bits).
    pub qpn: u32,
}

/// Which side an error CQE reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrSide {
    /// `MLX5_CQE_REQ_ERR`: a send-queue WQE.
    Requester,
    /// `MLX5_CQE_RESP_ERR`: the receive side.
    Responder,
}

/// An error completion (`mlx5_err_cqe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrCqe {
    /// Requester or responder.
    pub side: ErrSide,
    /// The failed WQE's index.
    pub wqe_counter: u16,
    /// The syndrome.
    pub syndrome: Syndrome,
    /// The vendor syndrome (device specific detail).
    pub vendor_syndrome: u8,
    /// The failed WQE's opcode.
    pub opcode: Opcode,
    /// The QP (24 bits).
    pub qpn: u32,
    /// SRQ number / user index word (24 bits; 0 for steering's queue).
    pub srqn: u32,
}

/// A CQE's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cqe {
    /// A successful requester completion.
    Req(ReqCqe),
    /// An error completion.
    Err(ErrCqe),
    /// An empty slot (`MLX5_CQE_INVALID`).
    Invalid,
    /// A CQE of another kind; only its opcode is decoded.
    Other(CqeOpcode),
}

/// A CQE slot as read from the ring: its content and owner bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CqeSlot {
    /// The owner bit.
    pub owner: bool,
    /// The content.
    pub cqe: Cqe,
}

impl Cqe {
    /// The CQE opcode.
    pub const fn opcode(&self) -> CqeOpcode {
        match self {
            Cqe::Req(_) => CqeOpcode::Req,
            Cqe::Err(ErrCqe {
                side: ErrSide::Requester,
                ..
            }) => CqeOpcode::ReqErr,
            Cqe::Err(_) => CqeOpcode::RespErr,
            Cqe::Invalid => CqeOpcode::Invalid,
            Cqe::Other(op) => *op,
        }
    }

    /// Decodes the 64-byte CQE at the start of `b`.
    pub fn decode(b: &[u8]) -> Result<CqeSlot, CqeError> {
        if b.len() < CQE_SIZE {
            return Err(CqeError::Truncated(b.len()));
        }
        let op_own = b[CQE_OP_OWN];
        let sop_qpn = be32(b, CQE_SOP_QPN);
        let wqe_counter = be16(b, CQE_WQE_COUNTER);
        let opcode = Opcode::from_byte((sop_qpn >> 24) as u8);
        let qpn = sop_qpn & MAX_QPN;
        let err = |side| {
            Cqe::Err(ErrCqe {
                side,
                wqe_counter,
                syndrome: Syndrome::from_byte(b[CQE_SYNDROME]),
                vendor_syndrome: b[CQE_VENDOR_SYNDROME],
                opcode,
                qpn,
                srqn: be32(b, CQE_SRQN) & MAX_QPN,
            })
        };
        let cqe = match CqeOpcode::from_nibble(op_own >> 4) {
            CqeOpcode::Req => Cqe::Req(ReqCqe {
                wqe_counter,
                byte_cnt: be32(b, CQE_BYTE_CNT),
                opcode,
                qpn,
            }),
            CqeOpcode::ReqErr => err(ErrSide::Requester),
            CqeOpcode::RespErr => err(ErrSide::Responder),
            CqeOpcode::Invalid => Cqe::Invalid,
            other => Cqe::Other(other),
        };
        Ok(CqeSlot {
            owner: op_own & 1 != 0,
            cqe,
        })
    }

    /// Writes the CQE with the given owner bit over all 64 bytes at the start of `out`
    /// (fields the kind does not use are zero). The last byte, which holds the opcode and
    /// owner bit, is the one a consumer tests.
    pub fn encode(&self, owner: bool, out: &mut [u8]) -> Result<(), CqeError> {
        if out.len() < CQE_SIZE {
            return Err(CqeError::Truncated(out.len()));
        }
        let out = &mut out[..CQE_SIZE];
        out.fill(0);
        let sop_qpn = |opcode: Opcode, qpn: u32| -> Result<[u8; 4], CqeError> {
            if qpn > MAX_QPN {
                return Err(CqeError::QpnTooLarge(qpn));
            }
            Ok(((opcode.byte() as u32) << 24 | qpn).to_be_bytes())
        };
        match self {
            Cqe::Req(c) => {
                out[CQE_BYTE_CNT..CQE_BYTE_CNT + 4].copy_from_slice(&c.byte_cnt.to_be_bytes());
                out[CQE_SOP_QPN..CQE_SOP_QPN + 4].copy_from_slice(&sop_qpn(c.opcode, c.qpn)?);
                out[CQE_WQE_COUNTER..CQE_WQE_COUNTER + 2]
                    .copy_from_slice(&c.wqe_counter.to_be_bytes());
            }
            Cqe::Err(c) => {
                if c.srqn > MAX_QPN {
                    return Err(CqeError::QpnTooLarge(c.srqn));
                }
                out[CQE_SRQN..CQE_SRQN + 4].copy_from_slice(&c.srqn.to_be_bytes());
                out[CQE_VENDOR_SYNDROME] = c.vendor_syndrome;
                out[CQE_SYNDROME] = c.syndrome.byte();
                out[CQE_SOP_QPN..CQE_SOP_QPN + 4].copy_from_slice(&sop_qpn(c.opcode, c.qpn)?);
                out[CQE_WQE_COUNTER..CQE_WQE_COUNTER + 2]
                    .copy_from_slice(&c.wqe_counter.to_be_bytes());
            }
            Cqe::Invalid | Cqe::Other(_) => {}
        }
        out[CQE_SIGNATURE] = 0;
        out[CQE_OP_OWN] = self.opcode().nibble() << 4 | owner as u8;
        Ok(())
    }
}

/// The fields of a CQE that a send queue's consumer needs on every completion, read
/// straight from the bytes without decoding the rest (what [`Cqe::decode`] does): the
/// opcode, the QP and the WQE counter. For a REQ CQE of the consumer's own queue these
/// are all it needs; any other CQE is worth a full decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CqeSummary {
    /// The CQE opcode.
    pub opcode: CqeOpcode,
    /// The QP (24 bits).
    pub qpn: u32,
    /// The WQE counter: the completed (or failed) WQE's index.
    pub wqe_counter: u16,
}

impl CqeSummary {
    /// The summary of the CQE `b`. Every field equals the one [`Cqe::decode`] gives for
    /// the same bytes, for every kind that has it.
    #[inline]
    pub fn read(b: &[u8; CQE_SIZE]) -> CqeSummary {
        // The last eight bytes hold all three: s_wqe_opcode/QPN, the WQE counter, the
        // signature and op_own, big-endian in that order.
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&b[CQE_SOP_QPN..]);
        let word = u64::from_be_bytes(tail);
        CqeSummary {
            opcode: CqeOpcode::from_nibble((word >> 4) as u8),
            qpn: (word >> 32) as u32 & MAX_QPN,
            wqe_counter: (word >> 16) as u16,
        }
    }
}

/// The owner bit the device writes into the CQE it produces at counter `index` of a ring
/// of `2^log_cq_size` entries: it flips on every pass over the ring.
pub const fn cqe_owner_for(index: u32, log_cq_size: u8) -> bool {
    (index >> log_cq_size) & 1 != 0
}

/// True when the slot for consumer counter `ci` holds a CQE the consumer has not yet
/// seen: its opcode is not INVALID and its owner bit equals `(ci >> log_cq_size) & 1`.
pub fn cqe_is_sw_owned(slot: &[u8], ci: u32, log_cq_size: u8) -> Result<bool, CqeError> {
    if slot.len() < CQE_SIZE {
        return Err(CqeError::Truncated(slot.len()));
    }
    let op_own = slot[CQE_OP_OWN];
    Ok(CqeOpcode::from_nibble(op_own >> 4) != CqeOpcode::Invalid
        && (op_own & 1 != 0) == cqe_owner_for(ci, log_cq_size))
}

/// Prepares a CQ ring for use, as a driver must before the device writes to it: every
/// slot is zeroed and marked INVALID, so no slot reads as owned before the device writes
/// it.
pub fn init_cq_ring(ring: &mut [u8]) -> Result<(), CqeError> {
    if ring.len() % CQE_SIZE != 0 {
        return Err(CqeError::RingLength(ring.len()));
    }
    for slot in ring.chunks_exact_mut(CQE_SIZE) {
        slot.fill(0);
        slot[CQE_OP_OWN] = CqeOpcode::Invalid.nibble() << 4;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WRITE of one 64-byte STE from a staging buffer, signaled, written out by hand
    /// from the layout: ctrl (opmod 0, index 0x0102, opcode 0x08; QPN 0x000abc, DS 3;
    /// signature 0, stream 0, fm_ce_se 0x08; imm 0), raddr, one data segment.
    #[test]
    fn write_wqe_known_bytes() {
        let seg = DataSeg::new(0x1234, 0x1_0000_0040, 64).unwrap();
        let wqe = RdmaWqe {
            op: RdmaOp::Write,
            wqe_index: 0x0102,
            qpn: 0xabc,
            flags: CtrlFlags::CQ_UPDATE,
            remote: RaddrSeg {
                raddr: 0x10_0000_1000,
                rkey: 0x0000_0101,
            },
            payload: Payload::Segments(&[seg]),
        };
        let mut out = [0xeeu8; 64];
        assert_eq!(wqe.encode(&mut out), Ok(48));
        #[rustfmt::skip]
        let expect: [u8; 48] = [
            0x00, 0x01, 0x02, 0x08,  0x00, 0x0a, 0xbc, 0x03,
            0x00, 0x00, 0x00, 0x08,  0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x10,  0x00, 0x00, 0x10, 0x00,
            0x00, 0x00, 0x01, 0x01,  0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x40,  0x00, 0x00, 0x12, 0x34,
            0x00, 0x00, 0x00, 0x01,  0x00, 0x00, 0x00, 0x40,
        ];
        assert_eq!(&out[..48], &expect[..]);
        assert_eq!(&out[48..], &[0xee; 16], "bytes past the WQE are untouched");
        assert_eq!(wqe.bbs(), Ok(1));
    }

    #[test]
    fn rdma_round_trips() {
        let segs = [
            DataSeg::new(7, 0x1000, 10).unwrap(),
            DataSeg::new(8, 0x2000, 54).unwrap(),
        ];
        let wqe = RdmaWqe {
            op: RdmaOp::Read,
            wqe_index: 0xffff,
            qpn: MAX_QPN,
            flags: CtrlFlags::CQ_UPDATE | CtrlFlags::FENCE,
            remote: RaddrSeg { raddr: 42, rkey: 9 },
            payload: Payload::Segments(&segs),
        };
        let mut buf = [0u8; 128];
        let n = wqe.encode(&mut buf).unwrap();
        assert_eq!(n, 64);
        let d = decode_wqe(&buf[..n]).unwrap();
        assert_eq!(d.ctrl.opcode, Opcode::RdmaRead);
        assert_eq!(
            (d.ctrl.wqe_index, d.ctrl.qpn, d.ctrl.ds),
            (0xffff, MAX_QPN, 4)
        );
        assert_eq!(d.ctrl.flags, CtrlFlags::CQ_UPDATE | CtrlFlags::FENCE);
        assert_eq!(d.ctrl.flags.fence_mode(), 4);
        assert_eq!(d.ctrl.flags.completion_mode(), 2);
        let WqeBody::Rdma { op, remote, data } = d.body else {
            panic!("not RDMA: {d:?}");
        };
        assert_eq!(op, RdmaOp::Read);
        assert_eq!(remote, RaddrSeg { raddr: 42, rkey: 9 });
        assert_eq!(data.total_len(), 64);
        let back: Vec<_> = data.collect();
        assert_eq!(
            back,
            vec![DataChunk::Pointer(segs[0]), DataChunk::Pointer(segs[1])]
        );
    }

    /// A 64-byte inline WRITE is ctrl + raddr + 80 bytes of inline segment: DS 7, two BBs,
    /// as rdma-core posts STE writes.
    #[test]
    fn inline_round_trips_and_pads() {
        let data: Vec<u8> = (1..=64).collect();
        let wqe = RdmaWqe {
            op: RdmaOp::Write,
            wqe_index: 3,
            qpn: 5,
            flags: CtrlFlags::empty(),
            remote: RaddrSeg {
                raddr: 0x40,
                rkey: 1,
            },
            payload: Payload::Inline(&data),
        };
        assert_eq!(wqe.size(), Ok(112));
        assert_eq!(wqe.bbs(), Ok(2));
        let mut buf = [0xffu8; 128];
        assert_eq!(wqe.encode(&mut buf), Ok(112));
        assert_eq!(&buf[32..36], &[0x80, 0, 0, 64]);
        assert_eq!(&buf[100..112], &[0; 12], "padding is zero");
        let d = decode_wqe(&buf).unwrap();
        assert_eq!(d.ctrl.ds, 7);
        let WqeBody::Rdma { data: chunks, .. } = d.body else {
            panic!("not RDMA");
        };
        assert_eq!(
            chunks.collect::<Vec<_>>(),
            vec![DataChunk::Inline(&data[..])]
        );
    }

    #[test]
    fn nop_and_unknown_opcodes_decode() {
        let mut buf = [0u8; 64];
        assert_eq!(encode_nop(9, 1, CtrlFlags::CQ_UPDATE, &mut buf), Ok(16));
        let d = decode_wqe(&buf).unwrap();
        assert_eq!((d.ctrl.opcode, d.body), (Opcode::Nop, WqeBody::Nop));
        let mut ctrl = CtrlSeg::new(Opcode::from_byte(0x0a), 0, 1, 1, CtrlFlags::empty());
        ctrl.imm = 0xdead_beef;
        ctrl.signature = 0x5a;
        ctrl.stream_id = 0x1234;
        ctrl.opmod = 3;
        ctrl.encode(&mut buf).unwrap();
        let d = decode_wqe(&buf).unwrap();
        assert_eq!(d.ctrl, ctrl);
        assert_eq!(d.ctrl.opcode, Opcode::Unknown(0x0a));
        assert_eq!(d.body, WqeBody::Unknown);
        for b in 0..=255u8 {
            assert_eq!(Opcode::from_byte(b).byte(), b);
        }
    }

    #[test]
    fn malformed_wqes_are_typed_errors() {
        let mut buf = [0u8; 64];
        // DS 0.
        CtrlSeg::new(Opcode::Nop, 0, 1, 0, CtrlFlags::empty())
            .encode(&mut buf)
            .unwrap();
        assert_eq!(decode_wqe(&buf), Err(WqeError::DsZero));
        // An RDMA WRITE without its remote-address segment.
        CtrlSeg::new(Opcode::RdmaWrite, 0, 1, 1, CtrlFlags::empty())
            .encode(&mut buf)
            .unwrap();
        assert_eq!(
            decode_wqe(&buf),
            Err(WqeError::DsTooSmall {
                opcode: 0x08,
                ds: 1,
                min: 2
            })
        );
        // DS longer than the bytes given.
        CtrlSeg::new(Opcode::RdmaWrite, 0, 1, 5, CtrlFlags::empty())
            .encode(&mut buf)
            .unwrap();
        assert_eq!(
            decode_wqe(&buf),
            Err(WqeError::Truncated { need: 80, have: 64 })
        );
        // Inline byte count running past DS.
        CtrlSeg::new(Opcode::RdmaWrite, 0, 1, 3, CtrlFlags::empty())
            .encode(&mut buf)
            .unwrap();
        buf[32..36].copy_from_slice(&(INLINE_FLAG | 13).to_be_bytes());
        assert_eq!(
            decode_wqe(&buf),
            Err(WqeError::InlineOverflow { len: 13, room: 12 })
        );
        // Two zero byte counts: 2 x 2^31 bytes.
        CtrlSeg::new(Opcode::RdmaRead, 0, 1, 4, CtrlFlags::empty())
            .encode(&mut buf)
            .unwrap();
        buf[32..64].fill(0);
        assert_eq!(
            decode_wqe(&buf),
            Err(WqeError::MessageTooLong {
                len: 2 * MAX_MESSAGE_LEN
            })
        );
        assert_eq!(
            decode_wqe(&buf[..10]),
            Err(WqeError::Truncated { need: 16, have: 10 })
        );
        assert_eq!(
            decode_wqe(&[]),
            Err(WqeError::Truncated { need: 16, have: 0 })
        );
    }

    #[test]
    fn encoder_refuses_what_the_wire_cannot_say() {
        assert_eq!(
            DataSeg::new(1, 0, 0),
            Err(WqeError::BadSegmentLength { len: 0 })
        );
        assert!(DataSeg::new(1, 0, MAX_MESSAGE_LEN).is_err());
        let remote = RaddrSeg { raddr: 0, rkey: 0 };
        let read_inline = RdmaWqe {
            op: RdmaOp::Read,
            wqe_index: 0,
            qpn: 1,
            flags: CtrlFlags::empty(),
            remote,
            payload: Payload::Inline(&[1, 2, 3]),
        };
        assert_eq!(read_inline.encode(&mut [0; 64]), Err(WqeError::InlineRead));
        let big = [0u8; 1000];
        let too_big = RdmaWqe {
            op: RdmaOp::Write,
            payload: Payload::Inline(&big),
            ..read_inline
        };
        assert_eq!(too_big.size(), Err(WqeError::TooLarge { size: 1040 }));
        let ok = RdmaWqe {
            payload: Payload::Inline(&big[..4]),
            ..too_big
        };
        assert_eq!(
            ok.encode(&mut [0; 40]),
            Err(WqeError::BufferTooSmall { need: 48, have: 40 })
        );
        let bad_qpn = RdmaWqe { qpn: 1 << 24, ..ok };
        assert_eq!(
            bad_qpn.encode(&mut [0; 64]),
            Err(WqeError::QpnTooLarge(1 << 24))
        );
        // Zero-length inline is legal on the wire (one 16-byte unit).
        let empty = RdmaWqe {
            payload: Payload::Inline(&[]),
            ..ok
        };
        assert_eq!(empty.size(), Ok(48));
    }

    /// A successful READ completion, written out by hand from `mlx5_cqe64`: byte_cnt at
    /// 44, s_wqe_opcode/QPN at 56, wqe_counter at 60, op_own (opcode << 4 | owner) at 63.
    #[test]
    fn req_cqe_known_bytes() {
        let cqe = Cqe::Req(ReqCqe {
            wqe_counter: 0x0203,
            byte_cnt: 64,
            opcode: Opcode::RdmaRead,
            qpn: 0x00abcd,
        });
        let mut out = [0xffu8; 64];
        cqe.encode(true, &mut out).unwrap();
        let mut expect = [0u8; 64];
        expect[44..48].copy_from_slice(&[0, 0, 0, 64]);
        expect[56..60].copy_from_slice(&[0x10, 0x00, 0xab, 0xcd]);
        expect[60..62].copy_from_slice(&[0x02, 0x03]);
        expect[63] = 0x01;
        assert_eq!(out, expect);
        assert_eq!(Cqe::decode(&out), Ok(CqeSlot { owner: true, cqe }));
    }

    /// An error CQE written out by hand from `mlx5_err_cqe`: vendor syndrome at 54,
    /// syndrome at 55, opcode REQ_ERR (13) in the high nibble of byte 63.
    #[test]
    fn err_cqe_known_bytes_and_round_trip() {
        let cqe = Cqe::Err(ErrCqe {
            side: ErrSide::Requester,
            wqe_counter: 7,
            syndrome: Syndrome::RemoteAccess,
            vendor_syndrome: 0x88,
            opcode: Opcode::RdmaWrite,
            qpn: 0x12,
            srqn: 0,
        });
        let mut out = [0u8; 64];
        cqe.encode(false, &mut out).unwrap();
        let mut expect = [0u8; 64];
        expect[54] = 0x88;
        expect[55] = 0x13;
        expect[56..60].copy_from_slice(&[0x08, 0, 0, 0x12]);
        expect[60..62].copy_from_slice(&[0, 7]);
        expect[63] = 0xd0;
        assert_eq!(out, expect);
        assert_eq!(Cqe::decode(&out), Ok(CqeSlot { owner: false, cqe }));
        assert_eq!(cqe.opcode(), CqeOpcode::ReqErr);
        for b in 0..=255u8 {
            assert_eq!(Syndrome::from_byte(b).byte(), b);
        }
        assert_eq!(Cqe::decode(&out[..63]), Err(CqeError::Truncated(63)));
        let resp = Cqe::Err(ErrCqe {
            side: ErrSide::Responder,
            srqn: 0x33,
            ..match cqe {
                Cqe::Err(e) => e,
                _ => unreachable!(),
            }
        });
        resp.encode(true, &mut out).unwrap();
        assert_eq!(out[63], 0xe1);
        assert_eq!(Cqe::decode(&out).unwrap().cqe, resp);
    }

    /// The summary reads the same opcode, QP and WQE counter as the full decoder, for
    /// every kind of CQE, owner bit and stray bits in the fields it skips.
    #[test]
    fn summary_agrees_with_decode() {
        let err = |side| ErrCqe {
            side,
            wqe_counter: 0xfedc,
            syndrome: Syndrome::LocalProtection,
            vendor_syndrome: 0x42,
            opcode: Opcode::RdmaRead,
            qpn: MAX_QPN,
            srqn: 0x12_3456,
        };
        let cqes = [
            Cqe::Req(ReqCqe {
                wqe_counter: 0x8001,
                byte_cnt: 0xffff_ffff,
                opcode: Opcode::Unknown(0xff),
                qpn: 0x00_0abc,
            }),
            Cqe::Err(err(ErrSide::Requester)),
            Cqe::Err(err(ErrSide::Responder)),
            Cqe::Invalid,
            Cqe::Other(CqeOpcode::Other(3)),
        ];
        for cqe in cqes {
            for owner in [false, true] {
                let mut b = [0u8; CQE_SIZE];
                cqe.encode(owner, &mut b).unwrap();
                // The signature byte is not part of any field.
                b[CQE_SIGNATURE] = 0xa5;
                let s = CqeSummary::read(&b);
                let decoded = Cqe::decode(&b).unwrap().cqe;
                assert_eq!(s.opcode, decoded.opcode());
                match decoded {
                    Cqe::Req(c) => assert_eq!((s.qpn, s.wqe_counter), (c.qpn, c.wqe_counter)),
                    Cqe::Err(e) => assert_eq!((s.qpn, s.wqe_counter), (e.qpn, e.wqe_counter)),
                    Cqe::Invalid | Cqe::Other(_) => {}
                }
            }
        }
    }

    proptest::proptest! {
        /// Any 64 bytes: the summary's fields are the decoder's.
        #[test]
        fn summary_agrees_with_decode_on_any_bytes(bytes in proptest::array::uniform32(proptest::num::u8::ANY), more in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let mut b = [0u8; CQE_SIZE];
            b[..32].copy_from_slice(&bytes);
            b[32..].copy_from_slice(&more);
            let s = CqeSummary::read(&b);
            let decoded = Cqe::decode(&b).unwrap().cqe;
            proptest::prop_assert_eq!(s.opcode, decoded.opcode());
            match decoded {
                Cqe::Req(c) => proptest::prop_assert_eq!((s.qpn, s.wqe_counter), (c.qpn, c.wqe_counter)),
                Cqe::Err(e) => proptest::prop_assert_eq!((s.qpn, s.wqe_counter), (e.qpn, e.wqe_counter)),
                Cqe::Invalid | Cqe::Other(_) => {}
            }
        }
    }

    proptest::proptest! {
        /// Any bytes: decoding never panics, and a decoded RDMA WQE's chunks add up to
        /// its total length and stay inside its DS.
        #[test]
        fn decoding_arbitrary_bytes_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(wqe) = decode_wqe(&bytes) {
                proptest::prop_assert!(wqe.ctrl.size() <= bytes.len());
                if let WqeBody::Rdma { data, .. } = wqe.body {
                    let sum: u64 = data.map(|c| c.len()).sum();
                    proptest::prop_assert_eq!(sum, data.total_len());
                    proptest::prop_assert!(sum <= MAX_MESSAGE_LEN);
                }
            }
            let _ = Cqe::decode(&bytes);
        }
    }

    proptest::proptest! {
        /// The one-shape decoder agrees with the general one wherever it answers, and
        /// answers for every WQE a driver encodes with one pointer segment.
        #[test]
        fn pointer_rdma_agrees_with_decode_wqe(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            shape in proptest::num::u8::ANY,
        ) {
            // Steer half the cases to the interesting bytes: an RDMA opcode and DS 3.
            if shape & 1 == 1 && bytes.len() > 7 {
                bytes[3] = if shape & 2 == 0 { 0x08 } else { 0x10 };
                bytes[7] = (bytes[7] & !MAX_DS) | 3;
            }
            match decode_pointer_rdma(&bytes) {
                Some(fast) => {
                    let wqe = decode_wqe(&bytes).expect("the general decoder accepts it");
                    proptest::prop_assert_eq!(wqe.ctrl, fast.ctrl);
                    match wqe.body {
                        WqeBody::Rdma { op, remote, data } => {
                            proptest::prop_assert_eq!(op, fast.op);
                            proptest::prop_assert_eq!(remote, fast.remote);
                            proptest::prop_assert_eq!(data.total_len(), fast.seg.len());
                            let chunks: Vec<_> = data.collect();
                            proptest::prop_assert_eq!(chunks, vec![DataChunk::Pointer(fast.seg)]);
                        }
                        other => proptest::prop_assert!(false, "{:?}", other),
                    }
                }
                None => {
                    if let Ok(Wqe { ctrl, body: WqeBody::Rdma { data, .. } }) = decode_wqe(&bytes) {
                        let one_pointer = ctrl.ds == 3
                            && matches!(data.collect::<Vec<_>>()[..], [DataChunk::Pointer(_)]);
                        proptest::prop_assert!(!one_pointer);
                    }
                }
            }
        }
    }

    #[test]
    fn pointer_rdma_decodes_what_drivers_encode() {
        let seg = DataSeg::new(0x1234, 0x1_0000_0040, 64).unwrap();
        let wqe = RdmaWqe {
            op: RdmaOp::Read,
            wqe_index: 7,
            qpn: 0xabc,
            flags: CtrlFlags::CQ_UPDATE,
            remote: RaddrSeg {
                raddr: 0x40,
                rkey: 0x101,
            },
            payload: Payload::Segments(&[seg]),
        };
        let mut out = [0u8; 64];
        wqe.encode(&mut out).unwrap();
        let fast = decode_pointer_rdma(&out).unwrap();
        assert_eq!(
            (fast.op, fast.remote, fast.seg),
            (RdmaOp::Read, wqe.remote, seg)
        );
        assert_eq!(fast.ctrl, decode_wqe(&out).unwrap().ctrl);
        assert_eq!(decode_pointer_rdma(&out[..47]), None, "truncated");
        let two = [seg, seg];
        let wqe = RdmaWqe {
            payload: Payload::Segments(&two),
            ..wqe
        };
        wqe.encode(&mut out).unwrap();
        assert_eq!(decode_pointer_rdma(&out), None, "two segments");
        let wqe = RdmaWqe {
            op: RdmaOp::Write,
            payload: Payload::Inline(&[1; 12]),
            ..wqe
        };
        wqe.encode(&mut out).unwrap();
        assert_eq!(decode_pointer_rdma(&out), None, "inline");
    }

    #[test]
    fn ownership_follows_the_ring_pass() {
        let log = 2; // 4 entries
        let mut ring = [0u8; 4 * CQE_SIZE];
        // A zeroed ring would read as owned REQ CQEs on the first pass: init prevents it.
        assert_eq!(cqe_is_sw_owned(&ring[..64], 0, log), Ok(true));
        init_cq_ring(&mut ring).unwrap();
        for ci in 0..4 {
            assert_eq!(cqe_is_sw_owned(&ring[ci * 64..], ci as u32, log), Ok(false));
        }
        assert_eq!(Cqe::decode(&ring).unwrap().cqe, Cqe::Invalid);
        // The device's first-pass CQE at index 1 carries owner 0; the second pass owner 1.
        let cqe = Cqe::Req(ReqCqe {
            wqe_counter: 0,
            byte_cnt: 0,
            opcode: Opcode::Nop,
            qpn: 1,
        });
        assert!(!cqe_owner_for(1, log));
        assert!(cqe_owner_for(5, log));
        assert!(!cqe_owner_for(9, log));
        cqe.encode(cqe_owner_for(1, log), &mut ring[64..128])
            .unwrap();
        assert_eq!(cqe_is_sw_owned(&ring[64..], 1, log), Ok(true));
        // The same slot seen at consumer counter 5 (second pass) is stale.
        assert_eq!(cqe_is_sw_owned(&ring[64..], 5, log), Ok(false));
        assert_eq!(init_cq_ring(&mut ring[..65]), Err(CqeError::RingLength(65)));
        assert_eq!(
            cqe_is_sw_owned(&ring[..3], 0, log),
            Err(CqeError::Truncated(3))
        );
    }
}
