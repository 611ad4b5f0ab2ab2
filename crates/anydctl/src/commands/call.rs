//! `anydctl call`: one call, its result on stdout as JSON.

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use anyd::Value;

use crate::exit::{Exit, Failure};
use crate::output::{json, text};
use crate::plan::{CallSpec, Connection};

/// Calls the endpoint and prints the result.
pub(crate) fn run(conn: &Connection, call: &CallSpec, raw: bool) -> Result<Exit, Failure> {
    if conn.verbose {
        for reading in &call.readings {
            eprintln!("anydctl: {reading}");
        }
    }
    let mut session = conn.connect()?;
    if conn.verbose {
        eprintln!("anydctl: calling {}", call.describe());
    }
    let start = Instant::now();
    let result =
        session.commit_with::<Value>(&call.endpoint, call.args_value(), call.kwargs_value());
    if conn.verbose {
        eprintln!(
            "anydctl: answered in {:.3} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let value = match result {
        Ok(v) => v,
        Err(anyd::Error::Remote(r)) => {
            // The data is often a repeat of the message (a Python
            // exception's args), so only --verbose shows it.
            if let (true, Some(data)) = (conn.verbose, &r.data) {
                eprintln!("anydctl: error data: {}", json::compact(data));
            }
            return Err(Failure::Remote(r));
        }
        Err(e) => return Err(conn.failure(e)),
    };
    // End the session before printing, so that a reader of the output
    // (a script waiting on the pipe) never races a daemon still busy with
    // this client.
    if let Err(e) = session.end_session() {
        if conn.verbose {
            eprintln!("anydctl: ending the session: {e}");
        }
    }
    let mut out = io::stdout().lock();
    // --raw writes what the daemon sent as it is into a pipe or a file; on
    // a terminal, with its control characters made visible.
    let terminal = io::stdout().is_terminal();
    match (&value, raw) {
        (Value::Str(s), true) if terminal => writeln!(out, "{}", text::escape(s))?,
        (Value::Str(s), true) => writeln!(out, "{s}")?,
        (Value::Bytes(b) | Value::ByteArray(b), true) if terminal => {
            out.write_all(&text::escape_bytes(b))?
        }
        (Value::Bytes(b) | Value::ByteArray(b), true) => out.write_all(b)?,
        _ => json::write_value(&mut out, &value, terminal)?,
    }
    out.flush()?;
    Ok(Exit::Success)
}
