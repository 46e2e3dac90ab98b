//! STE v1/v2 action encodings.
//!
//! A v1 STE carries a short list of action words after its control fields: 8 bytes in a
//! BWC (hash-table) entry, 12 bytes in a definer-based match entry. An action is a single
//! (4-byte), double (8-byte) or triple (12-byte) word. Actions are placed in hardware
//! order; when one does not fit, or may not share an STE with an earlier one, a new
//! action-only match STE is added and the list continues there. v2 uses the same
//! encodings and differs only in its [`ActionCaps`].

use super::{
    size_in_words, ActionCaps, ActionError, ActionType, ActionTypeSet, ActionsAttr, Aso, AsoKind,
    SteChain, INVALID_PATTERN_INDEX,
};
use crate::bits::{get, set};
use crate::prm::ste_double_action_accelerated_modify_action_list_v1 as accel_list;
use crate::prm::ste_double_action_aso_v1 as aso;
use crate::prm::ste_double_action_insert_with_inline_v1 as insert_inline;
use crate::prm::ste_double_action_insert_with_ptr_v1 as insert_ptr;
use crate::prm::ste_single_action_flow_tag_v1 as flow_tag;
use crate::prm::ste_single_action_modify_list_v1 as modify_list;
use crate::prm::ste_single_action_remove_header_size_v1 as remove_size;
use crate::prm::ste_single_action_remove_header_v1 as remove_header;
use crate::prm::{ste_mask_and_match_v1 as mam, ste_match_bwc_v1 as bwc};
use crate::ste::v1::entry_format;
use crate::ste::{SteFormat, LU_TYPE_DONT_CARE};

/// v1 action ids (the first byte of each action word).
// The whole table is kept as the PRM defines it; the STE action encoders use only part.
#[allow(dead_code)]
pub(crate) mod action_id {
    pub const NOP: u64 = 0x00;
    pub const COPY: u64 = 0x05;
    pub const SET: u64 = 0x06;
    pub const ADD: u64 = 0x07;
    pub const REMOVE_BY_SIZE: u64 = 0x08;
    pub const REMOVE_HEADER_TO_HEADER: u64 = 0x09;
    pub const INSERT_INLINE: u64 = 0x0a;
    pub const INSERT_POINTER: u64 = 0x0b;
    pub const FLOW_TAG: u64 = 0x0c;
    pub const QUEUE_ID_SEL: u64 = 0x0d;
    pub const ACCELERATED_LIST: u64 = 0x0e;
    pub const MODIFY_LIST: u64 = 0x0f;
    pub const ASO: u64 = 0x12;
    pub const TRAILER: u64 = 0x13;
    pub const COUNTER_ID: u64 = 0x14;
    pub const MAX: u64 = 0x21;
    pub const SPECIAL_ENCAP_L3: u64 = 0x22;
}

/// ASO context types.
pub(crate) mod aso_ctx_type {
    pub const CT: u64 = 0x1;
    pub const POLICERS: u64 = 0x2;
    pub const FIRST_HIT: u64 = 0x4;
}

/// Header anchors: packet positions that remove and insert actions are relative to.
mod anchor {
    pub const FIRST_VLAN: u64 = 0x02;
    pub const IPV6_IPV4: u64 = 0x07;
    pub const INNER_MAC: u64 = 0x13;
}

/// Attributes of an insert-with-pointer action.
mod insert_ptr_attr {
    /// The inserted header is a tunnel (encapsulation).
    pub const ENCAP: u64 = 1;
}

/// Action word sizes in bytes.
const SINGLE: usize = 4;
const DOUBLE: usize = 8;
const TRIPLE: usize = 12;

/// Bytes of the destination and source MAC addresses: a pushed VLAN goes after them.
const L2_MACS_LEN: u64 = 12;
/// Bytes of one VLAN header.
const VLAN_LEN: u64 = 4;

/// Lookup type of an action-only STE: a match entry of the "don't care" definer.
const LU_TYPE_MATCH_DONT_CARE: u16 = ((entry_format::MATCH as u16) << 8) | LU_TYPE_DONT_CARE;

/// First-hit flags per ASO object.
const ASO_FIRST_HIT_NUM_PER_OBJ: u32 = 512;
/// Flow meters per ASO object.
const ASO_FLOW_METER_NUM_PER_OBJ: u32 = 2;
/// CT contexts per ASO object.
const ASO_CT_NUM_PER_OBJ: u32 = 1;

/// The hardware's 64-bit register pair holding metadata register C `dest_reg_id` (C
/// registers are numbered from 1 in pairs).
fn dest_reg_pair(dest_reg_id: u8) -> u64 {
    ((i32::from(dest_reg_id) - 1) / 2) as u64
}

/// Writes a connection-tracking ASO double action (8 bytes) into `d_action`.
pub(crate) fn set_aso_ct(
    d_action: &mut [u8],
    object_id: u32,
    offset: u32,
    dest_reg_id: u8,
    direction: bool,
) {
    set(d_action, aso::ACTION_ID, action_id::ASO);
    set(
        d_action,
        aso::ASO_CONTEXT_NUMBER,
        u64::from(object_id.wrapping_add(offset / ASO_CT_NUM_PER_OBJ)),
    );
    set(d_action, aso::DEST_REG_ID, dest_reg_pair(dest_reg_id));
    set(d_action, aso::ASO_CONTEXT_TYPE, aso_ctx_type::CT);
    set(
        d_action,
        crate::prm::ste_aso_ct_action_v1::DIRECTION.at(aso::CT_OFF),
        u64::from(direction),
    );
}

fn set_aso_first_hit(d_action: &mut [u8], a: &Aso, set_flag: bool) {
    use crate::prm::ste_aso_first_hit_action_v1 as first_hit;
    set(d_action, aso::ACTION_ID, action_id::ASO);
    set(
        d_action,
        aso::ASO_CONTEXT_NUMBER,
        u64::from(
            a.object_id
                .wrapping_add(a.offset / ASO_FIRST_HIT_NUM_PER_OBJ),
        ),
    );
    set(d_action, aso::DEST_REG_ID, dest_reg_pair(a.dest_reg_id));
    set(d_action, aso::ASO_CONTEXT_TYPE, aso_ctx_type::FIRST_HIT);
    set(
        d_action,
        first_hit::LINE_ID.at(aso::FIRST_HIT_OFF),
        u64::from(a.offset % ASO_FIRST_HIT_NUM_PER_OBJ),
    );
    // Hardware reads 0 as "set the flag" and 1 as "only read it".
    set(
        d_action,
        first_hit::SET.at(aso::FIRST_HIT_OFF),
        u64::from(!set_flag),
    );
}

fn set_aso_flow_meter(d_action: &mut [u8], a: &Aso, initial_color: u8) {
    use crate::prm::ste_aso_flow_meter_action_v1 as meter;
    set(d_action, aso::ACTION_ID, action_id::ASO);
    set(
        d_action,
        aso::ASO_CONTEXT_NUMBER,
        u64::from(
            a.object_id
                .wrapping_add(a.offset / ASO_FLOW_METER_NUM_PER_OBJ),
        ),
    );
    set(d_action, aso::DEST_REG_ID, dest_reg_pair(a.dest_reg_id));
    set(d_action, aso::ASO_CONTEXT_TYPE, aso_ctx_type::POLICERS);
    set(
        d_action,
        meter::LINE_ID.at(aso::FLOW_METER_OFF),
        u64::from(a.offset % ASO_FLOW_METER_NUM_PER_OBJ),
    );
    set(
        d_action,
        meter::INITIAL_COLOR.at(aso::FLOW_METER_OFF),
        initial_color.into(),
    );
}

/// The chain of STEs being filled, with the free part of the current STE's action list.
///
/// Invariant: `off + room` is the end of the action list (byte 32), so an action of at
/// most `room` bytes fits.
struct ActionList<'c, 'a> {
    chain: &'c mut SteChain<'a>,
    gvmi: u16,
    /// Byte offset of the next free action word in the current STE.
    off: usize,
    /// Free bytes left in the current STE's action list.
    room: usize,
}

impl<'c, 'a> ActionList<'c, 'a> {
    fn new(chain: &'c mut SteChain<'a>, gvmi: u16) -> Self {
        let (field, room) = if get(chain.ste(), bwc::ENTRY_FORMAT) == entry_format::MATCH {
            (mam::ACTION, TRIPLE)
        } else {
            (bwc::ACTION, DOUBLE)
        };
        ActionList {
            chain,
            gvmi,
            off: field.offset / 8,
            room,
        }
    }

    /// The current STE.
    fn ste(&mut self) -> &mut [u8] {
        self.chain.ste()
    }

    /// The current STE from the next free action word on.
    fn action(&mut self) -> &mut [u8] {
        let off = self.off;
        &mut self.chain.ste()[off..]
    }

    /// The next free action word is taken (`len` bytes).
    fn consume(&mut self, len: usize) {
        self.off += len;
        self.room = self.room.saturating_sub(len);
    }

    /// Continues in a new action-only match STE with an empty 12-byte action list.
    fn next_match(&mut self) -> Result<(), ActionError> {
        let gvmi = self.gvmi;
        let ste = self.chain.advance()?;
        SteFormat::V1
            .ctrl()
            .init(ste, LU_TYPE_MATCH_DONT_CARE, false, gvmi);
        let start = mam::ACTION.offset / 8;
        let end = mam::ACTION.end_byte();
        ste[start..end].fill(0);
        self.off = start;
        self.room = TRIPLE;
        Ok(())
    }

    /// Starts a new STE if `need` bytes do not fit or `force` is set.
    fn make_room(&mut self, need: usize, force: bool) -> Result<bool, ActionError> {
        if force || self.room < need {
            self.next_match()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Marks the current STE as changing the packet: hardware parses it again before the
    /// next lookup.
    fn set_reparse(&mut self) {
        set(self.ste(), bwc::REPARSE, 1);
    }

    fn set_flow_tag(&mut self, tag: u32) {
        let a = self.action();
        set(a, flow_tag::ACTION_ID, action_id::FLOW_TAG);
        set(a, flow_tag::FLOW_TAG, tag.into());
        self.consume(SINGLE);
    }

    fn set_counter_id(&mut self, ctr_id: u32) {
        set(self.ste(), bwc::COUNTER_ID, ctr_id.into());
    }

    fn set_pop_vlan(&mut self, vlans: u8) {
        let a = self.action();
        set(a, remove_size::ACTION_ID, action_id::REMOVE_BY_SIZE);
        set(a, remove_size::START_ANCHOR, anchor::FIRST_VLAN);
        set(
            a,
            remove_size::REMOVE_SIZE,
            (VLAN_LEN / 2) * u64::from(vlans),
        );
        self.set_reparse();
        self.consume(SINGLE);
    }

    fn set_push_vlan(&mut self, vlan_hdr: u32) {
        let a = self.action();
        set(a, insert_inline::ACTION_ID, action_id::INSERT_INLINE);
        // Offsets are in 2-byte words.
        set(a, insert_inline::START_OFFSET, L2_MACS_LEN / 2);
        set(a, insert_inline::INLINE_DATA, vlan_hdr.into());
        self.set_reparse();
        self.consume(DOUBLE);
    }

    fn set_rx_decap(&mut self) {
        let a = self.action();
        set(
            a,
            remove_header::ACTION_ID,
            action_id::REMOVE_HEADER_TO_HEADER,
        );
        set(a, remove_header::DECAP, 1);
        set(a, remove_header::VNI_TO_CQE, 1);
        set(a, remove_header::END_ANCHOR, anchor::INNER_MAC);
        self.set_reparse();
        self.consume(SINGLE);
    }

    fn write_insert_ptr(d_action: &mut [u8], reformat_id: u32, size: u32) {
        set(d_action, insert_ptr::ACTION_ID, action_id::INSERT_POINTER);
        set(d_action, insert_ptr::SIZE, size_in_words(size));
        set(d_action, insert_ptr::POINTER, reformat_id.into());
        set(d_action, insert_ptr::ATTRIBUTES, insert_ptr_attr::ENCAP);
    }

    fn set_encap(&mut self, reformat_id: u32, size: u32) {
        Self::write_insert_ptr(self.action(), reformat_id, size);
        self.set_reparse();
        self.consume(DOUBLE);
    }

    /// L3 encapsulation: a single word removing the L2 header, then a double word
    /// inserting the tunnel headers.
    fn set_encap_l3(&mut self, reformat_id: u32, size: u32) {
        let a = self.action();
        set(
            a,
            remove_header::ACTION_ID,
            action_id::REMOVE_HEADER_TO_HEADER,
        );
        set(a, remove_header::END_ANCHOR, anchor::IPV6_IPV4);
        Self::write_insert_ptr(&mut a[SINGLE..], reformat_id, size);
        self.set_reparse();
        self.consume(TRIPLE);
    }

    /// A modify-header list: an accelerated pattern (or the one inline action that
    /// replaces it), else a plain rewrite list addressed by `index`.
    fn set_rewrite_actions(
        &mut self,
        num_of_actions: u16,
        pattern: u32,
        index: u32,
        inline_action: Option<[u8; 8]>,
    ) {
        let a = self.action();
        if pattern != INVALID_PATTERN_INDEX {
            match inline_action {
                Some(bytes) => a[..DOUBLE].copy_from_slice(&bytes),
                None => {
                    set(a, accel_list::ACTION_ID, action_id::ACCELERATED_LIST);
                    set(
                        a,
                        accel_list::MODIFY_ACTIONS_PATTERN_POINTER,
                        pattern.into(),
                    );
                    set(
                        a,
                        accel_list::NUMBER_OF_MODIFY_ACTIONS,
                        num_of_actions.into(),
                    );
                    set(a, accel_list::MODIFY_ACTIONS_ARGUMENT_POINTER, index.into());
                }
            }
        } else {
            set(a, modify_list::ACTION_ID, action_id::MODIFY_LIST);
            set(a, modify_list::NUM_OF_MODIFY_ACTIONS, num_of_actions.into());
            set(a, modify_list::MODIFY_ACTIONS_PTR, index.into());
        }
        self.set_reparse();
        // Even the single-word plain list takes a double word.
        self.consume(DOUBLE);
    }

    fn set_modify_header(&mut self, attr: &ActionsAttr) {
        self.set_rewrite_actions(
            attr.modify_actions,
            attr.modify_pat_idx,
            attr.modify_index,
            attr.single_modify_action,
        );
    }

    fn set_aso(&mut self, a: &Aso) {
        let d = self.action();
        match a.kind {
            AsoKind::FirstHit { set } => set_aso_first_hit(d, a, set),
            AsoKind::FlowMeter { initial_color } => set_aso_flow_meter(d, a, initial_color),
            AsoKind::Ct { direction } => {
                set_aso_ct(d, a.object_id, a.offset, a.dest_reg_id, direction)
            }
        }
        self.consume(DOUBLE);
    }

    /// Connection tracking. A CT object of another domain cannot be written here: it
    /// gets an STE of its own, which the caller fills from the peer domain; its index
    /// among the added STEs is `ste_loc`.
    fn set_aso_ct_or_place_cross_domain(
        &mut self,
        a: &Aso,
        ste_loc: u32,
        aso_ste_loc: &mut Option<u32>,
    ) -> Result<bool, ActionError> {
        let cross_domain = a.domain_gvmi != self.gvmi;
        let added = self.make_room(DOUBLE, cross_domain)?;
        if cross_domain {
            *aso_ste_loc = Some(ste_loc);
        } else {
            self.set_aso(a);
        }
        Ok(added)
    }

    /// Points the last STE of the chain at the destination.
    fn set_destination(&mut self, attr: &ActionsAttr) {
        let ctrl = SteFormat::V1.ctrl();
        let ste = self.ste();
        ctrl.set_hit_gvmi(ste, attr.hit_gvmi);
        ctrl.set_hit_addr(ste, attr.final_icm_addr, 1);
    }
}

/// The ASO parameters of an ASO action (checked present by the caller).
fn aso_of(attr: &ActionsAttr, t: ActionType) -> Result<Aso, ActionError> {
    attr.aso
        .filter(|a| a.kind.action_type() == t)
        .ok_or(ActionError::AsoMismatch { action: t })
}

/// TX actions in hardware order: flow meter, VLAN pop, connection tracking, counter,
/// modify header, VLAN push, first hit, encapsulation.
pub(crate) fn set_actions_tx(
    format: SteFormat,
    actions: &ActionTypeSet,
    chain: &mut SteChain<'_>,
    attr: &ActionsAttr,
    aso_ste_loc: &mut Option<u32>,
) -> Result<(), ActionError> {
    let caps = ActionCaps::of(format);
    let has = |t| actions.contains(t);
    let mut list = ActionList::new(chain, attr.gvmi);
    let mut allow_modify_hdr = true;
    let mut allow_pop_vlan = true;
    let mut allow_encap = true;
    // STEs added before the connection-tracking one (the only user of this count).
    let mut ste_loc: u32 = 0;

    if has(ActionType::AsoFlowMeter) {
        if list.make_room(DOUBLE, false)? {
            ste_loc += 1;
        }
        list.set_aso(&aso_of(attr, ActionType::AsoFlowMeter)?);
        allow_pop_vlan = false;
    }

    if has(ActionType::PopVlan) {
        if list.make_room(SINGLE, !allow_pop_vlan)? {
            ste_loc += 1;
        }
        list.set_pop_vlan(attr.vlans.count_pop);
        if !caps.contains(ActionCaps::POP_MDFY) {
            allow_modify_hdr = false;
        }
    }

    if has(ActionType::AsoCt) {
        let a = aso_of(attr, ActionType::AsoCt)?;
        list.set_aso_ct_or_place_cross_domain(&a, ste_loc, aso_ste_loc)?;
    }

    if has(ActionType::Ctr) {
        list.set_counter_id(attr.ctr_id);
    }

    if has(ActionType::ModifyHdr) {
        list.make_room(DOUBLE, !allow_modify_hdr)?;
        list.set_modify_header(attr);
        allow_encap = false;
    }

    if has(ActionType::PushVlan) {
        for &header in &attr.vlans.headers[..usize::from(attr.vlans.count_push)] {
            if list.make_room(DOUBLE, !allow_encap)? {
                allow_encap = true;
            }
            list.set_push_vlan(header);
        }
    }

    if has(ActionType::AsoFirstHit) {
        if list.make_room(DOUBLE, false)? {
            allow_encap = true;
        }
        list.set_aso(&aso_of(attr, ActionType::AsoFirstHit)?);
    }

    if has(ActionType::L2ToTnlL2) {
        list.make_room(DOUBLE, !allow_encap)?;
        list.set_encap(attr.reformat_id, attr.reformat_size);
    } else if has(ActionType::L2ToTnlL3) {
        list.make_room(TRIPLE, false)?;
        list.set_encap_l3(attr.reformat_id, attr.reformat_size);
    }

    list.set_destination(attr);
    Ok(())
}

/// RX actions in hardware order: decapsulation, flow tag, VLAN pop, first hit, modify
/// header, VLAN push, flow meter, connection tracking, counter, encapsulation.
pub(crate) fn set_actions_rx(
    format: SteFormat,
    actions: &ActionTypeSet,
    chain: &mut SteChain<'_>,
    attr: &ActionsAttr,
    aso_ste_loc: &mut Option<u32>,
) -> Result<(), ActionError> {
    let caps = ActionCaps::of(format);
    let has = |t| actions.contains(t);
    let mut list = ActionList::new(chain, attr.gvmi);
    // Modify header (and VLAN push) may not follow a decapsulation in the same STE.
    let mut allow_modify_hdr = true;
    // The counter must count the packet as it leaves the STE: not in an STE that
    // decapsulates or pops.
    let mut allow_ctr = true;
    // STEs added before the connection-tracking one (the only user of this count).
    let mut ste_loc: u32 = 0;

    // The match STE always has room for the first action.
    if has(ActionType::TnlL3ToL2) {
        list.set_rewrite_actions(
            attr.decap_actions,
            attr.decap_pat_idx,
            attr.decap_index,
            None,
        );
        allow_modify_hdr = false;
        allow_ctr = false;
    } else if has(ActionType::TnlL2ToL2) {
        list.set_rx_decap();
        allow_modify_hdr = false;
        allow_ctr = false;
    }

    if has(ActionType::Tag) {
        if list.make_room(SINGLE, false)? {
            allow_modify_hdr = true;
            allow_ctr = true;
            ste_loc += 1;
        }
        list.set_flow_tag(attr.flow_tag);
    }

    if has(ActionType::PopVlan) {
        if list.make_room(SINGLE, !allow_modify_hdr)? {
            ste_loc += 1;
        }
        list.set_pop_vlan(attr.vlans.count_pop);
        allow_ctr = false;
        if !caps.contains(ActionCaps::POP_MDFY) {
            allow_modify_hdr = false;
        }
    }

    if has(ActionType::AsoFirstHit) {
        if list.make_room(DOUBLE, false)? {
            allow_modify_hdr = true;
            allow_ctr = true;
            ste_loc += 1;
        }
        list.set_aso(&aso_of(attr, ActionType::AsoFirstHit)?);
    }

    if has(ActionType::ModifyHdr) {
        if list.make_room(DOUBLE, !allow_modify_hdr)? {
            allow_modify_hdr = true;
            allow_ctr = true;
            ste_loc += 1;
        }
        list.set_modify_header(attr);
    }

    if has(ActionType::PushVlan) {
        for &header in &attr.vlans.headers[..usize::from(attr.vlans.count_push)] {
            // rdma-core does not lift the modify-header restriction in the new STE, so
            // after a decapsulation or pop every pushed VLAN gets an STE of its own.
            if list.make_room(DOUBLE, !allow_modify_hdr)? {
                ste_loc += 1;
            }
            list.set_push_vlan(header);
        }
    }

    if has(ActionType::AsoFlowMeter) {
        if list.make_room(DOUBLE, false)? {
            allow_ctr = true;
            ste_loc += 1;
        }
        // (No modify header may follow a meter, but none comes after this point.)
        list.set_aso(&aso_of(attr, ActionType::AsoFlowMeter)?);
    }

    if has(ActionType::AsoCt) {
        let a = aso_of(attr, ActionType::AsoCt)?;
        if list.set_aso_ct_or_place_cross_domain(&a, ste_loc, aso_ste_loc)? {
            allow_ctr = true;
        }
    }

    if has(ActionType::Ctr) {
        if !allow_ctr {
            list.next_match()?;
        }
        list.set_counter_id(attr.ctr_id);
    }

    if has(ActionType::L2ToTnlL2) {
        list.make_room(DOUBLE, false)?;
        list.set_encap(attr.reformat_id, attr.reformat_size);
    } else if has(ActionType::L2ToTnlL3) {
        list.make_room(TRIPLE, false)?;
        list.set_encap_l3(attr.reformat_id, attr.reformat_size);
    }

    list.set_destination(attr);
    Ok(())
}
