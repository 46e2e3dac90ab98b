//! STE actions: what a rule does on a hit (flow tag, counter, modify header, VLAN push and
//! pop, encapsulation and decapsulation, ASO, forwarding), encoded into the rule's last
//! match STE and, where it has no room, into added action-only STEs.
//!
//! The entry points are [`set_actions_rx`] and [`set_actions_tx`]. They take the set of
//! action types a rule uses ([`ActionTypeSet`]), the values those actions need
//! ([`ActionsAttr`]) and a buffer holding the rule's last match STE followed by room for
//! added STEs; they return how many STEs were added ([`ActionsOutcome`]). Every added STE
//! hits into the next one and the last one hits into `final_icm_addr`; the caller chains
//! them into hash tables.

pub mod v0;
pub mod v1;

use crate::ste::{SteFormat, STE_SIZE};
use std::fmt;

/// The kinds of actions a rule can have, in rdma-core's `enum dr_action_type` order (the
/// discriminant is the index into [`ActionTypeSet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ActionType {
    /// Decapsulate an L2 tunnel (VXLAN and the like) to the inner L2 packet.
    TnlL2ToL2 = 0,
    /// Encapsulate in an L2 tunnel.
    L2ToTnlL2 = 1,
    /// Decapsulate an L3 tunnel, rebuilding an L2 header with a rewrite list.
    TnlL3ToL2 = 2,
    /// Replace the L2 header with an L3 tunnel header.
    L2ToTnlL3 = 3,
    /// Drop the packet (terminal).
    Drop = 4,
    /// Deliver to a QP (terminal).
    Qp = 5,
    /// Go to a flow table (terminal).
    Ft = 6,
    /// Count in a flow counter.
    Ctr = 7,
    /// Set the flow tag reported in the CQE.
    Tag = 8,
    /// Rewrite header fields (modify-header action list).
    ModifyHdr = 9,
    /// Forward to an e-switch vport (terminal).
    Vport = 10,
    /// Legacy meter (terminal: goes to the meter's table).
    Meter = 11,
    /// Go to the default miss destination (terminal).
    Miss = 12,
    /// Sampler (terminal).
    Sampler = 13,
    /// Multiple destinations (terminal).
    DestArray = 14,
    /// Pop the outermost VLAN header(s).
    PopVlan = 15,
    /// Push VLAN header(s).
    PushVlan = 16,
    /// ASO first-hit flag.
    AsoFirstHit = 17,
    /// ASO flow meter (policer).
    AsoFlowMeter = 18,
    /// ASO connection tracking.
    AsoCt = 19,
    /// Go to the root (firmware-managed) flow table (terminal).
    RootFt = 20,
}

impl ActionType {
    /// Number of action types.
    pub const COUNT: usize = 21;

    /// Every action type, in index order.
    pub const ALL: [ActionType; ActionType::COUNT] = [
        ActionType::TnlL2ToL2,
        ActionType::L2ToTnlL2,
        ActionType::TnlL3ToL2,
        ActionType::L2ToTnlL3,
        ActionType::Drop,
        ActionType::Qp,
        ActionType::Ft,
        ActionType::Ctr,
        ActionType::Tag,
        ActionType::ModifyHdr,
        ActionType::Vport,
        ActionType::Meter,
        ActionType::Miss,
        ActionType::Sampler,
        ActionType::DestArray,
        ActionType::PopVlan,
        ActionType::PushVlan,
        ActionType::AsoFirstHit,
        ActionType::AsoFlowMeter,
        ActionType::AsoCt,
        ActionType::RootFt,
    ];

    /// The index of this type (its rdma-core enum value).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The action type with rdma-core enum value `index`.
    pub fn from_index(index: usize) -> Option<ActionType> {
        ActionType::ALL.get(index).copied()
    }

    /// rdma-core's name of this type without the `DR_ACTION_TYP_` prefix.
    pub fn name(self) -> &'static str {
        match self {
            ActionType::TnlL2ToL2 => "TNL_L2_TO_L2",
            ActionType::L2ToTnlL2 => "L2_TO_TNL_L2",
            ActionType::TnlL3ToL2 => "TNL_L3_TO_L2",
            ActionType::L2ToTnlL3 => "L2_TO_TNL_L3",
            ActionType::Drop => "DROP",
            ActionType::Qp => "QP",
            ActionType::Ft => "FT",
            ActionType::Ctr => "CTR",
            ActionType::Tag => "TAG",
            ActionType::ModifyHdr => "MODIFY_HDR",
            ActionType::Vport => "VPORT",
            ActionType::Meter => "METER",
            ActionType::Miss => "MISS",
            ActionType::Sampler => "SAMPLER",
            ActionType::DestArray => "DEST_ARRAY",
            ActionType::PopVlan => "POP_VLAN",
            ActionType::PushVlan => "PUSH_VLAN",
            ActionType::AsoFirstHit => "ASO_FIRST_HIT",
            ActionType::AsoFlowMeter => "ASO_FLOW_METER",
            ActionType::AsoCt => "ASO_CT",
            ActionType::RootFt => "ROOT_FT",
        }
    }

    /// The action type called `name` (see [`ActionType::name`]).
    pub fn from_name(name: &str) -> Option<ActionType> {
        ActionType::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// True for actions that only decide where the packet goes: they are encoded through
    /// [`ActionsAttr::final_icm_addr`] and [`ActionsAttr::hit_gvmi`], not in action words.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ActionType::Drop
                | ActionType::Qp
                | ActionType::Ft
                | ActionType::Vport
                | ActionType::Meter
                | ActionType::Miss
                | ActionType::Sampler
                | ActionType::DestArray
                | ActionType::RootFt
        )
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The action types of one rule, with how many times each was given (rdma-core's
/// `action_type_set`; only whether a count is non-zero matters to the encoders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionTypeSet {
    counts: [u8; ActionType::COUNT],
}

impl ActionTypeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from per-type counts indexed by [`ActionType::index`].
    pub fn from_counts(counts: [u8; ActionType::COUNT]) -> Self {
        ActionTypeSet { counts }
    }

    /// Counts one more action of type `t` (saturating at 255).
    pub fn insert(&mut self, t: ActionType) {
        let c = &mut self.counts[t.index()];
        *c = c.saturating_add(1);
    }

    /// How many actions of type `t` the rule has.
    pub fn count(&self, t: ActionType) -> u8 {
        self.counts[t.index()]
    }

    /// True if the rule has an action of type `t`.
    pub fn contains(&self, t: ActionType) -> bool {
        self.count(t) != 0
    }

    /// The per-type counts, indexed by [`ActionType::index`].
    pub fn counts(&self) -> &[u8; ActionType::COUNT] {
        &self.counts
    }

    /// The action types present, in index order.
    pub fn iter(&self) -> impl Iterator<Item = ActionType> + '_ {
        ActionType::ALL.into_iter().filter(|t| self.contains(*t))
    }
}

impl FromIterator<ActionType> for ActionTypeSet {
    fn from_iter<I: IntoIterator<Item = ActionType>>(iter: I) -> Self {
        let mut set = ActionTypeSet::new();
        for t in iter {
            set.insert(t);
        }
        set
    }
}

bitflags::bitflags! {
    /// What a format's action encoder can combine (rdma-core's `actions_caps` of an STE
    /// context); the bit values are rdma-core's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ActionCaps: u32 {
        /// VLAN pop on the TX side.
        const TX_POP = 1 << 0;
        /// VLAN push on the RX side.
        const RX_PUSH = 1 << 1;
        /// Encapsulation on the RX side.
        const RX_ENCAP = 1 << 3;
        /// VLAN pop and modify header in the same STE.
        const POP_MDFY = 1 << 4;
        /// A single modify-header action carried inline in the STE.
        const MODIFY_HDR_INLINE = 1 << 5;
    }
}

impl ActionCaps {
    /// The capabilities of a format: none for v0; v2 is v1 without [`ActionCaps::POP_MDFY`].
    pub fn of(format: SteFormat) -> ActionCaps {
        let v2 = ActionCaps::TX_POP
            | ActionCaps::RX_PUSH
            | ActionCaps::RX_ENCAP
            | ActionCaps::MODIFY_HDR_INLINE;
        match format {
            SteFormat::V0 => ActionCaps::empty(),
            SteFormat::V1 => v2 | ActionCaps::POP_MDFY,
            SteFormat::V2 => v2,
        }
    }
}

/// The pattern index meaning "no accelerated pattern": the modify list is a plain rewrite
/// list addressed by its index alone.
pub const INVALID_PATTERN_INDEX: u32 = 0xffff_ffff;

/// Most VLAN headers one rule can push or pop.
pub const MAX_VLANS: usize = 2;

/// VLAN push and pop parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vlans {
    /// Headers to pop.
    pub count_pop: u8,
    /// Headers to push (the first `count_push` of `headers`).
    pub count_push: u8,
    /// Headers to push, each `TPID << 16 | TCI`, outermost last.
    pub headers: [u32; MAX_VLANS],
}

/// What an ASO action does, with its type-specific parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsoKind {
    /// First-hit flag: `set` marks the flag, otherwise it is only read.
    FirstHit {
        /// Set the flag (not just read it).
        set: bool,
    },
    /// Flow meter: the color a packet starts with.
    FlowMeter {
        /// Initial color.
        initial_color: u8,
    },
    /// Connection tracking in one direction.
    Ct {
        /// The direction (false: initiator, true: responder).
        direction: bool,
    },
}

impl AsoKind {
    /// The action type that uses this kind of ASO.
    pub fn action_type(self) -> ActionType {
        match self {
            AsoKind::FirstHit { .. } => ActionType::AsoFirstHit,
            AsoKind::FlowMeter { .. } => ActionType::AsoFlowMeter,
            AsoKind::Ct { .. } => ActionType::AsoCt,
        }
    }
}

/// An ASO (advanced steering operation) action's object and parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aso {
    /// The ASO object's id.
    pub object_id: u32,
    /// The context within the object (line or context number).
    pub offset: u32,
    /// The metadata register C index that receives the result.
    pub dest_reg_id: u8,
    /// The gvmi of the domain that owns the object; a connection-tracking object of another
    /// domain is applied through a separate cross-domain STE.
    pub domain_gvmi: u16,
    /// The kind and its parameter.
    pub kind: AsoKind,
}

/// Everything the action encoders need about a rule's actions (rdma-core's
/// `struct dr_ste_actions_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionsAttr {
    /// Modify header: the rewrite list's index, or the argument object of an accelerated
    /// pattern.
    pub modify_index: u32,
    /// Modify header: accelerated pattern index, or [`INVALID_PATTERN_INDEX`].
    pub modify_pat_idx: u32,
    /// Modify header: number of actions.
    pub modify_actions: u16,
    /// Modify header: one hardware action carried inline instead of a list (used with an
    /// accelerated pattern index).
    pub single_modify_action: Option<[u8; 8]>,
    /// L3 decapsulation: the rewrite list's index, or the argument object.
    pub decap_index: u32,
    /// L3 decapsulation: accelerated pattern index, or [`INVALID_PATTERN_INDEX`].
    pub decap_pat_idx: u32,
    /// L3 decapsulation: number of rewrite actions.
    pub decap_actions: u16,
    /// L3 decapsulation: the rebuilt L2 header has a VLAN.
    pub decap_with_vlan: bool,
    /// Where the last STE hits: the destination's ICM address.
    pub final_icm_addr: u64,
    /// Flow tag.
    pub flow_tag: u32,
    /// Flow counter id.
    pub ctr_id: u32,
    /// The domain's gvmi (stamped on added STEs).
    pub gvmi: u16,
    /// The gvmi of the destination the last STE hits into.
    pub hit_gvmi: u16,
    /// Encapsulation: the reformat context id.
    pub reformat_id: u32,
    /// Encapsulation: the header size in bytes.
    pub reformat_size: u32,
    /// v0 TX encapsulation: a previous table pushed a priority tag.
    pub prio_tag_required: bool,
    /// VLAN push and pop.
    pub vlans: Vlans,
    /// The ASO action, if the rule has one.
    pub aso: Option<Aso>,
    /// Index among the added STEs of the cross-domain ASO STE, if one was placed (input
    /// value is passed through otherwise).
    pub aso_ste_loc: Option<u32>,
}

impl Default for ActionsAttr {
    fn default() -> Self {
        ActionsAttr {
            modify_index: 0,
            modify_pat_idx: INVALID_PATTERN_INDEX,
            modify_actions: 0,
            single_modify_action: None,
            decap_index: 0,
            decap_pat_idx: INVALID_PATTERN_INDEX,
            decap_actions: 0,
            decap_with_vlan: false,
            final_icm_addr: 0,
            flow_tag: 0,
            ctr_id: 0,
            gvmi: 0,
            hit_gvmi: 0,
            reformat_id: 0,
            reformat_size: 0,
            prio_tag_required: false,
            vlans: Vlans::default(),
            aso: None,
            aso_ste_loc: None,
        }
    }
}

/// What encoding a rule's actions produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionsOutcome {
    /// Action-only STEs added after the match STE.
    pub added_stes: usize,
    /// Index among the added STEs where the cross-domain ASO action goes (to be written by
    /// the peer domain's object), or the input [`ActionsAttr::aso_ste_loc`].
    pub aso_ste_loc: Option<u32>,
}

/// Why an action cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The STE format has no such action.
    #[error("{action} is not supported by {format}")]
    Unsupported {
        /// The action.
        action: &'static str,
        /// The format.
        format: SteFormat,
    },
    /// The format cannot encode this action type on this side (RX or TX).
    #[error("{action} cannot be encoded on {side} by {format}", side = if *.rx { "RX" } else { "TX" })]
    NotOnSide {
        /// The action type.
        action: ActionType,
        /// The format.
        format: SteFormat,
        /// The RX side (else TX).
        rx: bool,
    },
    /// An ASO action without [`ActionsAttr::aso`] of its kind.
    #[error("{action} needs ASO parameters of its kind")]
    AsoMismatch {
        /// The action type.
        action: ActionType,
    },
    /// More VLAN headers than a rule can push or pop.
    #[error("{count} VLAN headers, at most {MAX_VLANS} are supported")]
    TooManyVlans {
        /// The count given.
        count: u8,
    },
    /// The STE buffer cannot hold the match STE and the added STEs.
    #[error("the actions need {needed} STEs, the buffer holds {available}")]
    BufferTooSmall {
        /// STEs needed so far (match STE included).
        needed: usize,
        /// STEs the buffer holds.
        available: usize,
    },
}

/// Encodes the actions of an RX rule (`dr_ste_set_actions_rx`).
///
/// `stes` holds the rule's last match STE (initialised, with its tag and mask) followed by
/// room for added STEs; returns how many were added. On error the buffer's contents are
/// unspecified.
pub fn set_actions_rx(
    format: SteFormat,
    set: &ActionTypeSet,
    stes: &mut [u8],
    attr: &ActionsAttr,
) -> Result<ActionsOutcome, ActionError> {
    set_actions(format, true, set, stes, attr)
}

/// Encodes the actions of a TX rule (`dr_ste_set_actions_tx`); see [`set_actions_rx`].
pub fn set_actions_tx(
    format: SteFormat,
    set: &ActionTypeSet,
    stes: &mut [u8],
    attr: &ActionsAttr,
) -> Result<ActionsOutcome, ActionError> {
    set_actions(format, false, set, stes, attr)
}

fn set_actions(
    format: SteFormat,
    rx: bool,
    set: &ActionTypeSet,
    stes: &mut [u8],
    attr: &ActionsAttr,
) -> Result<ActionsOutcome, ActionError> {
    validate(format, rx, set, attr)?;
    let mut chain = SteChain::new(stes)?;
    let mut outcome_loc = attr.aso_ste_loc;
    match (format, rx) {
        (SteFormat::V0, true) => v0::set_actions_rx(set, &mut chain, attr)?,
        (SteFormat::V0, false) => v0::set_actions_tx(set, &mut chain, attr)?,
        (SteFormat::V1 | SteFormat::V2, true) => {
            v1::set_actions_rx(format, set, &mut chain, attr, &mut outcome_loc)?
        }
        (SteFormat::V1 | SteFormat::V2, false) => {
            v1::set_actions_tx(format, set, &mut chain, attr, &mut outcome_loc)?
        }
    }
    Ok(ActionsOutcome {
        added_stes: chain.added(),
        aso_ste_loc: outcome_loc,
    })
}

/// Whether `format` encodes a non-terminal action type on the given side. Types the
/// encoder would silently skip are refused instead: rdma-core's action validation never
/// lets them reach it.
fn encodes(format: SteFormat, rx: bool, t: ActionType) -> bool {
    use ActionType::*;
    match (format, rx) {
        (SteFormat::V0, true) => {
            matches!(t, TnlL2ToL2 | TnlL3ToL2 | Ctr | Tag | ModifyHdr | PopVlan)
        }
        (SteFormat::V0, false) => {
            matches!(t, L2ToTnlL2 | L2ToTnlL3 | Ctr | ModifyHdr | PushVlan)
        }
        (_, true) => true,
        (_, false) => !matches!(t, TnlL2ToL2 | TnlL3ToL2 | Tag),
    }
}

fn validate(
    format: SteFormat,
    rx: bool,
    set: &ActionTypeSet,
    attr: &ActionsAttr,
) -> Result<(), ActionError> {
    for t in set.iter().filter(|t| !t.is_terminal()) {
        if !encodes(format, rx, t) {
            return Err(ActionError::NotOnSide {
                action: t,
                format,
                rx,
            });
        }
        let aso_ok = match t {
            ActionType::AsoFirstHit | ActionType::AsoFlowMeter | ActionType::AsoCt => {
                attr.aso.is_some_and(|a| a.kind.action_type() == t)
            }
            _ => true,
        };
        if !aso_ok {
            return Err(ActionError::AsoMismatch { action: t });
        }
    }
    for count in [attr.vlans.count_pop, attr.vlans.count_push] {
        if usize::from(count) > MAX_VLANS {
            return Err(ActionError::TooManyVlans { count });
        }
    }
    Ok(())
}

/// The match STE and the STEs added after it, with the one currently being filled.
pub(crate) struct SteChain<'a> {
    stes: &'a mut [u8],
    /// Index of the STE being filled (0: the match STE).
    last: usize,
}

impl<'a> SteChain<'a> {
    fn new(stes: &'a mut [u8]) -> Result<Self, ActionError> {
        if stes.len() < STE_SIZE {
            return Err(ActionError::BufferTooSmall {
                needed: 1,
                available: 0,
            });
        }
        Ok(SteChain { stes, last: 0 })
    }

    /// The STE being filled.
    pub(crate) fn ste(&mut self) -> &mut [u8] {
        let at = self.last * STE_SIZE;
        &mut self.stes[at..at + STE_SIZE]
    }

    /// Moves on to the next STE of the buffer and returns it (still as the caller left it;
    /// the format initialises it).
    pub(crate) fn advance(&mut self) -> Result<&mut [u8], ActionError> {
        let available = self.stes.len() / STE_SIZE;
        if self.last + 2 > available {
            return Err(ActionError::BufferTooSmall {
                needed: self.last + 2,
                available,
            });
        }
        self.last += 1;
        Ok(self.ste())
    }

    /// STEs added so far.
    pub(crate) fn added(&self) -> usize {
        self.last
    }
}

/// A header or size in bytes as the hardware's 2-byte words. rdma-core divides the size as
/// a C `int`, so a size above `i32::MAX` becomes a negative count truncated to the field.
pub(crate) fn size_in_words(size: u32) -> u64 {
    ((size as i32) / 2) as i64 as u64
}

/// Writes a cross-domain connection-tracking ASO action into the action area of a match
/// STE (`set_aso_ct_cross_dmn`): used when the CT object belongs to a peer domain.
/// `dest_reg_id` is the metadata register C index that receives the result.
pub fn set_aso_ct_cross_dmn(
    format: SteFormat,
    ste: &mut [u8],
    object_id: u32,
    offset: u32,
    dest_reg_id: u8,
    direction: bool,
) -> Result<(), ActionError> {
    match format {
        SteFormat::V0 => Err(ActionError::Unsupported {
            action: "ASO connection tracking",
            format,
        }),
        SteFormat::V1 | SteFormat::V2 => {
            if ste.len() < STE_SIZE {
                return Err(ActionError::BufferTooSmall {
                    needed: 1,
                    available: 0,
                });
            }
            let at = crate::prm::ste_match_bwc_v1::ACTION.offset / 8;
            v1::set_aso_ct(
                &mut ste[at..at + 8],
                object_id,
                offset,
                dest_reg_id,
                direction,
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx_attr() -> ActionsAttr {
        ActionsAttr {
            gvmi: 7,
            hit_gvmi: 7,
            final_icm_addr: 0xdead_0000,
            ..ActionsAttr::default()
        }
    }

    #[test]
    fn action_type_names_round_trip() {
        for t in ActionType::ALL {
            assert_eq!(ActionType::from_name(t.name()), Some(t));
            assert_eq!(ActionType::from_index(t.index()), Some(t));
        }
        assert_eq!(ActionType::from_index(ActionType::COUNT), None);
    }

    #[test]
    fn caps_differ_only_in_pop_modify() {
        assert_eq!(ActionCaps::of(SteFormat::V0), ActionCaps::empty());
        assert_eq!(ActionCaps::of(SteFormat::V1).bits(), 59);
        assert_eq!(ActionCaps::of(SteFormat::V2).bits(), 43);
    }

    #[test]
    fn refuses_a_short_buffer() {
        // Decapsulation followed by a pop (v0) or a modify header (v1, v2) needs a second
        // STE in every format.
        let attr = ActionsAttr {
            vlans: Vlans {
                count_pop: 1,
                ..Vlans::default()
            },
            ..rx_attr()
        };
        for (format, second) in [
            (SteFormat::V0, ActionType::PopVlan),
            (SteFormat::V1, ActionType::ModifyHdr),
            (SteFormat::V2, ActionType::ModifyHdr),
        ] {
            let set: ActionTypeSet = [ActionType::TnlL2ToL2, second].into_iter().collect();
            let mut one = [0u8; STE_SIZE];
            let err = set_actions_rx(format, &set, &mut one, &attr).unwrap_err();
            assert!(matches!(err, ActionError::BufferTooSmall { .. }), "{err}");
            let err = set_actions_rx(format, &set, &mut [], &attr).unwrap_err();
            assert!(matches!(err, ActionError::BufferTooSmall { .. }), "{err}");
            let mut two = [0u8; 2 * STE_SIZE];
            let out = set_actions_rx(format, &set, &mut two, &attr).unwrap();
            assert_eq!(out.added_stes, 1);
        }
    }

    #[test]
    fn refuses_what_the_format_cannot_encode() {
        let set: ActionTypeSet = [ActionType::AsoCt].into_iter().collect();
        let mut buf = [0u8; 4 * STE_SIZE];
        let err = set_actions_rx(SteFormat::V0, &set, &mut buf, &rx_attr()).unwrap_err();
        assert!(matches!(err, ActionError::NotOnSide { .. }), "{err}");
        let err = set_actions_rx(SteFormat::V1, &set, &mut buf, &rx_attr()).unwrap_err();
        assert!(matches!(err, ActionError::AsoMismatch { .. }), "{err}");

        let tag: ActionTypeSet = [ActionType::Tag].into_iter().collect();
        let err = set_actions_tx(SteFormat::V2, &tag, &mut buf, &rx_attr()).unwrap_err();
        assert!(
            matches!(err, ActionError::NotOnSide { rx: false, .. }),
            "{err}"
        );

        let push: ActionTypeSet = [ActionType::PushVlan].into_iter().collect();
        let mut attr = rx_attr();
        attr.vlans.count_push = 3;
        let err = set_actions_tx(SteFormat::V1, &push, &mut buf, &attr).unwrap_err();
        assert_eq!(err, ActionError::TooManyVlans { count: 3 });
    }

    #[test]
    fn cross_domain_ct_gets_its_own_ste() {
        let set: ActionTypeSet = [ActionType::AsoCt, ActionType::Ft].into_iter().collect();
        let mut attr = rx_attr();
        attr.aso = Some(Aso {
            object_id: 100,
            offset: 0,
            dest_reg_id: 1,
            domain_gvmi: 9,
            kind: AsoKind::Ct { direction: true },
        });
        let mut buf = [0u8; 3 * STE_SIZE];
        let out = set_actions_tx(SteFormat::V1, &set, &mut buf, &attr).unwrap();
        assert_eq!(out.added_stes, 1);
        assert_eq!(out.aso_ste_loc, Some(0));
        // The placeholder STE's action list stays empty for the peer domain to fill.
        assert!(buf[STE_SIZE + 20..STE_SIZE + 32].iter().all(|&b| b == 0));
    }
}
