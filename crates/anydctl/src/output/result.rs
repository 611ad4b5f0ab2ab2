//! A call's result, or one item of a stream, as `anydctl call` prints it.

use std::io::Write;
use std::time::Duration;

use anyd::Value;

use super::{fds, json, text};
use crate::exit::{Exit, Failure};
use crate::received::Received;

/// Writes `received` as JSON and a newline, indented when `pretty`, each
/// descriptor in it shown as what kind of file it is (`fds`). With `raw`:
/// a result holding one descriptor as the content read through it; a
/// string as its text and a newline and bytes as they are (as `jq -r`
/// does); other values as JSON still. What goes to a terminal has its
/// control characters made visible (`text`); --raw into a pipe or a file
/// is the one way to get a value exactly as the daemon sent it.
///
/// The descriptors are closed once written. `read_within` bounds the
/// reading of a descriptor with `raw` (`fds::copy`).
///
/// # Errors
///
/// A write error; with `raw`, a result holding more than one descriptor,
/// or one that cannot be read, or a read error, or a descriptor not at
/// its end within `read_within`.
pub(crate) fn write(
    out: &mut impl Write,
    received: Received,
    raw: bool,
    terminal: bool,
    pretty: bool,
    read_within: Option<Duration>,
) -> Result<(), Failure> {
    let mut held = Vec::new();
    let value = received.into_value(&mut held, &fds::describe);
    if raw && !held.is_empty() {
        // What --raw means for a descriptor: what it gives to read. Which
        // of several to read would be a guess.
        if held.len() > 1 {
            return Err(Failure::new(
                Exit::Other,
                format!(
                    "the result holds {} descriptors; --raw copies the content of one: leave \
                     --raw out to see what they are",
                    held.len()
                ),
            ));
        }
        let fd = held.remove(0);
        if let Some(why) = fds::unreadable(&fd) {
            return Err(Failure::new(
                Exit::Other,
                format!("--raw cannot copy the descriptor in the result: {why}"),
            ));
        }
        return fds::copy(fd, out, terminal, read_within);
    }
    match (&value, raw) {
        (Value::Str(s), true) if terminal => writeln!(out, "{}", text::escape(s)),
        (Value::Str(s), true) => writeln!(out, "{s}"),
        (Value::Bytes(b) | Value::ByteArray(b), true) if terminal => {
            out.write_all(&text::escape_bytes(b))
        }
        (Value::Bytes(b) | Value::ByteArray(b), true) => out.write_all(b),
        _ => json::write_value(out, &value, pretty),
    }?;
    Ok(())
}
