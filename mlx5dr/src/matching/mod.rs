//! The match side of the driver: what users match on, and which STE lookups match it.
//!
//! - [`typed`]: [`Match`], the typed builder for masks and values (every field of the
//!   PRM match layout, named as users know them), and [`RawMatch`], the raw 448-byte
//!   `fte_match_param` with its `match_criteria_enable`, which everything below takes.
//! - [`select`]: rdma-core's decision order for a mask's lookups (L2, IPv4/IPv6, L4,
//!   tunnels, flex parsers, registers, source port, inner headers, definers).
//! - [`chain`]: [`BuilderChain`], the checked result for one matcher on one side, and
//!   the per-rule step: value within mask, DR's pre-check, one tag per STE.
//! - [`l4`]: the checks that keep TCP/UDP port matches exact although the STE lookups
//!   compare "the L4 port" of any protocol.
//!
//! A matcher builds one [`BuilderChain`] per side of its domain ([`DomainSide::of`]);
//! each rule then asks it for its tags:
//!
//! ```
//! # use std::net::Ipv4Addr;
//! # use mlx5dr::matching::{BuilderChain, ChainCaps, DomainSide, Match};
//! # use ste_builder::{Caps, SteFormat};
//! let caps = Caps::default();
//! let chain_caps = ChainCaps {
//!     format: SteFormat::V1,
//!     ste: &caps,
//!     flex_parser_protocols: 0,
//!     flex_parser_ok_bits: false,
//!     definer_formats: 0,
//! };
//! let mask = Match::new().outer(|h| {
//!     h.ipv4_dst(Ipv4Addr::BROADCAST).ip_protocol(0xff).tcp_dport(0xffff)
//! });
//! let chain = BuilderChain::new(&mask.to_raw()?, DomainSide::NicRx, &chain_caps)?;
//! assert_eq!(chain.lu_types().collect::<Vec<_>>(), [0x0003, 0x0007]);
//!
//! let rule = Match::new().outer(|h| {
//!     h.ipv4_dst(Ipv4Addr::new(10, 0, 0, 1)).ip_protocol(6).tcp_dport(443)
//! });
//! let tags = chain.rule_tags(&rule.to_raw()?.param, &caps)?;
//! assert_eq!(tags.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod chain;
mod field;
pub mod l4;
mod plan;
pub mod select;
pub mod typed;

pub use chain::{
    BuilderChain, ChainCaps, ChainError, DomainSide, MaskBits, RuleError, RuleTags, MAX_LOOKUPS,
};
pub use field::{field_by_path, FieldValue};
pub use typed::{Headers, Inner, Layer, Mac, Match, MatchError, Meta, Outer, RawMatch, Tunnel};

#[cfg(test)]
mod tests;
