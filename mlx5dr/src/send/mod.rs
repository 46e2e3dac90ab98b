//! The send engine: a steering send ring that writes bytes into ICM through the device's
//! steering queue.
//!
//! [`SendRing::write`] copies the bytes into a registered staging buffer and posts two
//! WQEs, as rdma-core does: an RDMA WRITE of the staged bytes to the ICM address, then
//! an RDMA READ of the same span into a scratch ("sync") buffer. The READ completes
//! only once the WRITE has landed, so a completion for it means the bytes are in ICM.
//! [`SendRing::flush`] rings the doorbell for everything posted and waits until every
//! WQE has completed.
//!
//! - **Remote addresses**: SW-ICM is registered zero-based (rdma-core registers it
//!   with `IBV_ACCESS_ZERO_BASED`), so the remote address a WQE carries is the byte
//!   offset into the ICM region its rkey names, not the ICM address. A write names its
//!   target as the [`IcmRegion`] and an ICM address inside it; the ring checks that the
//!   whole span lies in the region and posts `icm_addr - region.addr` under
//!   `region.rkey`. An address aimed with the wrong region lies outside it and is
//!   refused, so no WQE carries an absolute address or another region's offset.
//!   Errors still name the ICM address.
//!
//! ```text
//!   staging (registered)          send ring (2^n BBs, one WQE each)           ICM
//!   [..bytes of write k..] <--- WRITE k: raddr=off, rkey, data=(lkey,iova,len) ---> region
//!                               READ  k: raddr=off, rkey, data=(sync lkey,len) <--- region
//!                               (off = icm_addr - region.addr)
//! ```
//!
//! - **Batching**: WQEs accumulate and one doorbell posts them all: at
//!   [`SendRing::flush`], when [`SendConfig::doorbell_batch`] WQEs are waiting, or when
//!   the ring is full. The device reads nothing before the doorbell, so the ring also
//!   batches its copies into device memory: it encodes WQEs into a driver-side shadow of
//!   the send ring and gathers small writes' data, and copies both just before the
//!   doorbell (one copy for the batch's WQEs, one per run of consecutive staging spans)
//!   instead of two copies through the device seam per write. A write that a doorbell
//!   follows at once, with nothing else waiting, is copied straight away (gathering it
//!   would save nothing).
//! - **Completions**: every [`SendConfig::signal_every`]-th WQE asks for a CQE, and so
//!   does the last WQE of every doorbell, so everything posted completes visibly: a
//!   READ known to end a doorbell (one that fills the batch, or one posted with
//!   [`SendRing::write_last`]) asks when posted; otherwise the flags byte of the last
//!   WQE's control segment is set before the doorbell makes it visible. A CQE
//!   completes its WQE and every earlier one, which frees their send-ring slots and
//!   staging bytes.
//! - **Ring full**: a write that finds no room in the send ring or the staging buffer
//!   rings the doorbell and polls the completion ring until room appears (or
//!   [`SendConfig::timeout`] passes).
//! - **Errors**: an error CQE becomes [`SendError::WqeFailed`], naming the write, the
//!   WQE and the syndrome. The queue is then in the error state, so the ring is
//!   unusable from then on and says so ([`SendError::Broken`]).
//!
//! - **Without waiting**: [`SendRing::post`] rings the doorbell (or not) and consumes
//!   the completions already there, and [`SendRing::poll`] only consumes them; then
//!   [`SendRing::confirmation`] says of a write ([`WriteTag`]: the ring instance and its
//!   [`WriteId`]) whether it landed, is in flight or failed. A fresh ring that replaces a
//!   broken one ([`SendRing::succeed`]) answers for the broken one's writes too.
//!
//! - **Tap**: a [`WriteTap`] set with [`SendRing::set_tap`] sees every write the ring
//!   accepts (its region, ICM address and bytes) just before it is posted, in posting
//!   order; the recorder of [`crate::record`] is one. Without a tap the cost is one
//!   branch per write.
//!
//! The completion ring has at least as many entries as the send ring has WQE slots, and
//! a device writes at most one CQE per WQE, for a WQE whose slot is not reused before
//! its CQE is consumed, so the completion ring cannot overrun. The consumer index is
//! published in the CQ doorbell record only when a doorbell could otherwise let the
//! device see the ring as full (`CqReader::must_publish`), not after every reap. Nothing
//! on the write path allocates: staging, the pending-write records, the send-ring
//! shadow and the gather buffer are sized at creation.

mod cq;
mod encode;
mod error;
mod gather;
mod staging;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ste_builder::wqe::{
    Cqe, CqeOpcode, CtrlFlags, ErrCqe, RaddrSeg, RdmaOp, BB_SIZE, CTRL_SEG_SIZE, DATA_SEG_SIZE,
    MAX_MESSAGE_LEN, RADDR_SEG_SIZE,
};

use crate::device::{Device, DmaBuffer, IcmRegion, QueueSpec, SteeringQueue};
use cq::CqReader;
use encode::{Half, Local, WqeTemplate, CTRL_FLAGS_BYTE};
pub use error::{Confirmation, SendError, WriteFate, WriteId, WriteTag};
use gather::Gather;
use staging::{Staging, ALIGN};

/// The largest send ring (log2 of BBs): the 16-bit producer counter must tell a full
/// ring from an empty one.
pub const MAX_LOG_SQ_BBS: u8 = 15;

// Every WQE this ring posts (control, remote address, one pointer segment) fits in one
// basic block, so a WQE never wraps around the ring's end.
const _: () = assert!(CTRL_SEG_SIZE + RADDR_SEG_SIZE + DATA_SEG_SIZE <= BB_SIZE);

/// WQEs each write posts: the WRITE and the READ that fences it. Only writes post, so
/// the producer counter stays even and a pair's two slots are adjacent (the ring has
/// an even number of slots), never split by the ring's end.
const WQES_PER_WRITE: u16 = 2;

/// Bytes of write data gathered before they are copied into the staging buffer (see
/// [`gather`]): a doorbell batch of small writes.
const STAGE_GATHER: usize = 4096;

/// The largest write whose data is gathered. Gathering saves a call through the device
/// seam but copies the bytes twice, which costs more than the call beyond a few
/// hundred bytes.
const GATHER_MAX_WRITE: usize = 256;

/// How a [`SendRing`] is sized and paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendConfig {
    /// The send ring has `2^log_sq_bbs` WQE slots (`1..=15`); the completion ring gets
    /// at least as many entries.
    pub log_sq_bbs: u8,
    /// Every `signal_every`-th WQE asks for a completion (at least 1; the last WQE of
    /// every doorbell asks for one anyway).
    pub signal_every: u16,
    /// Ring the doorbell once this many WQEs wait, even without a flush, so that the
    /// device works while the driver goes on writing (at least 1; a full ring is rung
    /// anyway).
    pub doorbell_batch: u16,
    /// Bytes of staging buffer: a multiple of 64, at least `max_write` rounded up to 64.
    pub staging_size: usize,
    /// The largest single write, in bytes (`1..2^31`).
    pub max_write: usize,
    /// How long a flush, or a write waiting for room, waits for completions.
    pub timeout: Duration,
}

impl Default for SendConfig {
    /// rdma-core's sizing: 128 write requests per ring, a completion every 8, and
    /// staging for 8 writes of 1024 STEs (64 KiB each).
    fn default() -> Self {
        SendConfig {
            log_sq_bbs: 8,
            signal_every: 8,
            doorbell_batch: 128,
            staging_size: 512 << 10,
            max_write: 64 << 10,
            timeout: Duration::from_secs(2),
        }
    }
}

impl SendConfig {
    fn validate(&self) -> Result<(), SendError> {
        if self.log_sq_bbs == 0 || self.log_sq_bbs > MAX_LOG_SQ_BBS {
            return Err(SendError::Config("log_sq_bbs must be in 1..=15"));
        }
        if self.signal_every == 0 || self.doorbell_batch == 0 {
            return Err(SendError::Config(
                "signal_every and doorbell_batch must be at least 1",
            ));
        }
        if self.max_write == 0 || self.max_write as u64 >= MAX_MESSAGE_LEN {
            return Err(SendError::Config("max_write must be in 1..2^31"));
        }
        if self.staging_size % ALIGN != 0
            || self.staging_size < self.max_write.div_ceil(ALIGN) * ALIGN
        {
            return Err(SendError::Config(
                "staging_size must be a multiple of 64 holding at least one max_write",
            ));
        }
        Ok(())
    }
}

/// Counters of a ring's work since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SendStats {
    /// Writes accepted.
    pub writes: u64,
    /// Bytes written.
    pub bytes: u64,
    /// WQEs posted.
    pub wqes: u64,
    /// WQEs that asked for a completion.
    pub signaled: u64,
    /// Doorbells rung.
    pub doorbells: u64,
    /// CQEs consumed.
    pub cqes: u64,
    /// Writes that found the ring (or staging) full and waited for completions.
    pub full_waits: u64,
}

/// An observer of a ring's writes: sees each write (the ICM region it goes to, its ICM
/// address and its bytes) after the ring has checked it and just before its WQEs are
/// posted, in posting order. It runs under the ring's lock, so it must be quick and
/// must not touch the ring. A write whose posting then fails (the ring breaks) has
/// been seen all the same.
pub trait WriteTap: Send + Sync {
    /// One write of `data` to `icm_addr`, which lies in `region`.
    fn write(&self, region: &IcmRegion, icm_addr: u64, data: &[u8]);
}

/// What the ring remembers about a write until its WQEs complete. The WQEs of a write
/// are a pair, the WRITE at an even counter `c` and the READ at `c + 1`, and share one
/// element, `(c & mask) / 2`: the counter's low bit tells which of the two a CQE names.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    /// The write.
    write: u64,
    /// The ICM address written (errors name it).
    icm_addr: u64,
    len: u32,
    /// Staging released when either WQE completes (once the WRITE has, the device has
    /// read the data).
    stage_end: u64,
    /// The READ asks for a CQE. (Only a doorbell's last WQE, a READ, is ever looked up
    /// for this, so the WRITE's flag is not kept.)
    read_signaled: bool,
}

/// Waiting for completions with a deadline: spin briefly, then yield.
struct Waiter {
    timeout: Duration,
    deadline: Option<Instant>,
    idle_rounds: u32,
}

impl Waiter {
    fn new(timeout: Duration) -> Waiter {
        Waiter {
            timeout,
            deadline: None,
            idle_rounds: 0,
        }
    }

    /// One round without progress; fails once the deadline has passed.
    fn idle(&mut self, outstanding: u16) -> Result<(), SendError> {
        let now = Instant::now();
        let deadline = *self.deadline.get_or_insert(now + self.timeout);
        if now >= deadline {
            return Err(SendError::Timeout {
                timeout: self.timeout,
                outstanding: outstanding.into(),
            });
        }
        self.idle_rounds += 1;
        if self.idle_rounds < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        Ok(())
    }
}

/// A steering send ring: one steering queue with its staging and sync buffers.
///
/// Used by one thread at a time (`&mut self`); a domain that writes from several
/// threads keeps several rings. Dropping the ring waits (up to the timeout) for what
/// it posted, then destroys the queue and frees the buffers.
pub struct SendRing {
    // Dropped first: the queue must be gone before the memory its WQEs point at.
    queue: Box<dyn SteeringQueue>,
    staging_buf: Box<dyn DmaBuffer>,
    /// Where the fencing READs land; held only to keep the registration alive (the
    /// WQEs carry its key and address, copied at creation).
    _sync_buf: Box<dyn DmaBuffer>,
    cfg: SendConfig,
    qpn: u32,
    /// The fixed words of every WQE this ring posts.
    template: WqeTemplate,
    /// The WQEs of writes that wait for a later doorbell, one element per pair of
    /// slots: encoded here and copied to the send ring just before that doorbell
    /// ([`SendRing::kick`]), one copy for all. A write copied straight through leaves
    /// its pair's element stale; it is never copied.
    sq_shadow: Vec<[u8; 2 * BB_SIZE]>,
    /// The counter of the first WQE not yet copied to the send ring (`rung..=sq_head`).
    sq_copied: u16,
    /// Write data on its way to the staging buffer, which it reaches before the
    /// doorbell that posts its WQEs.
    gather: Gather,
    /// The registrations' keys and addresses, fixed for the buffers' life.
    staging_lkey: u32,
    staging_iova: u64,
    sync_lkey: u32,
    sync_iova: u64,
    /// Ring slots minus one.
    mask: u16,
    /// The counter of the next WQE to post.
    sq_head: u16,
    /// The counter of the oldest WQE not yet completed.
    sq_tail: u16,
    /// `sq_head` at the last doorbell.
    rung: u16,
    /// WQEs posted since the last one that asked for a CQE.
    since_signal: u16,
    /// One element per pair of slots (see [`Pending`]).
    pending: Vec<Pending>,
    staging: Staging,
    cq: CqReader,
    next_write: u64,
    /// Writes numbered below this are known to be in ICM (a completion for their READ,
    /// or for a later WQE, was consumed).
    landed: u64,
    /// This ring instance's number, unique in the process (see [`WriteTag`]).
    gen: u64,
    /// The instances this ring replaced, oldest first (see [`SendRing::succeed`]).
    retired: Vec<Retired>,
    broken: Option<SendError>,
    stats: SendStats,
    tap: Option<Arc<dyn WriteTap>>,
}

/// What a replaced (broken) ring instance still answers for: which of its writes landed.
#[derive(Debug, Clone)]
struct Retired {
    gen: u64,
    /// Writes below this were known to be in ICM when it was replaced.
    landed: u64,
    /// The failure that broke it.
    failure: SendError,
}

/// Instance numbers of rings, so a [`WriteTag`] never names another instance's write.
static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for SendRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRing")
            .field("qpn", &self.qpn)
            .field("sq_head", &self.sq_head)
            .field("sq_tail", &self.sq_tail)
            .field("rung", &self.rung)
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .field("tap", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

impl SendRing {
    /// Creates the steering queue and the buffers on `dev`.
    pub fn new(dev: &dyn Device, cfg: SendConfig) -> Result<SendRing, SendError> {
        cfg.validate()?;
        let queue = dev.create_queue(QueueSpec {
            log_sq_bbs: cfg.log_sq_bbs,
            log_cq_entries: cfg.log_sq_bbs,
        })?;
        // A backend may round the rings up; the ring works with what it got, as long as
        // every WQE slot can have its CQE.
        let spec = queue.spec();
        if spec.log_sq_bbs == 0
            || spec.log_sq_bbs > MAX_LOG_SQ_BBS
            || spec.log_cq_entries < spec.log_sq_bbs
        {
            return Err(SendError::Config(
                "the device made a send ring of an unusable size or a smaller completion ring",
            ));
        }
        let staging_buf = dev.alloc_dma(cfg.staging_size)?;
        let sync_buf = dev.alloc_dma(cfg.max_write.div_ceil(ALIGN) * ALIGN)?;
        let cq = CqReader::new(queue.cq(), queue.cq_dbrec(), spec.log_cq_entries)?;
        let slots = 1usize << spec.log_sq_bbs;
        // Copies into them are deferred to the doorbell, so a buffer too small must be
        // refused here, not by a later doorbell.
        if queue.sq().len() < slots * BB_SIZE || staging_buf.len() < cfg.staging_size {
            return Err(SendError::Config(
                "the device made a send ring or staging buffer smaller than asked",
            ));
        }
        let qpn = queue.qpn();
        Ok(SendRing {
            qpn,
            template: WqeTemplate::new(qpn)?,
            sq_shadow: vec![[0; 2 * BB_SIZE]; slots / usize::from(WQES_PER_WRITE)],
            sq_copied: 0,
            gather: Gather::new(STAGE_GATHER.min(cfg.staging_size)),
            staging_lkey: staging_buf.lkey(),
            staging_iova: staging_buf.iova(),
            sync_lkey: sync_buf.lkey(),
            sync_iova: sync_buf.iova(),
            queue,
            staging_buf,
            _sync_buf: sync_buf,
            mask: (slots - 1) as u16,
            sq_head: 0,
            sq_tail: 0,
            rung: 0,
            since_signal: 0,
            pending: vec![Pending::default(); slots / usize::from(WQES_PER_WRITE)],
            staging: Staging::new(cfg.staging_size),
            cq,
            next_write: 0,
            landed: 0,
            gen: NEXT_GEN.fetch_add(1, Ordering::Relaxed),
            retired: Vec::new(),
            broken: None,
            stats: SendStats::default(),
            tap: None,
            cfg,
        })
    }

    /// Sets (or with `None` removes) the observer of this ring's writes; returns the
    /// one it replaces.
    pub fn set_tap(&mut self, tap: Option<Arc<dyn WriteTap>>) -> Option<Arc<dyn WriteTap>> {
        std::mem::replace(&mut self.tap, tap)
    }

    /// The steering queue's QP number.
    pub fn qpn(&self) -> u32 {
        self.qpn
    }

    /// The configuration.
    pub fn config(&self) -> &SendConfig {
        &self.cfg
    }

    /// Counters since creation.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// WQEs posted and not yet completed.
    pub fn outstanding(&self) -> u16 {
        self.sq_head.wrapping_sub(self.sq_tail)
    }

    /// The error that made the ring unusable, if one did.
    pub fn failure(&self) -> Option<&SendError> {
        self.broken.as_ref()
    }

    /// The tag of the write this ring accepted as `id`: the ring instance and the write.
    pub fn tag(&self, id: WriteId) -> WriteTag {
        WriteTag { gen: self.gen, id }
    }

    /// What is known now about the write tagged `tag`, a write of this ring or of an
    /// instance it replaced ([`SendRing::succeed`]). Reads only what the ring has
    /// consumed: [`SendRing::post`] or [`SendRing::poll`] consume new completions.
    pub fn confirmation(&self, tag: WriteTag) -> Confirmation {
        let (landed, failure) = if tag.gen == self.gen {
            (self.landed, self.broken.as_ref())
        } else {
            match self.retired.iter().find(|r| r.gen == tag.gen) {
                Some(r) => (r.landed, Some(&r.failure)),
                None => return Confirmation::Failed(SendError::Gone),
            }
        };
        if tag.id.0 < landed {
            return Confirmation::Landed;
        }
        match failure {
            None => Confirmation::InFlight,
            Some(e) => match e.fate_of(tag.id) {
                WriteFate::Landed => Confirmation::Landed,
                WriteFate::NotLanded | WriteFate::Unknown => Confirmation::Failed(e.clone()),
            },
        }
    }

    /// Makes this (fresh) ring the successor of `old`, a broken ring it replaces: it
    /// answers [`SendRing::confirmation`] for `old`'s writes, and for those of the
    /// instances `old` replaced.
    pub fn succeed(&mut self, old: &mut SendRing) {
        self.retired = std::mem::take(&mut old.retired);
        if let Some(failure) = old.broken.clone() {
            self.retired.push(Retired {
                gen: old.gen,
                landed: old.landed,
                failure,
            });
        }
    }

    /// Queues a write of `data` to ICM address `icm_addr`, which lies in `region` (the
    /// ICM allocation it belongs to, whose rkey and base make the WQE's remote address):
    /// the bytes are copied, so `data` may be reused at once. The write reaches ICM after
    /// a later doorbell; [`SendRing::flush`] waits for it. Returns the write's number,
    /// which an error about it will name.
    ///
    /// A span not wholly inside `region` is refused with [`SendError::OutsideRegion`]
    /// before anything is posted.
    pub fn write(
        &mut self,
        region: &IcmRegion,
        icm_addr: u64,
        data: &[u8],
    ) -> Result<WriteId, SendError> {
        self.write_inner(region, icm_addr, data, false)
    }

    /// [`SendRing::write`] for a write the caller will [`SendRing::flush`] right after
    /// (the last write of an update): its READ asks for a CQE when posted, since it will
    /// end the flush's doorbell anyway, so the flush need not patch it. Otherwise the
    /// same as `write`; if more writes follow after all, that READ's CQE is merely an
    /// extra one.
    pub fn write_last(
        &mut self,
        region: &IcmRegion,
        icm_addr: u64,
        data: &[u8],
    ) -> Result<WriteId, SendError> {
        self.write_inner(region, icm_addr, data, true)
    }

    fn write_inner(
        &mut self,
        region: &IcmRegion,
        icm_addr: u64,
        data: &[u8],
        last: bool,
    ) -> Result<WriteId, SendError> {
        self.usable()?;
        if data.is_empty() || data.len() > self.cfg.max_write {
            return Err(SendError::BadLength {
                len: data.len(),
                max: self.cfg.max_write,
            });
        }
        let remote = remote_of(region, icm_addr, data.len())?;
        if let Some(tap) = &self.tap {
            tap.write(region, icm_addr, data);
        }
        let r = self.try_write(remote, icm_addr, data, last);
        r.map_err(|e| self.fail(e))
    }

    /// Posts everything queued and waits until all of it has completed: on `Ok`, every
    /// write accepted so far is in ICM.
    pub fn flush(&mut self) -> Result<(), SendError> {
        self.usable()?;
        let r = self.try_flush();
        r.map_err(|e| self.fail(e))
    }

    /// Ends an update without waiting for it: with `doorbell`, rings the doorbell for
    /// everything posted since the last one (as `flush` would); without, leaves it
    /// queued for a later doorbell (a full batch, a flush, a full ring). Consumes no
    /// completion ([`SendRing::poll`] does; reading the completion ring costs about as
    /// much as a small update).
    pub fn post(&mut self, doorbell: bool) -> Result<(), SendError> {
        self.usable()?;
        if !doorbell {
            return Ok(());
        }
        let r = self.kick();
        r.map_err(|e| self.fail(e))
    }

    /// Whether `tag` names a write of this ring instance (not of one it replaced).
    pub fn made(&self, tag: WriteTag) -> bool {
        tag.gen == self.gen
    }

    /// Consumes the completions the device has written, without waiting or ringing:
    /// afterwards [`SendRing::confirmation`] knows about every write they complete.
    pub fn poll(&mut self) -> Result<(), SendError> {
        self.usable()?;
        let r = self.reap().map(drop);
        r.map_err(|e| self.fail(e))
    }

    fn usable(&self) -> Result<(), SendError> {
        match &self.broken {
            Some(e) => Err(SendError::Broken(Box::new(e.clone()))),
            None => Ok(()),
        }
    }

    /// Records an error that breaks the ring, and passes it on.
    fn fail(&mut self, e: SendError) -> SendError {
        if e.breaks_ring() && self.broken.is_none() {
            self.broken = Some(e.clone());
        }
        e
    }

    fn try_write(
        &mut self,
        remote: RaddrSeg,
        icm_addr: u64,
        data: &[u8],
        last: bool,
    ) -> Result<WriteId, SendError> {
        let offset = self.make_room(data.len())?;
        // `data.len()` is at most `max_write`, below 2^31.
        let len = data.len() as u32;
        let id = self.next_write;
        let counter = self.sq_head;
        debug_assert!(counter % WQES_PER_WRITE == 0);
        let write_signaled = self.signal_next(false);
        // When this pair fills the doorbell batch (or the caller flushes next), its READ
        // ends a doorbell and asks for a CQE at once, so no kick needs to patch it.
        let ends_batch = self
            .sq_head
            .wrapping_add(WQES_PER_WRITE)
            .wrapping_sub(self.rung)
            >= self.cfg.doorbell_batch;
        let read_signaled = self.signal_next(ends_batch || last);
        let index = usize::from(counter & self.mask);
        let halves = [
            Half {
                signaled: write_signaled,
                local: Local {
                    lkey: self.staging_lkey,
                    addr: self.staging_iova + offset as u64,
                    len,
                },
            },
            Half {
                signaled: read_signaled,
                local: Local {
                    lkey: self.sync_lkey,
                    addr: self.sync_iova,
                    len,
                },
            },
        ];
        // A doorbell follows this write at once: with nothing else waiting to be
        // copied, the bytes and the WQEs go straight where the device reads them
        // (the shadow keeps stale bytes for these slots, which are never copied).
        if (ends_batch || last) && self.sq_copied == counter && self.gather.is_empty() {
            self.staging_buf.write(offset, data)?;
            let mut bbs = [0u8; 2 * BB_SIZE];
            let [w, r] = halves;
            self.template
                .pair(&mut bbs, counter, remote.raddr, remote.rkey, w, r);
            self.queue.sq().write(index * BB_SIZE, &bbs)?;
            self.sq_copied = counter.wrapping_add(WQES_PER_WRITE);
        } else {
            if data.len() > GATHER_MAX_WRITE {
                self.staging_buf.write(offset, data)?;
            } else {
                self.gather.put(&*self.staging_buf, offset, data)?;
            }
            let [w, r] = halves;
            let pair = &mut self.sq_shadow[index / usize::from(WQES_PER_WRITE)];
            self.template
                .pair(pair, counter, remote.raddr, remote.rkey, w, r);
        }
        self.pending[index / usize::from(WQES_PER_WRITE)] = Pending {
            write: id,
            icm_addr,
            len,
            stage_end: self.staging.head(),
            read_signaled,
        };
        self.sq_head = counter.wrapping_add(WQES_PER_WRITE);
        self.stats.wqes += u64::from(WQES_PER_WRITE);
        self.next_write += 1;
        self.stats.writes += 1;
        self.stats.bytes += u64::from(len);
        if ends_batch {
            self.kick()?;
        }
        Ok(WriteId(id))
    }

    /// Whether the next WQE asks for a CQE: every `signal_every`-th does, and so does
    /// one that `must`.
    fn signal_next(&mut self, must: bool) -> bool {
        self.since_signal += 1;
        let signaled = must || self.since_signal >= self.cfg.signal_every;
        if signaled {
            self.since_signal = 0;
            self.stats.signaled += 1;
        }
        signaled
    }

    fn try_flush(&mut self) -> Result<(), SendError> {
        self.kick()?;
        let mut waiter = Waiter::new(self.cfg.timeout);
        while self.sq_tail != self.sq_head {
            if self.reap()? == 0 {
                waiter.idle(self.outstanding())?;
            }
        }
        Ok(())
    }

    /// Free WQE slots.
    fn free_slots(&self) -> u32 {
        u32::from(self.mask) + 1 - u32::from(self.outstanding())
    }

    /// Waits until a write of `len` bytes fits (two WQE slots and its staging), and
    /// reserves its staging; returns the staging offset.
    fn make_room(&mut self, len: usize) -> Result<usize, SendError> {
        let mut waiter: Option<Waiter> = None;
        loop {
            if self.free_slots() >= u32::from(WQES_PER_WRITE) {
                if let Some(offset) = self.staging.reserve(len) {
                    return Ok(offset);
                }
            }
            if waiter.is_none() {
                self.stats.full_waits += 1;
                waiter = Some(Waiter::new(self.cfg.timeout));
            }
            // Let the device work on everything posted, then reap what completed.
            self.kick()?;
            if self.reap()? == 0 {
                if let Some(w) = waiter.as_mut() {
                    w.idle(self.outstanding())?;
                }
            }
        }
    }

    /// Rings the doorbell for the WQEs posted since the last one, after making the last
    /// of them ask for a CQE (the device has not seen it yet, so it may be changed) and
    /// copying their data and the WQEs themselves to where the device reads them.
    fn kick(&mut self) -> Result<(), SendError> {
        if self.sq_head == self.rung {
            return Ok(());
        }
        // The last WQE is a READ (the producer counter is even).
        let last = self.sq_head.wrapping_sub(1);
        let index = usize::from(last & self.mask);
        let pair = index / usize::from(WQES_PER_WRITE);
        if !self.pending[pair].read_signaled {
            // The ring wrote that WQE with no flags: setting CQ_UPDATE is one byte.
            let at = index * BB_SIZE + CTRL_FLAGS_BYTE;
            let flags = CtrlFlags::CQ_UPDATE.bits();
            self.sq_shadow.as_flattened_mut()[at] = flags;
            if self.sq_copied == self.sq_head {
                self.queue.sq().write(at, &[flags])?;
            }
            self.pending[pair].read_signaled = true;
            self.since_signal = 0;
            self.stats.signaled += 1;
        }
        self.gather.flush(&*self.staging_buf)?;
        if self.sq_copied != self.sq_head {
            self.copy_wqes()?;
        }
        // Reaping leaves the CQ doorbell record stale; it is brought up to date only
        // when the device could otherwise take the completion ring for full.
        if self.cq.must_publish(u32::from(self.outstanding())) {
            self.cq.publish(self.queue.cq_dbrec())?;
        }
        self.queue.ring_doorbell(self.sq_head, last)?;
        self.rung = self.sq_head;
        self.stats.doorbells += 1;
        Ok(())
    }

    /// Copies the WQEs not yet in the send ring from the shadow: one write, or two when
    /// they wrap around its end.
    fn copy_wqes(&mut self) -> Result<(), SendError> {
        let first = usize::from(self.sq_copied & self.mask);
        let count = usize::from(self.sq_head.wrapping_sub(self.sq_copied));
        let flat = self.sq_shadow.as_flattened();
        let sq = self.queue.sq();
        // `count` is at most the ring's size, so the span wraps at most once.
        let slots = flat.len() / BB_SIZE;
        let before_end = count.min(slots - first);
        sq.write(
            first * BB_SIZE,
            &flat[first * BB_SIZE..(first + before_end) * BB_SIZE],
        )?;
        if count > before_end {
            sq.write(0, &flat[..(count - before_end) * BB_SIZE])?;
        }
        self.sq_copied = self.sq_head;
        Ok(())
    }

    /// Consumes the CQEs the device has written; returns how many. Stops early once
    /// nothing is outstanding (no CQE is due then; a stray one is met by the next reap
    /// that waits for one).
    fn reap(&mut self) -> Result<u32, SendError> {
        let mut n = 0;
        while self.sq_tail != self.sq_head {
            let index = self.cq.index();
            let Some(cqe) = self.cq.next(self.queue.cq())? else {
                break;
            };
            n += 1;
            self.stats.cqes += 1;
            // A REQ CQE of this queue needs only the summary; anything else is decoded in
            // full and judged by `unusual_completion`.
            let done = if cqe.opcode == CqeOpcode::Req && cqe.qpn == self.qpn {
                self.complete_through(index, cqe.wqe_counter)
            } else {
                self.unusual_completion(index)
            };
            if let Err(e) = done {
                // Whatever happens next, the device may reuse the slots read so far.
                let _ = self.cq.publish(self.queue.cq_dbrec());
                return Err(e);
            }
        }
        // The doorbell record is published by `kick`, when it must be.
        Ok(n)
    }

    /// Handles the CQE just read at `cqe_index` from its full decoding: an error CQE of
    /// this queue fails its write, and any other CQE but a REQ of this queue is not one
    /// the ring can have asked for.
    #[cold]
    fn unusual_completion(&mut self, cqe_index: u32) -> Result<(), SendError> {
        match self.cq.last()? {
            Cqe::Req(c) if c.qpn == self.qpn => self.complete_through(cqe_index, c.wqe_counter),
            Cqe::Err(e) if e.qpn == self.qpn => Err(self.wqe_failure(cqe_index, &e)),
            other => Err(SendError::BadCompletion {
                cqe_index,
                reason: format!("{other:?} on queue {:#x}", self.qpn),
            }),
        }
    }

    /// The write WQE `counter` belongs to, if that WQE is outstanding, and whether it is
    /// the write's READ.
    fn outstanding_write(
        &self,
        cqe_index: u32,
        counter: u16,
    ) -> Result<(Pending, bool), SendError> {
        if counter.wrapping_sub(self.sq_tail) >= self.outstanding() {
            return Err(SendError::BadCompletion {
                cqe_index,
                reason: format!(
                    "WQE counter {counter:#06x} is not outstanding (outstanding: {:#06x}..{:#06x})",
                    self.sq_tail, self.sq_head
                ),
            });
        }
        let index = usize::from(counter & self.mask);
        Ok((
            self.pending[index / usize::from(WQES_PER_WRITE)],
            index % usize::from(WQES_PER_WRITE) == 1,
        ))
    }

    /// A CQE for WQE `counter` completes it and every WQE before it.
    #[inline]
    fn complete_through(&mut self, cqe_index: u32, counter: u16) -> Result<(), SendError> {
        let (write, read) = self.outstanding_write(cqe_index, counter)?;
        self.sq_tail = counter.wrapping_add(1);
        self.staging.release_to(write.stage_end);
        // A completed READ fences its write; a completed WRITE only says the bytes left.
        self.landed = write.write + u64::from(read);
        Ok(())
    }

    fn wqe_failure(&self, cqe_index: u32, e: &ErrCqe) -> SendError {
        match self.outstanding_write(cqe_index, e.wqe_counter) {
            Ok((write, read)) => SendError::WqeFailed {
                write: WriteId(write.write),
                op: if read { RdmaOp::Read } else { RdmaOp::Write },
                wqe_counter: e.wqe_counter,
                icm_addr: write.icm_addr,
                len: write.len,
                syndrome: e.syndrome,
                vendor_syndrome: e.vendor_syndrome,
            },
            Err(bad) => bad,
        }
    }
}

/// The remote-address segment of `len` bytes at ICM address `icm_addr` in `region`:
/// the region's rkey and the offset into it (ICM is registered zero-based). The span
/// must lie wholly inside the region.
fn remote_of(region: &IcmRegion, icm_addr: u64, len: usize) -> Result<RaddrSeg, SendError> {
    let offset = icm_addr.wrapping_sub(region.addr);
    let inside = icm_addr >= region.addr
        && offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= region.size);
    if !inside {
        return Err(SendError::OutsideRegion {
            icm_addr,
            len,
            region_addr: region.addr,
            region_size: region.size,
        });
    }
    Ok(RaddrSeg {
        raddr: offset,
        rkey: region.rkey,
    })
}

impl Drop for SendRing {
    fn drop(&mut self) {
        // The device may still read staging for posted WQEs: let them finish first.
        if self.broken.is_none() && (self.outstanding() > 0 || self.sq_head != self.rung) {
            let _ = self.try_flush();
        }
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests;
