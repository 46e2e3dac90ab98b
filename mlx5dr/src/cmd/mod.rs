//! PRM commands over the seam: building input mailboxes, executing them, and turning a
//! failure into an error that names the command, its status and its syndrome.
//!
//! Mailboxes are plain byte buffers laid out by `ste_builder::prm` (a field is a PRM
//! bit offset and width). Commands are the slow path: buffers are allocated per call.

pub mod opcode;

use ste_builder::bits::{self, BitField};
use ste_builder::prm::mbox_in;

use crate::device::{Device, DeviceError};

/// A PRM command status (`mbox_out.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmdStatus {
    /// 0x01: internal firmware error.
    InternalError,
    /// 0x02: the opcode is unknown or not supported.
    BadOp,
    /// 0x03: a parameter is invalid.
    BadParam,
    /// 0x04: the system state does not allow the command.
    BadSysState,
    /// 0x05: a resource named does not exist.
    BadResource,
    /// 0x06: the resource is busy.
    ResourceBusy,
    /// 0x08: a limit was exceeded.
    LimitExceeded,
    /// 0x09: the resource is in the wrong state.
    BadResourceState,
    /// 0x0a: bad index.
    BadIndex,
    /// 0x0f: out of resources.
    NoResources,
    /// 0x50: the input mailbox is too short.
    BadInputLen,
    /// 0x51: the output mailbox is too short.
    BadOutputLen,
    /// Any other non-zero status.
    Other(u8),
}

impl CmdStatus {
    /// The status of a non-zero status byte.
    pub const fn from_code(code: u8) -> CmdStatus {
        match code {
            0x01 => CmdStatus::InternalError,
            0x02 => CmdStatus::BadOp,
            0x03 => CmdStatus::BadParam,
            0x04 => CmdStatus::BadSysState,
            0x05 => CmdStatus::BadResource,
            0x06 => CmdStatus::ResourceBusy,
            0x08 => CmdStatus::LimitExceeded,
            0x09 => CmdStatus::BadResourceState,
            0x0a => CmdStatus::BadIndex,
            0x0f => CmdStatus::NoResources,
            0x50 => CmdStatus::BadInputLen,
            0x51 => CmdStatus::BadOutputLen,
            other => CmdStatus::Other(other),
        }
    }

    /// The status byte.
    pub const fn code(self) -> u8 {
        match self {
            CmdStatus::InternalError => 0x01,
            CmdStatus::BadOp => 0x02,
            CmdStatus::BadParam => 0x03,
            CmdStatus::BadSysState => 0x04,
            CmdStatus::BadResource => 0x05,
            CmdStatus::ResourceBusy => 0x06,
            CmdStatus::LimitExceeded => 0x08,
            CmdStatus::BadResourceState => 0x09,
            CmdStatus::BadIndex => 0x0a,
            CmdStatus::NoResources => 0x0f,
            CmdStatus::BadInputLen => 0x50,
            CmdStatus::BadOutputLen => 0x51,
            CmdStatus::Other(code) => code,
        }
    }
}

/// A command that failed: which one, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The device executed the command and refused it.
    #[error("{command} (op_mod {op_mod:#x}) failed: status {status:?} ({code:#x}), syndrome {syndrome:#x}", code = status.code())]
    Failed {
        /// The command's name, e.g. `QUERY_HCA_CAP`.
        command: &'static str,
        /// Its `op_mod`.
        op_mod: u16,
        /// The status.
        status: CmdStatus,
        /// The syndrome.
        syndrome: u32,
    },
    /// The command could not be exchanged with the device.
    #[error("{command}: {source}")]
    Device {
        /// The command's name.
        command: &'static str,
        /// What the device layer reported.
        source: DeviceError,
    },
}

impl CmdError {
    /// The command's name.
    pub fn command(&self) -> &'static str {
        match self {
            CmdError::Failed { command, .. } | CmdError::Device { command, .. } => command,
        }
    }

    /// The status, when the device refused the command.
    pub fn status(&self) -> Option<CmdStatus> {
        match self {
            CmdError::Failed { status, .. } => Some(*status),
            CmdError::Device { .. } => None,
        }
    }
}

/// An input mailbox being built: the `mbox_in` header plus the command's fields.
#[derive(Debug, Clone)]
pub struct CmdIn {
    name: &'static str,
    op_mod: u16,
    buf: Vec<u8>,
}

impl CmdIn {
    /// A zeroed input of `size_bits` (the command layout's size) with `opcode` set.
    pub fn new(name: &'static str, opcode: u16, size_bits: usize) -> CmdIn {
        let mut buf = vec![0u8; size_bits.div_ceil(8).max(mbox_in::SIZE_BITS / 8)];
        bits::set(&mut buf, mbox_in::OPCODE, opcode.into());
        CmdIn {
            name,
            op_mod: 0,
            buf,
        }
    }

    /// Sets the header's `op_mod`.
    pub fn op_mod(mut self, op_mod: u16) -> CmdIn {
        bits::set(&mut self.buf, mbox_in::OP_MOD, op_mod.into());
        self.op_mod = op_mod;
        self
    }

    /// Sets `field` (a field of the command's layout, which lies inside the buffer).
    pub fn set(mut self, field: BitField, value: u64) -> CmdIn {
        bits::set(&mut self.buf, field, value);
        self
    }

    /// The mailbox bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The command's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The error this command reports for a device failure: a non-zero status names
    /// the command, op_mod, status and syndrome.
    pub(crate) fn error(&self, e: DeviceError) -> CmdError {
        match e {
            DeviceError::CommandStatus { status, syndrome } => CmdError::Failed {
                command: self.name,
                op_mod: self.op_mod,
                status: CmdStatus::from_code(status),
                syndrome,
            },
            source => CmdError::Device {
                command: self.name,
                source,
            },
        }
    }

    /// Executes the command (one that creates nothing) and returns its output mailbox of
    /// `out_bits` bits.
    pub fn exec(&self, dev: &dyn Device, out_bits: usize) -> Result<CmdOut, CmdError> {
        let mut out = vec![0u8; out_bits.div_ceil(8)];
        dev.command(&self.buf, &mut out)
            .map_err(|e| self.error(e))?;
        Ok(CmdOut { buf: out })
    }
}

/// A successful command's output mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOut {
    buf: Vec<u8>,
}

impl CmdOut {
    /// Reads `field` (at most 64 bits) of the output layout. A field past the end of the
    /// mailbox reads as 0, as an all-zero reserved area would.
    pub fn get(&self, field: BitField) -> u64 {
        if field.end_byte() > self.buf.len() || field.width > 64 {
            return 0;
        }
        bits::get(&self.buf, field)
    }

    /// Reads a one-bit flag.
    pub fn flag(&self, field: BitField) -> bool {
        self.get(field) != 0
    }

    /// The mailbox bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::device::sim::SimBackend;
    use ::sim::cmd::{CommandFault, Status};
    use ::sim::profile::DeviceModel;
    use ste_builder::prm::{query_hca_cap_in, query_hca_cap_out};

    #[test]
    fn status_codes_round_trip() {
        for code in 1..=0xffu8 {
            assert_eq!(CmdStatus::from_code(code).code(), code);
        }
        assert_eq!(CmdStatus::from_code(0x3), CmdStatus::BadParam);
    }

    #[test]
    fn failures_name_command_status_and_syndrome() {
        let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
        be.sim().inject_command_fault(CommandFault::on_opcode_nth(
            opcode::QUERY_HCA_CAP,
            0,
            Status::InternalError,
            0x1234_5678,
        ));
        let cmd = CmdIn::new(
            "QUERY_HCA_CAP",
            opcode::QUERY_HCA_CAP,
            query_hca_cap_in::SIZE_BITS,
        )
        .op_mod(opcode::cap::GENERAL | opcode::cap::CURRENT);
        let err = cmd.exec(&be, query_hca_cap_out::SIZE_BITS).unwrap_err();
        assert_eq!(
            err,
            CmdError::Failed {
                command: "QUERY_HCA_CAP",
                op_mod: 1,
                status: CmdStatus::InternalError,
                syndrome: 0x1234_5678
            }
        );
        assert_eq!(
            err.to_string(),
            "QUERY_HCA_CAP (op_mod 0x1) failed: status InternalError (0x1), syndrome 0x12345678"
        );
        // The fault is used up: the same command now succeeds.
        let out = cmd.exec(&be, query_hca_cap_out::SIZE_BITS).unwrap();
        assert_eq!(out.bytes().len(), query_hca_cap_out::SIZE_BITS / 8);
        // An output too short for the status header never reaches the firmware.
        let err = cmd.exec(&be, 32).unwrap_err();
        assert!(matches!(
            err,
            CmdError::Device {
                command: "QUERY_HCA_CAP",
                source: DeviceError::Mailbox(_)
            }
        ));
    }
}
