//! Decodes one crafted pickle request in-process, so that the peak memory
//! of the pickle decoder can be measured from outside:
//!
//! ```text
//! cargo build --release -p anyd-wire --example pickle_peak
//! /usr/bin/time -v target/release/examples/pickle_peak none-pop 8000000
//! ```
//!
//! The request is `("echo", (), {})` written by hand, with `COUNT`
//! repetitions of a pattern placed after the endpoint name, where the
//! stack holds only that name:
//!
//! - `none-pop`: NONE POP, a value pushed and discarded (2 bytes);
//! - `list-pop`: EMPTY_LIST POP (2 bytes);
//! - `memoize`: NONE MEMOIZE POP, a new memo entry each time (3 bytes);
//! - `list-of-nones`: one list of `COUNT` Nones, appended with APPENDS in
//!   batches of 1000 as CPython writes them, then popped.
//!
//! It prints the payload's length and what the decoder said; the peak
//! resident size is the `Maximum resident set size` line of `time -v`,
//! which includes the payload itself.

use std::process::ExitCode;

use anyd_wire::codec::{decode_request, DecodeLimits};
use anyd_wire::message::Incoming;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(pattern), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: pickle_peak none-pop|list-pop|memoize|list-of-nones COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("COUNT must be a number");
        return ExitCode::from(2);
    };
    // PROTO 4, the endpoint name as CPython writes it (so the server's
    // peek reads it), then the pattern, then the empty args and kwargs.
    let mut payload = vec![0x80, 0x04, 0x8c, 4];
    payload.extend_from_slice(b"echo");
    match pattern.as_str() {
        "none-pop" => (0..count).for_each(|_| payload.extend_from_slice(b"N0")),
        "list-pop" => (0..count).for_each(|_| payload.extend_from_slice(b"]0")),
        "memoize" => (0..count).for_each(|_| payload.extend_from_slice(b"N\x940")),
        "list-of-nones" => {
            payload.push(b']');
            for batch in 0..count.div_ceil(1000) {
                payload.push(b'(');
                let n = (count - batch * 1000).min(1000);
                payload.extend(std::iter::repeat_n(b'N', n));
                payload.push(b'e');
            }
            payload.push(b'0');
        }
        other => {
            eprintln!("unknown pattern {other}");
            return ExitCode::from(2);
        }
    }
    payload.extend_from_slice(b")}\x87.");
    println!("payload: {} bytes", payload.len());
    match decode_request(&payload, &DecodeLimits::default()) {
        Ok(Incoming::Request(request)) => {
            println!("decoded: a request for {}", request.endpoint);
        }
        Ok(other) => println!("decoded: {other:?}"),
        Err(e) => println!("refused: {e}"),
    }
    ExitCode::SUCCESS
}
