//! Unit tests of the command interface: each command through its mailbox bytes, its
//! errors, and fault injection.

use super::layout::{self, action, dest_type, opcode};
use super::*;
use crate::endpoint::Terminal;
use crate::fw::{FwExit, TableType};
use crate::profile::{CapType, DeviceModel, Profile};
use ste_builder::bits::{self, BitField};
use ste_builder::prm::{
    alloc_flow_counter_out, cmd_hca_cap, create_flow_group_in, create_flow_group_out,
    create_flow_table_in, create_flow_table_out, create_tir_out, dealloc_flow_counter_in,
    dest_format, destroy_flow_group_in, destroy_flow_table_in, destroy_tir_in, device_mem_cap,
    dr_match_spec, esw_vport_context, flow_context, flow_counter_list, flow_table_context,
    flow_table_nic_cap, host_params_context, nic_vport_context, query_esw_functions_in,
    query_esw_functions_out, query_esw_vport_context_in, query_esw_vport_context_out,
    query_flow_table_in, query_flow_table_out, query_hca_cap_in, query_hca_cap_out,
    query_nic_vport_context_in, query_nic_vport_context_out, set_fte_in, sync_steering_in,
};
use ste_builder::{MatchParam, Section};

const STEERING: u64 = 0x10_0000_0000;

fn fw() -> Firmware {
    Firmware::new(Profile::new(DeviceModel::ConnectX6Dx))
}

/// A zeroed input of `bits` bits with `opcode` set.
fn input(op: u16, bits: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bits.div_ceil(8)];
    bits::set(&mut buf, mbox_in::OPCODE, op.into());
    buf
}

fn set(buf: &mut [u8], field: BitField, value: u64) {
    bits::set(buf, field, value);
}

fn get(buf: &[u8], field: BitField) -> u64 {
    bits::get(buf, field)
}

/// Runs `inp` with an output of `out_len` bytes.
fn run(fw: &mut Firmware, inp: &[u8], out_len: usize) -> (Completion, Vec<u8>) {
    let mut out = vec![0xa5u8; out_len];
    let c = execute(fw, inp, &mut out).unwrap();
    assert_eq!(get(&out, mbox_out::STATUS), u64::from(c.status.code()));
    assert_eq!(get(&out, mbox_out::SYNDROME), u64::from(c.syndrome));
    (c, out)
}

fn ok(fw: &mut Firmware, inp: &[u8], out_len: usize) -> Vec<u8> {
    let (c, out) = run(fw, inp, out_len);
    assert_eq!(c.status, Status::Ok, "{c:?}");
    out
}

fn status(fw: &mut Firmware, inp: &[u8], out_len: usize) -> Status {
    run(fw, inp, out_len).0.status
}

fn query_cap(fw: &mut Firmware, op_mod: u16) -> Vec<u8> {
    let mut inp = input(opcode::QUERY_HCA_CAP, query_hca_cap_in::SIZE_BITS);
    set(&mut inp, query_hca_cap_in::OP_MOD, op_mod.into());
    let out = ok(fw, &inp, query_hca_cap_out::SIZE_BITS / 8);
    out[query_hca_cap_out::CAPABILITY_OFF / 8..].to_vec()
}

#[test]
fn header_errors() {
    let mut fw = fw();
    let (c, _) = run(&mut fw, &[], 16);
    assert_eq!((c.opcode, c.status), (0, Status::BadInputLen));
    let (c, _) = run(&mut fw, &[0x01, 0x00, 0, 0], 16);
    assert_eq!(
        (c.opcode, c.status),
        (opcode::QUERY_HCA_CAP, Status::BadInputLen)
    );
    let (c, _) = run(&mut fw, &input(0x0dea, 128), 16);
    assert_eq!(
        (c.status, c.syndrome),
        (Status::BadOp, status::syndrome::UNKNOWN_OPCODE)
    );
    let mut short = [0u8; 15];
    assert_eq!(
        execute(&mut fw, &input(opcode::SYNC_STEERING, 256), &mut short),
        Err(MailboxError::OutputTooShort { len: 15 })
    );
}

#[test]
fn query_hca_cap_pages() {
    let mut fw = fw();
    let general = query_cap(&mut fw, CapType::General.op_mod(true));
    assert_eq!(get(&general, cmd_hca_cap::VHCA_ID), 1);
    assert_eq!(get(&general, cmd_hca_cap::STEERING_FORMAT_VERSION), 1);
    assert_eq!(get(&general, cmd_hca_cap::ESWITCH_MANAGER), 1);
    assert_eq!(general, fw.profile().caps_page(0).unwrap());

    let nic = query_cap(&mut fw, CapType::NicFlowTable.op_mod(true));
    assert_eq!(
        get(
            &nic,
            flow_table_nic_cap::SW_STEERING_NIC_RX_ACTION_DROP_ICM_ADDRESS
        ),
        0x7ff0_0000
    );
    let dm = query_cap(&mut fw, CapType::DeviceMemory.op_mod(true));
    assert_eq!(get(&dm, device_mem_cap::LOG_STEERING_SW_ICM_SIZE), 30);

    // Another function's general page carries its vhca id.
    let mut inp = input(opcode::QUERY_HCA_CAP, query_hca_cap_in::SIZE_BITS);
    set(&mut inp, query_hca_cap_in::OP_MOD, 1);
    set(&mut inp, query_hca_cap_in::OTHER_FUNCTION, 1);
    set(&mut inp, query_hca_cap_in::FUNCTION_ID, 3);
    let out = ok(&mut fw, &inp, query_hca_cap_out::SIZE_BITS / 8);
    let page = &out[query_hca_cap_out::CAPABILITY_OFF / 8..];
    assert_eq!(get(page, cmd_hca_cap::VHCA_ID), 4);

    set(&mut inp, query_hca_cap_in::FUNCTION_ID, 99);
    let (c, _) = run(&mut fw, &inp, query_hca_cap_out::SIZE_BITS / 8);
    assert_eq!(
        (c.status, c.syndrome),
        (Status::BadParam, status::syndrome::NO_SUCH_FUNCTION)
    );

    let mut inp = input(opcode::QUERY_HCA_CAP, query_hca_cap_in::SIZE_BITS);
    set(&mut inp, query_hca_cap_in::OP_MOD, 0x3 << 1);
    let (c, _) = run(&mut fw, &inp, query_hca_cap_out::SIZE_BITS / 8);
    assert_eq!(
        (c.status, c.syndrome),
        (Status::BadParam, status::syndrome::BAD_CAP_TYPE)
    );
    set(&mut inp, query_hca_cap_in::OP_MOD, 1);
    assert_eq!(status(&mut fw, &inp, 4096), Status::BadOutputLen);
    assert_eq!(status(&mut fw, &inp[..15], 4112), Status::BadInputLen);
}

#[test]
fn vport_queries() {
    let mut fw = fw();
    let inp = input(
        opcode::QUERY_NIC_VPORT_CONTEXT,
        query_nic_vport_context_in::SIZE_BITS,
    );
    let out = ok(&mut fw, &inp, query_nic_vport_context_out::SIZE_BITS / 8);
    let ctx = query_nic_vport_context_out::NIC_VPORT_CONTEXT_OFF;
    assert_eq!(get(&out, nic_vport_context::ROCE_EN.at(ctx)), 1);

    let len = query_esw_vport_context_out::SIZE_BITS / 8;
    let ctx = query_esw_vport_context_out::ESW_VPORT_CONTEXT_OFF;
    let rx = esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_RX.at(ctx);
    let tx = esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_TX.at(ctx);
    let mut inp = input(
        opcode::QUERY_ESW_VPORT_CONTEXT,
        query_esw_vport_context_in::SIZE_BITS,
    );
    let out = ok(&mut fw, &inp, len);
    assert_eq!((get(&out, rx), get(&out, tx)), (0x7ff0_0300, 0x7ff0_0340));
    set(&mut inp, query_esw_vport_context_in::OTHER_VPORT, 1);
    set(&mut inp, query_esw_vport_context_in::VPORT_NUMBER, 2);
    let out = ok(&mut fw, &inp, len);
    let v2 = *fw.profile().vport(2).unwrap();
    assert_eq!((get(&out, rx), get(&out, tx)), (v2.icm_rx, v2.icm_tx));
    set(&mut inp, query_esw_vport_context_in::VPORT_NUMBER, 77);
    assert_eq!(status(&mut fw, &inp, len), Status::BadParam);
    fw.profile_mut().eswitch_manager = false;
    assert_eq!(status(&mut fw, &inp, len), Status::BadParam);
}

#[test]
fn esw_functions_fit_rdma_cores_short_buffer() {
    let mut fw = fw();
    fw.profile_mut().is_ecpf = true;
    fw.profile_mut().host_pf_vhca_id = 9;
    let inp = input(
        opcode::QUERY_ESW_FUNCTIONS,
        query_esw_functions_in::SIZE_BITS,
    );
    // rdma-core 44 passes 120 bytes when the device has no scalable functions.
    let out = ok(&mut fw, &inp, 120);
    let ctx = query_esw_functions_out::HOST_PARAMS_CONTEXT_OFF;
    assert_eq!(
        get(&out, host_params_context::HOST_PF_VHCA_ID_VALID.at(ctx)),
        1
    );
    assert_eq!(get(&out, host_params_context::HOST_PF_VHCA_ID.at(ctx)), 9);
    assert_eq!(status(&mut fw, &inp, 64), Status::BadOutputLen);
}

/// A `CREATE_FLOW_TABLE` input.
fn create_table_in(ty: TableType, level: u8, sw_roots: Option<(u64, u64)>) -> Vec<u8> {
    let mut inp = input(opcode::CREATE_FLOW_TABLE, create_flow_table_in::SIZE_BITS);
    set(&mut inp, create_flow_table_in::TABLE_TYPE, ty.prm().into());
    let ctx = create_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    set(&mut inp, flow_table_context::LEVEL.at(ctx), level.into());
    if let Some((r0, r1)) = sw_roots {
        set(&mut inp, flow_table_context::SW_OWNER.at(ctx), 1);
        set(
            &mut inp,
            flow_table_context::SW_OWNER_ICM_ROOT_0.at(ctx),
            r0,
        );
        set(
            &mut inp,
            flow_table_context::SW_OWNER_ICM_ROOT_1.at(ctx),
            r1,
        );
    }
    inp
}

fn create_table(fw: &mut Firmware, ty: TableType, level: u8, sw: Option<(u64, u64)>) -> u32 {
    let out = ok(fw, &create_table_in(ty, level, sw), 16);
    get(&out, create_flow_table_out::TABLE_ID) as u32
}

/// The table's context as `QUERY_FLOW_TABLE` returns it.
fn query_table(fw: &mut Firmware, ty: TableType, id: u32) -> Result<Vec<u8>, Status> {
    let mut inp = input(opcode::QUERY_FLOW_TABLE, query_flow_table_in::SIZE_BITS);
    set(&mut inp, query_flow_table_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, query_flow_table_in::TABLE_ID, id.into());
    let (c, out) = run(fw, &inp, query_flow_table_out::SIZE_BITS / 8);
    if c.status != Status::Ok {
        return Err(c.status);
    }
    Ok(out[query_flow_table_out::FLOW_TABLE_CONTEXT_OFF / 8..].to_vec())
}

fn destroy_table_in(ty: TableType, id: u32) -> Vec<u8> {
    let mut inp = input(opcode::DESTROY_FLOW_TABLE, destroy_flow_table_in::SIZE_BITS);
    set(&mut inp, destroy_flow_table_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, destroy_flow_table_in::TABLE_ID, id.into());
    inp
}

#[test]
fn flow_table_lifecycle() {
    let mut fw = fw();
    let fdb = TableType::Fdb;
    // As rdma-core creates its tables: level max_ft_level - 1, RX root in root_0 and TX
    // root in root_1.
    let sw = create_table(&mut fw, fdb, 63, Some((STEERING, STEERING + 0x1000)));
    let ctx = query_table(&mut fw, fdb, sw).unwrap();
    assert_eq!(get(&ctx, flow_table_context::SW_OWNER), 1);
    assert_eq!(get(&ctx, flow_table_context::LEVEL), 63);
    assert_eq!(get(&ctx, flow_table_context::SW_OWNER_ICM_ROOT_0), STEERING);
    assert_eq!(
        get(&ctx, flow_table_context::SW_OWNER_ICM_ROOT_1),
        STEERING + 0x1000
    );

    // A firmware-owned table reports entry addresses that lead back to it.
    let (c, out) = run(&mut fw, &create_table_in(fdb, 2, None), 16);
    assert_eq!(c.status, Status::Ok);
    let ft = get(&out, create_flow_table_out::TABLE_ID) as u32;
    let icm = get(&out, create_flow_table_out::ICM_ADDRESS_63_40) << 40
        | get(&out, create_flow_table_out::ICM_ADDRESS_39_32) << 32
        | get(&out, create_flow_table_out::ICM_ADDRESS_31_0);
    assert_eq!(fw.terminal(icm), Some(Terminal::FlowTable(ft)));
    let ctx = query_table(&mut fw, fdb, ft).unwrap();
    assert_eq!(get(&ctx, flow_table_context::SW_OWNER), 0);
    let root_0 = get(&ctx, flow_table_context::SW_OWNER_ICM_ROOT_0);
    let root_1 = get(&ctx, flow_table_context::SW_OWNER_ICM_ROOT_1);
    assert_eq!(root_0, icm);
    assert_eq!(fw.terminal(root_1), Some(Terminal::FlowTable(ft)));

    // Modify the miss to the software table, then query it back.
    let mut inp = input(
        opcode::MODIFY_FLOW_TABLE,
        layout::modify_flow_table_in::SIZE_BITS,
    );
    set(
        &mut inp,
        layout::modify_flow_table_in::TABLE_TYPE,
        fdb.prm().into(),
    );
    set(&mut inp, layout::modify_flow_table_in::TABLE_ID, ft.into());
    set(
        &mut inp,
        layout::modify_flow_table_in::MODIFY_FIELD_SELECT,
        layout::modify_field::MISS_TABLE_ID.into(),
    );
    let mctx = layout::modify_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    set(&mut inp, flow_table_context::TABLE_MISS_ACTION.at(mctx), 1);
    set(
        &mut inp,
        flow_table_context::TABLE_MISS_ID.at(mctx),
        sw.into(),
    );
    ok(&mut fw, &inp, 16);
    let ctx = query_table(&mut fw, fdb, ft).unwrap();
    assert_eq!(get(&ctx, flow_table_context::TABLE_MISS_ACTION), 1);
    assert_eq!(get(&ctx, flow_table_context::TABLE_MISS_ID), u64::from(sw));
    // LAG fields are not modelled.
    set(
        &mut inp,
        layout::modify_flow_table_in::MODIFY_FIELD_SELECT,
        layout::modify_field::LAG_NEXT_TABLE_ID.into(),
    );
    assert_eq!(status(&mut fw, &inp, 16), Status::BadParam);

    // The software table is the miss target: busy.
    assert_eq!(
        status(&mut fw, &destroy_table_in(fdb, sw), 16),
        Status::ResourceBusy
    );
    // Wrong type, unknown id, root table.
    assert_eq!(
        status(&mut fw, &destroy_table_in(TableType::NicRx, ft), 16),
        Status::BadParam
    );
    assert_eq!(
        status(&mut fw, &destroy_table_in(fdb, 0xabcd), 16),
        Status::BadResource
    );
    let root = fw.root_table(fdb).unwrap();
    assert_eq!(
        status(&mut fw, &destroy_table_in(fdb, root), 16),
        Status::BadParam
    );
    ok(&mut fw, &destroy_table_in(fdb, ft), 16);
    ok(&mut fw, &destroy_table_in(fdb, sw), 16);
    assert_eq!(query_table(&mut fw, fdb, sw), Err(Status::BadResource));
    assert_eq!(fw.terminal(icm), None);

    // Creation errors.
    let mut bad = create_table_in(TableType::NicRx, 63, Some((STEERING + 8, 0)));
    assert_eq!(status(&mut fw, &bad, 16), Status::BadParam);
    set(&mut bad, create_flow_table_in::TABLE_TYPE, 2);
    assert_eq!(status(&mut fw, &bad, 16), Status::BadParam);
    let bad = create_table_in(TableType::NicRx, 200, None);
    assert_eq!(status(&mut fw, &bad, 16), Status::BadParam);
    let mut other = create_table_in(TableType::NicRx, 1, None);
    set(&mut other, create_flow_table_in::OTHER_VPORT, 1);
    assert_eq!(status(&mut fw, &other, 16), Status::BadParam);
    assert_eq!(
        status(
            &mut fw,
            &create_table_in(TableType::NicRx, 1, None)[..63],
            16
        ),
        Status::BadInputLen
    );
}

fn create_group_in(
    ty: TableType,
    table: u32,
    start: u32,
    end: u32,
    mask: Option<&MatchParam>,
) -> Vec<u8> {
    use layout::create_flow_group_in as k;
    // rdma-core sends the whole 1024-byte layout.
    let mut inp = input(opcode::CREATE_FLOW_GROUP, create_flow_group_in::SIZE_BITS);
    set(&mut inp, create_flow_group_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, create_flow_group_in::TABLE_ID, table.into());
    set(&mut inp, k::START_FLOW_INDEX, start.into());
    set(&mut inp, k::END_FLOW_INDEX, end.into());
    if let Some(mask) = mask {
        set(
            &mut inp,
            k::MATCH_CRITERIA_ENABLE,
            mask.used_criteria().bits().into(),
        );
        let at = k::MATCH_CRITERIA_OFF / 8;
        for (i, s) in Section::ALL.into_iter().enumerate() {
            inp[at + 64 * i..at + 64 * (i + 1)].copy_from_slice(mask.section(s));
        }
    }
    inp
}

fn create_group(
    fw: &mut Firmware,
    ty: TableType,
    table: u32,
    start: u32,
    end: u32,
    mask: Option<&MatchParam>,
) -> u32 {
    let out = ok(fw, &create_group_in(ty, table, start, end, mask), 16);
    get(&out, create_flow_group_out::GROUP_ID) as u32
}

/// A `SET_FLOW_TABLE_ENTRY` input with plain (8-byte) destination entries.
#[allow(clippy::too_many_arguments)]
fn set_fte_in(
    ty: TableType,
    table: u32,
    group: u32,
    index: u32,
    value: Option<&MatchParam>,
    bits: u16,
    dests: &[(u8, u32)],
    counters: &[u32],
) -> Vec<u8> {
    let n = dests.len() + counters.len();
    let mut inp = input(
        opcode::SET_FLOW_TABLE_ENTRY,
        set_fte_in::SIZE_BITS + n * dest_format::SIZE_BITS,
    );
    set(&mut inp, set_fte_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, set_fte_in::TABLE_ID, table.into());
    set(&mut inp, set_fte_in::FLOW_INDEX, index.into());
    let ctx = set_fte_in::FLOW_CONTEXT_OFF;
    set(&mut inp, flow_context::GROUP_ID.at(ctx), group.into());
    set(&mut inp, flow_context::ACTION.at(ctx), bits.into());
    set(
        &mut inp,
        flow_context::DESTINATION_LIST_SIZE.at(ctx),
        dests.len() as u64,
    );
    set(
        &mut inp,
        flow_context::FLOW_COUNTER_LIST_SIZE.at(ctx),
        counters.len() as u64,
    );
    if let Some(value) = value {
        let at = (ctx + layout::flow_context::MATCH_VALUE_OFF) / 8;
        for (i, s) in Section::ALL.into_iter().enumerate() {
            inp[at + 64 * i..at + 64 * (i + 1)].copy_from_slice(value.section(s));
        }
    }
    let list = ctx + flow_context::DESTINATION_OFF;
    for (i, &(ty, id)) in dests.iter().enumerate() {
        let at = list + i * dest_format::SIZE_BITS;
        set(&mut inp, dest_format::DESTINATION_TYPE.at(at), ty.into());
        set(&mut inp, dest_format::DESTINATION_ID.at(at), id.into());
    }
    for (j, &id) in counters.iter().enumerate() {
        let at = list + (dests.len() + j) * dest_format::SIZE_BITS;
        set(
            &mut inp,
            flow_counter_list::FLOW_COUNTER_ID.at(at),
            id.into(),
        );
    }
    inp
}

fn alloc_counter(fw: &mut Firmware, bulk: u8) -> u32 {
    let mut inp = input(opcode::ALLOC_FLOW_COUNTER, 128);
    set(
        &mut inp,
        layout::alloc_flow_counter_in::FLOW_COUNTER_BULK,
        bulk.into(),
    );
    let out = ok(fw, &inp, 16);
    get(&out, alloc_flow_counter_out::FLOW_COUNTER_ID) as u32
}

fn query_counter(
    fw: &mut Firmware,
    id: u32,
    n: u16,
    clear: bool,
) -> Result<Vec<(u64, u64)>, Status> {
    use layout::{query_flow_counter_in as q, query_flow_counter_out, traffic_counter as t};
    let mut inp = input(opcode::QUERY_FLOW_COUNTER, q::SIZE_BITS);
    set(&mut inp, q::FLOW_COUNTER_ID, id.into());
    set(&mut inp, q::NUM_OF_COUNTERS, n.into());
    set(&mut inp, q::CLEAR, clear.into());
    let stats = query_flow_counter_out::FLOW_STATISTICS_OFF;
    let (c, out) = run(fw, &inp, (stats + usize::from(n.max(1)) * t::SIZE_BITS) / 8);
    if c.status != Status::Ok {
        return Err(c.status);
    }
    Ok((0..usize::from(n.max(1)))
        .map(|i| {
            let at = stats + i * t::SIZE_BITS;
            (get(&out, t::PACKETS.at(at)), get(&out, t::OCTETS.at(at)))
        })
        .collect())
}

#[test]
fn rdma_core_always_hit_table_reaches_software_steering() {
    // dr_devx_create_always_hit_ft as dest_array uses it: an FDB table at level
    // max_ft_level - 1, an empty group, one entry forwarding to a software table, a vport
    // and counting.
    let mut fw = fw();
    let fdb = TableType::Fdb;
    let sw = create_table(&mut fw, fdb, 63, Some((STEERING, STEERING + 0x40)));
    let ft = create_table(&mut fw, fdb, 63, None);
    let g = create_group(&mut fw, fdb, ft, 0, 0, None);
    let ctr = alloc_counter(&mut fw, 0);
    let inp = set_fte_in(
        fdb,
        ft,
        g,
        0,
        None,
        action::FWD_DEST | action::COUNT,
        &[
            (dest_type::FLOW_TABLE, sw),
            (dest_type::VPORT, 3),
            (dest_type::VPORT, 0xffff),
        ],
        &[ctr],
    );
    ok(&mut fw, &inp, 16);
    let ctx = query_table(&mut fw, fdb, ft).unwrap();
    let rx = get(&ctx, flow_table_context::SW_OWNER_ICM_ROOT_0);
    assert_eq!(fw.terminal(rx), Some(Terminal::FlowTable(ft)));

    let walk = fw.walk(ft, &MatchParam::default()).unwrap();
    let exits: Vec<FwExit> = walk.paths.iter().map(|p| p.exit).collect();
    assert_eq!(
        exits,
        vec![
            FwExit::SwTable {
                table_id: sw,
                root_rx: Some(STEERING),
                root_tx: Some(STEERING + 0x40)
            },
            FwExit::Terminal(Terminal::Vport(3)),
            FwExit::Terminal(Terminal::Uplink),
        ]
    );
    assert_eq!(walk.counters, vec![ctr]);
    fw.count(ctr, 1, 100).unwrap();
    assert_eq!(query_counter(&mut fw, ctr, 0, false), Ok(vec![(1, 100)]));
}

#[test]
fn kernel_path_rules_through_commands() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let root = fw.root_table(rx).unwrap();
    let mut tir_in = input(opcode::CREATE_TIR, layout::create_tir_in::SIZE_BITS);
    set(&mut tir_in, mbox_in::UID, 0);
    let out = ok(&mut fw, &tir_in, 16);
    let tirn = get(&out, create_tir_out::TIRN) as u32;
    let tir_icm = get(&out, create_tir_out::ICM_ADDRESS_39_32) << 32
        | get(&out, create_tir_out::ICM_ADDRESS_31_0);
    assert_eq!(fw.terminal(tir_icm), Some(Terminal::Tir(tirn)));

    let mut mask = MatchParam::default();
    mask.set(Section::Outer, dr_match_spec::TCP_DPORT, 0xffff);
    let g = create_group(&mut fw, rx, root, 0, 15, Some(&mask));
    let mut value = MatchParam::default();
    value.set(Section::Outer, dr_match_spec::TCP_DPORT, 443);
    let mut inp = set_fte_in(
        rx,
        root,
        g,
        5,
        Some(&value),
        action::FWD_DEST,
        &[(dest_type::TIR, tirn)],
        &[],
    );
    set(
        &mut inp,
        flow_context::FLOW_TAG.at(set_fte_in::FLOW_CONTEXT_OFF),
        0xbeef,
    );
    ok(&mut fw, &inp, 16);
    // The same index again: refused; as a modify: accepted.
    assert_eq!(status(&mut fw, &inp, 16), Status::BadParam);
    set(
        &mut inp,
        set_fte_in::OP_MOD,
        layout::set_fte_op::MODIFY.into(),
    );
    ok(&mut fw, &inp, 16);
    set(&mut inp, set_fte_in::OP_MOD, 2);
    assert_eq!(status(&mut fw, &inp, 16), Status::BadParam);

    let mut packet = MatchParam::default();
    packet.set(Section::Outer, dr_match_spec::TCP_DPORT, 443);
    packet.set(Section::Outer, dr_match_spec::TCP_SPORT, 5555);
    let walk = fw.walk(root, &packet).unwrap();
    assert_eq!(walk.paths[0].exit, FwExit::Terminal(Terminal::Tir(tirn)));
    assert_eq!(walk.paths[0].flow_tag, Some(0xbeef));
    packet.set(Section::Outer, dr_match_spec::TCP_DPORT, 80);
    assert_eq!(
        fw.walk(root, &packet).unwrap().paths[0].exit,
        FwExit::Terminal(Terminal::Drop)
    );

    // The TIR is busy while the entry forwards to it; the group while it has entries.
    let mut destroy_tir = input(opcode::DESTROY_TIR, destroy_tir_in::SIZE_BITS);
    set(&mut destroy_tir, destroy_tir_in::TIRN, tirn.into());
    assert_eq!(status(&mut fw, &destroy_tir, 16), Status::ResourceBusy);
    let mut destroy_group = input(opcode::DESTROY_FLOW_GROUP, destroy_flow_group_in::SIZE_BITS);
    set(
        &mut destroy_group,
        destroy_flow_group_in::TABLE_TYPE,
        rx.prm().into(),
    );
    set(
        &mut destroy_group,
        destroy_flow_group_in::TABLE_ID,
        root.into(),
    );
    set(
        &mut destroy_group,
        destroy_flow_group_in::GROUP_ID,
        g.into(),
    );
    assert_eq!(status(&mut fw, &destroy_group, 16), Status::ResourceBusy);

    let mut delete = input(
        opcode::DELETE_FLOW_TABLE_ENTRY,
        ste_builder::prm::delete_fte_in::SIZE_BITS,
    );
    set(
        &mut delete,
        ste_builder::prm::delete_fte_in::TABLE_TYPE,
        rx.prm().into(),
    );
    set(
        &mut delete,
        ste_builder::prm::delete_fte_in::TABLE_ID,
        root.into(),
    );
    set(&mut delete, ste_builder::prm::delete_fte_in::FLOW_INDEX, 5);
    ok(&mut fw, &delete, 16);
    assert_eq!(status(&mut fw, &delete, 16), Status::BadResource);
    ok(&mut fw, &destroy_tir, 16);
    ok(&mut fw, &destroy_group, 16);
    assert_eq!(status(&mut fw, &destroy_group, 16), Status::BadResource);
}

#[test]
fn set_fte_errors() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let t = create_table(&mut fw, rx, 1, None);
    let g = create_group(&mut fw, rx, t, 0, 0, None);
    let sw = create_table(&mut fw, rx, 63, Some((STEERING, 0)));
    let fwd = [(dest_type::FLOW_TABLE, sw)];
    let cases: Vec<(Vec<u8>, Status)> = vec![
        // Unknown action bits (modify header).
        (
            set_fte_in(rx, t, g, 0, None, action::DROP | 0x40, &[], &[]),
            Status::BadParam,
        ),
        // No fate, two fates.
        (set_fte_in(rx, t, g, 0, None, 0, &[], &[]), Status::BadParam),
        (
            set_fte_in(
                rx,
                t,
                g,
                0,
                None,
                action::DROP | action::FWD_DEST,
                &fwd,
                &[],
            ),
            Status::BadParam,
        ),
        // Forward without destinations, destinations without forward.
        (
            set_fte_in(rx, t, g, 0, None, action::FWD_DEST, &[], &[]),
            Status::BadParam,
        ),
        (
            set_fte_in(rx, t, g, 0, None, action::DROP, &fwd, &[]),
            Status::BadParam,
        ),
        // Count without counters; unknown counter.
        (
            set_fte_in(rx, t, g, 0, None, action::DROP | action::COUNT, &[], &[]),
            Status::BadParam,
        ),
        (
            set_fte_in(rx, t, g, 0, None, action::DROP | action::COUNT, &[], &[77]),
            Status::BadResource,
        ),
        // A vport in a NIC table; an unknown destination type; an unknown table.
        (
            set_fte_in(
                rx,
                t,
                g,
                0,
                None,
                action::FWD_DEST,
                &[(dest_type::VPORT, 1)],
                &[],
            ),
            Status::BadParam,
        ),
        (
            set_fte_in(rx, t, g, 0, None, action::FWD_DEST, &[(0x6, 1)], &[]),
            Status::BadParam,
        ),
        (
            set_fte_in(
                rx,
                t,
                g,
                0,
                None,
                action::FWD_DEST,
                &[(dest_type::FLOW_TABLE, 999)],
                &[],
            ),
            Status::BadResource,
        ),
        // Outside the group; unknown group; unknown table.
        (
            set_fte_in(rx, t, g, 1, None, action::DROP, &[], &[]),
            Status::BadParam,
        ),
        (
            set_fte_in(rx, t, g + 100, 0, None, action::DROP, &[], &[]),
            Status::BadResource,
        ),
        (
            set_fte_in(rx, 999, g, 0, None, action::DROP, &[], &[]),
            Status::BadResource,
        ),
    ];
    for (i, (inp, want)) in cases.iter().enumerate() {
        assert_eq!(status(&mut fw, inp, 16), *want, "case {i}");
    }
    // The destination list must be in the mailbox.
    let inp = set_fte_in(rx, t, g, 0, None, action::FWD_DEST, &fwd, &[]);
    assert_eq!(
        status(&mut fw, &inp[..inp.len() - 1], 16),
        Status::BadInputLen
    );
    // Extended entries are 16 bytes each.
    let mut ext = input(
        opcode::SET_FLOW_TABLE_ENTRY,
        set_fte_in::SIZE_BITS + ste_builder::prm::extended_dest_format::SIZE_BITS,
    );
    let ctx = set_fte_in::FLOW_CONTEXT_OFF;
    set(&mut ext, set_fte_in::TABLE_TYPE, rx.prm().into());
    set(&mut ext, set_fte_in::TABLE_ID, t.into());
    set(&mut ext, flow_context::GROUP_ID.at(ctx), g.into());
    set(
        &mut ext,
        flow_context::ACTION.at(ctx),
        action::FWD_DEST.into(),
    );
    set(&mut ext, flow_context::EXTENDED_DESTINATION.at(ctx), 1);
    set(&mut ext, flow_context::DESTINATION_LIST_SIZE.at(ctx), 1);
    let at = ctx + flow_context::DESTINATION_OFF;
    set(
        &mut ext,
        dest_format::DESTINATION_TYPE.at(at),
        dest_type::FLOW_TABLE.into(),
    );
    set(&mut ext, dest_format::DESTINATION_ID.at(at), sw.into());
    ok(&mut fw, &ext, 16);
    assert_eq!(
        fw.entry(t, 0).unwrap().action.fate,
        crate::fw::Fate::Forward(vec![crate::fw::Destination::FlowTable(sw)])
    );
    // Per-destination reformat is not modelled.
    set(&mut ext, dest_format::PACKET_REFORMAT.at(at), 1);
    set(&mut ext, set_fte_in::OP_MOD, 1);
    assert_eq!(status(&mut fw, &ext, 16), Status::BadParam);
}

#[test]
fn group_errors() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let t = create_table(&mut fw, rx, 1, None);
    let g = create_group_in(rx, t, 0, 3, None);
    assert_eq!(
        status(&mut fw, &g, 16),
        Status::BadParam,
        "range beyond a 1-entry table"
    );
    let mut g = create_group_in(rx, t, 0, 0, None);
    set(&mut g, layout::create_flow_group_in::GROUP_TYPE, 1);
    assert_eq!(status(&mut fw, &g, 16), Status::BadParam);
    let g = create_group_in(rx, t, 0, 0, None);
    assert_eq!(
        status(
            &mut fw,
            &g[..layout::create_flow_group_in::MIN_BITS / 8 - 1],
            16
        ),
        Status::BadInputLen
    );
    ok(
        &mut fw,
        &g[..layout::create_flow_group_in::MIN_BITS / 8],
        16,
    );
    assert_eq!(status(&mut fw, &g, 16), Status::BadParam, "overlap");
    let sw = create_table(&mut fw, rx, 63, Some((STEERING, 0)));
    assert_eq!(
        status(&mut fw, &create_group_in(rx, sw, 0, 0, None), 16),
        Status::BadParam
    );
}

#[test]
fn counter_commands() {
    let mut fw = fw();
    let one = alloc_counter(&mut fw, 0);
    let bulk = alloc_counter(&mut fw, 0x2);
    assert_eq!(bulk % 256, 0);
    assert!(fw.counter(bulk + 255).is_some());
    assert!(fw.counter(bulk + 256).is_none());
    fw.count(bulk + 3, 2, 300).unwrap();
    let q = query_counter(&mut fw, bulk, 4, true).unwrap();
    assert_eq!(q, vec![(0, 0), (0, 0), (0, 0), (2, 300)]);
    assert_eq!(
        query_counter(&mut fw, bulk + 3, 1, false).unwrap(),
        vec![(0, 0)]
    );
    assert_eq!(
        query_counter(&mut fw, one + 1, 1, false),
        Err(Status::BadResource)
    );
    // Output too short for the counters asked for.
    let mut inp = input(
        opcode::QUERY_FLOW_COUNTER,
        layout::query_flow_counter_in::SIZE_BITS,
    );
    set(
        &mut inp,
        layout::query_flow_counter_in::FLOW_COUNTER_ID,
        bulk.into(),
    );
    set(&mut inp, layout::query_flow_counter_in::NUM_OF_COUNTERS, 2);
    assert_eq!(status(&mut fw, &inp, 32), Status::BadOutputLen);
    // A bulk bitmask with two bits is refused.
    let mut inp = input(opcode::ALLOC_FLOW_COUNTER, 128);
    set(
        &mut inp,
        layout::alloc_flow_counter_in::FLOW_COUNTER_BULK,
        3,
    );
    assert_eq!(status(&mut fw, &inp, 16), Status::BadParam);
    set(
        &mut inp,
        layout::alloc_flow_counter_in::FLOW_COUNTER_BULK,
        0,
    );
    set(
        &mut inp,
        layout::alloc_flow_counter_in::FLOW_COUNTER_BULK_LOG_SIZE,
        3,
    );
    let out = ok(&mut fw, &inp, 16);
    let eight = get(&out, alloc_flow_counter_out::FLOW_COUNTER_ID) as u32;
    assert!(fw.counter(eight + 7).is_some() && fw.counter(eight + 8).is_none());

    let mut dealloc = input(
        opcode::DEALLOC_FLOW_COUNTER,
        dealloc_flow_counter_in::SIZE_BITS,
    );
    set(
        &mut dealloc,
        dealloc_flow_counter_in::FLOW_COUNTER_ID,
        bulk.into(),
    );
    ok(&mut fw, &dealloc, 16);
    assert_eq!(status(&mut fw, &dealloc, 16), Status::BadResource);
    assert!(fw.counter(bulk).is_none());
}

#[test]
fn sync_steering_and_op_mod() {
    let mut fw = fw();
    let mut inp = input(opcode::SYNC_STEERING, sync_steering_in::SIZE_BITS);
    ok(&mut fw, &inp, 16);
    ok(&mut fw, &inp, 16);
    assert_eq!(fw.sync_count(), 2);
    set(&mut inp, mbox_in::OP_MOD, 1);
    let (c, _) = run(&mut fw, &inp, 16);
    assert_eq!(
        (c.status, c.syndrome),
        (Status::BadParam, status::syndrome::BAD_OP_MOD)
    );
    assert_eq!(fw.sync_count(), 2);
}

#[test]
fn uids_separate_users() {
    let mut fw = fw();
    let rx = TableType::NicRx;
    let mut inp = create_table_in(rx, 1, None);
    set(&mut inp, mbox_in::UID, 5);
    let out = ok(&mut fw, &inp, 16);
    let t = get(&out, create_flow_table_out::TABLE_ID) as u32;
    let mut destroy = destroy_table_in(rx, t);
    set(&mut destroy, mbox_in::UID, 6);
    assert_eq!(status(&mut fw, &destroy, 16), Status::BadParam);
    set(&mut destroy, mbox_in::UID, 5);
    ok(&mut fw, &destroy, 16);
}

#[test]
fn injected_faults() {
    let mut fw = fw();
    let mut ci = CommandInterface::new();
    let sync = input(opcode::SYNC_STEERING, sync_steering_in::SIZE_BITS);
    let table = create_table_in(TableType::NicRx, 1, None);
    let mut out = vec![0u8; 16];
    ci.inject(CommandFault::at_index(1, Status::InternalError, 0x1234));
    ci.inject(CommandFault::on_opcode_nth(
        opcode::CREATE_FLOW_TABLE,
        1,
        Status::NoResources,
        0x77,
    ));

    let c = ci.execute(&mut fw, &sync, &mut out).unwrap();
    assert_eq!((c.status, c.injected), (Status::Ok, false));
    // Command 1 fails and is not executed.
    let c = ci.execute(&mut fw, &sync, &mut out).unwrap();
    assert_eq!(
        (c.status, c.syndrome, c.injected),
        (Status::InternalError, 0x1234, true)
    );
    assert_eq!(get(&out, mbox_out::SYNDROME), 0x1234);
    assert_eq!(fw.sync_count(), 1);
    // The fault is used up.
    assert_eq!(
        ci.execute(&mut fw, &sync, &mut out).unwrap().status,
        Status::Ok
    );

    // The second CREATE_FLOW_TABLE fails, the first and third do not.
    let before = fw.tables().count();
    let statuses: Vec<Status> = (0..3)
        .map(|_| ci.execute(&mut fw, &table, &mut out).unwrap().status)
        .collect();
    assert_eq!(statuses, vec![Status::Ok, Status::NoResources, Status::Ok]);
    assert_eq!(fw.tables().count(), before + 2);

    // Every SYNC_STEERING fails until the faults are cleared.
    ci.inject(CommandFault::on_opcode(
        opcode::SYNC_STEERING,
        Status::BadSysState,
        9,
    ));
    for _ in 0..3 {
        assert_eq!(
            ci.execute(&mut fw, &sync, &mut out).unwrap().status,
            Status::BadSysState
        );
    }
    ci.clear_faults();
    assert_eq!(
        ci.execute(&mut fw, &sync, &mut out).unwrap().status,
        Status::Ok
    );
    assert_eq!(ci.executed(), 10);
}

#[test]
fn arbitrary_mailboxes_never_panic() {
    let opcodes = [
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
    let mut fw = fw();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let len = (next() % 1200) as usize;
        // Mostly-zero inputs get further into the handlers than uniform noise.
        let mut inp: Vec<u8> = (0..len)
            .map(|_| if next() % 4 == 0 { next() as u8 } else { 0 })
            .collect();
        if len >= 2 {
            let op = opcodes[round % opcodes.len()];
            inp[..2].copy_from_slice(&op.to_be_bytes());
        }
        let out_len = 16 + (next() % 4200) as usize;
        let mut out = vec![0u8; out_len];
        let c = execute(&mut fw, &inp, &mut out).unwrap();
        assert_eq!(get(&out, mbox_out::STATUS), u64::from(c.status.code()));
    }
}

#[test]
fn packet_reformat_contexts() {
    use layout::{
        alloc_packet_reformat_context_in as a_in, alloc_packet_reformat_context_out as a_out,
    };
    let mut fw = fw();
    let header: Vec<u8> = (0..50u8).collect();
    let mut inp = input(
        opcode::ALLOC_PACKET_REFORMAT_CONTEXT,
        a_in::REFORMAT_DATA_OFF + 8 * header.len(),
    );
    set(&mut inp, a_in::REFORMAT_TYPE, 2);
    set(&mut inp, a_in::REFORMAT_DATA_SIZE, header.len() as u64);
    inp[a_in::REFORMAT_DATA_OFF / 8..].copy_from_slice(&header);
    let out = ok(&mut fw, &inp, a_out::SIZE_BITS / 8);
    let id = get(&out, a_out::PACKET_REFORMAT_ID) as u32;
    let r = fw.reformat(id).unwrap();
    assert_eq!((r.reformat_type, &r.data[..]), (2, &header[..]));

    // A size that runs past the mailbox is a short input; zero bytes is a bad size.
    set(&mut inp, a_in::REFORMAT_DATA_SIZE, header.len() as u64 + 1);
    assert_eq!(status(&mut fw, &inp, 16), Status::BadInputLen);
    set(&mut inp, a_in::REFORMAT_DATA_SIZE, 0);
    assert_eq!(status(&mut fw, &inp, 16), Status::BadParam);

    let mut del = input(
        opcode::DEALLOC_PACKET_REFORMAT_CONTEXT,
        layout::dealloc_packet_reformat_context_in::SIZE_BITS,
    );
    set(
        &mut del,
        layout::dealloc_packet_reformat_context_in::PACKET_REFORMAT_ID,
        id.into(),
    );
    ok(&mut fw, &del, 16);
    assert!(fw.reformat(id).is_none());
    assert_eq!(status(&mut fw, &del, 16), Status::BadResource);
}
