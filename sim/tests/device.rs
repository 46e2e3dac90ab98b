//! End-to-end tests of the device seam. There is no mlx5dr driver yet, so the tests play
//! the driver with ste-builder and the device's public API only: PRM commands as mailbox
//! bytes, SW-ICM allocated from the device, STEs posted as RDMA WRITEs on a steering
//! queue, completions polled from the CQ, and real packets sent in at the kernel's NIC RX
//! root table.

#[path = "device/cmds.rs"]
mod cmds;
// Shared with the recordings test, which uses other parts of it.
#[allow(dead_code)]
#[path = "device/driver.rs"]
mod driver;
#[path = "device/rules.rs"]
mod rules;

use std::sync::{Arc, Mutex};

use cmds::{
    alloc_counter, create_sw_table, create_tir, forward_all, query_cap, query_counter, query_table,
};
use driver::{DriverError, RingSizes, SendRing};
use rules::{RulePlace, Table, Write};
use sim::cmd::layout::opcode;
use sim::cmd::{CommandFault, FaultTrigger, Status};
use sim::endpoint::Terminal;
use sim::fw::{FwHop, TableType};
use sim::icm::{IcmAlloc, IcmError, IcmKind};
use sim::packet::checksum::{checksum, l4_checksum, PseudoHeader};
use sim::packet::{build_from_match, Metadata, Packet, Side};
use sim::pipeline::Outcome;
use sim::profile::{CapType, DeviceModel, Profile};
use sim::queue::{ErrorCause, QueueState, WqeEvent, WqeOutcome};
use sim::{Delivery, Device, Entry, Fate, Stage};
use ste_builder::action::{ActionCaps, ActionType, ActionTypeSet, ActionsAttr, Vlans};
use ste_builder::modify_header::{self, sw_field, ModifyAction, ModifyCaps};
use ste_builder::prm::{
    cmd_hca_cap, device_mem_cap, dr_match_spec as spec, flow_table_context,
    flow_table_nic_cap as nic, flow_table_prop_layout as prop,
};
use ste_builder::wqe::Syndrome;
use ste_builder::{BuilderKind, Caps, MatchParam, Section, SteBuild, SteFormat};

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;

// --- commands ----------------------------------------------------------------------

#[test]
fn capabilities_round_trip_through_query_hca_cap() {
    for model in MODELS {
        let dev = Device::of_model(model);
        let p = dev.profile();
        let general = query_cap(&dev, CapType::General).unwrap();
        let get = |page: &[u8], f| ste_builder::bits::get(page, f);
        assert_eq!(
            get(&general, cmd_hca_cap::STEERING_FORMAT_VERSION),
            u64::from(model.steering_format_version())
        );
        assert_eq!(get(&general, cmd_hca_cap::VHCA_ID), u64::from(p.vhca_id));
        assert_eq!(get(&general, cmd_hca_cap::ESWITCH_MANAGER), 1);

        let nic = query_cap(&dev, CapType::NicFlowTable).unwrap();
        assert_eq!(
            get(&nic, nic::SW_STEERING_NIC_RX_ACTION_DROP_ICM_ADDRESS),
            p.nic_rx_drop_icm
        );
        assert_eq!(
            get(&nic, nic::SW_STEERING_NIC_TX_ACTION_ALLOW_ICM_ADDRESS),
            p.nic_tx_allow_icm
        );
        let rx = nic::FLOW_TABLE_PROPERTIES_NIC_RECEIVE_OFF;
        // ConnectX-5 owns tables with sw_owner, the later ones with sw_owner_v2.
        let owner = if model == DeviceModel::ConnectX5 {
            prop::SW_OWNER
        } else {
            prop::SW_OWNER_V2
        };
        assert_eq!(get(&nic, owner.at(rx)), 1, "{model:?}");
        assert_eq!(
            get(&nic, prop::MAX_FT_LEVEL.at(rx)),
            u64::from(p.nic_rx.max_ft_level)
        );

        let dm = query_cap(&dev, CapType::DeviceMemory).unwrap();
        assert_eq!(
            get(&dm, device_mem_cap::STEERING_SW_ICM_START_ADDRESS),
            p.steering_sw_icm_start
        );
        assert_eq!(
            get(&dm, device_mem_cap::LOG_STEERING_SW_ICM_SIZE),
            u64::from(p.log_steering_sw_icm_size)
        );
        assert_eq!(
            get(&dm, device_mem_cap::HEADER_MODIFY_SW_ICM_START_ADDRESS),
            p.header_modify_sw_icm_start
        );
    }
}

#[test]
fn sw_owned_table_takes_the_root_the_driver_allocated() {
    let dev = Device::of_model(DeviceModel::ConnectX6Dx);
    let root = dev.alloc_icm(IcmKind::Steering, 64, 6).unwrap();
    let id = create_sw_table(&dev, TableType::NicRx, 1, root.addr, 0).unwrap();
    let ctx = query_table(&dev, TableType::NicRx, id).unwrap();
    let get = |f| ste_builder::bits::get(&ctx, f);
    assert_eq!(get(flow_table_context::SW_OWNER), 1);
    assert_eq!(get(flow_table_context::SW_OWNER_ICM_ROOT_0), root.addr);
    assert_eq!(get(flow_table_context::LEVEL), 1);

    // A root outside steering ICM, or not line aligned, is refused.
    let err = create_sw_table(&dev, TableType::NicRx, 1, 0x1234_0000, 0).unwrap_err();
    assert_eq!(err.0, Status::BadParam);
    let err = create_sw_table(&dev, TableType::NicRx, 1, root.addr + 8, 0).unwrap_err();
    assert_eq!(err.0, Status::BadParam);
}

#[test]
fn injected_command_fault_fails_one_command_without_executing_it() {
    let dev = Device::of_model(DeviceModel::ConnectX6Dx);
    let root = dev.alloc_icm(IcmKind::Steering, 64, 6).unwrap();
    let tables = || dev.with_firmware(|fw| fw.tables().count());
    let before = tables();
    dev.inject_command_fault(CommandFault {
        trigger: FaultTrigger::Opcode(opcode::CREATE_FLOW_TABLE),
        status: Status::NoResources,
        syndrome: 0x00de_ad01,
        times: 1,
    });
    // Other commands pass.
    query_cap(&dev, CapType::General).unwrap();
    let mut inp = cmds::input(
        opcode::CREATE_FLOW_TABLE,
        ste_builder::prm::create_flow_table_in::SIZE_BITS,
    );
    let ctx = ste_builder::prm::create_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    cmds::set(&mut inp, flow_table_context::SW_OWNER.at(ctx), 1);
    cmds::set(
        &mut inp,
        flow_table_context::SW_OWNER_ICM_ROOT_0.at(ctx),
        root.addr,
    );
    let r = cmds::run(
        &dev,
        &inp,
        ste_builder::prm::create_flow_table_out::SIZE_BITS,
    );
    assert!(r.done.injected);
    assert_eq!(
        (r.done.status, r.done.syndrome),
        (Status::NoResources, 0x00de_ad01)
    );
    assert_eq!(tables(), before, "the failed command created nothing");
    // The fault is used up: the same command now succeeds.
    let r = cmds::run(
        &dev,
        &inp,
        ste_builder::prm::create_flow_table_out::SIZE_BITS,
    );
    assert_eq!(r.done.status, Status::Ok);
    assert!(!r.done.injected);
    assert_eq!(tables(), before + 1);
}

// --- a rule set written through the queue ------------------------------------------

/// A UDP or TCP 5-tuple match value.
fn five_tuple(proto: u64, src: u32, dst: u32, sport: u16, dport: u16) -> MatchParam {
    let mut v = MatchParam::default();
    v.set(Section::Outer, spec::IP_PROTOCOL, proto);
    v.set(Section::Outer, spec::SRC_IP_31_0, src.into());
    v.set(Section::Outer, spec::DST_IP_31_0, dst.into());
    let (s, d) = if proto == IPPROTO_TCP {
        (spec::TCP_SPORT, spec::TCP_DPORT)
    } else {
        (spec::UDP_SPORT, spec::UDP_DPORT)
    };
    v.set(Section::Outer, s, sport.into());
    v.set(Section::Outer, d, dport.into());
    v
}

/// The matcher's mask: addresses, protocol and ports of TCP and UDP.
fn five_tuple_mask() -> MatchParam {
    let mut m = MatchParam::default();
    for f in [
        spec::SRC_IP_31_0,
        spec::DST_IP_31_0,
        spec::IP_PROTOCOL,
        spec::UDP_SPORT,
        spec::UDP_DPORT,
        spec::TCP_SPORT,
        spec::TCP_DPORT,
    ] {
        m.set(Section::Outer, f, u64::MAX);
    }
    m
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// A device, a steering queue on it, and the firmware objects rules forward to.
struct Rig {
    dev: Arc<Device>,
    ring: SendRing,
    profile: Profile,
    format: SteFormat,
    caps: Caps,
    table: Table,
    tirn: u32,
    tir_icm: u64,
    counter: u32,
}

impl Rig {
    /// A rig whose hash table has 16 entries.
    fn new(model: DeviceModel) -> Rig {
        Rig::with_entries(model, 16)
    }

    /// Allocates the table's ICM, creates a TIR and a counter, and lays out a table of
    /// `entries` hash slots.
    fn with_entries(model: DeviceModel, entries: u32) -> Rig {
        let dev = Arc::new(Device::of_model(model));
        let profile = dev.profile();
        let format = profile.ste_format().unwrap();
        let caps = profile.ste_caps();
        let ring = SendRing::new(&dev, RingSizes::default()).unwrap();
        let mut mask = five_tuple_mask();
        let sb = SteBuild::new(
            format,
            BuilderKind::EthL3Ipv4_5Tuple,
            false,
            true,
            &mut mask,
            &caps,
        )
        .unwrap();
        assert!(mask.is_zero(), "the 5-tuple lookup covers the whole mask");
        let icm = dev.alloc_icm(IcmKind::Steering, 64 << 10, 12).unwrap();
        let table = Table::new(
            format,
            sb,
            icm,
            entries,
            profile.vhca_id,
            profile.nic_rx_drop_icm,
        );
        let (tirn, tir_icm) = create_tir(&dev).unwrap();
        let counter = alloc_counter(&dev).unwrap();
        Rig {
            dev,
            ring,
            profile,
            format,
            caps,
            table,
            tirn,
            tir_icm,
            counter,
        }
    }

    /// Posts writes into the table's ICM allocation.
    fn post(&mut self, writes: &[Write]) {
        let icm = self.table.icm;
        for w in writes {
            self.ring.write(&self.dev, &icm, w.addr, &w.bytes).unwrap();
        }
    }

    /// Writes the empty table, then makes it the SW table every NIC RX packet enters:
    /// `CREATE_FLOW_TABLE` with its root, and a kernel root-table entry forwarding to it.
    /// Returns the SW table's id and the kernel root table's.
    fn install_table(&mut self) -> (u32, u32) {
        let writes = self.table.create();
        self.post(&writes);
        self.ring.flush(&self.dev).unwrap();
        let sw = create_sw_table(&self.dev, TableType::NicRx, 1, self.table.root, 0).unwrap();
        let kernel_root = self
            .dev
            .with_firmware(|fw| fw.root_table(TableType::NicRx))
            .unwrap();
        forward_all(&self.dev, TableType::NicRx, kernel_root, sw).unwrap();
        (sw, kernel_root)
    }

    fn attr(&self, final_icm_addr: u64) -> ActionsAttr {
        ActionsAttr {
            final_icm_addr,
            gvmi: self.profile.vhca_id,
            hit_gvmi: self.profile.vhca_id,
            ..ActionsAttr::default()
        }
    }

    /// Adds a rule and posts its writes.
    fn rule(&mut self, value: &MatchParam, set: &[ActionType], attr: ActionsAttr) -> RulePlace {
        let set: ActionTypeSet = set.iter().copied().collect();
        let (place, writes) = self
            .table
            .add_rule(value, &self.caps, &set, &attr)
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.format));
        self.post(&writes);
        place
    }

    /// Writes a modify-header action list into modify-header ICM through the queue and
    /// returns its index (its line number from the start of that ICM).
    fn modify_list(&mut self, actions: &[ModifyAction]) -> u32 {
        let caps = ModifyCaps::from_device(
            self.profile.flex_parser_header_modify,
            self.profile.flex_parser_protocols,
            self.profile.flex_parser.gtpu_teid,
        );
        let mut list = Vec::new();
        for a in actions {
            let hw = modify_header::sw_to_hw(self.format, &caps, &a.to_bytes()).unwrap();
            list.extend_from_slice(&hw.hw_action);
        }
        let alloc = self
            .dev
            .alloc_icm(IcmKind::ModifyAction, list.len() as u64, 6)
            .unwrap();
        self.ring
            .write(&self.dev, &alloc, alloc.addr, &list)
            .unwrap();
        ((alloc.addr - self.profile.header_modify_sw_icm_start) / 64) as u32
    }

    /// Sends `fields` as a real packet into NIC RX.
    fn send(&self, fields: &MatchParam) -> (Packet, Vec<Delivery>) {
        let packet = build_from_match(fields, Metadata::new(Side::Rx)).unwrap();
        let out = self
            .dev
            .process(packet.clone(), Entry::Root(TableType::NicRx))
            .unwrap();
        (packet, out)
    }
}

/// The one copy a packet became, with its ICM walk.
fn single(out: &[Delivery]) -> (&Delivery, &sim::pipeline::Verdict) {
    assert_eq!(out.len(), 1, "{out:#?}");
    let d = &out[0];
    let verdict = d
        .stages
        .iter()
        .find_map(|s| match s {
            Stage::Software { verdict, .. } => Some(verdict),
            Stage::Firmware(_) => None,
        })
        .unwrap_or_else(|| panic!("no ICM walk: {d:#?}"));
    (d, verdict)
}

/// Checks the IPv4 header checksum and the L4 checksum of an untagged or tagged frame.
fn checksums_valid(p: &Packet) -> bool {
    let parsed = p.parse();
    let f = &parsed.fields;
    f.get(Section::Outer, spec::IPV4_CHECKSUM_OK) == 1
        && f.get(Section::Outer, spec::L4_CHECKSUM_OK) == 1
}

/// Where the IPv4 header starts in an Ethernet frame with `vlans` tags.
fn ipv4_at(vlans: usize) -> usize {
    14 + 4 * vlans
}

fn rule_set(model: DeviceModel) {
    let mut rig = Rig::new(model);
    let (sw, kernel_root) = rig.install_table();
    let format = rig.format;
    let drop = rig.profile.nic_rx_drop_icm;

    // hit: flow tag and counter, to the TIR.
    let tagged = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1000, 53);
    let attr = ActionsAttr {
        flow_tag: 0x1234,
        ctr_id: rig.counter,
        ..rig.attr(rig.tir_icm)
    };
    let tag_rule = rig.rule(&tagged, &[ActionType::Tag, ActionType::Ctr], attr);
    // hit: drop.
    let dropped = five_tuple(IPPROTO_TCP, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1000, 80);
    let drop_rule = rig.rule(&dropped, &[ActionType::Drop], rig.attr(drop));
    // hit: rewrite TTL and destination address.
    let new_dst = ip(10, 9, 9, 9);
    let index = rig.modify_list(&[
        ModifyAction::Set {
            field: sw_field::IP_TTL,
            offset: 0,
            length: 8,
            data: 7,
        },
        ModifyAction::Set {
            field: sw_field::DIPV4,
            offset: 0,
            length: 0,
            data: new_dst,
        },
    ]);
    let modified = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 3), ip(10, 0, 0, 4), 1000, 53);
    let attr = ActionsAttr {
        modify_index: index,
        modify_actions: 2,
        ..rig.attr(rig.tir_icm)
    };
    let modify_rule = rig.rule(&modified, &[ActionType::ModifyHdr], attr);
    // hit: pop a VLAN.
    let popped = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 5), ip(10, 0, 0, 6), 1000, 53);
    let attr = ActionsAttr {
        vlans: Vlans {
            count_pop: 1,
            ..Vlans::default()
        },
        ..rig.attr(rig.tir_icm)
    };
    let pop_rule = rig.rule(&popped, &[ActionType::PopVlan], attr);
    // hit: push a VLAN, where the format can on RX.
    let tci = 0x6123u32; // priority 3, VLAN 0x123
    let pushed = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 7), ip(10, 0, 0, 8), 1000, 53);
    let can_push = ActionCaps::of(format).contains(ActionCaps::RX_PUSH);
    let push_rule = can_push.then(|| {
        let attr = ActionsAttr {
            vlans: Vlans {
                count_push: 1,
                headers: [0x8100 << 16 | tci, 0],
                ..Vlans::default()
            },
            ..rig.attr(rig.tir_icm)
        };
        rig.rule(&pushed, &[ActionType::PushVlan], attr)
    });
    // hit: pop a VLAN and rewrite, which some formats cannot do in one STE.
    let pop_modified = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 9), ip(10, 0, 0, 10), 1000, 53);
    let attr = ActionsAttr {
        modify_index: index,
        modify_actions: 2,
        vlans: Vlans {
            count_pop: 1,
            ..Vlans::default()
        },
        ..rig.attr(rig.tir_icm)
    };
    let pop_modify_rule = rig.rule(
        &pop_modified,
        &[ActionType::PopVlan, ActionType::ModifyHdr],
        attr,
    );
    let connect = rig.table.connect_root();
    rig.post(&[connect]);
    rig.ring.flush(&rig.dev).unwrap();
    let stats = rig.ring.stats();
    assert!(
        stats.inline_writes > 0 && stats.pointer_writes > 0,
        "{stats:?}"
    );

    // What the driver wrote is what the device holds, read back with RDMA READs.
    let icm = rig.table.icm;
    let places = [
        Some(tag_rule),
        Some(drop_rule),
        Some(modify_rule),
        Some(pop_rule),
        push_rule,
    ];
    let mut reads = Vec::new();
    for p in places.iter().flatten() {
        reads.push((p.ste, rig.ring.read(&rig.dev, &icm, p.ste, 64).unwrap()));
    }
    let root_read = rig.ring.read(&rig.dev, &icm, rig.table.root, 64).unwrap();
    rig.ring.flush(&rig.dev).unwrap();
    for (addr, at) in reads.into_iter().chain([(rig.table.root, root_read)]) {
        let posted = rig.table.posted(addr, 64).bytes;
        assert_eq!(
            rig.ring.read_back(at, 64),
            posted,
            "{format:?} STE {addr:#x}"
        );
        assert_eq!(rig.dev.icm().read_line(addr).unwrap()[..], posted[..]);
    }

    // The tagged rule: firmware root entry, then the ICM walk from the SW table's root.
    let (packet, out) = rig.send(&tagged);
    let (d, v) = single(&out);
    assert_eq!(
        d.fate,
        Fate::Delivered(Terminal::Tir(rig.tirn)),
        "{format:?}"
    );
    assert_eq!(d.packet.meta.flow_tag, Some(0x1234));
    assert_eq!(d.counters, vec![rig.counter]);
    assert_eq!(d.packet.bytes, packet.bytes, "no action edits the bytes");
    assert_eq!(
        d.stages[0],
        Stage::Firmware(vec![FwHop {
            table_id: kernel_root,
            flow_index: Some(0),
        }])
    );
    assert!(matches!(d.stages[1], Stage::Software { root, .. } if root == rig.table.root));
    assert_eq!(v.trace[0].addr, rig.table.root);
    assert_eq!(
        v.trace[0].outcome,
        Outcome::Hit {
            next: rig.table.htbl
        }
    );
    // The slot the driver hashed the rule to is the one the packet hashes to; the walk
    // passes the chain up to the rule, hits it, then runs its action STEs.
    assert_eq!(
        v.trace[1].addr,
        rig.table.htbl + 64 * u64::from(tag_rule.slot)
    );
    assert_eq!(v.trace.len(), 2 + tag_rule.depth + tag_rule.added, "{v:#?}");
    assert_eq!(v.last_rule_hit(), Some(tag_rule.ste));
    assert_eq!(v.final_addr(), Some(rig.tir_icm));
    assert_eq!(
        query_counter(&rig.dev, rig.counter).unwrap(),
        (1, packet.len() as u64)
    );
    let _ = sw;

    // A miss: the slot's chain misses into the end anchor, which misses to the default.
    let other = five_tuple(IPPROTO_UDP, ip(10, 0, 0, 1), ip(10, 0, 0, 2), 1000, 54);
    let (_, out) = rig.send(&other);
    let (d, v) = single(&out);
    assert_eq!(d.fate, Fate::Delivered(Terminal::Drop));
    assert_eq!(d.packet.meta.flow_tag, None);
    assert!(d.counters.is_empty());
    assert!(v.missed_into(rig.table.end_anchor), "{v:#?}");
    assert_eq!(v.final_addr(), Some(drop));
    assert_eq!(v.last_rule_hit(), None);

    // The drop rule: dropped by the rule, not by a miss.
    let (_, out) = rig.send(&dropped);
    let (d, v) = single(&out);
    assert_eq!(d.fate, Fate::Delivered(Terminal::Drop));
    assert_eq!(v.last_rule_hit(), Some(drop_rule.ste));
    assert!(!v.missed_into(rig.table.end_anchor));

    // Modify header: TTL and destination rewritten, checksums still valid.
    let (packet, out) = rig.send(&modified);
    let (d, v) = single(&out);
    assert_eq!(d.fate, Fate::Delivered(Terminal::Tir(rig.tirn)));
    assert_eq!(v.last_rule_hit(), Some(modify_rule.ste));
    let at = ipv4_at(0);
    let b = &d.packet.bytes;
    assert_eq!(b[at + 8], 7, "TTL");
    assert_eq!(b[at + 16..at + 20], new_dst.to_be_bytes(), "destination");
    assert_eq!(b.len(), packet.len());
    assert_eq!(checksum(&b[at..at + 20]), 0, "IPv4 header checksum");
    let udp = &b[at + 20..];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(
        l4_checksum(PseudoHeader::V4(&b[at..at + 20]), 17, &udp[..udp_len]),
        0,
        "UDP checksum over the new destination"
    );
    assert!(checksums_valid(&d.packet));

    // VLAN pop: a tagged packet leaves untagged.
    let mut tagged_in = popped;
    tagged_in.set(Section::Outer, spec::CVLAN_TAG, 1);
    tagged_in.set(Section::Outer, spec::FIRST_VID, 0x56);
    let (packet, out) = rig.send(&tagged_in);
    assert_eq!(packet.bytes[12..14], [0x81, 0x00]);
    let (d, v) = single(&out);
    assert_eq!(d.fate, Fate::Delivered(Terminal::Tir(rig.tirn)));
    assert_eq!(v.last_rule_hit(), Some(pop_rule.ste));
    assert_eq!(d.packet.len(), packet.len() - 4);
    assert_eq!(d.packet.bytes[12..14], [0x08, 0x00]);
    assert_eq!(d.packet.bytes[..12], packet.bytes[..12]);
    assert_eq!(d.packet.bytes[14..], packet.bytes[18..]);
    assert!(checksums_valid(&d.packet));

    // VLAN pop and rewrite: on v1/v2 the rewrite goes to an added action STE.
    let mut tagged_in = pop_modified;
    tagged_in.set(Section::Outer, spec::CVLAN_TAG, 1);
    tagged_in.set(Section::Outer, spec::FIRST_VID, 0x57);
    let (packet, out) = rig.send(&tagged_in);
    let (d, v) = single(&out);
    assert_eq!(d.fate, Fate::Delivered(Terminal::Tir(rig.tirn)));
    assert_eq!(v.last_rule_hit(), Some(pop_modify_rule.ste));
    if format != SteFormat::V0 {
        // So the walk crosses a 1-entry action table here.
        assert_eq!(pop_modify_rule.added, 1);
    }
    assert_eq!(
        v.trace.len(),
        2 + pop_modify_rule.depth + pop_modify_rule.added,
        "{v:#?}"
    );
    let at = ipv4_at(0);
    let b = &d.packet.bytes;
    assert_eq!(d.packet.len(), packet.len() - 4);
    assert_eq!(b[12..14], [0x08, 0x00]);
    assert_eq!(b[at + 8], 7, "TTL");
    assert_eq!(b[at + 16..at + 20], new_dst.to_be_bytes(), "destination");
    assert!(checksums_valid(&d.packet));

    // VLAN push.
    if let Some(push_rule) = push_rule {
        let (packet, out) = rig.send(&pushed);
        let (d, v) = single(&out);
        assert_eq!(d.fate, Fate::Delivered(Terminal::Tir(rig.tirn)));
        assert_eq!(v.last_rule_hit(), Some(push_rule.ste));
        assert_eq!(d.packet.len(), packet.len() + 4);
        assert_eq!(d.packet.bytes[12..16], (0x8100 << 16 | tci).to_be_bytes());
        assert_eq!(d.packet.bytes[16..], packet.bytes[12..]);
        let f = d.packet.fields();
        assert_eq!(f.get(Section::Outer, spec::CVLAN_TAG), 1);
        assert_eq!(f.get(Section::Outer, spec::FIRST_VID), 0x123);
        assert!(checksums_valid(&d.packet));
    }

    // Only the tagged packet counted.
    assert_eq!(query_counter(&rig.dev, rig.counter).unwrap().0, 1);
}

#[test]
fn rule_set_connectx6dx_v1() {
    rule_set(DeviceModel::ConnectX6Dx);
}

#[test]
fn rule_set_connectx5_v0() {
    rule_set(DeviceModel::ConnectX5);
}

#[test]
fn rule_set_connectx7_v2() {
    rule_set(DeviceModel::ConnectX7);
}

#[test]
fn colliding_rules_chain_behind_their_slot() {
    for model in MODELS {
        // Two slots for eight rules: most rules sit in miss chains, linked by 32-byte
        // control-block updates of their predecessors.
        let mut rig = Rig::with_entries(model, 2);
        rig.install_table();
        let mut rules = Vec::new();
        for i in 0..8u16 {
            let v = five_tuple(IPPROTO_UDP, ip(10, 2, 0, 1), ip(10, 2, 0, 2), 7, 100 + i);
            let attr = ActionsAttr {
                flow_tag: 0x100 + u32::from(i),
                ..rig.attr(rig.tir_icm)
            };
            let place = rig.rule(&v, &[ActionType::Tag], attr);
            rules.push((v, place));
        }
        let connect = rig.table.connect_root();
        rig.post(&[connect]);
        rig.ring.flush(&rig.dev).unwrap();
        assert!(rules.iter().any(|(_, p)| p.depth >= 2), "{model:?}");

        for (i, (v, place)) in rules.iter().enumerate() {
            let (_, out) = rig.send(v);
            let (d, walk) = single(&out);
            assert_eq!(d.fate, Fate::Delivered(Terminal::Tir(rig.tirn)));
            assert_eq!(d.packet.meta.flow_tag, Some(0x100 + i as u32), "{model:?}");
            assert_eq!(walk.last_rule_hit(), Some(place.ste));
            // Root, the chain's misses before it, the rule.
            assert_eq!(walk.trace.len(), 2 + place.depth, "{model:?} {walk:#?}");
            let misses = walk.trace[1..1 + place.depth]
                .iter()
                .all(|h| matches!(h.outcome, Outcome::Miss { .. }));
            assert!(misses, "{model:?} {walk:#?}");
        }
        // A packet of neither rule runs its slot's whole chain into the end anchor.
        let other = five_tuple(IPPROTO_UDP, ip(10, 2, 0, 1), ip(10, 2, 0, 2), 7, 99);
        let (_, out) = rig.send(&other);
        let (d, walk) = single(&out);
        assert_eq!(d.fate, Fate::Delivered(Terminal::Drop));
        assert!(walk.missed_into(rig.table.end_anchor));
    }
}

// --- faults ------------------------------------------------------------------------

#[test]
fn icm_allocation_fault_fails_exactly_the_armed_call() {
    let dev = Device::of_model(DeviceModel::ConnectX6Dx);
    dev.fail_icm_alloc(1);
    let first = dev.alloc_icm(IcmKind::Steering, 4096, 12).unwrap();
    let err = dev.alloc_icm(IcmKind::ModifyAction, 64, 6).unwrap_err();
    assert_eq!(
        err,
        IcmError::Injected {
            kind: IcmKind::ModifyAction,
            size: 64
        }
    );
    let third = dev.alloc_icm(IcmKind::ModifyAction, 64, 6).unwrap();
    assert_eq!(dev.icm().usage().allocations, 2);
    // The failed call left no allocation behind and the others are usable.
    dev.icm().write(first.addr, &[1; 64]).unwrap();
    dev.icm().write(third.addr, &[2; 64]).unwrap();
}

#[test]
fn error_cqe_on_the_nth_wqe_stops_the_queue() {
    let dev = Device::of_model(DeviceModel::ConnectX6Dx);
    let mut ring = SendRing::new(&dev, RingSizes::default()).unwrap();
    let icm: IcmAlloc = dev.alloc_icm(IcmKind::Steering, 4096, 12).unwrap();
    dev.with_queue(ring.qpn(), |q| {
        q.inject_error(3, Syndrome::LocalProtection, 0x42)
    })
    .unwrap();
    let line = |i: u64| icm.addr + 64 * i;
    let mut indexes = Vec::new();
    for i in 0..8u8 {
        let bytes = [i + 1; 64];
        indexes.push(ring.write(&dev, &icm, line(i.into()), &bytes).unwrap());
    }
    let err = ring.flush(&dev).unwrap_err();
    let DriverError::Cqe(cqe) = err else {
        panic!("{err}")
    };
    assert_eq!(cqe.wqe_counter, indexes[3]);
    assert_eq!(cqe.syndrome, Syndrome::LocalProtection);
    assert_eq!(cqe.vendor_syndrome, 0x42);
    assert_eq!(cqe.qpn, ring.qpn());
    // ICM holds the writes before the failed WQE and nothing from it on.
    for i in 0..8u64 {
        let want = if i < 3 { [i as u8 + 1; 64] } else { [0; 64] };
        assert_eq!(dev.icm().read_line(line(i)).unwrap(), want, "line {i}");
    }
    let state = dev.with_queue(ring.qpn(), |q| q.state()).unwrap();
    assert_eq!(
        state,
        QueueState::Error(ErrorCause::Wqe {
            wqe_counter: indexes[3],
            syndrome: Syndrome::LocalProtection
        })
    );
    // Every later WQE (the driver's closing NOP too) completes flushed.
    let mut flushed = Vec::new();
    while let Err(DriverError::Cqe(c)) = ring.poll() {
        assert_eq!(c.syndrome, Syndrome::WrFlush);
        flushed.push(c.wqe_counter);
    }
    assert_eq!(flushed[..4], indexes[4..]);
    assert_eq!(flushed.len(), 5, "4 writes and the NOP");
    // A WQE posted after the error is flushed too, and ICM stays as it was.
    ring.write(&dev, &icm, line(0), &[0xee; 64]).unwrap();
    let err = ring.ring(&dev);
    assert!(
        matches!(err, Err(DriverError::Cqe(c)) if c.syndrome == Syndrome::WrFlush),
        "{err:?}"
    );
    assert_eq!(dev.icm().read_line(line(0)).unwrap(), [1; 64]);
}

#[test]
fn a_probe_packet_is_classified_between_any_two_writes() {
    let mut rig = Rig::new(DeviceModel::ConnectX6Dx);
    rig.install_table();
    let probe = five_tuple(IPPROTO_UDP, ip(10, 1, 0, 1), ip(10, 1, 0, 2), 7, 4789);
    // Before any rule, the root misses to the default: dropped.
    let (packet, out) = rig.send(&probe);
    assert_eq!(single(&out).0.fate, Fate::Delivered(Terminal::Drop));

    type Seen = (WqeEvent, Vec<Fate>, Option<u32>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let (log, weak, probe_packet) = (seen.clone(), Arc::downgrade(&rig.dev), packet.clone());
    rig.dev
        .with_queue(rig.ring.qpn(), |q| {
            q.set_wqe_hook(Some(Box::new(move |e: &WqeEvent| {
                let Some(dev) = weak.upgrade() else { return };
                let out = dev
                    .process(probe_packet.clone(), Entry::Root(TableType::NicRx))
                    .unwrap();
                let fates = out.iter().map(|d| d.fate.clone()).collect();
                let tag = out.first().and_then(|d| d.packet.meta.flow_tag);
                log.lock().unwrap().push((*e, fates, tag));
            })));
        })
        .unwrap();

    // Some unrelated rules first, then the probe's rule, then the root's link.
    for port in 1..6u16 {
        let v = five_tuple(IPPROTO_UDP, ip(10, 1, 0, 1), ip(10, 1, 0, 2), 7, port);
        rig.rule(
            &v,
            &[ActionType::Drop],
            rig.attr(rig.profile.nic_rx_drop_icm),
        );
    }
    let attr = ActionsAttr {
        flow_tag: 0xbeef,
        ctr_id: rig.counter,
        ..rig.attr(rig.tir_icm)
    };
    rig.rule(&probe, &[ActionType::Tag, ActionType::Ctr], attr);
    let connect = rig.table.connect_root();
    let root = connect.addr;
    rig.post(&[connect]);
    rig.ring.flush(&rig.dev).unwrap();
    rig.dev
        .with_queue(rig.ring.qpn(), |q| q.set_wqe_hook(None))
        .unwrap();

    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 8, "a probe after every WQE: {}", seen.len());
    let tir = Fate::Delivered(Terminal::Tir(rig.tirn));
    let drop = Fate::Delivered(Terminal::Drop);
    let switch = seen
        .iter()
        .position(|(_, fates, _)| fates == &vec![tir.clone()])
        .expect("the probe reaches its rule");
    // The verdict changes exactly at the WQE that links the root to the table.
    assert_eq!(seen[switch].0.icm.map(|s| s.addr), Some(root));
    for (i, (e, fates, tag)) in seen.iter().enumerate() {
        assert!(matches!(e.outcome, WqeOutcome::Completed { .. }), "{e:?}");
        if i < switch {
            assert_eq!(fates, &vec![drop.clone()], "before the link, WQE {i}");
            assert_eq!(*tag, None);
        } else {
            assert_eq!(fates, &vec![tir.clone()], "after the link, WQE {i}");
            assert_eq!(*tag, Some(0xbeef));
        }
    }
    // Each probe that hit the rule was counted.
    let hits = (seen.len() - switch) as u64;
    assert_eq!(query_counter(&rig.dev, rig.counter).unwrap().0, hits);
}
