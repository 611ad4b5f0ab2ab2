//! Unit tests of `diff`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;
use crate::contract::private::{document, method, schema, Describe};
use crate::contract::{ErrorKind, Info};

fn one(describe: Describe) -> Document {
    document(Info::new("t", "1"), &[describe])
}

fn changes(old: Describe, new: Describe) -> Vec<String> {
    diff(&one(old), &one(new))
        .changes
        .iter()
        .map(ToString::to_string)
        .collect()
}

mod v1 {
    use super::*;
    #[derive(JsonSchema, Deserialize)]
    #[allow(dead_code)]
    pub(super) struct State {
        pub(super) up: bool,
        pub(super) name: String,
        pub(super) mtu: u16,
    }
}

mod v2 {
    use super::*;
    /// Lost a field, widened another.
    #[derive(JsonSchema, Deserialize)]
    #[allow(dead_code)]
    pub(super) struct State {
        pub(super) up: bool,
        pub(super) mtu: u32,
    }
}

mod v3 {
    use super::*;
    /// Gained an optional field.
    #[derive(JsonSchema, Deserialize)]
    #[allow(dead_code)]
    pub(super) struct State {
        pub(super) up: bool,
        pub(super) name: String,
        pub(super) mtu: u16,
        pub(super) note: Option<String>,
    }
}

#[test]
fn the_same_document_has_no_changes() {
    let m: Describe = |g| {
        method("connect", "")
            .param("profile", false, schema::<String>(g))
            .returns(schema::<v1::State>(g), false)
            .finish(g)
    };
    assert!(changes(m, m).is_empty());
}

#[test]
fn parameters() {
    let base: Describe = |g| {
        method("m", "")
            .param("a", false, schema::<u16>(g))
            .param("b", true, schema::<Option<String>>(g))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    let widened: Describe = |g| {
        method("m", "")
            .param("a", false, schema::<u32>(g))
            .param("b", true, schema::<Option<String>>(g))
            .param("c", true, schema::<Option<bool>>(g))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    assert_eq!(
        changes(base, widened),
        ["compatible: m: new optional parameter 'c'"]
    );
    let narrowed: Describe = |g| {
        method("m", "")
            .param("a", false, schema::<u8>(g))
            .param("b", false, schema::<String>(g))
            .param("d", false, schema::<bool>(g))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    assert_eq!(
        changes(base, narrowed),
        [
            "breaking: m: parameter 'a' no longer accepts numbers above 255",
            "breaking: m: parameter 'b' is now required",
            "breaking: m: parameter 'b' no longer accepts null",
            "breaking: m: new required parameter 'd'",
        ]
    );
    let moved: Describe = |g| {
        method("m", "")
            .param("b", true, schema::<Option<String>>(g))
            .param("a", false, schema::<String>(g))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    assert_eq!(
        changes(base, moved),
        [
            "breaking: m: parameter 'a' moved from position 1 to 2",
            "breaking: m: parameter 'a' no longer accepts an integer",
            "breaking: m: parameter 'b' moved from position 2 to 1",
        ]
    );
}

#[test]
fn results() {
    let v1: Describe = |g| {
        method("status", "")
            .returns(schema::<v1::State>(g), false)
            .finish(g)
    };
    let v2: Describe = |g| {
        method("status", "")
            .returns(schema::<v2::State>(g), false)
            .finish(g)
    };
    let v3: Describe = |g| {
        method("status", "")
            .returns(schema::<v3::State>(g), false)
            .finish(g)
    };
    let nullable: Describe = |g| {
        method("status", "")
            .returns(schema::<Option<v1::State>>(g), false)
            .finish(g)
    };
    let stream: Describe = |g| {
        method("status", "")
            .returns(schema::<v1::State>(g), true)
            .finish(g)
    };
    assert_eq!(
        changes(v1, v2),
        ["breaking: status: result may now be an object without field 'name'"]
    );
    assert!(changes(v1, v3).is_empty(), "{:?}", changes(v1, v3));
    assert_eq!(changes(v3, v1), Vec::<String>::new());
    assert_eq!(
        changes(v1, nullable),
        ["breaking: status: result may now be null"]
    );
    assert!(changes(nullable, v1).is_empty());
    assert_eq!(
        changes(v1, stream),
        ["breaking: status: now sends a stream of items instead of one result"]
    );
}

#[test]
fn enums_and_errors() {
    #[derive(JsonSchema, Deserialize)]
    #[allow(dead_code)]
    enum Two {
        Up,
        Down,
    }
    #[derive(JsonSchema, Deserialize)]
    #[allow(dead_code)]
    enum Three {
        Up,
        Down,
        Gone,
    }
    let two: Describe = |g| {
        method("m", "")
            .param("c", false, schema::<Two>(g))
            .returns(schema::<Two>(g), false)
            .errors(Some(vec![ErrorKind::new("VpnError", "")]))
            .finish(g)
    };
    let three: Describe = |g| {
        method("m", "")
            .param("c", false, schema::<Three>(g))
            .returns(schema::<Three>(g), false)
            .errors(Some(vec![
                ErrorKind::new("VpnError", ""),
                ErrorKind::new("ValueError", ""),
            ]))
            .finish(g)
    };
    assert_eq!(
        changes(two, three),
        [
            "breaking: m: result may now be the value \"Gone\"",
            "compatible: m: new error kind ValueError",
        ]
    );
    assert_eq!(
        changes(three, two),
        [
            "breaking: m: parameter 'c' no longer accepts the value \"Gone\"",
            "compatible: m: no longer gives error kind ValueError",
        ]
    );
}

#[test]
fn closures_compare_by_rust_type() {
    let a: Describe = |g| {
        method("m", "")
            .param("x", false, super::super::schema::permissive("String"))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    let b: Describe = |g| {
        method("m", "")
            .param("x", false, super::super::schema::permissive("u32"))
            .returns(schema::<()>(g), false)
            .finish(g)
    };
    assert_eq!(
        changes(a, b),
        ["breaking: m: parameter 'x' no longer accepts what it did as \"String\" (now \"u32\"; neither has a schema)"]
    );
}
