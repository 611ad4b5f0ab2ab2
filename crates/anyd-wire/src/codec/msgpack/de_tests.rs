//! The deserializer held to rmp-serde's: the same value, the same bytes
//! read, the same error, for the types a handler or a client asks for and
//! for any bytes.

use std::collections::BTreeMap;
use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::super::{arg_error, decode_stream_item, decode_stream_reply, Cursor};
use super::Deserializer;
use crate::codec::{DecodeError, DecodeLimits};
use crate::message::StreamReply;
use crate::Value;

const DEPTH: usize = 128;

/// What rmp-serde makes of `bytes` as a `T`: the value (or error), and how
/// many bytes it read when it succeeded.
fn theirs<T: DeserializeOwned + Debug>(bytes: &[u8]) -> (String, Option<u64>) {
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    de.set_max_depth(DEPTH);
    let result = T::deserialize(&mut de);
    let read = result.is_ok().then(|| de.position());
    // The slice deserializer, which the codec used: the same again, but
    // borrowing.
    let mut by_ref = rmp_serde::Deserializer::from_read_ref(bytes);
    by_ref.set_max_depth(DEPTH);
    let by_ref = T::deserialize(&mut by_ref);
    assert_eq!(format!("{result:?}"), format!("{by_ref:?}"));
    (format!("{result:?}"), read)
}

fn ours<T: DeserializeOwned + Debug>(bytes: &[u8]) -> (String, Option<u64>) {
    let mut de = Deserializer::new(bytes, DEPTH);
    let result = T::deserialize(&mut de);
    let read = result.is_ok().then(|| de.position() as u64);
    (format!("{result:?}"), read)
}

#[track_caller]
fn same<T: DeserializeOwned + Debug>(bytes: &[u8]) {
    assert_eq!(ours::<T>(bytes), theirs::<T>(bytes), "{bytes:02x?}");
}

/// Every type of [`check_all`], from `bytes`.
fn same_for_all(bytes: &[u8]) {
    same::<Value>(bytes);
    same::<Event>(bytes);
    same::<Everything>(bytes);
    same::<Option<Option<u8>>>(bytes);
    same::<Kind>(bytes);
    same::<Vec<Kind>>(bytes);
    same::<Unit>(bytes);
    same::<Newtype>(bytes);
    same::<(u8, String, bool)>(bytes);
    same::<Vec<u8>>(bytes);
    same::<i128>(bytes);
    same::<u128>(bytes);
    same::<char>(bytes);
    same::<f32>(bytes);
    same::<BTreeMap<String, i64>>(bytes);
    same::<Flattened>(bytes);
    same::<Untagged>(bytes);
    same::<Tagged>(bytes);
    same::<Ext>(bytes);
    same::<Ignoring>(bytes);
    same::<Nested>(bytes);
}

/// The item of the streams benchmark.
#[derive(Debug, Serialize, Deserialize)]
struct Event {
    seq: u64,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Everything {
    a: u8,
    b: i16,
    c: u32,
    d: i64,
    e: f64,
    f: Option<String>,
    g: Vec<Event>,
    h: (bool, char),
    #[serde(default)]
    i: Option<Kind>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Kind {
    Unit,
    Newtype(u16),
    Tuple(u8, String),
    Struct { x: i32 },
}

#[derive(Debug, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Serialize, Deserialize)]
struct Newtype(Event);

#[derive(Debug, Serialize, Deserialize)]
struct Flattened {
    seq: u64,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
    Event(Event),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    Start { at: u64 },
    Stop,
}

/// rmp-serde's extension type.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Compared through its Debug.
#[serde(rename = "_ExtStruct")]
struct Ext((i8, serde_bytes_like::Bytes));

/// A struct around another with the same field names, and a map whose
/// keys are field names: the names a key is matched against are the
/// struct's being read, and a map's keys are its own.
#[derive(Debug, Serialize, Deserialize)]
struct Nested {
    seq: u64,
    text: Event,
    keys: BTreeMap<String, u64>,
}

/// Fields it does not know, skipped.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Compared through its Debug.
struct Ignoring {
    seq: u64,
}

/// Bytes as serde's `bytes`, without a dependency for it.
mod serde_bytes_like {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    #[allow(dead_code)] // Compared through its Debug.
    pub(super) struct Bytes(Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

fn named<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .unwrap();
    out
}

fn compact<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(value).unwrap()
}

fn samples() -> Vec<Vec<u8>> {
    let event = Event {
        seq: 7,
        text: "hello".into(),
    };
    let everything = Everything {
        a: 255,
        b: -300,
        c: 70_000,
        d: i64::MIN,
        e: 1.5,
        f: Some("é".into()),
        g: vec![Event {
            seq: u64::MAX,
            text: String::new(),
        }],
        h: (true, '✓'),
        i: Some(Kind::Struct { x: -1 }),
    };
    let nested = Nested {
        seq: 1,
        text: Event {
            seq: 2,
            text: "seq".into(),
        },
        keys: BTreeMap::from([("seq".to_owned(), 3), ("keys".to_owned(), 4)]),
    };
    let mut samples = vec![
        named(&nested),
        compact(&nested),
        // Keys out of the fields' order, and one not UTF-8 (\xff) but as
        // long as a field's name.
        b"\x82\xa4text\xa1x\xa3seq\x05".to_vec(),
        b"\x82\xa3s\xffq\x05\xa4text\xa1x".to_vec(),
        named(&event),
        compact(&event),
        named(&everything),
        compact(&everything),
        named(&Newtype(event)),
        named(&Unit),
        named(&Some(Some(3u8))),
        named(&(1u8, "x", false)),
        named(&u128::MAX),
        named(&i128::MIN),
        named(&-1i128),
        named(&BTreeMap::from([
            ("a".to_owned(), -5i64),
            ("b".to_owned(), 1 << 40),
        ])),
        named(&Untagged::Text("t".into())),
        named(&Tagged::Start { at: 3 }),
        named(&Tagged::Stop),
        named(&'x'),
        named(&2.5f32),
        named(&vec![1u8, 2, 3]),
        // Bytes (bin8) where a Vec<u8>, a Value, an i128 are asked for.
        b"\xc4\x03abc".to_vec(),
        [&b"\xc4\x10"[..], &[7; 16]].concat(),
        // An i128 as a fixarray (rmp-serde would read 16 raw bytes after a
        // fixarray of 16, which cannot be), and a bin8 of the wrong length.
        [&b"\x9f"[..], &[1; 16]].concat(),
        [&b"\xdc\x00\x10"[..], &[1; 16]].concat(),
        [&b"\x90"[..], &[1; 16]].concat(),
        b"\xc4\x02ab".to_vec(),
        // A string that is not UTF-8: bytes for a Vec<u8>, an error for a
        // String.
        b"\xa2\xff\xfe".to_vec(),
        b"\x82\xa3seq\x01\xa4text\xa2\xc3\x28".to_vec(),
        // Extensions.
        b"\xd4\x05\x01".to_vec(),
        b"\xc7\x03\xfe\x01\x02\x03".to_vec(),
        // Unit structs as nil and as [], and a unit variant as nil in a map.
        b"\xc0".to_vec(),
        b"\x90".to_vec(),
        b"\x81\xa4Unit\xc0".to_vec(),
        b"\x81\xa4Unit\x01".to_vec(),
        b"\xa4Unit".to_vec(),
        b"\xa7Newtype".to_vec(),
        b"\x00".to_vec(),
        b"\x82\xa4Unit\xc0\xa4Unit\xc0".to_vec(),
        // A struct as an array, too short, too long.
        b"\x92\x01\xa5hello".to_vec(),
        b"\x91\x01".to_vec(),
        b"\x93\x01\xa5hello\x02".to_vec(),
        // Unknown fields, a field twice, a field missing, a type mismatch.
        b"\x83\xa3seq\x01\xa1x\x92\x01\x81\xa1y\xc0\xa4text\xa0".to_vec(),
        b"\x82\xa3seq\x01\xa3seq\x02".to_vec(),
        b"\x81\xa3seq\x01".to_vec(),
        b"\x82\xa3seq\xa1x\xa4text\xa0".to_vec(),
        b"\x82\xa3seq\xd0\xff\xa4text\xa0".to_vec(),
        b"\x82\xa3seq\xcb\0\0\0\0\0\0\0\0\xa4text\xa0".to_vec(),
        // 16-bit and 32-bit headers.
        b"\xde\x00\x01\xa3seq\xcf\x00\x00\x00\x01\x00\x00\x00\x00".to_vec(),
        b"\xdf\x00\x00\x00\x00".to_vec(),
        b"\xdd\x00\x00\x00\x01\xda\x00\x01z".to_vec(),
        b"\xd9\x01z".to_vec(),
        b"\xdb\x00\x00\x00\x01z".to_vec(),
        // Truncated, empty, reserved, trailing.
        Vec::new(),
        b"\x82\xa3seq".to_vec(),
        b"\xa5hel".to_vec(),
        b"\xcd\x01".to_vec(),
        b"\xc1".to_vec(),
        b"\x01\x02".to_vec(),
    ];
    // Nesting at, and just past, the depth limit.
    for levels in [DEPTH - 2, DEPTH - 1, DEPTH, DEPTH + 1] {
        let mut nested = vec![0x91; levels];
        nested.push(0xc0);
        samples.push(nested);
        let mut maps = b"\x81\xa1k".repeat(levels);
        maps.push(0x01);
        samples.push(maps);
    }
    samples
}

#[test]
fn decodes_what_rmp_serde_decodes_and_fails_as_it_does() {
    for bytes in samples() {
        same_for_all(&bytes);
        // And every prefix, for the errors of a value cut short.
        for end in 0..bytes.len().min(40) {
            same_for_all(&bytes[..end]);
        }
    }
}

#[test]
fn the_benchmark_item_reads_in_one_pass_to_its_end() {
    let bytes = b"\x82\xa3seq\xcd\x01\x00\xa4text\xa5hello";
    let mut de = Deserializer::new(bytes, DEPTH);
    let event = Event::deserialize(&mut de).unwrap();
    assert_eq!((event.seq, event.text.as_str()), (256, "hello"));
    assert_eq!(de.position(), bytes.len());
}

/// Any value, as MessagePack bytes (rmp-serde's own writing of a
/// [`Value`], then perhaps a byte changed or the end cut).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Int(n.into())),
        any::<u64>().prop_map(|n| Value::Int(n.into())),
        any::<f64>().prop_map(Value::Float),
        "[a-z]{0,3}|seq|text|Unit|Newtype|Tuple|Struct|type|Start|Stop".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_decode_as_rmp_serde_decodes_them(
        bytes in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        same_for_all(&bytes);
    }

    #[test]
    fn values_and_their_mutants_decode_as_rmp_serde_decodes_them(
        v in value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        mutate in 0..3u8,
    ) {
        let mut bytes = named(&v);
        match mutate {
            0 => {}
            1 => {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            _ => bytes.truncate(at.index(bytes.len())),
        }
        same_for_all(&bytes);
    }
}

/// What a stream's frame decoded to before the one pass: the envelope's
/// value walked, then deserialized by rmp-serde.
fn item_before<T: DeserializeOwned>(payload: &[u8]) -> Result<StreamReply<T>, DecodeError> {
    if let Some(rest) = payload.strip_prefix(b"\x81\xa4item") {
        let mut c = Cursor { buf: rest, pos: 0 };
        let body = c.skip_value()?;
        c.finish()?;
        let mut de = rmp_serde::Deserializer::from_read_ref(body);
        de.set_max_depth(DEPTH);
        return T::deserialize(&mut de)
            .map(StreamReply::Item)
            .map_err(|e| DecodeError::Result(arg_error::<T>(e)));
    }
    decode_stream_reply(payload, &DecodeLimits::default())
}

#[track_caller]
fn same_item<T: DeserializeOwned + Debug>(payload: &[u8]) {
    let now = decode_stream_reply::<T>(payload, &DecodeLimits::default());
    assert_eq!(
        format!("{now:?}"),
        format!("{:?}", item_before::<T>(payload)),
        "{payload:02x?}"
    );
    // A client's fast path takes exactly the items, and nothing else.
    let item = match now {
        Ok(StreamReply::Item(v)) => Some(v),
        _ => None,
    };
    assert_eq!(
        format!("{:?}", decode_stream_item::<T>(payload)),
        format!("{item:?}"),
        "{payload:02x?}"
    );
}

fn same_item_for_all(body: &[u8]) {
    let payload = [&b"\x81\xa4item"[..], body].concat();
    same_item::<Value>(&payload);
    same_item::<Event>(&payload);
    same_item::<Everything>(&payload);
    same_item::<String>(&payload);
    same_item::<u64>(&payload);
    same_item::<Kind>(&payload);
    same_item::<Ignoring>(&payload);
    same_item::<Nested>(&payload);
}

#[test]
fn items_decode_and_fail_as_before() {
    for body in samples() {
        same_item_for_all(&body);
        for end in 0..body.len().min(40) {
            same_item_for_all(&body[..end]);
        }
        // A value with bytes after it.
        same_item_for_all(&[&body[..], b"\x01"].concat());
    }
}

/// The errors a client sees for a bad item, word for word.
#[test]
fn bad_items_are_refused_with_the_same_words() {
    let limits = DecodeLimits::default();
    let error = |payload: &[u8]| {
        decode_stream_reply::<Event>(payload, &limits)
            .unwrap_err()
            .to_string()
    };
    for (payload, expected) in [
        // The envelope's key is not "item", or there are two keys.
        (
            &b"\x81\xa4iten\x01"[..],
            "malformed MsgPack message: unknown reply key \"iten\"",
        ),
        (
            b"\x82\xa4item\x01\xa2ok\xc0",
            "malformed MsgPack message: a stream's frame is a map with one key, \"item\", \
             \"ok\" or \"error\"",
        ),
        // A value cut short, or followed by more.
        (
            b"\x81\xa4item\x82\xa3seq\x01\xa4text\xa5hel",
            "malformed MsgPack message: truncated MessagePack value",
        ),
        (
            b"\x81\xa4item\x82\xa3seq\x01\xa4text\xa0\xc0",
            "malformed MsgPack message: 1 trailing bytes after the message",
        ),
        (
            b"\x81\xa4item\x92\xc1\x01",
            "malformed MsgPack message: reserved MessagePack marker 0xc1",
        ),
        // Well formed, but not an Event.
        (
            b"\x81\xa4item\x82\xa3seq\xa1x\xa4text\xa0",
            "unexpected result type: expected Event, got str",
        ),
        (
            b"\x81\xa4item\x81\xa3seq\x01",
            "unexpected result type: missing field `text`",
        ),
        (
            b"\x81\xa4item\x07",
            "unexpected result type: invalid type: integer `7`, expected struct Event",
        ),
        // A string that is not UTF-8 is no String.
        (
            b"\x81\xa4item\x82\xa3seq\x01\xa4text\xa2\xc3\x28",
            "unexpected result type: string found to be invalid utf8: invalid utf-8 \
             sequence of 1 bytes from index 0",
        ),
    ] {
        assert_eq!(error(payload), expected, "{payload:02x?}");
    }
    // Too deep, whatever the type.
    let mut deep = b"\x81\xa4item".to_vec();
    deep.extend(vec![0x91; DEPTH]);
    deep.push(0xc0);
    assert!(matches!(
        decode_stream_reply::<Value>(&deep, &limits),
        Err(DecodeError::Result(crate::codec::ArgError::TooDeep))
    ));
}

proptest! {
    #[test]
    fn any_item_decodes_as_before(body in proptest::collection::vec(any::<u8>(), 0..48)) {
        same_item_for_all(&body);
    }

    #[test]
    fn values_as_items_and_their_mutants_decode_as_before(
        v in value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        mutate in 0..3u8,
    ) {
        let mut bytes = named(&v);
        match mutate {
            0 => {}
            1 => {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            _ => bytes.truncate(at.index(bytes.len())),
        }
        same_item_for_all(&bytes);
    }
}
