//! The main job: an OVS-offload-shaped rule set on a simulated ConnectX-6 Dx.
//!
//! `cargo run --release -p mlx5dr --example offload`
//!
//! OVS offloads its datapath flows into the e-switch: the FDB domain, where packets
//! from the uplink and from the VFs' vports are steered to one another. The simulator's
//! default ConnectX-6 Dx profile is an e-switch manager with vports 1..=4, so that is
//! the domain used here (rules match the ingress port and forward to vports), rather
//! than NIC RX with TIRs and flow tags. [`ruleset`] describes the ports, the
//! connections and the two tables; this file
//!
//! 1. installs the rule set and reports insert rates: each conntrack matcher filled by
//!    one thread, then every conntrack rule removed, then all re-inserted by two
//!    threads, one per matcher;
//! 2. reports the steering ICM (the domain's pool) and the hash tables' host memory;
//! 3. sends 10 000 packets (established connections, new connections, unknown L2
//!    destinations) through the simulator into table 1, checks each one's destination
//!    and counters against [`ruleset::Model`], and reads every flow counter back against
//!    the packets sent;
//! 4. prints the STE-by-STE trace of one packet that hits and one that misses.
//!
//! With `MLX5DR_RECORD=<path>` it also writes a recording of the rule set (ICM writes,
//! tables, matchers, rules, expectations, probes) in the schema of rdma-core's
//! recordings, from a separate small run ([`record`]), between steps 2 and 3.
//!
//! It exits with status 1 if any check fails.

mod record;
mod ruleset;
mod steering;
mod trace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mlx5dr::device::sim::SimBackend;
use mlx5dr::{Action, Counter, Device, Domain, DomainType, Matcher, MatcherOptions, Rule, Table};
use sim::endpoint::Terminal;
use sim::packet::{build_from_match, Metadata, Packet, Side};
use sim::profile::DeviceModel;
use sim::{Delivery, Entry, Fate};
use ste_builder::ste::STE_SIZE;

use ruleset::{Conn, Flow, Model, Verdict, NO_SERVICE, SLOW_PATH, TCP, UDP, UPLINK};
use steering::{ct_mask, ct_value, l2_mask, l2_value, packet_value, CtMatcher, Forwards, Result};

/// Established connections; each is two conntrack rules (one per direction).
const CONNECTIONS: u32 = 50_000;
/// Packets sent; the first [`NEW_CONNECTIONS`] belong to no connection, the next
/// [`UNKNOWN_L2`] to no L2 rule, the rest to established connections.
const PACKETS: u32 = 10_000;
const NEW_CONNECTIONS: u32 = 1_000;
const UNKNOWN_L2: u32 = 1_000;
/// Each conntrack matcher expects its 50 000 rules: 2^16.
const CT_EXPECTED_LOG_RULES: u8 = 16;
/// Connections in the recorded run (`MLX5DR_RECORD`): few enough for a file of a few
/// MB that a checker walks in seconds.
const RECORDED_CONNECTIONS: u32 = 1_000;

/// The offloaded datapath: device, domain, tables, counters, matchers, rules, and the
/// model of what they do.
struct Offload {
    be: Arc<SimBackend>,
    dmn: Arc<Domain>,
    l2_table: Arc<Table>,
    ct_table: Arc<Table>,
    l2_counters: Arc<Counter>,
    ct_counters: Arc<Counter>,
    l2: Arc<Matcher>,
    ct: Vec<CtMatcher>,
    l2_rules: Vec<Rule>,
    /// Per conntrack matcher, its rules.
    ct_rules: Vec<Vec<Rule>>,
    model: Model,
}

fn main() -> Result<()> {
    let t0 = Instant::now();
    let mut o = Offload::new()?;
    println!(
        "mlx5dr offload demo: simulated {:?} ({}), FDB domain: uplink + VF vports {:?}",
        o.be.sim().profile().model,
        o.dmn.format(),
        ruleset::VFS
    );
    println!();
    o.install()?;
    println!();
    o.print_memory();
    record_if_asked()?;

    let mut checks = Checks::default();
    println!();
    o.send_traffic(&mut checks)?;
    o.print_traces(&mut checks)?;
    println!();
    println!("total wall time {:.2} s", t0.elapsed().as_secs_f64());
    if checks.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

impl Offload {
    /// The device, the FDB domain, both tables, the counters and the (empty) matchers.
    fn new() -> Result<Offload> {
        let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open(dev, DomainType::Fdb)?;
        let l2_table = Table::new(&dmn, 1)?;
        let ct_table = Table::new(&dmn, 2)?;
        let l2 = Matcher::new(&l2_table, &l2_mask(), MatcherOptions::default())?;
        let big = MatcherOptions {
            expected_log_rules: CT_EXPECTED_LOG_RULES,
            ..MatcherOptions::default()
        };
        let mut ct = Vec::new();
        for (name, proto) in [("TCP", TCP), ("UDP", UDP)] {
            ct.push(CtMatcher {
                name,
                proto,
                matcher: Matcher::new(&ct_table, &ct_mask(proto), big)?,
            });
        }
        Ok(Offload {
            l2_counters: Counter::alloc(&dmn, 3)?,
            ct_counters: Counter::alloc(&dmn, 17)?,
            be,
            dmn,
            l2_table,
            ct_table,
            l2,
            ct,
            l2_rules: Vec::new(),
            ct_rules: Vec::new(),
            model: Model::default(),
        })
    }

    /// Installs the rule set, printing the insert (and remove) rates.
    fn install(&mut self) -> Result<()> {
        println!(
            "{:<46} {:>8} {:>9} {:>10}",
            "inserts (value + own action list + insert)", "rules", "wall ms", "rules/s"
        );
        // Table 1.
        let goto_ct = Action::goto_table(&self.ct_table);
        let start = Instant::now();
        for (key, offset) in ruleset::l2_rules() {
            let counter = Action::counter(&self.l2_counters, offset)?;
            let acts = self.l2.actions(&[counter, goto_ct.clone()])?;
            self.l2_rules.push(self.l2.insert(&l2_value(key), &acts)?);
            self.model.add_l2(key, self.l2_counters.id() + offset);
        }
        let line = "table 1 L2 classifier, 1 thread";
        rate_line(line, self.l2_rules.len(), start.elapsed());

        // Table 2, each matcher filled by one thread in turn.
        let fwd = Forwards::new(&self.dmn)?;
        for m in &self.ct {
            let start = Instant::now();
            let rules = insert_conntrack(m, &self.ct_counters, &fwd, Some(&mut self.model))?;
            let line = format!("table 2 conntrack {}, 1 thread", m.name);
            rate_line(&line, rules.len(), start.elapsed());
            self.ct_rules.push(rules);
        }

        // Then all of them out (dropping a rule removes it), and back in by two
        // threads, one per matcher: the same rules, so the model stays right.
        let removed: usize = self.ct_rules.iter().map(Vec::len).sum();
        let start = Instant::now();
        self.ct_rules.clear();
        rate_line("table 2 remove all, 1 thread", removed, start.elapsed());
        let start = Instant::now();
        let filled: Vec<(Vec<Rule>, Duration)> = std::thread::scope(|s| {
            let workers: Vec<_> = self
                .ct
                .iter()
                .map(|m| {
                    let (counters, fwd) = (&self.ct_counters, &fwd);
                    s.spawn(move || {
                        let start = Instant::now();
                        let rules = insert_conntrack(m, counters, fwd, None)?;
                        Ok((rules, start.elapsed()))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().map_err(|_| "an insert thread panicked")?)
                .collect::<Result<_>>()
        })?;
        let took = start.elapsed();
        for (m, (rules, took)) in self.ct.iter().zip(&filled) {
            let line = format!("  conntrack {}, its own thread", m.name);
            rate_line(&line, rules.len(), *took);
        }
        self.ct_rules = filled.into_iter().map(|(r, _)| r).collect();
        let installed: usize = self.ct_rules.iter().map(Vec::len).sum();
        rate_line("table 2 re-insert all, 2 threads", installed, took);
        Ok(())
    }

    /// Per matcher: rules, STEs, the ICM of its hash tables and the host memory of
    /// their records; then the domain's steering ICM pool.
    fn print_memory(&self) {
        println!(
            "{:<26} {:>8} {:>7} {:>8} {:>10} {:>9} {:>11}",
            "memory", "rules", "STEs", "ICM MiB", "ICM B/rule", "host KiB", "host B/rule"
        );
        let mut matchers = vec![("table 1 L2 classifier".to_string(), &self.l2)];
        for c in &self.ct {
            matchers.push((format!("table 2 conntrack {}", c.name), &c.matcher));
        }
        for (name, m) in matchers {
            let st = m.stats();
            // An FDB rule that matches the ingress port lives on one side only, so the
            // sides' counts add up.
            let (rules, stes, entries) = st.sides.iter().fold((0, 0, 0), |(r, s, e), (_, h)| {
                let entries = h.table_entries + h.collision_entries;
                (r + h.rules, s + h.stes, e + entries)
            });
            let icm = entries * STE_SIZE as u64;
            let host = st.host_bytes() as f64;
            println!(
                "{name:<26} {rules:>8} {stes:>7} {:>8.1} {:>10.0} {:>9.0} {:>11.0}",
                mib(icm),
                icm as f64 / rules.max(1) as f64,
                host / 1024.0,
                host / rules.max(1) as f64,
            );
        }
        let pool = self.dmn.ste_pool().stats();
        println!(
            "steering ICM pool: {:.1} MiB held from the device ({} regions); in use: {:.1} MiB \
             in hash tables,\n  {:.1} MiB in collision-entry blocks",
            mib(pool.allocated_bytes),
            pool.regions,
            mib(pool.chunk_bytes),
            mib(pool.slab_bytes),
        );
        println!(
            "host memory outside the hash tables: the caller's {} B Rule handle and action list \
             per rule",
            std::mem::size_of::<Rule>()
        );
    }

    /// Sends the packets, checks every verdict and counter, prints the results.
    fn send_traffic(&self, checks: &mut Checks) -> Result<()> {
        let mut sent = Vec::with_capacity(PACKETS as usize);
        let mut rng = XorShift(0x5eed_0ff1_0ad0_0001);
        for i in 0..PACKETS {
            let conn = Conn::nth(rng.below(CONNECTIONS));
            let mut flow = if rng.below(2) == 0 {
                conn.outbound()
            } else {
                conn.inbound()
            };
            if i < NEW_CONNECTIONS {
                // The same hosts, a service they have no connection to.
                if flow.port == UPLINK {
                    flow.sport = NO_SERVICE;
                } else {
                    flow.dport = NO_SERVICE;
                }
            } else if i < NEW_CONNECTIONS + UNKNOWN_L2 {
                // A destination MAC no VM has, or the wrong VLAN.
                if i % 2 == 0 {
                    flow.dmac = [0x02, 0, 0, 0, 0, 0x77];
                } else {
                    flow.vlan += 10;
                }
            }
            let want = self.model.predict(&flow);
            let packet = packet(&flow)?;
            let len = packet.len() as u64;
            checks.packet(&self.process(packet)?, &want);
            sent.push((want, len));
        }
        let fast = sent
            .iter()
            .filter(|(w, _)| w.terminal != Terminal::Vport(SLOW_PATH))
            .count();
        println!(
            "traffic: {PACKETS} packets into table 1: {fast} on established connections, {} to \
             the slow path",
            sent.len() - fast
        );
        println!("  ({NEW_CONNECTIONS} new connections, {UNKNOWN_L2} with an unknown MAC or VLAN)");
        println!(
            "  verdict checks (each packet's destination and counters vs the model): {} \
             passed, {} failed",
            checks.passed, checks.failed
        );
        let l2_len = ruleset::l2_rules().len() as u32;
        for (bulk, n, name) in [
            (&self.l2_counters, l2_len, "L2"),
            (&self.ct_counters, 2 * CONNECTIONS, "conntrack"),
        ] {
            let differ = check_counters(bulk, n, &sent)?;
            println!("  {name} counters read back: {n}, {differ} differ from the packets sent");
            checks.failed += differ;
        }
        if let Some(m) = &checks.first_failure {
            println!("  first failure: {m}");
        }
        Ok(())
    }

    /// Traces an established connection's packet from the wire, and a new connection's
    /// packet from a VM (checked against the model too).
    fn print_traces(&self, checks: &mut Checks) -> Result<()> {
        let mut names = trace::Names::default();
        names.table(&self.l2_table, "table 1");
        names.table(&self.ct_table, "table 2");
        names.matcher(&self.l2, "L2");
        for m in &self.ct {
            names.matcher(&m.matcher, &format!("conntrack {}", m.name));
        }
        let hit = Conn::nth(7).inbound();
        let mut miss = Conn::nth(8).outbound();
        miss.dport = NO_SERVICE;
        for (what, flow) in [("hit", hit), ("miss", miss)] {
            println!();
            println!("trace ({what}): {}", describe(&flow));
            let out = self.process(packet(&flow)?)?;
            for d in &out {
                trace::print(d, &names);
            }
            let want = self.model.predict(&flow);
            if !checks.packet(&out, &want) {
                println!(
                    "    but the model predicts {}",
                    trace::terminal(want.terminal)
                );
            }
        }
        Ok(())
    }

    /// A packet through the simulator, entering at table 1's firmware flow table.
    fn process(&self, packet: Packet) -> Result<Vec<Delivery>> {
        let entry = Entry::Table(self.l2_table.fw_id());
        Ok(self.be.sim().process(packet, entry)?)
    }
}

/// A packet with `flow`'s headers arriving on its port: from the uplink on the RX side
/// of the e-switch, from a VF on the TX side.
fn packet(f: &Flow) -> Result<Packet> {
    let value = packet_value(f).to_raw()?;
    let side = if f.port == UPLINK { Side::Rx } else { Side::Tx };
    Ok(build_from_match(&value.param, Metadata::new(side))?)
}

/// Installs both directions of every connection of `m`'s protocol
/// ([`ruleset::ct_rules`]), each rule with its own counter and the forward its
/// direction needs; records them in `model` if given.
fn insert_conntrack(
    m: &CtMatcher,
    counters: &Arc<Counter>,
    fwd: &Forwards,
    mut model: Option<&mut Model>,
) -> Result<Vec<Rule>> {
    let mut rules = Vec::with_capacity(CONNECTIONS as usize);
    for r in ruleset::ct_rules(m.proto, CONNECTIONS) {
        let counter = Action::counter(counters, r.counter_offset)?;
        let acts = m.matcher.actions(&[counter, fwd.to(r.to)?.clone()])?;
        rules.push(m.matcher.insert(&ct_value(&r.flow), &acts)?);
        if let Some(model) = model.as_deref_mut() {
            model.add_ct(&r.flow, counters.id() + r.counter_offset, r.to);
        }
    }
    Ok(rules)
}

/// With `MLX5DR_RECORD=<path>`: records the rule set to `path` and says so in one line.
///
/// The recorder gives each registered rule the ICM writes made since the previous
/// registration, so a rule must be registered right after its insert. The timed run
/// must not pay for that (nor log the writes of 100 000 inserts, a remove-all and a
/// two-thread re-insert, which would leave a file of hundreds of MB), so the recording
/// is made by a separate run of the same rule set on its own device and domain, with
/// [`RECORDED_CONNECTIONS`] connections ([`record::record`]). It ends (`finish`)
/// before the timed run's packets are sent; without the variable nothing of this runs.
fn record_if_asked() -> Result<()> {
    let asked = std::env::var_os(mlx5dr::record::RECORD_ENV).is_some_and(|p| !p.is_empty());
    if !asked {
        return Ok(());
    }
    let start = Instant::now();
    let run = record::record(RECORDED_CONNECTIONS, 1, mlx5dr::record::from_env)?
        .ok_or("MLX5DR_RECORD names no file")?;
    let path = run.recorder.finish()?;
    let bytes = std::fs::metadata(&path)?.len();
    println!();
    println!(
        "recording: {} ({:.2} MiB, {:.0} ms), a separate run of this rule set with {} \
         connections: {}",
        path.display(),
        mib(bytes),
        start.elapsed().as_secs_f64() * 1e3,
        RECORDED_CONNECTIONS,
        run.summary(),
    );
    Ok(())
}

fn rate_line(what: &str, rules: usize, took: Duration) {
    println!(
        "{what:<46} {rules:>8} {:>9.1} {:>10.0}",
        took.as_secs_f64() * 1e3,
        rules as f64 / took.as_secs_f64()
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Verdict checks so far.
#[derive(Default)]
struct Checks {
    passed: u64,
    failed: u64,
    first_failure: Option<String>,
}

impl Checks {
    /// Checks one packet's copies against the verdict the model predicts for it.
    fn packet(&mut self, out: &[Delivery], want: &Verdict) -> bool {
        let got = match out {
            [d] => match &d.fate {
                Fate::Delivered(t) => Ok(Verdict {
                    counters: d.counters.clone(),
                    terminal: *t,
                }),
                Fate::Fault(why) => Err(format!("fault: {why}")),
            },
            _ => Err(format!("{} copies", out.len())),
        };
        if got.as_ref() == Ok(want) {
            self.passed += 1;
            true
        } else {
            self.failed += 1;
            self.first_failure
                .get_or_insert_with(|| format!("expected {want:?}, got {got:?}"));
            false
        }
    }
}

/// Reads the first `n` counters of `bulk` and compares each with the packets and bytes
/// the model's verdicts of the packets `sent` (verdict, length) give it: how many
/// differ.
fn check_counters(bulk: &Counter, n: u32, sent: &[(Verdict, u64)]) -> Result<u64> {
    let mut want = vec![(0u64, 0u64); n as usize];
    for (v, len) in sent {
        for &id in &v.counters {
            let slot = id.checked_sub(bulk.id()).map(|o| o as usize);
            if let Some(w) = slot.and_then(|o| want.get_mut(o)) {
                w.0 += 1;
                w.1 += len;
            }
        }
    }
    let got = bulk.query_many(0, n)?;
    let differ = got
        .iter()
        .zip(&want)
        .filter(|(g, w)| (g.packets, g.bytes) != **w)
        .count();
    Ok(differ as u64)
}

/// One line about a flow.
fn describe(f: &Flow) -> String {
    let port = match f.port {
        UPLINK => "the uplink".to_string(),
        v => format!("VF vport {v}"),
    };
    let mac: Vec<String> = f.dmac.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{} {}:{} -> {}:{} from {port}, VLAN {}, dmac {}",
        if f.proto == TCP { "TCP" } else { "UDP" },
        f.src,
        f.sport,
        f.dst,
        f.dport,
        f.vlan,
        mac.join(":")
    )
}

/// A small deterministic generator (xorshift64), so every run sends the same packets.
struct XorShift(u64);

impl XorShift {
    /// A number below `n` (`n > 0`).
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}
