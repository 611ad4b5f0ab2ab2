//! JSON, the codec for people and for clients in any language.
//!
//! Requests are `["endpoint", [args...], {kwargs...}]` and the end of a
//! session is the string `"SIGENDS"`; replies are `{"ok": value}` or
//! `{"error": {"kind": .., "message": .., "data": ..}}`. Arguments are kept
//! as raw JSON text (`RawValue`) until the handler deserializes them into
//! its own parameter types.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::message::{Arg, DecodeError, EncodeError, Incoming, RemoteError, Reply, Request};
use crate::Codec;

/// First bytes that select this codec. No leading whitespace is allowed, so
/// detection stays a one-byte decision.
pub(crate) const FIRST_BYTES: [u8; 2] = [b'[', b'"'];

/// The end-of-session message.
pub(crate) const SIGENDS: &[u8] = b"\"SIGENDS\"";

fn malformed(detail: impl fmt::Display) -> DecodeError {
    DecodeError::Malformed {
        codec: Codec::Json,
        detail: detail.to_string(),
    }
}

/// The three parts of a request, borrowed from the payload.
struct Parts<'a> {
    endpoint: Cow<'a, str>,
    args: Vec<Arg<'a>>,
    kwargs: Vec<(Cow<'a, str>, Arg<'a>)>,
}

impl<'de> de::Deserialize<'de> for Parts<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(PartsVisitor)
    }
}

struct PartsVisitor;

impl<'de> Visitor<'de> for PartsVisitor {
    type Value = Parts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request [endpoint, [args...], {kwargs...}]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parts<'de>, A::Error> {
        let endpoint: Cow<'de, str> = seq
            .next_element_seed(CowStr)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let args = seq
            .next_element_seed(ArgsSeed)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let kwargs = seq
            .next_element_seed(KwargsSeed)?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(4, &self));
        }
        Ok(Parts {
            endpoint,
            args,
            kwargs,
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

struct ArgsSeed;

impl<'de> de::DeserializeSeed<'de> for ArgsSeed {
    type Value = Vec<Arg<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArgsSeed {
    type Value = Vec<Arg<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of arguments")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut args = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            args.push(Arg::Json(raw));
        }
        Ok(args)
    }
}

struct KwargsSeed;

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
        while let Some(key) = map.next_key_seed(CowStr)? {
            let raw: &'de RawValue = map.next_value()?;
            kwargs.push((key, Arg::Json(raw)));
        }
        Ok(kwargs)
    }
}

/// Decodes a request payload, borrowing the raw text of every argument.
pub(crate) fn decode_request(payload: &[u8]) -> Result<Incoming<'_>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Incoming::EndSession(Codec::Json));
    }
    let parts: Parts<'_> = serde_json::from_slice(payload).map_err(malformed)?;
    Ok(Incoming::Request(Request {
        codec: Codec::Json,
        endpoint: parts.endpoint,
        args: parts.args,
        kwargs: parts.kwargs,
    }))
}

/// Deserializes one argument from its raw JSON text.
pub(crate) fn decode_arg<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
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
    out.push(b']');
    Ok(())
}

/// Writes `{"ok": value}`.
pub(crate) fn encode_ok<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(b"{\"ok\":");
    write(value, out)?;
    out.push(b'}');
    Ok(())
}

/// Writes `{"error": {"kind": .., "message": .., "data": ..}}`.
pub(crate) fn encode_error(err: &RemoteError, out: &mut Vec<u8>) {
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

/// Decodes a reply: `{"ok": T}`, `{"error": ..}`, or SIGENDS echoed back.
pub(crate) fn decode_reply<T: DeserializeOwned>(payload: &[u8]) -> Result<Reply<T>, DecodeError> {
    if payload == SIGENDS {
        return Ok(Reply::EndSession);
    }
    // One key, read raw first: `{"ok": null}` must stay distinct from a
    // missing key, and the body is typed only once we know which it is.
    let envelope: Vec<(Cow<'_, str>, &RawValue)> = serde_json::from_slice::<Envelope<'_>>(payload)
        .map_err(malformed)?
        .0;
    let [(key, body)] = envelope.as_slice() else {
        return Err(malformed(
            "a reply is an object with one key, \"ok\" or \"error\"",
        ));
    };
    match key.as_ref() {
        "ok" => serde_json::from_str(body.get())
            .map(Reply::Ok)
            .map_err(|e| DecodeError::Result(e.to_string())),
        "error" => serde_json::from_str(body.get())
            .map(Reply::Err)
            .map_err(|e| malformed(format!("bad error reply: {e}"))),
        other => Err(malformed(format!("unknown reply key {other:?}"))),
    }
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
