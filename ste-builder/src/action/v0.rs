//! STE v0 (ConnectX-5) action encodings.
//!
//! A v0 STE has no action list: each action is a field of the control block, and which
//! fields exist depends on the entry type (RX, TX or modify-packet). Actions that need a
//! different entry type, or a field already used, go into an added STE.

use super::{size_in_words, ActionError, ActionType, ActionTypeSet, ActionsAttr, SteChain};
use crate::bits::{get, set};
use crate::prm::ste_sx_transmit as tx;
use crate::prm::{ste_general as gen, ste_modify_packet as mdfy, ste_rx_steering_mult as rx};
use crate::ste::v0::entry_type;
use crate::ste::{SteCtrl, LU_TYPE_DONT_CARE, V0};

/// Tunneling actions of RX entries.
mod tunneling_action {
    pub const DECAP: u64 = 2;
    pub const L3_DECAP: u64 = 3;
    pub const POP_VLAN: u64 = 4;
}

/// Packet actions of TX entries.
mod tx_action_type {
    pub const PUSH_VLAN: u64 = 1;
    pub const ENCAP_L3: u64 = 3;
    pub const ENCAP: u64 = 4;
}

/// The flag in the QP-list pointer of an RX entry saying it carries a flow tag.
const ENABLE_FLOW_TAG: u64 = 1 << 31;

/// Starts the next STE of the chain as an action-only entry of `entry_type`.
fn next_ste(chain: &mut SteChain<'_>, entry_type: u64, gvmi: u16) -> Result<(), ActionError> {
    let ste = chain.advance()?;
    V0::init_full(ste, LU_TYPE_DONT_CARE, entry_type, gvmi);
    Ok(())
}

fn entry_type_of(ste: &[u8]) -> u64 {
    get(ste, gen::ENTRY_TYPE)
}

fn set_entry_type(ste: &mut [u8], entry_type: u64) {
    set(ste, gen::ENTRY_TYPE, entry_type);
}

fn set_counter_id(ste: &mut [u8], ctr_id: u32) {
    // RX and TX entries keep the counter at the same place.
    set(ste, rx::COUNTER_TRIGGER_15_0, ctr_id.into());
    set(ste, rx::COUNTER_TRIGGER_23_16, u64::from(ctr_id >> 16));
}

fn set_rewrite_actions(ste: &mut [u8], num_of_actions: u16, index: u32) {
    set(ste, mdfy::NUMBER_OF_RE_WRITE_ACTIONS, num_of_actions.into());
    set(ste, mdfy::HEADER_RE_WRITE_ACTIONS_POINTER, index.into());
}

fn set_go_back(ste: &mut [u8]) {
    set(ste, tx::GO_BACK, 1);
}

fn set_tx_push_vlan(ste: &mut [u8], vlan_hdr: u32, go_back: bool) {
    set(ste, tx::ACTION_TYPE, tx_action_type::PUSH_VLAN);
    set(ste, tx::ENCAP_POINTER_VLAN_DATA, vlan_hdr.into());
    // Hardware needs go-back for a push VLAN combined with encapsulation.
    if go_back {
        set_go_back(ste);
    }
}

fn set_tx_encap(ste: &mut [u8], reformat_id: u32, size: u32, encap_l3: bool) {
    let action = if encap_l3 {
        tx_action_type::ENCAP_L3
    } else {
        tx_action_type::ENCAP
    };
    set(ste, tx::ACTION_TYPE, action);
    set(ste, tx::ACTION_DESCRIPTION, size_in_words(size));
    set(ste, tx::ENCAP_POINTER_VLAN_DATA, reformat_id.into());
}

fn set_rx_decap(ste: &mut [u8]) {
    set(ste, rx::TUNNELING_ACTION, tunneling_action::DECAP);
    set(ste, rx::FAIL_ON_ERROR, 1);
}

fn set_rx_decap_l3(ste: &mut [u8], vlan: bool) {
    set(ste, rx::TUNNELING_ACTION, tunneling_action::L3_DECAP);
    set(ste, mdfy::ACTION_DESCRIPTION, u64::from(vlan));
    set(ste, rx::FAIL_ON_ERROR, 1);
}

fn set_rx_pop_vlan(ste: &mut [u8]) {
    set(ste, rx::TUNNELING_ACTION, tunneling_action::POP_VLAN);
}

fn set_rx_flow_tag(ste: &mut [u8], flow_tag: u32) {
    set(
        ste,
        rx::QP_LIST_POINTER,
        ENABLE_FLOW_TAG | u64::from(flow_tag),
    );
}

/// Points the last STE of the chain at the destination.
fn set_destination(chain: &mut SteChain<'_>, attr: &ActionsAttr) {
    let ste = chain.ste();
    V0.set_hit_gvmi(ste, attr.hit_gvmi);
    V0.set_hit_addr(ste, attr.final_icm_addr, 1);
}

/// TX actions, in the order the hardware applies them: modify header (outer headers
/// only, so before any encapsulation), push VLAN, encapsulation, counter.
pub(crate) fn set_actions_tx(
    actions: &ActionTypeSet,
    chain: &mut SteChain<'_>,
    attr: &ActionsAttr,
) -> Result<(), ActionError> {
    let has = |t| actions.contains(t);
    let encap = has(ActionType::L2ToTnlL2) || has(ActionType::L2ToTnlL3);

    if has(ActionType::ModifyHdr) {
        let ste = chain.ste();
        set_entry_type(ste, entry_type::MODIFY_PKT);
        set_rewrite_actions(ste, attr.modify_actions, attr.modify_index);
    }

    if has(ActionType::PushVlan) {
        let headers = &attr.vlans.headers[..usize::from(attr.vlans.count_push)];
        for (i, &header) in headers.iter().enumerate() {
            // One VLAN per STE, and a modify-packet entry has no push field.
            if i > 0 || has(ActionType::ModifyHdr) {
                next_ste(chain, entry_type::TX, attr.gvmi)?;
            }
            set_tx_push_vlan(chain.ste(), header, encap);
        }
    }

    if encap {
        // Encapsulation shares its field with push VLAN and does not exist in a
        // modify-packet entry.
        if has(ActionType::ModifyHdr) || has(ActionType::PushVlan) {
            next_ste(chain, entry_type::TX, attr.gvmi)?;
        }
        let ste = chain.ste();
        set_tx_encap(
            ste,
            attr.reformat_id,
            attr.reformat_size,
            has(ActionType::L2ToTnlL3),
        );
        // A previous table (ACL) pushed a priority tag: hardware needs go-back for
        // encapsulation on top of it.
        if attr.prio_tag_required {
            set_go_back(ste);
        }
    }

    if has(ActionType::Ctr) {
        set_counter_id(chain.ste(), attr.ctr_id);
    }

    set_destination(chain, attr);
    Ok(())
}

/// RX actions, in the order the hardware applies them: counter (before decapsulation, so
/// it counts the whole packet), decapsulation, VLAN pop, modify header, flow tag.
pub(crate) fn set_actions_rx(
    actions: &ActionTypeSet,
    chain: &mut SteChain<'_>,
    attr: &ActionsAttr,
) -> Result<(), ActionError> {
    let has = |t| actions.contains(t);

    if has(ActionType::Ctr) {
        set_counter_id(chain.ste(), attr.ctr_id);
    }

    if has(ActionType::TnlL3ToL2) {
        let ste = chain.ste();
        set_entry_type(ste, entry_type::MODIFY_PKT);
        set_rx_decap_l3(ste, attr.decap_with_vlan);
        set_rewrite_actions(ste, attr.decap_actions, attr.decap_index);
    }

    if has(ActionType::TnlL2ToL2) {
        set_rx_decap(chain.ste());
    }

    if has(ActionType::PopVlan) {
        let decap = has(ActionType::TnlL2ToL2) || has(ActionType::TnlL3ToL2);
        for i in 0..attr.vlans.count_pop {
            // Pop shares the tunneling field with decapsulation; one pop per STE.
            if i > 0 || decap {
                next_ste(chain, entry_type::RX, attr.gvmi)?;
            }
            set_rx_pop_vlan(chain.ste());
        }
    }

    if has(ActionType::ModifyHdr) {
        if entry_type_of(chain.ste()) == entry_type::MODIFY_PKT {
            // The rewrite fields already hold the L3 decapsulation's list.
            next_ste(chain, entry_type::MODIFY_PKT, attr.gvmi)?;
        } else {
            set_entry_type(chain.ste(), entry_type::MODIFY_PKT);
        }
        set_rewrite_actions(chain.ste(), attr.modify_actions, attr.modify_index);
    }

    if has(ActionType::Tag) {
        // A modify-packet entry uses the QP-list field for its rewrite list.
        if entry_type_of(chain.ste()) == entry_type::MODIFY_PKT {
            next_ste(chain, entry_type::RX, attr.gvmi)?;
        }
        set_rx_flow_tag(chain.ste(), attr.flow_tag);
    }

    set_destination(chain, attr);
    Ok(())
}
