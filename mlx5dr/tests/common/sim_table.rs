//! One table on a simulated ConnectX, and what packets entering it end as: the rig the
//! batch, shard, completion and failure tests share.

use std::sync::Arc;

use ::sim::endpoint::Terminal;
use ::sim::packet::{build_from_match, Metadata, Side};
use ::sim::profile::DeviceModel;
use ::sim::{Delivery, Entry, Fate};
use mlx5dr::device::sim::SimBackend;
use mlx5dr::{Device, Domain, DomainConfig, DomainType, Table};
use ste_builder::MatchParam;

/// A domain of `kind` with table 1 on a fresh simulated device.
pub struct SimTable {
    pub be: Arc<SimBackend>,
    pub dmn: Arc<Domain>,
    pub table: Arc<Table>,
}

impl SimTable {
    /// On a ConnectX-6 Dx, with the domain's default configuration.
    #[allow(dead_code)] // not every test crate uses it
    pub fn new(kind: DomainType) -> SimTable {
        let be = SimBackend::of_model(DeviceModel::ConnectX6Dx);
        SimTable::open(be, kind, DomainConfig::default())
    }

    /// On `be`, with the domain configured as `cfg`.
    pub fn open(be: SimBackend, kind: DomainType, cfg: DomainConfig) -> SimTable {
        let be = Arc::new(be);
        let dev: Arc<dyn Device> = be.clone();
        let dmn = Domain::open_with(dev, kind, cfg).unwrap();
        let table = Table::new(&dmn, 1).unwrap();
        SimTable { be, dmn, table }
    }

    /// What becomes of a packet of `value` entering the table on `pipe` (one packet
    /// out, asserted).
    pub fn deliver(&self, value: &MatchParam, pipe: Side) -> Delivery {
        let pkt = build_from_match(value, Metadata::new(pipe)).unwrap();
        let mut out = self
            .be
            .sim()
            .process(pkt, Entry::Table(self.table.fw_id()))
            .unwrap();
        assert_eq!(out.len(), 1, "{out:#?}");
        out.remove(0)
    }

    /// What a packet of `value` entering the table on `pipe` ends as, and its flow tag.
    #[allow(dead_code)] // not every test crate uses it
    pub fn fate(&self, value: &MatchParam, pipe: Side) -> (Fate, Option<u32>) {
        let out = self.deliver(value, pipe);
        (out.fate, out.packet.meta.flow_tag)
    }

    /// The flow tag a NIC RX packet of `value` leaves with (`None`: no rule's); it must
    /// end dropped, as the tables of these tests leave every packet.
    #[allow(dead_code)] // not every test crate uses it
    pub fn tag_of(&self, value: &MatchParam) -> Option<u32> {
        let (fate, tag) = self.fate(value, Side::Rx);
        assert_eq!(fate, Fate::Delivered(Terminal::Drop));
        tag
    }
}
