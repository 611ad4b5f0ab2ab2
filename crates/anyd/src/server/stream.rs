//! Sending one stream on its connection ([protocol section 8.1](crate::protocol#81-streams)):
//! the source's ready items in as few writes as possible, a wait that
//! wakes for the next items, for a cancel or for the client going away,
//! and the end frame.
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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use anyd_wire::codec::{decode_head, encode_reply_error, encode_reply_ok};
use anyd_wire::message::Head;
use anyd_wire::{frame, Codec};

use crate::budget::Charge;
use crate::error::{panic_message, RemoteError};
use crate::frame_buffer::ReadError;
use crate::framed::{self, Attached, Framed};
use crate::items::{Fill, Source};
use crate::throttle::throttled;
use crate::transport::Peer;

use super::session::{write_failed, End, FLUSH_AT, REPLY_ALLOWANCE};
use super::Shared;

/// The stream's connection and what it writes with.
pub(super) struct Link<'a> {
    pub(super) shared: &'a Shared,
    pub(super) conn: &'a mut Framed,
    pub(super) peer: &'a Peer,
    /// Replies and items not yet written (replies to pipelined requests
    /// before the stream may be there already).
    pub(super) out: &'a mut Vec<u8>,
    /// The descriptors of replies gathered in `out` before the stream.
    pub(super) attached: &'a mut Attached,
    pub(super) out_charge: &'a mut Charge,
}

/// How a stream ended for the connection.
enum Outcome {
    /// The end frame was sent: the session goes on.
    Sent,
    /// The session is over.
    Session(End),
}

/// Sends the stream of `source` in `codec`, then its end frame. `Ok` when
/// the session goes on (the stream ended, failed or was cancelled), the
/// session's end otherwise.
///
/// `fds`: the caller asked for descriptors, over a socket that carries
/// them, so items may carry some.
pub(super) fn send(
    link: Link<'_>,
    codec: Codec,
    source: Box<dyn Source>,
    fds: bool,
    runtime: &tokio::runtime::Handle,
) -> Result<(), End> {
    // Async sources use the daemon's runtime (timers, I/O) from here.
    let _runtime = runtime.enter();
    let mut stream = Sending {
        link,
        codec,
        source: Some(source),
        watching: true,
        fds,
    };
    let outcome = stream.run();
    // Dropped here, after the end frame went out: an iterator's thread is
    // waited for, which must not delay what the client reads.
    stream.source = None;
    tracing::debug!(end = ?outcome.as_ref().err(), "stream over");
    match outcome {
        Ok(Outcome::Sent) => Ok(()),
        Ok(Outcome::Session(end)) | Err(end) => Err(end),
    }
}

/// A wake-up for the connection's wait: an eventfd, written once per
/// batch of wakes.
struct Wakeup {
    /// The eventfd, until the stream is over: a waker that outlives its
    /// stream (kept by a producer, a timer) then does nothing, and holds
    /// no descriptor.
    fd: Mutex<Option<Arc<OwnedFd>>>,
    /// Set by the first wake since the last poll of the source, so that a
    /// producer waking it per item writes the eventfd once.
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

struct Sending<'a> {
    link: Link<'a>,
    codec: Codec,
    source: Option<Box<dyn Source>>,
    /// Whether the wait reads the socket for a cancel. A frame that is
    /// not a cancel (a request pipelined behind the stream) stops that: it
    /// waits, unread, for the stream to end, and only the socket closing
    /// is watched for.
    watching: bool,
    /// Items may carry descriptors.
    fds: bool,
}

impl Sending<'_> {
    fn run(&mut self) -> Result<Outcome, End> {
        let fd = match rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let err = RemoteError::new(
                    "RuntimeError",
                    format!("cannot start the stream: {}", io::Error::from(e)),
                );
                return self.finish(Err(err));
            }
        };
        let fd = Arc::new(fd);
        let wakeup = Arc::new(Wakeup {
            fd: Mutex::new(Some(fd.clone())),
            pending: AtomicBool::new(false),
        });
        let waker = Waker::from(wakeup.clone());
        let outcome = self.drive(&waker, &wakeup.pending, &fd);
        // Wakers kept beyond the stream write nowhere, and the eventfd
        // closes with the last of `fd`'s clones, here.
        *wakeup.fd.lock().unwrap_or_else(|e| e.into_inner()) = None;
        outcome
    }

    fn drive(
        &mut self,
        waker: &Waker,
        pending: &AtomicBool,
        wakeup: &OwnedFd,
    ) -> Result<Outcome, End> {
        let mut cx = Context::from_waker(waker);
        loop {
            // From here on, a wake writes the eventfd again.
            pending.store(false, Ordering::Release);
            match self.fill(&mut cx)? {
                Fill::Full => {
                    self.write()?;
                    // A source that always has items never waits: look
                    // for a cancel, a client gone or a shutdown between
                    // its writes all the same.
                    if let Some(outcome) = self.wait(wakeup, false)? {
                        return Ok(outcome);
                    }
                }
                Fill::Done(end) => return self.finish(end),
                Fill::Pending => {
                    self.write()?;
                    if let Some(outcome) = self.wait(wakeup, true)? {
                        return Ok(outcome);
                    }
                }
            }
        }
    }

    /// Asks the source for what it has ready; a panicking source ends the
    /// stream with a `RuntimeError`.
    fn fill(&mut self, cx: &mut Context<'_>) -> Result<Fill, End> {
        let Some(source) = self.source.as_mut() else {
            return Ok(Fill::Done(Ok(())));
        };
        let out = &mut *self.link.out;
        let mark = out.len();
        let item_fds = self.fds.then(crate::fd::ItemFds::open);
        let fill = catch_unwind(AssertUnwindSafe(|| {
            source.fill(cx, self.codec, &mut *out, FLUSH_AT)
        }));
        let mut fds = item_fds.map(crate::fd::ItemFds::finish).unwrap_or_default();
        let fill = fill.unwrap_or_else(|panic| {
            // An item's `Serialize` may have panicked half way through its
            // frame; what came before it is whole, but which items did is
            // not known: none of this fill goes out, nor its descriptors.
            out.truncate(mark);
            fds.clear();
            let what = panic_message(&*panic);
            tracing::error!(panic = %what, "a stream's source panicked");
            let registry = &self.link.shared.registry;
            let message = if registry.panic_details {
                format!("the stream failed: {what}")
            } else {
                "the stream failed: internal error (see the daemon's log)".to_owned()
            };
            Fill::Done(Err(RemoteError::new("RuntimeError", message)))
        });
        self.link.attached.append(&mut fds);
        self.charge()?;
        Ok(fill)
    }

    /// Counts what the buffer holds against the memory budget, as replies
    /// are.
    fn charge(&mut self) -> Result<(), End> {
        let out = &*self.link.out;
        if out.capacity() > REPLY_ALLOWANCE && !self.link.out_charge.hold(out.capacity()) {
            throttled!(
                self.link.shared.logs.over_budget,
                info,
                peer = self.link.peer.address(),
                bytes = out.len(),
                "stream items over the memory budget; closing"
            );
            return Err(End::OverBudget);
        }
        Ok(())
    }

    /// Writes what the buffer holds, due as a whole within the idle
    /// timeout: a client that stops reading is cut by that deadline.
    fn write(&mut self) -> Result<(), End> {
        let out = &mut *self.link.out;
        if out.is_empty() {
            return Ok(());
        }
        let within = self.link.shared.config.idle_timeout;
        framed::write_out(&mut self.link.conn.stream, out, self.link.attached, within)
            .map_err(|e| write_failed(&e))?;
        out.clear();
        if out.capacity() > REPLY_ALLOWANCE {
            *out = Vec::new();
            self.link.out_charge.hold(0);
        }
        Ok(())
    }

    /// Sends the end frame after what the buffer holds.
    fn finish(&mut self, end: Result<(), RemoteError>) -> Result<Outcome, End> {
        let out = &mut *self.link.out;
        let mark = frame::begin(out);
        match &end {
            Ok(()) => {
                encode_reply_ok(self.codec, &(), out).expect("nil always encodes");
            }
            Err(e) => encode_reply_error(self.codec, e, out),
        }
        frame::finish(out, mark);
        self.write()?;
        Ok(Outcome::Sent)
    }

    /// Waits for the source's next items (`block`), or only looks
    /// (`!block`), for a cancel or the end of the connection; `Some` when
    /// the stream is over.
    fn wait(&mut self, wakeup: &OwnedFd, block: bool) -> Result<Option<Outcome>, End> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        // A cancel may have come in the same read as the request.
        if self.watching {
            if let Some(outcome) = self.take_cancel()? {
                return Ok(Some(outcome));
            }
        }
        let socket_flags = if self.watching {
            PollFlags::IN | PollFlags::RDHUP
        } else {
            PollFlags::RDHUP
        };
        let (socket, woken) = {
            let mut fds = [
                PollFd::new(&self.link.conn.stream, socket_flags),
                PollFd::new(wakeup, PollFlags::IN),
            ];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match poll(&mut fds, (!block).then_some(&now)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(None),
                Err(_) => return Err(End::ConnectionError),
            }
            (fds[0].revents(), fds[1].revents())
        };
        if !woken.is_empty() {
            let mut count = [0u8; 8];
            let _ = rustix::io::read(wakeup, &mut count);
        }
        if socket.is_empty() {
            return Ok(None);
        }
        if self.watching && socket.contains(PollFlags::IN) {
            return self.read_cancel();
        }
        // Not reading (a request waits in the buffer): the socket closed,
        // or shutdown shut its reading side.
        self.gone().map(Some)
    }

    /// Reads what came while the stream was sent: a cancel ends the
    /// stream, anything else waits for it to end.
    fn read_cancel(&mut self) -> Result<Option<Outcome>, End> {
        match self.link.conn.fill_now() {
            Ok(true) => {}
            Ok(false) => return self.gone().map(Some),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(End::OverBudget)
            }
            Err(ReadError::Io(_)) => return Err(End::ConnectionError),
            Err(ReadError::Frame(_)) => return Err(End::BadFrame),
        }
        self.take_cancel()
    }

    /// Looks at the next frame if it is buffered whole: a cancel ends the
    /// stream, anything else waits for it to end (and stops the reading).
    fn take_cancel(&mut self) -> Result<Option<Outcome>, End> {
        let conn = &mut *self.link.conn;
        let range = match conn.peeked_frame() {
            Ok(Some(range)) => range,
            // Not a whole frame yet.
            Ok(None) => return Ok(None),
            Err(e) => {
                throttled!(
                    self.link.shared.logs.bad_input,
                    info,
                    peer = self.link.peer.address(),
                    error = %e,
                    "bad frame; closing"
                );
                return Err(End::BadFrame);
            }
        };
        let limits = &self.link.shared.config.decode_limits;
        if !matches!(
            decode_head(conn.payload(range), limits),
            Ok(Head::Cancel(_))
        ) {
            self.watching = false;
            return Ok(None);
        }
        // Taken: it is answered by the end frame.
        let _ = conn.buffered_frame();
        self.finish(Err(RemoteError::new(
            "Cancelled",
            "the client cancelled the stream",
        )))
        .map(Some)
    }

    /// The socket's reading side closed: the daemon is shutting down (the
    /// client gets a last error, if it is still there), or the client is
    /// gone (nobody to tell).
    fn gone(&mut self) -> Result<Outcome, End> {
        if !self.link.shared.stopping.load(Ordering::Acquire) {
            return Ok(Outcome::Session(End::ClosedByClient));
        }
        let _ = self.finish(Err(RemoteError::new(
            "Shutdown",
            "the daemon is shutting down",
        )));
        Ok(Outcome::Session(End::ShuttingDown))
    }
}
