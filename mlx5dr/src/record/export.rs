//! The JSON document of a recording: the recorded state in the schema of rdma-core's
//! recordings, top-level keys in their order.

use ste_builder::VportCap;

use super::json::{hex, Json};
use super::{side_name, ActionRec, AnchorRec, DomainType, RecordError, Recorder, SideInfo, State};

impl Recorder {
    /// The whole document; `vports` as [`Recorder::vports`] gave them.
    pub(super) fn document(&self, st: &State, vports: &[VportCap]) -> Result<Json, RecordError> {
        let mut top: Vec<(&'static str, Json)> = vec![
            (
                "source",
                concat!("mlx5dr-rs ", env!("CARGO_PKG_VERSION"), " (mlx5dr::record)").into(),
            ),
            ("schema", SCHEMA.into()),
            ("schema_expect", SCHEMA_EXPECT.into()),
            ("scenario", st.scenario.as_str().into()),
            ("description", st.description.as_str().into()),
        ];
        if st.log.uses_sparse() {
            top.push(("note", SPARSE_NOTE.into()));
        }
        top.extend([
            ("domain", self.domain_name().into()),
            ("fake_device", self.device_json(vports)),
            ("domain_addrs", self.domain_addrs_json()),
            ("tables", tables_json(st)),
            ("matchers", matchers_json(st)),
            ("rules", rules_json(st)),
        ]);
        if let Some(expect) = expect_json(st, &self.info.sides)? {
            top.push(("expect", expect));
        }
        top.extend([
            ("probes", probes_json(st)),
            ("phases", st.log.phases_json()),
            ("num_writes", st.log.len().into()),
            ("writes", st.log.writes_json()),
            ("icm", st.log.image_json()),
            ("stats", st.log.stats_json()),
        ]);
        Ok(Json::Obj(top))
    }

    fn domain_name(&self) -> &'static str {
        match self.info.domain_type {
            DomainType::NicRx => "nic_rx",
            DomainType::NicTx => "nic_tx",
            DomainType::Fdb => "fdb",
        }
    }

    /// The e-switch vports the domain has looked up so far (each rule matching a source
    /// port and each vport action looks its vport up), with the uplink: what a reader
    /// needs to build `misc.source_port` lookup keys (a vport's gvmi) and to know where
    /// a vport destination ends. Takes the domain's lock: call it without the
    /// recorder's. A domain already gone leaves the uplink only.
    pub(super) fn vports(&self) -> Vec<VportCap> {
        match self.dmn.upgrade() {
            Some(dmn) => dmn.ste_caps().vports,
            None => self.info.caps.ste_caps(&[]).vports,
        }
    }

    /// `fake_device`: the device's capabilities as the domain discovered them, and on
    /// an e-switch manager its vports (not in rdma-core's files).
    fn device_json(&self, vports: &[VportCap]) -> Json {
        let c = &self.info.caps;
        let mut o: Vec<(&'static str, Json)> = vec![
            ("steering_format_version", c.steering_format_version.into()),
            ("gvmi", c.gvmi.into()),
            ("log_steering_sw_icm_size", c.icm.steering.log_size.into()),
            ("max_log_sw_icm_sz", c.max_log_ste_table_size().into()),
            ("max_send_size", self.info.max_send.into()),
            ("nic_rx_drop_icm", c.nic_rx_drop_icm.into()),
            ("nic_tx_drop_icm", c.nic_tx_drop_icm.into()),
            ("nic_tx_allow_icm", c.nic_tx_allow_icm.into()),
        ];
        if let Some(esw) = &c.esw {
            o.extend([
                ("esw_rx_drop_icm", esw.rx_drop_icm.into()),
                ("esw_tx_drop_icm", esw.tx_drop_icm.into()),
            ]);
        }
        o.extend([
            ("definer_format_sup", c.definer_formats.into()),
            (
                "support_modify_argument",
                c.modify_argument.is_some().into(),
            ),
        ]);
        if let Some(esw) = &c.esw {
            o.extend([
                ("uplink_rx_icm", esw.uplink.icm_address_rx.into()),
                ("uplink_tx_icm", esw.uplink.icm_address_tx.into()),
                (
                    "esw_manager_vport_rx_icm",
                    esw.manager.icm_address_rx.into(),
                ),
                (
                    "esw_manager_vport_tx_icm",
                    esw.manager.icm_address_tx.into(),
                ),
                ("esw_manager_vhca_gvmi", esw.manager.vhca_gvmi.into()),
                ("vports", vports_json(vports)),
            ]);
        }
        Json::Obj(o)
    }

    fn domain_addrs_json(&self) -> Json {
        Json::Obj(
            self.info
                .sides
                .iter()
                .map(|s| {
                    (
                        side_name(s.side),
                        Json::Obj(vec![
                            ("drop_icm_addr", s.drop.into()),
                            ("default_icm_addr", s.default_miss.into()),
                        ]),
                    )
                })
                .collect(),
        )
    }
}

fn vports_json(vports: &[VportCap]) -> Json {
    Json::Arr(
        vports
            .iter()
            .map(|v| {
                Json::Obj(vec![
                    ("vport", v.vport_num.into()),
                    ("gvmi", v.vport_gvmi.into()),
                    ("vhca_gvmi", v.vhca_gvmi.into()),
                    ("icm_address_rx", v.icm_address_rx.into()),
                    ("icm_address_tx", v.icm_address_tx.into()),
                ])
            })
            .collect(),
    )
}

fn tables_json(st: &State) -> Json {
    Json::Arr(
        st.tables
            .iter()
            .map(|t| {
                Json::Obj(vec![
                    ("level", t.level.into()),
                    ("devx_table_id", t.fw_id.into()),
                    ("root_icm_addr_rx", t.root_rx.into()),
                    ("root_icm_addr_tx", t.root_tx.into()),
                ])
            })
            .collect(),
    )
}

fn anchor_json(a: &AnchorRec) -> Vec<(&'static str, Json)> {
    vec![
        ("start_htbl_icm_addr", a.start.into()),
        ("end_anchor_icm_addr", a.end.into()),
        ("num_ste_builders", a.lu_types.len().into()),
    ]
}

fn matchers_json(st: &State) -> Json {
    Json::Arr(
        st.matchers
            .iter()
            .map(|m| {
                let lookups: Vec<String> = m
                    .sides
                    .first()
                    .map(|a| a.lu_types.iter().map(|t| format!("{t:#06x}")).collect())
                    .unwrap_or_default();
                let mut o: Vec<(&'static str, Json)> = vec![
                    ("table", m.table.into()),
                    ("priority", m.priority.into()),
                    ("criteria", m.criteria.into()),
                    ("match_sz", m.mask.len().into()),
                    (
                        "description",
                        format!("priority {}, lookups {}", m.priority, lookups.join(" ")).into(),
                    ),
                    ("mask", hex(&m.mask).into()),
                ];
                if let Some(first) = m.sides.first() {
                    o.extend(anchor_json(first));
                }
                let anchors = m
                    .sides
                    .iter()
                    .map(|a| {
                        let mut fields = anchor_json(a);
                        fields.push((
                            "lu_types",
                            Json::Arr(a.lu_types.iter().map(|t| (*t).into()).collect()),
                        ));
                        (side_name(a.side), Json::Obj(fields))
                    })
                    .collect();
                o.push(("anchors", Json::Obj(anchors)));
                Json::Obj(o)
            })
            .collect(),
    )
}

fn span(s: (usize, usize)) -> Json {
    Json::Arr(vec![s.0.into(), s.1.into()])
}

fn rules_json(st: &State) -> Json {
    Json::Arr(
        st.rules
            .iter()
            .map(|r| {
                let mut o: Vec<(&'static str, Json)> = vec![
                    ("matcher", r.matcher.into()),
                    ("value", hex(&r.value).into()),
                    (
                        "actions",
                        Json::Arr(r.actions.iter().map(ActionRec::json).collect()),
                    ),
                    ("insert_writes", span(r.insert_writes)),
                    ("deleted", r.deleted.is_some().into()),
                ];
                if let Some(d) = r.deleted {
                    o.push(("delete_order", d.order.into()));
                    o.push(("delete_writes", span(d.writes)));
                }
                Json::Obj(o)
            })
            .collect(),
    )
}

/// `expect`, or `None` when no rule has expectations (readers then derive them from
/// the rules); an error when only some live rules have them.
fn expect_json(st: &State, sides: &[SideInfo]) -> Result<Option<Json>, RecordError> {
    let missing: Vec<usize> = st
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.deleted.is_none() && r.expect.is_empty())
        .map(|(i, _)| i)
        .collect();
    let any = st.rules.iter().any(|r| !r.expect.is_empty());
    if !any {
        return Ok(None);
    }
    if let Some(&first) = missing.first() {
        return Err(RecordError::NoExpectation {
            missing: missing.len(),
            first,
        });
    }
    let mut out = Vec::new();
    for (i, r) in st.rules.iter().enumerate() {
        let deleted = r.deleted.is_some();
        for e in &r.expect {
            // A removed rule's packet falls through its matcher to the side's default.
            let default = || {
                sides
                    .iter()
                    .find(|s| s.side == e.side)
                    .map_or(e.final_addr, |s| s.default_miss)
            };
            out.push(Json::Obj(vec![
                ("rule", i.into()),
                ("side", side_name(e.side).into()),
                ("root_icm_addr", e.root.into()),
                (
                    "final_addr",
                    if deleted { default() } else { e.final_addr }.into(),
                ),
                ("flow_tag", if deleted { None } else { e.flow_tag }.into()),
                ("deleted", deleted.into()),
                ("shadowed", false.into()),
                ("shadowed_by", Json::Null),
                (
                    "hit_ste_icm_addr",
                    if deleted { None } else { Some(e.rule_ste) }.into(),
                ),
                ("rule_ste_icm_addr", e.rule_ste.into()),
                ("end_anchor_icm_addr", e.end_anchor.into()),
            ]));
        }
    }
    Ok(Some(Json::Arr(out)))
}

fn probes_json(st: &State) -> Json {
    Json::Arr(
        st.probes
            .iter()
            .map(|p| {
                let sides = p
                    .sides
                    .iter()
                    .map(|s| {
                        Json::Obj(vec![
                            ("side", side_name(s.side).into()),
                            ("root_icm_addr", s.root.into()),
                            ("final_addr", s.final_addr.into()),
                            ("flow_tag", s.flow_tag.into()),
                            ("hit_ste_icm_addr", s.hit.into()),
                        ])
                    })
                    .collect();
                Json::Obj(vec![
                    ("description", p.description.as_str().into()),
                    ("table", p.table.into()),
                    ("value", hex(&p.value).into()),
                    ("expected_rule", p.expected_rule.into()),
                    ("expect", Json::Arr(sides)),
                ])
            })
            .collect(),
    )
}

/// The inline summary of the schema (the README next to rdma-core's recordings is the
/// full reference).
const SCHEMA: &str = "The schema of rdma-core's public ICM recordings (README.md next to them). Top level: source, schema, schema_expect, scenario, description, domain (nic_rx|nic_tx|fdb), fake_device (the device's capabilities as the driver discovered them; on an e-switch manager also esw_manager_vhca_gvmi and vports = [{vport, gvmi, vhca_gvmi, icm_address_rx, icm_address_tx}], the vports the domain looked up, for source-port lookups and vport destinations), domain_addrs, tables[i] = {level, devx_table_id (firmware flow table id), root_icm_addr_rx, root_icm_addr_tx (the table's root anchor per side, null where the domain has no such side)}, matchers[i] = {table, priority, criteria (match_criteria_enable bits), match_sz, description, mask (hex of the 448-byte fte_match_param), start_htbl_icm_addr, end_anchor_icm_addr, num_ste_builders (first side), anchors}, rules[i] = {matcher, value (hex, trailing zero bytes trimmed to a 4-byte boundary), actions (drop | dest_table {table} | tag {value}; beyond rdma-core's files: default_miss, dest_tir {tirn}, dest_qp {qpn}, dest_vport {vport}, dest_uplink, counter {id, offset}), insert_writes [first, count], deleted, delete_order, delete_writes [first, count]} in registration order, phases [{name, first_write, num_writes}], num_writes, writes = every ICM write the driver posted on the domain's send rings, in posting order: {icm_addr, kind (ste: at most one 64-byte line; htbl: several lines; action, pattern, encap: other ICM kinds), data (hex as it reaches ICM)}, icm = the image the writes leave: runs of written 64-byte lines {base, icm_type, data}; a blob may be in the sparse form {len, fill, lines}; stats = writes and bytes per kind. No chunk_events, no rdma_core_dump.";

/// The inline summary of the expectations.
const SCHEMA_EXPECT: &str = "domain_addrs = {rx|tx: {drop_icm_addr, default_icm_addr}}; matchers[].anchors = {rx|tx: {start_htbl_icm_addr (now), end_anchor_icm_addr, num_ste_builders, lu_types}}; expect = one entry per recorded rule and side it is installed on, computed from the driver's objects (not from ICM): {rule, side, root_icm_addr, final_addr (the address the rule's action list makes its last STE hit; for a deleted rule the side's default), flow_tag, deleted, shadowed (always false: the driver refuses duplicates), shadowed_by, hit_ste_icm_addr (the rule's last STE as its hash tables place it; null when deleted), rule_ste_icm_addr (the same; for a deleted rule before deletion), end_anchor_icm_addr}; probes = [{description, table, value, expected_rule, expect: [{side, root_icm_addr, final_addr, flow_tag, hit_ste_icm_addr}]}].";

/// The `note` of a file with sparse blobs.
const SPARSE_NOTE: &str = "writes and icm runs of 4 KiB or more whose 64-byte lines are mostly identical are in the sparse form {len, fill, lines}: every line equals fill except those listed as [line_index, hex]";
