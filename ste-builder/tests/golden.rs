//! Golden vectors: rdma-core 44's own steering encodings, bit for bit.
//!
//! Reads every `*.json` file in `$MLX5DR_GOLDEN_DIR` (default: `tests/vectors`), picks the
//! checker by the file's `schema` text, runs every case, and prints one line per file and
//! a total. Fails on any mismatch, on a file or case it does not understand, and on a
//! folder without vectors.

#[path = "golden/actions.rs"]
mod actions;
#[path = "golden/builders.rs"]
mod builders;
#[path = "golden/common.rs"]
mod common;
#[path = "golden/crc.rs"]
mod crc;
#[path = "golden/ctrl.rs"]
mod ctrl;
#[path = "golden/modify_header.rs"]
mod modify_header;

use common::Tally;
use serde_json::Value;
use std::path::PathBuf;

/// A checker: runs every case of one vector file.
type Checker = fn(&Value) -> Tally;

/// The vector kinds, by the start of their `schema` text.
const KINDS: &[(&str, Checker)] = &[
    ("CRC32 and STE hash-index vectors", crc::run),
    ("STE control-word vectors", ctrl::run),
    ("STE builder vectors", builders::run),
    ("STE action vectors", actions::run),
    ("Modify-header vectors", modify_header::run),
];

#[test]
fn golden_vectors() {
    let dir = std::env::var_os("MLX5DR_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read vector folder {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.json vectors in {}", dir.display());

    let mut total = Tally::default();
    let mut problems = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).expect("readable vector file");
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let schema = doc["schema"].as_str().unwrap_or("");
        let tally = match KINDS.iter().find(|(prefix, _)| schema.starts_with(prefix)) {
            Some((_, run)) => run(&doc),
            None => Tally::unknown(format!(
                "unknown schema {:?}",
                &schema[..schema.len().min(60)]
            )),
        };
        println!("{name}: {} passed, {} failed", tally.passed, tally.failed);
        for msg in tally.messages.iter().take(20) {
            println!("  {name}: {msg}");
        }
        if tally.failed > 0 || tally.passed == 0 {
            problems.push(name);
        }
        total.passed += tally.passed;
        total.failed += tally.failed;
    }
    println!("{} passed, {} failed", total.passed, total.failed);
    assert!(
        problems.is_empty(),
        "vector files with failures or no cases: {problems:?}"
    );
}
