//! What `anyd.endpoints` says of each endpoint: [`EndpointInfo`] and its
//! [`ParamInfo`]s. The daemon's registry makes them, clients read them
//! (`anydctl endpoints`), so every feature set has them.

use serde::{Deserialize, Serialize};

/// One parameter of an endpoint, as introspection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The parameter name, when the endpoint declares names (callers can
    /// then pass it by keyword).
    pub name: Option<String>,
    /// The Rust type, without module paths (`Option<String>`).
    #[serde(rename = "type")]
    pub ty: String,
    /// The caller may leave it out (an `Option`, say).
    pub optional: bool,
}

/// One endpoint, as `anyd.endpoints` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// The name callers use.
    pub name: String,
    /// The wire parameters, in positional order.
    pub params: Vec<ParamInfo>,
    /// The Rust type of the result.
    pub returns: String,
    /// The documentation, possibly empty.
    pub doc: String,
    /// The endpoint streams: it sends items, `returns` is their type
    /// ([protocol section 8.1](crate::protocol#81-streams)). Absent from daemons that predate
    /// streams.
    #[serde(default)]
    pub stream: bool,
}

/// Stands for an argument the caller did not send: an `Option` becomes
/// `None` (and `()` is `()`), anything else fails and the call gets a
/// "missing argument" error. Types that take whatever comes (`Value`)
/// still need the argument: absent is not the same as `None`.
pub(crate) fn missing<T: serde::de::DeserializeOwned>() -> Option<T> {
    T::deserialize(Missing).ok()
}

/// The deserializer of an absent argument.
struct Missing;

impl<'de> serde::Deserializer<'de> for Missing {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("missing argument"))
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_none()
    }

    fn deserialize_unit<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
