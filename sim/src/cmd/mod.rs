//! The PRM command interface: input mailbox bytes in, output mailbox (status, syndrome,
//! data) out, exactly as a driver hands them to DEVX (`mlx5dv_devx_general_cmd`,
//! `mlx5dv_devx_obj_create` ...).
//!
//! Every input starts with the `mbox_in` header: `opcode` (bits 0..16), `uid` (16..32)
//! and `op_mod` (48..64). Every output starts with `status` (0..8) and `syndrome`
//! (32..64). The command's fields follow at their PRM positions ([`ste_builder::prm`],
//! [`layout`]). A command reads only what its layout holds and fails with
//! `BAD_INP_LEN` / `BAD_OUTP_LEN` when a mailbox is shorter than that; no input makes
//! the interface panic.
//!
//! Commands: `QUERY_HCA_CAP`, `QUERY_NIC_VPORT_CONTEXT`, `QUERY_ESW_VPORT_CONTEXT`,
//! `QUERY_ESW_FUNCTIONS`, `CREATE/MODIFY/QUERY/DESTROY_FLOW_TABLE`,
//! `CREATE/DESTROY_FLOW_GROUP`, `SET/DELETE_FLOW_TABLE_ENTRY`, `SYNC_STEERING`,
//! `ALLOC/DEALLOC/QUERY_FLOW_COUNTER`, `CREATE/DESTROY_TIR`,
//! `ALLOC/DEALLOC_PACKET_REFORMAT_CONTEXT`. Any other opcode completes
//! with `BAD_OP`.

mod caps;
mod counter;
pub mod fault;
mod flow;
/// The PRM facts of the command interface that rdma-core's `mlx5_ifc.h` leaves out
/// (kept in `ste_builder`, which the driver shares).
pub use ste_builder::prm_kernel as layout;
mod mailbox;
mod reformat;
pub mod status;
mod tir;

use std::collections::HashMap;

use ste_builder::prm::{mbox_in, mbox_out};

use crate::fw::Firmware;
pub use fault::{CommandFault, FaultTrigger};
use layout::opcode;
use mailbox::{In, Out};
pub use status::{CmdFail, Status};

/// Size of the `mbox_out` header every output starts with.
pub const OUT_HEADER_LEN: usize = mbox_out::SIZE_BITS / 8;

/// How a command completed (also written to the output mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Completion {
    /// The opcode (0 when the input was too short to hold one).
    pub opcode: u16,
    /// Status.
    pub status: Status,
    /// Syndrome (0 on success).
    pub syndrome: u32,
    /// The status came from an injected fault; the command was not executed.
    pub injected: bool,
}

/// The one failure that cannot be reported in the output mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// The output mailbox cannot even hold the status header.
    #[error(
        "output mailbox of {len} bytes is shorter than the {OUT_HEADER_LEN}-byte status header"
    )]
    OutputTooShort {
        /// Its length.
        len: usize,
    },
}

/// What a command handler sees.
pub(crate) struct Ctx<'a> {
    pub(crate) fw: &'a mut Firmware,
    pub(crate) input: In<'a>,
    pub(crate) out: Out<'a>,
    pub(crate) op_mod: u16,
    pub(crate) uid: u16,
}

impl Ctx<'_> {
    /// Fails with `BAD_PARAM` unless `op_mod` is 0 (commands without variants).
    pub(crate) fn plain_op_mod(&self) -> Result<(), CmdFail> {
        if self.op_mod != 0 {
            return Err(CmdFail::new(Status::BadParam, status::syndrome::BAD_OP_MOD));
        }
        Ok(())
    }
}

/// The command interface of one device: executes commands against a [`Firmware`],
/// counts them, and applies injected faults.
#[derive(Debug, Default)]
pub struct CommandInterface {
    faults: Vec<CommandFault>,
    executed: u64,
    per_opcode: HashMap<u16, u64>,
}

impl CommandInterface {
    /// An interface with no faults armed.
    pub fn new() -> CommandInterface {
        CommandInterface::default()
    }

    /// Arms a fault.
    pub fn inject(&mut self, fault: CommandFault) {
        self.faults.push(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Commands received so far (the next command's sequence number).
    pub fn executed(&self) -> u64 {
        self.executed
    }

    /// Executes the command in `input` against `fw` and writes the output mailbox.
    ///
    /// The whole output is zeroed first, then filled: status, syndrome, and on success
    /// the command's output fields. Errors of the command are in the returned
    /// [`Completion`] and in the mailbox; `Err` only when `output` is shorter than the
    /// status header.
    pub fn execute(
        &mut self,
        fw: &mut Firmware,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<Completion, MailboxError> {
        if output.len() < OUT_HEADER_LEN {
            return Err(MailboxError::OutputTooShort { len: output.len() });
        }
        let opcode = match input {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 0,
        };
        let index = self.executed;
        self.executed += 1;
        let nth = self.per_opcode.entry(opcode).or_insert(0);
        let nth_of_opcode = *nth;
        *nth += 1;
        let injected = self
            .faults
            .iter_mut()
            .find(|f| f.hits(index, opcode, nth_of_opcode))
            .map(|f| {
                f.times -= 1;
                CmdFail::new(f.status, f.syndrome)
            });
        self.faults.retain(|f| f.times > 0);
        output.fill(0);
        let result = match injected {
            Some(fail) => Err(fail),
            None => run(fw, input, output),
        };
        let (status, syndrome) = match result {
            Ok(()) => (Status::Ok, 0),
            Err(f) => {
                // A failed command reports nothing but its status.
                output.fill(0);
                (f.status, f.syndrome)
            }
        };
        let mut out = Out::new(output);
        // The header fits: checked above.
        let _ = out.set(mbox_out::STATUS, status.code().into());
        let _ = out.set(mbox_out::SYNDROME, syndrome.into());
        Ok(Completion {
            opcode,
            status,
            syndrome,
            injected: injected.is_some(),
        })
    }
}

/// Executes one command with no faults armed.
pub fn execute(
    fw: &mut Firmware,
    input: &[u8],
    output: &mut [u8],
) -> Result<Completion, MailboxError> {
    CommandInterface::new().execute(fw, input, output)
}

/// Decodes the header and runs the command's handler.
fn run(fw: &mut Firmware, input: &[u8], output: &mut [u8]) -> Result<(), CmdFail> {
    let input = In::new(input);
    input.need_bits(mbox_in::SIZE_BITS)?;
    let opcode = input.get(mbox_in::OPCODE)? as u16;
    let mut c = Ctx {
        fw,
        input,
        out: Out::new(output),
        op_mod: input.get(mbox_in::OP_MOD)? as u16,
        uid: input.get(mbox_in::UID)? as u16,
    };
    match opcode {
        opcode::QUERY_HCA_CAP => caps::query_hca_cap(&mut c),
        opcode::QUERY_NIC_VPORT_CONTEXT => caps::query_nic_vport_context(&mut c),
        opcode::QUERY_ESW_VPORT_CONTEXT => caps::query_esw_vport_context(&mut c),
        opcode::QUERY_ESW_FUNCTIONS => caps::query_esw_functions(&mut c),
        opcode::CREATE_FLOW_TABLE => flow::create_flow_table(&mut c),
        opcode::MODIFY_FLOW_TABLE => flow::modify_flow_table(&mut c),
        opcode::QUERY_FLOW_TABLE => flow::query_flow_table(&mut c),
        opcode::DESTROY_FLOW_TABLE => flow::destroy_flow_table(&mut c),
        opcode::CREATE_FLOW_GROUP => flow::create_flow_group(&mut c),
        opcode::DESTROY_FLOW_GROUP => flow::destroy_flow_group(&mut c),
        opcode::SET_FLOW_TABLE_ENTRY => flow::set_fte(&mut c),
        opcode::DELETE_FLOW_TABLE_ENTRY => flow::delete_fte(&mut c),
        opcode::SYNC_STEERING => flow::sync_steering(&mut c),
        opcode::ALLOC_FLOW_COUNTER => counter::alloc(&mut c),
        opcode::DEALLOC_FLOW_COUNTER => counter::dealloc(&mut c),
        opcode::QUERY_FLOW_COUNTER => counter::query(&mut c),
        opcode::CREATE_TIR => tir::create(&mut c),
        opcode::DESTROY_TIR => tir::destroy(&mut c),
        opcode::ALLOC_PACKET_REFORMAT_CONTEXT => reformat::alloc(&mut c),
        opcode::DEALLOC_PACKET_REFORMAT_CONTEXT => reformat::dealloc(&mut c),
        _ => Err(CmdFail::new(
            Status::BadOp,
            status::syndrome::UNKNOWN_OPCODE,
        )),
    }
}

#[cfg(test)]
mod tests;
