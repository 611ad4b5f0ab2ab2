//! A latency histogram in microseconds that threads add to without a
//! lock: buckets of powers of two, a sum and a maximum, and the
//! percentiles read back from the buckets.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// How many buckets: the first holds calls under 1 µs, bucket `i` those
/// from 2^(i-1) µs to under 2^i µs, the last everything from 2^(BUCKETS-2)
/// µs (some 18 minutes) on.
const BUCKETS: usize = 32;

/// Call durations, added to by every connection's thread at once.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

/// The bucket of a duration of `micros`.
#[inline]
fn bucket(micros: u64) -> usize {
    ((u64::BITS - micros.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The least duration bucket `i` holds.
fn lower_bound(i: usize) -> u64 {
    match i {
        0 => 0,
        _ => 1 << (i - 1),
    }
}

impl Histogram {
    /// Adds one duration.
    #[inline]
    pub(crate) fn record(&self, micros: u64) {
        self.buckets[bucket(micros)].fetch_add(1, Relaxed);
        self.sum.fetch_add(micros, Relaxed);
        // Read first: the maximum rarely changes, and a load costs no
        // exclusive hold of the cache line.
        if micros > self.max.load(Relaxed) {
            self.max.fetch_max(micros, Relaxed);
        }
    }

    /// How many durations were added.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The figures `anyd.stats` shows. Taken while calls go on, they may
    /// be a call or two apart from one another; each is exact.
    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let counts: [u64; BUCKETS] = std::array::from_fn(|i| self.buckets[i].load(Relaxed));
        let max = self.max.load(Relaxed);
        let count: u64 = counts.iter().sum();
        LatencySnapshot {
            p50: quantile(&counts, count, max, 50),
            p99: quantile(&counts, count, max, 99),
            max,
            sum: self.sum.load(Relaxed),
            buckets: (0..BUCKETS)
                .filter(|&i| counts[i] > 0)
                .map(|i| (lower_bound(i), counts[i]))
                .collect(),
        }
    }
}

/// The `percent`th percentile as the buckets give it: the upper bound of
/// the bucket it falls in (so at most twice the true figure, never
/// less), or the maximum if that is less. 0 when nothing was counted.
fn quantile(counts: &[u64; BUCKETS], count: u64, max: u64, percent: u64) -> u64 {
    if count == 0 {
        return 0;
    }
    // The rank of the call the percentile is, from 1: the ceiling.
    let rank = (count * percent).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let upper = if i + 1 < BUCKETS {
                lower_bound(i + 1)
            } else {
                max
            };
            return upper.min(max);
        }
    }
    max
}

/// Latencies in the reply of `anyd.stats`, in microseconds.
#[derive(Debug, Serialize)]
pub(crate) struct LatencySnapshot {
    /// The median, as the buckets give it (at most twice the true one).
    p50: u64,
    /// The 99th percentile, likewise.
    p99: u64,
    /// The longest call.
    max: u64,
    /// All calls' durations added, for a mean (or a Prometheus `_sum`).
    sum: u64,
    /// The buckets that hold calls, as `[from, count]`: `count` calls took
    /// from `from` µs to under twice that (under 1 µs for `from` 0; the
    /// last bucket has no upper bound).
    buckets: Vec<(u64, u64)>,
}

impl LatencySnapshot {
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_power_of_two_buckets() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!((bucket(2), bucket(3)), (2, 2));
        assert_eq!((bucket(4), bucket(7), bucket(8)), (3, 3, 4));
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for i in 1..BUCKETS {
            assert_eq!(bucket(lower_bound(i)), i);
            assert_eq!(bucket(lower_bound(i) - 1), i - 1);
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets_and_never_pass_the_maximum() {
        let h = Histogram::default();
        let empty = h.snapshot();
        assert_eq!((empty.p50, empty.p99, empty.max), (0, 0, 0));
        assert!(empty.buckets.is_empty());
        // 98 calls of 10 µs (bucket 8..16), two of 1000 µs (512..1024).
        for _ in 0..98 {
            h.record(10);
        }
        h.record(1000);
        h.record(1000);
        let s = h.snapshot();
        assert_eq!(s.p50, 16);
        assert_eq!(s.p99, 1000, "the bucket's bound is 1024, the maximum less");
        assert_eq!(s.max, 1000);
        assert_eq!(s.sum, 98 * 10 + 2000);
        assert_eq!(s.buckets, [(8, 98), (512, 2)]);
        assert_eq!(s.count(), 100);
        // One slow call in a hundred is the 99th percentile; in more, not.
        h.record(10);
        assert_eq!(h.snapshot().p99, 1000);
        for _ in 0..200 {
            h.record(10);
        }
        assert_eq!(h.snapshot().p99, 16);
    }

    #[test]
    fn the_last_bucket_is_bounded_by_the_maximum() {
        let h = Histogram::default();
        h.record(u64::MAX / 2);
        let s = h.snapshot();
        assert_eq!((s.p50, s.max), (u64::MAX / 2, u64::MAX / 2));
        assert_eq!(s.buckets, [(lower_bound(BUCKETS - 1), 1)]);
    }
}
