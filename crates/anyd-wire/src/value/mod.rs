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

mod de;
mod ser;

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
