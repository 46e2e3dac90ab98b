//! The device seam: everything the driver does to a NIC, as one object-safe trait.
//!
//! This is exactly the boundary of `ARCHITECTURE.md`, "The one seam" (the kernel flow
//! path, its fourth part, comes later):
//!
//! 1. **PRM commands** as mailbox bytes ([`Device::command`]), and commands that create
//!    firmware objects ([`Device::create_object`], [`Device::destroy_object`]): on a
//!    card, DEVX only accepts object-creating commands through
//!    `mlx5dv_devx_obj_create`, and the kernel then owns the matching destroy command,
//!    so the seam keeps the two kinds apart from the start.
//! 2. **SW-ICM**: allocate and free regions per [`IcmKind`], each with its ICM address,
//!    size and rkey ([`IcmRegion`]).
//! 3. **DMA-able host memory** the driver writes and the device reads
//!    ([`Device::alloc_dma`] → [`DmaBuffer`]: a registered buffer with an lkey and the
//!    IO virtual address data segments name).
//! 4. **The steering queue** ([`Device::create_queue`] → [`SteeringQueue`]): a send ring
//!    and a completion ring in host memory the driver reads and writes through
//!    [`DmaMemory`] views, plus the doorbell.
//!
//! Memory is reached only through [`DmaMemory`]'s checked `read` and `write`, in the
//! spirit of rust-vmm's vm-memory: the trait is safe, and a backend over real memory
//! (a registered `ibv_mr`, a DEVX umem, mapped CQ buffers) keeps its `unsafe` volatile
//! copies and barriers inside its own implementation. Above this module nothing knows
//! which backend runs: the simulator ([`sim::SimBackend`], the default) or a card.
//!
//! Every handle is `Send`; the device and its memory are `Send + Sync`, so one device
//! serves many threads (each steering queue is used by one thread at a time).

#[cfg(feature = "sim")]
pub mod sim;

use std::fmt::Debug;

/// Why a device operation failed, whatever the backend.
///
/// A command whose mailbox came back with a non-zero status is
/// [`DeviceError::CommandStatus`]; the command layer ([`crate::cmd`]) turns it into an
/// error naming the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The command executed and failed: the output mailbox's status and syndrome.
    #[error("command failed with status {status:#x}, syndrome {syndrome:#x}")]
    CommandStatus {
        /// The PRM status byte (never 0).
        status: u8,
        /// The syndrome word.
        syndrome: u32,
    },
    /// The mailboxes could not be exchanged at all (an output too short for the status
    /// header, a transport failure).
    #[error("command mailbox not exchanged: {0}")]
    Mailbox(String),
    /// [`Device::destroy_object`] of a handle that is not a live object.
    #[error("no live firmware object with handle {0:?}")]
    NoSuchObject(ObjectId),
    /// No free span of this ICM kind is large enough.
    #[error("{kind:?} ICM exhausted: no free {size} bytes aligned to 2^{log_align}")]
    IcmExhausted {
        /// The kind.
        kind: IcmKind,
        /// Bytes asked for.
        size: u64,
        /// Log2 alignment asked for.
        log_align: u8,
    },
    /// The device has no SW-ICM of this kind.
    #[error("the device has no {0:?} ICM")]
    NoIcmKind(IcmKind),
    /// Any other ICM allocation or free failure.
    #[error("ICM: {0}")]
    Icm(String),
    /// A host-memory access outside its buffer.
    #[error(
        "host memory access of {len} bytes at offset {offset} is outside the {size}-byte buffer"
    )]
    DmaOutOfRange {
        /// First byte accessed.
        offset: usize,
        /// Bytes accessed.
        len: usize,
        /// The buffer's size.
        size: usize,
    },
    /// Host memory could not be allocated or registered.
    #[error("DMA buffer of {len} bytes: {reason}")]
    Dma {
        /// Bytes asked for.
        len: usize,
        /// Why.
        reason: String,
    },
    /// The queue's completion ring overran: completions were lost and the queue is in
    /// the error state for good.
    #[error("steering queue {qpn:#x}: completion queue overrun")]
    CqOverrun {
        /// The queue.
        qpn: u32,
    },
    /// A steering queue could not be created, or its doorbell failed as a whole.
    #[error("steering queue: {0}")]
    Queue(String),
}

/// What an ICM region holds; each kind is its own address range on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IcmKind {
    /// Steering table entries (`MLX5DV_DM_TYPE_STEERING_SW_ICM`).
    Steering,
    /// Modify-header action lists (`MLX5DV_DM_TYPE_HEADER_MODIFY_SW_ICM`).
    ModifyAction,
    /// Modify-header patterns (`MLX5DV_DM_TYPE_HEADER_MODIFY_PATTERN_SW_ICM`).
    ModifyPattern,
    /// Encapsulation headers (`MLX5DV_DM_TYPE_ENCAP_SW_ICM`).
    Encap,
}

/// A live SW-ICM allocation: `size` bytes at ICM address `addr`, reachable by the
/// steering queue under `rkey`.
///
/// The registration behind `rkey` is zero-based (rdma-core registers SW-ICM with
/// `IBV_ACCESS_ZERO_BASED`): an RDMA WQE aimed at the region carries the byte offset
/// `icm_addr - addr` as its remote address, never the ICM address itself. The region is
/// therefore what a write into ICM is aimed with: [`crate::send::SendRing::write`] takes
/// it with an ICM address inside it and makes the offset, so whatever hands out pieces
/// of a region (the ICM pool) hands out the region with each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmRegion {
    /// Its kind.
    pub kind: IcmKind,
    /// First ICM address.
    pub addr: u64,
    /// Bytes (the device may round the request up to its granularity).
    pub size: u64,
    /// The remote key RDMA WQEs aimed at the region carry.
    pub rkey: u32,
}

/// A firmware object created through [`Device::create_object`]: an opaque handle the
/// backend hands out and takes back in [`Device::destroy_object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u64);

/// Host memory shared with the device, reached only through checked copies.
///
/// Ordering contract (what a backend over real memory must provide with barriers):
/// each `read` observes device writes no older than those that preceded earlier
/// `read`s of the same buffer (so reading a CQE's owner byte and then the CQE gives a
/// CQE at least as new as the owner byte), and every `write` is visible to the device
/// before the next doorbell of any queue.
pub trait DmaMemory: Send + Sync + Debug {
    /// The buffer's size in bytes (fixed for its life).
    fn len(&self) -> usize;

    /// True for a zero-byte buffer.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError>;

    /// Copies `data` to `offset`.
    fn write(&self, offset: usize, data: &[u8]) -> Result<(), DeviceError>;

    /// Reads a record the device marks as written through one flag byte it writes
    /// last (a CQE and its owner byte): the flag byte, at `offset + flag`, decides with
    /// `fresh` whether the record is new, and only then is the rest trusted. Returns
    /// `fresh(flag byte)`; when true, `out` holds the record, no older than that flag
    /// byte; when false, only `out[flag]` is meaningful (the other bytes may have been
    /// overwritten with stale contents). A `flag` outside `out` is
    /// [`DeviceError::DmaOutOfRange`].
    ///
    /// The default reads the flag byte and then the record, two `read`s ordered by the
    /// contract above: what a driver over real memory must do, since a card may write
    /// the record in pieces and a single copy could pair a new flag byte with old bytes
    /// read before it. A backend whose device writes every record whole under a lock
    /// that `read` also takes may copy the record once and test the flag in the copy.
    fn read_flagged(
        &self,
        offset: usize,
        out: &mut [u8],
        flag: usize,
        fresh: &dyn Fn(u8) -> bool,
    ) -> Result<bool, DeviceError> {
        read_flag_first(self, offset, out, flag, fresh)
    }
}

/// [`DmaMemory::read_flagged`] done as two ordered reads: the flag byte, then (if it
/// shows the record is new) the whole record.
pub fn read_flag_first<M: DmaMemory + ?Sized>(
    mem: &M,
    offset: usize,
    out: &mut [u8],
    flag: usize,
    fresh: &dyn Fn(u8) -> bool,
) -> Result<bool, DeviceError> {
    let size = out.len();
    let Some(byte) = out.get_mut(flag) else {
        return Err(DeviceError::DmaOutOfRange {
            offset: offset.saturating_add(flag),
            len: 1,
            size,
        });
    };
    mem.read(offset.saturating_add(flag), std::slice::from_mut(byte))?;
    if !fresh(*byte) {
        return Ok(false);
    }
    mem.read(offset, out)?;
    Ok(true)
}

/// A [`DmaMemory`] registered for the device's DMA: WQE data segments name its bytes
/// as `(lkey, iova + offset, len)`. Dropping it removes the registration (on a card:
/// `ibv_dereg_mr`, then the memory is freed).
pub trait DmaBuffer: DmaMemory {
    /// The local key of the registration.
    fn lkey(&self) -> u32;

    /// The IO virtual address of byte 0.
    fn iova(&self) -> u64;
}

/// The sizes of a steering queue's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueSpec {
    /// The send ring has `2^log_sq_bbs` 64-byte basic blocks.
    pub log_sq_bbs: u8,
    /// The completion ring has `2^log_cq_entries` 64-byte CQEs.
    pub log_cq_entries: u8,
}

/// A steering send queue with its completion queue, created by the backend in host
/// memory (as rdma-core creates its RC QP and CQ for steering).
///
/// The driver owns the ring contents: it writes WQEs into [`SteeringQueue::sq`],
/// initialises and reads [`SteeringQueue::cq`] and publishes its consumer index in
/// [`SteeringQueue::cq_dbrec`]. Dropping the queue destroys it.
pub trait SteeringQueue: Send + Debug {
    /// The QP number every WQE's control segment carries.
    fn qpn(&self) -> u32;

    /// The ring sizes.
    fn spec(&self) -> QueueSpec;

    /// The send ring: `64 << log_sq_bbs` bytes from offset 0.
    fn sq(&self) -> &dyn DmaMemory;

    /// The completion ring: `64 << log_cq_entries` bytes from offset 0. Its slots hold
    /// whatever the backend left until the driver initialises them.
    fn cq(&self) -> &dyn DmaMemory;

    /// The CQ doorbell record: a big-endian word at offset 0 whose low 24 bits are the
    /// driver's consumer index.
    fn cq_dbrec(&self) -> &dyn DmaMemory;

    /// Rings the send doorbell: WQEs are posted up to basic-block counter `producer`
    /// (mod 2^16), and `last_wqe` is the counter of the last WQE posted (a card's
    /// doorbell carries that WQE's first control-segment word).
    ///
    /// A device may execute the WQEs before this returns (the simulator does) or later
    /// (a card does); the driver learns of completion only from CQEs.
    fn ring_doorbell(&mut self, producer: u16, last_wqe: u16) -> Result<(), DeviceError>;
}

/// One NIC (or a model of one), as the driver sees it. Object safe: the driver holds an
/// `Arc<dyn Device>`.
pub trait Device: Send + Sync + Debug {
    /// Executes a PRM command: `input` is its input mailbox, `output` receives its output
    /// mailbox. Only for commands that create nothing (queries, modifications, sync):
    /// creations go through [`Device::create_object`].
    ///
    /// `Ok` means the status is 0. A non-zero status is
    /// [`DeviceError::CommandStatus`], and `output` still holds the status header.
    fn command(&self, input: &[u8], output: &mut [u8]) -> Result<(), DeviceError>;

    /// Executes a PRM command that creates a firmware object (a flow table, group,
    /// counter, TIR...) and returns its handle; `output` holds the command's output.
    fn create_object(&self, input: &[u8], output: &mut [u8]) -> Result<ObjectId, DeviceError>;

    /// Destroys an object made by [`Device::create_object`]. `input` is the PRM destroy
    /// command for it: a backend that executes commands itself uses it, one whose
    /// kernel recorded the destroy command at creation (DEVX) ignores it. The handle is
    /// gone afterwards even when the destroy command fails.
    fn destroy_object(&self, obj: ObjectId, input: &[u8]) -> Result<(), DeviceError>;

    /// Allocates `size` bytes of SW-ICM of `kind` aligned to `2^log_align` (on a card:
    /// `mlx5dv_alloc_dm` with the SW-ICM type, then its registration for the rkey).
    fn alloc_icm(&self, kind: IcmKind, size: u64, log_align: u8) -> Result<IcmRegion, DeviceError>;

    /// Frees a region [`Device::alloc_icm`] returned.
    fn free_icm(&self, region: &IcmRegion) -> Result<(), DeviceError>;

    /// Allocates a zero-filled host buffer of `len` bytes registered for the device's
    /// DMA (local write, remote read and write).
    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DeviceError>;

    /// Creates a steering queue (an RC send queue looped back to this device, and its
    /// completion queue) with rings of the given sizes.
    fn create_queue(&self, spec: QueueSpec) -> Result<Box<dyn SteeringQueue>, DeviceError>;
}
