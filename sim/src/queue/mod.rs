//! The steering queue: an mlx5 send queue and completion queue in host memory, executed on the doorbell.
//!
//! The driver writes WQEs ([`ste_builder::wqe`]) into the send ring, a power-of-two ring
//! of 64-byte basic blocks (BBs) in [`HostMemory`], and rings the doorbell with its
//! producer counter: the number of BBs posted so far, mod 2^16 (what mlx5 drivers write
//! to the send doorbell record). The queue then consumes every posted WQE in order:
//!
//! - **NOP** does nothing; **RDMA WRITE** copies its pointer segments (resolved by lkey
//!   in the [`MemoryRegistry`]) or its inline bytes to ICM at the remote address;
//!   **RDMA READ** copies ICM into its pointer segments. ICM is registered zero-based,
//!   as rdma-core registers it: the remote address is a byte offset into the allocation
//!   the rkey names, and the whole span must lie inside it ([`Icm::resolve`]).
//! - A WQE whose control segment has `CQ_UPDATE` gets a requester CQE with its WQE
//!   counter (a driver typically asks for one every N WQEs, and a CQE then also
//!   completes every earlier WQE).
//! - A WQE that cannot execute is not executed at all (ICM untouched) and gets an error
//!   CQE, whatever its flags, with the syndrome hardware reports:
//!
//!   | cause | syndrome |
//!   |---|---|
//!   | DS count 0 or too small for the opcode's segments, a WQE running past the producer counter, a control segment whose WQE index is not its position or whose QPN is not the queue's (\*) | `LocalQpOp` |
//!   | an opcode other than NOP / WRITE / READ, inline data in a READ | `LocalQpOp` |
//!   | an inline segment longer than the WQE, data over 2^31 bytes | `LocalLength` |
//!   | an lkey not registered, a span outside its registration | `LocalProtection` |
//!   | an rkey that is not the target allocation's, an ICM span outside one live allocation | `RemoteAccess` |
//!
//!   (\*) The WQE-index and QPN checks are stricter than hardware is known to be; they
//!   are here to catch driver bookkeeping bugs early.
//!
//! - After an error the queue is in the error state for good (until dropped, which is
//!   destroying it): every WQE consumed later, whether already posted or posted after,
//!   is **not executed** and completes with its own `WrFlush` error CQE, signaled or not,
//!   as the InfiniBand error state prescribes.
//!
//! The completion ring is a power-of-two ring of 64-byte CQEs, also in host memory. The
//! CQE for counter `pi` goes to slot `pi mod size` with owner bit `(pi >> log_size) & 1`.
//! The driver must initialise the ring with [`ste_builder::wqe::init_cq_ring`] and
//! publishes its consumer index in a doorbell record (a big-endian word whose low 24 bits
//! are the index, as mlx5's CQ `SET_CI` record). A CQE that would overwrite one the
//! driver has not consumed is a **CQ overrun**: the CQE is lost, the CQ is broken (it
//! takes no more CQEs) and the queue enters the error state; the doorbell reports
//! [`QueueError::CqOverrun`], the simulator's form of the overrun event. (CQEs are
//! written when the doorbell's WQEs have run, so every WQE of the doorbell that overran
//! has executed; WQEs of later doorbells are flushed.)
//!
//! Fences need no work here: WQEs execute one after the other, each finished before the
//! next starts.
//!
//! Per doorbell, the posted BBs are copied out of the send ring under one lock (so a
//! READ may even land in the ring's own buffer), CQEs are written under one lock at the
//! end, and no WQE allocates once scratch buffers have grown to the largest doorbell.
//! The queue keeps the keys it resolved ([`RkeyCache`], [`LkeyCache`]) across doorbells:
//! a WQE whose keys it has seen takes no registry lock. The caches are dropped as soon
//! as anything is freed or deregistered, so every check above holds as if each WQE
//! looked its keys up afresh.
//!
//! Test hooks: [`SteeringQueue::set_wqe_hook`] runs a callback after every consumed WQE;
//! [`SteeringQueue::inject_error`] fails a chosen WQE with a chosen syndrome;
//! [`SteeringQueue::hold_completions`] holds CQEs back until released.

mod cq;
mod event;
mod exec;

pub use event::{IcmSpan, WqeEvent, WqeHook, WqeOutcome};

use ste_builder::wqe::{
    decode_pointer_rdma, decode_wqe, Cqe, CtrlFlags, CtrlSeg, ErrCqe, ErrSide, Opcode, PointerRdma,
    RdmaOp, ReqCqe, Syndrome, WqeBody, BB_SIZE, CQE_SIZE, MAX_QPN,
};

use crate::host_mem::{CachedSpan, HostMemError, HostMemory, LkeyCache, MemoryRegistry};
use crate::icm::{Icm, IcmError, RkeyCache};
use cq::CompletionRing;
use event::InjectedError;

/// The largest send ring, in log2 of BBs: the producer counter is 16 bits, and it must
/// tell a full ring from an empty one.
pub const MAX_LOG_SQ_BBS: u8 = 15;
/// Doorbells of at least this many BBs have their WRITEs' ICM lines touched before they
/// execute ([`SteeringQueue::warm`]): batches of queued updates (up to 128 WQEs by
/// default). A doorbell of one update has little to overlap. With 8 BBs as the bound,
/// an update carrying a growth step (a doorbell of its own) took ~8 µs longer, which
/// moved the insert p99.9 at 1 M rules from ~45 to ~53 µs (BENCHMARKS.md, seventh
/// round); with 64 it did not, and batches of queued deletes kept their gain.
const WARM_MIN_BBS: usize = 64;
/// The largest completion ring, in log2 of CQEs: the consumer index is 24 bits.
pub const MAX_LOG_CQ_SIZE: u8 = 23;

/// A ring in host memory: `2^log_entries` entries (BBs or CQEs, 64 bytes each) starting
/// at `offset` of `mem`.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// The buffer.
    pub mem: HostMemory,
    /// Where the ring starts in it.
    pub offset: usize,
    /// log2 of the number of 64-byte entries.
    pub log_entries: u8,
}

/// A doorbell record in host memory: a big-endian 32-bit word at `offset` of `mem`.
#[derive(Debug, Clone)]
pub struct DbRecord {
    /// The buffer.
    pub mem: HostMemory,
    /// Where the word is.
    pub offset: usize,
}

/// What a steering queue is made of.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The QP number (24 bits); every WQE's control segment must carry it.
    pub qpn: u32,
    /// The send ring (entries are BBs).
    pub sq: RingConfig,
    /// The completion ring (entries are CQEs).
    pub cq: RingConfig,
    /// The CQ doorbell record the driver writes its consumer index to.
    pub cq_dbrec: DbRecord,
}

/// Which ring a configuration error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ring {
    /// The send ring.
    Send,
    /// The completion ring.
    Completion,
    /// The CQ doorbell record.
    CqDoorbellRecord,
}

/// Why a queue could not be made, or a doorbell failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The QP number does not fit 24 bits.
    #[error("QP number {0:#x} does not fit 24 bits")]
    QpnTooLarge(u32),
    /// A ring larger than the counters allow.
    #[error("{ring:?} ring of 2^{log} entries exceeds 2^{max}")]
    RingTooLarge {
        /// Which ring.
        ring: Ring,
        /// Its log2 size.
        log: u8,
        /// The largest allowed.
        max: u8,
    },
    /// A ring or record not inside its buffer.
    #[error("{ring:?} does not fit its buffer: {source}")]
    OutOfBuffer {
        /// Which ring.
        ring: Ring,
        /// The failed check.
        source: HostMemError,
    },
    /// The producer counter is more than a ring ahead of what the queue consumed. The
    /// queue enters the error state; nothing is executed.
    #[error("producer counter {producer} is more than {ring_bbs} BBs ahead of consumer counter {consumer}")]
    ProducerBeyondRing {
        /// The producer counter rung.
        producer: u16,
        /// The queue's consumer counter.
        consumer: u16,
        /// The ring's size in BBs.
        ring_bbs: usize,
    },
    /// CQEs were lost because the completion ring was full (or broken by an earlier
    /// overrun). The queue is in the error state.
    #[error("completion queue overrun")]
    CqOverrun,
}

/// Why a queue is in the error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCause {
    /// A WQE failed with this syndrome.
    Wqe {
        /// Its position counter.
        wqe_counter: u16,
        /// The syndrome of its error CQE.
        syndrome: Syndrome,
    },
    /// A doorbell rang a producer counter more than a ring ahead.
    ProducerBeyondRing,
    /// The completion ring overran.
    CqOverrun,
}

/// The queue's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueState {
    /// Executing WQEs.
    Ready,
    /// Flushing every WQE; permanent.
    Error(ErrorCause),
}

/// What one doorbell did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DoorbellReport {
    /// WQEs executed successfully.
    pub completed: u32,
    /// WQEs that failed (at most one per doorbell: the queue then flushes).
    pub failed: u32,
    /// WQEs flushed.
    pub flushed: u32,
    /// CQEs written to the completion ring by this doorbell.
    pub cqes_written: u32,
    /// CQEs held back (see [`SteeringQueue::hold_completions`]) after this doorbell.
    pub cqes_held: u32,
}

/// One WQE's processing, before its event and completion are emitted.
struct Step {
    /// BBs consumed.
    bbs: usize,
    opcode: Opcode,
    icm: Option<IcmSpan>,
    /// Bytes moved, or the error and vendor syndrome.
    result: Result<u32, (Syndrome, u8)>,
    /// Whether a successful WQE asked for a CQE.
    signaled: bool,
    flushed: bool,
}

/// A steering send queue with its completion queue.
///
/// `Send`; the device owning it serialises doorbells (e.g. behind a mutex), as hardware
/// serialises a QP's doorbells.
pub struct SteeringQueue {
    qpn: u32,
    sq: RingConfig,
    /// The BB counter (mod 2^16) of the next WQE to consume.
    sq_ci: u16,
    cq: CompletionRing,
    state: QueueState,
    /// WQEs consumed so far.
    seq: u64,
    hold: bool,
    hook: Option<WqeHook>,
    fault: Option<InjectedError>,
    /// The posted BBs of the current doorbell, unwrapped.
    scratch: Vec<u8>,
    /// Resolved data segments of the current WQE.
    spans: Vec<CachedSpan>,
    /// The rkeys and lkeys WQEs named lately, resolved: most WQEs hit these instead of
    /// the device's registries.
    rkeys: RkeyCache,
    lkeys: LkeyCache,
}

impl std::fmt::Debug for SteeringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteeringQueue")
            .field("qpn", &self.qpn)
            .field("state", &self.state)
            .field("sq_consumer", &self.sq_ci)
            .field("cq_produced", &self.cq.produced())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn check_ring(ring: Ring, cfg: &RingConfig, max: u8) -> Result<(), QueueError> {
    if cfg.log_entries > max {
        return Err(QueueError::RingTooLarge {
            ring,
            log: cfg.log_entries,
            max,
        });
    }
    // 64-byte entries either way (a BB or a CQE).
    cfg.mem
        .check(cfg.offset, BB_SIZE << cfg.log_entries)
        .map_err(|source| QueueError::OutOfBuffer { ring, source })
}

impl SteeringQueue {
    /// A queue in the ready state with empty rings. The rings' contents are the
    /// driver's: the completion ring must be initialised by it.
    pub fn new(config: QueueConfig) -> Result<SteeringQueue, QueueError> {
        if config.qpn > MAX_QPN {
            return Err(QueueError::QpnTooLarge(config.qpn));
        }
        const _: () = assert!(BB_SIZE == CQE_SIZE);
        check_ring(Ring::Send, &config.sq, MAX_LOG_SQ_BBS)?;
        check_ring(Ring::Completion, &config.cq, MAX_LOG_CQ_SIZE)?;
        config
            .cq_dbrec
            .mem
            .check(config.cq_dbrec.offset, 4)
            .map_err(|source| QueueError::OutOfBuffer {
                ring: Ring::CqDoorbellRecord,
                source,
            })?;
        let cq = CompletionRing::new(
            config.cq.mem,
            config.cq.offset,
            config.cq.log_entries,
            config.cq_dbrec,
        );
        Ok(SteeringQueue {
            qpn: config.qpn,
            sq: config.sq,
            sq_ci: 0,
            cq,
            state: QueueState::Ready,
            seq: 0,
            hold: false,
            hook: None,
            fault: None,
            scratch: Vec::new(),
            spans: Vec::new(),
            rkeys: RkeyCache::new(),
            lkeys: LkeyCache::new(),
        })
    }

    /// The QP number.
    pub fn qpn(&self) -> u32 {
        self.qpn
    }

    /// Ready, or in error and why.
    pub fn state(&self) -> QueueState {
        self.state
    }

    /// The BB counter (mod 2^16) up to which WQEs have been consumed.
    pub fn sq_consumer(&self) -> u16 {
        self.sq_ci
    }

    /// CQEs written to the completion ring so far.
    pub fn cq_produced(&self) -> u32 {
        self.cq.produced()
    }

    /// WQEs consumed so far (the next WQE's [`WqeEvent::seq`]).
    pub fn wqes_consumed(&self) -> u64 {
        self.seq
    }

    /// Installs (or with `None` removes) the callback run after each consumed WQE.
    pub fn set_wqe_hook(&mut self, hook: Option<WqeHook>) {
        self.hook = hook;
    }

    /// Makes the `nth` WQE consumed from now on (0: the next one) fail without being
    /// executed, with an error CQE carrying `syndrome` and `vendor_syndrome`; the queue
    /// then enters the error state as for any error. Replaces an earlier injection.
    pub fn inject_error(&mut self, nth: u64, syndrome: Syndrome, vendor_syndrome: u8) {
        self.fault = Some(InjectedError {
            seq: self.seq.saturating_add(nth),
            syndrome,
            vendor_syndrome,
        });
    }

    /// Cancels an injected error that has not fired.
    pub fn clear_injected_error(&mut self) {
        self.fault = None;
    }

    /// Holds CQEs back from now on: WQEs still execute, but their CQEs are kept in order
    /// until [`release_completions`](Self::release_completions) or
    /// [`resume_completions`](Self::resume_completions).
    pub fn hold_completions(&mut self) {
        self.hold = true;
    }

    /// CQEs held back.
    pub fn held_completions(&self) -> usize {
        self.cq.pending()
    }

    /// Writes the `n` oldest held CQEs (fewer if fewer are held) and keeps holding later
    /// ones. Returns how many were written.
    pub fn release_completions(&mut self, n: usize) -> Result<usize, QueueError> {
        self.flush_cq(n).map(|w| w as usize)
    }

    /// Stops holding CQEs and writes every held one. Returns how many were written.
    pub fn resume_completions(&mut self) -> Result<usize, QueueError> {
        self.hold = false;
        self.flush_cq(usize::MAX).map(|w| w as usize)
    }

    fn flush_cq(&mut self, limit: usize) -> Result<u32, QueueError> {
        match self.cq.flush(limit) {
            Ok(n) => Ok(n as u32),
            Err(_) => {
                self.enter_error(ErrorCause::CqOverrun);
                Err(QueueError::CqOverrun)
            }
        }
    }

    /// Keeps the first cause: the state records why the queue broke.
    fn enter_error(&mut self, cause: ErrorCause) {
        if self.state == QueueState::Ready {
            self.state = QueueState::Error(cause);
        }
    }

    /// The doorbell: the driver has posted WQEs up to BB counter `producer` (mod 2^16).
    /// Consumes every WQE from the queue's consumer counter up to it, executing against
    /// `icm` with local memory resolved in `mrs`, runs the hook after each, then writes
    /// the CQEs due (unless held).
    pub fn doorbell(
        &mut self,
        producer: u16,
        icm: &Icm,
        mrs: &MemoryRegistry,
    ) -> Result<DoorbellReport, QueueError> {
        let ring_bbs = 1usize << self.sq.log_entries;
        let posted = producer.wrapping_sub(self.sq_ci) as usize;
        if posted > ring_bbs {
            self.enter_error(ErrorCause::ProducerBeyondRing);
            return Err(QueueError::ProducerBeyondRing {
                producer,
                consumer: self.sq_ci,
                ring_bbs,
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        self.snapshot(posted, &mut scratch);

        if posted >= WARM_MIN_BBS && self.state == QueueState::Ready {
            self.warm(&scratch[..posted * BB_SIZE], icm);
        }

        let mut report = DoorbellReport::default();
        let mut at = 0;
        while at < posted {
            let counter = self.sq_ci.wrapping_add(at as u16);
            let bytes = &scratch[at * BB_SIZE..posted * BB_SIZE];
            let step = match self.state {
                QueueState::Ready => self.process(bytes, counter, icm, mrs),
                QueueState::Error(_) => flush_step(bytes),
            };
            self.finish(&step, counter, &mut report);
            at += step.bbs;
        }
        self.scratch = scratch;
        self.sq_ci = producer;

        let written = if self.hold {
            self.flush_cq(0)
        } else {
            self.flush_cq(usize::MAX)
        };
        report.cqes_held = self.cq.pending() as u32;
        report.cqes_written = written?;
        Ok(report)
    }

    /// Touches the first ICM byte each RDMA WRITE among `bbs` will write. Executing the
    /// WQEs one after the other, every write of a line that is not in the CPU's cache
    /// waits for it in turn; these loads are independent of each other, so the CPU
    /// fetches them all at once and the execution that follows finds them cached. Only
    /// a speed measure of the model: nothing is checked or changed here (a WQE that
    /// does not decode, or whose target does not resolve, is simply skipped and fails
    /// in execution as it would have).
    fn warm(&mut self, bbs: &[u8], icm: &Icm) {
        let mut seen = 0u8;
        for bb in bbs.chunks_exact(BB_SIZE) {
            let Some(wqe) = decode_pointer_rdma(bb) else {
                continue;
            };
            if wqe.op != RdmaOp::Write {
                continue;
            }
            let (rkey, raddr) = (wqe.remote.rkey, wqe.remote.raddr);
            if let Ok(place) = icm.resolve_cached(&mut self.rkeys, rkey, raddr, 1) {
                seen ^= icm.touch_at(place);
            }
        }
        // Keeps the loads from being optimised away.
        std::hint::black_box(seen);
    }

    /// Copies `posted` BBs from the consumer counter on out of the send ring, in counter
    /// order, so that a WQE wrapping the ring's end is contiguous.
    fn snapshot(&self, posted: usize, out: &mut Vec<u8>) {
        let ring_bbs = 1usize << self.sq.log_entries;
        let first = self.sq_ci as usize & (ring_bbs - 1);
        let before_wrap = posted.min(ring_bbs - first);
        let mem = self.sq.mem.lock_read();
        // `new` checked that the ring lies in its buffer, and buffers never shrink.
        let ring = &mem[self.sq.offset..self.sq.offset + ring_bbs * BB_SIZE];
        // Appending (rather than resizing and overwriting) spares zeroing the buffer.
        out.clear();
        out.extend_from_slice(&ring[first * BB_SIZE..(first + before_wrap) * BB_SIZE]);
        out.extend_from_slice(&ring[..(posted - before_wrap) * BB_SIZE]);
    }

    /// Validates and executes the WQE at the start of `bytes` (which run to the producer
    /// counter). Nothing is emitted here.
    fn process(&mut self, bytes: &[u8], counter: u16, icm: &Icm, mrs: &MemoryRegistry) -> Step {
        if let Some(wqe) = decode_pointer_rdma(bytes) {
            return self.process_pointer(wqe, counter, icm, mrs);
        }
        // `bytes` holds at least one BB, so the control segment always decodes; the
        // error arm only keeps this free of panics.
        let ctrl = match CtrlSeg::decode(bytes) {
            Ok(ctrl) => ctrl,
            Err(e) => return fail_step(1, Opcode::Unknown(0xff), exec::syndrome_of(&e)),
        };
        let avail = bytes.len() / BB_SIZE;
        let bbs = ctrl.bbs().min(avail);
        let mut step = Step {
            bbs,
            opcode: ctrl.opcode,
            icm: None,
            result: Ok(0),
            signaled: ctrl.flags.contains(CtrlFlags::CQ_UPDATE),
            flushed: false,
        };
        let wqe = decode_wqe(&bytes[..bbs * BB_SIZE]);
        let mut target = None;
        if let Ok(ste_builder::wqe::Wqe {
            body: WqeBody::Rdma { remote, data, .. },
            ..
        }) = &wqe
        {
            // Report the ICM address the offset resolves to; an unresolvable one (the
            // WQE will fail) is reported as given.
            let len = data.total_len();
            let place = icm.resolve_cached(&mut self.rkeys, remote.rkey, remote.raddr, len.max(1));
            step.icm = Some(IcmSpan {
                addr: place.as_ref().map_or(remote.raddr, |p| p.addr),
                len,
            });
            target = Some(place);
        }
        if let Some(fault) = self.fault.filter(|f| f.seq == self.seq) {
            self.fault = None;
            step.result = Err((fault.syndrome, fault.vendor_syndrome));
            return step;
        }
        let checked = if ctrl.bbs() > avail || ctrl.wqe_index != counter || ctrl.qpn != self.qpn {
            // Running past the producer counter, or not the WQE the queue expects here.
            Err(Syndrome::LocalQpOp)
        } else {
            wqe.map_err(|e| exec::syndrome_of(&e))
        };
        step.result = checked
            .and_then(|wqe| match wqe.body {
                WqeBody::Nop => Ok(0),
                WqeBody::Unknown => Err(Syndrome::LocalQpOp),
                WqeBody::Rdma { op, data, .. } => {
                    let local = exec::Local {
                        mrs,
                        lkeys: &mut self.lkeys,
                        spans: &mut self.spans,
                    };
                    // Resolved above for every decoded RDMA WQE.
                    let target = target.unwrap_or(Err(IcmError::OutOfBounds { addr: 0, len: 0 }));
                    exec::rdma(op, target, data, icm, local)
                }
            })
            .map_err(|s| (s, 0));
        step
    }

    /// [`process`](Self::process) for the shape steering drivers post (one pointer
    /// segment, one BB), with the same checks in the same order and without walking the
    /// data segments: `decode_wqe` would accept the WQE, so only the position, QPN,
    /// key and bounds checks remain.
    fn process_pointer(
        &mut self,
        wqe: PointerRdma,
        counter: u16,
        icm: &Icm,
        mrs: &MemoryRegistry,
    ) -> Step {
        // A pointer segment covers at least one byte.
        let len = wqe.seg.len();
        let (rkey, raddr) = (wqe.remote.rkey, wqe.remote.raddr);
        let target = icm.resolve_cached(&mut self.rkeys, rkey, raddr, len);
        let mut step = Step {
            // DS 3: one BB, which the doorbell posted.
            bbs: 1,
            opcode: wqe.ctrl.opcode,
            icm: Some(IcmSpan {
                addr: target.as_ref().map_or(raddr, |p| p.addr),
                len,
            }),
            result: Ok(0),
            signaled: wqe.ctrl.flags.contains(CtrlFlags::CQ_UPDATE),
            flushed: false,
        };
        if let Some(fault) = self.fault.filter(|f| f.seq == self.seq) {
            self.fault = None;
            step.result = Err((fault.syndrome, fault.vendor_syndrome));
            return step;
        }
        step.result = if wqe.ctrl.wqe_index != counter || wqe.ctrl.qpn != self.qpn {
            Err((Syndrome::LocalQpOp, 0))
        } else {
            let local = exec::Local {
                mrs,
                lkeys: &mut self.lkeys,
                spans: &mut self.spans,
            };
            exec::rdma_pointer(wqe.op, target, wqe.seg, icm, local).map_err(|s| (s, 0))
        };
        step
    }

    /// Emits a step: the hook, the CQE, the state change, the counts.
    fn finish(&mut self, step: &Step, counter: u16, report: &mut DoorbellReport) {
        let seq = self.seq;
        self.seq += 1;
        match step.result {
            Err((syndrome, vendor_syndrome)) => {
                self.cq.push(Cqe::Err(ErrCqe {
                    side: ErrSide::Requester,
                    wqe_counter: counter,
                    syndrome,
                    vendor_syndrome,
                    opcode: step.opcode,
                    qpn: self.qpn,
                    srqn: 0,
                }));
                if step.flushed {
                    report.flushed += 1;
                } else {
                    report.failed += 1;
                    self.enter_error(ErrorCause::Wqe {
                        wqe_counter: counter,
                        syndrome,
                    });
                }
            }
            Ok(byte_cnt) => {
                report.completed += 1;
                if step.signaled {
                    self.cq.push(Cqe::Req(ReqCqe {
                        wqe_counter: counter,
                        byte_cnt,
                        opcode: step.opcode,
                        qpn: self.qpn,
                    }));
                }
            }
        }
        // The event is built only for a hook: most queues have none.
        if let Some(hook) = self.hook.as_mut() {
            hook(&WqeEvent {
                seq,
                wqe_counter: counter,
                opcode: step.opcode,
                icm: step.icm,
                outcome: step.outcome(),
            });
        }
    }
}

impl Step {
    /// How the hook sees the step.
    fn outcome(&self) -> WqeOutcome {
        match self.result {
            _ if self.flushed => WqeOutcome::Flushed,
            Ok(byte_cnt) => WqeOutcome::Completed { byte_cnt },
            Err((syndrome, _)) => WqeOutcome::Failed(syndrome),
        }
    }
}

fn fail_step(bbs: usize, opcode: Opcode, syndrome: Syndrome) -> Step {
    Step {
        bbs,
        opcode,
        icm: None,
        result: Err((syndrome, 0)),
        signaled: false,
        flushed: false,
    }
}

/// A WQE consumed in the error state: sized from its DS count where that is sane (one BB
/// otherwise) and completed with a flush error.
fn flush_step(bytes: &[u8]) -> Step {
    let avail = bytes.len() / BB_SIZE;
    let (bbs, opcode) = match CtrlSeg::decode(bytes) {
        Ok(ctrl) => (ctrl.bbs().min(avail), ctrl.opcode),
        Err(_) => (1, Opcode::Unknown(0xff)),
    };
    Step {
        flushed: true,
        ..fail_step(bbs, opcode, Syndrome::WrFlush)
    }
}

#[cfg(test)]
mod tests;
