//! Which lookups a matcher's mask needs, in which order: rdma-core's decision order
//! (`dr_matcher_set_ste_builders` and `dr_matcher_set_definer_builders`).
//!
//! The selector works on a copy of the normalised mask. Each step asks a question of the
//! mask *as it is now* (a builder that ran has already consumed its fields, so, for
//! example, a combined source+destination MAC lookup leaves nothing for the separate
//! source-MAC lookup), and appends the lookup when the answer is yes. What is left in the
//! copy after the last step is what no lookup could take.
//!
//! # Fewer STEs?
//!
//! The order here is rdma-core's, so that our STE chains decode to the same lookups as
//! its recordings. Candidates for saving an STE, and why they are kept:
//!
//! - An IPv4 5-tuple mask that names `ip_version` (as DR requires for IPv4 addresses)
//!   gets an L2 lookup that only compares the L3 type, ahead of the 5-tuple lookup. It
//!   looks redundant but is not: the 5-tuple lookup also reads IPv6 packets (their low
//!   address words), so without the L3-type compare an IPv6 packet could hit an IPv4
//!   rule.
//! - Definer lookups (STEv1/v2) match an L2 + IPv4 5-tuple mask, or an IPv6 address pair,
//!   in one 32-byte STE where the legacy lookups need two or three. They are only used
//!   when the device advertises definer formats, as rdma-core does; the simulator's
//!   profiles advertise none, so the recordings use legacy lookups throughout.

use ste_builder::bits::BitField;
use ste_builder::builder::BuilderKind as K;
use ste_builder::caps::FlexParserIds;
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
    dr_match_set_misc4 as misc4, dr_match_set_misc5 as misc5, dr_match_spec as spec,
};
use ste_builder::{MatchCriteria, MatchParam, Section, SteBuild, SteFormat};

use super::chain::{ChainCaps, ChainError, DomainSide};

/// `flex_parser_protocols` bits (PRM `MLX5_FLEX_PARSER_*_ENABLED`).
pub mod flex_protocols {
    /// GENEVE.
    pub const GENEVE: u32 = 1 << 3;
    /// MPLS over GRE.
    pub const MPLS_OVER_GRE: u32 = 1 << 4;
    /// MPLS over UDP.
    pub const MPLS_OVER_UDP: u32 = 1 << 5;
    /// VXLAN-GPE.
    pub const VXLAN_GPE: u32 = 1 << 7;
    /// ICMPv4.
    pub const ICMP_V4: u32 = 1 << 8;
    /// ICMPv6.
    pub const ICMP_V6: u32 = 1 << 9;
    /// GENEVE TLV option 0.
    pub const GENEVE_OPT_0: u32 = 1 << 10;
    /// GTP-U.
    pub const GTPU: u32 = 1 << 11;
    /// GTP-U dword 2.
    pub const GTPU_DW_2: u32 = 1 << 16;
    /// GTP-U first extension header dword 0.
    pub const GTPU_FIRST_EXT_DW_0: u32 = 1 << 17;
    /// GTP-U dword 0.
    pub const GTPU_DW_0: u32 = 1 << 18;
    /// GTP-U TEID.
    pub const GTPU_TEID: u32 = 1 << 19;
}
use flex_protocols as fp;

/// Flex parsers `0..=3` sit in the first flex-parser lookup, `4..=7` in the second.
const MAX_FLEX_0_ID: u64 = 3;
const MAX_FLEX_1_ID: u64 = 7;

/// The definers rdma-core tries one by one, each alone covering the whole mask, in its
/// order. (Definers 26 + 6, for IPv6 source + destination, are tried in between.)
const SINGLE_DEFINERS_FIRST: [(u32, K); 6] = [
    (0, K::Def0),
    (2, K::Def2),
    (16, K::Def16),
    (22, K::Def22),
    (24, K::Def24),
    (25, K::Def25),
];
const SINGLE_DEFINERS_LAST: [(u32, K); 2] = [(28, K::Def28), (33, K::Def33)];

/// The mask copy a selection consumes, with its questions.
struct Mask(MatchParam);

impl Mask {
    fn any(&self, section: Section, fields: &[BitField]) -> bool {
        fields.iter().any(|&f| self.0.get(section, f) != 0)
    }

    fn get(&self, section: Section, f: BitField) -> u64 {
        self.0.get(section, f)
    }

    fn smac(&self, s: Section) -> bool {
        self.any(s, &[spec::SMAC_47_16, spec::SMAC_15_0])
    }

    fn dmac(&self, s: Section) -> bool {
        self.any(s, &[spec::DMAC_47_16, spec::DMAC_15_0])
    }

    fn src_addr(&self, s: Section) -> bool {
        self.any(
            s,
            &[
                spec::SRC_IP_127_96,
                spec::SRC_IP_95_64,
                spec::SRC_IP_63_32,
                spec::SRC_IP_31_0,
            ],
        )
    }

    fn dst_addr(&self, s: Section) -> bool {
        self.any(
            s,
            &[
                spec::DST_IP_127_96,
                spec::DST_IP_95_64,
                spec::DST_IP_63_32,
                spec::DST_IP_31_0,
            ],
        )
    }

    fn l3_base(&self, s: Section) -> bool {
        self.any(
            s,
            &[
                spec::IP_PROTOCOL,
                spec::FRAG,
                spec::TCP_FLAGS,
                spec::IP_ECN,
                spec::IP_DSCP,
            ],
        )
    }

    fn tcp_udp_ports(&self, s: Section) -> bool {
        self.any(
            s,
            &[
                spec::TCP_SPORT,
                spec::TCP_DPORT,
                spec::UDP_SPORT,
                spec::UDP_DPORT,
            ],
        )
    }

    fn ipv4_5_tuple(&self, s: Section) -> bool {
        self.l3_base(s)
            || self.tcp_udp_ports(s)
            || self.any(s, &[spec::DST_IP_31_0, spec::SRC_IP_31_0])
    }

    fn ttl(&self, s: Section) -> bool {
        self.any(s, &[spec::IP_TTL_HOPLIMIT])
    }

    fn ihl(&self, s: Section) -> bool {
        self.any(s, &[spec::IPV4_IHL])
    }

    /// The fields of the destination-MAC lookup: first VLAN, destination MAC, EtherType,
    /// IP version, and the layer's second VLAN.
    fn l2_dst(&self, s: Section) -> bool {
        let second = if s == Section::Inner {
            [
                misc::INNER_SECOND_VID,
                misc::INNER_SECOND_CFI,
                misc::INNER_SECOND_PRIO,
                misc::INNER_SECOND_CVLAN_TAG,
                misc::INNER_SECOND_SVLAN_TAG,
            ]
        } else {
            [
                misc::OUTER_SECOND_VID,
                misc::OUTER_SECOND_CFI,
                misc::OUTER_SECOND_PRIO,
                misc::OUTER_SECOND_CVLAN_TAG,
                misc::OUTER_SECOND_SVLAN_TAG,
            ]
        };
        self.any(
            s,
            &[
                spec::FIRST_VID,
                spec::FIRST_CFI,
                spec::FIRST_PRIO,
                spec::CVLAN_TAG,
                spec::SVLAN_TAG,
                spec::DMAC_47_16,
                spec::DMAC_15_0,
                spec::ETHERTYPE,
                spec::IP_VERSION,
            ],
        ) || self.any(Section::Misc, &second)
    }

    /// The fields of the IPv6 L3/L4 lookup.
    fn ipv6_l3_l4(&self, s: Section) -> bool {
        let flow_label = if s == Section::Inner {
            misc::INNER_IPV6_FLOW_LABEL
        } else {
            misc::OUTER_IPV6_FLOW_LABEL
        };
        self.l3_base(s)
            || self.tcp_udp_ports(s)
            || self.ttl(s)
            || self.any(Section::Misc, &[flow_label])
    }

    fn l4_misc(&self, inner: bool) -> bool {
        let f = if inner {
            [misc3::INNER_TCP_SEQ_NUM, misc3::INNER_TCP_ACK_NUM]
        } else {
            [misc3::OUTER_TCP_SEQ_NUM, misc3::OUTER_TCP_ACK_NUM]
        };
        self.any(Section::Misc3, &f)
    }

    fn first_mpls(&self, inner: bool) -> bool {
        let f = if inner {
            [
                misc2::INNER_FIRST_MPLS_LABEL,
                misc2::INNER_FIRST_MPLS_EXP,
                misc2::INNER_FIRST_MPLS_S_BOS,
                misc2::INNER_FIRST_MPLS_TTL,
            ]
        } else {
            [
                misc2::OUTER_FIRST_MPLS_LABEL,
                misc2::OUTER_FIRST_MPLS_EXP,
                misc2::OUTER_FIRST_MPLS_S_BOS,
                misc2::OUTER_FIRST_MPLS_TTL,
            ]
        };
        self.any(Section::Misc2, &f)
    }

    fn gre(&self) -> bool {
        self.any(
            Section::Misc,
            &[
                misc::GRE_KEY_H,
                misc::GRE_KEY_L,
                misc::GRE_PROTOCOL,
                misc::GRE_C_PRESENT,
                misc::GRE_K_PRESENT,
                misc::GRE_S_PRESENT,
            ],
        )
    }

    fn mpls_over_gre(&self) -> bool {
        self.any(
            Section::Misc2,
            &[
                misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL,
                misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP,
                misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS,
                misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL,
            ],
        )
    }

    fn mpls_over_udp(&self) -> bool {
        self.any(
            Section::Misc2,
            &[
                misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS,
                misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL,
            ],
        )
    }

    fn vxlan_gpe(&self) -> bool {
        self.any(
            Section::Misc3,
            &[
                misc3::OUTER_VXLAN_GPE_VNI,
                misc3::OUTER_VXLAN_GPE_NEXT_PROTOCOL,
                misc3::OUTER_VXLAN_GPE_FLAGS,
            ],
        )
    }

    fn geneve(&self) -> bool {
        self.any(
            Section::Misc,
            &[
                misc::GENEVE_VNI,
                misc::GENEVE_OAM,
                misc::GENEVE_PROTOCOL_TYPE,
                misc::GENEVE_OPT_LEN,
            ],
        )
    }

    fn gtpu(&self) -> bool {
        self.any(
            Section::Misc3,
            &[
                misc3::GTPU_MSG_FLAGS,
                misc3::GTPU_MSG_TYPE,
                misc3::GTPU_TEID,
            ],
        )
    }

    fn icmpv4(&self) -> bool {
        self.any(
            Section::Misc3,
            &[misc3::ICMP_TYPE, misc3::ICMP_CODE, misc3::ICMP_HEADER_DATA],
        )
    }

    fn icmpv6(&self) -> bool {
        self.any(
            Section::Misc3,
            &[
                misc3::ICMPV6_TYPE,
                misc3::ICMPV6_CODE,
                misc3::ICMPV6_HEADER_DATA,
            ],
        )
    }

    fn reg_c_0_3(&self) -> bool {
        self.any(
            Section::Misc2,
            &[
                misc2::METADATA_REG_C_0,
                misc2::METADATA_REG_C_1,
                misc2::METADATA_REG_C_2,
                misc2::METADATA_REG_C_3,
            ],
        )
    }

    fn reg_c_4_7(&self) -> bool {
        self.any(
            Section::Misc2,
            &[
                misc2::METADATA_REG_C_4,
                misc2::METADATA_REG_C_5,
                misc2::METADATA_REG_C_6,
                misc2::METADATA_REG_C_7,
            ],
        )
    }

    fn tunnel_header(&self) -> bool {
        self.any(
            Section::Misc5,
            &[
                misc5::TUNNEL_HEADER_0,
                misc5::TUNNEL_HEADER_1,
                misc5::TUNNEL_HEADER_2,
                misc5::TUNNEL_HEADER_3,
            ],
        )
    }

    /// The eight flex-parser sample slots as (id, value) masks.
    fn samples(&self) -> [(u64, u64); 8] {
        const SLOTS: [(BitField, BitField); 8] = [
            (
                misc4::PROG_SAMPLE_FIELD_ID_0,
                misc4::PROG_SAMPLE_FIELD_VALUE_0,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_1,
                misc4::PROG_SAMPLE_FIELD_VALUE_1,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_2,
                misc4::PROG_SAMPLE_FIELD_VALUE_2,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_3,
                misc4::PROG_SAMPLE_FIELD_VALUE_3,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_4,
                misc4::PROG_SAMPLE_FIELD_VALUE_4,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_5,
                misc4::PROG_SAMPLE_FIELD_VALUE_5,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_6,
                misc4::PROG_SAMPLE_FIELD_VALUE_6,
            ),
            (
                misc4::PROG_SAMPLE_FIELD_ID_7,
                misc4::PROG_SAMPLE_FIELD_VALUE_7,
            ),
        ];
        SLOTS.map(|(id, value)| {
            (
                self.get(Section::Misc4, id),
                self.get(Section::Misc4, value),
            )
        })
    }

    /// A sample slot reads flex parser 0..=3. Id 0 is parser 0, so an unused slot (id 0)
    /// only counts when it has a value.
    fn flex_parser_0_3(&self) -> bool {
        self.samples().iter().any(|&(id, value)| {
            if id != 0 {
                id <= MAX_FLEX_0_ID
            } else {
                value != 0
            }
        })
    }

    fn flex_parser_4_7(&self) -> bool {
        self.samples()
            .iter()
            .any(|&(id, _)| id > MAX_FLEX_0_ID && id <= MAX_FLEX_1_ID)
    }
}

/// What the device offers for the tunnel and flex-parser lookups (rdma-core's
/// `dr_matcher_supp_*`): a newer format has some of them built in, older ones need a
/// flex parser assigned by firmware.
struct Support<'c> {
    format: SteFormat,
    protocols: u32,
    ok_bits: bool,
    ids: &'c FlexParserIds,
}

impl Support<'_> {
    fn newer_than_v0(&self) -> bool {
        self.format != SteFormat::V0
    }

    fn has(&self, bit: u32) -> bool {
        self.protocols & bit != 0
    }

    fn vxlan_gpe(&self, m: &Mask) -> bool {
        m.vxlan_gpe() && (self.newer_than_v0() || self.has(fp::VXLAN_GPE))
    }

    fn geneve(&self, m: &Mask) -> bool {
        m.geneve() && (self.newer_than_v0() || self.has(fp::GENEVE))
    }

    fn geneve_tlv_opt(&self, m: &Mask) -> bool {
        m.get(Section::Misc3, misc3::GENEVE_TLV_OPTION_0_DATA) != 0 && self.has(fp::GENEVE_OPT_0)
    }

    fn geneve_tlv_opt_exist(&self, m: &Mask) -> bool {
        self.ok_bits && m.get(Section::Misc, misc::GENEVE_TLV_OPTION_0_EXIST) != 0
    }

    fn gtpu(&self, m: &Mask) -> bool {
        m.gtpu() && self.has(fp::GTPU)
    }

    /// The GTP-U fields a flex parser reads, with their parser ids: those present in the
    /// mask and enabled on the device.
    fn gtpu_flex_fields(&self, m: &Mask) -> [(bool, u8); 4] {
        let field = |f, bit| m.get(Section::Misc3, f) != 0 && self.has(bit);
        [
            (field(misc3::GTPU_DW_0, fp::GTPU_DW_0), self.ids.gtpu_dw_0),
            (field(misc3::GTPU_TEID, fp::GTPU_TEID), self.ids.gtpu_teid),
            (field(misc3::GTPU_DW_2, fp::GTPU_DW_2), self.ids.gtpu_dw_2),
            (
                field(misc3::GTPU_FIRST_EXT_DW_0, fp::GTPU_FIRST_EXT_DW_0),
                self.ids.gtpu_first_ext_dw_0,
            ),
        ]
    }

    fn gtpu_flex_parser_0(&self, m: &Mask) -> bool {
        self.gtpu_flex_fields(m)
            .iter()
            .any(|&(set, id)| set && u64::from(id) <= MAX_FLEX_0_ID)
    }

    fn gtpu_flex_parser_1(&self, m: &Mask) -> bool {
        self.gtpu_flex_fields(m)
            .iter()
            .any(|&(set, id)| set && u64::from(id) > MAX_FLEX_0_ID)
    }

    fn gtpu_any(&self, m: &Mask) -> bool {
        self.gtpu_flex_parser_0(m) || self.gtpu_flex_parser_1(m) || self.gtpu(m)
    }

    /// ICMPv4 fields take precedence: with both masked, only v4 support is asked.
    fn icmp(&self, m: &Mask) -> bool {
        if m.icmpv4() {
            self.newer_than_v0() || self.has(fp::ICMP_V4)
        } else if m.icmpv6() {
            self.newer_than_v0() || self.has(fp::ICMP_V6)
        } else {
            false
        }
    }

    fn mpls_over_gre(&self, m: &Mask) -> bool {
        m.mpls_over_gre() && self.has(fp::MPLS_OVER_GRE)
    }

    fn mpls_over_udp(&self, m: &Mask) -> bool {
        m.mpls_over_udp() && self.has(fp::MPLS_OVER_UDP)
    }
}

/// One selection run: the mask copy and the lookups chosen so far.
struct Selector<'a, 'c> {
    mask: Mask,
    caps: &'a ChainCaps<'c>,
    rx: bool,
    out: Vec<SteBuild>,
}

impl Selector<'_, '_> {
    fn add(&mut self, kind: K, inner: bool) -> Result<(), ChainError> {
        let sb = SteBuild::new(
            self.caps.format,
            kind,
            inner,
            self.rx,
            &mut self.mask.0,
            self.caps.ste,
        )?;
        self.out.push(sb);
        Ok(())
    }
}

/// The normalised mask with DR's FDB-RX optimisation: on the RX side of an FDB every
/// packet comes from the uplink, so a source-port match is dropped there (rules for other
/// ports are not installed on RX at all).
pub(super) fn side_mask(mask: &MatchParam, side: DomainSide) -> MatchParam {
    let mut m = mask.clone();
    if side == DomainSide::FdbRx {
        m.set(Section::Misc, misc::SOURCE_PORT, 0);
    }
    m
}

/// The definer lookups for `mask`, when the device has definers and one of rdma-core's
/// definer layouts covers the whole mask (`dr_matcher_set_definer_builders`).
pub(super) fn definer_lookups(
    criteria: MatchCriteria,
    mask: &MatchParam,
    side: DomainSide,
    caps: &ChainCaps<'_>,
) -> Option<Vec<SteBuild>> {
    if caps.format == SteFormat::V0 || caps.definer_formats == 0 {
        return None;
    }
    let supported = |n: u32| caps.definer_formats & (1u64 << n) != 0;
    let attempt = |kinds: &[K]| -> Option<Vec<SteBuild>> {
        let mut work = side_mask(mask, side);
        let mut out = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            let sb =
                SteBuild::new(caps.format, kind, false, side.rx(), &mut work, caps.ste).ok()?;
            out.push(sb);
        }
        consumed(criteria, &work).then_some(out)
    };
    for (n, kind) in SINGLE_DEFINERS_FIRST {
        if supported(n) {
            if let Some(out) = attempt(&[kind]) {
                return Some(out);
            }
        }
    }
    let outer = Mask(mask.clone());
    let ipv6 = outer.get(Section::Outer, spec::IP_VERSION) == 6;
    if ipv6 && outer.src_addr(Section::Outer) && supported(6) && supported(26) {
        let kinds: &[K] = if outer.dst_addr(Section::Outer) {
            &[K::Def26, K::Def6]
        } else {
            &[K::Def26]
        };
        if let Some(out) = attempt(kinds) {
            return Some(out);
        }
    }
    for (n, kind) in SINGLE_DEFINERS_LAST {
        if supported(n) {
            if let Some(out) = attempt(&[kind]) {
                return Some(out);
            }
        }
    }
    None
}

/// True when nothing of the enabled sections is left in the mask copy.
fn consumed(criteria: MatchCriteria, work: &MatchParam) -> bool {
    Section::ALL
        .iter()
        .filter(|s| criteria.contains(s.criteria()))
        .all(|&s| work.section(s).iter().all(|&b| b == 0))
}

/// The legacy lookups for `mask` in rdma-core's order. Returns them with the mask copy
/// as it is after they ran: what is left no lookup could match. No lookup at all means
/// nothing is left to compare (the caller then uses the always-hit lookup).
pub(super) fn legacy_lookups(
    criteria: MatchCriteria,
    mask: &MatchParam,
    side: DomainSide,
    caps: &ChainCaps<'_>,
) -> Result<(Vec<SteBuild>, MatchParam), ChainError> {
    let support = Support {
        format: caps.format,
        protocols: caps.flex_parser_protocols,
        ok_bits: caps.flex_parser_ok_bits,
        ids: &caps.ste.flex_parser,
    };
    let mut s = Selector {
        mask: Mask(side_mask(mask, side)),
        caps,
        rx: side.rx(),
        out: Vec::new(),
    };
    let has = |bits: MatchCriteria| criteria.intersects(bits);

    // Outer headers, and everything that is not per layer.
    if has(MatchCriteria::OUTER
        | MatchCriteria::MISC
        | MatchCriteria::MISC2
        | MatchCriteria::MISC3
        | MatchCriteria::MISC5)
    {
        let o = Section::Outer;
        let ipv = s.mask.get(o, spec::IP_VERSION);
        if s.mask.get(Section::Misc2, misc2::METADATA_REG_A) != 0 {
            s.add(K::GeneralPurpose, false)?;
        }
        if s.mask.reg_c_0_3() {
            s.add(K::Register0, false)?;
        }
        if s.mask.reg_c_4_7() {
            s.add(K::Register1, false)?;
        }
        let gvmi_or_qpn = s
            .mask
            .any(Section::Misc, &[misc::SOURCE_SQN, misc::SOURCE_PORT]);
        if gvmi_or_qpn && side != DomainSide::NicTx {
            s.add(K::SrcGvmiQpn, false)?;
        }
        l2_and_l3(&mut s, false, ipv)?;
        if support.vxlan_gpe(&s.mask) {
            s.add(K::TnlVxlanGpe, false)?;
        } else if support.geneve(&s.mask) || support.geneve_tlv_opt(&s.mask) {
            if support.geneve(&s.mask) {
                s.add(K::TnlGeneve, false)?;
            }
            if support.geneve_tlv_opt(&s.mask) {
                s.add(K::TnlGeneveTlvOpt, false)?;
            }
            if support.geneve_tlv_opt_exist(&s.mask) {
                s.add(K::TnlGeneveTlvOptExist, false)?;
            }
        } else if support.gtpu_any(&s.mask) {
            if support.gtpu_flex_parser_0(&s.mask) {
                s.add(K::TnlGtpuFlexParser0, false)?;
            }
            if support.gtpu_flex_parser_1(&s.mask) {
                s.add(K::TnlGtpuFlexParser1, false)?;
            }
            if support.gtpu(&s.mask) {
                s.add(K::TnlGtpu, false)?;
            }
        } else if s.mask.tunnel_header() {
            s.add(K::TunnelHeader, false)?;
        }
        l4_misc_and_mpls(&mut s, &support, false)?;
        if support.icmp(&s.mask) {
            s.add(K::Icmp, false)?;
        }
        if s.mask.gre() {
            s.add(K::TnlGre, false)?;
        }
    }

    // Inner headers.
    if has(MatchCriteria::INNER | MatchCriteria::MISC | MatchCriteria::MISC2 | MatchCriteria::MISC3)
    {
        let ipv = s.mask.get(Section::Inner, spec::IP_VERSION);
        if s.mask.get(Section::Misc, misc::VXLAN_VNI) != 0 {
            s.add(K::EthL2Tnl, true)?;
        }
        l2_and_l3(&mut s, true, ipv)?;
        l4_misc_and_mpls(&mut s, &support, true)?;
    }

    // Flex-parser samples.
    if has(MatchCriteria::MISC4) {
        if s.mask.flex_parser_0_3() {
            s.add(K::FlexParser0, false)?;
        }
        if s.mask.flex_parser_4_7() {
            s.add(K::FlexParser1, false)?;
        }
    }

    Ok((s.out, s.mask.0))
}

/// MAC, VLAN and IP lookups of one layer. `ipv` is the layer's IP version as the mask
/// had it before any lookup of the layer consumed it.
fn l2_and_l3(s: &mut Selector<'_, '_>, inner: bool, ipv: u64) -> Result<(), ChainError> {
    let h = if inner {
        Section::Inner
    } else {
        Section::Outer
    };
    if s.mask.smac(h) && s.mask.dmac(h) {
        s.add(K::EthL2SrcDst, inner)?;
    }
    if s.mask.smac(h) {
        s.add(K::EthL2Src, inner)?;
    }
    if s.mask.l2_dst(h) {
        s.add(K::EthL2Dst, inner)?;
    }
    match ipv {
        4 => {
            if s.mask.ttl(h) || s.mask.ihl(h) {
                s.add(K::EthL3Ipv4Misc, inner)?;
            }
            if s.mask.ipv4_5_tuple(h) {
                s.add(K::EthL3Ipv4_5Tuple, inner)?;
            }
        }
        6 => {
            if s.mask.dst_addr(h) {
                s.add(K::EthL3Ipv6Dst, inner)?;
            }
            if s.mask.src_addr(h) {
                s.add(K::EthL3Ipv6Src, inner)?;
            }
            if s.mask.ipv6_l3_l4(h) {
                s.add(K::EthIpv6L3L4, inner)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// TCP sequence numbers, first MPLS label, and MPLS over GRE/UDP of one layer.
fn l4_misc_and_mpls(
    s: &mut Selector<'_, '_>,
    support: &Support<'_>,
    inner: bool,
) -> Result<(), ChainError> {
    if s.mask.l4_misc(inner) {
        s.add(K::EthL4Misc, inner)?;
    }
    if s.mask.first_mpls(inner) {
        s.add(K::Mpls, inner)?;
    }
    if support.mpls_over_gre(&s.mask) {
        s.add(K::TnlMplsOverGre, inner)?;
    } else if support.mpls_over_udp(&s.mask) {
        s.add(K::TnlMplsOverUdp, inner)?;
    }
    Ok(())
}
