//! The match-parameter fields of one side of a packet: the outer headers, or the inner
//! headers after a tunnel.
//!
//! Most header fields share one layout (`dr_match_spec`) in the outer and inner
//! sections; a few live in the misc sections under `outer_*` / `inner_*` names. This table
//! names them once so the parser and the builder treat both sides alike.

use ste_builder::bits::BitField;
use ste_builder::match_param::Section;
use ste_builder::prm::{
    dr_match_set_misc as misc, dr_match_set_misc2 as misc2, dr_match_set_misc3 as misc3,
};

/// The fields of one side.
#[derive(Debug, Clone, Copy)]
pub struct SideFields {
    /// The `dr_match_spec` section of this side.
    pub spec: Section,
    /// Second VLAN priority (misc).
    pub second_prio: BitField,
    /// Second VLAN CFI (misc).
    pub second_cfi: BitField,
    /// Second VLAN id (misc).
    pub second_vid: BitField,
    /// Second VLAN is a C-VLAN (misc).
    pub second_cvlan_tag: BitField,
    /// Second VLAN is an S-VLAN (misc).
    pub second_svlan_tag: BitField,
    /// IPv6 flow label (misc).
    pub ipv6_flow_label: BitField,
    /// ESP SPI (misc).
    pub esp_spi: BitField,
    /// TCP sequence number (misc3).
    pub tcp_seq: BitField,
    /// TCP acknowledgement number (misc3).
    pub tcp_ack: BitField,
    /// First MPLS label after this side's L2 header (misc2): label, exp, s_bos, ttl.
    pub first_mpls: MplsFields,
}

/// The four misc2 fields of one MPLS label stack entry.
#[derive(Debug, Clone, Copy)]
pub struct MplsFields {
    /// Label.
    pub label: BitField,
    /// Traffic class.
    pub exp: BitField,
    /// Bottom of stack.
    pub s_bos: BitField,
    /// TTL.
    pub ttl: BitField,
}

impl MplsFields {
    /// The fields in order, for loops.
    pub fn all(&self) -> [BitField; 4] {
        [self.label, self.exp, self.s_bos, self.ttl]
    }
}

/// The outer side.
pub const OUTER: SideFields = SideFields {
    spec: Section::Outer,
    second_prio: misc::OUTER_SECOND_PRIO,
    second_cfi: misc::OUTER_SECOND_CFI,
    second_vid: misc::OUTER_SECOND_VID,
    second_cvlan_tag: misc::OUTER_SECOND_CVLAN_TAG,
    second_svlan_tag: misc::OUTER_SECOND_SVLAN_TAG,
    ipv6_flow_label: misc::OUTER_IPV6_FLOW_LABEL,
    esp_spi: misc::OUTER_ESP_SPI,
    tcp_seq: misc3::OUTER_TCP_SEQ_NUM,
    tcp_ack: misc3::OUTER_TCP_ACK_NUM,
    first_mpls: MplsFields {
        label: misc2::OUTER_FIRST_MPLS_LABEL,
        exp: misc2::OUTER_FIRST_MPLS_EXP,
        s_bos: misc2::OUTER_FIRST_MPLS_S_BOS,
        ttl: misc2::OUTER_FIRST_MPLS_TTL,
    },
};

/// The inner side.
pub const INNER: SideFields = SideFields {
    spec: Section::Inner,
    second_prio: misc::INNER_SECOND_PRIO,
    second_cfi: misc::INNER_SECOND_CFI,
    second_vid: misc::INNER_SECOND_VID,
    second_cvlan_tag: misc::INNER_SECOND_CVLAN_TAG,
    second_svlan_tag: misc::INNER_SECOND_SVLAN_TAG,
    ipv6_flow_label: misc::INNER_IPV6_FLOW_LABEL,
    esp_spi: misc::INNER_ESP_SPI,
    tcp_seq: misc3::INNER_TCP_SEQ_NUM,
    tcp_ack: misc3::INNER_TCP_ACK_NUM,
    first_mpls: MplsFields {
        label: misc2::INNER_FIRST_MPLS_LABEL,
        exp: misc2::INNER_FIRST_MPLS_EXP,
        s_bos: misc2::INNER_FIRST_MPLS_S_BOS,
        ttl: misc2::INNER_FIRST_MPLS_TTL,
    },
};

/// MPLS after a GRE header (misc2).
pub const MPLS_OVER_GRE: MplsFields = MplsFields {
    label: misc2::OUTER_FIRST_MPLS_OVER_GRE_LABEL,
    exp: misc2::OUTER_FIRST_MPLS_OVER_GRE_EXP,
    s_bos: misc2::OUTER_FIRST_MPLS_OVER_GRE_S_BOS,
    ttl: misc2::OUTER_FIRST_MPLS_OVER_GRE_TTL,
};

/// MPLS after a UDP header (misc2).
pub const MPLS_OVER_UDP: MplsFields = MplsFields {
    label: misc2::OUTER_FIRST_MPLS_OVER_UDP_LABEL,
    exp: misc2::OUTER_FIRST_MPLS_OVER_UDP_EXP,
    s_bos: misc2::OUTER_FIRST_MPLS_OVER_UDP_S_BOS,
    ttl: misc2::OUTER_FIRST_MPLS_OVER_UDP_TTL,
};

/// The metadata registers C0..C7 in misc2, by index.
pub const REG_C: [BitField; 8] = [
    misc2::METADATA_REG_C_0,
    misc2::METADATA_REG_C_1,
    misc2::METADATA_REG_C_2,
    misc2::METADATA_REG_C_3,
    misc2::METADATA_REG_C_4,
    misc2::METADATA_REG_C_5,
    misc2::METADATA_REG_C_6,
    misc2::METADATA_REG_C_7,
];
