//! The command line.

use mlx5dr::{Completion, Growth, ShardPlacement};
use sim::profile::DeviceModel;

use crate::shapes::Shape;

/// The command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub rules: u64,
    pub shape: Shape,
    pub threads: usize,
    pub shared: bool,
    pub expected_log: u8,
    pub grow: bool,
    pub shrink: bool,
    /// `MatcherOptions::growth`.
    pub growth: Growth,
    pub completion: Completion,
    /// `MatcherOptions::shards`.
    pub shards: u8,
    /// `MatcherOptions::placement`.
    pub placement: ShardPlacement,
    /// `SendConfig::doorbell_batch` (None: the default).
    pub doorbell_batch: Option<u16>,
    /// Rules per `Matcher::insert_batch_raw` and `Matcher::remove_batch` call (0: one
    /// `insert_raw` and one `Rule::remove` per rule).
    pub batch: usize,
    pub latency: bool,
    pub check: u64,
    /// Rules left installed by the delete phase (the first ones inserted).
    pub keep: u64,
    pub seed: u64,
    pub model: DeviceModel,
    pub json: bool,
}

pub const USAGE: &str =
    "usage: insert_bench [--rules N] [--shape 5tuple|dmac|vxlan] [--threads T] \
[--shared] [--expected-log L] [--no-grow] [--no-shrink] [--growth 2|4] [--completion wait|post|queue] [--shards S] [--placement tags|thread] [--doorbell-batch W] [--batch K] [--no-latency] [--check K] [--keep K] [--vni-rules R] \
[--seed S] [--model cx5|cx6dx|cx7] [--json]";

impl Args {
    pub fn parse(mut it: impl Iterator<Item = String>) -> std::result::Result<Args, String> {
        let mut a = Args {
            rules: 100_000,
            shape: Shape::FiveTuple,
            threads: 1,
            shared: false,
            expected_log: 0,
            grow: true,
            shrink: true,
            growth: Growth::Quadruple,
            completion: Completion::Wait,
            shards: 1,
            placement: ShardPlacement::Tags,
            doorbell_batch: None,
            batch: 0,
            latency: true,
            check: 1000,
            keep: 0,
            seed: 0x5eed,
            model: DeviceModel::ConnectX6Dx,
            json: false,
        };
        let mut vni_rules = None;
        while let Some(flag) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match flag.as_str() {
                "--rules" => a.rules = num(&value("--rules")?)?,
                "--shape" => a.shape = value("--shape")?.parse()?,
                "--threads" => a.threads = num(&value("--threads")?)?,
                "--shared" => a.shared = true,
                "--expected-log" => a.expected_log = num(&value("--expected-log")?)?,
                "--no-grow" => a.grow = false,
                "--no-shrink" => a.shrink = false,
                "--growth" => {
                    a.growth = match value("--growth")?.as_str() {
                        "4" => Growth::Quadruple,
                        "2" => Growth::Double,
                        g => return Err(format!("unknown growth {g:?} (2 or 4)")),
                    }
                }
                "--completion" => {
                    a.completion = match value("--completion")?.as_str() {
                        "wait" => Completion::Wait,
                        "post" => Completion::Post,
                        "queue" => Completion::Queue,
                        c => return Err(format!("unknown completion {c:?} (wait, post or queue)")),
                    }
                }
                "--shards" => a.shards = num(&value("--shards")?)?,
                "--placement" => {
                    a.placement = match value("--placement")?.as_str() {
                        "tags" => ShardPlacement::Tags,
                        "thread" => ShardPlacement::Thread,
                        p => return Err(format!("unknown placement {p:?} (tags or thread)")),
                    }
                }
                "--doorbell-batch" => {
                    a.doorbell_batch = Some(num(&value("--doorbell-batch")?)?);
                }
                "--batch" => a.batch = num(&value("--batch")?)?,
                "--no-latency" => a.latency = false,
                "--check" => a.check = num(&value("--check")?)?,
                "--keep" => a.keep = num(&value("--keep")?)?,
                "--vni-rules" => vni_rules = Some(num(&value("--vni-rules")?)?),
                "--seed" => a.seed = num(&value("--seed")?)?,
                "--model" => {
                    a.model = match value("--model")?.as_str() {
                        "cx5" => DeviceModel::ConnectX5,
                        "cx6dx" => DeviceModel::ConnectX6Dx,
                        "cx7" => DeviceModel::ConnectX7,
                        m => return Err(format!("unknown model {m:?} (cx5, cx6dx or cx7)")),
                    }
                }
                "--json" => a.json = true,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        if let (Shape::Vxlan { per_vni }, Some(r)) = (&mut a.shape, vni_rules) {
            *per_vni = r;
        }
        if a.rules == 0 || a.rules >= 1 << 32 {
            return Err("--rules must be in 1..2^32".into());
        }
        if a.threads == 0 || a.threads as u64 > a.rules {
            return Err("--threads must be in 1..=rules".into());
        }
        if a.keep >= a.rules {
            return Err("--keep must be below --rules".into());
        }
        Ok(a)
    }
}

fn num<T: std::str::FromStr>(s: &str) -> std::result::Result<T, String> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    clean.parse().map_err(|_| format!("not a number: {s:?}"))
}
