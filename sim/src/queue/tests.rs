//! The steering queue driven the way a driver drives it: WQEs built with
//! `ste_builder::wqe`, copied into the ring, a doorbell, CQEs polled from host memory.

use std::sync::{Arc, Mutex};

use ste_builder::wqe::{
    cqe_is_sw_owned, encode_nop, init_cq_ring, Cqe, CtrlFlags, CtrlSeg, DataSeg, ErrCqe, ErrSide,
    Opcode, Payload, RaddrSeg, RdmaOp, RdmaWqe, ReqCqe, Syndrome, INLINE_FLAG,
};

use super::*;
use crate::host_mem::Mr;
use crate::icm::{IcmAlloc, IcmKind, IcmLayout};

const QPN: u32 = 0x1a2b;
/// Where the CQ ring starts in the rig's ring buffer, after the send ring.
const CQ_OFFSET: usize = 4096;
const DBREC_OFFSET: usize = 8192;

/// A driver's view of one queue: ring buffers, a staging buffer, a readback buffer, ICM.
struct Rig {
    icm: Icm,
    mrs: MemoryRegistry,
    ste: IcmAlloc,
    rings: HostMemory,
    staging_mr: Mr,
    readback: HostMemory,
    readback_mr: Mr,
    queue: SteeringQueue,
    log_sq: u8,
    log_cq: u8,
    /// The driver's producer counter, in BBs.
    pi: u16,
    /// The driver's CQ consumer counter.
    ci: u32,
}

impl Rig {
    fn new(log_sq: u8, log_cq: u8) -> Rig {
        let rings = HostMemory::new(DBREC_OFFSET + 64);
        Rig::with_rings(log_sq, log_cq, rings.clone(), 0, CQ_OFFSET, DBREC_OFFSET)
    }

    fn with_rings(
        log_sq: u8,
        log_cq: u8,
        rings: HostMemory,
        sq_off: usize,
        cq_off: usize,
        db_off: usize,
    ) -> Rig {
        let icm = Icm::new(&[IcmLayout {
            kind: IcmKind::Steering,
            base: 1 << 36,
            log_size: 20,
            log_granularity: 6,
        }]);
        let ste = icm.alloc(IcmKind::Steering, 4096, 6).unwrap();
        let mrs = MemoryRegistry::new();
        let staging = HostMemory::from_vec((0..1024).map(|i| i as u8).collect());
        let readback = HostMemory::new(1024);
        let staging_mr = mrs.register(&staging).unwrap();
        let readback_mr = mrs.register(&readback).unwrap();
        {
            let mut g = rings.lock_write();
            init_cq_ring(&mut g[cq_off..cq_off + (64 << log_cq)]).unwrap();
        }
        let queue = SteeringQueue::new(QueueConfig {
            qpn: QPN,
            sq: RingConfig {
                mem: rings.clone(),
                offset: sq_off,
                log_entries: log_sq,
            },
            cq: RingConfig {
                mem: rings.clone(),
                offset: cq_off,
                log_entries: log_cq,
            },
            cq_dbrec: DbRecord {
                mem: rings.clone(),
                offset: db_off,
            },
        })
        .unwrap();
        Rig {
            icm,
            mrs,
            ste,
            rings,
            staging_mr,
            readback,
            readback_mr,
            queue,
            log_sq,
            log_cq,
            pi: 0,
            ci: 0,
        }
    }

    fn sq_off(&self) -> usize {
        0
    }

    fn cq_off(&self) -> usize {
        CQ_OFFSET
    }

    /// Copies an encoded WQE into the send ring at the producer counter, wrapping at the
    /// ring's end as drivers do, and advances the counter by its BBs.
    fn post_bytes(&mut self, wqe: &[u8]) {
        let ring_bytes = BB_SIZE << self.log_sq;
        let start = (self.pi as usize * BB_SIZE) % ring_bytes;
        let mut g = self.rings.lock_write();
        for (i, b) in wqe.iter().enumerate() {
            g[self.sq_off() + (start + i) % ring_bytes] = *b;
        }
        self.pi = self.pi.wrapping_add(wqe.len().div_ceil(BB_SIZE) as u16);
    }

    fn post(&mut self, op: RdmaOp, raddr: u64, rkey: u32, payload: Payload<'_>, signaled: bool) {
        let wqe = RdmaWqe {
            op,
            wqe_index: self.pi,
            qpn: QPN,
            flags: if signaled {
                CtrlFlags::CQ_UPDATE
            } else {
                CtrlFlags::empty()
            },
            remote: RaddrSeg { raddr, rkey },
            payload,
        };
        let mut buf = [0u8; 1024];
        let n = wqe.encode(&mut buf).unwrap();
        self.post_bytes(&buf[..n]);
    }

    fn write_from_staging(&mut self, icm_off: u64, staging_off: u64, len: u64, signaled: bool) {
        let seg = DataSeg::new(
            self.staging_mr.lkey,
            self.staging_mr.iova + staging_off,
            len,
        )
        .unwrap();
        let rkey = self.ste.rkey;
        self.post(
            RdmaOp::Write,
            icm_off,
            rkey,
            Payload::Segments(&[seg]),
            signaled,
        );
    }

    fn read_to_readback(&mut self, icm_off: u64, readback_off: u64, len: u64, signaled: bool) {
        let seg = DataSeg::new(
            self.readback_mr.lkey,
            self.readback_mr.iova + readback_off,
            len,
        )
        .unwrap();
        let rkey = self.ste.rkey;
        self.post(
            RdmaOp::Read,
            icm_off,
            rkey,
            Payload::Segments(&[seg]),
            signaled,
        );
    }

    fn nop(&mut self, signaled: bool) {
        let mut buf = [0u8; 64];
        let flags = if signaled {
            CtrlFlags::CQ_UPDATE
        } else {
            CtrlFlags::empty()
        };
        encode_nop(self.pi, QPN, flags, &mut buf).unwrap();
        self.post_bytes(&buf);
    }

    fn ring(&mut self) -> Result<DoorbellReport, QueueError> {
        self.queue.doorbell(self.pi, &self.icm, &self.mrs)
    }

    /// Polls one CQE as a driver does, publishing the new consumer index.
    fn poll(&mut self) -> Option<Cqe> {
        let slot = self.cq_off() + (self.ci as usize & ((1 << self.log_cq) - 1)) * CQE_SIZE;
        let bytes = self.rings.read_vec(slot, CQE_SIZE).unwrap();
        if !cqe_is_sw_owned(&bytes, self.ci, self.log_cq).unwrap() {
            return None;
        }
        self.ci += 1;
        self.rings
            .write(DBREC_OFFSET, &(self.ci & 0xff_ffff).to_be_bytes())
            .unwrap();
        Some(Cqe::decode(&bytes).unwrap().cqe)
    }

    fn poll_all(&mut self) -> Vec<Cqe> {
        std::iter::from_fn(|| self.poll()).collect()
    }

    fn icm_bytes(&self, off: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.icm.read(self.ste.addr + off, &mut out).unwrap();
        out
    }
}

fn req(counter: u16, opcode: Opcode, byte_cnt: u32) -> Cqe {
    Cqe::Req(ReqCqe {
        wqe_counter: counter,
        byte_cnt,
        opcode,
        qpn: QPN,
    })
}

fn err(counter: u16, opcode: Opcode, syndrome: Syndrome, vendor: u8) -> Cqe {
    Cqe::Err(ErrCqe {
        side: ErrSide::Requester,
        wqe_counter: counter,
        syndrome,
        vendor_syndrome: vendor,
        opcode,
        qpn: QPN,
        srqn: 0,
    })
}

#[test]
fn write_then_read_back_with_completions() {
    let mut r = Rig::new(4, 3);
    r.write_from_staging(64, 100, 64, true);
    r.read_to_readback(64, 8, 64, true);
    let report = r.ring().unwrap();
    assert_eq!(
        report,
        DoorbellReport {
            completed: 2,
            cqes_written: 2,
            ..Default::default()
        }
    );
    let expect: Vec<u8> = (100..164).collect();
    assert_eq!(r.icm_bytes(64, 64), expect);
    assert_eq!(r.icm_bytes(0, 64), vec![0; 64], "nothing else written");
    assert_eq!(r.readback.read_vec(8, 64).unwrap(), expect);
    assert_eq!(
        r.poll_all(),
        vec![req(0, Opcode::RdmaWrite, 64), req(1, Opcode::RdmaRead, 64)]
    );
    assert_eq!(r.queue.state(), QueueState::Ready);
    assert_eq!(r.queue.sq_consumer(), 2);
}

#[test]
fn unsignaled_wqes_complete_silently_and_a_later_cqe_names_its_counter() {
    let mut r = Rig::new(4, 3);
    r.write_from_staging(0, 0, 64, false);
    r.nop(false);
    r.write_from_staging(64, 64, 64, true);
    let report = r.ring().unwrap();
    assert_eq!((report.completed, report.cqes_written), (3, 1));
    assert_eq!(r.poll_all(), vec![req(2, Opcode::RdmaWrite, 64)]);
    assert_eq!(r.icm_bytes(0, 128), (0..128).collect::<Vec<u8>>());
}

/// An inline 64-byte STE write is two BBs; placed at the ring's last BB it wraps, and a
/// gather list of two segments lands back to back.
#[test]
fn inline_write_wrapping_the_ring_and_multi_segment_gather() {
    let mut r = Rig::new(2, 3); // 4 BBs
    for _ in 0..3 {
        r.nop(false);
    }
    r.ring().unwrap();
    let ste: Vec<u8> = (0..64).map(|i| 0xa0 ^ i).collect();
    // Zero-based: the remote address is the offset into the allocation.
    let (addr, rkey) = (192, r.ste.rkey);
    r.post(RdmaOp::Write, addr, rkey, Payload::Inline(&ste), true);
    assert_eq!(r.pi, 5);
    r.ring().unwrap();
    assert_eq!(r.icm_bytes(192, 64), ste);
    assert_eq!(r.poll_all(), vec![req(3, Opcode::RdmaWrite, 64)]);

    let segs = [
        DataSeg::new(r.staging_mr.lkey, r.staging_mr.iova + 10, 5).unwrap(),
        DataSeg::new(r.staging_mr.lkey, r.staging_mr.iova + 500, 3).unwrap(),
    ];
    r.post(
        RdmaOp::Write,
        addr + 64,
        rkey,
        Payload::Segments(&segs),
        true,
    );
    r.ring().unwrap();
    assert_eq!(r.icm_bytes(256, 8), vec![10, 11, 12, 13, 14, 244, 245, 246]);
    assert_eq!(r.poll_all(), vec![req(5, Opcode::RdmaWrite, 8)]);
}

#[test]
fn zero_length_write_completes_without_touching_icm() {
    let mut r = Rig::new(3, 3);
    // No data segments: DS 2. Nothing is reached, so even a bogus rkey is not checked.
    r.post(RdmaOp::Write, 0, 0xdead, Payload::Segments(&[]), true);
    r.ring().unwrap();
    assert_eq!(r.poll_all(), vec![req(0, Opcode::RdmaWrite, 0)]);
}

/// One shared buffer for the send ring, the CQ and a READ's destination: the queue must
/// not hold the ring's lock while it writes there.
#[test]
fn read_into_the_ring_buffer_itself() {
    let rings = HostMemory::new(16384);
    let mut r = Rig::with_rings(3, 3, rings.clone(), 0, CQ_OFFSET, DBREC_OFFSET);
    let mr = r.mrs.register(&rings).unwrap();
    r.icm.write(r.ste.addr, &[0x5a; 64]).unwrap();
    let seg = DataSeg::new(mr.lkey, mr.iova + 12000, 64).unwrap();
    let rkey = r.ste.rkey;
    r.post(RdmaOp::Read, 0, rkey, Payload::Segments(&[seg]), true);
    r.ring().unwrap();
    assert_eq!(rings.read_vec(12000, 64).unwrap(), vec![0x5a; 64]);
    assert_eq!(r.poll_all(), vec![req(0, Opcode::RdmaRead, 64)]);
}

/// Each malformed or unreachable WQE: the syndrome of its error CQE, ICM untouched.
#[test]
fn every_error_cause_has_its_syndrome() {
    type Post = fn(&mut Rig);
    let cases: &[(&str, Post, Opcode, Syndrome)] = &[
        (
            "bad rkey",
            |r| {
                let seg = DataSeg::new(r.staging_mr.lkey, r.staging_mr.iova, 64).unwrap();
                r.post(
                    RdmaOp::Write,
                    0,
                    r.ste.rkey + 1,
                    Payload::Segments(&[seg]),
                    false,
                )
            },
            Opcode::RdmaWrite,
            Syndrome::RemoteAccess,
        ),
        (
            "ICM span past the allocation",
            |r| {
                let seg = DataSeg::new(r.staging_mr.lkey, r.staging_mr.iova, 128).unwrap();
                r.post(
                    RdmaOp::Write,
                    4096 - 64,
                    r.ste.rkey,
                    Payload::Segments(&[seg]),
                    false,
                )
            },
            Opcode::RdmaWrite,
            Syndrome::RemoteAccess,
        ),
        (
            "offset beyond the allocation",
            |r| {
                let rkey = r.ste.rkey;
                r.post(
                    RdmaOp::Read,
                    512 << 10,
                    rkey,
                    Payload::Segments(&[
                        DataSeg::new(r.readback_mr.lkey, r.readback_mr.iova, 8).unwrap()
                    ]),
                    false,
                )
            },
            Opcode::RdmaRead,
            Syndrome::RemoteAccess,
        ),
        (
            "unknown lkey",
            |r| {
                let seg = DataSeg::new(0x4242, r.staging_mr.iova, 64).unwrap();
                let rkey = r.ste.rkey;
                r.post(RdmaOp::Write, 0, rkey, Payload::Segments(&[seg]), false)
            },
            Opcode::RdmaWrite,
            Syndrome::LocalProtection,
        ),
        (
            "span past the registration",
            |r| {
                let seg = DataSeg::new(r.readback_mr.lkey, r.readback_mr.iova + 1000, 64).unwrap();
                let rkey = r.ste.rkey;
                r.post(RdmaOp::Read, 0, rkey, Payload::Segments(&[seg]), false)
            },
            Opcode::RdmaRead,
            Syndrome::LocalProtection,
        ),
        (
            "unknown opcode",
            |r| {
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::from_byte(0x0a), r.pi, QPN, 1, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                r.post_bytes(&b)
            },
            Opcode::Unknown(0x0a),
            Syndrome::LocalQpOp,
        ),
        (
            "DS 0",
            |r| {
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::Nop, r.pi, QPN, 0, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                r.post_bytes(&b)
            },
            Opcode::Nop,
            Syndrome::LocalQpOp,
        ),
        (
            "WRITE without a remote-address segment",
            |r| {
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::RdmaWrite, r.pi, QPN, 1, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                r.post_bytes(&b)
            },
            Opcode::RdmaWrite,
            Syndrome::LocalQpOp,
        ),
        (
            "inline length beyond DS",
            |r| {
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::RdmaWrite, r.pi, QPN, 3, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                RaddrSeg {
                    raddr: 0,
                    rkey: r.ste.rkey,
                }
                .encode(&mut b[16..])
                .unwrap();
                b[32..36].copy_from_slice(&(INLINE_FLAG | 40).to_be_bytes());
                r.post_bytes(&b)
            },
            Opcode::RdmaWrite,
            Syndrome::LocalLength,
        ),
        (
            "inline data in a READ",
            |r| {
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::RdmaRead, r.pi, QPN, 3, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                RaddrSeg {
                    raddr: 0,
                    rkey: r.ste.rkey,
                }
                .encode(&mut b[16..])
                .unwrap();
                b[32..36].copy_from_slice(&(INLINE_FLAG | 4).to_be_bytes());
                r.post_bytes(&b)
            },
            Opcode::RdmaRead,
            Syndrome::LocalQpOp,
        ),
        (
            "WQE index not its position",
            |r| {
                let mut b = [0u8; 64];
                encode_nop(r.pi.wrapping_add(1), QPN, CtrlFlags::empty(), &mut b).unwrap();
                r.post_bytes(&b)
            },
            Opcode::Nop,
            Syndrome::LocalQpOp,
        ),
        (
            "another QP's WQE",
            |r| {
                let mut b = [0u8; 64];
                encode_nop(r.pi, QPN + 1, CtrlFlags::empty(), &mut b).unwrap();
                r.post_bytes(&b)
            },
            Opcode::Nop,
            Syndrome::LocalQpOp,
        ),
        (
            "WQE running past the producer counter",
            |r| {
                // DS 5 needs two BBs; only one is posted.
                let mut b = [0u8; 64];
                CtrlSeg::new(Opcode::Nop, r.pi, QPN, 5, CtrlFlags::empty())
                    .encode(&mut b)
                    .unwrap();
                r.post_bytes(&b)
            },
            Opcode::Nop,
            Syndrome::LocalQpOp,
        ),
    ];
    for (name, post, opcode, syndrome) in cases {
        let mut r = Rig::new(3, 3);
        r.nop(false);
        post(&mut r);
        let report = r.ring().unwrap();
        assert_eq!((report.completed, report.failed), (1, 1), "{name}");
        assert_eq!(r.poll_all(), vec![err(1, *opcode, *syndrome, 0)], "{name}");
        assert_eq!(
            r.queue.state(),
            QueueState::Error(ErrorCause::Wqe {
                wqe_counter: 1,
                syndrome: *syndrome
            }),
            "{name}"
        );
        assert_eq!(r.icm_bytes(0, 4096), vec![0; 4096], "{name}: ICM untouched");
        assert_eq!(
            r.readback.read_vec(0, 1024).unwrap(),
            vec![0; 1024],
            "{name}: host untouched"
        );
    }
}

/// ICM is registered zero-based, so an absolute ICM address in a WQE is an offset far
/// beyond the allocation: refused with a remote-access error, ICM untouched, and the
/// hook reports the address as given since it resolves nowhere.
#[test]
fn an_absolute_icm_address_is_refused() {
    let mut r = Rig::new(3, 3);
    let seen: Arc<Mutex<Vec<WqeEvent>>> = Arc::default();
    let log = seen.clone();
    r.queue.set_wqe_hook(Some(Box::new(move |e: &WqeEvent| {
        log.lock().unwrap().push(*e)
    })));
    let absolute = r.ste.addr + 64;
    assert!(
        absolute > r.ste.size,
        "the absolute address is no offset inside"
    );
    r.write_from_staging(absolute, 0, 64, true);
    let report = r.ring().unwrap();
    assert_eq!((report.completed, report.failed), (0, 1));
    assert_eq!(
        r.poll_all(),
        vec![err(0, Opcode::RdmaWrite, Syndrome::RemoteAccess, 0)]
    );
    assert_eq!(r.icm_bytes(0, 4096), vec![0; 4096]);
    assert_eq!(
        seen.lock().unwrap()[0].icm,
        Some(IcmSpan {
            addr: absolute,
            len: 64
        })
    );
}

/// With two allocations, the rkey picks the allocation and the remote address is an
/// offset into that one: the same offset lands in different places, and an offset only
/// the larger allocation holds is refused under the smaller one's rkey.
#[test]
fn an_offset_resolves_into_the_allocation_of_its_rkey() {
    let mut r = Rig::new(4, 3);
    let big = r.icm.alloc(IcmKind::Steering, 8192, 6).unwrap();
    assert_ne!(big.addr, r.ste.addr);
    let stage = |off: u64| DataSeg::new(r.staging_mr.lkey, r.staging_mr.iova + off, 64).unwrap();
    let (to_ste, to_big) = (stage(0), stage(64));
    r.post(
        RdmaOp::Write,
        128,
        r.ste.rkey,
        Payload::Segments(&[to_ste]),
        false,
    );
    r.post(
        RdmaOp::Write,
        128,
        big.rkey,
        Payload::Segments(&[to_big]),
        false,
    );
    r.post(
        RdmaOp::Write,
        6000,
        big.rkey,
        Payload::Inline(&[0xee; 16]),
        false,
    );
    let back = DataSeg::new(r.readback_mr.lkey, r.readback_mr.iova, 64).unwrap();
    r.post(
        RdmaOp::Read,
        128,
        big.rkey,
        Payload::Segments(&[back]),
        true,
    );
    let report = r.ring().unwrap();
    assert_eq!((report.completed, report.failed), (4, 0));
    assert_eq!(r.poll_all(), vec![req(3, Opcode::RdmaRead, 64)]);
    assert_eq!(r.icm_bytes(128, 64), (0..64).collect::<Vec<u8>>());
    let mut at_big = vec![0; 64];
    r.icm.read(big.addr + 128, &mut at_big).unwrap();
    assert_eq!(at_big, (64..128).collect::<Vec<u8>>());
    let mut tail = vec![0; 16];
    r.icm.read(big.addr + 6000, &mut tail).unwrap();
    assert_eq!(tail, vec![0xee; 16]);
    assert_eq!(
        r.readback.read_vec(0, 64).unwrap(),
        (64..128).collect::<Vec<u8>>()
    );

    // Offset 6000 lies inside the 8 KiB allocation but past the 4 KiB one.
    r.post(
        RdmaOp::Write,
        6000,
        r.ste.rkey,
        Payload::Inline(&[0x11; 16]),
        true,
    );
    r.ring().unwrap();
    assert_eq!(
        r.poll_all(),
        vec![err(4, Opcode::RdmaWrite, Syndrome::RemoteAccess, 0)]
    );
    r.icm.read(big.addr + 6000, &mut tail).unwrap();
    assert_eq!(tail, vec![0xee; 16]);
}

/// After an error, WQEs posted in the same doorbell and in later ones are flushed: not
/// executed, one flush CQE each, signaled or not.
#[test]
fn error_state_flushes_everything_after() {
    let mut r = Rig::new(3, 3);
    let rkey = r.ste.rkey;
    r.post(RdmaOp::Write, 0, rkey ^ 1, Payload::Inline(&[1; 8]), false);
    r.write_from_staging(0, 0, 64, false);
    r.nop(true);
    let report = r.ring().unwrap();
    assert_eq!(
        (report.failed, report.flushed, report.cqes_written),
        (1, 2, 3)
    );
    assert_eq!(
        r.poll_all(),
        vec![
            err(0, Opcode::RdmaWrite, Syndrome::RemoteAccess, 0),
            err(1, Opcode::RdmaWrite, Syndrome::WrFlush, 0),
            err(2, Opcode::Nop, Syndrome::WrFlush, 0),
        ]
    );
    // A later doorbell: still flushed, never executed.
    r.write_from_staging(0, 0, 64, true);
    let report = r.ring().unwrap();
    assert_eq!((report.completed, report.flushed), (0, 1));
    assert_eq!(
        r.poll_all(),
        vec![err(3, Opcode::RdmaWrite, Syndrome::WrFlush, 0)]
    );
    assert_eq!(r.icm_bytes(0, 64), vec![0; 64]);
    assert!(matches!(
        r.queue.state(),
        QueueState::Error(ErrorCause::Wqe {
            wqe_counter: 0,
            syndrome: Syndrome::RemoteAccess
        })
    ));
}

#[test]
fn injected_error_on_the_nth_wqe() {
    let mut r = Rig::new(3, 3);
    r.queue.inject_error(1, Syndrome::RemoteOp, 0x42);
    r.write_from_staging(0, 0, 64, true);
    r.write_from_staging(64, 64, 64, false);
    r.write_from_staging(128, 128, 64, true);
    let report = r.ring().unwrap();
    assert_eq!((report.completed, report.failed, report.flushed), (1, 1, 1));
    assert_eq!(
        r.poll_all(),
        vec![
            req(0, Opcode::RdmaWrite, 64),
            err(1, Opcode::RdmaWrite, Syndrome::RemoteOp, 0x42),
            err(2, Opcode::RdmaWrite, Syndrome::WrFlush, 0),
        ]
    );
    assert_eq!(r.icm_bytes(0, 64), (0..64).collect::<Vec<u8>>());
    assert_eq!(
        r.icm_bytes(64, 128),
        vec![0; 128],
        "failed and flushed WQEs wrote nothing"
    );

    // Counted from the call: a second queue fails its very next WQE; a cleared
    // injection never fires.
    let mut r = Rig::new(3, 3);
    r.nop(false);
    r.ring().unwrap();
    r.queue.inject_error(0, Syndrome::LocalAccess, 1);
    r.queue.clear_injected_error();
    r.nop(true);
    r.ring().unwrap();
    r.queue.inject_error(0, Syndrome::LocalAccess, 1);
    r.nop(false);
    r.ring().unwrap();
    assert_eq!(
        r.poll_all(),
        vec![
            req(1, Opcode::Nop, 0),
            err(2, Opcode::Nop, Syndrome::LocalAccess, 1)
        ]
    );
}

#[test]
fn held_completions_appear_only_when_released_in_order() {
    let mut r = Rig::new(3, 3);
    r.queue.hold_completions();
    r.write_from_staging(0, 0, 64, true);
    r.nop(true);
    r.nop(true);
    let report = r.ring().unwrap();
    assert_eq!(
        (report.completed, report.cqes_written, report.cqes_held),
        (3, 0, 3)
    );
    assert_eq!(
        r.icm_bytes(0, 64),
        (0..64).collect::<Vec<u8>>(),
        "executed though not completed"
    );
    assert_eq!(r.poll_all(), vec![]);
    assert_eq!(r.queue.release_completions(1), Ok(1));
    assert_eq!(r.poll_all(), vec![req(0, Opcode::RdmaWrite, 64)]);
    // Still holding: a new doorbell's CQE queues behind the held ones.
    r.nop(true);
    assert_eq!(r.ring().unwrap().cqes_held, 3);
    assert_eq!(r.poll_all(), vec![]);
    assert_eq!(r.queue.resume_completions(), Ok(3));
    assert_eq!(
        r.poll_all(),
        vec![
            req(1, Opcode::Nop, 0),
            req(2, Opcode::Nop, 0),
            req(3, Opcode::Nop, 0)
        ]
    );
    r.nop(true);
    assert_eq!(r.ring().unwrap().cqes_written, 1);
    assert_eq!(r.queue.held_completions(), 0);
}

/// The owner bit flips each pass; a driver that keeps its consumer index published never
/// overruns a small CQ.
#[test]
fn owner_bit_flips_across_cq_passes() {
    let mut r = Rig::new(3, 1); // 2 CQEs
    for round in 0..5u16 {
        r.nop(true);
        r.nop(true);
        r.ring().unwrap();
        assert_eq!(
            r.poll_all(),
            vec![
                req(2 * round, Opcode::Nop, 0),
                req(2 * round + 1, Opcode::Nop, 0)
            ]
        );
    }
    assert_eq!(r.queue.cq_produced(), 10);
    // Slot 0 now holds CQE 8 (third pass): owner bit 0.
    assert_eq!(r.rings.read_vec(CQ_OFFSET + 63, 1).unwrap(), vec![0x00]);
}

#[test]
fn cq_overrun_breaks_the_queue() {
    let mut r = Rig::new(3, 1); // 2 CQEs
    r.nop(true);
    r.nop(true);
    r.nop(true);
    assert_eq!(r.ring(), Err(QueueError::CqOverrun));
    assert_eq!(r.queue.state(), QueueState::Error(ErrorCause::CqOverrun));
    assert_eq!(
        r.queue.cq_produced(),
        2,
        "the third CQE was not written over the first"
    );
    assert_eq!(
        r.poll_all(),
        vec![req(0, Opcode::Nop, 0), req(1, Opcode::Nop, 0)]
    );
    // The CQ stays broken: later WQEs are flushed and their CQEs lost.
    r.nop(false);
    assert_eq!(r.ring(), Err(QueueError::CqOverrun));
    assert_eq!(r.poll_all(), vec![]);
}

#[test]
fn releasing_held_completions_into_a_full_cq_overruns() {
    let mut r = Rig::new(3, 1); // 2 CQEs
    r.queue.hold_completions();
    r.nop(true);
    r.nop(true);
    r.nop(true);
    assert_eq!(r.ring().unwrap().cqes_held, 3);
    assert_eq!(r.queue.release_completions(1), Ok(1));
    assert_eq!(r.queue.held_completions(), 2);
    // One slot is left: the second CQE released would overwrite the unconsumed first.
    assert_eq!(r.queue.resume_completions(), Err(QueueError::CqOverrun));
    assert_eq!(r.queue.cq_produced(), 2);
    assert_eq!(r.queue.held_completions(), 0, "the rest is lost");
    assert_eq!(r.queue.state(), QueueState::Error(ErrorCause::CqOverrun));
    assert_eq!(
        r.poll_all(),
        vec![req(0, Opcode::Nop, 0), req(1, Opcode::Nop, 0)]
    );
}

#[test]
fn producer_beyond_the_ring_is_refused() {
    let mut r = Rig::new(2, 3); // 4 BBs
    assert_eq!(
        r.queue.doorbell(5, &r.icm, &r.mrs),
        Err(QueueError::ProducerBeyondRing {
            producer: 5,
            consumer: 0,
            ring_bbs: 4
        })
    );
    assert_eq!(
        r.queue.state(),
        QueueState::Error(ErrorCause::ProducerBeyondRing)
    );
    assert_eq!(r.queue.sq_consumer(), 0, "nothing consumed");
    // A full ring is fine, and the 16-bit counter wraps.
    let mut r = Rig::new(2, 3);
    for _ in 0..(65536 / 4) {
        for _ in 0..4 {
            r.nop(false);
        }
        r.ring().unwrap();
    }
    assert_eq!((r.pi, r.queue.sq_consumer()), (0, 0));
    r.nop(true);
    r.ring().unwrap();
    assert_eq!(r.poll_all(), vec![req(0, Opcode::Nop, 0)]);
    assert_eq!(r.queue.wqes_consumed(), 65537);
}

/// The hook runs once per WQE, in order, with its counter, opcode and ICM span; the
/// READs after each WRITE show each write done before the next WQE ran.
#[test]
fn hook_reports_each_wqe_in_order() {
    let mut r = Rig::new(4, 3);
    let seen: Arc<Mutex<Vec<WqeEvent>>> = Arc::default();
    let log = seen.clone();
    r.queue.set_wqe_hook(Some(Box::new(move |e: &WqeEvent| {
        log.lock().unwrap().push(*e)
    })));
    r.write_from_staging(0, 0, 64, false);
    r.read_to_readback(0, 0, 64, false);
    r.write_from_staging(0, 64, 64, false);
    r.read_to_readback(0, 64, 64, false);
    r.nop(true);
    r.ring().unwrap();
    let events = seen.lock().unwrap().clone();
    // The WQEs carry offset 0; the hook reports the ICM address it resolves to.
    let span = Some(IcmSpan {
        addr: r.ste.addr,
        len: 64,
    });
    let done = WqeOutcome::Completed { byte_cnt: 64 };
    assert_eq!(
        events,
        vec![
            WqeEvent {
                seq: 0,
                wqe_counter: 0,
                opcode: Opcode::RdmaWrite,
                icm: span,
                outcome: done
            },
            WqeEvent {
                seq: 1,
                wqe_counter: 1,
                opcode: Opcode::RdmaRead,
                icm: span,
                outcome: done
            },
            WqeEvent {
                seq: 2,
                wqe_counter: 2,
                opcode: Opcode::RdmaWrite,
                icm: span,
                outcome: done
            },
            WqeEvent {
                seq: 3,
                wqe_counter: 3,
                opcode: Opcode::RdmaRead,
                icm: span,
                outcome: done
            },
            WqeEvent {
                seq: 4,
                wqe_counter: 4,
                opcode: Opcode::Nop,
                icm: None,
                outcome: WqeOutcome::Completed { byte_cnt: 0 }
            },
        ]
    );
    // Each READ saw ICM as the write before it left it.
    assert_eq!(
        r.readback.read_vec(0, 64).unwrap(),
        (0..64).collect::<Vec<u8>>()
    );
    assert_eq!(
        r.readback.read_vec(64, 64).unwrap(),
        (64..128).collect::<Vec<u8>>()
    );
}

/// With the ICM shared through an `Arc`, the hook itself observes ICM between writes (as
/// a test classifying packets mid-update does) and sees failures and flushes.
#[test]
fn hook_observes_icm_mid_doorbell_and_errors() {
    let icm = Arc::new(Icm::new(&[IcmLayout {
        kind: IcmKind::Steering,
        base: 1 << 36,
        log_size: 20,
        log_granularity: 6,
    }]));
    let mut r = Rig::new(4, 3);
    let ste = icm.alloc(IcmKind::Steering, 64, 6).unwrap();
    let seen: Arc<Mutex<Vec<(WqeOutcome, u8)>>> = Arc::default();
    let (log, view) = (seen.clone(), icm.clone());
    r.queue.set_wqe_hook(Some(Box::new(move |e: &WqeEvent| {
        let first = view.read_line(ste.addr).unwrap()[0];
        log.lock().unwrap().push((e.outcome, first));
    })));
    for (i, rkey) in [
        (1u8, ste.rkey),
        (2, ste.rkey),
        (3, ste.rkey ^ 7),
        (4, ste.rkey),
    ] {
        let pi = r.pi;
        let wqe = RdmaWqe {
            op: RdmaOp::Write,
            wqe_index: pi,
            qpn: QPN,
            flags: CtrlFlags::empty(),
            remote: RaddrSeg { raddr: 0, rkey },
            payload: Payload::Inline(&[i; 64]),
        };
        let mut buf = [0u8; 128];
        let n = wqe.encode(&mut buf).unwrap();
        r.post_bytes(&buf[..n]);
    }
    r.queue.doorbell(r.pi, &icm, &r.mrs).unwrap();
    let done = WqeOutcome::Completed { byte_cnt: 64 };
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (done, 1),
            (done, 2),
            (WqeOutcome::Failed(Syndrome::RemoteAccess), 2),
            (WqeOutcome::Flushed, 2),
        ]
    );
    r.queue.set_wqe_hook(None);
}

#[test]
fn configuration_is_checked() {
    let mem = HostMemory::new(4096);
    let ring = |log_entries, offset| RingConfig {
        mem: mem.clone(),
        offset,
        log_entries,
    };
    let cfg = |qpn, sq, cq, db| QueueConfig {
        qpn,
        sq,
        cq,
        cq_dbrec: DbRecord {
            mem: mem.clone(),
            offset: db,
        },
    };
    assert!(SteeringQueue::new(cfg(1, ring(4, 0), ring(4, 1024), 2048)).is_ok());
    assert_eq!(
        SteeringQueue::new(cfg(1 << 24, ring(4, 0), ring(4, 1024), 2048)).unwrap_err(),
        QueueError::QpnTooLarge(1 << 24)
    );
    assert!(matches!(
        SteeringQueue::new(cfg(1, ring(16, 0), ring(4, 1024), 2048)),
        Err(QueueError::RingTooLarge {
            ring: Ring::Send,
            ..
        })
    ));
    assert!(matches!(
        SteeringQueue::new(cfg(1, ring(4, 0), ring(6, 1024), 2048)),
        Err(QueueError::OutOfBuffer {
            ring: Ring::Completion,
            ..
        })
    ));
    assert!(matches!(
        SteeringQueue::new(cfg(1, ring(4, 0), ring(4, 1024), 4093)),
        Err(QueueError::OutOfBuffer {
            ring: Ring::CqDoorbellRecord,
            ..
        })
    ));
    fn send<T: Send>() {}
    send::<SteeringQueue>();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary bytes in the send ring: the doorbell never panics, consumes exactly the
    /// posted BBs, and reports one outcome per WQE it consumed.
    #[test]
    fn arbitrary_ring_contents_are_handled(
        ring in proptest::collection::vec(proptest::num::u8::ANY, 512),
        posted in 0u16..=8,
    ) {
        let mut r = Rig::new(3, 4);
        r.rings.write(0, &ring).unwrap();
        let report = r.queue.doorbell(posted, &r.icm, &r.mrs).unwrap();
        proptest::prop_assert_eq!(r.queue.sq_consumer(), posted);
        let consumed = report.completed + report.failed + report.flushed;
        proptest::prop_assert_eq!(consumed as u64, r.queue.wqes_consumed());
        proptest::prop_assert!(consumed <= posted as u32);
        proptest::prop_assert!(report.failed <= 1);
        proptest::prop_assert_eq!(r.poll_all().len() as u32, report.cqes_written);
    }
}

/// The queue remembers resolved keys across doorbells; a key freed or deregistered since
/// must fail exactly as an unknown one does.
#[test]
fn keys_freed_after_use_are_refused() {
    let mut r = Rig::new(4, 3);
    r.write_from_staging(0, 0, 64, true);
    r.read_to_readback(0, 0, 64, true);
    r.ring().unwrap();
    assert_eq!(
        r.poll_all(),
        vec![req(0, Opcode::RdmaWrite, 64), req(1, Opcode::RdmaRead, 64)]
    );
    // The same span again, under a new rkey: the old one is gone, the new one works.
    r.icm.free(r.ste.addr).unwrap();
    let again = r.icm.alloc(IcmKind::Steering, 4096, 6).unwrap();
    assert_eq!(again.addr, r.ste.addr);
    let old = std::mem::replace(&mut r.ste, again);
    r.write_from_staging(64, 64, 64, true);
    r.ring().unwrap();
    assert_eq!(r.poll_all(), vec![req(2, Opcode::RdmaWrite, 64)]);
    r.ste = old;
    r.write_from_staging(128, 0, 64, true);
    r.ring().unwrap();
    assert_eq!(
        r.poll_all(),
        vec![err(3, Opcode::RdmaWrite, Syndrome::RemoteAccess, 0)]
    );
    assert_eq!(r.icm_bytes(128, 64), vec![0; 64]);

    let mut r = Rig::new(4, 3);
    r.read_to_readback(0, 0, 64, true);
    r.ring().unwrap();
    assert_eq!(r.poll_all(), vec![req(0, Opcode::RdmaRead, 64)]);
    r.mrs.deregister(r.readback_mr.lkey).unwrap();
    r.read_to_readback(0, 0, 64, true);
    r.ring().unwrap();
    assert_eq!(
        r.poll_all(),
        vec![err(1, Opcode::RdmaRead, Syndrome::LocalProtection, 0)]
    );
}
