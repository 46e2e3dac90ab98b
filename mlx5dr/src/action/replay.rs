//! Replaying one side's action encoding: the per-rule step without the encoder.
//!
//! Every rule of one [`super::ActionList`] on one side gets the same actions, so the
//! encoder (`ste_builder::action::set_actions_rx/tx`) writes the same bytes for every
//! rule whose last match STE starts with the same control block. A [`Replay`] captures
//! that effect once and applies it to each further rule.
//!
//! ## Why a replay is exact
//!
//! For a fixed action set and attributes, the encoders read only the match STE's
//! control block (its entry type or format) and fields they wrote themselves (an added
//! STE's entry type right after initialising it); everything else they do is writing
//! constant values into bit fields, zeroing ranges, or copying constant bytes. So, for
//! a given control block (the key), the encoder's control flow, its result and any error
//! are fixed, and its effect on every other bit of the buffer is either "set to a
//! constant" or "left alone". [`Replay::capture`] runs the encoder on the key followed by
//! all-zero and by all-one bytes: a bit that comes out equal in both runs is written
//! with that value, one that follows its input is left alone, and any other outcome (an
//! encoder that broke these rules) refuses the capture. A capture is also checked
//! against the full encoder on the first real buffer before it is kept. The tests compare
//! replays with the full encoder over every action kind, format, side and random keys
//! and buffers.

use std::sync::OnceLock;

use ste_builder::ste::STE_CTRL_SIZE;

/// How many control blocks each side of a list remembers: the last match STEs of the
/// matchers that use the list (usually one). Further ones are encoded in full.
const SLOTS: usize = 4;

/// Bytes of a word of the buffer the replay works on.
const WORD: usize = 8;

/// The encoder's effect on a buffer whose first [`STE_CTRL_SIZE`] bytes equal `key`.
///
/// Invariant: applying it to any buffer of `len` bytes starting with `key` gives what
/// the encoder gives: `ctrl` replaces the key, each listed word `w` becomes
/// `(w & keep) | set`, every other byte is left alone, and `added` STEs were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replay {
    key: [u8; STE_CTRL_SIZE],
    ctrl: [u8; STE_CTRL_SIZE],
    len: usize,
    added: usize,
    /// The words after the control block the encoder writes: byte offset, the bits it
    /// leaves alone, the bits it sets.
    words: Box<[(usize, u64, u64)]>,
}

impl Replay {
    /// Captures what `encode` does to a buffer of `len` bytes (a whole number of words,
    /// at least the control block) starting with `key`; `None` when it fails or does not
    /// behave as a replay needs (see the module documentation).
    pub(super) fn capture<E>(
        key: &[u8; STE_CTRL_SIZE],
        len: usize,
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    ) -> Option<Replay> {
        if len < STE_CTRL_SIZE || len % WORD != 0 {
            return None;
        }
        let mut run = |fill: u8| {
            let mut buf = vec![fill; len];
            buf[..STE_CTRL_SIZE].copy_from_slice(key);
            let added = encode(&mut buf).ok()?;
            Some((buf, added))
        };
        let (zeros, added) = run(0)?;
        let (ones, added_ones) = run(0xff)?;
        if added != added_ones || zeros[..STE_CTRL_SIZE] != ones[..STE_CTRL_SIZE] {
            return None;
        }
        let mut words = Vec::new();
        for at in (STE_CTRL_SIZE..len).step_by(WORD) {
            let z = u64::from_ne_bytes(zeros[at..at + WORD].try_into().ok()?);
            let o = u64::from_ne_bytes(ones[at..at + WORD].try_into().ok()?);
            // A bit that is 1 from zeros and 0 from ones depends on its input otherwise
            // than by being kept.
            if z & !o != 0 {
                return None;
            }
            let (keep, set) = (z ^ o, z & o);
            if keep != u64::MAX {
                words.push((at, keep, set));
            }
        }
        let mut ctrl = [0; STE_CTRL_SIZE];
        ctrl.copy_from_slice(&zeros[..STE_CTRL_SIZE]);
        Some(Replay {
            key: *key,
            ctrl,
            len,
            added,
            words: words.into_boxed_slice(),
        })
    }

    /// True when the replay applies to `buf`: same length, same control block.
    fn matches(&self, buf: &[u8]) -> bool {
        buf.len() == self.len && buf[..STE_CTRL_SIZE] == self.key
    }

    /// Applies the replay to `buf` (which it [`Replay::matches`]); returns the STEs added.
    fn apply(&self, buf: &mut [u8]) -> usize {
        buf[..STE_CTRL_SIZE].copy_from_slice(&self.ctrl);
        for &(at, keep, set) in self.words.iter() {
            let w = &mut buf[at..at + WORD];
            let mut v = [0; WORD];
            v.copy_from_slice(w);
            let v = (u64::from_ne_bytes(v) & keep) | set;
            w.copy_from_slice(&v.to_ne_bytes());
        }
        self.added
    }
}

/// The replays of one side of a list, filled as control blocks are first seen (shared
/// by every thread inserting with the list; a slot, once set, never changes).
#[derive(Debug, Default)]
pub(super) struct Replays {
    slots: [OnceLock<Box<Replay>>; SLOTS],
}

impl Replays {
    /// Encodes into `buf`: by replay when one matches its control block, else with
    /// `encode` (the full encoder), remembering a replay of it when a slot is free.
    /// Same result, bytes and errors as `encode` alone.
    pub(super) fn encode<E>(
        &self,
        buf: &mut [u8],
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let mut free = None;
        for slot in &self.slots {
            match slot.get() {
                Some(r) if r.matches(buf) => return Ok(r.apply(buf)),
                Some(_) => {}
                None => {
                    free = Some(slot);
                    break;
                }
            }
        }
        if buf.len() < STE_CTRL_SIZE {
            return encode(buf);
        }
        let Some(slot) = free else {
            return encode(buf);
        };
        let input = buf.to_vec();
        let added = encode(buf)?;
        let mut key = [0; STE_CTRL_SIZE];
        key.copy_from_slice(&input[..STE_CTRL_SIZE]);
        if let Some(r) = Replay::capture(&key, input.len(), &mut encode) {
            // Kept only if it agrees with the full encoder on this real buffer too.
            let mut check = input;
            if r.apply(&mut check) == added && check[..] == buf[..] {
                // Another thread may have filled the slot meanwhile: then this one is
                // simply not kept.
                let _ = slot.set(Box::new(r));
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ste_builder::action::{
        set_actions_rx, set_actions_tx, ActionType, ActionTypeSet, ActionsAttr, Aso, AsoKind,
        Vlans, INVALID_PATTERN_INDEX,
    };
    use ste_builder::ste::{LU_TYPE_DONT_CARE, STE_SIZE};
    use ste_builder::SteFormat;

    use crate::test_rng::Rng;

    /// The buffer [`super::super::ActionList`] encodes in: the match STE and room for the
    /// most action STEs.
    const LEN: usize = (1 + super::super::MAX_ACTION_STES) * STE_SIZE;

    /// The action types the encoders write (the terminal ones only choose the address).
    const ENCODED: [ActionType; 12] = [
        ActionType::TnlL2ToL2,
        ActionType::L2ToTnlL2,
        ActionType::TnlL3ToL2,
        ActionType::L2ToTnlL3,
        ActionType::Ctr,
        ActionType::Tag,
        ActionType::ModifyHdr,
        ActionType::PopVlan,
        ActionType::PushVlan,
        ActionType::AsoFirstHit,
        ActionType::AsoFlowMeter,
        ActionType::AsoCt,
    ];

    /// Attributes with every field non-trivial; the ASO (which must match the set's ASO
    /// type, if any) in the same or another domain.
    fn attr(rng: &mut Rng, set: &ActionTypeSet) -> ActionsAttr {
        let r = rng.next();
        let pattern = match r % 3 {
            0 => INVALID_PATTERN_INDEX,
            _ => rng.next() as u32 & 0xffff,
        };
        let kind = if set.contains(ActionType::AsoFirstHit) {
            AsoKind::FirstHit { set: r & 8 != 0 }
        } else if set.contains(ActionType::AsoFlowMeter) {
            AsoKind::FlowMeter {
                initial_color: (r >> 4) as u8 & 3,
            }
        } else {
            AsoKind::Ct {
                direction: r & 16 != 0,
            }
        };
        ActionsAttr {
            modify_index: rng.next() as u32,
            modify_pat_idx: pattern,
            modify_actions: rng.next() as u16,
            single_modify_action: (r & 32 != 0).then(|| (rng.next()).to_be_bytes()),
            decap_index: rng.next() as u32,
            decap_pat_idx: if r & 64 != 0 {
                INVALID_PATTERN_INDEX
            } else {
                7
            },
            decap_actions: rng.next() as u16,
            decap_with_vlan: r & 128 != 0,
            final_icm_addr: rng.next() & 0xff_ffff_ffc0,
            flow_tag: rng.next() as u32 & 0xff_ffff,
            ctr_id: rng.next() as u32,
            gvmi: 5,
            hit_gvmi: rng.next() as u16,
            reformat_id: rng.next() as u32,
            reformat_size: rng.next() as u32 & 0x3ff,
            prio_tag_required: r & 256 != 0,
            vlans: Vlans {
                count_pop: 1 + (r >> 9) as u8 % 2,
                count_push: 1 + (r >> 10) as u8 % 2,
                headers: [rng.next() as u32, rng.next() as u32],
            },
            aso: Some(Aso {
                object_id: rng.next() as u32,
                offset: rng.next() as u32 & 0xfff,
                dest_reg_id: 1 + (r >> 11) as u8 % 6,
                domain_gvmi: if r & (1 << 14) != 0 { 5 } else { 6 },
                kind,
            }),
            aso_ste_loc: None,
        }
    }

    /// Control blocks the engine builds (each format's init, several lookup types) and
    /// random ones: a replay must hold for any key.
    fn key(rng: &mut Rng, format: SteFormat, rx: bool) -> [u8; STE_CTRL_SIZE] {
        let mut ste = [0u8; STE_SIZE];
        match rng.next() % 3 {
            0 => rng.fill(&mut ste[..STE_CTRL_SIZE]),
            1 => format.ctrl().init(&mut ste, LU_TYPE_DONT_CARE, rx, 5),
            _ => format.ctrl().init(&mut ste, rng.next() as u16, rx, 5),
        }
        let mut key = [0; STE_CTRL_SIZE];
        key.copy_from_slice(&ste[..STE_CTRL_SIZE]);
        key
    }

    fn full(
        format: SteFormat,
        rx: bool,
        set: &ActionTypeSet,
        attr: &ActionsAttr,
        buf: &mut [u8],
    ) -> Result<usize, ste_builder::action::ActionError> {
        let encode = if rx { set_actions_rx } else { set_actions_tx };
        encode(format, set, buf, attr).map(|o| o.added_stes)
    }

    /// Every subset of the encoded action types (with a terminal fate), on every format
    /// and side, with random keys and buffers: the replay path gives the full encoder's
    /// bytes, count and error.
    #[test]
    fn replay_equals_the_full_encoder() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut replayed = 0usize;
        for bits in 0u32..1 << ENCODED.len() {
            let mut set: ActionTypeSet = ENCODED
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, &t)| t)
                .collect();
            set.insert(ActionType::Ft);
            for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
                for rx in [true, false] {
                    let attr = attr(&mut rng, &set);
                    let replays = Replays::default();
                    // Two keys; each seen on several random buffers.
                    for _ in 0..2 {
                        let key = key(&mut rng, format, rx);
                        for _ in 0..3 {
                            let mut want = vec![0u8; LEN];
                            rng.fill(&mut want[STE_CTRL_SIZE..]);
                            want[..STE_CTRL_SIZE].copy_from_slice(&key);
                            let mut got = want.clone();
                            let w = full(format, rx, &set, &attr, &mut want);
                            let g = replays.encode(&mut got, |b| full(format, rx, &set, &attr, b));
                            assert_eq!(g, w, "{set:?} {format} rx={rx}");
                            if w.is_ok() {
                                assert_eq!(got, want, "{set:?} {format} rx={rx}");
                                // Whatever the encoder accepts is replayed, not encoded
                                // in full again.
                                let kept = replays
                                    .slots
                                    .iter()
                                    .any(|s| s.get().is_some_and(|r| r.key == key));
                                assert!(kept, "{set:?} {format} rx={rx}");
                                replayed += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(replayed > 20_000, "{replayed}");
    }

    #[test]
    fn a_drop_rule_only_changes_the_control_block() {
        let set: ActionTypeSet = [ActionType::Drop].into_iter().collect();
        let attr = ActionsAttr {
            final_icm_addr: 0x1234_5640,
            ..ActionsAttr::default()
        };
        for format in [SteFormat::V0, SteFormat::V1, SteFormat::V2] {
            let mut ste = [0u8; STE_SIZE];
            format.ctrl().init(&mut ste, LU_TYPE_DONT_CARE, true, 3);
            let mut key = [0; STE_CTRL_SIZE];
            key.copy_from_slice(&ste[..STE_CTRL_SIZE]);
            let r = Replay::capture(&key, LEN, |b| full(format, true, &set, &attr, b)).unwrap();
            assert!(r.words.is_empty(), "{format}: {:?}", r.words);
            assert_eq!(r.added, 0);
        }
    }

    #[test]
    fn refuses_an_encoder_that_is_not_a_replay() {
        let key = [0u8; STE_CTRL_SIZE];
        // Inverts its input: neither kept nor set.
        let invert = |b: &mut [u8]| {
            b[40] = !b[40];
            Ok::<_, ()>(0)
        };
        assert_eq!(Replay::capture(&key, LEN, invert), None);
        // Reads outside the key: the two runs disagree on the count.
        let reads = |b: &mut [u8]| Ok::<_, ()>(usize::from(b[100] & 1));
        assert_eq!(Replay::capture(&key, LEN, reads), None);
        assert_eq!(Replay::capture(&key, LEN, |_| Err(())), None);
        assert_eq!(Replay::capture(&key, 4, |_| Ok::<_, ()>(0)), None);
    }

    #[test]
    fn a_slot_is_kept_only_when_the_real_buffer_agrees() {
        // An encoder whose result depends on a byte outside the key in a way two runs
        // do not reveal (0x00 and 0xff both give 0): the real buffer catches it.
        let sneaky = |b: &mut [u8]| {
            b[200] = u8::from(b[100] == 0x5a);
            Ok::<_, ()>(0)
        };
        let replays = Replays::default();
        let mut buf = vec![0u8; LEN];
        buf[100] = 0x5a;
        assert_eq!(replays.encode(&mut buf, sneaky), Ok(0));
        assert_eq!(buf[200], 1);
        assert!(replays.slots[0].get().is_none());
    }
}
