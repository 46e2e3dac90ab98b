//! The recorder's parts (JSON text, blobs, the image of partial writes) and a small
//! recording made on the simulator, checked against the simulator's ICM and the
//! driver's objects.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ::sim::profile::DeviceModel;
use serde_json::Value;

use super::json::{hex, Json};
use super::log::{testing, WriteLog, LINE};
use super::*;
use crate::device::sim::SimBackend;
use crate::device::IcmKind;
use crate::test_masks::five_tuple_mask;
use crate::{Action, Device, Match, MatcherOptions};

#[test]
fn json_text_is_escaped_and_laid_out_like_the_recordings() {
    let doc = Json::Obj(vec![
        ("s", "a\"b\\c\nd\u{1}".into()),
        ("n", Json::Null),
        (
            "list",
            Json::Arr(vec![1u64.into(), Json::Obj(vec![("t", true.into())])]),
        ),
        ("empty", Json::Arr(vec![])),
    ]);
    let mut out = String::new();
    doc.write_document(&mut out);
    assert_eq!(
        out,
        "{\n \"s\": \"a\\\"b\\\\c\\nd\\u0001\",\n \"n\": null,\n \"list\": [\n  1,\n  {\"t\": true}\n ],\n \"empty\": []\n}\n"
    );
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["s"], "a\"b\\c\nd\u{1}");
    assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
}

#[test]
fn blobs_are_sparse_only_when_it_pays_and_always_lossless() {
    let mut big = vec![0x11u8; 64 * LINE];
    big[5 * LINE..6 * LINE].fill(0x22);
    big[63 * LINE] = 0x33;
    let fields = testing::blob_of(&big);
    assert!(fields.iter().any(|(k, _)| *k == "fill"), "mostly one line");
    assert_eq!(testing::unblob(&fields), big);

    // Distinct lines, or a small blob: plain.
    let distinct: Vec<u8> = (0..64 * LINE).map(|i| (i / LINE) as u8).collect();
    for data in [&distinct[..], &big[..LINE * 4]] {
        let fields = testing::blob_of(data);
        assert_eq!(fields.len(), 1, "plain data");
        assert_eq!(testing::unblob(&fields), data);
    }
}

#[test]
fn the_image_keeps_what_partial_writes_leave() {
    let mut log = WriteLog::default();
    log.write(IcmKind::Steering, 0x1000, &[0xaa; 2 * LINE]);
    log.write(IcmKind::Steering, 0x1040, &[0xbb; 32]);
    log.write(IcmKind::Steering, 0x2000, &[0xcc; 32]);
    let runs = testing::runs_of(&log);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].0, 0x1000);
    assert_eq!(&runs[0].1[..LINE], &[0xaa; LINE][..]);
    assert_eq!(&runs[0].1[LINE..LINE + 32], &[0xbb; 32][..]);
    assert_eq!(&runs[0].1[LINE + 32..], &[0xaa; 32][..]);
    // A line only partly written is zero elsewhere.
    assert_eq!(runs[1], (0x2000, [[0xcc; 32], [0; 32]].concat()));

    assert_eq!(log.phase("table_create"), (0, 3));
    log.write(IcmKind::Steering, 0x3000, &[1; LINE]);
    assert_eq!(log.phase("rule_insert"), (3, 1));
    log.write(IcmKind::Steering, 0x3040, &[1; LINE]);
    assert_eq!(log.phase("rule_insert"), (4, 1));
    let phases = log.phases_json();
    let Json::Arr(p) = phases else { panic!() };
    assert_eq!(p.len(), 2, "consecutive inserts share a phase");
}

fn five_tuple(i: u32) -> MatchParam {
    Match::new()
        .outer(|h| {
            h.ipv4_src(Ipv4Addr::from(0x0a00_0000 + i))
                .ipv4_dst(Ipv4Addr::new(192, 168, 0, 1))
                .ip_protocol(6)
                .tcp_sport(1000)
                .tcp_dport(80)
        })
        .to_raw()
        .unwrap()
        .param
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

/// The bytes of a JSON blob, plain or sparse.
fn blob_bytes(v: &Value) -> Vec<u8> {
    if let Some(d) = v["data"].as_str() {
        return ::hex::decode(d).unwrap();
    }
    let fill = ::hex::decode(v["fill"].as_str().unwrap()).unwrap();
    let mut out = fill.repeat(u(&v["len"]) as usize / LINE);
    for l in v["lines"].as_array().unwrap() {
        let i = u(&l[0]) as usize;
        out[i * LINE..(i + 1) * LINE]
            .copy_from_slice(&::hex::decode(l[1].as_str().unwrap()).unwrap());
    }
    out
}

/// A recording of two tables, a matcher and rules (one removed) on a simulated
/// ConnectX-6 Dx: the image is the device's ICM, and the entries are the objects'.
#[test]
fn a_recording_holds_the_device_icm_and_the_driver_objects() {
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::NicRx).unwrap();
    let rec = Recorder::start(&dmn);
    rec.describe("unit", "two tables, one matcher");
    let t1 = Table::new(&dmn, 1).unwrap();
    assert_eq!(rec.table(&t1).unwrap(), 0);
    let t2 = Table::new(&dmn, 2).unwrap();
    assert_eq!(rec.table(&t2).unwrap(), 1);
    let m = Matcher::new(&t1, &five_tuple_mask(), MatcherOptions::default()).unwrap();
    assert_eq!(rec.matcher(&m).unwrap(), 0);
    assert_eq!(rec.matcher(&m).unwrap(), 0, "registered once");

    let tag_goto = m
        .actions(&[Action::flow_tag(9).unwrap(), Action::goto_table(&t2)])
        .unwrap();
    let drop_list = m.actions(&[Action::drop()]).unwrap();
    let mut rules = Vec::new();
    for i in 0..40 {
        let value = five_tuple(i);
        let acts = if i % 2 == 0 { &tag_goto } else { &drop_list };
        let rule = m.insert_raw(&value, acts).unwrap();
        let id = rec.rule(&rule, &value).unwrap();
        assert_eq!(id, RuleId(i as usize));
        rules.push((id, rule));
    }
    let (gone_id, gone) = rules.remove(3);
    let gone_addr = gone.icm_addr(DomainSide::NicRx).unwrap();
    rec.remove(gone_id, gone).unwrap();
    assert!(matches!(
        rec.remove(gone_id, m.insert_raw(&five_tuple(3), &drop_list).unwrap()),
        Err(RecordError::Removed(3))
    ));
    for (id, rule) in &rules {
        rec.expect_for(*id, rule).unwrap();
    }
    rec.probe("a miss", &t1, &five_tuple(1000), None).unwrap();
    rec.probe(
        "rule 0",
        &t1,
        &five_tuple(0),
        Some((rules[0].0, &rules[0].1)),
    )
    .unwrap();
    rec.stop();
    let writes = rec.num_writes();
    // Nothing is logged after stop.
    drop(m.insert_raw(&five_tuple(500), &drop_list).unwrap());
    assert_eq!(rec.num_writes(), writes);

    let doc: Value = serde_json::from_str(&rec.to_json().unwrap()).unwrap();
    assert_eq!(doc["domain"], "nic_rx");
    assert_eq!(doc["scenario"], "unit");
    assert_eq!(u(&doc["num_writes"]), writes as u64);
    assert_eq!(doc["writes"].as_array().unwrap().len(), writes);

    // The image is the device's ICM, line for line.
    let icm = be.sim().icm();
    let mut lines = 0;
    for run in doc["icm"].as_array().unwrap() {
        let base = u(&run["base"]);
        let data = blob_bytes(run);
        for (i, want) in data.chunks_exact(LINE).enumerate() {
            let addr = base + (i * LINE) as u64;
            assert_eq!(&icm.read_line(addr).unwrap()[..], want, "line {addr:#x}");
            lines += 1;
        }
    }
    assert!(lines > 40);

    // Tables, matcher and rules as the objects say.
    let side = DomainSide::NicRx;
    let tables = doc["tables"].as_array().unwrap();
    assert_eq!(
        u(&tables[1]["root_icm_addr_rx"]),
        t2.root_addr(side).unwrap()
    );
    assert_eq!(tables[1]["root_icm_addr_tx"], Value::Null);
    assert_eq!(u(&tables[0]["devx_table_id"]), u64::from(t1.fw_id()));
    let mx = &doc["matchers"][0];
    let (start, end) = m.anchors(side).unwrap();
    assert_eq!(u(&mx["anchors"]["rx"]["start_htbl_icm_addr"]), start);
    assert_eq!(u(&mx["end_anchor_icm_addr"]), end);
    let lu: Vec<u64> = mx["anchors"]["rx"]["lu_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(u)
        .collect();
    let want_lu: Vec<u64> = m
        .lu_types(side)
        .unwrap()
        .into_iter()
        .map(u64::from)
        .collect();
    assert_eq!(lu, want_lu);
    let r0 = &doc["rules"][0];
    assert_eq!(
        r0["actions"],
        serde_json::json!([{"type": "tag", "value": 9}, {"type": "dest_table", "table": 1}])
    );
    assert_eq!(
        doc["rules"][1]["actions"],
        serde_json::json!([{"type": "drop"}])
    );
    let value = ::hex::decode(r0["value"].as_str().unwrap()).unwrap();
    assert_eq!(value.len() % 4, 0);
    assert_eq!(MatchParam::from_bytes(&value).unwrap(), five_tuple(0));
    assert_eq!(doc["rules"][3]["deleted"], true);
    assert_eq!(u(&doc["rules"][3]["delete_order"]), 0);

    // Expectations: one per rule, from the objects.
    let expect = doc["expect"].as_array().unwrap();
    assert_eq!(expect.len(), 40);
    let info = *dmn.side(side).unwrap();
    for e in expect {
        let i = u(&e["rule"]) as usize;
        assert_eq!(u(&e["root_icm_addr"]), t1.root_addr(side).unwrap());
        assert_eq!(u(&e["end_anchor_icm_addr"]), end);
        if i == 3 {
            assert_eq!(e["deleted"], true);
            assert_eq!(u(&e["final_addr"]), info.default_miss);
            assert_eq!(e["hit_ste_icm_addr"], Value::Null);
            assert_eq!(u(&e["rule_ste_icm_addr"]), gone_addr);
            continue;
        }
        let (_, rule) = rules.iter().find(|(id, _)| id.0 == i).unwrap();
        let at = rule.icm_addr(side).unwrap();
        assert_eq!(u(&e["hit_ste_icm_addr"]), at);
        assert_eq!(u(&e["rule_ste_icm_addr"]), at);
        if i % 2 == 0 {
            assert_eq!(u(&e["final_addr"]), t2.root_addr(side).unwrap());
            assert_eq!(u(&e["flow_tag"]), 9);
        } else {
            assert_eq!(u(&e["final_addr"]), info.drop);
            assert_eq!(e["flow_tag"], Value::Null);
        }
    }
    let probes = doc["probes"].as_array().unwrap();
    assert_eq!(u(&probes[0]["expect"][0]["final_addr"]), info.default_miss);
    assert_eq!(probes[0]["expected_rule"], Value::Null);
    assert_eq!(u(&probes[1]["expected_rule"]), 0);
    assert_eq!(
        u(&probes[1]["expect"][0]["hit_ste_icm_addr"]),
        rules[0].1.icm_addr(side).unwrap()
    );
    let names: Vec<&str> = doc["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "table_create",
            "table_create",
            "matcher_create",
            "rule_insert",
            "rule_delete"
        ]
    );
}

#[test]
fn finish_refuses_half_the_expectations_and_a_missing_file() {
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::NicRx).unwrap();
    let rec = Recorder::start(&dmn);
    let t = Table::new(&dmn, 1).unwrap();
    let m = Matcher::new(&t, &five_tuple_mask(), MatcherOptions::default()).unwrap();
    let drop_list = m.actions(&[Action::drop()]).unwrap();
    let a = m.insert_raw(&five_tuple(1), &drop_list).unwrap();
    let b = m.insert_raw(&five_tuple(2), &drop_list).unwrap();
    let ia = rec.rule(&a, &five_tuple(1)).unwrap();
    rec.rule(&b, &five_tuple(2)).unwrap();
    // No expectation at all: a file without `expect`.
    let doc: Value = serde_json::from_str(&rec.to_json().unwrap()).unwrap();
    assert!(doc.get("expect").is_none());
    rec.expect_for(ia, &a).unwrap();
    assert!(matches!(
        rec.to_json(),
        Err(RecordError::NoExpectation {
            missing: 1,
            first: 1
        })
    ));
    assert!(matches!(rec.finish(), Err(RecordError::NoPath)));
    assert!(matches!(
        rec.expect_for(RuleId(7), &a),
        Err(RecordError::UnknownRule(7))
    ));

    // Objects of another domain are refused.
    let dev2: Arc<dyn Device> = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let other = Domain::open(dev2, DomainType::NicRx).unwrap();
    let t2 = Table::new(&other, 1).unwrap();
    assert!(matches!(
        rec.table(&t2),
        Err(RecordError::OtherDomain { what: "table" })
    ));
}

#[test]
fn from_env_records_to_the_named_file() {
    // The only test that touches the variable.
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let dev: Arc<dyn Device> = be.clone();
    let dmn = Domain::open(dev, DomainType::NicTx).unwrap();
    std::env::remove_var(RECORD_ENV);
    assert!(from_env(&dmn).is_none(), "off unless asked for");
    let path = std::env::temp_dir().join(format!("mlx5dr-record-{}.json", std::process::id()));
    std::env::set_var(RECORD_ENV, &path);
    let rec = from_env(&dmn);
    std::env::remove_var(RECORD_ENV);
    let rec = rec.expect("a recorder");
    assert_eq!(rec.path(), Some(path.as_path()));
    let t = Table::new(&dmn, 1).unwrap();
    rec.table(&t).unwrap();
    assert_eq!(rec.finish().unwrap(), path);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["domain"], "nic_tx");
    assert_eq!(doc["tables"][0]["root_icm_addr_rx"], Value::Null);
    let root = t.root_addr(DomainSide::NicTx).unwrap();
    assert_eq!(u(&doc["tables"][0]["root_icm_addr_tx"]), root);
    assert_eq!(u(&doc["writes"][0]["icm_addr"]), root);
    assert_eq!(doc["writes"][0]["kind"], "ste");
    let info = dmn.side(DomainSide::NicTx).unwrap();
    assert_eq!(
        u(&doc["domain_addrs"]["tx"]["default_icm_addr"]),
        info.default_miss
    );
}
