//! vpnm: the unprivileged command-line client of `vpnmd`. It depends on
//! vpnmd's interface (the `vpnm-api` crate) and calls it through the
//! typed client the interface generates, `VpnmClient`: the same whatever
//! daemon serves the interface, and checked by the compiler against it.
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

use std::io::Write;

use anyd::Error;
// The interface alone: the typed client, and the types it returns. No
// daemon code, no hand-written copy of the contract.
use vpnm_api::{State, VpnmClient};

const USAGE: &str =
    "usage: vpnm [--address ADDR] status | connect PROFILE | disconnect PROFILE | watch | log";

/// What the user asked for.
enum Command {
    Status,
    Connect(String),
    Disconnect(String),
    Watch,
    Log,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut address = "unix:/run/vpnmd.sock".to_owned();
    if args.first().map(String::as_str) == Some("--address") && args.len() >= 2 {
        address = args[1].clone();
        args.drain(..2);
    }
    let command = match args.as_slice() {
        [cmd] if cmd == "status" => Command::Status,
        [cmd] if cmd == "watch" => Command::Watch,
        [cmd] if cmd == "log" => Command::Log,
        [cmd, profile] if cmd == "connect" => Command::Connect(profile.clone()),
        [cmd, profile] if cmd == "disconnect" => Command::Disconnect(profile.clone()),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    // What the user typed, for messages: `log` calls open_log().
    let name = args[0].as_str();
    let result = VpnmClient::connect(address.as_str()).and_then(|mut vpn| match command {
        Command::Status => show(&vpn.status()?),
        Command::Connect(profile) => show(&vpn.up(profile)?),
        Command::Disconnect(profile) => show(&vpn.down(profile)?),
        Command::Watch => watch(&mut vpn),
        Command::Log => log(&mut vpn),
    });
    match result {
        Ok(()) => {}
        // What a daemon answers both for an endpoint it lacks and for one
        // its policy does not let this user call: it does not say which.
        Err(Error::Remote(e)) if e.kind == "NotImplementedError" => {
            eprintln!("vpnm: {name}: not permitted, or not provided by this daemon");
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

/// Prints the tunnels that are up: `office: up`.
fn show(state: &State) -> anyd::Result<()> {
    if state.tunnels.is_empty() {
        println!("no tunnel is up");
    }
    for profile in state.tunnels.keys() {
        println!("{profile}: up");
    }
    Ok(())
}

/// Prints each change as the daemon pushes it: `office: up (uid 1000)`.
/// Stdout is line-buffered, pipe or not, so each line is out at once.
fn watch(vpn: &mut VpnmClient) -> anyd::Result<()> {
    for event in vpn.watch()? {
        // An error ends the stream (the daemon shutting down, a watcher
        // that fell behind): it is the last item.
        let event = event?;
        let who = event
            .uid
            .map_or_else(|| "uid unknown".to_owned(), |uid| format!("uid {uid}"));
        println!("{}: {} ({who})", event.profile, event.change.word());
    }
    Ok(())
}

/// Copies the change log to stdout through the descriptor the daemon
/// hands over: the file itself is root's alone, so opening it here would
/// fail; the daemon opened it, read only, for this caller.
fn log(vpn: &mut VpnmClient) -> anyd::Result<()> {
    let log = vpn.open_log()?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut log.into_file(), &mut out)?;
    out.flush()?;
    Ok(())
}
