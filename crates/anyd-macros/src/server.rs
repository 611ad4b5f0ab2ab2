//! Generates `impl anyd::Api for MyDaemon` (an `#[anyd::api]` block) or
//! for `MyInterfaceService<T>` (an interface): each endpoint method
//! becomes a closure over an `Arc` of the daemon, registered through the
//! same path as `Appd::api` closures (`Appd::__api_with`), so that
//! argument binding has one implementation, in the runtime; then its
//! contract description and its policy.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Ident;

use crate::describe::{describer, Strictness};
use crate::model::{AllowRule, ApiBlock, Endpoint, ParamKind, Receiver};
use crate::typename::type_name;

/// Whose methods the closures call.
pub(crate) enum Target<'a> {
    /// The daemon type's own (`Self::method`), `self` being its `Arc`.
    Inherent,
    /// An interface's, on the type parameter `daemon` of its service
    /// (`<T as Interface>::method`), `self.0` being the `Arc`; the
    /// interface's marker type holds the descriptions.
    Trait {
        interface: &'a Ident,
        daemon: &'a Ident,
        marker: &'a Ident,
    },
}

pub(crate) fn api_impl(block: &ApiBlock, krate: &syn::Path) -> TokenStream {
    let self_ty = &block.self_ty;
    let appd = appd_ident();
    let registrations = registrations(&block.endpoints, krate, &Target::Inherent);
    quote! {
        impl #krate::Api for #self_ty {
            fn register(
                self: ::std::sync::Arc<Self>,
                #appd: #krate::Appd,
            ) -> #krate::Appd {
                #registrations
                #appd
            }
        }
    }
}

/// Mixed-site names cannot be captured by, or capture, the user's
/// parameter names.
pub(crate) fn appd_ident() -> Ident {
    Ident::new("appd", Span::mixed_site())
}

/// Every endpoint's registration, in order, rebinding `appd`.
pub(crate) fn registrations(
    endpoints: &[Endpoint],
    krate: &syn::Path,
    target: &Target<'_>,
) -> TokenStream {
    let appd = appd_ident();
    let each = endpoints
        .iter()
        .map(|e| registration(e, krate, &appd, target));
    quote!(#(#each)*)
}

/// The name of an interface's describing function for `e`, on its marker.
pub(crate) fn describe_fn(e: &Endpoint) -> Ident {
    quote::format_ident!("__anyd_describe_{}", e.method.unraw())
}

/// `let appd = appd.__api_with("name(a, b)", &["A", "B"], "doc", closure);`
/// and its description and policy.
fn registration(e: &Endpoint, krate: &syn::Path, appd: &Ident, target: &Target<'_>) -> TokenStream {
    let this = Ident::new("this", Span::mixed_site());
    let method = &e.method;
    let cfgs = &e.cfgs;

    let wire: Vec<_> = e
        .params
        .iter()
        .filter(|p| p.kind == ParamKind::Wire)
        .collect();
    let names = wire
        .iter()
        .map(|p| syn::ext::IdentExt::unraw(&p.ident).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let signature = format!("{}({names})", e.name);
    let types = wire.iter().map(|p| type_name(&p.ty));
    let doc = &e.doc;

    // The closure's parameters are the method's, with the caller as an
    // owned `Peer`; the runtime's `FromCall` binds them.
    let closure_params = e.params.iter().map(|p| {
        let ident = &p.ident;
        match p.kind {
            ParamKind::Wire => {
                let ty = &p.ty;
                quote!(#ident: #ty)
            }
            ParamKind::Peer | ParamKind::PeerRef => quote!(#ident: #krate::Peer),
            ParamKind::Context | ParamKind::ContextRef => quote!(#ident: #krate::Context),
        }
    });
    let args = e.params.iter().map(|p| {
        let ident = &p.ident;
        match p.kind {
            ParamKind::PeerRef | ParamKind::ContextRef => quote!(&#ident),
            ParamKind::Wire | ParamKind::Peer | ParamKind::Context => quote!(#ident),
        }
    });
    let receiver = match e.receiver {
        Receiver::Ref => quote!(&*#this),
        Receiver::Arc => quote!(::std::clone::Clone::clone(&#this)),
    };
    // The whole closure carries the method name's span: a signature that
    // cannot be served is reported there.
    let span = e.span;
    let call = match target {
        Target::Inherent => quote_spanned!(span=> Self::#method(#receiver, #(#args),*)),
        Target::Trait {
            interface, daemon, ..
        } => quote_spanned!(span=> <#daemon as #interface>::#method(#receiver, #(#args),*)),
    };
    let closure = if e.is_async {
        // The future owns its own clone of the daemon; the runtime runs it
        // to completion on the connection's thread.
        quote_spanned!(span=> move |#(#closure_params),*| {
            let #this = ::std::clone::Clone::clone(&#this);
            async move { #call.await }
        })
    } else {
        quote_spanned!(span=> move |#(#closure_params),*| #call)
    };

    // Checks that report a wrong type on the user's signature.
    let param_checks = wire.iter().map(|p| {
        let ty = &p.ty;
        quote_spanned!(p.ty.span()=> #krate::__private::wire_param::<#ty>();)
    });
    let error_check = e
        .error
        .as_ref()
        .map(|error| quote_spanned!(error.span()=> #krate::__private::reply_error::<#error>();));
    let reply_check = match (&e.output, &e.stream) {
        // A stream: `Items<T>` must be the runtime's and `T` serializable,
        // each reported on the type as written.
        (Some(_), Some(stream)) => {
            let (items, item) = (&stream.items, &stream.item);
            let items_check =
                quote_spanned!(items.span()=> #krate::__private::stream_items::<#items>(););
            let item_check =
                quote_spanned!(item.span()=> #krate::__private::stream_item::<#item>(););
            quote!(#items_check #item_check #error_check)
        }
        (Some(_), None) if e.error.is_some() => {
            let value = &e.reply;
            let value_check =
                quote_spanned!(value.span()=> #krate::__private::reply_value::<#value>(););
            quote!(#value_check #error_check)
        }
        (Some(ty), None) => quote_spanned!(ty.span()=> #krate::__private::reply::<_, #ty>();),
        (None, _) => TokenStream::new(),
    };

    let register = quote_spanned!(e.span=>
        #krate::Appd::__api_with(
            #appd,
            #signature,
            &[#(#types),*],
            #doc,
            #closure,
        )
    );
    let restrict = restriction(&e.allow, krate, appd);
    let (shared, describe) = match target {
        Target::Inherent => (
            quote!(::std::clone::Clone::clone(&self)),
            describer(e, krate, Strictness::Lenient),
        ),
        Target::Trait { marker, .. } => {
            let f = describe_fn(e);
            (
                quote!(::std::clone::Clone::clone(&self.0)),
                quote!(#marker::#f),
            )
        }
    };
    quote! {
        #(#cfgs)*
        let #appd = {
            #(#param_checks)*
            #reply_check
            let #this = #shared;
            let #appd = #register;
            let #appd = #krate::__private::describe(#appd, #describe);
            #restrict
        };
    }
}

/// `Appd::restrict(appd, Allow::group("vpn").or(Allow::root()))` for an
/// endpoint with `#[api(allow(group = "vpn", root))]`; just `appd` when it
/// has no rule. The same call a closure registration makes, so that policy
/// has one implementation.
fn restriction(rules: &[AllowRule], krate: &syn::Path, appd: &Ident) -> TokenStream {
    let mut rules = rules.iter().map(|rule| match rule {
        AllowRule::Unit(ident) => quote_spanned!(ident.span()=> #krate::Allow::#ident()),
        AllowRule::With(ident, value) => {
            quote_spanned!(ident.span()=> #krate::Allow::#ident(#value))
        }
    });
    let Some(first) = rules.next() else {
        return quote!(#appd);
    };
    quote! {
        #krate::Appd::restrict(#appd, #first #(.or(#rules))*)
    }
}
