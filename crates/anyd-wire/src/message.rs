//! Requests, replies and the end of a session as types
//! ([protocol](crate::protocol) sections 3 and 6), whatever codec they
//! travel in.
//!
//! This module owns the logical messages: a [`Request`] whose arguments are
//! still undecoded ([`Arg`]), so that each handler deserializes them
//! straight into its own parameter types; the [`RequestHead`] a server
//! reads first, to check who may call an endpoint before any argument costs
//! anything; a [`Reply`] and its [`RemoteError`]; the [`Codec`] a message
//! came in; and, in its `options` module, the [`RequestOptions`] a request
//! may carry, with the table of options that the codecs write and read
//! them through. It holds types only and knows no codec's bytes:
//! reading and writing messages, and the methods of [`Arg`] and
//! [`RequestHead`] that need a codec, are [`crate::codec`]'s. It does not
//! own frames either (see [`crate::frame`]), nor the binding of arguments
//! to parameters (the server's job).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Value;

mod options;

#[cfg(test)]
pub(crate) use options::tests as options_tests;
pub(crate) use options::{OptionError, OptionSet, OptionSink, OptionValue};
pub use options::{RequestOptions, TimeoutMs, MAX_TIMEOUT_MS};

/// A payload codec ([protocol section 4](crate::protocol#4-codecs)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// MessagePack, the native default.
    MsgPack,
    /// JSON, for people and for clients in any language.
    Json,
    /// Python pickle, decoded as data only, for Python anyd programs.
    Pickle,
}

impl Codec {
    /// Whether this is a native codec, MessagePack or JSON: one that
    /// carries the extensions of docs/PROTOCOL.md section 8 (request
    /// options, streams, descriptors). Pickle, Python anyd's, is not.
    pub const fn is_native(self) -> bool {
        match self {
            Codec::MsgPack | Codec::Json => true,
            Codec::Pickle => false,
        }
    }
}

/// One argument of a request, not yet deserialized.
///
/// Its methods ([`Arg::deserialize`], [`Arg::type_name`],
/// [`Arg::to_value`]) are defined in [`crate::codec`], which reads each
/// codec's bytes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Arg<'a> {
    /// The MessagePack bytes of the argument.
    MsgPack(&'a [u8]),
    /// The raw JSON text of the argument.
    Json(&'a RawValue),
    /// A value already decoded (pickle has no lazy form).
    Value(Value),
}

/// A decoded request: the endpoint and its still-encoded arguments.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The codec the request came in; the reply must use the same one.
    pub codec: Codec,
    /// The endpoint name.
    pub endpoint: Cow<'a, str>,
    /// Positional arguments, in order: the first `max_args` of them (see
    /// [`RequestHead::decode_args`]); `positional` says how many came.
    pub args: Vec<Arg<'a>>,
    /// How many positional arguments the caller sent, kept or not.
    pub positional: usize,
    /// Keyword arguments, in the order the client sent them: the first
    /// `max_args + 1` of them, enough to find what is wrong with a call
    /// that has too many (one of those is unknown or given twice).
    pub kwargs: Vec<(Cow<'a, str>, Arg<'a>)>,
    /// What the client asks beyond the call ([protocol section 8](crate::protocol#8-extensions)):
    /// a stream of replies, descriptors. Only a native codec can ask; none
    /// is [`RequestOptions::NONE`].
    pub options: RequestOptions,
}

/// What a client sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming<'a> {
    /// A call.
    Request(Request<'a>),
    /// SIGENDS: the client ends the session, in the given codec.
    EndSession(Codec),
    /// CANCEL: the client stops the stream it is receiving, if any
    /// ([protocol section 8.1](crate::protocol#81-streams)).
    Cancel(Codec),
}

/// What a client sent, read only as far as its endpoint name: enough to
/// find the endpoint and check the caller's policy before any argument is
/// decoded (see [`crate::codec::decode_head`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Head<'a> {
    /// A call, its arguments still unread.
    Request(RequestHead<'a>),
    /// SIGENDS: the client ends the session, in the given codec.
    EndSession(Codec),
    /// CANCEL: the client stops the stream it is receiving, if any
    /// ([protocol section 8.1](crate::protocol#81-streams)). Never answered by itself.
    Cancel(Codec),
}

/// A request whose endpoint name is known and whose arguments are not
/// decoded yet: [`RequestHead::decode_args`] reads them.
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// The codec the request came in; the reply must use the same one.
    pub codec: Codec,
    /// The endpoint name.
    pub endpoint: Cow<'a, str>,
    /// The whole payload, which the codec reads the arguments from.
    pub(crate) payload: &'a [u8],
    /// Where the arguments start in `payload`, for a codec that resumes
    /// there (MessagePack); 0 for one that reads the payload again.
    pub(crate) args_at: usize,
    /// The arguments, when finding the endpoint name took decoding them
    /// already (a short pickle in an unusual shape).
    pub(crate) decoded: Option<DecodedArgs>,
}

/// Arguments decoded as values: the positional ones, then the keyword ones.
pub(crate) type DecodedArgs = (Vec<Value>, Vec<(String, Value)>);

/// An error reply: what went wrong, in terms a client in any language can
/// act on ([protocol section 6](crate::protocol#6-errors)).
///
/// It is deliberately not `Serialize`: each codec writes it in its own
/// shape, and an application handler returning `Result<T, RemoteError>`
/// must read as a fallible result, not as a value that happens to be a
/// `Result`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteError {
    /// The error kind, named after Python's exception classes
    /// (`TypeError`, `PermissionError`, ...) or the application's own.
    pub kind: String,
    /// A human-readable message.
    pub message: String,
    /// Optional structured detail.
    #[serde(default)]
    pub data: Option<Value>,
}

impl RemoteError {
    /// An error of `kind` with `message` and no data.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            kind: kind.into(),
            message: message.into(),
            data: None,
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply<T> {
    /// The call succeeded with this value.
    Ok(T),
    /// The call failed.
    Err(RemoteError),
    /// The server acknowledged the end of the session.
    EndSession,
}

/// A decoded frame of a stream ([protocol section 8.1](crate::protocol#81-streams)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamReply<T> {
    /// One item; more frames follow.
    Item(T),
    /// The stream ended well (`{"ok": nil}`); nothing follows.
    End,
    /// The stream failed, or was cancelled, or the call was refused;
    /// nothing follows.
    Err(RemoteError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_codecs_are_msgpack_and_json() {
        assert!(Codec::MsgPack.is_native());
        assert!(Codec::Json.is_native());
        assert!(!Codec::Pickle.is_native());
    }
}
