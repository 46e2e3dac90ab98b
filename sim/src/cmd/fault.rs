//! Command fault injection: make a chosen command fail with a chosen status and
//! syndrome, as a device in trouble would. The command is then not executed at all.

use super::status::Status;

/// Which command a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultTrigger {
    /// The command with this sequence number (0 is the first command the interface
    /// executes, whatever its opcode).
    Index(u64),
    /// Commands with this opcode.
    Opcode(u16),
    /// The command that is the `n`-th (from 0) with this opcode.
    OpcodeIndex {
        /// The opcode.
        opcode: u16,
        /// Its occurrence, from 0.
        n: u64,
    },
}

/// An injected command failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandFault {
    /// Which command.
    pub trigger: FaultTrigger,
    /// The status the command completes with (`Ok` makes a command that silently does
    /// nothing).
    pub status: Status,
    /// The syndrome it reports.
    pub syndrome: u32,
    /// How many matching commands fail before the fault is used up.
    pub times: u32,
}

impl CommandFault {
    /// The command with sequence number `index` fails.
    pub fn at_index(index: u64, status: Status, syndrome: u32) -> CommandFault {
        CommandFault {
            trigger: FaultTrigger::Index(index),
            status,
            syndrome,
            times: 1,
        }
    }

    /// Every command with `opcode` fails, until the fault is cleared.
    pub fn on_opcode(opcode: u16, status: Status, syndrome: u32) -> CommandFault {
        CommandFault {
            trigger: FaultTrigger::Opcode(opcode),
            status,
            syndrome,
            times: u32::MAX,
        }
    }

    /// The `n`-th command (from 0) with `opcode` fails.
    pub fn on_opcode_nth(opcode: u16, n: u64, status: Status, syndrome: u32) -> CommandFault {
        CommandFault {
            trigger: FaultTrigger::OpcodeIndex { opcode, n },
            status,
            syndrome,
            times: 1,
        }
    }

    /// True when this fault hits the command with sequence number `index`, the
    /// `nth_of_opcode`-th of its `opcode`.
    pub fn hits(&self, index: u64, opcode: u16, nth_of_opcode: u64) -> bool {
        if self.times == 0 {
            return false;
        }
        match self.trigger {
            FaultTrigger::Index(i) => i == index,
            FaultTrigger::Opcode(op) => op == opcode,
            FaultTrigger::OpcodeIndex { opcode: op, n } => op == opcode && n == nth_of_opcode,
        }
    }
}
