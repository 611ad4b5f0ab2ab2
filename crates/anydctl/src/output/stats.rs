//! The table of `anydctl stats`: one line per endpoint, then the daemon's
//! own figures. The names come from the daemon, so they are escaped
//! (`output::text`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::text::escape_line;

/// What the table reads of the reply of `anyd.stats` (docs/PROTOCOL.md
/// section 5); what else it holds is for `--json`.
#[derive(Deserialize)]
struct Reply {
    uptime_s: u64,
    connections: Connections,
    endpoints: Vec<Row>,
    refused: u64,
}

#[derive(Deserialize)]
struct Connections {
    open: u64,
    total: u64,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    calls: u64,
    errors: BTreeMap<String, u64>,
    timeouts: u64,
    cancelled: u64,
    latency_us: Latency,
}

#[derive(Deserialize)]
struct Latency {
    p50: u64,
    p99: u64,
}

/// A duration in microseconds as people read it.
fn micros(us: u64) -> String {
    super::duration(us.saturating_mul(1000))
}

/// An uptime in seconds: `3d 4h`, `2h 5m`, `5m 3s`, `42s`.
fn uptime(s: u64) -> String {
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The reply as aligned columns (ENDPOINT, CALLS, ERRORS, TIMEOUTS,
/// CANCELLED, P50, P99; errors as their total), and a line of the
/// daemon's figures; or why the reply cannot be read.
pub(crate) fn table(reply: &serde_json::Value) -> Result<String, String> {
    let reply = Reply::deserialize(reply).map_err(|e| e.to_string())?;
    let header = [
        "ENDPOINT",
        "CALLS",
        "ERRORS",
        "TIMEOUTS",
        "CANCELLED",
        "P50",
        "P99",
    ];
    let rows: Vec<[String; 7]> = reply
        .endpoints
        .iter()
        .map(|r| {
            let (p50, p99) = if r.calls == 0 {
                ("-".to_owned(), "-".to_owned())
            } else {
                (micros(r.latency_us.p50), micros(r.latency_us.p99))
            };
            [
                escape_line(&r.name).into_owned(),
                r.calls.to_string(),
                r.errors.values().sum::<u64>().to_string(),
                r.timeouts.to_string(),
                r.cancelled.to_string(),
                p50,
                p99,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            // Names to the left, figures to the right.
            if i == 0 {
                text.push_str(&format!("{cell}{pad}  "));
            } else {
                text.push_str(&format!("{pad}{cell}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out.push_str(&format!(
        "\nup {}, {} connection{} open ({} since the start), {} call{} of missing or refused endpoints\n",
        uptime(reply.uptime_s),
        reply.connections.open,
        if reply.connections.open == 1 { "" } else { "s" },
        reply.connections.total,
        reply.refused,
        if reply.refused == 1 { "" } else { "s" },
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_table() {
        let reply = serde_json::json!({
            "uptime_s": 3725,
            "connections": {"open": 1, "total": 12},
            "endpoints": [
                {"name": "connect", "calls": 1200, "ok": 1190, "streams": 0,
                 "errors": {"VpnError": 7, "TimeoutError": 2, "Cancelled": 1},
                 "timeouts": 2, "cancelled": 1,
                 "latency_us": {"p50": 16, "p99": 2048, "max": 1500000, "sum": 9,
                                "buckets": [[8, 1000], [1024, 200]]}},
                {"name": "idle\u{1b}[2J", "calls": 0, "ok": 0, "streams": 0, "errors": {},
                 "timeouts": 0, "cancelled": 0,
                 "latency_us": {"p50": 0, "p99": 0, "max": 0, "sum": 0, "buckets": []}},
            ],
            "refused": 3,
        });
        let expected = "\
ENDPOINT     CALLS  ERRORS  TIMEOUTS  CANCELLED     P50     P99
connect       1200      10         2          1  16.0µs  2.05ms
idle\\x1b[2J      0       0         0          0       -       -

up 1h 2m, 1 connection open (12 since the start), 3 calls of missing or refused endpoints
";
        assert_eq!(table(&reply).unwrap(), expected);
    }

    #[test]
    fn another_shape_is_said_not_guessed() {
        let err = table(&serde_json::json!({"endpoints": 3})).unwrap_err();
        assert!(
            err.contains("missing field") || err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn uptimes_read_well() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(303), "5m 3s");
        assert_eq!(uptime(7500), "2h 5m");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
    }
}
