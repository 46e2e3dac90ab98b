//! The building blocks of the typed match: field values and PRM field references.
//!
//! A typed setter names a PRM field through a [`FieldRef`] computed at compile time from
//! the `ste_builder::prm` layout constants ([`prm_field`]), so a setter can only ever
//! point at a field the PRM tables know, and errors can name it (`outer.tcp_dport`).

use ste_builder::bits::BitField;
use ste_builder::match_param::FieldRef;
use ste_builder::Section;

mod sealed {
    pub trait Sealed {}
    impl Sealed for bool {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// A value a typed setter accepts: `bool` for one-bit fields, otherwise the smallest
/// unsigned integer that holds the field. Values wider than the field are refused by the
/// setter (a [`super::MatchError::TooWide`]), never truncated.
pub trait FieldValue: Copy + sealed::Sealed {
    /// The value as the PRM integer.
    fn bits(self) -> u64;

    /// The low bits of `v` as this type (tests drive every setter through it).
    #[cfg(test)]
    fn truncate(v: u64) -> Self;
}

impl FieldValue for bool {
    fn bits(self) -> u64 {
        u64::from(self)
    }
    #[cfg(test)]
    fn truncate(v: u64) -> Self {
        v & 1 != 0
    }
}

macro_rules! int_field_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn bits(self) -> u64 {
                u64::from(self)
            }
            #[cfg(test)]
            fn truncate(v: u64) -> Self {
                v as $t
            }
        }
    )*};
}
int_field_value!(u8, u16, u32);

/// The PRM field of `section` that lies at `bits`, with its PRM name.
///
/// Evaluated in const context by the setter tables, where a `bits` that is not a field of
/// the section is a compile error.
pub(crate) const fn prm_field(section: Section, bits: BitField) -> FieldRef {
    let fields = section.fields();
    let mut i = 0;
    while i < fields.len() {
        let (name, f) = fields[i];
        if f.offset == bits.offset && f.width == bits.width {
            return FieldRef {
                section,
                name,
                field: bits,
            };
        }
        i += 1;
    }
    panic!("not a field of this section's PRM layout");
}

/// A header field that exists once per header layer: its outer and its inner PRM field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layered {
    /// The field in the outer headers.
    pub outer: FieldRef,
    /// The field in the inner headers.
    pub inner: FieldRef,
}

/// A `dr_match_spec` field: the same layout in the outer and the inner header section.
pub(crate) const fn both(bits: BitField) -> Layered {
    Layered {
        outer: prm_field(Section::Outer, bits),
        inner: prm_field(Section::Inner, bits),
    }
}

/// A field that a misc section holds twice, once per layer (`outer_…` / `inner_…`).
pub(crate) const fn split(section: Section, outer: BitField, inner: BitField) -> Layered {
    Layered {
        outer: prm_field(section, outer),
        inner: prm_field(section, inner),
    }
}

/// Finds a PRM field by its path, `section.prm_name` (`outer.tcp_dport`,
/// `misc2.metadata_reg_c_0`).
pub fn field_by_path(path: &str) -> Option<FieldRef> {
    let (section, name) = path.split_once('.')?;
    let section = Section::ALL.into_iter().find(|s| s.name() == section)?;
    section
        .fields()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(name, field)| FieldRef {
            section,
            name,
            field,
        })
}
