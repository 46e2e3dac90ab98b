//! Reformat actions: VLAN push and pop, tunnel decapsulation (L2 and L3) and
//! encapsulation from reformat data (L2 and L3), plus the anchored byte insertion and
//! removal the STE v1 header-rewrite actions are made of.
//!
//! STE v1 expresses all of these as removals and insertions relative to header anchors
//! ([`anchor`]); [`Packet::anchor_offset`], [`Packet::remove_headers`],
//! [`Packet::remove_at`] and [`Packet::insert_at`] execute them. STE v0 expresses an L3
//! decapsulation as "remove up to the inner IP header and put a blank L2 header there"
//! ([`Packet::decap_l3_blank`]) followed by modify-header writes that fill it in.
//!
//! Encapsulation takes the reformat bytes as the driver wrote them (outer Ethernet, IP,
//! UDP / GRE and tunnel headers) and fills in what depends on the packet, as the NIC does:
//! the IPv4 total length and header checksum, the IPv6 payload length, the UDP length (and
//! the UDP checksum when the reformat data asks for one by a non-zero value) and the GTP-U
//! length. Fields that lie outside the reformat bytes are not touched.

use ste_builder::bits::{self, BitField};

use super::checksum;
use super::modify::EditError;
use super::parse::{pseudo_header, IpVersion, L4Kind, TunnelKind};
use super::wire::{eth, ethertype, gtpu, ip_proto, ipv4, ipv6, udp, vlan};
use super::Packet;

/// The header anchors of STE v1 insert and remove actions (`DR_STE_HEADER_ANCHOR_*`).
pub mod anchor {
    /// The start of the packet.
    pub const START_OUTER: u8 = 0x00;
    /// The first VLAN tag (its TPID).
    pub const FIRST_VLAN: u8 = 0x02;
    /// The outer IPv4 / IPv6 header.
    pub const IPV6_IPV4: u8 = 0x07;
    /// The inner Ethernet header.
    pub const INNER_MAC: u8 = 0x13;
    /// The inner IPv4 / IPv6 header.
    pub const INNER_IPV6_IPV4: u8 = 0x19;
}

impl Packet {
    /// The byte offset of header anchor `id` in this packet.
    pub fn anchor_offset(&self, id: u8) -> Result<usize, EditError> {
        // The start needs no parse: it is used while a header is being rebuilt.
        if id == anchor::START_OUTER {
            return Ok(0);
        }
        let parsed = self.parse();
        let absent = EditError::AnchorAbsent(id);
        let inner = || {
            parsed
                .tunnel
                .and_then(|t| t.inner_offset())
                .and(parsed.inner.as_ref())
        };
        match id {
            anchor::FIRST_VLAN => {
                let l2 = parsed.outer.l2.as_ref().ok_or(absent.clone())?;
                let tag = l2.vlans.first().ok_or(absent)?;
                Ok(tag.offset - 2)
            }
            anchor::IPV6_IPV4 => parsed.outer.l3.map(|l| l.offset).ok_or(absent),
            anchor::INNER_MAC => inner()
                .and_then(|h| h.l2.as_ref())
                .map(|l2| l2.offset)
                .ok_or(absent),
            anchor::INNER_IPV6_IPV4 => inner().and_then(|h| h.l3).map(|l| l.offset).ok_or(absent),
            _ => Err(EditError::UnknownAnchor(id)),
        }
    }

    /// Removes the headers from anchor `start` up to (not including) anchor `end`.
    pub fn remove_headers(&mut self, start: u8, end: u8) -> Result<(), EditError> {
        let (a, b) = (self.anchor_offset(start)?, self.anchor_offset(end)?);
        if b < a {
            return Err(self.out_of_packet(a, 0));
        }
        self.remove_bytes(a, b - a)
    }

    /// Removes `len` bytes at `offset` bytes after anchor `start`.
    pub fn remove_at(&mut self, start: u8, offset: usize, len: usize) -> Result<(), EditError> {
        let at = self.anchor_offset(start)?.saturating_add(offset);
        self.remove_bytes(at, len)
    }

    /// Inserts `data` at `offset` bytes after anchor `start`. An `encap` insertion is a
    /// tunnel header: the lengths in it are then filled in as for [`Packet::encap_l2`].
    pub fn insert_at(
        &mut self,
        start: u8,
        offset: usize,
        data: &[u8],
        encap: bool,
    ) -> Result<(), EditError> {
        let at = self.anchor_offset(start)?.saturating_add(offset);
        self.insert_bytes(at, data)?;
        if encap && at == 0 {
            self.fix_encap_lengths(data.len());
        }
        Ok(())
    }

    /// Inserts `data` at byte `at`.
    pub fn insert_bytes(&mut self, at: usize, data: &[u8]) -> Result<(), EditError> {
        if at > self.bytes.len() {
            return Err(self.out_of_packet(at, 0));
        }
        self.bytes.splice(at..at, data.iter().copied());
        Ok(())
    }

    /// Removes `len` bytes at byte `at`.
    pub fn remove_bytes(&mut self, at: usize, len: usize) -> Result<(), EditError> {
        let end = at.checked_add(len).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.out_of_packet(at, len));
        };
        self.bytes.drain(at..end);
        Ok(())
    }

    fn out_of_packet(&self, at: usize, len: usize) -> EditError {
        EditError::OutOfPacket {
            at,
            len,
            packet_len: self.bytes.len(),
        }
    }

    /// Pushes a VLAN tag as the outermost tag: `tag` is the TPID (upper 16 bits) and TCI.
    pub fn push_vlan(&mut self, tag: u32) -> Result<(), EditError> {
        if self.bytes.len() < eth::LEN {
            return Err(EditError::NoEthernet);
        }
        self.insert_bytes(eth::ETHERTYPE_OFFSET, &tag.to_be_bytes())
    }

    /// Pops the outermost VLAN tag.
    pub fn pop_vlan(&mut self) -> Result<(), EditError> {
        let parsed = self.parse();
        let l2 = parsed.outer.l2.as_ref().ok_or(EditError::NoEthernet)?;
        if l2.vlans.is_empty() {
            return Err(EditError::NoVlan);
        }
        self.remove_bytes(eth::ETHERTYPE_OFFSET, vlan::LEN)
    }

    /// L2 decapsulation: removes everything before the inner Ethernet header.
    pub fn decap_l2(&mut self) -> Result<(), EditError> {
        let parsed = self.parse();
        let tunnel = parsed.tunnel.as_ref().ok_or(EditError::NotTunnelled)?;
        tunnel.inner_offset().ok_or(EditError::NotTunnelled)?;
        let inner = parsed.inner.as_ref().and_then(|h| h.l2.as_ref());
        let l2 = inner.ok_or(EditError::NoInnerL2)?;
        self.bytes.drain(..l2.offset);
        Ok(())
    }

    /// L3 decapsulation: removes everything before the inner IP header and puts
    /// `l2_header` (the new Ethernet header, with or without VLAN tag) in front.
    pub fn decap_l3(&mut self, l2_header: &[u8]) -> Result<(), EditError> {
        let parsed = self.parse();
        let tunnel = parsed.tunnel.as_ref().ok_or(EditError::NotTunnelled)?;
        tunnel.inner_offset().ok_or(EditError::NotTunnelled)?;
        let inner = parsed.inner.as_ref().and_then(|h| h.l3.as_ref());
        let l3 = inner.ok_or(EditError::NoInnerL3)?;
        self.bytes.splice(..l3.offset, l2_header.iter().copied());
        Ok(())
    }

    /// STE v0 L3 decapsulation: removes everything before the inner IP header and puts a
    /// blank L2 header in front for modify-header writes to fill in: 14 zero bytes, or
    /// 18 with a C-VLAN TPID in place (the writes set the tag type, TCI and ethertype).
    pub fn decap_l3_blank(&mut self, with_vlan: bool) -> Result<(), EditError> {
        let mut header = vec![0u8; eth::LEN];
        if with_vlan {
            header.truncate(eth::ETHERTYPE_OFFSET);
            header.extend_from_slice(&ethertype::CVLAN.to_be_bytes());
            header.extend_from_slice(&[0; vlan::LEN]);
        }
        self.decap_l3(&header)
    }

    /// L2-to-tunnel encapsulation: puts `data` in front of the packet.
    pub fn encap_l2(&mut self, data: &[u8]) -> Result<(), EditError> {
        self.bytes.splice(..0, data.iter().copied());
        self.fix_encap_lengths(data.len());
        Ok(())
    }

    /// L3-to-tunnel encapsulation: replaces the packet's L2 header (Ethernet and VLAN
    /// tags) by `data`, which ends with the tunnel header that carries the IP packet.
    pub fn encap_l3(&mut self, data: &[u8]) -> Result<(), EditError> {
        let parsed = self.parse();
        let l3 = parsed.outer.l3.as_ref().ok_or(EditError::NoL3)?;
        self.bytes.splice(..l3.offset, data.iter().copied());
        self.fix_encap_lengths(data.len());
        Ok(())
    }

    /// Fills in the length fields (and checksums over them) of the headers that lie
    /// inside the first `prefix` bytes, which were just put in front of the packet.
    fn fix_encap_lengths(&mut self, prefix: usize) {
        let parsed = self.parse();
        let len = self.bytes.len();
        let inside = |at: usize, hlen: usize| at + hlen <= prefix;
        let Some(l3) = parsed.outer.l3 else {
            return;
        };
        match l3.version {
            IpVersion::V4 if inside(l3.offset, l3.header_len) => {
                let hdr = l3.offset..l3.offset + l3.header_len;
                let total = (len - l3.offset).min(usize::from(u16::MAX));
                bits::set(&mut self.bytes[hdr.clone()], ipv4::TOTAL_LEN, total as u64);
                bits::set(&mut self.bytes[hdr.clone()], ipv4::CHECKSUM, 0);
                let sum = checksum::checksum(&self.bytes[hdr.clone()]);
                bits::set(&mut self.bytes[hdr], ipv4::CHECKSUM, sum.into());
            }
            IpVersion::V6 if inside(l3.offset, ipv6::LEN) => {
                let payload = (len - l3.offset - ipv6::LEN).min(usize::from(u16::MAX));
                let hdr = &mut self.bytes[l3.offset..];
                bits::set(hdr, ipv6::PAYLOAD_LEN, payload as u64);
            }
            _ => return,
        }
        // Re-parse: the L4 header's extent depends on the IP length just written.
        let parsed = self.parse();
        let (Some(l3), Some(l4)) = (parsed.outer.l3, parsed.outer.l4) else {
            return;
        };
        if l4.kind != L4Kind::Udp || !inside(l4.offset, udp::LEN) {
            return;
        }
        let seg = l3.end - l4.offset;
        bits::set(
            &mut self.bytes[l4.offset..],
            udp::LENGTH,
            seg.min(usize::from(u16::MAX)) as u64,
        );
        if let Some(t) = parsed.tunnel.filter(|t| t.kind == TunnelKind::Gtpu) {
            if inside(t.offset, gtpu::LEN) {
                let after = l3.end.saturating_sub(t.offset + gtpu::LEN);
                bits::set(
                    &mut self.bytes[t.offset..],
                    gtpu::LENGTH,
                    after.min(usize::from(u16::MAX)) as u64,
                );
            }
        }
        let csum = BitField::new(0, 16);
        let csum_at = l4.offset + udp::CHECKSUM_OFFSET;
        if bits::get(&self.bytes[csum_at..], csum) != 0 {
            bits::set(&mut self.bytes[csum_at..], csum, 0);
            let pseudo = pseudo_header(&self.bytes, &l3);
            let mut sum =
                checksum::l4_checksum(pseudo, ip_proto::UDP, &self.bytes[l4.offset..l3.end]);
            if sum == 0 {
                sum = 0xffff;
            }
            bits::set(&mut self.bytes[csum_at..], csum, sum.into());
        }
    }
}

/// The TPID + TCI word of a C-VLAN tag with VLAN id `vid` and priority `prio`, as a
/// push-VLAN action carries it.
pub fn cvlan_tag(prio: u8, vid: u16) -> u32 {
    (u32::from(ethertype::CVLAN) << 16) | (u32::from(prio & 7) << 13) | u32::from(vid & 0xfff)
}
