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
//! (binding), `accept.rs` (serving: the accept loop, a thread per
//! connection, shutdown), `session.rs` (one connection). What they share
//! while serving is [`Shared`].

mod accept;
mod appd;
mod bind;
mod session;
mod stream;

pub use accept::{Running, Server, ShutdownHandle};
pub use appd::Appd;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use crate::admission::Connections;
use crate::budget::Budget;
use crate::registry::Registry;
use crate::throttle::Throttle;

use appd::Config;

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
    /// The daemon's own user (after `run_as`): with root, may use the
    /// reserved connections.
    serving_uid: u32,
    /// Keeps the lines a flood can cause to a few a second.
    logs: Logs,
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
