//! A one-matcher software table laid out in ICM the way rdma-core lays one out, built
//! with ste-builder's format-generic functions only:
//!
//! ```text
//! root anchor (1 entry, don't-care) --hit--> hash table (n entries, the matcher's lookup)
//!                                              slot --miss--> collision STE --miss--> ...
//!                                              every chain ends --miss--> end anchor
//! end anchor (1 entry) --miss--> the domain's default address
//! a rule STE --hit--> [added action STEs, one 1-entry table each] --hit--> its destination
//! ```
//!
//! The table keeps a shadow copy of every STE as built; [`Write`]s carry the bytes as
//! posted (after `prepare_for_postsend`), for the caller to send through a queue.

use sim::icm::IcmAlloc;
use ste_builder::action::{self, ActionError, ActionTypeSet, ActionsAttr};
use ste_builder::hash::{hash_index, HtblType};
use ste_builder::ste::{
    set_bit_mask, set_formatted_ste, Connect, Ste, LU_TYPE_DONT_CARE, STE_CTRL_SIZE, STE_SIZE,
    STE_TAG_SIZE,
};
use ste_builder::{BuildError, Caps, MatchParam, SteBuild, SteFormat};

/// Most action STEs a rule may add.
const MAX_ADDED: usize = 4;

/// One ICM write: `bytes` (a whole STE, or its control block) at `addr`.
#[derive(Debug, Clone)]
pub struct Write {
    /// ICM address.
    pub addr: u64,
    /// The bytes as posted.
    pub bytes: Vec<u8>,
}

/// Why a rule cannot be added.
#[derive(Debug)]
pub enum RuleError {
    /// The tag cannot be built.
    Tag(BuildError),
    /// The actions cannot be encoded.
    Actions(ActionError),
    /// The table's ICM is used up.
    Full,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::Tag(e) => write!(f, "tag: {e}"),
            RuleError::Actions(e) => write!(f, "actions: {e}"),
            RuleError::Full => f.write_str("the table's ICM is full"),
        }
    }
}

/// Where a rule's STEs went.
#[derive(Debug, Clone, Copy)]
pub struct RulePlace {
    /// The rule's match STE.
    pub ste: u64,
    /// Its hash slot.
    pub slot: u32,
    /// Its position in the slot's miss chain (0: the slot entry itself).
    pub depth: usize,
    /// Action STEs added after it.
    pub added: usize,
}

/// The table.
pub struct Table {
    /// STE format.
    pub format: SteFormat,
    /// The lookup of the matcher.
    pub sb: SteBuild,
    /// The allocation holding every STE of the table.
    pub icm: IcmAlloc,
    /// The root anchor.
    pub root: u64,
    /// The end anchor.
    pub end_anchor: u64,
    /// The hash table.
    pub htbl: u64,
    /// Its size.
    pub entries: u32,
    gvmi: u16,
    rx: bool,
    default_addr: u64,
    /// Next free line for collision and action STEs.
    next_free: u64,
    /// Per slot, the STEs of its miss chain, slot entry first.
    chains: Vec<Vec<u64>>,
    /// Shadow copies of the STEs as built, by address.
    shadow: std::collections::BTreeMap<u64, Ste>,
}

impl Table {
    /// Lays the table out in `icm`: root at its start, end anchor after it, the hash table
    /// of `entries` (a power of two) aligned to its size, then free lines.
    pub fn new(
        format: SteFormat,
        sb: SteBuild,
        icm: IcmAlloc,
        entries: u32,
        gvmi: u16,
        default_addr: u64,
    ) -> Table {
        let line = STE_SIZE as u64;
        let table_bytes = u64::from(entries) * line;
        let htbl = (icm.addr + 2 * line).next_multiple_of(table_bytes);
        Table {
            format,
            rx: sb.rx,
            sb,
            icm,
            root: icm.addr,
            end_anchor: icm.addr + line,
            htbl,
            entries,
            gvmi,
            default_addr,
            next_free: htbl + table_bytes,
            chains: vec![Vec::new(); entries as usize],
            shadow: Default::default(),
        }
    }

    fn keep(&mut self, addr: u64, ste: Ste) -> Write {
        self.shadow.insert(addr, ste);
        self.posted(addr, STE_SIZE)
    }

    /// The STE at `addr` as the table last posted it, `size` bytes of it.
    pub fn posted(&self, addr: u64, size: usize) -> Write {
        let mut ste = self.shadow[&addr];
        self.format.ctrl().prepare_for_postsend(&mut ste, size);
        Write {
            addr,
            bytes: ste[..size].to_vec(),
        }
    }

    fn formatted(&self, lu_type: u16, connect: Connect) -> Ste {
        let mut ste = [0u8; STE_SIZE];
        set_formatted_ste(
            self.format.ctrl(),
            &mut ste,
            self.gvmi,
            self.rx,
            lu_type,
            connect,
        );
        ste
    }

    /// The writes that create the empty table: every hash-table entry missing to the end
    /// anchor (one write of the whole table), the end anchor missing to the default, and
    /// the root anchor, still missing to the default.
    pub fn create(&mut self) -> Vec<Write> {
        let miss_end = Connect::Miss {
            miss_addr: self.end_anchor,
        };
        let slot = self.formatted(self.sb.lu_type, miss_end);
        let mut table = Vec::with_capacity(self.entries as usize * STE_SIZE);
        for i in 0..u64::from(self.entries) {
            let w = self.keep(self.htbl + i * STE_SIZE as u64, slot);
            table.extend_from_slice(&w.bytes);
        }
        let to_default = Connect::Miss {
            miss_addr: self.default_addr,
        };
        let end = self.formatted(LU_TYPE_DONT_CARE, to_default);
        let root = self.formatted(LU_TYPE_DONT_CARE, to_default);
        vec![
            Write {
                addr: self.htbl,
                bytes: table,
            },
            self.keep(self.end_anchor, end),
            self.keep(self.root, root),
        ]
    }

    /// The write that makes the root anchor hit the hash table.
    pub fn connect_root(&mut self) -> Write {
        let root = self.formatted(
            LU_TYPE_DONT_CARE,
            Connect::Hit {
                lu_type: self.sb.lu_type,
                byte_mask: self.sb.byte_mask,
                icm_addr: self.htbl,
                num_entries: self.entries,
            },
        );
        self.keep(self.root, root)
    }

    fn take_line(&mut self) -> Result<u64, RuleError> {
        let addr = self.next_free;
        if addr + STE_SIZE as u64 > self.icm.addr + self.icm.size {
            return Err(RuleError::Full);
        }
        self.next_free += STE_SIZE as u64;
        Ok(addr)
    }

    /// Adds a rule matching `value` with the actions `set` / `attr` (whose
    /// `final_icm_addr` is where it ends). Returns where it went and the writes, in the
    /// order a driver posts them: action STEs, the rule STE, then the link that makes it
    /// reachable (a collision entry's predecessor's control block).
    pub fn add_rule(
        &mut self,
        value: &MatchParam,
        caps: &Caps,
        set: &ActionTypeSet,
        attr: &ActionsAttr,
    ) -> Result<(RulePlace, Vec<Write>), RuleError> {
        let ctrl = self.format.ctrl();
        let mut stes = vec![0u8; STE_SIZE * (1 + MAX_ADDED)];
        let first = &mut stes[..STE_SIZE];
        ctrl.init(first, self.sb.lu_type, self.rx, self.gvmi);
        set_bit_mask(first, &self.sb.bit_mask);
        let mut tag = [0u8; STE_TAG_SIZE];
        self.sb
            .tag_checked(&mut value.clone(), caps, &mut tag)
            .map_err(RuleError::Tag)?;
        first[STE_CTRL_SIZE..STE_CTRL_SIZE + STE_TAG_SIZE].copy_from_slice(&tag);
        ctrl.set_miss_addr(first, self.end_anchor);
        let outcome = if self.rx {
            action::set_actions_rx(self.format, set, &mut stes, attr)
        } else {
            action::set_actions_tx(self.format, set, &mut stes, attr)
        }
        .map_err(RuleError::Actions)?;
        let added = outcome.added_stes;

        // Each added STE is a 1-entry table of its own, hit by the STE before it.
        let mut addrs = Vec::with_capacity(added);
        for _ in 0..added {
            addrs.push(self.take_line()?);
        }
        let mut writes = Vec::new();
        for i in (1..=added).rev() {
            let mut ste: Ste = [0; STE_SIZE];
            ste.copy_from_slice(&stes[i * STE_SIZE..(i + 1) * STE_SIZE]);
            ctrl.set_miss_addr(&mut ste, self.end_anchor);
            writes.push(self.keep(addrs[i - 1], ste));
            let prev = &mut stes[(i - 1) * STE_SIZE..i * STE_SIZE];
            ctrl.set_hit_addr(prev, addrs[i - 1], 1);
        }
        let mut rule: Ste = [0; STE_SIZE];
        rule.copy_from_slice(&stes[..STE_SIZE]);

        let slot = hash_index(HtblType::Legacy, self.sb.byte_mask, self.entries, &tag);
        let chain = &self.chains[slot as usize];
        let depth = chain.len();
        let prev = chain.last().copied();
        let addr = match prev {
            None => self.htbl + u64::from(slot) * STE_SIZE as u64,
            Some(_) => self.take_line()?,
        };
        writes.push(self.keep(addr, rule));
        if let Some(prev) = prev {
            // Link the new entry behind the chain's last: a control-block update.
            let mut p = self.shadow[&prev];
            ctrl.set_miss_addr(&mut p, addr);
            self.shadow.insert(prev, p);
            writes.push(self.posted(prev, STE_CTRL_SIZE));
        }
        self.chains[slot as usize].push(addr);
        Ok((
            RulePlace {
                ste: addr,
                slot,
                depth,
                added,
            },
            writes,
        ))
    }
}
