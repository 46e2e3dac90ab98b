//! The simulated device: every part of the model behind the one seam a driver sees.
//!
//! A [`Device`] answers exactly what a ConnectX answers across the device boundary of
//! `ARCHITECTURE.md`: PRM command mailboxes ([`Device::cmd`]), SW-ICM allocation
//! ([`Device::alloc_icm`]), memory registration and steering queues with a doorbell
//! ([`Device::register_memory`], [`Device::create_queue`], [`Device::doorbell`]; a
//! driver that rings one queue often keeps a [`QueueHandle`], whose doorbell skips the
//! lookup by QP number).
//! Packets enter through [`Device::process`], which walks firmware tables and ICM the
//! way the NIC does, executes the actions on the packet bytes, and reports where every
//! copy of the packet went, hop by hop.
//!
//! Tests observe and disturb the device through the same type: the ICM contents, a
//! per-WQE hook and queue faults ([`Device::with_queue`]), command faults and ICM
//! allocation faults.
//!
//! Locking: the firmware (commands, tables, counters) is behind one mutex, each queue
//! behind its own, and ICM has its own fine-grained locks; a doorbell never takes the
//! firmware lock, so rule writes on different queues proceed in parallel.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use ste_builder::modify_header::{HwModifyOp, ModifyCaps};
use ste_builder::{Caps, SteFormat};

use crate::cmd::{CommandFault, CommandInterface, Completion, MailboxError};
use crate::endpoint::Terminal;
use crate::fw::{Firmware, FwExit, FwHop, TableType};
use crate::host_mem::{HostMemory, MemoryRegistry, Mr, MrError};
use crate::icm::{Icm, IcmAlloc, IcmError, IcmKind, KeyMap};
use crate::packet::{Packet, Side};
use crate::pipeline::{
    self, Action, ApplyError, EnvError, Environment, PacketState, Verdict, WalkConfig,
};
use crate::profile::{DeviceModel, Profile};
use crate::queue::{DbRecord, DoorbellReport, QueueConfig, QueueError, RingConfig, SteeringQueue};

/// The most firmware/software hand-overs one processed packet may make, over all its
/// copies (a firmware table forwarding to a SW table whose STEs go to a firmware
/// table, and so on). One budget for all copies: a table graph that fans out into
/// itself must end in a fault, not in exponential work or a deep recursion.
pub const MAX_STAGES: usize = 64;

/// ICM lines the modify-header and pattern indexes count in.
const ACTION_LINE: u64 = 64;

/// Why a device call failed (command failures are reported in the mailbox instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The profile is inconsistent.
    #[error("invalid device profile: {0}")]
    Profile(String),
    /// An ICM operation failed.
    #[error(transparent)]
    Icm(#[from] IcmError),
    /// A memory registration failed.
    #[error(transparent)]
    Mr(#[from] MrError),
    /// A queue could not be created, or a doorbell failed as a whole.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No queue has this QP number.
    #[error("no steering queue with QP number {0:#x}")]
    NoSuchQueue(u32),
    /// The device has no root table of this type (for example FDB when the function is
    /// not the e-switch manager).
    #[error("the device has no {0:?} root table")]
    NoRootTable(TableType),
}

/// Where a packet enters steering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The kernel-owned root flow table of a domain type (where a real NIC starts).
    Root(TableType),
    /// A flow table, by id.
    Table(u32),
    /// An ICM address: the root anchor of a SW-owned table.
    Icm(u64),
}

/// One stage of a packet copy's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Firmware tables passed (table id and matched entry per hop).
    Firmware(Vec<FwHop>),
    /// A walk through ICM from a SW-owned table's root.
    Software {
        /// The root anchor address.
        root: u64,
        /// The walk, hop by hop.
        verdict: Verdict,
    },
}

/// How a copy of the packet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It reached a firmware destination.
    Delivered(Terminal),
    /// The model could not go on: the reason says what is wrong (usually with what the
    /// driver wrote, for example an unbacked address or an undecodable STE).
    Fault(String),
}

/// One copy of a processed packet (a forward to several destinations makes several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where it ended.
    pub fate: Fate,
    /// The packet as it left, after every action (its metadata carries the flow tag).
    pub packet: Packet,
    /// Flow counters that counted it, in order.
    pub counters: Vec<u32>,
    /// Its way, stage by stage.
    pub stages: Vec<Stage>,
}

/// Faults a test arms on ICM allocation.
#[derive(Debug, Default)]
struct IcmFaults {
    /// Allocation calls so far.
    calls: u64,
    /// Calls (by sequence number) that fail.
    fail_at: Vec<u64>,
}

struct FirmwareState {
    fw: Firmware,
    cmds: CommandInterface,
}

/// A simulated ConnectX. `Send + Sync`; every method takes `&self`.
pub struct Device {
    firmware: Mutex<FirmwareState>,
    icm: Icm,
    mrs: MemoryRegistry,
    /// By QP number; hashed with the cheap key hasher, since every doorbell by QP
    /// number looks here.
    queues: RwLock<KeyMap<Arc<QueueCell>>>,
    next_qpn: AtomicU32,
    icm_faults: Mutex<IcmFaults>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("icm", &self.icm)
            .finish_non_exhaustive()
    }
}

/// One live queue as the device and its [`QueueHandle`]s share it. On cache lines of its
/// own, so that threads ringing different queues do not share the lock's line.
#[repr(align(64))]
struct QueueCell {
    queue: Mutex<SteeringQueue>,
    /// Cleared when the queue is destroyed: a handle kept past that point finds the
    /// queue gone, as a lookup by QP number would.
    live: AtomicBool,
}

/// A queue's doorbell without the lookup by QP number: made by
/// [`Device::queue_handle`], it rings the queue it was made for on the device it was
/// made by, and fails with [`DeviceError::NoSuchQueue`] once that queue is destroyed,
/// exactly as [`Device::doorbell`] does.
pub struct QueueHandle {
    dev: Arc<Device>,
    qpn: u32,
    cell: Arc<QueueCell>,
}

impl std::fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle")
            .field("qpn", &self.qpn)
            .finish_non_exhaustive()
    }
}

impl QueueHandle {
    /// The queue's QP number.
    pub fn qpn(&self) -> u32 {
        self.qpn
    }

    /// The device the queue belongs to.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// [`Device::doorbell`] of this queue.
    pub fn doorbell(&self, producer: u16) -> Result<DoorbellReport, DeviceError> {
        // `destroy_queue` clears the flag before it returns, so a doorbell that starts
        // after the destruction fails; one racing it runs on the old queue, as a lookup
        // that won the race would.
        if !self.cell.live.load(Ordering::Acquire) {
            return Err(DeviceError::NoSuchQueue(self.qpn));
        }
        let mut q = lock(&self.cell.queue);
        Ok(q.doorbell(producer, &self.dev.icm, &self.dev.mrs)?)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test hook must not make the device unusable for the next assertion.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Device {
    /// A device with `profile`'s capabilities and nothing allocated.
    pub fn new(profile: Profile) -> Result<Device, DeviceError> {
        profile.validate().map_err(DeviceError::Profile)?;
        let icm = Icm::new(&profile.icm_layouts());
        Ok(Device {
            firmware: Mutex::new(FirmwareState {
                fw: Firmware::new(profile),
                cmds: CommandInterface::new(),
            }),
            icm,
            mrs: MemoryRegistry::new(),
            queues: RwLock::new(KeyMap::default()),
            next_qpn: AtomicU32::new(0x100),
            icm_faults: Mutex::new(IcmFaults::default()),
        })
    }

    /// A device with the default profile of `model`.
    pub fn of_model(model: DeviceModel) -> Device {
        // The built-in profiles are valid; a failure here is a bug in `profile`.
        Device::new(Profile::new(model)).expect("built-in profile is valid")
    }

    /// A copy of the device's current profile.
    pub fn profile(&self) -> Profile {
        lock(&self.firmware).fw.profile().clone()
    }

    // --- PRM commands -----------------------------------------------------------

    /// Executes one PRM command: `input` is the command's input mailbox, `output`
    /// receives status, syndrome and the command's output. Command failures are in the
    /// mailbox (and the returned [`Completion`]); `Err` only when `output` cannot hold
    /// the status header.
    pub fn cmd(&self, input: &[u8], output: &mut [u8]) -> Result<Completion, MailboxError> {
        let mut st = lock(&self.firmware);
        let FirmwareState { fw, cmds } = &mut *st;
        cmds.execute(fw, input, output)
    }

    /// Arms a command fault.
    pub fn inject_command_fault(&self, fault: CommandFault) {
        lock(&self.firmware).cmds.inject(fault);
    }

    /// Direct access to the firmware model, for tests and for device-side setup the
    /// seam has no command for (creating TIRs and QPs to forward to, changing caps).
    pub fn with_firmware<R>(&self, f: impl FnOnce(&mut Firmware) -> R) -> R {
        f(&mut lock(&self.firmware).fw)
    }

    // --- SW-ICM -----------------------------------------------------------------

    /// Allocates SW-ICM (on hardware: `mlx5dv_alloc_dm` of a SW-ICM type plus its
    /// registration, which yields the rkey).
    pub fn alloc_icm(&self, kind: IcmKind, size: u64, log_align: u8) -> Result<IcmAlloc, IcmError> {
        {
            let mut faults = lock(&self.icm_faults);
            let call = faults.calls;
            faults.calls += 1;
            if let Some(i) = faults.fail_at.iter().position(|&c| c == call) {
                faults.fail_at.swap_remove(i);
                return Err(IcmError::Injected { kind, size });
            }
        }
        self.icm.alloc(kind, size, log_align)
    }

    /// Frees the SW-ICM allocation that starts at `addr`.
    pub fn free_icm(&self, addr: u64) -> Result<IcmAlloc, IcmError> {
        self.icm.free(addr)
    }

    /// Makes the `n`th ICM allocation from now (0: the next) fail.
    pub fn fail_icm_alloc(&self, n: u64) {
        let mut faults = lock(&self.icm_faults);
        let at = faults.calls + n;
        faults.fail_at.push(at);
    }

    /// The device's ICM, for observation (tests read what the driver wrote).
    pub fn icm(&self) -> &Icm {
        &self.icm
    }

    // --- host memory and steering queues -----------------------------------------

    /// Registers host memory for the device's DMA (on hardware `ibv_reg_mr`).
    pub fn register_memory(&self, mem: &HostMemory) -> Result<Mr, MrError> {
        self.mrs.register(mem)
    }

    /// Removes a registration.
    pub fn deregister_memory(&self, lkey: u32) -> Result<Mr, MrError> {
        self.mrs.deregister(lkey)
    }

    /// Creates a steering queue over rings the driver allocated in host memory and
    /// returns its QP number (the number every WQE's control segment must carry).
    pub fn create_queue(
        &self,
        sq: RingConfig,
        cq: RingConfig,
        cq_dbrec: DbRecord,
    ) -> Result<u32, DeviceError> {
        let qpn = self.next_qpn.fetch_add(1, Ordering::Relaxed);
        let queue = SteeringQueue::new(QueueConfig {
            qpn,
            sq,
            cq,
            cq_dbrec,
        })?;
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                qpn,
                Arc::new(QueueCell {
                    queue: Mutex::new(queue),
                    live: AtomicBool::new(true),
                }),
            );
        Ok(qpn)
    }

    /// Destroys a steering queue.
    pub fn destroy_queue(&self, qpn: u32) -> Result<(), DeviceError> {
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&qpn)
            .map(|cell| cell.live.store(false, Ordering::Release))
            .ok_or(DeviceError::NoSuchQueue(qpn))
    }

    fn queue(&self, qpn: u32) -> Result<Arc<QueueCell>, DeviceError> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&qpn)
            .cloned()
            .ok_or(DeviceError::NoSuchQueue(qpn))
    }

    /// Rings queue `qpn`'s send doorbell: the driver has posted WQEs up to basic-block
    /// counter `producer`. The device executes them in order before returning.
    pub fn doorbell(&self, qpn: u32, producer: u16) -> Result<DoorbellReport, DeviceError> {
        let cell = self.queue(qpn)?;
        let mut q = lock(&cell.queue);
        Ok(q.doorbell(producer, &self.icm, &self.mrs)?)
    }

    /// A handle ringing queue `qpn`'s doorbell without looking the queue up each time.
    pub fn queue_handle(self: &Arc<Device>, qpn: u32) -> Result<QueueHandle, DeviceError> {
        Ok(QueueHandle {
            dev: Arc::clone(self),
            qpn,
            cell: self.queue(qpn)?,
        })
    }

    /// Runs `f` on queue `qpn`: its state, per-WQE hook and faults. The hook runs inside
    /// [`Device::doorbell`]; it may read ICM and process packets, not ring this queue.
    pub fn with_queue<R>(
        &self,
        qpn: u32,
        f: impl FnOnce(&mut SteeringQueue) -> R,
    ) -> Result<R, DeviceError> {
        let cell = self.queue(qpn)?;
        let mut q = lock(&cell.queue);
        Ok(f(&mut q))
    }

    // --- packets ------------------------------------------------------------------

    /// Sends `packet` into steering at `entry` and follows every copy of it to its end.
    pub fn process(&self, packet: Packet, entry: Entry) -> Result<Vec<Delivery>, DeviceError> {
        let st = lock(&self.firmware);
        let fw = &st.fw;
        let profile = fw.profile();
        let Some(format) = profile.ste_format() else {
            return Err(DeviceError::Profile(format!(
                "steering format version {} has no STE format",
                profile.steering_format_version
            )));
        };
        let ctx = WalkCtx {
            env: DeviceEnv {
                fw,
                icm: &self.icm,
                modify_base: profile.header_modify_sw_icm_start,
                pattern_base: profile.header_modify_pattern_sw_icm_start,
            },
            format,
            caps: profile.ste_caps(),
            modify_caps: ModifyCaps::from_device(
                profile.flex_parser_header_modify,
                profile.flex_parser_protocols,
                profile.flex_parser.gtpu_teid,
            ),
        };
        let start = match entry {
            Entry::Root(ty) => Next::Table(fw.root_table(ty).ok_or(DeviceError::NoRootTable(ty))?),
            Entry::Table(id) => Next::Table(id),
            Entry::Icm(root) => Next::Icm(root),
        };
        let mut out = Vec::new();
        let mut budget = MAX_STAGES;
        ctx.follow(
            Delivery {
                fate: Fate::Fault(String::new()),
                packet,
                counters: Vec::new(),
                stages: Vec::new(),
            },
            start,
            &mut budget,
            &mut out,
        );
        Ok(out)
    }
}

/// Where a packet copy goes next.
#[derive(Debug, Clone, Copy)]
enum Next {
    Table(u32),
    Icm(u64),
}

/// Everything a packet walk reads, with the firmware lock held.
struct WalkCtx<'a> {
    env: DeviceEnv<'a>,
    format: SteFormat,
    caps: Caps,
    modify_caps: ModifyCaps,
}

impl WalkCtx<'_> {
    /// Follows one copy from `next` until it ends, pushing every resulting copy to `out`.
    /// Every stage of every copy spends one unit of `budget`.
    fn follow(
        &self,
        mut copy: Delivery,
        mut next: Next,
        budget: &mut usize,
        out: &mut Vec<Delivery>,
    ) {
        while *budget > 0 {
            *budget -= 1;
            match next {
                Next::Table(id) => {
                    let fields = copy.packet.fields();
                    let walk = match self.env.fw.walk(id, &fields) {
                        Ok(w) => w,
                        Err(e) => {
                            return out.push(fault(copy, format!("firmware table {id:#x}: {e}")))
                        }
                    };
                    for &c in &walk.counters {
                        // The firmware checked its own counters when the entry was set.
                        let _ = self.env.fw.count(c, 1, copy.packet.len() as u64);
                        copy.counters.push(c);
                    }
                    let mut paths = walk.paths.into_iter();
                    let Some(first) = paths.next() else {
                        return out
                            .push(fault(copy, format!("firmware table {id:#x}: no way out")));
                    };
                    // Every further destination gets its own copy of the packet.
                    for path in paths {
                        let mut other = copy.clone();
                        if let Some(n) = self.enter(&mut other, path) {
                            self.follow(other, n, budget, out);
                        } else {
                            out.push(other);
                        }
                    }
                    match self.enter(&mut copy, first) {
                        Some(n) => next = n,
                        None => return out.push(copy),
                    }
                }
                Next::Icm(root) => {
                    let cfg = WalkConfig::new(self.format, &self.caps);
                    let mut live = LivePacket::new(copy.packet, self);
                    let verdict = pipeline::walk(&self.env, &cfg, root, &mut live);
                    copy.packet = live.packet;
                    copy.counters.extend(verdict.counters());
                    let end = match &verdict.fate {
                        pipeline::Fate::Terminal { terminal, .. } => Ok(*terminal),
                        pipeline::Fate::Fault(f) => Err(format!("ICM walk from {root:#x}: {f}")),
                    };
                    copy.stages.push(Stage::Software { root, verdict });
                    match end {
                        Ok(Terminal::FlowTable(id)) => next = Next::Table(id),
                        Ok(t) => {
                            copy.fate = Fate::Delivered(t);
                            return out.push(copy);
                        }
                        Err(f) => return out.push(fault(copy, f)),
                    }
                }
            }
        }
        out.push(fault(
            copy,
            format!("more than {MAX_STAGES} firmware/ICM hand-overs"),
        ));
    }

    /// Records a firmware path on `copy`; returns where it continues, or `None` when
    /// the copy has ended (its fate set).
    fn enter(&self, copy: &mut Delivery, path: crate::fw::FwPath) -> Option<Next> {
        copy.stages.push(Stage::Firmware(path.hops));
        if let Some(tag) = path.flow_tag {
            copy.packet.meta.flow_tag = Some(tag);
        }
        match path.exit {
            FwExit::Terminal(t) => {
                copy.fate = Fate::Delivered(t);
                None
            }
            FwExit::SwTable {
                table_id,
                root_rx,
                root_tx,
            } => {
                let root = match copy.packet.meta.side {
                    Side::Rx => root_rx,
                    Side::Tx => root_tx,
                };
                match root {
                    Some(r) => Some(Next::Icm(r)),
                    None => {
                        copy.fate = Fate::Fault(format!(
                            "SW table {table_id:#x} has no {:?} root",
                            copy.packet.meta.side
                        ));
                        None
                    }
                }
            }
        }
    }
}

fn fault(mut copy: Delivery, why: String) -> Delivery {
    copy.fate = Fate::Fault(why);
    copy
}

/// The device as the ICM walk sees it.
struct DeviceEnv<'a> {
    fw: &'a Firmware,
    icm: &'a Icm,
    modify_base: u64,
    pattern_base: u64,
}

impl DeviceEnv<'_> {
    fn action_lines(&self, base: u64, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        let addr = base + ACTION_LINE * u64::from(index);
        let mut out = vec![0u8; 8 * usize::from(num)];
        self.icm
            .read(addr, &mut out)
            .map_err(|_| EnvError::NotBacked { addr })?;
        Ok(out)
    }
}

impl Environment for DeviceEnv<'_> {
    fn terminal(&self, addr: u64) -> Option<Terminal> {
        self.fw.terminal(addr)
    }

    fn read_ste(&self, addr: u64) -> Result<[u8; 64], EnvError> {
        self.icm
            .read_line(addr)
            .map_err(|_| EnvError::NotBacked { addr })
    }

    fn count(&self, id: u32, bytes: u64) -> Result<(), EnvError> {
        self.fw
            .count(id, 1, bytes)
            .map_err(|_| EnvError::NoCounter(id))
    }

    fn modify_header_list(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        self.action_lines(self.modify_base, index, num)
    }

    fn modify_header_pattern(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        if self.pattern_base == 0 {
            return Err(EnvError::NoSuch("modify-header pattern ICM"));
        }
        self.action_lines(self.pattern_base, index, num)
    }
}

/// A packet under an ICM walk: its bytes are edited by every action, and the fields
/// the next lookup sees are re-parsed after each edit.
struct LivePacket<'a> {
    packet: Packet,
    fields: ste_builder::MatchParam,
    modify_caps: &'a ModifyCaps,
    /// Where encapsulation actions find their reformat data.
    fw: &'a Firmware,
}

impl<'a> LivePacket<'a> {
    fn new(packet: Packet, ctx: &'a WalkCtx<'_>) -> LivePacket<'a> {
        let fields = packet.fields();
        LivePacket {
            packet,
            fields,
            modify_caps: &ctx.modify_caps,
            fw: ctx.env.fw,
        }
    }

    fn edit(&mut self, format: SteFormat, action: &Action) -> Result<(), String> {
        // v1/v2 encode modify shifts with a bias of 0x20 (bits of the dword pair).
        let bias = if format == SteFormat::V0 { 0 } else { 0x20 };
        let unbias = |s: u8| {
            s.checked_sub(bias)
                .ok_or(format!("shift {s:#x} below the bias"))
        };
        let p = &mut self.packet;
        match *action {
            Action::FlowTag(tag) => {
                p.meta.flow_tag = Some(tag);
                Ok(())
            }
            // The walk counts through the environment; nothing changes on the packet.
            Action::Counter(_) => Ok(()),
            Action::Set(w) => p
                .apply_hw_modify(
                    format,
                    self.modify_caps,
                    &HwModifyOp::Set {
                        hw_field: w.field,
                        shifter: unbias(w.left_shift)?,
                        length: w.length,
                        data: w.data,
                    },
                )
                .map_err(|e| e.to_string()),
            Action::Add(w) => p
                .apply_hw_modify(
                    format,
                    self.modify_caps,
                    &HwModifyOp::Add {
                        hw_field: w.field,
                        shifter: unbias(w.left_shift)?,
                        length: w.length,
                        data: w.data,
                    },
                )
                .map_err(|e| e.to_string()),
            Action::Copy(c) => p
                .apply_hw_modify(
                    format,
                    self.modify_caps,
                    &HwModifyOp::Copy {
                        dst_hw_field: c.dst_field,
                        dst_shifter: unbias(c.dst_left_shift)?,
                        dst_len: c.length,
                        src_hw_field: c.src_field,
                        src_shifter: unbias(c.src_shift)?,
                    },
                )
                .map_err(|e| e.to_string()),
            Action::RemoveHeaders { start, end, .. } => {
                p.remove_headers(start.0, end.0).map_err(|e| e.to_string())
            }
            Action::RemoveBytes { start, offset, len } => p
                .remove_at(start.0, usize::from(offset), usize::from(len))
                .map_err(|e| e.to_string()),
            Action::InsertInline {
                start,
                offset,
                data,
            } => p
                .insert_at(start.0, usize::from(offset), &data.to_be_bytes(), false)
                .map_err(|e| e.to_string()),
            Action::DecapL3 { with_vlan } => p.decap_l3_blank(with_vlan).map_err(|e| e.to_string()),
            Action::InsertPointer {
                start,
                offset,
                len,
                pointer,
                encap,
            } => {
                let r = self
                    .fw
                    .reformat(pointer)
                    .ok_or(format!("no packet reformat context {pointer:#x}"))?;
                let data = r.data.get(..usize::from(len)).ok_or(format!(
                    "insert of {len} bytes from reformat context {pointer:#x} of {} bytes",
                    r.data.len()
                ))?;
                p.insert_at(start.0, usize::from(offset), data, encap)
                    .map_err(|e| e.to_string())
            }
            Action::Aso { context_type, .. } => Err(format!(
                "ASO (context type {context_type}) is not modelled yet"
            )),
        }
    }
}

impl PacketState for LivePacket<'_> {
    fn fields(&self) -> &ste_builder::MatchParam {
        &self.fields
    }

    fn len_bytes(&self) -> u64 {
        self.packet.len() as u64
    }

    fn apply(&mut self, format: SteFormat, action: &Action) -> Result<(), ApplyError> {
        self.edit(format, action).map_err(|reason| ApplyError {
            action: *action,
            reason,
        })?;
        self.fields = self.packet.fields();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{build_from_match, Metadata};
    use crate::pipeline::Anchor;
    use ste_builder::prm::dr_match_spec as spec;
    use ste_builder::Section;

    fn udp_packet() -> Packet {
        let mut v = ste_builder::MatchParam::default();
        v.set(Section::Outer, spec::IP_VERSION, 4);
        v.set(Section::Outer, spec::IP_PROTOCOL, 17);
        v.set(Section::Outer, spec::UDP_DPORT, 53);
        build_from_match(&v, Metadata::new(Side::Tx)).unwrap()
    }

    /// Runs `action` through the device's packet glue, as an ICM walk would.
    fn apply(device: &Device, packet: Packet, action: Action) -> Result<Packet, ApplyError> {
        let st = lock(&device.firmware);
        let profile = st.fw.profile();
        let ctx = WalkCtx {
            env: DeviceEnv {
                fw: &st.fw,
                icm: &device.icm,
                modify_base: profile.header_modify_sw_icm_start,
                pattern_base: profile.header_modify_pattern_sw_icm_start,
            },
            format: SteFormat::V1,
            caps: profile.ste_caps(),
            modify_caps: ModifyCaps::default(),
        };
        let mut live = LivePacket::new(packet, &ctx);
        live.apply(SteFormat::V1, &action)?;
        // The fields the next lookup sees follow the edit.
        assert_eq!(live.fields, live.packet.fields());
        Ok(live.packet)
    }

    #[test]
    fn insert_by_pointer_uses_the_reformat_context() {
        let device = Device::of_model(DeviceModel::ConnectX6Dx);
        let outer: Vec<u8> = (0..14u8).collect();
        let id = device
            .with_firmware(|fw| fw.alloc_reformat(1, 0, &outer))
            .unwrap();
        let before = udp_packet();
        let insert = |pointer, len| Action::InsertPointer {
            start: Anchor::START_OUTER,
            offset: 0,
            len,
            pointer,
            encap: false,
        };
        let after = apply(&device, before.clone(), insert(id, 14)).unwrap();
        assert_eq!(&after.bytes[..14], &outer[..]);
        assert_eq!(&after.bytes[14..], &before.bytes[..]);

        let unknown = apply(&device, before.clone(), insert(id + 1, 14)).unwrap_err();
        assert!(
            unknown.reason.contains("no packet reformat context"),
            "{unknown}"
        );
        let too_long = apply(&device, before, insert(id, 15)).unwrap_err();
        assert!(too_long.reason.contains("15 bytes"), "{too_long}");
    }

    #[test]
    fn flow_tag_and_vlan_push_edit_the_packet() {
        let device = Device::of_model(DeviceModel::ConnectX6Dx);
        let before = udp_packet();
        let tagged = apply(&device, before.clone(), Action::FlowTag(0xabc)).unwrap();
        assert_eq!(tagged.meta.flow_tag, Some(0xabc));
        let pushed = apply(
            &device,
            before.clone(),
            Action::InsertInline {
                start: Anchor::START_OUTER,
                offset: 12,
                data: 0x8100_0064,
            },
        )
        .unwrap();
        assert_eq!(pushed.len(), before.len() + 4);
        let f = pushed.fields();
        assert_eq!(f.get(Section::Outer, spec::CVLAN_TAG), 1);
        assert_eq!(f.get(Section::Outer, spec::FIRST_VID), 100);
        assert_eq!(f.get(Section::Outer, spec::UDP_DPORT), 53);
    }

    #[test]
    fn icm_allocation_faults_fire_once_at_the_chosen_call() {
        let device = Device::of_model(DeviceModel::ConnectX6Dx);
        device.fail_icm_alloc(1);
        assert!(device.alloc_icm(IcmKind::Steering, 4096, 0).is_ok());
        assert!(matches!(
            device.alloc_icm(IcmKind::Steering, 4096, 0),
            Err(IcmError::Injected { .. })
        ));
        assert!(device.alloc_icm(IcmKind::Steering, 4096, 0).is_ok());
    }

    /// Two SW tables whose roots lead back to the firmware table that forwards to both:
    /// every pass doubles the copies. Found by the `sim_device` fuzz target (it used to
    /// recurse until the stack overflowed); now one budget ends it with faults.
    #[test]
    fn a_fan_out_loop_ends_in_faults() {
        use crate::fw::{
            Destination, EntryOp, Fate as FwFate, FteAction, GroupSpec, TableAttr, TableOwner,
        };
        use ste_builder::ste::SteFormat;
        let device = Device::of_model(DeviceModel::ConnectX6Dx);
        let ty = TableType::NicRx;
        let icm = device.alloc_icm(IcmKind::Steering, 4096, 12).unwrap();
        let (root_a, root_b) = (icm.addr, icm.addr + 64);
        let x = device.with_firmware(|fw| {
            let x = fw.create_table(1, &TableAttr::firmware(ty, 1, 4)).unwrap();
            let a = fw
                .create_table(1, &TableAttr::software(ty, 2, root_a, 0))
                .unwrap();
            let b = fw
                .create_table(1, &TableAttr::software(ty, 2, root_b, 0))
                .unwrap();
            let spec = GroupSpec {
                start: 0,
                end: 0,
                criteria: 0,
                mask: ste_builder::MatchParam::default(),
            };
            let g = fw.create_group(1, ty, x, &spec).unwrap();
            let fte = crate::fw::Fte {
                flow_index: 0,
                group_id: g,
                value: ste_builder::MatchParam::default(),
                action: FteAction {
                    fate: FwFate::Forward(vec![
                        Destination::FlowTable(a),
                        Destination::FlowTable(b),
                    ]),
                    counters: vec![],
                    flow_tag: 0,
                },
            };
            fw.set_entry(1, ty, x, EntryOp::Create, fte).unwrap();
            x
        });
        let entry_rx = device.with_firmware(|fw| match fw.table(x).unwrap().owner {
            TableOwner::Firmware { entry_rx, .. } => entry_rx,
            ref other => panic!("{other:?}"),
        });
        // Both roots: always hit, into X's firmware entry address.
        let ctrl = SteFormat::V1.ctrl();
        for root in [root_a, root_b] {
            let mut ste = [0u8; 64];
            ctrl.init(&mut ste, 0x0f, true, 1);
            ctrl.set_hit_addr(&mut ste, entry_rx, 1);
            device.icm().write(root, &ste).unwrap();
        }
        let mut packet = udp_packet();
        packet.meta.side = Side::Rx;
        let out = device.process(packet, Entry::Table(x)).unwrap();
        assert!(!out.is_empty());
        assert!(out.len() <= MAX_STAGES + 1, "{} copies", out.len());
        let fates: Vec<_> = out.iter().map(|d| &d.fate).collect();
        assert!(
            out.iter()
                .any(|d| matches!(&d.fate, Fate::Fault(f) if f.contains("hand-overs"))),
            "{fates:?}"
        );
    }

    #[test]
    fn a_queue_handle_rings_until_its_queue_is_destroyed() {
        let device = Arc::new(Device::of_model(DeviceModel::ConnectX6Dx));
        let ring = |log: u8| RingConfig {
            mem: HostMemory::new(64 << log),
            offset: 0,
            log_entries: log,
        };
        let cq = ring(2);
        let mut slots = vec![0u8; 64 << 2];
        ste_builder::wqe::init_cq_ring(&mut slots).unwrap();
        cq.mem.write(0, &slots).unwrap();
        let dbrec = DbRecord {
            mem: HostMemory::new(4),
            offset: 0,
        };
        let qpn = device.create_queue(ring(2), cq, dbrec).unwrap();
        let handle = device.queue_handle(qpn).unwrap();
        assert_eq!(handle.qpn(), qpn);
        assert!(Arc::ptr_eq(handle.device(), &device));
        // Nothing posted: an empty doorbell, as by QP number.
        assert_eq!(handle.doorbell(0).unwrap(), DoorbellReport::default());
        assert_eq!(device.doorbell(qpn, 0).unwrap(), DoorbellReport::default());
        // The handle rings the same queue: its errors are the queue's.
        assert!(matches!(
            handle.doorbell(9),
            Err(DeviceError::Queue(QueueError::ProducerBeyondRing { .. }))
        ));
        device.destroy_queue(qpn).unwrap();
        assert!(matches!(handle.doorbell(0), Err(DeviceError::NoSuchQueue(q)) if q == qpn));
        assert!(matches!(device.doorbell(qpn, 0), Err(DeviceError::NoSuchQueue(q)) if q == qpn));
        assert!(matches!(device.queue_handle(qpn), Err(DeviceError::NoSuchQueue(q)) if q == qpn));
    }
}
