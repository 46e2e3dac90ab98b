//! Unit tests of the match side: typed fields against the PRM tables, and chains against
//! the lookups rdma-core chooses and the simulator's lookup keys.

mod typed;

#[cfg(feature = "sim")]
pub(super) mod chain;
