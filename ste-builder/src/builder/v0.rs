//! STE v0 (ConnectX-5) lookup builders.

use super::{BuilderKind, InitFn};

/// The init function of `kind` in v0, or `None` when v0 has no such lookup.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    match kind {
        BuilderKind::EmptyAlwaysHit => Some(super::init_empty_always_hit),
        _ => None,
    }
}
