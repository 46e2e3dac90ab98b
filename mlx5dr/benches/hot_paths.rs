//! Micro-benchmarks of the pieces every rule insert goes through, on a simulated
//! ConnectX-6 Dx: tag building per lookup builder, the hash, a rule's tags for a whole
//! chain, collision-entry allocation, WQE encoding, one write through the send ring,
//! and an insert + remove pair at steady state.
//!
//! ```sh
//! cargo bench -p mlx5dr --bench hot_paths            # all, about a minute
//! cargo bench -p mlx5dr --bench hot_paths -- --quick # quicker, rougher
//! cargo bench -p mlx5dr --bench hot_paths -- tag/    # a filter
//! ```
//!
//! The masks and values are the insertion benchmark's (`examples/insert_bench`), so the
//! builders measured are the ones its matchers choose. Samples are kept small (each
//! benchmark measures for about a second): these are for finding where an insert's time
//! goes and for before/after comparisons on one machine, not for absolute figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::icm::EntrySlab;
use mlx5dr::{
    Action, ActionList, Device, Domain, DomainSide, DomainType, Matcher, MatcherOptions,
    SendConfig, SendRing, Table,
};
use sim::profile::DeviceModel;
use ste_builder::hash::{hash_index, HtblType};
use ste_builder::wqe::{CtrlFlags, DataSeg, Payload, RaddrSeg, RdmaOp, RdmaWqe, BB_SIZE};
use ste_builder::{Caps, MatchParam};

// The example's unit tests come along (cargo bench compiles with cfg(test)), unused here.
#[path = "../examples/insert_bench/shapes.rs"]
#[allow(dead_code, unused_imports)]
mod shapes;

use shapes::Shape;

const SHAPES: [Shape; 3] = [Shape::FiveTuple, Shape::Dmac, Shape::Vxlan { per_vni: 256 }];
/// Values cycled through by the benchmarks that take one per iteration.
const VALUES: u64 = 1024;
const SEED: u64 = 0x5eed;

/// A simulated device with a NIC RX domain and a table.
struct Rig {
    _be: Arc<SimBackend>,
    dmn: Arc<Domain>,
    table: Arc<Table>,
}

impl Rig {
    fn new() -> Rig {
        let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open(dev, DomainType::NicRx).expect("domain");
        let table = Table::new(&dmn, 1).expect("table");
        Rig {
            _be: be,
            dmn,
            table,
        }
    }

    fn matcher(&self, shape: Shape) -> Arc<Matcher> {
        Matcher::new(&self.table, &shape.mask(), MatcherOptions::default()).expect("matcher")
    }
}

fn values(shape: Shape, from: u64, count: u64) -> Vec<MatchParam> {
    (from..from + count)
        .map(|i| shape.raw_value(SEED, count, i).expect("value"))
        .collect()
}

/// Each lookup builder of each shape's chain: `SteBuild::tag` and `tag_checked` on the
/// rule's normalised value (copied fresh for each call, outside the timing, since
/// building a tag consumes the value's fields).
fn tags(c: &mut Criterion) {
    let rig = Rig::new();
    let caps: Caps = rig.dmn.ste_caps();
    let mut g = c.benchmark_group("tag");
    for shape in SHAPES {
        let m = rig.matcher(shape);
        let chain = m.chain(DomainSide::NicRx).expect("NIC RX chain").clone();
        let value = MatchParam::copy_from(chain.criteria(), &values(shape, 0, 1)[0]);
        for (level, b) in chain.builders().iter().enumerate() {
            let name = format!("{}/{level}-{}", shape.name(), b.kind);
            g.bench_function(&name, |bench| {
                bench.iter_batched_ref(
                    || value.clone(),
                    |v| {
                        let mut tag = [0u8; 32];
                        let r = b.tag(v, &caps, &mut tag[..b.tag_len()]);
                        black_box((r, tag))
                    },
                    BatchSize::SmallInput,
                )
            });
            g.bench_function(format!("{name}/checked"), |bench| {
                bench.iter_batched_ref(
                    || value.clone(),
                    |v| {
                        let mut tag = [0u8; 32];
                        let r = b.tag_checked(v, &caps, &mut tag[..b.tag_len()]);
                        black_box((r, tag))
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

/// The hash-table index of a legacy (16-byte, byte-masked) and a definer (32-byte) tag
/// in a 2^20-entry table.
fn hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    let tags: Vec<[u8; 32]> = (0..VALUES)
        .map(|i| {
            let mut t = [0u8; 32];
            for (k, chunk) in t.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&shapes::mix64(i * 4 + k as u64).to_le_bytes());
            }
            t
        })
        .collect();
    for (name, ty, mask) in [
        ("legacy", HtblType::Legacy, 0xffffu16),
        ("legacy_5tuple_mask", HtblType::Legacy, 0xff3f),
        ("match", HtblType::Match, 0),
    ] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % tags.len();
                black_box(hash_index(ty, mask, 1 << 20, black_box(&tags[i])))
            })
        });
    }
    g.finish();
}

/// `BuilderChain::rule_tags`: the checks and every tag of a rule, per shape.
fn rule_tags(c: &mut Criterion) {
    let rig = Rig::new();
    let caps = rig.dmn.ste_caps();
    let mut g = c.benchmark_group("rule_tags");
    for shape in SHAPES {
        let m = rig.matcher(shape);
        let chain = m.chain(DomainSide::NicRx).expect("NIC RX chain").clone();
        let vals = values(shape, 0, VALUES);
        let mut i = 0;
        g.bench_function(shape.name(), |b| {
            b.iter(|| {
                i = (i + 1) % vals.len();
                black_box(chain.rule_tags(&vals[i], &caps).expect("tags"))
            })
        });
    }
    g.finish();
}

/// 1024 collision entries allocated from an `EntrySlab`, then freed (the pool syncs
/// when enough was freed, as in an insert/delete workload).
fn slab(c: &mut Criterion) {
    let rig = Rig::new();
    let mut slab = EntrySlab::new(Arc::clone(rig.dmn.ste_pool()));
    let mut held = Vec::with_capacity(1024);
    let mut g = c.benchmark_group("slab");
    g.throughput(Throughput::Elements(1024));
    g.bench_function("alloc_free_1024", |b| {
        b.iter(|| {
            for _ in 0..1024 {
                held.push(slab.alloc().expect("entry"));
            }
            for e in held.drain(..) {
                slab.free(e).expect("free");
            }
        })
    });
    g.finish();
}

/// Encoding the WRITE + READ pair of one 64-byte write.
fn wqe(c: &mut Criterion) {
    let mut g = c.benchmark_group("wqe");
    let staged = [DataSeg::new(0x11, 0x1000, 64).expect("segment")];
    let sync = [DataSeg::new(0x22, 0x8000, 64).expect("segment")];
    let remote = RaddrSeg {
        raddr: 0x4_0000,
        rkey: 0x33,
    };
    let mut out = [0u8; 2 * BB_SIZE];
    let mut index = 0u16;
    g.bench_function("encode_write_read", |b| {
        b.iter(|| {
            index = index.wrapping_add(2);
            let (w, r) = out.split_at_mut(BB_SIZE);
            let write = RdmaWqe {
                op: RdmaOp::Write,
                wqe_index: index,
                qpn: 0x100,
                flags: CtrlFlags::empty(),
                remote,
                payload: Payload::Segments(&staged),
            };
            let read = RdmaWqe {
                op: RdmaOp::Read,
                wqe_index: index.wrapping_add(1),
                flags: CtrlFlags::CQ_UPDATE,
                payload: Payload::Segments(&sync),
                ..write
            };
            black_box((write.encode(w), read.encode(r)))
        })
    });
    g.finish();
}

/// Writes through a send ring of its own on the simulated queue: one 64-byte write and
/// its flush (what an insert that writes one STE waits for), and 64 writes under one
/// flush.
fn send(c: &mut Criterion) {
    let rig = Rig::new();
    let pool = rig.dmn.ste_pool();
    let chunk = pool.alloc(6).expect("chunk");
    let region = chunk.region();
    let mut ring = SendRing::new(rig.dmn.device().as_ref(), SendConfig::default()).expect("ring");
    let ste = [0u8; 64];
    let mut g = c.benchmark_group("send");
    g.bench_function("write64_flush", |b| {
        b.iter(|| {
            ring.write(&region, chunk.icm_addr(), &ste).expect("write");
            ring.flush().expect("flush")
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("write64_x64_flush", |b| {
        b.iter(|| {
            for k in 0..64 {
                ring.write(&region, chunk.icm_addr() + 64 * k, &ste)
                    .expect("write");
            }
            ring.flush().expect("flush")
        })
    });
    g.finish();
    drop(ring);
    pool.free(chunk).expect("free");
}

/// One insert and its removal in a matcher that holds 10 000 rules of the same shape
/// (its tables stay the same size, so every iteration does the same work).
fn insert_remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert_remove");
    for shape in SHAPES {
        let rig = Rig::new();
        let m = rig.matcher(shape);
        let acts: Arc<ActionList> = m.actions(&[Action::drop()]).expect("actions");
        let held: Vec<_> = values(shape, 0, 10_000)
            .iter()
            .map(|v| m.insert_raw(v, &acts).expect("insert"))
            .collect();
        // Values 10 000.. of a set of 10 000 + VALUES: none equal a held one.
        let extra: Vec<MatchParam> = (10_000..10_000 + VALUES)
            .map(|i| shape.raw_value(SEED, 10_000, i).expect("value"))
            .collect();
        let mut i = 0;
        g.bench_function(format!("{}_10k", shape.name()), |b| {
            b.iter(|| {
                i = (i + 1) % extra.len();
                let rule = m.insert_raw(&extra[i], &acts).expect("insert");
                rule.remove().expect("remove")
            })
        });
        drop(held);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = tags, hash, rule_tags, slab, wqe, send, insert_remove
}
criterion_main!(benches);
