//! Results as JSON. A [`Value`] keeps distinctions JSON has no word for;
//! this module decides, once, how each one is written:
//!
//! | value | JSON |
//! | --- | --- |
//! | bytes, bytearray | an array of numbers 0-255 (as `busctl --json` writes `ay`, and as serde writes bytes) |
//! | tuple, set, frozenset | an array |
//! | an integer outside the 64-bit range (`i64` or `u64`) | a decimal string, since most JSON readers would round it |
//! | NaN, +inf, -inf | the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (Python's names) |
//! | a map key that is not a string | its compact JSON text: `1` becomes `"1"`, `(1, 2)` becomes `"[1,2]"` |
//!
//! Maps keep the daemon's order.
//!
//! serde_json escapes the C0 controls in strings (`\u001b`) but writes DEL,
//! the C1 controls (U+0080..U+009F) and the format characters (U+202E
//! RIGHT-TO-LEFT OVERRIDE, zero-width characters, ...) as they are, and a
//! terminal acts on the first, or shows text reordered or hidden by the
//! others (see `output::text`); they are written `\u007f`, `\u009b`,
//! `\u202e` here (a code point beyond U+FFFF as its UTF-16 pair,
//! `\udb40\udc01`, as JSON spells it), to a terminal or not: the same
//! JSON, with nothing a terminal acts on or reads otherwise.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use anyd::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::text;

/// A value that serializes as the table above says.
pub(crate) struct Json<'a>(pub(crate) &'a Value);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    s.serialize_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    s.serialize_u64(v)
                } else {
                    s.serialize_str(&i.to_string())
                }
            }
            Value::BigInt(_) => s.serialize_str(&big_decimal(self.0)),
            Value::Float(f) if f.is_nan() => s.serialize_str("NaN"),
            Value::Float(f) if f.is_infinite() => {
                s.serialize_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(text) => s.serialize_str(text),
            Value::Bytes(b) | Value::ByteArray(b) => {
                let mut seq = s.serialize_seq(Some(b.len()))?;
                for byte in b {
                    seq.serialize_element(byte)?;
                }
                seq.end()
            }
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Json(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    match k {
                        Value::Str(key) => map.serialize_entry(key, &Json(v))?,
                        other => map.serialize_entry(&compact_text(other), &Json(v))?,
                    }
                }
                map.end()
            }
            // A variant added to `Value` later: its own serde form.
            other => other.serialize(s),
        }
    }
}

/// A `BigInt`'s decimal digits. `Value`'s own `Serialize` writes them (as a
/// JSON number when the value fits in 128 bits, a string beyond); this
/// strips the quotes so both read the same.
fn big_decimal(v: &Value) -> String {
    match serde_json::to_string(v) {
        Ok(text) => text.trim_matches('"').to_owned(),
        Err(e) => format!("<integer: {e}>"),
    }
}

/// One value as compact JSON text, DEL, C1 controls and format characters
/// as they are (a map key, escaped with the rest of the JSON it goes in).
fn compact_text(v: &Value) -> String {
    serde_json::to_string(&Json(v)).unwrap_or_else(|e| format!("<{e}>"))
}

/// One value as compact JSON text, safe to show.
pub(crate) fn compact(v: &Value) -> String {
    escape_controls(&compact_text(v)).into_owned()
}

/// JSON text with what `output::text` escapes written as `\u` escapes:
/// DEL, the C1 controls and the format characters. They can only be
/// inside strings (JSON is otherwise printable ASCII), where the escape
/// means the same character. The C0 controls are serde_json's: escaped in
/// strings, and outside them only the newlines of pretty output.
fn escape_controls(json: &str) -> Cow<'_, str> {
    let unsafe_here = |c: char| c >= ' ' && text::is_unsafe(c);
    if !json.contains(unsafe_here) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_here(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `v` as JSON and a newline: indented when `pretty`, on one line
/// otherwise.
///
/// # Errors
///
/// A write error.
pub(crate) fn write_value(out: &mut impl Write, v: &Value, pretty: bool) -> io::Result<()> {
    write_serialize(out, &Json(v), pretty)
}

/// Writes anything serializable as JSON and a newline.
///
/// # Errors
///
/// A write error.
pub(crate) fn write_serialize(
    out: &mut impl Write,
    v: &impl Serialize,
    pretty: bool,
) -> io::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    out.write_all(escape_controls(&text).as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn values_json_has_no_word_for() {
        assert_eq!(compact(&Value::Bytes(vec![0, 255])), "[0,255]");
        assert_eq!(compact(&Value::ByteArray(vec![1])), "[1]");
        assert_eq!(
            compact(&Value::Tuple(vec![Value::Int(1), s("a")])),
            r#"[1,"a"]"#
        );
        assert_eq!(compact(&Value::Set(vec![Value::Int(1)])), "[1]");
        assert_eq!(compact(&Value::Int(-1)), "-1");
        assert_eq!(
            compact(&Value::Int(u64::MAX.into())),
            "18446744073709551615"
        );
        assert_eq!(
            compact(&Value::Int(i128::from(u64::MAX) + 1)),
            r#""18446744073709551616""#
        );
        assert_eq!(
            compact(&Value::Int(i128::MIN)),
            format!("\"{}\"", i128::MIN)
        );
        // 2**70 as pickle writes it: little-endian two's complement.
        let mut bytes = vec![0; 9];
        bytes[8] = 0x40;
        assert_eq!(
            compact(&Value::BigInt(bytes)),
            r#""1180591620717411303424""#
        );
        // A big integer beyond 128 bits.
        let mut bytes = vec![0; 17];
        bytes[16] = 0x01;
        assert_eq!(
            compact(&Value::BigInt(bytes)),
            r#""340282366920938463463374607431768211456""#
        );
        assert_eq!(compact(&Value::Float(f64::NAN)), r#""NaN""#);
        assert_eq!(compact(&Value::Float(f64::NEG_INFINITY)), r#""-Infinity""#);
        assert_eq!(compact(&Value::Float(0.1)), "0.1");
    }

    #[test]
    fn maps_keep_their_order_and_stringify_keys() {
        let map = Value::Map(vec![
            (s("z"), Value::Nil),
            (Value::Int(1), Value::Bool(true)),
            (
                Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
                Value::List(vec![]),
            ),
            (s("a"), s("x")),
        ]);
        assert_eq!(compact(&map), r#"{"z":null,"1":true,"[1,2]":[],"a":"x"}"#);
    }

    #[test]
    fn del_and_c1_controls_are_escaped_and_the_json_means_the_same() {
        let evil = "\x1b]0;pwned\x07\x7f\u{9b}2J\u{85}é";
        let v = Value::Map(vec![
            (s(evil), s(evil)),
            (Value::Tuple(vec![s(evil)]), Value::Nil),
        ]);
        for pretty in [false, true] {
            let mut out = Vec::new();
            write_value(&mut out, &v, pretty).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text.contains(|c: char| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(text.contains(r"\u001b]0;pwned\u0007\u007f\u009b2J\u0085é"));
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back[evil].as_str(), Some(evil));
        }
        assert!(!compact(&s(evil)).contains(|c: char| c.is_control()));
    }

    #[test]
    fn format_characters_are_escaped_and_the_json_means_the_same() {
        let evil = "invoice\u{202e}fdp.exe \u{2066}x\u{2069} zw\u{200b}j\u{200d} tag\u{e0041}";
        let v = Value::Map(vec![(s(evil), s(evil))]);
        for pretty in [false, true] {
            let mut out = Vec::new();
            write_value(&mut out, &v, pretty).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains(|c: char| !c.is_ascii()), "{text:?}");
            // Beyond U+FFFF, the UTF-16 pair JSON spells it with.
            assert!(
                text.contains(
                    r"invoice\u202efdp.exe \u2066x\u2069 zw\u200bj\u200d tag\udb40\udc41"
                ),
                "{text:?}"
            );
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back[evil].as_str(), Some(evil));
        }
        assert_eq!(compact(&s("\u{feff}\u{ad}")), r#""\ufeff\u00ad""#);
    }

    #[test]
    fn pretty_and_compact_output() {
        let v = Value::Map(vec![(s("a"), Value::List(vec![Value::Int(1)]))]);
        let mut out = Vec::new();
        write_value(&mut out, &v, false).unwrap();
        assert_eq!(out, b"{\"a\":[1]}\n");
        out.clear();
        write_value(&mut out, &v, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
    }
}
