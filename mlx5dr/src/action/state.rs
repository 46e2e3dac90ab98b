//! The order rules of a rule's action list, as rdma-core checks them: a state machine
//! per side (NIC RX, NIC TX, FDB RX, FDB TX) over the action types in list order.
//!
//! The states say what the list has done to the packet so far (nothing, decapsulated,
//! rewrote headers, popped or pushed VLANs, encapsulated, an ASO, only non-terminal
//! marks such as tag and counter, or decided its fate). Each side's table lists, per
//! state, the action types that may come next and the state they lead to; a type not
//! listed is refused. Once the fate is decided only a counter may follow. The tables
//! cover every action type `ste_builder` encodes, including those this driver has no
//! [`super::Action`] for yet, so that adding one needs no change here.

use ste_builder::action::ActionType;

use crate::matching::DomainSide;

/// Where an action list stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// No action yet.
    NoAction,
    /// Encapsulated.
    Encap,
    /// Decapsulated.
    Decap,
    /// Headers rewritten.
    ModifyHdr,
    /// VLAN popped.
    PopVlan,
    /// VLAN pushed.
    PushVlan,
    /// Only non-terminal marks (tag, counter, first-hit) so far.
    NonTerm,
    /// The fate is decided.
    Term,
    /// An ASO action.
    Aso,
}

/// Per state, the action types allowed next and the state each leads to.
type Rules = &'static [(State, &'static [(ActionType, State)])];

use ActionType as T;
use State as S;

const NIC_RX: Rules = &[
    (
        S::NoAction,
        &[
            (T::Drop, S::Term),
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::NonTerm),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::TnlL2ToL2, S::Decap),
            (T::TnlL3ToL2, S::Decap),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::Miss, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Decap,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::Decap),
            (T::Ctr, S::Decap),
            (T::AsoFirstHit, S::Decap),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::ModifyHdr,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::ModifyHdr),
            (T::Ctr, S::ModifyHdr),
            (T::AsoFirstHit, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::PushVlan, S::PushVlan),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PopVlan,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::PopVlan),
            (T::Ctr, S::PopVlan),
            (T::AsoFirstHit, S::PopVlan),
            (T::PopVlan, S::PopVlan),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::ModifyHdr, S::ModifyHdr),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PushVlan,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::PushVlan),
            (T::Ctr, S::PushVlan),
            (T::AsoFirstHit, S::PushVlan),
            (T::PushVlan, S::PushVlan),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::NonTerm,
        &[
            (T::Drop, S::Term),
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Tag, S::NonTerm),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::TnlL2ToL2, S::Decap),
            (T::TnlL3ToL2, S::Decap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::Miss, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Aso,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Ctr, S::Aso),
            (T::AsoFirstHit, S::Aso),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Encap,
        &[
            (T::Qp, S::Term),
            (T::Ft, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Meter, S::Term),
            (T::Tag, S::Encap),
            (T::Ctr, S::Encap),
            (T::AsoFirstHit, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (S::Term, &[(T::Ctr, S::Term)]),
];
const NIC_TX: Rules = &[
    (
        S::NoAction,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PushVlan, S::PushVlan),
            (T::PopVlan, S::PopVlan),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::Miss, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Encap,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::Encap),
            (T::AsoFirstHit, S::Encap),
            (T::Meter, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::ModifyHdr,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::ModifyHdr),
            (T::AsoFirstHit, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::PushVlan, S::PushVlan),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PopVlan,
        &[
            (T::Ft, S::Term),
            (T::Meter, S::Term),
            (T::Ctr, S::PopVlan),
            (T::AsoFirstHit, S::PopVlan),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::ModifyHdr, S::ModifyHdr),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PushVlan,
        &[
            (T::Ft, S::Term),
            (T::Meter, S::Term),
            (T::Ctr, S::PushVlan),
            (T::AsoFirstHit, S::PushVlan),
            (T::PushVlan, S::PushVlan),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::NonTerm,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PushVlan, S::PushVlan),
            (T::PopVlan, S::PopVlan),
            (T::Miss, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Aso,
        &[
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PushVlan, S::PushVlan),
            (T::Ctr, S::Aso),
            (T::AsoFirstHit, S::Aso),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Miss, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (S::Term, &[(T::Ctr, S::Term)]),
];
const FDB_RX: Rules = &[
    (
        S::NoAction,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::TnlL2ToL2, S::Decap),
            (T::TnlL3ToL2, S::Decap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::Vport, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::Miss, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Decap,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::Decap),
            (T::AsoFirstHit, S::Decap),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::Vport, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Encap,
        &[
            (T::Ft, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Vport, S::Term),
            (T::Meter, S::Term),
            (T::Ctr, S::Encap),
            (T::AsoFirstHit, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::ModifyHdr,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::ModifyHdr),
            (T::AsoFirstHit, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Vport, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::PushVlan, S::PushVlan),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PopVlan,
        &[
            (T::Ft, S::Term),
            (T::PopVlan, S::PopVlan),
            (T::Ctr, S::PopVlan),
            (T::AsoFirstHit, S::PopVlan),
            (T::Vport, S::Term),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::ModifyHdr, S::ModifyHdr),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PushVlan,
        &[
            (T::Ft, S::Term),
            (T::PushVlan, S::PushVlan),
            (T::Ctr, S::PushVlan),
            (T::AsoFirstHit, S::PushVlan),
            (T::Vport, S::Term),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::NonTerm,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::TnlL2ToL2, S::Decap),
            (T::TnlL3ToL2, S::Decap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::Vport, S::Term),
            (T::Miss, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Aso,
        &[
            (T::Vport, S::Term),
            (T::Ft, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Ctr, S::Aso),
            (T::AsoFirstHit, S::Aso),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (S::Term, &[(T::Ctr, S::Term)]),
];
const FDB_TX: Rules = &[
    (
        S::NoAction,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::ModifyHdr, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::PushVlan, S::PushVlan),
            (T::PopVlan, S::PopVlan),
            (T::Vport, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::Miss, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Encap,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::Encap),
            (T::AsoFirstHit, S::Encap),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Vport, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::ModifyHdr,
        &[
            (T::Ft, S::Term),
            (T::Ctr, S::ModifyHdr),
            (T::AsoFirstHit, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::PushVlan, S::PushVlan),
            (T::Vport, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PopVlan,
        &[
            (T::Ft, S::Term),
            (T::Meter, S::Term),
            (T::Ctr, S::PopVlan),
            (T::AsoFirstHit, S::PopVlan),
            (T::PopVlan, S::PopVlan),
            (T::PushVlan, S::PushVlan),
            (T::ModifyHdr, S::ModifyHdr),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Vport, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::PushVlan,
        &[
            (T::Ft, S::Term),
            (T::PushVlan, S::PushVlan),
            (T::Ctr, S::PushVlan),
            (T::AsoFirstHit, S::PushVlan),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Vport, S::Term),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::NonTerm,
        &[
            (T::Drop, S::Term),
            (T::Ft, S::Term),
            (T::Ctr, S::NonTerm),
            (T::AsoFirstHit, S::NonTerm),
            (T::ModifyHdr, S::ModifyHdr),
            (T::Meter, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::PushVlan, S::PushVlan),
            (T::PopVlan, S::PopVlan),
            (T::Vport, S::Term),
            (T::Miss, S::Term),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (
        S::Aso,
        &[
            (T::L2ToTnlL2, S::Encap),
            (T::L2ToTnlL3, S::Encap),
            (T::ModifyHdr, S::ModifyHdr),
            (T::PushVlan, S::PushVlan),
            (T::Vport, S::Term),
            (T::Ft, S::Term),
            (T::Sampler, S::Term),
            (T::DestArray, S::Term),
            (T::Ctr, S::Aso),
            (T::AsoFirstHit, S::Aso),
            (T::AsoFlowMeter, S::Aso),
            (T::AsoCt, S::Aso),
            (T::RootFt, S::Term),
        ],
    ),
    (S::Term, &[(T::Ctr, S::Term)]),
];

/// The state after `action` in `state` on `side`, or `None` if the action may not
/// come there.
pub(crate) fn next(side: DomainSide, state: State, action: ActionType) -> Option<State> {
    let rules = match side {
        DomainSide::NicRx => NIC_RX,
        DomainSide::NicTx => NIC_TX,
        DomainSide::FdbRx => FDB_RX,
        DomainSide::FdbTx => FDB_TX,
    };
    rules
        .iter()
        .find(|(s, _)| *s == state)?
        .1
        .iter()
        .find(|(t, _)| *t == action)
        .map(|&(_, to)| to)
}

/// True if `action` may come anywhere in a list on `side` (from some state).
pub(crate) fn allowed_on(side: DomainSide, action: ActionType) -> bool {
    [
        S::NoAction,
        S::Encap,
        S::Decap,
        S::ModifyHdr,
        S::PopVlan,
        S::PushVlan,
        S::NonTerm,
        S::Term,
        S::Aso,
    ]
    .into_iter()
    .any(|s| next(side, s, action).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIDES: [DomainSide; 4] = [
        DomainSide::NicRx,
        DomainSide::NicTx,
        DomainSide::FdbRx,
        DomainSide::FdbTx,
    ];

    #[test]
    fn terminal_types_end_in_term_and_only_a_counter_follows() {
        for side in SIDES {
            for t in ActionType::ALL {
                let after = next(side, S::Term, t);
                assert_eq!(after.is_some(), t == T::Ctr, "{side} {t}");
                for s in [S::NoAction, S::NonTerm] {
                    if let Some(to) = next(side, s, t) {
                        assert_eq!(to == S::Term, t.is_terminal(), "{side} {s:?} {t}");
                    }
                }
            }
        }
    }

    #[test]
    fn side_specific_types() {
        // Tag and QP/TIR only on NIC RX; vports only in the FDB; decapsulation only on
        // receive sides.
        for side in SIDES {
            let nic_rx = side == DomainSide::NicRx;
            let fdb = matches!(side, DomainSide::FdbRx | DomainSide::FdbTx);
            assert_eq!(allowed_on(side, T::Tag), nic_rx, "{side}");
            assert_eq!(allowed_on(side, T::Qp), nic_rx, "{side}");
            assert_eq!(allowed_on(side, T::Vport), fdb, "{side}");
            assert_eq!(allowed_on(side, T::TnlL2ToL2), side.rx(), "{side}");
            for t in [T::Drop, T::Ft, T::Ctr, T::Miss, T::ModifyHdr, T::PushVlan] {
                assert!(allowed_on(side, t), "{side} {t}");
            }
        }
    }

    #[test]
    fn a_few_transitions() {
        assert_eq!(
            next(DomainSide::NicRx, S::NoAction, T::Tag),
            Some(S::NonTerm)
        );
        assert_eq!(next(DomainSide::NicRx, S::Decap, T::Tag), Some(S::Decap));
        // Decapsulation must come before a header rewrite, not after it.
        assert_eq!(next(DomainSide::NicRx, S::ModifyHdr, T::TnlL2ToL2), None);
        // NIC TX may not drop after an encapsulation (only go to a table or a meter).
        assert_eq!(next(DomainSide::NicTx, S::Encap, T::Drop), None);
        assert_eq!(next(DomainSide::FdbTx, S::Encap, T::Vport), Some(S::Term));
    }
}
