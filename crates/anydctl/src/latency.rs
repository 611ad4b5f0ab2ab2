//! Latency recording for `bench`: a fixed-size log-linear histogram, so
//! that a run of any length costs the same memory, percentiles are within
//! 1% of the truth, and the threads' histograms merge by adding counts.
//!
//! Values below 2^`SUB_BITS` nanoseconds get a bucket each; above that,
//! each power of two is split into 2^`SUB_BITS` equal buckets (the layout
//! of HdrHistogram). Min, max and the sum are kept exactly.

/// Buckets per power of two: 2^7 = 128, a relative error under 1/128.
const SUB_BITS: u32 = 7;
/// 2^`SUB_BITS`.
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` nanoseconds (584 years).
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Latencies in nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The bucket of a value.
fn index(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = (ns >> shift) - SUB; // 0..SUB
    ((u64::from(shift) + 1) * SUB + mantissa) as usize
}

/// The smallest value of a bucket, and the first value past it.
fn bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index + 1);
    }
    let shift = index / SUB - 1;
    let mantissa = index % SUB;
    let low = (SUB + mantissa) << shift;
    (low, low.saturating_add(1 << shift))
}

impl Latencies {
    /// Records one latency.
    pub(crate) fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.count += 1;
        self.sum += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// Adds another histogram's counts to this one.
    pub(crate) fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many latencies were recorded.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The smallest, exactly; 0 when empty.
    pub(crate) fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest, exactly.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The mean; 0 when empty.
    pub(crate) fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / u128::from(self.count)) as u64
        }
    }

    /// The value below or at which a fraction `q` (0..=1) of the latencies
    /// lie: the middle of the bucket holding that rank, kept within
    /// [min, max]; the exact maximum for the last rank. 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bounds(i);
                let middle = low + (high - low - 1) / 2;
                return middle.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The counts regrouped into at most `max_bins` display bins from min
    /// to max: `(from, to, count)`, with `to` of one bin the `from` of the
    /// next and the last one closed at max. Bins grow geometrically when max
    /// is at least twice min (latencies have long tails), evenly otherwise;
    /// a bin is never narrower than the recording buckets, so no bin is
    /// empty only because of how values were bucketed.
    pub(crate) fn bins(&self, max_bins: usize) -> Vec<(u64, u64, u64)> {
        if self.count == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min, self.max);
        let mut edges: Vec<u64> = if hi / 2 >= lo.max(1) {
            let ratio = (hi as f64 / lo.max(1) as f64).powf(1.0 / max_bins as f64);
            (0..=max_bins)
                .map(|i| (lo.max(1) as f64 * ratio.powi(i as i32)).round() as u64)
                .collect()
        } else {
            let (low, high) = bounds(index(hi));
            let bucket = (high - low).max(1);
            let n = ((hi - lo) / bucket).clamp(1, max_bins as u64);
            (0..=n).map(|i| lo + (hi - lo) * i / n).collect()
        };
        // Tiny values round to the same edge; a bin of no width shows nothing.
        edges.dedup();
        if edges.len() < 2 {
            edges = vec![lo, hi];
        }
        let mut bins: Vec<(u64, u64, u64)> = edges.windows(2).map(|w| (w[0], w[1], 0)).collect();
        bins[0].0 = lo;
        if let Some(last) = bins.last_mut() {
            last.1 = hi;
        }
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let (low, high) = bounds(i);
            let v = (low + (high - low - 1) / 2).clamp(lo, hi);
            let bin = bins
                .iter()
                .position(|&(_, to, _)| v < to)
                .unwrap_or(bins.len() - 1);
            bins[bin].2 += c;
        }
        bins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        for ns in (0..5000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(ns);
            assert!(i < BUCKETS, "{ns}");
            let (low, high) = bounds(i);
            assert!(
                low <= ns && (ns < high || high == u64::MAX),
                "{ns}: {low}..{high}"
            );
        }
        for i in 1..BUCKETS {
            assert_eq!(bounds(i - 1).1, bounds(i).0, "{i}");
        }
    }

    #[test]
    fn quantiles_are_close() {
        let mut l = Latencies::default();
        for ns in 1..=10_000u64 {
            l.record(ns * 1000);
        }
        assert_eq!(l.count(), 10_000);
        assert_eq!(l.min(), 1000);
        assert_eq!(l.max(), 10_000_000);
        assert_eq!(l.mean(), 5_000_500);
        for (q, exact) in [(0.5, 5_000_000.0), (0.9, 9_000_000.0), (0.99, 9_900_000.0)] {
            let got = l.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.01, "p{q}: {got}");
        }
        assert_eq!(l.quantile(1.0), 10_000_000);
        assert_eq!(Latencies::default().quantile(0.5), 0);
    }

    #[test]
    fn merging_adds() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!((a.count(), a.min(), a.max()), (3, 10, 1_000_000));
    }

    #[test]
    fn bins_hold_every_count() {
        let mut l = Latencies::default();
        for ns in [20_000, 21_000, 25_000, 40_000, 90_000, 5_000_000] {
            l.record(ns);
        }
        let bins = l.bins(12);
        assert_eq!(bins.len(), 12);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), 6);
        assert_eq!(bins[0].0, 20_000);
        assert_eq!(bins.last().unwrap().1, 5_000_000);
        assert!(bins.windows(2).all(|w| w[0].1 == w[1].0));

        // A narrow spread: even bins, no wider than needed.
        let mut l = Latencies::default();
        for ns in 1000..1010 {
            l.record(ns);
        }
        let bins = l.bins(12);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), 10);
        assert!(bins.len() <= 12);

        // One value: one bin.
        let mut l = Latencies::default();
        l.record(7);
        assert_eq!(l.bins(12), vec![(7, 7, 1)]);
    }
}
