//! `ClientOptions`: the settings of a client connection, the same for
//! both clients. It owns their defaults and how they print (never the
//! key); what they do is the clients' and the session core's.

use std::time::Duration;

use anyd_wire::codec::DecodeLimits;
use anyd_wire::frame;
use anyd_wire::handshake::HandshakeOptions;
use anyd_wire::Codec;

#[cfg(feature = "async-client")]
use super::AsyncClientSession;
use super::ClientSession;
use crate::address::ToAddress;
use crate::error::Result;

/// Settings for a client connection; every one has a default. Shared by
/// [`ClientSession`] and [`AsyncClientSession`], which each connect in
/// the same three ways: with the default options
/// ([`ClientSession::connect`], [`AsyncClientSession::connect`]), with
/// options given ([`ClientSession::connect_with`],
/// [`AsyncClientSession::connect_with`]), or from the options
/// ([`connect`](Self::connect), [`connect_async`](Self::connect_async)),
/// which reads best when setting them:
///
/// ```no_run
/// # async fn run() -> anyd::Result<()> {
/// use std::time::Duration;
/// use anyd::ClientOptions;
///
/// let options = ClientOptions::new().timeout(Some(Duration::from_secs(5)));
/// let blocking = options.clone().connect("unix:/tmp/echod.sock")?;
/// let tokio = options.connect_async("unix:/tmp/echod.sock").await?;
/// # Ok(()) }
/// ```
///
/// Its `Debug` shows whether a key is set, never the key
/// (`authkey: Some(<hidden>)`), and so does that of every client holding
/// it; a client's shows its state (address, connected, a call or stream
/// under way), never the bytes it read or wrote.
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
    pub(crate) descriptors: bool,
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
            descriptors: true,
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
            descriptors,
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
            .field("descriptors", descriptors)
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

    /// Whether requests say that this client speaks descriptors (default
    /// yes), so that [`Fd`](crate::Fd)s travel in arguments and results
    /// ([protocol section 8.2](crate::protocol#82-descriptors)). It matters only over a Unix socket
    /// in MessagePack or JSON, the only ways descriptors travel. Turn it
    /// off for a daemon that implements the protocol without section 8
    /// (it refuses requests with options).
    ///
    /// Even on, a call asks for descriptors only when its result type
    /// (a stream's item type) may hold an `Fd`, or its arguments carry
    /// one. The client looks at the type once per thread: it runs the
    /// type's `Deserialize` on made-up values (zeros and ones, empty
    /// strings, one element of each sequence, every variant of each enum),
    /// in which an `Fd` refuses to be made. What may hold one: an `Fd`
    /// anywhere; a value the type ignores ([`IgnoredAny`](serde::de::IgnoredAny)), which includes a
    /// struct that takes fields it does not know (serde's default: a newer
    /// daemon may add a descriptor there); and whatever the probe cannot
    /// tell about (a type read through `deserialize_any`, such as
    /// [`Value`](crate::Value), an untagged enum or a flattened struct; a
    /// recursive type; one whose `Deserialize` refuses, or panics on, a
    /// made-up value). So plain values, strings, collections and tuples
    /// of them, and `deny_unknown_fields` structs save what descriptors
    /// cost a call: the option's bytes, and reading the reply with
    /// `recvmsg` rather than `recv` (some 0.4 µs of a 10 µs call). A
    /// daemon whose result holds a descriptor for a caller that did not
    /// ask answers with an error reply saying so, never a placeholder
    /// pointing nowhere.
    pub fn descriptors(mut self, yes: bool) -> Self {
        self.descriptors = yes;
        self
    }

    /// How long one connection attempt (and the handshake) may take
    /// (default 10 s; `None` for as long as the system lets a connect
    /// wait and the daemon takes to answer).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keep retrying for this long while the daemon is not there yet (no
    /// socket file, connection refused): for a client started alongside
    /// its daemon. Default: no retry, the same as `Duration::ZERO`;
    /// retrying for ever is not offered, hence a plain `Duration`.
    pub fn retry_for(mut self, duration: Duration) -> Self {
        self.retry_for = Some(duration);
        self
    }

    /// How long each call may take (default `None`: as long as its work
    /// does). The daemon is told (the call's deadline, `timeout_ms`,
    /// docs/PROTOCOL.md section 8.3, when its `anyd.version` lists it): an
    /// async handler still running then is dropped, and the call returns
    /// the daemon's `TimeoutError` ([`Error::Remote`](crate::Error::Remote)),
    /// the session still usable.
    ///
    /// The client waits a little longer than that for the reply (a grace
    /// of a tenth of the timeout, at most a second, plus 50 ms), so that
    /// the daemon's answer comes first: for its first bytes, and for the
    /// rest once they came, however they trickle in. Past that (a blocking
    /// handler still at work, a daemon that does not read the deadline,
    /// Python anyd) the call fails with [`Error::Timeout`](crate::Error::Timeout)
    /// and the session is closed, since a late reply would answer the
    /// wrong call; the daemon takes the closed connection as a cancel.
    /// Change it between calls with
    /// [`ClientSession::set_timeout`]. Streaming calls are not sent it,
    /// and while a stream is open it does not apply: a stream may be
    /// quiet for as long as its daemon has nothing to say.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest reply accepted (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connects a blocking session with these options: the same as
    /// [`ClientSession::connect_with`]`(address, options)`.
    ///
    /// # Errors
    ///
    /// As [`ClientSession::connect`].
    pub fn connect(self, address: impl ToAddress) -> Result<ClientSession> {
        ClientSession::connect_with(address, self)
    }

    /// Connects an async session with these options: the same as
    /// [`AsyncClientSession::connect_with`]`(address, options)`.
    ///
    /// # Errors
    ///
    /// As [`AsyncClientSession::connect`].
    #[cfg(feature = "async-client")]
    pub async fn connect_async(self, address: impl ToAddress) -> Result<AsyncClientSession> {
        AsyncClientSession::connect_with(address, self).await
    }
}

// Both clients against a daemon.
#[cfg(all(test, feature = "server", feature = "async-client"))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Appd;

    #[test]
    fn both_clients_connect_from_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sock");
        let running = Appd::new()
            .api("echo(arg)", |arg: String| arg)
            .bind(path.to_str().unwrap())
            .unwrap()
            .spawn()
            .unwrap();
        let options = ClientOptions::new().timeout(Some(Duration::from_secs(5)));
        let mut blocking = options.clone().connect(running.address()).unwrap();
        assert_eq!(blocking.commit::<String>("echo", ("b",)).unwrap(), "b");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut tokio = options.connect_async(running.address()).await.unwrap();
            assert_eq!(tokio.commit::<String>("echo", ("a",)).await.unwrap(), "a");
            tokio.end_session().await.unwrap();
        });
        blocking.end_session().unwrap();
        running.shutdown().unwrap();
    }
}
