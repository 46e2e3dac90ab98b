//! The packet pipeline: walks STE chains in ICM as the NIC does, executes actions, and
//! returns a verdict and a hop-by-hop trace.
//!
//! - [`key`]: the lookup key of each lookup type, built from a packet's fields.
//! - [`action`]: STE action encodings decoded into [`Action`]s.
//! - `ste`: an STE line as the hardware reads it.
//! - [`walk`](mod@walk): the walk itself, over an [`Environment`] the device provides.

pub mod action;
pub mod key;
mod ste;
pub mod walk;

pub use action::{Action, ActionError, Anchor, FieldCopy, FieldWrite};
pub use key::{lookup_key, Key, KeyError};
pub use ste::SteError;
pub use walk::{
    walk, ApplyError, EnvError, Environment, Fate, Hop, Outcome, PacketState, TableRef, Unedited,
    Verdict, WalkConfig, WalkFault, DEFAULT_MAX_HOPS,
};
