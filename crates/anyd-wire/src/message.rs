//! Requests, replies and the end of a session, in any of the three codecs
//! (docs/PROTOCOL.md sections 3 and 4).
//!
//! This module owns the logical messages and codec dispatch: which codec a
//! payload is in, and turning a payload into a [`Request`] whose arguments
//! are still undecoded ([`Arg`]), so that each handler deserializes them
//! straight into its own parameter types. It does not own frames (see
//! [`crate::frame`]) or the binding of arguments to parameters (the server's
//! job).

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codec::{json, msgpack, pickle};
use crate::{Codec, Value};

/// One argument of a request, not yet deserialized.
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

impl Arg<'_> {
    /// Deserializes the argument into `T`.
    ///
    /// # Errors
    ///
    /// A description of the mismatch, for a `TypeError` reply.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        match self {
            Arg::MsgPack(b) => msgpack::decode_arg(b),
            Arg::Json(raw) => json::decode_arg(raw),
            Arg::Value(v) => crate::from_value(v).map_err(|e| e.to_string()),
        }
    }

    /// Converts the argument into a dynamic [`Value`], for generic tools.
    ///
    /// # Errors
    ///
    /// As [`Arg::deserialize`].
    pub fn to_value(&self) -> Result<Value, String> {
        match self {
            Arg::Value(v) => Ok(v.clone()),
            other => other.deserialize(),
        }
    }
}

/// A decoded request: the endpoint and its still-encoded arguments.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The codec the request came in; the reply must use the same one.
    pub codec: Codec,
    /// The endpoint name.
    pub endpoint: Cow<'a, str>,
    /// Positional arguments, in order.
    pub args: Vec<Arg<'a>>,
    /// Keyword arguments, in the order the client sent them.
    pub kwargs: Vec<(Cow<'a, str>, Arg<'a>)>,
}

/// What a client sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming<'a> {
    /// A call.
    Request(Request<'a>),
    /// SIGENDS: the client ends the session, in the given codec.
    EndSession(Codec),
}

/// An error reply: what went wrong, in terms a client in any language can
/// act on (docs/PROTOCOL.md section 6).
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

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is empty: no codec can be detected.
    #[error("empty message")]
    Empty,
    /// The first byte selects no codec.
    #[error("unknown codec: a message cannot start with byte {0:#04x}")]
    UnknownCodec(u8),
    /// The payload is not a valid message in its codec.
    #[error("malformed {codec:?} message: {detail}")]
    Malformed {
        /// The codec the payload was detected as.
        codec: Codec,
        /// What is wrong.
        detail: String,
    },
    /// A pickle the safe decoder refuses.
    #[error("pickle refused: {0}")]
    Pickle(#[from] pickle::PickleError),
    /// The reply is well formed but its value does not fit the type asked for.
    #[error("unexpected result type: {0}")]
    Result(String),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Serde refused the value (for example a map with non-string keys in
    /// JSON).
    #[error("cannot serialize: {0}")]
    Serialize(String),
    /// Positional arguments must serialize as a sequence: a tuple such as
    /// `("hello",)`, a `Vec`, or `()` for none.
    #[error("arguments must be a tuple or a list, for example (\"hello\",), or () for none")]
    ArgsNotASequence,
    /// Keyword arguments must serialize as a map with string keys.
    #[error("keyword arguments must be a map or a struct, or () for none")]
    KwargsNotAMap,
}

/// Limits applied while decoding untrusted payloads.
#[derive(Debug, Clone, Default)]
pub struct DecodeLimits {
    /// Bounds on pickle nesting, memo and size.
    pub pickle: pickle::PickleLimits,
}

/// Detects the codec of a payload from its first byte (docs/PROTOCOL.md section 4).
///
/// # Errors
///
/// [`DecodeError::Empty`] or [`DecodeError::UnknownCodec`].
pub fn detect(payload: &[u8]) -> Result<Codec, DecodeError> {
    match payload.first() {
        None => Err(DecodeError::Empty),
        Some(b) if msgpack::FIRST_BYTES.contains(b) => Ok(Codec::MsgPack),
        Some(b) if json::FIRST_BYTES.contains(b) => Ok(Codec::Json),
        Some(0x80) => Ok(Codec::Pickle),
        Some(b) => Err(DecodeError::UnknownCodec(*b)),
    }
}

/// Decodes a request payload in whatever codec it is in.
///
/// # Errors
///
/// Any [`DecodeError`]: the codec is unknown, or the payload is not a
/// well-formed request in its codec, or a pickle the safe decoder refuses.
pub fn decode_request<'a>(
    payload: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Incoming<'a>, DecodeError> {
    match detect(payload)? {
        Codec::MsgPack => msgpack::decode_request(payload),
        Codec::Json => json::decode_request(payload),
        Codec::Pickle => decode_pickle_request(payload, limits),
    }
}

fn decode_pickle_request<'a>(
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<Incoming<'a>, DecodeError> {
    let malformed = |detail: &str| DecodeError::Malformed {
        codec: Codec::Pickle,
        detail: detail.to_owned(),
    };
    let value = match pickle::decode(payload, &limits.pickle, false)? {
        pickle::Decoded::Value(v) => v,
        // `allow_exceptions` is false, so the decoder never yields one; stay
        // total anyway.
        _ => return Err(malformed("an exception is not a request")),
    };
    let parts = match value {
        Value::Bytes(b) if b == b"SIGENDS" => return Ok(Incoming::EndSession(Codec::Pickle)),
        Value::Tuple(parts) | Value::List(parts) => parts,
        _ => return Err(malformed("a request is a tuple (endpoint, args, kwargs)")),
    };
    let Ok::<[Value; 3], _>([endpoint, args, kwargs]) = parts.try_into() else {
        return Err(malformed("a request is a tuple (endpoint, args, kwargs)"));
    };
    let Value::Str(endpoint) = endpoint else {
        return Err(malformed("the endpoint name must be a str"));
    };
    let args = match args {
        Value::Tuple(a) | Value::List(a) => a.into_iter().map(Arg::Value).collect(),
        _ => return Err(malformed("positional arguments must be a tuple")),
    };
    let Value::Map(kw) = kwargs else {
        return Err(malformed("keyword arguments must be a dict"));
    };
    let kwargs = kw
        .into_iter()
        .map(|(k, v)| match k {
            Value::Str(k) => Ok((Cow::Owned(k), Arg::Value(v))),
            _ => Err(malformed("keyword argument names must be str")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Incoming::Request(Request {
        codec: Codec::Pickle,
        endpoint: Cow::Owned(endpoint),
        args,
        kwargs,
    }))
}

/// Appends a request payload (no frame header) calling `endpoint`.
///
/// `args` must serialize as a sequence (a tuple such as `("hello",)`, a
/// `Vec`, or `()` for none) and `kwargs` as a map or struct (or `()`).
///
/// # Errors
///
/// [`EncodeError`] when the arguments have the wrong shape or do not
/// serialize. `out` may then hold a partial message; discard it.
pub fn encode_request<A, K>(
    codec: Codec,
    endpoint: &str,
    args: &A,
    kwargs: &K,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    A: Serialize + ?Sized,
    K: Serialize + ?Sized,
{
    match codec {
        Codec::MsgPack => msgpack::encode_request(endpoint, args, kwargs, out),
        Codec::Json => json::encode_request(endpoint, args, kwargs, out),
        Codec::Pickle => {
            fn to<T: Serialize + ?Sized>(v: &T) -> Result<Value, EncodeError> {
                crate::to_value(v).map_err(|e| EncodeError::Serialize(e.to_string()))
            }
            let args = match to(args)? {
                Value::Nil => Vec::new(),
                Value::Tuple(a) | Value::List(a) => a,
                _ => return Err(EncodeError::ArgsNotASequence),
            };
            let kwargs = match to(kwargs)? {
                Value::Nil => Vec::new(),
                Value::Map(m) => m,
                _ => return Err(EncodeError::KwargsNotAMap),
            };
            let request = Value::Tuple(vec![
                Value::Str(endpoint.to_owned()),
                Value::Tuple(args),
                Value::Map(kwargs),
            ]);
            pickle::encode_value(&request, out);
            Ok(())
        }
    }
}

/// Appends the end-of-session message (SIGENDS) in `codec`. A server echoes
/// the same payload back before closing.
pub fn encode_end_session(codec: Codec, out: &mut Vec<u8>) {
    match codec {
        Codec::MsgPack => out.extend_from_slice(msgpack::SIGENDS),
        Codec::Json => out.extend_from_slice(json::SIGENDS),
        Codec::Pickle => pickle::encode_value(&Value::Bytes(b"SIGENDS".to_vec()), out),
    }
}

/// Appends a success reply carrying `value`.
///
/// # Errors
///
/// [`EncodeError::Serialize`] when the value does not serialize in this
/// codec; `out` may hold a partial reply then, so truncate it before
/// writing an error reply instead.
pub fn encode_reply_ok<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match codec {
        Codec::MsgPack => msgpack::encode_ok(value, out),
        Codec::Json => json::encode_ok(value, out),
        Codec::Pickle => {
            let v = crate::to_value(value).map_err(|e| EncodeError::Serialize(e.to_string()))?;
            pickle::encode_value(&v, out);
            Ok(())
        }
    }
}

/// Appends an error reply. Never fails: data a codec cannot carry is
/// dropped rather than the error.
pub fn encode_reply_error(codec: Codec, err: &RemoteError, out: &mut Vec<u8>) {
    match codec {
        Codec::MsgPack => msgpack::encode_error(err, out),
        Codec::Json => json::encode_error(err, out),
        // A Python client raises this as the matching exception class.
        Codec::Pickle => pickle::encode_exception(&err.kind, &err.message, out),
    }
}

/// Decodes a reply payload that is expected in `codec`.
///
/// # Errors
///
/// [`DecodeError::Result`] when the value does not fit `T`; other variants
/// when the payload is not a reply at all.
pub fn decode_reply<T: DeserializeOwned>(
    codec: Codec,
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<Reply<T>, DecodeError> {
    match codec {
        Codec::MsgPack => msgpack::decode_reply(payload),
        Codec::Json => json::decode_reply(payload),
        Codec::Pickle => match pickle::decode(payload, &limits.pickle, true)? {
            pickle::Decoded::Value(Value::Bytes(b)) if b == b"SIGENDS" => Ok(Reply::EndSession),
            pickle::Decoded::Value(v) => crate::from_value(&v)
                .map(Reply::Ok)
                .map_err(|e| DecodeError::Result(e.to_string())),
            pickle::Decoded::Exception {
                kind,
                message,
                args,
            } => Ok(Reply::Err(RemoteError {
                kind,
                message,
                data: (!args.is_empty()).then_some(Value::Tuple(args)),
            })),
            // Decoded is non_exhaustive in spirit; nothing else exists today.
            #[allow(unreachable_patterns)]
            _ => Err(DecodeError::Malformed {
                codec: Codec::Pickle,
                detail: "unsupported pickle reply".to_owned(),
            }),
        },
    }
}
