//! STE v1 (ConnectX-6 Dx) lookup builders; v2 (ConnectX-7) uses them unchanged.

use super::{BuilderKind, InitFn};

/// The init function of `kind` in v1/v2, or `None` when there is no such lookup.
pub(crate) fn init_fn(kind: BuilderKind) -> Option<InitFn> {
    match kind {
        BuilderKind::EmptyAlwaysHit => Some(super::init_empty_always_hit),
        _ => super::definers::init_fn(kind),
    }
}
