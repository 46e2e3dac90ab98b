//! The reference classifier: what a rule set means, written as plainly as possible and
//! sharing no code with the driver.
//!
//! A packet enters the first table (the one of the lowest level). A table tries its
//! matchers in order: lower priority first, and among equal priorities the newest
//! first. A matcher hits when one of its rules has `value == fields & mask`; a hit
//! applies the rule's flow tag (the last one set on a packet's way is the one it
//! keeps) and counter, then its fate: a goto continues in the
//! target table (always of a higher level), drop drops, a destination delivers there,
//! and no fate (or the default-miss action) sends the packet to the side's default.
//! A packet no matcher of a table hits goes to the side's default as well.
//!
//! The one field not compared bit by bit is `ip_version`: rdma-core's DR reads a
//! mask's `ip_version` (which must be 4 or 6, and equal to the value's) as "the packet
//! is IPv4" / "is IPv6", so that is what it means here too.
//!
//! Two PRM subtleties are kept out of the generated rule sets instead of being
//! modelled (see `shapes`): L4 ports are only masked together with `ip_protocol` (one
//! STE port pair serves TCP and UDP), and packets never carry an S-VLAN tag (DR
//! compares the VLAN qualifier, not the `cvlan_tag` bit alone).

use ste_builder::match_param::Section;
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::MatchParam;

use ::sim::endpoint::Terminal;

/// Where a rule sends a packet after its tag and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefFate {
    /// No fate action: the side's default.
    None,
    /// The default-miss action: the side's default.
    DefaultMiss,
    /// Drop.
    Drop,
    /// Continue in the table with this index (of a higher level).
    Goto(usize),
    /// A firmware destination (a TIR, a vport, the uplink).
    To(Terminal),
}

/// A rule's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefActions {
    /// Flow tag set on a hit.
    pub tag: Option<u32>,
    /// Counter (offset in the case's bulk) counted on a hit.
    pub counter: Option<u32>,
    /// The fate.
    pub fate: RefFate,
}

/// A rule: an id (for the log), its value (already within its matcher's mask) and its
/// actions.
#[derive(Debug, Clone)]
pub struct RefRule {
    pub id: usize,
    pub value: MatchParam,
    pub actions: RefActions,
}

/// A matcher: an id, a priority, a mask and its rules.
#[derive(Debug, Clone)]
pub struct RefMatcher {
    pub id: usize,
    pub priority: u32,
    pub mask: MatchParam,
    pub rules: Vec<RefRule>,
}

/// A table: its level and its matchers in lookup order.
#[derive(Debug, Clone)]
pub struct RefTable {
    pub level: u8,
    pub matchers: Vec<RefMatcher>,
}

/// What happened to a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Where it ended.
    pub fate: Terminal,
    /// The last flow tag set on its way.
    pub tag: Option<u32>,
    /// The counters (offsets) that counted it, in order.
    pub counters: Vec<u32>,
}

/// Which rule decided a hop of a packet's way (for failure reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub table: usize,
    pub matcher: usize,
    pub rule: usize,
}

/// A domain's rule set: its tables (index 0 is where packets enter) and the side
/// default.
#[derive(Debug, Clone)]
pub struct RefModel {
    pub default: Terminal,
    pub tables: Vec<RefTable>,
}

impl RefModel {
    /// Tables of `levels` (strictly increasing, so gotos from a table only go to later
    /// indices), all empty.
    pub fn new(default: Terminal, levels: &[u8]) -> RefModel {
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        RefModel {
            default,
            tables: levels
                .iter()
                .map(|&level| RefTable {
                    level,
                    matchers: Vec::new(),
                })
                .collect(),
        }
    }

    /// Adds a matcher: before the first matcher whose priority is not lower (so before
    /// every existing one of the same priority).
    pub fn add_matcher(&mut self, table: usize, id: usize, priority: u32, mask: MatchParam) {
        let list = &mut self.tables[table].matchers;
        let at = list
            .iter()
            .position(|m| m.priority >= priority)
            .unwrap_or(list.len());
        list.insert(
            at,
            RefMatcher {
                id,
                priority,
                mask,
                rules: Vec::new(),
            },
        );
    }

    /// The table index and the matcher with id `id`.
    pub fn matcher(&self, id: usize) -> Option<(usize, &RefMatcher)> {
        self.tables
            .iter()
            .enumerate()
            .find_map(|(t, table)| table.matchers.iter().find(|m| m.id == id).map(|m| (t, m)))
    }

    fn matcher_mut(&mut self, id: usize) -> Option<&mut RefMatcher> {
        self.tables
            .iter_mut()
            .flat_map(|t| t.matchers.iter_mut())
            .find(|m| m.id == id)
    }

    /// Removes a matcher (which must have no rules).
    pub fn remove_matcher(&mut self, id: usize) {
        for t in &mut self.tables {
            if let Some(at) = t.matchers.iter().position(|m| m.id == id) {
                assert!(t.matchers[at].rules.is_empty());
                t.matchers.remove(at);
                return;
            }
        }
        panic!("no matcher {id}");
    }

    /// True when matcher `id` has a rule with exactly this value.
    pub fn has_value(&self, id: usize, value: &MatchParam) -> bool {
        self.matcher(id)
            .is_some_and(|(_, m)| m.rules.iter().any(|r| r.value == *value))
    }

    /// Adds a rule to matcher `matcher`.
    pub fn add_rule(&mut self, matcher: usize, rule: RefRule) {
        self.matcher_mut(matcher).expect("matcher").rules.push(rule);
    }

    /// Removes rule `rule` from matcher `matcher`.
    pub fn remove_rule(&mut self, matcher: usize, rule: usize) -> RefRule {
        let m = self.matcher_mut(matcher).expect("matcher");
        let at = m.rules.iter().position(|r| r.id == rule).expect("rule");
        m.rules.remove(at)
    }

    /// Gives rule `rule` of matcher `matcher` new actions.
    pub fn set_actions(&mut self, matcher: usize, rule: usize, actions: RefActions) {
        let m = self.matcher_mut(matcher).expect("matcher");
        m.rules
            .iter_mut()
            .find(|r| r.id == rule)
            .expect("rule")
            .actions = actions;
    }

    /// Classifies a packet with parsed fields `fields`: its verdict and the rules that
    /// decided each hop.
    pub fn classify(&self, fields: &MatchParam) -> (Verdict, Vec<Hop>) {
        let mut verdict = Verdict {
            fate: self.default,
            tag: None,
            counters: Vec::new(),
        };
        let mut hops = Vec::new();
        let mut table = 0;
        loop {
            let hit = self.tables[table].matchers.iter().find_map(|m| {
                m.rules
                    .iter()
                    .find(|r| hits(&m.mask, &r.value, fields))
                    .map(|r| (m, r))
            });
            let Some((m, r)) = hit else {
                return (verdict, hops);
            };
            hops.push(Hop {
                table,
                matcher: m.id,
                rule: r.id,
            });
            if let Some(tag) = r.actions.tag {
                verdict.tag = Some(tag);
            }
            verdict.counters.extend(r.actions.counter);
            match r.actions.fate {
                RefFate::None | RefFate::DefaultMiss => return (verdict, hops),
                RefFate::Drop => {
                    verdict.fate = Terminal::Drop;
                    return (verdict, hops);
                }
                RefFate::To(t) => {
                    verdict.fate = t;
                    return (verdict, hops);
                }
                RefFate::Goto(next) => {
                    assert!(self.tables[next].level > self.tables[table].level);
                    table = next;
                }
            }
        }
    }
}

/// The sections a match parameter is made of, in order.
fn sections(p: &MatchParam) -> impl Iterator<Item = &[u8; 64]> {
    Section::ALL.into_iter().map(move |s| p.section(s))
}

/// True when a packet with parsed `fields` hits the rule `value` of a matcher with
/// `mask`.
pub fn hits(mask: &MatchParam, value: &MatchParam, fields: &MatchParam) -> bool {
    let mut mask = mask.clone();
    for layer in [Section::Outer, Section::Inner] {
        let version = mask.get(layer, spec::IP_VERSION);
        if version != 0 {
            if fields.get(layer, spec::IP_VERSION) != version {
                return false;
            }
            mask.set(layer, spec::IP_VERSION, 0);
        }
    }
    let same = sections(&mask)
        .zip(sections(value))
        .zip(sections(fields))
        .all(|((m, v), f)| m.iter().zip(v).zip(f).all(|((m, v), f)| f & m == v & m));
    same
}
