//! The typed match: every setter writes its PRM field, every PRM field has a setter,
//! values wider than their field are refused, and the raw form round-trips.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ste_builder::match_param::FieldRef;
use ste_builder::{MatchCriteria, MatchParam, Section};

use crate::matching::typed::{
    layered_setter_fns, meta_setter_fns, outer_only_setter_fns, tunnel_setter_fns,
    COMPOSITE_SETTERS, LAYERED_SETTERS, META_SETTERS, OUTER_ONLY_SETTERS, TUNNEL_SETTERS,
};
use crate::matching::{Inner, Match, MatchError, Outer, RawMatch};

/// A parameter with only `f` set to `v`.
fn only(f: FieldRef, v: u64) -> MatchParam {
    let mut p = MatchParam::default();
    p.set(f.section, f.field, v);
    p
}

/// A generated setter: its path (`outer.tcp_dport`), the PRM field it must write, and a
/// call of it on an empty match.
type Setter = (String, FieldRef, Box<dyn Fn(u64) -> Match>);

/// Every generated setter.
fn generated() -> Vec<Setter> {
    let mut out: Vec<Setter> = Vec::new();
    let outer = layered_setter_fns::<Outer>();
    let inner = layered_setter_fns::<Inner>();
    assert_eq!(outer.len(), LAYERED_SETTERS.len());
    for (i, &(name, f)) in LAYERED_SETTERS.iter().enumerate() {
        let (o, n) = (outer[i], inner[i]);
        out.push((
            format!("outer.{name}"),
            f.outer,
            Box::new(move |v| Match::new().outer(|h| o(h, v))),
        ));
        out.push((
            format!("inner.{name}"),
            f.inner,
            Box::new(move |v| Match::new().inner(|h| n(h, v))),
        ));
    }
    let fns = outer_only_setter_fns();
    for (i, &(name, f)) in OUTER_ONLY_SETTERS.iter().enumerate() {
        let s = fns[i];
        out.push((
            format!("outer.{name}"),
            f,
            Box::new(move |v| Match::new().outer(|h| s(h, v))),
        ));
    }
    let fns = tunnel_setter_fns();
    for (i, &(name, f)) in TUNNEL_SETTERS.iter().enumerate() {
        let s = fns[i];
        out.push((
            format!("tunnel.{name}"),
            f,
            Box::new(move |v| Match::new().tunnel(|t| s(t, v))),
        ));
    }
    let fns = meta_setter_fns();
    for (i, &(name, f)) in META_SETTERS.iter().enumerate() {
        let s = fns[i];
        out.push((
            format!("meta.{name}"),
            f,
            Box::new(move |v| Match::new().meta(|m| s(m, v))),
        ));
    }
    out
}

#[test]
fn every_prm_field_has_exactly_one_setter() {
    let mut owner: HashMap<(Section, &str), String> = HashMap::new();
    let mut claim = |f: FieldRef, setter: String| {
        if let Some(prev) = owner.insert((f.section, f.name), setter.clone()) {
            panic!("{f} is set by both {prev} and {setter}");
        }
    };
    for (name, f, _) in generated() {
        claim(f, name);
    }
    for &(name, fields) in COMPOSITE_SETTERS {
        for &f in fields {
            claim(f, name.to_owned());
        }
    }
    for s in Section::ALL {
        for &(name, _) in s.fields() {
            assert!(
                owner.contains_key(&(s, name)),
                "{}.{name} has no typed setter",
                s.name()
            );
        }
    }
}

#[test]
fn generated_setters_write_their_prm_field_and_nothing_else() {
    for (name, f, set) in generated() {
        let max = f.field.max();
        let raw = set(max).to_raw().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(raw.param, only(f, max), "{name} writes {f}");
        assert_eq!(raw.criteria, f.section.criteria(), "{name}");
        // One below the maximum reads back as itself: no bits move between fields.
        let raw = set(max >> 1).to_raw().unwrap();
        assert_eq!(raw.param.get(f.section, f.field), max >> 1, "{name}");
    }
}

#[test]
fn values_wider_than_the_field_are_refused_naming_it() {
    let mut checked = 0;
    for (name, f, set) in generated() {
        let too_wide = f.field.max() + 1;
        // Fields as wide as their Rust type cannot be given a wider value.
        if matches!(f.field.width, 1 | 8 | 16 | 32) {
            continue;
        }
        let err = set(too_wide).to_raw().unwrap_err();
        assert_eq!(
            err,
            MatchError::TooWide {
                field: f,
                value: too_wide
            },
            "{name}"
        );
        assert!(err.to_string().contains(&f.to_string()), "{err}");
        checked += 1;
    }
    assert!(checked > 20, "only {checked} narrow fields");
}

/// Byte `i` of the full 448-byte buffer.
fn bytes(m: &Match) -> [u8; 448] {
    m.to_raw().unwrap().to_bytes()
}

#[test]
fn hand_computed_offsets() {
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let m = Match::new().outer(|h| {
        h.smac(mac)
            .dmac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
            .ethertype(0x0800)
            .vlan_id(0xabc)
            .ipv4_src(Ipv4Addr::new(192, 168, 1, 2))
            .ipv4_dst(Ipv4Addr::new(10, 0, 0, 1))
            .ip_protocol(17)
            .udp_dport(4789)
            .tcp_sport(0x1234)
    });
    let b = bytes(&m);
    assert_eq!(b[0..6], mac);
    assert_eq!(b[6..8], [0x08, 0x00]);
    assert_eq!(b[8..14], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    assert_eq!(b[14..16], [0x0a, 0xbc]);
    assert_eq!(b[16], 17);
    // ip_version 4 in bits 0x93..0x97: byte 18, bits 3..6 (PRM numbering).
    assert_eq!(b[18], 0x04 << 1);
    assert_eq!(b[20..22], [0x12, 0x34]);
    assert_eq!(b[30..32], [0x12, 0xb5]);
    assert_eq!(b[0x2c..0x30], [192, 168, 1, 2]);
    assert_eq!(b[0x3c..0x40], [10, 0, 0, 1]);

    let m = Match::new()
        .tunnel(|t| t.vxlan_vni(0x123456).gre_key(0xdeadbeef).gtpu_teid(7))
        .meta(|m| m.source_port(0xffff).metadata_reg_c_0(0xcafe_f00d))
        .inner(|h| h.ipv6_src(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    let b = bytes(&m);
    let (misc, inner, misc2, misc3) = (64, 128, 192, 256);
    assert_eq!(b[misc + 6..misc + 8], [0xff, 0xff]);
    assert_eq!(b[misc + 16..misc + 20], [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(b[misc + 20..misc + 23], [0x12, 0x34, 0x56]);
    assert_eq!(
        b[inner + 0x20..inner + 0x30],
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    assert_eq!(b[inner + 18], 0x06 << 1);
    assert_eq!(b[misc2 + 0x2c..misc2 + 0x30], [0xca, 0xfe, 0xf0, 0x0d]);
    assert_eq!(b[misc3 + 0x28..misc3 + 0x2c], [0, 0, 0, 7]);
    assert_eq!(
        m.criteria(),
        MatchCriteria::MISC | MatchCriteria::INNER | MatchCriteria::MISC2 | MatchCriteria::MISC3
    );
}

#[test]
fn raw_round_trip() {
    let m = Match::new()
        .outer(|h| {
            h.ipv6_dst(Ipv6Addr::LOCALHOST)
                .tcp_flags(0x1ff)
                .vlan_cfi(true)
        })
        .tunnel(|t| t.geneve_vni(9).geneve_oam(true))
        .meta(|m| m.prog_sample_field_id_5(5).prog_sample_field_value_5(77));
    let raw = m.to_raw().unwrap();
    let bytes = raw.to_bytes();
    let again = RawMatch::from_bytes(raw.criteria.bits(), &bytes).unwrap();
    assert_eq!(again, raw);
    let typed = Match::from(again.clone());
    assert_eq!(typed.to_raw().unwrap(), raw);
    assert_eq!(typed.get("outer.tcp_flags"), Ok(0x1ff));
    assert_eq!(typed.get("misc4.prog_sample_field_value_5"), Ok(77));

    // A prefix is zero-extended; criteria may enable more than is set.
    let short = RawMatch::from_bytes(0x01, &bytes[..64]).unwrap();
    assert_eq!(short.param.outer, raw.param.outer);
    assert_eq!(short.param.misc, [0; 64]);
    assert_eq!(
        Match::from(RawMatch::from_bytes(0x03, &[]).unwrap()).criteria(),
        MatchCriteria::OUTER | MatchCriteria::MISC
    );

    assert_eq!(
        RawMatch::from_bytes(0x80, &[]),
        Err(MatchError::InvalidCriteria(0x80))
    );
    assert!(matches!(
        RawMatch::from_bytes(1, &[0; 449]),
        Err(MatchError::Buffer(_))
    ));
}

#[test]
fn ip_version_follows_the_addresses() {
    let err = Match::new()
        .outer(|h| {
            h.ipv4_src(Ipv4Addr::LOCALHOST)
                .ipv6_dst(Ipv6Addr::LOCALHOST)
        })
        .to_raw()
        .unwrap_err();
    assert_eq!(
        err,
        MatchError::IpVersionConflict {
            section: Section::Outer,
            current: 4,
            wanted: 6
        }
    );
    assert!(Match::new()
        .outer(|h| h.ip_version(6).ipv4_dst(Ipv4Addr::LOCALHOST))
        .error()
        .is_some());
    // Outer and inner are separate; repeating the same version is fine.
    let m = Match::new()
        .outer(|h| h.ip_version(4).ipv4_dst(Ipv4Addr::LOCALHOST))
        .inner(|h| h.ipv6_src(Ipv6Addr::LOCALHOST));
    assert_eq!(m.get("outer.ip_version"), Ok(4));
    assert_eq!(m.get("inner.ip_version"), Ok(6));
    assert!(matches!(
        Match::new().outer(|h| h.ip_version(16)).error(),
        Some(MatchError::TooWide { value: 16, .. })
    ));
}

#[test]
fn first_error_is_kept() {
    let m = Match::new()
        .outer(|h| h.vlan_id(0x1000).ip_dscp(0x40))
        .field("misc.nonsense", 1)
        .tunnel(|t| t.vxlan_vni(1));
    match m.to_raw() {
        Err(MatchError::TooWide { field, value }) => {
            assert_eq!(field.to_string(), "outer.first_vid");
            assert_eq!(value, 0x1000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.get("misc.vxlan_vni"),
        Ok(0),
        "setters after an error do nothing"
    );
}

#[test]
fn fields_by_prm_path() {
    let m = Match::new()
        .field("misc.vxlan_vni", 42)
        .field("misc2.metadata_reg_c_7", 1);
    let raw = m.to_raw().unwrap();
    assert_eq!(raw.criteria, MatchCriteria::MISC | MatchCriteria::MISC2);
    assert_eq!(m.get("misc.vxlan_vni"), Ok(42));
    assert_eq!(
        Match::new().field("misc.vxlan_vni", 1 << 24).to_raw(),
        Err(MatchError::TooWide {
            field: crate::matching::field_by_path("misc.vxlan_vni").unwrap(),
            value: 1 << 24
        })
    );
    assert_eq!(
        Match::new().field("outer.vxlan_vni", 1).to_raw(),
        Err(MatchError::UnknownField("outer.vxlan_vni".into()))
    );
    assert!(m.get("nonsense").is_err());
}

#[test]
fn exact_mask_covers_every_assigned_field() {
    let value = Match::new()
        .outer(|h| {
            h.ipv4_dst(Ipv4Addr::new(10, 0, 0, 1))
                .tcp_dport(443)
                .tcp_sport(0)
                .vlan_id(5)
        })
        .meta(|m| m.source_port(3));
    let mask = value.exact_mask();
    assert_eq!(mask.get("outer.dst_ip_31_0"), Ok(0xffff_ffff));
    assert_eq!(mask.get("outer.tcp_dport"), Ok(0xffff));
    assert_eq!(
        mask.get("outer.tcp_sport"),
        Ok(0xffff),
        "assigned zero counts"
    );
    assert_eq!(mask.get("outer.first_vid"), Ok(0xfff));
    assert_eq!(
        mask.get("outer.ip_version"),
        Ok(4),
        "the version, not all ones"
    );
    assert_eq!(mask.get("misc.source_port"), Ok(0xffff));
    assert_eq!(mask.get("outer.udp_dport"), Ok(0));
    assert_eq!(mask.criteria(), value.criteria());
}
