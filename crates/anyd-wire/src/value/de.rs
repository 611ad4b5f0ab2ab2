//! Rust values out of [`Value`] ([`from_value`], `impl Deserializer for
//! &Value`). [`Value`] out of any serde format (`impl Deserialize for
//! Value`) is `from_any.rs`.
//!
//! This is where a Python caller's pickled arguments meet a handler's Rust
//! types, so the deserializer is lenient where Python and Rust name the same
//! thing differently (a `bytes` for a `Vec<u8>`, an `int` for an `f64`, a
//! tuple for a struct) and says what it expected when it is not.
//! Writing values is `ser.rs`.

use serde::de::value::{BorrowedBytesDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, Expected, IntoDeserializer,
    Unexpected, VariantAccess, Visitor,
};

use super::{
    bigint, Value, ValueError, BIGINT_TOKEN, BYTEARRAY_TOKEN, FROZENSET_TOKEN, SET_TOKEN,
    TUPLE_TOKEN, VALUE_TOKEN,
};

/// Deserializes a Rust value from a [`Value`], borrowing strings and bytes
/// from it where the target type allows (`&str`, `&[u8]`).
///
/// Beyond the mirror image of [`to_value`](super::to_value):
///
/// - `Bytes` and `ByteArray` also deserialize as a sequence of `u8`, so a
///   Python `bytes` binds to a `Vec<u8>` or `[u8; N]`; and a list or tuple
///   of integers in `0..=255` is accepted where bytes are asked for.
/// - `Int` is accepted by float targets.
/// - Structs accept a `Map` with string keys, or a `List` or `Tuple` of the
///   fields in order.
/// - Enums accept `Str("Variant")` for a unit variant (or `{"Variant":
///   None}`), and a one-entry `Map` from the variant name to its content.
/// - Tuples, sets and frozensets are all sequences.
///
/// `from_value::<Value>(&v)` gives back `v` unchanged.
///
/// # Errors
///
/// When the value does not fit the type, with serde's wording: `invalid
/// type: string "x", expected u32`, `missing field `name``, `invalid value:
/// integer `300`, expected u8`, `invalid length 3, expected 2 elements in
/// sequence`. A [`Value::BigInt`] fits only `u128` (when in range), floats
/// and `Value`.
pub fn from_value<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

impl<'de> IntoDeserializer<'de, ValueError> for &'de Value {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// The `invalid type: ..., expected ...` error for `value`.
fn invalid_type(value: &Value, expected: &dyn Expected) -> ValueError {
    describe(value, |unexpected| {
        de::Error::invalid_type(unexpected, expected)
    })
}

/// The `invalid value: ..., expected ...` error for an integer that does not
/// fit the target.
fn out_of_range(value: &Value, expected: &dyn Expected) -> ValueError {
    describe(value, |unexpected| {
        de::Error::invalid_value(unexpected, expected)
    })
}

/// Calls `f` with serde's description of `value`. The callback shape lets
/// integers outside serde's `i64`/`u64` vocabulary be described with text
/// formatted here and borrowed by `Unexpected::Other`.
fn describe<R>(value: &Value, f: impl FnOnce(Unexpected<'_>) -> R) -> R {
    let text: String;
    let unexpected = match value {
        // A Python peer will know it by this name better than "unit value".
        Value::Nil => Unexpected::Other("None"),
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                Unexpected::Signed(v)
            } else if let Ok(v) = u64::try_from(*i) {
                Unexpected::Unsigned(v)
            } else {
                text = format!("integer `{i}`");
                Unexpected::Other(&text)
            }
        }
        Value::BigInt(bytes) => {
            text = match bigint::to_decimal(bytes) {
                Some(decimal) => format!("integer `{decimal}`"),
                None => format!("integer of {} bytes", bytes.len()),
            };
            Unexpected::Other(&text)
        }
        Value::Float(f) => Unexpected::Float(*f),
        Value::Str(s) => Unexpected::Str(s),
        Value::Bytes(b) | Value::ByteArray(b) => Unexpected::Bytes(b),
        Value::List(_) => Unexpected::Seq,
        Value::Tuple(_) => Unexpected::Other("tuple"),
        Value::Set(_) => Unexpected::Other("set"),
        Value::FrozenSet(_) => Unexpected::Other("frozenset"),
        Value::Map(_) => Unexpected::Map,
    };
    f(unexpected)
}

/// Visits `items` as a sequence; items left over are an error.
fn visit_items<'de, V: Visitor<'de>>(
    items: &'de [Value],
    visitor: V,
) -> Result<V::Value, ValueError> {
    let mut seq = SeqDeserializer::new(items.iter());
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

/// Visits `bytes` as a sequence of `u8`; bytes left over are an error.
fn visit_byte_items<'de, V: Visitor<'de>>(
    bytes: &'de [u8],
    visitor: V,
) -> Result<V::Value, ValueError> {
    let mut seq = SeqDeserializer::new(bytes.iter().copied());
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

/// Visits `entries` as a map; entries left over are an error.
fn visit_entries<'de, V: Visitor<'de>>(
    entries: &'de [(Value, Value)],
    visitor: V,
) -> Result<V::Value, ValueError> {
    let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (k, v)));
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

/// Hands `Value`'s own visitor a variant serde has no type for, as the
/// one-entry map `{token: payload}` (see [`ValueVisitor::visit_map`]).
fn visit_tagged<'de, V, P>(
    token: &'static str,
    payload: P,
    visitor: V,
) -> Result<V::Value, ValueError>
where
    V: Visitor<'de>,
    P: IntoDeserializer<'de, ValueError>,
{
    let mut map = MapDeserializer::new(std::iter::once((token, payload)));
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

impl<'de> Value {
    /// Integer targets up to 64 bits: serde's primitive visitors take
    /// `visit_i64` and `visit_u64` but not `visit_i128`, so a wider integer
    /// is reported here as out of range rather than as an odd type.
    fn deserialize_int64<V: Visitor<'de>>(&'de self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Int(i) if i64::try_from(*i).is_err() && u64::try_from(*i).is_err() => {
                Err(out_of_range(self, &visitor))
            }
            Value::BigInt(_) => Err(out_of_range(self, &visitor)),
            _ => self.deserialize_any(visitor),
        }
    }

    /// Float targets: Python code passes `1` where it means `1.0`.
    fn deserialize_float<V: Visitor<'de>>(&'de self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Int(i) => visitor.visit_f64(*i as f64),
            Value::BigInt(bytes) => {
                // Parsing the exact decimal rounds correctly, as Python's
                // float(int) does; too long to write means far beyond f64.
                match bigint::to_decimal(bytes).and_then(|d| d.parse::<f64>().ok()) {
                    Some(f) if f.is_finite() => visitor.visit_f64(f),
                    _ => Err(out_of_range(self, &visitor)),
                }
            }
            _ => self.deserialize_any(visitor),
        }
    }
}

impl<'de> Deserializer<'de> for &'de Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => {
                // The narrowest call first: every integer visitor takes
                // i64 and u64, only 128-bit ones take i128.
                if let Ok(v) = i64::try_from(*i) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    visitor.visit_u64(v)
                } else {
                    visitor.visit_i128(*i)
                }
            }
            Value::BigInt(bytes) => match bigint::to_u128(bytes) {
                Some(v) => visitor.visit_u128(v),
                None => Err(out_of_range(self, &visitor)),
            },
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(b) | Value::ByteArray(b) => visitor.visit_borrowed_bytes(b),
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_items(items, visitor),
            Value::Map(entries) => visit_entries(entries, visitor),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_int64(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_float(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Nil => visitor.visit_unit(),
            _ => Err(invalid_type(self, &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name != VALUE_TOKEN {
            return visitor.visit_newtype_struct(self);
        }
        // `Value`'s own `Deserialize` is asking: pass the variants serde's
        // data model would flatten as tagged maps, so `Value` comes back
        // exactly. Everything else is an ordinary visit.
        match self {
            Value::Tuple(items) => {
                visit_tagged(TUPLE_TOKEN, SeqDeserializer::new(items.iter()), visitor)
            }
            Value::Set(items) => {
                visit_tagged(SET_TOKEN, SeqDeserializer::new(items.iter()), visitor)
            }
            Value::FrozenSet(items) => {
                visit_tagged(FROZENSET_TOKEN, SeqDeserializer::new(items.iter()), visitor)
            }
            Value::ByteArray(b) => {
                visit_tagged(BYTEARRAY_TOKEN, BorrowedBytesDeserializer::new(b), visitor)
            }
            Value::BigInt(b) => {
                visit_tagged(BIGINT_TOKEN, BorrowedBytesDeserializer::new(b), visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_items(items, visitor),
            // A Python `bytes` argument for a `Vec<u8>` parameter.
            Value::Bytes(b) | Value::ByteArray(b) => visit_byte_items(b, visitor),
            _ => Err(invalid_type(self, &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_entries(entries, visitor),
            _ => Err(invalid_type(self, &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_entries(entries, visitor),
            // Positional fields, as rmp_serde writes structs by default.
            Value::List(items) | Value::Tuple(items) => visit_items(items, visitor),
            _ => Err(invalid_type(self, &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(_) => visitor.visit_enum(EnumDeserializer {
                variant: self,
                content: None,
            }),
            Value::Map(entries) => match entries.as_slice() {
                [(variant, content)] => visitor.visit_enum(EnumDeserializer {
                    variant,
                    content: Some(content),
                }),
                // serde_json's wording for the same mistake.
                _ => Err(de::Error::invalid_value(
                    Unexpected::Map,
                    &"map with a single key",
                )),
            },
            _ => Err(invalid_type(self, &visitor)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => visitor.visit_borrowed_bytes(b),
            Value::List(items) | Value::Tuple(items) => {
                // A list of small integers is how JSON-minded callers spell
                // bytes; anything else is left for the visitor to refuse.
                let bytes: Option<Vec<u8>> = items
                    .iter()
                    .map(|item| match item {
                        Value::Int(i) => u8::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect();
                match bytes {
                    Some(bytes) => visitor.visit_byte_buf(bytes),
                    None => visit_items(items, visitor),
                }
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i128 u128 char str string identifier
    }
}

/// An externally tagged enum: the variant (a name, or whatever key the map
/// had) and its content, absent for a bare-string unit variant.
struct EnumDeserializer<'de> {
    variant: &'de Value,
    content: Option<&'de Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer<'de> {
    type Error = ValueError;
    type Variant = VariantDeserializer<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantDeserializer<'de>), ValueError> {
        let variant = seed.deserialize(self.variant)?;
        Ok((
            variant,
            VariantDeserializer {
                content: self.content,
            },
        ))
    }
}

/// The content of the variant chosen by [`EnumDeserializer`].
struct VariantDeserializer<'de> {
    content: Option<&'de Value>,
}

impl<'de> VariantAccess<'de> for VariantDeserializer<'de> {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.content {
            None | Some(Value::Nil) => Ok(()),
            Some(other) => Err(invalid_type(other, &"unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ValueError> {
        match self.content {
            Some(content) => seed.deserialize(content),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.content {
            Some(content) => content.deserialize_tuple(len, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.content {
            Some(content) => content.deserialize_struct("", fields, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}
