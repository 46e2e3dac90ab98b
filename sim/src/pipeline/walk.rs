//! The walk: how the NIC steers one packet through STE hash tables in ICM.
//!
//! Starting at a table root (a one-entry table), each step picks a slot of the current
//! hash table by hashing the lookup key of the table's lookup type under the table's
//! byte mask, then follows the slot's miss chain, comparing each STE's own key under
//! its mask with its tag. On a hit the STE's actions run and the walk continues at the
//! hit address, a table whose size, byte mask and lookup type the hitting STE gives. A
//! walk ends at a firmware-owned address (drop, allow, vport, a firmware table: a
//! [`Terminal`]), or with a fault.

use ste_builder::hash::{hash_index, HtblType};
use ste_builder::ste::{decode_hit_index, LU_TYPE_DONT_CARE, STE_SIZE};
use ste_builder::{Caps, MatchParam, SteFormat};

use super::action::{self, Action, ActionError, V1Item};
use super::key::{lookup_key, KeyError, KEY_SIZE};
use super::ste::{self, ActionArea, Compare, SteError};
use crate::endpoint::Terminal;

/// Why the device cannot provide something the walk needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// No ICM backs the address.
    #[error("ICM address {addr:#x} is not backed")]
    NotBacked {
        /// The address.
        addr: u64,
    },
    /// The environment has no memory of this kind (for example no modify-header ICM).
    #[error("the device has no {0}")]
    NoSuch(&'static str),
    /// A counter the device does not have.
    #[error("flow counter {0:#x} does not exist")]
    NoCounter(u32),
}

/// What the walk needs from the device.
pub trait Environment {
    /// The firmware-owned destination at `addr`, if `addr` is one. Checked before ICM
    /// at every address the walk moves to (not at the start).
    fn terminal(&self, addr: u64) -> Option<Terminal>;

    /// The 64-byte STE line at `addr`.
    fn read_ste(&self, addr: u64) -> Result<[u8; STE_SIZE], EnvError>;

    /// Counts one packet of `bytes` bytes on flow counter `id`.
    fn count(&self, id: u32, bytes: u64) -> Result<(), EnvError>;

    /// `num` 8-byte modify-header actions of the list at `index` (the list's ICM
    /// address is the device's modify-header ICM base plus 64 × `index`).
    fn modify_header_list(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        let _ = (index, num);
        Err(EnvError::NoSuch("modify-header ICM"))
    }

    /// `num` 8-byte actions of modify-header pattern `index`.
    fn modify_header_pattern(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        let _ = (index, num);
        Err(EnvError::NoSuch("modify-header pattern ICM"))
    }

    /// `num` 8-byte argument words of modify-header argument object `index`.
    fn modify_header_argument(&self, index: u32, num: u16) -> Result<Vec<u8>, EnvError> {
        let _ = (index, num);
        Err(EnvError::NoSuch("modify-header arguments"))
    }
}

/// Why an action cannot be executed on the packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {action:?}: {reason}")]
pub struct ApplyError {
    /// The action.
    pub action: Action,
    /// Why.
    pub reason: String,
}

/// The packet under lookup: the fields keys are built from, and the step that executes
/// an action on it. The packet model implements this over real bytes (re-parsing after
/// edits); [`Unedited`] is the fields alone.
pub trait PacketState {
    /// The packet's header fields and metadata, as the parser reports them.
    fn fields(&self) -> &MatchParam;
    /// The packet's length in bytes (for byte counters).
    fn len_bytes(&self) -> u64;
    /// Executes `action` on the packet; later lookups see the result.
    fn apply(&mut self, format: SteFormat, action: &Action) -> Result<(), ApplyError>;
}

/// A packet known only by its fields. Actions are recorded in the verdict and not
/// executed: every lookup of the walk sees the original fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unedited {
    /// The fields.
    pub fields: MatchParam,
    /// The length in bytes.
    pub len: u64,
}

impl PacketState for Unedited {
    fn fields(&self) -> &MatchParam {
        &self.fields
    }
    fn len_bytes(&self) -> u64 {
        self.len
    }
    fn apply(&mut self, _format: SteFormat, _action: &Action) -> Result<(), ApplyError> {
        Ok(())
    }
}

/// The device facts a walk depends on.
#[derive(Debug, Clone, Copy)]
pub struct WalkConfig<'a> {
    /// The STE format of the device.
    pub format: SteFormat,
    /// Flex-parser assignment and vport table, for lookup keys.
    pub caps: &'a Caps,
    /// The most STEs one walk may visit; a walk that needs more ends with
    /// [`WalkFault::HopLimit`] (a miss-chain or hit loop in ICM).
    pub max_hops: usize,
}

impl<'a> WalkConfig<'a> {
    /// A configuration with the default hop limit.
    pub fn new(format: SteFormat, caps: &'a Caps) -> Self {
        WalkConfig {
            format,
            caps,
            max_hops: DEFAULT_MAX_HOPS,
        }
    }
}

/// The default hop limit: far above any chain rdma-core builds (a few levels of lookups
/// with miss chains of a handful of entries, plus action STEs).
pub const DEFAULT_MAX_HOPS: usize = 4096;

/// Why a walk stopped without reaching a firmware destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkFault {
    /// The walk moved to an address that is neither ICM nor firmware-owned.
    #[error("STE address {addr:#x} is not backed: {error}")]
    NotBacked {
        /// The address.
        addr: u64,
        /// What the environment said.
        error: EnvError,
    },
    /// More STEs than the hop limit.
    #[error("the walk exceeded {0} STEs")]
    HopLimit(usize),
    /// An STE the model cannot read.
    #[error("STE at {addr:#x}: {error}")]
    Ste {
        /// The STE's address.
        addr: u64,
        /// What is wrong.
        error: SteError,
    },
    /// A lookup type the model cannot build a key for.
    #[error("STE at {addr:#x}: {error}")]
    Lookup {
        /// The STE's (or, for a table hash, the pointing STE's target) address.
        addr: u64,
        /// The lookup error.
        error: KeyError,
    },
    /// A hit whose target is malformed.
    #[error("STE at {addr:#x}: {reason}")]
    Malformed {
        /// The STE's address.
        addr: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An action the model cannot decode.
    #[error("STE at {addr:#x}: {error}")]
    Action {
        /// The STE's address.
        addr: u64,
        /// What is wrong.
        error: ActionError,
    },
    /// Action memory (a modify-header list) the device cannot provide.
    #[error("STE at {addr:#x}: {error}")]
    ActionMemory {
        /// The STE's address.
        addr: u64,
        /// What the environment said.
        error: EnvError,
    },
    /// A counter the device cannot count.
    #[error("STE at {addr:#x}: {error}")]
    Counter {
        /// The STE's address.
        addr: u64,
        /// What the environment said.
        error: EnvError,
    },
    /// The packet model could not execute an action.
    #[error("STE at {addr:#x}: {error}")]
    Apply {
        /// The STE's address.
        addr: u64,
        /// What went wrong.
        error: ApplyError,
    },
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// At a firmware-owned address.
    Terminal {
        /// The address.
        addr: u64,
        /// What the firmware does there.
        terminal: Terminal,
    },
    /// With a fault.
    Fault(WalkFault),
}

/// A hash table as the walk enters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef {
    /// ICM address of entry 0.
    pub base: u64,
    /// Number of entries (a power of two).
    pub num_entries: u32,
    /// Which key bytes are hashed.
    pub byte_mask: u16,
    /// The lookup type whose key is hashed.
    pub lu_type: u16,
}

/// What an STE did with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Matched: the walk continues at `next`.
    Hit {
        /// The hit address.
        next: u64,
    },
    /// Did not match: the walk continues at `next`, the miss address.
    Miss {
        /// The miss address.
        next: u64,
    },
}

/// One STE visited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The table whose slot (or miss chain) this STE is.
    pub table: TableRef,
    /// The STE's ICM address.
    pub addr: u64,
    /// The STE's own lookup type.
    pub lu_type: u16,
    /// True when the STE's bit mask is non-zero (a rule STE rather than an anchor,
    /// action-only entry or unused slot).
    pub masked: bool,
    /// Hit or miss.
    pub outcome: Outcome,
    /// The actions executed (hits only).
    pub actions: Vec<Action>,
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Where it ended.
    pub fate: Fate,
    /// All actions executed, in order.
    pub actions: Vec<Action>,
    /// The STEs visited, in order.
    pub trace: Vec<Hop>,
}

impl Verdict {
    /// The final address when the walk reached a firmware destination.
    pub fn final_addr(&self) -> Option<u64> {
        match self.fate {
            Fate::Terminal { addr, .. } => Some(addr),
            Fate::Fault(_) => None,
        }
    }

    /// The firmware destination reached, if any.
    pub fn terminal(&self) -> Option<Terminal> {
        match self.fate {
            Fate::Terminal { terminal, .. } => Some(terminal),
            Fate::Fault(_) => None,
        }
    }

    /// The flow tag the packet leaves with: the last one set.
    pub fn flow_tag(&self) -> Option<u32> {
        self.flow_tags().last().copied()
    }

    /// Every flow-tag action executed, in order.
    pub fn flow_tags(&self) -> Vec<u32> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::FlowTag(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// The flow counters counted, in order.
    pub fn counters(&self) -> Vec<u32> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Counter(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// The address of the last STE with a non-zero mask that matched: the rule that
    /// decided the packet's fate.
    pub fn last_rule_hit(&self) -> Option<u64> {
        self.trace
            .iter()
            .rev()
            .find(|h| h.masked && matches!(h.outcome, Outcome::Hit { .. }))
            .map(|h| h.addr)
    }

    /// True when some STE missed into `addr`.
    pub fn missed_into(&self, addr: u64) -> bool {
        self.trace
            .iter()
            .any(|h| h.outcome == Outcome::Miss { next: addr })
    }
}

/// Walks `packet` from the table root at `root` (a one-entry table).
pub fn walk<E, P>(env: &E, cfg: &WalkConfig<'_>, root: u64, packet: &mut P) -> Verdict
where
    E: Environment + ?Sized,
    P: PacketState + ?Sized,
{
    let mut w = Walker {
        env,
        cfg,
        actions: Vec::new(),
        trace: Vec::new(),
    };
    let fate = match w.run(root, packet) {
        Ok((addr, terminal)) => Fate::Terminal { addr, terminal },
        Err(fault) => Fate::Fault(fault),
    };
    Verdict {
        fate,
        actions: w.actions,
        trace: w.trace,
    }
}

struct Walker<'e, 'c, E: ?Sized> {
    env: &'e E,
    cfg: &'c WalkConfig<'c>,
    actions: Vec<Action>,
    trace: Vec<Hop>,
}

impl<E: Environment + ?Sized> Walker<'_, '_, E> {
    fn run<P: PacketState + ?Sized>(
        &mut self,
        root: u64,
        packet: &mut P,
    ) -> Result<(u64, Terminal), WalkFault> {
        let format = self.cfg.format;
        let mut table = TableRef {
            base: root,
            num_entries: 1,
            byte_mask: 0,
            lu_type: LU_TYPE_DONT_CARE,
        };
        loop {
            let mut addr = table.base + STE_SIZE as u64 * u64::from(self.slot(&table, packet)?);
            // The slot's miss chain.
            let (ste_addr, line, ste) = loop {
                if self.trace.len() >= self.cfg.max_hops {
                    return Err(WalkFault::HopLimit(self.cfg.max_hops));
                }
                let line = self
                    .env
                    .read_ste(addr)
                    .map_err(|error| WalkFault::NotBacked { addr, error })?;
                let ste =
                    ste::decode(format, &line).map_err(|error| WalkFault::Ste { addr, error })?;
                if self.matches(addr, &ste, packet.fields())? {
                    break (addr, line, ste);
                }
                self.trace.push(Hop {
                    table,
                    addr,
                    lu_type: ste.lu_type,
                    masked: !ste.compare.mask_is_zero(),
                    outcome: Outcome::Miss {
                        next: ste.miss_addr,
                    },
                    actions: Vec::new(),
                });
                addr = ste.miss_addr;
                if let Some(t) = self.env.terminal(addr) {
                    return Ok((addr, t));
                }
            };

            // A hit: decode the next table first, so a malformed target is reported
            // before any action has effects. (The encoding cannot express a table that
            // is not aligned to its size: the lowest set bit is the size.)
            let (next, num_entries) = decode_hit_index(ste.hit_index)
                .filter(|_| ste.hit_index != HIT_INDEX_NONE)
                .ok_or(WalkFault::Malformed {
                    addr: ste_addr,
                    reason: "hit without a hit address",
                })?;
            let actions = self.actions_of(ste_addr, &line, &ste)?;
            for a in &actions {
                if let Action::Counter(id) = a {
                    self.env.count(*id, packet.len_bytes()).map_err(|error| {
                        WalkFault::Counter {
                            addr: ste_addr,
                            error,
                        }
                    })?;
                }
                packet.apply(format, a).map_err(|error| WalkFault::Apply {
                    addr: ste_addr,
                    error,
                })?;
            }
            self.actions.extend_from_slice(&actions);
            self.trace.push(Hop {
                table,
                addr: ste_addr,
                lu_type: ste.lu_type,
                masked: !ste.compare.mask_is_zero(),
                outcome: Outcome::Hit { next },
                actions,
            });
            if let Some(t) = self.env.terminal(next) {
                return Ok((next, t));
            }
            table = TableRef {
                base: next,
                num_entries,
                byte_mask: ste.byte_mask,
                lu_type: ste.next_lu_type,
            };
            // A match entry names only the definer of its next table, which the model
            // cannot hash; one-entry tables need no hash.
            if matches!(ste.compare, Compare::Definer { .. }) && num_entries > 1 {
                return Err(WalkFault::Malformed {
                    addr: ste_addr,
                    reason: "a match entry hits into a hashed table",
                });
            }
        }
    }

    /// The slot of `table` the packet hashes to.
    fn slot<P: PacketState + ?Sized>(
        &self,
        table: &TableRef,
        packet: &P,
    ) -> Result<u32, WalkFault> {
        if table.num_entries <= 1 || table.byte_mask == 0 {
            return Ok(0);
        }
        let key = lookup_key(
            self.cfg.format,
            table.lu_type,
            packet.fields(),
            self.cfg.caps,
        )
        .map_err(|error| WalkFault::Lookup {
            addr: table.base,
            error,
        })?;
        Ok(hash_index(
            HtblType::Legacy,
            table.byte_mask,
            table.num_entries,
            &key,
        ))
    }

    /// Whether the STE at `addr` matches the packet.
    fn matches(&self, addr: u64, ste: &ste::Ste, fields: &MatchParam) -> Result<bool, WalkFault> {
        match &ste.compare {
            Compare::Definer { index, tag } if *index == ste::DONT_CARE_INDEX => {
                Ok(tag.iter().all(|&b| b == 0))
            }
            Compare::Definer { .. } => Err(WalkFault::Lookup {
                addr,
                error: KeyError::UnsupportedLookupType {
                    format: self.cfg.format,
                    lu_type: ste.lu_type,
                },
            }),
            Compare::Masked { mask, tag } => {
                // With an empty mask the key is irrelevant: skip building it, so
                // anchors of any lookup type work.
                if mask.iter().all(|&b| b == 0) {
                    return Ok(tag.iter().all(|&b| b == 0));
                }
                let key = lookup_key(self.cfg.format, ste.lu_type, fields, self.cfg.caps)
                    .map_err(|error| WalkFault::Lookup { addr, error })?;
                Ok((0..KEY_SIZE).all(|i| key[i] & mask[i] == tag[i]))
            }
        }
    }

    /// The actions of a hitting STE, in execution order, with modify-header lists
    /// resolved through the environment.
    fn actions_of(
        &self,
        addr: u64,
        line: &[u8; STE_SIZE],
        ste: &ste::Ste,
    ) -> Result<Vec<Action>, WalkFault> {
        let act_err = |error| WalkFault::Action { addr, error };
        let mem_err = |error| WalkFault::ActionMemory { addr, error };
        let mut out = Vec::new();
        match ste.actions {
            ActionArea::V1(from, to) => {
                if ste.counter_id != 0 {
                    out.push(Action::Counter(ste.counter_id));
                }
                for item in action::decode_v1_area(&line[from..to]).map_err(act_err)? {
                    match item {
                        V1Item::Action(a) => out.push(a),
                        V1Item::ModifyList { index, num } => {
                            let list = self.env.modify_header_list(index, num).map_err(mem_err)?;
                            out.extend(action::decode_v1_list(&list).map_err(act_err)?);
                        }
                        V1Item::Pattern {
                            pattern,
                            argument,
                            num,
                        } => {
                            // The hardware ORs each pattern action with its argument
                            // word: the pattern holds the fields, the argument the data.
                            let mut list = self
                                .env
                                .modify_header_pattern(pattern, num)
                                .map_err(mem_err)?;
                            let args = self
                                .env
                                .modify_header_argument(argument, num)
                                .map_err(mem_err)?;
                            if args.len() != list.len() {
                                return Err(act_err(ActionError::ListSize(args.len())));
                            }
                            for (p, a) in list.iter_mut().zip(args) {
                                *p |= a;
                            }
                            out.extend(action::decode_v1_list(&list).map_err(act_err)?);
                        }
                    }
                }
            }
            ActionArea::V0 => {
                let decoded = action::decode_v0(line).map_err(act_err)?;
                let mut actions = decoded.actions;
                if let Some((index, num)) = decoded.list {
                    let list = self.env.modify_header_list(index, num).map_err(mem_err)?;
                    let modify = action::decode_v0_list(&list).map_err(act_err)?;
                    actions.splice(decoded.list_at..decoded.list_at, modify);
                }
                out = actions;
            }
        }
        Ok(out)
    }
}

/// The hit index of an always-miss entry: all 35 bits set, "no hit target".
const HIT_INDEX_NONE: u64 = (1 << 35) - 1;

#[cfg(test)]
mod tests;
