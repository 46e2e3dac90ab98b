//! Firmware objects over the seam: a create command whose output names the object, the
//! destroy command that goes with it.
//!
//! [`Device::create_object`] and [`Device::destroy_object`] are kept apart from plain
//! commands because DEVX creates objects through their own call; this module turns their
//! failures into the same [`CmdError`] that names the command, as [`CmdIn::exec`] does.

use ste_builder::bits;

use crate::cmd::{CmdError, CmdIn};
use crate::device::{Device, ObjectId};

/// Creates the object `cmd` describes; returns its handle and the output mailbox of
/// `out_bits` bits.
pub(crate) fn create(
    dev: &dyn Device,
    cmd: &CmdIn,
    out_bits: usize,
) -> Result<(ObjectId, Vec<u8>), CmdError> {
    let mut out = vec![0u8; out_bits.div_ceil(8)];
    let obj = dev
        .create_object(cmd.bytes(), &mut out)
        .map_err(|e| cmd.error(e))?;
    Ok((obj, out))
}

/// Destroys `obj` with its destroy command `cmd` (the handle is gone even on error).
pub(crate) fn destroy(dev: &dyn Device, obj: ObjectId, cmd: &CmdIn) -> Result<(), CmdError> {
    dev.destroy_object(obj, cmd.bytes())
        .map_err(|e| cmd.error(e))
}

/// Reads `field` of an output mailbox (0 past its end, like [`crate::cmd::CmdOut::get`]).
pub(crate) fn out_get(out: &[u8], field: bits::BitField) -> u64 {
    if field.end_byte() > out.len() || field.width > 64 {
        return 0;
    }
    bits::get(out, field)
}
