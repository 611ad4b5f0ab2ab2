//! [`ApiError`]: an application's error as it travels to the caller, with
//! a kind. Every feature set has it: an error type is part of an API, and
//! a crate that declares one (an interface a client and a daemon share)
//! builds without the daemon. What a handler's result becomes is
//! `reply.rs`'s.

use crate::error::{Error, RemoteError};

/// An application error that can travel to the client: a kind, a
/// message, and optional data.
///
/// A Python anyd client raises a kind that names one of Python's builtin
/// exception classes (`ValueError`, `PermissionError`, `TimeoutError`, ...)
/// as that class, with the message; any other kind, such as an
/// application's own `VpnError`, as `RuntimeError("VpnError: <message>")`
/// ([protocol section 4.3](crate::protocol#43-pickle-safely)).
///
/// ```
/// use anyd::{ApiError, RemoteError};
///
/// enum VpnError { NotConnected, BadConfig(String) }
///
/// impl ApiError for VpnError {
///     fn into_remote(self) -> RemoteError {
///         match self {
///             VpnError::NotConnected => RemoteError::new("VpnError", "not connected"),
///             VpnError::BadConfig(why) => RemoteError::new("ValueError", why),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned to a caller as an error",
    label = "not an `anyd::ApiError`",
    note = "derive it with `#[derive(anyd::ApiError)]` (kind: the type's name; message: its `Display` text), or implement `anyd::ApiError`"
)]
pub trait ApiError {
    /// The error reply for this error.
    fn into_remote(self) -> RemoteError;
}

impl ApiError for RemoteError {
    fn into_remote(self) -> RemoteError {
        self
    }
}

impl ApiError for std::io::Error {
    /// Kinds as Python names the `OSError` subclasses.
    fn into_remote(self) -> RemoteError {
        use std::io::ErrorKind as K;
        let kind = match self.kind() {
            K::NotFound => "FileNotFoundError",
            K::PermissionDenied => "PermissionError",
            K::AlreadyExists => "FileExistsError",
            K::TimedOut => "TimeoutError",
            K::InvalidInput | K::InvalidData => "ValueError",
            _ => "OSError",
        };
        RemoteError::new(kind, self.to_string())
    }
}

impl ApiError for Box<dyn std::error::Error + Send + Sync> {
    fn into_remote(self) -> RemoteError {
        RemoteError::new("RuntimeError", self.to_string())
    }
}

impl ApiError for Error {
    /// A remote error passes through unchanged (a daemon relaying another
    /// daemon's answer); anything else is a `RuntimeError`.
    fn into_remote(self) -> RemoteError {
        match self {
            Error::Remote(e) => e,
            other => RemoteError::new("RuntimeError", other.to_string()),
        }
    }
}
