//! Flow counters: firmware objects allocated in bulks, counted into by STEs, read back
//! with `QUERY_FLOW_COUNTER`.
//!
//! A bulk of `2^log` counters has consecutive ids from [`Counter::id`]; a counter action
//! names one of them by offset. Bulks are encoded the way the device understands them:
//! one counter plainly; `128 * 2^k` counters (k in 0..=7) in the classic bit-mask field,
//! which every generation knows; other sizes in the log-size field of newer firmware.

use std::sync::Arc;

use ste_builder::prm::{alloc_flow_counter_out, dealloc_flow_counter_in};

use crate::cmd::{CmdError, CmdIn};
use crate::device::{Device, ObjectId};
use crate::domain::{create_object, destroy_object, opcode, out_get, Domain};
use ste_builder::prm_kernel::traffic_counter;
use ste_builder::prm_kernel::{
    alloc_flow_counter_in, query_flow_counter_in, query_flow_counter_out,
};

/// The classic bulk field counts in units of 128 counters.
const LOG_CLASSIC_UNIT: u8 = 7;
/// The classic bulk field is 8 bits wide: at most `128 << 7` counters.
const LOG_CLASSIC_MAX: u8 = LOG_CLASSIC_UNIT + 7;
/// The most counters one `QUERY_FLOW_COUNTER` reads (its count field is 16 bits; a
/// larger read is split into several commands).
pub const MAX_QUERY_COUNTERS: u32 = 1 << 15;

/// Why a counter operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// A bulk larger than the device allocates at once.
    #[error("a bulk of 2^{log_bulk} flow counters is above the device's 2^{max} (log_max_flow_counter_bulk)")]
    BulkTooLarge {
        /// Asked for, log2 of counters.
        log_bulk: u8,
        /// `log_max_flow_counter_bulk`.
        max: u8,
    },
    /// Counters outside the bulk.
    #[error("counters {first}..{first}+{count} are outside the bulk of {len}")]
    OutOfRange {
        /// The first offset asked for.
        first: u32,
        /// How many.
        count: u32,
        /// Counters in the bulk.
        len: u32,
    },
    /// A counter command failed.
    #[error(transparent)]
    Command(#[from] CmdError),
}

/// What one counter has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CounterValue {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A bulk of flow counters (`ALLOC_FLOW_COUNTER`), freed when the last holder goes
/// (counter actions hold it, so a counter in use is never freed).
pub struct Counter {
    dev: Arc<dyn Device>,
    obj: ObjectId,
    base: u32,
    len: u32,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Counter {
    /// Allocates a bulk of `2^log_bulk` counters on `dmn`'s device (usable by every
    /// domain of the device).
    pub fn alloc(dmn: &Domain, log_bulk: u8) -> Result<Arc<Counter>, CounterError> {
        let max = dmn.caps().log_max_flow_counter_bulk;
        if log_bulk > max || log_bulk > 31 {
            return Err(CounterError::BulkTooLarge { log_bulk, max });
        }
        let mut cmd = CmdIn::new(
            "ALLOC_FLOW_COUNTER",
            opcode::ALLOC_FLOW_COUNTER,
            ste_builder::prm::alloc_flow_counter_in::SIZE_BITS,
        );
        if (LOG_CLASSIC_UNIT..=LOG_CLASSIC_MAX).contains(&log_bulk) {
            cmd = cmd.set(
                alloc_flow_counter_in::FLOW_COUNTER_BULK,
                1 << (log_bulk - LOG_CLASSIC_UNIT),
            );
        } else if log_bulk > 0 {
            cmd = cmd.set(
                alloc_flow_counter_in::FLOW_COUNTER_BULK_LOG_SIZE,
                log_bulk.into(),
            );
        }
        let dev = Arc::clone(dmn.device());
        let (obj, out) = create_object(&*dev, &cmd, alloc_flow_counter_out::SIZE_BITS)?;
        Ok(Arc::new(Counter {
            dev,
            obj,
            base: out_get(&out, alloc_flow_counter_out::FLOW_COUNTER_ID) as u32,
            len: 1 << log_bulk,
        }))
    }

    /// The id of the bulk's first counter.
    pub fn id(&self) -> u32 {
        self.base
    }

    /// Counters in the bulk.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Never true: a bulk has at least one counter.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The device the counters live on.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.dev
    }

    fn check(&self, first: u32, count: u32) -> Result<(), CounterError> {
        if count == 0 || first >= self.len || count > self.len - first {
            return Err(CounterError::OutOfRange {
                first,
                count,
                len: self.len,
            });
        }
        Ok(())
    }

    /// Reads counter `offset` of the bulk.
    pub fn query(&self, offset: u32) -> Result<CounterValue, CounterError> {
        let mut v = self.query_many(offset, 1)?;
        // `query_many` returns exactly one value per counter asked for.
        Ok(v.pop().unwrap_or_default())
    }

    /// Reads `count` consecutive counters from `first`, in one command per
    /// [`MAX_QUERY_COUNTERS`].
    pub fn query_many(&self, first: u32, count: u32) -> Result<Vec<CounterValue>, CounterError> {
        self.read(first, count, false)
    }

    /// Reads `count` consecutive counters from `first` and sets them back to zero.
    pub fn query_and_clear(
        &self,
        first: u32,
        count: u32,
    ) -> Result<Vec<CounterValue>, CounterError> {
        self.read(first, count, true)
    }

    fn read(&self, first: u32, count: u32, clear: bool) -> Result<Vec<CounterValue>, CounterError> {
        self.check(first, count)?;
        let mut values = Vec::with_capacity(count as usize);
        let mut at = first;
        while at - first < count {
            let n = (count - (at - first)).min(MAX_QUERY_COUNTERS);
            let cmd = CmdIn::new(
                "QUERY_FLOW_COUNTER",
                opcode::QUERY_FLOW_COUNTER,
                query_flow_counter_in::SIZE_BITS,
            )
            .set(query_flow_counter_in::CLEAR, clear.into())
            .set(query_flow_counter_in::NUM_OF_COUNTERS, n.into())
            .set(
                query_flow_counter_in::FLOW_COUNTER_ID,
                self.base.wrapping_add(at).into(),
            );
            let stats = query_flow_counter_out::FLOW_STATISTICS_OFF;
            let out = cmd.exec(&*self.dev, stats + n as usize * traffic_counter::SIZE_BITS)?;
            values.extend((0..n as usize).map(|i| {
                let base = stats + i * traffic_counter::SIZE_BITS;
                CounterValue {
                    packets: out.get(traffic_counter::PACKETS.at(base)),
                    bytes: out.get(traffic_counter::OCTETS.at(base)),
                }
            }));
            at += n;
        }
        Ok(values)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let cmd = CmdIn::new(
            "DEALLOC_FLOW_COUNTER",
            opcode::DEALLOC_FLOW_COUNTER,
            dealloc_flow_counter_in::SIZE_BITS,
        )
        .set(dealloc_flow_counter_in::FLOW_COUNTER_ID, self.base.into());
        // Nothing can report a failure here; the handle is gone either way.
        let _ = destroy_object(&*self.dev, self.obj, &cmd);
    }
}
