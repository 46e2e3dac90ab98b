//! Device capabilities, discovered through PRM commands only, and what they allow.
//!
//! [`DeviceCaps::query`] asks the device what rdma-core's DR asks when it opens a domain
//! (`QUERY_HCA_CAP` for the general, NIC flow-table, e-switch, e-switch flow-table,
//! device-memory and RoCE pages, `QUERY_NIC_VPORT_CONTEXT`, `QUERY_ESW_FUNCTIONS`,
//! `QUERY_ESW_VPORT_CONTEXT`) and decodes the answers with the `ste_builder::prm`
//! layouts. [`DeviceCaps::check_sw_steering`] then says whether software
//! steering can own tables of a type, and if not, why; [`DeviceCaps::ste_caps`] gives
//! the capabilities the STE encoders read.
//!
//! E-switch vports other than the uplink and the manager are queried on demand
//! ([`DeviceCaps::query_vport`]), as rdma-core does the first time a rule names one.

mod query;

use std::fmt;

use ste_builder::{Caps, FlexParserIds, SteFormat, VportCap};

use crate::cmd::CmdError;
use crate::device::IcmKind;

/// The vport number of the uplink (the wire) in the e-switch.
pub const UPLINK_VPORT: u16 = 0xffff;

/// DR's largest STE hash table, as log2 of entries (`DR_CHUNK_SIZE_1024K`).
const MAX_LOG_CHUNK: u8 = 20;
/// log2 of an STE's size in ICM (`DR_STE_LOG_SIZE`).
const LOG_STE_SIZE: u8 = 6;
/// log2 of a modify-header action's size (`DR_MODIFY_ACTION_LOG_SIZE`).
const LOG_MODIFY_ACTION_SIZE: u8 = 3;
/// The smallest action chunk DR allocates, as log2 of entries (`DR_CHUNK_SIZE_4K`).
const LOG_MIN_ACTION_CHUNK: u8 = 12;
/// DR leaves room for one domain of each type: a domain takes at most an eighth of a
/// SW-ICM range in one allocation.
const LOG_DOMAIN_SHARE: u8 = 3;

/// A flow-table type: what a domain steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableType {
    /// NIC receive.
    NicRx,
    /// NIC transmit.
    NicTx,
    /// The e-switch (FDB), with an RX and a TX side.
    Fdb,
}

impl TableType {
    /// The PRM `table_type` value.
    pub const fn prm(self) -> u8 {
        match self {
            TableType::NicRx => 0x0,
            TableType::NicTx => 0x1,
            TableType::Fdb => 0x4,
        }
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableType::NicRx => "NIC RX",
            TableType::NicTx => "NIC TX",
            TableType::Fdb => "FDB",
        })
    }
}

/// Why a capability query failed, or why the device cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// A query command failed.
    #[error(transparent)]
    Command(#[from] CmdError),
    /// The device reports neither `sw_owner` nor `sw_owner_v2` for the table type.
    #[error(
        "SW steering not supported for {0}: the device reports neither sw_owner nor sw_owner_v2"
    )]
    NoSwOwner(TableType),
    /// The device's `steering_format_version` is one this driver has no STE format for.
    #[error("SW steering not supported: unknown steering format version {0}")]
    UnknownSteeringFormat(u8),
    /// NIC domains post to ICM through an RC queue looped back to the device, which
    /// needs force-loopback, and the RoCE caps do not allow it in RoCE's current state.
    #[error("SW steering not supported for {table_type}: the steering queue needs force-loopback, which the device does not allow with RoCE {state}", state = if *roce_en { "enabled" } else { "disabled" })]
    NoForceLoopback {
        /// The table type asked for.
        table_type: TableType,
        /// Whether RoCE is enabled (false also when the device has no RoCE).
        roce_en: bool,
    },
    /// FDB domains and vport queries need the e-switch manager.
    #[error("the function is not the e-switch manager, so it has no FDB or vports")]
    NotEswitchManager,
    /// A SW-ICM range is smaller than DR needs.
    #[error("{kind:?} ICM of 2^{log_size} bytes is below the 2^{need} bytes SW steering needs")]
    IcmTooSmall {
        /// Which range.
        kind: IcmKind,
        /// Its log2 size.
        log_size: u8,
        /// The least log2 size needed.
        need: u8,
    },
}

/// The properties of one flow-table type (`flow_table_prop_layout`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowTableCaps {
    /// Flow tables of this type exist.
    pub ft_support: bool,
    /// Software-owned tables with v1 ownership (ConnectX-5).
    pub sw_owner: bool,
    /// Software-owned tables with v2 ownership (ConnectX-6 Dx and later).
    pub sw_owner_v2: bool,
    /// The highest table level.
    pub max_ft_level: u8,
    /// A firmware table has at most `2^log_max_ft_size` entries.
    pub log_max_ft_size: u8,
    /// Entries can set a flow tag.
    pub flow_tag: bool,
    /// Entries can count.
    pub flow_counter: bool,
    /// Packet reformat (encap) actions.
    pub reformat: bool,
    /// Decap actions.
    pub decap: bool,
    /// VLAN pop.
    pub pop_vlan: bool,
    /// VLAN push.
    pub push_vlan: bool,
    /// Actions per modify-header context.
    pub max_modify_header_actions: u8,
}

impl FlowTableCaps {
    /// Software steering may own tables of this type on a device of steering format
    /// `version`: v1 ownership, or v2 ownership on a format known here (up to
    /// ConnectX-7), as rdma-core decides.
    pub fn sw_owner_supported(&self, version: u8) -> bool {
        self.sw_owner || (self.sw_owner_v2 && SteFormat::from_version(version).is_some())
    }
}

/// A SW-ICM range: `2^log_size` bytes from `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IcmRange {
    /// First ICM address.
    pub start: u64,
    /// log2 of the size in bytes (0: the device has none).
    pub log_size: u8,
}

/// The SW-ICM ranges (`device_mem_cap`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IcmCaps {
    /// Steering (STE) ICM.
    pub steering: IcmRange,
    /// Modify-header action ICM.
    pub modify_action: IcmRange,
    /// Modify-header pattern ICM (ConnectX-6 Dx and later), if any.
    pub modify_pattern: Option<IcmRange>,
    /// Allocations are multiples of `2^log_alloc_granularity` bytes.
    pub log_alloc_granularity: u8,
}

/// RoCE state and the force-loopback caps (`roce_cap`, `nic_vport_context.roce_en`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoceCaps {
    /// RoCE is enabled on this function's NIC vport.
    pub roce_en: bool,
    /// RC QPs may use force-loopback while RoCE is disabled.
    pub fl_rc_qp_when_roce_disabled: bool,
    /// RC QPs may use force-loopback while RoCE is enabled.
    pub fl_rc_qp_when_roce_enabled: bool,
    /// `qp_ts_format`.
    pub qp_ts_format: u8,
}

impl RoceCaps {
    /// The steering queue may loop back to the device (rdma-core's `dr_send_allow_fl`).
    pub fn allow_force_loopback(&self) -> bool {
        if self.roce_en {
            self.fl_rc_qp_when_roce_enabled
        } else {
            self.fl_rc_qp_when_roce_disabled
        }
    }
}

/// Modify-header argument objects (when `general_obj_types` has them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ModifyArgumentCaps {
    /// Argument granularity, log2 of entries.
    pub log_granularity: u8,
    /// Largest argument allocation, log2 of entries.
    pub log_max_alloc: u8,
}

/// What the e-switch manager knows about its e-switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EswCaps {
    /// FDB flow-table properties.
    pub fdb: FlowTableCaps,
    /// FDB RX drop address.
    pub rx_drop_icm: u64,
    /// FDB TX drop address.
    pub tx_drop_icm: u64,
    /// The uplink (vport 0xffff): its ICM addresses, owned by the manager.
    pub uplink: VportCap,
    /// The manager's own vport: FDB's default miss goes there.
    pub manager: VportCap,
    /// `log_max_esw_sf`, when the device has scalable functions.
    pub log_max_esw_sf: Option<u8>,
}

/// Where a SW-owned table of one side (RX or TX) sends what it does not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SideAddrs {
    /// The default miss: where a packet goes when no rule matches.
    pub default_miss: u64,
    /// The drop address.
    pub drop: u64,
}

/// What [`DeviceCaps::check_sw_steering`] grants: the STE format and, per side the
/// table type has, its firmware addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwSteering {
    /// The table type.
    pub table_type: TableType,
    /// The STE format.
    pub format: SteFormat,
    /// The RX side (NIC RX and FDB).
    pub rx: Option<SideAddrs>,
    /// The TX side (NIC TX and FDB).
    pub tx: Option<SideAddrs>,
}

/// Everything software steering needs to know about the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCaps {
    /// `steering_format_version` (0: ConnectX-5, 1: ConnectX-6 Dx, 2: ConnectX-7).
    pub steering_format_version: u8,
    /// This function's vhca id: the gvmi STEs carry.
    pub gvmi: u16,
    /// This function manages the e-switch.
    pub eswitch_manager: bool,
    /// A BlueField embedded CPU function (the host PF is another vhca).
    pub is_ecpf: bool,
    /// VLAN priority tags are required on TX.
    pub prio_tag_required: bool,
    /// `isolate_vl_tc_new`.
    pub isolate_vl_tc: bool,
    /// Scalable functions are supported.
    pub sf: bool,
    /// RoCE is supported.
    pub roce_supported: bool,
    /// `flex_parser_protocols`.
    pub flex_parser_protocols: u32,
    /// Flex-parser ids, each read only when its protocol is enabled (0 otherwise).
    pub flex_parser: FlexParserIds,
    /// Flex-parser fields can be modified.
    pub flex_parser_header_modify: bool,
    /// The flex-parser-ok lookup exists (`geneve_tlv_option_0_exist` field support).
    pub flex_parser_ok_bits: bool,
    /// `match_definer_format_supported`: bit `n` means definer format `n`.
    pub definer_formats: u64,
    /// Checksum-ok and l3/l4-ok bits can be matched.
    pub definer_supp_checksum: bool,
    /// The tunnel-header lookup covers dwords 0..3.
    pub support_full_tnl_hdr: bool,
    /// Modify-header argument objects, if supported.
    pub modify_argument: Option<ModifyArgumentCaps>,
    /// At most this many flow counters.
    pub max_flow_counter: u32,
    /// Counters come in bulks of up to `2^log_max_flow_counter_bulk`.
    pub log_max_flow_counter_bulk: u8,
    /// NIC RX flow-table properties.
    pub nic_rx: FlowTableCaps,
    /// NIC TX flow-table properties.
    pub nic_tx: FlowTableCaps,
    /// The highest table level (NIC RX's, which DR uses for every type).
    pub max_ft_level: u8,
    /// NIC RX drop address (also NIC RX's default miss).
    pub nic_rx_drop_icm: u64,
    /// NIC TX drop address.
    pub nic_tx_drop_icm: u64,
    /// NIC TX allow address (NIC TX's default miss: to the wire).
    pub nic_tx_allow_icm: u64,
    /// The e-switch, when this function manages it.
    pub esw: Option<EswCaps>,
    /// SW-ICM ranges.
    pub icm: IcmCaps,
    /// RoCE, when supported.
    pub roce: Option<RoceCaps>,
}

impl DeviceCaps {
    /// The STE format of the device, if this driver knows it.
    pub fn ste_format(&self) -> Option<SteFormat> {
        SteFormat::from_version(self.steering_format_version)
    }

    /// The flow-table properties of `table_type` (`None`: FDB without the e-switch).
    pub fn flow_table(&self, table_type: TableType) -> Option<&FlowTableCaps> {
        match table_type {
            TableType::NicRx => Some(&self.nic_rx),
            TableType::NicTx => Some(&self.nic_tx),
            TableType::Fdb => self.esw.as_ref().map(|e| &e.fdb),
        }
    }

    /// The steering queue may loop back to the device.
    pub fn allow_force_loopback(&self) -> bool {
        self.roce.is_some_and(|r| r.allow_force_loopback())
    }

    /// The largest STE hash table DR uses, log2 of entries: 2^20, or less so that one
    /// domain takes at most an eighth of steering ICM in one allocation.
    pub fn max_log_ste_table_size(&self) -> u8 {
        let chunks = self
            .icm
            .steering
            .log_size
            .saturating_sub(LOG_DOMAIN_SHARE + LOG_STE_SIZE);
        chunks.min(MAX_LOG_CHUNK)
    }

    /// The largest modify-action allocation DR makes, log2 of actions (the same rule).
    pub fn max_log_action_icm_size(&self) -> u8 {
        let chunks = self
            .icm
            .modify_action
            .log_size
            .saturating_sub(LOG_DOMAIN_SHARE + LOG_MODIFY_ACTION_SIZE);
        chunks.min(MAX_LOG_CHUNK)
    }

    /// Checks that software steering can own tables of `table_type`, as rdma-core's
    /// domain creation does, and returns the format and firmware addresses to use.
    pub fn check_sw_steering(&self, table_type: TableType) -> Result<SwSteering, CapsError> {
        let format = self.ste_format().ok_or(CapsError::UnknownSteeringFormat(
            self.steering_format_version,
        ))?;
        if table_type != TableType::Fdb && !self.allow_force_loopback() {
            return Err(CapsError::NoForceLoopback {
                table_type,
                roce_en: self.roce.is_some_and(|r| r.roce_en),
            });
        }
        let ft = self
            .flow_table(table_type)
            .ok_or(CapsError::NotEswitchManager)?;
        if !ft.sw_owner_supported(self.steering_format_version) {
            return Err(CapsError::NoSwOwner(table_type));
        }
        self.check_icm(format)?;
        let (rx, tx) = match table_type {
            TableType::NicRx => (
                Some(SideAddrs {
                    default_miss: self.nic_rx_drop_icm,
                    drop: self.nic_rx_drop_icm,
                }),
                None,
            ),
            TableType::NicTx => (
                None,
                Some(SideAddrs {
                    default_miss: self.nic_tx_allow_icm,
                    drop: self.nic_tx_drop_icm,
                }),
            ),
            TableType::Fdb => {
                // `flow_table` returned FDB props, so the e-switch caps are there.
                let esw = self.esw.as_ref().ok_or(CapsError::NotEswitchManager)?;
                (
                    Some(SideAddrs {
                        default_miss: esw.manager.icm_address_rx,
                        drop: esw.rx_drop_icm,
                    }),
                    Some(SideAddrs {
                        default_miss: esw.manager.icm_address_tx,
                        drop: esw.tx_drop_icm,
                    }),
                )
            }
        };
        Ok(SwSteering {
            table_type,
            format,
            rx,
            tx,
        })
    }

    /// DR's minimum SW-ICM sizes: room for its largest STE table and its smallest
    /// action chunk (and pattern chunk on formats that use pattern ICM).
    fn check_icm(&self, format: SteFormat) -> Result<(), CapsError> {
        let need = |kind, range: Option<IcmRange>, need: u8| {
            let log_size = range.map_or(0, |r| r.log_size);
            if log_size < need {
                Err(CapsError::IcmTooSmall {
                    kind,
                    log_size,
                    need,
                })
            } else {
                Ok(())
            }
        };
        let action = LOG_MIN_ACTION_CHUNK + LOG_MODIFY_ACTION_SIZE;
        need(IcmKind::ModifyAction, Some(self.icm.modify_action), action)?;
        need(
            IcmKind::Steering,
            Some(self.icm.steering),
            MAX_LOG_CHUNK + LOG_STE_SIZE,
        )?;
        if format != SteFormat::V0 {
            need(IcmKind::ModifyPattern, self.icm.modify_pattern, action)?;
        }
        Ok(())
    }

    /// The capabilities the STE encoders read, with the vport table made of the uplink
    /// and `vports` (from [`DeviceCaps::query_vport`]).
    pub fn ste_caps(&self, vports: &[VportCap]) -> Caps {
        let mut table = Vec::with_capacity(vports.len() + 1);
        if let Some(esw) = &self.esw {
            table.push(esw.uplink);
        }
        table.extend_from_slice(vports);
        Caps {
            gvmi: self.gvmi,
            is_ecpf: self.is_ecpf,
            esw_manager_vhca_gvmi: self.esw.as_ref().map_or(self.gvmi, |e| e.manager.vhca_gvmi),
            flex_parser: self.flex_parser,
            definer_supp_checksum: self.definer_supp_checksum,
            support_full_tnl_hdr: self.support_full_tnl_hdr,
            vports: table,
        }
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests;
