//! Compares two contract documents, an old and a new, and classifies each
//! difference as compatible (an old client still works with the new
//! daemon) or breaking.
//!
//! Rules: a parameter must accept at least what it accepted (same name,
//! same position, a type that accepts every value the old one did, not
//! newly required); a new parameter must be optional; a result or item
//! must give no value the old one could not (no field gone, no new
//! `null`, no wider number); a stream stays a stream. New endpoints, new
//! optional parameters and new error kinds are compatible (a client maps
//! a kind it does not know to a generic error). Types are compared as
//! sets of JSON values, through `$ref`s, for the part of JSON Schema that
//! `schemars` writes; what cannot be compared is called breaking, so that
//! a person looks. Fields that only a newer struct has are not checked
//! against older clients, which never send them.

use std::collections::HashSet;
use std::fmt;

use schemars::Schema;
use serde_json::{Map, Value};

use super::check::format_bounds;
use super::{Document, Method, ParamStructure};

/// How a change affects the clients of the old document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Old clients still work.
    Compatible,
    /// Some old client may fail.
    Breaking,
}

/// One difference between two documents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// Whether old clients still work.
    pub severity: Severity,
    /// The method it is about, if one.
    pub method: Option<String>,
    /// What changed, in words.
    pub message: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Compatible => "compatible",
            Severity::Breaking => "breaking",
        };
        match &self.method {
            Some(m) => write!(f, "{word}: {m}: {}", self.message),
            None => write!(f, "{word}: {}", self.message),
        }
    }
}

/// Every difference between two documents that matters to a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diff {
    /// The differences, method by method in the old document's order,
    /// then the new methods.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Whether some old client may fail against the new document.
    pub fn is_breaking(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.severity == Severity::Breaking)
    }

    /// Whether nothing that matters changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The breaking changes.
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.severity == Severity::Breaking)
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Compares `old` with `new`: what a client written against `old` meets
/// in a daemon that serves `new`.
///
/// ```
/// use anyd::contract::{diff, Document};
///
/// let old = Document::from_json(r#"{"contract": 1, "info": {"title": "t", "version": "1"},
///     "protocol": 1, "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
///     "methods": [{"name": "status", "paramStructure": "either", "params": [],
///                  "result": {"name": "result", "schema": {"type": "string"}}, "errors": []}]}"#)?;
/// let mut new = old.clone();
/// new.methods.clear();
/// let d = diff(&old, &new);
/// assert!(d.is_breaking());
/// assert_eq!(d.to_string(), "breaking: status: removed\n");
/// assert!(!diff(&new, &old).is_breaking(), "a new endpoint breaks nobody");
/// # Ok::<(), anyd::contract::DocumentError>(())
/// ```
pub fn diff(old: &Document, new: &Document) -> Diff {
    let mut d = Differ {
        old,
        new,
        changes: Vec::new(),
    };
    d.info();
    for m in &old.methods {
        match new.method(&m.name) {
            None => d.push(Severity::Breaking, Some(&m.name), "removed".into()),
            Some(n) => d.method(m, n),
        }
    }
    for n in &new.methods {
        if old.method(&n.name).is_none() {
            d.push(Severity::Compatible, Some(&n.name), "new endpoint".into());
        }
    }
    Diff { changes: d.changes }
}

struct Differ<'a> {
    old: &'a Document,
    new: &'a Document,
    changes: Vec<Change>,
}

fn structure_allows(s: ParamStructure) -> (bool, bool) {
    match s {
        ParamStructure::Either => (true, true),
        ParamStructure::ByPosition => (true, false),
        ParamStructure::ByName => (false, true),
    }
}

impl Differ<'_> {
    fn push(&mut self, severity: Severity, method: Option<&str>, message: String) {
        self.changes.push(Change {
            severity,
            method: method.map(str::to_owned),
            message,
        });
    }

    fn info(&mut self) {
        let (o, n) = (&self.old.info, &self.new.info);
        if o.title != n.title {
            let m = format!("interface renamed from {:?} to {:?}", o.title, n.title);
            self.push(Severity::Compatible, None, m);
        }
        if o.version != n.version {
            let m = format!("version {:?} to {:?}", o.version, n.version);
            self.push(Severity::Compatible, None, m);
        }
        if self.old.protocol != self.new.protocol {
            let m = format!(
                "wire protocol version {} to {}",
                self.old.protocol, self.new.protocol
            );
            self.push(Severity::Breaking, None, m);
        }
    }

    fn method(&mut self, o: &Method, n: &Method) {
        let name = Some(o.name.as_str());
        if o.stream != n.stream {
            let m = if n.stream {
                "now sends a stream of items instead of one result"
            } else {
                "now sends one result instead of a stream of items"
            };
            self.push(Severity::Breaking, name, m.into());
        }
        let (old_pos, old_kw) = structure_allows(o.param_structure);
        let (new_pos, new_kw) = structure_allows(n.param_structure);
        if (old_pos && !new_pos) || (old_kw && !new_kw) {
            let lost = if old_pos && !new_pos {
                "by position"
            } else {
                "by name"
            };
            let m = format!("arguments may no longer be passed {lost}");
            self.push(Severity::Breaking, name, m);
        }
        self.params(o, n, old_pos);
        let what = if o.stream && n.stream {
            "items"
        } else {
            "result"
        };
        if let Err(reason) =
            Within::new(self.new, self.old).within(&n.result.schema, &o.result.schema)
        {
            let m = format!("{what} may now be {reason}");
            self.push(Severity::Breaking, name, m);
        }
        self.errors(o, n);
    }

    fn params(&mut self, o: &Method, n: &Method, positional: bool) {
        let name = Some(o.name.as_str());
        for (i, p) in o.params.iter().enumerate() {
            let Some((j, q)) = n.params.iter().enumerate().find(|(_, q)| q.name == p.name) else {
                let m = format!("parameter '{}' removed", p.name);
                self.push(Severity::Breaking, name, m);
                continue;
            };
            if positional && !p.keyword_only && i != j {
                let m = format!(
                    "parameter '{}' moved from position {} to {}",
                    p.name,
                    i + 1,
                    j + 1
                );
                self.push(Severity::Breaking, name, m);
            }
            if !p.keyword_only && q.keyword_only {
                let m = format!("parameter '{}' is now keyword-only", p.name);
                self.push(Severity::Breaking, name, m);
            }
            match (p.required, q.required) {
                (false, true) => {
                    let m = format!("parameter '{}' is now required", p.name);
                    self.push(Severity::Breaking, name, m);
                }
                (true, false) => {
                    let m = format!("parameter '{}' is now optional", p.name);
                    self.push(Severity::Compatible, name, m);
                }
                _ => {}
            }
            if let Err(reason) = Within::new(self.old, self.new).within(&p.schema, &q.schema) {
                let m = format!("parameter '{}' no longer accepts {reason}", p.name);
                self.push(Severity::Breaking, name, m);
            }
        }
        for q in &n.params {
            if o.params.iter().any(|p| p.name == q.name) {
                continue;
            }
            if q.required {
                let m = format!("new required parameter '{}'", q.name);
                self.push(Severity::Breaking, name, m);
            } else {
                let m = format!("new optional parameter '{}'", q.name);
                self.push(Severity::Compatible, name, m);
            }
        }
    }

    fn errors(&mut self, o: &Method, n: &Method) {
        let name = Some(o.name.as_str());
        match (&o.errors, &n.errors) {
            (Some(old), Some(new)) => {
                for k in new.iter().filter(|k| !old.iter().any(|o| o.kind == k.kind)) {
                    let m = format!("new error kind {}", k.kind);
                    self.push(Severity::Compatible, name, m);
                }
                for k in old.iter().filter(|k| !new.iter().any(|n| n.kind == k.kind)) {
                    let m = format!("no longer gives error kind {}", k.kind);
                    self.push(Severity::Compatible, name, m);
                }
            }
            (Some(_), None) => {
                let m = "error kinds no longer listed: any may come".to_owned();
                self.push(Severity::Compatible, name, m);
            }
            _ => {}
        }
    }
}

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
struct Within<'a> {
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
    fn new(da: &'a Document, db: &'a Document) -> Self {
        Within {
            da,
            db,
            assumed: HashSet::new(),
            depth: 0,
        }
    }

    fn within(&mut self, a: &Schema, b: &Schema) -> Result<(), Reason> {
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

impl Document {
    /// Whether `value` fits `schema`, one of this document's.
    fn value_fits(&self, schema: &Schema, value: &Value) -> Result<(), String> {
        let mut doc = Document::new(self.info.clone());
        doc.components = self.components.clone();
        doc.methods.push(Method {
            name: "_".into(),
            description: String::new(),
            param_structure: ParamStructure::Either,
            params: vec![super::Param {
                name: "v".into(),
                required: true,
                keyword_only: false,
                fds: false,
                schema: schema.clone(),
            }],
            result: super::Returns {
                name: "result".into(),
                fds: false,
                schema: Schema::default(),
            },
            stream: false,
            errors: None,
        });
        doc.check_call("_", std::slice::from_ref(value), &[])
            .map_err(|e| e.message)
    }
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::Deserialize;

    use super::*;
    use crate::contract::private::{document, method, schema, Describe};
    use crate::contract::{ErrorKind, Info};

    fn one(describe: Describe) -> Document {
        document(Info::new("t", "1"), &[describe])
    }

    fn changes(old: Describe, new: Describe) -> Vec<String> {
        diff(&one(old), &one(new))
            .changes
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    mod v1 {
        use super::*;
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code)]
        pub(super) struct State {
            pub(super) up: bool,
            pub(super) name: String,
            pub(super) mtu: u16,
        }
    }

    mod v2 {
        use super::*;
        /// Lost a field, widened another.
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code)]
        pub(super) struct State {
            pub(super) up: bool,
            pub(super) mtu: u32,
        }
    }

    mod v3 {
        use super::*;
        /// Gained an optional field.
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code)]
        pub(super) struct State {
            pub(super) up: bool,
            pub(super) name: String,
            pub(super) mtu: u16,
            pub(super) note: Option<String>,
        }
    }

    #[test]
    fn the_same_document_has_no_changes() {
        let m: Describe = |g| {
            method("connect", "")
                .param("profile", false, schema::<String>(g))
                .returns(schema::<v1::State>(g), false)
                .finish(g)
        };
        assert!(changes(m, m).is_empty());
    }

    #[test]
    fn parameters() {
        let base: Describe = |g| {
            method("m", "")
                .param("a", false, schema::<u16>(g))
                .param("b", true, schema::<Option<String>>(g))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        let widened: Describe = |g| {
            method("m", "")
                .param("a", false, schema::<u32>(g))
                .param("b", true, schema::<Option<String>>(g))
                .param("c", true, schema::<Option<bool>>(g))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        assert_eq!(
            changes(base, widened),
            ["compatible: m: new optional parameter 'c'"]
        );
        let narrowed: Describe = |g| {
            method("m", "")
                .param("a", false, schema::<u8>(g))
                .param("b", false, schema::<String>(g))
                .param("d", false, schema::<bool>(g))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        assert_eq!(
            changes(base, narrowed),
            [
                "breaking: m: parameter 'a' no longer accepts numbers above 255",
                "breaking: m: parameter 'b' is now required",
                "breaking: m: parameter 'b' no longer accepts null",
                "breaking: m: new required parameter 'd'",
            ]
        );
        let moved: Describe = |g| {
            method("m", "")
                .param("b", true, schema::<Option<String>>(g))
                .param("a", false, schema::<String>(g))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        assert_eq!(
            changes(base, moved),
            [
                "breaking: m: parameter 'a' moved from position 1 to 2",
                "breaking: m: parameter 'a' no longer accepts an integer",
                "breaking: m: parameter 'b' moved from position 2 to 1",
            ]
        );
    }

    #[test]
    fn results() {
        let v1: Describe = |g| {
            method("status", "")
                .returns(schema::<v1::State>(g), false)
                .finish(g)
        };
        let v2: Describe = |g| {
            method("status", "")
                .returns(schema::<v2::State>(g), false)
                .finish(g)
        };
        let v3: Describe = |g| {
            method("status", "")
                .returns(schema::<v3::State>(g), false)
                .finish(g)
        };
        let nullable: Describe = |g| {
            method("status", "")
                .returns(schema::<Option<v1::State>>(g), false)
                .finish(g)
        };
        let stream: Describe = |g| {
            method("status", "")
                .returns(schema::<v1::State>(g), true)
                .finish(g)
        };
        assert_eq!(
            changes(v1, v2),
            ["breaking: status: result may now be an object without field 'name'"]
        );
        assert!(changes(v1, v3).is_empty(), "{:?}", changes(v1, v3));
        assert_eq!(changes(v3, v1), Vec::<String>::new());
        assert_eq!(
            changes(v1, nullable),
            ["breaking: status: result may now be null"]
        );
        assert!(changes(nullable, v1).is_empty());
        assert_eq!(
            changes(v1, stream),
            ["breaking: status: now sends a stream of items instead of one result"]
        );
    }

    #[test]
    fn enums_and_errors() {
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code)]
        enum Two {
            Up,
            Down,
        }
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code)]
        enum Three {
            Up,
            Down,
            Gone,
        }
        let two: Describe = |g| {
            method("m", "")
                .param("c", false, schema::<Two>(g))
                .returns(schema::<Two>(g), false)
                .errors(Some(vec![ErrorKind::new("VpnError", "")]))
                .finish(g)
        };
        let three: Describe = |g| {
            method("m", "")
                .param("c", false, schema::<Three>(g))
                .returns(schema::<Three>(g), false)
                .errors(Some(vec![
                    ErrorKind::new("VpnError", ""),
                    ErrorKind::new("ValueError", ""),
                ]))
                .finish(g)
        };
        assert_eq!(
            changes(two, three),
            [
                "breaking: m: result may now be the value \"Gone\"",
                "compatible: m: new error kind ValueError",
            ]
        );
        assert_eq!(
            changes(three, two),
            [
                "breaking: m: parameter 'c' no longer accepts the value \"Gone\"",
                "compatible: m: no longer gives error kind ValueError",
            ]
        );
    }

    #[test]
    fn closures_compare_by_rust_type() {
        let a: Describe = |g| {
            method("m", "")
                .param("x", false, super::super::schema::permissive("String"))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        let b: Describe = |g| {
            method("m", "")
                .param("x", false, super::super::schema::permissive("u32"))
                .returns(schema::<()>(g), false)
                .finish(g)
        };
        assert_eq!(
            changes(a, b),
            ["breaking: m: parameter 'x' no longer accepts what it did as \"String\" (now \"u32\"; neither has a schema)"]
        );
    }
}
