//! [`ErrorKinds`]: the kinds of error reply an error type becomes, so
//! that a contract document can list them.

use super::ErrorKind;
use crate::error::{Error, RemoteError};

/// The kinds of error reply an [`ApiError`](trait@crate::ApiError) type
/// becomes, for the contract document: a method of an
/// [`#[anyd::interface]`](macro@crate::interface) that returns
/// `Result<T, E>` lists `E`'s.
///
/// [`#[derive(ApiError)]`](derive@crate::ApiError) implements it, with the
/// kinds of the type and its variants: a variant's own kind means what
/// its doc comment says, the type's kind what the type's says. A type that
/// may become any kind ([`RemoteError`], [`Error`]) gives `None`.
///
/// ```
/// use anyd::contract::{ErrorKind, ErrorKinds};
///
/// /// A tunnel's own failures.
/// #[derive(Debug, anyd::ApiError)]
/// enum VpnError {
///     /// The tunnel is not up.
///     NotConnected,
///     /// The profile's name or file is wrong.
///     #[api_error(kind = "ValueError")]
///     BadProfile(String),
/// }
/// # impl std::fmt::Display for VpnError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { Ok(()) }
/// # }
///
/// assert_eq!(
///     VpnError::error_kinds(),
///     Some(vec![
///         ErrorKind::new("VpnError", "A tunnel's own failures."),
///         ErrorKind::new("ValueError", "The profile's name or file is wrong."),
///     ])
/// );
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name its error kinds, which an interface's errors must",
    label = "no `anyd::contract::ErrorKinds` for `{Self}`",
    note = "derive `anyd::ApiError` on it (which names them), or implement `anyd::contract::ErrorKinds`"
)]
pub trait ErrorKinds {
    /// The kinds, each once, in the order the type declares them; `None`
    /// when any kind may come.
    fn error_kinds() -> Option<Vec<ErrorKind>>;
}

impl ErrorKinds for RemoteError {
    fn error_kinds() -> Option<Vec<ErrorKind>> {
        None
    }
}

impl ErrorKinds for Error {
    /// A remote error passes through with its kind: any kind.
    fn error_kinds() -> Option<Vec<ErrorKind>> {
        None
    }
}

impl ErrorKinds for std::io::Error {
    /// The kinds `ApiError` gives I/O errors, as Python names them.
    fn error_kinds() -> Option<Vec<ErrorKind>> {
        Some(vec![
            ErrorKind::new("FileNotFoundError", "a file or directory is not there"),
            ErrorKind::new("PermissionError", "the daemon may not do it"),
            ErrorKind::new("FileExistsError", "a file or directory is already there"),
            ErrorKind::new("TimeoutError", "an operation took too long"),
            ErrorKind::new("ValueError", "invalid input or data"),
            ErrorKind::new("OSError", "any other I/O error"),
        ])
    }
}

impl ErrorKinds for Box<dyn std::error::Error + Send + Sync> {
    fn error_kinds() -> Option<Vec<ErrorKind>> {
        Some(vec![ErrorKind::new("RuntimeError", "")])
    }
}

impl ErrorKinds for std::convert::Infallible {
    fn error_kinds() -> Option<Vec<ErrorKind>> {
        Some(Vec::new())
    }
}

/// Keeps the first of each kind, in order: what the derive's kinds go
/// through, since variants may share one.
#[doc(hidden)]
pub fn dedup(kinds: Vec<ErrorKind>) -> Vec<ErrorKind> {
    let mut out: Vec<ErrorKind> = Vec::with_capacity(kinds.len());
    for k in kinds {
        match out.iter_mut().find(|o| o.kind == k.kind) {
            Some(o) if o.description.is_empty() => o.description = k.description,
            Some(_) => {}
            None => out.push(k),
        }
    }
    out
}
