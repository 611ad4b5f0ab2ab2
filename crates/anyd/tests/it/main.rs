//! anyd's integration tests, one binary, a module per area: what a client
//! sees of a daemon and its sockets (`server`), the clients themselves
//! (`client`), serving many clients (`serving`), hostile input
//! (`hostile`), streaming endpoints (`streams`), descriptors passed with
//! calls (`fds`), callers with other credentials (`policy`), what a
//! request costs (`cost`), what `Debug` shows of the clients
//! (`debug_output`), deadlines and cancelling a call as the daemon sees them
//! (`deadlines`) and as the clients send them, with the context a call
//! made inside a handler inherits (`call_context`), who gets a connection under a flood (`admission`),
//! faults from outside (`faults`), the daemon as a process (`lifecycle`),
//! dropping root and keeping capabilities (`privileges`), streams whose
//! iterator blocks after their client left (`lingering`), load measured
//! from outside (`load`), the `#[anyd::api]` macro end to end
//! (`macro_api`), interfaces and their contract documents (`interface`),
//! what a closure's `Result` becomes for its caller (`replies`), Python
//! anyd on the other end (`python_interop`), what calls leave behind:
//! counts, hooks, trace context (`stats`), and the example pair
//! (`vpnm_example`). What they share is in the `anyd-testkit` crate.
//!
//! Three test binaries stay apart, each saying why at its top: `logging`
//! (it owns the process's log subscriber), `macro_hygiene`
//! (`#![no_implicit_prelude]` over a whole crate) and `ui` (the compiler
//! run on every macro case, minutes long).
//!
//! Tests named `*_as_root` need root (`-E 'not test(/_as_root$/)'` leaves
//! them out). Tests that need a process of their own run this binary again
//! (see `anyd_testkit::rerun`): the ignored `child_daemon` below and
//! `lifecycle::child_daemon`, `faults::child_client` are those children,
//! not tests.

mod admission;
mod call_context;
mod client;
mod cost;
mod deadlines;
mod debug_output;
mod faults;
mod fds;
mod hostile;
mod interface;
mod lifecycle;
mod lingering;
mod load;
mod macro_api;
mod policy;
mod privileges;
mod python_interop;
mod replies;
mod server;
mod serving;
mod stats;
mod streams;
mod vpnm_example;

/// The daemon of the tests that measure one in a process of its own (see
/// `anyd_testkit::process::Daemon`).
#[test]
#[ignore = "not a test: the daemon process of other tests, started by them"]
fn child_daemon() {
    anyd_testkit::process::serve_as_child();
}
