//! A daemon's own document, for `anyd.describe`: the endpoints a caller
//! may call, described by the code the macros generated where they were
//! declared with one, and from their Rust type names otherwise
//! (`Appd::api` closures).

use std::collections::HashMap;

use super::private::{into_schemas, Describe};
use super::schema::{generator, names_fd, permissive};
use super::{Document, Info, Method, Param, ParamStructure, Returns};
use crate::endpoint_info::EndpointInfo;

/// What the registry keeps for the document, beside its endpoints.
#[derive(Default)]
pub(crate) struct Registered {
    /// The description of each endpoint a macro declared, by name.
    describers: HashMap<String, Describe>,
    /// The interfaces mounted, in order.
    interfaces: Vec<Info>,
}

impl Registered {
    /// Keeps the description of the endpoint `name`.
    pub(crate) fn describe(&mut self, name: &str, describe: Describe) {
        self.describers.insert(name.to_owned(), describe);
    }

    /// Notes an interface mounted (once, however often it is).
    pub(crate) fn interface(&mut self, info: Info) {
        if !self.interfaces.contains(&info) {
            self.interfaces.push(info);
        }
    }

    /// The document of `endpoints`: those the caller may call, in order.
    pub(crate) fn document(&self, endpoints: &[&EndpointInfo]) -> Document {
        let mut g = generator();
        let mut doc = Document::new(self.info());
        doc.methods = endpoints
            .iter()
            .map(|e| match self.describers.get(&e.name) {
                Some(describe) => {
                    let mut m = describe(&mut g);
                    // Whether a parameter may be left out is the
                    // binding's to say.
                    for (p, info) in m.params.iter_mut().zip(&e.params) {
                        p.required = !info.optional;
                    }
                    m
                }
                None => from_info(e),
            })
            .collect();
        doc.components.schemas = into_schemas(&mut g);
        doc
    }

    /// The mounted interface's name and version, or theirs joined, or
    /// the program's name when there is none.
    fn info(&self) -> Info {
        match self.interfaces.as_slice() {
            [one] => one.clone(),
            [] => Info::new(program_name(), ""),
            many => {
                let join = |f: fn(&Info) -> &str| many.iter().map(f).collect::<Vec<_>>().join("+");
                Info::new(join(|i| &i.title), join(|i| &i.version))
            }
        }
    }
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "anyd".to_owned())
}

/// What the registry knows of an endpoint without a description: the
/// parameters' names and Rust types, any value each.
fn from_info(e: &EndpointInfo) -> Method {
    let named = e.params.iter().all(|p| p.name.is_some());
    Method {
        name: e.name.clone(),
        description: e.doc.clone(),
        param_structure: if named || e.params.is_empty() {
            ParamStructure::Either
        } else {
            ParamStructure::ByPosition
        },
        params: e
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| Param {
                name: p.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                required: !p.optional,
                keyword_only: false,
                fds: names_fd(&p.ty),
                schema: permissive(&p.ty),
            })
            .collect(),
        result: Returns {
            name: if e.stream { "item" } else { "result" }.to_owned(),
            fds: names_fd(&e.returns),
            schema: permissive(&e.returns),
        },
        stream: e.stream,
        errors: None,
    }
}
