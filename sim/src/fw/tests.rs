//! Unit tests of the firmware objects and their lookup semantics.

use super::*;
use crate::profile::DeviceModel;
use ste_builder::prm::{dr_match_set_misc, dr_match_spec};

fn fw() -> Firmware {
    Firmware::new(Profile::new(DeviceModel::ConnectX6Dx))
}

/// A mask or value with outer `tcp_dport` and `ip_protocol` set.
fn l4(dport: u64, proto: u64) -> MatchParam {
    let mut m = MatchParam::default();
    m.set(Section::Outer, dr_match_spec::TCP_DPORT, dport);
    m.set(Section::Outer, dr_match_spec::IP_PROTOCOL, proto);
    m
}

fn group(start: u32, end: u32, mask: MatchParam) -> GroupSpec {
    GroupSpec {
        start,
        end,
        criteria: MatchCriteria::OUTER.bits(),
        mask,
    }
}

fn fte(flow_index: u32, group_id: u32, value: MatchParam, fate: Fate) -> Fte {
    Fte {
        flow_index,
        group_id,
        value,
        action: FteAction {
            fate,
            counters: vec![],
            flow_tag: 0,
        },
    }
}

const STEERING: u64 = 0x10_0000_0000;

#[test]
fn root_tables_exist_from_the_start() {
    let fw = fw();
    for ty in TableType::ALL {
        let id = fw.root_table(ty).unwrap();
        let t = fw.table(id).unwrap();
        assert!(t.root);
        assert_eq!((t.table_type, t.level), (ty, 0));
        assert!(matches!(t.owner, TableOwner::Firmware { .. }));
    }
    let mut p = Profile::new(DeviceModel::ConnectX5);
    p.eswitch_manager = false;
    let fw = Firmware::new(p);
    assert!(fw.root_table(TableType::Fdb).is_none());
    assert!(fw.root_table(TableType::NicRx).is_some());
}

#[test]
fn table_creation_checks() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    assert_eq!(
        fw.create_table(0, &TableAttr::firmware(rx, 65, 0)),
        Err(FwError::LevelTooHigh { level: 65, max: 64 })
    );
    assert!(matches!(
        fw.create_table(0, &TableAttr::firmware(rx, 1, 24)),
        Err(FwError::TableTooLarge { .. })
    ));
    assert_eq!(
        fw.create_table(0, &TableAttr::software(rx, 63, STEERING + 1, 0)),
        Err(FwError::BadRootAddress(STEERING + 1))
    );
    assert_eq!(
        fw.create_table(0, &TableAttr::software(rx, 63, 0x7ff0_0000, 0)),
        Err(FwError::BadRootAddress(0x7ff0_0000))
    );
    // FDB needs both roots.
    assert_eq!(
        fw.create_table(0, &TableAttr::software(TableType::Fdb, 63, STEERING, 0)),
        Err(FwError::BadRootAddress(0))
    );
    fw.profile_mut().nic_rx.sw_owner_v2 = false;
    assert_eq!(
        fw.create_table(0, &TableAttr::software(rx, 63, STEERING, 0)),
        Err(FwError::SwOwnerUnsupported(rx))
    );
    fw.profile_mut().eswitch_manager = false;
    assert_eq!(
        fw.create_table(0, &TableAttr::firmware(TableType::Fdb, 1, 0)),
        Err(FwError::TableTypeUnavailable(TableType::Fdb))
    );
    // A miss target must be deeper.
    let deep = fw.create_table(0, &TableAttr::firmware(rx, 5, 0)).unwrap();
    let mut attr = TableAttr::firmware(rx, 5, 0);
    attr.miss = MissAction::Forward(deep);
    assert!(matches!(
        fw.create_table(0, &attr),
        Err(FwError::BadLevelOrder { .. })
    ));
    attr.level = 4;
    assert!(fw.create_table(0, &attr).is_ok());
}

#[test]
fn busy_objects_are_not_destroyed() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let root = fw.root_table(rx).unwrap();
    assert_eq!(fw.destroy_table(0, rx, root), Err(FwError::RootTable(root)));

    let sw = fw
        .create_table(0, &TableAttr::software(rx, 63, STEERING, 0))
        .unwrap();
    let mid = fw.create_table(0, &TableAttr::firmware(rx, 1, 4)).unwrap();
    let g = fw
        .create_group(0, rx, mid, &group(0, 3, l4(0xffff, 0)))
        .unwrap();
    fw.set_entry(
        0,
        rx,
        mid,
        EntryOp::Create,
        fte(
            0,
            g,
            l4(80, 0),
            Fate::Forward(vec![Destination::FlowTable(sw)]),
        ),
    )
    .unwrap();
    assert!(matches!(
        fw.destroy_table(0, rx, sw),
        Err(FwError::TableBusy { .. })
    ));
    assert!(matches!(
        fw.destroy_table(0, rx, mid),
        Err(FwError::TableBusy { .. })
    ));
    assert_eq!(fw.destroy_group(0, rx, mid, g), Err(FwError::GroupBusy(g)));
    assert_eq!(
        fw.destroy_table(0, TableType::NicTx, mid),
        Err(FwError::TableTypeMismatch {
            id: mid,
            actual: rx,
            given: TableType::NicTx
        })
    );
    fw.delete_entry(0, rx, mid, 0).unwrap();
    fw.destroy_group(0, rx, mid, g).unwrap();
    fw.destroy_table(0, rx, mid).unwrap();
    fw.destroy_table(0, rx, sw).unwrap();
    assert_eq!(fw.destroy_table(0, rx, sw), Err(FwError::NoSuchTable(sw)));

    // A miss target is held too.
    let target = fw.create_table(0, &TableAttr::firmware(rx, 9, 0)).unwrap();
    let src = fw.create_table(0, &TableAttr::firmware(rx, 2, 0)).unwrap();
    fw.modify_table_miss(0, rx, src, MissAction::Forward(target))
        .unwrap();
    assert!(matches!(
        fw.destroy_table(0, rx, target),
        Err(FwError::TableBusy { .. })
    ));
    fw.modify_table_miss(0, rx, src, MissAction::Default)
        .unwrap();
    fw.destroy_table(0, rx, target).unwrap();
}

#[test]
fn group_and_entry_checks() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let t = fw.create_table(0, &TableAttr::firmware(rx, 1, 3)).unwrap();
    assert!(matches!(
        fw.create_group(0, rx, t, &group(4, 8, l4(1, 0))),
        Err(FwError::BadGroupRange { .. })
    ));
    assert!(matches!(
        fw.create_group(0, rx, t, &group(3, 2, l4(1, 0))),
        Err(FwError::BadGroupRange { .. })
    ));
    let mut bad = group(0, 1, l4(1, 0));
    bad.criteria = 0x80;
    assert_eq!(
        fw.create_group(0, rx, t, &bad),
        Err(FwError::BadCriteria(0x80))
    );
    let g = fw
        .create_group(0, rx, t, &group(0, 3, l4(0xffff, 0)))
        .unwrap();
    assert!(matches!(
        fw.create_group(0, rx, t, &group(3, 5, l4(1, 0))),
        Err(FwError::GroupOverlap { other, .. }) if other == g
    ));
    let e = |i| fte(i, g, l4(80, 0), Fate::Drop);
    assert_eq!(
        fw.set_entry(0, rx, t, EntryOp::Create, e(4)),
        Err(FwError::IndexOutsideGroup { index: 4, group: g })
    );
    assert_eq!(
        fw.set_entry(0, rx, t, EntryOp::Modify, e(1)),
        Err(FwError::NoSuchEntry { table: t, index: 1 })
    );
    fw.set_entry(0, rx, t, EntryOp::Create, e(1)).unwrap();
    assert_eq!(
        fw.set_entry(0, rx, t, EntryOp::Create, e(1)),
        Err(FwError::EntryExists(1))
    );
    fw.set_entry(0, rx, t, EntryOp::Modify, fte(1, g, l4(81, 0), Fate::Drop))
        .unwrap();
    assert_eq!(fw.entry(t, 1).unwrap().value, l4(81, 0));

    // Actions checked against the table type and the objects they name.
    let bad_fates = [
        Fate::Allow,
        Fate::Forward(vec![Destination::Vport(1)]),
        Fate::Forward(vec![Destination::Tir(77)]),
        Fate::Forward(vec![Destination::FlowTable(t)]),
        Fate::Forward(vec![Destination::FlowTable(fw.root_table(rx).unwrap())]),
        Fate::Forward(vec![Destination::FlowTable(
            fw.root_table(TableType::NicTx).unwrap(),
        )]),
    ];
    for fate in bad_fates {
        assert!(
            fw.set_entry(0, rx, t, EntryOp::Create, fte(2, g, l4(1, 0), fate.clone()))
                .is_err(),
            "{fate:?}"
        );
    }
    let mut counted = fte(2, g, l4(1, 0), Fate::Drop);
    counted.action.counters = vec![5];
    assert_eq!(
        fw.set_entry(0, rx, t, EntryOp::Create, counted),
        Err(FwError::NoSuchCounter(5))
    );
    // Software-owned tables hold no groups.
    let sw = fw
        .create_table(0, &TableAttr::software(rx, 63, STEERING, 0))
        .unwrap();
    assert_eq!(
        fw.create_group(0, rx, sw, &group(0, 0, l4(1, 0))),
        Err(FwError::NotFirmwareOwned(sw))
    );
    assert_eq!(
        fw.modify_table_miss(0, rx, sw, MissAction::Default),
        Err(FwError::NotFirmwareOwned(sw))
    );
}

#[test]
fn objects_belong_to_their_uid() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let t = fw.create_table(7, &TableAttr::firmware(rx, 1, 0)).unwrap();
    assert_eq!(
        fw.destroy_table(8, rx, t),
        Err(FwError::UidMismatch {
            owner: 7,
            caller: 8
        })
    );
    // Users cannot touch the kernel's root table; the kernel can touch anything.
    let root = fw.root_table(rx).unwrap();
    assert!(matches!(
        fw.create_group(7, rx, root, &group(0, 0, l4(1, 0))),
        Err(FwError::UidMismatch { .. })
    ));
    fw.destroy_table(0, rx, t).unwrap();
}

#[test]
fn lookup_takes_the_first_matching_index_and_misses_by_type() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let t = fw.create_table(0, &TableAttr::firmware(rx, 1, 4)).unwrap();
    // Group A (indexes 8..15) matches the port only; group B (0..7) port and protocol.
    let ga = fw
        .create_group(0, rx, t, &group(8, 15, l4(0xffff, 0)))
        .unwrap();
    let gb = fw
        .create_group(0, rx, t, &group(0, 7, l4(0xffff, 0xff)))
        .unwrap();
    fw.set_entry(0, rx, t, EntryOp::Create, fte(8, ga, l4(80, 0), Fate::Drop))
        .unwrap();
    let tir = fw.create_tir(0).unwrap();
    fw.set_entry(
        0,
        rx,
        t,
        EntryOp::Create,
        fte(
            3,
            gb,
            l4(80, 6),
            Fate::Forward(vec![Destination::Tir(tir.tirn)]),
        ),
    )
    .unwrap();

    let mut packet = l4(80, 6);
    // Fields outside every mask do not matter.
    packet.set(Section::Misc, dr_match_set_misc::VXLAN_VNI, 42);
    match fw.lookup(t, &packet).unwrap() {
        TableLookup::Hit(e) => assert_eq!(e.flow_index, 3),
        other => panic!("{other:?}"),
    }
    match fw.lookup(t, &l4(80, 17)).unwrap() {
        TableLookup::Hit(e) => assert_eq!(e.flow_index, 8),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fw.lookup(t, &l4(81, 6)).unwrap(),
        TableLookup::Miss(MissAction::Default)
    );
    let w = fw.walk(t, &l4(80, 6)).unwrap();
    assert_eq!(w.paths.len(), 1);
    assert_eq!(w.paths[0].exit, FwExit::Terminal(Terminal::Tir(tir.tirn)));
    assert_eq!(
        w.paths[0].exit,
        FwExit::Terminal(fw.terminal(tir.icm_addr).unwrap())
    );
    assert_eq!(
        fw.walk(t, &l4(81, 6)).unwrap().paths[0].exit,
        FwExit::Terminal(Terminal::Drop)
    );

    // Default misses per type.
    assert_eq!(fw.default_miss(TableType::NicTx), Terminal::Allow);
    assert_eq!(fw.default_miss(TableType::Fdb), Terminal::Vport(0));
    let tx = fw
        .create_table(0, &TableAttr::firmware(TableType::NicTx, 1, 0))
        .unwrap();
    assert_eq!(
        fw.walk(tx, &packet).unwrap().paths[0].exit,
        FwExit::Terminal(Terminal::Allow)
    );
}

#[test]
fn walk_follows_tables_into_software_steering() {
    let mut fw = fw();
    let fdb = TableType::Fdb;
    let root = fw.root_table(fdb).unwrap();
    let sw = fw
        .create_table(0, &TableAttr::software(fdb, 63, STEERING, STEERING + 0x40))
        .unwrap();
    let mid = fw.create_table(0, &TableAttr::firmware(fdb, 2, 1)).unwrap();
    let counters = fw.alloc_counters(0, 4).unwrap();

    let g = fw
        .create_group(0, fdb, root, &group(0, 1, l4(0xffff, 0)))
        .unwrap();
    let mut to_mid = fte(
        0,
        g,
        l4(4789, 0),
        Fate::Forward(vec![Destination::FlowTable(mid)]),
    );
    to_mid.action.flow_tag = 0x11;
    to_mid.action.counters = vec![counters + 1];
    fw.set_entry(0, fdb, root, EntryOp::Create, to_mid).unwrap();
    fw.modify_table_miss(0, fdb, root, MissAction::Forward(mid))
        .unwrap();

    // mid: an always-hit group mirroring to the software table, a vport and the uplink.
    let gm = fw
        .create_group(0, fdb, mid, &group(0, 0, MatchParam::default()))
        .unwrap();
    let mut mirror = fte(
        0,
        gm,
        MatchParam::default(),
        Fate::Forward(vec![
            Destination::FlowTable(sw),
            Destination::Vport(2),
            Destination::Uplink,
        ]),
    );
    mirror.action.flow_tag = 0x22;
    fw.set_entry(0, fdb, mid, EntryOp::Create, mirror).unwrap();

    let w = fw.walk(root, &l4(4789, 17)).unwrap();
    assert_eq!(w.counters, vec![counters + 1]);
    let exits: Vec<FwExit> = w.paths.iter().map(|p| p.exit).collect();
    assert_eq!(
        exits,
        vec![
            FwExit::SwTable {
                table_id: sw,
                root_rx: Some(STEERING),
                root_tx: Some(STEERING + 0x40)
            },
            FwExit::Terminal(Terminal::Vport(2)),
            FwExit::Terminal(Terminal::Uplink),
        ]
    );
    for p in &w.paths {
        assert_eq!(p.flow_tag, Some(0x22));
        assert_eq!(
            p.hops,
            vec![
                FwHop {
                    table_id: root,
                    flow_index: Some(0)
                },
                FwHop {
                    table_id: mid,
                    flow_index: Some(0)
                },
            ]
        );
    }
    // A miss in the root goes to mid through the miss action; no counter on the way.
    let w = fw.walk(root, &l4(53, 17)).unwrap();
    assert!(w.counters.is_empty());
    assert_eq!(
        w.paths[0].hops[0],
        FwHop {
            table_id: root,
            flow_index: None
        }
    );
    assert_eq!(w.paths[0].flow_tag, Some(0x22));

    // Starting at a software-owned table leaves at once.
    let w = fw.walk(sw, &l4(1, 1)).unwrap();
    assert!(w.paths[0].hops.is_empty());
    assert!(matches!(
        fw.lookup(sw, &l4(1, 1)),
        Err(FwError::NotFirmwareOwned(_))
    ));

    // The counter bulk is held by the entry.
    assert_eq!(
        fw.dealloc_counters(0, counters),
        Err(FwError::CounterBusy(counters))
    );
}

#[test]
fn terminals_cover_every_firmware_address() {
    let mut fw = fw();
    let p = fw.profile().clone();
    assert_eq!(fw.terminal(p.nic_rx_drop_icm), Some(Terminal::Drop));
    assert_eq!(fw.terminal(p.nic_tx_drop_icm), Some(Terminal::Drop));
    assert_eq!(fw.terminal(p.nic_tx_allow_icm), Some(Terminal::Allow));
    assert_eq!(fw.terminal(p.esw_rx_drop_icm), Some(Terminal::Drop));
    assert_eq!(fw.terminal(p.esw_tx_drop_icm), Some(Terminal::Drop));
    assert_eq!(fw.terminal(p.uplink_rx_icm), Some(Terminal::Uplink));
    assert_eq!(fw.terminal(p.uplink_tx_icm), Some(Terminal::Uplink));
    assert_eq!(fw.terminal(0x7ff0_0340), Some(Terminal::Vport(0)));
    for v in &p.vports {
        assert_eq!(fw.terminal(v.icm_rx), Some(Terminal::Vport(v.num)));
        assert_eq!(fw.terminal(v.icm_tx), Some(Terminal::Vport(v.num)));
    }
    assert_eq!(fw.terminal(STEERING), None);

    let rx = TableType::NicRx;
    let t = fw.create_table(0, &TableAttr::firmware(rx, 3, 0)).unwrap();
    let TableOwner::Firmware { entry_rx, entry_tx } = fw.table(t).unwrap().owner else {
        panic!("firmware owned");
    };
    assert_ne!(entry_rx, entry_tx);
    assert_eq!(fw.terminal(entry_rx), Some(Terminal::FlowTable(t)));
    assert_eq!(fw.terminal(entry_tx), Some(Terminal::FlowTable(t)));
    let qp = fw.create_qp(3).unwrap();
    assert_eq!(fw.terminal(qp.tir_icm_addr), Some(Terminal::Qp(qp.qpn)));
    assert_eq!(
        fw.destroy_tir(3, qp.tirn),
        Err(FwError::TirOwnedByQp {
            tirn: qp.tirn,
            qpn: qp.qpn
        })
    );
    fw.destroy_qp(3, qp.qpn).unwrap();
    assert_eq!(fw.terminal(qp.tir_icm_addr), None);
    fw.destroy_table(0, rx, t).unwrap();
    assert_eq!(fw.terminal(entry_rx), None);
}

#[test]
fn tir_destinations_hold_the_tir() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let tir = fw.create_tir(0).unwrap();
    let t = fw.create_table(0, &TableAttr::firmware(rx, 1, 0)).unwrap();
    let g = fw
        .create_group(0, rx, t, &group(0, 0, MatchParam::default()))
        .unwrap();
    fw.set_entry(
        0,
        rx,
        t,
        EntryOp::Create,
        fte(
            0,
            g,
            MatchParam::default(),
            Fate::Forward(vec![Destination::Tir(tir.tirn)]),
        ),
    )
    .unwrap();
    assert_eq!(fw.destroy_tir(0, tir.tirn), Err(FwError::TirBusy(tir.tirn)));
    fw.delete_entry(0, rx, t, 0).unwrap();
    fw.destroy_tir(0, tir.tirn).unwrap();
    assert_eq!(
        fw.destroy_tir(0, tir.tirn),
        Err(FwError::NoSuchTir(tir.tirn))
    );
}

#[test]
fn counters_count_and_respect_limits() {
    let mut fw = fw();
    fw.profile_mut().log_max_flow_counter_bulk = 4;
    assert_eq!(fw.alloc_counters(0, 17), Err(FwError::BadCounterBulk(17)));
    let id = fw.alloc_counters(0, 16).unwrap();
    fw.count(id + 15, 1, 60).unwrap();
    assert_eq!(fw.counter(id + 15).unwrap().octets, 60);
    assert_eq!(
        fw.query_counters(0, id + 15, 1, false).unwrap()[0].packets,
        1
    );
    fw.dealloc_counters(0, id).unwrap();
    assert_eq!(fw.count(id, 1, 1), Err(FwError::NoSuchCounter(id)));
}

#[test]
fn walks_that_fan_out_without_end_are_cut_off() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let tables: Vec<u32> = (1..=3)
        .map(|level| {
            fw.create_table(0, &TableAttr::firmware(rx, level, 0))
                .unwrap()
        })
        .collect();
    for pair in tables.windows(2) {
        let g = fw
            .create_group(0, rx, pair[0], &group(0, 0, MatchParam::default()))
            .unwrap();
        let dests = vec![Destination::FlowTable(pair[1]); 100];
        fw.set_entry(
            0,
            rx,
            pair[0],
            EntryOp::Create,
            fte(0, g, MatchParam::default(), Fate::Forward(dests)),
        )
        .unwrap();
    }
    // 100 copies reach the second table, each makes 100 more: over the budget.
    assert_eq!(
        fw.walk(tables[0], &MatchParam::default()),
        Err(FwError::WalkTooLong(lookup::MAX_WALK_TABLES))
    );
    let w = fw.walk(tables[1], &MatchParam::default()).unwrap();
    assert_eq!(w.paths.len(), 100);
    assert!(w
        .paths
        .iter()
        .all(|p| p.exit == FwExit::Terminal(Terminal::Drop)));
}
