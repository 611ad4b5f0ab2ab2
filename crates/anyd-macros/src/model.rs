//! Reads an `#[anyd::api]` impl block into endpoints, and rejects what
//! cannot be served, with a span on the user's code. Generates nothing.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ItemImpl, ItemTrait, LitStr, Pat,
    PathArguments, ReturnType, Signature, TraitItem, Type, Visibility,
};

mod options;
mod types;

pub(crate) use options::*;
use types::*;
pub(crate) use types::{doc_text, ok_type};

/// The most parameters (wire arguments and `Peer`s together) a
/// [`Handler`](../anyd/trait.Handler.html) takes.
const MAX_PARAMS: usize = 10;

/// Names of the generated clients' own functions, which an endpoint method
/// cannot also use.
pub(crate) const CLIENT_RESERVED: &[&str] = &[
    "connect",
    "connect_with",
    "from_session",
    "into_session",
    "session_mut",
    "end_session",
];

/// Collects every error instead of stopping at the first, so that one
/// compile shows them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn into_result(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Where the methods are: an `impl` block of the daemon type, or an
/// interface trait.
pub(crate) enum Form<'a> {
    /// `#[anyd::api] impl Daemon { .. }`: `Self` is the daemon type.
    Impl(&'a Type),
    /// `#[anyd::interface] trait Interface { .. }`: `Self` is any
    /// implementing type, which the clients do not know.
    Trait,
}

/// How the method takes the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// `&self`.
    Ref,
    /// `self: Arc<Self>`, for methods that hand the daemon to a task.
    Arc,
}

/// One parameter of an endpoint method.
pub(crate) struct Param {
    /// Its name, also the keyword callers may pass it by.
    pub(crate) ident: Ident,
    /// Its type, with `Self` spelled out.
    pub(crate) ty: Type,
    pub(crate) kind: ParamKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamKind {
    /// Decoded from the request.
    Wire,
    /// `&Peer`: the caller, not a wire argument.
    PeerRef,
    /// `Peer`, by value.
    Peer,
    /// `&Context`: the call's context, not a wire argument.
    ContextRef,
    /// `Context`, by value.
    Context,
}

impl ApiBlock {
    pub(crate) fn parse(mut item: ItemImpl) -> (ApiBlock, Errors) {
        let mut errors = Errors::default();
        if let Some((_, path, _)) = &item.trait_ {
            errors.at(
                path.span(),
                "#[anyd::api] goes on an inherent impl block (`impl MyDaemon { .. }`), not on a trait impl",
            );
        }
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.at(
                item.generics.span(),
                "#[anyd::api] does not support generic impl blocks: the daemon type and its clients must be concrete",
            );
        }
        let self_ty = (*item.self_ty).clone();
        let name = match &self_ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().unwrap().ident.clone(),
            other => {
                errors.at(
                    other.span(),
                    "#[anyd::api] needs a named type (`impl MyDaemon { .. }`)",
                );
                Ident::new("Api", other.span())
            }
        };

        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut names: HashMap<String, Ident> = HashMap::new();
        for impl_item in &mut item.items {
            let ImplItem::Fn(f) = impl_item else {
                let attrs = match impl_item {
                    ImplItem::Const(c) => &mut c.attrs,
                    ImplItem::Type(t) => &mut t.attrs,
                    ImplItem::Macro(m) => &mut m.attrs,
                    _ => continue,
                };
                for attr in take_api_attrs(attrs) {
                    errors.at(attr.span(), "#[api] goes on methods");
                }
                continue;
            };
            let form = Form::Impl(&self_ty);
            let Some(endpoint) = Endpoint::parse(&mut f.attrs, &f.sig, &form, &name, &mut errors)
            else {
                continue;
            };
            if let Some(first) = names.get(&endpoint.name) {
                errors.at(
                    endpoint.method.span(),
                    format!(
                        "endpoint name `{}` is already used by method `{first}`; rename one with #[api(name = \"...\")]",
                        endpoint.name
                    ),
                );
                continue;
            }
            names.insert(endpoint.name.clone(), endpoint.method.clone());
            endpoints.push(endpoint);
        }
        let block = ApiBlock {
            item,
            self_ty,
            name,
            endpoints,
        };
        (block, errors)
    }
}

/// One `#[anyd::interface]` trait.
pub(crate) struct InterfaceTrait {
    /// The trait as the compiler will see it: `#[api(...)]` removed.
    pub(crate) item: ItemTrait,
    /// Its name, which the generated items' names start with.
    pub(crate) name: Ident,
    /// Its doc comment, for the contract.
    pub(crate) doc: String,
    pub(crate) endpoints: Vec<Endpoint>,
}

impl InterfaceTrait {
    pub(crate) fn parse(mut item: ItemTrait) -> (InterfaceTrait, Errors) {
        let mut errors = Errors::default();
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.at(
                item.generics.span(),
                "#[anyd::interface] does not support generic traits: an interface and its clients must be concrete",
            );
        }
        let name = item.ident.clone();
        let doc = doc_text(&item.attrs);
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut names: HashMap<String, Ident> = HashMap::new();
        for trait_item in &mut item.items {
            let TraitItem::Fn(f) = trait_item else {
                let span = trait_item.span();
                let attrs = match trait_item {
                    TraitItem::Const(c) => &mut c.attrs,
                    TraitItem::Type(t) => &mut t.attrs,
                    TraitItem::Macro(m) => &mut m.attrs,
                    _ => continue,
                };
                take_api_attrs(attrs);
                errors.at(
                    span,
                    "an interface holds methods only: its clients and its contract cannot know an implementation's associated types or constants",
                );
                continue;
            };
            let Some(endpoint) =
                Endpoint::parse(&mut f.attrs, &f.sig, &Form::Trait, &name, &mut errors)
            else {
                continue;
            };
            if let Some(first) = names.get(&endpoint.name) {
                errors.at(
                    endpoint.method.span(),
                    format!(
                        "method `{}`: endpoint name `{}` is already used by method `{first}`; rename one with #[api(name = \"...\")]",
                        endpoint.method, endpoint.name
                    ),
                );
                continue;
            }
            names.insert(endpoint.name.clone(), endpoint.method.clone());
            endpoints.push(endpoint);
        }
        let interface = InterfaceTrait {
            item,
            name,
            doc,
            endpoints,
        };
        (interface, errors)
    }
}

/// Endpoint names as the runtime accepts them (`Registry::add`): letters,
/// digits, `_` and `.`, not starting with a digit.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

impl Endpoint {
    /// Reads one method; `None` when it stays a plain method (skipped, no
    /// receiver, or in error).
    fn parse(
        attrs: &mut Vec<Attribute>,
        sig: &Signature,
        form: &Form<'_>,
        daemon: &Ident,
        errors: &mut Errors,
    ) -> Option<Endpoint> {
        let mut options = method_options(take_api_attrs(attrs), errors);
        if options.skip.is_some() {
            return None;
        }
        let mut failed = false;
        // An interface's errors name the method: they show in the crate
        // of the interface, which callers read as a contract.
        let method_name = sig.ident.unraw().to_string();
        let mut fail = |errors: &mut Errors, span: Span, message: &str| {
            match form {
                Form::Impl(_) => errors.at(span, message),
                Form::Trait => errors.at(span, format!("method `{method_name}`: {message}")),
            }
            failed = true;
        };

        let receiver = match sig.receiver() {
            None => {
                if let Some(span) = options.present {
                    fail(
                        errors,
                        span,
                        "an endpoint takes `&self`; a function without a receiver stays a plain function",
                    );
                }
                return None;
            }
            Some(r) => match receiver_kind(r) {
                Ok(kind) => kind,
                Err((span, message)) => {
                    fail(errors, span, message);
                    Receiver::Ref
                }
            },
        };
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            fail(
                errors,
                sig.generics.span(),
                "an endpoint method cannot be generic: its parameter and return types must be known to decode a call",
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            fail(
                errors,
                unsafety.span,
                "an endpoint method cannot be `unsafe`: any client could call it",
            );
        }

        let mut params = Vec::new();
        for (i, arg) in sig.inputs.iter().enumerate() {
            let FnArg::Typed(arg) = arg else { continue };
            if i > MAX_PARAMS {
                let message = format!("an endpoint takes at most {MAX_PARAMS} parameters");
                fail(errors, arg.span(), &message);
                break;
            }
            let ident = match &*arg.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                other => {
                    fail(
                        errors,
                        other.span(),
                        "an endpoint parameter must be a plain name, which is also its keyword for callers; destructure inside the method",
                    );
                    continue;
                }
            };
            match param_kind(&arg.ty) {
                Ok(kind) => {
                    let mut ty = (*arg.ty).clone();
                    match form {
                        Form::Impl(self_ty) => ReplaceSelf(self_ty).visit_type_mut(&mut ty),
                        Form::Trait => {
                            if let Some(span) = find_self(&ty) {
                                fail(errors, span, TRAIT_SELF);
                            }
                        }
                    }
                    params.push(Param { ident, ty, kind });
                }
                Err((span, message)) => fail(errors, span, &message),
            }
        }

        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => {
                if let Some(span) = find_impl_trait(ty) {
                    fail(
                        errors,
                        span,
                        "an endpoint cannot return `impl Trait`: the typed client needs a concrete type to decode",
                    );
                }
                let mut ty = (**ty).clone();
                match form {
                    Form::Impl(self_ty) => ReplaceSelf(self_ty).visit_type_mut(&mut ty),
                    Form::Trait => {
                        if let Some(span) = find_self(&ty) {
                            fail(errors, span, TRAIT_SELF);
                        }
                    }
                }
                Some(ty)
            }
        };
        let reply = output
            .as_ref()
            .map(|ty| ok_type(ty).unwrap_or(ty).clone())
            .unwrap_or_else(|| syn::parse_quote!(()));

        let name = match &options.name {
            Some(lit) => {
                let name = lit.value();
                if !valid_name(&name) {
                    fail(
                        errors,
                        lit.span(),
                        "an endpoint name is made of letters, digits, `_` and `.`, and does not start with a digit",
                    );
                }
                if name.starts_with("anyd.") {
                    fail(
                        errors,
                        lit.span(),
                        "endpoint names starting with `anyd.` are reserved for the daemon's own endpoints",
                    );
                }
                name
            }
            None => sig.ident.unraw().to_string(),
        };
        if CLIENT_RESERVED.iter().any(|r| sig.ident == r) {
            let message = format!(
                "`{0}` is a function of the generated clients (`{1}Client::{0}`); name the method differently and keep the endpoint name with #[api(name = \"{0}\")]",
                sig.ident, daemon,
            );
            fail(errors, sig.ident.span(), &message);
        }
        if failed {
            return None;
        }

        let doc_attrs: Vec<Attribute> = attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect();
        let cfgs = attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect();
        Some(Endpoint {
            method: sig.ident.clone(),
            name,
            doc: doc_text(&doc_attrs),
            doc_attrs,
            cfgs,
            is_async: sig.asyncness.is_some(),
            receiver,
            params,
            error: output.as_ref().and_then(err_type).cloned(),
            output,
            stream: item_type(&reply).map(|item| Stream {
                items: reply.clone(),
                item: item.clone(),
            }),
            reply,
            span: sig.ident.span(),
            allow: std::mem::take(&mut options.allow),
        })
    }
}

#[cfg(test)]
mod tests;
