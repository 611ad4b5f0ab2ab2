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

/// The arguments of `#[anyd::api(...)]` and `#[anyd::interface(...)]`.
pub(crate) struct Options {
    /// Where the runtime crate is: `::anyd` unless renamed.
    pub(crate) krate: syn::Path,
    /// The visibility of the generated clients.
    pub(crate) vis: Visibility,
    /// An interface's name in its contract (`name = "..."`).
    pub(crate) name: Option<LitStr>,
    /// An interface's version in its contract (`version = "..."`).
    pub(crate) version: Option<LitStr>,
}

impl Options {
    /// Reads the options; `vis` is the default visibility of the
    /// generated items, and `interface` allows an interface's own options.
    pub(crate) fn parse(
        attr: TokenStream,
        vis: Visibility,
        interface: bool,
    ) -> syn::Result<Options> {
        let mut options = Options {
            krate: syn::parse_quote!(::anyd),
            vis,
            name: None,
            version: None,
        };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                options.krate = crate_path(&meta.value()?.parse()?)?;
                Ok(())
            } else if meta.path.is_ident("vis") {
                let lit: LitStr = meta.value()?.parse()?;
                options.vis = lit.parse()?;
                Ok(())
            } else if interface && meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "an interface's name is not empty",
                    ));
                }
                options.name = Some(lit);
                Ok(())
            } else if interface && meta.path.is_ident("version") {
                options.version = Some(meta.value()?.parse()?);
                Ok(())
            } else if interface {
                Err(meta.error(
                    "unknown #[anyd::interface] option; expected `name = \"...\"`, `version = \"...\"`, `crate = \"...\"` or `vis = \"...\"`",
                ))
            } else {
                Err(meta.error(
                    "unknown #[anyd::api] option; expected `crate = \"...\"` or `vis = \"...\"`",
                ))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(options)
    }
}

/// `"my_anyd"` -> `::my_anyd`: a bare crate name is made absolute so that
/// it resolves under `#![no_implicit_prelude]` and next to a local item of
/// the same name; `crate::...`, `self::...` and `super::...` stay as
/// written.
pub(crate) fn crate_path(lit: &LitStr) -> syn::Result<syn::Path> {
    let mut path: syn::Path = lit.parse()?;
    let first = &path.segments[0].ident;
    if path.leading_colon.is_none()
        && !["crate", "self", "super", "Self"]
            .iter()
            .any(|k| first == k)
    {
        path.leading_colon = Some(Default::default());
    }
    Ok(path)
}

/// One `#[anyd::api]` impl block.
pub(crate) struct ApiBlock {
    /// The block as the compiler will see it: `#[api(...)]` removed.
    pub(crate) item: ItemImpl,
    /// The daemon type.
    pub(crate) self_ty: Type,
    /// Its last path segment, which the client names start with.
    pub(crate) name: Ident,
    pub(crate) endpoints: Vec<Endpoint>,
}

/// One method that became an endpoint.
pub(crate) struct Endpoint {
    /// The method.
    pub(crate) method: Ident,
    /// The name callers use.
    pub(crate) name: String,
    /// The `#[doc]` attributes, for the client method.
    pub(crate) doc_attrs: Vec<Attribute>,
    /// The doc comment as text, for introspection.
    pub(crate) doc: String,
    /// `#[cfg]` attributes, repeated on everything generated for it.
    pub(crate) cfgs: Vec<Attribute>,
    pub(crate) is_async: bool,
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<Param>,
    /// The declared return type; `None` for `()`.
    pub(crate) output: Option<Type>,
    /// What the client returns in `Ok`: `T` from `Result<T, E>`, or the
    /// declared type; `Items<T>` for a stream, whose clients return its
    /// items instead (see `stream`).
    pub(crate) reply: Type,
    /// When the method streams (its `reply` is `Items<T>`): the stream's
    /// types.
    pub(crate) stream: Option<Stream>,
    /// `E` when the method returns `Result<T, E>`, spelled so.
    pub(crate) error: Option<Type>,
    /// The method's name, where type errors about it are reported.
    pub(crate) span: Span,
    /// `#[api(allow(...))]`: who may call it, on top of the daemon-wide
    /// rule; empty when anyone the daemon admits may.
    pub(crate) allow: Vec<AllowRule>,
}

/// The types of a streaming method's `Items<T>`.
pub(crate) struct Stream {
    /// `Items<T>` as written (`anyd::Items<Event>`), where a type named
    /// `Items` that is not the runtime's is reported.
    pub(crate) items: Type,
    /// `T`, what the clients decode each item into.
    pub(crate) item: Type,
}

/// One rule inside `#[api(allow(...))]`; several are alternatives.
pub(crate) enum AllowRule {
    /// `root`, `same_user`, `anyone`: an `Allow` constructor without an
    /// argument, named by the ident.
    Unit(Ident),
    /// `uid = EXPR`, `gid = EXPR`, `user = EXPR`, `group = EXPR`.
    With(Ident, syn::Expr),
}

/// The rules `allow(...)` understands, and whether each takes a value.
const ALLOW_RULES: &[(&str, bool)] = &[
    ("root", false),
    ("same_user", false),
    ("anyone", false),
    ("uid", true),
    ("gid", true),
    ("user", true),
    ("group", true),
];

/// Reads the inside of `allow(...)`.
fn parse_allow(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<AllowRule>> {
    let fork = meta.input.fork();
    let inside;
    syn::parenthesized!(inside in fork);
    if inside.is_empty() {
        return Err(meta.error(
            "`allow()` needs at least one rule, for example `allow(group = \"vpn\", root)`",
        ));
    }
    let mut rules = Vec::new();
    meta.parse_nested_meta(|rule| {
        let Some(ident) = rule.path.get_ident().cloned() else {
            return Err(rule.error(ALLOW_EXPECTED));
        };
        let Some(&(_, takes_value)) = ALLOW_RULES.iter().find(|(name, _)| ident == name) else {
            return Err(rule.error(ALLOW_EXPECTED));
        };
        if takes_value {
            if !rule.input.peek(syn::Token![=]) {
                return Err(rule.error(format!("`{ident}` needs a value: `{ident} = ...`")));
            }
            rules.push(AllowRule::With(ident, rule.value()?.parse()?));
        } else {
            if rule.input.peek(syn::Token![=]) {
                return Err(rule.error(format!("`{ident}` takes no value")));
            }
            rules.push(AllowRule::Unit(ident));
        }
        Ok(())
    })?;
    Ok(rules)
}

const ALLOW_EXPECTED: &str = "unknown rule in `allow(...)`; expected `root`, `same_user`, \
`anyone`, `uid = ...`, `gid = ...`, `user = \"...\"` or `group = \"...\"`";

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

/// What `#[api(...)]` on a method says.
#[derive(Default)]
struct MethodOptions {
    name: Option<LitStr>,
    skip: Option<Span>,
    /// Rules from every `allow(...)`, which add up as alternatives.
    allow: Vec<AllowRule>,
    allow_span: Option<Span>,
    /// Any `#[api]` was present, so the method was meant as an endpoint.
    present: Option<Span>,
}

/// Removes the `#[api]` attributes from `attrs` and returns them.
fn take_api_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (api, rest) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("api"));
    *attrs = rest;
    api
}

fn method_options(attrs: Vec<Attribute>, errors: &mut Errors) -> MethodOptions {
    let mut options = MethodOptions::default();
    for attr in attrs {
        options.present.get_or_insert(attr.span());
        if matches!(attr.meta, syn::Meta::Path(_)) {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                options.name = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("skip") {
                options.skip = Some(meta.path.span());
                Ok(())
            } else if meta.path.is_ident("allow") {
                options.allow_span.get_or_insert(meta.path.span());
                options.allow.extend(parse_allow(&meta)?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[api] option; expected `name = \"...\"`, `allow(...)` or `skip`",
                ))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    if let (Some(skip), Some(_)) = (options.skip, &options.name) {
        errors.at(
            skip,
            "a skipped method is not an endpoint and takes no name",
        );
    }
    if let (Some(_), Some(allow)) = (options.skip, options.allow_span) {
        errors.at(
            allow,
            "a skipped method is not an endpoint and takes no `allow` rule",
        );
    }
    options
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

const TRAIT_SELF: &str = "an interface method cannot name `Self` in its parameter or return \
types: its clients know no implementing type; name the type itself";

/// The span of a `Self` type anywhere inside `ty`.
fn find_self(ty: &Type) -> Option<Span> {
    struct Find(Option<Span>);
    impl Visit<'_> for Find {
        fn visit_type(&mut self, t: &Type) {
            if is_self(t) {
                self.0.get_or_insert(t.span());
            } else {
                syn::visit::visit_type(self, t);
            }
        }
        fn visit_path(&mut self, p: &syn::Path) {
            // `Self::Assoc` too.
            if p.segments.first().is_some_and(|s| s.ident == "Self") {
                self.0.get_or_insert(p.span());
            }
            syn::visit::visit_path(self, p);
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

const MUT_SELF: &str = "an endpoint takes `&self`, not `&mut self`: one daemon value serves \
every connection at once, so keep mutable state in a `Mutex`, an `RwLock` or atomics inside \
the struct";

fn receiver_kind(r: &syn::Receiver) -> Result<Receiver, (Span, &'static str)> {
    if r.colon_token.is_none() {
        return match (&r.reference, &r.mutability) {
            (Some(_), None) => Ok(Receiver::Ref),
            (Some(_), Some(m)) => Err((m.span, MUT_SELF)),
            (None, _) => Err((
                r.self_token.span,
                "an endpoint takes `&self`, not `self` by value: one daemon value serves every connection",
            )),
        };
    }
    // A typed receiver: `self: &Self` or `self: Arc<Self>`.
    match &*r.ty {
        Type::Reference(t) if is_self(&t.elem) => match t.mutability {
            None => Ok(Receiver::Ref),
            Some(m) => Err((m.span, MUT_SELF)),
        },
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().unwrap();
            match &last.arguments {
                PathArguments::AngleBracketed(a)
                    if last.ident == "Arc"
                        && a.args.len() == 1
                        && matches!(&a.args[0], GenericArgument::Type(t) if is_self(t)) =>
                {
                    Ok(Receiver::Arc)
                }
                _ => Err((
                    r.ty.span(),
                    "an endpoint takes `&self` or `self: Arc<Self>`",
                )),
            }
        }
        other => Err((
            other.span(),
            "an endpoint takes `&self` or `self: Arc<Self>`",
        )),
    }
}

fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

/// The last segment of a path type with that name and no generic
/// arguments: how `Peer` and `&Peer` are told apart from wire arguments.
/// (A type of that name that is not `anyd::Peer` fails to compile against
/// the `Peer` the generated code passes.)
fn is_peer(ty: &Type) -> bool {
    is_named(ty, "Peer")
}

/// As [`is_peer`], for `Context` (the call's context, `anyd::Context`).
fn is_context(ty: &Type) -> bool {
    is_named(ty, "Context")
}

fn is_named(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().unwrap();
            last.ident == name && last.arguments.is_none()
        }
        Type::Paren(p) => is_named(&p.elem, name),
        Type::Group(g) => is_named(&g.elem, name),
        _ => false,
    }
}

fn param_kind(ty: &Type) -> Result<ParamKind, (Span, String)> {
    if let Some(span) = find_impl_trait(ty) {
        return Err((
            span,
            "an endpoint parameter cannot be `impl Trait`: its concrete type is what the request is decoded into".into(),
        ));
    }
    match ty {
        Type::Reference(r) if is_peer(&r.elem) => match r.mutability {
            None => Ok(ParamKind::PeerRef),
            Some(m) => Err((m.span, "the caller is given as `&Peer`, not `&mut Peer`".into())),
        },
        Type::Reference(r) if is_context(&r.elem) => match r.mutability {
            None => Ok(ParamKind::ContextRef),
            Some(m) => Err((m.span, "the call's context is given as `&Context`, not `&mut Context`".into())),
        },
        Type::Reference(r) => Err((
            r.span(),
            "an endpoint parameter is decoded from the request and must own its value: take `String` for `&str`, `Vec<T>` for `&[T]`; only the caller, `&Peer`, is given by reference".into(),
        )),
        ty if is_peer(ty) => Ok(ParamKind::Peer),
        ty if is_context(ty) => Ok(ParamKind::Context),
        _ => Ok(ParamKind::Wire),
    }
}

/// The span of an `impl Trait` anywhere inside `ty`.
fn find_impl_trait(ty: &Type) -> Option<Span> {
    struct Find(Option<Span>);
    impl Visit<'_> for Find {
        fn visit_type_impl_trait(&mut self, t: &syn::TypeImplTrait) {
            self.0.get_or_insert(t.span());
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

/// `T` from `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`: any type
/// whose last segment is `Result` with a first type argument. (A type
/// alias by another name cannot be seen through; the client then expects
/// the alias itself.)
pub(crate) fn ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `T` from `Items<T>`, `anyd::Items<T>`: any type whose last segment is
/// `Items` with one type argument, so that the clients of a streaming
/// method can be told from its signature alone. (The generated code checks
/// that it is the runtime's `Items`; an alias by another name cannot be
/// seen through, and the generated code refuses it too.)
fn item_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Items" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (args.args.len(), args.args.first()?) {
        (1, GenericArgument::Type(t)) => Some(t),
        _ => None,
    }
}

/// `E` from `Result<T, E>` (two type arguments, so that an alias like
/// `io::Result<T>` is left to the general check).
fn err_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match (last.ident == "Result", args.args.len(), args.args.last()?) {
        (true, 2, GenericArgument::Type(t)) => Some(t),
        _ => None,
    }
}

/// Spells out `Self` as the daemon type, since the generated clients are
/// other types.
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if is_self(ty) {
            *ty = self.0.clone();
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// The doc comment as text: one line per `///` line, without the space
/// that follows `///`. Non-literal docs (`#[doc = include_str!(..)]`) are
/// left out.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if let syn::Meta::NameValue(nv) = &attr.meta {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
            {
                let value = s.value();
                for line in value.split('\n') {
                    lines.push(line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned());
                }
            }
        }
    }
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_paths_are_made_absolute() {
        let p = |s: &str| {
            let path = crate_path(&LitStr::new(s, Span::call_site())).unwrap();
            quote::quote!(#path).to_string().replace(' ', "")
        };
        assert_eq!(p("my_anyd"), "::my_anyd");
        assert_eq!(p("::anyd"), "::anyd");
        assert_eq!(p("crate::reexports::anyd"), "crate::reexports::anyd");
    }

    #[test]
    fn ok_types() {
        let ok = |s: &str| {
            let ty: Type = syn::parse_str(s).unwrap();
            ok_type(&ty).map(|t| quote::quote!(#t).to_string())
        };
        assert_eq!(ok("Result<Status, VpnError>").as_deref(), Some("Status"));
        assert_eq!(ok("std::io::Result<u8>").as_deref(), Some("u8"));
        assert_eq!(ok("Status"), None);
        assert_eq!(ok("std::fmt::Result"), None);
    }

    #[test]
    fn item_types() {
        let item = |s: &str| {
            let ty: Type = syn::parse_str(s).unwrap();
            item_type(&ty).map(|t| quote::quote!(#t).to_string())
        };
        assert_eq!(item("Items<Event>").as_deref(), Some("Event"));
        assert_eq!(item("anyd::Items<Vec<u8>>").as_deref(), Some("Vec < u8 >"));
        assert_eq!(item("Items"), None);
        assert_eq!(item("Items<'a, u8>"), None);
        assert_eq!(item("Vec<Event>"), None);
    }

    #[test]
    fn names() {
        assert!(valid_name("connect"));
        assert!(valid_name("vpn.status"));
        for bad in ["", "1x", "a b", "a-b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
