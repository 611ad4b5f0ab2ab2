//! One connection's thread, from the handshake to the end: the reads
//! (each frame within its deadline), the writes (each due as a whole), and
//! the stream a call starts (`stream`). What each frame means, what to
//! write and when, and why the session ends are the sans-IO core's
//! (`connection`); this module does the I/O it asks for.

use std::io;
use std::os::fd::AsFd;

use crate::admission::Connections;
use crate::budget::Charge;
use crate::error::Error;
use crate::frame_buffer::{ReadError, GROWTH_STEP};
use crate::framed::{self, Framed};
use crate::handshake;
use crate::throttle::throttled;
use crate::transport::{Peer, Stream};

use super::connection::{Behind, Connection, End, Next};
use super::idle::Waiting;
use super::io::{read_failed, write};
use super::{stream, Shared};

/// One session, from the handshake to the end; returns why it ended, for
/// the log.
pub(super) fn serve_connection(
    shared: &Shared,
    id: u64,
    stream: Stream,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
    waiting: &Waiting,
) -> End {
    let config = &shared.config;
    // Every event of this thread, the handlers' own included, is tied to
    // the caller (a subscriber shows the span's fields with each line).
    let span = tracing::info_span!("conn", uid = peer.uid(), gid = peer.gid(), pid = peer.pid());
    let _in_span = span.enter();
    // A client that does not read its replies must not hold this thread
    // (and its buffer) forever.
    let _ = stream.set_write_timeout(config.idle_timeout);
    let mut conn = Framed::new(stream, config.max_frame);
    if !shared.registry.receives_fds() {
        conn.refuse_fds();
    }
    if let (true, Some(budget)) = (conn.takes_fds(), &shared.fd_budget) {
        conn.charge_fds_to(budget.charge(shared.caller(peer)));
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
    // The wait for a request has no read timeout: the idle timeout's
    // keeper cuts it (`idle.rs`, which says why).
    let mut core = Connection::new(shared, peer, runtime);
    let end = serve_frames(&mut conn, &mut core, shared, peer, runtime, waiting);
    // What is left of a stream's source (an iterator still in its `next`)
    // ends on its own, holding this connection's place until it does: the
    // connection's thread and socket go now.
    if let Some(left) = core.detach_source() {
        if let Some(place) = Connections::linger(&shared.conns, id) {
            left.hold(Box::new(place));
        }
    }
    end
}

/// Reads frames and does what the core asks, until the session ends.
fn serve_frames(
    conn: &mut Framed,
    core: &mut Connection<'_>,
    shared: &Shared,
    peer: &Peer,
    runtime: &tokio::runtime::Handle,
    waiting: &Waiting,
) -> End {
    let config = &shared.config;
    let unix = conn.stream.carries_fds();
    loop {
        // Idle or trickling, a client gets `idle_timeout` for the first
        // bytes of its next request (the keeper's) and as much for the
        // rest (the read's).
        let range = match conn.read_frame_idle(config.idle_timeout, None, waiting) {
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
            Err(e) => return read_failed(shared, peer, e),
        };
        // Answer everything already here before writing: pipelined
        // requests cost one write for all their replies (the core says
        // when there is enough to write at once).
        let mut next = Some(range);
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
            let behind = Behind {
                socket: Some(conn.stream.as_fd()),
                bytes: conn.pending(),
            };
            let done = match core.on_frame(conn.payload(range), fds, behind) {
                Next::Continue => Ok(()),
                Next::Flush => write(conn, core, config.idle_timeout),
                Next::Stream => stream::send(conn, core, shared, peer, runtime),
                Next::End { reason, flush } => {
                    if flush {
                        let _ = write(conn, core, config.idle_timeout);
                    }
                    Err(reason)
                }
            };
            if let Err(end) = done {
                return end;
            }
            next = match conn.buffered_frame() {
                Ok(n) => n,
                Err(e) => {
                    let _ = write(conn, core, config.idle_timeout);
                    return read_failed(shared, peer, ReadError::Frame(e));
                }
            };
        }
        if let Err(end) = write(conn, core, config.idle_timeout) {
            return end;
        }
    }
}
