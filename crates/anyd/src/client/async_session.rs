//! `AsyncClientSession`: the same client on tokio.
//!
//! It drives the session core (`session`) with tokio writes and reads over
//! an [`AsyncStream`] and a [`FrameBuffer`], and owns only what async I/O
//! adds: timeouts as timers, ending a dropped session from a task, and
//! giving up on a call whose future is dropped half way: the core says
//! what that call still owes (`session::owed`), a drop writes what it can
//! without waiting, and the next call settles the rest (see `# Cancel
//! safety` on [`AsyncClientSession::commit`]).
//!
//! A unary call's exchange is in `calls`, a stream's items in `items`.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Range;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use anyd_wire::handshake::{Handshake, MAX_HANDSHAKE_FRAME};
use anyd_wire::Codec;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::session::{stream_frame, Session, Start, END_SESSION_GRACE};
use super::ClientOptions;
use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};
use crate::frame_buffer::{FrameBuffer, ReadError};
use crate::handshake::{self, HandshakeRun};
use crate::transport::fds::FrameFds;
use crate::transport::AsyncStream;

mod calls;
mod items;

use calls::{exchange, Pending};
pub use items::ItemStream;

/// Runs `f` within `limit`, if any.
async fn within<T>(
    limit: Option<Duration>,
    what: &'static str,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        Some(d) => tokio::time::timeout(d, f)
            .await
            .map_err(|_| Error::Timeout(what))?,
        None => f.await,
    }
}

/// A tokio stream with a read buffer that yields whole frames.
///
/// Its `Debug` shows the socket and how much the buffer holds, never the
/// bytes in it.
struct AsyncFramed {
    stream: AsyncStream,
    buf: FrameBuffer,
    /// Reads take descriptors (a Unix socket, a session that speaks them).
    takes_fds: bool,
}

impl std::fmt::Debug for AsyncFramed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand, so that a field added later is not shown unread.
        let AsyncFramed {
            stream,
            buf,
            takes_fds,
        } = self;
        f.debug_struct("AsyncFramed")
            .field("stream", stream)
            .field("buf", buf)
            .field("takes_fds", takes_fds)
            .finish()
    }
}

impl AsyncFramed {
    /// The next frame, reading as needed; `Ok(None)` is a clean end of
    /// stream between frames. Its payload is `self.buf.payload(range)`
    /// until the next read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a read cancelled before it completes leaves the
    /// buffer as it was, and a frame is consumed only when returned.
    async fn read_frame(&mut self) -> std::result::Result<Option<Range<usize>>, ReadError> {
        std::future::poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// [`read_frame`](Self::read_frame) as a poll, for a `Stream`.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<Option<Range<usize>>, ReadError>> {
        loop {
            if let Some(r) = self.buf.next_frame().map_err(ReadError::Frame)? {
                return Poll::Ready(Ok(Some(r)));
            }
            let spare = self.buf.spare().map_err(ReadError::Io)?;
            let (n, arrival) =
                ready!(self.stream.poll_recv(cx, spare, self.takes_fds)).map_err(ReadError::Io)?;
            if n == 0 {
                return Poll::Ready(
                    self.buf
                        .check_eof()
                        .map(|()| None)
                        .map_err(ReadError::Frame),
                );
            }
            self.buf.filled_with(n, arrival).map_err(ReadError::Io)?;
        }
    }

    /// The descriptors of the frame just read, if the session may take
    /// any; those that came to a session that may not are closed here.
    fn frame_fds(&mut self, speaks_fds: bool) -> Option<FrameFds> {
        if !self.takes_fds {
            return None;
        }
        let fds = self.buf.take_frame_fds();
        speaks_fds.then_some(fds)
    }

    /// Sends what a handshake has to send, if anything.
    async fn send_pending(&mut self, run: &mut HandshakeRun<'_, impl Handshake>) -> Result<()> {
        if !run.to_send().is_empty() {
            self.stream.write_all(run.to_send()).await?;
            run.sent();
        }
        Ok(())
    }

    /// Runs a handshake to completion, its frames capped at
    /// [`MAX_HANDSHAKE_FRAME`], then `max_frame_after`.
    async fn handshake(&mut self, side: &mut impl Handshake, max_frame_after: usize) -> Result<()> {
        self.buf.set_max_frame(MAX_HANDSHAKE_FRAME);
        let mut run = HandshakeRun::start(side);
        self.send_pending(&mut run).await?;
        loop {
            let range = handshake::frame_read(self.read_frame().await)?;
            if let Err(e) = run.receive(self.buf.payload(range)) {
                let _ = self.send_pending(&mut run).await;
                return Err(e);
            }
            self.send_pending(&mut run).await?;
            if run.is_done() {
                self.buf.set_max_frame(max_frame_after);
                return Ok(());
            }
        }
    }
}

/// The async twin of [`ClientSession`](crate::ClientSession), on tokio.
/// It needs a runtime with timers (`enable_time` or `enable_all`) for
/// its timeouts.
///
/// ```no_run
/// # async fn run() -> anyd::Result<()> {
/// use anyd::AsyncClientSession;
///
/// let mut session = AsyncClientSession::connect("unix:/tmp/echod.sock").await?;
/// let echoed: String = session.commit("echo", ("hello",)).await?;
/// session.end_session().await?;
/// # Ok(()) }
/// ```
///
/// [`end_session`](Self::end_session) ends the session and waits for the
/// daemon to acknowledge it. Drop cannot wait: a session dropped inside a
/// tokio runtime ends itself from a task of that runtime (SIGENDS, then the
/// acknowledgement for up to a second), as the blocking client does on
/// drop; dropped outside one, it just closes the connection, which the
/// daemon treats as the end of the session too.
///
/// Deadlines and trace context are sent and inherited as by
/// [`ClientSession`](crate::ClientSession#deadlines-and-trace-context).
#[derive(Debug)]
pub struct AsyncClientSession {
    session: Session<AsyncFramed>,
    address: Address,
}

impl AsyncClientSession {
    /// Connects with default [`ClientOptions`]: the same as
    /// [`ClientOptions::new`]`().`[`connect_async`](ClientOptions::connect_async)`(address)`.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::connect`](crate::ClientSession::connect).
    pub async fn connect(address: impl ToAddress) -> Result<Self> {
        Self::connect_with(address, ClientOptions::default()).await
    }

    /// Connects with `options`: the same as
    /// `options.`[`connect_async`](ClientOptions::connect_async)`(address)`.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::connect`](crate::ClientSession::connect).
    pub async fn connect_with(address: impl ToAddress, options: ClientOptions) -> Result<Self> {
        let address = address.to_address()?;
        let deadline = options.retry_for.map(|d| Instant::now() + d);
        let stream =
            AsyncStream::connect_until(&address, options.connect_timeout, deadline).await?;
        let mut conn = AsyncFramed {
            takes_fds: stream.carries_fds(),
            stream,
            buf: FrameBuffer::for_client(options.max_frame),
        };
        if let Some(key) = &options.authkey {
            let mut side = handshake::client_side(key, options.handshake)?;
            within(
                options.connect_timeout,
                "during the handshake",
                conn.handshake(&mut side, options.max_frame),
            )
            .await?;
        }
        Ok(AsyncClientSession {
            session: {
                let carries_fds = conn.stream.carries_fds();
                let mut session = Session::new(conn, options, carries_fds);
                let speaks_fds = session.speaks_fds();
                if let Some((conn, _)) = session.reading() {
                    conn.takes_fds = speaks_fds;
                }
                session
            },
            address,
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

    /// Calls `endpoint` with positional arguments.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::commit`](crate::ClientSession::commit).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives the call up and keeps the session (a
    /// `select!` branch that lost, a caller's own timeout): a daemon that
    /// reads a CANCEL behind a unary call (`anyd.version` says so) is sent
    /// one at once if the socket takes it without waiting (otherwise
    /// before the next request), and drops an async handler; the next
    /// call first reads and discards the call's reply (waiting for it
    /// within the session's timeout, if it has one: a blocking handler is
    /// answered when it returns), and half a request written is completed
    /// first. A daemon that reads no CANCEL (Python anyd, older ones)
    /// runs the call to its end. Dropping the future is not the same as
    /// [`ClientOptions::timeout`], which also tells the daemon the
    /// deadline.
    pub async fn commit<R: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
    ) -> Result<R> {
        self.commit_with(endpoint, args, ()).await
    }

    /// Calls `endpoint` with positional and keyword arguments.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::commit`](crate::ClientSession::commit).
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn commit_with<R: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<R> {
        self.settle().await?;
        // Dropped before the call is finished (this future with it), it
        // gives the call up.
        let pending = Pending(&mut self.session);
        loop {
            let takes_fds = crate::fd::may_hold_fd::<R>();
            match pending.0.call(endpoint, &args, &kwargs, takes_fds)? {
                Start::Call(ex) => {
                    let limit = ex.limit();
                    let reply = within(limit, "waiting for the reply", exchange(ex)).await;
                    return pending.0.finish_call(reply);
                }
                Start::Ask(ex) => {
                    let limit = ex.limit();
                    let reply = within(limit, "waiting for the reply", exchange(ex)).await;
                    pending.0.learned(reply)?;
                }
            }
        }
    }

    /// Calls a streaming endpoint with positional arguments: its items as
    /// they come, as a [`Stream`](futures_core::Stream) of results that
    /// ends with the stream.
    ///
    /// ```no_run
    /// # async fn run() -> anyd::Result<()> {
    /// use anyd::AsyncClientSession;
    ///
    /// let mut session = AsyncClientSession::connect("unix:/run/vpnmd.sock").await?;
    /// let mut events = session.stream::<String>("watch", ()).await?;
    /// while let Some(event) = events.next().await {
    ///     println!("{}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// The stream borrows the session. Dropping it before the end cancels
    /// the daemon's stream: the drop sends the cancel, and the next call
    /// on the session first reads what was on its way
    /// ([`ItemStream::cancel`] does both, and waits). Items, errors and timeouts as
    /// [`ClientSession::stream`](crate::ClientSession::stream).
    ///
    /// # Errors
    ///
    /// As [`ClientSession::stream`](crate::ClientSession::stream).
    pub async fn stream<T: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
    ) -> Result<ItemStream<'_, T>> {
        self.stream_with(endpoint, args, ()).await
    }

    /// Calls a streaming endpoint with positional and keyword arguments.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::stream`](crate::ClientSession::stream).
    pub async fn stream_with<T: DeserializeOwned>(
        &mut self,
        endpoint: &str,
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<ItemStream<'_, T>> {
        self.settle().await?;
        loop {
            // Dropped while asking the daemon's version, it gives the
            // question up; a streaming request dropped half written
            // closes the session at the next call, as it always has.
            let pending = Pending(&mut self.session);
            let takes_fds = crate::fd::may_hold_fd::<T>();
            let ex = match pending.0.call_stream(endpoint, &args, &kwargs, takes_fds)? {
                Start::Call(ex) => ex,
                Start::Ask(ex) => {
                    let limit = ex.limit();
                    let reply = within(limit, "waiting for the reply", exchange(ex)).await;
                    pending.0.learned(reply)?;
                    continue;
                }
            };
            ex.conn.takes_fds = ex.speaks_fds;
            let sent = within(ex.limit(), "sending the request", async {
                ex.conn
                    .stream
                    .write_frame(ex.request, ex.fds)
                    .await
                    .map_err(|e| Error::from_io(e, "sending the request"))
            })
            .await;
            if let Err(e) = sent {
                pending.0.close();
                return Err(e);
            }
            break;
        }
        self.session.stream_sent()?;
        Ok(ItemStream {
            client: self,
            _item: PhantomData,
        })
    }

    /// Brings the session back in step after a stream that was dropped
    /// before its end (cancels it and reads what was on its way), or a
    /// call given up on (see [`settle_owed`](Self::settle_owed)).
    async fn settle(&mut self) -> Result<()> {
        if self.session.owes() {
            return self.settle_owed().await;
        }
        if !self.session.is_streaming() {
            return Ok(());
        }
        let grace = self
            .session
            .options()
            .timeout
            .map_or(CANCEL_GRACE, |t| t.max(CANCEL_GRACE));
        let session = &mut self.session;
        let result = within(Some(grace), "ending a cancelled stream", async {
            if !session.is_cancel_sent() {
                let ex = session.cancel().ok_or(Error::Closed)?;
                ex.conn
                    .stream
                    .write_all(ex.request)
                    .await
                    .map_err(|e| Error::from_io(e, "cancelling the stream"))?;
                session.cancel_went_out();
            }
            while session.is_streaming() {
                let speaks_fds = session.reads_fds();
                let (conn, options) = session.reading().ok_or(Error::Closed)?;
                let read = conn.read_frame().await;
                let fds = conn.frame_fds(speaks_fds);
                let read = read.map(|r| r.map(|range| conn.buf.payload(range)));
                let step = stream_frame::<IgnoredAny>(options, read, fds);
                if let Some(Err(e)) = session.stream_step(step) {
                    if !matches!(e, Error::Remote(_)) {
                        return Err(e);
                    }
                }
            }
            Ok(())
        })
        .await;
        if result.is_err() {
            self.session.close();
        }
        result
    }

    /// Ends the session: sends SIGENDS and waits for the daemon to
    /// acknowledge it (within [`ClientOptions::timeout`], if set), then
    /// closes the connection.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the session was already closed (by an earlier
    /// transport, protocol or timeout error, or a streaming call whose
    /// request was abandoned half written), where the blocking client's `end_session` has nothing to do
    /// and returns `Ok`; otherwise a transport or protocol error, or
    /// [`Error::Timeout`]. The connection is closed either way.
    pub async fn end_session(mut self) -> Result<()> {
        self.settle().await?;
        let timeout = self.session.wait();
        let ex = self.session.end().ok_or(Error::Closed)?;
        let reply = within(timeout, "waiting for the reply", exchange::<IgnoredAny>(ex)).await;
        // Ended: nothing left for drop to do.
        self.session.finish_end(reply)
    }
}

/// How long a cancelled stream may take to end, at least (see
/// `blocking`'s).
const CANCEL_GRACE: Duration = Duration::from_secs(5);

impl Drop for AsyncClientSession {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Closed, or a call abandoned half way (what it owes is not worth
        // a task's wait): closing is the only clean end, and cancels it.
        let Some((mut conn, out)) = self.session.take_for_end() else {
            return;
        };
        let grace = self
            .session
            .options()
            .timeout
            .map_or(END_SESSION_GRACE, |t| t.min(END_SESSION_GRACE));
        // Detached: if the runtime shuts down first, the task is dropped
        // and the connection closes, which ends the session as well.
        runtime.spawn(async move {
            let _ = tokio::time::timeout(grace, async {
                conn.stream
                    .write_all(&out)
                    .await
                    .map_err(|e| Error::from_io(e, "ending the session"))?;
                let _ = conn.read_frame().await;
                Ok::<(), Error>(())
            })
            .await;
        });
    }
}
