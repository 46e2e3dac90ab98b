//! Definer-based lookups of v1/v2 (`def0` … `def33`): a firmware definer object selects
//! packet fields into a 32-byte match tag that is hashed whole.

use super::{BuilderKind, InitFn};

/// The init function of definer `kind`, or `None` for a non-definer builder.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    let _ = kind;
    None
}
