//! Tests of the packet module: packets built with etherparse (an independent encoder)
//! and by hand for the tunnel headers etherparse does not know.

mod build;
mod modify;
mod parse;
mod reformat;

use etherparse::PacketBuilder;
use ste_builder::match_param::Section;
use ste_builder::MatchParam;

use super::{Metadata, Packet};

pub(super) const SMAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
pub(super) const DMAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
pub(super) const SRC4: [u8; 4] = [10, 0, 0, 1];
pub(super) const DST4: [u8; 4] = [192, 168, 7, 9];
pub(super) const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6];
pub(super) const DST6: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
];

pub(super) fn pkt(bytes: Vec<u8>) -> Packet {
    Packet::new(bytes, Metadata::default())
}

pub(super) fn be32(b: &[u8]) -> u64 {
    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Ethernet / IPv4 / UDP to `dport` carrying `payload`, by etherparse.
pub(super) fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .ipv4(SRC4, DST4, 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Ethernet / IPv4 / TCP with `payload`, by etherparse.
pub(super) fn tcp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(SMAC, DMAC)
        .ipv4(SRC4, DST4, 64)
        .tcp(sport, dport, 0x1234_5678, 1024)
        .syn()
        .ack(0x0bad_cafe);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// An inner Ethernet / IPv4 / TCP frame (for tunnels).
pub(super) fn inner_tcp4() -> Vec<u8> {
    let b = PacketBuilder::ethernet2([0x06; 6], [0x08; 6])
        .ipv4([172, 16, 0, 1], [172, 16, 0, 2], 9)
        .tcp(1111, 2222, 7, 100);
    let mut out = Vec::new();
    b.write(&mut out, b"inner").unwrap();
    out
}

/// An inner IPv4 / UDP packet without L2.
pub(super) fn inner_ip_udp4() -> Vec<u8> {
    let b = PacketBuilder::ipv4([172, 16, 1, 1], [172, 16, 1, 2], 5).udp(3333, 4444);
    let mut out = Vec::new();
    b.write(&mut out, b"x").unwrap();
    out
}

pub(super) fn get(p: &MatchParam, s: Section, f: ste_builder::bits::BitField) -> u64 {
    p.get(s, f)
}
