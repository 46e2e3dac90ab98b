//! Device profiles: the capabilities of a ConnectX-5, ConnectX-6 Dx and ConnectX-7 as
//! `QUERY_HCA_CAP` (and the vport queries) report them.
//!
//! A [`Profile`] is plain data: every capability rdma-core's software steering reads is a
//! public field, so a test can change any of them before building a device. The profile
//! also renders the capability pages byte for byte ([`Profile::caps_page`]), with each
//! field at its `mlx5_ifc.h` position ([`ste_builder::prm`]).
//!
//! Addresses of firmware-owned destinations (drop, allow, uplink, vports) are opaque ICM
//! addresses: nothing is stored there, the NIC recognises them. The defaults are those of
//! the simulated ConnectX-6 Dx the public recordings were made on.

use ste_builder::bits::{self, BitField};
use ste_builder::prm::{
    cmd_hca_cap, device_mem_cap, e_switch_cap, flow_table_eswitch_cap, flow_table_fields_supported,
    flow_table_fields_supported_2, flow_table_nic_cap, flow_table_prop_layout, hca_cap_union,
    roce_cap,
};
use ste_builder::{Caps, FlexParserIds, SteFormat, VportCap};

use crate::icm::{IcmKind, IcmLayout};

/// Size of one capability page (`hca_cap_union`) in bytes.
pub const CAPS_PAGE_SIZE: usize = hca_cap_union::SIZE_BITS / 8;

/// The vport number of the uplink (the wire port) in e-switch tables.
pub const UPLINK_VPORT: u16 = 0xffff;

/// `general_obj_types` bit of the modify-header argument object.
pub const OBJ_TYPE_HEADER_MODIFY_ARGUMENT: u32 = 0x23;

/// `flex_parser_protocols` bits: which protocols have a flex parser assigned.
pub mod flex_protocols {
    /// GENEVE.
    pub const GENEVE: u32 = 1 << 3;
    /// MPLS over GRE.
    pub const MPLS_OVER_GRE: u32 = 1 << 4;
    /// MPLS over UDP.
    pub const MPLS_OVER_UDP: u32 = 1 << 5;
    /// VXLAN-GPE.
    pub const VXLAN_GPE: u32 = 1 << 7;
    /// ICMPv4.
    pub const ICMP_V4: u32 = 1 << 8;
    /// ICMPv6.
    pub const ICMP_V6: u32 = 1 << 9;
    /// GENEVE TLV option 0.
    pub const GENEVE_OPT_0: u32 = 1 << 10;
    /// GTP-U.
    pub const GTPU: u32 = 1 << 11;
    /// GTP-U dword 2.
    pub const GTPU_DW_2: u32 = 1 << 16;
    /// GTP-U first extension header dword 0.
    pub const GTPU_FIRST_EXT_DW_0: u32 = 1 << 17;
    /// GTP-U dword 0.
    pub const GTPU_DW_0: u32 = 1 << 18;
    /// GTP-U TEID.
    pub const GTPU_TEID: u32 = 1 << 19;
}

/// The match-definer formats rdma-core 44's DR can use (`match_definer_format_supported`
/// bits).
pub const DR_DEFINER_FORMATS: [u32; 10] = [0, 2, 6, 16, 22, 24, 25, 26, 28, 33];

/// A ConnectX generation, which fixes the STE format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceModel {
    /// ConnectX-5: STE format v0.
    ConnectX5,
    /// ConnectX-6 Dx: STE format v1.
    ConnectX6Dx,
    /// ConnectX-7: STE format v2.
    ConnectX7,
}

impl DeviceModel {
    /// The `steering_format_version` capability.
    pub const fn steering_format_version(self) -> u8 {
        match self {
            DeviceModel::ConnectX5 => 0,
            DeviceModel::ConnectX6Dx => 1,
            DeviceModel::ConnectX7 => 2,
        }
    }

    /// The STE format.
    pub const fn ste_format(self) -> SteFormat {
        match self {
            DeviceModel::ConnectX5 => SteFormat::V0,
            DeviceModel::ConnectX6Dx => SteFormat::V1,
            DeviceModel::ConnectX7 => SteFormat::V2,
        }
    }
}

/// The capability page selected by `QUERY_HCA_CAP`'s `op_mod` (bits 15..1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapType {
    /// `cmd_hca_cap`: general device capabilities.
    General,
    /// `roce_cap`.
    Roce,
    /// `flow_table_nic_cap`: NIC RX/TX flow tables.
    NicFlowTable,
    /// `flow_table_eswitch_cap`: e-switch (FDB) flow tables.
    EswFlowTable,
    /// `e_switch_cap`.
    Esw,
    /// `device_mem_cap`: SW-ICM ranges.
    DeviceMemory,
}

impl CapType {
    /// The type number (`op_mod >> 1`).
    pub const fn number(self) -> u16 {
        match self {
            CapType::General => 0x0,
            CapType::Roce => 0x4,
            CapType::NicFlowTable => 0x7,
            CapType::EswFlowTable => 0x8,
            CapType::Esw => 0x9,
            CapType::DeviceMemory => 0xf,
        }
    }

    /// The type a `QUERY_HCA_CAP` `op_mod` asks for, and whether it asks for the current
    /// (`true`) or the maximum (`false`) values.
    pub fn from_op_mod(op_mod: u16) -> Option<(CapType, bool)> {
        let current = op_mod & 1 == 1;
        let ty = match op_mod >> 1 {
            0x0 => CapType::General,
            0x4 => CapType::Roce,
            0x7 => CapType::NicFlowTable,
            0x8 => CapType::EswFlowTable,
            0x9 => CapType::Esw,
            0xf => CapType::DeviceMemory,
            _ => return None,
        };
        Some((ty, current))
    }

    /// The `op_mod` that queries this page (current values when `current`).
    pub const fn op_mod(self, current: bool) -> u16 {
        (self.number() << 1) | current as u16
    }
}

/// Why a capability page cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// The `op_mod` names a capability type the device does not report.
    #[error("QUERY_HCA_CAP op_mod {0:#x} names no capability type this device reports")]
    UnsupportedCapType(u16),
    /// The function (vport) asked for does not exist.
    #[error("no function with vport number {0}")]
    NoSuchFunction(u16),
}

/// The properties of one flow-table type (`flow_table_prop_layout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTableProps {
    /// Flow tables of this type exist.
    pub ft_support: bool,
    /// Entries can set a flow tag.
    pub flow_tag: bool,
    /// Entries can count.
    pub flow_counter: bool,
    /// Entries can be modified in place.
    pub flow_modify_en: bool,
    /// The root table can be replaced.
    pub modify_root: bool,
    /// A table's miss can go to a given table.
    pub identified_miss_table: bool,
    /// Tables can be modified.
    pub flow_table_modify: bool,
    /// Packet reformat (encap) actions.
    pub reformat: bool,
    /// Decap actions.
    pub decap: bool,
    /// VLAN pop.
    pub pop_vlan: bool,
    /// VLAN push.
    pub push_vlan: bool,
    /// Software-owned tables (SW steering, v1 ownership: ConnectX-5).
    pub sw_owner: bool,
    /// Software-owned tables, v2 ownership (ConnectX-6 Dx and later).
    pub sw_owner_v2: bool,
    /// A table has at most `2^log_max_ft_size` entries.
    pub log_max_ft_size: u8,
    /// At most `2^log_max_modify_header_context` modify-header contexts.
    pub log_max_modify_header_context: u8,
    /// Actions per modify-header context.
    pub max_modify_header_actions: u8,
    /// The highest table level.
    pub max_ft_level: u8,
    /// At most `2^log_max_ft_num` tables.
    pub log_max_ft_num: u8,
    /// At most `2^log_max_flow_counter` counters per entry.
    pub log_max_flow_counter: u8,
    /// At most `2^log_max_destination` destinations per entry.
    pub log_max_destination: u8,
    /// At most `2^log_max_flow` entries over all tables.
    pub log_max_flow: u8,
    /// GENEVE TLV option 0 "exist" matching (DR's flex-parser-ok lookup).
    pub geneve_tlv_option_0_exist: bool,
}

impl FlowTableProps {
    fn for_model(model: DeviceModel) -> FlowTableProps {
        let v0 = model == DeviceModel::ConnectX5;
        FlowTableProps {
            ft_support: true,
            flow_tag: true,
            flow_counter: true,
            flow_modify_en: true,
            modify_root: true,
            identified_miss_table: true,
            flow_table_modify: true,
            reformat: true,
            decap: true,
            pop_vlan: true,
            push_vlan: true,
            sw_owner: v0,
            sw_owner_v2: !v0,
            log_max_ft_size: 23,
            log_max_modify_header_context: 16,
            max_modify_header_actions: 32,
            max_ft_level: 64,
            log_max_ft_num: 16,
            log_max_flow_counter: 8,
            log_max_destination: 8,
            log_max_flow: 24,
            geneve_tlv_option_0_exist: !v0,
        }
    }

    /// Software steering can own tables of this type, by rdma-core's rule: v1 ownership,
    /// or v2 ownership on a format it knows (up to ConnectX-7).
    pub fn sw_steering(&self, steering_format_version: u8) -> bool {
        self.sw_owner || (self.sw_owner_v2 && steering_format_version <= 2)
    }

    fn render(&self, page: &mut [u8], base: usize) {
        use flow_table_prop_layout as p;
        let flags: [(BitField, bool); 13] = [
            (p::FT_SUPPORT, self.ft_support),
            (p::FLOW_TAG, self.flow_tag),
            (p::FLOW_COUNTER, self.flow_counter),
            (p::FLOW_MODIFY_EN, self.flow_modify_en),
            (p::MODIFY_ROOT, self.modify_root),
            (p::IDENTIFIED_MISS_TABLE, self.identified_miss_table),
            (p::FLOW_TABLE_MODIFY, self.flow_table_modify),
            (p::REFORMAT, self.reformat),
            (p::DECAP, self.decap),
            (p::POP_VLAN, self.pop_vlan),
            (p::PUSH_VLAN, self.push_vlan),
            (p::SW_OWNER, self.sw_owner),
            (p::SW_OWNER_V2, self.sw_owner_v2),
        ];
        for (field, on) in flags {
            put(page, base, field, on as u64);
        }
        put(page, base, p::LOG_MAX_FT_SIZE, self.log_max_ft_size.into());
        put(
            page,
            base,
            p::LOG_MAX_MODIFY_HEADER_CONTEXT,
            self.log_max_modify_header_context.into(),
        );
        put(
            page,
            base,
            p::MAX_MODIFY_HEADER_ACTIONS,
            self.max_modify_header_actions.into(),
        );
        put(page, base, p::MAX_FT_LEVEL, self.max_ft_level.into());
        put(page, base, p::LOG_MAX_FT_NUM, self.log_max_ft_num.into());
        put(
            page,
            base,
            p::LOG_MAX_FLOW_COUNTER,
            self.log_max_flow_counter.into(),
        );
        put(
            page,
            base,
            p::LOG_MAX_DESTINATION,
            self.log_max_destination.into(),
        );
        put(page, base, p::LOG_MAX_FLOW, self.log_max_flow.into());
        let support = base + p::FT_FIELD_SUPPORT_OFF;
        put(
            page,
            support,
            flow_table_fields_supported::GENEVE_TLV_OPTION_0_EXIST,
            self.geneve_tlv_option_0_exist as u64,
        );
    }
}

/// One e-switch vport: its function's vhca id (gvmi) and the ICM addresses that deliver
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VportProfile {
    /// The vport number (0 is the PF that manages the e-switch on a non-ECPF device).
    pub num: u16,
    /// The vhca id (gvmi) of the function behind the vport.
    pub vhca_id: u16,
    /// ICM address that delivers to the vport from the FDB RX side.
    pub icm_rx: u64,
    /// ICM address that delivers to the vport from the FDB TX side.
    pub icm_tx: u64,
}

/// Everything the simulated device reports about itself.
///
/// Invariants the simulator relies on (checked by [`Profile::validate`]): the SW-ICM ranges
/// and the firmware address window do not overlap, firmware-owned addresses are 64-byte
/// aligned and outside all of them, vport numbers are unique, and the e-switch manager's
/// vport is in [`Profile::vports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The generation.
    pub model: DeviceModel,
    /// `steering_format_version`: 0 (ConnectX-5), 1 (ConnectX-6 Dx), 2 (ConnectX-7).
    pub steering_format_version: u8,
    /// This function's vhca id, which software steering uses as its gvmi.
    pub vhca_id: u16,
    /// This function manages the e-switch (FDB domains are possible).
    pub eswitch_manager: bool,
    /// The device is a BlueField embedded CPU function: `QUERY_ESW_FUNCTIONS` then reports
    /// a valid host PF vhca id ([`Profile::host_pf_vhca_id`]), which must differ from
    /// [`Profile::vhca_id`] for rdma-core to treat the function as an ECPF.
    pub is_ecpf: bool,
    /// The host PF's vhca id, reported when [`Profile::is_ecpf`].
    pub host_pf_vhca_id: u16,
    /// Scalable functions are supported.
    pub sf: bool,
    /// The e-switch has at most `2^log_max_esw_sf` scalable functions.
    pub log_max_esw_sf: u8,
    /// VLAN priority tags are required on TX (ConnectX-5 DR works around it).
    pub prio_tag_required: bool,
    /// `isolate_vl_tc_new`.
    pub isolate_vl_tc: bool,
    /// RoCE is supported (DR then queries the RoCE page and the NIC vport context).
    pub roce: bool,
    /// RoCE is enabled on this function's NIC vport.
    pub roce_en: bool,
    /// RC QPs can use force-loopback while RoCE is disabled.
    pub fl_rc_qp_when_roce_disabled: bool,
    /// RC QPs can use force-loopback while RoCE is enabled.
    pub fl_rc_qp_when_roce_enabled: bool,
    /// `qp_ts_format` of the RoCE page.
    pub qp_ts_format: u8,
    /// `flex_parser_protocols`: which protocols have a flex parser ([`flex_protocols`]).
    pub flex_parser_protocols: u32,
    /// The flex-parser ids assigned to those protocols.
    pub flex_parser: FlexParserIds,
    /// Flex-parser fields can be modified by modify-header actions.
    pub flex_parser_header_modify: bool,
    /// `match_definer_format_supported`: bit `n` means definer format `n`.
    pub match_definer_format_supported: u64,
    /// `general_obj_types`: bit `n` means general object type `n`.
    pub general_obj_types: u64,
    /// Modify-header argument granularity (log of entries).
    pub log_header_modify_argument_granularity: u8,
    /// Largest modify-header argument allocation (log of entries).
    pub log_header_modify_argument_max_alloc: u8,
    /// Counters can be allocated in bulks of up to `2^log_max_flow_counter_bulk`.
    pub log_max_flow_counter_bulk: u8,
    /// At most this many flow counters exist at once.
    pub max_flow_counter: u32,
    /// At most `2^log_max_tir` TIRs.
    pub log_max_tir: u8,
    /// At most `2^log_max_qp` QPs.
    pub log_max_qp: u8,
    /// NIC RX flow-table properties.
    pub nic_rx: FlowTableProps,
    /// NIC TX flow-table properties.
    pub nic_tx: FlowTableProps,
    /// FDB flow-table properties.
    pub fdb: FlowTableProps,
    /// Checksum-ok and l3/l4-ok bits can be matched (DR's `definer_supp_checksum`).
    pub definer_supp_checksum: bool,
    /// The tunnel-header fields 0..3 can be matched (DR's `support_full_tnl_hdr`).
    pub support_full_tnl_hdr: bool,
    /// NIC RX drop address (also NIC RX's default miss).
    pub nic_rx_drop_icm: u64,
    /// NIC TX drop address.
    pub nic_tx_drop_icm: u64,
    /// NIC TX allow address: the packet goes to the wire (NIC TX's default miss).
    pub nic_tx_allow_icm: u64,
    /// FDB RX drop address.
    pub esw_rx_drop_icm: u64,
    /// FDB TX drop address.
    pub esw_tx_drop_icm: u64,
    /// FDB RX address of the uplink.
    pub uplink_rx_icm: u64,
    /// FDB TX address of the uplink.
    pub uplink_tx_icm: u64,
    /// The vport of the e-switch manager (FDB's default miss goes there).
    pub esw_manager_vport: u16,
    /// The e-switch vports, the manager's included.
    pub vports: Vec<VportProfile>,
    /// First address of steering SW-ICM.
    pub steering_sw_icm_start: u64,
    /// Steering SW-ICM is `2^log_steering_sw_icm_size` bytes.
    pub log_steering_sw_icm_size: u8,
    /// First address of modify-header SW-ICM.
    pub header_modify_sw_icm_start: u64,
    /// Modify-header SW-ICM is `2^log_header_modify_sw_icm_size` bytes.
    pub log_header_modify_sw_icm_size: u8,
    /// First address of modify-header pattern SW-ICM (0 when there is none).
    pub header_modify_pattern_sw_icm_start: u64,
    /// Pattern SW-ICM is `2^log_header_modify_pattern_sw_icm_size` bytes (0: none).
    pub log_header_modify_pattern_sw_icm_size: u8,
    /// First address of encap SW-ICM (0 when there is none). rdma-core 44 does not query
    /// it, so it is not part of the rendered capability page.
    pub encap_sw_icm_start: u64,
    /// Encap SW-ICM is `2^log_encap_sw_icm_size` bytes (0: none).
    pub log_encap_sw_icm_size: u8,
    /// SW-ICM is allocated in multiples of `2^log_sw_icm_alloc_granularity` bytes.
    pub log_sw_icm_alloc_granularity: u8,
    /// First address of the window the firmware takes the entry addresses of its own
    /// objects from (firmware-owned flow tables, TIRs). Not a device capability: a
    /// simulator choice, kept here so that tests can move it.
    pub fw_icm_base: u64,
    /// The firmware window is `2^log_fw_icm_size` bytes.
    pub log_fw_icm_size: u8,
}

/// Writes `value` into `field` of a layout that starts at bit `base` of `page`.
fn put(page: &mut [u8], base: usize, field: BitField, value: u64) {
    bits::set(page, field.at(base), value);
}

impl Profile {
    /// The default profile of `model`.
    ///
    /// All three generations share the firmware addresses of the public recordings'
    /// simulated ConnectX-6 Dx (`fake_device` in `shared/golden/recordings/README.md`):
    /// NIC RX drop 0x7ff00000, TX drop 0x7ff00040, TX allow 0x7ff00080, FDB drop
    /// 0x7ff00100/0x7ff00140, uplink 0x7ff00200/0x7ff00240, e-switch manager vport
    /// 0x7ff00300/0x7ff00340, gvmi 1, steering SW-ICM of 2^30 bytes at 0x10_0000_0000.
    /// Generation differences: ConnectX-5 uses v1 table ownership and has no pattern ICM
    /// and no GENEVE-option "exist" bit; the newer ones use v2 ownership, have pattern
    /// ICM and can match checksum-ok bits. Definer formats and modify-header arguments
    /// are general objects the simulator does not model, so no profile advertises them.
    pub fn new(model: DeviceModel) -> Profile {
        use flex_protocols as fp;
        let v0 = model == DeviceModel::ConnectX5;
        let vhca_id = 1;
        let mut vports = vec![VportProfile {
            num: 0,
            vhca_id,
            icm_rx: 0x7ff0_0300,
            icm_tx: 0x7ff0_0340,
        }];
        for n in 1..=4u16 {
            let rx = 0x7ff0_0400 + 0x80 * u64::from(n - 1);
            vports.push(VportProfile {
                num: n,
                vhca_id: vhca_id + n,
                icm_rx: rx,
                icm_tx: rx + 0x40,
            });
        }
        Profile {
            model,
            steering_format_version: model.steering_format_version(),
            vhca_id,
            eswitch_manager: true,
            is_ecpf: false,
            host_pf_vhca_id: 0,
            sf: false,
            log_max_esw_sf: 0,
            prio_tag_required: false,
            isolate_vl_tc: false,
            roce: true,
            roce_en: true,
            fl_rc_qp_when_roce_disabled: true,
            fl_rc_qp_when_roce_enabled: true,
            qp_ts_format: 0,
            flex_parser_protocols: fp::GENEVE
                | fp::MPLS_OVER_GRE
                | fp::MPLS_OVER_UDP
                | fp::VXLAN_GPE
                | fp::ICMP_V4
                | fp::ICMP_V6
                | fp::GENEVE_OPT_0
                | fp::GTPU
                | fp::GTPU_DW_2
                | fp::GTPU_FIRST_EXT_DW_0
                | fp::GTPU_DW_0
                | fp::GTPU_TEID,
            flex_parser: FlexParserIds {
                icmp_dw0: 4,
                icmp_dw1: 5,
                icmpv6_dw0: 4,
                icmpv6_dw1: 5,
                geneve_tlv_option_0: 6,
                mpls_over_gre: 7,
                mpls_over_udp: 7,
                gtpu_dw_0: 0,
                gtpu_teid: 1,
                gtpu_dw_2: 2,
                gtpu_first_ext_dw_0: 3,
            },
            flex_parser_header_modify: !v0,
            match_definer_format_supported: 0,
            general_obj_types: 0,
            log_header_modify_argument_granularity: 0,
            log_header_modify_argument_max_alloc: 0,
            log_max_flow_counter_bulk: 23,
            max_flow_counter: 1 << 24,
            log_max_tir: 16,
            log_max_qp: 18,
            nic_rx: FlowTableProps::for_model(model),
            nic_tx: FlowTableProps::for_model(model),
            fdb: FlowTableProps::for_model(model),
            definer_supp_checksum: !v0,
            support_full_tnl_hdr: !v0,
            nic_rx_drop_icm: 0x7ff0_0000,
            nic_tx_drop_icm: 0x7ff0_0040,
            nic_tx_allow_icm: 0x7ff0_0080,
            esw_rx_drop_icm: 0x7ff0_0100,
            esw_tx_drop_icm: 0x7ff0_0140,
            uplink_rx_icm: 0x7ff0_0200,
            uplink_tx_icm: 0x7ff0_0240,
            esw_manager_vport: 0,
            vports,
            steering_sw_icm_start: 0x10_0000_0000,
            log_steering_sw_icm_size: 30,
            header_modify_sw_icm_start: 0x20_0000_0000,
            log_header_modify_sw_icm_size: 26,
            header_modify_pattern_sw_icm_start: if v0 { 0 } else { 0x30_0000_0000 },
            log_header_modify_pattern_sw_icm_size: if v0 { 0 } else { 24 },
            encap_sw_icm_start: 0,
            log_encap_sw_icm_size: 0,
            log_sw_icm_alloc_granularity: 12,
            fw_icm_base: 0x8000_0000,
            log_fw_icm_size: 28,
        }
    }

    /// The STE format of [`Profile::steering_format_version`], if it is one.
    pub fn ste_format(&self) -> Option<SteFormat> {
        SteFormat::from_version(self.steering_format_version)
    }

    /// The device supports modify-header argument objects (DR's
    /// `support_modify_argument`).
    pub fn support_modify_argument(&self) -> bool {
        self.general_obj_types & (1 << OBJ_TYPE_HEADER_MODIFY_ARGUMENT) != 0
    }

    /// The largest hash table (log of entries) DR allows itself on this device: 2^20
    /// entries, or less when steering ICM is smaller than 8 such tables of 64-byte STEs.
    pub fn dr_max_log_sw_icm_sz(&self) -> u8 {
        self.log_steering_sw_icm_size.saturating_sub(3 + 6).min(20)
    }

    /// The vport `num`, if the e-switch has it.
    pub fn vport(&self, num: u16) -> Option<&VportProfile> {
        self.vports.iter().find(|v| v.num == num)
    }

    /// The SW-ICM ranges of the device, one per kind whose size is non-zero.
    pub fn icm_layouts(&self) -> Vec<IcmLayout> {
        let ranges = [
            (
                IcmKind::Steering,
                self.steering_sw_icm_start,
                self.log_steering_sw_icm_size,
            ),
            (
                IcmKind::ModifyAction,
                self.header_modify_sw_icm_start,
                self.log_header_modify_sw_icm_size,
            ),
            (
                IcmKind::ModifyPattern,
                self.header_modify_pattern_sw_icm_start,
                self.log_header_modify_pattern_sw_icm_size,
            ),
            (
                IcmKind::Encap,
                self.encap_sw_icm_start,
                self.log_encap_sw_icm_size,
            ),
        ];
        ranges
            .into_iter()
            .filter(|&(_, _, log_size)| log_size > 0)
            .map(|(kind, base, log_size)| IcmLayout {
                kind,
                base,
                log_size,
                log_granularity: self.log_sw_icm_alloc_granularity.min(log_size),
            })
            .collect()
    }

    /// Checks the invariants listed on [`Profile`]; the error says which one fails.
    pub fn validate(&self) -> Result<(), String> {
        let mut spans: Vec<(&str, u64, u64)> = self
            .icm_layouts()
            .iter()
            .map(|l| ("SW-ICM", l.base, 1u64 << l.log_size.min(63)))
            .collect();
        for l in self.icm_layouts() {
            if l.log_size >= 48 || l.base & ((1u64 << l.log_size) - 1) != 0 {
                return Err(format!(
                    "{l:?}: base not aligned to its size or range too large"
                ));
            }
        }
        if self.log_fw_icm_size >= 48 || self.log_fw_icm_size < 6 {
            return Err("the firmware window must be 2^6 .. 2^47 bytes".into());
        }
        spans.push((
            "firmware window",
            self.fw_icm_base,
            1u64 << self.log_fw_icm_size,
        ));
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[..i] {
                if a.1 < b.1 + b.2 && b.1 < a.1 + a.2 {
                    return Err(format!(
                        "{} at {:#x} overlaps {} at {:#x}",
                        a.0, a.1, b.0, b.1
                    ));
                }
            }
        }
        let fixed = self.fixed_addresses();
        for (i, (name, addr)) in fixed.iter().enumerate() {
            if let Some((other, _)) = fixed[..i].iter().find(|(_, a)| a == addr) {
                // An address the NIC recognises has one meaning.
                return Err(format!("{name} and {other} share address {addr:#x}"));
            }
        }
        for (name, addr) in fixed {
            if addr % 64 != 0 {
                return Err(format!("{name} address {addr:#x} is not 64-byte aligned"));
            }
            if let Some(s) = spans.iter().find(|s| addr >= s.1 && addr - s.1 < s.2) {
                return Err(format!("{name} address {addr:#x} lies in the {}", s.0));
            }
        }
        for (i, v) in self.vports.iter().enumerate() {
            if self.vports[..i].iter().any(|w| w.num == v.num) {
                return Err(format!("vport {} listed twice", v.num));
            }
        }
        if self.eswitch_manager && self.vport(self.esw_manager_vport).is_none() {
            return Err(format!(
                "the e-switch manager vport {} is not in the vport table",
                self.esw_manager_vport
            ));
        }
        Ok(())
    }

    /// Every firmware-owned address the profile names, with a name for messages.
    pub fn fixed_addresses(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("NIC RX drop".to_string(), self.nic_rx_drop_icm),
            ("NIC TX drop".to_string(), self.nic_tx_drop_icm),
            ("NIC TX allow".to_string(), self.nic_tx_allow_icm),
            ("FDB RX drop".to_string(), self.esw_rx_drop_icm),
            ("FDB TX drop".to_string(), self.esw_tx_drop_icm),
            ("uplink RX".to_string(), self.uplink_rx_icm),
            ("uplink TX".to_string(), self.uplink_tx_icm),
        ];
        for v in &self.vports {
            out.push((format!("vport {} RX", v.num), v.icm_rx));
            out.push((format!("vport {} TX", v.num), v.icm_tx));
        }
        out
    }

    /// The capabilities the STE encoders need, as rdma-core's DR derives them from the
    /// queries: flex-parser ids only for enabled protocols, and the vport table with the
    /// uplink first (vport 0xffff, owned by the e-switch manager).
    pub fn ste_caps(&self) -> Caps {
        use flex_protocols as fp;
        let on = |bit: u32, id: u8| {
            if self.flex_parser_protocols & bit != 0 {
                id
            } else {
                0
            }
        };
        let f = &self.flex_parser;
        let flex_parser = FlexParserIds {
            icmp_dw0: on(fp::ICMP_V4, f.icmp_dw0),
            icmp_dw1: on(fp::ICMP_V4, f.icmp_dw1),
            icmpv6_dw0: on(fp::ICMP_V6, f.icmpv6_dw0),
            icmpv6_dw1: on(fp::ICMP_V6, f.icmpv6_dw1),
            geneve_tlv_option_0: on(fp::GENEVE_OPT_0, f.geneve_tlv_option_0),
            mpls_over_gre: on(fp::MPLS_OVER_GRE, f.mpls_over_gre),
            mpls_over_udp: on(fp::MPLS_OVER_UDP, f.mpls_over_udp),
            gtpu_dw_0: on(fp::GTPU_DW_0, f.gtpu_dw_0),
            gtpu_teid: on(fp::GTPU_TEID, f.gtpu_teid),
            gtpu_dw_2: on(fp::GTPU_DW_2, f.gtpu_dw_2),
            gtpu_first_ext_dw_0: on(fp::GTPU_FIRST_EXT_DW_0, f.gtpu_first_ext_dw_0),
        };
        let mut vports = Vec::new();
        if self.eswitch_manager {
            vports.push(VportCap {
                vport_num: UPLINK_VPORT,
                vport_gvmi: 0,
                vhca_gvmi: self.vhca_id,
                icm_address_rx: self.uplink_rx_icm,
                icm_address_tx: self.uplink_tx_icm,
            });
            vports.extend(self.vports.iter().map(|v| VportCap {
                vport_num: v.num,
                vport_gvmi: v.vhca_id,
                vhca_gvmi: self.vhca_id,
                icm_address_rx: v.icm_rx,
                icm_address_tx: v.icm_tx,
            }));
        }
        Caps {
            gvmi: self.vhca_id,
            is_ecpf: self.is_ecpf && self.host_pf_vhca_id != self.vhca_id,
            esw_manager_vhca_gvmi: self.vhca_id,
            flex_parser,
            definer_supp_checksum: self.definer_supp_checksum,
            support_full_tnl_hdr: self.support_full_tnl_hdr,
            vports,
        }
    }

    /// The capability page `QUERY_HCA_CAP` returns for `op_mod` (the 4096 bytes of
    /// `hca_cap_union`, without the command's 16-byte header).
    ///
    /// The simulated device runs with everything it supports enabled, so the maximum
    /// and the current page are equal.
    pub fn caps_page(&self, op_mod: u16) -> Result<Vec<u8>, CapsError> {
        let (ty, _current) =
            CapType::from_op_mod(op_mod).ok_or(CapsError::UnsupportedCapType(op_mod))?;
        let mut page = vec![0u8; CAPS_PAGE_SIZE];
        match ty {
            CapType::General => self.render_general(&mut page),
            CapType::Roce => self.render_roce(&mut page),
            CapType::NicFlowTable => self.render_nic_flow_table(&mut page),
            CapType::EswFlowTable => self.render_esw_flow_table(&mut page),
            CapType::Esw => self.render_esw(&mut page),
            CapType::DeviceMemory => self.render_device_memory(&mut page),
        }
        Ok(page)
    }

    /// The capability page of another function, the one behind e-switch vport `vport`
    /// (`QUERY_HCA_CAP` with `other_function`): as [`Profile::caps_page`], except that
    /// the general page carries that function's vhca id and no e-switch management.
    pub fn function_caps_page(&self, op_mod: u16, vport: u16) -> Result<Vec<u8>, CapsError> {
        let v = *self.vport(vport).ok_or(CapsError::NoSuchFunction(vport))?;
        let mut page = self.caps_page(op_mod)?;
        if vport != self.esw_manager_vport
            && CapType::from_op_mod(op_mod).map(|t| t.0) == Some(CapType::General)
        {
            let base = hca_cap_union::CMD_HCA_CAP_OFF;
            put(&mut page, base, cmd_hca_cap::VHCA_ID, v.vhca_id.into());
            put(&mut page, base, cmd_hca_cap::ESWITCH_MANAGER, 0);
            put(&mut page, base, cmd_hca_cap::VPORT_GROUP_MANAGER, 0);
        }
        Ok(page)
    }

    fn render_general(&self, page: &mut [u8]) {
        use cmd_hca_cap as c;
        let base = hca_cap_union::CMD_HCA_CAP_OFF;
        let f = &self.flex_parser;
        let fields: [(BitField, u64); 38] = [
            (c::VHCA_ID, self.vhca_id.into()),
            (c::PRIO_TAG_REQUIRED, self.prio_tag_required as u64),
            (c::ISOLATE_VL_TC_NEW, self.isolate_vl_tc as u64),
            (c::LOG_MAX_QP, self.log_max_qp.into()),
            (c::VPORT_GROUP_MANAGER, self.eswitch_manager as u64),
            (c::NIC_FLOW_TABLE, 1),
            (c::ESWITCH_MANAGER, self.eswitch_manager as u64),
            (c::DEVICE_MEMORY, 1),
            // Ethernet, one port.
            (c::PORT_TYPE, 1),
            (c::NUM_PORTS, 1),
            (c::ETH_NET_OFFLOADS, 1),
            (c::ROCE, self.roce as u64),
            (
                c::MAX_FLOW_COUNTER_31_16,
                u64::from(self.max_flow_counter >> 16),
            ),
            (
                c::MAX_FLOW_COUNTER_15_0,
                u64::from(self.max_flow_counter & 0xffff),
            ),
            (
                c::LOG_MAX_FLOW_COUNTER_BULK,
                self.log_max_flow_counter_bulk.into(),
            ),
            (c::LOG_MAX_TIR, self.log_max_tir.into()),
            (c::GENERAL_OBJ_TYPES, self.general_obj_types),
            (
                c::STEERING_FORMAT_VERSION,
                self.steering_format_version.into(),
            ),
            (c::FLEX_PARSER_PROTOCOLS, self.flex_parser_protocols.into()),
            (
                c::FLEX_PARSER_HEADER_MODIFY,
                self.flex_parser_header_modify as u64,
            ),
            (c::SF, self.sf as u64),
            (c::FLEX_PARSER_ID_GTPU_DW_0, f.gtpu_dw_0.into()),
            (c::FLEX_PARSER_ID_GTPU_TEID, f.gtpu_teid.into()),
            (c::FLEX_PARSER_ID_GENEVE_OPT_0, f.geneve_tlv_option_0.into()),
            (c::FLEX_PARSER_ID_ICMP_DW1, f.icmp_dw1.into()),
            (c::FLEX_PARSER_ID_ICMP_DW0, f.icmp_dw0.into()),
            (c::FLEX_PARSER_ID_ICMPV6_DW1, f.icmpv6_dw1.into()),
            (c::FLEX_PARSER_ID_ICMPV6_DW0, f.icmpv6_dw0.into()),
            (
                c::FLEX_PARSER_ID_OUTER_FIRST_MPLS_OVER_GRE,
                f.mpls_over_gre.into(),
            ),
            (
                c::FLEX_PARSER_ID_OUTER_FIRST_MPLS_OVER_UDP_LABEL,
                f.mpls_over_udp.into(),
            ),
            (c::FLEX_PARSER_ID_GTPU_DW_2, f.gtpu_dw_2.into()),
            (
                c::FLEX_PARSER_ID_GTPU_FIRST_EXT_DW_0,
                f.gtpu_first_ext_dw_0.into(),
            ),
            (
                c::LOG_HEADER_MODIFY_ARGUMENT_GRANULARITY,
                self.log_header_modify_argument_granularity.into(),
            ),
            (
                c::LOG_HEADER_MODIFY_ARGUMENT_MAX_ALLOC,
                self.log_header_modify_argument_max_alloc.into(),
            ),
            (
                c::MATCH_DEFINER_FORMAT_SUPPORTED,
                self.match_definer_format_supported,
            ),
            // RC and UD QPs (the steering queue is an RC QP).
            (c::RC, 1),
            (c::UD, 1),
            (c::CQE_VERSION, 1),
        ];
        for (field, value) in fields {
            put(page, base, field, value);
        }
    }

    fn render_roce(&self, page: &mut [u8]) {
        use roce_cap as r;
        let base = hca_cap_union::ROCE_CAPS_OFF;
        put(
            page,
            base,
            r::FL_RC_QP_WHEN_ROCE_DISABLED,
            self.fl_rc_qp_when_roce_disabled as u64,
        );
        put(
            page,
            base,
            r::FL_RC_QP_WHEN_ROCE_ENABLED,
            self.fl_rc_qp_when_roce_enabled as u64,
        );
        put(page, base, r::QP_TS_FORMAT, self.qp_ts_format.into());
    }

    fn render_nic_flow_table(&self, page: &mut [u8]) {
        use flow_table_nic_cap as n;
        let base = hca_cap_union::FLOW_TABLE_NIC_CAP_OFF;
        self.nic_rx
            .render(page, base + n::FLOW_TABLE_PROPERTIES_NIC_RECEIVE_OFF);
        self.nic_tx
            .render(page, base + n::FLOW_TABLE_PROPERTIES_NIC_TRANSMIT_OFF);
        let bitmask2 = base + n::FT_FIELD_BITMASK_SUPPORT_2_NIC_RECEIVE_OFF;
        let support2 = base + n::FT_FIELD_SUPPORT_2_NIC_RECEIVE_OFF;
        for at in [support2, bitmask2] {
            use flow_table_fields_supported_2 as s;
            for field in [
                s::INNER_L3_OK,
                s::INNER_L4_OK,
                s::OUTER_L3_OK,
                s::OUTER_L4_OK,
                s::INNER_IPV4_CHECKSUM_OK,
                s::INNER_L4_CHECKSUM_OK,
                s::OUTER_IPV4_CHECKSUM_OK,
                s::OUTER_L4_CHECKSUM_OK,
            ] {
                put(page, at, field, self.definer_supp_checksum as u64);
            }
            put(
                page,
                at,
                s::TUNNEL_HEADER_0_1,
                self.support_full_tnl_hdr as u64,
            );
            put(
                page,
                at,
                s::TUNNEL_HEADER_2_3,
                self.support_full_tnl_hdr as u64,
            );
        }
        put(
            page,
            base,
            n::SW_STEERING_NIC_RX_ACTION_DROP_ICM_ADDRESS,
            self.nic_rx_drop_icm,
        );
        put(
            page,
            base,
            n::SW_STEERING_NIC_TX_ACTION_DROP_ICM_ADDRESS,
            self.nic_tx_drop_icm,
        );
        put(
            page,
            base,
            n::SW_STEERING_NIC_TX_ACTION_ALLOW_ICM_ADDRESS,
            self.nic_tx_allow_icm,
        );
    }

    fn render_esw_flow_table(&self, page: &mut [u8]) {
        use flow_table_eswitch_cap as e;
        let base = hca_cap_union::FLOW_TABLE_ESWITCH_CAP_OFF;
        self.fdb
            .render(page, base + e::FLOW_TABLE_PROPERTIES_NIC_ESW_FDB_OFF);
        put(
            page,
            base,
            e::SW_STEERING_FDB_ACTION_DROP_ICM_ADDRESS_RX,
            self.esw_rx_drop_icm,
        );
        put(
            page,
            base,
            e::SW_STEERING_FDB_ACTION_DROP_ICM_ADDRESS_TX,
            self.esw_tx_drop_icm,
        );
        put(
            page,
            base,
            e::SW_STEERING_UPLINK_ICM_ADDRESS_RX,
            self.uplink_rx_icm,
        );
        put(
            page,
            base,
            e::SW_STEERING_UPLINK_ICM_ADDRESS_TX,
            self.uplink_tx_icm,
        );
    }

    fn render_esw(&self, page: &mut [u8]) {
        let base = hca_cap_union::E_SWITCH_CAP_OFF;
        put(
            page,
            base,
            e_switch_cap::LOG_MAX_ESW_SF,
            self.log_max_esw_sf.into(),
        );
    }

    fn render_device_memory(&self, page: &mut [u8]) {
        use device_mem_cap as d;
        let base = hca_cap_union::DEVICE_MEM_CAP_OFF;
        let fields: [(BitField, u64); 7] = [
            (d::STEERING_SW_ICM_START_ADDRESS, self.steering_sw_icm_start),
            (
                d::LOG_STEERING_SW_ICM_SIZE,
                self.log_steering_sw_icm_size.into(),
            ),
            (
                d::HEADER_MODIFY_SW_ICM_START_ADDRESS,
                self.header_modify_sw_icm_start,
            ),
            (
                d::LOG_HEADER_MODIFY_SW_ICM_SIZE,
                self.log_header_modify_sw_icm_size.into(),
            ),
            (
                d::HEADER_MODIFY_PATTERN_SW_ICM_START_ADDRESS,
                self.header_modify_pattern_sw_icm_start,
            ),
            (
                d::LOG_HEADER_MODIFY_PATTERN_SW_ICM_SIZE,
                self.log_header_modify_pattern_sw_icm_size.into(),
            ),
            (
                d::LOG_SW_ICM_ALLOC_GRANULARITY,
                self.log_sw_icm_alloc_granularity.into(),
            ),
        ];
        for (field, value) in fields {
            put(page, base, field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icm::Icm;
    use ste_builder::prm::query_hca_cap_out;

    fn get(page: &[u8], base: usize, field: BitField) -> u64 {
        bits::get(page, field.at(base))
    }

    #[test]
    fn defaults_per_model() {
        for (model, fmt) in [
            (DeviceModel::ConnectX5, SteFormat::V0),
            (DeviceModel::ConnectX6Dx, SteFormat::V1),
            (DeviceModel::ConnectX7, SteFormat::V2),
        ] {
            let p = Profile::new(model);
            assert_eq!(p.ste_format(), Some(fmt));
            p.validate().unwrap();
            assert!(p.nic_rx.sw_steering(p.steering_format_version));
            assert!(p.fdb.sw_steering(p.steering_format_version));
            // The ICM ranges make a valid ICM (Icm::new panics on a bad layout).
            let icm = Icm::new(&p.icm_layouts());
            let kinds: Vec<IcmKind> = icm.layouts().map(|l| l.kind).collect();
            let expect_pattern = model != DeviceModel::ConnectX5;
            assert_eq!(kinds.contains(&IcmKind::ModifyPattern), expect_pattern);
        }
        let p = Profile::new(DeviceModel::ConnectX6Dx);
        assert_eq!(p.dr_max_log_sw_icm_sz(), 20);
        assert_eq!(p.vport(0).unwrap().icm_rx, 0x7ff0_0300);
    }

    #[test]
    fn general_page_fields_at_ifc_offsets() {
        let mut p = Profile::new(DeviceModel::ConnectX6Dx);
        p.vhca_id = 0x1234;
        p.match_definer_format_supported = 1 << 33 | 1;
        p.flex_parser.icmp_dw1 = 0xa;
        let page = p.caps_page(CapType::General.op_mod(true)).unwrap();
        assert_eq!(page.len(), 4096);
        let b = hca_cap_union::CMD_HCA_CAP_OFF;
        assert_eq!(get(&page, b, cmd_hca_cap::VHCA_ID), 0x1234);
        // vhca_id is bits 0x30..0x40: bytes 6 and 7.
        assert_eq!(page[6..8], [0x12, 0x34]);
        assert_eq!(get(&page, b, cmd_hca_cap::STEERING_FORMAT_VERSION), 1);
        assert_eq!(get(&page, b, cmd_hca_cap::ESWITCH_MANAGER), 1);
        assert_eq!(get(&page, b, cmd_hca_cap::FLEX_PARSER_ID_ICMP_DW1), 0xa);
        assert_eq!(
            get(&page, b, cmd_hca_cap::MATCH_DEFINER_FORMAT_SUPPORTED),
            1 << 33 | 1
        );
        assert_eq!(get(&page, b, cmd_hca_cap::ROCE), 1);
        // The whole command output places the page after a 16-byte header.
        assert_eq!(query_hca_cap_out::CAPABILITY_OFF, 128);
        // Maximum and current pages are the same device.
        assert_eq!(page, p.caps_page(CapType::General.op_mod(false)).unwrap());
    }

    #[test]
    fn flow_table_pages_carry_ownership_and_addresses() {
        let p = Profile::new(DeviceModel::ConnectX5);
        let page = p.caps_page(CapType::NicFlowTable.op_mod(true)).unwrap();
        let rx = flow_table_nic_cap::FLOW_TABLE_PROPERTIES_NIC_RECEIVE_OFF;
        let tx = flow_table_nic_cap::FLOW_TABLE_PROPERTIES_NIC_TRANSMIT_OFF;
        assert_eq!(get(&page, rx, flow_table_prop_layout::SW_OWNER), 1);
        assert_eq!(get(&page, rx, flow_table_prop_layout::SW_OWNER_V2), 0);
        assert_eq!(get(&page, tx, flow_table_prop_layout::MAX_FT_LEVEL), 64);
        assert_eq!(
            get(
                &page,
                0,
                flow_table_nic_cap::SW_STEERING_NIC_TX_ACTION_ALLOW_ICM_ADDRESS
            ),
            0x7ff0_0080
        );

        let p = Profile::new(DeviceModel::ConnectX7);
        let page = p.caps_page(CapType::NicFlowTable.op_mod(true)).unwrap();
        assert_eq!(get(&page, rx, flow_table_prop_layout::SW_OWNER_V2), 1);
        let bm2 = flow_table_nic_cap::FT_FIELD_BITMASK_SUPPORT_2_NIC_RECEIVE_OFF;
        assert_eq!(
            get(
                &page,
                bm2,
                flow_table_fields_supported_2::OUTER_L4_CHECKSUM_OK
            ),
            1
        );
        let fields = rx + flow_table_prop_layout::FT_FIELD_SUPPORT_OFF;
        assert_eq!(
            get(
                &page,
                fields,
                flow_table_fields_supported::GENEVE_TLV_OPTION_0_EXIST
            ),
            1
        );

        let page = p.caps_page(CapType::EswFlowTable.op_mod(true)).unwrap();
        let fdb = flow_table_eswitch_cap::FLOW_TABLE_PROPERTIES_NIC_ESW_FDB_OFF;
        assert_eq!(get(&page, fdb, flow_table_prop_layout::SW_OWNER_V2), 1);
        assert_eq!(
            get(
                &page,
                0,
                flow_table_eswitch_cap::SW_STEERING_UPLINK_ICM_ADDRESS_TX
            ),
            0x7ff0_0240
        );
        assert_eq!(
            get(
                &page,
                0,
                flow_table_eswitch_cap::SW_STEERING_FDB_ACTION_DROP_ICM_ADDRESS_RX
            ),
            0x7ff0_0100
        );
    }

    #[test]
    fn device_memory_and_roce_pages() {
        let p = Profile::new(DeviceModel::ConnectX6Dx);
        let page = p.caps_page(CapType::DeviceMemory.op_mod(true)).unwrap();
        assert_eq!(
            get(&page, 0, device_mem_cap::STEERING_SW_ICM_START_ADDRESS),
            0x10_0000_0000
        );
        assert_eq!(get(&page, 0, device_mem_cap::LOG_STEERING_SW_ICM_SIZE), 30);
        assert_eq!(
            get(
                &page,
                0,
                device_mem_cap::HEADER_MODIFY_PATTERN_SW_ICM_START_ADDRESS
            ),
            0x30_0000_0000
        );
        let page = p.caps_page(CapType::Roce.op_mod(true)).unwrap();
        assert_eq!(get(&page, 0, roce_cap::FL_RC_QP_WHEN_ROCE_ENABLED), 1);
    }

    #[test]
    fn unknown_cap_types_and_functions_are_errors() {
        let p = Profile::new(DeviceModel::ConnectX6Dx);
        assert_eq!(p.caps_page(0x3 << 1), Err(CapsError::UnsupportedCapType(6)));
        assert_eq!(
            p.function_caps_page(1, 77),
            Err(CapsError::NoSuchFunction(77))
        );
        let page = p.function_caps_page(1, 2).unwrap();
        assert_eq!(get(&page, 0, cmd_hca_cap::VHCA_ID), 3);
        assert_eq!(get(&page, 0, cmd_hca_cap::ESWITCH_MANAGER), 0);
    }

    #[test]
    fn ste_caps_follow_enabled_protocols_and_vports() {
        let mut p = Profile::new(DeviceModel::ConnectX6Dx);
        p.flex_parser_protocols &= !flex_protocols::ICMP_V4;
        let caps = p.ste_caps();
        assert_eq!(caps.flex_parser.icmp_dw0, 0);
        assert_eq!(caps.flex_parser.icmpv6_dw0, 4);
        assert_eq!(caps.gvmi, 1);
        let wire = caps.vport(1, UPLINK_VPORT).unwrap();
        assert_eq!(wire.icm_address_rx, 0x7ff0_0200);
        assert_eq!(caps.vport(1, 3).unwrap().vport_gvmi, 4);
    }

    #[test]
    fn validate_catches_overlaps_and_misalignment() {
        let mut p = Profile::new(DeviceModel::ConnectX6Dx);
        p.fw_icm_base = p.steering_sw_icm_start;
        assert!(p.validate().is_err());
        let mut p = Profile::new(DeviceModel::ConnectX6Dx);
        p.nic_rx_drop_icm = 0x7ff0_0001;
        assert!(p.validate().is_err());
        let mut p = Profile::new(DeviceModel::ConnectX6Dx);
        p.esw_manager_vport = 99;
        assert!(p.validate().is_err());
    }
}
