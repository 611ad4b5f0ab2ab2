//! `ClientSession`: the blocking client. Standard library sockets only; it
//! starts no runtime and no thread.
//!
//! It drives the session core (`session`) with blocking writes and reads
//! over a `Framed` stream, and owns only what blocking I/O adds: the
//! socket's timeouts and the wait for SIGENDS's acknowledgement on drop.

use std::io::Write;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyd_wire::Codec;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::call_cancel::CallSlot;
use super::session::{buffered_item, stream_frame, Session, Start, END_SESSION_GRACE};
use super::ClientOptions;
use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};
use crate::framed::{self, Framed};
use crate::handshake;
use crate::transport::fds::FrameFds;
use crate::transport::Stream;

mod calls;

use calls::{exchange, Released};

/// A session with a daemon: calls go out one at a time, in order.
///
/// ```no_run
/// use anyd::ClientSession;
///
/// let mut session = ClientSession::connect("unix:/tmp/echod.sock")?;
/// let echoed: String = session.commit("echo", ("hello",))?;
/// let kwargs = std::collections::BTreeMap::from([("arg1", 1), ("arg2", 2)]);
/// let sum: i64 = session.commit_with("get_sum", (), kwargs)?;
/// session.end_session()?;
/// # Ok::<(), anyd::Error>(())
/// ```
///
/// Dropping the session ends it too (SIGENDS), best effort.
///
/// # Deadlines and trace context
///
/// With a timeout ([`ClientOptions::timeout`], or
/// [`set_timeout`](Self::set_timeout) between calls) each call tells the
/// daemon when it is due (`timeout_ms`, docs/PROTOCOL.md section 8.3): an
/// async handler still running then is dropped, and the call returns the
/// daemon's `TimeoutError` with the session still usable. A call made
/// while a handler of this process serves a call (a daemon calling
/// another) inherits, with nothing passed by hand, what is left of that
/// call's deadline (when it is sooner than the session's timeout) and its
/// trace context (section 8.4). A daemon is sent only the options it
/// lists in `anyd.version`, which the session asks once, before the first
/// call that would carry one; a session with no timeout, not used inside
/// a handler, never asks and sends nothing new. Python anyd is called
/// as before: pickle carries no options, and the timeout stays this
/// side's.
pub struct ClientSession {
    session: Session<Framed>,
    address: Address,
    /// Shared with the [`CallCanceller`]s, once one was asked for (until
    /// then a call takes no lock).
    calls: Option<Arc<CallSlot>>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ClientSession {
            session,
            address,
            calls,
        } = self;
        let mut d = f.debug_struct("ClientSession");
        d.field("session", session).field("address", address);
        // Kept short: only a session that has cancellers says so.
        if let Some(calls) = calls {
            d.field("calls", calls);
        }
        d.finish()
    }
}

impl ClientSession {
    /// Connects with default [`ClientOptions`]: the same as
    /// [`ClientOptions::new`]`().`[`connect`](ClientOptions::connect)`(address)`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `address` is not an address,
    /// [`Error::Connect`] if nothing accepts at it, [`Error::Auth`] if the
    /// handshake fails, [`Error::Timeout`] if connecting or the handshake
    /// takes longer than [`ClientOptions::connect_timeout`].
    pub fn connect(address: impl ToAddress) -> Result<Self> {
        Self::connect_with(address, ClientOptions::default())
    }

    /// Connects with `options`: the same as
    /// `options.`[`connect`](ClientOptions::connect)`(address)`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_with(address: impl ToAddress, options: ClientOptions) -> Result<Self> {
        let address = address.to_address()?;
        let deadline = options.retry_for.map(|d| Instant::now() + d);
        let stream = Stream::connect_until(&address, options.connect_timeout, deadline)?;
        let mut conn = Framed::for_client(stream, options.max_frame);
        if let Some(key) = &options.authkey {
            let mut side = handshake::client_side(key, options.handshake)?;
            framed::handshake(
                &mut conn,
                &mut side,
                options.connect_timeout,
                options.max_frame,
            )?;
        }
        let wait = options.timeout.map(super::session::local_wait);
        conn.stream.set_read_timeout(wait)?;
        conn.stream.set_write_timeout(wait)?;
        Ok(ClientSession {
            session: {
                let carries_fds = conn.stream.carries_fds();
                let mut session = Session::new(conn, options, carries_fds);
                if !session.speaks_fds() {
                    // Plain reads: nothing can come for this session.
                    if let Some((conn, _)) = session.reading() {
                        conn.refuse_fds();
                    }
                }
                session
            },
            address,
            calls: None,
        })
    }

    /// The daemon's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The codec of this session.
    pub fn codec(&self) -> Codec {
        self.session.options().codec
    }

    /// Calls `endpoint` with positional arguments: a tuple (`("hello",)`,
    /// `(1, 2)`), a `Vec`, or `()` for none.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with the daemon's error reply (the session stays
    /// usable), [`Error::ResultType`] if the result does not fit `R` (usable
    /// too), or a transport, protocol or timeout error (the session is then
    /// closed).
    pub fn commit<R: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.commit_with(endpoint, args, ())
    }

    /// Calls `endpoint` with positional and keyword arguments. Keyword
    /// arguments are a map or a struct: a `BTreeMap` or `HashMap`, or a
    /// `#[derive(Serialize)]` struct.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn commit_with<R: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<R> {
        loop {
            let wait = self.session.wait();
            let takes_fds = crate::fd::may_hold_fd::<R>();
            match self.session.call(endpoint, &args, &kwargs, takes_fds)? {
                Start::Call(ex) => {
                    let reply = exchange(ex, wait, self.calls.as_deref());
                    let result = self.session.finish_call(reply);
                    if self.calls.is_some() && self.session.conn().is_none() {
                        self.close();
                    }
                    return result;
                }
                Start::Ask(ex) => {
                    let reply = exchange(ex, wait, None);
                    self.session.learned(reply)?;
                }
            }
        }
    }

    /// Calls a streaming endpoint with positional arguments: its items as
    /// they come, as an iterator of results that ends with the stream.
    ///
    /// ```no_run
    /// use anyd::ClientSession;
    ///
    /// let mut session = ClientSession::connect("unix:/run/vpnmd.sock")?;
    /// for event in session.stream::<String>("watch", ())? {
    ///     println!("{}", event?);
    /// }
    /// # Ok::<(), anyd::Error>(())
    /// ```
    ///
    /// The iterator borrows the session: calls wait until it is done.
    /// Dropping it before the end cancels the stream (the daemon drops its
    /// producer) and reads what was already on its way, so that the
    /// session serves calls again. While a stream is open,
    /// [`ClientOptions::timeout`] does not apply: a stream may be quiet
    /// for as long as its daemon has nothing to say; stop it from another
    /// thread with [`ItemIter::canceller`].
    ///
    /// An item that does not fit `T` is an [`Error::ResultType`] and the
    /// stream goes on; an error reply ends it, as an [`Error::Remote`] the
    /// iterator yields last; a transport or protocol error also ends it,
    /// and closes the session.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] with the pickle codec (streams need MessagePack
    /// or JSON), [`Error::Closed`] if the session is closed, or a
    /// transport error sending the request. That the endpoint does not
    /// stream, or refuses the call, comes as the iterator's only item.
    pub fn stream<T: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
    ) -> Result<ItemIter<'_, T>> {
        self.stream_with(endpoint, args, ())
    }

    /// Calls a streaming endpoint with positional and keyword arguments.
    ///
    /// # Errors
    ///
    /// As [`stream`](Self::stream).
    pub fn stream_with<T: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<ItemIter<'_, T>> {
        loop {
            let wait = self.session.wait();
            let takes_fds = crate::fd::may_hold_fd::<T>();
            let ex = match self
                .session
                .call_stream(endpoint, &args, &kwargs, takes_fds)?
            {
                Start::Call(ex) => ex,
                Start::Ask(ex) => {
                    let reply = exchange(ex, wait, None);
                    self.session.learned(reply)?;
                    continue;
                }
            };
            ex.conn.read_fds(ex.speaks_fds);
            // No timeout between items: a stream may be quiet for long.
            let sent = ex
                .conn
                .stream
                .set_read_timeout(None)
                .and_then(|()| framed::write_frame(&mut ex.conn.stream, ex.request, ex.fds))
                .map_err(|e| Error::from_io(e, "sending the request"));
            if let Err(e) = sent {
                self.close();
                return Err(e);
            }
            break;
        }
        self.session.stream_sent()?;
        Ok(ItemIter {
            client: self,
            cancel: None,
            _item: PhantomData,
        })
    }

    /// Ends the session: sends SIGENDS and waits for the daemon to
    /// acknowledge it (within [`ClientOptions::timeout`], if set), then
    /// closes the connection. A session already closed (by an earlier
    /// transport, protocol or timeout error) has nothing to end: `Ok`.
    ///
    /// # Errors
    ///
    /// A transport or protocol error, or [`Error::Timeout`]; the
    /// connection is closed either way.
    pub fn end_session(mut self) -> Result<()> {
        self.end(self.session.wait())
    }

    /// Sends SIGENDS and waits up to `within` for the acknowledgement; a
    /// session already closed has nothing to end.
    fn end(&mut self, within: Option<Duration>) -> Result<()> {
        let Some(ex) = self.session.end() else {
            return Ok(());
        };
        let reply = exchange::<IgnoredAny>(ex, within, None);
        self.session.finish_end(reply)
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        // Whatever comes of the end: the cancellers' handle closes with
        // the session, so that the daemon sees it go.
        let _release = self.calls.take().map(Released);
        if let Some(conn) = self.session.conn() {
            let grace = Some(
                self.session
                    .options()
                    .timeout
                    .map_or(END_SESSION_GRACE, |t| t.min(END_SESSION_GRACE)),
            );
            // The whole acknowledgement is due within the grace, however
            // it comes.
            let _ = conn.stream.set_read_timeout(grace);
            let _ = self.end(grace);
        }
    }
}

/// The items of a stream, from [`ClientSession::stream`]: an iterator of
/// `anyd::Result<T>` that ends with the stream.
///
/// Dropping it before the end cancels the stream; [`cancel`](Self::cancel)
/// does the same and says whether the session is still in step.
///
/// Its `Debug` shows the session's state, never an item's bytes.
pub struct ItemIter<'s, T> {
    client: &'s mut ClientSession,
    /// Shared with the cancellers, once one was asked for (until then,
    /// reading an item takes no lock).
    cancel: Option<Arc<CancelState>>,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ItemIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemIter")
            .field("client", &self.client)
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// What a [`Canceller`] shares with its stream.
struct CancelState {
    /// A second handle on the socket while the stream is open, and the
    /// CANCEL frame; `None` once it is over. Ending the stream takes the
    /// lock, so a cancel is written before the stream's end is handled or
    /// not at all: it can never reach the daemon in the middle of the
    /// next call.
    open: Mutex<Option<(Stream, Vec<u8>)>>,
}

impl std::fmt::Debug for CancelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether the stream is still open, not the frame nor the socket:
        // and without waiting for the lock, which a cancel may hold.
        let open = match self.open.try_lock() {
            Ok(open) => Some(open.is_some()),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner().is_some()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        f.debug_struct("CancelState")
            .field("stream_open", &open)
            .finish()
    }
}

/// Cancels a stream from another thread (a signal handler's thread, a
/// timer): see [`ItemIter::canceller`].
#[derive(Debug, Clone)]
pub struct Canceller {
    state: Arc<CancelState>,
}

impl Canceller {
    /// Asks the daemon to stop the stream; the iterator then yields what
    /// was on its way, and a `Cancelled` error. Does nothing if the stream
    /// is over.
    ///
    /// # Errors
    ///
    /// A transport error sending the cancel.
    pub fn cancel(&self) -> Result<()> {
        let mut open = self.state.open.lock().unwrap_or_else(|e| e.into_inner());
        // Once, whatever comes of it: a write that failed half way must
        // not be followed by another.
        if let Some((mut stream, frame)) = open.take() {
            stream
                .write_all(&frame)
                .map_err(|e| Error::from_io(e, "cancelling the stream"))?;
        }
        Ok(())
    }
}

impl<T> ItemIter<'_, T> {
    /// A handle that cancels this stream from another thread.
    ///
    /// # Errors
    ///
    /// A transport error duplicating the socket's descriptor.
    pub fn canceller(&mut self) -> Result<Canceller> {
        let state = self
            .cancel
            .get_or_insert_with(|| {
                Arc::new(CancelState {
                    open: Mutex::new(None),
                })
            })
            .clone();
        let mut open = state.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.is_none() && self.client.session.is_streaming() {
            if let Some(conn) = self.client.session.conn() {
                let stream = conn.stream.try_clone().map_err(Error::from)?;
                let mut frame = Vec::new();
                let mark = anyd_wire::frame::begin(&mut frame);
                anyd_wire::codec::encode_cancel(self.client.codec(), &mut frame)?;
                anyd_wire::frame::finish(&mut frame, mark);
                *open = Some((stream, frame));
            }
        }
        drop(open);
        Ok(Canceller { state })
    }

    /// Cancels the stream and reads what was already on its way, so that
    /// the session serves calls again.
    ///
    /// # Errors
    ///
    /// A transport or protocol error, or the daemon not ending the stream
    /// within a few seconds: the session is then closed.
    pub fn cancel(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.close_canceller();
        if !self.client.session.is_streaming() {
            return Ok(());
        }
        let grace = self
            .client
            .session
            .options()
            .timeout
            .map_or(CANCEL_GRACE, |t| t.max(CANCEL_GRACE));
        let result = (|| {
            let ex = self.client.session.cancel().ok_or(Error::Closed)?;
            ex.conn
                .stream
                .write_all(ex.request)
                .map_err(|e| Error::from_io(e, "cancelling the stream"))?;
            self.client.session.cancel_went_out();
            let deadline = Instant::now() + grace;
            while self.client.session.is_streaming() {
                let speaks_fds = self.client.session.reads_fds();
                let (conn, options) = self.client.session.reading().ok_or(Error::Closed)?;
                let read = conn.read_frame_by(Some(deadline));
                let fds = frame_fds(conn, speaks_fds);
                let read = read.map(|r| r.map(|range| conn.payload(range)));
                let step = stream_frame::<IgnoredAny>(options, read, fds);
                if let Some(Err(e)) = self.client.session.stream_step(step) {
                    if !matches!(e, Error::Remote(_)) {
                        return Err(e);
                    }
                }
            }
            Ok(())
        })();
        if result.is_err() {
            self.client.session.close();
        }
        self.restore_timeout();
        result
    }

    /// Ends the canceller's hold on the socket: from here on it does
    /// nothing.
    fn close_canceller(&self) {
        if let Some(state) = &self.cancel {
            *state.open.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Puts the session's timeout back on the socket.
    fn restore_timeout(&self) {
        if let Some(conn) = self.client.session.conn() {
            let _ = conn.stream.set_read_timeout(self.client.session.wait());
        }
    }
}

impl<T: DeserializeOwned> Iterator for ItemIter<'_, T> {
    type Item = Result<T>;

    // Inlined into the caller's loop, the item is made where the loop
    // keeps it: returned through a frame of its own, it was copied with
    // 16-byte loads of what the decoder had just stored in 8-byte halves,
    // a store-forwarding stall an item (a sixth of the client's cycles on
    // a struct item, `perf annotate`).
    #[inline]
    fn next(&mut self) -> Option<Result<T>> {
        if !self.client.session.is_streaming() {
            return None;
        }
        let speaks_fds = self.client.session.reads_fds();
        let (conn, options) = self.client.session.reading()?;
        // An item already buffered needs none of the steps below: it
        // changes nothing in the session, and no canceller's write can
        // race with it.
        if let Some(item) = buffered_item(conn.buffer_mut(), options) {
            return Some(Ok(item));
        }
        let read = conn.read_frame_by(None);
        let fds = frame_fds(conn, speaks_fds);
        let read = read.map(|r| r.map(|range| conn.payload(range)));
        let step = stream_frame::<T>(options, read, fds);
        // The lock orders this with a canceller's write.
        let guard = self
            .cancel
            .as_ref()
            .map(|c| c.open.lock().unwrap_or_else(|e| e.into_inner()));
        let item = self.client.session.stream_step(step);
        let over = !self.client.session.is_streaming();
        drop(guard);
        if over {
            self.close_canceller();
            self.restore_timeout();
        }
        item
    }
}

impl<T> Drop for ItemIter<'_, T> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// How long a cancelled stream may take to end (the daemon ends it at
/// once; what was on its way is read first), at least.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The descriptors of the frame just read, if the session may take any;
/// those that came to a session that may not are closed here.
fn frame_fds(conn: &mut Framed, speaks_fds: bool) -> Option<FrameFds> {
    if !conn.takes_fds() {
        return None;
    }
    let fds = conn.take_frame_fds();
    speaks_fds.then_some(fds)
}
