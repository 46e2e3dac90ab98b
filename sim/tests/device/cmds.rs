//! PRM commands as a driver sends them: input mailboxes built field by field with
//! `ste_builder::prm` layouts (and the simulator's `cmd::layout` for fields rdma-core's
//! headers lack), executed through `Device::cmd`, outputs read the same way.

use sim::cmd::layout::{self, action, dest_type, opcode};
use sim::cmd::{Completion, Status};
use sim::fw::TableType;
use sim::profile::CapType;
use sim::Device;
use ste_builder::bits::{self, BitField};
use ste_builder::prm::{
    alloc_flow_counter_in, alloc_flow_counter_out, create_flow_group_in, create_flow_group_out,
    create_flow_table_in, create_flow_table_out, create_tir_out, dest_format, flow_context,
    flow_table_context, mbox_in, mbox_out, query_flow_table_in, query_flow_table_out,
    query_hca_cap_in, query_hca_cap_out, set_fte_in,
};

/// A command's completion with its whole output mailbox.
pub struct Reply {
    /// Status, syndrome, opcode.
    pub done: Completion,
    /// The output mailbox.
    pub out: Vec<u8>,
}

impl Reply {
    /// A field of the output.
    pub fn get(&self, field: BitField) -> u64 {
        bits::get(&self.out, field)
    }

    /// The output, or the status and syndrome it failed with.
    pub fn ok(self) -> Result<Reply, (Status, u32)> {
        if self.done.status == Status::Ok {
            Ok(self)
        } else {
            Err((self.done.status, self.done.syndrome))
        }
    }
}

/// An input mailbox of `bits` bits for `op`, sent by the kernel's uid 0.
pub fn input(op: u16, bits: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bits.div_ceil(8)];
    bits::set(&mut buf, mbox_in::OPCODE, op.into());
    buf
}

/// Sets a field of a mailbox.
pub fn set(buf: &mut [u8], field: BitField, value: u64) {
    bits::set(buf, field, value);
}

/// Executes `input` with an output mailbox of `out_bits` bits, and checks that the
/// output header agrees with the completion.
pub fn run(dev: &Device, input: &[u8], out_bits: usize) -> Reply {
    let mut out = vec![0u8; out_bits.div_ceil(8)];
    let done = dev
        .cmd(input, &mut out)
        .unwrap_or_else(|e| panic!("output mailbox: {e}"));
    assert_eq!(
        bits::get(&out, mbox_out::STATUS),
        u64::from(done.status.code())
    );
    assert_eq!(
        bits::get(&out, mbox_out::SYNDROME),
        u64::from(done.syndrome)
    );
    Reply { done, out }
}

/// The current capability page of `ty`.
pub fn query_cap(dev: &Device, ty: CapType) -> Result<Vec<u8>, (Status, u32)> {
    let mut inp = input(opcode::QUERY_HCA_CAP, query_hca_cap_in::SIZE_BITS);
    set(&mut inp, query_hca_cap_in::OP_MOD, ty.op_mod(true).into());
    let r = run(dev, &inp, query_hca_cap_out::SIZE_BITS).ok()?;
    Ok(r.out[query_hca_cap_out::CAPABILITY_OFF / 8..].to_vec())
}

/// `CREATE_FLOW_TABLE` of a software-owned table with ICM roots `root_0` and `root_1`.
pub fn create_sw_table(
    dev: &Device,
    ty: TableType,
    level: u8,
    root_0: u64,
    root_1: u64,
) -> Result<u32, (Status, u32)> {
    let mut inp = input(opcode::CREATE_FLOW_TABLE, create_flow_table_in::SIZE_BITS);
    set(&mut inp, create_flow_table_in::TABLE_TYPE, ty.prm().into());
    let ctx = create_flow_table_in::FLOW_TABLE_CONTEXT_OFF;
    set(&mut inp, flow_table_context::LEVEL.at(ctx), level.into());
    set(&mut inp, flow_table_context::SW_OWNER.at(ctx), 1);
    set(
        &mut inp,
        flow_table_context::SW_OWNER_ICM_ROOT_0.at(ctx),
        root_0,
    );
    set(
        &mut inp,
        flow_table_context::SW_OWNER_ICM_ROOT_1.at(ctx),
        root_1,
    );
    let r = run(dev, &inp, create_flow_table_out::SIZE_BITS).ok()?;
    Ok(r.get(create_flow_table_out::TABLE_ID) as u32)
}

/// `QUERY_FLOW_TABLE`: the table's context.
pub fn query_table(dev: &Device, ty: TableType, id: u32) -> Result<Vec<u8>, (Status, u32)> {
    let mut inp = input(opcode::QUERY_FLOW_TABLE, query_flow_table_in::SIZE_BITS);
    set(&mut inp, query_flow_table_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, query_flow_table_in::TABLE_ID, id.into());
    let r = run(dev, &inp, query_flow_table_out::SIZE_BITS).ok()?;
    Ok(r.out[query_flow_table_out::FLOW_TABLE_CONTEXT_OFF / 8..].to_vec())
}

/// `CREATE_TIR`: its number and the ICM address STEs forward to.
pub fn create_tir(dev: &Device) -> Result<(u32, u64), (Status, u32)> {
    let inp = input(opcode::CREATE_TIR, layout::create_tir_in::SIZE_BITS);
    let r = run(dev, &inp, create_tir_out::SIZE_BITS).ok()?;
    let addr = r.get(create_tir_out::ICM_ADDRESS_63_40) << 40
        | r.get(create_tir_out::ICM_ADDRESS_39_32) << 32
        | r.get(create_tir_out::ICM_ADDRESS_31_0);
    Ok((r.get(create_tir_out::TIRN) as u32, addr))
}

/// `ALLOC_FLOW_COUNTER` of one counter.
pub fn alloc_counter(dev: &Device) -> Result<u32, (Status, u32)> {
    let inp = input(opcode::ALLOC_FLOW_COUNTER, alloc_flow_counter_in::SIZE_BITS);
    let r = run(dev, &inp, alloc_flow_counter_out::SIZE_BITS).ok()?;
    Ok(r.get(alloc_flow_counter_out::FLOW_COUNTER_ID) as u32)
}

/// `QUERY_FLOW_COUNTER` of one counter: packets and bytes.
pub fn query_counter(dev: &Device, id: u32) -> Result<(u64, u64), (Status, u32)> {
    use layout::{query_flow_counter_in as q, query_flow_counter_out, traffic_counter as t};
    let mut inp = input(opcode::QUERY_FLOW_COUNTER, q::SIZE_BITS);
    set(&mut inp, q::FLOW_COUNTER_ID, id.into());
    let stats = query_flow_counter_out::FLOW_STATISTICS_OFF;
    let r = run(dev, &inp, stats + t::SIZE_BITS).ok()?;
    Ok((r.get(t::PACKETS.at(stats)), r.get(t::OCTETS.at(stats))))
}

/// Makes every packet entering table `table` (firmware-owned, e.g. the kernel's root)
/// go to table `to`: a match-all group of one entry and an entry forwarding to `to`.
/// Returns the entry's flow index.
pub fn forward_all(dev: &Device, ty: TableType, table: u32, to: u32) -> Result<u32, (Status, u32)> {
    use layout::create_flow_group_in as k;
    let mut inp = input(opcode::CREATE_FLOW_GROUP, create_flow_group_in::SIZE_BITS);
    set(&mut inp, create_flow_group_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, create_flow_group_in::TABLE_ID, table.into());
    set(&mut inp, k::START_FLOW_INDEX, 0);
    set(&mut inp, k::END_FLOW_INDEX, 0);
    let group = run(dev, &inp, create_flow_group_out::SIZE_BITS)
        .ok()?
        .get(create_flow_group_out::GROUP_ID);

    let mut inp = input(
        opcode::SET_FLOW_TABLE_ENTRY,
        set_fte_in::SIZE_BITS + dest_format::SIZE_BITS,
    );
    set(&mut inp, set_fte_in::TABLE_TYPE, ty.prm().into());
    set(&mut inp, set_fte_in::TABLE_ID, table.into());
    set(&mut inp, set_fte_in::FLOW_INDEX, 0);
    let ctx = set_fte_in::FLOW_CONTEXT_OFF;
    set(&mut inp, flow_context::GROUP_ID.at(ctx), group);
    set(
        &mut inp,
        flow_context::ACTION.at(ctx),
        action::FWD_DEST.into(),
    );
    set(&mut inp, flow_context::DESTINATION_LIST_SIZE.at(ctx), 1);
    let dest = ctx + flow_context::DESTINATION_OFF;
    set(
        &mut inp,
        dest_format::DESTINATION_TYPE.at(dest),
        dest_type::FLOW_TABLE.into(),
    );
    set(&mut inp, dest_format::DESTINATION_ID.at(dest), to.into());
    run(dev, &inp, mbox_out::SIZE_BITS).ok()?;
    Ok(0)
}
