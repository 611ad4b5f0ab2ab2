//! The one error type of the crate, for servers and clients alike.

use std::io;

use anyd_wire::codec::{DecodeError, EncodeError};
use anyd_wire::handshake::HandshakeError;

pub use anyd_wire::message::RemoteError;

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when serving or calling an anyd API.
///
/// The variants separate who is at fault, so that a caller can react:
/// [`Error::Remote`] is the daemon's answer (the call reached it and it
/// said no), [`Error::Auth`] a wrong key, [`Error::Connect`] and
/// [`Error::Io`] the transport, [`Error::Protocol`] a peer that does not
/// speak the protocol, [`Error::Timeout`] a deadline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered the call with an error reply.
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// The handshake failed: a wrong key on either side, or a peer that
    /// wants an authkey when none was given (or the reverse).
    #[error("authentication failed: {0}")]
    Auth(#[source] HandshakeError),
    /// The daemon requires an authkey and the client has none: it
    /// answered the first call with a handshake challenge.
    #[error("the daemon requires an authkey (it answered with a challenge); connect with ClientOptions::authkey")]
    AuthRequired,
    /// No connection could be made to the address.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address, as given.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon could not listen on its address (a missing directory,
    /// no permission, an address not on this host).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address, as given.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A deadline passed: connecting, the handshake, or waiting for a reply.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// Reading or writing the connection failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not the protocol, or closed the
    /// connection in the middle of an exchange.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The reply was well formed but its value does not fit the type the
    /// caller asked for.
    #[error("unexpected result type: {0}")]
    ResultType(String),
    /// The arguments could not be encoded.
    #[error("cannot encode the call: {0}")]
    Encode(#[from] EncodeError),
    /// The session was ended (by `end_session` or after an error that
    /// broke the connection); connect again.
    #[error("the session is closed")]
    Closed,
    /// A daemon already serves the address.
    #[error("another daemon is already running at {0}")]
    AlreadyRunning(String),
    /// The address or the configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

impl Error {
    /// The remote error, if the daemon answered with one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn from_decode(e: DecodeError) -> Self {
        match e {
            DecodeError::Result(detail) => Error::ResultType(detail),
            other => Error::Protocol(other.to_string()),
        }
    }

    /// Turns a read timeout into [`Error::Timeout`], keeping other I/O errors.
    pub(crate) fn from_io(e: io::Error, waiting_for: &'static str) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(waiting_for),
            io::ErrorKind::UnexpectedEof => {
                Error::Protocol(format!("connection closed while {waiting_for}"))
            }
            _ => Error::Io(e),
        }
    }
}
