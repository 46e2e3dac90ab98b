//! Hop-by-hop traces of packets through the simulator, each STE named after the driver
//! object it belongs to: a table's root anchor, a matcher's end anchor, or a lookup of a
//! matcher's hash tables.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use mlx5dr::{DomainSide, Matcher, Table};
use sim::endpoint::Terminal;
use sim::pipeline::{Action as SimAction, Hop, Outcome};
use sim::{Delivery, Fate, Stage};

use crate::ruleset::SLOW_PATH;

/// Names for ICM addresses and lookup types, gathered from the driver's objects.
#[derive(Debug, Default)]
pub struct Names {
    /// Anchor STE address -> name (table roots, matcher end anchors).
    anchors: HashMap<u64, String>,
    /// Matcher start-table address -> the matcher's name.
    starts: HashMap<u64, String>,
    /// Lookup type -> the lookup's (builder's) name.
    lookups: HashMap<u16, String>,
}

const SIDES: [DomainSide; 2] = [DomainSide::FdbRx, DomainSide::FdbTx];

impl Names {
    /// Names a table's root anchors.
    pub fn table(&mut self, t: &Arc<Table>, name: &str) {
        for a in SIDES.iter().filter_map(|&s| t.root_addr(s)) {
            self.anchors.insert(a, format!("{name} root anchor"));
        }
    }

    /// Names a matcher's start tables, end anchors and lookups.
    pub fn matcher(&mut self, m: &Arc<Matcher>, name: &str) {
        for side in SIDES {
            if let Some((start, end)) = m.anchors(side) {
                self.starts.insert(start, name.to_string());
                self.anchors.insert(end, format!("{name} end anchor"));
            }
            for b in m.chain(side).map_or(&[][..], |c| c.builders()) {
                self.lookups.insert(b.lu_type, b.kind.to_string());
            }
        }
    }
}

/// Prints the trace of one delivered copy: one line per STE, then where it ended.
pub fn print(d: &Delivery, names: &Names) {
    // The matcher whose tables the walk is in: set at its start table, left at an
    // anchor.
    let mut matcher: Option<&str> = None;
    for stage in &d.stages {
        match stage {
            Stage::Firmware(hops) => {
                for h in hops {
                    match h.flow_index {
                        Some(i) => println!("    firmware table {:#x}: entry {i}", h.table_id),
                        None => println!("    firmware table {:#x}: no entry", h.table_id),
                    }
                }
            }
            Stage::Software { verdict, .. } => {
                for h in &verdict.trace {
                    let line = if let Some(a) = names.anchors.get(&h.addr) {
                        matcher = None;
                        hop_line(h, a, true)
                    } else {
                        if let Some(m) = names.starts.get(&h.table.base) {
                            matcher = Some(m);
                        }
                        hop_line(h, &lookup_name(h, matcher, names), false)
                    };
                    println!("    {line}");
                }
            }
        }
    }
    match &d.fate {
        Fate::Delivered(t) => {
            let counters: Vec<String> = d.counters.iter().map(|c| format!("{c:#x}")).collect();
            println!(
                "    => {}; counted by [{}]",
                terminal(*t),
                counters.join(", ")
            );
        }
        Fate::Fault(why) => println!("    => FAULT: {why}"),
    }
}

/// Where a packet ended, in words.
pub fn terminal(t: Terminal) -> String {
    match t {
        Terminal::Vport(SLOW_PATH) => {
            format!("vport {SLOW_PATH}, the e-switch manager (slow path)")
        }
        Terminal::Vport(v) => format!("VF vport {v}"),
        Terminal::Uplink => "the uplink".to_string(),
        other => format!("{other:?}"),
    }
}

/// "matcher: lookup (N slots)".
fn lookup_name(h: &Hop, matcher: Option<&str>, names: &Names) -> String {
    let lookup = names
        .lookups
        .get(&h.lu_type)
        .cloned()
        .unwrap_or_else(|| format!("lookup {:#06x}", h.lu_type));
    let mut s = match matcher {
        Some(m) => format!("{m}: {lookup}"),
        None => lookup,
    };
    let n = h.table.num_entries;
    let _ = write!(s, " ({n} slot{})", if n == 1 { "" } else { "s" });
    s
}

/// One STE: address, what it is, hit or miss and where to, the actions it executed.
fn hop_line(h: &Hop, what: &str, anchor: bool) -> String {
    let (outcome, next) = match h.outcome {
        Outcome::Hit { next } => ("hit ", next),
        // An unused hash-table slot has no mask: every packet misses it.
        Outcome::Miss { next } if !h.masked && !anchor => ("miss (empty slot)", next),
        Outcome::Miss { next } => ("miss", next),
    };
    let mut line = format!("{:#011x}  {what:<50} {outcome} -> {next:#011x}", h.addr);
    for a in &h.actions {
        match a {
            SimAction::Counter(id) => {
                let _ = write!(line, "  count {id:#x}");
            }
            other => {
                let _ = write!(line, "  {other:?}");
            }
        }
    }
    line
}
