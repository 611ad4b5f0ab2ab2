//! The settings of what calls leave behind: the hooks that see each
//! call's span and record, and who may read the counts (`anyd.stats`).
//! What they do is the crate's `observe` module's.

use crate::observe::CallRecord;
use crate::policy::Allow;
use crate::TraceContext;

use super::Appd;

impl Appd {
    /// Runs `hook` as a call that came with the caller's trace context
    /// starts (a well-formed W3C `traceparent` request option,
    /// docs/PROTOCOL.md section 8), with the call's span and the context,
    /// before the handler runs: where a program that exports traces makes
    /// the caller's span the parent of the call's, so that one trace goes
    /// across processes. With `tracing-opentelemetry`, that is
    /// `span.set_parent(context)` with the context the program's
    /// propagator extracts from [`TraceContext`]'s `traceparent` (its
    /// `Display`) and [`tracestate`](TraceContext::tracestate); anyd
    /// depends on no OpenTelemetry crate itself.
    ///
    /// Without a well-formed context (none sent, or one that is not W3C
    /// Trace Context), the hook does not run and the call goes on as any
    /// other. The span's `trace_id` field is recorded either way when the
    /// context is well formed. The hook runs on the connection's thread,
    /// in the call's time: keep it short.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// let appd = anyd::Appd::new()
    ///     .api("echo(arg)", |arg: String| arg)
    ///     .on_call_span(|span, trace| {
    ///         // What an OpenTelemetry propagator extracts from.
    ///         let mut carrier = HashMap::from([("traceparent", trace.to_string())]);
    ///         if let Some(state) = trace.tracestate() {
    ///             carrier.insert("tracestate", state.to_owned());
    ///         }
    ///         // With tracing-opentelemetry:
    ///         //   let cx = TraceContextPropagator::new().extract(&carrier);
    ///         //   span.set_parent(cx);
    ///         let _ = (span, carrier);
    ///     });
    /// # drop(appd);
    /// ```
    pub fn on_call_span(
        mut self,
        hook: impl Fn(&tracing::Span, &TraceContext) + Send + Sync + 'static,
    ) -> Self {
        self.registry.observe.on_span(Box::new(hook));
        self
    }

    /// Runs `hook` after every call is answered, with its endpoint,
    /// outcome, duration and caller ([`CallRecord`]): for exporting
    /// metrics to a system of the program's choosing (a Prometheus
    /// registry, StatsD); anyd keeps its own counts for `anyd.stats`
    /// either way. The hook runs on the connection's thread before the
    /// reply is written, so it adds to every call's latency: count, and
    /// leave the rest to the exporter.
    ///
    /// A later call replaces the hook.
    pub fn on_call(mut self, hook: impl Fn(&CallRecord<'_>) + Send + Sync + 'static) -> Self {
        self.registry.observe.on_call(Box::new(hook));
        self
    }

    /// Admits `rule`'s callers to the reserved endpoint `anyd.stats`, the
    /// daemon's counts per endpoint (calls, errors by kind, latencies:
    /// docs/PROTOCOL.md section 5), beyond root and the daemon's own
    /// user, who always may. Others get what a call of a missing endpoint
    /// gets (`NotImplementedError`): the counts say who calls what and
    /// how often, which is not every caller's business. The daemon-wide
    /// rule ([`allow`](Self::allow)) applies as well. Several calls
    /// widen the rule.
    ///
    /// ```no_run
    /// use anyd::{Allow, Appd};
    /// # fn main() -> anyd::Result<()> {
    /// Appd::new()
    ///     .api("status()", || "up")
    ///     .stats_allow(Allow::group("monitoring"))
    ///     .bind("unix:/run/vpnd.sock")?
    ///     .serve()
    /// # }
    /// ```
    pub fn stats_allow(mut self, rule: Allow) -> Self {
        self.registry.observe.allow_stats(rule);
        self
    }
}
