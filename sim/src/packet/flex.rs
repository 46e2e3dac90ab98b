//! The flex parsers: firmware-programmed parsers that sample one header dword each.
//!
//! The device capabilities say which of the eight flex parsers firmware gave to which
//! protocol field ([`FlexParserIds`]); flex-parser lookups (`FLEX_PARSER_0/1`, and the
//! `flex_parsers_ok` bitmap) compare the sampled dwords. This module turns the samples a
//! parse collected ([`FlexSamples`]) into the eight parser dwords and the ok bitmap.
//!
//! A parser samples only when its protocol is in the packet. When capabilities give two
//! protocols of the same packet one parser id (real firmware never does; default
//! capabilities leave every id 0), the later one in the order ICMP, ICMPv6, GENEVE option,
//! MPLS over GRE, MPLS over UDP, GTP-U dword 0, TEID, dword 2, first extension dword wins.

use ste_builder::FlexParserIds;

use super::parse::FlexSamples;

/// Number of flex parsers.
pub const FLEX_PARSERS: usize = 8;

/// What the flex parsers hold for one packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlexParserSample {
    /// The dword of each parser (0 where the parser sampled nothing).
    pub dwords: [u32; FLEX_PARSERS],
    /// Bit `i` set: parser `i` sampled a field of this packet.
    pub ok: u8,
}

impl FlexParserSample {
    fn put(&mut self, id: u8, value: Option<u32>) {
        let (Some(v), Some(slot)) = (value, self.dwords.get_mut(usize::from(id))) else {
            return;
        };
        *slot = v;
        self.ok |= 1 << id;
    }
}

impl FlexSamples {
    /// The parser dwords under the capabilities' id assignment.
    pub fn by_parser(&self, ids: &FlexParserIds) -> FlexParserSample {
        let mut out = FlexParserSample::default();
        let first = |d: Option<[u32; 2]>| d.map(|d| d[0]);
        let second = |d: Option<[u32; 2]>| d.map(|d| d[1]);
        out.put(ids.icmp_dw0, first(self.icmp));
        out.put(ids.icmp_dw1, second(self.icmp));
        out.put(ids.icmpv6_dw0, first(self.icmpv6));
        out.put(ids.icmpv6_dw1, second(self.icmpv6));
        out.put(ids.geneve_tlv_option_0, self.geneve_opt0);
        out.put(ids.mpls_over_gre, self.mpls_over_gre);
        out.put(ids.mpls_over_udp, self.mpls_over_udp);
        out.put(ids.gtpu_dw_0, self.gtpu_dw0);
        out.put(ids.gtpu_teid, self.gtpu_teid);
        out.put(ids.gtpu_dw_2, self.gtpu_dw2);
        out.put(ids.gtpu_first_ext_dw_0, self.gtpu_first_ext_dw0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_go_to_their_parsers() {
        let samples = FlexSamples {
            icmp: Some([0x0800_1234, 0xabcd_0001]),
            gtpu_teid: Some(0x1122_3344),
            ..FlexSamples::default()
        };
        let ids = FlexParserIds {
            icmp_dw0: 2,
            icmp_dw1: 3,
            gtpu_teid: 6,
            mpls_over_gre: 1,
            ..FlexParserIds::default()
        };
        let s = samples.by_parser(&ids);
        assert_eq!(s.dwords[2], 0x0800_1234);
        assert_eq!(s.dwords[3], 0xabcd_0001);
        assert_eq!(s.dwords[6], 0x1122_3344);
        assert_eq!(s.dwords[1], 0, "MPLS over GRE is not in the packet");
        assert_eq!(s.ok, 0b0100_1100);
    }

    #[test]
    fn ids_beyond_the_parsers_sample_nothing() {
        let samples = FlexSamples {
            geneve_opt0: Some(7),
            ..FlexSamples::default()
        };
        let ids = FlexParserIds {
            geneve_tlv_option_0: 9,
            ..FlexParserIds::default()
        };
        assert_eq!(samples.by_parser(&ids), FlexParserSample::default());
    }
}
