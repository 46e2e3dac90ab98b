//! v0 L3 and L4 lookups: IPv6 addresses, the IPv4 5-tuple, IPv4 TTL/IHL, the IPv6
//! L3/L4 lookup and TCP sequence numbers.

use super::{init_by_tag, lu, spec_and_misc};
use crate::builder::common::put_tcp_flags;
use crate::builder::{put, BuildError, SteBuild};
use crate::caps::Caps;
use crate::match_param::MatchParam;
use crate::prm::{dr_match_set_misc as misc, dr_match_set_misc3 as misc3, dr_match_spec as spec};
use crate::prm::{ste_eth_l3_ipv4_5_tuple as five, ste_eth_l3_ipv4_misc as ipv4_misc};
use crate::prm::{ste_eth_l3_ipv6_dst as ipv6_dst, ste_eth_l3_ipv6_src as ipv6_src};
use crate::prm::{ste_eth_l4 as l4, ste_eth_l4_misc as l4_misc};

/// IPv6 destination address (`eth_l3_ipv6_dst`).
pub(super) fn init_eth_l3_ipv6_dst(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL3_IPV6_DST.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_l3_ipv6_dst)
}

fn tag_eth_l3_ipv6_dst(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = value.spec_mut(sb.inner);
    put(tag, ipv6_dst::DST_IP_127_96, v, spec::DST_IP_127_96);
    put(tag, ipv6_dst::DST_IP_95_64, v, spec::DST_IP_95_64);
    put(tag, ipv6_dst::DST_IP_63_32, v, spec::DST_IP_63_32);
    put(tag, ipv6_dst::DST_IP_31_0, v, spec::DST_IP_31_0);
    Ok(())
}

/// IPv6 source address (`eth_l3_ipv6_src`).
pub(super) fn init_eth_l3_ipv6_src(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL3_IPV6_SRC.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_l3_ipv6_src)
}

fn tag_eth_l3_ipv6_src(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = value.spec_mut(sb.inner);
    put(tag, ipv6_src::SRC_IP_127_96, v, spec::SRC_IP_127_96);
    put(tag, ipv6_src::SRC_IP_95_64, v, spec::SRC_IP_95_64);
    put(tag, ipv6_src::SRC_IP_63_32, v, spec::SRC_IP_63_32);
    put(tag, ipv6_src::SRC_IP_31_0, v, spec::SRC_IP_31_0);
    Ok(())
}

/// IPv4 addresses, L4 ports, protocol, fragment bit, DSCP/ECN and TCP flags
/// (`eth_l3_ipv4_5_tuple`). TCP and UDP ports share the port fields.
pub(super) fn init_eth_l3_ipv4_5_tuple(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL3_IPV4_5_TUPLE.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_l3_ipv4_5_tuple)
}

fn tag_eth_l3_ipv4_5_tuple(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = value.spec_mut(sb.inner);
    put(tag, five::DESTINATION_ADDRESS, v, spec::DST_IP_31_0);
    put(tag, five::SOURCE_ADDRESS, v, spec::SRC_IP_31_0);
    // Where both TCP and UDP ports are given, the UDP one is written last and wins.
    put(tag, five::DESTINATION_PORT, v, spec::TCP_DPORT);
    put(tag, five::DESTINATION_PORT, v, spec::UDP_DPORT);
    put(tag, five::SOURCE_PORT, v, spec::TCP_SPORT);
    put(tag, five::SOURCE_PORT, v, spec::UDP_SPORT);
    put(tag, five::PROTOCOL, v, spec::IP_PROTOCOL);
    put(tag, five::FRAGMENTED, v, spec::FRAG);
    put(tag, five::DSCP, v, spec::IP_DSCP);
    put(tag, five::ECN, v, spec::IP_ECN);
    put_tcp_flags(tag, five::TCP_NS, v);
    Ok(())
}

/// IPv4 TTL and header length (`eth_l3_ipv4_misc`).
pub(super) fn init_eth_l3_ipv4_misc(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL3_IPV4_MISC.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_l3_ipv4_misc)
}

fn tag_eth_l3_ipv4_misc(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let v = value.spec_mut(sb.inner);
    put(tag, ipv4_misc::TIME_TO_LIVE, v, spec::IP_TTL_HOPLIMIT);
    put(tag, ipv4_misc::IHL, v, spec::IPV4_IHL);
    Ok(())
}

/// IPv6 flow label and hop limit with L4 ports, protocol, fragment bit, DSCP/ECN and TCP
/// flags (`eth_ipv6_l3_l4`, the v0 `ETHL4` lookup).
pub(super) fn init_eth_ipv6_l3_l4(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL4.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_ipv6_l3_l4)
}

fn tag_eth_ipv6_l3_l4(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let (v, misc_sec) = spec_and_misc(value, sb.inner);
    // Here the TCP ports are written first, so UDP ports win as in the 5-tuple.
    put(tag, l4::DST_PORT, v, spec::TCP_DPORT);
    put(tag, l4::SRC_PORT, v, spec::TCP_SPORT);
    put(tag, l4::DST_PORT, v, spec::UDP_DPORT);
    put(tag, l4::SRC_PORT, v, spec::UDP_SPORT);
    put(tag, l4::PROTOCOL, v, spec::IP_PROTOCOL);
    put(tag, l4::FRAGMENTED, v, spec::FRAG);
    put(tag, l4::DSCP, v, spec::IP_DSCP);
    put(tag, l4::ECN, v, spec::IP_ECN);
    put(tag, l4::IPV6_HOP_LIMIT, v, spec::IP_TTL_HOPLIMIT);
    let flow_label = if sb.inner {
        misc::INNER_IPV6_FLOW_LABEL
    } else {
        misc::OUTER_IPV6_FLOW_LABEL
    };
    put(tag, l4::FLOW_LABEL, misc_sec, flow_label);
    put_tcp_flags(tag, l4::TCP_NS, v);
    Ok(())
}

/// TCP sequence and acknowledgement numbers (`eth_l4_misc`).
pub(super) fn init_eth_l4_misc(
    sb: &mut SteBuild,
    mask: &mut MatchParam,
    caps: &Caps,
) -> Result<(), BuildError> {
    let lu_type = lu::ETHL4_MISC.pick(sb.rx, sb.inner);
    init_by_tag(sb, mask, caps, lu_type, tag_eth_l4_misc)
}

fn tag_eth_l4_misc(
    sb: &SteBuild,
    value: &mut MatchParam,
    _caps: &Caps,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    let (seq, ack) = if sb.inner {
        (misc3::INNER_TCP_SEQ_NUM, misc3::INNER_TCP_ACK_NUM)
    } else {
        (misc3::OUTER_TCP_SEQ_NUM, misc3::OUTER_TCP_ACK_NUM)
    };
    put(tag, l4_misc::SEQ_NUM, &mut value.misc3, seq);
    put(tag, l4_misc::ACK_NUM, &mut value.misc3, ack);
    Ok(())
}
