//! vpnm: the unprivileged command-line client of `vpnmd`.
//!
//! ```sh
//! vpnm [--address ADDR] status
//! vpnm [--address ADDR] connect PROFILE
//! vpnm [--address ADDR] disconnect PROFILE
//! vpnm [--address ADDR] watch
//! vpnm [--address ADDR] log
//! ```
//!
//! `watch` prints every tunnel brought up or torn down, by anyone, a line
//! each as it happens, until Ctrl-C (the daemon sees the connection close
//! and drops its watcher at once) or the daemon ends the stream.
//!
//! `log` prints the daemon's log of every change so far. The file is
//! root's alone; the daemon hands members of its group a read-only
//! descriptor to it (`open_log()`), and `vpnm` reads the log through that.
//!
//! Exit status: 0 on success, 1 when the daemon refuses (the message says
//! why) or ends a watch with an error, 2 for usage errors, 3 when the
//! daemon cannot be reached.

use std::collections::BTreeMap;
use std::io::Write;

use anyd::{ClientSession, Error, Fd, Value};
use serde::Deserialize;

const USAGE: &str =
    "usage: vpnm [--address ADDR] status | connect PROFILE | disconnect PROFILE | watch | log";

/// One change, as `watch()` sends it.
#[derive(Debug, Deserialize)]
struct Event {
    /// `up` or `down`.
    change: String,
    profile: String,
    uid: Option<u32>,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut address = "unix:/run/vpnmd.sock".to_owned();
    if args.first().map(String::as_str) == Some("--address") && args.len() >= 2 {
        address = args[1].clone();
        args.drain(..2);
    }
    let (endpoint, params): (&str, Vec<String>) = match args.as_slice() {
        [cmd] if cmd == "status" || cmd == "watch" => (cmd.as_str(), vec![]),
        [cmd] if cmd == "log" => ("open_log", vec![]),
        [cmd, profile] if cmd == "connect" || cmd == "disconnect" => {
            (cmd.as_str(), vec![profile.clone()])
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    // What the user typed, for messages: `log` calls open_log().
    let command = args[0].as_str();
    let result = ClientSession::connect(address.as_str()).and_then(|mut s| {
        if endpoint == "watch" {
            return watch(&mut s);
        }
        if endpoint == "open_log" {
            return log(&mut s);
        }
        let state = s.commit::<BTreeMap<String, Value>>(endpoint, params)?;
        let tunnels = match state.get("tunnels") {
            Some(Value::Map(m)) => m.clone(),
            _ => Vec::new(),
        };
        if tunnels.is_empty() {
            println!("no tunnel is up");
        }
        for (name, _) in tunnels {
            if let Value::Str(name) = name {
                println!("{name}: up");
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        // What a daemon answers both for an endpoint it lacks and for one
        // its policy does not let this user call: it does not say which.
        Err(Error::Remote(e)) if e.kind == "NotImplementedError" => {
            eprintln!("vpnm: {command}: not permitted, or not provided by this daemon");
            std::process::exit(1);
        }
        Err(Error::Remote(e)) => {
            eprintln!("vpnm: {}: {}", e.kind, e.message);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("vpnm: {e}");
            std::process::exit(3);
        }
    }
}

/// Prints each change as the daemon pushes it: `office: up (uid 1000)`.
/// Stdout is line-buffered, pipe or not, so each line is out at once.
fn watch(s: &mut ClientSession) -> anyd::Result<()> {
    for event in s.stream::<Event>("watch", ())? {
        // An error ends the stream (the daemon shutting down, a watcher
        // that fell behind): it is the last item.
        let event = event?;
        let who = event
            .uid
            .map_or_else(|| "uid unknown".to_owned(), |uid| format!("uid {uid}"));
        println!("{}: {} ({who})", event.profile, event.change);
    }
    Ok(())
}

/// Copies the change log to stdout through the descriptor the daemon
/// hands over: the file itself is root's alone, so opening it here would
/// fail; the daemon opened it, read only, for this caller.
fn log(s: &mut ClientSession) -> anyd::Result<()> {
    let log: Fd = s.commit("open_log", ())?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut log.into_file(), &mut out)?;
    out.flush()?;
    Ok(())
}
