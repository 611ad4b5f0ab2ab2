//! Everything anydctl shows: results and stream items as JSON (with the
//! descriptors they hold as what kind of file each is), the
//! endpoint table, the stats table, contract documents and their diffs, ping lines, the benchmark report with its histogram,
//! the progress bar.
//! Commands decide what to show; this module decides how it looks, and
//! makes what a daemon sent safe to show (`text`). No module here talks to
//! a daemon.

pub(crate) mod contract;
pub(crate) mod fds;
pub(crate) mod json;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod result;
pub(crate) mod stats;
pub(crate) mod table;
pub(crate) mod text;

/// A duration in nanoseconds with three significant digits and the unit
/// that suits it: `850ns`, `12.3µs`, `1.20ms`, `2.50s`.
pub(crate) fn duration(ns: u64) -> String {
    let (value, unit) = match ns {
        0..1_000 => return format!("{ns}ns"),
        1_000..1_000_000 => (ns as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (ns as f64 / 1e6, "ms"),
        _ => (ns as f64 / 1e9, "s"),
    };
    if value < 10.0 {
        format!("{value:.2}{unit}")
    } else if value < 100.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.0}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0), "0ns");
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_345), "12.3µs");
        assert_eq!(duration(1_200_000), "1.20ms");
        assert_eq!(duration(999_000), "999µs");
        assert_eq!(duration(2_500_000_000), "2.50s");
        assert_eq!(duration(125_000_000_000), "125s");
    }
}
