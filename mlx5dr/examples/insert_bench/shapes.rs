//! The rule shapes the benchmark inserts: each a matcher mask and a generator of
//! distinct rule values, drawn pseudo-randomly but reproducibly from a seed.
//!
//! Distinctness is by construction, not by checking: each value's key fields are a
//! bijection of its index (an invertible mix of the index's bits), so values `0..n`
//! never repeat, and the values the checks use as never-inserted ones (indices `n..`)
//! match none of them.

use std::net::Ipv4Addr;
use std::str::FromStr;

use mlx5dr::Match;
use ste_builder::MatchParam;

/// IP protocol numbers.
const TCP: u8 = 6;
const UDP: u8 = 17;
/// The IANA VXLAN port: the outer UDP destination of every VXLAN packet.
const VXLAN_PORT: u16 = 4789;

/// A rule shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Outer IPv4 5-tuple: IP version, protocol (TCP), source and destination
    /// address, source and destination port. The reference figures' shape.
    FiveTuple,
    /// Outer destination MAC: one STE per rule.
    Dmac,
    /// VXLAN: outer IPv4 UDP to the VXLAN port, the VNI and the inner IPv4 destination.
    /// Rules of one VNI share the STEs above the inner destination.
    Vxlan {
        /// Rules per VNI, on average.
        per_vni: u32,
    },
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Shape, String> {
        match s {
            "5tuple" => Ok(Shape::FiveTuple),
            "dmac" => Ok(Shape::Dmac),
            "vxlan" => Ok(Shape::Vxlan { per_vni: 256 }),
            other => Err(format!("unknown shape {other:?} (5tuple, dmac or vxlan)")),
        }
    }
}

impl Shape {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Shape::FiveTuple => "5tuple",
            Shape::Dmac => "dmac",
            Shape::Vxlan { .. } => "vxlan",
        }
    }

    /// The matcher's mask.
    pub fn mask(self) -> Match {
        match self {
            // The addresses set the IP version; a mask with ports must mask the whole
            // protocol (DR's rule for L4 ports).
            Shape::FiveTuple => Match::new().outer(|h| {
                h.ipv4_src(Ipv4Addr::BROADCAST)
                    .ipv4_dst(Ipv4Addr::BROADCAST)
                    .ip_protocol(0xff)
                    .tcp_sport(0xffff)
                    .tcp_dport(0xffff)
            }),
            Shape::Dmac => Match::new().outer(|h| h.dmac([0xff; 6])),
            Shape::Vxlan { .. } => Match::new()
                .outer(|h| h.ip_version(4).ip_protocol(0xff).udp_dport(0xffff))
                .tunnel(|t| t.vxlan_vni(0xff_ffff))
                .inner(|h| h.ipv4_dst(Ipv4Addr::BROADCAST)),
        }
    }

    /// The value of rule `i` of a set of `n` (`i` may be `n` or more: values never
    /// inserted), from `seed`.
    pub fn value(self, seed: u64, n: u64, i: u64) -> Match {
        match self {
            Shape::FiveTuple => {
                // Distinct (source, destination) pairs; random ports.
                let addrs = mix64(i ^ seed);
                let ports = mix64(i.wrapping_add(seed.rotate_left(17)) ^ 0x5bd1_e995);
                Match::new().outer(|h| {
                    h.ipv4_src(Ipv4Addr::from(addrs as u32))
                        .ipv4_dst(Ipv4Addr::from((addrs >> 32) as u32))
                        .ip_protocol(TCP)
                        .tcp_sport(ports as u16)
                        .tcp_dport((ports >> 16) as u16)
                })
            }
            Shape::Dmac => {
                // 47 random bits around a clear group bit: distinct unicast MACs.
                let y = mix_bits(i ^ (seed & ((1 << 47) - 1)), 47);
                let mac48 = ((y >> 40) << 41) | (y & ((1 << 40) - 1));
                let b = mac48.to_be_bytes();
                Match::new().outer(|h| h.dmac([b[2], b[3], b[4], b[5], b[6], b[7]]))
            }
            Shape::Vxlan { per_vni } => {
                // The inner destination alone is distinct per index (a bijection on 32
                // bits, so `n` must stay below 2^32); the VNI spreads the rules over
                // about n / per_vni tenants at random.
                let vnis = n.div_ceil(u64::from(per_vni.max(1))).max(1);
                let vni = 1 + mix64(i ^ seed ^ 0x9e37) % vnis.min(0xff_fffe);
                let dst = mix_bits(i ^ (seed & 0xffff_ffff), 32) as u32;
                Match::new()
                    .outer(|h| h.ip_version(4).ip_protocol(UDP).udp_dport(VXLAN_PORT))
                    .tunnel(|t| t.vxlan_vni(vni as u32))
                    .inner(|h| h.ipv4_dst(Ipv4Addr::from(dst)))
            }
        }
    }

    /// [`Shape::value`] as the raw 448-byte PRM buffer the rule is inserted with.
    pub fn raw_value(self, seed: u64, n: u64, i: u64) -> Result<MatchParam, String> {
        self.value(seed, n, i)
            .to_raw()
            .map(|r| r.param)
            .map_err(|e| format!("value {i}: {e}"))
    }
}

/// splitmix64's finaliser: a bijection on `u64` that scatters every input bit.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A bijection on the low `bits` bits (`8..=64`) of `x`: xor-shifts and odd multiplies
/// modulo `2^bits`, each invertible.
fn mix_bits(x: u64, bits: u32) -> u64 {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let half = bits / 2;
    let mut x = x & mask;
    x = (x ^ (x >> half)).wrapping_mul(0xbf58_476d_1ce4_e5b9) & mask;
    x = (x ^ (x >> (half - 1))).wrapping_mul(0x94d0_49bb_1331_11eb) & mask;
    x ^ (x >> half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn values_are_distinct_and_valid() {
        for shape in [Shape::FiveTuple, Shape::Dmac, Shape::Vxlan { per_vni: 16 }] {
            let n = 3000;
            let mut seen = HashSet::new();
            for i in 0..n + 100 {
                let v = shape.raw_value(7, n, i).unwrap();
                assert!(seen.insert(v), "{shape:?}: value {i} repeats");
            }
        }
    }

    #[test]
    fn mix_bits_is_a_bijection() {
        let mut seen = HashSet::new();
        for x in 0..1u64 << 16 {
            let y = mix_bits(x, 16);
            assert!(y < 1 << 16);
            assert!(seen.insert(y));
        }
    }
}
