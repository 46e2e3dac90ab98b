//! The driver's side of a case: a domain on a simulated device, its tables, action
//! handles, matchers and rules, and packets sent through the simulator.

use std::collections::HashMap;
use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::Packet;
use ::sim::profile::DeviceModel;
use ::sim::{Delivery, Entry, Fate};
use mlx5dr::action::{Tir, TirSpec};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::{Action, ActionList, Counter, Device, Domain, DomainType, Matcher, Rule, Table};

use super::reference::{RefActions, RefFate, Verdict};
use super::shapes::{Dom, VPORTS};

/// Counters in the case's bulk (rules pick one by offset).
pub const LOG_COUNTERS: u8 = 7;

/// An installed rule: its handles (more than one when identical duplicates share it)
/// and whether its counter action comes after its fate in its list.
pub struct Installed {
    pub handles: Vec<Rule>,
    pub counter_last: bool,
}

/// The driver's objects of a case.
pub struct Rig {
    pub be: Arc<SimBackend>,
    pub tables: Vec<Arc<Table>>,
    pub counter: Arc<Counter>,
    drop: Arc<Action>,
    miss: Arc<Action>,
    gotos: Vec<Arc<Action>>,
    /// The destinations of the domain besides drop and the default (TIRs on NIC RX,
    /// vports and the uplink on FDB), with the terminal the simulator reports for them.
    pub dests: Vec<(Terminal, Arc<Action>)>,
    /// Action lists by table, actions and counter position: made once, then shared.
    lists: HashMap<(usize, RefActions, bool), Arc<ActionList>>,
    /// Matchers by id.
    pub matchers: HashMap<usize, Arc<Matcher>>,
    /// Rules by id.
    pub rules: HashMap<usize, Installed>,
}

impl Rig {
    /// A domain of type `dom` on a fresh simulated `model`, with tables at `levels`, a
    /// counter bulk, and the destinations the domain has.
    pub fn new(model: DeviceModel, dom: Dom, levels: &[u8]) -> Rig {
        let be = Arc::new(SimBackend::of_model(model));
        let dev: Arc<dyn Device> = be.clone();
        let ty = match dom {
            Dom::NicRx => DomainType::NicRx,
            Dom::NicTx => DomainType::NicTx,
            Dom::Fdb => DomainType::Fdb,
        };
        let dmn = Domain::open(dev, ty).expect("domain");
        let tables: Vec<_> = levels
            .iter()
            .map(|&l| Table::new(&dmn, l).expect("table"))
            .collect();
        let counter = Counter::alloc(&dmn, LOG_COUNTERS).expect("counter bulk");
        let mut dests = Vec::new();
        match dom {
            Dom::NicRx => {
                for rqn in 1..=2 {
                    let spec = TirSpec {
                        transport_domain: 0,
                        inline_rqn: rqn,
                    };
                    // The action holds the TIR.
                    let tir = Tir::create(&dmn, spec).expect("tir");
                    let a = Action::dest_tir(&tir).expect("tir action");
                    dests.push((Terminal::Tir(tir.tirn()), a));
                }
            }
            Dom::NicTx => {}
            Dom::Fdb => {
                for v in VPORTS {
                    let v = v as u16;
                    let a = Action::dest_vport(&dmn, v).expect("vport action");
                    dests.push((Terminal::Vport(v), a));
                }
                let a = Action::dest_uplink(&dmn).expect("uplink action");
                dests.push((Terminal::Uplink, a));
            }
        }
        Rig {
            gotos: tables.iter().map(Action::goto_table).collect(),
            be,
            tables,
            counter,
            drop: Action::drop(),
            miss: Action::default_miss(),
            dests,
            lists: HashMap::new(),
            matchers: HashMap::new(),
            rules: HashMap::new(),
        }
    }

    /// The action list of `acts` for rules of `matcher` in table `table`: tag, counter,
    /// fate, or with `counter_last` (and a fate) tag, fate, counter.
    pub fn list(
        &mut self,
        table: usize,
        matcher: &Arc<Matcher>,
        acts: RefActions,
        counter_last: bool,
    ) -> Result<Arc<ActionList>, String> {
        let counter_last = counter_last_in(acts, counter_last);
        if let Some(l) = self.lists.get(&(table, acts, counter_last)) {
            return Ok(Arc::clone(l));
        }
        let mut v = Vec::new();
        if let Some(tag) = acts.tag {
            v.push(Action::flow_tag(tag).map_err(|e| e.to_string())?);
        }
        let counter = acts
            .counter
            .map(|c| Action::counter(&self.counter, c))
            .transpose()
            .map_err(|e| e.to_string())?;
        let fate = match acts.fate {
            RefFate::None => None,
            RefFate::DefaultMiss => Some(Arc::clone(&self.miss)),
            RefFate::Drop => Some(Arc::clone(&self.drop)),
            RefFate::Goto(t) => Some(Arc::clone(&self.gotos[t])),
            RefFate::To(t) => {
                let d = self.dests.iter().find(|d| d.0 == t).expect("destination");
                Some(Arc::clone(&d.1))
            }
        };
        if !counter_last {
            v.extend(counter.clone());
        }
        v.extend(fate);
        if counter_last {
            v.extend(counter);
        }
        let l = matcher
            .actions(&v)
            .map_err(|e| format!("action list {acts:?}: {e}"))?;
        self.lists
            .insert((table, acts, counter_last), Arc::clone(&l));
        Ok(l)
    }

    /// Sends `packet` into the first table: its verdict (counters as offsets in the
    /// bulk), and the simulator's deliveries for a report.
    pub fn classify(&self, packet: Packet) -> Result<(Verdict, Vec<Delivery>), String> {
        // Matchers that queue their updates ring no doorbell: the device sees them now.
        self.tables[0]
            .domain()
            .flush()
            .map_err(|e| format!("flush: {e}"))?;
        let out = self
            .be
            .sim()
            .process(packet, Entry::Table(self.tables[0].fw_id()))
            .map_err(|e| format!("process: {e}"))?;
        let [d] = &out[..] else {
            return Err(format!("{} deliveries: {out:?}", out.len()));
        };
        let Fate::Delivered(fate) = d.fate else {
            return Err(format!("fault: {:?}; stages {:?}", d.fate, d.stages));
        };
        let base = self.counter.id();
        let v = Verdict {
            fate,
            tag: d.packet.meta.flow_tag,
            counters: d.counters.iter().map(|&c| c.wrapping_sub(base)).collect(),
        };
        Ok((v, out))
    }
}

/// Whether the counter really follows the fate in the list of `acts`: only when there
/// are both.
pub fn counter_last_in(acts: RefActions, counter_last: bool) -> bool {
    counter_last && acts.counter.is_some() && acts.fate != RefFate::None
}
