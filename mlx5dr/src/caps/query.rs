//! Capability discovery: the query commands and the decoding of their answers.

use ste_builder::bits::BitField;
use ste_builder::prm::{
    cmd_hca_cap, device_mem_cap, e_switch_cap, esw_vport_context, flow_table_eswitch_cap,
    flow_table_fields_supported, flow_table_fields_supported_2, flow_table_nic_cap,
    flow_table_prop_layout, hca_cap_union, host_params_context, nic_vport_context,
    query_esw_functions_in, query_esw_functions_out, query_esw_vport_context_in,
    query_esw_vport_context_out, query_hca_cap_in, query_hca_cap_out, query_nic_vport_context_in,
    query_nic_vport_context_out, roce_cap,
};
use ste_builder::{FlexParserIds, VportCap};

use super::{
    CapsError, DeviceCaps, EswCaps, FlowTableCaps, IcmCaps, IcmRange, ModifyArgumentCaps, RoceCaps,
    UPLINK_VPORT,
};
use crate::cmd::opcode::{self, cap, flex};
use crate::cmd::{CmdIn, CmdOut, CmdStatus};
use crate::device::Device;

/// Bits of one `host_sf_enable` entry of `QUERY_ESW_FUNCTIONS`' output.
const HOST_SF_ENABLE_BITS: usize = 0x40;

/// A layout inside an output mailbox, with fields read relative to where it starts.
#[derive(Clone, Copy)]
struct Page<'a> {
    out: &'a CmdOut,
    /// Bit offset of the layout in the output mailbox.
    base: usize,
}

impl<'a> Page<'a> {
    /// The capability page of a `QUERY_HCA_CAP` output (every page of the union starts
    /// at the union's start).
    fn caps(out: &'a CmdOut) -> Page<'a> {
        Page {
            out,
            base: query_hca_cap_out::CAPABILITY_OFF + hca_cap_union::CMD_HCA_CAP_OFF,
        }
    }

    fn get(&self, field: BitField) -> u64 {
        self.out.get(field.at(self.base))
    }

    fn flag(&self, field: BitField) -> bool {
        self.get(field) != 0
    }

    fn u8(&self, field: BitField) -> u8 {
        self.get(field) as u8
    }

    /// The nested layout `off` bits into this one.
    fn nested(self, off: usize) -> Page<'a> {
        Page {
            out: self.out,
            base: self.base + off,
        }
    }
}

/// `QUERY_HCA_CAP` for the current values of page `ty`; `other` asks about the function
/// behind e-switch vport `function`.
fn query_hca_cap(dev: &dyn Device, ty: u16, other: Option<u16>) -> Result<CmdOut, CapsError> {
    let mut cmd = CmdIn::new(
        "QUERY_HCA_CAP",
        opcode::QUERY_HCA_CAP,
        query_hca_cap_in::SIZE_BITS,
    )
    .op_mod(ty | cap::CURRENT);
    if let Some(function) = other {
        cmd = cmd
            .set(query_hca_cap_in::OTHER_FUNCTION, 1)
            .set(query_hca_cap_in::FUNCTION_ID, function.into());
    }
    Ok(cmd.exec(dev, query_hca_cap_out::SIZE_BITS)?)
}

fn flow_table_caps(p: Page<'_>) -> FlowTableCaps {
    use flow_table_prop_layout as f;
    FlowTableCaps {
        ft_support: p.flag(f::FT_SUPPORT),
        sw_owner: p.flag(f::SW_OWNER),
        sw_owner_v2: p.flag(f::SW_OWNER_V2),
        max_ft_level: p.u8(f::MAX_FT_LEVEL),
        log_max_ft_size: p.u8(f::LOG_MAX_FT_SIZE),
        flow_tag: p.flag(f::FLOW_TAG),
        flow_counter: p.flag(f::FLOW_COUNTER),
        reformat: p.flag(f::REFORMAT),
        decap: p.flag(f::DECAP),
        pop_vlan: p.flag(f::POP_VLAN),
        push_vlan: p.flag(f::PUSH_VLAN),
        max_modify_header_actions: p.u8(f::MAX_MODIFY_HEADER_ACTIONS),
    }
}

/// The flex-parser ids of the protocols `protocols` enables (the others read 0).
fn flex_parser_ids(g: Page<'_>, protocols: u32) -> FlexParserIds {
    use cmd_hca_cap as c;
    let id = |bit: u32, field: BitField| {
        if protocols & bit != 0 {
            g.u8(field)
        } else {
            0
        }
    };
    FlexParserIds {
        icmp_dw0: id(flex::ICMP_V4, c::FLEX_PARSER_ID_ICMP_DW0),
        icmp_dw1: id(flex::ICMP_V4, c::FLEX_PARSER_ID_ICMP_DW1),
        icmpv6_dw0: id(flex::ICMP_V6, c::FLEX_PARSER_ID_ICMPV6_DW0),
        icmpv6_dw1: id(flex::ICMP_V6, c::FLEX_PARSER_ID_ICMPV6_DW1),
        geneve_tlv_option_0: id(flex::GENEVE_OPT_0, c::FLEX_PARSER_ID_GENEVE_OPT_0),
        mpls_over_gre: id(
            flex::MPLS_OVER_GRE,
            c::FLEX_PARSER_ID_OUTER_FIRST_MPLS_OVER_GRE,
        ),
        mpls_over_udp: id(
            flex::MPLS_OVER_UDP,
            c::FLEX_PARSER_ID_OUTER_FIRST_MPLS_OVER_UDP_LABEL,
        ),
        gtpu_dw_0: id(flex::GTPU_DW_0, c::FLEX_PARSER_ID_GTPU_DW_0),
        gtpu_teid: id(flex::GTPU_TEID, c::FLEX_PARSER_ID_GTPU_TEID),
        gtpu_dw_2: id(flex::GTPU_DW_2, c::FLEX_PARSER_ID_GTPU_DW_2),
        gtpu_first_ext_dw_0: id(
            flex::GTPU_FIRST_EXT_DW_0,
            c::FLEX_PARSER_ID_GTPU_FIRST_EXT_DW_0,
        ),
    }
}

/// `QUERY_ESW_VPORT_CONTEXT`: the ICM addresses (RX, TX) that deliver to a vport.
fn query_esw_vport_icm(dev: &dyn Device, other: Option<u16>) -> Result<(u64, u64), CapsError> {
    let mut cmd = CmdIn::new(
        "QUERY_ESW_VPORT_CONTEXT",
        opcode::QUERY_ESW_VPORT_CONTEXT,
        query_esw_vport_context_in::SIZE_BITS,
    );
    if let Some(vport) = other {
        cmd = cmd
            .set(query_esw_vport_context_in::OTHER_VPORT, 1)
            .set(query_esw_vport_context_in::VPORT_NUMBER, vport.into());
    }
    let out = cmd.exec(dev, query_esw_vport_context_out::SIZE_BITS)?;
    let ctx = query_esw_vport_context_out::ESW_VPORT_CONTEXT_OFF;
    Ok((
        out.get(esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_RX.at(ctx)),
        out.get(esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_TX.at(ctx)),
    ))
}

/// `QUERY_ESW_FUNCTIONS`: the host PF's vhca id, when the device reports one (an ECPF).
/// Firmware without the command (status `BAD_OP`) has no ECPF.
fn query_host_pf(dev: &dyn Device, log_max_sfs: Option<u8>) -> Result<Option<u16>, CapsError> {
    let sfs = log_max_sfs.map_or(0usize, |l| 1usize << l.min(16));
    let out_bits = query_esw_functions_out::SIZE_BITS + sfs.saturating_sub(1) * HOST_SF_ENABLE_BITS;
    let cmd = CmdIn::new(
        "QUERY_ESW_FUNCTIONS",
        opcode::QUERY_ESW_FUNCTIONS,
        query_esw_functions_in::SIZE_BITS,
    );
    let out = match cmd.exec(dev, out_bits) {
        Ok(out) => out,
        Err(e) if e.status() == Some(CmdStatus::BadOp) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let ctx = query_esw_functions_out::HOST_PARAMS_CONTEXT_OFF;
    if !out.flag(host_params_context::HOST_PF_VHCA_ID_VALID.at(ctx)) {
        return Ok(None);
    }
    Ok(Some(
        out.get(host_params_context::HOST_PF_VHCA_ID.at(ctx)) as u16
    ))
}

/// `QUERY_NIC_VPORT_CONTEXT` of this function: whether RoCE is enabled.
fn query_roce_en(dev: &dyn Device) -> Result<bool, CapsError> {
    let out = CmdIn::new(
        "QUERY_NIC_VPORT_CONTEXT",
        opcode::QUERY_NIC_VPORT_CONTEXT,
        query_nic_vport_context_in::SIZE_BITS,
    )
    .exec(dev, query_nic_vport_context_out::SIZE_BITS)?;
    let ctx = query_nic_vport_context_out::NIC_VPORT_CONTEXT_OFF;
    Ok(out.flag(nic_vport_context::ROCE_EN.at(ctx)))
}

impl DeviceCaps {
    /// Queries the device's capabilities with PRM commands, in the order rdma-core's DR
    /// does: general, NIC flow tables, e-switch (with scalable functions), e-switch
    /// functions, device memory, RoCE, then the e-switch manager's vport and the FDB.
    pub fn query(dev: &dyn Device) -> Result<DeviceCaps, CapsError> {
        use cmd_hca_cap as c;
        let general = query_hca_cap(dev, cap::GENERAL, None)?;
        let g = Page::caps(&general);
        let flex_parser_protocols = g.get(c::FLEX_PARSER_PROTOCOLS) as u32;
        let modify_argument =
            (g.get(c::GENERAL_OBJ_TYPES) & (1 << opcode::OBJ_TYPE_HEADER_MODIFY_ARGUMENT) != 0)
                .then(|| ModifyArgumentCaps {
                    log_granularity: g.u8(c::LOG_HEADER_MODIFY_ARGUMENT_GRANULARITY),
                    log_max_alloc: g.u8(c::LOG_HEADER_MODIFY_ARGUMENT_MAX_ALLOC),
                });
        let max_flow_counter =
            (g.get(c::MAX_FLOW_COUNTER_31_16) << 16 | g.get(c::MAX_FLOW_COUNTER_15_0)) as u32;
        let mut caps = DeviceCaps {
            steering_format_version: g.u8(c::STEERING_FORMAT_VERSION),
            gvmi: g.get(c::VHCA_ID) as u16,
            eswitch_manager: g.flag(c::ESWITCH_MANAGER),
            is_ecpf: false,
            prio_tag_required: g.flag(c::PRIO_TAG_REQUIRED),
            isolate_vl_tc: g.flag(c::ISOLATE_VL_TC_NEW),
            sf: g.flag(c::SF),
            roce_supported: g.flag(c::ROCE),
            flex_parser_protocols,
            flex_parser: flex_parser_ids(g, flex_parser_protocols),
            flex_parser_header_modify: g.flag(c::FLEX_PARSER_HEADER_MODIFY),
            definer_formats: g.get(c::MATCH_DEFINER_FORMAT_SUPPORTED),
            modify_argument,
            max_flow_counter,
            log_max_flow_counter_bulk: g.u8(c::LOG_MAX_FLOW_COUNTER_BULK),
            ..DeviceCaps::default()
        };

        let nic_out = query_hca_cap(dev, cap::NIC_FLOW_TABLE, None)?;
        {
            let nic = Page::caps(&nic_out);
            use flow_table_nic_cap as n;
            let rx = nic.nested(n::FLOW_TABLE_PROPERTIES_NIC_RECEIVE_OFF);
            caps.nic_rx = flow_table_caps(rx);
            caps.nic_tx = flow_table_caps(nic.nested(n::FLOW_TABLE_PROPERTIES_NIC_TRANSMIT_OFF));
            caps.max_ft_level = caps.nic_rx.max_ft_level;
            caps.nic_rx_drop_icm = nic.get(n::SW_STEERING_NIC_RX_ACTION_DROP_ICM_ADDRESS);
            caps.nic_tx_drop_icm = nic.get(n::SW_STEERING_NIC_TX_ACTION_DROP_ICM_ADDRESS);
            caps.nic_tx_allow_icm = nic.get(n::SW_STEERING_NIC_TX_ACTION_ALLOW_ICM_ADDRESS);
            // DR takes the checksum-ok bitmask bit as the sign that definers can match
            // checksum and ok bits, and the GENEVE option "exist" field support as the
            // sign that the flex-parser-ok lookup exists.
            let bitmask2 = nic.nested(n::FT_FIELD_BITMASK_SUPPORT_2_NIC_RECEIVE_OFF);
            caps.definer_supp_checksum =
                bitmask2.flag(flow_table_fields_supported_2::OUTER_L4_CHECKSUM_OK);
            caps.support_full_tnl_hdr = bitmask2
                .flag(flow_table_fields_supported_2::TUNNEL_HEADER_0_1)
                && bitmask2.flag(flow_table_fields_supported_2::TUNNEL_HEADER_2_3);
            caps.flex_parser_ok_bits = rx
                .nested(flow_table_prop_layout::FT_FIELD_SUPPORT_OFF)
                .flag(flow_table_fields_supported::GENEVE_TLV_OPTION_0_EXIST);
        }

        let log_max_esw_sf = if caps.sf && caps.eswitch_manager {
            let esw = query_hca_cap(dev, cap::ESW, None)?;
            Some(Page::caps(&esw).u8(e_switch_cap::LOG_MAX_ESW_SF))
        } else {
            None
        };
        if caps.eswitch_manager {
            // An ECPF is a function whose host PF is another vhca.
            caps.is_ecpf = query_host_pf(dev, log_max_esw_sf)?.is_some_and(|pf| pf != caps.gvmi);
        }

        let dm_out = query_hca_cap(dev, cap::DEVICE_MEMORY, None)?;
        {
            let dm = Page::caps(&dm_out);
            use device_mem_cap as d;
            let pattern = IcmRange {
                start: dm.get(d::HEADER_MODIFY_PATTERN_SW_ICM_START_ADDRESS),
                log_size: dm.u8(d::LOG_HEADER_MODIFY_PATTERN_SW_ICM_SIZE),
            };
            caps.icm = IcmCaps {
                steering: IcmRange {
                    start: dm.get(d::STEERING_SW_ICM_START_ADDRESS),
                    log_size: dm.u8(d::LOG_STEERING_SW_ICM_SIZE),
                },
                modify_action: IcmRange {
                    start: dm.get(d::HEADER_MODIFY_SW_ICM_START_ADDRESS),
                    log_size: dm.u8(d::LOG_HEADER_MODIFY_SW_ICM_SIZE),
                },
                modify_pattern: (pattern.log_size > 0).then_some(pattern),
                log_alloc_granularity: dm.u8(d::LOG_SW_ICM_ALLOC_GRANULARITY),
            };
        }

        if caps.roce_supported {
            let roce_en = query_roce_en(dev)?;
            let roce = query_hca_cap(dev, cap::ROCE, None)?;
            let r = Page::caps(&roce);
            caps.roce = Some(RoceCaps {
                roce_en,
                fl_rc_qp_when_roce_disabled: r.flag(roce_cap::FL_RC_QP_WHEN_ROCE_DISABLED),
                fl_rc_qp_when_roce_enabled: r.flag(roce_cap::FL_RC_QP_WHEN_ROCE_ENABLED),
                qp_ts_format: r.u8(roce_cap::QP_TS_FORMAT),
            });
        }

        if caps.eswitch_manager {
            caps.esw = Some(query_esw(dev, caps.gvmi, log_max_esw_sf)?);
        }
        Ok(caps)
    }

    /// Queries e-switch vport `num`: its ICM addresses and its function's gvmi. Vport 0
    /// is this function's own unless it is an ECPF (then every vport is "other"), as
    /// rdma-core decides.
    pub fn query_vport(&self, dev: &dyn Device, num: u16) -> Result<VportCap, CapsError> {
        let esw = self.esw.as_ref().ok_or(CapsError::NotEswitchManager)?;
        let other = (num != 0 || self.is_ecpf).then_some(num);
        let (icm_address_rx, icm_address_tx) = query_esw_vport_icm(dev, other)?;
        let general = query_hca_cap(dev, cap::GENERAL, other)?;
        Ok(VportCap {
            vport_num: num,
            vport_gvmi: Page::caps(&general).get(cmd_hca_cap::VHCA_ID) as u16,
            vhca_gvmi: esw.manager.vhca_gvmi,
            icm_address_rx,
            icm_address_tx,
        })
    }
}

/// The e-switch manager's view: its own vport context and the FDB page.
fn query_esw(
    dev: &dyn Device,
    gvmi: u16,
    log_max_esw_sf: Option<u8>,
) -> Result<EswCaps, CapsError> {
    use flow_table_eswitch_cap as e;
    let (mgr_rx, mgr_tx) = query_esw_vport_icm(dev, None)?;
    let fdb_out = query_hca_cap(dev, cap::ESW_FLOW_TABLE, None)?;
    let p = Page::caps(&fdb_out);
    // The manager's vhca id and gvmi are the same.
    let manager = VportCap {
        vport_num: 0,
        vport_gvmi: gvmi,
        vhca_gvmi: gvmi,
        icm_address_rx: mgr_rx,
        icm_address_tx: mgr_tx,
    };
    Ok(EswCaps {
        fdb: flow_table_caps(p.nested(e::FLOW_TABLE_PROPERTIES_NIC_ESW_FDB_OFF)),
        rx_drop_icm: p.get(e::SW_STEERING_FDB_ACTION_DROP_ICM_ADDRESS_RX),
        tx_drop_icm: p.get(e::SW_STEERING_FDB_ACTION_DROP_ICM_ADDRESS_TX),
        uplink: VportCap {
            vport_num: UPLINK_VPORT,
            vport_gvmi: 0,
            vhca_gvmi: gvmi,
            icm_address_rx: p.get(e::SW_STEERING_UPLINK_ICM_ADDRESS_RX),
            icm_address_tx: p.get(e::SW_STEERING_UPLINK_ICM_ADDRESS_TX),
        },
        manager,
        log_max_esw_sf,
    })
}
