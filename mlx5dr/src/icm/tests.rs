//! Pool and slab tests on the simulator: alignment, growth, exhaustion, deferred reuse,
//! slab behaviour, accounting, teardown, a model-checked random walk and threads.

use std::sync::Arc;

use ::sim::cmd::{CommandFault, Status};
use ::sim::profile::{DeviceModel, Profile};
use proptest::prelude::*;

use super::*;
use crate::cmd::opcode::SYNC_STEERING;
use crate::device::sim::SimBackend;
use crate::device::Device;
use crate::send::{SendConfig, SendRing};

fn backend(profile: Profile) -> Arc<SimBackend> {
    Arc::new(SimBackend::with_profile(profile).unwrap())
}

fn cx6() -> Arc<SimBackend> {
    backend(Profile::new(DeviceModel::ConnectX6Dx))
}

/// A ConnectX-6 Dx whose steering ICM is `2^log_size` bytes.
fn small(log_size: u8) -> Arc<SimBackend> {
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.log_steering_sw_icm_size = log_size;
    backend(p)
}

fn steering_cfg(be: &Arc<SimBackend>) -> PoolConfig {
    PoolConfig::steering(&DeviceCaps::query(&**be).unwrap())
}

/// No sync happens on the threshold.
fn no_threshold(mut cfg: PoolConfig) -> PoolConfig {
    cfg.sync_min_bytes = u64::MAX;
    cfg
}

fn pool(be: &Arc<SimBackend>, cfg: PoolConfig) -> Arc<IcmPool> {
    let dev: Arc<dyn Device> = be.clone();
    Arc::new(IcmPool::new(dev, cfg).unwrap())
}

fn syncs(be: &SimBackend) -> u64 {
    be.sim().with_firmware(|fw| fw.sync_count())
}

fn icm_bytes(be: &SimBackend) -> u64 {
    be.sim().icm().usage().bytes
}

/// The chunk lies in one live device allocation reachable with its rkey.
fn reachable(be: &SimBackend, addr: u64, len: u64, rkey: u32) {
    be.sim()
        .icm()
        .check_rkey(rkey, addr, len)
        .unwrap_or_else(|e| panic!("{len} bytes at {addr:#x}: {e}"));
}

#[test]
fn handles_are_send_and_sync_and_small() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<IcmPool>();
    send_sync::<EntrySlab>();
    send_sync::<Chunk>();
    send_sync::<Entry>();
    assert_eq!(std::mem::size_of::<Chunk>(), 16);
    assert_eq!(std::mem::size_of::<Entry>(), 16);
}

#[test]
fn chunks_are_aligned_to_their_size_inside_registered_regions() {
    let be = cx6();
    let p = pool(&be, steering_cfg(&be));
    let mut chunks = Vec::new();
    for log in [0u8, 3, 1, 10, 0, 7, 12, 2] {
        let c = p.alloc(log).unwrap();
        assert_eq!(c.log_entries(), log);
        assert_eq!(c.entries(), 1 << log);
        assert_eq!(c.byte_size(), 64 << log);
        assert_eq!(c.icm_addr() % c.byte_size(), 0, "{c:?}");
        reachable(&be, c.icm_addr(), c.byte_size(), c.rkey());
        // Writes are aimed with the device region the chunk lies in.
        assert!(p.regions().contains(&c.region()), "{:?}", c.region());
        assert_eq!(c.entry_addr(0), Some(c.icm_addr()));
        assert_eq!(c.entry_addr(c.entries()), None);
        // The last line is writable through the device.
        let last = c.entry_addr(c.entries() - 1).unwrap();
        be.sim().icm().write(last, &[0xab; 64]).unwrap();
        chunks.push(c);
    }
    for (i, a) in chunks.iter().enumerate() {
        for b in &chunks[..i] {
            let (a0, a1) = (a.icm_addr(), a.icm_addr() + a.byte_size());
            let (b0, b1) = (b.icm_addr(), b.icm_addr() + b.byte_size());
            assert!(a1 <= b0 || b1 <= a0, "{a:?} overlaps {b:?}");
        }
    }
    assert_eq!(
        p.alloc(21),
        Err(IcmError::ChunkTooLarge {
            kind: IcmKind::Steering,
            log_entries: 21,
            max_log_entries: 20
        })
    );
}

#[test]
fn chunks_and_entries_are_written_through_their_region() {
    let be = cx6();
    let p = pool(&be, steering_cfg(&be));
    let mut slab = EntrySlab::new(p.clone());
    let mut ring = SendRing::new(&*be, SendConfig::default()).unwrap();
    let _first = p.alloc(12).unwrap();
    let table = p.alloc(4).unwrap();
    let entry = slab.alloc().unwrap();
    let last = table.entry_addr(15).unwrap();
    ring.write(&table.region(), last, &[0x5a; 64]).unwrap();
    let region = slab.region(&entry).unwrap();
    ring.write(&region, entry.icm_addr(), &[0xa5; 64]).unwrap();
    ring.flush().unwrap();
    assert_eq!(be.sim().icm().read_line(last).unwrap(), [0x5a; 64]);
    assert_eq!(
        be.sim().icm().read_line(entry.icm_addr()).unwrap(),
        [0xa5; 64]
    );
}

#[test]
fn grows_by_an_eighth_of_what_it_holds() {
    let be = cx6();
    let mut cfg = no_threshold(steering_cfg(&be));
    cfg.log_initial_region = 12; // 4 KiB: 64 STEs
    cfg.max_log_chunk = 12; // regions up to 256 KiB
    let p = pool(&be, cfg);
    let mut chunks = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..400 {
        let before = p.stats();
        chunks.push(p.alloc(6).unwrap());
        let after = p.stats();
        if after.regions > before.regions {
            // Each new region: the largest power of two not above an eighth of what the
            // pool held, at least the initial 4 KiB, at most the largest chunk.
            let eighth = before.allocated_bytes / 8;
            let mut want = 4u64 << 10;
            while want * 2 <= eighth && want < 256 << 10 {
                want *= 2;
            }
            assert_eq!(after.allocated_bytes - before.allocated_bytes, want);
            sizes.push(want);
        }
        // What is held but not handed out stays within the newest region.
        assert!(after.free_bytes() < *sizes.last().unwrap());
    }
    assert_eq!(&sizes[..16], &[4 << 10; 16]);
    assert_eq!(&sizes[16..24], &[8 << 10; 8]);
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    for r in p.regions() {
        assert_eq!(r.addr % r.size, 0);
    }
    let s = p.stats();
    assert_eq!(s.allocated_bytes, icm_bytes(&be));
    assert_eq!(s.chunks, 400);
    assert_eq!(s.chunk_bytes, 400 << 12);
    assert!(s.free_bytes() * 8 <= s.allocated_bytes, "{s:?}");

    // A chunk bigger than the preferred region gets a region of its own size.
    let mut cfg = no_threshold(steering_cfg(&be));
    cfg.log_initial_region = 12;
    let q = pool(&be, cfg);
    let big = q.alloc(10).unwrap();
    assert_eq!(q.regions()[0].size, 64 << 10);
    assert_eq!(big.icm_addr() % (64 << 10), 0);
    drop((chunks, big));
}

#[test]
fn exhaustion_is_typed_and_changes_nothing() {
    // 64 KiB of steering ICM: DR's largest table there is 2^7 STEs (8 KiB).
    let be = small(16);
    let cfg = no_threshold(steering_cfg(&be));
    assert_eq!(cfg.max_log_chunk, 7);
    let p = pool(&be, cfg);
    let mut chunks: Vec<Chunk> = (0..8).map(|_| p.alloc(7).unwrap()).collect();
    let before = p.stats();
    let icm_before = be.sim().icm().usage();
    let err = p.alloc(7).unwrap_err();
    assert_eq!(
        err,
        IcmError::Exhausted {
            kind: IcmKind::Steering,
            requested: 8 << 10,
            in_use: 64 << 10,
            allocated: 64 << 10
        }
    );
    assert_eq!(
        err.to_string(),
        "Steering ICM exhausted: 8192 bytes asked for, 65536 bytes in use of 65536 allocated from the device"
    );
    assert_eq!(p.stats(), before);
    assert_eq!(be.sim().icm().usage(), icm_before);
    // Nothing hot, so no sync was wasted on it.
    assert_eq!(syncs(&be), 0);

    // With a freed chunk waiting, the pool syncs instead of failing, and reuses it.
    let freed = chunks.pop().unwrap();
    let addr = freed.icm_addr();
    p.free(freed).unwrap();
    let again = p.alloc(7).unwrap();
    assert_eq!(again.icm_addr(), addr);
    assert_eq!(syncs(&be), 1);

    // Smaller requests still fail typed once every byte is taken.
    assert!(matches!(
        p.alloc(0),
        Err(IcmError::Exhausted { requested: 64, .. })
    ));

    // A kind the device does not have is a device error.
    let dev: Arc<dyn Device> = be.clone();
    let mut encap = steering_cfg(&be);
    encap.kind = IcmKind::Encap;
    let e = IcmPool::new(dev, encap).unwrap();
    assert!(matches!(
        e.alloc(0),
        Err(IcmError::Device {
            kind: IcmKind::Encap,
            source: DeviceError::NoIcmKind(IcmKind::Encap),
            ..
        })
    ));
}

#[test]
fn device_refusals_halve_the_region() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    // The next device allocation fails (as if out of room): the pool asks for half.
    be.sim().fail_icm_alloc(0);
    let c = p.alloc(0).unwrap();
    assert_eq!(p.regions()[0].size, 512 << 10);
    reachable(&be, c.icm_addr(), 64, c.rkey());
}

#[test]
fn a_freed_chunk_waits_for_a_sync() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let a = p.alloc(4).unwrap();
    let a_addr = a.icm_addr();
    p.free(a).unwrap();
    assert_eq!(p.stats().hot_bytes, 1024);
    // Plenty of free memory: no sync, and the freed span is not handed out.
    let others: Vec<Chunk> = (0..16).map(|_| p.alloc(4).unwrap()).collect();
    for c in &others {
        assert_ne!(c.icm_addr(), a_addr);
    }
    assert_eq!(syncs(&be), 0);
    p.sync().unwrap();
    assert_eq!(syncs(&be), 1);
    let s = p.stats();
    assert_eq!((s.hot_bytes, s.pending_bytes, s.syncs), (0, 0, 1));
    // The lowest free block is the one freed.
    assert_eq!(p.alloc(4).unwrap().icm_addr(), a_addr);
}

#[test]
fn freed_memory_past_the_threshold_syncs() {
    let be = cx6();
    let mut cfg = steering_cfg(&be);
    cfg.sync_min_bytes = 4096;
    cfg.sync_shift = 63;
    let p = pool(&be, cfg);
    let chunks: Vec<Chunk> = (0..8).map(|_| p.alloc(3).unwrap()).collect();
    for (i, c) in chunks.into_iter().enumerate() {
        p.free(c).unwrap();
        // 512 bytes each: the eighth free reaches 4096.
        assert_eq!(syncs(&be), u64::from(i == 7), "after free {i}");
    }
    let s = p.stats();
    assert_eq!((s.hot_bytes, s.pending_bytes), (0, 0));
}

#[test]
fn a_failed_sync_reuses_nothing() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let c = p.alloc(2).unwrap();
    p.free(c).unwrap();
    be.sim().inject_command_fault(CommandFault {
        times: 1,
        ..CommandFault::on_opcode(SYNC_STEERING, Status::InternalError, 0x5eed)
    });
    match p.sync() {
        Err(IcmError::Sync { kind, source }) => {
            assert_eq!(kind, IcmKind::Steering);
            assert_eq!(source.command(), "SYNC_STEERING");
        }
        other => panic!("{other:?}"),
    }
    let s = p.stats();
    assert_eq!((s.hot_bytes, s.pending_bytes), (256, 256));
    assert_eq!((s.syncs, s.sync_failures), (0, 1));
    p.sync().unwrap();
    let s = p.stats();
    assert_eq!((s.hot_bytes, s.pending_bytes, s.syncs), (0, 0, 1));
}

#[test]
fn foreign_chunks_are_refused() {
    let be = cx6();
    let p = pool(&be, steering_cfg(&be));
    let q = pool(&be, steering_cfg(&be));
    let c = q.alloc(0).unwrap();
    let addr = c.icm_addr();
    assert_eq!(
        p.free(c),
        Err(IcmError::Foreign {
            kind: IcmKind::Steering,
            what: "chunk",
            owner: "pool",
            addr
        })
    );
}

#[test]
fn the_slab_serves_single_entries_from_blocks() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let mut slab = EntrySlab::new(p.clone());
    let mut entries: Vec<Entry> = (0..64).map(|_| slab.alloc().unwrap()).collect();
    let s = p.stats();
    assert_eq!((s.chunks, s.slab_bytes), (0, 4096));
    let base = entries[0].icm_addr();
    assert_eq!(base % 4096, 0);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.icm_addr(), base + 64 * i as u64);
        reachable(&be, e.icm_addr(), 64, e.rkey());
        let region = slab.region(e).unwrap();
        assert!(p.regions().contains(&region));
        assert_eq!(region.rkey, e.rkey());
    }
    // The 65th takes a second block.
    entries.push(slab.alloc().unwrap());
    assert_eq!(p.stats().slab_bytes, 8192);
    let st = slab.stats();
    assert_eq!(
        (st.blocks, st.block_bytes, st.live_entries, st.free_entries),
        (2, 8192, 65, 63)
    );

    // A freed entry is not reused before a sync...
    let freed = entries.swap_remove(5);
    let freed_addr = freed.icm_addr();
    slab.free(freed).unwrap();
    assert_eq!(slab.stats().hot_entries, 1);
    for _ in 0..63 {
        let e = slab.alloc().unwrap();
        assert_ne!(e.icm_addr(), freed_addr);
        entries.push(e);
    }
    // ...and is once one has run.
    p.sync().unwrap();
    let e = slab.alloc().unwrap();
    assert_eq!(e.icm_addr(), freed_addr);
    entries.push(e);
    assert_eq!(slab.stats().hot_entries, 0);
    // Nothing went through the buddy for entries beyond the two blocks.
    assert_eq!(p.stats().slab_bytes, 8192);

    // An entry of another slab is refused, and stays usable with its own.
    let mut other = EntrySlab::new(p.clone());
    let o = other.alloc().unwrap();
    let o_addr = o.icm_addr();
    let o_rkey = o.rkey();
    assert_eq!(slab.region(&o), None);
    assert_eq!(other.region(&o).map(|r| r.rkey), Some(o_rkey));
    assert!(matches!(
        slab.free(o),
        Err(IcmError::Foreign { what: "entry", owner: "slab", addr, .. }) if addr == o_addr
    ));
    let o2 = other.alloc().unwrap();
    assert_eq!((o2.icm_addr(), o2.rkey()), (o_addr + 64, o_rkey));
    other.free(o2).unwrap();
}

#[test]
fn an_entry_freed_after_a_sync_waits_for_the_next() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let mut slab = EntrySlab::new(p.clone());
    let mut entries: Vec<Entry> = (0..64).map(|_| slab.alloc().unwrap()).collect();
    // The slab has not looked at the pool since this sync...
    p.sync().unwrap();
    // ...when it frees an entry: that sync does not cover it.
    let freed = entries.pop().unwrap();
    let addr = freed.icm_addr();
    slab.free(freed).unwrap();
    for _ in 0..64 {
        let e = slab.alloc().unwrap();
        assert_ne!(e.icm_addr(), addr);
        entries.push(e);
    }
    // Both blocks are full now; after the next sync the freed entry is the one free.
    p.sync().unwrap();
    assert_eq!(slab.alloc().unwrap().icm_addr(), addr);
}

#[test]
fn wholly_free_blocks_go_back_to_the_pool_but_one() {
    let be = cx6();
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let mut slab = EntrySlab::new(p.clone());
    let entries: Vec<Entry> = (0..192).map(|_| slab.alloc().unwrap()).collect();
    assert_eq!(p.stats().slab_bytes, 3 * 4096);
    for e in entries {
        slab.free(e).unwrap();
    }
    assert_eq!(slab.stats().hot_entries, 192);
    // Freed entries reported in batches of 64 count toward the next sync.
    assert_eq!(p.stats().pending_bytes, 192 * 64);
    p.sync().unwrap();
    let e = slab.alloc().unwrap();
    let st = slab.stats();
    assert_eq!((st.blocks, st.live_entries, st.hot_entries), (1, 1, 0));
    assert_eq!(p.stats().slab_bytes, 4096);
    slab.free(e).unwrap();
}

#[test]
fn slab_exhaustion_syncs_its_hot_entries_then_fails_typed() {
    let be = small(16);
    let p = pool(&be, no_threshold(steering_cfg(&be)));
    let mut slab = EntrySlab::new(p.clone());
    // 64 KiB is 16 blocks of 64 STEs.
    let mut entries: Vec<Entry> = (0..1024).map(|_| slab.alloc().unwrap()).collect();
    let before = (p.stats(), slab.stats());
    assert!(matches!(
        slab.alloc(),
        Err(IcmError::Exhausted {
            requested: 4096,
            in_use: 65536,
            ..
        })
    ));
    assert_eq!((p.stats(), slab.stats()), before);
    let freed = entries.pop().unwrap();
    let addr = freed.icm_addr();
    slab.free(freed).unwrap();
    let s0 = syncs(&be);
    let again = slab.alloc().unwrap();
    assert_eq!(again.icm_addr(), addr);
    assert_eq!(syncs(&be), s0 + 1);
}

#[test]
fn host_memory_is_bits_per_entry_not_bytes() {
    let be = cx6();
    let p = pool(&be, steering_cfg(&be));
    // A 2^20-entry table: one 64 MiB region and its buddy.
    let table = p.alloc(20).unwrap();
    let s = p.stats();
    assert_eq!(s.allocated_bytes, 64 << 20);
    // About two bits per 64-byte entry, far from rdma-core's 144 bytes.
    assert!(
        s.host_bytes * 8 < (1 << 20) * 3,
        "{} host bytes for 2^20 entries",
        s.host_bytes
    );
    let mut slab = EntrySlab::new(p.clone());
    let entries: Vec<Entry> = (0..64 * 1024).map(|_| slab.alloc().unwrap()).collect();
    let st = slab.stats();
    // About one byte per entry (the block table and its lists).
    assert!(
        st.host_bytes < 2 * entries.len(),
        "{} host bytes for {} entries",
        st.host_bytes,
        entries.len()
    );
    drop(entries);
    p.free(table).unwrap();
}

#[test]
fn dropping_everything_gives_all_icm_back() {
    let be = cx6();
    let start = be.sim().icm().usage();
    {
        let mut cfg = steering_cfg(&be);
        cfg.log_initial_region = 12;
        let p = pool(&be, cfg);
        let mut slab = EntrySlab::new(p.clone());
        let chunks: Vec<Chunk> = (0..20u8).map(|i| p.alloc(i % 11).unwrap()).collect();
        let entries: Vec<Entry> = (0..500).map(|_| slab.alloc().unwrap()).collect();
        assert!(p.stats().regions > 3);
        assert_eq!(icm_bytes(&be), p.stats().allocated_bytes);
        // Some freed, some still live: all of it goes back.
        for (i, c) in chunks.into_iter().enumerate() {
            if i % 2 == 0 {
                p.free(c).unwrap();
            }
        }
        for e in entries.into_iter().step_by(3) {
            slab.free(e).unwrap();
        }
        drop(slab);
        assert_eq!(p.stats().slab_bytes, 0);
    }
    assert_eq!(be.sim().icm().usage(), start);
    assert_eq!(start.bytes, 0);
}

#[test]
fn emptied_regions_go_back_to_the_device_but_one() {
    let be = cx6();
    let mut cfg = no_threshold(steering_cfg(&be));
    cfg.log_initial_region = 12;
    cfg.max_log_chunk = 10;
    let p = pool(&be, cfg);
    // Regions of 4, 16 and 8 KiB hold a 4 KiB, a 16 KiB and an 8 KiB chunk...
    let chunks = [6u8, 8, 7].map(|log| p.alloc(log).unwrap());
    assert_eq!(p.stats().regions, 3);
    for c in chunks {
        p.free(c).unwrap();
    }
    p.sync().unwrap();
    // ...and once all are empty, only the largest stays, as a spare.
    let regions = p.regions();
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0].size, 16 << 10);
    assert_eq!(icm_bytes(&be), 16 << 10);
    assert_eq!(p.trim().unwrap(), 16 << 10);
    assert_eq!(icm_bytes(&be), 0);
    assert_eq!(p.stats().allocated_bytes, 0);
}

#[test]
fn threads_share_a_pool_with_a_slab_each() {
    let be = cx6();
    let mut cfg = steering_cfg(&be);
    cfg.log_initial_region = 14;
    cfg.sync_min_bytes = 16 << 10;
    let p = pool(&be, cfg);
    // Every thread's handles, kept until all threads are done so that what each saw as
    // live is still live when the spans are compared.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let p = p.clone();
                s.spawn(move || {
                    let mut slab = EntrySlab::new(p.clone());
                    let mut chunks = Vec::new();
                    let mut entries = Vec::new();
                    let mut x = 0x2545_f491_4f6c_dd1du64 ^ t;
                    for _ in 0..4000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match x % 8 {
                            0 => chunks.push(p.alloc((x >> 8) as u8 % 6).unwrap()),
                            1 if !chunks.is_empty() => {
                                let c = chunks.swap_remove((x >> 8) as usize % chunks.len());
                                p.free(c).unwrap();
                            }
                            2 | 3 if !entries.is_empty() => {
                                let e = entries.swap_remove((x >> 8) as usize % entries.len());
                                slab.free(e).unwrap();
                            }
                            _ => entries.push(slab.alloc().unwrap()),
                        }
                    }
                    (slab, chunks, entries)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut spans: Vec<(u64, u64)> = results
        .iter()
        .flat_map(|(_, chunks, entries)| {
            chunks
                .iter()
                .map(|c| (c.icm_addr(), c.byte_size()))
                .chain(entries.iter().map(|e| (e.icm_addr(), 64)))
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?} overlap");
    }
    for (mut slab, chunks, entries) in results {
        for c in chunks {
            p.free(c).unwrap();
        }
        for e in entries {
            slab.free(e).unwrap();
        }
    }
    let s = p.stats();
    assert_eq!((s.chunks, s.chunk_bytes, s.slab_bytes), (0, 0, 0));
    drop(p);
    assert_eq!(icm_bytes(&be), 0);
}

/// One step of the random walk.
#[derive(Debug, Clone)]
enum Op {
    Alloc(u8),
    Free(usize),
    SlabAlloc,
    SlabFree(usize),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..=8).prop_map(Op::Alloc),
        2 => any::<usize>().prop_map(Op::Free),
        4 => Just(Op::SlabAlloc),
        3 => any::<usize>().prop_map(Op::SlabFree),
        1 => Just(Op::Sync),
    ]
}

/// The model: what is live and what is freed but not yet covered by a sync, as ICM
/// spans. Anything handed out must be aligned, inside a pool region and the device's
/// allocation for it, and overlap neither.
struct Model {
    live_chunks: Vec<Chunk>,
    live_entries: Vec<Entry>,
    hot: Vec<(u64, u64)>,
}

impl Model {
    fn check_new(&self, p: &IcmPool, be: &SimBackend, addr: u64, len: u64, rkey: u32) {
        assert_eq!(addr % len, 0, "{len} bytes at {addr:#x} misaligned");
        assert!(
            p.regions()
                .iter()
                .any(|r| addr >= r.addr && addr + len <= r.addr + r.size && r.rkey == rkey),
            "{addr:#x} outside the pool's regions"
        );
        reachable(be, addr, len, rkey);
        let spans = self
            .live_chunks
            .iter()
            .map(|c| (c.icm_addr(), c.byte_size()))
            .chain(self.live_entries.iter().map(|e| (e.icm_addr(), 64)))
            .chain(self.hot.iter().copied());
        for (a, l) in spans {
            assert!(
                addr + len <= a || a + l <= addr,
                "{len} bytes at {addr:#x} overlap live or unsynced {l} bytes at {a:#x}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_walks_keep_chunks_aligned_disjoint_and_deferred(
        ops in proptest::collection::vec(op(), 1..300)
    ) {
        let be = cx6();
        let mut cfg = steering_cfg(&be);
        // Small regions so the walk grows through several; a low threshold so that
        // syncs also happen on their own.
        cfg.log_initial_region = 12;
        cfg.max_log_chunk = 9;
        cfg.sync_min_bytes = 8 << 10;
        cfg.sync_shift = 63;
        let p = pool(&be, cfg);
        let mut slab = EntrySlab::new(p.clone());
        let mut m = Model { live_chunks: Vec::new(), live_entries: Vec::new(), hot: Vec::new() };
        for op in ops {
            let before = syncs(&be);
            match op {
                Op::Alloc(log) => {
                    let c = p.alloc(log).unwrap();
                    if syncs(&be) != before {
                        m.hot.clear();
                    }
                    m.check_new(&p, &be, c.icm_addr(), c.byte_size(), c.rkey());
                    prop_assert!(p.regions().contains(&c.region()));
                    m.live_chunks.push(c);
                }
                Op::Free(i) if !m.live_chunks.is_empty() => {
                    let c = m.live_chunks.swap_remove(i % m.live_chunks.len());
                    m.hot.push((c.icm_addr(), c.byte_size()));
                    p.free(c).unwrap();
                }
                Op::SlabAlloc => {
                    let e = slab.alloc().unwrap();
                    if syncs(&be) != before {
                        m.hot.clear();
                    }
                    m.check_new(&p, &be, e.icm_addr(), 64, e.rkey());
                    prop_assert!(p.regions().contains(&slab.region(&e).unwrap()));
                    m.live_entries.push(e);
                }
                Op::SlabFree(i) if !m.live_entries.is_empty() => {
                    let e = m.live_entries.swap_remove(i % m.live_entries.len());
                    m.hot.push((e.icm_addr(), 64));
                    slab.free(e).unwrap();
                }
                Op::Sync => p.sync().unwrap(),
                Op::Free(_) | Op::SlabFree(_) => {}
            }
            // A sync during the step (asked for, or on the threshold) covers every
            // free up to and including the step's own.
            if syncs(&be) != before {
                m.hot.clear();
            }
            let s = p.stats();
            let st = slab.stats();
            prop_assert_eq!(s.chunks, m.live_chunks.len() as u64);
            prop_assert_eq!(s.chunk_bytes, m.live_chunks.iter().map(Chunk::byte_size).sum::<u64>());
            prop_assert_eq!(st.live_entries, m.live_entries.len() as u64);
            prop_assert_eq!(s.slab_bytes, st.block_bytes);
            prop_assert_eq!(s.allocated_bytes, icm_bytes(&be));
            prop_assert!(s.chunk_bytes + s.slab_bytes + s.hot_bytes <= s.allocated_bytes);
        }
        drop(m);
        drop(slab);
        drop(p);
        prop_assert_eq!(icm_bytes(&be), 0);
    }
}

#[test]
fn configurations_are_checked() {
    let be = cx6();
    let base = steering_cfg(&be);
    let dev: Arc<dyn Device> = be.clone();
    for (cfg, msg) in [
        (
            PoolConfig {
                max_log_chunk: 31,
                ..base
            },
            "max_log_chunk must be at most 30",
        ),
        (
            PoolConfig {
                log_entry_size: 13,
                ..base
            },
            "log_entry_size must be at most 12",
        ),
        (
            PoolConfig {
                max_log_chunk: 2,
                ..base
            },
            "the device granularity is above the largest chunk",
        ),
        (
            PoolConfig {
                sync_shift: 64,
                ..base
            },
            "sync_shift must be below 64",
        ),
    ] {
        assert_eq!(
            IcmPool::new(dev.clone(), cfg).unwrap_err(),
            IcmError::Config(msg)
        );
    }
    let caps = DeviceCaps::query(&*be).unwrap();
    let action = PoolConfig::modify_action(&caps);
    assert_eq!(
        (action.kind, action.log_entry_size),
        (IcmKind::ModifyAction, 3)
    );
    let pattern = PoolConfig::modify_pattern(&caps);
    assert_eq!(
        (pattern.kind, pattern.max_log_chunk),
        (IcmKind::ModifyPattern, 12)
    );
    // Action pools hand out 8-byte entries, aligned to the chunk.
    let p = IcmPool::new(dev, action).unwrap();
    let c = p.alloc(5).unwrap();
    assert_eq!((c.byte_size(), c.entry_size()), (256, 8));
    assert_eq!(c.icm_addr() % 256, 0);
    reachable(&be, c.icm_addr(), 256, c.rkey());
}
