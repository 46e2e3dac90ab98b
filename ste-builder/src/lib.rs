//! # ste-builder: the wire formats of ConnectX packet steering
//!
//! Pure functions over bytes, matching rdma-core's software steering (`mlx5dv_dr`) bit
//! for bit:
//!
//! - [`bits`]: PRM bit fields; [`prm`]: the PRM layouts as bit-field constants.
//! - [`match_param`]: the 448-byte match parameter users give for masks and values, the
//!   copy rules DR applies to it, and its checks.
//! - [`hash`]: the steering CRC and hash-table index.
//! - [`ste`]: STE formats v0/v1/v2 and their control words.
//! - [`builder`]: lookup builders (mask → lookup type, bit mask; value → tag).
//! - [`caps`]: the device capabilities these encodings depend on.
//!
//! No I/O and no `unsafe`: this crate can be fuzzed and property-tested in isolation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod bits;
pub mod builder;
pub mod caps;
pub mod hash;
pub mod match_param;
pub mod modify_header;
pub mod prm;
pub mod prm_kernel;
pub mod ste;
pub mod wqe;

pub use builder::{BuildError, BuilderKind, SteBuild};
pub use caps::{Caps, FlexParserIds, VportCap};
pub use hash::HtblType;
pub use match_param::{MatchCriteria, MatchParam, Section};
pub use ste::{Ste, SteCtrl, SteFormat};
