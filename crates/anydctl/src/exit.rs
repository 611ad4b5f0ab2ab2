//! Exit codes: the documented table, which failure gets which code, and
//! the one failure type every command returns. `main` turns a failure into
//! a message on stderr and a process exit status; nothing else exits.

use std::fmt;
use std::io;

use anyd::RemoteError;

use crate::output::text::{escape, escape_line};

/// A documented exit status. The numbers are part of the interface:
/// scripts test them, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exit {
    /// Everything worked.
    Success,
    /// A failure none of the others describes.
    Other,
    /// The command line was wrong (clap uses 2 for its own errors too).
    Usage,
    /// No connection, or it broke.
    Connection,
    /// The handshake failed.
    Auth,
    /// The daemon answered with an error reply.
    Remote,
    /// A deadline passed.
    Timeout,
    /// `schema diff` found a change that breaks old clients.
    Breaking,
    /// SIGINT (Ctrl-C) cancelled a call or a stream: 128 + 2, as a shell
    /// reports a command the signal ended, though anydctl ended it
    /// itself, cleanly.
    Interrupted,
    /// SIGTERM cancelled a call or a stream: 128 + 15.
    Terminated,
}

impl Exit {
    /// Every status with its meaning, for `--help` and the man page.
    pub(crate) const DOCUMENTED: [(Exit, &'static str); 10] = [
        (Exit::Success, "success"),
        (
            Exit::Other,
            "any other failure: a peer that does not speak the protocol, an output error",
        ),
        (
            Exit::Usage,
            "usage: bad arguments, an invalid address, an unreadable --authkey-file",
        ),
        (
            Exit::Connection,
            "connection: nothing accepts at ADDR, or the connection broke",
        ),
        (
            Exit::Auth,
            "authentication: the handshake failed, the daemon or anydctl rejected the key, or \
             the daemon wants a key and none was given",
        ),
        (
            Exit::Remote,
            "remote error: the daemon answered with an error (printed as `Kind: message`), \
             other than TimeoutError",
        ),
        (
            Exit::Timeout,
            "timeout: connecting, the handshake or a reply took longer than --timeout (or 10s \
             to connect without it), the daemon answered TimeoutError (a deadline passed \
             there: the one --timeout sent it, or its own), or a descriptor `call --raw` \
             reads (a pipe, a socket, a device) did not end within --timeout (what came is \
             printed); a key given to a daemon without one ends so",
        ),
        (
            Exit::Breaking,
            "breaking: `schema diff` found a change that breaks clients of the old contract",
        ),
        (
            Exit::Interrupted,
            "interrupted: Ctrl-C (SIGINT) cancelled the call `call` waited for, or the stream \
             it was printing",
        ),
        (
            Exit::Terminated,
            "terminated: SIGTERM cancelled the call `call` waited for, or the stream it was \
             printing",
        ),
    ];

    /// The process exit status.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Other => 1,
            Exit::Usage => 2,
            Exit::Connection => 3,
            Exit::Auth => 4,
            Exit::Remote => 5,
            Exit::Timeout => 6,
            Exit::Breaking => 7,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// The status for an error reply: [`Timeout`](Exit::Timeout) for a
    /// `TimeoutError`, a deadline that passed at the daemon (the one
    /// `--timeout` sent it, which anydctl's own wait would otherwise have
    /// ended with this status), [`Remote`](Exit::Remote) for the rest.
    pub(crate) fn of_remote(r: &RemoteError) -> Exit {
        if r.kind == "TimeoutError" {
            Exit::Timeout
        } else {
            Exit::Remote
        }
    }

    /// The status for a library error.
    pub(crate) fn of(e: &anyd::Error) -> Exit {
        match e {
            anyd::Error::Remote(r) => Exit::of_remote(r),
            anyd::Error::Auth(_) | anyd::Error::AuthRequired => Exit::Auth,
            anyd::Error::Connect { .. } | anyd::Error::Io(_) | anyd::Error::Closed => {
                Exit::Connection
            }
            anyd::Error::Timeout(_) => Exit::Timeout,
            anyd::Error::Config(_) | anyd::Error::Encode(_) => Exit::Usage,
            _ => Exit::Other,
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A usage error found after parsing; clap prints and exits (status 2).
    Usage(Box<clap::Error>),
    /// The daemon answered with an error reply: printed as `Kind: message`.
    Remote(RemoteError),
    /// Anything else: printed as `anydctl: message`.
    Message {
        /// The exit status.
        exit: Exit,
        /// What to print, without the `anydctl: ` prefix; may hold several
        /// lines (hints).
        message: String,
    },
    /// Writing the output failed (`main` keeps quiet about a closed pipe).
    Output(io::Error),
}

impl Failure {
    /// A failure with a status and a message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure::Message {
            exit,
            message: message.into(),
        }
    }

    /// The exit status.
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Failure::Usage(_) => Exit::Usage,
            Failure::Remote(r) => Exit::of_remote(r),
            Failure::Message { exit, .. } => *exit,
            Failure::Output(_) => Exit::Other,
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl From<anyd::Error> for Failure {
    fn from(e: anyd::Error) -> Self {
        match e {
            anyd::Error::Remote(r) => Failure::Remote(r),
            other => Failure::new(Exit::of(&other), other.to_string()),
        }
    }
}

impl Failure {
    /// What went wrong, without the `anydctl: ` prefix, for a report that
    /// lists failures (ping's lines, bench's stopped clients). As the
    /// daemon sent it: escape it to show it as text.
    pub(crate) fn detail(&self) -> String {
        match self {
            Failure::Usage(e) => e.to_string(),
            Failure::Remote(r) => format!("{}: {}", r.kind, r.message),
            Failure::Message { message, .. } => message.clone(),
            Failure::Output(e) => format!("cannot write the output: {e}"),
        }
    }
}

/// How `main` prints a failure on stderr: an error reply as `Kind:
/// message`, anything else as `anydctl: message`; what a daemon may have
/// said with its control characters made visible (`output::text`).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(e) => write!(f, "{e}"),
            Failure::Remote(r) => write!(f, "{}: {}", escape_line(&r.kind), escape(&r.message)),
            other => write!(f, "anydctl: {}", escape(&other.detail())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented_in_order() {
        let codes: Vec<u8> = Exit::DOCUMENTED.iter().map(|(e, _)| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 130, 143]);
    }

    #[test]
    fn library_errors_map_to_their_class() {
        let timeout = anyd::Error::Timeout("waiting for the reply");
        assert_eq!(Exit::of(&timeout), Exit::Timeout);
        let refused = anyd::Error::Connect {
            address: "unix:/x".into(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(Exit::of(&refused), Exit::Connection);
        let remote = anyd::Error::Remote(RemoteError::new("TypeError", "bad"));
        let failure = Failure::from(remote);
        assert_eq!(failure.exit(), Exit::Remote);
        assert_eq!(failure.to_string(), "TypeError: bad");
        // The deadline --timeout sends, passed at the daemon: a timeout,
        // as anydctl's own wait running out is.
        let late = RemoteError::new("TimeoutError", "f() did not finish within its deadline");
        let failure = Failure::from(anyd::Error::Remote(late.clone()));
        assert_eq!(failure.exit(), Exit::Timeout);
        assert_eq!(Exit::of(&anyd::Error::Remote(late)), Exit::Timeout);
        assert!(failure.to_string().starts_with("TimeoutError: "));
        assert_eq!(
            Exit::of(&anyd::Error::Protocol {
                what: "garbage".into(),
                source: None
            }),
            Exit::Other
        );
    }
}
