//! Actions: what a rule does to the packets it matches, and where they go.
//!
//! An [`Action`] is a shared handle (`Arc<Action>`, `Send + Sync`) made once and used
//! by any number of rules. It owns or holds what it refers to, so nothing a rule's
//! actions point at can go while the rule (through its [`ActionList`]) holds them:
//!
//! | action | constructor | hits / sets | holds |
//! |---|---|---|---|
//! | drop | [`Action::drop`] | the side's drop address | - |
//! | default miss | [`Action::default_miss`] | the side's default address | - |
//! | goto table | [`Action::goto_table`] | the table's root anchor | `Arc<Table>` |
//! | to a TIR | [`Action::dest_tir`] | the TIR's ICM address | `Arc<Tir>` |
//! | to a QP | [`Action::dest_qp`] | the QP's TIR address | - (the QP is the caller's) |
//! | to a vport / the uplink | [`Action::dest_vport`], [`Action::dest_uplink`] | the vport's RX/TX address, its gvmi | `Arc<Domain>` |
//! | flow tag (NIC RX) | [`Action::flow_tag`] | the tag | - |
//! | flow counter | [`Action::counter`] | the counter id | `Arc<Counter>` |
//!
//! [`Counter`] is a bulk of flow counters (`ALLOC_FLOW_COUNTER`) read with
//! [`Counter::query`] / [`Counter::query_many`]; [`Tir`] is a TIR made with `CREATE_TIR`.
//!
//! ## From actions to STEs
//!
//! [`ActionList::new`] checks a rule's actions for the table the rule goes into, on
//! every side of its domain, as rdma-core does when it builds a rule: each action is
//! allowed on the side (a flow tag only on NIC RX, a vport only in the FDB, a TIR or QP
//! only on NIC RX), appears at most once (VLAN push and pop up to twice), comes in an
//! allowed order ([`state`]: at most one fate, and after the fate only a counter),
//! belongs to the same domain or device, and a goto goes to a higher level. The list
//! then holds, per side, the action-type set and the `ste_builder` attributes, so that
//! [`ActionList::encode`] (the per-rule step the hash-table engine calls) only copies
//! them into the rule's last STE and the action-only STEs it may need, through
//! `ste_builder::action::set_actions_rx/tx`. Since every rule of a list gets the same
//! actions, the first rule with a given last-STE control block captures what the encoder
//! does, and later rules replay it (module `replay`: same bytes, counts and errors).
//!
//! ## The actions still to come, and where they fit
//!
//! Each further action is one more [`ActionKind`] variant that owns its device resources
//! (released when the last `Arc<Action>` goes) and one more arm in
//! [`ActionList::new`] that fills its part of `ActionsAttr`; the order rules already
//! cover every type `ste_builder` encodes, and the encoding needs no change.
//!
//! - **Modify header**: a variant holding its rewrite list in the domain's
//!   modify-action ICM (a chunk of [`crate::domain::Domain::action_pool`], written
//!   through the domain's ring when the action is made from
//!   `ste_builder::modify_header` words), or a pattern and an argument object on devices
//!   with modify-header arguments; it sets `modify_index`, `modify_actions` and
//!   `modify_pat_idx`, or `single_modify_action` for one inline action. Bound to its
//!   domain (`Arc<Domain>`).
//! - **VLAN push / pop**: variants with the header to push (`TPID << 16 | TCI`); each
//!   occurrence adds to `vlans` (the duplicate check already allows two).
//! - **Encap / decap**: a variant holding a packet-reformat context (a firmware object
//!   from `ALLOC_PACKET_REFORMAT_CONTEXT`, freed on drop) that sets `reformat_id` and
//!   `reformat_size`; L3 decapsulation also holds its rewrite list like modify header
//!   (`decap_index`, `decap_actions`). RX encapsulation checks the format's
//!   `ActionCaps::RX_ENCAP`.
//! - **Dest array**: a firmware flow table with one always-hit entry forwarding to
//!   several destinations (made with `create_object`), whose RX/TX ICM addresses
//!   (`QUERY_FLOW_TABLE`) are the final addresses; it holds the tables, TIRs and vports
//!   it forwards to.
//! - **Sampler** and **meter**: firmware objects (sampler object and its tables, ASO
//!   flow meters) whose addresses or ASO parameters fill `final_icm_addr` / `aso`, and
//!   which hold their next table.

pub mod counter;
mod list;
mod replay;
pub mod state;
pub mod tir;

#[cfg(all(test, feature = "sim"))]
mod tests;

use std::sync::Arc;

use ste_builder::action::ActionType;
use ste_builder::VportCap;

use crate::caps::UPLINK_VPORT;
use crate::device::Device;
use crate::domain::{Domain, DomainError, DomainType, Table};
use crate::matching::DomainSide;

pub use counter::{Counter, CounterError, CounterValue};
pub use list::{ActionList, Encoded, MAX_ACTION_STES};
pub use tir::{QpDest, Tir, TirSpec};

/// The largest flow tag: STEs carry 24 bits of it.
pub const MAX_FLOW_TAG: u32 = (1 << 24) - 1;

/// Why an action could not be made, or a rule's action list is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// A flow tag wider than the 24 bits STEs carry.
    #[error("flow tag {0:#x} is wider than 24 bits")]
    TagTooWide(u32),
    /// A QP or TIR without an ICM address cannot be a steering destination.
    #[error("{what} {num:#x} has no ICM address, so steering cannot deliver to it")]
    NoIcmAddress {
        /// "TIR" or "QP".
        what: &'static str,
        /// Its number.
        num: u32,
    },
    /// A counter offset outside its bulk.
    #[error("counter offset {offset} is outside the bulk of {len}")]
    CounterOffset {
        /// The offset.
        offset: u32,
        /// Counters in the bulk.
        len: u32,
    },
    /// The vport could not be looked up (or the domain has no vports).
    #[error(transparent)]
    Vport(#[from] DomainError),
    /// The action type cannot be used on this side at all.
    #[error("{action} actions are not supported on {side}")]
    NotOnSide {
        /// The action type.
        action: ActionType,
        /// The side.
        side: DomainSide,
    },
    /// A second fate (drop, goto, forward, miss) after the first.
    #[error("a rule has one fate: {second} after {first}")]
    MoreThanOneFate {
        /// The fate already given.
        first: ActionType,
        /// The one given after it.
        second: ActionType,
    },
    /// An action type given more often than allowed.
    #[error("{action} may appear at most {max} time(s) in one rule")]
    Duplicate {
        /// The action type.
        action: ActionType,
        /// How often it may appear.
        max: u8,
    },
    /// The action may not follow the one before it (rdma-core's order rules).
    #[error("{action} may not follow {after} on {side}")]
    Order {
        /// The action type.
        action: ActionType,
        /// The action before it.
        after: ActionType,
        /// The side.
        side: DomainSide,
    },
    /// The action belongs to another domain (a goto table, a vport).
    #[error("the {action} action belongs to another domain")]
    OtherDomain {
        /// The action type.
        action: ActionType,
    },
    /// The action's object lives on another device (a counter, a TIR).
    #[error("the {action} action's object lives on another device")]
    OtherDevice {
        /// The action type.
        action: ActionType,
    },
    /// A goto to a table whose level is not above the rule's table.
    #[error(
        "goto table: the destination's level {to} must be above the rule's table level {from}"
    )]
    TableLevel {
        /// The level of the rule's table.
        from: u8,
        /// The level of the destination.
        to: u8,
    },
    /// The STE format cannot encode the actions on this side.
    #[error("{side}: {source}")]
    Encode {
        /// The side.
        side: DomainSide,
        /// What the encoder said.
        #[source]
        source: ste_builder::action::ActionError,
    },
    /// [`ActionList::encode_in_place`] with a buffer too small for the most STEs a
    /// rule's actions can take.
    #[error("the STE buffer has {len} bytes; encoding needs {need}")]
    BufferTooSmall {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// [`ActionList::encode`] for a side the list's domain does not have.
    #[error("a {domain} action list has no {side} side")]
    NoSuchSide {
        /// The list's domain type.
        domain: DomainType,
        /// The side asked for.
        side: DomainSide,
    },
}

/// What an action does, with what it holds.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActionKind {
    /// Drop the packet.
    Drop,
    /// Go to the side's default destination.
    DefaultMiss,
    /// Continue in a table of a higher level.
    GotoTable(Arc<Table>),
    /// Deliver to a TIR (NIC RX).
    Tir(Arc<Tir>),
    /// Deliver to a QP (NIC RX).
    Qp(QpDest),
    /// Forward to an e-switch vport or the uplink (FDB).
    Vport {
        /// The domain the vport was looked up in.
        domain: Arc<Domain>,
        /// The vport's addresses and gvmis.
        vport: VportCap,
    },
    /// Set the flow tag (NIC RX).
    Tag(u32),
    /// Count in a flow counter.
    Counter {
        /// The bulk.
        counter: Arc<Counter>,
        /// The counter's offset in it.
        offset: u32,
    },
}

/// A rule action: a shared, immutable handle (see the module documentation).
#[derive(Debug)]
pub struct Action {
    kind: ActionKind,
}

impl Action {
    fn new(kind: ActionKind) -> Arc<Action> {
        Arc::new(Action { kind })
    }

    /// Drops the packet.
    pub fn drop() -> Arc<Action> {
        Action::new(ActionKind::Drop)
    }

    /// Sends the packet to its side's default destination (NIC RX: drop; NIC TX: the
    /// wire; FDB: the e-switch manager).
    pub fn default_miss() -> Arc<Action> {
        Action::new(ActionKind::DefaultMiss)
    }

    /// Continues the lookup in `table` (which must be of a higher level than the tables
    /// of the rules using the action).
    pub fn goto_table(table: &Arc<Table>) -> Arc<Action> {
        Action::new(ActionKind::GotoTable(Arc::clone(table)))
    }

    /// Delivers the packet to a TIR (NIC RX only).
    pub fn dest_tir(tir: &Arc<Tir>) -> Result<Arc<Action>, ActionError> {
        if tir.icm_addr() == 0 {
            return Err(ActionError::NoIcmAddress {
                what: "TIR",
                num: tir.tirn(),
            });
        }
        Ok(Action::new(ActionKind::Tir(Arc::clone(tir))))
    }

    /// Delivers the packet to a raw-packet QP (NIC RX only).
    pub fn dest_qp(qp: QpDest) -> Result<Arc<Action>, ActionError> {
        if qp.tir_icm_addr == 0 {
            return Err(ActionError::NoIcmAddress {
                what: "QP",
                num: qp.qpn,
            });
        }
        Ok(Action::new(ActionKind::Qp(qp)))
    }

    /// Forwards the packet to e-switch vport `vport` of the FDB domain `dmn`.
    pub fn dest_vport(dmn: &Arc<Domain>, vport: u16) -> Result<Arc<Action>, ActionError> {
        let cap = dmn.vport(vport)?;
        Ok(Action::new(ActionKind::Vport {
            domain: Arc::clone(dmn),
            vport: cap,
        }))
    }

    /// Forwards the packet to the uplink (the wire) of the FDB domain `dmn`.
    pub fn dest_uplink(dmn: &Arc<Domain>) -> Result<Arc<Action>, ActionError> {
        Action::dest_vport(dmn, UPLINK_VPORT)
    }

    /// Sets the flow tag the receive completion reports (NIC RX only; 24 bits).
    pub fn flow_tag(tag: u32) -> Result<Arc<Action>, ActionError> {
        if tag > MAX_FLOW_TAG {
            return Err(ActionError::TagTooWide(tag));
        }
        Ok(Action::new(ActionKind::Tag(tag)))
    }

    /// Counts the packet in counter `offset` of the bulk `counter`.
    pub fn counter(counter: &Arc<Counter>, offset: u32) -> Result<Arc<Action>, ActionError> {
        if offset >= counter.len() {
            return Err(ActionError::CounterOffset {
                offset,
                len: counter.len(),
            });
        }
        Ok(Action::new(ActionKind::Counter {
            counter: Arc::clone(counter),
            offset,
        }))
    }

    /// What the action does.
    pub fn kind(&self) -> &ActionKind {
        &self.kind
    }

    /// The action's type, as the STE encoders and the order rules name it.
    pub fn action_type(&self) -> ActionType {
        match self.kind {
            ActionKind::Drop => ActionType::Drop,
            ActionKind::DefaultMiss => ActionType::Miss,
            ActionKind::GotoTable(_) => ActionType::Ft,
            ActionKind::Tir(_) | ActionKind::Qp(_) => ActionType::Qp,
            ActionKind::Vport { .. } => ActionType::Vport,
            ActionKind::Tag(_) => ActionType::Tag,
            ActionKind::Counter { .. } => ActionType::Ctr,
        }
    }
}

/// Whether two device handles are the same device.
fn same_device(a: &Arc<dyn Device>, b: &Arc<dyn Device>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}
