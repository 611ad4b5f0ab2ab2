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

use std::fmt;

use schemars::Schema;
use serde_json::Value;

use super::{Document, Method, ParamStructure};

mod within;
use within::Within;

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
mod tests;
