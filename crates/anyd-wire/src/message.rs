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

    /// The Python name of the argument's type (`int`, `str`, `list`, ...),
    /// read from its first byte or token: naming what a caller sent in a
    /// `TypeError` never decodes the argument. `None` for what has no
    /// Python type (a MessagePack extension, bytes that are not a value).
    pub fn type_name(&self) -> Option<&'static str> {
        match self {
            Arg::MsgPack(b) => msgpack::type_name(b),
            Arg::Json(raw) => json::type_name(raw),
            Arg::Value(v) => Some(v.type_name()),
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
    /// Positional arguments, in order: the first `max_args` of them (see
    /// [`RequestHead::decode_args`]); `positional` says how many came.
    pub args: Vec<Arg<'a>>,
    /// How many positional arguments the caller sent, kept or not.
    pub positional: usize,
    /// Keyword arguments, in the order the client sent them: the first
    /// `max_args + 1` of them, enough to find what is wrong with a call
    /// that has too many (one of those is unknown or given twice).
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

/// What a client sent, read only as far as its endpoint name: enough to
/// find the endpoint and check the caller's policy before any argument is
/// decoded (see [`decode_head`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Head<'a> {
    /// A call, its arguments still unread.
    Request(RequestHead<'a>),
    /// SIGENDS: the client ends the session, in the given codec.
    EndSession(Codec),
}

/// A request whose endpoint name is known and whose arguments are not
/// decoded yet.
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// The codec the request came in; the reply must use the same one.
    pub codec: Codec,
    /// The endpoint name.
    pub endpoint: Cow<'a, str>,
    pub(crate) payload: &'a [u8],
    pub(crate) body: Body,
}

/// Where the arguments are, by codec.
#[derive(Debug)]
pub(crate) enum Body {
    /// MessagePack: the argument array starts at this offset.
    MsgPack(usize),
    /// JSON: the whole payload is parsed again, skipping the endpoint.
    Json,
    /// Pickle, whose name was read from its first opcodes: decoded in
    /// full, and the name checked to be the same.
    Pickle,
    /// A short pickle in another shape, already decoded whole.
    PickleDecoded {
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
    },
}

/// Pickles of up to this many bytes whose endpoint name cannot be read from
/// their first opcodes are decoded whole to find it: whatever their shape,
/// they cost a constant. Longer ones in such a shape are refused.
pub const PICKLE_PEEK_FALLBACK: usize = 1024;

/// Reads a request payload in whatever codec it is in up to its endpoint
/// name, decoding no argument.
///
/// What this costs is bounded by the length of the name, whatever follows
/// it: the policy can be checked before the arguments cost anything. For
/// pickle, the name is read from the shape every CPython pickler writes for
/// a request (PROTO 2..5, an optional FRAME, then the name as a unicode
/// string opcode); a pickle in another shape is decoded whole if it is at
/// most [`PICKLE_PEEK_FALLBACK`] bytes (SIGENDS in protocol 2 is such a
/// pickle), and refused as malformed if longer.
///
/// # Errors
///
/// Any [`DecodeError`]: the codec is unknown, or the payload does not
/// start as a request in its codec.
pub fn decode_head<'a>(payload: &'a [u8], limits: &DecodeLimits) -> Result<Head<'a>, DecodeError> {
    match detect(payload)? {
        Codec::MsgPack => msgpack::decode_head(payload),
        Codec::Json => json::decode_head(payload),
        Codec::Pickle => decode_pickle_head(payload, limits),
    }
}

impl<'a> RequestHead<'a> {
    /// Decodes the arguments, keeping at most `max_args` positional ones
    /// (more are counted, not kept: see [`Request::positional`]) and
    /// `max_args + 1` keyword ones. A server passes the number of
    /// parameters of the endpoint the request is for, so that what a call
    /// with too many arguments costs is bounded by what the endpoint takes.
    ///
    /// Arguments stay undecoded ([`Arg`]) in MessagePack and JSON; a pickle
    /// is decoded whole, within `limits`.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`] for a payload that is not a well-formed request,
    /// or a pickle the safe decoder refuses.
    pub fn decode_args(
        self,
        max_args: usize,
        limits: &DecodeLimits,
    ) -> Result<Request<'a>, DecodeError> {
        let RequestHead {
            codec,
            endpoint,
            payload,
            body,
        } = self;
        let (args, positional, kwargs) = match body {
            Body::MsgPack(at) => msgpack::decode_args(payload, at, max_args)?,
            Body::Json => json::decode_args(payload, max_args)?,
            Body::Pickle => {
                let (name, args, kwargs) = decode_pickle_request(payload, limits)?;
                if name != endpoint {
                    return Err(DecodeError::Malformed {
                        codec: Codec::Pickle,
                        detail: "the endpoint name is not the first value of the request"
                            .to_owned(),
                    });
                }
                pickle_args(args, kwargs, max_args)
            }
            Body::PickleDecoded { args, kwargs } => pickle_args(args, kwargs, max_args),
        };
        Ok(Request {
            codec,
            endpoint,
            args,
            positional,
            kwargs,
        })
    }
}

pub(crate) type Parts<'a> = (Vec<Arg<'a>>, usize, Vec<(Cow<'a, str>, Arg<'a>)>);

fn pickle_args<'a>(args: Vec<Value>, kwargs: Vec<(String, Value)>, max_args: usize) -> Parts<'a> {
    let positional = args.len();
    let args = args.into_iter().take(max_args).map(Arg::Value).collect();
    let kwargs = kwargs
        .into_iter()
        .take(max_args.saturating_add(1))
        .map(|(k, v)| (Cow::Owned(k), Arg::Value(v)))
        .collect();
    (args, positional, kwargs)
}

/// Decodes a request payload in whatever codec it is in, all of it.
///
/// A server should rather call [`decode_head`], check who may call the
/// endpoint, then [`RequestHead::decode_args`] with the number of
/// arguments the endpoint takes: this decodes every argument first.
///
/// # Errors
///
/// Any [`DecodeError`]: the codec is unknown, or the payload is not a
/// well-formed request in its codec, or a pickle the safe decoder refuses.
pub fn decode_request<'a>(
    payload: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Incoming<'a>, DecodeError> {
    match decode_head(payload, limits)? {
        Head::Request(head) => Ok(Incoming::Request(head.decode_args(usize::MAX, limits)?)),
        Head::EndSession(codec) => Ok(Incoming::EndSession(codec)),
    }
}

fn decode_pickle_head<'a>(
    payload: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Head<'a>, DecodeError> {
    if let Some(name) = pickle::peek_str(payload) {
        let endpoint = std::str::from_utf8(name).map_err(|_| DecodeError::Malformed {
            codec: Codec::Pickle,
            detail: "the endpoint name is not valid UTF-8".to_owned(),
        })?;
        return Ok(Head::Request(RequestHead {
            codec: Codec::Pickle,
            endpoint: Cow::Borrowed(endpoint),
            payload,
            body: Body::Pickle,
        }));
    }
    if payload.len() > PICKLE_PEEK_FALLBACK {
        return Err(DecodeError::Malformed {
            codec: Codec::Pickle,
            detail: "a request must start with its endpoint name, as Python's pickle writes it"
                .to_owned(),
        });
    }
    match decode_pickle(payload, limits)? {
        PickleRequest::EndSession => Ok(Head::EndSession(Codec::Pickle)),
        PickleRequest::Call(name, args, kwargs) => Ok(Head::Request(RequestHead {
            codec: Codec::Pickle,
            endpoint: Cow::Owned(name),
            payload,
            body: Body::PickleDecoded { args, kwargs },
        })),
    }
}

/// A pickled call: endpoint, positional and keyword arguments.
type PickleCall = (String, Vec<Value>, Vec<(String, Value)>);

enum PickleRequest {
    EndSession,
    Call(String, Vec<Value>, Vec<(String, Value)>),
}

fn decode_pickle_request(payload: &[u8], limits: &DecodeLimits) -> Result<PickleCall, DecodeError> {
    match decode_pickle(payload, limits)? {
        PickleRequest::Call(name, args, kwargs) => Ok((name, args, kwargs)),
        PickleRequest::EndSession => Err(DecodeError::Malformed {
            codec: Codec::Pickle,
            detail: "a request is a tuple (endpoint, args, kwargs)".to_owned(),
        }),
    }
}

fn decode_pickle(payload: &[u8], limits: &DecodeLimits) -> Result<PickleRequest, DecodeError> {
    let malformed = |detail: &str| DecodeError::Malformed {
        codec: Codec::Pickle,
        detail: detail.to_owned(),
    };
    let parts = match pickle::decode_value(payload, &limits.pickle)? {
        Value::Bytes(b) if b == b"SIGENDS" => return Ok(PickleRequest::EndSession),
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
        Value::Tuple(a) | Value::List(a) => a,
        _ => return Err(malformed("positional arguments must be a tuple")),
    };
    let Value::Map(kw) = kwargs else {
        return Err(malformed("keyword arguments must be a dict"));
    };
    let kwargs = kw
        .into_iter()
        .map(|(k, v)| match k {
            Value::Str(k) => Ok((k, v)),
            _ => Err(malformed("keyword argument names must be str")),
        })
        .collect::<Result<_, _>>()?;
    Ok(PickleRequest::Call(endpoint, args, kwargs))
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
        Codec::Pickle => match pickle::decode_value_or_exception(payload, &limits.pickle)? {
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
        },
    }
}
