//! Capability discovery against the simulator: every model, changed profiles, faults.

use ::sim::cmd::{CommandFault, Status};
use ::sim::profile::{DeviceModel, Profile};

use super::*;
use crate::cmd::opcode;
use crate::cmd::CmdStatus;
use crate::device::sim::SimBackend;

const MODELS: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

fn query(profile: Profile) -> Result<DeviceCaps, CapsError> {
    DeviceCaps::query(&SimBackend::with_profile(profile).unwrap())
}

/// The profile's vport numbers, in its order.
fn vport_nums(p: &Profile) -> Vec<u16> {
    p.vports.iter().map(|v| v.num).collect()
}

#[test]
fn every_model_decodes_to_its_profile() {
    for model in MODELS {
        let p = Profile::new(model);
        let be = SimBackend::with_profile(p.clone()).unwrap();
        let caps = DeviceCaps::query(&be).unwrap();
        assert_eq!(caps.ste_format(), p.ste_format(), "{model:?}");
        assert_eq!(caps.steering_format_version, p.steering_format_version);
        assert_eq!(caps.gvmi, p.vhca_id);
        assert!(caps.eswitch_manager && !caps.is_ecpf);
        assert_eq!(caps.flex_parser_protocols, p.flex_parser_protocols);
        assert_eq!(caps.flex_parser_header_modify, p.flex_parser_header_modify);
        assert_eq!(caps.flex_parser_ok_bits, p.nic_rx.geneve_tlv_option_0_exist);
        assert_eq!(caps.max_flow_counter, p.max_flow_counter);
        assert_eq!(caps.log_max_flow_counter_bulk, p.log_max_flow_counter_bulk);
        assert_eq!(caps.modify_argument, None);

        assert_eq!(caps.nic_rx.sw_owner, p.nic_rx.sw_owner);
        assert_eq!(caps.nic_rx.sw_owner_v2, p.nic_rx.sw_owner_v2);
        assert_eq!(caps.nic_tx.sw_owner_v2, p.nic_tx.sw_owner_v2);
        assert_eq!(caps.max_ft_level, p.nic_rx.max_ft_level);
        assert_eq!(caps.nic_rx.log_max_ft_size, p.nic_rx.log_max_ft_size);
        assert_eq!(caps.nic_rx_drop_icm, p.nic_rx_drop_icm);
        assert_eq!(caps.nic_tx_drop_icm, p.nic_tx_drop_icm);
        assert_eq!(caps.nic_tx_allow_icm, p.nic_tx_allow_icm);

        assert_eq!(caps.icm.steering.start, p.steering_sw_icm_start);
        assert_eq!(caps.icm.steering.log_size, p.log_steering_sw_icm_size);
        assert_eq!(caps.icm.modify_action.start, p.header_modify_sw_icm_start);
        assert_eq!(
            caps.icm.modify_pattern.map(|r| (r.start, r.log_size)),
            (p.log_header_modify_pattern_sw_icm_size > 0).then_some((
                p.header_modify_pattern_sw_icm_start,
                p.log_header_modify_pattern_sw_icm_size
            ))
        );
        assert_eq!(
            caps.icm.log_alloc_granularity,
            p.log_sw_icm_alloc_granularity
        );
        assert_eq!(caps.max_log_ste_table_size(), p.dr_max_log_sw_icm_sz());

        let roce = caps.roce.unwrap();
        assert!(roce.roce_en && roce.allow_force_loopback());

        let esw = caps.esw.unwrap();
        assert_eq!(esw.rx_drop_icm, p.esw_rx_drop_icm);
        assert_eq!(esw.tx_drop_icm, p.esw_tx_drop_icm);
        assert_eq!(esw.fdb.sw_owner_v2, p.fdb.sw_owner_v2);
        let mgr = p.vport(p.esw_manager_vport).unwrap();
        assert_eq!(
            (esw.manager.icm_address_rx, esw.manager.icm_address_tx),
            (mgr.icm_rx, mgr.icm_tx)
        );
        assert_eq!(esw.log_max_esw_sf, None);

        // With every vport queried, the encoder caps are the ones the simulator walks
        // packets with.
        let vports: Vec<VportCap> = vport_nums(&p)
            .into_iter()
            .map(|n| caps.query_vport(&be, n).unwrap())
            .collect();
        assert_eq!(caps.ste_caps(&vports), p.ste_caps(), "{model:?}");
    }
}

#[test]
fn sw_steering_is_granted_with_the_domain_addresses() {
    for model in MODELS {
        let p = Profile::new(model);
        let caps = query(p.clone()).unwrap();
        let fmt = model.ste_format();
        let rx = caps.check_sw_steering(TableType::NicRx).unwrap();
        assert_eq!(rx.format, fmt);
        assert_eq!(
            rx.rx,
            Some(SideAddrs {
                default_miss: p.nic_rx_drop_icm,
                drop: p.nic_rx_drop_icm
            })
        );
        assert_eq!(rx.tx, None);
        let tx = caps.check_sw_steering(TableType::NicTx).unwrap();
        assert_eq!(
            tx.tx,
            Some(SideAddrs {
                default_miss: p.nic_tx_allow_icm,
                drop: p.nic_tx_drop_icm
            })
        );
        let fdb = caps.check_sw_steering(TableType::Fdb).unwrap();
        let mgr = p.vport(p.esw_manager_vport).unwrap();
        assert_eq!(
            fdb.rx,
            Some(SideAddrs {
                default_miss: mgr.icm_rx,
                drop: p.esw_rx_drop_icm
            })
        );
        assert_eq!(
            fdb.tx,
            Some(SideAddrs {
                default_miss: mgr.icm_tx,
                drop: p.esw_tx_drop_icm
            })
        );
    }
}

#[test]
fn missing_sw_owner_is_a_typed_refusal_for_that_type_only() {
    for model in MODELS {
        let mut p = Profile::new(model);
        p.nic_rx.sw_owner = false;
        p.nic_rx.sw_owner_v2 = false;
        let caps = query(p).unwrap();
        let err = caps.check_sw_steering(TableType::NicRx).unwrap_err();
        assert_eq!(err, CapsError::NoSwOwner(TableType::NicRx));
        assert!(err
            .to_string()
            .starts_with("SW steering not supported for NIC RX"));
        assert!(caps.check_sw_steering(TableType::NicTx).is_ok());
        assert!(caps.check_sw_steering(TableType::Fdb).is_ok());
    }
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.fdb.sw_owner_v2 = false;
    let caps = query(p).unwrap();
    assert_eq!(
        caps.check_sw_steering(TableType::Fdb),
        Err(CapsError::NoSwOwner(TableType::Fdb))
    );
}

#[test]
fn other_refusals() {
    // Not the e-switch manager: no FDB, no vports, and no e-switch queries sent.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.eswitch_manager = false;
    let be = SimBackend::with_profile(p).unwrap();
    be.sim().inject_command_fault(CommandFault::on_opcode(
        opcode::QUERY_ESW_VPORT_CONTEXT,
        Status::InternalError,
        1,
    ));
    let caps = DeviceCaps::query(&be).unwrap();
    assert_eq!(caps.esw, None);
    assert_eq!(
        caps.check_sw_steering(TableType::Fdb),
        Err(CapsError::NotEswitchManager)
    );
    assert!(caps.check_sw_steering(TableType::NicRx).is_ok());
    assert_eq!(caps.query_vport(&be, 1), Err(CapsError::NotEswitchManager));
    assert_eq!(caps.ste_caps(&[]).vports, vec![]);

    // RoCE disabled and no force-loopback then: NIC domains cannot post, FDB can.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.roce_en = false;
    p.fl_rc_qp_when_roce_disabled = false;
    let caps = query(p).unwrap();
    assert_eq!(
        caps.check_sw_steering(TableType::NicTx),
        Err(CapsError::NoForceLoopback {
            table_type: TableType::NicTx,
            roce_en: false
        })
    );
    assert!(caps.check_sw_steering(TableType::Fdb).is_ok());

    // A steering format this driver does not know.
    let mut p = Profile::new(DeviceModel::ConnectX7);
    p.steering_format_version = 3;
    let caps = query(p).unwrap();
    assert_eq!(caps.ste_format(), None);
    assert_eq!(
        caps.check_sw_steering(TableType::NicRx),
        Err(CapsError::UnknownSteeringFormat(3))
    );
    assert!(!caps.nic_rx.sw_owner_supported(3));

    // Steering ICM too small for DR's largest table.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.log_steering_sw_icm_size = 25;
    let caps = query(p).unwrap();
    assert_eq!(
        caps.check_sw_steering(TableType::NicRx),
        Err(CapsError::IcmTooSmall {
            kind: IcmKind::Steering,
            log_size: 25,
            need: 26
        })
    );
    assert_eq!(caps.max_log_ste_table_size(), 16);

    // v1 and later need pattern ICM; v0 does not.
    let mut p = Profile::new(DeviceModel::ConnectX7);
    p.log_header_modify_pattern_sw_icm_size = 0;
    let caps = query(p).unwrap();
    assert_eq!(caps.icm.modify_pattern, None);
    assert!(matches!(
        caps.check_sw_steering(TableType::NicRx),
        Err(CapsError::IcmTooSmall {
            kind: IcmKind::ModifyPattern,
            ..
        })
    ));
}

#[test]
fn command_faults_name_the_failing_query() {
    // The third QUERY_HCA_CAP (n = 2) is the device-memory page: general, NIC flow
    // table, then (no scalable functions, so no e-switch page) device memory.
    let be = SimBackend::of_model(DeviceModel::ConnectX5);
    be.sim().inject_command_fault(CommandFault::on_opcode_nth(
        opcode::QUERY_HCA_CAP,
        2,
        Status::BadSysState,
        0xdead_beef,
    ));
    let err = DeviceCaps::query(&be).unwrap_err();
    assert_eq!(
        err,
        CapsError::Command(CmdError::Failed {
            command: "QUERY_HCA_CAP",
            op_mod: opcode::cap::DEVICE_MEMORY | opcode::cap::CURRENT,
            status: CmdStatus::BadSysState,
            syndrome: 0xdead_beef
        })
    );
    assert!(err.to_string().contains("syndrome 0xdeadbeef"), "{err}");

    let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
    be.sim().inject_command_fault(CommandFault::on_opcode(
        opcode::QUERY_NIC_VPORT_CONTEXT,
        Status::BadParam,
        7,
    ));
    let err = DeviceCaps::query(&be).unwrap_err();
    assert_eq!(
        err.to_string(),
        "QUERY_NIC_VPORT_CONTEXT (op_mod 0x0) failed: status BadParam (0x3), syndrome 0x7"
    );

    // Firmware without QUERY_ESW_FUNCTIONS has no ECPF; any other failure of it is an
    // error.
    let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
    be.sim().inject_command_fault(CommandFault::on_opcode(
        opcode::QUERY_ESW_FUNCTIONS,
        Status::BadOp,
        1,
    ));
    assert!(!DeviceCaps::query(&be).unwrap().is_ecpf);
    let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
    be.sim().inject_command_fault(CommandFault::on_opcode(
        opcode::QUERY_ESW_FUNCTIONS,
        Status::InternalError,
        2,
    ));
    assert!(matches!(
        DeviceCaps::query(&be),
        Err(CapsError::Command(CmdError::Failed {
            command: "QUERY_ESW_FUNCTIONS",
            ..
        }))
    ));

    // A vport the e-switch does not have.
    let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
    let caps = DeviceCaps::query(&be).unwrap();
    assert!(matches!(
        caps.query_vport(&be, 99),
        Err(CapsError::Command(CmdError::Failed {
            command: "QUERY_ESW_VPORT_CONTEXT",
            status: CmdStatus::BadParam,
            ..
        }))
    ));
}

#[test]
fn ecpf_scalable_functions_and_flex_parsers_follow_the_device() {
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.is_ecpf = true;
    p.host_pf_vhca_id = 9;
    p.sf = true;
    p.log_max_esw_sf = 3;
    p.flex_parser_protocols &= !opcode::flex::ICMP_V4;
    p.match_definer_format_supported = 1 << 33 | 1 << 22;
    p.general_obj_types = 1 << opcode::OBJ_TYPE_HEADER_MODIFY_ARGUMENT;
    p.log_header_modify_argument_granularity = 5;
    p.log_header_modify_argument_max_alloc = 17;
    let be = SimBackend::with_profile(p.clone()).unwrap();
    let caps = DeviceCaps::query(&be).unwrap();
    assert!(caps.is_ecpf && caps.sf);
    assert_eq!(caps.esw.unwrap().log_max_esw_sf, Some(3));
    assert_eq!(caps.flex_parser.icmp_dw0, 0);
    assert_eq!(caps.flex_parser.icmpv6_dw0, p.flex_parser.icmpv6_dw0);
    assert_eq!(caps.definer_formats, 1 << 33 | 1 << 22);
    assert_eq!(
        caps.modify_argument,
        Some(ModifyArgumentCaps {
            log_granularity: 5,
            log_max_alloc: 17
        })
    );
    // On an ECPF even vport 0 is another function's, queried as "other".
    let v0 = caps.query_vport(&be, 0).unwrap();
    assert_eq!(v0.vport_gvmi, p.vport(0).unwrap().vhca_id);
    let vports: Vec<VportCap> = vport_nums(&p)
        .into_iter()
        .map(|n| caps.query_vport(&be, n).unwrap())
        .collect();
    assert_eq!(caps.ste_caps(&vports), p.ste_caps());

    // A host PF that is this very function is no ECPF.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.is_ecpf = true;
    p.host_pf_vhca_id = p.vhca_id;
    assert!(!query(p).unwrap().is_ecpf);
}
