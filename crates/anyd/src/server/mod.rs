//! `Appd`: the daemon. A registry of endpoints, a listener, and one thread
//! per connection.
//!
//! Why threads and not tasks: a call is a blocking read, a handler, a
//! blocking write; on a dedicated thread that is exactly the floor's path
//! (no reactor, no wake-up, no hand-off), and a handler that blocks holds up
//! nobody else by construction. tokio is there for what needs it: async
//! handlers (run on a small runtime from the connection thread) and signals.
//!
//! What a connection holds is bounded in time and in memory: each frame
//! and each write of replies has a deadline as a whole (the idle timeout),
//! and the buffers of all connections together draw on one memory budget
//! beyond a small allowance each (see `budget`); a connection that would go
//! over is closed.
//!
//! The rooms: `appd.rs` (the builder and its settings), `bind.rs`
//! (binding, and sharing out the open files), `accept.rs` (serving: the
//! accept loop, a thread per connection, shutdown), `connection.rs` (one
//! connection's protocol with no I/O: frames in, what to write and why
//! the session ends out), `session.rs` (a connection's thread: the
//! handshake, reads and writes for the core), `stream.rs` (that thread's
//! wait while a stream is sent), `io.rs` (the writes both do, and what a
//! failed read or write means), `observe.rs` (the settings of traces,
//! counts and their hooks). What they share while serving is
//! [`Shared`]. Imports go one way: `session` uses `stream`, `io` and
//! `connection`; `stream` uses `io` and `connection`; `io` uses
//! `connection`.

mod accept;
mod appd;
mod bind;
mod config;
mod connection;
mod deadlines;
pub(crate) mod idle;
mod io;
mod observe;
mod session;
mod stream;

pub use accept::{Running, Server, ShutdownHandle};
pub use appd::Appd;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use crate::admission::{Caller, Connections};
use crate::budget::Budget;
use crate::fd_budget::FdBudget;
use crate::registry::Registry;
use crate::throttle::Throttle;

use config::Config;

/// What the listener and the connection threads share.
struct Shared {
    /// The endpoints and their policy, which every connection dispatches
    /// to.
    registry: Registry,
    /// The daemon's settings, fixed once bound.
    config: Config,
    /// Set by shutdown: the accept loop stops, and drain begins.
    stopping: AtomicBool,
    /// The write end of the pipe the accept loop polls beside the
    /// listener: one byte wakes it to see `stopping`.
    wake_tx: OwnedFd,
    /// The live connections: who may have one more, and how shutdown
    /// reaches them. Shared with the iterators that connections leave
    /// running, which hold places until they end.
    conns: Arc<Mutex<Connections>>,
    /// Signalled when a connection goes, for drain to wait on.
    conns_changed: Condvar,
    /// The id the next connection gets in `conns`.
    next_id: AtomicU64,
    /// Bytes connections hold for frames in progress and replies not yet
    /// written, beyond their allowances ([`Appd::memory_budget`]).
    budget: Arc<Budget>,
    /// Descriptors connections hold for frames in progress (`None`: the
    /// daemon takes none from callers).
    fd_budget: Option<Arc<FdBudget>>,
    /// The daemon's own user (after `run_as`): with root, may use the
    /// reserved connections.
    serving_uid: u32,
    /// Keeps the lines a flood can cause to a few a second.
    logs: Logs,
}

impl Shared {
    /// Who a connection from `peer` comes from, for the caps and budgets:
    /// root and the daemon's own user are privileged.
    fn caller(&self, peer: &crate::transport::Peer) -> Caller {
        Caller {
            uid: peer.uid(),
            privileged: peer
                .uid()
                .is_some_and(|uid| uid == 0 || uid == self.serving_uid),
        }
    }
}

/// One throttle per kind of line that callers can cause (see `throttle`):
/// a flood of one kind must not hold back another.
struct Logs {
    /// Connections refused by the caps.
    refused: Throttle,
    /// Handshakes cut by the handshake cap.
    cut: Throttle,
    /// Connections closed at once for want of descriptors.
    out_of_descriptors: Throttle,
    /// `accept` failing with no remedy.
    accept_failed: Throttle,
    /// Handshakes that failed (a wrong key, a client gone, the deadline).
    handshake_failed: Throttle,
    /// Connections closed for a frame or replies over the memory budget.
    over_budget: Throttle,
    /// Connections closed for what they sent: bad frames, unreadable
    /// messages.
    bad_input: Throttle,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            refused: Throttle::per_second(1),
            cut: Throttle::per_second(1),
            out_of_descriptors: Throttle::per_second(1),
            accept_failed: Throttle::per_second(1),
            handshake_failed: Throttle::per_second(5),
            over_budget: Throttle::per_second(5),
            bad_input: Throttle::per_second(5),
        }
    }
}
