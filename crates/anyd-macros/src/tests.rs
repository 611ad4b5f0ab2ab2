//! The expansion of `#[anyd::api]`, read as tokens.

use super::*;

/// With the crate renamed, no path in the expansion names `anyd` by
/// itself: everything goes through the new name.
#[test]
fn renamed_crate_is_used_everywhere() {
    let out = expand_api(
        quote!(crate = "my_anyd"),
        quote! {
            impl Vpnmd {
                /// Doc.
                fn status(&self, a: Option<String>, peer: &Peer) -> Result<u8, E> { todo!() }
                async fn later(&self) -> u8 { 1 }
                fn feed(&self) -> Result<Items<u8>, E> { todo!() }
            }
        },
    )
    .to_string();
    assert!(out.contains(":: my_anyd :: Api"), "{out}");
    assert!(out.contains(":: my_anyd :: ItemIter"), "{out}");
    assert!(out.contains(":: my_anyd :: ItemStream"), "{out}");
    let bare = out
        .match_indices("anyd ::")
        .filter(|(i, _)| !out[..*i].ends_with("my_"))
        .count();
    assert_eq!(bare, 0, "{out}");
    assert!(!out.contains("compile_error"), "{out}");
}

/// A method returning `Items<T>`, directly or in a `Result`, gets
/// client methods that stream `T`; one returning another type calls
/// `commit` as before.
#[test]
fn streaming_methods_get_streaming_client_methods() {
    let out = expand_api(
        quote!(),
        quote! {
            impl Feed {
                fn count(&self, n: u64) -> Items<u64> { todo!() }
                async fn watch(&self) -> Result<anyd::Items<Event>, E> { todo!() }
                fn items(&self) -> Vec<Items> { todo!() }
            }
        },
    )
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    for expected in [
        "fn count (& mut self , n : u64) -> :: anyd :: Result < :: anyd :: ItemIter < '_ , u64 >>",
        ":: anyd :: ClientSession :: stream :: < u64 > (& mut self . session , \"count\" , (n ,))",
        "async fn count (& mut self , n : u64) -> :: anyd :: Result < :: anyd :: ItemStream < '_ , u64 >>",
        ":: anyd :: AsyncClientSession :: stream :: < Event > (& mut self . session , \"watch\" , ()) . await",
        ":: anyd :: __private :: stream_item :: < Event > ()",
        ":: anyd :: __private :: stream_items :: < anyd :: Items < Event > > ()",
        ":: anyd :: ClientSession :: commit :: < Vec < Items > >",
    ] {
        assert!(out.contains(expected), "{expected}\n{out}");
    }
    assert_eq!(
        out.matches("ClientSession :: stream ::").count(),
        4,
        "{out}"
    );
}

#[test]
fn signature_and_types_are_passed_to_the_runtime() {
    let out = expand_api(
        quote!(),
        quote! {
            impl Vpnmd {
                fn connect_to(&self, r#type: String, peer: &Peer, map: std::collections::HashMap<String, f64>) {}
            }
        },
    )
    .to_string();
    assert!(out.contains(r#""connect_to(type, map)""#), "{out}");
    assert!(
        out.contains(r#"& ["String" , "std::collections::HashMap<String, f64>"]"#),
        "{out}"
    );
}
