//! L4 ports and the IP protocol: where the STE lookups and the PRM match layout differ.
//!
//! The PRM layout has separate TCP and UDP port fields, and a packet has only one of
//! them (the other reads 0). The STE lookups that match ports (IPv4 5-tuple, L4, IPv6
//! L3+L4, outer and inner) have a single source and a single destination port field,
//! which the hardware fills from whatever L4 header the packet has: DR writes
//! `tcp_sport` or `udp_sport` (whichever the rule sets) into the same tag bits. So the
//! STE compares "the L4 port", not "the TCP port":
//!
//! - a mask on TCP (or UDP) ports without the IP protocol would let a rule for TCP port
//!   80 hit UDP packets to port 80, which the PRM value does not match: such a mask is
//!   refused ([`check_mask`]), unless it also matches the whole `ip_protocol`;
//! - a rule whose protocol is UDP but that sets TCP port bits (or the reverse) can hit
//!   no packet by the PRM's meaning, yet its STE would hit the UDP packets with that
//!   port: refused ([`check_value`]).
//!
//! Together these make the STE's answer equal the PRM's for every packet.

use ste_builder::bits::{self, BitField};
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::{MatchCriteria, MatchParam, Section};

const TCP: u64 = 6;
const UDP: u64 = 17;

/// The port fields, with the protocol they belong to.
const PORTS: [(&str, BitField, u64); 4] = [
    ("tcp_sport", spec::TCP_SPORT, TCP),
    ("tcp_dport", spec::TCP_DPORT, TCP),
    ("udp_sport", spec::UDP_SPORT, UDP),
    ("udp_dport", spec::UDP_DPORT, UDP),
];

const HEADERS: [(Section, MatchCriteria); 2] = [
    (Section::Outer, MatchCriteria::OUTER),
    (Section::Inner, MatchCriteria::INNER),
];

/// A port mask without the IP protocol: the first such field of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the mask matches {section}.{field} but not the whole {section}.ip_protocol: the STE compares the L4 port of any protocol, so a port match needs the protocol (mask ip_protocol 0xff)", section = .section.name())]
pub struct PortWithoutProtocol {
    /// Outer or inner headers.
    pub section: Section,
    /// The port field.
    pub field: &'static str,
}

/// A rule value with port bits of another protocol than its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{section}.{field} is set but {section}.ip_protocol is {protocol}: no packet can match, yet the STE would hit {protocol} packets with that port", section = .section.name())]
pub struct PortOfOtherProtocol {
    /// Outer or inner headers.
    pub section: Section,
    /// The port field set.
    pub field: &'static str,
    /// The rule's IP protocol.
    pub protocol: u8,
}

/// Refuses a (normalised) mask that matches L4 ports without the whole IP protocol.
pub fn check_mask(criteria: MatchCriteria, mask: &MatchParam) -> Result<(), PortWithoutProtocol> {
    for (section, bit) in HEADERS {
        if !criteria.contains(bit) || mask.get(section, spec::IP_PROTOCOL) == 0xff {
            continue;
        }
        if let Some((field, _, _)) = PORTS.iter().find(|(_, f, _)| mask.get(section, *f) != 0) {
            return Err(PortWithoutProtocol { section, field });
        }
    }
    Ok(())
}

/// Refuses a rule value (within a mask that passed [`check_mask`]) that sets port bits
/// of a protocol other than its own.
pub fn check_value(criteria: MatchCriteria, value: &MatchParam) -> Result<(), PortOfOtherProtocol> {
    for (section, bit) in HEADERS {
        if criteria.contains(bit) {
            check_section(section, value)?;
        }
    }
    Ok(())
}

/// [`check_value`] prepared for one matcher: it reads only the sections where the mask
/// matches a port, since a value within the mask sets no port bit anywhere else.
///
/// Invariant: for every value within the mask it was made from, [`ValueCheck::check`]
/// returns what [`check_value`] returns for the mask's criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueCheck {
    /// Outer, then inner: whether the criteria enable the section and the mask has a
    /// port bit in it.
    sections: [Option<Section>; 2],
}

impl ValueCheck {
    /// The check for values within `mask` (a normalised mask) under `criteria`.
    pub fn new(criteria: MatchCriteria, mask: &MatchParam) -> ValueCheck {
        let with_ports = |(section, bit): (Section, MatchCriteria)| {
            let ports = PORTS.iter().any(|(_, f, _)| mask.get(section, *f) != 0);
            (criteria.contains(bit) && ports).then_some(section)
        };
        ValueCheck {
            sections: HEADERS.map(with_ports),
        }
    }

    /// [`check_value`] of a value within the mask.
    pub fn check(&self, value: &MatchParam) -> Result<(), PortOfOtherProtocol> {
        for section in self.sections.into_iter().flatten() {
            check_section(section, value)?;
        }
        Ok(())
    }

    /// Whether [`ValueCheck::check`] passes, without naming the field when not.
    #[inline]
    pub fn passes(&self, value: &MatchParam) -> bool {
        self.sections
            .into_iter()
            .flatten()
            .all(|section| section_passes(section, value))
    }
}

/// Both TCP ports, then both UDP ports, each pair read as one 32-bit field.
const TCP_PORTS: BitField = BitField::new(spec::TCP_SPORT.offset, 32);
const UDP_PORTS: BitField = BitField::new(spec::UDP_SPORT.offset, 32);
const _: () = assert!(
    spec::TCP_DPORT.offset == spec::TCP_SPORT.offset + 16
        && spec::UDP_DPORT.offset == spec::UDP_SPORT.offset + 16
        && spec::TCP_SPORT.width == 16
        && spec::UDP_SPORT.width == 16
);

/// True when [`check_section`] finds no port of another protocol: TCP ports only with
/// TCP, UDP ports only with UDP.
#[inline]
fn section_passes(section: Section, value: &MatchParam) -> bool {
    // Only header sections have ports.
    let bytes = match section {
        Section::Inner => &value.inner,
        _ => &value.outer,
    };
    let protocol = bits::get(bytes, spec::IP_PROTOCOL);
    (protocol == TCP || bits::get(bytes, TCP_PORTS) == 0)
        && (protocol == UDP || bits::get(bytes, UDP_PORTS) == 0)
}

/// The first port field of `section` set for a protocol other than the value's own.
fn check_section(section: Section, value: &MatchParam) -> Result<(), PortOfOtherProtocol> {
    let bytes = value.section(section);
    let protocol = bits::get(bytes, spec::IP_PROTOCOL);
    // A plain loop over the constant table, so that each field read is a fixed one.
    for &(field, f, owner) in PORTS.iter() {
        if owner != protocol && bits::get(bytes, f) != 0 {
            return Err(PortOfOtherProtocol {
                section,
                field,
                protocol: protocol as u8,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(fields: &[(Section, BitField, u64)]) -> MatchParam {
        let mut p = MatchParam::default();
        for &(s, f, v) in fields {
            p.set(s, f, v);
        }
        p
    }

    #[test]
    fn ports_need_the_whole_protocol() {
        let c = MatchCriteria::OUTER | MatchCriteria::INNER;
        let no_proto = param(&[(Section::Inner, spec::UDP_DPORT, 0xffff)]);
        assert_eq!(
            check_mask(c, &no_proto),
            Err(PortWithoutProtocol {
                section: Section::Inner,
                field: "udp_dport"
            })
        );
        let partial = param(&[
            (Section::Outer, spec::TCP_SPORT, 0xffff),
            (Section::Outer, spec::IP_PROTOCOL, 0x0f),
        ]);
        assert!(check_mask(c, &partial).is_err());
        let both = param(&[
            (Section::Outer, spec::TCP_SPORT, 0xffff),
            (Section::Outer, spec::UDP_SPORT, 0xffff),
            (Section::Outer, spec::IP_PROTOCOL, 0xff),
        ]);
        assert_eq!(check_mask(c, &both), Ok(()));
        // Sections the criteria leave out are not looked at.
        assert_eq!(check_mask(MatchCriteria::OUTER, &no_proto), Ok(()));
    }

    #[test]
    fn ports_belong_to_the_rules_protocol() {
        let c = MatchCriteria::OUTER;
        let tcp = param(&[
            (Section::Outer, spec::IP_PROTOCOL, TCP),
            (Section::Outer, spec::TCP_DPORT, 80),
        ]);
        assert_eq!(check_value(c, &tcp), Ok(()));
        let stray = param(&[
            (Section::Outer, spec::IP_PROTOCOL, UDP),
            (Section::Outer, spec::TCP_DPORT, 80),
        ]);
        assert_eq!(
            check_value(c, &stray),
            Err(PortOfOtherProtocol {
                section: Section::Outer,
                field: "tcp_dport",
                protocol: 17
            })
        );
        let icmp = param(&[
            (Section::Outer, spec::IP_PROTOCOL, 1),
            (Section::Outer, spec::UDP_SPORT, 53),
        ]);
        assert!(check_value(c, &icmp).is_err());
        let no_ports = param(&[(Section::Outer, spec::IP_PROTOCOL, 1)]);
        assert_eq!(check_value(c, &no_ports), Ok(()));
    }

    /// The yes/no form agrees with the check that names the field.
    #[test]
    fn passes_is_check_without_the_error() {
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let c = MatchCriteria::OUTER | MatchCriteria::INNER;
        let mask = param(&[
            (Section::Outer, spec::IP_PROTOCOL, 0xff),
            (Section::Outer, spec::TCP_DPORT, 0xffff),
            (Section::Inner, spec::IP_PROTOCOL, 0xff),
            (Section::Inner, spec::UDP_SPORT, 0xffff),
        ]);
        let plan = ValueCheck::new(c, &mask);
        let (mut passed, mut failed) = (0, 0);
        for _ in 0..2000 {
            let mut v = MatchParam::default();
            for s in [Section::Outer, Section::Inner] {
                v.set(
                    s,
                    spec::IP_PROTOCOL,
                    [TCP, UDP, 1, 0][rng.below(4) as usize],
                );
                for (_, f, _) in PORTS {
                    if rng.below(3) == 0 {
                        v.set(s, f, rng.next());
                    }
                }
            }
            let checked = plan.check(&v);
            assert_eq!(plan.passes(&v), checked.is_ok(), "{checked:?}");
            if checked.is_ok() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
        assert!(passed > 100 && failed > 100, "{passed} {failed}");
    }
}
