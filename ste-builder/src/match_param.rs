//! The PRM match parameter (`fte_match_param`): the 448-byte mask and value buffers users
//! hand to a matcher and a rule.
//!
//! The buffer is seven 64-byte sections (outer headers, misc, inner headers, misc2 … misc5),
//! each a PRM layout from [`crate::prm`]. [`MatchParam`] is a zero-copy typed view of it.
//!
//! Before building STEs the driver normalises a user buffer the way rdma-core's DR does
//! ([`MatchParam::copy_from`]): only the sections enabled by the match criteria are taken,
//! and inside them only the fields DR knows (reserved bits and a few fields DR never
//! copies are dropped). Lookup builders then *consume* fields from the normalised copy, so
//! that a field left over after all builders have run is a field no lookup can match.

use crate::bits::{self, BitField};
use crate::prm;
use bitflags::bitflags;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Size of a full match parameter in bytes.
pub const MATCH_PARAM_SIZE: usize = 448;
/// Size of one section in bytes.
pub const SECTION_SIZE: usize = 64;

bitflags! {
    /// `match_criteria_enable`: which sections of a match parameter are in use.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MatchCriteria: u8 {
        /// Outer headers.
        const OUTER = 1 << 0;
        /// Misc parameters.
        const MISC = 1 << 1;
        /// Inner headers.
        const INNER = 1 << 2;
        /// Misc parameters 2.
        const MISC2 = 1 << 3;
        /// Misc parameters 3.
        const MISC3 = 1 << 4;
        /// Misc parameters 4.
        const MISC4 = 1 << 5;
        /// Misc parameters 5.
        const MISC5 = 1 << 6;
    }
}

/// One 64-byte section of a match parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Outer L2–L4 headers (`dr_match_spec`).
    Outer,
    /// Tunnel, VLAN, GRE, source port … (`dr_match_set_misc`).
    Misc,
    /// Inner L2–L4 headers (`dr_match_spec`).
    Inner,
    /// MPLS and metadata registers (`dr_match_set_misc2`).
    Misc2,
    /// TCP seq/ack, VXLAN-GPE, ICMP, GENEVE option, GTP-U (`dr_match_set_misc3`).
    Misc3,
    /// Programmable sample fields / flex parsers (`dr_match_set_misc4`).
    Misc4,
    /// MACsec tags and raw tunnel header words (`dr_match_set_misc5`).
    Misc5,
}

impl Section {
    /// All sections in buffer order.
    pub const ALL: [Section; 7] = [
        Section::Outer,
        Section::Misc,
        Section::Inner,
        Section::Misc2,
        Section::Misc3,
        Section::Misc4,
        Section::Misc5,
    ];

    /// The section's name as used in field paths (`outer.smac_47_16`).
    pub const fn name(self) -> &'static str {
        match self {
            Section::Outer => "outer",
            Section::Misc => "misc",
            Section::Inner => "inner",
            Section::Misc2 => "misc2",
            Section::Misc3 => "misc3",
            Section::Misc4 => "misc4",
            Section::Misc5 => "misc5",
        }
    }

    /// Position of the section in the buffer (0..7).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The criteria bit that enables this section.
    pub const fn criteria(self) -> MatchCriteria {
        MatchCriteria::from_bits_truncate(1 << self as u8)
    }

    /// The named fields of this section's layout.
    pub const fn fields(self) -> &'static [(&'static str, BitField)] {
        match self {
            Section::Outer | Section::Inner => prm::dr_match_spec::FIELDS,
            Section::Misc => prm::dr_match_set_misc::FIELDS,
            Section::Misc2 => prm::dr_match_set_misc2::FIELDS,
            Section::Misc3 => prm::dr_match_set_misc3::FIELDS,
            Section::Misc4 => prm::dr_match_set_misc4::FIELDS,
            Section::Misc5 => prm::dr_match_set_misc5::FIELDS,
        }
    }
}

/// Fields of the misc section that DR never copies from a user buffer: they have no
/// lookup, so rdma-core drops them silently. We drop them too when normalising (to
/// produce the same STEs), and the driver reports them to the user as unsupported.
pub const MISC_FIELDS_NEVER_COPIED: [&str; 4] = [
    "source_eswitch_owner_vhca_id",
    "outer_emd_tag",
    "inner_esp_spi",
    "outer_esp_spi",
];

/// A named field of a match parameter: its section and its PRM layout entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldRef {
    /// The section the field lives in.
    pub section: Section,
    /// The PRM field name.
    pub name: &'static str,
    /// Position and width inside the section.
    pub field: BitField,
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.section.name(), self.name)
    }
}

/// A match parameter: mask or value, laid out exactly as the PRM `fte_match_param`.
#[derive(Clone, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MatchParam {
    /// Outer headers.
    pub outer: [u8; SECTION_SIZE],
    /// Misc parameters.
    pub misc: [u8; SECTION_SIZE],
    /// Inner headers.
    pub inner: [u8; SECTION_SIZE],
    /// Misc parameters 2.
    pub misc2: [u8; SECTION_SIZE],
    /// Misc parameters 3.
    pub misc3: [u8; SECTION_SIZE],
    /// Misc parameters 4.
    pub misc4: [u8; SECTION_SIZE],
    /// Misc parameters 5.
    pub misc5: [u8; SECTION_SIZE],
}

impl Default for MatchParam {
    fn default() -> Self {
        MatchParam::new_zeroed()
    }
}

impl std::fmt::Debug for MatchParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_map();
        for (field, v) in self.nonzero_fields() {
            d.entry(&format_args!("{field}"), &format_args!("{v:#x}"));
        }
        d.finish()
    }
}

/// Why a user buffer cannot be read as a match parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchParamError {
    /// The buffer is longer than a match parameter.
    #[error("match buffer is {len} bytes, more than the {MATCH_PARAM_SIZE} of fte_match_param")]
    TooLong {
        /// The buffer's length.
        len: usize,
    },
}

impl MatchParam {
    /// A zero-copy view of a full 448-byte buffer.
    pub fn view(buf: &[u8; MATCH_PARAM_SIZE]) -> &MatchParam {
        MatchParam::ref_from_bytes(&buf[..]).expect("size and alignment are fixed")
    }

    /// A mutable zero-copy view of a full 448-byte buffer.
    pub fn view_mut(buf: &mut [u8; MATCH_PARAM_SIZE]) -> &mut MatchParam {
        MatchParam::mut_from_bytes(&mut buf[..]).expect("size and alignment are fixed")
    }

    /// A parameter from raw bytes; a shorter buffer is zero-extended (rdma-core accepts a
    /// prefix of the layout the same way).
    pub fn from_bytes(buf: &[u8]) -> Result<MatchParam, MatchParamError> {
        if buf.len() > MATCH_PARAM_SIZE {
            return Err(MatchParamError::TooLong { len: buf.len() });
        }
        let mut p = MatchParam::default();
        p.as_mut_bytes()[..buf.len()].copy_from_slice(buf);
        Ok(p)
    }

    /// The normalised copy DR builds from a user buffer (`dr_ste_copy_param`): sections not
    /// enabled by `criteria` stay zero; inside enabled sections only the named, copied
    /// fields are kept (reserved bits and [`MISC_FIELDS_NEVER_COPIED`] are dropped).
    pub fn copy_from(criteria: MatchCriteria, user: &MatchParam) -> MatchParam {
        let mut out = MatchParam::default();
        for section in Section::ALL {
            if !criteria.contains(section.criteria()) {
                continue;
            }
            let src = user.section(section);
            let dst = out.section_mut(section);
            for &(name, field) in section.fields() {
                if section == Section::Misc && MISC_FIELDS_NEVER_COPIED.contains(&name) {
                    continue;
                }
                let v = bits::get(src, field);
                if v != 0 {
                    bits::set(dst, field, v);
                }
            }
        }
        out
    }

    /// The bytes of one section.
    pub fn section(&self, s: Section) -> &[u8; SECTION_SIZE] {
        match s {
            Section::Outer => &self.outer,
            Section::Misc => &self.misc,
            Section::Inner => &self.inner,
            Section::Misc2 => &self.misc2,
            Section::Misc3 => &self.misc3,
            Section::Misc4 => &self.misc4,
            Section::Misc5 => &self.misc5,
        }
    }

    /// The bytes of one section, mutable.
    pub fn section_mut(&mut self, s: Section) -> &mut [u8; SECTION_SIZE] {
        match s {
            Section::Outer => &mut self.outer,
            Section::Misc => &mut self.misc,
            Section::Inner => &mut self.inner,
            Section::Misc2 => &mut self.misc2,
            Section::Misc3 => &mut self.misc3,
            Section::Misc4 => &mut self.misc4,
            Section::Misc5 => &mut self.misc5,
        }
    }

    /// The outer or inner header section.
    pub fn spec(&self, inner: bool) -> &[u8; SECTION_SIZE] {
        if inner {
            &self.inner
        } else {
            &self.outer
        }
    }

    /// The outer or inner header section, mutable.
    pub fn spec_mut(&mut self, inner: bool) -> &mut [u8; SECTION_SIZE] {
        if inner {
            &mut self.inner
        } else {
            &mut self.outer
        }
    }

    /// Reads one field.
    pub fn get(&self, section: Section, field: BitField) -> u64 {
        bits::get(self.section(section), field)
    }

    /// Writes one field.
    pub fn set(&mut self, section: Section, field: BitField, value: u64) {
        bits::set(self.section_mut(section), field, value)
    }

    /// True when every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
    }

    /// The named fields that are non-zero, with their values, in buffer order.
    pub fn nonzero_fields(&self) -> impl Iterator<Item = (FieldRef, u64)> + '_ {
        Section::ALL.into_iter().flat_map(move |section| {
            let bytes = self.section(section);
            section.fields().iter().filter_map(move |&(name, field)| {
                let v = bits::get(bytes, field);
                (v != 0).then_some((
                    FieldRef {
                        section,
                        name,
                        field,
                    },
                    v,
                ))
            })
        })
    }

    /// The criteria whose sections hold a non-zero byte.
    pub fn used_criteria(&self) -> MatchCriteria {
        let mut c = MatchCriteria::empty();
        for s in Section::ALL {
            if self.section(s).iter().any(|&b| b != 0) {
                c |= s.criteria();
            }
        }
        c
    }

    /// Checks that every value bit is covered by the mask (`dr_rule_verify`): a rule value
    /// may only set bits its matcher's mask matches on. Returns the first field that has a
    /// value bit outside the mask.
    pub fn check_value_within_mask(
        mask: &MatchParam,
        value: &MatchParam,
    ) -> Result<(), ValueOutsideMask> {
        for section in Section::ALL {
            let m = mask.section(section);
            let v = value.section(section);
            if v.iter().zip(m.iter()).all(|(v, m)| v & !m == 0) {
                continue;
            }
            for &(name, field) in section.fields() {
                let (fv, fm) = (bits::get(v, field), bits::get(m, field));
                if fv & !fm != 0 {
                    return Err(ValueOutsideMask {
                        field: FieldRef {
                            section,
                            name,
                            field,
                        },
                        value: fv,
                        mask: fm,
                    });
                }
            }
            // Bits outside every named field (reserved space) still count.
            return Err(ValueOutsideMask {
                field: FieldRef {
                    section,
                    name: "reserved",
                    field: BitField::new(0, 8),
                },
                value: 0,
                mask: 0,
            });
        }
        Ok(())
    }
}

/// A value bit that its mask does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value of {field} is {value:#x}, which sets bits outside its mask {mask:#x}")]
pub struct ValueOutsideMask {
    /// The offending field.
    pub field: FieldRef,
    /// Its value.
    pub value: u64,
    /// Its mask.
    pub mask: u64,
}

/// Why DR's pre-check refuses a mask or a value (`dr_ste_build_pre_check`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreCheckError {
    /// An ip_version mask other than 0, 4 or 6: DR uses the mask to carry the version.
    #[error("{section}.ip_version mask is {mask}; it must be 0, 4 or 6 (the mask names the IP version)", section = .section.name())]
    IpVersionMask {
        /// Outer or inner.
        section: Section,
        /// The mask value.
        mask: u8,
    },
    /// A rule's ip_version differs from the matcher's.
    #[error("{section}.ip_version value {value} differs from the matcher's ip_version {mask}", section = .section.name())]
    IpVersionValue {
        /// Outer or inner.
        section: Section,
        /// The mask value.
        mask: u8,
        /// The rule value.
        value: u8,
    },
    /// A partial source_port mask: the vport lookup needs the whole port.
    #[error("misc.source_port mask {mask:#x} is partial; only 0 or 0xffff is supported")]
    PartialSourcePort {
        /// The mask value.
        mask: u16,
    },
}

/// DR's pre-check of a normalised mask, and of a rule's value when given
/// (`dr_ste_build_pre_check`). Without a value it is the matcher check; with one, the rule
/// check (which does not re-check the source port).
pub fn pre_check(
    criteria: MatchCriteria,
    mask: &MatchParam,
    value: Option<&MatchParam>,
) -> Result<(), PreCheckError> {
    use prm::dr_match_spec as spec;
    for (section, bit) in [
        (Section::Outer, MatchCriteria::OUTER),
        (Section::Inner, MatchCriteria::INNER),
    ] {
        if !criteria.contains(bit) {
            continue;
        }
        let m = mask.get(section, spec::IP_VERSION) as u8;
        if m == 0 {
            continue;
        }
        if m != 4 && m != 6 {
            return Err(PreCheckError::IpVersionMask { section, mask: m });
        }
        if let Some(value) = value {
            let v = value.get(section, spec::IP_VERSION) as u8;
            if v != m {
                return Err(PreCheckError::IpVersionValue {
                    section,
                    mask: m,
                    value: v,
                });
            }
        }
    }
    if value.is_none() && criteria.contains(MatchCriteria::MISC) {
        let sp = mask.get(Section::Misc, prm::dr_match_set_misc::SOURCE_PORT) as u16;
        if sp != 0 && sp != 0xffff {
            return Err(PreCheckError::PartialSourcePort { mask: sp });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_drops_disabled_sections_and_uncopied_fields() {
        let mut user = MatchParam::default();
        user.outer.fill(0xff);
        user.misc.fill(0xff);
        user.inner.fill(0xff);
        let m = MatchParam::copy_from(MatchCriteria::OUTER | MatchCriteria::MISC, &user);
        assert!(m.inner.iter().all(|&b| b == 0));
        // reserved_at_c0 of the header layout is dropped.
        assert_eq!(m.outer[0x18], 0);
        assert_eq!(m.get(Section::Outer, prm::dr_match_spec::TCP_FLAGS), 0x1ff);
        assert_eq!(
            m.get(
                Section::Misc,
                prm::dr_match_set_misc::SOURCE_ESWITCH_OWNER_VHCA_ID
            ),
            0
        );
        assert_eq!(
            m.get(Section::Misc, prm::dr_match_set_misc::SOURCE_PORT),
            0xffff
        );
    }

    #[test]
    fn value_outside_mask_names_the_field() {
        let mut mask = MatchParam::default();
        let mut value = MatchParam::default();
        mask.set(Section::Outer, prm::dr_match_spec::TCP_DPORT, 0xff00);
        value.set(Section::Outer, prm::dr_match_spec::TCP_DPORT, 0x0150);
        let e = MatchParam::check_value_within_mask(&mask, &value).unwrap_err();
        assert_eq!(e.field.to_string(), "outer.tcp_dport");
        value.set(Section::Outer, prm::dr_match_spec::TCP_DPORT, 0x0100);
        assert!(MatchParam::check_value_within_mask(&mask, &value).is_ok());
    }

    #[test]
    fn pre_check_rules() {
        let mut mask = MatchParam::default();
        mask.set(Section::Inner, prm::dr_match_spec::IP_VERSION, 5);
        assert!(pre_check(MatchCriteria::OUTER, &mask, None).is_ok());
        assert_eq!(
            pre_check(MatchCriteria::INNER, &mask, None),
            Err(PreCheckError::IpVersionMask {
                section: Section::Inner,
                mask: 5
            })
        );
        mask.set(Section::Inner, prm::dr_match_spec::IP_VERSION, 6);
        let value = MatchParam::default();
        assert!(pre_check(MatchCriteria::INNER, &mask, Some(&value)).is_err());
        mask.set(Section::Misc, prm::dr_match_set_misc::SOURCE_PORT, 0xff);
        assert!(pre_check(MatchCriteria::MISC, &mask, None).is_err());
        assert!(pre_check(MatchCriteria::MISC, &mask, Some(&value)).is_ok());
    }
}
