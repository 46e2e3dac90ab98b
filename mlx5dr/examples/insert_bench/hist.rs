//! A fixed-bucket logarithmic latency histogram: recording is a few instructions and
//! never allocates, so timing every operation costs little next to the operation.
//!
//! Values (nanoseconds) below 8 have a bucket each; above, every power of two is split
//! into 8 equal buckets, so a bucket spans at most 1/8 of its lower bound. Quantiles are
//! reported as the upper bound of their bucket: at most 12.5 % above the true value,
//! never below it. The maximum is kept exactly, and so are the few slowest values with
//! the operation each belongs to (to tell a stall the engine causes, which recurs at the
//! same operation from run to run, from the scheduler's, which does not).

/// Sub-buckets per power of two (log2).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64`.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;
/// How many of the slowest values are kept.
pub const WORST: usize = 5;

/// Counts of values per bucket, with the exact count, sum and maximum, and the slowest
/// few values with their operation's index.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    n: u64,
    sum: u128,
    max: u64,
    /// (value, operation index), largest first; unused places are (0, 0).
    worst: [(u64, u64); WORST],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            n: 0,
            sum: 0,
            max: 0,
            worst: [(0, 0); WORST],
        }
    }
}

/// The bucket of `v`.
fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = e - SUB_BITS;
    let m = ((v >> shift) as usize) & (SUB - 1);
    SUB + shift as usize * SUB + m
}

/// The largest value bucket `i` holds.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = ((i - SUB) / SUB) as u32;
    let m = ((i - SUB) % SUB) as u64;
    let low = (SUB as u64 + m) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Counts one value, of operation number `op`.
    #[inline]
    pub fn record(&mut self, v: u64, op: u64) {
        self.counts[bucket(v)] += 1;
        self.n += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
        if v > self.worst[WORST - 1].0 {
            self.keep_worst(v, op);
        }
    }

    #[cold]
    fn keep_worst(&mut self, v: u64, op: u64) {
        let at = self
            .worst
            .iter()
            .position(|&(w, _)| v > w)
            .unwrap_or(WORST - 1);
        self.worst.copy_within(at..WORST - 1, at + 1);
        self.worst[at] = (v, op);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
        for &(v, op) in other.worst.iter().filter(|w| w.0 > 0) {
            if v > self.worst[WORST - 1].0 {
                self.keep_worst(v, op);
            }
        }
    }

    /// The slowest values recorded, largest first, with their operation numbers.
    pub fn worst(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.worst.iter().copied().filter(|w| w.0 > 0)
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The largest value counted (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum as f64 / self.n as f64
        }
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding the
    /// `ceil(q * n)`-th smallest value, capped by the maximum (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS);
            assert!(b >= last || v > 100_000);
            assert!(v <= upper(b), "{v} above bucket {b}'s bound {}", upper(b));
            if b > 0 {
                assert!(v > upper(b - 1), "{v} fits bucket {}", b - 1);
            }
            assert!(upper(b) - v <= v / 8, "{v}: bound {} too loose", upper(b));
            last = b;
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v, 1000 - v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        let p50 = h.quantile(0.5);
        assert!((500..=500 + 500 / 8).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1000);
        assert!(h.quantile(0.999) >= 999);
        let worst: Vec<_> = h.worst().collect();
        assert_eq!(worst, [(1000, 0), (999, 1), (998, 2), (997, 3), (996, 4)]);
        let mut other = Histogram::default();
        other.record(998, 77);
        other.record(5000, 78);
        h.merge(&other);
        let worst: Vec<_> = h.worst().collect();
        assert_eq!(
            worst,
            [(5000, 78), (1000, 0), (999, 1), (998, 2), (998, 77)]
        );
        assert_eq!(h.max(), 5000);
    }
}
