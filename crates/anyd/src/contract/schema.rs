//! The schemas of a document: the generator's settings (2020-12, shared
//! schemas under `#/components/schemas`), the schema of [`Fd`], the
//! permissive schema of a type with none, and the search for descriptors
//! in a schema.

use std::borrow::Cow;
use std::collections::HashSet;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use super::SCHEMAS_PATH;
use crate::fd::Fd;

/// The annotation that marks a descriptor's placeholder, and says how the
/// descriptor travels.
pub(crate) const FD_MARK: &str = "x-anyd-fd";

/// The annotation that names a Rust type whose schema is not known.
pub(crate) const RUST_TYPE: &str = "x-rust-type";

/// A generator for the schemas of one document: JSON Schema 2020-12,
/// what the types *decode* (serde's `Deserialize` side: for a parameter,
/// exactly what the daemon accepts), shared schemas where `$ref`s in the
/// document point.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = SCHEMAS_PATH.into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// The schema of a type whose schema is not known (a closure's parameter,
/// a type without `JsonSchema`): any value, and the Rust type's name.
pub(crate) fn permissive(rust_type: &str) -> Schema {
    json_schema!({ RUST_TYPE: rust_type })
}

impl JsonSchema for Fd {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Fd".into()
    }

    fn schema_id() -> Cow<'static, str> {
        "anyd::Fd".into()
    }

    /// The placeholder `{"$fd": n}` (docs/PROTOCOL.md section 8.2); the
    /// descriptor itself travels beside the frame as `SCM_RIGHTS`.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An open file descriptor. It travels beside the frame as SCM_RIGHTS ancillary data; the payload holds its index among the frame's descriptors.",
            "type": "object",
            "properties": { "$fd": { "type": "integer", "minimum": 0 } },
            "required": ["$fd"],
            FD_MARK: "SCM_RIGHTS"
        })
    }
}

/// Whether a value of `schema` may hold a descriptor: a placeholder's
/// schema anywhere inside it, following `$ref`s into `definitions`.
pub(crate) fn holds_fd(schema: &Schema, definitions: &Map<String, Value>) -> bool {
    let mut seen = HashSet::new();
    holds_fd_value(schema.as_value(), definitions, &mut seen)
}

fn holds_fd_value<'a>(
    value: &'a Value,
    definitions: &'a Map<String, Value>,
    seen: &mut HashSet<&'a str>,
) -> bool {
    match value {
        Value::Object(map) => {
            if map.contains_key(FD_MARK) {
                return true;
            }
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference
                    .strip_prefix('#')
                    .and_then(|r| r.strip_prefix(SCHEMAS_PATH))
                    .and_then(|r| r.strip_prefix('/'));
                if let Some(name) = name {
                    if seen.insert(name) {
                        if let Some(target) = definitions.get(name) {
                            if holds_fd_value(target, definitions, seen) {
                                return true;
                            }
                        }
                    }
                }
            }
            map.values().any(|v| holds_fd_value(v, definitions, seen))
        }
        Value::Array(items) => items.iter().any(|v| holds_fd_value(v, definitions, seen)),
        _ => false,
    }
}

/// Whether a Rust type name, as introspection writes it, names `Fd`:
/// what the daemon knows of a closure's parameter.
#[cfg(feature = "server")]
pub(crate) fn names_fd(rust_type: &str) -> bool {
    rust_type
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|w| w == "Fd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_found_through_references() {
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            log: Option<Fd>,
        }
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct Outer {
            inner: Vec<Inner>,
        }
        #[derive(JsonSchema)]
        #[allow(dead_code)]
        struct Plain {
            n: u32,
        }
        let mut g = generator();
        let outer = g.subschema_for::<Outer>();
        let plain = g.subschema_for::<Plain>();
        assert_eq!(outer, json_schema!({"$ref": "#/components/schemas/Outer"}));
        assert!(holds_fd(&outer, g.definitions()));
        assert!(!holds_fd(&plain, g.definitions()));
        assert!(names_fd("Option<Fd>") && !names_fd("Fdx") && !names_fd("String"));
    }
}
