//! What `ping` and `bench` print: ping's lines and statistics, the
//! benchmark report (text or JSON) and its latency histogram.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::text::{escape, escape_line};
use crate::latency::Latencies;

/// `ping`'s closing statistics.
#[derive(Debug, Default)]
pub(crate) struct PingStats {
    /// Calls made.
    pub(crate) calls: u64,
    /// Round-trip times of the calls that got a reply, in milliseconds.
    pub(crate) rtts_ms: Vec<f64>,
}

/// ping's summary: counts, then `rtt min/avg/max/mdev`.
pub(crate) fn ping_summary(address: &str, stats: &PingStats, elapsed: Duration) -> String {
    let replies = stats.rtts_ms.len() as u64;
    let failed = stats.calls - replies;
    let lost = if stats.calls == 0 {
        0.0
    } else {
        failed as f64 * 100.0 / stats.calls as f64
    };
    let mut out = format!(
        "\n--- {address} ping statistics ---\n{} calls, {replies} replies, {lost:.0}% failed, time {}\n",
        stats.calls,
        duration(elapsed.as_nanos() as u64),
    );
    if replies > 0 {
        let n = replies as f64;
        let min = stats.rtts_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = stats.rtts_ms.iter().copied().fold(0.0, f64::max);
        let avg = stats.rtts_ms.iter().sum::<f64>() / n;
        let var = stats
            .rtts_ms
            .iter()
            .map(|x| (x - avg) * (x - avg))
            .sum::<f64>()
            / n;
        let _ = writeln!(
            out,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{:.3} ms",
            var.sqrt()
        );
    }
    out
}

/// Error replies of one kind.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorCount {
    /// The error kind.
    pub(crate) kind: String,
    /// How many replies had it.
    pub(crate) count: u64,
    /// The message of the first one.
    pub(crate) message: String,
}

/// Latency percentiles, in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LatencySummary {
    /// Fastest.
    pub(crate) min: u64,
    /// Mean.
    pub(crate) mean: u64,
    /// Median.
    pub(crate) p50: u64,
    /// 90th percentile.
    pub(crate) p90: u64,
    /// 99th percentile.
    pub(crate) p99: u64,
    /// Slowest.
    pub(crate) max: u64,
}

/// One histogram bin.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Bin {
    /// Lower bound, nanoseconds.
    pub(crate) from_ns: u64,
    /// Upper bound, nanoseconds (the next bin's lower bound).
    pub(crate) to_ns: u64,
    /// Calls in it.
    pub(crate) count: u64,
}

/// The benchmark's result, as `--json` writes it and the text shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchReport {
    /// The daemon.
    pub(crate) address: String,
    /// The call, as `endpoint(args, key=value)`.
    pub(crate) call: String,
    /// The codec.
    pub(crate) codec: &'static str,
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Answered calls: `ok + errors`.
    pub(crate) calls: u64,
    /// Calls that returned a result.
    pub(crate) ok: u64,
    /// Calls answered with an error reply.
    pub(crate) errors: u64,
    /// The error replies by kind.
    pub(crate) error_kinds: Vec<ErrorCount>,
    /// Why each client that stopped early stopped (a broken connection, a
    /// timeout).
    pub(crate) failed_clients: Vec<String>,
    /// Stopped by Ctrl-C.
    pub(crate) interrupted: bool,
    /// Wall time from the start signal to the last client's end.
    pub(crate) elapsed_s: f64,
    /// `calls / elapsed_s`.
    pub(crate) calls_per_s: f64,
    /// Latency of every answered call.
    pub(crate) latency_ns: LatencySummary,
    /// The histogram the text draws.
    pub(crate) histogram: Vec<Bin>,
}

/// How many bins the histogram has at most.
pub(crate) const HISTOGRAM_BINS: usize = 12;

impl LatencySummary {
    /// The percentiles of recorded latencies.
    pub(crate) fn of(l: &Latencies) -> Self {
        LatencySummary {
            min: l.min(),
            mean: l.mean(),
            p50: l.quantile(0.50),
            p90: l.quantile(0.90),
            p99: l.quantile(0.99),
            max: l.max(),
        }
    }
}

/// The report as text: the summary lines, then the histogram.
pub(crate) fn bench_text(r: &BenchReport) -> String {
    let mut out = format!(
        "bench {} on {}: {} client{}, {}\n",
        r.call,
        r.address,
        r.clients,
        if r.clients == 1 { "" } else { "s" },
        r.codec
    );
    let _ = writeln!(
        out,
        "calls:    {} ({} ok, {} errors) in {:.3} s{}",
        r.calls,
        r.ok,
        r.errors,
        r.elapsed_s,
        if r.interrupted { ", interrupted" } else { "" }
    );
    let _ = writeln!(out, "rate:     {:.0} calls/s", r.calls_per_s);
    if r.calls > 0 {
        let l = &r.latency_ns;
        let _ = writeln!(
            out,
            "latency:  min {}  p50 {}  p90 {}  p99 {}  max {}  (mean {})",
            duration(l.min),
            duration(l.p50),
            duration(l.p90),
            duration(l.p99),
            duration(l.max),
            duration(l.mean),
        );
    }
    for (i, e) in r.error_kinds.iter().enumerate() {
        let label = if i == 0 { "errors:" } else { "" };
        let _ = writeln!(
            out,
            "{label:9} {} {}: {}",
            e.count,
            escape_line(&e.kind),
            escape(&e.message)
        );
    }
    for (i, why) in r.failed_clients.iter().enumerate() {
        let label = if i == 0 { "stopped:" } else { "" };
        let _ = writeln!(out, "{label:9} a client: {}", escape(why));
    }
    if !r.histogram.is_empty() {
        let _ = write!(
            out,
            "\nlatency histogram ({} calls):\n{}",
            r.calls,
            histogram(&r.histogram, r.calls)
        );
    }
    out
}

/// Width of the longest histogram bar, in terminal cells.
const BAR_WIDTH: usize = 40;

/// Partial blocks, in eighths of a cell.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// A bar of `fraction` (0..=1) of `width` cells, to an eighth of a cell.
pub(crate) fn bar(fraction: f64, width: usize) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 != 0 {
        s.push(EIGHTHS[eighths % 8]);
    }
    s
}

/// One line per bin: its range, a bar scaled to the fullest bin, the count
/// and its share of `total`.
pub(crate) fn histogram(bins: &[Bin], total: u64) -> String {
    let from: Vec<String> = bins.iter().map(|b| duration(b.from_ns)).collect();
    let to: Vec<String> = bins.iter().map(|b| duration(b.to_ns)).collect();
    let width = |v: &[String]| v.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let (from_width, to_width) = (width(&from), width(&to));
    // The ranges line up on their dash.
    let labels: Vec<String> = from
        .iter()
        .zip(&to)
        .map(|(f, t)| {
            let (f_pad, t_pad) = (from_width - f.chars().count(), to_width - t.chars().count());
            format!("{}{f} – {t}{}", " ".repeat(f_pad), " ".repeat(t_pad))
        })
        .collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let count_width = bins
        .iter()
        .map(|b| b.count.to_string().len())
        .max()
        .unwrap_or(1);
    let fullest = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut out = String::new();
    for (b, label) in bins.iter().zip(&labels) {
        let mut bar = bar(b.count as f64 / fullest as f64, BAR_WIDTH);
        // A bin with any calls at all shows a sliver, so that rare slow
        // calls are seen.
        if bar.is_empty() && b.count > 0 {
            bar.push(EIGHTHS[1]);
        }
        let pad = label_width - label.chars().count();
        let bar_pad = BAR_WIDTH - bar.chars().count();
        let _ = writeln!(
            out,
            "  {}{label} │{bar}{} {:>count_width$} {:5.1}%",
            " ".repeat(pad),
            " ".repeat(bar_pad),
            b.count,
            b.count as f64 * 100.0 / total.max(1) as f64,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_eighths() {
        assert_eq!(bar(0.0, 4), "");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 3), "█▌");
        assert_eq!(bar(1.0 / 32.0, 4), "▏");
    }

    #[test]
    fn histogram_lines() {
        let bins = [
            Bin {
                from_ns: 10_000,
                to_ns: 20_000,
                count: 3,
            },
            Bin {
                from_ns: 20_000,
                to_ns: 1_500_000,
                count: 1,
            },
        ];
        let text = histogram(&bins, 4);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("  10.0µs – 20.0µs │████"), "{text}");
        assert!(lines[0].ends_with(" 3  75.0%"), "{text}");
        assert!(
            lines[1].starts_with("  20.0µs – 1.50ms │█████████████▍ "),
            "{text}"
        );
        // Bars end in the same column, so counts line up.
        assert_eq!(lines[0].chars().count(), lines[1].chars().count());
    }

    #[test]
    fn ping_statistics() {
        let stats = PingStats {
            calls: 4,
            rtts_ms: vec![1.0, 2.0, 3.0],
        };
        let text = ping_summary("unix:/x", &stats, Duration::from_secs(3));
        assert!(text.contains("--- unix:/x ping statistics ---"), "{text}");
        assert!(
            text.contains("4 calls, 3 replies, 25% failed, time 3.00s"),
            "{text}"
        );
        assert!(
            text.contains("rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms"),
            "{text}"
        );
    }
}
