//! Flow-counter commands: `ALLOC_FLOW_COUNTER` (single or bulk),
//! `DEALLOC_FLOW_COUNTER`, `QUERY_FLOW_COUNTER`.

use ste_builder::prm::{
    alloc_flow_counter_in, alloc_flow_counter_out, dealloc_flow_counter_in, mbox_out,
};

use super::layout::{self, traffic_counter};
use super::status::CmdFail;
use super::Ctx;
use crate::fw::FwError;

/// Counters in a bulk of `128 * bulk` (the classic encoding, one bit set).
const BULK_FACTOR: u32 = 128;

pub(crate) fn alloc(c: &mut Ctx) -> Result<(), CmdFail> {
    use layout::alloc_flow_counter_in as k;
    c.plain_op_mod()?;
    c.input.need_bits(alloc_flow_counter_in::SIZE_BITS)?;
    c.out.need_bits(alloc_flow_counter_out::SIZE_BITS)?;
    let log_size = c.input.get32(k::FLOW_COUNTER_BULK_LOG_SIZE)?;
    let bulk = c.input.get32(k::FLOW_COUNTER_BULK)?;
    let n = match (log_size, bulk) {
        (0, 0) => 1,
        (0, b) if b.is_power_of_two() => BULK_FACTOR * b,
        (0, b) => return Err(FwError::BadCounterBulk(u64::from(b) * 128).into()),
        (l, 0) => 1 << l,
        _ => return Err(FwError::Unsupported("both bulk encodings at once").into()),
    };
    let id = c.fw.alloc_counters(c.uid, n)?;
    c.out
        .set(alloc_flow_counter_out::FLOW_COUNTER_ID, id.into())
}

pub(crate) fn dealloc(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(dealloc_flow_counter_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    let id = c.input.get32(dealloc_flow_counter_in::FLOW_COUNTER_ID)?;
    c.fw.dealloc_counters(c.uid, id)?;
    Ok(())
}

pub(crate) fn query(c: &mut Ctx) -> Result<(), CmdFail> {
    use layout::query_flow_counter_in as q;
    c.plain_op_mod()?;
    c.input.need_bits(q::SIZE_BITS)?;
    let n = c.input.get32(q::NUM_OF_COUNTERS)?.max(1);
    let stats = layout::query_flow_counter_out::FLOW_STATISTICS_OFF;
    c.out
        .need_bits(stats + n as usize * traffic_counter::SIZE_BITS)?;
    let id = c.input.get32(q::FLOW_COUNTER_ID)?;
    let clear = c.input.get(q::CLEAR)? == 1;
    let values = c.fw.query_counters(c.uid, id, n, clear)?;
    for (i, v) in values.iter().enumerate() {
        let at = stats + i * traffic_counter::SIZE_BITS;
        c.out.set(traffic_counter::PACKETS.at(at), v.packets)?;
        c.out.set(traffic_counter::OCTETS.at(at), v.octets)?;
    }
    Ok(())
}
