//! What can go wrong in a matcher's hash tables.

use super::RuleHandle;
use crate::icm::IcmError;
use crate::send::SendError;

/// Why an operation on [`super::MatcherTables`] failed.
///
/// Unless the variant says otherwise, a failed call changed nothing: every rule installed
/// before it is still installed and reachable by packets, and ICM handed out for the call
/// went back to the pool.
#[derive(Debug, thiserror::Error)]
pub enum HtblError {
    /// The rule's tags do not fit the matcher's chain (a different number of lookups).
    #[error("the rule has {got} tags, the matcher's chain has {want} lookups")]
    TagCount {
        /// Tags given.
        got: usize,
        /// Lookups of the chain.
        want: usize,
    },
    /// A tag's length does not fit its lookup.
    #[error("tag {level} has {got} bytes, its lookup takes {want}")]
    TagLength {
        /// The level (lookup index).
        level: usize,
        /// Bytes given.
        got: usize,
        /// Bytes the lookup takes.
        want: usize,
    },
    /// The chain uses a lookup whose tables this engine does not build yet.
    #[error("lookup {level} of the chain is a definer (32-byte tag) lookup; definer hash tables are not supported yet")]
    DefinerLookup {
        /// The level (lookup index).
        level: usize,
    },
    /// A rule with the same tags at every level is installed already: a second copy
    /// would sit behind the first in the same miss chain, where no packet reaches it.
    /// (With [`super::TablesConfig::share_identical`], only a duplicate whose actions
    /// differ from the installed rule's is refused.)
    #[error("a rule with the same match value is installed already")]
    Duplicate,
    /// The rule's STE is shared by several handles (identical duplicates, see
    /// [`super::TablesConfig::share_identical`]): changing its actions would change
    /// them all. Nothing changed.
    #[error("the rule is shared by {handles} handles; its actions cannot change for one of them")]
    Shared {
        /// The handles sharing it.
        handles: u32,
    },
    /// ICM ran out (or the device refused memory).
    #[error(transparent)]
    Icm(#[from] IcmError),
    /// The action encoder ([`super::LastSte`]) refused the rule's actions.
    #[error("the rule's actions: {0}")]
    Actions(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The action encoder did something the engine cannot install.
    #[error("the rule's action encoder {0}")]
    BadActionStes(&'static str),
    /// The send ring failed before the write that would have linked the change in took
    /// effect: nothing changed.
    #[error("the send ring failed; nothing was changed: {0}")]
    Send(#[source] SendError),
    /// The send ring failed in a way that leaves open whether the linking write reached
    /// ICM (a completion timeout, a device failure). The engine assumes it did: the rule
    /// is kept as installed, and its handle is here (remove it, or drop the handle to
    /// leave it installed until the tables are dropped). Memory that might still be
    /// reachable is not reused.
    #[error("the send ring failed after the rule's linking write was posted; the rule is kept as installed: {source}")]
    Unconfirmed {
        /// The rule, as installed.
        rule: RuleHandle,
        /// The ring's failure.
        #[source]
        source: SendError,
    },
    /// The send ring failed in a way that leaves open whether the write giving a rule
    /// its new actions ([`super::MatcherTables::update_actions`]) reached ICM. The engine
    /// assumes it did: the rule has its new actions (its handle stays valid), and its
    /// old action STEs are not reused.
    #[error("the send ring failed after the rule's new actions were posted; they are assumed in place: {0}")]
    UpdateUnconfirmed(#[source] SendError),
    /// The handle belongs to another matcher's tables.
    #[error("the rule handle belongs to other tables")]
    ForeignHandle,
    /// An update made without waiting for its completion ([`super::Completion::Post`]
    /// or [`super::Completion::Queue`]) did not land, or may not have: the tables no
    /// longer describe ICM, so they take no further update. Nothing was changed by this
    /// call. Drop the matcher's rules and the matcher (it is unlinked and its memory
    /// freed as usual) and make a new one.
    #[error("an earlier update of these tables, made without waiting, failed on the send ring; the tables take no more updates: {0}")]
    Lost(#[source] SendError),
}

/// Why [`super::MatcherTables::remove`] failed, with the rule's handle when the rule is
/// still installed.
#[derive(Debug, thiserror::Error)]
#[error("removing a rule: {error}")]
pub struct RemoveError {
    /// What went wrong.
    #[source]
    pub error: HtblError,
    /// The rule, when it is still installed (the unlinking write did not take effect);
    /// `None` when it is gone (the unlinking write landed, or may have: then the memory
    /// it used is not reused).
    pub rule: Option<RuleHandle>,
}
