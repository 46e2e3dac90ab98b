//! Write-behind for small copies into device memory: consecutive spans bound for one
//! [`DmaMemory`] are gathered in a driver-side buffer and reach it in one `write`.
//!
//! Each [`DmaMemory::write`] costs a call through the seam (and, on the simulator, a
//! lock round trip) whatever its size, while the writes of one doorbell batch land in
//! consecutive staging spans. Gathering them makes that cost per run instead of per
//! write. The device reads the memory only after the next doorbell, so the ring must
//! [`Gather::flush`] before ringing it; until then the target may lag behind.
//!
//! A run is a span `[at, at + len)` of the target. A new span joins the run when it
//! starts at most [`MAX_GAP`] bytes after the run's end and the run still fits the
//! buffer; the gap's bytes (alignment padding nothing reads) are copied along with
//! whatever the buffer held there. Anything else flushes the run first; a span larger
//! than the buffer is written straight through.

use crate::device::{DeviceError, DmaMemory};

/// The largest gap between a run's end and a span that still joins it: the staging
/// ring pads every reservation to 64 bytes.
pub(crate) const MAX_GAP: usize = 64;

/// The bytes of one run waiting for their target.
#[derive(Debug)]
pub(crate) struct Gather {
    buf: Box<[u8]>,
    /// The target offset of `buf[0]`.
    at: usize,
    /// Bytes of the run (0: nothing waits).
    len: usize,
}

impl Gather {
    /// A gather buffer of `cap` bytes.
    pub(crate) fn new(cap: usize) -> Gather {
        Gather {
            buf: vec![0; cap].into_boxed_slice(),
            at: 0,
            len: 0,
        }
    }

    /// True when no bytes wait.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `data` for offset `offset` of `mem`, writing out the run it does not
    /// join (and `data` itself if it is larger than the buffer).
    #[inline]
    pub(crate) fn put(
        &mut self,
        mem: &dyn DmaMemory,
        offset: usize,
        data: &[u8],
    ) -> Result<(), DeviceError> {
        let end = self.at + self.len;
        // Where `data` goes in the buffer: after the run it joins, or at the start of a
        // new run when nothing waits (the first span of every doorbell batch).
        let from = if self.len == 0 {
            self.at = offset;
            0
        } else if offset >= end && offset - end <= MAX_GAP {
            offset - self.at
        } else {
            return self.start(mem, offset, data);
        };
        match self.buf.get_mut(from..from + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.len = from + data.len();
                Ok(())
            }
            None => self.start(mem, offset, data),
        }
    }

    /// `put` for a span that does not join the run, or does not fit after it: flush
    /// the run, then start a new one.
    #[cold]
    fn start(
        &mut self,
        mem: &dyn DmaMemory,
        offset: usize,
        data: &[u8],
    ) -> Result<(), DeviceError> {
        self.flush(mem)?;
        match self.buf.get_mut(..data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.at = offset;
                self.len = data.len();
                Ok(())
            }
            None => mem.write(offset, data),
        }
    }

    /// Writes the run to `mem`; afterwards nothing waits.
    #[inline]
    pub(crate) fn flush(&mut self, mem: &dyn DmaMemory) -> Result<(), DeviceError> {
        if self.len == 0 {
            return Ok(());
        }
        let len = std::mem::take(&mut self.len);
        mem.write(self.at, &self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A target that records each `write` it gets.
    #[derive(Debug, Default)]
    struct Log {
        bytes: Mutex<Vec<u8>>,
        writes: Mutex<Vec<(usize, usize)>>,
    }

    impl DmaMemory for Log {
        fn len(&self) -> usize {
            self.bytes.lock().unwrap().len()
        }
        fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DeviceError> {
            out.copy_from_slice(&self.bytes.lock().unwrap()[offset..offset + out.len()]);
            Ok(())
        }
        fn write(&self, offset: usize, data: &[u8]) -> Result<(), DeviceError> {
            let mut b = self.bytes.lock().unwrap();
            if b.len() < offset + data.len() {
                return Err(DeviceError::DmaOutOfRange {
                    offset,
                    len: data.len(),
                    size: b.len(),
                });
            }
            b[offset..offset + data.len()].copy_from_slice(data);
            self.writes.lock().unwrap().push((offset, data.len()));
            Ok(())
        }
    }

    fn log(size: usize) -> Log {
        Log {
            bytes: Mutex::new(vec![0; size]),
            ..Log::default()
        }
    }

    #[test]
    fn consecutive_spans_reach_the_target_in_one_write() {
        let mem = log(1024);
        let mut g = Gather::new(256);
        g.put(&mem, 64, &[1; 64]).unwrap();
        // 40 bytes, then the next span after 24 bytes of padding.
        g.put(&mem, 128, &[2; 40]).unwrap();
        g.put(&mem, 192, &[3; 64]).unwrap();
        assert!(
            mem.writes.lock().unwrap().is_empty(),
            "nothing before flush"
        );
        g.flush(&mem).unwrap();
        g.flush(&mem).unwrap();
        assert_eq!(*mem.writes.lock().unwrap(), vec![(64, 192)]);
        let b = mem.bytes.lock().unwrap();
        assert_eq!(b[64..128], [1; 64]);
        assert_eq!(b[128..168], [2; 40]);
        assert_eq!(b[192..256], [3; 64]);
    }

    #[test]
    fn spans_that_do_not_join_start_a_new_run() {
        let mem = log(4096);
        let mut g = Gather::new(256);
        g.put(&mem, 0, &[1; 64]).unwrap();
        // Backwards (the ring wrapped): the run so far is written first.
        g.put(&mem, 0, &[2; 8]).unwrap();
        // Too far ahead.
        g.put(&mem, 1024, &[3; 64]).unwrap();
        // Does not fit the buffer after the run: a new run.
        g.put(&mem, 1088, &[4; 200]).unwrap();
        // Larger than the buffer: straight through, after the run.
        g.put(&mem, 2048, &[5; 300]).unwrap();
        g.flush(&mem).unwrap();
        assert_eq!(
            *mem.writes.lock().unwrap(),
            vec![(0, 64), (0, 8), (1024, 64), (1088, 200), (2048, 300)]
        );
        let b = mem.bytes.lock().unwrap();
        assert_eq!(b[..8], [2; 8]);
        assert_eq!(b[8..64], [1; 56]);
        assert_eq!(b[1088..1288], [4; 200]);
        assert_eq!(b[2048..2348], [5; 300]);
    }

    #[test]
    fn a_span_larger_than_the_buffer_goes_straight_through_when_nothing_waits() {
        let mem = log(1024);
        let mut g = Gather::new(256);
        g.put(&mem, 512, &[6; 300]).unwrap();
        assert_eq!(*mem.writes.lock().unwrap(), vec![(512, 300)]);
        assert!(g.is_empty());
        // The next span starts a run of its own.
        g.put(&mem, 64, &[7; 64]).unwrap();
        g.flush(&mem).unwrap();
        assert_eq!(*mem.writes.lock().unwrap(), vec![(512, 300), (64, 64)]);
        assert_eq!(mem.bytes.lock().unwrap()[64..128], [7; 64]);
    }

    #[test]
    fn a_failed_write_drops_the_run_and_reports_the_error() {
        let mem = log(128);
        let mut g = Gather::new(256);
        g.put(&mem, 100, &[1; 64]).unwrap();
        assert!(matches!(
            g.flush(&mem),
            Err(DeviceError::DmaOutOfRange { offset: 100, .. })
        ));
        g.flush(&mem).unwrap();
    }
}
