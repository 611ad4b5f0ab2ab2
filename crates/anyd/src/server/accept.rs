//! A bound daemon serving: the runtime for signals and async handlers, the
//! accept loop (admission, the spare descriptor for when descriptors run
//! out), a thread per connection, and draining on shutdown. What one
//! connection does is `session.rs`'s.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::admission::Held;
use crate::daemon::{self, PidFile};
use crate::error::panic_message;
use crate::error::{Error, Result};
use crate::systemd;
use crate::throttle::throttled;
use crate::transport::{Listener, Peer, Stream};

use super::appd::Reload;
use super::idle::{self, Waiting};
use super::session::serve_connection;
use super::Shared;

/// A bound daemon, ready to serve.
#[must_use = "a Server does nothing until served"]
pub struct Server {
    pub(super) listener: Listener,
    pub(super) address: Address,
    pub(super) shared: Arc<Shared>,
    pub(super) wake_rx: OwnedFd,
    pub(super) on_reload: Option<Reload>,
    /// Held (locked) until the server is gone.
    pub(super) pid_file: Option<PidFile>,
}

/// Stops a serving daemon from anywhere (another thread, a handler), and
/// says how many connections it serves.
///
/// Why the count lives on a handle named for shutdown: this is the one
/// handle on a serving daemon that a program can clone and hand out, to
/// a handler or a thread, while [`Server::serve`] holds the server itself
/// (a health endpoint or a status line wants the count there). A daemon
/// served in the background answers the same question through
/// [`Running::connections`].
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("stopping", &self.shared.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

impl ShutdownHandle {
    /// Starts a graceful shutdown: stop accepting, let calls in progress
    /// finish (up to the deadline), remove the socket file, and return from
    /// [`Server::serve`]. Returns at once.
    pub fn shutdown(&self) {
        if !self.shared.stopping.swap(true, Ordering::SeqCst) {
            // A full pipe already holds a wake-up; nothing else can fail.
            let _ = rustix::io::write(&self.shared.wake_tx, &[1]);
        }
    }

    /// How many connections the daemon holds right now: from the moment
    /// one is admitted (before its handshake) until its thread has let it
    /// go. Refused connections never count: those over
    /// [`Appd::max_connections`](super::Appd::max_connections), over their user's share
    /// ([`Appd::max_connections_per_uid`](super::Appd::max_connections_per_uid)), or left only the reserve
    /// ([`Appd::reserved_connections`](super::Appd::reserved_connections)), nor those closed at once for want
    /// of a descriptor. A handshake cut by [`Appd::max_handshakes`](super::Appd::max_handshakes) counts
    /// until its thread has let it go, as any other. For health endpoints and status lines, and for checking that
    /// clients that vanished cost nothing once gone.
    pub fn connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// A daemon serving on a background thread (see [`Server::spawn`]).
#[derive(Debug)]
pub struct Running {
    address: Address,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Running {
    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// A handle that stops the daemon.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// How many connections the daemon holds right now (see
    /// [`ShutdownHandle::connections`]).
    pub fn connections(&self) -> usize {
        self.handle.connections()
    }

    /// Shuts down gracefully and waits until the daemon has stopped.
    ///
    /// # Errors
    ///
    /// What [`Server::serve`] returned.
    pub fn shutdown(mut self) -> Result<()> {
        self.handle.shutdown();
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(panic)) => Err(Error::ServerPanicked {
                message: panic_message(&*panic),
            }),
            None => Ok(()),
        }
    }
}

/// What a panic said, when it said it with a string (as `panic!` does).
impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        let _ = self.join();
    }
}

impl Server {
    /// The address clients connect to (with the port the system chose for
    /// `tcp:...:0`).
    pub fn local_address(&self) -> &Address {
        &self.address
    }

    /// A handle that stops [`serve`](Self::serve).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves on a background thread, with signal handling off (the
    /// program owns its signals); for tests, tools and embedding.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be started.
    pub fn spawn(self) -> Result<Running> {
        let address = self.address.clone();
        let handle = self.shutdown_handle();
        let thread = std::thread::Builder::new()
            .name("anyd-server".into())
            .spawn(move || self.serve_with(false))?;
        Ok(Running {
            address,
            handle,
            thread: Some(thread),
        })
    }

    /// Serves until shut down by SIGTERM, SIGINT (unless
    /// [`Appd::handle_signals`](super::Appd::handle_signals) turned that off) or a [`ShutdownHandle`];
    /// then stops accepting, lets calls in progress finish up to the
    /// deadline, and removes the socket file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the runtime for async handlers and signals cannot
    /// start, or the listener fails for good.
    pub fn serve(self) -> Result<()> {
        let signals = self.shared.config.handle_signals;
        self.serve_with(signals)
    }

    fn serve_with(self, signals: bool) -> Result<()> {
        // One worker: async handlers are driven from their connection
        // threads by `block_on`; the worker runs timers, I/O and signals.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("anyd-runtime")
            .enable_all()
            .build()?;
        if signals {
            use tokio::signal::unix::{signal, SignalKind};
            let handle = self.shutdown_handle();
            let _guard = runtime.enter();
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            let mut hup = signal(SignalKind::hangup())?;
            let on_reload = self.on_reload.clone();
            runtime.spawn(async move {
                loop {
                    let which = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                        _ = hup.recv() => {
                            tracing::info!("SIGHUP: reloading");
                            if let Some(hook) = &on_reload {
                                let hook = hook.clone();
                                let _ = tokio::task::spawn_blocking(move || hook()).await;
                            }
                            continue;
                        }
                    };
                    tracing::info!("{which}: shutting down");
                    handle.shutdown();
                    break;
                }
            });
        }
        let keeper = match self.shared.config.idle_timeout {
            Some(idle) => Some(idle::Keeper::start(self.shared.clone(), idle)?),
            None => None,
        };
        if let Some(every) = systemd::watchdog_interval() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    systemd::ping_watchdog();
                }
            });
        }
        tracing::info!(address = %self.address, endpoints = self.shared.registry.infos().len(), "listening");
        systemd::notify_ready(&format!("serving on {}", self.address));
        daemon::daemonize_ready();
        let result = self.accept_loop(runtime.handle());
        systemd::notify_stopping();
        let Server {
            listener,
            address,
            shared,
            pid_file,
            ..
        } = self;
        // Closing the listener refuses new connections and removes the
        // socket file.
        drop(listener);
        drain(&shared);
        if let Some(keeper) = keeper {
            keeper.stop();
        }
        drop(pid_file);
        runtime.shutdown_background();
        tracing::info!(%address, "stopped");
        result
    }

    fn accept_loop(&self, runtime: &tokio::runtime::Handle) -> Result<()> {
        use rustix::event::{poll, PollFd, PollFlags};
        self.listener.set_nonblocking(true)?;
        // A descriptor held in reserve: out of descriptors, closing it
        // lets `accept` take a pending connection, to close it at once
        // rather than leave its client waiting in the backlog (the trick
        // of libev and nginx). Another thread may take the number it frees
        // first; then it is taken again as soon as a descriptor is free,
        // so that one lost race does not lose it for good.
        let mut spare = spare_descriptor(&self.wake_rx);
        loop {
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&self.wake_rx, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            if spare.is_none() {
                spare = spare_descriptor(&self.wake_rx);
            }
            // Lost races for the spare in this pass: past a few, wait.
            let mut lost = 0;
            loop {
                match self.listener.accept() {
                    Ok(stream) => {
                        // A connection is kept only with the spare held
                        // beside it. Without the spare (another thread took
                        // its number for a moment, and gave it back just
                        // before this `accept`), the number this connection
                        // took goes back to the spare if no other is free:
                        // kept, it would leave the loop unable to close the
                        // next connections until one ends.
                        if spare.is_none() {
                            spare = spare_descriptor(&self.wake_rx);
                        }
                        if spare.is_none() {
                            drop(stream);
                            spare = spare_descriptor(&self.wake_rx);
                            throttled!(
                                self.shared.logs.out_of_descriptors,
                                error,
                                "out of file descriptors: connection closed at once"
                            );
                            continue;
                        }
                        self.start_connection(stream, runtime);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if out_of_descriptors(&e) && lost < SPARE_RACES && spare.is_some() => {
                        drop(spare.take());
                        let refused = self.listener.accept().map(drop);
                        // Reopened once the connection is closed, with the
                        // number it freed (unless another thread took it:
                        // then the next try takes it again).
                        spare = spare_descriptor(&self.wake_rx);
                        match refused {
                            Ok(()) => {
                                throttled!(
                                    self.shared.logs.out_of_descriptors,
                                    error,
                                    error = %e,
                                    "out of file descriptors: connection closed at once"
                                );
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => lost += 1,
                        }
                    }
                    Err(e) if out_of_descriptors(&e) && lost < SPARE_RACES && spare.is_none() => {
                        // The spare was lost to another thread: take it
                        // again as soon as a descriptor is free (another
                        // thread may hold one only for a moment), and
                        // retry; after a few tries, wait as for any other
                        // failure.
                        lost += 1;
                        spare = spare_descriptor(&self.wake_rx);
                        if spare.is_none() {
                            std::thread::yield_now();
                        }
                    }
                    Err(e) => {
                        self.accept_failed(&e);
                        break;
                    }
                }
            }
        }
    }

    /// `accept` failed and no spare descriptor helps (out of descriptors
    /// with none to spare, out of memory): nothing to do but wait for
    /// connections to end; poll would report the pending connection again
    /// at once.
    fn accept_failed(&self, e: &io::Error) {
        throttled!(self.shared.logs.accept_failed, error, error = %e, "accept failed");
        std::thread::sleep(Duration::from_millis(50));
    }

    fn start_connection(&self, stream: Stream, runtime: &tokio::runtime::Handle) {
        let shared = &self.shared;
        let peer = Peer::of(&stream);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let caller = shared.caller(&peer);
        let (stream, socket) = stream.share();
        let (admitted, waiting) = {
            let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            let admitted = conns.admit(id, caller, shared.config.authkey.is_some(), socket);
            (admitted, conns.waiting(id))
        };
        match admitted {
            Ok(a) if a.cut => throttled!(
                shared.logs.cut,
                info,
                peer = peer.address(),
                uid = peer.uid(),
                limit = shared.config.max_handshakes,
                "too many handshakes in progress: the oldest was cut"
            ),
            Ok(_) => {}
            Err(why) => {
                throttled!(
                    shared.logs.refused,
                    warn,
                    peer = peer.address(),
                    uid = peer.uid(),
                    "connection refused: {}",
                    why.as_str()
                );
                return;
            }
        }
        let thread_shared = shared.clone();
        let runtime = runtime.clone();
        let spawned = std::thread::Builder::new()
            .name("anyd-conn".into())
            .spawn(move || {
                let shared = thread_shared;
                // Gives the place back however this thread ends.
                let _held = Held::new(&shared.conns, &shared.conns_changed, id);
                // Counted for `anyd.stats` while its thread serves it.
                let _counted = shared.registry.observe.connections.start();
                tracing::debug!(peer = peer.address(), "session start");
                let waiting = waiting.unwrap_or_else(Waiting::new);
                let why = serve_connection(&shared, id, stream, &peer, &runtime, &waiting);
                tracing::debug!(peer = peer.address(), end = why.as_str(), "session end");
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a connection thread");
            let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.remove(id);
        }
    }
}

/// How many times in a row the accept loop may lose its spare descriptor
/// to another thread before it waits like any other failure.
const SPARE_RACES: u32 = 8;

/// Whether `accept` failed for want of descriptors, of the process or of
/// the system.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A descriptor to hold in reserve for the accept loop (a copy of `fd`),
/// or `None` if even that one cannot be had.
fn spare_descriptor(fd: &OwnedFd) -> Option<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).ok()
}

/// Ends every connection gracefully: no more requests are read (calls in
/// progress finish and get their replies), then waits for the connection
/// threads up to the deadline, and cuts what is left.
fn drain(shared: &Shared) {
    let deadline = Instant::now() + shared.config.shutdown_deadline;
    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    conns.shutdown_all(Shutdown::Read);
    while !conns.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                connections = conns.len(),
                "shutdown deadline passed; closing the connections still busy"
            );
            conns.shutdown_all(Shutdown::Both);
            return;
        }
        conns = shared
            .conns_changed
            .wait_timeout(conns, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    // Not waited for: nothing may wake them (see `items::threaded`).
    if conns.lingering() > 0 {
        tracing::info!(
            iterators = conns.lingering(),
            "stream iterators still in their `next` are left to end on their own"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_panicked_server_thread_is_its_own_error_with_the_message() {
        let thread = std::thread::spawn(|| -> Result<()> { panic!("boom {}", 42) });
        let panic = thread.join().unwrap_err();
        let e = Error::ServerPanicked {
            message: panic_message(&*panic),
        };
        assert_eq!(e.to_string(), "the server thread panicked: boom 42");
        assert!(e.source().is_none());
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&7u8), "(no message)");
    }
}
