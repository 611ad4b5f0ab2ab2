//! The contract document: what a daemon offers, as JSON any language can
//! read (docs/PROTOCOL.md section 5.1). Each endpoint with its parameters,
//! result, stream, error kinds and descriptors, and each type as a JSON
//! Schema (2020-12) generated from its serde types by `schemars`.
//!
//! This module owns the document's types, how one is built (for an
//! interface at build time, [`Document`] from `contract()`; for a running
//! daemon, `anyd.describe`), the comparison of two documents
//! ([`diff`]) and the check of a call's arguments against one
//! ([`Document::check_call`]). It does not serve anything: the registry
//! answers `anyd.describe` with what `describe` builds.
//!
//! The shape follows OpenRPC (`info`, `methods` with content descriptors
//! for `params` and `result`, `components.schemas`), with the departures
//! docs/PROTOCOL.md lists: error *kinds* (strings) where OpenRPC has
//! numeric codes, `stream` and `fds` for what OpenRPC has no word for,
//! and a format version of its own instead of `openrpc`.

use std::collections::BTreeMap;

use schemars::Schema;
use serde::{Deserialize, Serialize};

mod check;
#[cfg(feature = "server")]
pub(crate) mod describe;
mod diff;
// Without the daemon, what the derive of `ApiError` calls is used only by
// the programs it expands in.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) mod kinds;
pub(crate) mod private;
mod schema;

pub use check::ArgumentError;
pub use diff::{diff, Change, Diff, Severity};
pub use kinds::ErrorKinds;

/// A text that is not a contract document this crate can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(String);

/// The version of the document format this crate writes, in
/// [`Document::contract`]: a reader refuses a document of a later one.
pub const FORMAT: u32 = 1;

/// The JSON Schema dialect of every schema in a document.
pub const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Where a document's shared schemas are, and what `$ref`s point into:
/// `#/components/schemas/Name`.
pub const SCHEMAS_PATH: &str = "/components/schemas";

/// What a daemon, or an interface, offers: its endpoints with the JSON
/// Schema of every parameter and result.
///
/// A daemon serves its own at the reserved endpoint `anyd.describe`,
/// leaving out what the caller may not call; an interface declared with
/// [`#[anyd::interface]`](macro@crate::interface) gives it at build time,
/// from `MyInterface::contract()`, without a daemon.
///
/// ```
/// let text = r#"{
///     "contract": 1,
///     "info": {"title": "echo", "version": "1.0.0"},
///     "protocol": 1,
///     "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
///     "methods": [{
///         "name": "echo",
///         "paramStructure": "either",
///         "params": [{"name": "arg", "required": true, "schema": {"type": "string"}}],
///         "result": {"name": "result", "schema": {"type": "string"}},
///         "errors": []
///     }]
/// }"#;
/// let doc = anyd::contract::Document::from_json(text)?;
/// assert_eq!(doc.methods[0].params[0].name, "arg");
/// let wrong = doc.check_call("echo", &[serde_json::json!(42)], &[]).unwrap_err();
/// assert_eq!(wrong.to_string(), "echo(): parameter 'arg': expected a string, got 42");
/// # Ok::<(), anyd::contract::DocumentError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Document {
    /// The format of the document ([`FORMAT`]).
    pub contract: u32,
    /// Whose contract it is.
    pub info: Info,
    /// The wire protocol version the daemon speaks (docs/PROTOCOL.md
    /// section 9).
    pub protocol: u32,
    /// The dialect of every schema: JSON Schema 2020-12.
    pub json_schema_dialect: String,
    /// The endpoints, in the order they were declared.
    pub methods: Vec<Method>,
    /// The schemas that the methods' schemas refer to.
    #[serde(default)]
    pub components: Components,
}

/// The interface a document describes: a name and a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Info {
    /// The interface's name (the trait's, unless renamed); a daemon that
    /// serves several joins theirs with `+`.
    pub title: String,
    /// The interface's version (its crate's, unless given).
    pub version: String,
    /// The interface's documentation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Info {
    /// An interface's name and version.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Info {
        Info {
            title: title.into(),
            version: version.into(),
            description: String::new(),
        }
    }
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Method {
    /// The name callers use.
    pub name: String,
    /// Its documentation (the doc comment), possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How arguments may be passed.
    pub param_structure: ParamStructure,
    /// The wire parameters, in positional order.
    pub params: Vec<Param>,
    /// The result, or for a stream each item.
    pub result: Returns,
    /// The endpoint sends a stream of items (docs/PROTOCOL.md section
    /// 8.1) whose schema is `result`'s.
    #[serde(default)]
    pub stream: bool,
    /// The kinds of error reply the endpoint itself gives, beside those
    /// any call may get (docs/PROTOCOL.md section 6); `None` (`null`)
    /// when they are not known: any kind.
    pub errors: Option<Vec<ErrorKind>>,
}

impl Method {
    /// Whether a parameter may hold a descriptor.
    pub fn takes_fds(&self) -> bool {
        self.params.iter().any(|p| p.fds)
    }

    /// Whether the result (or an item) may hold a descriptor.
    pub fn returns_fds(&self) -> bool {
        self.result.fds
    }
}

/// How a method's arguments may be passed (OpenRPC's `paramStructure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ParamStructure {
    /// By position, or by name (`kwargs`), as the caller likes.
    Either,
    /// By position only: the parameters have no names on the wire (an
    /// [`Appd::api`](crate::Appd::api) endpoint registered without them).
    ByPosition,
    /// By name only.
    ByName,
}

/// One parameter (an OpenRPC content descriptor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Param {
    /// Its name: the keyword a caller may pass it by; `#1`, `#2`, ... for
    /// a parameter without one.
    pub name: String,
    /// The caller must give it (an `Option<T>` parameter may be left out).
    pub required: bool,
    /// It may be given by keyword only, not by position. No Rust endpoint
    /// has such a parameter (Python anyd daemons may).
    #[serde(default)]
    pub keyword_only: bool,
    /// A value may hold a file descriptor (docs/PROTOCOL.md section 8.2).
    #[serde(default)]
    pub fds: bool,
    /// What the daemon decodes: a JSON Schema.
    pub schema: Schema,
}

/// A method's result, or a stream's item (an OpenRPC content descriptor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Returns {
    /// `result`, or `item` for a stream.
    pub name: String,
    /// A value may hold a file descriptor.
    #[serde(default)]
    pub fds: bool,
    /// The value: a JSON Schema.
    pub schema: Schema,
}

/// A kind of error reply a method gives (docs/PROTOCOL.md section 6.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorKind {
    /// The kind, as the error reply carries it (`VpnError`,
    /// `ValueError`); a Python client raises it as that exception class.
    pub kind: String,
    /// What it means, possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl ErrorKind {
    /// A kind with its meaning.
    pub fn new(kind: impl Into<String>, description: impl Into<String>) -> ErrorKind {
        ErrorKind {
            kind: kind.into(),
            description: description.into(),
        }
    }
}

/// The schemas the methods refer to by `$ref`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Components {
    /// By name: `{"$ref": "#/components/schemas/State"}` is
    /// `schemas["State"]`.
    #[serde(default)]
    pub schemas: BTreeMap<String, Schema>,
}

impl Document {
    /// An empty document for `info`, to add methods to.
    pub fn new(info: Info) -> Document {
        Document {
            contract: FORMAT,
            info,
            protocol: anyd_wire::PROTOCOL_VERSION,
            json_schema_dialect: JSON_SCHEMA_DIALECT.to_owned(),
            methods: Vec::new(),
            components: Components::default(),
        }
    }

    /// Reads a document from JSON text.
    ///
    /// # Errors
    ///
    /// A [`DocumentError`] saying where and why when the text is not a
    /// contract document, or is one of a later format.
    pub fn from_json(text: &str) -> Result<Document, DocumentError> {
        let doc: Document = serde_json::from_str(text)
            .map_err(|e| DocumentError(format!("not a contract document: {e}")))?;
        doc.check_format()?;
        Ok(doc)
    }

    /// The same, from a decoded value (an `anyd.describe` reply).
    ///
    /// # Errors
    ///
    /// As [`Document::from_json`].
    pub fn from_value(value: serde_json::Value) -> Result<Document, DocumentError> {
        let doc: Document = serde_json::from_value(value)
            .map_err(|e| DocumentError(format!("not a contract document: {e}")))?;
        doc.check_format()?;
        Ok(doc)
    }

    /// Refuses a document of a format this crate does not know.
    fn check_format(&self) -> Result<(), DocumentError> {
        if self.contract == 0 || self.contract > FORMAT {
            return Err(DocumentError(format!(
                "a contract document of format {} (this program reads format {FORMAT})",
                self.contract
            )));
        }
        Ok(())
    }

    /// The document as pretty JSON, with a final newline: what a file of
    /// it holds.
    pub fn to_json_pretty(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a document is made of JSON values");
        text.push('\n');
        text
    }

    /// The method of that name.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The schema a `$ref` names (`#/components/schemas/State`), if it
    /// is one of this document's.
    pub fn resolve(&self, reference: &str) -> Option<&Schema> {
        let name = reference.strip_prefix("#")?.strip_prefix(SCHEMAS_PATH)?;
        let name = name.strip_prefix('/')?;
        self.components
            .schemas
            .get(&name.replace("~1", "/").replace("~0", "~"))
    }
}

#[cfg(test)]
mod tests {
    use anyd_wire::codec::encode_request;
    use anyd_wire::Codec;

    /// The request vectors of docs/PROTOCOL.md section 5.1, as the client
    /// writes them (payloads; the frame header is their length).
    #[test]
    fn describe_requests_are_written_as_the_protocol_says() {
        let mut out = Vec::new();
        encode_request(Codec::Json, "anyd.describe", &(), &(), &mut out).unwrap();
        assert_eq!(out, b"[\"anyd.describe\",[],{}]");
        out.clear();
        encode_request(Codec::MsgPack, "anyd.describe", &(), &(), &mut out).unwrap();
        let mut expected = vec![0x93, 0xad];
        expected.extend_from_slice(b"anyd.describe");
        expected.extend_from_slice(&[0x90, 0x80]);
        assert_eq!(out, expected);
    }
}
