//! One connection's protocol after its handshake, with no I/O: whole
//! frames (and the descriptors that came with them) in; bytes and
//! descriptors to write, a stream to drive, a deadline and an end out.
//!
//! It owns what a connection decides: which request each frame is and its
//! reply, in order, pipelined requests gathered into one write up to
//! [`FLUSH_AT`] bytes (or [`FLUSH_FDS_AT`] replies carrying descriptors),
//! what the unwritten replies draw from the memory budget, a stream's
//! items and end frame, a cancel that ends a stream (or crossed its end),
//! the deadline of a frame in progress behind a stream, and why the
//! session ends. It does not read, write, wait or poll: the connection's
//! thread does (`session` and `stream`), and tells it what came.
//!
//! Like the client's `Session` and the wire crate's handshakes, it is
//! driven in unit tests frame by frame, with no socket (`tests`).

use std::os::fd::BorrowedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};
use std::time::Instant;

use anyd_wire::codec::{
    decode_head, detect, encode_end_session, encode_reply_error, encode_reply_ok, DecodeError,
};
use anyd_wire::message::Head;
use anyd_wire::{frame, Codec};

use crate::budget::Charge;
use crate::error::{panic_message, RemoteError};
use crate::items::{Detached, Fill, Sink, Source};
use crate::observe::{self, Started};
use crate::registry::{CallEnv, Dispatched};
use crate::stats::Outcome;
use crate::throttle::throttled;
use crate::transport::fds::Attached;
use crate::transport::fds::FrameFds;
use crate::transport::Peer;

use super::Shared;

/// How many bytes of replies to pipelined requests are gathered before
/// they are written. Small replies still go out many to a write, and a
/// client that sends requests by the thousand and reads slowly, or never,
/// holds at most this much of the daemon's memory (plus the reply in the
/// making) while the connection thread waits on the socket: without it, a
/// read buffer full of requests for large replies would have them all
/// made at once. A stream's items are gathered up to as much.
pub(super) const FLUSH_AT: usize = 64 * 1024;

/// How many replies carrying descriptors are gathered before they are
/// written: each holds up to 16 descriptors open in the daemon until then,
/// and a client that pipelines requests for descriptors and reads slowly
/// must not run the daemon out of them.
pub(super) const FLUSH_FDS_AT: usize = 4;

/// How many bytes one fill of a stream fed by its own thread must take for
/// the connection to gather the next ones for [`GATHER_FOR`] rather than
/// be woken by the first: a producer that fast is in the middle of a run,
/// and waking the connection for every few items would cost more system
/// calls than the items' writes. A fill that took less (one event, a few)
/// is followed by a wait that the next item ends at once.
pub(super) const GATHER_FROM: usize = 1024;

/// How long the connection gathers a fast producer's items before it
/// writes them (a cancel, the client leaving or a shutdown end the wait at
/// once): what an item of such a run waits beyond its write, plus the
/// kernel's timer slack on the wait's timeout (50 µs by default).
pub(super) const GATHER_FOR: std::time::Duration = std::time::Duration::from_micros(50);

/// What a connection's replies may hold without drawing on the memory
/// budget: replies to pipelined small requests are gathered up to
/// `FLUSH_AT`, which the buffer's doubling makes twice that.
pub(super) const REPLY_ALLOWANCE: usize = 2 * FLUSH_AT;

/// Why a session ended, for the daemon's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The client sent SIGENDS and got its answer.
    SessionEnded,
    /// The client closed the connection between requests.
    ClosedByClient,
    /// Cut by the handshake cap (counted where it was cut, in one
    /// throttled line).
    CutInHandshake,
    /// The handshake failed: a wrong key, a malformed frame, its deadline.
    HandshakeFailed,
    /// No request (or not all of one) within the idle timeout.
    IdleTimeout,
    /// A reply was not written within its deadline.
    ReplyTimeout,
    /// A frame in progress or a reply would have gone over the daemon's
    /// memory budget.
    OverBudget,
    /// A frame header over the limit, or malformed.
    BadFrame,
    /// Descriptors that cannot be held: past the caller's share of the
    /// daemon's, a flood of them, or cut short by the kernel.
    BadDescriptors,
    /// A payload with no codec to answer in.
    UnreadableMessage,
    /// Reading failed (the peer reset the connection, or shutdown cut it).
    ConnectionError,
    /// Writing replies failed.
    WriteFailed,
    /// The socket could not be set up for the session.
    SocketError,
    /// The daemon shut down while the session sent a stream.
    ShuttingDown,
}

impl End {
    /// The reason as the log shows it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            End::SessionEnded => "end of session",
            End::ClosedByClient => "closed by the client",
            End::CutInHandshake => "cut: handshake cap",
            End::HandshakeFailed => "handshake failed",
            End::IdleTimeout => "idle timeout",
            End::ReplyTimeout => "reply timeout",
            End::OverBudget => "over the memory budget",
            End::BadFrame => "bad frame",
            End::BadDescriptors => "descriptors refused",
            End::UnreadableMessage => "unreadable message",
            End::ConnectionError => "connection error",
            End::WriteFailed => "write failed",
            End::SocketError => "socket error",
            End::ShuttingDown => "shutting down",
        }
    }
}

/// What a call's context looks at for its caller going or cancelling: the
/// connection's socket (`None` when the core is driven without one) and
/// the bytes read behind the frame, which may be all or part of a CANCEL.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Behind<'a> {
    pub(super) socket: Option<BorrowedFd<'a>>,
    pub(super) bytes: &'a [u8],
}

/// What the connection's thread does after a frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Go on: the next frame if one is buffered, else write what
    /// [`Connection::output`] holds and read.
    Continue,
    /// Write what [`Connection::output`] holds now, then go on.
    Flush,
    /// A stream started: drive it ([`Connection::fill_stream`]) until it
    /// is over, then go on.
    Stream,
    /// The session is over: write what [`Connection::output`] holds if
    /// `flush` (within a deadline, whether or not the client reads), then
    /// close.
    End { reason: End, flush: bool },
}

/// What the connection's thread does after asking a stream for items.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamNext {
    /// Items fill the output: write them, then look for a cancel without
    /// waiting ([`Connection::stream_wait`]) and ask again.
    Write,
    /// Nothing more is ready: write what is there, then wait for the
    /// source's waker or what [`Connection::stream_wait`] says.
    Wait,
    /// Nothing more is ready, but the source's own thread is in the middle
    /// of a run (the fill took [`GATHER_FROM`] bytes or more): write what
    /// is there, then wait [`GATHER_FOR`] (or for what
    /// [`Connection::stream_wait`] says), not woken by the source, and ask
    /// again.
    Gather,
    /// The stream is over, its end frame in the output: write it, and the
    /// session goes on.
    Done,
    /// The session is over.
    End(End),
}

/// What to wait for while a stream waits for its items.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamWait {
    /// The socket's readable side (a cancel may come) if `read`, else only
    /// its closing; a frame in progress is due by `due`.
    Wait { read: bool, due: Option<Instant> },
    /// A cancel was buffered: the stream is over, its end frame in the
    /// output. Consume the frame, write, and the session goes on.
    Cancelled,
    /// The rest of a frame behind the stream did not come by its
    /// deadline: write what the socket takes at once (the end frame
    /// saying so is in the output), and close.
    Overdue,
}

/// A stream being sent.
struct Streaming {
    source: Box<dyn Source>,
    codec: Codec,
    /// Items may carry descriptors (the caller asked, over a socket that
    /// carries them).
    fds: bool,
    /// Whether the socket is read for a cancel. A frame that is not a
    /// cancel (a request pipelined behind the stream) stops that: it
    /// waits, unread, for the stream to end, and only the socket closing
    /// is watched for.
    watching: bool,
    /// When the rest of the frame in progress behind the stream is due
    /// (read while watching for a cancel): every byte a client sends is
    /// due within the idle timeout, stream or not. `None`: no frame in
    /// progress, or no idle timeout.
    frame_due: Option<Instant>,
}

/// One connection's protocol state (see the module docs).
pub(super) struct Connection<'a> {
    shared: &'a Shared,
    peer: &'a Peer,
    runtime: &'a tokio::runtime::Handle,
    /// Replies and items not yet written.
    out: Vec<u8>,
    /// The descriptors some of them carry, with their frames.
    attached: Attached,
    /// What `out` draws from the memory budget.
    out_charge: Charge,
    /// The stream being sent, if one is.
    stream: Option<Streaming>,
    /// A source whose stream is over, kept until nothing of it runs any
    /// more ([`poll_stream_stopped`](Self::poll_stream_stopped)) or the
    /// session ends ([`detach_source`](Self::detach_source)): an
    /// iterator's thread may still be in its `next`.
    finished: Option<Box<dyn Source>>,
    /// Requests taken so far, for each call's span.
    calls: u64,
}

impl<'a> Connection<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        peer: &'a Peer,
        runtime: &'a tokio::runtime::Handle,
    ) -> Self {
        Connection {
            shared,
            peer,
            runtime,
            out: Vec::new(),
            attached: Attached::new(),
            out_charge: Charge::new(shared.budget.clone(), REPLY_ALLOWANCE),
            stream: None,
            finished: None,
            calls: 0,
        }
    }

    /// What to write now: bytes, and the descriptors that go with some of
    /// their frames (emptied as they are written).
    #[inline]
    pub(super) fn output(&mut self) -> (&[u8], &mut Attached) {
        (&self.out, &mut self.attached)
    }

    /// Whether anything waits to be written.
    #[inline]
    pub(super) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// What [`output`](Self::output) held is written (or given up on).
    /// A large buffer is not kept: its memory goes back, and with it its
    /// share of the budget.
    #[inline]
    pub(super) fn written(&mut self) {
        self.out.clear();
        self.attached.clear();
        if self.out.capacity() > REPLY_ALLOWANCE {
            self.out = Vec::new();
            self.out_charge.hold(0);
        }
    }

    /// After a stream is over and its end frame written, the session
    /// going on: lets go of its source. `Ready` once nothing of it runs
    /// any more; `Pending` while an iterator's thread is still in its
    /// `next` (`cx`'s waker is called when it leaves), so that a
    /// connection runs at most one such thread beside its own.
    pub(super) fn poll_stream_stopped(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(source) = self.finished.as_mut() else {
            return Poll::Ready(());
        };
        let stopped = source.poll_stop(cx);
        if stopped.is_ready() {
            self.finished = None;
        }
        stopped
    }

    /// The session is over: what still runs of a stream's source (an
    /// iterator's thread in its `next`) is left to end on its own, and
    /// handed back to be counted against the caller's share until then.
    pub(super) fn detach_source(&mut self) -> Option<Detached> {
        let mut source = self
            .finished
            .take()
            .or_else(|| self.stream.take().map(|s| s.source))?;
        source.detach()
    }

    /// One whole frame from the client, with the descriptors that came
    /// with it (`None` on a socket that cannot carry any) and what is
    /// behind it: its reply goes to the output.
    pub(super) fn on_frame(
        &mut self,
        payload: &[u8],
        fds: Option<FrameFds>,
        behind: Behind<'_>,
    ) -> Next {
        debug_assert!(self.stream.is_none(), "frames behind a stream wait");
        let next = self.handle_message(payload, fds, behind);
        // A reply is counted once made (the handler made its value
        // anyway); one that the budget cannot hold is never sent.
        if !self.charge("replies") {
            return Next::End {
                reason: End::OverBudget,
                flush: false,
            };
        }
        if next == Next::Continue
            && (self.out.len() >= FLUSH_AT || self.attached.len() >= FLUSH_FDS_AT)
        {
            return Next::Flush;
        }
        next
    }

    /// Counts what the output holds against the memory budget; false if
    /// the budget cannot hold it (said in the log, a few lines a second:
    /// `what` are the output's frames).
    #[inline]
    fn charge(&mut self, what: &str) -> bool {
        if self.out.capacity() <= REPLY_ALLOWANCE || self.out_charge.hold(self.out.capacity()) {
            return true;
        }
        throttled!(
            self.shared.logs.over_budget,
            info,
            peer = self.peer.address(),
            bytes = self.out.len(),
            "{what} over the memory budget; closing"
        );
        false
    }

    /// Decodes one message and appends the framed reply to the output.
    fn handle_message(
        &mut self,
        payload: &[u8],
        fds: Option<FrameFds>,
        behind: Behind<'_>,
    ) -> Next {
        // Only as far as the endpoint name: the policy is checked before
        // any argument is decoded.
        let shared = self.shared;
        let limits = &shared.config.decode_limits;
        let out = &mut self.out;
        let head = match decode_head(payload, limits) {
            Ok(Head::Request(r)) => r,
            Ok(Head::EndSession(codec)) => {
                let mark = frame::begin(out);
                encode_end_session(codec, out);
                frame::finish(out, mark);
                return Next::End {
                    reason: End::SessionEnded,
                    flush: true,
                };
            }
            // A cancel that crossed the end of its stream: nothing to
            // stop, and a cancel is never answered by itself.
            Ok(Head::Cancel(_)) => return Next::Continue,
            Ok(_) => {
                return Next::End {
                    reason: End::UnreadableMessage,
                    flush: true,
                }
            }
            Err(e @ (DecodeError::Empty | DecodeError::UnknownCodec(_))) => {
                // No codec to answer in: all we can do is close.
                throttled!(
                    shared.logs.bad_input,
                    info,
                    peer = self.peer.address(),
                    error = %e,
                    "unreadable message; closing"
                );
                return Next::End {
                    reason: End::UnreadableMessage,
                    flush: true,
                };
            }
            Err(e) => {
                // The codec is known, so the client can read an error
                // reply and the session goes on.
                let codec = detect(payload).unwrap_or(Codec::MsgPack);
                // The detail may quote the payload: debug only.
                tracing::debug!(peer = self.peer.address(), error = %e, "malformed request");
                let err = RemoteError::new("ValueError", format!("malformed request: {e}"));
                let mark = frame::begin(out);
                encode_reply_error(codec, &err, out);
                frame::finish(out, mark);
                return Next::Continue;
            }
        };
        let codec = head.codec;
        self.calls += 1;
        // The handler's own events are tied to the call they serve; the
        // rest of its fields are known later (`observe`). The codec is
        // the request's, not the connection's: each request may use
        // another.
        let span = observe::call_span(&head, self.calls);
        let _in_span = span.enter();
        let started = Started::now();
        let mark = frame::begin(out);
        let env = CallEnv {
            peer: self.peer,
            runtime: self.runtime,
            limits,
            socket: behind.socket,
            behind: behind.bytes,
        };
        let observe = &shared.registry.observe;
        let mut stats = &observe.refused;
        let dispatched = shared.registry.dispatch(head, fds, &env, out, &mut stats);
        let peer = self.peer;
        let finish = |outcome| observe.finish(&span, stats, outcome, started, peer);
        match dispatched {
            Dispatched::Reply(fds) => {
                finish(Outcome::Ok);
                frame::finish(out, mark);
                if !fds.is_empty() {
                    self.attached.push((mark..out.len(), fds));
                }
                Next::Continue
            }
            Dispatched::Stream { source, fds } => {
                finish(Outcome::Stream);
                // No reply: the stream's frames follow.
                out.truncate(mark);
                self.stream = Some(Streaming {
                    source,
                    codec,
                    fds,
                    watching: true,
                    frame_due: None,
                });
                Next::Stream
            }
            Dispatched::Error(err) => {
                finish(Outcome::Error(&err.kind));
                out.truncate(mark + frame::HEADER_LEN);
                encode_reply_error(codec, &err, out);
                frame::finish(out, mark);
                Next::Continue
            }
        }
    }

    /// Asks the stream's source for what it has ready, with `cx`'s waker
    /// to call when it has more; a panicking source ends the stream with
    /// a `RuntimeError`.
    pub(super) fn fill_stream(&mut self, cx: &mut Context<'_>) -> StreamNext {
        let Some(stream) = self.stream.as_mut() else {
            return StreamNext::Done;
        };
        let (mark, fds_mark) = (self.out.len(), self.attached.len());
        let runs_apart = stream.source.runs_apart();
        let mut sink = Sink::new(
            stream.codec,
            &mut self.out,
            FLUSH_AT,
            stream.fds.then_some(&mut self.attached),
        );
        let fill = catch_unwind(AssertUnwindSafe(|| stream.source.fill(cx, &mut sink)));
        let fill = fill.unwrap_or_else(|panic| {
            // An item's `Serialize` may have panicked half way through its
            // frame; what came before it is whole, but which items did is
            // not known: none of this fill goes out, nor its descriptors.
            self.out.truncate(mark);
            self.attached.truncate(fds_mark);
            let what = panic_message(&*panic);
            tracing::error!(panic = %what, "a stream's source panicked");
            let message = if self.shared.registry.panic_details {
                format!("the stream failed: {what}")
            } else {
                "the stream failed: internal error (see the daemon's log)".to_owned()
            };
            Fill::Done(Err(RemoteError::new("RuntimeError", message)))
        });
        if !self.charge("stream items") {
            return StreamNext::End(End::OverBudget);
        }
        match fill {
            Fill::Full => StreamNext::Write,
            Fill::Pending if runs_apart && self.out.len() - mark >= GATHER_FROM => {
                StreamNext::Gather
            }
            Fill::Pending => StreamNext::Wait,
            Fill::Done(end) => {
                self.finish_stream(end);
                StreamNext::Done
            }
        }
    }

    /// Ends the stream with `err` before it started (its driver could not
    /// set up its wait).
    pub(super) fn end_stream(&mut self, err: RemoteError) {
        self.finish_stream(Err(err));
    }

    /// Ends the stream: its end frame after what the output holds.
    fn finish_stream(&mut self, end: Result<(), RemoteError>) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let out = &mut self.out;
        let mark = frame::begin(out);
        match &end {
            Ok(()) => encode_reply_ok(stream.codec, &(), out).expect("nil always encodes"),
            Err(e) => encode_reply_error(stream.codec, e, out),
        }
        frame::finish(out, mark);
        self.finished = Some(stream.source);
        tracing::debug!(end = ?end.as_ref().err(), "stream over");
    }

    /// What a stream's wait watches for, given what the read buffer holds
    /// behind it: the next whole frame (`frame`), if one is buffered, else
    /// whether part of one is (`partial`). A cancel ends the stream; any
    /// other frame stops the reading until the stream is over; part of a
    /// frame is due within the idle timeout of `now`, the first time it
    /// is seen.
    pub(super) fn stream_wait(
        &mut self,
        frame: Option<&[u8]>,
        partial: bool,
        now: Instant,
    ) -> StreamWait {
        let idle = self.shared.config.idle_timeout;
        let limits = &self.shared.config.decode_limits;
        let Some(stream) = self.stream.as_mut() else {
            return StreamWait::Cancelled;
        };
        if let (true, Some(payload)) = (stream.watching, frame) {
            if matches!(decode_head(payload, limits), Ok(Head::Cancel(_))) {
                self.finish_stream(Err(RemoteError::new(
                    "Cancelled",
                    "the client cancelled the stream",
                )));
                return StreamWait::Cancelled;
            }
            stream.watching = false;
        }
        match idle {
            Some(idle) if stream.watching && partial => {
                let due = *stream.frame_due.get_or_insert(now + idle);
                if now >= due {
                    return self.frame_overdue();
                }
            }
            _ => stream.frame_due = None,
        }
        StreamWait::Wait {
            read: stream.watching,
            due: stream.frame_due,
        }
    }

    /// The rest of a frame did not come within the idle timeout: the
    /// stream ends with an error saying so, and the connection is cut.
    fn frame_overdue(&mut self) -> StreamWait {
        throttled!(
            self.shared.logs.bad_input,
            info,
            peer = self.peer.address(),
            "the rest of a request behind a stream did not come within the idle timeout; closing"
        );
        self.finish_stream(Err(RemoteError::new(
            "TimeoutError",
            "the rest of the next request did not come within the idle timeout; closing",
        )));
        StreamWait::Overdue
    }

    /// The socket's reading side closed while a stream was sent: the
    /// daemon is shutting down (`stopping`: the client gets a last error,
    /// if it is still there), or the client is gone (nobody to tell).
    pub(super) fn stream_gone(&mut self, stopping: bool) -> End {
        if !stopping {
            // Nobody to tell; what the source runs is let go of with the
            // session (`detach_source`).
            self.finished = self.stream.take().map(|s| s.source);
            return End::ClosedByClient;
        }
        self.finish_stream(Err(RemoteError::new(
            "Shutdown",
            "the daemon is shutting down",
        )));
        End::ShuttingDown
    }
}

#[cfg(test)]
mod tests;
