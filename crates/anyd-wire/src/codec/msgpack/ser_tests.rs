//! The serializer held to rmp-serde's with structs as maps: the same
//! bytes, the same error, for every shape serde has.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::ser::SerializeSeq;
use serde::Serialize;

use super::Serializer;
use crate::Value;

fn theirs<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
        .map(|()| out)
        .map_err(|e| format!("{e:?}"))
}

fn ours<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    value
        .serialize(&mut Serializer::new(&mut out))
        .map(|()| out)
        .map_err(|e| format!("{e:?}"))
}

#[track_caller]
fn same<T: Serialize + ?Sized>(value: &T) {
    assert_eq!(ours(value), theirs(value));
}

#[derive(Serialize)]
struct Event {
    seq: u64,
    text: String,
}

#[derive(Serialize)]
enum Kind {
    Unit,
    Newtype(u16),
    Tuple(u8, String),
    Struct { x: i32, y: Option<Box<Kind>> },
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(Event);

#[derive(Serialize)]
struct TupleStruct(i8, f32, char);

/// A struct with flattened fields: a map of unknown length.
#[derive(Serialize)]
struct Flattened {
    seq: u64,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maybe: Option<u8>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Tagged {
    Start { at: u64 },
    Stop,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Event(Event),
}

/// rmp-serde's extension type: (type, data).
#[derive(Serialize)]
#[serde(rename = "_ExtStruct")]
struct Ext((i8, Bytes));

/// Bytes through `serialize_bytes`.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// A sequence whose length is not known until its end, nested.
struct Unsized(Vec<Vec<u8>>);

impl Serialize for Unsized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for inner in &self.0 {
            seq.serialize_element(&UnsizedInner(inner))?;
        }
        seq.end()
    }
}

struct UnsizedInner<'a>(&'a [u8]);

impl Serialize for UnsizedInner<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // An iterator that cannot say how long it is.
        s.collect_seq(self.0.iter().filter(|_| true))
    }
}

/// A value whose serialization fails halfway.
struct Failing;

impl Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&1u8)?;
        Err(serde::ser::Error::custom("no descriptor may go there"))
    }
}

#[test]
fn writes_what_rmp_serde_writes() {
    same(&Event {
        seq: 7,
        text: "hello".into(),
    });
    same(&Newtype(Event {
        seq: u64::MAX,
        text: "é".repeat(40),
    }));
    same(&Unit);
    same(&TupleStruct(-5, 1.5, '✓'));
    same(&[
        Kind::Unit,
        Kind::Newtype(300),
        Kind::Tuple(1, "a".into()),
        Kind::Struct {
            x: -70_000,
            y: Some(Box::new(Kind::Unit)),
        },
    ]);
    same(&Flattened {
        seq: 1,
        rest: BTreeMap::from([("a".into(), Value::Nil), ("b".into(), Value::Int(-1))]),
        maybe: None,
    });
    same(&Flattened {
        seq: 1,
        rest: (0..20).map(|i| (format!("k{i}"), Value::Int(i))).collect(),
        maybe: Some(3),
    });
    same(&[Tagged::Start { at: 3 }, Tagged::Stop]);
    same(&(
        Untagged::Number(-3),
        Untagged::Event(Event {
            seq: 0,
            text: String::new(),
        }),
    ));
    same(&Ext((5, Bytes(vec![1, 2, 3]))));
    same(&Ext((-1, Bytes(vec![0; 16]))));
    same(&Unsized(vec![
        vec![],
        vec![1; 15],
        vec![2; 16],
        vec![3; 70_000],
    ]));
    same(&(Some(1u8), None::<u8>, (), 'x', 2.5f32, -0.0f64, f64::NAN));
    same(&(u128::MAX, i128::MIN, -1i128));
    same(&Bytes(vec![7; 300]));
    same(&Bytes(vec![7; 70_000]));
    same(&BTreeMap::from([(1u8, "one"), (2, "two")]));
    same(&vec![true; 17]);
    same(&vec![0u8; 70_000]);
    // A Serialize that fails says so, in rmp-serde's error.
    assert_eq!(ours(&Failing), theirs(&Failing));
    assert!(ours(&Failing).is_err());
}

#[test]
fn numbers_and_lengths_at_every_boundary() {
    for n in [
        0u64,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u32::MAX as u64,
        u32::MAX as u64 + 1,
        u64::MAX,
    ] {
        same(&n);
        same(&(n as u32));
        same(&(n as u16));
        same(&(n as u8));
    }
    for n in [
        0i64,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        i64::MIN,
        127,
        128,
        i64::MAX,
    ] {
        same(&n);
        same(&(n as i32));
        same(&(n as i16));
        same(&(n as i8));
    }
    for len in [0, 15, 16, 31, 32, 255, 256, 65_535, 65_536] {
        same(&"x".repeat(len));
        same(&vec![1u8; len]);
        same(&(0..len).map(|i| (i, ())).collect::<BTreeMap<_, _>>());
    }
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Int(n.into())),
        any::<u64>().prop_map(|n| Value::Int(n.into())),
        any::<f64>().prop_map(Value::Float),
        ".{0,40}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            proptest::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_is_written_as_rmp_serde_writes_it(v in value()) {
        prop_assert_eq!(ours(&v), theirs(&v));
    }
}
