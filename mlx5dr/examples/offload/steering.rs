//! The rule set in the driver's terms: the two tables' masks, the rules' match values,
//! and the forward actions the conntrack rules share. The timed run (`main.rs`) and the
//! recorded run (`record.rs`) build the same rules from these.

use std::error::Error;
use std::net::Ipv4Addr;
use std::sync::Arc;

use mlx5dr::{Action, Domain, Match, Matcher};
use sim::endpoint::Terminal;

use crate::ruleset::{self, Flow, L2Key, TCP};

/// The example's error type: whatever failed, as text.
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The conntrack matcher of one protocol.
pub struct CtMatcher {
    /// "TCP" or "UDP".
    pub name: &'static str,
    /// The protocol number.
    pub proto: u8,
    /// The matcher.
    pub matcher: Arc<Matcher>,
}

/// Table 1's mask: ingress port, destination MAC, C-VLAN id.
pub fn l2_mask() -> Match {
    l2_value((0xffff, [0xff; 6], 0xfff))
}

/// An L2 classifier rule's value.
pub fn l2_value((port, dmac, vlan): L2Key) -> Match {
    Match::new()
        .meta(|m| m.source_port(port))
        .outer(|h| h.dmac(dmac).cvlan_tag(true).vlan_id(vlan))
}

/// Table 2's mask for `proto`: ingress port and the IPv4 5-tuple. (Setting the
/// addresses sets `ip_version` too, which the 5-tuple lookup does not cover: the
/// matcher gets an L2 lookup for it, shared by all its rules.)
pub fn ct_mask(proto: u8) -> Match {
    ct_value(&Flow {
        port: 0xffff,
        dmac: [0; 6],
        vlan: 0,
        proto,
        src: Ipv4Addr::BROADCAST,
        dst: Ipv4Addr::BROADCAST,
        sport: 0xffff,
        dport: 0xffff,
    })
    .outer(|h| h.ip_protocol(0xff))
}

/// A conntrack rule's value.
pub fn ct_value(f: &Flow) -> Match {
    Match::new().meta(|m| m.source_port(f.port)).outer(|h| {
        let h = h.ipv4_src(f.src).ipv4_dst(f.dst).ip_protocol(f.proto);
        if f.proto == TCP {
            h.tcp_sport(f.sport).tcp_dport(f.dport)
        } else {
            h.udp_sport(f.sport).udp_dport(f.dport)
        }
    })
}

/// Every header a packet of `f` carries that some table looks at: the conntrack
/// fields and the L2 ones.
pub fn packet_value(f: &Flow) -> Match {
    ct_value(f).outer(|h| h.dmac(f.dmac).cvlan_tag(true).vlan_id(f.vlan))
}

/// The forward actions the conntrack rules share.
pub struct Forwards {
    uplink: Arc<Action>,
    vfs: Vec<(u16, Arc<Action>)>,
}

impl Forwards {
    /// The uplink's and every VF's forward action in `dmn`.
    pub fn new(dmn: &Arc<Domain>) -> Result<Forwards> {
        let mut vfs = Vec::new();
        for v in ruleset::VFS {
            vfs.push((v, Action::dest_vport(dmn, v)?));
        }
        Ok(Forwards {
            uplink: Action::dest_uplink(dmn)?,
            vfs,
        })
    }

    /// The action forwarding to `t` (the uplink or a VF).
    pub fn to(&self, t: Terminal) -> Result<&Arc<Action>> {
        let vf = |n| self.vfs.iter().find(|(v, _)| *v == n).map(|(_, a)| a);
        match t {
            Terminal::Uplink => Ok(&self.uplink),
            Terminal::Vport(n) => vf(n).ok_or_else(|| format!("no VF with vport {n}").into()),
            other => Err(format!("no forward action to {other:?}").into()),
        }
    }
}
