//! `ClientSession`: the blocking client. Standard library sockets only; it
//! starts no runtime and no thread.

use std::io::Write;
use std::time::{Duration, Instant};

use anyd_wire::codec::{decode_reply, encode_end_session, encode_request, DecodeLimits};
use anyd_wire::frame;
use anyd_wire::handshake::HandshakeOptions;
use anyd_wire::message::Reply;
use anyd_wire::Codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};
use crate::framed::{self, Framed};
use crate::transport::Stream;

/// How long `Drop` waits for the daemon to acknowledge the end of the
/// session, so that a daemon which writes that acknowledgement (Python
/// anyd does) does not write into a closed socket.
pub(crate) const END_SESSION_GRACE: Duration = Duration::from_secs(1);

/// Settings for a client connection; every one has a default. Shared by
/// [`ClientSession`] and [`AsyncClientSession`](crate::AsyncClientSession).
///
/// Its `Debug` shows whether a key is set, never the key
/// (`authkey: Some(<hidden>)`), and so does that of every client holding
/// it.
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) authkey: Option<Vec<u8>>,
    pub(crate) handshake: HandshakeOptions,
    pub(crate) codec: Codec,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) retry_for: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_frame: usize,
    pub(crate) decode_limits: DecodeLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            authkey: None,
            handshake: HandshakeOptions::default(),
            codec: Codec::MsgPack,
            connect_timeout: Some(Duration::from_secs(10)),
            retry_for: None,
            timeout: None,
            max_frame: frame::DEFAULT_MAX_FRAME,
            decode_limits: DecodeLimits::default(),
        }
    }
}

/// Stands in for a key in `Debug` output.
struct Hidden;

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field, so that a new one is not forgotten here silently.
        let ClientOptions {
            authkey,
            handshake,
            codec,
            connect_timeout,
            retry_for,
            timeout,
            max_frame,
            decode_limits,
        } = self;
        f.debug_struct("ClientOptions")
            .field("authkey", &authkey.as_ref().map(|_| Hidden))
            .field("handshake", handshake)
            .field("codec", codec)
            .field("connect_timeout", connect_timeout)
            .field("retry_for", retry_for)
            .field("timeout", timeout)
            .field("max_frame", max_frame)
            .field("decode_limits", decode_limits)
            .finish()
    }
}

impl ClientOptions {
    /// Default options: MessagePack, no authkey, a 10 s connect timeout,
    /// no retry, no reply timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key the daemon requires (Python's `authkey`).
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// Refuses daemons that can only prove the key with MD5.
    pub fn require_modern_digest(mut self, yes: bool) -> Self {
        self.handshake.require_modern = yes;
        self
    }

    /// The codec of requests (default MessagePack; Python anyd daemons
    /// need [`Codec::Pickle`]).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How long one connection attempt (and the handshake) may take.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keep retrying for this long while the daemon is not there yet (no
    /// socket file, connection refused): for a client started alongside
    /// its daemon.
    pub fn retry_for(mut self, duration: Duration) -> Self {
        self.retry_for = Some(duration);
        self
    }

    /// How long to wait for each reply (default: forever): for its first
    /// bytes, and for the rest once they came, however they trickle in.
    /// After a timeout the session is closed, since a late reply would
    /// answer the wrong call.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest reply accepted (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects a blocking session with these options.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::connect`].
    pub fn connect(self, address: impl ToAddress) -> Result<ClientSession> {
        ClientSession::connect_with(address, self)
    }
}

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
#[derive(Debug)]
pub struct ClientSession {
    conn: Option<Framed>,
    address: Address,
    options: ClientOptions,
    buf: Vec<u8>,
}

impl ClientSession {
    /// Connects with default [`ClientOptions`].
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] if nothing accepts at the address,
    /// [`Error::Auth`] if the handshake fails, [`Error::Timeout`].
    pub fn connect(address: impl ToAddress) -> Result<Self> {
        Self::connect_with(address, ClientOptions::default())
    }

    /// Connects with the given options.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_with(address: impl ToAddress, options: ClientOptions) -> Result<Self> {
        let address = address.to_address()?;
        let deadline = options.retry_for.map(|d| Instant::now() + d);
        let stream = Stream::connect_until(&address, options.connect_timeout, deadline)?;
        let mut conn = Framed::new(stream, options.max_frame);
        if let Some(key) = &options.authkey {
            let mut side = framed::client_side(key, options.handshake)?;
            framed::handshake(
                &mut conn,
                &mut side,
                options.connect_timeout,
                options.max_frame,
            )?;
        }
        conn.stream.set_read_timeout(options.timeout)?;
        conn.stream.set_write_timeout(options.timeout)?;
        Ok(ClientSession {
            conn: Some(conn),
            address,
            options,
            buf: Vec::new(),
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
        frame_request(self.options.codec, endpoint, &args, &kwargs, &mut self.buf)?;
        let reply = self.exchange(self.options.timeout)?;
        call_outcome(reply, &mut self.conn)
    }

    /// Ends the session: sends SIGENDS and waits for the daemon to
    /// acknowledge it.
    ///
    /// # Errors
    ///
    /// A transport or protocol error; the connection is closed either way.
    pub fn end_session(mut self) -> Result<()> {
        self.end(self.options.timeout)
    }

    /// Sends SIGENDS and waits up to `within` for the acknowledgement.
    fn end(&mut self, within: Option<Duration>) -> Result<()> {
        if self.conn.is_none() {
            return Ok(());
        }
        frame_end_session(self.options.codec, &mut self.buf);
        let reply = self.exchange::<serde::de::IgnoredAny>(within);
        self.conn = None;
        end_outcome(reply?)
    }

    /// Sends `self.buf` and reads one reply, due within `within` as a
    /// whole (the socket's read timeout rests at the session's timeout).
    /// Errors other than a result of the wrong type leave the connection
    /// closed.
    fn exchange<R: DeserializeOwned>(&mut self, within: Option<Duration>) -> Result<Reply<R>> {
        let conn = self.conn.as_mut().ok_or(Error::Closed)?;
        let result = (|| {
            conn.stream
                .write_all(&self.buf)
                .map_err(|e| Error::from_io(e, "sending the request"))?;
            let range = conn
                .read_frame_idle(within)
                .map_err(|e| e.into_error("waiting for the reply"))?
                .ok_or_else(|| {
                    Error::Protocol("the daemon closed the connection without replying".into())
                })?;
            decode_call_reply(&self.options, conn.payload(range))
        })();
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

impl Drop for ClientSession {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn {
            let grace = Some(
                self.options
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

/// Frames a request into `buf`, replacing what it held.
pub(crate) fn frame_request(
    codec: Codec,
    endpoint: &str,
    args: &impl Serialize,
    kwargs: &impl Serialize,
    buf: &mut Vec<u8>,
) -> Result<()> {
    buf.clear();
    let mark = frame::begin(buf);
    encode_request(codec, endpoint, args, kwargs, buf)?;
    frame::finish(buf, mark);
    Ok(())
}

/// Frames the end of the session (SIGENDS) into `buf`, replacing what it
/// held.
pub(crate) fn frame_end_session(codec: Codec, buf: &mut Vec<u8>) {
    buf.clear();
    let mark = frame::begin(buf);
    encode_end_session(codec, buf);
    frame::finish(buf, mark);
}

/// What the reply to a call means for the caller; a daemon that ended the
/// session instead closes `conn`.
pub(crate) fn call_outcome<R, C>(reply: Reply<R>, conn: &mut Option<C>) -> Result<R> {
    match reply {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(Error::Remote(e)),
        Reply::EndSession => {
            *conn = None;
            Err(Error::Protocol("the daemon ended the session".into()))
        }
        _ => Err(Error::Protocol("unknown reply".into())),
    }
}

/// What the reply to SIGENDS means: only its echo ends the session well.
pub(crate) fn end_outcome<R>(reply: Reply<R>) -> Result<()> {
    match reply {
        Reply::EndSession => Ok(()),
        _ => Err(Error::Protocol(
            "the daemon did not acknowledge the end of the session".into(),
        )),
    }
}

/// Decodes the reply to a call. A handshake challenge in its place means
/// the daemon wants an authkey the client did not give: say so, rather
/// than report a malformed message.
pub(crate) fn decode_call_reply<R: DeserializeOwned>(
    options: &ClientOptions,
    payload: &[u8],
) -> Result<Reply<R>> {
    decode_reply(options.codec, payload, &options.decode_limits).map_err(|e| {
        if options.authkey.is_none() && payload.starts_with(anyd_wire::handshake::CHALLENGE) {
            Error::AuthRequired
        } else {
            Error::from_decode(e)
        }
    })
}
