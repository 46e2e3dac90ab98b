//! Tags as data: lookups whose value encoding is a fixed list of steps, and the part of
//! that list one matcher's mask can ever use.
//!
//! Most lookups turn a value into a tag by moving fields ([`super::put`]), with the L3
//! type and the VLAN qualifiers as the only translations. Written down as [`Step`]s,
//! such an encoding can be cut once per matcher: a step whose source fields are zero in
//! the matcher's mask reads zeros from every value within that mask (and consuming a
//! field only clears bits, so it still reads zeros after earlier lookups ran), and a
//! step reading zeros writes nothing and fails nothing. Leaving such steps out
//! therefore changes no tag and no error for those values; see
//! [`super::SteBuild::restrict_to`].

use super::common::{
    l3_type_code, put_l3_type, put_vlan_qualifier, VLAN_QUALIFIER_CVLAN, VLAN_QUALIFIER_SVLAN,
};
use super::{put, BuildError, BuilderKind};
use crate::bits::{self, BitField};
use crate::match_param::{MatchParam, Section, SECTION_SIZE};
use crate::prm::dr_match_spec as spec;

/// One step of a value encoding, run in order on the value and the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Moves field `src` of `section` into tag field `dst` ([`super::put`]).
    Put {
        dst: BitField,
        section: Section,
        src: BitField,
    },
    /// The header section's IP version as the L3 type code
    /// ([`super::common::put_l3_type`]; fails for a version other than 4 or 6).
    L3Type { dst: BitField, section: Section },
    /// A VLAN qualifier from the C-VLAN or S-VLAN tag bit of `section`
    /// ([`super::common::put_vlan_qualifier`]).
    VlanQualifier {
        dst: BitField,
        section: Section,
        cvlan: BitField,
        svlan: BitField,
    },
    /// A [`Step::Put`] between two fields that each lie in one 64-bit big-endian word
    /// of their buffer, as [`Step::compiled`] works it out: the field is
    /// `(word >> shift) & max` of the word starting at byte `at`.
    Move {
        section: Section,
        src: Word,
        dst: Word,
    },
}

/// Where a field lies in a 64-bit big-endian word of its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word's first byte.
    at: u8,
    /// The field's lowest bit in the word.
    shift: u8,
    /// The field's all-ones value.
    max: u64,
}

impl Word {
    /// `field` in a buffer of `len` bytes, if an 8-byte word of the buffer holds it
    /// (the word ending with the field's last byte, or the first word).
    fn of(field: BitField, len: usize) -> Option<Word> {
        let first = field.offset / 8;
        let last = field.end_byte();
        if last - first > 8 || field.width > 64 {
            return None;
        }
        let at = last.saturating_sub(8);
        if at + 8 > len {
            return None;
        }
        let trailing = last * 8 - (field.offset + field.width);
        Some(Word {
            at: u8::try_from(at).ok()?,
            shift: u8::try_from(trailing + (at + 8 - last) * 8).ok()?,
            max: field.max(),
        })
    }

    fn load(&self, buf: &[u8]) -> u64 {
        let at = usize::from(self.at);
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[at..at + 8]);
        u64::from_be_bytes(w)
    }

    fn store(&self, buf: &mut [u8], word: u64) {
        let at = usize::from(self.at);
        buf[at..at + 8].copy_from_slice(&word.to_be_bytes());
    }
}

impl Step {
    /// A field move.
    pub(crate) const fn put(dst: BitField, section: Section, src: BitField) -> Step {
        Step::Put { dst, section, src }
    }

    /// The step in its quickest form for a tag of `tag_len` bytes: a field move whose
    /// fields each fit one word becomes a [`Step::Move`].
    pub(crate) fn compiled(self, tag_len: usize) -> Step {
        if let Step::Put { dst, section, src } = self {
            let words = Word::of(src, SECTION_SIZE).zip(Word::of(dst, tag_len));
            if let Some((src, dst)) = words {
                return Step::Move { section, src, dst };
            }
        }
        self
    }

    /// The value fields the step reads (and may consume). A [`Step::Move`] no longer
    /// knows its field: ask before [`Step::compiled`].
    pub(crate) fn reads(&self) -> [Option<(Section, BitField)>; 2] {
        match *self {
            Step::Put { section, src, .. } => [Some((section, src)), None],
            Step::L3Type { section, .. } => [Some((section, spec::IP_VERSION)), None],
            Step::VlanQualifier {
                section,
                cvlan,
                svlan,
                ..
            } => [Some((section, cvlan)), Some((section, svlan))],
            Step::Move { .. } => [None, None],
        }
    }

    /// Whether the step can read a non-zero source for some value within `mask`.
    pub(crate) fn reads_any_of(&self, mask: &MatchParam) -> bool {
        match *self {
            Step::Put { section, src, .. } => mask.get(section, src) != 0,
            Step::Move { section, src, .. } => {
                (src.load(mask.section(section)) >> src.shift) & src.max != 0
            }
            Step::L3Type { section, .. } => mask.get(section, spec::IP_VERSION) != 0,
            Step::VlanQualifier {
                section,
                cvlan,
                svlan,
                ..
            } => mask.get(section, cvlan) != 0 || mask.get(section, svlan) != 0,
        }
    }
}

/// Where each kept step of a restricted encoding may write: the bits of a 16-byte tag
/// (as one big-endian number, so tag bit `i` in PRM numbering is bit `127 - i`).
fn tag_bits(field: BitField, value: u64) -> u128 {
    let end = field.offset + field.width;
    if end > 128 {
        // Not a 16-byte tag field: counts as all of the tag, never as free bits.
        return u128::MAX;
    }
    u128::from(value & field.max()) << (128 - end)
}

impl Step {
    /// The tag field the step writes.
    fn writes(&self) -> Option<BitField> {
        match *self {
            Step::Put { dst, .. } | Step::L3Type { dst, .. } | Step::VlanQualifier { dst, .. } => {
                Some(dst)
            }
            Step::Move { .. } => None,
        }
    }

    /// The tag bits the step can set for a value within `mask`: a field move sets
    /// only bits the mask has in its source (truncated to the destination), the
    /// translations any bit of their field. Ask before [`Step::compiled`].
    fn may_set(&self, mask: &MatchParam) -> u128 {
        match *self {
            Step::Put { dst, section, src } => tag_bits(dst, mask.get(section, src)),
            Step::L3Type { dst, .. } | Step::VlanQualifier { dst, .. } => tag_bits(dst, u64::MAX),
            Step::Move { .. } => u128::MAX,
        }
    }
}

/// A field move into tag bits that no other step of its encoding writes. From a zeroed
/// tag, OR-ing the source field in (zero or not) leaves what [`super::put`] leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OrMove {
    /// The first byte of the 8-byte big-endian word of the whole value (all sections
    /// in buffer order) that holds the source field.
    src: u16,
    /// The source field's lowest bit in that word.
    src_shift: u8,
    /// The tag word (0: bytes 0..8, 1: bytes 8..16) that holds the destination field.
    word: u8,
    /// The destination field's lowest bit in that tag word.
    dst_shift: u8,
    /// The bits that land: the source field's all-ones value cut to the destination's
    /// width.
    max: u64,
}

impl OrMove {
    /// `Put { dst, section, src }` as an [`OrMove`], when its source fits a word of the
    /// value and its destination a word of a 16-byte tag.
    fn of(dst: BitField, section: Section, src: BitField) -> Option<OrMove> {
        let from = Word::of(src, SECTION_SIZE)?;
        let end = dst.offset + dst.width;
        let word = dst.offset / 64;
        if word > 1 || (end - 1) / 64 != word {
            return None;
        }
        let flat = section.index() * SECTION_SIZE + usize::from(from.at);
        Some(OrMove {
            src: u16::try_from(flat).ok()?,
            src_shift: from.shift,
            word: u8::try_from(word).ok()?,
            dst_shift: u8::try_from(64 * (word + 1) - end).ok()?,
            max: from.max & dst.max(),
        })
    }
}

/// A restricted encoding (see [`super::SteBuild::restrict_to`]) prepared to tag values
/// within its mask without consuming them: the moves into tag bits only they write, run
/// in two registers, then the other steps in their order.
///
/// Invariant: for a value within the mask it was made for (and no field a step reads
/// consumed by an earlier lookup), [`Program::run`] gives the tag and the error that
/// [`run`] of the restricted steps gives on a zeroed tag, whatever `tag` held before.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    moves: Box<[OrMove]>,
    /// An L3 type step into bits only it writes: the move reads the whole IP version,
    /// whose code is OR-ed in.
    l3_type: Option<OrMove>,
    rest: Box<[Step]>,
    /// No value within the mask can set a tag bit outside `compared` (the lookup's bit
    /// mask): the reachability check cannot fail.
    pub(crate) reachable: bool,
}

impl Program {
    /// The program of `kept`, the steps of an encoding that read a field of `mask`
    /// (uncompiled, in order), for a 16-byte tag compared under `compared`.
    pub(crate) fn new(kept: &[Step], mask: &MatchParam, compared: &[u8; 16]) -> Program {
        let dst_bits: Vec<u128> = kept
            .iter()
            .map(|s| s.writes().map_or(u128::MAX, |f| tag_bits(f, u64::MAX)))
            .collect();
        let (mut moves, mut l3_type, mut rest) = (Vec::new(), None, Vec::new());
        for (i, step) in kept.iter().enumerate() {
            let others = dst_bits
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(0u128, |acc, (_, b)| acc | b);
            let alone = dst_bits[i] & others == 0;
            match *step {
                Step::Put { dst, section, src } if alone => {
                    if let Some(m) = OrMove::of(dst, section, src) {
                        moves.push(m);
                        continue;
                    }
                }
                Step::L3Type { dst, section } if alone && l3_type.is_none() => {
                    if let Some(m) = OrMove::of(dst, section, spec::IP_VERSION) {
                        // Read the whole version; its code (1 or 2) fits the field.
                        l3_type = Some(OrMove {
                            max: spec::IP_VERSION.max(),
                            ..m
                        });
                        continue;
                    }
                }
                _ => {}
            }
            rest.push(step.compiled(crate::hash::LEGACY_TAG_SIZE));
        }
        let may_set = kept.iter().fold(0u128, |acc, s| acc | s.may_set(mask));
        Program {
            moves: moves.into(),
            l3_type,
            rest: rest.into(),
            reachable: may_set & !u128::from_be_bytes(*compared) == 0,
        }
    }

    /// Writes the whole tag of `value` (which `tag` need not hold zeros for) without
    /// consuming it; errors as [`run`] does.
    pub(crate) fn run(
        &self,
        kind: BuilderKind,
        value: &MatchParam,
        tag: &mut [u8; 16],
    ) -> Result<(), BuildError> {
        use zerocopy::IntoBytes;
        let bytes = value.as_bytes();
        let mut acc = [0u64; 2];
        for m in self.moves.iter() {
            let at = usize::from(m.src);
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            let v = (u64::from_be_bytes(w) >> m.src_shift) & m.max;
            acc[usize::from(m.word & 1)] |= v << m.dst_shift;
        }
        if let Some(m) = &self.l3_type {
            let at = usize::from(m.src);
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            let version = (u64::from_be_bytes(w) >> m.src_shift) & m.max;
            let code = l3_type_code(version, kind)?.unwrap_or(0);
            acc[usize::from(m.word & 1)] |= code << m.dst_shift;
        }
        tag[..8].copy_from_slice(&acc[0].to_be_bytes());
        tag[8..].copy_from_slice(&acc[1].to_be_bytes());
        if self.rest.is_empty() {
            return Ok(());
        }
        run_unconsumed(&self.rest, kind, value, tag)
    }
}

/// The outer or inner header section.
pub(crate) const fn headers(inner: bool) -> Section {
    if inner {
        Section::Inner
    } else {
        Section::Outer
    }
}

/// [`run`] without consuming: the same tag and errors, `value` left as it is. Only
/// equivalent when no field a step reads was consumed by an earlier step (see
/// [`super::restrict_chain`]).
// Out of line: [`Program::run`] calls it only for the few steps it has no shortcut for.
#[inline(never)]
pub(crate) fn run_unconsumed(
    steps: &[Step],
    kind: BuilderKind,
    value: &MatchParam,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    for step in steps {
        match *step {
            Step::Put { dst, section, src } => {
                let v = bits::get(value.section(section), src);
                if v != 0 {
                    bits::set(tag, dst, v);
                }
            }
            Step::L3Type { dst, section } => {
                let version = bits::get(value.section(section), spec::IP_VERSION);
                if let Some(code) = l3_type_code(version, kind)? {
                    bits::set(tag, dst, code);
                }
            }
            Step::VlanQualifier {
                dst,
                section,
                cvlan,
                svlan,
            } => {
                let headers = value.section(section);
                if bits::get(headers, cvlan) != 0 {
                    bits::set(tag, dst, VLAN_QUALIFIER_CVLAN);
                } else if bits::get(headers, svlan) != 0 {
                    bits::set(tag, dst, VLAN_QUALIFIER_SVLAN);
                }
            }
            Step::Move { section, src, dst } => {
                let v = (src.load(value.section(section)) >> src.shift) & src.max;
                if v != 0 {
                    let mask = dst.max << dst.shift;
                    let old = dst.load(tag);
                    dst.store(tag, (old & !mask) | ((v << dst.shift) & mask));
                }
            }
        }
    }
    Ok(())
}

/// Runs `steps` of lookup `kind`: writes `value`'s fields into `tag` and consumes them.
pub(crate) fn run(
    steps: &[Step],
    kind: BuilderKind,
    value: &mut MatchParam,
    tag: &mut [u8],
) -> Result<(), BuildError> {
    for step in steps {
        match *step {
            Step::Put { dst, section, src } => put(tag, dst, value.section_mut(section), src),
            Step::L3Type { dst, section } => {
                put_l3_type(tag, dst, value.section_mut(section), kind)?
            }
            Step::VlanQualifier {
                dst,
                section,
                cvlan,
                svlan,
            } => put_vlan_qualifier(tag, dst, value.section_mut(section), cvlan, svlan),
            Step::Move { section, src, dst } => {
                // `put`, word-wise: a non-zero source is written (truncated to the
                // destination) and cleared.
                let from = value.section_mut(section);
                let word = src.load(from);
                let v = (word >> src.shift) & src.max;
                if v != 0 {
                    let mask = dst.max << dst.shift;
                    let old = dst.load(tag);
                    dst.store(tag, (old & !mask) | ((v << dst.shift) & mask));
                    src.store(from, word & !(src.max << src.shift));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::SteBuild;
    use crate::caps::Caps;
    use crate::ste::SteFormat;

    /// For random masks and values within them, the restricted encoding gives the full
    /// encoding's result: the same tag or error, and the same value left over.
    #[test]
    fn restricted_steps_tag_like_the_full_encoding() {
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let kinds = [
            BuilderKind::EthL2Src,
            BuilderKind::EthL2Dst,
            BuilderKind::EthL2SrcDst,
            BuilderKind::EthL2Tnl,
            BuilderKind::EthL3Ipv4_5Tuple,
        ];
        let caps = Caps::default();
        let (mut compared, mut unmatchable) = (0, 0);
        for round in 0..4000 {
            let kind = kinds[round % kinds.len()];
            let inner = round % 8 >= 4;
            // Sparse masks: each field-ish byte run is on with some probability, so
            // that many steps are cut and many are kept.
            let mut mask = MatchParam::default();
            for s in [Section::Outer, Section::Misc, Section::Inner] {
                for b in mask.section_mut(s).iter_mut() {
                    if next() % 4 == 0 {
                        *b = next() as u8;
                    }
                }
            }
            // An IP version the value may carry.
            let version = [0u64, 4, 6, 5][(next() % 4) as usize];
            let h = headers(inner);
            mask.set(h, spec::IP_VERSION, if version == 0 { 0 } else { 0xf });
            let mut left = mask.clone();
            let mut sb = SteBuild::new(SteFormat::V1, kind, inner, true, &mut left, &caps)
                .expect("the lookup takes any mask");
            assert!(sb.steps.is_some(), "{kind:?} has steps");
            sb.restrict_to(&mask);
            for _ in 0..4 {
                let mut value = MatchParam::default();
                for s in Section::ALL {
                    let m = *mask.section(s);
                    for (v, m) in value.section_mut(s).iter_mut().zip(m) {
                        *v = next() as u8 & m;
                    }
                }
                if version != 0 {
                    value.set(h, spec::IP_VERSION, version);
                }
                let (mut full_v, mut fast_v) = (value.clone(), value.clone());
                let (mut full_t, mut fast_t) = ([0u8; 16], [0u8; 16]);
                let full = sb.tag_checked(&mut full_v, &caps, &mut full_t);
                let fast = sb.tag_checked_within(&mut fast_v, &caps, &mut fast_t);
                assert_eq!(fast, full, "{kind:?} inner={inner}");
                // A lone lookup reads nothing consumed: it may also tag in place, into
                // a buffer holding anything.
                let mut in_place_t = (u128::from(next()) << 64 | u128::from(next())).to_be_bytes();
                let in_place = sb.tag_checked_unconsumed(&value, &caps, &mut in_place_t);
                assert_eq!(in_place, full, "{kind:?} inner={inner}");
                if full.is_ok() {
                    assert_eq!(fast_t, full_t, "{kind:?} inner={inner}");
                    assert_eq!(fast_v, full_v, "{kind:?} inner={inner}");
                    assert_eq!(in_place_t, full_t, "{kind:?} inner={inner}");
                    compared += 1;
                }
                if matches!(full, Err(BuildError::Unmatchable { .. })) {
                    unmatchable += 1;
                }
            }
        }
        assert!(compared > 1000, "{compared} tags compared");
        // Overlaid fields (TCP and UDP ports) make some tags unmatchable: the check that
        // a restricted encoding may skip is exercised where it may not.
        assert!(unmatchable > 20, "{unmatchable} unmatchable tags");
    }

    /// A chain that `restrict_chain` lets tag without consuming gives, lookup by
    /// lookup, the tags and errors of the full encodings consuming one copy.
    #[test]
    fn unconsumed_chains_tag_like_consuming_ones() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        use BuilderKind as K;
        // (lookup, inner headers)
        let chains: [&[(BuilderKind, bool)]; 4] = [
            &[(K::EthL3Ipv4_5Tuple, false), (K::EthL2Src, false)],
            &[(K::EthL2Dst, false), (K::EthL2Src, false)],
            &[(K::EthL2SrcDst, false), (K::EthL3Ipv4_5Tuple, false)],
            // VXLAN: outer L2 and 5-tuple, the VNI with the inner L2, inner 5-tuple.
            &[
                (K::EthL2Dst, false),
                (K::EthL3Ipv4_5Tuple, false),
                (K::EthL2Tnl, true),
                (K::EthL3Ipv4_5Tuple, true),
            ],
        ];
        let caps = Caps::default();
        let (mut unconsumed_chains, mut consuming_chains) = (0, 0);
        for round in 0..3000 {
            let kinds = chains[round % chains.len()];
            let mut mask = MatchParam::default();
            for s in [Section::Outer, Section::Misc, Section::Inner] {
                for b in mask.section_mut(s).iter_mut() {
                    if next() % 6 == 0 {
                        *b = next() as u8;
                    }
                }
            }
            let mut left = mask.clone();
            let mut chain: Vec<SteBuild> = kinds
                .iter()
                .map(|&(k, inner)| {
                    SteBuild::new(SteFormat::V1, k, inner, true, &mut left, &caps).unwrap()
                })
                .collect();
            if !crate::builder::restrict_chain(&mut chain, &mask) {
                consuming_chains += 1;
                continue;
            }
            unconsumed_chains += 1;
            for _ in 0..4 {
                let mut value = MatchParam::default();
                for s in Section::ALL {
                    let m = *mask.section(s);
                    for (v, m) in value.section_mut(s).iter_mut().zip(m) {
                        *v = next() as u8 & m;
                    }
                }
                for h in [Section::Outer, Section::Inner] {
                    if next() % 2 == 0 {
                        value.set(h, spec::IP_VERSION, 4 & mask.get(h, spec::IP_VERSION));
                    }
                }
                let mut work = value.clone();
                for sb in &chain {
                    let mut full_t = [0u8; 16];
                    // The in-place encoding writes the whole tag over whatever it held.
                    let mut fast_t = (u128::from(next()) << 64 | u128::from(next())).to_be_bytes();
                    let full = sb.tag_checked(&mut work, &caps, &mut full_t);
                    let fast = sb.tag_checked_unconsumed(&value, &caps, &mut fast_t);
                    assert_eq!(fast, full, "{kinds:?}");
                    if full.is_err() {
                        break;
                    }
                    assert_eq!(fast_t, full_t, "{kinds:?}");
                }
            }
        }
        // Random masks give both outcomes often.
        assert!(
            unconsumed_chains > 300 && consuming_chains > 300,
            "{unconsumed_chains} {consuming_chains}"
        );
    }
}
