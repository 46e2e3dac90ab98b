//! Actions on the simulator: argument checks, rdma-core's list rules, the encoding
//! against `ste_builder::action`, and rules written behind a table root that packets
//! then walk (drop, goto, TIR and QP delivery, vports, flow tag, counters).

use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Packet, Side};
use ::sim::profile::{DeviceModel, Profile};
use ::sim::{Delivery, Entry, Fate, Stage};
use ste_builder::action::{set_actions_rx, set_actions_tx, ActionTypeSet, ActionsAttr};
use ste_builder::ste::{set_always_hit, Connect, Ste, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::MatchParam;

use super::*;
use crate::device::sim::SimBackend;
use crate::domain::{Domain, DomainType, Table, TableInUse};
use crate::icm::Chunk;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

fn backend(model: DeviceModel) -> Arc<SimBackend> {
    Arc::new(SimBackend::with_profile(Profile::new(model)).unwrap())
}

fn open(be: &Arc<SimBackend>, ty: DomainType) -> Arc<Domain> {
    let dev: Arc<dyn Device> = be.clone();
    Domain::open(dev, ty).unwrap()
}

fn packet(side: DomainSide) -> Packet {
    let pipe = if side.rx() { Side::Rx } else { Side::Tx };
    build_from_match(&MatchParam::default(), Metadata::new(pipe)).unwrap()
}

/// A rule that matches every packet, written behind `table`'s root on `side`: an
/// always-hit match STE carrying the encoded actions, and its action-only STEs each in
/// a 1-entry table. Returns the chunks (to free) and the encoding.
struct Rule {
    chunks: Vec<Chunk>,
    encoded: Encoded,
}

fn install(table: &Table, side: DomainSide, list: &ActionList) -> Rule {
    let dmn = table.domain();
    let ctrl = dmn.format().ctrl();
    let default = dmn.side(side).unwrap().default_miss;
    let mut last: Ste = [0u8; STE_SIZE];
    ctrl.init(&mut last, LU_TYPE_DONT_CARE, side.rx(), dmn.gvmi());
    ctrl.set_miss_addr(&mut last, default);
    set_always_hit(&mut last);
    let mut extra = Vec::new();
    let encoded = list.encode(side, &mut last, &mut extra).unwrap();
    assert_eq!(encoded.added_stes, extra.len());
    let mut stes = vec![last];
    stes.extend(extra);
    let chunks: Vec<Chunk> = stes
        .iter()
        .map(|_| dmn.ste_pool().alloc(0).unwrap())
        .collect();
    for i in 1..stes.len() {
        ctrl.set_hit_addr(&mut stes[i - 1], chunks[i].icm_addr(), 1);
        ctrl.set_miss_addr(&mut stes[i], default);
    }
    {
        let mut ring = dmn.ring();
        for (ste, chunk) in stes.iter_mut().zip(&chunks) {
            ctrl.prepare_for_postsend(ste, STE_SIZE);
            ring.write(&chunk.region(), chunk.icm_addr(), ste).unwrap();
        }
        ring.flush().unwrap();
    }
    table
        .connect_root(
            side,
            Connect::Hit {
                lu_type: LU_TYPE_DONT_CARE,
                byte_mask: 0,
                icm_addr: chunks[0].icm_addr(),
                num_entries: 1,
            },
        )
        .unwrap();
    Rule { chunks, encoded }
}

fn remove(table: &Table, side: DomainSide, rule: Rule) {
    table.disconnect_root(side).unwrap();
    for c in rule.chunks {
        table.domain().ste_pool().free(c).unwrap();
    }
}

/// Sends one packet of `side` into `table`'s firmware table.
fn send(be: &SimBackend, table: &Table, side: DomainSide) -> Delivery {
    let mut out = be
        .sim()
        .process(packet(side), Entry::Table(table.fw_id()))
        .unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

/// The ICM addresses the packet's software stages visited.
fn hops(d: &Delivery) -> Vec<u64> {
    d.stages
        .iter()
        .flat_map(|s| match s {
            Stage::Software { verdict, .. } => verdict.trace.iter().map(|h| h.addr).collect(),
            Stage::Firmware(_) => Vec::new(),
        })
        .collect()
}

fn list(table: &Table, actions: &[Arc<Action>]) -> Result<ActionList, ActionError> {
    ActionList::new(table, actions)
}

#[test]
fn constructors_check_their_arguments() {
    let be = backend(DeviceModel::ConnectX6Dx);
    let nic = open(&be, DomainType::NicRx);
    assert_eq!(
        Action::flow_tag(1 << 24).unwrap_err(),
        ActionError::TagTooWide(1 << 24)
    );
    Action::flow_tag(MAX_FLOW_TAG).unwrap();
    let err = Action::dest_qp(QpDest {
        qpn: 9,
        tir_icm_addr: 0,
    })
    .unwrap_err();
    assert_eq!(err, ActionError::NoIcmAddress { what: "QP", num: 9 });
    let ctr = Counter::alloc(&nic, 2).unwrap();
    assert_eq!(
        Action::counter(&ctr, 4).unwrap_err(),
        ActionError::CounterOffset { offset: 4, len: 4 }
    );
    Action::counter(&ctr, 3).unwrap();
    let err = Action::dest_vport(&nic, 1).unwrap_err();
    assert!(
        matches!(
            err,
            ActionError::Vport(DomainError::VportOutsideFdb { vport: 1, .. })
        ),
        "{err}"
    );
    let fdb = open(&be, DomainType::Fdb);
    match Action::dest_vport(&fdb, 3).unwrap().kind() {
        ActionKind::Vport { vport, .. } => {
            assert_eq!((vport.vport_num, vport.icm_address_rx), (3, 0x7ff0_0500))
        }
        other => panic!("{other:?}"),
    }
    match Action::dest_uplink(&fdb).unwrap().kind() {
        ActionKind::Vport { vport, .. } => {
            assert_eq!(
                (vport.icm_address_rx, vport.icm_address_tx),
                (0x7ff0_0200, 0x7ff0_0240)
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lists_follow_rdma_cores_rules() {
    let be = backend(DeviceModel::ConnectX6Dx);
    let rx = open(&be, DomainType::NicRx);
    let tx = open(&be, DomainType::NicTx);
    let fdb = open(&be, DomainType::Fdb);
    let rx1 = Table::new(&rx, 1).unwrap();
    let rx2 = Table::new(&rx, 2).unwrap();
    let tx1 = Table::new(&tx, 1).unwrap();
    let fdb1 = Table::new(&fdb, 1).unwrap();
    let tir = Tir::create(&rx, TirSpec::default()).unwrap();
    let ctr = Counter::alloc(&rx, 0).unwrap();
    let tag = Action::flow_tag(7).unwrap();
    let count = Action::counter(&ctr, 0).unwrap();
    let to_tir = Action::dest_tir(&tir).unwrap();
    let drop = Action::drop();

    // What NIC RX allows: marks, then one fate, then counters.
    list(&rx1, &[tag.clone(), count.clone(), to_tir.clone()]).unwrap();
    list(&rx1, &[drop.clone(), count.clone()]).unwrap();
    list(&rx1, &[]).unwrap();
    assert_eq!(
        list(&rx1, &[drop.clone(), drop.clone()]).unwrap_err(),
        ActionError::Duplicate {
            action: ActionType::Drop,
            max: 1
        }
    );
    assert_eq!(
        list(&rx1, &[drop.clone(), to_tir.clone()]).unwrap_err(),
        ActionError::MoreThanOneFate {
            first: ActionType::Drop,
            second: ActionType::Qp
        }
    );
    assert_eq!(
        list(&rx1, &[drop.clone(), tag.clone()]).unwrap_err(),
        ActionError::Order {
            action: ActionType::Tag,
            after: ActionType::Drop,
            side: DomainSide::NicRx
        }
    );
    // Side-specific actions elsewhere.
    assert_eq!(
        list(&tx1, std::slice::from_ref(&tag)).unwrap_err(),
        ActionError::NotOnSide {
            action: ActionType::Tag,
            side: DomainSide::NicTx
        }
    );
    assert_eq!(
        list(&fdb1, std::slice::from_ref(&tag)).unwrap_err(),
        ActionError::NotOnSide {
            action: ActionType::Tag,
            side: DomainSide::FdbRx
        }
    );
    assert_eq!(
        list(&fdb1, std::slice::from_ref(&to_tir)).unwrap_err(),
        ActionError::NotOnSide {
            action: ActionType::Qp,
            side: DomainSide::FdbRx
        }
    );
    let vport = Action::dest_vport(&fdb, 1).unwrap();
    assert_eq!(
        list(&rx1, std::slice::from_ref(&vport)).unwrap_err(),
        ActionError::NotOnSide {
            action: ActionType::Vport,
            side: DomainSide::NicRx
        }
    );
    list(&fdb1, &[count.clone(), vport.clone()]).unwrap();
    // Goto: same domain, higher level.
    list(&rx1, &[Action::goto_table(&rx2)]).unwrap();
    assert_eq!(
        list(&rx2, &[Action::goto_table(&rx1)]).unwrap_err(),
        ActionError::TableLevel { from: 2, to: 1 }
    );
    assert_eq!(
        list(&rx1, &[Action::goto_table(&rx1)]).unwrap_err(),
        ActionError::TableLevel { from: 1, to: 1 }
    );
    let fdb2 = Table::new(&fdb, 2).unwrap();
    assert_eq!(
        list(&rx1, &[Action::goto_table(&fdb2)]).unwrap_err(),
        ActionError::OtherDomain {
            action: ActionType::Ft
        }
    );
    // A second FDB domain's vport, and another device's counter and TIR.
    let fdb_b = open(&be, DomainType::Fdb);
    let fdb_b1 = Table::new(&fdb_b, 1).unwrap();
    assert_eq!(
        list(&fdb_b1, &[vport]).unwrap_err(),
        ActionError::OtherDomain {
            action: ActionType::Vport
        }
    );
    let other = backend(DeviceModel::ConnectX6Dx);
    let other_rx = open(&other, DomainType::NicRx);
    let other_ctr = Counter::alloc(&other_rx, 0).unwrap();
    let other_tir = Tir::create(&other_rx, TirSpec::default()).unwrap();
    assert_eq!(
        list(&rx1, &[Action::counter(&other_ctr, 0).unwrap()]).unwrap_err(),
        ActionError::OtherDevice {
            action: ActionType::Ctr
        }
    );
    assert_eq!(
        list(&rx1, &[Action::dest_tir(&other_tir).unwrap()]).unwrap_err(),
        ActionError::OtherDevice {
            action: ActionType::Qp
        }
    );
}

#[test]
fn encoding_is_ste_builders_with_the_actions_attributes() {
    for model in MODELS {
        let be = backend(model);
        let fdb = open(&be, DomainType::Fdb);
        let rx = open(&be, DomainType::NicRx);
        let format = rx.format();
        let gvmi = rx.gvmi();
        let rx1 = Table::new(&rx, 1).unwrap();
        let rx5 = Table::new(&rx, 5).unwrap();
        let ctr = Counter::alloc(&rx, 4).unwrap();
        let actions = [
            Action::flow_tag(0x00ab_cdef).unwrap(),
            Action::counter(&ctr, 9).unwrap(),
            Action::goto_table(&rx5),
        ];
        let l = list(&rx1, &actions).unwrap();
        let side = DomainSide::NicRx;
        let root5 = rx5.root_addr(side).unwrap();
        assert_eq!(l.final_icm_addr(side), Ok(root5));

        let mut init: Ste = [0u8; STE_SIZE];
        format.ctrl().init(&mut init, LU_TYPE_DONT_CARE, true, gvmi);
        let mut ours = init;
        let mut extra = Vec::new();
        let enc = l.encode(side, &mut ours, &mut extra).unwrap();
        assert_eq!(enc.final_icm_addr, root5);
        assert_eq!(enc.added_stes, extra.len());

        let set: ActionTypeSet = [ActionType::Tag, ActionType::Ctr, ActionType::Ft]
            .into_iter()
            .collect();
        let attr = ActionsAttr {
            gvmi,
            hit_gvmi: gvmi,
            final_icm_addr: root5,
            flow_tag: 0x00ab_cdef,
            ctr_id: ctr.id() + 9,
            ..ActionsAttr::default()
        };
        let mut theirs = [0u8; 8 * STE_SIZE];
        theirs[..STE_SIZE].copy_from_slice(&init);
        let out = set_actions_rx(format, &set, &mut theirs, &attr).unwrap();
        assert_eq!(out.added_stes, enc.added_stes, "{model:?}");
        assert_eq!(&theirs[..STE_SIZE], &ours[..], "{model:?}");
        for (i, e) in extra.iter().enumerate() {
            assert_eq!(&theirs[(i + 1) * STE_SIZE..(i + 2) * STE_SIZE], &e[..]);
        }
        assert_eq!(format.ctrl().hit_index(&ours) >> 1 << 6, root5 & !0x3f);

        // The FDB TX side of a vport rule: the vport's TX address and its gvmi.
        let fdb1 = Table::new(&fdb, 1).unwrap();
        let vport = fdb.vport(2).unwrap();
        let l = list(&fdb1, &[Action::dest_vport(&fdb, 2).unwrap()]).unwrap();
        let mut init: Ste = [0u8; STE_SIZE];
        format
            .ctrl()
            .init(&mut init, LU_TYPE_DONT_CARE, false, gvmi);
        let mut ours = init;
        let enc = l
            .encode(DomainSide::FdbTx, &mut ours, &mut Vec::new())
            .unwrap();
        assert_eq!(enc.final_icm_addr, vport.icm_address_tx);
        let attr = ActionsAttr {
            gvmi,
            hit_gvmi: vport.vhca_gvmi,
            final_icm_addr: vport.icm_address_tx,
            ..ActionsAttr::default()
        };
        let set: ActionTypeSet = [ActionType::Vport].into_iter().collect();
        let mut theirs = init;
        set_actions_tx(format, &set, &mut theirs, &attr).unwrap();
        assert_eq!(theirs, ours, "{model:?}");

        // A side the list does not have changes nothing.
        let before = ours;
        let mut extra = Vec::new();
        let err = l
            .encode(DomainSide::NicRx, &mut ours, &mut extra)
            .unwrap_err();
        assert_eq!(
            err,
            ActionError::NoSuchSide {
                domain: DomainType::Fdb,
                side: DomainSide::NicRx
            }
        );
        assert_eq!((ours, extra.len()), (before, 0));
    }
}

#[test]
fn fates_end_where_the_actions_say() {
    for model in MODELS {
        let be = backend(model);
        let p = Profile::new(model);
        // FDB: drop, default miss, vport, uplink on both sides.
        let fdb = open(&be, DomainType::Fdb);
        let t = Table::new(&fdb, 1).unwrap();
        let cases = [
            (Action::drop(), Terminal::Drop),
            (Action::default_miss(), Terminal::Vport(p.esw_manager_vport)),
            (Action::dest_vport(&fdb, 4).unwrap(), Terminal::Vport(4)),
            (Action::dest_uplink(&fdb).unwrap(), Terminal::Uplink),
        ];
        for (action, want) in cases {
            let l = list(&t, &[action]).unwrap();
            for &side in fdb.sides() {
                let rule = install(&t, side, &l);
                let d = send(&be, &t, side);
                assert_eq!(d.fate, Fate::Delivered(want), "{model:?} {side}");
                assert_eq!(
                    hops(&d)[..2],
                    [t.root_addr(side).unwrap(), rule.chunks[0].icm_addr()]
                );
                remove(&t, side, rule);
            }
        }
        // NIC TX: drop and the default (to the wire).
        let tx = open(&be, DomainType::NicTx);
        let t = Table::new(&tx, 1).unwrap();
        for (action, want) in [
            (Action::drop(), Terminal::Drop),
            (Action::default_miss(), Terminal::Allow),
        ] {
            let l = list(&t, &[action]).unwrap();
            let rule = install(&t, DomainSide::NicTx, &l);
            let d = send(&be, &t, DomainSide::NicTx);
            assert_eq!(d.fate, Fate::Delivered(want), "{model:?}");
            remove(&t, DomainSide::NicTx, rule);
        }
    }
}

#[test]
fn goto_table_walks_into_the_destination_root() {
    for model in MODELS {
        let be = backend(model);
        let rx = open(&be, DomainType::NicRx);
        let t1 = Table::new(&rx, 1).unwrap();
        let t2 = Table::new(&rx, 2).unwrap();
        let t3 = Table::new(&rx, 3).unwrap();
        let side = DomainSide::NicRx;
        let tir = Tir::create(&rx, TirSpec::default()).unwrap();
        // t1 -> t2 -> t3 -> TIR.
        let r1 = install(&t1, side, &list(&t1, &[Action::goto_table(&t2)]).unwrap());
        let r2 = install(&t2, side, &list(&t2, &[Action::goto_table(&t3)]).unwrap());
        let r3 = install(
            &t3,
            side,
            &list(&t3, &[Action::dest_tir(&tir).unwrap()]).unwrap(),
        );
        let d = send(&be, &t1, side);
        assert_eq!(
            d.fate,
            Fate::Delivered(Terminal::Tir(tir.tirn())),
            "{model:?}"
        );
        let root = |t: &Table| t.root_addr(side).unwrap();
        let want = [
            root(&t1),
            r1.chunks[0].icm_addr(),
            root(&t2),
            r2.chunks[0].icm_addr(),
            root(&t3),
            r3.chunks[0].icm_addr(),
        ];
        assert_eq!(hops(&d), want, "{model:?}");
        // With t3 emptied, the walk ends at t3's root, at the side's default.
        remove(&t3, side, r3);
        let d = send(&be, &t1, side);
        assert_eq!(d.fate, Fate::Delivered(Terminal::Drop));
        assert_eq!(hops(&d).last(), Some(&root(&t3)));
        remove(&t2, side, r2);
        remove(&t1, side, r1);
    }
}

#[test]
fn delivery_carries_the_tag_and_counts() {
    for model in MODELS {
        let be = backend(model);
        let rx = open(&be, DomainType::NicRx);
        let t = Table::new(&rx, 1).unwrap();
        let side = DomainSide::NicRx;
        let ctr = Counter::alloc(&rx, 3).unwrap();
        let tir = Tir::create(&rx, TirSpec::default()).unwrap();
        let l = list(
            &t,
            &[
                Action::flow_tag(0x00c0_ffee).unwrap(),
                Action::counter(&ctr, 5).unwrap(),
                Action::dest_tir(&tir).unwrap(),
            ],
        )
        .unwrap();
        let rule = install(&t, side, &l);
        assert_eq!(rule.encoded.final_icm_addr, tir.icm_addr());
        let mut bytes = 0;
        for _ in 0..3 {
            let d = send(&be, &t, side);
            assert_eq!(
                d.fate,
                Fate::Delivered(Terminal::Tir(tir.tirn())),
                "{model:?}"
            );
            assert_eq!(d.packet.meta.flow_tag, Some(0x00c0_ffee), "{model:?}");
            assert_eq!(d.counters, [ctr.id() + 5]);
            bytes += d.packet.len() as u64;
        }
        assert_eq!(
            ctr.query(5).unwrap(),
            CounterValue { packets: 3, bytes },
            "{model:?}"
        );
        let all = ctr.query_many(0, 8).unwrap();
        assert_eq!(all.len(), 8);
        for (i, v) in all.iter().enumerate() {
            let want = if i == 5 { 3 } else { 0 };
            assert_eq!(v.packets, want, "counter {i}");
        }
        assert_eq!(ctr.query_and_clear(5, 1).unwrap()[0].packets, 3);
        assert_eq!(ctr.query(5).unwrap(), CounterValue::default());

        // A QP (made by the verbs layer, here the firmware model) as the destination.
        let qp = be.sim().with_firmware(|fw| fw.create_qp(0)).unwrap();
        let to_qp = Action::dest_qp(QpDest {
            qpn: qp.qpn,
            tir_icm_addr: qp.tir_icm_addr,
        })
        .unwrap();
        remove(&t, side, rule);
        let rule = install(&t, side, &list(&t, &[to_qp]).unwrap());
        let d = send(&be, &t, side);
        assert_eq!(d.fate, Fate::Delivered(Terminal::Qp(qp.qpn)), "{model:?}");
        assert_eq!(d.packet.meta.flow_tag, None);
        remove(&t, side, rule);
    }
}

#[test]
fn counters_allocate_query_and_free() {
    let be = backend(DeviceModel::ConnectX6Dx);
    let rx = open(&be, DomainType::NicRx);
    let live = be.live_objects();
    let max = rx.caps().log_max_flow_counter_bulk;
    // Single, log-size and classic (128 * 2^k) bulks.
    let bulks: Vec<_> = [0u8, 3, 7, 10]
        .into_iter()
        .map(|log| Counter::alloc(&rx, log).unwrap())
        .collect();
    for (c, log) in bulks.iter().zip([0u8, 3, 7, 10]) {
        assert_eq!(c.len(), 1 << log);
        assert_eq!(
            c.query_many(0, c.len()).unwrap(),
            vec![CounterValue::default(); c.len() as usize]
        );
        // The firmware agrees on the bulk's extent.
        let extent = be
            .sim()
            .with_firmware(|fw| fw.counter(c.id() + c.len() - 1));
        assert!(extent.is_some(), "last counter of 2^{log}");
    }
    assert_eq!(be.live_objects(), live + 4);
    assert_eq!(
        bulks[1].query_many(6, 3).unwrap_err(),
        CounterError::OutOfRange {
            first: 6,
            count: 3,
            len: 8
        }
    );
    assert!(bulks[0].query_many(0, 0).is_err());
    assert_eq!(
        Counter::alloc(&rx, max + 1).unwrap_err(),
        CounterError::BulkTooLarge {
            log_bulk: max + 1,
            max
        }
    );
    let ids: Vec<u32> = bulks.iter().map(|c| c.id()).collect();
    drop(bulks);
    assert_eq!(be.live_objects(), live);
    for id in ids {
        assert!(be.sim().with_firmware(|fw| fw.counter(id)).is_none());
    }
}

#[test]
fn tirs_are_destroyed_with_their_last_holder() {
    let be = backend(DeviceModel::ConnectX7);
    let rx = open(&be, DomainType::NicRx);
    let tir = Tir::create(
        &rx,
        TirSpec {
            transport_domain: 3,
            inline_rqn: 0x44,
        },
    )
    .unwrap();
    let tirn = tir.tirn();
    assert!(be.sim().with_firmware(|fw| fw.tir(tirn).is_some()));
    let action = Action::dest_tir(&tir).unwrap();
    drop(tir);
    assert!(be.sim().with_firmware(|fw| fw.tir(tirn).is_some()));
    drop(action);
    assert!(be.sim().with_firmware(|fw| fw.tir(tirn).is_none()));
    assert_eq!(be.live_objects(), 0);
}

#[test]
fn a_table_in_use_cannot_be_destroyed() {
    let be = backend(DeviceModel::ConnectX6Dx);
    let rx = open(&be, DomainType::NicRx);
    let t1 = Table::new(&rx, 1).unwrap();
    let t2 = Table::new(&rx, 2).unwrap();
    let goto = Action::goto_table(&t2);
    let l = list(&t1, std::slice::from_ref(&goto)).unwrap();
    drop(goto);
    // The list still holds the action, which holds the table.
    let TableInUse { table, users } = Table::destroy(t2).unwrap_err();
    assert_eq!(users, 1);
    let root = table.root_addr(DomainSide::NicRx).unwrap();
    assert_eq!(l.final_icm_addr(DomainSide::NicRx), Ok(root));
    drop(l);
    Table::destroy(table).unwrap();
    assert_eq!(be.live_objects(), 1);
    drop(t1);
    assert_eq!(be.live_objects(), 0);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Action>();
    check::<ActionList>();
    check::<Counter>();
    check::<Tir>();
}
