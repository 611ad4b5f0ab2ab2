//! Whether one schema allows every value another does: types compared as
//! sets of JSON values, through `$ref`s, for the part of JSON Schema that
//! `schemars` writes; what cannot be compared is not within, so that a
//! person looks. The endpoint-level rules are `diff`'s.

use std::collections::HashSet;

use schemars::Schema;
use serde_json::{Map, Value};

use super::super::check::format_bounds;
use super::super::Document;

/// Keywords that say something about a value without constraining it.
fn is_annotation(key: &str) -> bool {
    key.starts_with("x-")
        || matches!(
            key,
            "description"
                | "title"
                | "default"
                | "examples"
                | "$comment"
                | "deprecated"
                | "readOnly"
                | "writeOnly"
                | "$schema"
                | "$id"
                | "$anchor"
        )
}

/// Keywords this comparison understands.
fn is_known(key: &str) -> bool {
    matches!(
        key,
        "type"
            | "enum"
            | "const"
            | "properties"
            | "required"
            | "additionalProperties"
            | "items"
            | "prefixItems"
            | "minItems"
            | "maxItems"
            | "anyOf"
            | "oneOf"
            | "allOf"
            | "minimum"
            | "maximum"
            | "exclusiveMinimum"
            | "exclusiveMaximum"
            | "format"
            | "minLength"
            | "maxLength"
            | "pattern"
            | "$ref"
            | "uniqueItems"
    )
}

/// Whether every value schema `a` (of document `da`) allows, schema `b`
/// (of document `db`) allows too; when not, which values not.
pub(super) struct Within<'a> {
    da: &'a Document,
    db: &'a Document,
    /// Pairs of `$ref`s being compared: met again, they are taken as
    /// within (recursive types).
    assumed: HashSet<(String, String)>,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

type Reason = String;

fn types_of(obj: &Map<String, Value>) -> Option<Vec<String>> {
    match obj.get("type") {
        Some(Value::String(t)) => Some(vec![t.clone()]),
        Some(Value::Array(ts)) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn type_allows(types: &[String], t: &str) -> bool {
    types
        .iter()
        .any(|u| u == t || (u == "number" && t == "integer"))
}

fn article(t: &str) -> String {
    match t {
        "null" => "null".into(),
        "integer" | "object" | "array" => format!("an {t}"),
        other => format!("a {other}"),
    }
}

fn bounds(obj: &Map<String, Value>) -> (f64, f64, bool, bool) {
    let (mut low, mut high) = obj
        .get("format")
        .and_then(Value::as_str)
        .and_then(format_bounds)
        .unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let (mut low_open, mut high_open) = (false, false);
    if let Some(m) = obj.get("minimum").and_then(Value::as_f64) {
        low = low.max(m);
    }
    if let Some(m) = obj.get("maximum").and_then(Value::as_f64) {
        high = high.min(m);
    }
    if let Some(m) = obj.get("exclusiveMinimum").and_then(Value::as_f64) {
        if m >= low {
            (low, low_open) = (m, true);
        }
    }
    if let Some(m) = obj.get("exclusiveMaximum").and_then(Value::as_f64) {
        if m <= high {
            (high, high_open) = (m, true);
        }
    }
    (low, high, low_open, high_open)
}

fn prefix_items(o: &Map<String, Value>) -> Vec<&Schema> {
    o.get("prefixItems")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(as_schema).collect())
        .unwrap_or_default()
}

fn as_schema(v: &Value) -> Option<&Schema> {
    <&Schema>::try_from(v).ok()
}

impl<'a> Within<'a> {
    pub(super) fn new(da: &'a Document, db: &'a Document) -> Self {
        Within {
            da,
            db,
            assumed: HashSet::new(),
            depth: 0,
        }
    }

    pub(super) fn within(&mut self, a: &Schema, b: &Schema) -> Result<(), Reason> {
        if self.depth > MAX_DEPTH {
            return Ok(());
        }
        self.depth += 1;
        let r = self.within_inner(a, b);
        self.depth -= 1;
        r
    }

    fn within_inner(&mut self, a: &Schema, b: &Schema) -> Result<(), Reason> {
        if a.as_bool() == Some(false) || b.as_bool() == Some(true) {
            return Ok(());
        }
        if b.as_bool() == Some(false) {
            return Err("any value".into());
        }
        let (Some(ao), Some(bo)) = (a.as_object(), b.as_object()) else {
            return Ok(());
        };
        // References: compare what they name, once per pair.
        let aref = ao.get("$ref").and_then(Value::as_str);
        let bref = bo.get("$ref").and_then(Value::as_str);
        if aref.is_some() || bref.is_some() {
            let key = (aref.unwrap_or("").to_owned(), bref.unwrap_or("").to_owned());
            if !self.assumed.insert(key) {
                return Ok(());
            }
            let a2 = aref.and_then(|r| self.da.resolve(r)).unwrap_or(a);
            let b2 = bref.and_then(|r| self.db.resolve(r)).unwrap_or(b);
            if std::ptr::eq(a2, a) && std::ptr::eq(b2, b) {
                return Ok(()); // a reference that leads nowhere: nothing to say
            }
            return self.within(a2, b2);
        }
        // Anything goes in `b`: only annotations.
        if bo.keys().all(|k| is_annotation(k)) {
            return match (ao.get("x-rust-type"), bo.get("x-rust-type")) {
                (Some(x), Some(y)) if x != y && ao.keys().all(|k| is_annotation(k)) => Err(
                    format!("what it did as {x} (now {y}; neither has a schema)"),
                ),
                _ => Ok(()),
            };
        }
        if ao.keys().all(|k| is_annotation(k)) {
            return Err(match ao.get("x-rust-type") {
                Some(t) => format!("any value (it had no schema, only the Rust type {t})"),
                None => "any value".into(),
            });
        }
        // Alternatives in `a`: each must be within `b`.
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = ao.get(key) {
                for branch in branches.iter().filter_map(as_schema) {
                    self.within(branch, b)?;
                }
                return Ok(());
            }
        }
        if let Some(Value::Array(parts)) = ao.get("allOf") {
            let mut last = Ok(());
            for part in parts.iter().filter_map(as_schema) {
                last = self.within(part, b);
                if last.is_ok() {
                    return Ok(());
                }
            }
            return last;
        }
        // Constants in `a`: each must be a value `b` allows.
        let constants: Option<Vec<&Value>> = match (ao.get("enum"), ao.get("const")) {
            (Some(Value::Array(values)), _) => Some(values.iter().collect()),
            (_, Some(c)) => Some(vec![c]),
            _ => None,
        };
        if let Some(values) = constants {
            for v in values {
                if let Err(e) = self.db.value_fits(b, v) {
                    let _ = e;
                    return Err(format!("the value {v}"));
                }
            }
            return Ok(());
        }
        // Several types in `a`: each on its own.
        if let Some(types) = types_of(ao).filter(|t| t.len() > 1) {
            for t in types {
                let mut one = ao.clone();
                one.insert("type".into(), Value::String(t));
                self.within(&Schema::from(one), b)?;
            }
            return Ok(());
        }
        // `b`'s constraints, one by one.
        if let Some(Value::Array(parts)) = bo.get("allOf") {
            for part in parts.iter().filter_map(as_schema) {
                self.within(a, part)?;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = bo.get(key) {
                let mut first = None;
                let mut fits = false;
                for branch in branches.iter().filter_map(as_schema) {
                    match self.within(a, branch) {
                        Ok(()) => {
                            fits = true;
                            break;
                        }
                        Err(e) => {
                            first.get_or_insert(e);
                        }
                    }
                }
                if !fits {
                    return Err(first.unwrap_or_else(|| "any value".into()));
                }
            }
        }
        if bo.contains_key("enum") || bo.contains_key("const") {
            return Err("values other than the few it now allows".into());
        }
        let a_types = types_of(ao);
        let b_types = types_of(bo);
        if let Some(bt) = &b_types {
            match &a_types {
                None => return Err("values of any type".into()),
                Some(at) => {
                    if let Some(t) = at.iter().find(|t| !type_allows(bt, t)) {
                        return Err(article(t));
                    }
                }
            }
        }
        let t = a_types
            .as_ref()
            .and_then(|t| t.first())
            .map_or("", String::as_str);
        for key in bo.keys() {
            if !is_annotation(key) && !is_known(key) && ao.get(key) != bo.get(key) {
                return Err(format!("values that its new `{key}` may refuse"));
            }
        }
        match t {
            "integer" | "number" => self.numbers(ao, bo),
            "string" => self.strings(ao, bo),
            "object" => self.objects(ao, bo),
            "array" => self.arrays(ao, bo),
            _ => Ok(()),
        }
    }

    fn numbers(&mut self, ao: &Map<String, Value>, bo: &Map<String, Value>) -> Result<(), Reason> {
        let (alow, ahigh, alo_open, ahi_open) = bounds(ao);
        let (blow, bhigh, blo_open, bhi_open) = bounds(bo);
        if alow < blow || (alow == blow && blo_open && !alo_open) {
            return Err(format!("numbers below {blow}"));
        }
        if ahigh > bhigh || (ahigh == bhigh && bhi_open && !ahi_open) {
            return Err(format!("numbers above {bhigh}"));
        }
        Ok(())
    }

    fn strings(&mut self, ao: &Map<String, Value>, bo: &Map<String, Value>) -> Result<(), Reason> {
        let get = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64);
        if let Some(m) = get(bo, "minLength") {
            if get(ao, "minLength").unwrap_or(0) < m {
                return Err(format!("strings shorter than {m}"));
            }
        }
        if let Some(m) = get(bo, "maxLength") {
            if get(ao, "maxLength").is_none_or(|a| a > m) {
                return Err(format!("strings longer than {m}"));
            }
        }
        for key in ["pattern", "format"] {
            if let Some(v) = bo.get(key) {
                if ao.get(key) != Some(v) {
                    return Err(format!("strings its new {key} {v} refuses"));
                }
            }
        }
        Ok(())
    }

    fn objects(&mut self, ao: &Map<String, Value>, bo: &Map<String, Value>) -> Result<(), Reason> {
        let required = |o: &Map<String, Value>| -> Vec<String> {
            o.get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (a_req, b_req) = (required(ao), required(bo));
        if let Some(f) = b_req.iter().find(|f| !a_req.contains(f)) {
            return Err(format!("an object without field '{f}'"));
        }
        let props = |o: &Map<String, Value>| -> Map<String, Value> {
            o.get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (ap, bp) = (props(ao), props(bo));
        let b_additional = bo.get("additionalProperties");
        for (name, a_schema) in &ap {
            let Some(a_schema) = as_schema(a_schema) else {
                continue;
            };
            let target = match bp.get(name) {
                Some(s) => as_schema(s),
                None => b_additional.and_then(as_schema),
            };
            if let Some(b_schema) = target {
                self.within(a_schema, b_schema)
                    .map_err(|e| format!("{e} in field '{name}'"))?;
            }
        }
        if let Some(b_add) = b_additional.and_then(as_schema) {
            let a_add = ao.get("additionalProperties").and_then(as_schema);
            match a_add {
                Some(a_add) => self
                    .within(a_add, b_add)
                    .map_err(|e| format!("{e} as a value of the map"))?,
                None => {
                    if b_add.as_bool() == Some(false) {
                        return Err("an object with fields it did not declare".into());
                    }
                }
            }
        }
        Ok(())
    }

    fn arrays(&mut self, ao: &Map<String, Value>, bo: &Map<String, Value>) -> Result<(), Reason> {
        let get = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_u64);
        if let Some(m) = get(bo, "minItems") {
            if get(ao, "minItems").unwrap_or(0) < m {
                return Err(format!("arrays of fewer than {m} items"));
            }
        }
        if let Some(m) = get(bo, "maxItems") {
            if get(ao, "maxItems").is_none_or(|a| a > m) {
                return Err(format!("arrays of more than {m} items"));
            }
        }
        let (apre, bpre) = (prefix_items(ao), prefix_items(bo));
        let a_items = ao.get("items").and_then(as_schema);
        let b_items = bo.get("items").and_then(as_schema);
        let n = apre.len().max(bpre.len());
        for i in 0..n {
            let a_i = apre.get(i).copied().or(a_items);
            let b_i = bpre.get(i).copied().or(b_items);
            if let (Some(x), Some(y)) = (a_i, b_i) {
                self.within(x, y)
                    .map_err(|e| format!("{e} as item {}", i + 1))?;
            }
        }
        if let (Some(x), Some(y)) = (a_items, b_items) {
            self.within(x, y).map_err(|e| format!("{e} as an item"))?;
        } else if let (None, Some(y)) = (a_items, b_items) {
            if apre.is_empty() && y.as_bool() != Some(true) {
                return Err("arrays of any items".into());
            }
        }
        Ok(())
    }
}
