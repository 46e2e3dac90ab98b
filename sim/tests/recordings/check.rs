//! The whole check of a folder of recordings: each file replayed (image and read-back)
//! and its expectations and probes walked, with per-file counts. Shared by the
//! simulator's `recordings` test and the driver's test of its own recordings
//! (`mlx5dr/tests/recordings.rs` includes these files), so that both run the same
//! checker.

use super::{lookups, replay, schema};
use std::path::{Path, PathBuf};

/// Checks one recording: the replay and the read-back are one check each; each
/// expectation and each probe side two more (value and packet).
pub fn check_file(path: &Path) -> Result<lookups::Tally, String> {
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

/// Checks every `*.json` file of `dir` in name order, telling `say` each file's
/// `<file>: N passed, M failed` (with the first failures and every skip) and the
/// total. Returns the totals `(passed, failed)`; an unreadable or empty folder is an
/// error.
pub fn check_folder(dir: &Path, say: &mut dyn FnMut(&str)) -> Result<(usize, usize), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("recordings folder {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.json recordings in {}", dir.display()));
    }

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
    Ok((passed, failed))
}
