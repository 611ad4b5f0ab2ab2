//! The call protocol of a client session, with no I/O: one core that the
//! blocking [`ClientSession`](crate::ClientSession) drives with blocking
//! reads and writes and the [`AsyncClientSession`](crate::AsyncClientSession)
//! with tokio's.
//!
//! It owns the connection's life (`state`: closed, or open and idle, with
//! a call under way, with a stream open, its CANCEL sent or not, or owing
//! what a call given up on left), the request or SIGENDS to send, what a
//! reply means, what a call carries beyond its arguments and what the
//! daemon reads of it (`extras`), what a call given up on still owes
//! (`owed`), and the rules that close a session: a transport, protocol or
//! timeout error, a daemon that ends the session, and a call that was
//! interrupted between its request and its reply without its driver
//! saying so (that reply would answer the next call). It does not own
//! the socket, the frames (`frame_buffer`) or the time a call may take:
//! the drivers read, write and time out, and report what came.

use std::time::Duration;

use anyd_wire::codec::{
    decode_reply, encode_cancel, encode_end_session, encode_request_with, RequestOptions,
};
use std::os::fd::OwnedFd;

use crate::transport::fds::OutFd;

use crate::frame_context::{decode_with_fds, encode_with_fds, EncodeFdsError, TooManyFds};
use crate::transport::fds::{FdError, MAX_FDS_PER_FRAME};
use anyd_wire::frame;
use anyd_wire::message::Reply;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::ClientOptions;
use crate::error::{Error, Result};
use crate::frame_buffer::ReadError;

mod extras;
mod frames;
// Only the async client gives calls up half way.
#[cfg_attr(not(feature = "async-client"), allow(dead_code))]
mod owed;
mod state;

use extras::Knows;
pub(crate) use extras::{local_wait, Start, Wait};
use frames::received;
pub(crate) use frames::{buffered_item, stream_frame, Step};
use state::{Call, Cancel, Phase, State};

/// How long a session dropped without [`end_session`] waits for the
/// daemon to acknowledge the end of the session, so that a daemon which
/// writes that acknowledgement (Python anyd does) does not write into a
/// closed socket.
///
/// [`end_session`]: crate::ClientSession::end_session
pub(crate) const END_SESSION_GRACE: Duration = Duration::from_secs(1);

/// A session with a daemon over a connection `C`, the driver's (a stream
/// and its read buffer).
///
/// Its `Debug` shows the state (connected, a call or stream under way,
/// the options) and never the request it holds nor anything read.
pub(crate) struct Session<C> {
    /// The connection, if open, and where its exchange stands.
    state: State<C>,
    options: ClientOptions,
    /// The frame to send, reused from call to call.
    out: Vec<u8>,
    /// The descriptors of the request in `out`.
    out_fds: Vec<OutFd>,
    /// Requests say that this client speaks descriptors: a Unix socket, a
    /// native codec, and the options allow it.
    speaks_fds: bool,
    /// The exchange under way may bring descriptors: this client speaks
    /// them and the call's result (or the stream's item) may hold one
    /// (`fd::may_hold_fd`). Its reads are then made with room for them.
    reads_fds: bool,
    /// What `reads_fds` becomes when the request in `out` starts: a
    /// request refused before it starts (a stream still open) leaves the
    /// exchange under way as it was.
    out_reads_fds: bool,
    /// What the daemon reads beyond the plain protocol, once asked
    /// (`None`: not asked yet; a session whose calls carry nothing new
    /// never asks).
    knows: Option<Knows>,
    /// How much of `out` the driver has written, for a driver whose write
    /// may stop half way (an async call dropped): what is left is owed.
    written: usize,
}

impl<C: std::fmt::Debug> std::fmt::Debug for Session<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field, so that a new one is not forgotten here silently;
        // `out` is the last request's bytes, arguments included: its
        // length only.
        let Session {
            state,
            options,
            out,
            out_fds,
            speaks_fds,
            reads_fds,
            out_reads_fds: _,
            knows,
            written: _,
        } = self;
        let (conn, phase) = match state {
            State::Closed => (None, None),
            State::Open { conn, phase } => (Some(conn), Some(*phase)),
        };
        f.debug_struct("Session")
            .field("state", &state.describe())
            .field("connected", &conn.is_some())
            .field(
                "in_flight",
                &matches!(phase, Some(Phase::Calling(_) | Phase::Streaming(_))),
            )
            .field("streaming", &matches!(phase, Some(Phase::Streaming(_))))
            .field("conn", &conn)
            .field("options", options)
            .field("request_len", &out.len())
            .field("request_fds", &out_fds.len())
            .field("speaks_fds", speaks_fds)
            .field("reads_fds", reads_fds)
            .field("daemon_reads", knows)
            // What of the frame in `out` went out: only the state of a
            // call given up on needs it, and says it.
            .finish_non_exhaustive()
    }
}

/// A request to send and its reply to read, over the session's
/// connection. Its `Debug` shows the request's length, not its bytes.
pub(crate) struct Exchange<'s, C> {
    pub(crate) conn: &'s mut C,
    /// The whole frame to write.
    pub(crate) request: &'s [u8],
    /// The request's descriptors, to send with its bytes.
    pub(crate) fds: &'s [OutFd],
    /// Replies may carry descriptors for this client.
    pub(crate) speaks_fds: bool,
    /// How much of `request` went out, for a driver that keeps count
    /// (the async one: its write may be dropped half way).
    pub(crate) written: &'s mut usize,
    /// How long to wait for the reply.
    pub(crate) wait: Wait,
    options: &'s ClientOptions,
}

impl<C: std::fmt::Debug> std::fmt::Debug for Exchange<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("conn", &self.conn)
            .field("request_len", &self.request.len())
            .field("fds", &self.fds.len())
            .field("speaks_fds", &self.speaks_fds)
            .field("written", &self.written)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl<C> Exchange<'_, C> {
    /// What the reply frame says: `payload` is its payload, `None` the
    /// end of the stream before it, or why it could not be read.
    ///
    /// A handshake challenge in its place means that the daemon wants an
    /// authkey the client did not give: that is said, rather than a
    /// malformed message.
    pub(crate) fn reply<R: DeserializeOwned>(
        &self,
        read: std::result::Result<Option<&[u8]>, ReadError>,
        fds: Option<std::result::Result<Vec<OwnedFd>, FdError>>,
        waiting_for: &'static str,
    ) -> Result<Reply<R>> {
        let fds = received(fds)?;
        let payload = read
            .map_err(|e| e.into_error(waiting_for))?
            .ok_or_else(|| Error::protocol("the daemon closed the connection without replying"))?;
        let options = self.options;
        decode_with_fds(fds, || {
            decode_reply(options.codec, payload, &options.decode_limits)
        })
        .map_err(|e| {
            if options.authkey.is_none() && payload.starts_with(anyd_wire::handshake::CHALLENGE) {
                Error::AuthRequired
            } else {
                Error::from_decode(e)
            }
        })
    }
}

impl<C> Session<C> {
    /// A session over a connection that is ready for calls (past the
    /// handshake, if any).
    pub(crate) fn new(conn: C, options: ClientOptions, carries_fds: bool) -> Self {
        let speaks_fds = carries_fds && options.descriptors && options.codec.is_native();
        Session {
            state: State::Open {
                conn,
                phase: Phase::Idle,
            },
            options,
            out: Vec::new(),
            out_fds: Vec::new(),
            speaks_fds,
            reads_fds: false,
            out_reads_fds: false,
            knows: None,
            written: 0,
        }
    }

    /// Whether this client speaks descriptors at all (a Unix socket, a
    /// native codec, and the options allow it).
    pub(crate) fn speaks_fds(&self) -> bool {
        self.speaks_fds
    }

    /// Whether frames of the exchange under way may carry descriptors for
    /// this client: read them with room for descriptors, and decode them
    /// in the frame's context.
    pub(crate) fn reads_fds(&self) -> bool {
        self.reads_fds
    }

    /// Encodes a request with `options` (and this client's descriptors
    /// option) into `out`, and the descriptors its arguments hold into
    /// `out_fds`. `takes_fds`: the reply (or the items) may hold
    /// descriptors for this client, which then asks for them.
    fn encode(
        &mut self,
        endpoint: &str,
        args: &impl Serialize,
        kwargs: &impl Serialize,
        options: RequestOptions,
        takes_fds: bool,
    ) -> Result<()> {
        self.out_reads_fds = self.speaks_fds && takes_fds;
        // The option also says that the request's descriptors are its
        // arguments': a request whose reply takes none but whose arguments
        // turn out to carry some is made again with it (the rare case
        // costs two encodings; the common one, none of the option).
        let mut options = options.with_fds(self.out_reads_fds);
        loop {
            self.clear_out();
            let mark = frame::begin(&mut self.out);
            let (codec, out) = (self.options.codec, &mut self.out);
            let encoded = encode_with_fds(self.speaks_fds, || {
                encode_request_with(codec, endpoint, args, kwargs, &options, out)
            });
            self.out_fds = match encoded {
                Ok(((), fds)) => fds,
                Err(EncodeFdsError::Encode(e)) => return Err(e.into()),
                Err(EncodeFdsError::TooMany(TooManyFds(held))) => {
                    return Err(Error::TooManyDescriptors {
                        held,
                        max: MAX_FDS_PER_FRAME,
                    })
                }
            };
            if !options.fds && !self.out_fds.is_empty() {
                options = options.with_fds(true);
                continue;
            }
            frame::finish(&mut self.out, mark);
            return Ok(());
        }
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Empties `out` for the next frame to send.
    #[inline]
    fn clear_out(&mut self) {
        self.out.clear();
        self.out_fds.clear();
        self.written = 0;
    }

    /// The connection if the session is open, for the driver's settings.
    pub(crate) fn conn(&self) -> Option<&C> {
        match &self.state {
            State::Open { conn, .. } => Some(conn),
            State::Closed => None,
        }
    }

    /// The connection if the session is open, and the options, for
    /// reading a stream's frames.
    pub(crate) fn reading(&mut self) -> Option<(&mut C, &ClientOptions)> {
        match &mut self.state {
            State::Open { conn, .. } => Some((conn, &self.options)),
            State::Closed => None,
        }
    }

    /// Starts a call: the request to send and the connection to send it
    /// on, or first `anyd.version` to ask ([`Start::Ask`]). The call is
    /// under way until [`finish_call`](Self::finish_call) (or
    /// [`abandon`](Self::abandon)).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the arguments cannot be encoded (the session
    /// stays usable); [`Error::Closed`] if the session is closed, or is
    /// now because an earlier call was left half way unsaid (or what one
    /// given up on owes was not settled);
    /// [`Error::Protocol`] if a stream is open (it stays open).
    pub(crate) fn call(
        &mut self,
        endpoint: &str,
        args: &impl Serialize,
        kwargs: &impl Serialize,
        takes_fds: bool,
    ) -> Result<Start<'_, C>> {
        let Ok((options, wait)) = self.extras(self.options.timeout) else {
            return self.ask().map(Start::Ask);
        };
        self.encode(endpoint, args, kwargs, options, takes_fds)?;
        self.start(Call::Unary, wait).map(Start::Call)
    }

    /// Starts a streaming call: as [`call`](Self::call); once its request
    /// is written whole, [`stream_sent`](Self::stream_sent) opens the
    /// stream, until [`stream_step`](Self::stream_step) sees its end. A
    /// request abandoned half written leaves the call under way, which
    /// closes the session at the next call.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call); [`Error::Encode`] for pickle, which has no
    /// streams.
    pub(crate) fn call_stream(
        &mut self,
        endpoint: &str,
        args: &impl Serialize,
        kwargs: &impl Serialize,
        takes_fds: bool,
    ) -> Result<Start<'_, C>> {
        // Not the session's timeout (a wait for replies: items are not);
        // what a handler's call inherits, yes (section 8.3).
        let Ok((options, _)) = self.extras(None) else {
            return self.ask().map(Start::Ask);
        };
        self.encode(endpoint, args, kwargs, options.with_stream(true), takes_fds)?;
        self.start(Call::Stream, Wait::Session).map(Start::Call)
    }

    /// The streaming call's request is written: its frames are to come.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] if no streaming call's request was under way
    /// (the session is closed).
    pub(crate) fn stream_sent(&mut self) -> Result<()> {
        // Sent: the request lets go of its descriptors.
        self.out_fds.clear();
        self.state.advance(
            Phase::Calling(Call::Stream),
            Phase::Streaming(Cancel::NotSent),
            "a stream's request sent",
        )
    }

    /// Whether a stream's frames are still to come.
    pub(crate) fn is_streaming(&self) -> bool {
        matches!(self.state.phase(), Some(Phase::Streaming(_)))
    }

    /// Whether the open stream's CANCEL went out already.
    #[cfg(feature = "async-client")]
    pub(crate) fn is_cancel_sent(&self) -> bool {
        self.state.phase() == Some(Phase::Streaming(Cancel::Sent))
    }

    /// The open stream's CANCEL went out, whole. With no stream open the
    /// daemon got a CANCEL it does not expect: the session closes.
    pub(crate) fn cancel_went_out(&mut self) {
        match &mut self.state {
            State::Open {
                phase: phase @ Phase::Streaming(_),
                ..
            } => *phase = Phase::Streaming(Cancel::Sent),
            state => {
                state.out_of_turn("a cancel sent");
            }
        }
    }

    /// Takes note of one frame of the open stream; `None` at its end (the
    /// session is ready for the next call), the item or error otherwise.
    /// A frame with no stream open is a [`Error::Protocol`] saying so, and
    /// closes the session.
    pub(crate) fn stream_step<T>(&mut self, step: Step<T>) -> Option<Result<T>> {
        let State::Open {
            phase: phase @ Phase::Streaming(_),
            ..
        } = &mut self.state
        else {
            return Some(Err(self.state.out_of_turn("a stream's frame")));
        };
        match step {
            Step::Item(v) => Some(Ok(v)),
            Step::WrongType(e) => Some(Err(e)),
            Step::End => {
                *phase = Phase::Idle;
                None
            }
            Step::Failed(e) => {
                *phase = Phase::Idle;
                Some(Err(e))
            }
            Step::Broken(e) => {
                self.state = State::Closed;
                Some(Err(e))
            }
        }
    }

    /// CANCEL for the open stream, to send on the connection; the frames
    /// up to the stream's end are then still to be read. `None` if no
    /// stream is open.
    pub(crate) fn cancel(&mut self) -> Option<Exchange<'_, C>> {
        if !self.is_streaming() {
            return None;
        }
        self.clear_out();
        let mark = frame::begin(&mut self.out);
        // Streams exist only in codecs that can cancel them.
        encode_cancel(self.options.codec, &mut self.out).ok()?;
        frame::finish(&mut self.out, mark);
        Some(self.exchange(Wait::Session))
    }

    /// Closes the session: a driver that cannot bring it back in step (a
    /// stream that does not end in time) gives up on it.
    pub(crate) fn close(&mut self) {
        self.state = State::Closed;
        self.out_fds.clear();
    }

    /// The exchange of what `out` holds, on the open connection.
    ///
    /// # Panics
    ///
    /// If the session is closed: callers check first.
    fn exchange(&mut self, wait: Wait) -> Exchange<'_, C> {
        let State::Open { conn, .. } = &mut self.state else {
            unreachable!("an exchange on a closed session");
        };
        Exchange {
            conn,
            request: &self.out,
            fds: &self.out_fds,
            speaks_fds: self.reads_fds,
            written: &mut self.written,
            wait,
            options: &self.options,
        }
    }

    /// What a call's exchange gave, as the caller's result; closes the
    /// session when the exchange failed (but for a result of the wrong
    /// type, which leaves the connection in step) or the daemon ended it.
    ///
    /// # Errors
    ///
    /// The call's error; [`Error::Protocol`] if no call was under way
    /// (the session is closed).
    pub(crate) fn finish_call<R>(&mut self, reply: Result<Reply<R>>) -> Result<R> {
        // Sent or not: the request lets go of its descriptors.
        self.out_fds.clear();
        self.state
            .advance(Phase::Calling(Call::Unary), Phase::Idle, "a call's reply")?;
        let reply = match reply {
            Ok(r) => r,
            Err(e @ Error::ResultType(_)) => return Err(e),
            Err(e) => {
                self.state = State::Closed;
                return Err(e);
            }
        };
        match reply {
            Reply::Ok(v) => Ok(v),
            Reply::Err(e) => Err(Error::Remote(e)),
            Reply::EndSession => {
                self.state = State::Closed;
                Err(Error::protocol("the daemon ended the session"))
            }
            _ => Err(Error::protocol("unknown reply")),
        }
    }

    /// Starts the end of the session: SIGENDS to send and its
    /// acknowledgement to read. `None` if there is nothing to end (the
    /// session is closed, or is now because a call was abandoned half
    /// way or a stream is open).
    pub(crate) fn end(&mut self) -> Option<Exchange<'_, C>> {
        self.frame_end();
        self.start(Call::End, Wait::Session).ok()
    }

    /// What the exchange for SIGENDS gave: only its echo ends the session
    /// well. The session is closed either way.
    ///
    /// # Errors
    ///
    /// The exchange's error, a reply other than the echo, or
    /// [`Error::Protocol`] if no end was under way.
    pub(crate) fn finish_end(&mut self, reply: Result<Reply<IgnoredAny>>) -> Result<()> {
        self.state.advance(
            Phase::Calling(Call::End),
            Phase::Idle,
            "the reply to the end of the session",
        )?;
        self.state = State::Closed;
        match reply? {
            Reply::EndSession => Ok(()),
            _ => Err(Error::protocol(
                "the daemon did not acknowledge the end of the session",
            )),
        }
    }

    /// Closes the session and hands over its connection with SIGENDS to
    /// send on it, for a driver that ends the session from elsewhere (the
    /// async client on drop); `None` if the session was closed or not
    /// idle: half a request, or a stream, may be on the wire, and closing
    /// is then the only clean end.
    #[cfg(feature = "async-client")]
    pub(crate) fn take_for_end(&mut self) -> Option<(C, Vec<u8>)> {
        let State::Open {
            conn,
            phase: Phase::Idle,
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            self.out_fds.clear();
            return None;
        };
        self.frame_end();
        Some((conn, std::mem::take(&mut self.out)))
    }

    /// Frames SIGENDS into `out`.
    fn frame_end(&mut self) {
        self.clear_out();
        let mark = frame::begin(&mut self.out);
        encode_end_session(self.options.codec, &mut self.out);
        frame::finish(&mut self.out, mark);
    }

    /// Starts the exchange of what `out` holds, as `call`.
    ///
    /// # Errors
    ///
    /// As [`State::begin`]; nothing is sent, and the request lets go of
    /// its descriptors.
    fn start(&mut self, call: Call, wait: Wait) -> Result<Exchange<'_, C>> {
        if let Err(e) = self.state.begin(call) {
            self.out_fds.clear();
            return Err(e);
        }
        self.reads_fds = self.out_reads_fds;
        Ok(self.exchange(wait))
    }
}

#[cfg(test)]
mod tests;
