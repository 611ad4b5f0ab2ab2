//! Generates an endpoint's description for the contract document: a
//! closure `|g: &mut SchemaGenerator| -> anyd::contract::Method` that
//! `anyd::__private::Describe` takes. An interface's is strict (every type
//! must have a JSON Schema, its error type must name its kinds, each
//! checked on the type as written); an `#[anyd::api]` block's asks, and
//! falls back to "any value" and "any kind" where a type says nothing.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Ident;

use crate::model::{ok_type, Endpoint, ParamKind};
use crate::typename::type_name;

/// How types without a schema are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// An interface's: a compile error on the type.
    Interface,
    /// An `impl` block's: any value, with the Rust type's name.
    Lenient,
}

pub(crate) fn describer(e: &Endpoint, krate: &syn::Path, strictness: Strictness) -> TokenStream {
    let g = Ident::new("generator", Span::mixed_site());
    // An interface's types are checked through a function named after the
    // method, so that a type without a schema is reported as "required by
    // a bound in `method`".
    let method = &e.method;
    let schema = |ty: &syn::Type| match strictness {
        Strictness::Interface => {
            quote_spanned!(ty.span()=> #method::<#ty>(#g))
        }
        Strictness::Lenient => {
            let name = type_name(ty);
            quote!((&&#krate::__private::Probe::<#ty>::NEW).schema(#g, #name))
        }
    };
    let params = e
        .params
        .iter()
        .filter(|p| p.kind == ParamKind::Wire)
        .map(|p| {
            let name = p.ident.unraw().to_string();
            let ty = &p.ty;
            // An `impl` block's daemon reads it from the binding when it
            // describes itself; an interface says it at build time.
            let optional = match strictness {
                Strictness::Interface => {
                    quote_spanned!(ty.span()=> #krate::__private::optional::<#ty>())
                }
                Strictness::Lenient => quote!(false),
            };
            let schema = schema(ty);
            quote!(.param(#name, #optional, #schema))
        });
    let (returned, stream) = match &e.stream {
        Some(s) => (&s.item, true),
        None => (&e.reply, false),
    };
    let returns = schema(returned);
    let errors = e
        .output
        .as_ref()
        .filter(|output| ok_type(output).is_some())
        .map(|output| match strictness {
            Strictness::Interface => quote_spanned!(output.span()=>
                .errors(#krate::__private::error_kinds::<
                    <#output as #krate::__private::ResultParts>::Err,
                >())
            ),
            Strictness::Lenient => {
                quote!(.errors((&&#krate::__private::Probe::<#output>::NEW).error_kinds()))
            }
        });
    let (name, doc) = (&e.name, &e.doc);
    let imports = match strictness {
        Strictness::Interface => quote! {
            #[allow(non_snake_case)]
            fn #method<T: ?::std::marker::Sized + #krate::__private::InterfaceType>(
                generator: &mut #krate::schemars::SchemaGenerator,
            ) -> #krate::schemars::Schema {
                #krate::__private::schema::<T>(generator)
            }
        },
        Strictness::Lenient => quote! {
            #[allow(unused_imports)]
            use #krate::__private::{
                ViaKinds as _, ViaName as _, ViaSchema as _, ViaUnknown as _,
            };
        },
    };
    quote! {
        |#g: &mut #krate::schemars::SchemaGenerator| -> #krate::contract::Method {
            #imports
            #krate::__private::method(#name, #doc)
                #(#params)*
                .returns(#returns, #stream)
                #errors
                .finish(#g)
        }
    }
}
