//! What the model reads off the user's types: `Self`, receivers,
//! `Peer` and `Context` parameters, `Result` and `Items` return types,
//! and doc comments.

use super::*;

pub(super) const TRAIT_SELF: &str =
    "an interface method cannot name `Self` in its parameter or return \
types: its clients know no implementing type; name the type itself";

/// The span of a `Self` type anywhere inside `ty`.
pub(super) fn find_self(ty: &Type) -> Option<Span> {
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

pub(super) const MUT_SELF: &str =
    "an endpoint takes `&self`, not `&mut self`: one daemon value serves \
every connection at once, so keep mutable state in a `Mutex`, an `RwLock` or atomics inside \
the struct";

pub(super) fn receiver_kind(r: &syn::Receiver) -> Result<Receiver, (Span, &'static str)> {
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

pub(super) fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

/// The last segment of a path type with that name and no generic
/// arguments: how `Peer` and `&Peer` are told apart from wire arguments.
/// (A type of that name that is not `anyd::Peer` fails to compile against
/// the `Peer` the generated code passes.)
pub(super) fn is_peer(ty: &Type) -> bool {
    is_named(ty, "Peer")
}

/// As [`is_peer`], for `Context` (the call's context, `anyd::Context`).
pub(super) fn is_context(ty: &Type) -> bool {
    is_named(ty, "Context")
}

pub(super) fn is_named(ty: &Type, name: &str) -> bool {
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

pub(super) fn param_kind(ty: &Type) -> Result<ParamKind, (Span, String)> {
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
pub(super) fn find_impl_trait(ty: &Type) -> Option<Span> {
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
pub(super) fn item_type(ty: &Type) -> Option<&Type> {
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
pub(super) fn err_type(ty: &Type) -> Option<&Type> {
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
pub(super) struct ReplaceSelf<'a>(pub(super) &'a Type);

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
