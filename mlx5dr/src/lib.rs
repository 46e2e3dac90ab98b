//! # mlx5dr: software steering for ConnectX NICs
//!
//! The driver that turns steering rules into STE chains in a ConnectX NIC's ICM, as
//! rdma-core's `mlx5dv_dr` does, over one narrow device seam (see `ARCHITECTURE.md`,
//! "The one seam"). The simulated ConnectX of the `sim` crate is the default backend,
//! so everything here runs, down to the bytes the hardware would see, without a card.
//!
//! ## Quick look
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use std::net::Ipv4Addr;
//! use std::sync::Arc;
//! use mlx5dr::{Action, Device, Domain, DomainType, Match, Matcher, MatcherOptions, Table};
//! use mlx5dr::device::sim::SimBackend;
//! use sim::profile::DeviceModel;
//!
//! let dev: Arc<dyn Device> = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
//! let dmn = Domain::open(dev, DomainType::NicRx)?;
//! let table = Table::new(&dmn, 1)?;
//! let mask = Match::new().outer(|h| {
//!     h.ipv4_dst(Ipv4Addr::BROADCAST).ip_protocol(0xff).tcp_dport(0xffff)
//! });
//! let matcher = Matcher::new(&table, &mask, MatcherOptions::default())?;
//! let tag_7 = matcher.actions(&[Action::flow_tag(7)?])?;
//! let value = Match::new().outer(|h| {
//!     h.ipv4_dst(Ipv4Addr::new(10, 0, 0, 1)).ip_protocol(6).tcp_dport(443)
//! });
//! let rule = matcher.insert(&value, &tag_7)?; // in ICM now
//! drop(rule); // and gone again
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layers (each uses only the ones above it)
//!
//! - [`device`]: **the seam**. The object-safe [`device::Device`] trait: PRM command
//!   mailboxes (and object creation, which DEVX keeps apart), SW-ICM allocation per
//!   kind with address and rkey, registered DMA buffers behind safe checked
//!   read/write views, and steering queues (send and completion rings in host memory
//!   plus a doorbell). [`device::sim::SimBackend`] implements it over `sim::Device`
//!   (feature `sim`, on by default); a backend over rdma-core would implement the same
//!   trait, with its `unsafe` inside.
//! - [`cmd`]: PRM commands over the seam: input mailboxes built with the
//!   `ste_builder::prm` layouts, outputs decoded with them, failures as
//!   [`cmd::CmdError`] naming the command, status and syndrome.
//! - [`caps`]: capability discovery through PRM commands only
//!   ([`caps::DeviceCaps::query`]): STE format, gvmi, SW ownership per table type,
//!   firmware-owned drop/allow/uplink/vport addresses, SW-ICM ranges, flex-parser ids,
//!   definer and RoCE/force-loopback support; [`caps::DeviceCaps::check_sw_steering`]
//!   says whether a table type can be steered in software and why not; and the
//!   `ste_builder::Caps` the STE encoders read.
//! - [`matching`]: the match side. [`matching::Match`] builds masks and values with
//!   typed setters for every PRM match field (or takes a raw 448-byte buffer), and
//!   [`matching::BuilderChain`] chooses a matcher's STE lookups from its mask and the
//!   caps, as rdma-core does, and computes each rule's tags.
//! - [`send`]: the send engine. [`send::SendRing`] stages bytes in a registered buffer
//!   and posts RDMA WRITE + RDMA READ WQE pairs (the READ fences the WRITE) on a
//!   steering queue, batches many writes per doorbell, asks for a completion every N
//!   WQEs and on the last of every doorbell, polls the completion ring by owner bit,
//!   waits for room when the ring is full, and turns error CQEs into typed errors that
//!   name the failed write.
//! - [`icm`]: ICM memory. [`icm::IcmPool`] per ICM kind (regions from the device, a
//!   buddy allocator for aligned power-of-two chunks), [`icm::EntrySlab`] for single
//!   collision entries in O(1), and deferred reuse of freed ICM behind `SYNC_STEERING`.
//! - [`htbl`]: the STE hash tables of one matcher side ([`htbl::MatcherTables`]): end
//!   anchor, start table, per-level tables under shared STE prefixes, miss chains in slab
//!   entries, duplicate refusal, growth, and the write order that makes every insert,
//!   removal and growth a single linking write for packets.
//! - [`domain`]: [`domain::Domain`] (NIC RX, NIC TX or FDB on one device: caps checked,
//!   ICM pools, several send rings, per-side default and drop addresses) and
//!   [`domain::Table`] (a root anchor per side in ICM and the software-owned firmware
//!   flow table over them).
//! - [`action`]: [`action::Action`] handles (drop, default miss, goto table, TIR, QP,
//!   vport/uplink, flow tag, flow counter), [`action::Counter`] bulks with queries,
//!   [`action::Tir`], and [`action::ActionList`]: a rule's actions checked by rdma-core's
//!   rules and encoded into its last STE and any action-only STEs.
//! - [`matcher`]: [`matcher::Matcher`], a mask with its lookups and hash tables per
//!   side, linked into its table's lookup order by priority through the anchors; its own
//!   lock and send ring per side, so rules of different matchers go in in parallel; its
//!   updates waited for one by one or, with [`Completion::Post`] or
//!   [`Completion::Queue`], posted and confirmed later ([`Matcher::sync`]).
//! - [`rule`]: [`rule::Rule`], a value and an action list installed on every side of
//!   the matcher's domain, or on none if any side fails; dropping it removes it.
//! - [`record`]: [`record::Recorder`] logs a domain's ICM writes and its registered
//!   tables, matchers and rules, and writes them in the JSON schema of rdma-core's
//!   recordings (`MLX5DR_RECORD=<path>` through [`record::from_env`]).
//!
//! ## Ownership
//!
//! `Arc` all the way up: a rule holds its matcher and its actions, a matcher its table,
//! a table (and an action bound to one) its domain. So a rule cannot outlive its
//! matcher, a matcher its table, or a table its domain, and nothing a rule's STEs
//! point at is freed while they may still lead there. `destroy` functions
//! ([`Table::destroy`], [`Matcher::destroy`]) free at once or hand the object back with
//! the number of holders.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod caps;
pub mod cmd;
pub mod device;
pub mod domain;
pub mod htbl;
pub mod icm;
pub mod matcher;
pub mod matching;
pub mod record;
pub mod rule;
pub mod send;
#[cfg(test)]
mod test_masks;
#[cfg(test)]
mod test_rng;

pub use action::{Action, ActionError, ActionList, Counter};
pub use caps::{CapsError, DeviceCaps, SwSteering, TableType};
pub use cmd::CmdError;
pub use device::{Device, DeviceError, IcmKind, IcmRegion};
pub use domain::{Domain, DomainConfig, DomainError, DomainType, Table, TableError};
pub use htbl::{Completion, Growth};
pub use matcher::{Duplicates, Matcher, MatcherError, MatcherOptions, ShardPlacement, MAX_SHARDS};
pub use matching::{DomainSide, Match, RawMatch};
pub use rule::{BatchRule, InsertError, Rule, RuleRemoveError, UpdateError};
pub use send::{SendConfig, SendError, SendRing, WriteId, WriteTap};
