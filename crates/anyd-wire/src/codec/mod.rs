//! The three payload codecs, and which one a payload is in
//! ([protocol section 4](crate::protocol#4-codecs)).
//!
//! This module owns reading and writing the messages of
//! [`crate::message`] as bytes: it detects a payload's codec from its first
//! byte ([`detect`]) and dispatches each operation to the codec's module.
//! It also owns what those operations share: the limits on decoding
//! ([`DecodeLimits`]) and the errors ([`DecodeError`], [`EncodeError`]).
//! It does not own frames (see [`crate::frame`]) nor the message types.
//!
//! # The functions of a codec
//!
//! Every codec module (`msgpack`, `json`, [`pickle`]) offers the same
//! crate-private set, which the public functions here call by [`Codec`]:
//!
//! | item | what it does |
//! | --- | --- |
//! | `FIRST_BYTES` | the bytes a payload in this codec may start with, for [`detect`] |
//! | `decode_head(payload, limits)` | a request up to its endpoint name, or SIGENDS: a [`Head`] |
//! | `decode_args(head, max_args, limits)` | the arguments of a request whose head it read: a [`Request`] |
//! | `decode_reply::<T>(payload, limits)` | a reply, or SIGENDS echoed back: a [`Reply<T>`] |
//! | `encode_request(endpoint, args, kwargs, out)` | appends a request |
//! | `encode_reply_ok(value, out)` | appends a success reply |
//! | `encode_reply_error(err, out)` | appends an error reply; never fails |
//! | `encode_end_session(out)` | appends SIGENDS |
//!
//! The native codecs (MessagePack and JSON) also carry the extensions of
//! [protocol section 8](crate::protocol#8-extensions). A request may have options
//! (`encode_request_with`, and `decode_args` reads them): each of the two
//! writes the options map with one `write_options` and reads it with one
//! function, whatever its keys, through the table of [`RequestOptions`]
//! (see its module, `message::options`), so that a new option changes no
//! codec. They carry streams: `encode_item` and `encode_cancel`, and their
//! `decode_head` and `decode_reply` know the cancel and item frames.
//! Pickle has neither options nor streams.
//!
//! The codecs whose arguments stay encoded until a handler asks for them
//! (MessagePack and JSON) also offer `decode_arg::<T>(raw)` and
//! `type_name(raw)`, for [`Arg`]'s methods; pickle's arguments are
//! [`Value`]s already. A codec uses no other codec.

// The native codecs have nothing public of their own: everything goes
// through this module's functions, whatever the codec.
mod json;
mod msgpack;
pub mod pickle;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::message::{Arg, Head, Incoming, RemoteError, Reply, Request, RequestHead, StreamReply};
pub use crate::message::{Codec, RequestOptions, TimeoutMs, MAX_TIMEOUT_MS};
use crate::Value;

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
    Result(ArgError),
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
    /// Streams (and the other extensions of [protocol section 8](crate::protocol#8-extensions))
    /// travel only in the native codecs, MessagePack and JSON (see
    /// [`Codec::is_native`]).
    #[error("streams and descriptors need a native codec (MessagePack or JSON), not {0:?}")]
    NotNative(Codec),
}

/// Limits applied while decoding untrusted payloads.
#[derive(Debug, Clone, Default)]
pub struct DecodeLimits {
    /// Bounds on pickle nesting, memo and size.
    pub pickle: pickle::PickleLimits,
}

/// Detects the codec of a payload from its first byte
/// ([protocol section 4](crate::protocol#4-codecs)).
///
/// # Errors
///
/// [`DecodeError::Empty`] or [`DecodeError::UnknownCodec`].
pub fn detect(payload: &[u8]) -> Result<Codec, DecodeError> {
    match payload.first() {
        None => Err(DecodeError::Empty),
        Some(b) if msgpack::FIRST_BYTES.contains(b) => Ok(Codec::MsgPack),
        Some(b) if json::FIRST_BYTES.contains(b) => Ok(Codec::Json),
        Some(b) if pickle::FIRST_BYTES.contains(b) => Ok(Codec::Pickle),
        Some(b) => Err(DecodeError::UnknownCodec(*b)),
    }
}

/// Reads a request payload in whatever codec it is in up to its endpoint
/// name, decoding no argument.
///
/// What this costs is bounded by the frame, whose length the frame limit
/// bounds before it is read, and is cheap: no argument is decoded, so the
/// policy can be checked before the arguments cost anything. For
/// MessagePack, the name alone is read (after the array header), whatever
/// follows it. For JSON, the first value is scanned whatever it is,
/// without being built (a borrowed raw value, skipped without recursion,
/// keeping one byte per level of nesting), so at most one pass over the
/// frame; a first value that is not a string is then refused. For pickle,
/// the name is read from the shape every CPython pickler writes for a
/// request (PROTO 2..5, an optional FRAME, then the name as a unicode
/// string opcode); a pickle in another shape is decoded whole if it is at
/// most [`pickle::PEEK_FALLBACK`] bytes (SIGENDS in protocol 2 is such a
/// pickle), and refused as malformed if longer.
///
/// # Errors
///
/// Any [`DecodeError`]: the codec is unknown, or the payload does not
/// start as a request in its codec.
pub fn decode_head<'a>(payload: &'a [u8], limits: &DecodeLimits) -> Result<Head<'a>, DecodeError> {
    match detect(payload)? {
        Codec::MsgPack => msgpack::decode_head(payload, limits),
        Codec::Json => json::decode_head(payload, limits),
        Codec::Pickle => pickle::decode_head(payload, limits),
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
        match self.codec {
            Codec::MsgPack => msgpack::decode_args(self, max_args, limits),
            Codec::Json => json::decode_args(self, max_args, limits),
            Codec::Pickle => pickle::decode_args(self, max_args, limits),
        }
    }
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
        Head::Cancel(codec) => Ok(Incoming::Cancel(codec)),
    }
}

/// Why an argument could not be deserialized into the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    /// It nests deeper than the decoders allow (the same bound in every
    /// codec): the nesting is the problem, whatever the type.
    #[error("nests too deeply: recursion limit exceeded")]
    TooDeep,
    /// It is not what the type takes: the deserializer's words (a type
    /// mismatch, or what a type's own `Deserialize` refused).
    #[error("{0}")]
    Mismatch(String),
}

impl Arg<'_> {
    /// Deserializes the argument into `T`.
    ///
    /// # Errors
    ///
    /// [`ArgError::TooDeep`] past the depth limit, [`ArgError::Mismatch`]
    /// with a description of the mismatch otherwise, for a `TypeError`
    /// reply.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ArgError> {
        match self {
            Arg::MsgPack(b) => msgpack::decode_arg(b),
            Arg::Json(raw) => json::decode_arg(raw),
            Arg::Value(v) => crate::from_value(v).map_err(|e| ArgError::Mismatch(e.to_string())),
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
    pub fn to_value(&self) -> Result<Value, ArgError> {
        match self {
            Arg::Value(v) => Ok(v.clone()),
            other => other.deserialize(),
        }
    }
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
        Codec::Pickle => pickle::encode_request(endpoint, args, kwargs, out),
    }
}

/// Appends a request calling `endpoint` that asks for a stream of replies
/// ([protocol section 8.1](crate::protocol#81-streams)): items, then the end.
///
/// # Errors
///
/// As [`encode_request`], and [`EncodeError::NotNative`] for pickle.
pub fn encode_stream_request<A, K>(
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
    let options = RequestOptions::NONE.with_stream(true);
    encode_request_with(codec, endpoint, args, kwargs, &options, out)
}

/// Appends a request calling `endpoint` with `options`
/// ([protocol section 8.1](crate::protocol#81-streams)): with none, exactly what [`encode_request`] writes.
///
/// # Errors
///
/// As [`encode_request`], and [`EncodeError::NotNative`] for an option in
/// pickle, which has none.
pub fn encode_request_with<A, K>(
    codec: Codec,
    endpoint: &str,
    args: &A,
    kwargs: &K,
    options: &RequestOptions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    A: Serialize + ?Sized,
    K: Serialize + ?Sized,
{
    if !options.any() {
        return encode_request(codec, endpoint, args, kwargs, out);
    }
    match codec {
        Codec::MsgPack => msgpack::encode_request_with(endpoint, args, kwargs, options, out),
        Codec::Json => json::encode_request_with(endpoint, args, kwargs, options, out),
        Codec::Pickle => Err(EncodeError::NotNative(codec)),
    }
}

/// Appends one item of a stream: `{"item": value}`.
///
/// # Errors
///
/// [`EncodeError::Serialize`] as [`encode_reply_ok`];
/// [`EncodeError::NotNative`] for pickle.
pub fn encode_item<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match codec {
        Codec::MsgPack => msgpack::encode_item(value, out),
        Codec::Json => json::encode_item(value, out),
        Codec::Pickle => Err(EncodeError::NotNative(codec)),
    }
}

/// Appends CANCEL, which stops the stream the client is receiving.
///
/// # Errors
///
/// [`EncodeError::NotNative`] for pickle, which has no streams.
pub fn encode_cancel(codec: Codec, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match codec {
        Codec::MsgPack => msgpack::encode_cancel(out),
        Codec::Json => json::encode_cancel(out),
        Codec::Pickle => return Err(EncodeError::NotNative(codec)),
    }
    Ok(())
}

/// Appends the end-of-session message (SIGENDS) in `codec`. A server echoes
/// the same payload back before closing.
pub fn encode_end_session(codec: Codec, out: &mut Vec<u8>) {
    match codec {
        Codec::MsgPack => msgpack::encode_end_session(out),
        Codec::Json => json::encode_end_session(out),
        Codec::Pickle => pickle::encode_end_session(out),
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
        Codec::MsgPack => msgpack::encode_reply_ok(value, out),
        Codec::Json => json::encode_reply_ok(value, out),
        Codec::Pickle => pickle::encode_reply_ok(value, out),
    }
}

/// Appends an error reply. Never fails: data a codec cannot carry is
/// dropped rather than the error.
pub fn encode_reply_error(codec: Codec, err: &RemoteError, out: &mut Vec<u8>) {
    match codec {
        Codec::MsgPack => msgpack::encode_reply_error(err, out),
        Codec::Json => json::encode_reply_error(err, out),
        Codec::Pickle => pickle::encode_reply_error(err, out),
    }
}

/// Decodes a frame of a stream that is expected in `codec`: an item, the
/// end, or an error ([protocol section 8.1](crate::protocol#81-streams)).
///
/// # Errors
///
/// [`DecodeError::Result`] when an item does not fit `T`; other variants
/// when the payload is not a stream's frame (pickle never is).
pub fn decode_stream_reply<T: DeserializeOwned>(
    codec: Codec,
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<StreamReply<T>, DecodeError> {
    match codec {
        Codec::MsgPack => msgpack::decode_stream_reply(payload, limits),
        Codec::Json => json::decode_stream_reply(payload, limits),
        Codec::Pickle => Err(DecodeError::Malformed {
            codec,
            detail: "pickle has no streams".into(),
        }),
    }
}

/// The item of a stream's frame in `codec`, if the frame is one and the
/// item decodes to `T`; `None` for anything else (the end, an error, an
/// item of another type, a malformed frame), which
/// [`decode_stream_reply`] then says what it is. What it returns is what
/// `decode_stream_reply` returns as [`StreamReply::Item`] for the same
/// payload.
///
/// Why it exists: a stream is mostly items, and a client that takes each
/// frame's common case without building a `Result` of the general one
/// reads them markedly faster (the item's `T` goes straight to the
/// caller). In MessagePack, items whose envelope is byte for byte what
/// this crate writes are read in one pass.
#[inline]
pub fn decode_stream_item<T: DeserializeOwned>(
    codec: Codec,
    payload: &[u8],
    limits: &DecodeLimits,
) -> Option<T> {
    match codec {
        Codec::MsgPack => msgpack::decode_stream_item(payload),
        Codec::Json => match json::decode_stream_reply(payload, limits) {
            Ok(StreamReply::Item(v)) => Some(v),
            _ => None,
        },
        Codec::Pickle => None,
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
        Codec::MsgPack => msgpack::decode_reply(payload, limits),
        Codec::Json => json::decode_reply(payload, limits),
        Codec::Pickle => pickle::decode_reply(payload, limits),
    }
}
