//! Deserializing Rust values from [`Value`] (owned by the value helper).
use super::{Value, ValueError};
/// Deserializes a Rust value from a [`Value`].
pub fn from_value<'de, T: serde::Deserialize<'de>>(_value: &'de Value) -> Result<T, ValueError> {
    todo!()
}
