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
//! What concerns a stream being sent is in `streaming`.
//!
//! Like the client's `Session` and the wire crate's handshakes, it is
//! driven in unit tests frame by frame, with no socket (`tests`).

use std::os::fd::BorrowedFd;

use anyd_wire::codec::{decode_head, detect, encode_end_session, encode_reply_error, DecodeError};
use anyd_wire::message::Head;
use anyd_wire::{frame, Codec};

use crate::budget::Charge;
use crate::error::RemoteError;
use crate::items::Source;
use crate::observe::{self, Started};
use crate::registry::{CallEnv, Dispatched};
use crate::stats::Outcome;
use crate::throttle::throttled;
use crate::transport::fds::Attached;
use crate::transport::fds::FrameFds;
use crate::transport::Peer;

use super::Shared;

mod streaming;

use streaming::Streaming;
pub(super) use streaming::{StreamNext, StreamWait, GATHER_FOR};

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
}

#[cfg(test)]
mod tests;
