//! Changes to installed rules that keep their place in the tables: new actions for a
//! rule ([`MatcherTables::update_actions`]), and further handles to a rule for its
//! identical duplicates
//! ([`TablesConfig::share_identical`](super::TablesConfig::share_identical)).
//!
//! An action update follows the update order of the module documentation: the new
//! action STEs are written where nothing reaches them, then one write replaces the
//! rule's last match STE in place (same tag, mask and miss address, so its chain and
//! everything behind it stay as they are), and the old action STEs, unreachable from
//! then on, go back to the slab after the flush.
//!
//! A shared duplicate writes nothing: the last STE counts its handles in its reference
//! count, as the STEs above it count the rules that pass through them.

use std::num::NonZeroU32;

use ste_builder::ste::STE_SIZE;

use super::arena::NIL;
use super::error::HtblError;
use super::tables::{Fresh, LastImages, MatcherTables};
use super::txn::{Failed, Outcome, Txn};
use super::{LastSte, RuleHandle, MAX_ACTION_STES};
use crate::icm::Entry;
use crate::send::SendRing;

impl MatcherTables {
    /// Gives the installed `rule` new actions and hit address, filled by `last` as on
    /// insert, atomically for packets: each sees the old actions or the new ones, never
    /// a miss.
    ///
    /// The new action STEs (if `last` adds any) are written first, then one 64-byte
    /// write replaces the rule's last match STE where it is (keeping its tag, mask and
    /// miss address); while its table grows and the STE is in the growing copy already,
    /// its place there is rewritten before that write. The update is flushed; the old
    /// action STEs then go back to the slab (reused after a later `SYNC_STEERING`).
    /// Growth takes no step here (it does on the next insert or removal).
    ///
    /// On error nothing changed, except:
    /// - the send ring failed after the write that replaces the STE landed: the update
    ///   stands and the call returns `Ok` (as an insert does);
    /// - whether that write landed is unknown (a completion timeout, a device failure):
    ///   the new actions are assumed in place ([`HtblError::UpdateUnconfirmed`]) and the
    ///   old action STEs are kept out of use;
    /// - any send failure while the STE's place in a growing copy is rewritten too (it
    ///   sits in a slot copied already): the growth is given up, as on insert (the table
    ///   keeps its size; [`HtblStats::grow_failures`](super::HtblStats)).
    ///
    /// Refused with [`HtblError::Shared`] while other handles share the rule, and with
    /// [`HtblError::ForeignHandle`] for another instance's handle.
    pub fn update_actions<L: LastSte>(
        &mut self,
        ring: &mut SendRing,
        rule: &RuleHandle,
        last: L,
    ) -> Result<(), HtblError> {
        let s = self.last_ste_of(rule).ok_or(HtblError::ForeignHandle)?;
        self.settle(ring)?;
        let handles = self.stes[s].refs.get();
        if handles > 1 {
            return Err(HtblError::Shared { handles });
        }
        let tag = self.stes[s].tag;
        let mut stes: LastImages = [0; STE_SIZE * (1 + MAX_ACTION_STES)];
        let added = self.fill_last(&tag, last, &mut stes)?;
        let fresh = self.alloc_fresh(0, false, added)?;
        let ctrl = self.chain_actions(&mut stes, fresh.extras.iter().map(Entry::icm_addr));
        let images = &stes[STE_SIZE..(1 + added) * STE_SIZE];

        let mirror = self.mirror_update(s);
        let miss = self.miss_of(self.at(s).next);
        let (region, addr) = self.place(s);
        let enc = self.enc();
        let level = self.level(self.lookups() - 1);
        let res = Txn::new(ring).run(|t| {
            self.write_action_stes(t, &stes, &fresh.extras)?;
            if let Some((r, a, copy_miss)) = mirror {
                let image = enc.last_ste(&ctrl, level, &tag, copy_miss);
                t.write(&r, a, &enc.posted(image, STE_SIZE))?;
            }
            let image = enc.last_ste(&ctrl, level, &tag, miss);
            t.link(&region, addr, &enc.posted(image, STE_SIZE))
        });
        match res {
            Ok(_)
            | Err(Failed {
                outcome: Outcome::Applied,
                ..
            }) => {
                self.commit_update(s, &ctrl, fresh, images, mirror.is_some(), true);
                Ok(())
            }
            Err(Failed {
                outcome: Outcome::Rejected { settled },
                error,
            }) => {
                self.give_back(fresh, settled);
                // The growing copy may hold the new image.
                if mirror.is_some() {
                    self.abort_migration(settled, true);
                }
                Err(HtblError::Send(error))
            }
            // It may have landed: assume it did; the old action STEs may still be
            // reached by a packet if it did not, so they stay out of use.
            Err(Failed {
                outcome: Outcome::Unknown,
                error,
            }) => {
                self.commit_update(s, &ctrl, fresh, images, mirror.is_some(), false);
                if mirror.is_some() {
                    self.abort_migration(false, true);
                }
                Err(HtblError::UpdateUnconfirmed(error))
            }
        }
    }

    /// Records an action update of last STE `s` that landed (or is assumed to have):
    /// its new control block and action STEs. The old action STEs go back to the slab
    /// (`free`), or stay out of use.
    fn commit_update(
        &mut self,
        s: u32,
        ctrl: &[u8; ste_builder::ste::STE_CTRL_SIZE],
        fresh: Fresh,
        images: &[u8],
        mirrored: bool,
        free: bool,
    ) {
        // Interned before the old block is released, so an unchanged block keeps its id.
        let new = self.ctrls.intern(ctrl);
        let old = std::mem::replace(&mut self.stes[s].link, new);
        self.ctrls.release(old);
        let old_extras = self.extras.remove(&s);
        self.extra_images.remove(&s);
        self.set_action_stes(s, fresh.extras, images);
        for e in old_extras.into_iter().flat_map(|x| x.into_vec()) {
            self.release_slab_entry(e, free);
        }
        if mirrored {
            self.counters.updates_mirrored += 1;
        }
    }

    /// An insert whose tags lead to the installed last STE `d`, duplicates being
    /// shared: a further handle to `d` if `last` fills the same control block and action
    /// STEs, else [`HtblError::Duplicate`]. Nothing is written either way.
    pub(super) fn share<L: LastSte>(&mut self, d: u32, last: L) -> Result<RuleHandle, HtblError> {
        let tag = self.stes[d].tag;
        let mut stes: LastImages = [0; STE_SIZE * (1 + MAX_ACTION_STES)];
        let added = self.fill_last(&tag, last, &mut stes)?;
        let installed = self.extras.get(&d).map_or(&[][..], |x| &x[..]);
        if added != installed.len() {
            return Err(HtblError::Duplicate);
        }
        // Chained as the installed rule's are: to the addresses of its action STEs.
        let ctrl = self.chain_actions(&mut stes, installed.iter().map(Entry::icm_addr));
        if ctrl != *self.ctrls.get(self.stes[d].link) {
            return Err(HtblError::Duplicate);
        }
        if added > 0 {
            let same = self.extra_images.get(&d).is_some_and(|kept| {
                kept.iter()
                    .zip(stes[STE_SIZE..].chunks_exact(STE_SIZE))
                    .all(|(k, new)| k[..] == *new)
            });
            if !same {
                return Err(HtblError::Duplicate);
            }
        }
        // One more handle through every STE of the rule.
        let mut s = d;
        while s != NIL {
            let r = &mut self.stes[s].refs;
            *r = r.saturating_add(1);
            s = self.tables[self.stes[s].table].owner;
        }
        self.rules += 1;
        self.shared += 1;
        Ok(self.handle(d))
    }

    /// Gives back one of several handles of a shared rule: nothing is written.
    pub(super) fn unshare(&mut self, rule: RuleHandle) {
        let mut s = rule.ste;
        while s != NIL {
            let r = &mut self.stes[s].refs;
            *r = NonZeroU32::new(r.get() - 1).unwrap_or(NonZeroU32::MIN);
            s = self.tables[self.stes[s].table].owner;
        }
        self.rules -= 1;
        self.shared -= 1;
    }
}
