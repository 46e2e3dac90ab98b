//! What several integration tests share.

use std::net::Ipv4Addr;

use mlx5dr::Match;

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
