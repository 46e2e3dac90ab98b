//! The correctness checks around the timed phases: packets built from rule values walk
//! the simulator's ICM, so an engine that is fast because it skipped work cannot pass.
//!
//! Every packet enters at table 1's firmware table, whose SW-owned root leads into the
//! matchers. A rule's packet must hit the rule's last STE (the address its handle
//! reports), end dropped (NIC RX drops what misses too, so the hit is what tells), and
//! pass table 2's root exactly when the rule's action is the goto. A value never
//! inserted must hit no rule's last STE and never reach table 2; after every rule is
//! deleted, no packet may hit any rule STE at all.

use std::collections::HashSet;
use std::sync::Arc;

use sim::endpoint::Terminal;
use sim::packet::{build_from_match, Metadata, Side};
use sim::pipeline::walk::{Hop, Outcome};
use sim::{Entry, Fate, Stage};
use ste_builder::MatchParam;

/// Sends packets into table 1 of a simulated device.
pub struct Prober {
    sim: Arc<sim::Device>,
    table: u32,
    goto_root: u64,
}

/// One packet's way: how it ended and every STE it visited.
struct Walk {
    fate: Fate,
    hops: Vec<Hop>,
}

impl Walk {
    fn hit_at(&self, addr: u64) -> bool {
        self.hops
            .iter()
            .any(|h| h.addr == addr && matches!(h.outcome, Outcome::Hit { .. }))
    }

    /// True when the walk went through the STE at `addr` or was sent there.
    fn reached(&self, addr: u64) -> bool {
        self.hops
            .iter()
            .any(|h| h.addr == addr || matches!(h.outcome, Outcome::Hit { next } if next == addr))
    }

    fn dropped(&self) -> Result<(), String> {
        match &self.fate {
            Fate::Delivered(Terminal::Drop) => Ok(()),
            other => Err(format!("ended {other:?}, not dropped")),
        }
    }
}

impl Prober {
    /// Packets enter the firmware table `table` (table 1's id); `goto_root` is table 2's
    /// root anchor, where goto rules lead.
    pub fn new(sim: Arc<sim::Device>, table: u32, goto_root: u64) -> Prober {
        Prober {
            sim,
            table,
            goto_root,
        }
    }

    fn walk(&self, value: &MatchParam) -> Result<Walk, String> {
        let pkt = build_from_match(value, Metadata::new(Side::Rx))
            .map_err(|e| format!("building the packet: {e}"))?;
        let out = self
            .sim
            .process(pkt, Entry::Table(self.table))
            .map_err(|e| format!("processing: {e}"))?;
        let [d] = &out[..] else {
            return Err(format!("{} copies of the packet, not one", out.len()));
        };
        let hops = d
            .stages
            .iter()
            .flat_map(|s| match s {
                Stage::Software { verdict, .. } => verdict.trace.clone(),
                Stage::Firmware(_) => Vec::new(),
            })
            .collect();
        Ok(Walk {
            fate: d.fate.clone(),
            hops,
        })
    }

    /// The packet of an installed rule hits its last STE at `rule_addr`, is dropped, and
    /// went on to table 2 exactly when `goto`.
    pub fn expect_hit(&self, value: &MatchParam, rule_addr: u64, goto: bool) -> Result<(), String> {
        let w = self.walk(value)?;
        w.dropped()?;
        if !w.hit_at(rule_addr) {
            return Err(format!("did not hit the rule's STE at {rule_addr:#x}"));
        }
        if w.reached(self.goto_root) != goto {
            return Err(format!(
                "{} table 2, but the rule's action is {}",
                if goto { "never reached" } else { "reached" },
                if goto { "goto table 2" } else { "drop" }
            ));
        }
        Ok(())
    }

    /// The packet of a value no rule has hits none of the rules' last STEs
    /// (`rule_addrs`) and never reaches table 2.
    pub fn expect_no_rule(
        &self,
        value: &MatchParam,
        rule_addrs: &HashSet<u64>,
    ) -> Result<(), String> {
        let w = self.walk(value)?;
        w.dropped()?;
        if let Some(h) = w
            .hops
            .iter()
            .find(|h| matches!(h.outcome, Outcome::Hit { .. }) && rule_addrs.contains(&h.addr))
        {
            return Err(format!("hit the rule STE at {:#x}", h.addr));
        }
        if w.reached(self.goto_root) {
            return Err("reached table 2".into());
        }
        Ok(())
    }

    /// With every rule deleted, the packet hits no rule STE (any STE with a mask) and
    /// never reaches table 2.
    pub fn expect_gone(&self, value: &MatchParam) -> Result<(), String> {
        let w = self.walk(value)?;
        w.dropped()?;
        if let Some(h) = w
            .hops
            .iter()
            .find(|h| h.masked && matches!(h.outcome, Outcome::Hit { .. }))
        {
            return Err(format!("still hit a rule STE at {:#x}", h.addr));
        }
        if w.reached(self.goto_root) {
            return Err("still reached table 2".into());
        }
        Ok(())
    }
}

/// Results of one kind of check.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Packets checked.
    pub checked: usize,
    /// Packets that failed.
    pub failed: usize,
    /// The first failures, described.
    pub first: Vec<String>,
}

impl Tally {
    /// Counts one check's result; `what` names the packet.
    pub fn count(&mut self, what: impl FnOnce() -> String, r: Result<(), String>) {
        self.checked += 1;
        if let Err(e) = r {
            self.failed += 1;
            if self.first.len() < 5 {
                self.first.push(format!("{}: {e}", what()));
            }
        }
    }
}
