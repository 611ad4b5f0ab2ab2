//! One connection's session, from the handshake to its end: reading
//! frames within their deadlines, answering pipelined requests in order,
//! writing replies within theirs, and why it ended.

use std::io;
use std::time::Instant;

use anyd_wire::codec::{decode_head, encode_end_session, encode_reply_error, DecodeError};
use anyd_wire::frame;
use anyd_wire::message::Head;

use crate::budget::Charge;
use crate::error::{Error, RemoteError};
use crate::frame_buffer::{ReadError, GROWTH_STEP};
use crate::framed::{self, Attached, Framed};
use crate::handshake;
use crate::throttle::throttled;
use crate::transport::fds::FdError;
use crate::transport::{Peer, Stream};
use std::os::fd::OwnedFd;

use super::{stream, Shared};
use crate::items::Source;
use crate::reply::Outcome;
use anyd_wire::Codec;

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
    /// A payload with no codec to answer in.
    UnreadableMessage,
    /// Reading failed (the peer reset the connection, or shutdown cut it).
    ConnectionError,
    /// Writing replies failed.
    WriteFailed,
    /// The socket could not be set up for the session.
    SocketError,
    /// The daemon shut down while the session received a stream.
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
            End::UnreadableMessage => "unreadable message",
            End::ConnectionError => "connection error",
            End::WriteFailed => "write failed",
            End::SocketError => "socket error",
            End::ShuttingDown => "shutting down",
        }
    }
}

/// One session, from the handshake to the end; returns why it ended, for
/// the log.
pub(super) fn serve_connection(
    shared: &Shared,
    id: u64,
    stream: Stream,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
) -> End {
    let config = &shared.config;
    // A client that does not read its replies must not hold this thread
    // (and its buffer) forever.
    let _ = stream.set_write_timeout(config.idle_timeout);
    let mut conn = Framed::new(stream, config.max_frame);
    let unix = conn.stream.carries_fds();
    if !shared.registry.receives_fds() {
        conn.refuse_fds();
    }
    conn.charge_to(Charge::new(shared.budget.clone(), GROWTH_STEP));
    if let Some(key) = &config.authkey {
        let result = handshake::server_side(key, config.handshake)
            .map_err(Error::from)
            .and_then(|mut side| {
                framed::handshake(
                    &mut conn,
                    &mut side,
                    Some(config.handshake_timeout),
                    config.max_frame,
                )
            });
        if let Err(e) = result {
            let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
            if conns.was_cut(id) {
                // Counted where it was cut, in one throttled line.
                return End::CutInHandshake;
            }
            drop(conns);
            throttled!(
                shared.logs.handshake_failed,
                info,
                peer = peer.address(),
                error = %e,
                "handshake failed"
            );
            return End::HandshakeFailed;
        }
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .authenticated(id);
    }
    if conn.stream.set_read_timeout(config.idle_timeout).is_err() {
        return End::SocketError;
    }
    let mut out = Vec::new();
    // The descriptors some of those replies carry.
    let mut attached = Attached::new();
    // What replies not yet written draw from the memory budget.
    let mut out_charge = Charge::new(shared.budget.clone(), REPLY_ALLOWANCE);
    // Every write of replies is due as a whole within the idle timeout.
    let write = |conn: &mut Framed, out: &[u8], attached: &mut Attached| {
        framed::write_out(&mut conn.stream, out, attached, config.idle_timeout)
    };
    loop {
        // Idle or trickling, a client gets `idle_timeout` for the first
        // bytes of its next request and as much for the rest.
        let range = match conn.read_frame_idle(config.idle_timeout) {
            Ok(Some(r)) => r,
            Ok(None) => return End::ClosedByClient,
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return End::IdleTimeout
            }
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::OutOfMemory => {
                throttled!(
                    shared.logs.over_budget,
                    info,
                    peer = peer.address(),
                    "a frame over the memory budget; closing"
                );
                return End::OverBudget;
            }
            Err(ReadError::Io(_)) => return End::ConnectionError,
            Err(ReadError::Frame(e)) => {
                throttled!(
                    shared.logs.bad_input,
                    info,
                    peer = peer.address(),
                    error = %e,
                    "bad frame; closing"
                );
                return End::BadFrame;
            }
        };
        // Answer everything already here before writing: pipelined
        // requests cost one write for all their replies, up to
        // `FLUSH_AT` bytes of them.
        let mut next = Some(range);
        let mut end = false;
        while let Some(range) = next {
            // A Unix socket carries descriptors both ways; this daemon may
            // take none from callers and still hand them some.
            let fds = unix.then(|| {
                if conn.takes_fds() {
                    conn.take_frame_fds()
                } else {
                    Ok(Vec::new())
                }
            });
            let flow = handle_message(
                shared,
                conn.payload(range),
                fds,
                peer,
                runtime,
                &mut out,
                &mut attached,
            );
            // A reply is counted once made (the handler made its value
            // anyway); one that the budget cannot hold is never sent.
            if out.capacity() > REPLY_ALLOWANCE && !out_charge.hold(out.capacity()) {
                throttled!(
                    shared.logs.over_budget,
                    info,
                    peer = peer.address(),
                    bytes = out.len(),
                    "replies over the memory budget; closing"
                );
                return End::OverBudget;
            }
            match flow {
                Flow::Continue => {
                    if out.len() >= FLUSH_AT || attached.len() >= FLUSH_FDS_AT {
                        if let Err(e) = write(&mut conn, &out, &mut attached) {
                            return write_failed(&e);
                        }
                        out.clear();
                    }
                }
                Flow::End => {
                    end = true;
                    break;
                }
                Flow::Close => {
                    let _ = write(&mut conn, &out, &mut attached);
                    return End::UnreadableMessage;
                }
                Flow::Stream { source, codec, fds } => {
                    let link = stream::Link {
                        shared,
                        conn: &mut conn,
                        peer,
                        out: &mut out,
                        attached: &mut attached,
                        out_charge: &mut out_charge,
                    };
                    if let Err(end) = stream::send(link, codec, source, fds, runtime) {
                        return end;
                    }
                }
            }
            next = match conn.buffered_frame() {
                Ok(n) => n,
                Err(e) => {
                    let _ = write(&mut conn, &out, &mut attached);
                    throttled!(
                        shared.logs.bad_input,
                        info,
                        peer = peer.address(),
                        error = %e,
                        "bad frame; closing"
                    );
                    return End::BadFrame;
                }
            };
        }
        if let Err(e) = write(&mut conn, &out, &mut attached) {
            return write_failed(&e);
        }
        out.clear();
        // Large replies are not kept: their memory goes back, and with it
        // their share of the budget.
        if out.capacity() > REPLY_ALLOWANCE {
            out = Vec::new();
            out_charge.hold(0);
        }
        if end {
            return End::SessionEnded;
        }
    }
}

/// How many bytes of replies to pipelined requests are gathered before
/// they are written. Small replies still go out many to a write, and a
/// client that sends requests by the thousand and reads slowly, or never,
/// holds at most this much of the daemon's memory (plus the reply in the
/// making) while the connection thread waits on the socket: without it, a
/// read buffer full of requests for large replies would have them all
/// made at once.
pub(super) const FLUSH_AT: usize = 64 * 1024;

/// How many replies carrying descriptors are gathered before they are
/// written: each holds up to 16 descriptors open in the daemon until then,
/// and a client that pipelines requests for descriptors and reads slowly
/// must not run the daemon out of them.
const FLUSH_FDS_AT: usize = 4;

/// What a connection's replies may hold without drawing on the memory
/// budget: replies to pipelined small requests are gathered up to
/// `FLUSH_AT`, which the buffer's doubling makes twice that.
pub(super) const REPLY_ALLOWANCE: usize = 2 * FLUSH_AT;

/// Why a write of replies failed.
pub(super) fn write_failed(e: &io::Error) -> End {
    if e.kind() == io::ErrorKind::TimedOut {
        End::ReplyTimeout
    } else {
        End::WriteFailed
    }
}

enum Flow {
    Continue,
    End,
    Close,
    /// A stream to send before the next request is read.
    Stream {
        source: Box<dyn Source>,
        codec: Codec,
        /// Its items may carry descriptors.
        fds: bool,
    },
}

/// Decodes one message and appends the framed reply to `out`, and its
/// descriptors, if it carries any, to `attached`. `fds` are those that
/// came with the message (`None` on a socket that cannot carry any).
fn handle_message(
    shared: &Shared,
    payload: &[u8],
    fds: Option<Result<Vec<OwnedFd>, FdError>>,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
    out: &mut Vec<u8>,
    attached: &mut Attached,
) -> Flow {
    // Only as far as the endpoint name: the policy is checked before any
    // argument is decoded.
    let limits = &shared.config.decode_limits;
    let head = match decode_head(payload, limits) {
        Ok(Head::Request(r)) => r,
        Ok(Head::EndSession(codec)) => {
            let mark = frame::begin(out);
            encode_end_session(codec, out);
            frame::finish(out, mark);
            return Flow::End;
        }
        // A cancel that crossed the end of its stream: nothing to stop,
        // and a cancel is never answered by itself.
        Ok(Head::Cancel(_)) => return Flow::Continue,
        Ok(_) => return Flow::Close,
        Err(e @ (DecodeError::Empty | DecodeError::UnknownCodec(_))) => {
            // No codec to answer in: all we can do is close.
            throttled!(
                shared.logs.bad_input,
                info,
                peer = peer.address(),
                error = %e,
                "unreadable message; closing"
            );
            return Flow::Close;
        }
        Err(e) => {
            // The codec is known, so the client can read an error reply and
            // the session goes on.
            let codec = anyd_wire::codec::detect(payload).unwrap_or(anyd_wire::Codec::MsgPack);
            // The detail may quote the payload: debug only.
            tracing::debug!(peer = peer.address(), error = %e, "malformed request");
            let err = RemoteError::new("ValueError", format!("malformed request: {e}"));
            let mark = frame::begin(out);
            encode_reply_error(codec, &err, out);
            frame::finish(out, mark);
            return Flow::Continue;
        }
    };
    let codec = head.codec;
    // Timing costs two clock reads a call; take them only when logged.
    let started =
        tracing::enabled!(tracing::Level::DEBUG).then(|| (Instant::now(), head.endpoint.clone()));
    let mark = frame::begin(out);
    let mut reply_fds = None;
    let result = shared
        .registry
        .dispatch(head, peer, runtime, limits, fds, out, &mut reply_fds);
    let result = match result {
        Ok(Outcome(Some(source))) => {
            // No reply: the stream's frames follow.
            out.truncate(mark);
            if let Some((_, endpoint)) = started {
                tracing::debug!(endpoint = %endpoint, codec = ?codec, "stream");
            }
            return Flow::Stream {
                source,
                codec,
                fds: reply_fds.is_some(),
            };
        }
        Ok(Outcome(None)) => Ok(()),
        Err(err) => {
            out.truncate(mark + frame::HEADER_LEN);
            encode_reply_error(codec, &err, out);
            Err(err)
        }
    };
    frame::finish(out, mark);
    if let Some(fds) = reply_fds.filter(|fds| !fds.is_empty()) {
        attached.push((mark..out.len(), fds));
    }
    if let Some((started, endpoint)) = started {
        tracing::debug!(
            endpoint = %endpoint,
            codec = ?codec,
            micros = started.elapsed().as_micros() as u64,
            outcome = result.as_ref().err().map_or("ok", |e| e.kind.as_str()),
            "call"
        );
    }
    Flow::Continue
}
