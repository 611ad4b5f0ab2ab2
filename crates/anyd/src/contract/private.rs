//! What the code `#[anyd::interface]` and `#[anyd::api]` generate calls to
//! describe their endpoints; not an API (reached as `anyd::__private`).
//!
//! Each endpoint gets a [`Describe`] function: given the document's
//! schema generator, it gives the endpoint's [`Method`]. The contract of
//! an interface calls them at build time ([`document`]); a daemon keeps
//! them beside its endpoints and calls them for `anyd.describe`.
//!
//! Which side uses what: [`document`], [`method`], [`schema`],
//! [`error_kinds`], the probes and [`ResultParts`] are the contract's
//! (client and daemon alike); [`optional`] reads the daemon's argument
//! binding (`FromCall`); [`interface`] and [`describe`] register on an
//! [`Appd`] (daemon only).

use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::schema::{generator, holds_fd, permissive};
use super::{Document, ErrorKind, ErrorKinds, Info, Method, Param, ParamStructure, Returns};
#[cfg(feature = "server")]
use crate::server::Appd;

/// Describes one endpoint into a document's schema generator.
pub type Describe = fn(&mut SchemaGenerator) -> Method;

/// The document of an interface: its methods, each described in turn.
pub fn document(info: Info, methods: &[Describe]) -> Document {
    let mut g = generator();
    let mut doc = Document::new(info);
    doc.methods = methods.iter().map(|describe| describe(&mut g)).collect();
    doc.components.schemas = into_schemas(&mut g);
    doc
}

/// The generator's shared schemas, for `components.schemas`.
pub(crate) fn into_schemas(g: &mut SchemaGenerator) -> std::collections::BTreeMap<String, Schema> {
    g.take_definitions(true)
        .into_iter()
        .filter_map(|(name, value)| Schema::try_from(value).ok().map(|s| (name, s)))
        .collect()
}

/// Starts describing the endpoint `name`.
pub fn method(name: &str, doc: &str) -> MethodBuilder {
    MethodBuilder(Method {
        name: name.to_owned(),
        description: doc.trim().to_owned(),
        param_structure: ParamStructure::Either,
        params: Vec::new(),
        result: Returns {
            name: "result".to_owned(),
            fds: false,
            schema: Schema::default(),
        },
        stream: false,
        errors: Some(Vec::new()),
    })
}

/// A [`Method`] being described.
pub struct MethodBuilder(Method);

impl MethodBuilder {
    /// A wire parameter.
    pub fn param(mut self, name: &str, optional: bool, schema: Schema) -> Self {
        self.0.params.push(Param {
            name: name.to_owned(),
            required: !optional,
            keyword_only: false,
            fds: false,
            schema,
        });
        self
    }

    /// The result, or each item of a stream.
    pub fn returns(mut self, schema: Schema, stream: bool) -> Self {
        self.0.result.schema = schema;
        self.0.stream = stream;
        if stream {
            "item".clone_into(&mut self.0.result.name);
        }
        self
    }

    /// The kinds of error the method gives (`None`: any).
    pub fn errors(mut self, kinds: Option<Vec<ErrorKind>>) -> Self {
        self.0.errors = kinds;
        self
    }

    /// The method, with where descriptors may be: read from the schemas,
    /// through the generator's shared ones.
    pub fn finish(mut self, g: &SchemaGenerator) -> Method {
        let definitions = g.definitions();
        for p in &mut self.0.params {
            p.fds = holds_fd(&p.schema, definitions);
        }
        self.0.result.fds = holds_fd(&self.0.result.schema, definitions);
        self.0
    }
}

/// The schema of an interface's parameter, result or item type, which
/// must have one.
pub fn schema<T: InterfaceType + ?Sized>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What an interface's parameter, result and item types need: a JSON
/// Schema. Only there to say so in the words of the interface.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema, which an interface's parameter, result and item types need",
    label = "no `schemars::JsonSchema` for `{Self}`",
    note = "derive it: `#[derive(schemars::JsonSchema)]` (anyd re-exports the crate as `anyd::schemars`; then add `#[schemars(crate = \"anyd::schemars\")]`)"
)]
pub trait InterfaceType: JsonSchema {}

impl<T: JsonSchema + ?Sized> InterfaceType for T {}

/// Whether a caller may leave the parameter out: as the daemon binds it
/// (an `Option`, or `()`).
pub fn optional<T: serde::de::DeserializeOwned>() -> bool {
    crate::endpoint_info::missing::<T>().is_some()
}

/// The kinds of an interface's error type, which must name them.
pub fn error_kinds<E: ErrorKinds>() -> Option<Vec<ErrorKind>> {
    E::error_kinds()
}

/// `E` of a `Result<T, E>` however it is spelled (`io::Result<T>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is named `Result` but is not `std::result::Result`",
    label = "an interface method's `Result` must be the standard one, to list its error kinds"
)]
pub trait ResultParts {
    /// The error type.
    type Err;
}

impl<T, E> ResultParts for Result<T, E> {
    type Err = E;
}

/// Asks, for a type of an `#[anyd::api]` block, whether it has a schema
/// or error kinds, and falls back when not (autoref specialization:
/// `(&&Probe::<T>::NEW).schema(..)` takes [`ViaSchema`] when `T` has a
/// schema, [`ViaName`] otherwise).
pub struct Probe<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Probe<T> {
    /// The probe.
    pub const NEW: Self = Probe(PhantomData);
}

/// See [`Probe`].
pub trait ViaSchema {
    /// The type's schema.
    fn schema(&self, g: &mut SchemaGenerator, rust_type: &str) -> Schema;
}

impl<T: JsonSchema + ?Sized> ViaSchema for &Probe<T> {
    fn schema(&self, g: &mut SchemaGenerator, _: &str) -> Schema {
        g.subschema_for::<T>()
    }
}

/// See [`Probe`].
pub trait ViaName {
    /// Any value, annotated with the Rust type's name.
    fn schema(&self, g: &mut SchemaGenerator, rust_type: &str) -> Schema;
}

impl<T: ?Sized> ViaName for Probe<T> {
    fn schema(&self, _: &mut SchemaGenerator, rust_type: &str) -> Schema {
        permissive(rust_type)
    }
}

/// See [`Probe`].
pub trait ViaKinds {
    /// The type's kinds.
    fn error_kinds(&self) -> Option<Vec<ErrorKind>>;
}

impl<T, E: ErrorKinds> ViaKinds for &Probe<Result<T, E>> {
    fn error_kinds(&self) -> Option<Vec<ErrorKind>> {
        E::error_kinds()
    }
}

/// See [`Probe`].
pub trait ViaUnknown {
    /// Unknown kinds: any.
    fn error_kinds(&self) -> Option<Vec<ErrorKind>>;
}

impl<E: ?Sized> ViaUnknown for Probe<E> {
    fn error_kinds(&self) -> Option<Vec<ErrorKind>> {
        None
    }
}

/// An interface's name, version and documentation.
pub fn info(name: &str, version: &str, doc: &str) -> Info {
    let mut info = Info::new(name, version);
    doc.trim().clone_into(&mut info.description);
    info
}

/// Says that the endpoints registered next are an interface's.
#[cfg(feature = "server")]
pub fn interface(appd: Appd, info: Info) -> Appd {
    appd.__interface(info)
}

/// Gives the endpoint registered last its description.
#[cfg(feature = "server")]
pub fn describe(appd: Appd, describe: Describe) -> Appd {
    appd.__describe_last(describe)
}
