//! A call's result, or one item of a stream, as `anydctl call` prints it.

use std::io::{self, Write};

use anyd::Value;

use super::{json, text};

/// Writes `value` as JSON and a newline, indented when `pretty`; with
/// `raw`, a string as its text and a newline and bytes as they are (as
/// `jq -r` does), other values as JSON still. What goes to a terminal has
/// its control characters made visible (`text`); --raw into a pipe or a
/// file is the one way to get a value exactly as the daemon sent it.
///
/// # Errors
///
/// A write error.
pub(crate) fn write(
    out: &mut impl Write,
    value: &Value,
    raw: bool,
    terminal: bool,
    pretty: bool,
) -> io::Result<()> {
    match (value, raw) {
        (Value::Str(s), true) if terminal => writeln!(out, "{}", text::escape(s)),
        (Value::Str(s), true) => writeln!(out, "{s}"),
        (Value::Bytes(b) | Value::ByteArray(b), true) if terminal => {
            out.write_all(&text::escape_bytes(b))
        }
        (Value::Bytes(b) | Value::ByteArray(b), true) => out.write_all(b),
        _ => json::write_value(out, value, pretty),
    }
}
