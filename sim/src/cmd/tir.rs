//! TIR commands: `CREATE_TIR` (the context is accepted as is: the simulator delivers to
//! the TIR itself, not to its RQs) and `DESTROY_TIR`.

use ste_builder::prm::{create_tir_out, destroy_tir_in, mbox_out};

use super::layout;
use super::status::CmdFail;
use super::Ctx;

pub(crate) fn create(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(layout::create_tir_in::SIZE_BITS)?;
    c.out.need_bits(create_tir_out::SIZE_BITS)?;
    let tir = c.fw.create_tir(c.uid)?;
    c.out.set(create_tir_out::TIRN, tir.tirn.into())?;
    c.out
        .set(create_tir_out::ICM_ADDRESS_63_40, tir.icm_addr >> 40)?;
    c.out.set(
        create_tir_out::ICM_ADDRESS_39_32,
        (tir.icm_addr >> 32) & 0xff,
    )?;
    c.out
        .set(create_tir_out::ICM_ADDRESS_31_0, tir.icm_addr & 0xffff_ffff)
}

pub(crate) fn destroy(c: &mut Ctx) -> Result<(), CmdFail> {
    c.plain_op_mod()?;
    c.input.need_bits(destroy_tir_in::SIZE_BITS)?;
    c.out.need_bits(mbox_out::SIZE_BITS)?;
    let tirn = c.input.get32(destroy_tir_in::TIRN)?;
    c.fw.destroy_tir(c.uid, tirn)?;
    Ok(())
}
