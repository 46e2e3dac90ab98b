//! The typed match: masks and rule values as users write them, and their raw PRM form.
//!
//! A [`Match`] is built field by field through four groups, each reached with a
//! closure:
//!
//! - [`Match::outer`] / [`Match::inner`]: the packet's outer or inner (encapsulated)
//!   headers ([`Headers`]): MACs, VLANs, EtherType, IPv4/IPv6, TCP/UDP, TTL, MPLS, flow
//!   label, TCP sequence numbers, ESP SPI, and (outer only) ICMP and the RoCE BTH.
//! - [`Match::tunnel`] ([`Tunnel`]): VXLAN, VXLAN-GPE, GENEVE, GRE, GTP-U, MPLS over
//!   GRE/UDP, raw tunnel header words.
//! - [`Match::meta`] ([`Meta`]): where the packet comes from (source vport, SQ, vhca)
//!   and metadata (registers A and C0..C7, flex-parser samples, MACsec tags).
//!
//! ```
//! # use std::net::Ipv4Addr;
//! # use mlx5dr::matching::Match;
//! let rule = Match::new()
//!     .outer(|h| h.ipv4_dst(Ipv4Addr::new(10, 0, 0, 1)).ip_protocol(6).tcp_dport(443))
//!     .tunnel(|t| t.vxlan_vni(42));
//! let raw = rule.to_raw().unwrap();
//! assert_eq!(raw.param.outer[0x3c..0x40], [10, 0, 0, 1]);
//! ```
//!
//! The same type writes masks and values: a mask sets the bits that matter
//! (`tcp_dport(0xffff)`), a value the bits to compare (`tcp_dport(443)`);
//! [`Match::exact_mask`] derives the all-ones mask of every field a value assigns.
//!
//! Values are typed: `bool` for one-bit fields, `u8`/`u16`/`u32` for the others,
//! [`Ipv4Addr`]/[`Ipv6Addr`] for addresses, `[u8; 6]` for MACs. A value wider than its
//! field is an error naming the field ([`MatchError::TooWide`]); setters chain, so the
//! first error is kept and reported by [`Match::to_raw`].
//!
//! `ip_version` follows DR's convention: its *mask* is the version itself (4 or 6), not a
//! bit mask. Setting an IPv4 (IPv6) address therefore also sets `ip_version` 4 (6), which
//! is right for masks and values alike; a conflicting version is an error.
//!
//! Every field of the PRM layout has a setter (the generated tables below cover all of
//! `ste_builder::prm::dr_match_*::FIELDS`; a test checks it), and [`Match::field`] sets
//! any field by its PRM path for code that thinks in PRM names.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};

use ste_builder::bits::BitField;
use ste_builder::match_param::{FieldRef, MatchParamError, MATCH_PARAM_SIZE, SECTION_SIZE};
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, dr_match_set_misc5 as misc5, dr_match_spec as spec,
};
use ste_builder::{MatchCriteria, MatchParam, Section};

use super::field::{both, field_by_path, prm_field, split, FieldValue, Layered};

/// A MAC address, first byte first.
pub type Mac = [u8; 6];

/// Why a typed or raw match cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// A value has bits beyond the field's width.
    #[error("{value:#x} does not fit {field}, which is {width} bits wide", width = .field.field.width)]
    TooWide {
        /// The field.
        field: FieldRef,
        /// The value given.
        value: u64,
    },
    /// An address (or `ip_version`) asks for an IP version other than the one already set.
    #[error("{section}.ip_version is already {current}; IPv{wanted} needs {wanted}", section = .section.name())]
    IpVersionConflict {
        /// Outer or inner headers.
        section: Section,
        /// The version set first.
        current: u8,
        /// The version asked for.
        wanted: u8,
    },
    /// No PRM field has this path.
    #[error("no match field is named {0:?}; fields are named section.prm_name, e.g. outer.tcp_dport or misc.vxlan_vni")]
    UnknownField(String),
    /// A raw buffer is longer than the match layout.
    #[error(transparent)]
    Buffer(#[from] MatchParamError),
    /// `match_criteria_enable` has bits beyond the seven sections.
    #[error("match_criteria_enable {0:#x} has bits beyond the seven match sections")]
    InvalidCriteria(u8),
}

/// The raw PRM form of a match: the 448-byte `fte_match_param` and its
/// `match_criteria_enable` (which sections are in use). This is what a matcher and a rule
/// take; [`Match`] converts to and from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawMatch {
    /// The sections in use.
    pub criteria: MatchCriteria,
    /// The buffer.
    pub param: MatchParam,
}

impl Default for RawMatch {
    /// No section, no bit: the mask that lets every packet hit.
    fn default() -> Self {
        RawMatch::new(MatchCriteria::empty(), MatchParam::default())
    }
}

impl RawMatch {
    /// A raw match from its parts.
    pub fn new(criteria: MatchCriteria, param: MatchParam) -> RawMatch {
        RawMatch { criteria, param }
    }

    /// A raw match from the bytes and criteria a user of `mlx5dv_dr` would pass. A
    /// buffer shorter than 448 bytes is zero-extended.
    pub fn from_bytes(criteria: u8, bytes: &[u8]) -> Result<RawMatch, MatchError> {
        let criteria =
            MatchCriteria::from_bits(criteria).ok_or(MatchError::InvalidCriteria(criteria))?;
        Ok(RawMatch {
            criteria,
            param: MatchParam::from_bytes(bytes)?,
        })
    }

    /// The 448 bytes, in PRM order.
    pub fn to_bytes(&self) -> [u8; MATCH_PARAM_SIZE] {
        let mut out = [0u8; MATCH_PARAM_SIZE];
        for s in Section::ALL {
            let at = s.index() * SECTION_SIZE;
            out[at..at + SECTION_SIZE].copy_from_slice(self.param.section(s));
        }
        out
    }
}

/// A match mask or value, built field by field. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct Match {
    /// The field values.
    param: MatchParam,
    /// All ones over every field a setter assigned (even to zero): which fields the
    /// user spoke about, for [`Match::criteria`] and [`Match::exact_mask`].
    assigned: MatchParam,
    /// Sections enabled explicitly (by a raw match), beyond those assigned.
    criteria: MatchCriteria,
    /// The first error a setter hit; later setters do nothing.
    error: Option<MatchError>,
}

impl Default for Match {
    fn default() -> Self {
        Match::new()
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Match");
        d.field("criteria", &self.criteria());
        d.field("fields", &self.param);
        if let Some(e) = &self.error {
            d.field("error", e);
        }
        d.finish()
    }
}

impl Match {
    /// An empty match: no field, no section (a mask that lets every packet hit).
    pub fn new() -> Match {
        Match {
            param: MatchParam::default(),
            assigned: MatchParam::default(),
            criteria: MatchCriteria::empty(),
            error: None,
        }
    }

    /// Sets fields of the outer headers.
    pub fn outer(self, f: impl FnOnce(Headers<Outer>) -> Headers<Outer>) -> Match {
        f(Headers::new(self)).m
    }

    /// Sets fields of the inner (encapsulated) headers.
    pub fn inner(self, f: impl FnOnce(Headers<Inner>) -> Headers<Inner>) -> Match {
        f(Headers::new(self)).m
    }

    /// Sets tunnel fields.
    pub fn tunnel(self, f: impl FnOnce(Tunnel) -> Tunnel) -> Match {
        f(Tunnel { m: self }).m
    }

    /// Sets source and metadata fields.
    pub fn meta(self, f: impl FnOnce(Meta) -> Meta) -> Match {
        f(Meta { m: self }).m
    }

    /// Sets a field by its PRM path, `section.prm_name` (`outer.tcp_dport`,
    /// `misc.vxlan_vni`, `misc2.metadata_reg_c_0`); an unknown path is an error.
    pub fn field(mut self, path: &str, value: u64) -> Match {
        if self.error.is_none() {
            match field_by_path(path) {
                Some(f) => self.assign(f, value),
                None => self.error = Some(MatchError::UnknownField(path.to_owned())),
            }
        }
        self
    }

    /// Reads a field by its PRM path.
    pub fn get(&self, path: &str) -> Result<u64, MatchError> {
        let f = field_by_path(path).ok_or_else(|| MatchError::UnknownField(path.to_owned()))?;
        Ok(self.param.get(f.section, f.field))
    }

    /// The sections in use: every section a setter assigned a field in, plus those a raw
    /// match enabled.
    pub fn criteria(&self) -> MatchCriteria {
        self.criteria | self.assigned.used_criteria()
    }

    /// The first error a setter hit, if any.
    pub fn error(&self) -> Option<&MatchError> {
        self.error.as_ref()
    }

    /// The raw PRM form, or the first error a setter hit.
    pub fn to_raw(&self) -> Result<RawMatch, MatchError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(RawMatch {
                criteria: self.criteria(),
                param: self.param.clone(),
            }),
        }
    }

    /// The mask that compares every field this match assigns, exactly: all ones over
    /// each assigned field, except `ip_version`, whose mask is the version itself.
    pub fn exact_mask(&self) -> Match {
        let mut mask = self.clone();
        for s in Section::ALL {
            let (m, a) = (mask.param.section_mut(s), self.assigned.section(s));
            m.copy_from_slice(a);
        }
        for s in [Section::Outer, Section::Inner] {
            if self.assigned.get(s, spec::IP_VERSION) != 0 {
                let v = self.param.get(s, spec::IP_VERSION);
                mask.param.set(s, spec::IP_VERSION, v);
            }
        }
        mask
    }

    /// Assigns `value` to `field`, or records why it cannot.
    fn assign(&mut self, field: FieldRef, value: u64) {
        if self.error.is_some() {
            return;
        }
        if value > field.field.max() {
            self.error = Some(MatchError::TooWide { field, value });
            return;
        }
        self.param.set(field.section, field.field, value);
        self.assigned.set(field.section, field.field, u64::MAX);
    }

    /// Sets `ip_version` of a header section, refusing a second, different version.
    fn set_ip_version(&mut self, section: Section, version: u8) {
        if self.error.is_some() {
            return;
        }
        if self.assigned.get(section, spec::IP_VERSION) != 0 {
            let current = self.param.get(section, spec::IP_VERSION) as u8;
            if current != version {
                self.error = Some(MatchError::IpVersionConflict {
                    section,
                    current,
                    wanted: version,
                });
                return;
            }
        }
        self.assign(prm_field(section, spec::IP_VERSION), u64::from(version));
    }
}

impl From<RawMatch> for Match {
    /// The typed view of a raw match. Its non-zero fields count as assigned.
    fn from(raw: RawMatch) -> Match {
        let mut assigned = MatchParam::default();
        for (f, _) in raw.param.nonzero_fields() {
            assigned.set(f.section, f.field, u64::MAX);
        }
        Match {
            param: raw.param,
            assigned,
            criteria: raw.criteria,
            error: None,
        }
    }
}

impl TryFrom<&Match> for RawMatch {
    type Error = MatchError;
    fn try_from(m: &Match) -> Result<RawMatch, MatchError> {
        m.to_raw()
    }
}

impl TryFrom<Match> for RawMatch {
    type Error = MatchError;
    fn try_from(m: Match) -> Result<RawMatch, MatchError> {
        m.to_raw()
    }
}

// ---- header layers ------------------------------------------------------------------------

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Outer {}
    impl Sealed for super::Inner {}
}

/// A header layer: [`Outer`] or [`Inner`].
pub trait Layer: sealed::Sealed {
    /// True for the inner headers.
    const INNER: bool;
    /// The layer's `dr_match_spec` section.
    const SECTION: Section;
}

/// The outer headers (as the packet arrives on the wire).
#[derive(Debug, Clone, Copy)]
pub struct Outer;

/// The inner headers (inside a tunnel).
#[derive(Debug, Clone, Copy)]
pub struct Inner;

impl Layer for Outer {
    const INNER: bool = false;
    const SECTION: Section = Section::Outer;
}

impl Layer for Inner {
    const INNER: bool = true;
    const SECTION: Section = Section::Inner;
}

/// Setters for the header fields of one layer. See [`Match::outer`] and [`Match::inner`].
pub struct Headers<L: Layer> {
    m: Match,
    layer: PhantomData<L>,
}

impl<L: Layer> Headers<L> {
    fn new(m: Match) -> Self {
        Headers {
            m,
            layer: PhantomData,
        }
    }

    fn put<T: FieldValue>(mut self, f: Layered, value: T) -> Self {
        let field = if L::INNER { f.inner } else { f.outer };
        self.m.assign(field, value.bits());
        self
    }

    fn put_words(mut self, fields: &[BitField], bytes: &[u8]) -> Self {
        let mut at = 0;
        for &f in fields {
            let n = f.width / 8;
            let v = bytes[at..at + n]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            self.m.assign(prm_field(L::SECTION, f), v);
            at += n;
        }
        self
    }

    /// Source MAC address.
    pub fn smac(self, mac: Mac) -> Self {
        self.put_words(&[spec::SMAC_47_16, spec::SMAC_15_0], &mac)
    }

    /// Destination MAC address.
    pub fn dmac(self, mac: Mac) -> Self {
        self.put_words(&[spec::DMAC_47_16, spec::DMAC_15_0], &mac)
    }

    /// IP version, 4 or 6 (in a mask too: DR takes the mask as the version). Setting a
    /// version other than one set before is an error.
    pub fn ip_version(mut self, version: u8) -> Self {
        self.m.set_ip_version(L::SECTION, version);
        self
    }

    /// IPv4 source address; also sets `ip_version` 4.
    pub fn ipv4_src(mut self, addr: Ipv4Addr) -> Self {
        self.m.set_ip_version(L::SECTION, 4);
        self.put_words(&[spec::SRC_IP_31_0], &addr.octets())
    }

    /// IPv4 destination address; also sets `ip_version` 4.
    pub fn ipv4_dst(mut self, addr: Ipv4Addr) -> Self {
        self.m.set_ip_version(L::SECTION, 4);
        self.put_words(&[spec::DST_IP_31_0], &addr.octets())
    }

    /// IPv6 source address; also sets `ip_version` 6.
    pub fn ipv6_src(mut self, addr: Ipv6Addr) -> Self {
        self.m.set_ip_version(L::SECTION, 6);
        self.put_words(&IPV6_SRC_WORDS, &addr.octets())
    }

    /// IPv6 destination address; also sets `ip_version` 6.
    pub fn ipv6_dst(mut self, addr: Ipv6Addr) -> Self {
        self.m.set_ip_version(L::SECTION, 6);
        self.put_words(&IPV6_DST_WORDS, &addr.octets())
    }
}

const IPV6_SRC_WORDS: [BitField; 4] = [
    spec::SRC_IP_127_96,
    spec::SRC_IP_95_64,
    spec::SRC_IP_63_32,
    spec::SRC_IP_31_0,
];
const IPV6_DST_WORDS: [BitField; 4] = [
    spec::DST_IP_127_96,
    spec::DST_IP_95_64,
    spec::DST_IP_63_32,
    spec::DST_IP_31_0,
];

/// The PRM fields the hand-written (multi-field) setters fill, by setter name; with the
/// generated tables they cover every field of the layout.
#[cfg(test)]
pub(crate) const COMPOSITE_SETTERS: &[(&str, &[FieldRef])] = &[
    (
        "smac",
        &[
            prm_field(Section::Outer, spec::SMAC_47_16),
            prm_field(Section::Outer, spec::SMAC_15_0),
            prm_field(Section::Inner, spec::SMAC_47_16),
            prm_field(Section::Inner, spec::SMAC_15_0),
        ],
    ),
    (
        "dmac",
        &[
            prm_field(Section::Outer, spec::DMAC_47_16),
            prm_field(Section::Outer, spec::DMAC_15_0),
            prm_field(Section::Inner, spec::DMAC_47_16),
            prm_field(Section::Inner, spec::DMAC_15_0),
        ],
    ),
    (
        "ip_version",
        &[
            prm_field(Section::Outer, spec::IP_VERSION),
            prm_field(Section::Inner, spec::IP_VERSION),
        ],
    ),
    (
        "ipv6_src",
        &[
            prm_field(Section::Outer, spec::SRC_IP_127_96),
            prm_field(Section::Outer, spec::SRC_IP_95_64),
            prm_field(Section::Outer, spec::SRC_IP_63_32),
            prm_field(Section::Outer, spec::SRC_IP_31_0),
            prm_field(Section::Inner, spec::SRC_IP_127_96),
            prm_field(Section::Inner, spec::SRC_IP_95_64),
            prm_field(Section::Inner, spec::SRC_IP_63_32),
            prm_field(Section::Inner, spec::SRC_IP_31_0),
        ],
    ),
    (
        "ipv6_dst",
        &[
            prm_field(Section::Outer, spec::DST_IP_127_96),
            prm_field(Section::Outer, spec::DST_IP_95_64),
            prm_field(Section::Outer, spec::DST_IP_63_32),
            prm_field(Section::Outer, spec::DST_IP_31_0),
            prm_field(Section::Inner, spec::DST_IP_127_96),
            prm_field(Section::Inner, spec::DST_IP_95_64),
            prm_field(Section::Inner, spec::DST_IP_63_32),
            prm_field(Section::Inner, spec::DST_IP_31_0),
        ],
    ),
    (
        "gre_key",
        &[
            prm_field(Section::Misc, misc::GRE_KEY_H),
            prm_field(Section::Misc, misc::GRE_KEY_L),
        ],
    ),
];

/// Generates the setters of per-layer fields from a table (name, value type, outer and
/// inner PRM field), the table itself for tests and docs, and, for tests, the setters as
/// function pointers in table order.
macro_rules! layered_setters {
    ($( $(#[$attr:meta])* $name:ident: $ty:ty = $fields:expr; )*) => {
        impl<L: Layer> Headers<L> {
            $(
                $(#[$attr])*
                pub fn $name(self, value: $ty) -> Self {
                    const F: Layered = $fields;
                    self.put(F, value)
                }
            )*
        }

        /// Every generated per-layer setter: its name and its outer and inner fields.
        #[cfg(test)]
        pub(crate) const LAYERED_SETTERS: &[(&str, Layered)] =
            &[$((stringify!($name), $fields),)*];

        /// The generated per-layer setters, in [`LAYERED_SETTERS`] order.
        #[cfg(test)]
        pub(crate) fn layered_setter_fns<L: Layer>() -> Vec<fn(Headers<L>, u64) -> Headers<L>> {
            vec![$(|h, v| h.$name(<$ty as FieldValue>::truncate(v)),)*]
        }
    };
}

/// Like [`layered_setters`], for a group whose fields exist once (tunnel, metadata,
/// outer-only headers): each entry names its section and PRM field.
macro_rules! plain_setters {
    ($group:ty, $table:ident, $fns:ident;
     $( $(#[$attr:meta])* $name:ident: $ty:ty = $section:ident $field:path; )*) => {
        impl $group {
            $(
                $(#[$attr])*
                pub fn $name(mut self, value: $ty) -> Self {
                    const F: FieldRef = prm_field(Section::$section, $field);
                    self.m.assign(F, value.bits());
                    self
                }
            )*
        }

        /// Every generated setter of the group: its name and PRM field.
        #[cfg(test)]
        pub(crate) const $table: &[(&str, FieldRef)] =
            &[$((stringify!($name), prm_field(Section::$section, $field)),)*];

        /// The group's generated setters, in table order.
        #[cfg(test)]
        pub(crate) fn $fns() -> Vec<fn($group, u64) -> $group> {
            vec![$(|g, v| g.$name(<$ty as FieldValue>::truncate(v)),)*]
        }
    };
}

layered_setters! {
    /// EtherType (of the last VLAN tag's payload).
    ethertype: u16 = both(spec::ETHERTYPE);
    /// Priority (PCP) of the first VLAN tag, 3 bits.
    vlan_prio: u8 = both(spec::FIRST_PRIO);
    /// CFI/DEI bit of the first VLAN tag.
    vlan_cfi: bool = both(spec::FIRST_CFI);
    /// VLAN id of the first VLAN tag, 12 bits.
    vlan_id: u16 = both(spec::FIRST_VID);
    /// The first VLAN tag is a C-VLAN (802.1Q) tag.
    cvlan_tag: bool = both(spec::CVLAN_TAG);
    /// The first VLAN tag is an S-VLAN (802.1ad) tag.
    svlan_tag: bool = both(spec::SVLAN_TAG);
    /// Priority of the second VLAN tag, 3 bits.
    second_vlan_prio: u8 = split(Section::Misc, misc::OUTER_SECOND_PRIO, misc::INNER_SECOND_PRIO);
    /// CFI/DEI bit of the second VLAN tag.
    second_vlan_cfi: bool = split(Section::Misc, misc::OUTER_SECOND_CFI, misc::INNER_SECOND_CFI);
    /// VLAN id of the second VLAN tag, 12 bits.
    second_vlan_id: u16 = split(Section::Misc, misc::OUTER_SECOND_VID, misc::INNER_SECOND_VID);
    /// The second VLAN tag is a C-VLAN tag.
    second_cvlan_tag: bool = split(Section::Misc, misc::OUTER_SECOND_CVLAN_TAG, misc::INNER_SECOND_CVLAN_TAG);
    /// The second VLAN tag is an S-VLAN tag.
    second_svlan_tag: bool = split(Section::Misc, misc::OUTER_SECOND_SVLAN_TAG, misc::INNER_SECOND_SVLAN_TAG);
    /// IP protocol / IPv6 next header.
    ip_protocol: u8 = both(spec::IP_PROTOCOL);
    /// DSCP, 6 bits.
    ip_dscp: u8 = both(spec::IP_DSCP);
    /// ECN, 2 bits.
    ip_ecn: u8 = both(spec::IP_ECN);
    /// The packet is an IP fragment.
    frag: bool = both(spec::FRAG);
    /// IPv4 TTL or IPv6 hop limit.
    ttl: u8 = both(spec::IP_TTL_HOPLIMIT);
    /// IPv4 header length in dwords, 4 bits.
    ipv4_ihl: u8 = both(spec::IPV4_IHL);
    /// IPv6 flow label, 20 bits.
    ipv6_flow_label: u32 = split(Section::Misc, misc::OUTER_IPV6_FLOW_LABEL, misc::INNER_IPV6_FLOW_LABEL);
    /// TCP flags, 9 bits (NS is bit 8, FIN bit 0).
    tcp_flags: u16 = both(spec::TCP_FLAGS);
    /// TCP source port.
    tcp_sport: u16 = both(spec::TCP_SPORT);
    /// TCP destination port.
    tcp_dport: u16 = both(spec::TCP_DPORT);
    /// TCP sequence number.
    tcp_seq_num: u32 = split(Section::Misc3, misc3::OUTER_TCP_SEQ_NUM, misc3::INNER_TCP_SEQ_NUM);
    /// TCP acknowledgement number.
    tcp_ack_num: u32 = split(Section::Misc3, misc3::OUTER_TCP_ACK_NUM, misc3::INNER_TCP_ACK_NUM);
    /// UDP source port.
    udp_sport: u16 = both(spec::UDP_SPORT);
    /// UDP destination port.
    udp_dport: u16 = both(spec::UDP_DPORT);
    /// The hardware found the L3 header well-formed.
    l3_ok: bool = both(spec::L3_OK);
    /// The hardware found the L4 header well-formed.
    l4_ok: bool = both(spec::L4_OK);
    /// The IPv4 header checksum is correct.
    ipv4_checksum_ok: bool = both(spec::IPV4_CHECKSUM_OK);
    /// The L4 checksum is correct.
    l4_checksum_ok: bool = both(spec::L4_CHECKSUM_OK);
    /// Label of the first MPLS entry, 20 bits.
    mpls_label: u32 = split(Section::Misc2, misc2::OUTER_FIRST_MPLS_LABEL, misc2::INNER_FIRST_MPLS_LABEL);
    /// Traffic class (EXP) of the first MPLS entry, 3 bits.
    mpls_exp: u8 = split(Section::Misc2, misc2::OUTER_FIRST_MPLS_EXP, misc2::INNER_FIRST_MPLS_EXP);
    /// Bottom-of-stack bit of the first MPLS entry.
    mpls_s_bos: bool = split(Section::Misc2, misc2::OUTER_FIRST_MPLS_S_BOS, misc2::INNER_FIRST_MPLS_S_BOS);
    /// TTL of the first MPLS entry.
    mpls_ttl: u8 = split(Section::Misc2, misc2::OUTER_FIRST_MPLS_TTL, misc2::INNER_FIRST_MPLS_TTL);
    /// ESP SPI. (DR has no lookup for it: a mask with it is refused.)
    esp_spi: u32 = split(Section::Misc, misc::OUTER_ESP_SPI, misc::INNER_ESP_SPI);
}

plain_setters! {
    Headers<Outer>, OUTER_ONLY_SETTERS, outer_only_setter_fns;
    /// ICMPv4 type.
    icmp_type: u8 = Misc3 misc3::ICMP_TYPE;
    /// ICMPv4 code.
    icmp_code: u8 = Misc3 misc3::ICMP_CODE;
    /// ICMPv4 header data (the dword after type, code and checksum).
    icmp_header_data: u32 = Misc3 misc3::ICMP_HEADER_DATA;
    /// ICMPv6 type.
    icmpv6_type: u8 = Misc3 misc3::ICMPV6_TYPE;
    /// ICMPv6 code.
    icmpv6_code: u8 = Misc3 misc3::ICMPV6_CODE;
    /// ICMPv6 header data.
    icmpv6_header_data: u32 = Misc3 misc3::ICMPV6_HEADER_DATA;
    /// RoCE BTH destination QP, 24 bits.
    bth_dst_qp: u32 = Misc misc::BTH_DST_QP;
    /// The EMD tag is present. (DR has no lookup for it: a mask with it is refused.)
    emd_tag: bool = Misc misc::OUTER_EMD_TAG;
}

/// Setters for tunnel fields. See [`Match::tunnel`].
pub struct Tunnel {
    m: Match,
}

impl Tunnel {
    /// GRE key (32 bits; the PRM splits it into `gre_key_h` and `gre_key_l`).
    pub fn gre_key(mut self, key: u32) -> Self {
        self.m.assign(
            prm_field(Section::Misc, misc::GRE_KEY_H),
            u64::from(key >> 8),
        );
        self.m.assign(
            prm_field(Section::Misc, misc::GRE_KEY_L),
            u64::from(key & 0xff),
        );
        self
    }
}

plain_setters! {
    Tunnel, TUNNEL_SETTERS, tunnel_setter_fns;
    /// VXLAN network identifier, 24 bits.
    vxlan_vni: u32 = Misc misc::VXLAN_VNI;
    /// VXLAN-GPE network identifier, 24 bits.
    vxlan_gpe_vni: u32 = Misc3 misc3::OUTER_VXLAN_GPE_VNI;
    /// VXLAN-GPE next protocol.
    vxlan_gpe_next_protocol: u8 = Misc3 misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL;
    /// VXLAN-GPE flags.
    vxlan_gpe_flags: u8 = Misc3 misc3::OUTER_VXLAN_GPE_FLAGS;
    /// GENEVE virtual network identifier, 24 bits.
    geneve_vni: u32 = Misc misc::GENEVE_VNI;
    /// GENEVE OAM bit.
    geneve_oam: bool = Misc misc::GENEVE_OAM;
    /// GENEVE options length in dwords, 6 bits.
    geneve_opt_len: u8 = Misc misc::GENEVE_OPT_LEN;
    /// GENEVE protocol type (EtherType of the payload).
    geneve_protocol_type: u16 = Misc misc::GENEVE_PROTOCOL_TYPE;
    /// GENEVE TLV option 0 is present.
    geneve_tlv_option_0_exist: bool = Misc misc::GENEVE_TLV_OPTION_0_EXIST;
    /// Data of GENEVE TLV option 0.
    geneve_tlv_option_0_data: u32 = Misc3 misc3::GENEVE_TLV_OPTION_0_DATA;
    /// GRE checksum-present bit.
    gre_c_present: bool = Misc misc::GRE_C_PRESENT;
    /// GRE key-present bit.
    gre_k_present: bool = Misc misc::GRE_K_PRESENT;
    /// GRE sequence-present bit.
    gre_s_present: bool = Misc misc::GRE_S_PRESENT;
    /// GRE protocol (EtherType of the payload).
    gre_protocol: u16 = Misc misc::GRE_PROTOCOL;
    /// GTP-U tunnel endpoint id.
    gtpu_teid: u32 = Misc3 misc3::GTPU_TEID;
    /// GTP-U message type.
    gtpu_msg_type: u8 = Misc3 misc3::GTPU_MSG_TYPE;
    /// GTP-U message flags.
    gtpu_msg_flags: u8 = Misc3 misc3::GTPU_MSG_FLAGS;
    /// GTP-U header dword 0 (flags, type, length).
    gtpu_dw_0: u32 = Misc3 misc3::GTPU_DW_0;
    /// GTP-U header dword 2 (sequence number, N-PDU, next extension type).
    gtpu_dw_2: u32 = Misc3 misc3::GTPU_DW_2;
    /// Dword 0 of the first GTP-U extension header.
    gtpu_first_ext_dw_0: u32 = Misc3 misc3::GTPU_FIRST_EXT_DW_0;
    /// Label of the first MPLS entry after GRE, 20 bits.
    mpls_over_gre_label: u32 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL;
    /// Traffic class of the first MPLS entry after GRE, 3 bits.
    mpls_over_gre_exp: u8 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP;
    /// Bottom-of-stack bit of the first MPLS entry after GRE.
    mpls_over_gre_s_bos: bool = Misc2 misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS;
    /// TTL of the first MPLS entry after GRE.
    mpls_over_gre_ttl: u8 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL;
    /// Label of the first MPLS entry after UDP, 20 bits.
    mpls_over_udp_label: u32 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL;
    /// Traffic class of the first MPLS entry after UDP, 3 bits.
    mpls_over_udp_exp: u8 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP;
    /// Bottom-of-stack bit of the first MPLS entry after UDP.
    mpls_over_udp_s_bos: bool = Misc2 misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS;
    /// TTL of the first MPLS entry after UDP.
    mpls_over_udp_ttl: u8 = Misc2 misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL;
    /// Raw tunnel header dword 0.
    tunnel_header_0: u32 = Misc5 misc5::TUNNEL_HEADER_0;
    /// Raw tunnel header dword 1.
    tunnel_header_1: u32 = Misc5 misc5::TUNNEL_HEADER_1;
    /// Raw tunnel header dword 2.
    tunnel_header_2: u32 = Misc5 misc5::TUNNEL_HEADER_2;
    /// Raw tunnel header dword 3.
    tunnel_header_3: u32 = Misc5 misc5::TUNNEL_HEADER_3;
}

/// Setters for where a packet comes from and the metadata it carries. See
/// [`Match::meta`].
pub struct Meta {
    m: Match,
}

plain_setters! {
    Meta, META_SETTERS, meta_setter_fns;
    /// Source vport number (0xffff: the uplink). Only a full mask (0xffff) is supported.
    source_port: u16 = Misc misc::SOURCE_PORT;
    /// Source send-queue number, 24 bits.
    source_sqn: u32 = Misc misc::SOURCE_SQN;
    /// Source vhca port, 4 bits.
    source_vhca_port: u8 = Misc misc::SOURCE_VHCA_PORT;
    /// The vhca that owns the source e-switch port. (DR has no lookup for it: a mask
    /// with it is refused.)
    source_eswitch_owner_vhca_id: u16 = Misc misc::SOURCE_ESWITCH_OWNER_VHCA_ID;
    /// Metadata register A (set by the WQE on transmit).
    metadata_reg_a: u32 = Misc2 misc2::METADATA_REG_A;
    /// Metadata register C0.
    metadata_reg_c_0: u32 = Misc2 misc2::METADATA_REG_C_0;
    /// Metadata register C1.
    metadata_reg_c_1: u32 = Misc2 misc2::METADATA_REG_C_1;
    /// Metadata register C2.
    metadata_reg_c_2: u32 = Misc2 misc2::METADATA_REG_C_2;
    /// Metadata register C3.
    metadata_reg_c_3: u32 = Misc2 misc2::METADATA_REG_C_3;
    /// Metadata register C4.
    metadata_reg_c_4: u32 = Misc2 misc2::METADATA_REG_C_4;
    /// Metadata register C5.
    metadata_reg_c_5: u32 = Misc2 misc2::METADATA_REG_C_5;
    /// Metadata register C6.
    metadata_reg_c_6: u32 = Misc2 misc2::METADATA_REG_C_6;
    /// Metadata register C7.
    metadata_reg_c_7: u32 = Misc2 misc2::METADATA_REG_C_7;
    /// Flex-parser sample 0: the flex parser id it reads.
    prog_sample_field_id_0: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_0;
    /// Flex-parser sample 0: the value.
    prog_sample_field_value_0: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_0;
    /// Flex-parser sample 1: the flex parser id it reads.
    prog_sample_field_id_1: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_1;
    /// Flex-parser sample 1: the value.
    prog_sample_field_value_1: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_1;
    /// Flex-parser sample 2: the flex parser id it reads.
    prog_sample_field_id_2: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_2;
    /// Flex-parser sample 2: the value.
    prog_sample_field_value_2: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_2;
    /// Flex-parser sample 3: the flex parser id it reads.
    prog_sample_field_id_3: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_3;
    /// Flex-parser sample 3: the value.
    prog_sample_field_value_3: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_3;
    /// Flex-parser sample 4: the flex parser id it reads.
    prog_sample_field_id_4: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_4;
    /// Flex-parser sample 4: the value.
    prog_sample_field_value_4: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_4;
    /// Flex-parser sample 5: the flex parser id it reads.
    prog_sample_field_id_5: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_5;
    /// Flex-parser sample 5: the value.
    prog_sample_field_value_5: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_5;
    /// Flex-parser sample 6: the flex parser id it reads.
    prog_sample_field_id_6: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_6;
    /// Flex-parser sample 6: the value.
    prog_sample_field_value_6: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_6;
    /// Flex-parser sample 7: the flex parser id it reads.
    prog_sample_field_id_7: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_ID_7;
    /// Flex-parser sample 7: the value.
    prog_sample_field_value_7: u32 = Misc4 misc4::PROG_SAMPLE_FIELD_VALUE_7;
    /// MACsec tag dword 0.
    macsec_tag_0: u32 = Misc5 misc5::MACSEC_TAG_0;
    /// MACsec tag dword 1.
    macsec_tag_1: u32 = Misc5 misc5::MACSEC_TAG_1;
    /// MACsec tag dword 2.
    macsec_tag_2: u32 = Misc5 misc5::MACSEC_TAG_2;
    /// MACsec tag dword 3.
    macsec_tag_3: u32 = Misc5 misc5::MACSEC_TAG_3;
}
