//! Flow-table commands: tables, groups, entries and `SYNC_STEERING`.

use ste_builder::bits::BitField;
use ste_builder::match_param::MATCH_PARAM_SIZE;
use ste_builder::prm::{
    create_flow_group_in, create_flow_group_out, create_flow_table_in, create_flow_table_out,
    dest_format, destroy_flow_group_in, destroy_flow_table_in, extended_dest_format, flow_context,
    flow_counter_list, flow_table_context, mbox_out, query_flow_table_in, query_flow_table_out,
    set_fte_in, sync_steering_in,
};
use ste_builder::MatchParam;

use super::layout::{self, action, dest_type, miss_action, modify_field, set_fte_op};
use super::status::{syndrome, CmdFail, Status};
use super::Ctx;
use crate::fw::{
    Destination, EntryOp, Fate, FlowTable, Fte, FteAction, FwError, GroupSpec, MissAction,
    TableAttr, TableOwner, TableType,
};
use crate::profile::UPLINK_VPORT;

/// The table type in field `field`.
fn table_type(c: &Ctx, field: BitField) -> Result<TableType, CmdFail> {
    let v = c.input.get(field)? as u8;
    TableType::from_prm(v).ok_or_else(|| FwError::UnsupportedTableType(v).into())
}

/// Flow-table commands for another vport's ACL tables are not modelled.
fn own_vport(c: &Ctx, other_vport: BitField) -> Result<(), CmdFail> {
    if c.input.get(other_vport)? != 0 {
        return Err(FwError::Unsupported("flow tables of another vport").into());
    }
    Ok(())
}

/// The miss action in a `flow_table_context` at bit `ctx`.
fn miss(c: &Ctx, ctx: usize) -> Result<MissAction, CmdFail> {
    let action = c.input.get(flow_table_context::TABLE_MISS_ACTION.at(ctx))? as u8;
    match action {
        miss_action::DEFAULT => Ok(MissAction::Default),
        miss_action::FORWARD => Ok(MissAction::Forward(
            c.input.get32(flow_table_context::TABLE_MISS_ID.at(ctx))?,
        )),
        other => Err(FwError::BadMissAction(other).into()),
    }
}

pub(crate) fn create_flow_table(c: &mut Ctx) -> Result<(), CmdFail> {
    use flow_table_context as f;
    c.plain_op_mod()?;
    c.input.need_bits(create_flow_table_in::SIZE_BITS)?;
    c.out.need_bits(create_flow_table_out::SIZE_BITS)?;
    own_vport(c, create_flow_table_in::OTHER_VPORT)?;
    let ty = table_type(c, create_flow_table_in::TABLE_TYPE)?;
    let ctx = create_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    let get = |field: BitField| c.input.get(field.at(ctx));
    if get(f::LAG_MASTER_NEXT_TABLE_ID)? != 0 {
        return Err(FwError::Unsupported("LAG master tables").into());
    }
    let sw_owner = if get(f::SW_OWNER)? == 1 {
        Some((get(f::SW_OWNER_ICM_ROOT_0)?, get(f::SW_OWNER_ICM_ROOT_1)?))
    } else {
        None
    };
    let attr = TableAttr {
        table_type: ty,
        level: get(f::LEVEL)? as u8,
        log_size: get(f::LOG_SIZE)? as u8,
        sw_owner,
        miss: miss(c, ctx)?,
        termination: get(f::TERMINATION_TABLE)? == 1,
        reformat_en: get(f::REFORMAT_EN)? == 1,
        decap_en: get(f::DECAP_EN)? == 1,
    };
    let id = c.fw.create_table(c.uid, &attr)?;
    c.out.set(create_flow_table_out::TABLE_ID, id.into())?;
    if let Some(TableOwner::Firmware { entry_rx, entry_tx }) = c.fw.table(id).map(|t| t.owner) {
        // The address of the table's own side: TX for NIC TX, RX otherwise.
        let addr = if ty == TableType::NicTx {
            entry_tx
        } else {
            entry_rx
        };
        c.out
            .set(create_flow_table_out::ICM_ADDRESS_63_40, addr >> 40)?;
        c.out.set(
            create_flow_table_out::ICM_ADDRESS_39_32,
            (addr >> 32) & 0xff,
        )?;
        c.out
            .set(create_flow_table_out::ICM_ADDRESS_31_0, addr & 0xffff_ffff)?;
    }
    Ok(())
}

pub(crate) fn modify_flow_table(c: &mut Ctx) -> Result<(), CmdFail> {
    use layout::modify_flow_table_in as m;
    c.plain_op_mod()?;
    c.input.need_bits(m::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    own_vport(c, m::OTHER_VPORT)?;
    let ty = table_type(c, m::TABLE_TYPE)?;
    let id = c.input.get32(m::TABLE_ID)?;
    let select = c.input.get(m::MODIFY_FIELD_SELECT)? as u16;
    if select & !modify_field::MISS_TABLE_ID != 0 {
        return Err(FwError::Unsupported("modifying table fields other than the miss").into());
    }
    if select & modify_field::MISS_TABLE_ID != 0 {
        let miss = miss(c, m::FLOW_TABLE_CONTEXT_OFF)?;
        c.fw.modify_table_miss(c.uid, ty, id, miss)?;
    } else {
        // Nothing selected: the command only checks that the table is there.
        c.fw.table_checked(c.uid, ty, id)?;
    }
    Ok(())
}

/// Writes table `t`'s context at bit `ctx` of the output.
fn write_table_context(c: &mut Ctx, ctx: usize, t: &FlowTable) -> Result<(), CmdFail> {
    use flow_table_context as f;
    let (root_0, root_1) = match t.owner {
        TableOwner::Firmware { entry_rx, entry_tx } => (entry_rx, entry_tx),
        TableOwner::Software { root_0, root_1 } => (root_0, root_1),
    };
    let (miss_action, miss_id) = match t.miss {
        MissAction::Default => (miss_action::DEFAULT, 0),
        MissAction::Forward(id) => (miss_action::FORWARD, id),
    };
    let sw_owner = matches!(t.owner, TableOwner::Software { .. });
    let fields: [(BitField, u64); 10] = [
        (f::REFORMAT_EN, t.reformat_en.into()),
        (f::DECAP_EN, t.decap_en.into()),
        (f::SW_OWNER, sw_owner.into()),
        (f::TERMINATION_TABLE, t.termination.into()),
        (f::TABLE_MISS_ACTION, miss_action.into()),
        (f::LEVEL, t.level.into()),
        (f::LOG_SIZE, t.log_size.into()),
        (f::TABLE_MISS_ID, miss_id.into()),
        (f::SW_OWNER_ICM_ROOT_0, root_0),
        (f::SW_OWNER_ICM_ROOT_1, root_1),
    ];
    for (field, value) in fields {
        c.out.set(field.at(ctx), value)?;
    }
    Ok(())
}

pub(crate) fn query_flow_table(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(query_flow_table_in::SIZE_BITS)?;
    c.out.need_bits(query_flow_table_out::SIZE_BITS)?;
    let ty = table_type(c, query_flow_table_in::TABLE_TYPE)?;
    let id = c.input.get32(query_flow_table_in::TABLE_ID)?;
    let t = c.fw.table_checked(c.uid, ty, id)?.clone();
    write_table_context(c, query_flow_table_out::FLOW_TABLE_CONTEXT_OFF, &t)
}

pub(crate) fn destroy_flow_table(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(destroy_flow_table_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    own_vport(c, destroy_flow_table_in::OTHER_VPORT)?;
    let ty = table_type(c, destroy_flow_table_in::TABLE_TYPE)?;
    let id = c.input.get32(destroy_flow_table_in::TABLE_ID)?;
    c.fw.destroy_table(c.uid, ty, id)?;
    Ok(())
}

pub(crate) fn create_flow_group(c: &mut Ctx) -> Result<(), CmdFail> {
    use layout::create_flow_group_in as k;
    c.plain_op_mod()?;
    c.input.need_bits(k::MIN_BITS)?;
    c.out.need_bits(create_flow_group_out::SIZE_BITS)?;
    own_vport(c, create_flow_group_in::OTHER_VPORT)?;
    let ty = table_type(c, create_flow_group_in::TABLE_TYPE)?;
    let table_id = c.input.get32(create_flow_group_in::TABLE_ID)?;
    if c.input.get(k::GROUP_TYPE)? != 0 {
        return Err(FwError::Unsupported("flow groups other than match groups").into());
    }
    let mask = c.input.bytes(k::MATCH_CRITERIA_OFF, MATCH_PARAM_SIZE)?;
    let spec = GroupSpec {
        start: c.input.get32(k::START_FLOW_INDEX)?,
        end: c.input.get32(k::END_FLOW_INDEX)?,
        criteria: c.input.get(k::MATCH_CRITERIA_ENABLE)? as u8,
        mask: match_param(mask)?,
    };
    let id = c.fw.create_group(c.uid, ty, table_id, &spec)?;
    c.out.set(create_flow_group_out::GROUP_ID, id.into())
}

pub(crate) fn destroy_flow_group(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(destroy_flow_group_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    own_vport(c, destroy_flow_group_in::OTHER_VPORT)?;
    let ty = table_type(c, destroy_flow_group_in::TABLE_TYPE)?;
    let table_id = c.input.get32(destroy_flow_group_in::TABLE_ID)?;
    let group_id = c.input.get32(destroy_flow_group_in::GROUP_ID)?;
    c.fw.destroy_group(c.uid, ty, table_id, group_id)?;
    Ok(())
}

fn match_param(bytes: &[u8]) -> Result<MatchParam, CmdFail> {
    // The slice is exactly MATCH_PARAM_SIZE long, so this cannot fail; map it anyway
    // rather than unwrap.
    MatchParam::from_bytes(bytes)
        .map_err(|_| CmdFail::new(Status::BadInputLen, syndrome::INPUT_TOO_SHORT))
}

/// Decodes the action bits of a flow context: exactly one fate, and lists that agree
/// with the bits.
fn decode_fate(bits: u16, destinations: u32, counters: u32) -> Result<(), FwError> {
    let known = action::ALLOW | action::DROP | action::FWD_DEST | action::COUNT;
    if bits & !known != 0 {
        return Err(FwError::UnsupportedAction(bits & !known));
    }
    let bad = |reason| {
        Err(FwError::BadFate {
            action: bits,
            reason,
        })
    };
    let fates = [action::ALLOW, action::DROP, action::FWD_DEST]
        .iter()
        .filter(|&&b| bits & b != 0)
        .count();
    if fates != 1 {
        return bad("an entry needs exactly one of allow, drop and forward");
    }
    if (bits & action::FWD_DEST != 0) != (destinations > 0) {
        return bad("the forward bit and the destination list disagree");
    }
    if (bits & action::COUNT != 0) != (counters > 0) {
        return bad("the count bit and the counter list disagree");
    }
    Ok(())
}

/// Decodes one destination entry at bit `at`.
fn decode_destination(c: &Ctx, at: usize) -> Result<Destination, CmdFail> {
    if c.input.get(dest_format::PACKET_REFORMAT.at(at))? != 0 {
        return Err(FwError::Unsupported("per-destination packet reformat").into());
    }
    let ty = c.input.get(dest_format::DESTINATION_TYPE.at(at))? as u8;
    let id = c.input.get32(dest_format::DESTINATION_ID.at(at))?;
    Ok(match ty {
        dest_type::VPORT if id == u32::from(UPLINK_VPORT) => Destination::Uplink,
        dest_type::VPORT => {
            let n = u16::try_from(id)
                .map_err(|_| FwError::Unsupported("vport numbers above 0xffff"))?;
            Destination::Vport(n)
        }
        dest_type::UPLINK => Destination::Uplink,
        dest_type::FLOW_TABLE => Destination::FlowTable(id),
        dest_type::TIR => Destination::Tir(id),
        other => return Err(FwError::UnsupportedDestination(other.into()).into()),
    })
}

pub(crate) fn set_fte(c: &mut Ctx) -> Result<(), CmdFail> {
    use flow_context as f;
    c.input.need_bits(set_fte_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    let op = match c.op_mod {
        set_fte_op::CREATE => EntryOp::Create,
        set_fte_op::MODIFY => EntryOp::Modify,
        _ => return Err(CmdFail::new(Status::BadParam, syndrome::BAD_OP_MOD)),
    };
    own_vport(c, set_fte_in::OTHER_VPORT)?;
    let ty = table_type(c, set_fte_in::TABLE_TYPE)?;
    let table_id = c.input.get32(set_fte_in::TABLE_ID)?;
    let flow_index = c.input.get32(set_fte_in::FLOW_INDEX)?;
    let ctx = set_fte_in::FLOW_CONTEXT_OFF;
    let get = |field: BitField| c.input.get32(field.at(ctx));
    let bits = get(f::ACTION)? as u16;
    let destinations = get(f::DESTINATION_LIST_SIZE)?;
    let counters = get(f::FLOW_COUNTER_LIST_SIZE)?;
    decode_fate(bits, destinations, counters)?;
    let entry_bits = if get(f::EXTENDED_DESTINATION)? == 1 {
        extended_dest_format::SIZE_BITS
    } else {
        dest_format::SIZE_BITS
    };
    // The list: destinations first, then counters, one entry size each.
    let list = ctx + f::DESTINATION_OFF;
    let entries = u64::from(destinations) + u64::from(counters);
    let need = list as u64 + entries * entry_bits as u64;
    if need > c.input.len_bits() {
        return Err(CmdFail::new(Status::BadInputLen, syndrome::INPUT_TOO_SHORT));
    }
    let at = |i: u32| list + i as usize * entry_bits;
    let dests = (0..destinations)
        .map(|i| decode_destination(c, at(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let counter_ids = (destinations..destinations + counters)
        .map(|i| c.input.get32(flow_counter_list::FLOW_COUNTER_ID.at(at(i))))
        .collect::<Result<Vec<_>, _>>()?;
    let fate = if bits & action::DROP != 0 {
        Fate::Drop
    } else if bits & action::ALLOW != 0 {
        Fate::Allow
    } else {
        Fate::Forward(dests)
    };
    let value = c.input.bytes(
        ctx + layout::flow_context::MATCH_VALUE_OFF,
        MATCH_PARAM_SIZE,
    )?;
    let fte = Fte {
        flow_index,
        group_id: get(f::GROUP_ID)?,
        value: match_param(value)?,
        action: FteAction {
            fate,
            counters: counter_ids,
            flow_tag: get(f::FLOW_TAG)?,
        },
    };
    c.fw.set_entry(c.uid, ty, table_id, op, fte)?;
    Ok(())
}

pub(crate) fn delete_fte(c: &mut Ctx) -> Result<(), CmdFail> {
    use ste_builder::prm::delete_fte_in as d;
    c.plain_op_mod()?;
    c.input.need_bits(d::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    own_vport(c, d::OTHER_VPORT)?;
    let ty = table_type(c, d::TABLE_TYPE)?;
    let table_id = c.input.get32(d::TABLE_ID)?;
    let flow_index = c.input.get32(d::FLOW_INDEX)?;
    c.fw.delete_entry(c.uid, ty, table_id, flow_index)?;
    Ok(())
}

pub(crate) fn sync_steering(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(sync_steering_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    c.fw.sync_steering();
    Ok(())
}
