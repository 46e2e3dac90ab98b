//! A minimal steering send ring, written the way a driver keeps one, against nothing but
//! the device's public seam: rings and a staging buffer in host memory, WQEs encoded
//! with `ste_builder::wqe`, a doorbell, and completions polled by owner bit with the
//! consumer index published in the CQ doorbell record.
//!
//! Bookkeeping (as rdma-core's `dr_send` does it, simplified):
//! - the producer counter `pc` counts basic blocks; a WQE is written at `pc mod ring`,
//!   in two pieces when it runs past the ring's end;
//! - one WQE in `signal_every` asks for a CQE; a CQE completes its WQE and every earlier
//!   one, which frees their ring space (`tail`) and staging bytes;
//! - [`SendRing::flush`] ends with a signalled NOP when the last WQE was unsignalled, so
//!   that everything posted is known complete afterwards.
//!
//! Writes of at most [`MAX_INLINE`] bytes travel inline in the WQE; longer ones are copied
//! to the registered staging buffer and sent by lkey. Reads land in a registered
//! read-back buffer.
//!
//! ICM is registered zero-based (as rdma-core registers SW-ICM), so a WQE's remote
//! address is the byte offset into the allocation its rkey names: [`SendRing::write`]
//! and [`SendRing::read`] take the allocation and an ICM address inside it and post the
//! difference.

use std::collections::VecDeque;
use std::fmt;

use sim::host_mem::{HostMemory, Mr};
use sim::icm::IcmAlloc;
use sim::queue::{DbRecord, RingConfig};
use sim::{Device, DeviceError};
use ste_builder::wqe::{
    self, cqe_is_sw_owned, init_cq_ring, Cqe, CtrlFlags, DataSeg, ErrCqe, Payload, RaddrSeg,
    RdmaOp, RdmaWqe, WqeError, BB_SIZE, CQE_SIZE, CTRL_SEG_SIZE, DATA_SEG_SIZE, MAX_WQE_SIZE,
    RADDR_SEG_SIZE,
};

/// The longest write sent inline: one STE, as rdma-core caps its inline size.
pub const MAX_INLINE: usize = 64;

/// BBs of a WQE with one pointer data segment.
const POINTER_WQE_BBS: u16 =
    (CTRL_SEG_SIZE + RADDR_SEG_SIZE + DATA_SEG_SIZE).div_ceil(BB_SIZE) as u16;

/// Why the driver could not go on.
#[derive(Debug)]
pub enum DriverError {
    /// The device refused a call.
    Device(DeviceError),
    /// A WQE could not be encoded.
    Wqe(WqeError),
    /// The device completed a WQE with an error.
    Cqe(ErrCqe),
    /// An ICM span the allocation it was posted under does not hold.
    OutsideAllocation {
        /// First ICM address.
        addr: u64,
        /// Bytes.
        len: usize,
        /// The allocation.
        alloc: IcmAlloc,
    },
    /// Something the driver's own bookkeeping cannot handle.
    Stuck(String),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Device(e) => write!(f, "device: {e}"),
            DriverError::Wqe(e) => write!(f, "encoding a WQE: {e}"),
            DriverError::Cqe(c) => write!(
                f,
                "error CQE for WQE {:#x}: {:?} (vendor syndrome {:#x})",
                c.wqe_counter, c.syndrome, c.vendor_syndrome
            ),
            DriverError::OutsideAllocation { addr, len, alloc } => write!(
                f,
                "{len} bytes at ICM {addr:#x} lie outside the allocation {:#x}..{:#x}",
                alloc.addr,
                alloc.addr + alloc.size
            ),
            DriverError::Stuck(s) => f.write_str(s),
        }
    }
}

impl From<DeviceError> for DriverError {
    fn from(e: DeviceError) -> Self {
        DriverError::Device(e)
    }
}

impl From<WqeError> for DriverError {
    fn from(e: WqeError) -> Self {
        DriverError::Wqe(e)
    }
}

/// Sizes of a ring.
#[derive(Debug, Clone, Copy)]
pub struct RingSizes {
    /// log2 of the send ring's basic blocks.
    pub log_sq_bbs: u8,
    /// log2 of the completion ring's CQEs.
    pub log_cq: u8,
    /// Bytes of staging memory for writes sent by lkey.
    pub staging: usize,
    /// Bytes of read-back memory.
    pub readback: usize,
    /// One WQE in this many asks for a CQE.
    pub signal_every: u32,
    /// The doorbell is rung once this many BBs are posted and not yet rung.
    pub doorbell_bbs: u16,
}

impl Default for RingSizes {
    fn default() -> Self {
        RingSizes {
            log_sq_bbs: 9,
            log_cq: 7,
            staging: 256 << 10,
            readback: 64 << 10,
            signal_every: 16,
            doorbell_bbs: 64,
        }
    }
}

/// A signalled WQE not yet completed: where it starts and where the next one starts.
#[derive(Debug, Clone, Copy)]
struct Signalled {
    wqe_index: u16,
    end: u16,
    /// Staging bytes in use up to and including this WQE.
    staging_end: usize,
}

/// What the driver observed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// WQEs posted (NOPs included).
    pub wqes: u64,
    /// Of them, inline writes.
    pub inline_writes: u64,
    /// Of them, writes by lkey.
    pub pointer_writes: u64,
    /// Of them, reads.
    pub reads: u64,
    /// Doorbells rung.
    pub doorbells: u64,
    /// CQEs polled.
    pub cqes: u64,
}

/// One steering queue and the driver state around it.
pub struct SendRing {
    qpn: u32,
    sizes: RingSizes,
    sq: HostMemory,
    cq: HostMemory,
    dbrec: HostMemory,
    staging: HostMemory,
    staging_mr: Mr,
    readback: HostMemory,
    readback_mr: Mr,
    /// Producer BB counter.
    pc: u16,
    /// BB counter up to which the doorbell has been rung.
    rung: u16,
    /// BB counter up to which WQEs are known complete.
    tail: u16,
    /// CQ consumer index.
    ci: u32,
    unsignalled: u32,
    signalled: VecDeque<Signalled>,
    /// Next free staging byte; staging is reused once everything is complete.
    staging_at: usize,
    readback_at: usize,
    stats: RingStats,
    scratch: Vec<u8>,
}

impl SendRing {
    /// Allocates the rings and buffers, registers the buffers and creates the queue.
    pub fn new(dev: &Device, sizes: RingSizes) -> Result<SendRing, DriverError> {
        let sq = HostMemory::new(BB_SIZE << sizes.log_sq_bbs);
        let cq = HostMemory::new(CQE_SIZE << sizes.log_cq);
        init_cq_ring(&mut cq.lock_write())
            .map_err(|e| DriverError::Stuck(format!("CQ ring: {e}")))?;
        let dbrec = HostMemory::new(64);
        let staging = HostMemory::new(sizes.staging);
        let readback = HostMemory::new(sizes.readback);
        let staging_mr = dev
            .register_memory(&staging)
            .map_err(|e| DriverError::Device(e.into()))?;
        let readback_mr = dev
            .register_memory(&readback)
            .map_err(|e| DriverError::Device(e.into()))?;
        let qpn = dev.create_queue(
            RingConfig {
                mem: sq.clone(),
                offset: 0,
                log_entries: sizes.log_sq_bbs,
            },
            RingConfig {
                mem: cq.clone(),
                offset: 0,
                log_entries: sizes.log_cq,
            },
            DbRecord {
                mem: dbrec.clone(),
                offset: 0,
            },
        )?;
        Ok(SendRing {
            qpn,
            sizes,
            sq,
            cq,
            dbrec,
            staging,
            staging_mr,
            readback,
            readback_mr,
            pc: 0,
            rung: 0,
            tail: 0,
            ci: 0,
            unsignalled: 0,
            signalled: VecDeque::new(),
            staging_at: 0,
            readback_at: 0,
            stats: RingStats::default(),
            scratch: vec![0; MAX_WQE_SIZE.div_ceil(BB_SIZE) * BB_SIZE],
        })
    }

    /// The queue's QP number.
    pub fn qpn(&self) -> u32 {
        self.qpn
    }

    /// Counts so far.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    fn ring_bbs(&self) -> u16 {
        1u16 << self.sizes.log_sq_bbs
    }

    /// The remote-address segment for `[addr, addr + len)` in `alloc`: its rkey and the
    /// offset into it.
    fn remote(alloc: &IcmAlloc, addr: u64, len: usize) -> Result<RaddrSeg, DriverError> {
        let outside = || DriverError::OutsideAllocation {
            addr,
            len,
            alloc: *alloc,
        };
        let offset = addr.checked_sub(alloc.addr).ok_or_else(outside)?;
        match offset.checked_add(len as u64) {
            Some(end) if end <= alloc.size => Ok(RaddrSeg {
                raddr: offset,
                rkey: alloc.rkey,
            }),
            _ => Err(outside()),
        }
    }

    /// Posts an RDMA WRITE of `data` to ICM `addr` in `alloc`: inline when short, else
    /// through the staging buffer.
    pub fn write(
        &mut self,
        dev: &Device,
        alloc: &IcmAlloc,
        addr: u64,
        data: &[u8],
    ) -> Result<u16, DriverError> {
        let remote = Self::remote(alloc, addr, data.len())?;
        if data.len() <= MAX_INLINE {
            self.stats.inline_writes += 1;
            return self.post(dev, RdmaOp::Write, remote, Payload::Inline(data));
        }
        if data.len() > self.staging.len() {
            return Err(DriverError::Stuck(format!(
                "a {}-byte write does not fit the {}-byte staging buffer",
                data.len(),
                self.staging.len()
            )));
        }
        if self.staging_at + data.len() > self.staging.len() {
            // Staging is reused only once every WQE reading it has completed.
            self.flush(dev)?;
        }
        // Room in the ring first: making it may flush, which frees all staging, and the
        // bytes about to be staged must not be freed with it.
        self.make_room(dev, POINTER_WQE_BBS)?;
        let at = self.staging_at;
        self.staging
            .write(at, data)
            .map_err(|e| DriverError::Stuck(format!("staging: {e}")))?;
        let seg = DataSeg::new(
            self.staging_mr.lkey,
            self.staging_mr.iova + at as u64,
            data.len() as u64,
        )?;
        self.staging_at += data.len();
        self.stats.pointer_writes += 1;
        self.post(dev, RdmaOp::Write, remote, Payload::Segments(&[seg]))
    }

    /// Posts an RDMA READ of `len` bytes at ICM `addr` in `alloc` into the read-back
    /// buffer and returns the offset the bytes will land at (valid after
    /// [`SendRing::flush`]).
    pub fn read(
        &mut self,
        dev: &Device,
        alloc: &IcmAlloc,
        addr: u64,
        len: usize,
    ) -> Result<usize, DriverError> {
        let remote = Self::remote(alloc, addr, len)?;
        if self.readback_at + len > self.readback.len() {
            return Err(DriverError::Stuck(format!(
                "read-back buffer full ({} of {} bytes used)",
                self.readback_at,
                self.readback.len()
            )));
        }
        let at = self.readback_at;
        let seg = DataSeg::new(
            self.readback_mr.lkey,
            self.readback_mr.iova + at as u64,
            len as u64,
        )?;
        self.readback_at += len;
        self.stats.reads += 1;
        self.post(dev, RdmaOp::Read, remote, Payload::Segments(&[seg]))?;
        Ok(at)
    }

    /// The read-back bytes at `offset`.
    pub fn read_back(&self, offset: usize, len: usize) -> Vec<u8> {
        self.readback
            .read_vec(offset, len)
            .unwrap_or_else(|e| panic!("read-back buffer: {e}"))
    }

    /// Forgets the read-back buffer's contents (its space is reused).
    pub fn reset_read_back(&mut self) {
        self.readback_at = 0;
    }

    /// Encodes one WQE at the producer counter and returns its `wqe_index`. Makes room
    /// first when the ring is full.
    fn post(
        &mut self,
        dev: &Device,
        op: RdmaOp,
        remote: RaddrSeg,
        payload: Payload<'_>,
    ) -> Result<u16, DriverError> {
        let mut w = RdmaWqe {
            op,
            wqe_index: 0,
            qpn: self.qpn,
            flags: CtrlFlags::empty(),
            remote,
            payload,
        };
        let bbs = w.bbs()? as u16;
        self.make_room(dev, bbs)?;
        self.unsignalled += 1;
        if self.unsignalled >= self.sizes.signal_every {
            w.flags = CtrlFlags::CQ_UPDATE;
        }
        w.wqe_index = self.pc;
        w.encode(&mut self.scratch)?;
        self.place(bbs, w.flags);
        if self.pc.wrapping_sub(self.rung) >= self.sizes.doorbell_bbs {
            self.ring(dev)?;
        }
        Ok(w.wqe_index)
    }

    /// Flushes until the ring has room for a WQE of `bbs` BBs, keeping one BB spare for
    /// the NOP that [`SendRing::flush`] may need.
    fn make_room(&mut self, dev: &Device, bbs: u16) -> Result<(), DriverError> {
        while self.pc.wrapping_sub(self.tail) + bbs + 1 > self.ring_bbs() {
            if self.pc == self.tail {
                return Err(DriverError::Stuck("a WQE larger than the ring".into()));
            }
            self.flush(dev)?;
        }
        Ok(())
    }

    /// Posts a NOP (signalled when `signal`).
    pub fn nop(&mut self, signal: bool) -> Result<u16, DriverError> {
        if self.pc.wrapping_sub(self.tail) >= self.ring_bbs() {
            return Err(DriverError::Stuck("no room for a NOP".into()));
        }
        let flags = if signal {
            CtrlFlags::CQ_UPDATE
        } else {
            CtrlFlags::empty()
        };
        let index = self.pc;
        wqe::encode_nop(index, self.qpn, flags, &mut self.scratch)?;
        self.place(1, flags);
        Ok(index)
    }

    /// Copies the encoded WQE in `scratch` into the ring at the producer counter.
    fn place(&mut self, bbs: u16, flags: CtrlFlags) {
        let ring_bytes = BB_SIZE << self.sizes.log_sq_bbs;
        let at = usize::from(self.pc & (self.ring_bbs() - 1)) * BB_SIZE;
        // Whole BBs: padding after the WQE in its last BB goes along, as it lies.
        let len = usize::from(bbs) * BB_SIZE;
        let bytes = &self.scratch[..len];
        let first = len.min(ring_bytes - at);
        let mut ring = self.sq.lock_write();
        ring[at..at + first].copy_from_slice(&bytes[..first]);
        ring[..len - first].copy_from_slice(&bytes[first..]);
        drop(ring);
        let index = self.pc;
        self.pc = self.pc.wrapping_add(bbs);
        self.stats.wqes += 1;
        if flags.contains(CtrlFlags::CQ_UPDATE) {
            self.unsignalled = 0;
            self.signalled.push_back(Signalled {
                wqe_index: index,
                end: self.pc,
                staging_end: self.staging_at,
            });
        }
    }

    /// Rings the doorbell for everything posted, then polls what completed.
    pub fn ring(&mut self, dev: &Device) -> Result<(), DriverError> {
        if self.rung != self.pc {
            dev.doorbell(self.qpn, self.pc)?;
            self.rung = self.pc;
            self.stats.doorbells += 1;
        }
        self.poll()
    }

    /// Reads every new CQE. A successful CQE completes its WQE and all before it; an
    /// error CQE stops the poll with [`DriverError::Cqe`] (it is consumed).
    pub fn poll(&mut self) -> Result<(), DriverError> {
        let log = self.sizes.log_cq;
        let size = 1u32 << log;
        let mut result = Ok(());
        loop {
            let slot_at = (self.ci & (size - 1)) as usize * CQE_SIZE;
            let slot = self
                .cq
                .read_vec(slot_at, CQE_SIZE)
                .map_err(|e| DriverError::Stuck(format!("CQ: {e}")))?;
            let owned = cqe_is_sw_owned(&slot, self.ci, log)
                .map_err(|e| DriverError::Stuck(format!("CQE: {e}")))?;
            if !owned {
                break;
            }
            let cqe = Cqe::decode(&slot)
                .map_err(|e| DriverError::Stuck(format!("CQE: {e}")))?
                .cqe;
            self.ci = self.ci.wrapping_add(1);
            self.stats.cqes += 1;
            match cqe {
                Cqe::Req(c) => self.complete(c.wqe_counter)?,
                Cqe::Err(e) => {
                    result = Err(DriverError::Cqe(e));
                    break;
                }
                other => {
                    result = Err(DriverError::Stuck(format!("unexpected CQE {other:?}")));
                    break;
                }
            }
        }
        // Publish the consumer index, as mlx5's CQ doorbell record holds it.
        self.dbrec
            .write(0, &(self.ci & 0x00ff_ffff).to_be_bytes())
            .map_err(|e| DriverError::Stuck(format!("CQ doorbell record: {e}")))?;
        result
    }

    /// A CQE for the WQE at `wqe_counter` completes it and everything before it.
    fn complete(&mut self, wqe_counter: u16) -> Result<(), DriverError> {
        while let Some(s) = self.signalled.pop_front() {
            self.tail = s.end;
            if s.staging_end >= self.staging_at {
                self.staging_at = 0;
            }
            if s.wqe_index == wqe_counter {
                return Ok(());
            }
        }
        Err(DriverError::Stuck(format!(
            "a CQE for WQE {wqe_counter:#x}, which was not signalled"
        )))
    }

    /// Rings the doorbell and waits until every posted WQE has completed.
    pub fn flush(&mut self, dev: &Device) -> Result<(), DriverError> {
        if self.tail == self.pc {
            return Ok(());
        }
        if self.signalled.back().map(|s| s.end) != Some(self.pc) {
            self.nop(true)?;
        }
        self.ring(dev)?;
        if self.tail != self.pc {
            return Err(DriverError::Stuck(format!(
                "after a flush WQEs up to {:#x} are complete, {:#x} were posted",
                self.tail, self.pc
            )));
        }
        self.staging_at = 0;
        Ok(())
    }
}
