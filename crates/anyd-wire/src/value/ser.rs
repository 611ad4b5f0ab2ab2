//! Rust values into [`Value`] ([`to_value`]), and [`Value`] into any serde
//! format (`impl Serialize for Value`).
//!
//! The mapping from Rust types follows `serde_json`'s, so a type's JSON and
//! its `Value` look alike; Rust tuples and tuple structs become `Tuple` and
//! byte buffers `Bytes`, which JSON cannot say. Reading back is `de.rs`.

use serde::ser::{self, Serialize, SerializeMap as _, SerializeSeq as _, SerializeTuple as _};

use super::{bigint, Value, ValueError, BIGINT_TOKEN, BYTEARRAY_TOKEN, FROZENSET_TOKEN, SET_TOKEN};

/// Converts any serializable value into a [`Value`].
///
/// Rust types map as in `serde_json`, except that tuples and tuple structs
/// give [`Value::Tuple`], byte buffers (`serialize_bytes`) give
/// [`Value::Bytes`], integers keep up to 128 bits (beyond that a `u128`
/// gives [`Value::BigInt`]), and map keys may be any value. Enums are
/// externally tagged: `E::A` is `Str("A")`, `E::B(x)` is `Map([("B", x)])`,
/// `E::C(x, y)` is `Map([("C", Tuple([x, y]))])` and `E::D { f }` is
/// `Map([("D", Map([("f", f)]))])`.
///
/// `to_value(&v)` for a `v: Value` gives `v` back unchanged.
///
/// # Errors
///
/// Only what the value's own `Serialize` reports (such as a `RefCell`
/// already borrowed): every shape in serde's data model has a `Value`.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

/// The serializer behind [`to_value`]: each call returns the finished value.
struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = StructBuilder;
    type SerializeStructVariant = VariantBuilder<StructBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }

    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        Ok(bigint::from_u128(v))
    }

    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        let inner = value.serialize(self)?;
        // The private names come from `impl Serialize for Value` below; any
        // other newtype is transparent, as in every serde format.
        Ok(match (name, inner) {
            (SET_TOKEN, Value::List(items)) => Value::Set(items),
            (FROZENSET_TOKEN, Value::List(items)) => Value::FrozenSet(items),
            (BYTEARRAY_TOKEN, Value::Bytes(bytes)) => Value::ByteArray(bytes),
            (BIGINT_TOKEN, Value::Str(decimal)) => bigint::from_decimal(&decimal)
                .ok_or_else(|| ValueError(format!("invalid big integer {decimal:?}")))?,
            (_, inner) => inner,
        })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(tagged(variant, to_value(value)?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len.unwrap_or(0), Value::List))
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len, Value::Tuple))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len, Value::Tuple))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<SeqBuilder>, ValueError> {
        Ok(VariantBuilder {
            variant,
            inner: SeqBuilder::new(len, Value::Tuple),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(capacity(len.unwrap_or(0))),
            key: None,
        })
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<StructBuilder, ValueError> {
        Ok(StructBuilder {
            entries: Vec::with_capacity(capacity(len)),
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<StructBuilder>, ValueError> {
        Ok(VariantBuilder {
            variant,
            inner: StructBuilder {
                entries: Vec::with_capacity(capacity(len)),
            },
        })
    }
}

/// A size hint comes from the value being serialized, which may be lying
/// (a hand-written `Serialize`); preallocate only up to a modest bound.
fn capacity(hint: usize) -> usize {
    hint.min(4096)
}

/// Externally tagged enum content: `{variant: content}`.
fn tagged(variant: &str, content: Value) -> Value {
    Value::Map(vec![(Value::Str(variant.to_owned()), content)])
}

/// Collects the items of a seq, tuple or tuple struct.
struct SeqBuilder {
    items: Vec<Value>,
    /// `Value::List` or `Value::Tuple`.
    wrap: fn(Vec<Value>) -> Value,
}

impl SeqBuilder {
    fn new(len: usize, wrap: fn(Vec<Value>) -> Value) -> Self {
        SeqBuilder {
            items: Vec::with_capacity(capacity(len)),
            wrap,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(to_value(value)?);
        Ok(())
    }

    fn finish(self) -> Value {
        (self.wrap)(self.items)
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

/// Collects a map's entries; keys may be any value.
struct MapBuilder {
    entries: Vec<(Value, Value)>,
    /// The key given to `serialize_key`, waiting for its value.
    key: Option<Value>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.key = Some(to_value(key)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ValueError("serialize_value called before serialize_key".into()))?;
        self.entries.push((key, to_value(value)?));
        Ok(())
    }

    fn serialize_entry<K, V>(&mut self, key: &K, value: &V) -> Result<(), ValueError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        self.entries.push((to_value(key)?, to_value(value)?));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.entries))
    }
}

/// Collects a struct's fields as a map with string keys.
struct StructBuilder {
    entries: Vec<(Value, Value)>,
}

impl ser::SerializeStruct for StructBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.entries
            .push((Value::Str(key.to_owned()), to_value(value)?));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.entries))
    }
}

/// A tuple or struct variant: the content, then wrapped as `{variant: ..}`.
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.inner.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(tagged(self.variant, self.inner.finish()))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<StructBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(tagged(self.variant, Value::Map(self.inner.entries)))
    }
}

/// Writes a `Value` with any serde serializer.
///
/// What each format keeps:
///
/// | `Value`                  | serde call                        | JSON                 | MessagePack (`rmp_serde`) |
/// |--------------------------|-----------------------------------|----------------------|---------------------------|
/// | `Nil`                    | `serialize_unit`                  | `null`               | nil                       |
/// | `Int` in `i64`/`u64`     | `serialize_i64` / `serialize_u64` | number               | int                       |
/// | `Int` beyond 64 bits     | `serialize_i128`                  | number (read back as a float) | 16-byte bin      |
/// | `BigInt` in `u128`       | `serialize_u128`                  | number (read back as a float) | 16-byte bin      |
/// | `BigInt` beyond          | decimal string                    | string               | str                       |
/// | `Bytes`, `ByteArray`     | `serialize_bytes`                 | array of numbers     | bin                       |
/// | `List`, `Set`, `FrozenSet` | sequence                        | array                | array                     |
/// | `Tuple`                  | `serialize_tuple`                 | array                | array                     |
/// | `Map`                    | map, keys as they are             | object (string, number or bool keys only) | map |
///
/// Sets, frozensets, bytearrays and big integers are wrapped in private
/// newtype names that other formats ignore and [`to_value`] reads, so that
/// `to_value(&v) == v`.
impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    serializer.serialize_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    serializer.serialize_u64(v)
                } else {
                    serializer.serialize_i128(*i)
                }
            }
            Value::BigInt(bytes) => {
                if let Some(v) = bigint::to_u128(bytes) {
                    return serializer.serialize_u128(v);
                }
                // No serde type holds it; a decimal string is what a person
                // or another language can read back exactly.
                let decimal = bigint::to_decimal(bytes).ok_or_else(|| {
                    ser::Error::custom(format!(
                        "integer of {} bytes has more than {} digits, too many to write in decimal",
                        bytes.len(),
                        bigint::MAX_DIGITS
                    ))
                })?;
                serializer.serialize_newtype_struct(BIGINT_TOKEN, &decimal)
            }
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::ByteArray(b) => serializer.serialize_newtype_struct(BYTEARRAY_TOKEN, &Bytes(b)),
            Value::List(items) => Items(items).serialize(serializer),
            Value::Tuple(items) => {
                let mut tuple = serializer.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            Value::Set(items) => serializer.serialize_newtype_struct(SET_TOKEN, &Items(items)),
            Value::FrozenSet(items) => {
                serializer.serialize_newtype_struct(FROZENSET_TOKEN, &Items(items))
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Items written as a serde sequence.
struct Items<'a>(&'a [Value]);

impl Serialize for Items<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// Bytes written with `serialize_bytes` (a `&[u8]` alone would be a sequence).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}
