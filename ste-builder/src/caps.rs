//! The device capabilities that STE encodings depend on.
//!
//! Only what the wire layer needs lives here: the vhca's gvmi, the flex-parser ids the
//! firmware assigned to protocol fields (ICMP, GENEVE options, MPLS over GRE/UDP, GTP-U),
//! definer support bits, and the vport table that maps a source port to its gvmi and ICM
//! addresses. The driver fills it from `QUERY_HCA_CAP` and vport queries.

/// Flex-parser ids assigned by firmware (`flex_parser_id_*` capabilities). An id names
/// one of the eight flex-parser fields (0..=7) of the flex-parser lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlexParserIds {
    /// ICMPv4 dword 0 (type, code).
    pub icmp_dw0: u8,
    /// ICMPv4 dword 1 (header data).
    pub icmp_dw1: u8,
    /// ICMPv6 dword 0.
    pub icmpv6_dw0: u8,
    /// ICMPv6 dword 1.
    pub icmpv6_dw1: u8,
    /// GENEVE TLV option 0 data.
    pub geneve_tlv_option_0: u8,
    /// MPLS over GRE.
    pub mpls_over_gre: u8,
    /// MPLS over UDP.
    pub mpls_over_udp: u8,
    /// GTP-U dword 0.
    pub gtpu_dw_0: u8,
    /// GTP-U TEID.
    pub gtpu_teid: u8,
    /// GTP-U dword 2.
    pub gtpu_dw_2: u8,
    /// GTP-U first extension header dword 0.
    pub gtpu_first_ext_dw_0: u8,
}

/// One vport of the e-switch: how traffic from or to it is addressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VportCap {
    /// The vport number (0xffff is the uplink).
    pub vport_num: u16,
    /// The vport's gvmi.
    pub vport_gvmi: u16,
    /// The gvmi of the vhca that owns the vport.
    pub vhca_gvmi: u16,
    /// ICM address that delivers to the vport on the RX side.
    pub icm_address_rx: u64,
    /// ICM address that delivers to the vport on the TX side.
    pub icm_address_tx: u64,
}

/// The capabilities STE building reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// This vhca's gvmi.
    pub gvmi: u16,
    /// True on an embedded CPU function (BlueField ECPF).
    pub is_ecpf: bool,
    /// The gvmi of the e-switch manager vhca.
    pub esw_manager_vhca_gvmi: u16,
    /// Flex-parser ids.
    pub flex_parser: FlexParserIds,
    /// Definers can match checksum-ok bits.
    pub definer_supp_checksum: bool,
    /// The tunnel-header lookup covers the full tunnel header (dwords 0..3).
    pub support_full_tnl_hdr: bool,
    /// The e-switch vports known to the domain.
    pub vports: Vec<VportCap>,
}

impl Caps {
    /// The vport `vport_num` of the e-switch managed by `vhca_gvmi`.
    pub fn vport(&self, vhca_gvmi: u16, vport_num: u16) -> Option<&VportCap> {
        self.vports
            .iter()
            .find(|v| v.vhca_gvmi == vhca_gvmi && v.vport_num == vport_num)
    }
}
