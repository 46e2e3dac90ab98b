//! The simulator on its own: program one IPv4 5-tuple rule into a simulated ConnectX-6 Dx
//! the way a software-steering driver does, and trace two packets through it.
//!
//! `cargo run -p sim --example trace`
//!
//! Steps: make the device; allocate steering ICM; build two STEs with `ste-builder` (a
//! root anchor that always hits into a one-entry table, and the rule STE in that table);
//! register a staging buffer and create a steering queue; post an RDMA WRITE of the STEs
//! and an RDMA READ back, ring the doorbell and poll the completions; hook the table
//! behind an entry of the NIC RX root flow table; then send a packet that matches and
//! one that does not, and print each hop.

use sim::fw::{
    Destination, EntryOp, Fate as FwFate, Fte, FteAction, GroupSpec, TableAttr, TableType,
};
use sim::host_mem::HostMemory;
use sim::icm::IcmKind;
use sim::packet::{build_from_match, Metadata, Packet, Side};
use sim::pipeline::{Hop, Outcome};
use sim::profile::DeviceModel;
use sim::queue::{DbRecord, RingConfig};
use sim::{Delivery, Device, Entry, Fate, Stage};
use ste_builder::action::{set_actions_rx, ActionType, ActionTypeSet, ActionsAttr};
use ste_builder::match_param::{MatchCriteria, MatchParam, Section};
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::ste::{self, Connect, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::wqe::{
    cqe_is_sw_owned, init_cq_ring, Cqe, CtrlFlags, DataSeg, Payload, RaddrSeg, RdmaOp, RdmaWqe,
    BB_SIZE, CQE_SIZE,
};
use ste_builder::{BuilderKind, SteBuild, SteFormat};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The flow tag the rule sets.
const FLOW_TAG: u32 = 0x00c0de;
/// Send ring: 2^4 basic blocks; completion ring: 2^4 CQEs.
const LOG_SQ: u8 = 4;
const LOG_CQ: u8 = 4;

fn main() -> Result<()> {
    // 1. The device.
    let dev = Device::of_model(DeviceModel::ConnectX6Dx);
    let profile = dev.profile();
    let format = profile.ste_format().ok_or("profile has no STE format")?;
    let caps = profile.ste_caps();
    let gvmi = profile.vhca_id;
    println!(
        "1. device: {:?}, {format}, gvmi {gvmi}, NIC RX drop address {:#x}",
        profile.model, profile.nic_rx_drop_icm
    );

    // 2. Steering ICM for the two STEs (the device rounds up to its 4 KiB granularity),
    //    and a TIR to deliver hits to.
    let icm = dev.alloc_icm(IcmKind::Steering, 2 * STE_SIZE as u64, 6)?;
    let root = icm.addr;
    let table = icm.addr + STE_SIZE as u64;
    let tir = dev.with_firmware(|fw| fw.create_tir(0))?;
    println!(
        "2. steering ICM: {:#x}..{:#x} (rkey {:#x}); TIR {} at {:#x}",
        icm.addr,
        icm.addr + icm.size,
        icm.rkey,
        tir.tirn,
        tir.icm_addr
    );

    // 3. The STEs, as a driver builds them.
    let value = rule_value();
    let rule = rule_ste(format, &caps, &value, tir.icm_addr, profile.nic_rx_drop_icm)?;
    let mut anchor = [0u8; STE_SIZE];
    let ctrl = format.ctrl();
    ste::set_formatted_ste(
        ctrl,
        &mut anchor,
        gvmi,
        true,
        LU_TYPE_DONT_CARE,
        Connect::Hit {
            lu_type: rule.lu_type,
            byte_mask: rule.byte_mask,
            icm_addr: table,
            num_entries: 1,
        },
    );
    ctrl.prepare_for_postsend(&mut anchor, STE_SIZE);
    println!(
        "3. STEs: root anchor at {root:#x} always hits into a 1-entry table at {table:#x}; \
         rule STE there: {} (lookup type {:#x}), hit -> flow tag {FLOW_TAG:#x} + TIR {}, miss -> drop",
        rule.kind, rule.lu_type, tir.tirn
    );

    // 4. A staging buffer registered for DMA: the STEs to write, then room for the READ.
    let staging = HostMemory::new(4 * STE_SIZE);
    staging.write(0, &anchor)?;
    staging.write(STE_SIZE, &rule.bytes)?;
    let mr = dev.register_memory(&staging)?;
    println!(
        "4. staging buffer of {} bytes: lkey {:#x}, iova {:#x}",
        staging.len(),
        mr.lkey,
        mr.iova
    );

    // 5. The steering queue: send ring, completion ring (initialised by the driver) and
    //    the CQ doorbell record, all in host memory.
    let sq = HostMemory::new(BB_SIZE << LOG_SQ);
    let cq = HostMemory::new(CQE_SIZE << LOG_CQ);
    init_cq_ring(&mut cq.lock_write())?;
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
    println!(
        "5. steering queue: QP {qpn:#x}, {} BBs, {} CQEs",
        1 << LOG_SQ,
        1 << LOG_CQ
    );

    // 6. WRITE both STEs to ICM, READ them back into the second half of the buffer; only
    //    the READ asks for a completion (it also completes the WRITE before it). ICM is
    //    registered zero-based, as rdma-core registers it: the remote address is the
    //    offset into the allocation the rkey names.
    let len = 2 * STE_SIZE as u64;
    let remote = RaddrSeg {
        raddr: root - icm.addr,
        rkey: icm.rkey,
    };
    let write_seg = [DataSeg::new(mr.lkey, mr.iova, len)?];
    let read_seg = [DataSeg::new(mr.lkey, mr.iova + len, len)?];
    let mut producer = 0u16;
    for (op, segs, flags) in [
        (RdmaOp::Write, &write_seg, CtrlFlags::empty()),
        (RdmaOp::Read, &read_seg, CtrlFlags::CQ_UPDATE),
    ] {
        let wqe = RdmaWqe {
            op,
            wqe_index: producer,
            qpn,
            flags,
            remote,
            payload: Payload::Segments(segs),
        };
        let at = usize::from(producer) % (1 << LOG_SQ) * BB_SIZE;
        wqe.encode(&mut sq.lock_write()[at..])?;
        println!("6. posted RDMA {op:?} of {len} bytes, WQE index {producer}");
        producer += wqe.bbs()? as u16;
    }
    let report = dev.doorbell(qpn, producer)?;
    println!(
        "   doorbell at producer {producer}: {} completed, {} failed, {} CQE(s) written",
        report.completed, report.failed, report.cqes_written
    );

    // 7. Poll the completion ring as a driver does: a slot is new when its owner bit
    //    matches the consumer counter's pass over the ring.
    let mut ci = 0u32;
    loop {
        let at = (ci as usize % (1 << LOG_CQ)) * CQE_SIZE;
        let slot = cq.read_vec(at, CQE_SIZE)?;
        if !cqe_is_sw_owned(&slot, ci, LOG_CQ)? {
            break;
        }
        match Cqe::decode(&slot)?.cqe {
            Cqe::Req(c) => println!(
                "7. CQE {ci}: {:?} at WQE index {} done, {} bytes",
                c.opcode, c.wqe_counter, c.byte_cnt
            ),
            other => return Err(format!("unexpected completion {other:?}").into()),
        }
        ci += 1;
    }
    dbrec.write(0, &(ci & 0x00ff_ffff).to_be_bytes())?;
    let back = staging.read_vec(2 * STE_SIZE, 2 * STE_SIZE)?;
    let written = staging.read_vec(0, 2 * STE_SIZE)?;
    if back != written {
        return Err("the READ did not return what the WRITE stored".into());
    }
    println!(
        "   the READ returned the {} bytes the WRITE stored",
        back.len()
    );

    // 8. Hook the table into the NIC RX root flow table: a SW-owned table whose RX root is
    //    the anchor, and a catch-all entry that forwards to it.
    let sw_table = dev.with_firmware(|fw| -> Result<u32> {
        let rx_root = fw.root_table(TableType::NicRx).ok_or("no NIC RX root")?;
        let sw = fw.create_table(0, &TableAttr::software(TableType::NicRx, 1, root, 0))?;
        let group = GroupSpec {
            start: 0,
            end: 0,
            criteria: 0,
            mask: MatchParam::default(),
        };
        let group_id = fw.create_group(0, TableType::NicRx, rx_root, &group)?;
        let fte = Fte {
            flow_index: 0,
            group_id,
            value: MatchParam::default(),
            action: FteAction {
                fate: FwFate::Forward(vec![Destination::FlowTable(sw)]),
                counters: Vec::new(),
                flow_tag: 0,
            },
        };
        fw.set_entry(0, TableType::NicRx, rx_root, EntryOp::Create, fte)?;
        Ok(sw)
    })?;
    println!("8. NIC RX root table entry 0 forwards everything to SW table {sw_table:#x}");

    // 9. Two packets into the NIC RX root: one built from the rule's value, one that
    //    differs in the destination port.
    let hit = build_from_match(&value, Metadata::new(Side::Rx))?;
    let mut other = value.clone();
    other.set(Section::Outer, spec::TCP_DPORT, 8080);
    let miss = build_from_match(&other, Metadata::new(Side::Rx))?;
    for (name, packet) in [("matching packet", hit), ("other packet", miss)] {
        println!("\n9. {name}: {}", describe(&packet));
        for d in dev.process(packet, Entry::Root(TableType::NicRx))? {
            print_delivery(&d);
        }
    }
    Ok(())
}

/// The rule: TCP 10.0.0.1:40000 -> 192.168.1.10:443.
fn rule_value() -> MatchParam {
    let mut v = MatchParam::default();
    for (field, x) in [
        (spec::IP_VERSION, 4),
        (spec::IP_PROTOCOL, 6),
        (spec::SRC_IP_31_0, 0x0a00_0001),
        (spec::DST_IP_31_0, 0xc0a8_010a),
        (spec::TCP_SPORT, 40000),
        (spec::TCP_DPORT, 443),
    ] {
        v.set(Section::Outer, field, x);
    }
    v
}

/// A rule STE as posted, and what the anchor pointing at its table needs to know.
struct RuleSte {
    kind: BuilderKind,
    lu_type: u16,
    byte_mask: u16,
    bytes: [u8; STE_SIZE],
}

/// Builds the 5-tuple STE for `value`: the lookup from the matcher's mask, the tag from
/// the value, a flow tag and a hit into the TIR, a miss to the drop address.
fn rule_ste(
    format: SteFormat,
    caps: &ste_builder::Caps,
    value: &MatchParam,
    tir_addr: u64,
    drop_addr: u64,
) -> Result<RuleSte> {
    // The matcher's mask: the fields of the rule, all bits (the IP version is implied by
    // the 5-tuple lookup, so only the others are in it).
    let mut mask = MatchParam::default();
    for field in [
        spec::IP_PROTOCOL,
        spec::SRC_IP_31_0,
        spec::DST_IP_31_0,
        spec::TCP_SPORT,
        spec::TCP_DPORT,
    ] {
        mask.set(Section::Outer, field, field.max());
    }
    let mut mask = MatchParam::copy_from(MatchCriteria::OUTER, &mask);
    let sb = SteBuild::new(
        format,
        BuilderKind::EthL3Ipv4_5Tuple,
        false,
        true,
        &mut mask,
        caps,
    )?;
    if let Some((field, v)) = mask.nonzero_fields().next() {
        return Err(format!("mask field {field} = {v:#x} is not covered by the lookup").into());
    }
    let ctrl = format.ctrl();
    let mut ste = [0u8; STE_SIZE];
    ctrl.init(&mut ste, sb.lu_type, true, caps.gvmi);
    ste::set_bit_mask(&mut ste, &sb.bit_mask);
    let mut value = MatchParam::copy_from(MatchCriteria::OUTER, value);
    sb.tag_checked(
        &mut value,
        caps,
        &mut ste::tag_mut(&mut ste)[..sb.tag_len()],
    )?;
    ctrl.set_miss_addr(&mut ste, drop_addr);
    let mut actions = ActionTypeSet::new();
    actions.insert(ActionType::Tag);
    actions.insert(ActionType::Qp);
    let attr = ActionsAttr {
        final_icm_addr: tir_addr,
        flow_tag: FLOW_TAG,
        gvmi: caps.gvmi,
        hit_gvmi: caps.gvmi,
        ..ActionsAttr::default()
    };
    let added = set_actions_rx(format, &actions, &mut ste, &attr)?;
    if added.added_stes != 0 {
        return Err("the actions need more STEs than this example places".into());
    }
    ctrl.prepare_for_postsend(&mut ste, STE_SIZE);
    Ok(RuleSte {
        kind: sb.kind,
        lu_type: sb.lu_type,
        byte_mask: sb.byte_mask,
        bytes: ste,
    })
}

/// One line about a packet: its 5-tuple as the device parses it.
fn describe(p: &Packet) -> String {
    let f = p.fields();
    let get = |field| f.get(Section::Outer, field);
    let ip = |a: u64| std::net::Ipv4Addr::from(a as u32);
    format!(
        "{} bytes, proto {} {}:{} -> {}:{}",
        p.len(),
        get(spec::IP_PROTOCOL),
        ip(get(spec::SRC_IP_31_0)),
        get(spec::TCP_SPORT),
        ip(get(spec::DST_IP_31_0)),
        get(spec::TCP_DPORT)
    )
}

fn print_delivery(d: &Delivery) {
    for stage in &d.stages {
        match stage {
            Stage::Firmware(hops) => {
                for h in hops {
                    match h.flow_index {
                        Some(i) => {
                            println!("   firmware table {:#x}: entry {i} matched", h.table_id)
                        }
                        None => println!("   firmware table {:#x}: no entry matched", h.table_id),
                    }
                }
            }
            Stage::Software { root, verdict } => {
                println!("   ICM walk from root {root:#x}:");
                for hop in &verdict.trace {
                    print_hop(hop);
                }
            }
        }
    }
    match &d.fate {
        Fate::Delivered(t) => match d.packet.meta.flow_tag {
            Some(tag) => println!("   => delivered to {t:?} with flow tag {tag:#x}"),
            None => println!("   => delivered to {t:?}, no flow tag"),
        },
        Fate::Fault(why) => println!("   => fault: {why}"),
    }
}

fn print_hop(h: &Hop) {
    let kind = if h.masked { "rule" } else { "anchor" };
    let (what, next) = match h.outcome {
        Outcome::Hit { next } => ("hit ", next),
        Outcome::Miss { next } => ("miss", next),
    };
    println!(
        "     STE {:#x} ({kind}, lookup type {:#06x}, table of {}): {what} -> {next:#x}{}",
        h.addr,
        h.lu_type,
        h.table.num_entries,
        if h.actions.is_empty() {
            String::new()
        } else {
            format!(", actions {:x?}", h.actions)
        }
    );
}
