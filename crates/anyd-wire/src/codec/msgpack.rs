//! MessagePack, the native codec.
//!
//! Requests are `[endpoint, args, kwargs]`; replies are `{"ok": value}` or
//! `{"error": {kind, message, data}}`. This module never builds a dynamic
//! value for a request: it walks the outer array with a non-recursive
//! scanner and hands each argument to the handler as the byte slice that
//! encodes it, which serde then deserializes straight into the handler's
//! parameter type.
//!
//! It offers the functions every codec offers (see [`crate::codec`]), plus
//! `decode_arg` and `type_name` for an argument's bytes. It does not own
//! the message types nor the choice of codec.

mod de;
mod options;
mod ser;

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{ArgError, DecodeError, DecodeLimits, EncodeError, RequestOptions};
use crate::message::{Arg, Codec, Head, RemoteError, Reply, Request, RequestHead, StreamReply};
use options::{read_options, write_options};

/// First bytes that select this codec: a fixarray of 3 (a request) or 4
/// (a request with options), the fixstr of 7 that starts SIGENDS, the
/// fixstr of 6 that starts CANCEL.
pub(crate) const FIRST_BYTES: &[u8] = &[0x93, 0x94, 0xa7, 0xa6];

/// The end-of-session message: the string `"SIGENDS"` as a fixstr.
const SIGENDS: &[u8] = b"\xa7SIGENDS";

/// The cancel of a stream: the string `"CANCEL"` as a fixstr.
const CANCEL: &[u8] = b"\xa6CANCEL";

fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::Malformed {
        codec: Codec::MsgPack,
        detail: what.into(),
    }
}

fn truncated() -> DecodeError {
    malformed("truncated MessagePack value")
}

/// A cursor over a MessagePack buffer that reads headers without ever
/// trusting a length beyond what is actually present.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let s = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn usize_be(&mut self, n: usize) -> Result<usize, DecodeError> {
        // A length beyond usize cannot be satisfied by any buffer anyway.
        usize::try_from(self.be(n)?).map_err(|_| truncated())
    }

    /// Skips one complete value and returns the bytes it occupied.
    ///
    /// Iterative on purpose: a count of values still to skip replaces the
    /// recursion, so a nesting bomb costs a loop, not the stack. Every
    /// element consumes at least one byte, so the loop is bounded by the
    /// input length whatever the headers claim.
    fn skip_value(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let (skip, children): (usize, u64) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (usize::from(m & 0x1f), 0),
                0xc1 => return Err(malformed("reserved MessagePack marker 0xc1")),
                0xc4 | 0xd9 => (self.usize_be(1)?, 0),
                0xc5 | 0xda => (self.usize_be(2)?, 0),
                0xc6 | 0xdb => (self.usize_be(4)?, 0),
                0xc7 => (self.usize_be(1)? + 1, 0),
                0xc8 => (self.usize_be(2)? + 1, 0),
                0xc9 => (self.usize_be(4)?.saturating_add(1), 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
            };
            self.take(skip)?;
            pending += children;
        }
        Ok(&self.buf[start..self.pos])
    }

    fn array_len(&mut self) -> Result<usize, DecodeError> {
        match self.byte()? {
            m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            0xdc => self.usize_be(2),
            0xdd => self.usize_be(4),
            m => Err(malformed(format!(
                "expected an array, found marker {m:#04x}"
            ))),
        }
    }

    fn map_len(&mut self) -> Result<usize, DecodeError> {
        match self.byte()? {
            m @ 0x80..=0x8f => Ok(usize::from(m & 0x0f)),
            0xde => self.usize_be(2),
            0xdf => self.usize_be(4),
            m => Err(malformed(format!("expected a map, found marker {m:#04x}"))),
        }
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.usize_be(1)?,
            0xda => self.usize_be(2)?,
            0xdb => self.usize_be(4)?,
            m => {
                return Err(malformed(format!(
                    "expected a string, found marker {m:#04x}"
                )))
            }
        };
        std::str::from_utf8(self.take(len)?).map_err(|_| malformed("string is not valid UTF-8"))
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(malformed(format!(
                "{} trailing bytes after the message",
                self.buf.len() - self.pos
            )))
        }
    }
}

/// Reads a request up to its endpoint name; the arguments start where it
/// ends.
pub(crate) fn decode_head<'a>(
    payload: &'a [u8],
    _limits: &DecodeLimits,
) -> Result<Head<'a>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Head::EndSession(Codec::MsgPack));
    }
    if payload == CANCEL {
        return Ok(Head::Cancel(Codec::MsgPack));
    }
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    if !matches!(c.array_len()?, 3 | 4) {
        return Err(malformed(
            "a request is an array of [endpoint, args, kwargs] or [endpoint, args, kwargs, options]",
        ));
    }
    let endpoint = c.str()?;
    Ok(Head::Request(RequestHead {
        codec: Codec::MsgPack,
        endpoint: Cow::Borrowed(endpoint),
        payload,
        args_at: c.pos,
        decoded: None,
    }))
}

/// Reads the arguments of a request from where [`decode_head`] stopped,
/// borrowing each, keeping at most `max_args` positional ones (the rest are
/// skipped and counted) and `max_args + 1` keyword ones (the rest are
/// skipped).
pub(crate) fn decode_args<'a>(
    head: RequestHead<'a>,
    max_args: usize,
    _limits: &DecodeLimits,
) -> Result<Request<'a>, DecodeError> {
    let payload = head.payload;
    let mut c = Cursor {
        buf: payload,
        pos: head.args_at,
    };
    let positional = c.array_len()?;
    // Each argument takes at least one byte: never reserve more than the
    // input could hold, whatever the header says.
    let keep = positional.min(max_args);
    let mut args = Vec::with_capacity(keep.min(payload.len() - c.pos));
    for _ in 0..keep {
        args.push(Arg::MsgPack(c.skip_value()?));
    }
    for _ in keep..positional {
        c.skip_value()?;
    }
    let n = c.map_len()?;
    let keep = n.min(max_args.saturating_add(1));
    let mut kwargs = Vec::with_capacity(keep.min(payload.len() - c.pos));
    for i in 0..n {
        let key = c.str()?;
        let value = c.skip_value()?;
        if i < keep {
            kwargs.push((Cow::Borrowed(key), Arg::MsgPack(value)));
        }
    }
    // The array's length was read by `decode_head`: 4 means options.
    let options = if payload.first() == Some(&0x94) {
        read_options(&mut c)?
    } else {
        RequestOptions::NONE
    };
    c.finish()?;
    Ok(Request {
        codec: Codec::MsgPack,
        endpoint: head.endpoint,
        args,
        positional,
        kwargs,
        options,
    })
}

/// The Python type name of the value that starts `bytes`, from its marker.
pub(crate) fn type_name(bytes: &[u8]) -> Option<&'static str> {
    Some(match *bytes.first()? {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "int",
        0xc0 => "None",
        0xc2 | 0xc3 => "bool",
        0xca | 0xcb => "float",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc4..=0xc6 => "bytes",
        0x90..=0x9f | 0xdc | 0xdd => "list",
        0x80..=0x8f | 0xde | 0xdf => "dict",
        // Extensions and the reserved marker have no Python type.
        _ => return None,
    })
}

/// Deserializes one argument from the bytes that encode it.
pub(crate) fn decode_arg<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ArgError> {
    from_slice(bytes).map_err(arg_error::<T>)
}

/// What went wrong deserializing a `T`, in the caller's words: a type
/// mismatch rmp-serde reports by its marker (`wrong msgpack marker
/// FixStr(12)`) says what was expected and what came instead.
fn arg_error<T>(e: rmp_serde::decode::Error) -> ArgError {
    use rmp_serde::decode::Error as E;
    match e {
        E::DepthLimitExceeded => ArgError::TooDeep,
        E::TypeMismatch(marker) => {
            let expected = std::any::type_name::<T>();
            let expected = expected.rsplit("::").next().unwrap_or(expected);
            match type_name(&[marker.to_u8()]) {
                Some(got) => ArgError::Mismatch(format!("expected {expected}, got {got}")),
                None => ArgError::Mismatch(format!("expected {expected}, got {marker:?}")),
            }
        }
        e => ArgError::Mismatch(e.to_string()),
    }
}

/// How deep a value may nest. serde deserializers recurse once per level,
/// so this bounds the stack a hostile message can make us use; it is the
/// same bound the JSON and pickle decoders apply.
const MAX_DEPTH: usize = 128;

/// Deserializes the value that starts `bytes`, reading no further than it
/// takes (callers check the bytes are one well-formed value first).
fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    T::deserialize(&mut de::Deserializer::new(bytes, MAX_DEPTH))
}

/// Serializes `value` as MessagePack with structs as maps, so that field
/// names survive for clients in other languages (and JSON converters).
fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    value
        .serialize(&mut ser::Serializer::new(out))
        .map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Writes a string in its shortest form. A short one (an endpoint's name,
/// say) is a fixstr written here, rmp's general path costing several times
/// as much; the bytes are the same.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    } else {
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_str(out, s);
    }
}

/// Writes the request `[endpoint, args, kwargs]`.
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
    out.push(0x93);
    encode_call(endpoint, args, kwargs, out)
}

/// Writes the request `[endpoint, args, kwargs, options]`, the options
/// holding only what is set.
pub(crate) fn encode_request_with<A, K>(
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
    out.push(0x94);
    encode_call(endpoint, args, kwargs, out)?;
    write_options(options, out);
    Ok(())
}

/// Writes the three elements of a call after the array's header.
fn encode_call<A, K>(
    endpoint: &str,
    args: &A,
    kwargs: &K,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError>
where
    A: Serialize + ?Sized,
    K: Serialize + ?Sized,
{
    write_str(endpoint, out);
    let at = out.len();
    write(args, out)?;
    match out[at] {
        // `()` means "no arguments".
        0xc0 => out[at] = 0x90,
        0x90..=0x9f | 0xdc | 0xdd => {}
        _ => return Err(EncodeError::ArgsNotASequence),
    }
    let at = out.len();
    write(kwargs, out)?;
    match out[at] {
        0xc0 => out[at] = 0x80,
        0x80..=0x8f | 0xde | 0xdf => {}
        _ => return Err(EncodeError::KwargsNotAMap),
    }
    Ok(())
}

/// Writes `{"ok": value}`.
pub(crate) fn encode_reply_ok<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"\x81\xa2ok");
    write(value, out)
}

/// Writes `{"item": value}`.
pub(crate) fn encode_item<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"\x81\xa4item");
    write(value, out)
}

/// Writes `"CANCEL"` as a fixstr.
pub(crate) fn encode_cancel(out: &mut Vec<u8>) {
    out.extend_from_slice(CANCEL);
}

/// Writes `{"error": {"kind": .., "message": .., "data": ..}}`.
pub(crate) fn encode_reply_error(err: &RemoteError, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x81\xa5error\x83\xa4kind");
    write_str(&err.kind, out);
    out.extend_from_slice(b"\xa7message");
    write_str(&err.message, out);
    out.extend_from_slice(b"\xa4data");
    match &err.data {
        // A Value always serializes; fall back to nil rather than lose the
        // error itself.
        Some(v) => {
            let at = out.len();
            if write(v, out).is_err() {
                out.truncate(at);
                out.push(0xc0);
            }
        }
        None => out.push(0xc0),
    }
}

/// Writes `"SIGENDS"` as a fixstr.
pub(crate) fn encode_end_session(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGENDS);
}

/// Decodes a reply: `{"ok": T}` or `{"error": ..}`, or SIGENDS echoed back.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    payload: &[u8],
    _limits: &DecodeLimits,
) -> Result<Reply<T>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Reply::EndSession);
    }
    // Every daemon of this implementation writes a value's envelope byte
    // for byte so: read it in one pass, as a stream's items are.
    if let Some(body) = payload.strip_prefix(b"\x81\xa2ok") {
        return decode_item(body).map(Reply::Ok);
    }
    match envelope(
        payload,
        "a reply is a map with one key, \"ok\" or \"error\"",
    )? {
        ("ok", body) => decode_value(body).map(Reply::Ok),
        ("error", body) => decode_error(body).map(Reply::Err),
        (other, _) => Err(malformed(format!("unknown reply key {other:?}"))),
    }
}

/// Decodes a frame of a stream: `{"item": T}`, `{"ok": ..}` (the end) or
/// `{"error": ..}`.
pub(crate) fn decode_stream_reply<T: DeserializeOwned>(
    payload: &[u8],
    _limits: &DecodeLimits,
) -> Result<StreamReply<T>, DecodeError> {
    // Items are most of a stream, and this implementation writes their
    // envelope byte for byte so: read them without the general walk.
    if let Some(body) = payload.strip_prefix(b"\x81\xa4item") {
        return decode_item(body).map(StreamReply::Item);
    }
    let what = "a stream's frame is a map with one key, \"item\", \"ok\" or \"error\"";
    match envelope(payload, what)? {
        ("item", body) => decode_value(body).map(StreamReply::Item),
        ("ok", _) => Ok(StreamReply::End),
        ("error", body) => decode_error(body).map(StreamReply::Err),
        (other, _) => Err(malformed(format!("unknown reply key {other:?}"))),
    }
}

/// The item of a stream's frame written as this crate writes it, if it
/// decodes to `T` and is all of the frame (see [`decode_item`]); `None`
/// otherwise, for [`decode_stream_reply`] to say what the frame is.
#[inline]
pub(crate) fn decode_stream_item<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    let body = payload.strip_prefix(b"\x81\xa4item")?;
    let mut de = de::Deserializer::new(body, MAX_DEPTH);
    // One match, not `ok()?` then `then_some`: the item is moved once
    // (each move of a value its deserializer just wrote costs a stall).
    match T::deserialize(&mut de) {
        Ok(item) if de.position() == body.len() => Some(item),
        _ => None,
    }
}

/// An item's value, which must be all of `body`, as the caller's type, in
/// one pass: deserialized straight away, and walked (as a reply's value is
/// before it is deserialized) only when that failed or left bytes unread.
/// A value read to the end of `body` is one well-formed value (each of its
/// bytes was read as part of one), so a frame that is not is refused as
/// malformed as before, and what is deserialized is exactly what it was.
fn decode_item<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let mut de = de::Deserializer::new(body, MAX_DEPTH);
    let decoded = T::deserialize(&mut de);
    if decoded.is_ok() && de.position() == body.len() {
        return decoded.map_err(|e| DecodeError::Result(arg_error::<T>(e)));
    }
    let mut c = Cursor { buf: body, pos: 0 };
    c.skip_value()?;
    c.finish()?;
    decoded.map_err(|e| DecodeError::Result(arg_error::<T>(e)))
}

/// A reply's one key and the bytes of its value; `what` says the shape
/// expected, for the error.
fn envelope<'a>(payload: &'a [u8], what: &str) -> Result<(&'a str, &'a [u8]), DecodeError> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    if c.map_len()? != 1 {
        return Err(malformed(what));
    }
    let key = c.str()?;
    let body = c.skip_value()?;
    c.finish()?;
    Ok((key, body))
}

/// A reply's value as the caller's type: a mismatch is the caller's
/// (`DecodeError::Result`), not a malformed message.
fn decode_value<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    from_slice(body).map_err(|e| DecodeError::Result(arg_error::<T>(e)))
}

/// An error reply's body.
fn decode_error(body: &[u8]) -> Result<RemoteError, DecodeError> {
    from_slice(body).map_err(|e| malformed(format!("bad error reply: {e}")))
}

#[cfg(test)]
mod tests;
