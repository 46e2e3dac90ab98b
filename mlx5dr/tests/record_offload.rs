//! The offload example's rule set, recorded, against the simulator's recordings
//! checker: the example's own recorded run (`examples/offload/record.rs`, what
//! `MLX5DR_RECORD` writes) with 100 connections, so 200 conntrack rules with per-rule
//! counters forwarding to vports and the uplink, rules on one FDB side each (their
//! matchers match the source port), removed rules, and probes.
//!
//! The checker is the code of `cargo test -p sim --test recordings`: our writes
//! replayed through a steering queue must give our image, and every `expect` entry and
//! probe must hold for a packet walk, counters and vport destinations included. Two
//! corrupted copies show that it checks those: a rule claiming another rule's counter,
//! and a rule claiming another vport.

#![cfg(feature = "sim")]

// The simulator's recordings checker, shared with `sim/tests/recordings.rs`.
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/check.rs"]
mod check;
#[allow(dead_code)]
#[path = "../../sim/tests/device/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/lookups.rs"]
mod lookups;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/replay.rs"]
mod replay;
#[allow(dead_code)]
#[path = "../../sim/tests/recordings/schema.rs"]
mod schema;

// The example's rule set and its recorded run.
#[path = "../examples/offload/record.rs"]
mod record;
#[allow(dead_code)]
#[path = "../examples/offload/ruleset.rs"]
mod ruleset;
#[allow(dead_code)]
#[path = "../examples/offload/steering.rs"]
mod steering;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use mlx5dr::record::Recorder;
use serde_json::Value;

/// Connections recorded: 200 conntrack rules.
const CONNECTIONS: u32 = 100;

/// Prints past the test harness's capture, so the counts show on success too.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// A folder of its own for one test, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mlx5dr-record-offload-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// The recorded run, its conntrack matchers in `shards` shards, as JSON text.
fn recording(shards: u8) -> String {
    let run = record::record(CONNECTIONS, shards, |d| Some(Recorder::start(d)))
        .expect("the recorded run")
        .expect("a recorder");
    say(&format!("recorded: {}", run.summary()));
    assert_eq!(run.l2_rules, 8);
    assert_eq!(run.ct_rules, 2 * CONNECTIONS as usize);
    assert_eq!(
        run.removed,
        2 * (CONNECTIONS / record::CLOSED_EVERY) as usize
    );
    assert_eq!(run.probes, 6);
    run.recorder.to_json().expect("the recording")
}

/// Writes `text` to `dir/offload.json` and checks it.
fn check_text(dir: &Path, text: &str) -> lookups::Tally {
    let path = dir.join("offload.json");
    std::fs::write(&path, text).expect("writing the recording");
    check::check_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks the recording `text` in a scratch folder `name`: every check passes, and every
/// check ran (replay and read-back, each rule on its one side and each probe side, each
/// walked as a value and as a packet). Returns the parsed recording.
fn assert_passes(text: &str, name: &str) -> schema::Recording {
    let dir = scratch(name);
    let tally = check_text(&dir, text);
    say(&format!(
        "offload recording, {name} ({} bytes): {} passed, {} failed",
        text.len(),
        tally.passed,
        tally.failed.len()
    ));
    for f in tally.failed.iter().take(10) {
        say(&format!("  FAILED {f}"));
    }
    assert!(
        tally.failed.is_empty(),
        "{} checks failed",
        tally.failed.len()
    );
    assert!(tally.skipped.is_empty(), "skipped: {:?}", tally.skipped);
    let rec = schema::parse(&serde_json::from_str(text).expect("JSON")).expect("schema");
    let expect = rec.expect.as_ref().expect("expect entries");
    let probe_sides: usize = rec.probes.iter().map(|p| p.expect.len()).sum();
    assert_eq!(tally.passed, 2 + 2 * (expect.len() + probe_sides));
    let _ = std::fs::remove_dir_all(dir);
    rec
}

#[test]
fn offload_recording_passes_the_simulator_checker() {
    let rec = assert_passes(&recording(1), "clean");
    let rules = 8 + 2 * CONNECTIONS as usize;
    assert_eq!(rec.rules.iter().filter(|r| r.deleted).count(), 20);
    assert_eq!(rec.rules.len(), rules);
    let expect = rec.expect.as_ref().expect("expect entries");
    assert_eq!(expect.len(), rules, "one side per rule");
}

/// The same rule set with each conntrack matcher in 3 shards: packets that miss a shard
/// go on through the next, and every expectation (each rule's STE, the end anchor a
/// deleted rule's packet leaves through) and probe still holds.
#[test]
fn a_sharded_offload_recording_passes_the_simulator_checker() {
    let rec = assert_passes(&recording(3), "sharded");
    assert_eq!(rec.rules.len(), 8 + 2 * CONNECTIONS as usize);
}

/// The first two live conntrack rules with counters, as `(rule index, counter action)`.
fn counted_rules(doc: &Value) -> Vec<(usize, usize)> {
    doc["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .enumerate()
        .filter(|(_, r)| r["matcher"] != 0 && r["deleted"] == false)
        .filter_map(|(i, r)| {
            let acts = r["actions"].as_array()?;
            Some((i, acts.iter().position(|a| a["type"] == "counter")?))
        })
        .take(2)
        .collect()
}

/// The rules whose checks failed (`rule 9 tx`, ...), without the details; every other
/// failure must be a probe's.
fn failed_rules(tally: &lookups::Tally) -> Vec<String> {
    let mut subjects: Vec<String> = Vec::new();
    for f in &tally.failed {
        let subject = f.split(':').next().unwrap_or("");
        if !subject.starts_with("rule ") {
            assert!(subject.starts_with("probe "), "{f}");
            continue;
        }
        let subject = subject.trim_end_matches(" as a packet").to_string();
        if subjects.last() != Some(&subject) {
            subjects.push(subject);
        }
    }
    subjects
}

#[test]
fn the_checker_catches_a_wrong_counter_and_a_wrong_vport() {
    let text = recording(1);
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let side = |doc: &Value, rule: usize| {
        doc["expect"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["rule"] == rule))
            .and_then(|e| e["side"].as_str())
            .expect("an expect entry")
            .to_string()
    };

    // Two rules swap their counters: each walk counts the other's.
    let mut swapped = doc.clone();
    let pair = counted_rules(&swapped);
    assert_eq!(pair.len(), 2);
    let [(a, ca), (b, cb)] = [pair[0], pair[1]];
    let counter_a = swapped["rules"][a]["actions"][ca].clone();
    swapped["rules"][a]["actions"][ca] = swapped["rules"][b]["actions"][cb].clone();
    swapped["rules"][b]["actions"][cb] = counter_a;
    let dir = scratch("counter");
    let tally = check_text(&dir, &swapped.to_string());
    let want = vec![
        format!("rule {a} {}", side(&doc, a)),
        format!("rule {b} {}", side(&doc, b)),
    ];
    assert_eq!(failed_rules(&tally), want, "{:?}", tally.failed);
    assert!(
        tally.failed[0].contains("flow counters"),
        "{}",
        tally.failed[0]
    );

    // A rule to a VF claims another VF: its entry disagrees with the vport table.
    let mut moved = doc.clone();
    let (r, act, to) = moved["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .enumerate()
        .find_map(|(i, r)| {
            let acts = r["actions"].as_array()?;
            let j = acts.iter().position(|a| a["type"] == "dest_vport")?;
            Some((i, j, acts[j]["vport"].as_u64()?))
        })
        .expect("a rule forwarding to a VF");
    moved["rules"][r]["actions"][act]["vport"] = (to % 4 + 1).into();
    let tally = check_text(&dir, &moved.to_string());
    assert_eq!(
        failed_rules(&tally),
        vec![format!("rule {r} {}", side(&doc, r))],
        "{:?}",
        tally.failed
    );
    assert!(tally.failed[0].contains("rules say"), "{}", tally.failed[0]);
    let _ = std::fs::remove_dir_all(dir);
}
