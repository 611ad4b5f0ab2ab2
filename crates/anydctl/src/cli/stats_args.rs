//! `anydctl stats`: its arguments and help, beside `cli.rs` (which has no
//! room left for them).

use anyd::Address;
use clap::Args;

use super::parse_address;

/// `anydctl stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The daemon's address.
    #[arg(value_name = "ADDR", value_parser = parse_address)]
    pub(crate) address: Address,

    /// Print the daemon's reply as it is (JSON), for scripts and
    /// monitoring: {uptime_s, connections: {open, total}, endpoints:
    /// [{name, calls, ok, streams, errors: {KIND: n}, timeouts, cancelled,
    /// latency_us: {p50, p99, max, sum, buckets: [[FROM, n]]}}], refused}.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The long help of `anydctl stats`.
pub(crate) const STATS_ABOUT: &str = "Show a daemon's counts since it started, from its \
    reserved endpoint anyd.stats: per endpoint, the calls, the error replies (TIMEOUTS \
    and CANCELLED are the errors of kinds TimeoutError and Cancelled), and the median \
    and 99th percentile latencies (P50, P99: the upper bound of a power-of-two bucket, \
    so at most twice the true figure). Below the table: the uptime, the connections, and \
    the calls of endpoints that do not exist or that the policy refused.\n\n\
    Only root and the daemon's own user may read them, unless the daemon admits more \
    (Appd::stats_allow); others, and daemons that predate anyd.stats or are Python \
    anyd's, answer with NotImplementedError (exit status 5).";

/// The examples of `anydctl stats`.
pub(crate) const STATS_EXAMPLES: &str = "Examples:
  sudo anydctl stats /run/vpnmd.sock
  anydctl stats --json unix:@app | jq '.endpoints[] | select(.errors != {})'";
