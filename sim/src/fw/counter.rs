//! Flow counters: allocated in bulks, counted into by the packet pipeline, read back by
//! `QUERY_FLOW_COUNTER`.
//!
//! A bulk of `n` counters has ids `base .. base + n`, with `base` aligned to `n` rounded
//! up to a power of two (STEs and entries name a counter by its id, which for software
//! steering is the bulk id plus an offset). Counting takes `&self`: values sit behind a
//! lock, so the pipeline can count while holding a shared reference to the firmware.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::FwError;

/// The largest counter id (STE counter fields are 24 bits wide).
pub const MAX_COUNTER_ID: u32 = (1 << 24) - 1;

/// Packets and bytes of one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Traffic {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub octets: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bulk {
    len: u32,
    uid: u16,
}

/// All live counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bulks by first id.
    bulks: BTreeMap<u32, Bulk>,
    /// Values of counters that have counted something since allocation or the last
    /// clear; absent means zero. Kept sparse so that a bulk of millions costs nothing.
    values: Mutex<HashMap<u32, Traffic>>,
    allocated: u64,
}

impl Counters {
    /// Allocates a bulk of `n` counters for `uid`, at most `max_total` live at once;
    /// returns the first id.
    pub fn alloc(&mut self, uid: u16, n: u32, max_total: u64) -> Result<u32, FwError> {
        if n == 0 || n > MAX_COUNTER_ID {
            return Err(FwError::BadCounterBulk(n.into()));
        }
        if self.allocated + u64::from(n) > max_total {
            return Err(FwError::Exhausted("flow counters"));
        }
        let align = n.next_power_of_two();
        // Id 0 is never handed out, so that a zero counter field means "no counter".
        let mut base = align;
        for (&start, bulk) in &self.bulks {
            if base + n <= start {
                break;
            }
            let end = start + bulk.len;
            if end > base {
                base = end.div_ceil(align) * align;
            }
        }
        if u64::from(base) + u64::from(n) - 1 > u64::from(MAX_COUNTER_ID) {
            return Err(FwError::Exhausted("flow counter ids"));
        }
        self.bulks.insert(base, Bulk { len: n, uid });
        self.allocated += u64::from(n);
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.retain(|&id, _| id < base || id >= base + n);
        Ok(base)
    }

    /// Frees the bulk whose first id is `base`.
    pub fn dealloc(&mut self, uid: u16, base: u32) -> Result<(), FwError> {
        let bulk = *self.bulks.get(&base).ok_or(FwError::NoSuchCounter(base))?;
        check_uid(bulk.uid, uid)?;
        self.bulks.remove(&base);
        self.allocated -= u64::from(bulk.len);
        Ok(())
    }

    /// The bulk (first id and length) that holds counter `id`.
    pub fn bulk_of(&self, id: u32) -> Option<(u32, u32)> {
        let (&base, bulk) = self.bulks.range(..=id).next_back()?;
        (id - base < bulk.len).then_some((base, bulk.len))
    }

    /// True when `id` is a live counter.
    pub fn is_live(&self, id: u32) -> bool {
        self.bulk_of(id).is_some()
    }

    /// Adds a packet count and a byte count to counter `id`.
    pub fn count(&self, id: u32, packets: u64, octets: u64) -> Result<(), FwError> {
        if !self.is_live(id) {
            return Err(FwError::NoSuchCounter(id));
        }
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let v = values.entry(id).or_default();
        v.packets = v.packets.wrapping_add(packets);
        v.octets = v.octets.wrapping_add(octets);
        Ok(())
    }

    /// The values of counters `id .. id + n`, all live and of `uid`; cleared after the
    /// read when `clear`.
    pub fn query(&self, uid: u16, id: u32, n: u32, clear: bool) -> Result<Vec<Traffic>, FwError> {
        let end = id.checked_add(n).ok_or(FwError::NoSuchCounter(id))?;
        for i in id..end {
            let (base, _) = self.bulk_of(i).ok_or(FwError::NoSuchCounter(i))?;
            check_uid(self.bulks[&base].uid, uid)?;
        }
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        Ok((id..end)
            .map(|i| {
                if clear {
                    values.remove(&i).unwrap_or_default()
                } else {
                    values.get(&i).copied().unwrap_or_default()
                }
            })
            .collect())
    }

    /// The value of counter `id`, if live.
    pub fn value(&self, id: u32) -> Option<Traffic> {
        self.is_live(id).then(|| {
            let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
            values.get(&id).copied().unwrap_or_default()
        })
    }

    /// Counters allocated.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }
}

/// uid 0 (the kernel) may use any object; other uids only their own.
pub(crate) fn check_uid(owner: u16, caller: u16) -> Result<(), FwError> {
    if caller == 0 || owner == caller {
        Ok(())
    } else {
        Err(FwError::UidMismatch { owner, caller })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulks_are_aligned_and_disjoint() {
        let mut c = Counters::default();
        let a = c.alloc(0, 1, 1 << 20).unwrap();
        let b = c.alloc(0, 128, 1 << 20).unwrap();
        let d = c.alloc(0, 3, 1 << 20).unwrap();
        assert_eq!(a, 1);
        assert_eq!(b % 128, 0);
        assert_eq!(d % 4, 0);
        assert!(d + 3 <= b || d >= b + 128);
        assert_eq!(c.bulk_of(b + 127), Some((b, 128)));
        assert_eq!(c.allocated(), 132);
        c.dealloc(0, b).unwrap();
        assert!(!c.is_live(b));
        assert_eq!(c.alloc(0, 128, 1 << 20).unwrap(), b);
    }

    #[test]
    fn count_query_clear() {
        let mut c = Counters::default();
        let id = c.alloc(5, 4, 100).unwrap();
        c.count(id + 1, 2, 128).unwrap();
        c.count(id + 1, 1, 64).unwrap();
        let q = c.query(5, id, 4, true).unwrap();
        assert_eq!(
            q[1],
            Traffic {
                packets: 3,
                octets: 192
            }
        );
        assert_eq!(q[0], Traffic::default());
        assert_eq!(c.value(id + 1), Some(Traffic::default()));
        assert_eq!(c.count(id + 4, 1, 1), Err(FwError::NoSuchCounter(id + 4)));
        assert!(matches!(
            c.query(6, id, 1, false),
            Err(FwError::UidMismatch { .. })
        ));
        assert_eq!(
            c.query(0, id, 5, false),
            Err(FwError::NoSuchCounter(id + 4))
        );
    }

    #[test]
    fn limits() {
        let mut c = Counters::default();
        assert!(matches!(c.alloc(0, 0, 10), Err(FwError::BadCounterBulk(0))));
        assert!(matches!(c.alloc(0, 11, 10), Err(FwError::Exhausted(_))));
        assert!(matches!(c.dealloc(0, 77), Err(FwError::NoSuchCounter(77))));
        let id = c.alloc(0, 2, 10).unwrap();
        // Freeing by a non-first id is refused.
        assert!(matches!(
            c.dealloc(0, id + 1),
            Err(FwError::NoSuchCounter(_))
        ));
    }
}
