//! Random matcher masks, rule values and packets.
//!
//! A packet is first described as a match parameter holding every header field it has
//! (a *description*; `sim::packet::build_from_match_lossy` turns it into bytes). A
//! [`Form`] says which headers it has: L3 (none, IPv4, IPv6), L4 (none, TCP, UDP), and
//! whether it is VXLAN with an inner IPv4 packet. A [`Shape`] is a matcher's mask and
//! the form its rules' packets have; a rule's value is a description of that form under
//! the mask. Field values come from small pools a third of the time, so that rules of
//! different matchers overlap and packets made for one rule meet the others.
//!
//! Two things are never generated (see `reference`): L4 ports masked without a full
//! `ip_protocol` mask, and S-VLAN tags.

use std::fmt;

use ste_builder::bits::BitField;
use ste_builder::match_param::Section;
use ste_builder::prm::dr_match_spec as spec;
use ste_builder::prm::{dr_match_set_misc as misc, dr_match_set_misc2 as misc2};
use ste_builder::MatchParam;

/// The uplink's vport number (packets from the wire carry it as their source port).
pub const WIRE_PORT: u64 = 0xffff;
/// The vports of the simulated e-switch besides the uplink.
pub const VPORTS: [u64; 5] = [0, 1, 2, 3, 4];

/// A small deterministic generator (SplitMix64): ops carry seeds, so a shrunk case
/// replays exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value from `pool` a third of the time, else `bits` random bits.
    fn pooled(&mut self, pool: &[u64], bits: u32) -> u64 {
        if self.chance(35) {
            self.pick(pool)
        } else {
            self.next() & ((1u64 << bits) - 1)
        }
    }
}

/// Layer-3 header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    None,
    V4,
    V6,
}

/// Layer-4 header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// No TCP/UDP header (another IP protocol, or no IP at all).
    None,
    Tcp,
    Udp,
}

/// Which headers a packet has. `None` fields are chosen at random per packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Form {
    pub l3: Option<L3>,
    pub l4: Option<L4>,
    pub vxlan: Option<bool>,
    pub inner_l4: Option<L4>,
}

/// The domain a case steers in (what a packet's origin can be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom {
    NicRx,
    NicTx,
    Fdb,
}

// ---- field helpers --------------------------------------------------------------------

fn set(p: &mut MatchParam, s: Section, f: BitField, v: u64) {
    p.set(s, f, v);
}

fn set_mac(p: &mut MatchParam, s: Section, hi: BitField, lo: BitField, mac: u64) {
    p.set(s, hi, mac >> 16);
    p.set(s, lo, mac & 0xffff);
}

const SRC_IP: [BitField; 4] = [
    spec::SRC_IP_127_96,
    spec::SRC_IP_95_64,
    spec::SRC_IP_63_32,
    spec::SRC_IP_31_0,
];
const DST_IP: [BitField; 4] = [
    spec::DST_IP_127_96,
    spec::DST_IP_95_64,
    spec::DST_IP_63_32,
    spec::DST_IP_31_0,
];
const REGS: [(&str, BitField); 9] = [
    ("reg_c0", misc2::METADATA_REG_C_0),
    ("reg_c1", misc2::METADATA_REG_C_1),
    ("reg_c2", misc2::METADATA_REG_C_2),
    ("reg_c3", misc2::METADATA_REG_C_3),
    ("reg_c4", misc2::METADATA_REG_C_4),
    ("reg_c5", misc2::METADATA_REG_C_5),
    ("reg_c6", misc2::METADATA_REG_C_6),
    ("reg_c7", misc2::METADATA_REG_C_7),
    ("reg_a", misc2::METADATA_REG_A),
];

/// A 128-bit address into the four address words (an IPv4 address is the last word).
fn set_addr(p: &mut MatchParam, s: Section, words: &[BitField; 4], addr: u128) {
    for (i, w) in words.iter().enumerate() {
        p.set(s, *w, (addr >> (96 - 32 * i)) as u32 as u64);
    }
}

/// The mask of the first `len` bits of a `width`-bit field.
fn prefix(len: u32, width: u32) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len)) >> (128 - width)
    }
}

/// Ports that make the packet builder choose a tunnel or RoCE: not used as plain ports.
const TUNNEL_PORTS: [u64; 6] = [4789, 4790, 6081, 6635, 2152, 4791];

fn port(rng: &mut Rng) -> u64 {
    loop {
        let p = rng.pooled(&[53, 80, 443, 4000], 16);
        if !TUNNEL_PORTS.contains(&p) {
            return p;
        }
    }
}

fn mac(rng: &mut Rng) -> u64 {
    0x0200_0000_0000 | rng.pooled(&[1, 2, 3, 4], 24)
}

fn ipv4(rng: &mut Rng) -> u128 {
    0x0a00_0000 | u128::from(rng.pooled(&[1, 2, 3, 4], 24))
}

fn ipv6(rng: &mut Rng) -> u128 {
    let low = if rng.chance(50) {
        u128::from(rng.pick(&[1u64, 2, 3, 4]))
    } else {
        u128::from(rng.next()) << 32 | u128::from(rng.next() as u32)
    };
    0x2001_0db8 << 96 | low
}

// ---- packet descriptions ------------------------------------------------------------

/// The L3 + L4 headers of one layer of a packet description.
fn ip_layer(rng: &mut Rng, p: &mut MatchParam, s: Section, l3: L3, l4: L4) {
    match l3 {
        L3::None => {
            set(
                p,
                s,
                spec::ETHERTYPE,
                rng.pick(&[0x88cc, 0x8906, 0x88e5, 0x1234, 0x9000]),
            );
            return;
        }
        L3::V4 => {
            set(p, s, spec::ETHERTYPE, 0x0800);
            set(p, s, spec::IP_VERSION, 4);
            set_addr(p, s, &SRC_IP, ipv4(rng));
            set_addr(p, s, &DST_IP, ipv4(rng));
        }
        L3::V6 => {
            set(p, s, spec::ETHERTYPE, 0x86dd);
            set(p, s, spec::IP_VERSION, 6);
            set_addr(p, s, &SRC_IP, ipv6(rng));
            set_addr(p, s, &DST_IP, ipv6(rng));
        }
    }
    match l4 {
        L4::None => {
            let icmp = if l3 == L3::V6 { 58 } else { 1 };
            set(p, s, spec::IP_PROTOCOL, rng.pick(&[icmp, 253]));
        }
        L4::Tcp => {
            set(p, s, spec::IP_PROTOCOL, 6);
            set(p, s, spec::TCP_SPORT, port(rng));
            set(p, s, spec::TCP_DPORT, port(rng));
        }
        L4::Udp => {
            set(p, s, spec::IP_PROTOCOL, 17);
            set(p, s, spec::UDP_SPORT, port(rng));
            set(p, s, spec::UDP_DPORT, port(rng));
        }
    }
}

/// A random packet description of `form` for a packet in `dom`.
pub fn describe(rng: &mut Rng, form: &Form, dom: Dom) -> MatchParam {
    let mut p = MatchParam::default();
    let o = Section::Outer;
    let vxlan = form.vxlan.unwrap_or_else(|| rng.chance(20));
    set_mac(&mut p, o, spec::DMAC_47_16, spec::DMAC_15_0, mac(rng));
    set_mac(&mut p, o, spec::SMAC_47_16, spec::SMAC_15_0, mac(rng));
    if rng.chance(25) {
        set(&mut p, o, spec::CVLAN_TAG, 1);
        set(&mut p, o, spec::FIRST_VID, rng.pooled(&[1, 2, 100], 12));
        set(&mut p, o, spec::FIRST_PRIO, rng.below(8));
    }
    if vxlan {
        ip_layer(rng, &mut p, o, L3::V4, L4::Udp);
        set(&mut p, o, spec::UDP_DPORT, 4789);
        set(
            &mut p,
            Section::Misc,
            misc::VXLAN_VNI,
            rng.pooled(&[1, 2, 3, 4], 24),
        );
        let i = Section::Inner;
        set_mac(&mut p, i, spec::DMAC_47_16, spec::DMAC_15_0, mac(rng));
        set_mac(&mut p, i, spec::SMAC_47_16, spec::SMAC_15_0, mac(rng));
        let l4 = form
            .inner_l4
            .unwrap_or_else(|| rng.pick(&[L4::None, L4::Tcp, L4::Udp]));
        ip_layer(rng, &mut p, i, L3::V4, l4);
    } else {
        let l3 = form
            .l3
            .unwrap_or_else(|| rng.pick(&[L3::None, L3::V4, L3::V4, L3::V6]));
        let l4 = match l3 {
            L3::None => L4::None,
            _ => form
                .l4
                .unwrap_or_else(|| rng.pick(&[L4::None, L4::Tcp, L4::Udp])),
        };
        ip_layer(rng, &mut p, o, l3, l4);
    }
    for (_, reg) in REGS {
        if rng.chance(50) {
            set(&mut p, Section::Misc2, reg, rng.pooled(&[1, 2, 3], 32));
        }
    }
    if dom == Dom::Fdb {
        let src = if rng.chance(40) {
            WIRE_PORT
        } else {
            rng.pick(&VPORTS)
        };
        set(&mut p, Section::Misc, misc::SOURCE_PORT, src);
    }
    p
}

// ---- masks ------------------------------------------------------------------------------

/// A matcher's mask and the form of its rules' packets, with a short description.
#[derive(Clone)]
pub struct Shape {
    pub mask: MatchParam,
    pub form: Form,
    pub label: String,
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.label, self.mask)
    }
}

/// Builds a mask and its label.
struct MaskBuilder {
    mask: MatchParam,
    parts: Vec<String>,
}

impl MaskBuilder {
    fn set(&mut self, s: Section, f: BitField, m: u64, what: impl Into<String>) {
        if m != 0 {
            self.mask.set(s, f, m);
            self.parts.push(what.into());
        }
    }

    fn addr(&mut self, s: Section, words: &[BitField; 4], width: u32, len: u32, what: &str) {
        if len == 0 {
            return;
        }
        set_addr(&mut self.mask, s, words, prefix(len, width));
        self.parts.push(format!("{what}/{len}"));
    }

    fn mac(&mut self, s: Section, hi: BitField, lo: BitField, len: u32, what: &str) {
        if len == 0 {
            return;
        }
        set_mac(&mut self.mask, s, hi, lo, prefix(len, 48) as u64);
        self.parts.push(format!("{what}/{len}"));
    }

    /// Port masks of `l4` (each absent, full or random bits), and `ip_protocol`
    /// (always when a port is masked).
    fn l4(&mut self, rng: &mut Rng, s: Section, l4: L4, pfx: &str) {
        let (sport, dport, name) = match l4 {
            L4::Tcp => (spec::TCP_SPORT, spec::TCP_DPORT, "tcp"),
            L4::Udp => (spec::UDP_SPORT, spec::UDP_DPORT, "udp"),
            L4::None => {
                if rng.chance(50) {
                    self.set(s, spec::IP_PROTOCOL, 0xff, format!("{pfx}proto"));
                }
                return;
            }
        };
        let port_mask = |rng: &mut Rng| match rng.below(4) {
            0 => 0,
            1 => rng.next() & 0xffff,
            _ => 0xffff,
        };
        let (sm, dm) = (port_mask(rng), port_mask(rng));
        self.set(s, spec::IP_PROTOCOL, 0xff, format!("{pfx}proto"));
        self.set(s, sport, sm, format!("{pfx}{name}_sport&{sm:#x}"));
        self.set(s, dport, dm, format!("{pfx}{name}_dport&{dm:#x}"));
    }
}

fn addr_len(rng: &mut Rng, width: u32) -> u32 {
    match rng.below(5) {
        0 => 0,
        1 => width,
        2 => width / 2,
        _ => 1 + rng.below(u64::from(width)) as u32,
    }
}

impl Shape {
    /// The empty mask: every packet.
    pub fn any() -> Shape {
        Shape {
            mask: MatchParam::default(),
            form: Form::default(),
            label: "any".to_string(),
        }
    }

    /// A random matcher shape for domain `dom`.
    pub fn random(rng: &mut Rng, dom: Dom) -> Shape {
        let mut b = MaskBuilder {
            mask: MatchParam::default(),
            parts: Vec::new(),
        };
        let mut form = Form::default();
        let o = Section::Outer;
        let family = rng.below(100);
        match family {
            // L2.
            0..=19 => loop {
                let dmac = rng.pick(&[0, 48, 48, 24, 40]);
                b.mac(o, spec::DMAC_47_16, spec::DMAC_15_0, dmac, "dmac");
                if rng.chance(40) {
                    b.mac(o, spec::SMAC_47_16, spec::SMAC_15_0, 48, "smac");
                }
                if rng.chance(40) {
                    b.set(o, spec::ETHERTYPE, 0xffff, "ethertype");
                }
                if rng.chance(30) {
                    b.set(o, spec::CVLAN_TAG, 1, "cvlan");
                    let vid = rng.pick(&[0xfff, 0xfff, 0xf00]);
                    b.set(o, spec::FIRST_VID, vid, format!("vid&{vid:#x}"));
                    if rng.chance(30) {
                        b.set(o, spec::FIRST_PRIO, 7, "prio");
                    }
                }
                if !b.parts.is_empty() {
                    break;
                }
            },
            // IPv4, maybe with L4 and a destination MAC.
            20..=49 => {
                let l4 = rng.pick(&[L4::None, L4::Tcp, L4::Tcp, L4::Udp]);
                form.l3 = Some(L3::V4);
                form.vxlan = Some(false);
                form.l4 = Some(l4);
                b.set(o, spec::IP_VERSION, 4, "ipv4");
                b.addr(o, &SRC_IP, 32, addr_len(rng, 32), "src");
                b.addr(o, &DST_IP, 32, addr_len(rng, 32), "dst");
                b.l4(rng, o, l4, "");
                if rng.chance(20) {
                    b.mac(o, spec::DMAC_47_16, spec::DMAC_15_0, 48, "dmac");
                }
            }
            // IPv6.
            50..=64 => {
                let l4 = rng.pick(&[L4::None, L4::Tcp, L4::Udp]);
                form.l3 = Some(L3::V6);
                form.vxlan = Some(false);
                form.l4 = Some(l4);
                b.set(o, spec::IP_VERSION, 6, "ipv6");
                b.addr(o, &SRC_IP, 128, addr_len(rng, 128), "src");
                b.addr(o, &DST_IP, 128, addr_len(rng, 128), "dst");
                b.l4(rng, o, l4, "");
            }
            // VXLAN: the VNI and inner headers, maybe the outer UDP port.
            65..=84 => {
                let i = Section::Inner;
                let inner_l4 = rng.pick(&[L4::None, L4::Tcp, L4::Udp]);
                form.vxlan = Some(true);
                form.inner_l4 = Some(inner_l4);
                if rng.chance(80) {
                    let vni = rng.pick(&[0xff_ffff, 0xff_ffff, 0xff_ff00]);
                    b.set(Section::Misc, misc::VXLAN_VNI, vni, format!("vni&{vni:#x}"));
                }
                if rng.chance(25) {
                    b.set(o, spec::IP_VERSION, 4, "ipv4");
                    b.set(o, spec::IP_PROTOCOL, 0xff, "proto");
                    b.set(o, spec::UDP_DPORT, 0xffff, "udp_dport");
                }
                if rng.chance(50) {
                    b.mac(i, spec::DMAC_47_16, spec::DMAC_15_0, 48, "inner_dmac");
                }
                if rng.chance(60) || b.parts.is_empty() {
                    b.set(i, spec::IP_VERSION, 4, "inner_ipv4");
                    b.addr(i, &SRC_IP, 32, addr_len(rng, 32), "inner_src");
                    b.addr(i, &DST_IP, 32, addr_len(rng, 32), "inner_dst");
                    b.l4(rng, i, inner_l4, "inner_");
                }
            }
            // Metadata registers.
            85..=96 => {
                regs(rng, &mut b, 1);
            }
            // Everything.
            _ => {}
        }
        if (20..=84).contains(&family) && rng.chance(15) {
            regs(rng, &mut b, 0);
        }
        if dom == Dom::Fdb && rng.chance(40) {
            b.set(Section::Misc, misc::SOURCE_PORT, 0xffff, "source_port");
        }
        let label = if b.parts.is_empty() {
            "any".to_string()
        } else {
            b.parts.join(",")
        };
        Shape {
            mask: b.mask,
            form,
            label,
        }
    }

    /// A rule value: a description of the shape's form under the mask.
    pub fn value(&self, rng: &mut Rng, dom: Dom) -> MatchParam {
        and(&describe(rng, &self.form, dom), &self.mask)
    }
}

/// At least `min` registers, each with a full or random-bits mask.
fn regs(rng: &mut Rng, b: &mut MaskBuilder, min: usize) {
    loop {
        let mut n = 0;
        for (name, reg) in REGS {
            if rng.chance(25) {
                let m = if rng.chance(60) {
                    0xffff_ffff
                } else {
                    rng.next() & 0xffff_ffff
                };
                b.set(Section::Misc2, reg, m, format!("{name}&{m:#x}"));
                n += 1;
            }
        }
        if n >= min {
            return;
        }
    }
}

/// `a & b`, byte by byte.
pub fn and(a: &MatchParam, b: &MatchParam) -> MatchParam {
    let mut out = MatchParam::default();
    for s in Section::ALL {
        let (x, y) = (a.section(s), b.section(s));
        for (o, (x, y)) in out.section_mut(s).iter_mut().zip(x.iter().zip(y)) {
            *o = x & y;
        }
    }
    out
}

/// `value` where `mask` is set, `other` elsewhere.
pub fn merge(value: &MatchParam, mask: &MatchParam, other: &MatchParam) -> MatchParam {
    let mut out = MatchParam::default();
    for s in Section::ALL {
        let (v, m, x) = (value.section(s), mask.section(s), other.section(s));
        for (i, o) in out.section_mut(s).iter_mut().enumerate() {
            *o = v[i] & m[i] | x[i] & !m[i];
        }
    }
    out
}

/// `p` with the `n`-th set bit of `mask` (counting from the start of the buffer)
/// flipped; `None` when the mask has no bits.
pub fn flip_masked_bit(rng: &mut Rng, p: &MatchParam, mask: &MatchParam) -> Option<MatchParam> {
    let ones: u32 = Section::ALL
        .iter()
        .map(|&s| mask.section(s).iter().map(|b| b.count_ones()).sum::<u32>())
        .sum();
    if ones == 0 {
        return None;
    }
    let mut k = rng.below(u64::from(ones)) as u32;
    let mut out = p.clone();
    for s in Section::ALL {
        for i in 0..64 {
            let m = mask.section(s)[i];
            let c = m.count_ones();
            if k < c {
                // The k-th set bit of this byte.
                let mut bits = m;
                for _ in 0..k {
                    bits &= bits - 1;
                }
                out.section_mut(s)[i] ^= bits & bits.wrapping_neg();
                return Some(out);
            }
            k -= c;
        }
    }
    unreachable!("k < ones")
}
