//! A unary call given up on half way (an async call whose future was
//! dropped) without closing the session: what it still owes the
//! connection before the next request, in order. The rest of its request
//! (half a frame cannot be taken back), a CANCEL right behind it when the
//! daemon reads one (so that the daemon drops the handler: a CANCEL is
//! only valid before any other request, docs/PROTOCOL.md section 8.3),
//! then its one reply, read and discarded. A call none of whose bytes
//! went out owes nothing.
//!
//! No I/O here: the driver writes what [`Session::owed_write`] gives and
//! reads the reply [`Session::owes_reply`] says is due.

use std::os::fd::OwnedFd;

use anyd_wire::codec::encode_cancel;
use anyd_wire::frame;

use super::state::{Call, Owed, Phase, State};
use super::{received, Exchange, Session, Wait};
use crate::error::{Error, Result};
use crate::frame_buffer::ReadError;
use crate::transport::fds::FdError;

impl<C> Session<C> {
    /// The driver gives up on the unary call under way (or the question
    /// asked before it) and keeps the session: from the bytes of the
    /// request that went out ([`Exchange::written`]), what is owed. Says
    /// whether anything is (then [`owed_write`](Self::owed_write) may be
    /// tried at once). Does nothing in any other state.
    pub(crate) fn abandon(&mut self) -> bool {
        let State::Open { phase, .. } = &mut self.state else {
            return false;
        };
        let Phase::Calling(call @ (Call::Unary | Call::Version)) = *phase else {
            return false;
        };
        // Sent with the first bytes, or never: the request lets go of its
        // descriptors.
        self.out_fds.clear();
        if self.written == 0 {
            // Nothing went out: as if the call was never made.
            *phase = Phase::Idle;
            return false;
        }
        *phase = Phase::Owed(Owed::Request);
        if self.written >= self.out.len() {
            self.request_went_out(call == Call::Unary);
        }
        true
    }

    /// The request of a call given up on is out whole: its CANCEL next,
    /// if the daemon reads one (and the call is not the question asked
    /// before one), otherwise its reply.
    fn request_went_out(&mut self, cancel: bool) {
        let cancel = cancel && self.knows.is_some_and(|k| k.cancel);
        let next = if cancel && self.frame_cancel() {
            Owed::Cancel
        } else {
            Owed::Reply
        };
        if let State::Open { phase, .. } = &mut self.state {
            *phase = Phase::Owed(next);
        }
    }

    /// Frames CANCEL into `out`; false for a codec that has none.
    fn frame_cancel(&mut self) -> bool {
        self.clear_out();
        let mark = frame::begin(&mut self.out);
        if encode_cancel(self.options.codec, &mut self.out).is_err() {
            self.clear_out();
            return false;
        }
        frame::finish(&mut self.out, mark);
        true
    }

    /// What is owed to write before anything else (the rest of a request
    /// given up on, or its CANCEL): the bytes of `request` from
    /// `*written` on. `None` when nothing is to be written.
    pub(crate) fn owed_write(&mut self) -> Option<Exchange<'_, C>> {
        match self.state.phase() {
            Some(Phase::Owed(Owed::Request | Owed::Cancel)) => Some(self.exchange(Wait::Session)),
            _ => None,
        }
    }

    /// The driver wrote some of what [`owed_write`](Self::owed_write)
    /// gave (and counted it in its `written`): once all of it is out, the
    /// next thing owed.
    pub(crate) fn owed_written(&mut self) {
        if self.written < self.out.len() {
            return;
        }
        match self.state.phase() {
            Some(Phase::Owed(Owed::Request)) => {
                // Only unary calls are given up on; the question before
                // one goes to a daemon not yet known to read a CANCEL.
                self.request_went_out(true);
            }
            Some(Phase::Owed(Owed::Cancel)) => {
                self.clear_out();
                if let State::Open { phase, .. } = &mut self.state {
                    *phase = Phase::Owed(Owed::Reply);
                }
            }
            _ => {}
        }
    }

    /// Whether anything is owed: the driver settles it before the next
    /// call.
    pub(crate) fn owes(&self) -> bool {
        matches!(self.state.phase(), Some(Phase::Owed(_)))
    }

    /// Whether the reply of a call given up on is to be read next.
    pub(crate) fn owes_reply(&self) -> bool {
        self.state.phase() == Some(Phase::Owed(Owed::Reply))
    }

    /// The reply owed came (`read` is `Ok(true)`: a whole frame, whatever
    /// it says, discarded with its descriptors), or could not be read (the
    /// end of the stream is `Ok(false)`): in step again, or closed.
    ///
    /// # Errors
    ///
    /// Why the reply could not be read (the session is closed), or
    /// [`Error::Protocol`] if no reply was owed.
    pub(crate) fn owed_reply(
        &mut self,
        read: std::result::Result<bool, ReadError>,
        fds: Option<std::result::Result<Vec<OwnedFd>, FdError>>,
    ) -> Result<()> {
        self.state.advance(
            Phase::Owed(Owed::Reply),
            Phase::Idle,
            "the reply of a call given up on",
        )?;
        let came = received(fds).and_then(|_closed| match read {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::protocol(
                "the daemon closed the connection without replying",
            )),
            Err(e) => Err(e.into_error("waiting for the reply of a call given up on")),
        });
        if came.is_err() {
            self.close();
        }
        came
    }
}
