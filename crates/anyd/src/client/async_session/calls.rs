//! What a unary call adds to the session core on tokio: its exchange,
//! counting what of the request went out; the session's timeout; and
//! giving up on a call whose future is dropped half way ([`Pending`]),
//! then settling what that call owes before the next one.

use std::time::Duration;

use anyd_wire::message::Reply;
use serde::de::DeserializeOwned;

use super::{within, AsyncClientSession, AsyncFramed};
use crate::client::session::{Exchange, Session};
use crate::error::{Error, Result};

/// Sends the request and reads one reply. What of the request went out
/// is counted as it goes, so that a call dropped half way knows.
pub(super) async fn exchange<R: DeserializeOwned>(
    ex: Exchange<'_, AsyncFramed>,
) -> Result<Reply<R>> {
    ex.conn.takes_fds = ex.speaks_fds;
    ex.conn
        .stream
        .write_frame_from(ex.request, ex.fds, ex.written)
        .await
        .map_err(|e| Error::from_io(e, "sending the request"))?;
    let read = ex.conn.read_frame().await;
    let fds = ex.conn.frame_fds(ex.speaks_fds);
    let read = read.map(|r| r.map(|range| ex.conn.buf.payload(range)));
    ex.reply(read, fds, "waiting for the reply")
}

impl AsyncClientSession {
    /// The timeout of this session's calls ([`ClientOptions::timeout`](crate::ClientOptions::timeout)).
    pub fn timeout(&self) -> Option<Duration> {
        self.session.options().timeout
    }

    /// Changes the timeout of the calls from here on (`None`: none), as
    /// [`ClientOptions::timeout`](crate::ClientOptions::timeout) sets it when connecting: sent to the
    /// daemon as each call's deadline, and waited for a little longer.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.session.set_timeout(timeout);
    }

    /// Settles what a call given up on owes: the rest of its request and
    /// its CANCEL, if either is still to go, then its reply, read and
    /// discarded, within the session's wait (a blocking handler is
    /// answered when it returns). Cancel safe: what went out is counted,
    /// and a frame is read whole or not at all.
    pub(super) async fn settle_owed(&mut self) -> Result<()> {
        let session = &mut self.session;
        let wait = session.wait();
        let result = within(wait, "waiting for the reply of a call given up on", async {
            while let Some(ex) = session.owed_write() {
                ex.conn
                    .stream
                    .write_frame_from(ex.request, &[], ex.written)
                    .await
                    .map_err(|e| Error::from_io(e, "sending what a call given up on owes"))?;
                session.owed_written();
            }
            if session.owes_reply() {
                let speaks_fds = session.reads_fds();
                let (conn, _) = session.reading().ok_or(Error::Closed)?;
                let read = conn.read_frame().await.map(|r| r.is_some());
                let fds = conn.frame_fds(speaks_fds);
                session.owed_reply(read, fds)?;
            }
            Ok(())
        })
        .await;
        if result.is_err() {
            self.session.close();
        }
        result
    }
}

/// A unary call (or the question asked before one) on its way: dropped
/// before the call is finished, with the future that holds it, it gives
/// the call up and keeps the session ([`Session::abandon`]), and sends
/// what the call owes as far as the socket takes it without waiting, so
/// that the daemon gets the CANCEL now rather than at the next call. A
/// call that finished leaves nothing to give up: the drop does nothing.
pub(super) struct Pending<'s>(pub(super) &'s mut Session<AsyncFramed>);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.0.abandon() {
            send_owed_now(self.0);
        }
    }
}

/// Writes what a call given up on owes (the rest of its request, its
/// CANCEL) as far as the socket takes it without waiting; the next call
/// sends the rest. A broken socket closes the session.
fn send_owed_now(session: &mut Session<AsyncFramed>) {
    while let Some(ex) = session.owed_write() {
        match ex.conn.stream.try_write(&ex.request[*ex.written..]) {
            Ok(n) if n > 0 => {
                *ex.written += n;
                session.owed_written();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // Nothing taken, or a broken socket.
            Ok(_) | Err(_) => {
                session.close();
                return;
            }
        }
    }
}
