//! What a call leaves behind: its span's trace context, outcome and
//! duration, its counts in `stats`, and the program's hooks
//! ([`Appd::on_call_span`](crate::Appd::on_call_span),
//! [`Appd::on_call`](crate::Appd::on_call)); and who may read the counts
//! (`anyd.stats`, [`Appd::stats_allow`](crate::Appd::stats_allow)).
//!
//! It owns the order of those things at the end of a call and what they
//! cost: one clock read when a call starts and one when it ends, and the
//! rest only when a subscriber or a hook wants it. The call span itself is
//! the connection's (`server::connection`), the counters `stats`'s.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyd_wire::message::{RequestHead, RequestOptions};
use tracing::field::Empty;
use tracing::Span;

use crate::policy::{Allow, Resolved};
use crate::stats::{ConnectionCount, EndpointStats, Outcome, StatsReply};
use crate::sys::monotonic_ns;
use crate::trace_context::{self, TraceContext};
use crate::transport::Peer;

/// What [`Appd::on_call_span`](crate::Appd::on_call_span) runs.
pub(crate) type SpanHook = Box<dyn Fn(&Span, &TraceContext) + Send + Sync>;
/// What [`Appd::on_call`](crate::Appd::on_call) runs.
pub(crate) type CallHook = Box<dyn Fn(&CallRecord<'_>) + Send + Sync>;

/// One call, as [`Appd::on_call`](crate::Appd::on_call) sees it once it
/// is answered: for a program that exports its own metrics (to
/// Prometheus, say).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let slow = Arc::new(AtomicU64::new(0));
/// let counted = slow.clone();
/// let appd = anyd::Appd::new()
///     .api("echo(arg)", |arg: String| arg)
///     .on_call(move |call| {
///         // `endpoint()` is never a name a caller made up: it is None
///         // for missing and refused endpoints, so labels stay few.
///         let endpoint = call.endpoint().unwrap_or("(refused)");
///         if call.duration().as_millis() > 100 {
///             counted.fetch_add(1, Ordering::Relaxed);
///             eprintln!("slow call of {endpoint}: {}", call.outcome());
///         }
///     });
/// # drop(appd);
/// ```
#[derive(Debug)]
pub struct CallRecord<'a> {
    endpoint: Option<&'a str>,
    outcome: &'a str,
    duration: Duration,
    peer: &'a Peer,
}

impl CallRecord<'_> {
    /// The endpoint called: one the daemon has (`anyd.ping` and the other
    /// reserved ones included), or `None` for a call of one it does not
    /// have or that the policy refused the caller.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint
    }

    /// How it ended: `"ok"`, `"stream"` (a stream started; its items
    /// follow), or the kind of the error reply (`"TypeError"`,
    /// `"TimeoutError"`, `"Cancelled"`, an endpoint's own kind, ...).
    pub fn outcome(&self) -> &str {
        self.outcome
    }

    /// Whether a value or a stream came back (no error reply).
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, "ok" | "stream")
    }

    /// From the daemon reading the request to its reply made (for a
    /// stream, to the stream started).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The caller.
    pub fn peer(&self) -> &Peer {
        self.peer
    }
}

/// A call's start, for its duration: the monotonic clock in nanoseconds
/// (`sys::monotonic_ns`, cheaper to subtract than an `Instant`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(u64);

impl Started {
    #[inline]
    pub(crate) fn now() -> Self {
        Started(monotonic_ns())
    }

    /// Microseconds since.
    #[inline]
    fn micros(self) -> u64 {
        // The clock is monotonic: never less than at the start.
        monotonic_ns().wrapping_sub(self.0) / 1000
    }
}

/// The span of one call: `endpoint`, `n` (the request's number on its
/// connection) and `codec` now; `trace_id`, `outcome` and `duration_us`
/// recorded as they become known.
#[inline]
pub(crate) fn call_span(head: &RequestHead<'_>, n: u64) -> Span {
    // `?`: the codec's name is made only if a subscriber takes the span.
    tracing::info_span!(
        "call",
        endpoint = %head.endpoint,
        n,
        codec = ?head.codec,
        trace_id = Empty,
        outcome = Empty,
        duration_us = Empty,
    )
}

/// Runs the call hook: out of the way of the calls of daemons without one.
#[cold]
#[inline(never)]
fn call_hook(
    hook: &CallHook,
    stats: &EndpointStats,
    outcome: Outcome<'_>,
    micros: u64,
    peer: &Peer,
) {
    hook(&CallRecord {
        endpoint: stats.name(),
        outcome: outcome.as_str(),
        duration: Duration::from_micros(micros),
        peer,
    });
}

/// The reserved endpoints with rows of their own in `anyd.stats`.
pub(crate) const RESERVED: [&str; 5] = [
    "anyd.ping",
    "anyd.version",
    "anyd.endpoints",
    "anyd.describe",
    "anyd.stats",
];

/// A daemon's observability: hooks, the rule for `anyd.stats`, and the
/// counts that belong to no registered endpoint.
pub(crate) struct Observe {
    on_span: Option<SpanHook>,
    on_call: Option<CallHook>,
    /// Who may call `anyd.stats`, beyond the daemon-wide rule.
    stats_allow: Allow,
    stats_resolved: Option<Resolved>,
    /// The rows of the reserved endpoints, in [`RESERVED`]'s order.
    reserved: [EndpointStats; RESERVED.len()],
    /// The row of missing endpoints and refused calls.
    pub(crate) refused: EndpointStats,
    /// The connections being served.
    pub(crate) connections: ConnectionCount,
    /// When the daemon was bound, for its uptime.
    started: OnceLock<Instant>,
}

impl Default for Observe {
    fn default() -> Self {
        Observe {
            on_span: None,
            on_call: None,
            stats_allow: Allow::root().or(Allow::same_user()),
            stats_resolved: None,
            reserved: RESERVED.map(|name| EndpointStats::new(Some(name))),
            refused: EndpointStats::new(None),
            connections: ConnectionCount::default(),
            started: OnceLock::new(),
        }
    }
}

impl Observe {
    pub(crate) fn on_span(&mut self, hook: SpanHook) {
        self.on_span = Some(hook);
    }

    pub(crate) fn on_call(&mut self, hook: CallHook) {
        self.on_call = Some(hook);
    }

    pub(crate) fn allow_stats(&mut self, rule: Allow) {
        self.stats_allow = std::mem::replace(&mut self.stats_allow, Allow::root()).or(rule);
    }

    /// Resolves the rule of `anyd.stats` (`own_uid` is the daemon's
    /// user), and starts the uptime: the daemon is being bound.
    pub(crate) fn resolve(&mut self, own_uid: u32) -> crate::Result<()> {
        self.stats_resolved = Some(self.stats_allow.resolve(own_uid)?);
        let _ = self.started.set(Instant::now());
        Ok(())
    }

    /// Whether `peer` may read the counts; the rule that refuses it if
    /// not.
    pub(crate) fn admits_stats(&self, peer: &Peer) -> Result<(), &Resolved> {
        match &self.stats_resolved {
            Some(rule) if !rule.admits(peer) => Err(rule),
            _ => Ok(()),
        }
    }

    /// The row of reserved endpoint `name`, or of refused calls for a
    /// name under `anyd.` that does not exist.
    pub(crate) fn reserved_row(&self, name: &str) -> &EndpointStats {
        RESERVED
            .iter()
            .position(|r| *r == name)
            .map_or(&self.refused, |i| &self.reserved[i])
    }

    /// A call's request options are read: a well-formed trace context
    /// goes on the call span (`trace_id`) and to the span hook; an
    /// ill-formed one is ignored (said at debug level), never failing the
    /// call.
    #[inline]
    pub(crate) fn options(&self, options: &RequestOptions) {
        if let Some(traceparent) = &options.traceparent {
            self.trace(traceparent, options.tracestate.as_deref());
        }
    }

    #[cold]
    fn trace(&self, traceparent: &str, tracestate: Option<&str>) {
        let ctx = match trace_context::parse(traceparent) {
            Ok(ctx) => ctx.with_tracestate(tracestate.map(str::to_owned)),
            Err(why) => {
                // The value is the caller's: what is wrong with it, not it.
                tracing::debug!(why, "traceparent ignored");
                return;
            }
        };
        let span = Span::current();
        span.record("trace_id", tracing::field::display(ctx.trace_id_hex()));
        if let Some(hook) = &self.on_span {
            hook(&span, &ctx);
        }
    }

    /// A call is answered: counts it in `stats`' row, records the span's
    /// `outcome` and `duration_us`, says so at debug level, and runs the
    /// call hook.
    #[inline]
    pub(crate) fn finish(
        &self,
        span: &Span,
        stats: &EndpointStats,
        outcome: Outcome<'_>,
        started: Started,
        peer: &Peer,
    ) {
        let micros = started.micros();
        stats.record(outcome, micros);
        if !span.is_disabled() {
            span.record("outcome", outcome.as_str());
            span.record("duration_us", micros);
        }
        tracing::debug!(micros, outcome = outcome.as_str(), "call");
        if let Some(hook) = &self.on_call {
            call_hook(hook, stats, outcome, micros, peer);
        }
    }

    /// The reply of `anyd.stats`, with the rows of the application's
    /// endpoints (`rows`, in registration order).
    pub(crate) fn reply<'r>(&'r self, rows: impl Iterator<Item = &'r EndpointStats>) -> StatsReply {
        StatsReply {
            uptime_s: self.started.get().map_or(0, |t| t.elapsed().as_secs()),
            connections: self.connections.snapshot(),
            endpoints: rows
                .chain(self.reserved.iter().filter(|r| r.called()))
                .map(EndpointStats::snapshot)
                .collect(),
            refused: self.refused.snapshot().calls(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_measured_on_the_monotonic_clock() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(a > 0);
    }

    #[test]
    fn reserved_names_have_rows_and_others_are_refused() {
        let o = Observe::default();
        assert_eq!(o.reserved_row("anyd.ping").name(), Some("anyd.ping"));
        assert_eq!(o.reserved_row("anyd.stats").name(), Some("anyd.stats"));
        assert_eq!(o.reserved_row("anyd.nothing").name(), None);
    }
}
