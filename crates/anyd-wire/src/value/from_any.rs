//! [`Value`] out of any serde format (`impl Deserialize for Value`): what
//! the format visits becomes the variant that says it, and the tagged
//! variants `&Value`'s deserializer sends (tuple, set, bytearray, big
//! integer) come back as themselves. Rust values out of a `Value` is
//! `de.rs`.

use serde::de::{
    self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::{
    bigint, Value, BIGINT_TOKEN, BYTEARRAY_TOKEN, FROZENSET_TOKEN, SET_TOKEN, TUPLE_TOKEN,
    VALUE_TOKEN,
};

impl<'de> Deserialize<'de> for Value {
    /// Reads any self-describing format's data as a `Value`.
    ///
    /// Asks for a newtype struct with a private name: other deserializers
    /// ignore the name and deserialize as usual, while `&Value`'s
    /// deserializer answers with the exact variant (tuple, set, ...) that
    /// serde's data model cannot carry.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_newtype_struct(VALUE_TOKEN, ValueVisitor { tagged: true })
    }
}

/// Builds a `Value` from whatever the format visits.
struct ValueVisitor {
    /// Whether a map whose first key is one of the private tokens stands for
    /// a tagged variant. True only at the top of `Value::deserialize`, where
    /// `&Value`'s deserializer may send one; data from other formats only
    /// reaches the check through deserializers that ignore newtype names.
    tagged: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(bigint::from_u128(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        // Not `Value::deserialize`: a deserializer that answers our private
        // newtype request with `visit_newtype_struct(self)` would loop.
        deserializer.deserialize_any(ValueVisitor { tagged: false })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // The hint comes from the peer's data; trust it only so far.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(first) = map.next_key::<Value>()? else {
            return Ok(Value::Map(Vec::new()));
        };
        if self.tagged {
            if let Value::Str(token) = &first {
                if let Some(value) = tagged_variant(token, &mut map)? {
                    return Ok(value);
                }
            }
        }
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096) + 1);
        entries.push((first, map.next_value()?));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // Only formats that are not self-describing about enums get here
        // (serde_json and rmp_serde visit a map). Whether the variant is a
        // unit, tuple or struct one is unknown, so ask for newtype content,
        // which a self-describing format can give for any shape.
        let (variant, content) = data.variant::<Value>()?;
        let content = content.newtype_variant::<Value>()?;
        Ok(Value::Map(vec![(variant, content)]))
    }
}

/// Reads the payload of a tagged variant (see `visit_tagged`), or `None`
/// when `token` is not one of ours and the map is an ordinary one.
fn tagged_variant<'de, A: MapAccess<'de>>(
    token: &str,
    map: &mut A,
) -> Result<Option<Value>, A::Error> {
    let value = match token {
        TUPLE_TOKEN => Value::Tuple(map.next_value()?),
        SET_TOKEN => Value::Set(map.next_value()?),
        FROZENSET_TOKEN => Value::FrozenSet(map.next_value()?),
        BYTEARRAY_TOKEN => Value::ByteArray(map.next_value::<ByteBuf>()?.0),
        BIGINT_TOKEN => Value::BigInt(map.next_value::<ByteBuf>()?.0),
        _ => return Ok(None),
    };
    if map.next_key::<de::IgnoredAny>()?.is_some() {
        return Err(de::Error::custom(format_args!(
            "unexpected second key in a map tagged {token}"
        )));
    }
    Ok(Some(value))
}

/// A byte string read with `deserialize_byte_buf` (a `Vec<u8>` alone would
/// ask for a sequence).
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = ByteBuf;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}
