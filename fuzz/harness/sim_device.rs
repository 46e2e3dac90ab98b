//! Drives a simulated ConnectX with arbitrary bytes through the three doors of the
//! device seam: PRM command mailboxes ([`Device::cmd`]), WQEs behind a steering-queue
//! doorbell ([`Device::doorbell`]), and packets ([`Device::process`]) walking ICM lines
//! the input wrote.
//!
//! One file, two users: the cargo-fuzz target `fuzz/fuzz_targets/sim_device.rs`, and the
//! property test `sim/tests/no_panic.rs`, which runs it on random bytes in CI.
//!
//! The property: no input panics, and each input does bounded work (at most [`MAX_OPS`]
//! operations, each on bounded sizes). Besides not panicking, every call must keep the
//! promises its documentation makes (checked with `assert!`, so a broken promise shows
//! like a panic): a command's mailbox header repeats its completion, a doorbell consumes
//! exactly up to the producer and accounts for every WQE, a processed packet ends in
//! at least one delivery.
//!
//! Input layout: byte 0 picks the device generation; then operations follow, each a tag
//! byte and the fields it reads. Fields past the end of the input read as zero, and the
//! input ends when its bytes do.

use sim::cmd::layout::opcode;
use sim::cmd::{MailboxError, Status, OUT_HEADER_LEN};
use sim::fw::TableType;
use sim::host_mem::{HostMemory, Mr};
use sim::icm::{IcmAlloc, IcmKind};
use sim::packet::{build_from_match_lossy, Metadata, Packet, Side};
use sim::pipeline::Outcome;
use sim::profile::DeviceModel;
use sim::queue::{DbRecord, QueueError, QueueState, RingConfig};
use sim::{Device, DeviceError, Entry, Fate, Stage};
use ste_builder::bits;
use ste_builder::match_param::{MatchParam, MATCH_PARAM_SIZE};
use ste_builder::prm::mbox_out;
use ste_builder::ste::{self, Connect, STE_SIZE};
use ste_builder::wqe::{
    encode_nop, init_cq_ring, CtrlFlags, DataSeg, Payload, RaddrSeg, RdmaOp, RdmaWqe, Syndrome,
    BB_SIZE, CQE_SIZE, MAX_WQE_SIZE,
};
use ste_builder::{BuilderKind, Caps, SteBuild, SteFormat};

/// Operations per input.
pub const MAX_OPS: usize = 64;
/// Send ring: 2^6 BBs. Completion ring: 2^4 CQEs (small, so overruns happen).
const LOG_SQ: u8 = 6;
const LOG_CQ: u8 = 4;
/// Steering ICM the input can write STEs into and walk: 32 lines.
const STE_LINES: u64 = 32;
/// The staging buffer WQE data segments point into.
const STAGING: usize = 4096;
/// The largest command input and output mailboxes (`QUERY_HCA_CAP`'s output is 4112
/// bytes, `SET_FLOW_TABLE_ENTRY`'s input with destinations about 1 KiB).
const MAX_CMD_IN: usize = 2048;
const MAX_CMD_OUT: usize = 4608;
/// The largest packet.
const MAX_PACKET: usize = 1024;

/// The opcodes the command interface knows, so that short random inputs reach them.
const OPCODES: [u16; 18] = [
    opcode::QUERY_HCA_CAP,
    opcode::QUERY_ESW_FUNCTIONS,
    opcode::QUERY_ESW_VPORT_CONTEXT,
    opcode::QUERY_NIC_VPORT_CONTEXT,
    opcode::CREATE_TIR,
    opcode::DESTROY_TIR,
    opcode::CREATE_FLOW_TABLE,
    opcode::DESTROY_FLOW_TABLE,
    opcode::QUERY_FLOW_TABLE,
    opcode::CREATE_FLOW_GROUP,
    opcode::DESTROY_FLOW_GROUP,
    opcode::SET_FLOW_TABLE_ENTRY,
    opcode::DELETE_FLOW_TABLE_ENTRY,
    opcode::ALLOC_FLOW_COUNTER,
    opcode::DEALLOC_FLOW_COUNTER,
    opcode::QUERY_FLOW_COUNTER,
    opcode::MODIFY_FLOW_TABLE,
    opcode::SYNC_STEERING,
];

/// What one input made the device do, so that tests can tell the harness reaches deep
/// states and does not merely bounce off the first check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands that completed with status OK.
    pub commands_ok: u64,
    /// Commands that completed with an error status.
    pub commands_failed: u64,
    /// WQEs executed successfully.
    pub wqes_completed: u64,
    /// WQEs that failed or were flushed.
    pub wqes_failed: u64,
    /// Packets processed.
    pub packets: u64,
    /// STEs visited by ICM walks.
    pub ste_hops: u64,
    /// Of those, rule STEs (non-zero mask) that hit.
    pub rule_hits: u64,
    /// Packet copies delivered to a firmware destination.
    pub delivered: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.commands_ok += o.commands_ok;
        self.commands_failed += o.commands_failed;
        self.wqes_completed += o.wqes_completed;
        self.wqes_failed += o.wqes_failed;
        self.packets += o.packets;
        self.ste_hops += o.ste_hops;
        self.rule_hits += o.rule_hits;
        self.delivered += o.delivered;
    }
}

/// Reads fields off the input; past its end every field is zero.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    fn flag(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// A length in `0..=max`, below 128 half of the time (short fields leave input for
    /// more operations).
    fn len(&mut self, max: usize) -> usize {
        let b = self.u8();
        let n = if b & 0x80 == 0 {
            usize::from(b)
        } else {
            usize::from(b & 0x7f) << 8 | usize::from(self.u8())
        };
        n % (max + 1)
    }
}

/// A steering queue and the host memory it lives in.
struct Queue {
    qpn: u32,
    sq: HostMemory,
    dbrec: HostMemory,
}

/// The device under test and what the input has set up on it.
struct Rig {
    dev: Device,
    format: SteFormat,
    caps: Caps,
    /// Steering ICM lines the input writes and walks.
    ste: IcmAlloc,
    /// Modify-header ICM at the start of its range (list index 0 is its first line).
    modify: Option<IcmAlloc>,
    mr: Mr,
    queue: Queue,
    /// The STE line written last: where packets are most likely to find something.
    last_line: u64,
    /// The packet processed last: rules built from its fields match it when it is sent
    /// again.
    last_packet: Option<Packet>,
    stats: Stats,
    /// Firmware-owned addresses (drop, allow, vports ...), for hit and miss targets.
    fixed: Vec<u64>,
}

impl Rig {
    fn new(model: DeviceModel) -> Rig {
        let dev = Device::of_model(model);
        let profile = dev.profile();
        let format = profile
            .ste_format()
            .expect("built-in profiles have an STE format");
        let caps = profile.ste_caps();
        let ste = dev
            .alloc_icm(IcmKind::Steering, STE_LINES * STE_SIZE as u64, 12)
            .expect("a fresh device has steering ICM");
        let modify = dev.alloc_icm(IcmKind::ModifyAction, 4096, 12).ok();
        // The registry keeps the buffer alive.
        let mr = dev
            .register_memory(&HostMemory::new(STAGING))
            .expect("registration");
        let queue = new_queue(&dev).expect("a fresh device creates queues");
        let fixed = profile
            .fixed_addresses()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        Rig {
            dev,
            format,
            caps,
            ste,
            modify,
            mr,
            queue,
            last_line: ste.addr,
            last_packet: None,
            stats: Stats::default(),
            fixed,
        }
    }

    /// An ICM address chosen by `sel`: mostly lines of the input's STE range (the last
    /// one written most often), sometimes a firmware-owned address, sometimes anything.
    fn addr(&self, sel: u8, x: u64) -> u64 {
        match sel % 8 {
            0 | 1 => self.last_line,
            2..=4 => self.line(x),
            5 => self.fixed[(x % self.fixed.len() as u64) as usize],
            6 => self.ste.addr + x % (STE_LINES * STE_SIZE as u64),
            _ => x,
        }
    }

    /// A WQE's remote address: ICM is registered zero-based, so mostly an offset into
    /// the STE allocation (a line's, or any byte's), sometimes anything (an absolute ICM
    /// address among them).
    fn remote_offset(&self, sel: u8, x: u64) -> u64 {
        let size = STE_LINES * STE_SIZE as u64;
        match sel % 4 {
            0 | 1 => self.last_line - self.ste.addr,
            2 => x % size,
            _ => x,
        }
    }

    /// Line `x` (mod the range) of the input's STE range.
    fn line(&self, x: u64) -> u64 {
        self.ste.addr + STE_SIZE as u64 * (x % STE_LINES)
    }

    /// Writes an STE line and remembers it.
    fn write_line(&mut self, at: u64, line: &[u8; STE_SIZE]) {
        // `at` is a line of the allocation, so the write cannot fail.
        if self.dev.icm().write(at, line).is_ok() {
            self.last_line = at;
        }
    }
}

fn new_queue(dev: &Device) -> Result<Queue, DeviceError> {
    let sq = HostMemory::new(BB_SIZE << LOG_SQ);
    let cq = HostMemory::new(CQE_SIZE << LOG_CQ);
    // The ring length is a multiple of the CQE size.
    let _ = init_cq_ring(&mut cq.lock_write());
    let dbrec = HostMemory::new(4);
    let ring = |mem: &HostMemory, log_entries| RingConfig {
        mem: mem.clone(),
        offset: 0,
        log_entries,
    };
    let qpn = dev.create_queue(
        ring(&sq, LOG_SQ),
        ring(&cq, LOG_CQ),
        DbRecord {
            mem: dbrec.clone(),
            offset: 0,
        },
    )?;
    Ok(Queue { qpn, sq, dbrec })
}

/// Runs one input. Panics only when the device breaks a promise (or panics itself).
pub fn run(data: &[u8]) -> Stats {
    let mut input = Input { data };
    let setup = input.u8();
    let model = [
        DeviceModel::ConnectX5,
        DeviceModel::ConnectX6Dx,
        DeviceModel::ConnectX7,
    ][usize::from(setup % 3)];
    let mut rig = Rig::new(model);
    if setup & 0x80 != 0 {
        // As a driver leaves a new table: every entry misses to the drop address.
        let drop = rig.dev.profile().nic_rx_drop_icm;
        let ctrl = rig.format.ctrl();
        for i in 0..STE_LINES {
            let mut line = [0u8; STE_SIZE];
            let connect = Connect::Miss { miss_addr: drop };
            ste::set_formatted_ste(ctrl, &mut line, rig.caps.gvmi, true, 0, connect);
            ctrl.prepare_for_postsend(&mut line, STE_SIZE);
            rig.write_line(rig.line(i), &line);
        }
    }
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 10 {
            0 => command(&mut rig, &mut input),
            1 => post_wqes(&mut rig, &mut input),
            2 => raw_ring(&mut rig, &mut input),
            3 => queue_control(&mut rig, &mut input),
            4 => raw_line(&mut rig, &mut input),
            5 => rule_line(&mut rig, &mut input),
            6 => table_lines(&mut rig, &mut input),
            7 => modify_list(&rig, &mut input),
            _ => packet(&mut rig, &mut input),
        }
    }
    rig.stats
}

/// A command mailbox, either mostly zero (a known opcode, uid 0 or 1, a small op_mod
/// and a few bytes set, mostly near the start where the command's fields are) with
/// room for any output, or raw bytes of any length with an output of any length.
fn command(rig: &mut Rig, input: &mut Input<'_>) {
    let sel = input.u8();
    let (mailbox, out_len) = if sel & 0x80 == 0 {
        let mut m = vec![0u8; MAX_CMD_IN];
        m[..2].copy_from_slice(&OPCODES[usize::from(sel) % OPCODES.len()].to_be_bytes());
        m[3] = input.u8() & 1; // uid
        m[7] = input.u8() & 3; // op_mod
        for _ in 0..input.u8() % 16 {
            let wide = input.flag();
            let at = if wide {
                usize::from(input.u16())
            } else {
                usize::from(input.u8())
            };
            m[8 + at % (MAX_CMD_IN - 8)] = input.u8();
        }
        (m, MAX_CMD_OUT)
    } else {
        let op = input.u16();
        let in_len = input.len(MAX_CMD_IN);
        let out_len = input.len(MAX_CMD_OUT);
        let mut m = vec![0u8; in_len];
        let body = input.bytes(in_len);
        m[..body.len()].copy_from_slice(body);
        if in_len >= 2 {
            m[..2].copy_from_slice(&op.to_be_bytes());
        }
        (m, out_len)
    };
    let mut out = vec![0xa5u8; out_len];
    match rig.dev.cmd(&mailbox, &mut out) {
        Ok(c) => {
            assert!(out_len >= OUT_HEADER_LEN, "{out_len}-byte output accepted");
            assert_eq!(
                bits::get(&out, mbox_out::STATUS),
                u64::from(c.status.code())
            );
            assert_eq!(bits::get(&out, mbox_out::SYNDROME), u64::from(c.syndrome));
            if c.status == Status::Ok {
                rig.stats.commands_ok += 1;
            } else {
                rig.stats.commands_failed += 1;
            }
        }
        Err(MailboxError::OutputTooShort { len }) => {
            assert_eq!(len, out_len);
            assert!(out_len < OUT_HEADER_LEN, "{out_len}-byte output refused");
        }
    }
}

/// WQEs as a driver encodes them (NOP, WRITE, READ, inline or by pointer, aimed mostly
/// at the input's ICM and staging buffer), then a few corrupted bytes, then the doorbell.
fn post_wqes(rig: &mut Rig, input: &mut Input<'_>) {
    if input.flag() {
        fresh_queue_if_broken(rig);
    }
    let q = &rig.queue;
    let Ok(start) = rig.dev.with_queue(q.qpn, |q| q.sq_consumer()) else {
        return;
    };
    let ring_bytes = BB_SIZE << LOG_SQ;
    let mut producer = start;
    let mut posted = Vec::new();
    for _ in 0..1 + input.u8() % 8 {
        let kind = input.u8();
        let flags = CtrlFlags::from_bits_retain(input.u8() & CtrlFlags::CQ_UPDATE.bits());
        let mut wqe = [0u8; MAX_WQE_SIZE];
        let remote = RaddrSeg {
            raddr: rig.remote_offset(input.u8(), input.u64()),
            // The right key three times in four.
            rkey: if input.u8() & 3 != 0 {
                rig.ste.rkey
            } else {
                input.u32()
            },
        };
        let inline_len = usize::from(input.u8()) % 160;
        let inline = input.bytes(inline_len).to_vec();
        let mut segs = Vec::new();
        for _ in 0..input.u8() % 4 {
            let lkey = if input.u8() & 3 != 0 {
                rig.mr.lkey
            } else {
                input.u32()
            };
            let off = u64::from(input.u16()) % STAGING as u64;
            let len = 1 + u64::from(input.u16()) % STAGING as u64;
            if let Ok(seg) = DataSeg::new(lkey, rig.mr.iova + off, len) {
                segs.push(seg);
            }
        }
        let encoded = match kind % 4 {
            0 => encode_nop(producer, q.qpn, flags, &mut wqe),
            k => RdmaWqe {
                op: if k == 3 { RdmaOp::Read } else { RdmaOp::Write },
                wqe_index: producer,
                qpn: q.qpn,
                flags,
                remote,
                payload: if k == 1 {
                    Payload::Inline(&inline)
                } else {
                    Payload::Segments(&segs)
                },
            }
            .encode(&mut wqe),
        };
        let Ok(size) = encoded else { continue };
        let bbs = size.div_ceil(BB_SIZE);
        posted.extend_from_slice(&wqe[..bbs * BB_SIZE]);
        producer = producer.wrapping_add(bbs as u16);
    }
    for _ in 0..input.u8() % 4 {
        if posted.is_empty() {
            break;
        }
        let at = usize::from(input.u16()) % posted.len();
        posted[at] ^= input.u8();
    }
    // The ring holds at most a ring's worth; what does not fit is not posted.
    posted.truncate(ring_bytes);
    let first = usize::from(start) % (1 << LOG_SQ) * BB_SIZE;
    write_ring(&q.sq, first, &posted);
    let producer = start.wrapping_add((posted.len() / BB_SIZE) as u16);
    doorbell(rig, producer);
}

/// Copies `bytes` into the send ring from byte `first` on, wrapping at its end.
fn write_ring(sq: &HostMemory, first: usize, bytes: &[u8]) {
    let mut ring = sq.lock_write();
    let len = ring.len();
    for (i, b) in bytes.iter().enumerate() {
        ring[(first + i) % len] = *b;
    }
}

/// Raw bytes anywhere in the send ring, and a doorbell with a producer near the
/// consumer or anywhere.
fn raw_ring(rig: &mut Rig, input: &mut Input<'_>) {
    let q = &rig.queue;
    let first = usize::from(input.u16());
    let len = input.len(BB_SIZE << LOG_SQ);
    let bytes = input.bytes(len);
    write_ring(&q.sq, first, bytes);
    let Ok(consumer) = rig.dev.with_queue(q.qpn, |q| q.sq_consumer()) else {
        return;
    };
    let producer = if input.flag() {
        input.u16()
    } else {
        consumer.wrapping_add(u16::from(input.u8()) % ((1 << LOG_SQ) + 2))
    };
    doorbell(rig, producer);
}

/// Rings the doorbell and checks the report against the queue's counters.
fn doorbell(rig: &mut Rig, producer: u16) {
    let qpn = rig.queue.qpn;
    let Ok((consumer, seq)) = rig
        .dev
        .with_queue(qpn, |q| (q.sq_consumer(), q.wqes_consumed()))
    else {
        return;
    };
    let result = rig.dev.doorbell(qpn, producer);
    let Ok((after, seq_after)) = rig
        .dev
        .with_queue(qpn, |q| (q.sq_consumer(), q.wqes_consumed()))
    else {
        panic!("queue {qpn:#x} vanished during its doorbell");
    };
    match result {
        Ok(report) => {
            assert_eq!(after, producer, "consumer after the doorbell");
            let accounted = report.completed + report.failed + report.flushed;
            assert_eq!(u64::from(accounted), seq_after - seq, "{report:?}");
            assert!(report.failed <= 1, "{report:?}");
            rig.stats.wqes_completed += u64::from(report.completed);
            rig.stats.wqes_failed += u64::from(report.failed + report.flushed);
        }
        Err(DeviceError::Queue(QueueError::ProducerBeyondRing { .. })) => {
            assert_eq!(after, consumer, "nothing consumed past the ring");
            assert_eq!(seq_after, seq);
        }
        Err(DeviceError::Queue(QueueError::CqOverrun)) => {
            assert_eq!(after, producer, "an overrun still consumes what was posted");
        }
        Err(e) => panic!("doorbell of a live queue failed: {e}"),
    }
}

/// The driver side of the queue: consume completions (or claim to), hold and release
/// them, inject an error, or start over with a new queue.
fn queue_control(rig: &mut Rig, input: &mut Input<'_>) {
    let qpn = rig.queue.qpn;
    let dev = &rig.dev;
    match input.u8() % 6 {
        0 => {
            // Consume every CQE written so far.
            if let Ok(n) = dev.with_queue(qpn, |q| q.cq_produced()) {
                let _ = rig.queue.dbrec.write(0, &(n & 0x00ff_ffff).to_be_bytes());
            }
        }
        1 => {
            let raw = input.u32();
            let _ = rig.queue.dbrec.write(0, &raw.to_be_bytes());
        }
        2 => {
            let _ = dev.with_queue(qpn, |q| q.hold_completions());
        }
        3 => {
            let n = usize::from(input.u8());
            let _ = dev.with_queue(qpn, |q| {
                if n == 0 {
                    q.resume_completions()
                } else {
                    q.release_completions(n)
                }
            });
        }
        4 => {
            let nth = u64::from(input.u8() % 8);
            let syndrome = Syndrome::from_byte(input.u8());
            let vendor = input.u8();
            let _ = dev.with_queue(qpn, |q| q.inject_error(nth, syndrome, vendor));
        }
        _ => replace_queue(rig),
    }
}

/// Replaces the queue by a new one (the only way out of the error state).
fn replace_queue(rig: &mut Rig) {
    if rig.dev.destroy_queue(rig.queue.qpn).is_ok() {
        if let Ok(q) = new_queue(&rig.dev) {
            rig.queue = q;
        }
    }
}

/// Replaces the queue if it is in the error state.
fn fresh_queue_if_broken(rig: &mut Rig) {
    let state = rig.dev.with_queue(rig.queue.qpn, |q| q.state());
    if !matches!(state, Ok(QueueState::Ready)) {
        replace_queue(rig);
    }
}

/// A raw 64-byte line into the STE range, optionally with a control block initialised
/// for an arbitrary lookup type, and with hit and miss addresses, next lookup type and
/// byte mask optionally pointed somewhere walkable.
fn raw_line(rig: &mut Rig, input: &mut Input<'_>) {
    let at = rig.line(input.u8().into());
    let mut line: [u8; STE_SIZE] = input.array();
    let patch = input.u8();
    if patch & 8 != 0 {
        // Keep the random tag and mask; give it a control block hardware reads.
        let lu_type = input.u16() & 0xff;
        rig.format
            .ctrl()
            .init(&mut line, lu_type, patch & 16 != 0, rig.caps.gvmi);
    }
    link(rig, input, patch, &mut line);
    rig.write_line(at, &line);
}

/// A run of table entries as a driver initialises a hash table: each always misses to
/// one address, or always hits into one table.
fn table_lines(rig: &mut Rig, input: &mut Input<'_>) {
    let first = u64::from(input.u8());
    let n = 1 + u64::from(input.u8() % 16);
    let lu_type = input.u16() & 0xff;
    let connect = if input.flag() {
        Connect::Miss {
            miss_addr: rig.addr(input.u8(), input.u64()),
        }
    } else {
        Connect::Hit {
            lu_type: input.u16() & 0xff,
            byte_mask: input.u16(),
            icm_addr: rig.addr(input.u8(), input.u64()),
            num_entries: 1 << (input.u8() % 7),
        }
    };
    let ctrl = rig.format.ctrl();
    for i in 0..n {
        let mut line = [0u8; STE_SIZE];
        ste::set_formatted_ste(ctrl, &mut line, rig.caps.gvmi, true, lu_type, connect);
        ctrl.prepare_for_postsend(&mut line, STE_SIZE);
        rig.write_line(rig.line(first + i), &line);
    }
}

/// Points an STE's miss and hit addresses into the input's lines (or elsewhere), as
/// chosen by the bits of `patch`.
fn link(rig: &Rig, input: &mut Input<'_>, patch: u8, line: &mut [u8; STE_SIZE]) {
    let ctrl = rig.format.ctrl();
    if patch & 1 != 0 {
        let miss = rig.addr(input.u8(), input.u64());
        ctrl.set_miss_addr(line, miss);
    }
    if patch & 2 != 0 {
        let hit = rig.addr(input.u8(), input.u64());
        // Tables of 1..=64 entries.
        ctrl.set_hit_addr(line, hit, 1 << (input.u8() % 7));
    }
    if patch & 4 != 0 {
        ctrl.set_next_lu_type(line, input.u16());
        ctrl.set_byte_mask(line, input.u16());
    }
}

/// A rule STE as a driver builds it: a lookup chosen from an arbitrary mask, the tag of
/// an arbitrary value, linked into the input's lines.
fn rule_line(rig: &mut Rig, input: &mut Input<'_>) {
    let at = rig.line(input.u8().into());
    let kind = BuilderKind::ALL[usize::from(input.u8()) % BuilderKind::ALL.len()];
    let flags = input.u8();
    let mut mask = match_param(input);
    // The value: arbitrary, or the fields of the last packet (a rule it matches).
    let mut value = match (&rig.last_packet, flags & 4 != 0) {
        (Some(p), true) => p.fields(),
        _ => match_param(input),
    };
    let Ok(sb) = SteBuild::new(
        rig.format,
        kind,
        flags & 1 != 0,
        flags & 2 != 0,
        &mut mask,
        &rig.caps,
    ) else {
        return;
    };
    let ctrl = rig.format.ctrl();
    let mut line = [0u8; STE_SIZE];
    ctrl.init(&mut line, sb.lu_type, sb.rx, rig.caps.gvmi);
    ste::set_bit_mask(&mut line, &sb.bit_mask);
    if sb
        .tag(
            &mut value,
            &rig.caps,
            &mut ste::tag_mut(&mut line)[..sb.tag_len()],
        )
        .is_err()
    {
        return;
    }
    let patch = input.u8();
    link(rig, input, patch, &mut line);
    ctrl.prepare_for_postsend(&mut line, STE_SIZE);
    rig.write_line(at, &line);
}

/// A match parameter: up to 448 arbitrary bytes, or a few bytes set in a zero one
/// (sparse masks are what matchers have, and what lookups accept).
fn match_param(input: &mut Input<'_>) -> MatchParam {
    let sel = input.u8();
    if sel & 1 == 0 {
        let len = input.len(MATCH_PARAM_SIZE);
        return MatchParam::from_bytes(input.bytes(len)).unwrap_or_default();
    }
    let mut bytes = [0u8; MATCH_PARAM_SIZE];
    for _ in 0..sel >> 4 {
        let at = usize::from(input.u16()) % MATCH_PARAM_SIZE;
        bytes[at] = input.u8();
    }
    MatchParam::from_bytes(&bytes).unwrap_or_default()
}

/// Raw bytes into modify-header ICM, for the action lists STEs name.
fn modify_list(rig: &Rig, input: &mut Input<'_>) {
    let Some(m) = rig.modify else { return };
    let off = u64::from(input.u16()) % m.size;
    let len = usize::from(input.u8());
    let bytes = input.bytes(len);
    let _ = rig.dev.icm().write(m.addr + off, bytes);
}

/// A packet of raw bytes or built from an arbitrary match value, with arbitrary
/// metadata, into the root of a table type, a flow table, or an ICM address.
fn packet(rig: &mut Rig, input: &mut Input<'_>) {
    let sel = input.u8();
    let mut meta = Metadata::new(if sel & 1 == 0 { Side::Rx } else { Side::Tx });
    meta.source_vport = input.u16();
    meta.source_gvmi = input.u16();
    meta.source_qp = input.u32();
    meta.source_vhca_port = input.u8();
    meta.reg_a = input.u32();
    meta.reg_c[usize::from(input.u8() % 8)] = input.u32();
    let packet = match ((sel >> 1) % 4, rig.last_packet.take()) {
        // The last packet again, to meet the rules built from it.
        (0 | 3, Some(last)) => last,
        (1, _) => {
            let len = input.len(MAX_PACKET);
            Packet::new(input.bytes(len).to_vec(), meta)
        }
        _ => match build_from_match_lossy(&match_param(input), meta.clone()) {
            Ok((p, _)) => p,
            Err(_) => Packet::new(Vec::new(), meta),
        },
    };
    rig.last_packet = Some(packet.clone());
    let entry = match (sel >> 3) % 4 {
        0 | 1 => Entry::Icm(rig.addr(input.u8(), input.u64())),
        2 => Entry::Root(TableType::ALL[usize::from(input.u8()) % TableType::ALL.len()]),
        _ => Entry::Table(u32::from(input.u8() % 16)),
    };
    match rig.dev.process(packet, entry) {
        Ok(copies) => {
            assert!(!copies.is_empty(), "a processed packet ends somewhere");
            let st = &mut rig.stats;
            st.packets += 1;
            for c in &copies {
                if matches!(c.fate, Fate::Delivered(_)) {
                    st.delivered += 1;
                }
                for stage in &c.stages {
                    if let Stage::Software { verdict, .. } = stage {
                        st.ste_hops += verdict.trace.len() as u64;
                        st.rule_hits += verdict
                            .trace
                            .iter()
                            .filter(|h| h.masked && matches!(h.outcome, Outcome::Hit { .. }))
                            .count() as u64;
                    }
                }
            }
        }
        Err(DeviceError::NoRootTable(_)) if matches!(entry, Entry::Root(_)) => {}
        Err(e) => panic!("process({entry:?}) failed: {e}"),
    }
}
