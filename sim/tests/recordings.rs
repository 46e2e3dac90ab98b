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

// The checker itself lives in `recordings/check.rs`, which `mlx5dr/tests/recordings.rs`
// includes too (with the other modules here), to check the driver's own recordings.
#[path = "recordings/check.rs"]
mod check;
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

#[test]
fn recordings_replay_and_lookups() {
    let (_, failed) =
        check::check_folder(&folder(), &mut |l| say(l)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failed, 0, "{failed} recording checks failed");
}
