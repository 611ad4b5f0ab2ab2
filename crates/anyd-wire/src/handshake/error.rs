//! Why a handshake failed.
//!
//! This file owns the error type and the one protocol decision attached to an
//! error: whether `#FAILURE#` goes to the peer before the connection closes.
//! Messages never contain the authkey; the only peer bytes they quote are a
//! digest name, at most [`MAX_NAME_LEN`] bytes, escaped.

use super::digest::MAX_NAME_LEN;
use super::{FAILURE, MAX_HANDSHAKE_FRAME};

/// An authentication failure, or a peer that does not speak the handshake.
///
/// Errors from answering a challenge (`Challenge*`, `UnknownChallengeDigest`)
/// and from the verdict (`Rejected`) are detected on the side that was
/// challenged; errors from checking a reply (`MalformedReply`,
/// `UnknownReplyDigest`, `WrongDigest`, `LegacyRefused`) on the side that
/// challenged, which must tell the peer: see
/// [`send_before_close`](Self::send_before_close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer sent something where a challenge belongs, without the
    /// `#CHALLENGE#` prefix.
    #[error("expected a challenge, got a message without the #CHALLENGE# prefix")]
    MissingChallengePrefix,

    /// The challenge message is neither 20 bytes (legacy) nor starts with a
    /// `{name}` prefix.
    #[error(
        "malformed challenge: {len} bytes, neither a 20-byte legacy challenge \
         nor a {{digest}} prefix"
    )]
    MalformedChallenge {
        /// The length of the challenge message, without the prefix.
        len: usize,
    },

    /// The challenge asks for a digest that is not allowed.
    #[error("the challenge asks for an unsupported digest \"{name}\"")]
    UnknownChallengeDigest {
        /// The name between the braces, escaped as ASCII.
        name: String,
    },

    /// The reply is neither a 16-byte raw MD5 MAC nor starts with a `{name}`
    /// prefix.
    #[error(
        "malformed reply to our challenge: {len} bytes, neither a 16-byte md5 \
         digest nor a {{digest}} prefix"
    )]
    MalformedReply {
        /// The length of the reply.
        len: usize,
    },

    /// The reply uses a digest that is not allowed.
    #[error("the reply uses an unsupported digest \"{name}\"")]
    UnknownReplyDigest {
        /// The name between the braces, escaped as ASCII.
        name: String,
    },

    /// The reply's MAC does not match: the peer does not have our authkey.
    #[error("digest received was wrong")]
    WrongDigest,

    /// The reply is an MD5 MAC and the options require a modern digest.
    #[error("the peer answered with md5, refused because a modern digest is required")]
    LegacyRefused,

    /// The peer did not welcome our reply: it does not have our authkey (or
    /// refuses md5, or did not understand us).
    #[error("digest sent was rejected")]
    Rejected,

    /// A payload arrived when this side expected none (before its challenge
    /// was sent, after the handshake completed or failed).
    #[error("unexpected handshake message of {len} bytes while {state}")]
    Unexpected {
        /// What the state machine was doing.
        state: &'static str,
        /// The length of the payload.
        len: usize,
    },

    /// A handshake payload longer than [`MAX_HANDSHAKE_FRAME`].
    #[error("handshake message of {len} bytes is over the limit of {MAX_HANDSHAKE_FRAME} bytes")]
    FrameTooLarge {
        /// The length of the payload.
        len: usize,
    },
}

impl HandshakeError {
    /// The payload to send to the peer before closing the connection, if the
    /// protocol wants one.
    ///
    /// A side that challenged and got a bad reply sends `#FAILURE#`, so that
    /// the peer learns its answer was rejected (Python does the same for every
    /// error in checking a reply). Every other error closes without a word,
    /// as Python does.
    pub fn send_before_close(&self) -> Option<&'static [u8]> {
        match self {
            HandshakeError::MalformedReply { .. }
            | HandshakeError::UnknownReplyDigest { .. }
            | HandshakeError::WrongDigest
            | HandshakeError::LegacyRefused => Some(FAILURE),
            HandshakeError::MissingChallengePrefix
            | HandshakeError::MalformedChallenge { .. }
            | HandshakeError::UnknownChallengeDigest { .. }
            | HandshakeError::Rejected
            | HandshakeError::Unexpected { .. }
            | HandshakeError::FrameTooLarge { .. } => None,
        }
    }
}

/// A digest name from the peer, fit for an error message: escaped so that
/// control bytes and non-ASCII cannot garble a log line, and bounded even if a
/// caller passes more than a name.
pub(crate) fn escape_name(name: &[u8]) -> String {
    let shown = &name[..name.len().min(MAX_NAME_LEN)];
    let mut out = shown.escape_ascii().to_string();
    if name.len() > shown.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_name_escapes_and_bounds() {
        assert_eq!(escape_name(b"sha1"), "sha1");
        assert_eq!(escape_name(b"a\"\n\xff"), "a\\\"\\n\\xff");
        assert_eq!(escape_name(b"0123456789"), "01234567...");
        assert_eq!(escape_name(b""), "");
    }

    #[test]
    fn only_reply_errors_send_failure() {
        let name = String::from("x");
        let sends = [
            HandshakeError::MalformedReply { len: 1 },
            HandshakeError::UnknownReplyDigest { name: name.clone() },
            HandshakeError::WrongDigest,
            HandshakeError::LegacyRefused,
        ];
        for err in sends {
            assert_eq!(err.send_before_close(), Some(FAILURE), "{err}");
        }
        let silent = [
            HandshakeError::MissingChallengePrefix,
            HandshakeError::MalformedChallenge { len: 1 },
            HandshakeError::UnknownChallengeDigest { name },
            HandshakeError::Rejected,
            HandshakeError::Unexpected {
                state: "done",
                len: 1,
            },
            HandshakeError::FrameTooLarge { len: 300 },
        ];
        for err in silent {
            assert_eq!(err.send_before_close(), None, "{err}");
        }
    }

    #[test]
    fn messages_match_python() {
        // The two messages a Python peer's user would search for.
        assert_eq!(
            HandshakeError::WrongDigest.to_string(),
            "digest received was wrong"
        );
        assert_eq!(
            HandshakeError::Rejected.to_string(),
            "digest sent was rejected"
        );
    }
}
