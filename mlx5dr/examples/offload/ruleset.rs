//! The rule set: the e-switch's ports, the connections, the rules they become, and a
//! model that predicts what the rules do with any packet.
//!
//! Ports: the uplink (the wire) and four VFs, each VF a VM with one MAC, one IPv4
//! address and its own VLAN. OVS sees their representors; what it offloads lands in the
//! FDB (e-switch) domain:
//!
//! - table 1, the L2 classifier: `in_port, dmac, vlan` -> count, goto table 2. Traffic
//!   from the wire must be addressed to a VM's MAC on its VLAN; traffic from a VM to the
//!   gateway's MAC on its VLAN.
//! - table 2, conntrack: every established connection (TCP or UDP, one matcher each) is
//!   two rules, one per direction, `in_port, IPv4 5-tuple` -> its own counter, forward
//!   (to the uplink when it comes from a VM, to the VM's VF when it comes from the wire).
//!
//! Whatever misses (an unknown MAC or VLAN, a new connection) goes to the FDB's default,
//! the e-switch manager's vport: the slow path, where OVS would handle it in software.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use sim::endpoint::Terminal;

/// The uplink's vport number in `misc.source_port`.
pub const UPLINK: u16 = 0xffff;
/// The e-switch manager's vport: the FDB default, i.e. the slow path.
pub const SLOW_PATH: u16 = 0;
/// The VFs' vport numbers (the simulated ConnectX-6 Dx has vports 1..=4).
pub const VFS: [u16; 4] = [1, 2, 3, 4];
/// The MAC of the gateway the VMs talk to.
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// IP protocol numbers.
pub const TCP: u8 = 6;
/// See [`TCP`].
pub const UDP: u8 = 17;

/// A VM behind a VF.
#[derive(Debug, Clone, Copy)]
pub struct Vm {
    /// The VF's vport.
    pub vport: u16,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its VLAN id.
    pub vlan: u16,
}

/// The VM on vport `vport` (one of [`VFS`]).
pub fn vm(vport: u16) -> Vm {
    Vm {
        vport,
        mac: [0x02, 0, 0, 0, 0, vport as u8],
        ip: Ipv4Addr::new(10, 0, 0, vport as u8 + 1),
        vlan: 100 + vport,
    }
}

/// The headers (and ingress port) of a packet, as far as the rules look at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Ingress vport ([`UPLINK`] or a VF).
    pub port: u16,
    /// Destination MAC.
    pub dmac: [u8; 6],
    /// VLAN id (the packet always carries one C-VLAN tag).
    pub vlan: u16,
    /// [`TCP`] or [`UDP`].
    pub proto: u8,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// L4 source port.
    pub sport: u16,
    /// L4 destination port.
    pub dport: u16,
}

/// The L2 table's key of a flow.
pub type L2Key = (u16, [u8; 6], u16);

impl Flow {
    /// The L2 classifier's key.
    pub fn l2_key(&self) -> L2Key {
        (self.port, self.dmac, self.vlan)
    }

    /// The conntrack key: the flow without its L2 fields.
    pub fn ct_key(&self) -> Flow {
        Flow {
            dmac: [0; 6],
            vlan: 0,
            ..*self
        }
    }
}

/// One established connection between a VM and a remote host.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The VM's side.
    pub vm: Vm,
    /// [`TCP`] or [`UDP`].
    pub proto: u8,
    /// The remote host.
    pub remote: Ipv4Addr,
    /// The VM's port.
    pub vm_port: u16,
    /// The remote service's port.
    pub remote_port: u16,
}

/// Service ports of the remote hosts, per protocol. No connection uses [`NO_SERVICE`].
const TCP_SERVICES: [u16; 4] = [443, 80, 22, 8080];
const UDP_SERVICES: [u16; 4] = [53, 123, 4789, 5201];
/// A remote port no connection uses: packets to it are new connections.
pub const NO_SERVICE: u16 = 9;

impl Conn {
    /// Connection `i` (of any number): even ones TCP, odd ones UDP, spread over the
    /// VMs; every `i` gives a different connection.
    pub fn nth(i: u32) -> Conn {
        let proto = if i % 2 == 0 { TCP } else { UDP };
        let vm = vm(VFS[(i / 2 % 4) as usize]);
        // Protocol and VM take the low three bits; the remote host is the rest, so no
        // two connections share (protocol, VM, remote).
        let remote = Ipv4Addr::from(0x6440_0000 + (i >> 3));
        let services = if proto == TCP {
            TCP_SERVICES
        } else {
            UDP_SERVICES
        };
        Conn {
            vm,
            proto,
            remote,
            vm_port: 1024 + (i.wrapping_mul(7919) % 60000) as u16,
            remote_port: services[(i >> 3) as usize % 4],
        }
    }

    /// The VM's packets to the remote host.
    pub fn outbound(&self) -> Flow {
        Flow {
            port: self.vm.vport,
            dmac: GATEWAY_MAC,
            vlan: self.vm.vlan,
            proto: self.proto,
            src: self.vm.ip,
            dst: self.remote,
            sport: self.vm_port,
            dport: self.remote_port,
        }
    }

    /// The remote host's packets to the VM.
    pub fn inbound(&self) -> Flow {
        Flow {
            port: UPLINK,
            dmac: self.vm.mac,
            vlan: self.vm.vlan,
            proto: self.proto,
            src: self.remote,
            dst: self.vm.ip,
            sport: self.remote_port,
            dport: self.vm_port,
        }
    }

    /// Where the rule for `flow` (one of this connection's directions) forwards.
    pub fn forward(&self, flow: &Flow) -> Terminal {
        if flow.port == UPLINK {
            Terminal::Vport(self.vm.vport)
        } else {
            Terminal::Uplink
        }
    }
}

/// One conntrack rule: one direction of an established connection.
#[derive(Debug, Clone, Copy)]
pub struct CtRule {
    /// The connection's index ([`Conn::nth`]).
    pub conn: u32,
    /// The direction's headers.
    pub flow: Flow,
    /// Its counter in the conntrack counter bulk: twice the connection's index, plus
    /// one for inbound.
    pub counter_offset: u32,
    /// Where it forwards.
    pub to: Terminal,
}

/// The conntrack rules of those of the first `connections` connections that use
/// `proto`: per connection outbound, then inbound.
pub fn ct_rules(proto: u8, connections: u32) -> impl Iterator<Item = CtRule> {
    (0..connections)
        .map(|i| (i, Conn::nth(i)))
        .filter(move |(_, c)| c.proto == proto)
        .flat_map(|(i, c)| {
            [c.outbound(), c.inbound()]
                .into_iter()
                .zip(0..)
                .map(move |(flow, dir)| CtRule {
                    conn: i,
                    flow,
                    counter_offset: 2 * i + dir,
                    to: c.forward(&flow),
                })
        })
}

/// The L2 table's rules: (key, counter offset), two per VM.
pub fn l2_rules() -> Vec<(L2Key, u32)> {
    VFS.iter()
        .flat_map(|&v| {
            let vm = vm(v);
            [(UPLINK, vm.mac, vm.vlan), (v, GATEWAY_MAC, vm.vlan)]
        })
        .enumerate()
        .map(|(i, k)| (k, i as u32))
        .collect()
}

/// What the rule set does with a packet: the counters it passes (by id, in order) and
/// where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Flow counter ids, in the order the packet passes them.
    pub counters: Vec<u32>,
    /// The destination.
    pub terminal: Terminal,
}

/// The reference classifier: the rule set as two hash maps, obviously right.
#[derive(Debug, Default)]
pub struct Model {
    /// L2 key -> counter id.
    l2: HashMap<L2Key, u32>,
    /// Conntrack key -> (counter id, destination).
    ct: HashMap<Flow, (u32, Terminal)>,
}

impl Model {
    /// Records an L2 rule.
    pub fn add_l2(&mut self, key: L2Key, counter_id: u32) {
        self.l2.insert(key, counter_id);
    }

    /// Records a conntrack rule.
    pub fn add_ct(&mut self, flow: &Flow, counter_id: u32, to: Terminal) {
        self.ct.insert(flow.ct_key(), (counter_id, to));
    }

    /// What the rule set does with `flow`.
    pub fn predict(&self, flow: &Flow) -> Verdict {
        let slow = Terminal::Vport(SLOW_PATH);
        let Some(&l2) = self.l2.get(&flow.l2_key()) else {
            return Verdict {
                counters: Vec::new(),
                terminal: slow,
            };
        };
        match self.ct.get(&flow.ct_key()) {
            Some(&(ct, to)) => Verdict {
                counters: vec![l2, ct],
                terminal: to,
            },
            None => Verdict {
                counters: vec![l2],
                terminal: slow,
            },
        }
    }
}
