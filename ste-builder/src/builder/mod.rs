//! Lookup builders: from a matcher's mask to a chain of STE lookups, and from a rule's
//! value to each STE's tag.
//!
//! A builder covers one hardware lookup type (for example the outer IPv4 5-tuple). At
//! matcher creation [`SteBuild::new`] runs the builder's *init* on the matcher's
//! normalised mask: it decides the lookup type, the bit mask (or, for definers, the
//! definer mask) and the byte mask, and *consumes* the mask fields it covers. Fields
//! still set after all builders of a matcher have run cannot be matched. At rule
//! insertion [`SteBuild::tag`] writes the rule value's fields into the STE tag, consuming
//! them likewise.
//!
//! The encodings are per STE format: [`v0`] for ConnectX-5, [`v1`] for ConnectX-6 Dx and
//! ConnectX-7 (v2 reuses every v1 builder), with the definer-based builders in
//! [`definers`].

mod common;
pub mod definers;
mod kind;
mod steps;
pub mod v0;
pub mod v1;

pub use kind::BuilderKind;

use crate::bits::{self, BitField};
use crate::caps::Caps;
use crate::hash::HtblType;
use crate::match_param::MatchParam;
use crate::ste::SteFormat;
use steps::Step;

/// Writes a builder's tag for a value. Consumes the value fields it encodes.
pub(crate) type TagFn = fn(&SteBuild, &mut MatchParam, &Caps, &mut [u8]) -> Result<(), BuildError>;
/// Runs a builder's init on a mask. Consumes the mask fields it covers and fills
/// `lu_type`, `bit_mask`/`definer_match`, `byte_mask`, `htbl_type` and `tag_fn`.
pub(crate) type InitFn = fn(&mut SteBuild, &mut MatchParam, &Caps) -> Result<(), BuildError>;

/// Why a builder cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The STE format has no such lookup.
    #[error("the {builder} lookup does not exist in {format}")]
    Unavailable {
        /// The builder.
        builder: BuilderKind,
        /// The format.
        format: SteFormat,
    },
    /// A capability the lookup needs is missing or out of range.
    #[error("the {builder} lookup needs capability {cap}, which the device does not offer")]
    MissingCap {
        /// The builder.
        builder: BuilderKind,
        /// The capability.
        cap: &'static str,
    },
    /// A source port that the vport table does not know.
    #[error("source_port {vport:#x} is not a vport of this e-switch")]
    UnknownVport {
        /// The vport number.
        vport: u16,
    },
    /// The rule's tag sets a bit the STE does not compare, so no packet could ever hit
    /// the rule. rdma-core installs such rules anyway; see [`SteBuild::tag_checked`].
    #[error("the {builder} lookup cannot match this value: tag byte {byte} has bits outside the lookup's mask")]
    Unmatchable {
        /// The builder.
        builder: BuilderKind,
        /// The first offending tag byte.
        byte: usize,
    },
    /// The mask or value cannot be expressed by this lookup.
    #[error("the {builder} lookup cannot match this: {reason}")]
    Unsupported {
        /// The builder.
        builder: BuilderKind,
        /// What is wrong, in words.
        reason: &'static str,
    },
}

/// One STE lookup of a matcher, as chosen from the matcher's mask.
///
/// Invariant: `tag_fn` belongs to `kind` in `format`; for [`HtblType::Legacy`],
/// `byte_mask` is derived from `bit_mask`; for [`HtblType::Match`] it holds the definer
/// format id and `definer_match` the definer mask.
#[derive(Clone)]
pub struct SteBuild {
    /// The builder.
    pub kind: BuilderKind,
    /// The STE format it encodes for.
    pub format: SteFormat,
    /// Inner headers (true) or outer headers.
    pub inner: bool,
    /// RX side (true) or TX side.
    pub rx: bool,
    /// Lookup type. For definers, `0x0400` before the definer object id is ORed in.
    pub lu_type: u16,
    /// Legacy tables: which tag bytes are hashed. Definers: the definer format id.
    pub byte_mask: u16,
    /// Legacy tables: the 16-byte bit mask written into each STE.
    pub bit_mask: [u8; 16],
    /// Definers: the 32-byte definer mask sent with `CREATE_DEFINER`.
    pub definer_match: [u8; 32],
    /// The kind of hash table the lookup uses.
    pub htbl_type: HtblType,
    pub(crate) tag_fn: TagFn,
    /// The value encoding as steps, when `tag_fn` is exactly running them on a
    /// [`crate::hash::LEGACY_TAG_SIZE`]-byte tag.
    pub(crate) steps: Option<&'static [Step]>,
    /// The steps a value within the mask given to [`SteBuild::restrict_to`] can use.
    restricted: Option<Restricted>,
}

/// A lookup's encoding cut to the steps the values within one mask can use.
#[derive(Clone)]
struct Restricted {
    /// The kept steps in their order, each in its quickest form.
    steps: Box<[Step]>,
    /// The kept steps prepared for values that are not consumed.
    program: steps::Program,
}

impl std::fmt::Debug for SteBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteBuild")
            .field("kind", &self.kind)
            .field("format", &self.format)
            .field("inner", &self.inner)
            .field("rx", &self.rx)
            .field("lu_type", &format_args!("{:#x}", self.lu_type))
            .field("byte_mask", &format_args!("{:#x}", self.byte_mask))
            .field("htbl_type", &self.htbl_type)
            .finish_non_exhaustive()
    }
}

fn no_tag(_: &SteBuild, _: &mut MatchParam, _: &Caps, _: &mut [u8]) -> Result<(), BuildError> {
    Ok(())
}

impl SteBuild {
    /// Chooses the lookup `kind` for `mask` (the matcher's normalised mask) in `format`,
    /// consuming the mask fields it covers.
    ///
    /// On error `mask` may have been partly consumed; callers work on a copy.
    pub fn new(
        format: SteFormat,
        kind: BuilderKind,
        inner: bool,
        rx: bool,
        mask: &mut MatchParam,
        caps: &Caps,
    ) -> Result<SteBuild, BuildError> {
        let mut sb = SteBuild {
            kind,
            format,
            inner,
            rx,
            lu_type: 0,
            byte_mask: 0,
            bit_mask: [0; 16],
            definer_match: [0; 32],
            htbl_type: HtblType::Legacy,
            tag_fn: no_tag,
            steps: None,
            restricted: None,
        };
        let init = match format {
            SteFormat::V0 => v0::init_fn(kind),
            SteFormat::V1 | SteFormat::V2 => v1::init_fn(kind),
        }
        .ok_or(BuildError::Unavailable {
            builder: kind,
            format,
        })?;
        init(&mut sb, mask, caps)?;
        Ok(sb)
    }

    /// Writes the tag of `value` (a rule's normalised value) into `tag`, which must be
    /// zeroed and at least [`Self::tag_len`] bytes; consumes the value fields encoded.
    pub fn tag(
        &self,
        value: &mut MatchParam,
        caps: &Caps,
        tag: &mut [u8],
    ) -> Result<(), BuildError> {
        (self.tag_fn)(self, value, caps, tag)
    }

    /// Like [`Self::tag`], and then checks that the STE can ever match the tag: every tag
    /// bit must lie under the mask the hardware compares (the STE bit mask, or the
    /// definer mask). A few rdma-core encodings break this for values no packet can
    /// carry (for example both TCP and UDP ports, which the 5-tuple lookup overlays);
    /// a driver should refuse such rules rather than install an unreachable one.
    pub fn tag_checked(
        &self,
        value: &mut MatchParam,
        caps: &Caps,
        tag: &mut [u8],
    ) -> Result<(), BuildError> {
        self.tag(value, caps, tag)?;
        self.check_reachable(tag)
    }

    /// [`BuildError::Unmatchable`] when `tag` has a bit the hardware does not compare.
    fn check_reachable(&self, tag: &[u8]) -> Result<(), BuildError> {
        let compared = self.compared_mask();
        if within(tag, compared) {
            return Ok(());
        }
        match tag.iter().zip(compared).position(|(t, m)| t & !m != 0) {
            Some(byte) => Err(BuildError::Unmatchable {
                builder: self.kind,
                byte,
            }),
            None => Ok(()),
        }
    }

    /// Prepares [`Self::tag_checked_within`] for the values within `mask`: the
    /// matcher's whole normalised mask (not what is left of it for this lookup). A
    /// lookup whose encoding is a list of steps keeps only the steps that read a field
    /// `mask` sets: the others read zeros from every such value (consuming only clears
    /// bits, so earlier lookups cannot change that) and do nothing.
    pub fn restrict_to(&mut self, mask: &MatchParam) {
        let tag_len = crate::hash::LEGACY_TAG_SIZE;
        let compared = self.bit_mask;
        self.restricted = self.steps.map(|all| {
            let kept: Vec<Step> = all
                .iter()
                .filter(|s| s.reads_any_of(mask))
                .copied()
                .collect();
            Restricted {
                steps: kept.iter().map(|s| s.compiled(tag_len)).collect(),
                program: steps::Program::new(&kept, mask, &compared),
            }
        });
    }

    /// [`Self::tag_checked_within`] without consuming `value`, for a lookup of a chain
    /// that [`restrict_chain`] found can be tagged so. Any other lookup encodes a copy
    /// of `value` in full (what a chain's first lookup would do). Unlike the other tag
    /// functions it writes the whole of `tag`, which need not be zeroed.
    // Inline: called per lookup per rule from the driver's crate.
    #[inline]
    pub fn tag_checked_unconsumed(
        &self,
        value: &MatchParam,
        caps: &Caps,
        tag: &mut [u8],
    ) -> Result<(), BuildError> {
        match (&self.restricted, <&mut [u8; 16]>::try_from(&mut *tag)) {
            (Some(restricted), Ok(tag)) => {
                let program = &restricted.program;
                program.run(self.kind, value, tag)?;
                if program.reachable {
                    return Ok(());
                }
                self.check_reachable(tag)
            }
            _ => {
                tag.fill(0);
                self.tag_checked(&mut value.clone(), caps, tag)
            }
        }
    }

    /// [`Self::tag_checked`] for a value within the mask given to
    /// [`Self::restrict_to`] (the same tag, consumption and errors), running only the
    /// steps such a value can use. Without a restriction it is `tag_checked`.
    pub fn tag_checked_within(
        &self,
        value: &mut MatchParam,
        caps: &Caps,
        tag: &mut [u8],
    ) -> Result<(), BuildError> {
        let Some(Restricted {
            steps: kept,
            program,
        }) = &self.restricted
        else {
            return self.tag_checked(value, caps, tag);
        };
        const LEN: usize = crate::hash::LEGACY_TAG_SIZE;
        if tag.len() == LEN {
            steps::run(kept, self.kind, value, tag)?;
            if program.reachable {
                // From a zeroed tag, the kept steps set only compared bits.
                return Ok(());
            }
        } else {
            // As the full encoding does: work on a whole tag, give the caller what fits.
            let mut t = [0u8; LEN];
            let n = tag.len().min(LEN);
            t[..n].copy_from_slice(&tag[..n]);
            steps::run(kept, self.kind, value, &mut t)?;
            tag[..n].copy_from_slice(&t[..n]);
        }
        self.check_reachable(tag)
    }

    /// The mask the hardware applies before comparing with the tag: the STE bit mask for
    /// legacy lookups, the definer mask for definer lookups. Its length is
    /// [`Self::tag_len`].
    pub fn compared_mask(&self) -> &[u8] {
        match self.htbl_type {
            HtblType::Legacy => &self.bit_mask,
            HtblType::Match => &self.definer_match,
        }
    }

    /// Bytes of tag this lookup writes: 16 for legacy lookups, 32 for definers.
    pub fn tag_len(&self) -> usize {
        match self.htbl_type {
            HtblType::Legacy => crate::hash::LEGACY_TAG_SIZE,
            HtblType::Match => crate::hash::MATCH_TAG_SIZE,
        }
    }
}

/// Restricts every lookup of a chain to `mask`, the matcher's whole normalised mask
/// ([`SteBuild::restrict_to`]), and tells whether the chain may tag a value within it
/// with [`SteBuild::tag_checked_unconsumed`], lookup after lookup, instead of consuming
/// a copy of it: true when every lookup has steps and no step reads a field an
/// earlier step (of the chain) may have consumed, so every step reads the field as the
/// value has it.
pub fn restrict_chain(chain: &mut [SteBuild], mask: &MatchParam) -> bool {
    let mut touched = MatchParam::default();
    let mut unconsumed = true;
    for b in chain.iter_mut() {
        b.restrict_to(mask);
        let Some(all) = b.steps else {
            unconsumed = false;
            continue;
        };
        for step in all.iter().filter(|s| s.reads_any_of(mask)) {
            let reads = step.reads();
            for &(section, field) in reads.iter().flatten() {
                if touched.get(section, field) != 0 {
                    unconsumed = false;
                }
            }
            for &(section, field) in reads.iter().flatten() {
                touched.set(section, field, field.max());
            }
        }
    }
    unconsumed
}

/// True when every bit of `tag` lies under `mask` (over their common length), tested
/// 16 bytes at a time; false may also mean "look byte by byte" (an odd length).
#[inline]
fn within(tag: &[u8], mask: &[u8]) -> bool {
    let n = tag.len().min(mask.len());
    let word = |b: &[u8]| u128::from_ne_bytes(b.try_into().unwrap_or([0; 16]));
    n % 16 == 0
        && tag[..n]
            .chunks_exact(16)
            .zip(mask[..n].chunks_exact(16))
            .all(|(t, m)| word(t) & !word(m) == 0)
}

/// The always-hit lookup (`empty_always_hit`): don't-care type, empty mask, no tag. A
/// matcher with an empty mask uses it, and so does any format.
pub(crate) fn init_empty_always_hit(
    sb: &mut SteBuild,
    _mask: &mut MatchParam,
    _caps: &Caps,
) -> Result<(), BuildError> {
    sb.lu_type = crate::ste::LU_TYPE_DONT_CARE;
    sb.byte_mask = 0;
    sb.bit_mask = [0; 16];
    sb.tag_fn = no_tag;
    Ok(())
}

// ---- helpers shared by the per-format builders -------------------------------------------

/// Moves a match field into a tag (or bit mask) field: when the source is non-zero, its
/// value is written (truncated to the destination width) and the source is cleared. A
/// zero source writes nothing, so several sources may feed one destination.
#[inline]
pub(crate) fn put(dst: &mut [u8], dst_field: BitField, src: &mut [u8], src_field: BitField) {
    let v = bits::get(src, src_field);
    if v != 0 {
        bits::set(dst, dst_field, v);
        bits::set(src, src_field, 0);
    }
}

/// Like [`put`], but writes all ones into the destination when the source is non-zero
/// (for fields whose mask selects "this field matters" rather than a bit pattern).
#[inline]
pub(crate) fn put_ones(dst: &mut [u8], dst_field: BitField, src: &mut [u8], src_field: BitField) {
    if bits::get(src, src_field) != 0 {
        bits::set(dst, dst_field, u64::MAX);
        bits::set(src, src_field, 0);
    }
}

/// Like [`put`] with a given value: when the source is non-zero, writes `value` and
/// clears the source.
#[inline]
pub(crate) fn put_val(
    dst: &mut [u8],
    dst_field: BitField,
    src: &mut [u8],
    src_field: BitField,
    value: u64,
) {
    if bits::get(src, src_field) != 0 {
        bits::set(dst, dst_field, value);
        bits::set(src, src_field, 0);
    }
}

/// Finishes a legacy lookup: the byte mask is derived from the bit mask.
#[inline]
pub(crate) fn finish_legacy(sb: &mut SteBuild, lu_type: u16, tag_fn: TagFn) {
    sb.lu_type = lu_type;
    sb.htbl_type = HtblType::Legacy;
    sb.byte_mask = crate::hash::byte_mask_of(&sb.bit_mask);
    sb.tag_fn = tag_fn;
}
