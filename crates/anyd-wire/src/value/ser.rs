//! Serializing Rust values into [`Value`] (owned by the value helper).
use super::{Value, ValueError};
/// Converts any serializable value into a [`Value`].
pub fn to_value<T: serde::Serialize + ?Sized>(_value: &T) -> Result<Value, ValueError> {
    todo!()
}
