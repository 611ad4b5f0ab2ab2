//! Generates `impl anyd::ApiError` for `#[derive(ApiError)]`: the kind is
//! the type's name or an `#[api_error(kind = "...")]` on the type or a
//! variant; the message is the `Display` text. And `impl
//! anyd::contract::ErrorKinds`: the kinds it names, for the contract.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Attribute, Data, DeriveInput, LitStr};

use crate::model::{crate_path, doc_text, Errors};

/// What `#[api_error(...)]` says on the type or on a variant.
#[derive(Default)]
struct Attrs {
    kind: Option<LitStr>,
    krate: Option<syn::Path>,
}

/// Kinds are names (a Python client raises a builtin exception of that
/// name as that class, and puts any other in a `RuntimeError`'s message),
/// so they follow the endpoint name rules: letters, digits, `_` and `.`.
fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && !kind.starts_with(|c: char| c.is_ascii_digit())
        && kind
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

fn parse_attrs(attrs: &[Attribute], on_type: bool, errors: &mut Errors) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("api_error")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("kind") {
                let lit: LitStr = meta.value()?.parse()?;
                if !valid_kind(&lit.value()) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "an error kind is made of letters, digits, `_` and `.`, and does not start with a digit",
                    ));
                }
                out.kind = Some(lit);
                Ok(())
            } else if on_type && meta.path.is_ident("crate") {
                out.krate = Some(crate_path(&meta.value()?.parse()?)?);
                Ok(())
            } else if on_type {
                Err(meta.error(
                    "unknown #[api_error] option; expected `kind = \"...\"` or `crate = \"...\"`",
                ))
            } else {
                Err(meta.error("unknown #[api_error] option on a variant; expected `kind = \"...\"`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

pub(crate) fn derive(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let attrs = parse_attrs(&input.attrs, true, &mut errors);
    let krate = attrs.krate.unwrap_or_else(|| syn::parse_quote!(::anyd));
    let ident = &input.ident;
    let default_kind = attrs
        .kind
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));

    // The kinds the type names, each with what it means, for the
    // contract: the default kind means what the type's doc says (or its
    // first variant's), a variant's own kind what the variant's says.
    let type_doc = doc_text(&input.attrs);
    let mut listed: Vec<(LitStr, String)> = Vec::new();
    let kind = match &input.data {
        Data::Enum(e) => {
            let arms: Vec<TokenStream> = e
                .variants
                .iter()
                .map(|v| {
                    let v_attrs = parse_attrs(&v.attrs, false, &mut errors);
                    let kind = v_attrs.kind.as_ref().unwrap_or(&default_kind);
                    let doc = match &v_attrs.kind {
                        None if !type_doc.is_empty() => type_doc.clone(),
                        _ => doc_text(&v.attrs),
                    };
                    listed.push((kind.clone(), doc));
                    let name = &v.ident;
                    quote!(Self::#name { .. } => #kind,)
                })
                .collect();
            if e.variants.iter().any(|v| has_kind(&v.attrs)) {
                quote!(match &self { #(#arms)* })
            } else {
                quote!(#default_kind)
            }
        }
        Data::Struct(_) => {
            listed.push((default_kind.clone(), type_doc.clone()));
            quote!(#default_kind)
        }
        Data::Union(u) => {
            errors.at(
                u.union_token.span,
                "#[derive(ApiError)] works on enums and structs",
            );
            quote!(#default_kind)
        }
    };
    errors.into_result()?;

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    // Reported on the type's name when it has no `Display`.
    let message = quote_spanned!(ident.span()=> ::std::string::ToString::to_string(&self));
    let kinds = listed
        .iter()
        .map(|(kind, doc)| quote!(#krate::contract::ErrorKind::new(#kind, #doc)));
    Ok(quote! {
        impl #impl_generics #krate::ApiError for #ident #ty_generics #where_clause {
            fn into_remote(self) -> #krate::RemoteError {
                let kind: &'static str = #kind;
                #krate::RemoteError::new(kind, #message)
            }
        }

        impl #impl_generics #krate::contract::ErrorKinds for #ident #ty_generics #where_clause {
            fn error_kinds() -> ::std::option::Option<
                ::std::vec::Vec<#krate::contract::ErrorKind>,
            > {
                ::std::option::Option::Some(#krate::__private::dedup(::std::vec![#(#kinds),*]))
            }
        }
    })
}

fn has_kind(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("api_error"))
}
