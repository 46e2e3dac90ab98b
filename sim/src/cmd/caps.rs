//! Capability and vport queries: `QUERY_HCA_CAP`, `QUERY_NIC_VPORT_CONTEXT`,
//! `QUERY_ESW_VPORT_CONTEXT`, `QUERY_ESW_FUNCTIONS`.

use ste_builder::prm::{
    esw_vport_context, host_params_context, nic_vport_context, query_esw_functions_out,
    query_esw_vport_context_in, query_esw_vport_context_out, query_hca_cap_in, query_hca_cap_out,
    query_nic_vport_context_in, query_nic_vport_context_out,
};

use super::layout;
use super::status::{syndrome, CmdFail, Status};
use super::Ctx;
use crate::fw::FwError;
use crate::profile::CapsError;

/// The vport a query is about: this function's own (the e-switch manager's vport) or,
/// with `other_vport`, `vport_number`, which only the e-switch manager may ask for.
fn queried_vport(c: &Ctx, other: bool, number: u16) -> Result<u16, CmdFail> {
    let p = c.fw.profile();
    if !other {
        return Ok(p.esw_manager_vport);
    }
    if !p.eswitch_manager {
        return Err(FwError::NotEswitchManager.into());
    }
    p.vport(number)
        .map(|v| v.num)
        .ok_or(CmdFail::new(Status::BadParam, syndrome::NO_SUCH_FUNCTION))
}

pub(crate) fn query_hca_cap(c: &mut Ctx) -> Result<(), CmdFail> {
    c.input.need_bits(query_hca_cap_in::SIZE_BITS)?;
    c.out.need_bits(query_hca_cap_out::SIZE_BITS)?;
    let other = c.input.get(query_hca_cap_in::OTHER_FUNCTION)? == 1;
    let function = c.input.get(query_hca_cap_in::FUNCTION_ID)? as u16;
    let p = c.fw.profile();
    let page = if other {
        if !p.eswitch_manager {
            return Err(FwError::NotEswitchManager.into());
        }
        p.function_caps_page(c.op_mod, function)
    } else {
        p.caps_page(c.op_mod)
    };
    let page = page.map_err(|e| match e {
        CapsError::UnsupportedCapType(_) => CmdFail::new(Status::BadParam, syndrome::BAD_CAP_TYPE),
        CapsError::NoSuchFunction(_) => CmdFail::new(Status::BadParam, syndrome::NO_SUCH_FUNCTION),
    })?;
    c.out.write(query_hca_cap_out::CAPABILITY_OFF, &page)
}

pub(crate) fn query_nic_vport_context(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(query_nic_vport_context_in::SIZE_BITS)?;
    c.out.need_bits(query_nic_vport_context_out::SIZE_BITS)?;
    let other = c
        .input
        .get(layout::query_nic_vport_context_in::OTHER_VPORT)?
        == 1;
    let number = c
        .input
        .get(layout::query_nic_vport_context_in::VPORT_NUMBER)? as u16;
    queried_vport(c, other, number)?;
    // RoCE is enabled or not for the whole device.
    let roce_en = c.fw.profile().roce && c.fw.profile().roce_en;
    let ctx = query_nic_vport_context_out::NIC_VPORT_CONTEXT_OFF;
    c.out
        .set(nic_vport_context::ROCE_EN.at(ctx), roce_en.into())
}

pub(crate) fn query_esw_vport_context(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(query_esw_vport_context_in::SIZE_BITS)?;
    c.out.need_bits(query_esw_vport_context_out::SIZE_BITS)?;
    if !c.fw.profile().eswitch_manager {
        return Err(FwError::NotEswitchManager.into());
    }
    let other = c.input.get(query_esw_vport_context_in::OTHER_VPORT)? == 1;
    let number = c.input.get(query_esw_vport_context_in::VPORT_NUMBER)? as u16;
    let num = queried_vport(c, other, number)?;
    let v = *c.fw.profile().vport(num).ok_or(FwError::NoSuchVport(num))?;
    let ctx = query_esw_vport_context_out::ESW_VPORT_CONTEXT_OFF;
    c.out.set(
        esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_RX.at(ctx),
        v.icm_rx,
    )?;
    c.out.set(
        esw_vport_context::SW_STEERING_VPORT_ICM_ADDRESS_TX.at(ctx),
        v.icm_tx,
    )
}

pub(crate) fn query_esw_functions(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input
        .need_bits(ste_builder::prm::query_esw_functions_in::SIZE_BITS)?;
    c.out.need_bits(layout::query_esw_functions_out::MIN_BITS)?;
    let p = c.fw.profile();
    if !p.eswitch_manager {
        return Err(FwError::NotEswitchManager.into());
    }
    let (valid, host_pf) = (p.is_ecpf, p.host_pf_vhca_id);
    let ctx = query_esw_functions_out::HOST_PARAMS_CONTEXT_OFF;
    c.out.set(
        host_params_context::HOST_PF_VHCA_ID_VALID.at(ctx),
        valid.into(),
    )?;
    if valid {
        c.out
            .set(host_params_context::HOST_PF_VHCA_ID.at(ctx), host_pf.into())?;
    }
    Ok(())
}
