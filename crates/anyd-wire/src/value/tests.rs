//! Tests of the serde glue: Rust types through `Value` and back, `Value`
//! through other formats and back, error wording, and properties.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{from_value, to_value, Value};

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// `2**200`, as pickle writes it: 25 zero bytes then 0x01.
fn two_200() -> Value {
    let mut bytes = vec![0u8; 25];
    bytes.push(1);
    Value::BigInt(bytes)
}

/// Serializes `value`, checks the `Value` is `expected`, and reads it back.
fn round_trip<T>(value: &T, expected: Value)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + Debug,
{
    let v = to_value(value).expect("to_value");
    assert_eq!(v, expected, "to_value of {value:?}");
    let back: T = from_value(&v).expect("from_value");
    assert_eq!(&back, value);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Named {
    name: String,
    count: u32,
    ratio: f64,
    tags: Vec<String>,
    maybe: Option<i8>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Pair(i32, String);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Meters(f64);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Marker;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Labelled { label: String, sides: u8 },
}

#[test]
fn named_struct_round_trips_as_map() {
    let value = Named {
        name: "n".into(),
        count: 3,
        ratio: 0.5,
        tags: vec!["a".into(), "b".into()],
        maybe: None,
    };
    round_trip(
        &value,
        map(vec![
            ("name", s("n")),
            ("count", Value::Int(3)),
            ("ratio", Value::Float(0.5)),
            ("tags", Value::List(vec![s("a"), s("b")])),
            ("maybe", Value::Nil),
        ]),
    );
}

#[test]
fn tuple_unit_and_newtype_structs_round_trip() {
    round_trip(
        &Pair(-1, "x".into()),
        Value::Tuple(vec![Value::Int(-1), s("x")]),
    );
    round_trip(&Marker, Value::Nil);
    round_trip(&Meters(2.5), Value::Float(2.5));
    round_trip(&(), Value::Nil);
}

#[test]
fn enum_variants_are_externally_tagged() {
    round_trip(&Shape::Empty, s("Empty"));
    round_trip(
        &Shape::Circle(1.5),
        map(vec![("Circle", Value::Float(1.5))]),
    );
    round_trip(
        &Shape::Rect(2, 3),
        map(vec![(
            "Rect",
            Value::Tuple(vec![Value::Int(2), Value::Int(3)]),
        )]),
    );
    round_trip(
        &Shape::Labelled {
            label: "tri".into(),
            sides: 3,
        },
        map(vec![(
            "Labelled",
            map(vec![("label", s("tri")), ("sides", Value::Int(3))]),
        )]),
    );
}

#[test]
fn enum_accepts_python_spellings() {
    // {"Empty": None} for a unit variant, a list for a tuple variant.
    let v = map(vec![("Empty", Value::Nil)]);
    assert_eq!(from_value::<Shape>(&v).unwrap(), Shape::Empty);
    let v = map(vec![(
        "Rect",
        Value::List(vec![Value::Int(4), Value::Int(5)]),
    )]);
    assert_eq!(from_value::<Shape>(&v).unwrap(), Shape::Rect(4, 5));
}

#[test]
fn options_round_trip() {
    round_trip(&Some(5u8), Value::Int(5));
    round_trip(&None::<u8>, Value::Nil);
    round_trip(&Some(Some(true)), Value::Bool(true));
}

#[test]
fn nested_collections_round_trip() {
    let mut btree = BTreeMap::new();
    btree.insert("b".to_owned(), vec![vec![1u16], vec![]]);
    btree.insert("a".to_owned(), vec![vec![2, 3]]);
    round_trip(
        &btree,
        map(vec![
            (
                "a",
                Value::List(vec![Value::List(vec![Value::Int(2), Value::Int(3)])]),
            ),
            (
                "b",
                Value::List(vec![Value::List(vec![Value::Int(1)]), Value::List(vec![])]),
            ),
        ]),
    );

    let mut hash = HashMap::new();
    hash.insert(7i64, Some("seven".to_owned()));
    hash.insert(-1, None);
    let v = to_value(&hash).unwrap();
    let back: HashMap<i64, Option<String>> = from_value(&v).unwrap();
    assert_eq!(back, hash);
    // Integer keys stay integers: a Python dict {7: ...} is what we mean.
    assert!(v.as_map().unwrap().iter().any(|(k, _)| *k == Value::Int(7)));
}

#[test]
fn tuples_round_trip_as_tuple() {
    round_trip(
        &(1u8, "two".to_owned(), 3.0f64, ('c', false)),
        Value::Tuple(vec![
            Value::Int(1),
            s("two"),
            Value::Float(3.0),
            Value::Tuple(vec![s("c"), Value::Bool(false)]),
        ]),
    );
}

#[test]
fn char_round_trips_as_str() {
    round_trip(&'é', s("é"));
    let err = from_value::<char>(&s("ab")).unwrap_err();
    assert!(err.to_string().contains("expected a character"), "{err}");
}

#[test]
fn integer_extremes_round_trip() {
    round_trip(&i128::MIN, Value::Int(i128::MIN));
    round_trip(&i128::MAX, Value::Int(i128::MAX));
    round_trip(&u64::MAX, Value::Int(u64::MAX.into()));
    round_trip(&i64::MIN, Value::Int(i64::MIN.into()));
    round_trip(&0u128, Value::Int(0));
    // pickle.encode_long(2**128 - 1)
    let mut u128_max = vec![0xff; 16];
    u128_max.push(0);
    round_trip(&u128::MAX, Value::BigInt(u128_max));
    round_trip(&(1u128 << 127), {
        let mut b = vec![0u8; 15];
        b.extend([0x80, 0]);
        Value::BigInt(b)
    });
}

#[test]
fn narrow_integer_targets_accept_int() {
    assert_eq!(from_value::<u8>(&Value::Int(5)).unwrap(), 5);
    assert_eq!(from_value::<i16>(&Value::Int(-300)).unwrap(), -300);
    assert_eq!(
        from_value::<u64>(&Value::Int(u64::MAX.into())).unwrap(),
        u64::MAX
    );
    assert_eq!(from_value::<f64>(&Value::Int(3)).unwrap(), 3.0);
    assert_eq!(from_value::<f32>(&Value::Int(-2)).unwrap(), -2.0);
    assert_eq!(from_value::<f64>(&two_200()).unwrap(), 2f64.powi(200));
}

/// Serializes its bytes with `serialize_bytes`, as `serde_bytes` would.
#[derive(Debug, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

#[test]
fn bytes_serialize_as_bytes_and_bind_to_vec_u8() {
    let v = to_value(&Blob(vec![0, 1, 255])).unwrap();
    assert_eq!(v, Value::Bytes(vec![0, 1, 255]));
    // A Python `bytes` (or `bytearray`) argument for a `Vec<u8>` parameter.
    assert_eq!(from_value::<Vec<u8>>(&v).unwrap(), vec![0, 1, 255]);
    let ba = Value::ByteArray(vec![9, 8]);
    assert_eq!(from_value::<Vec<u8>>(&ba).unwrap(), vec![9, 8]);
    assert_eq!(from_value::<[u8; 3]>(&v).unwrap(), [0, 1, 255]);
    let err = from_value::<[u8; 2]>(&v).unwrap_err();
    assert!(err.to_string().contains("invalid length 3"), "{err}");
    // Borrowed straight out of the value.
    assert_eq!(from_value::<&[u8]>(&v).unwrap(), &[0, 1, 255]);
    assert_eq!(from_value::<&str>(&s("borrowed")).unwrap(), "borrowed");
}

#[test]
fn byte_targets_accept_lists_of_small_ints() {
    // What a `serde_bytes::ByteBuf` visitor sees for `[1, 2]`.
    struct Buf(Vec<u8>);
    impl<'de> Deserialize<'de> for Buf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Buf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(v.to_vec()))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
    let v = Value::List(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(from_value::<Buf>(&v).unwrap().0, vec![1, 2]);
    let v = Value::List(vec![Value::Int(1), Value::Int(256)]);
    let err = from_value::<Buf>(&v).err().unwrap();
    assert!(err.to_string().contains("expected bytes"), "{err}");
}

#[test]
fn struct_accepts_positional_fields() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }
    let v = Value::Tuple(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(from_value::<Point>(&v).unwrap(), Point { x: 1, y: 2 });
}

#[test]
fn serde_attributes_are_honoured() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Renamed {
        long_name: u8,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        gone: Option<u8>,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Internally {
        A { n: u8 },
    }
    let mut rest = BTreeMap::new();
    rest.insert("extra".to_owned(), Value::Tuple(vec![Value::Nil]));
    let value = Renamed {
        long_name: 1,
        gone: None,
        rest,
    };
    let v = to_value(&value).unwrap();
    assert_eq!(
        v,
        map(vec![
            ("longName", Value::Int(1)),
            ("extra", Value::Tuple(vec![Value::Nil])),
        ])
    );
    // Through `flatten`, serde buffers the content and the tuple becomes a
    // plain sequence; the rest survives.
    let back: Renamed = from_value(&v).unwrap();
    assert_eq!(back.long_name, 1);
    assert_eq!(back.rest.get("extra"), Some(&Value::List(vec![Value::Nil])));

    round_trip(
        &Internally::A { n: 4 },
        map(vec![("type", s("A")), ("n", Value::Int(4))]),
    );
}

#[test]
fn value_into_value_is_identity_for_every_variant() {
    let v = Value::List(vec![
        Value::Nil,
        Value::Bool(true),
        Value::Int(-7),
        Value::Int(i128::MIN),
        two_200(),
        Value::Float(-0.25),
        s("str"),
        Value::Bytes(vec![1, 2]),
        Value::ByteArray(vec![3]),
        Value::Tuple(vec![Value::Set(vec![Value::Int(1)]), Value::Tuple(vec![])]),
        Value::FrozenSet(vec![s("f")]),
        Value::Map(vec![
            (
                Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
                s("tuple key"),
            ),
            (Value::Int(3), Value::ByteArray(vec![])),
        ]),
    ]);
    assert_eq!(to_value(&v).unwrap(), v);
    assert_eq!(from_value::<Value>(&v).unwrap(), v);
    // A handler returning a struct that holds a `Value` keeps it exact too.
    #[derive(Serialize, Deserialize)]
    struct Holder {
        inner: Value,
    }
    let held = to_value(&Holder { inner: v.clone() }).unwrap();
    assert_eq!(held.get("inner"), Some(&v));
    assert_eq!(from_value::<Holder>(&held).unwrap().inner, v);
}

#[test]
fn private_tokens_from_other_formats_are_plain_keys() {
    // serde_json honours newtype names, so the tagged-map convention between
    // `&Value` and `Value` never applies to a JSON peer's objects.
    let json = r#"{"$anyd::private::Tuple":[1]}"#;
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        v,
        map(vec![(
            "$anyd::private::Tuple",
            Value::List(vec![Value::Int(1)])
        )])
    );
}

/// A representative value with every variant, for the format tests.
fn every_variant() -> Value {
    map(vec![
        ("nil", Value::Nil),
        ("bool", Value::Bool(false)),
        ("int", Value::Int(-5)),
        ("u64", Value::Int(u64::MAX.into())),
        ("float", Value::Float(1.5)),
        ("str", s("héllo")),
        ("bytes", Value::Bytes(vec![0, 255])),
        ("bytearray", Value::ByteArray(vec![7])),
        ("list", Value::List(vec![Value::Int(1), s("a")])),
        ("tuple", Value::Tuple(vec![Value::Int(2)])),
        ("set", Value::Set(vec![Value::Int(3)])),
        ("frozenset", Value::FrozenSet(vec![Value::Int(4)])),
        ("big", two_200()),
        ("nested", map(vec![("k", Value::List(vec![]))])),
    ])
}

/// What `every_variant` should read back as from a format that has only
/// arrays for sequences and renders big integers as decimal strings.
/// `bytes` is how that format rendered a byte string.
fn every_variant_as_read_back(bytes: fn(Vec<u8>) -> Value) -> Value {
    map(vec![
        ("nil", Value::Nil),
        ("bool", Value::Bool(false)),
        ("int", Value::Int(-5)),
        ("u64", Value::Int(u64::MAX.into())),
        ("float", Value::Float(1.5)),
        ("str", s("héllo")),
        ("bytes", bytes(vec![0, 255])),
        ("bytearray", bytes(vec![7])),
        ("list", Value::List(vec![Value::Int(1), s("a")])),
        ("tuple", Value::List(vec![Value::Int(2)])),
        ("set", Value::List(vec![Value::Int(3)])),
        ("frozenset", Value::List(vec![Value::Int(4)])),
        (
            "big",
            s("1606938044258990275541962092341162602522202993782792835301376"),
        ),
        ("nested", map(vec![("k", Value::List(vec![]))])),
    ])
}

#[test]
fn json_round_trip_keeps_what_json_can_say() {
    let json = serde_json::to_string(&every_variant()).unwrap();
    assert!(json.contains(r#""bytes":[0,255]"#), "{json}");
    assert!(json.contains(r#""tuple":[2]"#), "{json}");
    let back: Value = serde_json::from_str(&json).unwrap();
    // JSON has arrays only: tuples, sets and byte strings come back as
    // lists (bytes as lists of numbers), big integers as strings.
    let as_list = |b: Vec<u8>| Value::List(b.into_iter().map(|x| Value::Int(x.into())).collect());
    assert_eq!(back, every_variant_as_read_back(as_list));
}

#[test]
fn json_writes_wide_ints_as_numbers() {
    let json = serde_json::to_string(&Value::Int(1 << 70)).unwrap();
    assert_eq!(json, "1180591620717411303424");
    // serde_json reads integers beyond u64 as floats.
    let back: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back, Value::Float(2f64.powi(70)));
}

#[test]
fn msgpack_round_trip_keeps_bytes() {
    let packed = rmp_serde::to_vec(&every_variant()).unwrap();
    let back: Value = rmp_serde::from_slice(&packed).unwrap();
    // MessagePack has bin: byte strings stay bytes (a bytearray becomes
    // bytes); tuples and sets are arrays, big integers strings.
    assert_eq!(back, every_variant_as_read_back(Value::Bytes));
}

#[test]
fn msgpack_writes_structs_positionally_and_we_read_them() {
    // rmp_serde's default struct encoding is an array of fields.
    let packed = rmp_serde::to_vec(&Named {
        name: "n".into(),
        count: 1,
        ratio: 2.0,
        tags: vec![],
        maybe: Some(-3),
    })
    .unwrap();
    let v: Value = rmp_serde::from_slice(&packed).unwrap();
    assert!(matches!(v, Value::List(_)), "{v:?}");
    let named: Named = from_value(&v).unwrap();
    assert_eq!(named.maybe, Some(-3));
}

#[test]
fn wrong_type_names_what_was_expected() {
    let err = from_value::<u32>(&s("x")).unwrap_err();
    assert_eq!(err.to_string(), r#"invalid type: string "x", expected u32"#);
    let err = from_value::<String>(&Value::Int(5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `5`, expected a string"
    );
    let err = from_value::<Vec<u8>>(&Value::Nil).unwrap_err();
    assert_eq!(err.to_string(), "invalid type: None, expected a sequence");
    let err = from_value::<Named>(&Value::Set(vec![])).unwrap_err();
    assert_eq!(err.to_string(), "invalid type: set, expected struct Named");
    let err = from_value::<u8>(&Value::Int(300)).unwrap_err();
    assert_eq!(err.to_string(), "invalid value: integer `300`, expected u8");
    let err = from_value::<Shape>(&Value::Int(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid type: integer `1`, expected enum Shape"
    );
    let err = from_value::<Shape>(&s("Hexagon")).unwrap_err();
    assert!(
        err.to_string().starts_with("unknown variant `Hexagon`"),
        "{err}"
    );
}

#[test]
fn missing_struct_field_is_named() {
    let v = map(vec![("name", s("n")), ("ratio", Value::Float(1.0))]);
    let err = from_value::<Named>(&v).unwrap_err();
    assert_eq!(err.to_string(), "missing field `count`");
}

#[test]
fn big_int_into_u64_says_too_large() {
    let err = from_value::<u64>(&two_200()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value: integer `1606938044258990275541962092341162602522202993782792835301376`, \
         expected u64"
    );
    let err = from_value::<u64>(&Value::Int(1 << 64)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value: integer `18446744073709551616`, expected u64"
    );
    let err = from_value::<u128>(&two_200()).unwrap_err();
    assert!(err.to_string().contains("expected u128"), "{err}");
    // serde_json has no 2**200 either; the message still names the number.
    let err = from_value::<serde_json::Value>(&two_200()).unwrap_err();
    assert!(err.to_string().contains("16069380442589902755"), "{err}");
}

#[test]
fn trailing_items_are_an_error() {
    let v = Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
    let err = from_value::<(i32, i32)>(&v).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid length 3, expected 2 elements in sequence"
    );
}

#[test]
fn from_conversions() {
    assert_eq!(Value::from(true), Value::Bool(true));
    assert_eq!(Value::from(-1i32), Value::Int(-1));
    assert_eq!(Value::from(i64::MIN), Value::Int(i64::MIN.into()));
    assert_eq!(Value::from(7u32), Value::Int(7));
    assert_eq!(Value::from(u64::MAX), Value::Int(u64::MAX.into()));
    assert_eq!(Value::from(0.5), Value::Float(0.5));
    assert_eq!(Value::from("a"), s("a"));
    assert_eq!(Value::from(String::from("b")), s("b"));
    assert_eq!(Value::from(vec![Value::Nil]), Value::List(vec![Value::Nil]));
}

/// `a == b`, except that floats may differ in their last bits: without its
/// `float_roundtrip` feature, serde_json parses some floats a few ulps off
/// (`9.030687790007536e-42` by one, `9.972130040089457e306` by two). That
/// is serde_json's best-effort parsing, not this module.
fn same_but_float_rounding(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || x.to_bits().abs_diff(y.to_bits()) <= 8,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_but_float_rounding(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_but_float_rounding(va, vb))
        }
        _ => a == b,
    }
}

/// Values every self-describing format can carry exactly: lists, maps with
/// string keys, strings, 64-bit integers, booleans, nil, finite floats.
fn plain_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(i.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        ".*".prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((".*", inner), 0..6).prop_map(|entries| {
                Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::Str(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

/// Any value at all (finite floats, so that `==` means what it says).
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i128>().prop_map(Value::Int),
        (any::<bool>(), prop::collection::vec(any::<u8>(), 17..40)).prop_map(|(neg, mut b)| {
            // Outside i128 and minimal: a sign byte the rest does not imply.
            b.push(if neg { 0x80 } else { 0x7f });
            Value::BigInt(b)
        }),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        ".*".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::ByteArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items.clone().prop_map(Value::List),
            items.clone().prop_map(Value::Tuple),
            items.clone().prop_map(Value::Set),
            items.prop_map(Value::FrozenSet),
            prop::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn plain_values_round_trip_through_value_serde(v in plain_value()) {
        prop_assert_eq!(from_value::<Value>(&v).unwrap(), v.clone());
        prop_assert_eq!(to_value(&v).unwrap(), v);
    }

    #[test]
    fn plain_values_round_trip_through_json_and_msgpack(v in plain_value()) {
        let json = serde_json::to_string(&v).unwrap();
        let back = serde_json::from_str::<Value>(&json).unwrap();
        prop_assert!(same_but_float_rounding(&back, &v), "{:?} != {:?}", back, v);
        let packed = rmp_serde::to_vec(&v).unwrap();
        prop_assert_eq!(rmp_serde::from_slice::<Value>(&packed).unwrap(), v);
    }

    #[test]
    fn any_value_round_trips_through_value_serde(v in any_value()) {
        prop_assert_eq!(from_value::<Value>(&v).unwrap(), v.clone());
        prop_assert_eq!(to_value(&v).unwrap(), v);
    }

    #[test]
    fn any_value_serializes_with_msgpack(v in any_value()) {
        // Never panics, whatever the variants; reading back is lossy by
        // design (see `msgpack_round_trip_keeps_bytes`).
        let packed = rmp_serde::to_vec(&v).unwrap();
        prop_assert!(rmp_serde::from_slice::<Value>(&packed).is_ok());
    }
}
