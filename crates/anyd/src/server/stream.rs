//! Driving one stream on its connection's thread (docs/PROTOCOL.md
//! section 8.1): asking the source for its ready items and writing them in
//! as few writes as possible, a wait that wakes for the next items, for a
//! cancel or for the client going away, and the end frame. What each step
//! means (items, end frames, a cancel, a frame behind the stream and its
//! deadline) is the sans-IO core's (`connection`); this module waits and
//! does the I/O.
//!
//! The connection's thread drives the source itself, as a tiny executor:
//! it polls the source with a waker that signals an eventfd, and waits in
//! `poll(2)` on that eventfd and the socket together. So a source that is
//! waiting for its next item costs no thread of its own, and is dropped at
//! once when the client cancels, disconnects or is killed, or the daemon
//! shuts down (drain shuts the sockets' reading side, which wakes the
//! wait).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use crate::error::RemoteError;
use crate::frame_buffer::ReadError;
use crate::framed::Framed;
use crate::transport::Peer;

use super::connection::{Connection, End, StreamNext, StreamWait, GATHER_FOR};
use super::io::{read_failed, write};
use super::Shared;

/// Sends the stream `core` has started, then its end frame. `Ok` when the
/// session goes on (the stream ended, failed or was cancelled), the
/// session's end otherwise.
pub(super) fn send(
    conn: &mut Framed,
    core: &mut Connection<'_>,
    shared: &Shared,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
) -> Result<(), End> {
    // Async sources use the daemon's runtime (timers, I/O) from here.
    let _runtime = runtime.enter();
    let idle = shared.config.idle_timeout;
    let fd = match rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            core.end_stream(RemoteError::new(
                "RuntimeError",
                format!("cannot start the stream: {}", io::Error::from(e)),
            ));
            return write(conn, core, idle);
        }
    };
    let fd = Arc::new(fd);
    let wakeup = Arc::new(Wakeup {
        fd: Mutex::new(Some(fd.clone())),
        pending: AtomicBool::new(false),
    });
    let waker = Waker::from(wakeup.clone());
    let mut driver = Driver {
        conn,
        core,
        shared,
        peer,
        wakeup: &fd,
    };
    let outcome = driver.drive(&waker, &wakeup.pending);
    // Wakers kept beyond the stream write nowhere, and the eventfd closes
    // with the last of `fd`'s clones, here.
    *wakeup.fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
    outcome
}

/// A wake-up for the connection's wait: an eventfd, written once per
/// batch of wakes.
struct Wakeup {
    /// The eventfd, until the stream is over: a waker that outlives its
    /// stream (kept by a producer, a timer) then does nothing, and holds
    /// no descriptor.
    fd: Mutex<Option<Arc<OwnedFd>>>,
    /// Set while the connection is busy (it asks the source again before
    /// it sleeps) and by the first wake since it got ready to sleep: a
    /// wake writes the eventfd only to wake a sleeping connection, once.
    pending: AtomicBool,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(fd) = fd.as_ref() {
                let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
            }
        }
    }
}

/// How the connection waits after writing what a fill gave (a cancel, the
/// client leaving, a shutdown or a frame's deadline end any wait).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not at all: looks, and fills again.
    No,
    /// Until the source's wake.
    Woken,
    /// For `GATHER_FOR`, while a fast producer adds to its items.
    Gather,
}

/// The I/O of one stream.
struct Driver<'c, 'a> {
    conn: &'c mut Framed,
    core: &'c mut Connection<'a>,
    shared: &'c Shared,
    peer: &'c Peer,
    wakeup: &'c OwnedFd,
}

impl Driver<'_, '_> {
    fn drive(&mut self, waker: &Waker, pending: &AtomicBool) -> Result<(), End> {
        let mut cx = Context::from_waker(waker);
        loop {
            // Busy until the wait: a wake meanwhile writes no eventfd (a
            // producer's items come in many batches a second, and a write
            // and a read of the eventfd each would cost more than the
            // batch's own write), since the source is asked again before
            // the connection sleeps.
            pending.store(true, Ordering::Release);
            let mut next = self.fill(&mut cx)?;
            if next == Some(Wait::Woken) {
                self.write()?;
                // About to sleep: from here a wake writes the eventfd. What
                // came while the connection was busy woke nobody; it is
                // taken now (the fill's lock orders it after the store).
                pending.store(false, Ordering::SeqCst);
                next = self.fill(&mut cx)?;
                match next {
                    // More came: written, and the source asked again after
                    // a look for a cancel, busy.
                    Some(Wait::Woken) if self.core.has_output() => next = Some(Wait::No),
                    // A gather is not cut short by the producer's wakes:
                    // busy again until it ends.
                    Some(Wait::Gather) => pending.store(true, Ordering::Release),
                    _ => {}
                }
            }
            self.write()?;
            let over = match next {
                // The end frame is written: the source is stopped instead.
                None => true,
                Some(how) => self.wait(how)?,
            };
            if over {
                return self.stop(&mut cx, pending);
            }
        }
    }

    /// Asks the source for its ready items, into the core's output; how
    /// to wait after writing them, `None` once the end frame is written.
    fn fill(&mut self, cx: &mut Context<'_>) -> Result<Option<Wait>, End> {
        match self.core.fill_stream(cx) {
            // A source that always has items never waits: look for a
            // cancel, a client gone or a shutdown between its writes all
            // the same.
            StreamNext::Write => Ok(Some(Wait::No)),
            StreamNext::Wait => Ok(Some(Wait::Woken)),
            // Not armed: the producer's wakes write nothing meanwhile.
            StreamNext::Gather => Ok(Some(Wait::Gather)),
            StreamNext::Done => Ok(None),
            StreamNext::End(end) => Err(end),
        }
    }

    /// After the end frame, the session going on: waits until the source
    /// has stopped (an iterator's thread has left its `next`), so that a
    /// connection runs at most one such thread beside its own. The client
    /// leaving or the daemon shutting down meanwhile ends the session at
    /// once, the source left to stop on its own (`session` detaches it).
    fn stop(&mut self, cx: &mut Context<'_>, pending: &AtomicBool) -> Result<(), End> {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut hung_up = false;
        loop {
            pending.store(false, Ordering::Release);
            if self.core.poll_stream_stopped(cx).is_ready() {
                return Ok(());
            }
            if hung_up {
                return Err(if self.shared.stopping.load(Ordering::Acquire) {
                    End::ShuttingDown
                } else {
                    End::ClosedByClient
                });
            }
            // A request behind the stream waits unread: only the socket
            // closing (or shutdown shutting its reading side) is watched.
            let mut fds = [
                PollFd::new(&self.conn.stream, PollFlags::RDHUP),
                PollFd::new(self.wakeup, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Err(End::ConnectionError),
            }
            let (socket, woken) = (fds[0].revents(), fds[1].revents());
            if !woken.is_empty() {
                let _ = rustix::io::read(self.wakeup, &mut [0u8; 8]);
            }
            // The source is asked once more first: one that stopped as the
            // client hung up lets the session answer what it sent before.
            hung_up = !socket.is_empty();
        }
    }

    /// Writes what the core has to write, due as a whole within the idle
    /// timeout: a client that stops reading is cut by that deadline.
    fn write(&mut self) -> Result<(), End> {
        write(self.conn, self.core, self.shared.config.idle_timeout)
    }

    /// Waits as `how` says, or only until a cancel, the end of the
    /// connection or the deadline of a frame in progress; true when the
    /// stream is over and the session goes on.
    fn wait(&mut self, how: Wait) -> Result<bool, End> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        // A cancel may have come in the same read as the request, or in
        // the last one.
        let frame = match self.conn.peeked_frame() {
            Ok(frame) => frame,
            Err(e) => return Err(read_failed(self.shared, self.peer, ReadError::Frame(e))),
        };
        let partial = frame.is_none() && self.conn.has_pending_bytes();
        let payload = frame.map(|range| self.conn.payload(range));
        let (read, due) = match self.core.stream_wait(payload, partial, Instant::now()) {
            StreamWait::Wait { read, due } => (read, due),
            StreamWait::Cancelled => {
                // Taken: it is answered by the end frame.
                let _ = self.conn.buffered_frame();
                self.write()?;
                return Ok(true);
            }
            StreamWait::Overdue => {
                // What the socket takes at once: a client that sends half
                // a frame may not read either.
                let _ = write(self.conn, self.core, Some(Duration::ZERO));
                return Err(End::IdleTimeout);
            }
        };
        let until_due = || due.map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match how {
            Wait::No => Some(Duration::ZERO),
            Wait::Woken => until_due(),
            Wait::Gather => Some(until_due().map_or(GATHER_FOR, |d| d.min(GATHER_FOR))),
        };
        let socket_flags = if read {
            PollFlags::IN | PollFlags::RDHUP
        } else {
            PollFlags::RDHUP
        };
        let (socket, woken) = {
            let mut fds = [
                PollFd::new(&self.conn.stream, socket_flags),
                PollFd::new(self.wakeup, PollFlags::IN),
            ];
            let timeout = timeout
                .map(Timespec::try_from)
                .transpose()
                .map_err(|_| End::SocketError)?;
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(false),
                Err(_) => return Err(End::ConnectionError),
            }
            (fds[0].revents(), fds[1].revents())
        };
        if !woken.is_empty() {
            let mut count = [0u8; 8];
            let _ = rustix::io::read(self.wakeup, &mut count);
        }
        if socket.is_empty() {
            return Ok(false);
        }
        if read && socket.contains(PollFlags::IN) {
            // What came is looked at on the next wait.
            return match self.conn.fill_now() {
                Ok(true) => Ok(false),
                Ok(false) => Err(self.gone()),
                Err(e) => Err(read_failed(self.shared, self.peer, e)),
            };
        }
        // Not reading (a request waits in the buffer): the socket closed,
        // or shutdown shut its reading side.
        Err(self.gone())
    }

    /// The socket's reading side closed: the daemon is shutting down (the
    /// client gets a last error, if it is still there), or the client is
    /// gone.
    fn gone(&mut self) -> End {
        let end = self
            .core
            .stream_gone(self.shared.stopping.load(Ordering::Acquire));
        if end == End::ShuttingDown {
            let _ = self.write();
        }
        end
    }
}
