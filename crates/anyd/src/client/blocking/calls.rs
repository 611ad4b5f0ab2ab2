//! What a blocking call adds to the session core: its exchange (the
//! request written, the reply read within the session's wait or the
//! call's own), the session's timeout on its socket, and the
//! [`CallCanceller`]s' share of the socket, armed while a call waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyd_wire::message::Reply;
use serde::de::DeserializeOwned;

use super::{frame_fds, ClientSession};
use crate::client::call_cancel::{CallCanceller, CallSlot};
use crate::client::session::{Exchange, Wait};
use crate::error::{Error, Result};
use crate::framed::{self, Framed};

impl ClientSession {
    /// The timeout of this session's calls ([`ClientOptions::timeout`](crate::ClientOptions::timeout)).
    pub fn timeout(&self) -> Option<Duration> {
        self.session.options().timeout
    }

    /// Changes the timeout of the calls from here on (`None`: none), as
    /// [`ClientOptions::timeout`](crate::ClientOptions::timeout) sets it when connecting: sent to the
    /// daemon as each call's deadline, and waited for a little longer.
    ///
    /// # Errors
    ///
    /// A transport error setting the socket's timeouts; the session is
    /// then closed.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.session.set_timeout(timeout);
        let wait = self.session.wait();
        let Some(conn) = self.session.conn() else {
            return Ok(());
        };
        let set = conn
            .stream
            .set_read_timeout(wait)
            .and_then(|()| conn.stream.set_write_timeout(wait));
        if let Err(e) = set {
            self.close();
            return Err(e.into());
        }
        Ok(())
    }

    /// A handle that cancels, from another thread, the call this session
    /// is waiting on (see [`CallCanceller::cancel`]); the same handle
    /// serves every call of the session. Asks the daemon whether it reads
    /// a CANCEL (`anyd.version`), if the session did not ask already.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the session is closed; a transport or
    /// protocol error asking the daemon, or duplicating the socket's
    /// descriptor.
    pub fn canceller(&mut self) -> Result<CallCanceller> {
        if let Some(slot) = self.calls.as_ref().filter(|s| s.is_open()) {
            return Ok(CallCanceller::new(slot.clone()));
        }
        let wait = self.session.wait();
        if let Some(ex) = self.session.ask_if_unknown()? {
            let reply = exchange(ex, wait, None);
            self.session.learned(reply)?;
        }
        let cancels = self.session.daemon_cancels() == Some(true);
        let codec = self.codec();
        let conn = self.session.conn().ok_or(Error::Closed)?;
        let stream = conn.stream.try_clone().map_err(Error::from)?;
        let frame = if cancels {
            let mut frame = Vec::new();
            let mark = anyd_wire::frame::begin(&mut frame);
            anyd_wire::codec::encode_cancel(codec, &mut frame)?;
            anyd_wire::frame::finish(&mut frame, mark);
            Some(frame)
        } else {
            None
        };
        let slot = CallSlot::new(stream, frame);
        self.calls = Some(slot.clone());
        Ok(CallCanceller::new(slot))
    }

    /// Closes the session, and the cancellers' handle on its socket.
    pub(super) fn close(&mut self) {
        self.session.close();
        if let Some(slot) = &self.calls {
            slot.release();
        }
    }
}

/// Releases a [`CallSlot`] when dropped.
pub(super) struct Released(pub(super) Arc<CallSlot>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Sends the request and reads one reply, due within `wait` as a whole
/// (the session's, at which the socket's read timeout rests), or within
/// the exchange's own wait. A canceller's `slot` is armed from when the
/// request is out whole (written under its lock) until the reply is
/// read.
pub(super) fn exchange<R: DeserializeOwned>(
    ex: Exchange<'_, Framed>,
    wait: Option<Duration>,
    slot: Option<&CallSlot>,
) -> Result<Reply<R>> {
    ex.conn.read_fds(ex.speaks_fds);
    let stream = &mut ex.conn.stream;
    let sent = match slot {
        Some(slot) => slot.send_armed(|| framed::write_frame(stream, ex.request, ex.fds)),
        None => framed::write_frame(stream, ex.request, ex.fds),
    };
    sent.map_err(|e| Error::from_io(e, "sending the request"))?;
    let read = match ex.wait {
        Wait::Session => ex.conn.read_frame_idle(ex.limit(), ex.limit(), &()),
        Wait::Call(d) => read_within(ex.conn, d, wait),
    };
    if let Some(slot) = slot {
        slot.disarm();
    }
    let fds = frame_fds(ex.conn, ex.speaks_fds);
    let read = read.map(|r| r.map(|range| ex.conn.payload(range)));
    ex.reply(read, fds, "waiting for the reply")
}

/// One frame due within `d` (a call's own wait, shorter than the
/// session's), then the socket's read timeout back at the session's
/// `wait`.
#[cold]
fn read_within(
    conn: &mut Framed,
    d: Duration,
    wait: Option<Duration>,
) -> std::result::Result<Option<std::ops::Range<usize>>, crate::frame_buffer::ReadError> {
    let read = conn.read_frame_by(Some(Instant::now() + d));
    match conn.stream.set_read_timeout(wait) {
        Ok(()) => read,
        Err(e) => Err(crate::frame_buffer::ReadError::Io(e)),
    }
}
