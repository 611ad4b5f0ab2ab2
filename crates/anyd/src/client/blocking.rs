//! `ClientSession`: the blocking client. Standard library sockets only; it
//! starts no runtime and no thread.
//!
//! It drives the session core (`session`) with blocking writes and reads
//! over a `Framed` stream, and owns only what blocking I/O adds: the
//! socket's timeouts and the wait for SIGENDS's acknowledgement on drop.

use std::io::Write;
use std::time::{Duration, Instant};

use anyd_wire::message::Reply;
use anyd_wire::Codec;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::session::{Exchange, Session, END_SESSION_GRACE};
use super::ClientOptions;
use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};
use crate::framed::{self, Framed};
use crate::handshake;
use crate::transport::Stream;

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
    session: Session<Framed>,
    address: Address,
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
        let mut conn = Framed::new(stream, options.max_frame);
        if let Some(key) = &options.authkey {
            let mut side = handshake::client_side(key, options.handshake)?;
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
            session: Session::new(conn, options),
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
        let within = self.session.options().timeout;
        let reply = exchange(self.session.call(endpoint, &args, &kwargs)?, within);
        self.session.finish_call(reply)
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
        self.end(self.session.options().timeout)
    }

    /// Sends SIGENDS and waits up to `within` for the acknowledgement; a
    /// session already closed has nothing to end.
    fn end(&mut self, within: Option<Duration>) -> Result<()> {
        let Some(ex) = self.session.end() else {
            return Ok(());
        };
        let reply = exchange::<IgnoredAny>(ex, within);
        self.session.finish_end(reply)
    }
}

impl Drop for ClientSession {
    fn drop(&mut self) {
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

/// Sends the request and reads one reply, due within `within` as a whole
/// (the socket's read timeout rests at the session's timeout).
fn exchange<R: DeserializeOwned>(
    ex: Exchange<'_, Framed>,
    within: Option<Duration>,
) -> Result<Reply<R>> {
    ex.conn
        .stream
        .write_all(ex.request)
        .map_err(|e| Error::from_io(e, "sending the request"))?;
    let read = ex.conn.read_frame_idle(within);
    let read = read.map(|r| r.map(|range| ex.conn.payload(range)));
    ex.reply(read, "waiting for the reply")
}
