//! Where a client session stands, as one enum: closed, or open on a
//! connection that is idle, has a call under way, has a stream open
//! (with or without its CANCEL sent), or owes what a call given up on
//! left (the rest of its request, its CANCEL, its reply to discard), and
//! the transitions between them that do not depend on what is sent or
//! read. What each call means and when it is made is `session`'s.

use crate::error::{Error, Result};

/// Where a session stands: closed, or open on a connection in one phase
/// of its exchange. One enum, so that what cannot be (a call under way
/// on no connection, a stream open with no call, a cancel sent with no
/// stream) cannot be written down.
///
/// ```text
///           call / call_stream / end            finish_call
///   Idle ──────────────────────────> Calling ─────────────────> Idle
///                                       │ stream_sent
///                                       v        cancel_went_out
///   Idle <── stream_step: End, Failed ── Streaming(NotSent) ──> Streaming(Sent)
///
///   Calling(Unary or Version) ── abandon ──> Idle (nothing went out)
///                                        ──> Owed(Request) (part went out)
///                                        ──> Owed(Cancel) or Owed(Reply)
///   Owed(Request) ── owed_written ──> Owed(Cancel) (the daemon reads one)
///                                 ──> Owed(Reply)
///   Owed(Cancel) ── owed_written ──> Owed(Reply) ── owed_reply ──> Idle
///
///   any ──> Closed: close; an exchange that broke; the daemon ending the
///   session; finish_end; take_for_end; a call, stream or end started
///   while a call is under way (its reply would answer the new one).
/// ```
///
/// A call or a streaming call started while a stream is open is refused
/// and leaves it open; the end of the session then closes it. A call
/// started while something is owed closes the session: the driver
/// settles what is owed first (the async client does; the blocking one
/// never gives up on a call half way).
pub(super) enum State<C> {
    /// No connection: every call fails with [`Error::Closed`]. Dropping
    /// the connection closed the socket.
    Closed,
    /// A connection and where its exchange stands. The phase changes in
    /// place, so that the connection is not moved from call to call.
    Open {
        /// The driver's connection.
        conn: C,
        /// Where its exchange stands.
        phase: Phase,
    },
}

/// Where the exchange on an open connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// In step: the next request may go.
    Idle,
    /// A request was handed to the driver and its reply not yet read
    /// whole (or, for a streaming call, the request not yet written
    /// whole). A driver that gives up on a unary call half way (an async
    /// call whose future was dropped) says so
    /// ([`Session::abandon`](super::Session::abandon)), which leaves what
    /// is owed; a session left here otherwise is out of step: that reply
    /// would answer the next call, which closes the session instead.
    Calling(Call),
    /// A stream's frames are still to come (its end not read yet). A
    /// driver whose reader of the stream was dropped reads them to the
    /// end ([`Session::cancel`](super::Session::cancel)) before the next
    /// call.
    Streaming(Cancel),
    /// A unary call was given up on after some of its request went out:
    /// what it still owes the connection comes before the next request.
    /// (Only the async client gives calls up half way.)
    #[cfg_attr(not(feature = "async-client"), allow(dead_code))]
    Owed(Owed),
}

/// What a call given up on still owes the connection, in this order.
#[cfg_attr(not(feature = "async-client"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owed {
    /// The rest of its request: half a frame is on the wire.
    Request,
    /// A CANCEL right behind the request (the daemon said it reads one),
    /// so that the daemon stops the handler; then its reply.
    Cancel,
    /// Its reply, to read and discard.
    Reply,
}

/// What the request under way is, which says what ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// A call: [`Session::finish_call`](super::Session::finish_call)
    /// takes its reply.
    Unary,
    /// `anyd.version`, asked once before the first call that would carry
    /// an option the daemon may not know:
    /// [`Session::learned`](super::Session::learned) takes its reply.
    Version,
    /// A streaming call's request:
    /// [`Session::stream_sent`](super::Session::stream_sent) opens the
    /// stream once it is written whole.
    Stream,
    /// SIGENDS: [`Session::finish_end`](super::Session::finish_end)
    /// takes its echo.
    End,
}

/// Whether the open stream's CANCEL went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cancel {
    /// Not by this session: a driver giving up on the stream sends it.
    NotSent,
    /// Whole: what is left is reading to the stream's end frame.
    Sent,
}

impl Phase {
    /// What the session is doing, for errors and `Debug`.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Calling(Call::Unary) => "a call under way",
            Phase::Calling(Call::Version) => "asking the daemon's version",
            Phase::Calling(Call::Stream) => "a streaming call's request under way",
            Phase::Calling(Call::End) => "ending the session",
            Phase::Streaming(Cancel::NotSent) => "a stream open",
            Phase::Streaming(Cancel::Sent) => "a stream open, its cancel sent",
            Phase::Owed(Owed::Request) => "a call given up on, its request half sent",
            Phase::Owed(Owed::Cancel) => "a call given up on, its cancel to send",
            Phase::Owed(Owed::Reply) => "a call given up on, its reply to discard",
        }
    }
}

impl<C> State<C> {
    /// The phase of an open session; `None` once closed.
    pub(super) fn phase(&self) -> Option<Phase> {
        match self {
            State::Closed => None,
            State::Open { phase, .. } => Some(*phase),
        }
    }

    /// What the session is doing, for errors and `Debug`.
    pub(super) fn describe(&self) -> &'static str {
        self.phase().map_or("closed", Phase::describe)
    }

    /// Idle to `Calling(call)`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if closed, or now: a call was under way (its
    /// reply, never read, would answer this one), or `call` is the end of
    /// the session and a stream is open. [`Error::Protocol`] saying so
    /// for a call while a stream is open, which stays open.
    #[inline]
    pub(super) fn begin(&mut self, call: Call) -> Result<()> {
        match self {
            State::Open { phase, .. } if *phase == Phase::Idle => {
                *phase = Phase::Calling(call);
                Ok(())
            }
            State::Open {
                phase: Phase::Streaming(_),
                ..
            } if call != Call::End => Err(stream_open()),
            _ => Err(self.close_for(Error::Closed)),
        }
    }

    /// `from` to `to`, for a driver that reports what `from` waits for.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] saying what came in which state, if the session
    /// is not in `from`: the driver and the session disagree on where the
    /// exchange stands, so the session closes.
    #[inline]
    pub(super) fn advance(&mut self, from: Phase, to: Phase, what: &str) -> Result<()> {
        match self {
            State::Open { phase, .. } if *phase == from => {
                *phase = to;
                Ok(())
            }
            _ => Err(self.out_of_turn(what)),
        }
    }

    /// Closes the session for `what`, which came in a state that does not
    /// wait for it, and says so.
    #[cold]
    #[inline(never)]
    pub(super) fn out_of_turn(&mut self, what: &str) -> Error {
        let e = Error::protocol(format!("{what} while {}", self.describe()));
        self.close_for(e)
    }

    /// Closes the session, which `e` says why.
    #[cold]
    #[inline(never)]
    fn close_for(&mut self, e: Error) -> Error {
        *self = State::Closed;
        e
    }
}

/// The refusal of a call while a stream is open.
#[cold]
#[inline(never)]
fn stream_open() -> Error {
    Error::protocol("a call while a stream is open: read the stream to its end or cancel it first")
}
