//! The one error type of the crate, for servers and clients alike, and
//! [`WireError`], what the wire layer found behind an
//! [`Error::Protocol`].

use std::io;

use anyd_wire::codec::{DecodeError, EncodeError};
use anyd_wire::frame::FrameError;
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
/// speak the protocol, [`Error::Timeout`] a deadline, [`Error::Config`] the
/// program's settings, [`Error::System`] the operating system.
///
/// Where a lower layer found the fault (the system, the wire layer, the
/// handshake), [`source`](std::error::Error::source) returns its error.
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
    #[error("protocol error: {what}{}", source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Protocol {
        /// What was wrong, or what was under way when it went wrong.
        what: String,
        /// What the wire layer found, when it found the fault.
        #[source]
        source: Option<WireError>,
    },
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
    /// The operating system refused or failed something the daemon needs:
    /// the pid file, the user database, switching to the
    /// [`run_as`](crate::Appd::run_as) user, resolving a host name.
    #[error("cannot {what}: {source}")]
    System {
        /// What was being done, as a phrase after "cannot": `open the pid
        /// file /run/vpnd.pid`, `drop privileges to vpnd (setuid)`.
        what: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The arguments of a call hold more descriptors ([`Fd`](crate::Fd))
    /// than one message may carry; nothing was sent.
    #[error("the arguments hold {held} descriptors; a message may carry at most {max}")]
    TooManyDescriptors {
        /// How many the arguments hold.
        held: usize,
        /// How many a message may carry (16).
        max: usize,
    },
    /// The thread serving a [`Running`](crate::Running) daemon panicked.
    #[error("the server thread panicked: {message}")]
    ServerPanicked {
        /// The panic's message, when it had one.
        message: String,
    },
}

/// What the wire layer found wrong with what a peer sent, behind an
/// [`Error::Protocol`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame header over the limit or invalid, or the stream ending
    /// inside a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message that does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
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

    /// A protocol error with no finding of the wire layer behind it.
    #[cfg(any(feature = "client", feature = "server"))]
    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Error::Protocol {
            what: what.into(),
            source: None,
        }
    }

    /// An operating-system failure while doing `what` (a phrase after
    /// "cannot").
    #[cfg(any(feature = "client", feature = "server"))]
    pub(crate) fn system(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A reply that does not decode: a value of the wrong type is the
    /// caller's [`Error::ResultType`], anything else the peer's fault.
    #[cfg(feature = "client")]
    pub(crate) fn from_decode(e: DecodeError) -> Self {
        match e {
            DecodeError::Result(detail) => Error::ResultType(detail.to_string()),
            other => Error::Protocol {
                what: "cannot decode the reply".into(),
                source: Some(other.into()),
            },
        }
    }

    /// A bad frame from the peer, met `waiting_for` something ("waiting
    /// for the reply", "during the handshake").
    #[cfg(any(feature = "client", feature = "server"))]
    pub(crate) fn from_frame(e: FrameError, waiting_for: &str) -> Self {
        Error::Protocol {
            what: waiting_for.to_owned(),
            source: Some(e.into()),
        }
    }

    /// Turns a read timeout into [`Error::Timeout`], keeping other I/O errors.
    #[cfg(any(feature = "client", feature = "server"))]
    pub(crate) fn from_io(e: io::Error, waiting_for: &'static str) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(waiting_for),
            io::ErrorKind::UnexpectedEof => {
                Error::protocol(format!("connection closed while {waiting_for}"))
            }
            _ => Error::Io(e),
        }
    }
}

/// The message a panic carried, for the log.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use anyd_wire::codec::ArgError;
    use anyd_wire::Codec;

    use super::*;

    #[test]
    fn a_system_failure_keeps_the_system_s_error() {
        let e = Error::system(
            "open pid file /run/x.pid",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(
            e.to_string()
                .starts_with("cannot open pid file /run/x.pid: Permission denied"),
            "{e}"
        );
        let source = e.source().expect("a source");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn a_protocol_error_keeps_what_the_wire_layer_found() {
        let frame = FrameError::TooLarge { len: 9, max: 1 };
        let e = Error::from_frame(frame.clone(), "waiting for the reply");
        assert_eq!(
            e.to_string(),
            "protocol error: waiting for the reply: frame of 9 bytes exceeds the limit of 1 bytes"
        );
        let source = e.source().expect("a source");
        assert!(
            matches!(source.downcast_ref::<WireError>(), Some(WireError::Frame(f)) if *f == frame)
        );

        let malformed = DecodeError::Malformed {
            codec: Codec::Json,
            detail: "not JSON".into(),
        };
        let e = Error::from_decode(malformed);
        assert!(e.to_string().contains("not JSON"), "{e}");
        assert!(matches!(
            e.source().and_then(|s| s.downcast_ref::<WireError>()),
            Some(WireError::Decode(DecodeError::Malformed { .. }))
        ));
    }

    #[test]
    fn a_result_of_the_wrong_type_is_not_a_protocol_error() {
        let e = Error::from_decode(DecodeError::Result(ArgError::Mismatch(
            "not a string".into(),
        )));
        assert!(matches!(e, Error::ResultType(_)), "{e:?}");
    }

    #[test]
    fn a_protocol_error_found_here_has_no_source() {
        let e = Error::protocol("unknown reply");
        assert_eq!(e.to_string(), "protocol error: unknown reply");
        assert!(e.source().is_none());
    }

    #[test]
    fn a_failed_handshake_keeps_its_error() {
        let e = Error::Auth(HandshakeError::MissingChallengePrefix);
        assert!(e
            .source()
            .and_then(|s| s.downcast_ref::<HandshakeError>())
            .is_some());
    }
}
