//! `AsyncClientSession`: the same client on tokio.

use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyd_wire::frame::{self, FrameError};
use anyd_wire::handshake::{Handshake, MAX_HANDSHAKE_FRAME};
use anyd_wire::message::Reply;
use anyd_wire::Codec;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::address::{Address, ToAddress};
use crate::client::{
    call_outcome, decode_call_reply, end_outcome, frame_end_session, frame_request, ClientOptions,
    END_SESSION_GRACE,
};
use crate::error::{Error, Result};
use crate::handshake;
use crate::transport::AsyncStream;

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

#[derive(Debug)]
struct AsyncFramed {
    stream: AsyncStream,
    buf: Vec<u8>,
    consumed: usize,
    /// A request was (maybe partly) written and its reply not yet read
    /// whole: set while a call is under way, so that a call whose future
    /// was dropped half way leaves a mark.
    in_flight: bool,
}

impl AsyncFramed {
    async fn read_frame(&mut self, max: usize, what: &'static str) -> Result<Range<usize>> {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        loop {
            match frame::decode(&self.buf, max) {
                Ok(Some(f)) => {
                    self.consumed = f.consumed;
                    return Ok(f.payload);
                }
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
            self.buf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| Error::from_io(e, what))?;
            if n == 0 {
                return Err(match frame::check_eof(self.buf.len()) {
                    Ok(()) => Error::Protocol(format!("the daemon closed the connection {what}")),
                    Err(e @ FrameError::Truncated(_)) => Error::Protocol(e.to_string()),
                    Err(e) => Error::Protocol(e.to_string()),
                });
            }
        }
    }

    async fn send(&mut self, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
        frame::encode(payload, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    async fn handshake(&mut self, side: &mut impl Handshake) -> Result<()> {
        if let Some(first) = side.start() {
            self.send(&first).await?;
        }
        loop {
            let range = self
                .read_frame(MAX_HANDSHAKE_FRAME, "during the handshake")
                .await?;
            let payload = self.buf[range].to_vec();
            match side.receive(&payload) {
                Ok(step) => {
                    if let Some(send) = step.send {
                        self.send(&send).await?;
                    }
                    if step.done {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if let Some(last) = e.send_before_close() {
                        let _ = self.send(last).await;
                    }
                    return Err(Error::Auth(e));
                }
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
#[derive(Debug)]
pub struct AsyncClientSession {
    conn: Option<AsyncFramed>,
    address: Address,
    options: ClientOptions,
    out: Vec<u8>,
}

impl AsyncClientSession {
    /// Connects with default [`ClientOptions`].
    ///
    /// # Errors
    ///
    /// As [`ClientSession::connect`](crate::ClientSession::connect).
    pub async fn connect(address: impl ToAddress) -> Result<Self> {
        Self::connect_with(address, ClientOptions::default()).await
    }

    /// Connects with the given options.
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
            stream,
            buf: Vec::new(),
            consumed: 0,
            in_flight: false,
        };
        if let Some(key) = &options.authkey {
            let mut side = handshake::client_side(key, options.handshake)?;
            within(
                options.connect_timeout,
                "during the handshake",
                conn.handshake(&mut side),
            )
            .await?;
        }
        Ok(AsyncClientSession {
            conn: Some(conn),
            address,
            options,
            out: Vec::new(),
        })
    }

    /// The daemon's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The codec of this session.
    pub fn codec(&self) -> Codec {
        self.options.codec
    }

    /// Calls `endpoint` with positional arguments.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::commit`](crate::ClientSession::commit).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a call whose future is dropped after sending its
    /// request (a `select!` branch that lost, a caller's own timeout) may
    /// leave its reply unread, so the session closes, and the next call
    /// returns [`Error::Closed`]. Use [`ClientOptions::timeout`] to bound
    /// a call instead.
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
        frame_request(self.options.codec, endpoint, &args, &kwargs, &mut self.out)?;
        let reply = self.exchange().await?;
        call_outcome(reply, &mut self.conn)
    }

    /// Ends the session: sends SIGENDS and waits for the acknowledgement.
    ///
    /// # Errors
    ///
    /// A transport or protocol error; the connection is closed either way.
    pub async fn end_session(mut self) -> Result<()> {
        frame_end_session(self.options.codec, &mut self.out);
        let reply = self.exchange::<serde::de::IgnoredAny>().await;
        // Ended: nothing left for drop to do.
        self.conn = None;
        end_outcome(reply?)
    }

    async fn exchange<R: DeserializeOwned>(&mut self) -> Result<Reply<R>> {
        let conn = self.conn.as_mut().ok_or(Error::Closed)?;
        if conn.in_flight {
            // An earlier call's future was dropped between its request and
            // its reply: that reply would answer this call.
            self.conn = None;
            return Err(Error::Closed);
        }
        let options = &self.options;
        let out = &self.out;
        let result = within(options.timeout, "waiting for the reply", async {
            conn.in_flight = true;
            conn.stream
                .write_all(out)
                .await
                .map_err(|e| Error::from_io(e, "sending the request"))?;
            let range = conn
                .read_frame(options.max_frame, "waiting for the reply")
                .await?;
            conn.in_flight = false;
            decode_call_reply(options, &conn.buf[range])
        })
        .await;
        match result {
            Ok(r) => Ok(r),
            Err(e @ Error::ResultType(_)) => Err(e),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

impl Drop for AsyncClientSession {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if conn.in_flight {
            // Half a request may be on the wire: closing is the only clean
            // end.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut out = std::mem::take(&mut self.out);
        frame_end_session(self.options.codec, &mut out);
        let max_frame = self.options.max_frame;
        let grace = self
            .options
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
                conn.read_frame(max_frame, "ending the session").await?;
                Ok::<(), Error>(())
            })
            .await;
        });
    }
}
