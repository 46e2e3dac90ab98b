//! Layer-3 and layer-4 lookups: IP addresses, IPv4/IPv6 header fields, L4 ports, TCP
//! flags, sequence numbers and ICMP. Masks and values are encoded alike.

use super::{headers_and_misc, lu, sided, Lookup, Tag};
use crate::bits;
use crate::bits::BitField;
use crate::builder::common::put_tcp_flags;
use crate::builder::steps::{self, headers, Step};
use crate::builder::{put, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{
    dr_match_set_misc as misc, dr_match_set_misc3 as misc3, dr_match_spec as spec,
    ste_eth_l3_ipv4_5_tuple_v1 as five, ste_eth_l3_ipv4_misc_v1 as ipv4_misc,
    ste_eth_l3_ipv6_dst as ipv6_dst, ste_eth_l3_ipv6_src as ipv6_src,
    ste_eth_l4_misc_v1 as l4_misc, ste_eth_l4_v1 as l4, ste_icmp_v1 as icmp,
};

/// IPv6 destination address (`eth_l3_ipv6_dst`).
pub(super) struct EthL3Ipv6Dst;

impl Lookup for EthL3Ipv6Dst {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::IPV6_DES_O, lu::IPV6_DES_I)
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let headers = p.spec_mut(sb.inner);
        put(out, ipv6_dst::DST_IP_127_96, headers, spec::DST_IP_127_96);
        put(out, ipv6_dst::DST_IP_95_64, headers, spec::DST_IP_95_64);
        put(out, ipv6_dst::DST_IP_63_32, headers, spec::DST_IP_63_32);
        put(out, ipv6_dst::DST_IP_31_0, headers, spec::DST_IP_31_0);
        Ok(())
    }
}

/// IPv6 source address (`eth_l3_ipv6_src`).
pub(super) struct EthL3Ipv6Src;

impl Lookup for EthL3Ipv6Src {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::IPV6_SRC_O, lu::IPV6_SRC_I)
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let headers = p.spec_mut(sb.inner);
        put(out, ipv6_src::SRC_IP_127_96, headers, spec::SRC_IP_127_96);
        put(out, ipv6_src::SRC_IP_95_64, headers, spec::SRC_IP_95_64);
        put(out, ipv6_src::SRC_IP_63_32, headers, spec::SRC_IP_63_32);
        put(out, ipv6_src::SRC_IP_31_0, headers, spec::SRC_IP_31_0);
        Ok(())
    }
}

/// IPv4 addresses, L4 ports, protocol, fragmentation, DSCP/ECN and TCP flags
/// (`eth_l3_ipv4_5_tuple`).
pub(super) struct EthL3Ipv4FiveTuple;

impl Lookup for EthL3Ipv4FiveTuple {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL3_IPV4_5_TUPLE_O, lu::ETHL3_IPV4_5_TUPLE_I)
    }

    fn steps(inner: bool) -> Option<&'static [Step]> {
        Some(&FIVE_TUPLE_STEPS[usize::from(inner)])
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        steps::run(&FIVE_TUPLE_STEPS[usize::from(sb.inner)], sb.kind, p, out)
    }
}

/// The 5-tuple encoding of the outer and the inner headers.
static FIVE_TUPLE_STEPS: [[Step; 11]; 2] = [five_tuple_steps(false), five_tuple_steps(true)];

const fn five_tuple_steps(inner: bool) -> [Step; 11] {
    let h = headers(inner);
    [
        Step::put(five::DESTINATION_ADDRESS, h, spec::DST_IP_31_0),
        Step::put(five::SOURCE_ADDRESS, h, spec::SRC_IP_31_0),
        // TCP and UDP ports share the port fields; when both are given the UDP one is
        // written last and wins.
        Step::put(five::DESTINATION_PORT, h, spec::TCP_DPORT),
        Step::put(five::DESTINATION_PORT, h, spec::UDP_DPORT),
        Step::put(five::SOURCE_PORT, h, spec::TCP_SPORT),
        Step::put(five::SOURCE_PORT, h, spec::UDP_SPORT),
        Step::put(five::PROTOCOL, h, spec::IP_PROTOCOL),
        Step::put(five::FRAGMENTED, h, spec::FRAG),
        Step::put(five::DSCP, h, spec::IP_DSCP),
        Step::put(five::ECN, h, spec::IP_ECN),
        // The nine flag fields from NS to FIN read as one field in `tcp_flags` order
        // (see `put_tcp_flags`).
        Step::put(BitField::new(five::TCP_NS.offset, 9), h, spec::TCP_FLAGS),
    ]
}

/// IPv4 TTL and header length (`eth_l3_ipv4_misc`).
pub(super) struct EthL3Ipv4Misc;

impl Lookup for EthL3Ipv4Misc {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL3_IPV4_MISC_O, lu::ETHL3_IPV4_MISC_I)
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let headers = p.spec_mut(sb.inner);
        put(out, ipv4_misc::TIME_TO_LIVE, headers, spec::IP_TTL_HOPLIMIT);
        put(out, ipv4_misc::IHL, headers, spec::IPV4_IHL);
        Ok(())
    }
}

/// L4 ports, protocol, fragmentation, DSCP/ECN, hop limit, IPv6 flow label and TCP flags
/// (`eth_ipv6_l3_l4`).
pub(super) struct EthIpv6L3L4;

impl Lookup for EthIpv6L3L4 {
    fn lu_type(sb: &SteBuild, _: &Caps) -> u16 {
        sided(sb, lu::ETHL4_O, lu::ETHL4_I)
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let (headers, misc) = headers_and_misc(p, sb.inner);
        // As in the 5-tuple lookup, a UDP port overrides a TCP port.
        put(out, l4::DST_PORT, headers, spec::TCP_DPORT);
        put(out, l4::SRC_PORT, headers, spec::TCP_SPORT);
        put(out, l4::DST_PORT, headers, spec::UDP_DPORT);
        put(out, l4::SRC_PORT, headers, spec::UDP_SPORT);
        put(out, l4::PROTOCOL, headers, spec::IP_PROTOCOL);
        put(out, l4::FRAGMENTED, headers, spec::FRAG);
        put(out, l4::DSCP, headers, spec::IP_DSCP);
        put(out, l4::ECN, headers, spec::IP_ECN);
        put(out, l4::IPV6_HOP_LIMIT, headers, spec::IP_TTL_HOPLIMIT);
        let flow_label = if sb.inner {
            misc::INNER_IPV6_FLOW_LABEL
        } else {
            misc::OUTER_IPV6_FLOW_LABEL
        };
        put(out, l4::FLOW_LABEL, misc, flow_label);
        put_tcp_flags(out, l4::TCP_NS, headers);
        Ok(())
    }
}

/// TCP sequence and acknowledgement numbers (`eth_l4_misc`).
pub(super) struct EthL4Misc;

impl Lookup for EthL4Misc {
    /// rdma-core uses the outer lookup type for inner headers too (it selects the inner
    /// fields but never `ETHL4_MISC_I`); the vectors keep that.
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::ETHL4_MISC_O
    }

    fn tag(sb: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let (seq, ack) = if sb.inner {
            (misc3::INNER_TCP_SEQ_NUM, misc3::INNER_TCP_ACK_NUM)
        } else {
            (misc3::OUTER_TCP_SEQ_NUM, misc3::OUTER_TCP_ACK_NUM)
        };
        put(out, l4_misc::SEQ_NUM, &mut p.misc3, seq);
        put(out, l4_misc::ACK_NUM, &mut p.misc3, ack);
        Ok(())
    }
}

/// ICMPv4 or ICMPv6 type, code and header data (`icmp`). v1 matches ICMP in a fixed
/// layout and needs no flex parser.
pub(super) struct Icmp;

impl Lookup for Icmp {
    /// Like `eth_l4_misc`, always the outer lookup type.
    fn lu_type(_: &SteBuild, _: &Caps) -> u16 {
        lu::ETHL4_MISC_O
    }

    fn tag(_: &SteBuild, p: &mut MatchParam, _: &Caps, out: &mut Tag) -> Result<(), BuildError> {
        let m3 = &mut p.misc3;
        let v4 = [misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA];
        // The version is decided per parameter: any ICMPv4 field set in *this* mask or
        // value selects ICMPv4, otherwise ICMPv6. So a rule matching ICMPv4 type 0,
        // code 0 and zero data encodes (and consumes) the ICMPv6 fields instead.
        let is_v4 = v4.iter().any(|&f| bits::get(m3, f) != 0);
        let [ty, code, data] = if is_v4 {
            v4
        } else {
            [
                misc3::ICMPV6_TYPE,
                misc3::ICMPV6_CODE,
                misc3::ICMPV6_HEADER_DATA,
            ]
        };
        // Written unconditionally: a zero field still lands in the tag.
        bits::set(out, icmp::ICMP_HEADER_DATA, bits::take(m3, data));
        bits::set(out, icmp::ICMP_TYPE, bits::take(m3, ty));
        bits::set(out, icmp::ICMP_CODE, bits::take(m3, code));
        Ok(())
    }
}
