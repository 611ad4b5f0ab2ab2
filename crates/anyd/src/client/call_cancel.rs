//! [`CallCanceller`]: cancels, from another thread, the unary call a
//! blocking [`ClientSession`](crate::ClientSession) is waiting on (a
//! signal handler's thread, a timer). The stream's twin is
//! [`Canceller`](crate::Canceller).
//!
//! It owns a second handle on the session's socket and the rule that
//! makes writing on it from elsewhere safe: a CANCEL goes out only while
//! a call's request is out and its reply not yet taken, under the lock
//! the session takes to end the call, so that it always lands right
//! behind that call's request (docs/PROTOCOL.md section 8.3), never in
//! the middle of another frame or behind the next request.

use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::transport::Stream;

/// Cancels the unary call a [`ClientSession`](crate::ClientSession) is
/// waiting on, from another thread: see
/// [`ClientSession::canceller`](crate::ClientSession::canceller).
///
/// ```no_run
/// use std::time::Duration;
///
/// let mut session = anyd::ClientSession::connect("unix:/run/vpnmd.sock")?;
/// let canceller = session.canceller()?;
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_secs(5));
///     // The daemon drops an async handler at once, and replies
///     // `Cancelled`; the session stays usable.
///     let _ = canceller.cancel();
/// });
/// match session.commit::<String>("scan", ()) {
///     Err(anyd::Error::Remote(e)) if e.kind == "Cancelled" => println!("stopped"),
///     other => println!("{other:?}"),
/// }
/// # Ok::<(), anyd::Error>(())
/// ```
///
/// Its `Debug` shows whether a call is under way and was cancelled.
#[derive(Debug, Clone)]
pub struct CallCanceller {
    slot: Arc<CallSlot>,
}

/// What a [`CallCanceller`] shares with its session.
pub(crate) struct CallSlot {
    state: Mutex<SlotState>,
}

struct SlotState {
    /// A second handle on the session's socket; `None` once the session
    /// is closed or dropped, so that its socket closes with it.
    stream: Option<Stream>,
    /// CANCEL, framed in the session's codec, when the daemon reads one
    /// behind a unary call; `None` for one that does not, which is cut
    /// off instead.
    cancel: Option<Vec<u8>>,
    /// A call's request is out and its reply not yet taken.
    in_call: bool,
    /// The call under way was cancelled already: once is enough.
    cancelled: bool,
}

impl std::fmt::Debug for CallSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("CallSlot")
            .field("open", &state.stream.is_some())
            .field("sends_cancel", &state.cancel.is_some())
            .field("in_call", &state.in_call)
            .field("cancelled", &state.cancelled)
            .finish()
    }
}

impl CallSlot {
    /// A slot on `stream`, a second handle on the session's socket, that
    /// cancels with `cancel` (a framed CANCEL) or, without one, by
    /// shutting the connection down.
    pub(crate) fn new(stream: Stream, cancel: Option<Vec<u8>>) -> Arc<CallSlot> {
        Arc::new(CallSlot {
            state: Mutex::new(SlotState {
                stream: Some(stream),
                cancel,
                in_call: false,
                cancelled: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a call's request with `send`, under the lock: a cancel that
    /// comes while it is being written waits for it, and then lands right
    /// behind it (once the daemon has read a request, a cancel is never
    /// too early). Once it is out whole, the slot is armed.
    pub(crate) fn send_armed<T>(
        &self,
        send: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut state = self.lock();
        let sent = send()?;
        state.in_call = true;
        state.cancelled = false;
        Ok(sent)
    }

    /// The call's reply was read (or will not be): from here on a cancel
    /// does nothing, and the next request may go.
    pub(crate) fn disarm(&self) {
        self.lock().in_call = false;
    }

    /// The session is closed or dropped: the second handle closes too,
    /// so that the daemon sees the connection end.
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        state.in_call = false;
        state.stream = None;
    }

    /// Whether the slot still holds the socket (the session is open).
    pub(crate) fn is_open(&self) -> bool {
        self.lock().stream.is_some()
    }
}

impl CallCanceller {
    pub(crate) fn new(slot: Arc<CallSlot>) -> CallCanceller {
        CallCanceller { slot }
    }

    /// Cancels the call the session is waiting on, if any, and says
    /// whether there was one. A daemon that reads a CANCEL behind a unary
    /// call (`anyd.version` says so) is sent one: it drops an async
    /// handler at once and replies `Cancelled`, and a blocking handler
    /// sees it in its [`Context`](crate::Context); the session's call
    /// returns that reply (whatever a blocking handler returns, when it
    /// does), and the session stays usable. Any other daemon (Python
    /// anyd, older ones) is cut off as [`abort`](Self::abort) does.
    ///
    /// # Errors
    ///
    /// A transport error writing the CANCEL (the call goes on, or its
    /// connection is broken and it fails).
    pub fn cancel(&self) -> Result<bool> {
        let mut state = self.slot.lock();
        if !state.in_call {
            return Ok(false);
        }
        if state.cancelled {
            return Ok(true);
        }
        // Once, whatever comes of it: a write that failed half way must
        // not be followed by another.
        state.cancelled = true;
        let SlotState { stream, cancel, .. } = &mut *state;
        let Some(stream) = stream.as_mut() else {
            return Ok(false);
        };
        match cancel {
            Some(frame) => std::io::Write::write_all(stream, frame)
                .map_err(|e| Error::from_io(e, "cancelling the call"))?,
            None => shut(stream)?,
        }
        Ok(true)
    }

    /// Gives up on the call the session is waiting on now, if any, and
    /// says whether there was one: shuts the connection down, so that the
    /// call fails at once (and the session closes). The daemon sees its
    /// client go, which cancels the call as a CANCEL does.
    ///
    /// # Errors
    ///
    /// A transport error shutting the socket down.
    pub fn abort(&self) -> Result<bool> {
        let state = self.slot.lock();
        match (&state.stream, state.in_call) {
            (Some(stream), true) => shut(stream).map(|()| true),
            _ => Ok(false),
        }
    }
}

/// Shuts the connection down both ways.
fn shut(stream: &Stream) -> Result<()> {
    match stream.shutdown(Shutdown::Both) {
        // Already gone: as good.
        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
        r => r.map_err(|e| Error::from_io(e, "cutting the call off")),
    }
}
