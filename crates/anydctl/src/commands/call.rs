//! `anydctl call`: one call, its result on stdout as JSON; or, for a
//! streaming endpoint, its items as they come, one JSON value a line.
//! Results and items are decoded as [`Received`] values, which keep the
//! descriptors they hold (over a Unix socket the client asks for them).

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use anyd::{ClientSession, RemoteError, Value};

use super::describe::{self, NoDocument};
use super::CancelOnSignal;
use crate::exit::{Exit, Failure};
use crate::expected;
use crate::output::text::{escape, escape_line};
use crate::output::{json, result};
use crate::plan::{CallHow, CallSpec, Connection};
use crate::received::Received;

/// Calls the endpoint and prints the result, or the stream's items.
///
/// Whether the endpoint streams is found out by calling it: for one reply
/// first (most endpoints answer so, and a call costs one round trip as it
/// did before streams), then for its stream if the daemon refuses the
/// first call with a TypeError and its `anyd.endpoints` says the endpoint
/// streams. Asking `anyd.endpoints` first would cost every call a round
/// trip; telling a streaming endpoint by the words of the TypeError would
/// tie anydctl to a message written for people, which a daemon (or a
/// handler raising its own TypeError) may word otherwise; the endpoint
/// list says it as data. Nothing runs twice: a Rust anyd daemon checks
/// that a call asks for a stream exactly when its endpoint streams before
/// it runs the handler. `--stream` skips the first call.
///
/// Before that, unless told not to, the arguments are checked against the
/// daemon's contract (`anyd.describe`), which also says whether the
/// endpoint streams: with it, the call is made for what it sends at once.
pub(crate) fn run(conn: &Connection, call: &CallSpec, how: CallHow) -> Result<Exit, Failure> {
    if conn.verbose {
        for reading in &call.readings {
            eprintln!("anydctl: {reading}");
        }
    }
    let mut session = conn.connect()?;
    // Caught from before any request goes out, so that no Ctrl-C leaves
    // the daemon to find a reset connection instead of a cancel.
    let signals = CancelOnSignal::watch()?;
    // `--stream` is for the fewest round trips: it skips the check too.
    let streams = how.stream || (how.check && check(conn, &mut session, call)?);
    if !streams {
        let answer = call_once(conn, &mut session, call, &signals);
        if let Some(exit) = signals.caught() {
            // Cancelled: whatever came of the call is not shown, as for
            // a stream.
            end_session(conn, session);
            return Ok(exit);
        }
        match answer {
            Ok(value) => return print_result(conn, session, value, how),
            // Pickle has no streams (a Python anyd daemon has neither
            // streams nor anyd.endpoints): its TypeError is only that.
            Err(anyd::Error::Remote(r)) if r.kind == "TypeError" && conn.codec.is_native() => {
                if !listed_as_stream(conn, &mut session, &call.endpoint)? {
                    return Err(remote(conn, with_fd_hint(call, r)));
                }
                if conn.verbose {
                    eprintln!(
                        "anydctl: anyd.endpoints says {} streams: calling it for its items",
                        call.endpoint
                    );
                }
            }
            Err(anyd::Error::Remote(r)) => return Err(remote(conn, r)),
            Err(e) => return Err(conn.failure(e)),
        }
    }
    stream(conn, session, call, how, &signals)
}

/// Checks the arguments against the daemon's contract (`anyd.describe`),
/// and tells whether the endpoint streams. A daemon without a contract
/// is called unchecked.
fn check(conn: &Connection, session: &mut ClientSession, call: &CallSpec) -> Result<bool, Failure> {
    let doc = match describe::fetch(conn, session) {
        Ok(doc) => doc,
        Err(NoDocument::Failed(f)) => return Err(f),
        Err(NoDocument::NotProvided(r)) => {
            if conn.verbose {
                eprintln!(
                    "anydctl: no contract to check the arguments against: anyd.describe \
                     answered {}: {}",
                    escape_line(&r.kind),
                    escape(&r.message)
                );
            }
            return Ok(false);
        }
        Err(NoDocument::Invalid(why)) => {
            if conn.verbose {
                eprintln!("anydctl: arguments unchecked: {}", escape(&why));
            }
            return Ok(false);
        }
    };
    let args: Vec<serde_json::Value> = call
        .args
        .iter()
        .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
        .collect();
    let kwargs: Vec<(String, serde_json::Value)> = call
        .kwargs
        .iter()
        .map(|(k, v)| {
            let v = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            (k.clone(), v)
        })
        .collect();
    if let Err(e) = doc.check_call(&call.endpoint, &args, &kwargs) {
        // A word read as JSON where the parameter wants a string.
        let hint = match e.message.split_once("expected a string, got ") {
            Some((_, got)) if !got.contains(' ') && !got.starts_with('"') => {
                format!(" (for the string, quote it as JSON: '\"{got}\"')")
            }
            _ => String::new(),
        };
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{e}{hint}\n(the contract of {} says so, from anyd.describe; --no-check sends \
                 the call anyway)",
                conn.address
            ),
        ));
    }
    let streams = doc.method(&call.endpoint).is_some_and(|m| m.stream);
    if conn.verbose {
        eprintln!("anydctl: arguments checked against the daemon's contract");
        if streams {
            eprintln!(
                "anydctl: anyd.describe says {} streams: calling it for its items",
                call.endpoint
            );
        }
    }
    Ok(streams)
}

/// Calls for one reply; a signal cancels the call (see
/// [`CancelOnSignal`]), unless it came before: then the call is not made
/// (and the caller ends with the signal's status).
fn call_once(
    conn: &Connection,
    session: &mut ClientSession,
    call: &CallSpec,
    signals: &CancelOnSignal,
) -> anyd::Result<Received> {
    signals.arm_call(session.canceller()?);
    if signals.caught().is_some() {
        return Err(anyd::Error::Closed);
    }
    let received = call_unarmed(conn, session, call);
    signals.disarm();
    received
}

/// The call of [`call_once`].
fn call_unarmed(
    conn: &Connection,
    session: &mut ClientSession,
    call: &CallSpec,
) -> anyd::Result<Received> {
    if conn.verbose {
        eprintln!("anydctl: calling {}", call.describe());
    }
    let start = Instant::now();
    let (args, kwargs) = (call.args(), call.kwargs());
    let result = if !conn.codec.is_native() {
        // Pickle carries no descriptors, and `Value` keeps what only
        // pickle says (tuples, sets, big integers) as `Received` would
        // not need to.
        session
            .commit_with::<Value>(&call.endpoint, args, kwargs)
            .map(Received::from)
    } else {
        session.commit_with::<Received>(&call.endpoint, args, kwargs)
    };
    if conn.verbose {
        eprintln!(
            "anydctl: answered in {:.3} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    result
}

/// Whether the daemon's `anyd.endpoints` lists `endpoint` as streaming.
/// A daemon that cannot say (no `anyd.endpoints`, an error reply) says
/// no: the call's own error is then what the user sees.
pub(crate) fn listed_as_stream(
    conn: &Connection,
    session: &mut ClientSession,
    endpoint: &str,
) -> Result<bool, Failure> {
    match session.commit::<Value>("anyd.endpoints", ()) {
        Ok(answer) => {
            let infos = expected::endpoints(&answer).map_err(|why| not_endpoints(conn, &why))?;
            Ok(infos.iter().any(|e| e.name == endpoint && e.stream))
        }
        Err(anyd::Error::Remote(r)) => {
            if conn.verbose {
                eprintln!(
                    "anydctl: cannot tell whether {endpoint} streams: anyd.endpoints answered \
                     {}: {}",
                    escape_line(&r.kind),
                    escape(&r.message)
                );
            }
            Ok(false)
        }
        Err(e) => Err(conn.failure(e)),
    }
}

/// The failure for an `anyd.endpoints` answer that is not a list of
/// endpoints, `why` saying where.
pub(crate) fn not_endpoints(conn: &Connection, why: &str) -> Failure {
    Failure::new(
        Exit::Other,
        format!(
            "{} answered anyd.endpoints with what is not a list of endpoints: {why}",
            conn.address
        ),
    )
}

/// A TypeError for a descriptor parameter given something else, with a
/// word on how to give one, when none was: the daemon's words are the
/// library's (`Fd`'s `expecting`), and only a hint hangs on them.
fn with_fd_hint(call: &CallSpec, mut r: RemoteError) -> RemoteError {
    if call.fds.is_empty() && r.message.contains("expected a descriptor placeholder") {
        r.message.push_str(
            "\nhint: a parameter of type Fd takes a descriptor: send one with --file PATH \
             or --fd N (anydctl call --help, \"Sending descriptors\")",
        );
    }
    r
}

/// An error reply, as the failure to end with.
fn remote(conn: &Connection, r: RemoteError) -> Failure {
    // The data is often a repeat of the message (a Python exception's
    // args), so only --verbose shows it.
    if let (true, Some(data)) = (conn.verbose, &r.data) {
        eprintln!("anydctl: error data: {}", json::compact(data));
    }
    Failure::Remote(r)
}

/// Says with --verbose what descriptors came with a result or an item,
/// and why a placeholder-shaped map was shown as data.
fn tell_descriptors(conn: &Connection, what: &str, received: &Received) {
    if !conn.verbose {
        return;
    }
    match received.fd_count() {
        0 => {}
        1 => eprintln!("anydctl: the {what} holds a descriptor"),
        n => eprintln!("anydctl: the {what} holds {n} descriptors"),
    }
    for why in received.unresolved() {
        eprintln!("anydctl: a {{\"$fd\": n}} in the {what} is shown as data: {why}");
    }
}

/// Prints one result: pretty JSON on a terminal, compact otherwise.
fn print_result(
    conn: &Connection,
    session: ClientSession,
    received: Received,
    how: CallHow,
) -> Result<Exit, Failure> {
    // End the session before printing, so that a reader of the output
    // (a script waiting on the pipe) never races a daemon still busy with
    // this client. The descriptors stay open: they are this process's.
    end_session(conn, session);
    tell_descriptors(conn, "result", &received);
    let mut out = io::stdout().lock();
    let terminal = io::stdout().is_terminal();
    result::write(&mut out, received, how.raw, terminal, terminal, how.timeout)?;
    out.flush()?;
    Ok(Exit::Success)
}

/// Calls for a stream and prints each item as it comes, one JSON value a
/// line (a terminal too: a stream is read as it scrolls, and a line per
/// item is what `jq`, `grep` and `while read` take), flushed at once.
fn stream(
    conn: &Connection,
    mut session: ClientSession,
    call: &CallSpec,
    how: CallHow,
    signals: &CancelOnSignal,
) -> Result<Exit, Failure> {
    if conn.verbose {
        eprintln!("anydctl: calling {} for its stream", call.describe());
    }
    if let Some(exit) = signals.caught() {
        end_session(conn, session);
        return Ok(exit);
    }
    // Pickle has no streams: a stream is MessagePack or JSON, and its items
    // may hold descriptors.
    let mut items = session
        .stream_with::<Received>(&call.endpoint, call.args(), call.kwargs())
        .map_err(|e| conn.failure(e))?;
    signals.arm(items.canceller().map_err(|e| conn.failure(e))?);
    let mut out = io::stdout().lock();
    let terminal = io::stdout().is_terminal();
    let mut shown = 0u64;
    let mut ended = Ok(());
    let mut counted = false;
    // After a signal the iterator brings what was on its way, then the
    // `Cancelled` error, then the end: read to there (so that the session
    // ends in step), printing nothing more. The user asked to stop, and a
    // Ctrl-C at a shell also ends whatever reads the pipe.
    for item in items.by_ref() {
        if signals.caught().is_some() {
            continue;
        }
        match item {
            Ok(received) => {
                tell_descriptors(conn, "item", &received);
                let written =
                    result::write(&mut out, received, how.raw, terminal, false, how.timeout)
                        .and_then(|()| Ok(out.flush()?));
                match written {
                    Ok(()) => shown += 1,
                    // A reader gone with the same Ctrl-C: the signal says
                    // how this ends.
                    Err(_) if signals.caught().is_some() => continue,
                    // Dropping the iterator cancels the stream.
                    Err(e) => return Err(e),
                }
                if how.count.is_some_and(|n| shown >= n) {
                    counted = true;
                    break;
                }
            }
            // The last item: what ended the stream.
            Err(anyd::Error::Remote(r)) => ended = Err(remote(conn, r)),
            Err(e) => ended = Err(conn.failure(e)),
        }
    }
    if counted {
        if let Err(e) = items.cancel() {
            // The items asked for are out; the session is closed.
            if conn.verbose {
                eprintln!(
                    "anydctl: cancelling the rest of the stream: {}",
                    escape(&e.to_string())
                );
            }
        }
    } else {
        drop(items);
    }
    end_session(conn, session);
    match signals.caught() {
        Some(exit) => Ok(exit),
        None => ended.map(|()| Exit::Success),
    }
}

/// Ends the session; a failure is only worth a word with --verbose, the
/// call being done.
fn end_session(conn: &Connection, session: ClientSession) {
    if let Err(e) = session.end_session() {
        if conn.verbose {
            // The error may quote the daemon.
            eprintln!("anydctl: ending the session: {}", escape(&e.to_string()));
        }
    }
}
