//! Packet reformat commands: `ALLOC_PACKET_REFORMAT_CONTEXT` and
//! `DEALLOC_PACKET_REFORMAT_CONTEXT`.

use ste_builder::prm::mbox_out;

use super::layout::{
    alloc_packet_reformat_context_in as alloc_in, alloc_packet_reformat_context_out as alloc_out,
    dealloc_packet_reformat_context_in as dealloc_in,
};
use super::status::CmdFail;
use super::Ctx;

pub(crate) fn alloc(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(alloc_in::SIZE_BITS)?;
    c.out.need_bits(alloc_out::SIZE_BITS)?;
    let reformat_type = c.input.get(alloc_in::REFORMAT_TYPE)? as u8;
    let size = c.input.get(alloc_in::REFORMAT_DATA_SIZE)? as usize;
    // The data must be in the mailbox: a size beyond the input is a short input.
    let data = c.input.bytes(alloc_in::REFORMAT_DATA_OFF, size)?;
    let id = c.fw.alloc_reformat(c.uid, reformat_type, data)?;
    c.out.set(alloc_out::PACKET_REFORMAT_ID, id.into())
}

pub(crate) fn dealloc(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(dealloc_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    let id = c.input.get32(dealloc_in::PACKET_REFORMAT_ID)?;
    c.fw.dealloc_reformat(c.uid, id)?;
    Ok(())
}
