//! Bounds-checked access to command mailboxes.
//!
//! Every read and write checks the buffer's length, so a short or odd mailbox becomes a
//! `BAD_INP_LEN` / `BAD_OUTP_LEN` status instead of a panic.

use ste_builder::bits::{self, BitField};

use super::status::{syndrome, CmdFail, Status};

const SHORT_INPUT: CmdFail = CmdFail::new(Status::BadInputLen, syndrome::INPUT_TOO_SHORT);
const SHORT_OUTPUT: CmdFail = CmdFail::new(Status::BadOutputLen, syndrome::OUTPUT_TOO_SHORT);

/// The input mailbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct In<'a> {
    buf: &'a [u8],
}

impl<'a> In<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> In<'a> {
        In { buf }
    }

    /// Fails unless the mailbox has at least `bits` bits.
    pub(crate) fn need_bits(&self, bits: usize) -> Result<(), CmdFail> {
        if self.buf.len() * 8 < bits {
            return Err(SHORT_INPUT);
        }
        Ok(())
    }

    /// The mailbox length in bits.
    pub(crate) fn len_bits(&self) -> u64 {
        self.buf.len() as u64 * 8
    }

    /// Reads `field` (which may be wider than 32 bits, up to 64).
    pub(crate) fn get(&self, field: BitField) -> Result<u64, CmdFail> {
        if field.end_byte() > self.buf.len() || field.width > 64 {
            return Err(SHORT_INPUT);
        }
        Ok(bits::get(self.buf, field))
    }

    /// Reads a 32-bit or narrower field as `u32`.
    pub(crate) fn get32(&self, field: BitField) -> Result<u32, CmdFail> {
        Ok(self.get(field)? as u32)
    }

    /// The `len` bytes starting at bit `off_bits` (which is byte aligned in every layout
    /// this is used for).
    pub(crate) fn bytes(&self, off_bits: usize, len: usize) -> Result<&'a [u8], CmdFail> {
        let start = off_bits / 8;
        let end = start.checked_add(len).ok_or(SHORT_INPUT)?;
        self.buf.get(start..end).ok_or(SHORT_INPUT)
    }
}

/// The output mailbox.
#[derive(Debug)]
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Out<'a> {
        Out { buf }
    }

    /// Fails unless the mailbox has room for `bits` bits.
    pub(crate) fn need_bits(&self, bits: usize) -> Result<(), CmdFail> {
        if self.buf.len() * 8 < bits {
            return Err(SHORT_OUTPUT);
        }
        Ok(())
    }

    /// Writes `field`.
    pub(crate) fn set(&mut self, field: BitField, value: u64) -> Result<(), CmdFail> {
        if field.end_byte() > self.buf.len() || field.width > 64 {
            return Err(SHORT_OUTPUT);
        }
        bits::set(self.buf, field, value);
        Ok(())
    }

    /// Copies `data` to bit `off_bits` (byte aligned).
    pub(crate) fn write(&mut self, off_bits: usize, data: &[u8]) -> Result<(), CmdFail> {
        let start = off_bits / 8;
        let end = start.checked_add(data.len()).ok_or(SHORT_OUTPUT)?;
        self.buf
            .get_mut(start..end)
            .ok_or(SHORT_OUTPUT)?
            .copy_from_slice(data);
        Ok(())
    }
}
