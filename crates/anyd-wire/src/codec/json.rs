//! JSON, the codec for people and for clients in any language.
//!
//! Requests are `["endpoint", [args...], {kwargs...}]` and the end of a
//! session is the string `"SIGENDS"`; replies are `{"ok": value}` or
//! `{"error": {"kind": .., "message": .., "data": ..}}`. Arguments are kept
//! as raw JSON text (`RawValue`) until the handler deserializes them into
//! its own parameter types.
//!
//! It offers the functions every codec offers (see [`crate::codec`]), plus
//! `decode_arg` and `type_name` for an argument's text. It does not own
//! the message types nor the choice of codec.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::codec::{ArgError, DecodeError, DecodeLimits, EncodeError, RequestOptions};
use crate::message::{
    Arg, Codec, Head, OptionSet, OptionSink, OptionValue, RemoteError, Reply, Request, RequestHead,
    StreamReply,
};

/// First bytes that select this codec. No leading whitespace is allowed, so
/// detection stays a one-byte decision.
pub(crate) const FIRST_BYTES: &[u8] = b"[\"";

/// The end-of-session message.
const SIGENDS: &[u8] = b"\"SIGENDS\"";

/// The cancel of a stream.
const CANCEL: &[u8] = b"\"CANCEL\"";

fn malformed(detail: impl fmt::Display) -> DecodeError {
    DecodeError::Malformed {
        codec: Codec::Json,
        detail: detail.to_string(),
    }
}

/// The arguments of a request, borrowed from the payload.
struct Args<'a> {
    args: Vec<Arg<'a>>,
    positional: usize,
    kwargs: Vec<(Cow<'a, str>, Arg<'a>)>,
    options: RequestOptions,
}

/// Reads a whole request `[endpoint, [args...], {kwargs...}]`, skipping
/// the endpoint (already read by [`decode_head`]) and keeping at most
/// `max_args` positional and `max_args + 1` keyword arguments.
struct ArgsVisitor {
    max_args: usize,
}

impl<'de> de::DeserializeSeed<'de> for ArgsVisitor {
    type Value = Args<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArgsVisitor {
    type Value = Args<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request [endpoint, [args...], {kwargs...}] or [endpoint, [args...], {kwargs...}, {options}]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args<'de>, A::Error> {
        seq.next_element::<de::IgnoredAny>()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let (args, positional) = seq
            .next_element_seed(ArgsSeed { max: self.max_args })?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let kwargs = seq
            .next_element_seed(KwargsSeed {
                max: self.max_args.saturating_add(1),
            })?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        // The options map, read through the table (`RequestOptions`'s
        // `Deserialize`): an unknown key is refused where it stands.
        let options = seq.next_element::<RequestOptions>()?.unwrap_or_default();
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(5, &self));
        }
        Ok(Args {
            args,
            positional,
            kwargs,
            options,
        })
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr;

impl<'de> de::DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Positional arguments: the first `max` kept, all counted.
struct ArgsSeed {
    max: usize,
}

impl<'de> de::DeserializeSeed<'de> for ArgsSeed {
    type Value = (Vec<Arg<'de>>, usize);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArgsSeed {
    type Value = (Vec<Arg<'de>>, usize);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of arguments")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut args = Vec::new();
        while args.len() < self.max {
            match seq.next_element::<&'de RawValue>()? {
                Some(raw) => args.push(Arg::Json(raw)),
                None => {
                    let n = args.len();
                    return Ok((args, n));
                }
            }
        }
        // The rest are only counted, for "takes 2 arguments but N were
        // given".
        let mut n = args.len();
        while seq.next_element::<de::IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok((args, n))
    }
}

/// Keyword arguments: the first `max` kept, the rest skipped.
struct KwargsSeed {
    max: usize,
}

impl<'de> de::DeserializeSeed<'de> for KwargsSeed {
    type Value = Vec<(Cow<'de, str>, Arg<'de>)>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KwargsSeed {
    type Value = Vec<(Cow<'de, str>, Arg<'de>)>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of keyword arguments")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kwargs = Vec::new();
        while kwargs.len() < self.max {
            match map.next_key_seed(CowStr)? {
                Some(key) => {
                    let raw: &'de RawValue = map.next_value()?;
                    kwargs.push((key, Arg::Json(raw)));
                }
                None => return Ok(kwargs),
            }
        }
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(kwargs)
    }
}

/// Reads a request up to its endpoint name: the `[`, then the first
/// element, which must be a string. Nothing after it is looked at.
pub(crate) fn decode_head<'a>(
    payload: &'a [u8],
    _limits: &DecodeLimits,
) -> Result<Head<'a>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Head::EndSession(Codec::Json));
    }
    if payload == CANCEL {
        return Ok(Head::Cancel(Codec::Json));
    }
    let Some(rest) = payload.strip_prefix(b"[") else {
        return Err(malformed(
            "a request is an array [endpoint, [args...], {kwargs...}]",
        ));
    };
    let first = serde_json::Deserializer::from_slice(rest)
        .into_iter::<&RawValue>()
        .next()
        .ok_or_else(|| malformed("a request names its endpoint first"))?
        .map_err(malformed)?
        .get();
    let endpoint = match first.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        // A JSON string with no escape is its own text.
        Some(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
        Some(_) => Cow::Owned(serde_json::from_str::<String>(first).map_err(malformed)?),
        None => return Err(malformed("the endpoint name must be a string")),
    };
    Ok(Head::Request(RequestHead {
        codec: Codec::Json,
        endpoint,
        payload,
        args_at: 0,
        decoded: None,
    }))
}

/// Reads the arguments of a request whose name [`decode_head`] read,
/// parsing the whole payload again and borrowing the raw text of each.
pub(crate) fn decode_args<'a>(
    head: RequestHead<'a>,
    max_args: usize,
    _limits: &DecodeLimits,
) -> Result<Request<'a>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(head.payload);
    let parts = de::DeserializeSeed::deserialize(ArgsVisitor { max_args }, &mut de)
        .and_then(|parts| de.end().map(|()| parts))
        .map_err(malformed)?;
    Ok(Request {
        codec: Codec::Json,
        endpoint: head.endpoint,
        args: parts.args,
        positional: parts.positional,
        kwargs: parts.kwargs,
        options: parts.options,
    })
}

/// The Python type name of a JSON value, from its first character (and,
/// for a number, its token).
pub(crate) fn type_name(raw: &RawValue) -> Option<&'static str> {
    let text = raw.get().trim_start();
    Some(match text.as_bytes().first()? {
        b'n' => "None",
        b't' | b'f' => "bool",
        b'"' => "str",
        b'[' => "list",
        b'{' => "dict",
        b'-' | b'0'..=b'9' => {
            let number = text
                .split(|c: char| !matches!(c, '-' | '+' | '.' | 'e' | 'E' | '0'..='9'))
                .next()
                .unwrap_or_default();
            if number.contains(['.', 'e', 'E']) {
                "float"
            } else {
                "int"
            }
        }
        _ => return None,
    })
}

/// Deserializes one argument from its raw JSON text.
pub(crate) fn decode_arg<T: DeserializeOwned>(raw: &RawValue) -> Result<T, ArgError> {
    serde_json::from_str(raw.get()).map_err(arg_error)
}

/// What went wrong deserializing a value whose text was checked as JSON
/// when the message was read: a syntax error now can only be serde_json's
/// recursion limit.
fn arg_error(e: serde_json::Error) -> ArgError {
    if e.is_syntax() {
        ArgError::TooDeep
    } else {
        ArgError::Mismatch(e.to_string())
    }
}

fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    serde_json::to_writer(out, value).map_err(|e| EncodeError::Serialize(e.to_string()))
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
    encode_call(endpoint, args, kwargs, out)?;
    out.push(b']');
    Ok(())
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
    encode_call(endpoint, args, kwargs, out)?;
    out.push(b',');
    write_options(options, out);
    out.push(b']');
    Ok(())
}

/// Writes the options map (docs/PROTOCOL.md section 8), whatever its keys:
/// each option set, as `"key":value`, with no space. Keys are plain ASCII
/// (the table's rule), written as they are; a string value is escaped.
fn write_options<O: OptionSet>(options: &O, out: &mut Vec<u8>) {
    out.push(b'{');
    options.each(&mut OptionWriter { out, first: true });
    out.push(b'}');
}

/// Writes each option [`write_options`] is given.
struct OptionWriter<'o> {
    out: &'o mut Vec<u8>,
    /// No option is written yet: no comma before this one.
    first: bool,
}

impl OptionSink<'_> for OptionWriter<'_> {
    /// One option, `"key":value`. Always inlined: where an option's key and
    /// kind are constants, this is a few copies.
    #[inline(always)]
    fn option(&mut self, key: &'static str, value: OptionValue<'_>) {
        let out = &mut *self.out;
        if !std::mem::take(&mut self.first) {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            OptionValue::Bool(true) => out.extend_from_slice(b"true"),
            OptionValue::Bool(false) => out.extend_from_slice(b"false"),
            // A number and a string always serialize.
            OptionValue::UInt(n) => {
                let _ = write(&n, out);
            }
            OptionValue::Str(s) => {
                let _ = write(s, out);
            }
        }
    }
}

/// Writes `[endpoint, args, kwargs` without the closing bracket.
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
    out.push(b'[');
    write(endpoint, out)?;
    out.push(b',');
    let at = out.len();
    write(args, out)?;
    if out[at..] == *b"null" {
        // `()` means "no arguments".
        out.truncate(at);
        out.extend_from_slice(b"[]");
    } else if out[at] != b'[' {
        return Err(EncodeError::ArgsNotASequence);
    }
    out.push(b',');
    let at = out.len();
    write(kwargs, out)?;
    if out[at..] == *b"null" {
        out.truncate(at);
        out.extend_from_slice(b"{}");
    } else if out[at] != b'{' {
        return Err(EncodeError::KwargsNotAMap);
    }
    Ok(())
}

/// Writes `{"ok": value}`.
pub(crate) fn encode_reply_ok<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"ok\":");
    write(value, out)?;
    out.push(b'}');
    Ok(())
}

/// Writes `{"item": value}`.
pub(crate) fn encode_item<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"item\":");
    write(value, out)?;
    out.push(b'}');
    Ok(())
}

/// Writes `"CANCEL"`.
pub(crate) fn encode_cancel(out: &mut Vec<u8>) {
    out.extend_from_slice(CANCEL);
}

/// Writes `{"error": {"kind": .., "message": .., "data": ..}}`.
pub(crate) fn encode_reply_error(err: &RemoteError, out: &mut Vec<u8>) {
    /// The wire shape of an error; `RemoteError` itself is not `Serialize`,
    /// so that an application's `Result<T, RemoteError>` is never mistaken
    /// for a plain value.
    #[derive(Serialize)]
    struct Body<'a> {
        kind: &'a str,
        message: &'a str,
        data: Option<&'a crate::Value>,
    }
    out.extend_from_slice(b"{\"error\":");
    let at = out.len();
    let mut body = Body {
        kind: &err.kind,
        message: &err.message,
        data: err.data.as_ref(),
    };
    if write(&body, out).is_err() {
        // Data that JSON cannot express (a map with non-string keys, say)
        // must not cost the client its error: send it without data.
        out.truncate(at);
        body.data = None;
        let _ = write(&body, out);
    }
    out.push(b'}');
}

/// Writes `"SIGENDS"`.
pub(crate) fn encode_end_session(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGENDS);
}

/// Decodes a reply: `{"ok": T}`, `{"error": ..}`, or SIGENDS echoed back.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    payload: &[u8],
    _limits: &DecodeLimits,
) -> Result<Reply<T>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Reply::EndSession);
    }
    let (key, body) = envelope(
        payload,
        "a reply is an object with one key, \"ok\" or \"error\"",
    )?;
    match key.as_ref() {
        "ok" => decode_value(body).map(Reply::Ok),
        "error" => decode_error(body).map(Reply::Err),
        other => Err(malformed(format!("unknown reply key {other:?}"))),
    }
}

/// Decodes a frame of a stream: `{"item": T}`, `{"ok": ..}` (the end) or
/// `{"error": ..}`.
pub(crate) fn decode_stream_reply<T: DeserializeOwned>(
    payload: &[u8],
    _limits: &DecodeLimits,
) -> Result<StreamReply<T>, DecodeError> {
    let what = "a stream's frame is an object with one key, \"item\", \"ok\" or \"error\"";
    let (key, body) = envelope(payload, what)?;
    match key.as_ref() {
        "item" => decode_value(body).map(StreamReply::Item),
        "ok" => Ok(StreamReply::End),
        "error" => decode_error(body).map(StreamReply::Err),
        other => Err(malformed(format!("unknown reply key {other:?}"))),
    }
}

/// A reply's one key and the raw text of its value; `what` says the shape
/// expected, for the error. Read raw first: `{"ok": null}` must stay
/// distinct from a missing key, and the body is typed only once we know
/// which it is.
fn envelope<'a>(
    payload: &'a [u8],
    what: &str,
) -> Result<(Cow<'a, str>, &'a RawValue), DecodeError> {
    let mut entries = serde_json::from_slice::<Envelope<'_>>(payload)
        .map_err(malformed)?
        .0;
    match entries.pop() {
        Some(entry) if entries.is_empty() => Ok(entry),
        _ => Err(malformed(what)),
    }
}

/// A reply's value as the caller's type: a mismatch is the caller's
/// (`DecodeError::Result`), not a malformed message.
fn decode_value<T: DeserializeOwned>(body: &RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(body.get()).map_err(|e| DecodeError::Result(arg_error(e)))
}

/// An error reply's body.
fn decode_error(body: &RawValue) -> Result<RemoteError, DecodeError> {
    serde_json::from_str(body.get()).map_err(|e| malformed(format!("bad error reply: {e}")))
}

struct Envelope<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a reply object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(1);
                while let Some(key) = map.next_key_seed(CowStr)? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Envelope(entries))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests;
