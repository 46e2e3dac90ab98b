//! A matcher's rule-value checks, prepared once from its mask.
//!
//! Before tagging, a rule's value must lie within the matcher's mask, carry the IP
//! version the mask names, and set no port of another protocol than its own (see
//! [`super::chain::BuilderChain::rule_tags`]). [`ValuePlan`] holds what those checks
//! need from the mask, so that a rule pays for reading its own value only:
//!
//! - "within the mask" is one pass of `value & !mask` over the 448 bytes, 16 bytes at
//!   a time (straight-line code: skipping the mask for the sections it leaves out
//!   measured slower);
//! - the IP versions are compared with the ones the mask names, as DR's pre-check
//!   ([`match_param::pre_check`]) would compare them;
//! - the port check reads only the sections where the mask has ports
//!   ([`l4::ValueCheck`]).
//!
//! These answer "does the value pass" without building an error. Only a value that
//! fails goes through the full checks in order (the value-within-mask check naming the
//! first offending field with [`MatchParam::check_value_within_mask`], DR's pre-check,
//! the port check), which find the error to return.
//!
//! A value within the normalised mask also needs no normalising copy: the mask only
//! has bits in the named, copied fields of the enabled sections, so
//! [`MatchParam::copy_from`] of such a value is the value itself, and a plain copy
//! serves as the lookups' work buffer.

use ste_builder::bits;
use ste_builder::match_param;
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::{MatchCriteria, MatchParam, Section};

use super::chain::RuleError;
use super::l4;

/// The per-rule checks of one matcher, prepared from its normalised mask.
///
/// Invariant: for the criteria and normalised mask it was made from (a mask that passed
/// DR's pre-check and [`l4::check_mask`]), [`ValuePlan::check`] returns, for every
/// value, the first error of: the value-within-mask check, DR's pre-check of the value,
/// and [`l4::check_value`], in that order.
#[derive(Debug, Clone)]
pub(super) struct ValuePlan {
    /// The mask's complement: a value bit set under one of its bits lies outside the
    /// mask.
    outside: MatchParam,
    /// The header sections whose IP version a value must repeat (inner: true), with
    /// that version: those the criteria enable and the mask names a version in (DR's
    /// pre-check).
    versions: [Option<(bool, u64)>; 2],
    /// The matcher's match criteria (DR's pre-check reads them).
    criteria: MatchCriteria,
    /// The port-of-another-protocol check.
    ports: l4::ValueCheck,
}

impl ValuePlan {
    /// The plan for `mask`, the matcher's normalised mask under `criteria`.
    pub(super) fn new(criteria: MatchCriteria, mask: &MatchParam) -> ValuePlan {
        let mut outside = MatchParam::default();
        for s in Section::ALL {
            for (o, m) in outside.section_mut(s).iter_mut().zip(mask.section(s)) {
                *o = !m;
            }
        }
        let versions = [
            (Section::Outer, MatchCriteria::OUTER),
            (Section::Inner, MatchCriteria::INNER),
        ]
        .map(|(section, bit)| {
            let version = mask.get(section, spec::IP_VERSION);
            let inner = section == Section::Inner;
            (criteria.contains(bit) && version != 0).then_some((inner, version))
        });
        ValuePlan {
            outside,
            versions,
            criteria,
            ports: l4::ValueCheck::new(criteria, mask),
        }
    }

    /// Checks a rule's value against the plan's mask (`mask`, the one the plan was made
    /// from: it names the field of a value outside it, and gives DR's pre-check the
    /// IP versions).
    #[inline]
    pub(super) fn check(&self, mask: &MatchParam, value: &MatchParam) -> Result<(), RuleError> {
        if self.within(value) && self.versions_match(value) && self.ports.passes(value) {
            return Ok(());
        }
        self.first_error(mask, value)
    }

    /// True when `value` sets no bit outside the mask.
    #[inline]
    fn within(&self, value: &MatchParam) -> bool {
        // 16 bytes at a time: 28 wide ANDs and ORs over the 448 bytes.
        let word = |b: &[u8]| u128::from_ne_bytes(b.try_into().unwrap_or([0; 16]));
        let mut stray = 0u128;
        for s in Section::ALL {
            let (v, o) = (value.section(s), self.outside.section(s));
            for (v, o) in v.chunks_exact(16).zip(o.chunks_exact(16)) {
                stray |= word(v) & word(o);
            }
        }
        stray == 0
    }

    /// True when `value` carries the IP versions the mask names: DR's pre-check of a
    /// value, whose mask passed it.
    #[inline]
    fn versions_match(&self, value: &MatchParam) -> bool {
        self.versions.iter().flatten().all(|&(inner, version)| {
            let header = if inner { &value.inner } else { &value.outer };
            bits::get(header, spec::IP_VERSION) == version
        })
    }

    /// The error [`Self::check`] returns for a value that did not pass: the first of
    /// the full checks to fail.
    #[cold]
    #[inline(never)]
    fn first_error(&self, mask: &MatchParam, value: &MatchParam) -> Result<(), RuleError> {
        if !self.within(value) {
            // The slow check finds and names the first field with the stray bits.
            MatchParam::check_value_within_mask(mask, value)?;
        }
        match_param::pre_check(self.criteria, mask, Some(value))?;
        self.ports.check(value)?;
        Ok(())
    }
}

/// The model test's random matcher shapes and rule values.
#[cfg(all(test, feature = "sim"))]
#[path = "../../tests/model/shapes.rs"]
#[allow(dead_code)]
mod shapes;

#[cfg(all(test, feature = "sim"))]
mod tests {
    use std::sync::OnceLock;

    use ::sim::profile::{DeviceModel, Profile, DR_DEFINER_FORMATS};
    use proptest::prelude::*;
    use ste_builder::prm::dr_match_spec as spec;
    use ste_builder::{MatchCriteria, MatchParam, Section};

    use super::shapes::{Dom, Rng, Shape};
    use crate::matching::tests::chain::Dev;
    use crate::matching::{BuilderChain, ChainCaps, DomainSide, RawMatch, RuleError, RuleTags};

    /// STE v0, v1 and v2, and v1 and v2 with every definer rdma-core uses.
    fn devs() -> &'static [Dev] {
        static DEVS: OnceLock<Vec<Dev>> = OnceLock::new();
        DEVS.get_or_init(|| {
            let definers: u64 = DR_DEFINER_FORMATS.iter().map(|f| 1u64 << f).sum();
            let mut profiles: Vec<Profile> = [
                DeviceModel::ConnectX5,
                DeviceModel::ConnectX6Dx,
                DeviceModel::ConnectX7,
            ]
            .map(Profile::new)
            .into();
            for model in [DeviceModel::ConnectX6Dx, DeviceModel::ConnectX7] {
                let mut p = Profile::new(model);
                p.match_definer_format_supported = definers;
                profiles.push(p);
            }
            profiles.into_iter().map(Dev::of).collect()
        })
    }

    /// How a rule came out, to check that the cases reach every outcome.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Outcome {
        Tags,
        OutsideMask,
        PreCheck,
        PortOfOtherProtocol,
        Build,
    }

    fn outcome(r: &Result<RuleTags, RuleError>) -> Outcome {
        match r {
            Ok(_) => Outcome::Tags,
            Err(RuleError::OutsideMask(_)) => Outcome::OutsideMask,
            Err(RuleError::PreCheck(_)) => Outcome::PreCheck,
            Err(RuleError::PortOfOtherProtocol(_)) => Outcome::PortOfOtherProtocol,
            Err(RuleError::Build(_)) => Outcome::Build,
        }
    }

    fn comparable(r: Result<RuleTags, RuleError>) -> Result<Vec<Vec<u8>>, RuleError> {
        r.map(|t| t.iter().map(<[u8]>::to_vec).collect())
    }

    /// A random named field of any section.
    fn any_field(rng: &mut Rng) -> (Section, ste_builder::bits::BitField) {
        let s = rng.pick(&Section::ALL);
        (s, rng.pick(s.fields()).1)
    }

    /// A matcher mask: mostly the model test's shapes, sometimes a few random fields
    /// (which the chain often refuses) under random criteria.
    fn mask(rng: &mut Rng, dom: Dom) -> RawMatch {
        if rng.chance(80) {
            let shape = Shape::random(rng, dom);
            let mut criteria = shape.mask.used_criteria();
            if rng.chance(20) {
                criteria |= MatchCriteria::from_bits_truncate(rng.next() as u8);
            }
            return RawMatch::new(criteria, shape.mask);
        }
        let mut m = MatchParam::default();
        for _ in 0..1 + rng.below(4) {
            let (s, f) = any_field(rng);
            let v = if rng.chance(50) { u64::MAX } else { rng.next() };
            m.set(s, f, v);
        }
        let criteria = m.used_criteria() | MatchCriteria::from_bits_truncate(rng.next() as u8);
        RawMatch::new(criteria, m)
    }

    /// A rule value for `shape`'s matcher: within the mask, or deliberately not.
    fn value(rng: &mut Rng, shape: &Shape, dom: Dom) -> MatchParam {
        let mut v = shape.value(rng, dom);
        let header = rng.pick(&[Section::Outer, Section::Inner]);
        match rng.below(8) {
            // A packet's fields under the mask.
            0 | 1 => {}
            // Random bits under the mask.
            2 => {
                for s in Section::ALL {
                    let (m, o) = (shape.mask.section(s), v.section_mut(s));
                    for (o, m) in o.iter_mut().zip(m) {
                        *o = (rng.next() as u8) & m;
                    }
                }
            }
            // One bit flipped anywhere (outside the mask, or in a field under it).
            3 => {
                let byte = rng.below(448) as usize;
                let s = Section::ALL[byte / 64];
                v.section_mut(s)[byte % 64] ^= 1 << rng.below(8);
            }
            // A random value in a random named field.
            4 => {
                let (s, f) = any_field(rng);
                v.set(s, f, rng.next());
            }
            // Another IP version.
            5 => v.set(header, spec::IP_VERSION, rng.pick(&[0, 4, 6, 5])),
            // Another protocol, maybe with the other protocol's ports.
            6 => {
                v.set(header, spec::IP_PROTOCOL, rng.pick(&[6, 17, 1, 0]));
                if rng.chance(50) {
                    let port = rng.pick(&[
                        spec::TCP_SPORT,
                        spec::TCP_DPORT,
                        spec::UDP_SPORT,
                        spec::UDP_DPORT,
                    ]);
                    v.set(header, port, rng.next() & 0xffff);
                }
            }
            // Ports of both protocols, under the mask.
            _ => {
                for port in [spec::TCP_SPORT, spec::UDP_SPORT, spec::TCP_DPORT] {
                    v.set(header, port, rng.next() & shape.mask.get(header, port));
                }
            }
        }
        v
    }

    /// One case: a mask from `seed` on device `dev`, its chains on the sides of `dom`,
    /// and several rule values; the fast path must give exactly the reference's tags or
    /// error. Returns the outcomes seen.
    fn case(seed: u64, dev: usize, dom: Dom) -> Vec<Outcome> {
        let d = &devs()[dev];
        let caps = ChainCaps::new(&d.caps, &d.ste).unwrap();
        let mut rng = Rng::new(seed);
        let raw = mask(&mut rng, dom);
        let shape = Shape {
            mask: raw.param.clone(),
            ..Shape::any()
        };
        let sides: &[DomainSide] = match dom {
            Dom::NicRx => &[DomainSide::NicRx],
            Dom::NicTx => &[DomainSide::NicTx],
            Dom::Fdb => &[DomainSide::FdbRx, DomainSide::FdbTx],
        };
        let mut seen = Vec::new();
        for &side in sides {
            let Ok(chain) = BuilderChain::new(&raw, side, &caps) else {
                continue;
            };
            for _ in 0..8 {
                let v = value(&mut rng, &shape, dom);
                let fast = chain.rule_tags(&v, &d.ste);
                seen.push(outcome(&fast));
                let reference = chain.rule_tags_reference(&v, &d.ste);
                assert_eq!(
                    comparable(fast),
                    comparable(reference),
                    "seed {seed:#x}, device {dev}, {side}, mask {:?}, value {v:?}",
                    raw.param
                );
            }
        }
        seen
    }

    const DOMS: [Dom; 3] = [Dom::NicRx, Dom::NicTx, Dom::Fdb];

    #[test]
    fn fixed_cases_reach_every_outcome() {
        let mut seen = Vec::new();
        for seed in 0..150u64 {
            let dev = seed as usize % devs().len();
            seen.extend(case(seed, dev, DOMS[seed as usize % 3]));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            [
                Outcome::Tags,
                Outcome::OutsideMask,
                Outcome::PreCheck,
                Outcome::PortOfOtherProtocol,
                Outcome::Build
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fast_rule_tags_equal_the_reference(
            seed in any::<u64>(),
            dev in 0..5usize,
            dom in prop::sample::select(DOMS.to_vec()),
        ) {
            case(seed, dev, dom);
        }
    }
}
