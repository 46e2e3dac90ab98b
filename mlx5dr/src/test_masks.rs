//! Masks the unit tests of several modules share.

use std::net::Ipv4Addr;

use crate::matching::Match;

/// The outer IPv4 5-tuple: source and destination addresses, protocol and TCP ports
/// (two lookups on every STE format; the shape of issue 5's benchmark).
pub(crate) fn five_tuple_mask() -> Match {
    Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::BROADCAST)
            .ipv4_dst(Ipv4Addr::BROADCAST)
            .ip_protocol(0xff)
            .tcp_sport(0xffff)
            .tcp_dport(0xffff)
    })
}
