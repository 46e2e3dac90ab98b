//! Recordings of rdma-core's own software steering (`data/recordings/`, schema in its
//! README.md): each recording's ICM writes are replayed into a simulated device as RDMA
//! WRITEs on its steering queue, the device's ICM must then equal the recorded image line
//! for line (and a sample read back with RDMA READs must too), and every recorded lookup
//! expectation and probe is walked with the simulator's packet pipeline over that ICM,
//! both as the match value's fields and as a real packet built from the value.
//!
//! The folder is `$MLX5DR_RECORDINGS_DIR`, by default the in-repository copy. Each file
//! prints `<file>: N passed, M failed` and the run ends with `N passed, M failed`; any
//! failure, an empty folder or a file outside the schema fails the test. A probe whose
//! value no real packet carries is walked as a value only; its packet walk is listed as
//! `SKIPPED` with the reason. (Every rule value must build into a packet.)

// The test plays the driver with the ring helper of the device tests.
#[allow(dead_code)]
#[path = "device/driver.rs"]
mod driver;
#[path = "recordings/lookups.rs"]
mod lookups;
#[path = "recordings/replay.rs"]
mod replay;
#[path = "recordings/schema.rs"]
mod schema;

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The folder of recordings to check.
fn folder() -> PathBuf {
    match std::env::var_os("MLX5DR_RECORDINGS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recordings"),
    }
}

/// Prints past the test harness's output capture, so the counts show on success too.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Checks one recording: the replay and the read-back are one check each; each
/// expectation and each probe side two more (value and packet).
fn check_file(path: &Path) -> Result<lookups::Tally, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let rec = schema::parse(&json).map_err(|e| format!("not a recording: {e}"))?;
    let mut replayed = replay::device_for(&rec)?;
    let mut tally = lookups::Tally::default();
    let mut problems = match replay::replay(&rec, &mut replayed) {
        Ok(()) => replay::image_differences(&rec, &replayed, 5),
        Err(e) => vec![e],
    };
    problems.truncate(6);
    tally.record(|| "replay".to_string(), problems);
    tally.record(
        || "read back".to_string(),
        replay::read_back_differences(&rec, &mut replayed, 5),
    );
    lookups::check(&rec, replayed.device.icm(), &mut tally)?;
    Ok(tally)
}

#[test]
fn recordings_replay_and_lookups() {
    let dir = folder();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("recordings folder {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.json recordings in {}",
        dir.display()
    );

    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match check_file(path) {
            Ok(t) => {
                say(&format!(
                    "{name}: {} passed, {} failed",
                    t.passed,
                    t.failed.len()
                ));
                for f in t.failed.iter().take(20) {
                    say(&format!("  FAILED {f}"));
                }
                if t.failed.len() > 20 {
                    say(&format!("  ... and {} more", t.failed.len() - 20));
                }
                for s in &t.skipped {
                    say(&format!("  SKIPPED {s}"));
                }
                passed += t.passed;
                failed += t.failed.len();
            }
            Err(e) => {
                say(&format!("{name}: 0 passed, 1 failed"));
                say(&format!("  FAILED {e}"));
                failed += 1;
            }
        }
    }
    say(&format!("{passed} passed, {failed} failed"));
    assert_eq!(failed, 0, "{failed} recording checks failed");
}
