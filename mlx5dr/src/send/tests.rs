//! The send ring against the simulator: bytes in ICM, ring wrap-around, batching and
//! completion counts, error CQEs, ring-full handling.

use std::sync::Arc;

use ::sim::profile::DeviceModel;
use ste_builder::wqe::{cqe_owner_for, CqeOpcode, ErrSide, Opcode, ReqCqe, Syndrome, CQE_SIZE};

use super::*;
use crate::device::sim::SimBackend;
use crate::device::{IcmKind, IcmRegion};
use crate::test_rng::Rng;

fn backend() -> SimBackend {
    SimBackend::of_model(DeviceModel::ConnectX6Dx)
}

fn region(be: &SimBackend, size: u64) -> IcmRegion {
    be.alloc_icm(IcmKind::Steering, size, 12).unwrap()
}

fn icm(be: &SimBackend, addr: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    be.sim().icm().read(addr, &mut out).unwrap();
    out
}

fn cqes_written(be: &SimBackend, ring: &SendRing) -> u32 {
    be.sim()
        .with_queue(ring.qpn(), |q| q.cq_produced())
        .unwrap()
}

#[test]
fn writes_land_byte_exact() {
    let be = backend();
    let r = region(&be, 1 << 20);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let mut rng = Rng(7);
    let mut shadow = vec![0u8; 1 << 20];
    let writes: [(usize, usize); 7] = [
        (0, 64),
        (64, 3),
        (4096, 4096),
        (200_000, 64 << 10),
        (70, 10),
        // Overlapping writes land in order: the later one wins.
        (4096 + 100, 1000),
        ((1 << 20) - 64, 64),
    ];
    for (i, &(off, len)) in writes.iter().enumerate() {
        let data = rng.bytes(len);
        let id = ring.write(&r, r.addr + off as u64, &data).unwrap();
        assert_eq!(id, WriteId(i as u64));
        shadow[off..off + len].copy_from_slice(&data);
    }
    ring.flush().unwrap();
    assert_eq!(icm(&be, r.addr, 1 << 20), shadow);
    assert_eq!(ring.outstanding(), 0);

    // Other ICM kinds are written the same way.
    let m = be.alloc_icm(IcmKind::ModifyAction, 4096, 0).unwrap();
    ring.write(&m, m.addr + 8, &[0xab; 24]).unwrap();
    ring.flush().unwrap();
    assert_eq!(icm(&be, m.addr, 40)[8..32], [0xab; 24]);
}

#[test]
fn many_writes_wrap_both_rings_several_times() {
    let be = backend();
    let r = region(&be, 64 << 10);
    let cfg = SendConfig {
        log_sq_bbs: 4,
        signal_every: 4,
        doorbell_batch: 8,
        staging_size: 1024,
        max_write: 256,
        ..SendConfig::default()
    };
    let mut ring = SendRing::new(&be, cfg).unwrap();
    let mut rng = Rng(42);
    let mut shadow = vec![0u8; 64 << 10];
    for i in 0..600u64 {
        let len = 1 + rng.below(256) as usize;
        let off = rng.below((64 << 10) - len as u64) as usize;
        let data = rng.bytes(len);
        assert_eq!(
            ring.write(&r, r.addr + off as u64, &data).unwrap(),
            WriteId(i)
        );
        shadow[off..off + len].copy_from_slice(&data);
        if rng.below(50) == 0 {
            ring.flush().unwrap();
            assert_eq!(icm(&be, r.addr, 64 << 10), shadow);
        }
    }
    ring.flush().unwrap();
    assert_eq!(icm(&be, r.addr, 64 << 10), shadow);
    let s = ring.stats();
    assert_eq!((s.writes, s.wqes), (600, 1200));
    // 1200 WQEs over 16 slots, and far more bytes than the staging holds.
    assert!(s.wqes >= 16 * 10 && s.bytes >= 1024 * 10, "{s:?}");
    assert!(s.full_waits > 0, "{s:?}");
    assert_eq!(s.cqes, u64::from(cqes_written(&be, &ring)));
}

/// Writes copied straight through (a doorbell follows), gathered (more follow) and too
/// large to gather, in any mix and across both rings' ends, land byte-exact.
#[test]
fn gathered_and_direct_copies_mix() {
    let be = backend();
    let r = region(&be, 64 << 10);
    let cfg = SendConfig {
        log_sq_bbs: 5,
        signal_every: 3,
        doorbell_batch: 12,
        staging_size: 4096,
        max_write: 1024,
        ..SendConfig::default()
    };
    let mut ring = SendRing::new(&be, cfg).unwrap();
    let mut rng = Rng(9);
    let mut shadow = vec![0u8; 64 << 10];
    for _ in 0..1500 {
        let max = if rng.below(4) == 0 { 1024 } else { 128 };
        let len = 1 + rng.below(max) as usize;
        let off = rng.below((64 << 10) - len as u64) as usize;
        let data = rng.bytes(len);
        let addr = r.addr + off as u64;
        match rng.below(6) {
            0 => {
                ring.write_last(&r, addr, &data).unwrap();
                ring.flush().unwrap();
            }
            1 => {
                ring.write_last(&r, addr, &data).unwrap();
                ring.post(true).unwrap();
            }
            2 => {
                ring.write(&r, addr, &data).unwrap();
                ring.post(rng.below(2) == 0).unwrap();
                ring.poll().unwrap();
            }
            _ => {
                ring.write(&r, addr, &data).unwrap();
            }
        }
        shadow[off..off + len].copy_from_slice(&data);
    }
    ring.flush().unwrap();
    assert_eq!(icm(&be, r.addr, 64 << 10), shadow);
    let s = ring.stats();
    assert_eq!(s.cqes, u64::from(cqes_written(&be, &ring)));
    assert!(s.full_waits > 0, "{s:?}");
}

#[test]
fn batching_and_completion_counts() {
    let be = backend();
    let r = region(&be, 1 << 20);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let ste = [0x5a; 64];
    let mut n = 0u64;
    let mut write = |ring: &mut SendRing, k: u64| {
        for _ in 0..k {
            ring.write(&r, r.addr + 64 * n, &ste).unwrap();
            n += 1;
        }
    };

    // 10 writes: 20 WQEs on one doorbell; WQEs 7 and 15 ask for a CQE by the count,
    // and the last one (19) because it ends the doorbell.
    write(&mut ring, 10);
    assert_eq!(ring.stats().doorbells, 0, "nothing rung before the flush");
    ring.flush().unwrap();
    let s = ring.stats();
    assert_eq!((s.wqes, s.doorbells, s.signaled, s.cqes), (20, 1, 3, 3));
    assert_eq!(cqes_written(&be, &ring), 3);

    // 64 writes: the 128th WQE reaches the doorbell batch and rings it; the flush has
    // nothing left to ring. Every 8th WQE asks for a CQE, the last one included.
    write(&mut ring, 64);
    assert_eq!(ring.stats().doorbells, 2);
    ring.flush().unwrap();
    let s = ring.stats();
    assert_eq!((s.wqes, s.doorbells, s.signaled, s.cqes), (148, 2, 19, 19));

    // 100 writes: a doorbell at 128 WQEs, another for the last 72 at the flush.
    write(&mut ring, 100);
    ring.flush().unwrap();
    let s = ring.stats();
    assert_eq!((s.wqes, s.doorbells, s.signaled, s.cqes), (348, 4, 44, 44));
    assert_eq!(cqes_written(&be, &ring), 44);
    assert_eq!(s.full_waits, 0);
    for i in 0..n {
        assert_eq!(icm(&be, r.addr + 64 * i, 64), ste.to_vec());
    }
    // A flush with nothing queued rings nothing.
    ring.flush().unwrap();
    assert_eq!(ring.stats().doorbells, 4);
}

/// Ten 64-byte writes to consecutive lines with an error injected on WQE `nth`.
fn fail_at(nth: u64) -> (SimBackend, IcmRegion, SendRing, SendError) {
    let be = backend();
    let r = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    be.sim()
        .with_queue(ring.qpn(), |q| {
            q.inject_error(nth, Syndrome::LocalLength, 0x42)
        })
        .unwrap();
    for i in 0..10u64 {
        ring.write(&r, r.addr + 64 * i, &[i as u8 + 1; 64]).unwrap();
    }
    let err = ring.flush().unwrap_err();
    (be, r, ring, err)
}

#[test]
fn an_error_cqe_names_the_write_and_breaks_the_ring() {
    // WQE 6 is the WRITE of write 3.
    let (be, r, mut ring, err) = fail_at(6);
    assert_eq!(
        err,
        SendError::WqeFailed {
            write: WriteId(3),
            op: RdmaOp::Write,
            wqe_counter: 6,
            icm_addr: r.addr + 3 * 64,
            len: 64,
            syndrome: Syndrome::LocalLength,
            vendor_syndrome: 0x42
        }
    );
    assert!(
        err.to_string().starts_with("write #3: Write WQE 0x0006"),
        "{err}"
    );
    for i in 0..10u64 {
        let line = icm(&be, r.addr + 64 * i, 64);
        let want = if i < 3 { [i as u8 + 1; 64] } else { [0; 64] };
        assert_eq!(line, want.to_vec(), "line {i}");
    }
    // From now on the ring refuses everything, naming the first failure.
    assert_eq!(ring.failure(), Some(&err));
    assert_eq!(
        ring.write(&r, r.addr, &[0; 64]),
        Err(SendError::Broken(Box::new(err.clone())))
    );
    assert_eq!(ring.flush(), Err(SendError::Broken(Box::new(err))));

    // WQE 7 is the READ that fences write 3: the write itself landed.
    let (be, r, _ring, err) = fail_at(7);
    assert!(matches!(
        err,
        SendError::WqeFailed {
            write: WriteId(3),
            op: RdmaOp::Read,
            wqe_counter: 7,
            ..
        }
    ));
    assert_eq!(icm(&be, r.addr + 3 * 64, 64), vec![4; 64]);
    assert_eq!(icm(&be, r.addr + 4 * 64, 64), vec![0; 64]);
}

/// The ICM address the planted-CQE rings write to.
const PLANTED_WRITE_AT: u64 = 128;

/// A ring with one write (WQEs 0 and 1) posted but not rung, and `cqe` planted in the
/// completion slot the ring reads next, as a device would write it; then polled.
fn poll_with_planted_cqe(cqe: Cqe) -> (SimBackend, SendRing, u64, Result<(), SendError>) {
    let be = backend();
    let r = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    ring.write(&r, r.addr + PLANTED_WRITE_AT, &[7; 64]).unwrap();
    let ci = ring.cq.index();
    let log_cq = ring.queue.spec().log_cq_entries;
    let mut bytes = [0u8; CQE_SIZE];
    cqe.encode(cqe_owner_for(ci, log_cq), &mut bytes).unwrap();
    let at = (ci as usize & ((1 << log_cq) - 1)) * CQE_SIZE;
    ring.queue.cq().write(at, &bytes).unwrap();
    let polled = ring.poll();
    (be, ring, r.addr + PLANTED_WRITE_AT, polled)
}

/// CQEs the ring cannot have asked for (another queue's, an unknown kind, one for a
/// WQE that is not outstanding) are refused as bad completions that show the whole
/// CQE; an error CQE of the ring's queue, requester or responder, fails the write it
/// names. Each breaks the ring (so dropping it waits for nothing).
#[test]
fn unusual_cqes_are_judged_from_their_full_contents() {
    let (_be, ring, _, _) = poll_with_planted_cqe(Cqe::Invalid);
    // An INVALID slot is not new: nothing was consumed.
    assert_eq!((ring.stats().cqes, ring.outstanding()), (0, 2));
    let qpn = ring.qpn();
    drop(ring);
    let req = |qpn, wqe_counter| {
        Cqe::Req(ReqCqe {
            wqe_counter,
            byte_cnt: 64,
            opcode: Opcode::RdmaRead,
            qpn,
        })
    };
    let err = |side, qpn| {
        Cqe::Err(ErrCqe {
            side,
            wqe_counter: 1,
            syndrome: Syndrome::RemoteAccess,
            vendor_syndrome: 9,
            opcode: Opcode::RdmaRead,
            qpn,
            srqn: 5,
        })
    };
    // Every ring of a fresh simulator gets the same QP number.
    let foreign = [
        req(qpn + 1, 1),
        err(ErrSide::Requester, qpn + 1),
        Cqe::Other(CqeOpcode::Other(3)),
    ];
    for cqe in foreign {
        let (_be, ring, _, polled) = poll_with_planted_cqe(cqe);
        assert_eq!(ring.qpn(), qpn);
        let want = SendError::BadCompletion {
            cqe_index: 0,
            reason: format!("{cqe:?} on queue {qpn:#x}"),
        };
        assert_eq!(polled, Err(want.clone()), "{cqe:?}");
        assert_eq!(ring.failure(), Some(&want));
    }
    let (_be, _ring, _, polled) = poll_with_planted_cqe(req(qpn, 2));
    assert_eq!(
        polled,
        Err(SendError::BadCompletion {
            cqe_index: 0,
            reason: "WQE counter 0x0002 is not outstanding (outstanding: 0x0000..0x0002)"
                .to_string(),
        })
    );
    for side in [ErrSide::Requester, ErrSide::Responder] {
        let (_be, ring, icm_addr, polled) = poll_with_planted_cqe(err(side, qpn));
        let want = SendError::WqeFailed {
            write: WriteId(0),
            op: RdmaOp::Read,
            wqe_counter: 1,
            icm_addr,
            len: 64,
            syndrome: Syndrome::RemoteAccess,
            vendor_syndrome: 9,
        };
        assert_eq!(polled, Err(want.clone()), "{side:?}");
        assert_eq!(ring.failure(), Some(&want));
    }
}

/// The remote address in both WQEs of a write is the offset into the region (ICM is
/// registered zero-based), under the region's rkey.
#[test]
fn wqes_carry_the_offset_into_the_region() {
    let be = backend();
    let first = region(&be, 4096);
    let r = region(&be, 8192);
    assert_ne!(r.addr, 0);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    ring.write(&r, r.addr + 4160, &[0x3c; 64]).unwrap();
    // The WQEs reach the send ring with the doorbell.
    ring.flush().unwrap();
    for slot in 0..2 {
        let mut bb = [0u8; BB_SIZE];
        ring.queue.sq().read(slot * BB_SIZE, &mut bb).unwrap();
        let remote = RaddrSeg::decode(&bb[CTRL_SEG_SIZE..]).unwrap();
        assert_eq!(
            remote,
            RaddrSeg {
                raddr: 4160,
                rkey: r.rkey
            },
            "WQE {slot}"
        );
    }
    assert_eq!(icm(&be, r.addr + 4160, 64), vec![0x3c; 64]);
    // The same offset in the other region is untouched.
    assert_eq!(icm(&be, first.addr, 4096), vec![0; 4096]);
}

#[test]
fn writes_outside_their_region_are_refused_before_posting() {
    let be = backend();
    let r = region(&be, 4096);
    let other = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let outside = |icm_addr, len| SendError::OutsideRegion {
        icm_addr,
        len,
        region_addr: r.addr,
        region_size: 4096,
    };
    // Running 32 bytes past the end, starting before the start, and an address of
    // another region (whose offset would be small enough to land somewhere).
    for (addr, len) in [
        (r.addr + 4096 - 32, 64),
        (r.addr.wrapping_sub(64), 64),
        (other.addr, 64),
        (u64::MAX - 8, 64),
    ] {
        assert_eq!(ring.write(&r, addr, &vec![2; len]), Err(outside(addr, len)));
    }
    // Nothing was posted and the ring goes on.
    assert_eq!((ring.stats().writes, ring.stats().wqes), (0, 0));
    assert!(ring.failure().is_none());
    assert_eq!(ring.write(&r, r.addr + 4096 - 64, &[1; 64]), Ok(WriteId(0)));
    ring.flush().unwrap();
    assert_eq!(icm(&be, r.addr + 4096 - 64, 64), vec![1; 64]);
    assert_eq!(icm(&be, other.addr, 64), vec![0; 64]);
    let err = ring.write(&r, r.addr + 4096, &[1; 1]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("1 bytes at ICM {:#x} are outside", r.addr + 4096)),
        "{err}"
    );
}

#[test]
fn regions_the_device_does_not_know_fail_with_remote_access() {
    let be = backend();
    let r = region(&be, 4096);
    // A region claiming more than the device allocated: the ring lets the write
    // through, the device refuses it, and the error names the ICM address.
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let larger = IcmRegion { size: 8192, ..r };
    ring.write(&r, r.addr, &[1; 64]).unwrap();
    ring.write(&larger, r.addr + 4096 - 32, &[2; 64]).unwrap();
    ring.write(&r, r.addr + 64, &[3; 64]).unwrap();
    match ring.flush() {
        Err(SendError::WqeFailed {
            write,
            op,
            syndrome,
            icm_addr,
            ..
        }) => {
            assert_eq!(
                (write, op, syndrome),
                (WriteId(1), RdmaOp::Write, Syndrome::RemoteAccess)
            );
            assert_eq!(icm_addr, r.addr + 4096 - 32);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(icm(&be, r.addr, 64), vec![1; 64]);
    assert_eq!(icm(&be, r.addr + 4096 - 64, 64), vec![0; 64]);
    assert_eq!(icm(&be, r.addr + 64, 64), vec![0; 64]);

    // A wrong rkey, and a region freed since.
    let freed = region(&be, 4096);
    be.free_icm(&freed).unwrap();
    for target in [
        IcmRegion {
            rkey: r.rkey ^ 1,
            ..r
        },
        freed,
    ] {
        let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
        ring.write(&target, target.addr, &[9; 64]).unwrap();
        assert!(matches!(
            ring.flush(),
            Err(SendError::WqeFailed {
                write: WriteId(0),
                syndrome: Syndrome::RemoteAccess,
                ..
            })
        ));
    }
    assert_eq!(icm(&be, r.addr, 64), vec![1; 64]);
}

#[test]
fn a_full_ring_polls_for_room() {
    let be = backend();
    let r = region(&be, 1 << 16);
    // Four writes fill the send ring; two 128-byte writes fill the staging.
    for (staging_size, max_write) in [(1 << 12, 64), (256, 128)] {
        let cfg = SendConfig {
            log_sq_bbs: 3,
            signal_every: 8,
            doorbell_batch: 8,
            staging_size,
            max_write,
            ..SendConfig::default()
        };
        let mut ring = SendRing::new(&be, cfg).unwrap();
        for i in 0..50u64 {
            ring.write(&r, r.addr + 128 * i, &vec![i as u8; max_write])
                .unwrap();
            assert!(ring.outstanding() <= 8);
        }
        ring.flush().unwrap();
        let s = ring.stats();
        assert!(s.full_waits > 0, "{s:?}");
        assert!(s.doorbells >= 50 * 2 / 8, "{s:?}");
        for i in 0..50u64 {
            assert_eq!(
                icm(&be, r.addr + 128 * i, max_write),
                vec![i as u8; max_write]
            );
        }
    }
}

#[test]
fn a_full_ring_times_out_while_completions_are_held_and_recovers() {
    let be = backend();
    let r = region(&be, 4096);
    let cfg = SendConfig {
        log_sq_bbs: 3,
        timeout: Duration::from_millis(50),
        ..SendConfig::default()
    };
    let mut ring = SendRing::new(&be, cfg).unwrap();
    be.sim()
        .with_queue(ring.qpn(), |q| q.hold_completions())
        .unwrap();
    for i in 0..4u64 {
        ring.write(&r, r.addr + 64 * i, &[i as u8 + 1; 64]).unwrap();
    }
    let err = ring.write(&r, r.addr + 256, &[5; 64]).unwrap_err();
    assert!(
        matches!(err, SendError::Timeout { outstanding: 8, .. }),
        "{err:?}"
    );
    assert!(!err.breaks_ring() && ring.failure().is_none());
    assert_eq!(ring.stats().writes, 4);
    // The device executed the WQEs; only the completions are late.
    assert_eq!(icm(&be, r.addr + 192, 64), vec![4; 64]);

    be.sim()
        .with_queue(ring.qpn(), |q| q.resume_completions())
        .unwrap()
        .unwrap();
    assert_eq!(ring.write(&r, r.addr + 256, &[5; 64]).unwrap(), WriteId(4));
    ring.flush().unwrap();
    assert_eq!(icm(&be, r.addr + 256, 64), vec![5; 64]);
}

#[test]
fn lengths_and_configurations_are_checked() {
    let be = backend();
    let r = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let max = 64 << 10;
    assert_eq!(
        ring.write(&r, r.addr, &[]),
        Err(SendError::BadLength { len: 0, max })
    );
    assert_eq!(
        ring.write(&r, r.addr, &vec![0; max + 1]),
        Err(SendError::BadLength { len: max + 1, max })
    );
    // Refused writes change nothing.
    assert_eq!(ring.write(&r, r.addr, &[1; 8]).unwrap(), WriteId(0));
    ring.flush().unwrap();

    let bad = [
        SendConfig {
            log_sq_bbs: 0,
            ..SendConfig::default()
        },
        SendConfig {
            log_sq_bbs: 16,
            ..SendConfig::default()
        },
        SendConfig {
            signal_every: 0,
            ..SendConfig::default()
        },
        SendConfig {
            doorbell_batch: 0,
            ..SendConfig::default()
        },
        SendConfig {
            staging_size: 1000,
            ..SendConfig::default()
        },
        SendConfig {
            staging_size: 1024,
            max_write: 1025,
            ..SendConfig::default()
        },
        SendConfig {
            max_write: 0,
            ..SendConfig::default()
        },
    ];
    for cfg in bad {
        assert!(
            matches!(SendRing::new(&be, cfg.clone()), Err(SendError::Config(_))),
            "{cfg:?}"
        );
    }
}

#[test]
fn dropping_a_ring_completes_its_writes_and_destroys_its_queue() {
    let be = backend();
    let r = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let qpn = ring.qpn();
    ring.write(&r, r.addr, &[0x77; 64]).unwrap();
    drop(ring);
    assert_eq!(icm(&be, r.addr, 64), vec![0x77; 64]);
    assert!(be.sim().with_queue(qpn, |_| ()).is_err());
}

#[test]
fn rings_on_one_device_work_from_several_threads() {
    let be = Arc::new(backend());
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let be = Arc::clone(&be);
            std::thread::spawn(move || {
                let r = region(&be, 1 << 16);
                let mut ring = SendRing::new(be.as_ref(), SendConfig::default()).unwrap();
                for i in 0..500u64 {
                    ring.write(&r, r.addr + i * 64, &[t ^ i as u8; 64]).unwrap();
                }
                ring.flush().unwrap();
                for i in 0..500u64 {
                    assert_eq!(icm(&be, r.addr + i * 64, 64), vec![t ^ i as u8; 64]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// `write_last` posts its READ signaled: with the flush after it, the counts are those
/// of `write` plus `flush`, and the bytes land.
#[test]
fn write_last_rings_at_once_and_counts_as_a_flush_would() {
    let be = backend();
    let r = region(&be, 1 << 16);
    let mut a = SendRing::new(&be, SendConfig::default()).unwrap();
    let mut b = SendRing::new(&be, SendConfig::default()).unwrap();
    for round in 0..5u64 {
        for i in 0..round {
            let addr = r.addr + 64 * (8 * round + i);
            a.write(&r, addr, &[round as u8; 64]).unwrap();
            b.write(&r, addr + 4096, &[round as u8; 64]).unwrap();
        }
        let addr = r.addr + 64 * (8 * round + 7);
        a.write(&r, addr, &[0xee; 64]).unwrap();
        a.flush().unwrap();
        b.write_last(&r, addr + 4096, &[0xee; 64]).unwrap();
        b.flush().unwrap();
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!(
            (sa.wqes, sa.doorbells, sa.signaled, sa.cqes),
            (sb.wqes, sb.doorbells, sb.signaled, sb.cqes)
        );
        assert_eq!(icm(&be, addr + 4096, 64), vec![0xee; 64]);
    }
}

/// A `write_last` that more writes follow costs one extra CQE and nothing else.
#[test]
fn write_last_followed_by_more_writes_is_harmless() {
    let be = backend();
    let r = region(&be, 1 << 16);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    ring.write_last(&r, r.addr, &[1; 64]).unwrap();
    ring.write(&r, r.addr + 64, &[2; 64]).unwrap();
    ring.flush().unwrap();
    let s = ring.stats();
    // The READ of the first write, and the last WQE of the doorbell.
    assert_eq!((s.wqes, s.doorbells, s.signaled, s.cqes), (4, 1, 2, 2));
    assert_eq!(icm(&be, r.addr, 64), vec![1; 64]);
    assert_eq!(icm(&be, r.addr + 64, 64), vec![2; 64]);
}

/// The consumer index goes to the CQ doorbell record only when a doorbell needs it: the
/// record lags the CQEs consumed, yet never by so much that the device could take the
/// completion ring for full, and it never does.
#[test]
fn the_cq_doorbell_record_is_published_only_when_needed() {
    let be = backend();
    let r = region(&be, 4096);
    let cfg = SendConfig {
        log_sq_bbs: 2,
        signal_every: 1,
        doorbell_batch: 2,
        staging_size: 256,
        max_write: 64,
        ..SendConfig::default()
    };
    let mut ring = SendRing::new(&be, cfg).unwrap();
    let entries = 1u32 << ring.queue.spec().log_cq_entries;
    let mut lagged = 0;
    for i in 0..100u64 {
        ring.write(&r, r.addr + (i % 64) * 64, &[i as u8; 64])
            .unwrap();
        ring.flush().unwrap();
        let mut word = [0u8; 4];
        ring.queue.cq_dbrec().read(0, &mut word).unwrap();
        let behind = ring.cq.index() - u32::from_be_bytes(word);
        assert!(behind <= entries, "{behind} behind at write {i}");
        lagged += u32::from(behind > 0);
    }
    assert!(lagged > 0);
    // Every WQE signaled and every CQE consumed: nothing lost to an overrun.
    assert_eq!(ring.stats().cqes, 200);
    assert_eq!(ring.stats().cqes, u64::from(cqes_written(&be, &ring)));
}

/// A failed WQE tells each earlier-accepted write's fate: writes before the failed one
/// landed, and so did the failed write itself when only its fencing READ failed; the
/// failed write's WRITE and every later write did not. Other failures tell nothing.
#[test]
fn a_failure_tells_each_write_its_fate() {
    let failed = |write, op| SendError::WqeFailed {
        write: WriteId(write),
        op,
        wqe_counter: 0,
        icm_addr: 0,
        len: 64,
        syndrome: Syndrome::LocalProtection,
        vendor_syndrome: 0,
    };
    let read = failed(5, RdmaOp::Read);
    assert_eq!(read.fate_of(WriteId(4)), WriteFate::Landed);
    assert_eq!(read.fate_of(WriteId(5)), WriteFate::Landed);
    assert_eq!(read.fate_of(WriteId(6)), WriteFate::NotLanded);
    let write = failed(5, RdmaOp::Write);
    assert_eq!(write.fate_of(WriteId(4)), WriteFate::Landed);
    assert_eq!(write.fate_of(WriteId(5)), WriteFate::NotLanded);
    assert_eq!(write.fate_of(WriteId(6)), WriteFate::NotLanded);
    let timeout = SendError::Timeout {
        timeout: Duration::from_millis(1),
        outstanding: 2,
    };
    assert_eq!(timeout.fate_of(WriteId(0)), WriteFate::Unknown);
    let broken = SendError::Broken(Box::new(read));
    assert_eq!(broken.fate_of(WriteId(4)), WriteFate::Unknown);
}

/// Posting without waiting: queued writes are in flight until a doorbell and their
/// completions; a consumed completion confirms its write and every earlier one.
#[test]
fn confirmations_follow_the_completions() {
    let be = backend();
    let r = region(&be, 4096);
    let mut ring = SendRing::new(&be, SendConfig::default()).unwrap();
    let tags: Vec<WriteTag> = (0..4u64)
        .map(|i| {
            let id = ring.write(&r, r.addr + 64 * i, &[1; 64]).unwrap();
            ring.tag(id)
        })
        .collect();
    ring.post(false).unwrap();
    assert_eq!(ring.stats().doorbells, 0);
    assert_eq!(ring.confirmation(tags[3]), Confirmation::InFlight);
    assert_eq!(icm(&be, r.addr, 64), [0; 64], "no doorbell yet");
    ring.post(true).unwrap();
    assert_eq!(
        ring.confirmation(tags[0]),
        Confirmation::InFlight,
        "not polled"
    );
    ring.poll().unwrap();
    // The doorbell's last WQE asked for a CQE, which the poll consumed.
    for t in &tags {
        assert_eq!(ring.confirmation(*t), Confirmation::Landed);
    }
    let more = ring.write(&r, r.addr, &[2; 64]).unwrap();
    assert_eq!(ring.confirmation(ring.tag(more)), Confirmation::InFlight);
    ring.flush().unwrap();
    assert_eq!(ring.confirmation(ring.tag(more)), Confirmation::Landed);
}

/// After an error CQE, the writes before the failed one are confirmed and the rest
/// failed, on the broken ring and on the fresh ring that succeeds it; a tag of an
/// unrelated ring instance is refused.
#[test]
fn a_successor_answers_for_the_broken_ring() {
    // Writes 0..3 land, the WRITE of write 3 fails.
    let (be, _r, mut ring, err) = fail_at(6);
    let tag = |i| WriteTag {
        gen: ring.gen,
        id: WriteId(i),
    };
    let (landed, failed) = (tag(2), tag(3));
    assert_eq!(ring.confirmation(landed), Confirmation::Landed);
    assert_eq!(ring.confirmation(failed), Confirmation::Failed(err.clone()));
    let mut fresh = SendRing::new(&be, SendConfig::default()).unwrap();
    fresh.succeed(&mut ring);
    assert_eq!(fresh.confirmation(landed), Confirmation::Landed);
    assert_eq!(fresh.confirmation(failed), Confirmation::Failed(err));
    let stranger = SendRing::new(&be, SendConfig::default()).unwrap();
    assert_eq!(
        stranger.confirmation(landed),
        Confirmation::Failed(SendError::Gone)
    );
}
