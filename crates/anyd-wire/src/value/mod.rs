//! A dynamic value: what the pickle codec decodes to and encodes from, what
//! an error reply's `data` holds, and what tools such as `anydctl` print.
//!
//! The native codecs (MessagePack, JSON) never go through `Value` on the hot
//! path: handlers deserialize their arguments straight from the request
//! bytes. `Value` exists for the places that have no static type: pickle
//! (which must be parsed as data before anything can be typed), error data,
//! and generic tools.
//!
//! The variants keep the distinctions Python makes (tuple or list, set,
//! bytes, arbitrary-size integers) so that a value read from a Python peer
//! is written back the same way.
//!
//! Converting to and from Rust types goes through serde: [`to_value`] is a
//! `Serializer` that builds a `Value`, [`from_value`] a `Deserializer` that
//! reads one, and `Value` itself implements `Serialize` and `Deserialize` so
//! it can be written by any serde format (`serde_json` for tools,
//! `rmp_serde`) and read back. Rust types map onto `Value` the way
//! `serde_json` maps them onto JSON: structs and maps become `Map`, enums are
//! externally tagged (`"Unit"`, `{"Newtype": value}`), `Option::None` and
//! `()` become `Nil`, Rust tuples become `Tuple`.
//!
//! `to_value(&value)` and `from_value::<Value>(&value)` give back the same
//! `Value`, even for the variants serde's data model has no word for (tuple
//! on the way in, set, frozenset, bytearray, big integers): those are marked
//! with private newtype names that other formats treat as transparent, so a
//! handler taking or returning a `Value` echoes a Python tuple as a tuple.
//! Formats such as JSON keep only what they can express; see the
//! `Serialize` impl in `ser.rs`. The
//! pickle codec itself lives in `codec::pickle`; this module does not know
//! pickle's opcodes.

mod bigint;
mod de;
mod from_any;
mod ser;
#[cfg(test)]
mod tests;

pub use de::from_value;
pub use ser::to_value;

/// A dynamically typed value, close to Python's data model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Python `None`, MessagePack nil, JSON null, Rust `()` and `None`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in 128 bits.
    Int(i128),
    /// An integer outside the `i128` range, as Python's pickle writes it:
    /// little-endian two's complement, minimal length.
    BigInt(Vec<u8>),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string (Python `bytes`).
    Bytes(Vec<u8>),
    /// A mutable byte string (Python `bytearray`).
    ByteArray(Vec<u8>),
    /// A list (Python `list`, MessagePack and JSON arrays, Rust `Vec`).
    List(Vec<Value>),
    /// A tuple (Python `tuple`, Rust tuples and tuple structs).
    Tuple(Vec<Value>),
    /// A mapping, in insertion order (Python `dict`, Rust structs and maps).
    Map(Vec<(Value, Value)>),
    /// A Python `set`.
    Set(Vec<Value>),
    /// A Python `frozenset`.
    FrozenSet(Vec<Value>),
}

impl Value {
    /// The Python name of this value's type (`int`, `str`, `dict`, ...),
    /// for messages that tell a caller what it sent.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Map(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
        }
    }

    /// The string inside a [`Value::Str`], if that is what this is.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list, tuple, set or frozenset.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => Some(v),
            _ => None,
        }
    }

    /// The entries of a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Looks a string key up in a map; `None` for a missing key or a non-map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

/// The newtype name `Value`'s `Deserialize` asks for, so that this module's
/// own deserializer can hand over the variants serde has no type for (see
/// `de.rs`). Other deserializers ignore newtype names, and so see an
/// ordinary `deserialize_any`.
const VALUE_TOKEN: &str = "$anyd::private::Value";
/// Newtype names `Value`'s `Serialize` wraps a set, frozenset, bytearray or
/// big integer in, so that [`to_value`] can rebuild the exact variant. Other
/// serializers write the inner sequence, bytes or decimal string.
const SET_TOKEN: &str = "$anyd::private::Set";
/// See [`SET_TOKEN`].
const FROZENSET_TOKEN: &str = "$anyd::private::FrozenSet";
/// See [`SET_TOKEN`].
const BYTEARRAY_TOKEN: &str = "$anyd::private::ByteArray";
/// See [`SET_TOKEN`].
const BIGINT_TOKEN: &str = "$anyd::private::BigInt";
/// The key of the one-entry map `de.rs` uses to pass a tuple to `Value`'s
/// `Deserialize`; the other variants reuse the `*_TOKEN` names above.
const TUPLE_TOKEN: &str = "$anyd::private::Tuple";

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v.into())
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

/// Why a value could not be converted to or from a Rust type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub(crate) String);

impl serde::ser::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}
