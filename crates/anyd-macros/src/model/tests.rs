//! The model's checks, each on a small block.

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
