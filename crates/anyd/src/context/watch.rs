//! How a call's context learns that its caller no longer wants the reply:
//! by looking at the connection's socket, without waiting, when asked.
//!
//! The frame behind the call is a CANCEL, or the socket's reading side
//! closed (the client closed its connection, or died). Only the frame
//! right behind the call counts (docs/PROTOCOL.md section 8.3): once
//! another frame is seen there, only the socket closing is looked for.
//! Frames are peeked, never read: the session reads them after the call,
//! in order, and a CANCEL then is ignored like one that crossed a reply.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::event::PollFlags;
use tokio::io::unix::AsyncFd;

use crate::sys::CallSocket;

use super::{frame_is_cancel, Cancelled};

/// The most bytes of the frame behind a call that tell whether it is a
/// CANCEL: a 12-byte header (the longest) and JSON's 8-byte `"CANCEL"`.
const CANCEL_FRAME_MAX: usize = 20;

/// What a call's context knows of its caller (see the module docs).
pub(crate) struct Watch {
    /// The connection's socket while the call runs; `None` on a core with
    /// no socket (its tests) and once the call is over, before the session
    /// goes on (what keeps [`CallSocket`] sound).
    fd: Option<CallSocket>,
    /// The bytes of the frame behind the call that the session had read
    /// before the handler ran, while they do not yet tell what it is.
    head: Vec<u8>,
    /// Whether the frame behind the call may still be a CANCEL.
    frames: bool,
    reason: Option<Cancelled>,
    over: bool,
    /// The socket registered with the daemon's runtime, made the first
    /// time a future awaits cancellation: a copy of the descriptor, let go
    /// of when the call ends.
    socket: Option<Arc<AsyncFd<OwnedFd>>>,
}

impl Watch {
    /// A call served on the socket `fd`, with `behind`, the bytes the
    /// session holds after the call's request (the next frame, or part of
    /// it).
    pub(crate) fn new(fd: Option<BorrowedFd<'_>>, behind: &[u8]) -> Watch {
        let mut watch = Watch {
            fd: fd.map(CallSocket::new),
            head: Vec::new(),
            frames: true,
            reason: None,
            over: false,
            socket: None,
        };
        watch.read_behind(behind);
        watch
    }

    /// Takes what the bytes behind the call tell: a CANCEL, another frame,
    /// or not yet enough to say (kept, to be joined to what is peeked).
    fn read_behind(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match frame_is_cancel(bytes) {
            Some(true) => self.cancel(Cancelled::ByCaller),
            Some(false) => self.frames = false,
            None => self.head = bytes[..bytes.len().min(CANCEL_FRAME_MAX)].to_vec(),
        }
    }

    pub(crate) fn reason(&self) -> Option<Cancelled> {
        self.reason
    }

    pub(crate) fn is_over(&self) -> bool {
        self.over
    }

    /// Cancelled, unless it already was, or the call is over.
    pub(crate) fn cancel(&mut self, why: Cancelled) {
        if self.reason.is_none() && !self.over {
            self.reason = Some(why);
        }
    }

    /// The call is over: the socket serves other calls now.
    pub(crate) fn end(&mut self) {
        self.over = true;
        self.fd = None;
        self.socket = None;
    }

    /// Looks at the socket without waiting: hung up, or a CANCEL behind
    /// the call.
    ///
    /// Hung up is the caller gone: the client closed its connection or
    /// died. The reading side closing alone is not: a client may shut its
    /// sending side after its request and still read the reply, and the
    /// daemon shuts the reading side of its connections itself when it
    /// shuts down (calls in progress then finish and get their replies).
    pub(crate) fn look(&mut self) {
        let Some(socket) = self.fd.filter(|_| self.reason.is_none()) else {
            return;
        };
        let Ok(events) = socket.poll_now() else {
            return;
        };
        if events.intersects(PollFlags::HUP | PollFlags::ERR) {
            self.cancel(Cancelled::CallerGone);
            return;
        }
        if !(self.frames && events.contains(PollFlags::IN)) {
            return;
        }
        let mut bytes = [0u8; CANCEL_FRAME_MAX];
        let have = self.head.len();
        bytes[..have].copy_from_slice(&self.head);
        match socket.peek(&mut bytes[have..]) {
            // The reading side closed (see above): no frame will come.
            Ok(0) => self.frames = false,
            Ok(n) => match frame_is_cancel(&bytes[..have + n]) {
                Some(true) => self.cancel(Cancelled::ByCaller),
                Some(false) => self.frames = false,
                None => {}
            },
            Err(_) => {}
        }
    }

    /// The socket as the daemon's runtime watches it (must be called
    /// inside that runtime), or `None` when there is none to watch.
    pub(crate) fn readiness(&mut self) -> Option<Arc<AsyncFd<OwnedFd>>> {
        if self.reason.is_some() {
            return None;
        }
        let socket = self.fd?;
        if self.socket.is_none() {
            let copy = socket.duplicate().ok()?;
            self.socket = crate::sys::watch(copy, tokio::io::Interest::READABLE)
                .ok()
                .map(Arc::new);
        }
        self.socket.clone()
    }
}
