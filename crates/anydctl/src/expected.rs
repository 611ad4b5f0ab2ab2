//! Answers anydctl reads as a type of its own (`anyd.endpoints`'s list of
//! endpoints), checked in the user's words.
//!
//! Decoded straight into the type, an answer of another shape is the
//! codec's complaint: `wrong msgpack marker FixStr(12)`, `invalid type:
//! string "x", expected struct EndpointInfo`. So such answers are decoded
//! as a generic [`Value`] (which any answer is) and checked here, field by
//! field, saying where the answer differs and how: `endpoint 2 (echo):
//! returns: expected a string, got an integer (5)`. Results of `call`
//! need none of this: they are shown as whatever they are.

use anyd::{EndpointInfo, Value};

use crate::output::json;

/// What `v` is, as a person says it, with the value itself when it is
/// short: `a string ("x")`, `an integer (5)`, `a list`, `nil`.
fn what(v: &Value) -> String {
    let shown = json::compact(v);
    let with = |kind: &str| {
        if shown.chars().count() <= 40 {
            format!("{kind} ({shown})")
        } else {
            kind.to_owned()
        }
    };
    match v {
        Value::Nil => "nil".to_owned(),
        Value::Bool(_) => with("a boolean"),
        Value::Int(_) | Value::BigInt(_) => with("an integer"),
        Value::Float(_) => with("a float"),
        Value::Str(_) => with("a string"),
        Value::Bytes(_) | Value::ByteArray(_) => "bytes".to_owned(),
        Value::List(_) | Value::Tuple(_) => "a list".to_owned(),
        Value::Set(_) | Value::FrozenSet(_) => "a set".to_owned(),
        Value::Map(_) => "a map".to_owned(),
        _ => "a value of another kind".to_owned(),
    }
}

/// `expected X, got Y`.
fn mismatch(expected: &str, got: &Value) -> String {
    format!("expected {expected}, got {}", what(got))
}

/// The entry `key` of the map `entries`.
fn field<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
        .map(|(_, v)| v)
}

/// How each field of a map is to be, by name: a field may be absent only
/// when it is optional.
struct Field {
    name: &'static str,
    check: fn(&Value) -> Result<(), String>,
    optional: bool,
}

fn string(v: &Value) -> Result<(), String> {
    match v {
        Value::Str(_) => Ok(()),
        other => Err(mismatch("a string", other)),
    }
}

fn string_or_nil(v: &Value) -> Result<(), String> {
    match v {
        Value::Str(_) | Value::Nil => Ok(()),
        other => Err(mismatch("a string or nil", other)),
    }
}

fn boolean(v: &Value) -> Result<(), String> {
    match v {
        Value::Bool(_) => Ok(()),
        other => Err(mismatch("true or false", other)),
    }
}

fn params(v: &Value) -> Result<(), String> {
    const PARAM: &[Field] = &[
        Field {
            name: "name",
            check: string_or_nil,
            optional: false,
        },
        Field {
            name: "type",
            check: string,
            optional: false,
        },
        Field {
            name: "optional",
            check: boolean,
            optional: false,
        },
    ];
    list_of(v, "parameter", "a list of parameters", PARAM)
}

/// The fields of an endpoint in `anyd.endpoints` (anyd's `EndpointInfo`).
const ENDPOINT: &[Field] = &[
    Field {
        name: "name",
        check: string,
        optional: false,
    },
    Field {
        name: "params",
        check: params,
        optional: false,
    },
    Field {
        name: "returns",
        check: string,
        optional: false,
    },
    Field {
        name: "doc",
        check: string,
        optional: false,
    },
    // Absent from daemons that predate streams.
    Field {
        name: "stream",
        check: boolean,
        optional: true,
    },
];

/// Checks that `v` is a list of maps, each with `fields`; the first thing
/// that differs, said with where it is (`what 2 (name): field: ...`).
fn list_of(v: &Value, what: &str, list: &str, fields: &[Field]) -> Result<(), String> {
    let Value::List(items) = v else {
        return Err(mismatch(list, v));
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Map(entries) = item else {
            return Err(format!("{what} {}: {}", i + 1, mismatch("a map", item)));
        };
        let name = match field(entries, "name") {
            Some(Value::Str(name)) => format!(" ({})", name),
            _ => String::new(),
        };
        for f in fields {
            match field(entries, f.name) {
                Some(value) => (f.check)(value)
                    .map_err(|why| format!("{what} {}{name}: {}: {why}", i + 1, f.name))?,
                None if f.optional => {}
                None => {
                    return Err(format!(
                        "{what} {}{name}: expected a field {}, got none",
                        i + 1,
                        f.name
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The endpoints `anyd.endpoints` answered with, or, in the user's words,
/// where the answer is not a list of endpoints.
///
/// # Errors
///
/// The first thing in the answer that is not as an endpoint list has it.
pub(crate) fn endpoints(answer: &Value) -> Result<Vec<EndpointInfo>, String> {
    list_of(answer, "endpoint", "a list of endpoints", ENDPOINT)?;
    // Checked: this is the library's own reading of what was checked.
    anyd::wire::from_value(answer).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Result<Vec<EndpointInfo>, String> {
        endpoints(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn a_list_of_endpoints_is_read() {
        let infos = answer(
            r#"[{"name":"get_sum","params":[{"name":"a","type":"i64","optional":false},
                {"name":null,"type":"i64","optional":true}],"returns":"i64","doc":"","x":1},
                {"name":"watch","params":[],"returns":"u64","doc":"d","stream":true}]"#,
        )
        .unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].params[1].name, None);
        assert!(!infos[0].stream && infos[1].stream);
    }

    #[test]
    fn what_differs_is_said_in_the_users_words() {
        let said = |text: &str| answer(text).unwrap_err();
        assert_eq!(
            said(r#""hello world!""#),
            r#"expected a list of endpoints, got a string ("hello world!")"#
        );
        assert_eq!(
            said(r#"["hello world!"]"#),
            r#"endpoint 1: expected a map, got a string ("hello world!")"#
        );
        let ok = r#"{"name":"a","params":[],"returns":"x","doc":""}"#;
        assert_eq!(
            said(&format!(
                r#"[{ok},{{"name":"b","params":[],"returns":5,"doc":""}}]"#
            )),
            "endpoint 2 (b): returns: expected a string, got an integer (5)"
        );
        assert_eq!(
            said(r#"[{"name":"a","returns":"x","doc":""}]"#),
            "endpoint 1 (a): expected a field params, got none"
        );
        assert_eq!(
            said(
                r#"[{"name":"a","params":[{"name":"p","type":1,"optional":false}],
                    "returns":"x","doc":""}]"#
            ),
            "endpoint 1 (a): params: parameter 1 (p): type: expected a string, got an \
             integer (1)"
        );
        assert_eq!(
            said(r#"[{"name":"a","params":{},"returns":"x","doc":"","stream":"yes"}]"#),
            "endpoint 1 (a): params: expected a list of parameters, got a map"
        );
        assert_eq!(
            said(r#"[{"name":"a","params":[],"returns":"x","doc":"","stream":"yes"}]"#),
            r#"endpoint 1 (a): stream: expected true or false, got a string ("yes")"#
        );
    }

    #[test]
    fn values_are_named_as_people_name_them() {
        assert_eq!(what(&Value::Nil), "nil");
        assert_eq!(what(&Value::Float(1.5)), "a float (1.5)");
        assert_eq!(what(&Value::Bool(true)), "a boolean (true)");
        assert_eq!(what(&Value::Bytes(vec![1])), "bytes");
        assert_eq!(what(&Value::Str("x".repeat(50))), "a string");
    }
}
