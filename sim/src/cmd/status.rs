//! Command completion status and syndromes.
//!
//! Every command's output mailbox starts with `status` (8 bits) and `syndrome` (32 bits,
//! at bit 0x20). The status codes are the PRM's. Syndromes on a real device are opaque
//! firmware values; the simulator's are its own, one per refusal reason, so that a test
//! can tell why a command failed. They all have 0x5e in the top byte.

use crate::fw::FwError;

/// A PRM command status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok,
    /// Internal error.
    InternalError,
    /// Unknown or unsupported opcode.
    BadOp,
    /// A parameter is invalid.
    BadParam,
    /// The system state does not allow the command.
    BadSysState,
    /// The resource named does not exist.
    BadResource,
    /// The resource is in use.
    ResourceBusy,
    /// A limit was exceeded.
    Limit,
    /// The resource is in the wrong state.
    BadResState,
    /// Bad index.
    BadIndex,
    /// Out of resources.
    NoResources,
    /// The input mailbox is too short.
    BadInputLen,
    /// The output mailbox is too short.
    BadOutputLen,
}

impl Status {
    /// The PRM code.
    pub const fn code(self) -> u8 {
        match self {
            Status::Ok => 0x0,
            Status::InternalError => 0x1,
            Status::BadOp => 0x2,
            Status::BadParam => 0x3,
            Status::BadSysState => 0x4,
            Status::BadResource => 0x5,
            Status::ResourceBusy => 0x6,
            Status::Limit => 0x8,
            Status::BadResState => 0x9,
            Status::BadIndex => 0xa,
            Status::NoResources => 0xf,
            Status::BadInputLen => 0x50,
            Status::BadOutputLen => 0x51,
        }
    }

    /// The status with PRM code `code`.
    pub fn from_code(code: u8) -> Option<Status> {
        const ALL: [Status; 13] = [
            Status::Ok,
            Status::InternalError,
            Status::BadOp,
            Status::BadParam,
            Status::BadSysState,
            Status::BadResource,
            Status::ResourceBusy,
            Status::Limit,
            Status::BadResState,
            Status::BadIndex,
            Status::NoResources,
            Status::BadInputLen,
            Status::BadOutputLen,
        ];
        ALL.into_iter().find(|s| s.code() == code)
    }
}

/// The simulator's syndromes for failures of the command layer itself.
pub mod syndrome {
    /// The opcode is not one the device executes.
    pub const UNKNOWN_OPCODE: u32 = 0x5e00_0001;
    /// The `op_mod` is not valid for the opcode.
    pub const BAD_OP_MOD: u32 = 0x5e00_0002;
    /// The input mailbox is shorter than the command's layout.
    pub const INPUT_TOO_SHORT: u32 = 0x5e00_0003;
    /// The output mailbox is shorter than the command's output.
    pub const OUTPUT_TOO_SHORT: u32 = 0x5e00_0004;
    /// The capability type is unknown.
    pub const BAD_CAP_TYPE: u32 = 0x5e00_0005;
    /// `other_function` / `other_vport` names a function that does not exist.
    pub const NO_SUCH_FUNCTION: u32 = 0x5e00_0006;
}

/// A failed command: its status and syndrome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("command failed with status {status:?}, syndrome {syndrome:#x}")]
pub struct CmdFail {
    /// Status.
    pub status: Status,
    /// Syndrome.
    pub syndrome: u32,
}

impl CmdFail {
    /// A failure.
    pub const fn new(status: Status, syndrome: u32) -> CmdFail {
        CmdFail { status, syndrome }
    }
}

impl From<&FwError> for CmdFail {
    fn from(e: &FwError) -> CmdFail {
        use FwError as E;
        use Status::*;
        let (status, n) = match e {
            E::UnsupportedTableType(_) => (BadParam, 0x01),
            E::TableTypeUnavailable(_) => (BadParam, 0x02),
            E::NoSuchTable(_) => (BadResource, 0x03),
            E::TableTypeMismatch { .. } => (BadParam, 0x04),
            E::LevelTooHigh { .. } => (BadParam, 0x05),
            E::TableTooLarge { .. } => (BadParam, 0x06),
            E::SwOwnerUnsupported(_) => (BadParam, 0x07),
            E::BadRootAddress(_) => (BadParam, 0x08),
            E::BadMissAction(_) => (BadParam, 0x09),
            E::NotFirmwareOwned(_) => (BadParam, 0x0a),
            E::RootTable(_) => (BadParam, 0x0b),
            E::BadLevelOrder { .. } => (BadParam, 0x0c),
            E::TableBusy { .. } => (ResourceBusy, 0x0d),
            E::NoSuchGroup { .. } => (BadResource, 0x0e),
            E::BadGroupRange { .. } => (BadParam, 0x0f),
            E::GroupOverlap { .. } => (BadParam, 0x10),
            E::BadCriteria(_) => (BadParam, 0x11),
            E::GroupBusy(_) => (ResourceBusy, 0x12),
            E::IndexOutsideGroup { .. } => (BadParam, 0x13),
            E::EntryExists(_) => (BadParam, 0x14),
            E::NoSuchEntry { .. } => (BadResource, 0x15),
            E::UnsupportedAction(_) => (BadParam, 0x16),
            E::BadFate { .. } => (BadParam, 0x17),
            E::UnsupportedDestination(_) => (BadParam, 0x18),
            E::DestinationNotAllowed { .. } => (BadParam, 0x19),
            E::TooMany { .. } => (BadParam, 0x1a),
            E::Unsupported(_) => (BadParam, 0x1b),
            E::NoSuchVport(_) => (BadParam, 0x1c),
            E::NotEswitchManager => (BadParam, 0x1d),
            E::NoSuchTir(_) => (BadResource, 0x1e),
            E::TirOwnedByQp { .. } => (BadParam, 0x1f),
            E::TirBusy(_) => (ResourceBusy, 0x20),
            E::NoSuchQp(_) => (BadResource, 0x21),
            E::NoSuchCounter(_) => (BadResource, 0x22),
            E::CounterBusy(_) => (ResourceBusy, 0x23),
            E::BadCounterBulk(_) => (BadParam, 0x24),
            E::Exhausted(_) => (NoResources, 0x25),
            E::UidMismatch { .. } => (BadParam, 0x26),
            E::WalkTooLong(_) => (InternalError, 0x27),
            E::NoSuchReformat(_) => (BadResource, 0x28),
            E::BadReformatSize(_) => (BadParam, 0x29),
        };
        CmdFail::new(status, 0x5e01_0000 | n)
    }
}

impl From<FwError> for CmdFail {
    fn from(e: FwError) -> CmdFail {
        CmdFail::from(&e)
    }
}
