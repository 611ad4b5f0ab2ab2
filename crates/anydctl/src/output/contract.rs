//! A contract document as people read it (`anydctl describe`), and the
//! changes between two (`anydctl schema diff`). Types are written short:
//! `string`, `integer`, `State` (a schema of the document's, listed under
//! Types), `[T]`, `{string: T}`, `A | B`, `"up" | "down"`, `any`; what a
//! daemon wrote is shown without control characters (`text`).

use std::fmt::Write as _;

use anyd::contract::{Diff, Document, Method, Severity};
use serde_json::Value;

use super::text::escape;

/// The whole document.
pub(crate) fn text(doc: &Document) -> String {
    let mut out = String::new();
    let info = &doc.info;
    let version = if info.version.is_empty() {
        String::new()
    } else {
        format!(" {}", info.version)
    };
    let _ = writeln!(
        out,
        "{}{} (contract format {}, protocol {})",
        escape(&info.title),
        escape(&version),
        doc.contract,
        doc.protocol
    );
    if !info.description.is_empty() {
        let _ = writeln!(out, "{}", escape(&info.description));
    }
    out.push('\n');
    if doc.methods.is_empty() {
        out.push_str("(no endpoint you may call)\n");
    }
    for m in &doc.methods {
        method(&mut out, m);
    }
    if !doc.components.schemas.is_empty() {
        out.push_str("\nTypes:\n");
        for (name, schema) in &doc.components.schemas {
            let _ = writeln!(
                out,
                "  {} = {}",
                escape(name),
                definition(schema.as_value())
            );
        }
    }
    out
}

fn method(out: &mut String, m: &Method) {
    let params: Vec<String> = m
        .params
        .iter()
        .map(|p| {
            let optional = if p.required { "" } else { "?" };
            format!("{}{optional}: {}", p.name, short(p.schema.as_value()))
        })
        .collect();
    let result = short(m.result.schema.as_value());
    let result = if m.stream {
        format!("stream of {result}")
    } else {
        result
    };
    let _ = writeln!(
        out,
        "{}({}) -> {}",
        escape(&m.name),
        escape(&params.join(", ")),
        escape(&result)
    );
    for line in m.description.lines() {
        let _ = writeln!(out, "    {}", escape(line));
    }
    match &m.errors {
        Some(kinds) if !kinds.is_empty() => {
            let kinds: Vec<_> = kinds.iter().map(|k| k.kind.as_str()).collect();
            let _ = writeln!(out, "    errors: {}", escape(&kinds.join(", ")));
        }
        Some(_) => {}
        None => out.push_str("    errors: any kind\n"),
    }
    match (m.takes_fds(), m.returns_fds()) {
        (true, true) => out.push_str("    descriptors: takes and returns\n"),
        (true, false) => out.push_str("    descriptors: takes\n"),
        (false, true) => out.push_str("    descriptors: returns\n"),
        (false, false) => {}
    }
}

/// A schema in a few words.
pub(crate) fn short(schema: &Value) -> String {
    let Some(obj) = schema.as_object() else {
        return match schema {
            Value::Bool(false) => "nothing".into(),
            _ => "any".into(),
        };
    };
    if obj.contains_key("x-anyd-fd") {
        return "Fd".into();
    }
    if let Some(Value::String(r)) = obj.get("$ref") {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(Value::String(t)) = obj.get("x-rust-type") {
        return format!("any ({t})");
    }
    if let Some(c) = obj.get("const") {
        return c.to_string();
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        let values: Vec<_> = values.iter().map(Value::to_string).collect();
        return values.join(" | ");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = obj.get(key) {
            let branches: Vec<_> = branches.iter().map(short).collect();
            return branches.join(" | ");
        }
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return "any".into(),
    };
    let words: Vec<String> = types.iter().map(|t| one_type(t, obj)).collect();
    words.join(" | ")
}

fn one_type(t: &str, obj: &serde_json::Map<String, Value>) -> String {
    match t {
        "array" => match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(items)), _) => {
                let items: Vec<_> = items.iter().map(short).collect();
                format!("({})", items.join(", "))
            }
            (_, Some(items)) => format!("[{}]", short(items)),
            _ => "[any]".into(),
        },
        "object" => match (obj.get("properties"), obj.get("additionalProperties")) {
            (Some(Value::Object(props)), _) => fields(props, obj),
            (_, Some(v)) if v.is_object() => format!("{{string: {}}}", short(v)),
            _ => "object".into(),
        },
        other => other.to_owned(),
    }
}

fn fields(props: &serde_json::Map<String, Value>, obj: &serde_json::Map<String, Value>) -> String {
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<String> = props
        .iter()
        .map(|(name, schema)| {
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{name}{optional}: {}", short(schema))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// A shared schema: its shape, and its description if it has one.
fn definition(schema: &Value) -> String {
    let shape = escape(&short(schema)).into_owned();
    match schema.get("description").and_then(Value::as_str) {
        Some(d) => format!("{shape}  # {}", escape(d.lines().next().unwrap_or(""))),
        None => shape,
    }
}

/// The changes, a line each, and a count.
pub(crate) fn diff(d: &Diff) -> String {
    let mut out = String::new();
    for c in &d.changes {
        let _ = writeln!(out, "{}", escape(&c.to_string()));
    }
    let breaking = d.breaking().count();
    let compatible = d
        .changes
        .iter()
        .filter(|c| c.severity == Severity::Compatible)
        .count();
    let _ = match (breaking, compatible) {
        (0, 0) => writeln!(out, "no changes"),
        (0, n) => writeln!(out, "compatible: {n} change(s), none breaking"),
        (b, n) => writeln!(out, "BREAKING: {b} breaking change(s), {n} compatible"),
    };
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::short;

    #[test]
    fn types_in_a_few_words() {
        let cases = [
            (json!({"type": "string"}), "string"),
            (
                json!({"type": ["integer", "null"], "format": "uint16"}),
                "integer | null",
            ),
            (json!({"$ref": "#/components/schemas/State"}), "State"),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                "[string]",
            ),
            (
                json!({"type": "object", "additionalProperties": {"$ref": "#/components/schemas/T"}}),
                "{string: T}",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "string"}}, "required": ["a"]}),
                "{a: boolean, b?: string}",
            ),
            (json!({"enum": ["up", "down"]}), "\"up\" | \"down\""),
            (
                json!({"anyOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]}),
                "T | null",
            ),
            (json!({"x-rust-type": "Vec<u8>"}), "any (Vec<u8>)"),
            (json!({"type": "object", "x-anyd-fd": "SCM_RIGHTS"}), "Fd"),
            (json!({}), "any"),
            (
                json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}]}),
                "(integer, boolean)",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(short(&schema), expected, "{schema}");
        }
    }
}
