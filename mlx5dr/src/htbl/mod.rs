//! The STE hash-table engine of a matcher: anchors, per-level hash tables, shared STE
//! prefixes, miss chains, growth, and the write order that keeps every update atomic for
//! packets.
//!
//! ## Shape (one matcher, one side)
//!
//! ```text
//!  pointer (table root, or the previous matcher's end anchor)
//!    │ always hit
//!    ▼
//!  start table (level 0)            level 1 tables (one per level-0 STE)      ...
//!  ┌──────────────┐                 ┌──────────────┐
//!  │ STE a ───────┼── hit ─────────▶│ STE a1 ──────┼── hit ──▶ (next level, or the
//!  │   │ miss     │                 │ unused ──┐   │            rule's destination)
//!  │   ▼          │                 └──────────┼───┘
//!  │ [entry b] ─miss─▶ end anchor ◀── miss ────┘
//!  │ unused ──────┼──▶ end anchor ──▶ default miss address, or the next matcher
//!  └──────────────┘
//! ```
//!
//! - The **end anchor** (one entry) is where every miss chain of the matcher ends; it
//!   always misses to a default address or always hits into the next matcher's start
//!   table ([`MatcherTables::set_end_target`]).
//! - The **start table** is the level-0 hash table (one entry at first, or presized: see
//!   "Expected size"). Nothing in it points back: its pointer belongs to the caller
//!   ([`MatcherTables::start`] says how to point at it,
//!   [`MatcherTables::set_start_pointer`] which anchor does).
//! - A rule is one STE per lookup of the chain. Rules with equal tags at levels `0..i`
//!   share those STEs (reference counted); an STE of a level that is not the last owns
//!   the next level's table its hit address points to. The last STE carries the rule's
//!   actions and hit address ([`LastSte`]), and the action-only STEs that did not fit
//!   hit on from it.
//! - **Collisions**: an STE whose slot is taken goes into a one-entry collision entry
//!   from the matcher's [`crate::icm::EntrySlab`] (no buddy allocation per collision),
//!   appended to the slot's miss chain; every chain ends in the end anchor. An unused
//!   slot holds an always-miss STE to the end anchor.
//! - A table may grow, and with [`TablesConfig::shrink`] shrink again (below).
//!
//! ## Update order (the hardware contract)
//!
//! Each update writes everything new where no packet can reach it yet, then makes it
//! reachable with one write, and flushes (see `txn`):
//!
//! - **insert**: the new STEs of the levels below the shared prefix in fresh tables
//!   (every slot of each written: the new STE, and unused-slot STEs in the rest of a
//!   presized one; only the new STE in the presized table prewritten at creation, see
//!   "Expected size"), the action STEs, the collision entry; then the link: the first new
//!   STE into its unused slot (64 bytes), or the chain tail's control block (32 bytes)
//!   with its miss address set to the new entry;
//! - **remove**: one write at the topmost STE only this rule uses: the next chain member
//!   copied into its slot, or the unused-slot STE, or the predecessor's control block
//!   with the miss address past it. Memory below becomes unreachable at once and goes
//!   back to the pool after the flush; the pool reuses it only after a later
//!   `SYNC_STEERING` (deferred reuse);
//! - **growth**: the new table is filled beside the live one a few slots per update
//!   (unreachable), updates of slots already copied change both, and one write switches
//!   the STE (or anchor) pointing at the table; the old table is freed after the flush;
//! - **new actions** ([`MatcherTables::update_actions`]): the new action STEs, the
//!   rule's last match STE in a growing table's copy (if it is there already), then the
//!   link: one 64-byte write of that STE in place, its tag, mask and miss address
//!   unchanged. The old action STEs go back to the slab after the flush. A packet sees
//!   the old actions or the new ones, never a miss.
//!
//! On a failure the link's fate decides (an error CQE tells which write failed; the
//! queue executes nothing after it): if it did not land, host state is left as it was and
//! the new memory goes back to the pool (or, if writes might still land, is kept out of
//! use). If it landed, the update stands. If that is unknown (a completion timeout, a
//! device failure after the link was posted), the engine assumes it landed and keeps
//! whatever might still be reachable out of use ([`HtblError::Unconfirmed`], or
//! [`HtblError::UpdateUnconfirmed`] for new actions).
//!
//! ## Completion
//!
//! [`TablesConfig::completion`] says when an insert or a removal returns (see
//! [`Completion`]): once its writes are in ICM (`Wait`, the default, as above), or once
//! they are posted with a doorbell (`Post`) or queued for a later one (`Queue`). The
//! write order is the same, so every update is still atomic for packets, and a refusal
//! still changes nothing. What changes is when a send failure is seen and what it
//! costs: without waiting, a later call (or [`MatcherTables::sync`]) meets it, and if an
//! update that had returned `Ok` did not land, the tables are *lost*: every later call
//! fails with [`HtblError::Lost`], and dropping them is the way out. Memory an update
//! unlinks is handed back only once the ring has confirmed the update's writes (see
//! `defer`), and [`MatcherTables::hold`] keeps what a removed rule pointed at alive
//! until then. A ring that broke and was replaced answers for its predecessor's writes
//! ([`crate::send::SendRing::succeed`]). Changing a rule's actions always waits. The
//! limbo costs about 40 bytes per waiting release; it is emptied once 64 wait (reading
//! the ring's completions then, not per update) and at [`MatcherTables::sync`].
//!
//! ## Identical duplicates
//!
//! A rule whose tags equal an installed rule's is refused ([`HtblError::Duplicate`]): a
//! second STE with the same tags would sit behind the first in its miss chain, where no
//! packet reaches it. With [`TablesConfig::share_identical`], a duplicate whose last STE
//! is the installed one byte for byte (the control block its [`LastSte`] fills: actions
//! and hit address, compared as chained to the installed rule's action STEs) and whose
//! action STEs are too, gets a further [`RuleHandle`] to the installed rule instead;
//! nothing is written. The last STE's reference count counts its handles (it is 1
//! otherwise), and the STEs above it count them as rules passing through, so removing
//! a handle that is not the last only decrements and writes nothing; the last one
//! unlinks the rule as usual. A shared rule's actions do not change
//! ([`HtblError::Shared`]): that would change the other handles' rules too.
//! [`HtblStats::shared_handles`] counts the handles beyond the first of each rule.
//!
//! Comparing action STEs needs their bytes, which the engine otherwise does not keep:
//! with the option on, a rule with action STEs keeps their images (64 bytes each) in a
//! side table. Rules without action STEs, and every rule with the option off, cost what
//! they did; a shared handle costs no host memory.
//!
//! ## Host memory
//!
//! No copy of ICM lines. Per STE 44 bytes (`records::SteRec`: tag, table, two places
//! (chain link and slot or entry, in the live table and in its growing copy), child
//! table or control block, reference count; `Option<SteRec>` is 44 too); per hash-table
//! slot 4 bytes (its chain head); per collision entry 24 bytes (`Option<Entry>`); per
//! distinct last-STE control block 36 bytes (rules that drop or go to one table share
//! one); per table 48 bytes (`TableRec`) plus its slots; with
//! [`TablesConfig::share_identical`], 64 bytes per action STE of a rule that has any.
//! Records live in 512-record pages, so there is no doubling slack. For a 2-level IPv4
//! 5-tuple matcher whose rules drop or go to a table, every rule is one STE at level 1
//! (level 0 is one shared STE):
//! 44 + 4 × (slots per rule, 1.3 to 5 as the table grows 4×) + 24 × (the share of rules
//! in collision entries, 15–35 %), about 55–70 bytes per rule. [`HtblStats::host_bytes`]
//! counts the real figure; measured once by hand (release build, simulated ConnectX-6
//! Dx, not a test): 69 bytes per rule at 100 000 rules, 58 at 1 000 000. A presized
//! table costs its 4 bytes per slot from the start (4 KiB for 1024 entries).
//!
//! ## Expected size
//!
//! [`TablesConfig::initial_log`] says about `2^initial_log` rules are expected. One
//! table then starts with `2^k` entries instead of one: the first table ever made at
//! the last level, where the rules land (the start table when the chain has one
//! lookup). It is the table under the first rule's prefix; when every rule shares one
//! prefix, as a 5-tuple matcher's rules share its one level-0 STE, it ends up holding
//! every rule. Tables of the levels above hold one STE per distinct prefix (an IP
//! version, a VNI, a source port) and are not presized: sizing them for the rules
//! would cost `2^k` entries for a handful of STEs. `k` is the least of `initial_log`,
//! the tag bits the level hashes (the bound growth stops at; a level that hashes
//! nothing gets one entry) and the pool's largest chunk. Every later last-level table
//! (under a second prefix, or made again after its level emptied) starts with one
//! entry, so the hint does not multiply by the number of prefixes; rules spread over
//! several prefixes (an FDB matcher's per-port tables) still grow theirs.
//!
//! A presized table is written whole before anything points at it: the unused-slot STE
//! in every slot (but the new STE's, when an insert makes the table), contiguous slots batched into writes of up to
//! the ring's `max_write` (64 KiB, 1024 slots, by default). Everything in it is known
//! when the matcher is made, so [`MatcherTables::new`] does it, also for a last level
//! below the start table: that table is allocated and written there, unreachable (the
//! end anchor its unused slots miss to never moves; [`MatcherTables::set_end_target`]
//! changes only what the anchor does), and the first insert that makes a last-level
//! table adopts it, writing only its own STE into its slot before the link. Writing
//! 2^20 slots (64 MiB) takes tens of milliseconds: matcher creation may, an insert may
//! not. [`HtblStats::table_entries`] counts the prewritten table from creation on, and
//! dropping a matcher that never got a rule gives it back. An insert that adopted it and
//! failed before its link landed gives it back to be adopted again, noting the slot its
//! STE may have reached (the next adoption writes the unused-slot STE there again
//! before its link); when writes of that insert may still land, the table is kept out
//! of use ([`HtblStats::leaked_chunks`]) and the next first insert makes one as below.
//!
//! When the pool has no chunk of `2^k` entries (at creation and again at the first
//! insert, for a last level below the start table), the table starts with one entry
//! instead and grows as usual ([`HtblStats::presize_fallbacks`] counts these): a
//! presized table that does not fit never fails the call that makes it. Only when even
//! one entry is not to be had does it fail, with [`HtblError::Icm`], changing nothing.
//! A failed write at creation fails creation, giving back every chunk it took (or
//! keeping them out of use when a write may still land). A presized table grows from
//! its size like any other; with [`TablesConfig::grow`] off it keeps it.
//!
//! ## Growth
//!
//! A table grows 4× from its size (one entry, or presized), up to the pool's largest
//! chunk, when, as in rdma-core, at least half its size of STEs sit in collision entries
//! and at least half in slots, its level hashes more bits than its index has, and
//! [`TablesConfig::grow`] is set. One table grows at a time,
//! [`TablesConfig::growth_step`] old slots per insert or removal (see `grow`): no update
//! writes more than a step's slots for growth, the switch is one write and a
//! constant-time flip on the host, and packets find every rule in the old table until
//! the switch and in the new one after. A failed growth leaves the table as it was
//! ([`HtblStats::grow_failures`]).
//!
//! With [`TablesConfig::shrink`] (the matcher's default), a removal that leaves a table
//! holding fewer than a sixteenth of its size's worth of STEs starts shrinking it by the
//! growth factor, never below the size it started with: the same copy, step and switch
//! as growth, run backwards (a new slot gathers the STEs of the old slots that fold
//! into it). The table is then less than a quarter full, so it does not grow again
//! until its rules have more than quadrupled. Its old chunk goes back to the pool for
//! other tables; a region of the pool left empty goes back to the device, but for one
//! spare ([`crate::icm::IcmPool::trim`] gives that back too).
//!
//! Measured (not a test; BENCHMARKS.md has the commands and the series): at 1 000 000
//! 5-tuple rules inserted one by one on one thread, every insert waited for, about 480 000
//! inserts/s, p99.9 33 µs and a worst insert of 0.3 ms (the first copy steps of the
//! growth to 2^20 entries), and 850 000 removals/s. The tables' own share is about a
//! third of an insert's instructions; the rest is the send ring and the simulator
//! executing its WRITE+READ pairs and the flush.

mod arena;
mod defer;
mod encode;
mod error;
mod grow;
mod records;
mod tables;
mod txn;
mod update;

#[cfg(all(test, feature = "sim"))]
mod tests;

pub use defer::{Completion, Hold};
pub use error::{HtblError, RemoveError};
pub use grow::{Growth, DEFAULT_GROWTH_STEP};
pub use tables::{MatcherTables, TablesConfig};
pub(crate) use tables::{WarmMemo, Warmed};

use std::num::NonZeroU32;

use ste_builder::ste::{SteCtrl, STE_SIZE};
use ste_builder::SteFormat;

use crate::device::IcmRegion;

/// The most action-only STEs a rule's actions may add after its last match STE
/// (rdma-core's `DR_ACTION_MAX_STES`).
pub const MAX_ACTION_STES: usize = 7;

/// What a rule's last STE does on a hit: its actions and hit address, filled in by the
/// domain's action encoder.
pub trait LastSte {
    /// Fills the rule's actions. `stes` holds the last match STE as built (control block
    /// initialised for the level's lookup type, tag and bit mask set, no hit or miss
    /// address) followed by room for [`MAX_ACTION_STES`] action-only STEs. The filler
    /// writes the actions, initialises the action STEs it adds, sets the hit address of
    /// the last STE it uses (the match STE or its last action STE) and returns how many
    /// action STEs it added; the engine places them and chains the hit addresses from the
    /// match STE on. It must not change the match STE's tag and mask.
    ///
    /// `ste_builder::action::set_actions_rx` / `set_actions_tx` are such fillers.
    fn fill(self, format: SteFormat, stes: &mut [u8]) -> Result<usize, Self::Error>;

    /// Why the filler refuses the actions ([`HtblError::Actions`] carries it).
    type Error: std::error::Error + Send + Sync + 'static;
}

impl<F, E> LastSte for F
where
    F: FnOnce(SteFormat, &mut [u8]) -> Result<usize, E>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = E;

    fn fill(self, format: SteFormat, stes: &mut [u8]) -> Result<usize, E> {
        self(format, stes)
    }
}

/// A last STE without actions that hits a table of `num_entries` entries at `icm_addr`
/// (another table's root with 1, or a firmware address such as the drop address with 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitOnly {
    /// The hit address.
    pub icm_addr: u64,
    /// The size of the table there (a power of two; 1 for an anchor or an address).
    pub num_entries: u32,
}

impl LastSte for HitOnly {
    type Error = std::convert::Infallible;

    fn fill(self, format: SteFormat, stes: &mut [u8]) -> Result<usize, Self::Error> {
        let ctrl: &dyn SteCtrl = format.ctrl();
        ctrl.set_hit_addr(&mut stes[..STE_SIZE], self.icm_addr, self.num_entries);
        Ok(0)
    }
}

/// An installed rule of one [`MatcherTables`]: its last STE. Not `Clone`: the handle is
/// the rule, given back with [`MatcherTables::remove`] (dropping it leaves the rule
/// installed until the tables are dropped). Two handles compare equal when they share
/// one installed rule ([`TablesConfig::share_identical`]): each is given back on its
/// own, and the rule stays until the last one is.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RuleHandle {
    // Non-zero, so `Option<RuleHandle>` is 8 bytes: a `Rule` holds one per side.
    tables: NonZeroU32,
    ste: u32,
}

impl RuleHandle {
    /// The [`MatcherTables::id`] of the tables the rule is in.
    pub fn tables_id(&self) -> NonZeroU32 {
        self.tables
    }
}

/// An anchor STE in ICM (a table root or a matcher's end anchor) that points at a start
/// table: the engine rewrites it when the start table moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorRef {
    /// The region the anchor lies in.
    pub region: IcmRegion,
    /// Its ICM address.
    pub icm_addr: u64,
}

/// Counters and sizes of one [`MatcherTables`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HtblStats {
    /// Rules installed: their handles (identical duplicates sharing one rule count once
    /// each).
    pub rules: u64,
    /// Handles that share another handle's rule ([`TablesConfig::share_identical`]):
    /// `rules - shared_handles` rules are installed in ICM.
    pub shared_handles: u64,
    /// Rule STEs (shared ones once).
    pub stes: u64,
    /// Hash tables (the start table included).
    pub tables: u64,
    /// ICM entries of all hash tables, the presized one written at creation and not in
    /// use yet included (see "Expected size" in the module documentation).
    pub table_entries: u64,
    /// STEs in collision entries.
    pub collision_entries: u64,
    /// Action-only STEs.
    pub action_stes: u64,
    /// Distinct last-STE control blocks kept.
    pub ctrl_blocks: u64,
    /// The longest miss chain (STEs in one slot's chain).
    pub longest_chain: u32,
    /// Tables grown.
    pub grows: u64,
    /// Tables shrunk ([`TablesConfig::shrink`]).
    pub shrinks: u64,
    /// Growths or shrinkings given up (no ICM, or the send ring failed); the table kept
    /// its size.
    pub grow_failures: u64,
    /// Chunks kept out of use because a write to or past them might still land.
    pub leaked_chunks: u64,
    /// Entries kept out of use for the same reason.
    pub leaked_entries: u64,
    /// Tables that were to be presized ([`TablesConfig::initial_log`]) but started with
    /// one entry, the pool having no chunk that large.
    pub presize_fallbacks: u64,
    /// Host bytes of the records, the entry slab included.
    pub host_bytes: usize,
}

impl HtblStats {
    /// Adds `other`'s counts and sizes to these (the longest chain is the longer one):
    /// the statistics of two sets of tables taken as one.
    pub fn merge(&mut self, other: &HtblStats) {
        // Destructured, so that a new field cannot be left out.
        let HtblStats {
            rules,
            shared_handles,
            stes,
            tables,
            table_entries,
            collision_entries,
            action_stes,
            ctrl_blocks,
            longest_chain,
            grows,
            shrinks,
            grow_failures,
            leaked_chunks,
            leaked_entries,
            presize_fallbacks,
            host_bytes,
        } = *other;
        self.rules += rules;
        self.shared_handles += shared_handles;
        self.stes += stes;
        self.tables += tables;
        self.table_entries += table_entries;
        self.collision_entries += collision_entries;
        self.action_stes += action_stes;
        self.ctrl_blocks += ctrl_blocks;
        self.longest_chain = self.longest_chain.max(longest_chain);
        self.grows += grows;
        self.shrinks += shrinks;
        self.grow_failures += grow_failures;
        self.leaked_chunks += leaked_chunks;
        self.leaked_entries += leaked_entries;
        self.presize_fallbacks += presize_fallbacks;
        self.host_bytes += host_bytes;
    }
}
