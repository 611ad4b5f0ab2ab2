//! The arguments of the attributes: `#[anyd::api(...)]` and
//! `#[anyd::interface(...)]` on the block, `#[api(...)]` on a method.

use super::*;

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
pub(super) const ALLOW_RULES: &[(&str, bool)] = &[
    ("root", false),
    ("same_user", false),
    ("anyone", false),
    ("uid", true),
    ("gid", true),
    ("user", true),
    ("group", true),
];

/// Reads the inside of `allow(...)`.
pub(super) fn parse_allow(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<AllowRule>> {
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

pub(super) const ALLOW_EXPECTED: &str =
    "unknown rule in `allow(...)`; expected `root`, `same_user`, \
`anyone`, `uid = ...`, `gid = ...`, `user = \"...\"` or `group = \"...\"`";

/// What `#[api(...)]` on a method says.
#[derive(Default)]
pub(super) struct MethodOptions {
    pub(super) name: Option<LitStr>,
    pub(super) skip: Option<Span>,
    /// Rules from every `allow(...)`, which add up as alternatives.
    pub(super) allow: Vec<AllowRule>,
    pub(super) allow_span: Option<Span>,
    /// Any `#[api]` was present, so the method was meant as an endpoint.
    pub(super) present: Option<Span>,
}

/// Removes the `#[api]` attributes from `attrs` and returns them.
pub(super) fn take_api_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (api, rest) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("api"));
    *attrs = rest;
    api
}

pub(super) fn method_options(attrs: Vec<Attribute>, errors: &mut Errors) -> MethodOptions {
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
