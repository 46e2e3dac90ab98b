//! A matcher's builder chain: the STE lookups chosen once from its mask, and the
//! per-rule tags computed from them.
//!
//! [`BuilderChain::new`] checks and normalises the matcher's mask, picks the lookups
//! (definers when the device has them and one covers the mask, else the legacy lookups
//! in rdma-core's order, see [`super::select`]) and refuses a mask with any bit left that
//! no lookup consumed, naming the field. [`BuilderChain::rule_tags`] turns a rule's value
//! into one tag per STE without touching the heap.

use std::fmt;

use ste_builder::builder::BuildError;
use ste_builder::hash::MATCH_TAG_SIZE;
use ste_builder::match_param::{self, FieldRef, PreCheckError, ValueOutsideMask};
use ste_builder::prm::dr_match_set_misc as misc;
use ste_builder::{Caps, HtblType, MatchCriteria, MatchParam, Section, SteBuild, SteFormat};

use super::l4::{self, PortOfOtherProtocol, PortWithoutProtocol};
use super::plan::ValuePlan;
use super::select;
use super::typed::RawMatch;
use crate::caps::{CapsError, DeviceCaps, TableType};

/// The most lookups one rule may chain (rdma-core's `DR_RULE_MAX_STES`).
pub const MAX_LOOKUPS: usize = 20;

/// The uplink's vport number.
const WIRE_PORT: u64 = 0xffff;

/// The pipe a chain is for: a NIC domain has one, an FDB domain two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainSide {
    /// NIC receive.
    NicRx,
    /// NIC transmit.
    NicTx,
    /// FDB, traffic from the uplink.
    FdbRx,
    /// FDB, traffic from the vports.
    FdbTx,
}

impl DomainSide {
    /// The sides of a table type, RX first.
    pub fn of(table_type: TableType) -> &'static [DomainSide] {
        match table_type {
            TableType::NicRx => &[DomainSide::NicRx],
            TableType::NicTx => &[DomainSide::NicTx],
            TableType::Fdb => &[DomainSide::FdbRx, DomainSide::FdbTx],
        }
    }

    /// True on a receive side (its STEs use the RX lookup types and actions).
    pub fn rx(self) -> bool {
        matches!(self, DomainSide::NicRx | DomainSide::FdbRx)
    }

    /// The table type the side belongs to.
    pub fn table_type(self) -> TableType {
        match self {
            DomainSide::NicRx => TableType::NicRx,
            DomainSide::NicTx => TableType::NicTx,
            DomainSide::FdbRx | DomainSide::FdbTx => TableType::Fdb,
        }
    }
}

impl fmt::Display for DomainSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DomainSide::NicRx => "NIC RX",
            DomainSide::NicTx => "NIC TX",
            DomainSide::FdbRx => "FDB RX",
            DomainSide::FdbTx => "FDB TX",
        })
    }
}

/// What the lookup choice depends on besides the mask.
#[derive(Debug, Clone, Copy)]
pub struct ChainCaps<'a> {
    /// The STE format.
    pub format: SteFormat,
    /// The capabilities the STE encoders read (flex-parser ids, vports).
    pub ste: &'a Caps,
    /// `flex_parser_protocols`: which protocols have a flex parser
    /// ([`super::select::flex_protocols`]).
    pub flex_parser_protocols: u32,
    /// The GENEVE option-presence ("flex parser ok") lookup exists.
    pub flex_parser_ok_bits: bool,
    /// `match_definer_format_supported`: bit `n` means definer format `n`. Zero keeps to
    /// the legacy lookups (as when `CREATE_DEFINER` fails and a matcher falls back).
    pub definer_formats: u64,
}

impl<'a> ChainCaps<'a> {
    /// The chain capabilities of a device, with `ste` from [`DeviceCaps::ste_caps`].
    pub fn new(dev: &DeviceCaps, ste: &'a Caps) -> Result<ChainCaps<'a>, CapsError> {
        let format = dev.ste_format().ok_or(CapsError::UnknownSteeringFormat(
            dev.steering_format_version,
        ))?;
        Ok(ChainCaps {
            format,
            ste,
            flex_parser_protocols: dev.flex_parser_protocols,
            flex_parser_ok_bits: dev.flex_parser_ok_bits,
            definer_formats: dev.definer_formats,
        })
    }
}

/// Bits of a mask: a named PRM field, or reserved space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskBits {
    /// A named field.
    Field(FieldRef),
    /// Reserved bits in a byte of a section.
    Reserved {
        /// The section.
        section: Section,
        /// The byte within the section.
        byte: usize,
    },
}

impl MaskBits {
    /// The first set bits of `p`: its first non-zero named field, else its first
    /// non-zero byte (which then holds reserved bits only).
    fn first_of(p: &MatchParam) -> Option<MaskBits> {
        if let Some((f, _)) = p.nonzero_fields().next() {
            return Some(MaskBits::Field(f));
        }
        Section::ALL.into_iter().find_map(|section| {
            let byte = p.section(section).iter().position(|&b| b != 0)?;
            Some(MaskBits::Reserved { section, byte })
        })
    }
}

impl fmt::Display for MaskBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskBits::Field(field) => write!(f, "{field}"),
            MaskBits::Reserved { section, byte } => {
                write!(f, "reserved bits in byte {byte} of {}", section.name())
            }
        }
    }
}

/// Why a matcher's mask cannot be matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// DR's pre-check refused the mask (IP version other than 4/6, partial source port).
    #[error(transparent)]
    PreCheck(#[from] PreCheckError),
    /// The mask matches L4 ports without the whole IP protocol (see [`super::l4`]).
    #[error(transparent)]
    PortWithoutProtocol(#[from] PortWithoutProtocol),
    /// The mask sets bits in a section its match criteria do not enable.
    #[error("the mask sets {bits}, but the match criteria do not enable the {section} section", section = .section.name())]
    OutsideCriteria {
        /// The first such bits.
        bits: MaskBits,
        /// Their section.
        section: Section,
    },
    /// Mask bits no lookup can match: reserved bits, a field DR has no lookup for, or a
    /// field left after all lookups ran (the format or the device lacks the lookup).
    #[error("no {format} lookup on {side} can match {bits}")]
    Unmatchable {
        /// The first such bits.
        bits: MaskBits,
        /// The STE format.
        format: SteFormat,
        /// The side.
        side: DomainSide,
    },
    /// A chosen lookup cannot encode the mask.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The mask needs more lookups than a rule may chain.
    #[error("the mask needs {count} lookups; a rule chains at most {MAX_LOOKUPS}")]
    TooManyLookups {
        /// Lookups needed.
        count: usize,
    },
    /// [`BuilderChain::bind_definer`] on a lookup that is not a definer.
    #[error("lookup {index} of the chain is not a definer lookup")]
    NotADefiner {
        /// The lookup's index.
        index: usize,
    },
    /// A definer object id does not fit the lookup type's low byte.
    #[error("definer object id {id:#x} does not fit the 8 bits the lookup type holds")]
    DefinerIdTooLarge {
        /// The id.
        id: u32,
    },
}

/// Why a rule's value cannot be turned into tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The value sets a bit its matcher's mask does not match on.
    #[error(transparent)]
    OutsideMask(#[from] ValueOutsideMask),
    /// DR's pre-check refused the value (its IP version differs from the matcher's).
    #[error(transparent)]
    PreCheck(#[from] PreCheckError),
    /// The value sets ports of another protocol than its own (see [`super::l4`]).
    #[error(transparent)]
    PortOfOtherProtocol(#[from] PortOfOtherProtocol),
    /// A lookup cannot encode the value, or no packet could hit the resulting STE
    /// ([`BuildError::Unmatchable`]), or the source port is not a known vport.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A rule's tags, one per STE of the chain, in chain order. Fixed size: computing them
/// does not allocate.
#[derive(Clone)]
pub struct RuleTags {
    len: usize,
    tag_len: [u8; MAX_LOOKUPS],
    tags: [[u8; MATCH_TAG_SIZE]; MAX_LOOKUPS],
}

impl Default for RuleTags {
    /// No tags: what [`BuilderChain::rule_tags_into`] fills.
    fn default() -> RuleTags {
        RuleTags::EMPTY
    }
}

impl RuleTags {
    /// No tags (a constant, so a `thread_local!` buffer can start as it).
    pub const EMPTY: RuleTags = RuleTags {
        len: 0,
        tag_len: [0; MAX_LOOKUPS],
        tags: [[0; MATCH_TAG_SIZE]; MAX_LOOKUPS],
    };

    /// Number of tags (the chain's length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no tag (never for a built chain).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tag of STE `i`: 16 bytes for legacy lookups, 32 for definers.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.len).then(|| &self.tags[i][..usize::from(self.tag_len[i])])
    }

    /// The tags in chain order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len).map(|i| &self.tags[i][..usize::from(self.tag_len[i])])
    }
}

impl fmt::Debug for RuleTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(HexTag)).finish()
    }
}

struct HexTag<'a>(&'a [u8]);

impl fmt::Debug for HexTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The STE lookups of one matcher on one side, chosen from its mask.
///
/// Invariants: 1 to [`MAX_LOOKUPS`] lookups; `mask` is the matcher's normalised mask
/// (only enabled sections, only named fields DR copies), and the lookups together
/// consume all of it (on the FDB RX side, all but the source port); `plan` was made
/// from `criteria` and `mask`.
#[derive(Debug, Clone)]
pub struct BuilderChain {
    side: DomainSide,
    format: SteFormat,
    criteria: MatchCriteria,
    mask: MatchParam,
    plan: ValuePlan,
    builders: Vec<SteBuild>,
    /// The lookups tag a value within the mask without consuming it
    /// ([`ste_builder::builder::restrict_chain`]).
    unconsumed: bool,
}

impl BuilderChain {
    /// Chooses the lookups for a matcher's `mask` on `side`.
    ///
    /// The mask is refused, with the first offending field named, when it sets bits in a
    /// section its criteria do not enable, reserved bits, fields DR has no lookup for, or
    /// fields no lookup of this format and device consumes; and when DR's pre-check
    /// refuses it. A mask with no bits at all gets the single always-hit lookup (rdma-core
    /// refuses such a mask unless its criteria are empty; it means "every packet").
    pub fn new(
        mask: &RawMatch,
        side: DomainSide,
        caps: &ChainCaps<'_>,
    ) -> Result<BuilderChain, ChainError> {
        let criteria = mask.criteria;
        let normalised = normalise(criteria, &mask.param, side, caps.format)?;
        match_param::pre_check(criteria, &normalised, None)?;
        l4::check_mask(criteria, &normalised)?;

        let builders = match select::definer_lookups(criteria, &normalised, side, caps) {
            Some(definers) => definers,
            None => {
                let (builders, left) = select::legacy_lookups(criteria, &normalised, side, caps)?;
                if let Some(bits) = MaskBits::first_of(&left) {
                    return Err(ChainError::Unmatchable {
                        bits,
                        format: caps.format,
                        side,
                    });
                }
                if builders.is_empty() {
                    // Nothing to compare (an empty mask, or only the source port on FDB
                    // RX): every packet hits.
                    let mut none = MatchParam::default();
                    vec![SteBuild::new(
                        caps.format,
                        ste_builder::BuilderKind::EmptyAlwaysHit,
                        false,
                        side.rx(),
                        &mut none,
                        caps.ste,
                    )?]
                } else {
                    builders
                }
            }
        };
        if builders.len() > MAX_LOOKUPS {
            return Err(ChainError::TooManyLookups {
                count: builders.len(),
            });
        }
        // Rule values are checked to lie within the normalised mask before they are
        // tagged, so each lookup may skip the encoding steps such values never use,
        // and, when no lookup reads what an earlier one consumes, read the value in
        // place instead of consuming a copy.
        let mut builders = builders;
        let unconsumed = ste_builder::builder::restrict_chain(&mut builders, &normalised);
        Ok(BuilderChain {
            side,
            format: caps.format,
            criteria,
            plan: ValuePlan::new(criteria, &normalised),
            mask: normalised,
            builders,
            unconsumed,
        })
    }

    /// The side the chain is for.
    pub fn side(&self) -> DomainSide {
        self.side
    }

    /// The STE format.
    pub fn format(&self) -> SteFormat {
        self.format
    }

    /// The matcher's match criteria.
    pub fn criteria(&self) -> MatchCriteria {
        self.criteria
    }

    /// The matcher's normalised mask.
    pub fn mask(&self) -> &MatchParam {
        &self.mask
    }

    /// The lookups, one per STE of a rule, in chain order.
    pub fn builders(&self) -> &[SteBuild] {
        &self.builders
    }

    /// Number of STEs a rule chains.
    pub fn len(&self) -> usize {
        self.builders.len()
    }

    /// Always false: a chain has at least one lookup.
    pub fn is_empty(&self) -> bool {
        self.builders.is_empty()
    }

    /// The lookup type of each STE, in chain order.
    pub fn lu_types(&self) -> impl Iterator<Item = u16> + '_ {
        self.builders.iter().map(|b| b.lu_type)
    }

    /// The indices of definer lookups: each needs a `CREATE_DEFINER` object whose id is
    /// then bound with [`BuilderChain::bind_definer`].
    pub fn definers(&self) -> impl Iterator<Item = usize> + '_ {
        self.builders
            .iter()
            .enumerate()
            .filter(|(_, b)| b.htbl_type == HtblType::Match)
            .map(|(i, _)| i)
    }

    /// Records the definer object created for lookup `index`: its id becomes the low byte
    /// of the lookup type, as the hardware reads it.
    pub fn bind_definer(&mut self, index: usize, object_id: u32) -> Result<(), ChainError> {
        let b = self
            .builders
            .get_mut(index)
            .filter(|b| b.htbl_type == HtblType::Match)
            .ok_or(ChainError::NotADefiner { index })?;
        let id =
            u8::try_from(object_id).map_err(|_| ChainError::DefinerIdTooLarge { id: object_id })?;
        b.lu_type = (b.lu_type & 0xff00) | u16::from(id);
        Ok(())
    }

    /// True when a rule with this value does not belong on this side
    /// (`dr_rule_skip`): in an FDB matcher that matches the source port, rules for the
    /// uplink live only on RX and rules for every other port only on TX.
    ///
    /// rdma-core applies the same split to `metadata_reg_c_0` when it carries the
    /// source vport; that needs the uplink's register-C0 value and mask, which the
    /// capability discovery does not read yet, so such rules go to both sides.
    pub fn skips_rule(&self, value: &MatchParam) -> bool {
        if self.mask.get(Section::Misc, misc::SOURCE_PORT) == 0 {
            return false;
        }
        let from_wire = value.get(Section::Misc, misc::SOURCE_PORT) == WIRE_PORT;
        match self.side {
            DomainSide::FdbRx => !from_wire,
            DomainSide::FdbTx => from_wire,
            DomainSide::NicRx | DomainSide::NicTx => false,
        }
    }

    /// The tags of a rule's STEs for `value` (the rule's raw 448-byte value).
    ///
    /// The value must only set bits the matcher's mask matches on (including no bits in
    /// sections the criteria leave out, and no reserved bits), must pass DR's pre-check,
    /// and every tag must be reachable: an STE whose tag sets bits its lookup never
    /// compares is refused ([`BuildError::Unmatchable`]). `caps` is read for the vport
    /// table, so a rule naming a vport needs it there first.
    pub fn rule_tags(&self, value: &MatchParam, caps: &Caps) -> Result<RuleTags, RuleError> {
        let mut tags = RuleTags::EMPTY;
        self.rule_tags_into(value, caps, &mut tags)?;
        Ok(tags)
    }

    /// [`Self::rule_tags`] into `out` (which may hold an earlier rule's tags), so that
    /// the caller's buffer is filled in place rather than a 700-byte value returned.
    /// On error `out` holds no tags.
    pub fn rule_tags_into(
        &self,
        value: &MatchParam,
        caps: &Caps,
        out: &mut RuleTags,
    ) -> Result<(), RuleError> {
        out.len = 0;
        self.plan.check(&self.mask, value)?;
        if self.unconsumed {
            return self.tags_unconsumed(value, caps, out);
        }
        // Within the normalised mask, the value is its own normalised copy (see
        // `super::plan`): the lookups consume a plain copy of it.
        let mut work = value.clone();
        self.tags_into(&mut work, caps, true, out)
    }

    /// [`Self::tags_into`] of a checked value for a chain whose lookups need not
    /// consume it; on error `out` holds no tags.
    fn tags_unconsumed(
        &self,
        value: &MatchParam,
        caps: &Caps,
        out: &mut RuleTags,
    ) -> Result<(), RuleError> {
        for (i, b) in self.builders.iter().enumerate() {
            let n = b.tag_len();
            // Writes the whole tag: no zeroing first.
            b.tag_checked_unconsumed(value, caps, &mut out.tags[i][..n])?;
            // `n` is 16 or 32.
            out.tag_len[i] = n as u8;
        }
        out.len = self.builders.len();
        Ok(())
    }

    /// [`Self::rule_tags`] as DR spells it out: the full value-within-mask check, the
    /// normalising copy, DR's pre-check and the port check, each from the mask again.
    /// The reference the fast path is tested against.
    #[cfg(test)]
    pub(crate) fn rule_tags_reference(
        &self,
        value: &MatchParam,
        caps: &Caps,
    ) -> Result<RuleTags, RuleError> {
        MatchParam::check_value_within_mask(&self.mask, value)?;
        let mut work = MatchParam::copy_from(self.criteria, value);
        match_param::pre_check(self.criteria, &self.mask, Some(&work))?;
        l4::check_value(self.criteria, &work)?;
        self.tags(&mut work, caps)
    }

    /// One tag per lookup of a checked, normalised value, consuming `work`.
    #[cfg(test)]
    fn tags(&self, work: &mut MatchParam, caps: &Caps) -> Result<RuleTags, RuleError> {
        let mut tags = RuleTags::EMPTY;
        self.tags_into(work, caps, false, &mut tags)?;
        Ok(tags)
    }

    /// [`Self::tags`] into `out`; on error `out` holds no tags. `within_mask`: the value
    /// is known to lie within the normalised mask, so the lookups' restricted encodings
    /// ([`SteBuild::tag_checked_within`]) apply.
    fn tags_into(
        &self,
        work: &mut MatchParam,
        caps: &Caps,
        within_mask: bool,
        out: &mut RuleTags,
    ) -> Result<(), RuleError> {
        out.len = 0;
        for (i, b) in self.builders.iter().enumerate() {
            let n = b.tag_len();
            // The lookups write into a zeroed tag (a whole one: a fixed-size store).
            out.tags[i] = [0; MATCH_TAG_SIZE];
            let tag = &mut out.tags[i][..n];
            if within_mask {
                b.tag_checked_within(work, caps, tag)?;
            } else {
                b.tag_checked(work, caps, tag)?;
            }
            // `n` is 16 or 32.
            out.tag_len[i] = n as u8;
        }
        out.len = self.builders.len();
        Ok(())
    }
}

/// DR's normalised copy of a user mask, refusing bits the copy would silently drop:
/// bits in sections the criteria do not enable, reserved bits, and the fields DR never
/// copies.
fn normalise(
    criteria: MatchCriteria,
    user: &MatchParam,
    side: DomainSide,
    format: SteFormat,
) -> Result<MatchParam, ChainError> {
    let copy = MatchParam::copy_from(criteria, user);
    let mut dropped = MatchParam::default();
    for s in Section::ALL {
        let (u, c, d) = (user.section(s), copy.section(s), dropped.section_mut(s));
        for i in 0..d.len() {
            d[i] = u[i] & !c[i];
        }
    }
    let Some(bits) = MaskBits::first_of(&dropped) else {
        return Ok(copy);
    };
    let section = match bits {
        MaskBits::Field(f) => f.section,
        MaskBits::Reserved { section, .. } => section,
    };
    if criteria.contains(section.criteria()) {
        Err(ChainError::Unmatchable { bits, format, side })
    } else {
        Err(ChainError::OutsideCriteria { bits, section })
    }
}
