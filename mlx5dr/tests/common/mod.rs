//! What several integration tests share.

use std::net::Ipv4Addr;

use std::sync::Arc;

use mlx5dr::{ActionList, BatchRule, Match};
use ste_builder::MatchParam;

/// The outer IPv4 5-tuple: source and destination addresses, protocol, TCP ports (two
/// lookups on every STE format).
pub fn five_tuple_mask() -> Match {
    Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::BROADCAST)
            .ipv4_dst(Ipv4Addr::BROADCAST)
            .ip_protocol(0xff)
            .tcp_sport(0xffff)
            .tcp_dport(0xffff)
    })
}

/// The source address of [`five_tuple_spread`]`(i)`: spread over the space (a
/// multiplicative hash of `i`), distinct for every `i`.
#[allow(dead_code)] // not every test crate uses it
pub fn spread_src(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)))
}

/// Distinct raw values for [`five_tuple_mask`]: source addresses from [`spread_src`],
/// source ports cycling through 5 000.
#[allow(dead_code)] // not every test crate uses it
pub fn five_tuple_spread(i: u32) -> MatchParam {
    Match::new()
        .outer(|h| {
            h.ipv4_src(spread_src(i))
                .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
                .ip_protocol(6)
                .tcp_sport(1000 + (i as u16 % 5000))
                .tcp_dport(80)
        })
        .to_raw()
        .unwrap()
        .param
}

/// A batch of `values`, value `i` with `lists[i % lists.len()]`.
#[allow(dead_code)] // not every test crate uses it
pub fn round_robin<'a>(
    values: &'a [MatchParam],
    lists: &'a [Arc<ActionList>],
) -> Vec<BatchRule<'a>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (v, &lists[i % lists.len()]))
        .collect()
}
