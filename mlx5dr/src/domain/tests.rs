//! Domains and tables on the simulator: opening, refusals, empty tables walked by
//! packets from their firmware table, their root anchor and the kernel's root table,
//! root rewrites, failures that leave nothing behind, and teardown.

use std::sync::Arc;

use ::sim::cmd::{CommandFault, Status};
use ::sim::endpoint::Terminal;
use ::sim::fw::{Destination, EntryOp, Fate as FwFate, Fte, FteAction, GroupSpec, TableOwner};
use ::sim::packet::{build_from_match, Metadata, Packet, Side};
use ::sim::profile::{DeviceModel, Profile};
use ::sim::{Entry, Fate, Stage};
use ste_builder::ste::{Connect, LU_TYPE_DONT_CARE};
use ste_builder::MatchParam;

use super::*;
use crate::caps::CapsError;
use crate::device::sim::SimBackend;
use crate::device::{Device, IcmKind};

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];
const TYPES: [DomainType; 3] = [DomainType::NicRx, DomainType::NicTx, DomainType::Fdb];

fn backend(profile: Profile) -> Arc<SimBackend> {
    Arc::new(SimBackend::with_profile(profile).unwrap())
}

fn open(be: &Arc<SimBackend>, ty: DomainType) -> Result<Arc<Domain>, DomainError> {
    let dev: Arc<dyn Device> = be.clone();
    Domain::open(dev, ty)
}

fn sim_type(ty: DomainType) -> ::sim::fw::TableType {
    match ty {
        DomainType::NicRx => ::sim::fw::TableType::NicRx,
        DomainType::NicTx => ::sim::fw::TableType::NicTx,
        DomainType::Fdb => ::sim::fw::TableType::Fdb,
    }
}

/// A plain Ethernet packet on `side`'s pipe.
fn packet(side: DomainSide) -> Packet {
    let pipe = if side.rx() { Side::Rx } else { Side::Tx };
    build_from_match(&MatchParam::default(), Metadata::new(pipe)).unwrap()
}

/// Where one packet of `side` sent in at `entry` ends.
fn fate(be: &SimBackend, side: DomainSide, entry: Entry) -> Fate {
    let out = be.sim().process(packet(side), entry).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].fate.clone()
}

/// The terminal the side's default address means in the simulator's profiles.
fn default_terminal(side: DomainSide) -> Terminal {
    match side {
        DomainSide::NicRx => Terminal::Drop,
        DomainSide::NicTx => Terminal::Allow,
        DomainSide::FdbRx | DomainSide::FdbTx => Terminal::Vport(0),
    }
}

#[test]
fn opens_every_type_on_every_model() {
    for model in MODELS {
        let p = Profile::new(model);
        let be = backend(p.clone());
        for ty in TYPES {
            let d = open(&be, ty).unwrap();
            assert_eq!(d.domain_type(), ty);
            assert_eq!(Some(d.format()), p.ste_format());
            assert_eq!(d.gvmi(), p.vhca_id);
            assert_eq!(d.sides(), DomainSide::of(ty));
            for &side in DomainSide::of(ty) {
                let info = d.side(side).unwrap();
                let (default, drop) = match side {
                    DomainSide::NicRx => (p.nic_rx_drop_icm, p.nic_rx_drop_icm),
                    DomainSide::NicTx => (p.nic_tx_allow_icm, p.nic_tx_drop_icm),
                    DomainSide::FdbRx => (0x7ff0_0300, p.esw_rx_drop_icm),
                    DomainSide::FdbTx => (0x7ff0_0340, p.esw_tx_drop_icm),
                };
                assert_eq!(
                    (info.default_miss, info.drop),
                    (default, drop),
                    "{model:?} {side}"
                );
            }
            // A side of another type is not the domain's.
            let other = if ty == DomainType::NicRx {
                DomainSide::FdbTx
            } else {
                DomainSide::NicRx
            };
            assert!(d.side(other).is_none());
            // Nothing is allocated from the device before the first table.
            assert_eq!(d.ste_pool().stats().regions, 0);
        }
        assert_eq!(be.sim().icm().usage().allocations, 0);
        assert_eq!(be.live_objects(), 0);
    }
}

#[test]
fn refusals_name_the_missing_capability() {
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.nic_rx.sw_owner = false;
    p.nic_rx.sw_owner_v2 = false;
    let be = backend(p);
    assert_eq!(
        open(&be, DomainType::NicRx).unwrap_err(),
        DomainError::Caps(CapsError::NoSwOwner(DomainType::NicRx))
    );
    // Other types are unaffected.
    open(&be, DomainType::NicTx).unwrap();

    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.eswitch_manager = false;
    let err = open(&backend(p), DomainType::Fdb).unwrap_err();
    assert_eq!(err, DomainError::Caps(CapsError::NotEswitchManager));

    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.fl_rc_qp_when_roce_enabled = false;
    let err = open(&backend(p), DomainType::NicTx).unwrap_err();
    assert!(
        matches!(err, DomainError::Caps(CapsError::NoForceLoopback { .. })),
        "{err}"
    );

    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.log_steering_sw_icm_size = 20;
    let err = open(&backend(p), DomainType::NicRx).unwrap_err();
    assert!(
        matches!(
            err,
            DomainError::Caps(CapsError::IcmTooSmall {
                kind: IcmKind::Steering,
                ..
            })
        ),
        "{err}"
    );

    let be = backend(Profile::new(DeviceModel::ConnectX6Dx));
    be.sim().inject_command_fault(CommandFault::on_opcode(
        crate::cmd::opcode::QUERY_HCA_CAP,
        Status::InternalError,
        7,
    ));
    let err = open(&be, DomainType::NicRx).unwrap_err();
    assert!(
        matches!(err, DomainError::Caps(CapsError::Command(_))),
        "{err}"
    );
    assert!(err.to_string().contains("QUERY_HCA_CAP"), "{err}");
}

#[test]
fn an_empty_table_sends_every_side_to_its_default() {
    for model in MODELS {
        let be = backend(Profile::new(model));
        for ty in TYPES {
            let d = open(&be, ty).unwrap();
            let t = Table::new(&d, 1).unwrap();
            let max = d.caps().max_ft_level;
            be.sim().with_firmware(|fw| {
                let ft = fw.table(t.fw_id()).expect("the firmware table exists");
                assert_eq!(ft.level, max - 1, "rdma-core's level for SW tables");
                let TableOwner::Software { root_0, root_1 } = ft.owner else {
                    panic!("{:?} is not software owned", ft.owner);
                };
                let (want_0, want_1) = match ty {
                    DomainType::NicRx => (t.root_addr(DomainSide::NicRx).unwrap(), 0),
                    DomainType::NicTx => (t.root_addr(DomainSide::NicTx).unwrap(), 0),
                    DomainType::Fdb => (
                        t.root_addr(DomainSide::FdbRx).unwrap(),
                        t.root_addr(DomainSide::FdbTx).unwrap(),
                    ),
                };
                assert_eq!((root_0, root_1), (want_0, want_1));
            });
            for &side in d.sides() {
                let want = Fate::Delivered(default_terminal(side));
                assert_eq!(
                    fate(&be, side, Entry::Table(t.fw_id())),
                    want,
                    "{model:?} {side}"
                );
                let root = t.root_addr(side).unwrap();
                assert_eq!(fate(&be, side, Entry::Icm(root)), want, "{model:?} {side}");
            }
        }
    }
}

#[test]
fn the_kernel_root_table_reaches_the_sw_table() {
    let be = backend(Profile::new(DeviceModel::ConnectX6Dx));
    let d = open(&be, DomainType::NicRx).unwrap();
    let t = Table::new(&d, 1).unwrap();
    // The kernel flow path's part, done on the firmware model: a catch-all entry of the
    // root table forwarding to the SW table.
    be.sim().with_firmware(|fw| {
        let ty = ::sim::fw::TableType::NicRx;
        let root = fw.root_table(ty).unwrap();
        let spec = GroupSpec {
            start: 0,
            end: 0,
            criteria: 0,
            mask: MatchParam::default(),
        };
        let group = fw.create_group(0, ty, root, &spec).unwrap();
        let fte = Fte {
            flow_index: 0,
            group_id: group,
            value: MatchParam::default(),
            action: FteAction {
                fate: FwFate::Forward(vec![Destination::FlowTable(t.fw_id())]),
                counters: Vec::new(),
                flow_tag: 0,
            },
        };
        fw.set_entry(0, ty, root, EntryOp::Create, fte).unwrap();
    });
    let out = be
        .sim()
        .process(
            packet(DomainSide::NicRx),
            Entry::Root(sim_type(DomainType::NicRx)),
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].fate, Fate::Delivered(Terminal::Drop));
    let root = t.root_addr(DomainSide::NicRx).unwrap();
    assert!(
        matches!(out[0].stages.as_slice(), [Stage::Firmware(_), Stage::Software { root: r, .. }] if *r == root),
        "{:?}",
        out[0].stages
    );
}

#[test]
fn a_root_rewrite_redirects_and_reverts() {
    for model in MODELS {
        let be = backend(Profile::new(model));
        let d = open(&be, DomainType::Fdb).unwrap();
        let t1 = Table::new(&d, 1).unwrap();
        let t2 = Table::new(&d, 2).unwrap();
        for &side in d.sides() {
            let to = t2.root_addr(side).unwrap();
            t1.connect_root(
                side,
                Connect::Hit {
                    lu_type: LU_TYPE_DONT_CARE,
                    byte_mask: 0,
                    icm_addr: to,
                    num_entries: 1,
                },
            )
            .unwrap();
            let out = be
                .sim()
                .process(packet(side), Entry::Table(t1.fw_id()))
                .unwrap();
            let Some(Stage::Software { verdict, .. }) = out[0].stages.last() else {
                panic!("{:?}", out[0].stages);
            };
            let hops: Vec<u64> = verdict.trace.iter().map(|h| h.addr).collect();
            assert_eq!(hops, [t1.root_addr(side).unwrap(), to], "{model:?} {side}");
            assert_eq!(out[0].fate, Fate::Delivered(default_terminal(side)));

            t1.disconnect_root(side).unwrap();
            let out = be
                .sim()
                .process(packet(side), Entry::Table(t1.fw_id()))
                .unwrap();
            let Some(Stage::Software { verdict, .. }) = out[0].stages.last() else {
                panic!("{:?}", out[0].stages);
            };
            assert_eq!(verdict.trace.len(), 1, "{model:?} {side}");
        }
        let err = t1
            .connect_root(DomainSide::NicRx, Connect::Miss { miss_addr: 0 })
            .unwrap_err();
        assert_eq!(
            err,
            TableError::NoSuchSide {
                domain: DomainType::Fdb,
                side: DomainSide::NicRx
            }
        );
    }
}

#[test]
fn levels_are_checked() {
    let be = backend(Profile::new(DeviceModel::ConnectX6Dx));
    let d = open(&be, DomainType::NicRx).unwrap();
    let max = d.caps().max_ft_level;
    assert_eq!(Table::new(&d, 0).unwrap_err(), TableError::RootLevel);
    assert_eq!(
        Table::new(&d, max + 1).unwrap_err(),
        TableError::LevelTooHigh {
            level: max + 1,
            max
        }
    );
    assert_eq!(Table::new(&d, max).unwrap().level(), max);
    assert_eq!(d.ste_pool().stats().chunks, 0);
    assert_eq!(be.live_objects(), 0);
}

#[test]
fn failures_leave_nothing_behind() {
    let be = backend(Profile::new(DeviceModel::ConnectX6Dx));
    let d = open(&be, DomainType::Fdb).unwrap();
    let tables_before = be.sim().with_firmware(|fw| fw.tables().count());

    // Someone else holds all of the steering ICM: no root anchors.
    let size = 1u64 << Profile::new(DeviceModel::ConnectX6Dx).log_steering_sw_icm_size;
    let hog = be
        .sim()
        .alloc_icm(::sim::icm::IcmKind::Steering, size, 12)
        .unwrap();
    let err = Table::new(&d, 1).unwrap_err();
    assert!(
        matches!(err, TableError::Icm(IcmError::Exhausted { .. })),
        "{err}"
    );
    assert_eq!(d.ste_pool().stats().chunks, 0);
    assert_eq!(be.live_objects(), 0);
    be.sim().free_icm(hog.addr).unwrap();

    be.sim().inject_command_fault(CommandFault::on_opcode_nth(
        opcode::CREATE_FLOW_TABLE,
        0,
        Status::NoResources,
        0x42,
    ));
    let err = Table::new(&d, 1).unwrap_err();
    assert!(
        matches!(
            &err,
            TableError::Command(CmdError::Failed {
                command: "CREATE_FLOW_TABLE",
                syndrome: 0x42,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(d.ste_pool().stats().chunks, 0);
    assert_eq!(be.live_objects(), 0);
    assert_eq!(
        be.sim().with_firmware(|fw| fw.tables().count()),
        tables_before
    );

    // And the next try works.
    let t = Table::new(&d, 1).unwrap();
    assert_eq!(d.ste_pool().stats().chunks, 2);
    assert_eq!(be.live_objects(), 1);
    drop(t);
}

#[test]
fn dropping_gives_everything_back() {
    let be = backend(Profile::new(DeviceModel::ConnectX7));
    let syncs = || be.sim().with_firmware(|fw| fw.sync_count());
    let d = open(&be, DomainType::Fdb).unwrap();
    let t = Table::new(&d, 3).unwrap();
    let id = t.fw_id();
    assert!(be.sim().icm().usage().bytes > 0);
    assert_eq!(be.live_objects(), 1);
    assert_eq!(Table::destroy(t).map_err(|e| e.users), Ok(()));
    assert_eq!(be.live_objects(), 0);
    assert!(be.sim().with_firmware(|fw| fw.table(id).is_none()));
    assert_eq!(d.ste_pool().stats().chunks, 0);
    // A packet sent to the destroyed firmware table no longer reaches anything.
    assert!(matches!(
        fate(&be, DomainSide::FdbRx, Entry::Table(id)),
        Fate::Fault(_)
    ));

    // The domain lives while a table holds it, and syncs steering when it goes.
    let t = Table::new(&d, 1).unwrap();
    drop(d);
    t.domain().flush().unwrap();
    let want = Fate::Delivered(default_terminal(DomainSide::FdbTx));
    assert_eq!(fate(&be, DomainSide::FdbTx, Entry::Table(t.fw_id())), want);
    let before = syncs();
    drop(t);
    assert!(
        syncs() > before,
        "the domain synced steering on its way out"
    );
    assert_eq!(be.sim().icm().usage().allocations, 0);
    assert_eq!(be.live_objects(), 0);
}

#[test]
fn domains_and_tables_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Domain>();
    check::<Table>();
}
