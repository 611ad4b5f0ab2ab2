//! What the daemon counts of its calls, per endpoint: calls answered,
//! errors by kind, and how long they took (a histogram), for the reserved
//! endpoint `anyd.stats` and `anydctl stats`.
//!
//! It owns the counters and their snapshot (the reply's shape); when a
//! call is counted, and the hooks around it, are `observe`'s. A call
//! costs a few relaxed atomic additions on its endpoint's own counters,
//! found with the endpoint (no lookup of its own); an error, more rarely,
//! a short lock for its kind.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

mod histogram;

pub(crate) use histogram::Histogram;
use histogram::LatencySnapshot;

/// How many error kinds an endpoint keeps apart; the rest are counted
/// together as [`OTHER_KINDS`]. A handler may make kinds of what it is
/// given, and a caller must not grow the daemon's memory by calling.
const MAX_KINDS: usize = 32;

/// Where the kinds past [`MAX_KINDS`] are counted.
const OTHER_KINDS: &str = "(other kinds)";

/// The counters of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    /// What `anyd.stats` and the call hook call it: the endpoint's name,
    /// or for the row of missing and refused endpoints, none (the names
    /// callers make up are never kept).
    name: Option<Box<str>>,
    /// Calls answered with a value or a stream.
    ok: AtomicU64,
    /// Of those, the calls answered with a stream.
    streams: AtomicU64,
    /// Error replies by kind.
    errors: Mutex<Vec<(Box<str>, u64)>>,
    /// How long the calls took, errors included.
    latency: Histogram,
}

impl EndpointStats {
    pub(crate) fn new(name: Option<&str>) -> Self {
        EndpointStats {
            name: name.map(Box::from),
            ok: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            latency: Histogram::default(),
        }
    }

    /// The endpoint's name (`None`: the row of missing and refused ones).
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Counts a call that ended with `outcome` in `micros`.
    #[inline]
    pub(crate) fn record(&self, outcome: Outcome<'_>, micros: u64) {
        match outcome {
            Outcome::Ok => {
                self.ok.fetch_add(1, Relaxed);
            }
            Outcome::Stream => {
                self.ok.fetch_add(1, Relaxed);
                self.streams.fetch_add(1, Relaxed);
            }
            Outcome::Error(kind) => self.error(kind),
        }
        self.latency.record(micros);
    }

    #[cold]
    fn error(&self, kind: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = errors.iter_mut().find(|(k, _)| &**k == kind) {
            *n += 1;
            return;
        }
        let kind = if errors.len() < MAX_KINDS - 1 {
            kind
        } else {
            OTHER_KINDS
        };
        match errors.iter_mut().find(|(k, _)| &**k == kind) {
            Some((_, n)) => *n += 1,
            None => errors.push((kind.into(), 1)),
        }
    }

    /// The counters as `anyd.stats` shows them.
    pub(crate) fn snapshot(&self) -> EndpointSnapshot {
        let errors: Vec<(Box<str>, u64)> = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let count = |kind: &str| {
            errors
                .iter()
                .find(|(k, _)| &**k == kind)
                .map_or(0, |(_, n)| *n)
        };
        let (timeouts, cancelled) = (count(TIMEOUT), count(CANCELLED));
        let failed: u64 = errors.iter().map(|(_, n)| n).sum();
        let ok = self.ok.load(Relaxed);
        EndpointSnapshot {
            name: self.name.as_deref().unwrap_or_default().to_owned(),
            calls: ok + failed,
            ok,
            streams: self.streams.load(Relaxed),
            errors: errors
                .into_iter()
                .map(|(k, n)| (String::from(k), n))
                .collect(),
            timeouts,
            cancelled,
            latency_us: self.latency.snapshot(),
        }
    }

    /// Whether any call was counted.
    pub(crate) fn called(&self) -> bool {
        self.latency.count() > 0
    }
}

/// The kind of the error reply to a call past its deadline.
pub(crate) const TIMEOUT: &str = "TimeoutError";
/// The kind of the error reply to a call its caller cancelled.
pub(crate) const CANCELLED: &str = "Cancelled";

/// How a call ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<'a> {
    /// A value came back.
    Ok,
    /// A stream started.
    Stream,
    /// An error reply of this kind.
    Error(&'a str),
}

impl<'a> Outcome<'a> {
    /// As the call span's `outcome` field and the call hook show it.
    pub(crate) fn as_str(self) -> &'a str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Stream => "stream",
            Outcome::Error(kind) => kind,
        }
    }
}

/// One endpoint in the reply of `anyd.stats` (docs/PROTOCOL.md section 5).
#[derive(Debug, Serialize)]
pub(crate) struct EndpointSnapshot {
    name: String,
    calls: u64,
    ok: u64,
    streams: u64,
    errors: std::collections::BTreeMap<String, u64>,
    timeouts: u64,
    cancelled: u64,
    latency_us: LatencySnapshot,
}

impl EndpointSnapshot {
    /// Every call counted, answered or not.
    pub(crate) fn calls(&self) -> u64 {
        self.calls
    }
}

/// The reply of `anyd.stats`.
#[derive(Debug, Serialize)]
pub(crate) struct StatsReply {
    /// Seconds since the daemon bound its socket.
    pub(crate) uptime_s: u64,
    /// Connections being served, and served since the start.
    pub(crate) connections: Connections,
    /// The application's endpoints in registration order, then the
    /// reserved ones that were called.
    pub(crate) endpoints: Vec<EndpointSnapshot>,
    /// Calls of endpoints that do not exist or that the policy refused
    /// the caller (who got the same reply for both).
    pub(crate) refused: u64,
}

/// The connection counts of [`StatsReply`].
#[derive(Debug, Serialize)]
pub(crate) struct Connections {
    pub(crate) open: u64,
    pub(crate) total: u64,
}

/// Connections counted as their threads start and end.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCount {
    open: AtomicU64,
    total: AtomicU64,
}

impl ConnectionCount {
    /// Counts a connection until the guard drops.
    pub(crate) fn start(&self) -> ConnectionGuard<'_> {
        self.open.fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        ConnectionGuard(self)
    }

    pub(crate) fn snapshot(&self) -> Connections {
        Connections {
            open: self.open.load(Relaxed),
            total: self.total.load(Relaxed),
        }
    }
}

/// One connection counted as open.
#[must_use]
pub(crate) struct ConnectionGuard<'a>(&'a ConnectionCount);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_are_counted_by_kind() {
        let s = EndpointStats::new(Some("echo"));
        assert!(!s.called());
        s.record(Outcome::Ok, 3);
        s.record(Outcome::Stream, 5);
        s.record(Outcome::Error("ValueError"), 1);
        s.record(Outcome::Error(TIMEOUT), 1000);
        s.record(Outcome::Error(TIMEOUT), 1000);
        s.record(Outcome::Error(CANCELLED), 7);
        let snap = s.snapshot();
        assert!(s.called());
        assert_eq!(snap.name, "echo");
        assert_eq!((snap.calls, snap.ok, snap.streams), (6, 2, 1));
        assert_eq!((snap.timeouts, snap.cancelled), (2, 1));
        let errors: Vec<(&str, u64)> = snap.errors.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(
            errors,
            [("Cancelled", 1), ("TimeoutError", 2), ("ValueError", 1)]
        );
        assert_eq!(snap.latency_us.count(), 6);
    }

    #[test]
    fn kinds_past_the_cap_are_counted_together() {
        let s = EndpointStats::new(None);
        for i in 0..100 {
            s.record(Outcome::Error(&format!("Kind{i}")), 1);
        }
        s.record(Outcome::Error("Kind0"), 1);
        let snap = s.snapshot();
        assert_eq!(snap.errors.len(), MAX_KINDS);
        assert_eq!(snap.errors["Kind0"], 2);
        assert_eq!(snap.errors[OTHER_KINDS], 100 - (MAX_KINDS as u64 - 1));
        assert_eq!(snap.calls, 101);
        assert_eq!(snap.name, "");
    }

    #[test]
    fn connections_are_counted_while_held() {
        let c = ConnectionCount::default();
        let a = c.start();
        let b = c.start();
        drop(a);
        let snap = c.snapshot();
        assert_eq!((snap.open, snap.total), (1, 2));
        drop(b);
        assert_eq!(c.snapshot().open, 0);
    }
}
