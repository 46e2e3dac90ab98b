//! # mlx5dr: software steering for ConnectX NICs
//!
//! The driver that turns steering rules into STE chains in a ConnectX NIC's ICM, as
//! rdma-core's `mlx5dv_dr` does, over one narrow device seam (see `ARCHITECTURE.md`,
//! "The one seam"). The simulated ConnectX of the `sim` crate is the default backend,
//! so everything here runs, down to the bytes the hardware would see, without a card.
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
//!   ICM pools, the send ring, per-side default and drop addresses) and
//!   [`domain::Table`] (a root anchor per side in ICM and the software-owned firmware
//!   flow table over them, with the anchor rewrite the matcher layer uses).
//! - [`action`]: [`action::Action`] handles (drop, default miss, goto table, TIR, QP,
//!   vport/uplink, flow tag, flow counter), [`action::Counter`] bulks with queries,
//!   [`action::Tir`], and [`action::ActionList`]: a rule's actions checked by rdma-core's
//!   rules and encoded into its last STE and any action-only STEs.
//!
//! ## Still to come
//!
//! The public `Matcher` / `Rule` API (matcher chaining by priority over the tables'
//! root anchors and end anchors, rules as `BuilderChain` tags + `ActionList` encoding
//! inserted into `htbl::MatcherTables` per side) builds on these layers (issue 4).
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
pub mod rule;
pub mod send;

pub use action::{Action, ActionError, ActionList, Counter};
pub use caps::{CapsError, DeviceCaps, SwSteering, TableType};
pub use cmd::CmdError;
pub use device::{Device, DeviceError, IcmKind, IcmRegion};
pub use domain::{Domain, DomainConfig, DomainError, DomainType, Table, TableError};
pub use matcher::{Matcher, MatcherError, MatcherOptions};
pub use matching::{DomainSide, Match, RawMatch};
pub use rule::{InsertError, Rule, RuleRemoveError};
pub use send::{SendConfig, SendError, SendRing, WriteId};
