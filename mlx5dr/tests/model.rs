//! The driver against a reference classifier.
//!
//! Random cases (a domain, a few tables, and a sequence of operations: create a
//! matcher, insert rules, remove rules, change rules' actions, destroy a matcher,
//! classify packets) run on the driver over a simulated ConnectX and, side by side, on
//! the small model of `model/reference.rs`. Every packet goes through the simulator's walk of the ICM the
//! driver wrote and through the model; the verdicts (where it ends, its flow tag, the
//! counters it passed) must agree, and at the end of a case so must every counter's
//! totals. Packets are built from rule values with `sim::packet::build_from_match_lossy`
//! and the model classifies what the simulator's parser reads back from them, so both
//! see the same fields: exact hits, hits with the fields outside the mask changed,
//! near misses (one masked bit flipped), values of removed rules and random packets.
//!
//! Besides verdicts, each operation's outcome is predicted: a duplicate value is
//! refused (or, in a matcher that shares identical duplicates, handed out as another
//! handle of the installed rule, which stays until its last handle goes), a shared rule
//! cannot change its actions, a matcher with rules cannot be destroyed, and the
//! matcher and rule counts the driver reports match the model's.
//!
//! Layout: `model/shapes.rs` (random masks, rule values and packet descriptions),
//! `model/reference.rs` (the model), `model/rig.rs` (the driver's objects),
//! `model/run.rs` (operations on both, packets through both).
//!
//! One test per device generation (v0, v1, v2); each case draws its domain (NIC RX
//! mostly, NIC TX, FDB). `PROPTEST_CASES` sets the cases per test; `MODEL_STATS=1`
//! prints what each case did. A failure prints the operations as they ran (matchers
//! with their masks, rule counts, the packet, both verdicts, the model's deciding rules
//! and the simulator's trace).

#![cfg(feature = "sim")]

#[path = "model/reference.rs"]
mod reference;
#[path = "model/rig.rs"]
mod rig;
#[path = "model/run.rs"]
mod run;
#[path = "model/shapes.rs"]
mod shapes;

use ::sim::profile::DeviceModel;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use run::{Case, Op, FUNNEL_PRIORITY};
use shapes::Dom;

/// Cases per test when `PROPTEST_CASES` is not set: the three tests together take a few
/// seconds of a debug build on two cores.
const DEFAULT_CASES: u32 = 24;

fn add_matcher() -> impl Strategy<Value = Op> {
    (0..4usize, 0..FUNNEL_PRIORITY, any::<u64>()).prop_map(|(table, priority, seed)| {
        Op::AddMatcher {
            table,
            priority,
            seed,
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => add_matcher(),
        6 => (0..16usize, 1..800usize, any::<u64>())
            .prop_map(|(matcher, n, seed)| Op::Insert { matcher, n, seed }),
        2 => (0..16usize, 1..200usize, any::<u64>())
            .prop_map(|(matcher, n, seed)| Op::Remove { matcher, n, seed }),
        // Most of a matcher's rules at once: its tables shrink back.
        1 => (0..16usize, 200..1000usize, any::<u64>())
            .prop_map(|(matcher, n, seed)| Op::Remove { matcher, n, seed }),
        1 => (0..16usize, 1..100usize, any::<u64>())
            .prop_map(|(matcher, n, seed)| Op::SetActions { matcher, n, seed }),
        1 => (0..16usize, any::<bool>())
            .prop_map(|(matcher, force)| Op::Destroy { matcher, force }),
        3 => (1..120usize, any::<u64>()).prop_map(|(n, seed)| Op::Classify { n, seed }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let dom = prop_oneof![3 => Just(Dom::NicRx), 1 => Just(Dom::NicTx), 1 => Just(Dom::Fdb)];
    let levels = prop::collection::btree_set(1u8..=20, 1..=4);
    let funnel = prop::option::weighted(0.7, any::<bool>());
    let first = prop::collection::vec(add_matcher(), 1..8);
    let rest = prop::collection::vec(op(), 8..32);
    (dom, levels, funnel, first, rest).prop_map(|(dom, levels, funnel, first, rest)| {
        let mut ops = Vec::new();
        if let Some(counter) = funnel {
            ops.extend((0..levels.len() - 1).map(|table| Op::Funnel { table, counter }));
        }
        ops.extend(first);
        ops.extend(rest);
        Case {
            dom,
            levels: levels.into_iter().collect(),
            ops,
        }
    })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        max_shrink_iters: 400,
        // A failure prints its case (with its seeds, it replays exactly); one worth
        // keeping becomes a named test.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn check(model: DeviceModel, case: &Case) -> Result<(), TestCaseError> {
    run::run(model, case).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_v0_connectx5(case in case()) {
        check(DeviceModel::ConnectX5, &case)?;
    }

    #[test]
    fn model_v1_connectx6dx(case in case()) {
        check(DeviceModel::ConnectX6Dx, &case)?;
    }

    #[test]
    fn model_v2_connectx7(case in case()) {
        check(DeviceModel::ConnectX7, &case)?;
    }
}

/// A hand-written case on every generation: two tables with a catch-all goto between
/// them, matchers of several shapes, inserts, removals (one of nearly all of a
/// matcher's rules), new actions and packets.
fn fixed_case(dom: Dom) -> Case {
    let mut ops = vec![Op::Funnel {
        table: 0,
        counter: true,
    }];
    for (i, seed) in [11u64, 12, 13, 14, 15, 16].into_iter().enumerate() {
        ops.push(Op::AddMatcher {
            table: i % 2,
            priority: (i % 3) as u32,
            seed,
        });
    }
    for m in 0..7 {
        ops.push(Op::Insert {
            matcher: m,
            n: 150,
            seed: 100 + m as u64,
        });
    }
    ops.push(Op::Classify { n: 200, seed: 1 });
    ops.push(Op::Remove {
        matcher: 3,
        n: 60,
        seed: 2,
    });
    // All but a few of a matcher's rules: its tables shrink.
    ops.push(Op::Remove {
        matcher: 2,
        n: 145,
        seed: 5,
    });
    ops.push(Op::SetActions {
        matcher: 4,
        n: 40,
        seed: 3,
    });
    ops.push(Op::Destroy {
        matcher: 5,
        force: true,
    });
    ops.push(Op::Classify { n: 200, seed: 4 });
    Case {
        dom,
        levels: vec![1, 2],
        ops,
    }
}

#[test]
fn fixed_cases_agree() {
    for model in [
        DeviceModel::ConnectX5,
        DeviceModel::ConnectX6Dx,
        DeviceModel::ConnectX7,
    ] {
        for dom in [Dom::NicRx, Dom::NicTx, Dom::Fdb] {
            if let Err(e) = run::run(model, &fixed_case(dom)) {
                panic!("{e}");
            }
        }
    }
}

/// The harness notices a wrong answer: the same case with the model's rules given a
/// flow tag no rule can have must disagree on the first packet that hits one.
#[test]
fn a_wrong_model_is_caught() {
    let case = fixed_case(Dom::NicRx);
    let mut run = run::Run::new(DeviceModel::ConnectX6Dx, &case);
    let classify = case
        .ops
        .iter()
        .position(|op| matches!(op, Op::Classify { .. }))
        .expect("a classify op");
    for op in &case.ops[..classify] {
        run.op(op).unwrap();
    }
    run.corrupt_model(|m| {
        for r in m
            .tables
            .iter_mut()
            .flat_map(|t| &mut t.matchers)
            .flat_map(|m| &mut m.rules)
        {
            r.actions.tag = Some(1 << 24);
        }
    });
    let e = run.op(&case.ops[classify]).unwrap_err();
    assert!(e.contains("verdicts differ"), "{e}");
}
