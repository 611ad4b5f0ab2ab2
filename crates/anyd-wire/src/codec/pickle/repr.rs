//! Python-like text for values, used to turn a decoded exception's args
//! into its message. It follows Python's `repr` for the common cases
//! (quotes, escapes, float formatting, container punctuation) without
//! promising every corner (Python picks double quotes for a str that
//! contains a single quote and no double quote; this always uses single
//! quotes).

use std::fmt::Write;

use super::trim_twos_complement;
use crate::Value;

/// The exception message: args joined with `", "`, str args as they are and
/// the others in repr form.
pub(super) fn message(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match arg {
            Value::Str(s) => out.push_str(s),
            other => repr(other, &mut out),
        }
    }
    out
}

/// Appends a Python-like `repr` of `value`.
pub(super) fn repr(value: &Value, out: &mut String) {
    match value {
        Value::Nil => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(bytes) => big_int(bytes, out),
        Value::Float(f) => float(*f, out),
        Value::Str(s) => str_repr(s, out),
        Value::Bytes(b) => bytes_repr(b, out),
        Value::ByteArray(b) => {
            out.push_str("bytearray(");
            bytes_repr(b, out);
            out.push(')');
        }
        Value::List(items) => seq(items, "[", "]", out),
        Value::Tuple(items) if items.len() == 1 => seq(items, "(", ",)", out),
        Value::Tuple(items) => seq(items, "(", ")", out),
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => seq(items, "{", "}", out),
        Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        Value::FrozenSet(items) => seq(items, "frozenset({", "})", out),
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(k, out);
                out.push_str(": ");
                repr(v, out);
            }
            out.push('}');
        }
    }
}

fn seq(items: &[Value], open: &str, close: &str, out: &mut String) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        repr(item, out);
    }
    out.push_str(close);
}

fn str_repr(s: &str, out: &mut String) {
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn bytes_repr(b: &[u8], out: &mut String) {
    out.push_str("b'");
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('\'');
}

/// Python's `repr(float)`: the shortest round-tripping digits, in
/// positional form for exponents from -4 to 15 and scientific outside.
fn float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f < 0.0 { "-inf" } else { "inf" });
        return;
    }
    // Rust's `{:e}` gives the same shortest digits as Python's repr, only
    // laid out differently ("1.5e-7").
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if f.is_sign_negative() {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() > point {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        } else {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        }
    }
}

/// Decimal for ints up to Python's own 4300-digit `str()` limit, hex
/// beyond (where Python's `repr` would refuse), so that a hostile message
/// never costs quadratic time.
fn big_int(le: &[u8], out: &mut String) {
    let le = trim_twos_complement(le);
    let negative = le.last().is_some_and(|b| b & 0x80 != 0);
    // The magnitude, little-endian: two's complement negation if negative.
    let mut magnitude = le.to_vec();
    if negative {
        let mut carry = true;
        for byte in &mut magnitude {
            *byte = !*byte;
            if carry {
                let (sum, overflow) = byte.overflowing_add(1);
                *byte = sum;
                carry = overflow;
            }
        }
    }
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    if negative {
        out.push('-');
    }
    if magnitude.is_empty() {
        out.push('0');
        return;
    }
    if magnitude.len() > 1700 {
        out.push_str("0x");
        for byte in magnitude.iter().rev() {
            let _ = write!(out, "{byte:02x}");
        }
        return;
    }
    // Base 10^9 limbs by repeated division of big-endian 32-bit words.
    let mut words: Vec<u32> = magnitude
        .chunks(4)
        .rev()
        .map(|chunk| {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(w)
        })
        .collect();
    let mut limbs = Vec::new();
    while !words.is_empty() {
        let mut rem: u64 = 0;
        for word in &mut words {
            let cur = (rem << 32) | u64::from(*word);
            *word = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        limbs.push(rem as u32);
        while words.first() == Some(&0) {
            words.remove(0);
        }
    }
    let mut iter = limbs.iter().rev();
    if let Some(first) = iter.next() {
        let _ = write!(out, "{first}");
    }
    for limb in iter {
        let _ = write!(out, "{limb:09}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &Value) -> String {
        let mut s = String::new();
        repr(v, &mut s);
        s
    }

    #[test]
    fn floats_like_python() {
        // Expected strings are Python 3.11's repr() of the same floats.
        let cases = [
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.0, "-0.0"),
            (2.5e-300, "2.5e-300"),
            (f64::INFINITY, "inf"),
            (-1.0, "-1.0"),
            (100.0, "100.0"),
        ];
        for (f, want) in cases {
            assert_eq!(r(&Value::Float(f)), want, "{f:?}");
        }
    }

    #[test]
    fn big_ints_like_python() {
        // 2**200 and -(2**200) as minimal two's complement.
        let mut pos = vec![0u8; 25];
        pos.push(1);
        assert_eq!(
            r(&Value::BigInt(pos)),
            "1606938044258990275541962092341162602522202993782792835301376"
        );
        let mut neg = vec![0u8; 25];
        neg.push(0xff);
        assert_eq!(
            r(&Value::BigInt(neg)),
            "-1606938044258990275541962092341162602522202993782792835301376"
        );
    }

    #[test]
    fn containers_and_message() {
        let v = Value::Tuple(vec![
            Value::Str("a'b\n".into()),
            Value::Bytes(vec![0, b'x', 0xff]),
            Value::Tuple(vec![Value::Nil]),
            Value::Set(vec![]),
            Value::Map(vec![(Value::Int(1), Value::Bool(true))]),
        ]);
        assert_eq!(
            r(&v),
            r"('a\'b\n', b'\x00x\xff', (None,), set(), {1: True})"
        );
        let args = [
            Value::Int(13),
            Value::Str("denied".into()),
            Value::List(vec![]),
        ];
        assert_eq!(message(&args), "13, denied, []");
    }
}
