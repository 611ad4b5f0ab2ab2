//! Requests, replies and SIGENDS as pickles: the functions every codec
//! offers (see [`crate::codec`]), for Python anyd programs.
//!
//! A request is the tuple `(endpoint, args, kwargs)`, the end of a session
//! the bytes `b"SIGENDS"`, a reply the returned value itself or, for an
//! error, a pickled builtin exception
//! ([protocol section 4.3](crate::protocol#43-pickle-safely)). This module
//! owns those shapes on top of the value codec of its parent; it
//! does not read opcodes itself, beyond [`peek_str`] for a request's name.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Decoded;
use super::{decode_value, decode_value_or_exception, encode_exception, encode_value, peek_str};
use crate::codec::{DecodeError, DecodeLimits, EncodeError};
use crate::message::{Arg, Codec, Head, RemoteError, Reply, Request, RequestHead, RequestOptions};
use crate::Value;

/// First bytes that select this codec: PROTO, which every pickle of
/// protocol 2 or later starts with.
pub(crate) const FIRST_BYTES: &[u8] = &[0x80];

/// Pickles of up to this many bytes whose endpoint name cannot be read from
/// their first opcodes are decoded whole to find it: whatever their shape,
/// they cost a constant. Longer ones in such a shape are refused.
pub const PEEK_FALLBACK: usize = 1024;

/// The end-of-session message, as Python anyd sends it: `b"SIGENDS"`.
const SIGENDS: &[u8] = b"SIGENDS";

fn malformed(detail: &str) -> DecodeError {
    DecodeError::Malformed {
        codec: Codec::Pickle,
        detail: detail.to_owned(),
    }
}

/// Reads a request up to its endpoint name: from its first opcodes when
/// it starts the way CPython writes a request, or else by decoding it whole
/// when it is at most [`PEEK_FALLBACK`] bytes.
pub(crate) fn decode_head<'a>(
    payload: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Head<'a>, DecodeError> {
    if let Some(name) = peek_str(payload) {
        let endpoint = std::str::from_utf8(name)
            .map_err(|_| malformed("the endpoint name is not valid UTF-8"))?;
        return Ok(Head::Request(RequestHead {
            codec: Codec::Pickle,
            endpoint: Cow::Borrowed(endpoint),
            payload,
            args_at: 0,
            decoded: None,
        }));
    }
    if payload.len() > PEEK_FALLBACK {
        return Err(malformed(
            "a request must start with its endpoint name, as Python's pickle writes it",
        ));
    }
    match decode_incoming(payload, limits)? {
        Incoming::EndSession => Ok(Head::EndSession(Codec::Pickle)),
        Incoming::Call(name, args, kwargs) => Ok(Head::Request(RequestHead {
            codec: Codec::Pickle,
            endpoint: Cow::Owned(name),
            payload,
            args_at: 0,
            decoded: Some((args, kwargs)),
        })),
    }
}

/// Reads the arguments of a request whose name [`decode_head`] read:
/// decodes the whole pickle (unless that was done already) and checks the
/// name is the same, then keeps at most `max_args` positional and
/// `max_args + 1` keyword arguments.
pub(crate) fn decode_args<'a>(
    head: RequestHead<'a>,
    max_args: usize,
    limits: &DecodeLimits,
) -> Result<Request<'a>, DecodeError> {
    let (args, kwargs) = match head.decoded {
        Some(decoded) => decoded,
        None => match decode_incoming(head.payload, limits)? {
            Incoming::Call(name, args, kwargs) if name == head.endpoint => (args, kwargs),
            Incoming::Call(..) => {
                return Err(malformed(
                    "the endpoint name is not the first value of the request",
                ))
            }
            Incoming::EndSession => {
                return Err(malformed("a request is a tuple (endpoint, args, kwargs)"))
            }
        },
    };
    let positional = args.len();
    let args = args.into_iter().take(max_args).map(Arg::Value).collect();
    let kwargs = kwargs
        .into_iter()
        .take(max_args.saturating_add(1))
        .map(|(k, v)| (Cow::Owned(k), Arg::Value(v)))
        .collect();
    Ok(Request {
        codec: Codec::Pickle,
        endpoint: head.endpoint,
        args,
        positional,
        kwargs,
        options: RequestOptions::NONE,
    })
}

/// What a pickled message from a client is.
enum Incoming {
    /// SIGENDS.
    EndSession,
    /// A call: endpoint, positional and keyword arguments.
    Call(String, Vec<Value>, Vec<(String, Value)>),
}

/// Decodes a whole pickle from a client: a call or SIGENDS.
fn decode_incoming(payload: &[u8], limits: &DecodeLimits) -> Result<Incoming, DecodeError> {
    let parts = match decode_value(payload, &limits.pickle)? {
        Value::Bytes(b) if b == SIGENDS => return Ok(Incoming::EndSession),
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
    Ok(Incoming::Call(endpoint, args, kwargs))
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, EncodeError> {
    crate::to_value(value).map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Writes the request `(endpoint, args, kwargs)`.
pub(crate) fn encode_request<A, K>(
    endpoint: &str,
    args: &A,
    kwargs: &K,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    A: Serialize + ?Sized,
    K: Serialize + ?Sized,
{
    let args = match to_value(args)? {
        // `()` means "no arguments".
        Value::Nil => Vec::new(),
        Value::Tuple(a) | Value::List(a) => a,
        _ => return Err(EncodeError::ArgsNotASequence),
    };
    let kwargs = match to_value(kwargs)? {
        Value::Nil => Vec::new(),
        Value::Map(m) => m,
        _ => return Err(EncodeError::KwargsNotAMap),
    };
    let request = Value::Tuple(vec![
        Value::Str(endpoint.to_owned()),
        Value::Tuple(args),
        Value::Map(kwargs),
    ]);
    encode_value(&request, out);
    Ok(())
}

/// Writes the value itself: a Python client returns what it unpickles.
pub(crate) fn encode_reply_ok<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_value(&to_value(value)?, out);
    Ok(())
}

/// Writes the error as an exception, which a Python client raises as the
/// matching exception class. Its data does not travel.
pub(crate) fn encode_reply_error(err: &RemoteError, out: &mut Vec<u8>) {
    encode_exception(&err.kind, &err.message, out);
}

/// Writes `b"SIGENDS"`.
pub(crate) fn encode_end_session(out: &mut Vec<u8>) {
    encode_value(&Value::Bytes(SIGENDS.to_vec()), out);
}

/// Decodes a reply: a value, an exception, or SIGENDS echoed back.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<Reply<T>, DecodeError> {
    match decode_value_or_exception(payload, &limits.pickle)? {
        Decoded::Value(Value::Bytes(b)) if b == SIGENDS => Ok(Reply::EndSession),
        Decoded::Value(v) => crate::from_value(&v)
            .map(Reply::Ok)
            .map_err(|e| DecodeError::Result(crate::codec::ArgError::Mismatch(e.to_string()))),
        Decoded::Exception {
            kind,
            message,
            args,
        } => Ok(Reply::Err(RemoteError {
            kind,
            message,
            data: (!args.is_empty()).then_some(Value::Tuple(args)),
        })),
    }
}
