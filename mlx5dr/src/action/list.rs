//! [`ActionList`]: a rule's actions, checked once for its table and kept ready to be
//! encoded into each of its STE chains.

use std::sync::{Arc, Weak};

use ste_builder::action::{set_actions_rx, set_actions_tx, ActionType, ActionTypeSet, ActionsAttr};
use ste_builder::ste::{Ste, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::SteFormat;

use super::replay::Replays;
use super::state::{self, State};
use super::{same_device, Action, ActionError, ActionKind};
use crate::domain::{Domain, PerSide, SideInfo, Table};
use crate::matching::DomainSide;

/// The most action-only STEs one rule's actions add after its last match STE
/// (rdma-core's `DR_ACTION_MAX_STES`).
pub const MAX_ACTION_STES: usize = 7;

/// The STEs [`ActionList::encode`] works in: the last match STE and the added ones.
const BUF_STES: usize = 1 + MAX_ACTION_STES;

/// What [`ActionList::encode`] produced for one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoded {
    /// Action-only STEs pushed to `extra`, in chain order.
    pub added_stes: usize,
    /// Where the chain goes on a hit: the last STE of the chain (the match STE when
    /// nothing was added) hits this address, as a 1-entry table.
    pub final_icm_addr: u64,
}

/// One side's encoder input, and the encodings replayed from it.
#[derive(Debug)]
struct SideActions {
    side: DomainSide,
    set: ActionTypeSet,
    attr: ActionsAttr,
    /// The encoder's effect per last-STE control block, captured from the first rule
    /// with that block: the per-rule step replays it instead of encoding again.
    replays: Replays,
}

/// A rule's actions, checked for one table (see the module documentation of
/// [`super`]): holds the actions, and per side of the table's domain what the STE
/// encoders need.
///
/// Holding the list holds the actions and what they point at (a goto's table, a TIR,
/// a counter). A rule keeps its list until its STEs are unlinked and the writes that
/// unlinked them have completed, so that no destination is freed while an STE in ICM
/// still hits it.
#[derive(Debug)]
pub struct ActionList {
    actions: Vec<Arc<Action>>,
    format: SteFormat,
    domain: crate::domain::DomainType,
    /// The domain and table level the list was checked for: it is valid for every table
    /// of that domain and level. Weak, so the list does not keep the domain alive, yet
    /// the domain's address cannot be taken by another while the list exists.
    dmn: Weak<Domain>,
    level: u8,
    sides: PerSide<SideActions>,
}

impl ActionList {
    /// Checks `actions`, in order, for rules of `table` on every side of its domain,
    /// and prepares their encoding. No action at all sends matching packets to the
    /// side's default destination, as rdma-core does.
    pub fn new(table: &Table, actions: &[Arc<Action>]) -> Result<ActionList, ActionError> {
        let dmn = table.domain();
        let mut sides = PerSide::default();
        for &side in dmn.sides() {
            // A domain has the addresses of each of its sides.
            let Some(info) = dmn.side(side) else { continue };
            let prepared = prepare(table, info, actions)?;
            dry_run(dmn.format(), dmn.gvmi(), &prepared)?;
            sides.insert(side, prepared);
        }
        Ok(ActionList {
            actions: actions.to_vec(),
            format: dmn.format(),
            domain: dmn.domain_type(),
            dmn: Arc::downgrade(dmn),
            level: table.level(),
            sides,
        })
    }

    /// True when the list may be used for rules of `table`: it was checked for a table
    /// of the same domain and level.
    pub fn fits(&self, table: &Table) -> bool {
        // Compared by address, without touching the reference counts (a shared cache
        // line every inserting thread would write).
        self.level == table.level() && std::ptr::eq(self.dmn.as_ptr(), Arc::as_ptr(table.domain()))
    }

    /// The actions, in the order given.
    pub fn actions(&self) -> &[Arc<Action>] {
        &self.actions
    }

    fn side(&self, side: DomainSide) -> Result<&SideActions, ActionError> {
        self.sides
            .get(side)
            .filter(|s| s.side == side)
            .ok_or(ActionError::NoSuchSide {
                domain: self.domain,
                side,
            })
    }

    /// Where matching packets go on `side`: the address the chain's last STE hits.
    pub fn final_icm_addr(&self, side: DomainSide) -> Result<u64, ActionError> {
        Ok(self.side(side)?.attr.final_icm_addr)
    }

    /// The action types of the list on `side`, as the STE encoders see them.
    pub fn types(&self, side: DomainSide) -> Result<ActionTypeSet, ActionError> {
        Ok(self.side(side)?.set)
    }

    /// Encodes the actions into a rule's chain on `side`: `last_ste` is the rule's last
    /// match STE as built (initialised, with its tag and mask, not yet prepared for
    /// posting); on return it carries the actions it has room for, and the action-only
    /// STEs that follow it are pushed to `extra` in chain order.
    ///
    /// The caller places each added STE in its own 1-entry table and points the hit
    /// address of the STE before it there (the encoders already set the lookup type
    /// the previous STE announces); the chain's last STE already hits
    /// [`Encoded::final_icm_addr`]. On error `last_ste` and `extra` are unchanged.
    pub fn encode(
        &self,
        side: DomainSide,
        last_ste: &mut Ste,
        extra: &mut Vec<Ste>,
    ) -> Result<Encoded, ActionError> {
        let s = self.side(side)?;
        let mut buf = [0u8; BUF_STES * STE_SIZE];
        buf[..STE_SIZE].copy_from_slice(last_ste);
        let added = encode_into(self.format, s, &mut buf)?;
        last_ste.copy_from_slice(&buf[..STE_SIZE]);
        extra.extend(buf.chunks_exact(STE_SIZE).skip(1).take(added).map(|c| {
            let mut ste = [0u8; STE_SIZE];
            ste.copy_from_slice(c);
            ste
        }));
        Ok(Encoded {
            added_stes: added,
            final_icm_addr: s.attr.final_icm_addr,
        })
    }
}

impl ActionList {
    /// Encodes the actions into a rule's STEs on `side`, in place: `stes` starts with
    /// the last match STE (initialised, with tag and mask) and has room for
    /// [`MAX_ACTION_STES`] more; the added STEs follow it, and the chain's last STE hits
    /// [`ActionList::final_icm_addr`]. Returns how many STEs were added. This is the
    /// hash-table engine's [`crate::htbl::LastSte`] step, without allocation.
    pub fn encode_in_place(&self, side: DomainSide, stes: &mut [u8]) -> Result<usize, ActionError> {
        let s = self.side(side)?;
        if stes.len() < BUF_STES * STE_SIZE {
            return Err(ActionError::BufferTooSmall {
                len: stes.len(),
                need: BUF_STES * STE_SIZE,
            });
        }
        encode_into(self.format, s, &mut stes[..BUF_STES * STE_SIZE])
    }
}

/// Encodes `s` into `buf`, by replay when the match STE's control block was seen
/// before: the same bytes, count and errors as [`encode_full`].
fn encode_into(format: SteFormat, s: &SideActions, buf: &mut [u8]) -> Result<usize, ActionError> {
    s.replays.encode(buf, |b| encode_full(format, s, b))
}

/// Encodes `s` into `buf` with the format's encoder.
fn encode_full(format: SteFormat, s: &SideActions, buf: &mut [u8]) -> Result<usize, ActionError> {
    let encode = if s.side.rx() {
        set_actions_rx
    } else {
        set_actions_tx
    };
    encode(format, &s.set, buf, &s.attr)
        .map(|o| o.added_stes)
        .map_err(|source| ActionError::Encode {
            side: s.side,
            source,
        })
}

/// Encodes once on a scratch STE, so that whatever the format cannot encode is refused
/// when the list is made rather than when a rule is written.
fn dry_run(format: SteFormat, gvmi: u16, s: &SideActions) -> Result<(), ActionError> {
    let mut buf = [0u8; BUF_STES * STE_SIZE];
    format
        .ctrl()
        .init(&mut buf[..STE_SIZE], LU_TYPE_DONT_CARE, s.side.rx(), gvmi);
    // In full: this control block is not a matcher's, so not worth a replay slot.
    encode_full(format, s, &mut buf).map(|_| ())
}

/// How often an action type may appear in one list.
fn max_count(t: ActionType) -> u8 {
    match t {
        ActionType::PopVlan | ActionType::PushVlan => ste_builder::action::MAX_VLANS as u8,
        _ => 1,
    }
}

/// Checks `actions` for a rule of `table` on the side `info` describes, and gathers
/// the encoder input.
fn prepare(
    table: &Table,
    info: &SideInfo,
    actions: &[Arc<Action>],
) -> Result<SideActions, ActionError> {
    let dmn: &Arc<Domain> = table.domain();
    let side = info.side;
    let mut attr = ActionsAttr {
        gvmi: dmn.gvmi(),
        hit_gvmi: dmn.gvmi(),
        final_icm_addr: info.default_miss,
        ..ActionsAttr::default()
    };
    let mut set = ActionTypeSet::new();
    let mut state = State::NoAction;
    let mut prev: Option<ActionType> = None;
    let mut fate: Option<ActionType> = None;
    for a in actions {
        let t = a.action_type();
        if !state::allowed_on(side, t) {
            return Err(ActionError::NotOnSide { action: t, side });
        }
        match a.kind() {
            ActionKind::Drop => attr.final_icm_addr = info.drop,
            ActionKind::DefaultMiss => attr.final_icm_addr = info.default_miss,
            ActionKind::GotoTable(dest) => {
                if !Arc::ptr_eq(dest.domain(), dmn) {
                    return Err(ActionError::OtherDomain { action: t });
                }
                if dest.level() <= table.level() {
                    return Err(ActionError::TableLevel {
                        from: table.level(),
                        to: dest.level(),
                    });
                }
                // Same domain, so the destination has this side.
                attr.final_icm_addr = dest.root_addr(side).unwrap_or(info.default_miss);
            }
            ActionKind::Tir(tir) => {
                if !same_device(tir.device(), dmn.device()) {
                    return Err(ActionError::OtherDevice { action: t });
                }
                attr.final_icm_addr = tir.icm_addr();
            }
            ActionKind::Qp(qp) => attr.final_icm_addr = qp.tir_icm_addr,
            ActionKind::Vport { domain, vport } => {
                if !Arc::ptr_eq(domain, dmn) {
                    return Err(ActionError::OtherDomain { action: t });
                }
                attr.hit_gvmi = vport.vhca_gvmi;
                attr.final_icm_addr = if side.rx() {
                    vport.icm_address_rx
                } else {
                    vport.icm_address_tx
                };
            }
            ActionKind::Tag(tag) => attr.flow_tag = *tag,
            ActionKind::Counter { counter, offset } => {
                if !same_device(counter.device(), dmn.device()) {
                    return Err(ActionError::OtherDevice { action: t });
                }
                attr.ctr_id = counter.id().wrapping_add(*offset);
            }
        }
        let max = max_count(t);
        if set.count(t) >= max {
            return Err(ActionError::Duplicate { action: t, max });
        }
        set.insert(t);
        state = match (state::next(side, state, t), fate, prev) {
            (Some(next), _, _) => next,
            (None, Some(first), _) if t.is_terminal() => {
                return Err(ActionError::MoreThanOneFate { first, second: t })
            }
            (None, _, Some(after)) => {
                return Err(ActionError::Order {
                    action: t,
                    after,
                    side,
                })
            }
            // Nothing before it, yet not allowed first.
            (None, _, None) => return Err(ActionError::NotOnSide { action: t, side }),
        };
        if t.is_terminal() {
            fate = Some(t);
        }
        prev = Some(t);
    }
    Ok(SideActions {
        side,
        set,
        attr,
        replays: Replays::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainType;

    /// A list as `ActionList::new` would make it, for action types no `Action` has yet:
    /// decapsulation followed by a VLAN pop needs an added STE on v0.
    #[test]
    fn added_stes_come_back_in_chain_order() {
        let side = DomainSide::NicRx;
        let set: ActionTypeSet = [ActionType::TnlL2ToL2, ActionType::PopVlan, ActionType::Qp]
            .into_iter()
            .collect();
        let mut attr = ActionsAttr {
            gvmi: 3,
            hit_gvmi: 3,
            final_icm_addr: 0x8000_0040,
            ..ActionsAttr::default()
        };
        attr.vlans.count_pop = 1;
        let mut sides = PerSide::default();
        sides.insert(
            side,
            SideActions {
                side,
                set,
                attr,
                replays: Replays::default(),
            },
        );
        let list = ActionList {
            actions: Vec::new(),
            format: SteFormat::V0,
            domain: DomainType::NicRx,
            dmn: Weak::new(),
            level: 1,
            sides,
        };
        let mut last: Ste = [0u8; STE_SIZE];
        SteFormat::V0
            .ctrl()
            .init(&mut last, LU_TYPE_DONT_CARE, true, 3);
        let mut want = [0u8; BUF_STES * STE_SIZE];
        want[..STE_SIZE].copy_from_slice(&last);
        let out = set_actions_rx(SteFormat::V0, &set, &mut want, &attr).unwrap();
        assert_eq!(out.added_stes, 1);

        let mut extra = vec![[0xee; STE_SIZE]];
        let enc = list.encode(side, &mut last, &mut extra).unwrap();
        assert_eq!(
            enc,
            Encoded {
                added_stes: 1,
                final_icm_addr: 0x8000_0040
            }
        );
        assert_eq!(last[..], want[..STE_SIZE]);
        // Pushed after what the caller already had.
        assert_eq!(extra.len(), 2);
        assert_eq!(extra[0], [0xee; STE_SIZE]);
        assert_eq!(extra[1][..], want[STE_SIZE..2 * STE_SIZE]);
        // The added STE, not the match STE, hits the final address.
        let ctrl = SteFormat::V0.ctrl();
        assert_eq!(ctrl.hit_index(&extra[1]), (0x8000_0040 >> 5) | 1);
        assert_ne!(ctrl.hit_index(&last), (0x8000_0040 >> 5) | 1);
    }
}
