//! Builder chains: rdma-core's lookups for common shapes on v0/v1/v2, the typed errors
//! of masks and values, and tags checked against the simulator's lookup keys.

use std::net::{Ipv4Addr, Ipv6Addr};

use ::sim::pipeline::lookup_key;
use ::sim::profile::{DeviceModel, Profile};
use ste_builder::builder::v0::{lu as v0, LuTypes};
use ste_builder::builder::v1::lu as v1;
use ste_builder::match_param::PreCheckError;
use ste_builder::ste::LU_TYPE_DONT_CARE;
use ste_builder::{BuildError, Caps, MatchCriteria, MatchParam, Section, SteFormat};

use crate::caps::DeviceCaps;
use crate::device::sim::SimBackend;
use crate::matching::{
    BuilderChain, ChainCaps, ChainError, DomainSide, MaskBits, Match, RawMatch, RuleError,
};
use crate::test_masks::five_tuple_mask;

/// A device's capabilities as the driver discovers them, with every vport of the
/// profile in the STE caps.
pub(in crate::matching) struct Dev {
    pub(in crate::matching) caps: DeviceCaps,
    pub(in crate::matching) ste: Caps,
}

impl Dev {
    pub(in crate::matching) fn of(profile: Profile) -> Dev {
        let be = SimBackend::with_profile(profile.clone()).unwrap();
        let caps = DeviceCaps::query(&be).unwrap();
        let vports: Vec<_> = profile
            .vports
            .iter()
            .map(|v| caps.query_vport(&be, v.num).unwrap())
            .collect();
        let ste = caps.ste_caps(&vports);
        Dev { caps, ste }
    }

    fn model(model: DeviceModel) -> Dev {
        Dev::of(Profile::new(model))
    }

    fn chain_caps(&self) -> ChainCaps<'_> {
        ChainCaps::new(&self.caps, &self.ste).unwrap()
    }

    fn chain(&self, mask: &Match, side: DomainSide) -> Result<BuilderChain, ChainError> {
        BuilderChain::new(&mask.to_raw().unwrap(), side, &self.chain_caps())
    }

    fn lu_types(&self, mask: &Match, side: DomainSide) -> Vec<u16> {
        let chain = self
            .chain(mask, side)
            .unwrap_or_else(|e| panic!("{mask:?} on {side}: {e}"));
        chain.lu_types().collect()
    }
}

const ALL: [DeviceModel; 3] = [
    DeviceModel::ConnectX5,
    DeviceModel::ConnectX6Dx,
    DeviceModel::ConnectX7,
];

fn ipv6_mask() -> Match {
    let all = Ipv6Addr::from([0xff; 16]);
    Match::new().outer(|h| {
        h.ipv6_src(all)
            .ipv6_dst(all)
            .ip_protocol(0xff)
            .udp_dport(0xffff)
    })
}

fn vxlan_mask() -> Match {
    Match::new()
        .outer(|h| h.ip_version(4).ip_protocol(0xff).udp_dport(0xffff))
        .tunnel(|t| t.vxlan_vni(0xff_ffff))
        .inner(|h| h.ipv4_dst(Ipv4Addr::BROADCAST))
}

fn dmac_mask() -> Match {
    Match::new().outer(|h| h.dmac([0xff; 6]))
}

fn registers_mask() -> Match {
    Match::new().meta(|m| m.metadata_reg_c_0(0xffff).metadata_reg_c_5(0xffff_ffff))
}

#[test]
fn common_shapes_get_rdma_cores_lookups() {
    let d5 = Dev::model(DeviceModel::ConnectX5);
    let rx = DomainSide::NicRx;
    let tx = DomainSide::NicTx;
    // v0 numbers differ by position: RX outer, TX outer, inner.
    let pos = |t: LuTypes| (t.rx, t.outer, t.inner);
    let (l2_rx, l2_tx, _) = pos(v0::ETHL2_DST);
    assert_eq!(d5.lu_types(&dmac_mask(), rx), [l2_rx]);
    assert_eq!(d5.lu_types(&dmac_mask(), tx), [l2_tx]);
    let (t5_rx, t5_tx, t5_in) = pos(v0::ETHL3_IPV4_5_TUPLE);
    assert_eq!(d5.lu_types(&five_tuple_mask(), rx), [l2_rx, t5_rx]);
    assert_eq!(d5.lu_types(&five_tuple_mask(), tx), [l2_tx, t5_tx]);
    assert_eq!(
        d5.lu_types(&ipv6_mask(), rx),
        [
            l2_rx,
            v0::ETHL3_IPV6_DST.rx,
            v0::ETHL3_IPV6_SRC.rx,
            v0::ETHL4.rx
        ]
    );
    assert_eq!(
        d5.lu_types(&vxlan_mask(), rx),
        [l2_rx, t5_rx, v0::ETHL2_TUNNELING_I, t5_in]
    );
    assert_eq!(
        d5.lu_types(&registers_mask(), rx),
        [v0::STEERING_REGISTERS_0, v0::STEERING_REGISTERS_1]
    );

    for model in [DeviceModel::ConnectX6Dx, DeviceModel::ConnectX7] {
        let d = Dev::model(model);
        for side in [rx, tx] {
            assert_eq!(d.lu_types(&dmac_mask(), side), [v1::ETHL2_O]);
            assert_eq!(
                d.lu_types(&five_tuple_mask(), side),
                [v1::ETHL2_O, v1::ETHL3_IPV4_5_TUPLE_O]
            );
            assert_eq!(
                d.lu_types(&ipv6_mask(), side),
                [v1::ETHL2_O, v1::IPV6_DES_O, v1::IPV6_SRC_O, v1::ETHL4_O]
            );
            assert_eq!(
                d.lu_types(&vxlan_mask(), side),
                [
                    v1::ETHL2_O,
                    v1::ETHL3_IPV4_5_TUPLE_O,
                    v1::ETHL2_TNL,
                    v1::ETHL3_IPV4_5_TUPLE_I
                ]
            );
            assert_eq!(
                d.lu_types(&registers_mask(), side),
                [v1::STEERING_REGISTERS_0, v1::STEERING_REGISTERS_1]
            );
        }
        // Source and destination MAC share one lookup; register A has its own.
        let m = Match::new()
            .outer(|h| h.smac([0xff; 6]).dmac([0xff; 6]))
            .meta(|m| m.metadata_reg_a(1));
        assert_eq!(
            d.lu_types(&m, rx),
            [v1::GENERAL_PURPOSE, v1::ETHL2_SRC_DST_O]
        );
    }
}

#[test]
fn source_port_in_fdb() {
    let mask = Match::new()
        .meta(|m| m.source_port(0xffff))
        .outer(|h| h.dmac([0xff; 6]));
    for model in ALL {
        let d = Dev::model(model);
        let tx = d.chain(&mask, DomainSide::FdbTx).unwrap();
        let rx = d.chain(&mask, DomainSide::FdbRx).unwrap();
        let (gvmi, l2_rx, l2_tx) = match model {
            DeviceModel::ConnectX5 => (v0::SRC_GVMI_AND_QP, v0::ETHL2_DST.rx, v0::ETHL2_DST.outer),
            _ => (v1::SRC_QP_GVMI, v1::ETHL2_O, v1::ETHL2_O),
        };
        assert_eq!(tx.lu_types().collect::<Vec<_>>(), [gvmi, l2_tx]);
        // RX traffic comes from the uplink: the source port is not looked up there.
        assert_eq!(rx.lu_types().collect::<Vec<_>>(), [l2_rx]);

        // Rules for the uplink go to RX only, the others to TX only.
        let uplink = Match::new()
            .meta(|m| m.source_port(0xffff))
            .to_raw()
            .unwrap();
        let vport = Match::new().meta(|m| m.source_port(2)).to_raw().unwrap();
        assert!(!rx.skips_rule(&uplink.param) && tx.skips_rule(&uplink.param));
        assert!(rx.skips_rule(&vport.param) && !tx.skips_rule(&vport.param));

        // The TX tag carries the vport's gvmi; an unknown vport is refused.
        let tags = tx.rule_tags(&vport.param, &d.ste).unwrap();
        let key = lookup_key(tx.format(), gvmi, &vport.param, &d.ste).unwrap();
        let b = &tx.builders()[0];
        let masked: Vec<u8> = key.iter().zip(b.bit_mask).map(|(k, m)| k & m).collect();
        assert_eq!(tags.get(0).unwrap(), &masked[..]);
        let stranger = Match::new().meta(|m| m.source_port(77)).to_raw().unwrap();
        assert_eq!(
            tx.rule_tags(&stranger.param, &d.ste).unwrap_err(),
            RuleError::Build(BuildError::UnknownVport { vport: 77 })
        );
    }
}

#[test]
fn source_port_alone_on_fdb_rx_hits_everything() {
    let mask = Match::new().meta(|m| m.source_port(0xffff));
    let d = Dev::model(DeviceModel::ConnectX6Dx);
    let rx = d.chain(&mask, DomainSide::FdbRx).unwrap();
    assert_eq!(rx.lu_types().collect::<Vec<_>>(), [LU_TYPE_DONT_CARE]);
    let tx = d.chain(&mask, DomainSide::FdbTx).unwrap();
    assert_eq!(tx.lu_types().collect::<Vec<_>>(), [v1::SRC_QP_GVMI]);
    // NIC TX has no source lookup at all.
    let err = d.chain(&mask, DomainSide::NicTx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no STEv1 lookup on NIC TX can match misc.source_port"
    );
}

#[test]
fn empty_masks_hit_everything() {
    let d = Dev::model(DeviceModel::ConnectX6Dx);
    for mask in [
        RawMatch::default(),
        // Criteria without bits: rdma-core refuses this; every packet matches it.
        RawMatch::new(MatchCriteria::OUTER, MatchParam::default()),
    ] {
        let chain = BuilderChain::new(&mask, DomainSide::NicRx, &d.chain_caps()).unwrap();
        assert_eq!(chain.lu_types().collect::<Vec<_>>(), [LU_TYPE_DONT_CARE]);
        let tags = chain.rule_tags(&MatchParam::default(), &d.ste).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags.get(0).unwrap(), &[0u8; 16][..]);
    }
}

/// The field named in an `Unmatchable` error.
fn unmatchable(err: ChainError) -> String {
    match err {
        ChainError::Unmatchable { bits, .. } => bits.to_string(),
        other => panic!("expected Unmatchable, got {other:?}"),
    }
}

#[test]
fn fields_no_lookup_consumes_are_named() {
    for model in ALL {
        let d = Dev::model(model);
        let rx = DomainSide::NicRx;
        // L3 fields need the IP version: without it no IPv4/IPv6 lookup is chosen.
        let m = Match::new().outer(|h| h.ip_protocol(0xff));
        assert_eq!(
            unmatchable(d.chain(&m, rx).unwrap_err()),
            "outer.ip_protocol"
        );
        let m = Match::new().inner(|h| h.ipv4_ihl(0xf));
        assert_eq!(unmatchable(d.chain(&m, rx).unwrap_err()), "inner.ipv4_ihl");
        // Fields DR has no lookup for.
        let m = Match::new().outer(|h| h.esp_spi(1));
        assert_eq!(
            unmatchable(d.chain(&m, rx).unwrap_err()),
            "misc.outer_esp_spi"
        );
        let m = Match::new().meta(|m| m.source_eswitch_owner_vhca_id(0xffff));
        assert_eq!(
            unmatchable(d.chain(&m, rx).unwrap_err()),
            "misc.source_eswitch_owner_vhca_id"
        );
        // The GENEVE option-presence bit is only looked up next to other GENEVE fields.
        let m = Match::new().tunnel(|t| t.geneve_tlv_option_0_exist(true));
        assert_eq!(
            unmatchable(d.chain(&m, rx).unwrap_err()),
            "misc.geneve_tlv_option_0_exist"
        );
    }
}

#[test]
fn lookups_the_device_lacks_leave_their_fields() {
    // GTP-U needs a flex parser: without one its fields cannot be matched.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    let d = Dev::of(p.clone());
    let m = Match::new().tunnel(|t| t.gtpu_msg_type(0xff).gtpu_teid(0xffff_ffff));
    let lus = d.lu_types(&m, DomainSide::NicRx);
    assert_eq!(
        lus.len(),
        2,
        "TEID on flex parser 1, message type on the GTP-U lookup"
    );
    p.flex_parser_protocols = 0;
    let d = Dev::of(p);
    assert_eq!(
        unmatchable(d.chain(&m, DomainSide::NicRx).unwrap_err()),
        "misc3.gtpu_teid"
    );

    // GENEVE option presence: v1 has the lookup, v0 has not.
    let geneve = Match::new().tunnel(|t| t.geneve_vni(0xff_ffff).geneve_tlv_option_0_exist(true));
    let d = Dev::model(DeviceModel::ConnectX6Dx);
    assert_eq!(d.lu_types(&geneve, DomainSide::NicRx).len(), 2);
    let d = Dev::model(DeviceModel::ConnectX5);
    assert_eq!(
        unmatchable(d.chain(&geneve, DomainSide::NicRx).unwrap_err()),
        "misc.geneve_tlv_option_0_exist"
    );
}

#[test]
fn raw_masks_are_checked_before_any_lookup() {
    let d = Dev::model(DeviceModel::ConnectX6Dx);
    let caps = d.chain_caps();
    let rx = DomainSide::NicRx;
    // Reserved bits.
    let mut p = MatchParam::default();
    p.outer[0x18] = 0x80;
    let err = BuilderChain::new(&RawMatch::new(MatchCriteria::OUTER, p), rx, &caps).unwrap_err();
    assert_eq!(
        unmatchable(err),
        MaskBits::Reserved {
            section: Section::Outer,
            byte: 0x18
        }
        .to_string()
    );
    // Bits in a section the criteria leave out.
    let raw = Match::new().tunnel(|t| t.vxlan_vni(1)).to_raw().unwrap();
    let err =
        BuilderChain::new(&RawMatch::new(MatchCriteria::OUTER, raw.param), rx, &caps).unwrap_err();
    assert!(matches!(
        err,
        ChainError::OutsideCriteria {
            section: Section::Misc,
            ..
        }
    ));
    assert!(err.to_string().contains("misc.vxlan_vni"), "{err}");
    // DR's pre-check.
    let m = Match::new().field("outer.ip_version", 5);
    assert_eq!(
        d.chain(&m, rx).unwrap_err(),
        ChainError::PreCheck(PreCheckError::IpVersionMask {
            section: Section::Outer,
            mask: 5
        })
    );
    let m = Match::new().meta(|m| m.source_port(0xff));
    assert_eq!(
        d.chain(&m, DomainSide::FdbTx).unwrap_err(),
        ChainError::PreCheck(PreCheckError::PartialSourcePort { mask: 0xff })
    );
}

#[test]
fn rule_values_are_checked() {
    let d = Dev::model(DeviceModel::ConnectX6Dx);
    let mask = Match::new().outer(|h| {
        h.ipv4_dst(Ipv4Addr::new(255, 255, 255, 0))
            .ip_protocol(0xff)
            .tcp_dport(0xff00)
    });
    let chain = d.chain(&mask, DomainSide::NicRx).unwrap();
    let tags = |m: Match| chain.rule_tags(&m.to_raw().unwrap().param, &d.ste);

    let tcp_to =
        |dst, dport| Match::new().outer(move |h| h.ipv4_dst(dst).ip_protocol(6).tcp_dport(dport));
    assert!(tags(tcp_to(Ipv4Addr::new(10, 1, 2, 0), 0x1200)).is_ok());
    // A TCP port on a UDP rule: no packet matches it, yet its STE would hit UDP packets.
    match tags(Match::new().outer(|h| {
        h.ipv4_dst(Ipv4Addr::new(10, 1, 2, 0))
            .ip_protocol(17)
            .tcp_dport(0x1200)
    })) {
        Err(RuleError::PortOfOtherProtocol(e)) => assert_eq!(e.field, "tcp_dport"),
        other => panic!("{other:?}"),
    }
    // A bit outside the mask, named.
    match tags(Match::new().outer(|h| h.ipv4_dst(Ipv4Addr::new(10, 1, 2, 3)))) {
        Err(RuleError::OutsideMask(e)) => assert_eq!(e.field.to_string(), "outer.dst_ip_31_0"),
        other => panic!("{other:?}"),
    }
    match tags(Match::new().outer(|h| h.tcp_dport(0x12))) {
        Err(RuleError::OutsideMask(e)) => assert_eq!(e.field.to_string(), "outer.tcp_dport"),
        other => panic!("{other:?}"),
    }
    // Bits of sections the matcher does not use count as outside the mask too.
    assert!(matches!(
        tags(Match::new().tunnel(|t| t.vxlan_vni(1))),
        Err(RuleError::OutsideMask(_))
    ));
    // The IP version must be the matcher's.
    assert!(matches!(
        tags(Match::new().outer(|h| h.tcp_dport(0x1200))),
        Err(RuleError::PreCheck(PreCheckError::IpVersionValue { .. }))
    ));
}

#[test]
fn unreachable_tags_are_refused() {
    // Definer 2 has one source-port field for TCP and UDP, and rdma-core fills its mask
    // from the UDP port, its tag from the TCP port: a rule's TCP port bits can fall
    // outside what the STE compares, so no packet could hit it. rdma-core installs it
    // anyway; we refuse it.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.match_definer_format_supported = 1 << 2;
    let d = Dev::of(p);
    let mask = Match::new().outer(|h| h.ip_protocol(0xff).tcp_sport(13).udp_sport(0x4020));
    let chain = d.chain(&mask, DomainSide::NicRx).unwrap();
    assert_eq!(chain.builders()[0].kind, ste_builder::BuilderKind::Def2);
    let value = Match::new().outer(|h| h.ip_protocol(6).tcp_sport(1));
    let err = chain
        .rule_tags(&value.to_raw().unwrap().param, &d.ste)
        .unwrap_err();
    assert!(
        matches!(err, RuleError::Build(BuildError::Unmatchable { .. })),
        "{err:?}"
    );
    let value = Match::new().outer(|h| h.ip_protocol(17).udp_sport(0x4000));
    assert!(chain
        .rule_tags(&value.to_raw().unwrap().param, &d.ste)
        .is_ok());
}

/// A packet's fields ANDed with a mask: the rule value that matches the packet exactly
/// under that mask.
fn value_for(packet: &MatchParam, mask: &MatchParam) -> MatchParam {
    let mut v = MatchParam::default();
    for s in Section::ALL {
        let (p, m, o) = (packet.section(s), mask.section(s), v.section_mut(s));
        for i in 0..o.len() {
            o[i] = p[i] & m[i];
        }
    }
    v
}

/// Whether every STE of `chain` compares equal for `packet` with `tags`, using the
/// simulator's independent lookup keys.
fn hits(
    chain: &BuilderChain,
    tags: &crate::matching::RuleTags,
    packet: &MatchParam,
    caps: &Caps,
) -> bool {
    chain.builders().iter().zip(tags.iter()).all(|(b, tag)| {
        let key = lookup_key(chain.format(), b.lu_type, packet, caps).unwrap();
        key.iter()
            .zip(b.bit_mask)
            .zip(tag)
            .all(|((k, m), t)| k & m == *t)
    })
}

#[test]
fn tags_equal_the_simulators_keys_and_near_misses_miss() {
    let tcp = Match::new().outer(|h| {
        h.dmac([2, 0, 0, 0, 0, 9])
            .ethertype(0x0800)
            .ipv4_src(Ipv4Addr::new(192, 168, 0, 1))
            .ipv4_dst(Ipv4Addr::new(10, 0, 0, 7))
            .ip_protocol(6)
            .tcp_sport(40000)
            .tcp_dport(443)
            .ttl(64)
    });
    let v6 = Match::new().outer(|h| {
        h.ipv6_src("2001:db8::1".parse().unwrap())
            .ipv6_dst("2001:db8::2".parse().unwrap())
            .ip_protocol(17)
            .udp_sport(1000)
            .udp_dport(53)
    });
    let vxlan = Match::new()
        .outer(|h| {
            h.ipv4_dst(Ipv4Addr::new(1, 1, 1, 1))
                .ip_protocol(17)
                .udp_dport(4789)
        })
        .tunnel(|t| t.vxlan_vni(42))
        .inner(|h| {
            h.dmac([2, 0, 0, 0, 0, 1])
                .ipv4_dst(Ipv4Addr::new(172, 16, 0, 5))
                .ip_protocol(6)
                .tcp_dport(22)
        });
    let regs = Match::new().meta(|m| m.metadata_reg_c_0(0x1234).metadata_reg_c_6(7));
    let cases = [
        (tcp.clone(), five_tuple_mask(), "outer.tcp_dport"),
        (tcp.clone(), dmac_mask(), "outer.dmac_15_0"),
        (v6.clone(), ipv6_mask(), "outer.udp_dport"),
        (vxlan.clone(), vxlan_mask(), "inner.dst_ip_31_0"),
        (regs.clone(), registers_mask(), "misc2.metadata_reg_c_0"),
    ];
    for model in ALL {
        let d = Dev::model(model);
        for side in [DomainSide::NicRx, DomainSide::NicTx] {
            for (packet, mask, near_miss_field) in &cases {
                let packet = packet.to_raw().unwrap().param;
                let mask = mask.to_raw().unwrap();
                let chain = BuilderChain::new(&mask, side, &d.chain_caps()).unwrap();
                let value = value_for(&packet, &mask.param);
                let tags = chain.rule_tags(&value, &d.ste).unwrap();
                assert!(
                    hits(&chain, &tags, &packet, &d.ste),
                    "{model:?} {side} {mask:?}"
                );

                let f = crate::matching::field_by_path(near_miss_field).unwrap();
                let mut other = packet.clone();
                other.set(f.section, f.field, packet.get(f.section, f.field) ^ 0x100);
                assert!(
                    !hits(&chain, &tags, &other, &d.ste),
                    "{model:?} {side}: changing {near_miss_field} must miss"
                );
            }
        }
    }
}

#[test]
fn definers_when_the_device_has_them() {
    // Definer 22 covers an outer IPv4 5-tuple with L2 in one 32-byte STE.
    let mut p = Profile::new(DeviceModel::ConnectX6Dx);
    p.match_definer_format_supported = 1 << 22;
    let d = Dev::of(p);
    let mut chain = d.chain(&five_tuple_mask(), DomainSide::NicRx).unwrap();
    assert_eq!(chain.builders().len(), 1);
    assert_eq!(chain.definers().collect::<Vec<_>>(), [0]);
    assert_eq!(chain.builders()[0].kind, ste_builder::BuilderKind::Def22);
    chain.bind_definer(0, 0x2a).unwrap();
    assert_eq!(chain.lu_types().collect::<Vec<_>>(), [0x042a]);
    assert_eq!(
        chain.bind_definer(0, 0x1_00),
        Err(ChainError::DefinerIdTooLarge { id: 0x100 })
    );
    let value = Match::new().outer(|h| {
        h.ipv4_src(Ipv4Addr::new(1, 2, 3, 4))
            .ipv4_dst(Ipv4Addr::new(5, 6, 7, 8))
            .ip_protocol(6)
            .tcp_sport(1)
            .tcp_dport(2)
    });
    let tags = chain
        .rule_tags(&value.to_raw().unwrap().param, &d.ste)
        .unwrap();
    assert_eq!(tags.get(0).unwrap().len(), 32);

    // A mask no definer covers falls back to the legacy lookups.
    let mut chain = d.chain(&registers_mask(), DomainSide::NicRx).unwrap();
    assert_eq!(chain.definers().count(), 0);
    assert_eq!(
        chain.bind_definer(0, 1),
        Err(ChainError::NotADefiner { index: 0 })
    );
    // STEv0 has no definers, whatever the caps say.
    let mut p = Profile::new(DeviceModel::ConnectX5);
    p.match_definer_format_supported = 1 << 22;
    let d = Dev::of(p);
    assert_eq!(
        d.chain(&five_tuple_mask(), DomainSide::NicRx)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn chains_are_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BuilderChain>();
    send_sync::<crate::matching::RuleTags>();
    send_sync::<Match>();
}

#[test]
fn formats_follow_the_device() {
    for model in ALL {
        let d = Dev::model(model);
        assert_eq!(d.chain_caps().format, model.ste_format());
        assert_eq!(
            d.chain(&dmac_mask(), DomainSide::NicRx).unwrap().format(),
            model.ste_format()
        );
    }
    assert_eq!(SteFormat::V1, DeviceModel::ConnectX6Dx.ste_format());
}
