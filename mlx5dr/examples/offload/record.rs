//! The recorded run: the example's rule set, scaled down, built on its own simulated
//! device with a [`Recorder`] watching, so that the recording (rdma-core's recording
//! schema: every ICM write, the tables, matchers and rules, where each rule's packets
//! must end, probes) describes exactly this rule set.
//!
//! The recorder is attached right after the domain opens, so it sees every ICM write;
//! each table, matcher and rule is registered right after it is made (the recorder
//! gives a rule the writes made since the previous registration). Then every tenth
//! connection is closed (its two rules removed through the recorder, so the file has
//! deletions whose packets must fall through to the slow path), every live rule gets
//! its expectations, and a few probes (packets that hit and packets that miss) are
//! added. The caller writes the file ([`Recorder::finish`] or [`Recorder::write_to`]).

use std::sync::Arc;

use mlx5dr::device::sim::SimBackend;
use mlx5dr::record::{Recorder, RuleId};
use mlx5dr::{Action, Counter, Device, Domain, DomainType, Matcher, MatcherOptions, Rule, Table};
use sim::profile::DeviceModel;

use crate::ruleset::{self, Conn, CtRule, Flow, L2Key, NO_SERVICE, TCP, UDP};
use crate::steering::{
    ct_mask, ct_value, l2_mask, l2_value, packet_value, CtMatcher, Forwards, Result,
};

/// Every connection whose index is `CLOSED_EVERY - 1` modulo this is closed after the
/// inserts.
pub const CLOSED_EVERY: u32 = 10;

/// A conntrack rule as recorded: `None` once removed.
struct CtRecorded {
    rule: CtRule,
    id: RuleId,
    live: Option<Rule>,
}

/// The recorded run, before its file is written. It holds the device, domain, tables,
/// matchers, counters and live rules, since the file reads the matchers' anchors when
/// it is written.
pub struct Recorded {
    /// The recorder: write the file with [`Recorder::finish`] (its path from
    /// `MLX5DR_RECORD`) or [`Recorder::write_to`].
    pub recorder: Arc<Recorder>,
    /// L2 classifier rules recorded.
    pub l2_rules: usize,
    /// Conntrack rules recorded (live and removed).
    pub ct_rules: usize,
    /// Conntrack rules removed.
    pub removed: usize,
    /// Probes recorded.
    pub probes: usize,
    _objects: Objects,
}

/// What the recording describes, kept alive until it is written.
struct Objects {
    _be: Arc<SimBackend>,
    _dmn: Arc<Domain>,
    _tables: [Arc<Table>; 2],
    _matchers: Vec<Arc<Matcher>>,
    _counters: [Arc<Counter>; 2],
    _rules: Vec<Rule>,
}

impl Recorded {
    /// One line: what was recorded.
    pub fn summary(&self) -> String {
        format!(
            "{} L2 + {} conntrack rules, {} of them removed, {} probes, {} ICM writes",
            self.l2_rules,
            self.ct_rules,
            self.removed,
            self.probes,
            self.recorder.num_writes()
        )
    }
}

/// `ceil(log2(n))`, at least 1.
fn log2_ceil(n: u32) -> u8 {
    n.max(2).next_power_of_two().trailing_zeros() as u8
}

/// Builds the rule set with the first `connections` connections (`2 × connections`
/// conntrack rules, half in each matcher) on a new simulated ConnectX-6 Dx, recorded
/// by the recorder `start` attaches to the new domain; `None` if `start` gives none
/// (`mlx5dr::record::from_env` without `MLX5DR_RECORD`). Each conntrack matcher is split
/// into `shards` shards (`MatcherOptions::shards`; the example runs with 1).
pub fn record(
    connections: u32,
    shards: u8,
    start: impl FnOnce(&Arc<Domain>) -> Option<Arc<Recorder>>,
) -> Result<Option<Recorded>> {
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::Fdb)?;
    let Some(rec) = start(&dmn) else {
        return Ok(None);
    };
    rec.describe(
        "offload",
        &format!(
            "mlx5dr's offload example, scaled to {connections} connections: an FDB domain \
             on a simulated ConnectX-6 Dx. Table 1 (level 1), the L2 classifier: in_port, \
             dmac and VLAN id -> own counter, goto table 2. Table 2 (level 2), conntrack: \
             one matcher per protocol (TCP, UDP), in_port and IPv4 5-tuple -> own counter, \
             forward to a VF's vport or the uplink; two rules per connection. Then every \
             {CLOSED_EVERY}th connection is closed (its rules removed). Misses go to the \
             e-switch manager's vport."
        ),
    );

    let l2_table = Table::new(&dmn, 1)?;
    rec.table(&l2_table)?;
    let ct_table = Table::new(&dmn, 2)?;
    rec.table(&ct_table)?;
    let l2 = Matcher::new(&l2_table, &l2_mask(), MatcherOptions::default())?;
    rec.matcher(&l2)?;
    // Each protocol has half the connections, two rules each: presized for them, as
    // the timed run presizes for its 50 000.
    let sized = MatcherOptions {
        expected_log_rules: log2_ceil(connections),
        shards,
        ..MatcherOptions::default()
    };
    let mut ct = Vec::new();
    for (name, proto) in [("TCP", TCP), ("UDP", UDP)] {
        let matcher = Matcher::new(&ct_table, &ct_mask(proto), sized)?;
        rec.matcher(&matcher)?;
        ct.push(CtMatcher {
            name,
            proto,
            matcher,
        });
    }
    let l2_counters = Counter::alloc(&dmn, 3)?;
    let ct_counters = Counter::alloc(&dmn, log2_ceil(2 * connections))?;

    // Table 1, each rule registered right after its insert.
    let goto_ct = Action::goto_table(&ct_table);
    let mut l2_rules: Vec<(L2Key, RuleId, Rule)> = Vec::new();
    for (key, offset) in ruleset::l2_rules() {
        let counter = Action::counter(&l2_counters, offset)?;
        let acts = l2.actions(&[counter, goto_ct.clone()])?;
        let value = l2_value(key);
        let rule = l2.insert(&value, &acts)?;
        let id = rec.rule(&rule, &value.to_raw()?.param)?;
        l2_rules.push((key, id, rule));
    }

    // Table 2, matcher by matcher.
    let fwd = Forwards::new(&dmn)?;
    let mut ct_rules: Vec<CtRecorded> = Vec::new();
    for m in &ct {
        for r in ruleset::ct_rules(m.proto, connections) {
            let counter = Action::counter(&ct_counters, r.counter_offset)?;
            let acts = m.matcher.actions(&[counter, fwd.to(r.to)?.clone()])?;
            let value = ct_value(&r.flow);
            let rule = m.matcher.insert(&value, &acts)?;
            let id = rec.rule(&rule, &value.to_raw()?.param)?;
            ct_rules.push(CtRecorded {
                rule: r,
                id,
                live: Some(rule),
            });
        }
    }

    // Closed connections.
    let mut removed = 0;
    for c in &mut ct_rules {
        if c.rule.conn % CLOSED_EVERY == CLOSED_EVERY - 1 {
            if let Some(rule) = c.live.take() {
                rec.remove(c.id, rule)?;
                removed += 1;
            }
        }
    }

    // The rule set is final: expectations of every live rule.
    for (_, id, rule) in &l2_rules {
        rec.expect_for(*id, rule)?;
    }
    for c in &ct_rules {
        if let Some(rule) = &c.live {
            rec.expect_for(c.id, rule)?;
        }
    }

    // Probes: whole packets (L2 and conntrack fields) into either table.
    let l2_rule = |f: &Flow| {
        l2_rules
            .iter()
            .find(|(k, _, _)| *k == f.l2_key())
            .map(|(_, id, rule)| (*id, rule))
            .ok_or_else(|| format!("no L2 rule for {f:?}"))
    };
    let ct_rule = |f: &Flow| {
        ct_rules
            .iter()
            .find(|c| c.rule.flow == *f)
            .and_then(|c| Some((c.id, c.live.as_ref()?)))
            .ok_or_else(|| format!("no live conntrack rule for {f:?}"))
    };
    let open = Conn::nth(0).inbound();
    let from_vm = Conn::nth(1).outbound();
    let mut new_conn = Conn::nth(2).outbound();
    new_conn.dport = NO_SERVICE;
    let mut unknown_mac = Conn::nth(3).inbound();
    unknown_mac.dmac = [0x02, 0, 0, 0, 0, 0x77];
    let mut probes = 0;
    let mut probe = |what: &str, table: &Arc<Table>, flow: &Flow, expected| -> Result<()> {
        let value = packet_value(flow).to_raw()?;
        rec.probe(what, table, &value.param, expected)?;
        probes += 1;
        Ok(())
    };
    probe(
        "an established connection's packet from the wire into table 1: its L2 rule",
        &l2_table,
        &open,
        Some(l2_rule(&open)?),
    )?;
    probe(
        "the same packet into table 2: its conntrack rule, to the VM's vport",
        &ct_table,
        &open,
        Some(ct_rule(&open)?),
    )?;
    probe(
        "an established connection's packet from a VM into table 2: to the uplink",
        &ct_table,
        &from_vm,
        Some(ct_rule(&from_vm)?),
    )?;
    probe(
        "a new connection (a port no connection uses) into table 2: the slow path",
        &ct_table,
        &new_conn,
        None,
    )?;
    probe(
        "an unknown destination MAC into table 1: the slow path",
        &l2_table,
        &unknown_mac,
        None,
    )?;
    let closed = CLOSED_EVERY - 1;
    if closed < connections {
        probe(
            "a closed connection's packet into table 2: the slow path",
            &ct_table,
            &Conn::nth(closed).inbound(),
            None,
        )?;
    }

    let l2_count = l2_rules.len();
    let ct_count = ct_rules.len();
    let mut live: Vec<Rule> = l2_rules.into_iter().map(|(_, _, r)| r).collect();
    live.extend(ct_rules.into_iter().filter_map(|c| c.live));
    Ok(Some(Recorded {
        recorder: rec,
        l2_rules: l2_count,
        ct_rules: ct_count,
        removed,
        probes,
        _objects: Objects {
            _be: be,
            _dmn: dmn,
            _tables: [l2_table, ct_table],
            _matchers: std::iter::once(l2)
                .chain(ct.into_iter().map(|m| m.matcher))
                .collect(),
            _counters: [l2_counters, ct_counters],
            _rules: live,
        },
    }))
}
