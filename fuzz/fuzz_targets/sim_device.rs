//! Arbitrary bytes as PRM command mailboxes, WQE rings behind a doorbell, STE lines in
//! ICM and packets, all on one simulated device: nothing may panic or hang. The input
//! layout and the checks are in `fuzz/harness/sim_device.rs`, which the property test
//! `sim/tests/no_panic.rs` also runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/sim_device.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
