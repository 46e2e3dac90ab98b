//! Shared helpers of the golden-vector checkers.

use serde_json::Value;
use ste_builder::{ste::Ste, SteFormat};

/// Cases passed and failed in one file, with messages for the failures.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub messages: Vec<String>,
}

impl Tally {
    /// A file that cannot be checked at all.
    pub fn unknown(msg: String) -> Tally {
        Tally {
            passed: 0,
            failed: 1,
            messages: vec![msg],
        }
    }

    /// Records one case: `Ok` passes, `Err` fails with its message (prefixed with the case
    /// index).
    pub fn record(&mut self, what: &str, index: usize, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed += 1,
            Err(e) => {
                self.failed += 1;
                self.messages.push(format!("{what}[{index}]: {e}"));
            }
        }
    }

    /// Runs `check` on every element of the array `doc[key]`; a missing array is a
    /// failure.
    pub fn run_cases(
        &mut self,
        doc: &Value,
        key: &str,
        mut check: impl FnMut(&Value) -> Result<(), String>,
    ) {
        let Some(cases) = doc[key].as_array() else {
            self.record(key, 0, Err(format!("no {key} array")));
            return;
        };
        for (i, case) in cases.iter().enumerate() {
            self.record(key, i, check(case));
        }
    }
}

/// The STE format named by a file's `steering_format` text ("v0 (ConnectX-5)" …).
pub fn format_of(doc: &Value) -> Result<SteFormat, String> {
    let s = doc["steering_format"]
        .as_str()
        .ok_or("no steering_format")?;
    match s.split_whitespace().next() {
        Some("v0") => Ok(SteFormat::V0),
        Some("v1") => Ok(SteFormat::V1),
        Some("v2") => Ok(SteFormat::V2),
        _ => Err(format!("unknown steering_format {s:?}")),
    }
}

/// A hex string field as bytes.
pub fn hex_field(v: &Value, key: &str) -> Result<Vec<u8>, String> {
    let s = v[key]
        .as_str()
        .ok_or_else(|| format!("{key}: not a string"))?;
    hex::decode(s).map_err(|e| format!("{key}: bad hex: {e}"))
}

/// A hex field of a fixed size.
pub fn hex_array<const N: usize>(v: &Value, key: &str) -> Result<[u8; N], String> {
    let b = hex_field(v, key)?;
    b.try_into()
        .map_err(|b: Vec<u8>| format!("{key}: {} bytes, expected {N}", b.len()))
}

/// An unsigned integer field.
pub fn uint(v: &Value, key: &str) -> Result<u64, String> {
    v[key]
        .as_u64()
        .ok_or_else(|| format!("{key}: not an unsigned integer"))
}

/// A boolean field.
pub fn boolean(v: &Value, key: &str) -> Result<bool, String> {
    v[key]
        .as_bool()
        .ok_or_else(|| format!("{key}: not a boolean"))
}

/// A string field.
pub fn string<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("{key}: not a string"))
}

/// Compares two byte strings, reporting both in hex.
pub fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {} want {}",
            hex::encode(got),
            hex::encode(want)
        ))
    }
}

/// Compares two values.
pub fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?} want {want:?}"))
    }
}

/// A zeroed STE.
pub fn zero_ste() -> Ste {
    [0u8; 64]
}
