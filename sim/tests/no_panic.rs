//! No input makes the device panic: random bytes as PRM command mailboxes, WQE rings
//! behind a doorbell, STE lines in ICM and packets, on one device per case.
//!
//! This runs the cargo-fuzz target's harness (`fuzz/harness/sim_device.rs`, which also
//! describes the input layout and the promises checked) in CI, on stable. Honours
//! `PROPTEST_CASES` (default 64 here: each case is a whole device session).

use proptest::collection::vec;
use proptest::prelude::*;

#[path = "../../fuzz/harness/sim_device.rs"]
mod harness;

/// One operation: a tag byte (which of the harness's operations) and its field bytes.
fn op() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), vec(any::<u8>(), 0..600)).prop_map(|(tag, fields)| {
        let mut bytes = vec![tag];
        bytes.extend(fields);
        bytes
    })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        // Every case is independent: a regression file would only pin old inputs.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Operations of random length, so that each one reads its own fields and not
    /// only the start of the next.
    #[test]
    fn random_operations(model in any::<u8>(), ops in vec(op(), 1..24)) {
        let mut data = vec![model];
        for o in ops {
            data.extend(o);
        }
        harness::run(&data);
    }

    /// One undivided byte string: the harness splits it however the bytes say.
    #[test]
    fn random_bytes(data in vec(any::<u8>(), 0..8192)) {
        harness::run(&data);
    }
}

/// The generator reaches deep states: over a fixed set of random sessions, commands
/// succeed, WRITEs and READs execute, and packets walk ICM and hit rule STEs. (A harness
/// whose every operation bounced off the first check would pass the properties above
/// while testing nothing.)
#[test]
fn random_sessions_reach_every_part_of_the_device() {
    let mut rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    let mut total = harness::Stats::default();
    for _ in 0..400 {
        let len = rng.random_range(0..4096usize);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        total += harness::run(&data);
    }
    eprintln!("{total:?}");
    assert!(total.commands_ok > 0, "{total:?}");
    assert!(total.commands_failed > 0, "{total:?}");
    assert!(total.wqes_completed > 0, "{total:?}");
    assert!(total.wqes_failed > 0, "{total:?}");
    assert!(total.packets > 0, "{total:?}");
    assert!(total.ste_hops > total.packets, "{total:?}");
    assert!(total.rule_hits > 0, "{total:?}");
    assert!(total.delivered > 0, "{total:?}");
}

/// The harness's replay path works end to end: a packet, a rule STE built with
/// ste-builder from that packet's fields, and the same packet again from that STE hits
/// it. (The random sessions above rely on this path to reach rule hits.)
#[test]
fn a_rule_built_from_a_packet_hits_it() {
    use ste_builder::BuilderKind;
    let l2_dst = BuilderKind::ALL
        .iter()
        .position(|&k| k == BuilderKind::EthL2Dst)
        .expect("EthL2Dst is a builder") as u8;
    // ConnectX-6 Dx, STE lines left unwritten.
    let mut data = vec![0x01];
    // Packet (tag 8): RX, built from a match value (an empty one: one sparse byte with
    // no pokes), into the NIC RX root (type 0); 18 zero metadata bytes.
    data.extend([8, 0b10100]);
    data.extend([0; 18]);
    data.extend([0x01, 0]);
    // Rule line (tag 5) at line 3: EthL2Dst, RX, value from the last packet; mask with
    // one poke (byte 8, the first destination MAC byte, = 0xff); link its hit (patch
    // bit 1) to a firmware address (selector 5, index 0: NIC RX drop), 1-entry table.
    data.extend([5, 3, l2_dst, 0b110, 0x11, 0, 8, 0xff, 0b10, 5]);
    data.extend([0; 8]);
    data.push(0);
    // Packet: the last one again, into the last line written.
    data.push(8);
    data.extend([0; 19]);
    let stats = harness::run(&data);
    assert_eq!(stats.packets, 2, "{stats:?}");
    assert_eq!(stats.rule_hits, 1, "{stats:?}");
    assert_eq!(stats.delivered, 2, "{stats:?}");
}
