//! A result (or a stream item) as it came, descriptors included.
//!
//! anydctl has no type for what a daemon returns, so it decodes a generic
//! value. A descriptor in a result is a placeholder in the payload,
//! `{"$fd": n}`, naming the n-th descriptor that came with the frame
//! (`SCM_RIGHTS`); decoded as a plain [`Value`], the placeholder would be
//! a map like any other, and the descriptor itself would be closed unseen
//! when the frame's decoding ends. [`Received`] is that generic value with
//! one more case: a map that is exactly a placeholder is taken as an
//! [`Fd`] while the frame is being decoded, which is the only time its
//! descriptor can be had (the library hands descriptors only to `Fd`'s
//! own `Deserialize`, inside the frame's context).
//!
//! A map that looks like a placeholder but names no descriptor that came
//! (a daemon echoing `{"$fd": 0}` as data, or a frame without
//! descriptors) stays data, shown as it came: anydctl shows what the
//! daemon sent rather than refusing a result the daemon meant as is.

use std::fmt;

use anyd::{Fd, Value};
use serde::de::value::MapDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The placeholder's one key (docs/PROTOCOL.md, descriptor passing).
const FD_KEY: &str = "$fd";

/// A generic value whose descriptors were taken from the frame they came
/// with.
#[derive(Debug)]
pub(crate) enum Received {
    /// Anything but a list or a map (or a whole value from pickle, which
    /// carries no descriptors).
    Plain(Value),
    /// A list.
    List(Vec<Received>),
    /// A map, in the daemon's order. Keys are plain values: a descriptor
    /// as a map key means nothing.
    Map(Vec<(Value, Received)>),
    /// A descriptor that came with the frame.
    Fd(Fd),
    /// A map shaped like a placeholder, `{"$fd": n}`, that names no
    /// descriptor that came with the frame, and why; shown as it came.
    Unresolved(Value, String),
}

impl From<Value> for Received {
    fn from(v: Value) -> Self {
        Received::Plain(v)
    }
}

impl Received {
    /// How many descriptors this holds.
    pub(crate) fn fd_count(&self) -> usize {
        match self {
            Received::Fd(_) => 1,
            Received::List(items) => items.iter().map(Received::fd_count).sum(),
            Received::Map(entries) => entries.iter().map(|(_, v)| v.fd_count()).sum(),
            Received::Plain(_) | Received::Unresolved(..) => 0,
        }
    }

    /// Why each placeholder-shaped map that stayed data did, in order.
    pub(crate) fn unresolved(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.gather_unresolved(&mut out);
        out
    }

    fn gather_unresolved<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Received::Unresolved(_, why) => out.push(why),
            Received::List(items) => items.iter().for_each(|i| i.gather_unresolved(out)),
            Received::Map(entries) => entries.iter().for_each(|(_, v)| v.gather_unresolved(out)),
            Received::Plain(_) | Received::Fd(_) => {}
        }
    }

    /// The value to print, each descriptor replaced by `{"$fd": shown}`,
    /// `shown` being what `describe` says of it; the descriptors go to
    /// `fds`, in the order they appear.
    pub(crate) fn into_value(self, fds: &mut Vec<Fd>, describe: &impl Fn(&Fd) -> Value) -> Value {
        match self {
            Received::Plain(v) | Received::Unresolved(v, _) => v,
            Received::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|i| i.into_value(fds, describe))
                    .collect(),
            ),
            Received::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value(fds, describe)))
                    .collect(),
            ),
            Received::Fd(fd) => {
                let shown = describe(&fd);
                fds.push(fd);
                Value::Map(vec![(Value::Str(FD_KEY.to_owned()), shown)])
            }
        }
    }
}

impl<'de> Deserialize<'de> for Received {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ReceivedVisitor)
    }
}

/// Builds a [`Received`] from what MessagePack and JSON can say; the
/// scalars as `Value`'s own `Deserialize` reads them.
struct ReceivedVisitor;

impl<'de> Visitor<'de> for ReceivedVisitor {
    type Value = Received;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Received, E> {
        Ok(Value::Bool(v).into())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Received, E> {
        Ok(Value::Int(v.into()).into())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Received, E> {
        Ok(Value::Int(v).into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Received, E> {
        Ok(Value::Int(v.into()).into())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Received, E> {
        // Beyond i128, the library's own form for a big integer.
        anyd::wire::to_value(&v)
            .map(Received::Plain)
            .map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Received, E> {
        Ok(Value::Float(v).into())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Received, E> {
        Ok(Value::Str(v.to_owned()).into())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Received, E> {
        Ok(Value::Str(v).into())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Received, E> {
        Ok(Value::Bytes(v.to_vec()).into())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Received, E> {
        Ok(Value::Bytes(v).into())
    }

    fn visit_none<E: de::Error>(self) -> Result<Received, E> {
        Ok(Value::Nil.into())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Received, D::Error> {
        Received::deserialize(d)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Received, E> {
        Ok(Value::Nil.into())
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Received, D::Error> {
        d.deserialize_any(ReceivedVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Received, A::Error> {
        // The hint comes from the peer's data; trust it only so far.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Received::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Received, A::Error> {
        let mut entries: Vec<(Value, Received)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        match placeholder_index(&entries) {
            Some(index) => Ok(take_fd(index).unwrap_or_else(|why| {
                let as_it_came = vec![(Value::Str(FD_KEY.to_owned()), Value::Int(index.into()))];
                Received::Unresolved(Value::Map(as_it_came), why)
            })),
            None => Ok(Received::Map(entries)),
        }
    }
}

/// The index a map names if it is exactly a placeholder, `{"$fd": n}`.
fn placeholder_index(entries: &[(Value, Received)]) -> Option<u64> {
    match entries {
        [(Value::Str(key), Received::Plain(Value::Int(n)))] if key == FD_KEY => {
            u64::try_from(*n).ok()
        }
        _ => None,
    }
}

/// Takes the descriptor `index` of the frame being decoded, through
/// `Fd`'s own `Deserialize` (the one way to the frame's descriptors), from
/// the placeholder rebuilt; or says why there is none.
fn take_fd(index: u64) -> Result<Received, String> {
    let placeholder = MapDeserializer::<_, de::value::Error>::new(std::iter::once((FD_KEY, index)));
    Fd::deserialize(placeholder)
        .map(Received::Fd)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_without_descriptors_come_through_as_they_are() {
        let r: Received =
            serde_json::from_str(r#"{"a":[1,-2,1.5,"x",null,true],"b":{"c":{}}}"#).unwrap();
        assert_eq!(r.fd_count(), 0);
        let v = r.into_value(&mut Vec::new(), &|_| unreachable!());
        let s = |t: &str| Value::Str(t.to_owned());
        assert_eq!(
            v,
            Value::Map(vec![
                (
                    s("a"),
                    Value::List(vec![
                        Value::Int(1),
                        Value::Int(-2),
                        Value::Float(1.5),
                        s("x"),
                        Value::Nil,
                        Value::Bool(true),
                    ])
                ),
                (s("b"), Value::Map(vec![(s("c"), Value::Map(vec![]))])),
            ])
        );
        // Bytes, as MessagePack's bin arrives.
        let bin = de::value::BytesDeserializer::<de::value::Error>::new(&[0, 255]);
        let r = Received::deserialize(bin).unwrap();
        assert_eq!(
            r.into_value(&mut Vec::new(), &|_| unreachable!()),
            Value::Bytes(vec![0, 255])
        );
    }

    #[test]
    fn a_placeholder_without_its_descriptor_stays_data() {
        // Outside a frame's context no descriptor came: the map is data.
        let r: Received =
            serde_json::from_str(r#"[{"$fd":0},{"$fd":"x"},{"$fd":1,"y":2}]"#).unwrap();
        assert_eq!(r.fd_count(), 0);
        let why = r.unresolved();
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].contains("no descriptor came"), "{why:?}");
        let v = r.into_value(&mut Vec::new(), &|_| unreachable!());
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"[{"$fd":0},{"$fd":"x"},{"$fd":1,"y":2}]"#
        );
    }
}
