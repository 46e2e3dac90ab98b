//! The lookup builders that exist, by name.

macro_rules! builder_kinds {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A lookup builder. The names are rdma-core's (`dr_ste_build_<name>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BuilderKind {
            $(#[doc = $doc] $variant,)*
        }

        impl BuilderKind {
            /// Every builder.
            pub const ALL: &'static [BuilderKind] = &[$(BuilderKind::$variant,)*];

            /// The builder's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(BuilderKind::$variant => $name,)*
                }
            }

            /// The builder with this name.
            pub fn from_name(name: &str) -> Option<BuilderKind> {
                match name {
                    $($name => Some(BuilderKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

builder_kinds! {
    EthL2SrcDst => "eth_l2_src_dst", "Source and destination MAC, VLAN, L3 type.";
    EthL3Ipv6Dst => "eth_l3_ipv6_dst", "IPv6 destination address.";
    EthL3Ipv6Src => "eth_l3_ipv6_src", "IPv6 source address.";
    EthL3Ipv4_5Tuple => "eth_l3_ipv4_5_tuple", "IPv4 addresses, L4 ports, protocol, DSCP/ECN, TCP flags.";
    EthL2Src => "eth_l2_src", "Source MAC with VLANs and L3/L4 types.";
    EthL2Dst => "eth_l2_dst", "Destination MAC with VLANs and L3/L4 types.";
    EthL2Tnl => "eth_l2_tnl", "Tunnel network id with the inner L2 header.";
    EthL3Ipv4Misc => "eth_l3_ipv4_misc", "IPv4 TTL and IHL.";
    EthIpv6L3L4 => "eth_ipv6_l3_l4", "IPv6 flow label, L4 ports, protocol, TCP flags.";
    Mpls => "mpls", "First MPLS label.";
    TnlGre => "tnl_gre", "GRE header: protocol, key, C/K/S bits.";
    TnlMplsOverGre => "tnl_mpls_over_gre", "MPLS over GRE through a flex parser.";
    TnlMplsOverUdp => "tnl_mpls_over_udp", "MPLS over UDP through a flex parser.";
    Icmp => "icmp", "ICMPv4/ICMPv6 type, code and header data through flex parsers.";
    GeneralPurpose => "general_purpose", "General purpose register (metadata_reg_a).";
    EthL4Misc => "eth_l4_misc", "TCP sequence and acknowledgement numbers.";
    TnlVxlanGpe => "tnl_vxlan_gpe", "VXLAN-GPE flags, next protocol and VNI.";
    TnlGeneve => "tnl_geneve", "GENEVE VNI, OAM, option length and protocol.";
    TnlGeneveTlvOpt => "tnl_geneve_tlv_opt", "GENEVE TLV option 0 data through a flex parser.";
    TnlGeneveTlvOptExist => "tnl_geneve_tlv_opt_exist", "GENEVE TLV option 0 presence.";
    TnlGtpu => "tnl_gtpu", "GTP-U flags, message type and TEID.";
    TnlGtpuFlexParser0 => "tnl_gtpu_flex_parser_0", "GTP-U fields on flex parsers 0..3.";
    TnlGtpuFlexParser1 => "tnl_gtpu_flex_parser_1", "GTP-U fields on flex parsers 4..7.";
    Register0 => "register_0", "Metadata registers C0..C3.";
    Register1 => "register_1", "Metadata registers C4..C7.";
    SrcGvmiQpn => "src_gvmi_qpn", "Source vport (gvmi) and source QP/SQ number.";
    FlexParser0 => "flex_parser_0", "Programmable sample fields on flex parsers 0..3.";
    FlexParser1 => "flex_parser_1", "Programmable sample fields on flex parsers 4..7.";
    TunnelHeader => "tunnel_header", "Raw tunnel header dwords.";
    Def0 => "def0", "Definer 0 (v1/v2).";
    Def2 => "def2", "Definer 2 (v1/v2).";
    Def6 => "def6", "Definer 6 (v1/v2).";
    Def16 => "def16", "Definer 16 (v1/v2).";
    Def22 => "def22", "Definer 22 (v1/v2).";
    Def24 => "def24", "Definer 24 (v1/v2).";
    Def25 => "def25", "Definer 25 (v1/v2).";
    Def26 => "def26", "Definer 26 (v1/v2).";
    Def28 => "def28", "Definer 28 (v1/v2).";
    Def33 => "def33", "Definer 33 (v1/v2).";
    EmptyAlwaysHit => "empty_always_hit", "No match: every packet hits.";
}

impl std::fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
